//! SigV4 signing: query presigning of the data-channel WebSocket URL (service `ssmmessages`),
//! and header signing ([`sign_headers`]) of the SSM JSON API calls (service `ssm`,
//! [`sign_json_request`]) and of the WebSocket upgrade GET ([`sign_upgrade`]).
//!
//! Since plugin 1.2.764.0 the official client signs the WebSocket upgrade (PROTOCOL.md §1). A
//! presigned URL carries the signature in its query (`X-Amz-Algorithm`, `-Credential`, `-Date`,
//! `-Expires`, `-SignedHeaders=host`, `-Security-Token`, `-Signature`), so the WebSocket layer
//! needs no extra headers: open the URL [`presign_stream_url`] writes.
//!
//! The canonical form follows AWS's Signature Version 4 for a GET with an empty body: the path
//! URI-encoded once more, the query parameters decoded (`+` as space, like form encoding) and
//! re-encoded with only `A-Za-z0-9-_.~` unescaped, sorted; only `host` signed. The test vectors
//! were produced by botocore's `SigV4QueryAuth`.
//!
//! No allocation, no clock: the caller passes the Unix time, and the URL is written into a caller
//! buffer. The secret key and session token appear in no `Debug` output or error.

use crate::decimal::Decimal;
use core::cmp::Ordering;
use core::fmt;

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::model::{StreamUrl, DATA_CHANNEL_PATH};

mod credentials;
mod header;

pub use credentials::OwnedCredentials;
pub use header::{
    sign_headers, sign_json_request, sign_upgrade, upgrade_host, HeaderRequest, SignedHeaders,
    API_SERVICE, EMPTY_BODY_SHA256, JSON_CONTENT_TYPE, MAX_EXTRA_HEADERS,
};

/// The service name in the credential scope.
pub const SERVICE: &str = "ssmmessages";

/// The signing algorithm.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Longest validity SigV4 allows for a presigned URL: 7 days.
pub const MAX_EXPIRES_SECS: u32 = 7 * 24 * 3600;

/// Query parameters a URL may already carry (a StreamUrl has one, `role=publish_subscribe`).
pub const MAX_QUERY_PARAMS: usize = 8;

/// SHA-256 of the empty body, hex (every presigned GET signs it).
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// AWS credentials, borrowed. `Debug` shows only the access key id.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The access key id (not secret).
    pub access_key_id: &'a str,
    /// The secret access key.
    pub secret_access_key: &'a str,
    /// The session token of temporary credentials.
    pub session_token: Option<&'a str>,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Presigning failed. Never carries a key, a token or a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The URL has no AWS region (a local endpoint): there is nothing to sign for.
    NoRegion,
    /// The URL already carries `X-Amz-*` parameters.
    AlreadyPresigned,
    /// A query parameter has a malformed `%` escape, or a key appears twice.
    BadQuery,
    /// More than [`MAX_QUERY_PARAMS`] query parameters.
    TooManyParams,
    /// Expiry is 0 or more than [`MAX_EXPIRES_SECS`].
    BadExpires,
    /// The access key id is empty, or the date is past year 9999.
    BadInput,
    /// A header name or value cannot be sent as is (CR, LF, a name outside RFC 7230's token
    /// characters, a repeated name, or a header the signer writes itself).
    BadHeader,
    /// More than [`MAX_EXTRA_HEADERS`] headers to sign.
    TooManyHeaders,
    /// The output buffer is too small; nothing useful was written.
    BufferTooSmall {
        /// Bytes the URL needs.
        required: usize,
    },
}

impl Error {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Error::NoRegion => "stream url has no aws region to sign for",
            Error::AlreadyPresigned => "stream url is already presigned",
            Error::BadQuery => "stream url query has a malformed escape or a repeated key",
            Error::TooManyParams => "stream url query has too many parameters",
            Error::BadExpires => "presigned url expiry must be 1 s to 7 days",
            Error::BadInput => "access key id is empty or the date is out of range",
            Error::BadHeader => "header name or value cannot be signed and sent as is",
            Error::TooManyHeaders => "too many headers to sign",
            Error::BufferTooSmall { .. } => "buffer too small for the signed output",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BufferTooSmall { required } => {
                write!(f, "{}: {required} bytes required", self.as_str())
            }
            _ => f.write_str(self.as_str()),
        }
    }
}

impl core::error::Error for Error {}

/// The `X-Amz-Date` form of a Unix time, `YYYYMMDDTHHMMSSZ` (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AmzDate([u8; 16]);

impl AmzDate {
    /// Formats a Unix time (seconds, UTC).
    ///
    /// # Errors
    /// [`Error::BadInput`] past the year 9999.
    pub fn from_unix_secs(secs: u64) -> Result<Self, Error> {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        if y > 9999 {
            return Err(Error::BadInput);
        }
        let mut b = *b"00000000T000000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y);
        put(4, 2, m);
        put(6, 2, d);
        put(9, 2, rem / 3600);
        put(11, 2, rem % 3600 / 60);
        put(13, 2, rem % 60);
        Ok(AmzDate(b))
    }

    /// `YYYYMMDDTHHMMSSZ`.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, `T` and `Z` are ever stored.
        core::str::from_utf8(&self.0).unwrap_or("")
    }

    /// `YYYYMMDD`, the date of the credential scope.
    pub fn date(&self) -> &str {
        core::str::from_utf8(&self.0[..8]).unwrap_or("")
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// HMAC-SHA256 (RFC 2104) of `data` under the key `key_parts` concatenated.
pub fn hmac_sha256(key_parts: &[&[u8]], data: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut key = [0u8; BLOCK];
    let total: usize = key_parts.iter().map(|k| k.len()).sum();
    if total > BLOCK {
        let mut h = Sha256::new();
        key_parts.iter().for_each(|k| h.update(k));
        key[..32].copy_from_slice(&h.finalize());
    } else {
        let mut at = 0;
        for k in key_parts {
            key[at..at + k.len()].copy_from_slice(k);
            at += k.len();
        }
    }
    let mut inner = Sha256::new();
    inner.update(key.map(|b| b ^ 0x36));
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(key.map(|b| b ^ 0x5c));
    key.zeroize();
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The SigV4 signing key for a date (`YYYYMMDD`), region and service.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut k_date = hmac_sha256(&[b"AWS4", secret_access_key.as_bytes()], date.as_bytes());
    let mut k_region = hmac_sha256(&[&k_date], region.as_bytes());
    let mut k_service = hmac_sha256(&[&k_region], service.as_bytes());
    let k_signing = hmac_sha256(&[&k_service], b"aws4_request");
    // The intermediate keys are as good as the secret for a day; leave none on the stack.
    k_date.zeroize();
    k_region.zeroize();
    k_service.zeroize();
    k_signing
}

/// Where bytes go: a hash, a counter or a buffer.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Counts bytes and writes what fits.
pub(crate) struct Out<'b> {
    pub(crate) buf: &'b mut [u8],
    pub(crate) len: usize,
}

impl Sink for Out<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
    }
}

pub(crate) fn hex_into(bytes: &[u8], out: &mut impl Sink) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.put(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// One byte in SigV4's encoding: itself when unreserved (`A-Za-z0-9-_.~`), else `%XX` with
/// upper-case hex. Returns the bytes and how many of them count.
fn encode_byte(b: u8) -> ([u8; 3], usize) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if unreserved(b) {
        ([b, 0, 0], 1)
    } else {
        (
            [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]],
            3,
        )
    }
}

fn put_encoded(b: u8, out: &mut impl Sink) {
    let (e, n) = encode_byte(b);
    out.put(&e[..n]);
}

/// A query key or value: as found in the URL (form-decoded, then re-encoded) or given plain.
#[derive(Clone, Copy)]
enum Part<'a> {
    Url(&'a str),
    Plain(&'a str),
}

/// The decoded bytes of a [`Part`].
struct Decoded<'a> {
    rest: &'a [u8],
    form: bool,
}

impl Iterator for Decoded<'_> {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        if !self.form {
            return Some(b);
        }
        Some(match b {
            b'+' => b' ',
            // Escapes were validated by `check_part`.
            b'%' => {
                let v = match (self.rest.first(), self.rest.get(1)) {
                    (Some(&h), Some(&l)) => (hex_val(h) << 4) | hex_val(l),
                    _ => b'%',
                };
                self.rest = self.rest.get(2..).unwrap_or(&[]);
                v
            }
            b => b,
        })
    }
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

impl<'a> Part<'a> {
    fn decoded(&self) -> Decoded<'a> {
        match *self {
            Part::Url(s) => Decoded {
                rest: s.as_bytes(),
                form: true,
            },
            Part::Plain(s) => Decoded {
                rest: s.as_bytes(),
                form: false,
            },
        }
    }

    /// The canonical encoding, byte by byte (for sorting).
    fn encoded(&self) -> impl Iterator<Item = u8> + 'a {
        self.decoded().flat_map(|b| {
            let (e, n) = encode_byte(b);
            e.into_iter().take(n)
        })
    }

    fn write(&self, out: &mut impl Sink) {
        self.decoded().for_each(|b| put_encoded(b, out));
    }
}

/// Checks every `%` is followed by two hex digits.
fn check_part(s: &str) -> Result<(), Error> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if !ok {
                return Err(Error::BadQuery);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Param<'a> {
    key: Part<'a>,
    value: Part<'a>,
}

impl Param<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .encoded()
            .cmp(other.key.encoded())
            .then_with(|| self.value.encoded().cmp(other.value.encoded()))
    }
}

/// The query parameters of a canonical request: at most [`MAX_QUERY_PARAMS`] from the URL plus
/// the presigner's own, sorted by their canonical encoding.
pub(crate) struct Query<'a> {
    params: [Option<Param<'a>>; MAX_QUERY_PARAMS + 6],
    count: usize,
}

impl<'a> Query<'a> {
    /// The parameters of a URL query (`None`: no query). `presigning` refuses `X-Amz-*` keys
    /// (the URL is presigned already).
    pub(crate) fn from_url(query: Option<&'a str>, presigning: bool) -> Result<Self, Error> {
        let mut s = Query {
            params: [None; MAX_QUERY_PARAMS + 6],
            count: 0,
        };
        let Some(q) = query else {
            return Ok(s);
        };
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            check_part(k)?;
            check_part(v)?;
            let key = Part::Url(k);
            if presigning
                && key
                    .decoded()
                    .take(6)
                    .map(|b| b.to_ascii_lowercase())
                    .eq(*b"x-amz-")
            {
                return Err(Error::AlreadyPresigned);
            }
            if s.count == MAX_QUERY_PARAMS {
                return Err(Error::TooManyParams);
            }
            if s.params().any(|p| p.key.decoded().eq(key.decoded())) {
                return Err(Error::BadQuery);
            }
            s.params[s.count] = Some(Param {
                key,
                value: Part::Url(v),
            });
            s.count += 1;
        }
        Ok(s)
    }

    fn push(&mut self, key: &'a str, value: &'a str) {
        self.params[self.count] = Some(Param {
            key: Part::Plain(key),
            value: Part::Plain(value),
        });
        self.count += 1;
    }

    fn params(&self) -> impl Iterator<Item = &Param<'a>> {
        self.params[..self.count].iter().flatten()
    }

    /// Insertion sort: at most 14 entries, no allocation.
    pub(crate) fn sort(&mut self) {
        for i in 1..self.count {
            let mut j = i;
            while j > 0 {
                let (a, b) = (self.params[j - 1], self.params[j]);
                match (a, b) {
                    (Some(a), Some(b)) if a.cmp(&b) == Ordering::Greater => {
                        self.params.swap(j - 1, j);
                        j -= 1;
                    }
                    _ => break,
                }
            }
        }
    }

    /// `k=v&k=v`, canonically encoded, in the current order.
    pub(crate) fn write(&self, out: &mut impl Sink) {
        for (i, p) in self.params().enumerate() {
            if i > 0 {
                out.put(b"&");
            }
            p.key.write(out);
            out.put(b"=");
            p.value.write(out);
        }
    }
}

/// The canonical URI: the path URI-encoded once more (all services but S3); `/` stays.
pub(crate) fn write_canonical_path(path: &str, out: &mut impl Sink) {
    for b in path.bytes() {
        if b == b'/' {
            out.put(b"/");
        } else {
            put_encoded(b, out);
        }
    }
}

/// `<date>/<region>/<service>/aws4_request`, the credential scope.
pub(crate) fn write_scope(date: &AmzDate, region: &str, service: &str, out: &mut impl Sink) {
    for piece in [date.date(), "/", region, "/", service, "/aws4_request"] {
        out.put(piece.as_bytes());
    }
}

/// The signature over a canonical request's hash: the string to sign (algorithm, date, scope,
/// hex hash) HMAC'd with the day's signing key.
pub(crate) fn signature(
    secret_access_key: &str,
    date: &AmzDate,
    region: &str,
    service: &str,
    canonical_hash: &[u8],
) -> Result<[u8; 32], Error> {
    let mut sts = [0u8; 256];
    let mut w = Out {
        buf: &mut sts,
        len: 0,
    };
    for piece in [ALGORITHM, "\n", date.as_str(), "\n"] {
        w.put(piece.as_bytes());
    }
    write_scope(date, region, service, &mut w);
    w.put(b"\n");
    hex_into(canonical_hash, &mut w);
    let sts_len = w.len;
    let sts = sts.get(..sts_len).ok_or(Error::BadInput)?;
    let mut key = signing_key(secret_access_key, date.date(), region, service);
    let signature = hmac_sha256(&[&key], sts);
    key.zeroize();
    Ok(signature)
}

/// Everything the canonical request and the URL are written from.
struct Signing<'a> {
    url: StreamUrl<'a>,
    host: &'a str,
    path: &'a str,
    query: Query<'a>,
}

impl Signing<'_> {
    fn write_canonical_request(&self, out: &mut impl Sink) {
        out.put(b"GET\n");
        write_canonical_path(self.path, out);
        out.put(b"\n");
        self.query.write(out);
        out.put(b"\nhost:");
        out.put(self.host.as_bytes());
        out.put(b"\n\nhost\n");
        out.put(EMPTY_SHA256.as_bytes());
    }

    fn write_url(&self, signature: &[u8; 32], out: &mut impl Sink) {
        let full = self.url.as_str();
        let before_path = full.len() - self.url.path_and_query().len();
        out.put(&full.as_bytes()[..before_path]);
        out.put(self.path.as_bytes());
        out.put(b"?");
        self.query.write(out);
        out.put(b"&X-Amz-Signature=");
        hex_into(signature, out);
    }
}

/// Writes `url` presigned with SigV4 (service `ssmmessages`, the URL's region) into `out` and
/// returns its length. `unix_secs` is the signing time, `expires_secs` the validity.
///
/// The written URL keeps scheme, host and path, and carries the URL's own query parameters
/// re-encoded canonically, then the `X-Amz-*` ones, then `X-Amz-Signature`.
///
/// # Errors
/// [`Error::NoRegion`] for a non-AWS host, [`Error::AlreadyPresigned`], [`Error::BadQuery`],
/// [`Error::TooManyParams`], [`Error::BadExpires`], [`Error::BadInput`], or
/// [`Error::BufferTooSmall`] (then `out` holds a partial URL: do not use it).
pub fn presign_stream_url(
    url: &StreamUrl<'_>,
    credentials: &Credentials<'_>,
    unix_secs: u64,
    expires_secs: u32,
    out: &mut [u8],
) -> Result<usize, Error> {
    let region = url.region().ok_or(Error::NoRegion)?;
    if expires_secs == 0 || expires_secs > MAX_EXPIRES_SECS {
        return Err(Error::BadExpires);
    }
    if credentials.access_key_id.is_empty() {
        return Err(Error::BadInput);
    }
    let date = AmzDate::from_unix_secs(unix_secs)?;
    let expires = Decimal::new(u64::from(expires_secs));
    let expires = expires.as_str();

    // X-Amz-Credential = <key id>/<scope>, written into a small buffer so it can be encoded
    // like any other value.
    let mut cred_buf = [0u8; 256];
    let mut cred = Out {
        buf: &mut cred_buf,
        len: 0,
    };
    cred.put(credentials.access_key_id.as_bytes());
    cred.put(b"/");
    write_scope(&date, region, SERVICE, &mut cred);
    let cred_len = cred.len;
    let credential = cred_buf
        .get(..cred_len)
        .and_then(|b| core::str::from_utf8(b).ok())
        .ok_or(Error::BadInput)?;

    debug_assert!(url.path().starts_with(DATA_CHANNEL_PATH));
    let mut query = Query::from_url(url.query(), true)?;
    let auth = [
        ("X-Amz-Algorithm", Some(ALGORITHM)),
        ("X-Amz-Credential", Some(credential)),
        ("X-Amz-Date", Some(date.as_str())),
        ("X-Amz-Expires", Some(expires)),
        ("X-Amz-Security-Token", credentials.session_token),
        ("X-Amz-SignedHeaders", Some("host")),
    ];
    for (k, v) in auth {
        if let Some(v) = v {
            query.push(k, v);
        }
    }
    query.sort();
    let s = Signing {
        url: *url,
        host: url.host(),
        path: url.path(),
        query,
    };

    let mut h = Sha256::new();
    s.write_canonical_request(&mut h);
    let canonical_hash = h.finalize();
    let signature = signature(
        credentials.secret_access_key,
        &date,
        region,
        SERVICE,
        &canonical_hash,
    )?;

    let mut count = Out {
        buf: &mut [],
        len: 0,
    };
    s.write_url(&signature, &mut count);
    let required = count.len;
    if out.len() < required {
        return Err(Error::BufferTooSmall { required });
    }
    let mut o = Out { buf: out, len: 0 };
    s.write_url(&signature, &mut o);
    Ok(o.len)
}

#[cfg(test)]
mod tests;
