"""Maintenance survives a restart whatever its reason (issue 11, item 4).

A reason is at most 1024 bytes: the API and `healthreg maint enable
--reason` refuse longer ones; a reason of that length with every kind of
character is restored after a restart; a state file written by hand with
a 20 KiB reason (once unreadable: 8 KiB buffer) keeps the agent in
maintenance."""
import json
import os
import shutil
import tempfile
import unittest
import urllib.parse

import hrtest
from test_operations import api_port, http

MAX = 1024


def hostile_reason():
    """MAX bytes: every character from 0x01 to 0x7f, then 2-, 3- and
    4-byte UTF-8, padded with backslashes."""
    r = "".join(chr(i) for i in range(1, 0x80))
    mb = ["\u00e9", "\u20ac", "\U0001F600"]
    i = 0
    while len((r + mb[i % 3]).encode()) <= MAX:
        r += mb[i % 3]
        i += 1
    r += "\\" * (MAX - len(r.encode()))
    assert len(r.encode()) == MAX
    return r


class TestMaintenanceReason(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hr-maint-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.state = os.path.join(self.dir, "state.json")
        self.config = {"service": {"name": "web", "id": "web-1", "checks": [
            {"name": "hb", "ttl": "60s", "status": "passing"}]},
            "agent": {"api_listen": "127.0.0.1:0", "state_file": self.state}}

    def start(self):
        a = hrtest.Agent(self.config)
        self.addCleanup(a.close)
        return a, "http://127.0.0.1:%d" % api_port(a)

    def maint(self, url):
        c, b, _ = http("GET", url + "/v1/maintenance")
        self.assertEqual(c, 200, b)
        return json.loads(b)

    def test_api_refuses_a_reason_over_the_limit(self):
        a, url = self.start()
        q = urllib.parse.quote("x" * (MAX + 1))
        c, b, _ = http("PUT", url + "/v1/maintenance?enable=true&reason=" + q)
        self.assertEqual(c, 400, b)
        self.assertIn("too long", b)
        self.assertEqual(self.maint(url), {"enabled": False})
        self.assertIn("event=maintenance_rejected", a.log())
        self.assertFalse(os.path.exists(self.state))

    def test_cli_refuses_a_reason_over_the_limit(self):
        a, url = self.start()
        p = hrtest.run(["maint", "enable", "--reason", "x" * (MAX + 1),
                        "--api", url[len("http://"):]])
        self.assertEqual(p.returncode, 64, p.stderr)
        self.assertIn("--reason", p.stderr)
        self.assertIn("1024", p.stderr)
        self.assertEqual(self.maint(url), {"enabled": False})

    def test_max_reason_of_every_kind_survives_a_restart(self):
        reason = hostile_reason()
        a, url = self.start()
        p = hrtest.run(["maint", "enable", "--reason", reason,
                        "--api", url[len("http://"):]])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.maint(url), {"enabled": True, "reason": reason})
        self.assertEqual(a.stop(), 0)
        a, url = self.start()
        self.assertEqual(self.maint(url), {"enabled": True, "reason": reason},
                         a.log()[-2000:])
        self.assertIn("event=maintenance_restored", a.log())
        c, b, _ = http("GET", url + "/v1/health")
        self.assertEqual(c, 503, b)

    def test_hand_written_20k_reason_keeps_maintenance(self):
        reason = "\u20ac" * (20 * 1024 // 3) + "\"\\\n"
        with open(self.state, "w") as f:
            json.dump({"maintenance": {"enabled": True, "reason": reason}}, f)
        a, url = self.start()
        m = self.maint(url)
        self.assertTrue(m["enabled"], a.log()[-2000:])
        self.assertEqual(m["reason"], "\u20ac" * (MAX // 3))  # cut whole
        self.assertIn("event=state_reason_truncated", a.log())
        self.assertNotIn("state_unreadable", a.log())
        self.assertEqual(http("GET", url + "/v1/health")[0], 503)

    def test_garbage_state_file_keeps_maintenance_loudly(self):
        with open(self.state, "w") as f:
            f.write('{"maintenance": {"enabled": tru')
        a, url = self.start()
        m = self.maint(url)
        self.assertTrue(m["enabled"], a.log()[-2000:])
        self.assertIn("unreadable", m["reason"])
        self.assertIn("level=error event=state_unreadable", a.log())
        # The operator ends it, and the file is whole again.
        c, b, _ = http("PUT", url + "/v1/maintenance?enable=false")
        self.assertEqual(c, 200, b)
        with open(self.state) as f:
            self.assertFalse(json.load(f)["maintenance"]["enabled"])


if __name__ == "__main__":
    unittest.main()
