#!/usr/bin/env bash
# redis-server (Debian package) natively and under LD_PRELOAD=libeventpoll.so, each serving
# redis-benchmark on loopback; prints requests/s side by side. Exit 0 iff every benchmark
# request succeeded under eventpoll (redis-benchmark reports no error and every test ran)
# and the server really ran on eventpoll (its traced epoll calls are counted).
#   scripts/capi-redis.sh [REQUESTS] [CLIENTS]     (PROFILE=release for the figures)
source "$(dirname "$0")/capi-lib.sh"
REQUESTS="${1:-100000}"
CLIENTS="${2:-50}"
TESTS="${TESTS:-ping_inline,ping_mbulk,set,get,incr,lpush,lpop,sadd,hset,mset}"
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
build_lib
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"; [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true' EXIT
PORT=$((20000 + RANDOM % 20000))
start_server() { # $1: native|eventpoll
    local env=()
    [ "$1" = eventpoll ] && env=(LD_PRELOAD="$LIB" EVENTPOLL_LOG="$TMP/trace.log")
    env "${env[@]}" redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --logfile "$TMP/redis-$1.log" --dir "$TMP" &
    PID=$!
    for _ in $(seq 100); do
        redis-cli -p "$PORT" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "redis-server ($1) did not start"; cat "$TMP/redis-$1.log"; exit 1
}
stop_server() { redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || kill "$PID"; wait "$PID" || true; PID=; }
bench() { # $1: label -> $TMP/$1.csv
    timeout 600 redis-benchmark -p "$PORT" -n "$REQUESTS" -c "$CLIENTS" -t "$TESTS" --csv \
        > "$TMP/$1.csv" 2> "$TMP/$1.err" || true
}
start_server native; bench native; stop_server
# The traced run only checks that the server is on eventpoll (tracing costs time).
start_server eventpoll; redis-cli -p "$PORT" set k v >/dev/null; stop_server
calls=$(grep -c '^eventpoll\[' "$TMP/trace.log" || true)
rm -f "$TMP/trace.log"
start_server_untraced() {
    LD_PRELOAD="$LIB" redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --logfile "$TMP/redis-eventpoll.log" --dir "$TMP" &
    PID=$!
    for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "redis-server (eventpoll) did not start"; exit 1
}
start_server_untraced; bench eventpoll; stop_server
python3 - "$TMP/native.csv" "$TMP/eventpoll.csv" "$TMP/eventpoll.err" "$calls" "$TESTS" <<'PY'
import csv, sys
def load(p):
    rows = {}
    for r in csv.reader(open(p)):
        if r and r[0] != "test":
            rows[r[0]] = float(r[1])
    return rows
nat, ep = load(sys.argv[1]), load(sys.argv[2])
err = open(sys.argv[3]).read()
calls = int(sys.argv[4])
want = len(sys.argv[5].split(","))
print(f"{'test':<34}{'native req/s':>14}{'eventpoll req/s':>17}{'ratio':>8}")
ratios = []
for t in nat:
    e = ep.get(t, 0.0)
    ratios.append(e / nat[t] if nat[t] else 0)
    print(f"{t:<34}{nat[t]:>14.0f}{e:>17.0f}{ratios[-1]:>8.2f}")
geo = 1.0
for r in ratios: geo *= max(r, 1e-9)
geo **= 1 / max(len(ratios), 1)
print(f"geometric mean ratio eventpoll/native: {geo:.3f}; server traced {calls} eventpoll calls")
ok = len(ep) >= want and len(nat) >= want and "rror" not in err and calls > 0
if err.strip():
    print("redis-benchmark stderr:", err.strip()[:500])
print(f"{len(ep)} passed, {want - len(ep) if ok else want} failed")
sys.exit(0 if ok else 1)
PY
