//! Port forwarding through the local emulator, on loopback with TLS: throughput and CPU per MB
//! for our client and for a baseline configured like the official session-manager-plugin, the
//! keystroke round trip through a shell, and integrity of 100 MB each way under faults.
//!
//! ```text
//! cargo bench -p ssm-tokio --bench port_forwarding            # full run
//! cargo bench -p ssm-tokio --bench port_forwarding -- --only integrity
//! cargo test -p ssm-tokio --bench port_forwarding             # quick (CI)
//! ```
//!
//! Without `--bench` on the command line (`cargo bench` passes it, `cargo test` does not) or
//! with `--quick`, every part runs once at a small size and the process fails on a stall, a timeout
//! or a digest mismatch: the CI smoke test. Options (after `--`): `--only perf,latency,integrity`,
//! `--mb N` (per run, ours and downloads), `--baseline-up-mb N` (baseline uploads and echoes),
//! `--conns 1,8,64`, `--dirs up,down,echo` (default `up,down`; `echo`: both directions at
//! once, the target server echoing, MB/s counted one way), `--rounds N`
//! (default 3, median reported),
//! `--samples N`, `--integrity-mb N`, `--integrity-conns N`, `--cut-after FRAMES`,
//! `--stall-secs N`.
//!
//! Layout, per run: this binary starts itself again as a child process that runs the emulator
//! (TLS, emulated agent unpaced, 1024-byte agent chunks) and the target TCP server behind it;
//! the parent starts the session through the emulator's HTTP API (`StartSession`,
//! `ResumeSession` after cuts), runs our client and its smux forwarder, and the local
//! application end (TCP connections to the forwarder's listener). CPU time is read from
//! `/proc/<pid>/stat` (user + system, all threads) for both processes over the transfer only,
//! the same way for both clients.
//!
//! The target server speaks a tiny protocol: an 18-byte header (`U` or `D`, a hash flag, length
//! and seed as big-endian u64). `U`: it reads to EOF and answers the byte count and the SHA-256
//! of what came (zeros without the flag). `D`: it sends `length` bytes of the seeded pattern and
//! closes. `S` (straight to the target server, not through the session): its counters, so a
//! stall report tells what reached the far end. The pattern is a pseudo-random ring of a prime length, so a reordered, lost or
//! duplicated chunk changes the digest.
//!
//! The baseline is our engine and driver configured like the official client: 1024-byte
//! messages, a window of `usize::MAX` (the engine still holds at most its 256 KiB / 256
//! messages of send buffer; at one message per millisecond on loopback a handful are in
//! flight, so that bound never binds), and in front of the session's input the plugin's send
//! loop as a harness knob ([`paced`]): one thread per session reads at most 1024 bytes, hands
//! them to the session, then sleeps 1 ms. It sleeps with `std::thread::sleep` (nanosleep, like
//! Go's `time.Sleep`); the driver's own `ConnectOptions::pacing` uses tokio's millisecond timer
//! wheel, whose 1 ms pause lasts about 2 ms, which would halve the baseline unfairly.
#![allow(
    clippy::std_instead_of_core,
    reason = "a std benchmark; the workspace lint guards the no_std core"
)]

use std::io::{self, BufRead, Read as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use ssm_emulator::{Emulator, EmulatorConfig};
use ssm_tokio::forward::{forward_mux, ListenAddr, Listener, PortMode, Stats};
use ssm_tokio::{
    ConnectOptions, EngineConfig, Faults, Grant, SessionEvent, StreamWriter, TlsOptions,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};

/// The child process runs the emulator when this variable is set (its value: the faults).
const CHILD_ENV: &str = "SSM_PORTBENCH_EMULATOR";
/// Length of the pattern ring: a prime, so no chunk size divides it.
const RING_LEN: usize = 1_048_573;
/// Largest slice read or written at once by the application ends.
const IO: usize = 64 * 1024;
const MB: f64 = 1e6;
/// `ResumeSession` calls made (one per WebSocket the emulator cut), for the integrity report.
static RESUMES: AtomicU64 = AtomicU64::new(0);
/// Child: bytes the target server received (uploads) and sent (downloads), connections ended.
static TARGET: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Clone, Debug)]
struct Opts {
    quick: bool,
    perf: bool,
    latency: bool,
    integrity: bool,
    mb: f64,
    baseline_up_mb: f64,
    conns: Vec<usize>,
    dirs: Vec<Dir>,
    rounds: usize,
    samples: usize,
    integrity_mb: f64,
    integrity_conns: usize,
    cut_after: u64,
    stall: Duration,
}

impl Opts {
    fn parse() -> Opts {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let value = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let num = |name: &str, quick: f64, full: f64, q: bool| {
            value(name)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(if q { quick } else { full })
        };
        // `cargo bench` passes --bench; `cargo test` does not.
        let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
        let only = value("--only").unwrap_or_else(|| "perf,latency,integrity".into());
        let conns = value("--conns")
            .map(|v| v.split(',').filter_map(|c| c.parse().ok()).collect())
            .unwrap_or_else(|| if quick { vec![1, 8] } else { vec![1, 8, 64] });
        let dirs = value("--dirs")
            .unwrap_or_else(|| "up,down".into())
            .split(',')
            .filter_map(|d| match d {
                "up" => Some(Dir::Up),
                "down" => Some(Dir::Down),
                "echo" => Some(Dir::Echo),
                _ => None,
            })
            .collect();
        Opts {
            quick,
            dirs,
            perf: only.contains("perf"),
            latency: only.contains("latency"),
            integrity: only.contains("integrity"),
            mb: num("--mb", 1.0, 128.0, quick),
            baseline_up_mb: num("--baseline-up-mb", 0.1, 4.0, quick),
            conns,
            rounds: num("--rounds", 1.0, 3.0, quick).max(1.0) as usize,
            samples: num("--samples", 20.0, 300.0, quick) as usize,
            integrity_mb: num("--integrity-mb", 2.0, 100.0, quick),
            integrity_conns: num("--integrity-conns", 2.0, 4.0, quick).max(1.0) as usize,
            cut_after: num("--cut-after", 1000.0, 40_000.0, quick) as u64,
            stall: Duration::from_secs_f64(num("--stall-secs", 20.0, 20.0, quick)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The pattern

/// The pseudo-random ring, extended by `IO` bytes so any slice of up to `IO` is contiguous.
struct Ring(Vec<u8>);

impl Ring {
    fn new() -> Ring {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let data = (0..RING_LEN + IO)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect::<Vec<u8>>();
        let mut v = data;
        let (head, tail) = v.split_at_mut(RING_LEN);
        tail.copy_from_slice(&head[..IO]);
        Ring(v)
    }

    /// `n` (≤ `IO`) bytes of stream `seed` from offset `off`.
    fn slice(&self, seed: u64, off: u64, n: usize) -> &[u8] {
        let start = ((seed + off) % RING_LEN as u64) as usize;
        &self.0[start..start + n]
    }

    /// SHA-256 of `len` bytes of stream `seed`.
    fn digest(&self, seed: u64, len: u64) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut off = 0;
        while off < len {
            let n = (len - off).min(IO as u64) as usize;
            h.update(self.slice(seed, off, n));
            off += n as u64;
        }
        h.finalize().into()
    }
}

/// The digest comparison can fail: a stream with two 1 KiB messages swapped, one lost, or one
/// delivered twice hashes differently from the pattern.
fn self_check(ring: &Ring) -> Result<(), String> {
    let seed = seed_of(3);
    let len = 64 * 1024u64;
    let want = ring.digest(seed, len);
    let msgs: Vec<&[u8]> = (0..64).map(|k| ring.slice(seed, k * 1024, 1024)).collect();
    let digest = |order: &[usize]| -> [u8; 32] {
        let mut h = Sha256::new();
        for &k in order {
            h.update(msgs[k]);
        }
        h.finalize().into()
    };
    let straight: Vec<usize> = (0..64).collect();
    let mut swapped = straight.clone();
    swapped.swap(10, 11);
    let mut lost = straight.clone();
    lost.remove(20);
    let mut twice = straight.clone();
    twice.insert(30, 30);
    if digest(&straight) != want {
        return Err("the pattern's digest is not reproducible".into());
    }
    for (what, order) in [("swapped", swapped), ("lost", lost), ("duplicated", twice)] {
        if digest(&order) == want {
            return Err(format!("a {what} message leaves the digest unchanged"));
        }
    }
    Ok(())
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// The child: emulator + target server

fn child_main(spec: &str) -> io::Result<()> {
    // The parent closes our stdin when it is done with us (or dies): exit then.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    let faults = spec.strip_prefix("faults:").map(|rest| {
        let mut f = Faults::mild(42);
        f.cut_after = rest.parse().ok().filter(|&n| n > 0);
        f
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let ring = Arc::new(Ring::new());
        let target = TcpListener::bind("127.0.0.1:0").await?;
        let target_port = target.local_addr()?.port();
        tokio::spawn(async move {
            while let Ok((s, _)) = target.accept().await {
                let ring = ring.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_target(s, &ring).await {
                        eprintln!("target server: {e}");
                    }
                });
            }
        });
        let emu = Emulator::start(EmulatorConfig {
            // The client is what is measured: the emulated agent does not sleep per message.
            pacing: None,
            faults,
            ..EmulatorConfig::default()
        })
        .await?;
        let hello = serde_json::json!({
            "endpoint": emu.endpoint_url(),
            "ca_pem": emu.ca_pem(),
            "target_port": target_port,
        });
        println!("{hello}");
        std::future::pending::<io::Result<()>>().await
    })
}

async fn serve_target(mut s: TcpStream, ring: &Ring) -> io::Result<()> {
    let _ = s.set_nodelay(true);
    let mut head = [0u8; 18];
    s.read_exact(&mut head).await?;
    let hash = head[1] != 0;
    let len = u64::from_be_bytes(head[2..10].try_into().unwrap_or_default());
    let seed = u64::from_be_bytes(head[10..18].try_into().unwrap_or_default());
    let (mut r, mut w) = s.split();
    match head[0] {
        b'U' => {
            let (count, digest) = read_all(&mut r, hash, &TARGET[0]).await?;
            TARGET[2].fetch_add(1, Relaxed);
            let mut reply = [0u8; 40];
            reply[..8].copy_from_slice(&count.to_be_bytes());
            reply[8..].copy_from_slice(&digest);
            w.write_all(&reply).await?;
            w.shutdown().await
        }
        b'D' => {
            let mut off = 0;
            while off < len {
                let n = (len - off).min(IO as u64) as usize;
                w.write_all(ring.slice(seed, off, n)).await?;
                TARGET[1].fetch_add(n as u64, Relaxed);
                off += n as u64;
            }
            TARGET[2].fetch_add(1, Relaxed);
            w.shutdown().await
        }
        b'E' => {
            let mut buf = vec![0u8; IO];
            loop {
                let n = r.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                TARGET[0].fetch_add(n as u64, Relaxed);
                w.write_all(&buf[..n]).await?;
                TARGET[1].fetch_add(n as u64, Relaxed);
            }
            TARGET[2].fetch_add(1, Relaxed);
            w.shutdown().await
        }
        b'S' => {
            let mut reply = [0u8; 24];
            for (k, c) in TARGET.iter().enumerate() {
                reply[k * 8..k * 8 + 8].copy_from_slice(&c.load(Relaxed).to_be_bytes());
            }
            w.write_all(&reply).await?;
            w.shutdown().await
        }
        op => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown op {op}"),
        )),
    }
}

/// A running child emulator.
struct Emu {
    child: Child,
    endpoint: SocketAddr,
    ca_pem: String,
    target_port: u16,
}

impl Emu {
    fn start(faults: Option<u64>) -> io::Result<Emu> {
        let spec = match faults {
            Some(cut) => format!("faults:{cut}"),
            None => "clean".into(),
        };
        let mut child = Command::new(std::env::current_exe()?)
            .env(CHILD_ENV, spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        io::BufReader::new(stdout).read_line(&mut line)?;
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| io::Error::other(format!("child emulator said {line:?}: {e}")))?;
        let endpoint = v["endpoint"]
            .as_str()
            .and_then(|u| u.strip_prefix("http://"))
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| io::Error::other("no endpoint"))?;
        Ok(Emu {
            child,
            endpoint,
            ca_pem: v["ca_pem"].as_str().unwrap_or_default().to_string(),
            target_port: v["target_port"].as_u64().unwrap_or_default() as u16,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The target server's counters (bytes received, bytes sent, connections ended), asked
/// directly; `None` if it does not answer within a second.
async fn target_counters(port: u16) -> Option<[u64; 3]> {
    let ask =
        async {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
            s.write_all(&[b'S'; 18]).await?;
            let mut reply = [0u8; 24];
            s.read_exact(&mut reply).await?;
            Ok::<_, io::Error>([0, 1, 2].map(|k| {
                u64::from_be_bytes(reply[k * 8..k * 8 + 8].try_into().unwrap_or_default())
            }))
        };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .ok()?
        .ok()
}

/// One SSM API call over plain HTTP to the emulator.
async fn api(endpoint: SocketAddr, op: &str, body: &serde_json::Value) -> io::Result<Grant> {
    let body = body.to_string();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {endpoint}\r\nX-Amz-Target: AmazonSSM.{op}\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(endpoint).await?;
    s.write_all(req.as_bytes()).await?;
    s.shutdown().await?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await?;
    let text = String::from_utf8_lossy(&resp);
    let json = text.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| io::Error::other(format!("{op}: {e} in {json:?}")))?;
    if v.get("__type").is_some() {
        return Err(io::Error::other(format!("{op} failed: {}", v["__type"])));
    }
    // The emulator is local: its URLs name 127.0.0.1.
    Grant::parse_with(json.as_bytes(), ssm_tokio::Endpoints::DangerousAnyHost)
        .map_err(|e| io::Error::other(format!("{op}: {e}")))
}

/// CPU seconds (user + system, every thread) of a process so far, from `/proc/<pid>/stat`
/// (clock ticks of `USER_HZ` = 100 on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of the file; `after` starts at field 3.
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

// ---------------------------------------------------------------------------------------------
// One transfer run

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Ours,
    Baseline,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Ours => "ours",
            Client::Baseline => "baseline",
        }
    }

    fn options(self, ca_pem: &str) -> ConnectOptions {
        let mut config = EngineConfig::client(7);
        if self == Client::Baseline {
            config.chunk_size = 1024;
            config.window = usize::MAX;
        }
        ConnectOptions {
            tls: TlsOptions::emulator(ca_pem.as_bytes().to_vec()),
            config: Some(config),
            ..ConnectOptions::default()
        }
    }

    /// The session's input as this client writes it: directly, or through the plugin's send
    /// loop ([`paced`]).
    fn input(self, input: StreamWriter) -> Box<dyn AsyncWrite + Send + Unpin> {
        match self {
            Client::Ours => Box::new(input),
            Client::Baseline => Box::new(paced(input)),
        }
    }
}

/// The official plugin's send loop (`transferDataToServer`): read at most 1024 bytes, send them
/// as one message, sleep 1 ms; once per session. Runs on its own thread so the pause has
/// nanosleep's precision, as Go's. Returns the end the application writes to.
fn paced(mut input: StreamWriter) -> DuplexStream {
    let handle = tokio::runtime::Handle::current();
    let (front, mut back) = tokio::io::duplex(64 * 1024);
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        loop {
            let n = match handle.block_on(back.read(&mut buf)) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if handle.block_on(input.write_all(&buf[..n])).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = handle.block_on(input.shutdown());
    });
    front
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
    /// Both at once: the target server echoes; MB/s counts one direction.
    Echo,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::Up => "upload",
            Dir::Down => "download",
            Dir::Echo => "echo",
        }
    }
}

struct Spec {
    client: Client,
    dir: Dir,
    conns: usize,
    bytes: u64,
    /// Faults in the emulator, with `cut_after`; also turns on hashing.
    faults: Option<u64>,
}

impl Spec {
    fn label(&self) -> String {
        format!(
            "{} {} x{} {:.1} MB{}",
            self.client.name(),
            self.dir.name(),
            self.conns,
            self.bytes as f64 / MB,
            if self.faults.is_some() { " faults" } else { "" }
        )
    }
}

#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    received: AtomicU64,
    done: AtomicUsize,
}

/// What one connection ended with: bytes and SHA-256 sent and received (payload only).
struct ConnEnd {
    sent: (u64, [u8; 32]),
    got: (u64, [u8; 32]),
}

struct Outcome {
    secs: f64,
    client_cpu: f64,
    emu_cpu: f64,
    conns: Vec<ConnEnd>,
}

async fn conn(
    addr: SocketAddr,
    dir: Dir,
    len: u64,
    seed: u64,
    hash: bool,
    ring: Arc<Ring>,
    p: Arc<Progress>,
) -> io::Result<ConnEnd> {
    let s = TcpStream::connect(addr).await?;
    let _ = s.set_nodelay(true);
    let (mut r, mut w) = s.into_split();
    let mut head = [0u8; 18];
    head[0] = match dir {
        Dir::Up => b'U',
        Dir::Down => b'D',
        Dir::Echo => b'E',
    };
    head[1] = u8::from(hash);
    head[2..10].copy_from_slice(&len.to_be_bytes());
    head[10..18].copy_from_slice(&seed.to_be_bytes());
    w.write_all(&head).await?;
    if dir == Dir::Echo {
        let send = send_all(&mut w, &ring, seed, len, hash, &p);
        let (sent, got) = tokio::join!(send, read_all(&mut r, hash, &p.received));
        return Ok(ConnEnd {
            sent: (len, sent?),
            got: got?,
        });
    }
    if dir == Dir::Up {
        let sent = send_all(&mut w, &ring, seed, len, hash, &p).await?;
        let mut reply = [0u8; 40];
        r.read_exact(&mut reply).await?;
        p.received.fetch_add(40, Relaxed);
        let count = u64::from_be_bytes(reply[..8].try_into().unwrap_or_default());
        let mut got = [0u8; 32];
        got.copy_from_slice(&reply[8..]);
        Ok(ConnEnd {
            sent: (len, sent),
            got: (count, got),
        })
    } else {
        w.shutdown().await?;
        // The digest of what the source sent is computed after the run (outside the timing).
        Ok(ConnEnd {
            sent: (len, [0; 32]),
            got: read_all(&mut r, hash, &p.received).await?,
        })
    }
}

/// Writes `len` bytes of the pattern, then shuts the write side: with `hash`, their SHA-256.
async fn send_all(
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    ring: &Ring,
    seed: u64,
    len: u64,
    hash: bool,
    p: &Progress,
) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut off = 0;
    while off < len {
        let n = (len - off).min(IO as u64) as usize;
        let chunk = ring.slice(seed, off, n);
        if hash {
            h.update(chunk);
        }
        w.write_all(chunk).await?;
        p.sent.fetch_add(n as u64, Relaxed);
        off += n as u64;
    }
    w.shutdown().await?;
    Ok(if hash { h.finalize().into() } else { [0; 32] })
}

/// Reads to EOF: the byte count and, with `hash`, the SHA-256.
async fn read_all<R: AsyncRead + Unpin>(
    r: &mut R,
    hash: bool,
    received: &AtomicU64,
) -> io::Result<(u64, [u8; 32])> {
    let mut h = Sha256::new();
    let mut count = 0u64;
    let mut buf = vec![0u8; IO];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if hash {
            h.update(&buf[..n]);
        }
        count += n as u64;
        received.fetch_add(n as u64, Relaxed);
    }
    Ok((count, if hash { h.finalize().into() } else { [0; 32] }))
}

/// Runs one transfer in a fresh child emulator and a fresh runtime; never hangs: a run that
/// moves nothing for `stall` (or exceeds its deadline) ends with an error naming the counters.
fn run(spec: &Spec, opts: &Opts, ring: &Arc<Ring>) -> Result<Outcome, String> {
    let emu = Emu::start(spec.faults).map_err(|e| format!("child emulator: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let r = rt.block_on(transfer(spec, opts, &emu, ring.clone()));
    rt.shutdown_background();
    drop(emu);
    let mut out = r?;
    if spec.faults.is_some() && spec.dir == Dir::Down {
        for (i, c) in out.conns.iter_mut().enumerate() {
            c.sent.1 = ring.digest(seed_of(i), c.sent.0);
        }
    }
    Ok(out)
}

fn seed_of(i: usize) -> u64 {
    (i as u64) * 7919 + 1
}

/// Connects `client` to a fresh session of `emu` (resuming through the API after cuts) and
/// waits for the handshake.
async fn open_session(
    client: Client,
    emu: &Emu,
    req: &serde_json::Value,
    terminal_size: Option<(u16, u16)>,
) -> Result<(ssm_tokio::ClientSession, ssm_tokio::HandshakeInfo), String> {
    let target = api(emu.endpoint, "StartSession", req)
        .await
        .map_err(|e| e.to_string())?;
    let mut options = client.options(&emu.ca_pem);
    options.terminal_size = terminal_size;
    let session_id = Emulator::session_id_of(target.stream_url().as_str())
        .unwrap_or_default()
        .to_string();
    let endpoint = emu.endpoint;
    options.resume = Some(Arc::new(move || {
        let body = serde_json::json!({ "SessionId": session_id });
        RESUMES.fetch_add(1, Relaxed);
        Box::pin(async move { api(endpoint, "ResumeSession", &body).await.map(Some) })
    }));
    let mut s = ssm_tokio::connect(target, options)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let info = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match s.events.next().await {
                Some(SessionEvent::HandshakeComplete(info)) => return Ok(info),
                Some(SessionEvent::Closed(r)) => return Err(format!("closed: {r}")),
                None => return Err("events ended before the handshake".to_string()),
                Some(_) => {}
            }
        }
    })
    .await
    .map_err(|_| "no handshake within 30 s".to_string())??;
    Ok((s, info))
}

/// Opens a multiplexed port session to the child's target server and starts the forwarder;
/// returns the listener's address and the forwarder's counters.
async fn open_port_session(spec: &Spec, emu: &Emu) -> Result<(SocketAddr, Arc<Stats>), String> {
    let req = serde_json::json!({
        "Target": "i-0portbench",
        "DocumentName": "AWS-StartPortForwardingSessionToRemoteHost",
        "Parameters": {"host": ["127.0.0.1"], "portNumber": [emu.target_port.to_string()]},
    });
    let (s, info) = open_session(spec.client, emu, &req, None).await?;
    if info.port_mode().map_err(|e| e.to_string())? != PortMode::Multiplexed {
        return Err("the port session is not multiplexed".into());
    }
    // What `run_port_session` does for a multiplexed session, with the client's input path.
    let (output, _stderr, input, mut events, _control, _finished) = s.into_parts();
    tokio::spawn(async move { while events.next().await.is_some() {} });
    let io = tokio::io::join(output, spec.client.input(input));
    let config = ssm_proto::smux::Config::for_agent(&info.agent_version);
    let listener = Listener::bind(&ListenAddr::Tcp(([127, 0, 0, 1], 0).into()))
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener
        .local_addr()
        .ok_or_else(|| "listener has no address".to_string())?;
    let stats = Arc::new(Stats::default());
    let st = stats.clone();
    tokio::spawn(async move {
        if let Err(e) = forward_mux(io, config, listener, st).await {
            eprintln!("  port session ended: {e}");
        }
    });
    Ok((addr, stats))
}

async fn transfer(spec: &Spec, opts: &Opts, emu: &Emu, ring: Arc<Ring>) -> Result<Outcome, String> {
    let (addr, stats) = open_port_session(spec, emu).await?;
    let hash = spec.faults.is_some();
    let p = Arc::new(Progress::default());
    let me = std::process::id();
    let (c0, e0) = (cpu_seconds(me), cpu_seconds(emu.pid()));
    let t0 = Instant::now();
    let per = spec.bytes / spec.conns as u64;
    let mut tasks = Vec::new();
    for i in 0..spec.conns {
        let len = if i + 1 == spec.conns {
            spec.bytes - per * (spec.conns as u64 - 1)
        } else {
            per
        };
        let (ring, p) = (ring.clone(), p.clone());
        let dir = spec.dir;
        tasks.push(tokio::spawn(async move {
            let r = conn(addr, dir, len, seed_of(i), hash, ring, p.clone()).await;
            p.done.fetch_add(1, Relaxed);
            r
        }));
    }
    let mut all = tokio::spawn(async move {
        let mut ends = Vec::new();
        for t in tasks {
            ends.push(
                t.await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok::<_, String>(ends)
    });
    // Generous: 0.2 MB/s plus a minute.
    let deadline = Duration::from_secs_f64(60.0 + spec.bytes as f64 / 0.2e6);
    let target_port = emu.target_port;
    let base = target_counters(target_port).await.unwrap_or_default();
    let mut target = base;
    let counters = |p: &Progress, s: &Stats, t: &[u64; 3]| {
        [
            p.sent.load(Relaxed),
            p.received.load(Relaxed),
            s.bytes_out.load(Relaxed),
            s.bytes_in.load(Relaxed),
            t[0] - base[0],
            t[1] - base[1],
        ]
    };
    let describe = |p: &Progress, s: &Stats, t: &[u64; 3]| {
        let [sent, recv, out, inn, t_in, t_out] = counters(p, s, t);
        format!(
            "app sent {sent} B, forwarder took {out} B, target received {t_in} B; \
             target sent {t_out} B, forwarder gave {inn} B, app received {recv} B; \
             connections done {}/{} (target side {}), forwarder streams open {}",
            p.done.load(Relaxed),
            spec.conns,
            t[2] - base[2],
            s.active.load(Relaxed)
        )
    };
    let mut last = counters(&p, &stats, &target);
    let mut tick = 0u64;
    let mut last_change = Instant::now();
    let mut last_print = Instant::now();
    let ends = loop {
        tokio::select! {
            r = &mut all => break r.map_err(|e| e.to_string())??,
            () = tokio::time::sleep(Duration::from_millis(250)) => {
                tick += 1;
                if tick.is_multiple_of(4) {
                    target = target_counters(target_port).await.unwrap_or(target);
                }
                let now = counters(&p, &stats, &target);
                if now != last {
                    last = now;
                    last_change = Instant::now();
                }
                if last_change.elapsed() >= opts.stall {
                    all.abort();
                    return Err(format!(
                        "STALLED: nothing moved for {:.0} s after {:.1} s; {}",
                        opts.stall.as_secs_f64(),
                        t0.elapsed().as_secs_f64(),
                        describe(&p, &stats, &target)
                    ));
                }
                if t0.elapsed() >= deadline {
                    all.abort();
                    return Err(format!(
                        "TIMEOUT after {:.0} s; {}",
                        deadline.as_secs_f64(),
                        describe(&p, &stats, &target)
                    ));
                }
                if last_print.elapsed() >= Duration::from_secs(2) {
                    last_print = Instant::now();
                    // Uploads: what reached the target server (as of the last second);
                    // downloads: what the application received.
                    let moved = if spec.dir == Dir::Up { now[4] } else { now[1] };
                    eprintln!(
                        "  .. {:5.1} s  {:6.1} / {:.1} MB  ({:.2} MB/s)",
                        t0.elapsed().as_secs_f64(),
                        moved as f64 / MB,
                        spec.bytes as f64 / MB,
                        moved as f64 / MB / t0.elapsed().as_secs_f64()
                    );
                }
            }
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    let (c1, e1) = (cpu_seconds(me), cpu_seconds(emu.pid()));
    for (i, c) in ends.iter().enumerate() {
        if c.got.0 != c.sent.0 {
            return Err(format!(
                "connection {i}: {} bytes sent, {} arrived",
                c.sent.0, c.got.0
            ));
        }
    }
    Ok(Outcome {
        secs,
        client_cpu: c1 - c0,
        emu_cpu: e1 - e0,
        conns: ends,
    })
}

// ---------------------------------------------------------------------------------------------
// Keystroke latency

/// A shell session (bash in the emulator's PTY) ready for typing.
struct Shell {
    out: ssm_tokio::StreamReader,
    input: Box<dyn AsyncWrite + Send + Unpin>,
    buf: Vec<u8>,
}

impl Shell {
    async fn open(client: Client, emu: &Emu) -> Result<Shell, String> {
        let req = serde_json::json!({ "Target": "i-0portbench" });
        // Wide enough that the typed line never wraps.
        let (s, _) = open_session(client, emu, &req, Some((2000, 50))).await?;
        let (mut out, _err, input, mut events, _control, _fin) = s.into_parts();
        tokio::spawn(async move { while events.next().await.is_some() {} });
        let mut buf = vec![0u8; 64 * 1024];
        // The prompt: some output, then 300 ms of quiet.
        let mut seen = 0;
        let started = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_millis(300), out.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err("shell ended".to_string()),
                Ok(Ok(n)) => seen += n,
                Err(_) if seen > 0 => break,
                Err(_) if started.elapsed() > Duration::from_secs(20) => {
                    return Err("no prompt in 20 s".to_string())
                }
                Err(_) => {}
            }
        }
        Ok(Shell {
            out,
            input: client.input(input),
            buf,
        })
    }

    /// Types one `x` and waits for its echo.
    async fn keystroke(&mut self) -> Result<Duration, String> {
        let t = Instant::now();
        self.input
            .write_all(b"x")
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let n = tokio::time::timeout(Duration::from_secs(10), self.out.read(&mut self.buf))
                .await
                .map_err(|_| "STALLED: no echo in 10 s".to_string())?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("shell ended".into());
            }
            if self.buf[..n].contains(&b'x') {
                return Ok(t.elapsed());
            }
        }
    }
}

/// Round trips of one byte typed into a shell until its echo, for both clients, their
/// keystrokes alternating (two sessions on one emulator) so both see the same machine.
fn keystrokes(samples: usize) -> Result<[Vec<Duration>; 2], String> {
    let emu = Emu::start(None).map_err(|e| format!("child emulator: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let r = rt.block_on(async {
        let mut shells = [
            Shell::open(Client::Ours, &emu).await?,
            Shell::open(Client::Baseline, &emu).await?,
        ];
        let warmup = 10;
        let mut lat = [Vec::with_capacity(samples), Vec::with_capacity(samples)];
        for i in 0..warmup + samples {
            // Who goes first alternates too.
            for k in [i % 2, 1 - i % 2] {
                let d = shells[k]
                    .keystroke()
                    .await
                    .map_err(|e| format!("{}, keystroke {i}: {e}", CLIENTS[k].name()))?;
                if i >= warmup {
                    lat[k].push(d);
                }
                // A typist's pause, so the baseline's 1 ms send pause has always passed.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        for shell in &mut shells {
            let _ = shell.input.write_all(b"\x15exit\r").await;
        }
        Ok(lat)
    });
    rt.shutdown_background();
    r
}

const CLIENTS: [Client; 2] = [Client::Ours, Client::Baseline];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ---------------------------------------------------------------------------------------------
// Main

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One client's rounds of one row: MB/s, client CPU s/MB, emulator CPU s/MB each.
#[derive(Default)]
struct Samples([Vec<f64>; 3]);

impl Samples {
    fn run(&mut self, spec: &Spec, opts: &Opts, ring: &Arc<Ring>) -> Result<(), String> {
        eprintln!("run: {}", spec.label());
        let o = run(spec, opts, ring)?;
        let mb = spec.bytes as f64 / MB;
        eprintln!(
            "  done in {:.2} s: {:.2} MB/s, client CPU {:.2} s, emulator CPU {:.2} s",
            o.secs,
            mb / o.secs,
            o.client_cpu,
            o.emu_cpu
        );
        self.0[0].push(mb / o.secs);
        self.0[1].push(o.client_cpu / mb);
        self.0[2].push(o.emu_cpu / mb);
        Ok(())
    }

    fn medians(mut self) -> [f64; 3] {
        self.0.each_mut().map(|v| median(v))
    }
}

fn fmt_cell(r: &Result<[f64; 3], String>, i: usize, digits: usize) -> String {
    match r {
        Ok(v) => format!("{:.*}", digits, v[i]),
        Err(_) => "FAILED".into(),
    }
}

fn ratio(a: &Result<[f64; 3], String>, b: &Result<[f64; 3], String>, i: usize) -> String {
    match (a, b) {
        (Ok(a), Ok(b)) if b[i] > 0.0 => format!("{:.2}", a[i] / b[i]),
        (Ok(_), Ok(_)) => "inf".into(),
        _ => "-".into(),
    }
}

fn machine_note() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpu}, {cores} CPUs, load average {}", load.join(" "))
}

fn perf(opts: &Opts, ring: &Arc<Ring>) -> bool {
    let mut rows = Vec::new();
    for &dir in &opts.dirs {
        for &conns in &opts.conns {
            let spec = |client: Client| Spec {
                client,
                dir,
                conns,
                bytes: (if client == Client::Baseline && dir != Dir::Down {
                    opts.baseline_up_mb
                } else {
                    opts.mb
                } * MB) as u64,
                faults: None,
            };
            // Rounds interleaved (ours, baseline, ours, ...), so both see the same machine.
            let (mut a, mut b) = (Samples::default(), Samples::default());
            let (mut ours, mut base) = (Ok(()), Ok(()));
            for round in 0..opts.rounds {
                eprintln!("round {}/{}", round + 1, opts.rounds);
                if ours.is_ok() {
                    ours = a.run(&spec(Client::Ours), opts, ring);
                }
                if base.is_ok() {
                    base = b.run(&spec(Client::Baseline), opts, ring);
                }
            }
            for (r, c) in [(&ours, Client::Ours), (&base, Client::Baseline)] {
                if let Err(e) = r {
                    eprintln!("  {}: {e}", spec(c).label());
                }
            }
            let ours = ours.map(|()| a.medians());
            let base = base.map(|()| b.medians());
            rows.push((dir, conns, ours, base));
        }
    }
    println!();
    println!(
        "Port forwarding through the emulator ({}; {} round(s), median)",
        machine_note(),
        opts.rounds
    );
    println!(
        "| direction | conns | ours MB/s | baseline MB/s | ratio | ours client CPU s/MB | baseline client CPU s/MB | ratio | ours emulator CPU s/MB | baseline emulator CPU s/MB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ok = true;
    for (dir, conns, ours, base) in &rows {
        ok &= ours.is_ok() && base.is_ok();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            dir.name(),
            conns,
            fmt_cell(ours, 0, 2),
            fmt_cell(base, 0, 2),
            ratio(ours, base, 0),
            fmt_cell(ours, 1, 4),
            fmt_cell(base, 1, 4),
            ratio(ours, base, 1),
            fmt_cell(ours, 2, 4),
            fmt_cell(base, 2, 4),
        );
    }
    for (dir, conns, ours, base) in &rows {
        for (who, r) in [("ours", ours), ("baseline", base)] {
            if let Err(e) = r {
                println!("{who} {dir:?} x{conns}: {e}");
            }
        }
    }
    ok
}

fn latency(opts: &Opts) -> bool {
    let mut ok = true;
    let mut lines = Vec::new();
    eprintln!(
        "run: keystroke latency, ours and baseline alternating ({} samples each)",
        opts.samples
    );
    match keystrokes(opts.samples) {
        Ok(all) => {
            for (client, mut v) in CLIENTS.into_iter().zip(all) {
                v.sort();
                let ms = |d: Duration| d.as_secs_f64() * 1e3;
                lines.push(format!(
                    "| {} | {} | {:.3} | {:.3} | {:.3} |",
                    client.name(),
                    v.len(),
                    ms(percentile(&v, 0.5)),
                    ms(percentile(&v, 0.99)),
                    ms(v.last().copied().unwrap_or_default()),
                ));
            }
        }
        Err(e) => {
            ok = false;
            lines.push(format!("| FAILED: {e} | | | | |"));
        }
    }
    println!();
    println!("Keystroke round trip through a shell (bash in the emulator's PTY)");
    println!("| client | samples | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for l in lines {
        println!("{l}");
    }
    ok
}

fn integrity(opts: &Opts, ring: &Arc<Ring>) -> bool {
    let mut ok = true;
    let mut lines = Vec::new();
    for dir in [Dir::Up, Dir::Down] {
        let spec = Spec {
            client: Client::Ours,
            dir,
            conns: opts.integrity_conns,
            bytes: (opts.integrity_mb * MB) as u64,
            faults: Some(opts.cut_after),
        };
        eprintln!("run: integrity, {}", spec.label());
        let resumes = RESUMES.load(Relaxed);
        match run(&spec, opts, ring) {
            Ok(o) => {
                let all = o.conns.iter().all(|c| c.sent == c.got);
                ok &= all;
                lines.push(format!(
                    "{} {:.1} MB in {} connections, {:.1} s ({:.2} MB/s), {} cuts resumed: {}",
                    dir.name(),
                    spec.bytes as f64 / MB,
                    spec.conns,
                    o.secs,
                    spec.bytes as f64 / MB / o.secs,
                    RESUMES.load(Relaxed) - resumes,
                    if all {
                        "every SHA-256 matches"
                    } else {
                        "MISMATCH"
                    }
                ));
                for (i, c) in o.conns.iter().enumerate() {
                    lines.push(format!(
                        "  conn {i}: {} B sent {} / {} B arrived {}",
                        c.sent.0,
                        hex(&c.sent.1),
                        c.got.0,
                        hex(&c.got.1)
                    ));
                }
            }
            Err(e) => {
                ok = false;
                lines.push(format!("{}: {e}", spec.label()));
            }
        }
    }
    println!();
    println!(
        "Integrity with the emulator's faults (drop 0.2 %, duplicate 1 %, reorder 1 %, delay 0.5 % \
         up to 20 ms, WebSocket cut every {} frames, resumed through ResumeSession)",
        opts.cut_after
    );
    for l in lines {
        println!("{l}");
    }
    ok
}

fn main() {
    // `RUST_LOG=ssm_tokio=debug` shows the drivers' logs (both processes) when a run stalls.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()),
        )
        .with_writer(io::stderr)
        .with_ansi(false)
        .try_init();
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        if let Err(e) = child_main(&spec) {
            eprintln!("child emulator: {e}");
            std::process::exit(1);
        }
        return;
    }
    let opts = Opts::parse();
    if opts.quick {
        eprintln!("port_forwarding: quick mode (run with `cargo bench` for the full sizes)");
    }
    let ring = Arc::new(Ring::new());
    if let Err(e) = self_check(&ring) {
        eprintln!("port_forwarding: self-check failed: {e}");
        std::process::exit(1);
    }
    let mut ok = true;
    if opts.perf {
        ok &= perf(&opts, &ring);
    }
    if opts.latency {
        ok &= latency(&opts);
    }
    if opts.integrity {
        ok &= integrity(&opts, &ring);
    }
    if !ok {
        eprintln!("port_forwarding: FAILED (see above)");
        std::process::exit(1);
    }
}
