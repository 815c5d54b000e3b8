//! Counts what the JSON readers make of a set of files: how many StartSession answers parse and
//! which error each refusal gives, and the same for the JSON control payloads. Used to compare
//! reader policies on the fuzz corpora:
//! `cargo run -p ssm-proto --example corpus_outcomes -- fuzz/corpus/start_session_response fuzz/corpus/payload`

use std::collections::BTreeMap;

use ssm_proto::model::{Endpoints, StartSessionResponse};
use ssm_proto::payload::{Acknowledge, HandshakeRequest, HandshakeResponse, Size};

fn main() {
    let mut model: BTreeMap<String, usize> = BTreeMap::new();
    let mut payloads: BTreeMap<String, usize> = BTreeMap::new();
    let mut files = 0;
    for dir in std::env::args().skip(1) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("cannot read {dir}");
            std::process::exit(2);
        };
        for e in entries.flatten() {
            let Ok(data) = std::fs::read(e.path()) else {
                continue;
            };
            files += 1;
            let mut scratch = vec![0u8; data.len()];
            let m = StartSessionResponse::parse_with(
                &data,
                Some(&mut scratch),
                Endpoints::DangerousAnyHost,
            );
            *model
                .entry(m.map_or_else(|e| format!("{e:?}"), |_| "ok".into()))
                .or_default() += 1;
            for (name, r) in [
                ("ack", Acknowledge::parse(&data).err()),
                ("size", Size::parse(&data).err()),
                ("handshake_request", HandshakeRequest::parse(&data).err()),
                ("handshake_response", HandshakeResponse::parse(&data).err()),
            ] {
                let k = r.map_or_else(|| "ok".into(), |e| format!("{e:?}"));
                *payloads.entry(format!("{name}: {k}")).or_default() += 1;
            }
        }
    }
    println!("{files} files");
    println!("StartSessionResponse:");
    for (k, n) in &model {
        println!("  {n:6}  {k}");
    }
    println!("payloads:");
    for (k, n) in &payloads {
        println!("  {n:6}  {k}");
    }
}
