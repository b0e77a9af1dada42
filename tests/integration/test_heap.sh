#!/bin/bash
# /debug/pprof/heap against known allocations: a client (heap_client) allocates known bytes
# on known profiled-call stacks, some of them inside a call that is still running; go tool
# pprof must read the profile and show exactly those bytes per stack, each stack's own.
# Usage: test_heap.sh FUNCMOND HEAP_CLIENT
set -u
funcmond=$1 client=$2
needs="curl go" name=heap
. "$(dirname "$0")/funcmond_lib.sh"
start_funcmond env

n=200
FUNCMON_SERVICE=heapsvc FUNCMON_TRACK_ALLOC=1 "$client" $n > "$dir/client.out" 2> "$dir/client.err" &
cpid=$!
pids+=($cpid)
for i in $(seq 100); do
    grep -q '^ready' "$dir/client.out" && break
    kill -0 $cpid 2>/dev/null || break
    sleep 0.1
done
if ! kill -0 $cpid 2>/dev/null; then
    wait $cpid
    rc=$?
    [ $rc = 77 ] && { echo "SKIP: $(cat "$dir/client.err")" >&2; exit 77; }
    fail "heap_client exited $rc: $(cat "$dir/client.err")"
fi
grep -q "^ready $n" "$dir/client.out" || fail "heap_client never got ready"

# traces INDEX: one line per stack with a non-zero value, "value frame;frame;...", innermost
# frame first.
traces() {
    go tool pprof -traces -unit=B -sample_index="$1" "$dir/heap.pb.gz" 2> "$dir/pprof.err" |
        awk '/^-+\+/ { if (s != "") print v, s; s = ""; v = ""; next }
             v == "" && $1 ~ /^[0-9]+B?$/ { v = $1; sub(/^ *[0-9]+B? +/, ""); s = $0; next }
             v != "" && NF >= 1 { sub(/^ +/, ""); s = s ";" $0 }
             END { if (s != "") print v, s }' | grep -v "^0B\? " | sed 's/^\([0-9]*\)B /\1 /' | sort
}
# The sidecar publishes every few hundred ms: wait until the last stack is there in full.
want="$((n * 10000)) heap.render;heap.handler;heap.server;service heapsvc"
for i in $(seq 50); do
    curl -s -o "$dir/heap.pb.gz" "$base/debug/pprof/heap"
    traces alloc_space > "$dir/space.txt"
    grep -qxF "$want" "$dir/space.txt" && break
    sleep 0.2
done
[ -s "$dir/space.txt" ] || fail "go tool pprof read nothing: $(cat "$dir/pprof.err")"
sed 's/^/  /' "$dir/space.txt"
expect() { # FILE LINE: the exact line must be there
    grep -qxF "$2" "$dir/$1" || fail "$1: no line '$2' in: $(cat "$dir/$1")"
}
# Each stack's own bytes: a handler's 104 are not its callees' 1000 and 10000.
expect space.txt "$((n * 104)) heap.handler;service heapsvc"
expect space.txt "$((n * 1000)) heap.query;heap.handler;service heapsvc"
expect space.txt "$((n * 10000)) heap.render;heap.handler;service heapsvc"
expect space.txt "$((n * 1000)) heap.query;service heapsvc"
expect space.txt "$((n * 104)) heap.handler;heap.server;service heapsvc"
expect space.txt "$((n * 1000)) heap.query;heap.handler;heap.server;service heapsvc"
expect space.txt "$want"
# 20 nested calls of recurse, deeper than a thread's published in-flight stack: one stack
# per depth, each with its own 104 bytes a call, none counted twice.
for depth in 1 10 20; do
    frames=$(printf 'heap.recurse;%.0s' $(seq $depth))
    expect space.txt "$((n * 104)) ${frames}service heapsvc"
done
total=$(awk '$2 ~ /^heap\.recurse;/ { s += $1 } END { print s + 0 }' "$dir/space.txt")
[ "$total" = $((n * 104 * 20)) ] || fail "recurse allocated $total bytes in the profile, $((n * 104 * 20)) for real"
[ "$(wc -l < "$dir/space.txt")" = 27 ] || fail "expected 27 stacks"
# Objects: one malloc per query and handler, two per render.
traces alloc_objects > "$dir/objects.txt"
expect objects.txt "$((n * 2)) heap.render;heap.handler;service heapsvc"
expect objects.txt "$n heap.query;service heapsvc"
# In use: render keeps 5992 bytes of each call, everything else is freed.
traces inuse_space > "$dir/inuse.txt"
expect inuse.txt "$((n * 5992)) heap.render;heap.handler;service heapsvc"
expect inuse.txt "$((n * 5992)) heap.render;heap.handler;heap.server;service heapsvc"
[ "$(wc -l < "$dir/inuse.txt")" = 2 ] || fail "only render keeps memory: $(cat "$dir/inuse.txt")"
echo "test_heap: ok"
