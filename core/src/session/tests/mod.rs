//! Session tests: a seeded network simulator (`sim`), the delivery property over many seeds
//! (`property`), and scenarios (`scenarios`).

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::payload;
use crate::wire::{FrameRepr, MessageType};

mod bottleneck;
mod kms;
mod property;
mod scenarios;
mod sim;

/// A session small enough to keep many on a test thread's stack and heap.
pub(crate) type Small = Session<32768, 64, 8, 4096, 16>;

pub(crate) const TOKEN: &str = "token-AAAA/BBBB+CCCC==";

pub(crate) fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// One WebSocket message as the tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Msg {
    pub(crate) kind: TransmitKind,
    pub(crate) bytes: Vec<u8>,
}

impl Msg {
    pub(crate) fn frame(&self) -> FrameRepr<'_> {
        assert_eq!(self.kind, TransmitKind::Binary);
        FrameRepr::parse_bytes(&self.bytes).expect("session emitted a bad frame")
    }

    pub(crate) fn incoming(&self) -> Incoming<'_> {
        match self.kind {
            TransmitKind::Text => Incoming::Text(&self.bytes),
            TransmitKind::Binary => Incoming::Binary(&self.bytes),
        }
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        let f = self.frame();
        serde_json::from_slice(f.payload).expect("payload is not json")
    }
}

/// What a transmit is, read from its bytes: what `Transmit::class` must say.
pub(crate) fn class_of(kind: TransmitKind, bytes: &[u8]) -> TransmitClass {
    if kind == TransmitKind::Text {
        return TransmitClass::Open;
    }
    let f = FrameRepr::parse_bytes(bytes).expect("session emitted a bad frame");
    match f.header.message_type {
        MessageType::Acknowledge => TransmitClass::Acknowledge,
        MessageType::InputStreamData | MessageType::OutputStreamData => TransmitClass::Stream,
        _ => TransmitClass::Control,
    }
}

/// Every message the session wants to send now (each transmit's class checked against its
/// bytes).
pub(crate) fn drain<
    const A: usize,
    const B: usize,
    const C: usize,
    const D: usize,
    const E: usize,
>(
    s: &mut Session<A, B, C, D, E>,
    now: Instant,
) -> Vec<Msg> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    while let Some(t) = s.poll_transmit(now, &mut buf).expect("8 KiB is enough") {
        assert_eq!(t.class, class_of(t.kind, &buf[..t.len]), "transmit class");
        out.push(Msg {
            kind: t.kind,
            bytes: buf[..t.len].to_vec(),
        });
    }
    out
}

pub(crate) fn events<
    const A: usize,
    const B: usize,
    const C: usize,
    const D: usize,
    const E: usize,
>(
    s: &mut Session<A, B, C, D, E>,
) -> Vec<Event> {
    let mut v = Vec::new();
    while let Some(e) = s.poll_event() {
        v.push(e);
    }
    v
}

pub(crate) fn read_all<
    const A: usize,
    const B: usize,
    const C: usize,
    const D: usize,
    const E: usize,
>(
    s: &mut Session<A, B, C, D, E>,
) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 700];
    while let Some((stream, n)) = s.read(&mut buf) {
        match stream {
            Stream::Output => out.extend_from_slice(&buf[..n]),
            Stream::StdErr => err.extend_from_slice(&buf[..n]),
        }
    }
    (out, err)
}

/// Delivers every message to `to`, asserting none is rejected.
pub(crate) fn deliver<
    const A: usize,
    const B: usize,
    const C: usize,
    const D: usize,
    const E: usize,
>(
    to: &mut Session<A, B, C, D, E>,
    now: Instant,
    msgs: &[Msg],
) {
    for m in msgs {
        to.handle_input(now, m.incoming())
            .unwrap_or_else(|e| panic!("{e}: {:?}", m.kind));
    }
}

pub(crate) fn client(seed: u64) -> Box<Small> {
    Box::new(Small::new(Config::client(seed), at(0)))
}

pub(crate) fn agent(seed: u64, h: AgentHandshake<'_>) -> Box<Small> {
    Box::new(Small::new(Config::agent(seed, h), at(0)))
}

/// A client and an agent joined by a perfect, instant network, through the handshake.
pub(crate) fn established(h: AgentHandshake<'_>) -> (Box<Small>, Box<Small>) {
    let mut c = client(1);
    let mut a = agent(2, h);
    a.handle_connected(at(0), "").unwrap();
    c.handle_connected(at(0), TOKEN).unwrap();
    exchange(&mut c, &mut a, at(0));
    assert!(c.is_established() && a.is_established());
    (c, a)
}

/// Passes messages both ways until both are quiet.
pub(crate) fn exchange(c: &mut Small, a: &mut Small, now: Instant) {
    for _ in 0..1000 {
        let to_a = drain(c, now);
        let to_c = drain(a, now);
        if to_a.is_empty() && to_c.is_empty() {
            if a.opened_event_pending {
                // A driver polls events: the agent's HandshakeRequest waits for `Opened`.
                assert_eq!(a.poll_event(), Some(Event::Opened));
                continue;
            }
            return;
        }
        deliver(a, now, &to_a);
        deliver(c, now, &to_c);
    }
    panic!("no quiescence");
}
