//! Multiplexed mode: smux v1 over the session.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use ssm_proto::smux::{self, Event, Mux, Role, StreamId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant as TokioInstant;

use super::{Listener, LocalStreamDyn, Stats, LOCAL_READ, MAX_STREAMS, STREAM_BUFFER};

type SmuxMux = Mux<Vec<u8>, MAX_STREAMS>;

struct State {
    mux: SmuxMux,
    /// One notifier per live stream: data, FIN or release.
    wakers: HashMap<StreamId, Arc<Notify>>,
    accepted: Option<mpsc::UnboundedSender<StreamId>>,
    /// Why the session ended, once it has.
    dead: Option<(io::ErrorKind, String)>,
    epoch: TokioInstant,
}

impl State {
    fn now(&self) -> ssm_proto::Instant {
        ssm_proto::Instant::from_millis(self.epoch.elapsed().as_millis() as u64)
    }

    /// Dispatches every pending event.
    fn drain_events(&mut self) {
        while let Some(ev) = self.mux.poll_event() {
            match ev {
                Event::Opened(id) => {
                    let accepted = self.accepted.as_ref().is_some_and(|tx| tx.send(id).is_ok());
                    if accepted {
                        self.wakers.insert(id, Arc::new(Notify::new()));
                    } else {
                        // A client does not take streams from the agent: refuse with FIN.
                        let _ = self.mux.abort(id);
                    }
                }
                Event::Readable(id) => {
                    if let Some(w) = self.wakers.get(&id) {
                        w.notify_one();
                    }
                }
                Event::Closed(id) => {
                    if let Some(w) = self.wakers.remove(&id) {
                        w.notify_one();
                    }
                }
            }
        }
    }

    fn kill(&mut self, kind: io::ErrorKind, why: String) {
        if self.dead.is_none() {
            self.dead = Some((kind, why));
        }
        for w in self.wakers.values() {
            w.notify_one();
        }
        self.accepted = None;
    }

    fn dead_error(&self) -> Option<io::Error> {
        self.dead
            .as_ref()
            .map(|(k, m)| io::Error::new(*k, m.clone()))
    }
}

struct Shared {
    state: Mutex<State>,
    writer: tokio::sync::Mutex<Box<dyn AsyncWrite + Send + Unpin>>,
    /// A stream buffer got room: input may flow again.
    space: Notify,
    /// Control frames are pending (the flusher task sends them, so the reader never waits for
    /// the writer).
    flush: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug elsewhere; the state itself stays consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Frames `data` for `id` (or only pending control frames when `id` is `None`) and writes it
    /// all to the session. Framing happens under the writer lock, so a stream's SYN, data and
    /// FIN reach the wire in the order they were framed.
    async fn send(&self, id: Option<StreamId>, data: &[u8]) -> io::Result<()> {
        let mut w = self.writer.lock().await;
        let mut out = Vec::with_capacity(data.len() + data.len() / 4096 * 8 + 64);
        {
            let mut st = self.lock();
            if let Some(e) = st.dead_error() {
                return Err(e);
            }
            let mut rest = data;
            let mut frame = vec![0u8; 16 + usize::from(st.mux.config().max_frame_size)];
            if let Some(id) = id {
                while !rest.is_empty() {
                    let wr = st.mux.write(id, rest, &mut frame).map_err(smux_err)?;
                    out.extend_from_slice(&frame[..wr.len]);
                    rest = &rest[wr.consumed..];
                }
            }
            let mut ctl = [0u8; 256];
            while let Some(n) = st
                .mux
                .poll_transmit(&mut ctl)
                .map_err(|_| io::Error::other("smux control frame does not fit 256 bytes"))?
            {
                out.extend_from_slice(&ctl[..n]);
            }
            // A FIN just framed may finish a stream: report its release now, so its slot frees
            // even if no more input ever arrives.
            st.drain_events();
        }
        if out.is_empty() {
            return Ok(());
        }
        w.write_all(&out).await?;
        w.flush().await
    }
}

fn smux_err(e: smux::Error) -> io::Error {
    let kind = match e {
        smux::Error::StreamClosed | smux::Error::UnknownStream => io::ErrorKind::BrokenPipe,
        smux::Error::TooManyStreams | smux::Error::IdsExhausted => io::ErrorKind::ResourceBusy,
        _ if e.is_peer_fault() => io::ErrorKind::InvalidData,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.as_str())
}

/// An smux session over a session's byte stream. Cheap to clone; the driver runs as a task.
#[derive(Clone)]
pub struct MuxSession {
    shared: Arc<Shared>,
}

/// One multiplexed stream.
pub struct MuxStream {
    shared: Arc<Shared>,
    id: StreamId,
    waker: Arc<Notify>,
}

impl MuxSession {
    /// Starts the driver on `io` (the session's data stream) and returns the handle, the
    /// driver's join handle (it ends with the session: `Ok` on a clean end of input), and, for
    /// [`Role::Server`], the receiver of streams the peer opens.
    pub fn start<T>(
        io: T,
        role: Role,
        config: smux::Config,
    ) -> (
        MuxSession,
        tokio::task::JoinHandle<io::Result<()>>,
        mpsc::UnboundedReceiver<MuxStream>,
    )
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(io);
        let epoch = TokioInstant::now();
        let (acc_tx, mut acc_rx) = mpsc::unbounded_channel();
        let state = State {
            mux: Mux::new(
                config,
                role,
                ssm_proto::Instant::ZERO,
                vec![0u8; MAX_STREAMS * STREAM_BUFFER],
            ),
            wakers: HashMap::new(),
            accepted: (role == Role::Server).then_some(acc_tx),
            dead: None,
            epoch,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            writer: tokio::sync::Mutex::new(Box::new(writer)),
            space: Notify::new(),
            flush: Notify::new(),
        });
        let s3 = shared.clone();
        tokio::spawn(async move {
            loop {
                s3.flush.notified().await;
                if s3.send(None, &[]).await.is_err() {
                    return;
                }
            }
        });
        let session = MuxSession {
            shared: shared.clone(),
        };
        // Turn accepted ids into streams.
        let (stream_tx, stream_rx) = mpsc::unbounded_channel();
        let s2 = shared.clone();
        tokio::spawn(async move {
            while let Some(id) = acc_rx.recv().await {
                let waker = s2.lock().wakers.get(&id).cloned();
                if let Some(waker) = waker {
                    let st = MuxStream {
                        shared: s2.clone(),
                        id,
                        waker,
                    };
                    if stream_tx.send(st).is_err() {
                        return;
                    }
                }
            }
        });
        let driver = tokio::spawn(drive(shared, reader));
        (session, driver, stream_rx)
    }

    /// Opens a stream (its SYN goes out at once).
    ///
    /// # Errors
    /// The session ended, or every slot is in use.
    pub async fn open(&self) -> io::Result<MuxStream> {
        let (id, waker) = {
            let mut st = self.shared.lock();
            if let Some(e) = st.dead_error() {
                return Err(e);
            }
            let id = st.mux.open().map_err(smux_err)?;
            let waker = Arc::new(Notify::new());
            st.wakers.insert(id, waker.clone());
            (id, waker)
        };
        self.shared.send(None, &[]).await?;
        Ok(MuxStream {
            shared: self.shared.clone(),
            id,
            waker,
        })
    }

    /// Streams open now.
    pub fn stream_count(&self) -> usize {
        self.shared.lock().wakers.len()
    }
}

/// Reads the session, feeds the mux, wakes streams; runs keep-alive.
async fn drive(
    shared: Arc<Shared>,
    reader: tokio::io::ReadHalf<impl AsyncRead + AsyncWrite + Send>,
) -> io::Result<()> {
    let r = drive_inner(&shared, reader).await;
    if r.is_err() {
        shared
            .lock()
            .kill(io::ErrorKind::Other, "session failed".into());
    }
    // Lets the flusher task see the end and exit.
    shared.flush.notify_one();
    r
}

async fn drive_inner(
    shared: &Shared,
    mut reader: tokio::io::ReadHalf<impl AsyncRead + AsyncWrite + Send>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut lo, mut hi) = (0usize, 0usize);
    loop {
        // Feed what we have; stop when a stream buffer is full.
        let (blocked, timeout) = {
            let mut st = shared.lock();
            let now = st.now();
            let mut err = None;
            if lo < hi {
                match st.mux.handle_input(now, &buf[lo..hi]) {
                    Ok(n) => lo += n,
                    Err(e) => err = Some(e),
                }
            }
            if let Some(e) = err {
                let msg = format!("smux: {e}");
                st.kill(io::ErrorKind::InvalidData, msg.clone());
                return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
            }
            st.drain_events();
            let timeout = st
                .mux
                .poll_timeout()
                .map(|t| st.epoch + std::time::Duration::from_millis(t.total_millis()));
            (lo < hi, timeout)
        };
        shared.flush.notify_one();
        let sleep = async {
            match timeout {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        if blocked {
            tokio::select! {
                _ = shared.space.notified() => {}
                _ = sleep => on_timeout(shared)?,
            }
            continue;
        }
        tokio::select! {
            r = reader.read(&mut buf) => match r {
                Ok(0) => {
                    shared.lock().kill(io::ErrorKind::UnexpectedEof, "session ended".into());
                    return Ok(());
                }
                Ok(n) => (lo, hi) = (0, n),
                Err(e) => {
                    shared.lock().kill(e.kind(), format!("session read failed: {e}"));
                    return Err(e);
                }
            },
            _ = sleep => on_timeout(shared)?,
        }
    }
}

fn on_timeout(shared: &Shared) -> io::Result<()> {
    let mut st = shared.lock();
    let now = st.now();
    if let Err(e) = st.mux.handle_timeout(now) {
        let msg = format!("smux: {e}");
        st.kill(io::ErrorKind::TimedOut, msg.clone());
        return Err(io::Error::new(io::ErrorKind::TimedOut, msg));
    }
    Ok(())
}

impl MuxStream {
    /// The smux stream id.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Reads data: `Ok(0)` at the end of the stream (the peer's FIN).
    ///
    /// # Errors
    /// The session failed.
    pub async fn read(&self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let notified = self.waker.notified();
            {
                let mut st = self.shared.lock();
                match st.mux.read(self.id, out) {
                    Ok(Some(n)) => {
                        drop(st);
                        self.shared.space.notify_one();
                        return Ok(n);
                    }
                    Ok(None) => {
                        st.drain_events();
                        return Ok(0);
                    }
                    Err(smux::Error::Blocked) => {}
                    // Released (aborted or finished) streams read as ended.
                    Err(smux::Error::UnknownStream) => return Ok(0),
                    Err(e) => return Err(st.dead_error().unwrap_or_else(|| smux_err(e))),
                }
                if let Some(e) = st.dead_error() {
                    return Err(e);
                }
            }
            notified.await;
        }
    }

    /// Writes all of `data`.
    ///
    /// # Errors
    /// The session failed, or the stream is closed.
    pub async fn write_all(&self, data: &[u8]) -> io::Result<()> {
        self.shared.send(Some(self.id), data).await
    }

    /// Sends FIN: no more writes; reading goes on until the peer's FIN.
    ///
    /// # Errors
    /// The session failed.
    pub async fn shutdown(&self) -> io::Result<()> {
        match self.shared.lock().mux.close(self.id) {
            Ok(()) | Err(smux::Error::UnknownStream) => {}
            Err(e) => return Err(smux_err(e)),
        }
        self.shared.send(None, &[]).await
    }

    /// Drops the stream at once (FIN if not yet sent; further data discarded).
    pub async fn abort(&self) {
        let _ = self.shared.lock().mux.abort(self.id);
        self.shared.space.notify_one();
        let _ = self.shared.send(None, &[]).await;
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        // Released streams answer UnknownStream: nothing to do then.
        if self.shared.lock().mux.abort(self.id).is_ok() {
            self.shared.space.notify_one();
            self.shared.flush.notify_one();
        }
    }
}

/// Copies both ways between a local connection and a stream until both directions end; FIN
/// goes to the peer when the local side stops sending, and the local write side shuts down at
/// the peer's FIN.
pub async fn bridge(stream: MuxStream, local: Box<dyn LocalStreamDyn>, stats: Arc<Stats>) {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut lr, mut lw) = tokio::io::split(local);
    let up = async {
        let mut buf = vec![0u8; LOCAL_READ];
        loop {
            match lr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return false;
                    }
                    stats.bytes_out.fetch_add(n as u64, Relaxed);
                }
            }
        }
        stream.shutdown().await.is_ok()
    };
    let down = async {
        let mut buf = vec![0u8; LOCAL_READ];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => {
                    let _ = lw.shutdown().await;
                    return true;
                }
                Ok(n) => {
                    if lw.write_all(&buf[..n]).await.is_err() {
                        return false;
                    }
                    stats.bytes_in.fetch_add(n as u64, Relaxed);
                }
                Err(_) => return false,
            }
        }
    };
    let (a, b) = tokio::join!(up, down);
    if !(a && b) {
        stream.abort().await;
    }
}

/// The client side of multiplexed port forwarding: every local connection becomes a stream.
/// Runs until the session ends.
///
/// # Errors
/// The session's end reason, if not a clean end of input.
pub async fn forward_mux<T>(
    io: T,
    config: smux::Config,
    listener: Listener,
    stats: Arc<Stats>,
) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    use std::sync::atomic::Ordering::Relaxed;
    let (session, mut driver, _) = MuxSession::start(io, Role::Client, config);
    loop {
        tokio::select! {
            r = &mut driver => return r.unwrap_or_else(|e| Err(io::Error::other(e))),
            c = listener.accept() => {
                let local = match c {
                    Ok(c) => c,
                    Err(_) => continue,
                };
                stats.connections.fetch_add(1, Relaxed);
                let stream = match session.open().await {
                    Ok(s) => s,
                    Err(_) => continue, // the local connection drops: no slot
                };
                let stats = stats.clone();
                stats.active.fetch_add(1, Relaxed);
                tokio::spawn(async move {
                    bridge(stream, local, stats.clone()).await;
                    stats.active.fetch_sub(1, Relaxed);
                });
            }
        }
    }
}
