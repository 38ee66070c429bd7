#!/usr/bin/env bash
# The seventeenth session's measurement of two sleep shapes (README, "What changed in this
# session", seventeenth): crates/eventpoll-capi/tests/c/sleep_shapes.c, built here and run
# RUNS times per shape, the shapes alternated, then the nested-relay ctl cost. A figure,
# not a gate; nothing leaves the machine (a socketpair).
#   scripts/sleep-shapes.sh        (RUNS, default 5)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS:-5}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cc -O2 -pthread -o "$TMP/sleep_shapes" "$ROOT/crates/eventpoll-capi/tests/c/sleep_shapes.c"
for _ in $(seq "$RUNS"); do
    "$TMP/sleep_shapes" pingpong 0
    "$TMP/sleep_shapes" pingpong 1
done | sort
"$TMP/sleep_shapes" nested 0
"$TMP/sleep_shapes" nested 1
