//! The session token, kept out of every log, error and debug print.

use core::fmt;

use zeroize::Zeroize;

use super::Error;

/// Whether `s` is an acceptable token: non-empty, visible ASCII, no `"` or `\`.
///
/// Real tokens are base64-like text; the restriction means a token can be written into JSON (the
/// `OpenDataChannelInput` message) without escaping.
pub(crate) fn token_ok(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&c| c.is_ascii_graphic() && c != b'"' && c != b'\\')
}

/// Compares without an early exit, so the time taken does not reveal where two tokens differ
/// (the agent role compares a peer's token with the expected one).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A borrowed `TokenValue`. `Debug`, `Display` and `defmt` print `Token(<redacted, N bytes>)`;
/// [`Token::expose_secret`] is the only way to the text.
#[derive(Clone, Copy, Eq)]
pub struct Token<'a>(&'a str);

impl<'a> Token<'a> {
    /// Wraps a token.
    ///
    /// # Errors
    /// [`Error::BadToken`] if it is empty, not visible ASCII, or contains `"` or `\`.
    pub fn new(token: &'a str) -> Result<Self, Error> {
        if token_ok(token.as_bytes()) {
            Ok(Token(token))
        } else {
            Err(Error::BadToken)
        }
    }

    /// The token text. Send it where it belongs (the `OpenDataChannelInput` message) and nowhere
    /// else: not to a log, an error message or argv.
    pub fn expose_secret(&self) -> &'a str {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a token is never empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for Token<'_> {
    /// Constant-time for equal lengths.
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl fmt::Debug for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<redacted, {} bytes>)", self.0.len())
    }
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Token<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Token(<redacted, {=usize} bytes>)", self.0.len());
    }
}

/// An owned `TokenValue` of at most `N` bytes, inline (no allocation), overwritten with zeros
/// when dropped.
///
/// Not `Clone` or `Copy`, so the secret is not duplicated by accident. A Rust move copies the bytes
/// and leaves the old location untouched: keep an `OwnedToken` where it was created (a `static`, a
/// `StaticCell`, a long-lived struct) if stale copies in memory matter to you.
pub struct OwnedToken<const N: usize = { super::TOKEN_CAPACITY }> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> OwnedToken<N> {
    /// An empty token, to be filled by [`OwnedToken::push_str`]; not a valid token until then.
    pub(crate) const fn empty() -> Self {
        OwnedToken {
            bytes: [0; N],
            len: 0,
        }
    }

    /// Appends text; all or nothing.
    pub(crate) fn push_str(&mut self, s: &str) -> Result<(), Error> {
        let end = self.len.checked_add(s.len()).ok_or(Error::TooLong)?;
        let dst = self.bytes.get_mut(self.len..end).ok_or(Error::TooLong)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }

    /// Checks the filled-in text as [`Token::new`] does.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if token_ok(&self.bytes[..self.len]) {
            Ok(())
        } else {
            Err(Error::BadToken)
        }
    }

    /// Copies a token.
    ///
    /// # Errors
    /// [`Error::TooLong`] if it exceeds `N` bytes.
    pub fn from_token(token: Token<'_>) -> Result<Self, Error> {
        let mut t = Self::empty();
        t.push_str(token.expose_secret())?;
        Ok(t)
    }

    /// Borrows it as a [`Token`].
    pub fn as_token(&self) -> Token<'_> {
        // Only valid tokens (visible ASCII) are ever exposed, so this cannot fail; the empty
        // fallback keeps the no-panic promise regardless.
        Token(core::str::from_utf8(&self.bytes[..self.len]).unwrap_or(""))
    }

    /// The token text; see [`Token::expose_secret`].
    pub fn expose_secret(&self) -> &str {
        self.as_token().expose_secret()
    }
}

impl<const N: usize> OwnedToken<N> {
    /// Overwrites the whole buffer with zeros (through `zeroize`, so the compiler keeps the
    /// writes). Dropping does this too.
    pub fn wipe(&mut self) {
        self.bytes.zeroize();
        self.len.zeroize();
    }
}

impl<const N: usize> Drop for OwnedToken<N> {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl<const N: usize> PartialEq for OwnedToken<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_token() == other.as_token()
    }
}

impl<const N: usize> Eq for OwnedToken<N> {}

impl<const N: usize> fmt::Debug for OwnedToken<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.as_token(), f)
    }
}

impl<const N: usize> fmt::Display for OwnedToken<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.as_token(), f)
    }
}

#[cfg(feature = "defmt")]
impl<const N: usize> defmt::Format for OwnedToken<N> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::Format::format(&self.as_token(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_token_wipes() {
        let mut t = OwnedToken::<32>::from_token(Token::new("abcDEF123").unwrap()).unwrap();
        assert_eq!(t.expose_secret(), "abcDEF123");
        t.wipe();
        assert_eq!(t.len, 0);
        assert!(t.bytes.iter().all(|b| *b == 0));
        assert_eq!(t.expose_secret(), "");
        assert_eq!(
            OwnedToken::<4>::from_token(Token::new("abcde").unwrap()).unwrap_err(),
            Error::TooLong
        );
    }
}
