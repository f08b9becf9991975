#!/usr/bin/env bash
# bench-latency.sh - registry latency of healthreg (issue 6): a target
# failing -> etcd DELETE / Consul ?passing drops it, recovery -> back, and
# SIGTERM -> gone; p50/p99/max. See scripts/bench_latency.py for the method.
#
#   scripts/bench-latency.sh [--interval 100ms] [--flips 50] [--runs 20]
#                            [--backend etcd|consul|both]
#
# Needs python3 and etcd (the etcd part is skipped without it). Loopback
# only; builds healthreg (RelWithDebInfo) unless HEALTHREG=path is given.
set -eu
. "$(dirname "$0")/bench-common.sh"
HR=$(bench_healthreg) || { echo "cannot build healthreg" >&2; exit 1; }
exec python3 "$HR_ROOT/scripts/bench_latency.py" --healthreg "$HR" "$@"
