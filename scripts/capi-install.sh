#!/usr/bin/env bash
# Install libeventpoll (release build): PREFIX/lib/libeventpoll.{so,a},
# PREFIX/include/eventpoll.h, PREFIX/lib/pkgconfig/eventpoll.pc.
#   scripts/capi-install.sh [PREFIX]      (default /usr/local)
PROFILE=release
source "$(dirname "$0")/capi-lib.sh"
PREFIX="${1:-/usr/local}"
build_lib
CRATE="$ROOT/crates/eventpoll-capi"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$CRATE/Cargo.toml" | head -1)
install -d "$PREFIX/lib/pkgconfig" "$PREFIX/include"
install -m 755 "$LIB" "$PREFIX/lib/libeventpoll.so"
install -m 644 "$CARGO_TARGET_DIR/release/libeventpoll.a" "$PREFIX/lib/libeventpoll.a"
install -m 644 "$CRATE/include/eventpoll.h" "$PREFIX/include/eventpoll.h"
sed -e "s|@PREFIX@|$PREFIX|" -e "s|@VERSION@|$VERSION|" "$CRATE/eventpoll.pc.in" \
    > "$PREFIX/lib/pkgconfig/eventpoll.pc"
echo "installed libeventpoll $VERSION in $PREFIX"
