"""Hostile HTTP targets x both engines (issue 11, items 3, 6, 9 and the
hostile-target table).

The targets (tests/support/hostile.py): a server that never answers, one
that trickles 1 byte / 100 ms, an endless body, endless headers, 100
Continue forever (whole and split), bogus chunk sizes, conflicting
Content-Length, NUL / control bytes / invalid UTF-8 in the status line,
headers and body, a reset mid-response, a close mid-head, redirect loops
and a slow redirect chain. A check of http://127.0.0.1:PORT/... runs on
the direct engine, of http://localhost:PORT/... on libcurl.

Every one, on each engine:
- ends within its timeout: the check's own duration_ms (what the agent
  measured, not this machine's wall clock) is at most timeout + SLACK_MS,
  whatever the redirects (item 6: one deadline per run);
- gives the same status and text on both engines (item 9);
- keeps its output bounded: at most 4096 bytes and the
  " ... (captured 4096 of N bytes)" marker;
- leaves the agent's fd count and RSS flat over 200 rounds (item 3: 100
  Continue forever once drove the direct engine to gigabytes).
"""
import json
import os
import re
import time
import unittest
import urllib.error
import urllib.request

import hostile
import hrtest
from faultkit import SANITIZED, fds as proc_fds, rss_kb as proc_rss_kib

SLACK_MS = 150
# Redirects: libcurl 7.88 overran a 500 ms timeout by 100-200 ms on these
# chains (each hop restarts its timer); the deadline guard ends the run at
# 500-502 ms: the slack is for a busy loop only.
REDIRECT_SLACK_MS = 100
OUTPUT_MAX = 4096
MARKER = re.compile(r" \.\.\. \(captured 4096 of \d+ bytes\)$")

ENGINES = (("direct", "127.0.0.1"), ("curl", "localhost"))

# What each hostile target ends as, on both engines: the status, and the
# text after "HTTP GET <url>: " (N: milliseconds, B: a byte count > 0;
# None: only compared between the engines).
TIMED_OUT = "Operation timed out after N milliseconds with %s bytes received"
EXPECT_GROUPS = [
    ("critical", TIMED_OUT % "0",
     # continuesplit: 100 KiB of heads take longer than the timeout;
     # loopslow, chain, hops: redirects do not restart the clock (item 6)
     ["silent", "tricklehead", "continuesplit", "loopslow", "chain/150/0", "hops/3"]),
    ("critical", TIMED_OUT % "B out of 1000000", ["tricklebody"]),
    ("critical", TIMED_OUT % "B", ["endless", "endlesschunked"]),
    ("critical", "Too large response headers", ["hugeheaders", "hugeline", "continue"]),
    ("critical", "Illegal or missing hexadecimal sequence in chunked-encoding",
     ["chunkhex", "chunknegative", "chunkoverflow"]),
    ("critical", "Too long hexadecimal number in chunked-encoding", ["chunktoolong"]),
    ("critical", "transfer closed with outstanding read data remaining", ["chunkhuge"]),
    ("critical", "Invalid Content-Length: value", ["conflict"]),
    ("critical", "Nul byte in header", ["nulstatus", "nulheader"]),
    ("critical", "Recv failure: Connection reset by peer", ["rsthead", "rstbody"]),
    ("critical", "Weird server reply", ["closehead"]),
    ("critical", "Empty reply from server", ["closestatus"]),
    ("critical", "Maximum (10) redirects followed", ["loop"]),
    ("passing", "200 OK Output: ok", ["ctlheader"]),
    ("passing", None, ["ctlstatus", "utf8body", "bigbody", "nulbody"]),
    ("critical", None, ["utf8error"]),
]
CUT = {"utf8body", "bigbody"}  # outputs over 4 KiB: cut, with the marker
EXPECT = {name: (status, text) for status, text, names in EXPECT_GROUPS
          for name in names}
assert set(EXPECT) == set(hostile.HOSTILE) | {"loopslow", "chain/150/0", "hops/3"}


def norm(text):
    """The URL's host, times and byte counts other than 0 aside (a trickle
    or an endless body gives what the timing gives)."""
    text = text.replace("localhost", "127.0.0.1")
    text = re.sub(r"with [1-9]\d* ", "with B ", text)
    return re.sub(r"\d+ (ms|milliseconds)", r"N \1", text)


def decode(raw):
    """JSON bytes to text, an invalid byte to one character (a lone
    surrogate): so a length in characters is at most the length in bytes
    that the agent kept, however the JSON encoder (item 8) writes them."""
    return raw.decode("utf-8", "surrogateescape")


def output_bounded(out):
    """At most OUTPUT_MAX characters (each at least a byte of the output
    kept), then the marker when cut."""
    m = MARKER.search(out)
    body = out[:m.start()] if m else out
    return len(body) <= OUTPUT_MAX


def check_once(checks):
    """healthreg check --json; {name: check} (invalid UTF-8 in the JSON is
    item 8's, asserted in TestHostileJson: read leniently here)."""
    path = hrtest.write_config({"service": {"name": "svc", "checks": checks}})
    try:
        p = hrtest.subprocess.run([hrtest.HR_BIN, "check", "-c", path, "--json"],
                                  capture_output=True, timeout=60)
    finally:
        os.unlink(path)
    # a sanitizer build reports (leaks too, at exit) on stderr
    assert b"Sanitizer" not in p.stderr, p.stderr.decode("utf-8", "replace")
    return {c["name"]: c for c in json.loads(decode(p.stdout))["checks"]}


SERVER = []


def setUpModule():
    SERVER.append(hostile.Server())


def tearDownModule():
    SERVER.pop().close()


class HostileTest(unittest.TestCase):
    """Checks of the module's hostile server, one per engine and target."""

    @property
    def srv(self):
        return SERVER[0]

    def checks(self, names, **kw):
        return [dict(name="%s %s" % (engine, n), http=self.srv.url(host, n), **kw)
                for n in names for engine, host in ENGINES]


class TestHostileTable(HostileTest):
    def test_each_ends_in_time_bounded_and_alike(self):
        got = check_once(self.checks(EXPECT, timeout="500ms", interval="1s"))
        for name, (status, text) in EXPECT.items():
            with self.subTest(target=name):
                d, c = got["direct " + name], got["curl " + name]
                for engine, r in (("direct", d), ("curl", c)):
                    self.assertLessEqual(r["duration_ms"], 500 + SLACK_MS,
                                         "%s: %r" % (engine, r["output"]))
                    self.assertTrue(output_bounded(r["output"]),
                                    "%s: %d bytes" % (engine, len(r["output"])))
                    self.assertEqual(r["status"], status, "%s: %r" % (engine, r["output"]))
                self.assertEqual(norm(d["output"]), norm(c["output"]))
                if name in CUT:
                    self.assertRegex(d["output"], MARKER)
                if text is not None:
                    url = self.srv.url("127.0.0.1", name)
                    self.assertEqual(norm(d["output"]), "HTTP GET %s: %s" % (url, text))

    def test_slow_redirects_share_one_deadline(self):
        """Item 6: redirect chains of 235 and 150 ms hops, a redirect loop
        of 60 ms hops, three quick redirects to a server that never
        answers; timeout 500 ms: over at the deadline on each engine.
        libcurl 7.88 restarts its timer on every hop and saw the deadline
        only on a later event (605-695 ms here before the fix; the issue
        measured 654 ms, and 953 ms on the direct engine, which then handed
        libcurl a fresh timeout). With a timeout that covers it a chain
        passes."""
        names = ["chain/235/0", "chain/150/0", "chain/150/6", "loopslow", "hops/3"]
        got = check_once(self.checks(names, timeout="500ms", interval="1s") +
                         [dict(name="long " + engine, http=self.srv.url(host, "chain/100/0"),
                               timeout="3s", interval="3s") for engine, host in ENGINES])
        for name in names:
            for engine, _ in ENGINES:
                r = got["%s %s" % (engine, name)]
                with self.subTest(target=name, engine=engine):
                    self.assertEqual(r["status"], "critical")
                    self.assertIn("Operation timed out after", r["output"])
                    self.assertLessEqual(r["duration_ms"], 500 + REDIRECT_SLACK_MS)
        for engine, _ in ENGINES:
            r = got["long " + engine]
            self.assertEqual(r["status"], "passing", r["output"])
            self.assertTrue(r["output"].endswith("200 OK Output: done"), r["output"])


def http_get(url, timeout=10):
    """The body, whatever the status (/v1/health is 503 while critical)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        return e.read()




def asan_env():
    """Under a sanitizer build, a small quarantine, so that freed memory
    held back for use-after-free detection does not read as growth."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    extra = "quarantine_size_mb=1:thread_local_quarantine_size_kb=64"
    return {"ASAN_OPTIONS": (opts + ":" if opts else "") + extra}


class RoundsAgent:
    """An agent running checks every 100 ms (timeout 100 ms), with the
    API on a free port and JSON log lines."""

    def __init__(self, test, checks):
        self.test = test
        self.names = [c["name"] for c in checks]
        self.agent = hrtest.Agent({"service": {"name": "svc", "checks": checks},
                                   "agent": {"api_listen": "127.0.0.1:0",
                                             "log_format": "json"}},
                                  env=asan_env())
        test.addCleanup(self.agent.close)
        m = hrtest.wait_for(lambda: re.search(
            rb'"event":\s*"api_listening".*?"port":\s*"?(\d+)', self.log()), 10)
        test.assertTrue(m, self.log())
        self.url = "http://127.0.0.1:%s/v1/health" % m.group(1).decode()

    def log(self):
        """The log as bytes (hrtest's text reader refuses invalid UTF-8)."""
        with open(self.agent.log_path, "rb") as f:
            return f.read()

    def health(self):
        """The checks of /v1/health by name."""
        return {c["name"]: c for c in json.loads(decode(http_get(self.url)))["checks"]}

    def min_runs(self, checks):
        return min(sum(checks[n]["runs"].values()) for n in self.names)

    def sample(self, n=5):
        """(max fds, max VmRSS KiB) over n samples 100 ms apart."""
        fds, rss = [], []
        for _ in range(n):
            fds.append(proc_fds(self.agent.pid))
            rss.append(proc_rss_kib(self.agent.pid))
            time.sleep(0.1)
        return max(fds), max(rss)

    def warm_up(self, rounds, rss_slack_kib):
        """Until every check ran `rounds` times; RSS read first on every
        poll, so that a runaway agent fails here, not at gigabytes."""
        start_rss = proc_rss_kib(self.agent.pid)
        deadline = time.time() + 30
        while True:
            rss = proc_rss_kib(self.agent.pid)
            self.test.assertLessEqual(rss, start_rss + 8 * rss_slack_kib,
                                      "VmRSS %d KiB in the warm-up, %d at start"
                                      % (rss, start_rss))
            if self.min_runs(self.health()) >= rounds:
                return
            self.test.assertLess(time.time(), deadline, "no warm-up")
            time.sleep(0.2)

    def run_rounds(self, rounds, rss_slack_kib, fd_slack, timeout_ms=100):
        """Warm up 10 rounds, then `rounds` more: fds and RSS flat, every
        result in time and bounded on every poll. Returns the figures."""
        t = self.test
        if SANITIZED:
            # ASan's quarantine keeps freed memory (RSS grows with churn,
            # up to 256 MB; faultkit.SANITIZED): only a runaway is caught
            # there, leaks are LeakSanitizer's. Exact in a plain build.
            rss_slack_kib *= 16
        self.warm_up(10, rss_slack_kib)
        base_fds, base_rss = self.sample()
        start = self.min_runs(self.health())
        deadline = time.time() + 120
        while True:
            checks = self.health()
            rss = proc_rss_kib(self.agent.pid)
            # checked on every poll, so that a leak fails early, not at GBs
            t.assertLessEqual(rss, base_rss + rss_slack_kib,
                              "VmRSS %d KiB, %d after warm-up" % (rss, base_rss))
            for name in self.names:
                c = checks[name]
                t.assertLessEqual(c["duration_ms"], timeout_ms + SLACK_MS, name)
                if "output" in c:
                    t.assertTrue(output_bounded(c["output"]), name)
            if self.min_runs(checks) >= start + rounds:
                break
            t.assertLess(time.time(), deadline, "too slow: %d rounds"
                         % (self.min_runs(checks) - start))
            time.sleep(0.5)
        fds, rss = self.sample()
        t.assertLessEqual(fds, base_fds + fd_slack, "fds %d, %d after warm-up" % (fds, base_fds))
        t.assertLessEqual(rss, base_rss + rss_slack_kib, "VmRSS %d KiB, %d after warm-up" % (rss, base_rss))
        rounds_done = self.min_runs(self.health()) - start
        self.stop_clean()
        return dict(rounds=rounds_done, fds=(base_fds, fds), rss_kib=(base_rss, rss))

    def stop_clean(self):
        """SIGTERM: exit 0, and under a sanitizer build no report (leaks
        included: LeakSanitizer runs at exit)."""
        rc = self.agent.stop()
        log = self.log()
        self.test.assertFalse(b"Sanitizer" in log,
                              log[-4000:].decode("utf-8", "replace"))
        self.test.assertEqual(rc, 0, log[-2000:])


class TestHostileRounds(HostileTest):
    def test_1xx_flood_memory_bounded(self):
        """Item 3: 100 Continue forever (as fast as read, and split in
        pieces) for 200 rounds on each engine: VmRSS within 5 MiB of its
        value after warm-up."""
        a = RoundsAgent(self, self.checks(["continue", "continuesplit"],
                                          interval="100ms", timeout="100ms"))
        figures = a.run_rounds(200, rss_slack_kib=5 * 1024, fd_slack=4)
        print("1xx flood, 200 rounds: %s" % figures)

    def test_all_targets_200_rounds(self):
        """Every hostile target on each engine, 200 rounds: fd count and
        VmRSS flat (2 MiB), every result in time, every output bounded.
        Slow redirects too: there the deadline guard of the libcurl engine
        ends the runs (and its memory is checked)."""
        a = RoundsAgent(self, self.checks(hostile.HOSTILE + ["loopslow", "hops/3"],
                                          interval="100ms", timeout="100ms"))
        figures = a.run_rounds(200, rss_slack_kib=2 * 1024, fd_slack=len(a.names) // 2)
        print("all hostile targets, 200 rounds: %s" % figures)


class TestHostileJson(HostileTest):
    def test_api_and_log_lines_are_valid_utf8_json(self):
        names = ["nulstatus", "ctlstatus", "ctlheader", "utf8body", "utf8error",
                 "endless", "hugeheaders"]
        a = RoundsAgent(self, self.checks(names, interval="100ms", timeout="100ms"))
        self.assertTrue(hrtest.wait_for(lambda: a.min_runs(a.health()) >= 3, 30))
        body = http_get(a.url)
        doc = json.loads(body.decode("utf-8"))  # strict: raises on invalid UTF-8
        for c in doc["checks"]:
            self.assertTrue(output_bounded(c["output"]), c["name"])
        a.agent.stop()
        for line in a.log().splitlines():
            json.loads(line.decode("utf-8"))
        # check --json too (once.c)
        path = hrtest.write_config({"service": {"name": "svc", "checks": self.checks(
            names, timeout="500ms", interval="1s")}})
        try:
            p = hrtest.subprocess.run([hrtest.HR_BIN, "check", "-c", path, "--json"],
                                      capture_output=True, timeout=60)
        finally:
            os.unlink(path)
        json.loads(p.stdout.decode("utf-8"))


if __name__ == "__main__":
    unittest.main()
