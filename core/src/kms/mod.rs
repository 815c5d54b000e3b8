//! KMS session encryption (PROTOCOL.md §6), sans IO and without allocation.
//!
//! When the session preferences name a KMS key, the agent's HandshakeRequest carries a
//! `KMSEncryption` action. The client asks KMS (`GenerateDataKey`, 64 bytes) for a data key
//! under an exact encryption context, answers with the key's ciphertext blob, and both ends then
//! seal their stream payloads with AES-256-GCM under the two halves of the key:
//!
//! ```text
//!  agent                                         client
//!   HandshakeRequest KMSEncryption{KMSKeyId, Challenge} ─►  ClientKms::request
//!                                                       ◄─ (caller: KMS GenerateDataKey)
//!   AgentKms::check_result ◄─ HandshakeResponse {KMSCipherTextKey, KMSCipherTextHash,
//!   (caller: KMS Decrypt)                                    ChallengeAcknowledgement}
//!   AgentKms::set_data_key ── EncChallengeRequest ─────────►  ClientKms::answer_challenge
//!   AgentKms::verify ◄─────── EncChallengeResponse ────────
//!   HandshakeComplete ─────────────────────────────────────►
//! ```
//!
//! This module never talks to KMS, reads a clock or draws random numbers: the caller does the
//! KMS calls and hands in every random value (nonce starts, challenges). [`SessionCipher`]
//! seals and opens payloads in the caller's buffers.
//!
//! Keys never appear in `Debug` output and are wiped when dropped ([`DataKey`],
//! [`SessionCipher`]).

use core::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use base64ct::{Base64, Encoding};
use zeroize::Zeroize;

use crate::payload;
use crate::session::Role;

mod handshake;

pub use handshake::{AgentKms, ClientKms, DataKeyRequest, EncryptionContext};

/// Bytes of the data key the client asks KMS for (`NumberOfBytes: 64`): two AES-256 keys.
pub const DATA_KEY_LEN: usize = 64;
/// Bytes of one AES-256 key.
const KEY_LEN: usize = 32;
/// AES-GCM nonce: 96 bits, what the agent and the plugin use.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag: 128 bits.
pub const TAG_LEN: usize = 16;
/// What sealing adds to a payload: `nonce(12) ‖ ciphertext ‖ tag(16)`.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Random bytes of the HandshakeRequest's `Challenge` (the agent draws 16).
pub const CHALLENGE_LEN: usize = 16;
/// Random bytes the agent seals into its EncChallengeRequest (the agent draws 64).
pub const ENC_CHALLENGE_LEN: usize = 64;
/// Longest KMS ciphertext blob accepted. A blob for a 64-byte data key under a symmetric KMS
/// key is a few hundred bytes; KMS documents 6144 bytes as its upper bound for any ciphertext,
/// which no data key comes near.
pub const MAX_BLOB_LEN: usize = 1024;

/// Length of the standard, padded base64 text of `n` bytes.
pub const fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Base64 length of the `Challenge` text.
pub const CHALLENGE_TEXT_LEN: usize = base64_len(CHALLENGE_LEN);
/// Base64 length of an EncChallenge's `Challenge` (a sealed 64-byte challenge).
pub const ENC_CHALLENGE_TEXT_LEN: usize = base64_len(ENC_CHALLENGE_LEN + OVERHEAD);
/// Base64 length of `KMSCipherTextHash` (a SHA-256).
pub const HASH_TEXT_LEN: usize = base64_len(32);
/// Base64 length of the longest `KMSCipherTextKey`.
pub const MAX_BLOB_TEXT_LEN: usize = base64_len(MAX_BLOB_LEN);

/// A KMS encryption step failed. Every variant but [`Error::BufferTooSmall`] and
/// [`Error::DataKeyLength`] comes from what the peer (or KMS) sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The data key is not [`DATA_KEY_LEN`] bytes.
    DataKeyLength,
    /// A sealed payload is shorter than nonce and tag.
    Truncated,
    /// A sealed payload's tag does not verify: wrong key, or altered in transit.
    TagMismatch,
    /// A field is not standard padded base64 (the JSON key).
    BadBase64(&'static str),
    /// `KMSCipherTextHash` is not the SHA-256 of `KMSCipherTextKey`.
    HashMismatch,
    /// The ciphertext blob is empty or longer than [`MAX_BLOB_LEN`].
    BlobLength,
    /// A challenge decodes to the wrong number of bytes.
    ChallengeLength,
    /// The EncChallengeResponse does not hold the agent's challenge.
    ChallengeMismatch,
    /// The client did not acknowledge the challenge, and the agent requires it.
    ChallengeNotAcknowledged,
    /// The client did not process the KMSEncryption action (failed, unsupported, absent or
    /// without a KMS result).
    NotProcessed,
    /// KMS (through the caller) refused the data key.
    KeyRefused,
    /// A KMS message arrived out of order (e.g. a challenge before the data key).
    Unexpected,
    /// A KMS payload is malformed.
    Payload(payload::Error),
    /// The caller's buffer is too small; nothing was written.
    BufferTooSmall {
        /// Bytes needed.
        required: usize,
    },
}

impl Error {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Error::DataKeyLength => "kms data key is not 64 bytes",
            Error::Truncated => "encrypted payload is shorter than nonce and tag",
            Error::TagMismatch => "encrypted payload does not authenticate",
            Error::BadBase64(_) => "kms field is not valid base64",
            Error::HashMismatch => "kms ciphertext hash does not match the ciphertext key",
            Error::BlobLength => "kms ciphertext key is empty or too long",
            Error::ChallengeLength => "kms challenge has the wrong length",
            Error::ChallengeMismatch => "kms challenge response does not match",
            Error::ChallengeNotAcknowledged => "client did not acknowledge the kms challenge",
            Error::NotProcessed => "client did not process the kms encryption action",
            Error::KeyRefused => "kms refused the data key",
            Error::Unexpected => "kms message out of order",
            Error::Payload(_) => "kms payload is malformed",
            Error::BufferTooSmall { .. } => "buffer too small",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadBase64(k) => write!(f, "{}: `{k}`", self.as_str()),
            Error::Payload(e) => write!(f, "{}: {e}", self.as_str()),
            Error::BufferTooSmall { required } => {
                write!(f, "{}: {required} bytes required", self.as_str())
            }
            _ => f.write_str(self.as_str()),
        }
    }
}

impl core::error::Error for Error {}

impl From<payload::Error> for Error {
    fn from(e: payload::Error) -> Self {
        Error::Payload(e)
    }
}

/// The 64-byte plaintext data key from KMS. Wiped on drop; `Debug` shows no byte of it.
#[derive(Clone)]
pub struct DataKey([u8; DATA_KEY_LEN]);

impl DataKey {
    /// Wraps the key bytes.
    pub const fn new(bytes: [u8; DATA_KEY_LEN]) -> Self {
        DataKey(bytes)
    }

    /// Copies a key from KMS's `Plaintext`.
    ///
    /// # Errors
    /// [`Error::DataKeyLength`] unless `bytes` is exactly [`DATA_KEY_LEN`] long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let mut k = [0; DATA_KEY_LEN];
        if bytes.len() != DATA_KEY_LEN {
            return Err(Error::DataKeyLength);
        }
        k.copy_from_slice(bytes);
        Ok(DataKey(k))
    }

    /// The two AES-256 keys `(decrypt, encrypt)` of `role`: the client decrypts with bytes
    /// 0..32 and encrypts with 32..64, the agent the other way round (PROTOCOL.md §6).
    fn halves(&self, role: Role) -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
        let mut lo = [0; KEY_LEN];
        let mut hi = [0; KEY_LEN];
        lo.copy_from_slice(&self.0[..KEY_LEN]);
        hi.copy_from_slice(&self.0[KEY_LEN..]);
        match role {
            Role::Client => (lo, hi),
            Role::Agent => (hi, lo),
        }
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// One end's AES-256-GCM state: its encrypt key, its decrypt key and its nonce counter.
///
/// # Nonces
/// A nonce never repeats under one key: each [`seal`](Self::seal) takes the counter's value and
/// adds one to it (96-bit big-endian, wrapping only after 2⁹⁶ messages). The counter starts at
/// the random value you pass to [`new`](Self::new), as the agent's does; both ends seal under
/// their own half of a fresh per-session data key, so the two counters never share a key.
/// Across a reconnect keep the same `SessionCipher` (PROTOCOL.md §6a): a new one under the same
/// key would restart the counter.
///
/// Keys are held as bytes (64 in all) and expanded for each call, so a device keeps no AES
/// key schedule in RAM between messages; the expanded schedule is wiped after use. Both keys are
/// wiped on drop; `Debug` shows neither.
pub struct SessionCipher {
    encrypt: [u8; KEY_LEN],
    decrypt: [u8; KEY_LEN],
    nonce: [u8; NONCE_LEN],
}

impl SessionCipher {
    /// The cipher of `role` for `key`, its nonce counter starting at `nonce_start` (take it from
    /// a random source).
    pub fn new(key: &DataKey, role: Role, nonce_start: [u8; NONCE_LEN]) -> Self {
        let (decrypt, encrypt) = key.halves(role);
        SessionCipher {
            encrypt,
            decrypt,
            nonce: nonce_start,
        }
    }

    fn next_nonce(&mut self) -> [u8; NONCE_LEN] {
        let n = self.nonce;
        for b in self.nonce.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        n
    }

    /// Seals the `len` plaintext bytes at the start of `buf` in place: on success `buf[..len +
    /// OVERHEAD]` holds `nonce ‖ ciphertext ‖ tag` and the length is returned.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `buf` is shorter than `len + OVERHEAD` (nothing changes,
    /// no nonce is used).
    pub fn seal(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let required = len + OVERHEAD;
        if buf.len() < required {
            return Err(Error::BufferTooSmall { required });
        }
        buf.copy_within(..len, NONCE_LEN);
        let nonce = self.next_nonce();
        buf[..NONCE_LEN].copy_from_slice(&nonce);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.encrypt));
        let (head, tail) = buf[NONCE_LEN..required].split_at_mut(len);
        // Only a message over 64 GiB fails (the GCM limit); no slice can be that long here.
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &[], head)
            .map_err(|_| Error::BufferTooSmall { required })?;
        tail.copy_from_slice(&tag);
        Ok(required)
    }

    /// Seals `plaintext` into `out`; returns the sealed length (`plaintext.len() + OVERHEAD`).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] (nothing written, no nonce used).
    pub fn seal_to(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let required = plaintext.len() + OVERHEAD;
        if out.len() < required {
            return Err(Error::BufferTooSmall { required });
        }
        out[..plaintext.len()].copy_from_slice(plaintext);
        self.seal(out, plaintext.len())
    }

    /// Opens the sealed payload `buf` (`nonce ‖ ciphertext ‖ tag`) in place and returns the
    /// plaintext, a sub-slice of `buf` starting at [`NONCE_LEN`].
    ///
    /// # Errors
    /// [`Error::Truncated`] (shorter than [`OVERHEAD`]) or [`Error::TagMismatch`]; `buf` is
    /// unchanged then.
    pub fn open<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8], Error> {
        if buf.len() < OVERHEAD {
            return Err(Error::Truncated);
        }
        let (nonce, rest) = buf.split_at_mut(NONCE_LEN);
        let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.decrypt));
        cipher
            .decrypt_in_place_detached(Nonce::from_slice(nonce), &[], body, Tag::from_slice(tag))
            .map_err(|_| Error::TagMismatch)?;
        Ok(body)
    }

    /// Opens `sealed` into `out`; returns the plaintext length (`sealed.len() - OVERHEAD`).
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::BufferTooSmall`], [`Error::TagMismatch`] (then `out`
    /// holds no plaintext: it is zeroed).
    pub fn open_to(&self, sealed: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        if sealed.len() < OVERHEAD {
            return Err(Error::Truncated);
        }
        let len = sealed.len() - OVERHEAD;
        if out.len() < sealed.len() {
            return Err(Error::BufferTooSmall {
                required: sealed.len(),
            });
        }
        out[..sealed.len()].copy_from_slice(sealed);
        match self.open(&mut out[..sealed.len()]) {
            Ok(_) => {
                out.copy_within(NONCE_LEN..NONCE_LEN + len, 0);
                Ok(len)
            }
            Err(e) => {
                out[..sealed.len()].zeroize();
                Err(e)
            }
        }
    }
}

impl Drop for SessionCipher {
    fn drop(&mut self) {
        self.encrypt.zeroize();
        self.decrypt.zeroize();
    }
}

impl fmt::Debug for SessionCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionCipher(<redacted>)")
    }
}

/// Standard padded base64 of `src` into `dst`.
///
/// # Errors
/// [`Error::BufferTooSmall`].
pub fn encode_base64<'b>(src: &[u8], dst: &'b mut [u8]) -> Result<&'b str, Error> {
    Base64::encode(src, dst).map_err(|_| Error::BufferTooSmall {
        required: base64_len(src.len()),
    })
}

/// Decodes standard padded base64 `src` (field `key`) into `dst`.
///
/// # Errors
/// [`Error::BadBase64`] for invalid text or text that decodes to more than `dst` holds.
pub fn decode_base64<'b>(
    src: &[u8],
    dst: &'b mut [u8],
    key: &'static str,
) -> Result<&'b [u8], Error> {
    Base64::decode(src, dst).map_err(|_| Error::BadBase64(key))
}

/// Compares without stopping at the first difference.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
