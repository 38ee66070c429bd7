"""Helpers of scripts/capi-servers.sh: what a server cost, measured from /proc, and the report.

  snapshot ROOT                 the CPU time and voluntary context switches of every thread of
                                every process under ROOT (ROOT itself included unless it is the
                                `timeout` that bounds the server), as JSON on standard output
  delta BEFORE ROOT CASE SIDE ROUND REQUESTS
                                a second snapshot minus BEFORE, as one JSON line: the server's
                                CPU (user + system, all its threads: the first field of
                                /proc/PID/task/TID/schedstat, in ns) and voluntary switches
                                spent on REQUESTS requests, per thread name, and how many of
                                its processes map libeventpoll
  memcached PORT CLIENTS PAIRS  a load: CLIENTS threads, one connection each, PAIRS set + get
                                each, every answer checked; exit 1 on any wrong answer
  pausing PORT PAIRS GAP        a load: one connection, PAIRS set + get, GAP seconds after
                                each answer (so that the server's every wait sleeps), every
                                answer checked (scripts/callgrind-wait.sh, scripts/capi-pgo.sh)
  summary RESULTS TARGET        the report of the JSON lines in RESULTS: per case and side the
                                median and min-max CPU per request and voluntary switches per
                                request, the ratio preload/native with the range the spreads
                                allow, and the verdict against TARGET (met / NOT met /
                                uncertain: a verdict only when the whole range is on one side);
                                also, as information, the ratios of each round's preloaded run
                                to the native run just before it
"""

import json
import os
import re
import socket
import statistics
import sys
import threading
import time


def tree(root):
    """The processes under ROOT (ROOT included), by parent links in /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The name is in parentheses and may hold spaces: fields after the last ')'.
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def snapshot(root):
    threads, processes = {}, {}
    for pid in tree(root):
        comm = (read(f"/proc/{pid}/comm") or "").strip()
        if comm == "timeout" or comm == "":
            continue
        maps = read(f"/proc/{pid}/maps") or ""
        processes[str(pid)] = {"comm": comm, "preloaded": "libeventpoll" in maps}
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            sched = read(f"/proc/{pid}/task/{tid}/schedstat")
            status = read(f"/proc/{pid}/task/{tid}/status")
            stat = read(f"/proc/{pid}/task/{tid}/stat")
            # Without the number some kernel threads carry (iou-sqp-PID, iou-wrk-PID).
            name = re.sub(r"-[0-9]+$", "", (read(f"/proc/{pid}/task/{tid}/comm") or "?").strip())
            if tid == str(pid):
                name += "[main]"  # a process's first thread: its event loop, mostly
            if sched is None or status is None or stat is None:
                continue  # the thread exited meanwhile
            vcsw = 0
            for line in status.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    vcsw = int(line.split()[1])
            # utime and stime (fields 14 and 15, in clock ticks): the kernel's split of the
            # thread's time between user and kernel mode (sampled at ticks: a figure over
            # many requests, not per request).
            fields = stat[stat.rindex(")") + 2:].split()
            tick_ns = 1e9 / os.sysconf("SC_CLK_TCK")
            threads[tid] = {
                "pid": pid, "name": name, "cpu_ns": int(sched.split()[0]), "vcsw": vcsw,
                "user_ns": int(int(fields[11]) * tick_ns), "sys_ns": int(int(fields[12]) * tick_ns),
            }
    return {"threads": threads, "processes": processes}


def delta(before_path, root, case, side, rnd, requests):
    with open(before_path) as f:
        before = json.load(f)
    after = snapshot(root)
    cpu_ns, vcsw, user_ns, sys_ns, by_name = 0, 0, 0, 0, {}
    for tid, t in after["threads"].items():
        b = before["threads"].get(tid, {"cpu_ns": 0, "vcsw": 0, "user_ns": 0, "sys_ns": 0})
        c, v = t["cpu_ns"] - b["cpu_ns"], t["vcsw"] - b["vcsw"]
        cpu_ns += c
        vcsw += v
        user_ns += t["user_ns"] - b["user_ns"]
        sys_ns += t["sys_ns"] - b["sys_ns"]
        entry = by_name.setdefault(t["name"], [0, 0])
        entry[0] += 1
        entry[1] += v
    procs = after["processes"]
    print(json.dumps({
        "case": case, "side": side, "round": int(rnd), "requests": int(requests),
        "cpu_ns": cpu_ns, "vcsw": vcsw, "user_ns": user_ns, "sys_ns": sys_ns, "by_name": by_name,
        "processes": len(procs), "preloaded": sum(p["preloaded"] for p in procs.values()),
        "threads_lost": len(set(before["threads"]) - set(after["threads"])),
    }))


def memcached_load(port, clients, pairs):
    errors, done = [], []

    def client(k):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            f = s.makefile("rb")
            for i in range(pairs):
                key, val = f"k{k}-{i % 100}".encode(), f"value-{k}-{i}".encode()
                s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(val), val))
                if f.readline() != b"STORED\r\n":
                    errors.append(key)
                s.sendall(b"get %s\r\n" % key)
                head, body, end = f.readline(), f.readline(), f.readline()
                if not head.startswith(b"VALUE ") or body != val + b"\r\n" or end != b"END\r\n":
                    errors.append(key)
            s.close()
            done.append(k)
        except OSError as e:
            errors.append(str(e))

    ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(f"memcached: {len(done)} clients x {pairs} set + get, {len(errors)} errors")
    return 0 if not errors and len(done) == clients else 1


def spread(xs):
    return statistics.median(xs), min(xs), max(xs)


def verdict(lo, hi, target):
    if hi <= target:
        return "met"
    if lo > target:
        return "NOT met"
    return "uncertain (spread crosses it)"


def summary(results_path, target):
    rows = [json.loads(line) for line in open(results_path) if line.strip()]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    verdicts = []
    for case in cases:
        mine = [r for r in rows if r["case"] == case]
        sides = list(dict.fromkeys(r["side"] for r in mine))
        print(f"-- {case}: {len(mine) // max(len(sides), 1)} interleaved rounds, "
              f"{mine[0]['requests']} requests each")
        cpu, sw = {}, {}
        for side in sides:
            runs = [r for r in mine if r["side"] == side]
            cpu[side] = [r["cpu_ns"] / r["requests"] / 1000 for r in runs]
            sw[side] = [r["vcsw"] / r["requests"] for r in runs]
            m, lo, hi = spread(cpu[side])
            sm, slo, shi = spread(sw[side])
            names = {}
            for r in runs:
                for name, (count, v) in r["by_name"].items():
                    names.setdefault(name, ([], []))
                    names[name][0].append(count)
                    names[name][1].append(v)
            per_name = ", ".join(
                f"{n} x{max(c)} {statistics.median(v):.0f}"
                for n, (c, v) in sorted(names.items(), key=lambda kv: -statistics.median(kv[1][1])))
            print(f"   {side:<10} CPU/request {m:6.1f} us ({lo:.1f}-{hi:.1f})   "
                  f"voluntary switches/request {sm:5.2f} ({slo:.2f}-{shi:.2f})")
            print(f"   {'':<10} switches by thread name (threads, median per run): {per_name}")
        nat = cpu.get("native")
        for side in sides:
            if side == "native" or not nat:
                continue
            pre = cpu[side]
            ratio = statistics.median(pre) / statistics.median(nat)
            lo, hi = min(pre) / max(nat), max(pre) / min(nat)
            v = verdict(lo, hi, target)
            verdicts.append((case, side, ratio, lo, hi, v))
            # Each round's preloaded run against the native run just before it: the load of
            # the machine drifts between rounds more than within one.
            native_of = {r["round"]: r["cpu_ns"] / r["requests"] for r in mine if r["side"] == "native"}
            paired = [r["cpu_ns"] / r["requests"] / native_of[r["round"]]
                      for r in mine if r["side"] == side and r["round"] in native_of]
            pairs = f", round by round {min(paired):.2f}-{max(paired):.2f}" if paired else ""
            print(f"   {side}/native CPU per request: {ratio:.2f}x (range {lo:.2f}-{hi:.2f}{pairs})")
    print(f"== verdicts: server CPU per request under LD_PRELOAD vs native, target <= {target:.2f}x")
    for case, side, ratio, lo, hi, v in verdicts:
        mark = "  " if v == "met" else ">>"
        print(f"{mark} {case:<22} {side:<7} {ratio:5.2f}x ({lo:.2f}-{hi:.2f}): target {v}")
    return 0


def pausing_load(port, pairs, gap):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    for i in range(pairs):
        k = b"k%d" % (i % 100)
        s.sendall(b"set " + k + b" 0 0 5\r\nhello\r\n")
        assert f.readline() == b"STORED\r\n"
        time.sleep(gap)
        s.sendall(b"get " + k + b"\r\n")
        assert f.readline().startswith(b"VALUE")
        assert f.readline() == b"hello\r\n" and f.readline() == b"END\r\n"
        time.sleep(gap)
    return 0


def main(argv):
    cmd = argv[1]
    if cmd == "snapshot":
        print(json.dumps(snapshot(int(argv[2]))))
        return 0
    if cmd == "delta":
        delta(argv[2], int(argv[3]), argv[4], argv[5], argv[6], argv[7])
        return 0
    if cmd == "memcached":
        return memcached_load(int(argv[2]), int(argv[3]), int(argv[4]))
    if cmd == "pausing":
        return pausing_load(int(argv[2]), int(argv[3]), float(argv[4]))
    if cmd == "summary":
        return summary(argv[2], float(argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
