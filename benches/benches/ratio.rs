//! Codec cost as a ratio to the SHA-256 it cannot avoid, measured interleaved: batches of raw
//! SHA-256 and of parse+verify (and emit) alternate, and the fastest batch of each is kept.
//! On a shared, loaded machine criterion's sequential groups see different load for the two
//! sides; interleaving and taking the minimum compares both at the same, least-disturbed moment.
//!
//! `cargo bench -p ssm-benches --bench ratio` prints a table; under `cargo test --benches` it
//! runs one short round as a smoke test.

use core::hint::black_box;
use core::time::Duration;
use std::time::Instant;

use sha2::{Digest, Sha256};
use ssm_benches::{frame, header, payload, PAYLOAD_SIZES};
use ssm_proto::wire::{FrameRepr, HEADER_LEN};

/// Nanoseconds per call of `f`, over a batch of `n` calls.
fn batch(n: u32, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 400 } else { 2 };
    let budget = Duration::from_secs(if full { 4 } else { 1 });
    println!("payload_bytes  sha256_ns  parse_verify_ns  emit_ns  parse/sha256_throughput  emit/sha256_throughput");
    for len in PAYLOAD_SIZES {
        let p = payload(len);
        let f = frame(len);
        let mut out = vec![0u8; HEADER_LEN + len];
        let repr = FrameRepr {
            header: header(),
            payload: &p,
        };
        // About 20 µs per batch: long enough to time, short enough to slip between preemptions.
        let n = (20_000 / (len as u32 / 2 + 50)).max(1);
        let (mut sha, mut parse, mut emit) = (f64::MAX, f64::MAX, f64::MAX);
        let start = Instant::now();
        for _ in 0..rounds {
            sha = sha.min(batch(n, || {
                black_box(Sha256::digest(black_box(&p[..])));
            }));
            parse = parse.min(batch(n, || {
                black_box(FrameRepr::parse_bytes(black_box(&f[..])).expect("valid frame"));
            }));
            emit = emit.min(batch(n, || {
                black_box(black_box(&repr).emit(&mut out).expect("sized"));
            }));
            if start.elapsed() > budget {
                break;
            }
        }
        assert_eq!(out, f, "emit reproduces the frame");
        println!(
            "{len:>13}  {sha:>9.1}  {parse:>15.1}  {emit:>7.1}  {:>22.1}%  {:>21.1}%",
            100.0 * sha / parse,
            100.0 * sha / emit
        );
    }
}
