#!/bin/bash
# healthcheck.sh - the images' HEALTHCHECK: one HTTP GET over bash's /dev/tcp, so the
# runtime images need neither curl nor wget. Healthy when the answer's status matches.
#
# Usage: healthcheck.sh [LISTEN [PATH [STATUS]]]
#   LISTEN  host:port or [v6]:port the server listens on (default $HTTP_LISTEN, else
#           127.0.0.1:10000); a wildcard host (0.0.0.0, [::], empty) is reached on loopback
#   PATH    the path to ask for (default $METRICS_PATH, else /metrics)
#   STATUS  an extended regular expression the status code must match (default 200)
# Exit 0 when healthy, 1 otherwise, with the reason on stderr.
set -u
listen=${1:-${HTTP_LISTEN:-127.0.0.1:10000}}
path=${2:-${METRICS_PATH:-/metrics}}
want=${3:-200}

port=${listen##*:}
host=${listen%:*}
host=${host#[}
host=${host%]}
case $host in
'' | 0.0.0.0 | '*') host=127.0.0.1 ;;
::) host=::1 ;;
esac
if ! [[ $port =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    echo "healthcheck: no port in '$listen'" >&2
    exit 1
fi
if ! { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then
    echo "healthcheck: cannot connect to $host:$port" >&2
    exit 1
fi
printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
status_line=""
IFS= read -r -t 3 status_line <&3
exec 3<&-
status_line=${status_line%$'\r'}
code=""
[[ $status_line =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]] && code=${BASH_REMATCH[1]}
if [ -z "$code" ]; then
    echo "healthcheck: no HTTP answer from $host:$port$path" >&2
    exit 1
fi
if ! [[ $code =~ ^($want)$ ]]; then
    echo "healthcheck: $host:$port$path answered $code" >&2
    exit 1
fi
exit 0
