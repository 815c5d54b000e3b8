//! A Session Manager session from an STM32F429 (NUCLEO-F429ZI, on-board LAN8742 Ethernet).
//!
//! Configuration (read at build time, see README.md):
//! - `config/start-session.json`: a `StartSession` response (`SessionId`, `StreamUrl`,
//!   `TokenValue`), e.g. from `aws ssm start-session --target ... --document-name ...` captured by
//!   a script; tokens expire in minutes, so rebuild and flash right after.
//! - `config/root-ca.der`: the root certificate that signs the endpoint's chain (DER): Amazon
//!   Root CA 1, which issues the RSA-2048 intermediates of the `ssmmessages` endpoints.
//!
//! What it does: DHCP, then `ssm_embassy::connect` (DNS, TCP, TLS 1.3 with the chain verified
//! against the root, WebSocket, OpenDataChannelInput), then it runs `uname -a` style input: it
//! sends one line, logs everything the agent sends back over defmt, and ends the session.
//!
//! RSA: the endpoints' chains are RSA-2048, and embedded-tls's RSA verifier allocates. The heap
//! is a `linked_list_allocator` over a `static` buffer handed over as a `&'static mut` slice
//! (`ConstStaticCell`), so initialising it needs no `unsafe`.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::mem::MaybeUninit;

use defmt::{info, warn};
use embassy_executor::Spawner;
use embassy_net::StackResources;
use embassy_stm32::eth::{Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::peripherals::{ETH, ETH_SMA};
use embassy_stm32::rng::Rng;
use embassy_stm32::time::Hertz;
use embassy_stm32::{bind_interrupts, eth, peripherals, rng, Config};
use embedded_io_async::{Read, Write};
use linked_list_allocator::LockedHeap;
use ssm_embassy::tls::Verification;
use ssm_embassy::{NetResources, NetRunner, Resources};
use ssm_proto::model::StartSessionResponse;
use static_cell::{ConstStaticCell, StaticCell};
use {defmt_rtt as _, panic_probe as _};

/// The StartSession response this build connects with.
static START_SESSION_RESPONSE: &[u8] = include_bytes!("../config/start-session.json");
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

#[embassy_executor::task]
async fn session_task(runner: NetRunner<'static, 4096>) {
    match runner.run().await {
        Ok(reason) => info!("session closed: {}", reason.as_str()),
        Err(e) => warn!("session failed: {}", e.as_str()),
    }
}

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

    static RNG: StaticCell<Rng<'static, peripherals::RNG>> = StaticCell::new();
    let rng = RNG.init(Rng::new(p.RNG, Irqs));
    let seed = rng.next_u64();

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

    static RESPONSE: StaticCell<StartSessionResponse<'static>> = StaticCell::new();
    let response = match StartSessionResponse::parse(START_SESSION_RESPONSE) {
        Ok(r) => RESPONSE.init(r),
        Err(e) => {
            warn!("config/start-session.json: {}", e.as_str());
            return;
        }
    };
    static NET: StaticCell<NetResources<'static>> = StaticCell::new();
    static SESSION: StaticCell<Resources> = StaticCell::new();
    let connected = ssm_embassy::connect(
        stack,
        response,
        Verification::Root(ROOT_CA),
        NET.init(NetResources::new()),
        SESSION.init(Resources::new()),
        rng,
    )
    .await;
    let (mut session, runner) = match connected {
        Ok(c) => c,
        Err(e) => {
            warn!("connect: {}", e.as_str());
            return;
        }
    };
    spawner.spawn(session_task(runner).unwrap());

    session.resize(80, 24);
    if session.write_all(b"uname -a; exit\r").await.is_err() {
        warn!("write failed");
    }
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
    info!("done; exit code {}", session.exit_code());
}
