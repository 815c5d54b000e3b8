//! ssm-proto's tests on an emulated Cortex-M4 (`qemu-system-arm -machine mps2-an386`), and
//! ssm-embassy's RSA certificate verification in the board example's heap (`tls_heap.rs`), and the
//! KMS session cipher (`kms_tests.rs`, ssm-proto's `kms` feature), and a recorded StartSession
//! round trip through ssm-embassy's TLS and API client (`api_tests.rs`). `stack.rs` measures
//! the stack of the signing calls and of the TLS calls and prints the figures.
//!
//! Run with `cargo run --release` from this directory (the runner is in `.cargo/config.toml`), or
//! `./run.sh`. It prints one line per failure and `N passed, N failed`, then exits 0 or 1 through
//! semihosting. A panic prints its message and exits non-zero (panic-semihosting, `exit`).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod api_tests;
mod engine_tests;
mod frozen_time;
mod harness;
mod kms_tests;
mod sigv4_tests;
mod stack;
mod tls_heap;
mod vectors;
mod wire_tests;

#[path = "../../../../adapters/embassy/tests/common/api_replay.rs"]
mod api_replay;
/// The host tests' recorded servers and seeded RNG (the same source files as
/// `adapters/embassy/tests`): a TLS handshake, and a StartSession round trip.
#[path = "../../../../adapters/embassy/tests/common/replay.rs"]
mod replay;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;

#[entry]
fn main() -> ! {
    let mut passed = 0u32;
    let mut failed = 0u32;
    tls_heap::init_heap();
    for t in wire_tests::TESTS
        .iter()
        .chain(engine_tests::TESTS)
        .chain(tls_heap::TESTS)
        .chain(sigv4_tests::TESTS)
        .chain(api_tests::TESTS)
        .chain(kms_tests::TESTS)
    {
        match (t.run)() {
            Ok(()) => passed += 1,
            Err(f) => {
                failed += 1;
                hprintln!("FAIL {} (line {}): {} {}", t.name, f.line, f.expr, f.ctx);
            }
        }
    }
    hprintln!("{} passed, {} failed", passed, failed);
    debug::exit(if failed == 0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop, reason = "exit does not return under QEMU")]
    loop {}
}
