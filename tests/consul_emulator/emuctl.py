"""Start/stop the Consul agent emulator from Python tests.

Usage (from any test; standard library only)::

    import os, sys
    sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "consul_emulator"))
    import emuctl

    emu = emuctl.start(reap_min_ms=500, reap_tick_ms=100)   # free loopback port
    self.addCleanup(emu.stop)
    url = emu.url          # "http://127.0.0.1:<port>"
    port, pid = emu.port, emu.pid
    emu.restart_wiped()    # kill + start again on the SAME port, empty state
    emu = emuctl.start(data_dir=True)  # persistent (a data dir in the temp dir)
    emu.restart()          # kill + start again on the same port, data dir kept
    emu.reload()           # `consul reload` (PUT /v1/agent/reload): 200
    emu.fault("status 500")  # every request answered 500 (see fault())
    emu.fault(None)        # back to normal
    emu.stop()             # SIGTERM, then SIGKILL after a grace period

    # HTTPS next to HTTP (Consul's ports.https), and a Unix socket:
    emu = emuctl.start(tls_cert=c, tls_key=k, tls_ca=ca, unix=path)
    emu.https_url          # "https://127.0.0.1:<https_port>"
    emu.unix_url           # "unix://<path>"

Keyword flags map to emulator command-line flags: ``acl_default_policy="deny"``
becomes ``--acl-default-policy deny``; ``True`` adds a bare flag
(``discard_check_output=True``); a list repeats the flag
(``acl_token=["root", "w=service:web:write"]`` gives two ``--acl-token``).
``log`` defaults to a file in a private temp directory (``emu.log_path``)
so that the child never blocks on a full stderr pipe.  See README.md for
every flag.
"""

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "emulator.py")


def _flags(flags):
    argv = []
    for key, value in sorted(flags.items()):
        opt = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(opt)
        elif isinstance(value, (list, tuple)):
            for v in value:
                argv += [opt, str(v)]
        else:
            argv += [opt, str(value)]
    return argv


class EmulatorError(RuntimeError):
    pass


class Emulator:
    """A running emulator process (see module docstring)."""

    def __init__(self, port=0, bind="127.0.0.1", startup_timeout=15.0, **flags):
        self.bind = bind
        self.flags = dict(flags)
        self.startup_timeout = startup_timeout
        self._tmp = tempfile.mkdtemp(prefix="consul-emu-")
        self.log_path = self.flags.pop("log", None) or os.path.join(self._tmp, "emulator.log")
        if self.flags.get("data_dir") is True:
            self.flags["data_dir"] = os.path.join(self._tmp, "data")
        self.data_dir = self.flags.get("data_dir")
        self.fault_path = os.path.join(self._tmp, "fault")
        self.proc = None
        self.port = None
        self.https_port = None
        self.unix_path = self.flags.get("unix")
        self._spawn(port)

    # -- public API -----------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def url(self):
        host = "[%s]" % self.bind if ":" in self.bind else self.bind
        return "http://%s:%d" % (host, self.port)

    @property
    def https_url(self):
        """The HTTPS listener (started with tls_cert/tls_key), or None."""
        if self.https_port is None:
            return None
        host = "[%s]" % self.bind if ":" in self.bind else self.bind
        return "https://%s:%d" % (host, self.https_port)

    @property
    def unix_url(self):
        return "unix://" + self.unix_path if self.unix_path else None

    def stop(self, grace=5.0):
        """Terminate the process (SIGTERM, then SIGKILL).  Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass
        if proc is not None:
            proc.wait()

    def kill(self):
        """SIGKILL the process (simulates a crashed agent)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def fault(self, mode=None):
        """Inject a fault into every following request (``None`` or
        ``"off"`` ends it): ``"status 500"``, ``"delay 3000"`` (ms),
        ``"garbage"`` (bytes that are not HTTP) or ``"close"`` (no answer).
        The file is replaced atomically; it survives restarts."""
        tmp = self.fault_path + ".tmp"
        with open(tmp, "w") as fh:
            fh.write((mode or "off") + "\n")
        os.replace(tmp, self.fault_path)

    def restart_wiped(self, downtime=0.0):
        """Kill the agent and start a fresh one on the same port: an agent
        restarted with its state wiped (like ``consul agent -dev``).
        ``downtime`` seconds pass between the kill and the new start (a
        crashed agent that comes back later: connections are refused)."""
        port = self.port
        self.kill()
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if downtime > 0:
            time.sleep(downtime)
        self._spawn(port)
        return self

    def restart(self, downtime=0.0, graceful=False):
        """Stop the agent (SIGKILL, or SIGTERM when graceful) and start it
        again on the same port with the same flags: with ``data_dir`` it
        restores its services, checks and TTL state, like a real agent."""
        port = self.port
        if graceful:
            self.stop()
        else:
            self.kill()
        if downtime > 0:
            time.sleep(downtime)
        self._spawn(port)
        return self

    def reload(self, token=None):
        """`consul reload`: PUT /v1/agent/reload; returns the HTTP status."""
        headers = {"X-Consul-Token": token} if token else {}
        return request(self, "PUT", "/v1/agent/reload", b"", headers=headers)[0]

    def cleanup(self):
        """stop() and remove the private temp directory (log included)."""
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    # -- internals -----------------------------------------------------------
    def _spawn(self, port):
        port_file = os.path.join(self._tmp, "port")
        https_file = os.path.join(self._tmp, "https-port")
        for f in (port_file, https_file):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
        argv = [sys.executable, "-S", EMULATOR, "--bind", self.bind, "--port", str(port),
                "--port-file", port_file, "--log", self.log_path,
                "--fault-file", self.fault_path] + _flags(self.flags)
        if self.flags.get("tls_cert"):
            # A restart keeps the HTTPS port too.
            argv += ["--https-port-file", https_file]
            if "https_port" not in self.flags:
                argv += ["--https-port", str(self.https_port or 0)]
        deadline = time.monotonic() + self.startup_timeout
        while True:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while time.monotonic() < deadline:
                if os.path.exists(port_file):
                    with open(port_file) as fh:
                        self.port = int(fh.read().strip())
                    if os.path.exists(https_file):
                        with open(https_file) as fh:
                            self.https_port = int(fh.read().strip())
                    if self._ready():
                        return
                if self.proc.poll() is not None:
                    break
                time.sleep(0.01)
            rc = self.proc.poll()
            if rc is None:
                self.kill()
                raise EmulatorError("emulator did not start within %.0fs; log:\n%s"
                                    % (self.startup_timeout, self.log_text()))
            self.proc = None
            # A fixed port may still be held briefly after a kill: retry.
            if port != 0 and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            raise EmulatorError("emulator exited with %s; log:\n%s" % (rc, self.log_text()))

    def _ready(self):
        try:
            with socket.create_connection((self.bind, self.port), timeout=1.0):
                return True
        except OSError:
            return False


def start(port=0, **flags):
    """Start an emulator on ``port`` (0 = free port) and wait until it listens."""
    return Emulator(port=port, **flags)


def request(emu, method, path, body=None, headers=None, timeout=30.0):
    """Tiny HTTP helper: returns (status, headers, body bytes); never raises
    for non-2xx statuses."""
    data = body
    if body is not None and not isinstance(body, (bytes, bytearray)):
        data = body.encode("utf-8")
    req = urllib.request.Request(emu.url + path, data=data, method=method,
                                 headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (the emulator's --unix)."""

    def __init__(self, path, timeout=30.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError:
            s.close()
            raise
        self.sock = s


def tls_client_context(ca=None, cert=None, key=None, server_name_check=True):
    """A client context that trusts ca (PEM file), with an optional client
    certificate; check_hostname follows server_name_check."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = server_name_check
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def request_on(conn, method, path, body=None, headers=None):
    """One request on an http.client connection (plain, HTTPS or
    UnixHTTPConnection), closed afterwards: (status, headers, body)."""
    data = body
    if body is not None and not isinstance(body, (bytes, bytearray)):
        data = body.encode("utf-8")
    try:
        conn.request(method, path, body=data, headers=dict(headers or {}))
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()
