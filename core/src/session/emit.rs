//! Emission: which message `poll_transmit` writes next, and the bytes of each kind (the
//! OpenDataChannelInput text, unsequenced control frames, `channel_closed`, stored stream
//! messages).

use super::{Role, Session, Transmit, TransmitClass, TransmitKind, SCHEMA_VERSION};
use crate::decimal::Decimal;
use crate::model::OwnedToken;
use crate::payload::{self, Acknowledge, ChannelClosed, JsonStr, OpenDataChannelInput};
use crate::uuid::Uuid;
use crate::wire::{Header, InsufficientSize, MessageType, PayloadType, ACK_FLAGS, HEADER_LEN};

/// An unsequenced frame waiting to go out.
#[derive(Debug, Clone, Copy)]
pub(super) enum Control {
    /// Acknowledge the peer's stream message `seq` with id `id`.
    Ack { id: Uuid, seq: i64 },
    /// Agent: `pause_publication`.
    Pause,
    /// Agent: `start_publication`.
    Resume,
}

impl<
        const SEND: usize,
        const UNACKED: usize,
        const REORDER: usize,
        const RECV: usize,
        const TXQ: usize,
    > Session<SEND, UNACKED, REORDER, RECV, TXQ>
{
    /// The next message to send; with `overtaking_only`, only one that may overtake queued data
    /// (an acknowledgement at the head of the control queue).
    pub(super) fn next_transmit(
        &mut self,
        buf: &mut [u8],
        overtaking_only: bool,
    ) -> Result<Option<Transmit>, InsufficientSize> {
        let now = self.now;
        if !self.transport_up {
            return Ok(None);
        }
        match self.role {
            Role::Client => {
                // A closed client still sends the acknowledgements it owes (the agent would
                // otherwise resend until it gives up), nothing else.
                if self.open_pending && !self.is_closed() {
                    if overtaking_only {
                        return Ok(None);
                    }
                    return self.emit_open(buf).map(Some);
                }
            }
            Role::Agent => {
                // Nothing goes to a (re)connected client before the driver has seen `Opened`
                // and so had the chance to refuse its token.
                if !self.peer_opened || self.opened_event_pending {
                    return Ok(None);
                }
            }
        }
        if let Some(&c) = self.txq.front() {
            if overtaking_only && !matches!(c, Control::Ack { .. }) {
                return Ok(None);
            }
            let t = self.emit_control(c, buf)?;
            self.txq.pop_front();
            self.queue_owed_acks();
            return Ok(Some(t));
        }
        if overtaking_only {
            return Ok(None);
        }
        if let Some(due) = self.channel_closed_due {
            if due <= now {
                let t = self.emit_channel_closed(buf)?;
                self.channel_closed_due = Some(now + self.max_rto);
                return Ok(Some(t));
            }
        }
        if self.is_closed() || self.paused {
            return Ok(None);
        }
        if let Some(seq) = self.send.next_due(now, self.rtt.timeout(), self.max_ahead) {
            let t = self.emit_stored(seq, buf)?;
            return Ok(Some(t));
        }
        Ok(None)
    }

    pub(super) fn emit_open(&mut self, buf: &mut [u8]) -> Result<Transmit, InsufficientSize> {
        let rid = self.request_id.to_hyphenated();
        let cid = self.client_id.to_hyphenated();
        let (rid, cid) = (ascii(&rid), ascii(&cid));
        let open = OpenDataChannelInput {
            message_schema_version: JsonStr::new(OpenDataChannelInput::SCHEMA_VERSION),
            request_id: JsonStr::new(rid),
            token_value: JsonStr::new(self.token.as_ref().map_or("", OwnedToken::expose_secret)),
            client_id: JsonStr::new(cid),
            client_version: JsonStr::new(self.client_version.as_str()),
        };
        let len = open.emit(buf).map_err(insufficient(0))?;
        self.open_pending = false;
        self.token = None;
        Ok(Transmit {
            len,
            kind: TransmitKind::Text,
            class: TransmitClass::Open,
        })
    }

    pub(super) fn frame_header(&self, message_type: MessageType, flags: u64) -> Header {
        Header {
            message_type,
            schema_version: SCHEMA_VERSION,
            created_date: self.created_date(),
            sequence_number: 0,
            flags,
            message_id: Uuid::NIL,
            payload_type: PayloadType::Null,
        }
    }

    /// Writes an unsequenced frame whose payload `emit` writes after the header.
    pub(super) fn emit_unsequenced(
        &mut self,
        buf: &mut [u8],
        mut header: Header,
        emit: impl FnOnce(&mut [u8]) -> Result<usize, payload::Error>,
    ) -> Result<Transmit, InsufficientSize> {
        let body = buf.get_mut(HEADER_LEN..).ok_or(InsufficientSize {
            required: HEADER_LEN + 256,
        })?;
        let n = emit(body).map_err(insufficient(HEADER_LEN))?;
        header.message_id = self.rng.uuid();
        let len = header.emit_in_place(buf, n)?;
        let class = if header.message_type == MessageType::Acknowledge {
            TransmitClass::Acknowledge
        } else {
            TransmitClass::Control
        };
        Ok(Transmit {
            len,
            kind: TransmitKind::Binary,
            class,
        })
    }

    pub(super) fn emit_control(
        &mut self,
        c: Control,
        buf: &mut [u8],
    ) -> Result<Transmit, InsufficientSize> {
        match c {
            Control::Ack { id, seq } => {
                let ack = Acknowledge {
                    message_type: self.peer_stream_type(),
                    message_id: id,
                    sequence_number: seq,
                    is_sequential: true,
                };
                let h = self.frame_header(MessageType::Acknowledge, ACK_FLAGS);
                self.emit_unsequenced(buf, h, |b| ack.emit(b))
            }
            Control::Pause | Control::Resume => {
                let t = if matches!(c, Control::Pause) {
                    MessageType::PausePublication
                } else {
                    MessageType::StartPublication
                };
                let h = self.frame_header(t, 0);
                self.emit_unsequenced(buf, h, |b| {
                    let d = b
                        .get_mut(..2)
                        .ok_or(payload::Error::BufferTooSmall { required: 2 })?;
                    d.copy_from_slice(b"{}");
                    Ok(2)
                })
            }
        }
    }

    pub(super) fn emit_channel_closed(
        &mut self,
        buf: &mut [u8],
    ) -> Result<Transmit, InsufficientSize> {
        let mut h = self.frame_header(MessageType::ChannelClosed, 0);
        let body_id = self.rng.uuid().to_hyphenated();
        let date = Decimal::new(h.created_date);
        let date = date.as_str();
        let cc = ChannelClosed {
            message_id: JsonStr::new(ascii(&body_id)),
            created_date: JsonStr::new(date),
            destination_id: JsonStr::EMPTY,
            session_id: JsonStr::EMPTY,
            message_type: JsonStr::new("channel_closed"),
            schema_version: 1,
            output: JsonStr::new(self.close_message.as_str()),
        };
        let body = buf.get_mut(HEADER_LEN..).ok_or(InsufficientSize {
            required: HEADER_LEN + 512,
        })?;
        let n = cc.emit(body).map_err(insufficient(HEADER_LEN))?;
        h.message_id = self.rng.uuid();
        let len = h.emit_in_place(buf, n)?;
        Ok(Transmit {
            len,
            kind: TransmitKind::Binary,
            class: TransmitClass::Control,
        })
    }

    pub(super) fn emit_stored(
        &mut self,
        seq: i64,
        buf: &mut [u8],
    ) -> Result<Transmit, InsufficientSize> {
        let Some(&s) = self.send.get(seq) else {
            return Err(InsufficientSize { required: 0 });
        };
        let p = self.send.payload(&s);
        let required = HEADER_LEN + p.len();
        if buf.len() < required {
            return Err(InsufficientSize { required });
        }
        buf[HEADER_LEN..required].copy_from_slice(p);
        let h = Header {
            message_type: self.own_stream_type(),
            schema_version: SCHEMA_VERSION,
            created_date: s.created_date,
            sequence_number: seq,
            flags: 0,
            message_id: s.id,
            payload_type: s.payload_type,
        };
        let len = h.emit_in_place(buf, p.len())?;
        if s.transmissions > 0 {
            trace!("session: resending message {}", seq);
            self.stats.retransmits = self.stats.retransmits.wrapping_add(1);
        }
        self.send.mark_sent(seq, self.now);
        Ok(Transmit {
            len,
            kind: TransmitKind::Binary,
            class: TransmitClass::Stream,
        })
    }
}

pub(super) fn insufficient(extra: usize) -> impl Fn(payload::Error) -> InsufficientSize {
    move |e| match e {
        payload::Error::BufferTooSmall { required } => InsufficientSize {
            required: required + extra,
        },
        // Our own payloads only fail for lack of room.
        _ => InsufficientSize { required: 0 },
    }
}

/// A hyphenated UUID as text.
pub(super) fn ascii(b: &[u8; 36]) -> &str {
    core::str::from_utf8(b).unwrap_or("")
}
