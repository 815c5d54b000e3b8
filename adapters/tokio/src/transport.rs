//! The WebSocket under a session: connecting (client), and the two tasks that move messages
//! between a socket and the driver, with optional [`Faults`] in between.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use ssm_proto::model::{Scheme, StreamUrl};

use crate::driver::UpgradeHeadersFn;
use crate::faults::{Faults, Stage};
use crate::{Error, TlsOptions};

/// Any WebSocket the driver can run over (a `WebSocketStream`, or a wrapper around one), for
/// [`crate::Control::attach_ws`].
pub trait WsIo:
    futures_util::Stream<Item = Result<Message, WsError>>
    + futures_util::Sink<Message, Error = WsError>
    + Send
{
}
impl<T> WsIo for T where
    T: futures_util::Stream<Item = Result<Message, WsError>>
        + futures_util::Sink<Message, Error = WsError>
        + Send
{
}

/// A type-erased WebSocket.
pub(crate) type BoxWs = std::pin::Pin<Box<dyn WsIo>>;

/// Boxes a WebSocket over any stream.
pub(crate) fn boxed<S>(ws: WebSocketStream<S>) -> BoxWs
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    Box::pin(ws)
}

/// WebSocket limits: frames are at most a few KiB; 16 MiB leaves room for any peer. What the
/// driver's own connections use; a server accepting WebSockets for [`crate::AgentSession`]
/// passes it to tungstenite too.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

/// Whether `host` is this machine (`localhost` or a loopback address).
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Opens the WebSocket to `url`: TCP (bounded by `timeout`), TLS for `wss://`, then the upgrade
/// with the headers `headers` makes for it (a SigV4 signature), if any.
///
/// `url` was validated by the core's parser under the caller's endpoint policy; host, port and
/// scheme come from there (one URL parser).
pub(crate) async fn connect_ws(
    url: StreamUrl<'_>,
    tls: &TlsOptions,
    timeout: Duration,
    headers: Option<&UpgradeHeadersFn>,
) -> Result<BoxWs, Error> {
    let secure = url.scheme() == Scheme::Wss;
    let host = url.host().trim_start_matches('[').trim_end_matches(']');
    // Clear text only ever to this machine, checked for every grant (a resume answer too).
    if !(secure || tls.allow_plain_ws && is_loopback(host)) {
        return Err(Error::PlainWsRefused);
    }
    let port = url.port();
    let endpoint = format!("{}:{port}", url.host());
    let extra = match headers {
        Some(f) => f(&url).await.map_err(Error::Io)?,
        None => Vec::new(),
    };
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(Error::Unreachable { endpoint, source }),
        Err(_) => {
            return Err(Error::Unreachable {
                endpoint,
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
            })
        }
    };
    let _ = tcp.set_nodelay(true);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|_| Error::InvalidUrl("cannot build the upgrade request"))?;
    for (name, value) in extra {
        let name =
            HeaderName::try_from(name).map_err(|_| Error::InvalidUrl("bad upgrade header name"))?;
        let value = HeaderValue::try_from(value)
            .map_err(|_| Error::InvalidUrl("bad upgrade header value"))?;
        request.headers_mut().insert(name, value);
    }
    let signed = request.headers().contains_key("authorization");
    tracing::debug!(host, port, tls = secure, signed, "opening data channel");
    if secure {
        let config = tls.client_config()?;
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|_| Error::InvalidUrl("host is not a valid tls server name"))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let stream = tokio::time::timeout(timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| Error::Tls {
                host: host.to_owned(),
                detail: "handshake timed out".into(),
            })?
            .map_err(|e| Error::Tls {
                host: host.to_owned(),
                detail: tls_detail(&e),
            })?;
        upgrade(request, stream, timeout).await
    } else {
        upgrade(request, tcp, timeout).await
    }
}

fn tls_detail(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => e.to_string(),
    }
}

async fn upgrade<S>(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    stream: S,
    timeout: Duration,
) -> Result<BoxWs, Error>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let fut = tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()));
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(Error::WebSocket("upgrade timed out".into())),
        Ok(Err(WsError::Http(resp))) => Err(Error::WebSocket(format!(
            "server answered the upgrade with http {}",
            resp.status()
        ))),
        Ok(Err(e)) => Err(Error::WebSocket(ws_detail(&e))),
        Ok(Ok((ws, _))) => Ok(boxed(ws)),
    }
}

/// A WebSocket error's text without anything from the URL.
pub(crate) fn ws_detail(e: &WsError) -> String {
    match e {
        WsError::Url(_) => "bad url".into(),
        WsError::Http(r) => format!("http {}", r.status()),
        // rustls appends a link to its manual; keep the one-line reason.
        other => {
            let t = other.to_string();
            match t.find(": https://") {
                Some(i) => t[..i].to_string(),
                None => t,
            }
        }
    }
}

/// What a transport's tasks tell the driver.
#[derive(Debug)]
pub(crate) enum TransportEvent {
    /// A message arrived (after inbound faults).
    Message(u64, Message),
    /// The connection is gone (peer closed, error, or an injected cut).
    Closed(u64, String),
}

/// Frames handed to the writer task and not yet written to the socket, at most: the driver takes
/// no more from the engine while this many wait. The engine times a frame from the moment
/// `poll_transmit` returns it; a frame that then waits in an unbounded queue behind a slow socket
/// times out before it is even sent, is sent again, and lengthens the queue further. Bounded, a
/// frame waits at most for this many frames (about 70 KiB) besides the socket's own buffers.
pub(crate) const MAX_BACKLOG: usize = 64;

/// What the driver asks the writer task to do.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A sequenced frame or the text open message, sent in order.
    Message(Message),
    /// A frame the engine lets overtake queued data ([`TransmitClass::may_overtake`]: an
    /// acknowledge): sent ahead of queued data, so a backlog in this task cannot delay acks past
    /// the peer's RTO.
    ///
    /// [`TransmitClass::may_overtake`]: ssm_proto::session::TransmitClass::may_overtake
    Priority(Message),
    /// Send a close frame and stop.
    Close,
}

/// A running transport: two tasks; dropping this aborts both, which drops the socket.
pub(crate) struct Transport {
    tx: mpsc::UnboundedSender<Outgoing>,
    /// Frames sent to the writer and not yet written (or staged by faults).
    backlog: Arc<AtomicUsize>,
    /// Notified when the backlog falls below [`MAX_BACKLOG`] from at or above it.
    drained: Arc<Notify>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Transport {
    pub(crate) fn send(&self, m: Outgoing) {
        self.backlog.fetch_add(1, Ordering::AcqRel);
        let _ = self.tx.send(m);
    }

    /// Whether the writer holds [`MAX_BACKLOG`] frames or more: send nothing more until
    /// [`Transport::drained`] is notified.
    pub(crate) fn is_backlogged(&self) -> bool {
        self.backlog.load(Ordering::Acquire) >= MAX_BACKLOG
    }

    /// Notified (once, the permit kept if nobody waits) when the backlog falls below the limit.
    pub(crate) fn drained(&self) -> Arc<Notify> {
        self.drained.clone()
    }

    /// Sends a close frame and lets the writer finish (bounded), then drops the socket.
    pub(crate) async fn close_gracefully(mut self) {
        let _ = self.tx.send(Outgoing::Close);
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.writer).await;
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// Counts binary frames across both directions for [`Faults::cut_after`].
struct CutCounter {
    limit: Option<u64>,
    seen: std::sync::atomic::AtomicU64,
}

impl CutCounter {
    /// True when this frame reaches the limit.
    fn hit(&self) -> bool {
        match self.limit {
            None => false,
            Some(l) => self.seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 >= l,
        }
    }
}

/// Starts the reader and writer tasks for `ws`.
pub(crate) fn spawn(
    ws: BoxWs,
    generation: u64,
    faults: Option<Faults>,
    events: mpsc::UnboundedSender<TransportEvent>,
) -> Transport {
    let faults = faults.filter(|f| !f.is_none());
    let cut = Arc::new(CutCounter {
        limit: faults.as_ref().and_then(|f| f.cut_after),
        seen: Default::default(),
    });
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let backlog = Arc::new(AtomicUsize::new(0));
    let written = backlog.clone();
    let drained = Arc::new(Notify::new());
    let drained_w = drained.clone();

    let ev = events.clone();
    let cut_r = cut.clone();
    let mut stage_in = faults
        .clone()
        .map(|f| Stage::<Message>::new(f, generation * 2 + 1));
    let reader = tokio::spawn(async move {
        let reason = loop {
            let deadline = stage_in.as_ref().and_then(|s| s.next_deadline());
            let next = tokio::select! {
                m = stream.next() => Some(m),
                _ = sleep_opt(deadline) => None,
            };
            let mut fresh = Vec::new();
            match next {
                None => {}
                Some(None) => break "connection closed".to_string(),
                Some(Some(Err(e))) => break ws_detail(&e),
                Some(Some(Ok(Message::Close(frame)))) => {
                    break match frame {
                        Some(f) => format!("closed by peer ({} {})", u16::from(f.code), f.reason),
                        None => "closed by peer".into(),
                    }
                }
                Some(Some(Ok(m @ Message::Binary(_)))) => {
                    if cut_r.hit() {
                        break "cut (injected fault)".into();
                    }
                    match &mut stage_in {
                        Some(s) => s.push(m, Instant::now()),
                        None => fresh.push(m),
                    }
                }
                Some(Some(Ok(m @ Message::Text(_)))) => fresh.push(m),
                Some(Some(Ok(_))) => {} // ping/pong are answered by tungstenite
            }
            if let Some(s) = &mut stage_in {
                fresh.extend(s.pop_due(Instant::now()));
            }
            for m in fresh {
                if ev.send(TransportEvent::Message(generation, m)).is_err() {
                    return;
                }
            }
        };
        let _ = ev.send(TransportEvent::Closed(generation, reason));
    });

    let mut stage_out = faults.map(|f| Stage::<Message>::new(f, generation * 2));
    let writer = tokio::spawn(async move {
        let result: Result<(), String> = async {
            let mut closing = false;
            loop {
                let deadline = stage_out.as_ref().and_then(|s| s.next_deadline());
                let first = tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => Some(m),
                        None => return Ok(()),
                    },
                    _ = sleep_opt(deadline) => None,
                };
                // Take everything queued: acks first, then data in order.
                let mut batch: Vec<Outgoing> = first.into_iter().collect();
                while batch.len() < 512 {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                // `Close` is queued by `close_gracefully`, outside the count.
                let taken = batch
                    .iter()
                    .filter(|m| !matches!(m, Outgoing::Close))
                    .count();
                let mut priority = Vec::new();
                let mut data = Vec::new();
                for m in batch {
                    match m {
                        Outgoing::Close => closing = true,
                        Outgoing::Priority(m) => priority.push(m),
                        Outgoing::Message(m) => data.push(m),
                    }
                }
                let mut out = Vec::new();
                for m in priority.into_iter().chain(data) {
                    if m.is_binary() && cut.hit() {
                        return Err("cut (injected fault)".to_string());
                    }
                    match (&mut stage_out, m.is_binary()) {
                        (Some(s), true) => s.push(m, Instant::now()),
                        _ => out.push(m),
                    }
                }
                if let Some(s) = &mut stage_out {
                    out.extend(s.pop_due(Instant::now()));
                }
                for m in out {
                    sink.feed(m).await.map_err(|e| ws_detail(&e))?;
                }
                sink.flush().await.map_err(|e| ws_detail(&e))?;
                // Only the driver adds to the backlog, and only while it is below the limit: a
                // decrement from at or above it may be the one the driver waits for.
                if taken > 0 && written.fetch_sub(taken, Ordering::AcqRel) >= MAX_BACKLOG {
                    drained_w.notify_one();
                }
                if closing {
                    let _ = sink.send(Message::Close(None)).await;
                    return Ok(());
                }
            }
        }
        .await;
        if let Err(reason) = result {
            let _ = events.send(TransportEvent::Closed(generation, reason));
        }
    });
    Transport {
        tx,
        backlog,
        drained,
        reader,
        writer,
    }
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// The writer's backlog counts frames until they are written: a peer that reads nothing
    /// keeps the transport backlogged (the driver then takes nothing more from the engine), and
    /// once the peer reads, `drained` wakes the driver and the backlog is gone.
    #[tokio::test]
    async fn backlog_holds_while_the_peer_reads_nothing_and_drains_after() {
        let (ours, theirs) = tokio::io::duplex(4096);
        let ws = WebSocketStream::from_raw_socket(ours, Role::Client, None).await;
        let (events, _events_rx) = mpsc::unbounded_channel();
        let t = spawn(boxed(ws), 1, None, events);
        let drained = t.drained();
        assert!(!t.is_backlogged());
        for i in 0..MAX_BACKLOG {
            t.send(Outgoing::Message(Message::binary(vec![i as u8; 1024])));
        }
        assert!(t.is_backlogged());
        // 64 KiB cannot pass a 4 KiB pipe nobody reads: the writer stays blocked.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            t.is_backlogged(),
            "frames counted as written before they were"
        );

        let mut peer = WebSocketStream::from_raw_socket(theirs, Role::Server, None).await;
        let read = async {
            for i in 0..MAX_BACKLOG {
                let m = peer.next().await.expect("a message").expect("no error");
                assert_eq!(m.into_data().as_ref(), &vec![i as u8; 1024][..]);
            }
        };
        let woke = async {
            tokio::time::timeout(Duration::from_secs(5), drained.notified())
                .await
                .is_ok()
        };
        let (woke, ()) = tokio::join!(woke, read);
        assert!(woke, "the driver was not woken when the backlog drained");
        assert!(!t.is_backlogged());
    }
}
