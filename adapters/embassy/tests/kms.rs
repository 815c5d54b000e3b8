//! KMS session encryption (PROTOCOL.md §6) from the embassy adapter against the tokio emulator
//! requiring KMS with the challenge: the application answers `Event::DataKeyNeeded` itself, here
//! with the emulator's in-process KMS (`Emulator::client_kms`), as firmware would over its own
//! HTTPS client.
#![cfg(all(feature = "tls", feature = "kms"))]

mod common;

use common::api::EmulatorSource;
use embassy_futures::join::{join, join3};
use embedded_io_async::Read;
use ssm_embassy::{CloseReason, Config, Event, Resources, Session, StreamUrls};
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
    /// `Event::DataKeyNeeded`s and `Event::HandshakeComplete`s seen.
    key_requests: u32,
    handshakes: u32,
    /// ResumeSession calls.
    resumes: u32,
}

/// The data channel the emulator cuts after this many frames, every time, and the device
/// resumes with ResumeSession through its own API client.
#[derive(Clone, Copy)]
struct Cuts(u64);

async fn kms_session(
    command: &str,
    answer: Answer,
) -> (Result<CloseReason, ssm_embassy::Error>, Seen) {
    kms_session_with(command, answer, &[], None).await
}

/// As [`kms_session`], writing `input` to the command while its output is read, and with
/// `cuts`, resuming each time the emulator cuts the data channel.
async fn kms_session_with(
    command: &str,
    answer: Answer,
    input: &[u8],
    cuts: Option<Cuts>,
) -> (Result<CloseReason, ssm_embassy::Error>, Seen) {
    let emu = Emulator::start(EmulatorConfig {
        kms_key_id: Some(KEY_ID.into()),
        require_kms_challenge: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    emu.set_faults(cuts.map(|Cuts(n)| ssm_tokio::Faults {
        seed: 3,
        cut_after: Some(n),
        ..ssm_tokio::Faults::default()
    }));
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
    let mut source = match cuts {
        Some(_) => {
            let clock = common::api::system_clock();
            let (api, ca) = common::api::emulator_api(&emu, common::api::CREDS, clock);
            let api_conn = common::tls_to_localhost(emu.addr().port(), ca).await;
            Some(EmulatorSource::new(api, api_conn, ca))
        }
        None => None,
    };

    let app = async move {
        let s: Session<'static> = session;
        let keying = async {
            let (mut request, mut key_requests, mut handshakes) = (None, 0, 0);
            while let Some(e) = s.next_event().await {
                if e == Event::HandshakeComplete {
                    handshakes += 1;
                }
                if e != Event::DataKeyNeeded {
                    continue;
                }
                key_requests += 1;
                if key_requests > 1 {
                    // Counted: the test fails on it; a second key has no request to answer.
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
            (request, key_requests, handshakes)
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
        let writing = async {
            if !input.is_empty() {
                let mut w = s;
                embedded_io_async::Write::write_all(&mut w, input)
                    .await
                    .expect("input written");
            }
        };
        let ((request, key_requests, handshakes), output, ()) =
            join3(keying, reading, writing).await;
        Seen {
            request,
            output,
            encrypted: s.with_engine(|e| e.is_encrypted()),
            close_message: s.with_engine(|e| e.close_message().to_string()),
            exit_code: s.exit_code(),
            key_requests,
            handshakes,
            resumes: 0,
        }
    };
    let run = async {
        match source.as_mut() {
            Some(source) => {
                runner
                    .run_resuming(session_id, source, StreamUrls::LoopbackForTests)
                    .await
            }
            None => runner.run().await,
        }
    };
    let (run, mut seen) =
        tokio::time::timeout(core::time::Duration::from_secs(120), join(run, app))
            .await
            .expect("session stuck");
    seen.resumes = source.map_or(0, |s| s.resumes.get());
    drop(emu);
    (run, seen)
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

/// The hourly close does not cost the keys: through the emulator's cuts the device resumes with
/// ResumeSession and carries on sealed with the one data key it was given (one key request,
/// one handshake), a megabyte each way with SHA-256 equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_keep_the_data_key() {
    let each_way = common::EachWay::new("ssm-embassy-kms");
    // About 2 600 frames both ways; a cut every 500.
    let (run, seen) = kms_session_with(
        &each_way.command("sleep 2; exit 4"),
        Answer::Kms,
        &each_way.up,
        Some(Cuts(500)),
    )
    .await;
    assert_eq!(run, Ok(CloseReason::ChannelClosed));
    assert!(seen.encrypted, "the session must run sealed");
    each_way.check(&seen.output);
    assert_eq!(seen.exit_code, Some(4));
    assert!(seen.resumes >= 3, "only {} resumes", seen.resumes);
    assert_eq!(seen.key_requests, 1, "across {} resumes", seen.resumes);
    assert_eq!(seen.handshakes, 1, "across {} resumes", seen.resumes);
}
