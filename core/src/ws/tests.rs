use std::string::String;
use std::vec::Vec;

use proptest::prelude::*;

use super::frame::{apply_mask, encode_frame, FrameHeader, Opcode};
use super::handshake::{
    self, accept_key, encode_key, parse_request, parse_response, ClientRequest,
};
use super::*;

/// What a receiver observed, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
}

/// Feeds `chunks` one after the other, taking messages as they complete.
fn feed<const N: usize>(ws: &mut WebSocket<N>, chunks: &[&[u8]]) -> Result<Vec<Seen>, Error> {
    let mut out = Vec::new();
    for chunk in chunks {
        let mut rest = *chunk;
        loop {
            let n = ws.handle_input(rest)?;
            rest = &rest[n..];
            if let Some(m) = ws.poll_message() {
                out.push(match m.kind {
                    MessageKind::Text => Seen::Text(m.as_text().unwrap().into()),
                    MessageKind::Binary => Seen::Binary(m.data.to_vec()),
                });
            } else if rest.is_empty() {
                break;
            } else {
                assert!(n > 0, "no progress without a message");
            }
            if rest.is_empty() && n == 0 {
                break;
            }
        }
    }
    Ok(out)
}

fn transmits<const N: usize>(ws: &mut WebSocket<N>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    while let Some(n) = ws.poll_transmit(&mut buf, || [1, 2, 3, 4]).unwrap() {
        out.push(buf[..n].to_vec());
    }
    out
}

// RFC 6455 §5.7 examples.
const HELLO_UNMASKED: &[u8] = &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
const HELLO_MASKED: &[u8] = &[
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];
const HEL_LO: &[u8] = &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
const PING_HELLO: &[u8] = &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
const PONG_HELLO_MASKED: &[u8] = &[
    0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];

#[test]
fn rfc_examples_decode() {
    let mut c = WebSocket::<64>::new(Role::Client);
    assert_eq!(
        feed(&mut c, &[HELLO_UNMASKED]).unwrap(),
        [Seen::Text("Hello".into())]
    );
    let mut s = WebSocket::<64>::new(Role::Server);
    assert_eq!(
        feed(&mut s, &[HELLO_MASKED]).unwrap(),
        [Seen::Text("Hello".into())]
    );
    let mut c = WebSocket::<64>::new(Role::Client);
    assert_eq!(
        feed(&mut c, &[HEL_LO]).unwrap(),
        [Seen::Text("Hello".into())]
    );
    // A masked pong is accepted by a server and produces nothing.
    let mut s = WebSocket::<64>::new(Role::Server);
    assert_eq!(feed(&mut s, &[PONG_HELLO_MASKED]).unwrap(), []);
    assert!(transmits(&mut s).is_empty());
}

#[test]
fn rfc_examples_encode() {
    let mut buf = [0u8; 16];
    let n = encode_frame(&mut buf, true, Opcode::Text, None, b"Hello").unwrap();
    assert_eq!(&buf[..n], HELLO_UNMASKED);
    let n = encode_frame(
        &mut buf,
        true,
        Opcode::Text,
        Some([0x37, 0xfa, 0x21, 0x3d]),
        b"Hello",
    )
    .unwrap();
    assert_eq!(&buf[..n], HELLO_MASKED);
    let mut c = WebSocket::<64>::new(Role::Client);
    let n = c
        .write_message(&mut buf, MessageKind::Text, b"Hello", || {
            [0x37, 0xfa, 0x21, 0x3d]
        })
        .unwrap();
    assert_eq!(&buf[..n], HELLO_MASKED);
    let mut s = WebSocket::<64>::new(Role::Server);
    let n = s
        .write_message(&mut buf, MessageKind::Text, b"Hello", || unreachable!())
        .unwrap();
    assert_eq!(&buf[..n], HELLO_UNMASKED);
    assert_eq!(
        encode_frame(&mut buf[..6], true, Opcode::Text, None, b"Hello"),
        Err(InsufficientSize { required: 7 })
    );
}

#[test]
fn extended_lengths() {
    // 256 bytes: 16-bit length 0x0100; 65536 bytes: 64-bit length.
    let h = FrameHeader::parse(&[0x82, 0x7e, 0x01, 0x00], 1 << 20).unwrap();
    assert_eq!(
        h,
        Status::Complete((
            FrameHeader {
                fin: true,
                opcode: Opcode::Binary,
                mask: None,
                payload_len: 256
            },
            4
        ))
    );
    let b = [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
    for k in 0..b.len() {
        assert_eq!(FrameHeader::parse(&b[..k], 1 << 20), Ok(Status::Partial));
    }
    let Status::Complete((h, 10)) = FrameHeader::parse(&b, 1 << 20).unwrap() else {
        panic!()
    };
    assert_eq!(h.payload_len, 65536);
    let mut out = [0u8; 14];
    assert_eq!(h.emit(&mut out), Ok(10));
    assert_eq!(out[..10], b);
    assert_eq!(FrameHeader::parse(&b, 65535), Err(Error::MessageTooBig));
    let top = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        FrameHeader::parse(&top, u64::MAX),
        Err(Error::MessageTooBig)
    );

    let payload: Vec<u8> = (0..70000u32).map(|i| i as u8).collect();
    let mut buf = std::vec![0u8; 70100];
    let mut c = WebSocket::<70000>::new(Role::Client);
    let mut s = std::boxed::Box::new(WebSocket::<70000>::new(Role::Server));
    let n = c
        .write_message(&mut buf, MessageKind::Binary, &payload, || [9, 8, 7, 6])
        .unwrap();
    assert_eq!(n, 70000 + 14);
    assert_eq!(
        feed(&mut *s, &[&buf[..n]]).unwrap(),
        [Seen::Binary(payload)]
    );
}

/// A stream with everything: fragmented text with a ping between fragments, a binary message,
/// an empty text message, then a close.
fn mixed_stream(mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut v = Vec::new();
    let mut buf = [0u8; 200];
    let mut push = |fin, op, p: &[u8]| {
        let n = encode_frame(&mut buf, fin, op, mask, p).unwrap();
        v.extend_from_slice(&buf[..n]);
    };
    push(false, Opcode::Text, "héllo ".as_bytes());
    push(true, Opcode::Ping, b"p1");
    push(false, Opcode::Continuation, b"wor");
    push(true, Opcode::Continuation, "ld ✓".as_bytes());
    push(true, Opcode::Binary, &[0, 1, 2, 255]);
    push(true, Opcode::Text, b"");
    push(true, Opcode::Close, b"\x03\xe8bye");
    v
}

fn mixed_expected() -> Vec<Seen> {
    std::vec![
        Seen::Text("héllo world ✓".into()),
        Seen::Binary(std::vec![0, 1, 2, 255]),
        Seen::Text(String::new()),
    ]
}

#[test]
fn every_split_offset() {
    for (role, mask) in [
        (Role::Client, None),
        (Role::Server, Some([0xa1, 0xb2, 0xc3, 0xd4])),
    ] {
        let stream = mixed_stream(mask);
        for k in 0..=stream.len() {
            let mut ws = WebSocket::<32>::new(role);
            let seen = feed(&mut ws, &[&stream[..k], &stream[k..]]).unwrap();
            assert_eq!(seen, mixed_expected(), "split at {k}");
            let close = ws.close_frame().unwrap();
            assert_eq!((close.code, close.reason), (1000, "bye"));
            assert_eq!(ws.state(), State::Closing);
        }
        // Byte by byte.
        let mut ws = WebSocket::<32>::new(role);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(feed(&mut ws, &bytes).unwrap(), mixed_expected());
    }
}

#[test]
fn control_frames_ignore_the_message_budget() {
    // 8-byte buffer, 6 bytes of a fragmented message in, then a 20-byte ping: the ping is not
    // part of the message and must pass; the last fragment must still fit.
    let mut c = WebSocket::<8>::new(Role::Client);
    let mut input = std::vec![0x01, 0x06];
    input.extend_from_slice(b"abcdef");
    input.extend_from_slice(&[0x89, 20]);
    input.extend_from_slice(&[b'p'; 20]);
    input.extend_from_slice(&[0x80, 0x02, b'g', b'h']);
    assert_eq!(
        feed(&mut c, &[&input]).unwrap(),
        [Seen::Text("abcdefgh".into())]
    );
    assert_eq!(transmits(&mut c).len(), 1, "the pong");
    expect_fail::<8>(
        Role::Client,
        &[0x01, 0x06, 1, 2, 3, 4, 5, 6, 0x80, 0x03],
        Error::MessageTooBig,
        Some(1009),
    );
}

#[test]
fn ping_gets_pong_and_close_is_echoed() {
    let mut c = WebSocket::<32>::new(Role::Client);
    feed(&mut c, &[PING_HELLO]).unwrap();
    let out = transmits(&mut c);
    assert_eq!(out.len(), 1);
    // A client's pong is masked: unmask and compare.
    let mut s = WebSocket::<32>::new(Role::Server);
    feed(&mut s, &[&out[0]]).unwrap();
    let mut pong = out[0].clone();
    assert_eq!(pong[..2], [0x8a, 0x85]);
    apply_mask(&mut pong[6..], [1, 2, 3, 4], 0);
    assert_eq!(&pong[6..], b"Hello");

    // Two pings before we transmit: only the latest is answered.
    feed(&mut c, &[&[0x89, 0x01, b'a'], &[0x89, 0x01, b'b']]).unwrap();
    let out = transmits(&mut c);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0][6] ^ 1, b'b');

    // Server closes with 1001; the client echoes 1001 and is then closed.
    feed(&mut c, &[&[0x88, 0x02, 0x03, 0xe9]]).unwrap();
    assert_eq!(c.state(), State::Closing);
    let out = transmits(&mut c);
    assert_eq!(out.len(), 1);
    let mut echo = out[0].clone();
    apply_mask(&mut echo[6..], [1, 2, 3, 4], 0);
    assert_eq!(echo[..2], [0x88, 0x82]);
    assert_eq!(echo[6..], [0x03, 0xe9]);
    assert_eq!(c.state(), State::Closed);
    assert_eq!(
        c.write_message(&mut [0; 16], MessageKind::Text, b"x", || [0; 4]),
        Err(Error::Closed)
    );
    // Input after the close is ignored.
    assert_eq!(c.handle_input(HELLO_UNMASKED), Ok(HELLO_UNMASKED.len()));
    assert!(c.poll_message().is_none());
}

#[test]
fn we_close_first() {
    let mut s = WebSocket::<32>::new(Role::Server);
    assert_eq!(s.close(1005, ""), Err(Error::BadClose));
    s.close(1000, "done").unwrap();
    assert_eq!(s.state(), State::Closing);
    assert_eq!(transmits(&mut s), [b"\x88\x06\x03\xe8done".to_vec()]);
    // A ping arriving now gets no pong (close already sent); the peer's close completes it.
    feed(
        &mut s,
        &[&[0x89, 0x80, 0, 0, 0, 0], &[0x88, 0x80, 1, 2, 3, 4]],
    )
    .unwrap();
    assert!(transmits(&mut s).is_empty());
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.close_frame().unwrap().code, close_code::NO_STATUS);
    // A long reason is cut at a character boundary within 123 bytes.
    let mut c = WebSocket::<32>::new(Role::Server);
    let long = "é".repeat(100);
    c.close(4000, &long).unwrap();
    let out = transmits(&mut c);
    assert_eq!(out[0][1] as usize, 2 + 122);
}

fn expect_fail<const N: usize>(role: Role, input: &[u8], err: Error, code: Option<u16>) {
    let mut ws = WebSocket::<N>::new(role);
    assert_eq!(feed(&mut ws, &[input]), Err(err), "{input:02x?}");
    assert_eq!(ws.state(), State::Failed);
    assert_eq!(err.close_code(), code);
    let out = transmits(&mut ws);
    match code {
        Some(c) => {
            assert_eq!(out.len(), 1);
            let mut f = out[0].clone();
            if role == Role::Client {
                apply_mask(&mut f[6..], [1, 2, 3, 4], 0);
                assert_eq!(f[6..8], c.to_be_bytes());
            } else {
                assert_eq!(f[2..4], c.to_be_bytes());
            }
        }
        None => assert!(out.is_empty()),
    }
    assert_eq!(ws.handle_input(b"x"), Err(Error::Closed));
}

#[test]
fn peer_errors() {
    let pe = Some(1002);
    expect_fail::<32>(Role::Client, &[0xc1, 0x00], Error::ReservedBits, pe);
    expect_fail::<32>(Role::Client, &[0x91, 0x00], Error::ReservedBits, pe);
    for op in [3u8, 7, 0xb, 0xf] {
        expect_fail::<32>(Role::Client, &[0x80 | op, 0x00], Error::UnknownOpcode, pe);
    }
    // Fragmented ping; 126-byte ping.
    expect_fail::<32>(Role::Client, &[0x09, 0x00], Error::BadControlFrame, pe);
    expect_fail::<32>(
        Role::Client,
        &[0x89, 0x7e, 0, 126],
        Error::BadControlFrame,
        pe,
    );
    // Continuation without a message; a new message inside a fragmented one.
    expect_fail::<32>(Role::Client, &[0x80, 0x00], Error::BadContinuation, pe);
    expect_fail::<32>(
        Role::Client,
        &[0x01, 0x01, b'a', 0x81, 0x00],
        Error::BadContinuation,
        pe,
    );
    // Masking in the wrong direction.
    expect_fail::<32>(Role::Client, HELLO_MASKED, Error::BadMask, pe);
    expect_fail::<32>(Role::Server, HELLO_UNMASKED, Error::BadMask, pe);
    // Too big: one frame, and fragments that add up.
    expect_fail::<4>(
        Role::Client,
        HELLO_UNMASKED,
        Error::MessageTooBig,
        Some(1009),
    );
    expect_fail::<4>(Role::Client, HEL_LO, Error::MessageTooBig, Some(1009));
    // Bad UTF-8 in a text message (split across fragments: only the whole must be valid).
    expect_fail::<32>(
        Role::Client,
        &[0x81, 0x02, 0xc3, 0x28],
        Error::InvalidUtf8,
        Some(1007),
    );
    let mut ws = WebSocket::<32>::new(Role::Client);
    assert_eq!(
        feed(&mut ws, &[&[0x01, 0x01, 0xc3, 0x80, 0x01, 0xa9]]).unwrap(),
        [Seen::Text("é".into())]
    );
    // Close frames: 1 byte, reserved codes, bad reason.
    expect_fail::<32>(Role::Client, &[0x88, 0x01, 0x03], Error::BadClose, pe);
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2000, 2999, 5000] {
        let [a, b] = code.to_be_bytes();
        expect_fail::<32>(Role::Client, &[0x88, 0x02, a, b], Error::BadClose, pe);
    }
    expect_fail::<32>(
        Role::Client,
        &[0x88, 0x03, 0x03, 0xe8, 0xff],
        Error::InvalidUtf8,
        Some(1007),
    );
}

#[test]
fn error_text() {
    use std::string::ToString;
    assert_eq!(
        Error::HandshakeStatus(403).to_string(),
        "websocket handshake status is not 101 (got 403)"
    );
    assert_eq!(
        Error::ReservedBits.to_string(),
        "websocket frame sets reserved bits"
    );
}

// ---- handshake ----

#[test]
fn rfc_key_and_accept() {
    // RFC 6455 §1.3: the nonce "the sample nonce".
    let key = encode_key(b"the sample nonce");
    assert_eq!(&key, b"dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(&accept_key(&key), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

fn request<'a>(
    host: &'a str,
    port: u16,
    tls: bool,
    headers: &'a [(&'a str, &'a str)],
) -> ClientRequest<'a> {
    ClientRequest {
        host,
        port,
        tls,
        path_and_query: "/v1/data-channel/s-1?role=publish_subscribe",
        key: *b"the sample nonce",
        headers,
    }
}

#[test]
fn client_request_bytes() {
    let hdrs = [
        ("Authorization", "AWS4-HMAC-SHA256 Credential=x"),
        ("X-Amz-Date", "20261126T000000Z"),
    ];
    let r = request("ssmmessages.eu-west-1.amazonaws.com", 443, true, &hdrs);
    let mut buf = [0u8; 512];
    let n = r.write(&mut buf).unwrap();
    assert_eq!(n, r.buffer_len());
    assert_eq!(
        core::str::from_utf8(&buf[..n]).unwrap(),
        "GET /v1/data-channel/s-1?role=publish_subscribe HTTP/1.1\r\n\
         Host: ssmmessages.eu-west-1.amazonaws.com\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=x\r\nX-Amz-Date: 20261126T000000Z\r\n\r\n"
    );
    let mut small = [0xeeu8; 64];
    assert_eq!(r.write(&mut small), Err(InsufficientSize { required: n }));
    assert!(small.iter().all(|&b| b == 0xee), "nothing written");

    for (host, port, tls, want) in [
        ("127.0.0.1", 8443, true, "Host: 127.0.0.1:8443\r\n"),
        ("localhost", 80, false, "Host: localhost\r\n"),
        ("localhost", 443, false, "Host: localhost:443\r\n"),
        ("::1", 9000, false, "Host: [::1]:9000\r\n"),
        ("[::1]", 443, true, "Host: [::1]\r\n"),
    ] {
        let r = request(host, port, tls, &[]);
        let n = r.write(&mut buf).unwrap();
        let text = core::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.contains(want), "{text}");
        // And a server parses it back.
        let Status::Complete(req) = parse_request(&buf[..n]).unwrap() else {
            panic!()
        };
        assert_eq!(req.len, n);
        assert_eq!(req.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(req.path, "/v1/data-channel/s-1?role=publish_subscribe");
        assert_eq!(req.header("host"), Some(&want[6..want.len() - 2]));
    }
}

const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n\
    Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept:s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n\r\n";

#[test]
fn response_incremental_and_leftover() {
    let key = b"dGhlIHNhbXBsZSBub25jZQ==";
    let mut input = RESPONSE.to_vec();
    input.extend_from_slice(HELLO_UNMASKED);
    for k in 0..RESPONSE.len() {
        assert_eq!(
            parse_response(&input[..k], key),
            Ok(Status::Partial),
            "prefix {k}"
        );
    }
    for k in RESPONSE.len()..=input.len() {
        assert_eq!(
            parse_response(&input[..k], key),
            Ok(Status::Complete(RESPONSE.len()))
        );
    }
    let mut c = WebSocket::<16>::new(Role::Client);
    assert_eq!(
        feed(&mut c, &[&input[RESPONSE.len()..]]).unwrap(),
        [Seen::Text("Hello".into())]
    );
    // Our own server's answer passes too.
    let mut buf = [0u8; 200];
    let n = handshake::write_response(&mut buf, "dGhlIHNhbXBsZSBub25jZQ==").unwrap();
    assert_eq!(parse_response(&buf[..n], key), Ok(Status::Complete(n)));
}

#[test]
fn response_errors() {
    let key = b"dGhlIHNhbXBsZSBub25jZQ==";
    let cases: &[(&[u8], Error)] = &[
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", Error::HandshakeStatus(403)),
        (b"HTTP/1.0 101 x\r\n\r\n", Error::HandshakeMalformed),
        (b"SSH-2.0-OpenSSH", Error::HandshakeMalformed),
        (b"HTTP/1.1 1x1 x\r\n\r\n", Error::HandshakeMalformed),
        (b"HTTP/1.1 101 x\r\nbad line\r\n\r\n", Error::HandshakeMalformed),
        (b"HTTP/1.1 101 x\r\nUpgrade: websocket\nX: y\r\n\r\n", Error::HandshakeMalformed),
        (b"HTTP/1.1 101 x\r\nUp\ngrade: websocket\r\n\r\n", Error::HandshakeMalformed),
        (b"HTTP/1.1 101 x\ry\r\nA: b\r\n\r\n", Error::HandshakeMalformed),
        (b"HTTP/1.1 101\r\n\r\n", Error::HandshakeUpgrade),
        (b"HTTP/1.1 101x\r\n\r\n", Error::HandshakeMalformed),
        (b"HTTP/1.1 101 x\r\nA:\x01\r\n", Error::HandshakeMalformed),
        (
            b"HTTP/1.1 101 x\r\nConnection: upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            Error::HandshakeUpgrade,
        ),
        (
            b"HTTP/1.1 101 x\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            Error::HandshakeConnection,
        ),
        (b"HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", Error::HandshakeAccept),
        (
            b"HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOO=\r\n\r\n",
            Error::HandshakeAccept,
        ),
        (
            b"HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
            Error::HandshakeUnrequested,
        ),
    ];
    for (input, err) in cases {
        assert_eq!(
            parse_response(input, key),
            Err(*err),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn request_errors() {
    let ok = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    assert!(matches!(
        parse_request(ok.as_bytes()),
        Ok(Status::Complete(_))
    ));
    for k in 0..ok.len() {
        assert!(matches!(
            parse_request(&ok.as_bytes()[..k]),
            Ok(Status::Partial)
        ));
    }
    for (from, to, err) in [
        ("GET /", "POST /", Error::HandshakeMalformed),
        (
            "HTTP/1.1\r\nHost",
            "HTTP/1.0\r\nHost",
            Error::HandshakeRequest,
        ),
        ("Version: 13", "Version: 8", Error::HandshakeRequest),
        (
            "Upgrade: websocket",
            "Upgrade: h2c",
            Error::HandshakeUpgrade,
        ),
        (
            "Connection: Upgrade",
            "Connection: close",
            Error::HandshakeConnection,
        ),
        (
            "dGhlIHNhbXBsZSBub25jZQ==",
            "dGhlIHNhbXBsZSBub25jZQ",
            Error::HandshakeRequest,
        ),
        (
            "dGhlIHNhbXBsZSBub25jZQ==",
            "dGhlIHNhbXBsZSBub25jZR==",
            Error::HandshakeRequest,
        ),
    ] {
        let bad = ok.replace(from, to);
        assert_eq!(parse_request(bad.as_bytes()).map(|_| ()), Err(err), "{bad}");
    }
}

// ---- property: any messages, any fragmentation, any chunking ----

proptest! {
    #[test]
    fn round_trip(
        msgs in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300), 1usize..5), 1..8),
        chunk in 1usize..64,
        mask in any::<[u8; 4]>(),
        client_sends in any::<bool>(),
    ) {
        let (tx_role, rx_role) = if client_sends { (Role::Client, Role::Server) } else { (Role::Server, Role::Client) };
        let m = (tx_role == Role::Client).then_some(mask);
        let mut wire = Vec::new();
        let mut expect = Vec::new();
        let mut buf = [0u8; 1024];
        for (text, data, parts) in &msgs {
            let data: Vec<u8> = if *text { data.iter().map(|b| char::from_u32(0x20 + u32::from(*b) * 3).unwrap()).collect::<String>().into_bytes() } else { data.clone() };
            let per = data.len().div_ceil(*parts).max(1);
            let pieces: Vec<&[u8]> = if data.is_empty() { std::vec![&data[..]] } else { data.chunks(per).collect() };
            for (i, p) in pieces.iter().enumerate() {
                let op = if i > 0 { Opcode::Continuation } else if *text { Opcode::Text } else { Opcode::Binary };
                let n = encode_frame(&mut buf, i + 1 == pieces.len(), op, m, p).unwrap();
                wire.extend_from_slice(&buf[..n]);
                if i == 0 {
                    // A ping between fragments must not disturb reassembly.
                    let n = encode_frame(&mut buf, true, Opcode::Ping, m, b"x").unwrap();
                    wire.extend_from_slice(&buf[..n]);
                }
            }
            expect.push(if *text { Seen::Text(String::from_utf8(data).unwrap()) } else { Seen::Binary(data) });
        }
        let mut rx = WebSocket::<1024>::new(rx_role);
        let chunks: Vec<&[u8]> = wire.chunks(chunk).collect();
        prop_assert_eq!(feed(&mut rx, &chunks).unwrap(), expect);
        prop_assert_eq!(rx.state(), State::Open);
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), server in any::<bool>()) {
        let mut ws = WebSocket::<64>::new(if server { Role::Server } else { Role::Client });
        let _ = feed(&mut ws, &[&data]);
        let _ = transmits(&mut ws);
        let _ = parse_response(&data, b"dGhlIHNhbXBsZSBub25jZQ==");
        let _ = parse_request(&data);
    }
}
