//! The runner survives the loss of its WebSocket (PROTOCOL.md §6a): `Runner::run_resuming`
//! calls ResumeSession through the test's `ResumeSource` (the device's own `Api` over verified
//! TLS to the tokio emulator), reconnects with the new token, and the engine's state carries
//! the session on. The emulator cuts every data-channel connection after a few frames
//! (`Faults::cut_after`); the command's output still arrives byte-exact with its exit code.
//! Mock sources check the ends: a session that has ended, an answer about another session, and
//! a source that keeps failing (bounded attempts). A megabyte each way crosses at least three
//! resumes of the strict emulator with SHA-256 equal.
#![cfg(feature = "tls")]

mod common;

use embassy_futures::join::join;
use ssm_embassy::resume::RESUME_ATTEMPTS;
use ssm_embassy::{
    Api, CloseReason, Error, OpenSource, Opened, Resources, ResumeSource, Resumed, StreamUrls,
};
use ssm_emulator::{Emulator, EmulatorConfig};
use ssm_proto::model::StartSessionResponse;
use ssm_tokio::Faults;

fn leak<T>(t: T) -> &'static mut T {
    Box::leak(Box::new(t))
}

use common::api::{EmulatorSource, Reader, Writer, CREDS};

struct Setup {
    api: Api<'static>,
    api_conn: &'static mut common::TestConnection,
    ca: &'static [u8],
    port: u16,
    _emu: Emulator,
}

async fn setup(cut_after: Option<u64>) -> Setup {
    setup_with(cut_after, EmulatorConfig::default()).await
}

async fn setup_with(cut_after: Option<u64>, config: EmulatorConfig) -> Setup {
    let emu = Emulator::start(config).await.unwrap();
    emu.set_faults(cut_after.map(|n| Faults {
        seed: 7,
        cut_after: Some(n),
        ..Faults::default()
    }));
    let port = emu.addr().port();
    let (api, ca) = common::api::emulator_api(&emu, CREDS, common::api::system_clock());
    let api_conn = common::tls_to_localhost(port, ca).await;
    Setup {
        api,
        api_conn,
        ca,
        port,
        _emu: emu,
    }
}

/// Starts `command` through the API and runs it with `run_resuming` and `source`; returns the
/// runner's result, the output and the exit code.
async fn run_command<S: ResumeSource>(
    s: &mut Setup,
    command: &str,
    source: impl FnOnce(&'static str) -> S,
) -> (Result<CloseReason, Error>, Vec<u8>, Option<i32>, S) {
    run_command_with_input(s, command, &[], source).await
}

/// As [`run_command`], writing `input` to the command while its output is read.
async fn run_command_with_input<S: ResumeSource>(
    s: &mut Setup,
    command: &str,
    input: &[u8],
    source: impl FnOnce(&'static str) -> S,
) -> (Result<CloseReason, Error>, Vec<u8>, Option<i32>, S) {
    let response = common::api::start_command(&s.api, s.api_conn, command).await;
    let session_id: &'static str = Box::leak(response.session_id().to_string().into_boxed_str());
    let (session, runner, _) =
        common::api::open_session(&s.api, &response, s.port, s.ca, 0x7e5).await;
    let mut source = source(session_id);
    let write = async move {
        let mut session = session;
        if !input.is_empty() {
            embedded_io_async::Write::write_all(&mut session, input)
                .await
                .expect("input written");
        }
    };
    let app = async move {
        let (out, ()) = join(common::api::read_all(session), write).await;
        (out, session.exit_code())
    };
    let (run, (out, code)) = tokio::time::timeout(
        core::time::Duration::from_secs(120),
        join(
            runner.run_resuming(session_id, &mut source, StreamUrls::LoopbackForTests),
            app,
        ),
    )
    .await
    .expect("session stuck for 120 s");
    (run, out, code, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_survives_repeated_cuts_through_resume_session() {
    // 200 KB of output; each connection is cut after 60 frames (about 50 KB).
    const LEN: usize = 200_000;
    let mut s = setup(Some(60)).await;
    let (api, ca) = (s.api, s.ca);
    let api_conn = common::tls_to_localhost(s.port, ca).await;
    let (run, out, code, source) = run_command(
        &mut s,
        &format!("head -c {LEN} /dev/zero | tr '\\0' 'r'; exit 5"),
        move |_| EmulatorSource::new(api, api_conn, ca),
    )
    .await;
    assert_eq!(run, Ok(CloseReason::ChannelClosed));
    assert_eq!(out.len(), LEN);
    assert!(out.iter().all(|&b| b == b'r'));
    assert_eq!(code, Some(5));
    let resumes = source.resumes.get();
    assert!(resumes >= 3, "only {resumes} resumes");
}

/// A megabyte each way across at least three resumes of the strict emulator (each
/// ResumeSession call and each upgrade signature verified): the command's output and what it
/// read have the SHA-256 of what was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_each_way_survives_three_resumes_of_the_strict_emulator() {
    let each_way = common::EachWay::new("ssm-embassy-resume");
    let config = EmulatorConfig {
        credentials: Some(ssm_emulator::sigv4::Credentials {
            access_key_id: CREDS.access_key_id.into(),
            secret_access_key: CREDS.secret_access_key.into(),
            session_token: None,
        }),
        ..EmulatorConfig::default()
    };
    // About 2 600 frames both ways (data and acks); a cut every 600.
    let mut s = setup_with(Some(600), config).await;
    let (api, ca) = (s.api, s.ca);
    let api_conn = common::tls_to_localhost(s.port, ca).await;
    let (run, out, code, source) = run_command_with_input(
        &mut s,
        &each_way.command("exit 9"),
        &each_way.up,
        move |_| EmulatorSource::new(api, api_conn, ca),
    )
    .await;
    assert_eq!(run, Ok(CloseReason::ChannelClosed));
    assert_eq!(code, Some(9));
    each_way.check(&out);
    let resumes = source.resumes.get();
    assert!(resumes >= 3, "only {resumes} resumes");
}

/// The service's routine close (`close 1000 "Bye"`, here every 300 ms instead of every hour)
/// against the strict emulator: each ResumeSession call and each upgrade is verified, and a
/// slow command's every line arrives, in order, with its exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routine_closes_of_the_strict_emulator_are_resumed() {
    let config = EmulatorConfig {
        credentials: Some(ssm_emulator::sigv4::Credentials {
            access_key_id: CREDS.access_key_id.into(),
            secret_access_key: CREDS.secret_access_key.into(),
            session_token: None,
        }),
        close_every: Some(core::time::Duration::from_millis(300)),
        ..EmulatorConfig::default()
    };
    let mut s = setup_with(None, config).await;
    let (api, ca) = (s.api, s.ca);
    let api_conn = common::tls_to_localhost(s.port, ca).await;
    let (run, out, code, source) = run_command(
        &mut s,
        "for i in $(seq 1 15); do echo line-$i; sleep 0.1; done; exit 6",
        move |_| EmulatorSource::new(api, api_conn, ca),
    )
    .await;
    assert_eq!(run, Ok(CloseReason::ChannelClosed));
    let want: String = (1..=15).map(|i| format!("line-{i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out), want);
    assert_eq!(code, Some(6));
    let resumes = source.resumes.get();
    assert!(resumes >= 3, "only {resumes} resumes");
}

/// A source whose every attempt fails with the same error.
struct Failing {
    error: Error,
    calls: u32,
    opens: u32,
}

impl ResumeSource for Failing {
    type Transport<'c> = (Reader, Writer);

    async fn resume<'c>(
        &'c mut self,
        _session_id: &str,
    ) -> Result<Resumed<'c, (Reader, Writer)>, Error> {
        self.calls += 1;
        Err(self.error)
    }
}

impl OpenSource for Failing {
    async fn open<'c>(
        &'c mut self,
        _response: &StartSessionResponse<'_>,
    ) -> Result<Opened<'c, (Reader, Writer)>, Error> {
        self.opens += 1;
        Err(self.error)
    }
}

fn failing(error: Error) -> Failing {
    Failing {
        error,
        calls: 0,
        opens: 0,
    }
}

/// A source that answers `json` (parsed by the core like any answer) and connects to the
/// emulator: what a hostile or confused ResumeSession answer would look like to the runner.
struct Doctored {
    json: Vec<u8>,
    scratch: Vec<u8>,
    ca: &'static [u8],
    port: u16,
}

impl ResumeSource for Doctored {
    type Transport<'c> = (Reader, Writer);

    async fn resume<'c>(
        &'c mut self,
        _session_id: &str,
    ) -> Result<Resumed<'c, (Reader, Writer)>, Error> {
        let response = ssm_proto::api::parse_session_answer(
            200,
            &self.json,
            &mut self.scratch,
            ssm_proto::model::Endpoints::DangerousAnyHost,
        )
        .map_err(Error::Api)?;
        let conn = common::tls_to_localhost(self.port, self.ca).await;
        Ok(Resumed {
            response,
            transport: conn.split(),
            headers: heapless::Vec::new(),
        })
    }
}

/// Cut after 10 frames, a command that outputs more than that and then waits.
const LONG: &str = "head -c 100000 /dev/zero; sleep 30";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_has_ended_ends_the_runner_with_session_ended() {
    let mut s = setup(Some(10)).await;
    let (run, _, _, source) = run_command(&mut s, LONG, |_| {
        failing(Error::Api(ssm_proto::api::Error::SessionEnded))
    })
    .await;
    assert_eq!(run, Err(Error::Api(ssm_proto::api::Error::SessionEnded)));
    assert_eq!(source.calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_resumes_are_retried_a_bounded_number_of_times() {
    let mut s = setup(Some(10)).await;
    let started = std::time::Instant::now();
    let (run, _, _, source) = run_command(&mut s, LONG, |_| failing(Error::Connect)).await;
    assert_eq!(run, Err(Error::Connect));
    assert_eq!(source.calls, RESUME_ATTEMPTS);
    // Backoff 100 + 200 + 400 + 800 ms between the five attempts.
    assert!(started.elapsed() >= core::time::Duration::from_millis(1500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_for_another_session_or_host_is_refused() {
    let mut s = setup(Some(10)).await;
    let (ca, port) = (s.ca, s.port);
    for url in [
        // Another session (its own URL is consistent, so the core's parse accepts it).
        "{\"SessionId\":\"{id}x\",\"StreamUrl\":\"wss://127.0.0.1:{port}/v1/data-channel/{id}x\",\"TokenValue\":\"t\"}",
        // A host that is neither AWS nor loopback.
        "{\"SessionId\":\"{id}\",\"StreamUrl\":\"wss://192.0.2.1/v1/data-channel/{id}\",\"TokenValue\":\"t\"}",
    ] {
        let (run, _, _, _) = run_command(&mut s, LONG, |id| Doctored {
            json: url
                .replace("{id}", id)
                .replace("{port}", &port.to_string())
                .into_bytes(),
            scratch: vec![0; 1024],
            ca,
            port,
        })
        .await;
        assert_eq!(run, Err(Error::BadStreamUrl), "{url}");
    }
}

/// A session for `response` made by `ssm_embassy::unconnected`, run with `source` and `policy`
/// while its output is read; returns the runner's result, the output and the handle. Fails
/// after 120 s.
async fn run_unconnected<S: OpenSource>(
    response: &'static StartSessionResponse<'static>,
    source: &mut S,
    policy: StreamUrls,
) -> (
    Result<CloseReason, Error>,
    Vec<u8>,
    ssm_embassy::Session<'static>,
) {
    let engine = ssm_proto::session::Config::client(0);
    let resources = leak(Resources::<2048, 4096, 4096>::new());
    let (session, runner) = ssm_embassy::unconnected(response, engine, resources, 0x0c0);
    let (run, out) = tokio::time::timeout(
        core::time::Duration::from_secs(120),
        join(runner.run(source, policy), common::api::read_all(session)),
    )
    .await
    .expect("session stuck for 120 s");
    (run, out, session)
}

/// `ssm_embassy::unconnected`: the source opens the first connection too (signed upgrade,
/// verified TLS), then resumes through the cuts; 200 KB of output byte-exact, exit code 8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconnected_runner_gets_every_connection_from_its_source() {
    const LEN: usize = 200_000;
    let s = setup(Some(60)).await;
    let command = format!("head -c {LEN} /dev/zero | tr '\\0' 'u'; exit 8");
    let response = leak(common::api::start_command(&s.api, s.api_conn, &command).await);
    let api_conn = common::tls_to_localhost(s.port, s.ca).await;
    let mut source = EmulatorSource::new(s.api, api_conn, s.ca);
    let (run, out, session) =
        run_unconnected(response, &mut source, StreamUrls::LoopbackForTests).await;
    assert_eq!(run, Ok(CloseReason::ChannelClosed));
    assert_eq!(out.len(), LEN);
    assert!(out.iter().all(|&b| b == b'u'));
    assert_eq!(session.exit_code(), Some(8));
    let resumes = source.resumes.get();
    assert!(resumes >= 3, "only {resumes} resumes");
}

/// `ssm_embassy::unconnected`'s ends before any data: a StreamUrl the policy refuses is
/// refused before the source is asked for a connection; a first connection that fails ends
/// the runner with its error (no ResumeSession: nothing ran); the handle sees the end at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconnected_runner_ends_on_a_refused_url_or_a_failed_first_connection() {
    let s = setup(None).await;
    let response = leak(common::api::start_command(&s.api, s.api_conn, "echo never").await);
    for (policy, want, opens) in [
        (StreamUrls::Aws, Error::BadStreamUrl, 0),
        (StreamUrls::LoopbackForTests, Error::Connect, 1),
    ] {
        let mut source = failing(Error::Connect);
        let (run, out, _) = run_unconnected(response, &mut source, policy).await;
        assert_eq!(run, Err(want));
        assert!(out.is_empty());
        assert_eq!((source.opens, source.calls), (opens, 0));
    }
}
