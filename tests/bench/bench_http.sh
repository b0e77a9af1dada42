#!/bin/bash
# HTTP throughput of funcmond with wrk on loopback (DESIGN §7: small REST answers >= 50 k
# requests/s), with one client attached calling at a steady pace.
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
for path in /debug/profiles/work /metrics; do
    out=$(wrk -t2 -c64 -d5s "http://127.0.0.1:$port$path" 2>&1)
    rps=$(echo "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
    errors=$(echo "$out" | grep -E "Non-2xx|Socket errors" | tr '\n' ' ')
    name=$( [ "$path" = /metrics ] && echo http_metrics_rps || echo http_profile_rps )
    printf '%s median=%s bar=50000 ratio=%s %s\n' "$name" "$rps" "$(awk -v r="$rps" 'BEGIN { printf "%.2f", r / 50000 }')" "$errors"
done
kill $c; wait $c 2>/dev/null
kill $f; wait $f 2>/dev/null
rm -f "$log" /dev/shm/"$prefix".* /dev/shm/"$prefix"-sidecar
