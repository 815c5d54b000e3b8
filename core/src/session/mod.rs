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

mod accessors;
mod agent;
mod channel;
mod client;
mod config;
mod emit;
mod event;
#[cfg(feature = "kms")]
mod kms;
#[cfg(not(feature = "kms"))]
#[path = "kms_off.rs"]
mod kms;
mod lifecycle;
mod port;
mod recv;
mod rng;
mod rtt;
mod send;
mod text;

pub use crate::payload::{Flag, SessionType};
pub use config::{
    AgentHandshake, Config, Encryption, Role, DEFAULT_CLIENT_VERSION, DEFAULT_REORDER,
};
pub use event::{
    CloseReason, EncryptionFailure, Error, Event, Incoming, Stats, Stream, Transmit, TransmitClass,
    TransmitKind, WriteError,
};
pub use port::{PortMode, PortModeError};
pub use recv::REORDER_SLOT_LEN;
pub use rng::SplitMix64;

use heapless::Deque;

use crate::model::{OwnedToken, Token};
use crate::payload::Size;
use crate::time::{Duration, Instant};
use crate::uuid::Uuid;
use crate::wire::{InsufficientSize, PayloadType, HEADER_LEN};

use emit::Control;
use kms::KmsState;
use lifecycle::{min_opt, Closing};
use recv::{ReadBuffer, Reorder};
use rtt::RttEstimator;
use send::SendBuffer;
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
///    returns `None` (send each one, text or binary as told, in the order given: a driver that
///    queues them lets only those whose [`TransmitClass::may_overtake`] pass others, and never
///    parses them, [`Transmit::class`] says what each is), then
///    [`poll_event`](Self::poll_event) until `None` (on [`Event::Readable`],
///    [`read`](Self::read) until `None`), then re-arm the timer with `poll_timeout`.
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
    /// Agent: an `Event::Flag` waits for `poll_event`; later messages wait for it.
    flag_unpolled: bool,
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
    /// The KMS handshake under way (PROTOCOL.md §6).
    kms: KmsState,
    /// Seals and opens the stream payloads once KMS encryption is set up; kept across
    /// reconnects. Wiped on drop.
    cipher: Option<kms::Cipher>,
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
            flag_unpolled: false,
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
            kms: KmsState::Off,
            cipher: None,
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
        let t = self.next_transmit(buf, false)?;
        if t.is_some() {
            self.stats.messages_out = self.stats.messages_out.wrapping_add(1);
        }
        Ok(t)
    }

    /// Like [`poll_transmit`](Self::poll_transmit), but only a message that may overtake
    /// queued data ([`TransmitClass::may_overtake`]: an acknowledgement). For a driver whose
    /// own send queue is full: it takes no data now (the engine times a message from when it
    /// hands it out), yet the acknowledgements the peer waits for still go, ahead of its queue.
    ///
    /// # Errors
    /// As `poll_transmit`.
    pub fn poll_overtaking(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Result<Option<Transmit>, InsufficientSize> {
        self.tick(now);
        let t = self.next_transmit(buf, true)?;
        if t.is_some() {
            self.stats.messages_out = self.stats.messages_out.wrapping_add(1);
        }
        Ok(t)
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
            match e {
                Event::Readable => self.readable_queued = false,
                Event::Flag(_) => self.flag_unpolled = false,
                _ => {}
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
}

#[cfg(test)]
mod tests;
