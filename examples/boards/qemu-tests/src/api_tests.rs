//! The device's StartSession round trip on the Cortex-M4: the host's recording against the
//! strict emulator (`adapters/embassy/tests/api_replay.rs`) replayed through `ssm_embassy`'s
//! TLS and API client, with every check of `api_replay::check_all` (the recorded bytes sent
//! again and the recorded answer parsed; an off-AWS StreamUrl refused; a request signed a
//! second later diverging; a forged answer record refused). Also measures the polls' stack,
//! which must fit the board example's (`stack::BOARD_STACK`).

use core::pin::pin;

use ssm_embassy::{ApiBuffers, Clock, StreamUrls};
use static_cell::ConstStaticCell;

use crate::api_replay::{self, Buffers, Meta};
use crate::check;
use crate::harness::{Test, TestResult};
use crate::stack;

static SERVER: &[u8] = include_bytes!(concat!(
    "../../../../adapters/embassy/tests/data/api/",
    "start-session-server.bin"
));
static CLIENT: &[u8] = include_bytes!(concat!(
    "../../../../adapters/embassy/tests/data/api/",
    "start-session-client.bin"
));
static ROOT: &[u8] = include_bytes!(concat!(
    "../../../../adapters/embassy/tests/data/api/",
    "root.der"
));
static META: &str = include_str!(concat!(
    "../../../../adapters/embassy/tests/data/api/",
    "start-session.txt"
));
const SERVER_LEN: usize = include_bytes!(concat!(
    "../../../../adapters/embassy/tests/data/api/",
    "start-session-server.bin"
))
.len();

/// The tests in this module.
pub static TESTS: &[Test] = &[Test {
    name: "start_session_round_trip_replays",
    run: start_session_round_trip_replays,
}];

fn start_session_round_trip_replays() -> TestResult {
    static RX: ConstStaticCell<[u8; 16640]> = ConstStaticCell::new([0; 16640]);
    static TX: ConstStaticCell<[u8; 4096]> = ConstStaticCell::new([0; 4096]);
    static API: ConstStaticCell<ApiBuffers> = ConstStaticCell::new(ApiBuffers::new());
    static FORGED: ConstStaticCell<[u8; SERVER_LEN]> = ConstStaticCell::new([0; SERVER_LEN]);
    let mut bufs = Buffers {
        rx: RX.take(),
        tx: TX.take(),
        api: API.take(),
    };
    let meta = Meta(META);
    let t = meta.unix_secs().unwrap_or(0);
    // Once alone, measured: the device's StartSession call as the board makes it.
    let (r, used) = {
        let call = pin!(api_replay::replay(
            SERVER,
            CLIENT,
            ROOT,
            &meta,
            || Clock::from_unix_secs(t),
            StreamUrls::LoopbackForTests,
            &mut bufs,
        ));
        stack::measure_polls(
            "StartSession round trip (TLS 1.3 handshake to a P-256 chain, signed request, answer)",
            call,
        )
    };
    check!(r.1, "the client sent less than the recording");
    check!(r.0.is_ok_and(|a| api_replay::is_recorded(&a, &meta)));
    check!(stack::fits_board(used));
    // Then every check, the forgeries too.
    let checks = pin!(api_replay::check_all(
        SERVER,
        CLIENT,
        ROOT,
        &meta,
        Clock::from_unix_secs,
        &mut bufs,
        FORGED.take(),
    ));
    if let Err(why) = embassy_futures::block_on(checks) {
        check!(false, why);
    }
    Ok(())
}
