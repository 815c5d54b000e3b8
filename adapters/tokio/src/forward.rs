//! Port forwarding over a session's data stream.
//!
//! - **Multiplexed** ([`MuxSession`], [`forward_mux`]): smux v1 ([`ssm_proto::smux`]) over the
//!   session, many TCP (or unix socket) connections at once, each closed with a FIN both ways.
//!   The agent side ([`serve_mux`]) is here too, for the emulator and the tests.
//! - **Basic** ([`forward_basic`]): older agents carry one connection at a time; when it ends the
//!   client sends the DisconnectToPort flag and accepts the next.
//! - **Stream** ([`forward_stream`]): no listener; stdin/stdout are the stream
//!   (`AWS-StartSSHSession` as an SSH `ProxyCommand`): pass
//!   `tokio::io::join(tokio::io::stdin(), tokio::io::stdout())` (tokio feature `io-std`).
//!
//! Everything is generic over the session's byte stream (`AsyncRead + AsyncWrite`), so it runs
//! over a real session, the emulator, or an in-memory pipe in tests.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ssm_proto::smux::{self, Event, Mux, Role, StreamId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant as TokioInstant;

/// Stream slots per session: connections one session carries at once.
pub const MAX_STREAMS: usize = 256;

/// Receive buffer per stream: two of smux's 32 KiB frames. When one fills, the session stops
/// reading (smux v1 has no window; see [`ssm_proto::smux::Mux`]), so this bounds memory at
/// `MAX_STREAMS` × this (16 MiB, allocated zeroed, so pages are only touched as streams use
/// them).
pub const STREAM_BUFFER: usize = 64 * 1024;

/// Bytes read from a local connection per frame batch (smux's own `MaxFrameSize` is 32768).
const LOCAL_READ: usize = 32 * 1024;

type SmuxMux = Mux<Vec<u8>, MAX_STREAMS>;

/// Where to listen locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address; port 0 picks a free port ([`Listener::describe`] tells which).
    Tcp(SocketAddr),
    /// A unix socket path (must not exist yet).
    Unix(PathBuf),
}

/// A bound local listener.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix socket, with its path (removed on drop).
    Unix(UnixListener, PathBuf),
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Listener {
    /// Binds `addr`. A port in use fails at once with a message naming it (the official client
    /// hangs instead).
    ///
    /// # Errors
    /// `AddrInUse` with "address … is already in use", or any other bind error with the address
    /// in its message.
    pub async fn bind(addr: &ListenAddr) -> io::Result<Listener> {
        match addr {
            ListenAddr::Tcp(a) => TcpListener::bind(a).await.map(Listener::Tcp).map_err(|e| {
                if e.kind() == io::ErrorKind::AddrInUse {
                    io::Error::new(e.kind(), format!("address {a} is already in use"))
                } else {
                    io::Error::new(e.kind(), format!("cannot listen on {a}: {e}"))
                }
            }),
            ListenAddr::Unix(p) => match UnixListener::bind(p) {
                Ok(l) => Ok(Listener::Unix(l, p.clone())),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(io::Error::new(
                    e.kind(),
                    format!("unix socket {} already exists", p.display()),
                )),
                Err(e) => Err(io::Error::new(
                    e.kind(),
                    format!("cannot listen on {}: {e}", p.display()),
                )),
            },
        }
    }

    /// The bound TCP address (with the picked port), if TCP.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// "port 41234" or "unix socket /path", for the "… opened" line.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("port {}", a.port()),
                Err(_) => "port ?".into(),
            },
            Listener::Unix(_, p) => format!("unix socket {}", p.display()),
        }
    }

    /// Waits for the next local connection.
    ///
    /// # Errors
    /// As the underlying `accept`.
    pub async fn accept(&self) -> io::Result<Box<dyn LocalStreamDyn>> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok(Box::new(s))
            }
            Listener::Unix(l, _) => Ok(Box::new(l.accept().await?.0)),
        }
    }
}

/// A local connection (TCP, unix socket, or anything bidirectional), boxed.
pub trait LocalStreamDyn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> LocalStreamDyn for T {}

/// Live counters, shared with whoever prints `--stats`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted so far.
    pub connections: std::sync::atomic::AtomicU64,
    /// Connections open now.
    pub active: std::sync::atomic::AtomicU64,
    /// Bytes from local connections to the remote side.
    pub bytes_out: std::sync::atomic::AtomicU64,
    /// Bytes from the remote side to local connections.
    pub bytes_in: std::sync::atomic::AtomicU64,
}

// ---------------------------------------------------------------------------------------------
// Which mode a session uses

/// How a client runs a port session: the engine's choice ([`HandshakeInfo::port_mode`]).
///
/// [`HandshakeInfo::port_mode`]: crate::HandshakeInfo::port_mode
pub use ssm_proto::session::PortMode;
pub use ssm_proto::smux::{multiplexed, version_at_least};

/// Runs a client port session whose handshake is complete, with a listener (modes
/// `Multiplexed` and `Basic`; `Stream` is [`forward_stream`] over stdin/stdout instead).
/// Drains the session's events meanwhile. Returns when the session ends.
///
/// # Errors
/// `InvalidInput` for `PortMode::Stream`; otherwise as [`forward_mux`] / [`forward_basic`].
pub async fn run_port_session(
    session: crate::ClientSession,
    info: &crate::HandshakeInfo,
    listener: Listener,
    stats: Arc<Stats>,
) -> io::Result<()> {
    let mode = info.port_mode()?;
    let (output, _stderr, input, mut events, control, _finished) = session.into_parts();
    let io = tokio::io::join(output, input);
    // Nobody else reads the events; keep them flowing (the channel is unbounded, but a long
    // session would grow it).
    tokio::spawn(async move { while events.next().await.is_some() {} });
    match mode {
        PortMode::Multiplexed => {
            let config = smux::Config::for_agent(&info.agent_version);
            forward_mux(io, config, listener, stats).await
        }
        PortMode::Basic => forward_basic(io, listener, disconnect_flag(control), stats).await,
        PortMode::Stream => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a port session without LocalPortForwarding is a stdin/stdout stream",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The multiplexed session

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

/// The agent side of multiplexed port forwarding (emulator, tests): every stream the client
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

// ---------------------------------------------------------------------------------------------
// Basic mode

/// The client side of basic port forwarding: one local connection at a time, bridged straight
/// onto the session stream; when it ends, `disconnect` sends the DisconnectToPort flag and the
/// next connection is accepted. Data arriving while no connection is open is dropped (the agent
/// has nowhere to put it either).
///
/// # Errors
/// Reading or writing the session failed, or `disconnect` did.
pub async fn forward_basic<T, D>(
    io: T,
    listener: Listener,
    mut disconnect: D,
    stats: Arc<Stats>,
) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
    D: FnMut() -> io::Result<()>,
{
    use std::sync::atomic::Ordering::Relaxed;
    let (mut sr, mut sw) = tokio::io::split(io);
    let mut buf = vec![0u8; LOCAL_READ];
    let mut sbuf = vec![0u8; LOCAL_READ];
    loop {
        // Between connections: drain (and drop) session data, wait for the next one.
        let local = loop {
            tokio::select! {
                c = listener.accept() => match c {
                    Ok(c) => break c,
                    Err(_) => continue,
                },
                r = sr.read(&mut sbuf) => match r? {
                    0 => return Ok(()),
                    _ => continue,
                },
            }
        };
        stats.connections.fetch_add(1, Relaxed);
        stats.active.fetch_add(1, Relaxed);
        let (mut lr, mut lw) = tokio::io::split(local);
        let ended = loop {
            tokio::select! {
                r = lr.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break false,
                    Ok(n) => {
                        sw.write_all(&buf[..n]).await?;
                        sw.flush().await?;
                        stats.bytes_out.fetch_add(n as u64, Relaxed);
                    }
                },
                r = sr.read(&mut sbuf) => match r? {
                    0 => break true,
                    n => {
                        if lw.write_all(&sbuf[..n]).await.is_err() {
                            break false;
                        }
                        stats.bytes_in.fetch_add(n as u64, Relaxed);
                    }
                },
            }
        };
        let _ = lw.shutdown().await;
        if !ended {
            disconnect()?;
        }
        stats.active.fetch_sub(1, Relaxed);
        if ended {
            return Ok(());
        }
    }
}

/// A client flag [`serve_basic`] acts on, at its position in the session's input stream (the
/// number of bytes the client sent before it; see [`crate::SessionEvent::Flag`]).
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

/// The agent side of basic port forwarding (emulator, tests): the session's bytes go to one
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

// ---------------------------------------------------------------------------------------------
// Stream mode (no `LocalPortForwarding`: SSH ProxyCommand)

/// Port session without a local listener: `local` (stdin/stdout joined, for SSH's
/// `ProxyCommand`) is the stream. Copies both ways until both directions end; returns the bytes
/// sent and received.
///
/// # Errors
/// Reading or writing either side failed.
pub async fn forward_stream<T, L>(mut io: T, mut local: L) -> io::Result<(u64, u64)>
where
    T: AsyncRead + AsyncWrite + Unpin,
    L: AsyncRead + AsyncWrite + Unpin,
{
    let (to_local, to_remote) = tokio::io::copy_bidirectional(&mut io, &mut local).await?;
    Ok((to_remote, to_local))
}

/// The `disconnect` callback for [`forward_basic`] over a [`crate::Control`]: sends the
/// DisconnectToPort flag.
pub fn disconnect_flag(control: crate::Control) -> impl FnMut() -> io::Result<()> {
    move || {
        if control.send_flag(u32::from(ssm_proto::payload::Flag::DisconnectToPort)) {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "session ended"))
        }
    }
}

/// Removes a stale unix socket file only if nothing listens on it (a helper for callers that
/// want the official client's reuse behaviour; [`Listener::bind`] itself never deletes).
pub fn remove_stale_socket(path: &Path) -> io::Result<bool> {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Ok(false),
        Err(_) if path.exists() => std::fs::remove_file(path).map(|()| true),
        Err(_) => Ok(false),
    }
}
