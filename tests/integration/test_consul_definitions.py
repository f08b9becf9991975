"""Consul service definitions drop in (issue 13, blocker 2).

Each file of tests/fixtures/consul-defs is a definition in the shape
Consul's documentation gives it (see the README there). Each one goes
through `healthreg validate` as written (with healthreg's own "agent" or
"registry" section added where a script check or a Consul registry needs
one) and must be valid, with one warning per Consul field healthreg does
not use; then through `healthreg check` with only its targets pointed at
a loopback server, which must run every check under the name and kind
Consul's rules give it, and send each HTTP check's method, headers and
body. tests/unit/test_consul_defs.c asserts the parsed values (intervals,
timeouts, thresholds) of the same files.

gRPC definitions are in tests/fixtures/consul-defs-grpc and tested by
test_consul_definitions_grpc.py.
"""
import glob
import json
import os
import re
import shutil
import sys
import tempfile
import unittest
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import hrtest
import targets

sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
import emuctl  # noqa: E402

FIXTURES = os.path.join(hrtest.SOURCE_DIR, "tests", "fixtures", "consul-defs")
EXEC = {"agent": {"enable_exec_checks": True}}
CONSUL = {"registry": {"consul": {}}}

# fixture: (sections added, [(check name, kind)], warnings: substrings)
EXPECTED = {
    "issue-web-http.json": (
        {}, [("service:web", "http")], []),
    "http-post.json": (
        {}, [("HTTP API on port 5000", "http")], []),
    "tcp-ssh.json": (
        {}, [("SSH TCP on port 22", "tcp")], []),
    "ttl-web-app.json": (
        {}, [("Web App Status", "ttl")], []),
    "multiple-checks.json": (
        EXEC, [("mem", "args"), ("/health", "http"), ("cpu", "args")], []),
    "initial-status.json": (
        EXEC, [("mem", "args")], []),
    "redis-hcl-form.json": (
        EXEC, [("service:redis", "args")],
        ["service[0].tagged_addresses: valid in Consul but not used",
         "service[0].checks[0].timeout: \"20s\" is longer than the interval"]),
    "services-one.json": (
        CONSUL, [("service:red0:1", "tcp"), ("service:red0:2", "http")],
        ["services[0].enable_tag_override: valid in Consul but not used",
         "services[0].checks[1].deregister_critical_service_after: used for "
         "the service's one Consul check"]),
    "api-register-payload.json": (
        dict(EXEC, **CONSUL), [("service:redis1", "args")],
        ["service.EnableTagOverride: valid in Consul but not used",
         "service.Weights: valid in Consul but not used",
         "service.Check.DeregisterCriticalServiceAfter: used for the "
         "service's one Consul check"]),
    "api-camelcase-checks.json": (
        EXEC, [("HTTP API", "http"), ("service:web-1:2", "tcp"),
               ("web-heartbeat", "ttl"), ("service:web-1:4", "args")],
        ["service.Connect: valid in Consul but not used",
         "service.TaggedAddresses: valid in Consul but not used",
         "service.Checks[0].DeregisterCriticalServiceAfter: valid in Consul, "
         "used only with registry.consul",
         "service.Checks[1].ServiceID: valid in Consul but not used",
         "service.Checks[3].OutputMaxSize: valid in Consul but not used"]),
}

# What the loopback server must have received from each HTTP check.
HTTP_SENT = {
    "HTTP API on port 5000": ["HTTP POST ", "Output: POST /echo/health\n",
                              "Content-Type: application/json\n",
                              '{"method":"health"}'],
    "HTTP API": ["HTTP PUT ", "Output: PUT /echo/ready\n",
                 "X-Probe: healthreg\n", "X-Probe: consul\n",
                 "Accept: application/json\n", '{"probe":true}'],
    "service:web": ["HTTP GET ", "Output: GET /echo/health\n"],
    "/health": ["HTTP GET ", "Output: GET /echo/health\n"],
    "service:red0:2": ["HTTP GET ", "Output: GET /echo/ready\n"],
}

TRUE = shutil.which("true") or "/bin/true"


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


def with_sections(doc, sections):
    doc = dict(doc)
    doc.update(json.loads(json.dumps(sections)))
    return doc


def point_at(obj, base, tcp):
    """Only the targets changed: http(s) URLs to base + /echo + their path,
    tcp addresses to tcp, scripts to true. Keys matched as Consul does."""
    if isinstance(obj, list):
        for v in obj:
            point_at(v, base, tcp)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            key = k.replace("_", "").lower()
            if key == "http" and isinstance(v, str):
                obj[k] = base + "/echo" + urlsplit(v).path
            elif key == "tcp" and isinstance(v, str):
                obj[k] = tcp
            elif key in ("args", "scriptargs") and isinstance(v, list):
                obj[k] = [TRUE]
            else:
                point_at(v, base, tcp)


class TestConsulDefinitions(unittest.TestCase):
    def validate(self, doc):
        path = hrtest.write_config(doc)
        self.addCleanup(os.unlink, path)
        return hrtest.run(["validate", "-c", path])

    def test_every_fixture_is_asserted(self):
        files = sorted(os.path.basename(p) for p in
                       glob.glob(os.path.join(FIXTURES, "*.json")))
        self.assertEqual(files, sorted(EXPECTED))

    def test_validate_each(self):
        """Valid as written; one warning for each field not used."""
        for name, (sections, checks, warnings) in sorted(EXPECTED.items()):
            with self.subTest(fixture=name):
                p = self.validate(with_sections(fixture(name), sections))
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn("valid (%d check%s, 0 groups)" % (
                    len(checks), "" if len(checks) == 1 else "s"), p.stdout)
                for w in warnings:
                    self.assertIn(w, p.stderr)
                self.assertEqual(p.stderr.count("warning:"), len(warnings),
                                 p.stderr)
                self.assertNotIn("error:", p.stderr)

    def test_check_runs_each(self):
        """healthreg check runs every check of each definition, named as
        Consul names it; HTTP checks send the method, headers and body."""
        target = targets.Target()
        self.addCleanup(target.stop)
        tcp = "127.0.0.1:%d" % target.port
        for name, (sections, checks, _) in sorted(EXPECTED.items()):
            with self.subTest(fixture=name):
                doc = with_sections(fixture(name), sections)
                point_at(doc["service" if "service" in doc else "services"],
                         target.url, tcp)
                rc, out, err = hrtest.check_json(doc)
                self.assertIsNotNone(out, err)
                got = [(c["name"], c["kind"]) for c in out["checks"]]
                self.assertEqual(got, checks, err)
                for c in out["checks"]:
                    if c["kind"] == "ttl":
                        continue  # nothing pushed in check mode
                    self.assertEqual(c["status"], "passing", c)
                    for sent in HTTP_SENT.get(c["name"], []):
                        self.assertIn(sent, c["output"])
                if all(k != "ttl" for _, k in checks):
                    self.assertEqual(rc, 0, err)
                    self.assertEqual(out["status"], "passing")

    def test_http_checks_are_all_looked_at(self):
        http = {n for f in EXPECTED.values() for n, k in f[1] if k == "http"}
        self.assertEqual(http, set(HTTP_SENT))

    def test_script_checks_need_exec_enabled(self):
        """Like Consul's enable_local_script_checks, healthreg's
        agent.enable_exec_checks must allow script checks: each args is
        named."""
        p = self.validate(fixture("multiple-checks.json"))
        self.assertEqual(p.returncode, 78, p.stderr)
        for i in (0, 2):
            self.assertIn("service.checks[%d].args: exec checks are disabled; "
                          "set agent.enable_exec_checks to true" % i, p.stderr)
        self.assertIn("2 errors, nothing started", p.stderr)


def http(method, url):
    req = urllib.request.Request(url, data=b"" if method == "PUT" else None,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class TestAgentRunsADefinition(unittest.TestCase):
    def test_unnamed_checks_under_consuls_names(self):
        """healthreg run with the issue's definition plus a ttl check,
        neither named: /v1/health lists service:web:1 and service:web:2,
        and the app pushes the ttl check under its name."""
        target = targets.Target()
        self.addCleanup(target.stop)
        tmp = tempfile.mkdtemp(prefix="hr-defs-")
        self.addCleanup(shutil.rmtree, tmp, True)
        doc = fixture("issue-web-http.json")
        point_at(doc["service"], target.url, None)
        doc["service"]["checks"] = [{"TTL": "30s"}]
        doc["agent"] = {"api_listen": "127.0.0.1:0",
                        "state_file": os.path.join(tmp, "state")}
        agent = hrtest.Agent(doc)
        self.addCleanup(agent.close)
        self.assertTrue(agent.wait_log("event=api_listening"), agent.log())
        port = re.search(r"event=api_listening addr=\S+ port=(\d+)",
                         agent.log()).group(1)
        base = "http://127.0.0.1:%s" % port
        code, body = http("PUT", base + "/v1/checks/service:web:2/pass")
        self.assertEqual(code, 200, body)
        self.assertTrue(hrtest.wait_for(
            lambda: http("GET", base + "/v1/health")[0] == 200, 10),
            http("GET", base + "/v1/health"))
        checks = json.loads(http("GET", base + "/v1/health")[1])["checks"]
        self.assertEqual([(c["name"], c["kind"], c["status"]) for c in checks],
                         [("service:web:1", "http", "passing"),
                          ("service:web:2", "ttl", "passing")])


class TestConsulSeesTheDefinition(unittest.TestCase):
    def test_check_deregister_critical_service_after_reaps(self):
        """Consul's sample registration payload, its check's
        DeregisterCriticalServiceAfter shortened to 1s, registry.consul
        without one: a SIGKILLed healthreg's service is reaped after 1s
        (the default would be 1m)."""
        emu = emuctl.start(reap_min_ms=500, reap_tick_ms=100)
        self.addCleanup(emu.cleanup)
        doc = fixture("api-register-payload.json")
        check = doc["service"]["Check"]
        check.update({"Args": [TRUE], "Interval": "200ms",
                      "DeregisterCriticalServiceAfter": "1s"})
        doc["agent"] = {"enable_exec_checks": True, "api_listen": "off"}
        doc["registry"] = {"consul": {"address": emu.url, "check_ttl": "2s"}}
        agent = hrtest.Agent(doc, env={"CONSUL_HTTP_ADDR": "",
                                       "CONSUL_HTTP_TOKEN": "",
                                       "CONSUL_HTTP_TOKEN_FILE": ""})
        self.addCleanup(agent.close)

        def services():
            code, _, body = emuctl.request(emu, "GET", "/v1/agent/services",
                                           timeout=5)
            self.assertEqual(code, 200, body)
            return json.loads(body)

        def passing():
            code, _, body = emuctl.request(
                emu, "GET", "/v1/health/service/redis?passing", timeout=5)
            return code == 200 and [e["Service"]["ID"]
                                    for e in json.loads(body)] == ["redis1"]

        self.assertTrue(hrtest.wait_for(passing, timeout=10), agent.log())
        agent.kill()
        # TTL (2 s) expires, then the check is critical for 1 s
        self.assertTrue(hrtest.wait_for(lambda: "redis1" not in services(),
                                        timeout=12), emu.log_text())


if __name__ == "__main__":
    unittest.main()
