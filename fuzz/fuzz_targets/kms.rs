//! KMS encryption (PROTOCOL.md §6): the decrypt path and the KMS handshake payloads. First byte:
//! what to do with the rest.
//! - 0: the rest as a sealed payload: opening it never panics and fails (a forged tag), `open`
//!   and `open_to` agree; sealed as plaintext it opens to itself at the other end, and one
//!   flipped byte makes it fail.
//! - 1: the rest as a HandshakeRequest for a KMS client: the data key request, the action
//!   result, then the rest as an EncChallengeRequest.
//! - 2: the rest as a HandshakeResponse for a KMS agent: the checks of every processed action;
//!   a blob that passes has the SHA-256 the client claimed. Then the rest as an
//!   EncChallengeResponse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use ssm_proto::kms::{
    decode_base64, AgentKms, ClientKms, DataKey, SessionCipher, ENC_CHALLENGE_TEXT_LEN,
    MAX_BLOB_LEN, OVERHEAD,
};
use ssm_proto::payload::{ActionResult, EncChallenge, HandshakeRequest, HandshakeResponse};
use ssm_proto::session::Role;

fn key() -> [u8; 64] {
    let mut k = [0u8; 64];
    for (i, b) in k.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(73) ^ 0x11;
    }
    k
}

fn sealed_payloads(sel: u8, rest: &[u8]) {
    let key = DataKey::new(key());
    let agent = SessionCipher::new(&key, Role::Agent, [0; 12]);
    let mut buf = rest.to_vec();
    let opened = agent.open(&mut buf).map(|p| p.to_vec());
    let mut out = vec![0u8; rest.len()];
    let opened_to = agent.open_to(rest, &mut out).map(|n| out[..n].to_vec());
    assert_eq!(opened, opened_to);
    assert!(opened.is_err(), "a random payload authenticated");

    let mut client = SessionCipher::new(&key, Role::Client, [sel; 12]);
    let mut sealed = vec![0u8; rest.len() + OVERHEAD];
    let n = client.seal_to(rest, &mut sealed).unwrap();
    assert_eq!(n, rest.len() + OVERHEAD);
    let mut copy = sealed.clone();
    assert_eq!(agent.open(&mut copy).unwrap(), rest);
    let at = usize::from(sel) % sealed.len();
    sealed[at] ^= 0x80;
    assert!(agent.open(&mut sealed).is_err());
}

fn client_side(rest: &[u8]) {
    let mut client = ClientKms::new();
    if let Ok(req) = HandshakeRequest::parse(rest) {
        if let Some((key_id, challenge)) = req.kms() {
            if client.request(challenge).is_ok() {
                let id = key_id.as_str().unwrap_or("");
                let dk = client.data_key_request(id, "s-1", "i-1");
                assert_eq!(dk.context.random_challenge.is_some(), challenge.is_some());
            }
        }
    }
    client.set_data_key(&key(), [1; 12]).unwrap();
    let mut text = [0u8; 2048];
    let blob = &rest[..rest.len().min(MAX_BLOB_LEN)];
    if let Ok(ActionResult::Kms {
        cipher_text_key,
        cipher_text_hash,
        ..
    }) = client.action_result(blob, &mut text)
    {
        let mut back = [0u8; MAX_BLOB_LEN];
        let raw = cipher_text_key.as_str().unwrap();
        assert_eq!(decode_base64(raw.as_bytes(), &mut back, "k").unwrap(), blob);
        let mut hash = [0u8; 32];
        let raw = cipher_text_hash.as_str().unwrap();
        decode_base64(raw.as_bytes(), &mut hash, "h").unwrap();
        assert_eq!(hash, Sha256::digest(blob)[..]);
    }
    if let Ok(req) = EncChallenge::parse(rest) {
        let mut out = [0u8; ENC_CHALLENGE_TEXT_LEN];
        // Random text never holds a challenge sealed under this key.
        assert!(client.answer_challenge(&req, &mut out).is_err());
    }
}

fn agent_side(sel: u8, rest: &[u8]) {
    let Ok(resp) = HandshakeResponse::parse(rest) else {
        return;
    };
    for action in resp.processed_client_actions.iter() {
        let mut agent = AgentKms::new([sel; 16]);
        let mut blob = [0u8; MAX_BLOB_LEN];
        let Ok(blob) = agent.check_result(&action, sel & 1 == 1, &mut blob) else {
            continue;
        };
        let ActionResult::Kms {
            cipher_text_hash, ..
        } = action.result
        else {
            panic!("accepted a result that is not KMS");
        };
        let mut hash = [0u8; 35];
        let raw = cipher_text_hash.as_str().unwrap();
        let hash = decode_base64(raw.as_bytes(), &mut hash, "h").unwrap();
        assert_eq!(hash, &Sha256::digest(blob)[..]);
        let mut out = [0u8; ENC_CHALLENGE_TEXT_LEN];
        agent
            .set_data_key(&key(), [2; 12], [sel; 64], &mut out)
            .unwrap();
        if let Ok(r) = EncChallenge::parse(rest) {
            assert!(agent.verify(&r).is_err());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 3 {
        0 => sealed_payloads(sel, rest),
        1 => client_side(rest),
        _ => agent_side(sel, rest),
    }
});
