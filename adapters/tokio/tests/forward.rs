//! Port forwarding: smux-multiplexed (client forwarder against the agent side over an in-memory
//! pipe, to a TCP echo server) and basic mode; listeners (port 0, IPv6, unix socket, busy port).
#![allow(
    clippy::std_instead_of_core,
    reason = "a std test; the workspace lint guards the no_std core"
)]

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ssm_emulator::forward::{serve_basic, serve_mux, BasicEnd, BasicInput};
use ssm_proto::payload::Flag;
use ssm_proto::smux::Config;
use ssm_tokio::forward::*;
use ssm_tokio::Part;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};

mod common;
use common::{echo_round, echo_server, join_all, payload};

#[path = "../../../core/tests/go_peer/mod.rs"]
mod go_peer;

/// Starts the agent side (to an echo server) and the client forwarder on `listener`, joined by an
/// in-memory pipe.
async fn start_mux(listener: Listener, cfg: Config) -> Arc<Stats> {
    let target = echo_server().await;
    let (a, b) = tokio::io::duplex(64 * 1024);
    tokio::spawn(serve_mux(b, cfg, move || async move {
        let s = TcpStream::connect(target).await?;
        Ok(Box::new(s) as Box<dyn LocalStreamDyn>)
    }));
    let stats = Arc::new(Stats::default());
    tokio::spawn(forward_mux(a, cfg, listener, stats.clone()));
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_connections_echo() {
    let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(listener.describe(), format!("port {}", addr.port()));
    let stats = start_mux(listener, Config::for_agent("3.3.0.0")).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        tasks.push(tokio::spawn(async move {
            let data = payload(i, 20_000 + i * 1_000);
            let s = TcpStream::connect(addr).await.unwrap();
            let got = echo_round(s, &data).await;
            assert_eq!(got.len(), data.len(), "connection {i}");
            assert!(got == data, "connection {i} corrupted");
        }));
    }
    join_all(tasks).await;
    assert_eq!(stats.connections.load(Ordering::Relaxed), 100);
    let total: u64 = (0..100).map(|i| 20_000 + i * 1_000).sum::<usize>() as u64;
    assert_eq!(stats.bytes_out.load(Ordering::Relaxed), total);
    assert_eq!(stats.bytes_in.load(Ordering::Relaxed), total);
    // Every stream is released on both sides once done.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stats.active.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn big_transfer_with_keep_alive_on() {
    let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    start_mux(listener, Config::default()).await;
    let data = payload(1, 8 * 1024 * 1024);
    let s = TcpStream::connect(addr).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(60), echo_round(s, &data))
        .await
        .unwrap();
    assert!(got == data);
}

#[tokio::test]
async fn unix_socket_listener() {
    let dir = std::env::temp_dir().join(format!("ssm-fwd-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fwd.sock");
    let _ = std::fs::remove_file(&path);
    let listener = Listener::bind(&ListenAddr::Unix(path.clone()))
        .await
        .unwrap();
    assert_eq!(
        listener.describe(),
        format!("unix socket {}", path.display())
    );
    // A second bind on the same path fails clearly.
    let e = Listener::bind(&ListenAddr::Unix(path.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    assert!(e.to_string().contains("already exists"), "{e}");
    start_mux(listener, Config::for_agent("3.3.0.0")).await;
    let s = UnixStream::connect(&path).await.unwrap();
    assert_eq!(
        echo_round(s, b"over a unix socket").await,
        b"over a unix socket"
    );
}

#[tokio::test]
async fn busy_port_fails_at_once() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let started = std::time::Instant::now();
    let e = Listener::bind(&ListenAddr::Tcp(addr)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(e.to_string(), format!("address {addr} is already in use"));
}

#[tokio::test]
async fn ipv6_bind() {
    let Ok(l) = Listener::bind(&ListenAddr::Tcp("[::1]:0".parse().unwrap())).await else {
        eprintln!("no IPv6 loopback here");
        return;
    };
    let addr = l.local_addr().unwrap();
    assert!(addr.is_ipv6());
    start_mux(l, Config::for_agent("3.3.0.0")).await;
    let s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(echo_round(s, b"v6").await, b"v6");
}

#[tokio::test]
async fn basic_mode_reconnect_cycle() {
    // The "agent": echoes whatever arrives on the session stream.
    let (a, mut b) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            let n = b.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            b.write_all(&buf[..n]).await.unwrap();
        }
    });
    let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let flags = Arc::new(AtomicUsize::new(0));
    let f2 = flags.clone();
    let stats = Arc::new(Stats::default());
    tokio::spawn(forward_basic(
        a,
        listener,
        move || {
            f2.fetch_add(1, Ordering::SeqCst);
            Ok(())
        },
        stats.clone(),
    ));
    for round in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let msg = format!("round {round}");
        s.write_all(msg.as_bytes()).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, msg.as_bytes());
        drop(s);
        // The flag follows the close.
        tokio::time::timeout(Duration::from_secs(5), async {
            while flags.load(Ordering::SeqCst) < round + 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("DisconnectToPort not sent");
    }
    assert_eq!(stats.connections.load(Ordering::Relaxed), 3);
}

/// The forwarder against the reference smux (Go, xtaci/smux) as the agent side: the Go peer
/// echoes every stream and opens one of its own, which a client refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_against_go_smux() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(bin) = go_peer::build(
        &manifest.join("../../core/tests/go_peer"),
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    ) else {
        return;
    };
    let mut child = tokio::process::Command::new(bin)
        .arg("server")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let io = tokio::io::join(child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    tokio::spawn(forward_mux(io, Config::default(), listener, stats.clone()));
    let mut tasks = Vec::new();
    for i in 0..20 {
        tasks.push(tokio::spawn(async move {
            let data = payload(i, 50_000 + i * 3_000);
            let s = TcpStream::connect(addr).await.unwrap();
            assert!(echo_round(s, &data).await == data, "connection {i}");
        }));
    }
    join_all(tasks).await;
    assert_eq!(stats.connections.load(Ordering::Relaxed), 20);
    drop(child);
}

#[tokio::test]
async fn stream_mode_copies_both_ways() {
    let (session, mut agent) = tokio::io::duplex(1024);
    let (local, mut user) = tokio::io::duplex(1024);
    let run = tokio::spawn(forward_stream(session, local));
    user.write_all(b"ssh client hello").await.unwrap();
    let mut b = [0u8; 16];
    agent.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ssh client hello");
    agent.write_all(b"SSH-2.0-server").await.unwrap();
    let mut b = [0u8; 14];
    user.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"SSH-2.0-server");
    // The user closes; the remote side sees EOF, closes too; the forwarder ends.
    user.shutdown().await.unwrap();
    let mut rest = Vec::new();
    agent.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    drop(agent);
    let (sent, received) = run.await.unwrap().unwrap();
    assert_eq!((sent, received), (16, 14));
}

/// More streams in sequence than there are slots: every finished stream must give its slot back,
/// also when our FIN is the last frame of the stream (no input follows to report its release).
#[tokio::test]
async fn slots_are_recycled() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let cfg = Config::for_agent("3.3.0.0");
    let (client, _driver, _) = MuxSession::start(a, ssm_proto::smux::Role::Client, cfg);
    let (_server, _sdriver, mut incoming) =
        MuxSession::start(b, ssm_proto::smux::Role::Server, cfg);
    // Server: read one message, echo it, close its side, then wait for the client's FIN.
    tokio::spawn(async move {
        while let Some(st) = incoming.recv().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let n = st.read(&mut buf).await.unwrap();
                st.write_all(&buf[..n]).await.unwrap();
                st.shutdown().await.unwrap();
                while st.read(&mut buf).await.unwrap() > 0 {}
            });
        }
    });
    for i in 0..(MAX_STREAMS + 50) {
        let st = client
            .open()
            .await
            .unwrap_or_else(|e| panic!("stream {i}: {e}"));
        let msg = format!("stream {i}");
        st.write_all(msg.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            let n = st.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, msg.as_bytes());
        // The peer's FIN is in and read; ours is the stream's last frame.
        st.shutdown().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(client.stream_count(), 0);
}

/// What the client writes to the agent in the basic-mode test: bytes, or a flag among them.
enum Piece {
    Data(Vec<u8>),
    Flag(Flag),
}

/// The client's end of the client → agent direction: every write is one piece, in order with
/// the flags the test's `disconnect` sends (as a session's input carries them).
struct PieceWriter(tokio::sync::mpsc::UnboundedSender<Piece>);

impl AsyncWrite for PieceWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.0.send(Piece::Data(buf.to_vec())) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The agent's end: the pieces as [`BasicInput`] parts.
struct PieceReader {
    rx: tokio::sync::mpsc::UnboundedReceiver<Piece>,
    current: Vec<u8>,
    off: usize,
}

impl BasicInput for PieceReader {
    fn poll_read_part(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<Part>> {
        loop {
            if self.off < self.current.len() {
                let n = buf.len().min(self.current.len() - self.off);
                buf[..n].copy_from_slice(&self.current[self.off..self.off + n]);
                self.off += n;
                return Poll::Ready(Ok(Part::Data(n)));
            }
            match std::task::ready!(self.rx.poll_recv(cx)) {
                Some(Piece::Data(d)) => (self.current, self.off) = (d, 0),
                Some(Piece::Flag(f)) => return Poll::Ready(Ok(Part::Flag(f))),
                None => return Poll::Ready(Ok(Part::End)),
            }
        }
    }
}

/// Basic mode end to end: the client forwarder and the agent side, the DisconnectToPort flag
/// carried among the bytes as a session's input carries it; each local connection gets its own
/// target connection, and the agent side ends at the input's end.
#[tokio::test]
async fn basic_mode_against_agent_side() {
    let target = echo_server().await;
    let (to_agent, from_client) = tokio::sync::mpsc::unbounded_channel();
    let input = PieceReader {
        rx: from_client,
        current: Vec::new(),
        off: 0,
    };
    let (a, b) = tokio::io::duplex(64 * 1024);
    let connects = Arc::new(AtomicUsize::new(0));
    let c2 = connects.clone();
    let agent = tokio::spawn(serve_basic(input, b, move || {
        c2.fetch_add(1, Ordering::SeqCst);
        async move {
            let s = TcpStream::connect(target).await?;
            Ok(Box::new(s) as Box<dyn LocalStreamDyn>)
        }
    }));
    let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let flags = to_agent.clone();
    let client = tokio::spawn(forward_basic(
        tokio::io::join(a, PieceWriter(to_agent)),
        listener,
        move || {
            flags
                .send(Piece::Flag(Flag::DisconnectToPort))
                .map_err(|_| std::io::Error::other("agent gone"))
        },
        stats.clone(),
    ));
    for round in 0..3usize {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let data = payload(round, 100_000);
        let (mut r, mut w) = s.split();
        let (_, got) = tokio::join!(async { w.write_all(&data).await.unwrap() }, async {
            let mut got = vec![0u8; data.len()];
            r.read_exact(&mut got).await.unwrap();
            got
        });
        assert!(got == data, "round {round}");
        drop(s);
        tokio::time::timeout(Duration::from_secs(5), async {
            while stats.active.load(Ordering::SeqCst) != 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    }
    assert_eq!(
        connects.load(Ordering::SeqCst),
        3,
        "one target connection per local one"
    );
    // The client goes (its writer and flag sender with it): the agent side sees the end.
    client.abort();
    let end = tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .expect("the agent side ends with its input")
        .unwrap()
        .unwrap();
    assert_eq!(end, BasicEnd::InputEnded);
}
