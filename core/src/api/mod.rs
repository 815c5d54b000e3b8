//! The SSM API calls a device makes itself: `StartSession`, `ResumeSession`,
//! `TerminateSession` (AWS JSON 1.1 over HTTP/1.1, SigV4-signed), sans-IO and allocation-free.
//!
//! ```text
//!  StartSessionRequest / session id ─► body::… (JSON, escaped) ─► write_request (SigV4 headers,
//!      Content-Length) ─► your transport (TLS) ─► bytes ─► http::parse_head ─► BodyDecoder
//!      ─► parse_session_answer (the model's StartSessionResponse, validated StreamUrl)
//!         or Error::Service (typed; is_clock_skew → fix the clock from Date, retry once)
//! ```
//!
//! The caller brings the time ([`write_request`]'s `unix_secs`) and the transport; nothing here
//! reads a clock or does IO. A written request holds the `X-Amz-Security-Token` of temporary
//! credentials: wipe the buffer after sending it.

mod body;
mod error;
pub mod http;

pub use body::{session_id_body, StartSessionRequest};
pub use error::{ServiceError, ServiceErrorKind, SKEW_THRESHOLD_SECS};
pub use http::{BodyDecoder, Framing, HttpError, Progress, ResponseHead};

use core::fmt;

use crate::model::{self, Endpoints, StartSessionResponse};
use crate::payload::json::{document, Members, Value};
use crate::sigv4::{self, Credentials, JSON_CONTENT_TYPE};

/// An SSM API operation a session client calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Operation {
    /// `AmazonSSM.StartSession`.
    StartSession,
    /// `AmazonSSM.ResumeSession`.
    ResumeSession,
    /// `AmazonSSM.TerminateSession`.
    TerminateSession,
}

impl Operation {
    /// The `X-Amz-Target` value.
    pub const fn target(&self) -> &'static str {
        match self {
            Operation::StartSession => "AmazonSSM.StartSession",
            Operation::ResumeSession => "AmazonSSM.ResumeSession",
            Operation::TerminateSession => "AmazonSSM.TerminateSession",
        }
    }
}

/// Longest host name of an SSM endpoint this crate writes (`ssm-fips.<region>.amazonaws.com.cn`
/// with a 32-byte region is 55 bytes).
pub const HOST_CAPACITY: usize = 64;

/// Where the API is: host, port, TLS, and the region of the signing scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Endpoint<'a> {
    /// Host name (or IP literal, for a local emulator).
    pub host: &'a str,
    /// TCP port.
    pub port: u16,
    /// HTTPS (the port's default is 443) rather than HTTP (80).
    pub tls: bool,
    /// The region to sign for.
    pub region: &'a str,
}

impl<'a> Endpoint<'a> {
    /// The regional endpoint `ssm.<region>.amazonaws.com` (`.com.cn` in China), port 443; the
    /// host is written into `buf`.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a malformed region.
    pub fn aws(region: &'a str, buf: &'a mut [u8; HOST_CAPACITY]) -> Result<Self, Error> {
        let ok = !region.is_empty()
            && region.len() <= 32
            && region
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if !ok {
            return Err(Error::BadRequest);
        }
        let suffix = model::Partition::of_region(region).dns_suffix();
        let mut n = 0;
        for piece in ["ssm.", region, ".", suffix] {
            buf[n..n + piece.len()].copy_from_slice(piece.as_bytes());
            n += piece.len();
        }
        let host = core::str::from_utf8(&buf[..n]).map_err(|_| Error::BadRequest)?;
        Ok(Endpoint {
            host,
            port: 443,
            tls: true,
            region,
        })
    }
}

/// An API call failed. Grouped by who is at fault; never carries a credential, a token, or
/// text from the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The service answered with an error (typed).
    Service(ServiceError),
    /// The answer is not usable HTTP (peer's fault).
    Http(HttpError),
    /// A 2xx answer whose JSON is unusable, or whose StreamUrl fails the checks (peer's fault).
    Answer(model::Error),
    /// ResumeSession answered without a token: the session has ended.
    SessionEnded,
    /// Signing failed (bad credentials or input: the caller's).
    Signing(sigv4::Error),
    /// A request field is unusable (empty target, invalid session id, bad region).
    BadRequest,
    /// The caller's buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        required: usize,
    },
}

impl Error {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Error::Service(e) => e.kind.as_str(),
            Error::Http(e) => e.as_str(),
            Error::Answer(e) => e.as_str(),
            Error::SessionEnded => "the session has ended (no token in the resume answer)",
            Error::Signing(e) => e.as_str(),
            Error::BadRequest => "request field is empty or malformed",
            Error::BufferTooSmall { .. } => "buffer too small for the api request or answer",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Service(e) => fmt::Display::fmt(e, f),
            Error::BufferTooSmall { required } => {
                write!(f, "{}: {required} bytes required", self.as_str())
            }
            _ => f.write_str(self.as_str()),
        }
    }
}

impl core::error::Error for Error {}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Self {
        Error::Http(e)
    }
}

impl From<sigv4::Error> for Error {
    fn from(e: sigv4::Error) -> Self {
        match e {
            sigv4::Error::BufferTooSmall { required } => Error::BufferTooSmall { required },
            e => Error::Signing(e),
        }
    }
}

/// Writes the whole signed request (`POST /`, headers, body) for `operation` with JSON `body`
/// into `out`; returns its length. `unix_secs` is the signing time (UTC).
///
/// The request asks for an uncompressed answer and keeps the connection open.
///
/// # Errors
/// [`Error::Signing`], [`Error::BufferTooSmall`] (nothing useful written).
pub fn write_request(
    endpoint: &Endpoint<'_>,
    operation: Operation,
    body: &[u8],
    credentials: &Credentials<'_>,
    unix_secs: u64,
    out: &mut [u8],
) -> Result<usize, Error> {
    let mut host_buf = [0u8; HOST_CAPACITY + 6];
    let mut host_len = 0;
    let mut host_fits = true;
    http::write_host(
        &mut |b| match host_buf.get_mut(host_len..host_len + b.len()) {
            Some(d) => {
                d.copy_from_slice(b);
                host_len += b.len();
            }
            None => host_fits = false,
        },
        endpoint.host,
        endpoint.port,
        endpoint.tls,
    );
    if !host_fits {
        return Err(Error::BadRequest);
    }
    let host = core::str::from_utf8(&host_buf[..host_len]).map_err(|_| Error::BadRequest)?;
    // Credential (≤ 128 + 60), signed header names, signature: 512 bytes is plenty.
    let mut auth = [0u8; 512];
    let signed = sigv4::sign_json_request(
        host,
        endpoint.region,
        operation.target(),
        body,
        credentials,
        unix_secs,
        &mut auth,
    )?;
    let length = crate::decimal::Decimal::new(body.len() as u64);
    let token = credentials.session_token;
    let pieces: [&[u8]; 20] = [
        b"POST / HTTP/1.1\r\nHost: ",
        host.as_bytes(),
        b"\r\nX-Amz-Date: ",
        signed.amz_date.as_str().as_bytes(),
        b"\r\nX-Amz-Target: ",
        operation.target().as_bytes(),
        b"\r\nContent-Type: ",
        JSON_CONTENT_TYPE.as_bytes(),
        if token.is_some() {
            b"\r\nX-Amz-Security-Token: "
        } else {
            b""
        },
        token.unwrap_or("").as_bytes(),
        b"\r\nAuthorization: ",
        signed.authorization.as_bytes(),
        b"\r\nContent-Length: ",
        length.as_bytes(),
        b"\r\nAccept-Encoding: identity",
        b"\r\nConnection: keep-alive",
        b"\r\nUser-Agent: ssm-session/",
        env!("CARGO_PKG_VERSION").as_bytes(),
        b"\r\n\r\n",
        body,
    ];
    let required: usize = pieces.iter().map(|p| p.len()).sum();
    if out.len() < required {
        return Err(Error::BufferTooSmall { required });
    }
    let mut n = 0;
    for p in pieces {
        out[n..n + p.len()].copy_from_slice(p);
        n += p.len();
    }
    Ok(n)
}

/// Reads the answer of StartSession or ResumeSession: a 2xx body parsed as the model's
/// [`StartSessionResponse`] (escapes decoded into `scratch`; `scratch` as long as `body` always
/// suffices), its StreamUrl checked under `endpoints`; otherwise the service's error.
///
/// # Errors
/// [`Error::Service`] for a non-2xx status, [`Error::SessionEnded`] for a 2xx answer without a
/// token (null, absent or empty: ResumeSession's "the session has ended"), [`Error::Answer`].
pub fn parse_session_answer<'a>(
    status: u16,
    body: &'a [u8],
    scratch: &'a mut [u8],
    endpoints: Endpoints,
) -> Result<StartSessionResponse<'a>, Error> {
    if !(200..300).contains(&status) {
        return Err(Error::Service(ServiceError::parse(status, body)));
    }
    if !has_token(body) {
        return Err(Error::SessionEnded);
    }
    StartSessionResponse::parse_with(body, Some(scratch), endpoints).map_err(Error::Answer)
}

/// Whether a (valid JSON) answer carries a non-empty `TokenValue` string. Malformed JSON counts
/// as carrying one, so the model's parser reports what is wrong with it.
fn has_token(body: &[u8]) -> bool {
    let Ok(obj) = document(body) else {
        return true;
    };
    Members::new(obj).any(|m| match m {
        Ok((k, Value::Str(v), _)) if k.eq_str("TokenValue") => v.unescaped_len() > 0,
        Ok(_) => false,
        Err(_) => true,
    })
}

/// Reads the answer of TerminateSession: `Ok` for a 2xx status (its body names the session).
///
/// # Errors
/// [`Error::Service`].
pub fn check_terminate_answer(status: u16, body: &[u8]) -> Result<(), Error> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(Error::Service(ServiceError::parse(status, body)))
    }
}

#[cfg(test)]
mod tests;
