# funcmond_lib.sh - what the shell tests of funcmond share, sourced by them: tools that must
# be there (else skip with exit 77), a private segment prefix, a cleanup that kills every
# process started and removes its segments, and starting funcmond on an ephemeral port.
# Set before sourcing: funcmond (path), needs (tools), name (for the prefix).

for tool in $needs; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed" >&2; exit 77; }
done
dir=$(mktemp -d)
prefix="fm$name-$$"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -f /dev/shm/"$prefix".* /dev/shm/"$prefix"-sidecar
    rm -rf "$dir"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    echo "--- funcmond log:" >&2
    tail -20 "$dir/log" >&2
    exit 1
}
export FUNCMON_SHM_PREFIX=$prefix SIDECAR_SHM_PREFIX=$prefix

# start_funcmond [env NAME=value...]: funcmond on 127.0.0.1, an ephemeral port; sets fpid,
# port and base (http://127.0.0.1:port) once it serves.
start_funcmond() {
    : > "$dir/log"
    HTTP_LISTEN=127.0.0.1:0 "$@" "$funcmond" 2>> "$dir/log" &
    fpid=$!
    pids+=($fpid)
    port=""
    for i in $(seq 100); do
        port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$dir/log" | head -1)
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || fail "funcmond did not start"
    base="http://127.0.0.1:$port"
}

# start_prometheus: a Prometheus server for $dir/prometheus.yml on a random port above
# 30000 (another if it is taken); sets pport and ppid.
start_prometheus() {
    for try in 1 2 3 4 5; do
        pport=$(((RANDOM % 20000) + 30000))
        prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
            --web.listen-address=127.0.0.1:$pport > "$dir/prom.log" 2>&1 &
        ppid=$!
        sleep 1
        kill -0 $ppid 2>/dev/null && break
    done
    pids+=($ppid)
    kill -0 $ppid 2>/dev/null || fail "prometheus did not start: $(tail -3 "$dir/prom.log")"
}
