//! The writer: escapes strings and counts past the end of its buffer, so one pass tells the
//! size needed and nothing is written on error.

use crate::decimal::Decimal;
use crate::payload::Error;

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
