"""scripts/demo.sh tells its story as it happens and cleans up (issue 13).

The demo runs with its stdout on a pipe, as in CI or `| less`: no escape
codes; the agent's log lines appear inside the step that caused them,
not at the end; the service registered in etcd is the web target the
demo started; status, /v1/health, /metrics and a maintenance round are
shown; and when it is over nothing it started is left running."""
import os
import re
import subprocess
import unittest

import hrtest

DEMO = os.path.join(hrtest.SOURCE_DIR, "scripts", "demo.sh")


def cmdlines():
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    out.append(f.read().replace(b"\0", b" ").decode(
                        "utf-8", "replace"))
            except OSError:
                pass
    return out


class Demo(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = dict(os.environ, HR_DEMO_NO_DEPS="1")
        p = subprocess.run(["bash", DEMO], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env, timeout=300)
        cls.rc = p.returncode
        cls.out = p.stdout.decode("utf-8", "replace")

    def step(self, title):
        """The text of the step whose header contains title."""
        parts = re.split(r"^== \d+\. ", self.out, flags=re.M)
        got = [p for p in parts if p.startswith(title)]
        self.assertEqual(len(got), 1, (title, self.out))
        return got[0]

    def test_succeeds(self):
        self.assertEqual(self.rc, 0, self.out)
        self.assertIn("demo OK", self.out)

    def test_no_escape_codes_on_a_pipe(self):
        self.assertNotIn("\x1b", self.out)
        self.assertFalse(re.search(r"[\x00-\x08\x0b-\x1f\x7f]", self.out))

    def test_tells_what_it_installs_and_builds(self):
        self.assertIn("scripts/deps.sh", self.step("packages"))
        build = self.step("building healthreg")
        self.assertRegex(build, r"the binary: \S*plugin/healthreg "
                                r"\(healthreg \d+\.\d+\.\d+\)")
        self.assertIn("cmake --install", build)

    def test_log_lines_appear_as_the_story_unfolds(self):
        run = self.step("healthreg run")
        self.assertRegex(run, r"agent\| .*event=start ")
        self.assertRegex(run, r"agent\| .*event=ready ")
        self.assertRegex(run, r"agent\| .*event=etcd_registered ")
        down = self.step("stopping the db target")
        self.assertRegex(down, r"agent\| .*event=check_status check=db "
                               r"from=passing to=critical")
        self.assertRegex(down, r"agent\| .*event=etcd_deregistered ")
        up = self.step("restarting the db target")
        self.assertRegex(up, r"agent\| .*event=aggregate_status "
                             r"from=critical to=passing")
        maint = self.step("a maintenance round")
        self.assertRegex(maint, r"agent\| .*event=maintenance_enabled ")
        self.assertRegex(maint, r"agent\| .*event=maintenance_disabled")
        stop = self.step("SIGTERM")
        self.assertRegex(stop, r"agent\| .*event=etcd_lease_revoked ")
        self.assertRegex(stop, r"agent\| .*event=stopped")

    def test_registers_the_target_it_runs(self):
        port = re.search(r"web on 127\.0\.0\.1:(\d+) \(HTTP\)",
                         self.out).group(1)
        run = self.step("healthreg run")
        self.assertIn('registered in etcd: {"Op":0,"Addr":"127.0.0.1:%s"'
                      % port, run)
        self.assertIn('"http": "http://127.0.0.1:%s/' % port,
                      self.step("the config"))

    def test_shows_status_health_metrics_and_maintenance(self):
        shows = self.step("what the agent shows")
        self.assertRegex(shows, r"\$ \S*plugin/healthreg status -c ")
        self.assertIn("service web: passing", shows)
        self.assertIn('"status": "passing"', shows)   # /v1/health
        self.assertIn("(HTTP 200)", shows)
        self.assertIn('healthreg_status{service="web-1",status="passing"} 1', shows)
        maint = self.step("a maintenance round")
        self.assertIn("maintenance enabled", maint)
        self.assertIn("(HTTP 503)", maint)
        self.assertIn("maintenance: on (demo: kernel upgrade)", maint)
        self.assertIn("maintenance disabled", maint)

    def test_leaves_nothing_running(self):
        tmp = re.search(r"(/\S*healthreg-demo\.[A-Za-z0-9]+)", self.out)
        self.assertTrue(tmp, self.out)
        self.assertFalse(os.path.exists(tmp.group(1)))
        etcd = re.search(r"starting etcd on (127\.0\.0\.1:\d+)",
                         self.out).group(1)
        left = [c for c in cmdlines()
                if tmp.group(1) in c or etcd in c]
        self.assertEqual(left, [])


if __name__ == "__main__":
    unittest.main()
