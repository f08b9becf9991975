"""healthreg configured the way Consul users configure their clients: by
the official client's environment variables (hashicorp/consul api/api.go),
used where the config is silent, against the Consul emulator over HTTPS
and over a Unix socket.

- CONSUL_HTTP_ADDR=127.0.0.1:<TLS port> with CONSUL_HTTP_SSL=true speaks
  HTTPS (before, healthreg sent plain HTTP to the TLS port and was refused
  for ever); an http:// CONSUL_HTTP_ADDR with CONSUL_HTTP_SSL=true too.
- CONSUL_CACERT, CONSUL_CAPATH, CONSUL_CLIENT_CERT/KEY (mTLS),
  CONSUL_TLS_SERVER_NAME (its port dropped), CONSUL_HTTP_SSL_VERIFY=false
  (loud), CONSUL_HTTP_TOKEN and CONSUL_HTTP_TOKEN_FILE (the file wins).
- CONSUL_HTTP_ADDR=unix:///path reaches the agent on its socket.
- The config wins over every variable.
- `healthreg validate` names the variable of a bad value or file.

Every process is stopped by PID in a cleanup."""
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

import hrtest
import tlskit
from test_tls_registries import CLEAN_ENV, WAIT, config, log_events

sys.path.insert(0, os.path.join(hrtest.SOURCE_DIR, "tests", "consul_emulator"))
import emuctl  # noqa: E402

CHECK_ID = "service:web-8080:healthreg"
GOOD = "env-good-5ecret"
ENVTOK = "env-other-5ecret"


class TestConsulEnv(tlskit.PkiCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hr-cenv-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def emulator(self, server=None, **flags):
        server = server or self.pki.server
        emu = emuctl.start(tls_cert=server[0], tls_key=server[1], **flags)
        self.addCleanup(emu.cleanup)
        return emu

    def agent(self, emu, env, consul=None):
        e = dict(CLEAN_ENV)
        e.update(env)
        reg = {"check_ttl": "3s"}
        reg.update(consul or {})
        a = hrtest.Agent(config({"consul": reg}, emu.port), env=e)
        self.addCleanup(a.close)
        return a

    def checks(self, emu, token=None):
        h = {"X-Consul-Token": token} if token else {}
        code, _, body = emuctl.request(emu, "GET", "/v1/agent/checks",
                                       headers=h)
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def event(self, agent, name):
        """The first log line of event name (waited for: the emulator may
        show the registration before the agent logged the answer)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            ev = log_events(agent.log(), name)
            if ev:
                return ev[0]
            time.sleep(0.05)
        self.fail("no %s:\n%s" % (name, agent.log()))

    def registered(self, emu, agent, token=None):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            c = self.checks(emu, token).get(CHECK_ID)
            if c and c["Status"] == "passing":
                return c
            time.sleep(0.1)
        self.fail("not registered:\n%s\nemulator:\n%s" % (
            agent.log(), emu.log_text()[-3000:]))

    # -- the address ---------------------------------------------------------
    def test_host_port_with_ssl_true_speaks_https(self):
        """The issue's case: before the fix, plain HTTP went to the TLS
        port, the agent answered 400 "Client sent an HTTP request to an
        HTTPS server" and healthreg retried for ever."""
        emu = self.emulator()
        a = self.agent(emu, {
            "CONSUL_HTTP_ADDR": "127.0.0.1:%d" % emu.https_port,
            "CONSUL_HTTP_SSL": "true", "CONSUL_CACERT": self.pki.ca})
        self.registered(emu, a)
        self.assertEqual(self.event(a, "consul_registered")["address"],
                         emu.https_url, a.log())
        self.assertNotIn("Client sent an HTTP request", a.log())
        self.assertNotIn("[TLS]", emu.log_text())
        self.assertEqual(a.stop(), 0, a.log())
        self.assertEqual(self.checks(emu), {})

    def test_http_addr_with_ssl_true_is_not_reverted(self):
        emu = self.emulator()
        a = self.agent(emu, {
            "CONSUL_HTTP_ADDR": "http://127.0.0.1:%d" % emu.https_port,
            "CONSUL_HTTP_SSL": "1", "CONSUL_CACERT": self.pki.ca})
        self.registered(emu, a)
        self.assertEqual(self.event(a, "consul_registered")
                         ["address"], emu.https_url)

    def test_https_addr_and_capath(self):
        emu = self.emulator()
        a = self.agent(emu, {"CONSUL_HTTP_ADDR": emu.https_url,
                             "CONSUL_CAPATH": self.pki.ca_dir()})
        self.registered(emu, a)

    def test_unix_socket(self):
        sock = os.path.join(self.dir, "consul.sock")
        emu = self.emulator(unix=sock)
        a = self.agent(emu, {"CONSUL_HTTP_ADDR": "unix://" + sock})
        self.registered(emu, a)
        self.assertEqual(self.event(a, "consul_registered")
                         ["address"], "unix://" + sock)
        # The emulator's request log names the Unix-socket peer "@".
        self.assertIn('[HTTP] @ "PUT /v1/agent/service/register', emu.log_text())
        self.assertEqual(a.stop(), 0, a.log())
        self.assertEqual(self.checks(emu), {})

    def test_tls_over_unix_socket(self):
        """unix:// with CONSUL_HTTP_SSL=true: TLS over the socket, the
        certificate checked for localhost (no host in the address)."""
        sock = os.path.join(self.dir, "tls.sock")
        emu = self.emulator(unix=sock, unix_tls=True)
        env = {"CONSUL_HTTP_ADDR": "unix://" + sock,
               "CONSUL_HTTP_SSL": "true"}
        a = self.agent(emu, env)
        self.assertIn("unable to get local issuer certificate",
                      self.event(a, "consul_tls_failed")["error"])
        a.stop()
        b = self.agent(emu, dict(env, CONSUL_CACERT=self.pki.ca))
        self.registered(emu, b)
        self.assertIn('[HTTP] @ "PUT /v1/agent/service/register',
                      emu.log_text())

    def test_unix_socket_from_config(self):
        sock = os.path.join(self.dir, "c.sock")
        emu = self.emulator(unix=sock)
        a = self.agent(emu, {"CONSUL_HTTP_ADDR": emu.https_url},
                       {"address": "unix://" + sock})
        self.registered(emu, a)
        self.assertIn('[HTTP] @ "PUT /v1/agent/service/register',
                      emu.log_text())

    def test_config_wins(self):
        emu = self.emulator()
        # Every variable points at something wrong; the config is right.
        a = self.agent(emu, {
            "CONSUL_HTTP_ADDR": "127.0.0.1:1", "CONSUL_HTTP_SSL": "true",
            "CONSUL_CACERT": self.pki.other_ca,
            "CONSUL_TLS_SERVER_NAME": "wrong.invalid",
            "CONSUL_HTTP_SSL_VERIFY": "false"},
            {"address": emu.https_url, "ca_file": self.pki.ca,
             "tls_server_name": "localhost", "tls_skip_verify": False})
        self.registered(emu, a)
        self.assertNotIn("registry_tls_unverified", a.log())

    # -- TLS -----------------------------------------------------------------
    def test_client_certificate_and_server_name(self):
        emu = self.emulator(self.pki.server_wrong_name, tls_ca=self.pki.ca)
        a = self.agent(emu, {
            "CONSUL_HTTP_ADDR": emu.https_url, "CONSUL_CACERT": self.pki.ca,
            "CONSUL_CLIENT_CERT": self.pki.client[0],
            "CONSUL_CLIENT_KEY": self.pki.client[1],
            # Its port is dropped, as the official client does.
            "CONSUL_TLS_SERVER_NAME": "wrong.invalid:%d" % emu.https_port})
        self.registered(emu, a)

    def test_ssl_verify_false_is_loud(self):
        emu = self.emulator(self.pki.server_expired)
        a = self.agent(emu, {"CONSUL_HTTP_ADDR": emu.https_url,
                             "CONSUL_HTTP_SSL_VERIFY": "false"})
        self.registered(emu, a)
        ev = log_events(a.log(), "registry_tls_unverified")
        self.assertEqual(len(ev), 1, a.log())
        self.assertEqual((ev[0]["level"], ev[0]["registry"]),
                         ("warn", "consul"))
        self.assertIn("CONSUL_HTTP_SSL_VERIFY=false", a.log())

    # -- token ---------------------------------------------------------------
    def test_token_and_token_file(self):
        emu = self.emulator(acl_default_policy="deny",
                            acl_token=["root-5ecret",
                                       GOOD + "=service:web:write",
                                       ENVTOK + "=service:web:read"])
        tok = os.path.join(self.dir, "token")
        with open(tok, "w") as f:
            f.write(GOOD + "\n")
        os.chmod(tok, 0o600)
        env = {"CONSUL_HTTP_ADDR": emu.https_url,
               "CONSUL_CACERT": self.pki.ca}
        # The token variable alone.
        a = self.agent(emu, dict(env, CONSUL_HTTP_TOKEN=GOOD))
        self.registered(emu, a, "root-5ecret")
        self.assertNotIn(GOOD, a.log())
        a.stop()
        # The token file wins over the variable (a read-only token here).
        b = self.agent(emu, dict(env, CONSUL_HTTP_TOKEN=ENVTOK,
                                 CONSUL_HTTP_TOKEN_FILE=tok))
        self.registered(emu, b, "root-5ecret")
        self.assertNotIn("consul_forbidden", b.log())
        b.stop()
        # A file group or others may read is refused, naming the variable.
        os.chmod(tok, 0o644)
        c = self.agent(emu, dict(env, CONSUL_HTTP_TOKEN_FILE=tok))
        self.assertNotEqual(c.proc.wait(timeout=WAIT), 0)
        self.assertIn("CONSUL_HTTP_TOKEN_FILE: %s: permissions 0644 are too "
                      "open" % tok, c.log())

    # -- validate ------------------------------------------------------------
    def validate(self, env, consul=None):
        e = dict(CLEAN_ENV)
        e.update(env)
        path = hrtest.write_config(config({"consul": consul or {}}, 1),
                                   self.dir)
        return hrtest.run(["validate", "-c", path], timeout=30, env=e)

    def test_validate_names_the_variable(self):
        missing = os.path.join(self.dir, "nope.pem")
        cases = [
            ({"CONSUL_HTTP_SSL": "yes"},
             'registry.consul: CONSUL_HTTP_SSL="yes" is not a boolean'),
            ({"CONSUL_HTTP_SSL": "true", "CONSUL_HTTP_SSL_VERIFY": "nah"},
             'CONSUL_HTTP_SSL_VERIFY="nah" is not a boolean'),
            ({"CONSUL_HTTP_SSL": "true", "CONSUL_CACERT": missing},
             "CONSUL_CACERT: %s: No such file or directory" % missing),
            ({"CONSUL_HTTP_SSL": "true", "CONSUL_CAPATH": missing},
             "CONSUL_CAPATH: %s: No such file or directory" % missing),
            ({"CONSUL_HTTP_SSL": "true",
              "CONSUL_CLIENT_CERT": self.pki.client[0],
              "CONSUL_CLIENT_KEY": missing},
             "CONSUL_CLIENT_KEY: %s: No such file or directory" % missing),
            ({"CONSUL_HTTP_ADDR": "unix://relative.sock"},
             "(from CONSUL_HTTP_ADDR): a unix:// address needs an absolute"),
        ]
        for env, text in cases:
            v = self.validate(env)
            self.assertEqual(v.returncode, 78, (env, v.stderr))
            self.assertIn(text, v.stderr, env)
        v = self.validate({"CONSUL_HTTP_SSL": "true",
                           "CONSUL_CACERT": self.pki.ca,
                           "CONSUL_HTTP_SSL_VERIFY": "false"})
        self.assertEqual(v.returncode, 0, v.stderr)
        self.assertIn("warning", v.stderr)
        self.assertIn("CONSUL_HTTP_SSL_VERIFY=false", v.stderr)


if __name__ == "__main__":
    unittest.main()
