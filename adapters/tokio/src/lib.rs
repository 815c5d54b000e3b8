//! # ssm-tokio
//!
//! Runs the [`ssm_proto`] Session Manager engine over a real WebSocket on tokio, in the client
//! role ([`connect`]) and in the agent role ([`AgentSession`]). A local Session Manager that
//! speaks the SSM JSON API and runs real shells and commands over the agent role is the
//! `ssm-emulator` crate (`adapters/emulator`); this crate carries none of it.
//!
//! It makes no protocol decision: when to ack, retransmit, or close is the engine's. This crate
//! moves bytes and time:
//!
//! ```text
//!   your task ── StreamWriter (input) ──►┐                         ┌── reader task ◄── WebSocket
//!   your task ◄─ StreamReader (output) ──┤  driver task            │   (faults, optional)
//!   your task ◄─ StreamReader (stderr) ──┤   handle_input ◄────────┘
//!   your task ◄─ Events ─────────────────┤   poll_transmit ────────┐
//!   Control (resize, terminate, ...) ───►┘   one timer: poll_timeout└── writer task ──► WebSocket
//! ```
//!
//! Each arrow into or out of the driver is one queue, bounded in bytes: a [`StreamWriter`]'s bytes
//! and the [`Control`] requests that must follow them (a flag, an exit code) travel in the same
//! queue, and an agent's [`StreamReader`] gives the client's flags where they fall among its bytes
//! ([`StreamReader::read_part`]), so nothing counts bytes to keep them in order.
//!
//! One driver task per session. Engine time is milliseconds since the task started, mapped to a
//! tokio [`Instant`](tokio::time::Instant); wall-clock time is fed with `set_unix_time`.
//!
//! ## Client role
//! ```no_run
//! # async fn demo() -> Result<(), ssm_tokio::Error> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let answer = br#"{"SessionId":"s-1","StreamUrl":"wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s-1?role=publish_subscribe","TokenValue":"token"}"#;
//! let grant = ssm_tokio::Grant::parse(answer).expect("an AWS StartSession answer");
//! let mut session = ssm_tokio::connect(grant, ssm_tokio::ConnectOptions::default()).await?;
//! session.control.resize(120, 40);
//! session.input.write_all(b"echo hello\r").await?;
//! let mut buf = [0u8; 1024];
//! let n = session.output.read(&mut buf).await?;
//! # let _ = n; Ok(()) }
//! ```
//! [`connect`] returns once the WebSocket is open (so an unreachable endpoint, a TLS failure or a
//! refused upgrade fail right there); the handshake and everything after it arrive as
//! [`SessionEvent`]s, and [`ClientSession::wait`] gives the [`Outcome`] (exit code, close
//! message) or an [`Error`] (handshake failed: bad token; connection lost; ...).
//!
//! Reconnection: when the WebSocket drops while the session is open and
//! [`ConnectOptions::resume`] is set, the driver calls it (your `ResumeSession` call, giving a
//! new token and URL), reconnects, and the engine resends what the peer has not acknowledged.
//! Without it, a drop ends the session with [`Error::ConnectionLost`].
//!
//! TLS: `wss://` with rustls (ring), trusting the system store and the webpki roots, plus
//! [`TlsOptions::extra_ca_file`] and `AWS_CA_BUNDLE`. `ws://` only with
//! [`TlsOptions::allow_plain_ws`] (for the emulator).
//!
//! Every grant ([`connect`]'s and each [`ResumeFn`] answer) is a [`Grant`], the core's validated
//! StartSession answer: the stream URL already passed the endpoint policy
//! ([`Endpoints`]) of whoever parsed it, and the token is wiped on drop and prints `<redacted>`.
//! The token never appears in a log line or an error.
//!
//! Signed upgrade: [`ConnectOptions::upgrade_headers`] adds headers (SigV4, PROTOCOL.md §6b) to
//! every WebSocket upgrade request, the first and each resumed one.
//!
//! ## Agent role
//! [`AgentSession::spawn`] runs the engine in the agent role; hand it accepted WebSockets with
//! [`Control::attach`] (again after the client resumes). Write your output to
//! [`AgentSession::output`] / [`AgentSession::stderr`], then [`Control::send_exit_code`] and
//! [`Control::close_channel`]: both wait for the bytes written before them.
//!
//! ## Port forwarding
//! [`forward`]: smux-multiplexed and basic port forwarding over a session's byte stream, with
//! TCP (any bind address, port 0) and unix socket listeners.
//!
//! ## Status (what the tests in `tests/` show against `ssm-emulator`, over real loopback sockets with TLS)
//! - Client ↔ emulator: a shell in a PTY (`echo`, `test -t 0`, `exit`), resize reaching the PTY
//!   (`stty size`), non-interactive commands with separate stdout/stderr and the exit code
//!   (`sh -c 'exit 3'` → 3), 10 MiB both ways intact (SHA-256) with and without drop,
//!   duplicate, reorder and delay faults, repeated WebSocket cuts with resume losing nothing,
//!   bad token, untrusted CA, unreachable endpoint and `ws://` policy errors.
//! - The SSM JSON API (StartSession, ResumeSession, TerminateSession, errors) over HTTP.
//! - Port sessions through the emulator: smux-multiplexed and basic (old agent) forwarding to
//!   a target `host:port`, SSH as a ProxyCommand (see [`forward`] and `tests/port_forwarding.rs`),
//!   and a benchmark (`benches/port_forwarding.rs`, figures in BENCHMARKS.md).
//! - Bulk transfers use the engine's default 256 KiB window: the engine no longer falls into a
//!   resend storm when the queues grow longer than its timeout (see `ssm_proto::session`).
//! - Signed upgrades: [`ConnectOptions::upgrade_headers`] carries the caller's SigV4 headers
//!   (ssm-session makes them with `aws-sigv4`); the emulator's strict mode
//!   (`ssm_emulator::EmulatorConfig::credentials`) verifies them, and every API call.
//! - Not here: KMS encryption (the engine answers "unsupported").

#![allow(
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core,
    reason = "a std crate; the workspace lint guards the no_std core"
)]

use std::time::Duration;

mod driver;
pub(crate) use ssm_proto::session as engine;
mod error;
mod faults;
pub mod forward;
mod handle;
pub mod kms;
mod pipe;
mod tls;
mod transport;

pub use driver::{AuthorizeFn, ResumeFn, UpgradeHeadersFn};
/// The engine's configuration (`ssm_proto::session::Config`).
pub use engine::Config as EngineConfig;
pub use error::Error;
pub use faults::{Faults, Rng};
pub use handle::{
    AgentSession, ClientSession, Control, Events, Finished, HandshakeInfo, Outcome, SessionEvent,
};
pub use pipe::{Part, StreamReader, StreamWriter};
/// Where the endpoint policy of a [`Grant`] comes from (`ssm_proto::model::Endpoints`).
pub use ssm_proto::model::Endpoints;
pub use tls::TlsOptions;
pub use transport::{ws_config, WsIo};

/// A session grant: the validated `SessionId`, `StreamUrl` and `TokenValue` of a `StartSession`
/// or `ResumeSession` answer (the core's `OwnedStartSessionResponse`; the token is zeroized on
/// drop and redacted in `Debug`).
pub type Grant = ssm_proto::model::OwnedStartSessionResponse;

/// How [`connect`] behaves. `Default` is right for AWS.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Trust and `ws://` policy.
    pub tls: TlsOptions,
    /// Bound on TCP connect, TLS handshake and WebSocket upgrade, each.
    pub connect_timeout: Duration,
    /// Terminal size to send once the handshake completes (shells).
    pub terminal_size: Option<(u16, u16)>,
    /// Called for a new grant when the WebSocket drops; `None` ends the session instead.
    pub resume: Option<ResumeFn>,
    /// Extra headers for every WebSocket upgrade request (a SigV4 signature); `None` sends none.
    pub upgrade_headers: Option<UpgradeHeadersFn>,
    /// The engine's configuration; `None` uses `Config::client` with a random seed.
    pub config: Option<EngineConfig<'static>>,
    /// Faults injected between the engine and the socket (tests).
    pub faults: Option<Faults>,
    /// Pause after each data message sent (the official client sleeps 1 ms); `None` sends as
    /// fast as the engine's window allows.
    pub pacing: Option<Duration>,
    /// KMS encryption when the agent asks for it (PROTOCOL.md §6): how to get a data key.
    /// `None` answers the agent "unsupported", and an agent that requires KMS then refuses the
    /// session.
    pub kms: Option<kms::ClientKms>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            tls: TlsOptions::default(),
            connect_timeout: Duration::from_secs(15),
            terminal_size: None,
            resume: None,
            upgrade_headers: None,
            config: None,
            faults: None,
            pacing: None,
            kms: None,
        }
    }
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("terminal_size", &self.terminal_size)
            .field("resume", &self.resume.is_some())
            .field("upgrade_headers", &self.upgrade_headers.is_some())
            .field("faults", &self.faults)
            .field("pacing", &self.pacing)
            .field("kms", &self.kms)
            .finish_non_exhaustive()
    }
}

/// A seed for the engine's message-id generator, from the OS's hash randomness and the clock.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Opens the data channel of `grant` and starts the session's driver task (client role).
///
/// Returns once the WebSocket is open; the handshake follows as a
/// [`SessionEvent::HandshakeComplete`].
///
/// # Errors
/// [`Error::InvalidUrl`], [`Error::PlainWsRefused`], [`Error::Unreachable`], [`Error::Tls`],
/// [`Error::WebSocket`], [`Error::Io`] (the upgrade headers could not be made). Must be called inside a tokio runtime.
pub async fn connect(grant: Grant, options: ConnectOptions) -> Result<ClientSession, Error> {
    let ws = transport::connect_ws(
        grant.stream_url(),
        &options.tls,
        options.connect_timeout,
        options.upgrade_headers.as_ref(),
    )
    .await?;
    let mut config = options
        .config
        .unwrap_or_else(|| EngineConfig::client(random_seed()));
    if options.kms.is_some() {
        // This client always acknowledges the challenge (what `require_challenge` means for an
        // agent does not apply to it).
        config.encryption = engine::Encryption::Kms {
            require_challenge: false,
        };
    }
    let chunk = config_chunk(&config);
    let setup = driver::Setup {
        role: driver::Role::Client {
            tls: options.tls,
            connect_timeout: options.connect_timeout,
            resume: options.resume,
            upgrade_headers: options.upgrade_headers,
            grant: Box::new(grant),
            initial_size: options.terminal_size,
            kms: options.kms,
        },
        faults: options.faults,
        pacing: options.pacing,
        chunk,
        orphan_timeout: None,
    };
    let u = start(config, setup, Some(ws));
    Ok(ClientSession {
        input: u.writers.writer(0),
        output: u.output,
        stderr: u.stderr,
        events: u.events,
        control: u.control,
        finished: u.finished,
    })
}

/// The application's ends of a running driver.
struct UserEnds {
    /// Makes the writers of the engine's streams (client input; agent output and stderr).
    writers: pipe::InboxSender,
    /// The Output stream from the engine.
    output: StreamReader,
    /// StdErr from the engine (client role; an agent receives none).
    stderr: StreamReader,
    events: Events,
    control: Control,
    finished: Finished,
}

/// Creates the engine and spawns its driver; `ws` is the first transport.
fn start(config: EngineConfig<'_>, setup: driver::Setup, ws: Option<transport::BoxWs>) -> UserEnds {
    let (writers, inbox) = pipe::inbox();
    let (data_out, output) = pipe::outbox();
    let (stderr_out, stderr) = pipe::outbox();
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let ends = driver::Ends {
        inbox,
        sinks: [data_out, stderr_out],
        events: ev_tx,
        commands: cmd_rx,
    };
    let session = new_engine(config);
    let task = tokio::spawn(driver::run(session, setup, ends, ws));
    UserEnds {
        control: Control {
            tx: cmd_tx,
            ordered: writers.clone(),
        },
        writers,
        output,
        stderr,
        events: Events { rx: ev_rx },
        finished: Finished(task),
    }
}

/// Options of the agent role.
#[derive(Clone, Default)]
pub struct AgentOptions {
    /// Accept a client's token? `None` accepts any.
    pub authorize: Option<AuthorizeFn>,
    /// Faults injected between the engine and the socket.
    pub faults: Option<Faults>,
    /// Pause after each data message sent (the real agent sleeps 1 ms per message).
    pub pacing: Option<Duration>,
    /// End the session when no WebSocket is attached for this long (also before the first).
    pub reconnect_timeout: Option<Duration>,
    /// Decrypts the client's KMS data key, for sessions whose configuration asks for KMS
    /// (`AgentHandshake::kms_key_id`).
    pub kms: Option<kms::AgentKms>,
}

impl std::fmt::Debug for AgentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentOptions")
            .field("authorize", &self.authorize.is_some())
            .field("faults", &self.faults)
            .field("pacing", &self.pacing)
            .field("reconnect_timeout", &self.reconnect_timeout)
            .field("kms", &self.kms)
            .finish()
    }
}

impl AgentSession {
    /// Starts an agent-role driver with no transport; give it one with [`Control::attach`].
    /// Must be called inside a tokio runtime.
    pub fn spawn(config: EngineConfig<'_>, options: AgentOptions) -> AgentSession {
        let setup = driver::Setup {
            role: driver::Role::Agent {
                authorize: options.authorize,
                kms: options.kms,
            },
            faults: options.faults,
            pacing: options.pacing,
            chunk: config_chunk(&config),
            orphan_timeout: options.reconnect_timeout,
        };
        let u = start(config, setup, None);
        AgentSession {
            input: u.output,
            output: u.writers.writer(0),
            stderr: u.writers.writer(1),
            events: u.events,
            control: u.control,
            finished: u.finished,
        }
    }
}

fn new_engine(config: EngineConfig<'_>) -> Box<driver::Engine> {
    let now = ssm_proto::Instant::ZERO;
    Box::new(driver::Engine::new(config, now))
}

fn config_chunk(config: &EngineConfig<'_>) -> usize {
    config.chunk_size
}
