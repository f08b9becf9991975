"""Reloads must never make a healthy instance disappear (issue 11, items 2
and 13b).

- Two reloads 1.4 s apart, each adding a slow but passing check: the hold
  covers the second reload's check too (its deadline is extended), so it
  ends with the checks' results, not with a timeout that counted the
  second check as critical and deregistered the instance.
- A reload that changes the tags (the backends are rebuilt) and adds a
  check that needs 4.5 s for its first result: the new backends take over
  the last published state at once, so the etcd lease (2 s) and the
  Consul TTL (2 s) never lapse.
- A no-op reload and a reload that only changes one check's interval log
  no aggregate_status line (no transient "0 passing, 1 unknown").

Proof: a real etcd watch sees no DELETE; a poller of the Consul emulator
(every 50 ms) never sees the service missing or its check critical, and
the emulator log has no TTL expiry and no deregistration; /v1/health
answers 200 throughout."""
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import unittest

import etcd_harness
import hrtest
import targets
from faultkit import web_on_both_registries
from test_operations import api_port, http

sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
import emuctl  # noqa: E402

CHECK_ID = "service:web-1:healthreg"


class Poller(threading.Thread):
    """Every 50 ms: the Consul check's status, whether the service is
    registered, and the agent's /v1/health code."""

    def __init__(self, emu, api):
        super().__init__(daemon=True)
        self.emu, self.api = emu, api
        self.stop_flag = threading.Event()
        self.samples = []  # (t, consul status or None, registered, health)

    def consul(self):
        st, _, body = emuctl.request(self.emu, "GET", "/v1/agent/checks",
                                     timeout=5)
        checks = json.loads(body) if st == 200 else {}
        st, _, body = emuctl.request(self.emu, "GET", "/v1/agent/services",
                                     timeout=5)
        services = json.loads(body) if st == 200 else {}
        c = checks.get(CHECK_ID)
        return (c or {}).get("Status"), "web-1" in services

    def run(self):
        while not self.stop_flag.is_set():
            status, registered = self.consul()
            code = http("GET", self.api + "/v1/health", timeout=5)[0]
            self.samples.append((time.monotonic(), status, registered, code))
            time.sleep(0.05)

    def stop(self):
        self.stop_flag.set()
        self.join(30)



@unittest.skipUnless(shutil.which(etcd_harness.ETCD), "etcd not installed")
class TestReloadNeverDeregisters(unittest.TestCase):
    def setUp(self):
        web_on_both_registries(self, None, "500ms", "400ms")
        self.agent = hrtest.Agent(self.config)
        self.addCleanup(self.agent.close)
        self.api = "http://127.0.0.1:%d" % api_port(self.agent)
        self.assertIsNotNone(self.watch.wait_for(lambda e: e.type == "PUT", 15),
                             self.agent.log())
        self.poller = Poller(self.emu, self.api)
        self.assertTrue(hrtest.wait_for(
            lambda: self.poller.consul() == ("passing", True), 15),
            self.agent.log())
        self.poller.start()
        self.addCleanup(self.poller.stop)

    def slow_check(self, name, ms, timeout):
        return {"name": name, "http": "%s/slow/%d" % (self.target.url, ms),
                "interval": "30s", "timeout": timeout}

    def reload(self):
        with open(self.agent.config_path, "w") as f:
            json.dump(self.config, f)
        self.agent.proc.send_signal(signal.SIGHUP)

    def settled(self, n):
        return self.agent.log().count("event=reload_settled") >= n

    def assert_never_gone(self):
        self.poller.stop()
        log = self.agent.log()
        deletes = [e for e in self.watch.snapshot() if e.type == "DELETE"]
        self.assertEqual(deletes, [], log[-3000:])
        emu_log = self.emu.log_text()
        self.assertNotIn("Check missed TTL", emu_log)
        self.assertNotIn("/v1/agent/service/deregister", emu_log)
        self.assertGreater(len(self.poller.samples), 50)
        gone = [s for s in self.poller.samples if s[1] != "passing" or not s[2]]
        self.assertEqual(gone, [], log[-3000:])
        # The local API's view stays passing too: the new checks do not
        # count until their first result.
        self.assertEqual([s for s in self.poller.samples if s[3] != 200], [])
        self.assertNotIn("reason=\"timeout", log)
        # Still alive, and a sanitizer build found nothing (leaks at exit).
        self.assertEqual(self.agent.stop(), 0, log[-3000:])
        self.assertNotIn("Sanitizer", self.agent.log())

    def test_two_reloads_each_adding_a_slow_check(self):
        checks = self.config["service"]["checks"]
        # Reload 1's hold would end 1 s + 3 s + 0.5 s later; reload 2's
        # check answers 1.4 s + up to 1 s + 4 s after reload 1.
        checks.append(self.slow_check("slow1", 2000, "3s"))
        self.reload()
        self.assertTrue(self.agent.wait_log("event=reloaded", 5))
        time.sleep(1.4)
        checks.append(self.slow_check("slow2", 4000, "6s"))
        self.reload()
        self.assertTrue(hrtest.wait_for(lambda: self.settled(1), 15),
                        self.agent.log())
        self.assert_never_gone()
        # One hold for both reloads, ended by the results, not a timeout.
        self.assertIn('event=reload_settled reason="new checks have results" '
                      'status=passing output="3 passing"', self.agent.log())

    def test_tags_change_with_a_slow_new_check(self):
        self.config["service"]["tags"] = ["v2"]
        self.config["service"]["checks"].append(
            self.slow_check("slow", 4500, "6s"))
        t0 = time.monotonic()
        self.reload()
        self.assertTrue(hrtest.wait_for(lambda: self.settled(1), 15),
                        self.agent.log())
        self.assertGreater(time.monotonic() - t0, 4.0)  # leases outlived
        self.assertIn("registry=recreated", self.agent.log())
        # The new registration carries the new tags.
        st, _, body = emuctl.request(self.emu, "GET", "/v1/agent/services")
        self.assertEqual(json.loads(body)["web-1"]["Tags"], ["v2"])
        puts = [e for e in self.watch.snapshot() if e.type == "PUT"]
        self.assertEqual(json.loads(puts[-1].value)["Metadata"]["tags"], ["v2"])
        self.assert_never_gone()


class TestReloadLogsNoTransient(unittest.TestCase):
    """13b: nothing changed, nothing logged."""

    def test_noop_and_interval_only_reloads(self):
        target = targets.Target()
        self.addCleanup(target.stop)
        config = {"service": {"name": "web", "id": "web-1", "checks": [
            {"name": "api", "http": target.url + "/status/200",
             "interval": "300ms", "timeout": "250ms"}]},
            "agent": {"api_listen": "127.0.0.1:0",
                      "state_file": os.path.join(target.dir, "state")}}
        agent = hrtest.Agent(config)
        self.addCleanup(agent.close)
        api_port(agent)
        self.assertTrue(agent.wait_log("event=ready status=passing", 10),
                        agent.log())
        agent.proc.send_signal(signal.SIGHUP)  # the same config
        self.assertTrue(hrtest.wait_for(
            lambda: agent.log().count("event=reload_settled") == 1, 10))
        config["service"]["checks"][0]["interval"] = "400ms"
        with open(agent.config_path, "w") as f:
            json.dump(config, f)
        agent.proc.send_signal(signal.SIGHUP)
        self.assertTrue(hrtest.wait_for(
            lambda: agent.log().count("event=reload_settled") == 2, 10))
        time.sleep(0.5)
        log = agent.log()
        after = log[log.index("event=reload "):]
        self.assertIn('checks="kept=1 added=0 changed=0 removed=0"', after)
        self.assertIn('checks="kept=0 added=0 changed=1 removed=0"', after)
        self.assertNotIn("aggregate_status", after, after)
        self.assertEqual(re.findall(r"event=reload_settled .*", after),
                         ['event=reload_settled reason="no new checks" '
                          'status=passing output="1 passing"',
                          'event=reload_settled reason="new checks have '
                          'results" status=passing output="1 passing"'])
        self.assertEqual(agent.stop(), 0)
        self.assertNotIn("Sanitizer", agent.log())


if __name__ == "__main__":
    unittest.main()
