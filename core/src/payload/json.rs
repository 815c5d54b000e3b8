//! A small, iterative, depth-limited JSON reader and a counting writer.
//!
//! The crate's one JSON reader: the control payloads and the StartSession answer
//! ([`model`](crate::model)) both go through it, under one policy:
//!
//! - every byte is validated (a malformed document is an error, never read "leniently");
//! - no recursion: objects and arrays nest at most [`MAX_DEPTH`] levels, tracked in a bit stack;
//! - keys match ignoring ASCII case (as Go's `encoding/json`, which the agent and the official
//!   client use), and a known key twice is an error (Go keeps the last, other readers the first:
//!   refusing means no two readers see different values in one answer);
//! - `null` reads as absent; unknown keys are skipped (still validated);
//! - strings stay escaped ([`JsonStr`]) until asked for; `\u` surrogate pairs decode to one
//!   character, a lone surrogate is [`Error::BadEscape`].
//!
//! It replaced serde-json-core, which cannot hand back the raw text of a nested value
//! (`Properties`), recurses once per level when skipping unknown values, passes escaped text
//! through as if it were the value without an unescape buffer, and skips unknown scalars
//! leniently. Measured when the model moved over (thumbv7em, opt-level z): the StartSession
//! parser's flash fell from 6 852 to 4 328 bytes.

use crate::decimal::Decimal;
use core::fmt;

use super::Error;

/// Nesting limit for any value (objects and arrays). The payloads of PROTOCOL.md §3 nest four
/// levels at most, but a HandshakeRequest carries the session document's `Properties` as the
/// agent got them, three levels down: 64 (what the bit stack holds) leaves Go peers room
/// (their `encoding/json` allows 10 000) and costs no stack, the reader being iterative.
pub const MAX_DEPTH: u32 = 64;

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

/// One JSON value, as found in the input.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value<'a> {
    Str(JsonStr<'a>),
    /// The number's text, validated against the JSON grammar.
    Num(&'a str),
    Bool(bool),
    Null,
    /// The object's text, braces included, validated.
    Object(&'a str),
    /// The array's text, brackets included, validated.
    Array(&'a str),
}

impl<'a> Value<'a> {
    pub(crate) fn str(self, field: &'static str) -> Result<JsonStr<'a>, Error> {
        match self {
            Value::Str(s) => Ok(s),
            _ => Err(Error::WrongType(field)),
        }
    }

    pub(crate) fn bool(self, field: &'static str) -> Result<bool, Error> {
        match self {
            Value::Bool(b) => Ok(b),
            _ => Err(Error::WrongType(field)),
        }
    }

    pub(crate) fn i64(self, field: &'static str) -> Result<i64, Error> {
        match self {
            Value::Num(n) => parse_i64(n).ok_or(Error::BadNumber(field)),
            _ => Err(Error::WrongType(field)),
        }
    }

    /// An integer sent either as a JSON number or as a string holding one.
    pub(crate) fn i64_or_string(self, field: &'static str) -> Result<i64, Error> {
        match self {
            Value::Str(s) => {
                let (a, n) = s.to_array::<24>().map_err(|_| Error::BadNumber(field))?;
                let t = core::str::from_utf8(&a[..n]).map_err(|_| Error::BadNumber(field))?;
                parse_i64(t.trim()).ok_or(Error::BadNumber(field))
            }
            v => v.i64(field),
        }
    }

    pub(crate) fn object(self, field: &'static str) -> Result<&'a str, Error> {
        match self {
            Value::Object(o) => Ok(o),
            _ => Err(Error::WrongType(field)),
        }
    }

    pub(crate) fn array(self, field: &'static str) -> Result<&'a str, Error> {
        match self {
            Value::Array(a) => Ok(a),
            _ => Err(Error::WrongType(field)),
        }
    }
}

/// Parses a JSON integer: optional minus, digits, no fraction or exponent, in range.
pub(crate) fn parse_i64(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = 0;
    for c in digits.bytes() {
        let d = i64::from(c - b'0');
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

/// A position in JSON text. Every method validates what it steps over.
pub(crate) struct Cursor<'a> {
    /// The text (UTF-8 was checked once, when it became a `str`).
    t: &'a str,
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(t: &'a str) -> Self {
        Cursor {
            t,
            s: t.as_bytes(),
            i: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), Error> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Error::Syntax)
        }
    }

    /// The text from `from` to here. Every cut is next to an ASCII delimiter, so on a char
    /// boundary; `get` checks that in constant time.
    fn text(&self, from: usize) -> Result<&'a str, Error> {
        self.t.get(from..self.i).ok_or(Error::NotUtf8)
    }

    /// Steps over string content after the opening quote, up to the closing quote (not eaten).
    fn string_body(&mut self) -> Result<(), Error> {
        loop {
            // Skip the plain run in one go.
            let rest = self.s.get(self.i..).unwrap_or(&[]);
            self.i += rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(rest.len());
            match self.peek() {
                None | Some(b'"') => return Ok(()),
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            self.i += 1;
                            let hi = self.hex4()?;
                            if (0xdc00..0xe000).contains(&hi) {
                                return Err(Error::BadEscape);
                            }
                            if (0xd800..0xdc00).contains(&hi) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(Error::BadEscape);
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return Err(Error::BadEscape);
                                }
                            }
                        }
                        _ => return Err(Error::BadEscape),
                    }
                }
                Some(0x00..=0x1f) => return Err(Error::Syntax),
                Some(_) => self.i += 1,
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self
                .peek()
                .and_then(|c| (c as char).to_digit(16))
                .ok_or(Error::BadEscape)?;
            v = (v << 4) | d;
            self.i += 1;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<JsonStr<'a>, Error> {
        self.expect(b'"')?;
        let start = self.i;
        self.string_body()?;
        let raw = self.text(start)?;
        self.expect(b'"')?;
        Ok(JsonStr(Repr::Escaped(raw)))
    }

    fn number(&mut self) -> Result<&'a str, Error> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Error::Syntax),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digits1()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.digits1()?;
        }
        self.text(start)
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn digits1(&mut self) -> Result<(), Error> {
        let start = self.i;
        self.digits();
        if self.i == start {
            Err(Error::Syntax)
        } else {
            Ok(())
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Error> {
        if self.s.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Error::Syntax)
        }
    }

    /// Reads one value. Objects and arrays are stepped over without recursion (a bit stack of
    /// open containers, at most [`MAX_DEPTH`] deep) and returned as their raw text.
    pub(crate) fn value(&mut self) -> Result<Value<'a>, Error> {
        self.ws();
        match self.peek() {
            Some(b'"') => return self.string().map(Value::Str),
            Some(b't') => return self.literal(b"true").map(|_| Value::Bool(true)),
            Some(b'f') => return self.literal(b"false").map(|_| Value::Bool(false)),
            Some(b'n') => return self.literal(b"null").map(|_| Value::Null),
            Some(b'-' | b'0'..=b'9') => return self.number().map(Value::Num),
            Some(b'{' | b'[') => {}
            _ => return Err(Error::Syntax),
        }
        let start = self.i;
        let is_object = self.peek() == Some(b'{');
        // Bit d of `stack` is 1 when the container at depth d is an object.
        let mut stack: u64 = 0;
        let mut depth: u32 = 0;
        'value: loop {
            // Expect a value at the current position.
            self.ws();
            match self.peek() {
                Some(c @ (b'{' | b'[')) => {
                    self.i += 1;
                    if depth >= MAX_DEPTH {
                        return Err(Error::TooDeep);
                    }
                    let obj = c == b'{';
                    stack = (stack << 1) | u64::from(obj);
                    depth += 1;
                    self.ws();
                    let close = if obj { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                        stack >>= 1;
                        depth -= 1;
                    } else {
                        if obj {
                            self.string()?;
                            self.expect(b':')?;
                        }
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                _ => return Err(Error::Syntax),
            }
            // After a value: close containers or move to the next element.
            loop {
                if depth == 0 {
                    let raw = self.text(start)?;
                    return Ok(if is_object {
                        Value::Object(raw)
                    } else {
                        Value::Array(raw)
                    });
                }
                let in_object = stack & 1 == 1;
                self.ws();
                match (self.peek(), in_object) {
                    (Some(b','), true) => {
                        self.i += 1;
                        self.string()?;
                        self.expect(b':')?;
                        continue 'value;
                    }
                    (Some(b','), false) => {
                        self.i += 1;
                        continue 'value;
                    }
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        self.i += 1;
                        stack >>= 1;
                        depth -= 1;
                    }
                    _ => return Err(Error::Syntax),
                }
            }
        }
    }

    /// Fails unless only whitespace is left.
    pub(crate) fn end(&mut self) -> Result<(), Error> {
        self.ws();
        if self.i == self.s.len() {
            Ok(())
        } else {
            Err(Error::Syntax)
        }
    }
}

/// Parses a whole document that must be one object; returns its raw text.
pub(crate) fn document(input: &[u8]) -> Result<&str, Error> {
    let mut c = Cursor::new(core::str::from_utf8(input).map_err(|_| Error::NotUtf8)?);
    let v = c.value()?;
    c.end()?;
    v.object("the payload")
}

/// Walks the items of a validated container (object members or array elements).
#[derive(Clone)]
struct Items<'a> {
    c: Cursor<'a>,
    first: bool,
    close: u8,
}

impl Clone for Cursor<'_> {
    fn clone(&self) -> Self {
        Cursor {
            t: self.t,
            s: self.s,
            i: self.i,
        }
    }
}

impl<'a> Items<'a> {
    fn new(text: &'a str, open: u8, close: u8) -> Self {
        let mut c = Cursor::new(text);
        // Validated text starts with `open`; otherwise the first step reports the error.
        let _ = c.expect(open);
        Items {
            c,
            first: true,
            close,
        }
    }

    /// Steps over the separator and reads one item with `f`; `None` at the end. After an
    /// error the walk ends.
    fn step<T>(
        &mut self,
        f: impl FnOnce(&mut Cursor<'a>) -> Result<T, Error>,
    ) -> Option<Result<T, Error>> {
        self.c.ws();
        match self.c.peek() {
            None => return None,
            Some(c) if c == self.close => {
                self.c.i = self.c.s.len();
                return None;
            }
            Some(b',') if !self.first => self.c.i += 1,
            Some(_) if self.first => {}
            Some(_) => return Some(Err(Error::Syntax)),
        }
        self.first = false;
        let r = f(&mut self.c);
        if r.is_err() {
            self.c.i = self.c.s.len();
        }
        Some(r)
    }
}

/// The members of an object (raw text from [`Value::Object`] or [`document`], so already valid).
pub(crate) struct Members<'a>(Items<'a>);

impl<'a> Members<'a> {
    pub(crate) fn new(object: &'a str) -> Self {
        Members(Items::new(object, b'{', b'}'))
    }
}

impl<'a> Iterator for Members<'a> {
    /// Key, value, and the value's raw JSON text.
    type Item = Result<(JsonStr<'a>, Value<'a>, &'a str), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.step(|c| {
            let k = c.string()?;
            c.expect(b':')?;
            c.ws();
            let start = c.i;
            let v = c.value()?;
            Ok((k, v, c.text(start)?))
        })
    }
}

/// The elements of an array (raw text from [`Value::Array`], so already valid).
#[derive(Clone)]
pub(crate) struct Elements<'a>(Items<'a>);

impl<'a> Elements<'a> {
    pub(crate) fn new(array: &'a str) -> Self {
        Elements(Items::new(array, b'[', b']'))
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<Value<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.step(Cursor::value)
    }
}

/// Writes into a buffer and keeps counting past its end, so one pass tells the size needed.
pub(crate) struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }

    /// Writes string content with JSON escapes for `"`, `\` and control characters.
    pub(crate) fn escaped(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let b = s.as_bytes();
        let mut from = 0;
        for (i, &c) in b.iter().enumerate() {
            let esc: &[u8] = match c {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x00..=0x1f => b"",
                _ => continue,
            };
            self.raw(&b[from..i]);
            if esc.is_empty() {
                self.raw(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 0xf)],
                ]);
            } else {
                self.raw(esc);
            }
            from = i + 1;
        }
        self.raw(&b[from..]);
    }

    /// Writes `"s"`, escaped.
    pub(crate) fn quoted(&mut self, s: &str) {
        self.raw(b"\"");
        self.escaped(s);
        self.raw(b"\"");
    }

    pub(crate) fn i64(&mut self, v: i64) {
        if v < 0 {
            self.raw(b"-");
        }
        self.raw(Decimal::new(v.unsigned_abs()).as_bytes());
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.raw(if v { b"true" } else { b"false" });
    }

    /// Writes `"key":` after a comma unless `first`.
    pub(crate) fn key(&mut self, first: bool, key: &str) {
        if !first {
            self.raw(b",");
        }
        self.raw(b"\"");
        self.raw(key.as_bytes());
        self.raw(b"\":");
    }
}

/// Runs `f` once to measure, then again into `buf` if it fits: on error nothing is written.
pub(crate) fn emit_with(buf: &mut [u8], f: impl Fn(&mut Writer<'_>)) -> Result<usize, Error> {
    let mut count = Writer::new(&mut []);
    f(&mut count);
    let required = count.pos;
    if required > buf.len() {
        return Err(Error::BufferTooSmall { required });
    }
    let mut w = Writer::new(buf);
    f(&mut w);
    Ok(w.pos)
}

/// Validates a raw JSON value given for emission (e.g. Properties) so we never write garbage.
pub(crate) fn check_raw_value(raw: &str) -> Result<Value<'_>, Error> {
    let mut c = Cursor::new(raw);
    let v = c.value()?;
    c.end()?;
    Ok(v)
}
