#!/usr/bin/env bash
# bench-fleet.sh - fleet-scale cost against a real 3-member etcd cluster
# (issue 14 §4): 1 agent x 1,000 services vs 100 agents x 10 services;
# requests and writes reaching etcd in steady state, agent RSS/CPU, etcd
# leader CPU, and the recovery after the cluster is wiped. See
# scripts/bench_fleet.py for the method.
#
#   scripts/bench-fleet.sh [--layouts 1x1000,100x10] [--window 30]
#                          [--downtime 3] [--json FILE]
#
# Needs python3 and etcd. Loopback only; builds healthreg
# (RelWithDebInfo) unless HEALTHREG=path is given. Prints; asserts nothing.
set -eu
. "$(dirname "$0")/bench-common.sh"
command -v etcd >/dev/null 2>&1 || { echo "etcd is not installed (scripts/deps.sh)" >&2; exit 1; }
HR=$(bench_healthreg) || { echo "cannot build healthreg" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 "$HR_ROOT/scripts/bench_fleet.py" --healthreg "$HR" "$@"
