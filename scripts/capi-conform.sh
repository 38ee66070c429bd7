#!/usr/bin/env bash
# The conformance corpus through the C ABI backend (libeventpoll.so over real descriptors),
# compared with the kernel's transcripts scenario by scenario. Usage:
#   scripts/capi-conform.sh [DIR|FILE]...   (default: scenarios/ if present)
# Scenarios listed in CAPI_KNOWN (space-separated path suffixes) are known deviations of the
# C ABI (crates/eventpoll-capi/README.md, "Deviations"): their mismatches are printed as
# KNOWN and do not fail the run. CAPI_KNOWN= (empty) makes every mismatch count.
# The kernel-epoll driver (EVENTPOLL_DRIVER=epoll) has four more, all "wakeups the host does
# not show" or its ghost items (deviation 1), listed in scripts/capi-known-epoll.txt and added
# to the default list with that driver (2026-12-06, fourth session: 483 passed, 13 known).
# The default list is scripts/capi-known.txt (each entry with its reason).
known() { grep -v '^#' "$(dirname "$0")/$1" | tr '\n' ' '; }
DEFAULT_KNOWN="$(known capi-known.txt)"
# The kernel-epoll driver is the library's default (since 2026-12-08).
case "${EVENTPOLL_DRIVER:-epoll}" in
    uring | poll) ;;
    *) DEFAULT_KNOWN="$DEFAULT_KNOWN $(known capi-known-epoll.txt)" ;;
esac
CAPI_KNOWN="${CAPI_KNOWN-$DEFAULT_KNOWN}"
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
python3 - "$TMP/kernel.txt" "$TMP/capi.txt" "$CAPI_KNOWN" <<'PY'
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
known = [s for s in sys.argv[3].split() if s]
bad = [p for p in order if k[p] != c.get(p)]
failed = 0
for p in bad:
    is_known = any(p.endswith(s) for s in known)
    failed += not is_known
    print(f"{'KNOWN' if is_known else 'FAIL'} {p}")
    import difflib
    for l in difflib.unified_diff(k[p], c.get(p, []), "kernel", "capi", lineterm="", n=2):
        print("   " + l)
if len(bad) > failed:
    print(f"{len(bad) - failed} known deviation(s), not counted")
print(f"{len(order) - len(bad)} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
