//! Scenario tests: handshake paths, flags, exit codes, pause/resume, back-pressure, give-up,
//! duplicates, and the official client's wire habits.

use super::*;

#[test]
fn shell_handshake_and_data() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    assert_eq!(c.session_type(), Some(SessionType::StandardStream));
    assert_eq!(c.properties(), None);
    assert_eq!(c.agent_version(), Some("3.3.0.0"));
    assert_eq!(a.client_version(), Some(DEFAULT_CLIENT_VERSION));
    assert_eq!(a.peer_token(), Some(TOKEN));
    assert_eq!(c.write(at(1), b"ls\r"), Ok(3));
    assert_eq!(a.write(at(1), b"file\r\n"), Ok(6));
    exchange(&mut c, &mut a, at(2));
    assert_eq!(read_all(&mut a).0, b"ls\r");
    assert_eq!(read_all(&mut c).0, b"file\r\n");
    assert_eq!(c.unacked_bytes(), 0);
    assert_eq!(a.unacked_bytes(), 0);
}

#[test]
fn client_opens_with_text_then_answers_the_handshake() {
    let mut c = client(1);
    let mut a = agent(2, AgentHandshake::SHELL);
    assert!(
        drain(&mut c, at(0)).is_empty(),
        "nothing before a transport"
    );
    c.handle_connected(at(0), TOKEN).unwrap();
    a.handle_connected(at(0), "").unwrap();
    let open = drain(&mut c, at(0));
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].kind, TransmitKind::Text);
    let j: serde_json::Value = serde_json::from_slice(&open[0].bytes).unwrap();
    assert_eq!(j["MessageSchemaVersion"], "1.0");
    assert_eq!(j["TokenValue"], TOKEN);
    assert_eq!(j["ClientVersion"], DEFAULT_CLIENT_VERSION);
    assert!(j["RequestId"].as_str().unwrap().parse::<Uuid>().is_ok());
    assert!(j["ClientId"].as_str().unwrap().parse::<Uuid>().is_ok());
    // The token is gone from the client once sent, and never in Debug.
    assert!(!std::format!("{c:?}").contains("AAAA"));

    deliver(&mut a, at(0), &open);
    assert_eq!(events(&mut a), [Event::Opened]);
    assert_eq!(a.peer_token(), Some(TOKEN));
    let req = drain(&mut a, at(0));
    assert_eq!(req.len(), 1);
    let f = req[0].frame();
    assert_eq!(f.header.message_type, MessageType::OutputStreamData);
    assert_eq!(f.header.sequence_number, 0);
    assert_eq!(f.header.flags, 0);
    assert_eq!(f.header.payload_type, PayloadType::HandshakeRequest);
    assert_eq!(
        req[0].json()["RequestedClientActions"][0]["ActionType"],
        "SessionType"
    );

    deliver(&mut c, at(5), &req);
    let out = drain(&mut c, at(5));
    assert_eq!(out.len(), 2, "ack + response");
    let ack = out[0].frame();
    assert_eq!(ack.header.message_type, MessageType::Acknowledge);
    let resp = out[1].frame();
    assert_eq!(resp.header.message_type, MessageType::InputStreamData);
    assert_eq!(resp.header.sequence_number, 0);
    assert_eq!(resp.header.payload_type, PayloadType::HandshakeResponse);
    let j = out[1].json();
    assert_eq!(j["ClientVersion"], DEFAULT_CLIENT_VERSION);
    assert_eq!(j["ProcessedClientActions"][0]["ActionType"], "SessionType");
    assert_eq!(j["ProcessedClientActions"][0]["ActionStatus"], 1);
    assert!(
        events(&mut c).is_empty(),
        "no event until HandshakeComplete"
    );
    assert_eq!(c.write(at(5), b"x"), Err(WriteError::Blocked));

    deliver(&mut a, at(10), &out);
    assert_eq!(events(&mut a), [Event::HandshakeComplete, Event::Writable]);
    let complete = drain(&mut a, at(10));
    assert_eq!(complete.len(), 2, "ack + complete");
    assert_eq!(complete[1].frame().header.sequence_number, 1);
    assert_eq!(
        complete[1].frame().header.payload_type,
        PayloadType::HandshakeComplete
    );
    deliver(&mut c, at(15), &complete);
    assert_eq!(events(&mut c), [Event::HandshakeComplete, Event::Writable]);
    assert_eq!(c.write(at(15), b"x"), Ok(1));
}
