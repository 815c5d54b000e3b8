//! Fault injection between the engine and the socket, for tests and the emulator.
//!
//! Faults apply to binary WebSocket messages only (the frames of the protocol); text
//! (`OpenDataChannelInput`) and WebSocket control messages always pass. Each direction has its own
//! seeded random stream, so a run is reproducible for a given message order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::time::Instant;

/// What to do to the frames crossing one transport, in each direction.
///
/// Probabilities are per binary message, in `0.0..=1.0`. The default injects nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Seed of the pseudo-random choices.
    pub seed: u64,
    /// Probability that a frame is dropped.
    pub drop: f64,
    /// Probability that a frame is sent twice.
    pub duplicate: f64,
    /// Probability that a frame is held back and sent after the next one.
    pub reorder: f64,
    /// Probability that a frame is delayed by a random time up to [`Faults::delay_max`] (later
    /// frames overtake it).
    pub delay: f64,
    /// Upper bound of an injected delay.
    pub delay_max: Duration,
    /// Cut the WebSocket (drop the TCP connection without a close frame) once this many binary
    /// frames, both directions together, have crossed one connection.
    pub cut_after: Option<u64>,
}

impl Faults {
    /// Whether frames may go missing or arrive out of order (drop, reorder, delay).
    pub fn loses_or_reorders(&self) -> bool {
        self.drop > 0.0 || self.reorder > 0.0 || self.delay > 0.0
    }

    /// A mild mix that exercises every repair path without starving throughput: 0.2 % drop,
    /// 1 % duplicate, 1 % reorder, 0.5 % delayed by up to 20 ms.
    pub fn mild(seed: u64) -> Faults {
        Faults {
            seed,
            drop: 0.002,
            duplicate: 0.01,
            reorder: 0.01,
            delay: 0.005,
            delay_max: Duration::from_millis(20),
            cut_after: None,
        }
    }

    /// True if this configuration changes nothing.
    pub fn is_none(&self) -> bool {
        self.drop <= 0.0
            && self.duplicate <= 0.0
            && self.reorder <= 0.0
            && self.delay <= 0.0
            && self.cut_after.is_none()
    }
}

/// xorshift64*: enough randomness for fault decisions and test ids, no dependency. Not a
/// cryptographic generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        // Avoid the all-zero state; mix the seed so seeds 0, 1, 2 differ widely.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// One direction's fault stage: frames go in with [`Stage::push`], come out of [`Stage::pop_due`].
#[derive(Debug)]
pub(crate) struct Stage<M> {
    faults: Faults,
    rng: Rng,
    held: Option<(M, Instant)>,
    delayed: BinaryHeap<Reverse<(Instant, u64, Slot<M>)>>,
    order: u64,
    ready: Vec<M>,
}

/// Wrapper so the heap compares only by time and insertion order.
#[derive(Debug)]
struct Slot<M>(M);
impl<M> PartialEq for Slot<M> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<M> Eq for Slot<M> {}
impl<M> PartialOrd for Slot<M> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<M> Ord for Slot<M> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// How long a reordered frame waits for a successor before it goes out anyway.
const REORDER_HOLD: Duration = Duration::from_millis(20);

impl<M: Clone> Stage<M> {
    pub(crate) fn new(faults: Faults, stream: u64) -> Self {
        let rng = Rng::new(faults.seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Stage {
            faults,
            rng,
            held: None,
            delayed: BinaryHeap::new(),
            order: 0,
            ready: Vec::new(),
        }
    }

    /// Takes one frame; what may leave now is collected by [`Stage::pop_due`].
    pub(crate) fn push(&mut self, m: M, now: Instant) {
        if self.rng.chance(self.faults.drop) {
            return;
        }
        let copies = if self.rng.chance(self.faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let m = m.clone();
            if self.rng.chance(self.faults.delay) && !self.faults.delay_max.is_zero() {
                let max = self.faults.delay_max.as_millis().max(1) as u64;
                let d = Duration::from_millis(self.rng.next_u64() % (max + 1));
                self.order += 1;
                self.delayed.push(Reverse((now + d, self.order, Slot(m))));
            } else if self.held.is_none() && self.rng.chance(self.faults.reorder) {
                self.held = Some((m, now + REORDER_HOLD));
            } else {
                self.ready.push(m);
                if let Some((h, _)) = self.held.take() {
                    self.ready.push(h);
                }
            }
        }
    }

    /// Frames whose time has come, in the order to send them.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Vec<M> {
        while let Some(Reverse((t, _, _))) = self.delayed.peek() {
            if *t > now {
                break;
            }
            if let Some(Reverse((_, _, Slot(m)))) = self.delayed.pop() {
                self.ready.push(m);
            }
        }
        if let Some((_, t)) = &self.held {
            if *t <= now {
                if let Some((m, _)) = self.held.take() {
                    self.ready.push(m);
                }
            }
        }
        std::mem::take(&mut self.ready)
    }

    /// When [`Stage::pop_due`] will next have something.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let d = self.delayed.peek().map(|Reverse((t, _, _))| *t);
        let h = self.held.as_ref().map(|(_, t)| *t);
        match (d, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_faults_pass_in_order() {
        let mut s = Stage::new(Faults::default(), 0);
        let now = Instant::now();
        for i in 0..100u32 {
            s.push(i, now);
        }
        assert_eq!(s.pop_due(now), (0..100).collect::<Vec<_>>());
        assert!(s.next_deadline().is_none());
    }

    #[tokio::test]
    async fn faults_drop_duplicate_and_reorder_but_release_everything_else() {
        let f = Faults {
            seed: 7,
            drop: 0.1,
            duplicate: 0.1,
            reorder: 0.1,
            delay: 0.1,
            delay_max: Duration::from_millis(30),
            cut_after: None,
        };
        let mut s = Stage::new(f, 1);
        let now = Instant::now();
        for i in 0..1000u32 {
            s.push(i, now);
        }
        let mut out = s.pop_due(now);
        out.extend(s.pop_due(now + Duration::from_secs(1)));
        assert!(s.next_deadline().is_none());
        let mut sorted = out.clone();
        sorted.sort_unstable();
        let mut uniq = sorted.clone();
        uniq.dedup();
        assert!(uniq.len() < 1000 && uniq.len() > 800, "{}", uniq.len());
        assert!(sorted.len() > uniq.len(), "no duplicate");
        assert_ne!(out, sorted, "no reordering");
    }
}
