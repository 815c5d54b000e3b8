//! Zero heap allocations per frame parsed or emitted, per control payload parsed or emitted, and
//! per engine step (client and agent sessions moving data, with and without loss), measured with a counting global allocator (stats_alloc; no `unsafe` of ours).
//!
//! `harness = false`: the counters are process-wide, and libtest's threads would allocate while
//! we count, so `main` runs the checks one after another on one thread.

use std::alloc::System;

use ssm_benches::{frame, header, payload, Pair, ACK, HANDSHAKE_REQUEST, PAYLOAD_SIZES};
use ssm_proto::payload::{Acknowledge, HandshakeRequest, PortProperties, Size};
use ssm_proto::wire::{FrameRepr, HEADER_LEN};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Runs `f` and returns how many allocations (incl. reallocations) it made.
fn allocations(f: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    let s = region.change();
    s.allocations + s.reallocations
}

fn the_counter_sees_allocations() {
    // Guards the other tests against a counter that never counts.
    let n = allocations(|| {
        let v: Vec<u8> = core::hint::black_box(vec![1, 2, 3]);
        drop(v);
    });
    assert!(n >= 1, "counting allocator saw {n} allocations for a Vec");
}

fn frames_parse_and_emit_without_allocating() {
    for len in PAYLOAD_SIZES {
        let f = frame(len);
        let p = payload(len);
        let mut out = vec![0u8; HEADER_LEN + len];
        let n = allocations(|| {
            for _ in 0..100 {
                let repr = FrameRepr::parse_bytes(core::hint::black_box(&f[..])).unwrap();
                assert_eq!(repr.payload.len(), len);
                let r = FrameRepr {
                    header: header(),
                    payload: &p,
                };
                assert_eq!(r.emit(&mut out).unwrap(), f.len());
                header().emit_in_place(&mut out, len).unwrap();
            }
        });
        assert_eq!(n, 0, "{n} allocations for 100 frames of {len} bytes");
        assert_eq!(out, f);
    }
}

fn control_payloads_parse_and_emit_without_allocating() {
    let mut out = [0u8; 1024];
    let n = allocations(|| {
        for _ in 0..100 {
            let ack = Acknowledge::parse(core::hint::black_box(ACK)).unwrap();
            let len = ack.emit(&mut out).unwrap();
            assert_eq!(&out[..len], ACK);
            let r = HandshakeRequest::parse(HANDSHAKE_REQUEST).unwrap();
            let (_, props) = r.session_type().unwrap();
            let port = PortProperties::parse(props.unwrap().as_bytes()).unwrap();
            assert_eq!(port.port_number, Some(22));
            r.emit(&mut out).unwrap();
            Size { cols: 1, rows: 2 }.emit(&mut out).unwrap();
        }
    });
    assert_eq!(n, 0, "{n} allocations for 100 rounds of control payloads");
}

fn engine_steps_without_allocating() {
    for (loss, kms) in [(0, false), (50, false), (0, true), (50, true)] {
        // Setup allocates (boxes, rings); the steps after it must not, encrypted or not.
        let mut pair = if kms {
            Pair::encrypted(3, loss)
        } else {
            Pair::new(3, loss)
        };
        pair.transfer(64 * 1024);
        let before = (pair.received, pair.dropped);
        let n = allocations(|| pair.transfer(1 << 20));
        assert!(pair.received - before.0 >= 1 << 20);
        assert!(loss == 0 || pair.dropped > before.1, "no loss happened");
        assert_eq!(
            n, 0,
            "{n} allocations moving 1 MiB at loss {loss}/1000 (kms: {kms})"
        );
    }
}

fn main() {
    let checks: [(&str, fn()); 4] = [
        ("the_counter_sees_allocations", the_counter_sees_allocations),
        (
            "frames_parse_and_emit_without_allocating",
            frames_parse_and_emit_without_allocating,
        ),
        (
            "control_payloads_parse_and_emit_without_allocating",
            control_payloads_parse_and_emit_without_allocating,
        ),
        (
            "engine_steps_without_allocating",
            engine_steps_without_allocating,
        ),
    ];
    for (name, check) in checks {
        check();
        println!("test {name} ... ok");
    }
}
