//! The agent role's handshake: OpenDataChannelInput in, HandshakeRequest out (once the driver
//! has seen `Opened`), HandshakeResponse in, HandshakeComplete out; and what the agent does with
//! the client's in-order messages (input, size, flags).

use super::channel::push_payload;
use super::kms::KmsState;
use super::{
    CloseReason, Closing, Control, Error, Event, Phase, Role, Session, Stream, WriteError,
};
use crate::model::{OwnedToken, Token};
use crate::payload::{
    Action, ActionStatus, ActionType, Flag, HandshakeComplete, HandshakeRequest, HandshakeResponse,
    JsonStr, List, OpenDataChannelInput, SessionType, Size,
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
    pub(super) fn queue_agent_control(&mut self, c: Control) -> Result<(), WriteError> {
        if self.role != Role::Agent {
            return Err(WriteError::WrongRole);
        }
        if self.is_closed() {
            return Err(WriteError::Closed);
        }
        self.txq.push_back(c).map_err(|_| WriteError::Blocked)
    }

    pub(super) fn on_open(&mut self, text: &[u8]) -> Result<(), Error> {
        let open = OpenDataChannelInput::parse(text).map_err(Error::Payload)?;
        let text = open.token_value.as_str().map_err(|_| Error::BadToken)?;
        let t = Token::new(text).map_err(|_| Error::BadToken)?;
        self.token = Some(OwnedToken::from_token(t).map_err(|_| Error::TokenTooLong)?);
        self.peer_opened = true;
        if self.is_closed() {
            self.channel_closed_due = Some(self.now);
            return Ok(());
        }
        // The HandshakeRequest waits until the driver has seen `Opened` (and could refuse the
        // token): an unauthenticated client learns nothing about the session.
        self.opened_event_pending = true;
        Ok(())
    }

    pub(super) fn send_handshake_request(&mut self) {
        self.agent_kms_start();
        let (id, created) = self.next_ids();
        let pushed = {
            let session_type = self.session_type.unwrap_or(SessionType::StandardStream);
            let props = self.properties.as_str();
            let mut actions: heapless::Vec<Action<'_>, 2> = heapless::Vec::new();
            let _ = actions.push(Action::SessionType {
                session_type,
                properties: (!props.is_empty() && props != "null").then_some(props),
            });
            if let KmsState::AgentRequested(k) = &self.kms {
                let _ = actions.push(k.action(self.kms_key_id.as_str()));
            }
            let req = HandshakeRequest {
                agent_version: JsonStr::new(self.agent_version.as_str()),
                requested_client_actions: List::new(&actions),
            };
            push_payload(
                &mut self.send,
                id,
                created,
                PayloadType::HandshakeRequest,
                |b| req.emit(b),
            )
        };
        if pushed {
            self.progress_at = self.now;
            self.handshake_started = self.now;
            self.phase = Phase::Handshaking;
        } else {
            warn!("session: handshake request does not fit the send buffer");
            self.agent_close(CloseReason::HandshakeFailed);
        }
    }

    pub(super) fn on_handshake_response(&mut self, payload: &[u8]) -> Result<bool, Error> {
        if self.phase != Phase::Handshaking {
            return Ok(true);
        }
        if !self.event_room(1) {
            return Ok(false);
        }
        let resp = match HandshakeResponse::parse(payload) {
            Ok(r) => r,
            Err(e) => {
                self.close_fatal(CloseReason::ProtocolViolation);
                return Err(Error::Handshake(e));
            }
        };
        self.client_version.set_json(&resp.client_version);
        let status = |t: ActionType<'_>| {
            resp.processed_client_actions
                .iter()
                .find(|p| p.action_type == t)
                .map(|p| p.status)
        };
        let session_ok = status(ActionType::SessionType) == Some(ActionStatus::Success);
        let kms_ok =
            !self.kms_requested || status(ActionType::KmsEncryption) == Some(ActionStatus::Success);
        if !session_ok || !kms_ok {
            self.close_message.set_cut(if session_ok {
                "the client did not set up KMS encryption"
            } else {
                "the client refused the session type"
            });
            self.agent_close(CloseReason::HandshakeFailed);
            return Ok(true);
        }
        if self.kms_requested && self.agent_kms_result(&resp)? {
            // HandshakeComplete follows the encryption challenge.
            return Ok(true);
        }
        Ok(self.send_handshake_complete())
    }

    /// Queues HandshakeComplete and opens the session; `false` when it does not fit now.
    pub(super) fn send_handshake_complete(&mut self) -> bool {
        let elapsed_ns = (self.now - self.handshake_started)
            .total_millis()
            .saturating_mul(1_000_000);
        let (id, created) = self.next_ids();
        let complete = HandshakeComplete {
            time_to_complete_ns: i64::try_from(elapsed_ns).unwrap_or(i64::MAX),
            customer_message: JsonStr::new(self.customer_message.as_str()),
        };
        let pushed = push_payload(
            &mut self.send,
            id,
            created,
            PayloadType::HandshakeComplete,
            |b| complete.emit(b),
        );
        if pushed {
            self.establish();
        }
        pushed
    }

    /// Agent role: acts on one in-order stream message (see `deliver`).
    pub(super) fn deliver_agent(&mut self, pt: PayloadType, payload: &[u8]) -> Result<bool, Error> {
        if self.flag_unpolled {
            return Ok(false);
        }
        match pt {
            PayloadType::Output => self.deliver_data(Stream::Output, payload),
            PayloadType::HandshakeResponse => self.on_handshake_response(payload),
            PayloadType::EncChallengeResponse => self.on_enc_challenge_response(payload),
            PayloadType::Size => {
                if !self.event_room(1) {
                    return Ok(false);
                }
                let s = Size::parse(payload).map_err(Error::Payload)?;
                self.terminal_size = Some((s.cols, s.rows));
                let _ = self.events.push_back(Event::Resized {
                    cols: s.cols,
                    rows: s.rows,
                });
                Ok(true)
            }
            PayloadType::Flag => {
                // In stream order: every input byte before the flag has been read first.
                if !self.event_room(1) || !self.read_buf.is_empty() {
                    return Ok(false);
                }
                let f = Flag::parse(payload).map_err(Error::Payload)?;
                if f == Flag::TerminateSession {
                    self.peer_terminated = true;
                    if self.closing == Some(Closing::ChannelClose) {
                        // Already flushing towards a client that is leaving: stop waiting.
                        self.agent_close(CloseReason::Local);
                    }
                }
                let _ = self.events.push_back(Event::Flag(f));
                // And nothing after it is delivered until the event is polled.
                self.flag_unpolled = true;
                Ok(true)
            }
            _ => self.ignore(pt),
        }
    }
}
