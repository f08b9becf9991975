"""Each check kind against real loopback servers and processes, with
deterministic outcomes (issue: core, integration tests)."""
import os
import re
import tempfile
import time
import unittest

import hrtest
import targets


def one(check, enable_exec=False, timeout=60):
    cfg = {"service": {"name": "svc", "checks": [check]}}
    if enable_exec:
        cfg["agent"] = {"enable_exec_checks": True}
    rc, doc, err = hrtest.check_json(cfg, timeout=timeout)
    assert doc is not None, err
    return rc, doc["checks"][0]


class TestHttp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = targets.Target()

    @classmethod
    def tearDownClass(cls):
        cls.t.stop()

    def http(self, path, **kw):
        return one(dict(name="h", http=self.t.url + path, **kw))

    def test_status_codes(self):
        for code, status in ((200, "passing"), (204, "passing"), (299, "passing"),
                             (429, "warning"), (300, "critical"), (404, "critical"),
                             (500, "critical"), (503, "critical")):
            with self.subTest(code=code):
                rc, c = self.http("/status/%d" % code)
                self.assertEqual(c["status"], status, c)
                self.assertIn("HTTP GET %s/status/%d: %d" % (self.t.url, code, code),
                              c["output"])

    def test_output_format(self):
        _, c = self.http("/status/200")
        self.assertEqual(c["output"],
                         "HTTP GET %s/status/200: 200 OK Output: status 200" % self.t.url)

    def test_redirect_followed(self):
        _, c = self.http("/redirect/200")
        self.assertEqual(c["status"], "passing")
        _, c = self.http("/redirect/503")
        self.assertEqual(c["status"], "critical")

    def test_redirect_disabled(self):
        _, c = self.http("/redirect/200", disable_redirects=True)
        self.assertEqual(c["status"], "critical")
        self.assertIn(": 302", c["output"])

    def test_timeout_on_silent_server(self):
        _, c = self.http("/hang", timeout="300ms", interval="1s")
        self.assertEqual(c["status"], "critical")
        self.assertIn("timed out", c["output"])

    def test_connection_refused(self):
        rc, c = one(dict(name="h", http="http://127.0.0.1:%d/" % targets.free_port()))
        self.assertEqual(rc, 2)
        self.assertEqual(c["status"], "critical")
        self.assertRegex(c["output"], "(?i)connect|refused")

    def test_huge_body_truncated(self):
        _, c = self.http("/huge/5000000")
        self.assertEqual(c["status"], "passing")
        out = c["output"]
        m = re.search(r" \.\.\. \(captured 4096 of (\d+) bytes\)$", out)
        self.assertTrue(m, out[-100:])
        prefix = "HTTP GET %s/huge/5000000: 200 OK Output: " % self.t.url
        self.assertEqual(int(m.group(1)), len(prefix) + 5000000)
        self.assertEqual(len(out.encode()), 4096 + len(m.group(0)))

    def test_method_headers_body(self):
        _, c = self.http("/echo", method="put", header={"X-Check": ["a", "b"]},
                         body="hello")
        self.assertEqual(c["status"], "passing")
        self.assertIn("PUT /echo", c["output"])
        self.assertIn("X-Check: a", c["output"])
        self.assertIn("X-Check: b", c["output"])
        self.assertIn("User-Agent: healthreg/", c["output"])
        self.assertTrue(c["output"].endswith("hello"))

    def test_tls_verify_on_by_default(self):
        """https to a plain-HTTP port fails the TLS handshake: critical."""
        _, c = one(dict(name="h", http="https://127.0.0.1:%d/" % self.t.port))
        self.assertEqual(c["status"], "critical")


class TestTcp(unittest.TestCase):
    def test_open_and_closed(self):
        t = targets.Target()
        self.addCleanup(t.stop)
        rc, c = one(dict(name="t", tcp="127.0.0.1:%d" % t.port))
        self.assertEqual((rc, c["status"]), (0, "passing"))
        self.assertEqual(c["output"], "TCP connect 127.0.0.1:%d: Success" % t.port)
        port = targets.free_port()
        rc, c = one(dict(name="t", tcp="127.0.0.1:%d" % port))
        self.assertEqual((rc, c["status"]), (2, "critical"))
        self.assertIn("connection refused", c["output"].lower())

    def test_localhost_name(self):
        t = targets.Target()
        self.addCleanup(t.stop)
        _, c = one(dict(name="t", tcp="localhost:%d" % t.port))
        self.assertEqual(c["status"], "passing", c)
        self.assertEqual(c["output"], "TCP connect localhost:%d: Success" % t.port)

    def test_localhost_name_refused(self):
        """A name resolved off the loop reports like an address."""
        port = targets.free_port()
        rc, c = one(dict(name="t", tcp="localhost:%d" % port))
        self.assertEqual((rc, c["status"]), (2, "critical"))
        self.assertEqual(c["output"],
                         "dial tcp localhost:%d: connect: Connection refused" % port)


class TestExec(unittest.TestCase):
    def test_exit_codes(self):
        for code, status in ((0, "passing"), (1, "warning"), (2, "critical"),
                             (77, "critical")):
            with self.subTest(code=code):
                rc, c = one(dict(name="x", args=["sh", "-c", "echo out; echo err >&2; exit %d" % code]),
                            enable_exec=True)
                self.assertEqual(c["status"], status)
                self.assertEqual(c["output"], "out\nerr\n")

    def test_missing_program(self):
        _, c = one(dict(name="x", args=["/nonexistent/program"]), enable_exec=True)
        self.assertEqual(c["status"], "critical")
        self.assertIn("No such file", c["output"])

    def test_no_shell(self):
        """argv is passed as is: no shell expansion."""
        _, c = one(dict(name="x", args=["echo", "$HOME", "*"]), enable_exec=True)
        self.assertEqual(c["output"], "$HOME *\n")

    def test_output_capped(self):
        _, c = one(dict(name="x", args=["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' y"]),
                   enable_exec=True)
        self.assertEqual(c["status"], "passing")
        self.assertTrue(c["output"].endswith(" ... (captured 4096 of 100000 bytes)"))

    def test_killed_by_signal(self):
        """Without output the signal is the output; with output, the output."""
        _, c = one(dict(name="x", args=["sh", "-c", "kill -9 $$"]), enable_exec=True)
        self.assertEqual((c["status"], c["output"]), ("critical", "killed by signal 9"))
        _, c = one(dict(name="x", args=["sh", "-c", "echo last words; kill -9 $$"]),
                   enable_exec=True)
        self.assertEqual((c["status"], c["output"]), ("critical", "last words\n"))

    def test_output_around_the_cap(self):
        for n, want in ((4095, "y" * 4095), (4096, "y" * 4096),
                        (4097, "y" * 4096 + " ... (captured 4096 of 4097 bytes)")):
            with self.subTest(n=n):
                _, c = one(dict(name="x", args=["sh", "-c", "head -c %d /dev/zero | tr '\\0' y" % n]),
                           enable_exec=True)
                self.assertEqual(c["output"], want)

    def test_no_inherited_fds(self):
        _, c = one(dict(name="x", args=["sh", "-c", "ls /proc/self/fd"]), enable_exec=True)
        fds = sorted(int(x) for x in c["output"].split())
        # 0, 1, 2 and the fd ls uses to read the directory.
        self.assertLessEqual(len(fds), 4, fds)
        self.assertEqual(fds[:3], [0, 1, 2])

    def test_timeout_kills_process_group(self):
        d = tempfile.mkdtemp()
        pids = os.path.join(d, "pids")
        script = ("sleep 300 & echo $! >> %s; (sleep 300 & echo $! >> %s; wait) & "
                  "echo $$ >> %s; wait" % (pids, pids, pids))
        t0 = time.time()
        _, c = one(dict(name="x", args=["sh", "-c", script], timeout="500ms",
                        interval="1s"), enable_exec=True)
        self.assertLess(time.time() - t0, 30)
        self.assertEqual(c["status"], "critical")
        self.assertEqual(c["output"], "Timed out (500ms) running check")
        with open(pids) as f:
            ps = [int(x) for x in f.read().split()]
        self.assertEqual(len(ps), 3)

        def all_gone():
            for p in ps:
                try:
                    with open("/proc/%d/stat" % p) as f:
                        state = f.read().rsplit(")", 1)[1].split()[0]
                    if state != "Z":
                        return False
                except FileNotFoundError:
                    pass
            return True
        self.assertTrue(hrtest.wait_for(all_gone, timeout=5), ps)


if __name__ == "__main__":
    unittest.main()


class TestHostile(unittest.TestCase):
    """Garbage and half-open servers fail their own check only."""

    def serve(self, behaviour):
        import socket
        import threading
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", 0))
        srv.listen(64)
        self.addCleanup(srv.close)
        conns = []
        self.addCleanup(lambda: [c.close() for c in conns])

        def loop():
            while True:
                try:
                    c, _ = srv.accept()
                except OSError:
                    return
                conns.append(c)
                try:
                    behaviour(c)
                except OSError:
                    pass
        threading.Thread(target=loop, daemon=True).start()
        return srv.getsockname()[1]

    def test_garbage_and_slow_servers(self):
        garbage = self.serve(lambda c: (c.recv(4096), c.sendall(b"\x00\xffnot http at all\r\n\r\n"), c.close()))
        header_only = self.serve(lambda c: (c.recv(4096), c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")))
        t = targets.Target()
        self.addCleanup(t.stop)
        cfg = {"service": {"name": "svc", "checks": [
            {"name": "garbage", "http": "http://127.0.0.1:%d/" % garbage},
            {"name": "truncated", "http": "http://127.0.0.1:%d/" % header_only,
             "timeout": "500ms", "interval": "1s"},
            {"name": "good", "http": t.url + "/status/200"}]}}
        rc, doc, err = hrtest.check_json(cfg)
        by = {c["name"]: c for c in doc["checks"]}
        self.assertEqual(by["garbage"]["status"], "critical", by["garbage"])
        self.assertEqual(by["truncated"]["status"], "critical", by["truncated"])
        self.assertEqual(by["good"]["status"], "passing")
        self.assertEqual(doc["output"], "1 passing, 2 critical: garbage, truncated")
