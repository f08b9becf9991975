#!/usr/bin/env bash
# bench-profile.sh - profile healthreg under the bench-checks.sh load.
#
#   scripts/bench-profile.sh N INTERVAL http|tcp [perf|callgrind] [OUTDIR]
#
# Same namespace, nginx target and config as bench-checks.sh; healthreg
# runs WARMUP seconds, then is sampled for WINDOW seconds with
# `perf record` (cpu-clock, call graphs via DWARF) or run whole under
# valgrind --tool=callgrind. Reports are written to OUTDIR (default: a
# temp dir, printed) and the top of the flat profile is printed.
set -u

. "$(dirname "$0")/bench-common.sh"

WARMUP=${WARMUP:-3}
WINDOW=${WINDOW:-10}

[ $# -ge 3 ] || { echo "usage: $0 N INTERVAL http|tcp [perf|callgrind] [OUTDIR]" >&2; exit 64; }
bench_need
bench_in_netns "$0" "$@"
bench_setup

n=$1 ival=$2 mode=$3 tool=${4:-perf}
out=${5:-$(mktemp -d "${TMPDIR:-/tmp}/hr-profile.XXXXXX")}
mkdir -p "$out"
case $ival in *ms) ms=${ival%ms} ;; *s) ms=$((${ival%s} * 1000)) ;; esac
if [ "$ms" -lt 1000 ]; then to=$ival; else to=1s; fi
hr=$(bench_healthreg) || exit 1
bench_hr_config "$BENCH_DIR/hr.json" "$n" "$ival" "$mode" "$to"
bench_nginx "$mode" || exit 1

if [ "$tool" = callgrind ]; then
	valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
		"$hr" run -c "$BENCH_DIR/hr.json" --log-level error 2>"$out/valgrind.log" &
	pid=$!
	BENCH_PIDS+=("$pid")
	sleep $((WARMUP + WINDOW))
	bench_stop "$pid"
	callgrind_annotate --inclusive=no "$out/callgrind.out" 2>/dev/null | head -60 >"$out/flat.txt"
	callgrind_annotate --inclusive=yes "$out/callgrind.out" 2>/dev/null | head -80 >"$out/inclusive.txt"
	cat "$out/flat.txt"
else
	"$hr" run -c "$BENCH_DIR/hr.json" --log-level error &
	pid=$!
	BENCH_PIDS+=("$pid")
	sleep "$WARMUP"
	perf record -q -F 1999 -g --call-graph dwarf,16384 -p "$pid" -o "$out/perf.data" \
		-- sleep "$WINDOW" 2>/dev/null
	bench_stop "$pid"
	perf report -i "$out/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null |
		grep -v '^$' >"$out/report-calls.txt"
	perf report -i "$out/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
		grep -v '^#' | grep -v '^$' | head -50 >"$out/flat.txt"
	perf report -i "$out/perf.data" --children --sort sym --stdio -g none 2>/dev/null |
		grep -v '^#' | grep -v '^$' | head -60 >"$out/inclusive.txt"
	cat "$out/flat.txt"
fi
echo "profile written to $out" >&2
