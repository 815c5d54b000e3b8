//! Interop with the reference smux (xtaci/smux, Go) as Debian packages it.
//!
//! The peer is `go_peer/peer.go`. Needs `go` and `golang-github-xtaci-smux-dev` (`apt-get install golang-go
//! golang-github-xtaci-smux-dev`). Without them the tests say so and pass, unless
//! `SSM_REQUIRE_GO_SMUX=1` (set in CI) makes a missing toolchain a failure.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;

use core::time::Duration;

use ssm_proto::smux::{Config, Error, Event, Mux, Role, StreamId};
use ssm_proto::Instant;

mod go_peer;

fn peer_binary() -> Option<PathBuf> {
    go_peer::build(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go_peer"),
        Path::new(env!("CARGO_TARGET_TMPDIR")),
    )
}

struct Peer {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Vec<u8>>,
}

fn spawn(bin: &Path, args: &[&str]) -> Peer {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    thread::spawn(move || loop {
        let mut b = vec![0u8; 65536];
        match stdout.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                b.truncate(n);
                if tx.send(b).is_err() {
                    return;
                }
            }
        }
    });
    Peer { child, stdin, rx }
}

type M = Mux<Vec<u8>, 16>;

/// Drives `mux` against the peer until `done` says so. `on_event` may write: it gets an output
/// buffer it fills and returns the length of.
fn drive(peer: &mut Peer, mux: &mut M, mut step: impl FnMut(&mut M, &mut Vec<u8>) -> bool) {
    #[allow(
        clippy::disallowed_methods,
        reason = "the test is the IO driver: it owns the clock"
    )]
    let start = std::time::Instant::now();
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let mut out = Vec::new();
        let done = step(mux, &mut out);
        let mut b = [0u8; 256];
        while let Some(n) = mux.poll_transmit(&mut b).unwrap() {
            out.extend_from_slice(&b[..n]);
        }
        if let Err(e) = peer.stdin.write_all(&out) {
            // A Go client exits as soon as its echoes match; our last FINs may find it gone.
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        if done {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "interop test timed out"
        );
        if pending.is_empty() {
            if let Ok(chunk) = peer.rx.recv_timeout(Duration::from_millis(20)) {
                pending = chunk;
            }
        }
        let now = Instant::from_millis(start.elapsed().as_millis() as u64);
        let n = mux.handle_input(now, &pending).unwrap();
        pending.drain(..n);
    }
}

fn payload(i: usize) -> Vec<u8> {
    (0..5000 + i * 977).map(|k| (k * 7 + i) as u8).collect()
}

#[test]
fn our_client_against_go_server() {
    let Some(bin) = peer_binary() else { return };
    let mut peer = spawn(&bin, &["server"]);
    let mut mux = M::new(
        Config::default(),
        Role::Client,
        Instant::ZERO,
        vec![0; 16 * 8192],
    );
    const N: usize = 12;
    let ids: Vec<StreamId> = (0..N).map(|_| mux.open().unwrap()).collect();
    assert_eq!(ids[0], StreamId(3));
    let mut sent = [0usize; N];
    let mut got = vec![Vec::new(); N];
    let mut eof = [false; N];
    let mut greeting = (None, Vec::new(), false);
    drive(&mut peer, &mut mux, |m, out| {
        // Interleave writes: up to 3000 bytes per stream per round.
        for (i, id) in ids.iter().enumerate() {
            let data = payload(i);
            if sent[i] < data.len() {
                let mut buf = vec![0u8; 3000];
                let w = m.write(*id, &data[sent[i]..], &mut buf).unwrap();
                sent[i] += w.consumed;
                out.extend_from_slice(&buf[..w.len]);
                if sent[i] == data.len() {
                    m.close(*id).unwrap();
                }
            }
        }
        while let Some(ev) = m.poll_event() {
            if let Event::Opened(id) = ev {
                greeting.0 = Some(id);
            }
        }
        let mut b = [0u8; 4096];
        for (i, id) in ids.iter().enumerate() {
            while !eof[i] {
                match m.read(*id, &mut b) {
                    Ok(Some(n)) => got[i].extend_from_slice(&b[..n]),
                    Ok(None) => eof[i] = true,
                    Err(Error::Blocked) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        if let (Some(g), false) = (greeting.0, greeting.2) {
            loop {
                match m.read(g, &mut b) {
                    Ok(Some(n)) => greeting.1.extend_from_slice(&b[..n]),
                    Ok(None) => {
                        greeting.2 = true;
                        m.close(g).unwrap();
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        eof.iter().all(|e| *e) && greeting.2
    });
    for (i, g) in got.iter().enumerate() {
        assert_eq!(*g, payload(i), "stream {i}");
    }
    assert_eq!(greeting.0, Some(StreamId(2)), "go server ids start at 2");
    assert_eq!(greeting.1, b"hello from go, stream 2");
    drop(peer.stdin);
    let _ = peer.child.wait();
}

#[test]
fn go_client_against_our_server() {
    let Some(bin) = peer_binary() else { return };
    const N: usize = 10;
    let mut peer = spawn(&bin, &["client", &N.to_string()]);
    let mut mux = M::new(
        Config::default(),
        Role::Server,
        Instant::ZERO,
        vec![0; 16 * 8192],
    );
    let mut seen = Vec::new();
    let mut closed = 0;
    let mut echo: std::collections::HashMap<StreamId, Vec<u8>> = Default::default();
    drive(&mut peer, &mut mux, |m, out| {
        while let Some(ev) = m.poll_event() {
            match ev {
                Event::Opened(id) => seen.push(id),
                Event::Closed(_) => closed += 1,
                Event::Readable(_) => {}
            }
        }
        let mut b = [0u8; 4096];
        for id in seen.clone() {
            loop {
                match m.read(id, &mut b) {
                    Ok(Some(n)) => echo.entry(id).or_default().extend_from_slice(&b[..n]),
                    Ok(None) => {
                        let _ = m.close(id);
                        break;
                    }
                    Err(_) => break,
                }
            }
            let q = echo.entry(id).or_default();
            while !q.is_empty() {
                let mut buf = vec![0u8; 8192];
                match m.write(id, q, &mut buf) {
                    Ok(w) => {
                        out.extend_from_slice(&buf[..w.len]);
                        q.drain(..w.consumed);
                    }
                    Err(_) => {
                        q.clear();
                    }
                }
            }
        }
        closed == N
    });
    // The Go client opens its streams from goroutines: their SYNs may come in any order.
    let mut ids: Vec<u32> = seen.iter().map(|s| s.0).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..N as u32).map(|i| 3 + 2 * i).collect::<Vec<_>>(),
        "go client ids 3, 5, …"
    );
    let status = peer.child.wait().unwrap();
    assert!(status.success(), "go client reported a mismatch");
}
