#!/usr/bin/env bash
# Finds the smallest heap (bytes, to STEP) with which the RSA handshake test (src/tls_heap.rs)
# passes on the emulated Cortex-M4: the high-water mark of RSA-2048 chain verification on the
# device, fragmentation of linked_list_allocator included. Rebuilds once per probe (~10 s each).
# Usage: ./heap-search.sh [LOW HIGH STEP]   (defaults 4096 24576 64)
set -euo pipefail
cd "$(dirname "$0")"
low=${1:-4096} high=${2:-24576} step=${3:-64}
passes() {
    SSM_HEAP_SIZE=$1 timeout 300 cargo run --release --locked 2>/dev/null | grep -Eq '^[0-9]+ passed, 0 failed$'
}
passes "$high" || { echo "fails even with $high bytes" >&2; exit 1; }
if passes "$low"; then echo "passes with $low bytes already"; exit 0; fi
# Invariant: fails at low, passes at high.
while [ $((high - low)) -gt "$step" ]; do
    mid=$(( (low + high) / 2 / step * step ))
    [ "$mid" -le "$low" ] && mid=$((low + step))
    if passes "$mid"; then high=$mid; else low=$mid; fi
done
echo "smallest heap that passes: $high bytes (fails at $low)"
