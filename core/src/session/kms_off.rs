//! The engine without the `kms` feature: no payload is sealed or opened, a client answers
//! `KMSEncryption` as unsupported, and the agent role asks for KMS (when configured with a key
//! id) without a challenge and refuses the client that cannot do it. None of the AES-GCM code is
//! linked. `kms.rs` is the same interface with the feature.

use super::{CloseReason, Encryption, Error, Session};
use crate::payload::{Action, HandshakeRequest, HandshakeResponse, JsonStr, SessionType};
use crate::wire::PayloadType;

/// No KMS handshake is ever under way.
pub(super) enum KmsState {
    /// The only state.
    Off,
}

/// No cipher exists without the feature.
pub(super) enum Cipher {}

/// No payload is opened, so no buffer is needed.
pub(super) const OPEN_LEN: usize = 0;

/// The KMS action of the agent's HandshakeRequest: the key id alone.
pub(super) fn agent_action<'a>(
    _kms: &'a KmsState,
    requested: bool,
    kms_key_id: &'a str,
) -> Option<Action<'a>> {
    requested.then(|| Action::KmsEncryption {
        kms_key_id: JsonStr::new(kms_key_id),
        challenge: None,
    })
}

impl<
        const SEND: usize,
        const UNACKED: usize,
        const REORDER: usize,
        const RECV: usize,
        const TXQ: usize,
    > Session<SEND, UNACKED, REORDER, RECV, TXQ>
{
    pub(super) fn seal_overhead(&self, _pt: PayloadType) -> usize {
        0
    }

    pub(super) fn push_stream_payload(&mut self, pt: PayloadType, data: &[u8]) -> bool {
        let n = data.len();
        self.push_message(pt, n, |b| {
            b[..n].copy_from_slice(data);
            Some(n)
        })
    }

    pub(super) fn open_stream<'b>(
        &mut self,
        _pt: PayloadType,
        payload: &'b [u8],
        _plain: &'b mut [u8; OPEN_LEN],
    ) -> Result<&'b [u8], Error> {
        Ok(payload)
    }

    pub(super) fn kms_established(&mut self) {
        let KmsState::Off = self.kms;
        let _ = &self.cipher;
    }

    /// Whether the session's data is encrypted: never without the `kms` feature.
    pub fn is_encrypted(&self) -> bool {
        false
    }

    pub(super) fn client_wants_kms(&self, _req: &HandshakeRequest<'_>) -> bool {
        // The only answer without the feature.
        let Encryption::Unsupported = self.encryption;
        false
    }

    pub(super) fn client_kms_requested(
        &mut self,
        _req: &HandshakeRequest<'_>,
    ) -> Result<bool, Error> {
        Ok(true)
    }

    pub(super) fn on_enc_challenge_request(&mut self, _payload: &[u8]) -> Result<bool, Error> {
        self.ignore(PayloadType::EncChallengeRequest)
    }

    pub(super) fn agent_kms_start(&mut self) -> bool {
        if self.session_type == Some(SessionType::Port) {
            // The agent skips KMS for port sessions.
            self.kms_requested = false;
        }
        self.kms_requested
    }

    /// A client that did set up KMS cannot be served: its payloads would be sealed.
    pub(super) fn agent_kms_result(
        &mut self,
        _resp: &HandshakeResponse<'_>,
    ) -> Result<bool, Error> {
        self.close_message
            .set_cut("this agent was built without the kms feature");
        self.agent_close(CloseReason::HandshakeFailed);
        Ok(true)
    }

    pub(super) fn on_enc_challenge_response(&mut self, _payload: &[u8]) -> Result<bool, Error> {
        self.ignore(PayloadType::EncChallengeResponse)
    }
}
