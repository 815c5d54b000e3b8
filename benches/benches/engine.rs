//! Engine throughput in memory: agent → client shell output through both session roles, no IO,
//! zero-latency links on a virtual clock, without loss and with 5% of binary messages lost
//! (data and acks alike), in clear and KMS-encrypted (the clear run is the baseline of the
//! encrypted one). Measures CPU cost: protocol waits (RTO) cost no wall time here.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ssm_benches::Pair;

const BYTES: u64 = 1 << 20;

fn engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Bytes(BYTES));
    g.sample_size(10);
    for (name, loss, kms) in [
        ("agent_to_client/no_loss", 0, false),
        ("agent_to_client_kms/no_loss", 0, true),
        ("agent_to_client/loss_5pct", 50, false),
        ("agent_to_client_kms/loss_5pct", 50, true),
    ] {
        let mut pair = if kms {
            Pair::encrypted(7, loss)
        } else {
            Pair::new(7, loss)
        };
        g.bench_function(name, |b| b.iter(|| pair.transfer(BYTES)));
        assert!(
            loss == 0 || pair.dropped > 0,
            "loss was configured but nothing dropped"
        );
    }
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
