//! Measures a transfer through the emulator: `N` MiB into `head -c` and back (or one way).
//!
//! ```text
//! cargo run --release -p ssm-tokio --example throughput -- \
//!     [--mib N] [--window BYTES] [--faults] [--pacing] [--one-way] [--plain]
//! ```
#![allow(
    clippy::std_instead_of_core,
    reason = "a std example; the workspace lint guards the no_std core"
)]

use std::time::{Duration, Instant};

use ssm_emulator::{Emulator, EmulatorConfig, StartSession};
use ssm_tokio::{ConnectOptions, EngineConfig, Faults};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `RUST_LOG=ssm_tokio=debug` shows both engines' counters once a second.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let flag = |name: &str| args.iter().any(|a| a == name);
    let mib = value("--mib").unwrap_or(10);
    let window = value("--window");
    let n = mib << 20;
    let faults = flag("--faults").then(|| Faults::mild(42));
    let emu = Emulator::start(EmulatorConfig {
        pacing: flag("--pacing").then_some(Duration::from_millis(1)),
        faults: faults.clone(),
        window,
        tls: !flag("--plain"),
        ..Default::default()
    })
    .await?;
    let one_way = flag("--one-way");
    let command = if one_way {
        format!("head -c {n} /dev/zero")
    } else {
        format!("head -c {n}")
    };
    let target = emu.start_session(&StartSession::non_interactive(command))?;
    let mut config = EngineConfig::client(7);
    if let Some(w) = window {
        config.window = w;
    }
    let started = Instant::now();
    let s = ssm_tokio::connect(
        target,
        ConnectOptions {
            tls: emu.client_tls(),
            config: Some(config),
            faults,
            ..Default::default()
        },
    )
    .await?;
    let (mut out, _err, mut input, _ev, _c, fin) = s.into_parts();
    let writer = tokio::spawn(async move {
        if !one_way {
            let chunk = vec![0x5au8; 64 * 1024];
            let mut left = n;
            while left > 0 {
                let k = left.min(chunk.len());
                input.write_all(&chunk[..k]).await?;
                left -= k;
            }
        }
        Ok::<_, std::io::Error>(input)
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let k = out.read(&mut buf).await?;
        if k == 0 {
            break;
        }
        got += k;
    }
    let _input = writer.await??;
    let outcome = fin.wait().await?;
    let took = started.elapsed();
    let moved = if one_way { n } else { 2 * n };
    println!(
        "{mib} MiB {} in {:.2} s ({:.2} MB/s total), exit {:?}, received {got} bytes",
        if one_way { "one way" } else { "each way" },
        took.as_secs_f64(),
        moved as f64 / took.as_secs_f64() / 1e6,
        outcome.exit_code
    );
    Ok(())
}
