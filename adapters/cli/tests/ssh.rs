//! SSH through `ssm-session` as its `ProxyCommand`: a real `ssh` client (Debian's
//! openssh-client) logs in to a real `sshd` (openssh-server) that the test starts unprivileged
//! on a loopback port, with its own host key, configuration and authorized key, through the
//! emulator: once as `ssm-session demo --forward … --stdio`, once as the drop-in
//! `session-manager-plugin` given an `AWS-StartSSHSession` response, as `aws ssm start-session`
//! runs it. It runs a remote command (output and exit code) and copies a few MB each way
//! (SHA-256 compared).
//!
//! Needs `ssh`, `ssh-keygen` and `/usr/sbin/sshd` (`apt-get install openssh-client
//! openssh-server`). Without them the tests fail under CI (`CI` set) and are skipped otherwise.

#![allow(
    clippy::std_instead_of_core,
    reason = "std test code; the lint is for the no_std core"
)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cmd, payload, EmulatorProcess, TempDir, BIN};
use sha2::{Digest, Sha256};

/// sshd wants an absolute path (it re-executes itself).
const SSHD: &str = "/usr/sbin/sshd";
/// Deadline of one `ssh` run (a debug build copies a few MB in a few seconds).
const SSH_SECS: u64 = 120;

/// One test at a time: each runs sshd, ssh, the emulator and our client (debug builds). Uploads
/// are slow and can stall while the engine retransmits far too much (measured: 2 MiB up took
/// 22-28 s with 310 000 duplicate messages at the agent for about 2 000 sent); two tests at once
/// on a loaded machine made that a timeout every time.
static SERIAL: Mutex<()> = Mutex::new(());

/// What is missing to run these tests, if anything.
fn missing_tools() -> Option<String> {
    let mut missing = Vec::new();
    for tool in ["ssh", "ssh-keygen"] {
        if Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            missing.push(tool.to_owned());
        }
    }
    if !Path::new(SSHD).exists() {
        missing.push(SSHD.to_owned());
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// True (after saying why) when the test cannot run here; under CI that is a failure.
fn skip(test: &str) -> bool {
    let Some(missing) = missing_tools() else {
        return false;
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {missing} required under CI: apt-get install openssh-client openssh-server"
    );
    eprintln!(
        "SKIPPED {test}: {missing} not installed (apt-get install openssh-client openssh-server)"
    );
    true
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "ssm-session-test",
            "-f",
        ])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

/// The user this process runs as: the one `ssh` logs in as (an unprivileged sshd can only
/// authenticate its own user).
fn user_name() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    assert!(out.status.success(), "id -un: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// sshd, as root, refuses to start without its privilege separation directory (Debian's
/// package creates it at boot, a container may lack it); it needs none when not root.
fn ensure_privsep_dir(root: bool) {
    let dir = Path::new("/run/sshd");
    if !root || dir.is_dir() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)))
        .unwrap_or_else(|e| panic!("sshd needs {}: cannot create it: {e}", dir.display()));
}

/// `sshd -D -e -f CONFIG -p PORT`, its stderr collected in the returned log.
fn spawn_sshd(config: &Path, port: u16) -> (Child, Arc<Mutex<String>>) {
    let mut child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(config)
        .args(["-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sshd");
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    (child, log)
}

/// Waits (10 s at most) for the server's SSH banner; kills it if it does not come.
fn wait_ready(child: &mut Child, port: u16, log: &Mutex<String>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(100)); // let the log reader finish
            return Err(format!("exited with {status}: {}", log.lock().unwrap()));
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut banner = [0u8; 8];
            if s.read_exact(&mut banner).is_ok() && &banner == b"SSH-2.0-" {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "no SSH banner within 10 s: {}",
        log.lock().unwrap()
    ))
}

/// A throwaway `sshd` on 127.0.0.1, killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    dir: TempDir,
    key: PathBuf,
    user: String,
    log: Arc<Mutex<String>>,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = TempDir::new("sshd");
        let host_key = dir.0.join("host_ed25519");
        let key = dir.0.join("user_ed25519");
        keygen(&host_key);
        keygen(&key);
        let authorized = dir.0.join("authorized_keys");
        std::fs::copy(key.with_extension("pub"), &authorized).unwrap();
        let root = rustix::process::geteuid().is_root();
        ensure_privsep_dir(root);
        let config = dir.0.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\n\
                 HostKey {}\n\
                 AuthorizedKeysFile {}\n\
                 PidFile none\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin {}\n\
                 Subsystem sftp internal-sftp\n\
                 LogLevel ERROR\n",
                host_key.display(),
                authorized.display(),
                if root { "prohibit-password" } else { "no" },
            ),
        )
        .unwrap();
        // A free port may be taken again before sshd binds it: then try another.
        for _ in 0..3 {
            let port = free_port();
            let (mut child, log) = spawn_sshd(&config, port);
            match wait_ready(&mut child, port, &log) {
                Ok(()) => {
                    return Sshd {
                        child,
                        port,
                        dir,
                        key,
                        user: user_name(),
                        log,
                    }
                }
                Err(why) if why.contains("Address already in use") => {}
                Err(why) => panic!("sshd did not start: {why}"),
            }
        }
        panic!("sshd found no free port in 3 attempts");
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `ssh` to this server through `proxy` (its ProxyCommand) running `remote`.
    fn ssh(&self, proxy: &str, remote: &str) -> Command {
        let mut c = cmd(Path::new("ssh"));
        c.args(["-F", "/dev/null", "-i"])
            .arg(&self.key)
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=30",
                "-o",
            ])
            .arg(format!("ProxyCommand={proxy}"))
            .args(["-p", &self.port.to_string()])
            .arg(format!("{}@127.0.0.1", self.user))
            .arg(remote);
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A script that records its pid in `pidfile`, then becomes `program` with its arguments: the
/// ProxyCommand, so the test can see that it ends with the ssh client.
fn proxy_script(dir: &Path, name: &str, program: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join(name);
    let pidfile = dir.join(format!("{name}.pid"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ > '{}'\nexec '{}' \"$@\"\n",
            pidfile.display(),
            program.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, pidfile)
}

/// Asserts the process in `pidfile` is gone (or a zombie) within 10 s: the proxy must not
/// outlive the ssh client.
fn assert_proxy_ended(pidfile: &Path) {
    let pid = std::fs::read_to_string(pidfile).expect("the ProxyCommand ran");
    let stat = PathBuf::from(format!("/proc/{}/stat", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = std::fs::read_to_string(&stat).ok();
        // The state follows the command name in parentheses: `pid (comm) S …`.
        let running = state
            .as_deref()
            .and_then(|s| s.rsplit_once(") "))
            .is_some_and(|(_, rest)| !rest.starts_with('Z'));
        if !running {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the ProxyCommand (pid {}) still runs 10 s after ssh ended",
            pid.trim()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // (The pid could be reused within 10 s in theory; a false "still running" is then possible,
    // never a false pass.)
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Through `proxy`: a remote command's output and exit code; `len` bytes up (`cat > file`,
/// compared on disk and by the remote `sha256sum`) and down again (`cat file`).
fn exercise(sshd: &Sshd, proxy: &mut dyn FnMut() -> (String, Vec<(String, String)>), len: usize) {
    let run =
        |remote: &str, input: &[u8], proxy: &mut dyn FnMut() -> (String, Vec<(String, String)>)| {
            eprintln!("ssh … {remote:?} ({} bytes in)", input.len());
            let (pc, env) = proxy();
            let mut c = sshd.ssh(&pc, remote);
            c.envs(env);
            common::run(&mut c, input, SSH_SECS)
        };
    let r = run("echo hello; exit 7", b"", proxy);
    assert_eq!(
        r.stdout,
        "hello\n",
        "stderr: {}\nsshd: {}",
        r.stderr,
        sshd.log()
    );
    assert_eq!(r.code(), 7, "stderr: {}\nsshd: {}", r.stderr, sshd.log());

    let up = payload(len % 1000, len);
    let want = sha256(&up);
    let file = sshd.dir.0.join("copied.bin");
    let started = Instant::now();
    let r = run(&format!("cat > '{}'", file.display()), &up, proxy);
    let up_secs = started.elapsed().as_secs_f64();
    assert_eq!(
        r.code(),
        0,
        "upload: stderr: {}\nsshd: {}",
        r.stderr,
        sshd.log()
    );
    let on_disk = std::fs::read(&file).unwrap();
    assert_eq!(on_disk.len(), len, "uploaded length");
    assert_eq!(sha256(&on_disk), want, "uploaded bytes differ");
    let r = run(&format!("sha256sum '{}'", file.display()), b"", proxy);
    assert_eq!(r.code(), 0, "sha256sum: {r:?}");
    assert!(
        r.stdout.starts_with(&format!("{want}  ")),
        "remote sha256sum: {r:?}"
    );

    let started = Instant::now();
    let r = run(&format!("cat '{}'", file.display()), b"", proxy);
    let down_secs = started.elapsed().as_secs_f64();
    assert_eq!(
        r.code(),
        0,
        "download: stderr: {}\nsshd: {}",
        r.stderr,
        sshd.log()
    );
    assert_eq!(r.stdout_raw.len(), len, "downloaded length");
    assert_eq!(sha256(&r.stdout_raw), want, "downloaded bytes differ");
    eprintln!("{len} bytes: up {up_secs:.2} s, down {down_secs:.2} s (each with an ssh login)");
}

#[test]
fn ssh_through_demo_stdio() {
    if skip("ssh_through_demo_stdio") {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let sshd = Sshd::start();
    let (script, pidfile) = proxy_script(&sshd.dir.0, "proxy.sh", Path::new(BIN));
    // The demo's emulator over wss:// (its own throwaway CA); `%p` is sshd's port.
    let proxy = format!("'{}' demo --forward 127.0.0.1:%p --stdio", script.display());
    exercise(&sshd, &mut || (proxy.clone(), Vec::new()), 4 << 20);
    assert_proxy_ended(&pidfile);
}

#[test]
fn ssh_through_the_drop_in_plugin() {
    if skip("ssh_through_the_drop_in_plugin") {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let sshd = Sshd::start();
    let emu = EmulatorProcess::start(&["--no-tls"]);
    let link = sshd.dir.plugin_link();
    let (script, pidfile) = proxy_script(&sshd.dir.0, "plugin.sh", &link);
    let request = serde_json::json!({
        "Target": "i-0123456789abcdef0",
        "DocumentName": "AWS-StartSSHSession",
        "Parameters": { "portNumber": [sshd.port.to_string()] }
    })
    .to_string();
    // As `aws ssm start-session` runs the plugin: the StartSession response in an environment
    // variable named by the first argument (ssh passes its environment to the ProxyCommand).
    let proxy = format!(
        "'{}' AWS_SSM_START_SESSION_RESPONSE us-east-1 StartSession '' '{request}' {}",
        script.display(),
        emu.endpoint
    );
    exercise(
        &sshd,
        &mut || {
            let response = emu.start_session(&request);
            (
                proxy.clone(),
                vec![("AWS_SSM_START_SESSION_RESPONSE".to_owned(), response)],
            )
        },
        2 << 20,
    );
    assert_proxy_ended(&pidfile);
}
