#!/usr/bin/env bash
# mio's own tests, from its crate package (crates.io, via `cargo fetch` on a tiny manifest):
# the package ships no tests/ folder (its include list is src/ and examples/), so what runs
# is what it does ship: its unit tests and its doctests (Poll, Registry, Waker across
# threads, TCP, UDP, Unix sockets, pipes), with every feature. `cargo test` runs natively
# and under LD_PRELOAD=libeventpoll.so with each driver (uring; epoll, the default; poll);
# under the preload cargo, rustdoc and rustc are preloaded too, and each doctest program
# is a child that inherits it. Each run in its own network namespace, bounded by 300 s.
# Exit 0 iff every test ends the same way as natively.
#   scripts/capi-mio.sh [MIO_VERSION_REQ]   (default 1: the newest mio 1.x)
export LC_ALL=C
PROFILE="${PROFILE:-release}"
source "$(dirname "$0")/capi-lib.sh"
REQ="${1:-1}"
command -v ip >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
}
build_lib
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
crate_package mio "$REQ" "$TMP/mio"
VERSION=$CRATE_VERSION
if [ -d "$TMP/mio/tests" ]; then
    echo "mio $VERSION ships tests/: $(ls "$TMP/mio/tests" | wc -l) files"
else
    echo "mio $VERSION ships no tests/ (package include list: src, examples): unit tests and doctests only"
fi
export CARGO_TARGET_DIR="$TMP/target"
(cd "$TMP/mio" && timeout 600 cargo test -q --all-features --no-run 2>&1 | tail -3)

run() { # $1: native|uring|epoll|poll; per-test outcomes in $TMP/$1.res
    local preload="" rc=0
    [ "$1" = native ] || preload="$LIB"
    (cd "$TMP/mio" && EVENTPOLL_DRIVER=$1 PRELOAD="$preload" timeout -k 10 300 \
        unshare -n sh -c 'ip link set lo up && LD_PRELOAD="$PRELOAD" exec "$@"' sh \
        cargo test --all-features > "$TMP/$1.txt" 2>&1) || rc=$?
    grep -E '^test .* \.\.\. ' "$TMP/$1.txt" | sed -E 's/ \.\.\. (ok|FAILED|ignored).*/ ... \1/' | sort > "$TMP/$1.res"
    echo "$1: exit $rc, $(grep -E '^test result' "$TMP/$1.txt" | tr '\n' ' ')"
}
status=0
for mode in native uring epoll poll; do
    run "$mode"
done
n=$(wc -l < "$TMP/native.res")
echo "native: $n tests, $(grep -c ' ok$' "$TMP/native.res") ok"
[ "$n" -gt 20 ] || { echo "too few tests ran natively"; status=1; }

# Are the doctest programs really on eventpoll? A traced run: processes that made epoll calls.
(cd "$TMP/mio" && EVENTPOLL_LOG="$TMP/trace.log" LD_PRELOAD="$LIB" timeout -k 10 300 \
    unshare -n sh -c 'ip link set lo up && exec "$@"' sh cargo test -q --all-features --doc \
    > /dev/null 2>&1) || true
calls=$(grep -c '^eventpoll\[' "$TMP/trace.log" 2>/dev/null || true)
procs=$(grep -o '^eventpoll\[[0-9]*\]' "$TMP/trace.log" 2>/dev/null | sort -u | wc -l)
echo "traced check run: ${calls:-0} eventpoll calls from $procs processes"
[ "${calls:-0}" -gt 0 ] || { echo "no eventpoll calls traced: not preloaded?"; status=1; }

same=0
for driver in uring epoll poll; do
    if diff "$TMP/native.res" "$TMP/$driver.res" > "$TMP/diff"; then
        same=$((same + 1))
        echo "LD_PRELOAD ($driver): same per-test results as native"
    else
        echo "LD_PRELOAD ($driver): per-test results differ (< native, > preloaded):"
        grep '^[<>]' "$TMP/diff" | sed 's/^/   /'
        grep -A 15 -E '^---- ' "$TMP/$driver.txt" | head -40 | sed 's/^/   /' || true
        status=1
    fi
done
echo "$same passed, $((3 - same)) failed"
exit $status
