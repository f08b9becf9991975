#!/usr/bin/env python3
"""bench_fleet.py - fleet-scale cost of healthreg against etcd (issue 14 §4).

Run through scripts/bench-fleet.sh. Standard library only; it reuses the
test helpers (tests/support/etcd_harness.py). Everything is on loopback;
every process is started here and stopped by PID; temp dirs are removed
at exit.

Two layouts of the same number of instances, each against a fresh real
3-member etcd cluster:

  1x1000   one agent with 1,000 services (one tcp check each)
  100x10   100 agents with 10 services each

For each layout:

  steady   once every key is registered and the fleet has settled, over a
           --window (default 30 s): the requests reaching etcd per second
           by gRPC method (etcd's own grpc_server_* counters, summed over
           the members: the JSON gateway forwards every call to the
           member's gRPC server, so they count what healthreg sends), the
           keepalive messages per second, the writes per second (the
           leader's etcd_mvcc_put/delete/txn counters), the agents' RSS and
           CPU (/proc), and the etcd leader's CPU.
  recover  every member is SIGKILLed, its data wiped, and a new cluster
           started on the same ports after --downtime (default 3 s): the
           time from the new cluster answering until every key is back,
           and the requests per second reaching etcd in 0.5 s buckets
           (peak and mean) while the agents recover and for --observe
           seconds (default 20) after the last key is back.

Only prints; asserts nothing about speed.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

import etcd_harness  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- etcd metrics -------------------------------------------------------
LINE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')


def scrape(url):
    """{(name, labels string): value} from a member's /metrics."""
    out = {}
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = LINE_RE.match(line)
        if not m:
            continue
        try:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
        except ValueError:
            pass
    return out


def by_method(samples, name):
    """{grpc_method: value} of a grpc_server_* counter."""
    res = {}
    for (n, labels), v in samples.items():
        if n != name:
            continue
        m = re.search(r'grpc_method="([^"]*)"', labels)
        if m:
            res[m.group(1)] = res.get(m.group(1), 0.0) + v
    return res


def plain(samples, name):
    return sum(v for (n, _), v in samples.items() if n == name)


class Fleet:
    """The etcd cluster's counters, summed over members."""

    def __init__(self, cluster):
        self.c = cluster

    def snapshot(self):
        started, msgs = {}, {}
        for i in self.c.alive_members():
            s = scrape(self.c.member_url(i))
            if s is None:
                continue
            for k, v in by_method(s, "grpc_server_started_total").items():
                started[k] = started.get(k, 0) + v
            for k, v in by_method(s, "grpc_server_msg_received_total").items():
                msgs[k] = msgs.get(k, 0) + v
        return started, msgs

    def leader_writes(self):
        lead = self.c.leader()
        s = scrape(self.c.member_url(lead)) if lead is not None else None
        if not s:
            return None
        return {k: plain(s, "etcd_mvcc_%s_total" % k)
                for k in ("put", "delete", "txn")}

    def count(self, prefix):
        """Keys under prefix (count_only), None when no member answers."""
        for i in self.c.alive_members():
            try:
                st, data = etcd_harness.http_json(
                    self.c.member_url(i), "/v3/kv/range",
                    {"key": etcd_harness.b64(prefix),
                     "range_end": etcd_harness.b64(
                         etcd_harness.prefix_end(prefix)),
                     "count_only": True}, timeout=2)
            except OSError:
                continue
            if st == 200:
                return int(data.get("count", "0"))
        return None


# -- processes ----------------------------------------------------------
def proc_cpu(pid):
    """utime + stime of pid in seconds (0 when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK_TCK
    except OSError:
        return 0.0


def proc_mem(pid):
    """{Rss, Pss, Private} in KiB (/proc/PID/smaps_rollup): RSS counts the
    shared libraries' pages in every process, PSS shares them out, Private
    is what this process alone holds."""
    out = {"Rss": 0, "Pss": 0, "Private": 0}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in ("Rss", "Pss"):
                    out[k] = int(rest.split()[0])
                elif k in ("Private_Clean", "Private_Dirty"):
                    out["Private"] += int(rest.split()[0])
    except OSError:
        pass
    return out


class Target:
    """A TCP listener every check connects to (accept, close)."""

    def __init__(self):
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(4096)
        self.port = self.s.getsockname()[1]
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        self.s.settimeout(0.5)
        while not self.stop:
            try:
                c, _ = self.s.accept()
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.s.close()


def agent_config(agent, n_services, endpoints, target_port, interval):
    services = []
    for k in range(n_services):
        services.append({
            "name": "svc-%d" % k,
            "id": "svc-%d-a%d" % (k, agent),
            "address": "10.%d.%d.%d" % (agent // 65536 % 256,
                                        agent // 256 % 256, agent % 256),
            "port": 20000 + k % 40000,
            "checks": [{"name": "tcp",
                        "tcp": "127.0.0.1:%d" % target_port,
                        "interval": interval, "timeout": "1s"}],
        })
    top = ({"service": services[0]} if n_services == 1
           else {"services": services})
    return {
        **top,
        "agent": {"api_listen": "", "log_level": "warn"},
        "registry": {"etcd": {"endpoints": endpoints, "prefix": "services/",
                              "lease_ttl": "10s"}},
    }


class Agents:
    def __init__(self, hr, tmp, n_agents, n_services, endpoints, target,
                 interval):
        self.procs, self.logs = [], []
        for a in range(n_agents):
            path = os.path.join(tmp, "agent%d.json" % a)
            with open(path, "w") as f:
                json.dump(agent_config(a, n_services, endpoints, target.port,
                                       interval), f)
            log = open(path + ".log", "w")
            self.logs.append(log)
            self.procs.append(subprocess.Popen(
                [hr, "run", "-c", path], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True))

    def pids(self):
        return [p.pid for p in self.procs]

    def dead(self):
        return [p.pid for p in self.procs if p.poll() is not None]

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in self.logs:
            log.close()


def wipe_and_restart(c, downtime):
    """SIGKILL every member, delete its data, start a new cluster (new
    token) on the same ports; returns the monotonic time it answered."""
    for i in range(c.n):
        c.kill(i)
    time.sleep(downtime)
    for i in range(c.n):
        shutil.rmtree(os.path.join(c.dir, "m%d" % i), ignore_errors=True)
    c.token = c.token + "-w"
    for i in range(c.n):
        c._spawn(i)
    return c.wait_healthy(timeout=60)


# The benchmark's own calls: Status (finding the leader), one Range per
# count(); they are taken out of the figures.
OWN = ("Status",)


def rates(a, b, dt, own_ranges=0):
    keys = (set(a) | set(b)) - set(OWN)
    r = {k: (b.get(k, 0) - a.get(k, 0)) for k in keys}
    if own_ranges and "Range" in r:
        r["Range"] -= own_ranges
    return {k: v / dt for k, v in r.items() if v > 0}


def fmt_rates(r):
    return ", ".join("%s %.1f" % (k, v) for k, v in
                     sorted(r.items(), key=lambda kv: -kv[1])) or "none"


def run_layout(hr, n_agents, n_services, args):
    total = n_agents * n_services
    label = "%dx%d" % (n_agents, n_services)
    tmp = tempfile.mkdtemp(prefix="hr-fleet-")
    target = Target()
    c = etcd_harness.EtcdCluster(members=3)
    agents = None
    res = {"layout": label, "agents": n_agents, "services": n_services}
    try:
        fleet = Fleet(c)
        t0 = time.monotonic()
        agents = Agents(hr, tmp, n_agents, n_services, c.endpoints, target,
                        args.interval)
        while fleet.count("services/") != total:
            if agents.dead():
                raise RuntimeError("agents exited: %s" % agents.dead())
            if time.monotonic() - t0 > args.timeout:
                raise RuntimeError("%s: only %s of %d keys after %d s" % (
                    label, fleet.count("services/"), total, args.timeout))
            time.sleep(0.2)
        res["register_s"] = time.monotonic() - t0
        time.sleep(args.settle)

        # steady state
        pids = agents.pids()
        lead = c.leader()
        lead_pid = c.pids()[lead]
        s0, m0 = fleet.snapshot()
        w0 = fleet.leader_writes()
        cpu0 = sum(proc_cpu(p) for p in pids)
        lcpu0 = proc_cpu(lead_pid)
        ts = time.monotonic()
        time.sleep(args.window)
        dt = time.monotonic() - ts
        s1, m1 = fleet.snapshot()
        w1 = fleet.leader_writes()
        cpu1 = sum(proc_cpu(p) for p in pids)
        lcpu1 = proc_cpu(lead_pid)
        mem = [proc_mem(p) for p in pids]
        res["steady"] = {
            "window_s": dt,
            "requests_per_s": rates(s0, s1, dt),
            "messages_per_s": rates(m0, m1, dt),
            "writes_per_s": rates(w0 or {}, w1 or {}, dt),
            "agent_cpu_pct": 100.0 * (cpu1 - cpu0) / dt,
            "agent_rss_max_kib": max(m["Rss"] for m in mem),
            "agent_pss_total_kib": sum(m["Pss"] for m in mem),
            "agent_private_total_kib": sum(m["Private"] for m in mem),
            "leader_cpu_pct": 100.0 * (lcpu1 - lcpu0) / dt,
        }

        # wipe the cluster, restart it, watch the agents recover
        healthy_at = wipe_and_restart(c, args.downtime)
        buckets = []
        peak_methods = {}
        prev, _ = fleet.snapshot()
        tprev = time.monotonic()
        back_at = None
        n_last = 0
        while time.monotonic() - healthy_at < args.timeout:
            time.sleep(0.5)
            cur, _ = fleet.snapshot()
            now = time.monotonic()
            r = rates(prev, cur, now - tprev,
                      own_ranges=1 if buckets else 0)
            buckets.append(sum(r.values()))
            if buckets[-1] >= max(buckets):
                peak_methods = r
            prev, tprev = cur, now
            n_last = fleet.count("services/") or 0
            if n_last == total and back_at is None:
                back_at = now
            if back_at is not None and now - back_at >= args.observe:
                break
        res["recover"] = {
            "downtime_s": args.downtime,
            "keys_back_s": (back_at - healthy_at) if back_at else None,
            "keys_at_end": n_last,
            "peak_requests_per_s": max(buckets) if buckets else 0,
            "peak_by_method": peak_methods,
            "mean_requests_per_s": (sum(buckets) / len(buckets)
                                    if buckets else 0),
            "buckets": [round(b, 1) for b in buckets],
        }
        if agents.dead():
            res["agents_dead"] = agents.dead()
    finally:
        if agents:
            agents.close()
        c.close()
        target.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def report(r):
    print("== %s: %d agent(s) x %d services = %d keys (registered in %.1f s)"
          % (r["layout"], r["agents"], r["services"],
             r["agents"] * r["services"], r["register_s"]))
    s = r["steady"]
    print("steady, %.0f s window:" % s["window_s"])
    print("  requests/s reaching etcd (gRPC started, all members): %s"
          % fmt_rates(s["requests_per_s"]))
    print("  messages/s received (keepalives are LeaseKeepAlive): %s"
          % fmt_rates(s["messages_per_s"]))
    print("  writes/s (leader's mvcc put/delete/txn): %s"
          % fmt_rates(s["writes_per_s"]))
    print("  agents: CPU %.2f %% of one core in all; memory in all: PSS "
          "%d KiB, private %d KiB; the largest RSS %d KiB"
          % (s["agent_cpu_pct"], s["agent_pss_total_kib"],
             s["agent_private_total_kib"], s["agent_rss_max_kib"]))
    print("  etcd leader CPU %.2f %% of one core" % s["leader_cpu_pct"])
    v = r["recover"]
    print("recover after the cluster was wiped (down %.0f s):" % v["downtime_s"])
    if v["keys_back_s"] is None:
        print("  NOT all keys back: %d at the end" % v["keys_at_end"])
    else:
        print("  every key back %.1f s after the new cluster answered"
              % v["keys_back_s"])
    print("  requests/s in 0.5 s buckets: peak %.0f (%s), mean %.0f"
          % (v["peak_requests_per_s"], fmt_rates(v["peak_by_method"]),
             v["mean_requests_per_s"]))
    print("  buckets: %s" % " ".join("%g" % b for b in v["buckets"]))
    if r.get("agents_dead"):
        print("  agents that exited: %s" % r["agents_dead"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--healthreg", required=True)
    ap.add_argument("--layouts", default="1x1000,100x10",
                    help="comma-separated AGENTSxSERVICES (default %(default)s)")
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=12.0,
                    help="seconds after the last key before measuring")
    ap.add_argument("--downtime", type=float, default=3.0)
    ap.add_argument("--observe", type=float, default=20.0,
                    help="seconds to keep counting after every key is back")
    ap.add_argument("--interval", default="10s", help="check interval")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    out = []
    for lay in args.layouts.split(","):
        a, s = lay.lower().split("x")
        r = run_layout(args.healthreg, int(a), int(s), args)
        report(r)
        out.append(r)
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
