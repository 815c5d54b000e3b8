#!/usr/bin/env bash
# Builds the NUCLEO-F429ZI example for its target (CI: proves it keeps building).
# Installs the target if missing. The first build compiles embassy-stm32 (several minutes).
set -euo pipefail
cd "$(dirname "$0")"
rustup target add thumbv7em-none-eabihf >/dev/null
cargo build --release --locked
