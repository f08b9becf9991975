"""TLS and mTLS between healthreg and both registries, with certificates
the test makes (tests/support/tlskit.py: a CA, another CA, a server
certificate for localhost/127.0.0.1, one with the wrong name, an expired
one, client certificates of both CAs).

- etcd: a real etcd with https client URLs (and --client-cert-auth for
  mTLS): verification is on by default, ca_file and ca_path are trusted, a
  wrong CA, an expired certificate and a wrong host name are refused with
  one `etcd_tls_failed` line naming the registry, the endpoint and curl's
  reason; tls_skip_verify works and is logged loudly.
- Consul: the emulator's HTTPS listener: the same, plus tls_server_name,
  a key inside cert_file, and the warning again on every backend build
  (a reload that changes the section).
- `healthreg validate` names the field of a TLS file that cannot be used.

Every process (etcd, emulator, healthreg) is stopped by PID in a cleanup.
Waits are behaviour deadlines with margin, never speed assertions."""
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

import etcd_harness
import hrtest
import tlskit

sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
import emuctl  # noqa: E402

WAIT = 15  # seconds: generous, the machine may be loaded

# The agent's environment: no CONSUL_* or ETCD_* from the caller.
CLEAN_ENV = {k: "" for k in (
    "CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE",
    "CONSUL_HTTP_SSL", "CONSUL_HTTP_SSL_VERIFY", "CONSUL_CACERT",
    "CONSUL_CAPATH", "CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY",
    "CONSUL_TLS_SERVER_NAME", "ETCD_USERNAME", "ETCD_PASSWORD")}


def config(registry, check_port, port=8080):
    return {"service": {"name": "web", "id": "web-%d" % port,
                        "address": "127.0.0.1", "port": port,
                        "checks": [{"name": "up", "interval": "200ms",
                                    "tcp": "127.0.0.1:%d" % check_port}]},
            "agent": {"api_listen": "off", "shutdown_timeout": "3s"},
            "registry": registry}


def log_events(log, event):
    """The log lines of one event, as dicts of key=value (quoted values
    unquoted)."""
    out = []
    for line in log.splitlines():
        if " event=%s " % event not in line + " ":
            continue
        kv = {}
        for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
            v = m.group(2)
            kv[m.group(1)] = json.loads(v) if v.startswith('"') else v
        out.append(kv)
    return out


class TlsCase(tlskit.PkiCase):
    def agent(self, cfg, env=None, extra_args=()):
        e = dict(CLEAN_ENV)
        e.update(env or {})
        a = hrtest.Agent(cfg, extra_args=extra_args, env=e)
        self.addCleanup(a.close)
        return a

    def validate(self, cfg, env=None):
        e = dict(CLEAN_ENV)
        e.update(env or {})
        path = hrtest.write_config(cfg)
        self.addCleanup(os.unlink, path)
        return hrtest.run(["validate", "-c", path], timeout=30, env=e)

    def wait_event(self, agent, event, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = log_events(agent.log(), event)
            if ev:
                return ev
            if agent.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.fail("no %s in the log:\n%s" % (event, agent.log()))


@unittest.skipUnless(shutil.which(etcd_harness.ETCD), "etcd not installed")
class TestEtcdTls(TlsCase):
    def etcd(self, server, client_ca=None):
        tls = {"cert": server[0], "key": server[1]}
        if client_ca:
            tls.update(client_ca=client_ca, client=self.pki.client)
        c = etcd_harness.EtcdCluster(tls=tls)
        self.addCleanup(c.close)
        return c

    def etcd_config(self, c, port=8080, **etcd):
        reg = {"endpoints": c.endpoints, "lease_ttl": "3s",
               "request_timeout": "2s"}
        reg.update(etcd)
        return config({"etcd": reg}, c.client_ports[0], port)

    def key(self, port=8080):
        return "services/web/127.0.0.1:%d" % port

    def wait_key(self, c, agent, port=8080):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            kv = c.get(self.key(port))
            if kv:
                return kv
            time.sleep(0.1)
        self.fail("key not registered:\n" + agent.log())

    def refused(self, c, agent, reason_part, port=8080):
        """One etcd_tls_failed error naming the registry, the endpoint and
        curl's reason; nothing registered."""
        ev = self.wait_event(agent, "etcd_tls_failed")[0]
        self.assertEqual(ev["level"], "error", ev)
        self.assertEqual(ev["registry"], "etcd", ev)
        self.assertEqual(ev["endpoint"], c.endpoints[0], ev)
        self.assertIn(reason_part, ev["reason"], ev)
        self.assertNotIn("etcd_unavailable", agent.log())
        self.assertIsNone(c.get(self.key(port)))
        # A certificate problem is a setting to fix, not an outage: the
        # registry's state is "failing", never "unreachable".
        st = self.wait_event(agent, "registry_failing")[0]
        self.assertEqual((st["level"], st["backend"]), ("error", "etcd"), st)
        self.assertNotIn("registry_unreachable", agent.log())
        return ev

    def test_verified_by_default_and_ca_file(self):
        c = self.etcd(self.pki.server)
        # No ca_file: the system's CAs do not know the test CA.
        a = self.agent(self.etcd_config(c))
        self.refused(c, a, "unable to get local issuer certificate")
        self.assertEqual(a.stop(), 0, a.log())
        b = self.agent(self.etcd_config(c, ca_file=self.pki.ca))
        kv = self.wait_key(c, b)
        self.assertEqual(json.loads(kv["value"])["Addr"], "127.0.0.1:8080")
        self.assertNotIn("etcd_tls_failed", b.log())
        self.assertEqual(b.stop(), 0, b.log())
        # SIGTERM revoked the lease over TLS too.
        self.assertIsNone(c.get(self.key()))
        self.assertIn("etcd_lease_revoked", b.log())

    def test_wrong_ca_rejected(self):
        c = self.etcd(self.pki.server)
        a = self.agent(self.etcd_config(c, ca_file=self.pki.other_ca))
        self.refused(c, a, "SSL certificate problem: unable to get local "
                           "issuer certificate")

    def test_ca_path(self):
        c = self.etcd(self.pki.server)
        d = self.pki.ca_dir("etcd-cadir",
                            [self.pki.other_ca, self.pki.ca])
        a = self.agent(self.etcd_config(c, ca_path=d))
        self.wait_key(c, a)

    def test_expired_certificate_rejected(self):
        c = self.etcd(self.pki.server_expired)
        a = self.agent(self.etcd_config(c, ca_file=self.pki.ca))
        self.refused(c, a, "certificate has expired")

    def test_hostname_mismatch_refused(self):
        c = self.etcd(self.pki.server_wrong_name)
        a = self.agent(self.etcd_config(c, ca_file=self.pki.ca))
        self.refused(c, a, "no alternative certificate subject name "
                           "matches target host name '127.0.0.1'")

    def test_skip_verify_works_and_is_loud(self):
        c = self.etcd(self.pki.server_expired)
        cfg = self.etcd_config(c, tls_skip_verify=True)
        v = self.validate(cfg)
        self.assertEqual(v.returncode, 0, v.stderr)
        self.assertIn("warning", v.stderr)
        self.assertIn("registry.etcd.tls_skip_verify: true: the registry's "
                      "certificate and host name are not verified",
                      v.stderr)
        a = self.agent(cfg)
        self.wait_key(c, a)
        ev = log_events(a.log(), "registry_tls_unverified")
        self.assertEqual(len(ev), 1, a.log())
        self.assertEqual((ev[0]["level"], ev[0]["registry"],
                          ev[0]["address"]),
                         ("warn", "etcd", c.endpoints[0]))

    def refused_client(self, c, agent):
        """etcd refuses the client certificate. Under TLS 1.3 it does so
        after the client's half of the handshake, so curl reports either
        the alert (etcd_tls_failed) or a write on the closed connection
        (etcd_unavailable, "Broken pipe", or an etcd_tls_failed "bad write
        retry"), whichever it meets first: wait for three failed attempts,
        each naming the endpoint and curl's reason."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            ev = (log_events(agent.log(), "etcd_tls_failed") +
                  log_events(agent.log(), "etcd_unavailable"))
            if len(ev) >= 3:
                break
            time.sleep(0.05)
        self.assertGreaterEqual(len(ev), 3, agent.log())
        for e in ev:
            self.assertEqual(e["endpoint"], c.endpoints[0], e)
            self.assertTrue(e["reason"], e)
        self.assertIsNone(c.get(self.key()))

    def test_mtls(self):
        c = self.etcd(self.pki.server, client_ca=self.pki.ca)
        # Without a client certificate: refused by etcd. Each attempt is
        # counted: an etcd_unavailable line is at debug level (the
        # outage itself is one registry_unreachable line).
        a = self.agent(self.etcd_config(c, ca_file=self.pki.ca),
                       extra_args=("--log-level", "debug"))
        self.refused_client(c, a)
        a.stop()
        # A client certificate of another CA: refused as well.
        b = self.agent(self.etcd_config(
            c, ca_file=self.pki.ca, cert_file=self.pki.client_other_ca[0],
            key_file=self.pki.client_other_ca[1]),
            extra_args=("--log-level", "debug"))
        self.refused_client(c, b)
        b.stop()
        ok = self.agent(self.etcd_config(
            c, ca_file=self.pki.ca, cert_file=self.pki.client[0],
            key_file=self.pki.client[1]))
        self.wait_key(c, ok)
        self.assertNotIn("etcd_tls_failed", ok.log())
        self.assertEqual(ok.stop(), 0, ok.log())
        self.assertIsNone(c.get(self.key()))


class TestValidateTlsFiles(TlsCase):
    """validate names the field of a TLS file that cannot be used (no
    registry needs to run)."""

    def cases(self):
        d = tempfile.mkdtemp(prefix="hr-tlsfiles-")
        self.addCleanup(shutil.rmtree, d, True)
        notpem = os.path.join(d, "not.pem")
        with open(notpem, "w") as f:
            f.write("just text\n")
        emptydir = os.path.join(d, "empty")
        os.mkdir(emptydir)
        baddir = self.pki.ca_dir("bad-cadir")
        shutil.copy(notpem, os.path.join(baddir, "zz-readme.txt"))
        missing = os.path.join(d, "missing.pem")
        return [
            ({"ca_file": missing}, "ca_file: %s: No such file or directory"
             % missing),
            ({"ca_file": notpem}, "ca_file: %s: holds no PEM certificate"
             % notpem),
            ({"ca_file": d}, "ca_file: %s: is not a regular file" % d),
            ({"ca_path": emptydir}, "ca_path: %s: holds no certificate file"
             % emptydir),
            ({"ca_path": baddir}, "ca_path: %s: zz-readme.txt: holds no PEM "
             "certificate" % baddir),
            ({"ca_path": missing}, "ca_path: %s: No such file or directory"
             % missing),
            ({"cert_file": self.pki.client[0]},
             "cert_file: %s: holds no PEM private key and key_file is not "
             "set" % self.pki.client[0]),
            ({"cert_file": self.pki.client[0], "key_file": notpem},
             "key_file: %s: holds no PEM private key" % notpem),
            ({"cert_file": notpem, "key_file": self.pki.client[1]},
             "cert_file: %s: holds no PEM certificate" % notpem),
        ]

    def test_etcd_fields(self):
        for extra, text in self.cases():
            reg = {"endpoints": ["https://127.0.0.1:1"]}
            reg.update(extra)
            v = self.validate(config({"etcd": reg}, 1))
            self.assertEqual(v.returncode, 78, (extra, v.stderr))
            self.assertIn("registry.etcd." + text, v.stderr, extra)

    def test_consul_fields(self):
        for extra, text in self.cases():
            reg = {"address": "https://127.0.0.1:1"}
            reg.update(extra)
            v = self.validate(config({"consul": reg}, 1))
            self.assertEqual(v.returncode, 78, (extra, v.stderr))
            self.assertIn("registry.consul." + text, v.stderr, extra)

    def test_good_files_and_plain_http(self):
        reg = {"address": "https://127.0.0.1:1", "ca_file": self.pki.ca,
               "cert_file": self.pki.client[0],
               "key_file": self.pki.client[1]}
        v = self.validate(config({"consul": reg}, 1))
        self.assertEqual(v.returncode, 0, v.stderr)
        combined = self.pki.combined(self.pki.client, "client-both.pem")
        reg = {"endpoints": ["https://127.0.0.1:1"],
               "ca_path": self.pki.ca_dir(), "cert_file": combined}
        v = self.validate(config({"etcd": reg}, 1))
        self.assertEqual(v.returncode, 0, v.stderr)
        # With plain http the TLS files are not used, so not checked.
        reg = {"address": "http://127.0.0.1:1", "ca_file": "/nonexistent"}
        v = self.validate(config({"consul": reg}, 1))
        self.assertEqual(v.returncode, 0, v.stderr)
        self.assertIn("TLS settings are ignored", v.stderr)


class TestConsulTls(TlsCase):
    def emulator(self, server=None, client_ca=None):
        server = server or self.pki.server
        emu = emuctl.start(tls_cert=server[0], tls_key=server[1],
                           tls_ca=client_ca)
        self.addCleanup(emu.cleanup)
        return emu

    def consul_config(self, emu, **consul):
        reg = {"address": emu.https_url, "check_ttl": "3s"}
        reg.update(consul)
        return config({"consul": reg}, emu.port)

    def registered(self, emu, agent):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            code, _, body = emuctl.request(emu, "GET", "/v1/agent/checks")
            checks = json.loads(body) if code == 200 else {}
            c = checks.get("service:web-8080:healthreg")
            if c and c["Status"] == "passing":
                return c
            time.sleep(0.1)
        self.fail("not registered:\n" + agent.log())

    def refused(self, emu, agent, reason_part):
        ev = self.wait_event(agent, "consul_tls_failed")[0]
        self.assertEqual((ev["level"], ev["registry"], ev["address"]),
                         ("error", "consul", emu.https_url), ev)
        self.assertIn(reason_part, ev["error"], ev)
        code, _, body = emuctl.request(emu, "GET", "/v1/agent/services")
        self.assertEqual(json.loads(body), {})
        if reason_part != "alert":  # a refused client certificate may
            # first look like a closed connection (see refused_client)
            st = self.wait_event(agent, "registry_failing")[0]
            self.assertEqual((st["level"], st["backend"]),
                             ("error", "consul"), st)
            self.assertNotIn("registry_unreachable", agent.log())
        return ev

    def test_verified_by_default_and_ca_file(self):
        emu = self.emulator()
        a = self.agent(self.consul_config(emu))
        self.refused(emu, a, "unable to get local issuer certificate")
        a.stop()
        b = self.agent(self.consul_config(emu, ca_file=self.pki.ca))
        self.registered(emu, b)
        self.assertNotIn("consul_tls_failed", b.log())
        self.assertEqual(b.stop(), 0, b.log())
        code, _, body = emuctl.request(emu, "GET", "/v1/agent/services")
        self.assertEqual(json.loads(body), {}, b.log())

    def test_wrong_ca_and_ca_path(self):
        emu = self.emulator()
        a = self.agent(self.consul_config(emu, ca_file=self.pki.other_ca))
        self.refused(emu, a, "unable to get local issuer certificate")
        a.stop()
        b = self.agent(self.consul_config(emu, ca_path=self.pki.ca_dir()))
        self.registered(emu, b)

    def test_expired_rejected(self):
        emu = self.emulator(self.pki.server_expired)
        a = self.agent(self.consul_config(emu, ca_file=self.pki.ca))
        self.refused(emu, a, "certificate has expired")

    def test_hostname_mismatch_and_tls_server_name(self):
        emu = self.emulator(self.pki.server_wrong_name)
        a = self.agent(self.consul_config(emu, ca_file=self.pki.ca))
        self.refused(emu, a, "no alternative certificate subject name "
                             "matches target host name '127.0.0.1'")
        a.stop()
        b = self.agent(self.consul_config(emu, ca_file=self.pki.ca,
                                          tls_server_name="wrong.invalid"))
        self.registered(emu, b)

    def test_mtls_and_key_in_cert_file(self):
        emu = self.emulator(client_ca=self.pki.ca)
        a = self.agent(self.consul_config(emu, ca_file=self.pki.ca))
        ev = self.refused(emu, a, "alert")
        self.assertIn("certificate", ev["error"])
        a.stop()
        b = self.agent(self.consul_config(
            emu, ca_file=self.pki.ca, cert_file=self.pki.client_other_ca[0],
            key_file=self.pki.client_other_ca[1]))
        self.refused(emu, b, "alert")
        b.stop()
        combined = self.pki.combined(self.pki.client, "consul-client.pem")
        ok = self.agent(self.consul_config(emu, ca_file=self.pki.ca,
                                           cert_file=combined))
        self.registered(emu, ok)

    def test_skip_verify_loud_on_every_build(self):
        emu = self.emulator(self.pki.server_expired)
        cfg = self.consul_config(emu, tls_skip_verify=True)
        v = self.validate(cfg)
        self.assertEqual(v.returncode, 0, v.stderr)
        self.assertIn("registry.consul.tls_skip_verify: true: the "
                      "registry's certificate and host name are not "
                      "verified", v.stderr)
        a = self.agent(cfg)
        self.registered(emu, a)
        ev = log_events(a.log(), "registry_tls_unverified")
        self.assertEqual(len(ev), 1, a.log())
        self.assertEqual((ev[0]["level"], ev[0]["registry"],
                          ev[0]["address"]),
                         ("warn", "consul", emu.https_url))
        # A reload that changes the section builds a new backend: warned
        # again.
        cfg["registry"]["consul"]["check_ttl"] = "4s"
        with open(a.config_path, "w") as f:
            json.dump(cfg, f)
        os.kill(a.pid, signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        while (len(log_events(a.log(), "registry_tls_unverified")) < 2 and
               time.monotonic() < deadline):
            time.sleep(0.05)
        self.assertEqual(len(log_events(a.log(), "registry_tls_unverified")),
                         2, a.log())


if __name__ == "__main__":
    unittest.main()
