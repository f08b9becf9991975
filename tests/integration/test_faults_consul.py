"""Fault suite, Consul (issue 11, "Fault suite"), against the emulator's
injected faults: the agent killed and back 4 s later (empty, as the
emulator keeps no state), wiped (restarted at once, empty), answering
500s, slower than the request timeout, answering garbage. Each fault
lasts 5 s, longer than the check TTL (3 s): Consul itself turns the check
critical (TTL expiry) during the faults that swallow updates; that is the
outage's doing, not healthreg's.

Assertions: healthreg never deregisters (no deregister request reaches
the emulator); while the emulator keeps its state the service never
disappears (a poller reads it every 100 ms past the fault); convergence
(registered, check passing, after a registry success since the recovery)
is measured, printed and bounded by check TTL + backoff cap + 2 s; the
checks keep running, /v1/health answers 200 all along, fds and RSS stay
flat."""
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

import hrtest
import targets
from faultkit import (Probe, api_url, assert_flat_and_clean, converge, fds,
                      metric, one_check_config, rss_kb)

sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
import emuctl  # noqa: E402

CHECK_TTL = 3
BACKOFF_CAP = 1   # clamp(check_ttl / 3, 1 s, 30 s), docs/consul.md
BOUND = CHECK_TTL + BACKOFF_CAP + 2
FAULT_S = 5.0
CHECK_ID = "service:web-1:healthreg"
BYPASS = {"X-Emulator-No-Fault": "1"}


class Poller(threading.Thread):
    """Every 100 ms, past any fault: (t, registered, check status)."""

    def __init__(self, emu):
        super().__init__(daemon=True)
        self.emu = emu
        self.samples = []
        self.stop_flag = threading.Event()

    def state(self):
        try:
            st, _, body = emuctl.request(self.emu, "GET", "/v1/agent/checks",
                                         headers=BYPASS, timeout=2)
        except OSError:
            return None, None  # the emulator is down
        if st != 200:
            return None, None
        c = json.loads(body).get(CHECK_ID)
        return c is not None, (c or {}).get("Status")

    def run(self):
        while not self.stop_flag.is_set():
            reg, status = self.state()
            self.samples.append((time.monotonic(), reg, status))
            self.stop_flag.wait(0.1)

    def stop(self):
        self.stop_flag.set()
        if self.is_alive():
            self.join(10)


class TestConsulFaults(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hr-faults-consul-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.emu = emuctl.start(check_update_interval_ms=0)
        self.addCleanup(self.emu.cleanup)
        self.target = targets.Target()
        self.addCleanup(self.target.stop)
        self.agent = hrtest.Agent(one_check_config(
            "web", 8080, self.target, self.dir,
            {"consul": {"address": self.emu.url,
                        "check_ttl": "%ds" % CHECK_TTL}}))
        self.addCleanup(self.agent.close)
        self.api = api_url(self.agent)
        self.poller = Poller(self.emu)
        self.assertTrue(hrtest.wait_for(
            lambda: self.poller.state() == (True, "passing"), 15),
            self.agent.log())
        self.probe = Probe(self.api, self.agent.pid)
        self.probe.start()
        self.addCleanup(self.probe.stop)
        self.poller.start()
        self.addCleanup(self.poller.stop)
        time.sleep(1.5)  # warm up, then the baseline
        self.base_fds, self.base_rss = fds(self.agent.pid), rss_kb(self.agent.pid)

    def writes(self):
        return metric(self.api, "healthreg_registry_writes_total",
                      backend="consul") or 0

    def measure(self, what, writes_before):
        elapsed = converge(lambda: self.writes() > writes_before and
                           self.poller.state() == (True, "passing"), BOUND + 5)
        print("\n%s: converged in %s s (bound %d s)" % (
            what, "%.2f" % elapsed if elapsed is not None else "never", BOUND),
            flush=True)
        self.assertIsNotNone(elapsed, self.agent.log()[-4000:])
        self.assertLessEqual(elapsed, BOUND, what)
        return time.monotonic()

    def fault(self, what, mode):
        """Inject mode for FAULT_S, then end it and measure."""
        w0 = self.writes()
        t0 = time.monotonic()
        self.emu.fault(mode)
        time.sleep(FAULT_S)
        self.emu.fault(None)
        t1 = time.monotonic()
        self.assertLessEqual(self.writes() - w0, 1, "writes during " + what)
        self.check_kept_running(t0, t1)
        return self.measure(what, self.writes())

    def check_kept_running(self, t0, t1):
        ran = self.probe.runs_at(t1) - self.probe.runs_at(t0)
        self.assertGreaterEqual(ran, (t1 - t0) / 0.2 / 4, "checks stalled")

    def assert_healthy_throughout(self, what, state_lost_until=None):
        """state_lost_until: the emulator restarted empty; the service may
        be missing until then (the convergence), never after."""
        time.sleep(1.0)
        self.poller.stop()
        log, emu_log = self.agent.log(), self.emu.log_text()
        self.assertIsNone(self.agent.proc.poll(), log[-3000:])
        self.assertNotIn("/v1/agent/service/deregister", emu_log)
        self.assertNotIn("/v1/agent/check/deregister", emu_log)
        self.assertNotIn("[ERROR]", emu_log)
        up = [s for s in self.poller.samples if s[1] is not None]
        missing = [s for s in up if not s[1] and
                   (state_lost_until is None or s[0] > state_lost_until)]
        self.assertEqual(missing, [], "%s: service missing\n%s" % (what, log[-3000:]))
        self.assertEqual(self.poller.samples[-1][1:], (True, "passing"))
        codes = self.probe.codes()
        self.assertEqual([c for c in codes if c != 200], [], what)
        assert_flat_and_clean(self, what)

    def test_killed_and_back_later(self):
        w0 = self.writes()
        t0 = time.monotonic()
        self.emu.restart_wiped(downtime=FAULT_S)
        self.check_kept_running(t0, time.monotonic())
        t = self.measure("consul killed %.0f s" % FAULT_S, w0)
        self.assertIn("consul_registration_lost", self.agent.log())
        self.assert_healthy_throughout("consul killed", state_lost_until=t)

    def test_wiped(self):
        w0 = self.writes()
        self.emu.restart_wiped()
        t = self.measure("consul wiped", w0)
        self.assert_healthy_throughout("consul wiped", state_lost_until=t)

    def test_answering_500(self):
        self.fault("consul 500s %.0f s" % FAULT_S, "status 500")
        self.assertIn("[FAULT] status PUT /v1/agent/check/update/",
                      self.emu.log_text())
        # The outage swallowed the updates: Consul's TTL expired meanwhile.
        self.assertIn("Check missed TTL", self.emu.log_text())
        self.assert_healthy_throughout("consul 500s")

    def test_slower_than_the_request_timeout(self):
        # Request timeout: clamp(check_ttl / 3, 1 s, 10 s) = 1 s.
        self.fault("consul slow 2.5 s %.0f s" % FAULT_S, "delay 2500")
        self.assertIn("[FAULT] delay PUT", self.emu.log_text())
        self.assert_healthy_throughout("consul slow")

    def test_answering_garbage(self):
        self.fault("consul garbage %.0f s" % FAULT_S, "garbage")
        self.assertIn("Check missed TTL", self.emu.log_text())
        self.assert_healthy_throughout("consul garbage")


if __name__ == "__main__":
    unittest.main()
