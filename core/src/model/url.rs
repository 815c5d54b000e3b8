//! [`StreamUrl`]: the validated WebSocket URL of a session's data channel.

use core::fmt;

use super::{validate_session_id, Error};

/// Where a [`StreamUrl`] may point.
///
/// The default accepts only AWS's data-channel endpoints. [`Endpoints::DangerousAnyHost`] exists for
/// tests and the local emulator: with it, a peer that controls the StartSession response could send
/// your token to any host it names, so never use it for responses that come from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Endpoints {
    /// `wss://ssmmessages[-fips].<region>.amazonaws.com[.cn]`, port 443 only.
    #[default]
    Aws,
    /// `ws://` or `wss://` to any host and any port (127.0.0.1, localhost, an emulator). The path
    /// must still be `/v1/data-channel/<SessionId>`.
    DangerousAnyHost,
}

/// An AWS partition, derived from the region's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Partition {
    /// `aws`: the commercial regions.
    Aws,
    /// `aws-cn`: regions `cn-*`, hosts under `amazonaws.com.cn`.
    AwsCn,
    /// `aws-us-gov`: regions `us-gov-*` (GovCloud), hosts under `amazonaws.com`.
    AwsUsGov,
}

impl Partition {
    /// The partition's name as AWS writes it (`aws`, `aws-cn`, `aws-us-gov`), e.g. for ARNs.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
        }
    }

    /// The partition of a region, by its prefix.
    pub fn of_region(region: &str) -> Partition {
        if region.starts_with("cn-") {
            Partition::AwsCn
        } else if region.starts_with("us-gov-") {
            Partition::AwsUsGov
        } else {
            Partition::Aws
        }
    }

    /// The DNS suffix of the partition's service endpoints.
    pub const fn dns_suffix(&self) -> &'static str {
        match self {
            Partition::AwsCn => "amazonaws.com.cn",
            Partition::Aws | Partition::AwsUsGov => "amazonaws.com",
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The URL scheme of a [`StreamUrl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Scheme {
    /// `wss`: WebSocket over TLS, default port 443.
    Wss,
    /// `ws`: plain WebSocket, default port 80 (only with [`Endpoints::DangerousAnyHost`]).
    Ws,
}

impl Scheme {
    /// The port used when the URL names none.
    pub const fn default_port(&self) -> u16 {
        match self {
            Scheme::Wss => 443,
            Scheme::Ws => 80,
        }
    }
}

/// A `StreamUrl` is not an acceptable data-channel URL. Never carries any part of the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum UrlError {
    /// A byte outside printable ASCII, or one RFC 3986 forbids (space, `"`, `<`, `\`, ...).
    BadCharacter,
    /// Not `wss://` (or `ws://` with [`Endpoints::DangerousAnyHost`]).
    BadScheme,
    /// Not an AWS data-channel host, or userinfo / an empty or malformed host.
    BadHost,
    /// The region label is malformed or does not belong to the host's partition.
    BadRegion,
    /// A port that is not a number in 1..=65535, or not 443 for an AWS host.
    BadPort,
    /// The path is not `/v1/data-channel/<session-id>`.
    BadPath,
    /// A `#fragment`, which a WebSocket URL must not have (RFC 6455 §3).
    Fragment,
    /// The session id in the path differs from `SessionId`.
    SessionIdMismatch,
}

impl UrlError {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            UrlError::BadCharacter => {
                "stream url has a character outside printable ascii or one urls forbid"
            }
            UrlError::BadScheme => "stream url scheme is not wss",
            UrlError::BadHost => {
                "stream url host is not ssmmessages[-fips].<region>.amazonaws.com[.cn]"
            }
            UrlError::BadRegion => "stream url region is malformed or not in the host's partition",
            UrlError::BadPort => "stream url port is malformed or not allowed",
            UrlError::BadPath => "stream url path is not /v1/data-channel/<session-id>",
            UrlError::Fragment => "stream url has a fragment",
            UrlError::SessionIdMismatch => "stream url session id differs from SessionId",
        }
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for UrlError {}

/// The path prefix of every data-channel URL; the session id follows.
pub const DATA_CHANNEL_PATH: &str = "/v1/data-channel/";

const SERVICE: &str = "ssmmessages";
const SERVICE_FIPS: &str = "ssmmessages-fips";

/// Offsets into the URL text, computed once by the parser. Copy, so an owned response can keep them
/// beside its string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts {
    scheme: Scheme,
    host: (usize, usize),
    port: Option<u16>,
    path: usize,
    session: (usize, usize),
    query: Option<usize>,
    region: Option<(usize, usize)>,
    fips: bool,
}

/// A validated data-channel URL, borrowing its text.
///
/// Accepted by default: `wss://ssmmessages.<region>.amazonaws.com/v1/data-channel/<session-id>?<query>`,
/// with `ssmmessages-fips.` and `.amazonaws.com.cn` variants, no port or port 443. The query is kept
/// as given (opaque): a presigned URL's `X-Amz-*` parameters pass through untouched.
///
/// `Debug` hides a query that carries `X-Amz-` parameters: a presigned URL is a credential while it
/// lasts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StreamUrl<'a> {
    url: &'a str,
    parts: Parts,
}

impl<'a> StreamUrl<'a> {
    /// Validates `url` as an AWS data-channel URL for `session_id`.
    ///
    /// # Errors
    /// A [`UrlError`] (wrapped in [`Error::Url`]) naming the faulty part, or
    /// [`Error::BadSessionId`].
    pub fn parse(url: &'a str, session_id: &str) -> Result<Self, Error> {
        Self::parse_with(url, session_id, Endpoints::Aws)
    }

    /// Like [`StreamUrl::parse`] but accepts `ws://` or `wss://` to any host and port, for tests and
    /// the local emulator. Never use it on a response that came over the network.
    ///
    /// # Errors
    /// As [`StreamUrl::parse`], without the host, scheme and port restrictions.
    pub fn dangerous_parse_any_host(url: &'a str, session_id: &str) -> Result<Self, Error> {
        Self::parse_with(url, session_id, Endpoints::DangerousAnyHost)
    }

    /// Validates `url` for `session_id` under the given endpoint policy.
    ///
    /// # Errors
    /// As [`StreamUrl::parse`].
    pub fn parse_with(url: &'a str, session_id: &str, endpoints: Endpoints) -> Result<Self, Error> {
        validate_session_id(session_id)?;
        let parts = parse_parts(url, session_id, endpoints).map_err(Error::Url)?;
        Ok(StreamUrl { url, parts })
    }

    pub(crate) fn from_parts(url: &'a str, parts: Parts) -> Self {
        StreamUrl { url, parts }
    }

    pub(crate) fn parts(&self) -> Parts {
        self.parts
    }

    /// The whole URL, as given.
    pub fn as_str(&self) -> &'a str {
        self.url
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.parts.scheme
    }

    /// The host, without port (an IPv6 literal keeps its brackets).
    pub fn host(&self) -> &'a str {
        &self.url[self.parts.host.0..self.parts.host.1]
    }

    /// The port: the one in the URL, else the scheme's default (443 for `wss`).
    pub fn port(&self) -> u16 {
        self.parts
            .port
            .unwrap_or_else(|| self.parts.scheme.default_port())
    }

    /// The request target for the HTTP upgrade: path and query, e.g.
    /// `/v1/data-channel/<id>?role=publish_subscribe`.
    pub fn path_and_query(&self) -> &'a str {
        &self.url[self.parts.path..]
    }

    /// The path, `/v1/data-channel/<session-id>`.
    pub fn path(&self) -> &'a str {
        let end = self.parts.query.map_or(self.url.len(), |q| q - 1);
        &self.url[self.parts.path..end]
    }

    /// The query without its `?`, if any (opaque).
    pub fn query(&self) -> Option<&'a str> {
        self.parts.query.map(|q| &self.url[q..])
    }

    /// The session id named by the path (equal to the response's `SessionId`).
    pub fn session_id(&self) -> &'a str {
        &self.url[self.parts.session.0..self.parts.session.1]
    }

    /// The region, for an AWS host (`us-east-1`); `None` for other hosts.
    pub fn region(&self) -> Option<&'a str> {
        self.parts.region.map(|(s, e)| &self.url[s..e])
    }

    /// The partition of [`StreamUrl::region`]; `None` for other hosts.
    pub fn partition(&self) -> Option<Partition> {
        self.region().map(Partition::of_region)
    }

    /// Whether the host is a FIPS endpoint (`ssmmessages-fips.`).
    pub fn is_fips(&self) -> bool {
        self.parts.fips
    }

    /// Whether the host is an AWS data-channel host (always true unless parsed with
    /// [`Endpoints::DangerousAnyHost`]).
    pub fn is_aws(&self) -> bool {
        self.parts.region.is_some()
    }

    fn query_is_secret(&self) -> bool {
        self.query().is_some_and(|q| {
            q.as_bytes()
                .windows(6)
                .any(|w| w.eq_ignore_ascii_case(b"x-amz-"))
        })
    }
}

impl fmt::Debug for StreamUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.query_is_secret() {
            let end = self.parts.query.map_or(self.url.len(), |q| q - 1);
            write!(
                f,
                "StreamUrl({}?<presigned query redacted>)",
                &self.url[..end]
            )
        } else {
            write!(f, "StreamUrl({})", self.url)
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for StreamUrl<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        if self.query_is_secret() {
            let end = self.parts.query.map_or(self.url.len(), |q| q - 1);
            defmt::write!(
                f,
                "StreamUrl({=str}?<presigned query redacted>)",
                &self.url[..end]
            );
        } else {
            defmt::write!(f, "StreamUrl({=str})", self.url);
        }
    }
}

/// Bytes RFC 3986 allows in a URL (unreserved, reserved and `%`), nothing else.
fn url_byte_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

/// `[a-z]{2,}(-[a-z0-9]+)*-[0-9]+`, at most 32 bytes: `us-east-1`, `cn-north-1`, `us-gov-west-1`.
fn region_ok(r: &str) -> bool {
    let b = r.as_bytes();
    if b.is_empty() || b.len() > 32 {
        return false;
    }
    let mut labels = r.split('-');
    let first = labels.next().unwrap_or("");
    if first.len() < 2 || !first.bytes().all(|c| c.is_ascii_lowercase()) {
        return false;
    }
    let mut last = first;
    let mut count = 1;
    for l in labels {
        if l.is_empty()
            || !l
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return false;
        }
        last = l;
        count += 1;
    }
    count >= 3 && last.bytes().all(|c| c.is_ascii_digit())
}

/// Where the region lies in an AWS host, and whether it is a FIPS endpoint.
#[derive(Clone, Copy)]
struct AwsHost {
    region: (usize, usize),
    fips: bool,
}

/// Recognises `ssmmessages[-fips].<region>.<partition suffix>`: `Some` when the host has that
/// shape, with the region's partition matching the suffix.
fn aws_host(host: &str, host_start: usize) -> Result<Option<AwsHost>, UrlError> {
    let (rest, fips, svc_len) = if let Some(r) = host.strip_prefix(SERVICE_FIPS) {
        (r, true, SERVICE_FIPS.len())
    } else if let Some(r) = host.strip_prefix(SERVICE) {
        (r, false, SERVICE.len())
    } else {
        return Ok(None);
    };
    let Some(rest) = rest.strip_prefix('.') else {
        return Ok(None);
    };
    let (region, suffix) = match rest.split_once('.') {
        Some(x) => x,
        None => return Ok(None),
    };
    let cn = match suffix {
        "amazonaws.com" => false,
        "amazonaws.com.cn" => true,
        _ => return Ok(None),
    };
    if !region_ok(region) {
        return Err(UrlError::BadRegion);
    }
    if (Partition::of_region(region) == Partition::AwsCn) != cn {
        return Err(UrlError::BadRegion);
    }
    let start = host_start + svc_len + 1;
    Ok(Some(AwsHost {
        region: (start, start + region.len()),
        fips,
    }))
}

fn parse_parts(url: &str, session_id: &str, endpoints: Endpoints) -> Result<Parts, UrlError> {
    let dangerous = endpoints == Endpoints::DangerousAnyHost;
    if !url.bytes().all(url_byte_ok) {
        return Err(UrlError::BadCharacter);
    }
    if url.contains('#') {
        return Err(UrlError::Fragment);
    }
    let (scheme_text, _) = url.split_once("://").ok_or(UrlError::BadScheme)?;
    let scheme = if scheme_text.eq_ignore_ascii_case("wss") {
        Scheme::Wss
    } else if dangerous && scheme_text.eq_ignore_ascii_case("ws") {
        Scheme::Ws
    } else {
        return Err(UrlError::BadScheme);
    };
    let auth_start = scheme_text.len() + 3;
    let auth_end = url[auth_start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| auth_start + i);
    let authority = &url[auth_start..auth_end];
    if authority.contains('@') {
        return Err(UrlError::BadHost);
    }
    // Split host and port; an IPv6 literal is bracketed and may contain colons.
    let (host_len, port_text) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or(UrlError::BadHost)?;
        match &authority[close + 1..] {
            "" => (close + 1, None),
            p => (
                close + 1,
                Some(p.strip_prefix(':').ok_or(UrlError::BadHost)?),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.len(), Some(p)),
            None => (authority.len(), None),
        }
    };
    let host = &authority[..host_len];
    if host.is_empty() || (host.contains(['[', ']']) && !dangerous) {
        return Err(UrlError::BadHost);
    }
    let port = match port_text {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(UrlError::BadPort);
            }
            match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(UrlError::BadPort),
                Ok(n) => Some(n),
            }
        }
    };
    let aws = match aws_host(host, auth_start) {
        Ok(a) => a,
        Err(e) if !dangerous => return Err(e),
        Err(_) => None,
    };
    if !dangerous {
        if aws.is_none() {
            return Err(UrlError::BadHost);
        }
        if port.is_some_and(|p| p != 443) {
            return Err(UrlError::BadPort);
        }
    }
    let path_start = auth_end;
    let query_start = url[path_start..].find('?').map(|i| path_start + i + 1);
    let path_end = query_start.map_or(url.len(), |q| q - 1);
    let path = &url[path_start..path_end];
    let sid = path
        .strip_prefix(DATA_CHANNEL_PATH)
        .ok_or(UrlError::BadPath)?;
    if sid.is_empty() || sid.contains('/') {
        return Err(UrlError::BadPath);
    }
    if sid != session_id {
        return Err(UrlError::SessionIdMismatch);
    }
    let sid_start = path_start + DATA_CHANNEL_PATH.len();
    Ok(Parts {
        scheme,
        host: (auth_start, auth_start + host_len),
        port,
        path: path_start,
        session: (sid_start, sid_start + sid.len()),
        query: query_start,
        region: aws.map(|a| a.region),
        fips: aws.is_some_and(|a| a.fips),
    })
}
