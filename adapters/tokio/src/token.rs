//! The session token, kept out of every log line and error.

use std::fmt;

/// A `TokenValue` from `StartSession` / `ResumeSession`.
///
/// `Debug` and `Display` print `<redacted>`; the only way to the text is [`Token::expose`], which
/// the driver calls once per connection to build `OpenDataChannelInput`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into())
    }

    /// The secret text. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Token {
    fn from(s: String) -> Self {
        Token(s)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted() {
        let t = Token::new("s3cr3t-token");
        assert!(!format!("{t:?} {t}").contains("s3cr3t"));
        assert_eq!(t.expose(), "s3cr3t-token");
    }
}
