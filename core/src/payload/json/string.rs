//! [`JsonStr`]: a string as it stands in the JSON (escapes intact) or given for emission, and
//! [`Chars`], its unescaping iterator.

use core::fmt;

use super::{Cursor, Writer};
use crate::payload::Error;

/// A JSON string from a payload, kept as it appears on the wire (escapes intact), or a plain
/// string given by the caller for emission.
///
/// Parsing never unescapes: read the text with [`JsonStr::as_str`] (which refuses escaped
/// strings with [`Error::EscapedString`] rather than handing back the escaped bytes),
/// [`JsonStr::unescape`] (into your buffer), [`JsonStr::chars`] or `Display`.
/// Equality compares the unescaped text, so a parsed `"a\u0062"` equals `JsonStr::new("ab")`.
#[derive(Clone, Copy)]
pub struct JsonStr<'a>(Repr<'a>);

#[derive(Clone, Copy)]
enum Repr<'a> {
    /// The text between the quotes, validated JSON string content (escapes allowed).
    Escaped(&'a str),
    /// Plain text; escaped when emitted.
    Plain(&'a str),
}

impl<'a> JsonStr<'a> {
    /// A plain string to emit (quotes, backslashes and control characters are escaped on emit).
    pub const fn new(s: &'a str) -> Self {
        JsonStr(Repr::Plain(s))
    }

    /// The empty string.
    pub const EMPTY: JsonStr<'static> = JsonStr(Repr::Plain(""));

    /// Wraps the text found between the quotes of a JSON string, escapes intact.
    ///
    /// # Errors
    /// [`Error::BadEscape`] or [`Error::Syntax`] if `raw` is not valid JSON string content.
    pub fn from_escaped(raw: &'a str) -> Result<Self, Error> {
        let mut c = Cursor::new(raw);
        c.string_body()?;
        if c.i != raw.len() {
            // An unescaped quote ended the string early.
            return Err(Error::Syntax);
        }
        Ok(JsonStr(Repr::Escaped(raw)))
    }

    /// Wraps string content the reader has already validated.
    pub(super) fn validated(raw: &'a str) -> Self {
        JsonStr(Repr::Escaped(raw))
    }

    /// Whether the text holds escape sequences (and so cannot be borrowed as is).
    pub fn has_escapes(&self) -> bool {
        match self.0 {
            Repr::Escaped(s) => s.as_bytes().contains(&b'\\'),
            Repr::Plain(_) => false,
        }
    }

    /// The text, borrowed from the input.
    ///
    /// # Errors
    /// [`Error::EscapedString`] if the JSON string holds escapes: use [`JsonStr::unescape`].
    pub fn as_str(&self) -> Result<&'a str, Error> {
        match self.0 {
            Repr::Escaped(s) if s.as_bytes().contains(&b'\\') => Err(Error::EscapedString),
            Repr::Escaped(s) | Repr::Plain(s) => Ok(s),
        }
    }

    /// The JSON form, between the quotes (escaped). For a plain string this is the string
    /// itself, unescaped.
    pub fn raw(&self) -> &'a str {
        match self.0 {
            Repr::Escaped(s) | Repr::Plain(s) => s,
        }
    }

    /// The unescaped text: borrowed from the input when it has no escapes, else written into
    /// `buf`.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` cannot hold the unescaped text.
    pub fn unescape<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, Error>
    where
        'a: 'b,
    {
        if let Ok(s) = self.as_str() {
            return Ok(s);
        }
        let required = self.unescaped_len();
        if buf.len() < required {
            return Err(Error::BufferTooSmall { required });
        }
        let mut n = 0;
        for ch in self.chars() {
            n += ch.encode_utf8(&mut buf[n..]).len();
        }
        core::str::from_utf8(&buf[..n]).map_err(|_| Error::NotUtf8)
    }

    /// Length in bytes of the unescaped text.
    pub fn unescaped_len(&self) -> usize {
        match self.0 {
            Repr::Plain(s) => s.len(),
            Repr::Escaped(s) if !s.as_bytes().contains(&b'\\') => s.len(),
            Repr::Escaped(_) => self.chars().map(char::len_utf8).sum(),
        }
    }

    /// The unescaped characters.
    pub fn chars(&self) -> Chars<'a> {
        match self.0 {
            Repr::Escaped(s) => Chars {
                s: s.as_bytes(),
                i: 0,
                escaped: true,
            },
            Repr::Plain(s) => Chars {
                s: s.as_bytes(),
                i: 0,
                escaped: false,
            },
        }
    }

    /// Whether the unescaped text equals `s`.
    pub fn eq_str(&self, s: &str) -> bool {
        match self.as_str() {
            Ok(mine) => mine == s,
            Err(_) => self.chars().eq(s.chars()),
        }
    }

    /// Whether the unescaped text equals `s`, ignoring ASCII case (how Go's `encoding/json`
    /// matches keys to fields).
    pub(crate) fn eq_ignore_ascii_case(&self, s: &str) -> bool {
        match self.as_str() {
            Ok(mine) => mine.eq_ignore_ascii_case(s),
            Err(_) => self
                .chars()
                .map(|c| c.to_ascii_lowercase())
                .eq(s.chars().map(|c| c.to_ascii_lowercase())),
        }
    }

    /// Unescapes a short value into a fixed array (ids, message types).
    pub(crate) fn to_array<const N: usize>(self) -> Result<([u8; N], usize), Error> {
        let mut a = [0u8; N];
        if let Ok(s) = self.as_str() {
            let dst = a
                .get_mut(..s.len())
                .ok_or(Error::BufferTooSmall { required: s.len() })?;
            dst.copy_from_slice(s.as_bytes());
            return Ok((a, s.len()));
        }
        let n = self.unescape(&mut a)?.len();
        Ok((a, n))
    }

    /// Writes the value with quotes, escaping a plain string.
    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.raw(b"\"");
        match self.0 {
            Repr::Escaped(s) => w.raw(s.as_bytes()),
            Repr::Plain(s) => w.escaped(s),
        }
        w.raw(b"\"");
    }
}

impl Default for JsonStr<'_> {
    fn default() -> Self {
        JsonStr::new("")
    }
}

impl PartialEq for JsonStr<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self.as_str(), other.as_str()) {
            (Ok(a), Ok(b)) => a == b,
            _ => self.chars().eq(other.chars()),
        }
    }
}

impl Eq for JsonStr<'_> {}

impl PartialEq<str> for JsonStr<'_> {
    fn eq(&self, other: &str) -> bool {
        self.eq_str(other)
    }
}

impl PartialEq<&str> for JsonStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.eq_str(other)
    }
}

impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Ok(s) => f.write_str(s),
            Err(_) => self.chars().try_for_each(|c| fmt::Write::write_char(f, c)),
        }
    }
}

impl fmt::Debug for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.raw())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for JsonStr<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}", self.raw());
    }
}

/// The unescaped characters of a [`JsonStr`].
#[derive(Clone, Debug)]
pub struct Chars<'a> {
    s: &'a [u8],
    i: usize,
    escaped: bool,
}

impl Chars<'_> {
    fn hex4(&mut self) -> u32 {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self.s.get(self.i).and_then(|c| (*c as char).to_digit(16));
            v = (v << 4) | d.unwrap_or(0);
            self.i += 1;
        }
        v
    }
}

impl Iterator for Chars<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let rest = self.s.get(self.i..)?;
        let first = *rest.first()?;
        if first != b'\\' || !self.escaped {
            // The slice came from a `&str`: decode one UTF-8 character.
            let len = match first {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => 4,
            };
            let ch = rest
                .get(..len)
                .and_then(|b| core::str::from_utf8(b).ok())
                .and_then(|s| s.chars().next())
                .unwrap_or(char::REPLACEMENT_CHARACTER);
            self.i += len;
            return Some(ch);
        }
        let esc = rest.get(1).copied().unwrap_or(b'\\');
        self.i += 2;
        Some(match esc {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4();
                if (0xd800..0xdc00).contains(&hi) {
                    // Validation guaranteed a low surrogate follows.
                    self.i += 2;
                    let lo = self.hex4();
                    let c = 0x10000 + ((hi - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff);
                    char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER)
                } else {
                    char::from_u32(hi).unwrap_or(char::REPLACEMENT_CHARACTER)
                }
            }
            _ => char::REPLACEMENT_CHARACTER,
        })
    }
}
