#!/usr/bin/env bash
# Python's own test_epoll and test_selectors, natively and under LD_PRELOAD=libeventpoll.so
# (all three drivers: uring; epoll, the default; poll): every test must end the same way as natively (ok / skipped / ...), and
# the preloaded runs must really go through eventpoll (EVENTPOLL_LOG counts the calls).
source "$(dirname "$0")/capi-lib.sh"
build_lib
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
TESTS=(test_epoll test_selectors)
results() { # the per-test outcome lines of a verbose run, sorted
    grep -E '^test_[A-Za-z0-9_]+ \(.*\) \.\.\. ' "$1" | sed -E 's/ \.\.\. (ok|skipped|FAIL|ERROR|expected failure|unexpected success).*/ ... \1/' | sort
}
timeout 600 python3 -m test -v "${TESTS[@]}" > "$TMP/native.txt" 2>&1 || true
results "$TMP/native.txt" > "$TMP/native.res"
status=0
for driver in uring epoll poll; do
    EVENTPOLL_DRIVER=$driver EVENTPOLL_LOG="$TMP/$driver.log" LD_PRELOAD="$LIB" timeout 600 \
        python3 -m test -v "${TESTS[@]}" > "$TMP/$driver.txt" 2>&1 || true
    results "$TMP/$driver.txt" > "$TMP/$driver.res"
    calls=$(cat "$TMP"/$driver.log* 2>/dev/null | grep -c '^eventpoll\[' || true)
    summary=$(grep -E '^Total tests:' "$TMP/$driver.txt" || echo "no summary")
    native=$(grep -E '^Total tests:' "$TMP/native.txt" || echo "no summary")
    echo "native:               $native ($(grep -E '^Result:' "$TMP/native.txt"))"
    echo "LD_PRELOAD ($driver): $summary ($(grep -E '^Result:' "$TMP/$driver.txt")), $calls eventpoll calls traced"
    if ! diff -u "$TMP/native.res" "$TMP/$driver.res"; then
        echo "per-test results differ ($driver driver)"; status=1
    fi
    [ "$calls" -gt 100 ] || { echo "too few eventpoll calls: not preloaded?"; status=1; }
    grep -q '^Result: SUCCESS' "$TMP/$driver.txt" || status=1
done
n=$(wc -l < "$TMP/native.res")
[ $status = 0 ] && echo "$((n*2)) passed, 0 failed" || echo "0 passed, 1 failed"
exit $status
