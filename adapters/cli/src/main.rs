//! `ssm-session`: the command-line client.

fn main() {
    eprintln!("ssm-session: no subcommands yet");
    std::process::exit(2);
}
