//! The binary as users and the AWS CLI run it: real processes, the emulator on loopback.

#![allow(
    clippy::std_instead_of_core,
    reason = "std test code; the lint is for the no_std core"
)]

mod common;

use common::{cmd, run, run_with, EmulatorProcess, TempDir, BIN};
use std::path::Path;

const TOKEN_FIELD: &str = "\"TokenValue\"";

/// The AWS CLI's argv for the plugin: response, region, operation, profile, parameters, endpoint.
fn plugin_argv<'a>(response: &'a str, params: &'a str, endpoint: &'a str) -> [&'a str; 6] {
    [response, "us-east-1", "StartSession", "", params, endpoint]
}

/// `stdout` is exactly the output of `seq 1 n`.
fn assert_seq(stdout: &str, n: usize) {
    let expected: String = (1..=n).map(|i| format!("{i}\n")).collect();
    assert!(
        stdout == expected,
        "output differs ({} bytes, expected {})",
        stdout.len(),
        expected.len()
    );
}

fn params(command: &str) -> String {
    serde_json::json!({
        "Target": "i-0123456789abcdef0",
        "DocumentName": "AWS-StartNonInteractiveCommand",
        "Parameters": {"command": [command]}
    })
    .to_string()
}

fn token_of(response: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(response).unwrap();
    v["TokenValue"].as_str().unwrap().to_owned()
}

fn version_parts(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap()).collect()
}

#[test]
fn plugin_version_is_a_plain_number_above_the_cli_threshold() {
    let dir = TempDir::new("version");
    let r = run(cmd(&dir.plugin_link()).arg("--version"), b"", 10);
    assert_eq!(r.code(), 0);
    let v = r.stdout.trim_end_matches('\n');
    assert!(
        !v.is_empty()
            && v.split('.').count() <= 4
            && v.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
        "the AWS CLI parses ^\\d+(\\.\\d+){{0,3}}$, got {:?}",
        r.stdout
    );
    // Above 1.2.764.0: no "outdated plugin" warning, token passed through the environment.
    assert!(version_parts(v) > vec![1, 2, 764, 0], "{v}");
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    // The explicit subcommand answers the same.
    let r2 = run(cmd(Path::new(BIN)).args(["plugin", "--version"]), b"", 10);
    assert_eq!(r2.stdout, r.stdout);
}

#[test]
fn plugin_without_arguments_says_installed() {
    let dir = TempDir::new("installed");
    let r = run(&mut cmd(&dir.plugin_link()), b"", 10);
    assert_eq!(r.code(), 0);
    assert!(r.stdout.contains("installed successfully"), "{}", r.stdout);
}

#[test]
fn plugin_json_argument_runs_the_command_and_propagates_its_exit_code() {
    let emu = EmulatorProcess::start(&["--no-tls"]);
    let p = params("echo out; echo err >&2; exit 7");
    let response = emu.start_session(&p);
    let token = token_of(&response);
    let dir = TempDir::new("json");
    let r = run(
        cmd(&dir.plugin_link()).args(plugin_argv(&response, &p, &emu.endpoint)),
        b"",
        30,
    );
    assert_eq!(r.code(), 7, "{r:?}");
    assert_eq!(r.stdout, "out\n");
    assert!(r.stderr.contains("err\n"), "{}", r.stderr);
    assert!(
        r.stderr.contains("Starting session with SessionId: "),
        "{}",
        r.stderr
    );
    assert!(
        !r.stdout.contains("Starting session"),
        "status text must stay off stdout"
    );
    assert!(!r.stderr.contains(&token) && !r.stdout.contains(&token));
}

#[test]
fn plugin_environment_form_over_tls_with_aws_ca_bundle() {
    let emu = EmulatorProcess::start(&[]);
    let p = params("echo via-env");
    let response = emu.start_session(&p);
    assert!(response.contains("wss://"), "{response}");
    let token = token_of(&response);
    let dir = TempDir::new("env");
    let r = run(
        cmd(&dir.plugin_link())
            .env("AWS_SSM_START_SESSION_RESPONSE", &response)
            .env("AWS_CA_BUNDLE", emu.ca_file.as_ref().unwrap())
            .args(plugin_argv(
                "AWS_SSM_START_SESSION_RESPONSE",
                &p,
                &emu.endpoint,
            )),
        b"",
        30,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.stdout, "via-env\n");
    assert!(!r.stderr.contains(&token));
}

#[test]
fn tls_failure_without_the_ca_is_one_line_and_exit_251() {
    let emu = EmulatorProcess::start(&[]);
    let p = params("echo never");
    let response = emu.start_session(&p);
    let dir = TempDir::new("tls");
    let r = run(
        cmd(&dir.plugin_link()).args(plugin_argv(&response, &p, &emu.endpoint)),
        b"",
        30,
    );
    assert_eq!(r.code(), 251, "{r:?}");
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("ssm-session:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", r.stderr);
    assert!(errors[0].contains("tls"), "{}", errors[0]);
    assert!(!r.stderr.contains("panicked") && !r.stderr.contains("backtrace"));
}

#[test]
fn bad_token_is_an_authentication_failure() {
    let emu = EmulatorProcess::start(&["--no-tls"]);
    let p = params("echo never");
    let response = emu.start_session(&p);
    let token = token_of(&response);
    let forged = response.replace(&token, "forged-token-value");
    assert!(forged.contains(TOKEN_FIELD));
    let dir = TempDir::new("badtoken");
    let r = run(
        cmd(&dir.plugin_link()).args(plugin_argv(&forged, &p, &emu.endpoint)),
        b"",
        30,
    );
    assert_eq!(r.code(), 252, "{r:?}");
    assert!(!r.stderr.contains("forged-token-value"), "{}", r.stderr);
    assert_eq!(
        r.stderr
            .lines()
            .filter(|l| l.starts_with("ssm-session:"))
            .count(),
        1,
        "{}",
        r.stderr
    );
}

#[test]
fn unreachable_stream_url_exits_250() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let response = serde_json::json!({
        "SessionId": "s-unreachable",
        "StreamUrl": format!("ws://127.0.0.1:{port}/v1/data-channel/s-unreachable?role=publish_subscribe"),
        "TokenValue": "tok-unreachable"
    })
    .to_string();
    let endpoint = format!("http://127.0.0.1:{port}");
    let r = run(
        cmd(Path::new(BIN)).args(plugin_argv(&response, "{}", &endpoint)),
        b"",
        30,
    );
    assert_eq!(r.code(), 250, "{r:?}");
    assert!(r.stderr.contains("cannot reach 127.0.0.1:"), "{}", r.stderr);
    assert!(!r.stderr.contains("tok-unreachable"));
}

#[test]
fn plain_ws_from_a_remote_endpoint_is_refused_before_connecting() {
    let response = serde_json::json!({
        "SessionId": "s-1",
        "StreamUrl": "ws://127.0.0.1:9/v1/data-channel/s-1",
        "TokenValue": "tok-1"
    })
    .to_string();
    let r = run(
        cmd(Path::new(BIN)).args(plugin_argv(
            &response,
            "{}",
            "https://ssm.us-east-1.amazonaws.com",
        )),
        b"",
        10,
    );
    assert_eq!(r.code(), 2, "{r:?}");
    // The core's parser refuses it under the remote endpoint's rule, naming the field only.
    assert!(
        r.stderr
            .contains("unusable session response: stream url scheme is not wss"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("tok-1") && !r.stderr.contains("127.0.0.1:9"));
}

#[test]
fn demo_command_output_and_exit_code() {
    let r = run(
        cmd(Path::new(BIN)).args([
            "demo",
            "--command",
            "echo hello-$((6*7)); echo oops >&2; exit 3",
        ]),
        b"",
        60,
    );
    assert_eq!(r.code(), 3, "{r:?}");
    assert_eq!(r.stdout, "hello-42\n");
    assert!(r.stderr.contains("oops\n"), "{}", r.stderr);
    let ok = run(
        cmd(Path::new(BIN)).args(["demo", "-c", "uname -s"]),
        b"",
        60,
    );
    assert_eq!(ok.code(), 0, "{ok:?}");
    assert_eq!(ok.stdout.trim(), "Linux");
}

#[test]
fn demo_shell_reads_piped_stdin_until_eof() {
    let r = run(
        cmd(Path::new(BIN)).arg("demo"),
        b"echo piped-$((2+3))\necho second-$((3+4))\n",
        60,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.stdout.contains("piped-5"), "{}", r.stdout);
    assert!(r.stdout.contains("second-7"), "{}", r.stdout);
    assert!(
        r.stderr.contains("Exiting session with sessionId"),
        "{}",
        r.stderr
    );
}

#[test]
fn help_documents_the_exit_codes() {
    let r = run(cmd(Path::new(BIN)).arg("--help"), b"", 10);
    assert_eq!(r.code(), 0);
    for code in ["250", "251", "252", "253", "254"] {
        assert!(
            r.stdout.contains(&format!("\n  {code} ")),
            "{code} missing:\n{}",
            r.stdout
        );
    }
}

#[test]
fn cut_connections_are_resumed_through_the_resume_session_api() {
    // The emulator drops the WebSocket after every 40 frames; the plugin must call ResumeSession
    // at the endpoint, reconnect with the new token, and lose nothing.
    let emu = EmulatorProcess::start(&["--no-tls", "--cut-after", "40"]);
    let p = params("seq 1 20000; exit 4");
    let response = emu.start_session(&p);
    let r = run(
        cmd(Path::new(BIN)).args(plugin_argv(&response, &p, &emu.endpoint)),
        b"",
        120,
    );
    assert_eq!(r.code(), 4, "{}", r.stderr);
    assert_seq(&r.stdout, 20000);
    assert!(r.stderr.contains("reconnected"), "{}", r.stderr);
}

#[test]
fn agent_closing_the_channel_early_exits_253() {
    let emu = EmulatorProcess::start(&["--no-tls"]);
    let p = params("sleep 30; echo never");
    let response = emu.start_session(&p);
    let v: serde_json::Value = serde_json::from_str(&response).unwrap();
    let id = v["SessionId"].as_str().unwrap().to_owned();
    let r = run_with(
        cmd(Path::new(BIN)).args(plugin_argv(&response, &p, &emu.endpoint)),
        b"",
        30,
        || {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let (status, body) =
                emu.call("TerminateSession", &format!("{{\"SessionId\":\"{id}\"}}"));
            assert_eq!(status, 200, "{body}");
        },
    );
    assert_eq!(r.code(), 253, "{r:?}");
    assert!(!r.stdout.contains("never"));
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("ssm-session:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", r.stderr);
}

#[test]
fn start_calls_the_api_signed_and_runs_the_session() {
    let emu = EmulatorProcess::start(&["--no-tls"]);
    let r = run(
        cmd(Path::new(BIN))
            .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "secret-key-never-shown")
            .args([
                "start",
                "--target",
                "i-0123456789abcdef0",
                "--region",
                "us-east-1",
                "--endpoint-url",
                &emu.endpoint,
                "--document-name",
                "AWS-StartNonInteractiveCommand",
                "--parameters",
                r#"{"command":["echo via-start; exit 5"]}"#,
            ]),
        b"",
        30,
    );
    assert_eq!(r.code(), 5, "{r:?}");
    assert_eq!(r.stdout, "via-start\n");
    assert!(!r.stderr.contains("secret-key-never-shown"));
}

#[test]
fn start_against_an_unreachable_endpoint_exits_250() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let r = run(
        cmd(Path::new(BIN)).args([
            "start",
            "--target",
            "i-1",
            "--region",
            "us-east-1",
            "--endpoint-url",
            &endpoint,
        ]),
        b"",
        30,
    );
    assert_eq!(r.code(), 250, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn output_survives_dropped_duplicated_and_reordered_frames() {
    let emu = EmulatorProcess::start(&[
        "--no-tls",
        "--drop",
        "0.05",
        "--duplicate",
        "0.05",
        "--reorder",
        "0.05",
        "--seed",
        "7",
    ]);
    let p = params("seq 1 30000; echo done >&2; exit 9");
    let response = emu.start_session(&p);
    let r = run(
        cmd(Path::new(BIN)).args(plugin_argv(&response, &p, &emu.endpoint)),
        b"",
        120,
    );
    assert_eq!(r.code(), 9, "{}", r.stderr);
    assert_seq(&r.stdout, 30000);
    assert!(r.stderr.contains("done\n"), "{}", r.stderr);
}
