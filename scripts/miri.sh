#!/usr/bin/env bash
# The engine's unit tests under Miri (nightly), which checks every unsafe block they reach
# against Rust's aliasing rules (Stacked Borrows) and finds use-after-free, data races
# between threads and leaks. The engine borrows where the kernel counts nothing — an item's
# queue entry names its instance and an item its description by pointer — and Miri is what
# checks those borrows. Tests that only repeat a path thousands of times (the nesting limits'
# 1,000 paths) are skipped: under Miri they take tens of minutes and add no new unsafe path.
#
#   scripts/miri.sh [extra test filter args]
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
# Its own target directory: Miri's builds never mix with the normal ones.
export CARGO_TARGET_DIR="${MIRI_TARGET_DIR:-target/miri}"
# Isolation off: the tests read the monotonic clock (timeouts).
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
SKIP=(--skip wakeup_path_limits --skip path_limit --skip many_ --skip stress)
for filter in "epoll::" "check::" "table::" "objects::pipe" "wait_queue"; do
    echo "== cargo +nightly miri test -p eventpoll --lib $filter ${SKIP[*]} $*"
    timeout 1500 cargo +nightly miri test -q -p eventpoll --lib "$filter" -- "${SKIP[@]}" "$@"
done
