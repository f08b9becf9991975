"""Operating healthreg: the local HTTP API, /metrics, maintenance (and its
state file), reload (make-before-break, with a real etcd watching),
shutdown, sd_notify, and the status/maint/reload commands (issue:
operations)."""
import json
import os
import re
import shutil
import signal
import socket
import stat
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import etcd_harness
import hrtest
import targets


def http(method, url, body=None, token=None, timeout=10):
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def api_port(agent, timeout=10):
    assert agent.wait_log("event=api_listening", timeout), agent.log()
    return int(re.search(r"event=api_listening addr=\S+ port=(\d+)",
                         agent.log()).group(1))


def parse_prometheus(text):
    """A small parser of the text exposition format 0.0.4: returns
    {(name, frozenset(labels)): value}; raises on any malformed line."""
    out = {}
    types = {}
    line_re = re.compile(
        r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? '
        r'([-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|Inf|NaN))$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = typ
            continue
        assert not line.startswith("#"), line
        m = line_re.match(line)
        assert m, "bad sample line: %r" % line
        name = m.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, "no TYPE for %s" % name
        labels = frozenset(label_re.findall(m.group(3) or ""))
        assert (name, labels) not in out, "duplicate sample %s" % line
        out[(name, labels)] = float(m.group(4).replace("Inf", "inf"))
    return out


def sample(metrics, name, **labels):
    """One sample; without a service= label, the one service's (every
    series of a service carries service="<id>")."""
    key = (name, frozenset(labels.items()))
    if key in metrics or "service" in labels:
        return metrics[key]
    found = [v for (n, ls), v in metrics.items() if n == name and
             frozenset(kv for kv in ls if kv[0] != "service") == key[1]]
    if len(found) != 1:
        raise KeyError(key)
    return found[0]


class ApiAgent:
    """An agent with the API on a free port, a TTL check 'hb' and an HTTP
    check against a target."""

    def __init__(self, test, extra_checks=(), agent=None, registry=None,
                 state_file=None):
        self.dir = tempfile.mkdtemp(prefix="hr-ops-")
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.target = targets.Target()
        test.addCleanup(self.target.stop)
        self.state_file = state_file or os.path.join(self.dir, "state.json")
        conf = {"api_listen": "127.0.0.1:0", "state_file": self.state_file}
        conf.update(agent or {})
        self.config = {"service": {"name": "web", "id": "web-1",
                                   "address": "127.0.0.1", "port": 8080,
                                   "checks": [
            {"name": "hb", "ttl": "30s"},
            {"name": "api", "http": self.target.url + "/status/200",
             "interval": "200ms"}] + list(extra_checks)},
            "agent": conf}
        if registry:
            self.config["registry"] = registry
        self.start(test)

    def start(self, test):
        self.agent = hrtest.Agent(self.config)
        test.addCleanup(self.agent.close)
        self.port = api_port(self.agent)
        self.url = "http://127.0.0.1:%d" % self.port

    def restart(self, test):
        self.agent.stop()
        self.start(test)


class TestApi(unittest.TestCase):
    def test_health_codes_follow_the_ttl_check(self):
        a = ApiAgent(self)
        code, body, hdrs = http("GET", a.url + "/v1/health")
        self.assertEqual(code, 503, body)  # hb has no heartbeat yet
        doc = json.loads(body)
        self.assertEqual(doc["service"], "web")
        self.assertEqual(doc["status"], "critical")
        self.assertEqual(hdrs["Content-Type"], "application/json")
        names = [c["name"] for c in doc["checks"]]
        self.assertEqual(names, ["hb", "api"])
        for c in doc["checks"]:
            for k in ("name", "kind", "status", "output", "last_run",
                      "duration_ms", "consecutive_failures"):
                self.assertIn(k, c)
        for verb, code_want, word in (("pass", 200, "passing"), ("warn", 429, "warning"),
                                      ("fail", 503, "critical")):
            with self.subTest(verb=verb):
                c, b, _ = http("PUT", a.url + "/v1/checks/hb/%s?note=from%%20app" % verb)
                self.assertEqual(c, 200, b)
                self.assertEqual(json.loads(b)["output"], "from app")
                self.assertTrue(hrtest.wait_for(
                    lambda: http("GET", a.url + "/v1/health")[0] == code_want), verb)
                c, b, _ = http("GET", a.url + "/v1/health?format=text")
                self.assertEqual((c, b), (code_want, word + "\n"))

    def test_put_json_and_errors(self):
        a = ApiAgent(self)
        c, b, _ = http("PUT", a.url + "/v1/checks/hb",
                       json.dumps({"status": "passing", "output": "ok"}).encode())
        self.assertEqual(c, 200, b)
        self.assertEqual(json.loads(b)["status"], "passing")
        c, b, _ = http("GET", a.url + "/v1/checks/hb")
        self.assertEqual((c, json.loads(b)["output"]), (200, "ok"))
        cases = [
            ("GET", "/v1/checks/nope", None, 404, "unknown check"),
            ("PUT", "/v1/checks/nope/pass", None, 404, "unknown check"),
            ("PUT", "/v1/checks/api/pass", None, 400, "only ttl checks"),
            ("PUT", "/v1/checks/hb", b"{not json", 400, "expected a JSON object"),
            ("PUT", "/v1/checks/hb", b'{"status":"fine"}', 400, "body.status"),
            ("PUT", "/v1/checks/hb", b'{"status":"passing","extra":1}', 400, "body.extra: unknown key"),
            ("PUT", "/v1/checks/hb", b'{"status":"passing","output":3}', 400, "body.output"),
            ("POST", "/v1/health", None, 405, "method not allowed"),
            ("DELETE", "/v1/checks/hb", None, 405, "method not allowed"),
            ("GET", "/v1/checks/hb/pass", None, 405, "method not allowed"),
            ("GET", "/nowhere", None, 404, "no such endpoint"),
            ("PUT", "/v1/maintenance?enable=maybe", None, 400, "enable"),
            ("GET", "/v1/health?format=xml", None, 400, "format"),
        ]
        for method, path, body, want, text in cases:
            with self.subTest(method=method, path=path):
                c, b, _ = http(method, a.url + path, body)
                self.assertEqual(c, want, b)
                self.assertIn(text, json.loads(b)["error"])
        c, b, h = http("POST", a.url + "/v1/health")
        self.assertEqual(h.get("Allow"), "GET")

    def test_body_limit(self):
        a = ApiAgent(self)
        big = json.dumps({"status": "passing", "output": "x" * (70 * 1024)}).encode()
        c, b, _ = http("PUT", a.url + "/v1/checks/hb", big)
        self.assertEqual(c, 413, b)
        # a large but allowed output is stored truncated to 4 KiB
        ok = json.dumps({"status": "passing", "output": "y" * 10000}).encode()
        c, b, _ = http("PUT", a.url + "/v1/checks/hb", ok)
        self.assertEqual(c, 200, b)
        self.assertTrue(json.loads(b)["output"].endswith("(captured 4096 of 10000 bytes)"))

    def test_token_required_for_writes_only(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        tf = os.path.join(d, "token")
        with open(tf, "w") as f:
            f.write("s3cret-token\n")
        os.chmod(tf, 0o600)
        a = ApiAgent(self, agent={"api_token_file": tf})
        self.assertEqual(http("GET", a.url + "/v1/health")[0], 503)
        self.assertEqual(http("GET", a.url + "/metrics")[0], 200)
        self.assertEqual(http("PUT", a.url + "/v1/checks/hb/pass")[0], 401)
        self.assertEqual(http("PUT", a.url + "/v1/checks/hb/pass", token="wrong")[0], 403)
        self.assertEqual(http("PUT", a.url + "/v1/maintenance?enable=true", token="s3cret-tokenX")[0], 403)
        self.assertEqual(http("PUT", a.url + "/v1/checks/hb/pass", token="s3cret-token")[0], 200)
        self.assertNotIn("s3cret", a.agent.log())

    def test_concurrent_requests_while_checks_run(self):
        extra = [{"name": "t%d" % i, "tcp": "127.0.0.1:%d" % targets.free_port(),
                  "interval": "100ms", "on_failure": "ignore"} for i in range(30)]
        a = ApiAgent(self, extra_checks=extra)
        http("PUT", a.url + "/v1/checks/hb/pass")
        errors = []

        def worker(n):
            try:
                for i in range(25):
                    if i % 5 == 0:
                        c, b, _ = http("PUT", a.url + "/v1/checks/hb/pass?note=w%d" % n)
                    elif i % 5 == 1:
                        c, b, _ = http("GET", a.url + "/metrics")
                        parse_prometheus(b)
                    else:
                        c, b, _ = http("GET", a.url + "/v1/health")
                        json.loads(b)
                    if c not in (200, 429, 503):
                        errors.append((c, b))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        runs = sum(c["runs"]["critical"] for c in json.loads(http("GET", a.url + "/v1/health")[1])["checks"])
        self.assertGreater(runs, 30, "checks kept running during the requests")

    def test_ttl_heartbeat_end_to_end(self):
        a = ApiAgent(self)
        cfg = a.config
        cfg["service"]["checks"][0]["ttl"] = "1s"
        a.restart(self)
        for _ in range(4):
            self.assertEqual(http("PUT", a.url + "/v1/checks/hb/pass?note=alive")[0], 200)
            time.sleep(0.3)
            self.assertEqual(http("GET", a.url + "/v1/health")[0], 200)
        self.assertTrue(hrtest.wait_for(lambda: http("GET", a.url + "/v1/health")[0] == 503, 5))
        c, b, _ = http("GET", a.url + "/v1/checks/hb")
        self.assertEqual(json.loads(b)["output"],
                         "TTL expired (last output before timeout follows): alive")


class TestMetrics(unittest.TestCase):
    def test_parses_and_moves(self):
        a = ApiAgent(self)
        http("PUT", a.url + "/v1/checks/hb/pass")
        c, text, h = http("GET", a.url + "/metrics")
        self.assertEqual(c, 200)
        self.assertIn("text/plain; version=0.0.4", h["Content-Type"])
        m1 = parse_prometheus(text)
        self.assertEqual(sample(m1, "healthreg_build_info", version=
                                re.search(r'version="([^"]+)"', text).group(1)), 1)
        self.assertEqual(sample(m1, "healthreg_checks"), 2)
        self.assertEqual(sample(m1, "healthreg_check_status", check="hb", kind="ttl",
                                status="passing"), 1)
        runs1 = sample(m1, "healthreg_check_runs_total", check="api", result="passing")
        count1 = sample(m1, "healthreg_check_duration_seconds_count", check="api")
        time.sleep(1.0)
        m2 = parse_prometheus(http("GET", a.url + "/metrics")[1])
        runs2 = sample(m2, "healthreg_check_runs_total", check="api", result="passing")
        self.assertGreater(runs2, runs1)
        self.assertGreater(sample(m2, "healthreg_check_duration_seconds_count", check="api"),
                           count1)
        inf = sample(m2, "healthreg_check_duration_seconds_bucket", check="api", le="+Inf")
        self.assertEqual(inf, sample(m2, "healthreg_check_duration_seconds_count", check="api"))
        self.assertGreater(sample(m2, "healthreg_check_last_run_timestamp_seconds", check="api"),
                           time.time() - 60)
        self.assertEqual(sample(m2, "healthreg_status", status="passing"), 1)
        self.assertEqual(sample(m2, "healthreg_maintenance"), 0)


class TestMaintenance(unittest.TestCase):
    def test_survives_restart_and_cli(self):
        a = ApiAgent(self)
        http("PUT", a.url + "/v1/checks/hb/pass")
        cfgpath = a.agent.config_path
        p = hrtest.run(["maint", "enable", "--reason", "kernel upgrade",
                        "--api", "127.0.0.1:%d" % a.port])
        self.assertEqual(p.returncode, 0, p.stderr)
        c, b, _ = http("GET", a.url + "/v1/health")
        self.assertEqual(c, 503)
        doc = json.loads(b)
        self.assertEqual(doc["output"], "maintenance: kernel upgrade")
        self.assertEqual(doc["maintenance"], {"enabled": True, "reason": "kernel upgrade"})
        with open(a.state_file) as f:
            self.assertTrue(json.load(f)["maintenance"]["enabled"])
        a.restart(self)
        http("PUT", a.url + "/v1/checks/hb/pass")
        c, b, _ = http("GET", a.url + "/v1/health")
        self.assertEqual(c, 503, "maintenance survived the restart")
        self.assertIn("maintenance_restored", a.agent.log())
        p = hrtest.run(["status", "--api", "127.0.0.1:%d" % a.port])
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("maintenance: on (kernel upgrade)", p.stdout)
        p = hrtest.run(["maint", "disable", "--api", "127.0.0.1:%d" % a.port])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(hrtest.wait_for(lambda: http("GET", a.url + "/v1/health")[0] == 200))
        del cfgpath

    def test_cli_unreachable_and_usage(self):
        p = hrtest.run(["status", "--api", "127.0.0.1:%d" % targets.free_port()])
        self.assertEqual(p.returncode, 69, p.stderr)
        # without --reason: the default reason, so it asks the agent
        p = hrtest.run(["maint", "enable", "--api", "%d" % targets.free_port()])
        self.assertEqual(p.returncode, 69, p.stderr)
        p = hrtest.run(["maint", "sideways"])
        self.assertEqual(p.returncode, 64)


@unittest.skipUnless(shutil.which(etcd_harness.ETCD), "etcd not installed")
class TestWithEtcd(unittest.TestCase):
    def setUp(self):
        self.etcd = etcd_harness.EtcdCluster(members=1)
        self.addCleanup(self.etcd.close)
        self.watch = self.etcd.watch("services/")
        self.addCleanup(self.watch.stop)

    def registry(self):
        # A long lease: a loaded machine must not turn a late keepalive
        # into a DELETE that these tests would blame on reload.
        return {"etcd": {"endpoints": self.etcd.endpoints, "lease_ttl": "10s"}}

    def events(self):
        return [(e.type, e.key) for e in self.watch.snapshot()]

    def test_maintenance_removes_the_key(self):
        a = ApiAgent(self, registry=self.registry())
        http("PUT", a.url + "/v1/checks/hb/pass")
        self.assertTrue(self.watch.wait_for(lambda e: e.type == "PUT", 10))
        http("PUT", a.url + "/v1/maintenance?enable=true&reason=drain")
        self.assertTrue(self.watch.wait_for(lambda e: e.type == "DELETE", 10), self.events())
        n = len(self.watch.snapshot())
        http("PUT", a.url + "/v1/maintenance?enable=false")
        self.assertTrue(self.watch.wait_for(lambda e: e.type == "PUT", 10, start=n),
                        self.events())

    def test_reload_never_deregisters(self):
        a = ApiAgent(self, registry=self.registry())
        http("PUT", a.url + "/v1/checks/hb/pass")
        self.assertTrue(self.watch.wait_for(lambda e: e.type == "PUT", 10))
        start = len(self.watch.snapshot())
        checks = a.config["service"]["checks"]
        slow = targets.Target()
        self.addCleanup(slow.stop)
        for round_ in range(3):
            # add a slow check (its first result takes 300 ms), change the
            # api check's interval, then remove the added check again
            checks.append({"name": "slow%d" % round_, "http": slow.url + "/slow/300",
                           "interval": "1s", "timeout": "900ms"})
            checks[1]["interval"] = "%dms" % (150 + 50 * round_)
            with open(a.agent.config_path, "w") as f:
                json.dump(a.config, f)
            a.agent.proc.send_signal(signal.SIGHUP)
            self.assertTrue(hrtest.wait_for(lambda: a.agent.log().count("event=reloaded") >= 2 * round_ + 1))
            time.sleep(0.6)
            checks.pop()
            with open(a.agent.config_path, "w") as f:
                json.dump(a.config, f)
            c, b, _ = http("PUT", a.url + "/v1/reload")
            self.assertEqual(c, 200, b)
            time.sleep(0.3)
        log = a.agent.log()
        self.assertIn("kept=1 added=1 changed=1 removed=0", log)
        self.assertIn("kept=2 added=0 changed=0 removed=1", log)
        self.assertNotIn("DELETE", [t for t, _ in self.events()[start:]],
                         "the registry saw a deregistration during reloads:\n" + a.agent.log())
        # an invalid config changes nothing
        with open(a.agent.config_path, "w") as f:
            f.write('{"service": {"name": "web", "checks": [{"name": "x", "interval": "5x"}]}}')
        c, b, _ = http("PUT", a.url + "/v1/reload")
        self.assertEqual(c, 400)
        self.assertIn("service.checks[0]", json.loads(b)["error"])
        p = hrtest.run(["reload", "--api", "127.0.0.1:%d" % a.port])
        self.assertEqual(p.returncode, 78, p.stderr)  # a config error
        self.assertIn("reload_failed", a.agent.log())
        c, b, _ = http("GET", a.url + "/v1/health")
        self.assertEqual([x["name"] for x in json.loads(b)["checks"]], ["hb", "api"])
        self.assertEqual(c, 200)
        self.assertNotIn("DELETE", [t for t, _ in self.events()[start:]])

    def test_shutdown_deregisters_within_timeout(self):
        a = ApiAgent(self, registry=self.registry(), agent={"shutdown_timeout": "2s"})
        http("PUT", a.url + "/v1/checks/hb/pass")
        self.assertTrue(self.watch.wait_for(lambda e: e.type == "PUT", 10))
        t0 = time.time()
        self.assertEqual(a.agent.stop(), 0)
        elapsed = time.time() - t0
        self.assertTrue(self.watch.wait_for(lambda e: e.type == "DELETE", 5))
        self.assertLess(elapsed, 2.5, "exit is bounded by shutdown_timeout")


class TestSdNotify(unittest.TestCase):
    def test_ready_reloading_watchdog_stopping(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "notify.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        s.settimeout(0.2)
        self.addCleanup(s.close)
        t = targets.Target()
        self.addCleanup(t.stop)
        a = hrtest.Agent({"service": {"name": "web", "checks": [
            {"name": "api", "http": t.url + "/status/200", "interval": "200ms"}]},
            "agent": {"api_listen": "off"}},
            env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        self.addCleanup(a.close)
        msgs = []

        def collect(until, timeout=10):
            deadline = time.time() + timeout
            while time.time() < deadline:
                try:
                    msgs.append(s.recv(4096).decode())
                except socket.timeout:
                    pass
                if until():
                    return True
            return False
        self.assertTrue(collect(lambda: any(m.startswith("READY=1") for m in msgs)), msgs)
        self.assertTrue(collect(lambda: msgs.count("WATCHDOG=1") >= 3), msgs)
        a.proc.send_signal(signal.SIGHUP)
        self.assertTrue(collect(lambda: "RELOADING=1" in msgs), msgs)
        i = msgs.index("RELOADING=1")
        self.assertTrue(collect(lambda: "READY=1" in msgs[i:]), msgs)
        a.proc.send_signal(signal.SIGTERM)
        self.assertTrue(collect(lambda: "STOPPING=1" in msgs), msgs)
        self.assertEqual(a.proc.wait(10), 0)


if __name__ == "__main__":
    unittest.main()


class TestWithConsul(unittest.TestCase):
    """Maintenance through the API reaches Consul's maintenance mode and
    survives a restart of healthreg (issue: operations, with the Consul
    emulator)."""

    def test_maintenance_in_consul(self):
        import sys
        sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
        import emuctl
        emu = emuctl.start()
        self.addCleanup(emu.cleanup)
        reg = {"consul": {"address": emu.url, "check_ttl": "3s"}}
        a = ApiAgent(self, registry=reg)
        http("PUT", a.url + "/v1/checks/hb/pass")

        def passing():
            code, _, body = emuctl.request(emu, "GET", "/v1/health/service/web?passing", timeout=5)
            return [e["Service"]["ID"] for e in json.loads(body)] if code == 200 else None
        self.assertTrue(hrtest.wait_for(lambda: passing() == ["web-1"], 10), passing())
        http("PUT", a.url + "/v1/maintenance?enable=true&reason=deploy%20v2")

        def maint_check():
            code, _, body = emuctl.request(emu, "GET", "/v1/agent/checks", timeout=5)
            checks = json.loads(body) if code == 200 else {}
            return [c for c in checks.values() if c["CheckID"].startswith("_service_maintenance")]
        self.assertTrue(hrtest.wait_for(lambda: maint_check() and passing() == [], 10))
        self.assertEqual(maint_check()[0]["Notes"], "deploy v2")
        a.restart(self)
        http("PUT", a.url + "/v1/checks/hb/pass")
        time.sleep(1.0)
        self.assertTrue(maint_check(), "still in maintenance after a restart")
        self.assertEqual(passing(), [])
        http("PUT", a.url + "/v1/maintenance?enable=false")
        self.assertTrue(hrtest.wait_for(lambda: not maint_check() and passing() == ["web-1"], 10))


@unittest.skipUnless(shutil.which(etcd_harness.ETCD), "etcd not installed")
class TestBothRegistries(unittest.TestCase):
    """Consul and etcd at once, each failing and recovering on its own."""

    def test_one_down_the_other_keeps_working(self):
        import sys
        sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
        import emuctl
        etcd = etcd_harness.EtcdCluster(members=1)
        self.addCleanup(etcd.close)
        watch = etcd.watch("services/")
        self.addCleanup(watch.stop)
        emu = emuctl.start()
        self.addCleanup(emu.cleanup)
        port = emu.port
        reg = {"consul": {"address": emu.url, "check_ttl": "3s"},
               "etcd": {"endpoints": etcd.endpoints, "lease_ttl": "3s"}}
        a = ApiAgent(self, registry=reg)
        http("PUT", a.url + "/v1/checks/hb/pass")

        def consul_passing():
            try:
                code, _, body = emuctl.request(emu, "GET", "/v1/health/service/web?passing", timeout=2)
            except OSError:
                return None
            return [e["Service"]["ID"] for e in json.loads(body)] if code == 200 else None
        self.assertTrue(watch.wait_for(lambda e: e.type == "PUT", 10))
        self.assertTrue(hrtest.wait_for(lambda: consul_passing() == ["web-1"], 10))
        # Consul goes away: etcd still follows the status.
        emu.kill()
        n = len(watch.snapshot())
        http("PUT", a.url + "/v1/checks/hb/fail")
        self.assertTrue(watch.wait_for(lambda e: e.type == "DELETE", 10, start=n))
        n = len(watch.snapshot())
        http("PUT", a.url + "/v1/checks/hb/pass")
        self.assertTrue(watch.wait_for(lambda e: e.type == "PUT", 10, start=n))
        # Consul comes back (empty): healthreg registers again there.
        emu2 = emuctl.start(port=port)
        self.addCleanup(emu2.cleanup)
        emu = emu2
        self.assertTrue(hrtest.wait_for(lambda: consul_passing() == ["web-1"], 20),
                        a.agent.log()[-3000:])
        m = parse_prometheus(http("GET", a.url + "/metrics")[1])
        self.assertGreater(sample(m, "healthreg_registry_errors_total", backend="consul"), 0)
        self.assertGreater(sample(m, "healthreg_registry_writes_total", backend="etcd"), 0)
        self.assertLess(sample(m, "healthreg_registry_seconds_since_last_success", backend="etcd"), 60)
