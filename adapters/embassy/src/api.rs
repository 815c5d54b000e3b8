//! The SSM API from the device: `StartSession`, `ResumeSession`, `TerminateSession`, signed
//! with the application's credentials, over any `embedded-io-async` transport (TLS to
//! `ssm.<region>.amazonaws.com`, e.g. [`crate::tls::connect`] over a TCP socket).
//!
//! ```text
//!  Api { endpoint, credentials, clock } ──► body (core api) ─► signed request (core sigv4)
//!      ─► transport ─► answer head + body (core api::http) ─► StartSessionResponse (validated)
//!                 └─ refused for clock skew: clock := answer's Date, retried once
//! ```
//!
//! The protocol work is `ssm_proto::api`'s; this module moves the bytes and keeps the clock.
//! Credentials are borrowed (keep them in an [`OwnedCredentials`], which zeroizes on drop), and
//! the request buffer, which holds the security token, is wiped after each send. Nothing here
//! logs a credential, a token or an answer body.

use embassy_time::Instant;
use embedded_io_async::{Read, Write};
use ssm_proto::api::{self, http, BodyDecoder, Operation, ResponseHead, ServiceError};
use ssm_proto::model::{Endpoints, StartSessionResponse, StreamUrl};
use ssm_proto::sigv4::{self, AmzDate, Credentials};
use zeroize::Zeroize;

pub use ssm_proto::api::{Endpoint, ServiceErrorKind, StartSessionRequest};
pub use ssm_proto::sigv4::OwnedCredentials;

use crate::clock::Clock;
use crate::error::{io, Error};

/// Which StreamUrls an answer may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StreamUrls {
    /// AWS `ssmmessages` endpoints only (`ssm_proto::model::Endpoints::Aws`).
    #[default]
    Aws,
    /// Also `ws://` / `wss://` to a loopback host (127.0.0.0/8, `[::1]`, `localhost`): the
    /// local emulator in tests. Anything else is still refused, so a hostile answer cannot send
    /// the token elsewhere.
    LoopbackForTests,
}

/// Whether `host` (as a StreamUrl carries it) is a loopback address or `localhost`.
fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host == "[::1]" {
        return true;
    }
    let mut parts = host.split('.');
    let first_is_127 = parts.next() == Some("127");
    let rest: heapless::Vec<&str, 4> = parts.collect();
    first_is_127
        && rest.len() == 3
        && rest
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u8>().is_ok())
}

impl StreamUrls {
    /// Checks an answer's StreamUrl under this policy (StartSession and ResumeSession alike).
    ///
    /// # Errors
    /// [`ssm_proto::model::Error`] naming what is wrong.
    pub fn check(&self, url: &StreamUrl<'_>) -> Result<(), ssm_proto::model::Error> {
        match self {
            StreamUrls::Aws if url.is_aws() => Ok(()),
            StreamUrls::LoopbackForTests if url.is_aws() || is_loopback(url.host()) => Ok(()),
            _ => Err(ssm_proto::model::Error::Url(
                ssm_proto::model::UrlError::BadHost,
            )),
        }
    }

    fn endpoints(&self) -> Endpoints {
        match self {
            StreamUrls::Aws => Endpoints::Aws,
            StreamUrls::LoopbackForTests => Endpoints::DangerousAnyHost,
        }
    }
}

/// Buffers for one API call, caller-owned (a `static` on a device).
///
/// - `REQ`: the signed request: headers (about 600 bytes, plus the security token of temporary
///   credentials, 1–2 KB) and the JSON body.
/// - `BODY`: the answer body (a StartSession answer is about 1 KB: URL and token), and as much
///   again for its unescaped values (AWS writes `\/` in URLs), and for the head and framing
///   bytes as they arrive.
pub struct ApiBuffers<const REQ: usize = 4096, const BODY: usize = 2048> {
    request: [u8; REQ],
    rx: [u8; BODY],
    body: [u8; BODY],
    scratch: [u8; BODY],
}

impl<const REQ: usize, const BODY: usize> ApiBuffers<REQ, BODY> {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        ApiBuffers {
            request: [0; REQ],
            rx: [0; BODY],
            body: [0; BODY],
            scratch: [0; BODY],
        }
    }

    /// Overwrites every buffer with zeros (a session answer holds the token).
    pub fn wipe(&mut self) {
        self.request.zeroize();
        self.rx.zeroize();
        self.body.zeroize();
        self.scratch.zeroize();
    }
}

impl<const REQ: usize, const BODY: usize> Default for ApiBuffers<REQ, BODY> {
    fn default() -> Self {
        Self::new()
    }
}

/// An SSM API client: where, who, and the clock to sign with.
#[derive(Clone, Copy)]
pub struct Api<'a> {
    /// The API endpoint (`Endpoint::aws(region, …)`, or a local emulator).
    pub endpoint: Endpoint<'a>,
    /// The application's credentials.
    pub credentials: Credentials<'a>,
    /// UTC for signing (set from an RTC, or learned from answers).
    pub clock: &'a Clock,
    /// Which StreamUrls answers may carry.
    pub stream_urls: StreamUrls,
}

impl core::fmt::Debug for Api<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Api")
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .field("clock_known", &self.clock.is_known())
            .field("stream_urls", &self.stream_urls)
            .finish()
    }
}

/// One answer: its head and the length of its body in `ApiBuffers::body`.
struct Answer {
    head: ResponseHead,
    body_len: usize,
}

impl<'a> Api<'a> {
    /// `ssm:StartSession`: returns the validated answer (borrowing `buffers`), ready for
    /// [`crate::Config::from_response`].
    ///
    /// # Errors
    /// [`Error::Api`] (the service's typed error, an unusable answer, signing), a transport
    /// error, or [`Error::TransportClosed`].
    pub async fn start_session<'b, T: Read + Write, const REQ: usize, const BODY: usize>(
        &self,
        transport: &mut T,
        request: &StartSessionRequest<'_>,
        buffers: &'b mut ApiBuffers<REQ, BODY>,
    ) -> Result<StartSessionResponse<'b>, Error> {
        let n = request.emit(&mut buffers.scratch).map_err(Error::Api)?;
        let answer = self
            .exchange(transport, Operation::StartSession, n, buffers)
            .await?;
        self.session_answer(answer, buffers)
    }

    /// `ssm:ResumeSession`: a new token (and StreamUrl, checked like StartSession's) for the
    /// same session.
    ///
    /// # Errors
    /// As [`Api::start_session`]; `Error::Api(api::Error::SessionEnded)` when the answer has
    /// no token (the session has ended).
    pub async fn resume_session<'b, T: Read + Write, const REQ: usize, const BODY: usize>(
        &self,
        transport: &mut T,
        session_id: &str,
        buffers: &'b mut ApiBuffers<REQ, BODY>,
    ) -> Result<StartSessionResponse<'b>, Error> {
        let n = api::session_id_body(session_id, &mut buffers.scratch).map_err(Error::Api)?;
        let answer = self
            .exchange(transport, Operation::ResumeSession, n, buffers)
            .await?;
        let r = self.session_answer(answer, buffers)?;
        if r.session_id() != session_id {
            return Err(Error::Api(api::Error::Answer(
                ssm_proto::model::Error::Url(ssm_proto::model::UrlError::SessionIdMismatch),
            )));
        }
        Ok(r)
    }

    /// `ssm:TerminateSession`.
    ///
    /// # Errors
    /// As [`Api::start_session`].
    pub async fn terminate_session<T: Read + Write, const REQ: usize, const BODY: usize>(
        &self,
        transport: &mut T,
        session_id: &str,
        buffers: &mut ApiBuffers<REQ, BODY>,
    ) -> Result<(), Error> {
        let n = api::session_id_body(session_id, &mut buffers.scratch).map_err(Error::Api)?;
        let answer = self
            .exchange(transport, Operation::TerminateSession, n, buffers)
            .await?;
        api::check_terminate_answer(answer.head.status, &buffers.body[..answer.body_len])
            .map_err(Error::Api)
    }

    /// Signs the WebSocket upgrade of `url` (PROTOCOL.md §6b) with these credentials and the
    /// clock; the region is the URL's, or the endpoint's for a loopback emulator. Pass
    /// [`SignedUpgrade::headers`] as [`crate::Config::headers`].
    ///
    /// # Errors
    /// [`Error::Api`] wrapping the signing error (`AlreadyPresigned` for a presigned URL, which
    /// needs no headers).
    pub fn sign_upgrade(&self, url: &StreamUrl<'_>) -> Result<SignedUpgrade<'a>, Error> {
        let mut auth = [0u8; 512];
        let unix = self.clock.unix_secs().unwrap_or(0);
        let signed = sigv4::sign_upgrade(
            url,
            Some(self.endpoint.region),
            &self.credentials,
            unix,
            &mut auth,
        )
        .map_err(|e| Error::Api(e.into()))?;
        let mut authorization = heapless::String::new();
        // 512 bytes in, at most 512 out.
        let _ = authorization.push_str(signed.authorization);
        Ok(SignedUpgrade {
            amz_date: signed.amz_date,
            authorization,
            token: self.credentials.session_token,
        })
    }

    fn session_answer<'b, const REQ: usize, const BODY: usize>(
        &self,
        answer: Answer,
        buffers: &'b mut ApiBuffers<REQ, BODY>,
    ) -> Result<StartSessionResponse<'b>, Error> {
        let r = api::parse_session_answer(
            answer.head.status,
            &buffers.body[..answer.body_len],
            &mut buffers.scratch,
            self.stream_urls.endpoints(),
        )
        .map_err(Error::Api)?;
        self.stream_urls
            .check(&r.stream_url())
            .map_err(|e| Error::Api(api::Error::Answer(e)))?;
        Ok(r)
    }

    /// Sends the call whose JSON body is `scratch[..body_len]` and reads the answer; once more
    /// with the corrected clock if the service refused it for clock skew and kept the
    /// connection open.
    async fn exchange<T: Read + Write, const REQ: usize, const BODY: usize>(
        &self,
        transport: &mut T,
        operation: Operation,
        body_len: usize,
        buffers: &mut ApiBuffers<REQ, BODY>,
    ) -> Result<Answer, Error> {
        let mut retried = false;
        loop {
            let signed_at = self.clock.unix_secs().unwrap_or(0);
            let n = api::write_request(
                &self.endpoint,
                operation,
                &buffers.scratch[..body_len],
                &self.credentials,
                signed_at,
                &mut buffers.request,
            );
            let sent = match n {
                Ok(n) => transport.write_all(&buffers.request[..n]).await,
                Err(e) => return Err(Error::Api(e)),
            };
            // The request holds the security token: do not leave it in RAM.
            buffers.request.zeroize();
            sent.map_err(io)?;
            transport.flush().await.map_err(io)?;
            let answer = read_answer(transport, &mut buffers.rx, &mut buffers.body).await?;
            let arrived = Instant::now();
            let date = answer.head.date;
            if let (Some(d), false) = (date, self.clock.is_known()) {
                debug!("ssm api: clock learned from the answer's date");
                self.clock.set_at(d, arrived);
            }
            if (200..300).contains(&answer.head.status) {
                return Ok(answer);
            }
            let e = ServiceError::parse(answer.head.status, &buffers.body[..answer.body_len]);
            if let (true, Some(d)) = (e.is_clock_skew(signed_at, date), date) {
                warn!("ssm api: signature refused for clock skew; clock corrected");
                self.clock.set_at(d, arrived);
                if !retried && !answer.head.close {
                    retried = true;
                    continue;
                }
            }
            debug!("ssm api: {} answered {}", operation.target(), e.status);
            return Err(Error::Api(api::Error::Service(e)));
        }
    }
}

/// Reads one answer: the head into `rx`, the body de-framed into `body`.
async fn read_answer<T: Read>(
    transport: &mut T,
    rx: &mut [u8],
    body: &mut [u8],
) -> Result<Answer, Error> {
    let api_err = |e: http::HttpError| Error::Api(api::Error::Http(e));
    let mut filled = 0;
    let head = loop {
        if let Some(h) = http::parse_head(&rx[..filled]).map_err(api_err)? {
            break h;
        }
        if filled == rx.len() {
            return Err(api_err(http::HttpError::HeadTooLarge));
        }
        let n = transport.read(&mut rx[filled..]).await.map_err(io)?;
        if n == 0 {
            return Err(Error::TransportClosed);
        }
        filled += n;
    };
    let mut decoder = BodyDecoder::new(&head, body.len()).map_err(api_err)?;
    let mut pos = head.len;
    loop {
        let p = decoder.feed(&rx[pos..filled], body).map_err(api_err)?;
        if p.done {
            break;
        }
        // Everything given was consumed: read the next bytes from the start of `rx`.
        let n = transport.read(rx).await.map_err(io)?;
        if n == 0 {
            decoder.finish().map_err(api_err)?;
            break;
        }
        pos = 0;
        filled = n;
    }
    rx.zeroize();
    Ok(Answer {
        head,
        body_len: decoder.len(),
    })
}

/// The headers that sign a WebSocket upgrade ([`Api::sign_upgrade`]).
pub struct SignedUpgrade<'a> {
    amz_date: AmzDate,
    authorization: heapless::String<512>,
    token: Option<&'a str>,
}

impl SignedUpgrade<'_> {
    /// `X-Amz-Date`, `Authorization` and, with temporary credentials, `X-Amz-Security-Token`,
    /// for [`crate::Config::headers`] (take the first `n`).
    pub fn headers(&self) -> ([(&str, &str); 3], usize) {
        let mut h = [
            ("X-Amz-Date", self.amz_date.as_str()),
            ("Authorization", self.authorization.as_str()),
            ("", ""),
        ];
        let n = match self.token {
            Some(t) => {
                h[2] = ("X-Amz-Security-Token", t);
                3
            }
            None => 2,
        };
        (h, n)
    }
}

impl core::fmt::Debug for SignedUpgrade<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SignedUpgrade")
            .field("amz_date", &self.amz_date)
            .finish_non_exhaustive()
    }
}
