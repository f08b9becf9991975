#!/usr/bin/env bash
# bench-memory.sh - RSS per configured check: healthreg and HAProxy 2.6.
#
#   scripts/bench-memory.sh [N...]     (default: 100 1000 10000 50000)
#
# Inside a private network namespace, each checker gets N tcp checks of
# idle nginx targets (100 loopback ports) at a long interval (1h), so
# every check has run once and then waits; after SETTLE seconds (5) its
# VmRSS is read. Prints RSS per N and the slope between the smallest and
# the largest N: the marginal bytes per configured check.
set -u

. "$(dirname "$0")/bench-common.sh"

SETTLE=${SETTLE:-5}
bench_need
bench_in_netns "$0" "$@"
bench_setup
[ $# -gt 0 ] || set -- 100 1000 10000 50000
HEALTHREG=$(bench_healthreg) || exit 1
bench_nginx tcp || exit 1

rss_of() { # checker N -> KiB
	local who=$1 n=$2 pid
	if [ "$who" = healthreg ]; then
		bench_hr_config "$BENCH_DIR/m.json" "$n" 1h tcp 1s
		"$HEALTHREG" run -c "$BENCH_DIR/m.json" --log-level error 2>/dev/null &
	else
		bench_haproxy_config "$BENCH_DIR/m.cfg" "$n" 1h tcp
		haproxy -db -f "$BENCH_DIR/m.cfg" 2>/dev/null &
	fi
	pid=$!
	BENCH_PIDS+=("$pid")
	sleep "$SETTLE"
	bench_rss_kib "$pid"
	bench_stop "$pid"
}

printf "%-9s %8s %10s\n" checker N RSS_KiB
for who in healthreg haproxy; do
	: >"$BENCH_DIR/$who"
	for n in "$@"; do
		r=$(rss_of "$who" "$n")
		printf "%-9s %8s %10s\n" "$who" "$n" "$r"
		echo "$n $r" >>"$BENCH_DIR/$who"
	done
	sort -n "$BENCH_DIR/$who" | awk -v who="$who" 'NR == 1 { n0 = $1; r0 = $2 } { n1 = $1; r1 = $2 }
		END { if (n1 > n0) printf "slope %-9s %.0f bytes per configured check (%d -> %d checks)\n", who, (r1 - r0) * 1024 / (n1 - n0), n0, n1 }'
done
