#!/usr/bin/env bash
# System calls per request of real servers, natively and under LD_PRELOAD=libeventpoll.so
# with each host driver: the count the kernel's syscall tracepoints give (`perf stat`
# attached to the server: `raw_syscalls:sys_enter` for the total, `syscalls:sys_enter_NAME`
# for each call servers and the library make, the rest shown as "other"), divided by the
# requests served while it was attached. Unlike CPU time, these counts hardly move from
# run to run on a shared machine, so they show what a change to the wait path costs or
# saves. (WHAT=cpu, below, samples the same runs' CPU instead.)
#   memcached  Debian's memcached, -t 4, 4 Python clients doing set + get (PAIRS each)
#   node       crates/eventpoll-capi/tests/node/http_server.js under `ab -c 20` (no keep-alive)
#   nginx      Debian's nginx, 2 workers (single-threaded), a 20,000-byte file, `ab -c 20`
#              (no keep-alive); both workers counted
# Loopback only; every server bounded by `timeout` and stopped on exit.
#   PROFILE=release scripts/syscalls-per-request.sh [memcached|node|nginx|all]
#   SIDES ("native uring epoll"), PAIRS (4000), REQUESTS (8000), EVENTPOLL_LIB (a library
#   built before, used as it is), MIN (0.05: calls per request below this are not listed),
#   ALL=1 (every system call's tracepoint by name, `syscalls:sys_enter_*`: no "other", but
#   perf takes ~13 s to attach and detach them, against ~2 s for the list)
#   WHAT=cpu: instead of system calls, where the server's CPU goes: `perf record -e
#   cpu-clock -F FREQ` (4000) on the same runs, printed as microseconds of CPU per request
#   by object (the server, the kernel, libeventpoll.so, libc, a JIT's code...), sampled: a
#   few per cent from run to run. In a VM without a PMU the kernel's samples land where
#   interrupts are enabled again, so by object only.
# Needs perf with tracepoints (root, or perf_event_paranoid <= -1 and tracefs readable);
# exits 2 without them.
export LC_ALL=C
PROFILE="${PROFILE:-release}"
source "$(dirname "$0")/capi-lib.sh"
WHICH="${1:-all}"
SIDES="${SIDES:-native uring epoll}"
PAIRS="${PAIRS:-4000}"
REQUESTS="${REQUESTS:-8000}"
MIN="${MIN:-0.05}"
case "$WHICH" in
    memcached | node | nginx) SERVERS="$WHICH" ;;
    all) SERVERS="memcached node nginx" ;;
    *) echo "usage: $0 [memcached|node|nginx|all]" >&2; exit 2 ;;
esac
command -v perf >/dev/null || { echo "syscalls-per-request: no perf" >&2; exit 2; }
perf stat -e 'syscalls:sys_enter_getpid' -- true >/dev/null 2>&1 \
    || { echo "syscalls-per-request: perf cannot read syscall tracepoints here" >&2; exit 2; }
# The tracepoints counted: the total, and by name the calls of the servers, of libevent,
# libuv and nginx, and of the library (those the kernel has: a name missing from tracefs is
# left out).
NAMES="read write readv writev pread64 pwrite64 recvfrom sendto recvmsg sendmsg recvmmsg
sendmmsg accept accept4 close close_range shutdown setsockopt getsockopt newfstatat statx
getpid gettid getcpu rt_sigprocmask rt_sigaction futex io_uring_enter io_uring_register
madvise kcmp clock_nanosleep clock_gettime nanosleep openat fcntl ioctl mmap munmap mprotect
brk sched_yield epoll_wait epoll_pwait epoll_pwait2 epoll_ctl epoll_create1 ppoll poll
select pselect6 eventfd2 timerfd_settime timerfd_gettime process_vm_readv process_vm_writev
sendfile64 splice lseek socket connect dup dup3 pipe2 tgkill getrusage"
TRACEFS="$(for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
    [ -d "$d/events/syscalls" ] && echo "$d" && break; done)"
if [ "${ALL:-0}" = 1 ] || [ -z "$TRACEFS" ]; then
    EVENTS='syscalls:sys_enter_*'
else
    EVENTS=raw_syscalls:sys_enter
    for n in $NAMES; do
        [ -d "$TRACEFS/events/syscalls/sys_enter_$n" ] && EVENTS="$EVENTS,syscalls:sys_enter_$n"
    done
fi
build_lib
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
PY="$(python3 -c 'import sys; print(sys.executable)')"
SERVER_PYTHON="$PY"
TMP="$(mktemp -d)"
SPID=
trap 'stop_spid; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

WHAT="${WHAT:-syscalls}"
FREQ="${FREQ:-4000}"
case "$WHAT" in syscalls | cpu) ;; *) echo "WHAT is syscalls or cpu" >&2; exit 2 ;; esac

# attach PIDS FILE: perf on PIDS (comma-separated) in the background (its pid in PERF),
# counting system calls or sampling the CPU into FILE.
attach() {
    if [ "$WHAT" = cpu ]; then
        perf record -q -e cpu-clock -F "$FREQ" -p "$1" -o "$2" 2>/dev/null &
    else
        perf stat -e "$EVENTS" -p "$1" -o "$2" &
    fi
    PERF=$!
}

# report FILE REQUESTS LABEL: per request, the calls `perf stat` counted in FILE by name,
# or (WHAT=cpu) the microseconds of CPU `perf record` sampled, by object.
report() {
    if [ "$WHAT" = cpu ]; then
        perf report -i "$1" --sort dso --stdio -n 2>/dev/null | "$PY" -c '
import re, sys
requests, label, low, freq = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
us = {}
for line in sys.stdin:
    m = re.match(r"\s*[\d.]+%\s+(\d+)\s+(.+?)\s*$", line)
    if m:
        name = re.sub(r"^\[JIT\].*", "[JIT]", m.group(2))
        us[name] = us.get(name, 0) + int(m.group(1)) * 1e6 / freq / requests
rows = sorted(((v, k) for k, v in us.items() if v >= low), reverse=True)
print(f"  {label:<8} {sum(us.values()):6.1f} us CPU per request: " + ", ".join(f"{k} {v:.1f}" for v, k in rows))
' "$2" "$3" "$MIN" "$FREQ"
        return
    fi
    "$PY" - "$1" "$2" "$3" "$MIN" <<'PY'
import re, sys
path, requests, label, low = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
counts, raw = {}, None
for line in open(path):
    m = re.match(r"\s*([\d,]+)\s+syscalls:sys_enter_(\w+)", line)
    if m:
        counts[m.group(2)] = int(m.group(1).replace(",", ""))
    m = re.match(r"\s*([\d,]+)\s+raw_syscalls:sys_enter", line)
    if m:
        raw = int(m.group(1).replace(",", ""))
if raw is not None:
    # The calls counted by no name of the list.
    counts["other"] = max(raw - sum(counts.values()), 0)
total = sum(counts.values()) / requests
rows = sorted(((n / requests, k) for k, n in counts.items() if n / requests >= low), reverse=True)
print(f"  {label:<8} {total:5.2f} per request: " + ", ".join(f"{k} {v:.2f}" for v, k in rows))
PY
}

measure_memcached() { # SIDE
    local env=() port
    [ "$1" = native ] || env=(LD_PRELOAD="$LIB" EVENTPOLL_DRIVER="$1")
    port="$(free_port)"
    env "${env[@]}" timeout 120 memcached -u root -t 4 -p "$port" -l 127.0.0.1 -U 0 &
    SPID=$!
    wait_port "$port" "$SPID" memcached || return 1
    "$PY" "$ROOT/scripts/capi_servers.py" memcached "$port" 4 50 >/dev/null
    attach "$(pgrep -P "$SPID" memcached || echo "$SPID")" "$TMP/m-$1.txt"
    sleep 0.3
    "$PY" "$ROOT/scripts/capi_servers.py" memcached "$port" 4 "$PAIRS" >/dev/null
    kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
    stop_spid
    report "$TMP/m-$1.txt" $((8 * PAIRS)) "$1"
}

# ab_counted NAME PIDS URL SIDE: a warm-up, then `ab -c 20 -n REQUESTS` on URL with perf
# on PIDS (comma-separated, see attach); stops the server; reports.
ab_counted() {
    ab -q -c 20 -n 500 "$3" >/dev/null
    attach "$2" "$TMP/$1-$4.txt"
    sleep 0.3
    ab -q -c 20 -n "$REQUESTS" "$3" | grep -q "Failed requests: *0" \
        || { echo "$1: failed requests"; kill -INT "$PERF"; return 1; }
    kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
    stop_spid
    report "$TMP/$1-$4.txt" "$REQUESTS" "$4"
}

measure_node() { # SIDE
    local env=() port pf="$TMP/node-port"
    [ "$1" = native ] || env=(LD_PRELOAD="$LIB" EVENTPOLL_DRIVER="$1")
    rm -f "$pf"
    env "${env[@]}" timeout 120 node "$ROOT/crates/eventpoll-capi/tests/node/http_server.js" "$pf" >/dev/null 2>&1 &
    SPID=$!
    for _ in $(seq 100); do [ -s "$pf" ] && break; sleep 0.1; done
    port="$(cat "$pf")"
    ab_counted node "$(pgrep -P "$SPID" node || echo "$SPID")" "http://127.0.0.1:$port/" "$1"
}

measure_nginx() { # SIDE
    local env=() port master workers
    [ "$1" = native ] || env=(LD_PRELOAD="$LIB" EVENTPOLL_DRIVER="$1")
    port="$(free_port)"
    nginx_conf "$TMP/nginx" "$port"
    chmod 755 "$TMP" # the workers run as another user when started by root
    env "${env[@]}" timeout 120 "$NGINX" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" >/dev/null 2>&1 &
    SPID=$!
    wait_port "$port" "$SPID" nginx || return 1
    master="$(pgrep -P "$SPID" | head -1)"
    for _ in $(seq 50); do
        [ "$(pgrep -c -P "$master" || true)" -ge 2 ] && break
        sleep 0.1
    done
    workers="$(pgrep -P "$master" | paste -sd, -)"
    ab_counted nginx "$workers" "http://127.0.0.1:$port/file.bin" "$1"
}

for s in $SERVERS; do
    case "$s" in
        memcached) echo "-- memcached: -t 4, 4 clients x $PAIRS set + get ($((8 * PAIRS)) requests)" ;;
        node) echo "-- node: ab -c 20 -n $REQUESTS, no keep-alive" ;;
        nginx) echo "-- nginx: 2 workers, ab -c 20 -n $REQUESTS, no keep-alive, both workers counted" ;;
    esac
    for side in $SIDES; do
        "measure_$s" "$side"
    done
done
