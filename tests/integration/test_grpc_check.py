"""grpc checks (Consul's grpc kind) against a real gRPC server: Debian's
python3-grpcio serving grpc.health.v1.Health (tests/support/
grpc_health_server.py): serving, not serving, unknown service, a gRPC
error, server down, server hanging, a listener that never speaks, TLS
(certificates made here with openssl), the service name in the target,
and states switching under a running agent."""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, HTTPServer

import faultkit
import grpc_health_server
import hrtest
import targets

HAVE_GRPC = grpc_health_server.available()
NO_GRPC = "python3-grpcio is not installed for %s (scripts/deps.sh installs it)" \
    % grpc_health_server.PYTHON


def one(check, timeout=60):
    """healthreg check --json on one check; (exit code, its check view)."""
    check = dict(check)
    given = {k.lower() for k in check}
    for k, v in (("name", "g"), ("interval", "2s"), ("timeout", "1s")):
        if k not in given:
            check[k] = v
    rc, doc, err = hrtest.check_json(
        {"service": {"name": "svc", "checks": [check]}}, timeout=timeout)
    assert doc is not None, err
    return rc, doc["checks"][0]


class TestGrpcServerAvailable(unittest.TestCase):
    def test_in_ci_the_grpc_cases_run(self):
        """Skipped without python3-grpcio, except in CI (CI=true): there
        the gRPC cases must run, so their absence is a failure."""
        if os.environ.get("CI") != "true":
            self.skipTest("not in CI")
        self.assertTrue(HAVE_GRPC, NO_GRPC)


@unittest.skipUnless(HAVE_GRPC, NO_GRPC)
class TestGrpcPlain(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = grpc_health_server.GrpcHealthServer({
            "": "SERVING",
            "my.Service": "SERVING",
            "down.Service": "NOT_SERVING",
            "unknown.Service": "SERVICE_UNKNOWN",
            "zero.Service": "UNKNOWN",
            "seven.Service": {"status": 7},
            "broken.Service": {"code": "UNAVAILABLE",
                               "message": "database down: 100% full"},
            "slow.Service": "HANG",
            "junk.Service": {"hex": "08"},
            "huge.Service": {"hex": "1a" + "ff" * 4 + "7f", "repeat": 1},
            "big.Service": {"hex": "00", "repeat": 100000},
            "fields.Service": {"hex": "10051a02aabb21" + "00" * 8 + "0801"},
        })

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def target(self, service=None):
        return self.srv.addr + ("/" + service if service is not None else "")

    def test_serving(self):
        for service in (None, "", "my.Service"):
            with self.subTest(service=service):
                rc, c = one({"grpc": self.target(service)})
                self.assertEqual(c["status"], "passing", c)
                self.assertEqual(c["kind"], "grpc")
                self.assertEqual(
                    c["output"], "gRPC check %s: SERVING" % self.target(service))
                self.assertEqual(rc, 0)

    def test_service_name_reaches_the_server(self):
        n = len(self.srv.requests())
        one({"grpc": self.target("my.Service")})
        one({"grpc": self.target()})
        got = [r["service"] for r in self.srv.requests()[n:]]
        self.assertEqual(got, ["my.Service", ""])

    def test_deadline_sent_as_grpc_timeout(self):
        n = len(self.srv.requests())
        one({"grpc": self.target("my.Service"), "timeout": "700ms"})
        left = self.srv.requests()[n]["time_remaining"]
        # the server's deadline is the check's timeout, less the time
        # the request took to arrive
        self.assertIsNotNone(left)
        self.assertLessEqual(left, 0.7)
        self.assertGreater(left, 0.0)

    def test_not_serving_states(self):
        for service, name in (("down.Service", "NOT_SERVING"),
                              ("unknown.Service", "SERVICE_UNKNOWN"),
                              ("zero.Service", "UNKNOWN")):
            with self.subTest(service=service):
                rc, c = one({"grpc": self.target(service)})
                self.assertEqual(c["status"], "critical", c)
                self.assertEqual(c["output"], "gRPC check %s: %s"
                                 % (self.target(service), name))
                self.assertEqual(rc, 2)

    def test_status_the_enum_lacks(self):
        _, c = one({"grpc": self.target("seven.Service")})
        self.assertEqual(c["status"], "critical", c)
        self.assertEqual(c["output"], "gRPC check %s: serving status 7"
                         % self.target("seven.Service"))

    def test_unknown_service(self):
        _, c = one({"grpc": self.target("no.such.Service")})
        self.assertEqual(c["status"], "critical", c)
        self.assertEqual(c["output"],
                         "gRPC check %s: NOT_FOUND (grpc-status 5): unknown service"
                         % self.target("no.such.Service"))

    def test_grpc_error_with_message(self):
        _, c = one({"grpc": self.target("broken.Service")})
        self.assertEqual(c["status"], "critical", c)
        # grpc-message is percent-encoded on the wire; decoded here
        self.assertEqual(c["output"],
                         "gRPC check %s: UNAVAILABLE (grpc-status 14): "
                         "database down: 100%% full" % self.target("broken.Service"))

    def test_server_hanging(self):
        """A handler that never answers: the deadline ends the run, named
        as one (the server's own DEADLINE_EXCEEDED, sent when the
        grpc-timeout passes, or healthreg's timeout, whichever comes
        first), within the check's timeout."""
        rc, c = one({"grpc": self.target("slow.Service"), "timeout": "500ms"})
        self.assertEqual(c["status"], "critical", c)
        self.assertRegex(
            c["output"],
            r"^gRPC check %s: DEADLINE_EXCEEDED( \(grpc-status 4\): Deadline Exceeded|"
            r": Operation timed out after \d+ milliseconds)"
            % re.escape(self.target("slow.Service")))
        self.assertEqual(rc, 2)

    def test_hostile_messages(self):
        """What the server's serializer sends, framed by grpc itself."""
        for service, status, tail in (
                ("junk.Service", "critical",
                 ": INTERNAL: the response message is not a HealthCheckResponse"),
                ("huge.Service", "critical",
                 ": INTERNAL: the response message is not a HealthCheckResponse"),
                ("big.Service", "critical",
                 ": INTERNAL: a response message of 100000 bytes (more than 16384)"),
                ("fields.Service", "passing", ": SERVING")):
            with self.subTest(service=service):
                _, c = one({"grpc": self.target(service)})
                self.assertEqual(c["status"], status, c)
                self.assertTrue(c["output"].endswith(tail), c["output"])

    def test_host_name_resolved(self):
        _, c = one({"grpc": "localhost:%d/my.Service" % self.srv.port})
        self.assertEqual(c["status"], "passing", c)

    def test_plaintext_check_on_a_tls_port_fails(self):
        """grpc_use_tls against this plaintext server: critical."""
        _, c = one({"grpc": self.target(), "grpc_use_tls": True,
                    "tls_skip_verify": True})
        self.assertEqual(c["status"], "critical", c)
        self.assertRegex(c["output"], r"^gRPC check \S+: UNAVAILABLE: ")


def have_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@unittest.skipUnless(HAVE_GRPC, NO_GRPC)
@unittest.skipUnless(have_ipv6(), "no ::1")
class TestGrpcIPv6(unittest.TestCase):
    def test_bracketed_address(self):
        srv = grpc_health_server.GrpcHealthServer({"s": "SERVING"}, host="::1")
        self.addCleanup(srv.stop)
        self.assertTrue(srv.addr.startswith("[::1]:"))
        _, c = one({"grpc": srv.addr + "/s"})
        self.assertEqual(c["status"], "passing", c)
        self.assertEqual(c["output"], "gRPC check %s/s: SERVING" % srv.addr)


@unittest.skipUnless(HAVE_GRPC, NO_GRPC)
class TestGrpcDown(unittest.TestCase):
    def test_server_down(self):
        port = targets.free_port()
        rc, c = one({"grpc": "127.0.0.1:%d" % port})
        self.assertEqual(c["status"], "critical", c)
        self.assertRegex(c["output"],
                         r"^gRPC check 127\.0\.0\.1:%d: UNAVAILABLE: Failed to "
                         r"connect to 127\.0\.0\.1 port %d after \d+ ms: "
                         r"Couldn't connect to server$" % (port, port))
        self.assertEqual(rc, 2)

    def test_silent_listener(self):
        """Accepts and never speaks: the check's timeout, named."""
        s = socket.socket()
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        _, c = one({"grpc": "127.0.0.1:%d" % s.getsockname()[1],
                    "timeout": "400ms"})
        self.assertEqual(c["status"], "critical", c)
        self.assertRegex(c["output"],
                         r": DEADLINE_EXCEEDED: Operation timed out after \d+ "
                         r"milliseconds with 0 bytes received$")

    def test_garbage_server(self):
        """Bytes that are not HTTP/2, without end: critical, in time."""
        s = socket.socket()
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", 0))
        s.listen(8)

        def spew():
            try:
                c, _ = s.accept()
                with c:
                    for _ in range(2000):
                        c.sendall(b"\x00\x00\x12\x04\xff" * 200)
            except OSError:
                pass
        threading.Thread(target=spew, daemon=True).start()
        rc, c = one({"grpc": "127.0.0.1:%d" % s.getsockname()[1],
                     "timeout": "1s"})
        self.assertEqual(c["status"], "critical", c)
        self.assertRegex(c["output"], r"^gRPC check 127\.0\.0\.1:\d+: "
                         r"(UNAVAILABLE|DEADLINE_EXCEEDED): ")
        self.assertLess(len(c["output"]), 400)

    def test_http1_server(self):
        """An HTTP/1.1 server on the port (not gRPC): critical, UNAVAILABLE."""
        t = targets.Target()
        self.addCleanup(t.stop)
        _, c = one({"grpc": "127.0.0.1:%d" % t.port})
        self.assertEqual(c["status"], "critical", c)
        self.assertRegex(c["output"], r"^gRPC check 127\.0\.0\.1:\d+: UNAVAILABLE: ")


def make_certs(d):
    """A CA and a server certificate for grpc.test only (no IP SAN)."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, cwd=d,
                       capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=healthreg test CA", "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=grpc.test",
        "-keyout", "server.key", "-out", "server.csr")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:grpc.test\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", "server.pem")
    return tuple(os.path.join(d, f) for f in ("ca.pem", "server.pem", "server.key"))


@unittest.skipUnless(HAVE_GRPC, NO_GRPC)
@unittest.skipUnless(shutil.which("openssl"), "openssl not installed")
class TestGrpcTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="hr-grpc-tls-")
        cls.ca, cert, key = make_certs(cls.dir)
        cls.srv = grpc_health_server.GrpcHealthServer(
            {"": "SERVING", "down": "NOT_SERVING"}, tls=(cert, key))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_verified_with_ca_and_server_name(self):
        _, c = one({"grpc": self.srv.addr, "grpc_use_tls": True,
                    "ca_file": self.ca, "tls_server_name": "grpc.test"})
        self.assertEqual(c["status"], "passing", c)
        self.assertEqual(c["output"], "gRPC check %s: SERVING" % self.srv.addr)
        _, c = one({"grpc": self.srv.addr + "/down", "grpc_use_tls": True,
                    "ca_file": self.ca, "tls_server_name": "grpc.test"})
        self.assertEqual(c["status"], "critical", c)
        self.assertTrue(c["output"].endswith(": NOT_SERVING"), c)

    def test_name_mismatch_fails(self):
        """The certificate names grpc.test, not 127.0.0.1."""
        _, c = one({"grpc": self.srv.addr, "grpc_use_tls": True,
                    "ca_file": self.ca})
        self.assertEqual(c["status"], "critical", c)
        self.assertRegex(c["output"], r": UNAVAILABLE: .*(?i:certificate|subject)")

    def test_untrusted_ca_fails(self):
        _, c = one({"grpc": self.srv.addr, "grpc_use_tls": True,
                    "tls_server_name": "grpc.test"})
        self.assertEqual(c["status"], "critical", c)
        self.assertRegex(c["output"], r": UNAVAILABLE: SSL certificate problem")

    def test_skip_verify(self):
        _, c = one({"grpc": self.srv.addr, "grpc_use_tls": True,
                    "tls_skip_verify": True})
        self.assertEqual(c["status"], "passing", c)

    def test_consul_spelling(self):
        """A Consul definition's CamelCase keys (GRPC, GRPCUseTLS,
        TLSSkipVerify)."""
        _, c = one({"GRPC": self.srv.addr, "GRPCUseTLS": True,
                    "TLSSkipVerify": True, "Interval": "2s", "Timeout": "1s"})
        self.assertEqual(c["status"], "passing", c)

    def test_plaintext_against_tls(self):
        _, c = one({"grpc": self.srv.addr})
        self.assertEqual(c["status"], "critical", c)
        self.assertRegex(c["output"], r"^gRPC check \S+: UNAVAILABLE: ")


@unittest.skipUnless(shutil.which("openssl"), "openssl not installed")
class TestHttpsCaFile(unittest.TestCase):
    """ca_file is shared with http checks: an https target whose certificate
    only the test CA vouches for (an HTTP/1.1 server: for a grpc check,
    not gRPC)."""

    def test_https_with_ca_file(self):
        d = tempfile.mkdtemp(prefix="hr-https-")
        self.addCleanup(shutil.rmtree, d, True)
        ca, cert, key = make_certs(d)

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        srv = HTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        url = "https://127.0.0.1:%d/" % srv.server_address[1]
        _, c = one({"http": url, "ca_file": ca, "tls_server_name": "grpc.test"})
        self.assertEqual(c["status"], "passing", c)
        _, c = one({"http": url, "tls_server_name": "grpc.test"})
        self.assertEqual(c["status"], "critical", c)
        self.assertIn("SSL certificate problem", c["output"])
        # a grpc check on it: ALPN gives HTTP/1.1, which is not gRPC
        addr = "127.0.0.1:%d" % srv.server_address[1]
        _, c = one({"grpc": addr, "grpc_use_tls": True, "ca_file": ca,
                    "tls_server_name": "grpc.test"})
        self.assertEqual(c["status"], "critical", c)
        self.assertEqual(c["output"], "gRPC check %s: UNAVAILABLE: the server "
                         "does not speak HTTP/2 (it answered HTTP/1.x)" % addr)


class ConnectProxy:
    """An HTTP CONNECT proxy on loopback, in threads; it records what it
    was asked to tunnel to."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.tunnel, args=(c,), daemon=True).start()

    def tunnel(self, c):
        head = b""
        with c:
            while b"\r\n\r\n" not in head:
                got = c.recv(4096)
                if not got:
                    return
                head += got
            line = head.split(b"\r\n", 1)[0].decode()
            self.requests.append(line)
            method, where, _ = line.split(" ", 2)
            if method != "CONNECT":
                c.sendall(b"HTTP/1.1 405 Not a tunnel\r\nContent-Length: 0\r\n\r\n")
                return
            host, port = where.rsplit(":", 1)
            with socket.create_connection((host, int(port))) as up:
                c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

                def pump(a, b):
                    try:
                        while True:
                            d = a.recv(65536)
                            if not d:
                                break
                            b.sendall(d)
                    except OSError:
                        pass
                    try:
                        b.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                t = threading.Thread(target=pump, args=(up, c), daemon=True)
                t.start()
                pump(c, up)
                t.join(5)

    def close(self):
        self.sock.close()


@unittest.skipUnless(HAVE_GRPC, NO_GRPC)
class TestGrpcProxy(unittest.TestCase):
    """Through a proxy libcurl takes from the environment, the check
    tunnels (CONNECT): gRPC needs HTTP/2 end to end."""

    def run_check(self, target, env):
        cfg = {"service": {"name": "svc", "checks": [
            {"name": "g", "grpc": target, "interval": "2s", "timeout": "1s"}]}}
        path = hrtest.write_config(cfg)
        self.addCleanup(os.unlink, path)
        clean = {k: "" for k in ("http_proxy", "HTTP_PROXY", "https_proxy",
                                 "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                                 "no_proxy", "NO_PROXY")}
        clean.update(env)
        p = hrtest.run(["check", "-c", path, "--json"], env=clean)
        return json.loads(p.stdout)["checks"][0]

    def test_tunnel(self):
        srv = grpc_health_server.GrpcHealthServer({"s": "SERVING"})
        self.addCleanup(srv.stop)
        proxy = ConnectProxy()
        self.addCleanup(proxy.close)
        c = self.run_check(srv.addr + "/s",
                           {"http_proxy": "http://127.0.0.1:%d" % proxy.port})
        self.assertEqual(c["status"], "passing", c)
        self.assertEqual(proxy.requests, ["CONNECT %s HTTP/1.1" % srv.addr])
        # no_proxy: straight to the server
        c = self.run_check(srv.addr + "/s",
                           {"http_proxy": "http://127.0.0.1:%d" % proxy.port,
                            "no_proxy": "127.0.0.1"})
        self.assertEqual(c["status"], "passing", c)
        self.assertEqual(len(proxy.requests), 1)


@unittest.skipUnless(HAVE_GRPC, NO_GRPC)
class TestGrpcAgent(unittest.TestCase):
    """A running agent: two checks on one server that differ only in the
    service name, and the server switching their states."""

    def test_states_switch(self):
        srv = grpc_health_server.GrpcHealthServer(
            {"a.Service": "SERVING", "b.Service": "NOT_SERVING"})
        self.addCleanup(srv.stop)
        d = tempfile.mkdtemp(prefix="hr-grpc-agent-")
        self.addCleanup(shutil.rmtree, d, True)
        agent = hrtest.Agent({
            "service": {"name": "web", "checks": [
                {"name": "a", "grpc": srv.addr + "/a.Service",
                 "interval": "200ms", "timeout": "150ms"},
                {"name": "b", "grpc": srv.addr + "/b.Service",
                 "interval": "200ms", "timeout": "150ms"}]},
            "agent": {"api_listen": "127.0.0.1:0",
                      "state_file": os.path.join(d, "state.json")}})
        self.addCleanup(agent.close)
        api = faultkit.api_url(agent)

        def statuses():
            out = {}
            for name in ("a", "b"):
                code, body = faultkit.http("GET", api + "/v1/checks/" + name)
                if code != 200:
                    return None
                out[name] = json.loads(body)["status"]
            return out

        want = {"a": "passing", "b": "critical"}
        self.assertTrue(hrtest.wait_for(lambda: statuses() == want, 15),
                        (statuses(), agent.log()[-2000:]))
        code, _ = faultkit.http("GET", api + "/v1/health?format=text")
        self.assertEqual(code, 503)

        srv.set({"a.Service": "NOT_SERVING", "b.Service": "SERVING"})
        want = {"a": "critical", "b": "passing"}
        self.assertTrue(hrtest.wait_for(lambda: statuses() == want, 15),
                        (statuses(), agent.log()[-2000:]))

        srv.set({"a.Service": "SERVING", "b.Service": "SERVING"})
        self.assertTrue(hrtest.wait_for(
            lambda: faultkit.http("GET", api + "/v1/health?format=text")[0] == 200,
            15), agent.log()[-2000:])
        code, body = faultkit.http("GET", api + "/v1/checks/b")
        self.assertEqual(json.loads(body)["output"],
                         "gRPC check %s/b.Service: SERVING" % srv.addr)
        self.assertIsNone(agent.proc.poll(), agent.log()[-2000:])
        self.assertEqual(agent.stop(), 0, agent.log()[-2000:])

    def test_runs_leave_nothing_behind(self):
        """Many runs that pass, hang into their deadline, are refused or
        hit a listener that never speaks: the agent's descriptors and
        memory stay flat, every run ends (no check stays running)."""
        srv = grpc_health_server.GrpcHealthServer(
            {"ok": "SERVING", "slow": "HANG"})
        self.addCleanup(srv.stop)
        silent = socket.socket()
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        d = tempfile.mkdtemp(prefix="hr-grpc-agent-")
        self.addCleanup(shutil.rmtree, d, True)
        targets_ = {"ok": srv.addr + "/ok", "slow": srv.addr + "/slow",
                    "down": "127.0.0.1:%d" % targets.free_port(),
                    "silent": "127.0.0.1:%d" % silent.getsockname()[1]}
        agent = hrtest.Agent({
            "service": {"name": "web", "checks": [
                {"name": n, "grpc": t, "interval": "100ms", "timeout": "80ms"}
                for n, t in sorted(targets_.items())]},
            "agent": {"api_listen": "127.0.0.1:0",
                      "state_file": os.path.join(d, "state.json")}})
        self.addCleanup(agent.close)
        api = faultkit.api_url(agent)

        def runs_at_least(n):
            return all((faultkit.check_runs(api, name) or 0) >= n
                       for name in targets_)

        self.assertTrue(hrtest.wait_for(lambda: runs_at_least(10), 60),
                        agent.log()[-2000:])
        fds0, rss0 = faultkit.fds(agent.pid), faultkit.rss_kb(agent.pid)
        self.assertTrue(hrtest.wait_for(lambda: runs_at_least(60), 120),
                        agent.log()[-2000:])
        fds1, rss1 = faultkit.fds(agent.pid), faultkit.rss_kb(agent.pid)
        # one socket per run in flight at most, a few around
        self.assertLessEqual(fds1, fds0 + len(targets_), (fds0, fds1))
        faultkit.assert_rss_flat(self, rss0, rss1, 2048, "RSS (KiB)")
        for name, want in (("ok", "passing"), ("slow", "critical"),
                           ("down", "critical"), ("silent", "critical")):
            code, body = faultkit.http("GET", api + "/v1/checks/" + name)
            self.assertEqual(json.loads(body)["status"], want, body)
        self.assertEqual(agent.stop(), 0, agent.log()[-2000:])


if __name__ == "__main__":
    unittest.main()
