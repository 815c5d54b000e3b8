//! The sans-IO session engine: handshake, reliable ordered delivery, flow control, close.
//!
//! One [`Session`] type plays either end of the data channel ([`Role::Client`], what users run;
//! [`Role::Agent`], what the local emulator and the tests run). It performs no IO, reads no clock
//! and never allocates: bytes come in through [`Session::handle_input`], go out through
//! [`Session::poll_transmit`] into your buffer, and time comes in as an [`Instant`] argument.
//! Capacities are const generics and storage is inline, and [`Session::new`] is a `const fn`,
//! so a whole session can live in a `static` on a microcontroller, built at compile time.
//!
//! ```text
//!            handle_connected / handle_transport_closed
//!  WebSocket ── handle_input ──► ┌──────────────┐ ── poll_transmit ──► WebSocket
//!  timer ───── handle_timeout ─► │   Session    │ ── poll_timeout ───► timer
//!  user ─ write/resize/close ──► └──────────────┘ ── poll_event/read ► user
//! ```

mod config;
mod event;
mod recv;
mod rng;
mod rtt;
mod send;
mod text;

pub use config::{
    AgentHandshake, Config, Encryption, Role, DEFAULT_CLIENT_VERSION, DEFAULT_REORDER,
};
pub use event::{
    CloseReason, Error, Event, Incoming, Stats, Stream, Transmit, TransmitKind, WriteError,
};
pub use recv::REORDER_SLOT_LEN;

pub use crate::payload::{Flag, SessionType};

use crate::decimal::Decimal;
use core::fmt;

use heapless::Deque;

use crate::model::{OwnedToken, Token};
use crate::payload::{
    self, Acknowledge, Action, ActionResult, ActionStatus, ActionType, ChannelClosed, ExitCode,
    HandshakeComplete, HandshakeRequest, HandshakeResponse, JsonStr, List, OpenDataChannelInput,
    ProcessedAction, Size,
};
use crate::time::{Duration, Instant};
use crate::uuid::Uuid;
use crate::wire::{
    Frame, FrameRepr, Header, InsufficientSize, MessageType, PayloadType, ACK_FLAGS, HEADER_LEN,
};

use recv::{Position, ReadBuffer, Reorder};
use rng::SplitMix64;
use rtt::RttEstimator;
use send::{AckOutcome, SendBuffer};
use text::Text;

/// Longest `TokenValue` the session stores (client: until OpenDataChannelInput is sent; agent:
/// the peer's, for authentication): the model's [`TOKEN_CAPACITY`](crate::model::TOKEN_CAPACITY).
pub const MAX_TOKEN_LEN: usize = crate::model::TOKEN_CAPACITY;

/// Longest raw `Properties` JSON the session keeps for [`Session::properties`] (and sends, in
/// the agent role). Port and shell properties are a few hundred bytes; a longer Properties
/// (a long command document) is still answered, but the accessor returns `None`.
pub const MAX_PROPERTIES_LEN: usize = 2048;

/// Longest customer message, close message and KMS key id kept; longer text is cut at a
/// character boundary.
pub const MAX_TEXT_LEN: usize = 256;

const VERSION_LEN: usize = 32;
/// Events other than `Writable` and `Closed` (which are flags) waiting for `poll_event`.
const EVENTS: usize = 16;
const PENDING_FLAGS: usize = 4;
/// Most actions of a HandshakeRequest answered; the agent sends two at most.
const MAX_ACTIONS: usize = 8;
/// Room reserved in the send buffer to write one control payload.
const CONTROL_MAX: usize = MAX_PROPERTIES_LEN + 2 * MAX_TEXT_LEN + 256;
/// The frames' SchemaVersion: what the official client sends.
const SCHEMA_VERSION: u32 = 1;

/// An unsequenced frame waiting to go out.
#[derive(Debug, Clone, Copy)]
enum Control {
    /// Acknowledge the peer's stream message `seq` with id `id`.
    Ack { id: Uuid, seq: i64 },
    /// Agent: `pause_publication`.
    Pause,
    /// Agent: `start_publication`.
    Resume,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Client: waiting for the HandshakeRequest. Agent: waiting for OpenDataChannelInput.
    Opening,
    /// Client: response sent, waiting for HandshakeComplete. Agent: request sent.
    Handshaking,
    /// Data flows.
    Established,
    /// Over.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// `close`: wait until everything is acknowledged.
    Flush,
    /// `terminate`: TerminateSession flag queued; wait for its acknowledgement.
    Terminate,
    /// Agent `close_channel`: flush, then send `channel_closed`.
    ChannelClose,
}

/// One end of a Session Manager data channel, sans IO.
///
/// # Driving contract
///
/// The driver (an adapter owning the WebSocket and a timer) calls:
///
/// 1. [`new`](Self::new) once, then [`set_unix_time`](Self::set_unix_time) whenever it knows
///    the wall clock (frames carry it as CreatedDate).
/// 2. [`handle_connected`](Self::handle_connected) each time a WebSocket is open (client: with
///    the StartSession/ResumeSession token; the OpenDataChannelInput text goes out first, then
///    every unacknowledged message again). [`handle_transport_closed`](Self::handle_transport_closed)
///    when it drops: the session keeps all state and waits for the next `handle_connected`.
/// 3. [`handle_input`](Self::handle_input) for every WebSocket message received (read the
///    socket only while [`wants_input`](Self::wants_input) is true), and
///    [`handle_timeout`](Self::handle_timeout) when the instant last given by
///    [`poll_timeout`](Self::poll_timeout) has passed.
/// 4. After any `handle_*` call or command: [`poll_transmit`](Self::poll_transmit) until it
///    returns `None` (send each one, text or binary as told), then [`poll_event`](Self::poll_event)
///    until `None` (on [`Event::Readable`], [`read`](Self::read) until `None`), then re-arm the
///    timer with `poll_timeout`.
///
/// Commands ([`write`](Self::write), [`resize`](Self::resize), [`send_flag`](Self::send_flag),
/// [`close`](Self::close), [`terminate`](Self::terminate); agent: `write_stderr`,
/// `send_exit_code`, `close_channel`, `pause_publication`, `start_publication`) may be called at
/// any time; follow them with step 4.
///
/// Every `now` is monotonic: it never goes backwards from one call to the next (an earlier
/// `now` is treated as the latest one seen). The session decides when to acknowledge,
/// retransmit, give up and close; the driver never does.
///
/// # Examples
///
/// A client and an agent joined in memory (an adapter does the same with a WebSocket):
///
/// ```
/// use ssm_proto::session::{AgentHandshake, Config, Event, Incoming, Session, TransmitKind};
/// use ssm_proto::Instant;
///
/// type S = Session<8192, 16, 4, 2048, 8>;
/// let now = Instant::ZERO;
/// let mut client = S::new(Config::client(1), now);
/// let mut agent = S::new(Config::agent(2, AgentHandshake::SHELL), now);
/// agent.handle_connected(now, "").unwrap();
/// client.handle_connected(now, "token-from-start-session").unwrap();
///
/// // Pass every message across until both sides are quiet.
/// fn pump(from: &mut S, to: &mut S, now: Instant) -> bool {
///     let mut buf = [0u8; 4096];
///     let mut moved = false;
///     while let Some(t) = from.poll_transmit(now, &mut buf).unwrap() {
///         let msg = &buf[..t.len];
///         let input = match t.kind {
///             TransmitKind::Text => Incoming::Text(msg),
///             TransmitKind::Binary => Incoming::Binary(msg),
///         };
///         to.handle_input(now, input).unwrap();
///         moved = true;
///     }
///     moved
/// }
/// while pump(&mut client, &mut agent, now) | pump(&mut agent, &mut client, now) {}
/// // The agent's driver checks the token as `Opened` comes; the handshake follows.
/// assert_eq!(agent.poll_event(), Some(Event::Opened));
/// assert_eq!(agent.peer_token(), Some("token-from-start-session"));
/// while pump(&mut client, &mut agent, now) | pump(&mut agent, &mut client, now) {}
///
/// assert_eq!(client.poll_event(), Some(Event::HandshakeComplete));
/// client.write(now, b"uname\r").unwrap();
/// while pump(&mut client, &mut agent, now) | pump(&mut agent, &mut client, now) {}
/// let mut buf = [0u8; 64];
/// while let Some(e) = agent.poll_event() {
///     if e == Event::Readable {
///         let (_stream, n) = agent.read(&mut buf).unwrap();
///         assert_eq!(&buf[..n], b"uname\r");
///     }
/// }
/// // Re-arm the timer with `poll_timeout`; call `handle_timeout` when it fires.
/// assert!(client.poll_timeout().is_none(), "everything acknowledged");
/// ```
///
/// # Capacities
///
/// - `SEND`: bytes of outgoing payload kept until acknowledged; the effective window is
///   `min(Config::window, SEND)`. Default 256 KiB, the default window.
/// - `UNACKED`: outgoing messages in flight.
/// - `REORDER`: incoming messages held out of order (each slot [`REORDER_SLOT_LEN`] bytes).
///   Default [`DEFAULT_REORDER`] (16). Over a live WebSocket nothing arrives out of order;
///   on a lossy path, a peer whose [`Config::max_ahead`] is at most this never makes it drop
///   one.
/// - `RECV`: delivered stream bytes waiting for [`read`](Self::read); at least
///   [`REORDER_SLOT_LEN`] (one message of the agent's).
/// - `TXQ`: acknowledgements and other unsequenced frames waiting for `poll_transmit`.
pub struct Session<
    const SEND: usize = 262_144,
    const UNACKED: usize = 256,
    const REORDER: usize = { config::DEFAULT_REORDER },
    const RECV: usize = 8192,
    const TXQ: usize = 32,
> {
    role: Role,
    chunk_size: usize,
    window: usize,
    give_up: Duration,
    max_ahead: usize,
    handshake_timeout: Duration,
    /// When the handshake must be over: set by the first `handle_connected`.
    handshake_deadline: Option<Instant>,
    max_rto: Duration,
    encryption: Encryption,
    rng: SplitMix64,
    rtt: RttEstimator,
    send: SendBuffer<SEND, UNACKED>,
    reorder: Reorder<REORDER>,
    /// Sequence number of the next peer stream message to deliver.
    expected: i64,
    read_buf: ReadBuffer<RECV>,
    txq: Deque<Control, TXQ>,
    events: Deque<Event, EVENTS>,
    phase: Phase,
    closing: Option<Closing>,
    /// The peer closed the channel while acknowledged messages still waited for room in the
    /// read buffer: the session closes with this reason once they are delivered.
    close_after_drain: Option<CloseReason>,
    closed_event_pending: bool,
    /// Agent: `Event::Opened` to report; the HandshakeRequest follows it.
    opened_event_pending: bool,
    transport_up: bool,
    /// Agent: OpenDataChannelInput received on the current transport.
    peer_opened: bool,
    /// Agent: the client sent TerminateSession; it wants no more output.
    peer_terminated: bool,
    /// Client: OpenDataChannelInput to send on the current transport.
    open_pending: bool,
    /// Zeroed when dropped or replaced; `Debug` shows it redacted.
    token: Option<OwnedToken<MAX_TOKEN_LEN>>,
    request_id: Uuid,
    client_id: Uuid,
    session_type: Option<SessionType>,
    properties: Text<MAX_PROPERTIES_LEN>,
    properties_kept: bool,
    agent_version: Text<VERSION_LEN>,
    client_version: Text<VERSION_LEN>,
    customer_message: Text<MAX_TEXT_LEN>,
    kms_key_id: Text<MAX_TEXT_LEN>,
    kms_requested: bool,
    close_message: Text<MAX_TEXT_LEN>,
    unix: Option<(Instant, u64)>,
    now: Instant,
    pending_size: Option<Size>,
    pending_flags: Deque<Flag, PENDING_FLAGS>,
    pending_exit: Option<i32>,
    paused: bool,
    want_writable: bool,
    writable_pending: bool,
    readable_queued: bool,
    /// Last time the send side made progress (first message in flight, new ack, resume).
    progress_at: Instant,
    /// Agent, closed: when `channel_closed` goes out (again).
    channel_closed_due: Option<Instant>,
    handshake_started: Instant,
    exit_code: Option<i32>,
    terminal_size: Option<(u32, u32)>,
    stats: Stats,
}

impl<
        const SEND: usize,
        const UNACKED: usize,
        const REORDER: usize,
        const RECV: usize,
        const TXQ: usize,
    > fmt::Debug for Session<SEND, UNACKED, REORDER, RECV, TXQ>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("phase", &self.phase)
            .field("transport_up", &self.transport_up)
            .field("token", &self.token)
            .field("next_seq", &self.send.next_seq())
            .field("expected", &self.expected)
            .field("unacked_bytes", &self.send.unacked_bytes())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<
        const SEND: usize,
        const UNACKED: usize,
        const REORDER: usize,
        const RECV: usize,
        const TXQ: usize,
    > Session<SEND, UNACKED, REORDER, RECV, TXQ>
{
    const CAPACITIES_OK: () = {
        assert!(
            RECV >= REORDER_SLOT_LEN,
            "RECV must hold one agent message (1024 bytes)"
        );
        assert!(
            UNACKED > 0 && SEND > 0 && TXQ > 0,
            "capacities must be non-zero"
        );
    };

    /// A new session at `now`.
    ///
    /// A `const fn`: in a `static` initializer (e.g. `static_cell::ConstStaticCell`) the whole
    /// session is built at compile time, with no stack copy of its buffers.
    ///
    /// # Panics
    /// If the agent handshake's strings exceed [`MAX_PROPERTIES_LEN`] / [`MAX_TEXT_LEN`], the
    /// client version exceeds 32 bytes, or `chunk_size`, `window` or `max_ahead` is 0 (API
    /// misuse).
    pub const fn new(config: Config<'_>, now: Instant) -> Self {
        #[allow(
            clippy::let_unit_value,
            reason = "forces the compile-time capacity check"
        )]
        let () = Self::CAPACITIES_OK;
        assert!(config.chunk_size > 0 && config.window > 0 && config.max_ahead > 0);
        let mut rng = SplitMix64::new(config.seed);
        let client_id = rng.uuid();
        let mut s = Session {
            role: config.role,
            chunk_size: config.chunk_size,
            window: if config.window < SEND {
                config.window
            } else {
                SEND
            },
            give_up: config.give_up,
            max_ahead: config.max_ahead,
            handshake_timeout: config.handshake_timeout,
            handshake_deadline: None,
            max_rto: config.max_rto,
            encryption: config.encryption,
            rng,
            rtt: RttEstimator::new(
                config.initial_rtt,
                config.initial_rto,
                config.rttvar_floor,
                config.max_rto,
            ),
            send: SendBuffer::new(),
            reorder: Reorder::new(),
            expected: 0,
            read_buf: ReadBuffer::new(),
            txq: Deque::new(),
            events: Deque::new(),
            phase: Phase::Opening,
            closing: None,
            close_after_drain: None,
            closed_event_pending: false,
            opened_event_pending: false,
            transport_up: false,
            peer_opened: false,
            peer_terminated: false,
            open_pending: false,
            token: None,
            request_id: Uuid::NIL,
            client_id,
            session_type: None,
            properties: Text::new(),
            properties_kept: false,
            agent_version: Text::new(),
            client_version: Text::new(),
            customer_message: Text::new(),
            kms_key_id: Text::new(),
            kms_requested: false,
            close_message: Text::new(),
            unix: None,
            now,
            pending_size: None,
            pending_flags: Deque::new(),
            pending_exit: None,
            paused: false,
            want_writable: false,
            writable_pending: false,
            readable_queued: false,
            progress_at: now,
            channel_closed_due: None,
            handshake_started: now,
            exit_code: None,
            terminal_size: None,
            stats: Stats::ZERO,
        };
        match config.role {
            Role::Client => {
                assert!(
                    s.client_version.set(config.client_version),
                    "client version too long"
                );
            }
            Role::Agent => {
                let h = config.agent;
                assert!(
                    s.agent_version.set(h.agent_version),
                    "agent version too long"
                );
                assert!(s.properties.set(h.properties), "properties too long");
                assert!(
                    s.customer_message.set(h.customer_message),
                    "customer message too long"
                );
                s.properties_kept = true;
                s.session_type = Some(h.session_type);
                if let Some(k) = h.kms_key_id {
                    assert!(s.kms_key_id.set(k), "kms key id too long");
                    s.kms_requested = true;
                }
            }
        }
        s
    }

    // ----- inputs -------------------------------------------------------------------------

    /// A WebSocket to the data channel is open.
    ///
    /// Client: queues the OpenDataChannelInput text message carrying `token` (kept only until
    /// it is sent, never shown by `Debug`), then every unacknowledged message goes out again.
    /// Agent: `token` is ignored; the session waits for the client's OpenDataChannelInput.
    ///
    /// # Errors
    /// [`Error::BadToken`] or [`Error::TokenTooLong`] (nothing changes), or [`Error::Closed`]
    /// for a closed client.
    pub fn handle_connected(&mut self, now: Instant, token: &str) -> Result<(), Error> {
        self.tick(now);
        match self.role {
            Role::Client => {
                if self.is_closed() {
                    return Err(Error::Closed);
                }
                let t = Token::new(token).map_err(|_| Error::BadToken)?;
                self.token = Some(OwnedToken::from_token(t).map_err(|_| Error::TokenTooLong)?);
                self.request_id = self.rng.uuid();
                self.open_pending = true;
            }
            Role::Agent => self.peer_opened = false,
        }
        if self.handshake_deadline.is_none() {
            self.handshake_deadline = Some(self.now + self.handshake_timeout);
        }
        self.transport_up = true;
        // A pause belongs to the connection it came on; the agent repeats it if it still holds.
        self.paused = false;
        self.send.mark_all_unsent();
        Ok(())
    }

    /// The WebSocket closed or failed. State is kept; call [`handle_connected`](Self::handle_connected)
    /// after reconnecting (client: with a new token from ResumeSession).
    pub fn handle_transport_closed(&mut self, now: Instant) {
        self.tick(now);
        self.transport_up = false;
        self.peer_opened = false;
        self.open_pending = false;
        if self.role == Role::Client {
            self.token = None;
        }
    }

    /// Gives the wall clock: `unix_ms` (Unix epoch milliseconds) is the time at `now`. Frames
    /// created later carry `unix_ms + (their now − now)` as CreatedDate; before the first call
    /// they carry the milliseconds of `now` itself.
    pub fn set_unix_time(&mut self, now: Instant, unix_ms: u64) {
        self.tick(now);
        self.unix = Some((self.now, unix_ms));
    }

    /// Feeds one WebSocket message.
    ///
    /// # Errors
    /// See [`Error`]: most errors drop the one message and the session goes on; a fatal one
    /// (see [`Error::is_fatal`]) has closed the session and [`Event::Closed`] follows.
    pub fn handle_input(&mut self, now: Instant, input: Incoming<'_>) -> Result<(), Error> {
        self.tick(now);
        self.stats.messages_in = self.stats.messages_in.wrapping_add(1);
        if self.role == Role::Client && self.is_closed() {
            return Err(Error::Closed);
        }
        let r = match input {
            Incoming::Text(b) => match self.role {
                Role::Agent => self.on_open(b),
                Role::Client => Err(Error::Unexpected),
            },
            Incoming::Binary(b) => self.on_frame(b),
        };
        if let Err(e) = r {
            if e != Error::Closed {
                self.stats.bad_input = self.stats.bad_input.wrapping_add(1);
            }
            debug!("session: input dropped: {}", e.as_str());
        }
        self.advance();
        r
    }

    /// Lets timers fire: retransmission deadlines, the give-up time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        self.advance();
    }

    // ----- commands -----------------------------------------------------------------------

    /// Queues stream bytes (client: stdin as Output; agent: Output), cut into messages of at
    /// most `chunk_size`. Takes as much as the window and the send buffer allow and returns how
    /// much; the rest is yours to offer again after [`Event::Writable`]. Nothing taken is ever
    /// dropped. An empty `data` returns `Ok(0)`.
    ///
    /// # Errors
    /// [`WriteError::Blocked`] when nothing could be taken (window full, publication paused
    /// does not block, the handshake not yet complete does); [`WriteError::Closed`] once
    /// closing or closed.
    pub fn write(&mut self, now: Instant, data: &[u8]) -> Result<usize, WriteError> {
        self.write_stream(now, PayloadType::Output, data)
    }

    /// Agent role: queues standard-error bytes (payload type 11), like [`write`](Self::write).
    ///
    /// # Errors
    /// As `write`, and [`WriteError::WrongRole`] for a client.
    pub fn write_stderr(&mut self, now: Instant, data: &[u8]) -> Result<usize, WriteError> {
        if self.role != Role::Agent {
            return Err(WriteError::WrongRole);
        }
        self.write_stream(now, PayloadType::StdErr, data)
    }

    fn write_stream(
        &mut self,
        now: Instant,
        payload_type: PayloadType,
        data: &[u8],
    ) -> Result<usize, WriteError> {
        self.tick(now);
        if self.is_closed() || self.closing.is_some() {
            return Err(WriteError::Closed);
        }
        if data.is_empty() {
            return Ok(0);
        }
        if self.phase != Phase::Established {
            self.want_writable = true;
            return Err(WriteError::Blocked);
        }
        let mut taken = 0;
        while taken < data.len() {
            let window_room = self.window.saturating_sub(self.send.unacked_bytes());
            let want = (data.len() - taken).min(self.chunk_size).min(window_room);
            let n = self.send.room(want);
            if n == 0 {
                break;
            }
            let chunk = &data[taken..taken + n];
            let pushed = self.push_message(payload_type, n, |b| {
                b[..n].copy_from_slice(chunk);
                Some(n)
            });
            if !pushed {
                break;
            }
            taken += n;
        }
        if taken < data.len() {
            self.want_writable = true;
        }
        if taken == 0 {
            Err(WriteError::Blocked)
        } else {
            Ok(taken)
        }
    }

    /// Client role: the terminal size changed. Sent as a Size message once the handshake is
    /// complete; only the latest size waits if several come before it can be sent.
    pub fn resize(&mut self, cols: u32, rows: u32) {
        if self.role == Role::Client && !self.is_closed() {
            self.pending_size = Some(Size { cols, rows });
            self.advance();
        }
    }

    /// Client role: sends a flag (DisconnectToPort, TerminateSession, ConnectToPortError) as a
    /// sequenced message, after the handshake.
    ///
    /// # Errors
    /// [`WriteError::Blocked`] when four flags already wait; [`WriteError::Closed`];
    /// [`WriteError::WrongRole`] for an agent.
    pub fn send_flag(&mut self, flag: Flag) -> Result<(), WriteError> {
        if self.role != Role::Client {
            return Err(WriteError::WrongRole);
        }
        if self.is_closed() || self.closing.is_some() {
            return Err(WriteError::Closed);
        }
        self.pending_flags
            .push_back(flag)
            .map_err(|_| WriteError::Blocked)?;
        self.advance();
        Ok(())
    }

    /// Agent role: sends `EXIT_CODE: <code>` after everything written so far.
    ///
    /// # Errors
    /// [`WriteError::Closed`]; [`WriteError::WrongRole`] for a client.
    pub fn send_exit_code(&mut self, now: Instant, code: i32) -> Result<(), WriteError> {
        self.tick(now);
        if self.role != Role::Agent {
            return Err(WriteError::WrongRole);
        }
        if self.is_closed() || self.closing.is_some() {
            return Err(WriteError::Closed);
        }
        self.pending_exit = Some(code);
        self.advance();
        Ok(())
    }

    /// Agent role: asks the client to stop sending data (`pause_publication`).
    ///
    /// # Errors
    /// [`WriteError::Blocked`] when the transmit queue is full; [`WriteError::WrongRole`].
    pub fn pause_publication(&mut self) -> Result<(), WriteError> {
        self.queue_agent_control(Control::Pause)
    }

    /// Agent role: lets the client send data again (`start_publication`).
    ///
    /// # Errors
    /// As [`pause_publication`](Self::pause_publication).
    pub fn start_publication(&mut self) -> Result<(), WriteError> {
        self.queue_agent_control(Control::Resume)
    }

    fn queue_agent_control(&mut self, c: Control) -> Result<(), WriteError> {
        if self.role != Role::Agent {
            return Err(WriteError::WrongRole);
        }
        if self.is_closed() {
            return Err(WriteError::Closed);
        }
        self.txq.push_back(c).map_err(|_| WriteError::Blocked)
    }

    /// Closes in order: no more writes; once everything sent is acknowledged the session
    /// closes with [`CloseReason::Local`] (agent: sends `channel_closed` first, with an empty
    /// reason; see [`close_channel`](Self::close_channel)).
    pub fn close(&mut self, now: Instant) {
        self.tick(now);
        match self.role {
            Role::Client => self.begin_closing(Closing::Flush),
            Role::Agent => self.close_channel(now, ""),
        }
    }

    /// Client role: asks the agent to end the session (TerminateSession flag, after pending
    /// data) and closes with [`CloseReason::Terminated`] once it is acknowledged. Before the
    /// handshake completes there is nothing to tell: the session closes at once.
    pub fn terminate(&mut self, now: Instant) {
        self.tick(now);
        if self.role != Role::Client || self.is_closed() {
            return;
        }
        if self.phase != Phase::Established {
            self.close_with(CloseReason::Terminated);
            return;
        }
        if self.closing != Some(Closing::Terminate) {
            if self.pending_flags.is_full() {
                self.pending_flags.pop_back();
            }
            let _ = self.pending_flags.push_back(Flag::TerminateSession);
        }
        self.begin_closing(Closing::Terminate);
    }

    /// Agent role: ends the session with `reason` shown to the user (`channel_closed` Output).
    /// After the handshake, everything written first reaches the client (acknowledged), then
    /// `channel_closed` goes out; before it (e.g. a bad token), or once the client has sent
    /// TerminateSession (it wants no more output, and it stops acknowledging once its flag is
    /// acknowledged), at once. The session then
    /// reports [`CloseReason::Local`] and keeps answering the client with `channel_closed` while
    /// the transport stays up (the frame is not acknowledged, so it is repeated every
    /// `max_rto` until the driver drops the connection).
    pub fn close_channel(&mut self, now: Instant, reason: &str) {
        self.tick(now);
        if self.role != Role::Agent || self.is_closed() {
            return;
        }
        self.close_message.set_cut(reason);
        if self.phase == Phase::Established && !self.peer_terminated {
            self.begin_closing(Closing::ChannelClose);
        } else {
            self.agent_close(CloseReason::Local);
        }
    }

    fn begin_closing(&mut self, c: Closing) {
        if self.is_closed() {
            return;
        }
        self.closing = Some(c);
        self.advance();
    }

    // ----- outputs ------------------------------------------------------------------------

    /// Writes the next WebSocket message to send into `buf`. A buffer of
    /// [`max_transmit_len`](Self::max_transmit_len) bytes always suffices.
    ///
    /// # Errors
    /// [`InsufficientSize`] when `buf` is too small for the next message; nothing is lost,
    /// call again with a bigger buffer.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Result<Option<Transmit>, InsufficientSize> {
        self.tick(now);
        self.advance();
        let t = self.next_transmit(buf)?;
        if t.is_some() {
            self.stats.messages_out = self.stats.messages_out.wrapping_add(1);
        }
        Ok(t)
    }

    fn next_transmit(&mut self, buf: &mut [u8]) -> Result<Option<Transmit>, InsufficientSize> {
        let now = self.now;
        if !self.transport_up {
            return Ok(None);
        }
        match self.role {
            Role::Client => {
                // A closed client still sends the acknowledgements it owes (the agent would
                // otherwise resend until it gives up), nothing else.
                if self.open_pending && !self.is_closed() {
                    return self.emit_open(buf).map(Some);
                }
            }
            Role::Agent => {
                // Nothing goes to a (re)connected client before the driver has seen `Opened`
                // and so had the chance to refuse its token.
                if !self.peer_opened || self.opened_event_pending {
                    return Ok(None);
                }
            }
        }
        if let Some(&c) = self.txq.front() {
            let t = self.emit_control(c, buf)?;
            self.txq.pop_front();
            return Ok(Some(t));
        }
        if let Some(due) = self.channel_closed_due {
            if due <= now {
                let t = self.emit_channel_closed(buf)?;
                self.channel_closed_due = Some(now + self.max_rto);
                return Ok(Some(t));
            }
        }
        if self.is_closed() || self.paused {
            return Ok(None);
        }
        if let Some(seq) = self.send.next_due(now, self.rtt.timeout(), self.max_ahead) {
            let t = self.emit_stored(seq, buf)?;
            return Ok(Some(t));
        }
        Ok(None)
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.role == Role::Client && self.is_closed() {
            return None;
        }
        let mut t = self.give_up_deadline();
        let sending = self.transport_up
            && !self.paused
            && !self.is_closed()
            && match self.role {
                Role::Client => true,
                Role::Agent => self.peer_opened && !self.opened_event_pending,
            };
        if sending {
            t = min_opt(
                t,
                self.send.next_deadline(self.rtt.timeout(), self.max_ahead),
            );
        }
        if self.transport_up && self.peer_opened {
            t = min_opt(t, self.channel_closed_due);
        }
        min_opt(t, self.handshake_deadline())
    }

    /// The next event, if any. `Closed` is always the last one.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.opened_event_pending {
            self.opened_event_pending = false;
            if self.phase == Phase::Opening {
                self.send_handshake_request();
            }
            return Some(Event::Opened);
        }
        if let Some(e) = self.events.pop_front() {
            if e == Event::Readable {
                self.readable_queued = false;
            }
            self.drain();
            return Some(e);
        }
        if self.writable_pending {
            self.writable_pending = false;
            if !self.is_closed() {
                return Some(Event::Writable);
            }
        }
        if self.closed_event_pending {
            self.closed_event_pending = false;
            if let Phase::Closed(r) = self.phase {
                return Some(Event::Closed(r));
            }
        }
        None
    }

    /// Copies delivered stream bytes into `buf`: returns the stream and the count, never mixing
    /// streams in one call, or `None` when nothing waits (or `buf` is empty). Bytes delivered
    /// before the session closed can still be read after [`Event::Closed`].
    pub fn read(&mut self, buf: &mut [u8]) -> Option<(Stream, usize)> {
        if buf.is_empty() {
            return None;
        }
        let r = self.read_buf.read(buf);
        if r.is_some() {
            self.drain();
        }
        r
    }

    /// Whether the next WebSocket message can be taken without dropping it for lack of room.
    ///
    /// While this is `false` (delivered bytes not yet [`read`](Self::read), events not yet
    /// polled), stop reading the socket: TCP then carries the back-pressure to the agent, which
    /// the protocol itself cannot (it has no receive window). A message fed anyway is held if a
    /// reorder slot is free, else dropped unacknowledged and resent by the peer after its
    /// timeout, which is slow, not lossy.
    pub fn wants_input(&self) -> bool {
        let one = REORDER_SLOT_LEN.min(RECV);
        self.reorder.get(self.expected).is_none()
            && self.read_buf.fits(Stream::Output, one)
            && self.read_buf.fits(Stream::StdErr, one)
            && self.event_room(2)
            && !self.txq.is_full()
    }

    /// The largest message [`poll_transmit`](Self::poll_transmit) can write: a 120-byte header
    /// plus the largest of a data chunk, a control payload and the OpenDataChannelInput text.
    pub fn max_transmit_len(&self) -> usize {
        HEADER_LEN + self.chunk_size.max(CONTROL_MAX).max(MAX_TOKEN_LEN + 256)
    }

    // ----- accessors ----------------------------------------------------------------------

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the handshake completed and the session is not closed.
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed(_))
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self.phase {
            Phase::Closed(r) => Some(r),
            _ => None,
        }
    }

    /// The `channel_closed` Output text (client: received; agent: sent), possibly empty.
    pub fn close_message(&self) -> &str {
        self.close_message.as_str()
    }

    /// The session type (client: from the HandshakeRequest, once received; agent: configured).
    pub fn session_type(&self) -> Option<SessionType> {
        self.session_type
    }

    /// The raw `Properties` JSON of the SessionType action; `None` before the request, when
    /// absent or `null`, or longer than [`MAX_PROPERTIES_LEN`].
    pub fn properties(&self) -> Option<&str> {
        (self.properties_kept && !self.properties.is_empty() && self.properties.as_str() != "null")
            .then_some(self.properties.as_str())
    }

    /// The agent's version (client: from the HandshakeRequest).
    pub fn agent_version(&self) -> Option<&str> {
        (!self.agent_version.is_empty()).then_some(self.agent_version.as_str())
    }

    /// The client's version (client: configured; agent: from the HandshakeResponse).
    pub fn client_version(&self) -> Option<&str> {
        (!self.client_version.is_empty()).then_some(self.client_version.as_str())
    }

    /// HandshakeComplete's `CustomerMessage` (empty when none); show it to the user.
    pub fn customer_message(&self) -> &str {
        self.customer_message.as_str()
    }

    /// The KMS key id of a `KMSEncryption` action (client: requested by the agent).
    pub fn kms_key_id(&self) -> Option<&str> {
        self.kms_requested.then_some(self.kms_key_id.as_str())
    }

    /// Agent role: the token from the client's OpenDataChannelInput, to authenticate it when
    /// [`Event::Opened`] comes (the HandshakeRequest is queued only as that event is polled, so
    /// calling [`close_channel`](Self::close_channel) right then refuses the client before it
    /// learns anything). Never log it.
    pub fn peer_token(&self) -> Option<&str> {
        match self.role {
            Role::Agent => self.token.as_ref().map(OwnedToken::expose_secret),
            Role::Client => None,
        }
    }

    /// Client role: the exit code received, if any.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    /// Agent role: the latest terminal size received.
    pub fn terminal_size(&self) -> Option<(u32, u32)> {
        self.terminal_size
    }

    /// Payload bytes sent or queued and not yet acknowledged.
    pub fn unacked_bytes(&self) -> usize {
        self.send.unacked_bytes()
    }

    /// The current retransmission timeout from the estimator (official formula and ceiling).
    /// A message's actual timeout is at least this; see [`Config::max_rto`] for what can make
    /// it longer.
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// The smoothed round-trip time.
    pub fn srtt(&self) -> Duration {
        self.rtt.srtt()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether the agent has paused our publication.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    // ----- internals ----------------------------------------------------------------------

    fn tick(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    fn created_date(&self) -> u64 {
        match self.unix {
            Some((at, ms)) => ms.saturating_add((self.now - at).total_millis()),
            None => self.now.total_millis(),
        }
    }

    /// The message type this role sends sequenced messages as.
    fn own_stream_type(&self) -> MessageType {
        match self.role {
            Role::Client => MessageType::InputStreamData,
            Role::Agent => MessageType::OutputStreamData,
        }
    }

    fn peer_stream_type(&self) -> MessageType {
        match self.role {
            Role::Client => MessageType::OutputStreamData,
            Role::Agent => MessageType::InputStreamData,
        }
    }

    fn give_up_deadline(&self) -> Option<Instant> {
        if self.is_closed() || self.paused {
            return None;
        }
        self.send
            .oldest_unacked()
            .map(|_| self.progress_at + self.give_up)
    }

    /// When the handshake times out, while it is not over.
    fn handshake_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Opening | Phase::Handshaking => self.handshake_deadline,
            Phase::Established | Phase::Closed(_) => None,
        }
    }

    /// A fresh message id and the CreatedDate for a message made now.
    fn next_ids(&mut self) -> (Uuid, u64) {
        (self.rng.uuid(), self.created_date())
    }

    /// Appends a sequenced message whose payload `fill` writes (at most `max` bytes).
    fn push_message(
        &mut self,
        payload_type: PayloadType,
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        let was_idle = self.send.oldest_unacked().is_none();
        let (id, created) = self.next_ids();
        let pushed = self
            .send
            .push(id, payload_type.into(), created, max, fill)
            .is_some();
        if pushed && was_idle {
            self.progress_at = self.now;
        }
        pushed
    }

    /// Pushes a control payload written by `emit` (a payload type's `emit`).
    fn push_control(
        &mut self,
        payload_type: PayloadType,
        emit: impl FnOnce(&mut [u8]) -> Result<usize, payload::Error>,
    ) -> bool {
        let max = self.send.room(CONTROL_MAX);
        max > 0 && self.push_message(payload_type, max, |b| emit(b).ok())
    }

    /// Housekeeping after every input and command: give-up, pending control messages, the end
    /// of an orderly close.
    fn advance(&mut self) {
        if self.is_closed() {
            return;
        }
        if let Some(d) = self.give_up_deadline() {
            if self.now >= d {
                warn!(
                    "session: giving up, {} bytes unacknowledged for {} ms",
                    self.send.unacked_bytes(),
                    (self.now - self.progress_at).total_millis()
                );
                match self.role {
                    Role::Client => self.close_with(CloseReason::GaveUp),
                    Role::Agent => self.agent_close(CloseReason::GaveUp),
                }
                return;
            }
        }
        if self.handshake_deadline().is_some_and(|d| self.now >= d) {
            warn!(
                "session: handshake not complete after {} ms",
                self.handshake_timeout.total_millis()
            );
            self.close_fatal(CloseReason::HandshakeTimeout);
            return;
        }
        if self.phase == Phase::Established {
            if let Some(size) = self.pending_size {
                if self.push_control(PayloadType::Size, |b| size.emit(b)) {
                    self.pending_size = None;
                }
            }
            while let Some(&flag) = self.pending_flags.front() {
                if !self.push_control(PayloadType::Flag, |b| flag.emit(b)) {
                    break;
                }
                self.pending_flags.pop_front();
            }
            if let Some(code) = self.pending_exit {
                if self.push_control(PayloadType::ExitCode, |b| ExitCode(code).emit(b)) {
                    self.pending_exit = None;
                }
            }
        }
        let flushed = self.send.is_empty()
            && self.pending_flags.is_empty()
            && self.pending_exit.is_none()
            && (self.pending_size.is_none() || self.phase != Phase::Established);
        if flushed {
            match self.closing {
                Some(Closing::Flush) => self.close_with(CloseReason::Local),
                Some(Closing::Terminate) => self.close_with(CloseReason::Terminated),
                Some(Closing::ChannelClose) => self.agent_close(CloseReason::Local),
                None => {}
            }
        }
    }

    fn close_with(&mut self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        debug!("session: closed: {}", reason.as_str());
        self.phase = Phase::Closed(reason);
        self.closed_event_pending = true;
        self.open_pending = false;
        if self.role == Role::Client {
            self.token = None;
        }
    }

    /// Agent: closes and starts sending `channel_closed`.
    fn agent_close(&mut self, reason: CloseReason) {
        self.close_with(reason);
        self.channel_closed_due = Some(self.now);
    }

    fn queue_ack(&mut self, id: Uuid, seq: i64) {
        if self.txq.push_back(Control::Ack { id, seq }).is_err() {
            // The peer retransmits, and the duplicate is acknowledged then.
            self.stats.acks_dropped = self.stats.acks_dropped.wrapping_add(1);
        }
    }

    fn on_open(&mut self, text: &[u8]) -> Result<(), Error> {
        let open = OpenDataChannelInput::parse(text).map_err(Error::Payload)?;
        let text = open.token_value.as_str().map_err(|_| Error::BadToken)?;
        let t = Token::new(text).map_err(|_| Error::BadToken)?;
        self.token = Some(OwnedToken::from_token(t).map_err(|_| Error::TokenTooLong)?);
        self.peer_opened = true;
        if self.is_closed() {
            self.channel_closed_due = Some(self.now);
            return Ok(());
        }
        // The HandshakeRequest waits until the driver has seen `Opened` (and could refuse the
        // token): an unauthenticated client learns nothing about the session.
        self.opened_event_pending = true;
        Ok(())
    }

    fn send_handshake_request(&mut self) {
        let (id, created) = self.next_ids();
        let pushed = {
            let session_type = self.session_type.unwrap_or(SessionType::StandardStream);
            let props = self.properties.as_str();
            let mut actions: heapless::Vec<Action<'_>, 2> = heapless::Vec::new();
            let _ = actions.push(Action::SessionType {
                session_type,
                properties: (!props.is_empty() && props != "null").then_some(props),
            });
            if self.kms_requested {
                let _ = actions.push(Action::KmsEncryption {
                    kms_key_id: JsonStr::new(self.kms_key_id.as_str()),
                    challenge: None,
                });
            }
            let req = HandshakeRequest {
                agent_version: JsonStr::new(self.agent_version.as_str()),
                requested_client_actions: List::new(&actions),
            };
            push_payload(
                &mut self.send,
                id,
                created,
                PayloadType::HandshakeRequest,
                |b| req.emit(b),
            )
        };
        if pushed {
            self.progress_at = self.now;
            self.handshake_started = self.now;
            self.phase = Phase::Handshaking;
        } else {
            warn!("session: handshake request does not fit the send buffer");
            self.agent_close(CloseReason::HandshakeFailed);
        }
    }

    fn on_frame(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let frame = Frame::new_checked(bytes).map_err(Error::Frame)?;
        let repr = FrameRepr::parse(&frame).map_err(Error::Frame)?;
        if self.role == Role::Agent {
            if !self.peer_opened {
                return Err(Error::Unexpected);
            }
            if self.is_closed() {
                // Whatever the client says, the answer is that the channel is closed.
                self.channel_closed_due = Some(self.now);
                return Ok(());
            }
        }
        let h = repr.header;
        match h.message_type {
            t if t == self.peer_stream_type() => self.on_stream(&h, repr.payload),
            MessageType::Acknowledge => self.on_ack(repr.payload),
            MessageType::ChannelClosed if self.role == Role::Client => {
                self.on_channel_closed(repr.payload)
            }
            MessageType::PausePublication if self.role == Role::Client => {
                if !self.paused {
                    self.paused = true;
                    let _ = self.events.push_back(Event::PublicationPaused);
                }
                Ok(())
            }
            MessageType::StartPublication if self.role == Role::Client => {
                if self.paused {
                    self.paused = false;
                    self.progress_at = self.now;
                    let _ = self.events.push_back(Event::PublicationResumed);
                }
                Ok(())
            }
            _ => Err(Error::Unexpected),
        }
    }

    fn on_stream(&mut self, h: &Header, payload: &[u8]) -> Result<(), Error> {
        let seq = h.sequence_number;
        let pt: u32 = h.payload_type.into();
        match self.reorder.position(self.expected, seq) {
            Position::Duplicate => {
                self.stats.duplicates = self.stats.duplicates.wrapping_add(1);
                self.queue_ack(h.message_id, seq);
            }
            Position::TooFar => {
                debug!(
                    "session: dropped message {} unacknowledged, too far ahead of {}",
                    seq, self.expected
                );
                self.stats.dropped_unacked = self.stats.dropped_unacked.wrapping_add(1);
            }
            Position::InOrder => match self.deliver(pt, payload) {
                Ok(true) => {
                    self.expected += 1;
                    self.queue_ack(h.message_id, seq);
                    self.drain();
                }
                Ok(false) => self.hold(h, pt, payload),
                Err(e) => {
                    // Consumed (unreadable, or fatal): acknowledge so the peer stops resending.
                    self.expected += 1;
                    self.queue_ack(h.message_id, seq);
                    return Err(e);
                }
            },
            Position::Ahead => self.hold(h, pt, payload),
        }
        Ok(())
    }

    fn hold(&mut self, h: &Header, pt: u32, payload: &[u8]) {
        if self.reorder.hold(h.sequence_number, pt, payload) {
            self.queue_ack(h.message_id, h.sequence_number);
        } else {
            debug!(
                "session: dropped message {} unacknowledged, no room to hold it",
                h.sequence_number
            );
            self.stats.dropped_unacked = self.stats.dropped_unacked.wrapping_add(1);
        }
    }

    /// Delivers held messages that are now in order.
    fn drain(&mut self) {
        let mut tmp = [0u8; REORDER_SLOT_LEN];
        while !self.is_closed() {
            let Some(held) = self.reorder.get(self.expected) else {
                break;
            };
            let (pt, n) = (held.payload_type, held.payload().len());
            tmp[..n].copy_from_slice(held.payload());
            match self.deliver(pt, &tmp[..n]) {
                Ok(false) => break,
                Ok(true) | Err(_) => {
                    self.reorder.release(self.expected);
                    self.expected += 1;
                }
            }
            if self.is_closed() {
                break;
            }
        }
        if self.reorder.get(self.expected).is_none() {
            if let Some(reason) = self.close_after_drain.take() {
                self.close_with(reason);
            }
        }
    }

    fn event_room(&self, n: usize) -> bool {
        EVENTS - self.events.len() >= n
    }

    /// Acts on one in-order stream message. `Ok(false)`: no room now (read buffer, events or
    /// send buffer full); hold it and try again later.
    fn deliver(&mut self, pt: u32, payload: &[u8]) -> Result<bool, Error> {
        match (self.role, PayloadType::from(pt)) {
            (Role::Client, PayloadType::Output)
                if self.phase == Phase::Opening && self.expected == 0 =>
            {
                // Agents without the handshake start with shell output; the official client
                // then assumes a shell (`ProcessFirstMessage`).
                if !self.event_room(2) || !self.read_buf.fits(Stream::Output, payload.len()) {
                    return Ok(false);
                }
                self.session_type = Some(SessionType::StandardStream);
                self.establish();
                self.deliver_data(Stream::Output, payload)
            }
            (_, PayloadType::Output) => self.deliver_data(Stream::Output, payload),
            (Role::Client, PayloadType::StdErr) => self.deliver_data(Stream::StdErr, payload),
            (Role::Client, PayloadType::HandshakeRequest) => self.on_handshake_request(payload),
            (Role::Client, PayloadType::HandshakeComplete) => self.on_handshake_complete(payload),
            (Role::Client, PayloadType::ExitCode) => {
                if !self.event_room(1) {
                    return Ok(false);
                }
                let code = ExitCode::parse(payload).map_err(Error::Payload)?;
                self.exit_code = Some(code.0);
                let _ = self.events.push_back(Event::ExitCode(code.0));
                Ok(true)
            }
            (Role::Agent, PayloadType::HandshakeResponse) => self.on_handshake_response(payload),
            (Role::Agent, PayloadType::Size) => {
                if !self.event_room(1) {
                    return Ok(false);
                }
                let s = Size::parse(payload).map_err(Error::Payload)?;
                self.terminal_size = Some((s.cols, s.rows));
                let _ = self.events.push_back(Event::Resized {
                    cols: s.cols,
                    rows: s.rows,
                });
                Ok(true)
            }
            (Role::Agent, PayloadType::Flag) => {
                if !self.event_room(1) {
                    return Ok(false);
                }
                let f = Flag::parse(payload).map_err(Error::Payload)?;
                if f == Flag::TerminateSession {
                    self.peer_terminated = true;
                    if self.closing == Some(Closing::ChannelClose) {
                        // Already flushing towards a client that is leaving: stop waiting.
                        self.agent_close(CloseReason::Local);
                    }
                }
                let _ = self.events.push_back(Event::Flag(f));
                Ok(true)
            }
            _ => {
                // Acknowledged and ignored (e.g. an encryption challenge we never asked for).
                debug!("session: ignoring stream payload type {}", pt);
                Ok(true)
            }
        }
    }

    fn deliver_data(&mut self, stream: Stream, payload: &[u8]) -> Result<bool, Error> {
        if payload.len() > RECV {
            // Cannot ever fit: the peer sends bigger messages than this session was built for.
            self.close_fatal(CloseReason::ProtocolViolation);
            return Err(Error::Unexpected);
        }
        if !self.read_buf.fits(stream, payload.len())
            || (!self.readable_queued && !self.event_room(1))
        {
            return Ok(false);
        }
        self.read_buf.push(stream, payload);
        if !self.readable_queued && !payload.is_empty() {
            self.readable_queued = true;
            let _ = self.events.push_back(Event::Readable);
        }
        Ok(true)
    }

    fn close_fatal(&mut self, reason: CloseReason) {
        match self.role {
            Role::Client => self.close_with(reason),
            Role::Agent => {
                self.close_message.set_cut(reason.as_str());
                self.agent_close(reason);
            }
        }
    }

    fn on_handshake_request(&mut self, payload: &[u8]) -> Result<bool, Error> {
        if self.phase != Phase::Opening {
            // A second request: the first one was answered.
            return Ok(true);
        }
        let req = match HandshakeRequest::parse(payload) {
            Ok(r) => r,
            Err(e) => {
                self.close_fatal(CloseReason::ProtocolViolation);
                return Err(Error::Handshake(e));
            }
        };
        let mut processed: heapless::Vec<ProcessedAction<'_>, MAX_ACTIONS> = heapless::Vec::new();
        let mut session_type = None;
        let mut props_kept = false;
        let mut kms = false;
        for a in req.actions() {
            let p = match a {
                Action::SessionType {
                    session_type: t,
                    properties,
                } => {
                    session_type = Some(t);
                    props_kept = self.properties.set_cut(properties.unwrap_or(""));
                    ProcessedAction {
                        action_type: ActionType::SessionType,
                        status: ActionStatus::Success,
                        result: ActionResult::None,
                        error: JsonStr::EMPTY,
                    }
                }
                Action::KmsEncryption { kms_key_id, .. } => {
                    kms = true;
                    self.kms_key_id.set_json(&kms_key_id);
                    match self.encryption {
                        Encryption::Unsupported => ProcessedAction {
                            action_type: ActionType::KmsEncryption,
                            status: ActionStatus::Unsupported,
                            result: ActionResult::None,
                            error: JsonStr::new("KMS encryption is not supported by this client"),
                        },
                    }
                }
                Action::Other { action_type, .. } => ProcessedAction {
                    action_type: ActionType::Other(action_type),
                    status: ActionStatus::Unsupported,
                    result: ActionResult::None,
                    error: JsonStr::new("unsupported action"),
                },
            };
            if processed.push(p).is_err() {
                break;
            }
        }
        self.agent_version.set_json(&req.agent_version);
        let (id, created) = self.next_ids();
        let resp = HandshakeResponse {
            client_version: JsonStr::new(self.client_version.as_str()),
            processed_client_actions: List::new(&processed),
            errors: List::empty(),
        };
        let pushed = push_payload(
            &mut self.send,
            id,
            created,
            PayloadType::HandshakeResponse,
            |b| resp.emit(b),
        );
        if !pushed {
            return Ok(false);
        }
        self.progress_at = self.now;
        self.session_type = session_type;
        self.properties_kept = props_kept;
        self.kms_requested = kms;
        self.phase = Phase::Handshaking;
        Ok(true)
    }

    fn on_handshake_complete(&mut self, payload: &[u8]) -> Result<bool, Error> {
        if self.phase == Phase::Established {
            return Ok(true);
        }
        if !self.event_room(1) {
            return Ok(false);
        }
        match HandshakeComplete::parse(payload) {
            Ok(c) => {
                self.customer_message.set_json(&c.customer_message);
            }
            Err(e) => {
                // Only the message is lost; the handshake is still complete.
                self.stats.bad_input = self.stats.bad_input.wrapping_add(1);
                let _ = e;
                debug!("session: unreadable HandshakeComplete");
            }
        }
        self.establish();
        Ok(true)
    }

    /// The handshake is over: data may flow.
    fn establish(&mut self) {
        self.phase = Phase::Established;
        let _ = self.events.push_back(Event::HandshakeComplete);
        self.writable_pending = true;
        self.want_writable = false;
    }

    fn on_handshake_response(&mut self, payload: &[u8]) -> Result<bool, Error> {
        if self.phase != Phase::Handshaking {
            return Ok(true);
        }
        if !self.event_room(1) {
            return Ok(false);
        }
        let resp = match HandshakeResponse::parse(payload) {
            Ok(r) => r,
            Err(e) => {
                self.close_fatal(CloseReason::ProtocolViolation);
                return Err(Error::Handshake(e));
            }
        };
        self.client_version.set_json(&resp.client_version);
        let status = |t: ActionType<'_>| {
            resp.processed_client_actions
                .iter()
                .find(|p| p.action_type == t)
                .map(|p| p.status)
        };
        let session_ok = status(ActionType::SessionType) == Some(ActionStatus::Success);
        let kms_ok =
            !self.kms_requested || status(ActionType::KmsEncryption) == Some(ActionStatus::Success);
        if !session_ok || !kms_ok {
            self.close_message.set_cut(if session_ok {
                "the client did not set up KMS encryption"
            } else {
                "the client refused the session type"
            });
            self.agent_close(CloseReason::HandshakeFailed);
            return Ok(true);
        }
        let elapsed_ns = (self.now - self.handshake_started)
            .total_millis()
            .saturating_mul(1_000_000);
        let (id, created) = self.next_ids();
        let complete = HandshakeComplete {
            time_to_complete_ns: i64::try_from(elapsed_ns).unwrap_or(i64::MAX),
            customer_message: JsonStr::new(self.customer_message.as_str()),
        };
        let pushed = push_payload(
            &mut self.send,
            id,
            created,
            PayloadType::HandshakeComplete,
            |b| complete.emit(b),
        );
        if !pushed {
            return Ok(false);
        }
        self.establish();
        Ok(true)
    }

    fn on_ack(&mut self, payload: &[u8]) -> Result<(), Error> {
        let ack = Acknowledge::parse(payload).map_err(Error::Payload)?;
        if ack.message_type != self.own_stream_type() {
            self.stats.unknown_acks = self.stats.unknown_acks.wrapping_add(1);
            return Ok(());
        }
        let (reordering, min_rtt) = (self.rtt.reordering(), self.rtt.min_rtt());
        match self.send.on_ack(
            ack.sequence_number,
            ack.message_id,
            self.now,
            reordering,
            min_rtt,
        ) {
            AckOutcome::New(sample) => {
                if let Some(s) = sample {
                    self.rtt.on_sample(s);
                }
                // A held message may have waited for send-buffer room (a handshake answer).
                self.drain();
                self.progress_at = self.now;
                if self.want_writable
                    && self.phase == Phase::Established
                    && self.send.unacked_bytes() < self.window
                    && self.send.room(1) > 0
                {
                    self.want_writable = false;
                    self.writable_pending = true;
                }
            }
            AckOutcome::Duplicate => {}
            AckOutcome::Unknown => {
                self.stats.unknown_acks = self.stats.unknown_acks.wrapping_add(1);
            }
        }
        Ok(())
    }

    fn on_channel_closed(&mut self, payload: &[u8]) -> Result<(), Error> {
        let r = ChannelClosed::parse(payload).map(|c| {
            self.close_message.set_json(&c.output);
        });
        let reason = if self.closing == Some(Closing::Terminate) {
            CloseReason::Terminated
        } else {
            CloseReason::ChannelClosed
        };
        if self.reorder.get(self.expected).is_some() {
            // Messages acknowledged and held for room in the read buffer come first: the peer
            // counts them as delivered.
            self.close_after_drain = Some(reason);
        } else {
            self.close_with(reason);
        }
        r.map_err(Error::Payload)
    }

    // ----- emission -----------------------------------------------------------------------

    fn emit_open(&mut self, buf: &mut [u8]) -> Result<Transmit, InsufficientSize> {
        let rid = self.request_id.to_hyphenated();
        let cid = self.client_id.to_hyphenated();
        let (rid, cid) = (ascii(&rid), ascii(&cid));
        let open = OpenDataChannelInput {
            message_schema_version: JsonStr::new(OpenDataChannelInput::SCHEMA_VERSION),
            request_id: JsonStr::new(rid),
            token_value: JsonStr::new(self.token.as_ref().map_or("", OwnedToken::expose_secret)),
            client_id: JsonStr::new(cid),
            client_version: JsonStr::new(self.client_version.as_str()),
        };
        let len = open.emit(buf).map_err(insufficient(0))?;
        self.open_pending = false;
        self.token = None;
        Ok(Transmit {
            len,
            kind: TransmitKind::Text,
        })
    }

    fn frame_header(&self, message_type: MessageType, flags: u64) -> Header {
        Header {
            message_type,
            schema_version: SCHEMA_VERSION,
            created_date: self.created_date(),
            sequence_number: 0,
            flags,
            message_id: Uuid::NIL,
            payload_type: PayloadType::Null,
        }
    }

    /// Writes an unsequenced frame whose payload `emit` writes after the header.
    fn emit_unsequenced(
        &mut self,
        buf: &mut [u8],
        mut header: Header,
        emit: impl FnOnce(&mut [u8]) -> Result<usize, payload::Error>,
    ) -> Result<Transmit, InsufficientSize> {
        let body = buf.get_mut(HEADER_LEN..).ok_or(InsufficientSize {
            required: HEADER_LEN + 256,
        })?;
        let n = emit(body).map_err(insufficient(HEADER_LEN))?;
        header.message_id = self.rng.uuid();
        let len = header.emit_in_place(buf, n)?;
        Ok(Transmit {
            len,
            kind: TransmitKind::Binary,
        })
    }

    fn emit_control(&mut self, c: Control, buf: &mut [u8]) -> Result<Transmit, InsufficientSize> {
        match c {
            Control::Ack { id, seq } => {
                let ack = Acknowledge {
                    message_type: self.peer_stream_type(),
                    message_id: id,
                    sequence_number: seq,
                    is_sequential: true,
                };
                let h = self.frame_header(MessageType::Acknowledge, ACK_FLAGS);
                self.emit_unsequenced(buf, h, |b| ack.emit(b))
            }
            Control::Pause | Control::Resume => {
                let t = if matches!(c, Control::Pause) {
                    MessageType::PausePublication
                } else {
                    MessageType::StartPublication
                };
                let h = self.frame_header(t, 0);
                self.emit_unsequenced(buf, h, |b| {
                    let d = b
                        .get_mut(..2)
                        .ok_or(payload::Error::BufferTooSmall { required: 2 })?;
                    d.copy_from_slice(b"{}");
                    Ok(2)
                })
            }
        }
    }

    fn emit_channel_closed(&mut self, buf: &mut [u8]) -> Result<Transmit, InsufficientSize> {
        let mut h = self.frame_header(MessageType::ChannelClosed, 0);
        let body_id = self.rng.uuid().to_hyphenated();
        let date = Decimal::new(h.created_date);
        let date = date.as_str();
        let cc = ChannelClosed {
            message_id: JsonStr::new(ascii(&body_id)),
            created_date: JsonStr::new(date),
            destination_id: JsonStr::EMPTY,
            session_id: JsonStr::EMPTY,
            message_type: JsonStr::new("channel_closed"),
            schema_version: 1,
            output: JsonStr::new(self.close_message.as_str()),
        };
        let body = buf.get_mut(HEADER_LEN..).ok_or(InsufficientSize {
            required: HEADER_LEN + 512,
        })?;
        let n = cc.emit(body).map_err(insufficient(HEADER_LEN))?;
        h.message_id = self.rng.uuid();
        let len = h.emit_in_place(buf, n)?;
        Ok(Transmit {
            len,
            kind: TransmitKind::Binary,
        })
    }

    fn emit_stored(&mut self, seq: i64, buf: &mut [u8]) -> Result<Transmit, InsufficientSize> {
        let Some(&s) = self.send.get(seq) else {
            return Err(InsufficientSize { required: 0 });
        };
        let p = self.send.payload(&s);
        let required = HEADER_LEN + p.len();
        if buf.len() < required {
            return Err(InsufficientSize { required });
        }
        buf[HEADER_LEN..required].copy_from_slice(p);
        let h = Header {
            message_type: self.own_stream_type(),
            schema_version: SCHEMA_VERSION,
            created_date: s.created_date,
            sequence_number: seq,
            flags: 0,
            message_id: s.id,
            payload_type: PayloadType::from(s.payload_type),
        };
        let len = h.emit_in_place(buf, p.len())?;
        if s.transmissions > 0 {
            trace!("session: resending message {}", seq);
            self.stats.retransmits = self.stats.retransmits.wrapping_add(1);
        }
        self.send.mark_sent(seq, self.now);
        Ok(Transmit {
            len,
            kind: TransmitKind::Binary,
        })
    }
}

/// Appends a sequenced control message whose payload `emit` writes; `false` when it does not
/// fit now.
fn push_payload<const B: usize, const S: usize>(
    send: &mut SendBuffer<B, S>,
    id: Uuid,
    created: u64,
    payload_type: PayloadType,
    emit: impl FnOnce(&mut [u8]) -> Result<usize, payload::Error>,
) -> bool {
    let max = send.room(CONTROL_MAX);
    max > 0
        && send
            .push(id, payload_type.into(), created, max, |b| emit(b).ok())
            .is_some()
}

fn insufficient(extra: usize) -> impl Fn(payload::Error) -> InsufficientSize {
    move |e| match e {
        payload::Error::BufferTooSmall { required } => InsufficientSize {
            required: required + extra,
        },
        // Our own payloads only fail for lack of room.
        _ => InsufficientSize { required: 0 },
    }
}

/// A hyphenated UUID as text.
fn ascii(b: &[u8; 36]) -> &str {
    core::str::from_utf8(b).unwrap_or("")
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests;
