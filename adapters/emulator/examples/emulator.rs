//! Runs the emulator until Ctrl-C and prints how to reach it.
//!
//! ```text
//! cargo run -p ssm-emulator --example emulator -- [CA_PEM_PATH]
//! ```
#![allow(
    clippy::std_instead_of_core,
    reason = "a std example; the workspace lint guards the no_std core"
)]

use ssm_emulator::{Emulator, EmulatorConfig};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    if let Some(path) = std::env::args().nth(1) {
        std::fs::write(&path, emu.ca_pem())?;
        println!("ca={path}");
    }
    println!("endpoint={}", emu.endpoint_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
