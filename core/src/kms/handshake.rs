//! The KMS part of the handshake, for both ends, independent of the session engine.

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::{
    ct_eq, decode_base64, encode_base64, DataKey, Error, SessionCipher, CHALLENGE_LEN,
    CHALLENGE_TEXT_LEN, ENC_CHALLENGE_LEN, ENC_CHALLENGE_TEXT_LEN, HASH_TEXT_LEN, MAX_BLOB_LEN,
    NONCE_LEN, OVERHEAD,
};
use crate::payload::{
    Action, ActionResult, ActionStatus, ActionType, EncChallenge, JsonStr, ProcessedAction,
};
use crate::session::Role;

const CHALLENGE_KEY: &str = "Challenge";
const SEALED_CHALLENGE_LEN: usize = ENC_CHALLENGE_LEN + OVERHEAD;

/// The encryption context of the data key (PROTOCOL.md §6): the client passes exactly these
/// entries to KMS `GenerateDataKey`, the agent to `Decrypt`. KMS refuses to decrypt under a
/// context that differs in any entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EncryptionContext<'a> {
    /// `aws:ssm:SessionId`.
    pub session_id: &'a str,
    /// `aws:ssm:TargetId`: the instance (or managed node) id.
    pub target_id: &'a str,
    /// `aws:ssm:RandomChallenge`: the HandshakeRequest's `Challenge` text, present when the
    /// client acknowledges it.
    pub random_challenge: Option<&'a str>,
}

impl<'a> EncryptionContext<'a> {
    /// Key of the session id entry.
    pub const SESSION_ID: &'static str = "aws:ssm:SessionId";
    /// Key of the target id entry.
    pub const TARGET_ID: &'static str = "aws:ssm:TargetId";
    /// Key of the challenge entry.
    pub const RANDOM_CHALLENGE: &'static str = "aws:ssm:RandomChallenge";

    /// The entries, `(key, value)`, two or three of them.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, &'a str)> {
        [
            Some((Self::SESSION_ID, self.session_id)),
            Some((Self::TARGET_ID, self.target_id)),
            self.random_challenge.map(|c| (Self::RANDOM_CHALLENGE, c)),
        ]
        .into_iter()
        .flatten()
    }
}

/// What the client asks KMS `GenerateDataKey` for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DataKeyRequest<'a> {
    /// `KeyId`: the action's `KMSKeyId`.
    pub key_id: &'a str,
    /// `NumberOfBytes`: always [`super::DATA_KEY_LEN`].
    pub number_of_bytes: usize,
    /// `EncryptionContext`.
    pub context: EncryptionContext<'a>,
}

fn text(bytes: &[u8]) -> &str {
    // Base64 output is ASCII.
    core::str::from_utf8(bytes).unwrap_or("")
}

/// Decodes a sealed challenge (`Challenge` of an EncChallenge) into `out`.
fn decode_sealed<'b>(
    c: &EncChallenge<'_>,
    out: &'b mut [u8; SEALED_CHALLENGE_LEN + 3],
) -> Result<&'b mut [u8], Error> {
    let raw = c
        .challenge
        .as_str()
        .map_err(|_| Error::BadBase64(CHALLENGE_KEY))?;
    if raw.len() > super::base64_len(out.len()) {
        return Err(Error::ChallengeLength);
    }
    let n = decode_base64(raw.as_bytes(), out, CHALLENGE_KEY)?.len();
    if n != SEALED_CHALLENGE_LEN {
        return Err(Error::ChallengeLength);
    }
    Ok(&mut out[..n])
}

/// Seals `plain` (64 bytes) with `cipher` and writes the base64 into `out`.
fn seal_challenge<'b>(
    cipher: &mut SessionCipher,
    plain: &[u8],
    out: &'b mut [u8; ENC_CHALLENGE_TEXT_LEN],
) -> Result<EncChallenge<'b>, Error> {
    let mut sealed = [0u8; SEALED_CHALLENGE_LEN];
    cipher.seal_to(plain, &mut sealed)?;
    let s = encode_base64(&sealed, out)?;
    Ok(EncChallenge {
        challenge: JsonStr::new(s),
    })
}

/// The client's side of KMS encryption.
///
/// Call order: [`request`](Self::request) with the HandshakeRequest's KMSEncryption action;
/// ask KMS for [`data_key_request`](Self::data_key_request); hand the plaintext to
/// [`set_data_key`](Self::set_data_key) and answer the action with
/// [`action_result`](Self::action_result) of the ciphertext blob; answer the EncChallengeRequest
/// with [`answer_challenge`](Self::answer_challenge); then seal and open stream payloads with
/// [`cipher`](Self::cipher).
#[derive(Debug)]
pub struct ClientKms {
    /// The request's `Challenge` text, when it sent one (this client always acknowledges it).
    challenge: Option<[u8; CHALLENGE_TEXT_LEN]>,
    cipher: Option<SessionCipher>,
}

impl Default for ClientKms {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientKms {
    /// Nothing requested yet.
    pub const fn new() -> Self {
        ClientKms {
            challenge: None,
            cipher: None,
        }
    }

    /// Takes the KMSEncryption action's `Challenge`.
    ///
    /// # Errors
    /// [`Error::BadBase64`] or [`Error::ChallengeLength`] (not base64 of 16 bytes).
    pub fn request(&mut self, challenge: Option<JsonStr<'_>>) -> Result<(), Error> {
        self.challenge = match challenge {
            None => None,
            Some(c) => {
                let raw = c.as_str().map_err(|_| Error::BadBase64(CHALLENGE_KEY))?;
                if raw.len() != CHALLENGE_TEXT_LEN {
                    return Err(Error::ChallengeLength);
                }
                let mut bytes = [0u8; CHALLENGE_LEN + 2];
                let n = decode_base64(raw.as_bytes(), &mut bytes, CHALLENGE_KEY)?.len();
                if n != CHALLENGE_LEN {
                    return Err(Error::ChallengeLength);
                }
                let mut t = [0u8; CHALLENGE_TEXT_LEN];
                t.copy_from_slice(raw.as_bytes());
                Some(t)
            }
        };
        Ok(())
    }

    /// Whether the answer acknowledges a challenge (the request carried one).
    pub fn acknowledges_challenge(&self) -> bool {
        self.challenge.is_some()
    }

    /// What to ask KMS `GenerateDataKey` for: key `key_id` (the action's `KMSKeyId`), 64
    /// bytes, and the context of this session and target (with the challenge when the request
    /// carried one).
    pub fn data_key_request<'s>(
        &'s self,
        key_id: &'s str,
        session_id: &'s str,
        target_id: &'s str,
    ) -> DataKeyRequest<'s> {
        DataKeyRequest {
            key_id,
            number_of_bytes: super::DATA_KEY_LEN,
            context: EncryptionContext {
                session_id,
                target_id,
                random_challenge: self.challenge.as_ref().map(|c| text(c)),
            },
        }
    }

    /// Installs KMS's plaintext data key; the nonce counter starts at `nonce_start` (random).
    ///
    /// # Errors
    /// [`Error::DataKeyLength`].
    pub fn set_data_key(
        &mut self,
        plaintext: &[u8],
        nonce_start: [u8; NONCE_LEN],
    ) -> Result<(), Error> {
        let key = DataKey::from_slice(plaintext)?;
        self.cipher = Some(SessionCipher::new(&key, Role::Client, nonce_start));
        Ok(())
    }

    /// The HandshakeResponse's ActionResult for the ciphertext `blob`: the blob and its
    /// SHA-256 in base64 (written into `buf`, which needs `base64_len(blob.len()) + 44` bytes),
    /// and the challenge acknowledgement.
    ///
    /// # Errors
    /// [`Error::BlobLength`] (empty or over [`MAX_BLOB_LEN`]), [`Error::BufferTooSmall`].
    pub fn action_result<'b>(
        &self,
        blob: &[u8],
        buf: &'b mut [u8],
    ) -> Result<ActionResult<'b>, Error> {
        if blob.is_empty() || blob.len() > MAX_BLOB_LEN {
            return Err(Error::BlobLength);
        }
        let key_len = super::base64_len(blob.len());
        let required = key_len + HASH_TEXT_LEN;
        if buf.len() < required {
            return Err(Error::BufferTooSmall { required });
        }
        let (k, h) = buf.split_at_mut(key_len);
        let key = encode_base64(blob, k)?;
        let hash = encode_base64(&Sha256::digest(blob), &mut h[..HASH_TEXT_LEN])?;
        Ok(ActionResult::Kms {
            cipher_text_key: JsonStr::new(key),
            cipher_text_hash: JsonStr::new(hash),
            challenge_acknowledgement: self.acknowledges_challenge(),
        })
    }

    /// Answers the agent's EncChallengeRequest: opens its challenge with this end's decrypt
    /// key and seals it again with its encrypt key; the answer's text is written into `out`.
    ///
    /// # Errors
    /// [`Error::Unexpected`] (no data key yet), [`Error::BadBase64`], [`Error::ChallengeLength`]
    /// (not a sealed 64-byte challenge), [`Error::TagMismatch`] (the agent holds another key).
    pub fn answer_challenge<'b>(
        &mut self,
        request: &EncChallenge<'_>,
        out: &'b mut [u8; ENC_CHALLENGE_TEXT_LEN],
    ) -> Result<EncChallenge<'b>, Error> {
        let cipher = self.cipher.as_mut().ok_or(Error::Unexpected)?;
        let mut buf = [0u8; SEALED_CHALLENGE_LEN + 3];
        let sealed = decode_sealed(request, &mut buf)?;
        let answer = match cipher.open(sealed) {
            Ok(plain) => seal_challenge(cipher, plain, out),
            Err(e) => Err(e),
        };
        buf.zeroize();
        answer
    }

    /// The cipher, once the data key is set.
    pub fn cipher(&mut self) -> Option<&mut SessionCipher> {
        self.cipher.as_mut()
    }

    /// Takes the cipher out, for the data phase.
    pub fn take_cipher(&mut self) -> Option<SessionCipher> {
        self.cipher.take()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgentPhase {
    /// The action went out; waiting for the client's result.
    Requested,
    /// The client's blob passed the checks; waiting for the caller's KMS Decrypt.
    KeyChecked,
    /// EncChallengeRequest sent; waiting for the response.
    ChallengeSent,
    /// The client holds the same key.
    Verified,
}

/// The agent's side of KMS encryption (the emulator's and the tests' role).
///
/// Call order: [`new`](Self::new) with 16 random bytes, put [`action`](Self::action) into the
/// HandshakeRequest; pass the client's processed KMSEncryption action to
/// [`check_result`](Self::check_result) and the blob it returns to KMS `Decrypt` under
/// [`encryption_context`](Self::encryption_context); hand the plaintext to
/// [`set_data_key`](Self::set_data_key) and send the EncChallengeRequest it returns; check the
/// response with [`verify`](Self::verify); then seal and open with [`cipher`](Self::cipher).
pub struct AgentKms {
    challenge: [u8; CHALLENGE_TEXT_LEN],
    acknowledged: bool,
    /// The 64 bytes sealed into the EncChallengeRequest; wiped on drop.
    expected: [u8; ENC_CHALLENGE_LEN],
    cipher: Option<SessionCipher>,
    phase: AgentPhase,
}

impl AgentKms {
    /// A KMS handshake whose `Challenge` is `random` (take it from a random source).
    pub fn new(random: [u8; CHALLENGE_LEN]) -> Self {
        let mut challenge = [0u8; CHALLENGE_TEXT_LEN];
        // Cannot fail: the buffer holds exactly the base64 of 16 bytes.
        let _ = encode_base64(&random, &mut challenge);
        AgentKms {
            challenge,
            acknowledged: false,
            expected: [0; ENC_CHALLENGE_LEN],
            cipher: None,
            phase: AgentPhase::Requested,
        }
    }

    /// The `Challenge` text of the action.
    pub fn challenge(&self) -> &str {
        text(&self.challenge)
    }

    /// The KMSEncryption action for the HandshakeRequest.
    pub fn action<'a>(&'a self, kms_key_id: &'a str) -> Action<'a> {
        Action::KmsEncryption {
            kms_key_id: JsonStr::new(kms_key_id),
            challenge: Some(JsonStr::new(self.challenge())),
        }
    }

    /// Checks the client's answer to the KMSEncryption action and decodes its ciphertext blob
    /// into `blob_buf` (up to [`MAX_BLOB_LEN`] bytes); returns the blob to decrypt.
    ///
    /// # Errors
    /// [`Error::NotProcessed`] (not a successful KMS result), [`Error::ChallengeNotAcknowledged`]
    /// (when `require_ack` and the client did not), [`Error::BadBase64`], [`Error::BlobLength`],
    /// [`Error::HashMismatch`], [`Error::Unexpected`] (called twice).
    pub fn check_result<'b>(
        &mut self,
        action: &ProcessedAction<'_>,
        require_ack: bool,
        blob_buf: &'b mut [u8],
    ) -> Result<&'b [u8], Error> {
        const K: &str = "KMSCipherTextKey";
        const H: &str = "KMSCipherTextHash";
        if self.phase != AgentPhase::Requested {
            return Err(Error::Unexpected);
        }
        let ActionResult::Kms {
            cipher_text_key,
            cipher_text_hash,
            challenge_acknowledgement,
        } = action.result
        else {
            return Err(Error::NotProcessed);
        };
        if action.action_type != ActionType::KmsEncryption || action.status != ActionStatus::Success
        {
            return Err(Error::NotProcessed);
        }
        if require_ack && !challenge_acknowledgement {
            return Err(Error::ChallengeNotAcknowledged);
        }
        let key = cipher_text_key.as_str().map_err(|_| Error::BadBase64(K))?;
        let cap = blob_buf.len().min(MAX_BLOB_LEN);
        if key.is_empty() || key.len() > super::base64_len(cap) {
            return Err(Error::BlobLength);
        }
        let blob = decode_base64(key.as_bytes(), &mut blob_buf[..cap], K)?;
        let hash = cipher_text_hash.as_str().map_err(|_| Error::BadBase64(H))?;
        let mut got = [0u8; 32 + 3];
        if hash.len() > super::base64_len(got.len()) {
            return Err(Error::HashMismatch);
        }
        let got = decode_base64(hash.as_bytes(), &mut got, H)?;
        if !ct_eq(got, &Sha256::digest(blob)) {
            return Err(Error::HashMismatch);
        }
        self.acknowledged = challenge_acknowledgement;
        self.phase = AgentPhase::KeyChecked;
        Ok(blob)
    }

    /// The context for KMS `Decrypt`: the challenge is in it iff the client acknowledged it.
    pub fn encryption_context<'s>(
        &'s self,
        session_id: &'s str,
        target_id: &'s str,
    ) -> EncryptionContext<'s> {
        EncryptionContext {
            session_id,
            target_id,
            random_challenge: self.acknowledged.then(|| self.challenge()),
        }
    }

    /// Installs the decrypted data key (counter nonces from `nonce_start`, random) and seals
    /// `random` (64 random bytes) into the EncChallengeRequest, whose text goes into `out`.
    ///
    /// # Errors
    /// [`Error::Unexpected`] (before [`check_result`](Self::check_result) passed),
    /// [`Error::DataKeyLength`].
    pub fn set_data_key<'b>(
        &mut self,
        plaintext: &[u8],
        nonce_start: [u8; NONCE_LEN],
        random: [u8; ENC_CHALLENGE_LEN],
        out: &'b mut [u8; ENC_CHALLENGE_TEXT_LEN],
    ) -> Result<EncChallenge<'b>, Error> {
        if self.phase != AgentPhase::KeyChecked {
            return Err(Error::Unexpected);
        }
        let key = DataKey::from_slice(plaintext)?;
        let cipher = self
            .cipher
            .insert(SessionCipher::new(&key, Role::Agent, nonce_start));
        self.expected = random;
        let request = seal_challenge(cipher, &random, out)?;
        self.phase = AgentPhase::ChallengeSent;
        Ok(request)
    }

    /// Checks the client's EncChallengeResponse.
    ///
    /// # Errors
    /// [`Error::Unexpected`] (no challenge sent), [`Error::BadBase64`],
    /// [`Error::ChallengeLength`], [`Error::TagMismatch`] (the client holds another key),
    /// [`Error::ChallengeMismatch`].
    pub fn verify(&mut self, response: &EncChallenge<'_>) -> Result<(), Error> {
        let (AgentPhase::ChallengeSent, Some(cipher)) = (self.phase, &self.cipher) else {
            return Err(Error::Unexpected);
        };
        let mut buf = [0u8; SEALED_CHALLENGE_LEN + 3];
        let result = decode_sealed(response, &mut buf).and_then(|sealed| {
            let plain = cipher.open(sealed)?;
            if ct_eq(plain, &self.expected) {
                Ok(())
            } else {
                Err(Error::ChallengeMismatch)
            }
        });
        buf.zeroize();
        if result.is_ok() {
            self.expected.zeroize();
            self.phase = AgentPhase::Verified;
        }
        result
    }

    /// Whether the client proved it holds the data key.
    pub fn is_verified(&self) -> bool {
        self.phase == AgentPhase::Verified
    }

    /// The cipher, once the data key is set.
    pub fn cipher(&mut self) -> Option<&mut SessionCipher> {
        self.cipher.as_mut()
    }

    /// Takes the cipher out once the client proved it holds the key (`None` before).
    pub fn take_cipher(&mut self) -> Option<SessionCipher> {
        if self.is_verified() {
            self.cipher.take()
        } else {
            None
        }
    }
}

impl core::fmt::Debug for AgentKms {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AgentKms")
            .field("challenge", &self.challenge())
            .field("acknowledged", &self.acknowledged)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Drop for AgentKms {
    fn drop(&mut self) {
        self.expected.zeroize();
    }
}
