//! Credentials and tokens never reach the log from the device's API calls: StartSession,
//! the session run with a signed upgrade, ResumeSession and TerminateSession against the
//! emulator, with every `log` record captured at trace level (ssm-embassy, ssm-proto,
//! embedded-tls), searched for any 8-byte piece of the secret key, the credentials' session
//! token, the session tokens the service answered and the signatures sent.
#![cfg(all(feature = "tls", feature = "log"))]

mod common;

use common::capture;
use embassy_futures::join::join;
use ssm_embassy::{ApiBuffers, Clock, CloseReason, OwnedCredentials};
use ssm_emulator::{Emulator, EmulatorConfig};

const SECRET: &str = "SECRET-CANARY-1a2b3c4d5e6f7a8b9c0d1e2f";
const STS_TOKEN: &str = "STS-CANARY-9f8e7d6c5b4a39281706f5e4d3c2b1a0";

fn leak<T>(t: T) -> &'static mut T {
    Box::leak(Box::new(t))
}

#[tokio::test(flavor = "current_thread")]
async fn api_calls_log_no_secret() {
    capture::install();
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let port = emu.addr().port();
    let owned: &'static OwnedCredentials =
        leak(OwnedCredentials::new("AKIDEXAMPLE", SECRET, Some(STS_TOKEN)).unwrap());
    // An unknown clock: the emulator sends no Date, so this signs with the epoch; it accepts it.
    let (api, ca) = common::api::emulator_api(&emu, owned.as_credentials(), leak(Clock::unknown()));
    let api_conn = common::tls_to_localhost(port, ca).await;
    let response = common::api::start_command(&api, api_conn, "echo logged-ok").await;
    let mut secrets: Vec<String> = vec![SECRET.into(), STS_TOKEN.into()];
    secrets.push(response.token().expose_secret().to_string());
    let session_id = response.session_id().to_string();

    let (session, runner, signature) =
        common::api::open_session(&api, &response, port, ca, 0x106).await;
    secrets.push(signature.to_string());
    let app = common::api::read_all(session);
    let (run, out) = join(runner.run(), app).await;
    assert_eq!(run, Ok(CloseReason::ChannelClosed));
    assert_eq!(out, b"logged-ok\n");

    let mut buffers = ApiBuffers::<4096, 2048>::new();
    let resumed = api
        .resume_session(&mut *api_conn, &session_id, &mut buffers)
        .await
        .unwrap();
    secrets.push(resumed.token().expose_secret().to_string());
    let mut buffers = ApiBuffers::<4096, 2048>::new();
    api.terminate_session(&mut *api_conn, &session_id, &mut buffers)
        .await
        .unwrap();

    // The device's records only: the emulator and its TLS server run in this process too.
    let logs: String = capture::logs()
        .lines()
        .filter(|l| {
            let target = l.split(' ').nth(1).unwrap_or("");
            ["ssm_embassy", "ssm_proto", "embedded_tls"]
                .iter()
                .any(|t| target.starts_with(t))
        })
        .collect::<Vec<_>>()
        .join("\n");
    // The capture saw the calls and the session (else the search proves nothing).
    for expected in ["websocket open", "embedded_tls", "ssm_embassy"] {
        assert!(
            logs.contains(expected),
            "no {expected:?} in the log:\n{logs}"
        );
    }
    let debug = format!("{api:?} {owned:?} {response:?} {resumed:?}");
    for secret in &secrets {
        assert_eq!(
            capture::leaks(secret, &logs),
            Vec::<&str>::new(),
            "a secret in the log:\n{logs}"
        );
        assert_eq!(
            capture::leaks(secret, &debug),
            Vec::<&str>::new(),
            "a secret in Debug: {debug}"
        );
    }
}
