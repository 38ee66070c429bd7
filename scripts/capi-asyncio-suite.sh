#!/usr/bin/env bash
# CPython's own asyncio test suite (`python3 -m test test_asyncio`: ~2,400 tests of event
# loops, transports, streams, subprocesses, signals and threads on selectors.EpollSelector)
# natively and under LD_PRELOAD=libeventpoll.so with each driver in DRIVERS ("uring epoll"):
# every test must end as it does natively (ok / skipped / ...), every run must pass, and the
# preloaded runs must really go through eventpoll (EVENTPOLL_LOG counts the calls).
# The suite may reach for outside addresses, so each run is in a private network namespace
# (`unshare -n`, loopback brought up inside); where one cannot be made (not root, no user
# namespaces) the script says so and stops without running anything (exit 0, "SKIPPED").
# A test whose outcome differs is run again, alone, once on each side: a difference that
# goes away is printed as such (a timing test on a loaded 2-core machine), one that stays
# fails the run.
#   scripts/capi-asyncio-suite.sh          (JOBS=2 test processes; ~45 s a run on 2 cores)
source "$(dirname "$0")/capi-lib.sh"
build_lib
DRIVERS="${DRIVERS:-uring epoll}"
JOBS="${JOBS:-2}"
TMP="$(mktemp -d)"
chmod 755 "$TMP"
trap 'rm -rf "$TMP"' EXIT
if ! python3 -c 'import test.test_asyncio' 2>/dev/null; then
    echo "SKIPPED: this python3 has no test.test_asyncio (CPython's test suite is not installed)"
    exit 0
fi
need_netns
# run OUT [ENV...] -- ARGS...: python3 -m test in a private network namespace
run() {
    local out="$1"; shift
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    in_netns env "${envs[@]}" timeout 900 python3 -m test -v "$@" > "$out" 2>&1 || true
}
outcomes() { # "module.test (class) ... ok" lines of a verbose run, sorted (a test that
    # printed something before its outcome has no such line: the run's result counts it)
    grep -E '^test_[A-Za-z0-9_]+ \(.*\) \.\.\. (ok|skipped|FAIL|ERROR|expected failure|unexpected success)' "$1" \
        | sed -E 's/ \.\.\. (ok|skipped|FAIL|ERROR|expected failure|unexpected success).*/ ... \1/' | sort || true
}
differ() { # the tests with an outcome line on both sides that differ: "< native", "> preloaded"
    python3 - "$1" "$2" <<'PY'
import sys
def read(f):
    return dict(l.rstrip("\n").rsplit(" ... ", 1) for l in open(f) if " ... " in l)
a, b = read(sys.argv[1]), read(sys.argv[2])
for t in sorted(a.keys() & b.keys()):
    if a[t] != b[t]:
        print(f"< {t} ... {a[t]}")
        print(f"> {t} ... {b[t]}")
PY
}
modules_of() { # the test modules of differing outcome lines: "(test.test_asyncio.x.Class...)"
    sed -nE 's/^[^(]*\((test\.test_asyncio\.[a-z_0-9]+)\..*/\1/p' | sort -u
}
run "$TMP/native.txt" -- -j"$JOBS" test_asyncio
outcomes "$TMP/native.txt" > "$TMP/native.res"
native_summary="$(grep -E '^Total tests:' "$TMP/native.txt" || echo "no summary") ($(grep -E '^Result:' "$TMP/native.txt"))"
echo "native:               $native_summary"
status=0
total=0
for driver in $DRIVERS; do
    env_d=(LD_PRELOAD="$LIB" EVENTPOLL_DRIVER="$driver" EVENTPOLL_LOG="$TMP/$driver.log")
    run "$TMP/$driver.txt" "${env_d[@]}" -- -j"$JOBS" test_asyncio
    outcomes "$TMP/$driver.txt" > "$TMP/$driver.res"
    calls=$(grep -c '^eventpoll\[' "$TMP/$driver.log" 2>/dev/null || true)
    echo "LD_PRELOAD ($driver): $(grep -E '^Total tests:' "$TMP/$driver.txt" || echo "no summary") ($(grep -E '^Result:' "$TMP/$driver.txt")), ${calls:-0} eventpoll calls traced"
    ok=1
    differ "$TMP/native.res" "$TMP/$driver.res" > "$TMP/$driver.diff"
    if [ -s "$TMP/$driver.diff" ]; then
        head -20 "$TMP/$driver.diff" | sed 's/^/  /'
        mods=$(modules_of < "$TMP/$driver.diff")
        echo "  outcomes differ in: $(echo $mods); running those modules again, alone, on both sides"
        for m in $mods; do
            run "$TMP/re-native.txt" -- "$m"
            run "$TMP/re-$driver.txt" "${env_d[@]}" -- "$m"
            outcomes "$TMP/re-native.txt" > "$TMP/re-native.res"
            outcomes "$TMP/re-$driver.txt" > "$TMP/re-$driver.res"
            differ "$TMP/re-native.res" "$TMP/re-$driver.res" > "$TMP/re.diff"
            if [ ! -s "$TMP/re.diff" ] && grep -q '^Result: SUCCESS' "$TMP/re-$driver.txt"; then
                echo "  $m: same outcomes when run again (a timing difference on this machine)"
            else
                sed 's/^/    /' "$TMP/re.diff"
                echo "  $m: outcomes differ again ($driver driver)"; ok=0
            fi
        done
    fi
    if ! grep -q '^Result: SUCCESS' "$TMP/$driver.txt"; then
        result="$(grep -E '^Result:' "$TMP/$driver.txt" || echo "no result")"
        if [ $ok = 1 ] && [ -s "$TMP/$driver.diff" ]; then
            echo "  $result, but every differing module matched natively when run again"
        else
            echo "  $result"; ok=0
        fi
    fi
    [ "${calls:-0}" -gt 1000 ] || { echo "  too few eventpoll calls: not preloaded?"; ok=0; }
    [ $ok = 1 ] || status=1
    total=$((total + $(wc -l < "$TMP/$driver.res")))
done
grep -q '^Result: SUCCESS' "$TMP/native.txt" || { echo "the native run itself failed"; status=1; }
[ $status = 0 ] && echo "$total passed, 0 failed" || echo "0 passed, 1 failed"
exit $status
