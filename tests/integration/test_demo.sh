#!/bin/bash
# `make demo` as a person runs it, against this test's own build tree and free loopback
# ports: while it runs, the URLs it printed must answer with the demo's route and scenario
# profiles (counts, errors, the name with '/'), /metrics and the per-process endpoints; after
# DEMO_SECONDS it must exit 0 having stopped every process it started and removed every
# shared-memory segment of its prefix.
# Usage: test_demo.sh SOURCE_DIR BUILD_DIR [SANITIZERS]
set -u
src=$1 build=$2 sanitizers=${3:-}
needs="curl jq make setsid" name=demo
. "$(dirname "$0")/funcmond_lib.sh"
# make's own variables from an enclosing make (`make test`) must not leak into ours. make
# demo installs what is missing first; where it cannot (not root), this test cannot run.
unset MAKEFLAGS MAKELEVEL MFLAGS
make -s -C "$src" deps > "$dir/deps" 2>&1 || { echo "SKIP: make deps: $(tail -2 "$dir/deps")" >&2; exit 77; }

# make runs in its own process group, so that a failing test can stop all of it.
mpid=""
stop_make() {
    [ -n "$mpid" ] || return 0
    kill -TERM -- "-$mpid" 2>/dev/null # demo.sh stops its children and cleans up on TERM
    for _ in $(seq 100); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$mpid" 2>/dev/null
    mpid=""
}
trap 'stop_make; cleanup' EXIT
fail() {
    echo "FAIL: $*" >&2
    echo "--- make demo output:" >&2
    tail -40 "$dir/out" >&2
    exit 1
}

DEMO_SECONDS=15 DEMO_INTERVAL=2 DEMO_RPS=100 DEMO_SHM_PREFIX=$prefix DEMO_LISTEN=127.0.0.1:0 \
    DEMO_FUNCMOND_LISTEN=127.0.0.1:0 setsid make -C "$src" demo BUILD_DIR="$build" > "$dir/out" 2>&1 &
mpid=$!
started=$SECONDS

# The URLs it printed (the build may take a moment if the tree is not up to date).
url() { sed -n "s/^  $1  *\\(http[^ ]*\\).*/\\1/p" "$dir/out" | head -1; }
for i in $(seq 600); do
    [ -n "$(url 'every profile')" ] && break
    kill -0 "$mpid" 2>/dev/null || fail "make demo exited before printing its URLs"
    sleep 0.1
done
profiles=$(url 'every profile') slash=$(url 'one route') encoded=$(url 'one route (percent-coded)')
stats=$(url 'process stats') memory=$(url 'memory') threads=$(url 'threads and their calls') metrics=$(url 'Prometheus metrics')
for u in profiles slash encoded stats memory threads metrics; do
    [ -n "${!u}" ] || fail "no $u URL printed"
done
fpid=$(sed -n 's/^demo: funcmond pid \([0-9]*\) .*/\1/p' "$dir/out")
dpid=$(sed -n 's/^demo: funcmon-demo pid \([0-9]*\) .*/\1/p' "$dir/out")
[ -n "$fpid" ] && [ -n "$dpid" ] || fail "no PIDs printed"
[ "$slash" = "${profiles}/GET_/v1/users/:id" ] || fail "slash URL: $slash"

# get URL: the body; fails the test unless the answer is 200 and JSON (or text for /metrics).
get() {
    local code
    code=$(curl -s --max-time 5 -o "$dir/body" -w '%{http_code}' "$1") || fail "curl $1"
    [ "$code" = 200 ] || fail "$1 answered $code: $(head -c 300 "$dir/body")"
    cat "$dir/body"
}

# Every route and scenario shows up with calls, while the demo runs (about 100 requests/s).
routes='GET_/healthz GET_/v1/users GET_/v1/users/:id POST_/v1/payments GET_/v1/scenarios/slow
        GET_/v1/scenarios/deadline GET_/v1/scenarios/fail GET_/v1/scenarios/repeat GET_/v1/scenarios/memory
        GET_/v1/scenarios/database GET_/v1/scenarios/api GET_/v1/scenarios/file'
functions='slow_task deadline_task failing_task repeated_task allocate_memory database_operations db_query
           api_calls call_external_api file_operations write_file read_file find_user list_users
           validate_payment process_payment charge_card'
names=$(printf '"%s",' $routes $functions)
check='[.profiles[$n[]] | select(. != null and .call_count > 0)] | length == ($n | length)'
for i in $(seq 60); do
    get "$profiles" > "$dir/all.json"
    jq -e --argjson n "[${names%,}]" "$check" "$dir/all.json" > /dev/null &&
        jq -e '.profiles["failing_task"].error_count > 0 and .profiles["POST_/v1/payments"].error_count > 0' "$dir/all.json" > /dev/null &&
        break
    sleep 0.1
done
missing=$(jq -r --argjson n "[${names%,}]" '$n[] as $k | select((.profiles[$k].call_count // 0) == 0) | $k' "$dir/all.json")
[ -z "$missing" ] || fail "profiles without calls after $((SECONDS - started)) s: $missing"
kill -0 "$dpid" 2>/dev/null || fail "the demo is not running during the checks (took too long)"

# Routes are profiled by the middleware, the scenarios by the demo's own code.
jq -e '.profiles["GET_/v1/users/:id"].package == "http_handler" and .profiles["failing_task"].package == "demo" and
       .profiles["find_user"].package == "database" and .profiles["charge_card"].package == "payment_gateway"' \
    "$dir/all.json" > /dev/null || fail "packages: $(jq -c '[.profiles[] | {name, package}]' "$dir/all.json")"
# The failing task always fails; payments fail at the gateway (5xx) for some amounts.
jq -e '.profiles["failing_task"] | .error_count == .call_count and .call_count > 0' "$dir/all.json" > /dev/null ||
    fail "failing_task: $(jq -c '.profiles["failing_task"]' "$dir/all.json")"
jq -e '.profiles["POST_/v1/payments"] | .error_count > 0 and .error_count < .call_count' "$dir/all.json" > /dev/null ||
    fail "payments: $(jq -c '.profiles["POST_/v1/payments"]' "$dir/all.json")"
# The slow task sleeps 100 ms (1% allowed for the clock's calibration); repeated_task runs
# five times per request.
jq -e '.profiles["slow_task"].min_duration_ns >= 99000000 and
       .profiles["repeated_task"].call_count >= 5 * .profiles["GET_/v1/scenarios/repeat"].call_count' "$dir/all.json" > /dev/null ||
    fail "durations or repeats: $(jq -c '[.profiles["slow_task"], .profiles["repeated_task"]]' "$dir/all.json")"
# With allocation tracking on (it is, except where a sanitizer owns malloc), each 1 MiB
# allocation shows in its profile.
if [ -z "$sanitizers" ]; then
    grep -q '^demo: funcmon-demo profiling into .*allocation tracking on' "$dir/out" || fail "allocation tracking is not on"
    jq -e '.profiles["allocate_memory"] | .total_memory >= 1048576 * .call_count and .max_memory >= 1048576' "$dir/all.json" > /dev/null ||
        fail "allocate_memory bytes: $(jq -c '.profiles["allocate_memory"]' "$dir/all.json")"
fi

# The URL with '/' in the name, plain and percent-encoded.
get "$slash" | jq -e '.name == "GET_/v1/users/:id" and .package == "http_handler" and .call_count > 0' > /dev/null ||
    fail "slash URL: $(cat "$dir/body")"
get "$encoded" | jq -e '.name == "POST_/v1/payments" and .call_count > 0' > /dev/null || fail "encoded URL: $(cat "$dir/body")"

# /metrics counts the same functions.
get "$metrics" > "$dir/metrics"
for fn in failing_task POST_/v1/payments GET_/v1/users/:id slow_task; do
    grep -q "^function_calls_total{.*function=\"$fn\".*} [1-9]" "$dir/metrics" || fail "no function_calls_total for $fn"
done
grep -q '^function_errors_total{.*function="failing_task".*} [1-9]' "$dir/metrics" || fail "no errors of failing_task in /metrics"

# The per-process endpoints know the demo process.
for u in stats memory threads; do
    get "${!u}" | jq -e --argjson pid "$dpid" '[.processes[] | select(.pid == $pid)] | length == 1' > /dev/null ||
        fail "$u has no process $dpid: $(head -c 300 "$dir/body")"
done

# After DEMO_SECONDS: exit 0, nothing left running, no segment left.
for i in $(seq 300); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$mpid" 2>/dev/null && fail "make demo still running $((SECONDS - started)) s after it started"
wait "$mpid"
rc=$?
mpid=""
[ "$rc" = 0 ] || fail "make demo exited with status $rc"
grep -q '^demo: stopped' "$dir/out" || fail "no clean stop"
grep -q '^funcmon-demo: load sent [1-9][0-9]* requests: .* 0 failed' "$dir/out" || fail "the load failed requests"
for p in "$fpid" "$dpid"; do
    kill -0 "$p" 2>/dev/null && fail "process $p is still running"
done
left=$(compgen -G "/dev/shm/$prefix*")
[ -z "$left" ] || fail "segments left: $left"
echo "PASS: make demo served every route and scenario, then stopped cleanly"
