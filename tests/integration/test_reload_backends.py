"""Reloads that rebuild the registry backends (issue 10, bug 2).

Each backend counts its requests in a struct hr_registry_stats that the
agent renders as healthreg_registry_* in /metrics. A reload that changes
the service replaces every backend; the new backends' counters must live
as long as the backends do (they once pointed into a stack frame of the
reload), and /metrics must show them moving afterwards.

The agent runs with ASAN_OPTIONS=detect_stack_use_after_return=1, so that
a sanitizer build (HR_SANITIZE=ON) reports a write into a dead frame; in
any build a frozen counter fails the test."""
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

import etcd_harness
import hrtest
from test_operations import api_port, http, parse_prometheus, sample

sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
import emuctl  # noqa: E402

RELOADS = 50


def asan_env():
    opts = os.environ.get("ASAN_OPTIONS", "")
    extra = "detect_stack_use_after_return=1:abort_on_error=0"
    return {"ASAN_OPTIONS": (opts + ":" if opts else "") + extra}


class Scraper(threading.Thread):
    """GET /metrics in a loop; keeps every failure and the scrape count."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.stop_flag = threading.Event()
        self.errors = []
        self.n = 0

    def run(self):
        while not self.stop_flag.is_set():
            try:
                c, body, _ = http("GET", self.url + "/metrics", timeout=10)
                if c != 200:
                    self.errors.append((c, body))
                else:
                    parse_prometheus(body)
                    self.n += 1
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(e))
            time.sleep(0.01)

    def stop(self):
        self.stop_flag.set()
        self.join(30)


class ReloadCase(unittest.TestCase):
    def start_agent(self, registry):
        self.dir = tempfile.mkdtemp(prefix="hr-reload-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.config = {
            "service": {"name": "web", "id": "web-1", "address": "127.0.0.1",
                        "port": 8080, "tags": ["r0"],
                        "checks": [{"name": "hb", "ttl": "60s"}]},
            "agent": {"api_listen": "127.0.0.1:0",
                      "state_file": os.path.join(self.dir, "state.json"),
                      "shutdown_timeout": "1s"},
            "registry": registry}
        self.agent = hrtest.Agent(self.config, env=asan_env())
        self.addCleanup(self.agent.close)
        self.url = "http://127.0.0.1:%d" % api_port(self.agent)
        self.assertEqual(http("PUT", self.url + "/v1/checks/hb/pass")[0], 200)

    def writes(self, backend):
        m = parse_prometheus(http("GET", self.url + "/metrics")[1])
        return sample(m, "healthreg_registry_writes_total", backend=backend)

    def reload_many(self, backends):
        for b in backends:
            self.assertTrue(hrtest.wait_for(lambda: self.writes(b) > 0, 15),
                            (b, self.agent.log()[-2000:]))
        scraper = Scraper(self.url)
        scraper.start()
        try:
            for i in range(1, RELOADS + 1):
                svc = self.config["service"]
                svc["tags"] = ["r%d" % i]
                if i % 10 == 0:
                    # a renamed instance: the old backends retire
                    svc["id"] = "web-%d" % i
                with open(self.agent.config_path, "w") as f:
                    json.dump(self.config, f)
                try:
                    c, b, _ = http("PUT", self.url + "/v1/reload")
                except OSError as e:
                    self.fail("reload %d: %r; the agent's log:\n%s"
                              % (i, e, self.agent.log()[-4000:]))
                self.assertEqual(c, 200, b)
        finally:
            scraper.stop()
        self.assertEqual(scraper.errors, [])
        self.assertGreater(scraper.n, 0)
        log = self.agent.log()
        self.assertEqual(log.count("registry=recreated"), RELOADS, log[-2000:])
        for b in backends:
            # The newest backends registered (at least one write each) and
            # keep writing: the counters are theirs and they move.
            w1 = self.writes(b)
            self.assertTrue(hrtest.wait_for(lambda: self.writes(b) > w1, 15),
                            (b, w1, self.agent.log()[-2000:]))
        # Still alive, and the sanitizer (when built in) found nothing.
        self.assertIsNone(self.agent.proc.poll(), self.agent.log()[-4000:])
        self.assertEqual(self.agent.stop(), 0, self.agent.log()[-4000:])
        log = self.agent.log()
        self.assertNotIn("Sanitizer", log, log[-4000:])
        self.assertNotIn("runtime error", log, log[-4000:])


class TestReloadRebuildsBackends(ReloadCase):
    def test_consul_counters_move_after_50_reloads(self):
        emu = emuctl.start()
        self.addCleanup(emu.cleanup)
        self.start_agent({"consul": {"address": emu.url, "check_ttl": "1s"}})
        self.reload_many(["consul"])

    @unittest.skipUnless(shutil.which(etcd_harness.ETCD), "etcd not installed")
    def test_consul_and_etcd_counters_move_after_50_reloads(self):
        emu = emuctl.start()
        self.addCleanup(emu.cleanup)
        etcd = etcd_harness.EtcdCluster(members=1)
        self.addCleanup(etcd.close)
        self.start_agent({"consul": {"address": emu.url, "check_ttl": "1s"},
                          "etcd": {"endpoints": etcd.endpoints,
                                   "lease_ttl": "2s"}})
        self.reload_many(["consul", "etcd"])


if __name__ == "__main__":
    unittest.main()
