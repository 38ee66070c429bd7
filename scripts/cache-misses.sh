#!/usr/bin/env bash
# Cache misses, instructions and wall time per token of the in-process pipetest, and the cost
# of one dependent cache miss at the largest working set: the figures behind "what a token
# costs, and what is out of reach" (issue 16, item 1).
#
#   scripts/cache-misses.sh [--et] [--sizes 1000,10000,100000] [--rounds 10000] [--ll-level 2|3]
#
# How: the example `token_cost` (crates/eventpoll-bench/examples/token_cost.rs) builds the
# engine's pipetest rig (N in-process pipes watched by one instance, 16 tokens, seed 42), runs
# max(2,000, N/2) warm-up rounds (every pipe has carried tokens: steady state) and then R
# measured rounds. It runs under valgrind's cachegrind twice
# per N, with R rounds and with 0; the runs are deterministic up to the measured rounds, so the
# difference of their counts divided by the measured rounds' tokens is the cost per token of
# the token path alone (epoll_wait amortised over the tokens it reports, read, write).
#
# Cache model: read from this machine's sysfs (cpu0's cache/index*: level, type, size,
# ways, line) and printed in the header. D1 and I1 are the level-1 caches; LL is, by default,
# the largest unified cache of at most 64 MiB (a VM may report a shared L3 larger than any
# real part, as an earlier machine did with 480 MiB: then the private L2 is the LL), or the
# level `--ll-level 2|3` names. An LL miss means "missed every cache that level models",
# which is what a dependent load then pays. Column meaning:
#   Ir/tok  instructions per token        D1/tok  L1 data misses (reads + writes) per token
#   LL/tok  LL data misses per token       ns/tok  native wall time per token (one run)
# The chase line: a random dependent walk over a buffer as large as the rig's heap at the
# largest N (4 KiB pages, so TLB misses are included as they are for the engine's objects),
# in ns per step; LL/tok x that is an upper bound of the time the remaining misses cost when
# none of them overlap. Last, the sweep: the same walk over 256 KiB to 64 MiB with 4 KiB pages
# and with 2 MiB pages (where the latency steps up is the cache one core really gets on this
# machine; the gap between the columns is what TLB misses add).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=1000,10000,100000
rounds=10000
et=()
ll_level=""
while [ $# -gt 0 ]; do
    case "$1" in
        --et) et=(--et) ;;
        --ll-level) ll_level="$2"; shift ;;
        --sizes) sizes="$2"; shift ;;
        --rounds) rounds="$2"; shift ;;
        *) echo "usage: $0 [--et] [--sizes N,N,...] [--rounds R] [--ll-level 2|3]" >&2; exit 2 ;;
    esac
    shift
done
command -v valgrind >/dev/null || { echo "cache-misses.sh: valgrind is not installed" >&2; exit 1; }

cargo build --quiet --release -p eventpoll-bench --example token_cost
bin="${CARGO_TARGET_DIR:-target}/release/examples/token_cost"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# One cache of cpu0 as cachegrind's "size,ways,line", by level and type.
geometry() {
    local d size ways line
    for d in /sys/devices/system/cpu/cpu0/cache/index*; do
        [ "$(cat "$d/level")" = "$1" ] && [ "$(cat "$d/type")" = "$2" ] || continue
        size=$(cat "$d/size")
        case "$size" in *K) size=$((${size%K} * 1024)) ;; *M) size=$((${size%M} * 1048576)) ;; esac
        ways=$(cat "$d/ways_of_associativity")
        line=$(cat "$d/coherency_line_size")
        echo "$size,$ways,$line"
        return 0
    done
    return 1
}
label() { IFS=, read -r size ways _ <<<"$1"; echo "$((size / 1024))K/$ways"; }
d1=$(geometry 1 Data) || { echo "cache-misses.sh: no L1 data cache in sysfs" >&2; exit 1; }
i1=$(geometry 1 Instruction) || { echo "cache-misses.sh: no L1 instruction cache in sysfs" >&2; exit 1; }
if [ -z "$ll_level" ]; then
    ll_level=2
    if l3=$(geometry 3 Unified) && [ "${l3%%,*}" -le $((64 * 1048576)) ]; then ll_level=3; fi
fi
ll=$(geometry "$ll_level" Unified) || { echo "cache-misses.sh: no unified L$ll_level in sysfs" >&2; exit 1; }
cache=(--cache-sim=yes "--I1=$i1" "--D1=$d1" "--LL=$ll")

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
echo "in-process pipetest, eventpoll $mode, 16 tokens, $rounds measured rounds; cachegrind (this machine's sysfs) I1 $(label "$i1"), D1 $(label "$d1"), LL = L$ll_level $(label "$ll")"
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
# Half the L3 sysfs reports (where there is one): the L3 answers there if the core really
# has it (a VM's sysfs may report the host's whole L3; the sweep below shows what it has).
if l3=$(geometry 3 Unified); then
    l3chase=$("$bin" chase --bytes $((${l3%%,*} / 2)) --steps 10000000)
    l3ns=$(sed -n 's/.*chase_ns=\([0-9.]*\).*/\1/p' <<<"$l3chase")
    echo "dependent miss over $((${l3%%,*} / 2097152)) MiB (half the L3 sysfs reports): $l3ns ns per step"
fi
awk -v n="$last" -v miss="$miss" -v hit="$hit" -v heap="$heapb" -v ll="$ll" -v ns="$nstok" 'BEGIN {
    printf "dependent miss over %.1f MiB (the rig'"'"'s heap at N=%d): %.1f ns per step (L1 hit: %.1f ns)\n", heap / 1048576, n, miss, hit;
    printf "N=%d: %.2f LL misses/token x %.1f ns = %.0f ns if none overlapped, against %.0f ns per token measured\n", n, ll, miss, ll * miss, ns;
}'
"$bin" sweep --steps 2000000
