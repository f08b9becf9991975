"""`healthreg check` explains how each row counts (issue 13): the table has
each check's group and on_failure and a line per group with its quorum,
so that "5 critical rows -> aggregate warning" explains itself; a ttl
check without a declared status gets no push during `check`: it is
listed and not counted (not unknown -> critical -> exit 2)."""
import json
import os
import unittest

import hrtest

CONFIG = {"service": {"name": "web", "checks": [
    {"name": "api", "tcp": "127.0.0.1:1", "on_failure": "warning"},
    {"name": "cache", "tcp": "127.0.0.1:1", "on_failure": "ignore"},
    {"name": "hb", "ttl": "30s"},
    {"name": "db-a", "tcp": "127.0.0.1:1", "group": "db"},
    {"name": "db-b", "tcp": "127.0.0.1:1", "group": "db"}]},
    "groups": {"db": {"min_passing": 1, "on_failure": "warning"}}}


class TestCheckTable(unittest.TestCase):
    def run_check(self, config, *extra):
        path = hrtest.write_config(config)
        self.addCleanup(os.unlink, path)
        return hrtest.run(["check", "-c", path] + list(extra))

    def test_rows_say_how_they_count(self):
        p = self.run_check(CONFIG)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0].split(),
                         ["NAME", "KIND", "STATUS", "GROUP", "ON_FAILURE",
                          "DURATION", "OUTPUT"])
        rows = {l.split()[0]: l.split()[1:5] for l in lines[1:6]}
        self.assertEqual(rows["api"], ["tcp", "critical", "-", "warning"])
        self.assertEqual(rows["cache"], ["tcp", "critical", "-", "ignore"])
        self.assertEqual(rows["hb"], ["ttl", "unknown", "-", "not"])
        self.assertEqual(rows["db-a"], ["tcp", "critical", "db", "warning"])
        self.assertIn("group db: 0 of 2 passing, min_passing 1, "
                      "on_failure warning: warning", p.stdout)
        self.assertIn("ttl checks get no pushes during `check`: listed, "
                      "not counted", p.stdout)
        self.assertIn("aggregate: warning", p.stdout)

    def test_json_says_it_too(self):
        p = self.run_check(CONFIG, "--json")
        self.assertEqual(p.returncode, 1, p.stderr)
        doc = json.loads(p.stdout)
        counted = {c["name"]: c["counted"] for c in doc["checks"]}
        self.assertEqual(counted, {"api": True, "cache": True, "hb": False,
                                   "db-a": True, "db-b": True})
        self.assertEqual(doc["groups"], [
            {"name": "db", "min_passing": 1, "members": 2, "passing": 0,
             "on_failure": "warning", "result": "warning"}])

    def test_ttl_alone_is_not_unknown_critical(self):
        p = self.run_check({"service": {"name": "w", "checks": [
            {"name": "hb", "ttl": "30s"}]}})
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("aggregate: passing", p.stdout)
        # A declared initial status is what `run` starts with: it counts.
        p = self.run_check({"service": {"name": "w", "checks": [
            {"name": "hb", "ttl": "30s", "status": "critical"}]}})
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main()
