#!/usr/bin/env bash
# The fleet floor, the issue's 20 rounds (issue 14 §2): 5 `healthreg run`
# agents of one service, min_healthy 2, against a real etcd
# (registry.etcd.min_healthy) or the Consul agent emulator with its KV
# store (registry.consul.min_healthy); per round four fail at the same
# moment (random which, random jitter), one leaver recovers, then all.
# Prints each round: which stayed, which left, the lowest registered
# count seen (etcd: its watch; Consul: the emulator's [HEALTH] history),
# and the removals before the first recovery. The assertions are the
# tests' (tests/integration/test_fleet_floor.py and
# test_fleet_floor_consul.py, test_rounds), which the suite runs with 3
# rounds.
#   scripts/floor-rounds.sh [--registry etcd|consul] [ROUNDS]   default etcd, 20
#   HR_FLOOR_SEED=n                      repeat a run's random choices
#   HR_BUILD_DIR=dir                     build directory (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."

registry=etcd
if [ "${1:-}" = "--registry" ]; then
	registry=${2:-}
	shift 2 || { echo "usage: $0 [--registry etcd|consul] [ROUNDS]" >&2; exit 64; }
fi
case $registry in
etcd) test=test_fleet_floor.TestFleetFloor.test_rounds ;;
consul) test=test_fleet_floor_consul.TestFleetFloorConsul.test_rounds ;;
*) echo "$0: --registry etcd or consul, not \"$registry\"" >&2; exit 64 ;;
esac
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
 python3 -m unittest -v "$test") || rc=$?
[ -s "$out" ] || { echo "no round finished" >&2; exit 1; }
python3 - "$out" "$(( $(date +%s) - start ))" "$registry" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
consul = sys.argv[3] == "consul"
print("%s: seed %d, %d rounds, %s s; 5 agents, min_healthy 2" %
      (sys.argv[3], doc["seed"], len(doc["rounds"]), sys.argv[2]))
conflicts = "cas_conflicts" if consul else "txn_conflicts"
print("round jitter_s kept left       returned min_registered "
      "removals_before_recovery removals %s" % conflicts)
for r in doc["rounds"]:
    print("%5d %8.3f %-4s %-10s %8d %14d %24d %8d %13d" % (
        r["round"], r["jitter_s"], str(r["kept"]), str(r["left"]),
        r["returned"], r["min_registered"], r["removals_before_recovery"],
        r["removals"], r[conflicts]))
lo = min(r["min_registered"] for r in doc["rounds"])
hi = max(r["removals_before_recovery"] for r in doc["rounds"])
if consul:
    print("lowest passing-or-warning count in any round: %d" %
          min(r["min_passing_or_warning"] for r in doc["rounds"]))
    print("leaver-list writes that lost their cas and decided again: %d" %
          sum(r[conflicts] for r in doc["rounds"]))
else:
    print("guarded deletes that lost their txn and decided again: %d" %
          sum(r[conflicts] for r in doc["rounds"]))
print("lowest registered count in any round: %d (floor 2); most removals "
      "before a recovery: %d (limit 5 - 2 = 3)" % (lo, hi))
PY
exit $rc
