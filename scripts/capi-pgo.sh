#!/usr/bin/env bash
# libeventpoll.so built with profile-guided optimisation (PGO): an instrumented library
# (`-Cprofile-generate`) runs real servers under LD_PRELOAD on loopback, and the counts they
# leave steer the final build (`-Cprofile-use`): which branches are hot, what is inlined,
# how the code is laid out. The library's blocking wait runs through many small functions
# whose cold paths sit between the hot ones, and a server's instruction cache is what that
# costs (README, "Performance": the wait path and the instruction cache).
#   scripts/capi-pgo.sh            -> target/pgo/use/dist/libeventpoll.so (and .a)
#   PGO_SERVERS ("memcached nginx node": the training loads; each needs its Debian package,
#   installed if missing), PGO_DRIVERS ("uring epoll": each server runs with each driver, so
#   that the kernel-epoll driver's paths are not compiled as cold), PGO_PROFILE (dist),
#   PGO_DIR (target/pgo)
# The profile is made afresh from the code being built (nothing of it is committed): a
# build of other code with an old profile would only be less tuned, never wrong.
# Needs llvm-profdata of the compiler's own LLVM (rustup's llvm-tools component, added if
# missing); exits 2 without it. Every server is bounded by `timeout` and stopped.
# Training and measuring on the same servers flatters those servers: README says which
# figures come from a PGO build and how the others fare.
set -euo pipefail
export LC_ALL=C
PROFILE="${PGO_PROFILE:-dist}"
source "$(dirname "$0")/capi-lib.sh"
unset EVENTPOLL_LIB # this script builds its libraries
[ -z "${CARGO_ENCODED_RUSTFLAGS:-}" ] || {
    echo "capi-pgo: CARGO_ENCODED_RUSTFLAGS is set: it would drop the profile flags; unset it" >&2
    exit 2
}
SERVERS="${PGO_SERVERS:-memcached nginx node}"
DRIVERS="${PGO_DRIVERS:-uring epoll}"
PGO_DIR="$(realpath -m "${PGO_DIR:-$ROOT/target/pgo}")" # absolute: rustc runs in each crate's directory
HOST="$(rustc -vV | sed -n 's/^host: //p')"
TOOLS="$(rustc --print sysroot)/lib/rustlib/$HOST/bin"
if [ ! -x "$TOOLS/llvm-profdata" ]; then
    rustup component add llvm-tools >/dev/null 2>&1 || true
fi
[ -x "$TOOLS/llvm-profdata" ] || {
    echo "capi-pgo: no llvm-profdata in $TOOLS (rustup component add llvm-tools)" >&2
    exit 2
}
for s in $SERVERS; do
    case "$s" in
        memcached) need memcached memcached ;;
        nginx) need nginx nginx; need ab apache2-utils ;;
        node) need node nodejs; need ab apache2-utils ;;
        *) echo "capi-pgo: unknown training server $s" >&2; exit 2 ;;
    esac
done
RAW="$PGO_DIR/raw"
rm -rf "$RAW"
mkdir -p "$RAW"
TMP="$(mktemp -d)"
chmod 755 "$TMP" # nginx's workers (an unprivileged user) read their files under it
SPID=
trap 'stop_spid; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# build GEN_OR_USE FLAG: the library with FLAG added to the configured rustflags (a
# `--config` array merges with .cargo/config.toml's, where RUSTFLAGS would replace them;
# a RUSTFLAGS of the caller's, which replaces both, gets FLAG appended instead), in a
# target directory of its own (the flags change every crate's build).
build() {
    if [ -n "${RUSTFLAGS:-}" ]; then
        CARGO_TARGET_DIR="$PGO_DIR/$1" RUSTFLAGS="$RUSTFLAGS $2" build_lib --lib
    else
        CARGO_TARGET_DIR="$PGO_DIR/$1" build_lib --config "target.$HOST.rustflags=[\"$2\"]"
    fi
}

echo "capi-pgo: instrumented build ($PROFILE)"
build gen "-Cprofile-generate=$RAW/build"
# Only the training runs' counts are merged (instrumented build scripts write theirs under
# $RAW/build). They go to a directory every user can write (nginx's workers run as an
# unprivileged user) and are merged online into one file per binary (`%m`, with the
# runtime's file lock: a forked worker inherits its parent's file name).
TRAIN="$TMP/train"
mkdir -p "$TRAIN"
chmod 1777 "$TRAIN"
export LLVM_PROFILE_FILE="$TRAIN/train-%m.profraw"
umask 000 # the file the first process makes, every process of the server writes
HELP="$ROOT/scripts/capi_servers.py"
PY="$(command -v python3)"
# ab_load PORT PATH [-k]: 6,000 requests, 20 at a time; fails unless every one was answered.
ab_load() {
    timeout 120 ab -q ${3:-} -n 6000 -c 20 "http://127.0.0.1:$1$2" > "$TMP/ab.out"
    grep -qE '^Complete requests: +6000$' "$TMP/ab.out" && grep -qE '^Failed requests: +0$' "$TMP/ab.out" \
        && ! grep -q '^Non-2xx' "$TMP/ab.out" \
        || { echo "capi-pgo: a training load failed" >&2; cat "$TMP/ab.out" >&2; exit 1; }
}
for run in $(for d in $DRIVERS; do for s in $SERVERS; do echo "$s:$d"; done; done); do
    s=${run%%:*}
    export EVENTPOLL_DRIVER=${run#*:}
    echo "capi-pgo: training on $s ($EVENTPOLL_DRIVER driver)"
    case "$s" in
        memcached)
            PORT=$(free_port)
            timeout -k 5 120 env LD_PRELOAD="$LIB" memcached -u "$(id -un)" -l 127.0.0.1 \
                -p "$PORT" -U 0 -t 4 -m 64 > "$TMP/server.out" 2>&1 &
            SPID=$!
            wait_port "$PORT" "$SPID" memcached
            # Clients that outrun the server, then ones that pause (every wait sleeps).
            timeout 120 "$PY" "$HELP" memcached "$PORT" 4 3000 > /dev/null
            pids=()
            for _ in 1 2 3 4; do
                timeout 120 "$PY" "$HELP" pausing "$PORT" 500 0.0005 & pids+=($!)
            done
            wait "${pids[@]}" ;;
        nginx)
            PORT=$(free_port)
            nginx_conf "$TMP/nginx" "$PORT"
            timeout -k 5 120 env LD_PRELOAD="$LIB" "$(command -v nginx || echo /usr/sbin/nginx)" \
                -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" > "$TMP/server.out" 2>&1 &
            SPID=$!
            wait_port "$PORT" "$SPID" nginx
            ab_load "$PORT" /file.bin
            ab_load "$PORT" /file.bin -k ;;
        node)
            rm -f "$TMP/node.port"
            timeout -k 5 120 env LD_PRELOAD="$LIB" LIFETIME_MS=110000 node \
                "$ROOT/crates/eventpoll-capi/tests/node/http_server.js" "$TMP/node.port" \
                > "$TMP/server.out" 2>&1 &
            SPID=$!
            for _ in $(seq 100); do [ -f "$TMP/node.port" ] && break; sleep 0.1; done
            PORT=$(cat "$TMP/node.port")
            wait_port "$PORT" "$SPID" node
            ab_load "$PORT" /
            ab_load "$PORT" / -k ;;
    esac
    # A clean exit writes the counts (SIGTERM: each server's own orderly shutdown).
    stop_spid
    grep -q "LLVM Profile Error" "$TMP/server.out" "$TMP"/nginx/*.log 2>/dev/null \
        && { echo "capi-pgo: $s could not write its profile:" >&2; cat "$TMP/server.out" "$TMP"/nginx/*.log >&2 || true; exit 1; }
done
unset LLVM_PROFILE_FILE EVENTPOLL_DRIVER
umask 022
shopt -s nullglob
raws=("$TRAIN"/train-*.profraw)
[ ${#raws[@]} -gt 0 ] || { echo "capi-pgo: the training left no profile" >&2; exit 1; }
"$TOOLS/llvm-profdata" merge -o "$TMP/merged.profdata" "${raws[@]}"
# Named by its content: cargo rebuilds when the flag's path changes, not the file.
rm -f "$PGO_DIR"/libeventpoll-*.profdata
PROFDATA="$PGO_DIR/libeventpoll-$(sha256sum "$TMP/merged.profdata" | cut -c1-16).profdata"
cp "$TMP/merged.profdata" "$PROFDATA"
echo "capi-pgo: profile merged ($(du -h "$PROFDATA" | cut -f1)); optimised build"
build use "-Cprofile-use=$PROFDATA"
echo "capi-pgo: $LIB"
