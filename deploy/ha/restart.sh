#!/usr/bin/env bash
# A rolling restart of the kassa nodes that deploy/ha/start.sh started (after an upgrade of the
# binary, say): one node after another drains (SIGTERM: /readyz answers 503, HAProxy stops
# sending to it, requests in flight finish), stops, starts again with the same command, and is
# ready before the next one goes. Merchants going through HAProxy see no failed request.
#   deploy/ha/restart.sh [--dir DIR]
set -euo pipefail
DIR=/tmp/kassa-ha
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
for cmd in "$DIR"/kassa*.cmd; do
    [ -e "$cmd" ] || { echo "no kassa node in $DIR" >&2; exit 2; }
    name="$(basename "$cmd" .cmd)"
    pid="$(cat "$DIR/pids/$name.pid")"
    listen="$(grep -o -- "--listen 127.0.0.1:[0-9]*" "$cmd" | cut -d' ' -f2)"
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then echo "$name did not stop within 60 s" >&2; exit 1; fi
    eval "nohup $(cat "$cmd") >>\"$DIR/logs/$name.log\" 2>&1 &"
    echo $! >"$DIR/pids/$name.pid"
    for _ in $(seq 1 300); do curl -sf "http://$listen/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
    curl -sf "http://$listen/readyz" >/dev/null || { echo "$name is not ready again" >&2; exit 1; }
    # HAProxy takes it back after two good checks a second apart.
    sleep 2.5
    echo "$name restarted"
done
