//! The outgoing side of the reliability layer: sequenced messages kept until acknowledged.
//!
//! Payloads live in one byte ring (`BYTES`), each message contiguous; their metadata in a ring
//! of `SLOTS` entries indexed by sequence number. A message is freed when it and every older one
//! are acknowledged, so memory is released in order even when acks arrive out of order.
//!
//! # When a message goes out again
//!
//! Over a WebSocket nothing is lost while the connection lives, but a message taken from
//! `poll_transmit` may wait a long time behind others (the adapter's queue, the kernel's send
//! buffer, the slowest hop) before the peer sees it, and its acknowledgement may wait behind the
//! peer's data. A timer that runs from each message's own transmission would then expire for
//! every queued message at once, resend the whole window into the same queue and make it longer
//! (a retransmission storm that never ends, because Karn's rule then forbids the samples that
//! would raise the timeout). Two rules instead:
//!
//! - **Loss by a later delivery** (RACK, RFC 8985): once a message that went out once is
//!   acknowledged, an unacknowledged message sent before it is lost when its own acknowledgement
//!   is later than that one's round trip plus a small reordering allowance — the path is first
//!   in, first out, so it would have arrived first. It goes out again about one round trip after
//!   its first transmission, without waiting for a timeout.
//! - **Loss by silence** (RFC 6298 §5.3–5.5): a message's retransmission timeout counts from
//!   its last transmission *or the last acknowledgement received, whichever is later*, so while
//!   acknowledgements keep coming (the queue drains) nothing times out. The first timeout sends
//!   the oldest unacknowledged message alone, as a probe, and starts a recovery in which every
//!   other message sent before it goes out again too, but clocked by acknowledgements: two for
//!   each copy acknowledged (TCP's slow start, RFC 5681 §3.1). A copy acknowledged sooner than
//!   the smallest round trip after it went out was not needed (the first transmission was only
//!   late): the recovery ends there. A queue that suddenly grew (a burst after an idle spell)
//!   so costs a copy or three instead of a window, and a peer that dropped a run of messages
//!   gets them back in 1, 2, 4, 8... per round trip. While the silence lasts only the probe
//!   repeats, each time after twice the timeout (up to [`MAX_BACKOFF`] doublings, also for
//!   messages sent meanwhile), so a dead or frozen path sees a few copies, not a flood. Any new
//!   acknowledgement ends the doublings; one of a message sent once (fresh data got through,
//!   the path is clear) ends the recovery. A new transport ends both: everything
//!   unacknowledged goes out again at once on it.
//!
//! Both hold while acknowledgements come in order, as they do over a WebSocket. Once one comes
//! out of order (an older message still unacknowledged), the path itself loses or reorders
//! messages (a lossy test network, the emulator's faults): until [`IN_ORDER_TO_CLEAR`] come in
//! order again, every message runs on its own timer, without doublings or a recovery, and all
//! whose timers expired go out again at once — what the official client always does, and what
//! repairs fastest where losses, not queues, are the problem. Behind a queue longer than the
//! timeout, that same rule is the storm described above.

use crate::time::{Duration, Instant};
use crate::uuid::Uuid;
use crate::wire::PayloadType;

/// One sequenced message waiting for its acknowledgement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub(crate) id: Uuid,
    pub(crate) payload_type: PayloadType,
    pub(crate) created_date: u64,
    off: u32,
    len: u32,
    /// When it last went out on the current transport; `None` until it does.
    pub(crate) sent_at: Option<Instant>,
    /// Transmissions so far, over every transport (Karn: sample RTT only when 1).
    pub(crate) transmissions: u32,
    /// Its timeout is the RTO doubled this many times, while `epoch` is the buffer's.
    backoff: u8,
    /// The buffer's `epoch` when `backoff` was set: an acknowledgement since clears it.
    epoch: u32,
    /// Its last transmission repaired a loss found by a later delivery: the first one surely
    /// never arrived, so an acknowledgement a round trip later is this copy's.
    rack_copy: bool,
    pub(crate) acked: bool,
}

impl Sent {
    const EMPTY: Sent = Sent {
        id: Uuid::NIL,
        payload_type: PayloadType::Null,
        created_date: 0,
        off: 0,
        len: 0,
        sent_at: None,
        transmissions: 0,
        backoff: 0,
        epoch: 0,
        rack_copy: false,
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
    /// When the last acknowledgement arrived (new or repeated): the peer was alive and the path
    /// draining then, so retransmission timers count from no earlier.
    ack_at: Option<Instant>,
    /// The last-sent message among those acknowledged after a single transmission.
    delivered: Option<Delivered>,
    /// Doublings in force: raised by each timeout, cleared by the next acknowledgement (RFC 6298
    /// §5.5). Messages sent meanwhile start with it: without that, once a queue outgrew the
    /// timeout, every new message would time out too, and Karn's rule would refuse every
    /// sample that could raise the estimate.
    backoff: u8,
    /// Counts acknowledgements (and new transports): a message's own doublings hold only
    /// within the epoch they were set in.
    epoch: u32,
    /// The recovery under way, if any (see the module documentation).
    recovery: Option<Recovery>,
    /// The path loses or reorders messages: an acknowledgement arrived while an older message
    /// was unacknowledged, and fewer than [`IN_ORDER_TO_CLEAR`] in order since.
    lossy: bool,
    /// Acknowledgements in order since the last one out of order.
    in_order: u16,
}

/// In-order acknowledgements after which a path that lost or reordered counts as clean again.
const IN_ORDER_TO_CLEAR: u16 = 256;

/// A recovery: the probe went out at `start`; messages sent before then and not acknowledged
/// go out again as acknowledgements allow.
#[derive(Debug, Clone, Copy)]
struct Recovery {
    start: Instant,
    /// How many of them may go out now.
    budget: u16,
}

/// Most timed-out messages a recovery lets go out ahead of the acknowledgements.
const MAX_BUDGET: u16 = 1024;

/// What RACK keeps of the last-sent message acknowledged after a single transmission.
#[derive(Debug, Clone, Copy)]
struct Delivered {
    sent_at: Instant,
    seq: i64,
    /// Its round trip.
    rtt: Duration,
    /// The reordering allowance when it was acknowledged.
    reordering: Duration,
}

/// Most doublings of a message's retransmission timeout (RFC 6298 §5.5): with the default 1 s
/// ceiling of the estimator, a dead path sees copies after 1, 2, 4, 8 and then every 16 s.
pub(crate) const MAX_BACKOFF: u8 = 4;

/// `rto` doubled `backoff` times (at most [`MAX_BACKOFF`]).
fn backed_off(rto: Duration, backoff: u8) -> Duration {
    Duration::from_millis(
        rto.total_millis()
            .saturating_mul(1 << backoff.min(MAX_BACKOFF)),
    )
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
            ack_at: None,
            delivered: None,
            backoff: 0,
            epoch: 0,
            recovery: None,
            lossy: false,
            in_order: 0,
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
        payload_type: PayloadType,
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
            backoff: 0,
            epoch: 0,
            rack_copy: false,
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

    /// Slot positions (from the oldest live one) that may go out: fewer than `ahead` past the
    /// oldest unacknowledged message, so that a peer holding `ahead - 1` messages out of order
    /// never has to drop one for lack of room.
    fn sendable(&self, ahead: usize) -> core::ops::Range<usize> {
        0..self.len.min(self.oldest().saturating_add(ahead))
    }

    /// When the message `s` (sent, not acknowledged) times out: its RTO, doubled once per
    /// earlier timeout, counted from its last transmission or the last acknowledgement,
    /// whichever is later.
    fn timeout_at(&self, s: &Sent, rto: Duration) -> Option<Instant> {
        let sent = s.sent_at?;
        if self.lossy {
            // Losses, not queues: every message on its own timer, as the official client.
            return Some(sent + rto);
        }
        let from = match self.ack_at {
            Some(a) if a > sent => a,
            _ => sent,
        };
        Some(from + backed_off(rto, self.backoff_of(s)))
    }

    /// The doublings of `s`'s timeout: none once an acknowledgement came after they were set.
    fn backoff_of(&self, s: &Sent) -> u8 {
        if s.epoch == self.epoch {
            s.backoff
        } else {
            0
        }
    }

    /// When the message `s` with sequence number `seq` counts as lost because a message sent
    /// after it was delivered: its transmission plus that one's round trip plus the reordering
    /// allowance. `None` while no message sent after it has been acknowledged.
    fn lost_at(&self, s: &Sent, seq: i64) -> Option<Instant> {
        let (t, d) = (s.sent_at?, self.delivered?);
        let before = t < d.sent_at || (t == d.sent_at && seq < d.seq);
        before.then(|| t + d.rtt + d.reordering)
    }

    /// When the message at position `i` goes out again: `None` once acknowledged, before its
    /// first transmission on this transport (then it is due at once), or while a recovery holds
    /// it for an acknowledgement. `oldest` is the position of the oldest unacknowledged one.
    fn resend_at(&self, i: usize, oldest: usize, rto: Duration) -> Option<Instant> {
        let s = &self.slots[self.idx(i)];
        if s.acked {
            return None;
        }
        let lost = self.lost_at(s, self.base_seq + i as i64);
        let timeout = match (self.recovery, s.sent_at) {
            // Waiting for another go: now if the budget allows, else at an acknowledgement
            // (the oldest also by its own timer, so that silence still sends the probe).
            (Some(r), Some(t)) if t < r.start && !self.lossy => {
                if r.budget > 0 {
                    Some(r.start)
                } else if i == oldest {
                    self.timeout_at(s, rto)
                } else {
                    None
                }
            }
            _ => self.timeout_at(s, rto),
        };
        match (lost, timeout) {
            (Some(l), Some(t)) => Some(l.min(t)),
            (l, t) => l.or(t),
        }
    }

    /// The position of the oldest unacknowledged message (`len` when none).
    fn oldest(&self) -> usize {
        (0..self.len)
            .find(|&i| !self.slots[self.idx(i)].acked)
            .unwrap_or(self.len)
    }

    /// The oldest unacknowledged message that is due, among those fewer than `ahead` past the
    /// oldest unacknowledged one: never sent on this transport, found lost, or timed out and
    /// let go by the recovery (see the module documentation). Returns its sequence number.
    pub(crate) fn next_due(&self, now: Instant, rto: Duration, ahead: usize) -> Option<i64> {
        let oldest = self.oldest();
        self.sendable(ahead).find_map(|i| {
            let s = &self.slots[self.idx(i)];
            let due = !s.acked
                && (s.sent_at.is_none()
                    || self.resend_at(i, oldest, rto).is_some_and(|t| t <= now));
            due.then_some(self.base_seq + i as i64)
        })
    }

    /// Records a transmission of `seq` at `now`. A message sent before that is not found lost
    /// went out again because its timeout passed: its next timeout doubles, and so do those of
    /// messages sent from now on until an acknowledgement arrives; the first starts a recovery,
    /// the others use its budget. Any other transmission starts with the doublings in force.
    pub(crate) fn mark_sent(&mut self, seq: i64, now: Instant) {
        let Some(off) = seq.checked_sub(self.base_seq) else {
            return;
        };
        if off < 0 || off as usize >= self.len {
            return;
        }
        let i = self.idx(off as usize);
        let sent = &self.slots[i];
        let found_lost = self.lost_at(sent, seq).is_some_and(|t| t <= now);
        let waiting = matches!((self.recovery, sent.sent_at), (Some(r), Some(t)) if t < r.start);
        if sent.sent_at.is_some() && !found_lost {
            if let (true, Some(r)) = (waiting, self.recovery.as_mut()) {
                if r.budget > 0 {
                    // Let go by an acknowledgement.
                    r.budget -= 1;
                    let s = &mut self.slots[i];
                    s.backoff = self.backoff;
                    s.epoch = self.epoch;
                    s.sent_at = Some(now);
                    s.transmissions = s.transmissions.saturating_add(1);
                    s.rack_copy = false;
                    return;
                }
            }
            // Its timeout passed: the next doubles; the first starts a recovery.
            let b = self.backoff_of(&self.slots[i]).saturating_add(1);
            self.backoff = b.max(self.backoff).min(MAX_BACKOFF);
            if self.recovery.is_none() && !self.lossy {
                self.recovery = Some(Recovery {
                    start: now,
                    budget: 0,
                });
            }
        }
        let s = &mut self.slots[i];
        s.rack_copy = found_lost;
        s.backoff = self.backoff;
        s.epoch = self.epoch;
        s.sent_at = Some(now);
        s.transmissions = s.transmissions.saturating_add(1);
    }

    /// The earliest retransmission deadline among messages already sent that may go out again
    /// (see [`next_due`](Self::next_due)).
    pub(crate) fn next_deadline(&self, rto: Duration, ahead: usize) -> Option<Instant> {
        let oldest = self.oldest();
        self.sendable(ahead)
            .filter_map(|i| self.resend_at(i, oldest, rto))
            .min()
    }

    /// Forgets every transmission time so that all unacknowledged messages go out again (a new
    /// transport), with fresh timeouts. Transmission counts stay, so Karn's rule still holds
    /// across the reconnect.
    pub(crate) fn mark_all_unsent(&mut self) {
        self.backoff = 0;
        self.epoch = self.epoch.wrapping_add(1);
        self.recovery = None;
        for i in 0..self.len {
            let j = self.idx(i);
            self.slots[j].sent_at = None;
        }
    }

    /// Applies an acknowledgement naming `seq` and `id`, then frees the acknowledged prefix.
    /// `reordering` is how much later than a message sent after it a message may arrive before
    /// it counts as lost, `min_rtt` the smallest round trip measured (see the module
    /// documentation).
    pub(crate) fn on_ack(
        &mut self,
        seq: i64,
        id: Uuid,
        now: Instant,
        reordering: Duration,
        min_rtt: Option<Duration>,
    ) -> AckOutcome {
        let Some(off) = seq.checked_sub(self.base_seq) else {
            return AckOutcome::Unknown;
        };
        if off < 0 {
            // Older than everything live: acknowledged (and freed) already.
            self.ack_at = Some(now);
            return AckOutcome::Duplicate;
        }
        if off as usize >= self.len {
            return AckOutcome::Unknown;
        }
        let oldest = self.oldest();
        let i = self.idx(off as usize);
        let s = &mut self.slots[i];
        if s.id != id {
            return AckOutcome::Unknown;
        }
        if !s.acked {
            if off as usize == oldest {
                self.in_order = self.in_order.saturating_add(1);
                if self.in_order >= IN_ORDER_TO_CLEAR {
                    self.lossy = false;
                }
            } else {
                self.lossy = true;
                self.in_order = 0;
                self.recovery = None;
            }
        }
        let s = &mut self.slots[i];
        if s.acked {
            self.ack_at = Some(now);
            return AckOutcome::Duplicate;
        }
        s.acked = true;
        let s_transmissions = s.transmissions;
        let s_sent_at = s.sent_at;
        let once_sent_at = match (s.transmissions, s.sent_at) {
            (1, Some(t)) => Some(t),
            _ => None,
        };
        // A copy that repaired a loss, acknowledged at least a round trip after it went out,
        // tells when the peer last received something, like a message sent once (RFC 8985
        // §6.2's rule for retransmissions).
        let delivered_at = once_sent_at.or(match (s.rack_copy, s.sent_at) {
            (true, Some(t)) if min_rtt.is_none_or(|m| now - t >= m) => Some(t),
            _ => None,
        });
        self.unacked_bytes -= s.len as usize;
        // The peer is alive and the path drains: timers count from now and the doublings end;
        // a copy sent by a recovery lets two more go.
        self.ack_at = Some(now);
        self.backoff = 0;
        self.epoch = self.epoch.wrapping_add(1);
        if let (true, Some(r), Some(t)) = (s_transmissions > 1, self.recovery.as_mut(), s_sent_at) {
            if min_rtt.is_some_and(|m| now - t < m) {
                // Sooner than any round trip after the copy went out: this acknowledges the
                // first transmission, which was only late (RFC 4015's reasoning). Nothing was
                // lost; the recovery ends before it resends more.
                self.recovery = None;
            } else {
                r.budget = r.budget.saturating_add(2).min(MAX_BUDGET);
            }
        }
        if let Some(d) = self.delivered.as_mut() {
            d.reordering = reordering;
        }
        if once_sent_at.is_some() {
            // Fresh data got through: the path is clear.
            self.recovery = None;
        }
        if let Some(t) = delivered_at {
            let later = self
                .delivered
                .is_none_or(|d| t > d.sent_at || (t == d.sent_at && seq > d.seq));
            if later {
                self.delivered = Some(Delivered {
                    sent_at: t,
                    seq,
                    rtt: now - t,
                    reordering,
                });
            }
        }
        while self.len > 0 && self.slots[self.first].acked {
            self.first = (self.first + 1) % SLOTS;
            self.len -= 1;
            self.base_seq += 1;
        }
        AckOutcome::New(once_sent_at.map(|t| now - t))
    }

    /// When the oldest unacknowledged message was first queued or sent, for the give-up timer.
    pub(crate) fn oldest_unacked(&self) -> Option<&Sent> {
        (0..self.len)
            .map(|i| &self.slots[self.idx(i)])
            .find(|s| !s.acked)
    }
}

#[cfg(test)]
mod tests;
