//! A small seeded generator for message ids (tests and simulations are reproducible), shared
//! with the adapters that need cheap non-secret randomness (WebSocket keys and masks).

use crate::uuid::Uuid;

/// SplitMix64 (Steele, Lea, Flood 2014): one `u64` of state, full period, good enough to make
/// message ids unique within a session. Not a cryptographic generator: ids are not secrets, and
/// neither are WebSocket masks (RFC 6455 only wants them unpredictable to the page's script).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed` (the same seed gives the same sequence).
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 bits.
    pub const fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The next 32 bits (the low half of [`next_u64`](Self::next_u64)).
    pub const fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    /// A version-4 UUID from the next 128 bits.
    pub const fn uuid(&mut self) -> Uuid {
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
