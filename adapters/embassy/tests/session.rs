//! The adapter end to end on the host: embedded-tls (verifying a throwaway root) over a real
//! loopback TCP socket, the WebSocket upgrade, the session handshake, shell echo, 1 MB each way,
//! an exit code, terminate. The agent is `ssm_proto::session` in the agent role behind rustls
//! (tests/common). The adapter's futures are polled by tokio here; embassy-time's std driver
//! provides its timers.
#![cfg(feature = "tls")]

mod common;

use common::{pki, spawn_agent, with_session, Mode};
use embassy_futures::join::join;
use embedded_io_adapters::tokio_1::FromTokio;
use embedded_io_async::{Read, Write};
use rand_core::OsRng;
use sha2::{Digest, Sha256};
use ssm_embassy::duplex::{Duplex, DuplexState};
use ssm_embassy::tls::{self, Options, Verification};
use ssm_embassy::{CloseReason, Session};
use tokio::net::TcpStream;

const TOKEN: &str = "test-token-never-logged";

async fn read_exact_len(mut s: Session<'static>, len: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    let mut buf = [0u8; 1500];
    while got.len() < len {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "eof after {} of {len} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[tokio::test(flavor = "current_thread")]
async fn shell_echo_and_a_megabyte_each_way_then_terminate() {
    let (ca, server) = pki();
    let (port, agent) = spawn_agent(server, TOKEN, Mode::Echo).await;

    let big: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big2 = big.clone();

    let (run, (echo, back)) = with_session(&ca, port, TOKEN, |session| async move {
        let mut s = session;
        s.resize(120, 40);
        s.write_all(b"echo hello\r").await.unwrap();
        let echo = read_exact_len(session, 11).await;
        assert!(session.is_established());

        // 1 MB out while reading the 1 MB echo back.
        let mut w = session;
        let len = big2.len();
        let (_, back) = join(
            async move {
                w.write_all(&big2).await.unwrap();
                w.flush().await.unwrap();
            },
            read_exact_len(session, len),
        )
        .await;
        session.terminate();
        // Drain to the end of the session.
        let mut tail = [0u8; 64];
        while s.read(&mut tail).await.unwrap() > 0 {}
        (echo, back)
    })
    .await;

    assert_eq!(echo, b"echo hello\r");
    assert_eq!(back.len(), big.len());
    assert!(back == big, "echoed megabyte differs");
    assert_eq!(run, Ok(CloseReason::Terminated));

    let report = agent.await.unwrap();
    assert!(report.token_ok, "agent did not get the token");
    assert_eq!(report.path, common::PATH);
    assert_eq!(report.received, 11 + big.len());
    let mut h = Sha256::new();
    h.update(b"echo hello\r");
    h.update(&big);
    assert_eq!(report.received_sha256, <[u8; 32]>::from(h.finalize()));
    assert_eq!(report.sizes.first(), Some(&(120, 40)));
    assert!(report.terminated);
}

#[tokio::test(flavor = "current_thread")]
async fn command_output_then_exit_code() {
    let (ca, server) = pki();
    let output: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    let expected = output.clone();
    let (port, agent) = spawn_agent(
        server,
        TOKEN,
        Mode::Command {
            output,
            exit_code: 3,
        },
    )
    .await;
    let (run, (got, code)) = with_session(&ca, port, TOKEN, |session| async move {
        let mut s = session;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        (got, session.exit_code())
    })
    .await;
    assert_eq!(run, Ok(CloseReason::ChannelClosed));
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "command output differs");
    assert_eq!(code, Some(3));
    assert!(agent.await.unwrap().token_ok);
}

#[tokio::test(flavor = "current_thread")]
async fn wrong_root_fails_before_any_byte_of_the_session() {
    let (_, server) = pki();
    let (other_ca, _) = pki();
    let (port, _agent) = spawn_agent(server, TOKEN, Mode::Echo).await;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (r, w) = tcp.into_split();
    let duplex = DuplexState::new(FromTokio::new(r), FromTokio::new(w));
    let mut rx = vec![0u8; 16640];
    let mut tx = vec![0u8; 4096];
    let options = Options {
        server_name: "localhost",
        verification: Verification::Root(&other_ca),
    };
    let r = tls::connect(Duplex::new(&duplex), &mut rx, &mut tx, options, OsRng).await;
    assert!(r.is_err());
}
