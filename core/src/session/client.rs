//! The client role's handshake: HandshakeRequest in, HandshakeResponse out, HandshakeComplete
//! in; and what the client does with the agent's in-order messages (output, stderr, exit code).

use super::channel::push_payload;
use super::{CloseReason, Encryption, Error, Event, Phase, Session, Stream, MAX_ACTIONS};
use crate::payload::{
    Action, ActionResult, ActionStatus, ActionType, ExitCode, HandshakeComplete, HandshakeRequest,
    HandshakeResponse, JsonStr, List, ProcessedAction, SessionType,
};
use crate::wire::PayloadType;

impl<
        const SEND: usize,
        const UNACKED: usize,
        const REORDER: usize,
        const RECV: usize,
        const TXQ: usize,
    > Session<SEND, UNACKED, REORDER, RECV, TXQ>
{
    pub(super) fn on_handshake_request(&mut self, payload: &[u8]) -> Result<bool, Error> {
        if self.phase != Phase::Opening {
            // A second request: the first one was answered.
            return Ok(true);
        }
        let req = match HandshakeRequest::parse(payload) {
            Ok(r) => r,
            Err(e) => {
                self.close_fatal(CloseReason::ProtocolViolation);
                return Err(Error::Handshake(e));
            }
        };
        if self.client_wants_kms(&req) {
            // The response waits for the driver's data key (`set_data_key`).
            return self.client_kms_requested(&req);
        }
        let mut processed: heapless::Vec<ProcessedAction<'_>, MAX_ACTIONS> = heapless::Vec::new();
        let mut session_type = None;
        let mut props_kept = false;
        let mut kms = false;
        for a in req.actions() {
            let p = match a {
                Action::SessionType {
                    session_type: t,
                    properties,
                } => {
                    session_type = Some(t);
                    props_kept = self.properties.set_cut(properties.unwrap_or(""));
                    ProcessedAction {
                        action_type: ActionType::SessionType,
                        status: ActionStatus::Success,
                        result: ActionResult::None,
                        error: JsonStr::EMPTY,
                    }
                }
                Action::KmsEncryption { kms_key_id, .. } => {
                    kms = true;
                    self.kms_key_id.set_json(&kms_key_id);
                    // Here only unsupported: a KMS-enabled client took the other path above
                    // (a `Port` session is never encrypted).
                    match self.encryption {
                        Encryption::Unsupported | Encryption::Kms { .. } => ProcessedAction {
                            action_type: ActionType::KmsEncryption,
                            status: ActionStatus::Unsupported,
                            result: ActionResult::None,
                            error: JsonStr::new("KMS encryption is not supported by this client"),
                        },
                    }
                }
                Action::Other { action_type, .. } => ProcessedAction {
                    action_type: ActionType::Other(action_type),
                    status: ActionStatus::Unsupported,
                    result: ActionResult::None,
                    error: JsonStr::new("unsupported action"),
                },
            };
            if processed.push(p).is_err() {
                break;
            }
        }
        self.agent_version.set_json(&req.agent_version);
        if !self.push_handshake_response(&processed) {
            return Ok(false);
        }
        self.progress_at = self.now;
        self.session_type = session_type;
        self.properties_kept = props_kept;
        self.kms_requested = kms;
        self.phase = Phase::Handshaking;
        Ok(true)
    }

    /// Queues the HandshakeResponse; `false` when it does not fit now.
    pub(super) fn push_handshake_response(&mut self, processed: &[ProcessedAction<'_>]) -> bool {
        let (id, created) = self.next_ids();
        let resp = HandshakeResponse {
            client_version: JsonStr::new(self.client_version.as_str()),
            processed_client_actions: List::new(processed),
            errors: List::empty(),
        };
        push_payload(
            &mut self.send,
            id,
            created,
            PayloadType::HandshakeResponse,
            |b| resp.emit(b),
        )
    }

    pub(super) fn on_handshake_complete(&mut self, payload: &[u8]) -> Result<bool, Error> {
        if self.phase == Phase::Established {
            return Ok(true);
        }
        if !self.event_room(1) {
            return Ok(false);
        }
        match HandshakeComplete::parse(payload) {
            Ok(c) => {
                self.customer_message.set_json(&c.customer_message);
            }
            Err(e) => {
                // Only the message is lost; the handshake is still complete.
                self.stats.bad_input = self.stats.bad_input.wrapping_add(1);
                let _ = e;
                debug!("session: unreadable HandshakeComplete");
            }
        }
        self.establish();
        Ok(true)
    }

    /// Client role: acts on one in-order stream message (see `deliver`).
    pub(super) fn deliver_client(
        &mut self,
        pt: PayloadType,
        payload: &[u8],
    ) -> Result<bool, Error> {
        match pt {
            PayloadType::Output if self.phase == Phase::Opening && self.expected == 0 => {
                // Agents without the handshake start with shell output; the official client
                // then assumes a shell (`ProcessFirstMessage`).
                if !self.event_room(2) || !self.read_buf.fits(Stream::Output, payload.len()) {
                    return Ok(false);
                }
                self.session_type = Some(SessionType::StandardStream);
                self.establish();
                self.deliver_data(Stream::Output, payload)
            }
            PayloadType::Output => self.deliver_data(Stream::Output, payload),
            PayloadType::StdErr => self.deliver_data(Stream::StdErr, payload),
            PayloadType::HandshakeRequest => self.on_handshake_request(payload),
            PayloadType::HandshakeComplete => self.on_handshake_complete(payload),
            PayloadType::EncChallengeRequest => self.on_enc_challenge_request(payload),
            PayloadType::ExitCode => {
                if !self.event_room(1) {
                    return Ok(false);
                }
                let code = ExitCode::parse(payload).map_err(Error::Payload)?;
                self.exit_code = Some(code.0);
                let _ = self.events.push_back(Event::ExitCode(code.0));
                Ok(true)
            }
            _ => self.ignore(pt),
        }
    }
}
