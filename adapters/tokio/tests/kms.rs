//! KMS-encrypted sessions (PROTOCOL.md §6) between ssm-tokio's client and the emulator's agent,
//! the data key from the emulator's local KMS, over real TLS and real PTYs.
#![allow(
    clippy::std_instead_of_core,
    reason = "a std test; the workspace lint guards the no_std core"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use ssm_emulator::{Emulator, EmulatorConfig, StartSession};
use ssm_tokio::kms::{ClientKms, DataKeyRequest};
use ssm_tokio::{ClientSession, ConnectOptions, Error, HandshakeInfo, SessionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(60);
const KEY: &str = "alias/ssm-sessions";

async fn kms_emulator(require_challenge: bool) -> Emulator {
    Emulator::start(EmulatorConfig {
        kms_key_id: Some(KEY.into()),
        require_kms_challenge: require_challenge,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

async fn open(emu: &Emulator, req: &StartSession, kms: Option<ClientKms>) -> ClientSession {
    let grant = emu.start_session(req).expect("start session");
    ssm_tokio::connect(
        grant,
        ConnectOptions {
            tls: emu.client_tls(),
            kms,
            ..ConnectOptions::default()
        },
    )
    .await
    .expect("connect")
}

async fn handshake(s: &mut ClientSession) -> HandshakeInfo {
    timeout(T, async {
        loop {
            match s.events.next().await {
                Some(SessionEvent::HandshakeComplete(i)) => return i,
                Some(SessionEvent::Closed(r)) => panic!("closed before handshake: {r}"),
                None => panic!("events ended before handshake"),
                Some(_) => {}
            }
        }
    })
    .await
    .expect("handshake in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_shell() {
    let emu = kms_emulator(true).await;
    let req = StartSession::shell();
    let mut s = open(&emu, &req, emu.client_kms(&req.target)).await;
    let info = handshake(&mut s).await;
    assert!(info.encrypted, "{info:?}");
    assert!(info.customer_message.contains("encrypted"), "{info:?}");
    s.input.write_all(b"echo sealed-$((6*7))\r").await.unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    timeout(T, async {
        while !String::from_utf8_lossy(&all).contains("sealed-42") {
            let n = s.output.read(&mut buf).await.unwrap();
            assert!(n > 0, "eof: {}", String::from_utf8_lossy(&all));
            all.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the shell answers");
    s.input.write_all(b"exit\r").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_command_keeps_stderr_apart_and_its_exit_code() {
    let emu = kms_emulator(false).await;
    let req = StartSession::non_interactive("echo to-out; echo to-err >&2; exit 3");
    let s = open(&emu, &req, emu.client_kms(&req.target)).await;
    let (o, e, outcome) = common::command_to_end(s).await;
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(o, "to-out\n");
    assert_eq!(e, "to-err\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_sessions_stay_in_the_clear() {
    let emu = kms_emulator(true).await;
    let req = StartSession::port_forwarding(9);
    // No KMS hook at all: a port session must not need one.
    let mut s = open(&emu, &req, None).await;
    let info = handshake(&mut s).await;
    assert!(!info.encrypted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_kms_gets_a_clear_refusal() {
    let emu = kms_emulator(false).await;
    let s = open(&emu, &StartSession::shell(), None).await;
    let err = timeout(T, s.finished.wait())
        .await
        .expect("ends")
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        matches!(err, Error::ChannelClosed(_) | Error::HandshakeFailed(_)),
        "{err:?}"
    );
    assert!(text.to_lowercase().contains("kms"), "{text}");
}

/// A data key bound to another context (here: another target) does not decrypt at the agent,
/// as in AWS: the session fails with a clear error, never in the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_for_another_context_is_refused() {
    let emu = kms_emulator(false).await;
    let req = StartSession::shell();
    let honest = emu.client_kms("i-someone-else").expect("kms");
    let s = open(&emu, &req, Some(honest)).await;
    let err = timeout(T, s.finished.wait())
        .await
        .expect("ends")
        .expect_err("refused");
    assert!(err.to_string().to_lowercase().contains("kms"), "{err}");
}

/// What the hook is asked for: the agent's key, 64 bytes, and the exact context with the
/// challenge; a hook that fails ends the session with its (cut) message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_gets_the_exact_request_and_its_failure_is_reported() {
    let emu = kms_emulator(true).await;
    let req = StartSession::shell();
    let seen: Arc<std::sync::Mutex<Option<DataKeyRequest>>> = Default::default();
    let log = seen.clone();
    let failing = ClientKms {
        target: req.target.clone(),
        generate_data_key: Arc::new(move |r| {
            *log.lock().unwrap() = Some(r);
            Box::pin(async {
                Err(std::io::Error::other(format!(
                    "AccessDenied: {}",
                    "x".repeat(5000)
                )))
            })
        }),
    };
    let s = open(&emu, &req, Some(failing)).await;
    let err = timeout(T, s.finished.wait())
        .await
        .expect("ends")
        .expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("AccessDenied"), "{text}");
    assert!(
        text.len() < 1000,
        "the hook's message is cut: {} bytes",
        text.len()
    );
    let r = seen.lock().unwrap().clone().expect("the hook was called");
    assert_eq!(r.key_id, KEY);
    assert_eq!(r.number_of_bytes, 64);
    let keys: Vec<&str> = r
        .encryption_context
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "aws:ssm:SessionId",
            "aws:ssm:TargetId",
            "aws:ssm:RandomChallenge"
        ]
    );
    assert_eq!(r.encryption_context[1].1, req.target);
}

/// Cuts and reconnects keep the keys: no second handshake, every byte once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_keep_the_keys() {
    const N: usize = 512 * 1024;
    let emu = Emulator::start(EmulatorConfig {
        kms_key_id: Some(KEY.into()),
        pacing: None,
        faults: Some(ssm_tokio::Faults {
            seed: 5,
            cut_after: Some(300),
            ..Default::default()
        }),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let req = StartSession::non_interactive(format!("head -c {N} | sha256sum"));
    let grant = emu.start_session(&req).unwrap();
    let id = Emulator::session_id_of(grant.stream_url().as_str())
        .unwrap()
        .to_string();
    let s = ssm_tokio::connect(
        grant,
        ConnectOptions {
            tls: emu.client_tls(),
            resume: Some(emu.resume_fn(&id)),
            kms: emu.client_kms(&req.target),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let payload: Vec<u8> = (0..N).map(|i| (i * 7 % 251) as u8).collect();
    let want = {
        use sha2::Digest;
        sha2::Sha256::digest(&payload)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let (mut out, _err, mut inp, mut events, _c, fin) = s.into_parts();
    let writer = tokio::spawn(async move {
        inp.write_all(&payload).await.unwrap();
        inp.shutdown().await.unwrap();
        inp
    });
    let mut got = Vec::new();
    timeout(Duration::from_secs(120), out.read_to_end(&mut got))
        .await
        .expect("in time")
        .unwrap();
    let _inp = writer.await.unwrap();
    let outcome = timeout(T, fin.wait()).await.expect("ends").expect("ok");
    assert_eq!(outcome.exit_code, Some(0));
    assert!(
        String::from_utf8_lossy(&got).starts_with(&want),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let mut handshakes = 0;
    let mut cuts = 0;
    while let Ok(Some(e)) = timeout(Duration::from_millis(100), events.next()).await {
        match e {
            SessionEvent::HandshakeComplete(i) => {
                assert!(i.encrypted);
                handshakes += 1;
            }
            SessionEvent::TransportLost(_) => cuts += 1,
            _ => {}
        }
    }
    assert_eq!(handshakes, 1, "one handshake across {cuts} cuts");
    assert!(cuts >= 1, "the faults cut the connection");
}
