//! UTC for SigV4 signing on a device without a reliable calendar clock.
//!
//! A [`Clock`] holds the offset between Unix time and `embassy_time::Instant` (which counts
//! from boot). It is set by the application from an RTC ([`Clock::set_unix_secs`]) or learned
//! from the `Date` header of an API answer: the first answer teaches an unknown clock, and an
//! answer refusing a signature for clock skew corrects a wrong one (see [`crate::api`]).

use core::cell::Cell;

use embassy_time::Instant;

/// Unix time as an offset against `embassy_time::Instant`. `Cell`-based: share it by reference
/// within one executor.
#[derive(Debug, Default)]
pub struct Clock {
    /// Unix seconds at `Instant` zero (boot), once known.
    offset: Cell<Option<i64>>,
}

impl Clock {
    /// A clock that does not know the time yet: the first API call is signed with the Unix
    /// epoch, refused for skew, and retried with the time learned from the answer.
    pub const fn unknown() -> Self {
        Clock {
            offset: Cell::new(None),
        }
    }

    /// A clock set from an RTC reading taken now.
    pub fn from_unix_secs(unix_secs: u64) -> Self {
        let c = Clock::unknown();
        c.set_unix_secs(unix_secs);
        c
    }

    /// Sets the time: `unix_secs` is now.
    pub fn set_unix_secs(&self, unix_secs: u64) {
        self.set_at(unix_secs, Instant::now());
    }

    /// Sets the time: `unix_secs` was the time at `at` (for a `Date` header, the moment the
    /// answer arrived).
    pub fn set_at(&self, unix_secs: u64, at: Instant) {
        let unix = i64::try_from(unix_secs).unwrap_or(i64::MAX);
        let boot = i64::try_from(at.as_secs()).unwrap_or(i64::MAX);
        self.offset.set(Some(unix.saturating_sub(boot)));
    }

    /// Whether the time is known.
    pub fn is_known(&self) -> bool {
        self.offset.get().is_some()
    }

    /// Unix seconds now, if known.
    pub fn unix_secs(&self) -> Option<u64> {
        self.unix_secs_at(Instant::now())
    }

    /// Unix seconds at `at`, if known.
    pub fn unix_secs_at(&self, at: Instant) -> Option<u64> {
        let boot = i64::try_from(at.as_secs()).ok()?;
        u64::try_from(self.offset.get()?.checked_add(boot)?).ok()
    }

    /// Unix milliseconds now, if known (for the engine's `set_unix_time`, the frames'
    /// `CreatedDate`).
    pub fn unix_millis(&self) -> Option<u64> {
        let now = Instant::now();
        let secs = self.unix_secs_at(now)?;
        Some(secs * 1000 + now.as_millis() % 1000)
    }
}
