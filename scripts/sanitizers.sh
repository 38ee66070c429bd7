#!/usr/bin/env bash
# Run the threaded tests under ThreadSanitizer and AddressSanitizer (nightly, -Zbuild-std so
# that std is instrumented too). Installs what it needs (the nightly rust-src component).
#
#   scripts/sanitizers.sh               both sanitizers
#   scripts/sanitizers.sh thread        one of: thread, address
#
# Test sets: the engine's threaded unit tests (epoll::tests, wait_queue::tests) and the
# eventpoll-stress crate's tests (library, the kernel-vs-engine threaded comparisons and the
# 10 s stress run). Target dirs: target/san/<sanitizer> (override: SAN_TARGET_ROOT).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLCHAIN=nightly
TARGET=x86_64-unknown-linux-gnu
ROOT="${SAN_TARGET_ROOT:-$PWD/target/san}"
SANITIZERS=("$@")
if [[ $# -eq 0 ]]; then SANITIZERS=(thread address); fi

if ! rustup toolchain list | grep -q "^$TOOLCHAIN"; then
    rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
if ! rustup component list --toolchain "$TOOLCHAIN" --installed | grep -q '^rust-src'; then
    rustup component add rust-src --toolchain "$TOOLCHAIN"
fi

status=0
for san in "${SANITIZERS[@]}"; do
    case "$san" in
        thread) export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" ;;
        address) export ASAN_OPTIONS="detect_leaks=1 detect_stack_use_after_return=1 ${ASAN_OPTIONS:-}" ;;
        *) echo "unknown sanitizer $san (thread|address)"; exit 2 ;;
    esac
    export RUSTFLAGS="-Zsanitizer=$san -Cdebug-assertions=on"
    export RUSTDOCFLAGS="-Zsanitizer=$san"
    export CARGO_TARGET_DIR="$ROOT/$san"
    cargo_test=(cargo "+$TOOLCHAIN" test -Zbuild-std --target "$TARGET")
    echo "=== $san sanitizer: eventpoll threaded unit tests ==="
    start=$SECONDS
    if ! "${cargo_test[@]}" -p eventpoll --lib -- epoll::tests wait_queue::tests; then
        status=1
    fi
    echo "=== $san sanitizer: eventpoll-stress tests (threaded comparisons, 10 s stress) ==="
    if ! "${cargo_test[@]}" -p eventpoll-stress --lib --tests -- --nocapture --test-threads=1; then
        status=1
    fi
    echo "=== $san sanitizer: done in $((SECONDS - start)) s, status so far $status ==="
done
exit $status
