//! KMS session encryption in the engine (PROTOCOL.md §6), both roles: the handshake steps that
//! need the driver (a KMS call), the encryption challenge, and sealing and opening the stream
//! payloads. The cryptography and the payload checks are [`crate::kms`]'s.
//!
//! What is encrypted: client → agent Output; agent → client Output, StdErr and ExitCode. Size,
//! Flag, the handshake, acknowledgements and `channel_closed` stay in clear, and a `Port`
//! session is never encrypted (the agent skips KMS for it). The keys outlive reconnects: there
//! is no second handshake after ResumeSession.

use heapless::Vec;

use super::{CloseReason, Encryption, EncryptionFailure, Error, Event, Phase, Role, Session};
use crate::kms::{
    self, AgentKms, ClientKms, DataKeyRequest, EncryptionContext, ENC_CHALLENGE_TEXT_LEN,
    HASH_TEXT_LEN, MAX_BLOB_LEN, MAX_BLOB_TEXT_LEN, NONCE_LEN, OVERHEAD,
};
use crate::payload::{
    ActionResult, ActionStatus, ActionType, EncChallenge, HandshakeRequest, HandshakeResponse,
    JsonStr, ProcessedAction, SessionType,
};
use crate::wire::PayloadType;

use super::recv::REORDER_SLOT_LEN;

impl EncryptionFailure {
    fn from_kms(e: kms::Error) -> Self {
        match e {
            kms::Error::HashMismatch
            | kms::Error::BlobLength
            | kms::Error::BadBase64(_)
            | kms::Error::NotProcessed => EncryptionFailure::BadCipherTextKey,
            kms::Error::ChallengeNotAcknowledged => EncryptionFailure::ChallengeNotAcknowledged,
            kms::Error::KeyRefused => EncryptionFailure::KeyRefused,
            _ => EncryptionFailure::ChallengeFailed,
        }
    }
}

/// The KMS handshake's progress; each step carries its own data.
///
/// The agent's blob waits inline (no allocator), so with the `kms` feature this costs every
/// session about 1.2 KB (`MAX_BLOB_LEN` plus the handshake state). Once the handshake is over
/// the cipher moves to `Session::cipher` and this is `Off` again.
#[allow(
    clippy::large_enum_variant,
    reason = "no allocator: the agent's blob waits inline for the driver's KMS Decrypt"
)]
pub(super) enum KmsState {
    /// No KMS handshake under way.
    Off,
    /// Client: `DataKeyNeeded` reported; the HandshakeResponse waits for the key.
    ClientNeedsKey(ClientKms),
    /// Client: HandshakeResponse sent; the EncChallengeRequest comes next.
    ClientKeyed(ClientKms),
    /// Agent: the action (with its challenge) went out.
    AgentRequested(AgentKms),
    /// Agent: the client's blob passed the checks; `DataKeyToDecrypt` reported.
    AgentNeedsKey(AgentKms, Vec<u8, MAX_BLOB_LEN>),
    /// Agent: EncChallengeRequest sent.
    AgentChallenged(AgentKms),
}

/// The data phase's cipher.
pub(super) type Cipher = crate::kms::SessionCipher;

/// The KMS action of the agent's HandshakeRequest, with its challenge.
pub(super) fn agent_action<'a>(
    kms: &'a KmsState,
    _requested: bool,
    kms_key_id: &'a str,
) -> Option<crate::payload::Action<'a>> {
    match kms {
        KmsState::AgentRequested(k) => Some(k.action(kms_key_id)),
        _ => None,
    }
}

/// Whether `sender` encrypts payloads of type `pt`.
fn sealed_type(sender: Role, pt: PayloadType) -> bool {
    match sender {
        Role::Client => pt == PayloadType::Output,
        Role::Agent => matches!(
            pt,
            PayloadType::Output | PayloadType::StdErr | PayloadType::ExitCode
        ),
    }
}

/// Largest sealed payload opened: one agent message of plaintext plus nonce and tag.
pub(super) const OPEN_LEN: usize = REORDER_SLOT_LEN + OVERHEAD;

impl<
        const SEND: usize,
        const UNACKED: usize,
        const REORDER: usize,
        const RECV: usize,
        const TXQ: usize,
    > Session<SEND, UNACKED, REORDER, RECV, TXQ>
{
    fn random<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let r = self.rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        out
    }

    fn fail_encryption(&mut self, f: EncryptionFailure) -> Error {
        warn!("session: {}", f.as_str());
        self.close_fatal(CloseReason::Encryption(f));
        Error::Encryption(f)
    }

    // ----- sealing and opening ----------------------------------------------------------

    /// Bytes sealing adds to an outgoing payload of type `pt` (0 when it goes in clear).
    pub(super) fn seal_overhead(&self, pt: PayloadType) -> usize {
        if self.cipher.is_some() && sealed_type(self.role, pt) {
            OVERHEAD
        } else {
            0
        }
    }

    /// Appends a sequenced message carrying `data`, sealed when this payload type is encrypted.
    pub(super) fn push_stream_payload(&mut self, pt: PayloadType, data: &[u8]) -> bool {
        let extra = self.seal_overhead(pt);
        let was_idle = self.send.oldest_unacked().is_none();
        let (id, created) = self.next_ids();
        let cipher = &mut self.cipher;
        let n = data.len();
        let pushed = self
            .send
            .push(id, pt, created, n + extra, |b| match cipher {
                Some(c) if extra > 0 => c.seal_to(data, b).ok(),
                _ => {
                    b[..n].copy_from_slice(data);
                    Some(n)
                }
            })
            .is_some();
        if pushed && was_idle {
            self.progress_at = self.now;
        }
        pushed
    }

    /// Opens an incoming stream payload when the peer encrypts its type; in clear it is
    /// returned as it is.
    ///
    /// A payload that does not authenticate is [`Error::Decrypt`]: the caller drops it without
    /// acknowledging it, which is what the agent does (`processStreamDataMessage` fails before
    /// the acknowledgement), so the sender resends it.
    pub(super) fn open_stream<'b>(
        &mut self,
        pt: PayloadType,
        payload: &'b [u8],
        plain: &'b mut [u8; OPEN_LEN],
    ) -> Result<&'b [u8], Error> {
        let peer = match self.role {
            Role::Client => Role::Agent,
            Role::Agent => Role::Client,
        };
        // The peer seals its data only once this end holds the key: the client's comes after
        // the agent verified the challenge, the agent's after the client's data key. A message
        // that overtook the end of the handshake still finds the key in the handshake state.
        let cipher = self.cipher.as_ref().or(match &self.kms {
            KmsState::ClientKeyed(k) => k.cipher_ref(),
            KmsState::AgentChallenged(k) => k.cipher_ref(),
            _ => None,
        });
        let Some(c) = cipher.filter(|_| sealed_type(peer, pt)) else {
            return Ok(payload);
        };
        if payload.len() > OPEN_LEN {
            // More plaintext than one agent message: no peer sends that.
            self.close_fatal(CloseReason::ProtocolViolation);
            return Err(Error::Unexpected);
        }
        match c.open_to(payload, plain) {
            Ok(n) => Ok(&plain[..n]),
            Err(e) => {
                debug!("session: encrypted payload does not open: {}", e.as_str());
                Err(Error::Decrypt(e))
            }
        }
    }

    /// The handshake is over: the cipher (if any) takes over the data.
    pub(super) fn kms_established(&mut self) {
        let cipher = match &mut self.kms {
            KmsState::ClientKeyed(k) => k.take_cipher(),
            KmsState::AgentChallenged(k) => k.take_cipher(),
            _ => None,
        };
        if cipher.is_some() {
            self.cipher = cipher;
            self.kms = KmsState::Off;
        }
    }

    /// Whether the session's data is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    // ----- client ---------------------------------------------------------------------------

    /// Client: whether to answer this request's KMS action with a data key.
    pub(super) fn client_wants_kms(&self, req: &HandshakeRequest<'_>) -> bool {
        matches!(self.encryption, Encryption::Kms { .. })
            && req.kms().is_some()
            && req.session_type().map(|(t, _)| t) != Some(SessionType::Port)
    }

    /// Client: takes a HandshakeRequest that asks for KMS; the response waits for the key.
    pub(super) fn client_kms_requested(
        &mut self,
        req: &HandshakeRequest<'_>,
    ) -> Result<bool, Error> {
        let Some((key_id, challenge)) = req.kms() else {
            return Ok(true);
        };
        if !self.event_room(1) {
            return Ok(false);
        }
        let mut k = ClientKms::new();
        if let Err(e) = k.request(challenge) {
            debug!("session: kms request: {}", e.as_str());
            return Err(self.fail_encryption(EncryptionFailure::BadRequest));
        }
        if let Some((t, props)) = req.session_type() {
            self.session_type = Some(t);
            self.properties_kept = self.properties.set_cut(props.unwrap_or(""));
        }
        if !self.kms_key_id.set_json(&key_id) {
            // A cut key id would only make KMS fail later, with a less clear error.
            debug!(
                "session: kms key id longer than {} bytes",
                super::MAX_TEXT_LEN
            );
            return Err(self.fail_encryption(EncryptionFailure::BadRequest));
        }
        self.kms_requested = true;
        self.agent_version.set_json(&req.agent_version);
        self.kms = KmsState::ClientNeedsKey(k);
        let _ = self.events.push_back(Event::DataKeyNeeded);
        Ok(true)
    }

    /// Client role, after [`Event::DataKeyNeeded`]: what to ask KMS `GenerateDataKey` for. Pass
    /// the StartSession `SessionId` and the target (instance) id; the KMS key id and the
    /// agent's challenge come from the HandshakeRequest. `None` when no key is awaited.
    ///
    /// # Examples
    ///
    /// A client and an agent in memory, with the driver's KMS calls faked:
    ///
    /// ```
    /// use ssm_proto::session::{
    ///     AgentHandshake, Config, Encryption, Event, Incoming, Session, TransmitKind,
    /// };
    /// use ssm_proto::Instant;
    ///
    /// type S = Session<8192, 16, 4, 2048, 8>;
    /// let now = Instant::ZERO;
    /// let kms = Encryption::Kms { require_challenge: true };
    /// let mut client = S::new(Config { encryption: kms, ..Config::client(1) }, now);
    /// let shell = AgentHandshake { kms_key_id: Some("alias/ssm"), ..AgentHandshake::SHELL };
    /// let mut agent = S::new(Config { encryption: kms, ..Config::agent(2, shell) }, now);
    /// agent.handle_connected(now, "").unwrap();
    /// client.handle_connected(now, "token").unwrap();
    ///
    /// fn pump(from: &mut S, to: &mut S, now: Instant) -> bool {
    ///     let mut buf = [0u8; 4096];
    ///     let mut moved = false;
    ///     while let Some(t) = from.poll_transmit(now, &mut buf).unwrap() {
    ///         let msg = &buf[..t.len];
    ///         let input = match t.kind {
    ///             TransmitKind::Text => Incoming::Text(msg),
    ///             TransmitKind::Binary => Incoming::Binary(msg),
    ///         };
    ///         to.handle_input(now, input).unwrap();
    ///         moved = true;
    ///     }
    ///     moved
    /// }
    /// let key = [7u8; 64]; // KMS GenerateDataKey's Plaintext (and Decrypt's, agent side)
    /// let blob = b"CiphertextBlob from KMS";
    /// loop {
    ///     let mut moved = pump(&mut client, &mut agent, now) | pump(&mut agent, &mut client, now);
    ///     while let Some(e) = client.poll_event() {
    ///         moved = true;
    ///         if e == Event::DataKeyNeeded {
    ///             let req = client.data_key_request("s-0123", "i-0123").unwrap();
    ///             assert_eq!(req.key_id, "alias/ssm");
    ///             assert_eq!(req.context.entries().count(), 3, "with the challenge");
    ///             client.set_data_key(now, &key, blob, [0; 12]).unwrap(); // random nonce start
    ///         }
    ///     }
    ///     while let Some(e) = agent.poll_event() {
    ///         moved = true;
    ///         if e == Event::DataKeyToDecrypt {
    ///             assert_eq!(agent.data_key_ciphertext(), Some(&blob[..]));
    ///             let _context = agent.data_key_context("s-0123", "i-0123").unwrap();
    ///             agent.set_decrypted_data_key(now, &key).unwrap();
    ///         }
    ///     }
    ///     if !moved {
    ///         break;
    ///     }
    /// }
    /// assert!(client.is_established() && client.is_encrypted() && agent.is_encrypted());
    /// ```
    pub fn data_key_request<'s>(
        &'s self,
        session_id: &'s str,
        target_id: &'s str,
    ) -> Option<DataKeyRequest<'s>> {
        match &self.kms {
            KmsState::ClientNeedsKey(k) => {
                Some(k.data_key_request(self.kms_key_id.as_str(), session_id, target_id))
            }
            _ => None,
        }
    }

    /// Client role: KMS `GenerateDataKey` answered with `plaintext` (64 bytes) and
    /// `ciphertext_blob`. Sends the HandshakeResponse (the blob, its SHA-256 and the challenge
    /// acknowledgement); the session's nonces count up from `nonce_start` (take it from a random
    /// source). The plaintext is not kept beyond the two AES keys, which are wiped on drop.
    ///
    /// # Errors
    /// [`kms::Error::Unexpected`] when no key is awaited (or the session closed meanwhile),
    /// [`kms::Error::DataKeyLength`], [`kms::Error::BlobLength`]; the session waits on (call again, or
    /// [`refuse_data_key`](Self::refuse_data_key)).
    pub fn set_data_key(
        &mut self,
        now: crate::Instant,
        plaintext: &[u8],
        ciphertext_blob: &[u8],
        nonce_start: [u8; NONCE_LEN],
    ) -> Result<(), kms::Error> {
        self.tick(now);
        let KmsState::ClientNeedsKey(k) = &mut self.kms else {
            return Err(kms::Error::Unexpected);
        };
        if matches!(self.phase, Phase::Closed(_)) {
            return Err(kms::Error::Unexpected);
        }
        if ciphertext_blob.is_empty() || ciphertext_blob.len() > MAX_BLOB_LEN {
            return Err(kms::Error::BlobLength);
        }
        k.set_data_key(plaintext, nonce_start)?;
        let mut text = [0u8; MAX_BLOB_TEXT_LEN + HASH_TEXT_LEN];
        let result = k.action_result(ciphertext_blob, &mut text)?;
        let processed = [
            ProcessedAction {
                action_type: ActionType::SessionType,
                status: ActionStatus::Success,
                result: ActionResult::None,
                error: JsonStr::EMPTY,
            },
            ProcessedAction {
                action_type: ActionType::KmsEncryption,
                status: ActionStatus::Success,
                result,
                error: JsonStr::EMPTY,
            },
        ];
        if !self.push_handshake_response(&processed) {
            return Err(kms::Error::BufferTooSmall {
                required: text.len(),
            });
        }
        let KmsState::ClientNeedsKey(k) = core::mem::replace(&mut self.kms, KmsState::Off) else {
            return Err(kms::Error::Unexpected);
        };
        self.kms = KmsState::ClientKeyed(k);
        self.progress_at = self.now;
        self.phase = Phase::Handshaking;
        self.advance();
        Ok(())
    }

    /// Either role, after [`Event::DataKeyNeeded`] / [`Event::DataKeyToDecrypt`]: KMS refused
    /// (or failed). The session closes with [`EncryptionFailure::KeyRefused`]; the agent role
    /// tells the client with `channel_closed`. A client does not answer the agent, which ends
    /// the session on its own handshake timeout.
    pub fn refuse_data_key(&mut self, now: crate::Instant) {
        self.tick(now);
        if matches!(
            self.kms,
            KmsState::ClientNeedsKey(_) | KmsState::AgentNeedsKey(..)
        ) {
            self.kms = KmsState::Off;
            let _ = self.fail_encryption(EncryptionFailure::KeyRefused);
        }
    }

    /// Client: the agent's EncChallengeRequest; answers it.
    pub(super) fn on_enc_challenge_request(&mut self, payload: &[u8]) -> Result<bool, Error> {
        let KmsState::ClientKeyed(k) = &mut self.kms else {
            return self.ignore(PayloadType::EncChallengeRequest);
        };
        let mut out = [0u8; ENC_CHALLENGE_TEXT_LEN];
        let answer = EncChallenge::parse(payload)
            .map_err(kms::Error::from)
            .and_then(|req| k.answer_challenge(&req, &mut out));
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                debug!("session: encryption challenge: {}", e.as_str());
                return Err(self.fail_encryption(EncryptionFailure::ChallengeFailed));
            }
        };
        let pushed = self.push_control(PayloadType::EncChallengeResponse, |b| answer.emit(b));
        // Not pushed: held and answered again once the send buffer has room (the nonce
        // counter only moved on, nothing repeats).
        Ok(pushed)
    }

    // ----- agent ----------------------------------------------------------------------------

    /// Agent: whether the HandshakeRequest asks for KMS; sets up the challenge the first time.
    pub(super) fn agent_kms_start(&mut self) -> bool {
        if !self.kms_requested || self.session_type == Some(SessionType::Port) {
            // The agent skips KMS for port sessions.
            self.kms_requested = false;
            return false;
        }
        if matches!(self.kms, KmsState::Off) && self.cipher.is_none() {
            let challenge = self.random();
            self.kms = KmsState::AgentRequested(AgentKms::new(challenge));
        }
        true
    }

    /// Agent: checks the client's KMS result (it reported success). `Ok(true)`: the key is
    /// with the driver now (`DataKeyToDecrypt`), HandshakeComplete waits for the challenge.
    /// Anything else closes the session: a client that claims success without a usable key
    /// never gets an unencrypted session.
    pub(super) fn agent_kms_result(&mut self, resp: &HandshakeResponse<'_>) -> Result<bool, Error> {
        let require = matches!(
            self.encryption,
            Encryption::Kms {
                require_challenge: true
            }
        );
        let action = resp
            .processed_client_actions
            .iter()
            .find(|p| p.action_type == ActionType::KmsEncryption);
        let mut buf = [0u8; MAX_BLOB_LEN];
        let checked = match (&mut self.kms, action) {
            (KmsState::AgentRequested(k), Some(action)) => k
                .check_result(&action, require, &mut buf)
                .and_then(|b| Vec::from_slice(b).map_err(|_| kms::Error::BlobLength)),
            _ => Err(kms::Error::NotProcessed),
        };
        let blob = match checked {
            Ok(b) => b,
            Err(e) => {
                debug!("session: kms result: {}", e.as_str());
                return Err(self.fail_encryption(EncryptionFailure::from_kms(e)));
            }
        };
        let KmsState::AgentRequested(k) = core::mem::replace(&mut self.kms, KmsState::Off) else {
            return Err(self.fail_encryption(EncryptionFailure::BadCipherTextKey));
        };
        self.kms = KmsState::AgentNeedsKey(k, blob);
        let _ = self.events.push_back(Event::DataKeyToDecrypt);
        Ok(true)
    }

    /// Agent role, after [`Event::DataKeyToDecrypt`]: the client's KMS ciphertext blob, to pass
    /// to KMS `Decrypt`.
    pub fn data_key_ciphertext(&self) -> Option<&[u8]> {
        match &self.kms {
            KmsState::AgentNeedsKey(_, blob) => Some(blob),
            _ => None,
        }
    }

    /// Agent role, after [`Event::DataKeyToDecrypt`]: the encryption context for KMS `Decrypt`
    /// (with the challenge iff the client acknowledged it).
    pub fn data_key_context<'s>(
        &'s self,
        session_id: &'s str,
        target_id: &'s str,
    ) -> Option<EncryptionContext<'s>> {
        match &self.kms {
            KmsState::AgentNeedsKey(k, _) => Some(k.encryption_context(session_id, target_id)),
            _ => None,
        }
    }

    /// Agent role: KMS `Decrypt` gave `plaintext` (64 bytes). Sends the EncChallengeRequest
    /// (64 bytes from the session's generator, sealed). The agent role draws its challenges
    /// and nonce start from the seeded id generator: it serves the emulator and tests, not
    /// production.
    ///
    /// # Errors
    /// [`kms::Error::Unexpected`] when no key is awaited (or the session closed meanwhile),
    /// [`kms::Error::DataKeyLength`].
    pub fn set_decrypted_data_key(
        &mut self,
        now: crate::Instant,
        plaintext: &[u8],
    ) -> Result<(), kms::Error> {
        self.tick(now);
        if !matches!(self.kms, KmsState::AgentNeedsKey(..)) || self.is_closed() {
            return Err(kms::Error::Unexpected);
        }
        let nonce = self.random();
        let challenge = self.random();
        let KmsState::AgentNeedsKey(k, _) = &mut self.kms else {
            return Err(kms::Error::Unexpected);
        };
        let mut out = [0u8; ENC_CHALLENGE_TEXT_LEN];
        let request = k.set_data_key(plaintext, nonce, challenge, &mut out)?;
        if !self.push_control(PayloadType::EncChallengeRequest, |b| request.emit(b)) {
            warn!("session: encryption challenge does not fit the send buffer");
            self.agent_close(CloseReason::HandshakeFailed);
            return Ok(());
        }
        let KmsState::AgentNeedsKey(k, _) = core::mem::replace(&mut self.kms, KmsState::Off) else {
            return Err(kms::Error::Unexpected);
        };
        self.kms = KmsState::AgentChallenged(k);
        self.progress_at = self.now;
        self.advance();
        Ok(())
    }

    /// Agent: the client's EncChallengeResponse; HandshakeComplete follows when it verifies.
    pub(super) fn on_enc_challenge_response(&mut self, payload: &[u8]) -> Result<bool, Error> {
        let KmsState::AgentChallenged(k) = &mut self.kms else {
            return self.ignore(PayloadType::EncChallengeResponse);
        };
        if !k.is_verified() {
            let verified = EncChallenge::parse(payload)
                .map_err(kms::Error::from)
                .and_then(|r| k.verify(&r));
            if let Err(e) = verified {
                debug!("session: encryption challenge: {}", e.as_str());
                let f = EncryptionFailure::ChallengeFailed;
                return Err(self.fail_encryption(f));
            }
        }
        // Verified: `establish` moves the cipher over once HandshakeComplete is queued.
        Ok(self.send_handshake_complete())
    }
}
