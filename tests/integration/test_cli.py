"""healthreg validate / check / run from the command line: exit codes,
error reporting, and the aggregate for configs mixing priorities and
groups (issue: core, acceptance)."""
import glob
import os
import signal
import sys
import tempfile
import time
import unittest

import hrtest
import targets

FIXTURES = os.path.join(hrtest.SOURCE_DIR, "tests", "fixtures")


class TestValidate(unittest.TestCase):
    def test_bad_config_corpus(self):
        """Every bad config exits 78 and names the path of every error."""
        files = sorted(glob.glob(os.path.join(FIXTURES, "bad-configs", "*.json")))
        self.assertGreaterEqual(len(files), 15)
        for path in files:
            with self.subTest(config=os.path.basename(path)):
                p = hrtest.run(["validate", "-c", path])
                self.assertEqual(p.returncode, 78, p.stderr)
                self.assertIn("nothing started", p.stderr)
                with open(path[:-5] + ".expect") as f:
                    for line in f.read().splitlines():
                        if line:
                            self.assertIn(line, p.stderr)

    def test_all_errors_counted(self):
        path = os.path.join(FIXTURES, "bad-configs", "many-errors.json")
        p = hrtest.run(["validate", "-c", path])
        self.assertIn("9 errors, nothing started", p.stderr)

    def test_consul_definition_accepted(self):
        """A Consul service definition (CamelCase keys, unused Consul keys)
        validates; the unused keys get one warning each."""
        cfg = {"service": {
            "Name": "web", "ID": "web-1", "Port": 8080, "Tags": ["v1"],
            "EnableTagOverride": False,
            "Checks": [
                {"CheckID": "api", "Name": "API", "HTTP": "http://127.0.0.1:1/h",
                 "Method": "post", "Header": {"X-A": ["1", "2"]},
                 "TLSSkipVerify": True, "Interval": "10s", "Timeout": "1s",
                 "DeregisterCriticalServiceAfter": "90m", "Notes": "n"},
                {"id": "db", "tcp": "127.0.0.1:5432", "interval": "5s",
                 "failures_before_critical": 3},
            ]}}
        path = hrtest.write_config(cfg)
        self.addCleanup(os.unlink, path)
        p = hrtest.run(["validate", "-c", path])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("valid (2 checks, 0 groups)", p.stdout)
        self.assertIn("service.EnableTagOverride: valid in Consul but not used", p.stderr)
        self.assertIn("service.Checks[0].DeregisterCriticalServiceAfter: valid in Consul",
                      p.stderr)
        self.assertEqual(p.stderr.count("warning:"), 2, p.stderr)

    def test_documented_example_is_valid(self):
        path = os.path.join(hrtest.SOURCE_DIR, "docs", "examples", "healthreg.json")
        p = hrtest.run(["validate", "-c", path])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")

    def _validate_bytes(self, data):
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        self.addCleanup(os.unlink, path)
        # text=True: the messages must be valid UTF-8 themselves
        return hrtest.run(["validate", "-c", path])

    def test_string_and_file_limits(self):
        """A 10 MiB string value names its field; a file over 16 MiB is
        refused before it is parsed; 64 KiB is the most a string holds."""
        head = b'{"service": {"name": "web", "checks": [{"name": "a", ' \
               b'"http": "http://127.0.0.1/", "body": "'
        tail = b'"}]}}'
        p = self._validate_bytes(head + b"b" * (10 << 20) + tail)
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("service.checks[0].body: is 10485760 bytes long, more "
                      "than the limit of 65536", p.stderr)
        self.assertIn("1 error, nothing started", p.stderr)
        p = self._validate_bytes(head + b"b" * 65536 + tail)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self._validate_bytes(head + b"b" * 65537 + tail)
        self.assertEqual(p.returncode, 78, p.stderr)
        p = self._validate_bytes(head + b"b" + tail + b" " * (17 << 20))
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("the file is larger than 16777216 bytes (16 MiB)", p.stderr)

    def test_invalid_utf8_anywhere(self):
        """Invalid UTF-8 in any string of any section exits 78 naming the
        field; the messages stay valid UTF-8."""
        cases = [
            (b'"service": {"name": "w\xffb", "checks": [%s]}', "service.name"),
            (b'"service": {"name": "web", "tags": ["\xed\xa0\x80"], "checks": [%s]}',
             "service.tags[0]"),
            (b'"service": {"name": "web", "checks": [%s]}, "registry": '
             b'{"etcd": {"prefix": "/\xc0\xaf"}}', "registry.etcd.prefix"),
            (b'"service": {"name": "web", "checks": [%s]}, "registry": '
             b'{"consul": {"token_file": "\xf5x"}}', "registry.consul.token_file"),
            (b'"service": {"name": "web", "checks": [%s]}, "agent": '
             b'{"state_file": "/tmp/\xe2\x82"}', "agent.state_file"),
        ]
        check = b'{"name": "a", "tcp": "127.0.0.1:80"}'
        for body, field in cases:
            with self.subTest(field=field):
                p = self._validate_bytes(b"{" + body % check + b"}")
                self.assertEqual(p.returncode, 78, p.stderr)
                self.assertIn(field + ": is not valid UTF-8", p.stderr)

    def test_missing_file(self):
        p = hrtest.run(["validate", "-c", "/nonexistent/healthreg.json"])
        self.assertEqual(p.returncode, 78)
        self.assertIn("No such file", p.stderr)


class TestUsage(unittest.TestCase):
    def test_usage_errors_exit_64(self):
        for args in ([], ["frobnicate"], ["check"], ["check", "-c"],
                     ["run", "-c", "x", "--bogus"], ["validate", "-c", "x", "extra"],
                     ["run", "-c", "x", "--json"]):
            with self.subTest(args=args):
                p = hrtest.run(args)
                self.assertEqual(p.returncode, 64, p.stderr)
                self.assertTrue(p.stderr.strip())

    def test_help_and_version(self):
        p = hrtest.run(["--help"])
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: healthreg", p.stdout)
        p = hrtest.run(["--version"])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^healthreg \d+\.\d+\.\d+")


class TestCheckExitCodes(unittest.TestCase):
    """healthreg check: 0 passing, 1 warning, 2 critical, for configs
    mixing on_failure priorities and quorum groups."""

    @classmethod
    def setUpClass(cls):
        cls.t = targets.Target()
        cls.closed = targets.free_port()

    @classmethod
    def tearDownClass(cls):
        cls.t.stop()

    def url(self, path):
        return self.t.url + path

    def cfg(self, checks, groups=None):
        c = {"service": {"name": "web", "checks": checks}}
        if groups:
            c["groups"] = groups
        return c

    def test_matrix(self):
        ok = lambda n, **kw: dict(name=n, http=self.url("/status/200"), **kw)
        bad = lambda n, **kw: dict(name=n, http=self.url("/status/503"), **kw)
        slow = lambda n, **kw: dict(name=n, http=self.url("/status/429"), **kw)
        cases = [
            ("all passing", [ok("a"), ok("b")], None, 0, "passing"),
            ("one critical", [ok("a"), bad("b")], None, 2, "critical"),
            ("critical but on_failure warning", [ok("a"), bad("b", on_failure="warning")],
             None, 1, "warning"),
            ("critical but ignored", [ok("a"), bad("b", on_failure="ignore")], None, 0, "passing"),
            ("429 is warning", [ok("a"), slow("b")], None, 1, "warning"),
            ("429 ignored", [ok("a"), slow("b", on_failure="ignore")], None, 0, "passing"),
            ("quorum met", [ok("a"), ok("d1", group="db"), bad("d2", group="db")],
             {"db": {"min_passing": 1}}, 0, "passing"),
            ("quorum lost, group critical", [ok("a"), bad("d1", group="db"), bad("d2", group="db")],
             {"db": {"min_passing": 1}}, 2, "critical"),
            ("quorum lost, group warning", [ok("a"), bad("d1", group="db"), ok("d2", group="db")],
             {"db": {"min_passing": 2, "on_failure": "warning"}}, 1, "warning"),
            ("quorum met only with warnings", [ok("d1", group="db"), slow("d2", group="db")],
             {"db": {"min_passing": 2}}, 1, "warning"),
            ("warning group and critical check", [bad("x"), bad("d1", group="db")],
             {"db": {"min_passing": 1, "on_failure": "warning"}}, 2, "critical"),
        ]
        for name, checks, groups, code, status in cases:
            with self.subTest(case=name):
                rc, doc, err = hrtest.check_json(self.cfg(checks, groups))
                self.assertEqual(rc, code, (doc, err))
                self.assertEqual(doc["status"], status)

    def test_summary_names_failing_checks(self):
        rc, doc, _ = hrtest.check_json(self.cfg([
            dict(name="web", http=self.url("/status/200")),
            dict(name="api", tcp="127.0.0.1:%d" % self.t.port),
            dict(name="db", tcp="127.0.0.1:%d" % self.closed)]))
        self.assertEqual(rc, 2)
        self.assertEqual(doc["output"], "2 passing, 1 critical: db")

    def test_table_output(self):
        path = hrtest.write_config(self.cfg([dict(name="web", http=self.url("/status/200"))]))
        self.addCleanup(os.unlink, path)
        p = hrtest.run(["check", "-c", path])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"NAME\s+KIND\s+STATUS\s+GROUP\s+ON_FAILURE\s+DURATION\s+OUTPUT")
        self.assertRegex(p.stdout, r"web\s+http\s+passing")
        self.assertIn("aggregate: passing (1 passing)", p.stdout)


class TestRun(unittest.TestCase):
    def test_logs_state_changes_not_probes_and_stops_on_sigterm(self):
        t = targets.Target()
        self.addCleanup(t.stop)
        toggle = os.path.join(t.dir, "fail")
        t2 = targets.Target(toggle_file=toggle)
        self.addCleanup(t2.stop)
        a = hrtest.Agent({"service": {"name": "web", "checks": [
            {"name": "steady", "http": t.url + "/status/200", "interval": "100ms"},
            {"name": "flappy", "http": t2.url + "/toggle", "interval": "100ms"}]}})
        self.addCleanup(a.close)
        self.assertTrue(a.wait_log("event=ready"), a.log())
        time.sleep(1.0)  # about ten probes of each check
        open(toggle, "w").close()
        self.assertTrue(a.wait_log("check=flappy from=passing to=critical"), a.log())
        os.unlink(toggle)
        self.assertTrue(hrtest.wait_for(
            lambda: a.log().count("event=aggregate_status") >= 3), a.log())
        self.assertEqual(a.stop(), 0)
        log = a.log()
        # steady: one change (unknown -> passing); flappy: three.
        self.assertEqual(log.count("check=steady"), 1, log)
        self.assertEqual(log.count("event=check_status check=flappy"), 3, log)
        self.assertIn("event=shutdown signal=SIGTERM", log)
        self.assertIn("event=stopped", log)

    def test_json_log_format(self):
        t = targets.Target()
        self.addCleanup(t.stop)
        a = hrtest.Agent({"service": {"name": "web", "checks": [
            {"name": "w", "http": t.url + "/status/200", "interval": "1s"}]},
            "agent": {"log_format": "json"}})
        self.addCleanup(a.close)
        self.assertTrue(a.wait_log('"event":"ready"'), a.log())
        self.assertEqual(a.stop(), 0)
        import json
        for line in a.log().splitlines():
            json.loads(line)

    def test_config_error_starts_nothing(self):
        a = hrtest.Agent({"service": {"name": "web", "checks": [
            {"name": "w", "http": "http://127.0.0.1:1/", "interval": "nope"}]}})
        self.addCleanup(a.close)
        self.assertEqual(a.proc.wait(10), 78)
        self.assertIn("service.checks[0].interval", a.log())


if __name__ == "__main__":
    unittest.main()
