#!/bin/sh
# funcmond's command line and configuration errors: each bad input exits 2 before anything
# starts, with one message naming the key and where it came from; good input starts, and
# SIGTERM stops it with exit code 0. A corrupt state file is set aside, not trusted; a
# state or config file that is not a regular file is refused at once, never waited on or
# moved; the state file's temporary is never written through a symlink; a hostile state
# file cannot make funcmond allocate more than a bounded amount. One funcmond per prefix:
# a second one refuses to start and leaves the first (and its clients) alone. Debug
# endpoints open to the network without a token are warned about; the soft limit on open
# files is raised to the hard one.
# Usage: test_funcmond_cli.sh FUNCMOND E2E_CLIENT
set -u
funcmond=$1 client=$2
for tool in curl jq timeout mkfifo prlimit; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed" >&2; exit 77; }
done
dir=$(mktemp -d)
export SIDECAR_SHM_PREFIX="fmcli-$$"
export FUNCMON_SHM_PREFIX=$SIDECAR_SHM_PREFIX
started=""
trap 'for p in $started; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$dir";
      rm -f "/dev/shm/$SIDECAR_SHM_PREFIX-sidecar" "/dev/shm/$SIDECAR_SHM_PREFIX".*' EXIT
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

# wait_log FILE TEXT: waits up to 30 s for TEXT in FILE.
wait_log() {
    i=0
    while [ $i -lt 300 ]; do
        grep -qs "$2" "$1" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
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
SIDECAR_STATE_FILE="$dir/state" HTTP_LISTEN=127.0.0.1:0 "$funcmond" 2> "$dir/log" &
pid=$!
started="$started $pid"
wait_log "$dir/log" "watching" || fail "funcmond did not start: $(cat "$dir/log")"
kill -TERM $pid
wait $pid; rc=$?
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc: $(cat "$dir/log")"
ls "$dir"/state.corrupt-* >/dev/null 2>&1 || fail "corrupt state file not set aside: $(cat "$dir/log")"
grep -q "kept aside" "$dir/log" || fail "no warning about the state file: $(cat "$dir/log")"
[ -f "$dir/state" ] || fail "no fresh state file written at exit"

# run_state FILE: funcmond with STATE_FILE=FILE until it serves, then SIGTERM, which must
# exit 0. Sets hwm to its peak RSS in kB (VmHWM, read while it serves); its log is $dir/log.
run_state() {
    : > "$dir/log" # emptied here, not by the child: the wait below must not see the last run's log
    SIDECAR_STATE_FILE=$1 HTTP_LISTEN=127.0.0.1:0 "$funcmond" 2>> "$dir/log" &
    pid=$!
    started="$started $pid"
    wait_log "$dir/log" "watching" || fail "funcmond did not start with state file $1: $(cat "$dir/log")"
    hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB$/\1/p' /proc/$pid/status)
    kill -TERM $pid
    wait $pid; rc=$?
    [ "$rc" -eq 0 ] || fail "state file $1: exit $rc after SIGTERM: $(cat "$dir/log")"
}

# The state file's temporary: a symlink planted at <file>.tmp is not followed.
printf 'precious\n' > "$dir/victim"
ln -s "$dir/victim" "$dir/s1.tmp"
run_state "$dir/s1"
[ "$(cat "$dir/victim")" = "precious" ] ||
    fail "the state file was written through the symlink s1.tmp: the victim now holds $(head -c 32 "$dir/victim" | od -An -c | head -2)"
[ -f "$dir/s1" ] && [ ! -L "$dir/s1" ] || fail "no regular state file written: $(ls -l "$dir"; cat "$dir/log")"

# Replaced by a FIFO while funcmond runs: not written over at the stop.
: > "$dir/log"
SIDECAR_STATE_FILE="$dir/s1" HTTP_LISTEN=127.0.0.1:0 "$funcmond" 2>> "$dir/log" &
pid=$!
started="$started $pid"
wait_log "$dir/log" "watching" || fail "funcmond did not start: $(cat "$dir/log")"
rm "$dir/s1" && mkfifo "$dir/s1"
kill -TERM $pid
wait $pid; rc=$?
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc: $(cat "$dir/log")"
[ -p "$dir/s1" ] || fail "a FIFO put in the state file's place was replaced: $(ls -l "$dir"; cat "$dir/log")"
grep -q "state file $dir/s1 is now a FIFO, not a regular file: not written" "$dir/log" || fail "no warning: $(cat "$dir/log")"

# expect_refused FILE KIND: funcmond with STATE_FILE=FILE exits 2 at once, naming the key
# and the kind of file, and leaves the file where it was.
expect_refused() {
    out=$(SIDECAR_STATE_FILE=$1 HTTP_LISTEN=127.0.0.1:0 timeout 10 "$funcmond" 2>&1); rc=$?
    [ "$rc" -eq 2 ] || fail "state file $1 ($2): exit $rc, not 2: $out"
    case "$out" in *"SIDECAR.STATE_FILE"*"$2"*) ;; *) fail "state file $1: the refusal does not name the key and '$2': $out" ;; esac
    ! ls "$1".* >/dev/null 2>&1 || fail "state file $1 ($2) was moved or written beside: $(ls "$1".*)"
}
mkfifo "$dir/fifo-state"
expect_refused "$dir/fifo-state" "FIFO"
[ -p "$dir/fifo-state" ] || fail "the FIFO state file is gone"
# A device node: a copy of /dev/null made with mknod where we may, else a symlink to it
# (either way /dev/null itself is never at stake).
if mknod "$dir/dev-state" c 1 3 2>/dev/null; then :; else ln -s /dev/null "$dir/dev-state"; fi
expect_refused "$dir/dev-state" "character device"
[ -c "$dir/dev-state" ] || fail "the device state file is gone"
[ -c /dev/null ] || fail "/dev/null is gone"

# A FIFO config file: refused at once with exit 2, not waited on for a writer.
mkfifo "$dir/fifo.yaml"
out=$(timeout 10 "$funcmond" -c "$dir/fifo.yaml" --check-config 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "FIFO config file: exit $rc, not 2: $out"
case "$out" in *fifo.yaml*"not a regular file"*) ;; *) fail "FIFO config file: unclear refusal: $out" ;; esac

# Hostile state files: set aside with the reason, a fresh start, and bounded memory. The
# bound is loose (the file is read whole, at most 64 MiB here, plus one entry's objects and
# sanitizer overhead); unbounded, the 64 MiB file took 1.6 GB.
rss_max_kb=524288
state_head() { # the keys of a state file before "functions", which comes last
    printf '\207\246format\256funcmond-state\247version\001\262duration_bounds_ns\220\255memory_bounds\220'
    printf '\250counters\205\247records\000\247dropped\000\253bad_records\000\244lost\000\256overflow_folds\000'
    printf '\250segments\220\251functions'
}
printf '\335\377\377\377\377' > "$dir/h-array32" # an array of 2^32-1 elements, in 5 bytes
printf '\337\377\377\377\377' > "$dir/h-map32"
printf '\333\377\377\377\377' > "$dir/h-str32"
{ state_head; printf '\335\377\377\377\377'; } > "$dir/h-nested"
{ state_head; printf '\335\004\000\000\000'; head -c 67108864 /dev/zero; } > "$dir/h-64m" # 64 Mi functions "0"
for f in h-array32 h-map32 h-str32 h-nested h-64m; do
    run_state "$dir/$f"
    grep -q "state file $dir/$f: .*kept aside" "$dir/log" || fail "$f: not set aside: $(cat "$dir/log")"
    [ "$f" = h-64m ] || grep -q "state file $dir/$f: a length in it exceeds the file" "$dir/log" || fail "$f: unclear reason: $(cat "$dir/log")"
    [ "$hwm" -lt "$rss_max_kb" ] || fail "$f: peak RSS $hwm kB, over $rss_max_kb kB"
    echo "$f: peak RSS $hwm kB"
done
# Past the size cap (sparse: costs no disk): refused before it is read.
truncate -s 1000M "$dir/h-big"
run_state "$dir/h-big"
grep -q "state file $dir/h-big: larger than .*kept aside" "$dir/log" || fail "h-big: not refused for its size: $(cat "$dir/log")"
[ "$hwm" -lt "$rss_max_kb" ] || fail "h-big: peak RSS $hwm kB, over $rss_max_kb kB"
rm -f "$dir"/h-*

# The announcement is also the lock: another user's file in its place (the folder is
# writable by all) is refused with a clear line, never locked or trusted.
if [ "$(id -u)" -eq 0 ] && id nobody > /dev/null 2>&1; then
    ann="/dev/shm/$SIDECAR_SHM_PREFIX-sidecar"
    printf '1\n' > "$ann" && chown nobody "$ann"
    out=$(HTTP_LISTEN=127.0.0.1:0 timeout 10 "$funcmond" 2>&1); rc=$?
    rm -f "$ann"
    [ "$rc" -eq 1 ] || fail "announcement owned by another user: exit $rc, not 1: $out"
    case "$out" in *"-sidecar is owned by another user: not starting"*) ;; *) fail "announcement owned by another user: unclear refusal: $out" ;; esac
fi

# One funcmond per prefix. A second one, on another port or on the same one, exits 1
# naming the first, which keeps its announcement (clients read it) and goes on serving.
# (EXITED_RETENTION_S=0: exited clients are let go while it runs, not at the stop, which
# is not what this checks.)
ann="/dev/shm/$SIDECAR_SHM_PREFIX-sidecar"
SIDECAR_EXITED_RETENTION_S=0 HTTP_LISTEN=127.0.0.1:0 "$funcmond" 2> "$dir/first.log" &
first=$!
started="$started $first"
wait_log "$dir/first.log" "(port " || fail "first funcmond did not start: $(cat "$dir/first.log")"
port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$dir/first.log" | head -1)
[ "$(cat "$ann")" = "$first" ] || fail "announcement holds '$(cat "$ann")', not $first"
for listen in 127.0.0.1:0 "127.0.0.1:$port"; do
    HTTP_LISTEN=$listen timeout 10 "$funcmond" 2> "$dir/second.log"; rc=$?
    [ "$rc" -eq 1 ] || fail "second funcmond on $listen: exit $rc, not 1: $(cat "$dir/second.log")"
    grep -q "another funcmond (pid $first) is running" "$dir/second.log" ||
        fail "second funcmond on $listen: no clear refusal: $(cat "$dir/second.log")"
    [ "$(cat "$ann" 2>&1)" = "$first" ] || fail "after a second funcmond on $listen the announcement holds '$(cat "$ann" 2>&1)', not $first"
    kill -0 $first 2>/dev/null || fail "the first funcmond died: $(cat "$dir/first.log")"
done
# 20 short-lived clients: every call counted by the first.
i=0
while [ $i -lt 20 ]; do
    FUNCMON_SERVICE=short "$client" 1 50 0 0 > /dev/null || fail "client $i"
    i=$((i + 1))
done
n=0
i=0
while [ $i -lt 100 ]; do
    n=$(curl -s "http://127.0.0.1:$port/debug/profiles/work?service=short" | jq -r '.call_count // 0' 2>/dev/null)
    [ "$n" = 1000 ] && break
    sleep 0.1
    i=$((i + 1))
done
[ "$n" = 1000 ] || fail "20 short-lived clients made 1000 calls, the first funcmond counted $n: $(cat "$dir/first.log")"
kill -TERM $first
wait $first; rc=$?
[ "$rc" -eq 0 ] || fail "first funcmond: exit $rc: $(cat "$dir/first.log")"
[ ! -e "$ann" ] || fail "announcement left behind after the stop"
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
