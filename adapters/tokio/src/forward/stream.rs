//! Stream mode (no `LocalPortForwarding`: SSH ProxyCommand).

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

/// Port session without a local listener: `local` (stdin/stdout joined, for SSH's
/// `ProxyCommand`) is the stream. Copies both ways until both directions end; returns the bytes
/// sent and received.
///
/// # Errors
/// Reading or writing either side failed.
pub async fn forward_stream<T, L>(mut io: T, mut local: L) -> io::Result<(u64, u64)>
where
    T: AsyncRead + AsyncWrite + Unpin,
    L: AsyncRead + AsyncWrite + Unpin,
{
    let (to_local, to_remote) = tokio::io::copy_bidirectional(&mut io, &mut local).await?;
    Ok((to_remote, to_local))
}
