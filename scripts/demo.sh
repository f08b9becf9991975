#!/usr/bin/env bash
# healthreg end to end, for a newcomer: builds, starts two local targets
# and a real etcd on loopback, runs `healthreg run` with registration in
# etcd, and shows the aggregate and the etcd view (an `etcdctl watch`)
# move passing -> critical -> passing as a target is stopped and
# restarted; then SIGTERM removes the registration at once.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

scripts/deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
HR=$ROOT/build/plugin/healthreg

TMP=$(mktemp -d /tmp/healthreg-demo.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

start_target() { # port -> pid in TARGET_PID
	python3 tests/support/targets.py --port "$1" --port-file "$TMP/t$1" &
	TARGET_PID=$!
	PIDS+=("$TARGET_PID")
	for _ in $(seq 100); do [ -s "$TMP/t$1" ] && return; sleep 0.05; done
	echo "target on $1 did not start" >&2; exit 1
}

API_PORT=$(free_port); DB_PORT=$(free_port)
ETCD_CLIENT=$(free_port); ETCD_PEER=$(free_port)

say "starting two targets: api on $API_PORT (HTTP), db on $DB_PORT (TCP)"
start_target "$API_PORT"
start_target "$DB_PORT"; DB_PID=$TARGET_PID

say "starting etcd on 127.0.0.1:$ETCD_CLIENT (data in a temp dir)"
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

cat >"$TMP/healthreg.json" <<JSON
{
  "service": {
    "name": "web", "id": "web-1", "address": "127.0.0.1", "port": 8080,
    "tags": ["demo"],
    "checks": [
      {"name": "api", "http": "http://127.0.0.1:$API_PORT/status/200",
       "interval": "500ms", "timeout": "400ms"},
      {"name": "db", "tcp": "127.0.0.1:$DB_PORT",
       "interval": "500ms", "timeout": "400ms"}
    ]
  },
  "registry": {
    "etcd": {"endpoints": ["http://127.0.0.1:$ETCD_CLIENT"], "lease_ttl": "5s"}
  }
}
JSON
say "the config ($TMP/healthreg.json)"
cat "$TMP/healthreg.json"

say "healthreg validate / healthreg check"
"$HR" validate -c "$TMP/healthreg.json"
"$HR" check -c "$TMP/healthreg.json" || true

say "healthreg run (agent log below is filtered to state changes)"
"$HR" run -c "$TMP/healthreg.json" 2>"$TMP/agent.log" &
AGENT=$!
PIDS+=("$AGENT")

wait_for() { # file pattern
	for _ in $(seq 200); do grep -q "$2" "$1" && return 0; sleep 0.05; done
	echo "timed out waiting for '$2' in $1" >&2; return 1
}
wait_for "$TMP/agent.log" "event=ready"
wait_for "$TMP/watch.log" "^PUT"
echo "registered: $("${ETCDCTL[@]}" get --prefix services/ --print-value-only)"

say "stopping the db target: the aggregate turns critical, the key is deleted"
kill "$DB_PID"
wait_for "$TMP/agent.log" "event=aggregate_status from=passing to=critical"
wait_for "$TMP/watch.log" "^DELETE"
echo "keys under services/ now: $("${ETCDCTL[@]}" get --prefix services/ --keys-only | grep -c . || true)"

say "restarting the db target: passing again, the key is back"
start_target "$DB_PORT"
wait_for "$TMP/agent.log" "event=aggregate_status from=critical to=passing"
for _ in $(seq 100); do [ "$(grep -c '^PUT' "$TMP/watch.log")" -ge 2 ] && break; sleep 0.05; done

say "SIGTERM: healthreg revokes its lease, the key disappears at once"
kill -TERM "$AGENT"
wait "$AGENT" || true
for _ in $(seq 100); do [ "$(grep -c '^DELETE' "$TMP/watch.log")" -ge 2 ] && break; sleep 0.05; done

say "agent log (state changes)"
grep -E "event=(start|ready|check_status|aggregate_status|etcd_|registry_|shutdown|stopped)" "$TMP/agent.log" | cut -c1-200

say "etcdctl watch --prefix services/ saw"
cat "$TMP/watch.log"

puts=$(grep -c '^PUT' "$TMP/watch.log"); dels=$(grep -c '^DELETE' "$TMP/watch.log")
if [ "$puts" -ge 2 ] && [ "$dels" -ge 2 ]; then
	say "demo OK: PUT -> DELETE -> PUT -> DELETE as the target went down, came back, and healthreg stopped"
else
	echo "demo FAILED: expected 2 PUTs and 2 DELETEs, saw $puts and $dels" >&2
	exit 1
fi
