#!/usr/bin/env bash
# `EVENTPOLL_CHECK` on real programs: no false positives. Each program runs under
# LD_PRELOAD=libeventpoll.so with EVENTPOLL_CHECK=/abs/path (every process of it appends its
# findings to that file) under a short loopback load, bounded in count and time:
#   python   Python's test_epoll and test_selectors
#   asyncio  the asyncio echo server (crates/eventpoll-capi/tests/py/echo.py), 200 connections
#   redis    redis-server under redis-benchmark
#   nginx    2 workers, accept_mutex off, a static file fetched by ab (apache2-utils)
#   memcached  4 threads, set/get from a small Python client over loopback
#   haproxy  HAProxy (2 threads) in front of lighttpd (single-threaded), both checked, ab
#            with and without keep-alive through the proxy
# Prints each program's findings by kind. Exit 0 iff every program ran (its load succeeded,
# checking was on: each checked process printed its summary line) and every finding is in
# EXPLAINED below: a true finding in that program, explained in README ("eventpoll check").
#   PROFILE=release scripts/capi-check-real.sh
source "$(dirname "$0")/capi-lib.sh"

# program:kind of the findings README explains as true findings in that program.
EXPLAINED=(
    # test_epoll's test_control_and_wait adds the accepted socket of _connected_pair, which
    # is blocking, with EPOLLET (harmless there: it never reads it).
    "python:et-blocking-fd"
    # Each nginx worker adds, with EPOLLET, its notification eventfd (eventfd(0, 0): blocking;
    # one read empties it) and, once, a blocking socketpair end to probe EPOLLRDHUP (never
    # read): 2 per worker.
    "nginx:et-blocking-fd"
    # HAProxy's threads each add the listening socket to their own instance without
    # EPOLLEXCLUSIVE: a new connection wakes both (the thundering herd, as on Linux).
    "haproxy:herd"
)

need=()
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v memcached >/dev/null || need+=(memcached)
command -v ab >/dev/null || need+=(apache2-utils)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v lighttpd >/dev/null || [ -x /usr/sbin/lighttpd ] || need+=(lighttpd)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
LIGHTTPD="$(command -v lighttpd || echo /usr/sbin/lighttpd)"
build_lib
TMP="$(mktemp -d)"
chmod 755 "$TMP" # nginx's and memcached's workers may run as another user
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT
checked() { # $1 name: the environment of a checked run
    : > "$TMP/$1.check"
    chmod 666 "$TMP/$1.check"
    echo LD_PRELOAD="$LIB" EVENTPOLL_CHECK="$TMP/$1.check"
}
# ONLY="nginx redis": run those programs only (when looking into one).
ONLY="${ONLY:-python asyncio redis nginx memcached haproxy lighttpd}"
want() { [[ " $ONLY " == *" $1 "* ]]; }
status=0
fail() { echo "FAILED: $*"; status=1; }
# ab_both N URL LABEL: `ab -n N -c 20` without and with keep-alive; every request must succeed.
ab_both() {
    for ka in "" -k; do
        timeout 120 ab -q $ka -n "$1" -c 20 "$2" > "$TMP/$3.ab" 2>&1 \
            || { cat "$TMP/$3.ab"; fail "$3: ab $ka"; }
        grep -E '^(Complete|Failed) requests|^Requests per second' "$TMP/$3.ab" | tr -s ' ' | paste -sd';'
        grep -qE '^Failed requests: +0$' "$TMP/$3.ab" || fail "$3: ab $ka: failed requests"
    done
}

if want python; then
    echo "== python: test_epoll, test_selectors"
    env $(checked python) timeout 300 python3 -m test test_epoll test_selectors > "$TMP/python.out" 2>&1 \
        || { tail -20 "$TMP/python.out"; fail "python tests"; }
    grep -E '^Result:' "$TMP/python.out" || true
fi
if want asyncio; then
    echo "== asyncio: echo server, 200 connections x 20 echoes"
    PY="$ROOT/crates/eventpoll-capi/tests/py/echo.py"
    env $(checked asyncio) timeout 120 python3 "$PY" server "$TMP/asyncio.port" 60 > "$TMP/asyncio.out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do [ -f "$TMP/asyncio.port" ] && break; sleep 0.1; done
    if [ -f "$TMP/asyncio.port" ]; then
        timeout 120 python3 "$PY" client "$(cat "$TMP/asyncio.port")" 200 20 | tail -1 || fail "asyncio client"
    else
        fail "asyncio server did not start"
    fi
    wait "${PIDS[-1]}" || fail "asyncio server"
fi
if want redis; then
    echo "== redis: redis-server under redis-benchmark -n 20000 -c 20"
    PORT=$(free_port)
    env $(checked redis) redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --logfile "$TMP/redis.log" --dir "$TMP" &
    PIDS+=($!)
    if wait_port "$PORT" "" redis-server; then
        timeout 120 redis-benchmark -p "$PORT" -n 20000 -c 20 -t ping_inline,set,get,incr,lpush,lpop,mset -q \
            > "$TMP/redis.bench" 2>&1 || fail "redis-benchmark"
        tr '\r' '\n' < "$TMP/redis.bench" | grep 'requests per second' || fail "redis-benchmark output"
        timeout 10 redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
    else
        fail "redis-server"
    fi
    timeout 10 tail --pid="${PIDS[-1]}" -f /dev/null || kill "${PIDS[-1]}"
fi
if want nginx; then
    echo "== nginx: 2 workers, accept_mutex off, ab -n 5000 -c 20 (and keep-alive)"
    PORT=$(free_port)
    nginx_conf "$TMP/nginx" "$PORT" "accept_mutex off; "
    env $(checked nginx) "$NGINX" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" > "$TMP/nginx.out" 2>&1 &
    PIDS+=($!)
    if wait_port "$PORT" "" nginx; then
        ab_both 5000 "http://127.0.0.1:$PORT/file.bin" nginx
        kill -QUIT "${PIDS[-1]}" # graceful: the workers finish and exit
    else
        fail "nginx"; kill "${PIDS[-1]}"
    fi
    timeout 20 tail --pid="${PIDS[-1]}" -f /dev/null || kill -9 "${PIDS[-1]}"
fi
if want memcached; then
    echo "== memcached: 4 threads, 4 clients x 2000 set/get"
    PORT=$(free_port)
    env $(checked memcached) memcached -u "$(id -un)" -l 127.0.0.1 -p "$PORT" -U 0 -t 4 -m 64 \
        > "$TMP/memcached.out" 2>&1 &
    PIDS+=($!)
    if wait_port "$PORT" "" memcached; then
        timeout 120 python3 - "$PORT" <<'PY' || fail "memcached client"
import socket, sys, threading
port, errors, done = int(sys.argv[1]), [], []
def client(k):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    for i in range(2000):
        key, val = f"k{k}-{i % 100}", f"value-{k}-{i}".encode()
        s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(val), val))
        if f.readline() != b"STORED\r\n":
            errors.append(key)
        s.sendall(b"get %s\r\n" % key.encode())
        head, body, end = f.readline(), f.readline(), f.readline()
        if body != val + b"\r\n" or end != b"END\r\n":
            errors.append(key)
    s.close()
    done.append(k)
ts = [threading.Thread(target=client, args=(k,)) for k in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print(f"memcached: {len(done)} clients x 2000 set/get, {len(errors)} errors")
sys.exit(1 if errors or len(done) != 4 else 0)
PY
        kill -TERM "${PIDS[-1]}"
    else
        fail "memcached"; kill "${PIDS[-1]}"
    fi
    timeout 10 tail --pid="${PIDS[-1]}" -f /dev/null || kill -9 "${PIDS[-1]}"
fi
if want haproxy || want lighttpd; then
    echo "== haproxy (2 threads) in front of lighttpd: ab -n 3000 -c 20 through the proxy (and keep-alive)"
    WEB=$(free_port)
    mkdir -p "$TMP/www"
    head -c 20000 /dev/urandom > "$TMP/www/file.bin"
    printf 'server.document-root = "%s"\nserver.port = %s\nserver.bind = "127.0.0.1"\nserver.event-handler = "linux-sysepoll"\n' \
        "$TMP/www" "$WEB" > "$TMP/lighttpd.conf"
    env $(checked lighttpd) "$LIGHTTPD" -D -f "$TMP/lighttpd.conf" > "$TMP/lighttpd.out" 2>&1 &
    PIDS+=($!)
    LPID=$!
    HPID=
    if wait_port "$WEB" "" lighttpd; then
        PROXY=$(free_port)
        printf 'global\n  maxconn 500\n  nbthread 2\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nfrontend f\n  bind 127.0.0.1:%s\n  default_backend b\nbackend b\n  server s1 127.0.0.1:%s\n' \
            "$PROXY" "$WEB" > "$TMP/haproxy.cfg"
        env $(checked haproxy) "$HAPROXY" -f "$TMP/haproxy.cfg" -db > "$TMP/haproxy.out" 2>&1 &
        PIDS+=($!)
        HPID=$!
    fi
    if [ -n "$HPID" ] && wait_port "$PROXY" "" haproxy; then
        ab_both 3000 "http://127.0.0.1:$PROXY/file.bin" haproxy
    else
        fail "haproxy or lighttpd did not start"
    fi
    [ -z "$HPID" ] || kill -USR1 "$HPID" 2>/dev/null || true # haproxy: soft stop
    kill -INT "$LPID" 2>/dev/null || true                   # lighttpd: graceful stop
    for p in $HPID "$LPID"; do
        timeout 20 tail --pid="$p" -f /dev/null || kill -9 "$p"
    done
fi
echo "== findings by program and kind"
for prog in $ONLY; do
    f="$TMP/$prog.check"
    summaries=$(grep -c '^eventpoll-check: summary:' "$f" || true)
    [ "$summaries" -gt 0 ] || fail "$prog: no summary line (was checking on?)"
    # Counts from the summary lines (a repeated finding is printed once, counted there).
    kinds=$(grep '^eventpoll-check: summary:' "$f" | sed -nE 's/.*\((.*)\)$/\1/p' | tr ',' '\n' \
        | awk 'NF == 2 { n[$1] += $2 } END { for (k in n) print k, n[k] }' | sort)
    total=$(grep '^eventpoll-check: summary:' "$f" | awk '{ n += $3 } END { print n + 0 }')
    echo "$prog: $total findings in $summaries checked processes${kinds:+ ($(echo "$kinds" | paste -sd, | sed 's/,/, /g'))}"
    while read -r kind count; do
        [ -n "$kind" ] || continue
        if printf '%s\n' "${EXPLAINED[@]}" | grep -qxF "$prog:$kind"; then
            echo "  $kind $count: explained (README, eventpoll check)"
        else
            fail "$prog: $count unexplained $kind findings:"
            grep "^eventpoll-check: $kind " "$f" | head -5 | cut -c1-400 | sed 's/^/    /'
        fi
    done <<< "$kinds"
done
n=$(wc -w <<< "$ONLY")
[ $status = 0 ] && echo "$n passed, 0 failed" || echo "0 passed, 1 failed"
exit $status
