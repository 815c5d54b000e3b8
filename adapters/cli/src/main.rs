//! `ssm-session`: an AWS Session Manager client, and a drop-in `session-manager-plugin`.
//!
//! Status text goes to stderr; stdout carries only the session's output.

#![allow(
    clippy::std_instead_of_core,
    reason = "a std binary; the lint is meant for the no_std core"
)]

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

mod aws;
mod escape;
mod exit;
mod frame;
mod plugin;
mod port;
mod session;
mod term;

use std::sync::atomic::{AtomicBool, Ordering};

use aws::{Aws, AwsOptions, Resumed};
use exit::{Failure, Kind, Result};
use ssm_emulator::{Emulator, EmulatorConfig};
use ssm_tokio::{ConnectOptions, Faults, Grant, ResumeFn, TlsOptions};

/// Environment variables, listed under `--help`.
const ENV_HELP: &str = "\
Environment:
  AWS_CA_BUNDLE          PEM file of extra trusted CAs (TLS interception, the emulator's CA)
  AWS_PROFILE, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
  AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_SSM, ...
                         credentials, region and endpoint, resolved as the AWS CLI does
                         (SSO, credential_process, role_arn + source_profile included)
  SSM_SESSION_NO_SIGN_UPGRADE=1
                         do not SigV4-sign the data-channel upgrade (as --no-sign-upgrade)
  SSM_SESSION_LOG        driver logs on stderr, e.g. `debug` or `ssm_tokio=trace` (never the token)";

/// AWS Session Manager client: shells, commands, and a drop-in `session-manager-plugin`.
///
/// Run as `session-manager-plugin` (a symlink) or with the AWS CLI's plugin arguments
/// (`RESPONSE REGION StartSession PROFILE PARAMETERS ENDPOINT`), it behaves as the official plugin
/// and reports version 1.2.779.0 (see `plugin --version`). In a terminal session, `~.` after Enter
/// leaves the session, `~?` lists the escapes.
#[derive(Debug, Parser)]
#[command(
    name = "ssm-session",
    version,
    after_help = format!("{}\n\n{ENV_HELP}", exit::EXIT_CODES_HELP)
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a local Session Manager emulator in this process and open a shell on it through the
    /// full protocol (JSON API, TLS WebSocket with a throwaway CA, data channel).
    ///
    /// With stdin not a terminal, the shell reads stdin until EOF and then exits.
    Demo(DemoArgs),
    /// Run a local Session Manager emulator on loopback until killed; prints `endpoint=URL`
    /// (and `ca_file=PATH` with TLS) on stdout.
    Emulator(EmulatorArgs),
    /// Start a session through the SSM API (signed with your AWS credentials) and run it.
    Start(StartArgs),
    /// Decode captured data-channel frames to JSON lines, and encode them back.
    Frame(frame::FrameArgs),
    /// Behave as `session-manager-plugin` with these arguments (what a symlink of that name does).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Plugin {
        /// `RESPONSE REGION StartSession [PROFILE [PARAMETERS [ENDPOINT]]]`, or `--version`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Run this command (AWS-StartNonInteractiveCommand) and exit with its exit code.
    #[arg(long, short = 'c')]
    command: Option<String>,
    /// With --command: run it in a terminal (AWS-StartInteractiveCommand; no exit code).
    #[arg(long, requires = "command")]
    interactive: bool,
    /// Use ws:// instead of wss:// for the data channel.
    #[arg(long)]
    no_tls: bool,
    /// The shell the emulator runs (default /bin/bash, else /bin/sh).
    #[arg(long)]
    shell: Option<String>,
    /// Port forwarding instead of a shell: the emulated agent connects to HOST:PORT
    /// (AWS-StartPortForwardingSessionToRemoteHost) and this client listens on --bind and
    /// --local-port (default: a free port, printed on stderr).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "command")]
    forward: Option<String>,
    /// With --forward: no listener, stdin/stdout are the stream (AWS-StartSSHSession, as an SSH
    /// ProxyCommand); HOST must be the emulated instance itself (localhost, 127.0.0.1 or ::1).
    #[arg(long, requires = "forward")]
    stdio: bool,
    /// The version the emulated agent reports: below 3.0.196.0, port sessions use basic mode (one
    /// connection at a time) instead of smux.
    #[arg(long, value_name = "VERSION")]
    agent_version: Option<String>,
    /// Do not SigV4-sign the data-channel WebSocket upgrade (also SSM_SESSION_NO_SIGN_UPGRADE=1).
    #[arg(long)]
    no_sign_upgrade: bool,
    #[command(flatten)]
    strict: StrictArgs,
    #[command(flatten)]
    port: port::PortArgs,
}

/// The emulator's AWS-like strictness (shared by `demo` and `emulator`).
#[derive(Debug, Args, Clone)]
struct StrictArgs {
    /// Verify SigV4 on every API call and WebSocket upgrade against these keys, as AWS does
    /// (`AKID:SECRET` or `AKID:SECRET:SESSION_TOKEN`); `demo` also signs with them.
    #[arg(long, value_name = "AKID:SECRET[:TOKEN]")]
    credentials: Option<String>,
    /// Close every data channel after SECS seconds with `close 1000 "Bye"` (the service does so
    /// hourly); the client resumes.
    #[arg(long, value_name = "SECS")]
    close_every: Option<f64>,
    /// Require KMS encryption with this key for every non-port session, as Session Manager
    /// preferences can; a local KMS on the same port (`TrentService.GenerateDataKey` /
    /// `Decrypt`) holds the key and binds each data key to its session's context.
    #[arg(long, value_name = "KEY_ID")]
    kms_key_id: Option<String>,
    /// With --kms-key-id: refuse clients that do not acknowledge the agent's KMS challenge (the
    /// agent setting `Kms.RequireKMSChallengeResponse`).
    #[arg(long, requires = "kms_key_id")]
    require_kms_challenge: bool,
}

impl StrictArgs {
    /// Applies the options to an emulator configuration.
    fn apply(&self, config: &mut EmulatorConfig) -> Result<()> {
        if let Some(c) = &self.credentials {
            config.credentials = Some(
                ssm_emulator::sigv4::Credentials::parse(c)
                    .map_err(|e| Failure::new(Kind::Usage, format!("--credentials: {e}")))?,
            );
        }
        if let Some(k) = &self.kms_key_id {
            if k.is_empty() {
                return Err(Failure::new(Kind::Usage, "--kms-key-id wants a key id"));
            }
            config.kms_key_id = Some(k.clone());
            config.require_kms_challenge = self.require_kms_challenge;
        }
        if let Some(secs) = self.close_every {
            config.close_every = Some(
                std::time::Duration::try_from_secs_f64(secs)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| Failure::new(Kind::Usage, "--close-every wants seconds > 0"))?,
            );
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
struct EmulatorArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Hand out ws:// stream URLs instead of wss://.
    #[arg(long)]
    no_tls: bool,
    /// Where to write the throwaway CA (PEM); default: a file in the temp directory.
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// The shell sessions run (default /bin/bash, else /bin/sh).
    #[arg(long)]
    shell: Option<String>,
    /// Pause after each data message the agent sends, in ms (the real agent: 1).
    #[arg(long)]
    pacing_ms: Option<u64>,
    /// Fault injection: probability of dropping a frame.
    #[arg(long, default_value_t = 0.0)]
    drop: f64,
    /// Fault injection: probability of duplicating a frame.
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Fault injection: probability of reordering a frame.
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// Fault injection: cut each WebSocket after this many frames (clients resume).
    #[arg(long)]
    cut_after: Option<u64>,
    /// Seed of the fault injection.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    strict: StrictArgs,
}

#[derive(Debug, Args)]
struct StartArgs {
    /// The instance or managed node id.
    #[arg(long)]
    target: String,
    /// Session document (default: a shell).
    #[arg(long)]
    document_name: Option<String>,
    /// Document parameters as JSON, e.g. '{"command":["uname -a"]}'.
    #[arg(long)]
    parameters: Option<String>,
    /// AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, then the profile's region).
    #[arg(long)]
    region: Option<String>,
    /// Profile of the shared config/credentials files (default: AWS_PROFILE, then `default`).
    #[arg(long)]
    profile: Option<String>,
    /// SSM endpoint (default: AWS_ENDPOINT_URL_SSM, AWS_ENDPOINT_URL, the profile's endpoint_url,
    /// then https://ssm.REGION.amazonaws.com). Stream URLs off AWS (and ws://) are accepted only
    /// when this is a loopback address.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Do not SigV4-sign the data-channel WebSocket upgrade (also SSM_SESSION_NO_SIGN_UPGRADE=1).
    #[arg(long)]
    no_sign_upgrade: bool,
    #[command(flatten)]
    port: port::PortArgs,
}

fn main() -> ExitCode {
    term::install_panic_hook();
    // A panic is a bug: the hook restored the terminal and printed one line; exit 255.
    std::panic::catch_unwind(real_main).unwrap_or(ExitCode::from(Kind::Internal.code()))
}

fn real_main() -> ExitCode {
    init_logging();
    let args: Vec<OsString> = std::env::args_os().collect();
    if plugin::is_drop_in(&args) {
        return run_plugin(&args);
    }
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Plugin { args } => {
            let argv: Vec<OsString> = std::iter::once(OsString::from(plugin::PLUGIN_NAME))
                .chain(args)
                .collect();
            run_plugin(&argv)
        }
        Command::Frame(a) => frame::run(a),
        Command::Demo(a) => finish(block_on(demo(a))),
        Command::Emulator(a) => finish(block_on(emulator(a))),
        Command::Start(a) => finish(block_on(start(a))),
    }
}

/// Logs of the driver and emulator (`tracing`) on stderr when `SSM_SESSION_LOG` is set, e.g.
/// `SSM_SESSION_LOG=debug` or `SSM_SESSION_LOG=ssm_tokio=trace`. Off by default: the session's
/// stderr belongs to the remote command. No log line carries the token or a key, whatever the
/// filter says: at trace level the SDK prints whole HTTP answers (StartSession's `TokenValue`,
/// GenerateDataKey's `Plaintext`) and its signer the canonical request (the session token), the
/// HTTP stack headers, and the WebSocket library whole text messages (OpenDataChannelInput
/// carries the token; its `log` records reach `tracing` when the bridge is compiled in). Those
/// libraries are capped at `debug`, the WebSocket library is off.
fn init_logging() {
    const CAPS: [&str; 12] = [
        "tungstenite=off",
        "tokio_tungstenite=off",
        "aws_smithy_runtime=debug",
        "aws_smithy_runtime_api=debug",
        "aws_smithy_http_client=debug",
        "aws_smithy_types=debug",
        "aws_sigv4=debug",
        "aws_runtime=debug",
        "aws_config=debug",
        "hyper=debug",
        "hyper_util=debug",
        "h2=debug",
    ];
    if let Ok(filter) = std::env::var("SSM_SESSION_LOG") {
        if let Ok(mut filter) = tracing_subscriber::EnvFilter::try_new(filter) {
            for quiet in CAPS {
                if let Ok(d) = quiet.parse() {
                    filter = filter.add_directive(d);
                }
            }
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .try_init();
        }
    }
}

/// Runs `fut` on a runtime, then drops the runtime without waiting for the blocking stdin
/// reader (it may sit in `read` forever).
fn block_on<F: std::future::Future<Output = Result<u8>>>(fut: F) -> Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Kind::Internal, format!("cannot start the runtime: {e}")))?;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(fut)));
    // Dropping the runtime normally would wait for the blocking stdin reader forever, also
    // while unwinding from a panic.
    rt.shutdown_background();
    r.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn finish(r: Result<u8>) -> ExitCode {
    term::restore();
    match r {
        Ok(code) => ExitCode::from(code),
        Err(f) => f.report(),
    }
}

fn run_plugin(args: &[OsString]) -> ExitCode {
    match plugin::parse(args, &mut plugin::take_env) {
        Ok(plugin::Invocation::Version) => {
            println!("{}", plugin::PLUGIN_COMPAT_VERSION);
            ExitCode::SUCCESS
        }
        Ok(plugin::Invocation::Installed) => {
            println!("{}", plugin::INSTALLED_MESSAGE);
            ExitCode::SUCCESS
        }
        Ok(plugin::Invocation::Session(p)) => finish(block_on(plugin_session(*p))),
        Err(e) => e.report(),
    }
}

/// Whether the upgrade is signed: on unless `--no-sign-upgrade` or `SSM_SESSION_NO_SIGN_UPGRADE=1`.
fn sign_upgrade(flag_off: bool) -> bool {
    !flag_off && std::env::var("SSM_SESSION_NO_SIGN_UPGRADE").map_or(true, |v| v != "1")
}

/// A `ResumeFn` that calls `ResumeSession` through `aws`. An answer with an empty token (the
/// session ended) sets `ended` and fails every later attempt at once.
fn resume_with(aws: Aws, session_id: String, ended: Arc<AtomicBool>) -> ResumeFn {
    Arc::new(move || {
        let (aws, id, ended) = (aws.clone(), session_id.clone(), ended.clone());
        Box::pin(async move {
            if ended.load(Ordering::Acquire) {
                return Ok(None);
            }
            match aws.resume_session(&id).await {
                Ok(Resumed::Grant(g)) => Ok(Some(*g)),
                Ok(Resumed::Ended) => {
                    ended.store(true, Ordering::Release);
                    Ok(None)
                }
                Err(f) => Err(std::io::Error::other(f.message)),
            }
        })
    })
}

/// Runs the session that `grant` (a StartSession answer) opened, resuming it through `aws`
/// when the connection drops.
async fn run_granted(
    aws: Aws,
    grant: Grant,
    target: &str,
    tls: TlsOptions,
    port: port::PortOptions,
) -> Result<u8> {
    let session_id = grant.session_id().to_owned();
    let ended = Arc::new(AtomicBool::new(false));
    let options = ConnectOptions {
        tls,
        resume: Some(resume_with(aws.clone(), session_id.clone(), ended.clone())),
        upgrade_headers: aws.upgrade_headers(),
        kms: Some(aws.client_kms(target)),
        ..Default::default()
    };
    session::run(session::Run {
        session_id,
        grant,
        options,
        api: Some(aws),
        port,
        ended: Some(ended),
    })
    .await
}

async fn plugin_session(p: plugin::PluginArgs) -> Result<u8> {
    let tls = TlsOptions {
        allow_plain_ws: p.allows_plain_ws(),
        ..Default::default()
    };
    let aws = Aws::load(AwsOptions {
        region: Some(p.region.clone()),
        profile: Some(p.profile.clone()),
        endpoint_url: p.endpoint.clone(),
        credentials: None,
        sign_upgrade: sign_upgrade(false),
        proxy: None,
    })
    .await?;
    run_granted(aws, p.grant, &p.target, tls, port::PortOptions::default()).await
}

async fn start(a: StartArgs) -> Result<u8> {
    // A named port that is taken fails before anything is asked of AWS.
    let port = port::PortOptions::prebind(a.port.clone()).await?;
    if let Some(e) = a.endpoint_url.as_deref() {
        if !aws::is_http_url(e) {
            return Err(Failure::new(
                Kind::Usage,
                "--endpoint-url is not an http(s) url",
            ));
        }
    }
    let parameters = match &a.parameters {
        Some(p) => Some(
            serde_json::from_str::<Value>(p)
                .map_err(|e| Failure::new(Kind::Usage, format!("--parameters is not json: {e}")))?,
        ),
        None => None,
    };
    let aws = Aws::load(AwsOptions {
        region: a.region.clone(),
        profile: a.profile.clone(),
        endpoint_url: a.endpoint_url.clone(),
        credentials: None,
        sign_upgrade: sign_upgrade(a.no_sign_upgrade),
        proxy: None,
    })
    .await?;
    let grant = aws
        .start_session(&a.target, a.document_name.as_deref(), parameters.as_ref())
        .await?;
    let tls = TlsOptions {
        allow_plain_ws: aws::allows_plain_ws(&grant),
        ..Default::default()
    };
    run_granted(aws, grant, &a.target, tls, port).await
}

fn emulator_config(no_tls: bool, shell: Option<String>) -> EmulatorConfig {
    let mut config = EmulatorConfig {
        tls: !no_tls,
        ..Default::default()
    };
    if let Some(s) = shell {
        config.shell = s;
    }
    config
}

async fn start_emulator(config: EmulatorConfig) -> Result<Emulator> {
    Emulator::start(config)
        .await
        .map_err(|e| Failure::new(Kind::Io, format!("cannot start the emulator: {e}")))
}

/// `--forward HOST:PORT` as the emulator's document parameters.
fn forward_request(a: &DemoArgs, forward: &str) -> Result<Value> {
    let bad = || {
        Failure::new(
            Kind::Usage,
            format!("--forward wants HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:22), got {forward:?}"),
        )
    };
    let (host, port) = forward.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    let mut request = json!({ "Target": "i-0123456789abcdef0" });
    if a.stdio {
        let local = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !local {
            return Err(Failure::new(
                Kind::Usage,
                "--stdio (AWS-StartSSHSession) reaches only the instance itself: HOST must be \
                 localhost, 127.0.0.1 or ::1",
            ));
        }
        request["DocumentName"] = json!("AWS-StartSSHSession");
        request["Parameters"] = json!({ "portNumber": [port.to_string()] });
    } else {
        request["DocumentName"] = json!("AWS-StartPortForwardingSessionToRemoteHost");
        let mut p = json!({ "host": [host], "portNumber": [port.to_string()] });
        if let Some(l) = a.port.local_port {
            p["localPortNumber"] = json!([l.to_string()]);
        }
        request["Parameters"] = p;
    }
    Ok(request)
}

async fn demo(mut a: DemoArgs) -> Result<u8> {
    let forward = match &a.forward {
        Some(f) => Some(forward_request(&a, f)?),
        None => None,
    };
    // Bind before anything else: a port in use is an immediate error.
    let port = port::PortOptions::prebind(a.port.clone()).await?;
    if forward.is_none() && a.command.is_none() && !term::stdin_is_tty() {
        // Piped input: a shell that reads it as a script. An interactive shell would switch the
        // PTY's modes while input is typed ahead, and lines get lost.
        let shell = a.shell.clone().unwrap_or_else(|| "sh".to_owned());
        a.command = Some(format!("{shell} /dev/stdin"));
        a.interactive = true;
    }
    let mut config = emulator_config(a.no_tls, a.shell.clone());
    if let Some(v) = &a.agent_version {
        config.agent_version.clone_from(v);
    }
    a.strict.apply(&mut config)?;
    // The client signs with the emulator's keys (strict) or throwaway ones: never yours.
    let credentials = match &config.credentials {
        Some(c) => aws_credential_types::Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            c.session_token.clone(),
            None,
            "ssm-session demo",
        ),
        None => aws_credential_types::Credentials::new(
            "AKIDEMULATOR",
            "emulator-secret",
            None,
            None,
            "ssm-session demo",
        ),
    };
    let emu = start_emulator(config).await?;
    eprintln!(
        "ssm-session demo: local Session Manager emulator at {} ({})",
        emu.endpoint_url(),
        if a.no_tls {
            "ws://"
        } else {
            "wss:// with a throwaway CA"
        }
    );
    let aws = Aws::load(AwsOptions {
        region: Some("us-east-1".into()),
        profile: None,
        endpoint_url: Some(emu.endpoint_url()),
        credentials: Some(credentials),
        sign_upgrade: sign_upgrade(a.no_sign_upgrade),
        proxy: None,
    })
    .await?;
    let mut request = forward.unwrap_or_else(|| json!({ "Target": "i-0123456789abcdef0" }));
    if let Some(c) = &a.command {
        let doc = if a.interactive {
            "AWS-StartInteractiveCommand"
        } else {
            "AWS-StartNonInteractiveCommand"
        };
        request["DocumentName"] = json!(doc);
        request["Parameters"] = json!({ "command": [c] });
    }
    let grant = aws
        .start_session(
            request["Target"].as_str().unwrap_or_default(),
            request["DocumentName"].as_str(),
            request.get("Parameters"),
        )
        .await?;
    let target = request["Target"].as_str().unwrap_or_default().to_owned();
    run_granted(aws, grant, &target, emu.client_tls(), port).await
}

async fn emulator(a: EmulatorArgs) -> Result<u8> {
    let mut config = emulator_config(a.no_tls, a.shell);
    config.bind = std::net::SocketAddr::from(([127, 0, 0, 1], a.port));
    if let Some(ms) = a.pacing_ms {
        config.pacing = (ms > 0).then(|| std::time::Duration::from_millis(ms));
    }
    let faults = Faults {
        seed: a.seed,
        drop: a.drop,
        duplicate: a.duplicate,
        reorder: a.reorder,
        cut_after: a.cut_after,
        ..Default::default()
    };
    if !faults.is_none() {
        config.faults = Some(faults);
    }
    a.strict.apply(&mut config)?;
    let tls = config.tls;
    let emu = start_emulator(config).await?;
    let mut ca_written = None;
    println!("endpoint={}", emu.endpoint_url());
    if tls {
        let path = a.ca_file.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("ssm-session-emulator-{}-ca.pem", emu.addr().port()))
        });
        std::fs::write(&path, emu.ca_pem())
            .map_err(|e| Failure::new(Kind::Io, format!("cannot write {}: {e}", path.display())))?;
        println!("ca_file={}", path.display());
        ca_written = Some(path);
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    eprintln!(
        "ssm-session emulator: serving {} until interrupted; try\n  aws ssm start-session --target i-0123456789abcdef0 --endpoint-url {} --region us-east-1{}",
        emu.endpoint_url(),
        emu.endpoint_url(),
        if tls { "\n  (with AWS_CA_BUNDLE set to the ca_file above)" } else { "" }
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::new(Kind::Io, e.to_string()))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    if let Some(p) = ca_written {
        let _ = std::fs::remove_file(p);
    }
    drop(emu);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What a session resumed through a non-loopback endpoint (`ssm.us-east-1.amazonaws.com`,
    /// reached through a recording proxy on loopback) ends with when ResumeSession answers
    /// `answer(session_id, trap_port)`: the driver's error, whether the "session ended" flag was
    /// set, the request lines the endpoint got, and the bytes that reached the trap port.
    async fn resume_through_forged_endpoint(
        answer: fn(&str, u16) -> Value,
    ) -> (ssm_tokio::Error, bool, Vec<String>, Vec<u8>) {
        let emu = Emulator::start(EmulatorConfig {
            tls: false,
            close_every: Some(std::time::Duration::from_millis(300)),
            ..Default::default()
        })
        .await
        .unwrap();
        let grant = emu
            .start_session(&ssm_emulator::StartSession::non_interactive(
                "sleep 5; echo never",
            ))
            .unwrap();
        let id = grant.session_id().to_owned();

        // Whatever reaches the host the forged answer names.
        let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let trap_port = trap.local_addr().unwrap().port();
        let trapped = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let t = trapped.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = trap.accept().await {
                let t = t.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        t.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });

        // The "AWS endpoint": a proxy that answers every call with the forged grant.
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
        let calls = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let c = calls.clone();
        let forged = answer(&id, trap_port).to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = proxy.accept().await {
                let (c, forged) = (c.clone(), forged.clone());
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 8192];
                    loop {
                        let Ok(n) = s.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&got).into_owned();
                        let Some((head, body)) = text.split_once("\r\n\r\n") else {
                            continue;
                        };
                        if head.starts_with("CONNECT ") {
                            got.clear();
                            let _ = s
                                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                                .await;
                            continue;
                        }
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() < len {
                            continue;
                        }
                        c.lock()
                            .unwrap()
                            .push(head.lines().next().unwrap_or("").to_owned());
                        got.clear();
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n\
                             Content-Length: {}\r\n\r\n{forged}",
                            forged.len()
                        );
                        let _ = s.write_all(answer.as_bytes()).await;
                    }
                });
            }
        });

        let aws = Aws::load(AwsOptions {
            region: Some("us-east-1".into()),
            profile: None,
            endpoint_url: Some("http://ssm.us-east-1.amazonaws.com".into()),
            credentials: Some(aws_credential_types::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            )),
            sign_upgrade: false,
            proxy: Some(proxy_url),
        })
        .await
        .unwrap();
        let ended = Arc::new(AtomicBool::new(false));
        let mut options = ConnectOptions {
            tls: emu.client_tls(),
            resume: Some(resume_with(aws, id.clone(), ended.clone())),
            ..Default::default()
        };
        options.tls.allow_plain_ws = true;
        let session = ssm_tokio::connect(grant, options).await.unwrap();
        let ssm_tokio::ClientSession {
            mut output,
            finished,
            ..
        } = session;
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = output.read_to_end(&mut sink).await;
        });
        let err = tokio::time::timeout(std::time::Duration::from_secs(30), finished.wait())
            .await
            .expect("the session ends")
            .expect_err("the forged resume must end the session");
        let calls = calls.lock().unwrap().clone();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let trapped = trapped.lock().unwrap().clone();
        (err, ended.load(Ordering::Acquire), calls, trapped)
    }

    /// A ResumeSession answer that names a host off AWS, from an endpoint that is not
    /// loopback, is refused: the session ends with the reason, the named host never sees a byte.
    #[tokio::test]
    async fn resume_answer_off_aws_is_refused_and_gets_no_token() {
        let (err, ended, calls, trapped) = resume_through_forged_endpoint(|id, port| {
            json!({
                "SessionId": id,
                "StreamUrl": format!("ws://127.0.0.1:{port}/v1/data-channel/{id}"),
                "TokenValue": "forged-resume-token-sentinel",
            })
        })
        .await;
        let text = err.to_string();
        assert!(
            text.contains("unusable session response"),
            "not refused for its url: {text}"
        );
        assert!(!text.contains("forged-resume-token-sentinel") && !text.contains("127.0.0.1"));
        assert!(
            calls.iter().any(|l| l.starts_with("POST ")),
            "ResumeSession never reached the endpoint: {calls:?}"
        );
        assert!(!ended);
        assert!(trapped.is_empty(), "the forged host got bytes");
    }

    /// An empty token in the ResumeSession answer means the session ended: the flag that makes
    /// the run exit 0 is set, and no connection is attempted.
    #[tokio::test]
    async fn resume_answer_with_an_empty_token_ends_the_session() {
        let (err, ended, calls, trapped) = resume_through_forged_endpoint(
            |id, _| json!({ "SessionId": id, "StreamUrl": "", "TokenValue": "" }),
        )
        .await;
        assert!(ended, "{err}");
        // The driver stops at once (no more attempts, no second API call).
        assert!(matches!(err, ssm_tokio::Error::SessionEnded), "{err}");
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(trapped.is_empty());
    }
}
