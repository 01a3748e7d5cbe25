#!/usr/bin/env bash
# A flamegraph of kassa's server under `kassa bench` (release build, SQLite): the server process
# the bench starts is sampled with perf's software clock (cpu-clock works without hardware
# counters, in virtual machines too) and DWARF call graphs, for the whole run; samples land only
# while it runs, so the bench's signing before its measured window leaves few.
#   tools/perf/flamegraph.sh create|query [OUT.svg]     (default docs/perf/SCENARIO.svg)
# Needs perf (Debian's linux-perf) and inferno (cargo install inferno).
set -euo pipefail
cd "$(dirname "$0")/../.."
scenario="${1:?create or query}"
out="${2:-docs/perf/$scenario.svg}"
for tool in perf inferno-collapse-perf inferno-flamegraph; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (linux-perf; cargo install inferno)" >&2; exit 2; }
done
cargo build --release -q -p kassa
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
target/release/kassa bench --scenario "$scenario" --duration 10 --json >"$tmp/bench.json" &
bench=$!
server=""
for _ in $(seq 1 200); do
    server="$(pgrep -P "$bench" -f "kassa serve" | head -1 || true)"
    [ -n "$server" ] && break
    sleep 0.05
done
[ -n "$server" ] || { echo "the bench started no server" >&2; exit 1; }
# perf stops by itself when the server does (the bench ends it).
perf record -q -e cpu-clock -F 199 --call-graph dwarf,16384 -p "$server" -o "$tmp/perf.data" 2>"$tmp/perf.log" &
recorder=$!
wait "$bench"
wait "$recorder" || true
mkdir -p target/perf
folded="target/perf/$scenario.folded"   # kept for reading off shares (see docs/perf/README.md)
perf script -i "$tmp/perf.data" 2>/dev/null | inferno-collapse-perf >"$folded"
title="kassa $scenario: the server under kassa bench --scenario $scenario --duration 10 (SQLite, release)"
# Frames narrower than a pixel are left out: the picture keeps its shape at a tenth of the size.
inferno-flamegraph --title "$title" --width 1600 --minwidth 1 <"$folded" >"$out"
echo "$out: $(wc -l <"$folded") stacks; the bench said: $(cat "$tmp/bench.json")"
