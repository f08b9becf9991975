"""Several services in one agent (issue 14 section 1), with a real etcd and
the Consul emulator. One agent runs three services, each with a ttl check
"hb" (the same name in all three):

- each is registered on its own: an etcd key per service, a Consul
  registration and TTL check per service;
- TTL pushes addressed by service (/v1/services/<id>/checks/hb/pass); the
  old /v1/checks/hb/pass answers 409 naming the services that have it;
- one service failing deregisters only itself; /v1/health/<id> answers
  that service's code (404 for an unknown id), /v1/health the worst;
- /metrics labels every per-service series with service="<id>";
  `healthreg status` lists every service;
- a reload that removes one service, adds one and changes one leaves the
  untouched one alone: its etcd key keeps its mod_revision, the emulator
  sees no register or deregister for it; the removed one is deregistered,
  the added one registers after its first result;
- SIGTERM removes every registration;
- maintenance of one service (`healthreg maint enable --service ID`,
  PUT /v1/maintenance?service=ID) takes that service alone out, survives
  a restart (the state file), and ends on its own; the agent's
  maintenance takes every service out;
- systemd hears READY=1 once, when every service has its first result;
- `healthreg check` and `validate` go through every service."""
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import unittest

import etcd_harness
import hrtest
import targets
from faultkit import http

sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
import emuctl  # noqa: E402

HAVE_ETCD = shutil.which(etcd_harness.ETCD) is not None
PREFIX = "multi/"


def events(agent):
    return [json.loads(l) for l in agent.log().splitlines()
            if l.startswith("{")]


def api_url(agent, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for e in events(agent):
            if e["event"] == "api_listening":
                return "http://127.0.0.1:%s" % e["port"]
        time.sleep(0.05)
    raise AssertionError("no api_listening:\n" + agent.log())


def service(name, port, tags=()):
    return {"name": name, "id": name + "-1", "address": "127.0.0.1",
            "port": port, "tags": list(tags),
            "checks": [{"name": "hb", "ttl": "600s"}]}


@unittest.skipUnless(HAVE_ETCD, "etcd not installed")
class TestMultiService(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hr-multi-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.etcd = etcd_harness.EtcdCluster(members=1)
        self.addCleanup(self.etcd.close)
        self.emu = emuctl.start()
        self.addCleanup(self.emu.cleanup)

    def config(self, services):
        return {"services": services,
                "agent": {"api_listen": "127.0.0.1:0", "log_format": "json",
                          "shutdown_timeout": "3s",
                          "state_file": os.path.join(self.dir, "state")},
                "registry": {
                    "etcd": {"endpoints": self.etcd.endpoints,
                             "lease_ttl": "5s", "prefix": PREFIX},
                    "consul": {"address": self.emu.url, "check_ttl": "30s"}}}

    def key(self, name, port):
        return "%s%s/127.0.0.1:%d" % (PREFIX, name, port)

    def consul_services(self):
        st, _, body = emuctl.request(self.emu, "GET", "/v1/agent/services")
        self.assertEqual(st, 200, body)
        return json.loads(body)

    def consul_checks(self):
        st, _, body = emuctl.request(self.emu, "GET", "/v1/agent/checks")
        self.assertEqual(st, 200, body)
        return json.loads(body)

    def push(self, sid, verb):
        st, body = http("PUT", "%s/v1/services/%s/checks/hb/%s"
                           % (self.api, sid, verb))
        self.assertEqual(st, 200, body)

    def health(self, path=""):
        st, body = http("GET", self.api + "/v1/health" + path)
        return st, json.loads(body)

    def wait(self, pred, what, timeout=15):
        self.assertTrue(hrtest.wait_for(pred, timeout),
                        "%s\n%s" % (what, self.agent.log()[-4000:]))

    def registered(self, names):
        """Exactly these (name, port) are in etcd and in Consul."""
        keys = [self.key(n, p) for n, p in names]
        want = sorted("%s-1" % n for n, _ in names)

        def ok():
            got = self.etcd.call("/v3/kv/range", {
                "key": etcd_harness.b64(PREFIX),
                "range_end": etcd_harness.b64(etcd_harness.prefix_end(PREFIX))})
            have = sorted(etcd_harness.unb64(kv["key"])
                          for kv in got[1].get("kvs") or [])
            return have == sorted(keys) and \
                sorted(self.consul_services()) == want
        return ok

    def register_lines(self):
        return self.emu.log_text().count("PUT /v1/agent/service/register")

    def test_three_services_each_on_its_own(self):
        svcs = [service("alpha", 8001), service("beta", 8002),
                service("gamma", 8003)]
        self.agent = hrtest.Agent(self.config(svcs))
        self.addCleanup(self.agent.close)
        self.api = api_url(self.agent)

        # The check name is in all three: the old form cannot tell which.
        st, body = http("PUT", self.api + "/v1/checks/hb/pass")
        self.assertEqual(st, 409, body)
        self.assertIn("alpha-1, beta-1, gamma-1", body)
        st, body = http("PUT", self.api + "/v1/services/nope/checks/hb/pass")
        self.assertEqual(st, 404, body)
        for s in ("alpha-1", "beta-1", "gamma-1"):
            self.push(s, "pass")
        self.wait(self.registered([("alpha", 8001), ("beta", 8002),
                                   ("gamma", 8003)]), "all three registered")
        checks = self.consul_checks()
        for s in ("alpha-1", "beta-1", "gamma-1"):
            self.assertEqual(checks["service:%s:healthreg" % s]["Status"],
                             "passing", checks)
        st, doc = self.health()
        self.assertEqual(st, 200, doc)
        self.assertEqual([s["id"] for s in doc["services"]],
                         ["alpha-1", "beta-1", "gamma-1"])
        st, doc = self.health("/alpha-1")
        self.assertEqual((st, doc["id"], doc["service"]), (200, "alpha-1", "alpha"))
        st, doc = self.health("/nope")
        self.assertEqual(st, 404)
        self.assertIn("unknown service", doc["error"])

        # beta fails: only beta leaves; the agent is the worst of three.
        self.push("beta-1", "fail")
        self.wait(self.registered([("alpha", 8001), ("gamma", 8003)]),
                  "only beta deregistered")
        self.assertEqual(self.health("/beta-1")[0], 503)
        self.assertEqual(self.health("/alpha-1")[0], 200)
        st, doc = self.health()
        self.assertEqual(st, 503, doc)
        self.assertIn("1 critical: beta-1", doc["output"])
        self.push("gamma-1", "warn")
        self.push("beta-1", "pass")
        self.wait(lambda: self.health()[0] == 429, "worst: gamma's warning")
        self.assertEqual(self.health("/gamma-1")[0], 429)
        self.assertEqual(self.health("/beta-1")[0], 200)
        self.push("gamma-1", "pass")
        self.wait(self.registered([("alpha", 8001), ("beta", 8002),
                                   ("gamma", 8003)]), "beta back")

        # Metrics: every per-service series names its service.
        st, text = http("GET", self.api + "/metrics")
        self.assertEqual(st, 200)
        self.assertIn("healthreg_services 3", text)
        for s in ("alpha-1", "beta-1", "gamma-1"):
            self.assertIn('healthreg_status{service="%s",status="passing"} 1'
                          % s, text)
            self.assertIn('healthreg_check_status{check="hb",kind="ttl",'
                          'service="%s",status="passing"} 1' % s, text)
            for b in ("consul", "etcd"):
                self.assertIn('healthreg_registry_up{backend="%s",'
                              'service="%s"} 1' % (b, s), text)
        # status lists every service
        out = hrtest.run(["status", "--api", self.api[len("http://"):]])
        self.assertEqual(out.returncode, 0, out.stderr)
        for s in ("alpha-1", "beta-1", "gamma-1"):
            self.assertIn("service %s (%s): passing" % (s, s[:-2]), out.stdout)
        self.assertEqual(out.stdout.count("registry etcd: registered"), 3,
                         out.stdout)

        # Reload: alpha untouched, beta changed (a tag), gamma removed,
        # delta added.
        alpha_rev = self.etcd.get(self.key("alpha", 8001))["mod_revision"]
        alpha_lease = self.etcd.get(self.key("alpha", 8001))["lease"]
        regs = self.register_lines()
        log_before = len(self.emu.log_text())
        svcs = [service("alpha", 8001), service("beta", 8002, ["v2"]),
                service("delta", 8004)]
        with open(self.agent.config_path, "w") as f:
            json.dump(self.config(svcs), f)
        st, body = http("PUT", self.api + "/v1/reload")
        self.assertEqual(st, 200, body)
        rel = [e for e in events(self.agent) if e["event"] == "reloaded"]
        self.assertEqual(rel[-1]["services"],
                         "kept=1 added=1 changed=1 removed=1", rel)
        # delta registers after its first result only
        self.wait(self.registered([("alpha", 8001), ("beta", 8002)]),
                  "gamma deregistered, delta not yet registered")
        self.assertEqual(self.consul_services()["beta-1"]["Tags"], ["v2"])
        self.push("delta-1", "pass")
        self.wait(self.registered([("alpha", 8001), ("beta", 8002),
                                   ("delta", 8004)]), "delta registered")
        self.assertEqual(self.health("/gamma-1")[0], 404)
        # alpha's registrations were never rewritten
        kv = self.etcd.get(self.key("alpha", 8001))
        self.assertEqual((kv["mod_revision"], kv["lease"]),
                         (alpha_rev, alpha_lease))
        after = self.emu.log_text()[log_before:]
        self.assertEqual(self.register_lines() - regs, 2, after)
        self.assertNotIn("deregister/alpha-1", after)
        self.assertIn("deregister/gamma-1", after)

        # A reload that fails changes nothing.
        with open(self.agent.config_path, "w") as f:
            json.dump(self.config(svcs + [service("alpha", 9000)]), f)
        st, body = http("PUT", self.api + "/v1/reload")
        self.assertEqual(st, 400, body)
        self.assertIn("duplicate service id", body)
        self.assertEqual(len(self.health()[1]["services"]), 3)

        # SIGTERM: every service deregisters.
        self.assertEqual(self.agent.stop(), 0, self.agent.log()[-3000:])
        self.assertTrue(self.registered([])(), (self.consul_services(),
                                               self.agent.log()[-3000:]))
        log = self.agent.log()
        self.assertNotIn("Sanitizer", log, log[-4000:])
        self.assertNotIn("runtime error", log, log[-4000:])

    def test_added_again_while_still_deregistering(self):
        """A service removed and added back before its deregistration is
        done would have the late delete remove the new key: that reload
        is refused until the removal is over."""
        cfg = self.config([service("alpha", 8001), service("beta", 8002)])
        del cfg["registry"]["consul"]
        self.agent = hrtest.Agent(cfg)
        self.addCleanup(self.agent.close)
        self.api = api_url(self.agent)
        for s in ("alpha-1", "beta-1"):
            self.push(s, "pass")
        self.wait(lambda: self.etcd.get(self.key("beta", 8002)) is not None,
                  "beta registered")
        self.etcd.pause()
        try:
            with open(self.agent.config_path, "w") as f:
                json.dump(dict(cfg, services=[service("alpha", 8001)]), f)
            st, body = http("PUT", self.api + "/v1/reload")
            self.assertEqual(st, 200, body)
            with open(self.agent.config_path, "w") as f:
                json.dump(cfg, f)
            st, body = http("PUT", self.api + "/v1/reload")
            self.assertEqual(st, 400, body)
            self.assertIn('service \\"beta-1\\" is still deregistering', body)
        finally:
            self.etcd.resume()
        self.wait(lambda: http("PUT", self.api + "/v1/reload")[0] == 200,
                  "the reload goes through once beta is gone")
        self.push("beta-1", "pass")
        self.wait(lambda: self.etcd.get(self.key("beta", 8002)) is not None,
                  "beta registered again")
        time.sleep(1)  # no late delete takes it away
        self.assertIsNotNone(self.etcd.get(self.key("beta", 8002)),
                             self.agent.log()[-3000:])

    def test_renamed_onto_a_service_still_deregistering(self):
        """[alpha, beta] -> [alpha] (beta deregistering) -> [beta]: one
        service before and after is renamed in place, but alpha renamed to
        beta would register beta while the removed beta's late deregister
        can still remove it: refused like adding beta back."""
        cfg = self.config([service("alpha", 8001), service("beta", 8002)])
        del cfg["registry"]["etcd"]
        cfg["agent"]["shutdown_timeout"] = "20s"
        self.agent = hrtest.Agent(cfg)
        self.addCleanup(self.agent.close)
        self.api = api_url(self.agent)
        for s in ("alpha-1", "beta-1"):
            self.push(s, "pass")
        self.wait(lambda: sorted(self.consul_services()) ==
                  ["alpha-1", "beta-1"], "both registered")
        self.emu.fault("status 500")  # beta's deregister keeps failing
        try:
            with open(self.agent.config_path, "w") as f:
                json.dump(dict(cfg, services=[service("alpha", 8001)]), f)
            st, body = http("PUT", self.api + "/v1/reload")
            self.assertEqual(st, 200, body)
            self.assertTrue(self.agent.wait_log("service_removed"),
                            self.agent.log()[-3000:])
            with open(self.agent.config_path, "w") as f:
                json.dump(dict(cfg, services=[service("beta", 8002)]), f)
            st, body = http("PUT", self.api + "/v1/reload")
            self.assertEqual(st, 400, body)
            self.assertIn('service \\"beta-1\\" is still deregistering',
                          body)
            self.assertEqual([s["id"] for s in self.health()[1]["services"]],
                             ["alpha-1"])
        finally:
            self.emu.fault(None)
        self.wait(lambda: "beta-1" not in self.consul_services(),
                  "beta deregistered")
        self.wait(lambda: http("PUT", self.api + "/v1/reload")[0] == 200,
                  "the rename goes through once beta is gone")
        self.push("beta-1", "pass")
        self.wait(lambda: sorted(self.consul_services()) == ["beta-1"],
                  "beta registered by the renamed unit, alpha removed")
        time.sleep(1)  # no late deregister takes it away
        self.assertEqual(sorted(self.consul_services()), ["beta-1"],
                         self.agent.log()[-3000:])

    def test_rebuilt_backends_take_the_new_shutdown_timeout(self):
        """A reload that raises shutdown_timeout and rebuilds the backends
        (a new tag): the new backends deregister within the new timeout
        (they used to be built with the old one)."""
        import signal
        cfg = self.config([service("alpha", 8001)])
        del cfg["registry"]["etcd"]
        cfg["agent"]["shutdown_timeout"] = "1s"
        self.agent = hrtest.Agent(cfg)
        self.addCleanup(self.agent.close)
        self.api = api_url(self.agent)
        self.push("alpha-1", "pass")
        self.wait(lambda: "alpha-1" in self.consul_services(), "registered")
        cfg = self.config([service("alpha", 8001, ["v2"])])
        del cfg["registry"]["etcd"]
        cfg["agent"]["shutdown_timeout"] = "30s"
        with open(self.agent.config_path, "w") as f:
            json.dump(cfg, f)
        st, body = http("PUT", self.api + "/v1/reload")
        self.assertEqual(st, 200, body)
        self.wait(lambda: self.consul_services().get("alpha-1", {})
                  .get("Tags") == ["v2"], "re-registered with the tag")
        self.emu.fault("status 500")  # the deregister keeps failing
        try:
            self.agent.proc.send_signal(signal.SIGTERM)
            time.sleep(3)  # three times the old timeout
            self.assertIsNone(self.agent.proc.poll(),
                              "gave up at the old timeout:\n" +
                              self.agent.log()[-3000:])
        finally:
            self.emu.fault(None)
        self.assertEqual(self.agent.proc.wait(40), 0, self.agent.log()[-3000:])
        self.assertEqual(self.consul_services(), {}, self.agent.log()[-3000:])

    def maint(self, *args):
        return hrtest.run(["maint"] + list(args) +
                          ["--api", self.api[len("http://"):]])

    def test_maintenance_of_one_service(self):
        svcs = [service("alpha", 8001), service("beta", 8002)]
        cfg = self.config(svcs)
        self.agent = hrtest.Agent(cfg)
        self.addCleanup(self.agent.close)
        self.api = api_url(self.agent)
        for s in ("alpha-1", "beta-1"):
            self.push(s, "pass")
        self.wait(self.registered([("alpha", 8001), ("beta", 8002)]),
                  "both registered")

        out = self.maint("enable", "--service", "beta-1", "--reason", "disk")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.wait(lambda: self.etcd.get(self.key("beta", 8002)) is None,
                  "beta's key removed")
        self.wait(lambda: "_service_maintenance:beta-1" in self.consul_checks(),
                  "beta in Consul's maintenance")
        self.assertNotIn("_service_maintenance:alpha-1", self.consul_checks())
        self.assertIsNotNone(self.etcd.get(self.key("alpha", 8001)))
        st, doc = self.health("/beta-1")
        self.assertEqual((st, doc["output"], doc["maintenance"]["enabled"]),
                         (503, "maintenance: disk", True))
        self.assertEqual(self.health("/alpha-1")[0], 200)
        st, body = http("GET", self.api + "/v1/maintenance?service=beta-1")
        self.assertEqual((st, json.loads(body)["enabled"]), (200, True))
        st, body = http("GET", self.api + "/v1/maintenance")
        self.assertEqual((st, json.loads(body)["enabled"]), (200, False))
        st, body = http("PUT", self.api + "/v1/maintenance?enable=true&service=nope")
        self.assertEqual(st, 404, body)
        with open(cfg["agent"]["state_file"]) as f:
            state = json.load(f)
        self.assertEqual(state["services"]["beta-1"],
                         {"enabled": True, "reason": "disk"})
        self.assertFalse(state["maintenance"]["enabled"])

        # A restart keeps beta (alone) in maintenance.
        self.assertEqual(self.agent.stop(), 0, self.agent.log()[-3000:])
        self.agent = hrtest.Agent(cfg)
        self.addCleanup(self.agent.close)
        self.api = api_url(self.agent)
        self.push("alpha-1", "pass")
        self.push("beta-1", "pass")
        # (Consul keeps a service in maintenance registered, with its
        # maintenance check critical; etcd has no key for it.)
        self.wait(lambda: "_service_maintenance:beta-1" in self.consul_checks()
                  and self.etcd.get(self.key("alpha", 8001)) is not None,
                  "beta in maintenance again, alpha registered")
        self.assertIsNone(self.etcd.get(self.key("beta", 8002)))
        st, doc = self.health("/beta-1")
        self.assertEqual((st, doc["output"]), (503, "maintenance: disk"))

        # Its own maintenance ends on its own.
        out = self.maint("disable", "--service", "beta-1")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.wait(self.registered([("alpha", 8001), ("beta", 8002)]),
                  "beta back")
        self.wait(lambda: "_service_maintenance:beta-1" not in self.consul_checks(),
                  "beta out of Consul's maintenance")

        # The agent's maintenance: every service.
        out = self.maint("enable", "--reason", "host")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.wait(lambda: all("_service_maintenance:%s" % s in
                              self.consul_checks() and
                              self.etcd.get(self.key(s[:-2], p)) is None
                              for s, p in (("alpha-1", 8001), ("beta-1", 8002))),
                  "every service in maintenance")
        for s in ("alpha-1", "beta-1"):
            st, doc = self.health("/" + s)
            self.assertEqual((st, doc["output"]), (503, "maintenance: host"))
        out = self.maint("disable")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.wait(self.registered([("alpha", 8001), ("beta", 8002)]),
                  "both back")


class TestStateFile(unittest.TestCase):
    def test_services_of_the_wrong_shape(self):
        """A state file whose "services" is not {"<id>": {...}} (here an
        array, whose items have no id) is unreadable like any other: the
        agent starts, every service in maintenance (it used to crash)."""
        d = tempfile.mkdtemp(prefix="hr-multi-state-")
        self.addCleanup(shutil.rmtree, d, True)
        state = os.path.join(d, "state")
        with open(state, "w") as f:
            json.dump({"maintenance": {"enabled": False},
                       "services": [{"enabled": True}]}, f)
        a = hrtest.Agent({
            "services": [service("alpha", 8001), service("beta", 8002)],
            "agent": {"api_listen": "127.0.0.1:0", "log_format": "json",
                      "state_file": state}})
        self.addCleanup(a.close)
        api = api_url(a)
        st, body = http("GET", api + "/v1/maintenance")
        self.assertEqual(st, 200, a.log()[-3000:])
        self.assertTrue(json.loads(body)["enabled"], body)
        for s in ("alpha-1", "beta-1"):
            st, body = http("GET", api + "/v1/health/" + s)
            self.assertEqual(st, 503, body)
            self.assertTrue(json.loads(body)["maintenance"]["enabled"], body)
        bad = [e for e in events(a) if e["event"] == "state_unreadable"]
        self.assertEqual(len(bad), 1, a.log())
        self.assertIsNone(a.proc.poll(), a.log()[-3000:])
        self.assertEqual(a.stop(), 0, a.log()[-3000:])


    def test_default_path_stays_across_a_reload(self):
        """Without agent.state_file the file is named after the first
        service at start; a reload that puts another service first does
        not move it (a restart of that config would then read the other
        name, but a running agent writes where it read)."""
        d = tempfile.mkdtemp(prefix="hr-multi-state-")
        self.addCleanup(shutil.rmtree, d, True)
        cfg = {"services": [service("alpha", 8001), service("beta", 8002)],
               "agent": {"api_listen": "127.0.0.1:0", "log_format": "json"}}
        a = hrtest.Agent(cfg, env={"STATE_DIRECTORY": d})
        self.addCleanup(a.close)
        api = api_url(a)
        st, body = http("PUT", api + "/v1/maintenance?enable=true&reason=one")
        self.assertEqual(st, 200, body)
        self.assertEqual(sorted(os.listdir(d)), ["alpha-1.state"])
        with open(a.config_path, "w") as f:
            json.dump(dict(cfg, services=[service("beta", 8002),
                                          service("alpha", 8001)]), f)
        st, body = http("PUT", api + "/v1/reload")
        self.assertEqual(st, 200, body)
        st, body = http("PUT", api + "/v1/maintenance?enable=true"
                        "&service=beta-1&reason=two")
        self.assertEqual(st, 200, body)
        self.assertEqual(sorted(os.listdir(d)), ["alpha-1.state"],
                         a.log()[-3000:])
        with open(os.path.join(d, "alpha-1.state")) as f:
            state = json.load(f)
        self.assertEqual(state["maintenance"],
                         {"enabled": True, "reason": "one"})
        self.assertEqual(state["services"],
                         {"beta-1": {"enabled": True, "reason": "two"}})
        self.assertEqual(a.stop(), 0, a.log()[-3000:])


class TestReloadExec(unittest.TestCase):
    def test_exec_checks_stay_off_when_a_reload_turns_them_on(self):
        """enable_exec_checks needs a restart: a reload that sets it keeps
        the start value, so a later reload adding an exec check is still
        refused (it used to pass, the check then failing to start)."""
        cfg = {"services": [service("alpha", 8001), service("beta", 8002)],
               "agent": {"api_listen": "127.0.0.1:0", "log_format": "json"}}
        a = hrtest.Agent(cfg)
        self.addCleanup(a.close)
        api = api_url(a)
        on = dict(cfg, agent=dict(cfg["agent"], enable_exec_checks=True))
        with open(a.config_path, "w") as f:
            json.dump(on, f)
        st, body = http("PUT", api + "/v1/reload")
        self.assertEqual(st, 200, body)
        self.assertTrue(a.wait_log("reload_needs_restart"), a.log())
        beta = service("beta", 8002)
        beta["checks"].append({"name": "x", "args": ["/bin/true"]})
        with open(a.config_path, "w") as f:
            json.dump(dict(on, services=[service("alpha", 8001), beta]), f)
        st, body = http("PUT", api + "/v1/reload")
        self.assertEqual(st, 400, body)
        self.assertIn("services[1].checks[1]: exec checks need "
                      "agent.enable_exec_checks at start", body)
        self.assertEqual(a.stop(), 0, a.log()[-3000:])


class TestReadiness(unittest.TestCase):
    def test_ready_once_every_service_is(self):
        d = tempfile.mkdtemp(prefix="hr-multi-notify-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "notify")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        s.settimeout(0.2)
        self.addCleanup(s.close)
        t = targets.Target()
        self.addCleanup(t.stop)
        fast = {"name": "fast", "checks": [
            {"name": "api", "http": t.url + "/status/200", "interval": "10s"}]}
        slow = {"name": "slow", "checks": [
            {"name": "api", "http": t.url + "/slow/1500", "interval": "10s",
             "timeout": "5s"}]}
        a = hrtest.Agent({"services": [fast, slow],
                          "agent": {"api_listen": "off", "log_format": "json"}},
                         env={"NOTIFY_SOCKET": path})
        self.addCleanup(a.close)
        msgs, ready_at = [], []
        deadline = time.time() + 15
        while time.time() < deadline and not ready_at:
            try:
                m = s.recv(4096).decode()
            except socket.timeout:
                continue
            msgs.append(m)
            if m.startswith("READY=1"):
                ready_at.append([e.get("service") for e in events(a)
                                 if e["event"] == "ready"])
        self.assertEqual(len(ready_at), 1, (msgs, a.log()[-2000:]))
        self.assertEqual(sorted(ready_at[0]), ["fast", "slow"], a.log())
        # and no second READY=1 for the other service
        end = time.time() + 1
        while time.time() < end:
            try:
                msgs.append(s.recv(4096).decode())
            except socket.timeout:
                pass
        self.assertEqual(sum(m.startswith("READY=1") for m in msgs), 1, msgs)
        self.assertEqual(a.stop(), 0, a.log()[-2000:])


class TestCommands(unittest.TestCase):
    def test_check_and_validate_every_service(self):
        cfg = {"services": [
            {"name": "a", "checks": [{"name": "x", "tcp": "127.0.0.1:1",
                                      "timeout": "1s"}]},
            {"name": "b", "check": {"name": "t", "ttl": "10s",
                                    "status": "passing"}}]}
        rc, doc, err = hrtest.check_json(cfg)
        self.assertEqual(rc, 2, err)
        self.assertEqual([(d["service"], d["status"]) for d in doc],
                         [("a", "critical"), ("b", "passing")])
        path = hrtest.write_config(cfg)
        self.addCleanup(os.unlink, path)
        p = hrtest.run(["check", "-c", path])
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("service a\n", p.stdout)
        self.assertIn("service b\n", p.stdout)
        self.assertEqual(p.stdout.count("aggregate: "), 2, p.stdout)
        p = hrtest.run(["validate", "-c", path])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("valid (2 services, 2 checks, 0 groups)", p.stdout)
        # A backend's preflight names the service it is about: b has no
        # port for its etcd key (an overlay enabling etcd for b alone).
        cfg["services"][0]["port"] = 80
        cfg["services"][1]["registry"] = {"etcd": {
            "endpoints": ["http://127.0.0.1:1"]}}
        cfg["services"][0]["registry"] = cfg["services"][1]["registry"]
        path = hrtest.write_config(cfg)
        self.addCleanup(os.unlink, path)
        p = hrtest.run(["validate", "-c", path])
        self.assertEqual(p.returncode, 78, p.stdout)
        self.assertIn("services[1]: registry.etcd needs service.port", p.stderr)
        self.assertNotIn("services[0]", p.stderr)


class TestToken(unittest.TestCase):
    def test_health_without_the_token_names_no_check(self):
        d = tempfile.mkdtemp(prefix="hr-multi-token-")
        self.addCleanup(shutil.rmtree, d, True)
        tok = os.path.join(d, "token")
        with open(tok, "w") as f:
            f.write("s3cret\n")
        os.chmod(tok, 0o600)
        a = hrtest.Agent({
            "services": [service("alpha", 8001), service("beta", 8002)],
            "agent": {"api_listen": "127.0.0.1:0", "log_format": "json",
                      "api_token_file": tok,
                      "state_file": os.path.join(d, "state")}})
        self.addCleanup(a.close)
        api = api_url(a)
        st, body = http("GET", api + "/v1/health")
        self.assertEqual(st, 503, body)
        doc = json.loads(body)
        self.assertEqual(doc["services"],
                         [{"service": "alpha", "id": "alpha-1",
                           "status": "critical",
                           "maintenance": {"enabled": False}},
                          {"service": "beta", "id": "beta-1",
                           "status": "critical",
                           "maintenance": {"enabled": False}}])
        self.assertNotIn("hb", body)
        self.assertNotIn("output", doc)
        st, body = http("GET", api + "/v1/health/beta-1")
        self.assertEqual(st, 503)
        self.assertNotIn("checks", json.loads(body))
        st, _ = http("PUT", api + "/v1/services/beta-1/checks/hb/pass")
        self.assertEqual(st, 401)


if __name__ == "__main__":
    unittest.main()
