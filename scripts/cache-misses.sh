#!/usr/bin/env bash
# Cache misses, instructions and wall time per token of the in-process pipetest, and the cost
# of one dependent cache miss at the largest working set: the figures behind "what a token
# costs, and what is out of reach" (issue 16, item 1).
#
#   scripts/cache-misses.sh [--et] [--sizes 1000,10000,100000] [--rounds 10000]
#
# How: the example `token_cost` (crates/eventpoll-bench/examples/token_cost.rs) builds the
# engine's pipetest rig (N in-process pipes watched by one instance, 16 tokens, seed 42), runs
# max(2,000, N/2) warm-up rounds (every pipe has carried tokens: steady state) and then R
# measured rounds. It runs under valgrind's cachegrind twice
# per N, with R rounds and with 0; the runs are deterministic up to the measured rounds, so the
# difference of their counts divided by the measured rounds' tokens is the cost per token of
# the token path alone (epoll_wait amortised over the tokens it reports, read, write).
#
# Cache model (stated, not detected): D1 48 KiB 12-way and I1 64 KiB 16-way, as this VM's
# sysfs reports per core; LL = the private L2, 2 MiB 16-way (sysfs index2). The L3 the VM
# reports (480 MiB, one instance) is not a size any real part has per VM and is shared with
# other tenants, so an LL miss here means "missed the core's own caches", which is what a
# dependent load pays on this machine. Column meaning:
#   Ir/tok  instructions per token        D1/tok  L1 data misses (reads + writes) per token
#   LL/tok  L2 (LL) data misses per token  ns/tok  native wall time per token (one run)
# The chase line: a random dependent walk over a buffer as large as the rig's heap at the
# largest N (4 KiB pages, so TLB misses are included as they are for the engine's objects),
# in ns per step; LL/tok x that is an upper bound of the time the remaining misses cost when
# none of them overlap.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=1000,10000,100000
rounds=10000
et=()
while [ $# -gt 0 ]; do
    case "$1" in
        --et) et=(--et) ;;
        --sizes) sizes="$2"; shift ;;
        --rounds) rounds="$2"; shift ;;
        *) echo "usage: $0 [--et] [--sizes N,N,...] [--rounds R]" >&2; exit 2 ;;
    esac
    shift
done
command -v valgrind >/dev/null || { echo "cache-misses.sh: valgrind is not installed" >&2; exit 1; }

cargo build --quiet --release -p eventpoll-bench --example token_cost
bin="${CARGO_TARGET_DIR:-target}/release/examples/token_cost"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cache=(--cache-sim=yes --I1=65536,16,64 --D1=49152,12,64 --LL=2097152,16,64)

# Prints the cachegrind summary counts (Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw) of one run.
summary() {
    local out="$tmp/cg.$1"
    shift
    valgrind --tool=cachegrind "${cache[@]}" --cachegrind-out-file="$out" "$bin" "$@" \
        >"$out.stdout" 2>"$out.stderr"
    awk '/^summary:/ { $1 = ""; print }' "$out"
}

mode="LT"
[ ${#et[@]} -gt 0 ] && mode="ET"
echo "in-process pipetest, eventpoll $mode, 16 tokens, $rounds measured rounds; cachegrind D1 48K/12, LL 2M/16 (private L2)"
printf '%8s %10s %8s %8s %8s %8s %10s\n' N tokens Ir/tok D1/tok LL/tok ns/tok heap/pipe
last=""
IFS=, read -r -a ns <<<"$sizes"
for n in "${ns[@]}"; do
    base=($(summary "$n.0" rounds --pipes "$n" --rounds 0 "${et[@]}"))
    meas=($(summary "$n.1" rounds --pipes "$n" --rounds "$rounds" "${et[@]}"))
    tokens=$(sed -n 's/.*tokens=\([0-9]*\).*/\1/p' "$tmp/cg.$n.1.stdout")
    native=$("$bin" rounds --pipes "$n" --rounds $((rounds * 4)) "${et[@]}")
    nstok=$(sed -n 's/.*ns_per_token=\([0-9.]*\).*/\1/p' <<<"$native")
    heap=$(sed -n 's/.*heap_bytes=\([0-9]*\).*/\1/p' <<<"$native")
    awk -v n="$n" -v t="$tokens" -v ns="$nstok" -v heap="$heap" \
        -v b="${base[*]}" -v m="${meas[*]}" 'BEGIN {
        split(b, x, " "); split(m, y, " ");
        ir = (y[1] - x[1]) / t;
        d1 = (y[5] - x[5] + y[8] - x[8]) / t;
        ll = (y[6] - x[6] + y[9] - x[9]) / t;
        if (ll < 0.005) ll = 0; # a few misses of difference either way print as 0, not -0.00
        printf "%8d %10d %8.0f %8.2f %8.2f %8.0f %10.0f\n", n, t, ir, d1, ll, ns, heap / n;
    }'
    last="$n"
    echo "$n $(awk -v t="$tokens" -v b="${base[*]}" -v m="${meas[*]}" 'BEGIN { split(b, x, " "); split(m, y, " "); print (y[6] - x[6] + y[9] - x[9]) / t }') $nstok" >"$tmp/last"
done
read -r _ ll nstok <"$tmp/last"
chase=$("$bin" chase --pipes "$last" --steps 10000000)
miss=$(sed -n 's/.*chase_ns=\([0-9.]*\).*/\1/p' <<<"$chase")
hit=$(sed -n 's/.*l1_hit_ns=\([0-9.]*\).*/\1/p' <<<"$chase")
heapb=$(sed -n 's/.*heap_bytes=\([0-9]*\).*/\1/p' <<<"$chase")
awk -v n="$last" -v miss="$miss" -v hit="$hit" -v heap="$heapb" -v ll="$ll" -v ns="$nstok" 'BEGIN {
    printf "dependent miss over %.1f MiB (the rig'"'"'s heap at N=%d): %.1f ns per step (L1 hit: %.1f ns)\n", heap / 1048576, n, miss, hit;
    printf "N=%d: %.2f LL misses/token x %.1f ns = %.0f ns if none overlapped, against %.0f ns per token measured\n", n, ll, miss, ll * miss, ns;
}'
