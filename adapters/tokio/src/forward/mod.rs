//! Port forwarding over a session's data stream.
//!
//! - **Multiplexed** ([`MuxSession`], [`forward_mux`]): smux v1 ([`ssm_proto::smux`]) over the
//!   session, many TCP (or unix socket) connections at once, each closed with a FIN both ways.
//!   The agent side (`serve_mux`, `serve_basic`) is in the `ssm-emulator` crate.
//! - **Basic** ([`forward_basic`]): older agents carry one connection at a time; when it ends the
//!   client sends the DisconnectToPort flag and accepts the next.
//! - **Stream** ([`forward_stream`]): no listener; stdin/stdout are the stream
//!   (`AWS-StartSSHSession` as an SSH `ProxyCommand`): pass
//!   `tokio::io::join(tokio::io::stdin(), tokio::io::stdout())` (tokio feature `io-std`).
//!
//! Everything is generic over the session's byte stream (`AsyncRead + AsyncWrite`), so it runs
//! over a real session, the emulator, or an in-memory pipe in tests.

use std::io;
use std::sync::Arc;

use ssm_proto::smux;

mod basic;
mod listener;
mod mux;
mod stream;

pub use basic::{disconnect_flag, forward_basic};
pub use listener::{remove_stale_socket, ListenAddr, Listener, LocalStreamDyn};
pub use mux::{bridge, forward_mux, MuxSession, MuxStream};
pub use stream::forward_stream;

/// Stream slots per session: connections one session carries at once.
pub const MAX_STREAMS: usize = 256;

/// Receive buffer per stream: two of smux's 32 KiB frames. When one fills, the session stops
/// reading (smux v1 has no window; see [`ssm_proto::smux::Mux`]), so this bounds memory at
/// `MAX_STREAMS` × this (16 MiB, allocated zeroed, so pages are only touched as streams use
/// them).
pub const STREAM_BUFFER: usize = 64 * 1024;

/// Bytes read from a local connection per frame batch (smux's own `MaxFrameSize` is 32768).
const LOCAL_READ: usize = 32 * 1024;

/// Live counters, shared with whoever prints `--stats`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted so far.
    pub connections: std::sync::atomic::AtomicU64,
    /// Connections open now.
    pub active: std::sync::atomic::AtomicU64,
    /// Bytes from local connections to the remote side.
    pub bytes_out: std::sync::atomic::AtomicU64,
    /// Bytes from the remote side to local connections.
    pub bytes_in: std::sync::atomic::AtomicU64,
}

/// How a client runs a port session: the engine's choice ([`HandshakeInfo::port_mode`]).
///
/// [`HandshakeInfo::port_mode`]: crate::HandshakeInfo::port_mode
pub use ssm_proto::session::PortMode;
pub use ssm_proto::smux::{multiplexed, version_at_least};

/// Runs a client port session whose handshake is complete, with a listener (modes
/// `Multiplexed` and `Basic`; `Stream` is [`forward_stream`] over stdin/stdout instead).
/// Drains the session's events meanwhile. Returns when the session ends.
///
/// # Errors
/// `InvalidInput` for `PortMode::Stream`; otherwise as [`forward_mux`] / [`forward_basic`].
pub async fn run_port_session(
    session: crate::ClientSession,
    info: &crate::HandshakeInfo,
    listener: Listener,
    stats: Arc<Stats>,
) -> io::Result<()> {
    let mode = info.port_mode()?;
    let (output, _stderr, input, mut events, control, _finished) = session.into_parts();
    let io = tokio::io::join(output, input);
    // Nobody else reads the events; keep them flowing (the channel is unbounded, but a long
    // session would grow it).
    tokio::spawn(async move { while events.next().await.is_some() {} });
    match mode {
        PortMode::Multiplexed => {
            let config = smux::Config::for_agent(&info.agent_version);
            forward_mux(io, config, listener, stats).await
        }
        PortMode::Basic => forward_basic(io, listener, disconnect_flag(control), stats).await,
        PortMode::Stream => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a port session without LocalPortForwarding is a stdin/stdout stream",
        )),
    }
}
