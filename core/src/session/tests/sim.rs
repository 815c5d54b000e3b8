//! A seeded simulator: a client and an agent session joined by a virtual network on a virtual
//! clock, with latency, loss, duplication, reordering and connection cuts.
//!
//! A cut drops everything in flight and calls `handle_transport_closed` on both sides; after a
//! pause both get `handle_connected` again (the client with a new token), as adapters do after
//! ResumeSession. The OpenDataChannelInput text is delayed and reordered like any message but
//! never lost or duplicated: on a live WebSocket a lost message means a dead connection, which
//! is what cuts model.

use std::format;
use std::string::String;
use std::vec::Vec;

use super::*;
use crate::session::rng::SplitMix64;

/// The data key and ciphertext blob the simulated KMS hands out (`kms` feature).
#[cfg(feature = "kms")]
const SIM_DATA_KEY: [u8; 64] = {
    let mut k = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        k[i] = (i as u8).wrapping_mul(29) ^ 0x3c;
        i += 1;
    }
    k
};
#[cfg(feature = "kms")]
const SIM_BLOB: &[u8] = b"simulated KMS ciphertext blob";

/// Network behaviour, probabilities in per mille.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NetConfig {
    pub(crate) latency: (u64, u64),
    pub(crate) loss: u64,
    pub(crate) dup: u64,
    pub(crate) reorder: u64,
    /// Extra delay of a reordered message.
    pub(crate) reorder_delay: (u64, u64),
    /// Time between cuts while connected, `None` for no cuts.
    pub(crate) cut_every: Option<(u64, u64)>,
    /// Time the transport stays down after a cut.
    pub(crate) down_for: (u64, u64),
}

impl NetConfig {
    pub(crate) const PERFECT: NetConfig = NetConfig {
        latency: (10, 10),
        loss: 0,
        dup: 0,
        reorder: 0,
        reorder_delay: (0, 0),
        cut_every: None,
        down_for: (0, 0),
    };
}

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The agent, having received all input and written all output, calls
    /// `close_channel("bye")`: every byte arrives both ways; the client ends `ChannelClosed`, the
    /// agent `Local`.
    AgentCloses,
    /// The client, having written all input and received all output, calls `close`: it ends
    /// `Local` once its input is acknowledged and drops the connection. The agent's driver then
    /// closes the agent (the service would tell it the client left): `Local` if all its output
    /// was acknowledged by then, `GaveUp` after the give-up time if not.
    ClientCloses,
    /// The client, established, having written all input and received at least this many
    /// output bytes, calls `terminate`; the agent's driver answers the TerminateSession flag
    /// with `close_channel`. All input arrives, output only in part; the client ends
    /// `Terminated`, the agent `Local`.
    ClientTerminates(usize),
}

/// What each side writes.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    pub(crate) client_input: Vec<u8>,
    /// Agent pieces: stream and bytes, written in order.
    pub(crate) agent_output: Vec<(Stream, Vec<u8>)>,
    /// Largest slice offered to `write` at once.
    pub(crate) write_piece: usize,
    /// Who ends the session, and how.
    pub(crate) ending: Ending,
}

struct Packet {
    at: u64,
    order: u64,
    to_agent: bool,
    msg: Msg,
}

#[derive(Default)]
struct Side {
    events: Vec<Event>,
    got_out: Vec<u8>,
    got_err: Vec<u8>,
    blocked: bool,
    closed: Option<CloseReason>,
}

pub(crate) struct Sim<
    'w,
    const A: usize,
    const B: usize,
    const C: usize,
    const D: usize,
    const E: usize,
> {
    pub(crate) now: u64,
    rng: SplitMix64,
    net: NetConfig,
    pub(crate) client: Box<Session<A, B, C, D, E>>,
    pub(crate) agent: Box<Session<A, B, C, D, E>>,
    packets: Vec<Packet>,
    order: u64,
    up: bool,
    next_cut: Option<u64>,
    reconnect_at: Option<u64>,
    pub(crate) cuts: u32,
    work: &'w Workload,
    client_sent: usize,
    agent_piece: usize,
    agent_piece_sent: usize,
    agent_close_requested: bool,
    client_close_requested: bool,
    /// The agent's unacknowledged bytes when the closed client dropped the connection.
    agent_unacked_at_client_exit: Option<usize>,
    /// When the agent sees the closed client's connection end.
    agent_exit_at: Option<u64>,
    c: Side,
    a: Side,
    /// Every frame either side emitted, for wire-habit checks.
    pub(crate) log: Vec<(bool, Msg)>,
    pub(crate) keep_log: bool,
    /// Black holes: everything sent towards the client (agent) vanishes, text included.
    pub(crate) mute_to_client: bool,
    pub(crate) mute_to_agent: bool,
}

/// The simulator with the tests' usual session size.
pub(crate) type SmallSim<'w> = Sim<'w, 32768, 64, 8, 4096, 16>;

/// The end state of a run.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) finished: bool,
    pub(crate) now: u64,
    pub(crate) client_reason: Option<CloseReason>,
    pub(crate) agent_reason: Option<CloseReason>,
    pub(crate) agent_got: Vec<u8>,
    pub(crate) client_got_out: Vec<u8>,
    pub(crate) client_got_err: Vec<u8>,
    pub(crate) client_events: Vec<Event>,
    pub(crate) agent_events: Vec<Event>,
    pub(crate) cuts: u32,
    pub(crate) client_stats: Stats,
    pub(crate) agent_stats: Stats,
    pub(crate) close_message: String,
    pub(crate) agent_unacked_at_client_exit: Option<usize>,
}

impl<'w, const A: usize, const B: usize, const C: usize, const D: usize, const E: usize>
    Sim<'w, A, B, C, D, E>
{
    pub(crate) fn new(
        seed: u64,
        net: NetConfig,
        config_tweak: impl Fn(&mut Config<'_>),
        work: &'w Workload,
    ) -> Self {
        let mut cc = Config::client(seed ^ 0xc1);
        config_tweak(&mut cc);
        let mut ac = Config::agent(seed ^ 0xa9, AgentHandshake::SHELL);
        config_tweak(&mut ac);
        let mut s = Sim {
            now: 0,
            rng: SplitMix64::new(seed),
            net,
            client: Box::new(Session::new(cc, at(0))),
            agent: Box::new(Session::new(ac, at(0))),
            packets: Vec::new(),
            order: 0,
            up: false,
            next_cut: None,
            reconnect_at: Some(0),
            cuts: 0,
            work,
            client_sent: 0,
            agent_piece: 0,
            agent_piece_sent: 0,
            agent_close_requested: false,
            client_close_requested: false,
            agent_unacked_at_client_exit: None,
            agent_exit_at: None,
            c: Side::default(),
            a: Side::default(),
            log: Vec::new(),
            keep_log: false,
            mute_to_client: false,
            mute_to_agent: false,
        };
        s.client.set_unix_time(at(0), 1_760_000_000_000);
        s.agent.set_unix_time(at(0), 1_760_000_000_000);
        s
    }

    fn rand(&mut self, range: (u64, u64)) -> u64 {
        if range.1 <= range.0 {
            return range.0;
        }
        range.0 + self.rng.next_u64() % (range.1 - range.0 + 1)
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.rng.next_u64() % 1000 < per_mille
    }

    fn send(&mut self, to_agent: bool, msg: Msg) {
        if self.keep_log {
            self.log.push((to_agent, msg.clone()));
        }
        if (to_agent && self.mute_to_agent) || (!to_agent && self.mute_to_client) {
            return;
        }
        let text = msg.kind == TransmitKind::Text;
        if !text && self.chance(self.net.loss) {
            return;
        }
        let copies = if !text && self.chance(self.net.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self.rand(self.net.latency);
            if self.chance(self.net.reorder) {
                delay += self.rand(self.net.reorder_delay);
            }
            self.order += 1;
            self.packets.push(Packet {
                at: self.now + delay,
                order: self.order,
                to_agent,
                msg: msg.clone(),
            });
        }
    }

    /// Runs transmits, events and the applications until nothing moves.
    fn pump(&mut self) {
        let now = at(self.now);
        loop {
            let mut moved = false;
            for m in drain(&mut self.client, now) {
                moved = true;
                self.send(true, m);
            }
            for m in drain(&mut self.agent, now) {
                moved = true;
                self.send(false, m);
            }
            moved |= self.client_events();
            moved |= self.agent_events();
            moved |= self.client_app();
            moved |= self.agent_app();
            if !moved {
                break;
            }
        }
    }

    fn client_events(&mut self) -> bool {
        let mut moved = false;
        while let Some(e) = self.client.poll_event() {
            moved = true;
            self.c.events.push(e);
            match e {
                Event::Readable => {
                    let (o, r) = read_all(&mut self.client);
                    self.c.got_out.extend(o);
                    self.c.got_err.extend(r);
                }
                Event::Writable => self.c.blocked = false,
                #[cfg(feature = "kms")]
                Event::DataKeyNeeded => {
                    // KMS GenerateDataKey, answered at once.
                    let nonce = self.rng.next_u64().to_le_bytes();
                    let mut start = [0u8; 12];
                    start[..8].copy_from_slice(&nonce);
                    self.client
                        .set_data_key(at(self.now), &SIM_DATA_KEY, SIM_BLOB, start)
                        .unwrap();
                }
                Event::Closed(r) => {
                    assert!(self.c.closed.is_none(), "two Closed events");
                    self.c.closed = Some(r);
                    // The client's adapter drops the connection.
                    self.drop_transport(false);
                }
                _ => {}
            }
        }
        moved
    }

    fn agent_events(&mut self) -> bool {
        let mut moved = false;
        while let Some(e) = self.agent.poll_event() {
            moved = true;
            self.a.events.push(e);
            match e {
                Event::Opened => {
                    assert!(self.agent.peer_token().unwrap().starts_with(TOKEN));
                }
                Event::Readable => {
                    let (o, r) = read_all(&mut self.agent);
                    assert!(r.is_empty());
                    self.a.got_out.extend(o);
                }
                Event::Writable => self.a.blocked = false,
                #[cfg(feature = "kms")]
                Event::DataKeyToDecrypt => {
                    // KMS Decrypt of the blob the client sent.
                    assert_eq!(self.agent.data_key_ciphertext(), Some(SIM_BLOB));
                    self.agent
                        .set_decrypted_data_key(at(self.now), &SIM_DATA_KEY)
                        .unwrap();
                }
                Event::Flag(Flag::TerminateSession) => {
                    assert!(
                        matches!(self.work.ending, Ending::ClientTerminates(_)),
                        "a terminate flag nobody sent"
                    );
                    self.agent_close_requested = true;
                    self.agent.close_channel(at(self.now), "terminated");
                }
                Event::Closed(r) => {
                    assert!(self.a.closed.is_none(), "two Closed events");
                    self.a.closed = Some(r);
                }
                _ => {}
            }
        }
        moved
    }

    fn client_app(&mut self) -> bool {
        let input = &self.work.client_input;
        if self.c.closed.is_some() {
            return false;
        }
        if self.client_sent >= input.len() {
            return self.client_ending();
        }
        if self.c.blocked {
            return false;
        }
        let end = (self.client_sent + self.work.write_piece).min(input.len());
        match self
            .client
            .write(at(self.now), &input[self.client_sent..end])
        {
            Ok(n) => {
                assert!(n > 0);
                self.client_sent += n;
                if self.client_sent < end {
                    self.c.blocked = true;
                }
                true
            }
            Err(WriteError::Blocked) => {
                self.c.blocked = true;
                false
            }
            Err(e) => panic!("client write: {e}"),
        }
    }

    /// All input written: the client ends the session if the workload says so.
    fn client_ending(&mut self) -> bool {
        if self.client_close_requested {
            return false;
        }
        let got = self.c.got_out.len() + self.c.got_err.len();
        let total: usize = self.work.agent_output.iter().map(|p| p.1.len()).sum();
        let now = at(self.now);
        match self.work.ending {
            Ending::AgentCloses => return false,
            Ending::ClientCloses if got == total => self.client.close(now),
            Ending::ClientTerminates(after)
                if got >= after.min(total) && self.client.is_established() =>
            {
                self.client.terminate(now)
            }
            _ => return false,
        }
        self.client_close_requested = true;
        true
    }

    fn agent_app(&mut self) -> bool {
        if self.a.blocked || self.a.closed.is_some() {
            return false;
        }
        let now = at(self.now);
        if self.agent_piece >= self.work.agent_output.len() {
            // Everything written; close once the client's input has all arrived.
            if self.work.ending == Ending::AgentCloses
                && !self.agent_close_requested
                && self.a.got_out.len() == self.work.client_input.len()
            {
                self.agent_close_requested = true;
                self.agent.close_channel(now, "bye");
                return true;
            }
            return false;
        }
        let (stream, data) = &self.work.agent_output[self.agent_piece];
        let end = (self.agent_piece_sent + self.work.write_piece).min(data.len());
        let slice = &data[self.agent_piece_sent..end];
        let r = match stream {
            Stream::Output => self.agent.write(now, slice),
            Stream::StdErr => self.agent.write_stderr(now, slice),
        };
        match r {
            Ok(n) => {
                self.agent_piece_sent += n;
                if self.agent_piece_sent == data.len() {
                    self.agent_piece += 1;
                    self.agent_piece_sent = 0;
                } else if n < slice.len() {
                    self.a.blocked = true;
                }
                true
            }
            Err(WriteError::Blocked) => {
                self.a.blocked = true;
                false
            }
            Err(e) => panic!("agent write: {e}"),
        }
    }

    fn drop_transport(&mut self, reconnect: bool) {
        if !self.up {
            return;
        }
        self.up = false;
        let now = at(self.now);
        self.client.handle_transport_closed(now);
        self.next_cut = None;
        if self.c.closed.is_some() {
            // The closed client shuts its WebSocket down in order: what it sent still arrives,
            // then the agent sees the connection end.
            self.packets.retain(|p| p.to_agent);
            let last = self.packets.iter().map(|p| p.at).max();
            self.agent_exit_at = Some(last.unwrap_or(self.now));
        } else {
            self.packets.clear();
            self.agent.handle_transport_closed(now);
        }
        self.reconnect_at = if reconnect && self.c.closed.is_none() {
            Some(self.now + self.rand(self.net.down_for))
        } else {
            None
        };
    }

    /// The closed client's connection has ended on the agent's side too.
    fn client_gone(&mut self) {
        self.agent_exit_at = None;
        let now = at(self.now);
        self.agent.handle_transport_closed(now);
        if self.a.closed.is_none() {
            // The client left for good; the service tells the agent's driver.
            self.agent_unacked_at_client_exit = Some(self.agent.unacked_bytes());
            if !self.agent_close_requested {
                self.agent_close_requested = true;
                self.agent.close(now);
            }
        }
    }

    fn connect(&mut self) {
        self.reconnect_at = None;
        self.up = true;
        let now = at(self.now);
        self.agent.handle_connected(now, "").unwrap();
        let token = format!("{TOKEN}#{}", self.cuts);
        self.client.handle_connected(now, &token).unwrap();
        self.next_cut = match self.net.cut_every {
            Some(r) => Some(self.now + self.rand(r)),
            None => None,
        };
    }

    fn finished(&self) -> bool {
        self.c.closed.is_some() && self.a.closed.is_some()
    }

    /// Runs until both sides closed or virtual time passes `limit_ms`.
    pub(crate) fn run(mut self, limit_ms: u64) -> Outcome {
        loop {
            self.pump();
            if self.finished() {
                break;
            }
            let mut next: Option<u64> = None;
            let mut consider = |t: Option<u64>| {
                if let Some(t) = t {
                    next = Some(next.map_or(t, |n: u64| n.min(t)));
                }
            };
            consider(self.packets.iter().map(|p| p.at).min());
            consider(self.client.poll_timeout().map(|t| t.total_millis()));
            consider(self.agent.poll_timeout().map(|t| t.total_millis()));
            consider(self.next_cut);
            consider(self.reconnect_at);
            consider(self.agent_exit_at);
            let Some(next) = next else { break };
            if next > limit_ms {
                break;
            }
            self.now = self.now.max(next);
            let now = at(self.now);
            // Deliver what is due, in arrival order.
            let mut due: Vec<Packet> = Vec::new();
            let mut i = 0;
            while i < self.packets.len() {
                if self.packets[i].at <= self.now {
                    due.push(self.packets.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            due.sort_by_key(|p| (p.at, p.order));
            for p in due {
                let to = if p.to_agent {
                    &mut self.agent
                } else {
                    &mut self.client
                };
                let r = to.handle_input(now, p.msg.incoming());
                if let Err(e) = r {
                    // Only benign drops are expected: a closed client, or frames that reach
                    // the agent before the reopened channel's OpenDataChannelInput.
                    assert!(
                        matches!(e, Error::Closed | Error::Unexpected),
                        "unexpected input error {e:?}"
                    );
                }
                // Like an adapter: transmit, read and react after a message, or sometimes
                // after a batch of them (then acknowledgements pile up in the queue).
                if self.chance(500) {
                    self.pump();
                }
            }
            self.client.handle_timeout(now);
            self.agent.handle_timeout(now);
            if self.next_cut.is_some_and(|t| t <= self.now) {
                self.cuts += 1;
                self.drop_transport(true);
            }
            if self.reconnect_at.is_some_and(|t| t <= self.now) {
                self.connect();
            }
            if self.agent_exit_at.is_some_and(|t| t <= self.now) {
                self.client_gone();
            }
        }
        Outcome {
            finished: self.finished(),
            now: self.now,
            client_reason: self.c.closed,
            agent_reason: self.a.closed,
            agent_got: core::mem::take(&mut self.a.got_out),
            client_got_out: core::mem::take(&mut self.c.got_out),
            client_got_err: core::mem::take(&mut self.c.got_err),
            client_events: core::mem::take(&mut self.c.events),
            agent_events: core::mem::take(&mut self.a.events),
            cuts: self.cuts,
            client_stats: self.client.stats(),
            agent_stats: self.agent.stats(),
            close_message: self.client.close_message().into(),
            agent_unacked_at_client_exit: self.agent_unacked_at_client_exit,
        }
    }
}

/// Deterministic pseudo-random bytes.
pub(crate) fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut r = SplitMix64::new(seed);
    (0..n).map(|_| r.next_u64() as u8).collect()
}

/// The agent's expected streams for a workload.
pub(crate) fn expected_streams(w: &Workload) -> (Vec<u8>, Vec<u8>) {
    let (mut o, mut e) = (Vec::new(), Vec::new());
    for (s, d) in &w.agent_output {
        match s {
            Stream::Output => o.extend_from_slice(d),
            Stream::StdErr => e.extend_from_slice(d),
        }
    }
    (o, e)
}

/// Asserts the delivery property on an outcome.
pub(crate) fn check(w: &Workload, o: &Outcome) {
    assert!(
        o.finished,
        "did not finish by {} ms: got {}/{} {}/{} {}, reasons {:?} {:?}, cuts {}, stats {:?} {:?}, last events {:?} {:?}",
        o.now,
        o.agent_got.len(),
        w.client_input.len(),
        o.client_got_out.len(),
        o.client_got_err.len(),
        w.agent_output.iter().map(|p| p.1.len()).sum::<usize>(),
        o.client_reason,
        o.agent_reason,
        o.cuts,
        o.client_stats,
        o.agent_stats,
        o.client_events.iter().rev().take(4).collect::<Vec<_>>(),
        o.agent_events.iter().rev().take(4).collect::<Vec<_>>(),
    );
    let (out, err) = expected_streams(w);
    assert!(o.agent_got == w.client_input, "client → agent bytes differ");
    let (client_reason, agent_reason) = match w.ending {
        Ending::AgentCloses => {
            assert_eq!(o.close_message, "bye");
            (CloseReason::ChannelClosed, CloseReason::Local)
        }
        Ending::ClientCloses => {
            let agent = match o.agent_unacked_at_client_exit {
                Some(0) => CloseReason::Local,
                Some(_) => CloseReason::GaveUp,
                None => panic!("the agent closed before the client left"),
            };
            (CloseReason::Local, agent)
        }
        Ending::ClientTerminates(_) => (CloseReason::Terminated, CloseReason::Local),
    };
    if let Ending::ClientTerminates(_) = w.ending {
        // Output after the terminate request may be cut short, never corrupted.
        assert!(out.starts_with(&o.client_got_out), "stdout is not a prefix");
        assert!(err.starts_with(&o.client_got_err), "stderr is not a prefix");
        assert!(o
            .agent_events
            .contains(&Event::Flag(Flag::TerminateSession)));
    } else {
        assert!(o.client_got_out == out, "agent → client stdout differs");
        assert!(o.client_got_err == err, "agent → client stderr differs");
    }
    assert_eq!(o.client_reason, Some(client_reason));
    assert_eq!(o.agent_reason, Some(agent_reason));
    assert_eq!(o.client_events.last(), Some(&Event::Closed(client_reason)));
    assert_eq!(o.agent_events.last(), Some(&Event::Closed(agent_reason)));
}
