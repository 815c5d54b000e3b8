//! Scenario tests: handshake paths, flags, exit codes, pause/resume, back-pressure, give-up,
//! duplicates, and the official client's wire habits.

use std::vec::Vec;

use super::*;
use crate::wire::Header;

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

/// A frame from the peer, as the official serializer would write it.
pub(super) fn peer_frame(
    t: MessageType,
    seq: i64,
    id: Uuid,
    pt: PayloadType,
    payload: &[u8],
) -> Msg {
    let repr = FrameRepr {
        header: Header {
            message_type: t,
            schema_version: 1,
            created_date: 1_700_000_000_000,
            sequence_number: seq,
            flags: 0,
            message_id: id,
            payload_type: pt,
        },
        payload,
    };
    let mut bytes = vec![0u8; repr.buffer_len()];
    repr.emit(&mut bytes).unwrap();
    Msg {
        kind: TransmitKind::Binary,
        bytes,
    }
}

fn id(n: u8) -> Uuid {
    Uuid::from_random_bytes([n; 16])
}

/// The acknowledgements in `msgs`, as (acknowledged type, seq).
fn acks(msgs: &[Msg]) -> Vec<(std::string::String, i64)> {
    msgs.iter()
        .filter(|m| m.kind == TransmitKind::Binary)
        .filter(|m| m.frame().header.message_type == MessageType::Acknowledge)
        .map(|m| {
            let j = m.json();
            (
                j["AcknowledgedMessageType"].as_str().unwrap().into(),
                j["AcknowledgedMessageSequenceNumber"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The sequenced stream messages in `msgs`, as (seq, payload type, payload).
fn data(msgs: &[Msg]) -> Vec<(i64, PayloadType, Vec<u8>)> {
    msgs.iter()
        .filter(|m| m.kind == TransmitKind::Binary)
        .map(|m| m.frame())
        .filter(|f| f.header.message_type.is_stream_data())
        .map(|f| {
            (
                f.header.sequence_number,
                f.header.payload_type,
                f.payload.to_vec(),
            )
        })
        .collect()
}

#[test]
fn port_session_exposes_properties() {
    let props = r#"{"portNumber":"22","type":"LocalPortForwarding","localPortNumber":"0"}"#;
    let h = AgentHandshake {
        session_type: SessionType::Port,
        properties: props,
        customer_message: "Port 22 opened",
        ..AgentHandshake::SHELL
    };
    let (c, _a) = established(h);
    assert_eq!(c.session_type(), Some(SessionType::Port));
    assert_eq!(c.properties(), Some(props));
    let p = payload::PortProperties::parse(c.properties().unwrap().as_bytes()).unwrap();
    assert_eq!(p.port_number, Some(22));
    assert_eq!(p.local_port_number, Some(0));
    assert!(p.port_type.eq_str("LocalPortForwarding"));
    assert_eq!(c.customer_message(), "Port 22 opened");
}

#[test]
fn command_sessions_handshake() {
    for t in [
        SessionType::InteractiveCommands,
        SessionType::NonInteractiveCommands,
    ] {
        let props = r#"{"linux":{"commands":"echo hi","separateOutputStream":true}}"#;
        let h = AgentHandshake {
            session_type: t,
            properties: props,
            ..AgentHandshake::SHELL
        };
        let (c, _a) = established(h);
        assert_eq!(c.session_type(), Some(t));
        assert_eq!(c.properties(), Some(props));
        assert_eq!(c.kms_key_id(), None);
    }
}

#[test]
fn kms_is_answered_unsupported_and_the_agent_refuses() {
    let h = AgentHandshake {
        kms_key_id: Some("arn:aws:kms:us-east-1:111122223333:key/abcd"),
        ..AgentHandshake::SHELL
    };
    let mut c = client(1);
    let mut a = agent(2, h);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    let open = drain(&mut c, at(0));
    deliver(&mut a, at(0), &open);
    assert_eq!(events(&mut a), [Event::Opened]);
    let req = drain(&mut a, at(0));
    assert_eq!(
        req[0].json()["RequestedClientActions"][1]["ActionType"],
        "KMSEncryption"
    );
    deliver(&mut c, at(1), &req);
    assert_eq!(
        c.kms_key_id(),
        Some("arn:aws:kms:us-east-1:111122223333:key/abcd")
    );
    let out = drain(&mut c, at(1));
    let resp = out
        .iter()
        .find(|m| m.frame().header.payload_type == PayloadType::HandshakeResponse)
        .unwrap()
        .json();
    let kms = &resp["ProcessedClientActions"][1];
    assert_eq!(kms["ActionType"], "KMSEncryption");
    assert_eq!(kms["ActionStatus"], 3, "unsupported");
    assert_eq!(resp["ProcessedClientActions"][0]["ActionStatus"], 1);
    deliver(&mut a, at(2), &out);
    assert_eq!(
        events(&mut a).last(),
        Some(&Event::Closed(CloseReason::HandshakeFailed))
    );
    exchange(&mut c, &mut a, at(3));
    assert_eq!(events(&mut c), [Event::Closed(CloseReason::ChannelClosed)]);
    assert_eq!(
        c.close_message(),
        "the client did not set up KMS encryption"
    );
}

#[test]
fn flags_reach_the_agent_in_order() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut a);
    for f in [
        Flag::DisconnectToPort,
        Flag::ConnectToPortError,
        Flag::TerminateSession,
    ] {
        c.send_flag(f).unwrap();
    }
    let out = drain(&mut c, at(1));
    let d = data(&out);
    assert_eq!(d.len(), 3);
    assert!(d.iter().all(|(_, pt, _)| *pt == PayloadType::Flag));
    assert_eq!(d[0].2, [0, 0, 0, 1]);
    assert_eq!(d[1].2, [0, 0, 0, 3]);
    assert_eq!(d[2].2, [0, 0, 0, 2]);
    deliver(&mut a, at(1), &out);
    assert_eq!(
        events(&mut a),
        [
            Event::Flag(Flag::DisconnectToPort),
            Event::Flag(Flag::ConnectToPortError),
            Event::Flag(Flag::TerminateSession)
        ]
    );
    assert_eq!(
        a.send_flag(Flag::DisconnectToPort),
        Err(WriteError::WrongRole)
    );
}

#[test]
fn terminate_closes_once_the_flag_is_acknowledged() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut c);
    c.write(at(1), b"exit").unwrap();
    c.terminate(at(1));
    assert_eq!(c.write(at(1), b"more"), Err(WriteError::Closed));
    let out = drain(&mut c, at(1));
    let d = data(&out);
    assert_eq!(d[0].2, b"exit");
    assert_eq!(
        (d[1].1, &d[1].2[..]),
        (PayloadType::Flag, &[0, 0, 0, 2][..])
    );
    assert!(!c.is_closed());
    deliver(&mut a, at(2), &out);
    // The flag comes in stream order: after the bytes before it are read.
    assert!(!events(&mut a).contains(&Event::Flag(Flag::TerminateSession)));
    assert_eq!(read_all(&mut a).0, b"exit");
    assert!(events(&mut a).contains(&Event::Flag(Flag::TerminateSession)));
    let acks = drain(&mut a, at(2));
    deliver(&mut c, at(3), &acks);
    assert_eq!(events(&mut c), [Event::Closed(CloseReason::Terminated)]);
    assert!(drain(&mut c, at(4)).is_empty());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn exit_code_and_stderr_follow_the_output() {
    let h = AgentHandshake {
        session_type: SessionType::NonInteractiveCommands,
        ..AgentHandshake::SHELL
    };
    let (mut c, mut a) = established(h);
    events(&mut c);
    events(&mut a);
    a.write(at(1), b"out").unwrap();
    a.write_stderr(at(1), b"err").unwrap();
    a.send_exit_code(at(1), 3).unwrap();
    a.close_channel(at(1), "");
    assert_eq!(c.write_stderr(at(1), b"x"), Err(WriteError::WrongRole));
    let out = drain(&mut a, at(1));
    let d = data(&out);
    assert_eq!(d[1].1, PayloadType::StdErr);
    assert_eq!(
        (d[2].1, &d[2].2[..]),
        (PayloadType::ExitCode, &b"EXIT_CODE: 3"[..])
    );
    deliver(&mut c, at(2), &out);
    assert_eq!(events(&mut c), [Event::Readable, Event::ExitCode(3)]);
    assert_eq!(read_all(&mut c), (b"out".to_vec(), b"err".to_vec()));
    assert_eq!(c.exit_code(), Some(3));
    // The agent sends channel_closed only once all of it is acknowledged.
    let back = drain(&mut c, at(2));
    deliver(&mut a, at(3), &back);
    exchange(&mut c, &mut a, at(3));
    assert_eq!(events(&mut c), [Event::Closed(CloseReason::ChannelClosed)]);
    assert_eq!(events(&mut a), [Event::Closed(CloseReason::Local)]);
}

#[test]
fn resize_sends_the_latest_size_after_the_handshake() {
    let mut c = client(1);
    let mut a = agent(2, AgentHandshake::SHELL);
    c.resize(80, 24);
    c.resize(120, 40);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    exchange(&mut c, &mut a, at(0));
    assert!(events(&mut a).contains(&Event::Resized {
        cols: 120,
        rows: 40
    }));
    assert_eq!(a.terminal_size(), Some((120, 40)));
    c.resize(100, 30);
    let out = drain(&mut c, at(1));
    let d = data(&out);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1, PayloadType::Size);
    assert_eq!(d[0].2, br#"{"cols":100,"rows":30}"#);
}

#[test]
fn pause_and_resume_publication() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut c);
    a.pause_publication().unwrap();
    let p = drain(&mut a, at(1));
    assert_eq!(
        p[0].frame().header.message_type,
        MessageType::PausePublication
    );
    deliver(&mut c, at(1), &p);
    assert_eq!(events(&mut c), [Event::PublicationPaused]);
    assert!(c.is_paused());
    // Writes are taken but nothing goes out, and no retransmission timer runs.
    assert_eq!(c.write(at(2), b"typed while paused"), Ok(18));
    assert!(drain(&mut c, at(2)).is_empty());
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(at(600_000));
    assert!(!c.is_closed(), "no give-up while paused");
    a.start_publication().unwrap();
    let r = drain(&mut a, at(600_001));
    deliver(&mut c, at(600_001), &r);
    assert_eq!(events(&mut c), [Event::PublicationResumed]);
    let out = drain(&mut c, at(600_001));
    assert_eq!(data(&out)[0].2, b"typed while paused");
}

#[test]
fn full_window_blocks_then_writable() {
    let mut cc = Config::client(1);
    cc.window = 3000;
    cc.chunk_size = 1000;
    let mut c = Box::new(Small::new(cc, at(0)));
    let mut a = agent(2, AgentHandshake::SHELL);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    exchange(&mut c, &mut a, at(0));
    events(&mut c);
    let data_in = super::sim::bytes(9, 10_000);
    // The HandshakeResponse is acknowledged: the whole window is free.
    assert_eq!(c.write(at(1), &data_in), Ok(3000));
    assert_eq!(c.unacked_bytes(), 3000);
    assert_eq!(c.write(at(1), &data_in[3000..]), Err(WriteError::Blocked));
    let out = drain(&mut c, at(1));
    assert_eq!(data(&out).len(), 3, "cut at chunk_size");
    assert!(events(&mut c).is_empty());
    deliver(&mut a, at(2), &out[..1]);
    let ack = drain(&mut a, at(2));
    deliver(&mut c, at(3), &ack);
    assert_eq!(events(&mut c), [Event::Writable]);
    assert_eq!(c.write(at(3), &data_in[3000..]), Ok(1000));
    // Nothing was evicted: the agent gets every byte, in order.
    deliver(&mut a, at(4), &out[1..]);
    exchange(&mut c, &mut a, at(5));
    assert_eq!(read_all(&mut a).0, &data_in[..4000]);
}

#[test]
fn gives_up_after_five_minutes_probing_a_silent_agent() {
    let (mut c, _a) = established(AgentHandshake::SHELL);
    events(&mut c);
    let t0 = 1000;
    c.write(at(t0), b"one").unwrap();
    c.write(at(t0), b"two").unwrap();
    let first = drain(&mut c, at(t0));
    assert_eq!(data(&first).len(), 2);
    // Nothing is acknowledged from here on: the agent is gone.
    let rto = c.rto().total_millis();
    assert_eq!(c.poll_timeout(), Some(at(t0 + rto)));
    let mut now = t0;
    let mut copies = Vec::new();
    while let Some(t) = c.poll_timeout() {
        now = t.total_millis();
        c.handle_timeout(t);
        copies.extend(data(&drain(&mut c, t)).iter().map(|d| d.0));
        if c.is_closed() {
            break;
        }
    }
    assert_eq!(now, t0 + 5 * 60 * 1000);
    assert_eq!(events(&mut c), [Event::Closed(CloseReason::GaveUp)]);
    assert_eq!(c.close_reason(), Some(CloseReason::GaveUp));
    // Only the oldest went out again, as a probe; a silent peer is not flooded.
    let oldest = data(&first)[0].0;
    assert!(
        copies.len() >= 5 && copies.iter().all(|&s| s == oldest),
        "{copies:?}"
    );
}

#[test]
fn once_the_agent_answers_every_expired_message_goes_out_again() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut c);
    events(&mut a);
    let t0 = 1000;
    let mut sent = Vec::new();
    for i in 0..8u8 {
        c.write(at(t0), &[i; 10]).unwrap();
        sent.extend_from_slice(&[i; 10]);
    }
    // All eight are lost.
    assert_eq!(data(&drain(&mut c, at(t0))).len(), 8);
    let rto = c.rto().total_millis();
    c.handle_timeout(at(t0 + rto));
    let probe = drain(&mut c, at(t0 + rto));
    assert_eq!(data(&probe).len(), 1);
    // The probe arrives; its acknowledgement lets the others go, two per acknowledgement,
    // until all have gone out again, and the agent has every byte in order.
    deliver(&mut a, at(t0 + rto + 1), &probe);
    let mut now = t0 + rto + 2;
    for _ in 0..50 {
        exchange(&mut c, &mut a, at(now));
        if c.unacked_bytes() == 0 {
            break;
        }
        now = c
            .poll_timeout()
            .expect("a deadline while unacknowledged")
            .total_millis();
        c.handle_timeout(at(now));
    }
    assert_eq!(read_all(&mut a).0, sent);
    assert_eq!(c.stats().retransmits, 8);
    assert_eq!(c.unacked_bytes(), 0);
}

#[test]
fn timeouts_back_off_while_the_peer_is_silent() {
    let (mut c, _a) = established(AgentHandshake::SHELL);
    events(&mut c);
    let t0 = 1000;
    c.write(at(t0), b"one").unwrap();
    c.write(at(t0), b"two").unwrap();
    drain(&mut c, at(t0));
    let rto = c.rto().total_millis();
    // Each silent timeout sends the oldest alone and doubles the next, four times.
    let mut last = t0;
    let mut gaps = Vec::new();
    while let Some(t) = c.poll_timeout() {
        if t.total_millis() > t0 + 60_000 {
            break;
        }
        c.handle_timeout(t);
        assert_eq!(data(&drain(&mut c, t)).len(), 1);
        gaps.push(t.total_millis() - last);
        last = t.total_millis();
    }
    let want: Vec<u64> = (0..gaps.len()).map(|k| rto << k.min(4)).collect();
    assert_eq!(gaps, want);
    assert!(gaps.len() >= 6);
    // A reconnect starts the timeouts afresh.
    c.handle_transport_closed(at(last + 1));
    c.handle_connected(at(last + 2), TOKEN).unwrap();
    let resent = drain(&mut c, at(last + 2));
    assert_eq!(data(&resent).len(), 2);
    assert_eq!(c.poll_timeout(), Some(at(last + 2 + rto)));
}

#[test]
fn duplicates_are_reacked_and_delivered_once() {
    let mut a = agent(2, AgentHandshake::SHELL);
    a.handle_connected(at(0), "").unwrap();
    let mut c = client(1);
    c.handle_connected(at(0), TOKEN).unwrap();
    deliver(&mut a, at(0), &drain(&mut c, at(0)));
    events(&mut a);
    let m0 = peer_frame(
        MessageType::InputStreamData,
        0,
        id(1),
        PayloadType::Output,
        b"a",
    );
    let m1 = peer_frame(
        MessageType::InputStreamData,
        1,
        id(2),
        PayloadType::Output,
        b"b",
    );
    let m2 = peer_frame(
        MessageType::InputStreamData,
        2,
        id(3),
        PayloadType::Output,
        b"c",
    );
    // Out of order, with duplicates before and after delivery.
    deliver(
        &mut a,
        at(1),
        &[
            m2.clone(),
            m2.clone(),
            m0.clone(),
            m0.clone(),
            m1.clone(),
            m2.clone(),
        ],
    );
    let out = drain(&mut a, at(1));
    let got = acks(&out);
    // Each copy is acknowledged, but a copy whose acknowledgement still waits in the queue adds
    // none: the one queued answers it.
    let want: Vec<(std::string::String, i64)> = [2, 0, 1]
        .iter()
        .map(|&s| ("input_stream_data".into(), s))
        .collect();
    assert_eq!(
        got, want,
        "every copy acknowledged, none twice in one queue"
    );
    assert_eq!(read_all(&mut a).0, b"abc");
    assert_eq!(a.stats().duplicates, 3);
    // Still re-acknowledged long after delivery (the official client's issue #139).
    deliver(&mut a, at(2), &[m1]);
    assert_eq!(
        acks(&drain(&mut a, at(2))),
        [("input_stream_data".into(), 1)]
    );
    assert_eq!(read_all(&mut a).0, b"");
}

#[test]
fn too_far_ahead_is_dropped_unacknowledged() {
    let (mut c, _a) = established(AgentHandshake::SHELL);
    // Small holds 8 out-of-order messages; the next expected from the agent is 2.
    let far = peer_frame(
        MessageType::OutputStreamData,
        2 + 8,
        id(9),
        PayloadType::Output,
        b"x",
    );
    deliver(&mut c, at(1), &[far]);
    assert!(acks(&drain(&mut c, at(1))).is_empty());
    assert_eq!(c.stats().dropped_unacked, 1);
    let near = peer_frame(
        MessageType::OutputStreamData,
        2 + 7,
        id(8),
        PayloadType::Output,
        b"y",
    );
    deliver(&mut c, at(1), &[near]);
    assert_eq!(acks(&drain(&mut c, at(1))).len(), 1);
}

#[test]
fn bad_frames_are_dropped_and_counted() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    a.write(at(1), b"hello").unwrap();
    let mut out = drain(&mut a, at(1));
    let good = out.clone();
    let last = out[0].bytes.len() - 1;
    out[0].bytes[last] ^= 1;
    assert_eq!(
        c.handle_input(at(2), out[0].incoming()),
        Err(Error::Frame(crate::wire::Error::DigestMismatch))
    );
    assert_eq!(
        c.handle_input(at(2), Incoming::Binary(&[0u8; 10])),
        Err(Error::Frame(crate::wire::Error::Truncated))
    );
    assert_eq!(c.stats().bad_input, 2);
    assert!(acks(&drain(&mut c, at(2))).is_empty());
    assert!(!c.is_closed());
    deliver(&mut c, at(3), &good);
    assert_eq!(read_all(&mut c).0, b"hello");
}

#[test]
fn unreadable_handshake_request_is_fatal() {
    let mut c = client(1);
    c.handle_connected(at(0), TOKEN).unwrap();
    drain(&mut c, at(0));
    let bad = peer_frame(
        MessageType::OutputStreamData,
        0,
        id(1),
        PayloadType::HandshakeRequest,
        b"{not json",
    );
    let e = c.handle_input(at(1), bad.incoming()).unwrap_err();
    assert!(e.is_fatal());
    assert_eq!(
        events(&mut c),
        [Event::Closed(CloseReason::ProtocolViolation)]
    );
}

#[test]
fn reconnect_resends_open_and_every_unacknowledged_message() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut c);
    events(&mut a);
    c.write(at(1), b"lost-1").unwrap();
    c.write(at(1), b"lost-2").unwrap();
    let lost = drain(&mut c, at(1));
    assert_eq!(data(&lost).len(), 2);
    c.handle_transport_closed(at(2));
    a.handle_transport_closed(at(2));
    assert!(drain(&mut c, at(2)).is_empty());
    c.write(at(3), b"queued").unwrap();
    a.handle_connected(at(10), "").unwrap();
    c.handle_connected(at(10), "second-token").unwrap();
    let out = drain(&mut c, at(10));
    assert_eq!(out[0].kind, TransmitKind::Text);
    let j: serde_json::Value = serde_json::from_slice(&out[0].bytes).unwrap();
    assert_eq!(j["TokenValue"], "second-token");
    let d = data(&out[1..]);
    assert_eq!(
        d.iter().map(|x| (x.0, x.2.clone())).collect::<Vec<_>>(),
        [
            (1, b"lost-1".to_vec()),
            (2, b"lost-2".to_vec()),
            (3, b"queued".to_vec())
        ]
    );
    deliver(&mut a, at(11), &out);
    assert_eq!(events(&mut a), [Event::Opened, Event::Readable]);
    assert_eq!(a.peer_token(), Some("second-token"));
    assert_eq!(read_all(&mut a).0, b"lost-1lost-2queued");
    exchange(&mut c, &mut a, at(12));
    assert_eq!(c.unacked_bytes(), 0);
    assert_eq!(c.stats().retransmits, 2);
}

#[test]
fn agent_waits_for_open_after_reconnect_and_answers_closed_sessions() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    a.close_channel(at(1), "Session terminated");
    let cc = drain(&mut a, at(1));
    // Lost on a cut: the client reconnects, the agent says it again.
    a.handle_transport_closed(at(2));
    c.handle_transport_closed(at(2));
    assert_eq!(cc.len(), 1);
    a.handle_connected(at(3), "").unwrap();
    assert!(
        drain(&mut a, at(3)).is_empty(),
        "nothing before OpenDataChannelInput"
    );
    c.handle_connected(at(3), TOKEN).unwrap();
    exchange(&mut c, &mut a, at(3));
    assert_eq!(c.close_reason(), Some(CloseReason::ChannelClosed));
    assert_eq!(c.close_message(), "Session terminated");
    // While the transport stays up, the closed agent repeats itself every max_rto.
    assert_eq!(a.poll_timeout(), Some(at(1003)));
}

#[test]
fn created_date_follows_set_unix_time() {
    let (mut c, _a) = established(AgentHandshake::SHELL);
    c.set_unix_time(at(100), 1_764_000_000_000);
    c.write(at(150), b"x").unwrap();
    let out = drain(&mut c, at(400));
    assert_eq!(out[0].frame().header.created_date, 1_764_000_000_050);
}

#[test]
fn official_ack_shape() {
    // For every acknowledge vector of the official client: acknowledging a message with that
    // id and type yields the same payload bytes (sequence number aside), with the official
    // header habits: type `acknowledge`, sequence 0, flags 3, payload type 0, schema 1.
    let v: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/vectors/frames.json"
    )))
    .unwrap();
    let mut checked = 0;
    for o in v.as_array().unwrap() {
        if o["message_type"] != "acknowledge" {
            continue;
        }
        let payload = hex::decode(o["payload_hex"].as_str().unwrap()).unwrap();
        let j: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let acked_type = j["AcknowledgedMessageType"].as_str().unwrap();
        let acked_id: Uuid = j["AcknowledgedMessageId"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let seq = j["AcknowledgedMessageSequenceNumber"].as_i64().unwrap();
        let (mut s, t) = if acked_type == "input_stream_data" {
            let mut a = agent(2, AgentHandshake::SHELL);
            a.handle_connected(at(0), "").unwrap();
            let mut c = client(1);
            c.handle_connected(at(0), TOKEN).unwrap();
            deliver(&mut a, at(0), &drain(&mut c, at(0)));
            assert_eq!(events(&mut a), [Event::Opened]);
            drain(&mut a, at(0));
            (a, MessageType::InputStreamData)
        } else {
            let mut c = client(1);
            c.handle_connected(at(0), TOKEN).unwrap();
            drain(&mut c, at(0));
            (c, MessageType::OutputStreamData)
        };
        let m = peer_frame(t, 0, acked_id, PayloadType::Output, b"x");
        deliver(&mut s, at(1), &[m]);
        let out = drain(&mut s, at(1));
        assert_eq!(out.len(), 1);
        let f = out[0].frame();
        assert_eq!(f.header.message_type, MessageType::Acknowledge);
        assert_eq!(f.header.sequence_number, 0);
        assert_eq!(f.header.flags, 3);
        assert_eq!(f.header.payload_type, PayloadType::Null);
        assert_eq!(f.header.schema_version, 1);
        let official = std::string::String::from_utf8(payload.clone())
            .unwrap()
            .replace(
                &std::format!("\"AcknowledgedMessageSequenceNumber\":{seq}"),
                "\"AcknowledgedMessageSequenceNumber\":0",
            );
        assert_eq!(core::str::from_utf8(f.payload).unwrap(), official);
        checked += 1;
    }
    assert!(checked >= 10, "{checked}");
}

#[test]
fn data_frames_follow_the_official_habits() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    c.write(at(1), b"ab").unwrap();
    a.write(at(1), b"cd").unwrap();
    let from_c = drain(&mut c, at(1));
    let from_a = drain(&mut a, at(1));
    let fc = from_c[0].frame();
    let fa = from_a[0].frame();
    assert_eq!(fc.header.message_type, MessageType::InputStreamData);
    assert_eq!(fa.header.message_type, MessageType::OutputStreamData);
    for f in [fc, fa] {
        assert_eq!(f.header.flags, 0);
        assert_eq!(f.header.schema_version, 1);
        assert_eq!(f.header.payload_type, PayloadType::Output);
        // Sequence numbers continue after the handshake messages (0: request/response).
    }
    assert_eq!(fc.header.sequence_number, 1);
    assert_eq!(fa.header.sequence_number, 2);
    assert_ne!(fc.header.message_id, fa.header.message_id);
}

#[test]
fn same_seed_same_frames() {
    let run = || {
        let (mut c, mut a) = established(AgentHandshake::SHELL);
        c.write(at(1), b"x").unwrap();
        a.write(at(1), b"y").unwrap();
        let mut all = drain(&mut c, at(1));
        all.extend(drain(&mut a, at(1)));
        all
    };
    assert_eq!(run(), run());
}

#[test]
fn default_client_session_size() {
    let size = core::mem::size_of::<Session>();
    std::println!("size_of::<Session>() (default client session) = {size} bytes");
    // The send ring (256 KiB) dominates; everything else is a few tens of KiB.
    assert!(size > 256 * 1024 && size < 320 * 1024, "{size}");
    std::println!(
        "size_of::<Small>() = {} bytes",
        core::mem::size_of::<Small>()
    );
}

/// A whole session built at compile time, as a device would keep it in a `static`.
static IN_FLASH_INIT: Session<4096, 8, 2, 1024, 4> =
    Session::new(Config::agent(5, AgentHandshake::SHELL), Instant::ZERO);

#[test]
fn a_session_can_be_a_static() {
    assert_eq!(IN_FLASH_INIT.role(), Role::Agent);
    assert_eq!(IN_FLASH_INIT.agent_version(), Some("3.3.0.0"));
    assert!(!IN_FLASH_INIT.is_established());
    // And at run time it behaves like one built with `new`.
    let a = Session::<4096, 8, 2, 1024, 4>::new(Config::agent(5, AgentHandshake::SHELL), at(0));
    assert_eq!(std::format!("{a:?}"), std::format!("{IN_FLASH_INIT:?}"));
}

#[test]
fn tokens_are_checked_and_never_shown() {
    let mut c = client(1);
    assert_eq!(c.handle_connected(at(0), ""), Err(Error::BadToken));
    assert_eq!(c.handle_connected(at(0), "two words"), Err(Error::BadToken));
    let long = "x".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(c.handle_connected(at(0), &long), Err(Error::TokenTooLong));
    assert!(
        drain(&mut c, at(0)).is_empty(),
        "nothing queued by a refused token"
    );
    c.handle_connected(at(0), TOKEN).unwrap();
    let shown = std::format!("{c:?}");
    assert!(
        shown.contains("redacted") && !shown.contains("AAAA"),
        "{shown}"
    );
    assert!(std::format!("{:?}", Error::BadToken).find("AAAA").is_none());

    // Agent role: a token with JSON escapes is refused, not unescaped into something else.
    let mut a = agent(2, AgentHandshake::SHELL);
    a.handle_connected(at(0), "").unwrap();
    let open = br#"{"MessageSchemaVersion":"1.0","RequestId":"r","TokenValue":"a\"b","ClientId":"c","ClientVersion":"1"}"#;
    assert_eq!(
        a.handle_input(at(0), Incoming::Text(open)),
        Err(Error::BadToken)
    );
    assert_eq!(a.peer_token(), None);
    assert!(events(&mut a).is_empty());
    assert_eq!(
        c.peer_token(),
        None,
        "the client role never exposes its token"
    );
}

/// A slow reader and an agent that streams as fast as it can: an adapter that stops reading
/// the socket while `wants_input` is false never makes the engine drop a message.
#[test]
fn wants_input_gives_back_pressure_without_drops() {
    for respect in [true, false] {
        let (mut c, mut a) = established(AgentHandshake::SHELL);
        events(&mut a);
        let out = super::sim::bytes(3, 200_000);
        let (mut sent, mut got) = (0, Vec::new());
        let mut wire: std::collections::VecDeque<Msg> = std::collections::VecDeque::new();
        let mut buf = [0u8; 300];
        // An adapter that ignores back-pressure makes the engine drop what it cannot hold; the
        // agent, having sent everything already, learns of the drops only from silence (one
        // probe per timeout), so that run is slower: bounded and lossless, not fast.
        let steps = if respect { 100_000u64 } else { 1_000_000 };
        for step in 0..steps {
            let now = step + 1;
            if sent < out.len() {
                if let Ok(n) = a.write(at(now), &out[sent..]) {
                    sent += n;
                }
            }
            a.handle_timeout(at(now));
            wire.extend(drain(&mut a, at(now)));
            while let Some(m) = wire.front() {
                if respect && !c.wants_input() {
                    break;
                }
                c.handle_input(at(now), m.incoming()).unwrap();
                wire.pop_front();
            }
            deliver(&mut a, at(now), &drain(&mut c, at(now)));
            events(&mut a);
            // The reader takes 300 bytes every other step.
            if step % 2 == 0 {
                if let Some((_, n)) = c.read(&mut buf) {
                    got.extend_from_slice(&buf[..n]);
                }
            }
            events(&mut c);
            if got.len() == out.len() {
                break;
            }
        }
        assert!(
            got == out,
            "every byte, in order ({} of {}; adapter respects wants_input: {respect}; agent retransmits {}, client drops {})",
            got.len(),
            out.len(),
            a.stats().retransmits,
            c.stats().dropped_unacked,
        );
        if respect {
            assert_eq!(c.stats().dropped_unacked, 0);
            assert_eq!(a.stats().retransmits, 0);
        } else {
            // Fed regardless, the engine must drop (and the agent resend) to stay bounded.
            assert!(c.stats().dropped_unacked > 0);
            assert!(a.stats().retransmits > 0);
        }
    }
}

#[test]
fn agent_without_handshake_means_a_shell() {
    let mut c = client(1);
    c.handle_connected(at(0), TOKEN).unwrap();
    drain(&mut c, at(0));
    let hello = peer_frame(
        MessageType::OutputStreamData,
        0,
        id(1),
        PayloadType::Output,
        b"$ ",
    );
    deliver(&mut c, at(1), &[hello]);
    assert_eq!(
        events(&mut c),
        [Event::HandshakeComplete, Event::Readable, Event::Writable]
    );
    assert_eq!(c.session_type(), Some(SessionType::StandardStream));
    assert_eq!(read_all(&mut c).0, b"$ ");
    c.write(at(2), b"ls\r").unwrap();
    let out = drain(&mut c, at(2));
    // No handshake response: the first input is sequence 0.
    assert_eq!(data(&out), [(0, PayloadType::Output, b"ls\r".to_vec())]);
}

#[test]
fn a_refused_token_learns_nothing() {
    let h = AgentHandshake {
        session_type: SessionType::NonInteractiveCommands,
        properties: r#"{"linux":{"commands":"secret-command"}}"#,
        ..AgentHandshake::SHELL
    };
    let mut a = agent(2, h);
    let mut c = client(1);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), "wrong-token").unwrap();
    deliver(&mut a, at(0), &drain(&mut c, at(0)));
    // The driver transmits first, then polls events: nothing may leave before `Opened`.
    assert!(drain(&mut a, at(0)).is_empty());
    assert_eq!(a.poll_event(), Some(Event::Opened));
    assert_eq!(a.peer_token(), Some("wrong-token"));
    a.close_channel(at(0), "authentication failed");
    let out = drain(&mut a, at(0));
    assert_eq!(out.len(), 1);
    let f = out[0].frame();
    assert_eq!(f.header.message_type, MessageType::ChannelClosed);
    assert!(!std::string::String::from_utf8_lossy(f.payload).contains("secret-command"));
    deliver(&mut c, at(1), &out);
    assert_eq!(c.close_reason(), Some(CloseReason::ChannelClosed));
    assert_eq!(c.close_message(), "authentication failed");
}

#[test]
fn after_a_reconnect_the_agent_resends_only_once_opened_is_seen() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut a);
    a.write(at(1), b"unacked output").unwrap();
    drain(&mut a, at(1));
    a.handle_transport_closed(at(2));
    c.handle_transport_closed(at(2));
    a.handle_connected(at(3), "").unwrap();
    c.handle_connected(at(3), "resumed-token").unwrap();
    deliver(&mut a, at(3), &drain(&mut c, at(3)));
    assert!(
        drain(&mut a, at(3)).is_empty(),
        "held until Opened is polled"
    );
    assert_eq!(a.poll_event(), Some(Event::Opened));
    assert_eq!(a.peer_token(), Some("resumed-token"));
    let out = drain(&mut a, at(3));
    assert_eq!(
        data(&out),
        [(2, PayloadType::Output, b"unacked output".to_vec())]
    );
}

const HANDSHAKE_MS: u64 = 60_000;

#[test]
fn handshake_timeout_default_is_sixty_seconds() {
    assert_eq!(
        Config::client(1).handshake_timeout,
        Duration::from_millis(HANDSHAKE_MS)
    );
    assert_eq!(
        Config::agent(1, AgentHandshake::SHELL).handshake_timeout,
        Duration::from_millis(HANDSHAKE_MS)
    );
}

#[test]
fn client_gives_up_on_a_silent_agent() {
    let mut c = client(1);
    assert_eq!(c.poll_timeout(), None, "no clock runs before connecting");
    c.handle_connected(at(500), TOKEN).unwrap();
    drain(&mut c, at(500));
    assert_eq!(c.poll_timeout(), Some(at(500 + HANDSHAKE_MS)));
    // A reconnect does not restart the clock.
    c.handle_transport_closed(at(30_000));
    c.handle_connected(at(31_000), "second").unwrap();
    drain(&mut c, at(31_000));
    assert_eq!(c.poll_timeout(), Some(at(500 + HANDSHAKE_MS)));
    c.handle_timeout(at(500 + HANDSHAKE_MS - 1));
    assert!(!c.is_closed());
    c.handle_timeout(at(500 + HANDSHAKE_MS));
    assert_eq!(
        events(&mut c),
        [Event::Closed(CloseReason::HandshakeTimeout)]
    );
    assert_eq!(c.close_reason(), Some(CloseReason::HandshakeTimeout));
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn client_gives_up_without_handshake_complete() {
    let mut c = client(1);
    let mut a = agent(2, AgentHandshake::SHELL);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    deliver(&mut a, at(0), &drain(&mut c, at(0)));
    assert_eq!(a.poll_event(), Some(Event::Opened));
    deliver(&mut c, at(1), &drain(&mut a, at(1)));
    // The response goes out and is acknowledged; HandshakeComplete never comes.
    let resp = drain(&mut c, at(1));
    assert!(data(&resp)
        .iter()
        .any(|d| d.1 == PayloadType::HandshakeResponse));
    deliver(&mut a, at(2), &resp);
    // The agent acknowledges it; its HandshakeComplete is lost.
    let acks: Vec<Msg> = drain(&mut a, at(2))
        .into_iter()
        .filter(|m| m.frame().header.message_type == MessageType::Acknowledge)
        .collect();
    assert_eq!(acks.len(), 1);
    deliver(&mut c, at(2), &acks);
    assert_eq!(c.unacked_bytes(), 0);
    assert_eq!(c.poll_timeout(), Some(at(HANDSHAKE_MS)));
    c.handle_timeout(at(HANDSHAKE_MS));
    assert_eq!(c.close_reason(), Some(CloseReason::HandshakeTimeout));
}

#[test]
fn agent_gives_up_without_open_and_without_response() {
    // Nobody opens the channel.
    let mut a = agent(2, AgentHandshake::SHELL);
    a.handle_connected(at(0), "").unwrap();
    assert_eq!(a.poll_timeout(), Some(at(HANDSHAKE_MS)));
    a.handle_timeout(at(HANDSHAKE_MS));
    assert_eq!(
        events(&mut a),
        [Event::Closed(CloseReason::HandshakeTimeout)]
    );
    assert!(drain(&mut a, at(HANDSHAKE_MS)).is_empty(), "nobody to tell");

    // The client opens but never answers the HandshakeRequest: it is told why.
    let mut a = agent(2, AgentHandshake::SHELL);
    let mut c = client(1);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    deliver(&mut a, at(0), &drain(&mut c, at(0)));
    assert_eq!(a.poll_event(), Some(Event::Opened));
    assert_eq!(data(&drain(&mut a, at(0))).len(), 1);
    let mut now = 0;
    while let Some(t) = a.poll_timeout() {
        now = t.total_millis();
        a.handle_timeout(t);
        let out = drain(&mut a, t);
        if a.is_closed() {
            assert_eq!(out.len(), 1);
            assert_eq!(
                out[0].frame().header.message_type,
                MessageType::ChannelClosed
            );
            break;
        }
    }
    assert_eq!(now, HANDSHAKE_MS);
    assert_eq!(a.close_reason(), Some(CloseReason::HandshakeTimeout));
    assert_eq!(a.close_message(), CloseReason::HandshakeTimeout.as_str());
}

#[test]
fn established_sessions_have_no_handshake_deadline() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut c);
    events(&mut a);
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(a.poll_timeout(), None);
    c.handle_timeout(at(10 * HANDSHAKE_MS));
    a.handle_timeout(at(10 * HANDSHAKE_MS));
    assert!(c.is_established() && a.is_established());
}

#[test]
fn a_closing_client_still_sends_the_acknowledgements_it_owes() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut c);
    a.write(at(1), b"last words").unwrap();
    deliver(&mut c, at(2), &drain(&mut a, at(1)));
    // Nothing of ours is unacknowledged: `close` ends the session at once, before the driver
    // has transmitted the acknowledgement of the output just received.
    c.close(at(2));
    assert_eq!(c.close_reason(), Some(CloseReason::Local));
    let out = drain(&mut c, at(2));
    assert_eq!(acks(&out), [("output_stream_data".into(), 2)]);
    deliver(&mut a, at(3), &out);
    assert_eq!(a.unacked_bytes(), 0);
    assert!(drain(&mut c, at(4)).is_empty(), "and nothing else");
}

#[test]
fn agent_closing_after_terminate_does_not_wait_for_acknowledgements() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut a);
    a.write(at(1), b"output the client will not wait for")
        .unwrap();
    let lost = drain(&mut a, at(1));
    assert_eq!(data(&lost).len(), 1);
    c.terminate(at(1));
    deliver(&mut a, at(2), &drain(&mut c, at(1)));
    assert_eq!(events(&mut a), [Event::Flag(Flag::TerminateSession)]);
    a.close_channel(at(2), "terminated");
    assert_eq!(a.close_reason(), Some(CloseReason::Local));
    assert_eq!(events(&mut a), [Event::Closed(CloseReason::Local)]);
    // The flag's acknowledgement, then channel_closed.
    let out = drain(&mut a, at(2));
    let types: Vec<_> = out.iter().map(|m| m.frame().header.message_type).collect();
    assert_eq!(
        types,
        [MessageType::Acknowledge, MessageType::ChannelClosed]
    );
    deliver(&mut c, at(3), &out[..1]);
    assert_eq!(c.close_reason(), Some(CloseReason::Terminated));

    // An agent already flushing its close stops waiting when the flag comes.
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    a.write(at(1), b"unacknowledged").unwrap();
    drain(&mut a, at(1));
    a.close_channel(at(1), "bye");
    assert!(!a.is_closed());
    c.terminate(at(1));
    deliver(&mut a, at(2), &drain(&mut c, at(1)));
    assert_eq!(a.close_reason(), Some(CloseReason::Local));
}

#[test]
fn one_lost_message_costs_one_retransmission() {
    // The agent sends at most as far ahead as the client can hold (Small: 8 reorder slots).
    let mut c = client(1);
    let mut cfg = Config::agent(2, AgentHandshake::SHELL);
    cfg.max_ahead = 8;
    let mut a = Box::new(Small::new(cfg, at(0)));
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    exchange(&mut c, &mut a, at(0));
    events(&mut c);
    events(&mut a);
    let mut sent = Vec::new();
    for i in 0..20u8 {
        let piece = [i; 100];
        assert_eq!(a.write(at(1), &piece), Ok(100));
        sent.extend_from_slice(&piece);
    }
    let out = drain(&mut a, at(1));
    assert_eq!(data(&out).len(), 8, "no further than the client holds");
    // The first is lost; the client holds the other seven and acknowledges them.
    deliver(&mut c, at(2), &out[1..]);
    exchange(&mut c, &mut a, at(3));
    // A round trip after it went out, the acknowledgements of the seven behind it tell the
    // agent it was lost: it goes out again before its timeout.
    assert!(a.rto() > Duration::from_millis(10));
    exchange(&mut c, &mut a, at(10));
    assert_eq!(read_all(&mut c).0, sent);
    assert_eq!(c.stats().dropped_unacked, 0);
    assert_eq!(a.stats().retransmits, 1);
    assert_eq!(a.unacked_bytes(), 0);
}

#[test]
fn channel_closed_after_held_data_delivers_it_first() {
    // The client's read buffer (Small: 4 KiB) fills; later messages are acknowledged and held.
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut c);
    events(&mut a);
    let out = super::sim::bytes(5, 10_000);
    let mut sent = 0;
    let mut now = 10;
    while sent < out.len() {
        sent += a.write(at(now), &out[sent..]).unwrap_or(0);
        exchange(&mut c, &mut a, at(now));
        now += 1;
    }
    assert_eq!(
        a.unacked_bytes(),
        0,
        "the agent counts every byte as delivered"
    );
    // The agent closes; the client has read nothing yet.
    a.close_channel(at(now), "done");
    exchange(&mut c, &mut a, at(now));
    assert!(!c.is_closed(), "held data first");
    let (got, _) = read_all(&mut c);
    assert_eq!(got, out, "every acknowledged byte reaches the reader");
    assert!(events(&mut c).contains(&Event::Closed(CloseReason::ChannelClosed)));
    assert!(c.is_closed());
}

#[test]
fn max_ahead_defaults() {
    assert_eq!(Config::client(1).max_ahead, 10_000);
    assert_eq!(Config::agent(1, AgentHandshake::SHELL).max_ahead, 10_000);
}

/// What an agent's driver sees, polling as the driving contract says: read everything, then the
/// events. Returns the bytes read and, for each flag, how many bytes were read before it.
fn read_with_flags(a: &mut Small) -> (Vec<u8>, Vec<(Flag, usize)>) {
    let (mut got, mut flags) = (Vec::new(), Vec::new());
    loop {
        got.extend(read_all(a).0);
        match a.poll_event() {
            Some(Event::Flag(f)) => flags.push((f, got.len())),
            Some(_) => {}
            None if a.read(&mut [0u8; 1]).is_none() => return (got, flags),
            None => panic!("bytes readable without an event"),
        }
    }
}

#[test]
fn flag_after_held_data_drained_in_the_same_batch_comes_at_its_place() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut a);
    c.write(at(1), b"first connection").unwrap();
    c.send_flag(Flag::DisconnectToPort).unwrap();
    c.write(at(1), b"second").unwrap();
    let out = drain(&mut c, at(1));
    assert_eq!(data(&out).len(), 3);
    // The flag and the bytes after it arrive first and are held; the first message comes last
    // and releases all three at once.
    deliver(&mut a, at(1), &out[1..]);
    deliver(&mut a, at(1), &out[..1]);
    let (got, flags) = read_with_flags(&mut a);
    assert_eq!(got, b"first connectionsecond");
    assert_eq!(flags, [(Flag::DisconnectToPort, b"first connection".len())]);
}

#[test]
fn flag_waits_for_the_bytes_before_it_to_be_read() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut a);
    c.write(at(1), b"before").unwrap();
    c.send_flag(Flag::DisconnectToPort).unwrap();
    c.write(at(1), b"after").unwrap();
    exchange(&mut c, &mut a, at(1));
    // Nothing read yet: the flag is not reported, the bytes after it are not readable.
    assert_eq!(events(&mut a), [Event::Readable]);
    let mut buf = [0u8; 64];
    assert_eq!(a.read(&mut buf), Some((Stream::Output, 6)));
    assert_eq!(a.read(&mut buf), None, "bytes after the flag wait for it");
    assert_eq!(
        events(&mut a),
        [Event::Flag(Flag::DisconnectToPort), Event::Readable]
    );
    assert_eq!(a.read(&mut buf), Some((Stream::Output, 5)));
    assert_eq!(&buf[..5], b"after");
    assert_eq!(c.unacked_bytes(), 0, "held messages are acknowledged");
}

#[test]
fn acknowledgements_owed_while_the_transmit_queue_is_full_are_sent_later() {
    // Small's transmit queue holds 16: the client takes 24 new messages and a flood of
    // duplicates before its driver polls a transmit.
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut c);
    events(&mut a);
    let mut out = Vec::new();
    for i in 0..24u8 {
        a.write(at(1), &[i; 10]).unwrap();
        out.extend(drain(&mut a, at(1)));
    }
    assert_eq!(data(&out).len(), 24);
    for m in out.iter().chain(&out[..8]).chain(&out[..8]) {
        let _ = c.handle_input(at(2), m.incoming());
    }
    // Every new message's acknowledgement goes out, none twice, with no resend by the agent.
    let acks = drain(&mut c, at(2));
    let mut acked: Vec<i64> = acks
        .iter()
        .filter(|m| m.frame().header.message_type == MessageType::Acknowledge)
        .map(|m| {
            m.json()["AcknowledgedMessageSequenceNumber"]
                .as_i64()
                .unwrap()
        })
        .collect();
    acked.sort_unstable();
    acked.dedup();
    let seqs: Vec<i64> = data(&out).iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(acked, seqs);
    deliver(&mut a, at(3), &acks);
    assert_eq!(a.unacked_bytes(), 0);
    assert_eq!(a.stats().retransmits, 0);
    let got: Vec<u8> = (0..24u8).flat_map(|i| [i; 10]).collect();
    assert_eq!(
        read_all(&mut c).0,
        got,
        "every message delivered once, in order"
    );
}

#[test]
fn a_duplicate_is_not_acknowledged_twice_while_its_ack_waits() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut c);
    a.write(at(1), b"once").unwrap();
    let out = drain(&mut a, at(1));
    for _ in 0..40 {
        deliver(&mut c, at(2), &out);
    }
    assert_eq!(drain(&mut c, at(2)).len(), 1, "one acknowledgement");
    assert_eq!(c.stats().acks_dropped, 0);
    assert_eq!(read_all(&mut c).0, b"once");
}

#[test]
fn poll_overtaking_hands_out_acknowledgements_only() {
    let (mut c, mut a) = established(AgentHandshake::SHELL);
    events(&mut c);
    a.write(at(1), b"output").unwrap();
    let out = drain(&mut a, at(1));
    deliver(&mut c, at(2), &out);
    c.write(at(2), b"input").unwrap();
    // Both an acknowledgement and a data message are due; only the first may overtake.
    let mut buf = [0u8; 4096];
    let t = c
        .poll_overtaking(at(2), &mut buf)
        .unwrap()
        .expect("the ack");
    assert_eq!(t.class, TransmitClass::Acknowledge);
    assert_eq!(class_of(t.kind, &buf[..t.len]), TransmitClass::Acknowledge);
    assert_eq!(c.poll_overtaking(at(2), &mut buf).unwrap(), None);
    let rest = drain(&mut c, at(2));
    assert_eq!(
        data(&rest).len(),
        1,
        "the data message waits for poll_transmit"
    );
}
