#!/usr/bin/env bash
# What README's "Publishing" section promises, checked:
#   1. `cargo publish --workspace --dry-run`: every publishable crate is packaged and each
#      package is built from its .crate file alone, against the other packages of this run
#      (Cargo >= 1.90 overlays them on crates.io), so a missing version, file or dependency
#      fails here. Nothing is uploaded.
#   2. rust-version is true: the crates build with the toolchain their manifests name
#      (1.86 for the workspace, 1.88 for eventpoll-bench and eventpoll-cli), installed with
#      rustup. A toolchain that cannot be installed here is reported as SKIPPED.
#   3. The engine's examples run and check their own results.
#   scripts/publish-check.sh [--no-msrv]
set -euo pipefail
cd "$(dirname "$0")/.."
msrv=1
if [[ "${1:-}" == "--no-msrv" ]]; then msrv=0; fi

echo "-- cargo publish --workspace --dry-run"
# Cargo extracts the packages of this run into an overlay registry under
# $CARGO_HOME/registry/src/-<hash>/ and does not extract them again while their version is
# unchanged: a stale copy from an earlier run (same version, older sources) would be what
# the dependents are verified against. Remove those copies of this workspace's packages.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
for d in "$cargo_home"/registry/src/-*/eventpoll*-[0-9]*; do
    [[ -d "$d" ]] && rm -rf "$d"
done
dirty=()
if [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then dirty=(--allow-dirty); fi
log=target/publish-check.log
mkdir -p target
status=0
cargo publish --workspace --dry-run "${dirty[@]}" >"$log" 2>&1 || status=$?
grep -E '^ *(Packaging|Packaged|Verifying)|^(warning|error)' "$log" \
    | grep -v 'aborting upload due to dry run' || true
if [[ $status -ne 0 ]]; then tail -40 "$log"; exit "$status"; fi

echo "-- examples of the engine crate"
for example in echo_server custom_pollable; do
    timeout 120 cargo run -q -p eventpoll --example "$example"
done
timeout 120 cargo run -q -p eventpoll --features sim --example deterministic

if [[ $msrv -eq 1 ]]; then
    # The manifests' rust-version values, read back so that this check follows them.
    ws=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
    cli=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' crates/eventpoll-cli/Cargo.toml)
    bench=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' crates/eventpoll-bench/Cargo.toml)
    [[ "$cli" == "$bench" ]] || { echo "bench and cli name different rust-versions"; exit 1; }
    check_with() { # toolchain, cargo check arguments...
        local tc=$1; shift
        if ! rustup toolchain list | grep -q "^$tc" \
            && ! timeout 300 rustup toolchain install "$tc" --profile minimal >/dev/null 2>&1; then
            echo "SKIPPED: rust $tc cannot be installed on this machine"
            return 0
        fi
        echo "-- rust $tc: cargo check $*"
        local status=0
        cargo +"$tc" check --target-dir target/msrv "$@" >"$log" 2>&1 || status=$?
        grep -E '^(warning|error)|requires rustc|Finished' "$log" || true
        return "$status"
    }
    check_with "$ws" -p eventpoll -p eventpoll-host -p eventpoll-capi -p eventpoll-conform \
        -p eventpoll-stress --lib --bins --examples
    check_with "$cli" -p eventpoll-bench -p eventpoll-cli --lib --bins
fi
echo "publish-check: ok"
