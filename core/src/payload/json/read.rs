//! The reader: a cursor over validated text, values, and the walks over object members and
//! array elements. Iterative: nesting is tracked in a bit stack, never by recursion.

use super::{JsonStr, MAX_DEPTH};
use crate::payload::Error;

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
    pub(super) i: usize,
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
    pub(super) fn string_body(&mut self) -> Result<(), Error> {
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
        Ok(JsonStr::validated(raw))
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

/// Validates a raw JSON value given for emission (e.g. Properties) so we never write garbage.
pub(crate) fn check_raw_value(raw: &str) -> Result<Value<'_>, Error> {
    let mut c = Cursor::new(raw);
    let v = c.value()?;
    c.end()?;
    Ok(v)
}
