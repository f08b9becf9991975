"""Fault suite, 3-member etcd cluster (issue 11, "Fault suite"): the
leader killed, and quorum lost (two members killed) for a while, then
regained with the data kept. The lease survives leader changes and etcd
extends it when a leader is elected again, so the key must never be
absent: a watch on the prefix sees no DELETE. Convergence after recovery
is measured and printed; checks keep running, fds and RSS stay flat.

Lease TTL 3 s; quorum is lost for the issue's 15 s, five lease TTLs."""
import shutil
import time
import unittest

import etcd_harness
from faultkit import EtcdFaultCase, converge

NO_QUORUM_S = 15.0


@unittest.skipUnless(shutil.which(etcd_harness.ETCD), "etcd not installed")
class TestClusterFaults(EtcdFaultCase):
    MEMBERS = 3

    def leader(self):
        lead = [None]

        def found():
            lead[0] = self.etcd.leader()
            return lead[0] is not None
        self.assertIsNotNone(converge(found, 15), "no leader")
        return lead[0]

    def test_leader_killed(self):
        lead = self.leader()
        w0 = self.writes()
        t0 = time.monotonic()
        self.etcd.kill(lead)
        # The cluster heals itself: convergence counts from the kill.
        self.measure("etcd leader killed", w0)
        self.assert_outage_kept_checks_running(t0, time.monotonic())
        self.etcd.start_member(lead)
        self.assert_healthy_throughout("etcd leader killed")

    def test_quorum_lost_then_regained(self):
        lead = self.leader()
        others = [i for i in range(3) if i != lead]
        # Kill the leader and one follower: the survivor has no quorum.
        down = [lead, others[0]]
        w0 = self.writes()
        t0 = time.monotonic()
        for i in down:
            self.etcd.kill(i)
        time.sleep(NO_QUORUM_S)
        w1 = self.writes()
        t1 = time.monotonic()
        for i in down:
            self.etcd.start_member(i, wait=False)
        self.assertLessEqual(w1 - w0, 1, "writes without quorum?")
        self.assert_outage_kept_checks_running(t0, t1)
        # From the members' restart: their start-up and the election count.
        self.measure("etcd quorum lost %.0f s (from the restart)"
                     % NO_QUORUM_S, w1)
        self.etcd.wait_healthy(down)
        self.assert_healthy_throughout("etcd quorum lost")


if __name__ == "__main__":
    unittest.main()
