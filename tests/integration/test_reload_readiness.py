"""A reload never blips readiness (issue 13, blocker 3): while reloads
change a passing check's interval, timeout and target, a group's quorum,
and add a group with a new check, GET /v1/health, polled without pause,
answers 200 every time, and the registry (a real etcd, watched) sees no
DELETE. A changed check keeps its status until its first new result, a
grouped check keeps its place in its group (by name) when the groups
change, and the reload logs no aggregate_status line."""
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import unittest

import etcd_harness
import hrtest
import targets
from faultkit import api_url, http


class Poller(threading.Thread):
    """GET /v1/health back to back; every answer's code."""

    def __init__(self, api):
        super().__init__(daemon=True)
        self.api = api
        self.stop_flag = threading.Event()
        self.codes = []

    def run(self):
        while not self.stop_flag.is_set():
            self.codes.append(http("GET", self.api + "/v1/health",
                                   timeout=5)[0])

    def stop(self):
        self.stop_flag.set()
        self.join(30)


@unittest.skipUnless(shutil.which(etcd_harness.ETCD), "etcd not installed")
class TestReloadKeepsReadiness(unittest.TestCase):
    def setUp(self):
        self.etcd = etcd_harness.EtcdCluster(members=1)
        self.addCleanup(self.etcd.close)
        self.target = targets.Target()
        self.addCleanup(self.target.stop)
        self.dir = tempfile.mkdtemp(prefix="hr-readiness-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.watch = self.etcd.watch("services/")
        up = "127.0.0.1:%d" % self.target.port
        self.config = {
            "service": {"name": "web", "id": "web-1",
                        "address": "127.0.0.1", "port": 8080, "checks": [
                {"name": "http", "http": self.target.url + "/status/200",
                 "interval": "3s", "timeout": "1s"},
                {"name": "tcp", "tcp": up, "interval": "3s"},
                {"name": "db-a", "tcp": up, "interval": "3s", "group": "db"},
                {"name": "db-b", "tcp": up, "interval": "3s", "group": "db"},
            ]},
            "groups": {"db": {"min_passing": 1}},
            "agent": {"api_listen": "127.0.0.1:0",
                      "state_file": os.path.join(self.dir, "state")},
            "registry": {"etcd": {"endpoints": self.etcd.endpoints,
                                  "lease_ttl": "3s"}}}
        self.agent = hrtest.Agent(self.config)
        self.addCleanup(self.agent.close)
        self.api = api_url(self.agent)
        self.assertTrue(self.agent.wait_log("event=ready status=passing", 10),
                        self.agent.log())
        self.assertIsNotNone(self.watch.wait_for(lambda e: e.type == "PUT", 10),
                             self.agent.log())

    def check(self, name):
        return next(c for c in self.config["service"]["checks"]
                    if c["name"] == name)

    def reload(self, n):
        with open(self.agent.config_path, "w") as f:
            json.dump(self.config, f)
        self.agent.proc.send_signal(signal.SIGHUP)
        self.assertTrue(hrtest.wait_for(
            lambda: self.agent.log().count("event=reload_settled") >= n, 10),
            self.agent.log()[-3000:])
        time.sleep(0.3)  # polls after the first new results too

    def test_reloads_never_answer_503(self):
        poller = Poller(self.api)
        poller.start()
        self.addCleanup(poller.stop)
        steps = [
            lambda: self.check("http").update(interval="4s"),
            lambda: self.check("http").update(timeout="2s"),
            lambda: self.check("http").update(
                http=self.target.url + "/slow/1"),
            lambda: self.check("tcp").update(interval="4s"),
            # the members' results stay with the group under a new rule
            lambda: self.config["groups"]["db"].update(min_passing=2),
            # a group added (the old one's index moves) with a new member
            lambda: (self.config.update(groups=dict(
                [("a-cache", {"min_passing": 1})],
                **self.config["groups"])),
                self.config["service"]["checks"].append(
                    {"name": "cache", "tcp": "127.0.0.1:%d" % self.target.port,
                     "group": "a-cache"})),
            lambda: self.check("db-a").update(interval="5s"),
        ]
        for n, step in enumerate(steps, 1):
            step()
            self.reload(n)
        poller.stop()
        log = self.agent.log()
        codes = poller.codes
        self.assertGreater(len(codes), 200)
        bad = [c for c in codes if c != 200]
        self.assertEqual(bad, [], "%d of %d polls not 200\n%s"
                         % (len(bad), len(codes), log[-4000:]))
        after = log[log.index("event=reload "):]
        self.assertNotIn("aggregate_status", after, after)
        self.assertNotIn('reason="timeout', after)
        self.assertIn("groups=changed", after)
        deletes = [e for e in self.watch.snapshot() if e.type == "DELETE"]
        self.assertEqual(deletes, [], log[-3000:])
        st, body = http("GET", self.api + "/v1/health")
        doc = json.loads(body)
        self.assertEqual((st, doc["output"]), (200, "5 passing"), body)
        groups = {c["name"]: c["group"] for c in doc["checks"]}
        self.assertEqual(groups, {"http": None, "tcp": None, "db-a": "db",
                                  "db-b": "db", "cache": "a-cache"})
        self.assertEqual(self.agent.stop(), 0)
        self.assertNotIn("Sanitizer", self.agent.log())


if __name__ == "__main__":
    unittest.main()
