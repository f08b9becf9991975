#!/usr/bin/env bash
# bench-idle.sh - idle cost of healthreg (issue 6: 100 checks at 10 s must
# cost under 0.1 % of one core).
#
#   scripts/bench-idle.sh [http|tcp]        (default http)
#
# Inside a private network namespace (bench-common.sh), nginx serves the
# usual 100 loopback ports (every tenth target fails); healthreg runs N
# checks (100) at INTERVAL (10s) with `--log-level error`, no registry.
# After WARMUP seconds (15: the first runs and the failing checks'
# state changes are over), CPU is read over WINDOW seconds (60) from
# /proc/PID/stat (utime+stime, in clock ticks: 1 tick = 1/CLK_TCK s, so at
# 100 Hz one tick over 60 s is 0.017 %) and from /proc/PID/task/*/schedstat
# (run time in ns, the precise figure). REPEAT (3) runs, one agent each;
# the minimum is the figure to quote, because other work on a shared
# machine only ever adds to it. The load average is printed with each run.
#
# Environment: N, INTERVAL, WARMUP, WINDOW, REPEAT, HEALTHREG (path of the
# agent; default: build one), CHECKERS ("healthreg"; "healthreg haproxy"
# also measures HAProxy 2.6 with the same checks, the bench-checks.sh
# config, alternating in each repeat). STRACE=1 also runs one more window under
# `strace -c -f` and prints the syscall summary (what wakes the agent).
set -u

. "$(dirname "$0")/bench-common.sh"

MODE=${1:-http}
case $MODE in http | tcp) ;; *) echo "usage: $0 [http|tcp]" >&2; exit 64 ;; esac
N=${N:-100}
INTERVAL=${INTERVAL:-10s}
WARMUP=${WARMUP:-15}
WINDOW=${WINDOW:-60}
REPEAT=${REPEAT:-3}
STRACE=${STRACE:-0}
CHECKERS=${CHECKERS:-healthreg}

bench_need
bench_in_netns "$0" "$@"
bench_setup

sched_ns() { # run time of every thread of PID, in ns
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d\n", s }'
}

HR=$(bench_healthreg) || { echo "cannot build healthreg" >&2; exit 1; }
cfg="$BENCH_DIR/healthreg.json"
bench_hr_config "$cfg" "$N" "$INTERVAL" "$MODE" 1s
bench_nginx "$MODE" || exit 1
tck=$(getconf CLK_TCK)

hcfg="$BENCH_DIR/haproxy.cfg"
bench_haproxy_config "$hcfg" "$N" "$INTERVAL" "$MODE"

start_checker() { # $1: healthreg|haproxy; sets pid
	if [ "$1" = haproxy ]; then
		haproxy -db -f "$hcfg" 2>>"$BENCH_DIR/haproxy.stderr" &
	else
		"$HR" run -c "$cfg" --log-level error 2>>"$BENCH_DIR/healthreg.stderr" &
	fi
	pid=$!
	BENCH_PIDS+=("$pid")
}

echo "# idle: $MODE N=$N interval=$INTERVAL warmup=${WARMUP}s window=${WINDOW}s repeat=$REPEAT CLK_TCK=$tck checkers: $CHECKERS"
echo "# checker   run  ticks  cpu%(ticks)  cpu%(schedstat)  wakeups/s  loadavg(1m) before"
: >"$BENCH_DIR/runs"
for ((r = 1; r <= REPEAT; r++)); do
	for who in $CHECKERS; do
		load=$(cut -d' ' -f1 /proc/loadavg)
		start_checker "$who"
		sleep "$WARMUP"
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$who exited early:" >&2
			cat "$BENCH_DIR/$who.stderr" >&2
			exit 1
		fi
		c0=$(bench_cpu_ticks "$pid")
		s0=$(sched_ns "$pid")
		v0=$(awk '/^voluntary_ctxt_switches/ { print $2 }' /proc/"$pid"/status)
		t0=$(date +%s.%N)
		sleep "$WINDOW"
		c1=$(bench_cpu_ticks "$pid")
		s1=$(sched_ns "$pid")
		v1=$(awk '/^voluntary_ctxt_switches/ { print $2 }' /proc/"$pid"/status)
		t1=$(date +%s.%N)
		bench_stop "$pid"
		awk -v who="$who" -v r="$r" -v c="$((c1 - c0))" -v s="$((s1 - s0))" -v v="$((v1 - v0))" \
			-v t0="$t0" -v t1="$t1" -v tck="$tck" -v load="$load" 'BEGIN {
			dt = t1 - t0
			printf "%-9s %5d %6d %11.3f %16.4f %10.1f %s\n", who, r, c, 100 * c / tck / dt, 100 * s / 1e9 / dt, v / dt, load
		}' | tee -a "$BENCH_DIR/runs"
	done
done

if [ "$STRACE" = 1 ] && command -v strace >/dev/null 2>&1; then
	start_checker healthreg
	sleep "$WARMUP"
	echo "# healthreg: strace -c -f over ${WINDOW}s:"
	timeout -s INT "$WINDOW" strace -c -f -p "$pid" 2>&1 | sed 's/^/  /'
	bench_stop "$pid"
fi

bench_stop "$NGINX_PID"
for who in $CHECKERS; do
	awk -v who="$who" -v mode="$MODE N=$N interval=$INTERVAL" '$1 == who {
		if (!n || $5 < ms) { ms = $5; mt = $4 }
		n++
	} END {
		if (n) printf "RESULT idle %s %s: min over %d runs: %.4f %% of one core (schedstat), %.3f %% (ticks); target < 0.1 %%\n", who, mode, n, ms, mt
	}' "$BENCH_DIR/runs"
done
