//! One full-duplex stream out of separate read and write halves, cloneable.
//!
//! The [`Runner`](crate::Runner) reads and writes at the same time and never cancels a read (a
//! TLS record reader loses bytes when its future is dropped mid-record). It therefore takes the
//! transport as two halves. embedded-tls splits a connection only when its socket is `Clone`;
//! [`Duplex`] is that socket: every clone shares the same halves, and a clone used only for
//! reading never waits for one used only for writing.

use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::mutex::Mutex;
use embedded_io_async::{ErrorType, Read, Write};

/// Storage for a [`Duplex`]: the two halves, each behind its own async lock.
pub struct DuplexState<R, W> {
    reader: Mutex<NoopRawMutex, R>,
    writer: Mutex<NoopRawMutex, W>,
}

impl<R, W> DuplexState<R, W> {
    /// Wraps a read half and a write half (for example `TcpSocket::split()`).
    pub fn new(reader: R, writer: W) -> Self {
        DuplexState {
            reader: Mutex::new(reader),
            writer: Mutex::new(writer),
        }
    }
}

/// A `Clone` handle that reads from one half and writes to the other.
pub struct Duplex<'a, R, W> {
    state: &'a DuplexState<R, W>,
}

impl<R, W> Clone for Duplex<'_, R, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R, W> Copy for Duplex<'_, R, W> {}

impl<'a, R, W> Duplex<'a, R, W> {
    /// A handle on `state`.
    pub fn new(state: &'a DuplexState<R, W>) -> Self {
        Duplex { state }
    }
}

/// The error of either half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DuplexError(pub embedded_io::ErrorKind);

impl core::fmt::Display for DuplexError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "transport error: {:?}", self.0)
    }
}

impl core::error::Error for DuplexError {}

impl embedded_io::Error for DuplexError {
    fn kind(&self) -> embedded_io::ErrorKind {
        self.0
    }
}

impl<R, W> ErrorType for Duplex<'_, R, W> {
    type Error = DuplexError;
}

impl<R: Read, W> Read for Duplex<'_, R, W> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let mut r = self.state.reader.lock().await;
        r.read(buf)
            .await
            .map_err(|e| DuplexError(embedded_io::Error::kind(&e)))
    }
}

impl<R, W: Write> Write for Duplex<'_, R, W> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let mut w = self.state.writer.lock().await;
        w.write(buf)
            .await
            .map_err(|e| DuplexError(embedded_io::Error::kind(&e)))
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        let mut w = self.state.writer.lock().await;
        w.flush()
            .await
            .map_err(|e| DuplexError(embedded_io::Error::kind(&e)))
    }
}
