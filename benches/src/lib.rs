//! Shared fixtures for the criterion benches (`benches/`) and the allocation tests (`tests/`):
//! frames of chosen payload sizes and sample control payloads. Not published.

use ssm_proto::uuid::Uuid;
use ssm_proto::wire::{Header, MessageType, PayloadType, HEADER_LEN};

/// Payload sizes the frame benches measure (issue 7): empty, small, one official chunk (1024,
/// the official client's read size), 4 KiB, and 64 KiB.
pub const PAYLOAD_SIZES: [usize; 5] = [0, 64, 1024, 4096, 65536];

/// A data-frame header like the official client's.
pub fn header() -> Header {
    Header {
        message_type: MessageType::OutputStreamData,
        schema_version: 1,
        created_date: 1_764_115_200_000,
        sequence_number: 42,
        flags: 0,
        message_id: Uuid::from_random_bytes([7; 16]),
        payload_type: PayloadType::Output,
    }
}

/// A payload of `len` bytes with varied content.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

/// A complete frame around [`payload`]`(len)`.
pub fn frame(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER_LEN + len];
    buf[HEADER_LEN..].copy_from_slice(&payload(len));
    let n = header()
        .emit_in_place(&mut buf, len)
        .expect("buffer sized for the frame");
    assert_eq!(n, buf.len());
    buf
}

/// A StartSession answer as the AWS CLI prints it (with `ResponseMetadata`), `\/` escapes in the URL.
pub const START_SESSION_RESPONSE: &[u8] = br#"{"SessionId":"user-0123456789abcdef0","TokenValue":"AAEAAbKr0Vx1c2Vzc2lvbi10b2tlbi1mb3ItYmVuY2htYXJrcy1vbmx5LWxvbmdlci10aGFuLXVzdWFs","StreamUrl":"wss:\/\/ssmmessages.eu-west-1.amazonaws.com\/v1\/data-channel\/user-0123456789abcdef0?role=publish_subscribe","ResponseMetadata":{"RequestId":"5b4e7d35-1f0e-4c5a-9d3e-1a2b3c4d5e6f","HTTPStatusCode":200,"HTTPHeaders":{"date":"Tue, 01 Dec 2026 22:00:00 GMT","content-type":"application/x-amz-json-1.1","content-length":"402","connection":"keep-alive"},"RetryAttempts":0}}"#;

/// An acknowledge payload as the official client sends it.
pub const ACK: &[u8] = br#"{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"3970115e-82aa-4778-a667-f7e936cd4f24","AcknowledgedMessageSequenceNumber":132578107821,"IsSequentialMessage":true}"#;

/// A port-forwarding handshake request with a KMS action.
pub const HANDSHAKE_REQUEST: &[u8] = br#"{"AgentVersion":"3.3.40.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"portNumber":"22","type":"LocalPortForwarding","localPortNumber":"0"}}},{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"arn:aws:kms:us-east-1:123456789012:key/abc"}}]}"#;

pub use engine::Pair;

/// An in-memory client ↔ agent pair on a virtual clock, for engine throughput and the
/// allocation test. After [`Pair::new`] every step works in preallocated buffers.
pub mod engine {
    use ssm_proto::session::{
        AgentHandshake, Config, Encryption, Event, Incoming, Session, Stream, TransmitKind,
    };
    use ssm_proto::time::Instant;

    /// The data key and ciphertext blob a fake KMS hands out in [`Pair::encrypted`].
    const DATA_KEY: [u8; 64] = [0x6b; 64];
    const BLOB: &[u8] = b"bench KMS ciphertext blob";

    /// Room for one WebSocket message (the session's largest transmit is under 3 KiB).
    const SLOT: usize = 4096;
    /// Messages in flight per direction: the default window (256 messages of 1 KiB) plus acks.
    const SLOTS: usize = 1024;

    /// A fixed ring of in-flight messages.
    struct Ring {
        slots: Vec<(TransmitKind, usize, Box<[u8; SLOT]>)>,
        head: usize,
        len: usize,
    }

    impl Ring {
        fn new() -> Self {
            Ring {
                slots: (0..SLOTS)
                    .map(|_| (TransmitKind::Binary, 0, Box::new([0u8; SLOT])))
                    .collect(),
                head: 0,
                len: 0,
            }
        }

        fn push(&mut self, kind: TransmitKind, data: &[u8]) {
            assert!(self.len < SLOTS, "in-flight ring full");
            let i = (self.head + self.len) % SLOTS;
            let slot = &mut self.slots[i];
            slot.0 = kind;
            slot.1 = data.len();
            slot.2[..data.len()].copy_from_slice(data);
            self.len += 1;
        }

        fn pop(&mut self) -> Option<(TransmitKind, &[u8])> {
            if self.len == 0 {
                return None;
            }
            let i = self.head;
            self.head = (self.head + 1) % SLOTS;
            self.len -= 1;
            let (kind, len, buf) = &self.slots[i];
            Some((*kind, &buf[..*len]))
        }
    }

    /// One direction's plumbing, borrowed from a [`Pair`] for a step.
    struct Link<'p> {
        now: Instant,
        tx: &'p mut [u8; SLOT],
        loss_per_mille: u64,
        rng: &'p mut u64,
        dropped: &'p mut u64,
    }

    impl Link<'_> {
        fn lose(&mut self) -> bool {
            // xorshift64: cheap, seeded, allocation-free.
            *self.rng ^= *self.rng << 13;
            *self.rng ^= *self.rng >> 7;
            *self.rng ^= *self.rng << 17;
            *self.rng % 1000 < self.loss_per_mille
        }

        /// Moves everything `from` transmits into `ring`, losing binary messages by chance.
        fn send(&mut self, from: &mut Session, ring: &mut Ring) -> bool {
            let mut moved = false;
            while let Some(t) = from
                .poll_transmit(self.now, &mut self.tx[..])
                .expect("slot holds any transmit")
            {
                moved = true;
                if t.kind == TransmitKind::Binary && self.lose() {
                    *self.dropped += 1;
                } else {
                    ring.push(t.kind, &self.tx[..t.len]);
                }
            }
            moved
        }

        /// Hands every message in `ring` to `to`.
        fn deliver(&mut self, ring: &mut Ring, to: &mut Session) -> bool {
            let mut moved = false;
            while let Some((kind, data)) = ring.pop() {
                moved = true;
                let input = match kind {
                    TransmitKind::Text => Incoming::Text(data),
                    TransmitKind::Binary => Incoming::Binary(data),
                };
                let _ = to.handle_input(self.now, input);
            }
            moved
        }
    }

    /// Client and agent (default capacities and configuration) joined by zero-latency links
    /// that lose binary messages with a given probability. The agent writes shell output; the
    /// client reads it, as in an interactive session's busy direction.
    pub struct Pair {
        /// Virtual time: advances only when nothing else can move (to the next timer).
        pub now: Instant,
        /// The client (what users run).
        pub client: Box<Session>,
        /// The agent role.
        pub agent: Box<Session>,
        to_agent: Ring,
        to_client: Ring,
        loss_per_mille: u64,
        rng: u64,
        tx: Box<[u8; SLOT]>,
        rx: Box<[u8; 2048]>,
        source: Box<[u8; 1024]>,
        /// Stream bytes the agent's `write` accepted.
        pub sent: u64,
        /// Stream bytes the client read.
        pub received: u64,
        /// Binary messages dropped.
        pub dropped: u64,
    }

    impl Pair {
        /// Connects both roles and runs the handshake.
        ///
        /// # Panics
        /// If the handshake does not complete (an engine bug).
        pub fn new(seed: u64, loss_per_mille: u64) -> Self {
            Self::with(seed, loss_per_mille, Encryption::Unsupported)
        }

        /// As [`new`](Self::new), with KMS encryption (PROTOCOL.md §6): the handshake gets a
        /// data key from a fake KMS, and every data payload is sealed and opened.
        ///
        /// # Panics
        /// As `new`, or if the session does not end up encrypted.
        pub fn encrypted(seed: u64, loss_per_mille: u64) -> Self {
            let kms = Encryption::Kms {
                require_challenge: true,
            };
            let p = Self::with(seed, loss_per_mille, kms);
            assert!(p.client.is_encrypted() && p.agent.is_encrypted());
            p
        }

        fn with(seed: u64, loss_per_mille: u64, encryption: Encryption) -> Self {
            let now = Instant::from_millis(0);
            let kms_key_id = (encryption != Encryption::Unsupported).then_some("alias/bench");
            let mut p = Pair {
                now,
                client: Box::new(Session::new(
                    Config {
                        encryption,
                        ..Config::client(seed)
                    },
                    now,
                )),
                agent: Box::new(Session::new(
                    Config {
                        // The links lose messages: send no further ahead than the client holds.
                        max_ahead: ssm_proto::session::DEFAULT_REORDER,
                        encryption,
                        ..Config::agent(
                            seed ^ 0x5a5a,
                            AgentHandshake {
                                kms_key_id,
                                ..AgentHandshake::SHELL
                            },
                        )
                    },
                    now,
                )),
                to_agent: Ring::new(),
                to_client: Ring::new(),
                loss_per_mille,
                rng: seed | 1,
                tx: Box::new([0u8; SLOT]),
                rx: Box::new([0u8; 2048]),
                source: Box::new(core::array::from_fn(|i| (i * 31 + 7) as u8)),
                sent: 0,
                received: 0,
                dropped: 0,
            };
            p.agent.handle_connected(now, "").expect("agent connects");
            p.client
                .handle_connected(now, "bench-token")
                .expect("client connects");
            for _ in 0..10_000 {
                if p.client.is_established() && p.agent.is_established() {
                    return p;
                }
                p.step(false);
            }
            panic!("handshake did not complete");
        }

        /// One round: the agent writes if it may, both sides transmit, every message in flight
        /// is delivered (or lost), the client reads. When nothing moved, time jumps to the next
        /// timer. Returns whether anything moved.
        pub fn step(&mut self, write: bool) -> bool {
            let mut moved = false;
            if write {
                if let Ok(n) = self.agent.write(self.now, &self.source[..]) {
                    self.sent += n as u64;
                    moved |= n > 0;
                }
            }
            let mut link = Link {
                now: self.now,
                tx: &mut self.tx,
                loss_per_mille: self.loss_per_mille,
                rng: &mut self.rng,
                dropped: &mut self.dropped,
            };
            moved |= link.send(&mut self.agent, &mut self.to_client);
            moved |= link.send(&mut self.client, &mut self.to_agent);
            moved |= link.deliver(&mut self.to_client, &mut self.client);
            moved |= link.deliver(&mut self.to_agent, &mut self.agent);
            while let Some(e) = self.client.poll_event() {
                moved |= e == Event::Readable;
                if e == Event::DataKeyNeeded {
                    self.client
                        .set_data_key(self.now, &DATA_KEY, BLOB, [0; 12])
                        .expect("the client takes the data key");
                    moved = true;
                }
            }
            while let Some(e) = self.agent.poll_event() {
                moved |= e == Event::Readable;
                if e == Event::DataKeyToDecrypt {
                    self.agent
                        .set_decrypted_data_key(self.now, &DATA_KEY)
                        .expect("the agent takes the data key");
                    moved = true;
                }
            }
            while let Some((stream, n)) = self.client.read(&mut self.rx[..]) {
                assert_eq!(stream, Stream::Output);
                self.received += n as u64;
                moved = true;
            }
            while self.agent.read(&mut self.rx[..]).is_some() {}
            if !moved {
                let next = match (self.client.poll_timeout(), self.agent.poll_timeout()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                if let Some(t) = next {
                    self.now = self.now.max(t);
                    self.client.handle_timeout(self.now);
                    self.agent.handle_timeout(self.now);
                }
            }
            moved
        }

        /// Moves `bytes` more stream bytes from the agent to the client.
        ///
        /// # Panics
        /// If no progress is possible (no timer armed while data is outstanding).
        pub fn transfer(&mut self, bytes: u64) {
            let target = self.received + bytes;
            let mut idle = 0;
            while self.received < target {
                let write = self.sent < target;
                if self.step(write) {
                    idle = 0;
                } else {
                    idle += 1;
                    assert!(
                        idle < 1000,
                        "engine stalled at {} of {target}",
                        self.received
                    );
                }
            }
        }
    }
}
