#!/bin/bash
# The HTTP middleware in a real server (h2o or libmicrohttpd), driven by curl and wrk over
# loopback and read back through a real funcmond: every request the test sent is counted
# once under the name of its route (or its raw path, up to the cap), 5xx as errors, 4xx as
# client errors, skipped paths not at all, sleeps timed; the server then stops cleanly.
# Usage: test_http_middleware.sh h2o|mhd SERVER FUNCMOND [THREADS]
set -u
kind=$1 server=$2 funcmond=$3 threads=${4:-1}
needs="curl jq wrk" name=mw$kind$threads
. "$(dirname "$0")/funcmond_lib.sh"

service=mw-$kind
cap=5
slack_ms=1000 # scheduler slack above a 20 ms sleep: a loaded 2-core machine under a sanitizer
declare -A calls errors client_errors
total=0

start_funcmond env
args=($cap)
[ "$kind" = mhd ] && args+=($threads)
FUNCMON_SERVICE=$service FUNCMON_SKIP_PATHS='/health;/skip/*' "$server" "${args[@]}" > "$dir/server.out" 2> "$dir/server.err" &
spid=$!
pids+=($spid)
for i in $(seq 100); do
    sport=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$dir/server.out")
    [ -n "$sport" ] && break
    sleep 0.05
done
[ -n "$sport" ] || fail "server did not start: $(cat "$dir/server.err")"
srv="http://127.0.0.1:$sport"

# send NAME STATUS PATH [curl args...]: one request that must answer STATUS; NAME is the
# profile it must count under, "-" for a skipped path.
send() {
    local name=$1 want=$2 path=$3
    shift 3
    local got
    got=$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "$@" "$srv$path")
    [ "$got" = "$want" ] || fail "$path: status $got, expected $want"
    [ "$name" = - ] && return
    calls[$name]=$((${calls[$name]:-0} + 1))
    total=$((total + 1))
    if [ "$want" -ge 500 ] || [ "$want" = 000 ]; then
        errors[$name]=$((${errors[$name]:-0} + 1))
    elif [ "$want" -ge 400 ]; then
        client_errors[$name]=$((${client_errors[$name]:-0} + 1))
    fi
}

# Routes: parameters, a query string, the rest of a path, methods.
for id in 1 2 3 4 5; do send 'GET_/v1/users/:id' 200 /v1/users/$id; done
send 'GET_/v1/users/:id' 200 '/v1/users/9?x=1&next=/static/a'
send 'POST_/v1/users/:id' 200 /v1/users/1 -d '{"name":"a body over more than one read"}'
send 'GET_/v1/users/:id/orders/:order' 200 /v1/users/1/orders/2
send 'GET_/static/*' 200 /static/css/site.css
send 'GET_/static/*' 200 /static/x
send 'OTHER_/v1/users/:id' 200 /v1/users/1 -X 'FO{O'
# Status classes: 5xx errors, 4xx client errors, 2xx neither.
for i in 1 2 3; do send 'GET_/status/:code' 500 /status/500; done
for i in 1 2; do send 'GET_/status/:code' 404 /status/404; done
send 'GET_/status/:code' 201 /status/201
# Skipped: nothing recorded.
for i in 1 2 3 4; do send - 200 /health; done
send - 200 '/health?deep=1'
send - 200 /skip/a/b
# Raw paths: the first $cap distinct ones are names, the rest and overlong ones fold.
for i in $(seq 8); do
    if [ "$i" -le $cap ]; then send "GET_/raw/$i" 200 /raw/$i; else send 'GET_<unmatched>' 200 /raw/$i; fi
done
send 'GET_/raw/1' 200 /raw/1
send 'GET_<unmatched>' 200 "/long/$(head -c 150 /dev/zero | tr '\0' 'x')"
# Durations: a handler that sleeps 20 ms.
for i in 1 2 3; do send 'GET_/sleep/:ms' 200 /sleep/20; done
if [ "$kind" = h2o ]; then
    # Four requests answered 20 ms later by a timer while the loop serves the others: their
    # profiles begin and end interleaved on the one loop thread.
    for i in 1 2 3 4; do
        curl -s -o /dev/null -w '%{http_code}\n' "$srv/delay/20" >> "$dir/delay" &
    done
    wait_start=$SECONDS
    while [ "$(wc -l < "$dir/delay" 2>/dev/null || echo 0)" -lt 4 ] && [ $((SECONDS - wait_start)) -lt 20 ]; do sleep 0.05; done
    [ "$(grep -c '^200$' "$dir/delay")" = 4 ] || fail "delayed answers: $(cat "$dir/delay")"
    calls['GET_/delay/:ms']=4
    total=$((total + 4))
else
    # A request the handler refuses (MHD_NO): no answer, recorded as an error.
    send 'GET_/drop' 000 /drop
fi

# Load: wrk on 2 connections, each stopping after 250 answers, so no request is in flight
# when wrk stops and its count is exact (wrk still waits out -d; 500 answers take well under
# a second even under a sanitizer).
cat > "$dir/limit.lua" <<'EOF'
local answered = 0
function response(status, headers, body)
    answered = answered + 1
    if answered == 250 then
        wrk.thread:stop()
    end
end
EOF
wrk -t2 -c2 -d5s -s "$dir/limit.lua" "$srv/v1/items/42" > "$dir/wrk" 2>&1 || fail "wrk: $(cat "$dir/wrk")"
sent=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$dir/wrk")
[ "$sent" = 500 ] || fail "wrk answered $sent requests, expected 500: $(cat "$dir/wrk")"
grep -qE "Non-2xx|Socket errors" "$dir/wrk" && fail "wrk saw errors: $(cat "$dir/wrk")"
calls['GET_/v1/items/:id']=$sent
total=$((total + sent))

# What funcmond must show, built from what was sent.
expected=$(for n in "${!calls[@]}"; do
    printf '%s\t%s\t%s\t%s\n' "$n" "${calls[$n]}" "${errors[$n]:-0}" "${client_errors[$n]:-0}"
done | jq -R -s 'split("\n") | map(select(length > 0) | split("\t") |
    {key: .[0], value: {calls: (.[1] | tonumber), errors: (.[2] | tonumber), client_errors: (.[3] | tonumber)}}) | from_entries')
profiles() {
    curl -s "$base/debug/profiles?service=$service&package=http_handler" |
        jq -c '.profiles | map_values({calls: .call_count, errors: .error_count, client_errors: .client_error_count})'
}
for i in $(seq 100); do
    got=$(profiles)
    [ "$(jq -n --argjson g "$got" '[$g[].calls] | add')" = "$total" ] && break
    sleep 0.1
done
jq -e -n --argjson g "$got" --argjson e "$expected" '$g == $e' > /dev/null ||
    fail "profiles differ from what was sent:
    got      $(jq -S -c . <<< "$got")
    expected $(jq -S -c . <<< "$expected")"

# Durations of the 20 ms handlers.
for name in 'GET_/sleep/:ms' 'GET_/delay/:ms'; do
    [ -n "${calls[$name]:-}" ] || continue
    curl -s -G "$base/debug/profiles/$name" --data-urlencode "service=$service" > "$dir/p.json"
    jq -e --argjson slack $((slack_ms * 1000000)) '.min_duration_ns >= 20000000 and .max_duration_ns < 20000000 + $slack' \
        "$dir/p.json" > /dev/null || fail "$name durations: $(cat "$dir/p.json")"
done

# A clean stop: the server exits 0 (a sanitizer report would make it fail), and the MHD
# application saw each request it was handed begin and complete once, skipped ones included.
kill -TERM $spid
wait $spid
rc=$?
[ $rc = 0 ] || fail "server exited $rc: $(tail -20 "$dir/server.err")"
if [ "$kind" = mhd ]; then
    handed=$((total + 6)) # and the 6 skipped requests
    grep -q "^requests begun $handed completed $handed$" "$dir/server.out" ||
        fail "application callbacks: $(tail -1 "$dir/server.out"), expected $handed of each"
fi
echo "test_http_middleware $kind: $total requests profiled as sent: ok"
