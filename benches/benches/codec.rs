//! Frame codec and control payloads. Each frame group puts the codec beside a raw SHA-256 of the
//! same payload: the digest is the cost the codec cannot avoid, so results read as a ratio.

use core::hint::black_box;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sha2::{Digest, Sha256};
use ssm_benches::{
    frame, header, payload, ACK, HANDSHAKE_REQUEST, PAYLOAD_SIZES, START_SESSION_RESPONSE,
};
use ssm_proto::model::OwnedStartSessionResponse;
use ssm_proto::payload::{Acknowledge, HandshakeRequest, Size};
use ssm_proto::wire::{FrameRepr, HEADER_LEN};

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    for len in PAYLOAD_SIZES {
        // Bytes of payload hashed; a 0-byte payload is counted per frame instead.
        g.throughput(if len == 0 {
            Throughput::Elements(1)
        } else {
            Throughput::Bytes(len as u64)
        });
        let p = payload(len);
        let f = frame(len);
        g.bench_function(BenchmarkId::new("sha256_raw", len), |b| {
            b.iter(|| Sha256::digest(black_box(&p[..])))
        });
        g.bench_function(BenchmarkId::new("parse_verify", len), |b| {
            b.iter(|| FrameRepr::parse_bytes(black_box(&f[..])).expect("valid frame"))
        });
        let repr = FrameRepr {
            header: header(),
            payload: &p,
        };
        let mut out = vec![0u8; HEADER_LEN + len];
        g.bench_function(BenchmarkId::new("emit", len), |b| {
            b.iter(|| black_box(&repr).emit(&mut out).expect("sized"))
        });
        g.bench_function(BenchmarkId::new("emit_in_place", len), |b| {
            b.iter(|| {
                header()
                    .emit_in_place(black_box(&mut out), len)
                    .expect("sized")
            })
        });
    }
    g.finish();
}

fn payloads(c: &mut Criterion) {
    let mut g = c.benchmark_group("payload");
    g.throughput(Throughput::Elements(1));
    let mut out = [0u8; 512];
    g.bench_function("ack_parse", |b| {
        b.iter(|| Acknowledge::parse(black_box(ACK)).expect("valid"))
    });
    let ack = Acknowledge::parse(ACK).expect("valid");
    g.bench_function("ack_emit", |b| {
        b.iter(|| black_box(&ack).emit(&mut out).expect("fits"))
    });
    g.bench_function("handshake_request_parse", |b| {
        b.iter(|| {
            let r = HandshakeRequest::parse(black_box(HANDSHAKE_REQUEST)).expect("valid");
            r.session_type()
        })
    });
    let size = Size {
        cols: 120,
        rows: 40,
    };
    g.bench_function("start_session_response_parse_owned", |b| {
        b.iter(|| {
            OwnedStartSessionResponse::<2048, 1024>::parse(black_box(START_SESSION_RESPONSE))
                .expect("valid")
        })
    });
    g.bench_function("size_emit", |b| {
        b.iter(|| black_box(&size).emit(&mut out).expect("fits"))
    });
    g.finish();
}

criterion_group!(benches, frames, payloads);
criterion_main!(benches);
