# bench-common.sh - shared by scripts/bench-*.sh (sourced, not run).
#
# Everything here runs inside a private network namespace (the callers
# re-exec themselves under `unshare -n`), so 127.0.0.1 is a private
# loopback and no port can clash with anything else on the machine.
# Processes are started in the background, remembered by PID and stopped
# by PID; nothing is ever killed by name.

HR_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE_PORT=18000
NPORTS=100
STATUS_PORT=18100

# Packages: installed with apt-get only when the command is missing.
bench_need() {
	local missing=()
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
	command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
	command -v curl >/dev/null 2>&1 || missing+=(curl)
	command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
	command -v ip >/dev/null 2>&1 || missing+=(iproute2)
	command -v cmake >/dev/null 2>&1 || missing+=(cmake)
	if [ ${#missing[@]} -gt 0 ]; then
		echo "installing: ${missing[*]}" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 ||
			{ apt-get update >&2 &&
			  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2; }
	fi
	export PATH="$PATH:/usr/sbin:/sbin"
}

# The agent: $HEALTHREG, or build one (RelWithDebInfo) in a temp dir.
bench_healthreg() {
	if [ -n "${HEALTHREG:-}" ]; then
		echo "$HEALTHREG"
		return
	fi
	local b=${HR_BENCH_BUILD:-${TMPDIR:-/tmp}/healthreg-bench-build}
	cmake -S "$HR_ROOT" -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
		cmake --build "$b" -j2 --target healthreg >/dev/null || return 1
	echo "$b/plugin/healthreg"
}

# Re-run the calling script inside a private network namespace.
# Usage: bench_in_netns "$0" "$@"  (returns only when already inside)
bench_in_netns() {
	if [ "${HR_BENCH_NETNS:-}" = 1 ]; then
		return 0
	fi
	export HR_BENCH_NETNS=1
	exec unshare -n -- bash -c 'ip link set lo up && ulimit -n $(ulimit -Hn) && exec bash "$0" "$@"' "$@"
}

# Temp dir and PID bookkeeping; cleanup on exit stops only our PIDs.
BENCH_PIDS=()
bench_setup() {
	BENCH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hr-bench.XXXXXX")
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

bench_cleanup() {
	local p
	for p in "${BENCH_PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${BENCH_PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	[ -n "${BENCH_DIR:-}" ] && rm -rf "$BENCH_DIR"
}

bench_forget() { # drop a PID from the list after it was stopped
	local p keep=()
	for p in "${BENCH_PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	BENCH_PIDS=("${keep[@]}")
}

bench_stop() { # stop one of our processes by PID and reap it
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	bench_forget "$1"
}

# nginx target: 100 ports; in tcp mode every tenth port has no listener.
# Usage: bench_nginx http|tcp [cpu-list]
bench_nginx() {
	local mode=$1 cpus=${2:-} d="$BENCH_DIR/nginx" k listen=""
	mkdir -p "$d/tmp"
	for ((k = 0; k < NPORTS; k++)); do
		if [ "$mode" = tcp ] && [ $((k % 10)) = 9 ]; then
			continue
		fi
		listen+="        listen 127.0.0.1:$((BASE_PORT + k)) backlog=4096;"$'\n'
	done
	cat >"$d/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 19000;
pid $d/nginx.pid;
error_log $d/error.log crit;
events { worker_connections 18000; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    server {
$listen        location /health { return 200 'ok'; }
        location /fail { return 503; }
    }
    server {
        listen 127.0.0.1:$STATUS_PORT;
        location /nginx_status { stub_status; }
    }
}
EOF
	if [ -n "$cpus" ]; then
		taskset -c "$cpus" nginx -p "$d" -c "$d/nginx.conf" 2>>"$d/stderr" &
	else
		nginx -p "$d" -c "$d/nginx.conf" 2>>"$d/stderr" &
	fi
	NGINX_PID=$!
	BENCH_PIDS+=("$NGINX_PID")
	local i
	for ((i = 0; i < 100; i++)); do
		curl -fsS "http://127.0.0.1:$STATUS_PORT/nginx_status" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "nginx did not start:" >&2
	cat "$d/stderr" "$d/error.log" >&2
	return 1
}

# Requests served by nginx so far (stub_status counter).
bench_nginx_requests() {
	curl -fsS "http://127.0.0.1:$STATUS_PORT/nginx_status" | awk 'NR == 3 { print $3 }'
}

# TCP active opens of this namespace.
bench_active_opens() {
	awk '/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "ActiveOpens") c = i; h = 1 } else print $c }' /proc/net/snmp
}

# CPU of a process in clock ticks (utime + stime).
bench_cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

bench_rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# Target of check i: "port failing" (failing: 1 for every tenth target).
bench_target() {
	local k=$(($1 % NPORTS))
	echo "$((BASE_PORT + k)) $((k % 10 == 9 ? 1 : 0))"
}

# healthreg config: N checks of MODE at INTERVAL (Go duration), fall 3 rise 2.
# Usage: bench_hr_config FILE N INTERVAL http|tcp TIMEOUT
bench_hr_config() {
	awk -v n="$2" -v ival="$3" -v mode="$4" -v to="$5" -v base="$BASE_PORT" -v np="$NPORTS" 'BEGIN {
		printf "{\"service\":{\"name\":\"bench\",\"checks\":[\n"
		for (i = 0; i < n; i++) {
			k = i % np; port = base + k; fail = (k % 10 == 9)
			if (mode == "http")
				t = sprintf("\"http\":\"http://127.0.0.1:%d/%s\"", port, fail ? "fail" : "health")
			else
				t = sprintf("\"tcp\":\"127.0.0.1:%d\"", port)
			printf "%s{\"name\":\"c%d\",%s,\"interval\":\"%s\",\"timeout\":\"%s\",\"failures_before_critical\":3,\"success_before_passing\":2}\n", (i ? "," : ""), i, t, ival, to
		}
		printf "]}}\n"
	}' >"$1"
}

# HAProxy config with the same checks: one backend per check path.
# Usage: bench_haproxy_config FILE N INTERVAL http|tcp
bench_haproxy_config() {
	local ulim
	ulim=$(ulimit -n)
	awk -v ulim="$ulim" -v n="$2" -v ival="$3" -v mode="$4" -v base="$BASE_PORT" -v np="$NPORTS" 'BEGIN {
		print "global"
		print "    nbthread 1"
		print "    maxconn 2000"
		print "    ulimit-n " ulim
		print "defaults"
		print "    mode " (mode == "http" ? "http" : "tcp")
		print "    timeout connect 1s"
		print "    timeout client 1s"
		print "    timeout server 1s"
		print "    timeout check 1s"
		print "    default-server inter " ival " fall 3 rise 2"
		# HAProxy will not start without a listener; it gets no traffic.
		print "frontend fe"
		print "    bind 127.0.0.1:18200"
		print "    default_backend be0"
		nb = (mode == "http") ? 2 : 1
		for (b = 0; b < nb; b++) {
			print "backend be" b
			if (mode == "http")
				print "    option httpchk GET " (b ? "/fail" : "/health")
			for (i = 0; i < n; i++) {
				k = i % np; fail = (k % 10 == 9)
				if (mode == "http" && fail != b)
					continue
				printf "    server s%d 127.0.0.1:%d check\n", i, base + k
			}
		}
	}' >"$1"
}

median() { # numbers on stdin -> median
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
