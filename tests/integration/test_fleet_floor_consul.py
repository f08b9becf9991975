"""The fleet floor on Consul (issue 14, section 2), against the Consul agent
emulator (tests/consul_emulator; its KV store with ?cas= is pinned to
Consul's source in its README, "KV"): five `healthreg run` agents of one
service with registry.consul.min_healthy 2. Four turn critical at the same
moment (ttl checks failed through each agent's API from four threads
released together): exactly 2 stay registered, the kept one warning with
"kept by fleet floor: ...", and 3 leave. One leaver recovers: it returns
and the kept instance may now leave. All recover: all 5 are back, and the
leaver list is empty again. The emulator's [HEALTH] log (every change of
every service's status, and its removal) is replayed: once the fleet was
whole, the registered instances, and those passing or warning, never fall
under the floor, and a round never removes more than (registered - floor)
before the first recovery.

HR_FLOOR_ROUNDS (default 3) sets the number of rounds with random timing;
scripts/floor-rounds.sh --registry consul runs the issue's 20.

SIGTERM, maintenance and SIGKILL (TTL expiry, then Consul's reaper) still
remove a kept instance: the floor only governs leaving for bad health."""
import base64
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import hrtest

sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
import emuctl  # noqa: E402

TTL = 3          # check_ttl: an update (and a kept re-decision) every 1 s
PERIOD = TTL / 3
FLOOR = 2
N = 5
NAME = "fleet"
KEY = "/v1/kv/healthreg/floor/" + NAME


def api_port(agent, timeout=10):
    assert agent.wait_log("event=api_listening", timeout), agent.log()
    return int(re.search(r"event=api_listening addr=\S+ port=(\d+)",
                         agent.log()).group(1))


def health(url):
    """GET /v1/health, whatever its code (503 when critical)."""
    try:
        with urllib.request.urlopen(url + "/v1/health", timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def put(url):
    req = urllib.request.Request(url, method="PUT", data=b"")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status


class Fleet:
    def __init__(self, case, emu, n, floor, **consul):
        self.case = case
        self.dir = tempfile.mkdtemp(prefix="hr-floor-consul-")
        case.addCleanup(shutil.rmtree, self.dir, True)
        self.emu = emu
        self.agents = []
        self.urls = []
        for i in range(n):
            conf = {"service": {"name": NAME, "id": self.sid(i),
                                "address": "127.0.0.1", "port": 9100 + i,
                                "checks": [{"name": "hb", "ttl": "600s",
                                            "status": "passing"}]},
                    "agent": {"state_file": os.path.join(
                        self.dir, "%d.state" % i),
                        # debug: consul_floor_conflict (a cas that lost)
                        "log_level": "debug"},
                    "registry": {"consul": {
                        "address": emu.url,
                        "check_ttl": "%ds" % TTL,
                        "deregister_critical_service_after": "1s",
                        "min_healthy": floor, **consul}}}
            a = hrtest.Agent(conf, env={"CONSUL_HTTP_ADDR": "",
                                        "CONSUL_HTTP_TOKEN": "",
                                        "CONSUL_HTTP_TOKEN_FILE": ""})
            case.addCleanup(a.close)
            self.agents.append(a)
        for a in self.agents:
            self.urls.append("http://127.0.0.1:%d" % api_port(a))

    @staticmethod
    def sid(i):
        return "%s-%d" % (NAME, i)

    def set_status(self, idxs, verb, jitter=0.0, rng=None):
        """verb pass/fail for every agent in idxs, from one thread each,
        released together (plus a random delay up to jitter seconds)."""
        barrier = threading.Barrier(len(idxs))
        errors = []

        def one(i, delay):
            barrier.wait()
            if delay:
                time.sleep(delay)
            try:
                put(self.urls[i] + "/v1/checks/hb/" + verb)
            except Exception as e:  # reported by the caller
                errors.append(e)
        threads = [threading.Thread(
            target=one, args=(i, rng.uniform(0, jitter) if rng else 0))
            for i in idxs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.case.assertEqual(errors, [])

    def conflicts(self):
        """Leaver-list writes whose cas lost (and were decided again)."""
        return sum(a.log().count("event=consul_floor_conflict")
                   for a in self.agents)

    def logs(self):
        return "\n".join("--- agent %d\n%s" % (i, a.log()[-6000:])
                         for i, a in enumerate(self.agents)) + \
            "\n--- emulator\n" + self.emu.log_text()[-8000:]


def entries(emu):
    """The service's health entries: {service id: (status, output)} with
    the status of its healthreg check."""
    code, _, body = emuctl.request(emu, "GET", "/v1/health/service/" + NAME,
                                   timeout=5)
    assert code == 200, body
    out = {}
    for e in json.loads(body):
        sid = e["Service"]["ID"]
        chk = [c for c in e["Checks"] if c["CheckID"].endswith(":healthreg")]
        out[sid] = (chk[0]["Status"], chk[0]["Output"]) if chk else (None, "")
    return out


def leavers(emu):
    code, _, body = emuctl.request(emu, "GET", KEY, timeout=5)
    if code == 404:
        return []
    assert code == 200, body
    value = json.loads(body)[0]["Value"]
    doc = json.loads(base64.b64decode(value)) if value else {"leavers": []}
    return sorted(e["id"] for e in doc["leavers"])


HEALTH_RE = re.compile(r"\[HEALTH\] service=(\S+) status=(\S+)")


def history(emu):
    """The emulator's [HEALTH] lines: (service id, status) in order."""
    return HEALTH_RE.findall(emu.log_text())


def replay(events, start):
    """Per event: (event, registered count, passing-or-warning count),
    from start ({id: status})."""
    state = dict(start)
    out = []
    for sid, st in events:
        if st == "absent":
            state.pop(sid, None)
        else:
            state[sid] = st
        out.append(((sid, st), len(state),
                    sum(1 for s in state.values()
                        if s in ("passing", "warning"))))
    return out


class FloorCase(unittest.TestCase):
    def setUp(self):
        # Output changes reach the catalog at once (the kept note);
        # Consul's reaper shrunk for the SIGKILL test.
        self.emu = emuctl.start(check_update_interval_ms=0, reap_min_ms=500,
                                reap_tick_ms=100)
        self.addCleanup(self.emu.cleanup)

    def wait_count(self, n, timeout=15):
        return hrtest.wait_for(lambda: len(entries(self.emu)) == n,
                               timeout, 0.02)

    def stays(self, n, seconds):
        """The count is n now and stays n for seconds (several update
        periods: every kept instance decides again in each)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if len(entries(self.emu)) != n:
                return False
            time.sleep(0.05)
        return True


class TestFleetFloorConsul(FloorCase):
    def one_round(self, fleet, rng, jitter):
        """One round from a whole fleet; returns a summary dict."""
        mark = len(history(self.emu))
        conflicts = fleet.conflicts()
        start = {sid: st for sid, (st, _) in entries(self.emu).items()}
        self.assertEqual(set(start.values()), {"passing"}, fleet.logs())
        failing = rng.sample(range(N), N - 1)
        healthy = [i for i in range(N) if i not in failing]
        fleet.set_status(failing, "fail", jitter, rng)
        self.assertTrue(self.wait_count(FLOOR),
                        "registered: %s\n%s" % (sorted(entries(self.emu)),
                                                fleet.logs()))
        self.assertTrue(self.stays(FLOOR, 3 * PERIOD + 0.5), fleet.logs())
        now = entries(self.emu)
        self.assertIn(fleet.sid(healthy[0]), now)
        kept = [i for i in failing if fleet.sid(i) in now]
        left = [i for i in failing if fleet.sid(i) not in now]
        self.assertEqual((len(kept), len(left)), (FLOOR - 1, N - FLOOR),
                         fleet.logs())
        self.assertEqual(leavers(self.emu),
                         sorted(fleet.sid(i) for i in left))
        # The kept one warns, and says why, in Consul and in its log.
        note = "kept by fleet floor: 1 of 5 healthy (min_healthy 2)"
        for i in kept:
            self.assertTrue(hrtest.wait_for(
                lambda: entries(self.emu)[fleet.sid(i)][1].startswith(note),
                5), fleet.logs())
            self.assertEqual(entries(self.emu)[fleet.sid(i)][0], "warning")
            self.assertTrue(fleet.agents[i].wait_log(
                "event=fleet_floor_kept", 3), fleet.logs())
        self.assertEqual(entries(self.emu)[fleet.sid(healthy[0])][0],
                         "passing")

        # One leaver recovers: it returns, the kept one may now leave.
        back = rng.choice(left)
        fleet.set_status([back], "pass")
        self.assertTrue(hrtest.wait_for(
            lambda: fleet.sid(back) in entries(self.emu) and
            not any(fleet.sid(i) in entries(self.emu) for i in kept),
            15, 0.02), fleet.logs())
        self.assertTrue(self.stays(FLOOR, 2 * PERIOD), fleet.logs())
        self.assertEqual(sorted(entries(self.emu)),
                         sorted([fleet.sid(healthy[0]), fleet.sid(back)]))
        self.assertEqual(leavers(self.emu), sorted(
            fleet.sid(i) for i in failing if i != back))

        # All recover: all five back, passing, and the list empty.
        fleet.set_status([i for i in failing if i != back], "pass",
                         jitter, rng)
        self.assertTrue(hrtest.wait_for(
            lambda: [s for s, _ in entries(self.emu).values()] ==
            ["passing"] * N, 15, 0.02), fleet.logs())
        self.assertTrue(hrtest.wait_for(
            lambda: leavers(self.emu) == [], 10), fleet.logs())

        events = history(self.emu)[mark:]
        sizes = replay(events, start)
        low = min(s for _, s, _ in sizes)
        low_up = min(u for _, _, u in sizes)
        removals = [e for e in events if e[1] == "absent"]
        # Before the first return (a service registered again):
        # at most N - FLOOR removals.
        back_at = next(k for k, (sid, st) in enumerate(events)
                       if st != "absent" and (sid, "absent") in events[:k])
        early = [e for e in events[:back_at] if e[1] == "absent"]
        self.assertGreaterEqual(low, FLOOR, events)
        self.assertGreaterEqual(low_up, FLOOR, events)
        self.assertLessEqual(len(early), N - FLOOR, events)
        return {"min_registered": low, "min_passing_or_warning": low_up,
                "removals_before_recovery": len(early),
                "removals": len(removals), "kept": kept, "left": left,
                "cas_conflicts": fleet.conflicts() - conflicts,
                "returned": back}

    def test_rounds(self):
        rounds = int(os.environ.get("HR_FLOOR_ROUNDS", "3"))
        seed = int(os.environ.get("HR_FLOOR_SEED", str(int(time.time()))))
        rng = random.Random(seed)
        fleet = Fleet(self, self.emu, N, FLOOR)
        self.assertTrue(hrtest.wait_for(
            lambda: [s for s, _ in entries(self.emu).values()] ==
            ["passing"] * N, 15), fleet.logs())
        results = []
        for r in range(rounds):
            jitter = rng.choice([0.0, 0.0, 0.005, 0.02, 0.1])
            res = self.one_round(fleet, rng, jitter)
            res.update(round=r + 1, jitter_s=jitter)
            results.append(res)
            out = os.environ.get("HR_FLOOR_RESULTS")
            if out:  # after every round: a failing one leaves the others
                with open(out, "w") as f:
                    json.dump({"seed": seed, "registry": "consul",
                               "rounds": results}, f)
            time.sleep(rng.uniform(0, 0.3))
        self.assertEqual(len(results), rounds)
        # At the floor again, then SIGTERM everyone: kept or not, every
        # service is deregistered, and every agent exits cleanly.
        fleet.set_status(list(range(1, N)), "fail")
        self.assertTrue(self.wait_count(FLOOR), fleet.logs())
        for a in fleet.agents:
            self.assertEqual(a.stop(), 0, fleet.logs())
            self.assertNotIn("Sanitizer", a.log())
        self.assertTrue(self.wait_count(0, 5), fleet.logs())


class TestFraction(FloorCase):
    def test_max_unhealthy_fraction(self):
        """max_unhealthy_fraction 0.4 of a fleet of 5: at most 2 may be
        unhealthy, so 3 stay when four fail together (one healthy, two
        kept); min_healthy 1 is the weaker floor here."""
        fleet = Fleet(self, self.emu, N, 1, max_unhealthy_fraction=0.4)
        self.assertTrue(hrtest.wait_for(
            lambda: [s for s, _ in entries(self.emu).values()] ==
            ["passing"] * N, 15), fleet.logs())
        mark = len(history(self.emu))
        start = {sid: st for sid, (st, _) in entries(self.emu).items()}
        fleet.set_status([1, 2, 3, 4], "fail")
        self.assertTrue(self.wait_count(3), fleet.logs())
        self.assertTrue(self.stays(3, 3 * PERIOD), fleet.logs())
        now = entries(self.emu)
        self.assertEqual(sorted(st for st, _ in now.values()),
                         ["passing", "warning", "warning"], now)
        note = ("kept by fleet floor: 2 of 5 healthy (min_healthy 1, "
                "max_unhealthy_fraction 0.4)")
        self.assertTrue(hrtest.wait_for(lambda: all(
            out.startswith(note) for st, out in entries(self.emu).values()
            if st == "warning"), 5), entries(self.emu))
        self.assertEqual(len(leavers(self.emu)), 2)
        sizes = replay(history(self.emu)[mark:], start)
        self.assertGreaterEqual(min(n for _, n, _ in sizes), 3, sizes)
        self.assertGreaterEqual(min(u for _, _, u in sizes), 3, sizes)
        fleet.set_status([1, 2, 3, 4], "pass")
        self.assertTrue(hrtest.wait_for(
            lambda: [s for s, _ in entries(self.emu).values()] ==
            ["passing"] * N and leavers(self.emu) == [], 15), fleet.logs())


class TestKeptInstanceStillGoes(FloorCase):
    def test_sigterm_and_maintenance_remove_a_kept_instance(self):
        """Three agents, floor 2, all critical: the first to decide leaves
        (3 -> 2), the other two are kept, warning. Maintenance and SIGTERM
        still remove them; status, /v1/health, /metrics and the journal
        say why a critical instance is still there."""
        fleet = Fleet(self, self.emu, 3, FLOOR)
        self.assertTrue(self.wait_count(3), fleet.logs())
        fleet.set_status([0, 1, 2], "fail")
        self.assertTrue(self.wait_count(2),
                        "registered: %s\n%s" % (sorted(entries(self.emu)),
                                                fleet.logs()))
        self.assertTrue(self.stays(2, 3 * PERIOD), fleet.logs())
        now = entries(self.emu)
        kept = [i for i in range(3) if fleet.sid(i) in now]
        self.assertEqual(len(kept), 2)
        note = "kept by fleet floor: 1 of 3 healthy (min_healthy 2)"
        for i in kept:
            # 1 of 3: the other kept one warns and counts; a decision made
            # while it still showed passing said so too, the next one the
            # same.
            self.assertTrue(hrtest.wait_for(
                lambda: entries(self.emu)[fleet.sid(i)] [1].startswith(note),
                5), (entries(self.emu), fleet.logs()))
            self.assertEqual(entries(self.emu)[fleet.sid(i)][0], "warning")
            with urllib.request.urlopen(fleet.urls[i] + "/metrics",
                                        timeout=5) as r:
                m = r.read().decode()
            self.assertIn('healthreg_fleet_floor_kept{backend="consul",'
                          'service="%s"} 1' % fleet.sid(i), m)
            self.assertIn('healthreg_fleet_floor_kept_total{backend="consul",'
                          'service="%s"} 1' % fleet.sid(i), m)
            doc = health(fleet.urls[i])
            self.assertEqual(doc["status"], "critical")
            self.assertEqual([(g["backend"], g["registration"],
                               g["floor_kept"])
                              for g in doc["registries"]],
                             [("consul", "registered", True)])
            r = hrtest.run(["status", "--api", fleet.urls[i]])
            self.assertIn("registry consul: registered (critical, kept by "
                          "the fleet floor)", r.stdout)
            with urllib.request.urlopen(fleet.urls[i] + "/v1/decisions",
                                        timeout=5) as resp:
                ds = json.loads(resp.read())["decisions"]
            kept_ds = [d for d in ds if d["decision"] == "kept_by_floor"]
            self.assertEqual(len(kept_ds), 1, ds)
            self.assertEqual(kept_ds[0]["backend"], "consul")
            self.assertIn("kept by fleet floor", kept_ds[0]["why"])
            self.assertIn("kept_by_floor",
                          hrtest.run(["why", "--api", fleet.urls[i]]).stdout)
        left = [i for i in range(3) if i not in kept][0]
        self.assertEqual([g["floor_kept"] for g in
                          health(fleet.urls[left])["registries"]], [False])
        self.assertEqual(leavers(self.emu), [fleet.sid(left)])

        # Maintenance: gone, although the floor is not met.
        a, b = kept
        put(fleet.urls[a] + "/v1/maintenance?enable=true&reason=drain")
        self.assertTrue(self.wait_count(1), fleet.logs())
        self.assertNotIn(fleet.sid(a), entries(self.emu))
        self.assertIn("event=fleet_floor_released", fleet.agents[a].log())
        self.assertIn("reason=maintenance", fleet.agents[a].log())

        # SIGTERM of the last kept one: deregistered at once.
        self.assertEqual(fleet.agents[b].stop(), 0, fleet.logs())
        self.assertTrue(self.wait_count(0, 5), fleet.logs())
        self.assertIn("event=fleet_floor_released", fleet.agents[b].log())

    def test_sigkill_kept_instances_expire_and_are_reaped(self):
        fleet = Fleet(self, self.emu, 2, FLOOR)
        self.assertTrue(self.wait_count(2), fleet.logs())
        fleet.set_status([0, 1], "fail")
        self.assertTrue(hrtest.wait_for(lambda: all(
            "event=fleet_floor_kept" in a.log() for a in fleet.agents), 5),
            fleet.logs())
        self.assertTrue(self.stays(2, 2 * PERIOD), fleet.logs())
        fleet.agents[0].kill()
        fleet.agents[1].kill()
        # TTL expiry turns both critical; the reaper (shrunk) removes them.
        self.assertTrue(self.wait_count(0, TTL + 5), fleet.logs())
        self.assertIn("Check missed TTL, is now critical",
                      self.emu.log_text())



class TestFloorWithoutKeyRights(unittest.TestCase):
    def test_a_refused_floor_read_stays(self):
        """A token without key rights: the floor's read of the leaver
        list is refused (403). The instance stays registered (the safe
        side), warning with the reason, and the log names the ACL the
        floor needs; the other instances are untouched."""
        rules = "t=service:%s:write,service_prefix::read,node_prefix::read" % NAME
        emu = emuctl.start(check_update_interval_ms=0,
                           acl_default_policy="deny", acl_token=[rules])
        self.addCleanup(emu.cleanup)
        tokdir = tempfile.mkdtemp(prefix="hr-floor-tok-")
        self.addCleanup(shutil.rmtree, tokdir, True)
        env = {"CONSUL_HTTP_TOKEN": "t"}
        agents, urls = [], []
        for i in range(3):
            conf = {"service": {"name": NAME, "id": Fleet.sid(i),
                                "address": "127.0.0.1", "port": 9100 + i,
                                "checks": [{"name": "hb", "ttl": "600s",
                                            "status": "passing"}]},
                    "registry": {"consul": {"address": emu.url,
                                            "check_ttl": "%ds" % TTL,
                                            "min_healthy": FLOOR}}}
            a = hrtest.Agent(conf, env=dict(env, CONSUL_HTTP_ADDR="",
                                            CONSUL_HTTP_TOKEN_FILE=""))
            self.addCleanup(a.close)
            agents.append(a)
            urls.append("http://127.0.0.1:%d" % api_port(a))
        hdr = {"X-Consul-Token": "t"}

        def ids():
            code, _, body = emuctl.request(
                emu, "GET", "/v1/health/service/" + NAME, headers=hdr,
                timeout=5)
            assert code == 200, body
            return {e["Service"]["ID"]: [c for c in e["Checks"]
                                         if c["CheckID"].endswith(":healthreg")][0]
                    for e in json.loads(body)}
        self.assertTrue(hrtest.wait_for(lambda: len(ids()) == 3, 10))
        put(urls[0] + "/v1/checks/hb/fail")
        self.assertTrue(agents[0].wait_log("event=consul_floor_unavailable",
                                           5), agents[0].log())
        log = agents[0].log()
        self.assertIn("key:write on healthreg/floor/fleet", log)
        self.assertTrue(hrtest.wait_for(
            lambda: "the fleet cannot be read (HTTP 403" in
            ids()[Fleet.sid(0)]["Output"], 5), (ids(), log))
        self.assertEqual(ids()[Fleet.sid(0)]["Status"], "warning")
        # Still there several decisions later, past the TTL; and the
        # others, whose check of the list at start was refused too, kept
        # their TTL checks updated meanwhile (no backoff on a floor read).
        time.sleep(TTL + 1)
        self.assertEqual(len(ids()), 3)
        self.assertEqual(ids()[Fleet.sid(0)]["Status"], "warning")
        self.assertEqual([ids()[Fleet.sid(i)]["Status"] for i in (1, 2)],
                         ["passing", "passing"], ids())
        self.assertIn("event=fleet_floor_kept", agents[0].log())

if __name__ == "__main__":
    unittest.main()
