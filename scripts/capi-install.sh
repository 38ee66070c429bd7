#!/usr/bin/env bash
# Install libeventpoll: PREFIX/lib/libeventpoll.{so,a}, PREFIX/include/eventpoll.h,
# PREFIX/lib/pkgconfig/eventpoll.pc.
#   scripts/capi-install.sh [PREFIX]      (default /usr/local)
# Built with the `dist` profile (release, without debug info; EVENTPOLL_INSTALL_PROFILE
# chooses another, e.g. debug); EVENTPOLL_PGO=1 installs the library of scripts/capi-pgo.sh
# instead (the dist profile with profile-guided optimisation, trained on memcached, nginx
# and Node.js under the preload on loopback: those servers are installed if missing, and
# it takes about a minute more). The library's SONAME is libeventpoll.so, and the
# pkg-config file puts PREFIX/lib in the program's run path (-Wl,-rpath), so a program built
# with `pkg-config --libs eventpoll` finds the library without LD_LIBRARY_PATH or ldconfig.
PROFILE="${EVENTPOLL_INSTALL_PROFILE:-dist}"
source "$(dirname "$0")/capi-lib.sh"
PREFIX="${1:-/usr/local}"
case "$PREFIX" in
    /*) ;;
    *) PREFIX="$(pwd)/$PREFIX" ;; # the run path must be absolute
esac
if [ "${EVENTPOLL_PGO:-0}" = 1 ]; then
    PGO_PROFILE="$PROFILE" "$ROOT/scripts/capi-pgo.sh"
    LIB="${PGO_DIR:-$ROOT/target/pgo}/use/$PROFILE/libeventpoll.so"
else
    build_lib
fi
CRATE="$ROOT/crates/eventpoll-capi"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$CRATE/Cargo.toml" | head -1)
install -d "$PREFIX/lib/pkgconfig" "$PREFIX/include"
install -m 755 "$LIB" "$PREFIX/lib/libeventpoll.so"
install -m 644 "$(dirname "$LIB")/libeventpoll.a" "$PREFIX/lib/libeventpoll.a"
install -m 644 "$CRATE/include/eventpoll.h" "$PREFIX/include/eventpoll.h"
sed -e "s|@PREFIX@|$PREFIX|" -e "s|@VERSION@|$VERSION|" "$CRATE/eventpoll.pc.in" \
    > "$PREFIX/lib/pkgconfig/eventpoll.pc"
echo "installed libeventpoll $VERSION in $PREFIX ($(du -h "$PREFIX/lib/libeventpoll.so" | cut -f1) libeventpoll.so)"
