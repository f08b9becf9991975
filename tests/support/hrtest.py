"""Shared helpers for healthreg's Python tests (stdlib only)."""
import json
import os
import signal
import subprocess
import tempfile
import time

HR_BIN = os.environ.get("HR_BIN", "healthreg")
SOURCE_DIR = os.environ.get(
    "HR_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))


def write_config(obj, dirpath=None):
    """Write obj as JSON into a temp file; returns its path."""
    fd, path = tempfile.mkstemp(suffix=".json", dir=dirpath)
    with os.fdopen(fd, "w") as f:
        if isinstance(obj, str):
            f.write(obj)
        else:
            json.dump(obj, f)
    return path


def run(args, timeout=60, env=None):
    """Run healthreg with args; returns CompletedProcess (text)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run([HR_BIN] + args, capture_output=True, text=True,
                          timeout=timeout, env=e)


def check_json(config, timeout=60):
    """healthreg check --json on a config dict; returns (rc, parsed)."""
    path = write_config(config)
    try:
        p = run(["check", "-c", path, "--json"], timeout=timeout)
    finally:
        os.unlink(path)
    doc = json.loads(p.stdout) if p.stdout.strip() else None
    return p.returncode, doc, p.stderr


def with_free_api(config):
    """config with agent.api_listen 127.0.0.1:0 unless it names one: two
    agents never share an API port (a second one on a taken port exits
    69), so tests running side by side must not all take the default."""
    if not isinstance(config, dict):
        return config
    agent = config.get("agent", {})
    if not isinstance(agent, dict) or any(
            k.replace("_", "").lower() == "apilisten" for k in agent):
        return config
    out = dict(config)
    out["agent"] = dict(agent, api_listen="127.0.0.1:0")
    return out


class Agent:
    """healthreg run in the background; stop() sends SIGTERM, kill() SIGKILL.

    stderr (the structured log) goes to a file readable with log()."""

    def __init__(self, config, extra_args=(), env=None):
        self.config_path = write_config(with_free_api(config))
        self.log_path = self.config_path + ".log"
        self.log_file = open(self.log_path, "w")
        e = dict(os.environ)
        if env:
            e.update(env)
        self.proc = subprocess.Popen(
            [HR_BIN, "run", "-c", self.config_path] + list(extra_args),
            stdout=subprocess.DEVNULL, stderr=self.log_file, env=e)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, needle, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.log():
                return True
            if self.proc.poll() is not None:
                return needle in self.log()
            time.sleep(0.05)
        return False

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        self.log_file.close()
        for p in (self.config_path, self.log_path):
            try:
                os.unlink(p)
            except OSError:
                pass


def wait_for(pred, timeout=10, interval=0.05):
    """Poll pred() until true or timeout; returns the last value."""
    deadline = time.time() + timeout
    v = pred()
    while not v and time.time() < deadline:
        time.sleep(interval)
        v = pred()
    return v
