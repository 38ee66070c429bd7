#!/usr/bin/env bash
# The engine's unit tests under Miri (nightly), which checks every unsafe block they reach
# against Rust's aliasing rules (Stacked Borrows) and finds use-after-free, data races
# between threads and leaks. The engine borrows where the kernel counts nothing — an item's
# queue entry names its instance and an item its description by pointer — and Miri is what
# checks those borrows. Tests that only repeat a path thousands of times (the nesting limits'
# 1,000 paths) are skipped: under Miri they take tens of minutes and add no new unsafe path.
#
#   scripts/miri.sh [extra test filter args]   (MIRI_TARGET_DIR: target/miri, a directory per group)
#
# Needs the nightly toolchain with the miri component (installed here when missing: rustup
# component add); prints SKIPPED and exits 0 when neither can be had, as the sanitizers do.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "SKIPPED: no nightly toolchain (Miri needs one)"
    exit 0
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add miri --toolchain nightly >/dev/null 2>&1 || true
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "SKIPPED: the nightly toolchain has no miri component and it could not be installed"
    exit 0
fi
# Isolation off: the tests read the monotonic clock (timeouts).
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
SKIP=(--skip wakeup_path_limits --skip path_limit --skip many_ --skip stress)
# Two groups of about equal length (on the CI machine: the pipe's tests ~180 s, the rest
# ~170 s; building for Miri ~15 s), run side by side where there are two cores or more
# (Miri interprets a test binary on one core), each in its own target directory under
# MIRI_TARGET_DIR: neither waits for the other's build lock, and Miri's builds never mix
# with the normal ones.
GROUPS_=("epoll:: check:: table:: wait_queue" "objects::pipe")
TARGET_ROOT="${MIRI_TARGET_DIR:-target/miri}"
run_group() { # INDEX FILTERS...
    local i="$1"
    shift
    echo "== cargo +nightly miri test -p eventpoll --lib -- $* ${SKIP[*]} ${EXTRA[*]}"
    CARGO_TARGET_DIR="$TARGET_ROOT/$i" timeout 1500 \
        cargo +nightly miri test -q -p eventpoll --lib -- "$@" "${SKIP[@]}" "${EXTRA[@]}"
}
EXTRA=("$@")
if [ "$(nproc)" -ge 2 ]; then
    out="$(mktemp -d)"
    trap 'rm -rf "$out"' EXIT
    pids=()
    for i in "${!GROUPS_[@]}"; do
        # shellcheck disable=SC2086 # the filters are words
        run_group "$i" ${GROUPS_[$i]} >"$out/$i" 2>&1 &
        pids+=($!)
    done
    status=0
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || status=1
        cat "$out/$i"
    done
    exit $status
fi
for i in "${!GROUPS_[@]}"; do
    # shellcheck disable=SC2086
    run_group "$i" ${GROUPS_[$i]}
done
