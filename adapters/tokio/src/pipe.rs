//! The pipes between a session's handles and its driver: one queue per direction that carries
//! the stream's bytes and, in their place among them, what must happen between two bytes
//! (a client's flag on the agent's input; an ordered command on the way to the engine). Order
//! is the queue's, so nobody counts bytes to find a flag's position. Each queue is bounded in
//! bytes by a semaphore: a writer waits for room as it would on a socket.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use ssm_proto::payload::Flag;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, Semaphore, TryAcquireError};
use tokio_util::sync::PollSemaphore;

use crate::handle::Command;

/// Bytes a queue holds before its writer waits.
pub(crate) const CAPACITY: usize = 256 * 1024;
/// The largest piece of data one queue entry carries.
const PIECE: usize = 64 * 1024;

/// Application → driver: bytes for one of the engine's streams, or a command that follows
/// every byte queued before it.
pub(crate) enum In {
    /// Bytes for stream `0` (Output) or `1` (StdErr).
    Data(usize, Vec<u8>),
    /// A command to apply once the bytes before it are in the engine.
    Command(Command),
}

/// Creates the application → driver queue: what the writers and ordered commands send into,
/// and the driver's end.
pub(crate) fn inbox() -> (InboxSender, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(CAPACITY));
    (
        InboxSender {
            tx,
            room: room.clone(),
        },
        Inbox {
            rx,
            room,
            next: None,
        },
    )
}

/// A sending end of the driver's inbox (cloned into every writer and the control).
#[derive(Clone, Debug)]
pub(crate) struct InboxSender {
    tx: mpsc::UnboundedSender<In>,
    room: Arc<Semaphore>,
}

impl InboxSender {
    /// Queues `c` behind every byte queued so far; false once the driver has gone.
    pub(crate) fn command(&self, c: Command) -> bool {
        self.tx.send(In::Command(c)).is_ok()
    }

    /// A writer of stream `stream` (0 Output, 1 StdErr) into this inbox.
    pub(crate) fn writer(&self, stream: usize) -> StreamWriter {
        StreamWriter {
            tx: self.tx.clone(),
            room: PollSemaphore::new(self.room.clone()),
            stream,
            shut: false,
        }
    }
}

/// The driver's end of the application → engine queue.
pub(crate) struct Inbox {
    rx: mpsc::UnboundedReceiver<In>,
    room: Arc<Semaphore>,
    /// An entry taken while joining data ([`Inbox::join`]) that did not join: the next one.
    next: Option<In>,
}

impl Inbox {
    /// The next entry; `None` once every sender has gone. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Option<In> {
        if let Some(e) = self.next.take() {
            return Some(e);
        }
        let got = self.rx.recv().await;
        got.map(|e| self.taken(e))
    }

    /// The next entry if one is queued: `Some(None)` once every sender has gone, `None` if
    /// nothing is queued now.
    pub(crate) fn try_recv(&mut self) -> Option<Option<In>> {
        if let Some(e) = self.next.take() {
            return Some(Some(e));
        }
        match self.rx.try_recv() {
            Ok(e) => Some(Some(self.taken(e))),
            Err(mpsc::error::TryRecvError::Disconnected) => Some(None),
            Err(mpsc::error::TryRecvError::Empty) => None,
        }
    }

    /// An entry off the queue: its bytes no longer take room there (the driver stages one
    /// entry at a time).
    fn taken(&self, e: In) -> In {
        if let In::Data(_, d) = &e {
            self.room.add_permits(d.len());
        }
        e
    }

    /// Appends to `data` the bytes for `stream` queued right behind it, up to `max` bytes in
    /// all, so that many small writes reach the engine as one (as a byte pipe would give
    /// them); stops at a command, another stream's bytes or an empty queue.
    pub(crate) fn join(&mut self, stream: usize, data: &mut Vec<u8>, max: usize) {
        while data.len() < max && self.next.is_none() {
            match self.try_recv() {
                Some(Some(In::Data(i, d))) if i == stream && data.len() + d.len() <= max => {
                    data.extend_from_slice(&d);
                }
                Some(Some(e)) => self.next = Some(e),
                Some(None) | None => break,
            }
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // A writer waiting for room fails instead of waiting forever.
        self.room.close();
    }
}

/// Writes one stream into the session (client input, or agent output / stderr).
///
/// A write returns once the bytes are queued for the driver (up to 256 KiB wait there). The
/// control's ordered requests ([`crate::Control::send_flag`], `terminate_after_input`,
/// `send_exit_code`, `close_channel`) take their place behind every byte written before them.
/// After the session ended, writes fail with `BrokenPipe`.
#[derive(Debug)]
pub struct StreamWriter {
    tx: mpsc::UnboundedSender<In>,
    room: PollSemaphore,
    stream: usize,
    shut: bool,
}

fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the session has ended")
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.shut || self.tx.is_closed() {
            return Poll::Ready(Err(broken()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(PIECE);
        // `n` ≤ PIECE fits a u32.
        let Some(permit) = ready!(self.room.poll_acquire_many(cx, n as u32)) else {
            return Poll::Ready(Err(broken()));
        };
        permit.forget();
        let stream = self.stream;
        match self.tx.send(In::Data(stream, buf[..n].to_vec())) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(_) => Poll::Ready(Err(broken())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shut = true;
        Poll::Ready(Ok(()))
    }
}

/// Driver → application: bytes of one stream, or a flag between them.
#[derive(Debug)]
enum Out {
    Data(Vec<u8>),
    Flag(Flag),
}

/// Creates a driver → application queue: the driver's end and the application's reader.
pub(crate) fn outbox() -> (Outbox, StreamReader) {
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(CAPACITY));
    (
        Outbox {
            tx: Some(tx),
            room: room.clone(),
            queue: VecDeque::new(),
            queued: 0,
            closing: false,
        },
        StreamReader {
            rx,
            room,
            current: Vec::new(),
            off: 0,
        },
    )
}

/// The driver's end of a stream towards the application, with what waits for room in it.
pub(crate) struct Outbox {
    /// `None`: nobody reads (the reader was dropped, or the driver ended).
    tx: Option<mpsc::UnboundedSender<Out>>,
    room: Arc<Semaphore>,
    /// Taken from the engine, not yet queued for the reader.
    queue: VecDeque<Out>,
    /// Bytes in `queue`.
    queued: usize,
    /// No more will be pushed: the sender goes once `queue` is empty.
    closing: bool,
}

impl Outbox {
    /// What waits for room: its bytes, plus one per entry (so a lone flag counts).
    pub(crate) fn waiting(&self) -> usize {
        self.queued + self.queue.len()
    }

    /// Bytes of the stream, after everything pushed before.
    pub(crate) fn push(&mut self, b: &[u8]) {
        if self.tx.is_none() {
            return;
        }
        self.queued += b.len();
        if let Some(Out::Data(last)) = self.queue.back_mut() {
            if last.len() + b.len() <= PIECE {
                last.extend_from_slice(b);
                return;
            }
        }
        for piece in b.chunks(PIECE) {
            self.queue.push_back(Out::Data(piece.to_vec()));
        }
    }

    /// A flag, after every byte pushed before it.
    pub(crate) fn push_flag(&mut self, f: Flag) {
        if self.tx.is_some() {
            self.queue.push_back(Out::Flag(f));
        }
    }

    /// Hands the reader what fits now.
    pub(crate) fn flush(&mut self) {
        while let Some(front) = self.queue.front() {
            if let Out::Data(d) = front {
                // `d.len()` ≤ PIECE fits a u32.
                match self.room.try_acquire_many(d.len() as u32) {
                    Ok(p) => p.forget(),
                    Err(TryAcquireError::NoPermits) => break,
                    // The reader is gone: `send_front` finds that out and discards.
                    Err(TryAcquireError::Closed) => {}
                }
            }
            self.send_front();
        }
    }

    /// Waits until the reader has room for the next entry, then hands it over. Cancel-safe:
    /// nothing moves unless it completes.
    pub(crate) async fn flush_one(&mut self) {
        if let Some(Out::Data(d)) = self.queue.front() {
            // Closed: the reader is gone, and `send_front` discards.
            if let Ok(p) = self.room.acquire_many(d.len() as u32).await {
                p.forget();
            }
        }
        self.send_front();
    }

    fn send_front(&mut self) {
        let Some(out) = self.queue.pop_front() else {
            return;
        };
        if let Out::Data(d) = &out {
            self.queued -= d.len();
        }
        if self.closing && self.queue.is_empty() {
            // The last entry: the reader sees the end after it.
            if let Some(tx) = self.tx.take() {
                let _ = tx.send(out);
            }
            return;
        }
        let gone = match &self.tx {
            Some(tx) => tx.send(out).is_err(),
            None => true,
        };
        if gone {
            // The application dropped its reader: discard from now on.
            self.tx = None;
            self.queue.clear();
            self.queued = 0;
        }
    }

    /// No more will come: the reader sees the end once it has read everything queued.
    pub(crate) fn close(&mut self) {
        self.closing = true;
        if self.queue.is_empty() {
            self.tx = None;
        }
    }
}

/// What [`StreamReader::read_part`] found next in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// This many bytes were read into the buffer.
    Data(usize),
    /// Agent role: the client's flag, at its place in the stream (every byte the client wrote
    /// before it was read before it; none after it). Basic port forwarding ends the target
    /// connection at a DisconnectToPort.
    Flag(Flag),
    /// The stream ended (the session is over).
    End,
}

/// Reads one stream of the session (client: the agent's output or stderr; agent: the client's
/// input). EOF when the session ends. As an [`AsyncRead`] it yields the bytes only; an agent
/// that must act on the client's flags where they fall in the input reads with
/// [`StreamReader::read_part`].
#[derive(Debug)]
pub struct StreamReader {
    rx: mpsc::UnboundedReceiver<Out>,
    room: Arc<Semaphore>,
    current: Vec<u8>,
    off: usize,
}

impl StreamReader {
    /// Reads bytes into `buf`, or the flag or end that comes next.
    ///
    /// # Errors
    /// None today; the `Result` is for symmetry with [`AsyncRead`].
    pub async fn read_part(&mut self, buf: &mut [u8]) -> io::Result<Part> {
        std::future::poll_fn(|cx| self.poll_read_part(cx, buf)).await
    }

    /// Polls for [`StreamReader::read_part`].
    ///
    /// # Errors
    /// As [`StreamReader::read_part`].
    pub fn poll_read_part(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<Part>> {
        loop {
            if self.off < self.current.len() {
                if buf.is_empty() {
                    return Poll::Ready(Ok(Part::Data(0)));
                }
                let n = buf.len().min(self.current.len() - self.off);
                buf[..n].copy_from_slice(&self.current[self.off..self.off + n]);
                self.off += n;
                self.room.add_permits(n);
                return Poll::Ready(Ok(Part::Data(n)));
            }
            match ready!(self.rx.poll_recv(cx)) {
                Some(Out::Data(d)) => {
                    self.current = d;
                    self.off = 0;
                }
                Some(Out::Flag(f)) => return Poll::Ready(Ok(Part::Flag(f))),
                None => return Poll::Ready(Ok(Part::End)),
            }
        }
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        // The driver, waiting for room, learns that nobody reads and discards from now on.
        self.room.close();
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let part = ready!(self.poll_read_part(cx, buf.initialize_unfilled()))?;
            match part {
                Part::Data(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Part::Flag(_) => continue,
                Part::End => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_flag_arrives_between_the_bytes_around_it() {
        let (mut out, mut reader) = outbox();
        out.push(b"abc");
        out.push_flag(Flag::DisconnectToPort);
        out.push(b"de");
        out.close();
        out.flush();
        let mut buf = [0u8; 8];
        assert_eq!(reader.read_part(&mut buf).await.unwrap(), Part::Data(3));
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(
            reader.read_part(&mut buf).await.unwrap(),
            Part::Flag(Flag::DisconnectToPort)
        );
        assert_eq!(reader.read_part(&mut buf).await.unwrap(), Part::Data(2));
        assert_eq!(reader.read_part(&mut buf).await.unwrap(), Part::End);
    }

    #[tokio::test]
    async fn as_async_read_flags_are_skipped() {
        let (mut out, mut reader) = outbox();
        out.push(b"ab");
        out.push_flag(Flag::TerminateSession);
        out.push(b"cd");
        out.close();
        out.flush();
        let mut all = Vec::new();
        reader.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"abcd");
    }

    #[tokio::test]
    async fn the_outbox_holds_what_the_reader_has_no_room_for() {
        let (mut out, mut reader) = outbox();
        let data: Vec<u8> = (0..CAPACITY + 3 * PIECE).map(|i| i as u8).collect();
        out.push(&data);
        out.push_flag(Flag::DisconnectToPort);
        out.flush();
        // The reader's room is taken: the rest (three pieces and the flag) waits in the
        // driver's queue.
        assert_eq!(out.waiting(), 3 * PIECE + 4);
        let mut got = vec![0u8; data.len()];
        let read = async {
            let mut n = 0;
            while n < got.len() {
                match reader.read_part(&mut got[n..]).await.unwrap() {
                    Part::Data(k) => n += k,
                    p => panic!("{p:?} before the data's end"),
                }
            }
            reader.read_part(&mut [0u8; 1]).await.unwrap()
        };
        let write = async {
            while out.waiting() > 0 {
                out.flush_one().await;
            }
        };
        let (flag, ()) = tokio::join!(read, write);
        assert_eq!(flag, Part::Flag(Flag::DisconnectToPort));
        assert!(got == data);
    }

    #[tokio::test]
    async fn a_dropped_reader_lets_the_driver_discard() {
        let (mut out, reader) = outbox();
        out.push(&vec![1u8; CAPACITY + PIECE]);
        out.flush();
        assert!(out.waiting() > 0);
        drop(reader);
        // Would wait for room forever if the reader's end were not noticed.
        tokio::time::timeout(std::time::Duration::from_secs(5), out.flush_one())
            .await
            .expect("a dropped reader frees the driver");
        assert_eq!(out.waiting(), 0);
        out.push(b"more");
        assert_eq!(out.waiting(), 0, "discarded once nobody reads");
    }

    #[tokio::test]
    async fn a_command_follows_the_bytes_written_before_it() {
        let (tx, mut inbox) = inbox();
        let mut w = tx.writer(0);
        w.write_all(b"hello").await.unwrap();
        assert!(tx.command(Command::Flag(Flag::DisconnectToPort)));
        w.write_all(b"!").await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(match inbox.recv().await.unwrap() {
                In::Data(s, d) => format!("{s}:{}", String::from_utf8_lossy(&d)),
                In::Command(c) => format!("{c:?}"),
            });
        }
        assert_eq!(seen, ["0:hello", "Flag(DisconnectToPort)", "0:!"]);
    }

    #[tokio::test]
    async fn small_writes_join_up_to_a_command() {
        let (tx, mut inbox) = inbox();
        let mut w = tx.writer(0);
        for b in [b"ab", b"cd", b"ef"] {
            w.write_all(b).await.unwrap();
        }
        assert!(tx.command(Command::Close));
        w.write_all(b"gh").await.unwrap();
        async fn joined(inbox: &mut Inbox) -> Vec<u8> {
            let Some(In::Data(0, mut d)) = inbox.recv().await else {
                panic!("stream 0's data expected");
            };
            inbox.join(0, &mut d, 1024);
            d
        }
        assert_eq!(
            joined(&mut inbox).await,
            b"abcdef",
            "joined up to the command"
        );
        assert!(matches!(
            inbox.recv().await,
            Some(In::Command(Command::Close))
        ));
        assert_eq!(joined(&mut inbox).await, b"gh");
    }

    #[tokio::test]
    async fn a_writer_waits_for_room_and_fails_once_the_driver_is_gone() {
        let (tx, inbox) = inbox();
        let mut w = tx.writer(1);
        w.write_all(&vec![7u8; CAPACITY]).await.unwrap();
        // Full: the next write waits ...
        let mut one = std::pin::pin!(w.write_all(b"x"));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(std::future::Future::poll(one.as_mut(), &mut cx).is_pending());
        // ... until the driver ends.
        drop(inbox);
        let e = one.await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
