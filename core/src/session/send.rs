//! The outgoing side of the reliability layer: sequenced messages kept until acknowledged.
//!
//! Payloads live in one byte ring (`BYTES`), each message contiguous; their metadata in a ring
//! of `SLOTS` entries indexed by sequence number. A message is freed when it and every older one
//! are acknowledged, so memory is released in order even when acks arrive out of order.

use crate::time::{Duration, Instant};
use crate::uuid::Uuid;

/// One sequenced message waiting for its acknowledgement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub(crate) id: Uuid,
    pub(crate) payload_type: u32,
    pub(crate) created_date: u64,
    off: u32,
    len: u32,
    /// When it last went out on the current transport; `None` until it does.
    pub(crate) sent_at: Option<Instant>,
    /// Transmissions so far, over every transport (Karn: sample RTT only when 1).
    pub(crate) transmissions: u32,
    pub(crate) acked: bool,
}

impl Sent {
    const EMPTY: Sent = Sent {
        id: Uuid::NIL,
        payload_type: 0,
        created_date: 0,
        off: 0,
        len: 0,
        sent_at: None,
        transmissions: 0,
        acked: false,
    };

    fn end(&self) -> usize {
        (self.off + self.len) as usize
    }
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    /// Newly acknowledged; carries an RTT sample if the message went out exactly once.
    New(Option<Duration>),
    /// Already acknowledged (a duplicate ack).
    Duplicate,
    /// No such message in flight, or the id does not match its sequence number.
    Unknown,
}

/// Sequenced messages in flight, oldest first.
pub(crate) struct SendBuffer<const BYTES: usize, const SLOTS: usize> {
    bytes: [u8; BYTES],
    slots: [Sent; SLOTS],
    /// Ring index of the oldest slot.
    first: usize,
    /// Live slots.
    len: usize,
    /// Sequence number of the oldest live slot (or of the next message when empty).
    base_seq: i64,
    /// Payload bytes of messages not yet acknowledged.
    unacked_bytes: usize,
}

impl<const BYTES: usize, const SLOTS: usize> SendBuffer<BYTES, SLOTS> {
    pub(crate) const fn new() -> Self {
        SendBuffer {
            bytes: [0; BYTES],
            slots: [Sent::EMPTY; SLOTS],
            first: 0,
            len: 0,
            base_seq: 0,
            unacked_bytes: 0,
        }
    }

    fn idx(&self, i: usize) -> usize {
        (self.first + i) % SLOTS
    }

    /// Sequence number the next pushed message gets.
    pub(crate) fn next_seq(&self) -> i64 {
        self.base_seq + self.len as i64
    }

    /// Payload bytes sent or queued but not acknowledged.
    pub(crate) fn unacked_bytes(&self) -> usize {
        self.unacked_bytes
    }

    /// Whether every message is acknowledged (and freed).
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The free regions: `(tail, len)` after the newest payload, and the length of the region at
    /// offset 0 (before the oldest payload) when the ring is not wrapped.
    fn free(&self) -> ((usize, usize), usize) {
        if self.len == 0 {
            return ((0, BYTES), 0);
        }
        let first = &self.slots[self.first];
        let last = &self.slots[self.idx(self.len - 1)];
        let (head, tail) = (first.off as usize, last.end());
        if last.off < first.off {
            // Wrapped: the only gap is between the newest and the oldest payload.
            ((tail, head - tail), 0)
        } else {
            ((tail, BYTES - tail), head)
        }
    }

    /// Where a contiguous payload of `n` bytes fits, if anywhere.
    fn fit(&self, n: usize) -> Option<usize> {
        if self.len == SLOTS {
            return None;
        }
        let ((tail, after), before) = self.free();
        if after >= n {
            Some(tail)
        } else if before >= n {
            Some(0)
        } else {
            None
        }
    }

    /// The largest payload `push` could take right now, at most `want`.
    pub(crate) fn room(&self, want: usize) -> usize {
        if self.len == SLOTS {
            return 0;
        }
        let ((_, after), before) = self.free();
        after.max(before).min(want)
    }

    /// Appends a message whose payload `fill` writes into at most `max` bytes and returns the
    /// length written, or `None` to abort. Returns the sequence number given, or `None` when no
    /// slot or no contiguous room for `max` bytes is free (nothing changes).
    pub(crate) fn push(
        &mut self,
        id: Uuid,
        payload_type: u32,
        created_date: u64,
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Option<i64> {
        let off = self.fit(max)?;
        let n = fill(&mut self.bytes[off..off + max])?;
        debug_assert!(n <= max);
        let n = n.min(max);
        let i = self.idx(self.len);
        self.slots[i] = Sent {
            id,
            payload_type,
            created_date,
            off: off as u32,
            len: n as u32,
            sent_at: None,
            transmissions: 0,
            acked: false,
        };
        self.len += 1;
        self.unacked_bytes += n;
        Some(self.next_seq() - 1)
    }

    /// The message with sequence number `seq`, if live.
    pub(crate) fn get(&self, seq: i64) -> Option<&Sent> {
        let off = seq.checked_sub(self.base_seq)?;
        if off < 0 || off as usize >= self.len {
            return None;
        }
        Some(&self.slots[self.idx(off as usize)])
    }

    /// The payload of a live message.
    pub(crate) fn payload(&self, s: &Sent) -> &[u8] {
        &self.bytes[s.off as usize..s.end()]
    }

    /// The oldest unacknowledged message that is due: never sent on this transport, or sent
    /// `rto` ago or more. Returns its sequence number.
    pub(crate) fn next_due(&self, now: Instant, rto: Duration) -> Option<i64> {
        (0..self.len).find_map(|i| {
            let s = &self.slots[self.idx(i)];
            let due = !s.acked && s.sent_at.is_none_or(|t| t + rto <= now);
            due.then_some(self.base_seq + i as i64)
        })
    }

    /// Records a transmission of `seq` at `now`.
    pub(crate) fn mark_sent(&mut self, seq: i64, now: Instant) {
        if let Some(off) = seq.checked_sub(self.base_seq) {
            if off >= 0 && (off as usize) < self.len {
                let i = self.idx(off as usize);
                let s = &mut self.slots[i];
                s.sent_at = Some(now);
                s.transmissions = s.transmissions.saturating_add(1);
            }
        }
    }

    /// The earliest retransmission deadline among messages already sent.
    pub(crate) fn next_deadline(&self, rto: Duration) -> Option<Instant> {
        (0..self.len)
            .filter_map(|i| {
                let s = &self.slots[self.idx(i)];
                if s.acked {
                    None
                } else {
                    s.sent_at.map(|t| t + rto)
                }
            })
            .min()
    }

    /// Forgets every transmission time so that all unacknowledged messages go out again (a new
    /// transport). Transmission counts stay, so Karn's rule still holds across the reconnect.
    pub(crate) fn mark_all_unsent(&mut self) {
        for i in 0..self.len {
            let j = self.idx(i);
            self.slots[j].sent_at = None;
        }
    }

    /// Applies an acknowledgement naming `seq` and `id`, then frees the acknowledged prefix.
    pub(crate) fn on_ack(&mut self, seq: i64, id: Uuid, now: Instant) -> AckOutcome {
        let Some(off) = seq.checked_sub(self.base_seq) else {
            return AckOutcome::Unknown;
        };
        if off < 0 {
            // Older than everything live: acknowledged (and freed) already.
            return AckOutcome::Duplicate;
        }
        if off as usize >= self.len {
            return AckOutcome::Unknown;
        }
        let i = self.idx(off as usize);
        let s = &mut self.slots[i];
        if s.id != id {
            return AckOutcome::Unknown;
        }
        if s.acked {
            return AckOutcome::Duplicate;
        }
        s.acked = true;
        self.unacked_bytes -= s.len as usize;
        let sample = match (s.transmissions, s.sent_at) {
            (1, Some(t)) => Some(now - t),
            _ => None,
        };
        while self.len > 0 && self.slots[self.first].acked {
            self.first = (self.first + 1) % SLOTS;
            self.len -= 1;
            self.base_seq += 1;
        }
        AckOutcome::New(sample)
    }

    /// Fast retransmission: when at least `threshold` messages newer than the oldest
    /// unacknowledged one are acknowledged, the peer is holding them behind a gap and that one
    /// was lost. If it went out only once, it becomes due now (once: after that its timeout
    /// governs). Returns whether it did. Repairs the gap in one round trip, before the peer's
    /// reorder slots overflow and it has to drop (and we resend) everything behind.
    pub(crate) fn fast_retransmit(&mut self, threshold: usize) -> bool {
        let Some(i) = (0..self.len).find(|&i| !self.slots[self.idx(i)].acked) else {
            return false;
        };
        let j = self.idx(i);
        if self.slots[j].transmissions != 1 || self.slots[j].sent_at.is_none() {
            return false;
        }
        let newer_acked = (i + 1..self.len)
            .filter(|&k| self.slots[self.idx(k)].acked)
            .count();
        if newer_acked < threshold {
            return false;
        }
        self.slots[j].sent_at = None;
        true
    }

    /// When the oldest unacknowledged message was first queued or sent, for the give-up timer.
    pub(crate) fn oldest_unacked(&self) -> Option<&Sent> {
        (0..self.len)
            .map(|i| &self.slots[self.idx(i)])
            .find(|s| !s.acked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(b: &mut SendBuffer<64, 4>, n: usize, byte: u8) -> Option<i64> {
        b.push(Uuid([byte; 16]), 1, 0, n, |d| {
            d.fill(byte);
            Some(n)
        })
    }

    #[test]
    fn sequence_numbers_and_in_order_free() {
        let mut b = SendBuffer::<64, 4>::new();
        assert_eq!(push(&mut b, 20, 1), Some(0));
        assert_eq!(push(&mut b, 20, 2), Some(1));
        assert_eq!(push(&mut b, 20, 3), Some(2));
        assert_eq!(b.unacked_bytes(), 60);
        // 4 bytes left at the end, none before the head.
        assert_eq!(push(&mut b, 20, 4), None);
        assert_eq!(b.room(20), 4);
        // Acking the middle one frees nothing yet but counts.
        assert_eq!(
            b.on_ack(1, Uuid([2; 16]), Instant::ZERO),
            AckOutcome::New(None)
        );
        assert_eq!(b.unacked_bytes(), 40);
        assert_eq!(
            b.on_ack(1, Uuid([2; 16]), Instant::ZERO),
            AckOutcome::Duplicate
        );
        assert_eq!(push(&mut b, 20, 4), None);
        // Wrong id: ignored.
        assert_eq!(
            b.on_ack(0, Uuid([9; 16]), Instant::ZERO),
            AckOutcome::Unknown
        );
        assert!(matches!(
            b.on_ack(0, Uuid([1; 16]), Instant::ZERO),
            AckOutcome::New(_)
        ));
        // 0 and 1 freed: 40 bytes before the head now.
        assert_eq!(push(&mut b, 30, 4), Some(3));
        assert_eq!(b.payload(b.get(3).unwrap()), &[4u8; 30][..]);
        assert_eq!(b.payload(b.get(2).unwrap()), &[3u8; 20][..]);
        assert_eq!(b.next_seq(), 4);
    }

    #[test]
    fn karn_samples_only_single_transmissions() {
        let mut b = SendBuffer::<64, 4>::new();
        push(&mut b, 1, 1);
        push(&mut b, 1, 2);
        b.mark_sent(0, Instant::from_millis(10));
        b.mark_sent(1, Instant::from_millis(10));
        b.mark_sent(1, Instant::from_millis(300));
        assert_eq!(
            b.on_ack(0, Uuid([1; 16]), Instant::from_millis(50)),
            AckOutcome::New(Some(Duration::from_millis(40)))
        );
        assert_eq!(
            b.on_ack(1, Uuid([2; 16]), Instant::from_millis(350)),
            AckOutcome::New(None)
        );
        assert!(b.is_empty());
    }

    #[test]
    fn fast_retransmit_after_three_newer_acks_once() {
        let mut b = SendBuffer::<64, 4>::new();
        for k in 0..4 {
            push(&mut b, 1, k);
            b.mark_sent(k as i64, Instant::ZERO);
        }
        let rto = Duration::from_millis(200);
        b.on_ack(1, Uuid([1; 16]), Instant::from_millis(5));
        b.on_ack(2, Uuid([2; 16]), Instant::from_millis(5));
        assert!(!b.fast_retransmit(3));
        b.on_ack(3, Uuid([3; 16]), Instant::from_millis(5));
        assert!(b.fast_retransmit(3));
        assert_eq!(b.next_due(Instant::from_millis(5), rto), Some(0));
        b.mark_sent(0, Instant::from_millis(5));
        // Sent twice now: only its timeout brings it back.
        assert!(!b.fast_retransmit(3));
        assert_eq!(b.next_due(Instant::from_millis(6), rto), None);
    }

    #[test]
    fn every_expired_message_is_due() {
        let mut b = SendBuffer::<64, 4>::new();
        for k in 0..3 {
            push(&mut b, 1, k);
        }
        let rto = Duration::from_millis(200);
        for s in 0..3 {
            assert_eq!(b.next_due(Instant::ZERO, rto), Some(s));
            b.mark_sent(s, Instant::from_millis(s as u64));
        }
        assert_eq!(b.next_due(Instant::from_millis(100), rto), None);
        assert_eq!(b.next_deadline(rto), Some(Instant::from_millis(200)));
        b.mark_sent(0, Instant::from_millis(200));
        assert_eq!(b.next_due(Instant::from_millis(202), rto), Some(1));
        b.mark_sent(1, Instant::from_millis(202));
        assert_eq!(b.next_due(Instant::from_millis(202), rto), Some(2));
    }
}
