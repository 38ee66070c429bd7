#!/usr/bin/env bash
# Java NIO (the JDK's Selector: epoll_create1, epoll_ctl and epoll_wait from its own JNI
# code, an eventfd for Selector.wakeup, a posix_spawn helper for child processes) natively
# and under LD_PRELOAD=libeventpoll.so with each driver (uring; uring in shared
# mode from the start; epoll, the default; poll): crates/eventpoll-capi/tests/java/NioLoops.java, compiled
# here (echo server of 8 clients, OP_WRITE to a slow reader, a second selector thread on a
# Pipe, wakeup() from another thread, a select timeout, children spawned while selecting).
# Every part must print OK with every driver, as natively; a traced run shows the waits
# answered by eventpoll, and `eventpoll check` must report no finding. Loopback only; each
# run bounded (`timeout`). Needs a JDK (javac): Debian's default-jdk-headless is installed
# when there is none.
#   scripts/capi-java.sh
export LC_ALL=C
PROFILE="${PROFILE:-release}"
source "$(dirname "$0")/capi-lib.sh"
command -v javac >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jdk-headless >/dev/null
}
build_lib --bin eventpoll -p eventpoll-cli
EVENTPOLL="$CARGO_TARGET_DIR/$PROFILE/eventpoll"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
javac -d "$TMP" "$ROOT/crates/eventpoll-capi/tests/java/NioLoops.java"
echo "$(java -version 2>&1 | head -1)"
status=0
for mode in native uring shared epoll poll; do
    env=()
    case "$mode" in
        native) ;;
        shared) env=(LD_PRELOAD="$LIB" EVENTPOLL_URING_SHARED=1) ;;
        *) env=(LD_PRELOAD="$LIB" EVENTPOLL_DRIVER="$mode") ;;
    esac
    if timeout -k 5 180 env "${env[@]}" java -cp "$TMP" NioLoops > "$TMP/$mode.out" 2>&1; then
        echo "$mode: $(tail -1 "$TMP/$mode.out")"
    else
        echo "$mode: FAILED"; sed 's/^/    /' "$TMP/$mode.out"; status=1
    fi
done
# On eventpoll: the library's trace of the preloaded run names the waits it answered.
EVENTPOLL_LOG=1 LD_PRELOAD="$LIB" timeout -k 5 180 java -cp "$TMP" NioLoops > "$TMP/traced.out" 2> "$TMP/traced.log" || status=1
waits=$(grep -c '^eventpoll\[[0-9]*\]: epoll_p\?wait' "$TMP/traced.log" || true)
ctls=$(grep -c '^eventpoll\[[0-9]*\]: epoll_ctl' "$TMP/traced.log" || true)
echo "traced run: $waits waits and $ctls epoll_ctl calls answered by eventpoll"
[ "$waits" -gt 100 ] && [ "$ctls" -gt 10 ] || { echo "FAILED: the JDK's selector did not run on eventpoll"; status=1; }
# The checker: a correct program has nothing to report.
if "$EVENTPOLL" check -- timeout -k 5 180 java -cp "$TMP" NioLoops > "$TMP/check.out" 2>&1; then
    echo "check: $(grep '^eventpoll check:' "$TMP/check.out" | tail -1)"
    grep -q '^eventpoll check: 0 findings' "$TMP/check.out" || { sed 's/^/    /' "$TMP/check.out"; status=1; }
else
    echo "check: FAILED"; sed 's/^/    /' "$TMP/check.out"; status=1
fi
exit $status
