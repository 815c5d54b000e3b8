#!/usr/bin/env bash
# Runs ssm-proto's on-device tests on an emulated Cortex-M4 (QEMU mps2-an386, semihosting).
# Installs what it needs: qemu-system-arm (Debian package) and the thumbv7em-none-eabihf target.
# Exits non-zero when a test fails, the firmware panics, or QEMU hangs.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v qemu-system-arm >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-system-arm >/dev/null
fi
rustup target add thumbv7em-none-eabihf >/dev/null

cargo build --release --locked
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
timeout 300 cargo run --release --locked 2>&1 | tee "$log" || status=$?
# Both the semihosting exit code and the summary line must say so.
if [ "$status" -ne 0 ] || ! grep -Eq '^[0-9]+ passed, 0 failed$' "$log"; then
    echo "qemu-tests: FAILED (exit $status)" >&2
    exit 1
fi
