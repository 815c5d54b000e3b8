//! The opening handshake (RFC 6455 §4): the client's upgrade GET and the server's 101 answer.
//!
//! Parsing is incremental in the httparse way: pass everything received so far; you get
//! [`Status::Partial`] until the blank line that ends the head, then the number of bytes the head
//! took. Bytes after it already belong to the frame stream: hand them to
//! [`WebSocket::handle_input`](super::WebSocket::handle_input).

use crate::decimal::Decimal;
use sha1::{Digest, Sha1};

use super::{Error, InsufficientSize, Status};

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Length of a base64 `Sec-WebSocket-Key` (16 bytes).
pub const KEY_LEN: usize = 24;

/// Length of a base64 `Sec-WebSocket-Accept` (a 20-byte SHA-1).
pub const ACCEPT_LEN: usize = 28;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard padded base64 of `input` into `out`; returns the length written.
///
/// `out` must hold `4 * ceil(len / 3)` bytes (private: every caller sizes it statically).
fn base64_encode(input: &[u8], out: &mut [u8]) -> usize {
    let mut o = 0;
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out[o] = B64[(n >> 18) as usize & 63];
        out[o + 1] = B64[(n >> 12) as usize & 63];
        out[o + 2] = if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63]
        } else {
            b'='
        };
        out[o + 3] = if chunk.len() > 2 {
            B64[n as usize & 63]
        } else {
            b'='
        };
        o += 4;
    }
    o
}

/// The `Sec-WebSocket-Key` for 16 random bytes.
pub fn encode_key(raw: &[u8; 16]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    base64_encode(raw, &mut out);
    out
}

/// The `Sec-WebSocket-Accept` a server answers to `key` (the base64 key as sent).
pub fn accept_key(key: &[u8]) -> [u8; ACCEPT_LEN] {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID.as_bytes());
    let mut out = [0u8; ACCEPT_LEN];
    base64_encode(&h.finalize(), &mut out);
    out
}

/// Writes into a slice, or only counts (first pass of [`write_twice`]).
struct Cursor<'b> {
    buf: &'b mut [u8],
    pos: usize,
    count_only: bool,
}

impl Cursor<'_> {
    fn put(&mut self, s: &[u8]) {
        if !self.count_only {
            self.buf[self.pos..self.pos + s.len()].copy_from_slice(s);
        }
        self.pos += s.len();
    }

    /// Decimal digits of `v` (no `core::fmt`: it would cost a device about a kilobyte).
    fn put_u16(&mut self, v: u16) {
        self.put(Decimal::new(u64::from(v)).as_bytes());
    }
}

/// Splits at the first CRLF: (line, rest); the whole input when there is none.
fn split_line(s: &str) -> (&str, &str) {
    match s.as_bytes().windows(2).position(|w| w == b"\r\n") {
        Some(i) => (&s[..i], &s[i + 2..]),
        None => (s, ""),
    }
}

/// Runs `render` once to measure, then once to write, so a short buffer is left untouched.
fn write_twice(
    buf: &mut [u8],
    render: impl Fn(&mut Cursor<'_>),
) -> Result<usize, InsufficientSize> {
    let mut count = Cursor {
        buf: &mut [],
        pos: 0,
        count_only: true,
    };
    render(&mut count);
    if count.pos > buf.len() {
        return Err(InsufficientSize {
            required: count.pos,
        });
    }
    let mut w = Cursor {
        buf,
        pos: 0,
        count_only: false,
    };
    render(&mut w);
    Ok(w.pos)
}

/// The client's upgrade request. Fill it in and [`ClientRequest::write`] it.
#[derive(Debug, Clone, Copy)]
pub struct ClientRequest<'a> {
    /// Host name or IP literal as in the URL (an IPv6 literal with or without brackets).
    pub host: &'a str,
    /// TCP port; it appears in `Host` only when it is not the scheme's default.
    pub port: u16,
    /// `wss` (default port 443) rather than `ws` (80).
    pub tls: bool,
    /// Path and query, starting with `/`, kept as given (a presigned URL's query is opaque).
    pub path_and_query: &'a str,
    /// 16 random bytes from your RNG; sent base64 encoded.
    pub key: [u8; 16],
    /// Extra headers written as given, e.g. SigV4 `Authorization` and `X-Amz-Date`. Names and
    /// values must not contain CR or LF (your bug if they do: the request would be malformed).
    pub headers: &'a [(&'a str, &'a str)],
}

impl ClientRequest<'_> {
    /// The base64 key this request sends; [`parse_response`] needs it.
    pub fn key_base64(&self) -> [u8; KEY_LEN] {
        encode_key(&self.key)
    }

    fn render(&self, w: &mut Cursor<'_>) {
        let key = self.key_base64();
        let path = if self.path_and_query.is_empty() {
            "/"
        } else {
            self.path_and_query
        };
        w.put(b"GET ");
        w.put(path.as_bytes());
        w.put(b" HTTP/1.1\r\nHost: ");
        let bracket = self.host.contains(':') && !self.host.starts_with('[');
        if bracket {
            w.put(b"[");
        }
        w.put(self.host.as_bytes());
        if bracket {
            w.put(b"]");
        }
        let default = if self.tls { 443 } else { 80 };
        if self.port != default {
            w.put(b":");
            w.put_u16(self.port);
        }
        w.put(b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
        w.put(&key);
        w.put(b"\r\nSec-WebSocket-Version: 13\r\n");
        for (name, value) in self.headers {
            debug_assert!(!name.contains(['\r', '\n']) && !value.contains(['\r', '\n']));
            w.put(name.as_bytes());
            w.put(b": ");
            w.put(value.as_bytes());
            w.put(b"\r\n");
        }
        w.put(b"\r\n");
    }

    /// Bytes [`ClientRequest::write`] needs.
    pub fn buffer_len(&self) -> usize {
        let mut c = Cursor {
            buf: &mut [],
            pos: 0,
            count_only: true,
        };
        self.render(&mut c);
        c.pos
    }

    /// Writes the request into `buf`; returns its length.
    ///
    /// # Errors
    /// [`InsufficientSize`] when it does not fit; nothing is written then.
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, InsufficientSize> {
        write_twice(buf, |w| self.render(w))
    }
}

/// The header lines of a request or response head, as `(name, value)` with the value trimmed.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (line, rest) = split_line(self.rest);
            self.rest = rest;
            // Lines were checked by `split_head`; a line without a colon cannot reach here.
            if let Some((n, v)) = line.split_once(':') {
                return Some((n, v.trim_ascii()));
            }
        }
    }
}

/// Whether the comma-separated header value contains `token` (case-insensitive).
fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// The `Upgrade` and `Connection` headers both sides require.
#[derive(Default)]
struct UpgradeHeaders {
    upgrade: bool,
    connection: bool,
}

impl UpgradeHeaders {
    /// Notes the header if it is one of the two; returns whether it was.
    fn see(&mut self, name: &str, value: &str) -> bool {
        if name.eq_ignore_ascii_case("upgrade") {
            self.upgrade |= has_token(value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            self.connection |= has_token(value, "upgrade");
        } else {
            return false;
        }
        true
    }

    fn check(&self) -> Result<(), Error> {
        if !self.upgrade {
            return Err(Error::HandshakeUpgrade);
        }
        if !self.connection {
            return Err(Error::HandshakeConnection);
        }
        Ok(())
    }
}

/// Finds the end of the head and splits it into the start line and the header block.
///
/// Returns the head length (blank line included). Rejects early, before the blank line, input
/// that cannot become HTTP (bytes outside visible ASCII, tab, CR, LF; or a wrong start).
fn split_head<'a>(
    bytes: &'a [u8],
    start: &[u8],
) -> Result<Status<(&'a str, &'a str, usize)>, Error> {
    let n = start.len().min(bytes.len());
    if bytes[..n] != start[..n] {
        return Err(Error::HandshakeMalformed);
    }
    let end = match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => p,
        None => {
            if bytes
                .iter()
                .any(|&b| !(b == b'\t' || b == b'\r' || b == b'\n' || (0x20..0x7f).contains(&b)))
            {
                return Err(Error::HandshakeMalformed);
            }
            return Ok(Status::Partial);
        }
    };
    let head = core::str::from_utf8(&bytes[..end]).map_err(|_| Error::HandshakeMalformed)?;
    if head
        .bytes()
        .any(|b| !(b == b'\t' || b == b'\r' || b == b'\n' || (0x20..0x7f).contains(&b)))
    {
        return Err(Error::HandshakeMalformed);
    }
    let (first, headers) = split_line(head);
    if first.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(Error::HandshakeMalformed);
    }
    let mut rest = headers;
    while !rest.is_empty() {
        let (line, r) = split_line(rest);
        rest = r;
        // A bare CR or LF inside a line is not HTTP/1.1 (and a classic smuggling trick).
        let Some((name, _)) = line.split_once(':') else {
            return Err(Error::HandshakeMalformed);
        };
        if name.is_empty()
            || name.bytes().any(|b| b == b' ' || b == b'\t')
            || line.bytes().any(|b| b == b'\r' || b == b'\n')
        {
            return Err(Error::HandshakeMalformed);
        }
    }
    Ok(Status::Complete((first, headers, end + 4)))
}

/// Checks the server's answer to the request whose base64 key is `key`.
///
/// Returns the length of the response head: bytes after it are WebSocket frames.
///
/// # Errors
/// [`Error::HandshakeMalformed`], [`Error::HandshakeStatus`], [`Error::HandshakeUpgrade`],
/// [`Error::HandshakeConnection`], [`Error::HandshakeAccept`], [`Error::HandshakeUnrequested`].
pub fn parse_response(bytes: &[u8], key: &[u8]) -> Result<Status<usize>, Error> {
    let (status_line, block, len) = match split_head(bytes, b"HTTP/1.1 ")? {
        Status::Partial => return Ok(Status::Partial),
        Status::Complete(v) => v,
    };
    let code = match status_line.as_bytes() {
        [_, _, _, _, _, _, _, _, _, a, b, c, rest @ ..]
            if [a, b, c].iter().all(|d| d.is_ascii_digit())
                && matches!(rest.first(), None | Some(b' ')) =>
        {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(Error::HandshakeMalformed),
    };
    if code != 101 {
        return Err(Error::HandshakeStatus(code));
    }
    let expected = accept_key(key);
    let mut up = UpgradeHeaders::default();
    let mut accept = false;
    for (name, value) in (Headers { rest: block }) {
        if up.see(name, value) {
            continue;
        }
        if name.eq_ignore_ascii_case("sec-websocket-accept") {
            if value.as_bytes() != expected {
                return Err(Error::HandshakeAccept);
            }
            accept = true;
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions")
            || name.eq_ignore_ascii_case("sec-websocket-protocol")
        {
            return Err(Error::HandshakeUnrequested);
        }
    }
    up.check()?;
    if !accept {
        return Err(Error::HandshakeAccept);
    }
    Ok(Status::Complete(len))
}

/// A client's upgrade request, as a server sees it. Borrows the input.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The request target (path and query).
    pub path: &'a str,
    /// The `Sec-WebSocket-Key` value (24 base64 characters).
    pub key: &'a str,
    /// Length of the request head: bytes after it are WebSocket frames.
    pub len: usize,
    block: &'a str,
}

impl<'a> Request<'a> {
    /// Every header line, in order.
    pub fn headers(&self) -> Headers<'a> {
        Headers { rest: self.block }
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

fn is_base64_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == KEY_LEN
        && b[22..] == *b"=="
        && b[..22].iter().all(|c| B64.contains(c))
        // The last character before the padding carries 2 bits: its low 4 bits are zero.
        && B64.iter().position(|c| *c == b[21]).is_some_and(|i| i & 15 == 0)
}

/// Parses a client's upgrade request (server side, for tests and the emulator).
///
/// # Errors
/// [`Error::HandshakeMalformed`], [`Error::HandshakeRequest`] (not `GET … HTTP/1.1`, version not
/// 13, key missing or not 16 bytes of base64), [`Error::HandshakeUpgrade`],
/// [`Error::HandshakeConnection`].
pub fn parse_request(bytes: &[u8]) -> Result<Status<Request<'_>>, Error> {
    let (line, block, len) = match split_head(bytes, b"GET ")? {
        Status::Partial => return Ok(Status::Partial),
        Status::Complete(v) => v,
    };
    let path = line
        .strip_prefix("GET ")
        .and_then(|r| r.strip_suffix(" HTTP/1.1"))
        .filter(|p| !p.is_empty() && !p.contains(' '))
        .ok_or(Error::HandshakeRequest)?;
    let mut up = UpgradeHeaders::default();
    let (mut version, mut key) = (false, None);
    for (name, value) in (Headers { rest: block }) {
        if up.see(name, value) {
            continue;
        }
        if name.eq_ignore_ascii_case("sec-websocket-version") {
            version = value == "13";
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(value);
        }
    }
    up.check()?;
    let key = key
        .filter(|k| is_base64_key(k))
        .ok_or(Error::HandshakeRequest)?;
    if !version {
        return Err(Error::HandshakeRequest);
    }
    Ok(Status::Complete(Request {
        path,
        key,
        len,
        block,
    }))
}

/// Writes the server's `101 Switching Protocols` answer to `key`; returns its length.
///
/// # Errors
/// [`InsufficientSize`] when it does not fit; nothing is written then.
pub fn write_response(buf: &mut [u8], key: &str) -> Result<usize, InsufficientSize> {
    let accept = accept_key(key.as_bytes());
    write_twice(buf, |w| {
        w.put(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
        w.put(&accept);
        w.put(b"\r\n\r\n");
    })
}
