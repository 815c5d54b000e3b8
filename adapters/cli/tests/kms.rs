//! KMS-encrypted sessions through the binary (PROTOCOL.md §6): the emulator requires KMS
//! (`--kms-key-id`, `--require-kms-challenge`), the client obtains its data key with the AWS
//! SDK's KMS client (`GenerateDataKey` on the emulator's local KMS, signed with the session's
//! credentials), and port sessions stay in the clear.

#![allow(
    clippy::std_instead_of_core,
    reason = "std test code; the lint is for the no_std core"
)]

mod common;

use common::{cmd, run, EmulatorProcess, BIN, TEST_KEY_ID, TEST_SECRET};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

const KMS: [&str; 3] = [
    "--kms-key-id",
    "alias/ssm-sessions",
    "--require-kms-challenge",
];

#[test]
fn encrypted_command_splits_stderr_and_keeps_the_exit_code() {
    let r = run(
        cmd(Path::new(BIN))
            .arg("demo")
            .args(KMS)
            .args(["--command", "echo sealed-$((6*7)); echo oops >&2; exit 3"]),
        b"",
        60,
    );
    assert_eq!(r.code(), 3, "{r:?}");
    assert_eq!(r.stdout, "sealed-42\n");
    assert!(r.stderr.contains("oops\n"), "{}", r.stderr);
    assert!(
        r.stderr.contains("this session is encrypted with AWS KMS"),
        "{}",
        r.stderr
    );
}

#[test]
fn encrypted_shell_reads_piped_stdin() {
    let r = run(
        cmd(Path::new(BIN)).arg("demo").args(KMS),
        b"echo piped-$((2+3))\n",
        60,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.stdout.contains("piped-5"), "{}", r.stdout);
    assert!(r.stderr.contains("encrypted with AWS KMS"), "{}", r.stderr);
}

/// A port session under a KMS-requiring configuration runs unencrypted, as the agent does.
#[test]
fn port_sessions_are_not_encrypted() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let mut child = cmd(Path::new(BIN))
        .args([
            "demo",
            "--forward",
            &format!("127.0.0.1:{target}"),
            "--stdio",
        ])
        .args(KMS)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"through-in-the-clear").unwrap();
    let mut back = [0u8; 20];
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = stdout.read_exact(&mut back).map(|()| back);
        let _ = tx.send(r);
    });
    let back = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("echo within 30 s")
        .unwrap();
    assert_eq!(&back, b"through-in-the-clear");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("encrypted"), "{stderr}");
}

/// `start` against a separate strict emulator: the data key comes from KMS through the SDK,
/// signed with the same keys as the SSM calls (the emulator checks the `kms` scope).
#[test]
fn start_against_a_strict_emulator_gets_its_key_through_the_sdk() {
    let emu = strict_kms_emulator();
    let r = run(
        cmd(Path::new(BIN)).args(start_args(&emu.endpoint, "echo out; exit 5")),
        b"",
        60,
    );
    assert_eq!(r.code(), 5, "{r:?}");
    assert_eq!(r.stdout, "out\n");
    assert!(r.stderr.contains("encrypted with AWS KMS"), "{}", r.stderr);
    assert!(!r.stderr.contains(TEST_SECRET));
}

/// When KMS refuses the data key (here: the SSM calls may go to the emulator, the KMS calls are
/// sent to an endpoint that refuses them), the session ends with a clear error and never runs
/// in the clear.
#[test]
fn a_refused_kms_call_ends_the_session_clearly() {
    let emu = strict_kms_emulator();
    // KMS on another emulator, which holds no such key: GenerateDataKey is refused.
    let other = EmulatorProcess::start(&["--no-tls", "--kms-key-id", "alias/another-key"]);
    let r = run(
        cmd(Path::new(BIN))
            .env("AWS_ENDPOINT_URL_SSM", &emu.endpoint)
            .env("AWS_ENDPOINT_URL_KMS", &other.endpoint)
            .args(start_args_without_endpoint("echo must-not-run")),
        b"",
        60,
    );
    assert_ne!(r.code(), 0, "{r:?}");
    assert!(!r.stdout.contains("must-not-run"), "{}", r.stdout);
    assert!(r.stderr.contains("NotFoundException"), "{}", r.stderr);
    assert!(r.stderr.to_lowercase().contains("kms"), "{}", r.stderr);
}

fn strict_kms_emulator() -> EmulatorProcess {
    let keys = format!("{TEST_KEY_ID}:{TEST_SECRET}");
    EmulatorProcess::start(&[
        "--no-tls",
        "--credentials",
        keys.as_str(),
        "--kms-key-id",
        "alias/ssm-sessions",
        "--require-kms-challenge",
    ])
}

/// `ssm-session start ... --command` against `endpoint` (`--endpoint-url`: SSM and KMS both).
fn start_args(endpoint: &str, command: &str) -> Vec<String> {
    let mut a = start_args_without_endpoint(command);
    a.extend(["--endpoint-url".to_owned(), endpoint.to_owned()]);
    a
}

/// The same without `--endpoint-url`: the environment names the endpoints
/// (`AWS_ENDPOINT_URL_SSM`, `AWS_ENDPOINT_URL_KMS`).
fn start_args_without_endpoint(command: &str) -> Vec<String> {
    [
        "start",
        "--target",
        "i-0123456789abcdef0",
        "--region",
        "us-east-1",
        "--document-name",
        "AWS-StartNonInteractiveCommand",
        "--parameters",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([serde_json::json!({ "command": [command] }).to_string()])
    .collect()
}

/// At trace level the SDK would print whole answers (StartSession's token, GenerateDataKey's
/// plaintext key) and the WebSocket library whole messages: none of that reaches the log.
#[test]
fn trace_logs_carry_no_token_and_no_data_key() {
    let r = run(
        cmd(Path::new(BIN))
            .env("SSM_SESSION_LOG", "trace")
            .arg("demo")
            .args(KMS)
            .args(["--command", "echo traced"]),
        b"",
        60,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.stdout, "traced\n");
    assert!(r.stderr.len() > 5_000, "trace logging did not happen");
    for needle in [
        "TokenValue",
        "Plaintext",
        "emulator-secret",
        "X-Amz-Security-Token",
    ] {
        assert!(!r.stderr.contains(needle), "{needle} is in the logs");
    }
}
