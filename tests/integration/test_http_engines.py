"""The http check's two engines give the same result (issues 6, 10, 11).

A check of http://127.0.0.1:PORT/... runs on the direct HTTP/1.1 engine;
the same check of http://localhost:PORT/... runs on libcurl. For every
response shape below, good or failing, status and output must match (the
URL's host and elapsed-time figures aside): both engines name a failure
by class and the text comes from one table (lib/http_report.c).

Issue 11 removed the last two differences: a connection closed inside a
head (libcurl took what it had) and two different Content-Length values
(libcurl took the last) now fail on both, in the same words."""
import re
import socket
import threading
import time
import unittest

import hrtest

BIG = b"x" * 100000


def chunked(body, size=7000):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x;ext=1\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\nTrailer: t\r\n\r\n"


RESPONSES = {
    "len": [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"],
    "chunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"3\r\nhel\r\n", b"2\r\nlo\r\n0\r\n\r\n"],
    "close": [b"HTTP/1.0 200 OK\r\n\r\nuntil close", None],
    "continue": [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                 b"Content-Length: 2\r\n\r\nok"],
    "nocontent": [b"HTTP/1.1 204 No Content\r\n\r\n"],
    "split": [b"HTTP/1.1 503 Service", b" Unavailable\r\nContent-Le",
              b"ngth: 4\r\n\r", b"\ndown"],
    "bigheader": [b"HTTP/1.1 200 OK\r\nX-Big: " + b"y" * 20000 +
                  b"\r\nContent-Length: 2\r\n\r\nok"],
    "huge": [b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + BIG],
    "hugechunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + chunked(BIG)],
    "redirect": [b"HTTP/1.1 302 Found\r\nLocation: /len\r\n"
                 b"Content-Length: 0\r\n\r\n"],
    "redirect-abs": [b"HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:%(port)d/chunked\r\n"
                     b"Content-Length: 0\r\n\r\n"],
    "weird": [b"garbage\r\n\r\n", None],
    "empty": [None],
    "short": [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", None],
    "noreason": [b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"],
    "lf": [b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"],
    "429": [b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 4\r\n\r\nslow"],
    "binary": [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab\x00cd"],
    "reset": ["RST"],
    # failures, each in both engines' words (issue 10)
    "500": [b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"],
    "nul": [b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok"],
    "neglen": [b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nok"],
    "nocolon": [b"HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 2\r\n\r\nok"],
    "badhex": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
    "longhex": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"00000000000000001\r\n"],
    "badcrlf": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n"],
    "shortchunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", None],
    "bigline": [b"HTTP/1.1 200 OK\r\nX-Big: " + b"y" * 120000 +
                b"\r\nContent-Length: 2\r\n\r\nok"],
    "manylines": [b"HTTP/1.1 200 OK\r\n" +
                  b"".join(b"X-H%d: %s\r\n" % (i, b"y" * 1000) for i in range(160)) +
                  b"Content-Length: 2\r\n\r\nok"],
    "flood100": [b"HTTP/1.1 100 Continue\r\n\r\n" * 5000],
    "resetbody": [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "RST"],
    "loop": [b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n"],
    "silent": ["HOLD"],
    "slowbody": [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "HOLD"],
    "slowredirect": ["SLEEP", b"HTTP/1.1 302 Found\r\nLocation: /silent\r\n"
                     b"Content-Length: 0\r\n\r\n"],
    # issue 11: closed inside a head, conflicting or signed Content-Length
    "closedstatus": [b"HTTP/1.1 200 O", None],
    "closedhead": [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n", None],
    "closedstatusline": [b"HTTP/1.1 200 OK\r\n", None],
    "closedblank": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r", None],
    "closedafter100": [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX: y\r\n", None],
    "closedin100": [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2", None],
    "twolengths": [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", None],
    "twolengthschunked": [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
                          b"Content-Length: 7\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
    "twolengths304": [b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"],
    "samelengths": [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"],
    "signedlen": [b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"],
    "hugelen": [b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nhello", None],
}


class RawServer:
    """Serves RESPONSES by path, piece by piece (None: close)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            req = b""
            while b"\r\n\r\n" not in req:
                d = c.recv(4096)
                if not d:
                    return
                req += d
            path = req.split(b" ")[1].decode().strip("/").split("?")[0]
            for piece in RESPONSES.get(path, [b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"]):
                if piece is None:
                    break
                if piece == "SLEEP":  # more than half the checks' timeout
                    time.sleep(1.2)
                    continue
                if piece == "HOLD":  # past the checks' timeout
                    time.sleep(3)
                    break
                if piece == "RST":
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    break
                c.sendall(piece % {b"port": self.port} if b"%(port)d" in piece else piece)
                time.sleep(0.02)
            time.sleep(0.05)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.sock.close()


def norm(text, port):
    text = text.replace("localhost", "127.0.0.1")
    return re.sub(r"\d+ (ms|milliseconds)", r"N \1", text)


class TestEngines(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = RawServer()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def run_all(self, host, **kw):
        checks = [dict(name=p, http="http://%s:%d/%s" % (host, self.srv.port, p),
                       timeout="2s", interval="3s", **kw) for p in RESPONSES]
        cfg = {"service": {"name": "svc", "checks": checks}}
        rc, doc, err = hrtest.check_json(cfg, timeout=60)
        self.assertIsNotNone(doc, err)
        return {c["name"]: (c["status"], norm(c["output"], self.srv.port))
                for c in doc["checks"]}

    def test_same_results(self):
        for kw in ({}, {"disable_redirects": True}):
            with self.subTest(**kw):
                direct = self.run_all("127.0.0.1", **kw)
                curl = self.run_all("localhost", **kw)
                for name in RESPONSES:
                    with self.subTest(response=name):
                        self.assertEqual(direct[name], curl[name])

    def test_expected_texts(self):
        got = self.run_all("127.0.0.1")
        url = "http://127.0.0.1:%d" % self.srv.port
        self.assertEqual(got["len"], ("passing", "HTTP GET %s/len: 200 OK Output: hello" % url))
        self.assertEqual(got["chunked"][1], "HTTP GET %s/chunked: 200 OK Output: hello" % url)
        self.assertEqual(got["redirect"], ("passing", "HTTP GET %s/redirect: 200 OK Output: hello" % url))
        self.assertEqual(got["429"][0], "warning")
        self.assertTrue(got["huge"][1].endswith(" ... (captured 4096 of %d bytes)"
                                                % (len("HTTP GET %s/huge: 200 OK Output: " % url) + len(BIG))))

    def test_failure_texts(self):
        """The texts both engines give (compared in test_same_results)."""
        got = self.run_all("127.0.0.1")
        url = "http://127.0.0.1:%d" % self.srv.port
        want = {
            "500": ("critical", "500 Internal Server Error Output: oops"),
            "nul": ("critical", "Nul byte in header"),
            "neglen": ("critical", "Invalid Content-Length: value"),
            "nocolon": ("critical", "Header without colon"),
            "badhex": ("critical", "Illegal or missing hexadecimal sequence in chunked-encoding"),
            "longhex": ("critical", "Too long hexadecimal number in chunked-encoding"),
            "badcrlf": ("critical", "Malformed encoding found in chunked-encoding"),
            "short": ("critical", "transfer closed with 7 bytes remaining to read"),
            "shortchunked": ("critical", "transfer closed with outstanding read data remaining"),
            "bigline": ("critical", "Too large response headers"),
            "manylines": ("critical", "Too large response headers"),
            "flood100": ("critical", "Too large response headers"),
            "resetbody": ("critical", "Recv failure: Connection reset by peer"),
            "weird": ("critical", "Received HTTP/0.9 when not allowed"),
            "empty": ("critical", "Empty reply from server"),
            "loop": ("critical", "Maximum (10) redirects followed"),
            "silent": ("critical", "Operation timed out after N milliseconds with 0 bytes received"),
            "closedstatus": ("critical", "Empty reply from server"),
            "closedhead": ("critical", "Weird server reply"),
            "closedstatusline": ("critical", "Weird server reply"),
            "closedblank": ("critical", "Weird server reply"),
            "closedafter100": ("critical", "Weird server reply"),
            "closedin100": ("critical", "Empty reply from server"),
            "twolengths": ("critical", "Invalid Content-Length: value"),
            "twolengthschunked": ("critical", "Invalid Content-Length: value"),
            "twolengths304": ("critical", "Invalid Content-Length: value"),
            "samelengths": ("passing", "200 OK Output: hello"),
            "signedlen": ("critical", "Invalid Content-Length: value"),
            "hugelen": ("passing", "200 OK Output: hello"),
            "slowbody": ("critical", "Operation timed out after N milliseconds "
                         "with 3 out of 10 bytes received"),
        }
        for name, (status, text) in want.items():
            with self.subTest(response=name):
                self.assertEqual(got[name], (status, "HTTP GET %s/%s: %s" % (url, name, text)))

    def both(self, url_fmt, port, **kw):
        """The one check on each engine: {engine: (status, output)}."""
        out = {}
        for engine, host in (("direct", "127.0.0.1"), ("curl", "localhost")):
            cfg = {"service": {"name": "svc", "checks": [
                dict(name="h", http=url_fmt % (host, port), interval="3s", **kw)]}}
            _, doc, err = hrtest.check_json(cfg, timeout=60)
            self.assertIsNotNone(doc, err)
            out[engine] = (doc["checks"][0]["status"], norm(doc["checks"][0]["output"], port))
        return out

    def test_one_deadline_across_a_handed_over_redirect(self):
        """The direct engine reads a 302 after 1.2 s; libcurl gets the rest
        of the 2 s timeout for the Location, not another 2 s."""
        cfg = {"service": {"name": "svc", "checks": [dict(
            name="h", http="http://127.0.0.1:%d/slowredirect" % self.srv.port,
            timeout="2s", interval="3s")]}}
        t0 = time.monotonic()
        _, doc, err = hrtest.check_json(cfg, timeout=60)
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(doc, err)
        self.assertEqual(doc["checks"][0]["status"], "critical")
        self.assertIn("Operation timed out after", doc["checks"][0]["output"])
        self.assertLess(elapsed, 2.9)

    def test_refused_text(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        got = self.both("http://%s:%d/x", port, timeout="2s")
        self.assertEqual(got["direct"], got["curl"])
        self.assertEqual(got["direct"], ("critical", "HTTP GET http://127.0.0.1:%d/x: "
                                         "Failed to connect to 127.0.0.1 port %d after N ms: "
                                         "Couldn't connect to server" % (port, port)))


if __name__ == "__main__":
    unittest.main()
