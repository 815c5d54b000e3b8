//! KMS encryption through both roles in memory: the handshake with a fake KMS, what is sealed
//! on the wire and what stays clear, port sessions, reconnects, and hostile frames.

use std::string::String;
use std::vec::Vec;

use sha2::{Digest, Sha256};

use super::scenarios::peer_frame;
use super::*;
use crate::kms::{EncryptionContext, OVERHEAD};

const SESSION_ID: &str = "user-0a1b2c3d4e5f67890";
const TARGET: &str = "i-0123456789abcdef0";
const KEY_ID: &str = "arn:aws:kms:us-east-1:111122223333:key/abcd";
const BLOB: &[u8] = b"\x01\x02\x03 KMS ciphertext blob \xfe\xff";

/// Plays KMS for both ends: GenerateDataKey remembers the context, Decrypt answers only under
/// the same context and blob.
#[derive(Default)]
struct FakeKms {
    context: Vec<(&'static str, String)>,
    decrypted: usize,
}

fn data_key() -> [u8; 64] {
    let mut k = [0u8; 64];
    for (i, b) in k.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0xa5;
    }
    k
}

fn entries(c: &EncryptionContext<'_>) -> Vec<(&'static str, String)> {
    c.entries().map(|(k, v)| (k, String::from(v))).collect()
}

impl FakeKms {
    /// Answers the events that need KMS; returns the other events.
    fn serve(&mut self, s: &mut Small, now: Instant) -> Vec<Event> {
        let mut other = Vec::new();
        while let Some(e) = s.poll_event() {
            match e {
                Event::DataKeyNeeded => {
                    let req = s.data_key_request(SESSION_ID, TARGET).unwrap();
                    assert_eq!(req.key_id, KEY_ID);
                    assert_eq!(req.number_of_bytes, 64);
                    self.context = entries(&req.context);
                    s.set_data_key(now, &data_key(), BLOB, [7; 12]).unwrap();
                }
                Event::DataKeyToDecrypt => {
                    let ctx = s.data_key_context(SESSION_ID, TARGET).unwrap();
                    if s.data_key_ciphertext() == Some(BLOB) && entries(&ctx) == self.context {
                        self.decrypted += 1;
                        s.set_decrypted_data_key(now, &data_key()).unwrap();
                    } else {
                        s.refuse_data_key(now);
                    }
                }
                e => other.push(e),
            }
        }
        other
    }
}

fn kms_client(seed: u64) -> Box<Small> {
    let config = Config {
        encryption: Encryption::Kms {
            require_challenge: false,
        },
        ..Config::client(seed)
    };
    Box::new(Small::new(config, at(0)))
}

fn kms_agent(seed: u64, h: AgentHandshake<'_>, require_challenge: bool) -> Box<Small> {
    let h = AgentHandshake {
        kms_key_id: Some(KEY_ID),
        ..h
    };
    let config = Config {
        encryption: Encryption::Kms { require_challenge },
        ..Config::agent(seed, h)
    };
    Box::new(Small::new(config, at(0)))
}

/// Every message both ways, with KMS served, until quiet; all messages and the other events.
struct Run {
    to_agent: Vec<Msg>,
    to_client: Vec<Msg>,
    client_events: Vec<Event>,
    agent_events: Vec<Event>,
}

fn run(c: &mut Small, a: &mut Small, kms: &mut FakeKms, now: Instant) -> Run {
    let mut r = Run {
        to_agent: Vec::new(),
        to_client: Vec::new(),
        client_events: Vec::new(),
        agent_events: Vec::new(),
    };
    for _ in 0..1000 {
        let to_a = drain(c, now);
        let to_c = drain(a, now);
        deliver(a, now, &to_a);
        deliver(c, now, &to_c);
        let ce = kms.serve(c, now);
        let ae = kms.serve(a, now);
        let quiet = to_a.is_empty() && to_c.is_empty() && ce.is_empty() && ae.is_empty();
        r.to_agent.extend(to_a);
        r.to_client.extend(to_c);
        r.client_events.extend(ce);
        r.agent_events.extend(ae);
        if quiet {
            return r;
        }
    }
    panic!("no quiet after 1000 rounds");
}

fn kms_established(h: AgentHandshake<'_>) -> (Box<Small>, Box<Small>, FakeKms, Run) {
    let mut c = kms_client(1);
    let mut a = kms_agent(2, h, true);
    let mut kms = FakeKms::default();
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    let r = run(&mut c, &mut a, &mut kms, at(0));
    assert!(c.is_established() && a.is_established());
    (c, a, kms, r)
}

fn of_type(msgs: &[Msg], pt: PayloadType) -> Vec<&Msg> {
    msgs.iter()
        .filter(|m| m.kind == TransmitKind::Binary && m.frame().header.payload_type == pt)
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    let mut buf = [0u8; 512];
    String::from(crate::kms::encode_base64(bytes, &mut buf).unwrap())
}

#[test]
fn shell_handshake_with_kms_and_challenge() {
    let (c, a, kms, r) = kms_established(AgentHandshake::SHELL);
    assert!(c.is_encrypted() && a.is_encrypted());
    assert_eq!(kms.decrypted, 1);
    assert_eq!(r.client_events, [Event::HandshakeComplete, Event::Writable]);
    assert!(r.agent_events.contains(&Event::HandshakeComplete));

    let req = of_type(&r.to_client, PayloadType::HandshakeRequest)[0].json();
    let action = &req["RequestedClientActions"][1];
    assert_eq!(action["ActionType"], "KMSEncryption");
    assert_eq!(action["ActionParameters"]["KMSKeyId"], KEY_ID);
    let challenge = action["ActionParameters"]["Challenge"].as_str().unwrap();
    assert_eq!(challenge.len(), 24, "base64 of 16 bytes");
    // The context both ends used: session, target and the agent's challenge.
    assert_eq!(
        kms.context,
        [
            ("aws:ssm:SessionId", String::from(SESSION_ID)),
            ("aws:ssm:TargetId", String::from(TARGET)),
            ("aws:ssm:RandomChallenge", String::from(challenge)),
        ]
    );

    let resp = of_type(&r.to_agent, PayloadType::HandshakeResponse)[0].json();
    let kms_action = &resp["ProcessedClientActions"][1];
    assert_eq!(kms_action["ActionType"], "KMSEncryption");
    assert_eq!(kms_action["ActionStatus"], 1);
    let result = &kms_action["ActionResult"];
    assert_eq!(result["KMSCipherTextKey"], b64(BLOB).as_str());
    assert_eq!(
        result["KMSCipherTextHash"],
        b64(&Sha256::digest(BLOB)).as_str()
    );
    assert_eq!(result["ChallengeAcknowledgement"], true);

    // The challenge went out and back, different each way, and before HandshakeComplete.
    let asked = of_type(&r.to_client, PayloadType::EncChallengeRequest)[0].json();
    let answered = of_type(&r.to_agent, PayloadType::EncChallengeResponse)[0].json();
    assert_ne!(asked["Challenge"], answered["Challenge"]);
    let seq = |pt| of_type(&r.to_client, pt)[0].frame().header.sequence_number;
    assert!(seq(PayloadType::EncChallengeRequest) < seq(PayloadType::HandshakeComplete));
}

#[test]
fn shell_data_is_sealed_on_the_wire_and_size_stays_clear() {
    let (mut c, mut a, mut kms, _) = kms_established(AgentHandshake::SHELL);
    assert_eq!(c.write(at(1), b"uname -a\r"), Ok(9));
    c.resize(120, 40);
    assert_eq!(a.write(at(1), b"Linux box 6.1\r\n"), Ok(15));
    let r = run(&mut c, &mut a, &mut kms, at(1));
    assert_eq!(read_all(&mut a).0, b"uname -a\r");
    assert_eq!(read_all(&mut c).0, b"Linux box 6.1\r\n");

    let up = of_type(&r.to_agent, PayloadType::Output);
    assert_eq!(up.len(), 1);
    let sealed = up[0].frame().payload;
    assert_eq!(sealed.len(), 9 + OVERHEAD);
    assert!(!sealed.windows(5).any(|w| w == b"uname"));
    let down = of_type(&r.to_client, PayloadType::Output);
    assert_eq!(down[0].frame().payload.len(), 15 + OVERHEAD);
    let size = of_type(&r.to_agent, PayloadType::Size)[0].json();
    assert_eq!(size["cols"], 120);
    assert_eq!(a.terminal_size(), Some((120, 40)));
    // Acknowledgements stay JSON.
    assert!(r
        .to_agent
        .iter()
        .filter(|m| m.frame().header.message_type == MessageType::Acknowledge)
        .all(|m| m.json()["AcknowledgedMessageId"].is_string()));
}

#[test]
fn a_full_chunk_fits_the_peer_and_the_window_counts_the_tag() {
    let (mut c, mut a, mut kms, _) = kms_established(AgentHandshake::SHELL);
    let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    assert_eq!(a.write(at(1), &data), Ok(3000));
    assert_eq!(a.unacked_bytes(), 3000 + 3 * OVERHEAD);
    let r = run(&mut c, &mut a, &mut kms, at(1));
    let sizes: Vec<usize> = of_type(&r.to_client, PayloadType::Output)
        .iter()
        .map(|m| m.frame().payload.len())
        .collect();
    assert_eq!(sizes, [1024 + OVERHEAD, 1024 + OVERHEAD, 952 + OVERHEAD]);
    assert_eq!(read_all(&mut c).0, data);
}

#[test]
fn non_interactive_command_seals_stdout_stderr_and_exit_code() {
    let h = AgentHandshake {
        session_type: SessionType::NonInteractiveCommands,
        properties: r#"{"linux":{"commands":"ls /nope","separateOutputStream":true}}"#,
        ..AgentHandshake::SHELL
    };
    let (mut c, mut a, mut kms, _) = kms_established(h);
    assert!(a.is_encrypted());
    assert_eq!(a.write(at(1), b"partial\n"), Ok(8));
    assert_eq!(a.write_stderr(at(1), b"ls: /nope: No such file\n"), Ok(24));
    a.send_exit_code(at(1), 2).unwrap();
    let r = run(&mut c, &mut a, &mut kms, at(1));
    assert_eq!(
        read_all(&mut c),
        (b"partial\n".to_vec(), b"ls: /nope: No such file\n".to_vec())
    );
    assert!(r.client_events.contains(&Event::ExitCode(2)));
    assert_eq!(c.exit_code(), Some(2));
    let exit = of_type(&r.to_client, PayloadType::ExitCode);
    let sealed = exit[0].frame().payload;
    assert_eq!(sealed.len(), b"EXIT_CODE: 2".len() + OVERHEAD);
    assert!(!sealed.windows(9).any(|w| w == b"EXIT_CODE"));
    let err = of_type(&r.to_client, PayloadType::StdErr);
    assert_eq!(err[0].frame().payload.len(), 24 + OVERHEAD);
}

#[test]
fn port_sessions_are_never_encrypted() {
    let h = AgentHandshake {
        session_type: SessionType::Port,
        properties: r#"{"portNumber":"22","type":"LocalPortForwarding"}"#,
        ..AgentHandshake::SHELL
    };
    let (mut c, mut a, mut kms, r) = kms_established(h);
    assert!(!c.is_encrypted() && !a.is_encrypted());
    assert_eq!(kms.decrypted, 0);
    let req = of_type(&r.to_client, PayloadType::HandshakeRequest)[0].json();
    assert_eq!(req["RequestedClientActions"].as_array().unwrap().len(), 1);
    assert!(!r.client_events.contains(&Event::DataKeyNeeded));
    assert_eq!(c.kms_key_id(), None);
    assert_eq!(c.write(at(1), b"SSH-2.0-x\r\n"), Ok(11));
    let r = run(&mut c, &mut a, &mut kms, at(1));
    assert_eq!(
        of_type(&r.to_agent, PayloadType::Output)[0].frame().payload,
        b"SSH-2.0-x\r\n"
    );
    assert_eq!(read_all(&mut a).0, b"SSH-2.0-x\r\n");
}

#[test]
fn a_port_request_with_kms_is_answered_unsupported_by_a_kms_client() {
    // The real agent never sends this; were one to, the client does not encrypt a port session.
    let h = AgentHandshake {
        session_type: SessionType::Port,
        properties: r#"{"portNumber":"22"}"#,
        kms_key_id: Some(KEY_ID),
        ..AgentHandshake::SHELL
    };
    let mut c = kms_client(1);
    let mut a = agent(2, h);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    deliver(&mut a, at(0), &drain(&mut c, at(0)));
    assert_eq!(events(&mut a), [Event::Opened]);
    let req = drain(&mut a, at(0));
    // The agent role skips KMS for a port session even when asked.
    assert_eq!(
        req[0].json()["RequestedClientActions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let forged = br#"{"AgentVersion":"3.3.0.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"portNumber":"22"}}},{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"k"}}]}"#;
    let f = peer_frame(
        MessageType::OutputStreamData,
        0,
        Uuid::from_random_bytes([9; 16]),
        PayloadType::HandshakeRequest,
        forged,
    );
    c.handle_input(at(1), f.incoming()).unwrap();
    assert!(!events(&mut c).contains(&Event::DataKeyNeeded));
    let resp = of_type(&drain(&mut c, at(1)), PayloadType::HandshakeResponse)[0].json();
    assert_eq!(resp["ProcessedClientActions"][1]["ActionStatus"], 3);
}

#[test]
fn a_reconnect_keeps_the_keys_and_needs_no_second_handshake() {
    let (mut c, mut a, mut kms, _) = kms_established(AgentHandshake::SHELL);
    assert_eq!(c.write(at(1), b"before\r"), Ok(7));
    // The transport drops with the message in flight.
    let lost = drain(&mut c, at(1));
    assert_eq!(of_type(&lost, PayloadType::Output).len(), 1);
    c.handle_transport_closed(at(2));
    a.handle_transport_closed(at(2));
    a.handle_connected(at(3), "").unwrap();
    c.handle_connected(at(3), "token-from-resume-session")
        .unwrap();
    assert_eq!(c.write(at(3), b"after\r"), Ok(6));
    assert_eq!(a.write(at(3), b"still here\r\n"), Ok(12));
    let r = run(&mut c, &mut a, &mut kms, at(3));
    assert!(r.agent_events.contains(&Event::Opened));
    assert!(of_type(&r.to_client, PayloadType::HandshakeRequest).is_empty());
    assert!(of_type(&r.to_agent, PayloadType::HandshakeResponse).is_empty());
    assert_eq!(kms.decrypted, 1, "no second data key");
    assert_eq!(read_all(&mut a).0, b"before\rafter\r");
    assert_eq!(read_all(&mut c).0, b"still here\r\n");
    assert!(of_type(&r.to_agent, PayloadType::Output)
        .iter()
        .all(|m| m.frame().payload.len() > OVERHEAD));
}

/// The same frame with one payload byte flipped and a digest that matches it (what an
/// attacker on the path, not line noise, would send).
fn tampered(m: &Msg, at_byte: usize) -> Msg {
    let f = m.frame();
    let mut payload = f.payload.to_vec();
    payload[at_byte] ^= 0x40;
    peer_frame(
        f.header.message_type,
        f.header.sequence_number,
        f.header.message_id,
        f.header.payload_type,
        &payload,
    )
}

#[test]
fn a_tampered_data_frame_is_dropped_unacknowledged_and_the_resend_gets_through() {
    let (mut c, mut a, mut kms, _) = kms_established(AgentHandshake::SHELL);
    assert_eq!(c.write(at(1), b"secret\r"), Ok(7));
    let out = drain(&mut c, at(1));
    let data = of_type(&out, PayloadType::Output)[0].clone();
    for byte in [0, 12, data.frame().payload.len() - 1] {
        let bad = tampered(&data, byte);
        assert_eq!(
            a.handle_input(at(1), bad.incoming()),
            Err(Error::Decrypt(crate::kms::Error::TagMismatch))
        );
        let answer = drain(&mut a, at(1));
        assert!(answer.is_empty(), "not acknowledged: {answer:?}");
        assert!(read_all(&mut a).0.is_empty());
    }
    assert!(!a.is_closed());
    let bad_in = a.stats().bad_input;
    assert!(bad_in >= 3);
    // The client resends after its timeout; that copy opens.
    let resend = drain(&mut c, at(1000));
    assert_eq!(of_type(&resend, PayloadType::Output).len(), 1);
    deliver(&mut a, at(1000), &resend);
    assert_eq!(read_all(&mut a).0, b"secret\r");
    let r = run(&mut c, &mut a, &mut kms, at(1001));
    assert!(r
        .to_client
        .iter()
        .any(|m| m.frame().header.message_type == MessageType::Acknowledge));
    assert_eq!(c.unacked_bytes(), 0);
}

#[test]
fn a_tampered_frame_ahead_of_order_is_not_held_either() {
    let (mut c, mut a, _kms, _) = kms_established(AgentHandshake::SHELL);
    assert_eq!(c.write(at(1), b"one"), Ok(3));
    let first = drain(&mut c, at(1));
    assert_eq!(c.write(at(1), b"two"), Ok(3));
    let second = drain(&mut c, at(1));
    let two = of_type(&second, PayloadType::Output)[0].clone();
    assert_eq!(
        a.handle_input(at(1), tampered(&two, 20).incoming()),
        Err(Error::Decrypt(crate::kms::Error::TagMismatch))
    );
    assert!(
        drain(&mut a, at(1)).is_empty(),
        "not held, not acknowledged"
    );
    deliver(&mut a, at(1), &second);
    deliver(&mut a, at(1), &first);
    assert_eq!(read_all(&mut a).0, b"onetwo");
}

#[test]
fn a_clear_payload_where_a_sealed_one_belongs_is_refused() {
    let (mut c, _a, _kms, _) = kms_established(AgentHandshake::SHELL);
    // Output in clear from the agent's sequence: too short to be sealed, or not authentic.
    let next = 3; // request, challenge, complete
    for (seq, payload) in [
        (next, &b"hi"[..]),
        (next, &b"0123456789abcdefghijklmnopqrstuvwxyz"[..]),
    ] {
        let f = peer_frame(
            MessageType::OutputStreamData,
            seq,
            Uuid::from_random_bytes([3; 16]),
            PayloadType::Output,
            payload,
        );
        assert!(matches!(
            c.handle_input(at(1), f.incoming()),
            Err(Error::Decrypt(_))
        ));
    }
    assert!(read_all(&mut c).0.is_empty());
    assert!(!c.is_closed());
}

#[test]
fn kms_refusals_close_with_typed_reasons() {
    // Client: KMS GenerateDataKey failed.
    let mut c = kms_client(1);
    let mut a = kms_agent(2, AgentHandshake::SHELL, false);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    exchange_until_key(&mut c, &mut a);
    assert!(c.data_key_request(SESSION_ID, TARGET).is_some());
    c.refuse_data_key(at(1));
    assert_eq!(
        events(&mut c),
        [Event::Closed(CloseReason::Encryption(
            EncryptionFailure::KeyRefused
        ))]
    );

    // Agent: KMS Decrypt refused (another context).
    let mut c = kms_client(1);
    let mut a = kms_agent(2, AgentHandshake::SHELL, false);
    let mut kms = FakeKms::default();
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    kms.context = vec![("aws:ssm:SessionId", String::from("another"))];
    exchange_until_key(&mut c, &mut a);
    c.set_data_key(at(1), &data_key(), BLOB, [0; 12]).unwrap();
    let _ = kms.serve(&mut c, at(1));
    deliver(&mut a, at(1), &drain(&mut c, at(1)));
    let ae = kms.serve(&mut a, at(1));
    assert_eq!(
        ae.last(),
        Some(&Event::Closed(CloseReason::Encryption(
            EncryptionFailure::KeyRefused
        )))
    );
    deliver(&mut c, at(2), &drain(&mut a, at(2)));
    assert_eq!(
        events(&mut c).last(),
        Some(&Event::Closed(CloseReason::ChannelClosed))
    );
    assert_eq!(c.close_message(), EncryptionFailure::KeyRefused.as_str());
}

/// Runs the handshake until the client waits for its data key.
fn exchange_until_key(c: &mut Small, a: &mut Small) {
    deliver(a, at(0), &drain(c, at(0)));
    assert_eq!(events(a), [Event::Opened]);
    deliver(c, at(0), &drain(a, at(0)));
    assert_eq!(events(c), [Event::DataKeyNeeded]);
    assert_eq!(
        c.set_decrypted_data_key(at(0), &data_key()),
        Err(crate::kms::Error::Unexpected)
    );
}

/// Sends the agent a HandshakeResponse built from `result`, as a hostile client would.
fn agent_gets_result(require_challenge: bool, result: &str) -> (Box<Small>, Result<(), Error>) {
    let mut c = kms_client(1);
    let mut a = kms_agent(2, AgentHandshake::SHELL, require_challenge);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    exchange_until_key(&mut c, &mut a);
    let json = std::format!(
        r#"{{"ClientVersion":"1.2.764.0","ProcessedClientActions":[{{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}},{{"ActionType":"KMSEncryption","ActionStatus":1,"ActionResult":{result},"Error":""}}],"Errors":[]}}"#
    );
    let f = peer_frame(
        MessageType::InputStreamData,
        0,
        Uuid::from_random_bytes([5; 16]),
        PayloadType::HandshakeResponse,
        json.as_bytes(),
    );
    let r = a.handle_input(at(1), f.incoming());
    (a, r)
}

#[test]
fn the_agent_checks_the_blob_hash_and_the_acknowledgement() {
    let key = b64(BLOB);
    let hash = b64(&Sha256::digest(BLOB));
    let wrong = b64(&Sha256::digest(b"other"));
    let cases = [
        (
            false,
            std::format!(
                r#"{{"KMSCipherTextKey":"{key}","KMSCipherTextHash":"{wrong}","ChallengeAcknowledgement":true}}"#
            ),
            Some(EncryptionFailure::BadCipherTextKey),
        ),
        (
            false,
            std::format!(r#"{{"KMSCipherTextKey":"not base64!","KMSCipherTextHash":"{hash}"}}"#),
            Some(EncryptionFailure::BadCipherTextKey),
        ),
        (
            true,
            std::format!(r#"{{"KMSCipherTextKey":"{key}","KMSCipherTextHash":"{hash}"}}"#),
            Some(EncryptionFailure::ChallengeNotAcknowledged),
        ),
        // Success claimed without a key: never an unencrypted session.
        (
            false,
            String::from("null"),
            Some(EncryptionFailure::BadCipherTextKey),
        ),
        (
            false,
            String::from(r#"{"SomethingElse":1}"#),
            Some(EncryptionFailure::BadCipherTextKey),
        ),
        (
            false,
            std::format!(r#"{{"KMSCipherTextKey":"{key}","KMSCipherTextHash":"{hash}"}}"#),
            None,
        ),
    ];
    for (require, result, want) in cases {
        let (mut a, r) = agent_gets_result(require, &result);
        match want {
            Some(f) => {
                assert_eq!(r, Err(Error::Encryption(f)), "{result}");
                assert_eq!(
                    events(&mut a).last(),
                    Some(&Event::Closed(CloseReason::Encryption(f)))
                );
                assert_eq!(a.close_message(), f.as_str());
            }
            None => {
                // Accepted without the challenge in the context.
                r.unwrap();
                assert_eq!(events(&mut a), [Event::DataKeyToDecrypt]);
                assert_eq!(a.data_key_ciphertext(), Some(BLOB));
                let ctx = a.data_key_context(SESSION_ID, TARGET).unwrap();
                assert_eq!(ctx.random_challenge, None);
            }
        }
    }
}

#[test]
fn a_wrong_challenge_answer_closes_the_agent() {
    let mut c = kms_client(1);
    let mut a = kms_agent(2, AgentHandshake::SHELL, true);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    exchange_until_key(&mut c, &mut a);
    // The client holds another key than the one KMS gives the agent.
    let mut other = data_key();
    other[40] ^= 1;
    c.set_data_key(at(1), &other, BLOB, [0; 12]).unwrap();
    deliver(&mut a, at(1), &drain(&mut c, at(1)));
    assert_eq!(events(&mut a), [Event::DataKeyToDecrypt]);
    a.set_decrypted_data_key(at(1), &data_key()).unwrap();
    // The client cannot open the challenge (its decrypt half is the same, its encrypt half is
    // not): it answers, and the agent refuses the answer.
    deliver(&mut c, at(1), &drain(&mut a, at(1)));
    let answer = drain(&mut c, at(1));
    let r: Vec<_> = answer
        .iter()
        .map(|m| a.handle_input(at(2), m.incoming()))
        .collect();
    assert!(r.contains(&Err(Error::Encryption(EncryptionFailure::ChallengeFailed))));
    assert_eq!(
        events(&mut a).last(),
        Some(&Event::Closed(CloseReason::Encryption(
            EncryptionFailure::ChallengeFailed
        )))
    );
    assert!(!c.is_established());
}

#[test]
fn an_unreadable_challenge_closes_the_client() {
    let mut c = kms_client(1);
    let mut a = kms_agent(2, AgentHandshake::SHELL, false);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    exchange_until_key(&mut c, &mut a);
    c.set_data_key(at(1), &data_key(), BLOB, [0; 12]).unwrap();
    let f = peer_frame(
        MessageType::OutputStreamData,
        1,
        Uuid::from_random_bytes([6; 16]),
        PayloadType::EncChallengeRequest,
        br#"{"Challenge":"AAAA"}"#,
    );
    assert_eq!(
        c.handle_input(at(2), f.incoming()),
        Err(Error::Encryption(EncryptionFailure::ChallengeFailed))
    );
    assert_eq!(
        events(&mut c),
        [Event::Closed(CloseReason::Encryption(
            EncryptionFailure::ChallengeFailed
        ))]
    );
}

#[test]
fn a_bad_challenge_in_the_request_closes_the_client() {
    let mut c = kms_client(1);
    c.handle_connected(at(0), TOKEN).unwrap();
    let _ = drain(&mut c, at(0));
    let req = br#"{"AgentVersion":"3.3.0.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Standard_Stream","Properties":null}},{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"k","Challenge":"AAAA"}}]}"#;
    let f = peer_frame(
        MessageType::OutputStreamData,
        0,
        Uuid::from_random_bytes([8; 16]),
        PayloadType::HandshakeRequest,
        req,
    );
    assert_eq!(
        c.handle_input(at(1), f.incoming()),
        Err(Error::Encryption(EncryptionFailure::BadRequest))
    );
    assert!(c.is_closed());
}

#[test]
fn an_old_agent_without_challenge_gets_no_acknowledgement() {
    let mut c = kms_client(1);
    c.handle_connected(at(0), TOKEN).unwrap();
    let _ = drain(&mut c, at(0));
    let req = br#"{"AgentVersion":"3.0.0.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Standard_Stream","Properties":null}},{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"alias/ssm"}}]}"#;
    let f = peer_frame(
        MessageType::OutputStreamData,
        0,
        Uuid::from_random_bytes([8; 16]),
        PayloadType::HandshakeRequest,
        req,
    );
    c.handle_input(at(1), f.incoming()).unwrap();
    assert_eq!(events(&mut c), [Event::DataKeyNeeded]);
    let dk = c.data_key_request(SESSION_ID, TARGET).unwrap();
    assert_eq!(dk.key_id, "alias/ssm");
    assert_eq!(dk.context.random_challenge, None);
    assert_eq!(
        c.set_data_key(at(1), &[0; 63], BLOB, [0; 12]),
        Err(crate::kms::Error::DataKeyLength)
    );
    assert_eq!(
        c.set_data_key(at(1), &data_key(), &[], [0; 12]),
        Err(crate::kms::Error::BlobLength)
    );
    c.set_data_key(at(1), &data_key(), BLOB, [0; 12]).unwrap();
    let resp = of_type(&drain(&mut c, at(1)), PayloadType::HandshakeResponse)[0].json();
    let result = &resp["ProcessedClientActions"][1]["ActionResult"];
    assert!(result.get("ChallengeAcknowledgement").is_none());
    assert_eq!(
        c.set_data_key(at(1), &data_key(), BLOB, [0; 12]),
        Err(crate::kms::Error::Unexpected),
        "only once"
    );
}

#[test]
fn sealed_output_that_overtakes_handshake_complete_still_opens() {
    // Found by the simulator: a reordered network delivered the agent's first output before
    // its HandshakeComplete, while the client's key still sat in the handshake state.
    let mut c = kms_client(1);
    let mut a = kms_agent(2, AgentHandshake::SHELL, true);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    exchange_until_key(&mut c, &mut a);
    c.set_data_key(at(1), &data_key(), BLOB, [0; 12]).unwrap();
    deliver(&mut a, at(1), &drain(&mut c, at(1)));
    assert_eq!(events(&mut a), [Event::DataKeyToDecrypt]);
    a.set_decrypted_data_key(at(1), &data_key()).unwrap();
    deliver(&mut c, at(1), &drain(&mut a, at(1)));
    deliver(&mut a, at(2), &drain(&mut c, at(2)));
    assert!(a.is_established());
    assert_eq!(a.write(at(2), b"early output"), Ok(12));
    let mut to_c = drain(&mut a, at(2));
    assert_eq!(of_type(&to_c, PayloadType::Output).len(), 1);
    to_c.reverse();
    deliver(&mut c, at(3), &to_c);
    assert!(c.is_established() && c.is_encrypted());
    assert_eq!(read_all(&mut c).0, b"early output");
}

#[test]
fn a_key_too_late_or_a_key_id_too_long_is_refused() {
    // The handshake timed out while KMS was slow: the key comes too late.
    let mut c = kms_client(1);
    let mut a = kms_agent(2, AgentHandshake::SHELL, false);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    exchange_until_key(&mut c, &mut a);
    c.handle_timeout(at(61_000));
    assert_eq!(
        events(&mut c),
        [Event::Closed(CloseReason::HandshakeTimeout)]
    );
    assert_eq!(
        c.set_data_key(at(61_001), &data_key(), BLOB, [0; 12]),
        Err(crate::kms::Error::Unexpected)
    );
    // Only the acknowledgement it owes goes out; no HandshakeResponse.
    let out = drain(&mut c, at(61_001));
    assert!(of_type(&out, PayloadType::HandshakeResponse).is_empty());
    assert!(out
        .iter()
        .all(|m| m.frame().header.message_type == MessageType::Acknowledge));

    // A key id the session cannot keep whole is refused, not cut.
    let mut c = kms_client(1);
    c.handle_connected(at(0), TOKEN).unwrap();
    let _ = drain(&mut c, at(0));
    let long = "k".repeat(MAX_TEXT_LEN + 1);
    let req = std::format!(
        r#"{{"AgentVersion":"3.3.0.0","RequestedClientActions":[{{"ActionType":"SessionType","ActionParameters":{{"SessionType":"Standard_Stream","Properties":null}}}},{{"ActionType":"KMSEncryption","ActionParameters":{{"KMSKeyId":"{long}"}}}}]}}"#
    );
    let f = peer_frame(
        MessageType::OutputStreamData,
        0,
        Uuid::from_random_bytes([8; 16]),
        PayloadType::HandshakeRequest,
        req.as_bytes(),
    );
    assert_eq!(
        c.handle_input(at(1), f.incoming()),
        Err(Error::Encryption(EncryptionFailure::BadRequest))
    );
    assert_eq!(c.data_key_request(SESSION_ID, TARGET), None);
}
