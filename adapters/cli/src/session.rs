//! Runs one session against the local terminal: the part shared by the drop-in, `demo` and
//! `start`.
//!
//! ```text
//!  stdin ──(raw mode, ~ escapes, \n→\r)──► input ─┐
//!  SIGWINCH ──► control.resize                     ├─ ssm-tokio driver ── WebSocket
//!  stdout ◄── output    stderr ◄── stderr ◄────────┘
//!  events: handshake (session type), exit code, transport lost / reconnected, closed
//! ```
//!
//! Raw mode is entered only for terminal sessions (`Standard_Stream`, `InteractiveCommands`)
//! with a terminal on stdin, after the handshake says which kind of session this is.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use ssm_tokio::{ConnectOptions, Grant, SessionEvent};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::aws::Aws;
use crate::port::{self, PortOptions};
use ssm_proto::session::SessionType;
use ssm_proto::smux;
use ssm_tokio::forward::{disconnect_flag, forward_basic, forward_mux, PortMode, Stats};

use crate::escape::{self, InputFilter};
use crate::exit::{Failure, Kind, Result};
use crate::term::{self, RawMode};

/// How long to let a TerminateSession flag reach the agent after `~.` or a signal.
const TERMINATE_GRACE: Duration = Duration::from_millis(300);
/// How long a best-effort `TerminateSession` call may delay leaving.
const API_TERMINATE_LIMIT: Duration = Duration::from_secs(2);
/// How long to wait for the last output once the driver reported the end.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long a stream session (SSH's ProxyCommand) may take to end after stdin's EOF: the
/// bytes read before it and the TerminateSession flag must be acknowledged.
const STREAM_END_LIMIT: Duration = Duration::from_secs(10);

/// What to run, and how.
pub struct Run {
    /// The session id (for the status lines).
    pub session_id: String,
    /// The validated URL and token.
    pub grant: Grant,
    /// Connection options (TLS policy, resume callback).
    pub options: ConnectOptions,
    /// The SSM API, to end the session there too when we leave abruptly (`~.`, a signal), in
    /// case the TerminateSession flag cannot reach a frozen agent.
    pub api: Option<Aws>,
    /// Set when ResumeSession said the session ended (an empty token): the run then ends with
    /// exit code 0, as the official plugin does.
    pub ended: Option<Arc<AtomicBool>>,
    /// Port sessions: where to listen, `--stats`.
    pub port: PortOptions,
}

/// Why the input side stopped.
enum InputEnd {
    /// `~.` typed.
    Escape,
    /// A port session's stream (stdin) ended: SSH closed its ProxyCommand's input.
    StreamEof,
    /// Reading or forwarding stdin failed.
    Failed(String),
}

/// Runs the session to its end. Returns the process exit code: the remote command's code for
/// non-interactive commands, else 0.
///
/// # Errors
/// A [`Failure`] with a one-line reason; the terminal is restored before this returns.
pub async fn run(run: Run) -> Result<u8> {
    let Run {
        session_id,
        grant,
        mut options,
        api,
        mut port,
        ended,
    } = run;
    eprintln!("\r\nStarting session with SessionId: {session_id}\r");
    // Resume only a session that was established: a connection closed before the handshake is
    // the service or agent refusing us (a bad token), and resuming would hide that.
    let established = Arc::new(AtomicBool::new(false));
    if let Some(inner) = options.resume.take() {
        let established = established.clone();
        options.resume = Some(Arc::new(move || {
            if established.load(Ordering::Acquire) {
                inner()
            } else {
                Box::pin(async {
                    Err(std::io::Error::other(
                        "the connection closed before the session handshake",
                    ))
                })
            }
        }));
    }
    if options.terminal_size.is_none() && term::stdin_is_tty() {
        options.terminal_size = term::size();
    }
    let session = ssm_tokio::connect(grant, options)
        .await
        .map_err(driver_failure)?;
    let ssm_tokio::ClientSession {
        output,
        stderr,
        input,
        mut events,
        control,
        finished,
    } = session;

    let (out_done_tx, mut out_done) = mpsc::channel::<std::result::Result<(), String>>(2);
    // The output goes to stdout once the handshake says what kind of session this is (a port
    // session with a listener carries it to its connections instead).
    let mut output = Some(output);
    let mut out_task = None;
    let err_task = tokio::spawn(pump_out(stderr, tokio::io::stderr(), out_done_tx.clone()));
    let (fwd_end_tx, mut fwd_end) = mpsc::channel::<Failure>(1);
    let mut stats_task = None;

    let mut winch = signal(SignalKind::window_change()).map_err(io_failure)?;
    let mut sigcont = signal(SignalKind::from_raw(libc_sigcont())).map_err(io_failure)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(io_failure)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(io_failure)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io_failure)?;

    let (input_end_tx, mut input_end) = mpsc::channel::<InputEnd>(1);
    let mut input = Some(input);
    let mut raw: Option<RawMode> = None;
    let mut session_type: Option<SessionType> = None;
    let mut exit_code: Option<i32> = None;
    let mut handshake_done = false;
    let mut lost_quietly: Option<String> = None;
    // Set once a stream session's input ended: the session must be over by then.
    let mut end_by: Option<tokio::time::Instant> = None;

    // `None` when the driver reported the end; otherwise why we leave early.
    let stop: Option<Failure> = loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(SessionEvent::HandshakeComplete(info)) => {
                    handshake_done = true;
                    established.store(true, Ordering::Release);
                    session_type = info.session_type;
                    if !info.customer_message.is_empty() {
                        eprintln!("{}\r", info.customer_message);
                    }
                    let terminal = matches!(
                        session_type,
                        Some(SessionType::StandardStream | SessionType::InteractiveCommands)
                    );
                    if session_type == Some(SessionType::Port) {
                        let mode = info.port_mode().map_err(|e| {
                            Failure::new(Kind::Protocol, e.to_string())
                        });
                        let mode = match mode {
                            Ok(m) => m,
                            Err(f) => {
                                control.terminate();
                                break Some(f);
                            }
                        };
                        if mode == PortMode::Stream {
                            // stdin/stdout are the stream (SSH's ProxyCommand).
                            if let (Some(o), Some(w)) = (output.take(), input.take()) {
                                out_task = Some(tokio::spawn(pump_out(
                                    o,
                                    tokio::io::stdout(),
                                    out_done_tx.clone(),
                                )));
                                tokio::spawn(pump_in(w, Input::Stream, input_end_tx.clone()));
                            }
                            continue;
                        }
                        let listener = match port.listener(&info.properties).await {
                            Ok(l) => l,
                            Err(f) => {
                                control.terminate();
                                tokio::time::sleep(TERMINATE_GRACE).await;
                                break Some(f);
                            }
                        };
                        eprintln!("{}\r", port::opened_line(&listener, &session_id));
                        eprintln!("Waiting for connections...\r");
                        let stats = Arc::new(Stats::default());
                        if port.args.stats {
                            stats_task = Some(tokio::spawn(port::print_stats(stats.clone())));
                        }
                        if let (Some(o), Some(w)) = (output.take(), input.take()) {
                            let io = tokio::io::join(o, w);
                            let (control, info, end) =
                                (control.clone(), info.clone(), fwd_end_tx.clone());
                            tokio::spawn(async move {
                                let r = match mode {
                                    PortMode::Multiplexed => {
                                        let config = smux::Config::for_agent(&info.agent_version);
                                        forward_mux(io, config, listener, stats).await
                                    }
                                    _ => {
                                        let flag = disconnect_flag(control);
                                        forward_basic(io, listener, flag, stats).await
                                    }
                                };
                                if let Err(e) = r {
                                    let _ = end
                                        .send(Failure::new(
                                            Kind::Io,
                                            format!("port forwarding: {e}"),
                                        ))
                                        .await;
                                }
                            });
                        }
                        continue;
                    }
                    if let Some(o) = output.take() {
                        out_task =
                            Some(tokio::spawn(pump_out(o, tokio::io::stdout(), out_done_tx.clone())));
                    }
                    if terminal {
                        raw = RawMode::enable().map_err(io_failure)?;
                        // Test hook: proves the terminal is restored when we panic in raw mode.
                        if std::env::var_os("SSM_SESSION_TEST_PANIC_IN_RAW_MODE").is_some() {
                            panic!("SSM_SESSION_TEST_PANIC_IN_RAW_MODE is set");
                        }
                        if let Some(w) = input.take() {
                            let mode = if raw.is_some() { Input::Escapes } else { Input::Script };
                            tokio::spawn(pump_in(w, mode, input_end_tx.clone()));
                        }
                    }
                }
                Some(SessionEvent::ExitCode(c)) => exit_code = Some(c),
                // The service's routine close (1000, about hourly) gets one line, once resumed;
                // any other loss is announced at once.
                Some(SessionEvent::TransportLost(why)) if handshake_done => {
                    if why.contains("(1000 ") {
                        lost_quietly = Some(why);
                    } else {
                        eprintln!("ssm-session: connection lost ({why}); resuming\r");
                    }
                }
                Some(SessionEvent::Reconnected) => match lost_quietly.take() {
                    Some(why) => eprintln!("ssm-session: resumed after the data channel was {why}\r"),
                    None => eprintln!("ssm-session: reconnected\r"),
                },
                Some(SessionEvent::Closed(_)) | None => break None,
                Some(_) => {}
            },
            end = input_end.recv() => match end {
                Some(InputEnd::Escape) => {
                    control.terminate();
                    tokio::time::sleep(TERMINATE_GRACE).await;
                    break Some(Failure::new(Kind::Escaped, "session left with ~."));
                }
                Some(InputEnd::StreamEof) => {
                    // As the official client, leave at the end of the stream's input, but
                    // cleanly: what was read goes first, then TerminateSession; the session
                    // closes once the agent acknowledges it.
                    control.terminate_after_input();
                    end_by = Some(tokio::time::Instant::now() + STREAM_END_LIMIT);
                }
                Some(InputEnd::Failed(why)) => {
                    control.terminate();
                    tokio::time::sleep(TERMINATE_GRACE).await;
                    break Some(Failure::new(Kind::Io, why));
                }
                None => {}
            },
            () = sleep_until(end_by) => {
                break Some(Failure::new(
                    Kind::ConnectionLost,
                    format!(
                        "the session did not end within {} s of the end of input",
                        STREAM_END_LIMIT.as_secs()
                    ),
                ));
            }
            Some(f) = fwd_end.recv() => {
                control.terminate();
                tokio::time::sleep(TERMINATE_GRACE).await;
                break Some(f);
            }
            Some(Err(why)) = out_done.recv() => {
                control.terminate();
                tokio::time::sleep(TERMINATE_GRACE).await;
                break Some(Failure::new(Kind::Io, why));
            }
            _ = winch.recv() => {
                if let Some((cols, rows)) = term::size() {
                    control.resize(cols, rows);
                }
            }
            _ = sigcont.recv() => {
                if let Some(r) = &raw {
                    r.reapply();
                }
            }
            _ = sigterm.recv() => break Some(signal_failure(&control, 15).await),
            _ = sighup.recv() => break Some(signal_failure(&control, 1).await),
            _ = sigint.recv() => break Some(signal_failure(&control, 2).await),
        }
    };
    if let Some(t) = stats_task {
        t.abort();
    }
    if let Some(f) = stop {
        drop(raw);
        if let (Some(api), Kind::Escaped | Kind::Signal(_)) = (&api, f.kind) {
            let _ =
                tokio::time::timeout(API_TERMINATE_LIMIT, api.terminate_session(&session_id)).await;
        }
        return Err(f);
    }

    // Output that came without a handshake still reaches stdout.
    if let Some(o) = output.take() {
        out_task = Some(tokio::spawn(pump_out(o, tokio::io::stdout(), out_done_tx)));
    }
    let result = finished.wait().await;
    // The driver closes the output pipes when it ends; let the last bytes reach the terminal.
    let _ = tokio::time::timeout(DRAIN_GRACE, async {
        if let Some(t) = out_task {
            let _ = t.await;
        }
        let _ = err_task.await;
    })
    .await;
    drop(raw);
    if result.is_err() && ended.is_some_and(|e| e.load(Ordering::Acquire)) {
        eprintln!("\r\nSession {session_id} ended on the service's side.\r");
        return Ok(0);
    }
    let outcome = result.map_err(|e| {
        if handshake_done {
            driver_failure(e)
        } else {
            handshake_failure(e)
        }
    })?;
    if let Some(msg) = outcome.close_message.as_deref().filter(|m| !m.is_empty()) {
        eprintln!("\r\n{}", msg.trim_end());
    }
    eprintln!("\r\nExiting session with sessionId: {session_id}.\r");
    match (session_type, exit_code.or(outcome.exit_code)) {
        (_, Some(code)) => Ok(u8::try_from(code.rem_euclid(256)).unwrap_or(255)),
        (Some(SessionType::NonInteractiveCommands), None) => Err(Failure::new(
            Kind::ChannelClosed,
            format!(
                "agent closed the channel before sending the exit code ({})",
                outcome.reason
            ),
        )),
        _ => Ok(0),
    }
}

/// Sleeps until `t`; never without one.
async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// SIGCONT's number (18 on Linux x86/arm, 19 on some others); tokio has no named kind for it.
fn libc_sigcont() -> i32 {
    rustix::process::Signal::CONT.as_raw()
}

async fn signal_failure(control: &ssm_tokio::Control, n: u8) -> Failure {
    control.terminate();
    tokio::time::sleep(TERMINATE_GRACE).await;
    Failure::new(Kind::Signal(n), format!("terminated by signal {n}"))
}

/// Copies a session stream to a local one, flushing after each read (interactive output).
async fn pump_out<R, W>(mut from: R, mut to: W, done: mpsc::Sender<std::result::Result<(), String>>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let result = loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break Ok(()),
            Ok(n) => n,
        };
        if let Err(e) = async {
            to.write_all(&buf[..n]).await?;
            to.flush().await
        }
        .await
        {
            break Err(format!("cannot write session output: {e}"));
        }
    };
    let _ = done.send(result).await;
}

/// How stdin feeds the session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Input {
    /// A terminal in raw mode: the `~` escapes apply.
    Escapes,
    /// A pipe into a shell: an `exit` line follows EOF.
    Script,
    /// A port session's byte stream: copied as is.
    Stream,
}

/// Forwards stdin to the session. In raw mode the `~` escapes apply; at EOF of a non-terminal
/// stdin (a pipe into a shell session) an `exit` line follows, so the remote shell ends as it
/// would at the end of a script; a port session's stream is copied untouched, and its EOF ends
/// the session ([`InputEnd::StreamEof`]).
async fn pump_in(mut input: ssm_tokio::StreamWriter, mode: Input, end: mpsc::Sender<InputEnd>) {
    let escapes = mode == Input::Escapes;
    let mut stdin = tokio::io::stdin();
    let mut filter = InputFilter::new(escapes);
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(4096);
    loop {
        let n = match stdin.read(&mut buf).await {
            Ok(0) if mode == Input::Stream => {
                let _ = input.flush().await;
                let _ = end.send(InputEnd::StreamEof).await;
                // Keep the writer until the session ends, as below.
                std::future::pending::<()>().await;
                return;
            }
            Ok(0) => {
                if mode == Input::Script {
                    // Not Ctrl-D: typed ahead into the PTY before the shell sets its terminal
                    // modes, the line discipline swallows it.
                    let eof: &[u8] = if filter.at_line_start() {
                        b"exit\r"
                    } else {
                        b"\rexit\r"
                    };
                    let _ = input.write_all(eof).await;
                    let _ = input.flush().await;
                }
                // Keep the writer open: the protocol has no end-of-input, and a closed pipe must
                // not cut off what is still on its way.
                std::future::pending::<()>().await;
                return;
            }
            Ok(n) => n,
            Err(e) => {
                let _ = end
                    .send(InputEnd::Failed(format!("cannot read stdin: {e}")))
                    .await;
                return;
            }
        };
        if mode == Input::Stream {
            if input.write_all(&buf[..n]).await.is_err() {
                return;
            }
            let _ = input.flush().await;
            continue;
        }
        out.clear();
        let outcome = filter.feed(&buf[..n], &mut out);
        if !out.is_empty() && input.write_all(&out).await.is_err() {
            return; // the session ended; the event loop reports how
        }
        let _ = input.flush().await;
        if outcome.help {
            eprint!("{}", escape::HELP);
        }
        if outcome.disconnect {
            let _ = end.send(InputEnd::Escape).await;
            return;
        }
    }
}

fn io_failure(e: std::io::Error) -> Failure {
    Failure::new(Kind::Io, format!("terminal: {e}"))
}

/// Maps a driver error to a failure kind (the texts are the driver's, token-free by contract).
pub fn driver_failure(e: ssm_tokio::Error) -> Failure {
    use ssm_tokio::Error as E;
    let kind = match &e {
        E::InvalidUrl(_) | E::PlainWsRefused => Kind::Usage,
        E::Unreachable { .. } => Kind::Unreachable,
        E::Tls { .. } => Kind::Tls,
        E::WebSocket(d) if d.contains("401") || d.contains("403") => Kind::Auth,
        E::WebSocket(_) | E::Protocol(_) => Kind::Protocol,
        E::HandshakeFailed(_) => Kind::Auth,
        E::ChannelClosed(_) => Kind::ChannelClosed,
        E::ConnectionLost(_) => Kind::ConnectionLost,
        E::Io(_) => Kind::Io,
        _ => Kind::Internal,
    };
    Failure::new(kind, e.to_string())
}

/// Before the handshake, a connection that closes means the service or agent refused us: most
/// often a bad or expired token.
fn handshake_failure(e: ssm_tokio::Error) -> Failure {
    use ssm_tokio::Error as E;
    match e {
        E::ChannelClosed(_) | E::ConnectionLost(_) => Failure::new(
            Kind::Auth,
            "the connection was closed before the session handshake (bad or expired token?)",
        ),
        E::HandshakeFailed(d) => Failure::new(Kind::Auth, format!("session refused: {d}")),
        other => driver_failure(other),
    }
}
