//! A recorded StartSession round trip, replayed: the device's TLS handshake (P-256 chain of the
//! emulator's CA), its SigV4-signed `StartSession` request and the answer it parses, byte for
//! byte. Shared, as source, by `tests/api_replay.rs` (host, which also records it against the
//! strict emulator) and `examples/boards/qemu-tests` (Cortex-M4), so this file is `no_std` and
//! uses only `core`.
//!
//! The replay fits the recording only if the client sends the recorded bytes again: the same
//! key share (the seeded RNG of [`super::replay`]), the same request, signed at the recorded
//! second with [`CREDS`]. A wrong signature, body or header is a diverging write, which fails.

use embedded_io_async::{Read, Write};
use ssm_embassy::api::{Endpoint, StartSessionRequest};
use ssm_embassy::tls::{self, Options, Verification};
use ssm_embassy::{Api, ApiBuffers, Clock, StreamUrls};
use ssm_proto::sigv4::Credentials;

use super::replay::{Replay, Seeded, SEED};

/// The credentials the recording was signed with (AWS's documentation example keys).
pub const CREDS: Credentials<'static> = Credentials {
    access_key_id: "AKIDEXAMPLE",
    secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    session_token: Some("IQoJb3JpZ2luX2VjEXAMPLEtoken"),
};

/// The TLS name the emulator's certificate carries.
pub const SERVER_NAME: &str = "localhost";

/// The recording's facts (`tests/data/api/start-session.txt`): one `key value` per line.
pub struct Meta<'a>(pub &'a str);

impl<'a> Meta<'a> {
    /// The value of `key`, if the file has it.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.0.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then_some(v)
        })
    }

    /// The second the request was signed at.
    pub fn unix_secs(&self) -> Option<u64> {
        self.get("unix_secs")?.parse().ok()
    }
}

/// The API client of the recording: the emulator's address as the endpoint's host and port.
pub fn api<'a>(port: u16, clock: &'a Clock, stream_urls: StreamUrls) -> Api<'a> {
    Api {
        endpoint: Endpoint {
            host: "127.0.0.1",
            port,
            tls: true,
            region: "us-east-1",
        },
        credentials: CREDS,
        clock,
        stream_urls,
    }
}

/// What a StartSession round trip gave: the answer's fields, copied out.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    /// `SessionId`.
    pub session_id: heapless::String<128>,
    /// `StreamUrl`, as the answer gave it.
    pub stream_url: heapless::String<256>,
    /// `TokenValue` (a test token).
    pub token: heapless::String<1024>,
}

/// Why a round trip failed.
#[derive(Debug)]
pub enum Failed {
    /// The TLS handshake (verification, or a diverging client write).
    Tls(#[allow(dead_code, reason = "shown by Debug when a check fails")] tls::Error),
    /// The API call (the answer, its check, or the transport).
    Api(ssm_embassy::Error),
    /// An answer field did not fit [`Answer`].
    TooLong,
}

/// The memory a round trip uses: TLS records in and out, and the API's buffers.
pub struct Buffers<'a> {
    /// One incoming TLS record (16640 bytes).
    pub rx: &'a mut [u8],
    /// One outgoing TLS record.
    pub tx: &'a mut [u8],
    /// Request, answer and body.
    pub api: &'a mut ApiBuffers,
}

/// Over `transport`: a verified TLS 1.3 handshake to [`SERVER_NAME`] under `root`, with the
/// seeded RNG, then `StartSession` of `AWS-StartNonInteractiveCommand` through `api`. `clock`
/// makes the [`Api`] once the handshake is done (a host replay aligns it to a second there).
pub async fn start_session<T: Read + Write>(
    transport: T,
    root: &[u8],
    port: u16,
    clock: impl FnOnce() -> Clock,
    stream_urls: StreamUrls,
    buffers: &mut Buffers<'_>,
) -> Result<Answer, Failed> {
    let options = Options {
        server_name: SERVER_NAME,
        verification: Verification::Root(root),
    };
    let Buffers { rx, tx, api: bufs } = buffers;
    let mut conn = tls::connect(transport, rx, tx, options, Seeded::new(SEED))
        .await
        .map_err(Failed::Tls)?;
    let clock = clock();
    let values = ["echo replayed"];
    let params = [("command", &values[..])];
    let request = StartSessionRequest {
        target: "i-0replayed",
        document_name: Some("AWS-StartNonInteractiveCommand"),
        parameters: &params,
        reason: None,
    };
    let r = api(port, &clock, stream_urls)
        .start_session(&mut conn, &request, bufs)
        .await
        .map_err(Failed::Api)?;
    Ok(Answer {
        session_id: copy(r.session_id())?,
        stream_url: copy(r.stream_url().as_str())?,
        token: copy(r.token().expose_secret())?,
    })
}

fn copy<const N: usize>(s: &str) -> Result<heapless::String<N>, Failed> {
    s.try_into().map_err(|_| Failed::TooLong)
}

/// The recording replayed through [`start_session`]: the answer, and whether the client sent
/// exactly the recorded bytes (all of them).
pub async fn replay(
    server: &[u8],
    client: &[u8],
    root: &[u8],
    meta: &Meta<'_>,
    clock: impl FnOnce() -> Clock,
    stream_urls: StreamUrls,
    buffers: &mut Buffers<'_>,
) -> (Result<Answer, Failed>, bool) {
    let port = meta.get("port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let mut transport = Replay { server, client };
    let r = start_session(&mut transport, root, port, clock, stream_urls, buffers).await;
    (r, transport.client.is_empty())
}

/// Whether `answer` is the one recorded in `meta`.
pub fn is_recorded(answer: &Answer, meta: &Meta<'_>) -> bool {
    meta.get("session_id") == Some(answer.session_id.as_str())
        && meta.get("stream_url") == Some(answer.stream_url.as_str())
        && meta.get("token") == Some(answer.token.as_str())
}

/// Every check of the recording, on whatever runs it (host or Cortex-M4); `Err` names the one
/// that failed.
///
/// - The round trip replays: the client sends every recorded byte and parses the recorded
///   answer.
/// - Under the production policy ([`StreamUrls::Aws`]) the same answer is refused: its
///   StreamUrl names the emulator, not AWS.
/// - Signed one second later, the request differs from the recording: the replay does check
///   the signature (a diverging write fails the call).
/// - The answer's last byte flipped (in its record's AEAD tag): a TLS error, no answer.
///
/// `clock(t)` is a clock reading `t` for the whole call; `forged` holds a copy of `server`.
pub async fn check_all(
    server: &[u8],
    client: &[u8],
    root: &[u8],
    meta: &Meta<'_>,
    clock: impl Fn(u64) -> Clock,
    bufs: &mut Buffers<'_>,
    forged: &mut [u8],
) -> Result<(), &'static str> {
    let t = meta
        .unix_secs()
        .ok_or("start-session.txt has no unix_secs")?;
    let mut run = async |server: &[u8], at: u64, urls: StreamUrls| {
        replay(server, client, root, meta, || clock(at), urls, bufs).await
    };

    let (r, all_sent) = run(server, t, StreamUrls::LoopbackForTests).await;
    let answer = r.map_err(|_| "the recorded round trip failed")?;
    if !all_sent {
        return Err("the client sent less than the recording");
    }
    if !is_recorded(&answer, meta) {
        return Err("the parsed answer is not the recorded one");
    }

    let (r, all_sent) = run(server, t, StreamUrls::Aws).await;
    match r {
        Err(Failed::Api(ssm_embassy::Error::Api(ssm_proto::api::Error::Answer(_)))) if all_sent => {
        }
        _ => return Err("an off-AWS StreamUrl was not refused under StreamUrls::Aws"),
    }

    let (r, _) = run(server, t + 1, StreamUrls::LoopbackForTests).await;
    if !matches!(r, Err(Failed::Api(_))) {
        return Err("a request signed at another second fit the recording");
    }

    if forged.len() != server.len() {
        return Err("forged is not the server's length");
    }
    forged.copy_from_slice(server);
    forged[server.len() - 1] ^= 0x01;
    let (r, _) = run(forged, t, StreamUrls::LoopbackForTests).await;
    if !matches!(r, Err(Failed::Api(_))) {
        return Err("a forged answer record was accepted");
    }
    Ok(())
}
