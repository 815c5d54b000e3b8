//! From a `StartSessionResponse` to a running session over embassy-net: DNS, TCP, TLS (verified),
//! WebSocket.
//!
//! ```text
//!  StartSessionResponse ─► StreamUrl host ─► DNS (A) ─► TcpSocket ─► NetSocket (shared)
//!        ─► embedded-tls (verify root + host name) ─► split ─► Runner (WebSocket upgrade,
//!           OpenDataChannelInput, engine) ─► at the end: WebSocket close, TCP FIN (or RST)
//! ```
//!
//! Every layer lives in caller-owned [`NetResources`] (a `static` on a device), because each
//! borrows the one below it for as long as the session runs.

use core::cell::RefCell;
use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::{Context, Poll};

use embassy_net::tcp::{self as tcp, TcpSocket};
use embassy_net::{IpAddress, Stack};
use embassy_time::{with_timeout, Duration};
use embedded_io_async::{ErrorType, Read, Write};
use embedded_tls::{TlsReader, TlsWriter};
use rand_core::{CryptoRng, RngCore};
use ssm_proto::model::{OwnedStartSessionResponse, Scheme, StartSessionResponse, StreamUrl};
use ssm_proto::session::CloseReason;

use crate::api::{Api, ApiBuffers, SignedUpgrade, StartSessionRequest, StreamUrls};
use crate::resume::{OpenSource, Opened, ResumeSource, Resumed};
use crate::session::{new, Config, Resources, Runner, Session};
use crate::tls::{self, CipherSuite, Verification};
use crate::Error;

/// How long a graceful TCP close may take (the FIN and the data before it acknowledged) before
/// the connection is reset instead: a few retransmission timeouts on a slow link.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the reset itself to go out.
const ABORT_TIMEOUT: Duration = Duration::from_secs(1);

/// The TCP connection under TLS: a `Copy` handle on the socket in [`NetResources`], which the
/// TLS layer's read and write halves share, and which [`NetRunner::run`] closes at the end.
///
/// Unlike `TcpSocket::split`, it keeps the socket itself reachable, so it can be closed. Each
/// poll borrows the socket only while it polls one of embassy-net's socket futures, which
/// consume data only when they complete: a fresh future per poll is the same future.
#[derive(Clone, Copy)]
pub struct NetSocket<'d> {
    socket: &'d RefCell<TcpSocket<'d>>,
}

impl<'d> NetSocket<'d> {
    /// Runs `op` with the socket borrowed, once per poll of the returned future.
    async fn with<T>(
        &self,
        mut op: impl FnMut(&mut TcpSocket<'d>, &mut Context<'_>) -> Poll<T>,
    ) -> T {
        poll_fn(|cx| op(&mut self.socket.borrow_mut(), cx)).await
    }

    /// Closes the connection: FIN after the data queued so far, and waits (at most
    /// [`CLOSE_TIMEOUT`]) until the peer acknowledged it; otherwise resets it.
    async fn shutdown(self) {
        self.socket.borrow_mut().close();
        let closed = with_timeout(CLOSE_TIMEOUT, self.with(|s, cx| once(s.flush(), cx))).await;
        if !matches!(closed, Ok(Ok(()))) {
            debug!("tcp: graceful close timed out, resetting");
            self.abort().await;
        }
    }

    /// Ends the connection so that the socket can connect again: a FIN after the data queued
    /// so far, then waits (at most [`CLOSE_TIMEOUT`]) for the peer's FIN (discarding what it
    /// still sends) and the acknowledgement of ours; otherwise resets it. Nothing to do when
    /// no connection is open.
    async fn end(self) {
        if !is_open(self.socket.borrow().state()) {
            return;
        }
        self.socket.borrow_mut().close();
        let mut this = self;
        let _ = with_timeout(CLOSE_TIMEOUT, async {
            let mut sink = [0u8; 64];
            while let Ok(1..) = this.read(&mut sink).await {}
            this.with(|s, cx| once(s.flush(), cx)).await
        })
        .await;
        if is_open(self.socket.borrow().state()) {
            debug!("tcp: graceful close timed out, resetting");
            self.abort().await;
        }
    }

    /// Resets the connection and waits (at most [`ABORT_TIMEOUT`]) for the RST to go out.
    async fn abort(self) {
        self.socket.borrow_mut().abort();
        let _ = with_timeout(ABORT_TIMEOUT, self.with(|s, cx| once(s.flush(), cx))).await;
    }
}

/// Whether a socket in `state` still has a connection (it cannot connect again until it has
/// none).
fn is_open(state: tcp::State) -> bool {
    !matches!(state, tcp::State::Closed | tcp::State::TimeWait)
}

/// Polls a future once (and drops it).
fn once<F: Future>(f: F, cx: &mut Context<'_>) -> Poll<F::Output> {
    pin!(f).poll(cx)
}

impl ErrorType for NetSocket<'_> {
    type Error = tcp::Error;
}

impl Read for NetSocket<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, tcp::Error> {
        self.with(|s, cx| once(s.read(buf), cx)).await
    }
}

impl Write for NetSocket<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, tcp::Error> {
        self.with(|s, cx| once(s.write(buf), cx)).await
    }

    async fn flush(&mut self) -> Result<(), tcp::Error> {
        self.with(|s, cx| once(s.flush(), cx)).await
    }
}

/// The runner that [`connect`] returns: a [`Runner`] over TLS over TCP that also closes the TCP
/// connection when the session ends.
pub struct NetRunner<'d, const MSG: usize> {
    runner: Runner<
        'd,
        TlsReader<'d, NetSocket<'d>, CipherSuite>,
        TlsWriter<'d, NetSocket<'d>, CipherSuite>,
        MSG,
    >,
    socket: NetSocket<'d>,
}

impl<const MSG: usize> NetRunner<'_, MSG> {
    /// Runs the session to its end like [`Runner::run`] (which sends the WebSocket close frame
    /// when the session closes), then closes the TCP connection: a FIN, acknowledged within
    /// 5 s, else a reset. TLS ends without close_notify: embedded-tls 0.19 sends it only from
    /// an unsplit connection, and the WebSocket close already marks the end of the data.
    ///
    /// # Errors
    /// As [`Runner::run`].
    pub async fn run(self) -> Result<CloseReason, Error> {
        let result = self.runner.run().await;
        self.socket.shutdown().await;
        debug!("tcp: closed");
        result
    }
}

impl<'d, const MSG: usize> NetRunner<'d, MSG> {
    /// Like [`NetRunner::run`], resuming through `source` when the connection is lost while
    /// the session is open ([`Runner::run_resuming`]: the same checks, attempts and errors).
    /// The first connection is closed (FIN, or RST after 5 s) before the first ResumeSession
    /// call; the source closes its own.
    ///
    /// # Errors
    /// As [`Runner::run_resuming`].
    pub async fn run_resuming<S: ResumeSource>(
        self,
        session_id: &str,
        source: &mut S,
        policy: StreamUrls,
    ) -> Result<CloseReason, Error> {
        let mut source = FirstClosed {
            first: Some(self.socket),
            source,
        };
        let result = self
            .runner
            .run_resuming(session_id, &mut source, policy)
            .await;
        if let Some(first) = source.first.take() {
            first.shutdown().await;
            debug!("tcp: closed");
        }
        result
    }
}

/// A [`ResumeSource`] that first closes the connection the session started on.
struct FirstClosed<'s, 'd, S> {
    first: Option<NetSocket<'d>>,
    source: &'s mut S,
}

impl<S: ResumeSource> ResumeSource for FirstClosed<'_, '_, S> {
    type Transport<'c>
        = S::Transport<'c>
    where
        Self: 'c;

    async fn resume<'c>(
        &'c mut self,
        session_id: &str,
    ) -> Result<Resumed<'c, S::Transport<'c>>, Error> {
        if let Some(first) = self.first.take() {
            first.end().await;
            debug!("tcp: first connection closed");
        }
        self.source.resume(session_id).await
    }

    async fn close(&mut self) {
        self.source.close().await;
    }
}

/// The SSM API over embassy-net, and the [`ResumeSource`] of a device's sessions: each call
/// (StartSession, ResumeSession, TerminateSession) on a new verified TLS connection to the API
/// endpoint, closed after the answer; as a `ResumeSource`, after the ResumeSession answer, TCP +
/// TLS verified for the answer's StreamUrl host, with the upgrade signed with `api`'s
/// credentials. As an [`OpenSource`], it opens the first data channel the same way, for a
/// runner made by [`crate::unconnected`]. Every connection uses one [`NetResources`] and one
/// [`ApiBuffers`], one after the other: with [`crate::unconnected`], that is all the network
/// memory a session needs. (A session connected by [`connect_with`] keeps its own
/// `NetResources` borrowed by its runner, so resuming it through a `NetApi` takes two.)
///
/// ```text
///  start_session / terminate_session / resume(id)
///     ─► end the previous connection (FIN; RST after 5 s)
///     ─► DNS(api host) ─► TCP ─► TLS ─► the call (answer checked by Api) ─► FIN
///  resume, and open (without the call):
///     ─► DNS(StreamUrl host) ─► TCP ─► TLS ─► sign_upgrade ─► the runner upgrades
/// ```
pub struct NetApi<'d, G, const REQ: usize = 4096, const BODY: usize = 2048> {
    stack: Stack<'d>,
    api: Api<'d>,
    trust: Verification<'d>,
    addr: Option<IpAddress>,
    socket: NetSocket<'d>,
    tls_rx: &'d mut [u8],
    tls_tx: &'d mut [u8],
    buffers: &'d mut ApiBuffers<REQ, BODY>,
    signed: Option<SignedUpgrade<'d>>,
    rng: G,
    resumes: u32,
}

impl<'d, G: RngCore + CryptoRng, const REQ: usize, const BODY: usize> NetApi<'d, G, REQ, BODY> {
    /// A source calling `api` (its endpoint, credentials, clock and StreamUrl policy), each
    /// server verified with `trust` (Amazon Root CA 1 signs both the `ssm` and the
    /// `ssmmessages` endpoints), in `net` and `buffers`; `rng` must be a cryptographic RNG.
    pub fn new<const TR: usize, const TT: usize>(
        stack: Stack<'d>,
        api: Api<'d>,
        trust: Verification<'d>,
        net: &'d mut NetResources<'d, TR, TT>,
        buffers: &'d mut ApiBuffers<REQ, BODY>,
        rng: G,
    ) -> Self {
        let NetResources {
            tcp_rx,
            tcp_tx,
            tls_rx,
            tls_tx,
            socket,
            ..
        } = net;
        let socket = NetSocket {
            socket: socket.insert(RefCell::new(TcpSocket::new(stack, tcp_rx, tcp_tx))),
        };
        NetApi {
            stack,
            api,
            trust,
            addr: None,
            socket,
            tls_rx,
            tls_tx,
            buffers,
            signed: None,
            rng,
            resumes: 0,
        }
    }

    /// Connects to `addr` instead of resolving each host (a static IP, a gateway, a test
    /// network); TLS still verifies the endpoint's and the StreamUrl's host names.
    #[must_use]
    pub fn via(mut self, addr: IpAddress) -> Self {
        self.addr = Some(addr);
        self
    }

    /// The API client (endpoint, credentials, clock, StreamUrl policy), e.g. for
    /// [`Api::sign_upgrade`] of the first data channel.
    pub fn api(&self) -> &Api<'d> {
        &self.api
    }

    /// Replaces the credentials (rotated by a broker) for the next calls and upgrades.
    pub fn set_credentials(&mut self, credentials: ssm_proto::sigv4::Credentials<'d>) {
        self.api.credentials = credentials;
    }

    /// How many new data channels this source has opened (successful resumes).
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    /// `ssm:StartSession` ([`Api::start_session`]); the answer is copied out of the buffers so
    /// that they serve the session's resumes.
    ///
    /// # Errors
    /// As [`Api::start_session`], [`Error::Dns`], [`Error::Connect`], [`Error::Tls`];
    /// `Error::Api(api::Error::Answer(_))` when the answer exceeds the owned capacities.
    pub async fn start_session(
        &mut self,
        request: &StartSessionRequest<'_>,
    ) -> Result<OwnedStartSessionResponse, Error> {
        let answer = {
            let (mut conn, api, buffers) = self.call().await?;
            let r = api.start_session(&mut conn, request, buffers).await;
            r.and_then(|r| {
                OwnedStartSessionResponse::from_borrowed(&r)
                    .map_err(|e| Error::Api(ssm_proto::api::Error::Answer(e)))
            })
        };
        self.buffers.wipe();
        self.socket.end().await;
        answer
    }

    /// `ssm:TerminateSession` ([`Api::terminate_session`]).
    ///
    /// # Errors
    /// As [`Api::terminate_session`], [`Error::Dns`], [`Error::Connect`], [`Error::Tls`].
    pub async fn terminate_session(&mut self, session_id: &str) -> Result<(), Error> {
        let answer = {
            let (mut conn, api, buffers) = self.call().await?;
            api.terminate_session(&mut conn, session_id, buffers).await
        };
        self.socket.end().await;
        answer
    }

    /// A new verified TLS connection to the API endpoint (the previous connection ended), and
    /// what a call on it needs.
    #[allow(clippy::type_complexity, reason = "three disjoint borrows of self")]
    async fn call(
        &mut self,
    ) -> Result<
        (
            tls::Connection<'_, NetSocket<'d>>,
            &Api<'d>,
            &mut ApiBuffers<REQ, BODY>,
        ),
        Error,
    > {
        let conn = api_connection(
            self.stack,
            self.addr,
            &self.api.endpoint,
            self.socket,
            self.tls_rx,
            self.tls_tx,
            self.trust,
            &mut self.rng,
        )
        .await?;
        Ok((conn, &self.api, self.buffers))
    }
}

/// Ends what `socket` had open, then TCP + TLS verified for the API endpoint on it.
#[allow(clippy::too_many_arguments, reason = "the disjoint parts of a NetApi")]
async fn api_connection<'b, 'd: 'b, G: RngCore + CryptoRng>(
    stack: Stack<'d>,
    via: Option<IpAddress>,
    endpoint: &ssm_proto::api::Endpoint<'_>,
    socket: NetSocket<'d>,
    rx: &'b mut [u8],
    tx: &'b mut [u8],
    trust: Verification<'_>,
    rng: &mut G,
) -> Result<tls::Connection<'b, NetSocket<'d>>, Error> {
    socket.end().await;
    let to = (address(stack, via, endpoint.host).await?, endpoint.port);
    tls_over(socket, to, rx, tx, endpoint.host, trust, rng).await
}

/// `via`, or `host`'s address.
async fn address(stack: Stack<'_>, via: Option<IpAddress>, host: &str) -> Result<IpAddress, Error> {
    match via {
        Some(a) => Ok(a),
        None => lookup(stack, host).await,
    }
}

impl<G, const REQ: usize, const BODY: usize> core::fmt::Debug for NetApi<'_, G, REQ, BODY> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NetApi")
            .field("api", &self.api)
            .field("addr", &self.addr)
            .field("resumes", &self.resumes)
            .finish_non_exhaustive()
    }
}

impl<'d, G: RngCore + CryptoRng, const REQ: usize, const BODY: usize> ResumeSource
    for NetApi<'d, G, REQ, BODY>
{
    type Transport<'c>
        = tls::Connection<'c, NetSocket<'d>>
    where
        Self: 'c;

    async fn resume<'c>(
        &'c mut self,
        session_id: &str,
    ) -> Result<Resumed<'c, Self::Transport<'c>>, Error> {
        let NetApi {
            stack,
            addr,
            api,
            trust,
            socket,
            tls_rx,
            tls_tx,
            buffers,
            signed,
            rng,
            resumes,
        } = self;
        let answer = {
            let mut conn = api_connection(
                *stack,
                *addr,
                &api.endpoint,
                *socket,
                tls_rx,
                tls_tx,
                *trust,
                rng,
            )
            .await?;
            api.resume_session(&mut conn, session_id, *buffers).await
        };
        socket.end().await;
        let response = answer?;
        let url = response.stream_url();
        let (transport, headers) = data_channel(
            *stack, *addr, api, *trust, *socket, tls_rx, tls_tx, signed, rng, &url,
        )
        .await?;
        *resumes += 1;
        Ok(Resumed {
            response,
            transport,
            headers,
        })
    }

    async fn close(&mut self) {
        self.socket.end().await;
        debug!("tcp: closed");
    }
}

impl<G: RngCore + CryptoRng, const REQ: usize, const BODY: usize> OpenSource
    for NetApi<'_, G, REQ, BODY>
{
    /// Ends the previous connection (StartSession's), then TCP + TLS verified for the
    /// StreamUrl's host, with the upgrade signed with `api`'s credentials: the session's first
    /// data channel on the same socket and buffers as every other connection.
    async fn open<'c>(
        &'c mut self,
        response: &StartSessionResponse<'_>,
    ) -> Result<Opened<'c, Self::Transport<'c>>, Error> {
        self.socket.end().await;
        let (transport, headers) = data_channel(
            self.stack,
            self.addr,
            &self.api,
            self.trust,
            self.socket,
            self.tls_rx,
            self.tls_tx,
            &mut self.signed,
            &mut self.rng,
            &response.stream_url(),
        )
        .await?;
        Ok(Opened { transport, headers })
    }
}

/// TCP + TLS verified for `url`'s host on `socket` (`wss` only), and the upgrade's headers
/// signed with `api` (kept in `signed`).
#[allow(clippy::too_many_arguments, reason = "the disjoint parts of a NetApi")]
async fn data_channel<'c, 'd: 'c, G: RngCore + CryptoRng>(
    stack: Stack<'d>,
    via: Option<IpAddress>,
    api: &Api<'d>,
    trust: Verification<'_>,
    socket: NetSocket<'d>,
    rx: &'c mut [u8],
    tx: &'c mut [u8],
    signed: &'c mut Option<SignedUpgrade<'d>>,
    rng: &mut G,
    url: &StreamUrl<'_>,
) -> Result<(tls::Connection<'c, NetSocket<'d>>, UpgradeHeaders<'c>), Error> {
    if url.scheme() != Scheme::Wss {
        return Err(Error::BadStreamUrl);
    }
    let signed = signed.insert(api.sign_upgrade(url)?);
    let to = address(stack, via, url.host()).await?;
    let transport = tls_over(socket, (to, url.port()), rx, tx, url.host(), trust, rng).await?;
    let (h, n) = signed.headers();
    let mut headers = heapless::Vec::new();
    let _ = headers.extend_from_slice(&h[..n]);
    Ok((transport, headers))
}

/// A signed upgrade's headers, as [`Resumed`] and [`Opened`] carry them.
type UpgradeHeaders<'c> = heapless::Vec<(&'c str, &'c str), { crate::resume::RESUME_HEADERS }>;

/// One TLS record in (the protocol maximum, 16 KiB + overhead: servers send full records).
const TLS_RX: usize = 16640;
/// One TLS record out; session messages are at most about 2 KiB.
const TLS_TX: usize = 4096;

/// Memory for the network layers under one session: TCP buffers (`TCP_RX`, `TCP_TX`), TLS record
/// buffers (16 KiB + 4 KiB), and the socket and TLS state themselves.
pub struct NetResources<'d, const TCP_RX: usize = 4096, const TCP_TX: usize = 4096> {
    tcp_rx: [u8; TCP_RX],
    tcp_tx: [u8; TCP_TX],
    tls_rx: [u8; TLS_RX],
    tls_tx: [u8; TLS_TX],
    socket: Option<RefCell<TcpSocket<'d>>>,
    tls: Option<tls::Connection<'d, NetSocket<'d>>>,
}

impl<const TCP_RX: usize, const TCP_TX: usize> NetResources<'_, TCP_RX, TCP_TX> {
    /// Empty resources.
    pub const fn new() -> Self {
        NetResources {
            tcp_rx: [0; TCP_RX],
            tcp_tx: [0; TCP_TX],
            tls_rx: [0; TLS_RX],
            tls_tx: [0; TLS_TX],
            socket: None,
            tls: None,
        }
    }
}

impl<const TCP_RX: usize, const TCP_TX: usize> Default for NetResources<'_, TCP_RX, TCP_TX> {
    fn default() -> Self {
        Self::new()
    }
}

/// Connects to the response's StreamUrl over `stack` and returns the session handle and its
/// runner (spawn the runner; it performs the WebSocket upgrade and the session handshake).
///
/// `trust` decides how the server certificate is checked (see [`tls`]); `rng` must be a
/// cryptographic RNG (TLS key exchange; it also seeds the session).
///
/// # Errors
/// [`Error::BadStreamUrl`] for a `ws://` URL (this helper always uses TLS), [`Error::Dns`],
/// [`Error::Connect`], [`Error::Tls`] (including a certificate that fails verification).
pub async fn connect<
    'd,
    G,
    const RX: usize,
    const MSG: usize,
    const TX: usize,
    const TR: usize,
    const TT: usize,
>(
    stack: Stack<'d>,
    response: &StartSessionResponse<'d>,
    trust: Verification<'d>,
    net: &'d mut NetResources<'d, TR, TT>,
    resources: &'d mut Resources<RX, MSG, TX>,
    rng: G,
) -> Result<(Session<'d>, NetRunner<'d, MSG>), Error>
where
    G: RngCore + CryptoRng,
{
    let addr = lookup(stack, response.stream_url().host()).await?;
    connect_to(stack, addr, response, trust, net, resources, rng).await
}

/// Like [`connect`], to an address you resolved yourself (a static IP, your own resolver, a
/// test network). TLS still verifies the StreamUrl's host name.
///
/// # Errors
/// As [`connect`], without [`Error::Dns`].
pub async fn connect_to<
    'd,
    G,
    const RX: usize,
    const MSG: usize,
    const TX: usize,
    const TR: usize,
    const TT: usize,
>(
    stack: Stack<'d>,
    addr: IpAddress,
    response: &StartSessionResponse<'d>,
    trust: Verification<'d>,
    net: &'d mut NetResources<'d, TR, TT>,
    resources: &'d mut Resources<RX, MSG, TX>,
    rng: G,
) -> Result<(Session<'d>, NetRunner<'d, MSG>), Error>
where
    G: RngCore + CryptoRng,
{
    let config = Config::from_response(response);
    connect_with(stack, addr, config, trust, net, resources, rng).await
}

/// Like [`connect_to`], with a [`Config`] you made (from the response, with
/// [`crate::Api::sign_upgrade`]'s headers in `config.headers` or another engine
/// configuration). TLS verifies `config.host`.
///
/// # Errors
/// As [`connect_to`].
pub async fn connect_with<
    'd,
    G,
    const RX: usize,
    const MSG: usize,
    const TX: usize,
    const TR: usize,
    const TT: usize,
>(
    stack: Stack<'d>,
    addr: IpAddress,
    config: Config<'d>,
    trust: Verification<'d>,
    net: &'d mut NetResources<'d, TR, TT>,
    resources: &'d mut Resources<RX, MSG, TX>,
    mut rng: G,
) -> Result<(Session<'d>, NetRunner<'d, MSG>), Error>
where
    G: RngCore + CryptoRng,
{
    if !config.tls {
        return Err(Error::BadStreamUrl);
    }
    debug!("ssm: connecting to port {}", config.port);
    let (conn, socket) =
        open_tls(stack, addr, config.port, config.host, trust, net, &mut rng).await?;
    let halves = conn.split();
    let (session, runner) = new(halves, config, resources, rng.next_u64());
    Ok((session, NetRunner { runner, socket }))
}

/// The first IPv4 address of `host` (DNS A).
async fn lookup(stack: Stack<'_>, host: &str) -> Result<IpAddress, Error> {
    let addrs = stack
        .dns_query(host, embassy_net::dns::DnsQueryType::A)
        .await
        .map_err(|_| Error::Dns)?;
    addrs.first().copied().ok_or(Error::Dns)
}

/// TCP to `addr:port`, then TLS verified for `host`, in `net`'s slots.
async fn open_tls<'d, G, const TR: usize, const TT: usize>(
    stack: Stack<'d>,
    addr: IpAddress,
    port: u16,
    host: &'d str,
    trust: Verification<'d>,
    net: &'d mut NetResources<'d, TR, TT>,
    rng: &mut G,
) -> Result<(&'d mut tls::Connection<'d, NetSocket<'d>>, NetSocket<'d>), Error>
where
    G: RngCore + CryptoRng,
{
    let NetResources {
        tcp_rx,
        tcp_tx,
        tls_rx,
        tls_tx,
        socket,
        tls: tls_slot,
    } = net;
    let socket = NetSocket {
        socket: socket.insert(RefCell::new(TcpSocket::new(stack, tcp_rx, tcp_tx))),
    };
    let conn = tls_over(socket, (addr, port), tls_rx, tls_tx, host, trust, rng).await?;
    Ok((tls_slot.insert(conn), socket))
}

/// Connects `socket` to `to`, then TLS verified for `host` in `rx` / `tx`.
#[allow(
    clippy::await_holding_refcell_ref,
    reason = "nothing else uses the socket before it is connected: the TLS layer comes after"
)]
async fn tls_over<'b, 'd: 'b, G>(
    socket: NetSocket<'d>,
    to: (IpAddress, u16),
    rx: &'b mut [u8],
    tx: &'b mut [u8],
    host: &str,
    trust: Verification<'_>,
    rng: &mut G,
) -> Result<tls::Connection<'b, NetSocket<'d>>, Error>
where
    G: RngCore + CryptoRng,
{
    socket
        .socket
        .borrow_mut()
        .connect(to)
        .await
        .map_err(|_| Error::Connect)?;
    let options = tls::Options {
        server_name: host,
        verification: trust,
    };
    match tls::connect(socket, rx, tx, options, rng).await {
        Ok(conn) => Ok(conn),
        Err(_) => {
            // Nothing to say to a server we do not trust (or that broke the handshake).
            socket.abort().await;
            Err(Error::Tls)
        }
    }
}

/// A verified TLS connection to the SSM API over embassy-net, for [`crate::Api`]'s calls
/// (`Read + Write`). [`ApiConnection::close`] ends it (FIN, or RST after 5 s).
pub struct ApiConnection<'d> {
    conn: &'d mut tls::Connection<'d, NetSocket<'d>>,
    socket: NetSocket<'d>,
}

impl ApiConnection<'_> {
    /// Closes the TCP connection (TLS ends without close_notify, as [`NetRunner`]'s).
    pub async fn close(self) {
        self.socket.shutdown().await;
    }
}

impl ErrorType for ApiConnection<'_> {
    type Error = tls::Error;
}

impl Read for ApiConnection<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, tls::Error> {
        self.conn.read(buf).await
    }
}

impl Write for ApiConnection<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, tls::Error> {
        self.conn.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), tls::Error> {
        self.conn.flush().await
    }
}

/// Resolves `endpoint.host` (DNS A) and opens [`connect_api_to`]'s connection.
///
/// # Errors
/// As [`connect_api_to`], and [`Error::Dns`].
pub async fn connect_api<'d, G, const TR: usize, const TT: usize>(
    stack: Stack<'d>,
    endpoint: &ssm_proto::api::Endpoint<'d>,
    trust: Verification<'d>,
    net: &'d mut NetResources<'d, TR, TT>,
    rng: G,
) -> Result<ApiConnection<'d>, Error>
where
    G: RngCore + CryptoRng,
{
    let addr = lookup(stack, endpoint.host).await?;
    connect_api_to(stack, addr, endpoint, trust, net, rng).await
}

/// TCP to `addr` on `endpoint.port`, TLS verified for `endpoint.host` (`trust` as for
/// [`connect`]): a connection for [`crate::Api`]'s calls, kept alive between them.
///
/// # Errors
/// [`Error::BadStreamUrl`] if the endpoint is not TLS, [`Error::Connect`], [`Error::Tls`].
pub async fn connect_api_to<'d, G, const TR: usize, const TT: usize>(
    stack: Stack<'d>,
    addr: IpAddress,
    endpoint: &ssm_proto::api::Endpoint<'d>,
    trust: Verification<'d>,
    net: &'d mut NetResources<'d, TR, TT>,
    mut rng: G,
) -> Result<ApiConnection<'d>, Error>
where
    G: RngCore + CryptoRng,
{
    if !endpoint.tls {
        return Err(Error::BadStreamUrl);
    }
    let (conn, socket) = open_tls(
        stack,
        addr,
        endpoint.port,
        endpoint.host,
        trust,
        net,
        &mut rng,
    )
    .await?;
    Ok(ApiConnection { conn, socket })
}
