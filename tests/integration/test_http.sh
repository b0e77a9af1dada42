#!/bin/bash
# The REST API and /metrics of a real funcmond, against real client processes, checked
# with curl and jq against what the clients did; /metrics with promtool; profiles with
# go tool pprof when Debian's golang-go is installed.
# Usage: test_http.sh FUNCMOND E2E_CLIENT
set -u
funcmond=$1 client=$2
needs="curl jq promtool prlimit" name=http
. "$(dirname "$0")/funcmond_lib.sh"

# get PATH [curl args...]: the body; the status code goes to $dir/status
get() {
    local path=$1; shift
    curl -s --path-as-is -o "$dir/body" -w '%{http_code}' "$@" "$base$path" > "$dir/status"
    cat "$dir/body"
}
status() { cat "$dir/status"; }
expect_status() { [ "$(status)" = "$1" ] || fail "$2: status $(status), expected $1: $(cat "$dir/body")"; }

start_funcmond env
# What the drain loop runs on, in /debug/stats and /metrics alike: epoll where io_uring is
# refused (run under refuse_io_uring), which the log says once.
loop=$(get /debug/stats | jq -r .event_loop)
if [ "${FUNCMON_TEST_REFUSE_IO_URING:-}" = 1 ]; then
    [ "$loop" = epoll ] || fail "io_uring is refused, yet event_loop is '$loop'"
    [ "$(grep -c 'io_uring is refused' "$dir/log")" = 1 ] || fail "the log does not say once that io_uring is refused"
else
    [ "$loop" = io_uring ] || [ "$loop" = epoll ] || fail "event_loop: '$loop'"
fi
get /metrics | grep -qx "funcmon_event_loop_info{backend=\"$loop\"} 1" || fail "/metrics does not show the event loop $loop"
# HTTP/1.1 only unless HTTP.HTTP2 asks for more: a prior-knowledge HTTP/2 connection gets no
# HTTP/2 answer, and an h2c upgrade request is answered over HTTP/1.1.
v=$(curl -s --http2-prior-knowledge --max-time 5 -o /dev/null -w '%{http_version}' "$base/metrics")
[ "$v" != 2 ] || fail "HTTP/2 with prior knowledge was answered over HTTP/$v"
v=$(curl -s --http2 --max-time 5 -o /dev/null -w '%{http_version} %{http_code}' "$base/metrics")
[ "$v" = "1.1 200" ] || fail "h2c upgrade: answered as '$v', expected '1.1 200'"
# Known work: 2 threads x 50 calls of "work" sleeping 2 ms, every 5th failing, and as many
# calls of "fast"; odd names; the same name in a second service; a call that stays in flight.
FUNCMON_SERVICE=svc "$client" 2 50 2000 5 > "$dir/c1" || fail "client"
for name in 'GET_/v1/users/:id' 'a%2Fb' '..' 'with space' 'ünïcödé'; do
    FUNCMON_SERVICE=odd "$client" 1 3 0 0 "$name" > /dev/null || fail "client $name"
done
FUNCMON_SERVICE=svc2 "$client" 1 7 0 0 work > /dev/null || fail "client svc2"
# Keys that used to collide: service a + package b/c and service a/b + package c, both
# naming "n"; and a name spelled like another function's qualified key.
FUNCMON_SERVICE=a E2E_PACKAGE=b/c "$client" 1 4 0 0 n > /dev/null || fail "client a"
FUNCMON_SERVICE=a/b E2E_PACKAGE=c "$client" 1 6 0 0 n > /dev/null || fail "client a/b"
FUNCMON_SERVICE=odd "$client" 1 5 0 0 'svc/e2e:work' > /dev/null || fail "client odd svc/e2e:work"
FUNCMON_SERVICE=slow "$client" 1 0 30000000 0 slow > /dev/null &
slow=$!
pids+=($slow)

# Wait until the figures are published.
for i in $(seq 100); do
    n=$(get "/debug/profiles/work?service=svc" | jq -r '.call_count // 0' 2>/dev/null)
    [ "$n" = 100 ] && break
    sleep 0.1
done
[ "$n" = 100 ] || fail "work calls: $n"

# One profile, against what the client did.
get "/debug/profiles/work?service=svc" > "$dir/p.json"
expect_status 200 "profile"
jq -e '.name == "work" and .package == "e2e" and .service == "svc" and .call_count == 100 and .error_count == 20' "$dir/p.json" >/dev/null ||
    fail "profile counts: $(cat "$dir/p.json")"
# Nothing was dropped, and dropped_count says so, where DESIGN puts it: after error_rate_1m.
jq -e '.dropped_count == 0 and ([keys_unsorted[]] | index("dropped_count")) == ([keys_unsorted[]] | index("error_rate_1m")) + 1' \
    "$dir/p.json" >/dev/null || fail "dropped_count: $(cat "$dir/p.json")"
jq -e '.min_duration_ns >= 2000000 and .avg_duration_ns >= 2000000 and .p50_duration_ns >= 1980000 and .max_duration_ns < 1000000000' \
    "$dir/p.json" >/dev/null || fail "profile durations: $(cat "$dir/p.json")"
jq -e '(.avg_duration | test("^[0-9.]+(ns|µs|ms|s)$")) and (.total_duration | test("^([0-9]+h)?([0-9]+m)?[0-9.]+(ns|µs|ms|s)$"))' \
    "$dir/p.json" >/dev/null || fail "Go duration strings: $(cat "$dir/p.json")"
jq -e '.last_call_time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$")' "$dir/p.json" >/dev/null ||
    fail "RFC 3339 time: $(cat "$dir/p.json")"
last=$(jq -r '.last_call_time | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601' "$dir/p.json")
now=$(date +%s)
[ $((now - last)) -lt 30 ] || fail "last_call_time $last is not recent ($now)"

# Every function its own key: '/' and '%' in a service, ':' and '%' in a package are
# percent-encoded in the qualified forms, and a name that equals another's qualified key
# is qualified itself.
for i in $(seq 100); do
    get "/debug/profiles/n?service=a" | jq -e '.call_count == 4' >/dev/null &&
        get "/debug/profiles/n?service=a%2Fb" | jq -e '.call_count == 6' >/dev/null &&
        get "/debug/profiles/svc/e2e:work" | jq -e '.call_count == 5' >/dev/null && break
    sleep 0.1
done
get "/debug/profiles" > "$dir/all.json"
jq -e '.count == (.profiles | length) and
       .profiles["a/b/c:n"].service == "a" and .profiles["a/b/c:n"].package == "b/c" and .profiles["a/b/c:n"].call_count == 4 and
       .profiles["a%2Fb/c:n"].service == "a/b" and .profiles["a%2Fb/c:n"].package == "c" and .profiles["a%2Fb/c:n"].call_count == 6 and
       .profiles["svc/e2e:work"].service == "svc" and .profiles["svc/e2e:work"].call_count == 100 and
       .profiles["odd/e2e:svc/e2e:work"].name == "svc/e2e:work" and .profiles["odd/e2e:svc/e2e:work"].call_count == 5' \
    "$dir/all.json" >/dev/null || fail "distinct keys: $(jq -c '[.count, (.profiles | to_entries[] | [.key, .value.service, .value.package, .value.call_count])]' "$dir/all.json")"
get "/debug/profiles/n?service=a&package=b%2Fc" | jq -e '.service == "a" and .call_count == 4' >/dev/null || fail "n in a: $(cat "$dir/body")"
get "/debug/profiles/n?service=a%2Fb" | jq -e '.service == "a/b" and .call_count == 6' >/dev/null || fail "n in a/b: $(cat "$dir/body")"
get "/debug/profiles?service=a%2Fb" | jq -e '.count == 2 and .profiles.n.call_count == 6' >/dev/null || fail "?service=a/b: $(cat "$dir/body")"
get "/debug/profiles?package=b%2Fc" | jq -e '.count == 1 and .profiles.n.service == "a"' >/dev/null || fail "?package=b/c: $(cat "$dir/body")"
get "/debug/profiles/n" > /dev/null
expect_status 409 "n in two services"
get "/debug/profiles/svc/e2e:work" | jq -e '.service == "odd" and .call_count == 5' >/dev/null || fail "name svc/e2e:work: $(cat "$dir/body")"
# The list: the shared name is keyed by service/package:name, the others by name.
get "/debug/profiles" > "$dir/all.json"
jq -e '.profiles["svc/e2e:work"].call_count == 100 and .profiles["svc2/e2e:work"].call_count == 7 and
       .profiles["GET_/v1/users/:id"].call_count == 3 and (.count == (.profiles | length))' "$dir/all.json" >/dev/null ||
    fail "profiles list: $(jq -c '.profiles | keys' "$dir/all.json")"
get "/debug/profiles?service=svc&sort=calls&limit=1" | jq -e '.count == 1 and (.profiles | keys) == ["fast"] or (.profiles | keys) == ["work"]' >/dev/null ||
    fail "sort/limit: $(cat "$dir/body")"
get "/debug/profiles?sort=errors&limit=1" | jq -e '.profiles["svc/e2e:work"].error_count == 20' >/dev/null ||
    fail "sort by errors: $(cat "$dir/body")"

# Names with '/', '%2F', '..', spaces and unicode are reachable; '..' is a name, not a step.
for enc in 'GET_/v1/users/:id' 'a%252Fb' '..' 'with%20space' '%C3%BCn%C3%AFc%C3%B6d%C3%A9'; do
    get "/debug/profiles/$enc" | jq -e '.call_count == 3' >/dev/null || fail "name $enc: $(status) $(cat "$dir/body")"
done

# Errors.
get "/debug/profiles/work" > /dev/null
expect_status 409 "ambiguous name"
jq -e '.candidates | length == 2' "$dir/body" >/dev/null || fail "409 candidates: $(cat "$dir/body")"
get "/debug/profiles/nope" > /dev/null; expect_status 404 "unknown name"
get "/debug/nope" > /dev/null; expect_status 404 "unknown endpoint"
get "/debug/profiles?sort=bogus" > /dev/null; expect_status 400 "bad sort"
get "/debug/profiles?limit=x" > /dev/null; expect_status 400 "bad limit"
get "/debug/profiles?what=1" > /dev/null; expect_status 400 "unknown parameter"
get "/debug/profiles/%zz" > /dev/null; expect_status 400 "bad escape"
get "/debug/profiles" -X DELETE > /dev/null; expect_status 405 "DELETE"
get "/debug/gc" > /dev/null; expect_status 405 "GET gc"
jq -e '.error and .status == 405' "$dir/body" >/dev/null || fail "error shape: $(cat "$dir/body")"
long=$(head -c 20000 /dev/zero | tr '\0' 'x')
get "/debug/profiles/$long" > /dev/null
case "$(status)" in 404|414|400|431) ;; *) fail "huge path: $(status)" ;; esac
get "/debug/profiles" -H "X-Huge: $long" > /dev/null
case "$(status)" in 200|400|431) ;; *) fail "huge header: $(status)" ;; esac

# msgpack: the same answer, another encoding.
get "/debug/profiles/work?service=svc" -H 'Accept: application/msgpack' > "$dir/p.mp"
expect_status 200 "msgpack"
first=$(head -c 1 "$dir/p.mp" | od -An -tx1 | tr -d ' ')
[ "$first" = de ] || fail "msgpack answer does not start with a map16: $first"
grep -q '"application/msgpack"' <(curl -s -D - -o /dev/null -H 'Accept: application/msgpack' "$base/debug/stats" | tr -d '\r' |
    sed -n 's/^content-type: \(.*\)/"\1"/Ip') || fail "msgpack content type"

# Processes, stats, memory, threads, in-flight calls.
for i in $(seq 100); do
    get "/debug/threads" | jq -e --argjson slow $slow \
        '[.processes[] | select(.pid == $slow) | .threads[] | .inflight[] | select(.function == "slow")] | length == 1' >/dev/null && break
    sleep 0.1
done
get "/debug/processes" > "$dir/procs.json"
jq -e --argjson slow $slow '.count == (.processes | length) and ([.processes[] | select(.pid == $slow and .state == "running")] | length == 1)' \
    "$dir/procs.json" >/dev/null || fail "processes: $(cat "$dir/procs.json")"
for i in $(seq 50); do
    get "/debug/stats" | jq -e --argjson slow $slow '.processes[] | select(.pid == $slow) | .rss > 0 and .threads >= 2' >/dev/null && break
    sleep 0.1
done
get "/debug/stats" | jq -e --argjson slow $slow '.processes[] | select(.pid == $slow) | .rss > 0 and .threads >= 2 and (.uptime_ns > 0)' \
    >/dev/null || fail "stats: $(cat "$dir/body")"
get "/debug/memory" | jq -e --argjson slow $slow '.processes[] | select(.pid == $slow) | .status.vmrss > 0 and .smaps_rollup.rss > 0' \
    >/dev/null || fail "memory: $(cat "$dir/body")"
get "/debug/threads" | jq -e --argjson slow $slow \
    '[.processes[] | select(.pid == $slow) | .threads[] | .inflight[] | select(.function == "slow")] | length == 1' >/dev/null ||
    fail "threads: $(cat "$dir/body")"
sleep 0.3
get "/debug/inflight?min_ms=200" | jq -e '[.calls[] | select(.function == "slow" and .elapsed_ns >= 200000000)] | length == 1' \
    >/dev/null || fail "inflight: $(cat "$dir/body")"
get "/debug/inflight?min_ms=100000" | jq -e '.count == 0' >/dev/null || fail "inflight min_ms: $(cat "$dir/body")"
get "/debug/goroutines" | grep -q "e2e.slow (running" || fail "goroutines text: $(cat "$dir/body")"

# POST gc: every live client answers with before, after and freed (signed).
get "/debug/gc" -X POST > "$dir/gc.json"
expect_status 200 "gc"
jq -e --argjson slow $slow '.message and (.freed | type == "number") and
    ([.processes[] | select(.pid == $slow and .status == "trimmed" and .before.rss > 0)] | length == 1)' "$dir/gc.json" >/dev/null ||
    fail "gc: $(cat "$dir/gc.json")"

# /metrics: valid exposition, the test's numbers in it.
get "/metrics" > "$dir/metrics.txt"
expect_status 200 "metrics"
promtool check metrics < "$dir/metrics.txt" > "$dir/promtool.txt" 2>&1 || fail "promtool: $(cat "$dir/promtool.txt")"
grep -q '^function_calls_total{service="svc",package="e2e",function="work"} 100$' "$dir/metrics.txt" ||
    fail "calls in metrics: $(grep function_calls_total "$dir/metrics.txt" | head)"
grep -q '^function_duration_seconds_count{service="svc",package="e2e",function="work"} 100$' "$dir/metrics.txt" ||
    fail "histogram count in metrics"
grep -q '^function_errors_total{service="svc",package="e2e",function="work"} 20$' "$dir/metrics.txt" || fail "errors in metrics"
grep -q '^function_dropped_total{service="svc",package="e2e",function="work"} 0$' "$dir/metrics.txt" || fail "dropped in metrics"

# pprof: the index, a heap profile, and a CPU profile (503 where perf events are refused).
get "/debug/pprof/" | jq -e '.count == 2' >/dev/null || fail "pprof index: $(cat "$dir/body")"
curl -s -o "$dir/heap.pb.gz" -w '%{http_code}' "$base/debug/pprof/heap" > "$dir/status"
expect_status 200 "heap profile"
[ "$(head -c 2 "$dir/heap.pb.gz" | od -An -tx1 | tr -d ' ')" = 1f8b ] || fail "heap profile is not gzip"
curl -s -o "$dir/cpu.pb.gz" -w '%{http_code}' "$base/debug/pprof/profile?seconds=1&pid=$slow" > "$dir/status"
case "$(status)" in 200|503) ;; *) fail "cpu profile: $(status) $(cat "$dir/cpu.pb.gz")" ;; esac
cpu_status=$(status)
if command -v go >/dev/null; then
    go tool pprof -raw "$dir/heap.pb.gz" > "$dir/heap.txt" 2>&1 || fail "go tool pprof heap: $(cat "$dir/heap.txt")"
    [ "$(status)" = 200 ] && { go tool pprof -raw "$dir/cpu.pb.gz" > "$dir/cpu.txt" 2>&1 || fail "go tool pprof cpu: $(cat "$dir/cpu.txt")"; }
fi

# One CPU profile at a time; the second is told so.
curl -s -o /dev/null "$base/debug/pprof/profile?seconds=2&pid=$slow" &
sleep 0.3
get "/debug/pprof/profile?seconds=1&pid=$slow" > /dev/null
case "$(status)" in 503) ;; *) fail "a second concurrent CPU profile: $(status)" ;; esac
wait $!
# A CPU profile whose client goes away stops within a second: the slot is free for the next
# request and funcmond holds no perf event. First the control: while the client waits, the
# profile does hold perf events.
perf_fds() { ls -l /proc/$fpid/fd 2>/dev/null | grep -c 'anon_inode:\[perf_event\]'; }
if [ "$cpu_status" = 200 ]; then
    curl -s -o /dev/null --max-time 1.5 "$base/debug/pprof/profile?seconds=3600&pid=$slow" &
    cpid=$!
    held=0
    for i in $(seq 10); do
        held=$(perf_fds)
        [ "$held" -gt 0 ] && break
        sleep 0.1
    done
    [ "$held" -gt 0 ] || fail "no perf event open while a CPU profile runs"
    wait $cpid
    left=$(perf_fds)
    for i in $(seq 20); do # 2 s after the client left
        left=$(perf_fds)
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    [ "$left" = 0 ] || fail "$left perf event(s) still open 2 s after the profile's client left (held $held)"
    get "/debug/pprof/profile?seconds=1&pid=$slow" > /dev/null
    expect_status 200 "a CPU profile after an abandoned one"
else
    echo "note: CPU profiles answer $cpu_status here: the abandoned-profile check is skipped"
fi
# No endpoint takes a body: refused before it is read.
head -c 100000 /dev/zero > "$dir/big"
get "/debug/gc" -X POST --data-binary @"$dir/big" > /dev/null; expect_status 413 "a request body"

# SIGTERM with an idle keep-alive connection open still stops cleanly.
exec 3<>/dev/tcp/127.0.0.1/$port
printf 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n' >&3
sleep 0.2
kill -TERM $fpid; wait $fpid || fail "funcmond exit status on SIGTERM with a connection open"
exec 3>&-
[ ! -e "/dev/shm/$prefix-sidecar" ] || fail "the sidecar's announcement was left behind"

# Authentication: everything but /metrics wants the token.
start_funcmond env HTTP_AUTH_TOKEN=s3cret HTTP_HTTP2=true
v=$(curl -s --http2-prior-knowledge --max-time 5 -o /dev/null -w '%{http_version}' "$base/metrics")
[ "$v" = 2 ] || fail "HTTP.HTTP2=true: prior knowledge answered over HTTP/$v, not HTTP/2"
get "/debug/profiles" > /dev/null; expect_status 401 "no token"
get "/debug/profiles" -H "Authorization: Bearer wrong" > /dev/null; expect_status 401 "wrong token"
get "/debug/profiles" -H "Authorization: Bearer s3cret" > /dev/null; expect_status 200 "token"
get "/metrics" > /dev/null; expect_status 200 "metrics without token"
kill -TERM $fpid; wait $fpid || fail "funcmond exit status on SIGTERM"

# Switched off: the routes are gone.
start_funcmond env PROFILING_ENABLED=false METRICS_PATH=/m
get "/debug/profiles" > /dev/null; expect_status 404 "profiling disabled"
get "/m" > /dev/null; expect_status 200 "metrics moved"
kill -TERM $fpid; wait $fpid || fail "funcmond exit status on SIGTERM"
# Out of file descriptors (soft and hard limit 64, so raising the soft limit cannot help):
# connections past the limit, idle or with one request answered, must not make the HTTP
# thread spin on a listener it cannot accept from, and a new request is still answered
# within seconds (idle connections are closed for it, the oldest first).
start_funcmond prlimit --nofile=64:64 env
conns=()
for i in $(seq 150); do
    exec {c}<>/dev/tcp/127.0.0.1/$port || fail "connection $i refused"
    [ $((i % 2)) = 0 ] && printf 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n' >&$c
    conns+=($c)
done
sleep 0.5
cpu() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' /proc/$fpid/stat; }
t0=$(cpu)
sleep 2
t1=$(cpu)
tick=$(getconf CLK_TCK)
# A spinning thread takes 2 s x tick; half of that is the (very loose) bound.
[ $((t1 - t0)) -lt "$tick" ] || fail "funcmond used $((t1 - t0)) of $((2 * tick)) clock ticks in 2 s with its fds used up: spinning"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$base/metrics")
[ "$code" = 200 ] || fail "with its fds used up by $((${#conns[@]})) connections, funcmond answered '$code' (curl: 5 s), not 200"
for c in "${conns[@]}"; do exec {c}>&-; done
kill -TERM $fpid; wait $fpid || fail "funcmond exit status on SIGTERM"
# Connections never hold every descriptor, even when they stop just short of the limit
# (so that no accept fails): the drain thread still attaches a new client and counts it.
start_funcmond prlimit --nofile=64:64 env
used=$(ls /proc/$fpid/fd | wc -l)
conns=()
for i in $(seq $((64 - used))); do
    exec {c}<>/dev/tcp/127.0.0.1/$port || fail "connection $i refused"
    conns+=($c)
done
sleep 0.5
open=$(ls /proc/$fpid/fd | wc -l)
[ "$open" -lt 64 ] || fail "${#conns[@]} idle connections took every descriptor funcmond has ($open of 64)"
FUNCMON_SERVICE=fdstarved "$client" 1 20 0 0 > /dev/null || fail "client fdstarved"
sleep 1 # looked at from the log, not over HTTP (a request would make connections go)
! grep -q "fdstarved.*waits" "$dir/log" || fail "a new client waited for a descriptor: $(grep fdstarved "$dir/log")"
n=0
for i in $(seq 30); do
    n=$(jq -r '.profiles | to_entries | map(select(.value.service == "fdstarved")) | .[0].value.call_count // 0' \
        < <(curl -s --max-time 5 "$base/debug/profiles" 2>/dev/null) 2>/dev/null)
    [ "$n" = 20 ] && break
    sleep 0.1
done
[ "$n" = 20 ] || fail "with ${#conns[@]} idle connections, a new client's 20 calls counted as '$n' ($(ls /proc/$fpid/fd | wc -l) fds open): $(tail -3 "$dir/log")"
for c in "${conns[@]}"; do exec {c}>&-; done
kill -TERM $fpid; wait $fpid || fail "funcmond exit status on SIGTERM"
echo "test_http: ok"
