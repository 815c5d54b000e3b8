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
use embedded_io_async::{Read, Write};
use ssm_proto::model::StartSessionResponse;
use ssm_proto::session::CloseReason;

use crate::api::StreamUrls;
use crate::session::{finish, now, Config, Runner};
use crate::Error;

/// Attempts per outage, as the official client (PROTOCOL.md §6a: 5 retries).
pub const RESUME_ATTEMPTS: u32 = 5;
/// First pause before a retry; doubled per attempt, capped at [`RESUME_PAUSE_MAX`] (the
/// plugin's 100 ms growing to 5 s).
pub const RESUME_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between attempts.
pub const RESUME_PAUSE_MAX: Duration = Duration::from_secs(5);

/// A new connection for the session, from [`ResumeSource::resume`].
pub struct Resumed<'c, R, W> {
    /// The ResumeSession answer (parsed by the core; the runner checks it again).
    pub response: StartSessionResponse<'c>,
    /// A fresh connection to `response`'s StreamUrl (TLS for `wss`), nothing sent on it yet.
    pub transport: (R, W),
    /// Extra upgrade headers (e.g. [`crate::Api::sign_upgrade`]'s), or none.
    pub headers: &'c [(&'c str, &'c str)],
}

/// Where the runner gets a new token and connection when the old one ends. Typically:
/// [`crate::Api::resume_session`] over a connection to the SSM API, then TCP + TLS to the
/// answer's StreamUrl host.
#[allow(
    async_fn_in_trait,
    reason = "used on one executor; no Send bound wanted on devices"
)]
pub trait ResumeSource {
    /// The new connection's read half.
    type Reader<'c>: Read
    where
        Self: 'c;
    /// The new connection's write half.
    type Writer<'c>: Write
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
    ) -> Result<Resumed<'c, Self::Reader<'c>, Self::Writer<'c>>, Error>;
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
        let mut result = link.drive(reader, writer, &config).await;
        'outage: loop {
            match result {
                Err(ref e) if connection_lost(e) && !link.engine(|e| e.is_closed()) => {}
                other => return finish(shared, other),
            }
            link.engine(|e| e.handle_transport_closed(now()));
            debug!("ssm: connection lost; resuming");
            let mut last = result;
            for attempt in 1..=RESUME_ATTEMPTS {
                if attempt > 1 {
                    Timer::after(pause(attempt - 1)).await;
                }
                let resumed = match source.resume(session_id).await {
                    Ok(r) => r,
                    Err(e @ Error::Api(ssm_proto::api::Error::SessionEnded)) => {
                        debug!("ssm: resume: the session has ended");
                        return finish(shared, Err(e));
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
                    return finish(shared, Err(Error::BadStreamUrl));
                }
                let mut config = Config::from_response(&resumed.response);
                config.headers = resumed.headers;
                let (mut reader, mut writer) = resumed.transport;
                let before = link.engine(|e| e.stats().messages_in);
                result = link.drive(&mut reader, &mut writer, &config).await;
                let worked = link.engine(|e| e.stats().messages_in) != before;
                if !result.as_ref().is_err_and(connection_lost) || link.engine(|e| e.is_closed()) {
                    return finish(shared, result);
                }
                if worked {
                    // The agent answered on it before it ended: a new outage, fresh attempts.
                    debug!("ssm: resumed connection lost");
                    continue 'outage;
                }
                last = result;
                link.engine(|e| e.handle_transport_closed(now()));
            }
            return finish(shared, last);
        }
    }
}
