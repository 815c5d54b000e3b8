//! A minimal agent for the adapter's tests: tokio + rustls + `ssm_proto::ws` (server role) +
//! `ssm_proto::session` (agent role), on loopback. It answers like a shell (echoes input) or like
//! a NonInteractiveCommands session (output, exit code, channel closed).
#![allow(dead_code, reason = "each test file uses part of it")]

#[cfg(feature = "tls")]
pub mod api;
#[cfg(feature = "tls")]
pub mod api_replay;
#[cfg(feature = "log")]
pub mod capture;
pub mod replay;

use core::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use ssm_proto::payload::{Flag, SessionType};
use ssm_proto::session::{
    AgentHandshake, Config, Event, Incoming, Session, TransmitKind, WriteError,
};
use ssm_proto::ws::{handshake, MessageKind, Role, Status, WebSocket};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the agent does once the handshake is complete.
#[derive(Clone)]
pub enum Mode {
    /// Echo every input byte back (a PTY shell with echo on).
    Echo,
    /// Send this output, then this exit code, then close the channel.
    Command { output: Vec<u8>, exit_code: i32 },
}

/// What the agent saw.
#[derive(Debug, Default)]
pub struct Report {
    pub token_ok: bool,
    pub path: String,
    pub received: usize,
    pub received_sha256: [u8; 32],
    pub sizes: Vec<(u32, u32)>,
    pub terminated: bool,
}

/// A throwaway ECDSA P-256 root and a `localhost` server config signed by it (TLS 1.3 only).
pub fn pki() -> (Vec<u8>, Arc<rustls::ServerConfig>) {
    pki_for(&[&rustls::version::TLS13])
}

/// As [`pki`], for a server that speaks only `versions`.
pub fn pki_for(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (Vec<u8>, Arc<rustls::ServerConfig>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let (leaf, key) = localhost_leaf(&ca);
    (ca.der().to_vec(), server_for(versions, vec![leaf], key))
}

/// A fresh P-256 certificate for `localhost` issued by `issuer`, and its key.
pub fn localhost_leaf(
    issuer: &rcgen::Issuer<'_, impl rcgen::SigningKey>,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, issuer)
        .unwrap();
    (
        leaf.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// A TLS 1.3-only rustls server config sending `chain` (leaf first).
pub fn tls13_server(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    server_for(&[&rustls::version::TLS13], chain, key)
}

/// A rustls server config speaking only `versions`, sending `chain` (leaf first).
pub fn server_for(
    versions: &[&'static rustls::SupportedProtocolVersion],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    Arc::new(server)
}

/// The RSA-2048 chain of `tests/data/rsa` (root -> intermediate -> leaf for `localhost`), the
/// shape AWS endpoints present: the root (DER) and a server config that sends leaf + intermediate.
pub fn rsa_pki() -> (Vec<u8>, Arc<rustls::ServerConfig>) {
    use rustls_pki_types::pem::PemObject;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rsa/");
    let read = |f: &str| std::fs::read(format!("{dir}{f}")).unwrap();
    let chain = vec![
        CertificateDer::from_pem_slice(&read("leaf.pem")).unwrap(),
        CertificateDer::from_pem_slice(&read("int.pem")).unwrap(),
    ];
    let key = PrivateKeyDer::from_pem_slice(&read("leaf.pk8.pem")).unwrap();
    (read("root.der"), tls13_server(chain, key))
}

/// The client side against [`echo_server`]: a TLS handshake through `ssm_embassy::tls`, then
/// one record out and its echo back.
#[cfg(feature = "tls")]
pub async fn tls_echo<T: embedded_io_async::Read + embedded_io_async::Write>(
    transport: T,
    options: ssm_embassy::tls::Options<'_>,
    rng: impl rand_core::RngCore + rand_core::CryptoRng,
) -> Result<(), ssm_embassy::tls::Error> {
    use embedded_io_async::{Read, Write};
    let mut rx = [0u8; 16640];
    let mut tx = [0u8; 4096];
    let mut conn = ssm_embassy::tls::connect(transport, &mut rx, &mut tx, options, rng).await?;
    conn.write_all(b"ping over tls").await?;
    conn.flush().await?;
    let mut got = [0u8; 13];
    conn.read_exact(&mut got)
        .await
        .map_err(|_| ssm_embassy::tls::Error::IoError)?;
    assert_eq!(&got, b"ping over tls");
    Ok(())
}

/// A TLS echo server for one connection on loopback.
pub async fn echo_server(config: Arc<rustls::ServerConfig>) -> core::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return;
        };
        let mut buf = [0u8; 1024];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tls.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    let _ = tls.flush().await;
                }
            }
        }
    });
    addr
}

/// The StreamUrl path and query the sessions of [`with_session`] open.
pub const PATH: &str = "/v1/data-channel/s-0123456789abcdef0?role=publish_subscribe";

/// Connects TLS (verified against `ca`) to the agent on `port`, opens a session with `token`,
/// and runs `app` beside the runner.
#[cfg(feature = "tls")]
/// The client's TLS connection in these tests: embedded-tls over a tokio socket.
pub type TestConnection = ssm_embassy::tls::Connection<
    'static,
    ssm_embassy::duplex::Duplex<
        'static,
        embedded_io_adapters::tokio_1::FromTokio<tokio::net::tcp::OwnedReadHalf>,
        embedded_io_adapters::tokio_1::FromTokio<tokio::net::tcp::OwnedWriteHalf>,
    >,
>;

/// Connects to `127.0.0.1:port` and runs the TLS handshake for the name `localhost` (what the
/// test certificates name; embedded-tls matches DNS names only), verified against `ca`. Leaks
/// its buffers, as a device's would be `static`.
pub async fn tls_to_localhost(port: u16, ca: &'static [u8]) -> &'static mut TestConnection {
    use embedded_io_adapters::tokio_1::FromTokio;
    use ssm_embassy::duplex::{Duplex, DuplexState};
    use ssm_embassy::tls::{self, Options, Verification};
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (r, w) = tcp.into_split();
    let duplex: &'static DuplexState<_, _> = Box::leak(Box::new(DuplexState::new(
        FromTokio::new(r),
        FromTokio::new(w),
    )));
    let rx: &'static mut [u8] = Box::leak(vec![0u8; 16640].into_boxed_slice());
    let tx: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
    let options = Options {
        server_name: "localhost",
        verification: Verification::Root(ca),
    };
    Box::leak(Box::new(
        tls::connect(Duplex::new(duplex), rx, tx, options, rand_core::OsRng)
            .await
            .unwrap(),
    ))
}

pub async fn with_session<F, Fut, T>(
    ca: &[u8],
    port: u16,
    token: &'static str,
    app: F,
) -> (Result<ssm_embassy::CloseReason, ssm_embassy::Error>, T)
where
    F: FnOnce(ssm_embassy::Session<'static>) -> Fut,
    Fut: core::future::Future<Output = T>,
{
    let ca: &'static [u8] = Box::leak(ca.to_vec().into_boxed_slice());
    let conn = tls_to_localhost(port, ca).await;
    let resources: &'static mut ssm_embassy::Resources =
        Box::leak(Box::new(ssm_embassy::Resources::new()));
    let config = ssm_embassy::Config {
        host: "localhost",
        port,
        tls: true,
        path_and_query: PATH,
        token,
        headers: &[],
        session: ssm_proto::session::Config::client(0),
    };
    let (session, runner) = ssm_embassy::new(conn.split(), config, resources, 0x5eed);
    // A stuck session fails the test instead of hanging CI.
    tokio::time::timeout(
        core::time::Duration::from_secs(120),
        embassy_futures::join::join(runner.run(), app(session)),
    )
    .await
    .expect("session stuck for 120 s")
}

/// Listens on loopback; serves one TLS connection as an agent. Returns the port and the
/// agent's outcome.
pub async fn spawn_agent(
    server: Arc<rustls::ServerConfig>,
    token: &'static str,
    mode: Mode,
) -> (u16, tokio::task::JoinHandle<Report>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = tokio_rustls::TlsAcceptor::from(server)
            .accept(tcp)
            .await
            .unwrap();
        serve(tls, token, mode).await
    });
    (port, task)
}

type AgentEngine = Session;

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, token: &str, mode: Mode) -> Report {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut report = Report::default();

    // The upgrade.
    let mut head = Vec::new();
    let mut buf = vec![0u8; 16384];
    let (key, consumed) = loop {
        let n = rd.read(&mut buf).await.unwrap();
        assert!(n > 0, "eof during upgrade");
        head.extend_from_slice(&buf[..n]);
        if let Status::Complete(req) = handshake::parse_request(&head).unwrap() {
            report.path = req.path.to_string();
            break (req.key.to_string(), req.len);
        }
    };
    let mut out = vec![0u8; 70000];
    let n = handshake::write_response(&mut out, &key).unwrap();
    wr.write_all(&out[..n]).await.unwrap();
    let mut pending_in: Vec<u8> = head[consumed..].to_vec();

    let start = StdInstant::now();
    let now = || ssm_proto::Instant::from_millis(start.elapsed().as_millis() as u64);
    let handshake = match mode {
        Mode::Echo => AgentHandshake::SHELL,
        Mode::Command { .. } => AgentHandshake {
            agent_version: "3.3.0.0",
            session_type: SessionType::NonInteractiveCommands,
            properties: r#"{"linux":{"commands":"test","separateOutputStream":true}}"#,
            kms_key_id: None,
            customer_message: "",
        },
    };
    let mut ws: Box<WebSocket<65536>> = Box::new(WebSocket::new(Role::Server));
    let mut engine: Box<AgentEngine> = Box::new(Session::new(Config::agent(7, handshake), now()));
    engine.handle_connected(now(), "").unwrap();
    let mut frame = vec![0u8; 65536];
    let mut hash = Sha256::new();
    let mut to_send: Vec<u8> = Vec::new();
    let mut command_started = false;
    let mut exit_sent = false;
    let mut data = vec![0u8; 8192];

    loop {
        // Input already read.
        let mut input = &pending_in[..];
        while !input.is_empty() {
            let used = ws.handle_input(input).unwrap();
            input = &input[used..];
            if let Some(m) = ws.poll_message() {
                let inc = match m.kind {
                    MessageKind::Text => Incoming::Text(m.data),
                    MessageKind::Binary => Incoming::Binary(m.data),
                };
                let _ = engine.handle_input(now(), inc);
            } else if used == 0 {
                break;
            }
        }
        pending_in.clear();
        if engine.poll_timeout().is_some_and(|t| t <= now()) {
            engine.handle_timeout(now());
        }

        // Events and data.
        while let Some(ev) = engine.poll_event() {
            match ev {
                Event::Opened => report.token_ok = engine.peer_token() == Some(token),
                Event::HandshakeComplete => {
                    if let Mode::Command { output, .. } = &mode {
                        if !command_started {
                            command_started = true;
                            to_send.extend_from_slice(output);
                        }
                    }
                }
                Event::Readable => {
                    while let Some((_, n)) = engine.read(&mut data) {
                        report.received += n;
                        hash.update(&data[..n]);
                        if let Mode::Echo = mode {
                            to_send.extend_from_slice(&data[..n]);
                        }
                    }
                }
                Event::Resized { cols, rows } => report.sizes.push((cols, rows)),
                Event::Flag(Flag::TerminateSession) => {
                    report.terminated = true;
                    engine.close_channel(now(), "terminated by client");
                }
                Event::Closed(_) => {
                    report.received_sha256 = hash.finalize().into();
                    // Flush what is left (the final acks), then linger like the real agent
                    // until the client hangs up (closing first would reset the connection
                    // under data still in flight).
                    flush(&mut engine, &mut ws, &mut frame, &mut out, &mut wr, now()).await;
                    let linger = async {
                        loop {
                            match rd.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    let mut input = &buf[..n];
                                    while let Ok(used) = ws.handle_input(input) {
                                        input = &input[used..];
                                        let _ = ws.poll_message();
                                        if used == 0 || input.is_empty() {
                                            break;
                                        }
                                    }
                                    while let Ok(Some(n)) = ws.poll_transmit(&mut out, || [0; 4]) {
                                        let _ = wr.write_all(&out[..n]).await;
                                    }
                                    // The client's close frame ends the session cleanly.
                                    if ws.state() != ssm_proto::ws::State::Open {
                                        break;
                                    }
                                }
                            }
                        }
                    };
                    let _ = tokio::time::timeout(core::time::Duration::from_secs(5), linger).await;
                    return report;
                }
                _ => {}
            }
        }
        if !to_send.is_empty() {
            match engine.write(now(), &to_send) {
                Ok(n) => {
                    to_send.drain(..n);
                }
                Err(WriteError::Blocked) => {}
                Err(e) => panic!("agent write: {e}"),
            }
        }
        if let Mode::Command { exit_code, .. } = mode {
            if command_started && to_send.is_empty() && !exit_sent && engine.unacked_bytes() == 0 {
                exit_sent = true;
                engine.send_exit_code(now(), exit_code).unwrap();
                engine.close_channel(now(), "command finished");
            }
        }
        flush(&mut engine, &mut ws, &mut frame, &mut out, &mut wr, now()).await;
        if ws.state() != ssm_proto::ws::State::Open {
            report.received_sha256 = hash.finalize().into();
            return report;
        }

        let wait = engine
            .poll_timeout()
            .map(|t| t.total_millis().saturating_sub(now().total_millis()))
            .unwrap_or(1000);
        let busy = !to_send.is_empty() && engine.unacked_bytes() == 0;
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = r.unwrap_or(0);
                if n == 0 {
                    report.received_sha256 = hash.finalize().into();
                    return report;
                }
                pending_in.extend_from_slice(&buf[..n]);
            }
            () = tokio::time::sleep(core::time::Duration::from_millis(if busy { 0 } else { wait.max(1) })) => {}
        }
    }
}

async fn flush<W: AsyncWrite + Unpin>(
    engine: &mut AgentEngine,
    ws: &mut WebSocket<65536>,
    frame: &mut [u8],
    out: &mut [u8],
    wr: &mut W,
    now: ssm_proto::Instant,
) {
    while let Some(t) = engine.poll_transmit(now, frame).unwrap() {
        let kind = match t.kind {
            TransmitKind::Text => MessageKind::Text,
            TransmitKind::Binary => MessageKind::Binary,
        };
        // The client may have closed the WebSocket first (after terminate): stop sending.
        let Ok(n) = ws.write_message(out, kind, &frame[..t.len], || [0; 4]) else {
            break;
        };
        if wr.write_all(&out[..n]).await.is_err() {
            return;
        }
    }
    while let Some(n) = ws.poll_transmit(out, || [0; 4]).unwrap() {
        if wr.write_all(&out[..n]).await.is_err() {
            return;
        }
    }
    let _ = wr.flush().await;
}

/// The emulator's CA as DER (leaked for the runner's `'static` TLS) and `grant` as a device gets
/// it: the StartSession answer's AWS JSON, parsed again by the core's model.
pub fn device_view(
    emu: &ssm_emulator::Emulator,
    grant: &ssm_proto::model::OwnedStartSessionResponse,
) -> (
    &'static [u8],
    ssm_proto::model::StartSessionResponse<'static>,
) {
    use rustls_pki_types::pem::PemObject;
    let ca = CertificateDer::from_pem_slice(emu.ca_pem().as_bytes()).unwrap();
    let ca: &'static [u8] = Box::leak(ca.to_vec().into_boxed_slice());
    let grant = grant.as_borrowed();
    let mut json = vec![0u8; grant.json_len()];
    grant.emit(&mut json).unwrap();
    let json: &'static [u8] = Box::leak(json.into_boxed_slice());
    let response = ssm_proto::model::StartSessionResponse::parse_with(
        json,
        None,
        ssm_proto::model::Endpoints::DangerousAnyHost,
    )
    .unwrap();
    (ca, response)
}

/// Records both directions of a real connection.
pub struct Recorder<T> {
    /// The connection recorded.
    pub inner: T,
    /// What the server sent.
    pub server: Rc<RefCell<Vec<u8>>>,
    /// What the client sent.
    pub client: Rc<RefCell<Vec<u8>>>,
}

impl<T: embedded_io_async::ErrorType> embedded_io_async::ErrorType for Recorder<T> {
    type Error = T::Error;
}

impl<T: embedded_io_async::Read> embedded_io_async::Read for Recorder<T> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, T::Error> {
        let n = self.inner.read(buf).await?;
        self.server.borrow_mut().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl<T: embedded_io_async::Write> embedded_io_async::Write for Recorder<T> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, T::Error> {
        let n = self.inner.write(buf).await?;
        self.client.borrow_mut().extend_from_slice(&buf[..n]);
        Ok(n)
    }

    async fn flush(&mut self) -> Result<(), T::Error> {
        self.inner.flush().await
    }
}

/// Data each way for a command session: `down` in a file that the command prints, `up` for the
/// device to write, which the command hashes. The file goes when this is dropped.
pub struct EachWay {
    pub down: Vec<u8>,
    pub up: Vec<u8>,
    dir: std::path::PathBuf,
}

impl EachWay {
    /// A mebibyte each way.
    pub const MIB: usize = 1 << 20;

    /// [`Self::MIB`] each way, `down` in a fresh directory named after `name` and the process.
    pub fn new(name: &str) -> Self {
        Self::with_len(name, Self::MIB)
    }

    /// As [`Self::new`], `len` bytes each way.
    pub fn with_len(name: &str, len: usize) -> Self {
        let (down, up) = (pattern(len, 0x9e37_79b9), pattern(len, 0x85eb_ca6b));
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("down.bin"), &down).unwrap();
        Self { down, up, dir }
    }

    /// The shell command: prints `down`, then the SHA-256 of as many bytes of its input as
    /// `up` has, then runs `then`.
    pub fn command(&self, then: &str) -> String {
        format!(
            "cat '{}'; head -c {} | sha256sum; {then}",
            self.dir.join("down.bin").display(),
            self.up.len()
        )
    }

    /// The command's output is `down` and then the SHA-256 of `up`, as `sha256sum` prints it.
    pub fn check(&self, out: &[u8]) {
        let len = self.down.len();
        assert!(out.len() > len, "only {} bytes of output", out.len());
        assert_eq!(
            sha256_hex(&out[..len]),
            sha256_hex(&self.down),
            "downloaded bytes"
        );
        assert_eq!(
            String::from_utf8_lossy(&out[len..]),
            format!("{}  -\n", sha256_hex(&self.up)),
            "the command's SHA-256 of the uploaded bytes"
        );
    }
}

impl Drop for EachWay {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `len` bytes of xorshift32 from `seed`: data that no compression or repeat helps with.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// The SHA-256 of `b` in lower-case hex, as `sha256sum` prints it.
pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}
