#!/usr/bin/env bash
# Where memcached's extra CPU under LD_PRELOAD=libeventpoll.so goes, split against three
# shims that leave the work to the kernel's epoll (crates/eventpoll-capi/tests/c/floor_shim.c):
# A interposition only, B + the signal-mask pair and the events-slot probe every user-space
# epoll must make, C + a sleep outside the instance (ppoll, then a second harvest), D the
# library. Runs scripts/capi-ab-memcached.sh with the four (interleaved rounds; the ratios to
# native and to D, round by round). A figure, not a gate.
#   PROFILE=release scripts/capi-floor.sh   (ROUNDS, default 10; EVENTPOLL_LIB: a library
#   built before, used as it is; EVENTPOLL_DRIVER: the driver of D, the default otherwise —
#   the kernel epoll since 2026-12-08, the io_uring driver in the figures before)
set -euo pipefail
export LC_ALL=C
PROFILE="${PROFILE:-release}"
source "$(dirname "$0")/capi-lib.sh"
build_lib
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
libs=()
for m in 0 1 2; do
    mkdir -p "$TMP/m$m"
    cc -O2 -shared -fPIC -DFLOOR_MODE=$m -o "$TMP/m$m/libfloor.so" \
        "$ROOT/crates/eventpoll-capi/tests/c/floor_shim.c"
    libs+=("$TMP/m$m/libfloor.so")
done
echo "A: interposition only; B: + signal-mask pair and slot probe; C: + a sleep outside the instance; D: $LIB"
ROUNDS="${ROUNDS:-10}" "$ROOT/scripts/capi-ab-memcached.sh" "${libs[@]}" "$LIB"
