//! A recorded TLS server and the seeded client RNG that makes it replayable. Shared, as source,
//! by `tests/heap.rs` (host) and `examples/boards/qemu-tests` (Cortex-M4): both must draw the
//! same bytes for the recording to fit, so this file is `no_std` and uses only `core`.

use embedded_io::ErrorKind;
use embedded_io_async::{ErrorType, Read, Write};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

/// The seed `tests/data/rsa/handshake-*.bin` were recorded with.
pub const SEED: u64 = 0x5353_4d2d_4845_4150;

/// A seeded RNG: the client's key share and randoms repeat, so a recorded server still fits.
/// SHA-256 of seed and counter. Test only: a real device takes a hardware RNG.
pub struct Seeded {
    seed: u64,
    counter: u64,
}

impl Seeded {
    /// A generator at the start of `seed`'s sequence.
    pub fn new(seed: u64) -> Self {
        Seeded { seed, counter: 0 }
    }
}

impl RngCore for Seeded {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(32) {
            self.counter += 1;
            let block = Sha256::new()
                .chain_update(self.seed.to_le_bytes())
                .chain_update(self.counter.to_le_bytes())
                .finalize();
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Seeded {}

/// The recorded server: hands out its bytes, and checks the client's against the recording.
pub struct Replay<'a> {
    /// What the server sends, still to come.
    pub server: &'a [u8],
    /// What the client must send, still to come.
    pub client: &'a [u8],
}

impl ErrorType for Replay<'_> {
    type Error = ErrorKind;
}

impl Read for Replay<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        let n = buf.len().min(self.server.len());
        buf[..n].copy_from_slice(&self.server[..n]);
        self.server = &self.server[n..];
        Ok(n)
    }
}

impl Write for Replay<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        // Not an assert: a diverging client (e.g. one that fails verification and sends an
        // alert) must surface as its TLS error.
        if !self.client.starts_with(buf) {
            return Err(ErrorKind::InvalidData);
        }
        self.client = &self.client[buf.len()..];
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}
