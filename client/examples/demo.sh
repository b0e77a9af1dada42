#!/bin/bash
# demo.sh - the funcmon demo: funcmond beside funcmon-demo, a JSON service that drives
# itself with its own load, then the URLs to try and a live summary of the hottest functions.
#
# It exists so that one command (`make demo`) shows everything funcmon does on a real
# service, and cleans up after itself: every process it started is stopped by PID (TERM,
# then KILL after a grace period) and their shared-memory segments are removed, also when
# something fails or the user presses Ctrl-C.
#
# Usage: demo.sh [BUILD_DIR]     (default: the build/ tree of the repository)
# Environment (all optional):
#   DEMO_FUNCMOND_LISTEN  funcmond's HTTP address     (default 127.0.0.1:10000; port 0: any free port)
#   DEMO_LISTEN           the demo service's address  (default 127.0.0.1:8080; port 0: any free port)
#   DEMO_RPS              requests per second of the built-in load (default 50)
#   DEMO_SECONDS          stop after this many seconds (default 0: run until Ctrl-C)
#   DEMO_INTERVAL         seconds between two summaries (default 5)
#   DEMO_WAIT             seconds to wait for the first profiles (default 20)
#   DEMO_SHM_PREFIX       shared-memory prefix of this run (default funcmon-demo-<pid>)
set -u

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
funcmond_listen=${DEMO_FUNCMOND_LISTEN:-127.0.0.1:10000}
demo_listen=${DEMO_LISTEN:-127.0.0.1:8080}
rps=${DEMO_RPS:-50}
seconds=${DEMO_SECONDS:-0}
interval=${DEMO_INTERVAL:-5}
wait_s=${DEMO_WAIT:-20}
prefix=${DEMO_SHM_PREFIX:-funcmon-demo-$$}
grace_s=5

die() {
    echo "demo: $*" >&2
    exit 1
}

# --- checks before anything starts ---
for v in rps seconds interval wait_s; do
    [[ ${!v} =~ ^[0-9]{1,6}$ ]] || { echo "demo: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done
[ "$rps" -ge 1 ] || { echo "demo: DEMO_RPS must be at least 1" >&2; exit 2; }
[ "$interval" -ge 1 ] || { echo "demo: DEMO_INTERVAL must be at least 1" >&2; exit 2; }
for v in funcmond_listen demo_listen; do
    [[ ${!v} =~ ^[0-9A-Za-z.-]+:[0-9]{1,5}$ ]] || { echo "demo: $v must be HOST:PORT, not '${!v}'" >&2; exit 2; }
done
[[ $prefix =~ ^[A-Za-z0-9_-]{1,64}$ ]] || { echo "demo: DEMO_SHM_PREFIX must be letters, digits, '_' or '-'" >&2; exit 2; }
for tool in curl jq; do
    command -v "$tool" >/dev/null || die "$tool is not installed (make deps installs it)"
done
funcmond=$build/sidecar/funcmond
demo=$build/client/examples/funcmon-demo
[ -x "$funcmond" ] && [ -x "$demo" ] || die "no funcmond or funcmon-demo in $build: build them first (make build)"

# --- every process started is stopped, every segment removed, on any exit ---
tmp=$(mktemp -d "${TMPDIR:-/tmp}/funcmon-demo.XXXXXX") || die "cannot create a temporary directory"
demo_pid="" funcmond_pid="" sleeper=""

# stop_process PID NAME: TERM, up to grace_s seconds for it to exit, then KILL. Returns its
# exit status; an exit status other than 0 after TERM is reported.
stop_process() {
    local pid=$1 name=$2 i rc
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace_s * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "demo: $name (pid $pid) did not stop within ${grace_s}s: killed" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    [ "$rc" = 0 ] || echo "demo: $name (pid $pid) exited with status $rc" >&2
    return "$rc"
}

cleanup() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM # finish the cleanup whatever comes
    [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null
    # The service first, so the sidecar drains its last records before it stops.
    if [ -n "$demo_pid" ]; then
        stop_process "$demo_pid" funcmon-demo || rc=1
        grep -h '^funcmon-demo: load sent' "$tmp/demo.log" 2>/dev/null
    fi
    stop_process "$funcmond_pid" funcmond || rc=1
    if [ "$rc" != 0 ]; then
        for log in funcmond demo; do
            [ -s "$tmp/$log.log" ] && { echo "--- last lines of the $log log:" >&2; tail -n 15 "$tmp/$log.log" >&2; }
        done
    fi
    rm -f /dev/shm/"$prefix".* /dev/shm/"$prefix"-sidecar
    rm -rf "$tmp"
    echo "demo: stopped"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping"; exit 0' INT TERM # Ctrl-C is the normal way to stop

# wait_for_line FILE PATTERN PID: the first line of FILE matching the sed pattern's group,
# waiting up to 10 s while PID lives.
wait_for_line() {
    local file=$1 pattern=$2 pid=$3 i value
    for ((i = 0; i < 200; i++)); do
        value=$(sed -n "s/$pattern/\\1/p" "$file" 2>/dev/null | head -n 1)
        [ -n "$value" ] && { echo "$value"; return 0; }
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# --- funcmond ---
cat > "$tmp/funcmond.yaml" <<EOF
# funcmond for the demo: its defaults spelled out, with this run's address and segment prefix.
PROFILING: {ENABLED: true, PATH: "/debug", CPU_PROFILE_DURATION: 30, MEMORY_PROFILE_INTERVAL: 60}
METRICS:   {ENABLED: true, PATH: "/metrics", SKIP_PATHS: "/swagger/*;/metrics;/debug/*"}
HTTP:      {LISTEN: "$funcmond_listen", AUTH_TOKEN: ""}
SIDECAR:   {SHM_PREFIX: "$prefix", DRAIN_INTERVAL_MS: 10}
EOF
# The environment overrides the file: these make sure no stray variable does.
HTTP_LISTEN=$funcmond_listen SIDECAR_SHM_PREFIX=$prefix PROFILING_PATH=/debug METRICS_PATH=/metrics \
    "$funcmond" -c "$tmp/funcmond.yaml" 2> "$tmp/funcmond.log" &
funcmond_pid=$!
funcmond_port=$(wait_for_line "$tmp/funcmond.log" '.*(port \([0-9]*\)).*' "$funcmond_pid") ||
    die "funcmond did not start on $funcmond_listen"
f="http://${funcmond_listen%:*}:$funcmond_port"
echo "demo: funcmond pid $funcmond_pid serving $f"

# --- the demo service with its own load ---
FUNCMON_SHM_PREFIX=$prefix FUNCMON_SERVICE=funcmon-demo \
    "$demo" --listen "$demo_listen" --load "$rps" > "$tmp/demo.log" 2>&1 &
demo_pid=$!
d=$(wait_for_line "$tmp/demo.log" '^funcmon-demo: listening on \(http:[^ ]*\).*' "$demo_pid") ||
    die "funcmon-demo did not start on $demo_listen"
echo "demo: funcmon-demo pid $demo_pid serving $d with about $rps requests/s"
sed -n 's/^funcmon-demo: \(profiling .*\)/demo: funcmon-demo \1/p' "$tmp/demo.log"
echo "demo: shared memory /dev/shm/$prefix.*"

# --- the first profiles ---
for ((i = 0; i < wait_s * 5; i++)); do
    n=$(curl -s --max-time 2 "$f/debug/profiles" | jq -r '.count // 0' 2>/dev/null)
    [ "${n:-0}" -gt 0 ] 2>/dev/null && break
    kill -0 "$demo_pid" 2>/dev/null || die "funcmon-demo exited before the first profile"
    sleep 0.2
done
[ "${n:-0}" -gt 0 ] 2>/dev/null || die "no profile served by $f/debug/profiles after ${wait_s}s"

cat <<EOF

funcmon is watching funcmon-demo. Try (curl -s 'URL' | jq):
  every profile                  $f/debug/profiles
  the 5 most called              $f/debug/profiles?sort=calls&limit=5
  one route                      $f/debug/profiles/GET_/v1/users/:id
  one route (percent-coded)      $f/debug/profiles/POST_%2Fv1%2Fpayments
  one function                   $f/debug/profiles/process_payment
  process stats                  $f/debug/stats
  memory                         $f/debug/memory
  threads and their calls        $f/debug/threads
  calls running over 50 ms       $f/debug/inflight?min_ms=50
  attached processes             $f/debug/processes
  Prometheus metrics             $f/metrics
  CPU profile for go tool pprof  $f/debug/pprof/profile?seconds=5
  heap profile for go tool pprof $f/debug/pprof/heap
  the service                    $d/v1/users  $d/v1/users/3  $d/v1/scenarios/deadline
                                 curl -X POST -d '{"user_id": 1, "amount": 250}' $d/v1/payments
EOF
if [ "$seconds" -gt 0 ]; then
    echo "Stopping after $seconds s (Ctrl-C stops sooner)."
else
    echo "Ctrl-C stops the demo."
fi

# summary: the top functions by calls, with errors and p99; printed whole or not at all.
summary() {
    local json count table
    json=$(curl -s --max-time 2 "$f/debug/profiles") && count=$(jq -r '.count' <<<"$json") &&
        table=$(jq -r '.profiles | to_entries | sort_by(-.value.call_count) | .[:10][] |
                       [.value.call_count, .value.error_count, .value.p99_duration, .key] | @tsv' <<<"$json" |
                    while IFS=$'\t' read -r calls errors p99 name; do
                        printf '%10s %8s %12s  %s\n' "$calls" "$errors" "$p99" "$name"
                    done) || { echo "demo: funcmond did not answer" >&2; return; }
    printf '\n--- %s  top functions by calls (%s profiles)\n%10s %8s %12s  %s\n%s\n' \
        "$(date +%T)" "$count" calls errors p99 function "$table"
}

start=$SECONDS
while :; do
    left=$interval
    if [ "$seconds" -gt 0 ]; then
        left=$((seconds - (SECONDS - start)))
        [ "$left" -gt 0 ] || break
        [ "$left" -le "$interval" ] || left=$interval
    fi
    sleep "$left" &
    sleeper=$!
    wait "$sleeper" # a signal runs its trap at once, not after the sleep
    sleeper=""
    kill -0 "$demo_pid" 2>/dev/null || die "funcmon-demo exited unexpectedly"
    kill -0 "$funcmond_pid" 2>/dev/null || die "funcmond exited unexpectedly"
    summary
done
echo
echo "demo: stopping"
exit 0
