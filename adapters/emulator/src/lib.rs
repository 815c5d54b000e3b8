//! A local Session Manager: the SSM JSON API subset a client uses and the data-channel WebSocket
//! in the agent role, on one loopback port.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ssm_emulator::{Emulator, EmulatorConfig, StartSession};
//! let emu = Emulator::start(EmulatorConfig::default()).await?;
//! // In-process (what `ssm-session demo` does) ...
//! let target = emu.start_session(&StartSession::shell())?;
//! let options = ssm_tokio::ConnectOptions { tls: emu.client_tls(), ..Default::default() };
//! let session = ssm_tokio::connect(target, options).await.map_err(std::io::Error::from)?;
//! // ... or over HTTP: `aws ssm start-session --endpoint-url` + emu.endpoint_url()
//! # drop(session); Ok(()) }
//! ```
//!
//! What it serves (every connection: plain HTTP, or TLS when the first byte is a TLS handshake):
//! - `POST /` with `X-Amz-Target: AmazonSSM.StartSession` / `ResumeSession` /
//!   `TerminateSession` (AWS JSON 1.1). The SigV4 `Authorization` header is accepted unchecked,
//!   unless [`EmulatorConfig::credentials`] is set (strict mode): then every API call and every
//!   WebSocket upgrade must be SigV4-signed with those keys (or keys it issued through STS), for
//!   services `ssm`, `sts` and `ssmmessages`, within 5 minutes of its clock, and failures answer
//!   with AWS's error types (`UnrecognizedClientException`, `InvalidSignatureException`, ...).
//! - `POST /` with a form body `Action=AssumeRole` (the STS Query API): temporary credentials
//!   (XML answer) that strict mode accepts from then on, so `role_arn` + `source_profile`
//!   profiles work through `AWS_ENDPOINT_URL_STS`.
//!   StartSession answers `{"SessionId","StreamUrl","TokenValue"}`; the `StreamUrl` is
//!   `wss://127.0.0.1:PORT/v1/data-channel/<id>?role=publish_subscribe` (`ws://` when
//!   [`EmulatorConfig::tls`] is off; another host with [`EmulatorConfig::stream_host`]). Clients trust [`Emulator::ca_pem`], a CA made at start.
//! - `GET /v1/data-channel/<id>` WebSocket upgrades: the session's agent. A client presenting a
//!   token that was not issued for that session is disconnected. A second connection for the
//!   same session (after `ResumeSession`) carries on the same agent state.
//!
//! Documents:
//! - none / `SSM-SessionManagerRunShell`: `Standard_Stream`, [`EmulatorConfig::shell`] in a PTY;
//!   Size messages resize the PTY.
//! - `AWS-StartInteractiveCommand` (parameter `command`): `InteractiveCommands`, `sh -c command`
//!   in a PTY, no exit code (as the real agent).
//! - `AWS-StartNonInteractiveCommand` (parameter `command`): `NonInteractiveCommands` with
//!   `separateOutputStream`: `sh -c command` on pipes, stdout as Output, stderr as StdErr, then
//!   the exit code, then the channel closes.
//! - Port documents (`AWS-StartPortForwardingSession`, `…ToRemoteHost` with `host`,
//!   `AWS-StartSSHSession`; parameter `portNumber`): the agent connects to the target port for
//!   each stream (smux-multiplexed when `agent_version` ≥ 3.0.196.0 and the client reports
//!   ≥ 1.1.70, else basic with DisconnectToPort), as [`ssm_tokio::forward`] describes.
//!
//! [`EmulatorConfig::close_every`] closes each data-channel WebSocket after that long with
//! `close 1000 "Bye"`, as the service does about every hour; clients resume.
//!
//! Faults ([`EmulatorConfig::faults`]) apply between the agent's engine and the socket, in both
//! directions, to sessions started after they are set.

#![allow(
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core,
    reason = "a std crate; the workspace lint guards the no_std core"
)]

mod agent;
mod bye;
mod cert;
pub mod forward;
mod http;
mod kms;
pub mod sigv4;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use ssm_tokio::{AgentOptions, AgentSession, Control, Faults, Grant, TlsOptions};

/// What the emulator does. `Default` is like a real agent on loopback: TLS, 1 ms pacing.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Where to listen; port 0 picks one.
    pub bind: SocketAddr,
    /// `StreamUrl`s use `wss://` (true) or `ws://` (false). Both are served either way.
    pub tls: bool,
    /// The agent version announced in the handshake.
    pub agent_version: String,
    /// Payload bytes per data message (the real agent reads 1024).
    pub chunk: usize,
    /// Unacknowledged bytes the agent may have in flight; `None` keeps the engine's default.
    pub window: Option<usize>,
    /// Pause after each data message the agent sends; the real agent sleeps 1 ms.
    pub pacing: Option<Duration>,
    /// Faults between the agent's engine and the socket.
    pub faults: Option<Faults>,
    /// The program a shell session runs (default: `/bin/bash` if present, else `/bin/sh`).
    pub shell: String,
    /// A message shown to the user at the handshake (empty: none).
    pub customer_message: String,
    /// A session whose client stays away this long ends (its process is killed).
    pub reconnect_timeout: Duration,
    /// A KMS key id (id, ARN or `alias/NAME`): the emulator's local KMS (`TrentService.*` on
    /// the same port) holds this key, and every non-port session requires KMS encryption with
    /// it. `None`: no KMS, sessions in the clear.
    pub kms_key_id: Option<String>,
    /// With `kms_key_id`: refuse clients that do not acknowledge the KMS challenge (the agent's
    /// `Kms.RequireKMSChallengeResponse`).
    pub require_kms_challenge: bool,
    /// Strict mode: the keys every request must be SigV4-signed with; `None` accepts anything.
    pub credentials: Option<sigv4::Credentials>,
    /// Close every data-channel WebSocket after this long (`close 1000 "Bye"`).
    pub close_every: Option<Duration>,
    /// The host `StreamUrl`s name, with the emulator's port (e.g. `localhost`, which its
    /// certificate names, for clients that verify DNS names only); `None`: the bound address.
    pub stream_host: Option<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        let shell = if std::path::Path::new("/bin/bash").exists() {
            "/bin/bash"
        } else {
            "/bin/sh"
        };
        EmulatorConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            // A current agent: ≥ 3.0.196.0 (multiplexed ports), ≥ 2.3.722.0 (TerminateSession).
            agent_version: "3.3.1802.0".into(),
            chunk: 1024,
            window: None,
            pacing: Some(Duration::from_millis(1)),
            faults: None,
            shell: shell.into(),
            customer_message: String::new(),
            reconnect_timeout: Duration::from_secs(60),
            kms_key_id: None,
            require_kms_challenge: false,
            credentials: None,
            close_every: None,
            stream_host: None,
        }
    }
}

/// A StartSession request, in-process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartSession {
    /// `Target` (any instance id; not checked).
    pub target: String,
    /// `DocumentName`; `None` means the default shell document.
    pub document_name: Option<String>,
    /// `Parameters`: name → values.
    pub parameters: Vec<(String, Vec<String>)>,
}

impl StartSession {
    /// A shell session.
    pub fn shell() -> Self {
        StartSession {
            target: "i-0emulator".into(),
            ..Default::default()
        }
    }

    /// `AWS-StartInteractiveCommand` with `command`.
    pub fn interactive(command: impl Into<String>) -> Self {
        StartSession {
            target: "i-0emulator".into(),
            document_name: Some("AWS-StartInteractiveCommand".into()),
            parameters: vec![("command".into(), vec![command.into()])],
        }
    }

    /// `AWS-StartPortForwardingSession` to `port` on the target itself.
    pub fn port_forwarding(port: u16) -> Self {
        StartSession {
            target: "i-0emulator".into(),
            document_name: Some("AWS-StartPortForwardingSession".into()),
            parameters: vec![("portNumber".into(), vec![port.to_string()])],
        }
    }

    /// `AWS-StartPortForwardingSessionToRemoteHost` to `host:port`.
    pub fn port_forwarding_to_remote_host(host: impl Into<String>, port: u16) -> Self {
        StartSession {
            target: "i-0emulator".into(),
            document_name: Some("AWS-StartPortForwardingSessionToRemoteHost".into()),
            parameters: vec![
                ("host".into(), vec![host.into()]),
                ("portNumber".into(), vec![port.to_string()]),
            ],
        }
    }

    /// `AWS-StartSSHSession` to `port` (22 by default in the real document): a stdin/stdout
    /// stream, as SSH's ProxyCommand uses it.
    pub fn ssh(port: u16) -> Self {
        StartSession {
            target: "i-0emulator".into(),
            document_name: Some("AWS-StartSSHSession".into()),
            parameters: vec![("portNumber".into(), vec![port.to_string()])],
        }
    }

    /// `AWS-StartNonInteractiveCommand` with `command`.
    pub fn non_interactive(command: impl Into<String>) -> Self {
        StartSession {
            target: "i-0emulator".into(),
            document_name: Some("AWS-StartNonInteractiveCommand".into()),
            parameters: vec![("command".into(), vec![command.into()])],
        }
    }

    fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    }
}

/// What a session runs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// `Standard_Stream`: a shell in a PTY.
    Shell,
    /// `InteractiveCommands`: a command in a PTY.
    Interactive(String),
    /// `NonInteractiveCommands` with separate streams and an exit code.
    NonInteractive(String),
    /// `Port`: the agent connects to `host:port`; smux-multiplexed or basic by the emulated
    /// agent's version (and the client's), as the real agent decides.
    Port {
        /// Where the agent connects (`localhost` for the target itself).
        host: String,
        /// The target port.
        port: u16,
        /// `localPortNumber` for the client (0 or absent: pick one).
        local_port: Option<u16>,
        /// `type: LocalPortForwarding` (listen locally); false for `AWS-StartSSHSession`
        /// (stdin/stdout).
        local_forwarding: bool,
    },
}

impl Kind {
    fn session_type(&self) -> ssm_proto::session::SessionType {
        match self {
            Kind::Shell => ssm_proto::session::SessionType::StandardStream,
            Kind::Interactive(_) => ssm_proto::session::SessionType::InteractiveCommands,
            Kind::NonInteractive(_) => ssm_proto::session::SessionType::NonInteractiveCommands,
            Kind::Port { .. } => ssm_proto::session::SessionType::Port,
        }
    }

    /// The handshake's `Properties`, shaped like the documents' per-OS properties (port
    /// documents' are flat, numbers as strings).
    fn properties(&self) -> String {
        if let Kind::Port {
            host,
            port,
            local_port,
            local_forwarding,
        } = self
        {
            let mut p = serde_json::json!({ "portNumber": port.to_string() });
            if *local_forwarding {
                p["type"] = "LocalPortForwarding".into();
            }
            if let Some(l) = local_port {
                p["localPortNumber"] = l.to_string().into();
            }
            if host != "localhost" {
                p["host"] = host.clone().into();
            }
            return p.to_string();
        }
        let linux = match self {
            Kind::Shell => serde_json::json!({"commands": "", "runAsElevated": false}),
            Kind::Interactive(c) => serde_json::json!({"commands": c, "runAsElevated": false}),
            Kind::NonInteractive(c) => serde_json::json!({
                "commands": c, "runAsElevated": false, "separateOutputStream": true,
                "stdOutSeparatorPrefix": "", "stdErrSeparatorPrefix": ""
            }),
            Kind::Port { .. } => unreachable!("returned above"),
        };
        serde_json::json!({ "linux": linux }).to_string()
    }
}

/// An API error: HTTP 400 with AWS JSON's `__type`.
#[derive(Debug)]
struct ApiError {
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}

impl From<ApiError> for io::Error {
    fn from(e: ApiError) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: {}", e.kind, e.message),
        )
    }
}

struct Entry {
    kind: Kind,
    /// The StartSession `Target` (the KMS encryption context's `aws:ssm:TargetId`).
    target: String,
    tokens: Arc<Mutex<Vec<String>>>,
    agent: Option<Control>,
}

struct State {
    config: Mutex<EmulatorConfig>,
    sessions: Mutex<HashMap<String, Entry>>,
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    seed: Mutex<ssm_tokio::Rng>,
    /// The local KMS, when a key is configured.
    kms: Option<kms::LocalKms>,
    /// Sessions that ran and ended: ResumeSession answers them with no token.
    ended: Mutex<std::collections::HashSet<String>>,
    /// Temporary credentials handed out by AssumeRole (strict mode accepts them too).
    issued: Mutex<Vec<sigv4::Credentials>>,
}

/// A running emulator. Dropping it stops accepting connections; running sessions end with
/// their clients.
pub struct Emulator {
    state: Arc<State>,
    ca_pem: String,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.state.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Emulator {
    /// Binds, makes the throwaway CA and certificate, and starts serving.
    ///
    /// # Errors
    /// Binding or certificate generation failed.
    pub async fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        let certs = cert::generate()?;
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let kms = config
            .kms_key_id
            .as_deref()
            .map(|k| kms::LocalKms::new(k, EMULATED_REGION));
        let state = Arc::new(State {
            config: Mutex::new(config),
            sessions: Mutex::new(HashMap::new()),
            addr,
            tls: certs.server,
            seed: Mutex::new(ssm_tokio::Rng::new(ssm_tokio::random_seed())),
            kms,
            ended: Mutex::new(Default::default()),
            issued: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((tcp, peer)) => {
                        let st = st.clone();
                        tokio::spawn(async move {
                            if let Err(e) = serve(st, tcp).await {
                                tracing::debug!(%peer, "emulator connection: {e}");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!("emulator accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        tracing::info!(%addr, "session manager emulator listening");
        Ok(Emulator {
            state,
            ca_pem: certs.ca_pem,
            accept,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// `http://ADDR`, for `aws ssm --endpoint-url` and SDK clients.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.state.addr)
    }

    /// The throwaway CA (PEM) that signed the emulator's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Client TLS options that trust this emulator (and allow `ws://`).
    pub fn client_tls(&self) -> TlsOptions {
        TlsOptions::emulator(self.ca_pem.as_bytes().to_vec())
    }

    /// Changes the faults of sessions whose agent starts from now on.
    pub fn set_faults(&self, faults: Option<Faults>) {
        lock(&self.state.config).faults = faults;
    }

    /// StartSession without HTTP.
    ///
    /// # Errors
    /// An unknown document or a missing `command` parameter (`InvalidInput`).
    pub fn start_session(&self, request: &StartSession) -> io::Result<Grant> {
        Ok(start_session(&self.state, request)?.1)
    }

    /// ResumeSession without HTTP: a new token for the same session.
    ///
    /// # Errors
    /// The session does not exist (`InvalidInput`).
    /// `Ok(None)` for a session that has ended (the service's answer without a token).
    pub fn resume_session(&self, session_id: &str) -> io::Result<Option<Grant>> {
        Ok(resume_session(&self.state, session_id)?)
    }

    /// A [`ssm_tokio::ResumeFn`] that resumes `session_id` in-process, for
    /// [`ssm_tokio::ConnectOptions::resume`].
    pub fn resume_fn(&self, session_id: &str) -> ssm_tokio::ResumeFn {
        let state = self.state.clone();
        let id = session_id.to_string();
        Arc::new(move || {
            let r = resume_session(&state, &id).map_err(io::Error::from);
            Box::pin(async move { r })
        })
    }

    /// A [`ssm_tokio::kms::ClientKms`] that asks this emulator's local KMS in-process (what a client
    /// does over HTTP with `TrentService.GenerateDataKey`), for [`ssm_tokio::ConnectOptions::kms`].
    /// `None` when no KMS key is configured.
    pub fn client_kms(&self, target: &str) -> Option<ssm_tokio::kms::ClientKms> {
        self.state.kms.as_ref()?;
        let state = self.state.clone();
        Some(ssm_tokio::kms::ClientKms {
            target: target.to_string(),
            generate_data_key: Arc::new(move |r: ssm_tokio::kms::DataKeyRequest| {
                let context = r.encryption_context.into_iter().collect();
                let key = state
                    .kms
                    .as_ref()
                    .ok_or_else(|| io::Error::other("no KMS"))
                    .and_then(|k| {
                        k.generate_data_key(&r.key_id, r.number_of_bytes, &context)
                            .map_err(|(kind, m)| io::Error::other(format!("{kind}: {m}")))
                    })
                    .map(|(plaintext, ciphertext_blob)| ssm_tokio::kms::DataKey {
                        plaintext: zeroize::Zeroizing::new(plaintext),
                        ciphertext_blob,
                    });
                Box::pin(async move { key })
            }),
        })
    }

    /// The session id in a stream URL this emulator issued.
    pub fn session_id_of(stream_url: &str) -> Option<&str> {
        let rest = stream_url.split("/v1/data-channel/").nth(1)?;
        rest.split(['?', '/']).next().filter(|s| !s.is_empty())
    }
}

fn random_seed(state: &State) -> u64 {
    lock(&state.seed).next_u64()
}

fn random_hex(state: &State, bytes: usize) -> String {
    let mut rng = lock(&state.seed);
    (0..bytes)
        .map(|_| format!("{:02x}", rng.next_u64() as u8))
        .collect()
}

/// The region the emulator's answers name (KMS key ARNs).
const EMULATED_REGION: &str = "us-east-1";

fn stream_url(state: &State, id: &str) -> String {
    let config = lock(&state.config);
    let scheme = if config.tls { "wss" } else { "ws" };
    let authority = match &config.stream_host {
        Some(host) => format!("{host}:{}", state.addr.port()),
        None => state.addr.to_string(),
    };
    format!("{scheme}://{authority}/v1/data-channel/{id}?role=publish_subscribe")
}

fn kind_of(request: &StartSession) -> Result<Kind, ApiError> {
    let command = || {
        request
            .parameter("command")
            .map(str::to_string)
            .ok_or_else(|| ApiError::new("ValidationException", "parameter command is required"))
    };
    match request.document_name.as_deref() {
        None | Some("SSM-SessionManagerRunShell") => Ok(Kind::Shell),
        Some("AWS-StartInteractiveCommand") => Ok(Kind::Interactive(command()?)),
        Some("AWS-StartNonInteractiveCommand") => Ok(Kind::NonInteractive(command()?)),
        Some(
            d @ ("AWS-StartPortForwardingSession"
            | "AWS-StartPortForwardingSessionToRemoteHost"
            | "AWS-StartSSHSession"),
        ) => {
            let number = |name: &str, default: Option<u16>| -> Result<Option<u16>, ApiError> {
                match request.parameter(name) {
                    None | Some("") => Ok(default),
                    Some(v) => v.parse().map(Some).map_err(|_| {
                        ApiError::new("ValidationException", format!("{name} is not a port: {v}"))
                    }),
                }
            };
            let ssh = d == "AWS-StartSSHSession";
            let port = number("portNumber", if ssh { Some(22) } else { Some(80) })?.unwrap_or(80);
            let host = if d.ends_with("ToRemoteHost") {
                request
                    .parameter("host")
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ApiError::new("ValidationException", "parameter host is required")
                    })?
            } else {
                "localhost".into()
            };
            Ok(Kind::Port {
                host,
                port,
                local_port: number("localPortNumber", None)?,
                local_forwarding: !ssh,
            })
        }
        Some(d) => Err(ApiError::new(
            "InvalidDocument",
            format!("document {d} is not known to the emulator"),
        )),
    }
}

/// The grant of session `id` with `token`: this emulator's own URL, so any host is accepted.
fn grant(state: &State, id: &str, token: &str) -> Result<Grant, ApiError> {
    let url = stream_url(state, id);
    let internal = |e: ssm_proto::model::Error| ApiError::new("InternalServerError", e.to_string());
    let r = ssm_proto::model::StartSessionResponse::new(
        id,
        &url,
        token,
        ssm_tokio::Endpoints::DangerousAnyHost,
    )
    .map_err(internal)?;
    Grant::from_borrowed(&r).map_err(internal)
}

fn start_session(state: &State, request: &StartSession) -> Result<(String, Grant), ApiError> {
    let kind = kind_of(request)?;
    let id = format!("emulator-{}", random_hex(state, 9));
    let token = random_hex(state, 32);
    let target = grant(state, &id, &token)?;
    tracing::info!(session_id = %id, session_type = kind.session_type().as_str(), "session started");
    lock(&state.sessions).insert(
        id.clone(),
        Entry {
            kind,
            target: request.target.clone(),
            tokens: Arc::new(Mutex::new(vec![token])),
            agent: None,
        },
    );
    Ok((id, target))
}

/// A new token for a live session; `None` for one that has ended (AWS then answers with no
/// token, and the client stops resuming).
fn resume_session(state: &State, id: &str) -> Result<Option<Grant>, ApiError> {
    let token = random_hex(state, 32);
    let sessions = lock(&state.sessions);
    if !sessions.contains_key(id) && lock(&state.ended).contains(id) {
        tracing::info!(session_id = %id, "resume of an ended session");
        return Ok(None);
    }
    let entry = sessions.get(id).ok_or_else(|| {
        ApiError::new(
            "DoesNotExistException",
            format!("session {id} does not exist"),
        )
    })?;
    let g = grant(state, id, &token)?;
    lock(&entry.tokens).push(token);
    tracing::info!(session_id = %id, "session resumed");
    Ok(Some(g))
}

fn terminate_session(state: &State, id: &str) {
    if let Some(entry) = lock(&state.sessions).remove(id) {
        if let Some(agent) = entry.agent {
            agent.close_channel("session terminated");
        }
        tracing::info!(session_id = %id, "session terminated");
    }
}

/// One accepted TCP connection: TLS if it starts with a handshake record, then HTTP.
async fn serve(state: Arc<State>, tcp: TcpStream) -> io::Result<()> {
    let _ = tcp.set_nodelay(true);
    let mut first = [0u8; 1];
    let n = tcp.peek(&mut first).await?;
    if n == 1 && first[0] == 0x16 {
        let acceptor = tokio_rustls::TlsAcceptor::from(state.tls.clone());
        let tls = acceptor.accept(tcp).await?;
        serve_http(state, tls).await
    } else {
        serve_http(state, tcp).await
    }
}

async fn serve_http<S>(state: Arc<State>, mut s: S) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut buf = Vec::new();
    loop {
        let Some(req) = http::read_request(&mut s, &mut buf).await? else {
            return Ok(());
        };
        let path = req.path.split('?').next().unwrap_or("").to_string();
        if let Some(id) = path.strip_prefix("/v1/data-channel/") {
            if let Err(r) = check_signature(&state, &req, "ssmmessages") {
                tracing::info!(kind = r.kind, "upgrade refused");
                let body = serde_json::json!({"__type": r.kind, "message": r.message}).to_string();
                http::respond(&mut s, r.status, &[], body.as_bytes()).await?;
                return Ok(());
            }
            return serve_data_channel(state, s, req, id.to_string(), buf).await;
        }
        if is_sts(&req) {
            let (status, body) = match check_signature(&state, &req, "sts") {
                Ok(()) => sts_answer(&state, &req),
                Err(r) => (r.status, sts_error(r.kind, &r.message)),
            };
            http::respond(
                &mut s,
                status,
                &[("Content-Type", "text/xml")],
                body.as_bytes(),
            )
            .await?;
            continue;
        }
        let json = [("Content-Type", "application/x-amz-json-1.1")];
        // KMS calls are signed for `kms`, SSM's for `ssm` (each service checks its own scope).
        let service = if req
            .header("x-amz-target")
            .is_some_and(|t| t.starts_with("TrentService."))
        {
            "kms"
        } else {
            "ssm"
        };
        if let Err(r) = check_signature(&state, &req, service) {
            tracing::info!(kind = r.kind, "api call refused");
            let body = serde_json::json!({"__type": r.kind, "message": r.message}).to_string();
            http::respond(&mut s, r.status, &json, body.as_bytes()).await?;
            continue;
        }
        if req.method != "POST" {
            http::respond(
                &mut s,
                405,
                &json,
                br#"{"__type":"UnknownOperationException"}"#,
            )
            .await?;
            continue;
        }
        let (status, body) = match api(&state, &req) {
            Ok(v) => (200, v.to_string()),
            Err(e) => (
                400,
                serde_json::json!({"__type": e.kind, "message": e.message}).to_string(),
            ),
        };
        http::respond(&mut s, status, &json, body.as_bytes()).await?;
    }
}

fn api(state: &State, req: &http::Request) -> Result<serde_json::Value, ApiError> {
    let body: serde_json::Value = if req.body.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::new("SerializationException", e.to_string()))?
    };
    let str_field = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let target = req.header("x-amz-target").unwrap_or("");
    if let Some(op) = target.strip_prefix("TrentService.") {
        let kms = state.kms.as_ref().ok_or_else(|| {
            ApiError::new(
                "UnknownOperationException",
                "no KMS key is configured (start the emulator with a KMS key id)",
            )
        })?;
        return kms
            .api(op, &body)
            .map_err(|(kind, m)| ApiError::new(kind, m));
    }
    match target {
        "AmazonSSM.StartSession" => {
            let parameters = body
                .get("Parameters")
                .and_then(|p| p.as_object())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let vals = match v {
                                serde_json::Value::Array(a) => a
                                    .iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect(),
                                serde_json::Value::String(s) => vec![s.clone()],
                                _ => Vec::new(),
                            };
                            (k.clone(), vals)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let request = StartSession {
                target: str_field("Target").unwrap_or_default(),
                document_name: str_field("DocumentName"),
                parameters,
            };
            let (_, g) = start_session(state, &request)?;
            grant_json(&g)
        }
        "AmazonSSM.ResumeSession" => {
            let id = str_field("SessionId")
                .ok_or_else(|| ApiError::new("ValidationException", "SessionId is required"))?;
            match resume_session(state, &id)? {
                Some(g) => grant_json(&g),
                None => Ok(serde_json::json!({ "SessionId": id, "TokenValue": "" })),
            }
        }
        "AmazonSSM.TerminateSession" => {
            let id = str_field("SessionId")
                .ok_or_else(|| ApiError::new("ValidationException", "SessionId is required"))?;
            terminate_session(state, &id);
            Ok(serde_json::json!({ "SessionId": id }))
        }
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("operation {other:?} is not emulated"),
        )),
    }
}

/// The AWS JSON of a grant (token in the clear: this is the answer that hands it out).
fn grant_json(g: &Grant) -> Result<serde_json::Value, ApiError> {
    let mut buf = vec![0u8; g.as_borrowed().json_len()];
    let n = g
        .as_borrowed()
        .emit(&mut buf)
        .map_err(|_| ApiError::new("InternalServerError", "grant does not fit"))?;
    serde_json::from_slice(&buf[..n])
        .map_err(|e| ApiError::new("InternalServerError", e.to_string()))
}

/// Strict mode: the request must be signed for `service` with a known key.
fn check_signature(
    state: &State,
    req: &http::Request,
    service: &str,
) -> Result<(), sigv4::Refusal> {
    let Some(own) = lock(&state.config).credentials.clone() else {
        return Ok(());
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut keys = vec![own];
    keys.extend(lock(&state.issued).iter().cloned());
    sigv4::verify(req, service, &keys, now)
}

/// An STS Query API call (form-encoded `Action=...`), not an SSM JSON one.
fn is_sts(req: &http::Request) -> bool {
    req.method == "POST"
        && req.header("x-amz-target").is_none()
        && req
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
}

/// `AssumeRole`: fresh temporary credentials for the role, valid for an hour.
fn sts_answer(state: &State, req: &http::Request) -> (u16, String) {
    let form = String::from_utf8_lossy(&req.body).into_owned();
    let field = |name: &str| {
        form.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| sigv4::form_decode(v))
        })
    };
    if field("Action").as_deref() != Some("AssumeRole") {
        return (
            400,
            sts_error("InvalidAction", "only AssumeRole is emulated"),
        );
    }
    let (Some(arn), Some(session)) = (field("RoleArn"), field("RoleSessionName")) else {
        return (
            400,
            sts_error(
                "ValidationError",
                "RoleArn and RoleSessionName are required",
            ),
        );
    };
    let creds = sigv4::Credentials {
        access_key_id: format!("ASIAEMU{}", random_hex(state, 6).to_ascii_uppercase()),
        secret_access_key: random_hex(state, 20),
        session_token: Some(random_hex(state, 32)),
    };
    lock(&state.issued).push(creds.clone());
    let role = arn.rsplit('/').next().unwrap_or("role");
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    tracing::info!(role, "role assumed");
    let body = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
         <AssumedRoleUser><AssumedRoleId>AROAEMULATOR:{session}</AssumedRoleId>\
         <Arn>arn:aws:sts::123456789012:assumed-role/{role}/{session}</Arn></AssumedRoleUser>\
         <Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
         <SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials>\
         </AssumeRoleResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata>\
         </AssumeRoleResponse>",
        creds.access_key_id,
        creds.secret_access_key,
        creds.session_token.as_deref().unwrap_or(""),
        sigv4::iso8601(expires),
        random_hex(state, 16),
    );
    (200, body)
}

/// An STS error document.
fn sts_error(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error><RequestId>0</RequestId></ErrorResponse>"
    )
}

async fn serve_data_channel<S>(
    state: Arc<State>,
    mut s: S,
    req: http::Request,
    id: String,
    leftover: Vec<u8>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let known = lock(&state.sessions).contains_key(&id);
    if !known {
        http::respond(&mut s, 404, &[], b"unknown session").await?;
        return Ok(());
    }
    if http::accept_upgrade(&mut s, &req).await?.is_none() {
        http::respond(&mut s, 400, &[], b"expected a websocket upgrade").await?;
        return Ok(());
    }
    let ws = WebSocketStream::from_partially_read(
        s,
        leftover,
        Role::Server,
        Some(ssm_tokio::ws_config()),
    )
    .await;
    let close_every = lock(&state.config).close_every;
    let ws = match close_every {
        Some(after) => futures_util::future::Either::Left(bye::ByeAfter::new(ws, after)),
        None => futures_util::future::Either::Right(ws),
    };
    let mut sessions = lock(&state.sessions);
    let Some(entry) = sessions.get_mut(&id) else {
        return Ok(());
    };
    if let Some(agent) = &entry.agent {
        if agent.attach_ws(ws) {
            tracing::debug!(session_id = %id, "client reconnected");
            return Ok(());
        }
        return Ok(()); // the agent has ended
    }
    let config = lock(&state.config).clone();
    let tokens = entry.tokens.clone();
    let authorize: ssm_tokio::AuthorizeFn =
        Arc::new(move |t: &str| lock(&tokens).iter().any(|k| k == t));
    let kms = state.kms.is_some().then(|| {
        let st = state.clone();
        ssm_tokio::kms::AgentKms {
            session_id: id.clone(),
            target: entry.target.clone(),
            decrypt: Arc::new(move |r: ssm_tokio::kms::DecryptRequest| {
                let context = r.encryption_context.into_iter().collect();
                let plain = st
                    .kms
                    .as_ref()
                    .ok_or_else(|| io::Error::other("no KMS"))
                    .and_then(|k| {
                        k.decrypt(&r.ciphertext_blob, &context)
                            .map_err(|(kind, m)| io::Error::other(format!("{kind}: {m}")))
                    })
                    .map(zeroize::Zeroizing::new);
                Box::pin(async move { plain })
            }),
        }
    });
    let agent = spawn_agent(
        &config,
        &entry.kind,
        random_seed(&state),
        AgentOptions {
            authorize: Some(authorize),
            faults: config.faults.clone(),
            pacing: config.pacing,
            reconnect_timeout: Some(config.reconnect_timeout),
            kms,
        },
    );
    agent.control.attach_ws(ws);
    entry.agent = Some(agent.control.clone());
    let kind = entry.kind.clone();
    drop(sessions);
    let st = state.clone();
    tokio::spawn(async move {
        agent::run(agent, kind, config.shell, config.agent_version).await;
        lock(&st.sessions).remove(&id);
        lock(&st.ended).insert(id.clone());
        tracing::info!(session_id = %id, "session ended");
    });
    Ok(())
}

/// Starts the agent-role engine for `kind` (the engine copies the handshake strings).
fn spawn_agent(
    config: &EmulatorConfig,
    kind: &Kind,
    seed: u64,
    options: AgentOptions,
) -> AgentSession {
    let properties = kind.properties();
    // Port sessions are never encrypted (the agent skips KMS for them).
    let kms_key_id = config
        .kms_key_id
        .as_deref()
        .filter(|_| kind.session_type() != ssm_proto::session::SessionType::Port);
    let customer_message = match kms_key_id {
        Some(_) if config.customer_message.is_empty() => {
            "This session is encrypted with AWS KMS (emulated)."
        }
        _ => config.customer_message.as_str(),
    };
    let mut c = ssm_tokio::EngineConfig::agent(
        seed,
        ssm_proto::session::AgentHandshake {
            agent_version: &config.agent_version,
            session_type: kind.session_type(),
            properties: &properties,
            kms_key_id,
            customer_message,
        },
    );
    if kms_key_id.is_some() {
        c.encryption = ssm_proto::session::Encryption::Kms {
            require_challenge: config.require_kms_challenge,
        };
    }
    c.chunk_size = config.chunk;
    if config
        .faults
        .as_ref()
        .is_some_and(Faults::loses_or_reorders)
    {
        // Dropped or overtaken frames leave gaps a default client holds only so far ahead.
        c.max_ahead = ssm_proto::session::DEFAULT_REORDER;
    }
    if let Some(w) = config.window {
        c.window = w;
    }
    AgentSession::spawn(c, options)
}
