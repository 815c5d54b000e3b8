//! SigV4 **header** signing: the `Authorization` header of an AWS JSON 1.1 API request (service
//! `ssm`) and of the data-channel WebSocket upgrade GET (service `ssmmessages`).
//!
//! Signed headers follow botocore's `SigV4Auth` (and the official client's Go signer): `host`,
//! `x-amz-date`, `x-amz-security-token` with temporary credentials, plus the request's own
//! headers (for the JSON API: `content-type` and `x-amz-target`). No `x-amz-content-sha256`
//! header: botocore adds it for S3 only; the payload hash is in the canonical request either way.
//! The vectors in `header_tests.rs` were produced by botocore (`gen_vectors.py`).

use sha2::{Digest, Sha256};

use super::{
    hex_into, signature, write_canonical_path, write_scope, AmzDate, Credentials, Error, Out,
    Query, Sink, ALGORITHM,
};
use crate::model::StreamUrl;

/// Headers a caller may add to the signed set (besides `host`, `x-amz-date` and
/// `x-amz-security-token`, which are always there).
pub const MAX_EXTRA_HEADERS: usize = 6;

/// The service name of the SSM JSON API in the credential scope.
pub const API_SERVICE: &str = "ssm";

/// Headers the signer writes itself: a caller's header of that name is refused.
const OWN: [&str; 4] = [
    "host",
    "x-amz-date",
    "x-amz-security-token",
    "authorization",
];

/// A request to sign with headers.
#[derive(Debug, Clone, Copy)]
pub struct HeaderRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The `Host` header as sent: the host, and `:port` when it is not the scheme's default.
    pub host: &'a str,
    /// The path as sent (`/` for the JSON API).
    pub path: &'a str,
    /// The query as sent, without `?` (opaque; canonicalised for signing).
    pub query: Option<&'a str>,
    /// Further headers to sign, as sent (names in any case).
    pub headers: &'a [(&'a str, &'a str)],
    /// SHA-256 of the body.
    pub payload_sha256: [u8; 32],
    /// The region of the credential scope.
    pub region: &'a str,
    /// The service of the credential scope (`ssm`, `ssmmessages`).
    pub service: &'a str,
}

/// The outcome of header signing: the headers to send beside the request's own.
#[derive(Clone, Copy)]
pub struct SignedHeaders<'b> {
    /// The `X-Amz-Date` value.
    pub amz_date: AmzDate,
    /// The `Authorization` value (in the caller's buffer). Not secret by itself, but valid for
    /// this request for minutes: keep it out of logs anyway.
    pub authorization: &'b str,
}

impl core::fmt::Debug for SignedHeaders<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SignedHeaders")
            .field("amz_date", &self.amz_date)
            .finish_non_exhaustive()
    }
}

/// RFC 7230 `tchar`: what a header name may hold.
fn name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// Visible ASCII, space and tab: no CR or LF that would split the header, nothing to encode.
fn value_ok(v: &str) -> bool {
    v.bytes().all(|c| c == b'\t' || (b' '..=b'~').contains(&c))
}

/// A header value in canonical form: trimmed, inner runs of spaces and tabs as one space
/// (botocore: `' '.join(value.split())`).
fn write_value(v: &str, out: &mut impl Sink) {
    let mut first = true;
    for word in v.split([' ', '\t']).filter(|w| !w.is_empty()) {
        if !first {
            out.put(b" ");
        }
        out.put(word.as_bytes());
        first = false;
    }
}

fn write_lower(s: &str, out: &mut impl Sink) {
    for b in s.bytes() {
        out.put(&[b.to_ascii_lowercase()]);
    }
}

fn cmp_lower(a: &str, b: &str) -> core::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// Signs `request` at `unix_secs` and writes the `Authorization` value into `out`.
///
/// Send, besides the request's own headers: `Host: request.host`, `X-Amz-Date:
/// amz_date`, `X-Amz-Security-Token: <token>` when the credentials have one, and
/// `Authorization: authorization`.
///
/// # Errors
/// [`Error::BadInput`] for an empty access key id, region or service, or a date past 9999;
/// [`Error::BadHeader`] for a header name or value that cannot be sent as is (CR, LF, a name
/// outside RFC 7230's token characters, a name twice, or one the signer writes itself);
/// [`Error::TooManyHeaders`]; [`Error::BadQuery`] / [`Error::TooManyParams`] for the query;
/// [`Error::BufferTooSmall`].
pub fn sign_headers<'b>(
    request: &HeaderRequest<'_>,
    credentials: &Credentials<'_>,
    unix_secs: u64,
    out: &'b mut [u8],
) -> Result<SignedHeaders<'b>, Error> {
    if credentials.access_key_id.is_empty()
        || request.region.is_empty()
        || request.service.is_empty()
        || !value_ok(credentials.access_key_id)
        || !value_ok(request.region)
        || !value_ok(request.service)
    {
        return Err(Error::BadInput);
    }
    if !value_ok(request.host)
        || request.host.is_empty()
        || !value_ok(request.path)
        || credentials.session_token.is_some_and(|t| !value_ok(t))
    {
        return Err(Error::BadHeader);
    }
    if request.headers.len() > MAX_EXTRA_HEADERS {
        return Err(Error::TooManyHeaders);
    }
    let date = AmzDate::from_unix_secs(unix_secs)?;

    // Every signed header, sorted by lower-case name.
    let mut all: [(&str, &str); MAX_EXTRA_HEADERS + 3] = [("", ""); MAX_EXTRA_HEADERS + 3];
    let mut n = 0;
    for &(name, value) in request.headers {
        if !name_ok(name) || !value_ok(value) {
            return Err(Error::BadHeader);
        }
        let clash = OWN.iter().any(|o| o.eq_ignore_ascii_case(name))
            || all[..n].iter().any(|(o, _)| o.eq_ignore_ascii_case(name));
        if clash {
            return Err(Error::BadHeader);
        }
        all[n] = (name, value);
        n += 1;
    }
    all[n] = ("host", request.host);
    n += 1;
    all[n] = ("x-amz-date", date.as_str());
    n += 1;
    if let Some(t) = credentials.session_token {
        all[n] = ("x-amz-security-token", t);
        n += 1;
    }
    let all = &mut all[..n];
    all.sort_unstable_by(|a, b| cmp_lower(a.0, b.0));

    let mut query = Query::from_url(request.query, false)?;
    query.sort();
    let write_signed_names = |out: &mut dyn FnMut(&[u8])| {
        for (i, (name, _)) in all.iter().enumerate() {
            if i > 0 {
                out(b";");
            }
            for b in name.bytes() {
                out(&[b.to_ascii_lowercase()]);
            }
        }
    };

    let mut h = Sha256::new();
    h.put(request.method.as_bytes());
    h.put(b"\n");
    write_canonical_path(request.path, &mut h);
    h.put(b"\n");
    query.write(&mut h);
    h.put(b"\n");
    for (name, value) in all.iter() {
        write_lower(name, &mut h);
        h.put(b":");
        write_value(value, &mut h);
        h.put(b"\n");
    }
    h.put(b"\n");
    write_signed_names(&mut |b| h.update(b));
    h.put(b"\n");
    hex_into(&request.payload_sha256, &mut h);
    let canonical_hash = h.finalize();
    let sig = signature(
        credentials.secret_access_key,
        &date,
        request.region,
        request.service,
        &canonical_hash,
    )?;

    let write = |o: &mut Out<'_>| {
        o.put(ALGORITHM.as_bytes());
        o.put(b" Credential=");
        o.put(credentials.access_key_id.as_bytes());
        o.put(b"/");
        write_scope(&date, request.region, request.service, o);
        o.put(b", SignedHeaders=");
        write_signed_names(&mut |b| o.put(b));
        o.put(b", Signature=");
        hex_into(&sig, o);
    };
    let mut count = Out {
        buf: &mut [],
        len: 0,
    };
    write(&mut count);
    let required = count.len;
    let Some(dst) = out.get_mut(..required) else {
        return Err(Error::BufferTooSmall { required });
    };
    let mut o = Out { buf: dst, len: 0 };
    write(&mut o);
    // Only ASCII pieces were written.
    let authorization = core::str::from_utf8(dst).map_err(|_| Error::BadInput)?;
    Ok(SignedHeaders {
        amz_date: date,
        authorization,
    })
}

/// SHA-256 of the empty body.
pub const EMPTY_BODY_SHA256: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The `Host` header of `url` as the WebSocket layer sends it: the host, with `:port` when it
/// is not the scheme's default (what `ws::handshake::ClientRequest` writes).
pub fn upgrade_host<'b>(url: &StreamUrl<'_>, buf: &'b mut [u8; 128]) -> Result<&'b str, Error> {
    let host = url.host();
    let mut o = Out {
        buf: &mut buf[..],
        len: 0,
    };
    o.put(host.as_bytes());
    if url.port() != url.scheme().default_port() {
        o.put(b":");
        o.put(crate::decimal::Decimal::new(u64::from(url.port())).as_bytes());
    }
    let len = o.len;
    buf.get(..len)
        .and_then(|b| core::str::from_utf8(b).ok())
        .ok_or(Error::BufferTooSmall { required: len })
}

/// Signs the WebSocket upgrade GET of `url` (service `ssmmessages`), as the official client
/// does since 1.2.764.0 (PROTOCOL.md §6b). The region is the URL's; for a non-AWS host (the
/// local emulator) pass `region`, else it is ignored.
///
/// Send `X-Amz-Date`, `X-Amz-Security-Token` (with temporary credentials) and `Authorization`
/// with the upgrade (`ssm-embassy` and the tokio adapter pass them as extra upgrade headers).
///
/// # Errors
/// [`Error::NoRegion`] for a non-AWS host without `region`; [`Error::AlreadyPresigned`] when
/// the URL carries `X-Amz-*` parameters (it needs no headers); as [`sign_headers`].
pub fn sign_upgrade<'b>(
    url: &StreamUrl<'_>,
    region: Option<&str>,
    credentials: &Credentials<'_>,
    unix_secs: u64,
    out: &'b mut [u8],
) -> Result<SignedHeaders<'b>, Error> {
    let region = url.region().or(region).ok_or(Error::NoRegion)?;
    // A presigned URL is signed already; signing it again would only confuse the service.
    Query::from_url(url.query(), true)?;
    let mut host = [0u8; 128];
    let host = upgrade_host(url, &mut host)?;
    let request = HeaderRequest {
        method: "GET",
        host,
        path: url.path(),
        query: url.query(),
        headers: &[],
        payload_sha256: EMPTY_BODY_SHA256,
        region,
        service: super::SERVICE,
    };
    sign_headers(&request, credentials, unix_secs, out)
}

/// The AWS JSON 1.1 content type.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Signs an AWS JSON 1.1 API call: `POST /` to `host` with `X-Amz-Target: target` and
/// `Content-Type: application/x-amz-json-1.1`, body `body`, service `ssm`.
///
/// # Errors
/// As [`sign_headers`].
pub fn sign_json_request<'b>(
    host: &str,
    region: &str,
    target: &str,
    body: &[u8],
    credentials: &Credentials<'_>,
    unix_secs: u64,
    out: &'b mut [u8],
) -> Result<SignedHeaders<'b>, Error> {
    let request = HeaderRequest {
        method: "POST",
        host,
        path: "/",
        query: None,
        headers: &[
            ("Content-Type", JSON_CONTENT_TYPE),
            ("X-Amz-Target", target),
        ],
        payload_sha256: Sha256::digest(body).into(),
        region,
        service: API_SERVICE,
    };
    sign_headers(&request, credentials, unix_secs, out)
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
