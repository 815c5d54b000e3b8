//! Inline UTF-8 text of bounded length, settable in `const` context (so that
//! [`Session::new`](super::Session::new) can build a session in a `static` initializer).

use core::fmt;

use crate::payload::JsonStr;

/// Up to `N` bytes of UTF-8.
#[derive(Clone, Copy)]
pub(crate) struct Text<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    pub(crate) const fn new() -> Self {
        Text {
            bytes: [0; N],
            len: 0,
        }
    }

    /// Replaces the text; `false` (and empty) when `s` is longer than `N`.
    pub(crate) const fn set(&mut self, s: &str) -> bool {
        let b = s.as_bytes();
        if b.len() > N {
            self.len = 0;
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            self.bytes[i] = b[i];
            i += 1;
        }
        self.len = b.len();
        true
    }

    /// Replaces the text, cut at a character boundary when too long. Returns whether all of it
    /// fit.
    pub(crate) fn set_cut(&mut self, s: &str) -> bool {
        self.len = 0;
        s.chars().all(|c| self.push(c))
    }

    /// Replaces the text with the unescaped content of a JSON string, cut like
    /// [`Text::set_cut`].
    pub(crate) fn set_json(&mut self, s: &JsonStr<'_>) -> bool {
        self.len = 0;
        s.chars().all(|c| self.push(c))
    }

    fn push(&mut self, c: char) -> bool {
        let w = c.len_utf8();
        if self.len + w > N {
            return false;
        }
        c.encode_utf8(&mut self.bytes[self.len..self.len + w]);
        self.len += w;
        true
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only whole `&str`s and whole characters are ever written.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_character_boundaries() {
        let mut t = Text::<4>::new();
        assert!(t.set("abcd"));
        assert!(!t.set("abcde"));
        assert_eq!(t.as_str(), "");
        assert!(!t.set_cut("abé€"));
        assert_eq!(t.as_str(), "abé");
        assert!(t.set_json(&JsonStr::from_escaped(r"a\u0062").unwrap()));
        assert_eq!(t.as_str(), "ab");
    }
}
