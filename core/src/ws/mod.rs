//! WebSocket (RFC 6455) framing for transports without an allocator: client and server, sans-IO.
//!
//! Three layers, each usable alone:
//! - [`handshake`]: the HTTP/1.1 upgrade. The client writes its GET into your buffer
//!   ([`handshake::ClientRequest::write`]) and checks the answer incrementally
//!   ([`handshake::parse_response`], httparse style: [`Status::Partial`] means "feed more bytes").
//!   The server side ([`handshake::parse_request`], [`handshake::write_response`]) serves tests and
//!   the local emulator.
//! - [`frame`]: one frame header ([`frame::FrameHeader`]) parsed from or emitted into a slice, and
//!   [`frame::apply_mask`].
//! - [`WebSocket`]: a message reassembler over an inline buffer of `N` bytes. Feed it any byte
//!   slices ([`WebSocket::handle_input`], split anywhere), take whole messages
//!   ([`WebSocket::poll_message`]), and drain the control frames it queues (pong, close) with
//!   [`WebSocket::poll_transmit`].
//!
//! What it never does: IO, clocks, allocation, `unsafe`. Masking keys come from your random source
//! (any `FnMut() -> [u8; 4]`).
//!
//! ```text
//!  TCP/TLS bytes ─► parse_response (consumed n) ─► leftover + later bytes ─► WebSocket::handle_input
//!                                                              poll_message ◄─┘   │
//!  WebSocket::write_message / poll_transmit ─► your buffer ─► TCP/TLS             ▼ (pong, close)
//! ```
//!
//! Not supported: extensions (RSV bits must be 0; we never offer `permessage-deflate`) and
//! subprotocols.

mod conn;
pub mod frame;
pub mod handshake;

#[cfg(test)]
mod tests;

use core::fmt;

pub use conn::{CloseFrame, Message, MessageKind, State, WebSocket};
pub use frame::{FrameHeader, Opcode};

pub use crate::wire::InsufficientSize;

/// Which end of the connection this is: it decides masking (clients mask, servers do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// Masks every frame it sends; rejects masked frames.
    Client,
    /// Sends unmasked frames; rejects unmasked frames.
    Server,
}

/// Result of an incremental parse: done, or the input ends too early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status<T> {
    /// Parsed; the value usually carries how many bytes were consumed.
    Complete(T),
    /// Not enough bytes yet: call again with more (the same prefix plus what arrived).
    Partial,
}

/// Close status codes (RFC 6455 §7.4.1) this crate sends.
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away.
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Text that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message larger than the receiver can take.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// No status code was present in the close frame (never sent on the wire).
    pub const NO_STATUS: u16 = 1005;

    /// Whether `code` may appear in a close frame on the wire (RFC 6455 §7.4, IANA registry).
    pub const fn is_valid(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// A WebSocket error. Except [`Error::Closed`] and [`Error::BufferTooSmall`] (your calls), each is the
/// peer's fault; [`Error::close_code`] tells which close code to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The upgrade response or request is not well-formed HTTP/1.1.
    HandshakeMalformed,
    /// The upgrade response status is not 101 (the status is included).
    HandshakeStatus(u16),
    /// `Upgrade: websocket` is missing.
    HandshakeUpgrade,
    /// `Connection: Upgrade` is missing.
    HandshakeConnection,
    /// `Sec-WebSocket-Accept` is missing or does not match the key.
    HandshakeAccept,
    /// The server selected an extension or subprotocol we never offered.
    HandshakeUnrequested,
    /// The request lacks `GET`, `Sec-WebSocket-Version: 13` or a valid `Sec-WebSocket-Key`.
    HandshakeRequest,
    /// A reserved bit is set without a negotiated extension.
    ReservedBits,
    /// A reserved opcode.
    UnknownOpcode,
    /// A control frame is fragmented or longer than 125 bytes.
    BadControlFrame,
    /// A continuation frame without a message to continue, or a new message while one is open.
    BadContinuation,
    /// A frame's mask bit is wrong for its direction (servers mask nothing, clients everything).
    BadMask,
    /// A frame or message is longer than the receiver's limit.
    MessageTooBig,
    /// A text message or close reason is not UTF-8.
    InvalidUtf8,
    /// A close frame with a 1-byte payload or an invalid status code.
    BadClose,
    /// The connection is closed (or failed): nothing more can be sent or received.
    Closed,
    /// The caller's buffer cannot hold the frame to send (bytes required included).
    BufferTooSmall(usize),
}

impl Error {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Error::HandshakeMalformed => "websocket handshake is not well-formed http/1.1",
            Error::HandshakeStatus(_) => "websocket handshake status is not 101",
            Error::HandshakeUpgrade => "websocket handshake lacks `upgrade: websocket`",
            Error::HandshakeConnection => "websocket handshake lacks `connection: upgrade`",
            Error::HandshakeAccept => "websocket handshake accept key is missing or wrong",
            Error::HandshakeUnrequested => {
                "websocket server selected an extension or subprotocol that was not offered"
            }
            Error::HandshakeRequest => {
                "websocket upgrade request lacks get, version 13 or a valid key"
            }
            Error::ReservedBits => "websocket frame sets reserved bits",
            Error::UnknownOpcode => "websocket frame has a reserved opcode",
            Error::BadControlFrame => "websocket control frame is fragmented or longer than 125",
            Error::BadContinuation => "websocket continuation frame out of place",
            Error::BadMask => "websocket frame masking is wrong for its direction",
            Error::MessageTooBig => "websocket message exceeds the receive limit",
            Error::InvalidUtf8 => "websocket text is not utf-8",
            Error::BadClose => "websocket close frame is malformed or has an invalid code",
            Error::Closed => "websocket is closed",
            Error::BufferTooSmall(_) => "buffer too small for the websocket frame",
        }
    }

    /// The close code to send the peer for this error, if the error is the peer's fault.
    pub const fn close_code(&self) -> Option<u16> {
        match self {
            Error::MessageTooBig => Some(close_code::MESSAGE_TOO_BIG),
            Error::InvalidUtf8 => Some(close_code::INVALID_PAYLOAD),
            Error::ReservedBits
            | Error::UnknownOpcode
            | Error::BadControlFrame
            | Error::BadContinuation
            | Error::BadMask
            | Error::BadClose => Some(close_code::PROTOCOL_ERROR),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::HandshakeStatus(s) => write!(f, "{} (got {})", self.as_str(), s),
            Error::BufferTooSmall(n) => write!(f, "{} ({} bytes required)", self.as_str(), n),
            _ => f.write_str(self.as_str()),
        }
    }
}

impl core::error::Error for Error {}

impl From<InsufficientSize> for Error {
    fn from(e: InsufficientSize) -> Self {
        Error::BufferTooSmall(e.required)
    }
}
