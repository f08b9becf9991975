#!/usr/bin/env bash
# bench-insns.sh - user-space instructions per check, counted by callgrind:
# a figure that does not move with the machine's load, for comparing two
# builds of healthreg (before/after a change) where CPU time is too noisy.
#
#   scripts/bench-insns.sh [http|tcp]...         (default: http tcp)
#
# Inside a private network namespace, nginx serves the usual 100 loopback
# ports (every tenth target fails); each binary in HEALTHREGS (default: a
# build of this tree) runs N (200) checks at INTERVAL (1s) under
# `valgrind --tool=callgrind` with instrumentation off; after WARMUP (5 s)
# it is switched on for WINDOW seconds (20), then the counts are dumped.
# Prints, per binary and mode, the checks performed in the window (nginx
# requests for http, TCP ActiveOpens for tcp) and instructions per check.
# Kernel work (syscalls, the TCP stack) is not counted: see bench-checks.sh
# for CPU time. CG_KEEP=DIR keeps each callgrind profile there
# (callgrind_annotate compares them function by function). Prints
# numbers, asserts nothing.
set -u

. "$(dirname "$0")/bench-common.sh"

N=${N:-200}
INTERVAL=${INTERVAL:-1s}
WARMUP=${WARMUP:-5}
WINDOW=${WINDOW:-20}

command -v valgrind >/dev/null 2>&1 || apt-get install -y valgrind >&2
bench_need
bench_in_netns "$0" "$@"
bench_setup
[ $# -gt 0 ] || set -- http tcp
if [ -z "${HEALTHREGS:-}" ]; then
	HEALTHREGS=$(bench_healthreg) || exit 1
fi

one() { # binary mode -> "checks insns_per_check"
	local bin=$1 mode=$2 out="$BENCH_DIR/cg.out" pid n0 n1 ir
	rm -f "$out"*
	valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
		"$bin" run -c "$BENCH_DIR/hr.json" --log-level error \
		2>>"$BENCH_DIR/valgrind.stderr" &
	pid=$!
	BENCH_PIDS+=("$pid")
	sleep "$WARMUP"
	callgrind_control -i on "$pid" >/dev/null 2>&1
	if [ "$mode" = http ]; then n0=$(bench_nginx_requests); else n0=$(bench_active_opens); fi
	sleep "$WINDOW"
	if [ "$mode" = http ]; then n1=$(($(bench_nginx_requests) - 1)); else n1=$(bench_active_opens); fi
	callgrind_control -d "$pid" >/dev/null 2>&1
	bench_stop "$pid"
	if [ -n "${CG_KEEP:-}" ]; then
		mkdir -p "$CG_KEEP"
		cat "$out"* >"$CG_KEEP/$mode.$(basename "$bin").callgrind"
	fi
	ir=$(cat "$out"* 2>/dev/null | awk '/^summary:/ { s += $2 } END { print s + 0 }')
	awk -v k="$((n1 - n0))" -v ir="$ir" 'BEGIN { printf "%d %.0f\n", k, k ? ir / k : 0 }'
}

echo "# N=$N interval=$INTERVAL warmup=${WARMUP}s window=${WINDOW}s"
echo "# mode binary checks insns/check"
for mode in "$@"; do
	case $mode in http | tcp) ;; *) echo "usage: $0 [http|tcp]..." >&2; exit 64 ;; esac
	bench_hr_config "$BENCH_DIR/hr.json" "$N" "$INTERVAL" "$mode" 1s
	bench_nginx "$mode" || exit 1
	for bin in $HEALTHREGS; do
		printf "%s %s %s\n" "$mode" "$bin" "$(one "$bin" "$mode")"
	done
	bench_stop "$NGINX_PID"
done
