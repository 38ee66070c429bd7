#!/usr/bin/env bash
# Random programs that fork (crates/eventpoll-capi/tests/c/fork_random.c), run natively (the
# kernel's epoll) and under LD_PRELOAD=libeventpoll.so with each driver, transcripts compared
# round by round. An instance open at a fork is handed over to the kernel's epoll
# (crates/eventpoll-capi/src/handover.rs); this checks the hand-over keeps what Linux has.
# Usage:
#   scripts/capi-fork-random.sh
#   SEEDS="1 2 3" COUNT=100 DRIVERS="uring epoll" scripts/capi-fork-random.sh
# Defaults: SEEDS="1 2 3 4 5 6 7 8", COUNT=200, DRIVERS="uring epoll" (EVENTPOLL_DRIVER; the
# poll driver has known deviations, README deviation 10: DRIVERS=poll to see them).
# Prints the first differing round of each seed and driver that is not a known difference;
# exits 1 if any such round differs. Known differences (FORK_KNOWN, "driver:seed:round"; the
# runs are deterministic, so the list is exact for the default seeds and count), all
# documented in crates/eventpoll-capi/README.md deviation 4 (none in the test's own output:
# native runs repeat exactly):
#   A  an item on the ready list but not ready at the fork loses its ready-list place (the
#      kernel queues only ready items): a later report comes after items woken after the
#      fork instead of before them (four rounds of this kind, whose files were ready for
#      another condition, became exact on 2026-12-06: 5:146 5:172 6:187 8:86);
#   D1 a ghost item whose number is in use at the fork is filed under a hidden number (a
#      later ADD of its file under the old number succeeds where Linux says EEXIST);
#   E  (epoll driver only) wakeups of two directions of different files between two calls
#      come back in the order of the directions (deviation 1).
KNOWN_A="1:39 3:5 3:40 4:37 6:104 6:153 8:36 8:161"
KNOWN_D1="4:23 6:141 8:65"
KNOWN_E="2:45 8:141"
default_known=""
for r in $KNOWN_A $KNOWN_D1; do default_known+=" uring:$r epoll:$r"; done
for r in $KNOWN_E; do default_known+=" epoll:$r"; done
set -euo pipefail
SEEDS="${SEEDS:-1 2 3 4 5 6 7 8}"
COUNT="${COUNT:-200}"
DRIVERS="${DRIVERS:-uring epoll}"
FORK_KNOWN="${FORK_KNOWN-$default_known}"
PROFILE="${PROFILE:-release}"
source "$(dirname "$0")/capi-lib.sh"
build_lib
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cc -O1 -w -o "$TMP/fork_random" "$ROOT/crates/eventpoll-capi/tests/c/fork_random.c"

nseeds=0
ndrivers=0
for _ in $DRIVERS; do ndrivers=$((ndrivers + 1)); done
total=0
for seed in $SEEDS; do
    nseeds=$((nseeds + 1))
    "$TMP/fork_random" "$seed" "$COUNT" > "$TMP/native.txt"
    for driver in $DRIVERS; do
        EVENTPOLL_DRIVER="$driver" LD_PRELOAD="$LIB" "$TMP/fork_random" "$seed" "$COUNT" \
            > "$TMP/$driver.txt" || echo "seed $seed driver $driver: exit status $?"
        n=$(FORK_KNOWN="$FORK_KNOWN" python3 - "$TMP/native.txt" "$TMP/$driver.txt" "$seed" "$driver" <<'PY'
import sys, difflib
def rounds(f):
    d, cur = {}, None
    for line in open(f):
        line = line.rstrip("\n")
        if line.startswith("round "):
            cur = int(line.split()[1]); d[cur] = []
        elif cur is not None:
            d[cur].append(line)
    return d
native, lib = rounds(sys.argv[1]), rounds(sys.argv[2])
seed, driver = sys.argv[3], sys.argv[4]
import os
known = {int(k.split(":")[2]) for k in os.environ.get("FORK_KNOWN", "").split()
         if k.split(":")[:2] == [driver, seed]}
differ = [r for r in sorted(set(native) | set(lib)) if native.get(r) != lib.get(r)]
bad = [r for r in differ if r not in known]
gone = sorted(known - set(differ))
if differ:
    print(f"seed {seed} driver {driver}: {len(differ) - len(bad)} known difference(s)",
          file=sys.stderr)
if gone:
    print(f"seed {seed} driver {driver}: known difference(s) no longer there: "
          f"{' '.join(map(str, gone))} (update FORK_KNOWN)", file=sys.stderr)
if bad:
    r = bad[0]
    print(f"seed {seed} driver {driver}: {len(bad)} new round(s) differ: {' '.join(map(str, bad))}",
          file=sys.stderr)
    print(f"  first: round {r} (native vs LD_PRELOAD)", file=sys.stderr)
    for l in difflib.unified_diff(native.get(r, []), lib.get(r, []), "native", driver,
                                  lineterm="", n=3):
        print("    " + l, file=sys.stderr)
print(len(bad))
PY
)
        total=$((total + n))
    done
done
echo "fork random: $nseeds seeds x $COUNT rounds, $ndrivers drivers: $total differences besides the $(echo $FORK_KNOWN | wc -w) known"
[ "$total" -eq 0 ]
