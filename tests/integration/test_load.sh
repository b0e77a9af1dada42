#!/bin/bash
# funcmond under HTTP load (wrk on /debug/profiles/{name} and /metrics, bounded in time,
# loopback only) while a client calls steadily on two threads: no HTTP errors, no record
# dropped, and no record older than two drain intervals when drained (one when keeping up).
# Usage: test_load.sh FUNCMOND E2E_CLIENT
set -u
funcmond=$1 client=$2
needs="wrk curl jq" name=load
. "$(dirname "$0")/funcmond_lib.sh"
start_funcmond env
FUNCMON_SERVICE=load "$client" 2 0 50 10 > /dev/null &
pids+=($!)
sleep 0.5
for path in "/debug/profiles/work" "/metrics"; do
    wrk -t2 -c32 -d3s "http://127.0.0.1:$port$path" > "$dir/wrk" 2>&1 || fail "wrk: $(cat "$dir/wrk")"
    grep -qE "Non-2xx|Socket errors" "$dir/wrk" && fail "HTTP errors on $path: $(cat "$dir/wrk")"
    grep -q "Requests/sec" "$dir/wrk" || fail "wrk printed no rate: $(cat "$dir/wrk")"
    lag=$(curl -s "http://127.0.0.1:$port/metrics" | sed -n 's/^funcmon_drain_lag_seconds //p')
    # a record waits at most one interval (10 ms) for the next drain when the loop keeps up
    awk -v l="$lag" 'BEGIN { exit !(l < 0.020) }' || fail "drain lag ${lag}s on $path"
done
calls=$(curl -s "http://127.0.0.1:$port/debug/profiles/work" | jq '.call_count')
drops=$(curl -s "http://127.0.0.1:$port/debug/processes" | jq '[.processes[].drops] | add')
[ "$drops" = 0 ] || fail "$drops records dropped"
[ "$calls" -gt 1000 ] || fail "only $calls calls recorded"
echo "test_load: $calls calls under load, no HTTP error, no drop: ok"
