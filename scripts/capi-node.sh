#!/usr/bin/env bash
# Node.js (the machine's node, else Debian's nodejs) runs crates/eventpoll-capi/tests/node/loops.js
# -- timers, setImmediate, the thread pool (fs, fs.watch), an HTTP server and client, TCP,
# UDP, worker threads, child processes, a signal -- natively and under
# LD_PRELOAD=libeventpoll.so with each driver (uring; epoll, the default; poll), each with
# UV_USE_IO_URING=1 (libuv submits epoll_ctl and file operations through io_uring) and
# UV_USE_IO_URING=0. Every run is in its own network namespace (loopback only) and bounded
# (a step whose callbacks never come prints "<step>: timeout" after STEP_MS, default
# 10,000 ms; a whole run is killed after 180 s). Exit 0 iff every preloaded transcript
# equals the native one with the same UV_USE_IO_URING, line for line.
export LC_ALL=C
PROFILE="${PROFILE:-release}"
source "$(dirname "$0")/capi-lib.sh"
JS="$ROOT/crates/eventpoll-capi/tests/node/loops.js"
command -v ip >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
}
NODE="$(command -v node || command -v nodejs || true)"
if [ -z "$NODE" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null
    NODE="$(command -v node || command -v nodejs)"
fi
build_lib
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
echo "node $("$NODE" --version) (libuv $("$NODE" -p process.versions.uv)), $(uname -r)"

run() { # $1: native|uring|epoll|poll, $2: UV_USE_IO_URING; transcript in $TMP/$1-$2.txt
    local preload="" rc=0
    [ "$1" = native ] || preload="$LIB"
    EVENTPOLL_DRIVER=$1 UV_USE_IO_URING=$2 PRELOAD="$preload" timeout -k 10 180 \
        unshare -n sh -c 'ip link set lo up && LD_PRELOAD="$PRELOAD" exec "$@"' sh "$NODE" "$JS" \
        > "$TMP/$1-$2.txt" 2> "$TMP/$1-$2.err" || rc=$?
    echo "exit $rc" >> "$TMP/$1-$2.txt"
}
start=$(date +%s)
for mode in native uring epoll poll; do
    (run "$mode" 1; run "$mode" 0) &
done
wait
echo "8 runs in $(( $(date +%s) - start )) s"

# Is node really on eventpoll? A short traced run.
EVENTPOLL_LOG="$TMP/trace.log" STEP_MS=1000 LD_PRELOAD="$LIB" UV_USE_IO_URING=0 timeout -k 5 60 \
    unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$NODE" "$JS" > /dev/null 2>&1 || true
calls=$(grep -c '^eventpoll\[' "$TMP/trace.log" 2>/dev/null || true)
echo "traced check run: ${calls:-0} eventpoll calls"

status=0
[ "${calls:-0}" -gt 0 ] || { echo "no eventpoll calls traced: not preloaded?"; status=1; }
for u in 1 0; do
    echo "-- native, UV_USE_IO_URING=$u:"
    sed 's/^/   /' "$TMP/native-$u.txt"
    grep -q '^end$' "$TMP/native-$u.txt" || { echo "the native run did not finish"; status=1; }
done
# differs DRIVER U: whether the transcript differs from the native one (the lines that
# differ, < native and > preloaded, and the start of its stderr printed if it does).
differs() {
    diff "$TMP/native-$2.txt" "$TMP/$1-$2.txt" > "$TMP/diff" && return 1
    grep '^[<>]' "$TMP/diff" | sed 's/^/   /'
    [ -s "$TMP/$1-$2.err" ] && head -5 "$TMP/$1-$2.err" | sed 's/^/   stderr: /'
    return 0
}
same=0 total=0
for driver in uring epoll poll; do
    for u in 1 0; do
        total=$((total + 1))
        name="LD_PRELOAD ($driver, UV_USE_IO_URING=$u)"
        diff -q "$TMP/native-$u.txt" "$TMP/$driver-$u.txt" > /dev/null && {
            same=$((same + 1))
            echo "$name: same transcript"
            continue
        }
        echo "$name: differs (< native, > preloaded):"
        differs "$driver" "$u" || true
        # The eight runs above go at once on this machine's cores: a transcript that
        # differs is made again alone, natively and preloaded (once), before it counts.
        run native "$u"
        run "$driver" "$u"
        if differs "$driver" "$u"; then
            echo "   made again alone: differs again"
            status=1
        else
            same=$((same + 1))
            echo "   made again alone: the same transcript natively and preloaded: counted as the same"
        fi
    done
done
echo "$same passed, $((total - same)) failed"
exit $status
