//! Integer-millisecond time, supplied by the caller.
//!
//! `ssm-proto` never reads a clock. Adapters convert their monotonic clock (tokio's `Instant`,
//! `embassy_time::Instant`) into an [`Instant`] counted from any origin they like; the only rule is
//! that `now` never goes backwards across calls. Milliseconds are enough: the protocol's smallest
//! constant is the 10 ms RTO floor of the official client.

use core::ops::{Add, AddAssign, Sub};

/// A point in monotonic time, in milliseconds from an origin chosen by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant {
    millis: u64,
}

/// A span of time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Duration {
    millis: u64,
}

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant { millis: 0 };

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant { millis }
    }

    /// An instant `secs` seconds after the origin.
    pub const fn from_secs(secs: u64) -> Self {
        Instant {
            millis: secs.saturating_mul(1000),
        }
    }

    /// Milliseconds since the origin.
    pub const fn total_millis(self) -> u64 {
        self.millis
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration {
            millis: self.millis.saturating_sub(earlier.millis),
        }
    }
}

impl Duration {
    /// No time.
    pub const ZERO: Duration = Duration { millis: 0 };

    /// `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Duration { millis }
    }

    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration {
            millis: secs.saturating_mul(1000),
        }
    }

    /// The length in milliseconds.
    pub const fn total_millis(self) -> u64 {
        self.millis
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant {
            millis: self.millis.saturating_add(rhs.millis),
        }
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturates at zero.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, rhs: Duration) -> Duration {
        Duration {
            millis: self.millis.saturating_add(rhs.millis),
        }
    }
}

impl Sub for Duration {
    type Output = Duration;
    /// Saturates at zero.
    fn sub(self, rhs: Duration) -> Duration {
        Duration {
            millis: self.millis.saturating_sub(rhs.millis),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let a = Instant::from_millis(10);
        assert_eq!(a - Instant::from_millis(20), Duration::ZERO);
        assert_eq!(a + Duration::from_secs(1), Instant::from_millis(1010));
        assert_eq!(
            Instant::from_millis(u64::MAX) + Duration::from_millis(1),
            Instant::from_millis(u64::MAX)
        );
    }
}
