//! The device's StartSession round trip against the strict emulator, recorded once and replayed
//! (`tests/common/api_replay.rs`): the verified TLS 1.3 handshake, the SigV4-signed request
//! (the emulator verified that signature when it was recorded) and the answer's parsing, byte
//! for byte. `examples/boards/qemu-tests` replays the same recording on a Cortex-M4 under QEMU.
//!
//! Re-record (after changing the request, the signing or the TLS code):
//! `SSM_RECORD_API=1 cargo test -p ssm-embassy --features tls-rsa --test api_replay`, then run it
//! again without the variable.
//!
//! With `tls-rsa`, as the board builds it: the ClientHello offers RSA signature schemes too, so
//! a recording made without it does not fit.
#![cfg(feature = "tls-rsa")]

mod common;

use core::cell::RefCell;
use core::fmt::Write as _;
use core::time::Duration;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::api_replay::{self, Buffers, Meta, CREDS};
use embassy_time::Instant;
use ssm_embassy::{ApiBuffers, Clock, StreamUrls};
use ssm_emulator::{Emulator, EmulatorConfig};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/api/");

/// A clock reading `unix_secs` for the next half second at least: set early in a second of
/// `Instant`, whose whole seconds it counts, so a call made now signs at `unix_secs`.
fn aligned_clock(unix_secs: u64) -> Clock {
    while Instant::now().as_micros() % 1_000_000 > 400_000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    Clock::from_unix_secs(unix_secs)
}

fn record() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let emu = Emulator::start(EmulatorConfig {
            credentials: Some(ssm_emulator::sigv4::Credentials {
                access_key_id: CREDS.access_key_id.into(),
                secret_access_key: CREDS.secret_access_key.into(),
                session_token: CREDS.session_token.map(Into::into),
            }),
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
        let port = emu.addr().port();
        let root = {
            use rustls_pki_types::pem::PemObject;
            rustls_pki_types::CertificateDer::from_pem_slice(emu.ca_pem().as_bytes())
                .unwrap()
                .to_vec()
        };
        let tcp = tokio::net::TcpStream::connect(emu.addr()).await.unwrap();
        let server = Rc::new(RefCell::new(Vec::new()));
        let client = Rc::new(RefCell::new(Vec::new()));
        let recorder = common::Recorder {
            inner: embedded_io_adapters::tokio_1::FromTokio::new(tcp),
            server: server.clone(),
            client: client.clone(),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (mut rx, mut tx, mut api) = (vec![0u8; 16640], vec![0u8; 4096], ApiBuffers::new());
        let mut bufs = Buffers {
            rx: &mut rx,
            tx: &mut tx,
            api: &mut api,
        };
        // The strict emulator verifies the signature: this is what makes the recording a
        // correctly signed request.
        let answer = api_replay::start_session(
            recorder,
            &root,
            port,
            || aligned_clock(now),
            StreamUrls::LoopbackForTests,
            &mut bufs,
        )
        .await
        .unwrap();
        let mut meta = String::new();
        writeln!(meta, "unix_secs {now}").unwrap();
        writeln!(meta, "port {port}").unwrap();
        writeln!(meta, "session_id {}", answer.session_id).unwrap();
        writeln!(meta, "stream_url {}", answer.stream_url).unwrap();
        writeln!(meta, "token {}", answer.token).unwrap();
        std::fs::create_dir_all(DATA).unwrap();
        std::fs::write(format!("{DATA}start-session-server.bin"), server.take()).unwrap();
        std::fs::write(format!("{DATA}start-session-client.bin"), client.take()).unwrap();
        std::fs::write(format!("{DATA}root.der"), root).unwrap();
        std::fs::write(format!("{DATA}start-session.txt"), meta).unwrap();
    });
}

#[test]
fn the_recorded_start_session_replays_and_forgeries_do_not() {
    if std::env::var_os("SSM_RECORD_API").is_some() {
        record();
        eprintln!("recorded into {DATA}; run again without SSM_RECORD_API to check it");
        return;
    }
    let read = |f: &str| std::fs::read(format!("{DATA}{f}")).unwrap();
    let (server, client, root) = (
        read("start-session-server.bin"),
        read("start-session-client.bin"),
        read("root.der"),
    );
    let meta = String::from_utf8(read("start-session.txt")).unwrap();
    let (mut rx, mut tx, mut api) = (vec![0u8; 16640], vec![0u8; 4096], ApiBuffers::new());
    let mut bufs = Buffers {
        rx: &mut rx,
        tx: &mut tx,
        api: &mut api,
    };
    let mut forged = vec![0u8; server.len()];
    let r = embassy_futures::block_on(api_replay::check_all(
        &server,
        &client,
        &root,
        &Meta(&meta),
        aligned_clock,
        &mut bufs,
        &mut forged,
    ));
    assert_eq!(r, Ok(()));
}
