#!/usr/bin/env bash
# Real servers' CPU per request, natively and under LD_PRELOAD=libeventpoll.so, in
# interleaved rounds (native, preload, native, preload, ...; a fresh server each run):
#   memcached  Debian's memcached, -t 4, a Python client of 4 connections doing set + get
#   nginx      Debian's nginx, 2 workers, a 20,000-byte static file, `ab -c 20` without and
#              with keep-alive (-k)
#   node       the machine's node running crates/eventpoll-capi/tests/node/http_server.js (a
#              1 KiB answer), `ab -c 20` without and with keep-alive; UV_USE_IO_URING left
#              as node sets it (NODE_UV="default 0 1" runs each value)
# Loopback only, each server on a port the kernel chose, each run bounded (`timeout`), all
# cleaned up on exit. The server's cost is read from /proc around the measured load (after
# a warm-up): user + system CPU of every thread of every process of the server (the
# client's own CPU is not counted) and its voluntary context switches, per request. The
# report gives per case and side the median and min-max of the rounds, the ratio
# preload/native with the range the spreads allow, and the verdict against the target
# (<= 1.10x: met / NOT met / uncertain when the range crosses it).
# Exit 0 iff every run served every request and every preloaded server really ran on
# eventpoll (each process maps the library; a traced run per server shows its waits
# answered by eventpoll). A ratio over its target does not fail the run: it is a figure
# of a shared, noisy machine, printed loudly.
#   PROFILE=release scripts/capi-servers.sh [memcached|nginx|node|all]
#   ROUNDS (3), REQUESTS (8000 per run), DRIVERS ("uring"; "uring epoll" for both),
#   NODE_UV ("default"), TARGET (1.10), BUDGET (300: seconds of measured runs; once spent,
#   the rounds left are skipped, loudly, and the report covers the rounds done),
#   RESULTS_OUT (a file to keep every run's measure in, one JSON line each)
#   EVENTPOLL_LIB (a libeventpoll.so built before, used as it is: run the script once per
#   library, in turn, to compare two builds)
export LC_ALL=C
PROFILE="${PROFILE:-release}"
source "$(dirname "$0")/capi-lib.sh"
WHICH="${1:-all}"
ROUNDS="${ROUNDS:-3}"
REQUESTS="${REQUESTS:-8000}"
DRIVERS="${DRIVERS:-uring}"
NODE_UV="${NODE_UV:-default}"
TARGET="${TARGET:-1.10}"
BUDGET="${BUDGET:-300}"
WARMUP=500
CONCURRENCY=20
case "$WHICH" in
    memcached | nginx | node) SERVERS="$WHICH" ;;
    all) SERVERS="memcached nginx node" ;;
    *) echo "usage: $0 [memcached|nginx|node|all]" >&2; exit 2 ;;
esac

need=()
want() { [[ " $SERVERS " == *" $1 "* ]]; }
want memcached && ! command -v memcached >/dev/null && need+=(memcached)
want nginx && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] && need+=(nginx-light)
{ want nginx || want node; } && ! command -v ab >/dev/null && need+=(apache2-utils)
want node && ! command -v node >/dev/null && ! command -v nodejs >/dev/null && need+=(nodejs)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
NODE="$(command -v node || command -v nodejs || true)"
# The interpreter itself, not a version manager's shim (which costs ~0.3 s a start).
PY="$(python3 -c 'import sys; print(sys.executable)')"
SERVER_PYTHON="$PY" # free_port and wait_port (capi-lib.sh) too
HELP="$ROOT/scripts/capi_servers.py"
JS="$ROOT/crates/eventpoll-capi/tests/node/http_server.js"
build_lib

TMP="$(mktemp -d)"
chmod 755 "$TMP" # nginx's workers run as another user when started by root
SPID=
stop_server() { # TERM to the bounding `timeout`, which passes it to the server's group
    [ -n "$SPID" ] || return 0
    kill -TERM "$SPID" 2>/dev/null || true
    timeout 10 tail --pid="$SPID" -f /dev/null || kill -KILL -- "-$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=
}
trap 'stop_server; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM # through the EXIT trap: no server outlives the script
# start_server SERVER SIDE UV [TRACE]: SIDE native or a driver; UV node's UV_USE_IO_URING
# (default: unset); TRACE a file for EVENTPOLL_LOG. Sets SPID (the `timeout`) and PORT.
start_server() {
    local env=() uv=()
    [ "$2" = native ] || env=(LD_PRELOAD="$LIB" EVENTPOLL_DRIVER="$2")
    [ -z "${4:-}" ] || env+=(EVENTPOLL_LOG="$4")
    [ "$3" = default ] || uv=(UV_USE_IO_URING="$3")
    case "$1" in
        memcached)
            PORT=$(free_port)
            timeout -k 5 300 env "${env[@]}" memcached -u "$(id -un)" -l 127.0.0.1 -p "$PORT" \
                -U 0 -t 4 -m 64 > "$TMP/server.out" 2>&1 &
            SPID=$! ;;
        nginx)
            PORT=$(free_port)
            nginx_conf "$TMP/nginx" "$PORT"
            timeout -k 5 300 env "${env[@]}" "$NGINX" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" \
                > "$TMP/server.out" 2>&1 &
            SPID=$! ;;
        node)
            rm -f "$TMP/node.port"
            timeout -k 5 300 env "${env[@]}" "${uv[@]}" LIFETIME_MS=290000 "$NODE" "$JS" \
                "$TMP/node.port" > "$TMP/server.out" 2>&1 &
            SPID=$!
            PORT=
            for _ in $(seq 100); do
                [ -f "$TMP/node.port" ] && { PORT=$(cat "$TMP/node.port"); break; }
                sleep 0.1
            done ;;
    esac
    if [ -z "$PORT" ] || ! wait_port "$PORT" "$SPID"; then
        echo "FAILED: $1 ($2) did not start"; cat "$TMP/server.out"; stop_server; return 1
    fi
    # nginx: the workers are up once both exist (the master forks them after it listens).
    if [ "$1" = nginx ]; then
        for _ in $(seq 50); do
            [ "$(pgrep -c -P "$(pgrep -P "$SPID" | head -1)" || true)" -ge 2 ] && break
            sleep 0.1
        done
    fi
}
# load SERVER LOAD N: serve N requests; fails unless every one was answered right.
load() {
    case "$2" in
        mc)
            timeout 120 "$PY" "$HELP" memcached "$PORT" 4 $(($3 / 8)) > "$TMP/load.out" 2>&1 ;;
        ab | ab-k)
            local ka=() path=/
            [ "$2" = ab-k ] && ka=(-k)
            [ "$1" = nginx ] && path=/file.bin
            timeout 120 ab -q "${ka[@]}" -n "$3" -c "$CONCURRENCY" "http://127.0.0.1:$PORT$path" \
                > "$TMP/load.out" 2>&1 || return 1
            grep -qE "^Complete requests: +$3\$" "$TMP/load.out" \
                && grep -qE '^Failed requests: +0$' "$TMP/load.out" \
                && ! grep -q '^Non-2xx' "$TMP/load.out" ;;
    esac
}
requests_of() { # LOAD N: the requests a load of N makes (memcached: 4 clients x N/8 pairs)
    [ "$1" = mc ] && echo $((4 * ($2 / 8) * 2)) || echo "$2"
}

status=0
fail() { echo "FAILED: $*"; status=1; }
echo "capi-servers: $SERVERS; $ROUNDS rounds of $REQUESTS requests, drivers: $DRIVERS; $(nproc) cores,"\
    "load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "$NODE" ] || ! want node || echo "node $("$NODE" --version) (libuv $("$NODE" -p process.versions.uv))"

# Is each server really on eventpoll? A short traced run: the waits that returned events
# are counted per process (nginx: both workers must have them).
for server in $SERVERS; do
    uvs=default
    [ "$server" = node ] && uvs="$NODE_UV"
    for uv in $uvs; do
        for driver in $DRIVERS; do
            trace="$TMP/trace.log"
            : > "$trace"
            chmod 666 "$trace"
            start_server "$server" "$driver" "$uv" "$trace" || { fail "$server traced run"; continue; }
            case "$server" in memcached) l=mc ;; *) l=ab-k ;; esac
            load "$server" "$l" 400 || fail "$server traced run: load"
            stop_server
            pids=$(grep -oE '^eventpoll\[[0-9]+\]: epoll_p?wait2?\(.* = [1-9][0-9]*$' "$trace" \
                | cut -d']' -f1 | sort -u | wc -l)
            want_pids=1
            [ "$server" = nginx ] && want_pids=2
            echo "traced run, $server ($driver, UV_USE_IO_URING=$uv): $(wc -l < "$trace") calls,"\
                "$pids processes with waits answered by eventpoll"
            [ "$pids" -ge "$want_pids" ] || fail "$server ($driver): not on eventpoll ($pids processes, want $want_pids)"
        done
    done
done

RESULTS="$TMP/results.jsonl"
: > "$RESULTS"
start=$(date +%s)
for server in $SERVERS; do
    case "$server" in
        memcached) loads=mc; uvs=default ;;
        nginx) loads="ab ab-k"; uvs=default ;;
        node) loads="ab ab-k"; uvs="$NODE_UV" ;;
    esac
    for uv in $uvs; do
        for l in $loads; do
            name="$server"
            [ "$l" = mc ] || name+=" $(echo "$l" | sed 's/-/ -/')"
            [ "$uv" = default ] || name+=" UV_USE_IO_URING=$uv"
            n=$(requests_of "$l" "$REQUESTS")
            for round in $(seq "$ROUNDS"); do
                if [ $(( $(date +%s) - start )) -ge "$BUDGET" ]; then
                    echo "SKIPPED: $name rounds $round-$ROUNDS (the time budget of $BUDGET s is spent)"
                    break
                fi
                for side in native $DRIVERS; do
                    start_server "$server" "$side" "$uv" || { fail "$name ($side) round $round: start"; continue; }
                    load "$server" "$l" "$WARMUP" || fail "$name ($side) round $round: warm-up load"
                    "$PY" "$HELP" snapshot "$SPID" > "$TMP/before.json"
                    if load "$server" "$l" "$REQUESTS"; then
                        "$PY" "$HELP" delta "$TMP/before.json" "$SPID" "$name" "$side" "$round" "$n" >> "$RESULTS"
                    else
                        fail "$name ($side) round $round: load"
                        tail -5 "$TMP/load.out"
                    fi
                    stop_server
                done
            done
        done
    done
done
echo "measured runs in $(( $(date +%s) - start )) s; load average at end $(cut -d' ' -f1-3 /proc/loadavg)"

# Every preloaded server mapped the library in each of its processes; no native one did.
bad=$("$PY" - "$RESULTS" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    want = 0 if r["side"] == "native" else r["processes"]
    if r["processes"] == 0 or r["preloaded"] != want:
        print(f'{r["case"]} ({r["side"]}) round {r["round"]}: {r["preloaded"]} of {r["processes"]} processes map libeventpoll')
PY
)
[ -z "$bad" ] || fail "preload check: $bad"
"$PY" "$HELP" summary "$RESULTS" "$TARGET" || fail "summary"
[ -z "${RESULTS_OUT:-}" ] || cp "$RESULTS" "$RESULTS_OUT"
[ $status = 0 ] && echo "capi-servers: every run served every request on eventpoll (ratios above are figures, not failures)" \
    || echo "capi-servers: FAILED (see FAILED lines above)"
exit $status
