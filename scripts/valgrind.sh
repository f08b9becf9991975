#!/usr/bin/env bash
# Run the C tests (the Criterion executables) under valgrind's memcheck.
#   scripts/valgrind.sh                every C test
#   scripts/valgrind.sh config log     the tests whose name contains a word
# Environment: HR_BUILD_DIR=dir (default: build; a build without
# sanitizers, which valgrind cannot run).
#
# Criterion runs each test in a child it spawns by exec, so valgrind
# follows children (--trace-children=yes) except the system programs the
# tests start themselves (shells, python, etcd: anything under /bin,
# /usr/bin, /sbin, /usr/sbin, /usr/local/bin): one log per process, under
# <build dir>/valgrind/<test>/. Prints per test binary the memcheck errors
# and the bytes definitely lost, summed over its processes, and whether
# its tests passed; exits 1 when any binary has an error or a definite
# leak, or a test failed. Slow (minutes): not part of ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
dir=${HR_BUILD_DIR:-build}
case $dir in /*) ;; *) dir=$src/$dir ;; esac

command -v valgrind >/dev/null 2>&1 || {
	echo "valgrind: not installed (scripts/deps.sh installs it)" >&2
	exit 1
}
if grep -qs '^HR_SANITIZE:BOOL=ON' "$dir/CMakeCache.txt"; then
	echo "valgrind: $dir is a sanitizer build; use a plain one (HR_BUILD_DIR=build)" >&2
	exit 1
fi
cmake -S . -B "$dir" >/dev/null
cmake --build "$dir" -j2 >/dev/null

tests=()
for f in tests/unit/test_*.c tests/integration/test_*.c; do
	name=$(basename "$f" .c)
	if [ $# -eq 0 ]; then
		tests+=("$name")
		continue
	fi
	for w in "$@"; do
		case $name in *"$w"*) tests+=("$name"); break ;; esac
	done
done
[ ${#tests[@]} -gt 0 ] || { echo "valgrind: no C test matches $*" >&2; exit 2; }

export HR_BIN=$dir/plugin/healthreg HR_SOURCE_DIR=$src HR_BUILD_DIR=$dir
# Tests that bound a latency widen the bound by this factor (loop.h).
export HR_TEST_TIME_SCALE=${HR_TEST_TIME_SCALE:-10}

# Sum "ERROR SUMMARY: N errors" and "definitely lost: N bytes" over logs.
sum_logs() {
	awk '/ERROR SUMMARY:/ { gsub(",", "", $4); e += $4 }
	     /definitely lost:/ { gsub(",", "", $4); l += $4 }
	     END { printf "%d %d\n", e, l }' "$@"
}

bad=0
for t in "${tests[@]}"; do
	logs=$dir/valgrind/$t
	rm -rf "$logs"
	mkdir -p "$logs"
	start=$(date +%s)
	rc=0
	valgrind --trace-children=yes \
		--trace-children-skip='/bin/*,/usr/bin/*,/usr/sbin/*,/sbin/*,/usr/local/bin/*,*/python3*' \
		--leak-check=full --show-leak-kinds=definite \
		--errors-for-leak-kinds=definite --error-exitcode=99 \
		--num-callers=30 --log-file="$logs/%p.log" \
		"$dir/tests/$t" --jobs 1 >"$logs/stdout" 2>&1 || rc=$?
	read -r errs lost < <(sum_logs "$logs"/*.log)
	procs=$(grep -l 'ERROR SUMMARY' "$logs"/*.log | wc -l)
	verdict=ok
	if [ "$rc" -ne 0 ]; then
		verdict="FAILED (exit $rc: see $logs/stdout)"
	fi
	echo "valgrind: $t: $errs errors, $lost bytes definitely lost ($procs processes, $(( $(date +%s) - start )) s), tests $verdict"
	# valgrind 3.19 (Debian 12) has no pidfd_open: exec checks then poll
	# waitpid instead (check_exec.c).
	if grep -qs 'unhandled amd64-linux syscall: 434' "$logs"/*.log; then
		echo "  note: this valgrind does not implement pidfd_open (syscall 434); exec checks fall back to polling waitpid (docs/testing.md)"
	fi
	if [ "$errs" -ne 0 ] || [ "$lost" -ne 0 ] || [ "$rc" -ne 0 ]; then
		bad=1
		# The first report of each process that has one.
		for l in $(grep -lE 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]' "$logs"/*.log); do
			{ grep -v '^==[0-9]*== *$' "$l" |
				grep -v 'Memcheck,\|Copyright\|Using Valgrind\|Command:\|Parent PID' |
				head -25 | sed "s|^|  |"; } || true
		done
	fi
done
exit $bad
