"""The decision journal and dry runs (issue 14 section 3), with a real etcd
and the Consul emulator:

- one agent registered in both: a ttl check pushed critical -> a
  "deregister" entry per backend naming the failing check with its
  status and output; pushed passing -> "register" naming it (was
  critical); a reload adding a check -> "held_for_reload"; maintenance on
  and off; SIGTERM -> "shutdown" (in the log: the agent is gone). Each
  decision is one "decision" log line; GET /v1/decisions answers newest
  last, honours ?limit= and ?service=; `healthreg why` prints them
  newest first with the check that caused them;
- "dry_run": true on both registries: the same decisions, with dry_run
  true in the entry and the log line, and no request at all reaches
  either registry (a real etcd watch on the prefix sees no event, the
  emulator's request log has no line); status, /v1/health and /metrics
  say dry_run; /v1/decisions needs the API token when one is set;
- agent.journal_size bounds the journal and is validated."""
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest
import urllib.request

import etcd_harness
import hrtest
import targets
from faultkit import http, metric

sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
import emuctl  # noqa: E402

HAVE_ETCD = shutil.which(etcd_harness.ETCD) is not None


def events(agent):
    return [json.loads(l) for l in agent.log().splitlines()
            if l.startswith("{")]


def decision_lines(agent):
    return [e for e in events(agent) if e.get("event") == "decision"]


def api_url(agent, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for e in events(agent):
            if e["event"] == "api_listening":
                return "http://127.0.0.1:%s" % e["port"]
        time.sleep(0.05)
    raise AssertionError("no api_listening:\n" + agent.log())


def get_json(url, token=None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@unittest.skipUnless(HAVE_ETCD, "etcd not installed")
class DecisionCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hr-decisions-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.target = targets.Target()
        self.addCleanup(self.target.stop)
        self.etcd = etcd_harness.EtcdCluster(members=1)
        self.addCleanup(self.etcd.close)
        self.emu = emuctl.start(check_update_interval_ms=0)
        self.addCleanup(self.emu.cleanup)

    def config(self, dry_run=False, extra_checks=(), agent=None):
        etcd = {"endpoints": self.etcd.endpoints, "lease_ttl": "5s",
                "prefix": "decisions/"}
        consul = {"address": self.emu.url, "check_ttl": "5s"}
        if dry_run:
            etcd["dry_run"] = True
            consul["dry_run"] = True
        checks = [{"name": "api", "http": self.target.url + "/status/200",
                   "interval": "300ms", "timeout": "250ms"},
                  {"name": "db", "ttl": "60s"}] + list(extra_checks)
        return {"service": {"name": "web", "id": "web-1",
                            "address": "127.0.0.1", "port": 8080,
                            "checks": checks},
                "agent": dict({"api_listen": "127.0.0.1:0",
                               "log_format": "json",
                               "state_file": os.path.join(self.dir, "state")},
                              **(agent or {})),
                "registry": {"etcd": etcd, "consul": consul}}

    def start(self, cfg):
        self.agent = hrtest.Agent(cfg)
        self.addCleanup(self.agent.close)
        self.api = api_url(self.agent)
        self.token = None

    def push(self, verb, note):
        st, _ = http("PUT", "%s/v1/checks/db/%s?note=%s" %
                     (self.api, verb, note.replace(" ", "%20")))
        self.assertEqual(st, 200)

    def decisions(self, query=""):
        st, doc = get_json(self.api + "/v1/decisions" + query, self.token)
        self.assertEqual(st, 200, doc)
        return doc["decisions"]

    def wait_decision(self, kind, backend, after=0, timeout=10):
        """The first entry of kind for backend with seq > after."""
        found = []

        def pred():
            found[:] = [e for e in self.decisions()
                        if e["decision"] == kind and e["backend"] == backend
                        and e["seq"] > after]
            return bool(found)
        self.assertTrue(hrtest.wait_for(pred, timeout),
                        "no %s for %s after %d: %s\n%s" %
                        (kind, backend, after, self.decisions(),
                         self.agent.log()[-3000:]))
        return found[0]

    def last_seq(self):
        d = self.decisions()
        return d[-1]["seq"] if d else 0

    def why(self, *args):
        return hrtest.run(["why", "--api", self.api[len("http://"):]] +
                          list(args))


class TestJournal(DecisionCase):
    def test_failure_recovery_reload_maintenance_shutdown(self):
        self.start(self.config())
        # The ttl check has no push yet (unknown, counted as critical):
        # nothing registered.
        for b in ("etcd", "consul"):
            e = self.wait_decision("deregister", b)
            self.assertIn("nothing registered", e["why"])
            self.assertIn("db", [c["name"] for c in e["checks"]], e)
        self.push("pass", "db ok")
        seq = 0
        for b in ("etcd", "consul"):
            e = self.wait_decision("register", b)
            self.assertEqual(e["status"], "passing")
            self.assertEqual(e["service"], "web-1")
            self.assertFalse(e["dry_run"])
            db = [c for c in e["checks"] if c["name"] == "db"]
            self.assertEqual(db, [{"name": "db", "status": "passing",
                                   "changed": True, "was": "unknown",
                                   "output": "db ok"}], e)
            seq = max(seq, e["seq"])
        key = "decisions/web/127.0.0.1:8080"
        self.assertTrue(hrtest.wait_for(
            lambda: self.etcd.get(key) is not None, 10), self.agent.log())
        # (what the dry run below must not show: the request log)
        self.assertIn("PUT /v1/agent/service/register", self.emu.log_text())

        # A check fails: deregistered, naming the check and its output.
        self.push("fail", "connection refused")
        for b in ("etcd", "consul"):
            e = self.wait_decision("deregister", b, after=seq)
            self.assertEqual(e["status"], "critical")
            self.assertEqual(e["aggregate"], "critical")
            self.assertIn("not in register_when", e["why"])
            db = [c for c in e["checks"] if c["name"] == "db"]
            self.assertEqual(db[0]["status"], "critical", e)
            self.assertEqual(db[0]["output"], "connection refused")
            self.assertTrue(db[0]["changed"])
            self.assertEqual(db[0]["was"], "passing")
        self.assertTrue(hrtest.wait_for(
            lambda: self.etcd.get(key) is None, 10), self.agent.log())
        out = self.why()
        self.assertEqual(out.returncode, 0, out.stderr)
        first = out.stdout.splitlines()[0]
        self.assertIn("deregister", first)
        self.assertIn("web-1", first)
        self.assertIn("check db: critical (was passing): connection refused",
                      out.stdout)
        seq = self.last_seq()

        # Recovery: registered again, because db passes.
        self.push("pass", "back")
        for b in ("etcd", "consul"):
            e = self.wait_decision("register", b, after=seq)
            db = [c for c in e["checks"] if c["name"] == "db"]
            self.assertEqual((db[0]["status"], db[0]["was"]),
                             ("passing", "critical"))
        self.assertTrue(hrtest.wait_for(
            lambda: self.etcd.get(key) is not None, 10), self.agent.log())
        out = self.why("web-1")
        self.assertIn("register", out.stdout.splitlines()[0])
        self.assertEqual(self.why("other").stdout.strip(),
                         "no decisions yet for other")
        seq = self.last_seq()

        # A reload adding a check: held until its first result.
        with open(self.agent.config_path, "w") as f:
            json.dump(self.config(extra_checks=[
                {"name": "cache", "http": self.target.url + "/status/200",
                 "interval": "5s", "timeout": "2s"}]), f)
        st, _ = http("PUT", self.api + "/v1/reload")
        self.assertEqual(st, 200)
        for b in ("etcd", "consul"):
            e = self.wait_decision("held_for_reload", b, after=seq)
            self.assertIn("cache", e["why"])
        seq = self.last_seq()

        # Maintenance on and off.
        st, _ = http("PUT", self.api +
                     "/v1/maintenance?enable=true&reason=kernel%20upgrade")
        self.assertEqual(st, 200)
        e = self.wait_decision("maintenance_on", "consul", after=seq)
        self.assertIn("kernel upgrade", e["why"])
        self.assertTrue(e["maintenance"])
        e = self.wait_decision("maintenance_on", "etcd", after=seq)
        self.assertIn("kernel upgrade", e["why"])
        # etcd has no maintenance mode: its backend removes the key (the
        # fleet floor does not hold it), so it leaves.
        self.wait_decision("deregister", "etcd", after=seq)
        seq = self.last_seq()
        st, _ = http("PUT", self.api + "/v1/maintenance?enable=false")
        self.assertEqual(st, 200)
        self.wait_decision("maintenance_off", "consul", after=seq)
        self.wait_decision("register", "etcd", after=seq)

        # ?limit= and ?service=, newest last.
        all_ = self.decisions()
        self.assertEqual([e["seq"] for e in all_],
                         sorted(e["seq"] for e in all_))
        self.assertEqual(self.decisions("?limit=3"), all_[-3:])
        self.assertEqual(self.decisions("?service=web-1"), all_)
        self.assertEqual(self.decisions("?service=nope"), [])
        for bad in ("0", "-1", "x", "10001"):
            st, doc = get_json(self.api + "/v1/decisions?limit=" + bad)
            self.assertEqual(st, 400, bad)
            self.assertIn("limit", doc["error"])

        # One log line per decision, the same as the journal.
        logged = decision_lines(self.agent)
        self.assertEqual(len(logged), len(all_))
        self.assertEqual([(l["decision"], l["backend"]) for l in logged],
                         [(e["decision"], e["backend"]) for e in all_])
        self.assertIn("db=critical (was passing): connection refused",
                      " ".join(l["checks"] for l in logged))

        # SIGTERM: shutdown, in the log.
        self.assertEqual(self.agent.stop(), 0)
        shut = [l for l in decision_lines(self.agent)
                if l["decision"] == "shutdown"]
        self.assertEqual(sorted(l["backend"] for l in shut),
                         ["consul", "etcd"])
        self.assertIsNone(self.etcd.get(key))


class TestLost(DecisionCase):
    def test_registry_drops_the_registration(self):
        """Not healthreg's decision, but the answer to "why was it
        removed": the lease revoked behind the agent's back, the service
        deregistered in Consul."""
        self.start(self.config())
        self.push("pass", "ok")
        key = "decisions/web/127.0.0.1:8080"
        self.assertTrue(hrtest.wait_for(lambda: self.etcd.get(key), 10))
        self.assertTrue(hrtest.wait_for(
            lambda: "PUT /v1/agent/service/register" in self.emu.log_text(),
            10))
        seq = self.last_seq()
        st, _ = self.etcd.call("/v3/lease/revoke",
                               {"ID": self.etcd.get(key)["lease"]})
        self.assertEqual(st, 200)
        st, _, _ = emuctl.request(self.emu, "PUT",
                                  "/v1/agent/service/deregister/web-1")
        self.assertEqual(st, 200)
        e = self.wait_decision("registration_lost", "etcd", after=seq,
                               timeout=15)
        self.assertIn("etcd dropped the key with its lease", e["why"])
        self.assertEqual(e["status"], "passing")
        e = self.wait_decision("registration_lost", "consul", after=seq,
                               timeout=15)
        self.assertIn("Consul no longer has the service", e["why"])
        # and back
        self.assertTrue(hrtest.wait_for(lambda: self.etcd.get(key), 10))
        self.assertIn("registration_lost", self.why().stdout)


class TestDryRun(DecisionCase):
    def test_decisions_without_requests(self):
        watch = self.etcd.watch("decisions/")
        tf = os.path.join(self.dir, "token")
        with open(tf, "w") as f:
            f.write("s3cret\n")
        os.chmod(tf, 0o600)
        self.start(self.config(dry_run=True,
                               agent={"api_token_file": tf}))
        self.token = "s3cret"
        # Behind the token.
        st, _ = get_json(self.api + "/v1/decisions")
        self.assertEqual(st, 401)
        st, _ = get_json(self.api + "/v1/decisions", "wrong")
        self.assertEqual(st, 403)

        for b in ("etcd", "consul"):
            e = self.wait_decision("deregister", b)
            self.assertTrue(e["dry_run"])
        self.push_auth("pass")
        for b in ("etcd", "consul"):
            e = self.wait_decision("register", b)
            self.assertTrue(e["dry_run"])
        seq = self.last_seq()
        self.push_auth("fail")
        for b in ("etcd", "consul"):
            e = self.wait_decision("deregister", b, after=seq)
            self.assertTrue(e["dry_run"])
            self.assertEqual(e["checks"][0]["name"], "db")
        seq = self.last_seq()
        self.push_auth("pass")
        for b in ("etcd", "consul"):
            self.wait_decision("register", b, after=seq)

        # What the agent shows for a dry-run registry.
        st, body = self.get_auth("/v1/health")
        regs = {r["backend"]: r for r in json.loads(body)["registries"]}
        for b in ("etcd", "consul"):
            self.assertEqual(regs[b]["state"], "dry_run")
            self.assertEqual(regs[b]["registration"], "registered")
            self.assertTrue(regs[b]["dry_run"])
            self.assertEqual(regs[b]["writes"], 0)
            self.assertEqual(regs[b]["errors"], 0)
        p = hrtest.run(["status", "--api", self.api[len("http://"):]],
                       env={"HEALTHREG_API_TOKEN": "s3cret"})
        self.assertIn("registry etcd: dry_run (nothing sent; would be: "
                      "registered)", p.stdout)
        out = hrtest.run(["why", "--api", self.api[len("http://"):]],
                         env={"HEALTHREG_API_TOKEN": "s3cret"})
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(" web-1 register (dry run: nothing sent) [",
                      out.stdout.splitlines()[0])
        out = hrtest.run(["why", "--api", self.api[len("http://"):]])
        self.assertEqual(out.returncode, 64)
        self.assertIn("401", out.stderr)

        self.assertEqual(self.agent.stop(), 0)
        logged = decision_lines(self.agent)
        self.assertTrue(logged)
        self.assertTrue(all(l["dry_run"] == "true" for l in logged), logged)
        self.assertEqual(
            sorted(l["backend"] for l in logged
                   if l["decision"] == "shutdown"), ["consul", "etcd"])
        # Nothing reached either registry.
        self.assertEqual(watch.snapshot(), [])
        self.assertEqual(self.etcd.get("decisions/web/127.0.0.1:8080"), None)
        self.assertNotIn("[HTTP]", self.emu.log_text())
        st, _, body = emuctl.request(self.emu, "GET", "/v1/agent/services")
        self.assertEqual(json.loads(body), {})

    def test_dry_run_then_take_over(self):
        """A reload that drops dry_run creates the real backends, which
        register (and decide as themselves: dry_run false)."""
        watch = self.etcd.watch("decisions/")
        self.start(self.config(dry_run=True))
        self.push("pass", "ok")
        for b in ("etcd", "consul"):
            self.assertTrue(self.wait_decision("register", b)["dry_run"])
        seq = self.last_seq()
        time.sleep(0.5)  # would be time enough for a write to show
        self.assertEqual(watch.snapshot(), [])
        self.assertNotIn("[HTTP]", self.emu.log_text())
        with open(self.agent.config_path, "w") as f:
            json.dump(self.config(), f)
        st, _ = http("PUT", self.api + "/v1/reload")
        self.assertEqual(st, 200)
        for b in ("etcd", "consul"):
            e = self.wait_decision("register", b, after=seq)
            self.assertFalse(e["dry_run"])
        self.assertTrue(hrtest.wait_for(
            lambda: self.etcd.get("decisions/web/127.0.0.1:8080"), 10),
            self.agent.log())
        self.assertTrue(hrtest.wait_for(
            lambda: "PUT /v1/agent/service/register" in self.emu.log_text(),
            10))
        self.assertEqual(self.agent.stop(), 0)
        shut = [l for l in decision_lines(self.agent)
                if l["decision"] == "shutdown"]
        self.assertEqual(sorted((l["backend"], l["dry_run"]) for l in shut),
                         [("consul", "false"), ("etcd", "false")])

    def push_auth(self, verb):
        req = urllib.request.Request("%s/v1/checks/db/%s" % (self.api, verb),
                                     method="PUT")
        req.add_header("Authorization", "Bearer s3cret")
        with urllib.request.urlopen(req, timeout=5) as r:
            self.assertEqual(r.status, 200)

    def get_auth(self, path):
        req = urllib.request.Request(self.api + path)
        req.add_header("Authorization", "Bearer s3cret")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


class TestJournalSize(unittest.TestCase):
    def validate(self, size):
        path = hrtest.write_config({
            "service": {"name": "web", "checks": [
                {"name": "t", "ttl": "10s"}]},
            "agent": {"journal_size": size}})
        try:
            return hrtest.run(["validate", "-c", path])
        finally:
            os.unlink(path)

    def test_bounds(self):
        for ok in (0, 1, 256, 10000):
            self.assertEqual(self.validate(ok).returncode, 0, ok)
        for bad in (-1, 10001, "big", 1.5):
            p = self.validate(bad)
            self.assertEqual(p.returncode, 78, bad)
            self.assertIn("agent.journal_size", p.stderr + p.stdout)


class TestWhyUsage(unittest.TestCase):
    def test_one_optional_service(self):
        port = str(etcd_harness.free_port())
        p = hrtest.run(["why", "web-1", "extra", "--api", port])
        self.assertEqual(p.returncode, 64)
        self.assertIn("unexpected argument 'extra'", p.stderr)
        # nobody listens there
        p = hrtest.run(["why", "web-1", "--api", port])
        self.assertEqual(p.returncode, 69, p.stderr)
        p = hrtest.run(["why", "--reason", "x", "--api", port])
        self.assertEqual(p.returncode, 64)


if __name__ == "__main__":
    unittest.main()
