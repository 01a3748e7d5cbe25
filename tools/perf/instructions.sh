#!/usr/bin/env bash
# Instructions per request of kassa and of the null gateway, counted by valgrind's callgrind:
# unlike seconds, a count does not move with what else the machine runs, so two builds compare
# on a shared machine. Both serve one connection that sends requests one after another: WARM
# requests first, then the count is zeroed, then COUNT requests are counted. The kernel's work
# (system calls, the network) is not counted; `kassa bench --scenario limit` measures that.
#   tools/perf/instructions.sh [KASSA_BINARY]     (default target/release/kassa)
# Needs valgrind, python3, curl and openssl; prints one line per server and request kind.
set -euo pipefail
cd "$(dirname "$0")/../.."
kassa="$(realpath "${1:-target/release/kassa}")"
count="${COUNT:-300}"
warm="${WARM:-100}"
for tool in valgrind callgrind_control callgrind_annotate python3 curl openssl; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 2; }
done
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# The demo merchant on a fresh SQLite database, one order to query, WARM + COUNT creates signed.
# The database is named too: without it kassa would use (and keep) one in the current directory,
# and a second run would count replays of the first run's orders instead of creates.
database=(--database-url "sqlite://$work/data/kassa.db")
"$kassa" serve --demo --data-dir "$work/data" "${database[@]}" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$work/demo.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "^kassa listening on" "$work/demo.log" && break; sleep 0.1; done
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
key="$work/data/demo/merchant.key.pem"
sign() { "$kassa" sign --key "$key"; }
create_body() {
    echo '{"appId":1001,"orderId":"'"$1"'","name":"Jane Doe","phone":"+31612345678","email":"jane@example.com","amount":"25.00","payType":"CASHIER","inBankCode":"CASHIER","country":"000","callBackUrl":"https://shop.example/paid","callBackFailUrl":"https://shop.example/failed","partnerUserId":"demo-user"}'
}
create_body queried | sign >"$work/queried.json"
echo '{"appId":1001,"orderId":"queried"}' | sign >"$work/query.json"
for i in $(seq 1 $((warm + count))); do create_body "counted-$i" | sign; done >"$work/creates.jsonl"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/platform.pem" 2>/dev/null

# Sends requests over one keep-alive connection: `same BODY N` or `lines FILE FROM N`.
cat >"$work/send.py" <<'EOF'
import http.client, sys
port, path, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if mode == "same":
    bodies = [open(sys.argv[4], "rb").read()] * int(sys.argv[5])
else:
    start, n = int(sys.argv[5]), int(sys.argv[6])
    bodies = [line.encode() for line in open(sys.argv[4]).read().splitlines()[start:start + n]]
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
for body in bodies:
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200 or b'"status":"1"' not in answer:
        sys.exit(f"{path}: {response.status} {answer[:200]!r}")
EOF

# count NAME PORT PATH KIND -- SERVER…: the server under callgrind, its instructions per request.
count_one() {
    local name="$1" port="$2" path="$3" kind="$4"
    shift 5
    valgrind --tool=callgrind --callgrind-out-file="$work/$name.%p" "$@" >"$work/$name.log" 2>&1 &
    local pid=$!
    pids+=($pid)
    for _ in $(seq 1 600); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.2
    done
    local send=(python3 "$work/send.py" "$port" "$path")
    if [ "$kind" = query ]; then
        "${send[@]}" same "$work/query.json" "$warm"
        callgrind_control -z "$pid" >/dev/null 2>&1
        "${send[@]}" same "$work/query.json" "$count"
    else
        "${send[@]}" lines "$work/creates.jsonl" 0 "$warm"
        callgrind_control -z "$pid" >/dev/null 2>&1
        "${send[@]}" lines "$work/creates.jsonl" "$warm" "$count"
    fi
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local total
    total="$(callgrind_annotate "$work/$name.$pid.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')"
    # Kept for callgrind_annotate or kcachegrind: which functions the instructions went to.
    mkdir -p target/perf
    cp "$work/$name.$pid.1" "target/perf/instructions-$name-$kind.callgrind"
    printf '%-12s %-6s %12d instructions/request\n' "$name" "$kind" $((total / count))
}

serve=("$kassa" serve --data-dir "$work/data" "${database[@]}" --listen 127.0.0.1:18731 --admin-listen 127.0.0.1:0)
null=("$kassa" null-gateway --listen 127.0.0.1:18732 --merchant-key "$work/data/demo/merchant.pub.pem" --platform-key "$work/platform.pem")
# The order the queries ask for, created once outside the count.
"${serve[@]}" >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:18731/healthz && break; sleep 0.1; done
python3 "$work/send.py" 18731 /eur/collect/apply same "$work/queried.json" 1
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

count_one kassa 18731 /eur/collect/query query -- "${serve[@]}"
count_one null 18732 /eur/collect/query query -- "${null[@]}"
count_one kassa 18731 /eur/collect/apply create -- "${serve[@]}"
count_one null 18732 /eur/collect/apply create -- "${null[@]}"
