//! Surviving the service's WebSocket close: the runner calls ResumeSession through a
//! caller-provided [`ResumeSource`], reconnects with the new token and carries on with the
//! engine's state (sequence numbers, both buffers, RTT; PROTOCOL.md §6a).
//!
//! ```text
//!  Runner::run_resuming ─► connection ends (close "Bye", EOF, error) while the session is open
//!      ─► engine.handle_transport_closed ─► ResumeSource::resume (ResumeSession + new connection)
//!      ─► same session id? StreamUrl passes the policy? ─► upgrade ─► handle_connected(new token)
//!      └─ failed: retry after 100 ms, 200, 400, 800 ms … up to 5 s, 5 attempts in all
//!      └─ answer without a token: the session has ended ─► Error::Api(SessionEnded)
//! ```

use embassy_time::{Duration, Timer};
use embedded_io_async::{ErrorType, Read, Write};
use ssm_proto::model::StartSessionResponse;
use ssm_proto::session::{self as engine, CloseReason};

use crate::api::StreamUrls;
use crate::session::{finish, new, now, Config, Link, Resources, Runner, Session};
use crate::Error;

/// Attempts per outage, as the official client (PROTOCOL.md §6a: 5 retries).
pub const RESUME_ATTEMPTS: u32 = 5;
/// First pause before a retry; doubled per attempt, capped at [`RESUME_PAUSE_MAX`] (the
/// plugin's 100 ms growing to 5 s).
pub const RESUME_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between attempts.
pub const RESUME_PAUSE_MAX: Duration = Duration::from_secs(5);

/// Most upgrade headers a [`Resumed`] carries (a SigV4 signature takes 3).
pub const RESUME_HEADERS: usize = 4;

/// A new connection for the session, from [`ResumeSource::resume`].
pub struct Resumed<'c, T> {
    /// The ResumeSession answer (parsed by the core; the runner checks it again).
    pub response: StartSessionResponse<'c>,
    /// A fresh connection to `response`'s StreamUrl (TLS for `wss`), nothing sent on it yet:
    /// a `(reader, writer)` pair, or a connection the runner splits (a [`crate::tls`]
    /// connection over a `Clone` socket).
    pub transport: T,
    /// Extra upgrade headers (e.g. [`crate::Api::sign_upgrade`]'s), or none.
    pub headers: heapless::Vec<(&'c str, &'c str), RESUME_HEADERS>,
}

/// A connection the runner can read and write side by side: split into a read half and a
/// write half for as long as it runs on it.
pub trait Split {
    /// The read half.
    type Reader<'t>: Read
    where
        Self: 't;
    /// The write half.
    type Writer<'t>: Write
    where
        Self: 't;

    /// Both halves, borrowing the connection.
    fn split(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>);
}

impl<R: Read, W: Write> Split for (R, W) {
    type Reader<'t>
        = &'t mut R
    where
        Self: 't;
    type Writer<'t>
        = &'t mut W
    where
        Self: 't;

    fn split(&mut self) -> (&mut R, &mut W) {
        (&mut self.0, &mut self.1)
    }
}

#[cfg(feature = "tls")]
impl<'a, S: Read + Write + Clone + 'a> Split for crate::tls::Connection<'a, S> {
    type Reader<'t>
        = embedded_tls::TlsReader<'t, S, crate::tls::CipherSuite>
    where
        Self: 't;
    type Writer<'t>
        = embedded_tls::TlsWriter<'t, S, crate::tls::CipherSuite>
    where
        Self: 't;

    fn split(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        embedded_tls::TlsConnection::split(self)
    }
}

/// Where the runner gets a new token and connection when the old one ends. Typically:
/// [`crate::Api::resume_session`] over a connection to the SSM API, then TCP + TLS to the
/// answer's StreamUrl host; over embassy-net, `NetApi` (feature `net`) is that source.
#[allow(
    async_fn_in_trait,
    reason = "used on one executor; no Send bound wanted on devices"
)]
pub trait ResumeSource {
    /// The new connection.
    type Transport<'c>: Split
    where
        Self: 'c;

    /// Calls ResumeSession for `session_id` and connects to the answer's StreamUrl. Drop or
    /// close whatever the previous connection left before opening the next.
    ///
    /// # Errors
    /// Whatever failed; `Error::Api(api::Error::SessionEnded)` ends the session for good, any
    /// other error is retried.
    async fn resume<'c>(
        &'c mut self,
        session_id: &str,
    ) -> Result<Resumed<'c, Self::Transport<'c>>, Error>;

    /// Called once when the runner is done (the session ended, or it gave up): close what the
    /// last connection left. Nothing by default.
    async fn close(&mut self) {}
}

/// The first connection of a session, from [`OpenSource::open`].
pub struct Opened<'c, T> {
    /// A fresh connection to the StartSession answer's StreamUrl (TLS for `wss`), nothing sent
    /// on it yet.
    pub transport: T,
    /// Extra upgrade headers (e.g. [`crate::Api::sign_upgrade`]'s), or none.
    pub headers: heapless::Vec<(&'c str, &'c str), RESUME_HEADERS>,
}

/// A [`ResumeSource`] that also opens a session's first connection, so that every connection
/// of the session lives in the source's memory, one after the other ([`unconnected`]). Over
/// embassy-net, `NetApi` (feature `net`) is one: the session then needs one `NetResources`
/// instead of two.
#[allow(
    async_fn_in_trait,
    reason = "used on one executor; no Send bound wanted on devices"
)]
pub trait OpenSource: ResumeSource {
    /// Connects to `response`'s StreamUrl (the StartSession answer). Close whatever an earlier
    /// call (StartSession's) left open first.
    ///
    /// # Errors
    /// Whatever failed; the runner ends with it.
    async fn open<'c>(
        &'c mut self,
        response: &StartSessionResponse<'_>,
    ) -> Result<Opened<'c, Self::Transport<'c>>, Error>;
}

/// The connection an [`Unconnected`] runner does not hold: it never reads or writes it (the
/// source's connections take its place), and it would read the end and refuse writes.
struct NoConnection;

impl ErrorType for NoConnection {
    type Error = embedded_io_async::ErrorKind;
}

impl Read for NoConnection {
    async fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> {
        Ok(0)
    }
}

impl Write for NoConnection {
    async fn write(&mut self, _: &[u8]) -> Result<usize, Self::Error> {
        Err(embedded_io_async::ErrorKind::NotConnected)
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Err(embedded_io_async::ErrorKind::NotConnected)
    }
}

/// The runner of a session whose first connection its source opens too
/// ([`Unconnected::run`]); made by [`unconnected`].
pub struct Unconnected<'d, const MSG: usize> {
    runner: Runner<'d, NoConnection, NoConnection, MSG>,
    response: &'d StartSessionResponse<'d>,
}

/// Creates a session for `response` (a StartSession answer) without a connection: the runner
/// gets every connection from its [`OpenSource`], the first one too, so one set of network
/// memory serves them all. `session` is the engine's configuration (e.g. KMS encryption;
/// its seed is replaced by `seed`, as in [`new`]).
pub fn unconnected<'d, const RX: usize, const MSG: usize, const TX: usize>(
    response: &'d StartSessionResponse<'d>,
    session: engine::Config<'d>,
    resources: &'d mut Resources<RX, MSG, TX>,
    seed: u64,
) -> (Session<'d>, Unconnected<'d, MSG>) {
    let mut config = Config::from_response(response);
    config.session = session;
    let (handle, runner) = new::<NoConnection, NoConnection, RX, MSG, TX>(
        (NoConnection, NoConnection),
        config,
        resources,
        seed,
    );
    (handle, Unconnected { runner, response })
}

/// Whether an error ends the connection but not the session: worth a ResumeSession.
fn connection_lost(e: &Error) -> bool {
    matches!(
        e,
        Error::TransportClosed | Error::Transport(_) | Error::WebSocket(_)
    )
}

/// The pause before attempt `attempt` (1-based).
fn pause(attempt: u32) -> Duration {
    let ms = RESUME_PAUSE
        .as_millis()
        .saturating_mul(1u64 << (attempt - 1).min(16));
    Duration::from_millis(ms.min(RESUME_PAUSE_MAX.as_millis()))
}

impl<'d, R: Read, W: Write, const MSG: usize> Runner<'d, R, W, MSG> {
    /// Like [`Runner::run`], but when the connection ends while the session is open (the
    /// service closes it about every 60 minutes), resumes: `source` calls ResumeSession and
    /// opens a new connection, the answer must name `session_id` and its StreamUrl pass
    /// `policy` (the same checks as StartSession's), then the runner upgrades, sends
    /// OpenDataChannelInput with the new token and carries on; the engine resends what the
    /// agent had not acknowledged.
    ///
    /// # Errors
    /// As [`Runner::run`]; `Error::Api(api::Error::SessionEnded)` when ResumeSession says the
    /// session has ended; the last error after [`RESUME_ATTEMPTS`] failed attempts in a row;
    /// [`Error::BadStreamUrl`] for an answer about another session or to a refused host.
    pub async fn run_resuming<S: ResumeSource>(
        mut self,
        session_id: &str,
        source: &mut S,
        policy: StreamUrls,
    ) -> Result<CloseReason, Error> {
        let (mut link, reader, writer, config) = self.link();
        let shared = link.shared;
        let first = link.drive(reader, writer, &config).await;
        let result = resume_until_end(&mut link, first, session_id, source, policy).await;
        let result = finish(shared, result);
        source.close().await;
        result
    }
}

impl<const MSG: usize> Unconnected<'_, MSG> {
    /// Runs the session to its end on connections from `source`: [`OpenSource::open`] for the
    /// first one (its StreamUrl must pass `policy`), then, when a connection is lost while the
    /// session is open, ResumeSession as [`Runner::run_resuming`] does (the same checks,
    /// attempts and errors). The source closes its last connection at the end.
    ///
    /// # Errors
    /// [`Error::BadStreamUrl`] when the answer's StreamUrl fails `policy`; what `open` failed
    /// with; as [`Runner::run_resuming`].
    pub async fn run<S: OpenSource>(
        self,
        source: &mut S,
        policy: StreamUrls,
    ) -> Result<CloseReason, Error> {
        let Unconnected {
            mut runner,
            response,
        } = self;
        let (mut link, _, _, config) = runner.link();
        let shared = link.shared;
        let result = if policy.check(&response.stream_url()).is_err() {
            warn!("ssm: StreamUrl refused");
            Err(Error::BadStreamUrl)
        } else {
            match source.open(response).await {
                Ok(mut opened) => {
                    let config = Config {
                        headers: &opened.headers,
                        ..config
                    };
                    let (mut reader, mut writer) = opened.transport.split();
                    Ok(link.drive(&mut reader, &mut writer, &config).await)
                }
                // Nothing ran on it: nothing to resume.
                Err(e) => {
                    debug!("ssm: first connection failed: {}", e.as_str());
                    Err(e)
                }
            }
        };
        let result = match result {
            Ok(first) => {
                let id = response.session_id();
                resume_until_end(&mut link, first, id, source, policy).await
            }
            Err(e) => Err(e),
        };
        let result = finish(shared, result);
        source.close().await;
        result
    }
}

/// Resumes after each lost connection of `link` (whose first connection ended with `result`)
/// until the session ends or resuming fails.
async fn resume_until_end<S: ResumeSource, const MSG: usize>(
    link: &mut Link<'_, '_, MSG>,
    mut result: Result<CloseReason, Error>,
    session_id: &str,
    source: &mut S,
    policy: StreamUrls,
) -> Result<CloseReason, Error> {
    'outage: loop {
        match result {
            Err(ref e) if connection_lost(e) && !link.engine(|e| e.is_closed()) => {}
            other => return other,
        }
        link.engine(|e| e.handle_transport_closed(now()));
        debug!("ssm: connection lost; resuming");
        let mut last = result;
        for attempt in 1..=RESUME_ATTEMPTS {
            if attempt > 1 {
                Timer::after(pause(attempt - 1)).await;
            }
            let mut resumed = match source.resume(session_id).await {
                Ok(r) => r,
                Err(e @ Error::Api(ssm_proto::api::Error::SessionEnded)) => {
                    debug!("ssm: resume: the session has ended");
                    return Err(e);
                }
                Err(e) => {
                    debug!("ssm: resume attempt {} failed: {}", attempt, e.as_str());
                    last = Err(e);
                    continue;
                }
            };
            let url = resumed.response.stream_url();
            if resumed.response.session_id() != session_id || policy.check(&url).is_err() {
                warn!("ssm: resume answer refused (other session or host)");
                return Err(Error::BadStreamUrl);
            }
            let mut config = Config::from_response(&resumed.response);
            config.headers = &resumed.headers;
            let (mut reader, mut writer) = resumed.transport.split();
            let before = link.engine(|e| e.stats().messages_in);
            result = link.drive(&mut reader, &mut writer, &config).await;
            let worked = link.engine(|e| e.stats().messages_in) != before;
            if !result.as_ref().is_err_and(connection_lost) || link.engine(|e| e.is_closed()) {
                return result;
            }
            if worked {
                // The agent answered on it before it ended: a new outage, fresh attempts.
                debug!("ssm: resumed connection lost");
                continue 'outage;
            }
            last = result;
            link.engine(|e| e.handle_transport_closed(now()));
        }
        return last;
    }
}
