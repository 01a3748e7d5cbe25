#!/usr/bin/env bash
# Stops what deploy/ha/start.sh started: the processes whose pids it kept in DIR/pids, kassa
# first, then HAProxy, Patroni (which stops its PostgreSQL) and etcd. Nothing else is touched.
#   deploy/ha/stop.sh [--dir DIR] [--keep-data]
set -euo pipefail
DIR=/tmp/kassa-ha
KEEP=false
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR="$2"; shift 2 ;;
        --keep-data) KEEP=true; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[ -d "$DIR/pids" ] || { echo "nothing running in $DIR"; exit 0; }

# Ends one kept pid: TERM, then KILL after 15 s.
end() {
    local file="$1" pid
    pid="$(cat "$file")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}
for group in 'kassa*' haproxy 'patroni-*' etcd; do
    for file in "$DIR"/pids/$group.pid; do
        [ -e "$file" ] && end "$file"
    done
done
# Patroni stops its PostgreSQL; one left behind by a killed Patroni is stopped by its data dir.
for data in "$DIR"/pg*/data; do
    [ -f "$data/postmaster.pid" ] || continue
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$data" -m fast stop >/dev/null 2>&1 || true
    else
        /usr/lib/postgresql/15/bin/pg_ctl -D "$data" -m fast stop >/dev/null 2>&1 || true
    fi
done
if [ "$KEEP" = false ]; then rm -rf "$DIR"; fi
echo "stopped"
