//! Interop: our sans-IO WebSocket against tungstenite, both directions, over loopback TCP.
#![allow(
    clippy::result_large_err,
    reason = "tungstenite's handshake callback returns its own large error"
)]

use core::time::Duration;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use ssm_proto::ws::frame::{encode_frame, Opcode};
use ssm_proto::ws::handshake::{self, parse_request, parse_response, ClientRequest};
use ssm_proto::ws::{MessageKind, Role, State, Status, WebSocket};
use tungstenite::Message as TMessage;

/// A poor RNG for masks: deterministic, different every call.
fn masks() -> impl FnMut() -> [u8; 4] {
    let mut x = 0x1234_5678u32;
    move || {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        x.to_le_bytes()
    }
}

/// Our endpoint over a blocking stream.
struct Ours {
    tcp: TcpStream,
    ws: Box<WebSocket<300_000>>,
    pending: Vec<u8>,
    mask: Box<dyn FnMut() -> [u8; 4] + Send>,
}

#[derive(Debug, PartialEq)]
enum Got {
    Msg(MessageKind, Vec<u8>),
    Closed,
}

impl Ours {
    fn flush_control(&mut self) {
        let mut buf = [0u8; 200];
        while let Some(n) = self.ws.poll_transmit(&mut buf, &mut self.mask).unwrap() {
            self.tcp.write_all(&buf[..n]).unwrap();
        }
    }

    fn send(&mut self, kind: MessageKind, data: &[u8]) {
        let mut buf = vec![0u8; data.len() + 14];
        let n = self
            .ws
            .write_message(&mut buf, kind, data, &mut self.mask)
            .unwrap();
        self.tcp.write_all(&buf[..n]).unwrap();
    }

    /// Next message, answering control frames on the way; `Closed` at the peer's close.
    fn recv(&mut self) -> Got {
        loop {
            let n = self.ws.handle_input(&self.pending).unwrap();
            self.pending.drain(..n);
            if let Some(m) = self.ws.poll_message() {
                return Got::Msg(m.kind, m.data.to_vec());
            }
            self.flush_control();
            if self.ws.close_frame().is_some() {
                return Got::Closed;
            }
            let mut buf = [0u8; 8192];
            let n = self.tcp.read(&mut buf).unwrap();
            assert!(n > 0, "eof before close");
            self.pending.extend_from_slice(&buf[..n]);
        }
    }
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn our_client_to_tungstenite_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut ws =
            tungstenite::accept_hdr(s, |req: &tungstenite::handshake::server::Request, resp| {
                assert_eq!(req.uri().path(), "/v1/data-channel/s-1");
                assert_eq!(req.uri().query(), Some("role=publish_subscribe"));
                assert_eq!(req.headers()["x-amz-date"], "20261126T000000Z");
                assert_eq!(req.headers()["host"], format!("127.0.0.1:{port}"));
                Ok(resp)
            })
            .unwrap();
        let mut echoed = 0;
        loop {
            match ws.read() {
                Ok(m @ (TMessage::Text(_) | TMessage::Binary(_))) => {
                    ws.send(m).unwrap();
                    echoed += 1;
                }
                Ok(TMessage::Close(_)) => {}
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("tungstenite server: {e}"),
            }
        }
        echoed
    });

    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let headers = [("X-Amz-Date", "20261126T000000Z")];
    let req = ClientRequest {
        host: "127.0.0.1",
        port,
        tls: false,
        path_and_query: "/v1/data-channel/s-1?role=publish_subscribe",
        key: *b"0123456789abcdef",
        headers: &headers,
    };
    let mut buf = [0u8; 512];
    let n = req.write(&mut buf).unwrap();
    tcp.write_all(&buf[..n]).unwrap();
    let mut head = Vec::new();
    let used = loop {
        let mut b = [0u8; 64];
        let k = tcp.read(&mut b).unwrap();
        assert!(k > 0);
        head.extend_from_slice(&b[..k]);
        if let Status::Complete(n) = parse_response(&head, &req.key_base64()).unwrap() {
            break n;
        }
    };
    let mut ours = Ours {
        tcp,
        ws: Box::new(WebSocket::new(Role::Client)),
        pending: head[used..].to_vec(),
        mask: Box::new(masks()),
    };

    ours.send(MessageKind::Text, "héllo".as_bytes());
    assert_eq!(
        ours.recv(),
        Got::Msg(MessageKind::Text, "héllo".as_bytes().to_vec())
    );
    let big = payload(200_000);
    ours.send(MessageKind::Binary, &big);
    assert_eq!(ours.recv(), Got::Msg(MessageKind::Binary, big.clone()));
    ours.send(MessageKind::Binary, &[]);
    assert_eq!(ours.recv(), Got::Msg(MessageKind::Binary, vec![]));

    // A fragmented message with a ping inside, built with the frame encoder.
    let mut wire = Vec::new();
    let mut m = masks();
    for (fin, op, p) in [
        (false, Opcode::Text, &b"frag"[..]),
        (true, Opcode::Ping, b"are you there"),
        (false, Opcode::Continuation, b"men"),
        (true, Opcode::Continuation, b"ted"),
    ] {
        let mut f = [0u8; 64];
        let n = encode_frame(&mut f, fin, op, Some(m()), p).unwrap();
        wire.extend_from_slice(&f[..n]);
    }
    ours.tcp.write_all(&wire).unwrap();
    // tungstenite answers the ping with a pong (which we accept silently), then echoes.
    assert_eq!(
        ours.recv(),
        Got::Msg(MessageKind::Text, b"fragmented".to_vec())
    );

    ours.ws.close(1000, "done").unwrap();
    ours.flush_control();
    assert_eq!(ours.ws.state(), State::Closing);
    assert_eq!(ours.recv(), Got::Closed);
    assert_eq!(ours.ws.state(), State::Closed);
    let close = ours.ws.close_frame().unwrap();
    assert_eq!(close.code, 1000);
    // The server closes TCP after the handshake.
    let mut b = [0u8; 16];
    assert_eq!(ours.tcp.read(&mut b).unwrap(), 0);
    assert_eq!(server.join().unwrap(), 4);
}

#[test]
fn tungstenite_client_to_our_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = Vec::new();
        let (used, key, auth) = loop {
            let mut b = [0u8; 100];
            let k = tcp.read(&mut b).unwrap();
            assert!(k > 0);
            head.extend_from_slice(&b[..k]);
            if let Status::Complete(r) = parse_request(&head).unwrap() {
                assert_eq!(r.path, "/v1/x?a=b");
                break (
                    r.len,
                    r.key.to_owned(),
                    r.header("authorization").map(str::to_owned),
                );
            }
        };
        assert_eq!(auth.as_deref(), Some("AWS4-HMAC-SHA256 test"));
        let mut buf = [0u8; 200];
        let n = handshake::write_response(&mut buf, &key).unwrap();
        tcp.write_all(&buf[..n]).unwrap();
        let mut ours = Ours {
            tcp,
            ws: Box::new(WebSocket::new(Role::Server)),
            pending: head[used..].to_vec(),
            mask: Box::new(|| unreachable!("servers do not mask")),
        };
        let mut n = 0;
        while let Got::Msg(kind, data) = ours.recv() {
            ours.send(kind, &data);
            n += 1;
        }
        assert_eq!(ours.ws.state(), State::Closed);
        (
            n,
            ours.ws.close_frame().map(|c| (c.code, c.reason.to_owned())),
        )
    });

    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = tungstenite::handshake::client::Request::builder()
        .uri(format!("ws://127.0.0.1:{port}/v1/x?a=b"))
        .header("Host", format!("127.0.0.1:{port}"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .header("Authorization", "AWS4-HMAC-SHA256 test")
        .body(())
        .unwrap();
    let (mut ws, resp) = tungstenite::client(req, tcp).unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(TMessage::text("héllo")).unwrap();
    assert_eq!(ws.read().unwrap(), TMessage::text("héllo"));
    let big = payload(250_000);
    ws.send(TMessage::binary(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), TMessage::binary(big));
    ws.send(TMessage::Ping(b"p".to_vec().into())).unwrap();
    ws.send(TMessage::text("after ping")).unwrap();
    assert_eq!(ws.read().unwrap(), TMessage::Pong(b"p".to_vec().into()));
    assert_eq!(ws.read().unwrap(), TMessage::text("after ping"));
    ws.close(Some(tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Away,
        reason: "bye".into(),
    }))
    .unwrap();
    loop {
        match ws.read() {
            Ok(TMessage::Close(Some(c))) => {
                assert_eq!(u16::from(c.code), 1001);
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(server.join().unwrap(), (3, Some((1001, "bye".to_owned()))));
}
