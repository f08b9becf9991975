"""healthreg against the official etcd gRPC resolver (issue 12, section 1).

A real gRPC client (tests/go/resolverclient: etcd 3.4's
go.etcd.io/etcd/clientv3/naming/resolver, grpc-go 1.33, both from Debian's
packages, built offline by tests/support/gobuild.py) dials
etcd:///services/web/ and calls grpc.health.v1.Health/Check every 20 ms on
two tests/go/healthserver instances, each registered by its own
`healthreg run` agent, against a real etcd. The client prints every
resolver update, every subconn change and every RPC's backend as JSON;
the servers print every connection. Each step asserts what the client's
resolver saw, not only what etcd holds.

Without go or the two -dev packages the test is skipped loudly; in CI
(CI=true) that fails instead. The flip -> resolver-update latency is
printed (p50/max), never asserted."""
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import etcd_harness
import gobuild
import hrtest

TTL = 2          # the lease TTL of the agents (etcd's minimum)
FLIP_CYCLES = 6  # fail + recover each: 12 flips measured
WHY_NOT = gobuild.missing()
if WHY_NOT and gobuild.in_ci():
    raise RuntimeError("test_grpc_resolver: in CI the Go client must build "
                       "(scripts/deps.sh): " + WHY_NOT)
if WHY_NOT:
    sys.stderr.write("\n*** test_grpc_resolver SKIPPED: %s ***\n" % WHY_NOT)


class Health(ThreadingHTTPServer):
    """The HTTP target of one agent's check: answers self.code."""
    daemon_threads = True

    def __init__(self):
        self.code = 200

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(h):
                h.send_response(self.code)
                h.send_header("Content-Length", "0")
                h.send_header("Connection", "close")
                h.end_headers()

        super().__init__(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/" % self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


class Lines:
    """A child's stdout, one JSON object per line, read in a thread."""

    def __init__(self, proc):
        self.proc = proc
        self.items = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                obj = {"ev": "garbage", "line": line}
            obj["t"] = obj.get("t", 0) / 1e9
            with self.lock:
                self.items.append(obj)

    def snapshot(self, ev=None):
        with self.lock:
            return [o for o in self.items if ev is None or o["ev"] == ev]

    def count(self):
        with self.lock:
            return len(self.items)

    def wait(self, pred, timeout, start=0):
        """The first item at index >= start matching pred, or None."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                for o in self.items[start:]:
                    if pred(o):
                        return o
            if time.monotonic() > deadline or self.proc.poll() is not None:
                return None
            time.sleep(0.01)


def events(items):
    """What is not an RPC, short: ("subconn_state", "READY"), ..."""
    return [(o["ev"], o.get("state") or o.get("sc") or
             [a["md"] for a in o.get("addrs", [])]) for o in items
            if o["ev"] != "rpc"]


AGG = re.compile(r"^ts=(\S+) level=\S+ event=aggregate_status from=\S+ "
                 r"to=(\S+)", re.M)


def aggregate_time(agent, to, after):
    """When the agent logged its aggregate turning `to` (Unix time, ms),
    the first such line at or after `after` (minus the log's rounding)."""
    for m in AGG.finditer(agent.log()):
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
        t = t.replace(tzinfo=datetime.timezone.utc).timestamp()
        if m.group(2) == to and t >= after - 0.002:
            return t
    return None


def ms(values):
    return "p50 %.0f ms, max %.0f ms" % (statistics.median(values) * 1000,
                                         max(values) * 1000)


def addrs(update):
    return sorted(a["addr"] for a in update["addrs"])


@unittest.skipIf(WHY_NOT, "Go client unavailable: %s" % WHY_NOT)
@unittest.skipUnless(shutil.which(etcd_harness.ETCD), "etcd not installed")
class TestGrpcResolver(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.bins = gobuild.build()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hr-grpc-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.etcd = etcd_harness.EtcdCluster(members=1)
        self.addCleanup(self.etcd.close)
        self.watch = self.etcd.watch("services/web/")
        self.inst = {}
        for name in ("web-a", "web-b"):
            self.inst[name] = self.start_instance(name)
        self.addr_of = {n: i["addr"] for n, i in self.inst.items()}
        self.name_of = {a: n for n, a in self.addr_of.items()}

    # -- processes -------------------------------------------------------
    def spawn(self, args):
        err = open(os.path.join(self.dir, "%s-%d.err" % (
            os.path.basename(args[0]), len(os.listdir(self.dir)))), "w")
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err,
                             text=True, start_new_session=True)

        def stop():
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdout.close()
            err.close()
        self.addCleanup(stop)
        return p

    def start_instance(self, name):
        pf = os.path.join(self.dir, name + ".port")
        srv = self.spawn([self.bins["healthserver"], "-id", name,
                          "-port-file", pf])
        out = Lines(srv)
        deadline = time.monotonic() + 10
        while not os.path.exists(pf):
            self.assertIsNone(srv.poll(), "healthserver %s died" % name)
            self.assertLess(time.monotonic(), deadline, "no port file")
            time.sleep(0.02)
        with open(pf) as f:
            port = int(f.read())
        health = Health()
        self.addCleanup(health.close)
        inst = {"name": name, "port": port, "addr": "127.0.0.1:%d" % port,
                "server": srv, "conns": out, "health": health}
        inst["agent"] = self.start_agent(inst)
        return inst

    def start_agent(self, inst):
        conf = {"service": {"name": "web", "id": inst["name"],
                            "address": "127.0.0.1", "port": inst["port"],
                            "checks": [{"name": "api",
                                        "http": inst["health"].url,
                                        "interval": "200ms"}]},
                "registry": {"etcd": {"endpoints": self.etcd.endpoints,
                                      "prefix": "services/",
                                      "lease_ttl": "%ds" % TTL}}}
        a = hrtest.Agent(conf)
        self.addCleanup(a.close)
        return a

    def start_client(self, balancer):
        ep = self.etcd.endpoints[0].replace("http://", "")
        self.client = self.spawn([self.bins["resolverclient"], "-etcd", ep,
                                  "-target", "etcd:///services/web/",
                                  "-balancer", balancer,
                                  "-interval", "20ms"])
        self.cl = Lines(self.client)
        self.addCleanup(self.assert_client_sane)

    def client_stderr(self):
        out = ""
        for n in sorted(os.listdir(self.dir)):
            if n.startswith("resolverclient"):
                with open(os.path.join(self.dir, n)) as f:
                    out += f.read()
        return out

    def assert_client_sane(self):
        """Runs at cleanup: the client never panicked, every RPC worked."""
        err = self.client_stderr()
        self.assertNotIn("panic", err)
        self.assertIsNone(self.client.poll(), "client exited:\n" + err)
        failed = [o for o in self.cl.snapshot("rpc") if not o["ok"]]
        self.assertEqual(failed, [], "RPCs failed")
        self.assertGreater(len(self.cl.snapshot("rpc")), 100)

    # -- observations ----------------------------------------------------
    def wait_resolved(self, want, timeout, start=0):
        """The first resolver update (index >= start) with exactly the
        addresses of the instance names in want."""
        w = sorted(self.addr_of[n] for n in want)
        u = self.cl.wait(lambda o: o["ev"] == "resolver" and addrs(o) == w,
                         timeout, start)
        self.assertIsNotNone(u, "the resolver never saw %s; it saw %s\n%s"
                             % (want, [addrs(o) for o in
                                       self.cl.snapshot("resolver")],
                                self.logs()))
        return u

    def backends_after(self, t, n):
        """The backends of the first n RPCs logged after time t."""
        def after():
            return [o for o in self.cl.snapshot("rpc") if o["t"] > t]
        hrtest.wait_for(lambda: len(after()) >= n or
                        self.client.poll() is not None, 15)
        self.assertIsNone(self.client.poll(), "the client exited:\n" +
                          self.client_stderr()[-3000:])
        self.assertGreaterEqual(len(after()), n, "fewer than %d RPCs" % n)
        return [o.get("backend") for o in after()[:n]]

    def logs(self):
        return "\n".join("--- %s agent\n%s" % (n, i["agent"].log()[-3000:])
                         for n, i in self.inst.items())

    def conns(self, name):
        return self.inst[name]["conns"].snapshot("conn")

    def set_code(self, name, code):
        t = time.time()
        self.inst[name]["health"].code = code
        return t

    # -- the scenarios ---------------------------------------------------
    def test_round_robin_follows_healthreg(self):
        self.wait_both_put()
        self.start_client("round_robin")
        first = self.wait_resolved(["web-a", "web-b"], 10)

        # round_robin spreads the calls across both (a JSON object as
        # Metadata made it panic here: "hash of unhashable type").
        got = self.backends_after(first["t"] + 0.5, 100)
        share = got.count("web-a") / len(got)
        print("\nround_robin: %d of %d calls to web-a" %
              (got.count("web-a"), len(got)))
        self.assertTrue(0.3 <= share <= 0.7, got)
        # The default value: only Op and Addr, so no metadata in gRPC.
        self.assertEqual([a["md"] for a in first["addrs"]], [None, None])
        for e in self.watch.snapshot():
            self.assertEqual(set(json.loads(e.value)), {"Op", "Addr"})

        # A warning (HTTP 429) is still registrable and the value does not
        # change: no etcd write, no resolver update, no reconnect.
        n_ev, n_cl = len(self.watch.snapshot()), self.cl.count()
        conns_a = len(self.conns("web-a"))
        self.set_code("web-a", 429)
        self.assertTrue(self.inst["web-a"]["agent"].wait_log(
            "to=warning", 5), self.logs())
        time.sleep(1.0)
        self.set_code("web-a", 200)
        self.assertTrue(hrtest.wait_for(
            lambda: self.inst["web-a"]["agent"].log().count("to=passing")
            >= 2, 5), self.logs())
        time.sleep(0.5)
        self.assertEqual(len(self.watch.snapshot()), n_ev,
                         "a warning wrote to etcd")
        later = self.cl.snapshot()[n_cl:]
        self.assertEqual(events(later), [],
                         "the client saw a resolver or subconn change")
        self.assertEqual(len(self.conns("web-a")), conns_a,
                         "web-a saw a reconnect")
        self.assertIn("web-a", [o.get("backend") for o in later])

        # Failing (HTTP 500): the resolver drops web-a, every later call
        # goes to web-b; recovery brings web-a back. Measured per flip.
        down, up, since_check = [], [], []
        agent = self.inst["web-a"]["agent"]
        for cycle in range(FLIP_CYCLES):
            mark = self.cl.count()
            t0 = self.set_code("web-a", 500)
            gone = self.wait_resolved(["web-b"], 5, mark)
            down.append(gone["t"] - t0)
            since_check.append(gone["t"] - aggregate_time(agent, "critical",
                                                          t0))
            if cycle == 0:
                got = self.backends_after(gone["t"] + 0.05, 25)
                self.assertEqual(set(got), {"web-b"}, got)
            mark = self.cl.count()
            t0 = self.set_code("web-a", 200)
            back = self.wait_resolved(["web-a", "web-b"], 5, mark)
            up.append(back["t"] - t0)
            since_check.append(back["t"] - aggregate_time(agent, "passing",
                                                          t0))
            if cycle == 0:
                got = self.backends_after(back["t"] + 0.3, 60)
                self.assertIn("web-a", got)
                self.assertIn("web-b", got)
        print("over %d flips, the client's resolver update came: after the "
              "agent's aggregate changed %s; after the target flipped "
              "(check every 200ms) %s (removals %s, additions %s)"
              % (len(since_check), ms(since_check), ms(down + up), ms(down),
                 ms(up)))

        # SIGTERM: the agent revokes its lease, the resolver drops web-a.
        time.sleep(0.3)
        mark = self.cl.count()
        t0 = time.time()
        self.assertEqual(self.inst["web-a"]["agent"].stop(), 0)
        gone = self.wait_resolved(["web-b"], TTL + 3, mark)
        self.assertIn("etcd_lease_revoked", self.inst["web-a"]["agent"].log())
        self.assertNotIn("Sanitizer", self.inst["web-a"]["agent"].log())
        print("SIGTERM -> client resolver update: %.0f ms"
              % ((gone["t"] - t0) * 1000))
        got = self.backends_after(gone["t"] + 0.05, 25)
        self.assertEqual(set(got), {"web-b"}, got)

        # A new agent registers web-a again.
        mark = self.cl.count()
        self.inst["web-a"]["agent"] = self.start_agent(self.inst["web-a"])
        self.wait_resolved(["web-a", "web-b"], 10, mark)
        time.sleep(1.0)  # a keepalive or two

        # SIGKILL: nothing revokes the lease; the resolver drops web-a
        # when the lease expires, not before.
        mark = self.cl.count()
        t0 = time.time()
        self.inst["web-a"]["agent"].kill()
        gone = self.wait_resolved(["web-b"], TTL + 3, mark)
        print("SIGKILL -> client resolver update (lease %ds): %.0f ms"
              % (TTL, (gone["t"] - t0) * 1000))
        # The last keepalive was at most TTL/3 before the kill.
        self.assertGreater(gone["t"] - t0, TTL / 3.0,
                           "removed before the lease could expire")
        got = self.backends_after(gone["t"] + 0.05, 25)
        self.assertEqual(set(got), {"web-b"}, got)

    def wait_both_put(self):
        self.assertTrue(hrtest.wait_for(
            lambda: len([e for e in self.watch.snapshot()
                         if e.type == "PUT"]) >= 2, 10), self.logs())

    def test_pick_first_warning_and_last_address(self):
        self.wait_both_put()
        self.start_client("pick_first")
        first = self.wait_resolved(["web-a", "web-b"], 10)
        got = self.backends_after(first["t"] + 0.5, 25)
        self.assertEqual(len(set(got)), 1, got)
        used = got[0]
        other = "web-b" if used == "web-a" else "web-a"

        # A warning on the one in use: no update, no reconnect.
        n_cl, conns = self.cl.count(), len(self.conns(used))
        self.set_code(used, 429)
        self.assertTrue(self.inst[used]["agent"].wait_log("to=warning", 5))
        time.sleep(1.0)
        self.set_code(used, 200)
        time.sleep(0.5)
        later = self.cl.snapshot()[n_cl:]
        self.assertEqual(events(later), [], "the client reacted to a warning")
        self.assertEqual(len(self.conns(used)), conns, "reconnected")
        self.assertEqual({o.get("backend") for o in later}, {used})

        # It fails: pick_first moves to the other.
        mark = self.cl.count()
        self.set_code(used, 500)
        gone = self.wait_resolved([other], 5, mark)
        got = self.backends_after(gone["t"] + 0.3, 25)
        self.assertEqual(set(got), {other}, got)

        # The only address left is removed too: the resolver says so, and
        # pick_first keeps using the removed address (gRPC's choice).
        mark = self.cl.count()
        self.set_code(other, 500)
        empty = self.wait_resolved([], 5, mark)
        got = self.backends_after(empty["t"] + 0.2, 25)
        self.assertEqual(set(got), {other}, got)
        print("\npick_first: after the last key went, %d calls still "
              "answered by %s" % (len(got), other))

    def test_target_needs_the_trailing_slash(self):
        """etcd's resolver reads the target as a bare key prefix
        (etcd-io/etcd#15022): etcd:///services/web also returns
        services/web2/..., etcd:///services/web/ does not."""
        self.wait_both_put()
        self.etcd.put("services/web2/127.0.0.1:9",
                      json.dumps({"Op": 0, "Addr": "127.0.0.1:9"}))
        self.start_client("round_robin")
        self.wait_resolved(["web-a", "web-b"], 10)
        bare = Lines(self.spawn([
            self.bins["resolverclient"], "-etcd",
            self.etcd.endpoints[0].replace("http://", ""),
            "-target", "etcd:///services/web", "-interval", "1h"]))
        u = bare.wait(lambda o: o["ev"] == "resolver", 10)
        self.assertIsNotNone(u, "the bare-target client saw no update")
        self.assertIn("127.0.0.1:9", addrs(u))
        got = self.backends_after(time.time(), 110)
        self.assertEqual(set(got), {"web-a", "web-b"})
        for o in self.cl.snapshot("resolver"):
            self.assertNotIn("127.0.0.1:9", addrs(o))


if __name__ == "__main__":
    unittest.main()
