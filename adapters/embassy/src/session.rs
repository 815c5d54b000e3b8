//! The session: a small `Copy` handle for the application and a [`Runner`] that drives the engine.
//!
//! ```text
//!  application ── Session (Copy) ──► engine (RefCell in Resources) ◄── Runner task
//!        read / write / resize / events        │ poll_transmit          │ reader: TLS/TCP bytes
//!                                              ▼                        │ writer: WebSocket frames
//!                                        WebSocket framing ──────────────┘ timer: poll_timeout
//! ```

use core::cell::RefCell;
use core::future::poll_fn;
use core::task::Poll;

use embassy_futures::select::{select, Either};
use embassy_sync::waitqueue::WakerRegistration;
use embassy_time::Timer;
use embedded_io_async::{ErrorType, Read, Write};
use ssm_proto::model::StartSessionResponse;
use ssm_proto::session::{
    self as engine, CloseReason, Event, Incoming, SplitMix64, Stream, TransmitKind,
};
use ssm_proto::ws::{self, handshake, MessageKind, Role, WebSocket};

use crate::error::{io, Error};

/// Bytes of outgoing payload kept until acknowledged (the engine's `SEND`): 16 KiB bounds the
/// window on a device; on a 100 ms path that is still 160 KB/s, above what the agent paces to
/// over a slow link. The host adapter uses 256 KiB.
pub const SEND: usize = 16 * 1024;
/// Outgoing messages in flight: `SEND` / 1024-byte chunks, doubled for small writes.
pub const UNACKED: usize = 32;
/// Incoming messages held out of order (1 KiB each).
pub const REORDER: usize = 8;
/// Delivered bytes waiting for [`Session::read`].
pub const RECV: usize = 4096;
/// Acknowledgements and control frames waiting to go out.
pub const TXQ: usize = 16;

/// The engine this crate runs: `ssm_proto::session::Session` with device-sized capacities.
pub type Engine = engine::Session<SEND, UNACKED, REORDER, RECV, TXQ>;

/// WebSocket frame header room reserved in the transmit buffer.
const WS_HEADER: usize = ws::frame::MAX_HEADER_LEN;

/// Where and how to open the data channel, and the engine's configuration.
#[derive(Clone, Copy)]
pub struct Config<'a> {
    /// StreamUrl host (sent as `Host`).
    pub host: &'a str,
    /// StreamUrl port.
    pub port: u16,
    /// `wss` (the transport is TLS) rather than `ws`.
    pub tls: bool,
    /// StreamUrl path and query, as given (opaque).
    pub path_and_query: &'a str,
    /// The session token (`TokenValue`). Sent once in OpenDataChannelInput; never logged.
    pub token: &'a str,
    /// Extra upgrade headers (e.g. SigV4 `Authorization`, `X-Amz-Date`).
    pub headers: &'a [(&'a str, &'a str)],
    /// The engine's configuration (client role). Its `seed` is replaced by `new`'s.
    pub session: engine::Config<'a>,
}

impl<'a> Config<'a> {
    /// The configuration for a StartSession (or ResumeSession) response, with engine defaults.
    pub fn from_response(response: &StartSessionResponse<'a>) -> Self {
        let url = response.stream_url();
        Config {
            host: url.host(),
            port: url.port(),
            tls: matches!(url.scheme(), ssm_proto::model::Scheme::Wss),
            path_and_query: url.path_and_query(),
            token: response.token().expose_secret(),
            headers: &[],
            session: engine::Config::client(0),
        }
    }
}

impl core::fmt::Debug for Config<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("path_and_query", &self.path_and_query)
            .field("token", &"<redacted>")
            .field("headers", &self.headers.len())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    engine: Engine,
    reader: WakerRegistration,
    writer: WakerRegistration,
    events: WakerRegistration,
    runner: WakerRegistration,
    /// A handle call changed the engine: the runner must poll it.
    dirty: bool,
    /// The runner stopped with this error.
    failed: Option<Error>,
    /// Where the session cipher's nonces start (see [`Session::set_data_key`]).
    #[cfg(feature = "kms")]
    nonce_start: [u8; ssm_proto::kms::NONCE_LEN],
}

impl Inner {
    fn wake_handles(&mut self) {
        self.reader.wake();
        self.writer.wake();
        self.events.wake();
    }

    fn poke_runner(&mut self) {
        self.dirty = true;
        self.runner.wake();
    }

    /// Whether nothing more will come: the engine closed or the runner stopped.
    fn ended(&self) -> bool {
        self.engine.is_closed() || self.failed.is_some()
    }
}

type Shared = RefCell<Option<Inner>>;

fn with<R>(shared: &Shared, f: impl FnOnce(&mut Inner) -> R) -> R {
    let mut g = shared.borrow_mut();
    match g.as_mut() {
        Some(inner) => f(inner),
        // `Session` and `Runner` exist only after `new` filled this in.
        None => unreachable!("ssm-embassy: resources used before new()"),
    }
}

pub(crate) fn now() -> ssm_proto::Instant {
    ssm_proto::Instant::from_millis(embassy_time::Instant::now().as_millis())
}

/// Caller-owned memory for one session: the engine, the WebSocket reassembly buffer and the IO
/// buffers. Put it in a `static` (`StaticCell`) on a device.
///
/// - `RX`: bytes read from the transport at once (any size works; 1–2 KiB is typical).
/// - `MSG`: the largest WebSocket message accepted (a frame: 120 + up to 1024 bytes of agent
///   output, or a handshake request with its properties, at most about 3 KiB).
/// - `TX`: one outgoing WebSocket message with its frame header: OpenDataChannelInput carries the
///   token (the engine takes up to 2 KiB, so about 2.4 KiB in all), data frames 120 + 1024 bytes.
///   A message that does not fit ends the runner with [`Error::BufferTooSmall`].
pub struct Resources<const RX: usize = 2048, const MSG: usize = 4096, const TX: usize = 4096> {
    shared: Shared,
    ws: RefCell<WebSocket<MSG>>,
    rx: [u8; RX],
    frame: [u8; TX],
    out: [u8; TX],
}

impl<const RX: usize, const MSG: usize, const TX: usize> Resources<RX, MSG, TX> {
    /// Empty resources.
    pub const fn new() -> Self {
        Resources {
            shared: RefCell::new(None),
            ws: RefCell::new(WebSocket::new(Role::Client)),
            rx: [0; RX],
            frame: [0; TX],
            out: [0; TX],
        }
    }
}

impl<const RX: usize, const MSG: usize, const TX: usize> Default for Resources<RX, MSG, TX> {
    fn default() -> Self {
        Self::new()
    }
}

/// Creates a session over `transport` (a read half and a write half of a connected stream,
/// plain TCP or TLS). Nothing happens until the [`Runner`] runs: it sends the WebSocket upgrade,
/// then OpenDataChannelInput, then drives the engine.
///
/// `seed` seeds the engine's message ids and the WebSocket key and masks: take it from a hardware
/// RNG (masks must be unpredictable to the network, RFC 6455 §10.3). With the `kms` feature it
/// also gives the session cipher's nonce start (see `Session::set_data_key`).
pub fn new<'d, R, W, const RX: usize, const MSG: usize, const TX: usize>(
    transport: (R, W),
    config: Config<'d>,
    resources: &'d mut Resources<RX, MSG, TX>,
    seed: u64,
) -> (Session<'d>, Runner<'d, R, W, MSG>)
where
    R: Read,
    W: Write,
{
    let Resources {
        shared,
        ws,
        rx,
        frame,
        out,
    } = resources;
    let mut session_config = config.session;
    session_config.seed = seed;
    *shared.get_mut() = Some(Inner {
        engine: Engine::new(session_config, now()),
        reader: WakerRegistration::new(),
        writer: WakerRegistration::new(),
        events: WakerRegistration::new(),
        runner: WakerRegistration::new(),
        dirty: false,
        failed: None,
        #[cfg(feature = "kms")]
        nonce_start: nonce_start(seed),
    });
    *ws.get_mut() = WebSocket::new(Role::Client);
    let shared: &'d Shared = shared;
    let tx_payload = TX.saturating_sub(WS_HEADER);
    (
        Session { shared },
        Runner {
            shared,
            ws,
            reader: transport.0,
            writer: transport.1,
            rx,
            frame: &mut frame[..tx_payload],
            out,
            config,
            rng: SplitMix64::new(seed ^ 0x5753_4b45_595f_4d41),
        },
    )
}

/// The KMS nonce start, from `seed` through its own generator (not the masks' stream). GCM
/// needs nonces unique under one key; the data key is fresh for every session, so uniqueness
/// within the session (the cipher counts up from here) is what matters, not secrecy.
#[cfg(feature = "kms")]
fn nonce_start(seed: u64) -> [u8; ssm_proto::kms::NONCE_LEN] {
    let mut rng = SplitMix64::new(seed ^ 0x4b4d_535f_4e4f_4e43);
    let mut n = [0u8; ssm_proto::kms::NONCE_LEN];
    n[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    n[8..].copy_from_slice(&rng.next_u32().to_le_bytes());
    n
}

/// A WebSocket mask from the session's generator.
fn mask(rng: &mut SplitMix64) -> [u8; 4] {
    rng.next_u32().to_le_bytes()
}

/// Drives one session: spawn [`Runner::run`] as a task (or `join` it with your code).
pub struct Runner<'d, R, W, const MSG: usize> {
    shared: &'d Shared,
    ws: &'d RefCell<WebSocket<MSG>>,
    reader: R,
    writer: W,
    rx: &'d mut [u8],
    frame: &'d mut [u8],
    out: &'d mut [u8],
    config: Config<'d>,
    rng: SplitMix64,
}

impl<'d, R: Read, W: Write, const MSG: usize> Runner<'d, R, W, MSG> {
    /// Runs the session to its end: upgrade, OpenDataChannelInput, then data both ways, acks,
    /// retransmissions and timers, until the engine closes (returns why) or the transport fails.
    ///
    /// Reads from the transport are never cancelled (a TLS record reader loses bytes when its
    /// read is dropped): reading and writing run side by side on the two halves.
    ///
    /// # Errors
    /// The transport's error, [`Error::TransportClosed`] when it ends first (the service closes
    /// the WebSocket about every 60 minutes: [`Runner::run_resuming`] reconnects through
    /// ResumeSession instead), a WebSocket protocol error, or a buffer too small.
    pub async fn run(mut self) -> Result<CloseReason, Error> {
        let (mut link, reader, writer, config) = self.link();
        let result = link.drive(reader, writer, &config).await;
        finish(self.shared, result)
    }

    /// The runner's parts: what every connection of the session uses, the first
    /// connection's halves, and its configuration.
    pub(crate) fn link(&mut self) -> (Link<'_, 'd, MSG>, &mut R, &mut W, Config<'d>) {
        let Runner {
            shared,
            ws,
            reader,
            writer,
            rx,
            frame,
            out,
            config,
            rng,
        } = self;
        let link = Link {
            shared,
            ws,
            rx,
            frame,
            out,
            rng,
        };
        (link, reader, writer, *config)
    }
}

/// Records how the runner ended and wakes the handles.
pub(crate) fn finish(
    shared: &Shared,
    result: Result<CloseReason, Error>,
) -> Result<CloseReason, Error> {
    with(shared, |inner| {
        if let Err(e) = result {
            inner.failed = Some(e);
            inner.engine.handle_transport_closed(now());
        }
        inner.wake_handles();
    });
    result
}

/// What one connection of the session runs on: the engine and WebSocket state (kept across
/// connections) and the IO buffers.
pub(crate) struct Link<'a, 'd, const MSG: usize> {
    pub(crate) shared: &'d Shared,
    pub(crate) ws: &'d RefCell<WebSocket<MSG>>,
    rx: &'a mut [u8],
    frame: &'a mut [u8],
    out: &'a mut [u8],
    rng: &'a mut SplitMix64,
}

impl<const MSG: usize> Link<'_, '_, MSG> {
    /// Runs `f` on the engine.
    pub(crate) fn engine<T>(&self, f: impl FnOnce(&mut Engine) -> T) -> T {
        with(self.shared, |inner| f(&mut inner.engine))
    }

    /// One connection: upgrade, OpenDataChannelInput, then data both ways until the engine
    /// closes (why) or the connection fails.
    pub(crate) async fn drive<R: Read, W: Write>(
        &mut self,
        reader: &mut R,
        writer: &mut W,
        config: &Config<'_>,
    ) -> Result<CloseReason, Error> {
        *self.ws.borrow_mut() = WebSocket::new(Role::Client);
        let (start, end) = self.upgrade(reader, writer, config).await?;
        let token = config.token;
        with(self.shared, |inner| {
            inner
                .engine
                .handle_connected(now(), token)
                .map_err(|_| Error::TokenTooLong)
        })?;
        debug!("ssm: websocket open, open data channel queued");
        let reading = read_loop(self.shared, self.ws, reader, self.rx, start, end);
        let writing = write_loop(self.shared, self.ws, writer, self.frame, self.out, self.rng);
        match select(reading, writing).await {
            Either::First(r) | Either::Second(r) => r,
        }
    }

    /// Sends the upgrade request and reads the answer into `rx`. Returns the range of `rx` that
    /// holds bytes after the answer (WebSocket frames that arrived with it).
    async fn upgrade<R: Read, W: Write>(
        &mut self,
        reader: &mut R,
        writer: &mut W,
        config: &Config<'_>,
    ) -> Result<(usize, usize), Error> {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        key[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        let request = handshake::ClientRequest {
            host: config.host,
            port: config.port,
            tls: config.tls,
            path_and_query: config.path_and_query,
            key,
            headers: config.headers,
        };
        let n = request.write(self.out).map_err(|_| Error::BufferTooSmall)?;
        writer.write_all(&self.out[..n]).await.map_err(io)?;
        writer.flush().await.map_err(io)?;
        let key = request.key_base64();
        let mut filled = 0;
        loop {
            if filled == self.rx.len() {
                return Err(Error::UpgradeTooLarge);
            }
            let n = reader.read(&mut self.rx[filled..]).await.map_err(io)?;
            if n == 0 {
                return Err(Error::TransportClosed);
            }
            filled += n;
            match handshake::parse_response(&self.rx[..filled], &key)? {
                ws::Status::Complete(head) => return Ok((head, filled)),
                ws::Status::Partial => {}
            }
        }
    }
}

async fn read_loop<R: Read, const MSG: usize>(
    shared: &Shared,
    ws: &RefCell<WebSocket<MSG>>,
    reader: &mut R,
    rx: &mut [u8],
    mut start: usize,
    mut end: usize,
) -> Result<CloseReason, Error> {
    loop {
        if start == end {
            // A peer that drops the connection right after closing the channel is not an
            // error: the session had ended.
            let n = match reader.read(rx).await {
                Ok(0) => Err(Error::TransportClosed),
                Ok(n) => Ok(n),
                Err(e) => Err(io(e)),
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    return with(shared, |inner| {
                        inner.poke_runner();
                        inner.wake_handles();
                        inner.engine.close_reason().ok_or(e)
                    })
                }
            };
            start = 0;
            end = n;
        }
        let now = now();
        let (result, ws_ended) = {
            let mut ws = ws.borrow_mut();
            let result = with(shared, |inner| {
                let r = feed(&mut ws, &mut inner.engine, now, &rx[start..end]);
                inner.poke_runner();
                inner.wake_handles();
                r
            });
            (
                result,
                matches!(ws.state(), ws::State::Closed | ws::State::Failed),
            )
        };
        start = end;
        if ws_ended {
            return with(shared, |inner| {
                inner.engine.handle_transport_closed(now);
                inner.engine.close_reason().ok_or(Error::TransportClosed)
            });
        }
        result?;
        // Let the application read before more input arrives: the engine holds only `RECV`
        // delivered bytes and drops (unacknowledged, so the agent resends) what does not fit.
        embassy_futures::yield_now().await;
    }
}

/// Feeds received bytes to the WebSocket and every whole message to the engine.
fn feed<const MSG: usize>(
    ws: &mut WebSocket<MSG>,
    engine: &mut Engine,
    now: ssm_proto::Instant,
    mut data: &[u8],
) -> Result<(), Error> {
    while !data.is_empty() {
        let used = ws.handle_input(data)?;
        data = &data[used..];
        match ws.poll_message() {
            Some(msg) => {
                let input = match msg.kind {
                    MessageKind::Text => Incoming::Text(msg.data),
                    MessageKind::Binary => Incoming::Binary(msg.data),
                };
                // Non-fatal errors drop one message (counted in the engine's stats); fatal
                // ones close the engine, which the write loop then sees.
                if let Err(e) = engine.handle_input(now, input) {
                    debug!("ssm: input dropped: {}", e.as_str());
                }
            }
            // Took nothing and holds no message: it ignores input (closed).
            None if used == 0 => break,
            None => {}
        }
    }
    Ok(())
}

/// A transport error after the session closed is the peer hanging up, not a failure.
fn closed_or(shared: &Shared, e: Error) -> Result<CloseReason, Error> {
    with(shared, |inner| inner.engine.close_reason().ok_or(e))
}

async fn write_loop<W: Write, const MSG: usize>(
    shared: &Shared,
    ws: &RefCell<WebSocket<MSG>>,
    writer: &mut W,
    frame: &mut [u8],
    out: &mut [u8],
    rng: &mut SplitMix64,
) -> Result<CloseReason, Error> {
    loop {
        with(shared, |inner| inner.dirty = false);
        let now = now();
        loop {
            let next = with(shared, |inner| {
                let mut ws = ws.borrow_mut();
                if inner.engine.poll_timeout().is_some_and(|t| t <= now) {
                    inner.engine.handle_timeout(now);
                }
                let n = match inner
                    .engine
                    .poll_transmit(now, frame)
                    .map_err(|_| Error::BufferTooSmall)?
                {
                    Some(t) => {
                        let kind = match t.kind {
                            TransmitKind::Text => MessageKind::Text,
                            TransmitKind::Binary => MessageKind::Binary,
                        };
                        Some(ws.write_message(out, kind, &frame[..t.len], || mask(rng))?)
                    }
                    None => ws
                        .poll_transmit(out, || mask(rng))
                        .map_err(|_| Error::BufferTooSmall)?,
                };
                Ok::<_, Error>(n)
            })?;
            match next {
                Some(n) => {
                    if let Err(e) = writer.write_all(&out[..n]).await {
                        return closed_or(shared, io(e));
                    }
                }
                None => break,
            }
        }
        if let Err(e) = writer.flush().await {
            return closed_or(shared, io(e));
        }

        let (deadline, closed) = with(shared, |inner| {
            inner.wake_handles();
            (inner.engine.poll_timeout(), inner.engine.close_reason())
        });
        if let Some(reason) = closed {
            debug!("ssm: session closed: {}", reason.as_str());
            let n = {
                let mut ws = ws.borrow_mut();
                let _ = ws.close(ws::close_code::NORMAL, "");
                ws.poll_transmit(out, || mask(rng))
                    .map_err(|_| Error::BufferTooSmall)?
            };
            if let Some(n) = n {
                // The peer may already have hung up; the session is over either way.
                if writer.write_all(&out[..n]).await.is_ok() {
                    let _ = writer.flush().await;
                }
            }
            return Ok(reason);
        }

        let poked = poll_fn(|cx| {
            with(shared, |inner| {
                if inner.dirty {
                    Poll::Ready(())
                } else {
                    inner.runner.register(cx.waker());
                    Poll::Pending
                }
            })
        });
        match deadline {
            Some(t) => {
                let at = embassy_time::Instant::from_millis(t.total_millis());
                let _ = select(Timer::at(at), poked).await;
            }
            None => poked.await,
        }
    }
}

/// The application's handle on a session: `Copy`, cheap, usable from any task on the same
/// executor. Implements [`embedded_io_async::Read`] (the remote's output and standard error,
/// merged; see [`Session::read_stream`]) and [`embedded_io_async::Write`] (stdin).
#[derive(Clone, Copy)]
pub struct Session<'d> {
    shared: &'d Shared,
}

impl core::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Session")
    }
}

/// A non-blocking call could not proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TryError {
    /// Nothing to read, or no room to write, now.
    WouldBlock,
    /// The session ended (its error, or [`Error::Closed`]).
    Failed(Error),
}

impl<'d> Session<'d> {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        with(self.shared, f)
    }

    /// Reads delivered bytes and says which stream they came from, without waiting. `Ok(None)`
    /// at the end of the session.
    ///
    /// # Errors
    /// [`TryError::WouldBlock`] when nothing is buffered; [`TryError::Failed`] when the runner
    /// stopped with an error.
    pub fn try_read_stream(&self, buf: &mut [u8]) -> Result<Option<(Stream, usize)>, TryError> {
        self.with(|inner| {
            if buf.is_empty() {
                return Ok(Some((Stream::Output, 0)));
            }
            if let Some(r) = inner.engine.read(buf) {
                // Reading frees room: acknowledgements held for it may now go out.
                inner.poke_runner();
                return Ok(Some(r));
            }
            match inner.failed {
                Some(e) => Err(TryError::Failed(e)),
                None if inner.engine.is_closed() => Ok(None),
                None => Err(TryError::WouldBlock),
            }
        })
    }

    /// Waits for delivered bytes and says which stream they came from. `None` at the end of
    /// the session.
    ///
    /// # Errors
    /// The runner's error, if it stopped with one.
    pub async fn read_stream(&self, buf: &mut [u8]) -> Result<Option<(Stream, usize)>, Error> {
        poll_fn(|cx| match self.try_read_stream(buf) {
            Ok(r) => Poll::Ready(Ok(r)),
            Err(TryError::Failed(e)) => Poll::Ready(Err(e)),
            Err(TryError::WouldBlock) => {
                self.with(|inner| inner.reader.register(cx.waker()));
                Poll::Pending
            }
        })
        .await
    }

    /// Like [`Read::read`], without waiting.
    ///
    /// # Errors
    /// As [`Session::try_read_stream`].
    pub fn try_read(&self, buf: &mut [u8]) -> Result<usize, TryError> {
        Ok(self.try_read_stream(buf)?.map_or(0, |(_, n)| n))
    }

    /// Queues stdin bytes without waiting; returns how many were taken.
    ///
    /// # Errors
    /// [`TryError::WouldBlock`] when the window is full or the handshake is not done;
    /// [`TryError::Failed`] once the session is closing or ended.
    pub fn try_write(&self, buf: &[u8]) -> Result<usize, TryError> {
        self.with(|inner| {
            if let Some(e) = inner.failed {
                return Err(TryError::Failed(e));
            }
            match inner.engine.write(now(), buf) {
                Ok(n) => {
                    inner.poke_runner();
                    Ok(n)
                }
                Err(engine::WriteError::Blocked) => Err(TryError::WouldBlock),
                Err(_) => Err(TryError::Failed(Error::Closed)),
            }
        })
    }

    /// Whether every byte written so far is acknowledged by the agent, without waiting.
    ///
    /// # Errors
    /// [`TryError::WouldBlock`] while bytes are unacknowledged; [`TryError::Failed`] when the
    /// runner stopped with an error.
    pub fn try_flush(&self) -> Result<(), TryError> {
        self.with(|inner| {
            if let Some(e) = inner.failed {
                return Err(TryError::Failed(e));
            }
            if inner.engine.unacked_bytes() == 0 || inner.engine.is_closed() {
                Ok(())
            } else {
                Err(TryError::WouldBlock)
            }
        })
    }

    /// Sends the terminal size (now and on every change).
    pub fn resize(&self, cols: u32, rows: u32) {
        self.with(|inner| {
            inner.engine.resize(cols, rows);
            inner.poke_runner();
        });
    }

    /// Asks the agent to end the session (the TerminateSession flag); the session closes with
    /// [`CloseReason::Terminated`] once the agent acknowledges.
    pub fn terminate(&self) {
        self.with(|inner| {
            inner.engine.terminate(now());
            inner.poke_runner();
        });
    }

    /// Closes in order: once everything written is acknowledged, the session closes with
    /// [`CloseReason::Local`].
    pub fn close(&self) {
        self.with(|inner| {
            inner.engine.close(now());
            inner.poke_runner();
        });
    }

    /// Gives the wall clock (Unix epoch milliseconds now), for the frames' CreatedDate. Without
    /// it, frames carry milliseconds since boot.
    pub fn set_unix_time(&self, unix_ms: u64) {
        self.with(|inner| inner.engine.set_unix_time(now(), unix_ms));
    }

    /// The next event, without waiting.
    pub fn try_event(&self) -> Option<Event> {
        self.with(|inner| inner.engine.poll_event())
    }

    /// Waits for the next event. After [`Event::Closed`], or when the runner stopped with an
    /// error, returns `None`.
    pub async fn next_event(&self) -> Option<Event> {
        poll_fn(|cx| {
            self.with(|inner| {
                if let Some(e) = inner.engine.poll_event() {
                    return Poll::Ready(Some(e));
                }
                if inner.ended() {
                    return Poll::Ready(None);
                }
                inner.events.register(cx.waker());
                Poll::Pending
            })
        })
        .await
    }

    /// After [`Event::DataKeyNeeded`] (the `kms` feature, with `Config::session.encryption` set
    /// to `Encryption::Kms`): runs `f` with what to ask KMS `GenerateDataKey` for: the key id,
    /// the number of bytes (64) and the exact encryption context (session id, target id and the
    /// agent's challenge). `session_id` is the StartSession response's `SessionId`, `target_id`
    /// the instance id the application started the session on. `f` copies out what its request
    /// needs; it must not call the handle (the engine is borrowed meanwhile). `None` when no key
    /// is awaited.
    ///
    /// The application gets the key by its own means (KMS over its HTTPS client, or a broker)
    /// and answers with [`set_data_key`](Self::set_data_key) or
    /// [`refuse_data_key`](Self::refuse_data_key); until then the handshake waits (up to the
    /// engine's handshake timeout).
    #[cfg(feature = "kms")]
    pub fn data_key_request<T>(
        &self,
        session_id: &str,
        target_id: &str,
        f: impl FnOnce(&ssm_proto::kms::DataKeyRequest<'_>) -> T,
    ) -> Option<T> {
        self.with(|inner| {
            inner
                .engine
                .data_key_request(session_id, target_id)
                .map(|r| f(&r))
        })
    }

    /// KMS `GenerateDataKey` answered: `plaintext` (its 64 bytes) and `ciphertext_blob`. The
    /// runner sends the HandshakeResponse. The engine keeps only the two AES keys derived from
    /// `plaintext`, wiped when the session drops; zeroize your copy once this returns. Nonces
    /// start from a value derived from `new`'s seed.
    ///
    /// # Errors
    /// [`ssm_proto::kms::Error::Unexpected`] when no key is awaited (or the session closed),
    /// `DataKeyLength` / `BlobLength` for an unusable answer; the session then waits on (call
    /// again or refuse).
    #[cfg(feature = "kms")]
    pub fn set_data_key(
        &self,
        plaintext: &[u8],
        ciphertext_blob: &[u8],
    ) -> Result<(), ssm_proto::kms::Error> {
        self.with(|inner| {
            let nonce_start = inner.nonce_start;
            let r = inner
                .engine
                .set_data_key(now(), plaintext, ciphertext_blob, nonce_start);
            inner.poke_runner();
            inner.wake_handles();
            r
        })
    }

    /// KMS refused or failed: the session closes with
    /// `CloseReason::Encryption(EncryptionFailure::KeyRefused)` (what [`Runner::run`] returns).
    #[cfg(feature = "kms")]
    pub fn refuse_data_key(&self) {
        self.with(|inner| {
            inner.engine.refuse_data_key(now());
            inner.poke_runner();
            inner.wake_handles();
        });
    }

    /// Whether the handshake is complete (data flows).
    pub fn is_established(&self) -> bool {
        self.with(|inner| inner.engine.is_established())
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.with(|inner| inner.engine.close_reason())
    }

    /// The remote command's exit code, once received (NonInteractiveCommands sessions with
    /// `separateOutputStream`; shells send none).
    pub fn exit_code(&self) -> Option<i32> {
        self.with(|inner| inner.engine.exit_code())
    }

    /// The error the runner stopped with, if any.
    pub fn error(&self) -> Option<Error> {
        self.with(|inner| inner.failed)
    }

    /// Runs `f` with the engine, for its accessors (handshake info, statistics). Commands made
    /// through it are sent when the runner next wakes; prefer the methods above.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        self.with(|inner| {
            let r = f(&mut inner.engine);
            inner.poke_runner();
            r
        })
    }
}

impl ErrorType for Session<'_> {
    type Error = Error;
}

impl Read for Session<'_> {
    /// Reads the remote's output and standard error, merged (use [`Session::read_stream`] to
    /// tell them apart). `Ok(0)` at the end of the session.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        Ok(self.read_stream(buf).await?.map_or(0, |(_, n)| n))
    }
}

impl Write for Session<'_> {
    /// Waits for room in the send window, then queues as much of `buf` as fits.
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| match self.try_write(buf) {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(TryError::Failed(e)) => Poll::Ready(Err(e)),
            Err(TryError::WouldBlock) => {
                self.with(|inner| inner.writer.register(cx.waker()));
                Poll::Pending
            }
        })
        .await
    }

    /// Waits until the agent has acknowledged every byte written.
    async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| match self.try_flush() {
            Ok(()) => Poll::Ready(Ok(())),
            Err(TryError::Failed(e)) => Poll::Ready(Err(e)),
            Err(TryError::WouldBlock) => {
                self.with(|inner| inner.writer.register(cx.waker()));
                Poll::Pending
            }
        })
        .await
    }
}
