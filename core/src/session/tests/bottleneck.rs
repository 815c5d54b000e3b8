//! Queueing without loss: a client and an agent with the default capacities and window, joined
//! by a bandwidth-limited link in each direction.
//!
//! This is what a WebSocket over TCP looks like to the engine: nothing is ever lost, but a
//! message taken from `poll_transmit` (and stamped "sent" then) waits behind everything queued
//! before it, in the adapter's writer queue, the kernel's send buffer and the slowest hop. Each
//! direction is one FIFO with a serialisation rate and a propagation delay, and unlimited room,
//! so the queueing delay grows with the bytes in flight: a full 256 KiB window at 1 MB/s waits
//! about 260 ms, more than the retransmission timeout the estimator settles on before the queue
//! builds up. The engine must neither flood the queue with retransmissions nor stall.
//!
//! Measured (`cargo test -p ssm-proto --lib bottleneck -- --nocapture`). Before (every message
//! resent once its own RTO passed, the RTO capped at 1 s, Karn's rule starving the estimator):
//! 1 MB/s both ways had not delivered 2 MiB after 120 virtual seconds (172 619 and 136 821
//! retransmissions, queues of 106 s); the slow uplink took 40 s for 1 MiB with 6 219 and
//! 52 276 retransmissions. After (timers restarted by acknowledgements, a probe and an
//! acknowledgement-clocked recovery instead of a round, the timeout never under the latest
//! round trip, RACK loss detection): 1 MB/s both ways in 2.98 s with 3 retransmissions each
//! way, goodput 704 kB/s of a best 708; the slow uplink in 5.49 s with 0 and 30.

use std::collections::{HashSet, VecDeque};
use std::println;
use std::vec::Vec;

use super::sim::bytes;
use super::*;

/// One direction: a FIFO drained at `bytes_per_sec`, then `delay_ms` of propagation.
struct Link {
    bytes_per_sec: u64,
    delay_ms: u64,
    /// When the link finishes serialising what it holds, in microseconds.
    free_at_us: u64,
    queue: VecDeque<(u64, Msg)>,
    wire_bytes: u64,
    /// Bytes of stream messages carried again (retransmissions).
    repeated_bytes: u64,
    seen: HashSet<i64>,
    max_queue_ms: u64,
}

impl Link {
    fn new(bytes_per_sec: u64, delay_ms: u64) -> Self {
        Link {
            bytes_per_sec,
            delay_ms,
            free_at_us: 0,
            queue: VecDeque::new(),
            wire_bytes: 0,
            repeated_bytes: 0,
            seen: HashSet::new(),
            max_queue_ms: 0,
        }
    }

    fn send(&mut self, now_ms: u64, m: Msg) {
        let now_us = now_ms * 1000;
        let start = self.free_at_us.max(now_us);
        self.max_queue_ms = self.max_queue_ms.max((start - now_us) / 1000);
        let len = m.bytes.len() as u64;
        self.free_at_us = start + (len * 1_000_000).div_ceil(self.bytes_per_sec);
        self.wire_bytes += len;
        if m.kind == TransmitKind::Binary {
            let h = m.frame().header;
            let stream = matches!(
                h.message_type,
                MessageType::InputStreamData | MessageType::OutputStreamData
            );
            if stream && !self.seen.insert(h.sequence_number) {
                self.repeated_bytes += len;
            }
        }
        let arrive = self.free_at_us.div_ceil(1000) + self.delay_ms;
        self.queue.push_back((arrive, m));
    }

    fn next_arrival(&self) -> Option<u64> {
        self.queue.front().map(|p| p.0)
    }

    fn pop_due(&mut self, now: u64) -> Option<Msg> {
        if self.next_arrival()? <= now {
            self.queue.pop_front().map(|p| p.1)
        } else {
            None
        }
    }
}

/// One endpoint and its application: writes `data` as fast as the session takes it, reads
/// everything delivered.
struct End {
    s: Box<Session>,
    data: Vec<u8>,
    sent: usize,
    blocked: bool,
    got: Vec<u8>,
}

impl End {
    fn new(config: Config<'static>, data: Vec<u8>) -> Self {
        End {
            s: Box::new(Session::new(config, at(0))),
            data,
            sent: 0,
            blocked: false,
            got: Vec::new(),
        }
    }

    /// Transmits, events and the application, once; returns whether anything moved.
    fn step(&mut self, now: u64, link: &mut Link) -> bool {
        let mut moved = false;
        for m in drain(&mut self.s, at(now)) {
            link.send(now, m);
            moved = true;
        }
        while let Some(e) = self.s.poll_event() {
            moved = true;
            match e {
                Event::Readable => self.got.extend(read_all(&mut self.s).0),
                Event::Writable => self.blocked = false,
                Event::Closed(r) => panic!("closed: {r:?}"),
                _ => {}
            }
        }
        if !self.blocked && self.sent < self.data.len() {
            let end = (self.sent + 64 * 1024).min(self.data.len());
            match self.s.write(at(now), &self.data[self.sent..end]) {
                Ok(n) => {
                    self.sent += n;
                    self.blocked = self.sent < end;
                    moved = true;
                }
                Err(WriteError::Blocked) => self.blocked = true,
                Err(e) => panic!("write: {e}"),
            }
        }
        moved
    }
}

struct Figures {
    finished: bool,
    ms: u64,
    /// Stream messages each side had to send at least once.
    messages: [u64; 2],
    retransmits: [u32; 2],
    /// Payload bytes delivered per second of virtual time, each way.
    goodput: [f64; 2],
    /// Bytes the links carried, each way.
    wire: [u64; 2],
    /// Of those, bytes of retransmitted stream messages.
    repeated: [u64; 2],
    max_queue_ms: [u64; 2],
    srtt_ms: [u64; 2],
}

/// Client and agent each send `len` bytes to the other over links of `up`/`down` bytes per
/// second (client → agent, agent → client) and `delay_ms` one way; stops when both have
/// received everything or at `limit_ms`.
fn run(len: usize, up: u64, down: u64, delay_ms: u64, limit_ms: u64) -> Figures {
    let mut c = End::new(Config::client(11), bytes(1, len));
    let mut a = End::new(Config::agent(12, AgentHandshake::SHELL), bytes(2, len));
    let (mut to_agent, mut to_client) = (Link::new(up, delay_ms), Link::new(down, delay_ms));
    a.s.handle_connected(at(0), "").unwrap();
    c.s.handle_connected(at(0), TOKEN).unwrap();
    let mut now = 0;
    let done = |c: &End, a: &End| c.got.len() == len && a.got.len() == len;
    loop {
        while c.step(now, &mut to_agent) | a.step(now, &mut to_client) {}
        if done(&c, &a) {
            break;
        }
        let next = [
            to_agent.next_arrival(),
            to_client.next_arrival(),
            c.s.poll_timeout().map(|t| t.total_millis()),
            a.s.poll_timeout().map(|t| t.total_millis()),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("something pending");
        if next > limit_ms {
            break;
        }
        now = now.max(next);
        // Like an adapter: after each message, send what it caused (acknowledgements first).
        while let Some(m) = to_agent.pop_due(now) {
            a.s.handle_input(at(now), m.incoming()).unwrap();
            a.step(now, &mut to_client);
        }
        while let Some(m) = to_client.pop_due(now) {
            c.s.handle_input(at(now), m.incoming()).unwrap();
            c.step(now, &mut to_agent);
        }
        c.s.handle_timeout(at(now));
        a.s.handle_timeout(at(now));
    }
    assert!(c.got == a.data[..c.got.len()] && a.got == c.data[..a.got.len()]);
    let secs = now.max(1) as f64 / 1000.0;
    let chunk = Config::client(0).chunk_size as u64;
    Figures {
        finished: done(&c, &a),
        ms: now,
        messages: [
            (c.sent as u64).div_ceil(chunk),
            (a.sent as u64).div_ceil(chunk),
        ],
        retransmits: [c.s.stats().retransmits, a.s.stats().retransmits],
        goodput: [a.got.len() as f64 / secs, c.got.len() as f64 / secs],
        wire: [to_agent.wire_bytes, to_client.wire_bytes],
        repeated: [to_agent.repeated_bytes, to_client.repeated_bytes],
        max_queue_ms: [to_agent.max_queue_ms, to_client.max_queue_ms],
        srtt_ms: [c.s.srtt().total_millis(), a.s.srtt().total_millis()],
    }
}

fn report(name: &str, f: &Figures) {
    println!(
        "{name}: finished {} in {} ms; stream messages {:?}, retransmits {:?}; goodput {:.0}/{:.0} B/s; \
         wire bytes {:?} ({:?} repeated); longest queue {:?} ms; srtt {:?} ms",
        f.finished,
        f.ms,
        f.messages,
        f.retransmits,
        f.goodput[0],
        f.goodput[1],
        f.wire,
        f.repeated,
        f.max_queue_ms,
        f.srtt_ms,
    );
}

/// Both directions saturated through a 1 MB/s bottleneck, 5 ms each way, the default 256 KiB
/// window: a quarter of a second of queue behind every new message.
#[test]
fn saturated_bottleneck_no_retransmission_storm() {
    const LEN: usize = 2 << 20;
    const RATE: u64 = 1_000_000;
    let f = run(LEN, RATE, RATE, 5, 120_000);
    report("1 MB/s both ways", &f);
    assert!(f.finished, "2 MiB each way did not arrive in 120 s");
    assert!(
        f.max_queue_ms >= [200, 200],
        "the window must fill the queue"
    );
    for side in 0..2 {
        let share = f64::from(f.retransmits[side]) / f.messages[side] as f64;
        assert!(share < 0.05, "side {side}: {share:.3} of messages resent");
        // Headers and the other direction's acknowledgements share the link: the best possible
        // goodput is the bottleneck rate times the payload share of the bytes it carried,
        // retransmissions left out.
        let best = RATE as f64 * LEN as f64 / (f.wire[side] - f.repeated[side]) as f64;
        assert!(
            f.goodput[side] > 0.9 * best,
            "side {side}: goodput {:.0} B/s, best {best:.0}",
            f.goodput[side]
        );
    }
}

/// A slow uplink (256 KiB/s from the client, the adapter's queue behind it) and a fast
/// downlink: the client's queue reaches a full second, the estimator's ceiling.
#[test]
fn slow_uplink_no_retransmission_storm() {
    const LEN: usize = 1 << 20;
    let f = run(LEN, 256 * 1024, 10_000_000, 20, 120_000);
    report("256 KiB/s up, 10 MB/s down", &f);
    assert!(f.finished, "1 MiB each way did not arrive in 120 s");
    assert!(
        f.max_queue_ms[0] >= 900,
        "the uplink queue must reach the 1 s RTO ceiling"
    );
    for side in 0..2 {
        let share = f64::from(f.retransmits[side]) / f.messages[side] as f64;
        assert!(share < 0.05, "side {side}: {share:.3} of messages resent");
    }
    let best = 256.0 * 1024.0 * LEN as f64 / (f.wire[0] - f.repeated[0]) as f64;
    assert!(
        f.goodput[0] > 0.9 * best,
        "uplink goodput {:.0} B/s, best {best:.0}",
        f.goodput[0]
    );
}
