//! KMS session encryption's cipher on the Cortex-M4 (ssm-proto's `kms` feature): NIST
//! AES-256-GCM known answers (the core's own `nist_vectors.rs`, included) through
//! `SessionCipher` and the 64-byte key split, each end opening what the other sealed and
//! not its own, and tampered payloads refused with the buffer left as it was.

use ssm_proto::kms::{DataKey, Error, SessionCipher, DATA_KEY_LEN, NONCE_LEN, OVERHEAD};
use ssm_proto::session::Role;

use crate::check;
use crate::harness::{Test, TestResult};

include!("../../../../core/src/kms/nist_vectors.rs");

/// The tests in this module.
pub static TESTS: &[Test] = &[
    Test {
        name: "nist_aes256_gcm_known_answers",
        run: nist_aes256_gcm_known_answers,
    },
    Test {
        name: "key_split_client_seals_agent_opens",
        run: key_split_client_seals_agent_opens,
    },
    Test {
        name: "tampered_payloads_are_refused",
        run: tampered_payloads_are_refused,
    },
];

/// Largest plaintext among the vectors (51 bytes) with its overhead, rounded up.
const BUF: usize = 128;

/// Decodes hex into `out`; the decoded length, or `None` for bad hex or no room.
fn unhex(s: &str, out: &mut [u8]) -> Option<usize> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) || s.len() / 2 > out.len() {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    for (i, pair) in s.chunks(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(s.len() / 2)
}

fn nist_aes256_gcm_known_answers() -> TestResult {
    check!(NIST.len() == 5);
    for &(key, iv, pt, ct, tag) in NIST {
        // `[0; 32] ‖ key`: the client encrypts with bytes 32..64, the agent decrypts with them.
        let mut k = [0u8; DATA_KEY_LEN];
        check!(unhex(key, &mut k[32..]) == Some(32), key);
        let key = DataKey::new(k);
        let mut nonce = [0u8; NONCE_LEN];
        check!(unhex(iv, &mut nonce) == Some(NONCE_LEN), iv);
        let mut plain = [0u8; BUF];
        let Some(pt_len) = unhex(pt, &mut plain) else {
            return Err(crate::harness::Failure {
                line: line!(),
                expr: "unhex(pt)",
                ctx: pt,
            });
        };
        // nonce ‖ CT ‖ tag, as the session carries it.
        let mut want = [0u8; BUF];
        want[..NONCE_LEN].copy_from_slice(&nonce);
        check!(unhex(ct, &mut want[NONCE_LEN..]) == Some(pt_len), ct);
        check!(unhex(tag, &mut want[NONCE_LEN + pt_len..]) == Some(16), tag);
        let sealed_len = pt_len + OVERHEAD;

        let mut client = SessionCipher::new(&key, Role::Client, nonce);
        let mut out = [0u8; BUF];
        check!(
            client.seal_to(&plain[..pt_len], &mut out) == Ok(sealed_len),
            ct
        );
        check!(out[..sealed_len] == want[..sealed_len], tag);
        // In place, from a fresh cipher at the same nonce.
        let mut client = SessionCipher::new(&key, Role::Client, nonce);
        let mut buf = [0u8; BUF];
        buf[..pt_len].copy_from_slice(&plain[..pt_len]);
        check!(client.seal(&mut buf, pt_len) == Ok(sealed_len), ct);
        check!(buf[..sealed_len] == want[..sealed_len], tag);

        let agent = SessionCipher::new(&key, Role::Agent, [0; NONCE_LEN]);
        let mut opened = [0u8; BUF];
        check!(
            agent.open_to(&want[..sealed_len], &mut opened) == Ok(pt_len),
            pt
        );
        check!(opened[..pt_len] == plain[..pt_len], pt);
    }
    Ok(())
}

fn test_key() -> DataKey {
    let mut k = [0u8; DATA_KEY_LEN];
    for (i, b) in k.iter_mut().enumerate() {
        *b = i as u8 ^ 0x5a;
    }
    DataKey::new(k)
}

fn key_split_client_seals_agent_opens() -> TestResult {
    let key = test_key();
    let mut client = SessionCipher::new(&key, Role::Client, [1; NONCE_LEN]);
    let mut agent = SessionCipher::new(&key, Role::Agent, [2; NONCE_LEN]);
    let mut buf = [0u8; 64];
    let n = client.seal_to(b"ls -l\r", &mut buf);
    check!(n == Ok(6 + OVERHEAD));
    let n = 6 + OVERHEAD;
    // The nonce counts from the start given.
    check!(buf[..NONCE_LEN] == [1; NONCE_LEN]);
    let mut own = buf;
    check!(
        client.open(&mut own[..n]).err() == Some(Error::TagMismatch),
        "client"
    );
    check!(agent.open(&mut buf[..n]).ok().map(|p| &*p) == Some(&b"ls -l\r"[..]));

    let n = agent.seal_to(b"total 0\r\n", &mut buf);
    check!(n == Ok(9 + OVERHEAD));
    let n = 9 + OVERHEAD;
    let mut own = buf;
    check!(
        agent.open(&mut own[..n]).err() == Some(Error::TagMismatch),
        "agent"
    );
    check!(client.open(&mut buf[..n]).ok().map(|p| &*p) == Some(&b"total 0\r\n"[..]));
    // A second seal takes the next nonce.
    check!(client.seal_to(b"x", &mut buf).is_ok());
    let mut next = [1u8; NONCE_LEN];
    next[NONCE_LEN - 1] = 2;
    check!(buf[..NONCE_LEN] == next);
    Ok(())
}

fn tampered_payloads_are_refused() -> TestResult {
    let key = test_key();
    let mut client = SessionCipher::new(&key, Role::Client, [9; NONCE_LEN]);
    let agent = SessionCipher::new(&key, Role::Agent, [0; NONCE_LEN]);
    let mut sealed = [0u8; 64];
    let n = 20 + OVERHEAD;
    check!(client.seal_to(b"twenty bytes of text", &mut sealed) == Ok(n));
    // One bit flipped in the nonce, the ciphertext and the tag.
    for (at, ctx) in [(0, "nonce"), (NONCE_LEN + 3, "ciphertext"), (n - 1, "tag")] {
        let mut bad = sealed;
        bad[at] ^= 0x01;
        let before = bad;
        check!(
            agent.open(&mut bad[..n]).err() == Some(Error::TagMismatch),
            ctx
        );
        check!(bad == before, ctx);
        let mut out = [0xeeu8; 64];
        check!(
            agent.open_to(&bad[..n], &mut out) == Err(Error::TagMismatch),
            ctx
        );
        // What it copied in is wiped; the rest of `out` is not touched.
        check!(out[..n].iter().all(|&b| b == 0), ctx);
        check!(out[n..].iter().all(|&b| b == 0xee), ctx);
    }
    // A tag cut short, and a payload shorter than nonce and tag.
    let mut short = sealed;
    check!(
        agent.open(&mut short[..n - 1]).err() == Some(Error::TagMismatch),
        "cut"
    );
    check!(
        agent.open(&mut short[..OVERHEAD - 1]).err() == Some(Error::Truncated),
        "short"
    );
    // The untouched payload still opens.
    check!(agent.open(&mut sealed[..n]).ok().map(|p| &*p) == Some(&b"twenty bytes of text"[..]));
    Ok(())
}
