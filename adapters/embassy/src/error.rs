//! The adapter's error: what ended a [`Runner`](crate::Runner) or failed a handle call.
//!
//! It translates, never invents: protocol errors come from `ssm-proto`, transport errors are the
//! transport's `embedded_io::ErrorKind`.

use core::fmt;

use ssm_proto::ws;

/// Why a session or a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The transport failed (its error kind).
    Transport(embedded_io::ErrorKind),
    /// The transport ended (EOF) before the session closed.
    TransportClosed,
    /// The WebSocket upgrade or framing failed (peer's fault).
    WebSocket(ws::Error),
    /// The upgrade response did not fit the receive buffer.
    UpgradeTooLarge,
    /// A message to send did not fit the transmit buffer (a capacity too small for this
    /// session; see [`Resources`](crate::Resources)).
    BufferTooSmall,
    /// The session token is longer than the engine stores.
    TokenTooLong,
    /// The session is closed: nothing more to read or write.
    Closed,
    /// Name resolution failed (the [`connect`](crate::connect) helper).
    Dns,
    /// The TCP connection failed (the [`connect`](crate::connect) helper).
    Connect,
    /// The TLS handshake failed, including certificate verification (the
    /// [`connect`](crate::connect) helper).
    Tls,
    /// The StartSessionResponse is unusable (its StreamUrl scheme, host or port).
    BadStreamUrl,
    /// An SSM API call failed ([`crate::api`]): the service's typed error, an unusable answer,
    /// or signing.
    Api(ssm_proto::api::Error),
}

impl Error {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Error::Transport(_) => "transport error",
            Error::TransportClosed => "transport closed before the session ended",
            Error::WebSocket(e) => e.as_str(),
            Error::UpgradeTooLarge => "websocket upgrade response larger than the receive buffer",
            Error::BufferTooSmall => "message larger than the transmit buffer",
            Error::TokenTooLong => "token longer than the session can store",
            Error::Closed => "session closed",
            Error::Dns => "name resolution failed",
            Error::Connect => "tcp connection failed",
            Error::Tls => "tls handshake failed",
            Error::BadStreamUrl => "unusable stream url",
            Error::Api(e) => e.as_str(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for Error {}

impl embedded_io::Error for Error {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind;
        match self {
            Error::Transport(k) => *k,
            Error::TransportClosed => ErrorKind::ConnectionAborted,
            Error::Closed => ErrorKind::NotConnected,
            Error::WebSocket(_) => ErrorKind::InvalidData,
            Error::UpgradeTooLarge | Error::BufferTooSmall => ErrorKind::OutOfMemory,
            Error::TokenTooLong | Error::BadStreamUrl => ErrorKind::InvalidInput,
            Error::Dns => ErrorKind::AddrNotAvailable,
            Error::Connect => ErrorKind::ConnectionRefused,
            Error::Tls => ErrorKind::PermissionDenied,
            Error::Api(ssm_proto::api::Error::BufferTooSmall { .. }) => ErrorKind::OutOfMemory,
            Error::Api(ssm_proto::api::Error::Service(_)) => ErrorKind::PermissionDenied,
            Error::Api(_) => ErrorKind::InvalidData,
        }
    }
}

impl From<ws::Error> for Error {
    fn from(e: ws::Error) -> Self {
        match e {
            ws::Error::BufferTooSmall(_) => Error::BufferTooSmall,
            e => Error::WebSocket(e),
        }
    }
}

pub(crate) fn io<E: embedded_io::Error>(e: E) -> Error {
    Error::Transport(e.kind())
}
