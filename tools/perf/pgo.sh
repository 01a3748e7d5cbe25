#!/usr/bin/env bash
# A build of kassa optimised by profile (PGO): an instrumented build runs the bench's own
# workloads — create and query against kassa and against the null gateway, callbacks against
# the plain client, and briefly every rarer path a scenario drives (PIX through an upstream,
# the payer's page, the report, the back office) — LLVM merges what every process counted, and
# the final build inlines and lays out its code by those counts. Every process of the bench
# (the servers, the references, the clients) is the same program and is trained alike, so the
# bench's ratios stay fair.
#   tools/perf/pgo.sh [PROFILE]    (release by default; dist adds whole-program optimisation)
# Puts the binary at target/pgo/kassa. Needs llvm-profdata of rustc's own LLVM major version
# (Debian's llvm-NN package, or rustup's llvm-tools component; LLVM_PROFDATA names another).
# With KASSA_PGO_POSTGRES_URL=postgres://… PostgreSQL's creates, queries and deliveries are
# trained as well.
set -euo pipefail
cd "$(dirname "$0")/../.."
profile="${1:-release}"
host="$(rustc -vV | sed -n 's/^host: //p')"
llvm_major="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"

profdata="${LLVM_PROFDATA:-}"
if [ -z "$profdata" ]; then
    for candidate in "llvm-profdata-$llvm_major" "/usr/lib/llvm-$llvm_major/bin/llvm-profdata" \
        "$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"; do
        if command -v "$candidate" >/dev/null 2>&1; then
            profdata="$candidate"
            break
        fi
    done
fi
if [ -z "$profdata" ]; then
    echo "no llvm-profdata of LLVM $llvm_major (rustc's): install llvm-$llvm_major or set LLVM_PROFDATA" >&2
    exit 2
fi
# A raw profile is read only by the LLVM that wrote it, and rustc reads only what its LLVM knows.
profdata_major="$("$profdata" --version | sed -n 's/.*LLVM version \([0-9]*\).*/\1/p')"
if [ "$profdata_major" != "$llvm_major" ]; then
    echo "$profdata is LLVM $profdata_major; rustc uses LLVM $llvm_major" >&2
    exit 2
fi

work="$PWD/target/pgo"
raw="$work/raw"
rm -rf "$raw"
mkdir -p "$raw"
# `--target` keeps the flags off build scripts and procedural macros; target directories of
# their own keep the two builds from invalidating each other's artefacts or the plain build's.
build() {
    RUSTFLAGS="$1" cargo build --locked --profile "$profile" -p kassa \
        --target "$host" --target-dir "$2"
}
build "-Cprofile-generate=$raw" "$work/generate"
trained="$work/generate/$host/$profile/kassa"

# The bench ends every process it starts normally, so each writes its counts, to a file of
# its own (`%p`, its process id); a run whose processes wrote fewer files than it starts had
# one killed, and its counts would be missing from the layout.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
counted() { find "$raw" -name '*.profraw' | wc -l; }
# train PROCESSES ARGS…: one bench run that starts PROCESSES processes, itself included.
train() {
    local processes="$1" before wrote
    shift
    before="$(counted)"
    (cd "$scratch" && LLVM_PROFILE_FILE="$raw/%p.profraw" "$trained" bench --json "$@" >/dev/null)
    wrote="$(($(counted) - before))"
    if [ "$wrote" -lt "$processes" ]; then
        echo "bench $*: $wrote of its $processes processes wrote counts" >&2
        exit 1
    fi
}
# The bench, kassa and the null gateway.
train 3 --scenario limit --duration 5 --rounds 1
# The bench, kassa, the plain client and kassa's own client, each in its process.
train 4 --scenario callbacks --backlog 20000 --rounds 1
# The rarer paths, briefly, so that they are laid out as code that runs rather than as cold:
# PIX through an upstream PSP (a second kassa) and its reconciliation; orders paid on the
# payer's page with the books posted (the store's side in the bench, then over HTTP against
# kassa); the settlement report (`kassa report` as a child); the back office's lists and export.
train 3 --scenario upstream --duration 3 --awaiting 2000
train 2 --scenario pay --duration 3 --rounds 1
train 2 --scenario report --preload 20000
train 2 --scenario backoffice --preload 20000
if [ -n "${KASSA_PGO_POSTGRES_URL:-}" ]; then
    train 3 --scenario limit --duration 5 --rounds 1 --database-url "$KASSA_PGO_POSTGRES_URL"
    # Its deliveries' claims and records are statements of their own.
    train 4 --scenario callbacks --backlog 20000 --rounds 1 --database-url "$KASSA_PGO_POSTGRES_URL"
fi
profiles="$(counted)"
"$profdata" merge -o "$work/kassa.profdata" "$raw"

build "-Cprofile-use=$work/kassa.profdata" "$work/use"
cp "$work/use/$host/$profile/kassa" "$work/kassa"
echo "kassa built with the counts of $profiles processes: target/pgo/kassa"
