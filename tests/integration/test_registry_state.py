"""What the agent shows about its registries and says in its log (issue
13, "What the agent shows"):

- a real etcd paused (SIGSTOP) for 8 s: `GET /v1/health` and `healthreg
  status` show it unreachable since a time, with the failed attempts and
  the last error, /metrics has healthreg_registry_up 0; resumed, all of
  it says registered and up again;
- the log has one line when it goes down and one when it is back (at
  most 3 about it for the outage, not one per retry), in JSON with
  numbers as JSON numbers;
- the start line comes first; a critical start says that nothing is
  registered and names the failing checks; no registry at all is a
  warning at start."""
import json
import os
import shutil
import signal
import tempfile
import time
import unittest

import sys

import etcd_harness
import hrtest
import targets
from faultkit import api_url, http, metric

sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
import emuctl  # noqa: E402

PAUSE_S = 8


def events(agent):
    """The agent's JSON log lines, parsed (every line must parse)."""
    out = []
    for line in agent.log().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


class AgentCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hr-regstate-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.target = targets.Target()
        self.addCleanup(self.target.stop)

    def config(self, registry, path="/status/200"):
        cfg = {"service": {"name": "web", "id": "web-1",
                           "address": "127.0.0.1", "port": 8080, "checks": [
                               {"name": "api", "http": self.target.url + path,
                                "interval": "300ms", "timeout": "250ms"}]},
               "agent": {"api_listen": "127.0.0.1:0", "log_format": "json",
                         "state_file": os.path.join(self.dir, "state")}}
        if registry:
            cfg["registry"] = registry
        return cfg

    def start(self, cfg):
        self.agent = hrtest.Agent(cfg)
        self.addCleanup(self.agent.close)
        self.api = api_url_json(self.agent)

    def registries(self):
        st, body = http("GET", self.api + "/v1/health")
        return {r["backend"]: r for r in json.loads(body)["registries"]}

    def status_text(self):
        p = hrtest.run(["status", "--api", self.api[len("http://"):]])
        return p.stdout


def api_url_json(agent, timeout=10):
    """The API's base URL from the JSON api_listening line."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for e in events(agent):
            if e["event"] == "api_listening":
                return "http://127.0.0.1:%s" % e["port"]
        time.sleep(0.05)
    raise AssertionError("no api_listening:\n" + agent.log())


@unittest.skipUnless(shutil.which(etcd_harness.ETCD), "etcd not installed")
class TestEtcdPaused(AgentCase):
    def test_paused_etcd_is_shown_and_logged_once(self):
        etcd = etcd_harness.EtcdCluster(members=1)
        self.addCleanup(etcd.close)
        self.start(self.config({"etcd": {"endpoints": etcd.endpoints,
                                         "lease_ttl": "3s",
                                         "request_timeout": "500ms"}}))
        self.assertTrue(hrtest.wait_for(
            lambda: self.registries()["etcd"]["state"] == "registered", 10),
            self.agent.log())
        r = self.registries()["etcd"]
        self.assertTrue(r["up"])
        self.assertIsNone(r["since"])
        self.assertIn("registry etcd: registered", self.status_text())
        self.assertEqual(metric(self.api, "healthreg_registry_up",
                                backend="etcd"), 1)
        self.assertEqual(metric(self.api, "healthreg_registry_state",
                                backend="etcd", state="registered"), 1)
        n_before = len(events(self.agent))

        etcd.pause(0)
        try:
            self.assertTrue(hrtest.wait_for(
                lambda: self.registries()["etcd"]["state"] == "unreachable",
                5), self.agent.log())
            time.sleep(PAUSE_S - 3)
            r = self.registries()["etcd"]
            text = self.status_text()
            up = metric(self.api, "healthreg_registry_up", backend="etcd")
            fails = metric(self.api, "healthreg_registry_consecutive_failures",
                           backend="etcd")
        finally:
            etcd.resume(0)
        self.assertFalse(r["up"])
        self.assertEqual(r["state"], "unreachable")
        self.assertEqual(r["registration"], "registered")
        self.assertRegex(r["since"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertGreaterEqual(r["failed_attempts"], 3)
        self.assertTrue(r["last_error"], r)
        self.assertRegex(text, r"registry etcd: unreachable since \S+Z, "
                               r"\d+ failed attempts \(last known: "
                               r"registered\); last error: \S", text)
        self.assertEqual(up, 0)
        self.assertGreaterEqual(fails, 3)
        # The checks are healthy: status says passing, and says etcd.
        self.assertIn("service web: passing", text)

        self.assertTrue(hrtest.wait_for(
            lambda: self.registries()["etcd"]["up"], 15), self.agent.log())
        self.assertTrue(hrtest.wait_for(
            lambda: self.registries()["etcd"]["state"] == "registered", 15),
            self.agent.log())
        self.assertEqual(metric(self.api, "healthreg_registry_up",
                                backend="etcd"), 1)
        time.sleep(0.5)
        outage = events(self.agent)[n_before:]
        loud = [e for e in outage if e["level"] in ("warn", "error")]
        about = [e for e in loud if "etcd" in json.dumps(e)
                 or e["event"].startswith("registry_")]
        self.assertEqual([e["event"] for e in about][:1],
                         ["registry_unreachable"], about)
        self.assertLessEqual(len(about), 3, json.dumps(about, indent=1))
        back = [e for e in outage if e["event"] == "registry_reachable"]
        self.assertEqual(len(back), 1, outage)
        self.assertIsInstance(back[0]["failed_attempts"], int)
        self.assertGreaterEqual(back[0]["failed_attempts"], 3)
        self.assertIsInstance(back[0]["down_seconds"], float)
        # Down from the state change to unreachable until the answer after
        # the resume: at least the PAUSE_S - 3 s slept in between (the log
        # rounds to 0.1 s).
        self.assertGreaterEqual(back[0]["down_seconds"], PAUSE_S - 3 - 0.1)
        self.assertEqual(self.agent.stop(), 0)


class TestConsulFaults(AgentCase):
    """The Consul emulator answering 500 (no usable answer: unreachable),
    then 403 (a refusal: failing), then fine; and maintenance."""

    def test_consul_states(self):
        emu = emuctl.start(check_update_interval_ms=0)
        self.addCleanup(emu.cleanup)
        self.start(self.config({"consul": {"address": emu.url,
                                           "check_ttl": "3s"}}))
        self.assertTrue(hrtest.wait_for(
            lambda: self.registries()["consul"]["state"] == "registered",
            10), self.agent.log())
        emu.fault("status 500")
        self.assertTrue(hrtest.wait_for(
            lambda: self.registries()["consul"]["state"] == "unreachable",
            10), self.agent.log())
        r = self.registries()["consul"]
        self.assertIn("HTTP 500", r["last_error"] or "", r)
        emu.fault("status 403")
        self.assertTrue(hrtest.wait_for(
            lambda: self.registries()["consul"]["last_error"] and
            "403" in self.registries()["consul"]["last_error"], 10),
            self.agent.log())
        # Refused, not unreachable: the word follows the last failure.
        self.assertEqual(self.registries()["consul"]["state"], "failing")
        emu.fault(None)
        self.assertTrue(hrtest.wait_for(
            lambda: self.registries()["consul"]["state"] == "registered",
            15), self.agent.log())
        st, _ = http("PUT", self.api +
                     "/v1/maintenance?enable=true&reason=upgrade")
        self.assertEqual(st, 200)
        self.assertTrue(hrtest.wait_for(
            lambda: self.registries()["consul"]["state"] == "maintenance",
            10), self.agent.log())
        self.assertEqual(metric(self.api, "healthreg_registry_state",
                                backend="consul", state="maintenance"), 1)
        self.assertIn("registry consul: maintenance", self.status_text())
        evs = events(self.agent)
        self.assertEqual(sum(e["event"] == "registry_unreachable"
                             for e in evs), 1, evs)
        self.assertEqual(sum(e["event"] == "registry_reachable"
                             for e in evs), 1, evs)
        self.assertEqual(self.agent.stop(), 0)


class TestStartLines(AgentCase):
    def test_start_line_first_and_numbers_are_numbers(self):
        self.start(self.config(None))
        self.assertTrue(self.agent.wait_log('"event":"ready"', 10),
                        self.agent.log())
        evs = events(self.agent)
        self.assertEqual(evs[0]["event"], "start", evs[:3])
        self.assertIsInstance(evs[0]["checks"], int)
        ready = next(e for e in evs if e["event"] == "ready")
        self.assertIsInstance(ready["checks"], int)
        listening = next(e for e in evs if e["event"] == "api_listening")
        self.assertIsInstance(listening["port"], int)
        # Without a registry: a warning says nothing is registered.
        warn = [e for e in evs if e["event"] == "no_registry"]
        self.assertEqual(len(warn), 1, evs)
        self.assertEqual(warn[0]["level"], "warn")
        st, body = http("GET", self.api + "/v1/health")
        self.assertEqual(json.loads(body)["registries"], [])
        self.assertIn("registries: none configured", self.status_text())
        self.assertEqual(self.agent.stop(), 0)

    @unittest.skipUnless(shutil.which(etcd_harness.ETCD), "etcd not installed")
    def test_critical_start_says_why_nothing_is_registered(self):
        etcd = etcd_harness.EtcdCluster(members=1)
        self.addCleanup(etcd.close)
        self.start(self.config({"etcd": {"endpoints": etcd.endpoints}},
                               path="/status/500"))
        self.assertTrue(self.agent.wait_log('"event":"not_registered"', 10),
                        self.agent.log())
        e = next(e for e in events(self.agent)
                 if e["event"] == "not_registered")
        self.assertEqual((e["level"], e["registries"], e["status"],
                          e["failing"]), ("warn", "etcd", "critical", "api"),
                         e)
        self.assertEqual(self.registries()["etcd"]["state"], "deregistered")
        self.assertEqual(etcd.get("services/web/127.0.0.1:8080"), None)
        self.assertEqual(self.agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
