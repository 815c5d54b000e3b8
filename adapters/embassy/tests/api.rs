//! The device's own SSM API calls (`ssm_embassy::api`): against the tokio emulator over
//! verified TLS (StartSession → run the session → TerminateSession), and against small
//! in-test HTTP servers for what the emulator does not do: a `Date` header, a refusal for
//! clock skew (retried once with the corrected clock), hostile answers.
#![cfg(feature = "tls")]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use embassy_futures::join::join;
use embedded_io_adapters::tokio_1::FromTokio;
use embedded_io_async::{Read, Write};
use ssm_embassy::api::{Endpoint, ServiceErrorKind, StartSessionRequest};
use ssm_embassy::{Api, ApiBuffers, Clock, CloseReason, StreamUrls};
use ssm_emulator::{Emulator, EmulatorConfig};
use ssm_proto::api::Error as ApiError;
use ssm_proto::sigv4::Credentials;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CREDS: Credentials<'static> = Credentials {
    access_key_id: "AKIDEXAMPLE",
    secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    session_token: Some("IQoJb3JpZ2luX2VjEXAMPLEtoken"),
};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn leak<T>(t: T) -> &'static mut T {
    Box::leak(Box::new(t))
}

/// StartSession through the API, the session run over a second (verified TLS) connection with
/// a SigV4-signed upgrade, its output read; then a shell session ended by TerminateSession on
/// the API connection (kept alive).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_run_and_terminate_against_the_emulator() {
    // Strict: the emulator verifies every call's and every upgrade's signature.
    let emu = Emulator::start(strict()).await.unwrap();
    let port = emu.addr().port();
    let clock: &'static Clock = leak(Clock::from_unix_secs(unix_now()));
    let (api, ca) = common::api::emulator_api(&emu, CREDS, clock);
    let api_conn = common::tls_to_localhost(port, ca).await;

    // A command: its output and exit code.
    let response = common::api::start_command(&api, api_conn, "echo api-ok; exit 3").await;
    assert!(response.session_id().starts_with("emulator-"));
    let (run, (output, code)) = run_session(&api, &response, port, ca, |s| async move {
        (common::api::read_all(s).await, s.exit_code())
    })
    .await;
    assert_eq!(run, Ok(CloseReason::ChannelClosed));
    assert_eq!(output, b"api-ok\n");
    assert_eq!(code, Some(3));

    // A shell, ended from the API side while it runs.
    let shell = StartSessionRequest {
        target: "i-0emulator",
        ..Default::default()
    };
    let buffers: &'static mut ApiBuffers = leak(ApiBuffers::new());
    let response = api.start_session(api_conn, &shell, buffers).await.unwrap();
    let session_id: &'static str = Box::leak(response.session_id().to_string().into_boxed_str());
    let (run, api_conn) = run_session(&api, &response, port, ca, |s| async move {
        { s }.write_all(b"echo term''inate-me\r").await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !seen.windows(12).any(|w| w == b"terminate-me") {
            let n = { s }.read(&mut buf).await.unwrap();
            assert!(n > 0, "eof before the echo");
            seen.extend_from_slice(&buf[..n]);
        }
        let mut terminate_buffers = ApiBuffers::<4096, 2048>::new();
        api.terminate_session(api_conn, session_id, &mut terminate_buffers)
            .await
            .unwrap();
        while { s }.read(&mut buf).await.unwrap() > 0 {}
        api_conn
    })
    .await;
    assert_eq!(run, Ok(CloseReason::ChannelClosed));

    // Resuming a terminated session: the emulator's typed refusal, or (when its agent had
    // already ended the session) the answer without a token, as AWS gives for ended sessions.
    let buffers: &'static mut ApiBuffers = leak(ApiBuffers::new());
    let e = api
        .resume_session(api_conn, session_id, buffers)
        .await
        .unwrap_err();
    match e {
        ssm_embassy::Error::Api(ApiError::Service(s)) => {
            assert_eq!(s.kind, ServiceErrorKind::DoesNotExist);
            assert_eq!(s.status, 400);
        }
        ssm_embassy::Error::Api(ApiError::SessionEnded) => {}
        e => panic!("{e:?}"),
    }
}

/// An emulator that accepts only calls and upgrades signed with [`CREDS`].
fn strict() -> EmulatorConfig {
    EmulatorConfig {
        credentials: Some(ssm_emulator::sigv4::Credentials {
            access_key_id: CREDS.access_key_id.into(),
            secret_access_key: CREDS.secret_access_key.into(),
            session_token: CREDS.session_token.map(Into::into),
        }),
        ..EmulatorConfig::default()
    }
}

/// A device without a clock against the strict emulator: its first call, signed with the
/// epoch, is refused as expired; the refusal's `Date` sets the clock and the retry passes the
/// emulator's verification; so does the upgrade signed with the learned clock. Wrong keys are
/// the service's typed refusal, not a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_without_a_clock_learns_it_from_the_strict_emulator() {
    let emu = Emulator::start(strict()).await.unwrap();
    let port = emu.addr().port();
    let clock: &'static Clock = leak(Clock::unknown());
    let (api, ca) = common::api::emulator_api(&emu, CREDS, clock);
    let api_conn = common::tls_to_localhost(port, ca).await;
    let response = common::api::start_command(&api, api_conn, "echo clock-ok").await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(clock.unix_secs().unwrap().abs_diff(now) <= 2);
    let (run, out) = run_session(&api, &response, port, ca, common::api::read_all).await;
    assert_eq!(run, Ok(CloseReason::ChannelClosed));
    assert_eq!(out, b"clock-ok\n");

    let wrong = Api {
        credentials: Credentials {
            secret_access_key: "not-the-secret",
            ..CREDS
        },
        ..api
    };
    let mut buffers = ApiBuffers::<4096, 2048>::new();
    let e = wrong
        .terminate_session(api_conn, response.session_id(), &mut buffers)
        .await
        .unwrap_err();
    match e {
        ssm_embassy::Error::Api(ApiError::Service(s)) => {
            assert!(!s.is_clock_skew(now, None), "{s:?}");
            assert_eq!(s.status, 403, "{s:?}");
        }
        e => panic!("{e:?}"),
    }
}

async fn run_session<F, Fut, T>(
    api: &Api<'static>,
    response: &ssm_proto::model::StartSessionResponse<'static>,
    port: u16,
    ca: &'static [u8],
    app: F,
) -> (Result<CloseReason, ssm_embassy::Error>, T)
where
    F: FnOnce(ssm_embassy::Session<'static>) -> Fut,
    Fut: core::future::Future<Output = T>,
{
    let (session, runner, _) = common::api::open_session(api, response, port, ca, 0xa91).await;
    tokio::time::timeout(
        core::time::Duration::from_secs(60),
        join(runner.run(), app(session)),
    )
    .await
    .expect("session stuck for 60 s")
}

/// What an in-test server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    amz_date: String,
    authorization: String,
    token: Option<String>,
    target: String,
    host: String,
    body: Vec<u8>,
}

/// Serves one connection on loopback, answering its requests in turn with `answers` (raw
/// response bytes); the connection closes after the last answer. Returns the port and what the
/// server saw.
async fn fake_server(answers: Vec<Vec<u8>>) -> (u16, tokio::task::JoinHandle<Vec<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = Vec::new();
        for answer in answers {
            let (req, used) = loop {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut r = httparse::Request::new(&mut headers);
                if let httparse::Status::Complete(n) = r.parse(&buf).unwrap() {
                    let get = |name: &str| {
                        r.headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8(h.value.to_vec()).unwrap())
                    };
                    let len: usize = get("content-length").unwrap().parse().unwrap();
                    if buf.len() >= n + len {
                        let s = Seen {
                            amz_date: get("x-amz-date").unwrap(),
                            authorization: get("authorization").unwrap(),
                            token: get("x-amz-security-token"),
                            target: get("x-amz-target").unwrap(),
                            host: get("host").unwrap(),
                            body: buf[n..n + len].to_vec(),
                        };
                        break (s, n + len);
                    }
                }
                let mut chunk = [0u8; 4096];
                let k = tcp.read(&mut chunk).await.unwrap();
                assert!(k > 0, "client closed early");
                buf.extend_from_slice(&chunk[..k]);
            };
            buf.drain(..used);
            tcp.write_all(&answer).await.unwrap();
            seen.push(req);
        }
        let _ = tcp.shutdown().await;
        seen
    });
    (port, task)
}

fn http_date(unix: u64) -> String {
    // RFC 9110 IMF-fixdate; the fields from the signer's date formatter, the weekday by hand
    // (1970-01-01 was a Thursday).
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d = ssm_proto::sigv4::AmzDate::from_unix_secs(unix).unwrap();
    let t = d.as_str();
    let days = unix / 86_400;
    format!(
        "{}, {} {} {} {}:{}:{} GMT",
        DAYS[(days % 7) as usize],
        &t[6..8],
        MONTHS[t[4..6].parse::<usize>().unwrap() - 1],
        &t[0..4],
        &t[9..11],
        &t[11..13],
        &t[13..15]
    )
}

const SESSION_JSON: &str = r#"{"SessionId":"s-0123456789abcdef0","StreamUrl":"wss:\/\/127.0.0.1:9\/v1\/data-channel\/s-0123456789abcdef0?role=publish_subscribe","TokenValue":"AAEAAbKr0Vx1"}"#;

fn ok_answer(date: u64, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nDate: {}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
        http_date(date),
        body.len()
    )
    .into_bytes()
}

fn skew_answer(date: u64, close: bool) -> Vec<u8> {
    let body = r#"{"__type":"InvalidSignatureException","message":"Signature expired: 19700101T000000Z is now earlier than 20261201T215500Z (20261201T220000Z - 5 min.)"}"#;
    format!(
        "HTTP/1.1 400 Bad Request\r\nDate: {}\r\n{}Content-Length: {}\r\n\r\n{body}",
        http_date(date),
        if close { "Connection: close\r\n" } else { "" },
        body.len()
    )
    .into_bytes()
}

fn local_api(port: u16, clock: &'static Clock) -> Api<'static> {
    Api {
        endpoint: Endpoint {
            host: "127.0.0.1",
            port,
            tls: false,
            region: "eu-west-1",
        },
        credentials: CREDS,
        clock,
        stream_urls: StreamUrls::LoopbackForTests,
    }
}

async fn tcp(port: u16) -> FromTokio<tokio::net::TcpStream> {
    FromTokio::new(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap(),
    )
}

/// The signature the server should have seen for `seen`'s body at its X-Amz-Date.
fn expected_authorization(seen: &Seen, port: u16) -> String {
    let unix = parse_amz(&seen.amz_date);
    let mut out = [0u8; 512];
    ssm_proto::sigv4::sign_json_request(
        &format!("127.0.0.1:{port}"),
        "eu-west-1",
        &seen.target,
        &seen.body,
        &CREDS,
        unix,
        &mut out,
    )
    .unwrap()
    .authorization
    .to_string()
}

fn parse_amz(d: &str) -> u64 {
    // Find the Unix time whose AmzDate is `d` (days, then seconds).
    let year: u64 = d[0..4].parse().unwrap();
    let mut lo = 0u64;
    let mut hi = (year - 1969) * 366 * 86_400;
    while lo < hi {
        let mid = (lo + hi) / 2;
        if ssm_proto::sigv4::AmzDate::from_unix_secs(mid)
            .unwrap()
            .as_str()
            < d
        {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// An unknown clock signs the first call with the epoch; the refusal's `Date` sets the clock
/// and the one retry, on the same connection, is signed with it.
#[tokio::test]
async fn an_unknown_clock_is_learned_from_a_skew_refusal_and_retried_once() {
    let server_time = 1_796_162_506; // Tue, 01 Dec 2026 22:01:46 GMT
    let (port, seen) = fake_server(vec![
        skew_answer(server_time, false),
        ok_answer(server_time + 1, SESSION_JSON),
    ])
    .await;
    let clock: &'static Clock = leak(Clock::unknown());
    let api = local_api(port, clock);
    let mut t = tcp(port).await;
    let mut buffers = ApiBuffers::<4096, 2048>::new();
    let request = StartSessionRequest {
        target: "i-0123456789abcdef0",
        ..Default::default()
    };
    let r = api
        .start_session(&mut t, &request, &mut buffers)
        .await
        .unwrap();
    assert_eq!(r.session_id(), "s-0123456789abcdef0");
    assert_eq!(r.token().expose_secret(), "AAEAAbKr0Vx1");
    assert_eq!(r.stream_url().port(), 9);
    let seen = seen.await.unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].amz_date, "19700101T000000Z");
    let retry = parse_amz(&seen[1].amz_date);
    assert!(
        retry.abs_diff(server_time) <= 2,
        "retry signed at {}",
        seen[1].amz_date
    );
    for s in &seen {
        assert_eq!(s.target, "AmazonSSM.StartSession");
        assert_eq!(s.host, format!("127.0.0.1:{port}"));
        assert_eq!(s.token.as_deref(), CREDS.session_token);
        assert_eq!(s.body, br#"{"Target":"i-0123456789abcdef0"}"#);
        assert_eq!(s.authorization, expected_authorization(s, port));
    }
    assert!(clock.unix_secs().unwrap().abs_diff(server_time) <= 2);
}

/// A skew refusal that closes the connection is not retried on it; the clock is corrected, so
/// the caller's next call (new connection) is signed right. A set clock is not moved by the
/// `Date` of a successful answer.
#[tokio::test]
async fn a_skew_refusal_with_connection_close_corrects_the_clock_for_the_next_call() {
    let server_time = 1_796_162_506;
    let (port, seen) = fake_server(vec![skew_answer(server_time, true)]).await;
    let clock: &'static Clock = leak(Clock::from_unix_secs(server_time - 3600));
    let api = local_api(port, clock);
    let mut t = tcp(port).await;
    let mut buffers = ApiBuffers::<4096, 2048>::new();
    let e = api
        .resume_session(&mut t, "s-0123456789abcdef0", &mut buffers)
        .await
        .unwrap_err();
    match e {
        ssm_embassy::Error::Api(ApiError::Service(s)) => {
            assert_eq!(s.kind, ServiceErrorKind::InvalidSignature);
            assert!(s.is_clock_skew(server_time - 3600, Some(server_time)));
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(seen.await.unwrap().len(), 1);
    assert!(clock.unix_secs().unwrap().abs_diff(server_time) <= 2);

    // A known clock and a successful answer whose Date differs (within the threshold): kept.
    let (port, _seen) = fake_server(vec![ok_answer(server_time + 100, SESSION_JSON)]).await;
    let clock: &'static Clock = leak(Clock::from_unix_secs(server_time));
    let api = local_api(port, clock);
    let mut t = tcp(port).await;
    api.resume_session(&mut t, "s-0123456789abcdef0", &mut buffers)
        .await
        .unwrap();
    assert!(clock.unix_secs().unwrap().abs_diff(server_time) <= 2);
}

/// Answers a device must refuse: a StreamUrl to a host that is neither AWS nor loopback, a
/// resume without a token (the session ended), a chunk larger than the buffer, an answer cut
/// short, and a resume answer for another session.
#[tokio::test]
async fn hostile_answers_are_refused() {
    let now = unix_now();
    let evil =
        r#"{"SessionId":"s-1","StreamUrl":"wss://10.0.0.1/v1/data-channel/s-1","TokenValue":"t"}"#;
    let ended =
        r#"{"SessionId":"s-1","StreamUrl":"wss://127.0.0.1/v1/data-channel/s-1","TokenValue":""}"#;
    let other =
        r#"{"SessionId":"s-2","StreamUrl":"wss://127.0.0.1/v1/data-channel/s-2","TokenValue":"t"}"#;
    let huge_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\n".to_vec();
    let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Sess".to_vec();
    type Check = fn(&ssm_embassy::Error) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (ok_answer(now, evil), |e| {
            matches!(
                e,
                ssm_embassy::Error::Api(ApiError::Answer(ssm_proto::model::Error::Url(
                    ssm_proto::model::UrlError::BadHost
                )))
            )
        }),
        (ok_answer(now, ended), |e| {
            matches!(e, ssm_embassy::Error::Api(ApiError::SessionEnded))
        }),
        (ok_answer(now, other), |e| {
            matches!(
                e,
                ssm_embassy::Error::Api(ApiError::Answer(ssm_proto::model::Error::Url(
                    ssm_proto::model::UrlError::SessionIdMismatch
                )))
            )
        }),
        (huge_chunk, |e| {
            matches!(
                e,
                ssm_embassy::Error::Api(ApiError::Http(
                    ssm_proto::api::HttpError::BodyTooLarge { .. }
                ))
            )
        }),
        (cut, |e| {
            matches!(
                e,
                ssm_embassy::Error::Api(ApiError::Http(ssm_proto::api::HttpError::Truncated))
            )
        }),
    ];
    for (answer, want) in cases {
        let (port, _seen) = fake_server(vec![answer]).await;
        let clock: &'static Clock = leak(Clock::from_unix_secs(now));
        let mut api = local_api(port, clock);
        api.stream_urls = StreamUrls::LoopbackForTests;
        let mut t = tcp(port).await;
        let mut buffers = ApiBuffers::<4096, 2048>::new();
        let e = api
            .resume_session(&mut t, "s-1", &mut buffers)
            .await
            .unwrap_err();
        assert!(want(&e), "{e:?}");
    }
    // The AWS-only policy refuses the loopback URL that the test policy accepts.
    let (port, _seen) = fake_server(vec![ok_answer(now, SESSION_JSON)]).await;
    let clock: &'static Clock = leak(Clock::from_unix_secs(now));
    let mut api = local_api(port, clock);
    api.stream_urls = StreamUrls::Aws;
    let mut t = tcp(port).await;
    let mut buffers = ApiBuffers::<4096, 2048>::new();
    let e = api
        .resume_session(&mut t, "s-0123456789abcdef0", &mut buffers)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ssm_embassy::Error::Api(ApiError::Answer(_))),
        "{e:?}"
    );
}

#[test]
fn debug_forms_keep_secrets_out() {
    let clock = Clock::unknown();
    let api = local_api(1, leak(clock));
    let d = format!("{api:?}");
    assert!(d.contains("AKIDEXAMPLE"));
    assert!(
        !d.contains(CREDS.secret_access_key) && !d.contains("IQoJ"),
        "{d}"
    );
    let owned =
        ssm_embassy::OwnedCredentials::<64, 64>::new("AKIDEXAMPLE", "SECRETKEY", Some("TOK"))
            .unwrap();
    let d = format!("{owned:?}");
    assert!(!d.contains("SECRETKEY") && !d.contains("TOK\""), "{d}");
}
