#!/usr/bin/env bash
# tokio's own integration tests, from its crate package (crates.io, via `cargo fetch` on a
# tiny manifest; the package ships its tests/ folder), natively and under
# LD_PRELOAD=libeventpoll.so with each driver in DRIVERS ("uring epoll"): the test files
# that drive the I/O reactor, signals and processes (TESTS, a regular expression over
# their names: TCP, UDP, Unix sockets, the I/O driver and AsyncFd, signals, child
# processes, the runtimes), built once with `--features full,test-util`, each binary run
# directly (so only the tests themselves are preloaded), every run in its own network
# namespace. Exit 0 iff every test ends the same way as natively and the preloaded runs
# really go through eventpoll (EVENTPOLL_LOG counts the calls).
#   scripts/capi-tokio-suite.sh [TOKIO_VERSION_REQ]   (default 1: the newest tokio 1.x)
# The build takes ~5 minutes on 2 cores; the runs ~15 seconds each.
export LC_ALL=C
PROFILE="${PROFILE:-release}"
source "$(dirname "$0")/capi-lib.sh"
REQ="${1:-1}"
DRIVERS="${DRIVERS:-uring epoll}"
TESTS="${TESTS:-^(net_|tcp_|udp|uds_|io_driver|io_async_fd|process_|signal_|rt_basic|rt_threaded|rt_common|io_split|sync_notify|time_sleep|task_blocking)}"
command -v ip >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
}
need_netns
build_lib
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
crate_package tokio "$REQ" "$TMP/tokio"
VERSION=$CRATE_VERSION
[ -d "$TMP/tokio/tests" ] || { echo "tokio $VERSION ships no tests/"; exit 1; }
mapfile -t names < <(ls "$TMP/tokio/tests" | grep -E "$TESTS" | sed 's/\.rs$//')
args=()
for n in "${names[@]}"; do args+=(--test "$n"); done
echo "tokio $VERSION: ${#names[@]} test files of $(ls "$TMP/tokio/tests" | wc -l) (TESTS=$TESTS)"
export CARGO_TARGET_DIR="$TMP/target"
# A file that does not build with these features is left out, said loudly.
while true; do
    if (cd "$TMP/tokio" && timeout 1800 cargo test --release --features full,test-util --no-run \
        "${args[@]}" > "$TMP/build.txt" 2>&1); then
        break
    fi
    bad=$(sed -nE 's/^error: could not compile `tokio` \(test "([a-z_0-9]+)"\).*/\1/p' "$TMP/build.txt" | head -1)
    [ -n "$bad" ] || { tail -20 "$TMP/build.txt"; echo "tokio's tests did not build"; exit 1; }
    echo "left out: $bad (does not build with --features full,test-util)"
    new=()
    for ((i = 0; i < ${#args[@]}; i += 2)); do
        [ "${args[i+1]}" = "$bad" ] || new+=(--test "${args[i+1]}")
    done
    args=("${new[@]}")
done
mapfile -t bins < <(grep -oE '\(target/release/deps/[^)]+\)|\('"$TMP"'/target/release/deps/[^)]+\)' "$TMP/build.txt" \
    | tr -d '()' | sed "s#^target/#$TMP/target/#")
echo "${#bins[@]} test binaries"
# Whatever tokio's tests put in the temporary directory goes to this run's own, removed
# with it.
mkdir -p "$TMP/tmp"
export TMPDIR="$TMP/tmp"
run() { # $1: native|DRIVER; per-test outcomes in $TMP/$1.res
    local mode="$1" envs=()
    [ "$mode" = native ] || envs=(LD_PRELOAD="$LIB" EVENTPOLL_DRIVER="$mode" EVENTPOLL_LOG="$TMP/$mode.log")
    : > "$TMP/$mode.txt"
    for b in "${bins[@]}"; do
        echo "## $(basename "$b")" >> "$TMP/$mode.txt"
        (cd "$TMP/tokio" && in_netns env "${envs[@]}" timeout -k 10 300 "$b" --test-threads 2 \
            >> "$TMP/$mode.txt" 2>&1) \
            || echo "## exit $?" >> "$TMP/$mode.txt"
    done
    awk '/^## / && !/^## exit/ {bin = $2} /^test .* \.\.\. / {print bin ": " $0}' "$TMP/$mode.txt" \
        | sed -E 's/ \.\.\. (ok|FAILED|ignored).*/ ... \1/' | sort > "$TMP/$mode.res"
    echo "$mode: $(grep -c ' ok$' "$TMP/$mode.res") ok, $(grep -c ' FAILED$' "$TMP/$mode.res") failed, $(grep -c ' ignored$' "$TMP/$mode.res") ignored, $(grep -c '^## exit' "$TMP/$mode.txt") binaries exited non-zero"
}
# One test of one binary, alone (`--exact`): ok, FAILED, ignored or missing.
outcome_alone() { # $1: native|DRIVER, $2: binary's name, $3: test name
    local mode="$1" b envs=() out
    [ "$mode" = native ] || envs=(LD_PRELOAD="$LIB" EVENTPOLL_DRIVER="$mode")
    for b in "${bins[@]}"; do [ "$(basename "$b")" = "$2" ] && break; done
    out=$(cd "$TMP/tokio" && in_netns env "${envs[@]}" timeout -k 10 120 "$b" --exact "$3" --test-threads 1 2>&1)
    echo "$out" | awk -v p="test $3 ... " 'index($0, p) == 1 {print substr($0, length(p) + 1); exit}' \
        | grep -o -E '^(ok|FAILED|ignored)' || echo missing
}
status=0
run native
n=$(wc -l < "$TMP/native.res")
[ "$n" -gt 100 ] || { echo "too few tests ran natively ($n)"; status=1; }
same=0
total=0
for driver in $DRIVERS; do
    total=$((total + 1))
    run "$driver"
    calls=$(grep -c '^eventpoll\[' "$TMP/$driver.log" 2>/dev/null || true)
    echo "  $driver: ${calls:-0} eventpoll calls traced"
    if [ "${calls:-0}" -lt 1000 ]; then
        echo "  too few eventpoll calls: not preloaded?"; status=1
    elif diff "$TMP/native.res" "$TMP/$driver.res" > "$TMP/diff"; then
        same=$((same + 1))
        echo "  LD_PRELOAD ($driver): same per-test results as native ($n tests)"
    else
        echo "  LD_PRELOAD ($driver): per-test results differ (< native, > preloaded):"
        grep '^[<>]' "$TMP/diff" | head -20 | sed 's/^/   /'
        # A test that differs is run again alone, natively and preloaded (twice at most):
        # timing tests can end otherwise on a loaded machine either way. It counts as the
        # same only when the two alone end alike; every rerun is reported.
        left=0
        while read -r bin name; do
            again_same=0
            for try in 1 2; do
                a=$(outcome_alone native "$bin" "$name")
                b=$(outcome_alone "$driver" "$bin" "$name")
                if [ "$a" = "$b" ]; then
                    echo "   $bin: $name: $a natively and $b preloaded when run again alone (try $try): counted as the same"
                    again_same=1
                    break
                fi
                echo "   $bin: $name: $a natively, $b preloaded when run again alone (try $try)"
            done
            [ "$again_same" = 1 ] || left=$((left + 1))
        done < <(grep '^[<>]' "$TMP/diff" | sed -E 's/^[<>] ([^:]+): test (.*) \.\.\. [A-Za-z]+$/\1 \2/' | sort -u)
        if [ "$left" -eq 0 ]; then
            same=$((same + 1))
            echo "  LD_PRELOAD ($driver): every differing test ends alike when run again alone"
        else
            echo "  LD_PRELOAD ($driver): $left test(s) still differ when run again alone"
            status=1
        fi
    fi
done
echo "$same passed, $((total - same)) failed"
exit $status
