"""The local API under abuse (issue 11): over-long check names before and
after the token check, a percent-decoded NUL in a name, invalid UTF-8 from
a check's output, what /v1/health shows without the token, and a flood of
idle and half-sent connections while probes keep being answered."""
import json
import os
import re
import shutil
import socket
import tempfile
import time
import unittest
import unittest.mock
import urllib.error
import urllib.request

import hrtest

TOKEN = "t0ken-for-the-api"
# An exec check whose output is invalid UTF-8 (a lone continuation byte, a
# cut sequence, an overlong form) around text that must survive.
BAD_UTF8 = r"printf 'SECRET-OUT \200 \303 \300\257 caf\303\251'"


def request(method, url, token=None, timeout=10):
    """(code, body bytes, headers) of one request; the body undecoded."""
    req = urllib.request.Request(url, method=method,
                                 data=b"" if method == "PUT" else None)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def strict_json(body):
    """The body as JSON after a strict UTF-8 decode (raises otherwise)."""
    return json.loads(body.decode("utf-8", errors="strict"))


class Agent:
    """An agent on a free API port with a ttl check 'hb' and an exec check
    'bin' whose output is invalid UTF-8; token: api_token_file or None."""

    def __init__(self, test, token=None, **settings):
        d = tempfile.mkdtemp(prefix="hr-abuse-")
        test.addCleanup(shutil.rmtree, d, True)
        agent = {"api_listen": "127.0.0.1:0", "enable_exec_checks": True,
                 "state_file": os.path.join(d, "state.json")}
        agent.update(settings)
        if token:
            tf = os.path.join(d, "token")
            with open(tf, "w") as f:
                f.write(token + "\n")
            os.chmod(tf, 0o600)
            agent["api_token_file"] = tf
        self.agent = hrtest.Agent({
            "service": {"name": "web", "id": "web-1", "checks": [
                {"name": "hb", "ttl": "30s"},
                {"name": "bin", "args": ["/bin/sh", "-c", BAD_UTF8],
                 "interval": "200ms"}]},
            "agent": agent})
        test.addCleanup(self.agent.close)
        self.port = self.listening_port()
        self.url = "http://127.0.0.1:%d" % self.port

    def listening_port(self):
        def port():
            for line in self.agent.log().splitlines():
                if "api_listening" in line:
                    m = re.search(r'port[=":]+(\d+)', line)
                    return m and int(m.group(1))
        p = hrtest.wait_for(port, 10)
        assert p, self.agent.log()
        return p

    def alive(self, test):
        test.assertIsNone(self.agent.proc.poll(), "the agent died:\n" +
                          self.agent.log()[-3000:])
        code, body, _ = request("GET", self.url + "/v1/health?format=text",
                                timeout=5)
        test.assertIn(code, (200, 429, 503), body)
        test.assertNotIn("runtime error", self.agent.log())


class TestLongNames(unittest.TestCase):
    """Item 1: a name of 600, 5,000 and 30,000 bytes, GET and PUT .../pass,
    with and without api_token_file: never a write past a buffer (ASan and
    UBSan builds run this too), the token is checked first, an over-long
    name is a 414 with a JSON error."""

    def check(self, a, token, sent):
        for n in (600, 5000, 30000):
            name = "n" * n
            for method, path in (("PUT", "/v1/checks/%s/pass" % name),
                                 ("GET", "/v1/checks/%s/pass" % name),
                                 ("GET", "/v1/checks/%s" % name)):
                with self.subTest(n=n, method=method, token=token, sent=sent,
                                  verb=path.endswith("/pass")):
                    code, body, _ = request(method, a.url + path,
                                            token=TOKEN if sent else None)
                    a.alive(self)
                    if token and not sent:
                        want = 401  # the token comes before the path
                    elif n > 1024:
                        want = 414
                    elif method == "GET" and path.endswith("/pass"):
                        want = 405
                    else:
                        want = 404
                    self.assertEqual(code, want, body[:200])
                    self.assertIn("error", strict_json(body))

    def test_without_token(self):
        a = Agent(self)
        self.check(a, None, False)

    def test_with_token(self):
        a = Agent(self, token=TOKEN)
        self.check(a, TOKEN, False)
        self.check(a, TOKEN, True)


class TestNames(unittest.TestCase):
    def test_percent_decoded_nul_matches_no_check(self):
        """Item 13a: /v1/checks/hb%00x is not check hb."""
        a = Agent(self)
        for method, path in (("GET", "/v1/checks/hb%00x"),
                             ("PUT", "/v1/checks/hb%00x/pass"),
                             ("PUT", "/v1/checks/hb%00/pass"),
                             ("GET", "/v1/checks/hb%00")):
            with self.subTest(method=method, path=path):
                code, body, _ = request(method, a.url + path)
                self.assertEqual(code, 404, body)
                self.assertIn("error", strict_json(body))
        code, body, _ = request("GET", a.url + "/v1/checks/hb")
        self.assertEqual(code, 200, body)
        self.assertNotEqual(strict_json(body)["status"], "passing",
                            "a %00 path fed the ttl check")


class TestOutput(unittest.TestCase):
    def test_invalid_utf8_output_is_valid_json(self):
        """Item 8: a check printing invalid UTF-8; /v1/health and
        /v1/checks/bin are strict UTF-8 JSON, the bytes are U+FFFD."""
        a = Agent(self)

        def bin_output():
            doc = strict_json(request("GET", a.url + "/v1/health")[1])
            return [c["output"] for c in doc["checks"]
                    if c["name"] == "bin" and c["last_run"]]
        self.assertTrue(hrtest.wait_for(bin_output, 10), a.agent.log())
        for _ in range(20):
            out = bin_output()[0]
            self.assertIn("SECRET-OUT", out)
            self.assertIn("\ufffd", out)
            self.assertIn("caf\u00e9", out)
            strict_json(request("GET", a.url + "/v1/checks/bin")[1])
            time.sleep(0.05)


    def test_json_log_lines_are_valid_utf8_json(self):
        """Item 8: with log_format json, every line of the agent's log is
        strict UTF-8 JSON, the check's invalid output included."""
        a = Agent(self, log_format="json")
        self.assertTrue(hrtest.wait_for(
            lambda: "SECRET-OUT" in a.agent.log(), 10), a.agent.log())
        with open(a.agent.log_path, "rb") as f:
            lines = f.read().split(b"\n")
        self.assertEqual(lines[-1], b"")
        for line in lines[:-1]:
            strict_json(line)
        self.assertTrue(any(b"SECRET-OUT \xef\xbf\xbd" in line
                            for line in lines))


class TestTokenHealth(unittest.TestCase):
    def test_health_without_token_shows_status_only(self):
        """Item 5: without the token, /v1/health has the code and status
        word but no check names or outputs; with it, everything."""
        a = Agent(self, token=TOKEN)
        self.assertTrue(hrtest.wait_for(
            lambda: b"SECRET-OUT" in request("GET", a.url + "/v1/health",
                                             token=TOKEN)[1], 10))
        code, body, _ = request("GET", a.url + "/v1/health")
        self.assertEqual(code, 503, body)
        doc = strict_json(body)
        self.assertEqual(doc["status"], "critical")
        for hidden in (b"SECRET-OUT", b"\"checks\"", b"\"output\"", b"hb",
                       b"bin"):
            self.assertNotIn(hidden, body)
        self.assertEqual(request("GET", a.url + "/v1/health?format=text"),
                         (503, b"critical\n", unittest.mock.ANY))
        code, body, _ = request("GET", a.url + "/v1/health", token="wrong")
        self.assertEqual(code, 503)
        self.assertNotIn(b"SECRET-OUT", body)
        code, body, _ = request("GET", a.url + "/v1/health", token=TOKEN)
        self.assertEqual(code, 503)
        doc = strict_json(body)
        self.assertEqual([c["name"] for c in doc["checks"]], ["hb", "bin"])
        self.assertIn("output", doc)
        # A check's own page holds its output: it needs the token too.
        self.assertEqual(request("GET", a.url + "/v1/checks/bin")[0], 401)
        self.assertEqual(request("GET", a.url + "/v1/checks/bin",
                                 token="wrong")[0], 403)
        code, body, _ = request("GET", a.url + "/v1/checks/bin", token=TOKEN)
        self.assertEqual(code, 200, body)
        self.assertIn("SECRET-OUT", strict_json(body)["output"])
        # `healthreg status` sends the token it finds in the config.
        p = hrtest.run(["status", "-c", a.agent.config_path, "--api",
                        "127.0.0.1:%d" % a.port])
        self.assertIn("bin ", p.stdout, p.stderr)


class TestFlood(unittest.TestCase):
    def test_probes_answered_while_connections_are_held(self):
        """Item 7: 300 idle connections and 30 that sent half a request
        line, all held; /v1/health answers within 2 s, every time."""
        a = Agent(self)
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        for i in range(330):
            s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
            if i >= 300:
                s.sendall(b"GET /v1/heal")
            held.append(s)
        time.sleep(0.3)
        for i in range(6):
            t0 = time.monotonic()
            code, body, _ = request("GET", a.url + "/v1/health", timeout=2)
            self.assertIn(code, (200, 429, 503))
            self.assertEqual(strict_json(body)["service"], "web")
            self.assertLess(time.monotonic() - t0, 2.0)
            time.sleep(0.5)
        a.alive(self)


if __name__ == "__main__":
    unittest.main()
