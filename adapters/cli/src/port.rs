//! Port sessions in the CLI: where to listen, the "Port N opened" line, `--stats`.
//!
//! The protocol side (smux or basic, by the handshake's versions; stdin/stdout without
//! `LocalPortForwarding`) is `ssm_tokio::forward`'s: this module only picks the listener and
//! reports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ssm_proto::payload::PortProperties;
use ssm_tokio::forward::{ListenAddr, Listener, Stats};

use crate::exit::{Failure, Kind, Result};

/// Options of port-forwarding sessions, shared by `demo` and `start`.
#[derive(Debug, Clone, Args)]
pub struct PortArgs {
    /// Port sessions: the local address to listen on (IPv4 or IPv6, e.g. `::1` or `0.0.0.0`).
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// Port sessions: the local port (0 picks a free one and prints it); overrides the
    /// document's `localPortNumber`. Bound before the session starts: a port in use fails at once.
    #[arg(long, value_name = "N")]
    pub local_port: Option<u16>,
    /// Port sessions: listen on this unix socket instead of a TCP port (it must not exist).
    #[arg(long, value_name = "PATH", conflicts_with = "local_port")]
    pub unix_socket: Option<PathBuf>,
    /// Port sessions: print live counters on stderr once a second (connections, bytes and rate
    /// each way).
    #[arg(long)]
    pub stats: bool,
}

impl Default for PortArgs {
    fn default() -> Self {
        PortArgs {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            local_port: None,
            unix_socket: None,
            stats: false,
        }
    }
}

/// Port options of one run, with the listener once bound.
#[derive(Debug, Default)]
pub struct PortOptions {
    /// What the user asked for.
    pub args: PortArgs,
    /// Bound early (an explicit `--local-port` / `--unix-socket`), so a busy port fails before
    /// the session starts.
    pub listener: Option<Listener>,
}

impl PortOptions {
    /// Binds now if the user named the port or socket.
    ///
    /// # Errors
    /// A one-line [`Kind::Usage`] failure, e.g. "address 127.0.0.1:8080 is already in use".
    pub async fn prebind(args: PortArgs) -> Result<PortOptions> {
        let listener = match (&args.unix_socket, args.local_port) {
            (Some(p), _) => Some(bind(&ListenAddr::Unix(p.clone())).await?),
            (None, Some(port)) => {
                Some(bind(&ListenAddr::Tcp(SocketAddr::new(args.bind, port))).await?)
            }
            (None, None) => None,
        };
        Ok(PortOptions { args, listener })
    }

    /// The listener for a `LocalPortForwarding` session: the one bound early, else the
    /// Properties' `localUnixSocket` or `localPortNumber` (absent: 0, a free port) on `--bind`.
    ///
    /// # Errors
    /// Unreadable Properties, or the bind failed.
    pub async fn listener(&mut self, properties: &str) -> Result<Listener> {
        if let Some(l) = self.listener.take() {
            return Ok(l);
        }
        let props = PortProperties::parse(properties.as_bytes())
            .map_err(|e| Failure::new(Kind::Protocol, format!("port session properties: {e}")))?;
        let socket = props.local_unix_socket.to_string();
        let addr = if socket.is_empty() {
            ListenAddr::Tcp(SocketAddr::new(
                self.args.bind,
                props.local_port_number.unwrap_or(0),
            ))
        } else {
            ListenAddr::Unix(PathBuf::from(socket))
        };
        bind(&addr).await
    }
}

async fn bind(addr: &ListenAddr) -> Result<Listener> {
    Listener::bind(addr)
        .await
        .map_err(|e| Failure::new(Kind::Usage, e.to_string()))
}

/// The line the official client prints once it listens ("Port 41234 opened for sessionId …"),
/// naming the address when it is not loopback, or the unix socket.
pub fn opened_line(listener: &Listener, session_id: &str) -> String {
    match listener.local_addr() {
        Some(a) if a.ip().is_loopback() => {
            format!("Port {} opened for sessionId {session_id}.", a.port())
        }
        Some(a) => format!(
            "Port {} opened for sessionId {session_id} (listening on {a}).",
            a.port()
        ),
        None => format!(
            "{} opened for sessionId {session_id}.",
            capitalized(&listener.describe())
        ),
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Prints the counters on stderr once a second until dropped (abort the task).
pub async fn print_stats(stats: Arc<Stats>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut last_out, mut last_in) = (0u64, 0u64);
    let mut last = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let now = tokio::time::Instant::now();
        let secs = now.duration_since(last).as_secs_f64().max(0.001);
        last = now;
        let out = stats.bytes_out.load(Relaxed);
        let inb = stats.bytes_in.load(Relaxed);
        eprintln!(
            "ssm-session: connections {} (open {}), sent {} ({}/s), received {} ({}/s)\r",
            stats.connections.load(Relaxed),
            stats.active.load(Relaxed),
            human(out),
            human(rate(out - last_out, secs)),
            human(inb),
            human(rate(inb - last_in, secs)),
        );
        (last_out, last_in) = (out, inb);
    }
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "a display rate"
)]
fn rate(bytes: u64, secs: f64) -> u64 {
    (bytes as f64 / secs) as u64
}

/// Bytes with a binary unit: `512 B`, `1.5 KiB`, `12.0 MiB`.
fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss, reason = "a display value")]
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn capitalizes_the_socket_line() {
        assert_eq!(capitalized("unix socket /x"), "Unix socket /x");
        assert_eq!(capitalized(""), "");
    }
}
