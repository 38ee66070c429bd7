#!/usr/bin/env bash
# An asyncio echo server runs under LD_PRELOAD=libeventpoll.so and serves CONNS (default
# 1000) concurrent loopback connections from a native client process, ROUNDS echoes each.
# Bounded: the server stops when the client is done or after 120 s. Exit 0 iff 0 errors
# and the server saw all connections at once.
source "$(dirname "$0")/capi-lib.sh"
CONNS="${1:-1000}"
ROUNDS="${2:-20}"
build_lib
PY="$ROOT/crates/eventpoll-capi/tests/py/echo.py"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"; [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true' EXIT
ulimit -n "$(ulimit -Hn)"
LD_PRELOAD="$LIB" python3 "$PY" server "$TMP/port" 120 > "$TMP/server.out" 2>&1 &
SERVER=$!
for _ in $(seq 100); do [ -f "$TMP/port" ] && break; sleep 0.1; done
[ -f "$TMP/port" ] || { echo "server did not start"; cat "$TMP/server.out"; exit 1; }
status=0
python3 "$PY" client "$(cat "$TMP/port")" "$CONNS" "$ROUNDS" || status=1
wait "$SERVER" || status=1
SERVER=
cat "$TMP/server.out"
grep -q "peak concurrent connections $CONNS" "$TMP/server.out" || { echo "server did not see $CONNS concurrent connections"; status=1; }
exit $status
