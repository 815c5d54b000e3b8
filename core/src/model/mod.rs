//! The `StartSessionResponse` (PROTOCOL.md §1): the session id, the data-channel URL and the token
//! that `ssm:StartSession` / `ssm:ResumeSession` return.
//!
//! ```text
//!  AWS JSON ──► StartSessionResponse<'a>      borrows the input (and a scratch buffer for escapes)
//!           └─► OwnedStartSessionResponse     heapless strings, token zeroized on drop
//!                   │
//!                   ├─ stream_url(): StreamUrl  validated: wss, ssmmessages host, /v1/data-channel/<SessionId>
//!                   └─ token(): Token           redacted in Debug/Display/defmt, never in an error
//! ```
//!
//! JSON escapes in values (AWS emitters write `\/` in URLs) are never passed through silently:
//! [`StartSessionResponse::parse`] rejects them with [`Error::Escaped`],
//! [`StartSessionResponse::parse_unescaped`] decodes them into a caller buffer, and
//! [`OwnedStartSessionResponse::parse`] decodes them into its own storage. The JSON goes through the
//! crate's one reader ([`payload::json`](crate::payload::json), whose policy applies): keys are
//! compared after unescaping and ignoring ASCII case, and a key twice is an error, so this parser
//! cannot read a different value than a standard JSON parser would. Unknown keys are ignored,
//! nested up to [`MAX_JSON_DEPTH`] levels.
//!
//! # Examples
//! ```
//! use ssm_proto::model::{Partition, StartSessionResponse};
//!
//! let json = br#"{"SessionId":"user-0123456789abcdef0",
//!   "StreamUrl":"wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/user-0123456789abcdef0?role=publish_subscribe",
//!   "TokenValue":"AAEAAbKr0Vx1"}"#;
//! let r = StartSessionResponse::parse(json)?;
//! assert_eq!(r.session_id(), "user-0123456789abcdef0");
//! assert_eq!(r.stream_url().region(), Some("us-east-1"));
//! assert_eq!(r.stream_url().partition(), Some(Partition::Aws));
//! assert_eq!(format!("{:?}", r.token()), "Token(<redacted, 12 bytes>)");
//! # Ok::<(), ssm_proto::model::Error>(())
//! ```

mod token;
mod url;

pub use token::{OwnedToken, Token};
pub use url::{Endpoints, Partition, Scheme, StreamUrl, UrlError, DATA_CHANNEL_PATH};

use core::fmt;

use crate::payload::JsonStr;
use crate::wire::InsufficientSize;

/// Capacity of an owned `SessionId`: the SSM API caps session ids at 96 characters. Ids look like
/// `<caller name>-<17 hex digits>` (`user-0123456789abcdef0`).
pub const SESSION_ID_CAPACITY: usize = 96;

/// Default capacity of an owned `StreamUrl`. The plain URL is under 200 bytes (host ≤ 50, path
/// 17 + session id ≤ 96, `?role=publish_subscribe`); a presigned one adds `X-Amz-Algorithm`,
/// `-Credential`, `-Date`, `-Expires`, `-SignedHeaders`, `-Signature` (~300 bytes) and, with
/// temporary credentials, a URL-encoded `X-Amz-Security-Token` that can pass 1 KB. 2 KiB covers that.
pub const STREAM_URL_CAPACITY: usize = 2048;

/// Default capacity of an owned `TokenValue`: tokens are several hundred bytes of base64-like
/// text; 1 KiB leaves room. Raise it with the const parameter if AWS lengthens them.
pub const TOKEN_CAPACITY: usize = 1024;

/// Deepest nesting of arrays/objects accepted in the JSON (unknown keys may hold objects, e.g. the
/// CLI's `ResponseMetadata.HTTPHeaders`): the payloads' limit, [`payload::json::MAX_DEPTH`](crate::payload::json::MAX_DEPTH).
/// The reader never recurses, so the limit costs no stack.
pub const MAX_JSON_DEPTH: usize = crate::payload::json::MAX_DEPTH as usize;

/// A field of the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Field {
    /// `SessionId`.
    SessionId,
    /// `StreamUrl`.
    StreamUrl,
    /// `TokenValue`.
    TokenValue,
}

impl Field {
    /// The JSON key.
    pub const fn key(&self) -> &'static str {
        match self {
            Field::SessionId => "SessionId",
            Field::StreamUrl => "StreamUrl",
            Field::TokenValue => "TokenValue",
        }
    }

    const ALL: [Field; 3] = [Field::SessionId, Field::StreamUrl, Field::TokenValue];

    /// The field whose key `key` is (one of [`Field::key`]'s).
    fn from_key(key: &str) -> Field {
        match key {
            "SessionId" => Field::SessionId,
            "StreamUrl" => Field::StreamUrl,
            _ => Field::TokenValue,
        }
    }
}

/// A StartSession response is unusable. No variant carries any part of the input, so printing an
/// error never leaks the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// Not a JSON object, malformed JSON, or a known field that is not a string.
    Json,
    /// Arrays/objects nested deeper than [`MAX_JSON_DEPTH`].
    TooDeep,
    /// A required field is absent.
    Missing(Field),
    /// A known field appears twice.
    Duplicate(Field),
    /// A value contains JSON escapes and no unescape buffer was given: use
    /// [`StartSessionResponse::parse_unescaped`] or [`OwnedStartSessionResponse::parse`].
    Escaped,
    /// An invalid escape sequence (including a `\u` surrogate, which is not supported).
    BadEscape,
    /// The unescape buffer is too small for the unescaped values.
    ScratchTooSmall,
    /// A value exceeds the owned form's capacity.
    TooLong,
    /// `SessionId` is empty, longer than 96, or has characters other than `A-Za-z0-9_+=,.@-`.
    BadSessionId,
    /// `TokenValue` is empty or has characters outside visible ASCII (or `"`, `\`).
    BadToken,
    /// `StreamUrl` is not an acceptable data-channel URL.
    Url(UrlError),
}

impl Error {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Error::Json => "start session response is not a json object with string fields",
            Error::TooDeep => "start session response json is nested too deeply",
            Error::Missing(Field::SessionId) => "start session response has no SessionId",
            Error::Missing(Field::StreamUrl) => "start session response has no StreamUrl",
            Error::Missing(Field::TokenValue) => "start session response has no TokenValue",
            Error::Duplicate(Field::SessionId) => "start session response has SessionId twice",
            Error::Duplicate(Field::StreamUrl) => "start session response has StreamUrl twice",
            Error::Duplicate(Field::TokenValue) => "start session response has TokenValue twice",
            Error::Escaped => {
                "start session response value has json escapes and no unescape buffer was given"
            }
            Error::BadEscape => "start session response has an invalid json escape",
            Error::ScratchTooSmall => "unescape buffer too small for the start session response",
            Error::TooLong => "start session response value exceeds its capacity",
            Error::BadSessionId => {
                "session id is empty, too long or has characters outside a-z a-z 0-9 _+=,.@-"
            }
            Error::BadToken => "token is empty or has characters outside visible ascii",
            Error::Url(e) => e.as_str(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for Error {}

impl From<UrlError> for Error {
    fn from(e: UrlError) -> Self {
        Error::Url(e)
    }
}

/// Checks a session id: 1..=96 bytes of `A-Za-z0-9_+=,.@-` (IAM name characters plus the hyphen
/// and hex suffix), all of which stand unencoded in a URL path.
pub fn validate_session_id(s: &str) -> Result<(), Error> {
    let ok = !s.is_empty()
        && s.len() <= SESSION_ID_CAPACITY
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_+=,.@-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(Error::BadSessionId)
    }
}

/// Reads the three values (still escaped) with the crate's one JSON reader
/// ([`payload::json`](crate::payload::json)): iterative, every byte validated, keys matched ignoring
/// ASCII case like Go's `encoding/json`, a known key twice is an error (so no two parsers can
/// read different values from one answer), unknown keys skipped, nesting up to
/// [`MAX_JSON_DEPTH`].
fn parse_raw(json: &[u8]) -> Result<[JsonStr<'_>; 3], Error> {
    use crate::payload::Error as E;
    let keys = [
        Field::SessionId.key(),
        Field::StreamUrl.key(),
        Field::TokenValue.key(),
    ];
    let map = |e: E| match e {
        E::TooDeep => Error::TooDeep,
        E::BadEscape => Error::BadEscape,
        E::DuplicateField(k) => Error::Duplicate(Field::from_key(k)),
        _ => Error::Json,
    };
    let (values, _) =
        crate::payload::fields(crate::payload::json::document(json).map_err(map)?, keys)
            .map_err(map)?;
    let mut out = [JsonStr::EMPTY; 3];
    for (i, f) in Field::ALL.iter().enumerate() {
        out[i] = match values[i] {
            Some(v) => v.str(f.key()).map_err(|_| Error::Json)?,
            None => return Err(Error::Missing(*f)),
        };
    }
    Ok(out)
}

/// Returns the text itself when it has no escapes, else unescapes it into the front of
/// `scratch` and keeps the rest of `scratch` for the next value.
fn take_unescaped<'a>(
    raw: JsonStr<'a>,
    scratch: &mut Option<&'a mut [u8]>,
) -> Result<&'a str, Error> {
    if !raw.has_escapes() {
        return raw.as_str().map_err(|_| Error::BadEscape);
    }
    let buf = scratch.take().ok_or(Error::Escaped)?;
    let n = raw.unescaped_len();
    if n > buf.len() {
        return Err(Error::ScratchTooSmall);
    }
    let (head, tail) = buf.split_at_mut(n);
    *scratch = Some(tail);
    raw.unescape(head).map_err(|_| Error::BadEscape)
}

/// Appends the unescaped text of `raw` to a fixed-capacity string.
fn push_unescaped(
    raw: JsonStr<'_>,
    mut push: impl FnMut(char) -> Result<(), Error>,
) -> Result<(), Error> {
    raw.chars().try_for_each(&mut push)
}

/// A StartSession (or ResumeSession) response, borrowing its text.
///
/// `SessionId` is not stored apart: it is validated equal to the session id in the URL path and
/// read back from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StartSessionResponse<'a> {
    stream_url: StreamUrl<'a>,
    token: Token<'a>,
}

impl<'a> StartSessionResponse<'a> {
    /// Parses the AWS JSON, accepting only AWS endpoints and no escapes in values.
    ///
    /// # Errors
    /// Any [`Error`]; [`Error::Escaped`] if a value contains a JSON escape.
    pub fn parse(json: &'a [u8]) -> Result<Self, Error> {
        Self::parse_with(json, None, Endpoints::Aws)
    }

    /// Parses the AWS JSON, unescaping values that need it into `scratch` (values without escapes
    /// still borrow from `json`). `scratch` as long as `json` always suffices.
    ///
    /// If the token was escaped, its text is now in `scratch`: wipe it when done, or prefer
    /// [`OwnedStartSessionResponse::parse`], which wipes its copy on drop.
    ///
    /// # Errors
    /// Any [`Error`] but [`Error::Escaped`].
    pub fn parse_unescaped(json: &'a [u8], scratch: &'a mut [u8]) -> Result<Self, Error> {
        Self::parse_with(json, Some(scratch), Endpoints::Aws)
    }

    /// Parses with an optional unescape buffer and an endpoint policy.
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn parse_with(
        json: &'a [u8],
        scratch: Option<&'a mut [u8]>,
        endpoints: Endpoints,
    ) -> Result<Self, Error> {
        let [sid, url, tok] = parse_raw(json)?;
        let mut scratch = scratch;
        let sid = take_unescaped(sid, &mut scratch)?;
        let url = take_unescaped(url, &mut scratch)?;
        let tok = take_unescaped(tok, &mut scratch)?;
        Self::new(sid, url, tok, endpoints)
    }

    /// Builds a response from its three values, validating them as [`StartSessionResponse::parse`]
    /// does (for an emulator that answers StartSession, or values obtained another way).
    ///
    /// # Errors
    /// [`Error::BadSessionId`], [`Error::Url`] or [`Error::BadToken`].
    pub fn new(
        session_id: &str,
        stream_url: &'a str,
        token: &'a str,
        endpoints: Endpoints,
    ) -> Result<Self, Error> {
        Ok(StartSessionResponse {
            stream_url: StreamUrl::parse_with(stream_url, session_id, endpoints)?,
            token: Token::new(token)?,
        })
    }

    /// The `SessionId`.
    pub fn session_id(&self) -> &'a str {
        self.stream_url.session_id()
    }

    /// The validated `StreamUrl`.
    pub fn stream_url(&self) -> StreamUrl<'a> {
        self.stream_url
    }

    /// The `TokenValue`.
    pub fn token(&self) -> Token<'a> {
        self.token
    }

    /// Length of the JSON that [`StartSessionResponse::emit`] writes.
    pub fn json_len(&self) -> usize {
        // {"SessionId":"…","StreamUrl":"…","TokenValue":"…"}: no value needs escaping (validated).
        r#"{"SessionId":"","StreamUrl":"","TokenValue":""}"#.len()
            + self.session_id().len()
            + self.stream_url.as_str().len()
            + self.token.len()
    }

    /// Writes the response as AWS JSON (token included, in the clear) into `buf`.
    ///
    /// # Errors
    /// [`InsufficientSize`] if `buf` is shorter than [`StartSessionResponse::json_len`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, InsufficientSize> {
        let required = self.json_len();
        if buf.len() < required {
            return Err(InsufficientSize { required });
        }
        crate::payload::json::emit_with(buf, |w| {
            w.raw(b"{");
            w.key(true, Field::SessionId.key());
            w.quoted(self.session_id());
            w.key(false, Field::StreamUrl.key());
            w.quoted(self.stream_url.as_str());
            w.key(false, Field::TokenValue.key());
            w.quoted(self.token.expose_secret());
            w.raw(b"}");
        })
        .map_err(|_| InsufficientSize { required })
    }
}

/// A StartSession response in inline storage (no allocation), for keeping after the JSON buffer is
/// gone. `URL` and `TOKEN` are capacities in bytes ([`STREAM_URL_CAPACITY`], [`TOKEN_CAPACITY`]);
/// the session id holds [`SESSION_ID_CAPACITY`]. The token is zeroized on drop.
pub struct OwnedStartSessionResponse<
    const URL: usize = STREAM_URL_CAPACITY,
    const TOKEN: usize = TOKEN_CAPACITY,
> {
    stream_url: heapless::String<URL>,
    url_parts: url::Parts,
    token: OwnedToken<TOKEN>,
}

impl<const URL: usize, const TOKEN: usize> OwnedStartSessionResponse<URL, TOKEN> {
    /// Parses the AWS JSON, unescaping values into its own storage; AWS endpoints only.
    ///
    /// # Errors
    /// Any [`Error`] but [`Error::Escaped`] and [`Error::ScratchTooSmall`]; [`Error::TooLong`] if
    /// a value exceeds its capacity.
    pub fn parse(json: &[u8]) -> Result<Self, Error> {
        Self::parse_with(json, Endpoints::Aws)
    }

    /// Like [`OwnedStartSessionResponse::parse`] with an endpoint policy.
    ///
    /// # Errors
    /// As [`OwnedStartSessionResponse::parse`].
    pub fn parse_with(json: &[u8], endpoints: Endpoints) -> Result<Self, Error> {
        let [sid_raw, url_raw, tok_raw] = parse_raw(json)?;
        let mut sid = heapless::String::<SESSION_ID_CAPACITY>::new();
        push_unescaped(sid_raw, |c| sid.push(c).map_err(|_| Error::BadSessionId))?;
        let mut stream_url = heapless::String::<URL>::new();
        push_unescaped(url_raw, |c| stream_url.push(c).map_err(|_| Error::TooLong))?;
        let url_parts = StreamUrl::parse_with(&stream_url, &sid, endpoints)?.parts();
        let mut token = OwnedToken::<TOKEN>::empty();
        push_unescaped(tok_raw, |c| token.push_str(c.encode_utf8(&mut [0u8; 4])))?;
        token.validate()?;
        Ok(OwnedStartSessionResponse {
            stream_url,
            url_parts,
            token,
        })
    }

    /// Copies a borrowed response.
    ///
    /// # Errors
    /// [`Error::TooLong`] if the URL or the token exceeds its capacity.
    pub fn from_borrowed(r: &StartSessionResponse<'_>) -> Result<Self, Error> {
        let mut stream_url = heapless::String::<URL>::new();
        stream_url
            .push_str(r.stream_url.as_str())
            .map_err(|_| Error::TooLong)?;
        Ok(OwnedStartSessionResponse {
            stream_url,
            url_parts: r.stream_url.parts(),
            token: OwnedToken::from_token(r.token)?,
        })
    }

    /// Borrows it as a [`StartSessionResponse`].
    pub fn as_borrowed(&self) -> StartSessionResponse<'_> {
        StartSessionResponse {
            stream_url: StreamUrl::from_parts(&self.stream_url, self.url_parts),
            token: self.token.as_token(),
        }
    }

    /// The `SessionId`.
    pub fn session_id(&self) -> &str {
        self.stream_url().session_id()
    }

    /// The validated `StreamUrl`.
    pub fn stream_url(&self) -> StreamUrl<'_> {
        StreamUrl::from_parts(&self.stream_url, self.url_parts)
    }

    /// The `TokenValue`.
    pub fn token(&self) -> Token<'_> {
        self.token.as_token()
    }
}

impl<const URL: usize, const TOKEN: usize> PartialEq for OwnedStartSessionResponse<URL, TOKEN> {
    fn eq(&self, other: &Self) -> bool {
        self.as_borrowed() == other.as_borrowed()
    }
}

impl<const URL: usize, const TOKEN: usize> Eq for OwnedStartSessionResponse<URL, TOKEN> {}

impl<const URL: usize, const TOKEN: usize> fmt::Debug for OwnedStartSessionResponse<URL, TOKEN> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.as_borrowed(), f)
    }
}

#[cfg(feature = "defmt")]
impl<const URL: usize, const TOKEN: usize> defmt::Format for OwnedStartSessionResponse<URL, TOKEN> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::Format::format(&self.as_borrowed(), f)
    }
}

#[cfg(test)]
mod tests;
