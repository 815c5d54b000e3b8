//! One error type for everything the driver and the connector can report.

use std::fmt;
use std::io;

/// Why a session could not be opened or ended abnormally.
///
/// Every `Display` text is one lower-case line without a trailing period, fit to show a user as
/// is. None of them contains the session token or the stream URL's query (a presigned URL carries a
/// signature there).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The stream URL cannot be used (what is wrong with it).
    InvalidUrl(&'static str),
    /// `ws://` was asked for without [`TlsOptions::allow_plain_ws`](crate::TlsOptions), or to a
    /// host other than this machine's loopback.
    PlainWsRefused,
    /// The TCP connection to `host:port` failed or timed out.
    Unreachable {
        /// `host:port` that was tried.
        endpoint: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// The TLS handshake with `host` failed (unknown CA, wrong name, protocol mismatch, ...).
    Tls {
        /// The server name that was verified.
        host: String,
        /// rustls' description.
        detail: String,
    },
    /// The server refused the WebSocket upgrade or broke it off.
    WebSocket(String),
    /// The session handshake did not complete: the connection closed before `HandshakeComplete`
    /// (typically a bad or expired token).
    HandshakeFailed(String),
    /// The agent closed the channel before the session ended normally, with its reason.
    ChannelClosed(String),
    /// The connection was lost and could not be resumed.
    ConnectionLost(String),
    /// The connection was lost and the service says the session has ended (ResumeSession
    /// answered with no token): nothing is wrong, there is nothing to resume.
    SessionEnded,
    /// The protocol engine gave up (its description).
    Protocol(String),
    /// The session's driver task ended without a result (it panicked or was cancelled).
    DriverGone,
    /// A local IO error (reading the CA file, ...).
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl(what) => write!(f, "invalid stream url: {what}"),
            Error::PlainWsRefused => f.write_str(
                "refusing unencrypted ws:// stream url (allow it only for a local emulator)",
            ),
            Error::Unreachable { endpoint, source } => {
                write!(f, "cannot reach {endpoint}: {source}")
            }
            Error::Tls { host, detail } => write!(f, "tls failure with {host}: {detail}"),
            Error::WebSocket(d) => write!(f, "websocket failure: {d}"),
            Error::HandshakeFailed(d) => write!(f, "session handshake failed: {d}"),
            Error::ChannelClosed(reason) => write!(f, "agent closed the channel: {reason}"),
            Error::ConnectionLost(d) => write!(f, "connection lost: {d}"),
            Error::SessionEnded => f.write_str("the session has ended (nothing to resume)"),
            Error::Protocol(d) => write!(f, "protocol error: {d}"),
            Error::DriverGone => f.write_str("session driver ended unexpectedly"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Unreachable { source, .. } => Some(source),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::InvalidUrl(_) | Error::PlainWsRefused => io::ErrorKind::InvalidInput,
            Error::Unreachable { source, .. } => source.kind(),
            Error::Tls { .. } | Error::WebSocket(_) | Error::Protocol(_) => {
                io::ErrorKind::InvalidData
            }
            Error::HandshakeFailed(_) => io::ErrorKind::PermissionDenied,
            Error::ChannelClosed(_)
            | Error::ConnectionLost(_)
            | Error::SessionEnded
            | Error::DriverGone => io::ErrorKind::ConnectionAborted,
            Error::Io(e) => e.kind(),
        };
        io::Error::new(kind, e)
    }
}
