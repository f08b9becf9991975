"""Reload storms (issue 11, "Reload storms"): 100 SIGHUPs in a second,
100 changing reloads (intervals, and tags every fifth reload, which
rebuilds the backends), and overlapping reloads that each add a slow
check. Proof, throughout: a real etcd watch sees no DELETE, the Consul
emulator never misses the service or sees its check critical (a poller
every 100 ms) and gets no deregistration, /v1/health answers 200, the
agent stays alive; fds and RSS are flat afterwards."""
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

import etcd_harness
import hrtest
import targets
from faultkit import web_on_both_registries, Probe, api_url, assert_rss_flat, fds, rss_kb
from test_faults_consul import Poller

sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
import emuctl  # noqa: E402

FD_SLACK = 3
RSS_SLACK_KB = 3072


@unittest.skipUnless(shutil.which(etcd_harness.ETCD), "etcd not installed")
class TestReloadStorm(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hr-storm-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        web_on_both_registries(self, self.dir, "200ms", "150ms")
        self.agent = hrtest.Agent(self.config)
        self.addCleanup(self.agent.close)
        self.api = api_url(self.agent)
        self.assertIsNotNone(self.watch.wait_for(lambda e: e.type == "PUT", 15),
                             self.agent.log())
        self.poller = Poller(self.emu)
        self.assertTrue(hrtest.wait_for(
            lambda: self.poller.state() == (True, "passing"), 15),
            self.agent.log())
        self.poller.start()
        self.addCleanup(self.poller.stop)
        self.probe = Probe(self.api, self.agent.pid)
        self.probe.start()
        self.addCleanup(self.probe.stop)
        time.sleep(1.0)
        self.base_fds, self.base_rss = fds(self.agent.pid), rss_kb(self.agent.pid)

    def write_config(self):
        tmp = self.agent.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.config, f)
        os.replace(tmp, self.agent.config_path)

    def hup(self):
        self.agent.proc.send_signal(signal.SIGHUP)

    def count(self, needle):
        return self.agent.log().count(needle)

    def settle(self, timeout=20):
        """Wait until the last reload has settled (a reload during a hold
        joins it: one reload_settled after the last reloaded)."""
        def done():
            log = self.agent.log()
            return log.rfind("event=reload_settled") > log.rfind("event=reloaded") > 0
        self.assertTrue(hrtest.wait_for(done, timeout, 0.2),
                        self.agent.log()[-3000:])

    def assert_survived(self, what, reloads_at_least):
        time.sleep(1.0)
        self.poller.stop()
        self.probe.stop()
        log = self.agent.log()
        self.assertIsNone(self.agent.proc.poll(), log[-3000:])
        n = self.count("event=reloaded")
        self.assertGreaterEqual(n, reloads_at_least, what)
        self.assertEqual(self.count("event=reload_failed"), 0, log[-3000:])
        deletes = [e for e in self.watch.snapshot() if e.type == "DELETE"]
        self.assertEqual(deletes, [], log[-3000:])
        emu_log = self.emu.log_text()
        self.assertNotIn("Check missed TTL", emu_log)
        self.assertNotIn("/v1/agent/service/deregister", emu_log)
        bad = [s for s in self.poller.samples if s[1:] != (True, "passing")]
        self.assertEqual(bad, [], log[-3000:])
        codes = self.probe.codes()
        self.assertGreater(len(codes), 10)
        self.assertEqual([c for c in codes if c != 200], [], what)
        self.assertNotIn('reason="timeout', log)
        f, r = fds(self.agent.pid), rss_kb(self.agent.pid)
        pf, pr = self.probe.peak()
        print("\n%s: %d reloads applied, %d PUTs; fds %d -> %d (peak %d), "
              "RSS %d -> %d kB (peak %d)"
              % (what, n, len(self.watch.snapshot()), self.base_fds, f, pf,
                 self.base_rss, r, pr), flush=True)
        self.assertLessEqual(f, self.base_fds + FD_SLACK, what)
        assert_rss_flat(self, self.base_rss, r, RSS_SLACK_KB, what)
        self.assertEqual(self.agent.stop(), 0, self.agent.log()[-3000:])
        self.assertNotIn("Sanitizer", self.agent.log())

    def test_100_sighups_in_a_second(self):
        t0 = time.monotonic()
        for k in range(100):
            self.hup()
            time.sleep(max(0.0, t0 + (k + 1) * 0.01 - time.monotonic()))
        self.assertLess(time.monotonic() - t0, 1.5)
        self.settle()
        # Signals coalesce; a good share of them must have been applied.
        self.assert_survived("100 SIGHUPs in 1 s", 10)

    def test_100_changing_reloads(self):
        svc = self.config["service"]
        for k in range(100):
            svc["checks"][0]["interval"] = "%dms" % (200 + 100 * (k % 2))
            if k % 5 == 4:  # the backends are rebuilt
                svc["tags"] = ["v%d" % (2 - k // 5 % 2)]
            self.write_config()
            self.hup()
            n = k + 1
            self.assertTrue(hrtest.wait_for(
                lambda: self.count("event=reloaded") >= n, 10, 0.01),
                self.agent.log()[-3000:])
        self.settle()
        self.assertGreaterEqual(self.count("registry=recreated"), 20)
        # The last registration carries the last tags, in both registries.
        st, _, body = emuctl.request(self.emu, "GET", "/v1/agent/services")
        self.assertEqual(json.loads(body)["web-1"]["Tags"], svc["tags"])
        puts = [e for e in self.watch.snapshot() if e.type == "PUT"]
        self.assertEqual(json.loads(puts[-1].value)["Metadata"]["tags"],
                         svc["tags"])
        self.assert_survived("100 changing reloads", 100)

    def test_overlapping_reloads_with_slow_new_checks(self):
        checks = self.config["service"]["checks"]
        for k in range(10):
            checks.append({"name": "slow%d" % k,
                           "http": "%s/slow/1500" % self.target.url,
                           "interval": "30s", "timeout": "3s"})
            if k % 3 == 2:  # and the backends are rebuilt under the hold
                self.config["service"]["tags"] = ["v%d" % k]
            self.write_config()
            self.hup()
            time.sleep(0.3)
        self.settle()
        self.assertIn('event=reload_settled reason="new checks have results" '
                      'status=passing output="11 passing"', self.agent.log())
        self.assert_survived("10 overlapping reloads with slow checks", 10)


if __name__ == "__main__":
    unittest.main()
