#!/usr/bin/env bash
# The real AWS CLI v1 (from PyPI) against `ssm-session emulator` in strict mode (every call and
# upgrade must be SigV4-signed with the test keys, as AWS checks), with ssm-session installed on
# PATH as `session-manager-plugin`.
#
#   bash adapters/cli/tests/awscli.sh          # builds ssm-session (debug) unless SSM_SESSION_BIN is set
#
# Needs python3 with venv and network access to PyPI. Prints "N passed, N failed" and exits
# non-zero on any failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/ssm-awscli.XXXXXX")
emu_pid=
cleanup() {
    if [ -n "$emu_pid" ]; then kill "$emu_pid" 2>/dev/null; wait "$emu_pid" 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT

bin=${SSM_SESSION_BIN:-}
if [ -z "$bin" ]; then
    (cd "$root" && timeout 900 cargo build -q -p ssm-session) || { echo "build failed"; exit 1; }
    target=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    bin="$target/debug/ssm-session"
fi

echo "awscli.sh: installing awscli (v1) from PyPI into a venv"
python3 -m venv "$work/venv" || { echo "python3 -m venv failed (apt-get install -y python3-venv)"; exit 1; }
timeout 600 "$work/venv/bin/pip" install -q --disable-pip-version-check awscli || { echo "pip install awscli failed"; exit 1; }
"$work/venv/bin/aws" --version

mkdir -p "$work/bin"
ln -s "$bin" "$work/bin/session-manager-plugin"
export PATH="$work/bin:$work/venv/bin:$PATH"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_CA_BUNDLE

# A credential_process profile for the plugin: the AWS CLI passes its name as argv[4].
cat >"$work/creds.sh" <<'CREDS'
#!/bin/sh
echo '{"Version": 1, "AccessKeyId": "test", "SecretAccessKey": "test"}'
CREDS
chmod +x "$work/creds.sh"
printf '[profile proc]\nregion = us-east-1\ncredential_process = %s\n' "$work/creds.sh" >"$work/config"

"$bin" emulator --port 0 --ca-file "$work/ca.pem" --credentials test:test --close-every 2 \
    >"$work/emu.out" 2>"$work/emu.err" &
emu_pid=$!
for _ in $(seq 100); do
    grep -q '^ca_file=' "$work/emu.out" 2>/dev/null && break
    sleep 0.1
done
endpoint=$(sed -n 's/^endpoint=//p' "$work/emu.out")
[ -n "$endpoint" ] || { echo "emulator did not start:"; cat "$work/emu.err"; exit 1; }
echo "awscli.sh: emulator at $endpoint"

passed=0
failed=0
check() { # name, condition result (0 ok), details
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1)); echo "ok   $1"
    else
        failed=$((failed + 1)); echo "FAIL $1"; echo "$3" | sed 's/^/     /'
    fi
}

profile_args=()
start_session() { # command, extra env...
    timeout 60 env "${@:2}" aws ssm start-session --target i-0123456789abcdef0 \
        --document-name AWS-StartNonInteractiveCommand --parameters command="$1" \
        --endpoint-url "$endpoint" --region us-east-1 "${profile_args[@]}" \
        </dev/null >"$work/out" 2>"$work/err"
}

# 1. A command completes; its output arrives on stdout, status text on stderr (wss:// with the
#    emulator's CA given the usual way, AWS_CA_BUNDLE).
start_session 'echo hi' AWS_CA_BUNDLE="$work/ca.pem"; rc=$?
out=$(cat "$work/out"); err=$(cat "$work/err")
[ $rc -eq 0 ] && [ "$out" = "hi" ] && grep -q 'Starting session with SessionId' "$work/err"
check "echo hi through aws ssm start-session (wss)" $? "rc=$rc stdout=[$out] stderr=[$err]"

# 2. The token travels in the environment, never in argv: the AWS CLI does that only for a plugin
#    version above 1.2.497.0 (ours: see --version). A wrapper records what the CLI passed.
mkdir -p "$work/wrap"
cat >"$work/wrap/session-manager-plugin" <<WRAP
#!/usr/bin/env bash
printf '%s\n' "\$1" >>"$work/argv1.log"
exec -a session-manager-plugin "$bin" "\$@"
WRAP
chmod +x "$work/wrap/session-manager-plugin"
PATH="$work/wrap:$PATH" start_session 'echo wrapped' AWS_CA_BUNDLE="$work/ca.pem"; rc=$?
out=$(cat "$work/out"); log=$(cat "$work/argv1.log" 2>/dev/null)
[ $rc -eq 0 ] && [ "$out" = "wrapped" ] && grep -qx -- '--version' "$work/argv1.log" &&
    grep -qx 'AWS_SSM_START_SESSION_RESPONSE' "$work/argv1.log" && ! grep -q TokenValue "$work/argv1.log" &&
    ! grep -qi 'outdated' "$work/err"
check "token passed by environment variable, no outdated-plugin warning" $? "rc=$rc stdout=[$out] argv1=[$log] stderr=[$(cat "$work/err")]"

# 3. stderr of the remote command stays on stderr; a failing command fails the AWS CLI.
start_session 'echo to-err >&2; exit 3' AWS_CA_BUNDLE="$work/ca.pem"; rc=$?
out=$(cat "$work/out"); err=$(cat "$work/err")
[ $rc -ne 0 ] && [ -z "$out" ] && grep -q '^to-err$' "$work/err"
check "remote stderr and a failing exit code" $? "rc=$rc stdout=[$out] stderr=[$err]"

# 4. Without the CA the plugin reports a TLS failure in one line and fails.
start_session 'echo never'; rc=$?
err=$(cat "$work/err")
[ $rc -ne 0 ] && grep -q '^ssm-session: tls failure' "$work/err" && ! grep -q never "$work/out"
check "tls failure without AWS_CA_BUNDLE" $? "rc=$rc stderr=[$err]"

# 5. --profile naming a credential_process profile (no keys in the environment): the CLI signs
#    StartSession with it, the plugin signs ResumeSession and every upgrade with the same
#    profile, and the emulator's routine closes (every 2 s) are resumed.
profile_args=(--profile proc)
start_session 'sleep 3; echo via-profile' -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY \
    AWS_CA_BUNDLE="$work/ca.pem" AWS_CONFIG_FILE="$work/config"; rc=$?
profile_args=()
out=$(cat "$work/out"); err=$(cat "$work/err")
[ $rc -eq 0 ] && [ "$out" = "via-profile" ] && grep -q 'resumed after the data channel was closed' "$work/err"
check "credential_process profile, signed resume after a routine close" $? "rc=$rc stdout=[$out] stderr=[$err]"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
