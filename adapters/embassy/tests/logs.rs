//! The token never reaches the log: a whole session (TLS, upgrade, OpenDataChannelInput with
//! the token, handshake, output, exit code, close) runs with every `log` record captured at
//! trace level (ssm-embassy, ssm-proto and embedded-tls all log through the `log` feature), and
//! the capture is searched for the token and for any 8-byte piece of it. The `Debug` forms of
//! what holds the token are searched too. (`defmt` goes through the same `fmt.rs` macros with
//! the same arguments, so this covers its call sites as well.)
#![cfg(all(feature = "tls", feature = "log"))]

mod common;

use common::{capture, pki, spawn_agent, with_session, Mode};
use embedded_io_async::Read;
use ssm_embassy::CloseReason;

/// A token no other text contains by chance.
const TOKEN: &str = "tok-CANARY-5f1e9a7c3b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f";

fn leaks(text: &str) -> Vec<&'static str> {
    capture::leaks(TOKEN, text)
}

#[tokio::test(flavor = "current_thread")]
async fn the_token_never_reaches_the_log() {
    capture::install();

    let (ca, server) = pki();
    let mode = Mode::Command {
        output: b"logged session output\n".to_vec(),
        exit_code: 7,
    };
    let (port, agent) = spawn_agent(server, TOKEN, mode).await;
    let (run, (out, code, debug)) = with_session(&ca, port, TOKEN, |session| async move {
        let mut s = session;
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let debug = format!("{session:?} {:?}", session.error());
        (out, session.exit_code(), debug)
    })
    .await;
    assert_eq!(run, Ok(CloseReason::ChannelClosed));
    assert_eq!(out, b"logged session output\n");
    assert_eq!(code, Some(7));
    let report = agent.await.unwrap();
    assert!(report.token_ok, "the agent did not get the token");

    let logs = capture::logs();
    // The capture saw the session (else the search below proves nothing): the adapter's,
    // the engine's and the TLS layer's records.
    for expected in ["websocket open", "ssm_proto", "embedded_tls"] {
        assert!(
            logs.contains(expected),
            "no {expected:?} in the log:\n{logs}"
        );
    }
    assert_eq!(
        leaks(&logs),
        Vec::<&str>::new(),
        "the token in the log:\n{logs}"
    );

    let config = ssm_embassy::Config {
        host: "localhost",
        port,
        tls: true,
        path_and_query: common::PATH,
        token: TOKEN,
        headers: &[],
        session: ssm_proto::session::Config::client(0),
    };
    let debug = format!("{debug} {config:?}");
    assert_eq!(
        leaks(&debug),
        Vec::<&str>::new(),
        "the token in Debug: {debug}"
    );
}

#[test]
fn the_search_finds_a_piece_of_the_token() {
    assert_eq!(leaks("…9a7c3b2d…"), ["9a7c3b2d"]);
    assert!(leaks(TOKEN).len() == TOKEN.len() - 7);
    assert!(leaks("tok-CANARY").len() == 3);
    assert!(leaks("unrelated text").is_empty());
}
