//! `ssm-session`: an AWS Session Manager client, and a drop-in `session-manager-plugin`.
//!
//! Status text goes to stderr; stdout carries only the session's output.

#![allow(
    clippy::std_instead_of_core,
    reason = "a std binary; the lint is meant for the no_std core"
)]
#![allow(
    dead_code,
    reason = "the API client and terminal code are wired to sessions once ssm-tokio lands"
)]

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod api;
mod escape;
mod exit;
mod plugin;
mod sigv4;
mod term;
mod url;

// Until the driver crate lands, the token wrapper lives here.
mod token;
use token::Token;

/// AWS Session Manager client: shells, commands, and a drop-in `session-manager-plugin`.
///
/// Run as `session-manager-plugin` (a symlink) or with the AWS CLI's plugin arguments
/// (`RESPONSE REGION StartSession PROFILE PARAMETERS ENDPOINT`), it behaves as the official plugin.
#[derive(Debug, Parser)]
#[command(name = "ssm-session", version, after_help = exit::EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Behave as `session-manager-plugin` with these arguments (what a symlink of that name does).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Plugin {
        /// `RESPONSE REGION StartSession [PROFILE [PARAMETERS [ENDPOINT]]]`, or `--version`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    term::install_panic_hook();
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
        Ok(plugin::Invocation::Session(_p)) => {
            exit::Failure::new(exit::Kind::Internal, "sessions are not wired yet").report()
        }
        Err(e) => e.report(),
    }
}
