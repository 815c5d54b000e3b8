//! smux v1: the frame parser (a parsed frame re-emits to the same bytes) and the multiplexer fed
//! the input in chunks, in both roles, with every stream read as events announce data. No
//! panic; consumed counts stay within what was offered; timers never lie in the past.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_proto::smux::frame::FrameRepr;
use ssm_proto::smux::{Config, Event, Mux, Role, StreamId};
use ssm_proto::time::{Duration, Instant};
use ssm_proto::ws::Status;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, data)) = data.split_first() else {
        return;
    };
    if let Ok(Status::Complete((f, n))) = FrameRepr::parse(data) {
        assert!(n <= data.len());
        let mut out = vec![0u8; f.buffer_len()];
        assert_eq!(f.emit(&mut out), Ok(n));
        assert_eq!(&out[..], &data[..n], "smux frame re-emits differently");
    }
    let chunk = usize::from(ctl % 32) + 1;
    for role in [Role::Client, Role::Server] {
        let mut now = Instant::from_millis(0);
        let mut mux: Mux<[u8; 4096], 4> = Mux::new(Config::default(), role, now, [0u8; 4096]);
        if ctl & 0x80 != 0 {
            let _ = mux.open();
        }
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
                    Event::Opened(id) | Event::Readable(id) => drain(&mut mux, id, ctl),
                    Event::Closed(_) => {}
                }
            }
            while let Ok(Some(n)) = mux.poll_transmit(&mut out) {
                assert!(n <= out.len());
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
    }
});

fn drain(mux: &mut Mux<[u8; 4096], 4>, id: StreamId, ctl: u8) {
    let mut buf = [0u8; 300];
    while let Ok(Some(n)) = mux.read(id, &mut buf) {
        assert!(n <= buf.len());
        if n == 0 {
            break;
        }
    }
    if ctl & 0x40 != 0 {
        let mut out = [0u8; 64];
        let _ = mux.write(id, b"echo", &mut out);
        let _ = mux.close(id);
    }
}
