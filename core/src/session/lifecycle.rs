//! The lifecycle: handshake and give-up deadlines, pending control messages, the orderly close
//! (`close`, `terminate`, `close_channel`), `channel_closed` from the peer, and the final close.

use super::{CloseReason, Error, Event, Phase, Role, Session};
use crate::payload::{ChannelClosed, ExitCode};
use crate::time::Instant;
use crate::wire::PayloadType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closing {
    /// `close`: wait until everything is acknowledged.
    Flush,
    /// `terminate`: TerminateSession flag queued; wait for its acknowledgement.
    Terminate,
    /// Agent `close_channel`: flush, then send `channel_closed`.
    ChannelClose,
}

impl<
        const SEND: usize,
        const UNACKED: usize,
        const REORDER: usize,
        const RECV: usize,
        const TXQ: usize,
    > Session<SEND, UNACKED, REORDER, RECV, TXQ>
{
    pub(super) fn begin_closing(&mut self, c: Closing) {
        if self.is_closed() {
            return;
        }
        self.closing = Some(c);
        self.advance();
    }

    pub(super) fn give_up_deadline(&self) -> Option<Instant> {
        if self.is_closed() || self.paused {
            return None;
        }
        self.send
            .oldest_unacked()
            .map(|_| self.progress_at + self.give_up)
    }

    /// When the handshake times out, while it is not over.
    pub(super) fn handshake_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Opening | Phase::Handshaking => self.handshake_deadline,
            Phase::Established | Phase::Closed(_) => None,
        }
    }

    /// Housekeeping after every input and command: give-up, pending control messages, the end
    /// of an orderly close.
    pub(super) fn advance(&mut self) {
        if self.is_closed() {
            return;
        }
        if let Some(d) = self.give_up_deadline() {
            if self.now >= d {
                warn!(
                    "session: giving up, {} bytes unacknowledged for {} ms",
                    self.send.unacked_bytes(),
                    (self.now - self.progress_at).total_millis()
                );
                match self.role {
                    Role::Client => self.close_with(CloseReason::GaveUp),
                    Role::Agent => self.agent_close(CloseReason::GaveUp),
                }
                return;
            }
        }
        if self.handshake_deadline().is_some_and(|d| self.now >= d) {
            warn!(
                "session: handshake not complete after {} ms",
                self.handshake_timeout.total_millis()
            );
            self.close_fatal(CloseReason::HandshakeTimeout);
            return;
        }
        if self.phase == Phase::Established {
            if let Some(size) = self.pending_size {
                if self.push_control(PayloadType::Size, |b| size.emit(b)) {
                    self.pending_size = None;
                }
            }
            while let Some(&flag) = self.pending_flags.front() {
                if !self.push_control(PayloadType::Flag, |b| flag.emit(b)) {
                    break;
                }
                self.pending_flags.pop_front();
            }
            if let Some(code) = self.pending_exit {
                let mut text = [0u8; 24]; // `EXIT_CODE: -2147483648` is 22 bytes.
                let n = ExitCode(code).emit(&mut text).unwrap_or(0);
                if self.push_stream_payload(PayloadType::ExitCode, &text[..n]) {
                    self.pending_exit = None;
                }
            }
        }
        let flushed = self.send.is_empty()
            && self.pending_flags.is_empty()
            && self.pending_exit.is_none()
            && (self.pending_size.is_none() || self.phase != Phase::Established);
        if flushed {
            match self.closing {
                Some(Closing::Flush) => self.close_with(CloseReason::Local),
                Some(Closing::Terminate) => self.close_with(CloseReason::Terminated),
                Some(Closing::ChannelClose) => self.agent_close(CloseReason::Local),
                None => {}
            }
        }
    }

    pub(super) fn close_with(&mut self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        debug!("session: closed: {}", reason.as_str());
        self.phase = Phase::Closed(reason);
        self.closed_event_pending = true;
        self.open_pending = false;
        if self.role == Role::Client {
            self.token = None;
        }
    }

    /// Agent: closes and starts sending `channel_closed`.
    pub(super) fn agent_close(&mut self, reason: CloseReason) {
        self.close_with(reason);
        self.channel_closed_due = Some(self.now);
    }

    pub(super) fn close_fatal(&mut self, reason: CloseReason) {
        match self.role {
            Role::Client => self.close_with(reason),
            Role::Agent => {
                self.close_message.set_cut(reason.as_str());
                self.agent_close(reason);
            }
        }
    }

    /// The handshake is over: data may flow.
    pub(super) fn establish(&mut self) {
        self.kms_established();
        self.phase = Phase::Established;
        let _ = self.events.push_back(Event::HandshakeComplete);
        self.writable_pending = true;
        self.want_writable = false;
    }

    pub(super) fn on_channel_closed(&mut self, payload: &[u8]) -> Result<(), Error> {
        let r = ChannelClosed::parse(payload).map(|c| {
            self.close_message.set_json(&c.output);
        });
        let reason = if self.closing == Some(Closing::Terminate) {
            CloseReason::Terminated
        } else {
            CloseReason::ChannelClosed
        };
        if self.reorder.get(self.expected).is_some() {
            // Messages acknowledged and held for room in the read buffer come first: the peer
            // counts them as delivered.
            self.close_after_drain = Some(reason);
        } else {
            self.close_with(reason);
        }
        r.map_err(Error::Payload)
    }
}

pub(super) fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
