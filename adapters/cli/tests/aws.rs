//! Real AWS credential sources against the strict emulator (`--credentials`: every API call and
//! every upgrade must be SigV4-signed with the right keys): environment keys, a static profile,
//! `credential_process`, `role_arn` + `source_profile` through the emulator's STS, a wrong
//! secret, unsigned upgrades, and routine closes (`--close-every`) with resumes.

#![allow(
    clippy::std_instead_of_core,
    reason = "std test code; the lint is for the no_std core"
)]

mod common;

use std::path::Path;

use common::{cmd, cmd_bare, run, EmulatorProcess, TempDir, BIN, TEST_KEY_ID, TEST_SECRET};
use sha2::{Digest, Sha256};

/// The strict emulator's keys: what [`cmd`] puts in the environment.
fn strict_emulator(extra: &[&str]) -> EmulatorProcess {
    let keys = format!("{TEST_KEY_ID}:{TEST_SECRET}");
    let mut args = vec!["--no-tls", "--credentials", keys.as_str()];
    args.extend_from_slice(extra);
    EmulatorProcess::start(&args)
}

/// `ssm-session start ... --command` arguments against `endpoint`.
fn start_args<'a>(endpoint: &'a str, command: &'a str) -> Vec<String> {
    [
        "start",
        "--target",
        "i-0123456789abcdef0",
        "--region",
        "us-east-1",
        "--endpoint-url",
        endpoint,
        "--document-name",
        "AWS-StartNonInteractiveCommand",
        "--parameters",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([serde_json::json!({ "command": [command] }).to_string()])
    .collect()
}

/// Shared config and credentials files in a temp directory.
struct Profiles {
    dir: TempDir,
}

impl Profiles {
    fn new(name: &str, config: &str, credentials: &str) -> Profiles {
        let dir = TempDir::new(name);
        std::fs::write(dir.0.join("config"), config).unwrap();
        std::fs::write(dir.0.join("credentials"), credentials).unwrap();
        Profiles { dir }
    }

    /// A command with these files and no other credentials.
    fn cmd(&self) -> std::process::Command {
        let mut c = cmd_bare(Path::new(BIN));
        c.env("AWS_CONFIG_FILE", self.dir.0.join("config"));
        c.env(
            "AWS_SHARED_CREDENTIALS_FILE",
            self.dir.0.join("credentials"),
        );
        c
    }
}

#[test]
fn environment_keys_sign_the_calls_and_the_upgrade() {
    let emu = strict_emulator(&[]);
    let r = run(
        cmd(Path::new(BIN)).args(start_args(&emu.endpoint, "echo env-ok; exit 5")),
        b"",
        30,
    );
    assert_eq!(r.code(), 5, "{}", r.stderr);
    assert_eq!(r.stdout, "env-ok\n");
}

#[test]
fn unsigned_upgrade_is_refused_by_the_strict_emulator() {
    let emu = strict_emulator(&[]);
    for off in [
        cmd(Path::new(BIN))
            .args(start_args(&emu.endpoint, "echo no"))
            .arg("--no-sign-upgrade"),
        cmd(Path::new(BIN))
            .args(start_args(&emu.endpoint, "echo no"))
            .env("SSM_SESSION_NO_SIGN_UPGRADE", "1"),
    ] {
        let r = run(off, b"", 30);
        assert_eq!(r.code(), 252, "{}", r.stderr);
        assert!(r.stderr.contains("http 403"), "{}", r.stderr);
        assert_eq!(r.stdout, "");
    }
}

#[test]
fn static_profile_from_the_shared_files() {
    let emu = strict_emulator(&[]);
    let p = Profiles::new(
        "static",
        "[profile dev]\nregion = us-east-1\n",
        &format!(
            "[dev]\naws_access_key_id = {TEST_KEY_ID}\naws_secret_access_key = {TEST_SECRET}\n"
        ),
    );
    let r = run(
        p.cmd()
            .args(start_args(&emu.endpoint, "echo profile-ok"))
            .args(["--profile", "dev"]),
        b"",
        30,
    );
    assert_eq!(r.code(), 0, "{}", r.stderr);
    assert_eq!(r.stdout, "profile-ok\n");
}

#[test]
fn wrong_secret_is_an_authentication_failure_naming_the_profile() {
    let emu = strict_emulator(&[]);
    let p = Profiles::new(
        "wrong",
        "[profile dev]\nregion = us-east-1\n",
        &format!("[dev]\naws_access_key_id = {TEST_KEY_ID}\naws_secret_access_key = not-the-secret-xyzzy\n"),
    );
    let r = run(
        p.cmd()
            .args(start_args(&emu.endpoint, "echo never"))
            .args(["--profile", "dev"]),
        b"",
        30,
    );
    assert_eq!(r.code(), 252, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("StartSession failed (http 403): InvalidSignatureException"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("profile dev"), "{}", r.stderr);
    assert!(!r.stderr.contains("not-the-secret-xyzzy"), "{}", r.stderr);
    // An unknown key id is the other error AWS gives.
    let r = run(
        cmd_bare(Path::new(BIN))
            .env("AWS_ACCESS_KEY_ID", "AKIDUNKNOWN")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .args(start_args(&emu.endpoint, "echo never")),
        b"",
        30,
    );
    assert_eq!(r.code(), 252, "{}", r.stderr);
    assert!(
        r.stderr.contains("UnrecognizedClientException"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", r.stderr);
}

#[test]
fn sso_profiles_are_told_to_log_in() {
    // No SSO cache: the SDK cannot load a token, and the message says what to run.
    let p = Profiles::new(
        "sso",
        "[profile corp]\nregion = us-east-1\nsso_session = corp\nsso_account_id = 123456789012\n\
         sso_role_name = Dev\n[sso-session corp]\nsso_region = us-east-1\n\
         sso_start_url = https://example.invalid/start\n",
        "",
    );
    let emu = strict_emulator(&[]);
    let r = run(
        p.cmd()
            .env("HOME", &p.dir.0)
            .args(start_args(&emu.endpoint, "echo never"))
            .args(["--profile", "corp"]),
        b"",
        30,
    );
    assert_eq!(r.code(), 252, "{}", r.stderr);
    assert!(
        r.stderr.contains("run `aws sso login --profile corp`"),
        "{}",
        r.stderr
    );
}

#[test]
fn credential_process_profile() {
    let emu = strict_emulator(&[]);
    let dir = TempDir::new("credproc");
    let script = dir.0.join("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho '{{\"Version\": 1, \"AccessKeyId\": \"{TEST_KEY_ID}\", \"SecretAccessKey\": \"{TEST_SECRET}\"}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = Profiles::new(
        "credproc-files",
        &format!(
            "[profile proc]\nregion = us-east-1\ncredential_process = {}\n",
            script.display()
        ),
        "",
    );
    let r = run(
        p.cmd()
            .args(start_args(&emu.endpoint, "echo process-ok"))
            .args(["--profile", "proc"]),
        b"",
        30,
    );
    assert_eq!(r.code(), 0, "{}", r.stderr);
    assert_eq!(r.stdout, "process-ok\n");
}

#[test]
fn role_profile_assumes_the_role_through_the_emulators_sts() {
    let emu = strict_emulator(&[]);
    let p = Profiles::new(
        "role",
        "[profile base]\nregion = us-east-1\n\
         [profile ops]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/ops\n\
         source_profile = base\n",
        &format!(
            "[base]\naws_access_key_id = {TEST_KEY_ID}\naws_secret_access_key = {TEST_SECRET}\n"
        ),
    );
    // The emulator only accepts the role's keys once STS issued them; the source keys would
    // pass too, so the emulator's log proves the role was assumed.
    let r = run(
        p.cmd()
            .env("AWS_ENDPOINT_URL_STS", &emu.endpoint)
            .env("SSM_SESSION_LOG", "aws_config=debug")
            .args(start_args(&emu.endpoint, "echo role-ok"))
            .args(["--profile", "ops"]),
        b"",
        30,
    );
    assert_eq!(r.code(), 0, "{}", r.stderr);
    assert_eq!(r.stdout, "role-ok\n");
    // aws-config logs the key id STS answered with: the emulator's issued `ASIAEMU...` keys.
    assert!(
        r.stderr
            .contains("provider_name: \"AssumeRoleProvider\", access_key_id: \"ASIAEMU"),
        "the role was not assumed through the emulator: {}",
        r.stderr
    );
}

#[test]
fn routine_closes_are_resumed_and_lose_nothing() {
    // 5 MB of output while the emulator closes the data channel every 2 s (1000 Bye).
    let emu = strict_emulator(&["--close-every", "2"]);
    let command = "head -c 5000000 /dev/zero | tr '\\0' 'z' | fold -w 100; echo; sleep 3";
    let r = run(
        cmd(Path::new(BIN)).args(start_args(&emu.endpoint, command)),
        b"",
        180,
    );
    assert_eq!(r.code(), 0, "{}", r.stderr);
    let expected: Vec<u8> = std::iter::repeat_n(
        {
            let mut line = vec![b'z'; 100];
            line.push(b'\n');
            line
        },
        50_000,
    )
    .flatten()
    .collect();
    assert_eq!(
        hex::encode(Sha256::digest(r.stdout.as_bytes())),
        hex::encode(Sha256::digest(&expected)),
        "{} bytes of stdout",
        r.stdout.len()
    );
    let resumes = r
        .stderr
        .matches("resumed after the data channel was closed by peer (1000 Bye)")
        .count();
    assert!(resumes >= 1, "no resume seen: {}", r.stderr);
    assert!(!r.stderr.contains("connection lost"), "{}", r.stderr);
}

#[test]
fn trace_logs_carry_no_credential_or_token() {
    // Lax emulator, so the test can call StartSession itself and know the token; the client
    // signs with a profile holding a session token, and the data channel is closed every
    // second so ResumeSession and re-signed upgrades are logged too.
    let emu = EmulatorProcess::start(&["--no-tls", "--close-every", "1"]);
    let p = Profiles::new(
        "trace-files",
        "[profile t]\nregion = us-east-1\n",
        &format!(
            "[t]\naws_access_key_id = {TEST_KEY_ID}\naws_secret_access_key = {TEST_SECRET}\n\
             aws_session_token = session-token-sentinel-42\n"
        ),
    );
    let params = serde_json::json!({
        "Target": "i-0123456789abcdef0",
        "DocumentName": "AWS-StartNonInteractiveCommand",
        "Parameters": {"command": ["sleep 3; echo traced"]}
    })
    .to_string();
    let response = emu.start_session(&params);
    let token = serde_json::from_str::<serde_json::Value>(&response).unwrap()["TokenValue"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = run(
        p.cmd()
            .env("SSM_SESSION_LOG", "trace")
            .env("AWS_SSM_START_SESSION_RESPONSE", &response)
            .args([
                "AWS_SSM_START_SESSION_RESPONSE",
                "us-east-1",
                "StartSession",
                "t",
                &params,
                &emu.endpoint,
            ]),
        b"",
        60,
    );
    let tail = &r.stderr[r.stderr.len().saturating_sub(2000)..];
    assert_eq!(r.code(), 0, "{tail}");
    assert_eq!(r.stdout, "traced\n");
    assert!(r.stderr.len() > 10_000, "trace logging did not happen");
    assert!(r.stderr.contains("resumed after"), "no resume: {tail}");
    for secret in [TEST_SECRET, "session-token-sentinel-42", token.as_str()] {
        assert!(!r.stderr.contains(secret), "a secret is in the logs");
    }
}
