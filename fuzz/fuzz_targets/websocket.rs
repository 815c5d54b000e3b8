//! WebSocket: the opening handshake parsers, the frame header parser, and the message layer fed
//! the input in chunks, for both roles. No panic; the header's length and the consumed counts
//! stay within the input; a text message is valid UTF-8; a frame header re-emits to an equal one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_proto::ws::{self, handshake, FrameHeader, MessageKind, Role, Status, WebSocket};

/// The RFC 6455 sample key.
const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    if let Ok(Status::Complete(n)) = handshake::parse_response(data, KEY) {
        assert!(n <= data.len());
    }
    if let Ok(Status::Complete(req)) = handshake::parse_request(data) {
        let _ = req.headers().count();
    }
    if let Ok(Status::Complete((h, n))) = FrameHeader::parse(data, 1 << 20) {
        assert!(n <= data.len());
        let mut out = [0u8; 14];
        let m = h.emit(&mut out).expect("14 bytes hold any header");
        // Emission uses the shortest length encoding; the parser also takes longer ones.
        if m == n {
            assert_eq!(&out[..m], &data[..n], "frame header re-emits differently");
        }
        assert_eq!(
            FrameHeader::parse(&out[..m], 1 << 20),
            Ok(Status::Complete((h, m)))
        );
    }
    let chunk = usize::from(chunk % 64) + 1;
    for role in [Role::Client, Role::Server] {
        let mut conn = WebSocket::<1024>::new(role);
        let mut out = [0u8; 1200];
        let mut rest = data;
        // Each round either consumes input or delivers a message; bounded either way.
        for _ in 0..data.len() + 2 {
            let take = rest.len().min(chunk);
            let consumed = match conn.handle_input(&rest[..take]) {
                Ok(n) => n,
                Err(_) => take,
            };
            assert!(consumed <= take);
            rest = &rest[consumed..];
            while let Some(m) = conn.poll_message() {
                if m.kind == MessageKind::Text {
                    assert!(m.as_text().is_some(), "text message is not utf-8");
                }
            }
            while let Ok(Some(n)) = conn.poll_transmit(&mut out, || [1, 2, 3, 4]) {
                assert!(n <= out.len());
            }
            if rest.is_empty() {
                break;
            }
        }
        let _ = conn.write_message(&mut out, MessageKind::Binary, b"x", || [0; 4]);
        let _ = conn.close(ws::close_code::NORMAL, "bye");
        let _ = conn.poll_transmit(&mut out, || [0; 4]);
    }
});
