//! The delivery property: whatever the network does (up to 20% loss, duplication, reordering,
//! and connection cuts), every byte written on one side arrives exactly once, in order, on the
//! other, in both directions, and both sides end closed with the right reason.

use proptest::prelude::*;

use super::sim::{bytes, check, NetConfig, Sim, SmallSim, Workload};
use super::*;
use crate::wire::FrameRepr;

fn workload(
    seed: u64,
    client_len: usize,
    agent_pieces: &[(bool, usize)],
    piece: usize,
) -> Workload {
    Workload {
        client_input: bytes(seed, client_len),
        agent_output: agent_pieces
            .iter()
            .enumerate()
            .map(|(i, &(err, n))| {
                let s = if err { Stream::StdErr } else { Stream::Output };
                (s, bytes(seed.wrapping_add(1 + i as u64), n))
            })
            .collect(),
        write_piece: piece,
    }
}

/// Thirty virtual minutes: far more than any case needs, well under the 5-minute give-up
/// times the number of stalls a broken engine would show.
const LIMIT_MS: u64 = 30 * 60 * 1000;

#[test]
fn perfect_network_delivers_both_ways() {
    let w = workload(
        7,
        50_000,
        &[(false, 40_000), (true, 3_000), (false, 10)],
        4096,
    );
    let o = SmallSim::new(7, NetConfig::PERFECT, |_| {}, &w).run(LIMIT_MS);
    check(&w, &o);
    assert_eq!(o.client_stats.retransmits, 0);
    assert_eq!(o.agent_stats.retransmits, 0);
    assert_eq!(o.client_stats.duplicates, 0);
}

#[test]
fn hostile_network_fixed_seeds() {
    let net = NetConfig {
        latency: (5, 80),
        loss: 200,
        dup: 200,
        reorder: 200,
        reorder_delay: (10, 400),
        cut_every: Some((200, 2_000)),
        down_for: (50, 2_000),
    };
    let mut cuts = 0;
    for seed in 0..8u64 {
        let w = workload(
            seed,
            60_000,
            &[(false, 40_000), (true, 5_000), (false, 7_000)],
            3000,
        );
        let o = SmallSim::new(seed, net, |c| c.window = 4 * 1024, &w).run(LIMIT_MS);
        check(&w, &o);
        std::println!(
            "seed {seed}: {} ms, {} cuts, retransmits {}/{}, duplicates {}/{}",
            o.now,
            o.cuts,
            o.client_stats.retransmits,
            o.agent_stats.retransmits,
            o.client_stats.duplicates,
            o.agent_stats.duplicates
        );
        cuts += o.cuts;
        assert!(o.client_stats.retransmits + o.agent_stats.retransmits > 0);
        assert!(o.client_stats.duplicates + o.agent_stats.duplicates > 0);
    }
    assert!(cuts >= 8, "the network should have cut connections: {cuts}");
}

fn net_strategy() -> impl Strategy<Value = NetConfig> {
    (
        (1u64..50, 0u64..150),
        0u64..=200,
        0u64..=200,
        0u64..=200,
        (0u64..100, 0u64..800),
        proptest::option::of((100u64..3_000, 0u64..5_000)),
        (0u64..500, 0u64..5_000),
    )
        .prop_map(|(lat, loss, dup, reorder, rd, cut, down)| {
            let latency = (lat.0, lat.0 + lat.1);
            let reorder_delay = (rd.0, rd.0 + rd.1);
            // A connection must outlive a few round trips, or no message can ever be
            // acknowledged (cuts every 130 ms with 250 ms round trips is a dead network, and
            // the session rightly gives up).
            let slowest = latency.1 + reorder_delay.1;
            NetConfig {
                latency,
                loss,
                dup,
                reorder,
                reorder_delay,
                cut_every: cut.map(|(a, b)| {
                    let a = a.max(4 * slowest);
                    (a, a + b)
                }),
                down_for: (down.0, down.0 + down.1),
            }
        })
}

proptest! {
    // 48 cases by default (a few seconds); `PROPTEST_CASES=n` for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_byte_arrives_once_in_order(
        seed in any::<u64>(),
        net in net_strategy(),
        client_len in 0usize..20_000,
        agent_pieces in proptest::collection::vec((any::<bool>(), 1usize..6_000), 0..5),
        piece in 1usize..5_000,
        chunk in 1usize..=1024,
        // At least a few messages in flight: a one-byte window over a network that cuts every
        // few round trips takes longer than the run's limit, without being wrong.
        window in 1024usize..40_000,
    ) {
        let w = workload(seed, client_len, &agent_pieces, piece);
        let o = SmallSim::new(seed, net, |c| {
            c.chunk_size = chunk;
            c.window = window;
        }, &w).run(LIMIT_MS);
        check(&w, &o);
    }
}

/// Tiny capacities: a 2 KiB send ring of 4 slots, one reorder slot, a 1 KiB read buffer and a
/// transmit queue of 2, so that ring wrap-around, full slots, dropped acks and dropped
/// out-of-order messages all happen, and delivery must still be exact.
type TinySim<'w> = Sim<'w, 2048, 4, 1, 1024, 2>;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]

    #[test]
    fn tiny_sessions_still_deliver_exactly(
        seed in any::<u64>(),
        net in net_strategy(),
        client_len in 0usize..6_000,
        agent_pieces in proptest::collection::vec((any::<bool>(), 1usize..3_000), 0..4),
        // Four messages in flight and one reorder slot make one-byte messages crawl
        // (thousands of round trips); 64 bytes keeps each run within its time limit.
        piece in 64usize..3_000,
        chunk in 64usize..=1024,
    ) {
        let w = workload(seed, client_len, &agent_pieces, piece);
        let o = TinySim::new(seed, net, |c| c.chunk_size = chunk, &w).run(LIMIT_MS);
        check(&w, &o);
    }
}

#[test]
fn tiny_sessions_hit_every_limit() {
    let net = NetConfig {
        // A fixed latency makes bursts arrive together, so acknowledgements pile up.
        latency: (20, 20),
        loss: 100,
        dup: 100,
        reorder: 200,
        reorder_delay: (10, 300),
        cut_every: Some((500, 3_000)),
        down_for: (10, 1_000),
    };
    let (mut acks_dropped, mut dropped, mut blocked_writes) = (0, 0, 0);
    for seed in 0..6u64 {
        let w = workload(seed, 8_000, &[(false, 6_000), (true, 2_000)], 2_500);
        let o = TinySim::new(seed, net, |_| {}, &w).run(LIMIT_MS);
        check(&w, &o);
        acks_dropped += o.client_stats.acks_dropped + o.agent_stats.acks_dropped;
        dropped += o.client_stats.dropped_unacked + o.agent_stats.dropped_unacked;
        blocked_writes += o
            .client_events
            .iter()
            .chain(&o.agent_events)
            .filter(|e| **e == Event::Writable)
            .count();
    }
    std::println!(
        "tiny: acks dropped {acks_dropped}, messages dropped {dropped}, writable {blocked_writes}"
    );
    assert!(acks_dropped > 0 && dropped > 0 && blocked_writes > 10);
}

fn message_type() -> impl Strategy<Value = MessageType> {
    prop_oneof![
        Just(MessageType::InputStreamData),
        Just(MessageType::OutputStreamData),
        Just(MessageType::Acknowledge),
        Just(MessageType::ChannelClosed),
        Just(MessageType::StartPublication),
        Just(MessageType::PausePublication),
        Just(MessageType::from_name(b"something_else").unwrap()),
    ]
}

fn payload_bytes() -> impl Strategy<Value = std::vec::Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(br#"{"AcknowledgedMessageType":"input_stream_data","AcknowledgedMessageId":"00000000-0000-4000-8000-000000000000","AcknowledgedMessageSequenceNumber":1,"IsSequentialMessage":true}"#.to_vec()),
        Just(br#"{"AgentVersion":"1","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"a":[1,{"b":null}]}}}]}"#.to_vec()),
        Just(br#"{"ClientVersion":"1","ProcessedClientActions":[],"Errors":[]}"#.to_vec()),
        Just(br#"{"cols":4294967295,"rows":0}"#.to_vec()),
        Just(b"EXIT_CODE: -2147483648".to_vec()),
        Just(std::vec![0, 0, 0, 2]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Peer input never panics, whatever the role and phase, and an established session still
    /// carries data afterwards unless the garbage closed it.
    #[test]
    fn garbage_never_panics(
        frames in proptest::collection::vec(
            (message_type(), prop_oneof![0i64..12, any::<i64>()], 0u32..14, payload_bytes(), any::<bool>(), any::<u8>()),
            1..40,
        ),
        raw in proptest::collection::vec(any::<u8>(), 0..300),
        established_first in any::<bool>(),
    ) {
        let (mut c, mut a) = if established_first {
            super::established(AgentHandshake::SHELL)
        } else {
            let mut c = super::client(1);
            let mut a = super::agent(2, AgentHandshake::SHELL);
            c.handle_connected(at(0), TOKEN).unwrap();
            a.handle_connected(at(0), "").unwrap();
            let open = drain(&mut c, at(0));
            super::deliver(&mut a, at(0), &open);
            (c, a)
        };
        let mut now = 1;
        for (t, seq, pt, payload, to_client, idbyte) in &frames {
            let repr = FrameRepr {
                header: crate::wire::Header {
                    message_type: *t,
                    schema_version: 1,
                    created_date: 0,
                    sequence_number: *seq,
                    flags: 0,
                    message_id: Uuid::from_random_bytes([*idbyte; 16]),
                    payload_type: PayloadType::from(*pt),
                },
                payload,
            };
            let mut bytes = std::vec![0u8; repr.buffer_len()];
            repr.emit(&mut bytes).unwrap();
            let s = if *to_client { &mut c } else { &mut a };
            let _ = s.handle_input(at(now), Incoming::Binary(&bytes));
            let _ = s.handle_input(at(now), Incoming::Text(payload));
            let _ = s.handle_input(at(now), Incoming::Binary(&raw));
            s.handle_timeout(at(now));
            drain(s, at(now));
            events(s);
            read_all(s);
            now += 37;
        }
        if c.is_established() && a.is_established() && !c.is_closed() && !a.is_closed() {
            events(&mut c);
            // The peer's stream state may be anything now; our own sending side must still work.
            prop_assert!(c.write(at(now), b"still alive").is_ok() || c.unacked_bytes() > 0);
        }
    }
}
