#!/usr/bin/env python3
"""bench_latency.py - how fast the registry follows the target (issue 6).

Run through scripts/bench-latency.sh. Standard library only; it reuses the
test helpers (tests/support/etcd_harness.py, targets.py, hrtest.py and
tests/consul_emulator/emuctl.py). Everything is on loopback; every process
is started here and stopped by PID; temp dirs are removed at exit.

Cases, for each backend (a real local etcd, the Consul agent emulator):

  detect   a target starts failing (its toggle file is created) -> the
           watcher sees the registration go away (etcd: DELETE event;
           Consul: the instance leaves /v1/health/service/<name>?passing)
  recover  the target recovers (toggle file removed) -> the registration is
           back (etcd: PUT; Consul: the instance is in ?passing again)
  sigterm  SIGTERM to healthreg -> the registration is gone (one agent
           start per run)

One HTTP check at --interval (default 100ms), failures_before_critical 0,
success_before_passing 0. Between flips the script waits a random time so
the flip lands at a uniformly random phase of the check interval; the
detect latency therefore includes the wait for the next check run
(0..interval), which the issue's target (interval + 50 ms at p99) allows.

etcd: the watcher is a /v3/watch gateway stream (etcd_harness.Watcher);
its events carry time.monotonic() taken when the line was read.
Consul: a blocking query (?passing&index=N) in a thread on a keep-alive
connection, timestamped when each answer arrives. The emulator is Python:
its own write -> blocking-read latency is measured separately (a TTL check
of a second service flipped directly with PUT /v1/agent/check/update) and
printed as "emulator".

The split columns come from healthreg's log (ms resolution, wall clock,
converted to the monotonic clock): flip -> check_status line (detection),
check_status -> registry reply logged, and the watcher's event relative to
the registry log line.

Only prints; asserts nothing about speed.
"""
import argparse
import calendar
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
sys.path.insert(0, os.path.join(ROOT, "tests", "consul_emulator"))

import etcd_harness  # noqa: E402
import emuctl  # noqa: E402
import hrtest  # noqa: E402
import targets  # noqa: E402


def parse_ms(s):
    if s.endswith("ms"):
        return float(s[:-2])
    if s.endswith("s"):
        return float(s[:-1]) * 1000.0
    raise ValueError("duration must end in ms or s: %r" % s)


def pct(vals, p):
    """Nearest-rank percentile (p in 0..100) of a list of numbers."""
    v = sorted(vals)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


# Wall clock -> monotonic: healthreg logs wall-clock ms timestamps.
def _mono_offset():
    best = None
    for _ in range(5):
        m0 = time.monotonic()
        w = time.time()
        m1 = time.monotonic()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, w - (m0 + m1) / 2)
    return best[1]


TS_RE = re.compile(r"^ts=(\S+) .*?event=(\S+)(.*)$")


def log_events(text, offset):
    """[(monotonic t, event, rest of line)] from a logfmt log."""
    out = []
    for line in text.splitlines():
        m = TS_RE.match(line)
        if not m:
            continue
        ts = m.group(1).rstrip("Z")
        try:
            sec, frac = ts.split(".")
            st = time.strptime(sec, "%Y-%m-%dT%H:%M:%S")
            w = calendar.timegm(st) + float("0." + frac)
        except ValueError:
            continue
        out.append((w - offset, m.group(2), m.group(3)))
    return out


def first_after(evs, t, name, pred=None):
    """First logged event `name` at or after t - 1 ms (log resolution)."""
    for e in evs:
        if e[0] >= t - 0.0015 and e[1] == name and (pred is None or pred(e[2])):
            return e[0]
    return None


class Rows:
    def __init__(self):
        self.rows = []  # (backend, case, [ms], note)

    def add(self, backend, case, vals, note=""):
        self.rows.append((backend, case, vals, note))
        self.print_row(backend, case, vals, note)

    @staticmethod
    def print_row(backend, case, vals, note):
        if not vals:
            print("%-7s %-22s   n=0 %s" % (backend, case, note), flush=True)
            return
        print("%-7s %-22s n=%3d  p50 %7.1f  p99 %7.1f  max %7.1f ms  %s" % (
            backend, case, len(vals), pct(vals, 50), pct(vals, 99), max(vals),
            note), flush=True)


def stop_target(target, toggle):
    """Stop the HTTP target and remove its directory and toggle file."""
    target.stop()
    shutil.rmtree(target.dir, ignore_errors=True)
    try:
        os.unlink(toggle)
    except OSError:
        pass


def agent_config(args, target_url, port, registry, state_dir):
    ival = args.interval
    timeout = ival if parse_ms(ival) < 1000 else "1s"
    return {
        "service": {"name": "lat", "id": "lat-1", "address": "127.0.0.1",
                    "port": port,
                    "checks": [{"name": "target", "http": target_url,
                                "interval": ival, "timeout": timeout,
                                "failures_before_critical": 0,
                                "success_before_passing": 0}]},
        "agent": {"api_listen": "off",
                  "state_file": os.path.join(state_dir, "lat-1.state")},
        "registry": registry,
    }


# ---- etcd ---------------------------------------------------------------

def bench_etcd(args, rows, work):
    toggle = os.path.join(work, "etcd-failing")
    target = targets.Target(toggle_file=toggle)
    cluster = etcd_harness.EtcdCluster(members=1)
    agent = None
    try:
        w = cluster.watch("services/lat/")
        reg = {"etcd": {"endpoints": cluster.endpoints, "lease_ttl": "10s"}}
        cfg = agent_config(args, target.url + "/toggle", target.port, reg,
                           work)
        hrtest.HR_BIN = args.healthreg
        offset = _mono_offset()

        # detect / recover
        agent = hrtest.Agent(cfg, extra_args=["--log-level", "debug"])
        first = w.wait_for(lambda e: e.type == "PUT", 15)
        if first is None:
            print("etcd: no PUT after start:\n" + agent.log(), file=sys.stderr)
            return
        ival = parse_ms(args.interval) / 1000.0
        det, rec, split_d, split_r = [], [], [], []
        n0 = len(w.snapshot())
        for i in range(args.flips):
            time.sleep(0.05 + random.uniform(0, ival))
            t0 = time.monotonic()
            open(toggle, "w").close()
            e = w.wait_for(lambda e: e.type == "DELETE", 10, start=n0)
            if e is None:
                print("etcd: flip %d: no DELETE" % i, file=sys.stderr)
                break
            det.append((e.t - t0) * 1000)
            n0 = len(w.snapshot())
            split_d.append((t0, e.t))
            time.sleep(0.05 + random.uniform(0, ival))
            t1 = time.monotonic()
            os.unlink(toggle)
            e = w.wait_for(lambda e: e.type == "PUT", 10, start=n0)
            if e is None:
                print("etcd: flip %d: no PUT" % i, file=sys.stderr)
                break
            rec.append((e.t - t1) * 1000)
            n0 = len(w.snapshot())
            split_r.append((t1, e.t))
        time.sleep(0.1)
        evs = log_events(agent.log(), offset)
        agent.stop()
        agent.close()
        agent = None
        rows.add("etcd", "detect->DELETE", det,
                 "target <= %s + 50 = %.0f ms" % (args.interval, ival * 1000 + 50))
        rows.add("etcd", "recover->PUT", rec)
        splits("etcd", evs, split_d, "critical", "etcd_deregistered")
        splits("etcd", evs, split_r, "passing", "etcd_registered")

        # SIGTERM -> DELETE, one agent per run
        st, st_split = [], []
        for i in range(args.runs):
            n0 = len(w.snapshot())
            offset = _mono_offset()
            agent = hrtest.Agent(cfg, extra_args=["--log-level", "debug"])
            if w.wait_for(lambda e: e.type == "PUT", 15, start=n0) is None:
                print("etcd: run %d: no PUT:\n%s" % (i, agent.log()),
                      file=sys.stderr)
                break
            n0 = len(w.snapshot())
            time.sleep(0.1 + random.uniform(0, ival))
            t0 = time.monotonic()
            os.kill(agent.pid, signal.SIGTERM)
            e = w.wait_for(lambda e: e.type == "DELETE", 10, start=n0)
            agent.stop()
            if e is None:
                print("etcd: run %d: no DELETE:\n%s" % (i, agent.log()),
                      file=sys.stderr)
                agent.close()
                agent = None
                break
            st.append((e.t - t0) * 1000)
            evs = log_events(agent.log(), offset)
            tl = first_after(evs, t0, "shutdown")
            tr = first_after(evs, t0, "etcd_lease_revoked")
            st_split.append((tl, tr, e.t, t0))
            agent.close()
            agent = None
        rows.add("etcd", "SIGTERM->DELETE", st, "target <= 50 ms")
        if st_split and all(s[0] and s[1] for s in st_split):
            a = [(s[0] - s[3]) * 1000 for s in st_split]
            b = [(s[1] - s[0]) * 1000 for s in st_split]
            c = [(s[2] - s[1]) * 1000 for s in st_split]
            print("  split (log, ms res.): SIGTERM->'shutdown' p50 %.1f max %.1f | "
                  "'shutdown'->'etcd_lease_revoked' p50 %.1f max %.1f | "
                  "revoked log->watcher p50 %.1f" % (
                      pct(a, 50), max(a), pct(b, 50), max(b), pct(c, 50)),
                  flush=True)
    finally:
        if agent is not None:
            agent.close()
        cluster.close()
        stop_target(target, toggle)


def splits(backend, evs, pairs, to_status, reg_event):
    """Print flip -> check_status(to) [-> registry log line] -> watcher,
    from the agent's log (ms resolution)."""
    a, b, c = [], [], []
    for t0, tw in pairs:
        td = first_after(evs, t0, "check_status",
                         lambda rest: ("to=%s" % to_status) in rest)
        if td is None:
            continue
        tr = first_after(evs, td, reg_event) if reg_event else td
        if tr is None:
            continue
        a.append((td - t0) * 1000)
        b.append((tr - td) * 1000)
        c.append((tw - tr) * 1000)
    if not a:
        return
    if reg_event:
        print("  split (log, ms res.): flip->check_status p50 %.1f p99 %.1f | "
              "check_status->%s p50 %.1f p99 %.1f | that log line->watcher "
              "p50 %.1f p99 %.1f" % (pct(a, 50), pct(a, 99), reg_event,
                                     pct(b, 50), pct(b, 99), pct(c, 50),
                                     pct(c, 99)), flush=True)
    else:
        print("  split (log, ms res.): flip->check_status p50 %.1f p99 %.1f | "
              "check_status->watcher p50 %.1f p99 %.1f" % (
                  pct(a, 50), pct(a, 99), pct(c, 50), pct(c, 99)), flush=True)


# ---- Consul emulator ----------------------------------------------------

class PassingWatch:
    """Blocking queries on /v1/health/service/<name>?passing in a thread:
    every answer is recorded as (monotonic t, number of passing instances,
    X-Consul-Index)."""

    def __init__(self, emu, name, quickack=True):
        self.emu = emu
        self.quickack = quickack
        self.name = name
        self.answers = []
        self.cond = threading.Condition()
        self.stopped = False
        self.conn = None
        self.index = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if self.wait_for(lambda a: True, 10) is None:
            raise RuntimeError("no answer from the emulator")

    def _run(self):
        while not self.stopped:
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(
                        "127.0.0.1", self.emu.port, timeout=60)
                path = "/v1/health/service/%s?passing" % self.name
                if self.index:
                    path += "&index=%d&wait=30s" % self.index
                self.conn.request("GET", path)
                # The emulator (Python http.server) writes the head and the
                # body of an answer in two segments; with Nagle on its side
                # and a delayed ACK on ours the body would wait ~40 ms.
                # Ask for an immediate ACK of the head (what a watcher that
                # cares about latency does; not healthreg's doing).
                if self.quickack and hasattr(socket, "TCP_QUICKACK"):
                    self.conn.sock.setsockopt(socket.IPPROTO_TCP,
                                              socket.TCP_QUICKACK, 1)
                r = self.conn.getresponse()
                body = r.read()
                now = time.monotonic()
                idx = int(r.getheader("X-Consul-Index") or 0)
                n = len(json.loads(body)) if r.status == 200 else -1
                with self.cond:
                    self.answers.append((now, n, idx))
                    self.index = idx
                    self.cond.notify_all()
            except (OSError, http.client.HTTPException, ValueError):
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
                if not self.stopped:
                    time.sleep(0.01)

    def count(self):
        with self.cond:
            return len(self.answers)

    def wait_for(self, pred, timeout, start=0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for a in self.answers[start:]:
                    if pred(a):
                        return a
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def stop(self):
        self.stopped = True
        if self.conn is not None and self.conn.sock is not None:
            try:
                self.conn.sock.shutdown(2)
            except OSError:
                pass


def emulator_own_latency(args, emu, rows):
    """A TTL check flipped directly: PUT sent -> blocking query answers."""
    body = json.dumps({"Name": "probe", "ID": "probe-1", "Port": 1,
                       "Check": {"TTL": "10m", "Status": "passing",
                                 "CheckID": "probe-chk"}})
    emuctl.request(emu, "PUT", "/v1/agent/service/register", body)
    pw = PassingWatch(emu, "probe", quickack=not args.no_quickack)
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    lat, req = [], []
    try:
        want = 1
        for i in range(args.flips * 2):
            status = "critical" if want == 1 else "passing"
            want = 0 if want == 1 else 1
            time.sleep(0.02 + random.uniform(0, 0.05))
            n0 = pw.count()
            t0 = time.monotonic()
            conn.request("PUT", "/v1/agent/check/update/probe-chk",
                         json.dumps({"Status": status, "Output": status}))
            r = conn.getresponse()
            r.read()
            t1 = time.monotonic()
            a = pw.wait_for(lambda a, w=want: a[1] == w, 10, start=n0)
            if a is None:
                print("emulator probe: no change", file=sys.stderr)
                break
            lat.append((a[0] - t0) * 1000)
            req.append((t1 - t0) * 1000)
    finally:
        conn.close()
        pw.stop()
        emuctl.request(emu, "PUT", "/v1/agent/service/deregister/probe-1")
    rows.add("emu", "emulator update->query", lat,
             "(the emulator's own latency: PUT sent -> blocking query "
             "answer; PUT round trip alone p50 %.1f ms)" % pct(req, 50))


def bench_consul(args, rows, work):
    toggle = os.path.join(work, "consul-failing")
    target = targets.Target(toggle_file=toggle)
    emu = emuctl.start(check_update_interval_ms=0)
    agent = None
    try:
        emulator_own_latency(args, emu, rows)
        pw = PassingWatch(emu, "lat", quickack=not args.no_quickack)
        reg = {"consul": {"address": emu.url, "check_ttl": "30s"}}
        cfg = agent_config(args, target.url + "/toggle", target.port, reg,
                           work)
        hrtest.HR_BIN = args.healthreg
        offset = _mono_offset()
        agent = hrtest.Agent(cfg, extra_args=["--log-level", "debug"])
        if pw.wait_for(lambda a: a[1] == 1, 15) is None:
            print("consul: not passing after start:\n" + agent.log(),
                  file=sys.stderr)
            return
        ival = parse_ms(args.interval) / 1000.0
        det, rec, split_d, split_r = [], [], [], []
        for i in range(args.flips):
            time.sleep(0.05 + random.uniform(0, ival))
            n0 = pw.count()
            t0 = time.monotonic()
            open(toggle, "w").close()
            a = pw.wait_for(lambda a: a[1] == 0, 10, start=n0)
            if a is None:
                print("consul: flip %d: still passing" % i, file=sys.stderr)
                break
            det.append((a[0] - t0) * 1000)
            split_d.append((t0, a[0]))
            time.sleep(0.05 + random.uniform(0, ival))
            n0 = pw.count()
            t1 = time.monotonic()
            os.unlink(toggle)
            a = pw.wait_for(lambda a: a[1] == 1, 10, start=n0)
            if a is None:
                print("consul: flip %d: not passing again" % i,
                      file=sys.stderr)
                break
            rec.append((a[0] - t1) * 1000)
            split_r.append((t1, a[0]))
        time.sleep(0.1)
        evs = log_events(agent.log(), offset)
        agent.stop()
        agent.close()
        agent = None
        rows.add("consul", "detect->not passing", det)
        rows.add("consul", "recover->passing", rec)
        splits("consul", evs, split_d, "critical", None)
        splits("consul", evs, split_r, "passing", None)

        st = []
        for i in range(args.runs):
            n0 = pw.count()
            agent = hrtest.Agent(cfg, extra_args=["--log-level", "debug"])
            if pw.wait_for(lambda a: a[1] == 1, 15, start=n0) is None:
                print("consul: run %d: not passing:\n%s" % (i, agent.log()),
                      file=sys.stderr)
                break
            time.sleep(0.1 + random.uniform(0, ival))
            n0 = pw.count()
            t0 = time.monotonic()
            os.kill(agent.pid, signal.SIGTERM)
            a = pw.wait_for(lambda a: a[1] == 0, 10, start=n0)
            agent.stop()
            agent.close()
            agent = None
            if a is None:
                print("consul: run %d: still passing" % i, file=sys.stderr)
                break
            st.append((a[0] - t0) * 1000)
        rows.add("consul", "SIGTERM->not passing", st)
        pw.stop()
    finally:
        if agent is not None:
            agent.close()
        emu.cleanup()
        stop_target(target, toggle)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--healthreg", required=True)
    ap.add_argument("--interval", default="100ms")
    ap.add_argument("--flips", type=int, default=50)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--backend", choices=["etcd", "consul", "both"],
                    default="both")
    ap.add_argument("--no-quickack", action="store_true",
                    help="Consul watcher without TCP_QUICKACK: shows the "
                    "emulator's ~40 ms Nagle/delayed-ACK stall")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="hr-bench-latency-")
    rows = Rows()
    print("# healthreg latency: interval %s, %d flips, %d SIGTERM runs; "
          "ms" % (args.interval, args.flips, args.runs), flush=True)
    try:
        if args.backend in ("etcd", "both"):
            if shutil.which(etcd_harness.ETCD):
                bench_etcd(args, rows, work)
            else:
                print("etcd not installed: skipped", file=sys.stderr)
        if args.backend in ("consul", "both"):
            bench_consul(args, rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| backend | case | n | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for backend, case, vals, _ in rows.rows:
        if vals:
            print("| %s | %s | %d | %.1f | %.1f | %.1f |" % (
                backend, case, len(vals), pct(vals, 50), pct(vals, 99),
                max(vals)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
