//! Prints what the in-memory engine pair does to move 8 MiB at 0%, 1% and 5% loss: messages,
//! retransmissions, and the virtual time taken (zero-latency links, so virtual time is spent
//! only waiting for retransmission timers). For BENCHMARKS.md.
//!
//! `cargo run --release -p ssm-benches --example engine_stats`

use ssm_benches::Pair;

fn main() {
    const BYTES: u64 = 8 << 20;
    println!("loss  agent_msgs_out  retransmits  lost_in_link  client_dropped_unbuffered  client_duplicates  virtual_ms  virtual_MB/s");
    for loss in [0, 10, 50] {
        let mut p = Pair::new(11, loss);
        let t0 = p.now;
        p.transfer(BYTES);
        let s = p.agent.stats();
        let c = p.client.stats();
        let ms = (p.now - t0).total_millis();
        let rate = if ms == 0 {
            f64::INFINITY
        } else {
            BYTES as f64 / 1e6 / (ms as f64 / 1e3)
        };
        println!(
            "{:>3}%  {:>14}  {:>11}  {:>12}  {:>25}  {:>17}  {:>10}  {:>12.2}",
            loss as f64 / 10.0,
            s.messages_out,
            s.retransmits,
            p.dropped,
            c.dropped_unacked,
            c.duplicates,
            ms,
            rate
        );
    }
}
