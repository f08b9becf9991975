"""healthreg validate / check / run from the command line: exit codes,
error reporting, and the aggregate for configs mixing priorities and
groups (issue: core, acceptance)."""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

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
        """docs/examples/healthreg.json validates once the files it names
        exist (validate reads them, as run would: see TestValidateIsRun)."""
        path = os.path.join(hrtest.SOURCE_DIR, "docs", "examples", "healthreg.json")
        with open(path) as f:
            text = f.read()
        p = hrtest.run(["validate", "-c", path])
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("/etc/healthreg/api.token", p.stderr)
        d = tempfile.mkdtemp(prefix="hr-example-")
        self.addCleanup(shutil.rmtree, d, True)
        for name in ("api.token", "consul.token"):
            fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, b"0f1e2d3c-token\n")
            os.close(fd)
        local = os.path.join(d, "healthreg.json")
        with open(local, "w") as f:
            f.write(text.replace("/etc/healthreg/", d + "/"))
        p = hrtest.run(["validate", "-c", local])
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
        """One line that names the file once (it used to be printed twice,
        then a count of errors); the same for every command that reads a
        config."""
        missing = "/nonexistent/healthreg.json"
        for cmd in ("validate", "check", "run"):
            with self.subTest(cmd=cmd):
                p = hrtest.run([cmd, "-c", missing])
                self.assertEqual(p.returncode, 78)
                self.assertEqual(p.stderr, "healthreg: %s: No such file or directory\n"
                                 % missing)

    def test_directory(self):
        d = tempfile.mkdtemp(prefix="hr-dir-")
        self.addCleanup(os.rmdir, d)
        p = hrtest.run(["validate", "-c", d])
        self.assertEqual(p.returncode, 78)
        self.assertEqual(p.stderr, "healthreg: %s: is a directory, not a config file\n" % d)


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

COMMANDS = ["run", "check", "validate", "status", "why", "maint", "reload",
            "help", "version"]
# The options each command takes beyond the global ones.
OPTIONS = {
    "run": {"--config"},
    "check": {"--config", "--json"},
    "validate": {"--config"},
    "status": {"--api", "--config", "--token-file", "--json"},
    "why": {"--api", "--config", "--token-file", "--json"},
    "maint": {"--api", "--config", "--token-file", "--reason", "--service"},
    "reload": {"--api", "--config", "--token-file"},
    "help": set(),
    "version": set(),
}
GLOBAL = {"--log-level", "--log-format", "--help", "--version"}
ALL = set().union(*OPTIONS.values()) | GLOBAL
ARGS = {"--config": "x.json", "--api": "1", "--token-file": "t",
        "--reason": "r", "--service": "s", "--log-level": "info", "--log-format": "json"}


def help_options(text):
    """The long options an options: section of a help text lists."""
    return set(re.findall(r"^  (?:-\w, )?(--[a-z-]+)", text, re.M))


class TestHelp(unittest.TestCase):
    def test_help_lists_every_command(self):
        p = hrtest.run(["help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, hrtest.run(["--help"]).stdout)
        self.assertEqual(p.stdout, hrtest.run(["-h"]).stdout)
        commands, options = p.stdout.split("\nglobal options")
        self.assertEqual(re.findall(r"^  ([a-z]+)\b", commands, re.M), COMMANDS)
        self.assertEqual(help_options(options), GLOBAL)
        self.assertIn("78 config error", p.stdout)

    def test_each_command_has_its_own_help(self):
        """help CMD == CMD --help == CMD -h: the command's synopsis and
        exactly the options it takes, each of which it accepts."""
        for cmd in COMMANDS:
            with self.subTest(cmd=cmd):
                p = hrtest.run(["help", cmd])
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertTrue(p.stdout.startswith("usage: healthreg %s" % cmd),
                                p.stdout)
                if cmd not in ("help",):
                    for other in ([cmd, "--help"], [cmd, "-h"], ["--help", cmd]):
                        self.assertEqual(hrtest.run(other).stdout, p.stdout, other)
                body = p.stdout.split("\noptions:\n")
                self.assertEqual(help_options(body[1]) if len(body) > 1 else set(),
                                 OPTIONS[cmd])

    def test_options_a_command_does_not_take(self):
        """Every option another command takes is refused by name, with the
        command's help to look at."""
        for cmd in COMMANDS:
            for opt in sorted(ALL - OPTIONS[cmd] - GLOBAL):
                with self.subTest(cmd=cmd, opt=opt):
                    words = [cmd] + (["enable"] if cmd == "maint" else [])
                    args = words + [opt] + ([ARGS[opt]] if opt in ARGS else [])
                    p = hrtest.run(args)
                    self.assertEqual(p.returncode, 64, p.stderr)
                    self.assertIn("%s does not take '%s'" % (cmd, opt), p.stderr)
                    self.assertIn("healthreg help %s" % cmd, p.stderr)

    def test_help_of_an_unknown_command(self):
        p = hrtest.run(["help", "frobnicate"])
        self.assertEqual(p.returncode, 64)
        self.assertIn("unknown command 'frobnicate'", p.stderr)

    def test_version_names_the_libraries(self):
        p = hrtest.run(["version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        for other in (["--version"], ["-V"], ["check", "--version"]):
            self.assertEqual(hrtest.run(other).stdout, p.stdout, other)
        lines = p.stdout.splitlines()
        self.assertRegex(lines[0], r"^healthreg \d+\.\d+\.\d+$")
        for lib in (r"libcurl \d+\.\d+\.\d+ \(", r"libev \d+\.\d+$",
                    r"cJSON \d+\.\d+\.\d+$", r"libmicrohttpd \d+\.\d+\.\d+$"):
            self.assertTrue(any(re.match(lib, l) for l in lines), (lib, lines))
        self.assertRegex(p.stdout, r"registry backends: (consul|etcd)")


class TestGlobalOptions(unittest.TestCase):
    def setUp(self):
        self.t = targets.Target()
        self.addCleanup(self.t.stop)
        self.path = hrtest.write_config({"service": {"name": "web", "checks": [
            {"name": "w", "http": self.t.url + "/status/200"}]}})
        self.addCleanup(os.unlink, self.path)

    def test_before_or_after_the_command(self):
        """--log-level debug check -c x works as check -c x --log-level
        debug (it used to take --log-level for the missing command)."""
        for args in (["--log-level", "debug", "check", "-c", self.path],
                     ["check", "--log-level", "debug", "-c", self.path],
                     ["check", "-c", self.path, "--log-level", "debug"],
                     ["--log-level=debug", "--log-format", "json", "check",
                      "-c", self.path, "--json"]):
            with self.subTest(args=args):
                p = hrtest.run(args)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn("passing", p.stdout)
        # the option is read wherever it stands: a bad value is refused
        for args in (["--log-level", "loud", "check", "-c", self.path],
                     ["check", "-c", self.path, "--log-level", "loud"]):
            with self.subTest(args=args):
                p = hrtest.run(args)
                self.assertEqual(p.returncode, 64)
                self.assertIn("--log-level: 'loud'", p.stderr)

    def test_double_dash_ends_the_options(self):
        p = hrtest.run(["validate", "-c", self.path, "--", "extra"])
        self.assertEqual(p.returncode, 64)
        self.assertIn("unexpected argument 'extra'", p.stderr)


def api_port(agent, timeout=10):
    assert agent.wait_log("event=api_listening", timeout), agent.log()
    return int(re.search(r"event=api_listening addr=\S+ port=(\d+)",
                         agent.log()).group(1))


def http(method, url, token=None):
    req = urllib.request.Request(url, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class TestAgentCommands(unittest.TestCase):
    """status / maint / reload against a running agent."""

    def start(self, agent=None, token=None):
        self.dir = tempfile.mkdtemp(prefix="hr-cli-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.t = targets.Target()
        self.addCleanup(self.t.stop)
        conf = {"api_listen": "127.0.0.1:0",
                "state_file": os.path.join(self.dir, "web.state")}
        if token:
            tf = os.path.join(self.dir, "api.token")
            fd = os.open(tf, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, token.encode() + b"\n")
            os.close(fd)
            conf["api_token_file"] = tf
        conf.update(agent or {})
        self.config = {"service": {"name": "web", "checks": [
            {"name": "w", "http": self.t.url + "/status/200", "interval": "200ms"}]},
            "agent": conf}
        self.a = hrtest.Agent(self.config)
        self.addCleanup(self.a.close)
        self.port = api_port(self.a)
        self.url = "http://127.0.0.1:%d" % self.port
        self.assertTrue(self.a.wait_log("event=ready"), self.a.log())

    def test_api_forms(self):
        """host:port, :port, port and URLs (with or without the slash)
        reach the agent; a bad value says what is expected."""
        self.start()
        p = self.port
        for api in ("127.0.0.1:%d" % p, ":%d" % p, "%d" % p,
                    "http://127.0.0.1:%d" % p, "http://127.0.0.1:%d/" % p,
                    "localhost:%d" % p):
            with self.subTest(api=api):
                r = hrtest.run(["status", "--api", api])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("service web: passing", r.stdout)
        for api, why in (("http:/127.0.0.1:%d" % p, "a URL is written"),
                         (":", "no port"), ("127.0.0.1", "no port"),
                         ("http://127.0.0.1:%d/v1/health" % p, "has no path"),
                         ("https://127.0.0.1:%d" % p, "speaks plain HTTP")):
            with self.subTest(api=api):
                r = hrtest.run(["status", "--api", api])
                self.assertEqual(r.returncode, 64, r.stderr)
                self.assertIn("healthreg: --api \"%s\": " % api, r.stderr)
                self.assertIn(why, r.stderr)
                self.assertIn("expected host:port, :port, port or http://host:port",
                              r.stderr)

    def test_401_names_where_the_token_comes_from(self):
        self.start(token="s3cret-token")
        r = hrtest.run(["maint", "enable", "--api", str(self.port)],
                       env={"HEALTHREG_API_TOKEN": ""})
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn("the agent answered 401", r.stderr)
        self.assertIn("--token-file FILE", r.stderr)
        self.assertIn("$HEALTHREG_API_TOKEN", r.stderr)
        r = hrtest.run(["maint", "enable", "--api", str(self.port)],
                       env={"HEALTHREG_API_TOKEN": "wrong"})
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn("the token from $HEALTHREG_API_TOKEN is not the agent's",
                      r.stderr)
        r = hrtest.run(["maint", "enable", "--api", str(self.port)],
                       env={"HEALTHREG_API_TOKEN": "s3cret-token"})
        self.assertEqual(r.returncode, 0, r.stderr)
        # -c FILE: the address and the token from the agent's config
        r = hrtest.run(["maint", "disable", "-c", self.a.config_path],
                       env={"HEALTHREG_API_TOKEN": ""})
        self.assertEqual(r.returncode, 78, r.stderr)  # api_listen is port 0
        self.assertIn("agent.api_listen \"127.0.0.1:0\": the port is not 1-65535",
                      r.stderr)

    def test_maint_enable_without_reason(self):
        """As consul maint -enable: a default reason."""
        self.start()
        r = hrtest.run(["maint", "enable", "--api", str(self.port)])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "maintenance enabled\n")
        code, doc = http("GET", self.url + "/v1/maintenance")
        self.assertEqual(doc, {"enabled": True, "reason":
                               "Maintenance mode is enabled for this service, but no "
                               "reason was provided. This is a default message."})
        r = hrtest.run(["maint", "disable", "--reason", "x", "--api", str(self.port)])
        self.assertEqual(r.returncode, 64, r.stderr)
        r = hrtest.run(["maint", "disable", "--api", str(self.port)])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(http("GET", self.url + "/v1/maintenance")[1], {"enabled": False})

    def test_maint_fails_when_the_state_file_cannot_be_written(self):
        """A maintenance a restart would forget is refused, with nothing
        changed (it used to print "maintenance enabled" and exit 0)."""
        self.start(agent={"state_file": "/nonexistent-hr-dir/web.state"})
        r = hrtest.run(["maint", "enable", "--reason", "disk swap",
                        "--api", str(self.port)])
        self.assertEqual(r.returncode, 70, r.stderr)
        self.assertNotIn("maintenance enabled", r.stdout)
        self.assertIn("maintenance unchanged: the state file "
                      "/nonexistent-hr-dir/web.state cannot be written: "
                      "No such file or directory", r.stderr)
        self.assertEqual(http("GET", self.url + "/v1/maintenance")[1], {"enabled": False})
        code, doc = http("GET", self.url + "/v1/health")
        self.assertEqual((code, doc["status"]), (200, "passing"))
        self.assertIn("event=state_save_failed", self.a.log())
        self.assertNotIn("event=maintenance_enabled", self.a.log())

    def test_reload_of_an_invalid_config_exits_78(self):
        self.start()
        with open(self.a.config_path, "w") as f:
            json.dump({"service": {"name": "web", "checks": [
                {"name": "w", "http": "http://127.0.0.1:1/", "interval": "5x"}]}}, f)
        r = hrtest.run(["reload", "--api", str(self.port)])
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("reload refused, the agent keeps running its config: "
                      "service.checks[0].interval", r.stderr)
        # a registry the agent could not create is refused too (it used to
        # say "reloaded" and run on without it)
        cfg = json.loads(json.dumps(self.config))
        cfg["registry"] = {"etcd": {"endpoints": ["http://127.0.0.1:1"]}}
        with open(self.a.config_path, "w") as f:
            json.dump(cfg, f)
        r = hrtest.run(["reload", "--api", str(self.port)])
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("registry.etcd needs service.port", r.stderr)
        self.assertNotIn("registry_enabled", self.a.log())
        self.assertEqual(self.a.log().count("event=reload_failed"), 2, self.a.log())
        code, doc = http("GET", self.url + "/v1/health")
        self.assertEqual((code, [c["name"] for c in doc["checks"]]), (200, ["w"]))


def secret(dirpath, name, mode=0o600, text="s3cret\n"):
    path = os.path.join(dirpath, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, mode)
    os.write(fd, text.encode())
    os.close(fd)
    os.chmod(path, mode)
    return path


class TestValidateIsRun(unittest.TestCase):
    """validate and run share one path: every config run refuses at start,
    validate refuses with the same exit code and the same error lines
    (validate used to pass an etcd registry without service.port, which
    run refused with 78)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hr-vr-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def cases(self):
        d = self.dir
        ok = {"name": "web", "port": 8080, "address": "127.0.0.1",
              "checks": [{"name": "hb", "ttl": "30s"}]}
        noport = {"name": "web", "checks": [{"name": "hb", "ttl": "30s"}]}
        etcd = {"endpoints": ["http://127.0.0.1:1"]}
        free = {"api_listen": "127.0.0.1:0"}

        def cfg(service=ok, registry=None, agent=free):
            c = {"service": service, "agent": agent}
            if registry:
                c["registry"] = registry
            return c
        missing = os.path.join(d, "missing")
        return [
            ("etcd without service.port", cfg(noport, {"etcd": etcd}), {},
             "registry.etcd needs service.port"),
            ("etcd password_file missing",
             cfg(registry={"etcd": dict(etcd, username="u", password_file=missing)}),
             {}, "registry.etcd.password_file: %s: No such file" % missing),
            ("etcd user without a password",
             cfg(registry={"etcd": dict(etcd, username="u")}), {},
             "username \"u\" has no password"),
            ("etcd ca_file missing",
             cfg(registry={"etcd": {"endpoints": ["https://127.0.0.1:1"],
                                    "ca_file": missing}}), {},
             "registry.etcd.ca_file: %s: No such file" % missing),
            ("consul token_file missing",
             cfg(registry={"consul": {"address": "http://127.0.0.1:1",
                                      "token_file": missing}}), {},
             "registry.consul.token_file: %s: No such file" % missing),
            ("consul token_file others may read",
             cfg(registry={"consul": {"address": "http://127.0.0.1:1",
                                      "token_file": secret(d, "t644", 0o644)}}),
             {}, "registry.consul.token_file"),
            ("consul ca_file missing",
             cfg(registry={"consul": {"address": "https://127.0.0.1:1",
                                      "ca_file": missing}}), {},
             "registry.consul.ca_file: %s: No such file" % missing),
            ("consul token from the environment with a newline",
             cfg(registry={"consul": {"address": "http://127.0.0.1:1"}}),
             {"CONSUL_HTTP_TOKEN": "a\nb"}, "consul token is malformed"),
            ("api_listen a host name", cfg(agent={"api_listen": "localhost:9190"}),
             {}, "agent.api_listen: \"localhost:9190\""),
            ("api_listen without a port", cfg(agent={"api_listen": "127.0.0.1"}),
             {}, "agent.api_listen: \"127.0.0.1\" is not host:port"),
            ("api_token_file missing",
             cfg(agent=dict(free, api_token_file=missing)), {},
             "agent.api_token_file: %s: No such file" % missing),
            ("agent.user unknown",
             cfg(agent=dict(free, user="no-such-user-hr13")), {},
             "agent.user: no such user \"no-such-user-hr13\""),
        ]

    @staticmethod
    def errors(text):
        return [l for l in text.splitlines() if l.startswith("healthreg: error:")
                or l.endswith("nothing started")]

    def test_same_verdict_and_errors(self):
        base_env = {"HR_ALLOW_INSECURE_SECRETS": "", "ETCD_USERNAME": "",
                    "ETCD_PASSWORD": "", "CONSUL_HTTP_TOKEN": "",
                    "CONSUL_HTTP_TOKEN_FILE": "", "CONSUL_HTTP_ADDR": ""}
        for name, conf, env, needle in self.cases():
            with self.subTest(case=name):
                path = hrtest.write_config(conf, self.dir)
                e = dict(base_env, **env)
                v = hrtest.run(["validate", "-c", path], env=e)
                try:
                    r = hrtest.run(["run", "-c", path], env=e, timeout=15)
                except subprocess.TimeoutExpired:
                    self.fail("run started a config validate refused")
                self.assertEqual(v.returncode, 78, v.stderr)
                self.assertEqual(r.returncode, v.returncode, r.stderr)
                self.assertIn(needle, v.stderr)
                self.assertEqual(self.errors(r.stderr), self.errors(v.stderr))
                self.assertNotIn("event=", r.stderr)  # nothing started

    def test_warnings_once(self):
        """The backends' checks come after their validators: a warning is
        printed once, not again by the second pass."""
        path = hrtest.write_config({"service": {
            "name": "web", "port": 8080, "checks": [{"name": "hb", "ttl": "30s"}]},
            "registry": {"consul": {"address": "http://127.0.0.1:1",
                                    "deregister_critical_service_after": "30s"},
                         "etcd": {"endpoints": ["http://127.0.0.1:1"]}}},
            self.dir)
        v = hrtest.run(["validate", "-c", path],
                       env={"CONSUL_HTTP_TOKEN": "", "CONSUL_HTTP_TOKEN_FILE": ""})
        self.assertEqual(v.returncode, 0, v.stderr)
        self.assertEqual(v.stderr.count("warning:"), 1, v.stderr)
        self.assertIn("Consul raises values below 1m", v.stderr)

    def test_a_valid_config_runs(self):
        path = hrtest.write_config({"service": {
            "name": "web", "port": 8080, "checks": [{"name": "hb", "ttl": "30s"}]},
            "agent": {"api_listen": "127.0.0.1:0",
                      "api_token_file": secret(self.dir, "api.token")},
            "registry": {"etcd": {"endpoints": ["http://127.0.0.1:1"],
                                  "username": "u",
                                  "password_file": secret(self.dir, "pw")}}},
            self.dir)
        v = hrtest.run(["validate", "-c", path])
        self.assertEqual(v.returncode, 0, v.stderr)
        a = hrtest.Agent(json.load(open(path)))
        self.addCleanup(a.close)
        self.assertTrue(a.wait_log("event=api_listening"), a.log())
        self.assertIn("event=registry_enabled registry=etcd", a.log())
        self.assertEqual(a.stop(), 0, a.log())


if __name__ == "__main__":
    unittest.main()
