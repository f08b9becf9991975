"""faultkit - what the fault and reload-storm tests measure on a running
agent (standard library only).

    probe = Probe(api, pid, check="api")   # every 100 ms, in a thread
    probe.start(); ...; probe.stop()
    probe.codes()            # /v1/health codes seen
    probe.runs_at(t)         # the check's run counter at time t
    fds(pid), rss_kb(pid)    # /proc/PID/fd entries, VmRSS
    metric(api, "healthreg_registry_writes_total", backend="etcd")
    elapsed = converge(pred, timeout)   # seconds until pred(), or None
    absent_windows(events, key, until)  # from an etcd watch

Times are time.monotonic(), as in etcd_harness."""
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request


def http(method, url, timeout=5):
    """(status, body text); (0, error text) when nothing answered."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


def api_url(agent, timeout=10):
    """The agent's local API base URL, from its api_listening log line."""
    if not agent.wait_log("event=api_listening", timeout):
        raise AssertionError("no api_listening:\n" + agent.log())
    m = re.search(r"event=api_listening addr=\S+ port=(\d+)", agent.log())
    return "http://127.0.0.1:%s" % m.group(1)


def _sanitized():
    try:
        with open(os.environ.get("HR_BIN", ""), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# An ASan build keeps freed memory in its quarantine (RSS grows with
# churn, up to 256 MB): RSS is bounded only in a plain build; leaks are
# LeakSanitizer's to report there (the tests look for "Sanitizer").
SANITIZED = _sanitized()


def assert_rss_flat(tc, base_kb, now_kb, slack_kb, what):
    if not SANITIZED:
        tc.assertLessEqual(now_kb, base_kb + slack_kb, what)


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise OSError("pid %d has no VmRSS (not running)" % pid)


def metric(api, name, **labels):
    """One sample of /metrics (labels must match exactly), or None."""
    st, body = http("GET", api + "/metrics")
    if st != 200:
        return None
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in body.splitlines():
        head, _, value = line.rpartition(" ")
        if "service" not in labels:
            # every series of a service carries service="<id>": without
            # one asked for, the (one) service's
            head = re.sub(r',?service="[^"]*"', "", head).replace("{,", "{")
            head = head.replace("{}", "")
        if head == ("%s{%s}" % (name, want) if labels else name):
            return float(value)
    return None


def check_runs(api, check):
    st, body = http("GET", "%s/v1/checks/%s" % (api, check))
    return sum(json.loads(body)["runs"].values()) if st == 200 else None


def converge(pred, timeout, interval=0.05):
    """Seconds from now until pred() is true (polled), or None."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        if pred():
            return time.monotonic() - t0
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def absent_windows(events, key, until):
    """[(t_deleted, t_back)] of key from watch events (a DELETE and the
    next PUT; `until` when it is not back)."""
    out, gone = [], None
    for e in events:
        if e.key != key:
            continue
        if e.type == "DELETE" and gone is None:
            gone = e.t
        elif e.type == "PUT" and gone is not None:
            out.append((gone, e.t))
            gone = None
    if gone is not None:
        out.append((gone, until))
    return out


class Probe(threading.Thread):
    """Every 100 ms: the /v1/health code, the check's run counter, the
    agent's fd count and RSS. Samples are (t, code, runs, fds, rss_kb)."""

    def __init__(self, api, pid, check="api", interval=0.1):
        super().__init__(daemon=True)
        self.api, self.pid, self.check = api, pid, check
        self.interval = interval
        self.samples = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            code = http("GET", self.api + "/v1/health", timeout=5)[0]
            runs = check_runs(self.api, self.check)
            try:
                s = (time.monotonic(), code, runs, fds(self.pid),
                     rss_kb(self.pid))
            except OSError:  # the agent is gone
                s = (time.monotonic(), 0, None, -1, -1)
            with self.lock:
                self.samples.append(s)
            self.stop_flag.wait(self.interval)

    def stop(self):
        self.stop_flag.set()
        if self.is_alive():
            self.join(30)

    def snapshot(self):
        with self.lock:
            return list(self.samples)

    def codes(self):
        return [s[1] for s in self.snapshot()]

    def runs_at(self, t):
        """The run counter of the last sample at or before t."""
        runs = [s[2] for s in self.snapshot() if s[0] <= t and s[2] is not None]
        return runs[-1] if runs else 0

    def peak(self, t0=0.0):
        """(max fds, max RSS kB) of the samples from t0 on."""
        ss = [s for s in self.snapshot() if s[0] >= t0 and s[3] >= 0]
        return (max(s[3] for s in ss), max(s[4] for s in ss)) if ss else (0, 0)


# ---------------------------------------------------------------------------
# An agent registered in etcd, watched, probed: the base of the etcd fault
# tests (no tests of its own).

import shutil  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402

import etcd_harness  # noqa: E402
import hrtest  # noqa: E402
import targets  # noqa: E402

LEASE_TTL = 3      # s; etcd's minimum is 2
BACKOFF_CAP = 5    # s; plugin/etcd/etcd.c BACKOFF_CAP_MS
# The contract, not the speed: after recovery the key is back (or kept)
# within a lease TTL + the backoff cap + 2 s.
BOUND = LEASE_TTL + BACKOFF_CAP + 2
FD_SLACK = 3
RSS_SLACK_KB = 2048
KEY = "services/echo/127.0.0.1:9001"


def one_check_config(name, port, target, state_dir, registry,
                     interval="200ms", timeout="150ms", **service):
    """A config of one instance <name>-1 with one http check "api" on
    target's /status/200, the local API on a free port, and registry."""
    svc = {"name": name, "id": name + "-1", "address": "127.0.0.1",
           "port": port,
           "checks": [{"name": "api", "http": target.url + "/status/200",
                       "interval": interval, "timeout": timeout}]}
    svc.update(service)
    return {"service": svc,
            "agent": {"api_listen": "127.0.0.1:0",
                      "state_file": os.path.join(state_dir, "state")},
            "registry": registry}


def assert_flat_and_clean(case, what):
    """After a fault: fds and RSS back near case.base_fds / case.base_rss
    (printed with case.probe's peaks), then a clean exit 0 with no
    sanitizer report."""
    f, r = fds(case.agent.pid), rss_kb(case.agent.pid)
    pf, pr = case.probe.peak()
    print("%s: fds %d -> %d (peak %d), RSS %d -> %d kB (peak %d)"
          % (what, case.base_fds, f, pf, case.base_rss, r, pr), flush=True)
    case.assertLessEqual(f, case.base_fds + FD_SLACK, what)
    assert_rss_flat(case, case.base_rss, r, RSS_SLACK_KB, what)
    case.assertEqual(case.agent.stop(), 0, case.agent.log()[-3000:])
    case.assertNotIn("Sanitizer", case.agent.log())


class EtcdFaultCase(unittest.TestCase):
    MEMBERS = 1

    def setUp(self):
        self.etcd = etcd_harness.EtcdCluster(members=self.MEMBERS)
        self.addCleanup(self.etcd.close)
        self.dir = tempfile.mkdtemp(prefix="hr-faults-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.target = targets.Target()
        self.addCleanup(self.target.stop)
        self.watch = self.etcd.watch("services/")
        config = one_check_config(
            "echo", 9001, self.target, self.dir,
            {"etcd": {"endpoints": self.etcd.endpoints,
                      "lease_ttl": "%ds" % LEASE_TTL,
                      "request_timeout": "500ms"}})
        # Each retry's etcd_unavailable line is debug (a down registry
        # logs its state changes only); the gaps are measured on them.
        config["agent"]["log_level"] = "debug"
        self.agent = hrtest.Agent(config)
        self.addCleanup(self.agent.close)
        self.api = api_url(self.agent)
        self.assertIsNotNone(self.watch.wait_for(lambda e: e.type == "PUT", 15),
                             self.agent.log())
        self.probe = Probe(self.api, self.agent.pid)
        self.probe.start()
        self.addCleanup(self.probe.stop)
        # Warm up (connections made, first keepalives), then the baseline.
        time.sleep(1.5)
        self.base_fds, self.base_rss = fds(self.agent.pid), rss_kb(self.agent.pid)

    # -- measuring -------------------------------------------------------
    def writes(self):
        return metric(self.api, "healthreg_registry_writes_total",
                      backend="etcd") or 0

    def agent_lease(self):
        """The lease the agent holds now (its last etcd_lease_granted)."""
        leases = re.findall(r"event=etcd_lease_granted lease=([0-9a-f]+)",
                            self.agent.log())
        return int(leases[-1], 16) if leases else None

    def key_live(self):
        """The key holds our value (the default "grpc" format: Op and Addr
        only, so present = registrable) under the agent's current lease,
        and that lease is alive."""
        try:
            kv = self.etcd.get(KEY)
            if kv is None or json.loads(kv["value"]) != {
                    "Op": 0, "Addr": KEY.rsplit("/", 1)[1]}:
                return False
            if int(kv["lease"]) != self.agent_lease():
                return False
            return self.etcd.lease_ttl(kv["lease"]) > 0
        except (RuntimeError, OSError, ValueError, KeyError):
            return False

    def converged(self, writes_before):
        """True state again: the agent has had a registry success since
        the recovery and etcd holds the key under a live lease."""
        return self.writes() > writes_before and self.key_live()

    def measure(self, what, writes_before):
        """Seconds from now (the recovery) to convergence; printed."""
        elapsed = converge(lambda: self.converged(writes_before), BOUND + 5)
        print("\n%s: converged in %s s (bound %d s)" % (
            what, "%.2f" % elapsed if elapsed is not None else "never", BOUND),
            flush=True)
        self.assertIsNotNone(elapsed, "%s: never converged\n%s" % (
            what, self.agent.log()[-4000:]))
        self.assertLessEqual(elapsed, BOUND, what)
        return elapsed

    def assert_outage_kept_checks_running(self, t0, t1):
        ran = self.probe.runs_at(t1) - self.probe.runs_at(t0)
        # 200 ms interval: at least a quarter of the expected runs.
        self.assertGreaterEqual(ran, (t1 - t0) / 0.2 / 4,
                                "checks stalled during the outage")

    def assert_healthy_throughout(self, what, forced_absence_s=0.0):
        """No deregistration by healthreg, no absence beyond what the
        fault forced, the API answered 200 all along, fds/RSS flat."""
        time.sleep(1.0)  # anything late would show now
        log = self.agent.log()
        self.assertIsNone(self.agent.proc.poll(), log[-3000:])
        self.assertNotIn("etcd_deregistered", log)
        gone = absent_windows(self.watch.snapshot(), KEY, time.monotonic())
        longest = max([b - a for a, b in gone] or [0.0])
        print("%s: %d DELETE(s), key absent at most %.2f s (allowed %.2f s)"
              % (what, len(gone), longest, forced_absence_s), flush=True)
        self.assertLessEqual(longest, forced_absence_s,
                             "%s: key absent %r\n%s" % (what, gone, log[-3000:]))
        codes = self.probe.codes()
        self.assertEqual([c for c in codes if c != 200], [], what)
        self.assertGreater(len(codes), 20)
        assert_flat_and_clean(self, what)


def web_on_both_registries(case, state_dir, interval, timeout):
    """setUp shared by the reload tests: a 1-member etcd with a watch on
    services/ (case.etcd, case.watch), the Consul emulator (case.emu), a
    target (case.target) and case.config, one web instance on both
    registries (lease and check TTL 2 s). All cleaned up with the case."""
    import sys
    import etcd_harness
    import hrtest
    import targets
    sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
    import emuctl
    case.etcd = etcd_harness.EtcdCluster(members=1)
    case.addCleanup(case.etcd.close)
    case.emu = emuctl.start(check_update_interval_ms=0)
    case.addCleanup(case.emu.cleanup)
    case.target = targets.Target()
    case.addCleanup(case.target.stop)
    case.watch = case.etcd.watch("services/")
    case.config = one_check_config(
        "web", 8080, case.target, state_dir or case.target.dir,
        {"consul": {"address": case.emu.url, "check_ttl": "2s"},
         "etcd": {"endpoints": case.etcd.endpoints, "lease_ttl": "2s",
                  "value_format": "document"}},
        interval=interval, timeout=timeout, tags=["v1"])
    case.config["agent"]["shutdown_timeout"] = "2s"
