#!/bin/bash
# HTTP throughput of funcmond with wrk on loopback (DESIGN §7: small REST answers >= 50 k
# requests/s), with one client attached calling at a steady pace; /metrics against that.
# Usage: bench_http.sh FUNCMOND E2E_CLIENT
set -u
funcmond=$1 client=$2
command -v wrk >/dev/null || { echo "bench_http: wrk is not installed" >&2; exit 1; }
prefix="fmbenchhttp-$$"
export FUNCMON_SHM_PREFIX=$prefix SIDECAR_SHM_PREFIX=$prefix
log=$(mktemp)
HTTP_LISTEN=127.0.0.1:0 "$funcmond" 2> "$log" &
f=$!
for i in $(seq 100); do
    port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$log" | head -1)
    [ -n "$port" ] && break
    sleep 0.05
done
FUNCMON_SERVICE=bench "$client" 1 0 1000 10 > /dev/null &
c=$!
sleep 1
# measure PATH: sets rps (requests per second wrk got) and errors (any it reported)
measure() {
    local out
    out=$(wrk -t2 -c64 -d5s "http://127.0.0.1:$port$1" 2>&1)
    errors=$(echo "$out" | grep -E "Non-2xx|Socket errors" | tr '\n' ' ')
    rps=$(echo "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
}
measure /debug/profiles/work
profile=$rps
printf 'http_profile_rps median=%s bar=50000 ratio=%s %s\n' "$profile" "$(awk -v r="$profile" 'BEGIN { printf "%.2f", r / 50000 }')" "$errors"
measure /metrics
printf 'http_metrics_rps median=%s profile_rps=%s ratio=%s %s\n' "$rps" "$profile" \
    "$(awk -v m="$rps" -v p="$profile" 'BEGIN { printf "%.2f", m / p }')" "$errors"
kill $c; wait $c 2>/dev/null
kill $f; wait $f 2>/dev/null
rm -f "$log" /dev/shm/"$prefix".* /dev/shm/"$prefix"-sidecar
