"""Hardening (issue 11, item 5): what exec children inherit, a process
that cannot dump its secrets, secret files others may read refused, and
the switch to agent.user when started as root."""
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

import hrtest

SECRETS = {
    "CONSUL_HTTP_TOKEN": "consul-s3cret",
    "CONSUL_HTTP_TOKEN_FILE": "/nonexistent/consul-token",
    "ETCD_PASSWORD": "etcd-s3cret",
    "NOTIFY_SOCKET": "/nonexistent/notify",
    "MY_API_KEY": "key-s3cret",
    "LC_SECRET_THING": "lc-s3cret",
}
PLAIN = {"LC_ALL": "C", "TZ": "UTC", "MY_PLAIN": "plain-value",
         "HR_UNLISTED": "unlisted-value"}


def http_get(url, timeout=5, token=None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def runs_as(uid):
    """Whether uid can execute the build (a checkout under a 0700 temp
    dir cannot be reached by nobody: exec fails, or the binary exits)."""
    try:
        return subprocess.run([hrtest.HR_BIN, "--version"], user=uid,
                              capture_output=True).returncode == 0
    except OSError:
        return False


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1:]
    return None


def core_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                return line.split()[4:6]
    return None


class Case(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hr-harden-")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)

    def config(self, checks, **agent):
        conf = {"api_listen": "127.0.0.1:0", "enable_exec_checks": True,
                "state_file": os.path.join(self.dir, "state.json"),
                "shutdown_timeout": "2s"}
        conf.update(agent)
        return {"service": {"name": "web", "id": "web-1", "address": "127.0.0.1",
                            "port": 8080, "checks": checks},
                "agent": conf}

    def write(self, obj, name="config.json", mode=0o644):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(obj if isinstance(obj, str) else json.dumps(obj))
        os.chmod(path, mode)
        return path

    def popen(self, cfg_path, env=None, user=None, args=()):
        log = open(os.path.join(self.dir, "agent.log"), "w")
        self.addCleanup(log.close)
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen([hrtest.HR_BIN, "run", "-c", cfg_path] + list(args),
                             stdout=subprocess.DEVNULL, stderr=log, env=e,
                             user=user, cwd=self.dir)

        def stop():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.addCleanup(stop)
        return p, stop

    def log(self):
        with open(os.path.join(self.dir, "agent.log")) as f:
            return f.read()

    def wait_log(self, p, needle, timeout=10):
        return hrtest.wait_for(lambda: needle in self.log() or p.poll() is not None,
                               timeout) and needle in self.log()

    def api_port(self, p):
        self.assertTrue(self.wait_log(p, "event=api_listening"), self.log())
        return int(re.search(r"event=api_listening addr=\S+ port=(\d+)",
                             self.log()).group(1))

    def output_of(self, port, name, pred, timeout=10, token=None):
        """The output of check name once pred(output) holds (or the last)."""
        last = [None]

        def probe():
            _, body = http_get("http://127.0.0.1:%d/v1/health" % port,
                               token=token)
            for c in json.loads(body)["checks"]:
                if c["name"] == name and c["last_run"]:
                    last[0] = c["output"]
            return last[0] is not None and pred(last[0])
        hrtest.wait_for(probe, timeout, 0.1)
        return last[0]


class TestExecEnv(Case):
    def env_vars(self, out):
        return dict(l.split("=", 1) for l in out.splitlines() if "=" in l)

    def test_default_allow_list_excludes_secrets(self):
        cfg = self.write(self.config([{"name": "env", "args": ["env"],
                                       "interval": "200ms"}]))
        p, stop = self.popen(cfg, env=dict(SECRETS, **PLAIN))
        port = self.api_port(p)
        out = self.output_of(port, "env", lambda o: "PATH=" in o)
        got = self.env_vars(out or "")
        self.assertIn("PATH", got, out)
        self.assertEqual(got.get("LC_ALL"), "C", out)
        self.assertEqual(got.get("TZ"), "UTC", out)
        for k in list(SECRETS) + ["MY_PLAIN", "HR_UNLISTED"]:
            self.assertNotIn(k, got, out)
        for v in SECRETS.values():
            self.assertNotIn(v, out)
        stop()
        self.assertEqual(p.returncode, 0, self.log())

    def test_configured_list_and_reload(self):
        conf = self.config([{"name": "env", "args": ["env"], "interval": "200ms"}],
                           exec_env=["PATH", "MY_*", "LC_*", "ETCD_PASSWORD"])
        cfg = self.write(conf)
        p, stop = self.popen(cfg, env=dict(SECRETS, **PLAIN))
        port = self.api_port(p)
        out = self.output_of(port, "env", lambda o: "PATH=" in o)
        got = self.env_vars(out or "")
        # named exactly: passes, secret or not; a pattern never passes a secret
        self.assertEqual(got.get("ETCD_PASSWORD"), "etcd-s3cret", out)
        self.assertEqual(got.get("MY_PLAIN"), "plain-value", out)
        self.assertEqual(got.get("LC_ALL"), "C", out)
        for k in ("MY_API_KEY", "LC_SECRET_THING", "CONSUL_HTTP_TOKEN",
                  "NOTIFY_SOCKET", "TZ", "HOME", "HR_UNLISTED"):
            self.assertNotIn(k, got, out)
        # a reload applies a new list to the next runs
        conf["agent"]["exec_env"] = ["HR_UNLISTED"]
        self.write(conf)
        p.send_signal(signal.SIGHUP)
        out = self.output_of(port, "env", lambda o: "PATH=" not in o)
        self.assertEqual(self.env_vars(out or ""),
                         {"HR_UNLISTED": "unlisted-value"}, out)
        stop()
        self.assertEqual(p.returncode, 0, self.log())

    def test_bad_exec_env_is_a_config_error(self):
        cfg = self.write(self.config([{"name": "t", "ttl": "10s"}], exec_env=[]))
        r = hrtest.run(["validate", "-c", cfg])
        self.assertEqual(r.returncode, 0, r.stderr)  # [] passes nothing
        for bad in ("PATH", [1], [None]):
            cfg = self.write(self.config([{"name": "t", "ttl": "10s"}],
                                         exec_env=bad))
            r = hrtest.run(["validate", "-c", cfg])
            self.assertEqual(r.returncode, 78, (bad, r.stderr))
            self.assertIn("agent.exec_env", r.stderr)


def other_uid():
    """A uid that is not ours to run the agent as (root only), or ours."""
    if os.geteuid() == 0:
        try:
            return pwd.getpwnam("nobody")
        except KeyError:
            return None
    return pwd.getpwuid(os.geteuid())


class TestDumpable(Case):
    # /proc/PID/status is owned by the process's uid while it is dumpable,
    # by root once PR_SET_DUMPABLE is 0: run the agent as a non-root uid.
    def run_as(self, **agent):
        pw = other_uid()
        if pw is None:
            self.skipTest("no user 'nobody'")
        cfg = self.write(self.config([{"name": "t", "ttl": "10s"}], **agent))
        user = pw.pw_uid if os.geteuid() == 0 else None
        if user is not None and not runs_as(user):
            self.skipTest("the build is not reachable by user nobody")
        p, stop = self.popen(cfg, user=user)
        self.assertTrue(self.wait_log(p, "event=start"), self.log())
        self.assertEqual(proc_status(p.pid, "Uid")[0], str(pw.pw_uid))
        return p, stop, pw

    def test_not_dumpable_and_no_core(self):
        p, stop, pw = self.run_as()
        self.assertEqual(os.stat("/proc/%d/status" % p.pid).st_uid, 0)
        self.assertEqual(core_limit(p.pid), ["0", "0"])
        stop()
        self.assertEqual(p.returncode, 0, self.log())

    def test_allow_core_dumps_opts_in(self):
        p, stop, pw = self.run_as(allow_core_dumps=True)
        self.assertEqual(os.stat("/proc/%d/status" % p.pid).st_uid, pw.pw_uid)
        self.assertNotEqual(core_limit(p.pid), ["0", "0"])
        stop()


class TestSecretFileModes(Case):
    def test_api_token_file_readable_by_others_refused(self):
        tf = self.write("s3cret-token\n", "token", 0o644)
        cfg = self.write(self.config([{"name": "t", "ttl": "10s"}],
                                     api_token_file=tf))
        p, _ = self.popen(cfg)
        p.wait(10)
        self.assertEqual(p.returncode, 78, self.log())
        self.assertIn("agent.api_token_file", self.log())
        self.assertIn(tf, self.log())
        self.assertIn("permissions 0644 are too open", self.log())
        os.chmod(tf, 0o600)
        p, stop = self.popen(cfg)
        self.assertTrue(self.wait_log(p, "event=api_listening"), self.log())
        stop()
        self.assertEqual(p.returncode, 0, self.log())

    def test_etcd_password_file_readable_by_others_refused(self):
        pw = self.write("etcd-s3cret\n", "pw", 0o640)
        conf = self.config([{"name": "t", "ttl": "10s"}])
        conf["registry"] = {"etcd": {"endpoints": ["http://127.0.0.1:9"],
                                     "username": "agent", "password_file": pw}}
        cfg = self.write(conf)
        p, _ = self.popen(cfg)
        p.wait(10)
        self.assertEqual(p.returncode, 78, self.log())
        self.assertIn("registry.etcd.password_file", self.log())
        self.assertIn("permissions 0640 are too open", self.log())
        self.assertNotIn("etcd-s3cret", self.log())

    def test_cli_token_file_readable_by_others_refused(self):
        tf = self.write("s3cret-token\n", "token", 0o604)
        r = hrtest.run(["maint", "enable", "--reason", "x", "--api",
                        "127.0.0.1:9", "--token-file", tf])
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("permissions 0604 are too open", r.stderr)


@unittest.skipUnless(os.geteuid() == 0, "switching users needs root")
class TestUser(Case):
    def test_drops_to_agent_user_after_reading_secrets(self):
        nobody = pwd.getpwnam("nobody")
        tf = self.write("s3cret-token\n", "token", 0o600)  # root's, 0600
        cfg = self.write(self.config(
            [{"name": "id", "args": ["sh", "-c", "id -u; id -g; echo $HOME"],
              "interval": "200ms"}],
            user="nobody", api_token_file=tf))
        p, stop = self.popen(cfg)
        self.assertTrue(self.wait_log(p, "event=user_switched"), self.log())
        self.assertTrue(self.wait_log(p, "event=start"), self.log())
        port = self.api_port(p)
        st = os.stat("/proc/%d/status" % p.pid)
        self.assertEqual(proc_status(p.pid, "Uid"), [str(nobody.pw_uid)] * 4)
        self.assertEqual(proc_status(p.pid, "Gid"), [str(nobody.pw_gid)] * 4)
        self.assertNotIn("0", proc_status(p.pid, "Groups") or [])
        self.assertEqual(st.st_uid, 0)  # still not dumpable after setuid
        # check outputs are shown only with the API token
        out = self.output_of(port, "id", lambda o: o.strip() != "",
                             token="s3cret-token")
        self.assertEqual(out.split(), [str(nobody.pw_uid), str(nobody.pw_gid),
                                       nobody.pw_dir], out)
        stop()
        self.assertEqual(p.returncode, 0, self.log())

    def test_unknown_user_stops(self):
        cfg = self.write(self.config([{"name": "t", "ttl": "10s"}],
                                     user="no-such-user-hr"))
        p, _ = self.popen(cfg)
        p.wait(10)
        self.assertEqual(p.returncode, 78, self.log())
        # refused with the config, before anything starts (as validate)
        self.assertIn('agent.user: no such user "no-such-user-hr"', self.log())
        self.assertIn("nothing started", self.log())
        r = hrtest.run(["validate", "-c", cfg])
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn('agent.user: no such user "no-such-user-hr"', r.stderr)


class TestExampleUnit(unittest.TestCase):
    @unittest.skipUnless(shutil.which("systemd-analyze"), "no systemd-analyze")
    def test_example_unit_verifies(self):
        with open(os.path.join(hrtest.SOURCE_DIR, "docs", "examples",
                               "healthreg.service")) as f:
            unit = f.read().replace("/usr/local/bin/healthreg", shutil.which("true"))
        d = tempfile.mkdtemp(prefix="hr-unit-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "healthreg.service")
        with open(path, "w") as f:
            f.write(unit)
        # --man=no: the unit's man: pages exist once installed
        # (test_install verifies the installed unit with them).
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        for word in ("Unknown", "Invalid", "Failed to parse"):
            bad = [l for l in r.stderr.splitlines() if word in l and
                   "system call" not in l]  # this systemd's own syscall table
            self.assertEqual(bad, [], r.stderr)
        for opt in ("NoNewPrivileges=yes", "ProtectSystem=strict",
                    "SystemCallFilter=@system-service", "UMask=0077"):
            self.assertIn(opt, unit)


if __name__ == "__main__":
    unittest.main()
