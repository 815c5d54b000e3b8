//! The round-trip estimator and retransmission timeout of the official client
//! (`src/config/config.go`, PROTOCOL.md §4), with Karn's rule applied by the caller.

use crate::time::Duration;

/// RTT state in microseconds, so the 1/8 and 1/4 gains keep precision on a millisecond clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RttEstimator {
    srtt_us: u64,
    rttvar_us: u64,
    rto: Duration,
    granularity_us: u64,
    max_rto: Duration,
    /// Smallest sample so far, in microseconds (`u64::MAX` before the first).
    min_rtt_us: u64,
    /// The latest sample, in microseconds (0 before the first).
    latest_us: u64,
}

impl RttEstimator {
    pub(crate) const fn new(
        initial_rtt: Duration,
        initial_rto: Duration,
        granularity: Duration,
        max_rto: Duration,
    ) -> Self {
        RttEstimator {
            srtt_us: initial_rtt.total_millis().saturating_mul(1000),
            // The official client starts RTTVAR at 0.
            rttvar_us: 0,
            rto: if initial_rto.total_millis() > max_rto.total_millis() {
                max_rto
            } else {
                initial_rto
            },
            granularity_us: granularity.total_millis().saturating_mul(1000),
            max_rto,
            min_rtt_us: u64::MAX,
            latest_us: 0,
        }
    }

    /// The current retransmission timeout.
    pub(crate) fn rto(&self) -> Duration {
        self.rto
    }

    /// How long a message waits for its acknowledgement before it times out (before
    /// doublings): the [`rto`](Self::rto), but never less than the latest sample plus the
    /// variance term. The official 1 s ceiling keeps a stale high estimate from slowing repairs;
    /// it must not make the timeout shorter than a round trip just measured, or every message
    /// queued behind a slow hop would time out and go out again (and then, by Karn's rule,
    /// give no sample that could correct the estimate).
    pub(crate) fn timeout(&self) -> Duration {
        let var = self.rttvar_us.saturating_mul(4).max(self.granularity_us);
        let floor = Duration::from_millis(self.latest_us.saturating_add(var).div_ceil(1000));
        self.rto.max(floor)
    }

    /// The smoothed round-trip time.
    pub(crate) fn srtt(&self) -> Duration {
        Duration::from_millis(self.srtt_us / 1000)
    }

    /// The smallest sample so far.
    pub(crate) fn min_rtt(&self) -> Option<Duration> {
        (self.min_rtt_us != u64::MAX).then(|| Duration::from_millis(self.min_rtt_us / 1000))
    }

    /// How much later than its successors a message may arrive before it counts as lost: a
    /// quarter of the smallest round trip seen (RFC 8985's reordering window), a quarter of the
    /// smoothed one before any sample, never under 1 ms (the clock's resolution).
    pub(crate) fn reordering(&self) -> Duration {
        let base = if self.min_rtt_us == u64::MAX {
            self.srtt_us
        } else {
            self.min_rtt_us
        };
        Duration::from_millis((base / 4000).max(1))
    }

    /// Folds in one sample, taken only from a message that was transmitted once (Karn).
    ///
    /// RTTVAR = 3/4·RTTVAR + 1/4·|SRTT − sample|; SRTT = 7/8·SRTT + 1/8·sample;
    /// RTO = SRTT + max(granularity, 4·RTTVAR), capped at the maximum.
    pub(crate) fn on_sample(&mut self, sample: Duration) {
        let s = sample.total_millis().saturating_mul(1000);
        self.min_rtt_us = self.min_rtt_us.min(s);
        self.latest_us = s;
        let diff = self.srtt_us.abs_diff(s);
        self.rttvar_us = self.rttvar_us - self.rttvar_us / 4 + diff / 4;
        self.srtt_us = self.srtt_us - self.srtt_us / 8 + s / 8;
        let var = self.rttvar_us.saturating_mul(4).max(self.granularity_us);
        // Round up: a timeout a fraction of a millisecond early would be a spurious resend.
        let rto_ms = self.srtt_us.saturating_add(var).div_ceil(1000);
        self.rto = Duration::from_millis(rto_ms).min(self.max_rto);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn official() -> RttEstimator {
        RttEstimator::new(
            Duration::from_millis(100),
            Duration::from_millis(200),
            Duration::from_millis(10),
            Duration::from_secs(1),
        )
    }

    #[test]
    fn starts_at_the_official_constants() {
        let r = official();
        assert_eq!(r.rto(), Duration::from_millis(200));
        assert_eq!(r.srtt(), Duration::from_millis(100));
    }

    #[test]
    fn follows_the_official_formula() {
        let mut r = official();
        r.on_sample(Duration::from_millis(20));
        // RTTVAR = 0·3/4 + |100−20|/4 = 20 ms; SRTT = 100·7/8 + 20/8 = 90 ms; RTO = 90 + 80.
        assert_eq!(r.srtt(), Duration::from_millis(90));
        assert_eq!(r.rto(), Duration::from_millis(170));
        // Steady samples shrink RTTVAR until the 10 ms floor governs.
        for _ in 0..200 {
            r.on_sample(Duration::from_millis(20));
        }
        // Integer arithmetic may leave SRTT a few microseconds above the sample.
        assert_eq!(r.srtt(), Duration::from_millis(20));
        assert!((30..=31).contains(&r.rto().total_millis()), "{:?}", r.rto());
    }

    #[test]
    fn reordering_allowance_follows_the_smallest_round_trip() {
        let mut r = official();
        assert_eq!(r.reordering(), Duration::from_millis(25));
        r.on_sample(Duration::from_millis(40));
        r.on_sample(Duration::from_millis(400));
        assert_eq!(r.reordering(), Duration::from_millis(10));
        r.on_sample(Duration::from_millis(2));
        assert_eq!(r.reordering(), Duration::from_millis(1));
    }

    #[test]
    fn caps_at_max_rto() {
        let mut r = official();
        r.on_sample(Duration::from_secs(5));
        assert_eq!(r.rto(), Duration::from_secs(1));
    }

    #[test]
    fn the_timeout_is_never_below_the_latest_round_trip() {
        let mut r = official();
        assert_eq!(r.timeout(), r.rto());
        r.on_sample(Duration::from_millis(50));
        assert_eq!(r.timeout(), r.rto());
        // A queue builds up: 3 s round trips, above the 1 s ceiling.
        r.on_sample(Duration::from_secs(3));
        assert_eq!(r.rto(), Duration::from_secs(1));
        assert!(r.timeout() > Duration::from_secs(3), "{:?}", r.timeout());
        // It drains: the ceiling governs again.
        for _ in 0..50 {
            r.on_sample(Duration::from_millis(50));
        }
        assert_eq!(r.timeout(), r.rto());
    }
}
