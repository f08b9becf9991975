"""The healthreg binary with "registry": {"etcd": ...} against a real etcd:
register / deregister / re-register seen by a watcher, revoke on SIGTERM,
lease expiry after SIGKILL, credentials from the environment (issue: etcd
registry backend)."""
import json
import os
import shutil
import tempfile
import time
import unittest

import etcd_harness
import hrtest
import targets

TTL = 3


def agent_config(endpoints, url, **etcd):
    conf = {"endpoints": endpoints, "lease_ttl": "%ds" % TTL}
    conf.update(etcd)
    return {"service": {"name": "echo", "id": "echo-1",
                        "address": "127.0.0.1", "port": 9001,
                        "tags": ["v1"], "meta": {"zone": "a"},
                        "checks": [{"name": "api", "http": url,
                                    "interval": "200ms",
                                    "timeout": "150ms"}]},
            "registry": {"etcd": conf}}


@unittest.skipUnless(shutil.which(etcd_harness.ETCD), "etcd not installed")
class TestEtcdAgent(unittest.TestCase):
    def setUp(self):
        self.etcd = etcd_harness.EtcdCluster(members=1)
        self.addCleanup(self.etcd.close)
        self.dir = tempfile.mkdtemp(prefix="hr-etcd-agent-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.toggle = os.path.join(self.dir, "failing")
        self.target = targets.Target(toggle_file=self.toggle)
        self.addCleanup(self.target.stop)
        self.watch = self.etcd.watch("services/")

    def start_agent(self, env=None, **etcd):
        a = hrtest.Agent(agent_config(self.etcd.endpoints,
                                      self.target.url + "/toggle", **etcd),
                         env=env)
        self.addCleanup(a.close)
        return a

    def test_lifecycle_and_revoke_on_sigterm(self):
        a = self.start_agent(value_format="document")
        put = self.watch.wait_for(lambda e: e.type == "PUT", 10)
        self.assertIsNotNone(put, a.log())
        v = json.loads(put.value)
        self.assertEqual(v["Op"], 0)
        self.assertEqual(v["Addr"], "127.0.0.1:9001")
        self.assertEqual(v["Metadata"]["status"], "passing")
        self.assertEqual(v["Metadata"]["tags"], ["v1"])
        self.assertEqual(v["Metadata"]["meta"], {"zone": "a"})

        open(self.toggle, "w").close()
        gone = self.watch.wait_for(lambda e: e.type == "DELETE", 5, start=1)
        self.assertIsNotNone(gone, a.log())
        # The watcher can see the DELETE before the agent logs the reply.
        self.assertTrue(a.wait_log("etcd_deregistered", 3), a.log())

        os.unlink(self.toggle)
        back = self.watch.wait_for(lambda e: e.type == "PUT", 5, start=2)
        self.assertIsNotNone(back, a.log())

        t0 = time.monotonic()
        self.assertEqual(a.stop(), 0, a.log())
        revoked = self.watch.wait_for(lambda e: e.type == "DELETE", 3, start=3)
        self.assertIsNotNone(revoked, a.log())
        # Revoked, not expired: far inside the lease TTL.
        self.assertLess(revoked.t - t0, 1.0)
        self.assertIn("etcd_lease_revoked", a.log())
        self.assertEqual(len(self.watch.snapshot()), 4)

    def test_default_value_is_grpc_and_replaces_an_old_key(self):
        """The default value holds only Op and Addr. A key a previous
        version left (document value, its own lease, agent killed) is
        overwritten by the first put and moved to the new lease: when the
        old lease ends, the key stays."""
        key = "services/echo/127.0.0.1:9001"
        old_lease = self.etcd.grant(30)
        self.etcd.put(key, json.dumps({"Op": 0, "Addr": "127.0.0.1:9001",
                                       "Metadata": {"status": "passing"}}),
                      lease=old_lease)
        a = self.start_agent()
        put = self.watch.wait_for(lambda e: e.type == "PUT", 10, start=1)
        self.assertIsNotNone(put, a.log())
        self.assertEqual(json.loads(put.value),
                         {"Op": 0, "Addr": "127.0.0.1:9001"})
        self.assertNotEqual(str(put.lease), str(old_lease))
        st, _ = self.etcd.call("/v3/lease/revoke", {"ID": str(old_lease)})
        self.assertEqual(st, 200)
        time.sleep(0.5)
        kv = self.etcd.get(key)
        self.assertIsNotNone(kv, a.log())
        self.assertEqual((kv["value"], str(kv["lease"])),
                         (put.value, str(put.lease)))
        self.assertEqual(len(self.watch.snapshot()), 2)

    def test_reload_keeps_the_one_lease(self):
        """A reload that rebuilds the backend (the tags changed) with the
        same connection settings stays on the agent's one lease: the new
        backend takes the key over without a write, no second lease is
        granted, and the key stays under the lease past its TTL (issue 14:
        one lease per agent)."""
        import signal
        a = self.start_agent()
        put = self.watch.wait_for(lambda e: e.type == "PUT", 10)
        self.assertIsNotNone(put, a.log())
        lease0 = str(put.lease)
        self.assertEqual(self.etcd.leases(), [lease0])
        with open(a.config_path) as f:
            conf = json.load(f)
        conf["service"]["tags"] = ["v2"]
        with open(a.config_path, "w") as f:
            json.dump(conf, f)
        a.proc.send_signal(signal.SIGHUP)
        self.assertTrue(hrtest.wait_for(
            lambda: "event=reload_settled" in a.log(), 10), a.log())
        self.assertIn("registry=recreated", a.log())
        time.sleep(0.5)
        self.assertEqual(self.etcd.leases(), [lease0], a.log())
        time.sleep(TTL + 0.5)
        self.assertEqual(self.etcd.leases(), [lease0], a.log())
        kv = self.etcd.get("services/echo/127.0.0.1:9001")
        self.assertIsNotNone(kv, a.log())
        self.assertEqual(str(kv["lease"]), lease0)
        self.assertEqual(len(self.watch.snapshot()), 1,
                         self.watch.snapshot())
        self.assertEqual(a.log().count("event=etcd_lease_granted"), 1)

    def test_sigkill_leaves_key_to_lease_expiry(self):
        a = self.start_agent()
        self.assertIsNotNone(self.watch.wait_for(lambda e: e.type == "PUT", 10),
                             a.log())
        time.sleep(1.2)
        t0 = time.monotonic()
        a.kill()
        gone = self.watch.wait_for(lambda e: e.type == "DELETE", TTL + 2, start=1)
        self.assertIsNotNone(gone)
        self.assertLessEqual(gone.t - t0, TTL + 1.0)

    def test_credentials_from_environment_never_logged(self):
        self.etcd.enable_auth("agent", "env-s3cret", "services/")
        a = self.start_agent(env={"ETCD_USERNAME": "agent",
                                  "ETCD_PASSWORD": "env-s3cret"})
        put = self.watch.wait_for(lambda e: e.type == "PUT", 10)
        self.assertIsNotNone(put, a.log())
        with open("/proc/%d/cmdline" % a.pid, "rb") as f:
            self.assertNotIn(b"env-s3cret", f.read())
        self.assertEqual(a.stop(), 0)
        self.assertIsNotNone(
            self.watch.wait_for(lambda e: e.type == "DELETE", 3, start=1))
        self.assertTrue(a.wait_log("etcd_authenticated", 3), a.log())
        self.assertNotIn("env-s3cret", a.log())

    def test_bad_config_names_the_path(self):
        path = hrtest.write_config(agent_config(
            self.etcd.endpoints, self.target.url, lease_ttl="5x",
            password="inline"))
        self.addCleanup(os.unlink, path)
        p = hrtest.run(["validate", "-c", path])
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn('registry.etcd.lease_ttl: "5x" is not a duration',
                      p.stderr)
        self.assertIn("registry.etcd.password: passwords are not accepted",
                      p.stderr)

    def test_validate_rejects_prefixes_that_glue_segments(self):
        for prefix in ("services", "", "/", "services//", "//services/"):
            path = hrtest.write_config(agent_config(
                self.etcd.endpoints, self.target.url, prefix=prefix))
            self.addCleanup(os.unlink, path)
            p = hrtest.run(["validate", "-c", path])
            self.assertEqual(p.returncode, 78, (prefix, p.stderr))
            self.assertIn('registry.etcd.prefix: "%s" must be one or more '
                          'non-empty segments' % prefix, p.stderr)
        for prefix in ("services/", "/services/", "a/b/"):
            path = hrtest.write_config(agent_config(
                self.etcd.endpoints, self.target.url, prefix=prefix))
            self.addCleanup(os.unlink, path)
            p = hrtest.run(["validate", "-c", path])
            self.assertEqual(p.returncode, 0, (prefix, p.stderr))


if __name__ == "__main__":
    unittest.main()
