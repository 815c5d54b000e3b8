//! The driver: one task per session that runs the `ssm_proto` engine over a WebSocket.
//!
//! It makes no protocol decision: it feeds WebSocket messages to `handle_input`, drains
//! `poll_transmit` into the socket, arms one timer from `poll_timeout`, moves stream bytes between
//! the engine and the handle's pipes, and forwards events. Engine time is milliseconds since the
//! driver started (`base`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{self, Event, Incoming, Stream, TransmitKind};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::faults::Faults;
use crate::handle::{Command, HandshakeInfo, Outcome, SessionEvent};
use crate::kms::{AgentKms, ClientKms, DataKey, DataKeyRequest, DecryptRequest};
use crate::pipe::{In, Inbox, Outbox};
use crate::transport::{self, BoxWs, Outgoing, Transport, TransportEvent};
use crate::{Error, Grant, TlsOptions};

/// The engine type the driver runs (default capacities), boxed: its buffers are inline.
pub(crate) type Engine = engine::Session;

/// Asks the application for a fresh [`Grant`] (a `ResumeSession` answer, validated with the
/// same endpoint policy as the first one) after the WebSocket dropped. `Ok(None)`: the service
/// says the session has ended (an answer without a token); the driver stops with
/// [`Error::SessionEnded`] instead of trying again.
pub type ResumeFn = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = std::io::Result<Option<Grant>>> + Send>> + Send + Sync,
>;

/// Headers to add to a WebSocket upgrade request for this stream URL (a SigV4 signature made with
/// fresh credentials); called before every connection attempt. Header values are never logged.
pub type UpgradeHeadersFn = Arc<
    dyn Fn(
            &ssm_proto::model::StreamUrl<'_>,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<(String, String)>>> + Send>>
        + Send
        + Sync,
>;

/// Agent role: decides whether the token in a client's `OpenDataChannelInput` is acceptable.
pub type AuthorizeFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Stop taking stream bytes out of the engine while this much waits for the application.
const PENDING_MAX: usize = 256 * 1024;
/// Small writes queued back to back are handed to the engine together, up to this many bytes.
const STAGE_MAX: usize = 16 * 1024;
/// Reconnect attempts after the transport dropped, with this pause between them.
const RECONNECT_ATTEMPTS: u32 = 5;
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// Agent role: after the session closed, how long to keep the connection so the engine can
/// repeat `channel_closed` until the client hangs up.
const AGENT_LINGER: Duration = Duration::from_secs(3);
/// While the transport's writer is backlogged, how often the engine's timers are looked at.
const BACKLOG_RECHECK: Duration = Duration::from_millis(50);

pub(crate) enum Role {
    Client {
        tls: TlsOptions,
        connect_timeout: Duration,
        resume: Option<ResumeFn>,
        upgrade_headers: Option<UpgradeHeadersFn>,
        /// The grant of the current connection (its token is wiped when replaced).
        grant: Box<Grant>,
        initial_size: Option<(u16, u16)>,
        /// KMS encryption when the agent asks for it; `None` answers "unsupported".
        kms: Option<ClientKms>,
    },
    Agent {
        authorize: Option<AuthorizeFn>,
        /// Decrypts the client's KMS data key (sessions configured to require KMS).
        kms: Option<AgentKms>,
    },
}

/// A KMS call under way: the data key (client) or the decrypted key (agent).
type KeyJob = Pin<Box<dyn Future<Output = std::io::Result<KeyAnswer>> + Send>>;

enum KeyAnswer {
    Generated(DataKey),
    Decrypted(zeroize::Zeroizing<Vec<u8>>),
}

/// Everything the driver needs besides the engine.
pub(crate) struct Setup {
    pub(crate) role: Role,
    pub(crate) faults: Option<Faults>,
    /// Sleep after each data message the driver hands the engine (the official 1 ms per 1 KiB).
    pub(crate) pacing: Option<Duration>,
    /// Bytes per `write` call (the engine's chunk size).
    pub(crate) chunk: usize,
    /// Agent role: end the session when no transport came back for this long.
    pub(crate) orphan_timeout: Option<Duration>,
}

/// The driver's ends of the pipes and channels.
pub(crate) struct Ends {
    /// Bytes for the engine's streams and the commands ordered among them.
    pub(crate) inbox: Inbox,
    /// [0] Output stream bytes from the engine (with the client's flags, agent role), [1] StdErr
    /// (client role; agent role: nobody reads).
    pub(crate) sinks: [Outbox; 2],
    pub(crate) events: mpsc::UnboundedSender<SessionEvent>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
}

type Reconnect = Pin<Box<dyn Future<Output = Result<(BoxWs, Box<Grant>), Error>> + Send>>;

/// What woke the driver.
enum Wake {
    Command(Option<Command>),
    Transport(TransportEvent),
    Timer,
    /// The next entry of the inbox (`None`: every writer and control has gone).
    In(Option<In>),
    /// A sink handed its next entry to the application.
    Flushed,
    Reconnected(Result<(BoxWs, Box<Grant>), Error>),
    Key(std::io::Result<KeyAnswer>),
    Paced,
    Drained,
}

struct Driver {
    session: Box<Engine>,
    setup: Setup,
    base: Instant,
    transport: Option<Transport>,
    generation: u64,
    tr_tx: mpsc::UnboundedSender<TransportEvent>,
    tr_rx: mpsc::UnboundedReceiver<TransportEvent>,
    events: mpsc::UnboundedSender<SessionEvent>,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    /// What the application writes: stream bytes, and commands in their place among them.
    inbox: Inbox,
    inbox_open: bool,
    /// The inbox entry being handed to the engine: the stream (0 Output, 1 StdErr), the
    /// bytes, and how many of them the engine took.
    staged: Option<(usize, Vec<u8>, usize)>,
    /// [0] data, [1] stderr.
    sinks: [Outbox; 2],
    handshake_done: bool,
    writable: bool,
    pace_until: Option<Instant>,
    reconnect: Option<Reconnect>,
    /// The KMS call the handshake waits for.
    key_job: Option<KeyJob>,
    /// When the agent role lost its transport (for `orphan_timeout`).
    orphaned_at: Option<Instant>,
    closed: Option<String>,
    closed_at: Option<Instant>,
    /// When the engine's counters are logged next (debug level, once a second).
    report_at: Instant,
    failure: Option<Error>,
    exit_code: Option<i32>,
    tbuf: Vec<u8>,
    rbuf: Vec<u8>,
}

/// Runs a session until it ends. `ws`, if given, is the first transport.
pub(crate) async fn run(
    session: Box<Engine>,
    setup: Setup,
    ends: Ends,
    ws: Option<BoxWs>,
) -> Result<Outcome, Error> {
    let (tr_tx, tr_rx) = mpsc::unbounded_channel();
    let mut d = Driver {
        session,
        base: Instant::now(),
        transport: None,
        generation: 0,
        tr_tx,
        tr_rx,
        events: ends.events,
        commands: ends.commands,
        commands_open: true,
        inbox: ends.inbox,
        inbox_open: true,
        staged: None,
        sinks: ends.sinks,
        handshake_done: false,
        writable: true,
        pace_until: None,
        reconnect: None,
        key_job: None,
        orphaned_at: Some(Instant::now()),
        closed: None,
        closed_at: None,
        report_at: Instant::now(),
        failure: None,
        exit_code: None,
        tbuf: vec![0u8; 16 * 1024],
        rbuf: vec![0u8; 64 * 1024],
        setup,
    };
    d.sync_clock();
    if let Role::Client {
        initial_size: Some((cols, rows)),
        ..
    } = d.setup.role
    {
        // The engine keeps it and sends it as the handshake completes.
        d.session.resize(cols.into(), rows.into());
    }
    if let Some(ws) = ws {
        d.attach(ws);
        if let Role::Client { grant, .. } = &d.setup.role {
            let now = d.now();
            if let Err(e) = d
                .session
                .handle_connected(now, grant.token().expose_secret())
            {
                return Err(Error::Protocol(e.to_string()));
            }
        }
    }
    d.run().await
}

impl Driver {
    fn now(&self) -> ssm_proto::Instant {
        ssm_proto::Instant::from_millis(self.base.elapsed().as_millis() as u64)
    }

    fn to_tokio(&self, t: ssm_proto::Instant) -> Instant {
        self.base + Duration::from_millis(t.total_millis())
    }

    fn sync_clock(&mut self) {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let now = self.now();
        self.session.set_unix_time(now, unix_ms);
    }

    fn emit(&self, e: SessionEvent) {
        let _ = self.events.send(e);
    }

    fn attach(&mut self, ws: BoxWs) {
        self.generation += 1;
        tracing::debug!(generation = self.generation, "transport attached");
        self.transport = Some(transport::spawn(
            ws,
            self.generation,
            self.setup.faults.clone(),
            self.tr_tx.clone(),
        ));
    }

    fn finished(&self) -> bool {
        let ended = self.failure.is_some()
            || (self.closed.is_some() && (self.transport.is_none() || !self.lingering()));
        ended && self.sinks.iter().all(|s| s.waiting() == 0)
    }

    /// Agent role, closed, connection up: keep it a little for the client to hang up.
    fn lingering(&self) -> bool {
        matches!(self.setup.role, Role::Agent { .. })
            && self.closed_at.is_some_and(|t| t.elapsed() < AGENT_LINGER)
    }

    async fn run(mut self) -> Result<Outcome, Error> {
        loop {
            self.pump();
            // What the engine delivered goes to the readers once per turn, not once per
            // message: fewer hand-overs and wake-ups of the reading task.
            for s in &mut self.sinks {
                s.flush();
            }
            if self.finished() {
                break;
            }
            let wake = self.wait().await;
            self.on_wake(wake);
            if tracing::enabled!(tracing::Level::DEBUG) && self.report_at <= Instant::now() {
                self.report_at = Instant::now() + Duration::from_secs(1);
                tracing::debug!(
                    stats = ?self.session.stats(),
                    unacked = self.session.unacked_bytes(),
                    rto = ?self.session.rto(),
                    srtt = ?self.session.srtt(),
                    "engine counters"
                );
            }
            // Take what else the socket delivered without going back to the select; pump after
            // each message so acks go out and delivered bytes leave the engine's small buffer.
            for _ in 0..256 {
                match self.tr_rx.try_recv() {
                    Ok(e) => {
                        self.pump();
                        self.on_wake(Wake::Transport(e));
                    }
                    Err(_) => break,
                }
            }
        }
        tracing::debug!(stats = ?self.session.stats(), "driver finished");
        if let Some(t) = self.transport.take() {
            t.close_gracefully().await;
        }
        for s in &mut self.sinks {
            s.close();
        }
        match self.failure.take() {
            Some(e) => Err(e),
            None => Ok(Outcome {
                exit_code: self.exit_code,
                reason: self.closed.take().unwrap_or_default(),
                close_message: close_message(&self.session),
            }),
        }
    }

    /// Moves everything that can move without waiting.
    fn pump(&mut self) {
        loop {
            let mut progress = false;
            while let Some(ev) = self.session.poll_event() {
                progress = true;
                self.on_event(ev);
            }
            // Engine → application.
            progress |= self.read_engine(PENDING_MAX);
            // Application → engine, in the order written (an ordered command once the bytes
            // before it are in the engine).
            while self.closed.is_none() && self.handshake_done && self.writable && self.paced() {
                let now = self.now();
                let Some((i, bytes, off)) = self.staged.as_mut() else {
                    break;
                };
                let mut data = &bytes[*off..];
                if self.setup.pacing.is_some() {
                    // One message per pause, as the official agent does.
                    data = &data[..data.len().min(self.setup.chunk.max(1))];
                }
                let r = if *i == 0 {
                    self.session.write(now, data)
                } else {
                    self.session.write_stderr(now, data)
                };
                match r {
                    Ok(0) => self.writable = false,
                    Ok(n) => {
                        progress = true;
                        *off += n;
                        if *off == bytes.len() {
                            // The next entry comes with the next turn (`wait`), after what
                            // the socket brought meanwhile (acknowledgements) was handled.
                            self.staged = None;
                        }
                        if let Some(p) = self.setup.pacing {
                            self.pace_until = Some(Instant::now() + p);
                        }
                    }
                    Err(e) => {
                        tracing::debug!("engine refused data: {e}");
                        self.writable = false;
                    }
                }
            }
            // Engine → socket, while the writer keeps up (else `Transport::drained` wakes us);
            // acknowledgements even when it does not (they overtake its queue).
            if self.transport.is_some() {
                loop {
                    let now = self.now();
                    let polled = if self.backlogged() {
                        self.session.poll_overtaking(now, &mut self.tbuf)
                    } else {
                        self.session.poll_transmit(now, &mut self.tbuf)
                    };
                    match polled {
                        Ok(Some(t)) => {
                            progress = true;
                            let bytes = &self.tbuf[..t.len];
                            let out = match t.kind {
                                TransmitKind::Text => Outgoing::Message(Message::text(
                                    String::from_utf8_lossy(bytes).into_owned(),
                                )),
                                TransmitKind::Binary if t.class.may_overtake() => {
                                    Outgoing::Priority(Message::binary(bytes.to_vec()))
                                }
                                TransmitKind::Binary => {
                                    Outgoing::Message(Message::binary(bytes.to_vec()))
                                }
                            };
                            if let Some(tr) = &self.transport {
                                tr.send(out);
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            self.tbuf.resize(e.required, 0);
                        }
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn on_in(&mut self, e: In) {
        match e {
            In::Data(i, mut d) => {
                self.inbox.join(i, &mut d, STAGE_MAX);
                self.staged = Some((i, d, 0));
            }
            // A session that has closed sends nothing more.
            In::Command(c) if self.closed.is_none() => self.apply(c),
            In::Command(_) => {}
        }
    }

    /// The transport's writer holds `MAX_BACKLOG` frames: take none from the engine now.
    fn backlogged(&self) -> bool {
        self.transport
            .as_ref()
            .is_some_and(Transport::is_backlogged)
    }

    /// Moves delivered bytes from the engine to the sinks while each holds less than `max`
    /// waiting; whether any moved.
    fn read_engine(&mut self, max: usize) -> bool {
        let mut moved = false;
        while self.sinks.iter().all(|s| s.waiting() < max) {
            match self.session.read(&mut self.rbuf) {
                Some((stream, n)) => {
                    moved = true;
                    let i = usize::from(matches!(stream, Stream::StdErr));
                    let chunk = &self.rbuf[..n];
                    self.sinks[i].push(chunk);
                }
                None => break,
            }
        }
        moved
    }

    fn paced(&self) -> bool {
        self.pace_until.is_none_or(|t| t <= Instant::now())
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Opened => {
                let ok = match &self.setup.role {
                    Role::Agent {
                        authorize: Some(auth),
                        ..
                    } => self.session.peer_token().is_some_and(|t| auth(t)),
                    _ => true,
                };
                if ok {
                    self.emit(SessionEvent::Opened);
                } else {
                    tracing::warn!("client presented an unknown token; dropping the connection");
                    self.transport = None;
                    let now = self.now();
                    self.session.handle_transport_closed(now);
                }
            }
            Event::HandshakeComplete => {
                self.handshake_done = true;
                self.emit(SessionEvent::HandshakeComplete(handshake_info(
                    &self.session,
                )));
            }
            Event::Readable => {}
            Event::Writable => self.writable = true,
            Event::Resized { cols, rows } => self.emit(SessionEvent::Resized {
                cols: u16::try_from(cols).unwrap_or(u16::MAX),
                rows: u16::try_from(rows).unwrap_or(u16::MAX),
            }),
            Event::Flag(f) => {
                // The engine reports a flag in stream order (every byte before it already read,
                // none after it readable yet): it goes into the input where it falls.
                self.sinks[0].push_flag(f);
                self.emit(SessionEvent::Flag(f));
            }
            Event::ExitCode(c) => {
                self.exit_code = Some(c);
                self.emit(SessionEvent::ExitCode(c));
            }
            Event::PublicationPaused => self.emit(SessionEvent::PublicationPaused),
            Event::PublicationResumed => {
                self.writable = true;
                self.emit(SessionEvent::PublicationResumed)
            }
            Event::DataKeyNeeded | Event::DataKeyToDecrypt => self.start_key_job(),
            Event::Closed(reason) => {
                let text = reason.to_string();
                tracing::debug!(reason = %text, "session closed");
                self.emit(SessionEvent::Closed(text.clone()));
                // A KMS failure already said what went wrong, better than the reason can.
                if self.failure.is_none() {
                    self.failure = self.close_failure(reason);
                }
                self.key_job = None;
                self.closed = Some(text);
                self.closed_at = Some(Instant::now());
                self.reconnect = None;
            }
            #[allow(unreachable_patterns, reason = "the engine's Event is non_exhaustive")]
            _ => {}
        }
    }

    /// Whether a close is an error for the application: the adapter's one policy over the
    /// engine's close reasons (the engine decides when and why a session closes; this only sorts
    /// its reasons into [`Error`] kinds, and nothing else in the adapter does).
    ///
    /// | reason | result |
    /// |---|---|
    /// | `ChannelClosed` before the handshake completed (client) | `ChannelClosed` with the agent's text |
    /// | `GaveUp` | `ConnectionLost` |
    /// | `HandshakeTimeout`, `HandshakeFailed`, `Encryption` (KMS) | `HandshakeFailed` |
    /// | `ProtocolViolation` | `Protocol` |
    /// | `ChannelClosed` after the handshake, `Local`, `Terminated` | a normal end ([`Outcome`]) |
    fn close_failure(&self, reason: engine::CloseReason) -> Option<Error> {
        use engine::CloseReason as R;
        let client = matches!(self.setup.role, Role::Client { .. });
        let message = close_message(&self.session);
        match reason {
            R::ChannelClosed if client && !self.handshake_done => Some(Error::ChannelClosed(
                message.unwrap_or_else(|| reason.to_string()),
            )),
            R::GaveUp => Some(Error::ConnectionLost(reason.to_string())),
            R::HandshakeTimeout | R::HandshakeFailed => {
                Some(Error::HandshakeFailed(reason.to_string()))
            }
            // The agent role's close message says which check failed.
            R::Encryption(_) => Some(Error::HandshakeFailed(
                message.unwrap_or_else(|| reason.to_string()),
            )),
            R::ProtocolViolation => Some(Error::Protocol(match self.session.close_error() {
                Some(e) => format!("{reason}: {e}"),
                None => reason.to_string(),
            })),
            R::ChannelClosed | R::Local | R::Terminated => None,
            #[allow(
                unreachable_patterns,
                reason = "the engine's CloseReason is non_exhaustive"
            )]
            _ => None,
        }
    }

    /// Asks the application's KMS hook for what the engine's KMS event wants.
    fn start_key_job(&mut self) {
        let job: Option<KeyJob> = match &self.setup.role {
            Role::Client {
                kms: Some(k),
                grant,
                ..
            } => self
                .session
                .data_key_request(grant.session_id(), &k.target)
                .map(|r| {
                    let request = DataKeyRequest {
                        key_id: r.key_id.to_string(),
                        number_of_bytes: r.number_of_bytes,
                        encryption_context: crate::kms::context_pairs(&r.context),
                    };
                    tracing::debug!(key_id = %request.key_id, "asking KMS for a data key");
                    let f = (k.generate_data_key)(request);
                    Box::pin(async move { f.await.map(KeyAnswer::Generated) }) as KeyJob
                }),
            Role::Agent { kms: Some(k), .. } => {
                match (
                    self.session.data_key_ciphertext(),
                    self.session.data_key_context(&k.session_id, &k.target),
                ) {
                    (Some(blob), Some(c)) => {
                        let request = DecryptRequest {
                            ciphertext_blob: blob.to_vec(),
                            encryption_context: crate::kms::context_pairs(&c),
                        };
                        let f = (k.decrypt)(request);
                        Some(Box::pin(async move { f.await.map(KeyAnswer::Decrypted) }) as KeyJob)
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match job {
            Some(j) => self.key_job = Some(j),
            None => {
                tracing::warn!("the session asks for KMS encryption and no KMS hook is set");
                let now = self.now();
                self.session.refuse_data_key(now);
            }
        }
    }

    /// The KMS hook answered.
    fn on_key(&mut self, r: std::io::Result<KeyAnswer>) {
        self.key_job = None;
        let now = self.now();
        let set = match r {
            Ok(KeyAnswer::Generated(k)) => self
                .session
                .set_data_key(
                    now,
                    &k.plaintext,
                    &k.ciphertext_blob,
                    crate::kms::nonce_start(),
                )
                .map_err(|e| format!("KMS data key unusable: {e}")),
            Ok(KeyAnswer::Decrypted(p)) => self
                .session
                .set_decrypted_data_key(now, &p)
                .map_err(|e| format!("KMS decrypted key unusable: {e}")),
            Err(e) => Err(format!("KMS refused the data key: {}", cut(&e.to_string()))),
        };
        if let Err(message) = set {
            tracing::warn!("{message}");
            self.failure = Some(Error::HandshakeFailed(message));
            self.session.refuse_data_key(now);
        }
    }

    fn apply(&mut self, c: Command) {
        let now = self.now();
        match c {
            Command::Resize(cols, rows) => self.session.resize(cols.into(), rows.into()),
            Command::Terminate => self.session.terminate(now),
            Command::Flag(f) => {
                if let Err(e) = self.session.send_flag(f) {
                    tracing::debug!("flag not sent: {e}");
                }
            }
            Command::Close => self.session.close(now),
            Command::ExitCode(code) => {
                if let Err(e) = self.session.send_exit_code(now, code) {
                    tracing::debug!("exit code not sent: {e}");
                }
            }
            Command::CloseChannel(reason) => self.session.close_channel(now, &reason),
            Command::Attach(ws) => {
                let had = self.transport.take().is_some();
                if had {
                    self.session.handle_transport_closed(now);
                }
                self.attach(ws);
                // Agent role: the engine then waits for the client's OpenDataChannelInput.
                if let Err(e) = self.session.handle_connected(now, "") {
                    tracing::debug!("attach: {e}");
                }
                self.orphaned_at = None;
                if had || self.generation > 1 {
                    self.emit(SessionEvent::Reconnected);
                }
            }
        }
    }

    /// Waits for the next thing to do.
    async fn wait(&mut self) -> Wake {
        let mut timer = self.session.poll_timeout().map(|t| self.to_tokio(t));
        let backlogged = self.backlogged();
        if backlogged {
            // A retransmission that is due waits for `Drained`, not for the timer (which would
            // fire at once, again and again); the timer still comes round for the give-up.
            let later = Instant::now() + BACKLOG_RECHECK;
            timer = timer.map(|t| t.max(later));
        }
        if let (Some(since), Some(limit)) = (self.orphaned_at, self.setup.orphan_timeout) {
            let t = since + limit;
            timer = Some(timer.map_or(t, |x| x.min(t)));
        }
        if let Some(t) = self.closed_at.filter(|_| self.lingering()) {
            let t = t + AGENT_LINGER;
            timer = Some(timer.map_or(t, |x| x.min(t)));
        }
        // Staged bytes that `pump` held back for pacing need a wake even when the pause has
        // already run out by now (else nothing wakes the driver to send them).
        let staged = self.staged.is_some();
        let pace = self.pace_until.filter(|t| staged || *t > Instant::now());
        let drained = self.transport.as_ref().map(Transport::drained);
        let take_in = self.inbox_open && !staged;
        let inbox = &mut self.inbox;
        let [k0, k1] = &mut self.sinks;
        let reconnecting = self.reconnect.is_some();
        let reconnect = self.reconnect.as_mut();
        let keying = self.key_job.is_some();
        let key_job = self.key_job.as_mut();
        tokio::select! {
            c = self.commands.recv(), if self.commands_open => Wake::Command(c),
            Some(e) = self.tr_rx.recv() => Wake::Transport(e),
            _ = async { drained.expect("guarded").notified().await }, if backlogged => Wake::Drained,
            _ = sleep_opt(timer) => Wake::Timer,
            _ = sleep_opt(pace) => Wake::Paced,
            e = inbox.recv(), if take_in => Wake::In(e),
            () = k0.flush_one(), if k0.waiting() > 0 => Wake::Flushed,
            () = k1.flush_one(), if k1.waiting() > 0 => Wake::Flushed,
            r = async { reconnect.expect("guarded").await }, if reconnecting => Wake::Reconnected(r),
            r = async { key_job.expect("guarded").await }, if keying => Wake::Key(r),
        }
    }

    fn on_wake(&mut self, wake: Wake) {
        let now = self.now();
        match wake {
            Wake::Command(None) => self.commands_open = false,
            Wake::Command(Some(c)) => self.apply(c),
            Wake::Timer => {
                self.sync_clock();
                self.session.handle_timeout(now);
                if let (Some(since), Some(limit)) = (self.orphaned_at, self.setup.orphan_timeout) {
                    if self.transport.is_none() && since.elapsed() >= limit && self.closed.is_none()
                    {
                        tracing::info!("no connection for {limit:?}; ending the session");
                        self.failure = Some(Error::ConnectionLost(format!(
                            "no connection for {} s",
                            limit.as_secs()
                        )));
                    }
                }
            }
            Wake::Paced => self.pace_until = None,
            // The writer has room again: the next `pump` takes frames from the engine.
            Wake::Drained => {}
            Wake::Transport(TransportEvent::Message(g, m)) => {
                if g != self.generation || self.transport.is_none() {
                    return;
                }
                let r = match &m {
                    Message::Binary(b) => self.session.handle_input(now, Incoming::Binary(b)),
                    Message::Text(t) => self
                        .session
                        .handle_input(now, Incoming::Text(t.as_str().as_bytes())),
                    _ => Ok(()),
                };
                if let Err(e) = r {
                    tracing::debug!("ignored peer input: {e}");
                }
            }
            Wake::Transport(TransportEvent::Closed(g, reason)) => {
                if g != self.generation || self.transport.is_none() {
                    return;
                }
                self.transport = None;
                if self.closed.is_some() {
                    return;
                }
                tracing::info!(%reason, "data channel connection lost");
                self.session.handle_transport_closed(now);
                self.emit(SessionEvent::TransportLost(reason.clone()));
                self.start_reconnect(reason);
            }
            Wake::Key(r) => self.on_key(r),
            Wake::Reconnected(Ok((ws, grant))) => {
                self.reconnect = None;
                self.attach(ws);
                if let Err(e) = self
                    .session
                    .handle_connected(now, grant.token().expose_secret())
                {
                    self.failure = Some(Error::Protocol(e.to_string()));
                }
                if let Role::Client { grant: g, .. } = &mut self.setup.role {
                    *g = grant;
                }
                tracing::info!("data channel resumed");
                self.emit(SessionEvent::Reconnected);
            }
            Wake::Reconnected(Err(e)) => {
                self.reconnect = None;
                match e {
                    // The command's exit code came before the connection dropped: the session
                    // is complete, only its `channel_closed` was lost with the connection.
                    Error::SessionEnded if self.exit_code.is_some() => {
                        tracing::debug!(
                            "the session ended on the service's side after its exit code"
                        );
                        self.closed = Some("the session ended on the service's side".into());
                        self.closed_at = Some(Instant::now());
                    }
                    Error::SessionEnded => self.failure = Some(Error::SessionEnded),
                    e => self.failure = Some(Error::ConnectionLost(e.to_string())),
                }
            }
            Wake::In(Some(e)) => self.on_in(e),
            Wake::In(None) => self.inbox_open = false,
            Wake::Flushed => {}
        }
    }

    fn start_reconnect(&mut self, reason: String) {
        match &self.setup.role {
            Role::Client {
                resume: Some(resume),
                tls,
                connect_timeout,
                upgrade_headers,
                ..
            } => {
                let (resume, tls, timeout) = (resume.clone(), tls.clone(), *connect_timeout);
                let headers = upgrade_headers.clone();
                self.reconnect = Some(Box::pin(async move {
                    let mut last = Error::ConnectionLost(reason);
                    for attempt in 0..RECONNECT_ATTEMPTS {
                        if attempt > 0 {
                            tokio::time::sleep(RECONNECT_PAUSE).await;
                        }
                        let grant = match resume().await {
                            Ok(Some(g)) => Box::new(g),
                            Ok(None) => return Err(Error::SessionEnded),
                            Err(e) => {
                                last = Error::ConnectionLost(format!("resume failed: {e}"));
                                continue;
                            }
                        };
                        let url = grant.stream_url();
                        match transport::connect_ws(url, &tls, timeout, headers.as_ref()).await {
                            Ok(ws) => return Ok((ws, grant)),
                            Err(e) => last = e,
                        }
                    }
                    Err(last)
                }));
            }
            Role::Client { .. } => {
                self.failure = Some(if self.handshake_done {
                    Error::ConnectionLost(reason)
                } else {
                    Error::HandshakeFailed(format!(
                        "the connection closed before the handshake completed ({reason}); \
                         is the token valid?"
                    ))
                });
            }
            // The agent waits for the client to come back (Command::Attach), the engine to
            // give up, or `orphan_timeout`.
            Role::Agent { .. } => self.orphaned_at = Some(Instant::now()),
        }
    }
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

// ---- engine accessors ----

fn handshake_info(s: &Engine) -> HandshakeInfo {
    HandshakeInfo {
        session_type: s.session_type(),
        properties: s.properties().unwrap_or_default().to_string(),
        agent_version: s.agent_version().unwrap_or_default().to_string(),
        client_version: s.client_version().unwrap_or_default().to_string(),
        customer_message: s.customer_message().to_string(),
        encrypted: s.is_encrypted(),
    }
}

/// Long text (an SDK error can carry a whole HTTP body) cut for one line of a message.
fn cut(s: &str) -> String {
    const MAX: usize = 300;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn close_message(s: &Engine) -> Option<String> {
    Some(s.close_message())
        .filter(|m| !m.is_empty())
        .map(str::to_string)
}
