#!/usr/bin/env bash
# memcached's CPU and voluntary context switches per request, natively and under two or more
# builds of libeventpoll.so, interleaved round by round (native, A, B, ...): how library
# changes move a real server, with the spread. Debian's memcached (-t 4) on loopback, the
# set+get client and the CPU accounting of scripts/capi_servers.py (as scripts/capi-servers.sh).
#   scripts/capi-ab-memcached.sh LIB_A LIB_B [LIB_C ...]   (ROUNDS, default 8; N requests a
#   round, 16000)
# Prints per side the median (min–max) µs and switches per request (the µs also split into
# user and system time as the kernel's tick accounting gives it: one tick is 10 ms, so
# take N=128000 or more for that split), and the round-by-round
# ratios of each build to native and to the last build given (the baseline: A/B with two).
# The driver is the library's default (the kernel epoll since 2026-12-08): set
# EVENTPOLL_DRIVER=uring to measure the io_uring driver, as the figures before that date did.
set -euo pipefail
export LC_ALL=C
HELP="$(cd "$(dirname "$0")" && pwd)/capi_servers.py"
ROUNDS="${ROUNDS:-8}"
N="${N:-16000}"
[ $# -ge 2 ] || { echo "usage: $0 LIB_A LIB_B [LIB_C ...]" >&2; exit 2; }
LIBS=()
for l in "$@"; do LIBS+=("$(realpath "$l")"); done
NAMES=(A B C D E F G H)
[ ${#LIBS[@]} -le ${#NAMES[@]} ] || { echo "at most ${#NAMES[@]} libraries" >&2; exit 2; }
command -v memcached >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq memcached >/dev/null
}
TMP="$(mktemp -d)"
SPID=
trap '[ -z "$SPID" ] || kill -TERM "$SPID" 2>/dev/null || true; rm -rf "$TMP"' EXIT
out="$TMP/rounds.jsonl"
for r in $(seq "$ROUNDS"); do
    for k in -1 $(seq 0 $((${#LIBS[@]} - 1))); do
        env=()
        side=native
        if [ "$k" -ge 0 ]; then side=${NAMES[$k]}; env=(LD_PRELOAD="${LIBS[$k]}"); fi
        port=$((20000 + RANDOM % 20000))
        timeout -k 5 300 env "${env[@]}" memcached -u "$(id -un)" -l 127.0.0.1 -p "$port" \
            -U 0 -t 4 -m 64 > /dev/null 2>&1 &
        SPID=$!
        for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
        python3 "$HELP" memcached "$port" 4 500 > /dev/null
        python3 "$HELP" snapshot "$SPID" > "$TMP/before.json"
        python3 "$HELP" memcached "$port" 4 $((N / 8)) > /dev/null || { echo "round $r ($side): load failed"; exit 1; }
        python3 "$HELP" delta "$TMP/before.json" "$SPID" memcached "$side" "$r" $((4 * (N / 8) * 2)) >> "$out"
        kill -TERM "$SPID"; wait "$SPID" 2>/dev/null || true
        SPID=
    done
done
python3 - "$out" "${NAMES[@]:0:${#LIBS[@]}}" <<'PY'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
libs = sys.argv[2:]
def show(v, f): return f"{f(st.median(v))} ({f(min(v))}–{f(max(v))})"
for side in ["native"] + libs:
    us = [r["cpu_ns"] / r["requests"] / 1000 for r in rows if r["side"] == side]
    sw = [r["vcsw"] / r["requests"] for r in rows if r["side"] == side]
    user = [r["user_ns"] / r["requests"] / 1000 for r in rows if r["side"] == side]
    kern = [r["sys_ns"] / r["requests"] / 1000 for r in rows if r["side"] == side]
    f1 = lambda x: f"{x:.1f} us"
    print(f"{side:6} CPU/request {show(us, f1)} (user {show(user, f1)}, system {show(kern, f1)}),"
          f" switches/request {show(sw, lambda x: f'{x:.2f}')}")
rounds = {}
for r in rows:
    rounds.setdefault(r["round"], {})[r["side"]] = r["cpu_ns"] / r["requests"]
base = libs[-1]
pairs = [(a, "native") for a in libs] + [(a, base) for a in libs[:-1]]
for a, b in pairs:
    v = [x[a] / x[b] for x in rounds.values()]
    print(f"{a}/{b} CPU per request: {show(v, lambda x: f'{x:.2f}x')} (round by round)")
PY
