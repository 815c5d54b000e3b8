//! The session engine, both roles, driven by an arbitrary sequence of operations: writes, time
//! advances, deliveries with loss, duplication and reordering, transport cuts and reconnects,
//! resizes, flags, closes, and hostile messages. Invariants: no panic; the bytes each side reads
//! are exactly a prefix of the bytes the other side's `write` accepted, in order, once (checked
//! for every direction no hostile message was accepted on); after any call, `poll_timeout` is
//! never earlier than `now`. With bit 7 of the first byte set, both roles run with KMS
//! encryption (a fake KMS answers the data key events at once), and the same invariants hold
//! through sealing and opening.
#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use ssm_proto::payload::Flag;
use ssm_proto::session::{
    AgentHandshake, Config, Encryption, Event, Incoming, Session, Stream, TransmitKind,
};
use ssm_proto::time::{Duration, Instant};

type S = Session<16384, 32, 8, 4096, 16>;

/// What the fake KMS hands out.
const DATA_KEY: [u8; 64] = [0x2d; 64];
const BLOB: &[u8] = b"fuzz KMS ciphertext blob";

/// Bytes written on one stream, and how many the reader has seen.
#[derive(Default)]
struct Flow {
    written: Vec<u8>,
    read: usize,
    /// A hostile message was accepted by the reader: delivery is no longer checked.
    tainted: bool,
    pattern: u8,
}

impl Flow {
    fn next_bytes(&self, n: usize) -> Vec<u8> {
        (self.written.len()..self.written.len() + n)
            .map(|i| (i as u8).wrapping_mul(131).wrapping_add(self.pattern))
            .collect()
    }

    fn accept(&mut self, data: &[u8], n: usize) {
        self.written.extend_from_slice(&data[..n]);
    }

    fn deliver(&mut self, got: &[u8], what: &str) {
        if !self.tainted {
            let end = self.read + got.len();
            assert!(
                end <= self.written.len(),
                "{what}: more bytes read than written"
            );
            assert_eq!(
                &self.written[self.read..end],
                got,
                "{what}: bytes differ from those written"
            );
        }
        self.read += got.len();
    }
}

struct World {
    now: Instant,
    client: Box<S>,
    agent: Box<S>,
    to_agent: VecDeque<(TransmitKind, Vec<u8>)>,
    to_client: VecDeque<(TransmitKind, Vec<u8>)>,
    up: bool,
    cuts: u32,
    c2a: Flow,
    a2c_out: Flow,
    a2c_err: Flow,
    tx: Vec<u8>,
}

impl World {
    fn new(kms: bool) -> Self {
        let now = Instant::from_millis(1000);
        let (encryption, kms_key_id) = if kms {
            let e = Encryption::Kms {
                require_challenge: true,
            };
            (e, Some("alias/fuzz"))
        } else {
            (Encryption::Unsupported, None)
        };
        let agent = AgentHandshake {
            kms_key_id,
            ..AgentHandshake::SHELL
        };
        let mut w = World {
            now,
            client: Box::new(S::new(
                Config {
                    encryption,
                    ..Config::client(1)
                },
                now,
            )),
            agent: Box::new(S::new(
                Config {
                    encryption,
                    ..Config::agent(2, agent)
                },
                now,
            )),
            to_agent: VecDeque::new(),
            to_client: VecDeque::new(),
            up: false,
            cuts: 0,
            c2a: Flow {
                pattern: 7,
                ..Flow::default()
            },
            a2c_out: Flow {
                pattern: 3,
                ..Flow::default()
            },
            a2c_err: Flow {
                pattern: 5,
                ..Flow::default()
            },
            tx: vec![0u8; 8192],
        };
        w.client.set_unix_time(now, 1_760_000_000_000);
        w.agent.set_unix_time(now, 1_760_000_000_000);
        w.connect();
        w
    }

    fn connect(&mut self) {
        if self.up {
            return;
        }
        self.up = true;
        let _ = self.agent.handle_connected(self.now, "");
        let token = format!("token-{}", self.cuts);
        let _ = self.client.handle_connected(self.now, &token);
    }

    fn cut(&mut self) {
        self.up = false;
        self.cuts += 1;
        self.to_agent.clear();
        self.to_client.clear();
        self.client.handle_transport_closed(self.now);
        self.agent.handle_transport_closed(self.now);
    }

    /// What an adapter does after every call: read on events, send what is queued, check timers.
    fn settle(&mut self) {
        let mut buf = [0u8; 700];
        for _ in 0..64 {
            let mut moved = false;
            while let Some(e) = self.client.poll_event() {
                moved = true;
                if e == Event::DataKeyNeeded {
                    let _ = self.client.set_data_key(self.now, &DATA_KEY, BLOB, [0; 12]);
                }
                if e == Event::Readable {
                    while let Some((s, n)) = self.client.read(&mut buf) {
                        match s {
                            Stream::Output => {
                                self.a2c_out.deliver(&buf[..n], "agent→client output")
                            }
                            Stream::StdErr => {
                                self.a2c_err.deliver(&buf[..n], "agent→client stderr")
                            }
                        }
                    }
                }
            }
            while let Some(e) = self.agent.poll_event() {
                moved = true;
                if e == Event::DataKeyToDecrypt {
                    if self.agent.data_key_ciphertext() == Some(BLOB) {
                        let _ = self.agent.set_decrypted_data_key(self.now, &DATA_KEY);
                    } else {
                        self.agent.refuse_data_key(self.now);
                    }
                }
                if e == Event::Readable {
                    while let Some((s, n)) = self.agent.read(&mut buf) {
                        assert_eq!(s, Stream::Output, "the client sent stderr");
                        self.c2a.deliver(&buf[..n], "client→agent");
                    }
                }
            }
            while let Ok(Some(t)) = self.client.poll_transmit(self.now, &mut self.tx) {
                moved = true;
                if self.up {
                    self.to_agent.push_back((t.kind, self.tx[..t.len].to_vec()));
                }
            }
            while let Ok(Some(t)) = self.agent.poll_transmit(self.now, &mut self.tx) {
                moved = true;
                if self.up {
                    self.to_client
                        .push_back((t.kind, self.tx[..t.len].to_vec()));
                }
            }
            if !moved {
                break;
            }
        }
        for (who, s) in [("client", &self.client), ("agent", &self.agent)] {
            if let Some(t) = s.poll_timeout() {
                assert!(t >= self.now, "{who} timer {t:?} before now {:?}", self.now);
            }
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now + Duration::from_millis(ms);
        if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
            self.client.handle_timeout(self.now);
        }
        if self.agent.poll_timeout().is_some_and(|t| t <= self.now) {
            self.agent.handle_timeout(self.now);
        }
    }

    /// Delivers one in-flight message: bit 0 drops it (binary only: a lost text message means
    /// a dead WebSocket, which `cut` models), bit 1 delivers it twice, bit 2 takes the newest.
    fn deliver(&mut self, to_agent: bool, how: u8) {
        let q = if to_agent {
            &mut self.to_agent
        } else {
            &mut self.to_client
        };
        let m = if how & 4 != 0 {
            q.pop_back()
        } else {
            q.pop_front()
        };
        let Some((kind, bytes)) = m else { return };
        if kind == TransmitKind::Binary && how & 1 != 0 {
            return;
        }
        let times = if kind == TransmitKind::Binary && how & 2 != 0 {
            2
        } else {
            1
        };
        let s = if to_agent {
            &mut self.agent
        } else {
            &mut self.client
        };
        for _ in 0..times {
            let input = match kind {
                TransmitKind::Text => Incoming::Text(&bytes),
                TransmitKind::Binary => Incoming::Binary(&bytes),
            };
            let _ = s.handle_input(self.now, input);
        }
    }

    fn inject(&mut self, to_agent: bool, text: bool, bytes: &[u8]) {
        let input = if text {
            Incoming::Text(bytes)
        } else {
            Incoming::Binary(bytes)
        };
        let s = if to_agent {
            &mut self.agent
        } else {
            &mut self.client
        };
        if s.handle_input(self.now, input).is_ok() {
            if to_agent {
                self.c2a.tainted = true;
            } else {
                self.a2c_out.tainted = true;
                self.a2c_err.tainted = true;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut w = World::new(data.first().is_some_and(|b| b & 0x80 != 0));
    w.settle();
    let mut i = 0;
    while i + 1 < data.len() {
        let (op, arg) = (data[i], data[i + 1]);
        i += 2;
        match op % 12 {
            0 => w.advance(u64::from(arg) * 5 + 1),
            1 => {
                let d = w.c2a.next_bytes(usize::from(arg) * 9);
                if let Ok(n) = w.client.write(w.now, &d) {
                    w.c2a.accept(&d, n);
                }
            }
            2 => {
                let d = w.a2c_out.next_bytes(usize::from(arg) * 9);
                if let Ok(n) = w.agent.write(w.now, &d) {
                    w.a2c_out.accept(&d, n);
                }
            }
            3 => {
                let d = w.a2c_err.next_bytes(usize::from(arg) * 3);
                if let Ok(n) = w.agent.write_stderr(w.now, &d) {
                    w.a2c_err.accept(&d, n);
                }
            }
            4 => w.deliver(true, arg),
            5 => w.deliver(false, arg),
            6 => {
                for _ in 0..usize::from(arg) + 1 {
                    w.deliver(true, 0);
                    w.deliver(false, 0);
                    w.settle();
                }
            }
            7 => w.cut(),
            8 => w.connect(),
            9 => {
                w.client.resize(u32::from(arg), u32::from(arg) / 3);
                let _ = w.client.send_flag(Flag::from(u32::from(arg % 5)));
            }
            10 => match arg % 6 {
                0 => w.client.close(w.now),
                1 => w.client.terminate(w.now),
                2 => w.agent.close_channel(w.now, "bye"),
                3 => {
                    let _ = w.agent.send_exit_code(w.now, i32::from(arg) - 100);
                }
                4 => {
                    let _ = w.agent.pause_publication();
                }
                _ => {
                    let _ = w.agent.start_publication();
                }
            },
            _ => {
                // A hostile message made of the next `arg` input bytes; the op's high part
                // picks the receiver and the message kind.
                let n = usize::from(arg).min(data.len() - i);
                let bytes = &data[i..i + n];
                i += n;
                w.inject(op / 12 % 2 == 0, op / 24 % 2 == 1, bytes);
            }
        }
        w.settle();
    }
});
