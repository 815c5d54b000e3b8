//! A small seeded generator for message ids: tests and simulations are reproducible.

use crate::uuid::Uuid;

/// SplitMix64 (Steele, Lea, Flood 2014): one `u64` of state, full period, good enough to make
/// message ids unique within a session. Not a cryptographic generator: ids are not secrets.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub(crate) const fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A version-4 UUID from the next 128 bits.
    pub(crate) const fn uuid(&mut self) -> Uuid {
        let (lo, hi) = (self.next_u64().to_le_bytes(), self.next_u64().to_le_bytes());
        let mut b = [0u8; 16];
        let mut i = 0;
        while i < 8 {
            b[i] = lo[i];
            b[8 + i] = hi[i];
            i += 1;
        }
        Uuid::from_random_bytes(b)
    }
}
