//! PLACEHOLDER until the `engine` branch (ssm_proto::session) is merged.
//!
//! Mirrors the agreed engine API so this crate's public API compiles and other crates can build
//! on it. It does nothing: a session never opens. Every use goes through `crate::engine`, which
//! becomes `ssm_proto::session` at the merge, and this file is deleted.
#![allow(
    dead_code,
    missing_docs,
    clippy::unused_self,
    reason = "placeholder, deleted at the engine merge"
)]

use core::fmt;

pub use ssm_proto::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    StandardStream,
    InteractiveCommands,
    NonInteractiveCommands,
    Port,
}

impl SessionType {
    pub const fn as_str(&self) -> &'static str {
        match self {
            SessionType::StandardStream => "Standard_Stream",
            SessionType::InteractiveCommands => "InteractiveCommands",
            SessionType::NonInteractiveCommands => "NonInteractiveCommands",
            SessionType::Port => "Port",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    TerminateSession,
    Unknown(u32),
}

impl From<u32> for Flag {
    fn from(v: u32) -> Self {
        match v {
            2 => Flag::TerminateSession,
            v => Flag::Unknown(v),
        }
    }
}

impl From<Flag> for u32 {
    fn from(f: Flag) -> u32 {
        match f {
            Flag::TerminateSession => 2,
            Flag::Unknown(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentHandshake<'a> {
    pub agent_version: &'a str,
    pub session_type: SessionType,
    pub properties: &'a str,
    pub kms_key_id: Option<&'a str>,
    pub customer_message: &'a str,
}

#[derive(Debug, Clone, Copy)]
pub struct Config<'a> {
    pub role: Role,
    pub seed: u64,
    pub chunk_size: usize,
    pub window: usize,
    pub agent: AgentHandshake<'a>,
}

impl Config<'static> {
    pub const fn client(seed: u64) -> Self {
        Config {
            role: Role::Client,
            seed,
            chunk_size: 1024,
            window: 256 * 1024,
            agent: AgentHandshake {
                agent_version: "",
                session_type: SessionType::StandardStream,
                properties: "null",
                kms_key_id: None,
                customer_message: "",
            },
        }
    }
}

impl<'a> Config<'a> {
    pub const fn agent(seed: u64, handshake: AgentHandshake<'a>) -> Self {
        let c = Config::client(seed);
        Config {
            role: Role::Agent,
            seed,
            chunk_size: c.chunk_size,
            window: c.window,
            agent: handshake,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Incoming<'a> {
    Text(&'a [u8]),
    Binary(&'a [u8]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransmitKind {
    Text,
    Binary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub len: usize,
    pub kind: TransmitKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Output,
    StdErr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    ChannelClosed,
    Local,
    Terminated,
    GaveUp,
    HandshakeFailed,
    ProtocolViolation,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("closed")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Opened,
    HandshakeComplete,
    Readable,
    Writable,
    Resized { cols: u32, rows: u32 },
    Flag(Flag),
    ExitCode(i32),
    PublicationPaused,
    PublicationResumed,
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error;
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("placeholder")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteError;
impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("placeholder")
    }
}

pub struct Session;

impl Session {
    pub fn new(_config: Config<'_>, _now: Instant) -> Self {
        Session
    }
    pub fn handle_connected(&mut self, _now: Instant, _token: &str) -> Result<(), Error> {
        Ok(())
    }
    pub fn handle_input(&mut self, _now: Instant, _m: Incoming<'_>) -> Result<(), Error> {
        Ok(())
    }
    pub fn handle_timeout(&mut self, _now: Instant) {}
    pub fn handle_transport_closed(&mut self, _now: Instant) {}
    pub fn set_unix_time(&mut self, _now: Instant, _ms: u64) {}
    pub fn write(&mut self, _now: Instant, _b: &[u8]) -> Result<usize, WriteError> {
        Err(WriteError)
    }
    pub fn write_stderr(&mut self, _now: Instant, _b: &[u8]) -> Result<usize, WriteError> {
        Err(WriteError)
    }
    pub fn resize(&mut self, _c: u32, _r: u32) {}
    pub fn send_flag(&mut self, _f: Flag) -> Result<(), WriteError> {
        Ok(())
    }
    pub fn terminate(&mut self, _now: Instant) {}
    pub fn close(&mut self, _now: Instant) {}
    pub fn send_exit_code(&mut self, _now: Instant, _c: i32) -> Result<(), WriteError> {
        Ok(())
    }
    pub fn close_channel(&mut self, _now: Instant, _r: &str) {}
    pub fn poll_transmit(
        &mut self,
        _now: Instant,
        _b: &mut [u8],
    ) -> Result<Option<Transmit>, ssm_proto::wire::InsufficientSize> {
        Ok(None)
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        None
    }
    pub fn read(&mut self, _b: &mut [u8]) -> Option<(Stream, usize)> {
        None
    }
    pub fn close_message(&self) -> &str {
        ""
    }
    pub fn peer_token(&self) -> Option<&str> {
        None
    }
    pub fn customer_message(&self) -> &str {
        ""
    }
    pub fn session_type(&self) -> Option<SessionType> {
        None
    }
    pub fn properties(&self) -> Option<&str> {
        None
    }
    pub fn agent_version(&self) -> Option<&str> {
        None
    }
    pub fn client_version(&self) -> Option<&str> {
        None
    }
}
