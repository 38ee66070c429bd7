#!/usr/bin/env bash
# The conformance corpus through the C ABI backend (libeventpoll.so over real descriptors),
# compared with the kernel's transcripts scenario by scenario. Usage:
#   scripts/capi-conform.sh [DIR|FILE]...   (default: scenarios/ if present)
source "$(dirname "$0")/capi-lib.sh"
build_lib -p eventpoll-cli
EP="$CARGO_TARGET_DIR/$PROFILE/eventpoll"
export EVENTPOLL_LIB="$LIB"
PATHS=("$@")
[ ${#PATHS[@]} -gt 0 ] || PATHS=("$ROOT/scenarios")
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$EP" conform --backend kernel "${PATHS[@]}" > "$TMP/kernel.txt"
"$EP" conform --backend capi "${PATHS[@]}" > "$TMP/capi.txt"
python3 - "$TMP/kernel.txt" "$TMP/capi.txt" <<'PY'
import sys
def split(f):
    d, cur, order = {}, None, []
    for line in open(f):
        if line.startswith("# /") or line.startswith("# ./") or (line.startswith("# ") and line.rstrip().endswith(".ep")):
            cur = line[2:].strip(); d[cur] = []; order.append(cur)
        elif cur is not None:
            d[cur].append(line.rstrip("\n"))
    return d, order
k, order = split(sys.argv[1]); c, _ = split(sys.argv[2])
if not order:  # a single scenario: no headers
    k = {"scenario": open(sys.argv[1]).read().splitlines()}
    c = {"scenario": open(sys.argv[2]).read().splitlines()}
    order = ["scenario"]
bad = [p for p in order if k[p] != c.get(p)]
for p in bad:
    print(f"FAIL {p}")
    import difflib
    for l in difflib.unified_diff(k[p], c.get(p, []), "kernel", "capi", lineterm="", n=2):
        print("   " + l)
print(f"{len(order) - len(bad)} passed, {len(bad)} failed")
sys.exit(1 if bad else 0)
PY
