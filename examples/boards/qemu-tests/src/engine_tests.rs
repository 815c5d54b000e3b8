//! The session engine on the device: a client and an agent joined in memory (no network), through
//! the handshake, data both ways, resize, an exit code and the close; and the same over a lossy
//! link where the retransmission timers must recover every message.

use ssm_proto::payload::SessionType;
use ssm_proto::session::{
    AgentHandshake, CloseReason, Config, Event, Incoming, Session, Stream, TransmitKind,
};
use ssm_proto::Instant;

use crate::check;
use crate::harness::{Test, TestResult};

/// Device-sized capacities: 8 KiB window, 16 messages in flight, 4 held out of order, 2 KiB
/// receive buffer, 16 queued control frames.
type Small = Session<8192, 16, 4, 2048, 16>;

const TOKEN: &str = "device-token";
/// Larger than one engine message (1 KiB) and than the 8 KiB window.
const DATA_LEN: usize = 20_000;

/// The tests in this module.
pub static TESTS: &[Test] = &[
    Test {
        name: "in_memory_session_handshake_data_exit_code",
        run: in_memory_session,
    },
    Test {
        name: "lossy_link_recovers_every_message",
        run: lossy_link,
    },
];

fn byte(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 7)) as u8
}

/// Moves every pending message from one side to the other, dropping those `drop` selects.
/// Returns how many were moved.
fn pump(from: &mut Small, to: &mut Small, now: Instant, drop: &mut impl FnMut() -> bool) -> usize {
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while let Ok(Some(t)) = from.poll_transmit(now, &mut buf) {
        n += 1;
        if drop() {
            continue;
        }
        let input = match t.kind {
            TransmitKind::Text => Incoming::Text(&buf[..t.len]),
            TransmitKind::Binary => Incoming::Binary(&buf[..t.len]),
        };
        let _ = to.handle_input(now, input);
    }
    n
}

struct Outcome {
    agent_got: usize,
    agent_bad: usize,
    client_got: usize,
    client_bad: usize,
    exit: Option<i32>,
    closed: Option<CloseReason>,
    token_ok: bool,
    resized: bool,
}

/// Runs a whole NonInteractiveCommands session: the client sends DATA_LEN bytes, the agent
/// sends DATA_LEN bytes, then exit code 3 and channel_closed.
fn run(client: &mut Small, agent: &mut Small, mut drop: impl FnMut() -> bool) -> Outcome {
    let mut o = Outcome {
        agent_got: 0,
        agent_bad: 0,
        client_got: 0,
        client_bad: 0,
        exit: None,
        closed: None,
        token_ok: false,
        resized: false,
    };
    let mut now = 0u64;
    let (mut c_sent, mut a_sent) = (0usize, 0usize);
    let mut exit_sent = false;
    let mut buf = [0u8; 1500];
    agent.handle_connected(Instant::from_millis(0), "").ok();
    client.handle_connected(Instant::from_millis(0), TOKEN).ok();
    client.resize(80, 24);
    // Virtual time: 10 ms per round; 60 s of it at most.
    for _ in 0..6000 {
        let t = Instant::from_millis(now);
        client.handle_timeout(t);
        agent.handle_timeout(t);
        if c_sent < DATA_LEN {
            let end = (c_sent + 700).min(DATA_LEN);
            let mut chunk = [0u8; 700];
            for (k, b) in chunk[..end - c_sent].iter_mut().enumerate() {
                *b = byte(c_sent + k);
            }
            if let Ok(n) = client.write(t, &chunk[..end - c_sent]) {
                c_sent += n;
            }
        }
        if o.token_ok && a_sent < DATA_LEN {
            let end = (a_sent + 900).min(DATA_LEN);
            let mut chunk = [0u8; 900];
            for (k, b) in chunk[..end - a_sent].iter_mut().enumerate() {
                *b = byte(a_sent + k) ^ 0x5a;
            }
            if let Ok(n) = agent.write(t, &chunk[..end - a_sent]) {
                a_sent += n;
            }
        }
        if a_sent == DATA_LEN && o.agent_got == DATA_LEN && !exit_sent && agent.unacked_bytes() == 0
        {
            exit_sent = agent.send_exit_code(t, 3).is_ok();
            agent.close_channel(t, "done");
        }
        pump(client, agent, t, &mut drop);
        pump(agent, client, t, &mut drop);
        while let Some(ev) = agent.poll_event() {
            match ev {
                Event::Opened => o.token_ok = agent.peer_token() == Some(TOKEN),
                Event::Resized { cols: 80, rows: 24 } => o.resized = true,
                _ => {}
            }
        }
        while let Some((_, n)) = agent.read(&mut buf) {
            for (k, b) in buf[..n].iter().enumerate() {
                if *b != byte(o.agent_got + k) {
                    o.agent_bad += 1;
                }
            }
            o.agent_got += n;
        }
        while let Some(ev) = client.poll_event() {
            match ev {
                Event::ExitCode(c) => o.exit = Some(c),
                Event::Closed(r) => o.closed = Some(r),
                _ => {}
            }
        }
        while let Some((stream, n)) = client.read(&mut buf) {
            for (k, b) in buf[..n].iter().enumerate() {
                if stream != Stream::Output || *b != byte(o.client_got + k) ^ 0x5a {
                    o.client_bad += 1;
                }
            }
            o.client_got += n;
        }
        if o.closed.is_some() {
            break;
        }
        now += 10;
    }
    o
}

fn handshake() -> AgentHandshake<'static> {
    AgentHandshake {
        agent_version: "3.3.0.0",
        session_type: SessionType::NonInteractiveCommands,
        properties: r#"{"linux":{"commands":"test","separateOutputStream":true}}"#,
        kms_key_id: None,
        customer_message: "",
    }
}

fn check_outcome(o: &Outcome) -> TestResult {
    check!(o.token_ok);
    check!(o.resized);
    check!(o.agent_got == DATA_LEN);
    check!(o.agent_bad == 0);
    check!(o.client_got == DATA_LEN);
    check!(o.client_bad == 0);
    check!(o.exit == Some(3));
    check!(o.closed == Some(CloseReason::ChannelClosed));
    Ok(())
}

fn in_memory_session() -> TestResult {
    let mut client = Small::new(Config::client(11), Instant::from_millis(0));
    let mut agent = Small::new(Config::agent(12, handshake()), Instant::from_millis(0));
    let o = run(&mut client, &mut agent, || false);
    check_outcome(&o)?;
    check!(client.stats().retransmits == 0);
    Ok(())
}

fn lossy_link() -> TestResult {
    let mut client = Small::new(Config::client(21), Instant::from_millis(0));
    let mut agent = Small::new(Config::agent(22, handshake()), Instant::from_millis(0));
    // Drops one message in seven, in both directions (a fixed pattern: reproducible).
    let mut k = 0u32;
    let o = run(&mut client, &mut agent, || {
        k += 1;
        k % 7 == 3
    });
    check_outcome(&o)?;
    check!(client.stats().retransmits + agent.stats().retransmits > 0);
    Ok(())
}
