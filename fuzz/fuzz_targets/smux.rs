//! smux v1: the frame parser and the multiplexer fed the input in chunks, in both roles. No
//! panic; consumed counts stay within the input; a parsed frame re-emits to the same bytes; data
//! read from a stream never exceeds the PSH data the input carried; control output is whole
//! 8-byte frames that parse back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_proto::smux::frame::{FrameRepr, Header, HEADER_LEN};
use ssm_proto::smux::{Config, Error, Event, Mux, Role, StreamId};
use ssm_proto::ws::Status;
use ssm_proto::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, data)) = data.split_first() else {
        return;
    };
    // Every frame in the input: parse, re-emit, compare; sum the PSH data.
    let mut rest = data;
    let mut psh_total = 0usize;
    while let Ok(Status::Complete((f, n))) = FrameRepr::parse(rest) {
        let mut out = vec![0u8; f.buffer_len()];
        assert_eq!(f.emit(&mut out), Ok(n));
        assert_eq!(&out[..], &rest[..n], "frame re-emits differently");
        psh_total += f.payload.len();
        rest = &rest[n..];
    }
    // A trailing frame cut short still delivers the data bytes present.
    if let Ok(Status::Complete(h)) = Header::parse(rest, u16::MAX) {
        psh_total += usize::from(h.length).min(rest.len() - HEADER_LEN);
    }

    let chunk = usize::from(knobs & 0x3f) + 1;
    let role = if knobs & 0x40 == 0 {
        Role::Client
    } else {
        Role::Server
    };
    let config = Config {
        max_receive_frame: if knobs & 0x80 == 0 { u16::MAX } else { 100 },
        ..Config::default()
    };
    let mut mux = Mux::<[u8; 4 * 32], 4>::new(config, role, Instant::ZERO, [0; 4 * 32]);
    let mut ids: Vec<StreamId> = Vec::new();
    let mut read_total = 0usize;
    let mut rest = data;
    let mut now = Instant::ZERO;
    for _ in 0..data.len() + 2 {
        let take = rest.len().min(chunk);
        let consumed = match mux.handle_input(now, &rest[..take]) {
            Ok(n) => n,
            Err(_) => break,
        };
        assert!(consumed <= take);
        rest = &rest[consumed..];
        while let Some(ev) = mux.poll_event() {
            if let Event::Opened(id) = ev {
                ids.push(id);
            }
        }
        for id in &ids {
            let mut b = [0u8; 7];
            while let Ok(Some(n)) = mux.read(*id, &mut b) {
                assert!(n > 0 && n <= b.len());
                read_total += n;
            }
            // Exercise the write side too.
            match mux.write(*id, b"pong", &mut [0u8; 32]) {
                Ok(w) => assert!(w.len <= 32 && w.consumed <= 4),
                Err(e) => assert!(!e.is_peer_fault() || e == Error::Failed),
            }
        }
        let mut out = [0u8; 64];
        while let Ok(Some(n)) = mux.poll_transmit(&mut out) {
            assert_eq!(n % HEADER_LEN, 0);
            for f in out[..n].chunks(HEADER_LEN) {
                assert!(matches!(
                    FrameRepr::parse(f),
                    Ok(Status::Complete((_, HEADER_LEN)))
                ));
            }
        }
        now += Duration::from_millis(1000);
        let _ = mux.handle_timeout(now);
        if rest.is_empty() {
            break;
        }
    }
    assert!(read_total <= psh_total, "read more than the input carried");
});
