//! From a `StartSessionResponse` to a running session over embassy-net: DNS, TCP, TLS (verified),
//! WebSocket.
//!
//! ```text
//!  StartSessionResponse ─► StreamUrl host ─► DNS (A) ─► TcpSocket ─► split ─► Duplex
//!        ─► embedded-tls (verify root + host name) ─► split ─► Runner (WebSocket upgrade,
//!           OpenDataChannelInput, engine)
//! ```
//!
//! Every layer lives in caller-owned [`NetResources`] (a `static` on a device), because each
//! borrows the one below it for as long as the session runs.

use embassy_net::tcp::{TcpReader, TcpSocket, TcpWriter};
use embassy_net::{IpAddress, Stack};
use embedded_tls::{TlsReader, TlsWriter};
use rand_core::{CryptoRng, RngCore};
use ssm_proto::model::{Scheme, StartSessionResponse};

use crate::duplex::{Duplex, DuplexState};
use crate::session::{new, Config, Resources, Runner, Session};
use crate::tls::{self, CipherSuite, Verification};
use crate::Error;

/// The TCP stream the TLS layer runs on.
pub type NetSocket<'d> = Duplex<'d, TcpReader<'d>, TcpWriter<'d>>;

/// The [`Runner`] that [`connect`] returns.
pub type NetRunner<'d, const MSG: usize> = Runner<
    'd,
    TlsReader<'d, NetSocket<'d>, CipherSuite>,
    TlsWriter<'d, NetSocket<'d>, CipherSuite>,
    MSG,
>;

/// One TLS record in (the protocol maximum, 16 KiB + overhead: servers send full records).
const TLS_RX: usize = 16640;
/// One TLS record out; session messages are at most about 2 KiB.
const TLS_TX: usize = 4096;

/// Memory for the network layers under one session: TCP buffers (`TCP_RX`, `TCP_TX`), TLS record
/// buffers (16 KiB + 4 KiB), and the socket, stream and TLS state themselves.
pub struct NetResources<'d, const TCP_RX: usize = 4096, const TCP_TX: usize = 4096> {
    tcp_rx: [u8; TCP_RX],
    tcp_tx: [u8; TCP_TX],
    tls_rx: [u8; TLS_RX],
    tls_tx: [u8; TLS_TX],
    socket: Option<TcpSocket<'d>>,
    duplex: Option<DuplexState<TcpReader<'d>, TcpWriter<'d>>>,
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
            duplex: None,
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
    let host = url.host();
    debug!("ssm: connecting to port {}", url.port());

    let NetResources {
        tcp_rx,
        tcp_tx,
        tls_rx,
        tls_tx,
        socket,
        duplex,
        tls: tls_slot,
    } = net;
    let socket = socket.insert(TcpSocket::new(stack, tcp_rx, tcp_tx));
    socket
        .connect((addr, url.port()))
        .await
        .map_err(|_| Error::Connect)?;
    let (reader, writer) = socket.split();
    let duplex: &'d DuplexState<_, _> = duplex.insert(DuplexState::new(reader, writer));

    let options = tls::Options {
        server_name: host,
        verification: trust,
    };
    let conn = tls::connect(Duplex::new(duplex), tls_rx, tls_tx, options, &mut rng)
        .await
        .map_err(|_| Error::Tls)?;
    let conn = tls_slot.insert(conn);
    let halves = conn.split();
    let config = Config::from_response(response);
    Ok(new(halves, config, resources, rng.next_u64()))
}
