//! RSA certificate verification on the device, in the board example's heap.
//!
//! Replays the recorded TLS 1.3 handshake of `adapters/embassy/tests/heap.rs` (a rustls server
//! with the RSA-2048 chain root -> intermediate -> leaf of `adapters/embassy/tests/data/rsa`)
//! through `ssm_embassy::tls` with feature `tls-rsa`: the chain's PKCS#1 v1.5 signatures and the
//! RSA-PSS CertificateVerify are checked here, on the Cortex-M4, with 32-bit big-integer
//! digits, allocating from a `linked_list_allocator` heap of the board example's `HEAP_SIZE`
//! (build.rs reads it; `SSM_HEAP_SIZE` overrides it, for `heap-search.sh`). The client's RNG is
//! seeded exactly as on the host, so it sends the recorded bytes again; the replay checks that.
//! Running out of heap panics ("memory allocation of N bytes failed"), which fails the run.

use core::mem::MaybeUninit;

use embedded_io_async::{Read, Write};
use linked_list_allocator::LockedHeap;
use ssm_embassy::tls::{self, Options, Verification};
use static_cell::ConstStaticCell;

use crate::check;
use crate::harness::{Test, TestResult};

use crate::replay::{Replay, Seeded, SEED};

include!(concat!(env!("OUT_DIR"), "/heap.rs"));

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();
static HEAP_MEMORY: ConstStaticCell<[MaybeUninit<u8>; HEAP_SIZE]> =
    ConstStaticCell::new([MaybeUninit::uninit(); HEAP_SIZE]);

static SERVER: &[u8] = include_bytes!(concat!(
    "../../../../adapters/embassy/tests/data/rsa/",
    "handshake-server.bin"
));
static CLIENT: &[u8] = include_bytes!(concat!(
    "../../../../adapters/embassy/tests/data/rsa/",
    "handshake-client.bin"
));
static ROOT: &[u8] = include_bytes!(concat!(
    "../../../../adapters/embassy/tests/data/rsa/",
    "root.der"
));

/// Gives the heap its memory; call once, first.
pub fn init_heap() {
    HEAP.lock().init_from_slice(HEAP_MEMORY.take());
}

async fn exchange(root: &[u8], rx: &mut [u8], tx: &mut [u8]) -> Result<(), tls::Error> {
    let transport = Replay {
        server: SERVER,
        client: CLIENT,
    };
    let options = Options {
        server_name: "localhost",
        verification: Verification::Root(root),
    };
    let rng = Seeded::new(SEED);
    let mut conn = tls::connect(transport, rx, tx, options, rng).await?;
    conn.write_all(b"ping over tls").await?;
    conn.flush().await?;
    let mut got = [0u8; 13];
    conn.read_exact(&mut got)
        .await
        .map_err(|_| tls::Error::IoError)?;
    if &got != b"ping over tls" {
        return Err(tls::Error::DecodeError);
    }
    Ok(())
}

fn rsa_chain_verifies_in_the_board_heap() -> TestResult {
    static RX: ConstStaticCell<[u8; 16640]> = ConstStaticCell::new([0; 16640]);
    static TX: ConstStaticCell<[u8; 4096]> = ConstStaticCell::new([0; 4096]);
    let (rx, tx) = (RX.take(), TX.take());
    let (r, used) = {
        let handshake = core::pin::pin!(exchange(ROOT, &mut *rx, &mut *tx));
        crate::stack::measure_polls(
            "TLS 1.3 handshake to an RSA-2048 chain (and one record each way)",
            handshake,
        )
    };
    check!(r.is_ok());
    check!(crate::stack::fits_board(used));
    check!(HEAP.lock().used() == 0, "verification leaked");
    // The same bytes under a corrupted root (one bit of its RSA modulus flipped) are rejected
    // by the verifier, not by the replay (which would be an IO error).
    let mut bad = [0u8; 1024];
    check!(ROOT.len() <= bad.len());
    let bad = &mut bad[..ROOT.len()];
    bad.copy_from_slice(ROOT);
    // INTEGER, 257 bytes: the modulus of an RSA-2048 key.
    let modulus = ROOT
        .windows(5)
        .position(|w| w == [0x02, 0x82, 0x01, 0x01, 0x00]);
    check!(modulus.is_some());
    bad[modulus.unwrap_or(0) + 100] ^= 1;
    let r = embassy_futures::block_on(exchange(bad, rx, tx));
    check!(matches!(
        r,
        Err(tls::Error::InvalidSignature
            | tls::Error::InvalidCertificate
            | tls::Error::DecodeError)
    ));
    Ok(())
}

/// This module's tests.
pub static TESTS: &[Test] = &[Test {
    name: "rsa_chain_verifies_in_the_board_heap",
    run: rsa_chain_verifies_in_the_board_heap,
}];
