//! KMS session encryption (PROTOCOL.md §6) from the embassy adapter against the tokio emulator
//! requiring KMS with the challenge: the application answers `Event::DataKeyNeeded` itself, here
//! with the emulator's in-process KMS (`Emulator::client_kms`), as firmware would over its own
//! HTTPS client.
#![cfg(all(feature = "tls", feature = "kms"))]

mod common;

use embassy_futures::join::join;
use embedded_io_async::Read;
use ssm_embassy::{CloseReason, Config, Event, Resources, Session};
use ssm_emulator::{Emulator, EmulatorConfig, StartSession};
use ssm_proto::session::{Encryption, EncryptionFailure};
use ssm_tokio::kms::{ClientKms, DataKeyRequest};

const KEY_ID: &str = "alias/embassy-test";

/// How the application answers the key request.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Kms,
    /// A key generated for another target: the agent's KMS Decrypt must fail on the context.
    WrongTarget,
    Refuse,
}

/// What the application saw.
struct Seen {
    request: Option<DataKeyRequest>,
    output: Vec<u8>,
    encrypted: bool,
    /// The agent's `channel_closed` text.
    close_message: String,
    exit_code: Option<i32>,
}

async fn kms_session(
    command: &str,
    answer: Answer,
) -> (Result<CloseReason, ssm_embassy::Error>, Seen) {
    let emu = Emulator::start(EmulatorConfig {
        kms_key_id: Some(KEY_ID.into()),
        require_kms_challenge: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let request = StartSession::non_interactive(command.to_string());
    let target_id = request.target.clone();
    let kms: ClientKms = emu
        .client_kms(&target_id)
        .expect("the emulator has a KMS key");
    let grant = emu.start_session(&request).unwrap();
    let (ca, response) = common::device_view(&emu, &grant);
    let session_id = response.session_id();
    let mut config = Config::from_response(&response);
    config.session.encryption = Encryption::Kms {
        require_challenge: true,
    };
    let conn = common::tls_to_localhost(config.port, ca).await;
    let resources: &'static mut Resources = Box::leak(Box::new(Resources::new()));
    let (session, runner) = ssm_embassy::new(conn.split(), config, resources, 0x5eed_4b4d);

    let app = async move {
        let s: Session<'static> = session;
        let keying = async {
            let mut request = None;
            while let Some(e) = s.next_event().await {
                if e != Event::DataKeyNeeded {
                    continue;
                }
                let target = match answer {
                    Answer::WrongTarget => "i-0another",
                    _ => target_id.as_str(),
                };
                let r = s
                    .data_key_request(session_id, target, |r| DataKeyRequest {
                        key_id: r.key_id.to_string(),
                        number_of_bytes: r.number_of_bytes,
                        encryption_context: r
                            .context
                            .entries()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    })
                    .expect("a request after DataKeyNeeded");
                request = Some(r.clone());
                match answer {
                    Answer::Kms | Answer::WrongTarget => {
                        let key = (kms.generate_data_key)(r).await.expect("the KMS answers");
                        s.set_data_key(&key.plaintext, &key.ciphertext_blob)
                            .expect("a usable key");
                        // A second answer has nothing to answer.
                        assert_eq!(
                            s.set_data_key(&key.plaintext, &key.ciphertext_blob),
                            Err(ssm_proto::kms::Error::Unexpected)
                        );
                    }
                    Answer::Refuse => s.refuse_data_key(),
                }
            }
            request
        };
        let reading = async {
            let mut out = Vec::new();
            let mut buf = [0u8; 1024];
            let mut r = s;
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => return out,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        };
        let (request, output) = join(keying, reading).await;
        Seen {
            request,
            output,
            encrypted: s.with_engine(|e| e.is_encrypted()),
            close_message: s.with_engine(|e| e.close_message().to_string()),
            exit_code: s.exit_code(),
        }
    };
    let out = tokio::time::timeout(core::time::Duration::from_secs(60), join(runner.run(), app))
        .await
        .expect("session stuck");
    drop(emu);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_command_with_the_applications_data_key() {
    let (run, seen) = kms_session("echo sealed-both-ways; exit 5", Answer::Kms).await;
    assert_eq!(run, Ok(CloseReason::ChannelClosed));
    let request = seen.request.expect("the engine asked for a data key");
    assert_eq!(request.key_id, KEY_ID);
    assert_eq!(request.number_of_bytes, 64);
    let keys: Vec<&str> = request
        .encryption_context
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        keys.len(),
        3,
        "session id, target id and challenge: {keys:?}"
    );
    assert!(request
        .encryption_context
        .iter()
        .any(|(_, v)| v == "i-0emulator"));
    assert!(seen.encrypted, "the session must run sealed");
    assert_eq!(String::from_utf8_lossy(&seen.output), "sealed-both-ways\n");
    assert_eq!(seen.exit_code, Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_data_key_ends_the_session_with_key_refused() {
    let (run, seen) = kms_session("echo never; exit 0", Answer::Refuse).await;
    assert!(seen.request.is_some());
    assert_eq!(
        run,
        Ok(CloseReason::Encryption(EncryptionFailure::KeyRefused))
    );
    assert!(seen.output.is_empty(), "no output without a key");
    assert!(!seen.encrypted);
    assert_eq!(seen.exit_code, None);
}

/// The context is what binds the key: a key asked for another target is generated (the
/// application's KMS does not know better) and the agent cannot decrypt it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_for_another_target_does_not_open_the_session() {
    let (run, seen) = kms_session("echo never; exit 0", Answer::WrongTarget).await;
    assert!(seen
        .request
        .expect("asked")
        .encryption_context
        .iter()
        .any(|(_, v)| v == "i-0another"));
    assert!(seen.output.is_empty(), "no output without the agent's key");
    assert_eq!(seen.exit_code, None);
    // The agent tells the client with `channel_closed` before the handshake completes.
    assert_eq!(run, Ok(CloseReason::ChannelClosed));
    assert!(
        !seen.encrypted,
        "the client closes before any sealed payload"
    );
    assert!(
        seen.close_message.contains("kms"),
        "the agent says why: {:?}",
        seen.close_message
    );
    eprintln!("wrong target: {:?}", seen.close_message);
}
