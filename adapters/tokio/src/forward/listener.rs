//! Local listeners: TCP and unix sockets.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

/// Where to listen locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address; port 0 picks a free port ([`Listener::describe`] tells which).
    Tcp(SocketAddr),
    /// A unix socket path (must not exist yet).
    Unix(PathBuf),
}

/// A bound local listener.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix socket, with its path (removed on drop).
    Unix(UnixListener, PathBuf),
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Listener {
    /// Binds `addr`. A port in use fails at once with a message naming it (the official client
    /// hangs instead).
    ///
    /// # Errors
    /// `AddrInUse` with "address … is already in use", or any other bind error with the address
    /// in its message.
    pub async fn bind(addr: &ListenAddr) -> io::Result<Listener> {
        match addr {
            ListenAddr::Tcp(a) => TcpListener::bind(a).await.map(Listener::Tcp).map_err(|e| {
                if e.kind() == io::ErrorKind::AddrInUse {
                    io::Error::new(e.kind(), format!("address {a} is already in use"))
                } else {
                    io::Error::new(e.kind(), format!("cannot listen on {a}: {e}"))
                }
            }),
            ListenAddr::Unix(p) => match UnixListener::bind(p) {
                Ok(l) => Ok(Listener::Unix(l, p.clone())),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(io::Error::new(
                    e.kind(),
                    format!("unix socket {} already exists", p.display()),
                )),
                Err(e) => Err(io::Error::new(
                    e.kind(),
                    format!("cannot listen on {}: {e}", p.display()),
                )),
            },
        }
    }

    /// The bound TCP address (with the picked port), if TCP.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// "port 41234" or "unix socket /path", for the "… opened" line.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("port {}", a.port()),
                Err(_) => "port ?".into(),
            },
            Listener::Unix(_, p) => format!("unix socket {}", p.display()),
        }
    }

    /// Waits for the next local connection.
    ///
    /// # Errors
    /// As the underlying `accept`.
    pub async fn accept(&self) -> io::Result<Box<dyn LocalStreamDyn>> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok(Box::new(s))
            }
            Listener::Unix(l, _) => Ok(Box::new(l.accept().await?.0)),
        }
    }
}

/// A local connection (TCP, unix socket, or anything bidirectional), boxed.
pub trait LocalStreamDyn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> LocalStreamDyn for T {}

/// Removes a stale unix socket file only if nothing listens on it (a helper for callers that
/// want the official client's reuse behaviour; [`Listener::bind`] itself never deletes).
pub fn remove_stale_socket(path: &Path) -> io::Result<bool> {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Ok(false),
        Err(_) if path.exists() => std::fs::remove_file(path).map(|()| true),
        Err(_) => Ok(false),
    }
}
