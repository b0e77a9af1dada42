#!/bin/bash
# funcmond under HTTP load (wrk on /debug/profiles/{name} and /metrics, bounded in time,
# loopback only) while a client calls steadily on two threads: no HTTP errors, no record
# dropped, and no record older than ten drain intervals when drained (about one when keeping up).
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
    # A record waits about one interval (10 ms) for the next drain while the loop keeps
    # up. The bound is ten intervals: a drain held up by the HTTP load shows as seconds,
    # and a bound of two failed under ThreadSanitizer on two busy cores (20.08 ms).
    awk -v l="$lag" 'BEGIN { exit !(l < 0.100) }' || fail "drain lag ${lag}s on $path"
done
calls=$(curl -s "http://127.0.0.1:$port/debug/profiles/work" | jq '.call_count')
drops=$(curl -s "http://127.0.0.1:$port/debug/processes" | jq '[.processes[].drops] | add')
[ "$drops" = 0 ] || fail "$drops records dropped"
[ "$calls" -gt 1000 ] || fail "only $calls calls recorded"
echo "test_load: $calls calls under load, no HTTP error, no drop: ok"
