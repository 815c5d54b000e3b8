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
        }
    }

    /// The current retransmission timeout.
    pub(crate) fn rto(&self) -> Duration {
        self.rto
    }

    /// The smoothed round-trip time.
    pub(crate) fn srtt(&self) -> Duration {
        Duration::from_millis(self.srtt_us / 1000)
    }

    /// Folds in one sample, taken only from a message that was transmitted once (Karn).
    ///
    /// RTTVAR = 3/4·RTTVAR + 1/4·|SRTT − sample|; SRTT = 7/8·SRTT + 1/8·sample;
    /// RTO = SRTT + max(granularity, 4·RTTVAR), capped at the maximum.
    pub(crate) fn on_sample(&mut self, sample: Duration) {
        let s = sample.total_millis().saturating_mul(1000);
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
    fn caps_at_max_rto() {
        let mut r = official();
        r.on_sample(Duration::from_secs(5));
        assert_eq!(r.rto(), Duration::from_secs(1));
    }
}
