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
use ssm_proto::model::{Scheme, StartSessionResponse};
use ssm_proto::session::CloseReason;

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

    /// Resets the connection and waits (at most [`ABORT_TIMEOUT`]) for the RST to go out.
    async fn abort(self) {
        self.socket.borrow_mut().abort();
        let _ = with_timeout(ABORT_TIMEOUT, self.with(|s, cx| once(s.flush(), cx))).await;
    }
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
    let host = response.stream_url().host();
    let addrs = stack
        .dns_query(host, embassy_net::dns::DnsQueryType::A)
        .await
        .map_err(|_| Error::Dns)?;
    let addr = *addrs.first().ok_or(Error::Dns)?;
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
    mut rng: G,
) -> Result<(Session<'d>, NetRunner<'d, MSG>), Error>
where
    G: RngCore + CryptoRng,
{
    let url = response.stream_url();
    if url.scheme() != Scheme::Wss {
        return Err(Error::BadStreamUrl);
    }
    debug!("ssm: connecting to port {}", url.port());
    let (conn, socket) =
        open_tls(stack, addr, url.port(), url.host(), trust, net, &mut rng).await?;
    let halves = conn.split();
    let config = Config::from_response(response);
    let (session, runner) = new(halves, config, resources, rng.next_u64());
    Ok((session, NetRunner { runner, socket }))
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
    let socket = socket.insert(RefCell::new(TcpSocket::new(stack, tcp_rx, tcp_tx)));
    socket
        .get_mut()
        .connect((addr, port))
        .await
        .map_err(|_| Error::Connect)?;
    let socket = NetSocket { socket };
    let options = tls::Options {
        server_name: host,
        verification: trust,
    };
    match tls::connect(socket, tls_rx, tls_tx, options, rng).await {
        Ok(conn) => Ok((tls_slot.insert(conn), socket)),
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
    let addrs = stack
        .dns_query(endpoint.host, embassy_net::dns::DnsQueryType::A)
        .await
        .map_err(|_| Error::Dns)?;
    let addr = *addrs.first().ok_or(Error::Dns)?;
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
