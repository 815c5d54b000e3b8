//! Port forwarding through the binary: real processes, the emulator, a TCP echo server and TCP
//! clients on loopback. Every wait has a deadline; the child is killed when a test ends.

#![allow(
    clippy::std_instead_of_core,
    reason = "std test code; the lint is for the no_std core"
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{cmd, payload, EmulatorProcess, TempDir, BIN};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP echo server on 127.0.0.1 (a thread per connection), until the test process ends.
fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    port
}

/// A TCP server that reads one connection at a time (it sends nothing) and, when one ends,
/// reports how many bytes it received.
fn counting_sink_server() -> (u16, mpsc::Receiver<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut buf = [0u8; 16 * 1024];
            let mut total = 0;
            loop {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            if tx.send(total).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// A running `ssm-session`, stderr read line by line; killed on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(c: &mut Command) -> Proc {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssm-session");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next stderr line for which `f` answers, within `secs`.
    fn wait_for<T>(&mut self, secs: u64, mut f: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let r = f(line.trim_end_matches('\r'));
                    self.seen.push(line);
                    if let Some(r) = r {
                        return r;
                    }
                }
                Err(_) => panic!("no expected line within {secs} s; stderr: {:?}", self.seen),
            }
        }
    }

    /// The port of the "Port N opened for sessionId …" line.
    fn opened_port(&mut self) -> u16 {
        self.wait_for(20, |l| {
            let rest = l.strip_prefix("Port ")?;
            let (n, tail) = rest.split_once(' ')?;
            tail.starts_with("opened for sessionId ")
                .then(|| n.parse().ok())
                .flatten()
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `payload` on a fresh connection to `addr`, reads the same length back.
fn echo_once(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let writer = {
        let mut w = c.try_clone().unwrap();
        let payload = payload.to_vec();
        std::thread::spawn(move || w.write_all(&payload))
    };
    let mut back = vec![0u8; payload.len()];
    c.read_exact(&mut back).unwrap();
    writer.join().unwrap().unwrap();
    back
}

fn concurrent_echo(addr: SocketAddr, clients: usize, len: usize) {
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            std::thread::spawn(move || {
                let p = payload(i, len + i);
                let back = echo_once(addr, &p);
                assert!(back == p, "client {i}: echo differs");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn demo_forward(target: u16, extra: &[&str]) -> Command {
    let mut c = cmd(Path::new(BIN));
    c.args(["demo", "--forward", &format!("127.0.0.1:{target}")])
        .args(extra);
    c
}

#[test]
fn demo_forward_carries_concurrent_connections() {
    let echo = echo_server();
    let mut p = Proc::spawn(&mut demo_forward(echo, &["--local-port", "0", "--stats"]));
    let port = p.opened_port();
    assert_ne!(port, 0);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    concurrent_echo(addr, 16, 40_000);
    // A second wave on the same session.
    concurrent_echo(addr, 8, 1000);
    // --stats: a counters line counting all 24 connections (they are all closed by now).
    p.wait_for(10, |l| {
        (l.starts_with("ssm-session: connections 24 (open 0)")).then_some(())
    });
}

#[test]
fn demo_forward_listens_on_ipv6_loopback() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    }
    let echo = echo_server();
    let mut p = Proc::spawn(&mut demo_forward(echo, &["--bind", "::1"]));
    let port = p.opened_port();
    let addr: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    concurrent_echo(addr, 4, 5000);
    // Nothing listens on IPv4 for it.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn demo_forward_on_a_unix_socket() {
    use std::os::unix::net::UnixStream;
    let echo = echo_server();
    let dir = TempDir::new("unix-forward");
    let sock = dir.0.join("fwd.sock");
    let mut p = Proc::spawn(&mut demo_forward(
        echo,
        &["--unix-socket", sock.to_str().unwrap()],
    ));
    p.wait_for(20, |l| {
        (l.starts_with("Unix socket ") && l.contains("opened for sessionId")).then_some(())
    });
    let mut c = UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.write_all(b"over a unix socket").unwrap();
    let mut back = [0u8; 18];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"over a unix socket");
    drop(c);
    // SIGTERM (not the drop's SIGKILL): the process ends the session and removes its socket.
    let killed = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + IO_TIMEOUT;
    while p.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!sock.exists(), "the socket file is removed at exit");
}

#[test]
fn busy_port_fails_at_once_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let started = Instant::now();
    let r = common::run(
        &mut demo_forward(1, &["--local-port", &port.to_string()]),
        b"",
        10,
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{r:?}");
    assert_ne!(r.code(), 0, "{r:?}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines,
        [format!(
            "ssm-session: address 127.0.0.1:{port} is already in use"
        )],
        "{r:?}"
    );
    assert!(r.stdout.is_empty());
}

#[test]
fn stdio_mode_is_a_stream_for_proxycommand() {
    let echo = echo_server();
    let mut p = Proc::spawn(&mut demo_forward(echo, &["--stdio"]));
    let mut stdin = p.child.stdin.take().unwrap();
    let mut stdout = p.child.stdout.take().unwrap();
    // Bytes an SSH client would send, with newlines and a NUL that must pass untouched.
    let data = payload(7, 20_000)
        .into_iter()
        .chain(*b"\n\r\n\0~.\n")
        .collect::<Vec<u8>>();
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            stdin.write_all(&data).unwrap();
            stdin
        })
    };
    let (tx, rx) = mpsc::channel();
    let len = data.len();
    std::thread::spawn(move || {
        let mut back = vec![0u8; len];
        let r = stdout.read_exact(&mut back).map(|()| back);
        let _ = tx.send(r);
    });
    let back = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("echo within 30 s")
        .unwrap();
    assert!(back == data, "the stream came back altered");
    drop(writer.join().unwrap());
}

/// SSH closes its ProxyCommand's stdin when it is done: the session then ends, after the bytes
/// read before the EOF, and the process exits at once with status 0 (it used to stay forever).
#[test]
fn stdio_mode_ends_at_stdin_eof() {
    let (sink, ends) = counting_sink_server();
    let mut p = Proc::spawn(&mut demo_forward(sink, &["--stdio"]));
    let mut stdin = p.child.stdin.take().unwrap();
    let data = payload(3, 300_000);
    stdin.write_all(&data).unwrap();
    drop(stdin);
    let closed = Instant::now();
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            closed.elapsed() < Duration::from_secs(8),
            "still running 8 s after stdin closed; stderr: {:?}",
            p.seen
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "stderr: {:?}", p.seen);
    // Everything written before the EOF reached the target, whose connection the agent then
    // closed (TerminateSession).
    let received = ends
        .recv_timeout(IO_TIMEOUT)
        .expect("the target connection was not closed");
    assert_eq!(received, data.len());
    p.wait_for(5, |l| {
        l.starts_with("Exiting session with sessionId")
            .then_some(())
    });
}

/// The drop-in invocation the AWS CLI makes.
fn plugin(dir: &TempDir, response: &str, request: &str, emu: &EmulatorProcess) -> Command {
    let mut c = cmd(&dir.plugin_link());
    c.args([
        response,
        "us-east-1",
        "StartSession",
        "",
        request,
        &emu.endpoint,
    ]);
    c
}

#[test]
fn drop_in_port_session_listens_where_the_properties_say() {
    let echo = echo_server();
    let emu = EmulatorProcess::start(&["--no-tls"]);
    let request = serde_json::json!({
        "Target": "i-0123456789abcdef0",
        "DocumentName": "AWS-StartPortForwardingSessionToRemoteHost",
        "Parameters": {
            "host": ["127.0.0.1"],
            "portNumber": [echo.to_string()],
            "localPortNumber": ["0"]
        }
    })
    .to_string();
    let response = emu.start_session(&request);
    let dir = TempDir::new("dropin-port");
    let mut p = Proc::spawn(&mut plugin(&dir, &response, &request, &emu));
    let port = p.opened_port();
    p.wait_for(5, |l| (l == "Waiting for connections...").then_some(()));
    concurrent_echo(SocketAddr::from(([127, 0, 0, 1], port)), 8, 3000);
}

fn start_port(emu: &EmulatorProcess, document: &str, parameters: &str, extra: &[&str]) -> Command {
    let mut c = cmd(Path::new(BIN));
    c.args([
        "start",
        "--target",
        "i-0123456789abcdef0",
        "--region",
        "us-east-1",
        "--endpoint-url",
        &emu.endpoint,
        "--document-name",
        document,
        "--parameters",
        parameters,
    ])
    .args(extra)
    .env("AWS_ACCESS_KEY_ID", "test")
    .env("AWS_SECRET_ACCESS_KEY", "test");
    c
}

#[test]
fn start_forwards_with_the_local_port_option() {
    let echo = echo_server();
    let emu = EmulatorProcess::start(&["--no-tls"]);
    // The document asks for a port that is taken; --local-port 0 overrides it.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let parameters = serde_json::json!({
        "host": ["127.0.0.1"],
        "portNumber": [echo.to_string()],
        "localPortNumber": [taken.local_addr().unwrap().port().to_string()]
    })
    .to_string();
    let mut p = Proc::spawn(&mut start_port(
        &emu,
        "AWS-StartPortForwardingSessionToRemoteHost",
        &parameters,
        &["--local-port", "0"],
    ));
    let port = p.opened_port();
    assert_ne!(port, taken.local_addr().unwrap().port());
    concurrent_echo(SocketAddr::from(([127, 0, 0, 1], port)), 8, 2000);
}

#[test]
fn start_ssh_document_as_proxycommand() {
    let echo = echo_server();
    let emu = EmulatorProcess::start(&["--no-tls"]);
    let parameters = serde_json::json!({ "portNumber": [echo.to_string()] }).to_string();
    let mut p = Proc::spawn(&mut start_port(
        &emu,
        "AWS-StartSSHSession",
        &parameters,
        &[],
    ));
    let mut stdin = p.child.stdin.take().unwrap();
    let mut stdout = p.child.stdout.take().unwrap();
    stdin.write_all(b"SSH-2.0-test\r\n").unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut back = [0u8; 14];
        let _ = tx.send(stdout.read_exact(&mut back).map(|()| back));
    });
    let back = rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
    assert_eq!(&back, b"SSH-2.0-test\r\n");
}

#[test]
fn basic_mode_serves_one_connection_after_another() {
    let echo = echo_server();
    let mut p = Proc::spawn(&mut demo_forward(echo, &["--agent-version", "3.0.0.0"]));
    let addr = SocketAddr::from(([127, 0, 0, 1], p.opened_port()));
    // Back to back: each connection's DisconnectToPort flag must reach the agent before the
    // next connection's first bytes (they once overtook it and went to the old target).
    for i in 0..20 {
        let data = payload(i, 3000 + i);
        assert!(echo_once(addr, &data) == data, "connection {i}");
    }
}

#[test]
fn drop_in_busy_local_port_ends_the_session_with_one_line() {
    let emu = EmulatorProcess::start(&["--no-tls"]);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let request = serde_json::json!({
        "Target": "i-0123456789abcdef0",
        "DocumentName": "AWS-StartPortForwardingSession",
        "Parameters": { "portNumber": ["80"], "localPortNumber": [port.to_string()] }
    })
    .to_string();
    let response = emu.start_session(&request);
    let dir = TempDir::new("dropin-busy");
    let r = common::run(&mut plugin(&dir, &response, &request, &emu), b"", 15);
    assert_eq!(r.code(), 2, "{r:?}");
    let last = r.stderr.lines().last().unwrap_or("");
    assert_eq!(
        last,
        format!("ssm-session: address 127.0.0.1:{port} is already in use"),
        "{r:?}"
    );
}

#[test]
fn port_session_survives_routine_closes() {
    echo_through_routine_closes(5_000_000);
}

#[test]
#[ignore = "50 MB each way takes about 3 minutes in a debug build; run with --ignored"]
fn port_session_survives_routine_closes_with_50_mb_each_way() {
    echo_through_routine_closes(50_000_000);
}

fn echo_through_routine_closes(len: usize) {
    // The strict emulator (keys `test:test`, as `start_port` sets) closes the data channel
    // every 2 s with 1000 Bye; the client resumes (signed ResumeSession and upgrade) and the
    // echo of `len` bytes comes back intact. No pacing (the agent's 1 ms per KiB would make
    // this minutes long).
    let echo = echo_server();
    let emu = EmulatorProcess::start(&[
        "--no-tls",
        "--credentials",
        "test:test",
        "--close-every",
        "2",
        "--pacing-ms",
        "0",
    ]);
    let parameters = serde_json::json!({
        "host": ["127.0.0.1"],
        "portNumber": [echo.to_string()],
        "localPortNumber": ["0"]
    })
    .to_string();
    let mut p = Proc::spawn(&mut start_port(
        &emu,
        "AWS-StartPortForwardingSessionToRemoteHost",
        &parameters,
        &[],
    ));
    let port = p.opened_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Echo in 1 MB connections until `len` bytes went each way and a routine close was resumed
    // in between, whichever takes longer (a fast machine finishes `len` in under 2 s).
    let (mut sent, mut resumes, mut i) = (0usize, 0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(120);
    while sent < len || resumes < 1 {
        assert!(
            Instant::now() < deadline,
            "{sent} bytes, {resumes} resumes in 120 s"
        );
        let data = payload(i, 1_000_000);
        let back = echo_once(addr, &data);
        assert!(back == data, "echo {i} differs");
        sent += data.len();
        i += 1;
        resumes += p
            .lines
            .try_iter()
            .filter(|l| l.contains("resumed after the data channel was closed by peer (1000 Bye)"))
            .count();
    }
}
