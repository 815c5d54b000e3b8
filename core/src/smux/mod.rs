//! smux **v1** (xtaci/smux), the stream multiplexer the SSM agent speaks over a port-forwarding
//! session's data stream, as a sans-IO, allocation-free codec and state machine.
//!
//! - [`frame`]: the 8-byte header and whole frames (typed view [`frame::Frame`], plus
//!   [`frame::Header`] and [`frame::FrameRepr`] with "need more bytes" parsing and `emit`).
//! - [`Mux`]: many streams over one byte stream: open ([`Mux::open`]) and accept
//!   ([`Event::Opened`]) streams, per-stream receive buffers, FIN both ways, keep-alive NOPs.
//!
//! Facts taken from xtaci/smux (`frame.go`, `session.go`, `mux.go`, v1.5, the version the official
//! plugin builds with): commands SYN 0, FIN 1, PSH 2, NOP 3; a client numbers its streams 3, 5,
//! 7, … and a server 2, 4, 6, … (the counter starts at 1 or 0 and is bumped by 2 before use);
//! `MaxFrameSize` 32768; keep-alive sends a NOP every 10 s and drops the session after 30 s
//! without a frame; PSH or FIN for an unknown stream is ignored, a SYN for a known one too; any
//! other version or command is a protocol error. Version 1 has no window: see [`Mux`] for how
//! this module bounds memory anyway.
//!
//! What it never does: IO, clocks (time comes in as [`Instant`](crate::Instant)), allocation, `unsafe`.

pub mod frame;
mod mux;

#[cfg(test)]
mod tests;

use core::fmt;

pub use mux::{Event, Mux, StreamId, Written};

use crate::time::Duration;
pub use crate::wire::InsufficientSize;

/// Which end this is: it decides stream id parity (smux clients use odd ids, servers even ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// The Session Manager client (`smux.Client` in the official plugin): ids 3, 5, 7, …
    Client,
    /// The agent side (`smux.Server`): ids 2, 4, 6, …
    Server,
}

/// Keep-alive timing (smux `KeepAliveInterval` / `KeepAliveTimeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct KeepAlive {
    /// A NOP is sent this often. smux default: 10 s.
    pub interval: Duration,
    /// The session fails after this long without any frame from the peer. smux default: 30 s.
    pub timeout: Duration,
}

impl KeepAlive {
    /// smux's defaults: NOP every 10 s, give up after 30 s of silence.
    pub const SMUX_DEFAULT: KeepAlive = KeepAlive {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
    };
}

/// Multiplexer settings. Fields are public; [`Config::default`] matches smux's `DefaultConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Largest PSH data this end sends in one frame. smux `MaxFrameSize` default: 32768.
    pub max_frame_size: u16,
    /// Largest PSH data accepted from the peer; larger is [`Error::FrameTooLarge`]. Default
    /// 65535 (the field's limit, the most any smux peer may be configured to send).
    pub max_receive_frame: u16,
    /// Keep-alive, or `None` when disabled (the official plugin disables it for agents
    /// ≥ 3.1.1511.0 because NOPs defeat Session Manager's idle timeout; PROTOCOL.md §5).
    pub keep_alive: Option<KeepAlive>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 32768,
            max_receive_frame: u16::MAX,
            keep_alive: Some(KeepAlive::SMUX_DEFAULT),
        }
    }
}

impl Config {
    /// The configuration the official plugin uses with an agent of `agent_version`: smux defaults,
    /// keep-alive off when [`agent_disables_keep_alive`] says so.
    pub fn for_agent(agent_version: &str) -> Self {
        let mut c = Config::default();
        if agent_disables_keep_alive(agent_version) {
            c.keep_alive = None;
        }
        c
    }
}

/// Whether an agent of this version expects smux keep-alive off (≥ 3.1.1511.0). An unparsable
/// version keeps keep-alive on, as the official plugin does.
pub fn agent_disables_keep_alive(agent_version: &str) -> bool {
    version_at_least(agent_version, [3, 1, 1511, 0])
}

/// Whether a `LocalPortForwarding` port session between these versions is smux-multiplexed
/// (PROTOCOL.md §5): the agent multiplexes from 3.0.196.0, and only for clients reporting at
/// least 1.1.70 (the official plugin's thresholds).
pub fn multiplexed(agent_version: &str, client_version: &str) -> bool {
    version_at_least(agent_version, [3, 0, 196, 0])
        && version_at_least(client_version, [1, 1, 70, 0])
}

/// Whether dotted version `v` (up to four numbers, missing ones count as 0) is at least `min`.
/// Anything unparsable is "not at least".
pub fn version_at_least(v: &str, min: [u32; 4]) -> bool {
    let v = v.trim();
    let mut parts = [0u32; 4];
    let mut it = v.split('.');
    for p in parts.iter_mut() {
        match it.next().map(str::parse::<u32>) {
            Some(Ok(n)) => *p = n,
            Some(Err(_)) => return false,
            None => break,
        }
    }
    it.next().is_none() && !v.is_empty() && parts >= min
}

/// An smux error. The first group is the peer's fault and fails the whole multiplexer; the
/// second is about your call and changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// A frame view is shorter than its header plus announced data.
    Truncated,
    /// The version byte is not 1.
    BadVersion,
    /// The command is not SYN, FIN, PSH or NOP.
    BadCommand,
    /// A SYN, FIN or NOP announces data.
    BadLength,
    /// PSH data longer than [`Config::max_receive_frame`].
    FrameTooLarge,
    /// No frame from the peer within the keep-alive timeout.
    KeepAliveTimeout,

    /// The multiplexer failed earlier (see [`Mux::error`]); nothing more can happen.
    Failed,
    /// No such stream (never opened, or already released).
    UnknownStream,
    /// Writing after [`Mux::close`] on this stream.
    StreamClosed,
    /// Every stream slot is in use.
    TooManyStreams,
    /// Stream ids ran out (2³¹ streams); open a new session.
    IdsExhausted,
    /// Nothing to read yet; an [`Event::Readable`] will tell when there is.
    Blocked,
    /// The output buffer cannot hold a frame header (and a SYN, if one is due) plus one byte.
    BufferTooSmall,
}

impl Error {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Error::Truncated => "smux frame shorter than its header and data",
            Error::BadVersion => "smux frame version is not 1",
            Error::BadCommand => "smux frame command is not syn, fin, psh or nop",
            Error::BadLength => "smux control frame carries data",
            Error::FrameTooLarge => "smux frame data exceeds the receive limit",
            Error::KeepAliveTimeout => "smux peer silent past the keep-alive timeout",
            Error::Failed => "smux session failed earlier",
            Error::UnknownStream => "smux stream unknown or released",
            Error::StreamClosed => "smux stream already closed for writing",
            Error::TooManyStreams => "smux stream slots all in use",
            Error::IdsExhausted => "smux stream ids exhausted",
            Error::Blocked => "smux stream has nothing to read yet",
            Error::BufferTooSmall => "buffer too small for an smux frame",
        }
    }

    /// Whether the peer caused it (the multiplexer is then failed).
    pub const fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            Error::Truncated
                | Error::BadVersion
                | Error::BadCommand
                | Error::BadLength
                | Error::FrameTooLarge
                | Error::KeepAliveTimeout
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for Error {}
