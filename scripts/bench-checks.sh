#!/usr/bin/env bash
# bench-checks.sh - healthreg vs HAProxy 2.6 health checks, side by side.
#
#   scripts/bench-checks.sh N INTERVAL http|tcp   one case
#   scripts/bench-checks.sh matrix                http,tcp x N 1000,5000 x
#                                                 1s,100ms + saturation
#
# Method (docs/performance.md): inside a private network namespace, nginx
# serves 100 loopback ports (every tenth target fails: HTTP /fail -> 503,
# TCP a port without a listener); HAProxy (nbthread 1) and healthreg are
# given the same N checks (fall 3 rise 2, a fresh connection per check)
# and run one after the other, alternating which goes first, for ROUNDS
# rounds: WARMUP seconds, then a WINDOW-second window in which the
# checker's CPU (utime+stime), the checks performed (nginx stub_status
# requests for HTTP, the namespace's TCP ActiveOpens for TCP) and its RSS
# are measured. Prints one line per checker per round, the medians, and
# the median of the per-round ratios healthreg/HAProxy.
#
# Environment: ROUNDS (3), WARMUP (5), WINDOW (20), PIN (0; 1 pins the
# checker to CPU 0 and nginx to CPU 1), HEALTHREG (path of the agent;
# default: build one), SAT_N (5000) for the saturation case.
set -u

. "$(dirname "$0")/bench-common.sh"

ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-5}
WINDOW=${WINDOW:-20}
PIN=${PIN:-0}

usage() {
	echo "usage: $0 N INTERVAL http|tcp   |   $0 matrix" >&2
	exit 64
}

# Go/HAProxy duration -> milliseconds (only ms and s are used here).
to_ms() {
	case $1 in
	*ms) echo "${1%ms}" ;;
	*s) awk -v v="${1%s}" 'BEGIN { printf "%d", v * 1000 }' ;;
	*) return 1 ;;
	esac
}

# One measured run of one checker. Prints:
# name checks_per_s cpu_us_per_check rss_kib rss_bytes_per_check cpu_pct
measure() {
	local name=$1 mode=$2 n=$3 pid c0 c1 n0 n1 t0 t1 rss tck
	shift 3
	if [ "$PIN" = 1 ]; then
		taskset -c 0 "$@" 2>>"$BENCH_DIR/$name.stderr" &
	else
		"$@" 2>>"$BENCH_DIR/$name.stderr" &
	fi
	pid=$!
	BENCH_PIDS+=("$pid")
	sleep "$WARMUP"
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "$name exited early" >&2
		bench_forget "$pid"
		return 1
	fi
	tck=$(getconf CLK_TCK)
	c0=$(bench_cpu_ticks "$pid")
	t0=$(date +%s.%N)
	if [ "$mode" = http ]; then n0=$(bench_nginx_requests); else n0=$(bench_active_opens); fi
	sleep "$WINDOW"
	c1=$(bench_cpu_ticks "$pid")
	t1=$(date +%s.%N)
	if [ "$mode" = http ]; then n1=$(($(bench_nginx_requests) - 1)); else n1=$(bench_active_opens); fi
	rss=$(bench_rss_kib "$pid")
	bench_stop "$pid"
	awk -v name="$name" -v c="$((c1 - c0))" -v tck="$tck" -v k="$((n1 - n0))" \
		-v dt="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
		-v rss="$rss" -v n="$n" 'BEGIN {
		cpu = c / tck
		printf "%s %.0f %.1f %d %.0f %.1f\n", name, k / dt, k ? cpu * 1e6 / k : 0, rss, rss * 1024 / n, 100 * cpu / dt
	}' >"$BENCH_DIR/line"
}

run_case() {
	local n=$1 ival=$2 mode=$3 ival_ms to hr cfg hcfg r order line
	ival_ms=$(to_ms "$ival") || usage
	# healthreg's timeout may not exceed the interval (HAProxy: 1s).
	if [ "$ival_ms" -lt 1000 ]; then to=$ival; else to=1s; fi
	hr=$(bench_healthreg) || { echo "cannot build healthreg" >&2; return 1; }
	cfg="$BENCH_DIR/healthreg.json"
	hcfg="$BENCH_DIR/haproxy.cfg"
	bench_hr_config "$cfg" "$n" "$ival" "$mode" "$to"
	bench_haproxy_config "$hcfg" "$n" "$ival" "$mode"
	haproxy -c -q -f "$hcfg" || { echo "bad haproxy config" >&2; return 1; }
	if [ "$PIN" = 1 ]; then bench_nginx "$mode" 1 || return 1; else bench_nginx "$mode" || return 1; fi
	echo "# case: $mode N=$n interval=$ival pin=$PIN rounds=$ROUNDS warmup=${WARMUP}s window=${WINDOW}s"
	echo "# checker   checks/s  cpu_us/check  RSS_KiB  RSS_B/check  cpu%"
	: >"$BENCH_DIR/rows"
	for ((r = 1; r <= ROUNDS; r++)); do
		if ((r % 2)); then order="haproxy healthreg"; else order="healthreg haproxy"; fi
		for who in $order; do
			if [ "$who" = haproxy ]; then
				measure haproxy "$mode" "$n" haproxy -db -f "$hcfg" || continue
			else
				measure healthreg "$mode" "$n" "$hr" run -c "$cfg" --log-level error || continue
			fi
			line=$(cat "$BENCH_DIR/line")
			echo "$r $line" >>"$BENCH_DIR/rows"
			printf "round %d %-9s %8s %12s %8s %12s %6s\n" "$r" $line
		done
	done
	bench_stop "$NGINX_PID"
	summarize "$mode" "$n" "$ival"
}

# Medians per checker and the median of per-round ratios.
summarize() {
	local mode=$1 n=$2 ival=$3 rows="$BENCH_DIR/rows" who col
	for who in haproxy healthreg; do
		printf "median %-9s" "$who"
		for col in 3 4 5 6 7; do
			printf " %s" "$(awk -v w="$who" -v c="$col" '$2 == w { print $c }' "$rows" | median)"
		done
		echo
	done
	awk -v mode="$mode" -v n="$n" -v ival="$ival" -v pin="$PIN" '
		{ v[$1, $2, 3] = $3; v[$1, $2, 4] = $4; v[$1, $2, 5] = $5; r[$1] = 1 }
		END {
			for (k in r) for (c = 3; c <= 5; c++)
				if (v[k, "haproxy", c] > 0 && v[k, "healthreg", c] != "")
					print c, v[k, "healthreg", c] / v[k, "haproxy", c]
		}' "$rows" >"$BENCH_DIR/ratios"
	local rc rt rr
	rc=$(awk '$1 == 4 { print $2 }' "$BENCH_DIR/ratios" | median)
	rt=$(awk '$1 == 3 { print $2 }' "$BENCH_DIR/ratios" | median)
	rr=$(awk '$1 == 5 { print $2 }' "$BENCH_DIR/ratios" | median)
	printf "ratio healthreg/haproxy: cpu_us/check %.2f  checks/s %.2f  RSS %.2f  RSS/check %.2f\n" "$rc" "$rt" "$rr" "$rr"
	printf "RESULT %s %s %s pin=%s hap_cps=%s hap_us=%s hap_rss=%s hr_cps=%s hr_us=%s hr_rss=%s r_cpu=%.2f r_cps=%.2f r_rss=%.2f\n" \
		"$mode" "$n" "$ival" "$PIN" \
		"$(awk '$2 == "haproxy" { print $3 }' "$rows" | median)" \
		"$(awk '$2 == "haproxy" { print $4 }' "$rows" | median)" \
		"$(awk '$2 == "haproxy" { print $5 }' "$rows" | median)" \
		"$(awk '$2 == "healthreg" { print $3 }' "$rows" | median)" \
		"$(awk '$2 == "healthreg" { print $4 }' "$rows" | median)" \
		"$(awk '$2 == "healthreg" { print $5 }' "$rows" | median)" \
		"$rc" "$rt" "$rr"
}

[ $# -ge 1 ] || usage
bench_need
bench_in_netns "$0" "$@"
bench_setup

if [ "$1" = matrix ]; then
	HEALTHREG=$(bench_healthreg) || exit 1
	export HEALTHREG
	: >"$BENCH_DIR/results"
	for mode in http tcp; do
		for n in 1000 5000; do
			for ival in 1s 100ms; do
				PIN=0 run_case "$n" "$ival" "$mode" >"$BENCH_DIR/case"
				cat "$BENCH_DIR/case" >>"$BENCH_DIR/out"
				cat "$BENCH_DIR/case"
			done
		done
		PIN=1 run_case "${SAT_N:-5000}" 100ms "$mode" >"$BENCH_DIR/case"
		cat "$BENCH_DIR/case" >>"$BENCH_DIR/out"
		cat "$BENCH_DIR/case"
	done
	echo
	echo "| mode | N | interval | HAProxy checks/s | HAProxy µs/check | healthreg checks/s | healthreg µs/check | CPU/check ratio | checks/s ratio | RSS HAProxy → healthreg | RSS ratio |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	grep '^RESULT' "$BENCH_DIR/out" | sed 's/[a-z_]*=//g' | awk '{
		sat = ($5 == 1) ? " (saturation, pinned)" : ""
		printf "| %s | %s | %s%s | %s | %s | %s | %s | %s | %s | %.1f → %.1f MiB | %s |\n", $2, $3, $4, sat, $6, $7, $9, $10, $12, $13, $8 / 1024, $11 / 1024, $14
	}'
	exit 0
fi

[ $# -eq 3 ] || usage
case $3 in http | tcp) ;; *) usage ;; esac
run_case "$1" "$2" "$3"
