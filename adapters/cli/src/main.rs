//! `ssm-session`: the command-line client.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod frame;

/// AWS Session Manager client.
#[derive(Debug, Parser)]
#[command(name = "ssm-session", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Frame(frame::FrameArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Frame(args) => frame::run(args),
    }
}
