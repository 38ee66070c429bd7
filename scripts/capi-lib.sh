# Shared by the capi-*.sh scripts: build libeventpoll (and the CLI when asked) and set
# LIB to the shared library (EVENTPOLL_LIB=/path/to/libeventpoll.so: that one, not built,
# for A/B comparisons of scripts that build nothing else); start loopback servers
# (free_port, wait_port, nginx_conf).
# Source it; PROFILE=release for performance runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILE="${PROFILE:-debug}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
build_lib() {
    if [ -n "${EVENTPOLL_LIB:-}" ] && [ $# -eq 0 ]; then # a library built before
        LIB="$EVENTPOLL_LIB"
        [ -f "$LIB" ] || { echo "no $LIB" >&2; exit 2; }
        export LIB
        return 0
    fi
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

# need CMD PACKAGE: install Debian's PACKAGE unless CMD is on the PATH already.
need() {
    command -v "$1" >/dev/null || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    }
}

# stop_spid: SIGTERM to the server started last, $SPID (its bounding `timeout`, which
# passes the signal on), and wait for it; nothing if none runs.
stop_spid() {
    [ -n "${SPID:-}" ] || return 0
    kill -TERM "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=
}

# Loopback servers (capi-servers.sh, capi-check-real.sh). SERVER_PYTHON: the Python to
# use (python3).
free_port() { # a port the kernel chose, free when asked
    "${SERVER_PYTHON:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_port PORT [PID] [NAME]: up to 10 s for a connection to PORT to succeed; gives up at
# once when PID (if given) is gone; says "NAME did not start" (if given) when it fails.
wait_port() {
    for _ in $(seq 100); do
        "${SERVER_PYTHON:-python3}" -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null && return 0
        [ -z "${2:-}" ] || kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    [ -z "${3:-}" ] || echo "$3 did not start"
    return 1
}
# nginx_conf DIR PORT [EVENTS]: DIR/nginx.conf for 2 workers in the foreground serving
# DIR/www (with file.bin, 20,000 random bytes) on 127.0.0.1:PORT, everything kept in DIR;
# EVENTS goes first in the events block (e.g. "accept_mutex off; ").
nginx_conf() {
    mkdir -p "$1/www"
    [ -f "$1/www/file.bin" ] || head -c 20000 /dev/urandom > "$1/www/file.bin"
    chmod -R a+rX "$1"
    cat > "$1/nginx.conf" <<EOF
worker_processes 2;
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log;
events { ${3:-}worker_connections 512; }
http {
    access_log off;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    server {
        listen 127.0.0.1:$2;
        root $1/www;
    }
}
EOF
}

# Suites that may reach for outside addresses run in a private network namespace.
# need_netns: exit 0 saying SKIPPED where one cannot be made (not root, no user namespaces).
need_netns() {
    unshare -n true 2>/dev/null && return 0
    echo "SKIPPED: no private network namespace here (unshare -n needs root or user namespaces)"
    exit 0
}
# in_netns CMD...: CMD in a new network namespace with loopback up.
in_netns() {
    unshare -n sh -c 'ip link set lo up 2>/dev/null; exec "$@"' sh "$@"
}

# crate_package NAME REQ DEST: the newest package of crate NAME matching version REQ, from
# crates.io (`cargo fetch` of a tiny manifest), copied to DEST as a workspace of its own;
# sets CRATE_VERSION.
crate_package() {
    local fetch
    fetch="$(mktemp -d)"
    mkdir -p "$fetch/src"
    touch "$fetch/src/lib.rs"
    printf '[package]\nname = "fetch-%s"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n[dependencies]\n%s = "%s"\n[workspace]\n' \
        "$1" "$1" "$2" > "$fetch/Cargo.toml"
    (cd "$fetch" && timeout 300 cargo fetch -q)
    CRATE_VERSION=$(awk -v n="name = \"$1\"" '$0 == n {getline; gsub(/"/, "", $3); print $3}' "$fetch/Cargo.lock")
    rm -rf "$fetch"
    local src
    src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$1-$CRATE_VERSION" 2>/dev/null | head -1)
    [ -n "$src" ] && [ -d "$src" ] || { echo "$1 $CRATE_VERSION not found in the cargo registry"; exit 1; }
    cp -r "$src" "$3"
    grep -q '^\[workspace\]' "$3/Cargo.toml" || echo '[workspace]' >> "$3/Cargo.toml"
}
