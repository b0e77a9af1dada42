#!/bin/bash
# funcmon-demo on its own: bad command lines exit 2 with a message; --load sends real
# requests that the middleware profiles, one per request: while it runs the request counts
# funcmond serves grow, and after it stops they equal what the load generator says it sent
# (and the 5xx it got equal the request errors).
# Usage: test_demo_load.sh FUNCMOND FUNCMON_DEMO
set -u
funcmond=$1 demo=$2
needs="curl jq" name=demoload
. "$(dirname "$0")/funcmond_lib.sh"

# Bad command lines: exit 2 and a message naming the problem; --help: exit 0.
expect_usage_error() {
    local pattern=$1; shift
    "$demo" "$@" > "$dir/o" 2> "$dir/e"
    local rc=$?
    [ "$rc" = 2 ] || fail "funcmon-demo $*: exit $rc, expected 2"
    grep -q -- "$pattern" "$dir/e" || fail "funcmon-demo $*: message '$(cat "$dir/e")' lacks '$pattern'"
}
expect_usage_error "unknown option '--bogus'" --bogus
expect_usage_error "--load '0'" --load 0
expect_usage_error "--load 'x'" --load x
expect_usage_error "--load '99999'" --load 99999
expect_usage_error "--seconds '-1'" --seconds -1
expect_usage_error "--listen 'nowhere'" --listen nowhere
expect_usage_error "--listen '127.0.0.1:70000'" --listen 127.0.0.1:70000
expect_usage_error "needs a value" --load
expect_usage_error "unexpected argument 'extra'" extra
"$demo" --help > "$dir/o" 2>&1 || fail "--help exit $?"
grep -q '^Usage: funcmon-demo' "$dir/o" || fail "--help: $(head -3 "$dir/o")"

# A port in use is a clear start-up failure, exit 1.
start_funcmond env
"$demo" --listen "127.0.0.1:$port" --seconds 1 > "$dir/o" 2> "$dir/e"
rc=$?
[ "$rc" = 1 ] && grep -q 'cannot listen on 127.0.0.1:' "$dir/e" || fail "port in use: exit $rc, $(cat "$dir/e")"

# requests: the calls of every request profile (package http_handler) funcmond serves.
requests() {
    curl -s "$base/debug/profiles?package=http_handler" | jq '[.profiles[].call_count] | add // 0'
}
request_errors() {
    curl -s "$base/debug/profiles?package=http_handler" | jq '[.profiles[].error_count] | add // 0'
}

"$demo" --listen 127.0.0.1:0 --load 100 --seconds 4 > "$dir/demo.out" 2> "$dir/demo.err" &
dpid=$!
pids+=($dpid)
for i in $(seq 100); do
    n1=$(requests)
    [ "${n1:-0}" -gt 0 ] && break
    sleep 0.05
done
[ "${n1:-0}" -gt 0 ] || fail "no request profiled: $(cat "$dir/demo.out" "$dir/demo.err")"
sleep 1
n2=$(requests)
[ "$n2" -gt "$n1" ] || fail "request count did not grow in 1 s: $n1 then $n2"
wait "$dpid" || fail "funcmon-demo exit $?: $(cat "$dir/demo.err")"

# What the load generator says it sent, against what funcmond counted once drained.
read -r sent s2 s4 s5 other failed < <(sed -n \
    's/^funcmon-demo: load sent \([0-9]*\) requests: \([0-9]*\) 2xx, \([0-9]*\) 4xx, \([0-9]*\) 5xx, \([0-9]*\) other, \([0-9]*\) failed$/\1 \2 \3 \4 \5 \6/p' \
    "$dir/demo.out")
[ -n "${sent:-}" ] || fail "no load summary: $(cat "$dir/demo.out")"
[ "$failed" = 0 ] && [ "$other" = 0 ] || fail "load: $(cat "$dir/demo.out")"
[ $((s2 + s4 + s5)) = "$sent" ] || fail "load classes do not add up: $(cat "$dir/demo.out")"
# About 100 requests/s for 4 s; a loaded machine may fall behind, never ahead.
[ "$sent" -gt 0 ] && [ "$sent" -le 440 ] || fail "load sent $sent requests in 4 s at 100/s"
[ "$s4" -gt 0 ] && [ "$s5" -gt 0 ] || fail "the mix has no 4xx or no 5xx: $(cat "$dir/demo.out")"
for i in $(seq 100); do
    n=$(requests)
    [ "$n" = "$sent" ] && break
    sleep 0.05
done
[ "$n" = "$sent" ] || fail "funcmond counted $n requests, the load sent $sent"
e=$(request_errors)
[ "$e" = "$s5" ] || fail "funcmond counted $e failed requests, the load got $s5 answers 5xx"
echo "PASS: bad options exit 2; the load's $sent requests ($s5 5xx) are all profiled"
