#!/usr/bin/env bash
# Measures every row of the footprint tables (README.md, adapters/embassy/README.md) in one run,
# on one tree, so that rows can be compared: flash (text + data) and static RAM (data + bss) of
# each build, in bytes. Needs `cargo size`: `rustup component add llvm-tools` and
# `cargo install cargo-binutils --locked` (not part of scripts/test-all).
# Usage: examples/boards/footprint.sh   (prints one tab-separated line per row; ~10 min cold)
set -euo pipefail
cd "$(dirname "$0")"
rustup target add thumbv7em-none-eabihf >/dev/null
command -v cargo-size >/dev/null || {
  echo "footprint.sh: needs cargo-size (cargo install cargo-binutils --locked)" >&2
  exit 1
}

# Dummy credentials and target: without them the board example drops its API path.
creds=(env SSM_ACCESS_KEY_ID=x SSM_SECRET_ACCESS_KEY=x SSM_TARGET=i-0)
nocreds=(env -u SSM_ACCESS_KEY_ID -u SSM_SECRET_ACCESS_KEY -u SSM_TARGET)

# row NAME DIR cargo-size-args...: prints NAME, flash, static RAM.
row() {
  local name=$1 dir=$2
  shift 2
  local out
  out=$(cd "$dir" && "${runner[@]}" cargo size --locked "$@" 2>/dev/null | awk 'NR==2')
  # Berkeley format: text data bss dec hex filename
  read -r text data bss _ <<<"$out"
  printf '%s\t%d\t%d\n' "$name" $((text + data)) $((data + bss))
}

printf 'row\tflash_bytes\tstatic_ram_bytes\n'
runner=("${nocreds[@]}")
row "core: codec + client engine + WebSocket" footprint --release
row "core + StartSession answer (model)" footprint --release --features model
row "core + SSM API client (api)" footprint --release --features api
row "core + API client + upgrade signing (upgrade)" footprint --release --features upgrade
row "core + KMS (kms)" footprint --release --features kms
row "board, answer built in (no API path), \"s\"" nucleo-f429zi --release
runner=("${creds[@]}")
row "board with NetApi, \"s\"" nucleo-f429zi --release
row "board with NetApi, \"z\"" nucleo-f429zi --profile min-size
row "board with NetApi + kms, \"s\"" nucleo-f429zi --release --features kms
