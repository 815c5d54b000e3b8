//! HTTP/1.1 for the SSM API, sans-IO: the signed request written into a caller buffer, the
//! response head parsed with `httparse`, the body de-framed (`Content-Length`, chunked, or to
//! the end of the connection) into a caller buffer, and the `Date` header as Unix seconds.
//!
//! Every length the peer sends is checked against the caller's buffer before anything is
//! copied: a hostile response ends in an [`HttpError`], never in a panic or an overrun.

use core::fmt;

use crate::decimal::Decimal;

/// Response headers looked at (AWS sends about ten).
pub const MAX_HEADERS: usize = 32;

/// Longest chunk-size line, extensions included, and longest trailer section: a chunk size is
/// at most 16 hex digits, and AWS sends neither extensions nor trailers.
const MAX_CHUNK_LINE: usize = 256;

/// The peer's HTTP is unusable. Never carries any of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum HttpError {
    /// Not an HTTP/1.x response head (httparse refused it).
    BadHead,
    /// More than [`MAX_HEADERS`] headers.
    TooManyHeaders,
    /// The head does not fit the receive buffer.
    HeadTooLarge,
    /// `Content-Length` malformed, or given twice with different values, or beside chunked.
    BadLength,
    /// A `Transfer-Encoding` other than `chunked`.
    UnsupportedEncoding,
    /// A 1xx answer (nothing was asked that needs one).
    Informational,
    /// A malformed chunk size line, or a chunk not followed by CRLF.
    BadChunk,
    /// The body is larger than the caller's buffer.
    BodyTooLarge {
        /// Bytes known to be needed so far.
        required: usize,
    },
    /// The connection ended before the body did.
    Truncated,
}

impl HttpError {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            HttpError::BadHead => "http response head is malformed",
            HttpError::TooManyHeaders => "http response has too many headers",
            HttpError::HeadTooLarge => "http response head exceeds the receive buffer",
            HttpError::BadLength => "http response content-length is malformed or contradictory",
            HttpError::UnsupportedEncoding => "http response transfer-encoding is not chunked",
            HttpError::Informational => "http response is an unexpected 1xx",
            HttpError::BadChunk => "http response chunked encoding is malformed",
            HttpError::BodyTooLarge { .. } => "http response body exceeds the buffer",
            HttpError::Truncated => "http response ended early",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BodyTooLarge { required } => {
                write!(f, "{}: at least {required} bytes", self.as_str())
            }
            _ => f.write_str(self.as_str()),
        }
    }
}

impl core::error::Error for HttpError {}

/// How the body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Framing {
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body ends with the connection.
    UntilClose,
}

/// What the head of a response says, copied out (it borrows nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Bytes of the head, blank line included: the body starts there.
    pub len: usize,
    /// How the body ends.
    pub framing: Framing,
    /// The `Date` header as Unix seconds, if present and an IMF-fixdate.
    pub date: Option<u64>,
    /// `Connection: close`, or HTTP/1.0 without keep-alive: no second request on this
    /// connection.
    pub close: bool,
}

/// Parses a response head from the bytes received so far: `Ok(None)` while incomplete.
///
/// # Errors
/// [`HttpError::BadHead`], [`HttpError::TooManyHeaders`], [`HttpError::BadLength`],
/// [`HttpError::UnsupportedEncoding`], [`HttpError::Informational`].
pub fn parse_head(input: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    let len = match r.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(_) => return Err(HttpError::BadHead),
    };
    let status = r.code.ok_or(HttpError::BadHead)?;
    if (100..200).contains(&status) {
        return Err(HttpError::Informational);
    }
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut date = None;
    let mut close = r.version == Some(0);
    for h in r.headers.iter() {
        let value = core::str::from_utf8(h.value).map(str::trim);
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = value.ok().and_then(parse_u64).ok_or(HttpError::BadLength)?;
            if length.is_some_and(|l| l != v) {
                return Err(HttpError::BadLength);
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = value.map_err(|_| HttpError::UnsupportedEncoding)?;
            if !v.eq_ignore_ascii_case("chunked") || chunked {
                return Err(HttpError::UnsupportedEncoding);
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("date") {
            date = value.ok().and_then(parse_http_date);
        } else if h.name.eq_ignore_ascii_case("connection") {
            if let Ok(v) = value {
                for token in v.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        close = false;
                    }
                }
            }
        }
    }
    // Both at once is how requests are smuggled past proxies (RFC 9112 §6.3): refuse.
    let framing = match (chunked, length) {
        (true, Some(_)) => return Err(HttpError::BadLength),
        (true, None) => Framing::Chunked,
        (false, Some(l)) => Framing::Length(l),
        // 204 and 304 have no body.
        (false, None) if status == 204 || status == 304 => Framing::Length(0),
        (false, None) => Framing::UntilClose,
    };
    Ok(Some(ResponseHead {
        status,
        len,
        framing,
        date,
        close: close || framing == Framing::UntilClose,
    }))
}

/// Decimal digits only, no sign, no overflow.
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u64, |a, c| {
        a.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of a size (`digits` so far).
    Size { size: u64, digits: u8 },
    /// After the digits: an extension, up to CR.
    Extension { size: u64 },
    /// CR seen after the size line; LF next.
    SizeLf { size: u64 },
    /// Data bytes left in this chunk.
    Data { left: u64 },
    /// The CR after a chunk's data.
    DataCr,
    /// The LF after a chunk's data.
    DataLf,
    /// Trailer section: `at_line_start` tells whether the line is empty so far.
    Trailer { at_line_start: bool },
    /// CR seen in the trailer; `empty` if it ends an empty line.
    TrailerLf { empty: bool },
    /// The body is complete.
    Done,
}

/// De-frames a response body into a caller buffer, fed with bytes as they arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyDecoder {
    framing: Framing,
    chunk: Chunk,
    /// Body bytes written so far.
    len: usize,
    /// Bytes of size lines and trailers seen, against [`MAX_CHUNK_LINE`].
    line: usize,
}

/// How far [`BodyDecoder::feed`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes consumed (all of them unless the body ended inside the input).
    pub consumed: usize,
    /// The body is complete.
    pub done: bool,
}

impl BodyDecoder {
    /// A decoder for the body of `head`, to be written into a buffer of `capacity` bytes.
    ///
    /// # Errors
    /// [`HttpError::BodyTooLarge`] when `Content-Length` exceeds `capacity`.
    pub fn new(head: &ResponseHead, capacity: usize) -> Result<Self, HttpError> {
        if let Framing::Length(l) = head.framing {
            if l > capacity as u64 {
                return Err(HttpError::BodyTooLarge {
                    required: usize::try_from(l).unwrap_or(usize::MAX),
                });
            }
        }
        Ok(BodyDecoder {
            framing: head.framing,
            chunk: match head.framing {
                Framing::Length(0) => Chunk::Done,
                _ => Chunk::Size { size: 0, digits: 0 },
            },
            len: 0,
            line: 0,
        })
    }

    /// Body bytes decoded so far (into `body[..len]`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no body byte was decoded yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        self.chunk == Chunk::Done
    }

    /// Decodes `input` (the next bytes of the connection) into `body`, appending after what
    /// earlier calls wrote. Pass the same `body` every time.
    ///
    /// # Errors
    /// [`HttpError::BadChunk`], [`HttpError::BodyTooLarge`].
    pub fn feed(&mut self, input: &[u8], body: &mut [u8]) -> Result<Progress, HttpError> {
        let mut i = 0;
        while i < input.len() && self.chunk != Chunk::Done {
            match self.framing {
                Framing::Length(total) => {
                    // `new` checked total <= capacity, so it fits a usize.
                    let want = usize::try_from(total).unwrap_or(usize::MAX) - self.len;
                    let n = want.min(input.len() - i);
                    self.copy(&input[i..i + n], body)?;
                    i += n;
                    if self.len as u64 == total {
                        self.chunk = Chunk::Done;
                    }
                }
                Framing::UntilClose => {
                    self.copy(&input[i..], body)?;
                    i = input.len();
                }
                Framing::Chunked => {
                    i += self.chunked(&input[i..], body)?;
                }
            }
        }
        Ok(Progress {
            consumed: i,
            done: self.chunk == Chunk::Done,
        })
    }

    /// The connection ended: whether the body is complete.
    ///
    /// # Errors
    /// [`HttpError::Truncated`] unless the body was complete or runs to the end of the
    /// connection.
    pub fn finish(&mut self) -> Result<usize, HttpError> {
        match (self.framing, self.chunk) {
            (_, Chunk::Done) => Ok(self.len),
            (Framing::UntilClose, _) => {
                self.chunk = Chunk::Done;
                Ok(self.len)
            }
            _ => Err(HttpError::Truncated),
        }
    }

    fn copy(&mut self, data: &[u8], body: &mut [u8]) -> Result<(), HttpError> {
        let end = self
            .len
            .checked_add(data.len())
            .ok_or(HttpError::BodyTooLarge {
                required: usize::MAX,
            })?;
        let dst = body
            .get_mut(self.len..end)
            .ok_or(HttpError::BodyTooLarge { required: end })?;
        dst.copy_from_slice(data);
        self.len = end;
        Ok(())
    }

    fn line_byte(&mut self) -> Result<(), HttpError> {
        self.line += 1;
        if self.line > MAX_CHUNK_LINE {
            return Err(HttpError::BadChunk);
        }
        Ok(())
    }

    /// One step of the chunked decoder; returns the bytes consumed (at least one).
    fn chunked(&mut self, input: &[u8], body: &mut [u8]) -> Result<usize, HttpError> {
        if let Chunk::Data { left } = self.chunk {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
            self.copy(&input[..n], body)?;
            let left = left - n as u64;
            self.chunk = if left == 0 {
                Chunk::DataCr
            } else {
                Chunk::Data { left }
            };
            return Ok(n);
        }
        let b = input[0];
        self.chunk = match self.chunk {
            Chunk::Size { size, digits } => {
                self.line_byte()?;
                match (b as char).to_digit(16) {
                    // 15 hex digits: far beyond any buffer, and no overflow.
                    Some(d) if digits < 15 => Chunk::Size {
                        size: size << 4 | u64::from(d),
                        digits: digits + 1,
                    },
                    Some(_) => return Err(HttpError::BadChunk),
                    None if digits == 0 => return Err(HttpError::BadChunk),
                    None if b == b'\r' => Chunk::SizeLf { size },
                    None if b == b';' || b == b' ' || b == b'\t' => Chunk::Extension { size },
                    None => return Err(HttpError::BadChunk),
                }
            }
            Chunk::Extension { size } => {
                self.line_byte()?;
                match b {
                    b'\r' => Chunk::SizeLf { size },
                    b'\n' => return Err(HttpError::BadChunk),
                    _ => Chunk::Extension { size },
                }
            }
            Chunk::SizeLf { size } => {
                if b != b'\n' {
                    return Err(HttpError::BadChunk);
                }
                self.line = 0;
                let room = (body.len() - self.len) as u64;
                if size > room {
                    return Err(HttpError::BodyTooLarge {
                        required: self
                            .len
                            .saturating_add(usize::try_from(size).unwrap_or(usize::MAX)),
                    });
                }
                if size == 0 {
                    Chunk::Trailer {
                        at_line_start: true,
                    }
                } else {
                    Chunk::Data { left: size }
                }
            }
            Chunk::DataCr if b == b'\r' => Chunk::DataLf,
            Chunk::DataLf if b == b'\n' => Chunk::Size { size: 0, digits: 0 },
            Chunk::DataCr | Chunk::DataLf => return Err(HttpError::BadChunk),
            Chunk::Trailer { at_line_start } => {
                self.line_byte()?;
                match b {
                    b'\r' => Chunk::TrailerLf {
                        empty: at_line_start,
                    },
                    b'\n' => return Err(HttpError::BadChunk),
                    _ => Chunk::Trailer {
                        at_line_start: false,
                    },
                }
            }
            Chunk::TrailerLf { empty } => match (b, empty) {
                (b'\n', true) => Chunk::Done,
                (b'\n', false) => Chunk::Trailer {
                    at_line_start: true,
                },
                _ => return Err(HttpError::BadChunk),
            },
            // Handled above / the loop stops.
            Chunk::Data { .. } | Chunk::Done => self.chunk,
        };
        Ok(1)
    }
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7, what AWS sends) to
/// Unix seconds. `None` for anything else (the obsolete formats, out-of-range fields).
pub fn parse_http_date(s: &str) -> Option<u64> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    let num = |r: core::ops::Range<usize>| -> Option<u64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let weekday = DAYS.iter().position(|d| Some(*d) == s.get(..3))?;
    let day = num(5..7)?;
    let month = MONTHS.iter().position(|m| Some(*m) == s.get(8..11))? as u64 + 1;
    let year = num(12..16)?;
    let (h, m, sec) = (num(17..19)?, num(20..22)?, num(23..25)?);
    let sep_ok = b[7] == b' ' && b[11] == b' ' && b[16] == b' ' && b[19] == b':' && b[22] == b':';
    if !sep_ok || year < 1970 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    // 1970-01-01 was a Thursday: a date with the wrong weekday is malformed.
    if (days + 3) % 7 != weekday as u64 {
        return None;
    }
    Some(days * 86_400 + h * 3600 + m * 60 + sec.min(59))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm); `None` for an
/// invalid day of the month.
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    let leap = y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
    let month_len = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if d == 0 || d > month_len {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y % 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

/// Writes the `Host` header value: `host`, with `:port` unless it is the scheme's default.
pub(crate) fn write_host(w: &mut impl FnMut(&[u8]), host: &str, port: u16, tls: bool) {
    w(host.as_bytes());
    if port != if tls { 443 } else { 80 } {
        w(b":");
        w(Decimal::new(u64::from(port)).as_bytes());
    }
}
