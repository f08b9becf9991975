#!/usr/bin/env bash
# Build the libFuzzer targets of tests/fuzz (clang, ASan+UBSan) and run
# one or all of them, one at a time.
#   scripts/fuzz.sh                 every target, 60 s each
#   scripts/fuzz.sh config 600      one target (config, duration, http_parse,
#                                   etcd_reply, consul_reply, api, log,
#                                   grpc_wire)
#   scripts/fuzz.sh all 5           every target, 5 s each (the suite's smoke run)
#   scripts/fuzz.sh --build         build only
# Environment:
#   HR_FUZZ_BUILD_DIR=dir   build directory (default: build-fuzz)
#   HR_FUZZ_NO_BUILD=1      use the targets already built there
# Each target starts from its committed seeds (tests/fuzz/corpus/<target>)
# plus what earlier runs found (<build dir>/corpus/<target>, the only
# corpus written to); findings (crash-*, leak-*, timeout-*, oom-*) go to
# <build dir>/findings/<target>/. Prints executions and findings per
# target; exits 1 when anything was found, 77 (skipped) when clang with
# libFuzzer is not available outside CI (in CI, CI=true, that fails).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

want=${1:-all}
secs=${2:-60}
dir=${HR_FUZZ_BUILD_DIR:-build-fuzz}
case $dir in /*) ;; *) dir=$src/$dir ;; esac

skip() {
	echo "fuzz: SKIPPED: $*" >&2
	if [ "${CI:-}" = true ]; then
		echo "fuzz: in CI the fuzz targets must run (scripts/deps.sh installs clang)" >&2
		exit 1
	fi
	exit 77
}

# clang with the libFuzzer runtime (Debian: clang, libclang-rt-14-dev).
probe() {
	local t
	command -v clang >/dev/null 2>&1 || skip "clang is not installed"
	t=$(mktemp -d)
	printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' >"$t/p.c"
	if ! clang -fsanitize=fuzzer,address,undefined "$t/p.c" -o "$t/p" 2>"$t/err"; then
		cat "$t/err" >&2
		rm -rf "$t"
		skip "clang cannot link -fsanitize=fuzzer (libclang-rt-dev missing?)"
	fi
	rm -rf "$t"
}

if [ "${HR_FUZZ_NO_BUILD:-0}" != 1 ]; then
	probe
	cmake -S . -B "$dir" -DHR_FUZZ=ON -DCMAKE_C_COMPILER=clang \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$dir" -j2 --target fuzz >/dev/null
	[ "$want" = --build ] && exit 0
elif ! ls "$dir"/tests/fuzz/fuzz_* >/dev/null 2>&1; then
	probe # skips when clang is what is missing
	echo "fuzz: nothing built in $dir (run scripts/fuzz.sh --build)" >&2
	exit 1
fi

targets=()
for f in tests/fuzz/fuzz_*.c; do
	t=${f#tests/fuzz/fuzz_}
	t=${t%.c}
	if [ "$want" = all ] || [ "$want" = "$t" ]; then
		targets+=("$t")
	fi
done
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no target \"$want\" (one of: $(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_||; s|\.c$||' | tr '\n' ' '))" >&2
	exit 2
fi

# Inputs longer than libFuzzer's default 4096: a config, a Consul output
# over its 4 KiB limit.
max_len() {
	case $1 in
	config) echo 16384 ;;
	consul_reply) echo 9000 ;;
	*) echo 4096 ;;
	esac
}

found=0
for t in "${targets[@]}"; do
	bin=$dir/tests/fuzz/fuzz_$t
	out=$dir/findings/$t
	mkdir -p "$dir/corpus/$t" "$out"
	log=$out/last-run.log
	rc=0
	(cd "$out" && "$bin" -max_total_time="$secs" -timeout=20 \
		-max_len="$(max_len "$t")" -print_final_stats=1 \
		-artifact_prefix="$out/" "$dir/corpus/$t" \
		"$src/tests/fuzz/corpus/$t") >"$log" 2>&1 || rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
	corp=$(find "$dir/corpus/$t" -type f | wc -l)
	if [ "$rc" -ne 0 ]; then
		found=1
		echo "fuzz: $t: FOUND a problem (exit $rc) after ${runs:-?} executions ($cov); the input and $log" >&2
		grep -E 'ERROR|SUMMARY|property violated|runtime error|Test unit written' "$log" | head -12 >&2
	else
		echo "fuzz: $t: ${runs:-?} executions in $secs s ($cov, corpus $corp), 0 findings" >&2
	fi
done
exit $found
