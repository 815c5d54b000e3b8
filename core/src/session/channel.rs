//! The role-free channel: sequenced messages out (window, chunking, control payloads), frames
//! in, acknowledgements both ways, in-order delivery through the reorder buffer into the read
//! buffer. The roles' own payloads are handed to `deliver_client` / `deliver_agent`.

use super::kms::OPEN_LEN;
use super::recv::{Position, REORDER_SLOT_LEN};
use super::send::{AckOutcome, SendBuffer};
use super::{
    CloseReason, Control, Error, Event, Phase, Role, Session, Stream, WriteError, CONTROL_MAX,
    EVENTS,
};
use crate::payload::{self, Acknowledge};
use crate::time::Instant;
use crate::uuid::Uuid;
use crate::wire::{Frame, FrameRepr, Header, MessageType, PayloadType};

impl<
        const SEND: usize,
        const UNACKED: usize,
        const REORDER: usize,
        const RECV: usize,
        const TXQ: usize,
    > Session<SEND, UNACKED, REORDER, RECV, TXQ>
{
    pub(super) fn tick(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    pub(super) fn created_date(&self) -> u64 {
        match self.unix {
            Some((at, ms)) => ms.saturating_add((self.now - at).total_millis()),
            None => self.now.total_millis(),
        }
    }

    /// The message type this role sends sequenced messages as.
    pub(super) fn own_stream_type(&self) -> MessageType {
        match self.role {
            Role::Client => MessageType::InputStreamData,
            Role::Agent => MessageType::OutputStreamData,
        }
    }

    pub(super) fn peer_stream_type(&self) -> MessageType {
        match self.role {
            Role::Client => MessageType::OutputStreamData,
            Role::Agent => MessageType::InputStreamData,
        }
    }

    /// A fresh message id and the CreatedDate for a message made now.
    pub(super) fn next_ids(&mut self) -> (Uuid, u64) {
        (self.rng.uuid(), self.created_date())
    }

    /// Appends a sequenced message whose payload `fill` writes (at most `max` bytes).
    pub(super) fn push_message(
        &mut self,
        payload_type: PayloadType,
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        let was_idle = self.send.oldest_unacked().is_none();
        let (id, created) = self.next_ids();
        let pushed = self
            .send
            .push(id, payload_type, created, max, fill)
            .is_some();
        if pushed && was_idle {
            self.progress_at = self.now;
        }
        pushed
    }

    /// Pushes a control payload written by `emit` (a payload type's `emit`).
    pub(super) fn push_control(
        &mut self,
        payload_type: PayloadType,
        emit: impl FnOnce(&mut [u8]) -> Result<usize, payload::Error>,
    ) -> bool {
        let max = self.send.room(CONTROL_MAX);
        max > 0 && self.push_message(payload_type, max, |b| emit(b).ok())
    }

    pub(super) fn write_stream(
        &mut self,
        now: Instant,
        payload_type: PayloadType,
        data: &[u8],
    ) -> Result<usize, WriteError> {
        self.tick(now);
        if self.is_closed() || self.closing.is_some() {
            return Err(WriteError::Closed);
        }
        if data.is_empty() {
            return Ok(0);
        }
        if self.phase != Phase::Established {
            self.want_writable = true;
            return Err(WriteError::Blocked);
        }
        // Encrypted payloads carry nonce and tag beyond the `chunk_size` bytes of data.
        let extra = self.seal_overhead(payload_type);
        let mut taken = 0;
        while taken < data.len() {
            let window_room = self
                .window
                .saturating_sub(self.send.unacked_bytes() + extra);
            let want = (data.len() - taken).min(self.chunk_size).min(window_room);
            let n = self.send.room(want + extra).saturating_sub(extra).min(want);
            if n == 0 {
                break;
            }
            let chunk = &data[taken..taken + n];
            if !self.push_stream_payload(payload_type, chunk) {
                break;
            }
            taken += n;
        }
        if taken < data.len() {
            self.want_writable = true;
        }
        if taken == 0 {
            Err(WriteError::Blocked)
        } else {
            Ok(taken)
        }
    }

    /// Queues the acknowledgement of a message seen before (a duplicate): not twice while one
    /// is already queued, and not at all when the queue is full (the peer resends it, and it is
    /// acknowledged then).
    pub(super) fn queue_duplicate_ack(&mut self, id: Uuid, seq: i64) {
        let queued = self
            .txq
            .iter()
            .any(|c| matches!(c, Control::Ack { id: i, seq: s } if *i == id && *s == seq));
        if !queued && self.txq.push_back(Control::Ack { id, seq }).is_err() {
            self.stats.acks_dropped = self.stats.acks_dropped.wrapping_add(1);
        }
    }

    /// Queues the acknowledgements owed to held messages while the transmit queue has room,
    /// then delivers what they held back.
    pub(super) fn queue_owed_acks(&mut self) {
        let mut any = false;
        while !self.txq.is_full() {
            let Some((id, seq)) = self.reorder.next_owed() else {
                break;
            };
            let _ = self.txq.push_back(Control::Ack { id, seq });
            self.reorder.ack_queued(seq);
            any = true;
        }
        if any {
            self.drain();
        }
    }

    pub(super) fn on_frame(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let frame = Frame::new_checked(bytes).map_err(Error::Frame)?;
        let repr = FrameRepr::parse(&frame).map_err(Error::Frame)?;
        if self.role == Role::Agent {
            if !self.peer_opened {
                return Err(Error::Unexpected);
            }
            if self.is_closed() {
                // Whatever the client says, the answer is that the channel is closed.
                self.channel_closed_due = Some(self.now);
                return Ok(());
            }
        }
        let h = repr.header;
        match h.message_type {
            t if t == self.peer_stream_type() => self.on_stream(&h, repr.payload),
            MessageType::Acknowledge => self.on_ack(repr.payload),
            MessageType::ChannelClosed if self.role == Role::Client => {
                self.on_channel_closed(repr.payload)
            }
            MessageType::PausePublication if self.role == Role::Client => {
                if !self.paused {
                    self.paused = true;
                    let _ = self.events.push_back(Event::PublicationPaused);
                }
                Ok(())
            }
            MessageType::StartPublication if self.role == Role::Client => {
                if self.paused {
                    self.paused = false;
                    self.progress_at = self.now;
                    let _ = self.events.push_back(Event::PublicationResumed);
                }
                Ok(())
            }
            _ => Err(Error::Unexpected),
        }
    }

    pub(super) fn on_stream(&mut self, h: &Header, payload: &[u8]) -> Result<(), Error> {
        let seq = h.sequence_number;
        let pt = h.payload_type;
        let position = self.reorder.position(self.expected, seq);
        let mut plain = [0u8; OPEN_LEN];
        let payload = match position {
            // An encrypted payload that does not open is dropped unacknowledged, and the
            // sender resends it (see `open_stream`).
            Position::InOrder | Position::Ahead => self.open_stream(pt, payload, &mut plain)?,
            Position::Duplicate | Position::TooFar => payload,
        };
        match position {
            Position::Duplicate => {
                self.stats.duplicates = self.stats.duplicates.wrapping_add(1);
                if self.reorder.get(seq).is_none_or(|held| !held.ack_owed) {
                    self.queue_duplicate_ack(h.message_id, seq);
                }
            }
            Position::TooFar => {
                debug!(
                    "session: dropped message {} unacknowledged, too far ahead of {}",
                    seq, self.expected
                );
                self.stats.dropped_unacked = self.stats.dropped_unacked.wrapping_add(1);
            }
            // No room for its acknowledgement: held until there is (see `hold`).
            Position::InOrder if self.txq.is_full() => self.hold(h, pt, payload),
            Position::InOrder => match self.deliver(pt, payload) {
                Ok(true) => {
                    self.expected += 1;
                    let _ = self.txq.push_back(Control::Ack {
                        id: h.message_id,
                        seq,
                    });
                    self.drain();
                }
                Ok(false) => self.hold(h, pt, payload),
                Err(e) => {
                    // Consumed (unreadable, or fatal): acknowledge so the peer stops resending.
                    self.expected += 1;
                    let _ = self.txq.push_back(Control::Ack {
                        id: h.message_id,
                        seq,
                    });
                    return Err(e);
                }
            },
            Position::Ahead => self.hold(h, pt, payload),
        }
        Ok(())
    }

    /// Holds a message and acknowledges it; when the transmit queue is full, the
    /// acknowledgement is owed instead and queued as soon as there is room (`queue_owed_acks`).
    pub(super) fn hold(&mut self, h: &Header, pt: PayloadType, payload: &[u8]) {
        let (id, seq) = (h.message_id, h.sequence_number);
        let owed = self.txq.is_full();
        if !self.reorder.hold(seq, id, pt, payload, owed) {
            debug!(
                "session: dropped message {} unacknowledged, no room to hold it",
                seq
            );
            self.stats.dropped_unacked = self.stats.dropped_unacked.wrapping_add(1);
        } else if owed {
            self.stats.acks_deferred = self.stats.acks_deferred.wrapping_add(1);
        } else {
            let _ = self.txq.push_back(Control::Ack { id, seq });
        }
    }

    /// Delivers held messages that are now in order.
    pub(super) fn drain(&mut self) {
        let mut tmp = [0u8; REORDER_SLOT_LEN];
        while !self.is_closed() {
            let Some(held) = self.reorder.get(self.expected) else {
                break;
            };
            if held.ack_owed {
                // Its id is needed for the acknowledgement: it stays until that is queued.
                break;
            }
            let (pt, n) = (held.payload_type, held.payload().len());
            tmp[..n].copy_from_slice(held.payload());
            match self.deliver(pt, &tmp[..n]) {
                Ok(false) => break,
                Ok(true) | Err(_) => {
                    self.reorder.release(self.expected);
                    self.expected += 1;
                }
            }
            if self.is_closed() {
                break;
            }
        }
        if self.reorder.get(self.expected).is_none() {
            if let Some(reason) = self.close_after_drain.take() {
                self.close_with(reason);
            }
        }
    }

    pub(super) fn event_room(&self, n: usize) -> bool {
        EVENTS - self.events.len() >= n
    }

    /// Acts on one in-order stream message. `Ok(false)`: no room now (read buffer, events or
    /// send buffer full); hold it and try again later.
    pub(super) fn deliver(&mut self, pt: PayloadType, payload: &[u8]) -> Result<bool, Error> {
        match self.role {
            Role::Client => self.deliver_client(pt, payload),
            Role::Agent => self.deliver_agent(pt, payload),
        }
    }

    /// A stream payload this role does not act on: acknowledged and ignored (e.g. an
    /// encryption challenge we never asked for).
    pub(super) fn ignore(&self, pt: PayloadType) -> Result<bool, Error> {
        debug!("session: ignoring stream payload type {}", u32::from(pt));
        Ok(true)
    }

    pub(super) fn deliver_data(&mut self, stream: Stream, payload: &[u8]) -> Result<bool, Error> {
        if payload.len() > RECV {
            // Cannot ever fit: the peer sends bigger messages than this session was built for.
            self.close_fatal(CloseReason::ProtocolViolation);
            return Err(Error::Unexpected);
        }
        if !self.read_buf.fits(stream, payload.len())
            || (!self.readable_queued && !self.event_room(1))
        {
            return Ok(false);
        }
        self.read_buf.push(stream, payload);
        if !self.readable_queued && !payload.is_empty() {
            self.readable_queued = true;
            let _ = self.events.push_back(Event::Readable);
        }
        Ok(true)
    }

    pub(super) fn on_ack(&mut self, payload: &[u8]) -> Result<(), Error> {
        let ack = Acknowledge::parse(payload).map_err(Error::Payload)?;
        if ack.message_type != self.own_stream_type() {
            self.stats.unknown_acks = self.stats.unknown_acks.wrapping_add(1);
            return Ok(());
        }
        let (reordering, min_rtt) = (self.rtt.reordering(), self.rtt.min_rtt());
        match self.send.on_ack(
            ack.sequence_number,
            ack.message_id,
            self.now,
            reordering,
            min_rtt,
        ) {
            AckOutcome::New(sample) => {
                if let Some(s) = sample {
                    self.rtt.on_sample(s);
                }
                // A held message may have waited for send-buffer room (a handshake answer).
                self.drain();
                self.progress_at = self.now;
                if self.want_writable
                    && self.phase == Phase::Established
                    && self.send.unacked_bytes() < self.window
                    && self.send.room(1) > 0
                {
                    self.want_writable = false;
                    self.writable_pending = true;
                }
            }
            AckOutcome::Duplicate => {}
            AckOutcome::Unknown => {
                self.stats.unknown_acks = self.stats.unknown_acks.wrapping_add(1);
            }
        }
        Ok(())
    }
}

/// Appends a sequenced control message whose payload `emit` writes; `false` when it does not
/// fit now.
pub(super) fn push_payload<const B: usize, const S: usize>(
    send: &mut SendBuffer<B, S>,
    id: Uuid,
    created: u64,
    payload_type: PayloadType,
    emit: impl FnOnce(&mut [u8]) -> Result<usize, payload::Error>,
) -> bool {
    let max = send.room(CONTROL_MAX);
    max > 0
        && send
            .push(id, payload_type, created, max, |b| emit(b).ok())
            .is_some()
}
