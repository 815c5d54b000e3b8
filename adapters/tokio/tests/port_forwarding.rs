//! Port forwarding end to end: client ↔ emulator over a real loopback WebSocket with TLS, the
//! session engine on both sides, the emulated agent connecting to a local TCP echo server.
#![allow(
    clippy::std_instead_of_core,
    reason = "a std test; the workspace lint guards the no_std core"
)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ssm_emulator::{Emulator, EmulatorConfig, StartSession};
use ssm_tokio::forward::{run_port_session, ListenAddr, Listener, PortMode, Stats};
use ssm_tokio::{ClientSession, ConnectOptions, HandshakeInfo, SessionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(60);

mod common;
use common::{echo_round, echo_server, payload};

/// The echo server's port (the emulated agent connects to it).
async fn echo_port() -> u16 {
    echo_server().await.port()
}

/// Runs the port session behind a listener on a free loopback port.
async fn forward_on_loopback(
    session: ClientSession,
    info: HandshakeInfo,
) -> (
    std::net::SocketAddr,
    Arc<Stats>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let run = tokio::spawn({
        let stats = stats.clone();
        async move { run_port_session(session, &info, listener, stats).await }
    });
    (addr, stats, run)
}

async fn open(emu: &Emulator, req: &StartSession) -> (ClientSession, HandshakeInfo) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let target = emu.start_session(req).expect("start session");
    let opts = ConnectOptions {
        tls: emu.client_tls(),
        ..ConnectOptions::default()
    };
    let mut s = ssm_tokio::connect(target, opts).await.expect("connect");
    let info = timeout(T, async {
        loop {
            match s.events.next().await {
                Some(SessionEvent::HandshakeComplete(info)) => return info,
                Some(SessionEvent::Closed(r)) => panic!("closed before handshake: {r}"),
                None => panic!("events ended before handshake"),
                Some(_) => {}
            }
        }
    })
    .await
    .expect("handshake in time");
    (s, info)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiplexed_through_the_emulator() {
    // Defaults stay under the engine's 256 KiB window in flight. CONNS / SIZE raise the load,
    // NOPACE=1 drops the emulated agent's 1 ms pause per message.
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let pacing = std::env::var("NOPACE").is_err();
    multiplexed(env("CONNS", 8), env("SIZE", 16 * 1024), pacing).await;
}

/// 16 connections × 64 KiB each way at once with an unpaced agent: about 1.2 MB in flight both
/// ways. The driver once queued frames for the socket without bound; behind a slow socket they
/// outlived their retransmission timeout before being sent, were queued again, and the session
/// collapsed into retransmissions (one run in three to eight timed out after 60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiplexed_heavy_load_without_pacing() {
    multiplexed(16, 64 * 1024, false).await;
}

/// `conns` concurrent connections through one multiplexed session, each echoing its own
/// payload of about `size` bytes; `pacing`: the agent's 1 ms pause per message.
async fn multiplexed(conns: usize, size: usize, pacing: bool) {
    let echo = echo_port().await;
    let emu = Emulator::start(EmulatorConfig {
        pacing: pacing.then_some(Duration::from_millis(1)),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let (session, info) = open(
        &emu,
        &StartSession::port_forwarding_to_remote_host("127.0.0.1", echo),
    )
    .await;
    assert_eq!(
        info.session_type,
        Some(ssm_proto::session::SessionType::Port)
    );
    assert_eq!(info.port_mode().unwrap(), PortMode::Multiplexed);
    let (addr, stats, run) = forward_on_loopback(session, info).await;
    let mut tasks = Vec::new();
    for i in 0..conns {
        tasks.push(tokio::spawn(async move {
            let data = payload(i, size + i * 1000);
            let got = echo_round(TcpStream::connect(addr).await.unwrap(), &data).await;
            assert!(got == data, "connection {i}");
        }));
    }
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let d2 = done.clone();
    let r = timeout(T, async move {
        for t in tasks {
            t.await.unwrap();
            d2.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "connections timed out: {} done, {} bytes out, {} bytes in, {} active",
        done.load(Ordering::SeqCst),
        stats.bytes_out.load(Ordering::Relaxed),
        stats.bytes_in.load(Ordering::Relaxed),
        stats.active.load(Ordering::Relaxed)
    );
    assert_eq!(stats.connections.load(Ordering::Relaxed), conns as u64);
    run.abort();
}

/// A basic-mode port session (an agent too old for smux) to `target` on this host, forwarded
/// from a free local port: the emulator (keep it), the local address, the counters, the
/// forwarder's task.
async fn basic_session(
    target: u16,
    tls: bool,
) -> (
    Emulator,
    std::net::SocketAddr,
    Arc<Stats>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let emu = Emulator::start(EmulatorConfig {
        agent_version: "2.3.930.0".into(),
        tls,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let (session, info) = open(&emu, &StartSession::port_forwarding(target)).await;
    // The emulated agent's target is "localhost": the servers listen on 127.0.0.1.
    assert_eq!(info.port_mode().unwrap(), PortMode::Basic);
    let (addr, stats, run) = forward_on_loopback(session, info).await;
    (emu, addr, stats, run)
}

#[tokio::test]
async fn basic_mode_with_an_old_agent() {
    let echo = echo_port().await;
    let (_emu, addr, stats, run) = basic_session(echo, true).await;
    for round in 0..3 {
        let data = payload(round, 20_000);
        let mut s = TcpStream::connect(addr).await.unwrap();
        let (mut r, mut w) = s.split();
        let (_, got) = tokio::join!(async { w.write_all(&data).await.unwrap() }, async {
            let mut got = vec![0u8; data.len()];
            timeout(T, r.read_exact(&mut got)).await.unwrap().unwrap();
            got
        });
        assert!(got == data, "round {round}");
        drop(s);
        timeout(T, async {
            while stats.active.load(Ordering::SeqCst) != 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    }
    assert_eq!(stats.connections.load(Ordering::Relaxed), 3);
    run.abort();
}

#[tokio::test]
async fn ssh_document_is_a_stream_session() {
    let echo = echo_port().await;
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let (session, info) = open(&emu, &StartSession::ssh(echo)).await;
    assert_eq!(info.port_mode().unwrap(), PortMode::Stream);
    // The stream mode over an in-memory "stdin/stdout".
    let (local, mut user) = tokio::io::duplex(64 * 1024);
    let (output, _e, input, _ev, _c, _f) = session.into_parts();
    tokio::spawn(ssm_tokio::forward::forward_stream(
        tokio::io::join(output, input),
        local,
    ));
    // smux is not involved: bytes go straight through (the agent multiplexes this one too when
    // new enough, so only the document's type decides the client's side here).
    user.write_all(b"SSH-2.0-test\r\n").await.unwrap();
    let mut got = [0u8; 14];
    timeout(T, user.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"SSH-2.0-test\r\n");
}

/// An idle port session carries no bytes. (The driver once sent 16 KiB of zeros when a pending
/// read of the application's input was cancelled by another event.)
#[tokio::test]
async fn idle_port_session_sends_nothing() {
    let echo = echo_port().await;
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let (mut session, _info) = open(&emu, &StartSession::port_forwarding(echo)).await;
    let mut buf = [0u8; 4096];
    let r = timeout(Duration::from_millis(1500), session.output.read(&mut buf)).await;
    assert!(r.is_err(), "idle session delivered {r:?}");
}

/// A TCP server that echoes each connection and records, per connection in accept order, every
/// byte it received (complete once the connection has closed).
async fn recording_echo_server() -> (u16, Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let i = {
                let mut v = record.lock().unwrap();
                v.push(Vec::new());
                v.len() - 1
            };
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            record.lock().unwrap()[i].extend_from_slice(&buf[..n]);
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    (port, seen)
}

/// Basic mode, one connection right after the other (no pause): the DisconnectToPort flag that
/// ends connection N and the first bytes of connection N+1 must reach the agent in that order,
/// else N+1's bytes land in N's target connection. Each target connection must see exactly one
/// client's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_mode_keeps_back_to_back_connections_apart() {
    let (target, seen) = recording_echo_server().await;
    let (_emu, addr, stats, run) = basic_session(target, false).await;
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    for round in 0..rounds {
        let data = payload(round, 500 + round * 7);
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&data).await.unwrap();
        let mut got = vec![0u8; data.len()];
        timeout(T, s.read_exact(&mut got))
            .await
            .unwrap_or_else(|_| {
                let lens: Vec<usize> = seen.lock().unwrap().iter().map(Vec::len).collect();
                panic!("round {round}: no echo; bytes per target connection: {lens:?}")
            })
            .unwrap();
        assert!(got == data, "round {round}: echo differs");
        drop(s);
    }
    // The last connection's flag closes its target connection too.
    timeout(T, async {
        while seen.lock().unwrap().len() < rounds || stats.active.load(Ordering::SeqCst) != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("every connection reached the target");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = seen.lock().unwrap().clone();
    for (i, got) in seen.iter().enumerate() {
        let want = payload(i, 500 + i * 7);
        assert!(
            *got == want,
            "target connection {i} got {} bytes, want {} (client {i}'s); {} target connections \
             for {rounds} clients",
            got.len(),
            want.len(),
            seen.len()
        );
    }
    assert_eq!(seen.len(), rounds);
    run.abort();
}
