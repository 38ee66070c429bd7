#!/usr/bin/env bash
# Count, deterministically, what one epoll_ctl costs the engine: instructions and atomic
# read-modify-write instructions (`lock`-prefixed ones and `xchg` with memory) per ADD+DEL
# pair and per MOD, through FdTable::epoll_ctl (crates/eventpoll/examples/ctl_loop.rs).
#   scripts/ctl-atomics.sh          N = 1000 calls of each shape (after a warm-up)
#   scripts/ctl-atomics.sh 5000     another N (the figures per call do not depend on it)
#   VERBOSE=1 scripts/ctl-atomics.sh    also where the atomics are (function: count per call)
# Method: callgrind (--dump-instr=yes) collects inside the measured loop only; each executed
# instruction address of every object (the example, libc, ld.so) is looked up in objdump's
# disassembly of that object, and the executions of atomic instructions are summed.
# Needs valgrind, objdump and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --quiet --release -p eventpoll --example ctl_loop
bin="$CARGO_TARGET_DIR/release/examples/ctl_loop"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for shape in add-del mod; do
    fn="measured_${shape//-/_}"
    valgrind --tool=callgrind --dump-instr=yes --compress-pos=no --compress-strings=no \
        --toggle-collect="*$fn" --callgrind-out-file="$work/$shape.out" \
        "$bin" "$shape" "$n" >/dev/null 2>"$work/$shape.log" \
        || { cat "$work/$shape.log" >&2; exit 1; }
done
python3 - "$work" "$n" "${VERBOSE:-0}" <<'PY'
import collections, re, subprocess, sys
work, n, verbose = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
atomic_cache = {}

def atomics_of(obj):
    """Addresses of the atomic read-modify-write instructions of an object file."""
    if obj not in atomic_cache:
        out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", obj],
                             capture_output=True, text=True, check=True).stdout
        found = set()
        for line in out.splitlines():
            m = re.match(r"\s*([0-9a-f]+):\s+(.*)", line)
            if not m:
                continue
            insn = m.group(2).strip()
            if insn.startswith("lock ") or (insn.startswith("xchg") and "(" in insn):
                found.add(int(m.group(1), 16))
        atomic_cache[obj] = found
    return atomic_cache[obj]

def count(path):
    """(instructions, atomics, {function: atomics}) of one callgrind profile."""
    ob = fn = None
    skip_next = False
    instrs = 0
    per_addr = collections.Counter()
    where = {}
    npos = 1
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("positions:"):
            npos = len(line.split()) - 1  # e.g. "instr line": the cost follows both
        elif line.startswith("ob="):
            ob = line[3:]
        elif line.startswith("fn="):
            fn = line[3:]
        elif line.startswith("calls="):
            skip_next = True  # the next cost line is the call's inclusive cost
        elif line.startswith("0x"):
            if skip_next:
                skip_next = False
                continue
            fields = line.split()
            addr, cost = fields[0], fields[npos]
            instrs += int(cost)
            per_addr[(ob, int(addr, 16))] += int(cost)
            where[(ob, int(addr, 16))] = fn
    atomics = 0
    by_fn = collections.Counter()
    for (obj, addr), c in per_addr.items():
        if c and addr in atomics_of(obj):
            atomics += c
            by_fn[where[(obj, addr)]] += c
    return instrs, atomics, by_fn

print(f"epoll_ctl through FdTable::epoll_ctl, callgrind, N = {n} per shape")
print(f"{'shape':<16}{'instructions':>14}{'atomics':>10}")
for shape, label in (("add-del", "ADD+DEL pair"), ("mod", "MOD")):
    instrs, atomics, by_fn = count(f"{work}/{shape}.out")
    print(f"{label:<16}{instrs / n:>14.1f}{atomics / n:>10.2f}")
    open(f"{work}/{shape}.atomics", "w").write(f"{atomics / n}\n")
    if verbose:
        for f, c in by_fn.most_common():
            print(f"    {c / n:6.2f}  {f}")
PY
# The floor those atomics put under a pair, measured natively on this machine: one ADD+DEL
# pair's wall time, one uncontended atomic read-modify-write's, and what the pair's atomics
# alone cost (each a full barrier on x86; they do not overlap). Wall times move with the
# machine's load; the counts above do not.
read -r _ pair_ns < <("$bin" timing 200000 | grep '^pair_ns')
read -r _ atomic_ns < <("$bin" timing 200000 | grep '^atomic_ns')
python3 - "$work" "$n" "$pair_ns" "$atomic_ns" <<'PY'
import sys
pair_ns, atomic_ns = float(sys.argv[3]), float(sys.argv[4])
work = sys.argv[1]
per_pair = float(open(f"{work}/add-del.atomics").read())
print(f"native, best of 5: ADD+DEL pair {pair_ns:.0f} ns; one uncontended atomic RMW {atomic_ns:.2f} ns;")
print(f"the pair's {per_pair:.0f} atomics alone: {per_pair * atomic_ns:.0f} ns. Linux's own locking of a pair, in ADD and")
print(f"again in DEL: ep->mtx taken and released, the target's queue lock taken (a spin unlock is a plain")
print(f"store on x86), ep->lock write-taken and released: 10 atomics, {10 * atomic_ns:.0f} ns.")
PY
