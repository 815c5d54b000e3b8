//! The `session-manager-plugin` command-line contract (PROTOCOL.md §7).
//!
//! The AWS CLI runs the plugin as
//! `session-manager-plugin RESPONSE REGION StartSession PROFILE PARAMETERS ENDPOINT`, where
//! RESPONSE is the `StartSession` answer as JSON or, for plugins newer than 1.2.497.0, the name of
//! an environment variable starting `AWS_SSM_START_SESSION_RESPONSE` that holds it (read, then
//! removed from our environment so no child inherits the token). The legacy form stops after
//! the operation (`RESPONSE REGION StartSession`). `--version` prints
//! [`PLUGIN_COMPAT_VERSION`]; no argument prints an "installed successfully" note.

use std::ffi::OsString;

use serde_json::Value;
use ssm_tokio::Grant;

use crate::aws;
use crate::exit::{Failure, Kind, Result};

/// The plugin version we answer `--version` with, and send as `ClientVersion`.
///
/// The AWS CLI parses it as digits and dots: above 1.2.497.0 it passes the token through the
/// environment (never argv); below 1.2.764.0 it warns that the plugin is outdated. The agent
/// gates features on the client version (smux port forwarding from 1.1.70). 1.2.779.0 is the
/// official release whose wire behaviour this client reproduces: the engine's
/// [`DEFAULT_CLIENT_VERSION`](ssm_proto::session::DEFAULT_CLIENT_VERSION), one value for both.
pub const PLUGIN_COMPAT_VERSION: &str = ssm_proto::session::DEFAULT_CLIENT_VERSION;

/// The prefix of the environment variable form of argv[1].
pub const RESPONSE_ENV_PREFIX: &str = "AWS_SSM_START_SESSION_RESPONSE";

/// The name the AWS CLI runs.
pub const PLUGIN_NAME: &str = "session-manager-plugin";

/// The text printed when run without arguments (stdout, like the official plugin: installers
/// check it).
pub const INSTALLED_MESSAGE: &str =
    "\nThe Session Manager plugin was installed successfully. Use the AWS CLI to start a session.\n";

/// What a drop-in invocation asks for.
#[derive(Debug)]
pub enum Invocation {
    /// `--version`.
    Version,
    /// No argument.
    Installed,
    /// Open the session.
    Session(Box<PluginArgs>),
}

/// The arguments of a session invocation.
#[derive(Debug)]
pub struct PluginArgs {
    /// The `StartSession` answer, validated under the endpoint rule of argv[6].
    pub grant: Grant,
    /// argv[2].
    pub region: String,
    /// argv[4] (empty when the CLI had no `--profile`).
    pub profile: String,
    /// argv[6], the SSM endpoint (for `ResumeSession`); `None` in the legacy form.
    pub endpoint: Option<String>,
}

impl PluginArgs {
    /// Whether a `ws://` stream URL may be used: only when both the SSM endpoint and the stream
    /// URL are on this machine (a local emulator). A remote endpoint handing out `ws://` would
    /// send the token and the session in clear text, so that is refused.
    pub fn allows_plain_ws(&self) -> bool {
        aws::allows_plain_ws(&self.grant)
    }
}

/// Whether argv asks for drop-in behaviour: the program is named `session-manager-plugin`, or
/// argv[1] is a JSON object or the environment-variable name.
pub fn is_drop_in(args: &[OsString]) -> bool {
    let named = args
        .first()
        .and_then(|a0| std::path::Path::new(a0).file_name())
        .is_some_and(|n| n == PLUGIN_NAME);
    let first = args.get(1).and_then(|a| a.to_str()).unwrap_or("");
    named || first.trim_start().starts_with('{') || first.starts_with(RESPONSE_ENV_PREFIX)
}

/// Interprets a drop-in argv (argv[0] included). `env_take` reads and removes an environment
/// variable (the real one is [`take_env`]; tests pass a map).
///
/// # Errors
/// [`Kind::Usage`] for every malformed argument, with a one-line reason that never quotes the
/// response (it holds the token).
pub fn parse(
    args: &[OsString],
    env_take: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<Invocation> {
    let args: Vec<&str> = args
        .iter()
        .skip(1)
        .map(|a| {
            a.to_str()
                .ok_or_else(|| Failure::new(Kind::Usage, "arguments must be utf-8"))
        })
        .collect::<Result<_>>()?;
    match args.as_slice() {
        [] => return Ok(Invocation::Installed),
        ["--version"] => return Ok(Invocation::Version),
        [..] if args.len() < 3 => {
            return Err(Failure::new(
                Kind::Usage,
                format!(
                    "unknown operation {:?}; use `{PLUGIN_NAME} --version` to check the version",
                    if args[0].starts_with('{') {
                        "<json>"
                    } else {
                        args[0]
                    }
                ),
            ))
        }
        [..] if args.len() > 6 => {
            return Err(Failure::new(
                Kind::Usage,
                format!("expected at most 6 arguments, got {}", args.len()),
            ))
        }
        _ => {}
    }
    let response = if args[0].starts_with(RESPONSE_ENV_PREFIX) {
        env_take(args[0]).ok_or_else(|| {
            Failure::new(
                Kind::Usage,
                format!("environment variable {} is not set", args[0]),
            )
        })?
    } else {
        args[0].to_owned()
    };
    let region = args[1].to_owned();
    let operation = args[2];
    if operation != "StartSession" {
        return Err(Failure::new(
            Kind::Usage,
            format!("unsupported operation {operation:?} (only StartSession)"),
        ));
    }
    let profile = args.get(3).copied().unwrap_or("").to_owned();
    // argv[5], the StartSession request (`Target`, `DocumentName`, `Parameters`): checked, not
    // needed (the handshake says what kind of session this is).
    if let Some(p) = args.get(4).filter(|p| !p.is_empty()) {
        serde_json::from_str::<Value>(p).map_err(|e| {
            Failure::new(Kind::Usage, format!("request parameters are not json: {e}"))
        })?;
    }
    let endpoint = args
        .get(5)
        .filter(|e| !e.is_empty())
        .map(|e| (*e).to_owned());
    if let Some(e) = &endpoint {
        if !aws::is_http_url(e) {
            return Err(Failure::new(
                Kind::Usage,
                format!("endpoint {e:?} is not an http(s) url"),
            ));
        }
    }
    // The answer came from argv[6]'s endpoint (the AWS CLI passes the one it called): that
    // endpoint's rule decides where its stream URL may point.
    let policy = aws::endpoint_policy(endpoint.as_deref().unwrap_or(""));
    let grant = Grant::parse_with(response.as_bytes(), policy).map_err(|e| {
        // The model's errors name the faulty field, never its text.
        Failure::new(Kind::Usage, format!("unusable session response: {e}"))
    })?;
    Ok(Invocation::Session(Box::new(PluginArgs {
        grant,
        region,
        profile,
        endpoint,
    })))
}

/// Reads the environment variable `name` and removes it from this process's environment.
///
/// Called once, before any thread is spawned (the runtime starts afterwards).
pub fn take_env(name: &str) -> Option<String> {
    let v = std::env::var(name).ok();
    std::env::remove_var(name);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const RESPONSE: &str = r#"{"SessionId":"s-0a","StreamUrl":"ws://127.0.0.1:9/v1/data-channel/s-0a?role=publish_subscribe","TokenValue":"secret-token"}"#;
    const AWS_RESPONSE: &str = r#"{"SessionId":"s-0a","StreamUrl":"wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s-0a?role=publish_subscribe","TokenValue":"secret-token"}"#;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn session(args: &[&str], env: &mut dyn FnMut(&str) -> Option<String>) -> PluginArgs {
        match parse(&os(args), env) {
            Ok(Invocation::Session(p)) => *p,
            other => panic!("not a session: {other:?}"),
        }
    }

    #[test]
    fn detection() {
        assert!(is_drop_in(&os(&["/usr/local/bin/session-manager-plugin"])));
        assert!(is_drop_in(&os(&[
            "ssm-session",
            RESPONSE,
            "r",
            "StartSession"
        ])));
        assert!(is_drop_in(&os(&[
            "ssm-session",
            "AWS_SSM_START_SESSION_RESPONSE"
        ])));
        assert!(!is_drop_in(&os(&["ssm-session", "demo"])));
        assert!(!is_drop_in(&os(&["ssm-session"])));
        assert!(!is_drop_in(&os(&["ssm-session", "--version"])));
    }

    #[test]
    fn version_and_installed() {
        let a0 = "session-manager-plugin";
        assert!(matches!(
            parse(&os(&[a0]), &mut no_env).unwrap(),
            Invocation::Installed
        ));
        assert!(matches!(
            parse(&os(&[a0, "--version"]), &mut no_env).unwrap(),
            Invocation::Version
        ));
    }

    #[test]
    fn full_form_from_the_aws_cli() {
        let params = r#"{"Target": "i-0123456789abcdef0", "DocumentName": "AWS-StartNonInteractiveCommand", "Parameters": {"command": ["echo hi"]}}"#;
        let local = "http://127.0.0.1:4566";
        let p = session(
            &[
                "x",
                RESPONSE,
                "us-east-1",
                "StartSession",
                "",
                params,
                local,
            ],
            &mut no_env,
        );
        assert_eq!(p.grant.session_id(), "s-0a");
        assert_eq!(p.region, "us-east-1");
        assert_eq!(p.profile, "");
        assert_eq!(p.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
        assert!(p.allows_plain_ws());
    }

    #[test]
    fn env_var_form_takes_the_variable() {
        let mut env: HashMap<String, String> = [(
            "AWS_SSM_START_SESSION_RESPONSE".to_owned(),
            AWS_RESPONSE.to_owned(),
        )]
        .into();
        let mut take = |k: &str| env.remove(k);
        let name = "AWS_SSM_START_SESSION_RESPONSE";
        let p = session(&["x", name, "eu-west-1", "StartSession"], &mut take);
        assert_eq!(p.grant.token().expose_secret(), "secret-token");
        assert!(env.is_empty(), "the variable must be consumed");
        // Legacy form: no endpoint, so ws:// is not allowed.
        assert!(p.endpoint.is_none() && !p.allows_plain_ws());
        // ... and neither is a stream URL off AWS.
        let e = parse(&os(&["x", RESPONSE, "r", "StartSession"]), &mut no_env).unwrap_err();
        assert!(e.message.starts_with("unusable session response"), "{e}");

        let e = parse(
            &os(&["x", "AWS_SSM_START_SESSION_RESPONSE_X", "r", "StartSession"]),
            &mut no_env,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "environment variable AWS_SSM_START_SESSION_RESPONSE_X is not set"
        );
    }

    #[test]
    fn real_environment_is_consumed() {
        let name = "AWS_SSM_START_SESSION_RESPONSE_CLI_UNIT_TEST";
        std::env::set_var(name, AWS_RESPONSE);
        let p = session(&["x", name, "r", "StartSession"], &mut take_env);
        assert_eq!(p.grant.session_id(), "s-0a");
        assert!(std::env::var_os(name).is_none());
    }

    #[test]
    fn remote_endpoint_never_allows_ws_or_other_hosts() {
        let remote = "https://ssm.us-east-1.amazonaws.com";
        let p = session(
            &["x", AWS_RESPONSE, "r", "StartSession", "", "{}", remote],
            &mut no_env,
        );
        assert!(!p.allows_plain_ws());
        let e = parse(
            &os(&["x", RESPONSE, "r", "StartSession", "", "{}", remote]),
            &mut no_env,
        )
        .unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(!e.message.contains("127.0.0.1"), "{e}");
    }

    #[test]
    fn errors_never_echo_the_response() {
        let broken = r#"{"SessionId":"s","TokenValue":"secret-token""#;
        for args in [
            os(&["x", broken, "r", "StartSession"]),
            os(&["x", broken]),
            os(&["x", RESPONSE, "r", "Nope"]),
            os(&["x", RESPONSE, "r", "StartSession", "", "{bad", "http://h"]),
            os(&["x", RESPONSE, "r", "StartSession", "", "{}", "not a url"]),
            os(&[
                "x",
                RESPONSE,
                "r",
                "StartSession",
                "",
                "{}",
                "http://h",
                "x",
            ]),
        ] {
            let e = parse(&args, &mut no_env).unwrap_err();
            assert_eq!(e.kind, Kind::Usage);
            assert!(!e.message.contains("secret-token"), "{}", e.message);
        }
    }
}
