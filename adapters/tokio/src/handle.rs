//! The handles an application holds: [`ClientSession`] and [`AgentSession`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::forward::PortMode;
use crate::pipe::{StreamReader, StreamWriter};
use crate::Error;
use ssm_proto::payload::Flag;
use ssm_proto::session::{PortModeError, SessionType};

/// What the driver reports while a session runs. Owned and cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// Agent role: the client's `OpenDataChannelInput` arrived (and its token was accepted).
    Opened,
    /// The session handshake completed.
    HandshakeComplete(HandshakeInfo),
    /// Agent role: the client resized its terminal.
    Resized {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Agent role: the client sent a flag. An agent that must act on it where it falls in the
    /// input (DisconnectToPort in basic port forwarding) reads it there instead, with
    /// [`crate::StreamReader::read_part`]; this event is for everyone else (e.g. a shell ended
    /// by TerminateSession).
    Flag(Flag),
    /// Client role: the remote command's exit code (non-interactive commands only).
    ExitCode(i32),
    /// The peer asked to stop sending (`pause_publication`).
    PublicationPaused,
    /// The peer allows sending again (`start_publication`).
    PublicationResumed,
    /// The WebSocket dropped; the session waits for a new one (reason given).
    TransportLost(String),
    /// A new WebSocket carries the session again.
    Reconnected,
    /// The session ended; the reason as the engine describes it.
    Closed(String),
}

/// What the handshake established.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeInfo {
    /// The session type (`None` only if the agent named none).
    pub session_type: Option<SessionType>,
    /// The raw `Properties` JSON of the session type.
    pub properties: String,
    /// The agent's version.
    pub agent_version: String,
    /// The client's version.
    pub client_version: String,
    /// A message for the user (empty if none).
    pub customer_message: String,
    /// Whether the session's data is KMS-encrypted (PROTOCOL.md §6).
    pub encrypted: bool,
}

impl HandshakeInfo {
    /// How a port session runs, as the engine decides it from this handshake
    /// ([`PortMode::of`]).
    ///
    /// # Errors
    /// `InvalidData` when the session is not a port session or its Properties do not parse.
    pub fn port_mode(&self) -> io::Result<PortMode> {
        let props = Some(self.properties.as_str()).filter(|p| !p.is_empty());
        PortMode::of(
            self.session_type,
            props,
            &self.agent_version,
            &self.client_version,
        )
        .map_err(|e| {
            let detail = match e {
                PortModeError::NotPort => {
                    format!("{e} ({})", self.session_type.map_or("none", |t| t.as_str()))
                }
                _ => e.to_string(),
            };
            io::Error::new(io::ErrorKind::InvalidData, detail)
        })
    }
}

/// How a session ended normally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The remote exit code, when the agent sent one (non-interactive commands).
    pub exit_code: Option<i32>,
    /// The engine's description of why the session closed.
    pub reason: String,
    /// The text of the agent's `channel_closed` message, if one arrived.
    pub close_message: Option<String>,
}

/// Requests from a handle to its driver.
pub(crate) enum Command {
    Resize(u16, u16),
    Terminate,
    Flag(Flag),
    Close,
    ExitCode(i32),
    CloseChannel(String),
    Attach(crate::transport::BoxWs),
}

/// A cloneable remote control for a running session.
///
/// Every method is fire-and-forget: it returns `false` once the session has ended.
#[derive(Clone, Debug)]
pub struct Control {
    pub(crate) tx: mpsc::UnboundedSender<Command>,
    /// The inbox the writers use: an ordered request queued here follows every byte written
    /// before it.
    pub(crate) ordered: crate::pipe::InboxSender,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Resize(c, r) => write!(f, "Resize({c}, {r})"),
            Command::Terminate => f.write_str("Terminate"),
            Command::Flag(x) => write!(f, "Flag({x:?})"),
            Command::Close => f.write_str("Close"),
            Command::ExitCode(c) => write!(f, "ExitCode({c})"),
            Command::CloseChannel(r) => write!(f, "CloseChannel({r:?})"),
            Command::Attach(_) => f.write_str("Attach(..)"),
        }
    }
}

impl Control {
    /// Sends `c` to follow every byte written so far to the input/output/stderr writers.
    fn after(&self, c: Command) -> bool {
        self.ordered.command(c)
    }

    /// Client role: the terminal is now `cols` × `rows` (sends a Size message).
    pub fn resize(&self, cols: u16, rows: u16) -> bool {
        self.tx.send(Command::Resize(cols, rows)).is_ok()
    }

    /// Client role: ask the agent to end the session (the TerminateSession flag) now, ahead of
    /// input still on its way to the engine (leaving: `~.`, a signal).
    pub fn terminate(&self) -> bool {
        self.tx.send(Command::Terminate).is_ok()
    }

    /// Client role: end the session after every byte written so far to the input: they go
    /// first, then the TerminateSession flag (the end of a stream's input, e.g. SSH's
    /// `ProxyCommand` seeing EOF on stdin).
    pub fn terminate_after_input(&self) -> bool {
        self.after(Command::Terminate)
    }

    /// Client role: send a flag after every byte written so far to the input (DisconnectToPort
    /// ends the connection those bytes belong to); the agent reads it at that place
    /// ([`StreamReader::read_part`]).
    pub fn send_flag(&self, flag: Flag) -> bool {
        self.after(Command::Flag(flag))
    }

    /// Close the session from this side.
    pub fn close(&self) -> bool {
        self.tx.send(Command::Close).is_ok()
    }

    /// Agent role: send the exit code, after every byte written so far to the output and stderr
    /// writers.
    pub fn send_exit_code(&self, code: i32) -> bool {
        self.after(Command::ExitCode(code))
    }

    /// Agent role: close the channel with a reason shown to the user, after every byte written
    /// so far.
    pub fn close_channel(&self, reason: impl Into<String>) -> bool {
        self.after(Command::CloseChannel(reason.into()))
    }

    /// Agent role: carry the session over this (new) WebSocket, e.g. after the client resumed.
    /// The previous one, if any, is dropped.
    pub fn attach<S>(&self, ws: tokio_tungstenite::WebSocketStream<S>) -> bool
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        self.tx
            .send(Command::Attach(crate::transport::boxed(ws)))
            .is_ok()
    }

    /// Agent role: as [`Control::attach`], for any WebSocket-like stream and sink of messages
    /// (e.g. a wrapper that closes the WebSocket after a while).
    pub fn attach_ws<W: crate::WsIo + 'static>(&self, ws: W) -> bool {
        self.tx.send(Command::Attach(Box::pin(ws))).is_ok()
    }
}

/// The receiving end of a session's events.
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: mpsc::UnboundedReceiver<SessionEvent>,
}

impl Events {
    /// The next event, or `None` once the session has ended and every event was taken.
    pub async fn next(&mut self) -> Option<SessionEvent> {
        self.rx.recv().await
    }

    /// The next event if one is ready.
    pub fn try_next(&mut self) -> Option<SessionEvent> {
        self.rx.try_recv().ok()
    }

    /// Polls for the next event (for hand-written futures and streams); `Ready(None)` as
    /// [`Events::next`].
    pub fn poll_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<SessionEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// The end of the driver task.
#[derive(Debug)]
pub struct Finished(pub(crate) JoinHandle<Result<Outcome, Error>>);

impl Finished {
    /// Waits for the session to end.
    ///
    /// # Errors
    /// The driver's error ([`Error::HandshakeFailed`], [`Error::ConnectionLost`], ...), or
    /// [`Error::DriverGone`] if the task panicked.
    pub async fn wait(self) -> Result<Outcome, Error> {
        self.0.await.unwrap_or(Err(Error::DriverGone))
    }
}

/// A client session (the `ssm-session` side), as returned by [`crate::connect`].
///
/// The handle itself is `AsyncRead` (the agent's Output stream) and `AsyncWrite` (your input);
/// [`ClientSession::into_parts`] splits it for concurrent use.
#[derive(Debug)]
pub struct ClientSession {
    /// The agent's Output stream (stdout, or the PTY's output).
    pub output: StreamReader,
    /// The agent's StdErr stream (non-interactive commands with separate streams); never
    /// anything for shells.
    pub stderr: StreamReader,
    /// Your input to the remote (keystrokes, stdin).
    pub input: StreamWriter,
    /// Events.
    pub events: Events,
    /// Resize, terminate, close.
    pub control: Control,
    /// The driver task.
    pub finished: Finished,
}

impl ClientSession {
    /// The parts, to move into separate tasks.
    pub fn into_parts(
        self,
    ) -> (
        StreamReader,
        StreamReader,
        StreamWriter,
        Events,
        Control,
        Finished,
    ) {
        (
            self.output,
            self.stderr,
            self.input,
            self.events,
            self.control,
            self.finished,
        )
    }

    /// Waits for the session to end (drop or drain `output` first, or it may fill up).
    ///
    /// # Errors
    /// As [`Finished::wait`].
    pub async fn wait(self) -> Result<Outcome, Error> {
        self.finished.wait().await
    }
}

impl AsyncRead for ClientSession {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.output).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientSession {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.input).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.input).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.input).poll_shutdown(cx)
    }
}

/// An agent-side session (what the emulator runs per client), from [`crate::AgentSession::spawn`].
#[derive(Debug)]
pub struct AgentSession {
    /// What the client typed / sent (its Output messages).
    pub input: StreamReader,
    /// Your Output stream to the client.
    pub output: StreamWriter,
    /// Your StdErr stream to the client.
    pub stderr: StreamWriter,
    /// Events (`Opened`, `HandshakeComplete`, `Resized`, `Flag`, ...).
    pub events: Events,
    /// Exit code, close channel, attach a WebSocket.
    pub control: Control,
    /// The driver task.
    pub finished: Finished,
}
