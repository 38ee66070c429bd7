#!/usr/bin/env bash
# uvloop (PyPI wheel: it bundles libuv, which submits epoll_ctl through io_uring) and
# uvloop's own test suite (from its source package, the same version) natively and under
# LD_PRELOAD=libeventpoll.so with each driver (uring; epoll, the default; poll), all in
# the same run: every test must end the same way as natively. Tests run one by one under
# crates/eventpoll-capi/tests/py/pertest.py, so a test that hangs is recorded as `timeout`
# (PER_TEST seconds, default 15; the slowest native test takes about 5 s) and the rest
# still run; a run still going after BUDGET seconds (default 240) records the tests it did
# not reach as `not-run`. Each run is split into SHARDS (default 3) parts run at once, each
# part in its own network namespace (loopback only: some tests name outside hosts).
# Not run: tests/test_sourcecode.py (flake8 and mypy over uvloop's source; no event loop).
# Exit 0 iff every driver's per-test outcomes equal the native ones.
#   scripts/capi-uvloop.sh [UVLOOP_VERSION]
export LC_ALL=C
PROFILE="${PROFILE:-release}"
source "$(dirname "$0")/capi-lib.sh"
VERSION="${1:-}"
PER_TEST="${PER_TEST:-15}"
BUDGET="${BUDGET:-240}"
SHARDS="${SHARDS:-3}"
PERTEST="$ROOT/crates/eventpoll-capi/tests/py/pertest.py"
command -v ip >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
}
python3 -m venv --help >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
}
build_lib
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
python3 -m venv "$TMP/venv"
PY="$TMP/venv/bin/python"
# The wheel (never built here: --only-binary) and the suite's own test dependencies that
# touch event loops (aiohttp, psutil, pyOpenSSL; flake8 and mypy only serve test_sourcecode).
timeout 300 "$PY" -m pip install -q --disable-pip-version-check --only-binary uvloop \
    "uvloop${VERSION:+==$VERSION}" aiohttp psutil pyOpenSSL
VERSION=$("$PY" -c 'import uvloop; print(uvloop.__version__)')
LIBUV=$("$PY" -c 'import uvloop.loop as l; v = l.libuv_get_version(); print(f"{v >> 16}.{v >> 8 & 255}.{v & 255}")')
# The source package of the same version, for its tests/ (never committed: it lives in $TMP).
timeout 300 "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary uvloop \
    -d "$TMP/sdist" "uvloop==$VERSION"
tar -xzf "$TMP"/sdist/uvloop-*.tar.gz -C "$TMP/sdist"
mkdir "$TMP/suite"
cp -r "$TMP/sdist/uvloop-$VERSION/tests" "$TMP/suite/"
rm "$TMP/suite/tests/test_sourcecode.py"
(cd "$TMP/suite" && "$PY" "$PERTEST" list tests) > "$TMP/ids"
n=$(wc -l < "$TMP/ids")
echo "uvloop $VERSION (libuv $LIBUV): $n tests (test_sourcecode not run: it lints uvloop's source)"
[ "$n" -gt 100 ] || { echo "too few tests found"; exit 1; }
mkdir "$TMP/shards" "$TMP/out"
# uvloop's tests leave unix sockets in the temporary directory (60 a run, named by tempfile
# and by UUID, natively as under the preload): theirs is this run's own, removed with it.
mkdir -p "$TMP/tmp"
export TMPDIR="$TMP/tmp"
split -n "r/$SHARDS" -d "$TMP/ids" "$TMP/shards/"

run() { # $1: native|uring|epoll|poll; all its shards at once, each in its own netns
    local mode=$1 preload=() pids=() shard
    [ "$mode" = native ] || preload=(--preload "$LIB")
    for shard in "$TMP"/shards/*; do
        EVENTPOLL_DRIVER=$mode timeout $((BUDGET + 120)) unshare -n sh -c 'ip link set lo up && exec "$@"' sh \
            python3 "$PERTEST" drive --python "$PY" --cwd "$TMP/suite" --ids "$shard" \
            --out "$TMP/out/$mode.${shard##*/}.res" --log "$TMP/$mode.log" --per-test "$PER_TEST" \
            --budget "$BUDGET" "${preload[@]}" > "$TMP/out/$mode.${shard##*/}.out" 2>&1 &
        pids+=($!)
    done
    local status=0
    for p in "${pids[@]}"; do wait "$p" || status=1; done
    cat "$TMP/out/$mode".*.res | sort > "$TMP/$mode.res"
    cat "$TMP/out/$mode".*.out
    return $status
}
start=$(date +%s)
status=0
for mode in native uring epoll poll; do
    run "$mode" > "$TMP/$mode.drive" 2>&1 &
    eval "pid_$mode=$!"
done
for mode in native uring epoll poll; do
    eval "wait \$pid_$mode" || { echo "$mode: the driver failed"; cat "$TMP/$mode.drive"; status=1; }
done
echo "4 runs in $(( $(date +%s) - start )) s"

# Is the preloaded loop really on eventpoll? A short traced run of one timer test.
(cd "$TMP/suite" && EVENTPOLL_LOG="$TMP/trace.log" LD_PRELOAD="$LIB" timeout 60 \
    "$PY" -m unittest -q tests.test_base.TestBaseUV.test_call_later_1 >/dev/null 2>&1) || true
calls=$(grep -c '^eventpoll\[' "$TMP/trace.log" 2>/dev/null || true)
echo "traced check run: ${calls:-0} eventpoll calls"
[ "${calls:-0}" -gt 0 ] || { echo "no eventpoll calls traced: not preloaded?"; status=1; }

summary() { awk '{print $2}' "$1" | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}' | sed 's/, $//'; }
echo "native: $(summary "$TMP/native.res")"
grep -v -E ' (ok|skipped)$' "$TMP/native.res" | sed 's/^/  native: /' || true
# A test whose outcome differs between native and a preloaded run is first run again
# natively, alone (the four runs above go at once, 12 test processes on this machine's
# cores, and a native test can time out under that load as well as a preloaded one): the
# native outcome alone is the one a preloaded run must then give.
for driver in uring epoll poll; do join "$TMP/native.res" "$TMP/$driver.res" | awk '$2 != $3 {print $1}'; done \
    | sort -u > "$TMP/native.again"
if [ -s "$TMP/native.again" ]; then
    timeout $((BUDGET + 120)) unshare -n sh -c 'ip link set lo up && exec "$@"' sh \
        python3 "$PERTEST" drive --python "$PY" --cwd "$TMP/suite" --ids "$TMP/native.again" \
        --out "$TMP/native.alone.res" --log "$TMP/native.alone.log" --per-test "$PER_TEST" \
        --budget "$BUDGET" > /dev/null 2>&1 || true
    sort "$TMP/native.alone.res" > "$TMP/native.alone.sorted"
    join "$TMP/native.res" "$TMP/native.alone.sorted" | awk '$2 != $3 {print "  native: " $1 " " $2 " -> " $3 " when run again alone: the native outcome from here on"}'
    # The native outcomes with the ones run again alone in their place.
    join -a 1 "$TMP/native.res" "$TMP/native.alone.sorted" | awk '{print $1, (NF > 2 ? $3 : $2)}' > "$TMP/native.ref"
else
    cp "$TMP/native.res" "$TMP/native.ref"
fi
same=0
for driver in uring epoll poll; do
    echo "LD_PRELOAD ($driver): $(summary "$TMP/$driver.res")"
    if [ "$(wc -l < "$TMP/$driver.res")" != "$n" ]; then
        echo "  $driver: $(wc -l < "$TMP/$driver.res") outcomes for $n tests"; status=1
    fi
    if diff "$TMP/native.res" "$TMP/$driver.res" > "$TMP/$driver.diff"; then
        same=$((same + 1))
    else
        # One line per test that differs: native outcome -> preloaded outcome.
        join "$TMP/native.res" "$TMP/$driver.res" | awk -v d="$driver" '$2 != $3 {print "  " d ": " $1 " " $2 " -> " $3}'
        echo "  $driver: $(join "$TMP/native.res" "$TMP/$driver.res" | awk '$2 != $3' | wc -l) of $n tests differ"
        # The four runs above go at once, 12 test processes on this machine's cores: a test
        # that differs is run again alone (twice at most) before it counts. One that then
        # ends as natively is reported as such, never hidden.
        join "$TMP/native.res" "$TMP/native.ref" | join - "$TMP/$driver.res" \
            | awk -v d="$driver" '$2 != $4 && $3 == $4 {print "  " d ": " $1 " ends as native does alone: counted as the same"}'
        join "$TMP/native.ref" "$TMP/$driver.res" | awk '$2 != $3 {print $1}' > "$TMP/$driver.again"
        join "$TMP/native.ref" "$TMP/$driver.res" | awk '$2 != $3 {print $1, $2}' > "$TMP/$driver.want"
        left=$(wc -l < "$TMP/$driver.again")
        for try in 1 2; do
            [ "$left" -gt 0 ] || break
            EVENTPOLL_DRIVER=$driver timeout $((BUDGET + 120)) unshare -n sh -c 'ip link set lo up && exec "$@"' sh \
                python3 "$PERTEST" drive --python "$PY" --cwd "$TMP/suite" --ids "$TMP/$driver.again" \
                --out "$TMP/$driver.rerun.res" --log "$TMP/$driver.rerun.log" --per-test "$PER_TEST" \
                --budget "$BUDGET" --preload "$LIB" > /dev/null 2>&1 || true
            sort "$TMP/$driver.rerun.res" > "$TMP/$driver.rerun.sorted"
            join "$TMP/$driver.want" "$TMP/$driver.rerun.sorted" | awk -v d="$driver" -v t="$try" \
                '$2 == $3 {print "  " d ": " $1 " ends as natively when run again alone (try " t "): counted as the same"}'
            join "$TMP/$driver.want" "$TMP/$driver.rerun.sorted" | awk '$2 != $3 {print $1}' > "$TMP/$driver.again"
            join "$TMP/$driver.want" "$TMP/$driver.rerun.sorted" | awk '$2 != $3 {print $1, $2}' > "$TMP/$driver.want2"
            mv "$TMP/$driver.want2" "$TMP/$driver.want"
            left=$(wc -l < "$TMP/$driver.again")
        done
        if [ "$left" -eq 0 ]; then
            same=$((same + 1))
            continue
        fi
        echo "  $driver: $left test(s) still differ when run again alone"
        status=1
        # The first tracebacks of the preloaded failures, for the reader.
        grep -m 3 -A 12 -E '^(ERROR|FAIL) ' "$TMP/$driver.log" | sed 's/^/    /' || true
    fi
done
echo "$same passed, $((3 - same)) failed"
exit $status
