"""http checks take the same way under the proxy environment, whichever
engine runs them (issue 13).

A plain GET of http://127.0.0.1:PORT/... runs on the direct engine, the
same URL with a header on libcurl. Before, the direct engine ignored
http_proxy and libcurl honoured it: the check with a header went through
the proxy (and failed there) while the one without passed. The rule now is
libcurl's (docs/checks.md "Proxies"): for each environment below, both
checks reach the target directly, or both go through the proxy, as
libcurl decides. The proxy is a loopback server that records each request
and answers itself; the target records what reached it directly."""
import http.server
import json
import os
import subprocess
import socket
import threading
import unittest

import hrtest

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
              "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY")


class Recorder(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, name, family=socket.AF_INET):
        self.address_family = family
        self.name = name
        self.seen = []
        self.lock = threading.Lock()
        super().__init__(addr, Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with self.server.lock:
            self.server.seen.append(self.path)
        body = ("via " + self.server.name).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class ProxyRule(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servers = []
        cls.proxy = cls.serve(Recorder(("127.0.0.1", 0), "proxy"))
        cls.target = cls.serve(Recorder(("127.0.0.1", 0), "target"))
        cls.target6 = None
        if have_ipv6_loopback():
            cls.target6 = cls.serve(Recorder(("::1", 0), "target",
                                             socket.AF_INET6))

    @classmethod
    def serve(cls, srv):
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        cls.servers.append(srv)
        return srv

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.shutdown()
            s.server_close()

    def run_checks(self, env, host="127.0.0.1", target=None):
        """healthreg check with the two checks under env; returns
        {check name: "proxy"|"target"} and asserts each passed."""
        target = target or self.target
        for s in self.servers:
            with s.lock:
                s.seen.clear()
        port = target.server_address[1]
        base = "http://%s:%d" % ("[%s]" % host if ":" in host else host, port)
        cfg = {"service": {"name": "p", "checks": [
            {"name": "plain", "http": base + "/plain",
             "interval": "10s", "timeout": "3s"},
            {"name": "header", "http": base + "/header",
             "header": {"X-Probe": ["1"]},
             "interval": "10s", "timeout": "3s"}]}}
        path = hrtest.write_config(cfg)
        self.addCleanup(os.unlink, path)
        e = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
        e.update(env)
        p = subprocess.run([hrtest.HR_BIN, "check", "-c", path,
                                   "--json"], capture_output=True,
                                  text=True, timeout=60, env=e)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        doc = json.loads(p.stdout)
        route = {}
        for name in ("plain", "header"):
            via_proxy = [u for u in self.proxy.seen if u.endswith("/" + name)]
            direct = [u for u in target.seen if u == "/" + name]
            self.assertEqual(len(via_proxy) + len(direct), 1,
                             (name, self.proxy.seen, target.seen))
            if via_proxy:
                # an absolute-form request for the check's own URL
                self.assertEqual(via_proxy[0], base + "/" + name)
            route[name] = "proxy" if via_proxy else "target"
        outputs = json.dumps(doc)
        for name in route:
            self.assertIn("via " + route[name], outputs)
        return route

    def assertRoute(self, env, expected, **kw):
        self.assertEqual(self.run_checks(env, **kw),
                         {"plain": expected, "header": expected}, env)

    def proxy_url(self):
        return "http://127.0.0.1:%d" % self.proxy.server_address[1]

    def test_no_proxy_variables(self):
        self.assertRoute({}, "target")

    def test_http_proxy_applies_to_both(self):
        """The case of the issue: before, plain went direct."""
        self.assertRoute({"http_proxy": self.proxy_url()}, "proxy")

    def test_all_proxy_applies_to_both(self):
        self.assertRoute({"all_proxy": self.proxy_url()}, "proxy")
        self.assertRoute({"ALL_PROXY": self.proxy_url()}, "proxy")

    def test_upper_case_http_proxy_is_ignored_by_both(self):
        """libcurl never reads HTTP_PROXY for http:// (httpoxy)."""
        self.assertRoute({"HTTP_PROXY": self.proxy_url()}, "target")

    def test_empty_variables_count_as_unset(self):
        """libcurl reads an empty variable as an unset one."""
        self.assertRoute({"http_proxy": ""}, "target")
        self.assertRoute({"http_proxy": "", "all_proxy": self.proxy_url()},
                         "proxy")
        self.assertRoute({"http_proxy": self.proxy_url(), "no_proxy": "",
                          "NO_PROXY": "127.0.0.1"}, "target")

    def test_no_proxy_exempts_both(self):
        for np in ("127.0.0.1", "localhost,127.0.0.1", "*"):
            for var in ("no_proxy", "NO_PROXY"):
                self.assertRoute({"http_proxy": self.proxy_url(), var: np},
                                 "target")

    def test_no_proxy_cidr_and_blanks_as_libcurl_reads_them(self):
        """Left to libcurl by the direct engine: both go direct."""
        for np in ("127.0.0.0/8", "example.com 127.0.0.1"):
            self.assertRoute({"http_proxy": self.proxy_url(),
                              "no_proxy": np}, "target")

    def test_no_proxy_not_matching(self):
        for np in ("10.0.0.1", "127.0.0.10", "example.com"):
            self.assertRoute({"http_proxy": self.proxy_url(),
                              "no_proxy": np}, "proxy")

    def test_lower_case_no_proxy_hides_upper_case(self):
        self.assertRoute({"http_proxy": self.proxy_url(),
                          "no_proxy": "10.0.0.1", "NO_PROXY": "127.0.0.1"},
                         "proxy")

    def test_ipv6(self):
        if not self.target6:
            self.skipTest("no IPv6 loopback")
        self.assertRoute({"http_proxy": self.proxy_url()}, "proxy",
                         host="::1", target=self.target6)
        self.assertRoute({"http_proxy": self.proxy_url(), "no_proxy": "::1"},
                         "target", host="::1", target=self.target6)


if __name__ == "__main__":
    unittest.main()
