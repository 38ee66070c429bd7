#!/usr/bin/env bash
# What one blocking wait of a real server costs the library in instructions, and what the
# library's code does to the server's instruction cache: Debian's memcached (-t 1) under
# valgrind's callgrind, with a client that pauses between requests so that every wait of
# the worker finds nothing and sleeps (as under a real load, where `ppoll` is one call a
# request): a client faster than the server under valgrind would find each request there
# already and measure the short path of a wait that returns at once.
#   PROFILE=release scripts/callgrind-wait.sh [LIB ...]   (default: the library built here;
#   "native" for memcached without the preload)
#   REQUESTS (2000; the difference of a run of REQUESTS/2 and one of 3*REQUESTS/2 pairs of
#   requests, so that start-up cancels), GAP (0.001 s between requests), DRIVER (uring),
#   I1 (the first-level instruction cache simulated, "32768,8,64": size, ways, line)
# Prints per library: instructions per wait inside epoll_wait (collection toggled on
# epoll_wait: the library's whole wait path, the kernel's part not counted), and per
# request of the worker's event loop (collection toggled on libevent's event_base_loop:
# memcached's, libevent's, glibc's and the library's code together) instructions and
# first-level instruction- and data-cache misses of callgrind's cache model. Loopback only;
# every server bounded by `timeout` and stopped. Counts are repeatable to a few per cent
# (memcached's other threads are outside both collections).
export LC_ALL=C
PROFILE="${PROFILE:-release}"
source "$(dirname "$0")/capi-lib.sh"
REQUESTS="${REQUESTS:-2000}"
GAP="${GAP:-0.001}"
I1="${I1:-32768,8,64}"
need valgrind valgrind
need memcached memcached
LIBS=("$@")
if [ ${#LIBS[@]} -eq 0 ]; then
    build_lib
    LIBS=("$LIB")
fi
TMP="$(mktemp -d)"
SPID=
trap '[ -z "$SPID" ] || kill -TERM "$SPID" 2>/dev/null || true; rm -rf "$TMP"' EXIT

# run LIB PAIRS OUT TOGGLE: memcached under callgrind, collecting inside TOGGLE only.
run() {
    local env=() port
    [ "$1" = native ] || env=(LD_PRELOAD="$1" EVENTPOLL_DRIVER="${DRIVER:-uring}")
    port="$(free_port)"
    # valgrind keeps descriptors of its own above the limit it reports: memcached's
    # `setrlimit` of its connection count must ask for exactly that limit (19,988 here:
    # the hard limit less valgrind's 12), or it exits.
    local conns=$(( $(ulimit -Hn) - 12 ))
    env "${env[@]}" timeout 600 valgrind --tool=callgrind --cache-sim=yes --I1="$I1" \
        --collect-atstart=no --toggle-collect="$4" --callgrind-out-file="$3.out" \
        memcached -u root -t 1 -p "$port" -l 127.0.0.1 -U 0 -c "$conns" 2>"$3.log" &
    SPID=$!
    wait_port "$port" "$SPID" memcached || { cat "$3.log" >&2; return 1; }
    python3 "$ROOT/scripts/capi_servers.py" pausing "$port" "$2" "$GAP"
    kill -TERM "$SPID"; wait "$SPID" 2>/dev/null || true
    SPID=
}

# totals LOG: Ir, I1 misses, D1 misses of a run (callgrind's summary).
totals() {
    python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
g = lambda k: int(re.search(k + r":\s*([\d,]+)", t).group(1).replace(",", ""))
print(g(r"I\s+refs"), g(r"I1\s+misses"), g(r"D1\s+misses"))
PY
}

# waits OUT: calls of epoll_wait in a run (the `calls=` lines of callgrind's output that
# follow a call of it).
waits() {
    python3 - "$1" <<'PY'
import re, sys
ids, n, callee = set(), 0, None
for line in open(sys.argv[1]):
    m = re.match(r"c?fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if m:
        if m.group(2) == "epoll_wait":
            ids.add(m.group(1))
        callee = m.group(1) if line.startswith("cfn=") else None
        continue
    if line.startswith("calls=") and callee in ids:
        n += int(line.split()[0][6:])
print(n)
PY
}

small=$((REQUESTS / 4)) large=$((REQUESTS * 3 / 4)) # pairs: requests / 2 and 3 * requests / 2
echo "memcached -t 1 under callgrind, a client pausing ${GAP} s after each answer; ${REQUESTS} requests (the difference of two runs); I1 $I1"
for lib in "${LIBS[@]}"; do
    name="$( [ "$lib" = native ] && echo native || echo "$lib")"
    if [ "$lib" != native ]; then
        run "$lib" "$small" "$TMP/w1" epoll_wait
        run "$lib" "$large" "$TMP/w2" epoll_wait
        read -r a _ _ < <(totals "$TMP/w1.log")
        read -r b _ _ < <(totals "$TMP/w2.log")
        wa="$(waits "$TMP/w1.out")" wb="$(waits "$TMP/w2.out")"
        per_wait=$(python3 -c "print(round(($b - $a) / ($wb - $wa)))")
    else
        per_wait="-"
    fi
    run "$lib" "$small" "$TMP/l1" event_base_loop
    run "$lib" "$large" "$TMP/l2" event_base_loop
    read -r a ia da < <(totals "$TMP/l1.log")
    read -r b ib db < <(totals "$TMP/l2.log")
    python3 - "$name" "$per_wait" "$REQUESTS" "$a" "$b" "$ia" "$ib" "$da" "$db" <<'PY'
import sys
name, per_wait, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
a, b, ia, ib, da, db = map(int, sys.argv[4:])
print(f"{name}: instructions per wait {per_wait}; per request of the worker's loop: "
      f"{(b - a) / n:.0f} instructions, {(ib - ia) / n:.1f} I1 misses, {(db - da) / n:.1f} D1 misses")
PY
done
