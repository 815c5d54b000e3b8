//! Keyboard input on its way to the remote terminal: the `~` escape and the newline rule.
//!
//! Like `ssh`, a `~` typed at the start of a line (after Enter, or as the first key) starts an
//! escape: `~.` leaves the session even when it is frozen, `~~` sends one `~`, `~?` lists the
//! escapes; `~` followed by anything else sends both keys. A lone `\n` (not after `\r`) is sent as
//! `\r`, as the official client does, so pasted Unix text submits lines in the remote shell.
//! Everything else, Ctrl-C, Ctrl-Z and Ctrl-\ included, passes through unchanged.

/// The help text shown for `~?` (on stderr, in raw mode, hence the `\r\n`).
pub const HELP: &str = "Supported escape sequences (after Enter):\r\n  ~.  leave the session\r\n  ~?  this help\r\n  ~~  send ~\r\n";

/// What the caller must do after [`InputFilter::feed`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// `~.` was typed: stop forwarding (bytes after it are dropped) and leave.
    pub disconnect: bool,
    /// `~?` was typed: show [`HELP`].
    pub help: bool,
}

/// Stateful filter; keeps line-start and pending-`~` state across reads.
#[derive(Debug, Clone)]
pub struct InputFilter {
    at_line_start: bool,
    pending_tilde: bool,
    last: u8,
    escapes: bool,
}

impl Default for InputFilter {
    fn default() -> Self {
        Self::new(true)
    }
}

impl InputFilter {
    /// A filter at the start of a line. With `escapes` false only the newline rule applies.
    pub fn new(escapes: bool) -> Self {
        InputFilter {
            at_line_start: true,
            pending_tilde: false,
            last: 0,
            escapes,
        }
    }

    /// Whether the next byte starts a line (nothing sent yet, or the last byte was a newline).
    pub fn at_line_start(&self) -> bool {
        self.at_line_start && !self.pending_tilde
    }

    /// Appends the bytes to send for `input` to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Outcome {
        let mut outcome = Outcome::default();
        for &b in input {
            if self.pending_tilde {
                self.pending_tilde = false;
                match b {
                    b'.' => {
                        outcome.disconnect = true;
                        return outcome;
                    }
                    b'?' => {
                        outcome.help = true;
                        // Still at the start of a line: a following `~.` works.
                        continue;
                    }
                    b'~' => {
                        self.push(b'~', out);
                        continue;
                    }
                    _ => self.push(b'~', out),
                }
            } else if self.escapes && self.at_line_start && b == b'~' {
                self.pending_tilde = true;
                continue;
            }
            self.push(b, out);
        }
        outcome
    }

    fn push(&mut self, b: u8, out: &mut Vec<u8>) {
        let sent = if b == b'\n' && self.last != b'\r' {
            b'\r'
        } else {
            b
        };
        out.push(sent);
        self.last = b;
        self.at_line_start = b == b'\r' || b == b'\n';
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(filter: &mut InputFilter, input: &[u8]) -> (Vec<u8>, Outcome) {
        let mut out = Vec::new();
        let o = filter.feed(input, &mut out);
        (out, o)
    }

    #[test]
    fn tilde_dot_at_start_disconnects() {
        let mut f = InputFilter::default();
        let (out, o) = run(&mut f, b"~.rest");
        assert!(o.disconnect);
        assert!(out.is_empty());
    }

    #[test]
    fn tilde_dot_after_enter_disconnects_and_keeps_prior_bytes() {
        let mut f = InputFilter::default();
        let (out, o) = run(&mut f, b"ls\r~.");
        assert!(o.disconnect);
        assert_eq!(out, b"ls\r");
    }

    #[test]
    fn tilde_dot_split_across_reads() {
        let mut f = InputFilter::default();
        let (out, o) = run(&mut f, b"x\r~");
        assert_eq!((out.as_slice(), o.disconnect), (&b"x\r"[..], false));
        let (out, o) = run(&mut f, b".");
        assert!(o.disconnect);
        assert!(out.is_empty());
    }

    #[test]
    fn tilde_mid_line_is_plain() {
        let mut f = InputFilter::default();
        let (out, o) = run(&mut f, b"cd ~.\r");
        assert!(!o.disconnect);
        assert_eq!(out, b"cd ~.\r");
    }

    #[test]
    fn double_tilde_sends_one_and_other_keys_send_both() {
        let mut f = InputFilter::default();
        assert_eq!(run(&mut f, b"~~.").0, b"~.");
        let mut f = InputFilter::default();
        assert_eq!(run(&mut f, b"~x").0, b"~x");
    }

    #[test]
    fn help_then_disconnect() {
        let mut f = InputFilter::default();
        let (out, o) = run(&mut f, b"~?");
        assert!(o.help && !o.disconnect);
        assert!(out.is_empty());
        assert!(run(&mut f, b"~.").1.disconnect);
    }

    #[test]
    fn lone_newline_becomes_carriage_return() {
        let mut f = InputFilter::default();
        assert_eq!(run(&mut f, b"a\nb\r\nc").0, b"a\rb\r\nc");
        // `\r` ending one read, `\n` starting the next: still a pair.
        let mut f = InputFilter::default();
        run(&mut f, b"a\r");
        assert_eq!(run(&mut f, b"\n").0, b"\n");
    }

    #[test]
    fn control_keys_pass_through() {
        let mut f = InputFilter::default();
        assert_eq!(run(&mut f, b"\x03\x1a\x1c\x04").0, b"\x03\x1a\x1c\x04");
    }

    #[test]
    fn escapes_can_be_disabled() {
        let mut f = InputFilter::new(false);
        let (out, o) = run(&mut f, b"~.\n");
        assert!(!o.disconnect);
        assert_eq!(out, b"~.\r");
    }
}
