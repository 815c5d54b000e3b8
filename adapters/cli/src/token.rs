//! The session token, redacted everywhere but [`Token::expose`].

use std::fmt;

/// A `TokenValue`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(t: impl Into<String>) -> Self {
        Token(t.into())
    }
    /// The secret text; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}
