//! Helpers shared by the tests: a TCP echo server, payloads, an echo round trip, a command
//! session read to its end.
#![allow(dead_code, reason = "each test file uses a subset")]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A TCP echo server (echoes until EOF, then closes); returns its address.
pub async fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Waits for every task (a panic in one fails the test), at most 60 s.
pub async fn join_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    tokio::time::timeout(Duration::from_secs(60), async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await
    .expect("connections timed out");
}

/// A payload distinct per connection `i`.
pub fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (k * 31 + i * 7 + k / 253) as u8).collect()
}

/// Writes `data`, half-closes, reads everything back.
pub async fn echo_round<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: S,
    data: &[u8],
) -> Vec<u8> {
    let (mut r, mut w) = tokio::io::split(s);
    let write = async {
        w.write_all(data).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let read = async {
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        got
    };
    tokio::join!(write, read).1
}

/// Reads a command session's stdout and stderr to their ends (60 s at most) and waits for its
/// outcome.
pub async fn command_to_end(s: ssm_tokio::ClientSession) -> (String, String, ssm_tokio::Outcome) {
    let t = Duration::from_secs(60);
    let (mut out, mut err, _inp, _ev, _c, fin) = s.into_parts();
    let (o, e) = tokio::time::timeout(t, async {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let (a, b) = tokio::join!(out.read_to_end(&mut o), err.read_to_end(&mut e));
        a.unwrap();
        b.unwrap();
        (o, e)
    })
    .await
    .expect("streams end");
    let outcome = tokio::time::timeout(t, fin.wait())
        .await
        .expect("ends")
        .expect("ok");
    (
        String::from_utf8_lossy(&o).into_owned(),
        String::from_utf8_lossy(&e).into_owned(),
        outcome,
    )
}
