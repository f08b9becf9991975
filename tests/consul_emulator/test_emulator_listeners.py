"""The emulator's listeners: HTTPS next to HTTP (Consul's ports.https),
client certificates required with --tls-ca (verify_incoming), Go's answer
to plain HTTP on the TLS port, and the Unix socket (addresses.http =
"unix://..."). All listeners serve one agent state.

Run:  cd tests/consul_emulator && python3 -m unittest -v test_emulator_listeners

Certificates come from tests/support/tlskit.py (openssl); each test's
emulator is stopped by PID in a cleanup."""

import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import emuctl  # noqa: E402
import tlskit  # noqa: E402

REGISTER = json.dumps({"ID": "web-1", "Name": "web",
                       "Check": {"CheckID": "c1", "TTL": "30s"}})


class TestListeners(tlskit.PkiCase):
    def start(self, **flags):
        emu = emuctl.start(**flags)
        self.addCleanup(emu.cleanup)
        return emu

    def https(self, emu, ctx):
        import http.client
        return http.client.HTTPSConnection("127.0.0.1", emu.https_port,
                                           timeout=10, context=ctx)

    def test_https_shares_state_with_http(self):
        emu = self.start(tls_cert=self.pki.server[0],
                         tls_key=self.pki.server[1])
        self.assertTrue(emu.https_url.startswith("https://127.0.0.1:"))
        ctx = emuctl.tls_client_context(ca=self.pki.ca)
        st, _, body = emuctl.request_on(self.https(emu, ctx), "PUT",
                                        "/v1/agent/service/register",
                                        REGISTER)
        self.assertEqual(st, 200, body)
        st, _, body = emuctl.request(emu, "GET", "/v1/agent/services")
        self.assertEqual(list(json.loads(body)), ["web-1"])
        # The certificate names localhost and 127.0.0.1.
        ctx = emuctl.tls_client_context(ca=self.pki.other_ca)
        with self.assertRaises(ssl.SSLCertVerificationError):
            emuctl.request_on(self.https(emu, ctx), "GET", "/v1/agent/services")

    def test_restart_keeps_the_https_port(self):
        emu = self.start(tls_cert=self.pki.server[0],
                         tls_key=self.pki.server[1])
        port, https_port = emu.port, emu.https_port
        emu.restart_wiped()
        self.assertEqual((emu.port, emu.https_port), (port, https_port))

    def test_plain_http_on_the_tls_port_gets_go_s_400(self):
        emu = self.start(tls_cert=self.pki.server[0],
                         tls_key=self.pki.server[1])
        with socket.create_connection(("127.0.0.1", emu.https_port), 10) as s:
            s.sendall(b"GET /v1/agent/services HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        self.assertEqual(data, b"HTTP/1.0 400 Bad Request\r\n\r\n"
                               b"Client sent an HTTP request to an HTTPS "
                               b"server.\n")

    def test_client_certificate_required_with_tls_ca(self):
        emu = self.start(tls_cert=self.pki.server[0],
                         tls_key=self.pki.server[1], tls_ca=self.pki.ca)
        ok = emuctl.tls_client_context(ca=self.pki.ca,
                                       cert=self.pki.client[0],
                                       key=self.pki.client[1])
        st, _, _ = emuctl.request_on(self.https(emu, ok), "GET",
                                     "/v1/agent/services")
        self.assertEqual(st, 200)
        for cert in (None, self.pki.client_other_ca):
            ctx = emuctl.tls_client_context(
                ca=self.pki.ca, cert=cert and cert[0], key=cert and cert[1])
            with self.assertRaises((ssl.SSLError, ConnectionError)):
                emuctl.request_on(self.https(emu, ctx), "GET",
                                  "/v1/agent/services")
        self.assertIn("[TLS] https handshake failed", emu.log_text())

    def test_unix_socket(self):
        d = tempfile.mkdtemp(prefix="emu-unix-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "agent.sock")
        emu = self.start(unix=path)
        self.assertEqual(emu.unix_url, "unix://" + path)
        st, _, body = emuctl.request_on(emuctl.UnixHTTPConnection(path),
                                        "PUT", "/v1/agent/service/register",
                                        REGISTER)
        self.assertEqual(st, 200, body)
        st, _, body = emuctl.request(emu, "GET", "/v1/agent/services")
        self.assertEqual(list(json.loads(body)), ["web-1"])
        self.assertIn('[HTTP] @ "PUT /v1/agent/service/register',
                      emu.log_text())
        emu.stop()
        self.assertFalse(os.path.exists(path))

    def test_bad_tls_flags_refused(self):
        import subprocess
        r = subprocess.run([sys.executable, "-S", emuctl.EMULATOR,
                            "--tls-cert", self.pki.server[0]],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--tls-cert and --tls-key go together", r.stderr)


if __name__ == "__main__":
    unittest.main()
