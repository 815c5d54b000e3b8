//! Helpers for the process-level tests: run the real binary with a deadline, start
//! `ssm-session emulator`, call its JSON API over a loopback socket.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ssm-session");

/// What a finished process left.
pub struct Run {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything on stdout.
    pub stdout: String,
    /// The same bytes, unconverted.
    pub stdout_raw: Vec<u8>,
    /// Everything on stderr.
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    /// Without `stdout_raw` (it can be megabytes); `stdout` holds the same text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("status", &self.status)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish_non_exhaustive()
    }
}

impl Run {
    /// The exit code (panics on death by signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {self:?}"))
    }
}

/// Runs `cmd` with `stdin` fed, killing it after `secs` seconds (then panics).
pub fn run(cmd: &mut Command, stdin: &[u8], secs: u64) -> Run {
    run_with(cmd, stdin, secs, || {})
}

/// Like [`run`], calling `during` once the process is running.
pub fn run_with(cmd: &mut Command, stdin: &[u8], secs: u64, during: impl FnOnce()) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    during();
    let status = wait_deadline(&mut child, Duration::from_secs(secs));
    let _ = writer.join();
    let stdout_raw = out_t.join().unwrap();
    let stdout = String::from_utf8_lossy(&stdout_raw).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
    let Some(status) = status else {
        panic!("timed out after {secs}s\nstdout: {stdout}\nstderr: {stderr}");
    };
    Run {
        status,
        stdout,
        stdout_raw,
        stderr,
    }
}

fn wait_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `ssm-session emulator`, killed on drop.
pub struct EmulatorProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The CA file, when TLS is on.
    pub ca_file: Option<PathBuf>,
}

impl EmulatorProcess {
    /// Starts `ssm-session emulator --port 0 ARGS` and reads its endpoint (10 s at most).
    pub fn start(args: &[&str]) -> EmulatorProcess {
        let mut child = Command::new(BIN)
            .args(["emulator", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn emulator");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let tls = !args.contains(&"--no-tls");
        let mut endpoint = None;
        let mut ca_file = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while endpoint.is_none() || (tls && ca_file.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("emulator printed no endpoint within 10 s")
            });
            if let Some(e) = line.strip_prefix("endpoint=") {
                endpoint = Some(e.to_owned());
            } else if let Some(c) = line.strip_prefix("ca_file=") {
                ca_file = Some(PathBuf::from(c));
            }
        }
        EmulatorProcess {
            child,
            endpoint: endpoint.unwrap(),
            ca_file,
        }
    }

    /// `host:port` of the endpoint.
    pub fn authority(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    /// Calls `AmazonSSM.<op>` unsigned and returns (status, body).
    pub fn call(&self, op: &str, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.authority()).expect("connect emulator");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-amz-json-1.1\r\n\
             X-Amz-Target: AmazonSSM.{op}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.authority(),
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) => panic!("reading the emulator's answer: {e}"),
            }
            if complete(&raw) {
                break;
            }
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("http answer");
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    /// StartSession; returns the response JSON text.
    pub fn start_session(&self, request: &str) -> String {
        let (status, body) = self.call("StartSession", request);
        assert_eq!(status, 200, "StartSession failed: {body}");
        body
    }
}

fn complete(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .is_some_and(|n| body.len() >= n)
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(ca) = &self.ca_file {
            let _ = std::fs::remove_file(ca);
        }
    }
}

/// A fresh temporary directory (removed on drop).
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/ssm-session-test-<name>-<pid>-<n>`.
    pub fn new(name: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "ssm-session-test-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// `session-manager-plugin` in this directory, a symlink to the binary.
    pub fn plugin_link(&self) -> PathBuf {
        let link = self.0.join("session-manager-plugin");
        if !link.exists() {
            std::os::unix::fs::symlink(Path::new(BIN), &link).unwrap();
        }
        link
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A distinct payload per client `i`: its index, then pseudo-random bytes.
pub fn payload(i: usize, len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut v = format!("client {i}:").into_bytes();
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x.to_le_bytes()[0]);
    }
    v
}

/// The keys [`cmd`] puts in the environment (what a user of the AWS CLI has).
pub const TEST_KEY_ID: &str = "AKIDTESTCLI";
/// The secret of [`TEST_KEY_ID`].
pub const TEST_SECRET: &str = "test-secret-0123456789";

/// A command for the binary with a clean AWS environment: no real credentials, config or
/// endpoint picked up, no instance metadata lookups, and no credentials at all.
pub fn cmd_bare(program: &Path) -> Command {
    let mut c = Command::new(program);
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CA_BUNDLE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SSM",
        "AWS_ENDPOINT_URL_STS",
        "AWS_SSM_START_SESSION_RESPONSE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "SSM_SESSION_NO_SIGN_UPGRADE",
    ] {
        c.env_remove(k);
    }
    c.env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    c.env("AWS_CONFIG_FILE", "/dev/null");
    c.env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

/// [`cmd_bare`] with static keys in the environment ([`TEST_KEY_ID`], [`TEST_SECRET`]).
pub fn cmd(program: &Path) -> Command {
    let mut c = cmd_bare(program);
    c.env("AWS_ACCESS_KEY_ID", TEST_KEY_ID);
    c.env("AWS_SECRET_ACCESS_KEY", TEST_SECRET);
    c
}
