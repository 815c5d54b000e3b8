//! A Session Manager session that an STM32F429 (NUCLEO-F429ZI, on-board LAN8742 Ethernet)
//! starts, holds through the service's closes, and reads the exit code of, on its own.
//!
//! Configuration (read at build time, see README.md):
//! - provisioned credentials and what to run, from the build's environment:
//!   `SSM_ACCESS_KEY_ID`, `SSM_SECRET_ACCESS_KEY`, optionally `SSM_SESSION_TOKEN`, `SSM_REGION`
//!   (default `us-east-1`), `SSM_TARGET` (an instance id) and `SSM_COMMAND` (default
//!   `uname -a`). Without credentials the firmware builds, says so over defmt and stops.
//! - `config/root-ca.der`: the root certificate that signs the endpoints' chains (DER): Amazon
//!   Root CA 1, which issues the RSA-2048 intermediates of the `ssm` and `ssmmessages`
//!   endpoints.
//!
//! What it does: DHCP; the clock is learned from the service's `Date` (a request refused for
//! skew is signed again with the corrected clock); `NetApi::start_session` of
//! `AWS-StartNonInteractiveCommand` with the command (TLS 1.3 to `ssm.<region>.amazonaws.com`,
//! chain verified); then `ssm_embassy::unconnected`'s runner with the same `NetApi` as its
//! source: it opens the data channel with a SigV4-signed upgrade, and calls ResumeSession
//! whenever the WebSocket goes (about hourly) and carries on, every connection in one
//! `NetResources`. It logs the output over defmt and the exit
//! code at the end; a session that failed is ended with TerminateSession.
//!
//! RSA: the endpoints' chains are RSA-2048, and embedded-tls's RSA verifier allocates. The heap
//! is a `linked_list_allocator` over a `static` buffer handed over as a `&'static mut` slice
//! (`ConstStaticCell`), so initialising it needs no `unsafe`.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::cell::RefCell;
use core::mem::MaybeUninit;

use defmt::{info, warn};
use embassy_executor::Spawner;
use embassy_futures::join::join;
use embassy_net::StackResources;
use embassy_stm32::eth::{Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::peripherals::{ETH, ETH_SMA};
use embassy_stm32::rng::Rng;
use embassy_stm32::time::Hertz;
use embassy_stm32::{bind_interrupts, eth, peripherals, rng, Config};
use embedded_io_async::Read;
use linked_list_allocator::LockedHeap;
use rand_core::{CryptoRng, RngCore};
use ssm_embassy::api::{Endpoint, StartSessionRequest};
use ssm_embassy::tls::Verification;
use ssm_embassy::{Api, ApiBuffers, Clock, NetApi, NetResources, Resources, StreamUrls};
use ssm_proto::model::{OwnedStartSessionResponse, StartSessionResponse};
use ssm_proto::sigv4::Credentials;
use static_cell::{ConstStaticCell, StaticCell};
use {defmt_rtt as _, panic_probe as _};

/// Provisioned at build time (see the module docs).
const ACCESS_KEY_ID: Option<&str> = option_env!("SSM_ACCESS_KEY_ID");
const SECRET_ACCESS_KEY: Option<&str> = option_env!("SSM_SECRET_ACCESS_KEY");
const SESSION_TOKEN: Option<&str> = option_env!("SSM_SESSION_TOKEN");
const REGION: &str = match option_env!("SSM_REGION") {
    Some(r) => r,
    None => "us-east-1",
};
const TARGET: Option<&str> = option_env!("SSM_TARGET");
const COMMAND: &str = match option_env!("SSM_COMMAND") {
    Some(c) => c,
    None => "uname -a",
};
/// The root CA (DER) the server's chain must lead to.
static ROOT_CA: &[u8] = include_bytes!("../config/root-ca.der");

/// Heap for RSA certificate verification only (nothing else here allocates): twice the
/// high-water mark of an RSA-2048 chain (root -> intermediate -> leaf) plus the RSA-PSS
/// CertificateVerify check, 12 096 bytes on a Cortex-M4 (`../qemu-tests/heap-search.sh`;
/// 11 313 on x86_64, `adapters/embassy/tests/heap.rs`, which fails below twice that).
const HEAP_SIZE: usize = 24 * 1024;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();
static HEAP_MEMORY: ConstStaticCell<[MaybeUninit<u8>; HEAP_SIZE]> =
    ConstStaticCell::new([MaybeUninit::uninit(); HEAP_SIZE]);

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    HASH_RNG => rng::InterruptHandler<peripherals::RNG>;
});

type Device = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Device>) -> ! {
    runner.run().await
}

/// The hardware RNG, shared by the API client (its TLS handshakes) and the first connection.
#[derive(Clone, Copy)]
struct RngSource(&'static RefCell<Rng<'static, peripherals::RNG>>);

impl RngCore for RngSource {
    fn next_u32(&mut self) -> u32 {
        self.0.borrow_mut().next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.0.borrow_mut().next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.borrow_mut().fill_bytes(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.borrow_mut().try_fill_bytes(dest)
    }
}

impl CryptoRng for RngSource {}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    HEAP.lock().init_from_slice(HEAP_MEMORY.take());
    let mut config = Config::default();
    {
        use embassy_stm32::rcc::*;
        // 8 MHz from the ST-LINK (bypass) -> 180 MHz system clock.
        config.rcc.hse = Some(Hse {
            freq: Hertz(8_000_000),
            mode: HseMode::Bypass,
        });
        config.rcc.pll_src = PllSource::HSE;
        config.rcc.pll = Some(Pll {
            prediv: PllPreDiv::DIV4,
            mul: PllMul::MUL180,
            divp: Some(PllPDiv::DIV2),
            divq: None,
            divr: None,
        });
        config.rcc.ahb_pre = AHBPrescaler::DIV1;
        config.rcc.apb1_pre = APBPrescaler::DIV4;
        config.rcc.apb2_pre = APBPrescaler::DIV2;
        config.rcc.sys = Sysclk::PLL1_P;
    }
    let p = embassy_stm32::init(config);

    static RNG: StaticCell<RefCell<Rng<'static, peripherals::RNG>>> = StaticCell::new();
    let rng: &'static RefCell<_> = RNG.init(RefCell::new(Rng::new(p.RNG, Irqs)));
    let seed = rng.borrow_mut().next_u64();

    // NUCLEO-F429ZI RMII pins (UM1974).
    let mac_addr = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
    static PACKETS: StaticCell<PacketQueue<4, 4>> = StaticCell::new();
    let device = Ethernet::new(
        PACKETS.init(PacketQueue::<4, 4>::new()),
        p.ETH,
        Irqs,
        p.PA1,
        p.PA7,
        p.PC4,
        p.PC5,
        p.PG13,
        p.PB13,
        p.PG11,
        mac_addr,
        p.ETH_SMA,
        p.PA2,
        p.PC1,
    );

    static STACK: StaticCell<StackResources<4>> = StaticCell::new();
    let (stack, net_runner) = embassy_net::new(
        device,
        embassy_net::Config::dhcpv4(Default::default()),
        STACK.init(StackResources::new()),
        seed,
    );
    spawner.spawn(net_task(net_runner).unwrap());
    stack.wait_config_up().await;
    info!("network up");

    let (Some(access_key_id), Some(secret_access_key), Some(target)) =
        (ACCESS_KEY_ID, SECRET_ACCESS_KEY, TARGET)
    else {
        warn!(
            "built without SSM_ACCESS_KEY_ID, SSM_SECRET_ACCESS_KEY and SSM_TARGET: nothing to do"
        );
        return;
    };
    static HOST: StaticCell<[u8; ssm_proto::api::HOST_CAPACITY]> = StaticCell::new();
    let endpoint = match Endpoint::aws(REGION, HOST.init([0; ssm_proto::api::HOST_CAPACITY])) {
        Ok(e) => e,
        Err(e) => {
            warn!("SSM_REGION: {}", e.as_str());
            return;
        }
    };
    // No RTC set here: the first answer's `Date` sets the clock (and a skew refusal is signed
    // again with it).
    static CLOCK: StaticCell<Clock> = StaticCell::new();
    let api = Api {
        endpoint,
        credentials: Credentials {
            access_key_id,
            secret_access_key,
            session_token: SESSION_TOKEN,
        },
        clock: CLOCK.init(Clock::unknown()),
        stream_urls: StreamUrls::Aws,
    };
    let trust = Verification::Root(ROOT_CA);

    // One NetResources for every connection: the API calls and the data channels.
    static API_NET: StaticCell<NetResources<'static>> = StaticCell::new();
    static API_BUFFERS: StaticCell<ApiBuffers> = StaticCell::new();
    let mut net_api = NetApi::new(
        stack,
        api,
        trust,
        API_NET.init(NetResources::new()),
        API_BUFFERS.init(ApiBuffers::new()),
        RngSource(rng),
    );
    let values = [COMMAND];
    let params = [("command", &values[..])];
    let request = StartSessionRequest {
        target,
        document_name: Some("AWS-StartNonInteractiveCommand"),
        parameters: &params,
        reason: None,
    };
    static GRANT: StaticCell<OwnedStartSessionResponse> = StaticCell::new();
    let grant: &'static OwnedStartSessionResponse = match net_api.start_session(&request).await {
        Ok(g) => GRANT.init(g),
        Err(e) => {
            warn!("StartSession: {}", e.as_str());
            return;
        }
    };
    static RESPONSE: StaticCell<StartSessionResponse<'static>> = StaticCell::new();
    let response: &'static StartSessionResponse<'static> = RESPONSE.init(grant.as_borrowed());
    let session_id = response.session_id();
    info!("session {} started", session_id);

    // No connection of its own: the NetApi opens the data channel (signed upgrade) in the same
    // NetResources as every API call and resume.
    static SESSION: StaticCell<Resources> = StaticCell::new();
    let engine = ssm_proto::session::Config::client(0);
    let seed = RngSource(rng).next_u64();
    let (session, runner) =
        ssm_embassy::unconnected(response, engine, SESSION.init(Resources::new()), seed);
    let output = async {
        let mut session = session;
        let mut buf = [0u8; 256];
        loop {
            match session.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => info!("{=[u8]:a}", buf[..n]),
                Err(e) => {
                    warn!("read: {}", e.as_str());
                    break;
                }
            }
        }
    };
    let (result, ()) = join(runner.run(&mut net_api, StreamUrls::Aws), output).await;
    match result {
        Ok(reason) => info!(
            "session closed: {}; exit code {}; {} resumes",
            reason.as_str(),
            session.exit_code(),
            net_api.resumes()
        ),
        Err(e) => {
            warn!("session failed: {}; ending it", e.as_str());
            if let Err(e) = net_api.terminate_session(session_id).await {
                warn!("TerminateSession: {}", e.as_str());
            }
        }
    }
}
