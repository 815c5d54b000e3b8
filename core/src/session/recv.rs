//! The incoming side: messages held until they can be delivered in order, and delivered stream
//! bytes waiting for `read`.

use super::Stream;
use crate::uuid::Uuid;
use crate::wire::PayloadType;

/// Largest payload a reorder slot holds: the agent reads and sends at most 1024 bytes per message
/// (PROTOCOL.md §4). A bigger message that arrives early is dropped unacknowledged and comes again.
pub const REORDER_SLOT_LEN: usize = 1024;

/// A message received ahead of its turn (or in turn but not yet deliverable).
#[derive(Clone, Copy)]
pub(crate) struct Held {
    pub(crate) seq: i64,
    pub(crate) id: Uuid,
    pub(crate) payload_type: PayloadType,
    /// Its acknowledgement is owed: the transmit queue was full when it came. It is not
    /// delivered before that acknowledgement is queued (its id would be lost).
    pub(crate) ack_owed: bool,
    len: u16,
    occupied: bool,
    data: [u8; REORDER_SLOT_LEN],
}

impl Held {
    const EMPTY: Held = Held {
        seq: 0,
        id: Uuid::NIL,
        payload_type: PayloadType::Null,
        ack_owed: false,
        len: 0,
        occupied: false,
        data: [0; REORDER_SLOT_LEN],
    };

    pub(crate) fn payload(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }
}

/// Out-of-order storage, one slot per sequence number in `[expected, expected + N)`.
pub(crate) struct Reorder<const N: usize> {
    slots: [Held; N],
    /// Held messages whose acknowledgement is owed.
    owed: usize,
}

/// Where an incoming sequence number stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// Already delivered or already held: acknowledge again, deliver never.
    Duplicate,
    /// The next one to deliver.
    InOrder,
    /// Ahead, within the window: hold it.
    Ahead,
    /// Too far ahead to hold: drop without acknowledging.
    TooFar,
}

impl<const N: usize> Reorder<N> {
    pub(crate) const fn new() -> Self {
        Reorder {
            slots: [Held::EMPTY; N],
            owed: 0,
        }
    }

    fn slot(seq: i64) -> usize {
        (seq.rem_euclid(N.max(1) as i64)) as usize
    }

    /// Classifies `seq` against `expected`.
    pub(crate) fn position(&self, expected: i64, seq: i64) -> Position {
        if seq < expected {
            return Position::Duplicate;
        }
        let ahead = seq - expected;
        if N == 0 || ahead >= N as i64 {
            return if ahead == 0 {
                Position::InOrder
            } else {
                Position::TooFar
            };
        }
        let h = &self.slots[Self::slot(seq)];
        if h.occupied && h.seq == seq {
            Position::Duplicate
        } else if ahead == 0 {
            Position::InOrder
        } else {
            Position::Ahead
        }
    }

    /// Holds a message (`ack_owed`: its acknowledgement could not be queued yet); `false`
    /// (nothing stored) if its payload exceeds a slot.
    pub(crate) fn hold(
        &mut self,
        seq: i64,
        id: Uuid,
        payload_type: PayloadType,
        payload: &[u8],
        ack_owed: bool,
    ) -> bool {
        if N == 0 || payload.len() > REORDER_SLOT_LEN {
            return false;
        }
        let h = &mut self.slots[Self::slot(seq)];
        if h.occupied && h.ack_owed {
            self.owed -= 1;
        }
        h.seq = seq;
        h.id = id;
        h.payload_type = payload_type;
        h.ack_owed = ack_owed;
        self.owed += usize::from(ack_owed);
        h.len = payload.len() as u16;
        h.occupied = true;
        h.data[..payload.len()].copy_from_slice(payload);
        true
    }

    /// The held message with sequence number `seq`, if any.
    pub(crate) fn get(&self, seq: i64) -> Option<&Held> {
        if N == 0 {
            return None;
        }
        let h = &self.slots[Self::slot(seq)];
        (h.occupied && h.seq == seq).then_some(h)
    }

    /// Frees the slot of `seq`.
    pub(crate) fn release(&mut self, seq: i64) {
        if N > 0 {
            let h = &mut self.slots[Self::slot(seq)];
            if h.seq == seq {
                if h.occupied && h.ack_owed {
                    self.owed -= 1;
                }
                h.occupied = false;
                h.ack_owed = false;
            }
        }
    }

    /// The next held message whose acknowledgement is owed (lowest slot first), as
    /// `(id, seq)`, if any.
    pub(crate) fn next_owed(&self) -> Option<(Uuid, i64)> {
        if self.owed == 0 {
            return None;
        }
        self.slots
            .iter()
            .find(|h| h.occupied && h.ack_owed)
            .map(|h| (h.id, h.seq))
    }

    /// The acknowledgement of held `seq` is queued now.
    pub(crate) fn ack_queued(&mut self, seq: i64) {
        if N > 0 {
            let h = &mut self.slots[Self::slot(seq)];
            if h.occupied && h.seq == seq && h.ack_owed {
                h.ack_owed = false;
                self.owed -= 1;
            }
        }
    }
}

/// Up to this many alternations between stdout and stderr wait in the read buffer at once.
const SEGMENTS: usize = 8;

/// Delivered stream bytes, in order, tagged by stream.
pub(crate) struct ReadBuffer<const N: usize> {
    bytes: [u8; N],
    start: usize,
    len: usize,
    /// Runs of one stream, oldest first: the stream and its byte count.
    segments: heapless::Deque<(Stream, usize), SEGMENTS>,
}

impl<const N: usize> ReadBuffer<N> {
    pub(crate) const fn new() -> Self {
        ReadBuffer {
            bytes: [0; N],
            start: 0,
            len: 0,
            segments: heapless::Deque::new(),
        }
    }

    /// Whether every delivered byte has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `n` bytes of `stream` fit now.
    pub(crate) fn fits(&self, stream: Stream, n: usize) -> bool {
        let merges = matches!(self.segments.back(), Some((s, _)) if *s == stream);
        N - self.len >= n && (merges || !self.segments.is_full() || n == 0)
    }

    /// Appends all of `data` or nothing.
    pub(crate) fn push(&mut self, stream: Stream, data: &[u8]) -> bool {
        if !self.fits(stream, data.len()) {
            return false;
        }
        if data.is_empty() {
            return true;
        }
        match self.segments.back_mut() {
            Some((s, n)) if *s == stream => *n += data.len(),
            _ => {
                // `fits` checked there is a free segment.
                let _ = self.segments.push_back((stream, data.len()));
            }
        }
        let w = (self.start + self.len) % N.max(1);
        let first = data.len().min(N - w);
        self.bytes[w..w + first].copy_from_slice(&data[..first]);
        self.bytes[..data.len() - first].copy_from_slice(&data[first..]);
        self.len += data.len();
        true
    }

    /// Copies bytes of the oldest run into `out`; never mixes streams in one call.
    pub(crate) fn read(&mut self, out: &mut [u8]) -> Option<(Stream, usize)> {
        let (stream, run) = *self.segments.front()?;
        let n = run.min(out.len());
        let first = n.min(N - self.start);
        out[..first].copy_from_slice(&self.bytes[self.start..self.start + first]);
        out[first..n].copy_from_slice(&self.bytes[..n - first]);
        self.start = (self.start + n) % N.max(1);
        self.len -= n;
        if n == run {
            self.segments.pop_front();
        } else if let Some((_, r)) = self.segments.front_mut() {
            *r -= n;
        }
        if self.len == 0 {
            self.start = 0;
        }
        Some((stream, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reorder_positions() {
        let mut r = Reorder::<4>::new();
        assert_eq!(r.position(5, 4), Position::Duplicate);
        assert_eq!(r.position(5, 5), Position::InOrder);
        assert_eq!(r.position(5, 8), Position::Ahead);
        assert_eq!(r.position(5, 9), Position::TooFar);
        assert!(r.hold(7, Uuid::NIL, PayloadType::Output, b"seven", false));
        assert_eq!(r.position(5, 7), Position::Duplicate);
        assert_eq!(r.get(7).unwrap().payload(), b"seven");
        assert!(r.get(11).is_none());
        r.release(7);
        assert!(r.get(7).is_none());
        assert!(!r.hold(
            6,
            Uuid::NIL,
            PayloadType::Output,
            &[0; REORDER_SLOT_LEN + 1],
            false
        ));
    }

    #[test]
    fn read_buffer_wraps_and_keeps_streams_apart() {
        let mut b = ReadBuffer::<8>::new();
        assert!(b.push(Stream::Output, b"abcde"));
        let mut out = [0u8; 3];
        assert_eq!(b.read(&mut out), Some((Stream::Output, 3)));
        assert_eq!(&out, b"abc");
        assert!(b.push(Stream::StdErr, b"XYZ"));
        assert!(b.push(Stream::StdErr, b"W"));
        // Two bytes free: three do not fit, nothing is written.
        assert!(!b.push(Stream::Output, b"123"));
        assert!(b.push(Stream::Output, b"1"));
        let mut out = [0u8; 8];
        assert_eq!(b.read(&mut out), Some((Stream::Output, 2)));
        assert_eq!(&out[..2], b"de");
        assert_eq!(b.read(&mut out), Some((Stream::StdErr, 4)));
        assert_eq!(&out[..4], b"XYZW");
        assert_eq!(b.read(&mut out), Some((Stream::Output, 1)));
        assert_eq!(b.read(&mut out), None);
        assert!(b.is_empty());
    }
}
