//! The delivery property: whatever the network does (up to 20% loss, duplication, reordering,
//! and connection cuts), every byte written on one side arrives exactly once, in order, on the
//! other, in both directions, and both sides end closed with the right reason.

use proptest::prelude::*;

use super::sim::{bytes, check, NetConfig, Sim, Workload};
use super::*;

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
    let o = Sim::new(7, NetConfig::PERFECT, |_| {}, &w).run(LIMIT_MS);
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
        let o = Sim::new(seed, net, |c| c.window = 4 * 1024, &w).run(LIMIT_MS);
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
        .prop_map(|(lat, loss, dup, reorder, rd, cut, down)| NetConfig {
            latency: (lat.0, lat.0 + lat.1),
            loss,
            dup,
            reorder,
            reorder_delay: (rd.0, rd.0 + rd.1),
            cut_every: cut.map(|(a, b)| (a, a + b)),
            down_for: (down.0, down.0 + down.1),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_byte_arrives_once_in_order(
        seed in any::<u64>(),
        net in net_strategy(),
        client_len in 0usize..20_000,
        agent_pieces in proptest::collection::vec((any::<bool>(), 1usize..6_000), 0..5),
        piece in 1usize..5_000,
        chunk in 1usize..=1024,
        window in 1usize..40_000,
    ) {
        let w = workload(seed, client_len, &agent_pieces, piece);
        let o = Sim::new(seed, net, |c| {
            c.chunk_size = chunk;
            c.window = window;
        }, &w).run(LIMIT_MS);
        check(&w, &o);
    }
}
