//! How much heap RSA certificate verification needs: the figure the board example sizes its heap
//! from (`examples/boards/nucleo-f429zi`, `HEAP_SIZE`).
//!
//! The client side of a TLS 1.3 handshake through this crate's verifier (RSA-2048 root ->
//! intermediate -> leaf, PKCS#1 v1.5 chain signatures and the RSA-PSS CertificateVerify: AWS's
//! shape) plus one record each way, on this thread alone, with a counting global allocator.
//! The server is a recording: a rustls server's bytes for a client whose RNG is seeded, so the
//! client sends the same bytes again and the handshake completes without a server thread whose
//! allocations would be counted too. The replay checks that the client's bytes match the
//! recording byte for byte. `examples/boards/qemu-tests` replays the same recording on a
//! Cortex-M4 under QEMU, in the board's heap.
//!
//! Re-record (after changing `tests/data/rsa` or the TLS code), then run it again to measure:
//! `SSM_RECORD_HANDSHAKE=1 cargo test -p ssm-embassy --features tls-rsa --test heap`.
//!
//! It runs without libtest (`harness = false`): the counting allocator is process-wide, and
//! libtest's main thread allocates its table of running tests while the test thread measures
//! (once seen in CI as a 900-byte "leak").

mod common;

use core::cell::RefCell;
use std::alloc::System;
use std::rc::Rc;

use cap::Cap;
use common::replay::{Replay, Seeded, SEED};
use common::Recorder;
use embedded_io_async::{Read, Write};
use ssm_embassy::tls::{self, Options, Verification};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rsa/");
/// The board example, whose `HEAP_SIZE` this test checks.
const BOARD: &str = include_str!("../../../examples/boards/nucleo-f429zi/src/main.rs");

/// Handshake, then one record out and its echo back.
async fn exchange<T: Read + Write>(
    transport: T,
    root: &[u8],
    name: &str,
) -> Result<(), tls::Error> {
    let options = Options {
        server_name: name,
        verification: Verification::Root(root),
    };
    common::tls_echo(transport, options, Seeded::new(SEED)).await
}

fn record() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (root, server) = common::rsa_pki();
    let (server_bytes, client_bytes) = rt.block_on(async {
        let addr = common::echo_server(server).await;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let server_bytes = Rc::new(RefCell::new(Vec::new()));
        let client_bytes = Rc::new(RefCell::new(Vec::new()));
        let recorder = Recorder {
            inner: embedded_io_adapters::tokio_1::FromTokio::new(tcp),
            server: server_bytes.clone(),
            client: client_bytes.clone(),
        };
        exchange(recorder, &root, "localhost").await.unwrap();
        (server_bytes.take(), client_bytes.take())
    });
    std::fs::write(format!("{DATA}handshake-server.bin"), server_bytes).unwrap();
    std::fs::write(format!("{DATA}handshake-client.bin"), client_bytes).unwrap();
}

/// `const HEAP_SIZE: usize = N * 1024;` in the board example.
fn board_heap_size() -> usize {
    let line = BOARD
        .lines()
        .find_map(|l| l.strip_prefix("const HEAP_SIZE: usize = "))
        .expect("the board example declares HEAP_SIZE");
    let kib = line
        .strip_suffix(" * 1024;")
        .expect("HEAP_SIZE is written as N * 1024");
    kib.parse::<usize>().unwrap() * 1024
}

fn main() {
    rsa_verification_fits_the_board_heap();
    eprintln!("test rsa_verification_fits_the_board_heap ... ok");
}

fn rsa_verification_fits_the_board_heap() {
    if std::env::var_os("SSM_RECORD_HANDSHAKE").is_some() {
        // The recording's own allocations (tokio, rustls) would swamp the figure.
        record();
        eprintln!("recorded; run again without SSM_RECORD_HANDSHAKE to measure");
        return;
    }
    let server = std::fs::read(format!("{DATA}handshake-server.bin")).unwrap();
    let client = std::fs::read(format!("{DATA}handshake-client.bin")).unwrap();
    let root = std::fs::read(format!("{DATA}root.der")).unwrap();
    let replay = || Replay {
        server: &server,
        client: &client,
    };

    let before = ALLOC.allocated();
    let max_before = ALLOC.max_allocated();
    embassy_futures::block_on(exchange(replay(), &root, "localhost")).unwrap();
    let peak = ALLOC.max_allocated();
    assert!(
        peak > max_before,
        "the handshake did not set a new high-water mark ({peak} bytes); measure it alone"
    );
    let used = peak - before;
    assert_eq!(ALLOC.allocated(), before, "verification leaked");
    eprintln!("RSA-2048 chain + CertificateVerify: heap high-water mark {used} bytes");

    // The replay does reach the verifier: the same bytes under another root (a P-256 one, whose
    // key cannot check an RSA signature) are rejected by it, not by the replay (a diverging
    // client would show as an IO error).
    let other_root = common::pki().0;
    let r = embassy_futures::block_on(exchange(replay(), &other_root, "localhost"));
    assert!(
        matches!(
            r,
            Err(tls::Error::InvalidCertificate
                | tls::Error::InvalidSignature
                | tls::Error::DecodeError)
        ),
        "{r:?}"
    );

    // Twice the x86_64 figure: the device's big-integer digits are 32-bit (different vector
    // sizes), and a first-fit heap fragments.
    let heap = board_heap_size();
    assert!(
        2 * used <= heap,
        "the board's {heap}-byte heap leaves less than 2x the measured {used} bytes"
    );
    assert!(used > 0);
}
