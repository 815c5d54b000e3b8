//! What the emulated agent runs for a session: a shell or command in a PTY, or a command on
//! pipes with its exit code.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Kind;
use ssm_proto::payload::Flag;
use ssm_tokio::{AgentSession, SessionEvent};

/// How long output may keep flowing after the process exited (a background job can hold the PTY).
const DRAIN: Duration = Duration::from_secs(3);
/// Size of the PTY until the client sends one.
const DEFAULT_SIZE: (u16, u16) = (80, 24);

/// Runs `kind` for `agent` until the process ends or the client goes away.
pub(crate) async fn run(agent: AgentSession, kind: Kind, shell: String, agent_version: String) {
    let AgentSession {
        input,
        output,
        stderr,
        mut events,
        control,
        finished,
    } = agent;
    let mut size = DEFAULT_SIZE;
    let client_version;
    loop {
        match events.next().await {
            Some(SessionEvent::HandshakeComplete(info)) => {
                client_version = info.client_version;
                break;
            }
            Some(SessionEvent::Resized { cols, rows }) => size = (cols, rows),
            Some(SessionEvent::Closed(_)) | None => {
                let _ = finished.wait().await;
                return;
            }
            Some(_) => {}
        }
    }
    let result = match kind {
        Kind::Shell => {
            let args: Vec<String> = Vec::new();
            run_pty(&shell, &args, size, input, output, &mut events).await
        }
        Kind::Interactive(cmd) => {
            let args = vec!["-c".to_string(), cmd];
            run_pty("/bin/sh", &args, size, input, output, &mut events).await
        }
        Kind::Port {
            host,
            port,
            local_forwarding,
            ..
        } => {
            // As the agent decides (`agent/session/plugins/port`): smux only for
            // LocalPortForwarding, and only when both ends are new enough.
            let mux = local_forwarding
                && ssm_tokio::forward::multiplexed(&agent_version, &client_version);
            run_port(&host, port, mux, &agent_version, input, output, &mut events).await
        }
        Kind::NonInteractive(cmd) => {
            match run_pipes(&cmd, input, output, stderr, &mut events).await {
                Ok(code) => {
                    control.send_exit_code(code);
                    Ok(format!("command exited with status {code}"))
                }
                Err(e) => Err(e),
            }
        }
    };
    let reason = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("emulator: cannot run the session's process: {e}");
            format!("the emulator could not start the process: {e}")
        }
    };
    control.close_channel(reason);
    // Keep handling events (the driver needs no help) until the session ends.
    let drain = async { while events.next().await.is_some() {} };
    let _ = tokio::join!(drain, finished.wait());
}

async fn run_pty(
    program: &str,
    args: &[String],
    (cols, rows): (u16, u16),
    mut input: ssm_tokio::StreamReader,
    mut output: ssm_tokio::StreamWriter,
    events: &mut ssm_tokio::Events,
) -> std::io::Result<String> {
    let to_io = |e: pty_process::Error| std::io::Error::other(e.to_string());
    let (pty, pts) = pty_process::open().map_err(to_io)?;
    pty.resize(pty_process::Size::new(rows, cols))
        .map_err(to_io)?;
    let mut child = pty_process::Command::new(program)
        .args(args)
        .env("TERM", "xterm-256color")
        .kill_on_drop(true)
        .spawn(pts)
        .map_err(to_io)?;
    let (mut pty_r, mut pty_w) = pty.into_split();
    let out_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match pty_r.read(&mut buf).await {
                // Linux answers EIO once the last process holding the terminal has gone.
                Ok(0) | Err(_) => {
                    tracing::trace!("pty output ended");
                    break;
                }
                Ok(n) => {
                    tracing::trace!(n, "pty output");
                    if output.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = output.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    let mut input_open = true;
    let mut events_open = true;
    let status = loop {
        tokio::select! {
            r = input.read(&mut buf), if input_open => match r {
                Ok(0) | Err(_) => input_open = false,
                Ok(n) => {
                    tracing::trace!(n, "pty input");
                    if pty_w.write_all(&buf[..n]).await.is_err() {
                        input_open = false;
                    }
                }
            },
            ev = events.next(), if events_open => {
                if let Some((cols, rows)) = on_event(ev, &mut child, &mut events_open) {
                    if let Err(e) = pty_w.resize(pty_process::Size::new(rows, cols)) {
                        tracing::debug!("pty resize: {e}");
                    }
                }
            }
            s = child.wait() => break s?,
        }
    };
    tracing::trace!(?status, "pty child exited");
    drop(pty_w);
    let _ = tokio::time::timeout(DRAIN, out_task).await;
    Ok(match status.code() {
        Some(c) => format!("process exited with status {c}"),
        None => "process ended by a signal".to_string(),
    })
}

async fn run_pipes(
    cmd: &str,
    mut input: ssm_tokio::StreamReader,
    mut output: ssm_tokio::StreamWriter,
    mut stderr: ssm_tokio::StreamWriter,
    events: &mut ssm_tokio::Events,
) -> std::io::Result<i32> {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let in_task = tokio::spawn(async move {
        if let Some(stdin) = stdin.as_mut() {
            let _ = tokio::io::copy(&mut input, stdin).await;
        }
    });
    let out_task = tokio::spawn(async move {
        if let Some(o) = out.as_mut() {
            let _ = tokio::io::copy(o, &mut output).await;
        }
        let _ = output.shutdown().await;
    });
    let err_task = tokio::spawn(async move {
        if let Some(e) = err.as_mut() {
            let _ = tokio::io::copy(e, &mut stderr).await;
        }
        let _ = stderr.shutdown().await;
    });
    let mut events_open = true;
    let status = loop {
        tokio::select! {
            ev = events.next(), if events_open => {
                let _ = on_event(ev, &mut child, &mut events_open);
            }
            s = child.wait() => break s?,
        }
    };
    in_task.abort();
    let _ = tokio::time::timeout(DRAIN, out_task).await;
    let _ = tokio::time::timeout(DRAIN, err_task).await;
    Ok(exit_code(status))
}

/// Acts on a session event while the process runs: kills it when the client terminates or the
/// session ends; returns a new terminal size.
fn on_event(
    ev: Option<SessionEvent>,
    child: &mut tokio::process::Child,
    events_open: &mut bool,
) -> Option<(u16, u16)> {
    match ev {
        Some(SessionEvent::Resized { cols, rows }) => return Some((cols, rows)),
        None => {
            *events_open = false;
            let _ = child.start_kill();
        }
        Some(SessionEvent::Flag(Flag::TerminateSession)) | Some(SessionEvent::Closed(_)) => {
            let _ = child.start_kill();
        }
        Some(_) => {}
    }
    None
}

#[cfg(unix)]
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[cfg(not(unix))]
fn exit_code(status: std::process::ExitStatus) -> i32 {
    status.code().unwrap_or(-1)
}

/// A port session: every stream (smux) or connection (basic) goes to `host:port`.
async fn run_port(
    host: &str,
    port: u16,
    mux: bool,
    agent_version: &str,
    input: ssm_tokio::StreamReader,
    output: ssm_tokio::StreamWriter,
    events: &mut ssm_tokio::Events,
) -> std::io::Result<String> {
    use crate::forward::{serve_basic, serve_mux, BasicEnd};
    use ssm_tokio::forward::LocalStreamDyn;
    let target = format!("{host}:{port}");
    let connect = move || {
        let target = target.clone();
        async move {
            let s = tokio::net::TcpStream::connect(target).await?;
            let _ = s.set_nodelay(true);
            Ok(Box::new(s) as Box<dyn LocalStreamDyn>)
        }
    };
    if !mux {
        // Basic: the client's flags come in the input, where they fall among its bytes.
        return match serve_basic(input, output, connect).await? {
            BasicEnd::Terminated => Ok(TERMINATED.into()),
            BasicEnd::InputEnded => Ok(end_reason(events)),
        };
    }
    let io = tokio::io::join(input, output);
    let config = ssm_proto::smux::Config::for_agent(agent_version);
    let serve = serve_mux(io, config, connect);
    tokio::pin!(serve);
    loop {
        tokio::select! {
            r = &mut serve => return r.map(|()| "port session ended".into()),
            ev = events.next() => match ev {
                Some(SessionEvent::Flag(Flag::TerminateSession)) => {
                    return Ok(TERMINATED.into())
                }
                Some(SessionEvent::Closed(r)) => return Ok(r),
                None => return Ok("session ended".into()),
                Some(_) => {}
            },
        }
    }
}

/// Why a port session ended when the client sent TerminateSession.
const TERMINATED: &str = "the client terminated the session";

/// Why the session ended, from the events left once its input has ended.
fn end_reason(events: &mut ssm_tokio::Events) -> String {
    while let Some(ev) = events.try_next() {
        if let SessionEvent::Closed(r) = ev {
            return r;
        }
    }
    "session ended".into()
}
