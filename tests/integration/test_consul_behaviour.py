"""healthreg against the Consul emulator where a real agent, read from its
source (hashicorp/consul agent/agent.go, agent/agent_endpoint.go,
agent/local/state.go, agent/checks/check.go, agent/structs), behaves in a
way that once broke it (issue 12, section 3):

- the reap loop: a service kept registered while critical is reaped by
  deregister_critical_service_after and registered again, for ever;
- maintenance lost on (re-)registration, and an instance in maintenance
  briefly passing;
- a revoked token: 403 "ACL not found" for ever, no recovery after the
  token file is rotated;
- a config Consul refuses (service meta, address) accepted by validate;
- check_output_max_size: the agent's limit, and whole characters;
- an agent restarted with its data_dir: no duplicate, the true status
  within one update.

The emulator logs a [HEALTH] line for every change of a service's
aggregate status (its checks plus node checks), so "never passing" is
checked on the complete history, not only by a watcher that polls.
Every process is stopped by PID in a cleanup."""
import json
import os
import re
import tempfile
import threading
import time
import unittest

import hrtest

from test_consul_emulator import ConsulCase, get_json  # sets up the emuctl path

import emuctl  # noqa: E402

TTL_S = 3.0
ROOT = "root-mgmt-token"


def health_history(emu, sid="web-1"):
    """The emulator's [HEALTH] lines for sid: aggregate statuses in order."""
    out = []
    for line in emu.log_text().splitlines():
        m = re.search(r"\[HEALTH\] service=(\S+) status=(\S+)", line)
        if m and m.group(1) == sid:
            out.append(m.group(2))
    return out


class Watcher(threading.Thread):
    """Polls the health endpoints as a load balancer would, and remembers
    every time the instance was listed as passing."""

    def __init__(self, emu, token=None):
        threading.Thread.__init__(self, daemon=True)
        self.emu = emu
        self.token = token
        self.stop_ev = threading.Event()
        self.polls = 0
        self.passing_seen = []

    def run(self):
        while not self.stop_ev.is_set():
            try:
                code, body = get_json(self.emu, "/v1/health/service/web?passing", self.token)
                if code == 200 and any(e["Service"]["ID"] == "web-1" for e in body):
                    self.passing_seen.append(("catalog", time.time()))
                code, _, _ = emuctl.request(self.emu, "GET",
                                            "/v1/agent/health/service/id/web-1", timeout=5)
                if code == 200:
                    self.passing_seen.append(("agent", time.time()))
                self.polls += 1
            except OSError:
                pass
            time.sleep(0.01)

    def stop(self):
        self.stop_ev.set()
        self.join(10)


class BehaviourCase(ConsulCase):
    def start_agent_with(self, emu, consul=None, agent=None, state="0", service=None,
                         check_name="state"):
        """Like ConsulCase.start_agent, with an agent section of our own
        (a private state_file), the service overridable and a consul key
        given as None left out."""
        d = tempfile.mkdtemp(prefix="hr-consul-b-")
        self.addCleanup(lambda: [os.unlink(os.path.join(d, f)) for f in os.listdir(d)]
                        and os.rmdir(d))
        self.dir = d
        self.state_file = os.path.join(d, "state")
        self.set_state(state)
        svc = {"name": "web", "id": "web-1", "port": 8080, "tags": ["v1"],
               # timeout above the interval (a warning): a loaded machine
               # (the sanitizer pass) must not time the shell out, which
               # would deregister, maintenance check and all
               "checks": [{"name": check_name, "interval": "200ms",
                           "timeout": "3s",
                           "args": ["sh", "-c", "exit $(cat %s)" % self.state_file]}]}
        svc.update(service or {})
        reg = {"address": emu.url, "check_ttl": "%ds" % TTL_S,
               "deregister_critical_service_after": "1s"}
        reg.update(consul or {})
        reg = {k: v for k, v in reg.items() if v is not None}
        ag = {"enable_exec_checks": True, "shutdown_timeout": "5s",
              "state_file": os.path.join(d, "hr.state"), "api_listen": ""}
        ag.update(agent or {})
        cfg = {"service": svc, "agent": ag, "registry": {"consul": reg}}
        env = {"CONSUL_HTTP_ADDR": "", "CONSUL_HTTP_TOKEN": "", "CONSUL_HTTP_TOKEN_FILE": ""}
        a = hrtest.Agent(cfg, extra_args=["--log-level", "debug"], env=env)
        self.addCleanup(a.close)
        return a

    def validate(self, cfg):
        path = hrtest.write_config(cfg)
        self.addCleanup(os.unlink, path)
        return hrtest.run(["validate", "-c", path])

    def base_config(self, consul=None, service=None):
        svc = {"name": "web", "id": "web-1",
               "checks": [{"name": "hb", "ttl": "60s", "status": "passing"}]}
        svc.update(service or {})
        reg = {"address": "http://127.0.0.1:1"}
        reg.update(consul or {})
        return {"service": svc, "registry": {"consul": reg}}


# ---------------------------------------------------------------------------
class TestReapLoop(BehaviourCase):
    """Consul reaps a service whose check stays critical for DCSA (agent.go
    reapServicesInternal); healthreg then gets 404 and registers again."""

    def test_validate_refuses_a_dcsa_that_would_reap_what_is_kept(self):
        p = self.validate(self.base_config({
            "register_when": ["passing", "warning", "critical"],
            "deregister_critical_service_after": "1m"}))
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("registry.consul.register_when", p.stderr)
        self.assertIn("deregister_critical_service_after", p.stderr)
        p = self.validate(self.base_config({
            "deregister_after": "2m", "deregister_critical_service_after": "1m"}))
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("registry.consul.deregister_after", p.stderr)
        self.assertIn("deregister_critical_service_after (1m)", p.stderr)

    def test_run_refuses_the_loop_instead_of_cycling(self):
        """The reproduction: register_when with critical and a 1 s DCSA
        (the emulator's minimum shrunk to 0.5 s) used to cycle
        reap -> 404 -> register every ~1.5 s. Now the agent refuses to
        start, naming both keys, and nothing is registered."""
        emu = self.start_emulator()
        agent = self.start_agent_with(emu, consul={
            "register_when": ["passing", "warning", "critical"]}, state="2")
        agent.proc.wait(10)
        self.assertNotEqual(agent.proc.returncode, 0, agent.log())
        self.assertIn("registry.consul.register_when", agent.log())
        self.assertEqual(self.services(emu), {})

    def test_critical_kept_registered_without_dcsa_is_never_reaped(self):
        """Without an explicit DCSA and with critical in register_when, no
        DCSA is sent: the critical service stays, no registration is lost."""
        emu = self.start_emulator()
        agent = self.start_agent_with(emu, consul={
            "register_when": ["passing", "warning", "critical"],
            "deregister_critical_service_after": None}, state="2")
        self.assertTrue(self.wait_status(emu, "critical", 10), agent.log())
        # 4 s: DCSA 1 s (min 0.5 s, tick 0.1 s) would have reaped it twice.
        time.sleep(4)
        self.assertIn("web-1", self.services(emu))
        self.assertNotIn("consul_registration_lost", agent.log())
        self.assertNotIn("deregistered service with critical health", emu.log_text())


# ---------------------------------------------------------------------------
class TestMaintenance(BehaviourCase):
    def maint_checks(self, emu):
        code, checks = get_json(emu, "/v1/agent/checks")
        self.assertEqual(code, 200)
        return [c for c in checks if c.startswith("_service_maintenance:")]

    def test_operator_maintenance_survives_a_healthreg_restart(self):
        """`consul maint -enable -service web-1` stays when healthreg
        starts again and registers (no replace-existing-checks)."""
        emu = self.start_emulator()
        a = self.start_agent_with(emu)
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=10), a.log())
        code, _, body = emuctl.request(
            emu, "PUT", "/v1/agent/service/maintenance/web-1?enable=true&reason=ops")
        self.assertEqual(code, 200, body)
        mark = len(health_history(emu))
        a.kill()  # crashed: the service stays on the agent
        watcher = Watcher(emu)
        watcher.start()
        b = self.start_agent_with(emu)
        self.assertTrue(b.wait_log("event=consul_registered", 10), b.log())
        # Two refreshes after the registration.
        time.sleep(TTL_S / 3 * 2 + 0.5)
        watcher.stop()
        self.assertEqual(self.maint_checks(emu), ["_service_maintenance:web-1"], b.log())
        self.assertEqual(self.check(emu)["Output"], "1 passing")
        self.assertNotIn("passing", health_history(emu)[mark:], emu.log_text()[-3000:])
        self.assertGreater(watcher.polls, 5)
        self.assertEqual(watcher.passing_seen, [])

    def own_maintenance_state(self):
        d = tempfile.mkdtemp(prefix="hr-consul-m-")
        self.addCleanup(lambda: [os.unlink(os.path.join(d, f)) for f in os.listdir(d)]
                        and os.rmdir(d))
        path = os.path.join(d, "hr.state")
        with open(path, "w") as f:
            json.dump({"maintenance": {"enabled": True, "reason": "deploy"}}, f)
        return path

    def test_own_maintenance_is_never_passing_from_the_start(self):
        """healthreg starting in maintenance: the check registers critical
        and the maintenance check lands before any update."""
        emu = self.start_emulator()
        watcher = Watcher(emu)
        watcher.start()
        a = self.start_agent_with(emu, agent={"state_file": self.own_maintenance_state()})
        self.assertTrue(a.wait_log("event=consul_maintenance", 10), a.log())
        self.assertTrue(hrtest.wait_for(
            lambda: (self.check(emu) or {}).get("Output") == "1 passing", timeout=10), a.log())
        time.sleep(TTL_S / 3 + 0.3)
        watcher.stop()
        self.assertEqual(self.maint_checks(emu), ["_service_maintenance:web-1"])
        hist = health_history(emu)
        self.assertNotIn("passing", hist, emu.log_text()[-3000:])
        self.assertIn("maintenance", hist)
        self.assertEqual(watcher.passing_seen, [])

    def test_own_maintenance_is_never_passing_after_an_agent_wipe(self):
        emu = self.start_emulator()
        a = self.start_agent_with(emu, agent={"state_file": self.own_maintenance_state()})
        self.assertTrue(hrtest.wait_for(
            lambda: (self.check(emu) or {}).get("Output") == "1 passing", timeout=10), a.log())
        emu.restart_wiped()
        self.assertTrue(a.wait_log("event=consul_registration_lost", 10), a.log())
        self.assertTrue(hrtest.wait_for(
            lambda: (self.check(emu) or {}).get("Output") == "1 passing", timeout=10), a.log())
        time.sleep(0.5)
        hist = health_history(emu)
        self.assertNotIn("passing", hist, emu.log_text()[-3000:])
        self.assertEqual(self.maint_checks(emu), ["_service_maintenance:web-1"])


# ---------------------------------------------------------------------------
class TestTokenRotation(BehaviourCase):
    read_token = ROOT

    def acl_emulator(self):
        return self.start_emulator(acl_default_policy="deny", acl_token=[ROOT], data_dir=True)

    def stored_token(self, emu):
        """The token the agent keeps with the service (persistedService)."""
        d = os.path.join(emu.data_dir, "services")
        (name,) = [n for n in os.listdir(d) if not n.endswith(".tmp")]
        with open(os.path.join(d, name)) as f:
            return json.load(f)["Token"]

    def create_token(self, emu, secret, service="web"):
        body = {"SecretID": secret, "Description": "healthreg web-1"}
        if service:
            body["ServiceIdentities"] = [{"ServiceName": service}]
        code, _, out = emuctl.request(emu, "PUT", "/v1/acl/token", json.dumps(body),
                                      headers={"X-Consul-Token": ROOT})
        self.assertEqual(code, 200, out)
        return json.loads(out)["AccessorID"]

    def write_token(self, path, secret):
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, (secret + "\n").encode())
        os.close(fd)
        os.rename(tmp, path)

    def test_revoked_token_then_rotated_file_recovers(self):
        emu = self.acl_emulator()
        acc = self.create_token(emu, "tok-one-5ecret")
        d = tempfile.mkdtemp(prefix="hr-consul-t-")
        path = os.path.join(d, "token")
        self.addCleanup(lambda: [os.unlink(os.path.join(d, f)) for f in os.listdir(d)]
                        and os.rmdir(d))
        self.write_token(path, "tok-one-5ecret")
        a = self.start_agent_with(emu, consul={"token_file": path})
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=10), a.log())
        # Revoked: the agent knows the token no more.
        code, _, body = emuctl.request(emu, "DELETE", "/v1/acl/token/" + acc,
                                       headers={"X-Consul-Token": ROOT})
        self.assertEqual(code, 200, body)
        self.assertTrue(a.wait_log("event=consul_token_not_found", 10), a.log())
        self.assertNotIn("event=consul_forbidden", a.log())
        # Meanwhile the TTL expires and Consul reaps the service.
        self.assertTrue(hrtest.wait_for(lambda: "web-1" not in self.services(emu),
                                        timeout=TTL_S + 10), emu.log_text()[-2000:])
        # Rotated: a new token in the file is found on the next 403, and
        # the reaped service is registered again, with the new token.
        self.create_token(emu, "tok-two-5ecret")
        self.write_token(path, "tok-two-5ecret")
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=20), a.log()[-3000:])
        # The emulator holds the registration before the agent has read
        # the answer and logged it.
        self.assertTrue(hrtest.wait_for(
            lambda: a.log().count("event=consul_registered") >= 2,
            timeout=5), a.log())
        log = a.log()
        self.assertIn("event=consul_token_reloaded", log)
        self.assertEqual(log.count("event=consul_registered"), 2, log)
        self.assertEqual(self.stored_token(emu), "tok-two-5ecret")
        self.assertNotIn("tok-one-5ecret", log)
        self.assertNotIn("tok-two-5ecret", log)

    def test_permission_denied_is_told_apart_and_recovers_after_rotation(self):
        emu = self.acl_emulator()
        self.create_token(emu, "tok-db-5ecret", service="db")  # no right on web
        d = tempfile.mkdtemp(prefix="hr-consul-t-")
        path = os.path.join(d, "token")
        self.addCleanup(lambda: [os.unlink(os.path.join(d, f)) for f in os.listdir(d)]
                        and os.rmdir(d))
        self.write_token(path, "tok-db-5ecret")
        a = self.start_agent_with(emu, consul={"token_file": path})
        self.assertTrue(a.wait_log("event=consul_forbidden", 10), a.log())
        self.assertIn("Permission denied", a.log())
        self.assertNotIn("event=consul_token_not_found", a.log())
        self.create_token(emu, "tok-web-5ecret")
        self.write_token(path, "tok-web-5ecret")
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=20), a.log()[-3000:])
        self.assertIn("event=consul_token_reloaded", a.log())

    def test_rotation_without_revocation_reregisters_with_the_new_token(self):
        """A token rotated while the old one still works: nothing to see
        until a 403; then (old token deleted) the service is registered
        again at once, before Consul reaps it, carrying the new token."""
        emu = self.acl_emulator()
        acc = self.create_token(emu, "tok-old-5ecret")
        d = tempfile.mkdtemp(prefix="hr-consul-t-")
        path = os.path.join(d, "token")
        self.addCleanup(lambda: [os.unlink(os.path.join(d, f)) for f in os.listdir(d)]
                        and os.rmdir(d))
        self.write_token(path, "tok-old-5ecret")
        a = self.start_agent_with(emu, consul={"token_file": path})
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=10), a.log())
        self.create_token(emu, "tok-new-5ecret")
        self.write_token(path, "tok-new-5ecret")
        emuctl.request(emu, "DELETE", "/v1/acl/token/" + acc, headers={"X-Consul-Token": ROOT})
        self.assertTrue(a.wait_log("event=consul_token_reloaded", 10), a.log())
        self.assertTrue(hrtest.wait_for(lambda: self.stored_token(emu) == "tok-new-5ecret",
                                        timeout=10), a.log())
        self.assertEqual(self.passing_ids(emu), ["web-1"])
        self.assertNotIn("deregistered service with critical health", emu.log_text())


# ---------------------------------------------------------------------------
class TestValidateAsConsul(BehaviourCase):
    """What the register handler would refuse (400 Invalid Service Meta,
    400 Invalid service address) is refused by validate, naming the field."""

    def test_meta_rules(self):
        cases = [({"consul-version": "1"}, "service.meta.consul-version"),
                 ({"a.b": "x"}, "service.meta.a.b"),
                 ({"k" * 129: "x"}, "service.meta." + "k" * 129),
                 ({"v": "x" * 513}, "service.meta.v"),
                 ({"k%d" % i: "v" for i in range(65)}, "service.meta: has 65 pairs")]
        for meta, text in cases:
            p = self.validate(self.base_config(service={"meta": meta}))
            self.assertNotEqual(p.returncode, 0, text)
            self.assertIn(text, p.stderr)
        ok = {"k%d" % i: "v" * 512 for i in range(64)}
        ok["a_B-9"] = "x"
        del ok["k0"]
        p = self.validate(self.base_config(service={"meta": ok}))
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_address_rules(self):
        for addr in ("0.0.0.0", "::", "[::]"):
            p = self.validate(self.base_config(service={"address": addr}))
            self.assertNotEqual(p.returncode, 0, addr)
            self.assertIn("service.address", p.stderr)
        p = self.validate(self.base_config(service={"address": "10.0.0.5:8080"}))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("service.address", p.stderr)  # a warning

    def test_meta_the_emulator_refuses_is_refused_first(self):
        """The same meta the emulator answers 400 for: run refuses to start
        instead of retrying a rejected registration for ever."""
        emu = self.start_emulator()
        code, _, body = emuctl.request(emu, "PUT", "/v1/agent/service/register", json.dumps(
            {"Name": "x", "Meta": {"consul-version": "1"}}))
        self.assertEqual(code, 400, body)
        a = self.start_agent_with(emu, service={"meta": {"consul-version": "1"}})
        a.proc.wait(10)
        self.assertNotEqual(a.proc.returncode, 0)
        self.assertIn("service.meta.consul-version", a.log())
        self.assertEqual(self.services(emu), {})


# ---------------------------------------------------------------------------
class TestOutputSize(BehaviourCase):
    def test_configured_check_output_max_size_keeps_whole_characters(self):
        """The agent's check_output_max_size is 64: healthreg cuts to 64
        bytes itself, on a character boundary, so the agent stores it as
        is (its own byte cut would split the 2-byte characters)."""
        emu = self.start_emulator(check_output_max_size=64, check_update_interval_ms=0)
        name = "\u00e9" * 40  # 80 bytes in the summary
        a = self.start_agent_with(emu, consul={"check_output_max_size": 64}, state="1",
                                  check_name=name)
        self.assertTrue(self.wait_status(emu, "warning", 10), a.log())
        out = self.check(emu)["Output"]
        self.assertLessEqual(len(out.encode()), 64, out)
        self.assertNotIn("\ufffd", out)
        self.assertTrue(out.startswith("0 passing, 1 warning: \u00e9"), out)


# ---------------------------------------------------------------------------
class TestPersistentAgentRestart(BehaviourCase):
    def test_restart_with_data_dir_no_duplicate_true_status_in_one_update(self):
        emu = self.start_emulator(data_dir=True, check_update_interval_ms=0)
        # TTL 6 s: the persisted state (Expires, whole seconds) outlives
        # the 1 s outage for sure.
        a = self.start_agent_with(emu, consul={"check_ttl": "6s"})
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=10), a.log())
        time.sleep(2.3)  # at least one refresh persisted
        emu.kill()
        self.set_state("1")          # the truth changes while the agent is down
        time.sleep(1.0)
        emu.restart()
        start = emu.log_text().rindex("agent: restoring")
        # Restored from the data dir: the one instance, its last status,
        # then the true one with the first update.
        self.assertTrue(self.wait_status(emu, "warning", 10), a.log()[-2000:])
        after = emu.log_text()[start:]
        reqs = re.findall(r'"(PUT|GET) (/v1/agent/[^ ?"]*)', after)
        puts = [p for m, p in reqs if m == "PUT"]
        self.assertTrue(puts, after)
        self.assertTrue(puts[0].startswith("/v1/agent/check/update/"), puts)
        self.assertNotIn("/v1/agent/service/register", puts)
        # History after the restart: restored passing, then warning, at once.
        restored = [m for m in re.findall(r"\[HEALTH\] service=web-1 status=(\S+)", after)]
        self.assertEqual(restored[:2], ["passing", "warning"], after[-3000:])
        code, body = get_json(emu, "/v1/health/service/web")
        self.assertEqual([e["Service"]["ID"] for e in body], ["web-1"])
        self.assertNotIn("consul_registration_lost", a.log())


class TestAgentReload(BehaviourCase):
    def test_consul_reload_is_ridden_out(self):
        """`consul reload` unloads and loads every service and check again
        (sync paused): healthreg's next updates succeed, nothing is lost
        or registered twice, the instance never disappears."""
        emu = self.start_emulator(check_update_interval_ms=0)
        a = self.start_agent_with(emu)
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids(emu) == ["web-1"],
                                        timeout=10), a.log())
        self.assertEqual(emu.reload(), 200)
        self.assertEqual(self.passing_ids(emu), ["web-1"])
        self.set_state("1")
        self.assertTrue(self.wait_status(emu, "warning", 10), a.log())
        self.assertNotIn("consul_registration_lost", a.log())
        self.assertEqual(a.log().count("event=consul_registered"), 1)
        self.assertNotIn("absent", health_history(emu))


# ---------------------------------------------------------------------------
class TestConnectionLimit(BehaviourCase):
    """limits.http_max_conns_per_client: one connection too many gets a raw
    429. healthreg keeps one connection, and retries a 429 with backoff."""

    def test_one_connection_and_429_retried(self):
        import http.client
        emu = self.start_emulator(http_max_conns_per_client=1)
        # Hold the one slot of 127.0.0.1 with a served keep-alive
        # connection (a refused try, e.g. while the start-up probe's
        # connection is still counted, is tried again).
        deadline = time.time() + 10
        while True:
            hog = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
            hog.request("GET", "/v1/agent/services")
            r = hog.getresponse()
            r.read()
            if r.status == 200:
                break
            hog.close()
            self.assertLess(time.time(), deadline, "no free slot for the test")
            time.sleep(0.1)
        self.addCleanup(hog.close)
        mark = emu.log_text().count("Too many concurrent")
        a = self.start_agent_with(emu)
        self.assertTrue(hrtest.wait_for(
            lambda: emu.log_text().count("Too many concurrent") > mark, timeout=10), a.log())
        self.assertTrue(a.wait_log("event=consul_unavailable", 10), a.log())
        self.assertIsNone(a.proc.poll())
        hog.close()
        self.assertTrue(hrtest.wait_for(lambda: self.passing_ids_one_conn(emu) == ["web-1"],
                                        timeout=15), a.log()[-2000:])
        refused = emu.log_text().count("Too many concurrent")
        time.sleep(TTL_S)  # three refreshes on the one connection
        self.assertEqual(emu.log_text().count("Too many concurrent"), refused,
                         emu.log_text()[-2000:])
        self.assertIn("event=consul_reachable", a.log())

    def passing_ids_one_conn(self, emu):
        # The limit is per client address and healthreg holds its one
        # connection: read from another loopback address.
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5,
                                       source_address=("127.0.0.2", 0))
        try:
            c.request("GET", "/v1/health/service/web?passing")
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                return None
            return [e["Service"]["ID"] for e in json.loads(body)]
        except OSError:
            return None
        finally:
            c.close()


if __name__ == "__main__":
    unittest.main()
