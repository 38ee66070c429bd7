#!/usr/bin/env bash
# PostgreSQL (Debian's postgresql-15: a postmaster and a process per connection, each with
# its own epoll wait sets, latches on signalfd) natively and under LD_PRELOAD=libeventpoll.so
# with each Linux driver and checking on: a fresh cluster on loopback per side, pgbench's
# TPC-B-like load and its select-only load from 8 clients, every transaction must succeed.
# Prints transactions per second side by side (a figure, not a gate: this VM's timings are
# noisy) and the checker's findings. Exit 0 iff every side ran without a failed transaction
# and the preloaded ones found nothing. Not run by CI (postgresql is a large package);
# loopback only, bounded (SECONDS_RW and SECONDS_RO per load, default 8 and 5). Checking
# costs ~0.8 µs a wait (README, "eventpoll check"): the preloaded tps are no speed figure.
#   PROFILE=release scripts/capi-postgres.sh      (EVENTPOLL_LIB: a library built before)
# Needs root (the cluster runs as the postgres user, as Debian's package sets it up).
export LC_ALL=C
PROFILE="${PROFILE:-release}"
source "$(dirname "$0")/capi-lib.sh"
SECONDS_RW="${SECONDS_RW:-8}"
SECONDS_RO="${SECONDS_RO:-5}"
[ "$(id -u)" = 0 ] || { echo "capi-postgres: run as root (the cluster runs as postgres)" >&2; exit 2; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$PGBIN" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
# The package starts a cluster of its own: ours use other ports, and it is left alone.
build_lib
TMP="$(mktemp -d)"
chmod 755 "$TMP"
chown postgres "$TMP"
PGPID=
trap '[ -z "$PGPID" ] || kill -INT "$PGPID" 2>/dev/null || true; rm -rf "$TMP"' EXIT
as_pg() { su postgres -s /bin/bash -c "$*"; }
status=0

side() { # LABEL [ENV...]
    local label=$1 port data="$TMP/$1" log="$TMP/$1.log" check="$TMP/$1.check"
    shift
    mkdir -p "$data" && chown postgres "$data"
    : > "$check" && chmod 666 "$check"
    as_pg "$PGBIN/initdb -D $data -A trust" > "$TMP/$label.initdb" 2>&1 \
        || { cat "$TMP/$label.initdb"; echo "FAILED: $label: initdb"; status=1; return; }
    port=$(free_port)
    local env=("$@")
    [ ${#env[@]} -eq 0 ] || env+=(EVENTPOLL_CHECK="$check")
    as_pg "exec env ${env[*]} $PGBIN/postgres -D $data -p $port -k $TMP -c listen_addresses=127.0.0.1 -c max_connections=40" > "$log" 2>&1 &
    PGPID=$!
    if ! wait_port "$port" "$PGPID" "$label: postgres"; then
        tail -5 "$log"; echo "FAILED: $label: postgres did not start"; status=1; PGPID=; return
    fi
    as_pg "env ${env[*]} $PGBIN/pgbench -h 127.0.0.1 -p $port -i -s 2 postgres" > "$TMP/$label.init" 2>&1 \
        || { tail -5 "$TMP/$label.init"; echo "FAILED: $label: pgbench -i"; status=1; }
    local rw ro
    rw=$(as_pg "$PGBIN/pgbench -h 127.0.0.1 -p $port -c 8 -j 2 -T $SECONDS_RW postgres" 2>&1)
    ro=$(as_pg "$PGBIN/pgbench -h 127.0.0.1 -p $port -c 8 -j 2 -T $SECONDS_RO -S postgres" 2>&1)
    as_pg "$PGBIN/pg_ctl -D $data stop -m fast" > /dev/null 2>&1 || kill -INT "$PGPID"
    timeout 20 tail --pid="$PGPID" -f /dev/null || kill -9 "$PGPID"
    PGPID=
    for out in "$rw" "$ro"; do
        grep -qE '^number of failed transactions: 0 ' <<< "$out" \
            || { echo "$out" | tail -5; echo "FAILED: $label: pgbench"; status=1; }
    done
    local tps_rw tps_ro
    tps_rw=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' <<< "$rw" | head -1)
    tps_ro=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' <<< "$ro" | head -1)
    local line="  $label: tps read-write ${tps_rw:-?}, select-only ${tps_ro:-?}"
    if [ ${#env[@]} -gt 0 ]; then
        local procs findings
        procs=$(grep -c '^eventpoll-check: summary:' "$check" || true)
        findings=$(grep '^eventpoll-check: summary:' "$check" | awk '{ n += $3 } END { print n + 0 }')
        line+="; checked processes $procs, findings $findings"
        [ "$procs" -gt 0 ] || { echo "FAILED: $label: no process was checked (was the preload on?)"; status=1; }
        if [ "$findings" != 0 ]; then
            grep '^eventpoll-check: ' "$check" | grep -v summary | head -5 | cut -c1-300
            echo "FAILED: $label: findings"
            status=1
        fi
    fi
    echo "$line"
}

echo "== PostgreSQL ($PGBIN): pgbench -c 8 -j 2, read-write ${SECONDS_RW} s and select-only ${SECONDS_RO} s"
side native
side uring LD_PRELOAD="$LIB" EVENTPOLL_DRIVER=uring
side epoll LD_PRELOAD="$LIB" EVENTPOLL_DRIVER=epoll
[ $status = 0 ] && echo "3 passed, 0 failed" || echo "failed"
exit $status
