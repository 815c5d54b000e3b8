//! Client ↔ emulator over real loopback sockets (TLS with the emulator's throwaway CA).
#![allow(
    clippy::std_instead_of_core,
    reason = "a std test; the workspace lint guards the no_std core"
)]

mod common;

use std::time::Duration;

use sha2::{Digest, Sha256};
use ssm_emulator::{Emulator, EmulatorConfig, StartSession};
use ssm_tokio::{ClientSession, ConnectOptions, Endpoints, Error, Faults, Grant, SessionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(60);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

async fn emulator(config: EmulatorConfig) -> Emulator {
    init_tracing();
    Emulator::start(config).await.expect("emulator starts")
}

async fn open(emu: &Emulator, req: &StartSession, opts: ConnectOptions) -> ClientSession {
    let target = emu.start_session(req).expect("start session");
    assert!(
        target.stream_url().as_str().starts_with("wss://"),
        "{}",
        target.stream_url().as_str()
    );
    let opts = ConnectOptions {
        tls: emu.client_tls(),
        ..opts
    };
    ssm_tokio::connect(target, opts).await.expect("connect")
}

async fn wait_handshake(s: &mut ClientSession) {
    timeout(T, async {
        loop {
            match s.events.next().await {
                Some(SessionEvent::HandshakeComplete(_)) => return,
                Some(SessionEvent::Closed(r)) => panic!("closed before handshake: {r}"),
                None => panic!("events ended before handshake"),
                Some(_) => {}
            }
        }
    })
    .await
    .expect("handshake in time");
}

/// Reads `output` until it contains `needle`; returns everything read.
async fn read_until(s: &mut ClientSession, needle: &str) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    timeout(T, async {
        loop {
            let n = s.output.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "eof before {needle:?}: {}",
                String::from_utf8_lossy(&all)
            );
            all.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&all).contains(needle) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", String::from_utf8_lossy(&all)));
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_echo_through_a_pty() {
    let emu = emulator(EmulatorConfig::default()).await;
    let mut s = open(&emu, &StartSession::shell(), ConnectOptions::default()).await;
    wait_handshake(&mut s).await;
    // The shell's answer, not the PTY's echo of the typed line, contains "hello-42".
    s.input.write_all(b"echo hello-$((6*7))\r").await.unwrap();
    read_until(&mut s, "hello-42").await;
    // A PTY: the shell sees a terminal.
    s.input
        .write_all(b"test -t 0 && echo tty-$((40+2))\r")
        .await
        .unwrap();
    read_until(&mut s, "tty-42").await;
    s.input.write_all(b"exit\r").await.unwrap();
    let (mut out, _err, _inp, _ev, _c, fin) = s.into_parts();
    let drained = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = drained.clone();
    let drain = tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = out.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let outcome = match timeout(T, fin.wait()).await {
        Ok(r) => r.expect("ok"),
        Err(_) => panic!(
            "session did not end after exit; output after exit: {:?}",
            String::from_utf8_lossy(&drained.lock().unwrap())
        ),
    };
    assert_eq!(outcome.exit_code, None, "shells send no exit code");
    drain.await.unwrap();
    // The last output (the echoed `exit`) precedes the channel's close.
    let tail = String::from_utf8_lossy(&drained.lock().unwrap()).into_owned();
    assert!(tail.contains("exit"), "{tail:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_interactive_exit_code_and_separate_streams() {
    let emu = emulator(EmulatorConfig::default()).await;
    let req = StartSession::non_interactive("echo to-out; echo to-err >&2; exit 3");
    let s = open(&emu, &req, ConnectOptions::default()).await;
    let (o, e, outcome) = common::command_to_end(s).await;
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(o, "to-out\n");
    assert_eq!(e, "to-err\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sh_exit_3_propagates() {
    let emu = emulator(EmulatorConfig::default()).await;
    let s = open(
        &emu,
        &StartSession::non_interactive("sh -c 'exit 3'"),
        ConnectOptions::default(),
    )
    .await;
    let (mut out, _e, _i, _ev, _c, fin) = s.into_parts();
    let mut v = Vec::new();
    timeout(T, out.read_to_end(&mut v)).await.unwrap().unwrap();
    let outcome = timeout(T, fin.wait()).await.expect("ends").expect("ok");
    assert_eq!(outcome.exit_code, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_reaches_the_pty() {
    let emu = emulator(EmulatorConfig::default()).await;
    let opts = ConnectOptions {
        terminal_size: Some((100, 30)),
        ..Default::default()
    };
    let mut s = open(&emu, &StartSession::shell(), opts).await;
    wait_handshake(&mut s).await;
    s.input.write_all(b"stty size\r").await.unwrap();
    read_until(&mut s, "30 100\r\n").await;
    s.control.resize(123, 45);
    // Size and the next keystrokes travel in order, but the agent applies the resize beside the
    // shell's input: give it a moment before asking.
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.input.write_all(b"stty size\r").await.unwrap();
    read_until(&mut s, "45 123\r\n").await;
    s.control.terminate();
    let (mut out, ..) = s.into_parts();
    let mut v = Vec::new();
    let _ = timeout(T, out.read_to_end(&mut v)).await;
}

/// Deterministic test data.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `payload` into `head -c N` and reads N bytes back: the data crosses both ways.
async fn round_trip(
    s: ClientSession,
    payload: Vec<u8>,
) -> (Vec<u8>, ssm_tokio::Outcome, Vec<SessionEvent>) {
    let (mut out, _err, mut input, mut events, _c, fin) = s.into_parts();
    let writer = tokio::spawn(async move {
        input.write_all(&payload).await.unwrap();
        input
    });
    let ev = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(e) = events.next().await {
            v.push(e);
        }
        v
    });
    let mut got = Vec::new();
    out.read_to_end(&mut got).await.unwrap();
    let _input = writer.await.unwrap();
    let outcome = fin.wait().await.expect("session ok");
    (got, outcome, ev.await.unwrap())
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

async fn ten_mb(faults: Option<Faults>, tls: bool) -> Duration {
    let n_env = std::env::var("SSM_TEST_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let n = n_env.unwrap_or(10) * 1024 * 1024;
    let faulty = faults.is_some();
    let emu = emulator(EmulatorConfig {
        pacing: None,
        faults,
        tls,
        ..Default::default()
    })
    .await;
    let payload = data(n, 0x5eed);
    let want = sha(&payload);
    let target = emu
        .start_session(&StartSession::non_interactive(format!("head -c {n}")))
        .unwrap();
    let started = std::time::Instant::now();
    let s = ssm_tokio::connect(
        target,
        ConnectOptions {
            tls: emu.client_tls(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (got, outcome, _) = timeout(Duration::from_secs(240), round_trip(s, payload))
        .await
        .expect("10 MB round trip in time");
    let took = started.elapsed();
    assert_eq!(got.len(), n);
    assert_eq!(sha(&got), want, "data corrupted");
    assert_eq!(outcome.exit_code, Some(0));
    eprintln!(
        "{} MiB each way (faults: {faulty}, tls: {tls}): {took:?}",
        n >> 20
    );
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_mb_both_ways_with_faults() {
    ten_mb(Some(Faults::mild(42)), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_mb_both_ways_clean() {
    ten_mb(None, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_and_reconnect_loses_nothing() {
    const N: usize = 2 * 1024 * 1024;
    let emu = emulator(EmulatorConfig {
        pacing: None,
        faults: Some(Faults {
            seed: 9,
            cut_after: Some(1500),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let target = emu
        .start_session(&StartSession::non_interactive(format!("head -c {N}")))
        .unwrap();
    let id = Emulator::session_id_of(target.stream_url().as_str())
        .unwrap()
        .to_string();
    let s = ssm_tokio::connect(
        target,
        ConnectOptions {
            tls: emu.client_tls(),
            resume: Some(emu.resume_fn(&id)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let payload = data(N, 7);
    let want = sha(&payload);
    let (got, outcome, events) = timeout(Duration::from_secs(120), round_trip(s, payload))
        .await
        .expect("in time");
    assert_eq!(got.len(), N);
    assert_eq!(sha(&got), want);
    assert_eq!(outcome.exit_code, Some(0));
    let lost = events
        .iter()
        .filter(|e| matches!(e, SessionEvent::TransportLost(_)))
        .count();
    let back = events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Reconnected))
        .count();
    assert!(lost >= 2, "expected several cuts, saw {lost}: {events:?}");
    assert_eq!(lost, back);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_fails_the_handshake_without_showing_it() {
    let emu = emulator(EmulatorConfig::default()).await;
    let good = emu.start_session(&StartSession::shell()).unwrap();
    let bad = grant(good.stream_url().as_str(), "not-the-token-xyzzy");
    let s = ssm_tokio::connect(
        bad,
        ConnectOptions {
            tls: emu.client_tls(),
            ..Default::default()
        },
    )
    .await
    .expect("the websocket opens");
    let err = timeout(T, s.wait()).await.expect("ends").unwrap_err();
    assert!(matches!(err, Error::HandshakeFailed(_)), "{err:?}");
    assert!(!err.to_string().contains("xyzzy"));
    assert!(!format!("{err:?}").contains("xyzzy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_an_untrusted_ca_fails_clearly() {
    let emu = emulator(EmulatorConfig::default()).await;
    let other = emulator(EmulatorConfig::default()).await;
    let target = emu.start_session(&StartSession::shell()).unwrap();
    let err = ssm_tokio::connect(
        target,
        ConnectOptions {
            tls: other.client_tls(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("tls failure with 127.0.0.1"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_and_plain_ws_policy() {
    init_tracing();
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = grant(&format!("wss://127.0.0.1:{port}/v1/data-channel/x"), "t");
    let err = ssm_tokio::connect(target, ConnectOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with(&format!("cannot reach 127.0.0.1:{port}")));

    let target = grant(&format!("ws://127.0.0.1:{port}/v1/data-channel/x"), "t");
    let err = ssm_tokio::connect(target, ConnectOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PlainWsRefused), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_ws_when_allowed() {
    let emu = emulator(EmulatorConfig {
        tls: false,
        ..Default::default()
    })
    .await;
    let target = emu
        .start_session(&StartSession::non_interactive("echo plain"))
        .unwrap();
    assert!(target.stream_url().as_str().starts_with("ws://"));
    let s = ssm_tokio::connect(
        target,
        ConnectOptions {
            tls: emu.client_tls(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (mut out, _e, _i, _ev, _c, fin) = s.into_parts();
    let mut v = Vec::new();
    timeout(T, out.read_to_end(&mut v)).await.unwrap().unwrap();
    assert_eq!(v, b"plain\n");
    assert_eq!(
        timeout(T, fin.wait()).await.unwrap().unwrap().exit_code,
        Some(0)
    );
}

/// A grant for a local URL (any host), with the session id its path names.
fn grant(url: &str, token: &str) -> Grant {
    let id = Emulator::session_id_of(url).expect("a data-channel url");
    let r =
        ssm_proto::model::StartSessionResponse::new(id, url, token, Endpoints::DangerousAnyHost)
            .expect("a valid local grant");
    Grant::from_borrowed(&r).expect("fits")
}
