#!/usr/bin/env bash
# What a commit of SQLite's writer costs the kernel under `kassa bench --scenario create` at a
# fixed rate: the server's `fdatasync` calls per create and how long each takes, and the block
# requests each one issues (data, cache flushes, and metadata such as the log's inode block),
# counted with perf's tracepoints on the server the bench starts.
#   tools/perf/commits.sh [KASSA_BINARY] [RATE]     (default target/release/kassa, 3000/s)
# Needs perf with tracepoint access (root, or kernel.perf_event_paranoid <= -1) and python3.
# The database is a temporary file under TMPDIR: point TMPDIR at the filesystem to measure.
set -euo pipefail
kassa="$(realpath "${1:-target/release/kassa}")"
rate="${2:-3000}"
seconds=3
for tool in perf python3; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 2; }
done
work="$(mktemp -d)"
trap "rm -rf \"$work\"" EXIT
"$kassa" bench --scenario create --duration $((seconds + 4)) --rate "$rate" --json >"$work/bench.json" &
bench=$!
server=""
for _ in $(seq 1 200); do
    server="$(pgrep -P "$bench" -f " serve " | head -1 || true)"
    [ -n "$server" ] && break
    sleep 0.05
done
[ -n "$server" ] || { echo "the bench started no server" >&2; exit 1; }
# The measured window starts once the bench has signed its requests: wait until the server
# works (a tenth of a CPU second in each of two half seconds running, which its start-up does
# not), then half a second more, past the log's first growth, into the steady state.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
busy=0
for _ in $(seq 1 600); do
    before="$(cpu_ticks)"
    sleep 0.5
    if [ $(($(cpu_ticks) - before)) -ge 10 ]; then busy=$((busy + 1)); else busy=0; fi
    [ "$busy" -ge 2 ] && break
done
sleep 0.5
# The server's threads only: other processes' syncs (a database's, a log's) would count too.
perf record -e syscalls:sys_enter_fdatasync -e syscalls:sys_exit_fdatasync \
    -e block:block_rq_issue -p "$server" -o "$work/perf.data" -- sleep "$seconds" 2>"$work/perf.log" ||
    { cat "$work/perf.log" >&2; exit 1; }
wait "$bench"
cat >"$work/read.py" <<'PY'
import json, statistics, sys
seconds, bench = float(sys.argv[1]), json.load(open(sys.argv[2]))
started, latencies, kinds = {}, [], {}
for line in sys.stdin:
    fields = line.split()
    # COMM TID [CPU] TIME: EVENT: …; the writer issues its own block requests (plugged).
    if len(fields) < 6 or not fields[4].endswith(":"):
        continue
    tid, at, event = fields[1], float(fields[3].rstrip(":")), fields[4]
    if event == "syscalls:sys_enter_fdatasync:":
        started[tid] = at
    elif event == "syscalls:sys_exit_fdatasync:" and tid in started:
        latencies.append((at - started.pop(tid)) * 1e6)
    elif event == "block:block_rq_issue:" and fields[0].startswith("kassa-sqlite-wr"):
        kinds[fields[6]] = kinds.get(fields[6], 0) + 1
if not latencies:
    sys.exit("no fdatasync seen")
creates = bench["requests_per_second"] * seconds
latencies.sort()
print(f"creates/s {bench['requests_per_second']:.0f}; per create: server CPU "
      f"{bench['server_cpu_us_per_request']:.0f} µs, the writer's {bench['writer_cpu_us_per_request']} µs")
print(f"fdatasync: {len(latencies) / creates:.3f} per create, {statistics.median(latencies):.0f} µs "
      f"median, {latencies[int(len(latencies) * 0.9)]:.0f} µs at the 90th percentile")
print("the writer's block requests per fdatasync (W write, S sync, M metadata, F flush): "
      + ", ".join(f"{kind} {count / len(latencies):.2f}" for kind, count in sorted(kinds.items())))
PY
perf script -i "$work/perf.data" 2>/dev/null | python3 "$work/read.py" "$seconds" "$work/bench.json"
