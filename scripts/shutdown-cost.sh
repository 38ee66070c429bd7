#!/usr/bin/env bash
# What an interposed shutdown(2) costs as descriptors are registered: the C program
# crates/eventpoll-capi/tests/c/shutdown_cost.c (N loopback TCP connections, both ends
# watched by one instance, then M shutdowns timed), natively and under
# LD_PRELOAD=libeventpoll.so, interleaved, ROUNDS times per size; prints the median and
# min-max ns per shutdown and the ratio of the medians. A figure, not a gate.
#   PROFILE=release scripts/shutdown-cost.sh
#   SIZES ("10 1000 4000": connections; 2 descriptors each, under the descriptor limit),
#   SHUTDOWNS (4000), ROUNDS (3), EVENTPOLL_LIB (a library built before, used as it is)
export LC_ALL=C
PROFILE="${PROFILE:-release}"
source "$(dirname "$0")/capi-lib.sh"
SIZES="${SIZES:-10 1000 4000}"
SHUTDOWNS="${SHUTDOWNS:-4000}"
ROUNDS="${ROUNDS:-3}"
build_lib
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cc -O2 -w -o "$TMP/shutdown_cost" "$ROOT/crates/eventpoll-capi/tests/c/shutdown_cost.c"
need=$((4 * $(tr ' ' '\n' <<<"$SIZES" | sort -n | tail -1) + 64))
[ "$(ulimit -n)" -ge "$need" ] 2>/dev/null || ulimit -n "$need" 2>/dev/null \
    || { echo "shutdown-cost: needs $need descriptors (ulimit -n)" >&2; exit 2; }
stats() { sort -n | awk '{v[NR]=$1} END {printf "%s %s %s\n", v[int((NR+1)/2)], v[1], v[NR]}'; }
printf '%8s %12s %24s %24s %8s\n' conns registered "native ns (min-max)" "preload ns (min-max)" ratio
for n in $SIZES; do
    : >"$TMP/native"; : >"$TMP/preload"
    for _ in $(seq "$ROUNDS"); do
        "$TMP/shutdown_cost" "$n" "$SHUTDOWNS" | sed -n 's/.*ns_per_shutdown=//p' >>"$TMP/native"
        LD_PRELOAD="$LIB" "$TMP/shutdown_cost" "$n" "$SHUTDOWNS" | sed -n 's/.*ns_per_shutdown=//p' >>"$TMP/preload"
    done
    read -r nm nlo nhi < <(stats <"$TMP/native")
    read -r pm plo phi < <(stats <"$TMP/preload")
    awk -v n="$n" -v nm="$nm" -v nlo="$nlo" -v nhi="$nhi" -v pm="$pm" -v plo="$plo" -v phi="$phi" 'BEGIN {
        printf "%8d %12d %24s %24s %7.2fx\n", n, 2 * n, sprintf("%d (%d-%d)", nm, nlo, nhi),
            sprintf("%d (%d-%d)", pm, plo, phi), pm / nm }'
done
