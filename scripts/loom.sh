#!/usr/bin/env bash
# Run the loom models of the engine's wait/wake protocol (crates/eventpoll/src/loom_models.rs).
#   scripts/loom.sh                 all models, preemption bound 3 (default of the models)
#   LOOM_MAX_PREEMPTIONS=2 scripts/loom.sh nested    a subset, smaller bound
#   scripts/loom.sh --mutants       also check that the models catch 13 re-introduced races
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_LOOM:-$PWD/target/loom}"
export RUSTFLAGS="--cfg loom"
mutants=0
if [[ "${1:-}" == "--mutants" ]]; then mutants=1; shift; fi
filter="loom_models${1:+_$1}"
cargo test -p eventpoll --lib --release "$filter" -- --test-threads=1 --nocapture 2>&1 \
    | grep -E '^test |loom model|panicked|deadlock|test result|error'
status=${PIPESTATUS[0]}
if [[ $status -ne 0 ]]; then exit "$status"; fi
if [[ $mutants -eq 1 ]]; then
    python3 scripts/loom_mutants.py
fi
