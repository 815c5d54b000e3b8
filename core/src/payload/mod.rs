//! The control payloads of PROTOCOL.md §3: JSON (acknowledge, handshake, size, channel_closed,
//! OpenDataChannelInput) and binary/text (flag, exit code).
//!
//! Every type has `parse(&'a [u8]) -> Result<Self, Error>`, which borrows from the input and never
//! allocates, and `emit(&self, &mut [u8]) -> Result<usize, Error>`, which writes into the start of
//! the buffer and returns the length (or [`Error::BufferTooSmall`] with nothing written).
//!
//! Parsing follows the official client's Go decoder where it is lenient and safe: unknown keys
//! are ignored, keys match ignoring ASCII case, a repeated key keeps its last value, `null` reads
//! as an absent value. It is strict where Go would guess: nesting deeper than
//! [`json::MAX_DEPTH`] levels, numbers out of range, fractions where integers belong and invalid
//! escapes are errors.
//!
//! Strings stay in their wire form as [`JsonStr`]: [`JsonStr::as_str`] borrows the text when it
//! has no escapes and returns [`Error::EscapedString`] when it does (never the escaped bytes as if
//! they were the value); [`JsonStr::unescape`] writes the text into your buffer.
//!
//! ```
//! use ssm_proto::payload::{Acknowledge, Size};
//! let ack = Acknowledge::parse(br#"{"AcknowledgedMessageType":"output_stream_data",
//!     "AcknowledgedMessageId":"3970115e-82aa-4778-a667-f7e936cd4f24",
//!     "AcknowledgedMessageSequenceNumber":7,"IsSequentialMessage":true}"#).unwrap();
//! assert_eq!(ack.sequence_number, 7);
//! let mut buf = [0u8; 32];
//! let n = Size { cols: 120, rows: 40 }.emit(&mut buf).unwrap();
//! assert_eq!(&buf[..n], br#"{"cols":120,"rows":40}"#);
//! ```

use core::fmt;

pub mod json;

mod control;
mod handshake;
mod properties;

pub(crate) use control::fields;
pub use control::{
    Acknowledge, ChannelClosed, EncChallenge, EncChallengeRequest, EncChallengeResponse, ExitCode,
    Flag, HandshakeComplete, OpenDataChannelInput, Size,
};
pub use handshake::{
    Action, ActionResult, ActionStatus, ActionType, Actions, HandshakeRequest, HandshakeResponse,
    List, ListIter, ProcessedAction, SessionType,
};
pub use json::{Chars, JsonStr};
pub use properties::{CommandProperties, Os, OsCommandProperties, PortProperties};

/// A control payload is malformed, or a buffer is too small.
///
/// Every variant but [`Error::BufferTooSmall`] is the peer's fault. Field names are the JSON keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The payload is not UTF-8.
    NotUtf8,
    /// The payload is not well-formed JSON (or has bytes after the value).
    Syntax,
    /// Objects and arrays nest deeper than [`json::MAX_DEPTH`].
    TooDeep,
    /// A string holds an invalid escape sequence (or a lone UTF-16 surrogate).
    BadEscape,
    /// A string holds escapes and was asked for as borrowed text: use [`JsonStr::unescape`].
    EscapedString,
    /// A required key is absent.
    MissingField(&'static str),
    /// A known key appears twice (keys match ignoring ASCII case).
    DuplicateField(&'static str),
    /// A value has the wrong JSON type.
    WrongType(&'static str),
    /// A number is not an integer, or out of range for its field.
    BadNumber(&'static str),
    /// A value has the right type but an unacceptable content (e.g. not a UUID).
    BadValue(&'static str),
    /// A Flag payload is not exactly 4 bytes.
    BadFlagLength,
    /// An ExitCode payload is not `EXIT_CODE: <n>`.
    BadExitCode,
    /// The caller's buffer is too small; nothing was written.
    BufferTooSmall {
        /// Bytes needed.
        required: usize,
    },
}

impl Error {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Error::NotUtf8 => "payload is not utf-8",
            Error::Syntax => "payload is not well-formed json",
            Error::TooDeep => "payload json nests too deep",
            Error::BadEscape => "payload json string has an invalid escape",
            Error::EscapedString => "payload string holds escapes; unescape it into a buffer",
            Error::MissingField(_) => "payload lacks a required field",
            Error::DuplicateField(_) => "payload has a field twice",
            Error::WrongType(_) => "payload field has the wrong json type",
            Error::BadNumber(_) => "payload field is not an integer in range",
            Error::BadValue(_) => "payload field has an unacceptable value",
            Error::BadFlagLength => "flag payload is not 4 bytes",
            Error::BadExitCode => "exit code payload is not `EXIT_CODE: <n>`",
            Error::BufferTooSmall { .. } => "buffer too small for the payload",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingField(k)
            | Error::DuplicateField(k)
            | Error::WrongType(k)
            | Error::BadNumber(k)
            | Error::BadValue(k) => write!(f, "{}: `{k}`", self.as_str()),
            Error::BufferTooSmall { required } => {
                write!(f, "{}: {required} bytes required", self.as_str())
            }
            _ => f.write_str(self.as_str()),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests;
