//! smux v1: the frame parser (every parsed frame re-emits to the same bytes) and the
//! multiplexer fed the input in chunks, in both roles, with every stream read as events announce
//! data and written to. No panic; consumed counts stay within what was offered; data read never
//! exceeds the PSH data the input carried; control output is whole frames that parse back;
//! timers never lie in the past.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_proto::smux::frame::{FrameRepr, Header, HEADER_LEN};
use ssm_proto::smux::{Config, Event, Mux, Role, StreamId};
use ssm_proto::time::{Duration, Instant};
use ssm_proto::ws::Status;

type M = Mux<[u8; 4096], 4>;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, data)) = data.split_first() else {
        return;
    };
    // Every whole frame: parse, re-emit, compare; count the PSH data, including the bytes of
    // a trailing frame cut short (the mux delivers those too).
    let mut psh_total = 0usize;
    let mut rest = data;
    while let Ok(Status::Complete((f, n))) = FrameRepr::parse(rest) {
        assert!(n <= rest.len());
        let mut out = vec![0u8; f.buffer_len()];
        assert_eq!(f.emit(&mut out), Ok(n));
        assert_eq!(&out[..], &rest[..n], "smux frame re-emits differently");
        psh_total += f.payload.len();
        rest = &rest[n..];
    }
    if let Ok(Status::Complete(h)) = Header::parse(rest, u16::MAX) {
        psh_total += usize::from(h.length).min(rest.len() - HEADER_LEN);
    }

    let chunk = usize::from(ctl % 32) + 1;
    for role in [Role::Client, Role::Server] {
        let mut now = Instant::from_millis(0);
        let config = Config {
            max_receive_frame: if ctl & 0x20 == 0 { u16::MAX } else { 100 },
            ..Config::default()
        };
        let mut mux: M = Mux::new(config, role, now, [0u8; 4096]);
        if ctl & 0x80 != 0 {
            let _ = mux.open();
        }
        let mut read_total = 0usize;
        let mut out = [0u8; 1024];
        let mut rest = data;
        for _ in 0..data.len() + 2 {
            let take = rest.len().min(chunk);
            let consumed = match mux.handle_input(now, &rest[..take]) {
                Ok(n) => n,
                Err(_) => break,
            };
            assert!(consumed <= take);
            while let Some(ev) = mux.poll_event() {
                match ev {
                    Event::Opened(id) | Event::Readable(id) => {
                        read_total += drain(&mut mux, id, ctl)
                    }
                    Event::Closed(_) => {}
                }
            }
            while let Ok(Some(n)) = mux.poll_transmit(&mut out) {
                assert!(n <= out.len());
                assert_eq!(n % HEADER_LEN, 0);
                for f in out[..n].chunks(HEADER_LEN) {
                    assert!(matches!(
                        FrameRepr::parse(f),
                        Ok(Status::Complete((_, HEADER_LEN)))
                    ));
                }
            }
            if let Some(t) = mux.poll_timeout() {
                assert!(t >= now, "timer in the past");
            }
            rest = &rest[consumed..];
            now = now + Duration::from_millis(u64::from(ctl) * 97);
            let _ = mux.handle_timeout(now);
            if rest.is_empty() {
                break;
            }
        }
        assert!(read_total <= psh_total, "read more than the input carried");
    }
});

/// Reads everything buffered for `id`; returns the byte count. May answer and close.
fn drain(mux: &mut M, id: StreamId, ctl: u8) -> usize {
    let mut buf = [0u8; 300];
    let mut total = 0;
    while let Ok(Some(n)) = mux.read(id, &mut buf) {
        assert!(n > 0 && n <= buf.len());
        total += n;
    }
    if ctl & 0x40 != 0 {
        let mut out = [0u8; 64];
        if let Ok(w) = mux.write(id, b"echo", &mut out) {
            assert!(w.len <= out.len() && w.consumed <= 4);
        }
        let _ = mux.close(id);
    }
    total
}
