//! The local terminal: raw mode that is restored on every exit path, and its size.
//!
//! Raw mode is entered through [`RawMode::enable`]; the settings it replaced are kept in a
//! process-wide slot so that three independent paths can put them back: the guard's `Drop`, the
//! panic hook from [`install_panic_hook`], and [`restore`] (called before exiting on a signal).
//! Restoring twice is harmless: the slot is emptied by the first.

use std::io::{self, IsTerminal};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Mutex;

use rustix::termios::{self, OptionalActions, Termios};

/// The terminal settings in force before raw mode; `None` when not in raw mode.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Puts stdin's terminal back the way it was, if raw mode is on. Never blocks: a panic while the
/// slot is held skips the restore rather than deadlocking.
pub fn restore() {
    let saved = match SAVED.try_lock() {
        Ok(mut slot) => slot.take(),
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().take(),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    if let Some(t) = saved {
        let _ = termios::tcsetattr(io::stdin().as_fd(), OptionalActions::Now, &t);
    }
}

/// Raw mode on stdin for as long as the guard lives.
#[derive(Debug)]
pub struct RawMode(());

impl RawMode {
    /// Enters raw mode if stdin is a terminal; `Ok(None)` when it is not.
    ///
    /// # Errors
    /// The terminal refused the settings.
    pub fn enable() -> io::Result<Option<RawMode>> {
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let original = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = original.clone();
        raw.make_raw();
        {
            let mut slot = SAVED.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(original);
            }
        }
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw)?;
        Ok(Some(RawMode(())))
    }

    /// Enters raw mode again after the process was stopped and continued (a job-control shell
    /// resets the terminal while we are stopped).
    pub fn reapply(&self) {
        let stdin = io::stdin();
        if let Ok(mut t) = termios::tcgetattr(stdin.as_fd()) {
            t.make_raw();
            let _ = termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &t);
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Restores the terminal before any panic message, and prints that message as one line without
/// a backtrace (a panic is a bug: exit code 255 follows from the runtime's abort path).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        restore();
        let what = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "panic".to_owned()
        };
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("ssm-session: internal error: {what}{place}");
    }));
}

/// The terminal's size as `(cols, rows)`, from stdout, else stdin, else stderr.
pub fn size() -> Option<(u16, u16)> {
    fn of(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
        let ws = termios::tcgetwinsize(fd).ok()?;
        (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
    }
    of(io::stdout().as_fd())
        .or_else(|| of(io::stdin().as_fd()))
        .or_else(|| of(io::stderr().as_fd()))
}

/// Whether stdin is a terminal.
pub fn stdin_is_tty() -> bool {
    io::stdin().is_terminal()
}
