#!/usr/bin/env bash
# healthreg end to end, for a newcomer (under a minute once built):
#   1. installs the missing Debian packages (scripts/deps.sh) and builds
#      the healthreg binary (build/plugin/healthreg);
#   2. starts a web target (HTTP) and a db target (TCP) and a real etcd,
#      all on loopback, with their data in a temp dir;
#   3. runs `healthreg run`: the web target is registered in etcd (its
#      own address and port), and the agent's log lines are shown as they
#      happen;
#   4. shows `healthreg status`, GET /v1/health and GET /metrics;
#   5. stops and restarts the db target: the registration goes and comes
#      back; a maintenance round does the same by hand;
#   6. SIGTERM: healthreg removes the registration at once.
# Everything it started is stopped by PID when it ends, also on failure
# or Ctrl-C. Escape codes only when stdout is a terminal.
#   HR_BUILD_DIR=dir   the build directory (default: build)
#   HR_DEMO_NO_DEPS=1  do not run scripts/deps.sh (tests/integration/test_demo.py)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${HR_BUILD_DIR:-build}
BUILD=${BUILD#"$ROOT"/}

if [ -t 1 ]; then
	B=$'\033[1m' D=$'\033[2m' R=$'\033[0m'
else
	B= D= R=
fi
STEP=0
say() { STEP=$((STEP + 1)); printf '\n%s== %d. %s%s\n' "$B" "$STEP" "$*" "$R"; }
note() { printf '   %s\n' "$*"; }
# Show a command as one would type it (paths under the checkout made
# relative, arguments with blanks quoted; |, &, 2>file, #comment and
# 'quoted' words as they are), then run it.
show_cmd() {
	local a out=
	for a in "$@"; do
		a=${a#"$ROOT"/}
		case $a in
		'|' | '&' | '2>'* | '#'* | "'"*) ;;
		*[[:space:]\'\"\$\(\)\&\|\;\<\>\?\*]*) a="'${a//\'/\'\\\'\'}'" ;;
		esac
		out+="${out:+ }$a"
	done
	printf '%s$ %s%s\n' "$D" "$out" "$R"
}
run() { show_cmd "$@"; "$@"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/healthreg-demo.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "packages: scripts/deps.sh installs what is missing with apt-get"
if [ "${HR_DEMO_NO_DEPS:-}" = 1 ]; then
	note "skipped (HR_DEMO_NO_DEPS=1)"
else
	scripts/deps.sh
	note "cmake, a C compiler, libcurl, libev, cJSON, libmicrohttpd, etcd, curl: present"
fi

say "building healthreg in $BUILD/ with cmake (its output is shown only if it fails)"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
	note "configuring (first build)"
	cmake -S . -B "$BUILD" >"$TMP/build.log" 2>&1 ||
		{ cat "$TMP/build.log"; exit 1; }
fi
note "compiling the healthreg target with $(nproc) jobs (a first build takes a minute or two)"
cmake --build "$BUILD" -j"$(nproc)" --target healthreg >>"$TMP/build.log" 2>&1 ||
	{ cat "$TMP/build.log"; exit 1; }
HR=$(cd "$BUILD" && pwd)/plugin/healthreg
note "the binary: ${HR#"$ROOT"/} ($("$HR" --version | head -n 1)); \`cmake --install $BUILD\` installs it"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_target() { # port -> pid in TARGET_PID
	python3 tests/support/targets.py --port "$1" --port-file "$TMP/t$1" &
	TARGET_PID=$!
	PIDS+=("$TARGET_PID")
	for _ in $(seq 100); do [ -s "$TMP/t$1" ] && return; sleep 0.05; done
	echo "target on $1 did not start" >&2; exit 1
}

# The agent's log, shown as it grows: every line not shown yet.
SHOWN=0
show_log() {
	local n
	[ -f "$TMP/agent.log" ] || return 0
	n=$(wc -l <"$TMP/agent.log")
	if [ "$n" -gt "$SHOWN" ]; then
		sed -n "$((SHOWN + 1)),${n}p" "$TMP/agent.log" |
			sed -E 's/^ts=[0-9-]+T([0-9:.]+)Z /\1 /' | cut -c1-160 |
			sed 's/^/   agent| /'
		SHOWN=$n
	fi
}
count() { grep -c -E "$2" "$1" 2>/dev/null || true; }
# wait_for agent|watch PATTERN N: until the agent's log (or the etcd
# watch) has N lines matching PATTERN, showing the agent's log meanwhile.
wait_for() {
	local f=$TMP/agent.log
	[ "$1" = watch ] && f=$TMP/watch.log
	for _ in $(seq 300); do
		show_log
		if [ "$(count "$f" "$2")" -ge "$3" ]; then
			show_log
			return 0
		fi
		sleep 0.05
	done
	echo "timed out waiting for $3 lines '$2' in $f" >&2; return 1
}
registered() {
	"${ETCDCTL[@]}" get --prefix services/ --print-value-only
}

WEB_PORT=$(free_port); DB_PORT=$(free_port); API=127.0.0.1:$(free_port)
ETCD_CLIENT=$(free_port); ETCD_PEER=$(free_port)

say "starting the service: web on 127.0.0.1:$WEB_PORT (HTTP), its db on 127.0.0.1:$DB_PORT (TCP)"
start_target "$WEB_PORT"
start_target "$DB_PORT"; DB_PID=$TARGET_PID
note "two small Python servers (tests/support/targets.py)"

say "starting etcd on 127.0.0.1:$ETCD_CLIENT (data in $TMP/etcd)"
etcd --name demo --data-dir "$TMP/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
	--advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER" \
	--initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
	--initial-cluster "demo=http://127.0.0.1:$ETCD_PEER" \
	>"$TMP/etcd.log" 2>&1 &
PIDS+=($!)
export ETCDCTL_API=3
ETCDCTL=(etcdctl --endpoints "http://127.0.0.1:$ETCD_CLIENT")
for _ in $(seq 100); do "${ETCDCTL[@]}" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
"${ETCDCTL[@]}" watch --prefix services/ >"$TMP/watch.log" 2>&1 &
PIDS+=($!)
note "etcdctl watch --prefix services/ records every change (shown at the end)"

cat >"$TMP/healthreg.json" <<JSON
{
  "service": {
    "name": "web", "id": "web-1", "address": "127.0.0.1", "port": $WEB_PORT,
    "tags": ["demo"],
    "checks": [
      {"name": "http", "http": "http://127.0.0.1:$WEB_PORT/status/200",
       "interval": "500ms", "timeout": "400ms"},
      {"name": "db", "tcp": "127.0.0.1:$DB_PORT",
       "interval": "500ms", "timeout": "400ms"}
    ]
  },
  "agent": {"api_listen": "$API", "state_file": "$TMP/web-1.state"},
  "registry": {
    "etcd": {"endpoints": ["http://127.0.0.1:$ETCD_CLIENT"], "lease_ttl": "5s"}
  }
}
JSON
say "the config: the web service with an HTTP check on itself and a TCP check on its db"
cat "$TMP/healthreg.json"

say "healthreg validate, then healthreg check (every check once, no registration)"
run "$HR" validate -c "$TMP/healthreg.json"
run "$HR" check -c "$TMP/healthreg.json" || true

say "healthreg run: the agent (its log lines appear below as they happen)"
show_cmd "$HR" run -c "$TMP/healthreg.json" "2>$TMP/agent.log" "&"
"$HR" run -c "$TMP/healthreg.json" 2>"$TMP/agent.log" &
AGENT=$!
PIDS+=("$AGENT")
wait_for agent 'event=ready' 1
wait_for watch '^PUT' 1
wait_for agent 'event=etcd_registered' 1
note "registered in etcd: $(registered)"
note "a client that resolves services/web finds the web target itself:"
run curl -s "http://127.0.0.1:$WEB_PORT/status/200"; echo

say "what the agent shows: healthreg status, GET /v1/health, GET /metrics"
run "$HR" status -c "$TMP/healthreg.json" || true
show_cmd curl -s "http://$API/v1/health" "|" python3 -m json.tool
curl -s "http://$API/v1/health" | python3 -m json.tool
run curl -s -w '(HTTP %{http_code})\n' "http://$API/v1/health?format=text"
show_cmd curl -s "http://$API/metrics" "|" grep -E "'^healthreg_(build|status|check_status|registry)'"
curl -s "http://$API/metrics" | grep -E '^healthreg_(build|status|check_status|registry)' | grep -v ' 0$' || true

say "stopping the db target: its check turns critical, so does the aggregate, and the key goes"
kill "$DB_PID"
wait_for agent 'event=aggregate_status from=passing to=critical' 1
wait_for watch '^DELETE' 1
wait_for agent 'event=etcd_deregistered' 1
note "keys under services/ now: $(registered | grep -c . || true)"
run curl -s -w '(HTTP %{http_code})\n' "http://$API/v1/health?format=text"

say "restarting the db target: passing again, the key is back"
start_target "$DB_PORT"
wait_for agent 'event=aggregate_status from=critical to=passing' 2
wait_for watch '^PUT' 2
wait_for agent 'event=etcd_registered' 2
note "registered in etcd: $(registered)"

say "a maintenance round: out of rotation by hand, checks keep running"
run "$HR" maint enable --reason "demo: kernel upgrade" -c "$TMP/healthreg.json"
wait_for watch '^DELETE' 2
wait_for agent 'event=etcd_deregistered' 2
run curl -s -w '(HTTP %{http_code})\n' "http://$API/v1/health?format=text"
run "$HR" status -c "$TMP/healthreg.json" || true
run "$HR" maint disable -c "$TMP/healthreg.json"
wait_for watch '^PUT' 3
wait_for agent 'event=etcd_registered' 3
note "registered in etcd again: $(registered)"

say "SIGTERM: healthreg revokes its lease, the key disappears at once"
show_cmd kill -TERM "$AGENT" "# the agent"
kill -TERM "$AGENT"
wait "$AGENT" || true
wait_for watch '^DELETE' 3
show_log

say "what etcdctl watch --prefix services/ saw"
cat "$TMP/watch.log"

puts=$(count "$TMP/watch.log" '^PUT'); dels=$(count "$TMP/watch.log" '^DELETE')
if [ "$puts" -eq 3 ] && [ "$dels" -eq 3 ]; then
	say "demo OK: PUT, DELETE (db down), PUT, DELETE (maintenance), PUT, DELETE (SIGTERM)"
	note "next: README.md (install, use), docs/operations.md, man healthreg"
else
	echo "demo FAILED: expected 3 PUTs and 3 DELETEs, saw $puts and $dels" >&2
	exit 1
fi
