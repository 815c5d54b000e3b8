//! Basic mode: one connection at a time, DisconnectToPort between them.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Listener, Stats, LOCAL_READ};

/// The client side of basic port forwarding: one local connection at a time, bridged straight
/// onto the session stream; when it ends, `disconnect` sends the DisconnectToPort flag and the
/// next connection is accepted. Data arriving while no connection is open is dropped (the agent
/// has nowhere to put it either).
///
/// # Errors
/// Reading or writing the session failed, or `disconnect` did.
pub async fn forward_basic<T, D>(
    io: T,
    listener: Listener,
    mut disconnect: D,
    stats: Arc<Stats>,
) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
    D: FnMut() -> io::Result<()>,
{
    use std::sync::atomic::Ordering::Relaxed;
    let (mut sr, mut sw) = tokio::io::split(io);
    let mut buf = vec![0u8; LOCAL_READ];
    let mut sbuf = vec![0u8; LOCAL_READ];
    loop {
        // Between connections: drain (and drop) session data, wait for the next one.
        let local = loop {
            tokio::select! {
                c = listener.accept() => match c {
                    Ok(c) => break c,
                    Err(_) => continue,
                },
                r = sr.read(&mut sbuf) => match r? {
                    0 => return Ok(()),
                    _ => continue,
                },
            }
        };
        stats.connections.fetch_add(1, Relaxed);
        stats.active.fetch_add(1, Relaxed);
        let (mut lr, mut lw) = tokio::io::split(local);
        let ended = loop {
            tokio::select! {
                r = lr.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break false,
                    Ok(n) => {
                        sw.write_all(&buf[..n]).await?;
                        sw.flush().await?;
                        stats.bytes_out.fetch_add(n as u64, Relaxed);
                    }
                },
                r = sr.read(&mut sbuf) => match r? {
                    0 => break true,
                    n => {
                        if lw.write_all(&sbuf[..n]).await.is_err() {
                            break false;
                        }
                        stats.bytes_in.fetch_add(n as u64, Relaxed);
                    }
                },
            }
        };
        let _ = lw.shutdown().await;
        if !ended {
            disconnect()?;
        }
        stats.active.fetch_sub(1, Relaxed);
        if ended {
            return Ok(());
        }
    }
}

/// The `disconnect` callback for [`forward_basic`] over a [`crate::Control`]: sends the
/// DisconnectToPort flag.
pub fn disconnect_flag(control: crate::Control) -> impl FnMut() -> io::Result<()> {
    move || {
        if control.send_flag(ssm_proto::payload::Flag::DisconnectToPort) {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "session ended"))
        }
    }
}
