use std::vec::Vec;
use std::{format, vec};

use sha2::Digest;

use super::*;
use crate::payload::{
    ActionResult, ActionStatus, ActionType, EncChallenge, HandshakeRequest, HandshakeResponse,
    JsonStr, List, ProcessedAction,
};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// `[0; 32] ‖ key`: the client encrypts and the agent decrypts with bytes 32..64.
fn key_with_upper_half(key: &[u8]) -> DataKey {
    let mut k = [0u8; DATA_KEY_LEN];
    k[32..].copy_from_slice(key);
    DataKey::new(k)
}

include!("nist_vectors.rs");

#[test]
fn nist_known_answers_through_the_key_split() {
    for (key, iv, pt, ct, tag) in NIST {
        let (key, iv, pt) = (unhex(key), unhex(iv), unhex(pt));
        let want = [iv.clone(), unhex(ct), unhex(tag)].concat();
        let dk = key_with_upper_half(&key);
        let mut client = SessionCipher::new(&dk, Role::Client, iv.clone().try_into().unwrap());
        let mut buf = [0u8; 128];
        let n = client.seal_to(&pt, &mut buf).unwrap();
        assert_eq!(hex::encode(&buf[..n]), hex::encode(&want));
        // In place, from the start of the buffer.
        let mut client = SessionCipher::new(&dk, Role::Client, iv.clone().try_into().unwrap());
        let mut buf2 = [0u8; 128];
        buf2[..pt.len()].copy_from_slice(&pt);
        assert_eq!(client.seal(&mut buf2, pt.len()), Ok(want.len()));
        assert_eq!(&buf2[..n], &want[..]);
        // The agent opens with the same half.
        let agent = SessionCipher::new(&dk, Role::Agent, [0; 12]);
        let mut sealed = want.clone();
        assert_eq!(agent.open(&mut sealed).unwrap(), &pt[..]);
        let mut out = [0u8; 128];
        assert_eq!(agent.open_to(&want, &mut out), Ok(pt.len()));
        assert_eq!(&out[..pt.len()], &pt[..]);
    }
}

fn test_key() -> DataKey {
    let mut k = [0u8; DATA_KEY_LEN];
    for (i, b) in k.iter_mut().enumerate() {
        *b = i as u8 ^ 0x5a;
    }
    DataKey::new(k)
}

#[test]
fn each_end_opens_what_the_other_sealed_and_not_its_own() {
    let k = test_key();
    let mut client = SessionCipher::new(&k, Role::Client, [1; 12]);
    let mut agent = SessionCipher::new(&k, Role::Agent, [2; 12]);
    let mut buf = [0u8; 64];
    let n = client.seal_to(b"ls -l\r", &mut buf).unwrap();
    assert_eq!(n, 6 + OVERHEAD);
    let mut own = buf;
    assert_eq!(client.open(&mut own[..n]), Err(Error::TagMismatch));
    assert_eq!(agent.open(&mut buf[..n]).unwrap(), b"ls -l\r");

    let n = agent.seal_to(b"total 0\r\n", &mut buf).unwrap();
    let mut own = buf;
    assert_eq!(agent.open(&mut own[..n]), Err(Error::TagMismatch));
    assert_eq!(client.open(&mut buf[..n]).unwrap(), b"total 0\r\n");
}

#[test]
fn nonces_count_up_from_the_start_and_carry() {
    let k = test_key();
    let mut start = [0u8; 12];
    start[10] = 0x01;
    start[11] = 0xff;
    let mut c = SessionCipher::new(&k, Role::Client, start);
    let mut buf = [0u8; OVERHEAD + 1];
    let mut nonces = Vec::new();
    for _ in 0..3 {
        c.seal_to(b"x", &mut buf).unwrap();
        nonces.push(hex::encode(&buf[..NONCE_LEN]));
    }
    assert_eq!(
        nonces,
        [
            "0000000000000000000001ff",
            "000000000000000000000200",
            "000000000000000000000201"
        ]
    );
    let mut c = SessionCipher::new(&k, Role::Client, [0xff; 12]);
    c.seal_to(b"x", &mut buf).unwrap();
    c.seal_to(b"x", &mut buf).unwrap();
    assert_eq!(&buf[..NONCE_LEN], &[0; 12]);
}

#[test]
fn a_short_buffer_uses_no_nonce_and_changes_nothing() {
    let k = test_key();
    let mut c = SessionCipher::new(&k, Role::Client, [0; 12]);
    let mut small = [7u8; OVERHEAD + 2];
    assert_eq!(
        c.seal(&mut small, 3),
        Err(Error::BufferTooSmall {
            required: 3 + OVERHEAD
        })
    );
    assert_eq!(small, [7u8; OVERHEAD + 2]);
    assert_eq!(
        c.seal_to(b"abc", &mut small),
        Err(Error::BufferTooSmall {
            required: 3 + OVERHEAD
        })
    );
    let mut buf = [0u8; 64];
    c.seal_to(b"abc", &mut buf).unwrap();
    assert_eq!(
        &buf[..NONCE_LEN],
        &[0; 12],
        "the first nonce is still unused"
    );
}

#[test]
fn hostile_sealed_payloads_are_refused_and_leave_the_buffer() {
    let k = test_key();
    let mut client = SessionCipher::new(&k, Role::Client, [9; 12]);
    let agent = SessionCipher::new(&k, Role::Agent, [0; 12]);
    let mut sealed = [0u8; 40];
    let n = client.seal_to(b"secret", &mut sealed).unwrap();
    let sealed = &sealed[..n];
    for len in 0..OVERHEAD {
        let mut b = sealed[..len].to_vec();
        assert_eq!(agent.open(&mut b), Err(Error::Truncated), "{len}");
    }
    // Empty plaintext is a valid 28-byte payload, but these 28 bytes are cut from a longer one.
    assert_eq!(
        agent.open(&mut sealed[..OVERHEAD].to_vec()),
        Err(Error::TagMismatch)
    );
    for i in 0..n {
        let mut b = sealed.to_vec();
        b[i] ^= 0x01;
        let copy = b.clone();
        assert_eq!(agent.open(&mut b), Err(Error::TagMismatch), "byte {i}");
        assert_eq!(b, copy, "byte {i}: the buffer is unchanged");
        let mut out = [0xaau8; 64];
        assert_eq!(agent.open_to(&b, &mut out), Err(Error::TagMismatch));
        assert!(out[..n].iter().all(|&x| x == 0));
    }
    let mut out = [0u8; 10];
    assert_eq!(
        agent.open_to(sealed, &mut out),
        Err(Error::BufferTooSmall { required: n })
    );
}

#[test]
fn keys_never_show_in_debug() {
    let k = DataKey::new([0xab; 64]);
    let c = SessionCipher::new(&k, Role::Client, [0; 12]);
    let shown = format!("{k:?} {c:?}");
    assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
    assert_eq!(
        DataKey::from_slice(&[0; 63]).err(),
        Some(Error::DataKeyLength)
    );
    let mut client = ClientKms::new();
    client.set_data_key(&[0xab; 64], [0; 12]).unwrap();
    let agent = AgentKms::new([0xcd; 16]);
    let shown = format!("{client:?} {agent:?}");
    assert!(
        !shown.contains("171") && !shown.contains("ab, ab"),
        "{shown}"
    );
}

// ----- handshake -----------------------------------------------------------------------------

const SESSION: &str = "user-0123456789abcdef0";
const TARGET: &str = "i-0123456789abcdef0";
const KEY_ID: &str = "arn:aws:kms:us-east-1:111122223333:key/abcd";
const BLOB: &[u8] = b"\x01\x02\x03 a KMS ciphertext blob, opaque to both ends \xff";

/// Plays KMS: "decrypts" the blob to the key only under the context it was generated with.
struct FakeKms {
    key: [u8; 64],
    context: Vec<(&'static str, std::string::String)>,
}

impl FakeKms {
    fn generate(req: &DataKeyRequest<'_>) -> Self {
        assert_eq!(req.number_of_bytes, 64);
        assert_eq!(req.key_id, KEY_ID);
        FakeKms {
            key: *test_key_bytes(),
            context: req.context.entries().map(|(k, v)| (k, v.into())).collect(),
        }
    }

    fn decrypt(&self, ctx: &EncryptionContext<'_>) -> Option<[u8; 64]> {
        let ctx: Vec<_> = ctx.entries().map(|(k, v)| (k, v.into())).collect();
        (ctx == self.context).then_some(self.key)
    }
}

/// Halves that differ, so that a payload reflected back to its sender fails.
fn test_key_bytes() -> &'static [u8; 64] {
    const K: [u8; 64] = {
        let mut k = [0x42; 64];
        k[63] = 0x43;
        k
    };
    &K
}

/// The agent's request, as the client parses it from the wire.
fn request_json(agent: &AgentKms) -> Vec<u8> {
    let actions = [agent.action(KEY_ID)];
    let r = HandshakeRequest {
        agent_version: JsonStr::new("3.3.40.0"),
        requested_client_actions: List::new(&actions),
    };
    let mut buf = [0u8; 512];
    let n = r.emit(&mut buf).unwrap();
    buf[..n].to_vec()
}

/// The client's processed action, emitted in a HandshakeResponse and parsed back.
fn response_json(result: ActionResult<'_>, status: ActionStatus) -> Vec<u8> {
    let processed = [ProcessedAction {
        action_type: ActionType::KmsEncryption,
        status,
        result,
        error: JsonStr::new(""),
    }];
    let r = HandshakeResponse {
        client_version: JsonStr::new("1.2.764.0"),
        processed_client_actions: List::new(&processed),
        errors: List::empty(),
    };
    let mut buf = [0u8; 1024];
    let n = r.emit(&mut buf).unwrap();
    buf[..n].to_vec()
}

fn first_action(json: &[u8]) -> ProcessedAction<'_> {
    HandshakeResponse::parse(json)
        .unwrap()
        .processed_client_actions
        .iter()
        .next()
        .unwrap()
}

/// Runs the client up to its HandshakeResponse; returns the client, KMS and the response JSON.
fn client_answers(agent: &AgentKms, ack: bool) -> (ClientKms, FakeKms, Vec<u8>) {
    let req_json = request_json(agent);
    let req = HandshakeRequest::parse(&req_json).unwrap();
    let (key_id, challenge) = req.kms().unwrap();
    assert_eq!(key_id, KEY_ID);
    let mut client = ClientKms::new();
    client.request(challenge.filter(|_| ack)).unwrap();
    let dk = client.data_key_request(key_id.as_str().unwrap(), SESSION, TARGET);
    let kms = FakeKms::generate(&dk);
    client.set_data_key(&kms.key, [0x10; 12]).unwrap();
    let mut buf = [0u8; 512];
    let result = client.action_result(BLOB, &mut buf).unwrap();
    let json = response_json(result, ActionStatus::Success);
    (client, kms, json)
}

#[test]
fn both_roles_agree_on_the_key_and_the_challenge() {
    let mut agent = AgentKms::new([0xc7; 16]);
    assert_eq!(agent.challenge(), "x8fHx8fHx8fHx8fHx8fHxw==");
    let (mut client, kms, json) = client_answers(&agent, true);
    assert!(client.acknowledges_challenge());
    let action = first_action(&json);
    assert!(matches!(
        action.result,
        ActionResult::Kms {
            challenge_acknowledgement: true,
            ..
        }
    ));
    let mut blob_buf = [0u8; MAX_BLOB_LEN];
    let blob = agent.check_result(&action, true, &mut blob_buf).unwrap();
    assert_eq!(blob, BLOB);
    let ctx = agent.encryption_context(SESSION, TARGET);
    assert_eq!(ctx.random_challenge, Some("x8fHx8fHx8fHx8fHx8fHxw=="));
    assert_eq!(ctx.entries().count(), 3);
    let plain = kms.decrypt(&ctx).expect("same context on both ends");

    let mut req_text = [0u8; ENC_CHALLENGE_TEXT_LEN];
    let request = agent
        .set_data_key(&plain, [0x20; 12], [0x33; 64], &mut req_text)
        .unwrap();
    // Through the wire form.
    let mut wire = [0u8; 256];
    let n = request.emit(&mut wire).unwrap();
    let request = EncChallenge::parse(&wire[..n]).unwrap();
    let mut answer_text = [0u8; ENC_CHALLENGE_TEXT_LEN];
    let answer = client.answer_challenge(&request, &mut answer_text).unwrap();
    assert_ne!(answer.challenge, request.challenge);
    assert!(!agent.is_verified());
    agent.verify(&answer).unwrap();
    assert!(agent.is_verified());

    // Data both ways.
    let mut buf = [0u8; 64];
    let n = client
        .cipher()
        .unwrap()
        .seal_to(b"whoami\r", &mut buf)
        .unwrap();
    assert_eq!(
        agent.cipher().unwrap().open(&mut buf[..n]).unwrap(),
        b"whoami\r"
    );
    let n = agent
        .cipher()
        .unwrap()
        .seal_to(b"root\r\n", &mut buf)
        .unwrap();
    assert_eq!(
        client.cipher().unwrap().open(&mut buf[..n]).unwrap(),
        b"root\r\n"
    );
}

#[test]
fn a_client_that_ignores_the_challenge() {
    // An older client (or agent) leaves RandomChallenge out of the context.
    let mut agent = AgentKms::new([1; 16]);
    let (_client, kms, json) = client_answers(&agent, false);
    let action = first_action(&json);
    let mut blob_buf = [0u8; MAX_BLOB_LEN];
    assert_eq!(
        agent.check_result(&action, true, &mut blob_buf),
        Err(Error::ChallengeNotAcknowledged)
    );
    agent.check_result(&action, false, &mut blob_buf).unwrap();
    let ctx = agent.encryption_context(SESSION, TARGET);
    assert_eq!(ctx.random_challenge, None);
    assert!(kms.decrypt(&ctx).is_some());
    // A context with the challenge would not decrypt that key.
    let with = EncryptionContext {
        random_challenge: Some(agent.challenge()),
        ..ctx
    };
    assert!(kms.decrypt(&with).is_none());
}

#[test]
fn hostile_action_results() {
    let agent = AgentKms::new([2; 16]);
    let (client, _kms, _) = client_answers(&agent, true);
    let mut buf = [0u8; 512];
    let good = client.action_result(BLOB, &mut buf).unwrap();
    let ActionResult::Kms {
        cipher_text_key,
        cipher_text_hash,
        ..
    } = good
    else {
        unreachable!()
    };
    let other_hash = {
        let mut b = [0u8; HASH_TEXT_LEN];
        let h = sha2::Sha256::digest(b"another blob");
        encode_base64(&h, &mut b).unwrap();
        b
    };
    let kms = |key: &'static str, hash: &'static str| ActionResult::Kms {
        cipher_text_key: JsonStr::new(key),
        cipher_text_hash: JsonStr::new(hash),
        challenge_acknowledgement: true,
    };
    let key: &'static str = std::string::String::from(cipher_text_key.as_str().unwrap()).leak();
    let hash: &'static str = std::string::String::from(cipher_text_hash.as_str().unwrap()).leak();
    let other: &'static str = std::string::String::from_utf8(other_hash.to_vec())
        .unwrap()
        .leak();
    let cases: Vec<(ActionResult<'_>, ActionStatus, Error)> = vec![
        (kms(key, other), ActionStatus::Success, Error::HashMismatch),
        (kms(key, "AAAA"), ActionStatus::Success, Error::HashMismatch),
        (
            kms(key, "not base64!"),
            ActionStatus::Success,
            Error::BadBase64("KMSCipherTextHash"),
        ),
        (
            kms("@@@@", hash),
            ActionStatus::Success,
            Error::BadBase64("KMSCipherTextKey"),
        ),
        (
            kms("QUJD", hash),
            ActionStatus::Success,
            Error::HashMismatch,
        ),
        (kms("", hash), ActionStatus::Success, Error::BlobLength),
        (kms(key, hash), ActionStatus::Failed, Error::NotProcessed),
        (
            kms(key, hash),
            ActionStatus::Unsupported,
            Error::NotProcessed,
        ),
        (
            ActionResult::None,
            ActionStatus::Success,
            Error::NotProcessed,
        ),
    ];
    for (result, status, want) in cases {
        let json = response_json(result, status);
        let action = first_action(&json);
        let mut agent = AgentKms::new([2; 16]);
        let mut blob_buf = [0u8; MAX_BLOB_LEN];
        assert_eq!(
            agent.check_result(&action, false, &mut blob_buf).err(),
            Some(want),
            "{}",
            std::string::String::from_utf8_lossy(&json)
        );
        // Nothing was installed: no challenge can be sent.
        let mut out = [0u8; ENC_CHALLENGE_TEXT_LEN];
        assert_eq!(
            agent
                .set_data_key(&[0; 64], [0; 12], [0; 64], &mut out)
                .err(),
            Some(Error::Unexpected)
        );
    }
    // A blob too long for the caller's buffer.
    let json = response_json(kms(key, hash), ActionStatus::Success);
    let mut agent = AgentKms::new([2; 16]);
    let mut small = [0u8; 8];
    assert_eq!(
        agent
            .check_result(&first_action(&json), false, &mut small)
            .err(),
        Some(Error::BlobLength)
    );
    assert_eq!(client.action_result(&[], &mut buf), Err(Error::BlobLength));
    assert_eq!(
        client.action_result(&[0; MAX_BLOB_LEN + 1], &mut buf),
        Err(Error::BlobLength)
    );
    assert!(matches!(
        client.action_result(BLOB, &mut buf[..10]),
        Err(Error::BufferTooSmall { .. })
    ));
}

#[test]
fn hostile_challenges() {
    let mut c = ClientKms::new();
    for (text, want) in [
        ("AAAAAAAAAAA=", Error::ChallengeLength), // 8 bytes
        ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", Error::ChallengeLength), // 24 bytes
        ("AAAAAAAAAAAAAAAAAAAAA===", Error::BadBase64("Challenge")),
        ("AAAAAAAAAAAAAAAAAAAA!A==", Error::BadBase64("Challenge")),
    ] {
        assert_eq!(c.request(Some(JsonStr::new(text))), Err(want), "{text}");
    }
    assert_eq!(
        c.request(Some(
            JsonStr::from_escaped("AAAAAAAAAAAAAAAAAAAA\\u0041A==").unwrap()
        )),
        Err(Error::BadBase64("Challenge"))
    );
    let mut out = [0u8; ENC_CHALLENGE_TEXT_LEN];
    let req = EncChallenge {
        challenge: JsonStr::new("AAAA"),
    };
    assert_eq!(
        c.answer_challenge(&req, &mut out).err(),
        Some(Error::Unexpected),
        "no key yet"
    );
    c.set_data_key(test_key_bytes(), [0; 12]).unwrap();

    // The agent's side, keyed, for real requests.
    let mut agent = AgentKms::new([3; 16]);
    let (_, _, json) = client_answers(&agent, true);
    let mut blob_buf = [0u8; MAX_BLOB_LEN];
    agent
        .check_result(&first_action(&json), true, &mut blob_buf)
        .unwrap();
    let mut req_text = [0u8; ENC_CHALLENGE_TEXT_LEN];
    let good = agent
        .set_data_key(test_key_bytes(), [0; 12], [0x77; 64], &mut req_text)
        .unwrap();
    let good_text = std::string::String::from(good.challenge.as_str().unwrap());

    let sealed_b64 = |plain: &[u8], role: Role| {
        let mut ci = SessionCipher::new(&DataKey::new(*test_key_bytes()), role, [5; 12]);
        let mut s = [0u8; 256];
        let n = ci.seal_to(plain, &mut s).unwrap();
        let mut t = [0u8; 400];
        std::string::String::from(encode_base64(&s[..n], &mut t).unwrap())
    };
    let short = sealed_b64(&[0x77; 32], Role::Agent);
    let long = sealed_b64(&[0x77; 65], Role::Agent);
    for (text, want) in [
        (short.as_str(), Error::ChallengeLength),
        (long.as_str(), Error::ChallengeLength),
        ("!!", Error::BadBase64("Challenge")),
        ("", Error::ChallengeLength),
    ] {
        let req = EncChallenge {
            challenge: JsonStr::new(text),
        };
        assert_eq!(
            c.answer_challenge(&req, &mut out).err(),
            Some(want),
            "{text}"
        );
        assert_eq!(agent.verify(&req), Err(want), "{text}");
    }
    // A challenge sealed under another key.
    let mut stranger = ClientKms::new();
    stranger.set_data_key(&[0x43; 64], [0; 12]).unwrap();
    let req = EncChallenge {
        challenge: JsonStr::new(&good_text),
    };
    assert_eq!(
        stranger.answer_challenge(&req, &mut out).err(),
        Some(Error::TagMismatch)
    );
    // The agent's own request echoed back: sealed with the agent's encrypt key, not the client's.
    assert_eq!(agent.verify(&req), Err(Error::TagMismatch));
    // Well sealed by the client's key, but other bytes.
    let wrong = sealed_b64(&[0x78; 64], Role::Client);
    let resp = EncChallenge {
        challenge: JsonStr::new(&wrong),
    };
    assert_eq!(agent.verify(&resp), Err(Error::ChallengeMismatch));
    assert!(!agent.is_verified());
    // The right answer still passes after the failures.
    let answer = c.answer_challenge(&req, &mut out).unwrap();
    agent.verify(&answer).unwrap();
    assert_eq!(agent.verify(&answer), Err(Error::Unexpected), "only once");
}

#[test]
fn kms_payloads_parse_and_emit() {
    let req = br#"{"AgentVersion":"3.3.40.0","RequestedClientActions":[{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"alias/ssm","Challenge":"AAECAwQFBgcICQoLDA0ODw=="}}]}"#;
    let r = HandshakeRequest::parse(req).unwrap();
    assert_eq!(
        r.kms(),
        Some((
            JsonStr::new("alias/ssm"),
            Some(JsonStr::new("AAECAwQFBgcICQoLDA0ODw=="))
        ))
    );
    let mut buf = [0u8; 256];
    let n = r.emit(&mut buf).unwrap();
    assert_eq!(&buf[..n], &req[..]);
    // An old agent: no challenge, and none written back.
    let old = br#"{"AgentVersion":"3.0.0.0","RequestedClientActions":[{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"alias/ssm"}}]}"#;
    let r = HandshakeRequest::parse(old).unwrap();
    assert_eq!(r.kms(), Some((JsonStr::new("alias/ssm"), None)));
    let n = r.emit(&mut buf).unwrap();
    assert_eq!(&buf[..n], &old[..]);
    for bad in [
        &br#"{"AgentVersion":"3","RequestedClientActions":[{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"k","Challenge":7}}]}"#[..],
        br#"{"AgentVersion":"3","RequestedClientActions":[{"ActionType":"KMSEncryption","ActionParameters":{"Challenge":"AA=="}}]}"#,
    ] {
        assert!(HandshakeRequest::parse(bad).is_err());
    }

    let resp = br#"{"ClientVersion":"1.2.764.0","ProcessedClientActions":[{"ActionType":"KMSEncryption","ActionStatus":1,"ActionResult":{"KMSCipherTextKey":"AQID","KMSCipherTextHash":"aGFzaA==","ChallengeAcknowledgement":true},"Error":""}],"Errors":[]}"#;
    let r = HandshakeResponse::parse(resp).unwrap();
    let a = r.processed_client_actions.iter().next().unwrap();
    assert_eq!(
        a.result,
        ActionResult::Kms {
            cipher_text_key: JsonStr::new("AQID"),
            cipher_text_hash: JsonStr::new("aGFzaA=="),
            challenge_acknowledgement: true,
        }
    );
    let mut buf = [0u8; 512];
    let n = r.emit(&mut buf).unwrap();
    assert_eq!(&buf[..n], &resp[..]);
    let bad = br#"{"ClientVersion":"1","ProcessedClientActions":[{"ActionType":"KMSEncryption","ActionStatus":1,"ActionResult":{"KMSCipherTextKey":"AQID","KMSCipherTextHash":"aGFzaA==","ChallengeAcknowledgement":"yes"},"Error":""}]}"#;
    assert!(HandshakeResponse::parse(bad).is_err());
}
