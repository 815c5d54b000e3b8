//! The agent side of port forwarding ([`serve_mux`], [`serve_basic`]): what the emulator's
//! agent runs for a port session, and what tests of the client side
//! ([`ssm_tokio::forward`]) run against.

use std::io;
use std::sync::Arc;

use ssm_proto::smux::{self, Role};
use ssm_tokio::forward::{bridge, LocalStreamDyn, MuxSession, Stats};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Bytes read from a target connection at a time (smux's own `MaxFrameSize` is 32768).
const LOCAL_READ: usize = 32 * 1024;

/// The agent side of multiplexed port forwarding: every stream the client
/// opens is connected with `connect` and bridged. Runs until the session ends.
///
/// # Errors
/// The session's end reason, if not a clean end of input.
pub async fn serve_mux<T, F, Fut>(io: T, config: smux::Config, connect: F) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Send + 'static,
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = io::Result<Box<dyn LocalStreamDyn>>> + Send + 'static,
{
    let (_session, driver, mut incoming) = MuxSession::start(io, Role::Server, config);
    let stats = Arc::new(Stats::default());
    while let Some(stream) = incoming.recv().await {
        let target = connect();
        let stats = stats.clone();
        tokio::spawn(async move {
            match target.await {
                Ok(local) => bridge(stream, local, stats).await,
                Err(_) => stream.abort().await,
            }
        });
    }
    driver.await.unwrap_or_else(|e| Err(io::Error::other(e)))
}

/// A client flag [`serve_basic`] acts on, at its position in the session's input stream (the
/// number of bytes the client sent before it; see [`ssm_tokio::SessionEvent::Flag`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicFlag {
    /// DisconnectToPort: the target connection ends here; later bytes open a new one.
    Disconnect(u64),
    /// TerminateSession: the session ends here.
    Terminate(u64),
}

impl BasicFlag {
    fn at(self) -> u64 {
        match self {
            BasicFlag::Disconnect(at) | BasicFlag::Terminate(at) => at,
        }
    }
}

/// Where [`serve_basic`] learns of the client's flags.
pub trait BasicFlags {
    /// The next flag; `Ready(None)` once no more can come.
    fn poll_flag(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<BasicFlag>>;
}

impl BasicFlags for mpsc::UnboundedReceiver<BasicFlag> {
    fn poll_flag(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<BasicFlag>> {
        self.poll_recv(cx)
    }
}

impl<T: BasicFlags + ?Sized> BasicFlags for &mut T {
    fn poll_flag(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<BasicFlag>> {
        (**self).poll_flag(cx)
    }
}

/// The agent side of basic port forwarding: the session's bytes go to one
/// target connection, opened with `connect` when data first arrives; `flags` end it at their
/// positions in the stream (bytes before a DisconnectToPort go to the old connection, bytes
/// after it open a new one), as the agent, which handles the stream in order, does. Data from a
/// target that has closed is not expected; its end is simply waited out. Returns at the input's
/// end or at a TerminateSession's position.
///
/// # Errors
/// Reading or writing the session failed.
pub async fn serve_basic<T, F, Fut, B>(io: T, connect: F, mut flags: B) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<Box<dyn LocalStreamDyn>>>,
    B: BasicFlags,
{
    let (mut sr, mut sw) = tokio::io::split(io);
    let mut sbuf = vec![0u8; LOCAL_READ];
    let mut tbuf = vec![0u8; LOCAL_READ];
    let mut target: Option<Box<dyn LocalStreamDyn>> = None;
    // Flags not yet reached, and the input bytes read so far.
    let mut pending = std::collections::VecDeque::new();
    let mut flags_open = true;
    let mut consumed = 0u64;
    loop {
        // E.g. a flag right after a connection's last byte.
        if at_flags(&mut pending, consumed, &mut target).await {
            return Ok(());
        }
        tokio::select! {
            biased;
            f = std::future::poll_fn(|cx| flags.poll_flag(cx)), if flags_open => match f {
                Some(f) => pending.push_back(f),
                None => flags_open = false,
            },
            r = sr.read(&mut sbuf) => {
                let n = r?;
                if n == 0 {
                    return Ok(());
                }
                // A flag sent before these bytes was reported before they reached the pipe:
                // take every flag reported by now, then split the bytes at their positions.
                if flags_open {
                    flags_open = ready_flags(&mut flags, &mut pending);
                }
                let mut chunk = &sbuf[..n];
                while !chunk.is_empty() {
                    if at_flags(&mut pending, consumed, &mut target).await {
                        return Ok(());
                    }
                    let room = pending.front().map_or(u64::MAX, |f| f.at() - consumed);
                    let take = chunk.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                    deliver(&mut target, &connect, &chunk[..take]).await;
                    consumed += take as u64;
                    chunk = &chunk[take..];
                }
            }
            r = async {
                match target.as_mut() {
                    Some(t) => t.read(&mut tbuf).await,
                    None => std::future::pending().await,
                }
            } => match r {
                Ok(0) | Err(_) => {
                    // The target closed its side: shut it down and wait for the flag.
                    if let Some(mut t) = target.take() {
                        let _ = t.shutdown().await;
                    }
                }
                Ok(n) => {
                    sw.write_all(&tbuf[..n]).await?;
                    sw.flush().await?;
                }
            },
        }
    }
}

/// Acts on the flags at or before position `consumed`: each ends the target connection.
/// Returns true at a TerminateSession.
async fn at_flags(
    pending: &mut std::collections::VecDeque<BasicFlag>,
    consumed: u64,
    target: &mut Option<Box<dyn LocalStreamDyn>>,
) -> bool {
    while let Some(f) = pending.front().copied().filter(|f| f.at() <= consumed) {
        pending.pop_front();
        if let Some(mut t) = target.take() {
            let _ = t.shutdown().await;
        }
        if matches!(f, BasicFlag::Terminate(_)) {
            return true;
        }
    }
    false
}

/// Takes the flags `flags` has ready now, without waiting; false once it has ended.
fn ready_flags<B: BasicFlags>(
    flags: &mut B,
    pending: &mut std::collections::VecDeque<BasicFlag>,
) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        match flags.poll_flag(&mut cx) {
            std::task::Poll::Ready(Some(f)) => pending.push_back(f),
            std::task::Poll::Ready(None) => return false,
            std::task::Poll::Pending => return true,
        }
    }
}

/// Writes `data` to the target connection, opening it first if there is none. A target that
/// refuses drops the data, as the agent does (it would send ConnectToPortError).
async fn deliver<F, Fut>(target: &mut Option<Box<dyn LocalStreamDyn>>, connect: &F, data: &[u8])
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<Box<dyn LocalStreamDyn>>>,
{
    if target.is_none() {
        *target = connect().await.ok();
    }
    if let Some(t) = target.as_mut() {
        if t.write_all(data).await.is_err() {
            *target = None;
        }
    }
}
