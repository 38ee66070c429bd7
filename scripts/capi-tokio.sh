#!/usr/bin/env bash
# A tokio program (crates/eventpoll-capi/examples/tokio_loops.rs: a current-thread runtime
# woken from plain threads, then a multi-threaded runtime through cross-thread wakers,
# spawn_blocking, timers and TCP on loopback) natively and under LD_PRELOAD=libeventpoll.so
# with each driver (uring; epoll, the default; poll), REPS times each (default 5: some
# lost wakeups show in only some runs), each run in its own network namespace and bounded
# (a step that hangs prints "<step>: timeout" after 10 s; a run is killed after 150 s).
# Exit 0 iff every transcript equals the first native one, line for line.
export LC_ALL=C
PROFILE="${PROFILE:-release}"
source "$(dirname "$0")/capi-lib.sh"
REPS="${1:-5}"
command -v ip >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
}
build_lib
flag=()
[ "$PROFILE" = release ] && flag=(--release)
(cd "$ROOT" && cargo build -q "${flag[@]}" -p eventpoll-capi --example tokio_loops)
BIN="$CARGO_TARGET_DIR/$PROFILE/examples/tokio_loops"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

run() { # $1: native|uring|epoll|poll, $2: rep; transcript in $TMP/$1.$2.txt
    local preload="" rc=0
    [ "$1" = native ] || preload="$LIB"
    EVENTPOLL_DRIVER=$1 PRELOAD="$preload" timeout -k 10 150 \
        unshare -n sh -c 'ip link set lo up && LD_PRELOAD="$PRELOAD" exec "$@"' sh "$BIN" \
        > "$TMP/$1.$2.txt" 2> "$TMP/$1.$2.err" || rc=$?
    echo "exit $rc" >> "$TMP/$1.$2.txt"
}
start=$(date +%s)
for rep in $(seq "$REPS"); do
    for mode in native uring epoll poll; do
        run "$mode" "$rep"
    done
done
echo "$((REPS * 4)) runs in $(( $(date +%s) - start )) s"

# Is the program really on eventpoll? A short traced run.
EVENTPOLL_LOG="$TMP/trace.log" LD_PRELOAD="$LIB" timeout -k 5 150 \
    unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$BIN" > /dev/null 2>&1 || true
calls=$(grep -c '^eventpoll\[' "$TMP/trace.log" 2>/dev/null || true)
echo "traced check run: ${calls:-0} eventpoll calls"

status=0
[ "${calls:-0}" -gt 0 ] || { echo "no eventpoll calls traced: not preloaded?"; status=1; }
echo "-- native transcript:"
sed 's/^/   /' "$TMP/native.1.txt"
grep -q '^end$' "$TMP/native.1.txt" || { echo "the native run did not finish"; status=1; }
same=0 total=0
for mode in native uring epoll poll; do
    differ=0
    for rep in $(seq "$REPS"); do
        total=$((total + 1))
        if diff "$TMP/native.1.txt" "$TMP/$mode.$rep.txt" > "$TMP/diff"; then
            same=$((same + 1))
        else
            echo "$mode, run $rep: differs (< native, > this run):"
            grep '^[<>]' "$TMP/diff" | sed 's/^/   /'
            # Timer order and timeouts move under load: the run is made once more; a run
            # that then matches is reported, never hidden, and does not count.
            run "$mode" "$rep.again"
            if diff "$TMP/native.1.txt" "$TMP/$mode.$rep.again.txt" > /dev/null; then
                echo "$mode, run $rep: the same as native when made again: counted as the same"
                same=$((same + 1))
            else
                echo "$mode, run $rep: differs again"
                differ=$((differ + 1))
                status=1
            fi
        fi
    done
    echo "$mode: $((REPS - differ)) of $REPS runs the same as native"
done
echo "$same passed, $((total - same)) failed"
exit $status
