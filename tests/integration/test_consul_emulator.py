"""The healthreg binary with "registry": {"consul": ...} against the Consul
agent emulator: registration, TTL updates, drop and recovery, an agent
restarted with its state wiped, a SIGKILLed healthreg reaped through its
TTL check and deregister_critical_service_after, SIGTERM deregistration,
and ACLs (right token, wrong token, missing service:write).

Every emulator and healthreg process is stopped by PID in a cleanup, even
when a test fails. Deadlines are behaviour deadlines with margin, never
speed assertions."""
import json
import os
import sys
import tempfile
import time
import unittest

import hrtest

sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
import emuctl  # noqa: E402

TTL_S = 3.0            # check_ttl in these tests; updates every ~1 s
ROOT = "root-mgmt-token"
GOOD = "good-5ecret-token"
READONLY = "ro-5ecret-token"
WRONG = "wrong-5ecret-token"


def get_json(emu, path, token=None):
    headers = {"X-Consul-Token": token} if token else {}
    code, _, body = emuctl.request(emu, "GET", path, headers=headers, timeout=5)
    return code, (json.loads(body) if body.strip() and code == 200 else body)


class ConsulCase(unittest.TestCase):
    read_token = None

    def start_emulator(self, **flags):
        flags.setdefault("reap_min_ms", 500)
        flags.setdefault("reap_tick_ms", 100)
        emu = emuctl.start(**flags)
        self.addCleanup(emu.cleanup)
        return emu

    def start_agent(self, emu, consul=None, state="0", env=None, **service):
        """healthreg run with one exec check whose exit code is read from a
        file: 0 passing, 1 warning, 2 critical."""
        d = tempfile.mkdtemp(prefix="hr-consul-")
        self.addCleanup(lambda: [os.unlink(os.path.join(d, f)) for f in os.listdir(d)]
                        and os.rmdir(d))
        self.state_file = os.path.join(d, "state")
        self.set_state(state)
        svc = {"name": "web", "id": "web-1", "port": 8080, "tags": ["v1"],
               "meta": {"team": "core"},
               "checks": [{"name": "state", "interval": "200ms",
                           "args": ["sh", "-c", "exit $(cat %s)" % self.state_file]}]}
        svc.update(service)
        reg = {"address": emu.url, "check_ttl": "%ds" % TTL_S,
               "deregister_critical_service_after": "1s"}
        reg.update(consul or {})
        cfg = {"service": svc,
               "agent": {"enable_exec_checks": True, "shutdown_timeout": "5s"},
               "registry": {"consul": reg}}
        e = {"CONSUL_HTTP_ADDR": "", "CONSUL_HTTP_TOKEN": "",
             "CONSUL_HTTP_TOKEN_FILE": ""}
        e.update(env or {})
        agent = hrtest.Agent(cfg, extra_args=["--log-level", "debug"], env=e)
        self.addCleanup(agent.close)
        return agent

    def set_state(self, code):
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(code)
        os.rename(tmp, self.state_file)

    def services(self, emu):
        code, body = get_json(emu, "/v1/agent/services", self.read_token)
        self.assertEqual(code, 200, body)
        return body

    def check(self, emu):
        code, body = get_json(emu, "/v1/agent/checks", self.read_token)
        self.assertEqual(code, 200, body)
        return body.get("service:web-1:healthreg")

    def passing_ids(self, emu):
        code, body = get_json(emu, "/v1/health/service/web?passing", self.read_token)
        self.assertEqual(code, 200, body)
        return [e["Service"]["ID"] for e in body]

    def wait_status(self, emu, status, timeout):
        return hrtest.wait_for(lambda: (self.check(emu) or {}).get("Status") == status,
                               timeout=timeout)


class TestConsulLifecycle(ConsulCase):
    def test_healthy_critical_recovered_sigterm(self):
        emu = self.start_emulator()
        agent = self.start_agent(emu)
        # Healthy: registered, and listed by ?passing.
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=10), agent.log())
        svc = self.services(emu)["web-1"]
        self.assertEqual(svc["Service"], "web")
        self.assertEqual(svc["Port"], 8080)
        self.assertEqual(svc["Tags"], ["v1"])
        self.assertEqual(svc["Meta"], {"team": "core"})
        chk = self.check(emu)
        self.assertEqual(chk["Type"], "ttl")
        self.assertEqual(chk["Output"], "1 passing")

        # Warning: still registered, reported as warning, not "passing".
        self.set_state("1")
        self.assertTrue(self.wait_status(emu, "warning", 5), agent.log())
        self.assertEqual(self.passing_ids(emu), [])
        self.assertIn("web-1", self.services(emu))

        # Critical: deregistered (deregister_after defaults to 0s).
        self.set_state("2")
        self.assertTrue(hrtest.wait_for(lambda: "web-1" not in self.services(emu),
                                        timeout=5), agent.log())

        # Recovered: registered again, passing.
        self.set_state("0")
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=5), agent.log())

        # SIGTERM: deregistered, then a clean exit.
        self.assertEqual(agent.stop(), 0, agent.log())
        self.assertNotIn("web-1", self.services(emu))
        self.assertIn("event=consul_deregistered", agent.log())

    def test_deregister_after_keeps_a_short_critical_registered(self):
        emu = self.start_emulator()
        agent = self.start_agent(emu, consul={"deregister_after": "2s"})
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=10), agent.log())
        self.set_state("2")
        self.assertTrue(self.wait_status(emu, "critical", 5), agent.log())
        self.assertIn("web-1", self.services(emu))
        self.assertTrue(hrtest.wait_for(lambda: "web-1" not in self.services(emu),
                                        timeout=8), agent.log())

    def test_agent_restarted_wiped_is_reregistered(self):
        emu = self.start_emulator()
        agent = self.start_agent(emu)
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=10), agent.log())
        emu.restart_wiped()
        self.assertEqual(self.services(emu), {})
        # Within one update period (TTL/3 = 1 s) plus margin.
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=TTL_S / 3 + 4), agent.log())
        self.assertEqual(self.check(emu)["Output"], "1 passing")
        log = agent.log()
        self.assertIn("event=consul_registration_lost", log)
        self.assertEqual(log.count("event=consul_registered"), 2, log)

    def test_agent_down_then_back(self):
        """The Consul agent is unreachable for a while: healthreg keeps
        running, warns once, and registers again when it answers."""
        emu = self.start_emulator()
        agent = self.start_agent(emu)
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=10), agent.log())
        port = emu.port
        emu.kill()
        self.assertTrue(agent.wait_log("event=registry_unreachable backend=consul",
                                       timeout=5))
        time.sleep(1.5)
        self.assertIsNone(agent.proc.poll())
        emu = self.start_emulator(port=port)
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=5), agent.log())
        log = agent.log()
        # One line when it goes, one when it is back; retries are debug.
        self.assertEqual(log.count("event=registry_unreachable"), 1, log)
        self.assertNotIn("level=warn event=consul_unavailable", log)
        self.assertEqual(log.count("event=registry_reachable backend=consul"),
                         1, log)

    def test_sigkill_expires_ttl_and_reaper_removes(self):
        emu = self.start_emulator()
        agent = self.start_agent(emu)
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=10), agent.log())
        agent.kill()
        # The TTL check goes critical once TTL passes without an update...
        self.assertTrue(self.wait_status(emu, "critical", TTL_S + 3), emu.log_text())
        self.assertTrue(self.check(emu)["Output"].startswith(
            "TTL expired (last output before timeout follows): 1 passing"))
        # ...and the reaper removes the service after DCSA (1 s here).
        self.assertTrue(hrtest.wait_for(lambda: "web-1" not in self.services(emu),
                                        timeout=5), emu.log_text())

    def test_maintenance_is_not_touched_by_updates(self):
        """An operator's maintenance mode set on the agent stays while
        healthreg keeps updating its TTL check."""
        emu = self.start_emulator()
        agent = self.start_agent(emu)
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=10), agent.log())
        code, _, body = emuctl.request(
            emu, "PUT", "/v1/agent/service/maintenance/web-1?enable=true&reason=ops")
        self.assertEqual(code, 200, body)
        time.sleep(TTL_S / 3 + 0.5)
        code, checks = get_json(emu, "/v1/agent/checks")
        self.assertIn("_service_maintenance:web-1", checks)
        self.assertEqual(checks["service:web-1:healthreg"]["Status"], "passing")


class TestConsulAcl(ConsulCase):
    read_token = ROOT

    def acl_emulator(self):
        return self.start_emulator(acl_default_policy="deny",
                                   acl_token=[ROOT, GOOD + "=service:web:write",
                                              READONLY + "=service:web:read"])

    def assert_secret_hidden(self, agent, secret):
        self.assertNotIn(secret, agent.log())
        with open("/proc/%d/cmdline" % agent.pid, "rb") as f:
            self.assertNotIn(secret.encode(), f.read())

    def token_file(self, mode):
        fd, path = tempfile.mkstemp()
        self.addCleanup(os.unlink, path)
        os.write(fd, (GOOD + "\n").encode())
        os.close(fd)
        os.chmod(path, mode)
        return path

    def test_right_token_from_file(self):
        emu = self.acl_emulator()
        path = self.token_file(0o600)
        agent = self.start_agent(emu, consul={"token_file": path})
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=10), agent.log())
        self.assert_secret_hidden(agent, GOOD)
        self.assertEqual(agent.stop(), 0)
        self.assertEqual(self.services(emu), {})

    def test_token_file_readable_by_others_refused(self):
        # Was a consul_token_file_mode warning only; now refused like ssh
        # refuses a private key, unless HR_ALLOW_INSECURE_SECRETS=1.
        emu = self.acl_emulator()
        path = self.token_file(0o644)
        agent = self.start_agent(emu, consul={"token_file": path})
        agent.proc.wait(10)
        self.assertEqual(agent.proc.returncode, 78, agent.log())
        log = agent.log()
        self.assertIn("registry.consul.token_file", log)
        self.assertIn(path, log)
        self.assertIn("permissions 0644 are too open", log)
        self.assertEqual(self.services(emu), {})
        agent = self.start_agent(emu, consul={"token_file": path},
                                 env={"HR_ALLOW_INSECURE_SECRETS": "1"})
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=10), agent.log())
        self.assertEqual(agent.stop(), 0)

    def test_wrong_token_logged_once_no_crash(self):
        emu = self.acl_emulator()
        agent = self.start_agent(emu, env={"CONSUL_HTTP_TOKEN": WRONG})
        # An unknown token is told apart from a missing permission.
        self.assertTrue(agent.wait_log("event=consul_token_not_found", timeout=10))
        # Retries happen about once per TTL; wait for at least one more.
        time.sleep(TTL_S + 1)
        self.assertIsNone(agent.proc.poll(), agent.log())
        log = agent.log()
        self.assertEqual(log.count("event=consul_token_not_found"), 1, log)
        self.assertNotIn("event=consul_forbidden", log)
        self.assertIn("a token the agent knows", log)
        self.assertIn("ACL not found", log)
        self.assert_secret_hidden(agent, WRONG)
        self.assertEqual(self.services(emu), {})
        self.assertGreaterEqual(emu.log_text().count("/v1/agent/service/register"), 2)
        self.assertEqual(agent.stop(), 0)

    def test_missing_service_write(self):
        emu = self.acl_emulator()
        agent = self.start_agent(emu, env={"CONSUL_HTTP_TOKEN": READONLY})
        self.assertTrue(agent.wait_log("event=consul_forbidden", timeout=10))
        log = agent.log()
        self.assertIn("Permission denied", log)
        self.assertIn("needs=\"service:write on the service\"", log)
        self.assert_secret_hidden(agent, READONLY)
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
