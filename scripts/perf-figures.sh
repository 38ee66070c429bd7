#!/usr/bin/env bash
# Every performance target of the project, measured in one sitting and summarised as one
# table: each figure as a same-run ratio against the kernel with the range its spreads allow,
# the target, a verdict only when that whole range is on one side of it, and the exact
# command that produced it. README's Performance table is this script's output.
#
#   scripts/perf-figures.sh [OUT_DIR]        # default target/perf-figures; about 6 minutes
#
# Env: EVENTPOLL (an eventpoll binary; default: build the release CLI), WAKE_RUNS (default 5:
# the cross-thread round trip's target is the median of 5 interleaved runs), BUDGET (seconds
# for the pipetest, default 120), PASSES (default 5).
# The machine's load is recorded at the start and end of each run; on a shared 2-core
# machine figures move with it, which is why every figure carries its spread.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-target/perf-figures}"
WAKE_RUNS="${WAKE_RUNS:-5}"
BUDGET="${BUDGET:-120}"
PASSES="${PASSES:-5}"
mkdir -p "$OUT"
if [ -z "${EVENTPOLL:-}" ]; then
    cargo build --release -q -p eventpoll-cli
    EVENTPOLL=target/release/eventpoll
fi
log() { printf '== %s (load average %s)\n' "$1" "$(cut -d' ' -f1 /proc/loadavg)"; }

PIPETEST=(bench --methods epoll-lt,epoll-et,eventpoll-lt,eventpoll-et,eventpoll-host-pipes,eventpoll-host-pipes-uring
    --sizes 10,100,1000,10000,100000 --passes "$PASSES" --budget "$BUDGET" --no-svg)
log "pipetest: eventpoll ${PIPETEST[*]}"
"$EVENTPOLL" "${PIPETEST[@]}" --json "$OUT/pipetest.json" > "$OUT/pipetest.txt" 2>&1

log "micro: eventpoll bench micro"
"$EVENTPOLL" bench micro --json "$OUT/micro.json" > "$OUT/micro.txt" 2>&1

# The round trip alone, WAKE_RUNS times; each run alternates the kernel and eventpoll.
for i in $(seq "$WAKE_RUNS"); do
    log "wake $i/$WAKE_RUNS: eventpoll bench micro --only wake"
    "$EVENTPOLL" bench micro --only wake --json "$OUT/wake-$i.json" > "$OUT/wake-$i.txt" 2>&1
done

CONTENTION=(bench contention --threads 1,2,4,8 --modes lt,et,oneshot --duration 0.5 --passes 3
    --eventfds 256 --harvesters 1 --svg "$OUT/contention.svg")
log "contention: eventpoll ${CONTENTION[*]}"
"$EVENTPOLL" "${CONTENTION[@]}" --json "$OUT/contention.json" > "$OUT/contention.txt" 2>&1
log "done"

python3 - "$OUT" "$WAKE_RUNS" "${PIPETEST[*]}" "${CONTENTION[*]}" <<'PY' | tee "$OUT/figures.md"
import json, statistics, sys
out, wake_runs, pipetest_cmd, contention_cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
pt = json.load(open(f"{out}/pipetest.json"))
mi = json.load(open(f"{out}/micro.json"))
co = json.load(open(f"{out}/contention.json"))
wakes = [json.load(open(f"{out}/wake-{i}.json")) for i in range(1, wake_runs + 1)]

def si(x):
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.3g} {unit}"
    return f"{x:.3g}"

def ns(x):
    return f"{x / 1000:.3g} µs" if x >= 1000 else f"{x:.3g} ns"

def verdict(lo, hi, target, higher_is_better=True):
    if higher_is_better:
        return "met" if lo >= target else ("NOT met" if hi < target else "uncertain (spread crosses it)")
    return "met" if hi <= target else ("NOT met" if lo > target else "uncertain (spread crosses it)")

rows = []
def row(figure, measured, ratio, lo, hi, target_text, target, cmd, higher=True):
    rows.append((figure, measured, f"{ratio:.2f}× ({lo:.2f}–{hi:.2f}×)", target_text,
                 verdict(lo, hi, target, higher), cmd))

cells = {(c["method"], c["requested_n"]): c for c in pt["cells"] if c["status"] == "ok"}
def cell(method, n):
    return cells.get((method, n))
def ratio_of(engine, n, kernel="epoll-lt"):
    for r in pt["ratios"]:
        if r["engine"] == engine and r["requested_n"] == n and r["kernel"] == kernel:
            return r
    return None
def tps(c):
    return f"{si(c['tokens_per_sec'])} ({si(c['tokens_per_sec_min'])}–{si(c['tokens_per_sec_max'])}) tokens/s"

P = "[P]"
def cell_ratio(e, k):
    return (e["tokens_per_sec"] / k["tokens_per_sec"], e["tokens_per_sec_min"] / k["tokens_per_sec_max"],
            e["tokens_per_sec_max"] / k["tokens_per_sec_min"])
k10 = cell("epoll-lt", 10000)
for eng, name in (("eventpoll-lt", "LT"), ("eventpoll-et", "ET")):
    e = cell(eng, 10000)
    if e and k10:
        row(f"pipetest in-process {name}, N = 10,000 vs kernel epoll LT at {k10['n']:,}",
            f"{tps(e)} vs {tps(k10)}", *cell_ratio(e, k10), "≥ 10×", 10, P)
for eng, name in (("eventpoll-lt", "LT"), ("eventpoll-et", "ET")):
    big, small = cell(eng, 100000), cell(eng, 1000)
    if big and small:
        f = big["tokens_per_sec"] / small["tokens_per_sec"]
        lo = big["tokens_per_sec_min"] / small["tokens_per_sec_max"]
        hi = big["tokens_per_sec_max"] / small["tokens_per_sec_min"]
        row(f"pipetest in-process {name}, N = 100,000 ÷ N = 1,000 (flatness)",
            f"{si(big['tokens_per_sec'])} ÷ {si(small['tokens_per_sec'])} tokens/s", f, lo, hi, "≥ 0.6", 0.6, P)
for eng, name, target in (("eventpoll-host-pipes-uring", "io_uring driver", 0.9),
                          ("eventpoll-host-pipes", "kernel-epoll driver", 0.85)):
    for n in (10, 100, 1000, 10000):
        r = ratio_of(eng, n)
        if r:
            row(f"pipetest over host pipes, {name}, N = {r['engine_n']:,}",
                f"{tps(cell(eng, n))}", r["tokens_per_sec_ratio"], *r["tokens_per_sec_ratio_range"],
                f"≥ {target}×", target, P)

M = "[M]"
def fmt(f, v):
    if v is None:
        return "?"
    return f"{v:.1f} bytes" if f["unit"] == "bytes" else (ns(v) if f["unit"] == "ns" else f"{v:.2f}")
for f in mi["figures"]:
    if f["key"] == "wake_round_trip":
        continue
    e, k = f["eventpoll"], f["kernel"]
    def side(x):
        if "min" in x:
            return f"{fmt(f, x['value'])} ({fmt(f, x['min'])}–{fmt(f, x['max'])})"
        return fmt(f, x["value"]) if x.get("value") is not None else x.get("reason", "—")
    measured = side(e) if e else "—"
    if k:
        measured += f" vs {side(k)}"
    if f.get("kernel_over_eventpoll") is not None:
        lo, hi = f["kernel_over_eventpoll_range"]
        ratio = f"{f['kernel_over_eventpoll']:.2f}× ({lo:.2f}–{hi:.2f}×)"
    else:
        ratio = "—"
    rows.append((f["label"], measured, ratio, f["target"] or "—", f["target_verdict"] or "—", M))

W = "[W]"
ratios = []
for w in wakes:
    f = next(x for x in w["figures"] if x["key"] == "wake_round_trip")
    ratios.append(f["kernel_over_eventpoll"])
med = statistics.median(ratios)
rows.append((f"cross-thread wake round trip, median of {wake_runs} runs (kernel ÷ eventpoll per run)",
             ", ".join(f"{r:.2f}×" for r in ratios), f"{med:.2f}× ({min(ratios):.2f}–{max(ratios):.2f}×)",
             "median ≥ 1.0×", "met" if med >= 1.0 else "NOT met", W))

C = "[C]"
for r in co["ratios"]:
    lo, hi = r["range"]
    sides = {c["side"]: c for c in co["cells"] if c["mode"] == r["mode"] and c["producers"] == r["producers"]}
    def epm(c):
        return f"{c['events_per_ms']:,.0f} ({c['events_per_ms_min']:,.0f}–{c['events_per_ms_max']:,.0f})" if c else "?"
    row(f"contention {r['mode']}, {r['producers']} producer(s), events/ms eventpoll ÷ kernel",
        f"{epm(sides.get('eventpoll'))} vs {epm(sides.get('kernel'))} events/ms", r["eventpoll_over_kernel"], lo, hi, "> 1× (ahead)", 1.0, C)

load = (pt.get("load_1min_end"), co.get("load_1min_end"))
print(f"Machine: {pt['machine'].get('cpu_model')}, {pt['machine'].get('cores')} cores; "
      f"load average at the end of the pipetest {load[0]}, of the contention run {load[1]}.")
print()
print("| figure | measured (median, min–max) | ratio vs kernel (range from spreads) | target | verdict | command |")
print("|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(str(x) for x in r) + " |")
print()
print(f"- [P] `eventpoll {pipetest_cmd}`: each cell's median pass; min–max over every stretch of every pass")
print("- [M] `eventpoll bench micro`: each figure the best of its trials, min–max over them")
print(f"- [W] `eventpoll bench micro --only wake`, run {wake_runs} times; each run alternates the kernel and eventpoll")
print(f"- [C] `eventpoll {contention_cmd}`: each cell's median pass, min–max over the passes")
PY
