#!/bin/sh
# funcmond's command line and configuration errors: each bad input exits 2 before anything
# starts, with one message naming the key and where it came from; good input starts, and
# SIGTERM stops it with exit code 0. A corrupt state file is set aside, not trusted. Debug
# endpoints open to the network without a token are warned about.
# Usage: test_funcmond_cli.sh FUNCMOND
set -u
funcmond=$1
dir=$(mktemp -d)
export SIDECAR_SHM_PREFIX="fmcli-$$"
trap 'rm -rf "$dir"; rm -f "/dev/shm/$SIDECAR_SHM_PREFIX-sidecar"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_error CONFIG_TEXT NEEDLE...: funcmond -c exits 2 and says every needle.
expect_error() {
    printf '%s\n' "$1" > "$dir/bad.yaml"
    shift
    out=$("$funcmond" -c "$dir/bad.yaml" --check-config 2>&1); rc=$?
    [ "$rc" -eq 2 ] || fail "exit $rc, not 2, for: $(cat "$dir/bad.yaml") -> $out"
    for needle in "$@"; do
        case "$out" in *"$needle"*) ;; *) fail "'$needle' missing from: $out" ;; esac
    done
}

"$funcmond" --help | grep -q "Usage: funcmond" || fail "--help"
"$funcmond" --version | grep -q "^funcmond [0-9]" || fail "--version"
"$funcmond" --no-such-flag 2>/dev/null; [ $? -eq 2 ] || fail "unknown flag should exit 2"

expect_error 'SIDECAR: {DRAIN_INTERVL_MS: 5}' "SIDECAR.DRAIN_INTERVL_MS" "bad.yaml" "unknown key"
expect_error 'SIDECAR: {DRAIN_INTERVAL_MS: fast}' "SIDECAR.DRAIN_INTERVAL_MS" "bad.yaml"
expect_error 'SIDECAR: {DRAIN_INTERVAL_MS: 0}' "SIDECAR.DRAIN_INTERVAL_MS" "bad.yaml"
expect_error 'SIDECAR: {MAX_FUNCTIONS: -1}' "SIDECAR.MAX_FUNCTIONS"
expect_error 'SIDECAR: {DURATION_BUCKETS: [0.5, 0.1]}' "SIDECAR.DURATION_BUCKETS"
expect_error 'PROFILING: {ENABLED: maybe}' "PROFILING.ENABLED"
expect_error 'PROFILING: {PATH: "debug"}' "PROFILING.PATH"
expect_error 'HTTP: {LISTEN: "localhost"}' "HTTP.LISTEN"
expect_error 'NOPE: {A: 1}' "NOPE"
expect_error 'SIDECAR: [1, 2]' "SIDECAR"
expect_error 'SIDECAR: {DRAIN_INTERVAL_MS: [1' "bad.yaml" "line"

out=$("$funcmond" -c "$dir/missing.yaml" 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "missing file: exit $rc"
case "$out" in *missing.yaml*) ;; *) fail "missing file not named: $out" ;; esac

out=$(SIDECAR_DRAIN_INTERVAL_MS=0 "$funcmond" --check-config 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "bad environment value: exit $rc"
case "$out" in *SIDECAR_DRAIN_INTERVAL_MS*) ;; *) fail "variable not named: $out" ;; esac

# The environment beats the file; FUNCMON_CONFIG names the file.
printf 'SIDECAR: {DRAIN_INTERVAL_MS: 20, MAX_FUNCTIONS: 7}\n' > "$dir/good.yaml"
out=$(FUNCMON_CONFIG="$dir/good.yaml" SIDECAR_DRAIN_INTERVAL_MS=3 "$funcmond" --check-config) || fail "good config refused"
echo "$out" | grep -q "DRAIN_INTERVAL_MS: 3$" || fail "environment did not override: $out"
echo "$out" | grep -q "MAX_FUNCTIONS: 7$" || fail "file value lost: $out"

# Starts, stops cleanly on SIGTERM; a corrupt state file is kept aside.
printf 'this is not msgpack state' > "$dir/state"
HTTP_LISTEN=127.0.0.1:0 SIDECAR_STATE_FILE="$dir/state" "$funcmond" 2> "$dir/log" &
pid=$!
for i in $(seq 50); do grep -q "watching" "$dir/log" && break; sleep 0.1; done
kill -TERM $pid
wait $pid; rc=$?
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc: $(cat "$dir/log")"
ls "$dir"/state.corrupt-* >/dev/null 2>&1 || fail "corrupt state file not set aside: $(cat "$dir/log")"
grep -q "kept aside" "$dir/log" || fail "no warning about the state file: $(cat "$dir/log")"
[ -f "$dir/state" ] || fail "no fresh state file written at exit"
# HTTP.LISTEN off loopback without HTTP.AUTH_TOKEN leaves the debug endpoints open to the
# network: a warning says so at start. None on loopback, none with a token.
# start_log ENV...: funcmond started with ENV, its log once serving, then stopped.
start_log() {
    : > "$dir/log" # before the start: the wait below must not read the last run's lines
    env "$@" "$funcmond" 2> "$dir/log" &
    pid=$!
    for i in $(seq 50); do grep -q "watching" "$dir/log" && break; sleep 0.1; done
    kill -TERM $pid
    wait $pid || fail "$*: exit status on SIGTERM: $(cat "$dir/log")"
    grep -q "serving HTTP" "$dir/log" || fail "$*: not serving: $(cat "$dir/log")"
}
start_log HTTP_LISTEN=0.0.0.0:0
grep "warn" "$dir/log" | grep -q "HTTP.AUTH_TOKEN" || fail "no warning on 0.0.0.0 without a token: $(cat "$dir/log")"
start_log HTTP_LISTEN=127.0.0.1:0
grep -q "AUTH_TOKEN" "$dir/log" && fail "a token warning on 127.0.0.1: $(cat "$dir/log")"
start_log HTTP_LISTEN=0.0.0.0:0 HTTP_AUTH_TOKEN=s3cret
grep -q "AUTH_TOKEN" "$dir/log" && fail "a token warning with a token set: $(cat "$dir/log")"
# The soft limit on open files is raised to the hard one at start, and the log says so.
command -v prlimit > /dev/null || fail "prlimit (util-linux) is missing"
: > "$dir/log"
HTTP_LISTEN=127.0.0.1:0 prlimit --nofile=100:300 "$funcmond" 2> "$dir/log" &
pid=$!
for i in $(seq 50); do grep -q "watching" "$dir/log" && break; sleep 0.1; done
soft=$(awk '/^Max open files/ { print $4 }' /proc/$pid/limits)
kill -TERM $pid
wait $pid || fail "exit status on SIGTERM under prlimit: $(cat "$dir/log")"
[ "$soft" = 300 ] || fail "soft limit on open files $soft, not the hard limit 300"
grep -q "open files: .*300" "$dir/log" || fail "the log does not give the limit on open files: $(cat "$dir/log")"
echo "test_funcmond_cli: ok"
