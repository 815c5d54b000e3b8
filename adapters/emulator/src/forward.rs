//! The agent side of port forwarding ([`serve_mux`], [`serve_basic`]): what the emulator's
//! agent runs for a port session, and what tests of the client side
//! ([`ssm_tokio::forward`]) run against.

use std::io;
use std::sync::Arc;

use std::task::{Context, Poll};

use ssm_proto::payload::Flag;
use ssm_proto::smux::{self, Role};
use ssm_tokio::forward::{bridge, LocalStreamDyn, MuxSession, Stats};
use ssm_tokio::Part;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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

/// Where [`serve_basic`] reads the client's stream: its bytes and, at their places among them,
/// its flags ([`ssm_tokio::StreamReader`], the agent session's input, is one).
pub trait BasicInput {
    /// Reads bytes into `buf`, or the flag or end that comes next
    /// ([`ssm_tokio::StreamReader::poll_read_part`]).
    ///
    /// # Errors
    /// Reading failed.
    fn poll_read_part(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<Part>>;
}

impl BasicInput for ssm_tokio::StreamReader {
    fn poll_read_part(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<Part>> {
        ssm_tokio::StreamReader::poll_read_part(self, cx, buf)
    }
}

/// How [`serve_basic`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicEnd {
    /// The input ended (the session is over).
    InputEnded,
    /// The client sent TerminateSession.
    Terminated,
}

/// The agent side of basic port forwarding: the client's bytes go to one target connection,
/// opened with `connect` when data first arrives; a DisconnectToPort flag ends it where the
/// flag falls in the stream (bytes before it go to the old connection, bytes after it open a
/// new one), as the agent, which handles the stream in order, does. What the target sends goes
/// to `output`. Data from a target that has closed is not expected; its end is simply waited
/// out. Returns at the input's end or at a TerminateSession.
///
/// # Errors
/// Reading the input or writing `output` failed.
pub async fn serve_basic<I, W, F, Fut>(
    mut input: I,
    mut output: W,
    connect: F,
) -> io::Result<BasicEnd>
where
    I: BasicInput,
    W: AsyncWrite + Unpin,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<Box<dyn LocalStreamDyn>>>,
{
    let mut sbuf = vec![0u8; LOCAL_READ];
    let mut tbuf = vec![0u8; LOCAL_READ];
    let mut target: Option<Box<dyn LocalStreamDyn>> = None;
    loop {
        tokio::select! {
            r = std::future::poll_fn(|cx| input.poll_read_part(cx, &mut sbuf)) => match r? {
                Part::Data(n) => deliver(&mut target, &connect, &sbuf[..n]).await,
                Part::Flag(Flag::DisconnectToPort) => {
                    if let Some(mut t) = target.take() {
                        let _ = t.shutdown().await;
                    }
                }
                Part::Flag(Flag::TerminateSession) => {
                    if let Some(mut t) = target.take() {
                        let _ = t.shutdown().await;
                    }
                    return Ok(BasicEnd::Terminated);
                }
                Part::Flag(_) => {}
                Part::End => return Ok(BasicEnd::InputEnded),
            },
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
                    output.write_all(&tbuf[..n]).await?;
                    output.flush().await?;
                }
            },
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
