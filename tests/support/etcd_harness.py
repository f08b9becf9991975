"""etcd_harness - real etcd servers for tests (Python standard library only).

Starts a single node or a 3-member cluster of the installed `etcd` binary
on free loopback ports in a temporary directory, waits until every member
answers /health, and always cleans up by PID (context manager + atexit).

    with EtcdCluster(members=3) as c:
        w = c.watch("services/")          # gateway /v3/watch stream
        ...                               # drive the agent at c.endpoints
        c.kill(1)                         # SIGKILL member 1
        c.pause(0); c.resume(0)           # SIGSTOP / SIGCONT member 0
        c.start_member(1)                 # same ports, same data dir
        c.restart(wipe=True)              # single node: fresh data
        c.restart(downtime=5)             # down 5 s, same data
        c.enable_auth("agent", "pw", "services/")
        w.wait_for(lambda e: e.type == "DELETE", timeout=5)

    # https client URLs (etcd --cert-file/--key-file); with client_ca,
    # clients must present a certificate it signed (--client-cert-auth).
    # The harness's own calls skip verification (they are plumbing; the
    # tests verify what healthreg does) and send `client` when given.
    tls = {"cert": c, "key": k, "client_ca": ca, "client": (cc, ck)}
    with EtcdCluster(tls=tls) as c: ...

It also runs as a controller for the C integration tests:

    python3 etcd_harness.py serve [--members N]

prints one JSON line {"endpoints": [...], "pids": [...]} when healthy and
then answers one JSON line per command line on stdin (see `_serve`). EOF
on stdin stops every server. Event times are time.monotonic(), which is
CLOCK_MONOTONIC, so C tests can compare them with their own clock.
"""

import atexit
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ETCD = os.environ.get("HR_ETCD_BIN", "etcd")
ETCDCTL = os.environ.get("HR_ETCDCTL_BIN", "etcdctl")
ROOT_PASSWORD = "harness-root-pw"

_live = set()  # every EtcdCluster not yet closed, for atexit


def _cleanup_all():
    for c in list(_live):
        c.close()


atexit.register(_cleanup_all)


def free_port():
    """A currently free loopback TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def unb64(s):
    return base64.b64decode(s).decode(errors="replace") if s else ""


def prefix_end(prefix):
    """range_end for a prefix: its last byte plus one."""
    p = bytearray(prefix.encode())
    p[-1] += 1
    return bytes(p)


def client_context(client=None):
    """The harness's own TLS context: no verification, client (cert, key)
    presented when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if client:
        ctx.load_cert_chain(client[0], client[1])
    return ctx


def connect(url, timeout, ctx=None):
    """An http.client connection to url's host: HTTPS for https://."""
    host = url.split("//", 1)[1]
    if url.startswith("https://"):
        return http.client.HTTPSConnection(host, timeout=timeout,
                                           context=ctx or client_context())
    return http.client.HTTPConnection(host, timeout=timeout)


def http_json(url, path, body, token=None, timeout=3.0, ctx=None):
    """POST body as JSON to url+path; returns (status, parsed or text)."""
    conn = connect(url, timeout, ctx)
    try:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token
        conn.request("POST", path, json.dumps(body), headers)
        r = conn.getresponse()
        data = r.read().decode(errors="replace")
        try:
            return r.status, json.loads(data.splitlines()[0] if data else "{}")
        except ValueError:
            return r.status, data
    finally:
        conn.close()


class Event:
    """One watch event: type "PUT" or "DELETE", key, value, lease, t."""

    def __init__(self, type_, key, value, lease, revision, t):
        self.type = type_
        self.key = key
        self.value = value
        self.lease = lease
        self.revision = revision
        self.t = t

    def as_dict(self):
        return {"type": self.type, "key": self.key, "value": self.value,
                "lease": self.lease, "revision": self.revision, "t": self.t}

    def __repr__(self):
        return "Event(%s %s rev=%d t=%.3f)" % (self.type, self.key,
                                                self.revision, self.t)


class Watcher:
    """A /v3/watch stream on a prefix in a thread, collecting events.

    It follows the cluster: when the member it reads from dies, it
    reconnects to another member from the last revision seen + 1, so no
    event is lost or repeated."""

    def __init__(self, cluster, prefix):
        self.cluster = cluster
        self.prefix = prefix
        self.events = []
        self.cond = threading.Condition()
        self.next_rev = 0
        self.stopped = False
        self.created = threading.Event()
        self.conn = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.created.wait(10):
            raise RuntimeError("watch on %s not created" % prefix)

    def _run(self):
        i = 0
        while not self.stopped:
            m = self.cluster.alive_members()
            if not m:
                time.sleep(0.05)
                continue
            url = self.cluster.member_url(m[i % len(m)])
            i += 1
            try:
                self._stream(url)
            except (OSError, http.client.HTTPException, ValueError):
                pass
            if not self.stopped:
                time.sleep(0.05)

    def _stream(self, url):
        token = self.cluster.root_token() if self.cluster.auth else None
        if self.next_rev:
            # A store revision below what we saw means the data was wiped:
            # everything in the new store is new to us.
            st, data = http_json(url, "/v3/kv/range",
                                 {"key": b64(self.prefix), "count_only": True,
                                  "serializable": True}, token, timeout=2,
                                 ctx=self.cluster.ssl_ctx)
            if st != 200:
                self.cluster._root_token = None  # maybe expired
                return
            if int(data.get("header", {}).get("revision", "0")) < self.next_rev - 1:
                self.next_rev = 1
        req = {"key": b64(self.prefix), "range_end": b64(prefix_end(self.prefix)),
               "prev_kv": True}
        if self.next_rev:
            req["start_revision"] = str(self.next_rev)
        conn = connect(url, None, self.cluster.ssl_ctx)
        self.conn = conn
        headers = {"Authorization": token} if token else {}
        conn.request("POST", "/v3/watch",
                     json.dumps({"create_request": req}), headers)
        r = conn.getresponse()
        if r.status != 200:
            r.read()
            conn.close()
            self.cluster._root_token = None
            return
        while not self.stopped:
            line = r.readline()
            if not line:
                break
            now = time.monotonic()
            msg = json.loads(line)
            res = msg.get("result")
            if res is None:
                break  # stream-shaped error
            if res.get("canceled"):
                self.cluster._root_token = None  # maybe an expired token
                break
            if res.get("created"):
                hdr_rev = int(res.get("header", {}).get("revision", "0"))
                if not self.next_rev:
                    self.next_rev = hdr_rev + 1
                self.created.set()
            evs = res.get("events", [])
            with self.cond:
                for e in evs:
                    kv = e.get("kv", {})
                    rev = int(kv.get("mod_revision", "0"))
                    self.events.append(Event(
                        e.get("type", "PUT"), unb64(kv.get("key")),
                        unb64(kv.get("value")), kv.get("lease", "0"), rev,
                        now))
                    self.next_rev = max(self.next_rev, rev + 1)
                self.cond.notify_all()
        conn.close()

    def snapshot(self):
        with self.cond:
            return list(self.events)

    def wait_for(self, pred, timeout, start=0):
        """The first event at index >= start matching pred, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.events[start:]:
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def stop(self):
        self.stopped = True
        if self.conn is not None:
            try:
                self.conn.sock and self.conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class EtcdCluster:
    """One etcd node or a cluster of `members`, on loopback."""

    def __init__(self, members=1, start=True, name="hr", auth_token_ttl=None,
                 tls=None):
        self.n = members
        self.tls = tls
        self.ssl_ctx = client_context(tls.get("client")) if tls else None
        self.auth_token_ttl = auth_token_ttl
        self.dir = tempfile.mkdtemp(prefix="hr-etcd-")
        self.token = "%s-%d-%d" % (name, os.getpid(), free_port())
        self.client_ports = [free_port() for _ in range(members)]
        self.peer_ports = [free_port() for _ in range(members)]
        self.procs = [None] * members
        self.logs = [None] * members
        self.watchers = []
        self.paused = set()
        self.auth = False
        self._root_token = None
        self.closed = False
        _live.add(self)
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    # -- addresses -------------------------------------------------------
    def member_url(self, i):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http",
                                      self.client_ports[i])

    @property
    def endpoints(self):
        return [self.member_url(i) for i in range(self.n)]

    def pids(self):
        return [p.pid if p else 0 for p in self.procs]

    def alive_members(self):
        return [i for i, p in enumerate(self.procs)
                if p is not None and p.poll() is None]

    # -- processes -------------------------------------------------------
    def _cmd(self, i):
        name = "m%d" % i
        cluster = ",".join("m%d=http://127.0.0.1:%d" % (k, self.peer_ports[k])
                           for k in range(self.n))
        return [ETCD, "--name", name,
                "--data-dir", os.path.join(self.dir, name),
                "--listen-client-urls", self.member_url(i),
                "--advertise-client-urls", self.member_url(i),
                "--listen-peer-urls", "http://127.0.0.1:%d" % self.peer_ports[i],
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:%d" % self.peer_ports[i],
                "--initial-cluster", cluster,
                "--initial-cluster-token", self.token,
                "--initial-cluster-state", "new",
                "--logger", "zap", "--log-outputs", "stderr"] + (
                    ["--auth-token-ttl", str(self.auth_token_ttl)]
                    if self.auth_token_ttl else []) + self._tls_flags()

    def _tls_flags(self):
        if not self.tls:
            return []
        f = ["--cert-file", self.tls["cert"], "--key-file", self.tls["key"]]
        if self.tls.get("client_ca"):
            f += ["--client-cert-auth", "--trusted-ca-file",
                  self.tls["client_ca"]]
        return f

    def _spawn(self, i):
        log = open(os.path.join(self.dir, "m%d.log" % i), "ab")
        self.logs[i] = log
        self.procs[i] = subprocess.Popen(
            self._cmd(i), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)

    def start(self, timeout=20):
        for i in range(self.n):
            self._spawn(i)
        self.wait_healthy(timeout=timeout)

    def healthy(self, i):
        try:
            conn = connect(self.member_url(i), 1, self.ssl_ctx)
            conn.request("GET", "/health")
            r = conn.getresponse()
            body = r.read()
            conn.close()
            return r.status == 200 and b'"true"' in body
        except (OSError, http.client.HTTPException):
            return False

    def wait_healthy(self, members=None, timeout=20):
        """Wait until members (default: all alive) answer /health true."""
        members = self.alive_members() if members is None else members
        deadline = time.monotonic() + timeout
        for i in members:
            while not self.healthy(i):
                if self.procs[i].poll() is not None:
                    raise RuntimeError("etcd m%d exited: %s" % (i, self.log_tail(i)))
                if time.monotonic() > deadline:
                    raise RuntimeError("etcd m%d not healthy: %s" % (i, self.log_tail(i)))
                time.sleep(0.02)
        return time.monotonic()

    def log_tail(self, i, n=2000):
        try:
            with open(os.path.join(self.dir, "m%d.log" % i), "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def kill(self, i=0, sig=signal.SIGKILL):
        """Signal member i (by its PID) and reap it."""
        p = self.procs[i]
        if p is None:
            return
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
                if i in self.paused:  # a stopped process acts on SIGCONT
                    os.kill(p.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        self.paused.discard(i)
        self.procs[i] = None
        if self.logs[i]:
            self.logs[i].close()
            self.logs[i] = None

    def pause(self, i=0):
        """SIGSTOP member i (by its PID): it keeps its sockets and answers
        nothing, like a hung or swapped-out server. Returns the time."""
        os.kill(self.procs[i].pid, signal.SIGSTOP)
        self.paused.add(i)
        return time.monotonic()

    def resume(self, i=0):
        """SIGCONT member i; returns the monotonic time of the resume."""
        os.kill(self.procs[i].pid, signal.SIGCONT)
        self.paused.discard(i)
        return time.monotonic()

    def start_member(self, i, wait=True):
        """Start member i again with its ports and data directory."""
        if self.procs[i] is not None and self.procs[i].poll() is None:
            return time.monotonic()
        self._spawn(i)
        if wait:
            return self.wait_healthy([i])
        return time.monotonic()

    def restart(self, i=0, wipe=False, downtime=0.0):
        """SIGKILL member i and start it again `downtime` seconds later;
        wipe=True deletes its data first (single node only: a wiped
        cluster member cannot rejoin). Returns the monotonic time at which
        it was healthy again."""
        if wipe and self.n != 1:
            raise ValueError("wipe=True needs a single-node cluster")
        self.kill(i)
        if downtime > 0:
            time.sleep(downtime)
        if wipe:
            shutil.rmtree(os.path.join(self.dir, "m%d" % i), ignore_errors=True)
            self.auth = False
            self._root_token = None
        else:
            self._root_token = None  # tokens do not survive a restart
        return self.start_member(i)

    def stop(self):
        """Stop every member: SIGTERM, then SIGKILL after 2 s."""
        for i in range(self.n):
            p = self.procs[i]
            if p is not None and p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 2
        for i in range(self.n):
            p = self.procs[i]
            if p is None:
                continue
            try:
                p.wait(timeout=max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            self.kill(i)

    def close(self):
        """Stop watchers, SIGKILL every member by PID, remove the data."""
        if self.closed:
            return
        self.closed = True
        for w in self.watchers:
            w.stop()
        for i in range(self.n):
            self.kill(i)
        shutil.rmtree(self.dir, ignore_errors=True)
        _live.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- client helpers --------------------------------------------------
    def any_url(self):
        m = self.alive_members()
        if not m:
            raise RuntimeError("no etcd member is running")
        return self.member_url(m[0])

    def etcdctl(self, *args, check=True, timeout=15):
        env = dict(os.environ, ETCDCTL_API="3")
        cmd = [ETCDCTL, "--endpoints", ",".join(self.member_url(i) for i in
                                                self.alive_members())]
        if self.auth:
            cmd += ["--user", "root:" + ROOT_PASSWORD]
        if self.tls:
            cmd += ["--insecure-skip-tls-verify"]
            if self.tls.get("client"):
                cmd += ["--cert", self.tls["client"][0],
                        "--key", self.tls["client"][1]]
        cmd += list(args)
        r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))
        return r.stdout

    def root_token(self):
        if not self.auth:
            return None
        if self._root_token is None:
            st, body = http_json(self.any_url(), "/v3/auth/authenticate",
                                 {"name": "root", "password": ROOT_PASSWORD},
                                 ctx=self.ssl_ctx)
            if st != 200:
                raise RuntimeError("root authenticate: %s %s" % (st, body))
            self._root_token = body["token"]
        return self._root_token

    def call(self, path, body, timeout=20):
        """A gateway call as root (when auth is on), retried on other
        members through elections (5xx, timeouts, refused) and once more
        after a 401."""
        deadline = time.monotonic() + timeout
        k = 0
        while True:
            m = self.alive_members()
            url = self.member_url(m[k % len(m)]) if m else None
            k += 1
            try:
                if url is None:
                    raise OSError("no member running")
                st, data = http_json(url, path, body, self.root_token(),
                                     timeout=2.5, ctx=self.ssl_ctx)
                if st == 401 and self.auth:
                    self._root_token = None
                    st, data = http_json(url, path, body, self.root_token(),
                                         timeout=2.5, ctx=self.ssl_ctx)
                if st < 500:
                    return st, data
            except (OSError, http.client.HTTPException, RuntimeError):
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                return st, data
            time.sleep(0.1)

    def get(self, key):
        """The kv dict for key ({"value": str, "lease": str, ...}) or None."""
        st, data = self.call("/v3/kv/range", {"key": b64(key)})
        if st != 200:
            raise RuntimeError("range %s: %s %s" % (key, st, data))
        kvs = data.get("kvs") or []
        if not kvs:
            return None
        kv = dict(kvs[0])
        kv["value"] = unb64(kv.get("value"))
        kv["key"] = unb64(kv.get("key"))
        return kv

    def put(self, key, value, lease=None):
        body = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        st, data = self.call("/v3/kv/put", body)
        if st != 200:
            raise RuntimeError("put %s: %s %s" % (key, st, data))

    def grant(self, ttl):
        st, data = self.call("/v3/lease/grant", {"TTL": ttl})
        if st != 200:
            raise RuntimeError("grant: %s %s" % (st, data))
        return data["ID"]

    def leader(self):
        """Index of the current leader, or None."""
        ids = {}
        for i in self.alive_members():
            try:
                st, data = http_json(self.member_url(i),
                                     "/v3/maintenance/status", {}, timeout=1,
                                     ctx=self.ssl_ctx)
            except OSError:
                continue
            if st == 200:
                ids[data["header"]["member_id"]] = i
                lead = data.get("leader")
                if lead in ids:
                    return ids[lead]
        for i in self.alive_members():
            try:
                st, data = http_json(self.member_url(i),
                                     "/v3/maintenance/status", {}, timeout=1,
                                     ctx=self.ssl_ctx)
            except OSError:
                continue
            if st == 200 and data.get("leader") in ids:
                return ids[data["leader"]]
        return None

    def lease_ttl(self, lease):
        """Seconds left on lease (etcd's TimeToLive), -1 when it is gone."""
        st, data = self.call("/v3/lease/timetolive", {"ID": str(lease)})
        if st != 200:
            raise RuntimeError("timetolive: %s %s" % (st, data))
        return int(data.get("TTL", "-1"))

    def leases(self):
        """Every lease ID etcd holds (/v3/lease/leases), as strings."""
        st, data = self.call("/v3/lease/leases", {})
        if st != 200:
            raise RuntimeError("leases: %s %s" % (st, data))
        return [l["ID"] for l in data.get("leases") or []]

    def lease_keys(self, lease):
        """(TTL, the keys attached to lease): TTL -1 when it is gone."""
        st, data = self.call("/v3/lease/timetolive",
                             {"ID": str(lease), "keys": True})
        if st != 200:
            raise RuntimeError("timetolive: %s %s" % (st, data))
        return (int(data.get("TTL", "-1")),
                sorted(unb64(k) for k in data.get("keys") or []))

    def revoke(self, lease):
        st, data = self.call("/v3/lease/revoke", {"ID": str(lease)})
        if st != 200:
            raise RuntimeError("revoke: %s %s" % (st, data))

    def metric(self, name, label=""):
        """The sum of etcd's Prometheus samples of name whose labels
        contain label, over the running members (GET /metrics)."""
        total = 0.0
        for i in self.alive_members():
            conn = connect(self.member_url(i), 3.0, self.ssl_ctx)
            try:
                conn.request("GET", "/metrics")
                text = conn.getresponse().read().decode(errors="replace")
            finally:
                conn.close()
            for line in text.splitlines():
                if line.startswith(name) and label in line and \
                        line[len(name):len(name) + 1] in ("{", " "):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def enable_auth(self, user, password, prefix):
        """Create root and `user` with READWRITE on prefix only (etcdctl
        role/user/auth enable); later helper calls go as root."""
        role = user + "-rw"
        self.etcdctl("user", "add", "root:" + ROOT_PASSWORD,
                     "--interactive=false")
        self.etcdctl("user", "grant-role", "root", "root")
        self.etcdctl("role", "add", role)
        self.etcdctl("role", "grant-permission", role, "readwrite",
                     "--prefix=true", prefix)
        self.etcdctl("user", "add", "%s:%s" % (user, password),
                     "--interactive=false")
        self.etcdctl("user", "grant-role", user, role)
        self.etcdctl("auth", "enable")
        self.auth = True
        self._root_token = None

    def watch(self, prefix):
        """Start collecting events under prefix; returns the Watcher."""
        w = Watcher(self, prefix)
        self.watchers.append(w)
        return w


def _serve(argv):
    """Controller for C tests: one JSON reply line per command line.

    kill I | start I | restart I wipe|keep | auth USER PASS PREFIX |
    watch PREFIX | events | get KEY | putlease KEY VALUE TTL |
    putunder KEY VALUE LEASE (an existing lease: another writer) | leader |
    leases | leasekeys ID | revoke ID | metric NAME [LABEL] | now | quit"""
    members = 1
    token_ttl = None
    if "--members" in argv:
        members = int(argv[argv.index("--members") + 1])
    for a in argv:
        if a.startswith("--auth-token-ttl="):
            token_ttl = int(a.split("=", 1)[1])
    out = sys.stdout

    def reply(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        c = EtcdCluster(members=members, auth_token_ttl=token_ttl)
    except Exception as e:  # report, do not hang the C side
        reply({"error": str(e)})
        return 1
    watcher = None
    reply({"endpoints": c.endpoints, "pids": c.pids()})
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            cmd = words[0]
            try:
                if cmd == "kill":
                    c.kill(int(words[1]))
                    reply({"ok": True, "t": time.monotonic()})
                elif cmd == "start":
                    t = c.start_member(int(words[1]))
                    reply({"ok": True, "healthy_at": t})
                elif cmd == "restart":
                    t = c.restart(int(words[1]), wipe=words[2] == "wipe")
                    reply({"ok": True, "healthy_at": t})
                elif cmd == "auth":
                    c.enable_auth(words[1], words[2], words[3])
                    reply({"ok": True})
                elif cmd == "watch":
                    watcher = c.watch(words[1])
                    reply({"ok": True})
                elif cmd == "events":
                    evs = watcher.snapshot() if watcher else []
                    reply({"events": [e.as_dict() for e in evs]})
                elif cmd == "get":
                    reply({"kv": c.get(words[1])})
                elif cmd == "putlease":
                    lease = c.grant(int(words[3]))
                    c.put(words[1], words[2], lease)
                    reply({"ok": True, "lease": lease})
                elif cmd == "putunder":
                    c.put(words[1], words[2], int(words[3]))
                    reply({"ok": True})
                elif cmd == "leases":
                    reply({"leases": c.leases()})
                elif cmd == "leasekeys":
                    ttl, keys = c.lease_keys(words[1])
                    reply({"ttl": ttl, "keys": keys})
                elif cmd == "revoke":
                    c.revoke(words[1])
                    reply({"ok": True})
                elif cmd == "metric":
                    reply({"value": c.metric(words[1],
                                             words[2] if len(words) > 2
                                             else "")})
                elif cmd == "leader":
                    reply({"leader": c.leader()})
                elif cmd == "now":
                    reply({"t": time.monotonic()})
                elif cmd == "quit":
                    reply({"ok": True})
                    break
                else:
                    reply({"error": "unknown command " + cmd})
            except Exception as e:
                reply({"error": "%s: %s" % (cmd, e)})
    finally:
        c.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        sys.exit(_serve(sys.argv[2:]))
    print(__doc__)
