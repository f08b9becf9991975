#!/usr/bin/env bash
# The fleet floor against a real etcd, the issue's 20 rounds (issue 14 §2):
# 5 `healthreg run` agents of one service, registry.etcd.min_healthy 2;
# per round four fail at the same moment (random which, random jitter),
# one leaver recovers, then all. Prints each round: which stayed, which
# left, the lowest registered count the etcd watch saw, and the removals
# before the first recovery. The assertions are the test's
# (tests/integration/test_fleet_floor.py, test_rounds), which the suite
# runs with 3 rounds.
#   scripts/floor-rounds.sh [ROUNDS]     default 20
#   HR_FLOOR_SEED=n                      repeat a run's random choices
#   HR_BUILD_DIR=dir                     build directory (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-20}
dir=${HR_BUILD_DIR:-build}
cmake -S . -B "$dir" >/dev/null
cmake --build "$dir" -j2 --target healthreg >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT

start=$(date +%s)
rc=0
(cd tests/integration &&
 HR_BIN="$PWD/../../$dir/plugin/healthreg" HR_SOURCE_DIR="$PWD/../.." \
 PYTHONPATH="$PWD/../support" HR_FLOOR_ROUNDS="$rounds" \
 HR_FLOOR_RESULTS="$out" \
 python3 -m unittest -v test_fleet_floor.TestFleetFloor.test_rounds) || rc=$?
[ -s "$out" ] || { echo "no round finished" >&2; exit 1; }
python3 - "$out" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
print("seed %d, %d rounds, %s s; 5 agents, min_healthy 2" %
      (doc["seed"], len(doc["rounds"]), sys.argv[2]))
print("round jitter_s kept left       returned min_registered "
      "removals_before_recovery removals txn_conflicts")
for r in doc["rounds"]:
    print("%5d %8.3f %-4s %-10s %8d %14d %24d %8d %13d" % (
        r["round"], r["jitter_s"], str(r["kept"]), str(r["left"]),
        r["returned"], r["min_registered"], r["removals_before_recovery"],
        r["removals"], r["txn_conflicts"]))
lo = min(r["min_registered"] for r in doc["rounds"])
hi = max(r["removals_before_recovery"] for r in doc["rounds"])
print("guarded deletes that lost their txn and decided again: %d" %
      sum(r["txn_conflicts"] for r in doc["rounds"]))
print("lowest registered count in any round: %d (floor 2); most removals "
      "before a recovery: %d (limit 5 - 2 = 3)" % (lo, hi))
PY
exit $rc
