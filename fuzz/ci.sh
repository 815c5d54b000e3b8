#!/usr/bin/env bash
# Builds every fuzz target and runs each for FUZZ_SECONDS (default 30) from the committed seeds.
# A crash fails the script and prints the crashing input as hex. New inputs the fuzzer finds go
# to a temporary directory, so the committed corpus is left unchanged.
#
# Uses the nightly toolchain (with AddressSanitizer) if rustup lists one, otherwise stable with
# `--sanitizer none`. Installs cargo-fuzz if it is missing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
seconds="${FUZZ_SECONDS:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
    sanitizer=()
else
    fuzz=(cargo fuzz)
    sanitizer=(--sanitizer none)
fi

cd "$root"
targets=$("${fuzz[@]}" list --fuzz-dir "$here")
echo "fuzz: ${fuzz[*]} ${sanitizer[*]}; targets: $(echo $targets); ${seconds}s each"
"${fuzz[@]}" build --fuzz-dir "$here" "${sanitizer[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0
for t in $targets; do
    mkdir -p "$work/$t/new" "$work/$t/artifacts" "$here/corpus/$t"
    echo "== $t"
    if ! "${fuzz[@]}" run --fuzz-dir "$here" "${sanitizer[@]}" "$t" \
        "$work/$t/new" "$here/corpus/$t" -- \
        -max_total_time="$seconds" -artifact_prefix="$work/$t/artifacts/" -print_final_stats=1 \
        >"$work/$t/log" 2>&1; then
        failed=1
        grep -m 3 -A 4 -E 'panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer' "$work/$t/log" || true
        tail -n 25 "$work/$t/log"
        for a in "$work/$t/artifacts"/*; do
            [ -f "$a" ] || continue
            echo "crashing input for $t ($(basename "$a"), $(wc -c <"$a") bytes), hex:"
            od -An -tx1 -v "$a" | tr -d ' \n'
            echo
        done
    else
        grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$work/$t/log" | tail -n 2 || true
    fi
done
exit "$failed"
