#!/usr/bin/env bash
# kassa, highly available, on one machine's loopback: etcd; three PostgreSQL 15 instances
# managed by Patroni, with synchronous replication to one standby; HAProxy in front of the
# primary (it asks each Patroni which one is primary) and of the kassa nodes (it asks each
# /readyz); and the kassa nodes, which reach the database through HAProxy.
#
#   deploy/ha/start.sh [--dir DIR] [--kassa PATH] [--nodes N] [--port-base P] [-- KASSA_OPTIONS…]
#   deploy/ha/restart.sh [--dir DIR]   (the kassa nodes, one after another, under load)
#   deploy/ha/stop.sh  [--dir DIR]
#
# Needs Debian's postgresql-15, patroni, etcd-server and haproxy (installed if missing, when
# run as root). Everything listens on 127.0.0.1; every process's pid is kept in DIR/pids, and
# stop.sh ends those and nothing else. Ports, from P (25000 by default):
#   P+80 kassa (HAProxy)   P+432 PostgreSQL primary (HAProxy)   P+379/P+380 etcd
#   P+433.. PostgreSQL nodes   P+101.. their Patroni REST APIs
#   P+201.. kassa nodes' public listeners, P+301.. admin, P+401.. back office
# The first node starts with --demo (a merchant with keys in DIR/kassa/demo).
set -euo pipefail

DIR=/tmp/kassa-ha
KASSA=""
NODES=2
BASE=25000
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR="$2"; shift 2 ;;
        --kassa) KASSA="$2"; shift 2 ;;
        --nodes) NODES="$2"; shift 2 ;;
        --port-base) BASE="$2"; shift 2 ;;
        --) shift; break ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
here="$(cd "$(dirname "$0")" && pwd)"
if [ -z "$KASSA" ]; then
    for candidate in "$here/../../target/release/kassa" "$here/../../target/debug/kassa"; do
        [ -x "$candidate" ] && KASSA="$(realpath "$candidate")" && break
    done
fi
[ -x "$KASSA" ] || { echo "no kassa binary: build it or give --kassa PATH" >&2; exit 2; }
PG_BIN=/usr/lib/postgresql/15/bin

missing=()
command -v patroni >/dev/null || missing+=(patroni)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v haproxy >/dev/null || missing+=(haproxy)
[ -x "$PG_BIN/postgres" ] || missing+=(postgresql-15)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "missing: ${missing[*]} (apt-get install them)" >&2; exit 2; }
    echo "installing ${missing[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null
fi

if [ -e "$DIR/pids" ] && ls "$DIR"/pids/*.pid >/dev/null 2>&1; then
    echo "$DIR already holds a running set-up: deploy/ha/stop.sh --dir $DIR first" >&2
    exit 2
fi
mkdir -p "$DIR/pids" "$DIR/logs"
DIR="$(realpath "$DIR")"
if [ "$(id -u)" = 0 ]; then chown postgres "$DIR" "$DIR/logs"; fi
chmod 0755 "$DIR"
# Starts a command in the background, its output in DIR/logs/NAME.log, its pid in DIR/pids.
# `start NAME as_postgres CMD…`: PostgreSQL refuses to run as root, so as root the command
# runs as the postgres user (setpriv execs it: the pid kept is the command's own).
start() {
    local name="$1"; shift
    if [ "$1" = as_postgres ]; then
        shift
        if [ "$(id -u)" = 0 ]; then
            set -- setpriv --reuid=postgres --regid=postgres --init-groups "$@"
        fi
    fi
    nohup "$@" >"$DIR/logs/$name.log" 2>&1 &
    echo $! >"$DIR/pids/$name.pid"
}
wait_for() {
    local what="$1" seconds="$2"; shift 2
    for _ in $(seq 1 $((seconds * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "timed out waiting for $what (logs in $DIR/logs)" >&2
    exit 1
}

ETCD=$((BASE + 379))
start etcd as_postgres etcd --name kassa-etcd --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD" --advertise-client-urls "http://127.0.0.1:$ETCD" \
    --listen-peer-urls "http://127.0.0.1:$((BASE + 380))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 380))" \
    --initial-cluster "kassa-etcd=http://127.0.0.1:$((BASE + 380))"
wait_for etcd 20 curl -sf "http://127.0.0.1:$ETCD/health"

for i in 1 2 3; do
    node="$DIR/pg$i"
    mkdir -p "$node"
    [ "$(id -u)" = 0 ] && chown postgres "$node"
    sed -e "s|@NAME@|pg$i|g" -e "s|@DIR@|$node|g" -e "s|@PG_BIN@|$PG_BIN|g" \
        -e "s|@REST@|$((BASE + 100 + i))|g" -e "s|@PORT@|$((BASE + 432 + i))|g" \
        -e "s|@ETCD@|$ETCD|g" "$here/patroni.yml.in" >"$node/patroni.yml"
    start "patroni-pg$i" as_postgres patroni "$node/patroni.yml"
    # The first bootstraps the cluster; the others copy it once it leads.
    if [ "$i" = 1 ]; then
        wait_for "the first PostgreSQL to lead" 60 curl -sf "http://127.0.0.1:$((BASE + 101))/primary"
    fi
done
wait_for "a synchronous standby" 90 sh -c \
    "curl -sf http://127.0.0.1:$((BASE + 101))/cluster | grep -q '\"sync_standby\"'"

sed -e "s|@BASE_PRIMARY@|$((BASE + 432))|g" -e "s|@BASE_KASSA@|$((BASE + 80))|g" "$here/haproxy.cfg.in" \
    >"$DIR/haproxy.cfg"
for i in 1 2 3; do
    echo "    server pg$i 127.0.0.1:$((BASE + 432 + i)) check port $((BASE + 100 + i))" >>"$DIR/haproxy-pg"
done
for i in $(seq 1 "$NODES"); do
    echo "    server kassa$i 127.0.0.1:$((BASE + 200 + i)) check" >>"$DIR/haproxy-kassa"
done
sed -i -e "/@POSTGRES_SERVERS@/{r $DIR/haproxy-pg" -e 'd}' -e "/@KASSA_SERVERS@/{r $DIR/haproxy-kassa" -e 'd}' \
    "$DIR/haproxy.cfg"
rm -f "$DIR/haproxy-pg" "$DIR/haproxy-kassa"
start haproxy haproxy -f "$DIR/haproxy.cfg" -db
PRIMARY=$((BASE + 432))
# HAProxy sends to every server until its checks have marked the standbys down.
wait_for "HAProxy's primary port to reach the primary alone" 30 sh -c \
    "for n in 1 2 3 4 5 6; do [ \"\$('$PG_BIN/psql' -h 127.0.0.1 -p $PRIMARY -U postgres -qAtc 'SELECT pg_is_in_recovery()')\" = f ] || exit 1; done"
"$PG_BIN/psql" -h 127.0.0.1 -p "$PRIMARY" -U postgres -qAt -c "SELECT 1 FROM pg_database WHERE datname = 'kassa'" \
    | grep -q 1 || "$PG_BIN/psql" -h 127.0.0.1 -p "$PRIMARY" -U postgres -q -c "CREATE DATABASE kassa"

# The key-encryption key every node shares (the database's secrets are sealed with it).
[ -f "$DIR/kek" ] || (head -c 32 /dev/urandom | base64 >"$DIR/kek" && chmod 0600 "$DIR/kek")
DATABASE_URL="postgres://postgres@127.0.0.1:$PRIMARY/kassa"
for i in $(seq 1 "$NODES"); do
    demo=()
    [ "$i" = 1 ] && demo=(--demo --data-dir "$DIR/kassa")
    # Draining 4 s on SIGTERM outlasts HAProxy's two failed checks a second apart: it stops
    # sending to a stopping node before the node stops (deploy/ha/restart.sh relies on it).
    node=("$KASSA" serve "${demo[@]}" --database-url "$DATABASE_URL" --kek-file "$DIR/kek" \
        --listen "127.0.0.1:$((BASE + 200 + i))" --admin-listen "127.0.0.1:$((BASE + 300 + i))" \
        --backoffice-listen "127.0.0.1:$((BASE + 400 + i))" --public-url "http://127.0.0.1:$((BASE + 80))" \
        --allow-private-callbacks --drain-period 4s "$@")
    printf '%q ' "${node[@]}" >"$DIR/kassa$i.cmd"
    start "kassa$i" "${node[@]}"
    # The first node migrates the database; the others start on it once it is ready.
    wait_for "kassa node $i" 60 curl -sf "http://127.0.0.1:$((BASE + 200 + i))/readyz"
done
wait_for "HAProxy's kassa port" 20 curl -sf "http://127.0.0.1:$((BASE + 80))/readyz"

cat <<EOF
kassa HA set-up running in $DIR
  kassa (HAProxy):         http://127.0.0.1:$((BASE + 80))
  PostgreSQL primary:      postgres://postgres@127.0.0.1:$PRIMARY/kassa
  Patroni REST APIs:       http://127.0.0.1:$((BASE + 101)) .. $((BASE + 103))  (GET /cluster)
  demo merchant's keys:    $DIR/kassa/demo
  logs:                    $DIR/logs
stop it with: deploy/ha/stop.sh --dir $DIR
EOF
