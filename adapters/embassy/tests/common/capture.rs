//! A `log` logger that keeps every record, for the tests that search the log for secrets.

use std::sync::{Mutex, Once};

struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        self.0.lock().unwrap().push(line);
    }

    fn flush(&self) {}
}

static LOGS: Capture = Capture(Mutex::new(Vec::new()));
static INSTALL: Once = Once::new();

/// Installs the capture at trace level (once per test binary).
pub fn install() {
    INSTALL.call_once(|| {
        log::set_logger(&LOGS).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// Everything logged so far, one record a line.
pub fn logs() -> String {
    LOGS.0.lock().unwrap().join("\n")
}

/// Every 8-byte piece of `secret` that `text` contains (a piece that long identifies it).
pub fn leaks<'s>(secret: &'s str, text: &str) -> Vec<&'s str> {
    (0..=secret.len().saturating_sub(8))
        .map(|i| &secret[i..(i + 8).min(secret.len())])
        .filter(|piece| text.contains(piece))
        .collect()
}
