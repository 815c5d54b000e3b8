//! Why a run failed, as one line for stderr and a distinct exit code.
//!
//! Exit codes above 240 are ours; anything else a session ends with is the remote command's own
//! code (like `ssh`, a remote code can collide with ours; the stderr line tells them apart).

use std::fmt;
use std::process::ExitCode;

/// The command line was wrong (clap uses the same code).
pub const USAGE: u8 = 2;
/// Table printed under `--help`; keep it in sync with [`Kind::code`].
pub const EXIT_CODES_HELP: &str = "\
Exit status:
  0    the session ended normally (commands: the remote command's exit code)
  2    bad command line
  128+N  interrupted by signal N (SIGHUP, SIGINT, SIGTERM)
  246  the Session Manager API answered with an error (StartSession / ResumeSession)
  247  local I/O failed (terminal, stdin, stdout)
  248  protocol error: the peer sent something this client cannot handle
  249  the connection was lost and could not be resumed
  250  endpoint unreachable (DNS, connection refused, timeout)
  251  TLS failure (certificate not trusted, handshake failed)
  252  authentication rejected (bad or expired token, access denied)
  253  the agent closed the channel before the session finished
  254  you left the session with the escape sequence ~.
  255  internal error";

/// What went wrong, grouped the way a user acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The command line or the plugin arguments are malformed.
    Usage,
    /// The SSM API answered with an error that is not about credentials.
    Api,
    /// Local terminal or stdio failure.
    Io,
    /// The peer violated the protocol.
    Protocol,
    /// The transport dropped and resuming failed.
    ConnectionLost,
    /// No TCP connection could be made.
    Unreachable,
    /// TLS handshake or certificate verification failed.
    Tls,
    /// Token or credentials rejected.
    Auth,
    /// The agent ended the channel early.
    ChannelClosed,
    /// The user typed `~.`.
    Escaped,
    /// A bug or an unexpected state.
    Internal,
    /// Stopped by this signal number (exit code 128 + n).
    Signal(u8),
}

impl Kind {
    /// The process exit code for this kind.
    pub const fn code(self) -> u8 {
        match self {
            Kind::Usage => USAGE,
            Kind::Api => 246,
            Kind::Io => 247,
            Kind::Protocol => 248,
            Kind::ConnectionLost => 249,
            Kind::Unreachable => 250,
            Kind::Tls => 251,
            Kind::Auth => 252,
            Kind::ChannelClosed => 253,
            Kind::Escaped => 254,
            Kind::Internal => 255,
            Kind::Signal(n) => 128u8.saturating_add(n),
        }
    }
}

/// A failure with a one-line message. Build messages from values that never hold the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What kind of failure (decides the exit code).
    pub kind: Kind,
    /// One line, lower-case start, no trailing period.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` with `message`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        // One line on stderr, whatever a peer put into its reason text.
        if message.contains(['\n', '\r']) {
            message = message.replace(['\n', '\r'], " ");
        }
        Failure { kind, message }
    }

    /// Prints `ssm-session: <message>` to stderr and returns the exit code.
    pub fn report(&self) -> ExitCode {
        eprintln!("ssm-session: {self}");
        ExitCode::from(self.kind.code())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Shorthand for results in this binary.
pub type Result<T, E = Failure> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_listed_in_help() {
        let all = [
            Kind::Usage,
            Kind::Api,
            Kind::Io,
            Kind::Protocol,
            Kind::ConnectionLost,
            Kind::Unreachable,
            Kind::Tls,
            Kind::Auth,
            Kind::ChannelClosed,
            Kind::Escaped,
            Kind::Internal,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.code(), b.code(), "{a:?} and {b:?} share a code");
            }
            let line = format!("\n  {:<4} ", a.code());
            assert!(EXIT_CODES_HELP.contains(&line), "{a:?} missing from help");
        }
    }

    #[test]
    fn messages_are_one_line() {
        let f = Failure::new(Kind::ChannelClosed, "closed:\nby admin\r\n");
        assert_eq!(f.message, "closed: by admin  ");
    }
}
