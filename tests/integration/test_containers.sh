#!/bin/bash
# The images of docker/ built and run with podman, as the README's deployment runs them: the
# demo in its own IPC namespace, funcmond joining its IPC and PID namespaces, both as uid
# 10001, funcmond's totals on a named volume. No registry is needed: the Debian base images
# are made with mmdebstrap from this machine's apt sources. The images are tagged by the
# hash of what goes into them, so a second run of the same tree reuses them (and a changed
# tree reuses the builder's package layer).
#
# Modes:
#   shipped  funcmond under docker/seccomp-funcmond.json (the default profile plus io_uring):
#            counts grow, /metrics is valid, the images' health checks pass, totals survive
#            a restart of funcmond's container, once funcmond stops only the live demo's
#            segment is left in /dev/shm; then the pod of docker/kubernetes/ under `podman
#            kube play`, where funcmond outlives the app, removes its segment, and nothing
#            is left in the shared /dev/shm once both stop
#   default  funcmond under the runtime's default profile, which refuses io_uring: it must
#            start and serve counts all the same (prints the event loop it reports)
# Prints image sizes and funcmond's start time (podman run to the first /metrics answer).
# Usage: test_containers.sh SOURCE_DIR [shipped|default]
set -u
src=$(cd "$1" && pwd) mode=${2:-shipped}
skip() { echo "SKIP: $*" >&2; exit 77; }

# make test installs what is missing first (podman, runc, mmdebstrap); where it cannot (not
# root), containers cannot run here.
unset MAKEFLAGS MAKELEVEL MFLAGS
make -s -C "$src" deps > /dev/null 2>&1
for tool in podman runc mmdebstrap curl jq promtool python3; do
    command -v "$tool" > /dev/null || skip "$tool is not installed (make deps as root installs it)"
done
# runc, not crun (which refuses hybrid cgroup hierarchies); cgroupfs, as there is no systemd.
# Without systemd podman cannot arm health-check timers and says so on every start and stop:
# that noise is dropped (the test runs the checks itself).
pm() { podman --runtime runc --cgroup-manager=cgroupfs "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }
pm info > /dev/null 2>&1 || skip "podman cannot run here: $(pm info 2>&1 | tail -1)"
# Rootful podman's default rlimits exceed what some sandboxes allow.
limits=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
health=(--health-interval disable)

dir=$(mktemp -d)
id=$$
demo=fmtest-demo-$id sidecar=fmtest-funcmond-$id volume=fmtest-state-$id pod=funcmon-demo-$id
cleanup() {
    pm pod rm -f "$pod" > /dev/null 2>&1
    pm volume rm -f "shm-$id" "funcmond-state-$id" > /dev/null 2>&1
    pm rm -f -t 2 "$sidecar" > /dev/null 2>&1
    pm rm -f -t 2 "$demo" > /dev/null 2>&1
    pm volume rm -f "$volume" > /dev/null 2>&1
    rm -rf "$dir"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    for c in "$sidecar" "$demo"; do
        pm container exists "$c" 2> /dev/null || continue
        echo "--- $c log:" >&2
        pm logs --tail 15 "$c" >&2 2>&1
    done
    exit 1
}
ms() { date +%s%3N; }

# --- Base images: debian:12, a minbase bookworm, and debian:12-slim, the same without
# documentation, manual pages and translations, and without the perl that mmdebstrap's
# /usr merge (usrmerge) brings along: what Docker Hub's slim image leaves out.
base=docker.io/library/debian
make_base() { # make_base TAG [mmdebstrap option...]
    local started
    pm image exists "$base:$1" && return 0
    started=$(ms)
    mmdebstrap --variant=minbase "${@:2}" bookworm "$dir/rootfs.tar" > "$dir/mmdebstrap.log" 2>&1 ||
        fail "mmdebstrap: $(tail -3 "$dir/mmdebstrap.log")"
    pm import -q "$dir/rootfs.tar" "$base:$1" > /dev/null || fail "podman import of $base:$1"
    rm -f "$dir/rootfs.tar"
    echo "base image $base:$1 made in $(($(ms) - started)) ms"
}
make_base 12
# shellcheck disable=SC2016 # the hook's $1 is the chroot mmdebstrap passes it
make_base 12-slim --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --include=usr-is-merged \
    --customize-hook='chroot "$1" dpkg --purge usrmerge libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl perl libperl5.36 perl-modules-5.36'

# --- The images, tagged by the content of what the Dockerfiles copy in.
tag=$(cd "$src" && find Makefile CMakeLists.txt cmake proto client sidecar docker/Dockerfile.funcmond \
    docker/Dockerfile.demo docker/healthcheck.sh -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
build_image() { # build_image NAME DOCKERFILE
    local image=localhost/$1:$tag started
    if pm image exists "$image"; then
        echo "image $image: cached"
        return 0
    fi
    started=$(ms)
    pm build --pull=never --network host --format docker "${limits[@]}" -f "$src/docker/$2" -t "$image" \
        "$src" > "$dir/build-$1.log" 2>&1 || fail "podman build $2: $(tail -15 "$dir/build-$1.log")"
    echo "image $image: built in $(($(ms) - started)) ms"
    # Earlier trees' images of this name, unless a container still uses them.
    pm images --filter "reference=localhost/$1" --format '{{.Repository}}:{{.Tag}}' | grep -v ":$tag\$" |
        while read -r old; do pm rmi "$old" > /dev/null 2>&1; done
    return 0
}
build_image funcmond Dockerfile.funcmond
build_image funcmon-demo Dockerfile.demo
for image in funcmond funcmon-demo; do
    echo "image size $image: $(pm image inspect --format '{{.Size}}' "localhost/$image:$tag") bytes"
done
# HEALTHCHECK survives only in the docker image format.
pm image inspect --format '{{json .Config.Healthcheck}}' "localhost/funcmond:$tag" | grep -q funcmon-healthcheck ||
    fail "the funcmond image has no HEALTHCHECK"
# The runtime images hold no compiler.
for image in funcmond funcmon-demo; do
    pm run --rm --network none "${limits[@]}" --entrypoint /bin/sh "localhost/$image:$tag" -c \
        'command -v cc gcc cmake make' > "$dir/tools" 2>&1 && fail "$image image holds build tools: $(cat "$dir/tools")"
done

# free_port: a loopback TCP port nobody listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
dport=$(free_port) fport=$(free_port)
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
dbase=http://127.0.0.1:$dport fbase=http://127.0.0.1:$fport

# --- The deployment: demo, then funcmond in its IPC and PID namespaces. Host networking,
# loopback ports of this run.
pm run -d --name "$demo" --network host --ipc shareable --shm-size 256m "${limits[@]}" "${health[@]}" \
    --health-cmd "[\"funcmon-healthcheck\", \"127.0.0.1:$dport\", \"/healthz\"]" \
    "localhost/funcmon-demo:$tag" --listen "127.0.0.1:$dport" --load 50 > /dev/null || fail "podman run demo"
for _ in $(seq 100); do
    curl -sf --max-time 1 -o /dev/null "$dbase/healthz" && break
    sleep 0.1
done
curl -sf --max-time 2 -o /dev/null "$dbase/healthz" || fail "the demo does not answer on $dbase"
pm volume create "$volume" > /dev/null || fail "podman volume create"

seccomp=()
[ "$mode" = shipped ] && seccomp=(--security-opt "seccomp=$src/docker/seccomp-funcmond.json")
# wait_metrics: until funcmond's /metrics answers (10 s at most).
wait_metrics() {
    for _ in $(seq 200); do
        curl -sf --max-time 1 -o "$dir/metrics" "$fbase/metrics" && return 0
        pm container exists "$sidecar" && [ "$(pm inspect --format '{{.State.Running}}' "$sidecar")" = true ] ||
            return 1
        sleep 0.05
    done
    return 1
}
started=$(ms)
pm run -d --name "$sidecar" --network host --ipc "container:$demo" --pid "container:$demo" "${limits[@]}" "${health[@]}" \
    "${seccomp[@]}" -v "$volume:/var/lib/funcmond" -e "HTTP_LISTEN=127.0.0.1:$fport" -e "HTTP_AUTH_TOKEN=$token" \
    -e SIDECAR_SHM_PREFIX=funcmon -e SIDECAR_STATE_FILE=/var/lib/funcmond/state.msgpack -e SIDECAR_STATE_INTERVAL_S=1 \
    "localhost/funcmond:$tag" > /dev/null || fail "podman run funcmond"
wait_metrics || fail "funcmond ($mode seccomp profile) does not serve /metrics on $fbase"
echo "funcmond start time ($mode seccomp profile): $(($(ms) - started)) ms from podman run to the first /metrics answer"

# routes_total FILE: the sum of call counts of the demo's routes in a /debug/profiles answer.
routes_total() { jq '[.profiles | to_entries[] | select(.key | startswith("GET_/v1/")) | .value.call_count] | add // 0' "$1"; }
# total: that sum as funcmond shows it now (the answer stays in $dir/profiles.json).
total() {
    curl -sf --max-time 3 -H "Authorization: Bearer $token" "$fbase/debug/profiles" > "$dir/profiles.json" ||
        fail "GET /debug/profiles"
    routes_total "$dir/profiles.json"
}
# counts_grow WHERE: waits for the demo's first counted calls, then wants more 2 s later;
# sets first and second.
counts_grow() {
    local tries=100
    until first=$(total) && [ "$first" -gt 0 ]; do
        [ $((tries -= 1)) -gt 0 ] || break
        sleep 0.1
    done
    [ "${first:-0}" -gt 0 ] || fail "$1: no calls of the demo's routes in /debug/profiles: $(head -c 300 "$dir/profiles.json")"
    sleep 2
    second=$(total)
    [ "$second" -gt "$first" ] || fail "$1: counts do not grow: $first, then $second"
}
counts_grow containers
echo "demo routes counted: $first, 2 s later $second"
curl -sf -H "Authorization: Bearer $token" "$fbase/debug/stats" > "$dir/stats.json" || fail "GET /debug/stats"
# The event loop funcmond says it uses: any field of /debug/stats naming io_uring or epoll.
loop=$(jq -r '[paths(strings) as $p | {k: ($p | map(tostring) | join(".")), v: getpath($p)} |
    select(.v | test("^(epoll|io_uring)"))] | map("\(.k)=\(.v)") | join(", ")' "$dir/stats.json")
echo "funcmond event loop ($mode seccomp profile): ${loop:-not reported by /debug/stats}"

if [ "$mode" = default ]; then
    echo "funcmond under the runtime's default seccomp profile: starts and counts: ok"
    exit 0
fi

# /metrics is valid exposition text; funcmond's image health check passes; both run as 10001.
curl -sf "$fbase/metrics" > "$dir/metrics" || fail "GET /metrics"
promtool check metrics < "$dir/metrics" > "$dir/promtool" 2>&1 || fail "promtool check metrics: $(head -5 "$dir/promtool")"
pm healthcheck run "$sidecar" > "$dir/health" 2>&1 || fail "funcmond's health check: $(cat "$dir/health")"
pm healthcheck run "$demo" > "$dir/health" 2>&1 || fail "the demo's health check: $(cat "$dir/health")"
for c in "$demo" "$sidecar"; do
    uid=$(pm exec "$c" id -u) || fail "podman exec $c id"
    [ "$uid" = 10001 ] || fail "$c runs as uid $uid, not 10001"
done

# A restart of funcmond's container keeps the totals (state file on the volume).
pm stop -t 10 "$sidecar" > /dev/null || fail "podman stop funcmond"
before=$(routes_total "$dir/profiles.json")
pm start "$sidecar" > /dev/null || fail "podman start funcmond"
wait_metrics || fail "funcmond does not serve /metrics after a restart"
after=$(total)
[ "$after" -ge "$before" ] || fail "totals lost over a restart: $before before, $after after"
echo "restart of funcmond: $before calls before, $after after"

# funcmond stops first (the demo is the init of the PID namespace: stopping it first would
# kill funcmond with it): it removes its lock and leaves the live demo's segment, which the
# demo removes at its exit (no sidecar left to do it). podman unmounts the demo's /dev/shm
# when it stops, so what is left after both stop is checked in the pod below.
shm() { pm exec "$demo" sh -c 'cd /dev/shm && ls -A'; }
shm | grep -q '^funcmon\.demo\.' || fail "no demo segment in the shared /dev/shm: $(shm)"
shm | grep -q '^funcmon-sidecar$' || fail "no funcmond lock in the shared /dev/shm: $(shm)"
pm stop -t 10 "$sidecar" > /dev/null || fail "podman stop funcmond"
left=$(shm | grep -v '^funcmon\.demo\.')
[ -z "$left" ] || fail "left in /dev/shm after funcmond stopped: $left"
pm stop -t 10 "$demo" > /dev/null || fail "podman stop demo"
pm rm -f "$sidecar" > /dev/null && pm rm -f "$demo" > /dev/null
pm volume rm -f "$volume" > /dev/null
echo "containers (ipc and pid of the demo's container): counts, metrics, health, restart, shm: ok"

# --- The Kubernetes pod (docker/kubernetes/funcmon.yaml) under `podman kube play`: the app
# and funcmond share /dev/shm (an emptyDir) and the pod's PID namespace, whose init is the
# pod's infra container, so funcmond outlives the app. What podman 4.3 does not honour is
# done its way: host networking instead of ports (so no port names, no probes), the Secret's
# token as a plain value, the seccomp profile through podman's annotation, fsGroup by making
# the emptyDir volumes (kube play reuses volumes of their names) owned by uid 10001. Its own
# names: volumes and pod carry this run's pid.
python3 -c 'import yaml' 2> /dev/null || fail "python3-yaml is not installed (make deps installs it)"
dport=$(free_port) fport=$(free_port)
fbase=http://127.0.0.1:$fport
mkdir -p "$dir/seccomp"
cp "$src/docker/seccomp-funcmond.json" "$dir/seccomp/"
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n' > "$dir/containers.conf"
python3 - "$src/docker/kubernetes/funcmon.yaml" "$dir/pod.yaml" "$pod" "$id" "$tag" "$dport" "$fport" "$token" <<'PY' ||
import sys, yaml
source, out, name, run_id, tag, dport, fport, token = sys.argv[1:]
deployment = next(yaml.safe_load_all(open(source)))
deployment["metadata"]["name"] = name
template = deployment["spec"]["template"]
profile = template["spec"]["containers"][1]["securityContext"]["seccompProfile"]["localhostProfile"]
template["metadata"]["annotations"]["container.seccomp.security.alpha.kubernetes.io/funcmond"] = "localhost/" + profile
for volume in template["spec"]["volumes"]:
    volume["name"] += "-" + run_id
for c in template["spec"]["containers"]:
    for key in ("ports", "readinessProbe", "livenessProbe"):
        c.pop(key, None)
    for mount in c["volumeMounts"]:
        mount["name"] += "-" + run_id
    if c["name"] == "app":
        c["image"] = "localhost/funcmon-demo:" + tag
        c["args"] = ["--listen", "127.0.0.1:" + dport, "--load", "50"]
    else:
        c["image"] = "localhost/funcmond:" + tag
        env = {e["name"]: e for e in c["env"]}
        env["HTTP_LISTEN"] = {"name": "HTTP_LISTEN", "value": "127.0.0.1:" + fport}
        env["HTTP_AUTH_TOKEN"] = {"name": "HTTP_AUTH_TOKEN", "value": token}
        # An ended process's segment goes after 1 s instead of a minute.
        env["SIDECAR_EXITED_RETENTION_S"] = {"name": "SIDECAR_EXITED_RETENTION_S", "value": "1"}
        c["env"] = list(env.values())
yaml.safe_dump(deployment, open(out, "w"))
PY
    fail "cannot adapt docker/kubernetes/funcmon.yaml for podman kube play"
# kube play builds the pod's infra (pause) image locally, from catatonit.
command -v catatonit > /dev/null || fail "catatonit is not installed (make deps installs it)"
kube=(env CONTAINERS_CONF="$dir/containers.conf" podman --runtime runc --cgroup-manager=cgroupfs)
for v in shm funcmond-state; do
    pm volume create --opt o=uid=10001,gid=10001 "$v-$id" > /dev/null || fail "podman volume create $v-$id"
done
"${kube[@]}" kube play --network host --seccomp-profile-root "$dir/seccomp" "$dir/pod.yaml" > "$dir/kube.log" 2>&1 ||
    fail "podman kube play: $(tail -5 "$dir/kube.log")"
pod=$(pm pod ls --filter "name=^$pod" --format '{{.Name}}' | head -1)
[ -n "$pod" ] || fail "kube play made no pod: $(tail -5 "$dir/kube.log")"
sidecar=$pod-funcmond demo=$pod-app
wait_metrics || fail "funcmond in the pod does not serve /metrics on $fbase"
counts_grow pod
shm() { pm exec "$sidecar" sh -c 'cd /dev/shm && ls -A'; }
shm | grep -q '^funcmon\.demo\.' || fail "pod: no demo segment in the shared /dev/shm: $(shm)"
# The app stops; funcmond, still running, drains and removes its segment; then funcmond stops
# and removes its lock: nothing is left in the emptyDir.
pm stop -t 10 "$demo" > /dev/null || fail "podman stop of the pod's app"
for _ in $(seq 30); do
    shm | grep -q '^funcmon\.demo\.' || break
    sleep 0.2
done
shm | grep -q '^funcmon\.demo\.' && fail "pod: funcmond left the stopped app's segment: $(shm)"
pm stop -t 10 "$sidecar" > /dev/null || fail "podman stop of the pod's funcmond"
left=$(ls -A "$(pm volume inspect --format '{{.Mountpoint}}' "shm-$id")")
[ -z "$left" ] || fail "pod: left in the /dev/shm emptyDir after both stopped: $left"
echo "kube play pod: demo routes counted $first, then $second; app stopped: segment removed; both stopped: /dev/shm empty"
pm pod rm -f "$pod" > /dev/null
echo "containers: images, namespaces, counts, metrics, health, restart, shm, kube play pod: ok"
