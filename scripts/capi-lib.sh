# Shared by the capi-*.sh scripts: build libeventpoll (and the CLI when asked) and set
# LIB to the shared library. Source it; PROFILE=release for performance runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILE="${PROFILE:-debug}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
build_lib() {
    local flag=()
    case "$PROFILE" in
        debug) ;;
        release) flag=(--release) ;;
        *) flag=(--profile "$PROFILE") ;; # e.g. dist: release without debug info
    esac
    (cd "$ROOT" && cargo build -q "${flag[@]}" -p eventpoll-capi "$@")
    LIB="$CARGO_TARGET_DIR/$PROFILE/libeventpoll.so"
    [ -f "$LIB" ] || { echo "no $LIB" >&2; exit 2; }
    export LIB
}
