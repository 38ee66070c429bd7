#!/usr/bin/env bash
# redis-server (Debian package) natively and under LD_PRELOAD=libeventpoll.so, serving
# redis-benchmark on loopback; REPS (default 3) alternating rounds, median requests/s per
# test side by side. Exit 0 iff every benchmark request succeeded under eventpoll (no
# redis-benchmark error, every test ran) and the server really ran on eventpoll (its traced
# epoll calls are counted in a separate, short run).
#   PROFILE=release scripts/capi-redis.sh [REQUESTS] [CLIENTS] [REPS]
source "$(dirname "$0")/capi-lib.sh"
REQUESTS="${1:-100000}"
CLIENTS="${2:-50}"
REPS="${3:-3}"
TESTS="${TESTS:-ping_inline,ping_mbulk,set,get,incr,lpush,lpop,sadd,hset,mset}"
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
build_lib
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"; [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true' EXIT
# A port nobody listens on now (the kernel picks it).
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_server() { # $1: native|eventpoll|traced
    local env=()
    case "$1" in
        eventpoll) env=(LD_PRELOAD="$LIB") ;;
        traced) env=(LD_PRELOAD="$LIB" EVENTPOLL_LOG="$TMP/trace.log") ;;
    esac
    env "${env[@]}" redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --logfile "$TMP/redis-$1.log" --dir "$TMP" &
    PID=$!
    for _ in $(seq 100); do
        redis-cli -p "$PORT" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "redis-server ($1) did not start"; cat "$TMP/redis-$1.log"; exit 1
}
stop_server() {
    redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
}
# Is the server really on eventpoll?
start_server traced
redis-cli -p "$PORT" set k v >/dev/null
redis-benchmark -p "$PORT" -n 1000 -c 10 -t get -q >/dev/null 2>&1 || true
stop_server
calls=$(grep -c '^eventpoll\[' "$TMP/trace.log" || true)
for rep in $(seq "$REPS"); do
    for mode in native eventpoll; do
        start_server "$mode"
        timeout 600 redis-benchmark -p "$PORT" -n "$REQUESTS" -c "$CLIENTS" -t "$TESTS" --csv \
            > "$TMP/$mode.$rep.csv" 2>> "$TMP/$mode.err" || echo "benchmark exit $?" >> "$TMP/$mode.err"
        # The server's CPU time (user + system clock ticks): less noisy than req/s on a
        # shared machine.
        awk '{print $14 + $15}' "/proc/$PID/stat" > "$TMP/$mode.$rep.cpu"
        stop_server
    done
done
python3 - "$TMP" "$REPS" "$calls" "$TESTS" "$REQUESTS" "$CLIENTS" <<'PY'
import csv, statistics, sys
tmp, reps, calls, tests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
def load(mode):
    runs = []
    for r in range(1, reps + 1):
        rows = {}
        for row in csv.reader(open(f"{tmp}/{mode}.{r}.csv")):
            if row and row[0] != "test":
                rows[row[0]] = float(row[1])
        runs.append(rows)
    return runs
nat, ep = load("native"), load("eventpoll")
err = open(f"{tmp}/eventpoll.err").read() if True else ""
print(f"redis-benchmark -n {sys.argv[5]} -c {sys.argv[6]}, {reps} alternating rounds, median req/s")
print(f"{'test':<24}{'native':>12}{'eventpoll':>12}{'ratio':>8}")
ratios, complete = [], True
for t in nat[0]:
    n = statistics.median(r.get(t, 0.0) for r in nat)
    e = statistics.median(r.get(t, 0.0) for r in ep)
    complete &= all(t in r for r in ep)
    ratios.append(e / n if n else 0.0)
    print(f"{t:<24}{n:>12.0f}{e:>12.0f}{ratios[-1]:>8.2f}")
import os
tick = os.sysconf("SC_CLK_TCK")
def cpu(mode):
    return statistics.median(float(open(f"{tmp}/{mode}.{r}.cpu").read()) / tick for r in range(1, reps + 1))
cn, ce = cpu("native"), cpu("eventpoll")
total = int(sys.argv[5]) * len(tests)
print(f"server CPU time for {total} requests (median): native {cn:.2f} s, eventpoll {ce:.2f} s "
      f"({1e6 * cn / total:.1f} vs {1e6 * ce / total:.1f} us/request, ratio {cn / ce if ce else 0:.2f})")
geo = 1.0
for r in ratios:
    geo *= max(r, 1e-9)
geo **= 1 / max(len(ratios), 1)
print(f"geometric mean eventpoll/native: {geo:.3f}  (server on eventpoll: {calls} calls traced in the check run)")
ok = complete and len(nat[0]) == len(tests) and not err.strip() and calls > 0
if err.strip():
    print("redis-benchmark errors under eventpoll:", err.strip()[:500])
print(f"{len(tests) if ok else 0} passed, {0 if ok else 1} failed")
sys.exit(0 if ok else 1)
PY
