#!/bin/bash
# The deployment files under docker/ against the tools that read them and against a real
# funcmond: the compose file resolves (docker-compose config) and wires the containers
# together, funcmond's debug endpoints get a token (Kubernetes: from a Secret), Prometheus
# accepts its config and rules and the rule unit tests pass, the Kubernetes pod shares
# /dev/shm and its processes, the Dockerfiles build with the Makefile's target and run as a
# non-root user with every library their binaries link, the images' healthcheck tells a
# serving funcmond from a dead one, and every metric the dashboard and the alerts name is
# one funcmond serves. Last, a real Prometheus scrapes a real funcmond: every dashboard
# query returns data, and each alert of alerts.yml goes pending for exactly the function
# that breaks its threshold.
# Usage: test_deploy.sh FUNCMOND E2E_CLIENT
set -u
funcmond=$(readlink -f "$1") client=$(readlink -f "$2")
needs="docker-compose promtool prometheus jq python3 curl ldd readelf dpkg" name=deploy
. "$(dirname "$0")/funcmond_lib.sh"
python3 -c 'import yaml' 2>/dev/null || { echo "SKIP: python3-yaml is not installed" >&2; exit 77; }
: > "$dir/log"
src=$(cd "$(dirname "$0")/../.." && pwd)
docker=$src/docker
here=$(cd "$(dirname "$0")" && pwd)
check() { python3 "$here/deploy_check.py" "$@"; }
dashboard=$docker/grafana/dashboards/funcmon.json
alerts=$docker/prometheus/alerts.yml

# funcmond with an allocator sample every second, and two services: one whose calls take
# 1.1 s (over SlowFunction's 1 s), one that fails one call in four (over HighErrorRate's 5%).
start_funcmond env PROFILING_MEMORY_PROFILE_INTERVAL=1
FUNCMON_SERVICE=deployslow "$client" 2 0 1100000 0 slow_query > /dev/null 2> "$dir/slow.err" &
pids+=($!)
FUNCMON_SERVICE=deploysvc FUNCMON_TRACK_ALLOC=1 E2E_ALLOC_BYTES=512 "$client" 2 0 2000 4 > /dev/null 2> "$dir/svc.err" &
pids+=($!)

# A Prometheus that scrapes it every second and evaluates the real alerts.yml, started
# now: its first scrape comes about 5 s after start, time the file checks use.
cat > "$dir/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $alerts
scrape_configs:
  - job_name: funcmond
    static_configs:
      - targets: ['127.0.0.1:$port']
YML
start_prometheus

# --- The compose file: valid for Debian's docker-compose, and wired together.
# funcmond's token comes from the environment of `docker-compose up`, and nothing starts
# without one.
(cd "$src" && env -u FUNCMOND_AUTH_TOKEN docker-compose -f "$docker/compose.yml" config) > /dev/null 2> "$dir/compose.err" &&
    fail "docker-compose config accepts the file without FUNCMOND_AUTH_TOKEN"
(cd "$src" && FUNCMOND_AUTH_TOKEN=deploy-test-token docker-compose -f "$docker/compose.yml" config) > "$dir/compose.yml" 2> "$dir/compose.err" ||
    fail "docker-compose config: $(cat "$dir/compose.err")"
check compose "$dir/compose.yml" "$docker" > "$dir/out" || fail "compose.yml: $(cat "$dir/out")"

# --- Prometheus: the config (with its rule file) and the rules, then their unit tests.
promtool check config "$docker/prometheus/prometheus.yml" > "$dir/out" 2>&1 || fail "promtool check config: $(cat "$dir/out")"
grep -q "SUCCESS: 1 rule files found" "$dir/out" || fail "prometheus.yml loads no rule file: $(cat "$dir/out")"
promtool check rules "$alerts" > "$dir/out" 2>&1 || fail "promtool check rules: $(cat "$dir/out")"
promtool test rules "$docker/prometheus/alerts_test.yml" > "$dir/out" 2>&1 || fail "promtool test rules: $(cat "$dir/out")"
for a in SlowFunction HighErrorRate; do
    grep -q "alertname: $a" "$docker/prometheus/alerts_test.yml" || fail "alerts_test.yml does not test $a"
done

# --- The dashboard: JSON, a Prometheus data source variable that every panel uses.
jq empty "$dashboard" 2> "$dir/out" || fail "funcmon.json is not JSON: $(cat "$dir/out")"
jq -e '[.templating.list[] | select(.type == "datasource" and .query == "prometheus")] | length == 1' "$dashboard" > /dev/null ||
    fail "funcmon.json has no Prometheus datasource variable"
bad=$(jq -r '[.. | objects | select(has("targets")) | select(.datasource.uid != "${datasource}") | .title] | join(", ")' "$dashboard")
[ -z "$bad" ] || fail "panels not on the datasource variable: $bad"

# --- Kubernetes: one pod with the app and funcmond sharing /dev/shm and processes.
check kubernetes "$docker/kubernetes/funcmon.yaml" > "$dir/out" 2>&1 || fail "kubernetes/funcmon.yaml: $(cat "$dir/out")"

# --- The Dockerfiles: built by the Makefile's `build` target (deps, then CMake into
# build/), the binary copied from where that build puts it, a non-root user (the same uid
# in both images: funcmond attaches only to its own uid's segments), a healthcheck.
grep -q '^build:.*\bdeps\b' "$src/Makefile" || fail "the Makefile has no build target depending on deps"
grep -Eq 'cmake -S \. -B build( |$)' "$src/Makefile" || fail "the Makefile does not build into build/"
tree=$(cd "$(dirname "$funcmond")/.." && pwd)
demo=$tree/client/examples/funcmon-demo
users=()
for image in funcmond demo; do
    df=$docker/Dockerfile.$image
    check dockerfile "$df" builder-run > "$dir/run" || fail "$df: $(cat "$dir/run")"
    grep -Eq '(^|[;&|] *|DEBIAN_FRONTEND=[a-z]+ )make build( |$)' "$dir/run" ||
        fail "$df: the builder does not run 'make build': $(cat "$dir/run")"
    user=$(check dockerfile "$df" user)
    case ${user%%:*} in
    '' | root | 0) fail "$df: the runtime stage runs as '${user:-root}'" ;;
    esac
    users+=("${user%%:*}")
    check dockerfile "$df" healthcheck | grep -q 'CMD' || fail "$df: no HEALTHCHECK"
done
[ "$(printf '%s\n' "${users[@]}" | sort -u | wc -l)" = 1 ] || fail "the images run as different users: ${users[*]}"
copies=$(check dockerfile "$docker/Dockerfile.funcmond" copies)
echo "$copies" | grep -q "/build/${funcmond#"$tree"/}\$" ||
    fail "Dockerfile.funcmond copies '$copies', not build/${funcmond#"$tree"/}"
check dockerfile "$docker/Dockerfile.funcmond" entrypoint | grep -q '"funcmond"' || fail "Dockerfile.funcmond: entrypoint is not funcmond"
listen=$(check dockerfile "$docker/Dockerfile.funcmond" env:HTTP_LISTEN)
[ "${listen%:*}" = 0.0.0.0 ] || fail "Dockerfile.funcmond: HTTP_LISTEN '$listen' is not on every interface"
check dockerfile "$docker/Dockerfile.funcmond" expose | grep -qw "${listen##*:}" || fail "Dockerfile.funcmond does not expose ${listen##*:}"
grep -Fq "build/client/examples/funcmon-demo" "$docker/Dockerfile.demo" || fail "Dockerfile.demo does not take build/client/examples/funcmon-demo"

# needs_packages BINARY DOCKERFILE: every shared library the binary links directly comes
# from a package the runtime stage installs (apt-get brings what those link in turn); glibc
# is in every Debian image, and the build tree's own libraries must be copied in. A
# sanitizer build's runtime is left out: the images are built without sanitizers.
needs_packages() {
    local bin=$1 df=$2 lib path pkg
    check dockerfile "$df" packages > "$dir/pkgs"
    check dockerfile "$df" copies > "$dir/copies"
    ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' > "$dir/all-libs" # where each resolves
    : > "$dir/libs"
    for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        case $lib in lib[atlm]san.so* | libubsan.so* | libhwasan.so*) continue ;; esac
        path=$(awk -v l="$lib" '$1 == l { print $2 }' "$dir/all-libs")
        [ -n "$path" ] || continue # the dynamic loader itself, or libc's linker script names
        echo "$lib $path" >> "$dir/libs"
    done
    [ -s "$dir/libs" ] || fail "$bin links no shared library (readelf -d)"
    while read -r lib path; do
        if [[ $(readlink -f "$path") == "$tree"/* ]]; then
            grep -q "/$lib\$" "$dir/copies" || fail "$df does not copy $lib (from the build tree)"
            continue
        fi
        pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null || dpkg -S "$path" 2>/dev/null ||
            dpkg -S "/usr$path" 2>/dev/null || dpkg -S "${path#/usr}" 2>/dev/null)
        pkg=$(echo "$pkg" | head -1 | cut -d: -f1)
        [ -n "$pkg" ] || fail "no Debian package holds $path ($lib of $bin)"
        [ "$pkg" = libc6 ] && continue
        grep -qx "$pkg" "$dir/pkgs" || fail "$df does not install $pkg ($lib, linked by $(basename "$bin"))"
    done < "$dir/libs"
}
needs_packages "$funcmond" "$docker/Dockerfile.funcmond"
if [ -x "$demo" ]; then
    needs_packages "$demo" "$docker/Dockerfile.demo"
else
    echo "note: no $demo in this build tree: the demo image's libraries are not checked"
fi

# --- The healthcheck the images run: healthy against this funcmond (a wildcard address
# reached on loopback), not on a wrong path, not where nothing listens.
HTTP_LISTEN=0.0.0.0:$port "$docker/healthcheck.sh" 2> "$dir/out" || fail "healthcheck against funcmond: $(cat "$dir/out")"
"$docker/healthcheck.sh" "127.0.0.1:$port" /nothing-here 2> /dev/null && fail "healthcheck passed on a 404"
"$docker/healthcheck.sh" "127.0.0.1:$port" /nothing-here '[1-4][0-9][0-9]' 2> /dev/null || fail "healthcheck with any status below 500"
"$docker/healthcheck.sh" "127.0.0.1:1" 2> /dev/null && fail "healthcheck passed with nothing listening"
# The demo image's healthcheck (its exec-form arguments, the port changed to a free one)
# against the demo service.
if [ -x "$demo" ]; then
    "$demo" --listen 127.0.0.1:0 > "$dir/demo.out" 2> "$dir/demo.err" &
    pids+=($!)
    dport=""
    for i in $(seq 100); do
        dport=$(sed -n 's|^funcmon-demo: listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$dir/demo.out")
        [ -n "$dport" ] && break
        sleep 0.05
    done
    [ -n "$dport" ] || fail "funcmon-demo did not start: $(cat "$dir/demo.err")"
    hc=$(check dockerfile "$docker/Dockerfile.demo" healthcheck | sed 's/.*CMD //')
    mapfile -t hc_args < <(echo "$hc" | jq -r '.[1:][]' 2> /dev/null)
    if [ "${#hc_args[@]}" -lt 1 ] || [[ ${hc_args[0]} != *:8080 ]]; then
        fail "Dockerfile.demo: healthcheck '$hc' is not on port 8080"
    fi
    hc_args[0]=${hc_args[0]%:8080}:$dport
    "$docker/healthcheck.sh" "${hc_args[@]}" 2> "$dir/out" || fail "the demo's healthcheck ${hc_args[*]}: $(cat "$dir/out")"
fi

# --- The metric names the dashboard and the alerts use, against what funcmond serves: the
# names of the sample lines of /metrics (a histogram's _bucket, _sum and _count included),
# once both services' functions and heap figures are there.
for i in $(seq 100); do
    curl -s "$base/metrics" > "$dir/metrics"
    grep -q '^function_calls_total{service="deployslow"' "$dir/metrics" &&
        grep -q '^function_calls_total{service="deploysvc"' "$dir/metrics" &&
        grep -q '^heap_inuse_bytes{service="deploysvc"' "$dir/metrics" && break
    sleep 0.1
done
grep -q '^heap_inuse_bytes{service="deploysvc"' "$dir/metrics" || fail "no heap figures for deploysvc in /metrics"
grep -v '^#' "$dir/metrics" | sed -n 's/^\([a-zA-Z_:][a-zA-Z0-9_:]*\)[{ ].*/\1/p' | sort -u > "$dir/served"
check names "$dashboard" "$alerts" > "$dir/used" || fail "reading the PromQL of the dashboard and alerts"
unserved() { awk 'NR == FNR { served[$1] = 1; next } !($2 in served) { print }' "$dir/served" "$1"; }
missing=$(unserved "$dir/used")
[ -z "$missing" ] || fail "metrics funcmond does not serve: $missing"
# The reading is not vacuous: it finds the guide's metrics where they are used, and it
# catches a misspelt name.
for m in function_duration_seconds_sum function_duration_seconds_count function_duration_seconds_bucket \
    function_calls_total function_errors_total function_memory_bytes_sum function_memory_bytes_count \
    heap_inuse_bytes heap_alloc_bytes threads_total; do
    grep -qx "$dashboard $m" "$dir/used" || fail "the dashboard does not use $m"
done
for m in function_duration_seconds_sum function_duration_seconds_count function_errors_total function_calls_total; do
    grep -qx "$alerts $m" "$dir/used" || fail "the alerts do not use $m"
done
check expr 'sum by (service, le) (rate(function_duration_second_bucket{service=~"$service"}[$__rate_interval]))' |
    sed 's/^/control /' > "$dir/control"
[ "$(unserved "$dir/control")" = "control function_duration_second_bucket" ] ||
    fail "a misspelt metric name is not caught: $(cat "$dir/control")"

# --- Every dashboard query returns data from the real Prometheus (Grafana's variables
# replaced: all services and packages, a 10 s rate window).
pquery() { curl -s -G "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$1"; }
check queries "$dashboard" "$alerts" | awk -F '\t' '$1 != "alert"' > "$dir/queries"
[ "$(wc -l < "$dir/queries")" -ge 20 ] || fail "only $(wc -l < "$dir/queries") dashboard queries found"
deadline=$((SECONDS + 35))
while IFS=$'\t' read -r kind title expr; do
    q=$(echo "$expr" | sed 's/\$__rate_interval/10s/g; s/\$__interval/10s/g; s/\$[A-Za-z_][A-Za-z0-9_]*/.*/g')
    while :; do
        pquery "$q" > "$dir/answer"
        jq -e '.status == "success"' "$dir/answer" > /dev/null || fail "$kind '$title': Prometheus refuses $q: $(cat "$dir/answer")"
        jq -e '.data.result | length > 0' "$dir/answer" > /dev/null && break
        [ $SECONDS -lt $deadline ] || fail "$kind '$title' has no data: $q"
        sleep 0.5
    done
done < "$dir/queries"

# --- The alerts of alerts.yml, evaluated by Prometheus on funcmond's figures: pending (their
# `for:` has not run out) for exactly the function over each threshold.
# alert_fns NAME: "service/function" of each active instance of the alert, sorted.
alert_fns() {
    curl -s "http://127.0.0.1:$pport/api/v1/alerts" |
        jq -r --arg a "$1" '.data.alerts[] | select(.labels.alertname == $a) | "\(.labels.service)/\(.labels.function)"' | sort
}
for i in $(seq 60); do
    slow=$(alert_fns SlowFunction) errs=$(alert_fns HighErrorRate)
    [ -n "$slow" ] && [ -n "$errs" ] && break
    sleep 0.5
done
[ "$slow" = deployslow/slow_query ] || fail "SlowFunction is active for '$slow', not deployslow/slow_query"
[ "$errs" = deploysvc/work ] || fail "HighErrorRate is active for '$errs', not deploysvc/work"
# Pending, or firing on a slow run that took past their `for:`: either way raised, for the
# functions above only.
state=$(curl -s "http://127.0.0.1:$pport/api/v1/alerts" | jq -r '[.data.alerts[].state] | unique | join(",")')
case "$state" in pending | firing | firing,pending | pending,firing) ;; *) fail "alert states '$state'" ;; esac

echo "test_deploy: compose, promtool config/rules/tests, dashboard ($(wc -l < "$dir/queries") queries), kubernetes," \
    "Dockerfiles, healthcheck, $(wc -l < "$dir/used") metric uses served, alerts $state for $slow and $errs: ok"
