//! The client side of a session, as a device links it: the session engine (client role, device
//! capacities), the frame codec and payload parsers it pulls in, and the WebSocket client layer.
//! Inputs come through `black_box`, so the optimiser keeps every path a real session can take.
//! `cargo size --release` measures it (see the README's footprint section). It is for measuring,
//! not running: it parks after one pass.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::hint::black_box;
use core::panic::PanicInfo;

use cortex_m_rt::entry;
use ssm_proto::session::{Config, Incoming, Session, TransmitKind};
use ssm_proto::ws::{handshake, MessageKind, Role, Status, WebSocket};
use ssm_proto::Instant;

/// Device capacities, the same as ssm-embassy's: 16 KiB window, 32 in flight, 8 reordered,
/// 4 KiB receive, 16 control frames.
type Engine = Session<16384, 32, 8, 4096, 16>;

#[entry]
fn main() -> ! {
    #[allow(unused_mut, reason = "only the kms feature changes the configuration")]
    let mut config = Config::client(black_box(1));
    // With the `kms` feature the client does KMS encryption (PROTOCOL.md §6): the data key
    // request, the challenge, sealed input and opened output.
    #[cfg(feature = "kms")]
    {
        config.encryption = ssm_proto::session::Encryption::Kms {
            require_challenge: false,
        };
    }
    let mut engine = Engine::new(config, Instant::from_millis(0));
    let mut ws: WebSocket<4096> = WebSocket::new(Role::Client);
    let mut rx = [0u8; 2048];
    let mut frame = [0u8; 4096];
    let mut out = [0u8; 4096];
    let mut app = [0u8; 1024];

    let request = handshake::ClientRequest {
        host: black_box("ssmmessages.eu-west-1.amazonaws.com"),
        port: 443,
        tls: true,
        path_and_query: black_box("/v1/data-channel/s-1?role=publish_subscribe"),
        key: black_box([7; 16]),
        headers: &[],
    };
    let n = request.write(&mut out).unwrap_or(0);
    black_box(&out[..n]);
    let key = request.key_base64();
    if let Ok(Status::Complete(_)) = handshake::parse_response(black_box(&rx[..]), &key) {
        black_box(1);
    }
    #[cfg(feature = "model")]
    {
        // The StartSession answer, as a device that calls the API parses it.
        let r = ssm_proto::model::OwnedStartSessionResponse::<512, 512>::parse(black_box(&rx[..]));
        black_box(&r);
    }
    let _ = engine.handle_connected(Instant::from_millis(1), black_box("token"));
    let mut mask = 0x1234_5678u32;
    for step in 0..black_box(4u64) {
        let now = Instant::from_millis(step * 10);
        // Bytes from the network.
        black_box(&mut rx);
        let mut input = &rx[..black_box(rx.len())];
        while !input.is_empty() {
            let Ok(used) = ws.handle_input(input) else {
                break;
            };
            input = &input[used..];
            match ws.poll_message() {
                Some(m) => {
                    let inc = match m.kind {
                        MessageKind::Text => Incoming::Text(m.data),
                        MessageKind::Binary => Incoming::Binary(m.data),
                    };
                    let _ = engine.handle_input(now, inc);
                }
                None if used == 0 => break,
                None => {}
            }
        }
        engine.handle_timeout(now);
        let _ = engine.write(now, black_box(&app[..]));
        engine.resize(black_box(80), black_box(24));
        // Bytes to the network.
        while let Ok(Some(t)) = engine.poll_transmit(now, &mut frame) {
            let kind = match t.kind {
                TransmitKind::Text => MessageKind::Text,
                TransmitKind::Binary => MessageKind::Binary,
            };
            mask = mask.rotate_left(5) ^ 0x9e37_79b9;
            if let Ok(n) = ws.write_message(&mut out, kind, &frame[..t.len], || mask.to_le_bytes())
            {
                black_box(&out[..n]);
            }
        }
        while let Ok(Some(n)) = ws.poll_transmit(&mut out, || mask.to_le_bytes()) {
            black_box(&out[..n]);
        }
        while let Some(ev) = engine.poll_event() {
            #[cfg(feature = "kms")]
            if ev == ssm_proto::session::Event::DataKeyNeeded {
                if let Some(req) = engine.data_key_request(black_box("s-1"), black_box("i-1")) {
                    black_box(req);
                }
                let _ = engine.set_data_key(now, black_box(&[3; 64]), &app[..200], [0; 12]);
            }
            black_box(ev);
        }
        while let Some((s, n)) = engine.read(&mut app) {
            black_box((s, n));
        }
        black_box(engine.poll_timeout());
        if black_box(step) == 99 {
            engine.terminate(now);
        }
    }
    black_box(&engine);
    #[cfg(feature = "api")]
    api_client(&mut out, &mut frame);
    loop {
        cortex_m::asm::wfi();
    }
}

/// What `ssm_embassy::api` runs for StartSession / ResumeSession / TerminateSession (and, with
/// `upgrade`, the signed upgrade), with inputs the optimiser cannot see through.
#[cfg(feature = "api")]
fn api_client(out: &mut [u8; 4096], body: &mut [u8; 4096]) {
    use ssm_proto::api::{self, http, Endpoint, Operation, ServiceError, StartSessionRequest};
    use ssm_proto::model::Endpoints;
    use ssm_proto::sigv4::Credentials;

    let creds = Credentials {
        access_key_id: black_box("AKIDEXAMPLE"),
        secret_access_key: black_box("secret"),
        session_token: black_box(Some("token")),
    };
    let mut host = [0u8; api::HOST_CAPACITY];
    let Ok(endpoint) = Endpoint::aws(black_box("eu-west-1"), &mut host) else {
        return;
    };
    let values = [black_box("uptime")];
    let params = [("command", &values[..])];
    let request = StartSessionRequest {
        target: black_box("i-0123456789abcdef0"),
        document_name: black_box(Some("AWS-StartNonInteractiveCommand")),
        parameters: &params,
        reason: None,
    };
    let mut json = [0u8; 512];
    let n = match black_box(0u8) {
        0 => request.emit(&mut json),
        _ => api::session_id_body(black_box("s-1"), &mut json),
    }
    .unwrap_or(0);
    let op = black_box(Operation::StartSession);
    let now = black_box(1_700_000_000);
    let n = api::write_request(&endpoint, op, &json[..n], &creds, now, out).unwrap_or(0);
    black_box(&out[..n]);

    // The answer: head, body de-framed, then the session or the error.
    let rx = black_box(&out[..]);
    let Ok(Some(head)) = http::parse_head(rx) else {
        return;
    };
    let Ok(mut dec) = api::BodyDecoder::new(&head, body.len()) else {
        return;
    };
    if dec.feed(&rx[head.len.min(rx.len())..], body).is_err() || dec.finish().is_err() {
        return;
    }
    let len = dec.len();
    let (body, scratch) = body.split_at_mut(2048);
    let body = &body[..len.min(2048)];
    match api::parse_session_answer(head.status, body, scratch, Endpoints::Aws) {
        Ok(r) => {
            #[cfg(feature = "upgrade")]
            {
                let mut auth = [0u8; 512];
                let url = r.stream_url();
                if let Ok(s) = ssm_proto::sigv4::sign_upgrade(&url, None, &creds, now, &mut auth) {
                    black_box(s.authorization);
                }
            }
            black_box(r.token());
        }
        Err(_) => {
            let e = ServiceError::parse(head.status, body);
            black_box(e.is_clock_skew(now, head.date));
        }
    }
    black_box(api::check_terminate_answer(head.status, body).is_ok());
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}
