//! The embassy-net glue: two embassy-net stacks in one process, joined by
//! embassy-net-driver-channel (a virtual Ethernet cable; no root, no OS network). Stack A is the
//! device: `ssm_embassy::connect_to` opens TCP, TLS (verified against the emulator's root) and
//! the WebSocket over it. Stack B accepts the TCP connection and forwards its bytes to the tokio
//! emulator on loopback. A shell session runs end to end across the two stacks.
//!
//! The addresses are from TEST-NET-1 (192.0.2.0/24): they exist only inside this process.
#![cfg(feature = "net")]

mod common;

use embassy_futures::join::join;
use embassy_futures::select::{select, select3, Either};
use embassy_net::tcp::TcpSocket;
use embassy_net::{Ipv4Address, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_driver_channel as channel;
use embassy_net_driver_channel::driver::{HardwareAddress, LinkState};
use embedded_io_async::{Read, Write};
use rand_core::OsRng;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use ssm_embassy::tls::Verification;
use ssm_embassy::{CloseReason, NetResources, Resources, ResumeSource, Session};
use ssm_emulator::{Emulator, EmulatorConfig, StartSession};
use ssm_proto::model::{Endpoints, StartSessionResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::api::{system_clock, CREDS};

const MTU: usize = 1514;
const DEVICE_IP: Ipv4Address = Ipv4Address::new(192, 0, 2, 1);
const GATEWAY_IP: Ipv4Address = Ipv4Address::new(192, 0, 2, 2);

fn leak<T>(t: T) -> &'static mut T {
    Box::leak(Box::new(t))
}

/// One side of the cable: a driver-channel device and its runner halves.
fn nic(
    mac: [u8; 6],
) -> (
    channel::Device<'static, MTU>,
    channel::RxRunner<'static, MTU>,
    channel::TxRunner<'static, MTU>,
) {
    let state = leak(channel::State::<MTU, 8, 8>::new());
    let (runner, device) = channel::new(state, HardwareAddress::Ethernet(mac));
    let (state_runner, rx, tx) = runner.split();
    state_runner.set_link_state(LinkState::Up);
    (device, rx, tx)
}

/// Moves every frame one side sends into the other side's receive queue.
async fn cable(mut from: channel::TxRunner<'static, MTU>, mut to: channel::RxRunner<'static, MTU>) {
    loop {
        let frame = from.tx_buf().await;
        let buf = to.rx_buf().await;
        let n = frame.len();
        buf[..n].copy_from_slice(frame);
        to.rx_done(n);
        from.tx_done();
    }
}

fn stack(
    device: channel::Device<'static, MTU>,
    ip: Ipv4Address,
    seed: u64,
) -> (
    embassy_net::Stack<'static>,
    embassy_net::Runner<'static, channel::Device<'static, MTU>>,
) {
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(ip, 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    embassy_net::new(device, config, leak(StackResources::<4>::new()), seed)
}

/// How the device's side of the TCP connection ended, as the forwarder saw it.
#[derive(Debug, PartialEq)]
enum DeviceEnd {
    /// A FIN: read returned end of stream.
    Closed,
    /// A reset or another error.
    Failed(embassy_net::tcp::Error),
}

/// Splices `socket`'s connection to a new connection to the emulator on loopback, both ways;
/// the emulator's end becomes a FIN to the device. Returns when the device's side ends, saying
/// how, after closing this side.
async fn splice(socket: &mut TcpSocket<'_>, emulator: core::net::SocketAddr) -> DeviceEnd {
    let tcp = tokio::net::TcpStream::connect(emulator).await.unwrap();
    let (mut from_emu, mut to_emu) = tcp.into_split();
    let (mut up, mut down) = ([0u8; 4096], [0u8; 4096]);
    let mut emu_open = true;
    let end = loop {
        let from_emu = async {
            if emu_open {
                from_emu.read(&mut down).await
            } else {
                core::future::pending().await
            }
        };
        // Both reads lose nothing when the other one completes first.
        let ready = select(socket.read(&mut up), from_emu).await;
        match ready {
            Either::First(Ok(0)) => break DeviceEnd::Closed,
            Either::First(Err(e)) => break DeviceEnd::Failed(e),
            Either::First(Ok(n)) => {
                // The emulator may have gone: what the device sends then is dropped.
                let _ = to_emu.write_all(&up[..n]).await;
            }
            Either::Second(Ok(0) | Err(_)) => {
                emu_open = false;
                socket.close();
            }
            Either::Second(Ok(n)) => {
                if socket.write_all(&down[..n]).await.is_err() {
                    emu_open = false;
                }
                let _ = socket.flush().await;
            }
        }
    };
    let _ = to_emu.shutdown().await;
    socket.close();
    let _ = tokio::time::timeout(core::time::Duration::from_secs(1), socket.flush()).await;
    socket.abort();
    let _ = socket.flush().await;
    end
}

/// Stack B: accepts one TCP connection on `port` and splices it to the emulator on loopback.
/// Returns when the device's side ends, saying how.
async fn forwarder(
    stack: embassy_net::Stack<'static>,
    port: u16,
    emulator: core::net::SocketAddr,
) -> DeviceEnd {
    let rx = leak([0u8; 16384]);
    let tx = leak([0u8; 16384]);
    let mut socket = TcpSocket::new(stack, rx, tx);
    socket.accept(port).await.unwrap();
    splice(&mut socket, emulator).await
}

/// Stack B: accepts TCP connections on `port`, two at a time, one after another for ever, each
/// spliced to the emulator; records how the device ended each one.
async fn forward_each(
    stack: embassy_net::Stack<'static>,
    port: u16,
    emulator: core::net::SocketAddr,
    ends: &core::cell::RefCell<Vec<DeviceEnd>>,
) -> core::convert::Infallible {
    let one = || async {
        let rx = leak([0u8; 16384]);
        let tx = leak([0u8; 16384]);
        let mut socket = TcpSocket::new(stack, rx, tx);
        loop {
            socket.accept(port).await.unwrap();
            let end = splice(&mut socket, emulator).await;
            ends.borrow_mut().push(end);
        }
    };
    join(one(), one()).await.0
}

async fn read_until(mut s: Session<'static>, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(needle.len()).any(|w| w == needle) {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "eof before the expected output");
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// The emulator, one shell session on it as the device sees it (by name: the emulator's
/// certificate names `localhost`; the address comes from the device's configuration,
/// `connect_to`), and the emulator's root.
struct Service {
    emu: Emulator,
    response: &'static StartSessionResponse<'static>,
    ca: &'static [u8],
}

async fn service() -> Service {
    let emu = Emulator::start(EmulatorConfig {
        stream_host: Some("localhost".into()),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let target = emu.start_session(&StartSession::shell()).unwrap();
    let ca = root_of(&emu);
    let url = target.stream_url().as_str();
    assert!(
        url.starts_with("wss://localhost:"),
        "unexpected StreamUrl shape"
    );
    let json = serde_json::json!({
        "SessionId": target.session_id(),
        "StreamUrl": url,
        "TokenValue": target.token().expose_secret(),
    })
    .to_string();
    let json: &'static [u8] = Box::leak(json.into_bytes().into_boxed_slice());
    let response =
        leak(StartSessionResponse::parse_with(json, None, Endpoints::DangerousAnyHost).unwrap());
    Service { emu, response, ca }
}

/// The emulator's root certificate (DER).
fn root_of(emu: &Emulator) -> &'static [u8] {
    let ca = CertificateDer::from_pem_slice(emu.ca_pem().as_bytes()).unwrap();
    Box::leak(ca.to_vec().into_boxed_slice())
}

/// Runs `both(stack A, stack B)` with the two stacks joined; fails after 120 s.
async fn two_stacks<F: core::future::Future>(
    both: impl FnOnce(embassy_net::Stack<'static>, embassy_net::Stack<'static>) -> F,
) -> F::Output {
    let (dev_a, rx_a, tx_a) = nic([0x02, 0, 0, 0, 0, 0x01]);
    let (dev_b, rx_b, tx_b) = nic([0x02, 0, 0, 0, 0, 0x02]);
    let (stack_a, mut runner_a) = stack(dev_a, DEVICE_IP, 1);
    let (stack_b, mut runner_b) = stack(dev_b, GATEWAY_IP, 2);
    let network = select3(
        runner_a.run(),
        runner_b.run(),
        join(cable(tx_a, rx_b), cable(tx_b, rx_a)),
    );
    let everything = select(network, both(stack_a, stack_b));
    let outcome = tokio::time::timeout(core::time::Duration::from_secs(120), everything)
        .await
        .expect("stuck for 120 s across the two stacks");
    let Either::Second(outcome) = outcome else {
        panic!("the network stopped first");
    };
    outcome
}

/// Runs `device` on stack A while stack B forwards its one TCP connection to the emulator.
/// Returns how the device's side of that connection ended, as the forwarder saw it, and the
/// device's outcome. Fails when that side has not ended 10 s after `device` returned.
async fn across_two_stacks<F, T>(
    emu: &Emulator,
    device: impl FnOnce(embassy_net::Stack<'static>) -> F,
) -> (DeviceEnd, T)
where
    F: core::future::Future<Output = T>,
{
    let device_done = &tokio::sync::Notify::new();
    two_stacks(|stack_a, stack_b| async move {
        let device = async {
            let result = device(stack_a).await;
            device_done.notify_one();
            result
        };
        let server_side = async {
            let deadline = async {
                device_done.notified().await;
                tokio::time::sleep(core::time::Duration::from_secs(10)).await;
            };
            match select(forwarder(stack_b, emu.addr().port(), emu.addr()), deadline).await {
                Either::First(end) => end,
                Either::Second(()) => {
                    panic!("the device's TCP connection still open 10 s after it was done")
                }
            }
        };
        join(server_side, device).await
    })
    .await
}

#[tokio::test(flavor = "current_thread")]
async fn shell_session_across_two_embassy_net_stacks() {
    let Service { emu, response, ca } = service().await;
    let (end, (run, seen)) = across_two_stacks(&emu, |stack_a| async move {
        let net: &'static mut NetResources<'static> = leak(NetResources::new());
        let resources: &'static mut Resources = leak(Resources::new());
        let (session, runner) = ssm_embassy::connect_to(
            stack_a,
            GATEWAY_IP.into(),
            response,
            Verification::Root(ca),
            net,
            resources,
            OsRng,
        )
        .await
        .unwrap();
        let app = async {
            let mut s = session;
            s.write_all(b"echo emb''net-ok\r").await.unwrap();
            let seen = read_until(session, b"embnet-ok").await;
            s.write_all(b"exit\r").await.unwrap();
            let mut buf = [0u8; 256];
            while s.read(&mut buf).await.unwrap() > 0 {}
            seen
        };
        join(runner.run(), app).await
    })
    .await;
    assert!(seen.windows(9).any(|w| w == b"embnet-ok"));
    assert_eq!(run, Ok(CloseReason::ChannelClosed));
    // The runner closed its TCP connection when the session ended: a FIN, not a reset, and
    // not nothing.
    assert_eq!(end, DeviceEnd::Closed);
}

/// A server the device does not trust gets a reset, and the connection does not stay open.
#[tokio::test(flavor = "current_thread")]
async fn untrusted_server_gets_a_reset() {
    let Service { emu, response, .. } = service().await;
    let other_root: &'static [u8] = Box::leak(common::pki().0.into_boxed_slice());
    let (end, result) = across_two_stacks(&emu, |stack_a| async move {
        let net: &'static mut NetResources<'static> = leak(NetResources::new());
        let resources: &'static mut Resources = leak(Resources::new());
        ssm_embassy::connect_to(
            stack_a,
            GATEWAY_IP.into(),
            response,
            Verification::Root(other_root),
            net,
            resources,
            OsRng,
        )
        .await
        .map(|_| ())
    })
    .await;
    assert_eq!(result, Err(ssm_embassy::Error::Tls));
    assert_eq!(
        end,
        DeviceEnd::Failed(embassy_net::tcp::Error::ConnectionReset)
    );
}

/// The device starts its own session over embassy-net: `connect_api_to` (TCP + TLS verified for
/// `localhost`), `Api::start_session` on it, then the connection closed with a FIN.
#[tokio::test(flavor = "current_thread")]
async fn start_session_through_the_api_across_two_embassy_net_stacks() {
    let Service { emu, ca, .. } = service().await;
    let port = emu.addr().port();
    let (end, session_id) = across_two_stacks(&emu, |stack_a| async move {
        let net: &'static mut NetResources<'static> = leak(NetResources::new());
        let endpoint = ssm_embassy::api::Endpoint {
            host: "localhost",
            port,
            tls: true,
            region: "us-east-1",
        };
        let mut conn = ssm_embassy::connect_api_to(
            stack_a,
            GATEWAY_IP.into(),
            &endpoint,
            Verification::Root(ca),
            net,
            OsRng,
        )
        .await
        .unwrap();
        let clock = system_clock();
        let api = ssm_embassy::Api {
            endpoint,
            credentials: ssm_proto::sigv4::Credentials {
                access_key_id: "AKIDEXAMPLE",
                secret_access_key: "secret",
                session_token: None,
            },
            clock,
            stream_urls: ssm_embassy::StreamUrls::LoopbackForTests,
        };
        let mut buffers = ssm_embassy::ApiBuffers::<4096, 2048>::new();
        let request = ssm_embassy::api::StartSessionRequest {
            target: "i-0emulator",
            ..Default::default()
        };
        let id = api
            .start_session(&mut conn, &request, &mut buffers)
            .await
            .map(|r| r.session_id().to_string());
        conn.close().await;
        id
    })
    .await;
    assert!(session_id.unwrap().starts_with("emulator-"));
    assert_eq!(end, DeviceEnd::Closed);
}

/// The strict emulator (every API call and upgrade signature verified with [`CREDS`]), its
/// StreamUrls naming `localhost`.
async fn strict_emulator() -> Emulator {
    Emulator::start(EmulatorConfig {
        credentials: Some(ssm_emulator::sigv4::Credentials {
            access_key_id: CREDS.access_key_id.into(),
            secret_access_key: CREDS.secret_access_key.into(),
            session_token: None,
        }),
        stream_host: Some("localhost".into()),
        // What the agent resends after a cut stays well under a cut's frame count.
        window: Some(16 * 1024),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// The device's `NetApi` on stack A for the emulator at `localhost:port`, reached through
/// the gateway, verified against `ca`.
fn net_api(
    stack_a: embassy_net::Stack<'static>,
    port: u16,
    ca: &'static [u8],
) -> ssm_embassy::NetApi<'static, OsRng> {
    let api = ssm_embassy::Api {
        endpoint: ssm_embassy::api::Endpoint {
            host: "localhost",
            port,
            tls: true,
            region: "us-east-1",
        },
        credentials: CREDS,
        clock: system_clock(),
        stream_urls: ssm_embassy::StreamUrls::LoopbackForTests,
    };
    ssm_embassy::NetApi::new(
        stack_a,
        api,
        Verification::Root(ca),
        leak(NetResources::<4096, 4096>::new()),
        leak(ssm_embassy::ApiBuffers::<4096, 2048>::new()),
        OsRng,
    )
    .via(GATEWAY_IP.into())
}

/// How the device opens a session's first data channel.
#[derive(Clone, Copy, PartialEq)]
enum First {
    /// `ssm_embassy::unconnected`: the `NetApi` opens it in its own memory, as every other.
    FromTheSource,
    /// `connect_with` in a `NetResources` of its own, then `NetRunner::run_resuming`.
    OwnResources,
}

/// What [`resume_through_cuts`] saw.
struct Resumes {
    run: Result<CloseReason, ssm_embassy::Error>,
    out: Vec<u8>,
    code: Option<i32>,
    resumes: u32,
    terminated: Result<(), ssm_embassy::Error>,
    resumed: Result<(), ssm_embassy::Error>,
    ends: Vec<DeviceEnd>,
}

/// The device holds its own session through the service's drops, over embassy-net: it starts
/// `each_way`'s command with `NetApi::start_session`, opens the data channel with a signed
/// upgrade (as `first` says), and the runner, with the same `NetApi` as its source, reconnects
/// each time the strict emulator cuts the data channel (every `cut_after` frames):
/// ResumeSession on a fresh TLS connection to the API, then TCP + TLS to the answer's
/// StreamUrl, on the same socket and buffers each time. Then TerminateSession, and a resume of
/// the ended session.
async fn resume_through_cuts(first: First, each_way: &common::EachWay, cut_after: u64) -> Resumes {
    let emu = strict_emulator().await;
    emu.set_faults(Some(ssm_tokio::Faults {
        seed: 11,
        cut_after: Some(cut_after),
        ..ssm_tokio::Faults::default()
    }));
    let (port, addr, ca) = (emu.addr().port(), emu.addr(), root_of(&emu));
    let ends = &core::cell::RefCell::new(Vec::new());
    // The pause lets the output arrive before the command ends: an agent that ends while the
    // device is away ends the session (ResumeSession then says so, as AWS's would).
    let (up, command) = (&each_way.up[..], &each_way.command("sleep 3; exit 7"));
    let mut seen = two_stacks(|stack_a, stack_b| async move {
        let device = async {
            let mut api = net_api(stack_a, port, ca);
            let values = [command.as_str()];
            let params = [("command", &values[..])];
            let request = ssm_embassy::api::StartSessionRequest {
                target: "i-0emulator",
                document_name: Some("AWS-StartNonInteractiveCommand"),
                parameters: &params,
                reason: None,
            };
            let grant = leak(api.start_session(&request).await.unwrap());
            let response = leak(grant.as_borrowed());
            let resources = leak(Resources::<2048, 4096, 4096>::new());
            let policy = ssm_embassy::StreamUrls::LoopbackForTests;
            let app = |session: Session<'static>| async move {
                let read = async {
                    let mut out = Vec::new();
                    let mut buf = [0u8; 2048];
                    let mut s = session;
                    while let Ok(n @ 1..) = s.read(&mut buf).await {
                        out.extend_from_slice(&buf[..n]);
                    }
                    out
                };
                let write = async {
                    let mut s = session;
                    s.write_all(up).await.expect("input written");
                };
                join(read, write).await.0
            };
            let (run, out, session) = match first {
                First::FromTheSource => {
                    let engine = ssm_proto::session::Config::client(0);
                    let (session, runner) =
                        ssm_embassy::unconnected(response, engine, resources, 0x5eed);
                    let (run, out) = join(runner.run(&mut api, policy), app(session)).await;
                    (run, out, session)
                }
                First::OwnResources => {
                    let signed = leak(api.api().sign_upgrade(&response.stream_url()).unwrap());
                    let (headers, n) = signed.headers();
                    let headers: &'static [(&'static str, &'static str)] =
                        Box::leak(Box::new(headers));
                    let mut config = ssm_embassy::Config::from_response(response);
                    config.headers = &headers[..n];
                    let (session, runner) = ssm_embassy::connect_with(
                        stack_a,
                        GATEWAY_IP.into(),
                        config,
                        Verification::Root(ca),
                        leak(NetResources::<4096, 4096>::new()),
                        resources,
                        OsRng,
                    )
                    .await
                    .unwrap();
                    let id = response.session_id();
                    let running = runner.run_resuming(id, &mut api, policy);
                    let (run, out) = join(running, app(session)).await;
                    (run, out, session)
                }
            };
            let code = session.exit_code();
            let resumes = api.resumes();
            let id = response.session_id();
            let terminated = api.terminate_session(id).await;
            let resumed = ResumeSource::resume(&mut api, id).await.map(|_| ());
            // Give the forwarder the device's last FIN.
            let want = 2 + 2 * resumes as usize + 2;
            for _ in 0..100 {
                if ends.borrow().len() >= want {
                    break;
                }
                tokio::time::sleep(core::time::Duration::from_millis(100)).await;
            }
            Resumes {
                run,
                out,
                code,
                resumes,
                terminated,
                resumed,
                ends: Vec::new(),
            }
        };
        match select(forward_each(stack_b, port, addr, ends), device).await {
            Either::First(never) => match never {},
            Either::Second(outcome) => outcome,
        }
    })
    .await;
    seen.ends = ends.take();
    seen
}

/// What every run of [`resume_through_cuts`] must show: the data both ways with the SHA-256 it
/// was sent with and the exit code, at least three resumes, the session terminated and its
/// resume refused, and every TCP connection the device opened ended by it with a FIN: the API
/// connection of StartSession, the first data channel, then for each resume one to the API and
/// one data channel, the TerminateSession call's and the refused resume's.
fn check_resumes(seen: &Resumes, each_way: &common::EachWay) {
    assert_eq!(seen.run, Ok(CloseReason::ChannelClosed));
    assert_eq!(seen.code, Some(7));
    each_way.check(&seen.out);
    let resumes = seen.resumes;
    assert!(resumes >= 3, "only {resumes} resumes");
    assert_eq!(seen.terminated, Ok(()));
    assert_refused_resume(seen.resumed);
    let ends = &seen.ends;
    assert_eq!(ends.len(), 2 + 2 * resumes as usize + 2, "{ends:?}");
    assert!(ends.iter().all(|e| *e == DeviceEnd::Closed), "{ends:?}");
}

/// A megabyte each way (about 2 600 frames with the acks, and what is resent after each cut; a
/// cut every 400 frames) in one set of network memory: `ssm_embassy::unconnected` with the
/// `NetApi` opening the first data channel too.
#[tokio::test(flavor = "current_thread")]
async fn a_megabyte_each_way_resumes_through_cuts_in_one_set_of_network_memory() {
    let each_way = common::EachWay::new("ssm-embassy-net");
    let seen = resume_through_cuts(First::FromTheSource, &each_way, 400).await;
    check_resumes(&seen, &each_way);
}

/// The first data channel in its own `NetResources` (`connect_with`), resumed through
/// `NetRunner::run_resuming`, which closes it before the first resume: 200 KB each way, a cut
/// every 100 frames.
#[tokio::test(flavor = "current_thread")]
async fn a_session_connected_in_its_own_memory_resumes_through_cuts() {
    let each_way = common::EachWay::with_len("ssm-embassy-net-own", 200_000);
    let seen = resume_through_cuts(First::OwnResources, &each_way, 100).await;
    check_resumes(&seen, &each_way);
}

/// A resume of an ended session is refused: the emulator's typed refusal, or the answer
/// without a token that AWS gives for ended sessions.
fn assert_refused_resume(resumed: Result<(), ssm_embassy::Error>) {
    match resumed {
        Err(ssm_embassy::Error::Api(ssm_proto::api::Error::Service(s))) => {
            assert_eq!(
                s.kind,
                ssm_embassy::api::ServiceErrorKind::DoesNotExist,
                "{s:?}"
            );
        }
        Err(ssm_embassy::Error::Api(ssm_proto::api::Error::SessionEnded)) => {}
        other => panic!("{other:?}"),
    }
}

/// `NetApi`'s three calls across the two stacks against the strict emulator: a shell started,
/// terminated, and then refused a resume (the emulator's typed refusal, or the answer without a
/// token that AWS gives for ended sessions); a `NetApi` with a wrong secret is refused at once
/// (403, not retried as clock skew).
#[tokio::test(flavor = "current_thread")]
async fn net_api_starts_terminates_and_is_refused_the_resume_of_a_shell() {
    let emu = strict_emulator().await;
    let (port, addr, ca) = (emu.addr().port(), emu.addr(), root_of(&emu));
    let ends = &core::cell::RefCell::new(Vec::new());
    let (id, terminated, resumed, wrong) = two_stacks(|stack_a, stack_b| async move {
        let device = async {
            let mut api = net_api(stack_a, port, ca);
            let request = ssm_embassy::api::StartSessionRequest {
                target: "i-0emulator",
                ..Default::default()
            };
            let grant = api.start_session(&request).await.unwrap();
            let id = grant.session_id().to_string();
            let terminated = api.terminate_session(&id).await;
            let resumed = ResumeSource::resume(&mut api, &id).await.map(|_| ());
            let mut wrong = net_api(stack_a, port, ca);
            wrong.set_credentials(ssm_proto::sigv4::Credentials {
                secret_access_key: "not-the-secret",
                ..CREDS
            });
            let wrong = wrong.start_session(&request).await.map(|_| ());
            (id, terminated, resumed, wrong)
        };
        match select(forward_each(stack_b, port, addr, ends), device).await {
            Either::First(never) => match never {},
            Either::Second(outcome) => outcome,
        }
    })
    .await;
    assert!(id.starts_with("emulator-"), "{id}");
    assert_eq!(terminated, Ok(()));
    assert_refused_resume(resumed);
    match wrong {
        Err(ssm_embassy::Error::Api(ssm_proto::api::Error::Service(s))) => {
            assert_eq!(s.status, 403, "{s:?}");
        }
        other => panic!("{other:?}"),
    }
}
