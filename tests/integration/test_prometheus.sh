#!/bin/bash
# A real Prometheus server (Debian's prometheus) scrapes a real funcmond every second, and
# the queries of the original guide return the test's functions with the figures the
# test's client produced: average duration, error rate, memory per call, topk, p99.
# Usage: test_prometheus.sh FUNCMOND E2E_CLIENT
set -u
funcmond=$1 client=$2
needs="curl jq prometheus" name=prom
. "$(dirname "$0")/funcmond_lib.sh"
start_funcmond env

# Calls of "work" every ~2 ms on two threads, one in four failing, each allocating 1000 bytes.
FUNCMON_SERVICE=promsvc FUNCMON_TRACK_ALLOC=1 E2E_ALLOC_BYTES=1000 "$client" 2 0 2000 4 > /dev/null 2> "$dir/client.err" &
pids+=($!)

cat > "$dir/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: funcmond
    static_configs:
      - targets: ['127.0.0.1:$port']
YML
start_prometheus

query() {
    curl -s -G "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$1"
}
# value QUERY: the value for function "work" of service promsvc, once there is one.
value() {
    local v=""
    for i in $(seq 60); do
        v=$(query "$1" | jq -r '[.data.result[] | select(.metric.function == "work" and .metric.service == "promsvc")][0].value[1] // empty')
        [ -n "$v" ] && [ "$v" != NaN ] && break
        sleep 1
    done
    echo "$v"
}
in_range() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }'; }

avg=$(value 'rate(function_duration_seconds_sum[1m]) / rate(function_duration_seconds_count[1m])')
in_range "$avg" 0.002 0.05 || fail "average duration $avg"
errs=$(value 'rate(function_errors_total[1m]) / rate(function_calls_total[1m])')
in_range "$errs" 0.2 0.3 || fail "error rate $errs"
# A sanitizer build's client cannot track allocations (its malloc comes first), and says so.
if grep -q "allocation tracking unavailable" "$dir/client.err"; then
    mem="(not tracked in this build)"
else
    mem=$(value 'function_memory_bytes_sum / function_memory_bytes_count')
    in_range "$mem" 1000 1000 || fail "memory per call $mem"
fi
top=$(query 'topk(10, rate(function_duration_seconds_sum[1m]) / rate(function_duration_seconds_count[1m]))' |
    jq -r '[.data.result[].metric.function] | index("work")')
[ "$top" != null ] || fail "topk does not list work"
p99=$(value 'histogram_quantile(0.99, rate(function_duration_seconds_bucket[1m]))')
in_range "$p99" 0.002 0.1 || fail "p99 $p99"
echo "test_prometheus: avg ${avg}s, error rate $errs, ${mem} bytes per call, p99 ${p99}s: ok"
