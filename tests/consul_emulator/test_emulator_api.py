"""Pins the Consul agent emulator to the reference (consul-agent-api.md).

Run:  cd tests/consul_emulator && python3 -m unittest -v test_emulator_api

Every test starts its own emulator subprocess on a free loopback port (killed
by PID in a cleanup, even on failure).  Time-dependent behaviour (TTL expiry,
DCSA reaping, deferred output) uses shrunk knobs and generous deadlines; a
"has not happened yet" assertion is only made when the measured elapsed time
proves the test was not starved, otherwise that assertion is skipped.
"""

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import emuctl  # noqa: E402

ANON = "00000000-0000-0000-0000-000000000002"
DEADLINE = 20.0  # generous upper bound for anything asynchronous


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        self.text = body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.text)

    def header(self, name):
        return self.headers.get(name)


class EmuCase(unittest.TestCase):
    FLAGS = {"check_update_interval_ms": 0, "reap_min_ms": 300, "reap_tick_ms": 50}

    def setUp(self):
        self.emu = emuctl.start(**self.FLAGS)
        self.addCleanup(self.emu.cleanup)
        self.addCleanup(self._no_internal_errors)  # runs first (LIFO)

    def _no_internal_errors(self):
        """An emulator bug surfaces as a 500 that could pass for Consul behaviour:
        make it fail the test instead."""
        self.assertNotIn("[ERROR]", self.emu.log_text())

    # -- HTTP helpers ---------------------------------------------------------
    def req(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.emu.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Resp(r.status, r.headers, r.read())
        finally:
            conn.close()

    def put(self, path, body=None, **kw):
        return self.req("PUT", path, body, **kw)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def assertResp(self, r, status, text=None):
        self.assertEqual(r.status, status, r.text)
        if text is not None:
            self.assertEqual(r.text, text)

    def register(self, query="", headers=None, **fields):
        body = {"ID": "web-1", "Name": "web", "Tags": ["v1"], "Address": "10.0.0.5",
                "Port": 8080, "Meta": {"agent": "hc"},
                "Check": {"CheckID": "web-1:ttl", "Name": "web-1 aggregated",
                          "Notes": "set by hc agent", "TTL": "15s", "Status": "critical",
                          "DeregisterCriticalServiceAfter": "10m"}}
        body.update(fields)
        body = {k: v for k, v in body.items() if v is not Ellipsis}
        return self.put("/v1/agent/service/register" + query, body, headers=headers)

    def update(self, cid, status, output=None, headers=None):
        body = {"Status": status}
        if output is not None:
            body["Output"] = output
        return self.put("/v1/agent/check/update/" + cid, body, headers=headers)

    def checks(self):
        r = self.get("/v1/agent/checks")
        self.assertResp(r, 200)
        return r.json()

    def services(self, headers=None):
        r = self.get("/v1/agent/services", headers=headers)
        self.assertResp(r, 200)
        return r.json()

    def wait_for(self, pred, what, timeout=DEADLINE, step=0.02):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = pred()
            if v:
                return v
            time.sleep(step)
        self.fail("timed out after %.0fs waiting for %s" % (timeout, what))


# ---------------------------------------------------------------------------
class TestHTTPCommon(EmuCase):
    def test_wrong_method_405_with_allow(self):
        """ref 0: fixed methods per route, 405 + Allow + plain-text 'method X not allowed'."""
        r = self.req("POST", "/v1/agent/checks")
        self.assertResp(r, 405, "method POST not allowed")
        self.assertEqual(r.header("Allow"), "OPTIONS,GET")
        r = self.get("/v1/agent/service/register")
        self.assertResp(r, 405, "method GET not allowed")
        self.assertEqual(r.header("Allow"), "OPTIONS,PUT")
        for path in ("/v1/agent/check/pass/x", "/v1/agent/check/warn/x", "/v1/agent/check/fail/x",
                     "/v1/agent/check/update/x", "/v1/agent/service/deregister/x"):
            r = self.get(path)
            self.assertResp(r, 405, "method GET not allowed")
        r = self.put("/v1/health/service/web")
        self.assertResp(r, 405, "method PUT not allowed")
        r = self.req("DELETE", "/v1/agent/service/deregister/web-1")
        self.assertResp(r, 405, "method DELETE not allowed")

    def test_options_200_with_allow(self):
        """ref 0: OPTIONS gets 200 with the Allow header."""
        r = self.req("OPTIONS", "/v1/agent/check/update/x")
        self.assertResp(r, 200, "")
        self.assertEqual(r.header("Allow"), "OPTIONS,PUT")

    def test_unknown_v1_path_404(self):
        """ref 0: unregistered /v1/ path -> 404 'Invalid URL path: ...'."""
        r = self.get("/v1/agent/nonsense")
        self.assertResp(r, 404, "Invalid URL path: not a recognized HTTP API endpoint")

    def test_subtree_path_without_slash_redirects(self):
        """ref 0 (Go ServeMux): a route registered as "/x/" redirects "/x" with 301,
        so an ID-less deregister/update is not silently treated as a valid call."""
        for path in ("/v1/agent/service/deregister", "/v1/agent/check/update"):
            r = self.put(path)
            self.assertEqual(r.status, 301, path)
            self.assertEqual(r.header("Location"), path + "/")

    def test_write_success_is_200_empty_without_content_type(self):
        """ref 0 / 1.4: successful write -> 200, empty body, no Content-Type."""
        r = self.register()
        self.assertResp(r, 200, "")
        self.assertIsNone(r.header("Content-Type"))
        self.assertEqual(r.header("Content-Length"), "0")

    def test_errors_are_plain_text_and_reads_json(self):
        """ref 0: error bodies are plain text, reads are application/json."""
        r = self.put("/v1/agent/check/update/nope", {"Status": "passing"})
        self.assertEqual(r.status, 404)
        self.assertTrue(r.header("Content-Type").startswith("text/plain"))
        self.assertRaises(ValueError, json.loads, r.text)
        r = self.get("/v1/agent/services")
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(r.json(), {})

    def test_default_acl_policy_header(self):
        """ref 0: X-Consul-Default-ACL-Policy is set (default allow)."""
        self.assertEqual(self.get("/v1/agent/services").header("X-Consul-Default-ACL-Policy"),
                         "allow")

    def test_pretty(self):
        """ref 0: ?pretty indents the JSON output."""
        self.register()
        r = self.get("/v1/agent/services?pretty")
        self.assertIn("\n    ", r.text)
        self.assertEqual(r.json(), self.services())

    def test_keepalive_reuses_connection_with_exact_content_length(self):
        """ref 0 (transport): HTTP/1.1 keep-alive, Content-Length on every response,
        so one client connection survives successes, errors, 404s and 405s."""
        conn = http.client.HTTPConnection("127.0.0.1", self.emu.port, timeout=30)
        self.addCleanup(conn.close)
        seq = [
            ("PUT", "/v1/agent/service/register", json.dumps({"Name": "web", "ID": "web-1",
             "Check": {"CheckID": "c", "TTL": "30s"}}), 200),
            ("PUT", "/v1/agent/check/update/c", json.dumps({"Status": "bogus"}), 400),
            ("PUT", "/v1/agent/check/update/c", json.dumps({"Status": "passing"}), 200),
            ("POST", "/v1/agent/checks", "ignored body", 405),
            ("GET", "/v1/agent/nonsense", None, 404),
            ("GET", "/v1/agent/health/service/id/web-1", None, 200),
            ("GET", "/v1/agent/health/service/id/nope", None, 404),
            ("PUT", "/v1/agent/check/pass/c?note=x", None, 200),
        ]
        sock = None
        for method, path, body, status in seq:
            conn.request(method, path, body=body)
            r = conn.getresponse()
            data = r.read()
            self.assertEqual(r.status, status, (path, data))
            self.assertEqual(int(r.getheader("Content-Length")), len(data))
            self.assertFalse(r.will_close)
            if sock is None:
                sock = conn.sock
            self.assertIs(conn.sock, sock, "connection was not reused")

    def test_expect_100_continue(self):
        """ref 0 (transport): libcurl may send 'Expect: 100-continue' with a PUT body."""
        import socket
        self.register()
        body = json.dumps({"Status": "passing", "Output": "x" * 2000}).encode()
        with socket.create_connection(("127.0.0.1", self.emu.port), timeout=30) as s:
            s.sendall(b"PUT /v1/agent/check/update/web-1:ttl HTTP/1.1\r\nHost: x\r\n"
                      b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
            first = s.recv(64)
            self.assertTrue(first.startswith(b"HTTP/1.1 100"), first)
            s.sendall(body)
            resp = b""
            while b"\r\n\r\n" not in resp.split(b"100 Continue", 1)[-1]:
                chunk = s.recv(4096)
                if not chunk:
                    break
                resp += chunk
        self.assertIn(b"HTTP/1.1 200 OK", resp)
        self.assertEqual(self.checks()["web-1:ttl"]["Output"], "x" * 2000)

    def test_chunked_request_body(self):
        """ref 2.1 (transport): a chunked request body is decoded like any other."""
        self.register()
        conn = http.client.HTTPConnection("127.0.0.1", self.emu.port, timeout=30)
        self.addCleanup(conn.close)
        conn.request("PUT", "/v1/agent/check/update/web-1:ttl",
                     body=iter([b'{"Status":', b'"passing","Output":"chunky"}']),
                     encode_chunked=True)
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        self.assertEqual(self.checks()["web-1:ttl"]["Output"], "chunky")


# ---------------------------------------------------------------------------
class TestRegister(EmuCase):
    def test_minimal_exchange_section_11(self):
        """ref 11: the minimal exchange, verbatim."""
        self.assertResp(self.register("?replace-existing-checks=true",
                                      headers={"X-Consul-Token": "t"}), 200, "")
        self.assertResp(self.update("web-1:ttl", "passing", "3/3 probes ok"), 200, "")
        self.assertResp(self.update("web-1:ttl", "bogus"), 400, "Invalid check status: 'bogus'")
        self.assertResp(self.update("nope", "passing"), 404,
                        'Unknown check ID "nope". Ensure that the check ID is passed, '
                        'not the check name.')
        self.assertEqual(self.get("/v1/agent/health/service/id/web-1").status, 200)
        self.assertResp(self.put("/v1/agent/service/deregister/web-1"), 200, "")
        self.assertResp(self.put("/v1/agent/service/deregister/web-1"), 404,
                        'Unknown service ID "web-1". Ensure that the service ID is passed, '
                        'not the service name.')

    def test_defaults(self):
        """ref 1.1/1.2/3: ID defaults to Name, CheckID to service:<id>, check Name to
        "Service '<Name>' check", Status to critical, Output to "", Weights to 1/1."""
        r = self.put("/v1/agent/service/register", {"Name": "web", "Check": {"TTL": "30s"}})
        self.assertResp(r, 200)
        svc = self.services()["web"]
        self.assertEqual(svc["ID"], "web")
        self.assertEqual(svc["Service"], "web")
        self.assertEqual(svc["Tags"], [])
        self.assertEqual(svc["Meta"], {})
        self.assertEqual(svc["Weights"], {"Passing": 1, "Warning": 1})
        self.assertNotIn("TaggedAddresses", svc)
        chk = self.checks()["service:web"]
        self.assertEqual(chk["Name"], "Service 'web' check")
        self.assertEqual(chk["Status"], "critical")
        self.assertEqual(chk["Output"], "")
        self.assertEqual(chk["Type"], "ttl")
        self.assertEqual(chk["ServiceID"], "web")
        self.assertEqual(chk["ServiceName"], "web")

    def test_multiple_checks_default_ids(self):
        """ref 1.2: service:<ServiceID>:<n> (1-based) when more than one check."""
        r = self.put("/v1/agent/service/register",
                     {"Name": "web", "ID": "w", "Check": {"TTL": "30s"},
                      "Checks": [{"TTL": "30s"}, {"TTL": "30s", "CheckID": "mine"}]})
        self.assertResp(r, 200)
        self.assertEqual(sorted(self.checks()), ["mine", "service:w:1", "service:w:2"])

    def test_initial_status_given(self):
        """ref 1.2/3: Status sets the initial status."""
        self.register(Check={"CheckID": "c", "TTL": "30s", "Status": "passing"})
        self.assertEqual(self.checks()["c"]["Status"], "passing")

    def test_unknown_fields_rejected(self):
        """ref 0/1.2: DisallowUnknownFields -> 400 'Request decode failed: json: unknown
        field "X"'; a check 'ID' key is unknown (CheckID is required)."""
        self.assertResp(self.register(Foo=1), 400,
                        'Request decode failed: json: unknown field "Foo"')
        self.assertResp(self.register(Check={"ID": "x", "TTL": "5s"}), 400,
                        'Request decode failed: json: unknown field "ID"')
        self.assertResp(self.register(Namespace="default"), 400,
                        'Request decode failed: json: unknown field "Namespace"')
        self.assertResp(self.register(Weights={"Passing": 1, "Heavy": 2}), 400,
                        'Request decode failed: json: unknown field "Heavy"')
        self.assertEqual(self.services(), {})

    def test_keys_case_insensitive_and_aliases(self):
        """ref 0/1.1/1.2: Go's case-insensitive key match; snake_case aliases
        enable_tag_override, tagged_addresses, deregister_critical_service_after."""
        r = self.put("/v1/agent/service/register",
                     {"name": "web", "id": "w", "PORT": 1, "enable_tag_override": True,
                      "tagged_addresses": {"lan": {"address": "10.1.1.1", "port": 5}},
                      "check": {"checkid": "c", "ttl": "30s", "STATUS": "warning",
                                "deregister_critical_service_after": "5m"}})
        self.assertResp(r, 200)
        svc = self.services()["w"]
        self.assertEqual(svc["Port"], 1)
        self.assertTrue(svc["EnableTagOverride"])
        self.assertEqual(svc["TaggedAddresses"]["lan"], {"Address": "10.1.1.1", "Port": 5})
        self.assertEqual(self.checks()["c"]["Status"], "warning")
        self.assertResp(self.register(Check={"CheckID": "c", "TTL": "30s", "deregister_foo": 1}),
                        400, 'Request decode failed: json: unknown field "deregister_foo"')

    def test_decode_errors(self):
        """ref 0: empty body -> 'Request decode failed: EOF'; type errors are 400 too."""
        self.assertResp(self.put("/v1/agent/service/register", ""), 400,
                        "Request decode failed: EOF")
        self.assertResp(self.put("/v1/agent/service/register", "  \n"), 400,
                        "Request decode failed: EOF")
        r = self.put("/v1/agent/service/register", '{"Name":')
        self.assertEqual(r.status, 400)
        self.assertTrue(r.text.startswith("Request decode failed: "), r.text)
        self.assertEqual(self.put("/v1/agent/service/register", '{"Name":"a","Port":NaN}').status,
                         400)
        r = self.register(Port="80")
        self.assertEqual(r.status, 400)
        self.assertTrue(r.text.startswith("Request decode failed: json: cannot unmarshal string"),
                        r.text)

    def test_missing_name(self):
        """ref 1.1: missing Name -> 400 'Missing service name'."""
        self.assertResp(self.put("/v1/agent/service/register", {"ID": "x"}), 400,
                        "Missing service name")
        self.assertResp(self.put("/v1/agent/service/register", "null"), 400,
                        "Missing service name")

    def test_invalid_address(self):
        """ref 1.1: Address 0.0.0.0 / :: -> 400 'Invalid service address'."""
        for addr in ("0.0.0.0", "::"):
            self.assertResp(self.register(Address=addr), 400, "Invalid service address")

    def test_ttl_parsing(self):
        """ref 1.2: TTL Go duration string; JSON number = nanoseconds; bad string ->
        400 'Request decode failed: time: invalid duration "x"'."""
        self.assertResp(self.register(Check={"CheckID": "c", "TTL": "x"}), 400,
                        'Request decode failed: time: invalid duration "x"')
        self.assertResp(self.register(Check={"CheckID": "c", "TTL": "15"}), 400,
                        'Request decode failed: time: missing unit in duration "15"')
        self.assertResp(self.register(Check={"CheckID": "c", "TTL": 15000000000}), 200)
        self.assertResp(self.register(Check={"CheckID": "d", "TTL": "1m30.5s"}), 200)
        self.assertEqual(self.checks()["d"]["Type"], "ttl")

    def test_check_status_validation(self):
        """ref 1.2: bad initial Status -> 400 "Status for checks must 'passing', 'warning',
        'critical'"."""
        self.assertResp(self.register(Check={"CheckID": "c", "TTL": "5s", "Status": "ok"}), 400,
                        "Status for checks must 'passing', 'warning', 'critical'")

    def test_check_validation(self):
        """ref 1.2: CheckType.Validate -> 400 'Invalid check: <msg>'."""
        self.assertResp(self.register(Check={"CheckID": "c", "Name": "n"}), 400,
                        "Invalid check: TTL must be > 0 for TTL checks")
        self.assertResp(self.register(Check={"CheckID": "c", "TTL": "5s", "Interval": "5s"}), 400,
                        "Invalid check: Interval and TTL cannot both be specified")
        self.assertResp(self.register(Check={"CheckID": "c", "HTTP": "http://127.0.0.1:1/"}), 400,
                        "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, "
                        "UDP or OSService checks")
        self.assertResp(self.register(Checks=[{}]), 400,
                        "Invalid check: TTL must be > 0 for TTL checks")

    def test_empty_check_object_ignored(self):
        """ref 1.1: "Check": {} is ignored; the Go client's "Check":null,"Checks":null ok."""
        self.assertResp(self.register(Check={}), 200)
        self.assertResp(self.register(ID="web-2", Check=None, Checks=None), 200)
        self.assertEqual(self.checks(), {})

    def test_meta_validation(self):
        """ref 1.1: Meta rules -> 400 'Invalid Service Meta: ...'."""
        self.assertResp(self.register(Meta={"k!": "v"}), 400,
                        "Invalid Service Meta: Couldn't load metadata pair ('k!', 'v'): "
                        "Key contains invalid characters")
        self.assertResp(self.register(Meta={"consul-x": "v"}), 400,
                        "Invalid Service Meta: Couldn't load metadata pair ('consul-x', 'v'): "
                        "Key prefix 'consul-' is reserved for internal use")
        self.assertResp(self.register(Meta={"k": "v" * 513}), 400,
                        "Invalid Service Meta: Couldn't load metadata pair ('k', '%s'): "
                        "Value is too long (limit: 512 characters)" % ("v" * 513))
        self.assertResp(self.register(Meta={"k%d" % i: "v" for i in range(65)}), 400,
                        "Invalid Service Meta: Node metadata cannot contain more than 64 "
                        "key/value pairs")
        self.assertResp(self.register(Meta={"k%d" % i: "v" for i in range(64)}), 200)

    def test_weights_validation(self):
        """ref 1.1: Weights rules -> 400 'Invalid Weights: ...'."""
        self.assertResp(self.register(Weights={"Passing": 0, "Warning": 1}), 400,
                        "Invalid Weights: Passing must be greater than 0")
        self.assertResp(self.register(Weights={"Passing": 1, "Warning": -1}), 400,
                        "Invalid Weights: Warning must be greater or equal than 0")
        self.assertResp(self.register(Weights={"Passing": 65536, "Warning": 1}), 400,
                        "Invalid Weights: DNS Weight must be between 0 and 65535")
        self.assertResp(self.register(Weights={"Passing": 3, "Warning": 2}), 200)
        self.assertEqual(self.services()["web-1"]["Weights"], {"Passing": 3, "Warning": 2})

    def test_script_check_refused_500(self):
        """ref 1.4: API-registered script check -> 500 'Scripts are disabled ...'."""
        r = self.register(Check={"CheckID": "s", "Args": ["/bin/true"], "Interval": "10s"})
        self.assertResp(r, 500, "Scripts are disabled on this agent from remote calls; to "
                                "enable, configure 'enable_script_checks' to true")
        self.assertEqual(self.services(), {})

    def test_tagged_addresses_added(self):
        """ref 1.1: IPv4 Address adds lan_ipv4/wan_ipv4; IPv6 adds lan_ipv6/wan_ipv6."""
        self.register()
        ta = self.services()["web-1"]["TaggedAddresses"]
        self.assertEqual(ta, {"lan_ipv4": {"Address": "10.0.0.5", "Port": 8080},
                              "wan_ipv4": {"Address": "10.0.0.5", "Port": 8080}})
        self.register(ID="web-6", Address="fd00::5", Check=None)
        self.assertEqual(sorted(self.services()["web-6"]["TaggedAddresses"]),
                         ["lan_ipv6", "wan_ipv6"])

    def test_reregister_replaces_service_keeps_check_state(self):
        """ref 1.5: record replaced wholesale; existing check keeps Status and Output
        (the request Status is ignored); missing checks are kept."""
        self.register(Checks=[{"CheckID": "extra", "TTL": "30s"}])
        self.update("web-1:ttl", "warning", "slow")
        self.assertResp(self.register(Tags=["v2"], Port=9090, Checks=None), 200)
        svc = self.services()["web-1"]
        self.assertEqual((svc["Tags"], svc["Port"]), (["v2"], 9090))
        chk = self.checks()
        self.assertEqual((chk["web-1:ttl"]["Status"], chk["web-1:ttl"]["Output"]),
                         ("warning", "slow"))
        self.assertIn("extra", chk)
        self.assertEqual(chk["extra"]["ServiceTags"], ["v2"])

    def test_replace_existing_checks_only_empty_or_true(self):
        """ref 1.3: replace-existing-checks is true only for '' or 'true' ('=1' is false)."""
        both = [{"CheckID": "a", "TTL": "30s"}, {"CheckID": "b", "TTL": "30s"}]
        only_a = [{"CheckID": "a", "TTL": "30s"}]
        for query, b_kept in (("?replace-existing-checks=1", True),
                              ("?replace-existing-checks=false", True),
                              ("?replace-existing-checks=True", True),
                              ("", True),
                              ("?replace-existing-checks=true", False),
                              ("?replace-existing-checks", False),
                              ("?replace-existing-checks=", False)):
            self.assertResp(self.register(Check=None, Checks=both), 200)
            self.assertResp(self.register(query, Check=None, Checks=only_a), 200)
            self.assertEqual("b" in self.checks(), b_kept, query)

    def test_reregister_restarts_ttl_timer(self):
        """ref 1.5/3: re-registration stops and recreates the TTL runner, so the timer
        restarts at full length; status/output are kept; the new runner has no last
        output, so its expiry text is plain 'TTL expired' (inferred from source)."""
        ttl = 2.0
        self.register(Check={"CheckID": "c", "TTL": "2s"})
        t_update = time.monotonic()
        self.update("c", "passing", "fine")
        time.sleep(1.0)
        t_rereg = time.monotonic()
        self.assertResp(self.register(Check={"CheckID": "c", "TTL": "2s"}), 200)
        if time.monotonic() - t_update > ttl - 0.3:
            self.skipTest("starved: re-registration came too late to be conclusive")
        # The original timer would fire at t_update + 2s.
        time.sleep(max(0.0, t_update + ttl + 0.5 - time.monotonic()))
        chk = self.checks()["c"]
        if time.monotonic() - t_rereg < ttl - 0.3:
            self.assertEqual((chk["Status"], chk["Output"]), ("passing", "fine"))
        chk = self.wait_for(lambda: (self.checks()["c"]["Status"] == "critical" and
                                     self.checks()["c"]), "expiry after re-registration")
        self.assertEqual(chk["Output"], "TTL expired")


# ---------------------------------------------------------------------------
class TestTTLUpdates(EmuCase):
    def test_update_statuses(self):
        """ref 2.1: passing/warning/critical with Output; missing Output -> ''."""
        self.register()
        for status in ("passing", "warning", "critical"):
            self.assertResp(self.update("web-1:ttl", status, "out-" + status), 200, "")
            chk = self.checks()["web-1:ttl"]
            self.assertEqual((chk["Status"], chk["Output"]), (status, "out-" + status))
        self.assertResp(self.update("web-1:ttl", "passing"), 200)
        self.assertEqual(self.checks()["web-1:ttl"]["Output"], "")

    def test_update_rejects_bad_status_before_existence(self):
        """ref 2.1 steps 1-2: decode, then status validation (before the 404)."""
        self.register()
        for bad in ("", "maintenance", "Passing", "ok"):
            self.assertResp(self.update("web-1:ttl", bad), 400, "Invalid check status: '%s'" % bad)
            self.assertResp(self.update("nope", bad), 400, "Invalid check status: '%s'" % bad)
        self.assertResp(self.put("/v1/agent/check/update/web-1:ttl", {"Output": "x"}), 400,
                        "Invalid check status: ''")
        self.assertResp(self.put("/v1/agent/check/update/nope", {"Status": "passing", "Note": "x"}),
                        400, 'Request decode failed: json: unknown field "Note"')
        self.assertResp(self.put("/v1/agent/check/update/nope", ""), 400,
                        "Request decode failed: EOF")
        self.assertResp(self.put("/v1/agent/check/update/web-1:ttl",
                                 {"status": "passing", "OUTPUT": "ci"}), 200)
        self.assertEqual(self.checks()["web-1:ttl"]["Output"], "ci")

    def test_update_unknown_404(self):
        """ref 2.1 step 4: unknown check ID -> 404 with the exact text."""
        self.assertResp(self.update("web-1", "passing"), 404,
                        'Unknown check ID "web-1". Ensure that the check ID is passed, '
                        'not the check name.')

    def test_update_non_ttl_check_500(self):
        """ref 2.1 step 5 / 5.3: existing non-TTL check -> 500 'CheckID "<id>" does not
        have associated TTL' (maintenance and HTTP checks)."""
        self.register(Checks=[{"CheckID": "h", "HTTP": "http://127.0.0.1:1/", "Interval": "10s"}])
        self.assertResp(self.update("h", "passing"), 500,
                        'CheckID "h" does not have associated TTL')
        self.put("/v1/agent/service/maintenance/web-1?enable=true")
        self.assertResp(self.update("_service_maintenance:web-1", "passing"), 500,
                        'CheckID "_service_maintenance:web-1" does not have associated TTL')
        self.assertResp(self.put("/v1/agent/check/pass/h"), 500,
                        'CheckID "h" does not have associated TTL')

    def test_legacy_pass_warn_fail(self):
        """ref 2.2: pass/warn/fail map to the statuses; ?note -> Output (absent = '');
        no body, PUT only, unknown -> 404."""
        self.register()
        for verb, status in (("pass", "passing"), ("warn", "warning"), ("fail", "critical")):
            self.assertResp(self.put("/v1/agent/check/%s/web-1:ttl?note=hello%%20world" % verb),
                            200, "")
            chk = self.checks()["web-1:ttl"]
            self.assertEqual((chk["Status"], chk["Output"]), (status, "hello world"))
            self.assertResp(self.put("/v1/agent/check/%s/web-1:ttl" % verb), 200)
            self.assertEqual(self.checks()["web-1:ttl"]["Output"], "")
            self.assertResp(self.get("/v1/agent/check/%s/web-1:ttl" % verb), 405)
            self.assertResp(self.put("/v1/agent/check/%s/nope" % verb), 404,
                            'Unknown check ID "nope". Ensure that the check ID is passed, '
                            'not the check name.')

    def test_truncation_head_4096_with_marker(self):
        """ref 2.3: >4096 bytes -> output[:4096] + ' ... (captured 4096 of N bytes)';
        byte-based, may split UTF-8; exactly 4096 is untouched; OutputMaxSize lowers it."""
        self.register(Checks=[{"CheckID": "small", "TTL": "30s", "OutputMaxSize": 10}])
        body = "".join(chr(ord("a") + i % 26) for i in range(5000))
        self.update("web-1:ttl", "passing", body)
        self.assertEqual(self.checks()["web-1:ttl"]["Output"],
                         body[:4096] + " ... (captured 4096 of 5000 bytes)")
        exact = "x" * 4096
        self.update("web-1:ttl", "passing", exact)
        self.assertEqual(self.checks()["web-1:ttl"]["Output"], exact)
        split = "a" * 4095 + "\u00e9"  # 4097 bytes; the cut splits the 2-byte e-acute
        self.update("web-1:ttl", "passing", split)
        self.assertEqual(self.checks()["web-1:ttl"]["Output"],
                         "a" * 4095 + "\ufffd ... (captured 4096 of 4097 bytes)")
        self.update("small", "passing", "0123456789abc")
        self.assertEqual(self.checks()["small"]["Output"],
                         "0123456789 ... (captured 10 of 13 bytes)")
        self.assertResp(self.put("/v1/agent/check/pass/small?note=" + "z" * 11), 200)
        self.assertEqual(self.checks()["small"]["Output"],
                         "zzzzzzzzzz ... (captured 10 of 11 bytes)")


# ---------------------------------------------------------------------------
class TestTTLExpiry(EmuCase):
    def test_expiry_texts_and_one_shot(self):
        """ref 3: one-shot timer; 'TTL expired' when no output was ever set, else
        'TTL expired (last output before timeout follows): <last>' using the truncated
        stored output; stays critical with no further expiry events."""
        r = self.put("/v1/agent/service/register",
                     {"Name": "a", "Checks": [{"CheckID": "never", "TTL": "300ms"},
                                              {"CheckID": "once", "TTL": "300ms",
                                               "OutputMaxSize": 5}]})
        self.assertResp(r, 200)
        self.update("once", "passing", "hello world")
        chks = self.wait_for(lambda: (lambda c: c if all(x["Status"] == "critical" and x["Output"]
                                                         for x in c.values()) else None)(
            self.checks()), "both TTLs to expire")
        self.assertEqual(chks["never"]["Output"], "TTL expired")
        self.assertEqual(chks["once"]["Output"],
                         "TTL expired (last output before timeout follows): "
                         "hello ... (captured 5 of 11 bytes)")
        idx = self.get("/v1/health/service/a").header("X-Consul-Index")
        time.sleep(0.8)  # > 2 TTLs: a periodic timer would have fired again
        self.assertEqual(self.checks(), chks)
        self.assertEqual(self.get("/v1/health/service/a").header("X-Consul-Index"), idx)
        self.assertIn("Check missed TTL, is now critical", self.emu.log_text())

    def test_update_revives_expired_check_and_resets_timer(self):
        """ref 2.4/3: an update revives an expired check and re-arms the timer;
        every update resets the timer even when unchanged."""
        self.register(Check={"CheckID": "c", "TTL": "300ms"})
        self.wait_for(lambda: self.checks()["c"]["Output"] == "TTL expired", "first expiry")
        self.assertResp(self.update("c", "passing", "back"), 200)
        self.assertEqual(self.checks()["c"]["Status"], "passing")
        self.wait_for(lambda: self.checks()["c"]["Output"] ==
                      "TTL expired (last output before timeout follows): back", "second expiry")


# ---------------------------------------------------------------------------
class TestReaper(EmuCase):
    FLAGS = {"check_update_interval_ms": 0, "reap_min_ms": 300, "reap_tick_ms": 50}

    def test_dcsa_reaps_whole_service_and_minimum_applies(self):
        """ref 4: once a check is critical longer than DCSA (raised to the minimum),
        the reaper removes the service and all its checks; then updates get 404."""
        r = self.register(Check={"CheckID": "c", "TTL": "200ms",
                                 "DeregisterCriticalServiceAfter": "1ms"},
                          Checks=[{"CheckID": "other", "TTL": "1h"}])
        self.assertResp(r, 200)
        self.wait_for(lambda: "web-1" not in self.services(), "service reaped")
        self.assertEqual(self.checks(), {})
        self.assertResp(self.update("c", "passing"), 404)
        self.assertEqual(self.get("/v1/catalog/service/web").json(), [])
        log = self.emu.log_text()
        self.assertIn("check has deregister interval below minimum", log)
        self.assertIn("deregistered service with critical health due to exceeding health "
                      "check's 'deregister_critical_service_after' timeout", log)

    def test_critical_registration_has_no_critical_time(self):
        """ref 4 (inferred in the reference): a check registered critical is not reaped
        until a critical update (here: a long TTL never expires) sets CriticalTime."""
        self.register(Check={"CheckID": "c", "TTL": "1h", "Status": "critical",
                             "DeregisterCriticalServiceAfter": "1ms"})
        time.sleep(0.7)  # > reap minimum (300ms) + several ticks
        self.assertIn("web-1", self.services())
        self.update("c", "critical", "down")
        self.wait_for(lambda: "web-1" not in self.services(), "reap after critical update")


class TestReaperMinimum(EmuCase):
    FLAGS = {"check_update_interval_ms": 0, "reap_min_ms": 1000, "reap_tick_ms": 50}

    def test_minimum_and_passing_clears_critical_time(self):
        """ref 4: DCSA below the minimum is raised to it; a passing update clears
        'critical since'; repeated fails do not move it."""
        self.register(Check={"CheckID": "c", "TTL": "1h", "DeregisterCriticalServiceAfter": "1ms"})
        t0 = time.monotonic()
        self.update("c", "critical", "down")
        time.sleep(0.4)
        present = "web-1" in self.services()
        if time.monotonic() - t0 < 0.8:
            self.assertTrue(present, "reaped before the 1s minimum")
        self.update("c", "passing", "up")  # clears critical-since
        t_pass = time.monotonic()
        time.sleep(0.9)
        still = "web-1" in self.services()
        if time.monotonic() - t0 < 1.9 and t_pass - t0 < 0.8 and present:
            self.assertTrue(still, "critical-since was not cleared by a passing update")
        if not still:
            self.skipTest("starved: service reaped before the second phase")
        t1 = time.monotonic()
        self.update("c", "critical", "down again")
        self.update("c", "critical", "still down")  # must not move critical-since
        self.wait_for(lambda: "web-1" not in self.services(), "reap")
        self.assertGreaterEqual(time.monotonic() - t1, 1.0)


# ---------------------------------------------------------------------------
class TestDeregisterAndMaintenance(EmuCase):
    def test_deregister(self):
        """ref 5.1: removes service and all checks; unknown or the *name* -> 404."""
        self.register(ID="web-1", Name="web")
        self.assertResp(self.put("/v1/agent/service/deregister/web"), 404,
                        'Unknown service ID "web". Ensure that the service ID is passed, '
                        'not the service name.')
        self.assertResp(self.put("/v1/agent/service/deregister/web-1"), 200, "")
        self.assertEqual(self.services(), {})
        self.assertEqual(self.checks(), {})
        self.assertResp(self.update("web-1:ttl", "passing"), 404)

    def test_check_deregister(self):
        """ref 5.2: removes one check; service stays; unknown -> 404."""
        self.register()
        self.assertResp(self.put("/v1/agent/check/deregister/web-1:ttl"), 200, "")
        self.assertEqual(self.checks(), {})
        self.assertIn("web-1", self.services())
        self.assertResp(self.put("/v1/agent/check/deregister/web-1:ttl"), 404,
                        'Unknown check ID "web-1:ttl". Ensure that the check ID is passed, '
                        'not the check name.')

    def test_service_maintenance(self):
        """ref 5.3: parameter errors, maintenance check fields, default reason,
        idempotent enable, disable, 404 for unknown service, PUT only."""
        self.register()
        base = "/v1/agent/service/maintenance/"
        self.assertResp(self.put(base + "web-1"), 400, "Missing value for enable")
        self.assertResp(self.put(base + "web-1?enable=maybe"), 400,
                        'Invalid value for enable: "maybe"')
        self.assertResp(self.put(base + "?enable=true"), 400, "Missing service ID")
        self.assertResp(self.put(base + "nope?enable=true"), 404,
                        'No service registered with ID "nope"')
        self.assertResp(self.get(base + "web-1?enable=true"), 405)
        self.update("web-1:ttl", "passing")
        self.assertResp(self.put(base + "web-1?enable=true"), 200, "")
        self.assertResp(self.put(base + "web-1?enable=1&reason=ignored"), 200)  # no-op
        chk = self.checks()["_service_maintenance:web-1"]
        self.assertEqual({k: chk[k] for k in ("Name", "Notes", "Status", "Type", "ServiceID",
                                              "ServiceName")},
                         {"Name": "Service Maintenance Mode",
                          "Notes": "Maintenance mode is enabled for this service, but no reason "
                                   "was provided. This is a default message.",
                          "Status": "critical", "Type": "maintenance", "ServiceID": "web-1",
                          "ServiceName": "web"})
        r = self.get("/v1/agent/health/service/id/web-1")
        self.assertEqual((r.status, r.json()["AggregatedStatus"]), (503, "maintenance"))
        self.assertResp(self.put(base + "web-1?enable=false"), 200)
        self.assertResp(self.put(base + "web-1?enable=false"), 200)  # absent: no-op
        self.assertNotIn("_service_maintenance:web-1", self.checks())
        self.assertResp(self.put(base + "web-1?enable=true&reason=deploy%20v2"), 200)
        self.assertEqual(self.checks()["_service_maintenance:web-1"]["Notes"], "deploy v2")

    def test_node_maintenance(self):
        """ref 5.3/6.3: _node_maintenance is a node check included in every service's
        aggregated status (maintenance -> 503)."""
        self.register()
        self.update("web-1:ttl", "passing")
        self.assertResp(self.put("/v1/agent/maintenance"), 400, "Missing value for enable")
        self.assertResp(self.put("/v1/agent/maintenance?enable=true&reason=r"), 200)
        chk = self.checks()["_node_maintenance"]
        self.assertEqual((chk["Name"], chk["Notes"], chk["ServiceID"]),
                         ("Node Maintenance Mode", "r", ""))
        r = self.get("/v1/agent/health/service/id/web-1")
        self.assertEqual((r.status, r.json()["AggregatedStatus"]), (503, "maintenance"))
        self.assertEqual(self.get("/v1/health/service/web?passing").json(), [])
        self.put("/v1/agent/maintenance?enable=false")
        self.assertEqual(self.get("/v1/agent/health/service/id/web-1").status, 200)


# ---------------------------------------------------------------------------
class TestReads(EmuCase):
    def test_agent_services_shape(self):
        """ref 6.1: map keyed by ID, name under 'Service', Tags [] and Meta {} when null."""
        self.put("/v1/agent/service/register", {"Name": "db", "Tags": None, "Meta": None})
        self.register()
        svcs = self.services()
        self.assertEqual(sorted(svcs), ["db", "web-1"])
        self.assertEqual(svcs["db"]["Tags"], [])
        self.assertEqual(svcs["db"]["Meta"], {})
        w = svcs["web-1"]
        for key in ("ID", "Service", "Tags", "Meta", "Port", "Address", "Weights",
                    "EnableTagOverride", "Datacenter"):
            self.assertIn(key, w)
        self.assertEqual((w["ID"], w["Service"], w["Port"], w["Address"]),
                         ("web-1", "web", 8080, "10.0.0.5"))
        self.assertNotIn("Name", w)

    def test_agent_service_single_and_hash_blocking(self):
        """ref 6.1: GET /v1/agent/service/:id adds ContentHash; unknown -> 404
        'unknown service ID: <id>'; ?hash blocks until the hash changes."""
        self.register()
        r = self.get("/v1/agent/service/web-1")
        self.assertResp(r, 200)
        h = r.json()["ContentHash"]
        self.assertEqual(r.header("X-Consul-ContentHash"), h)
        self.assertResp(self.get("/v1/agent/service/nope"), 404, "unknown service ID: nope")
        r = self.get("/v1/agent/service/web-1?hash=%s&wait=100ms" % h)
        self.assertEqual(r.json()["ContentHash"], h)
        box = {}
        t = threading.Thread(target=lambda: box.setdefault(
            "r", self.get("/v1/agent/service/web-1?hash=%s&wait=30s" % h)))
        t.start()
        time.sleep(0.2)
        self.register(Port=9999)
        t.join(DEADLINE)
        self.assertNotEqual(box["r"].json()["ContentHash"], h)
        self.assertEqual(box["r"].json()["Port"], 9999)

    def test_agent_checks_shape(self):
        """ref 6.2: HealthCheck keys; ServiceTags []; Interval/Timeout '' for TTL."""
        self.register(Tags=None)
        c = self.checks()["web-1:ttl"]
        self.assertEqual(set(c), {"Node", "CheckID", "Name", "Status", "Notes", "Output",
                                  "ServiceID", "ServiceName", "ServiceTags", "Type", "Interval",
                                  "Timeout", "ExposedPort", "Definition", "CreateIndex",
                                  "ModifyIndex"})
        self.assertEqual((c["ServiceTags"], c["Interval"], c["Timeout"], c["Definition"]),
                         ([], "", "", {}))
        self.assertEqual(c["Notes"], "set by hc agent")

    def test_agent_health_codes(self):
        """ref 6.3: passing 200, warning 429, critical 503; X-Consul-Reason; body shape."""
        self.register()
        path = "/v1/agent/health/service/id/web-1"
        for status, code in (("passing", 200), ("warning", 429), ("critical", 503)):
            self.update("web-1:ttl", status, "o")
            r = self.get(path)
            self.assertEqual(r.status, code)
            self.assertEqual(r.header("X-Consul-Reason"), status)
            body = r.json()
            self.assertEqual(body["AggregatedStatus"], status)
            self.assertEqual(body["Service"]["ID"], "web-1")
            self.assertEqual([c["CheckID"] for c in body["Checks"]], ["web-1:ttl"])
            self.assertEqual(body["Checks"][0]["Status"], status)

    def test_agent_health_worst_wins_and_no_checks_passing(self):
        """ref 6.3: any critical -> critical, else any warning -> warning; no checks
        at all -> passing 200."""
        self.register(Checks=[{"CheckID": "b", "TTL": "30s", "Status": "warning"}])
        self.update("web-1:ttl", "passing")
        self.assertEqual(self.get("/v1/agent/health/service/id/web-1").status, 429)
        self.update("web-1:ttl", "critical")
        self.assertEqual(self.get("/v1/agent/health/service/id/web-1").status, 503)
        self.put("/v1/agent/service/register", {"Name": "bare"})
        r = self.get("/v1/agent/health/service/id/bare")
        self.assertEqual((r.status, r.json()["AggregatedStatus"], r.json()["Checks"]),
                         (200, "passing", []))

    def test_agent_health_404_and_text(self):
        """ref 6.3: unknown ID -> 404 {"AggregatedStatus":"critical","Service":null,
        "Checks":null} + X-Consul-Reason; ?format=text / Accept text/plain."""
        r = self.get("/v1/agent/health/service/id/nope")
        self.assertResp(r, 404, '{"AggregatedStatus":"critical","Service":null,"Checks":null}')
        self.assertEqual(r.header("X-Consul-Reason"), "ServiceId nope not found")
        r = self.get("/v1/agent/health/service/id/nope?format=text")
        self.assertResp(r, 404, "ServiceId nope not found")
        self.register()
        r = self.get("/v1/agent/health/service/id/web-1?format=text")
        self.assertResp(r, 503, "critical")
        self.assertEqual(r.header("Content-Type"), "text/plain")
        self.update("web-1:ttl", "passing")
        r = self.get("/v1/agent/health/service/id/web-1", headers={"Accept": "text/plain"})
        self.assertResp(r, 200, "passing")
        self.assertResp(self.get("/v1/agent/health/service/id/"), 400, "Missing serviceID")

    def test_agent_health_by_name(self):
        """ref 6.3: /name/ returns an array and the worst instance's code."""
        self.register(ID="a", Check={"CheckID": "a", "TTL": "30s", "Status": "passing"})
        self.register(ID="b", Check={"CheckID": "b", "TTL": "30s", "Status": "warning"})
        r = self.get("/v1/agent/health/service/name/web")
        self.assertEqual(r.status, 429)
        self.assertEqual(sorted(x["Service"]["ID"] for x in r.json()), ["a", "b"])
        r = self.get("/v1/agent/health/service/name/nope")
        self.assertResp(r, 404, "[]")

    def test_catalog_service(self):
        """ref 6.4: [ServiceNode] keys; unknown -> 200 []; X-Consul-Index >= 1; no
        health filtering."""
        r = self.get("/v1/catalog/service/web")
        self.assertResp(r, 200, "[]")
        self.assertGreaterEqual(int(r.header("X-Consul-Index")), 1)
        self.register()
        r = self.get("/v1/catalog/service/web")
        (sn,) = r.json()
        for key in ("ID", "Node", "Address", "Datacenter", "TaggedAddresses", "NodeMeta",
                    "ServiceKind", "ServiceID", "ServiceName", "ServiceTags", "ServiceAddress",
                    "ServiceWeights", "ServiceMeta", "ServicePort", "ServiceEnableTagOverride",
                    "CreateIndex", "ModifyIndex"):
            self.assertIn(key, sn)
        self.assertEqual((sn["ServiceID"], sn["ServiceName"], sn["ServicePort"],
                          sn["ServiceTags"], sn["ServiceMeta"]),
                         ("web-1", "web", 8080, ["v1"], {"agent": "hc"}))
        self.assertEqual(r.header("X-Consul-KnownLeader"), "true")
        self.assertEqual(len(self.get("/v1/catalog/service/web?tag=v1").json()), 1)
        self.assertEqual(self.get("/v1/catalog/service/web?tag=v2").json(), [])

    def test_health_service_passing_filter(self):
        """ref 6.4: ?passing keeps entries whose every check (incl. node checks like
        serfHealth) is passing; warning is not passing; invalid value -> 400."""
        self.register(ID="a", Check={"CheckID": "a", "TTL": "30s"})
        self.register(ID="b", Check={"CheckID": "b", "TTL": "30s"})
        self.update("a", "passing")
        self.update("b", "warning")
        all_ = self.get("/v1/health/service/web").json()
        self.assertEqual(len(all_), 2)
        self.assertEqual([c["CheckID"] for c in all_[0]["Checks"]], ["serfHealth", "a"])
        self.assertEqual(all_[0]["Service"]["Service"], "web")
        ids = lambda q: [e["Service"]["ID"] for e in self.get("/v1/health/service/web" + q).json()]
        self.assertEqual(ids("?passing"), ["a"])
        self.assertEqual(ids("?passing=true"), ["a"])
        self.assertEqual(ids("?passing=1"), ["a"])
        self.assertEqual(ids("?passing=false"), ["a", "b"])
        self.assertResp(self.get("/v1/health/service/web?passing=maybe"), 400,
                        "Invalid value for ?passing")
        self.assertResp(self.get("/v1/health/service/nope"), 200, "[]")
        r = self.get("/v1/health/checks/web")
        self.assertEqual(sorted(c["CheckID"] for c in r.json()), ["a", "b"])


# ---------------------------------------------------------------------------
class TestBlocking(EmuCase):
    def test_index_blocks_until_change(self):
        """ref 6.4: ?index=N blocks until the index exceeds N; other requests are not
        stalled meanwhile (threaded server)."""
        self.register()
        r = self.get("/v1/health/service/web")
        idx = int(r.header("X-Consul-Index"))
        self.assertGreaterEqual(idx, 1)
        box = {}
        t = threading.Thread(target=lambda: box.setdefault(
            "r", self.get("/v1/health/service/web?index=%d&wait=30s" % idx, timeout=60)))
        t.start()
        time.sleep(0.3)
        self.assertNotIn("r", box)  # still blocked: nothing changed
        # Unrelated requests are served while the query blocks.
        self.assertEqual(self.get("/v1/agent/services").status, 200)
        self.assertEqual(self.get("/v1/catalog/service/web").status, 200)
        self.update("web-1:ttl", "passing", "ok")
        t.join(DEADLINE)
        self.assertFalse(t.is_alive())
        r = box["r"]
        self.assertGreater(int(r.header("X-Consul-Index")), idx)
        self.assertEqual(r.json()[0]["Checks"][1]["Status"], "passing")

    def test_wait_elapses_with_same_index(self):
        """ref 6.4: the query returns when wait elapses, possibly with the same index."""
        self.register()
        idx = self.get("/v1/catalog/service/web").header("X-Consul-Index")
        r = self.get("/v1/catalog/service/web?index=%s&wait=200ms" % idx)
        self.assertResp(r, 200)
        self.assertEqual(r.header("X-Consul-Index"), idx)

    def test_identical_write_does_not_bump_index(self):
        """ref 1.5/2.4/9: an identical re-registration or update produces no catalog write."""
        self.register()
        self.update("web-1:ttl", "passing", "same")
        idx = self.get("/v1/health/service/web").header("X-Consul-Index")
        self.register()
        self.update("web-1:ttl", "passing", "same")
        self.assertEqual(self.get("/v1/health/service/web").header("X-Consul-Index"), idx)

    def test_bad_blocking_params(self):
        """ref 6.4: 400 'Invalid wait time' / 'Invalid index'; ?stale + ?consistent -> 400."""
        self.assertResp(self.get("/v1/health/service/web?wait=abc"), 400, "Invalid wait time")
        self.assertResp(self.get("/v1/health/service/web?index=-1"), 400, "Invalid index")
        self.assertResp(self.get("/v1/catalog/service/web?index=x"), 400, "Invalid index")
        r = self.get("/v1/catalog/service/web?stale&consistent")
        self.assertEqual(r.status, 400)
        self.assertResp(self.get("/v1/catalog/service/web?dc=elsewhere"), 500,
                        "No path to datacenter")

    def test_index_never_zero_and_monotonic(self):
        """ref 6.4: X-Consul-Index never 0 and grows with catalog changes."""
        seen = [int(self.get("/v1/health/service/web").header("X-Consul-Index"))]
        self.register()
        seen.append(int(self.get("/v1/health/service/web").header("X-Consul-Index")))
        self.update("web-1:ttl", "warning")
        seen.append(int(self.get("/v1/health/service/web").header("X-Consul-Index")))
        self.put("/v1/agent/service/deregister/web-1")
        seen.append(int(self.get("/v1/health/service/web").header("X-Consul-Index")))
        self.assertGreaterEqual(min(seen), 1)
        self.assertEqual(seen, sorted(set(seen)))


class TestDeferredOutput(EmuCase):
    FLAGS = {"check_update_interval_ms": 2000, "reap_min_ms": 300, "reap_tick_ms": 50}

    def test_output_only_change_deferred_from_catalog(self):
        """ref 9 / 11 (optional item): output-only changes show at once on agent
        endpoints but reach the catalog only after interval/2 + rand[0, interval);
        a status change is pushed immediately with the current output."""
        self.register()
        self.update("web-1:ttl", "passing", "v1")  # status change: immediate
        cat = lambda: self.get("/v1/health/checks/web").json()[0]["Output"]
        self.assertEqual(cat(), "v1")
        t0 = time.monotonic()
        self.update("web-1:ttl", "passing", "v2")  # output only: deferred >= 1s
        self.assertEqual(self.checks()["web-1:ttl"]["Output"], "v2")
        seen = cat()
        if time.monotonic() - t0 < 0.9:
            self.assertEqual(seen, "v1")
        self.wait_for(lambda: cat() == "v2", "deferred output to reach the catalog")
        self.update("web-1:ttl", "passing", "v3")
        self.update("web-1:ttl", "warning", "v4")  # status change pushes now
        self.assertEqual(self.get("/v1/health/checks/web").json()[0]["Status"], "warning")
        self.assertEqual(cat(), "v4")


# ---------------------------------------------------------------------------
class TestACL(EmuCase):
    FLAGS = {"check_update_interval_ms": 0, "acl_default_policy": "deny",
             "acl_token": ["root", "webw=service:web:write,node_prefix::read",
                           "ro=service_prefix::read"]}

    def test_anonymous_denied_with_exact_text(self):
        """ref 7: deny policy -> 403 'Permission denied: token with AccessorID
        '<anonymous accessor>' lacks permission 'service:write' on "web"'."""
        r = self.register()
        self.assertResp(r, 403, "Permission denied: token with AccessorID '%s' lacks "
                                "permission 'service:write' on \"web\"" % ANON)
        self.assertEqual(r.header("X-Consul-Default-ACL-Policy"), "deny")

    def test_unknown_token_acl_not_found(self):
        """ref 7: unknown token -> 403 'ACL not found' (also before the 404 of an update)."""
        self.assertResp(self.register(headers={"X-Consul-Token": "bogus"}), 403, "ACL not found")
        self.assertResp(self.update("nope", "passing", headers={"X-Consul-Token": "bogus"}),
                        403, "ACL not found")
        self.assertResp(self.update("nope", "bad", headers={"X-Consul-Token": "bogus"}),
                        400, "Invalid check status: 'bad'")

    def test_token_sources_and_precedence(self):
        """ref 7: ?token= > X-Consul-Token > Authorization: Bearer (case-insensitive
        scheme, first word only)."""
        self.assertResp(self.register(headers={"X-Consul-Token": "root"}), 200)
        self.assertResp(self.register(headers={"Authorization": "Bearer root"}), 200)
        self.assertResp(self.register(headers={"Authorization": "bEaReR root trailing"}), 200)
        self.assertResp(self.register("?token=root"), 200)
        self.assertResp(self.register("?token=bogus", headers={"X-Consul-Token": "root"}), 403,
                        "ACL not found")
        self.assertResp(self.register(headers={"X-Consul-Token": "bogus",
                                               "Authorization": "Bearer root"}),
                        403, "ACL not found")
        self.assertResp(self.register(headers={"Authorization": "Basic root"}), 403)

    def test_rule_token_scopes(self):
        """ref 7: service:write on the name for register/update/deregister/maintenance;
        updates of unknown checks -> 404 after token resolution; reads are filtered."""
        w = {"X-Consul-Token": "webw"}
        self.assertResp(self.register(headers=w), 200)
        r = self.register(ID="db-1", Name="db", Check=None, headers=w)
        self.assertEqual(r.status, 403)
        self.assertTrue(r.text.startswith("Permission denied: token with AccessorID '"))
        self.assertTrue(r.text.endswith("lacks permission 'service:write' on \"db\""))
        self.assertNotIn(ANON, r.text)
        self.assertResp(self.register(ID="db-1", Name="db", Check={"CheckID": "db", "TTL": "30s"},
                                      headers={"X-Consul-Token": "root"}), 200)
        self.assertResp(self.update("web-1:ttl", "passing", headers=w), 200)
        self.assertEqual(self.update("db", "passing", headers=w).status, 403)
        self.assertEqual(self.update("web-1:ttl", "passing").status, 403)
        self.assertResp(self.update("nope", "passing", headers=w), 404)
        self.assertEqual(self.put("/v1/agent/service/maintenance/db-1?enable=true",
                                  headers=w).status, 403)
        self.assertEqual(self.put("/v1/agent/service/deregister/db-1", headers=w).status, 403)
        # read filtering
        r = self.get("/v1/agent/services", headers=w)
        self.assertEqual(sorted(r.json()), ["web-1"])
        self.assertEqual(r.header("X-Consul-Results-Filtered-By-ACLs"), "true")
        r = self.get("/v1/agent/services")  # anonymous: filtered, but no header
        self.assertEqual(r.json(), {})
        self.assertIsNone(r.header("X-Consul-Results-Filtered-By-ACLs"))
        self.assertEqual(sorted(self.get("/v1/agent/services",
                                         headers={"X-Consul-Token": "ro"}).json()),
                         ["db-1", "web-1"])
        self.assertEqual(self.get("/v1/agent/health/service/id/db-1", headers=w).status, 403)
        self.assertEqual(len(self.get("/v1/health/service/web", headers=w).json()), 1)
        r = self.get("/v1/health/service/db", headers=w)
        self.assertEqual(r.json(), [])
        self.assertEqual(r.header("X-Consul-Results-Filtered-By-ACLs"), "true")
        self.assertResp(self.put("/v1/agent/service/deregister/web-1", headers=w), 200)


class TestACLDefaultToken(EmuCase):
    FLAGS = {"check_update_interval_ms": 0, "acl_default_policy": "deny",
             "acl_token": ["dflt=service:web:write,node:emulator-node:read"],
             "acl_default_token": "dflt"}

    def test_default_token_used_without_token(self):
        """ref 7: with no token the agent's acl.tokens.default is used; node:write is
        required for node maintenance."""
        self.assertResp(self.register(), 200)
        r = self.put("/v1/agent/maintenance?enable=true")
        self.assertEqual(r.status, 403)
        self.assertTrue(r.text.endswith("lacks permission 'node:write' on \"emulator-node\""),
                        r.text)
        self.assertResp(self.register(headers={"X-Consul-Token": "nope"}), 403, "ACL not found")


class TestDiscardOutput(EmuCase):
    FLAGS = {"check_update_interval_ms": 0, "discard_check_output": True}

    def test_discard_check_output(self):
        """ref 2.3: discard_check_output stores "" for every output."""
        self.register()
        self.update("web-1:ttl", "warning", "dropped")
        chk = self.checks()["web-1:ttl"]
        self.assertEqual((chk["Status"], chk["Output"]), ("warning", ""))


class TestACLDisabled(EmuCase):
    def test_tokens_ignored_when_acls_disabled(self):
        """ref 7: with ACLs disabled, tokens are ignored."""
        self.assertResp(self.register(headers={"X-Consul-Token": "whatever"}), 200)
        self.assertResp(self.register("?token=bogus"), 200)


# ---------------------------------------------------------------------------
class TestProcess(unittest.TestCase):
    def test_port_file_restart_wiped_and_sigterm(self):
        """CLI contract (brief) + ref 10 'agent lost its state': --port 0 writes the
        port file; restart_wiped() keeps the port and wipes state so TTL updates get
        404; SIGTERM exits cleanly with status 0."""
        emu = emuctl.start(check_update_interval_ms=0)
        self.addCleanup(emu.cleanup)
        port = emu.port
        self.assertGreater(port, 0)
        st, _, _ = emuctl.request(emu, "PUT", "/v1/agent/service/register",
                                  json.dumps({"Name": "web", "Check": {"CheckID": "c",
                                                                       "TTL": "30s"}}))
        self.assertEqual(st, 200)
        old_pid = emu.pid
        emu.restart_wiped()
        self.assertEqual(emu.port, port)
        self.assertNotEqual(emu.pid, old_pid)
        st, _, body = emuctl.request(emu, "PUT", "/v1/agent/check/update/c",
                                     json.dumps({"Status": "passing"}))
        self.assertEqual((st, body), (404, b'Unknown check ID "c". Ensure that the check ID '
                                           b'is passed, not the check name.'))
        proc = emu.proc
        os.kill(proc.pid, signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=DEADLINE), 0)
        emu.proc = None

    def test_cli_fixed_port_and_bad_flags(self):
        """CLI contract (brief): --port N binds that port; bad ACL rule is refused."""
        tmp = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
        bad = subprocess.run([sys.executable, emuctl.EMULATOR, "--acl-token", "x=service:web"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=DEADLINE)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn(b"bad ACL rule", bad.stderr)
        ok = emuctl.start(acl_default_policy="deny", acl_token=["t=service:a:b:c:write"])
        self.addCleanup(ok.cleanup)
        st, _, _ = emuctl.request(ok, "PUT", "/v1/agent/service/register",
                                  json.dumps({"Name": "a:b:c"}), headers={"X-Consul-Token": "t"})
        self.assertEqual(st, 200)
        first = emuctl.start()
        self.addCleanup(first.cleanup)
        port = first.port
        first.stop()
        again = emuctl.start(port=port)
        self.addCleanup(again.cleanup)
        self.assertEqual(again.port, port)



class TestInjectedFaults(EmuCase):
    """--fault-file (emuctl: emu.fault()): the registry faults of the fault
    suite. Not Consul behaviour: test machinery, off unless the file says."""

    def raw(self, data=b"GET /v1/agent/services HTTP/1.1\r\nHost: x\r\n"
            b"Connection: close\r\n\r\n"):
        """Send data on a fresh connection; all bytes until EOF."""
        import socket
        with socket.create_connection(("127.0.0.1", self.emu.port), timeout=DEADLINE) as s:
            s.sendall(data)
            out = b""
            while True:
                b = s.recv(65536)
                if not b:
                    return out
                out += b

    def test_status_answers_every_request_and_state_keeps_running(self):
        self.assertResp(self.register(Check={"CheckID": "c", "TTL": "300ms"}), 200)
        self.emu.fault("status 500")
        r = self.get("/v1/agent/services")
        self.assertResp(r, 500, "fault injected")
        self.assertResp(self.update("c", "passing"), 500, "fault injected")
        self.assertIn("web-1", self.services(headers={"X-Emulator-No-Fault": "1"}))
        self.emu.fault("status 503")
        self.assertResp(self.get("/v1/agent/checks"), 503)
        # The agent's own clock is not stopped by the fault: the TTL expires.
        self.wait_for(lambda: "Check missed TTL" in self.emu.log_text(), "TTL expiry")
        self.emu.fault(None)
        self.assertEqual(self.checks()["c"]["Status"], "critical")
        self.assertResp(self.update("c", "passing"), 200)
        self.assertIn("[FAULT] status PUT /v1/agent/check/update/c", self.emu.log_text())

    def test_delay_holds_then_serves(self):
        self.emu.fault("delay 700")
        t0 = time.monotonic()
        self.assertResp(self.register(), 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.7)
        self.emu.fault("off")
        t0 = time.monotonic()
        self.assertIn("web-1", self.services())
        self.assertLess(time.monotonic() - t0, 0.7)

    def test_garbage_and_close(self):
        self.emu.fault("garbage")
        out = self.raw()
        self.assertTrue(out.startswith(b"\x00\xff"), out)
        self.assertNotIn(b"HTTP/1.", out)
        self.emu.fault("close")
        self.assertEqual(self.raw(), b"")
        self.emu.fault(None)
        self.assertTrue(self.raw().startswith(b"HTTP/1.1 200 OK"))

    def test_fault_survives_restart_and_bad_lines_are_refused(self):
        self.emu.fault("status 502")
        self.emu.restart_wiped(downtime=0.1)
        self.assertResp(self.get("/v1/agent/services"), 502)
        sys.path.insert(0, HERE)
        import emulator
        path = os.path.join(tempfile.mkdtemp(), "f")
        self.addCleanup(lambda: __import__("shutil").rmtree(os.path.dirname(path)))
        for line, want in (("", (None, None)), ("off", (None, None)),
                           ("status 429", ("status", 429)), ("delay 5", ("delay", 5)),
                           ("garbage", ("garbage", None)), ("close", ("close", None))):
            with open(path, "w") as fh:
                fh.write(line + "\n")
            self.assertEqual(emulator.read_fault(path), want, line)
        self.assertEqual(emulator.read_fault(path + ".missing"), (None, None))
        for line in ("status 99", "status", "delay x", "slow 5", "garbage 1"):
            with open(path, "w") as fh:
                fh.write(line)
            self.assertRaises(ValueError, emulator.read_fault, path)


# ---------------------------------------------------------------------------
# issue 12: data_dir persistence, reload, ACL token lifecycle, 429,
# allow_write_http_from, the [HEALTH] history
# ---------------------------------------------------------------------------
class TestPersistence(EmuCase):
    """ref 1.5, 3, 5.3 and agent/agent.go loadServices/loadChecks/
    loadCheckState: with a data_dir a restart keeps services, checks with
    their tokens, maintenance, and a TTL check's last status until its
    TTL would have expired; then the check comes back critical."""
    FLAGS = dict(EmuCase.FLAGS, data_dir=True)

    def register_ttl(self, ttl):
        check = {"CheckID": "web-1:ttl", "TTL": ttl, "Status": "critical"}
        self.assertResp(self.register(Check=check, headers={"X-Consul-Token": "tok-1"}), 200)

    def test_restart_keeps_services_checks_tokens_and_live_ttl_state(self):
        self.register_ttl("30s")
        self.assertResp(self.update("web-1:ttl", "warning", "w1"), 200)
        self.assertResp(self.put("/v1/agent/service/maintenance/web-1?enable=true&reason=ops"),
                        200)
        self.emu.restart()
        svc = self.services()
        self.assertEqual(list(svc), ["web-1"])
        self.assertEqual(svc["web-1"]["Meta"], {"agent": "hc"})
        self.assertEqual(svc["web-1"]["Port"], 8080)
        chk = self.checks()
        self.assertEqual(chk["web-1:ttl"]["Status"], "warning")
        self.assertEqual(chk["web-1:ttl"]["Output"], "w1")
        self.assertEqual(chk["_service_maintenance:web-1"]["Notes"], "ops")
        self.assertEqual(chk["_service_maintenance:web-1"]["Status"], "critical")
        # The files hold the registering token (persistedService.Token).
        sdir = os.path.join(self.emu.data_dir, "services")
        (name,) = os.listdir(sdir)
        with open(os.path.join(sdir, name)) as fh:
            self.assertEqual(json.load(fh)["Token"], "tok-1")
        self.assertEqual(os.stat(os.path.join(sdir, name)).st_mode & 0o777, 0o600)
        cdir = os.path.join(self.emu.data_dir, "checks")
        tokens = set()
        for n in os.listdir(cdir):
            if os.path.isfile(os.path.join(cdir, n)):
                with open(os.path.join(cdir, n)) as fh:
                    tokens.add(json.load(fh)["Token"])
        self.assertEqual(tokens, {"tok-1", ""})  # the check's and maintenance's

    def test_restart_after_the_ttl_expired_comes_back_critical(self):
        self.register_ttl("1s")
        self.assertResp(self.update("web-1:ttl", "passing", "ok"), 200)
        self.emu.kill()
        time.sleep(2.2)  # Expires is in whole seconds: past it for sure
        self.emu.restart()
        chk = self.checks()["web-1:ttl"]
        self.assertEqual(chk["Status"], "critical")
        self.assertEqual(chk["Output"], "")
        self.assertIn("web-1", self.services())

    def test_restored_ttl_runs_a_full_ttl_from_the_start(self):
        self.register_ttl("2s")
        self.assertResp(self.update("web-1:ttl", "passing", "ok"), 200)
        self.emu.restart()
        t0 = time.monotonic()
        self.assertEqual(self.checks()["web-1:ttl"]["Status"], "passing")
        self.wait_for(lambda: self.checks()["web-1:ttl"]["Status"] == "critical", "TTL expiry")
        self.assertTrue(self.checks()["web-1:ttl"]["Output"].startswith("TTL expired"))
        self.assertGreater(time.monotonic() - t0, 1.0)

    def test_deregister_purges_the_files(self):
        self.register_ttl("30s")
        self.assertResp(self.update("web-1:ttl", "passing"), 200)
        self.assertResp(self.put("/v1/agent/service/deregister/web-1"), 200)
        self.emu.restart()
        self.assertEqual(self.services(), {})
        self.assertEqual(self.checks(), {})
        for sub in ("services", "checks", os.path.join("checks", "state")):
            d = os.path.join(self.emu.data_dir, sub)
            self.assertEqual([n for n in os.listdir(d) if os.path.isfile(os.path.join(d, n))],
                             [], sub)

    def test_reregistering_a_restored_service_keeps_one_instance(self):
        self.register_ttl("30s")
        self.assertResp(self.update("web-1:ttl", "passing", "ok"), 200)
        self.emu.restart()
        self.register_ttl("30s")
        self.assertEqual(list(self.services()), ["web-1"])
        r = self.get("/v1/health/service/web")
        self.assertEqual(len(r.json()), 1)
        self.assertEqual(self.checks()["web-1:ttl"]["Status"], "passing")

    def test_wiped_restart_forgets(self):
        self.register_ttl("30s")
        self.emu.restart_wiped()
        self.assertEqual(self.services(), {})


class TestMemoryOnly(EmuCase):
    def test_restart_without_data_dir_forgets(self):
        self.assertResp(self.register(), 200)
        self.emu.restart()
        self.assertEqual(self.services(), {})


class TestReload(EmuCase):
    """`consul reload` = PUT /v1/agent/reload: snapshot the check states,
    unload, load from the data dir (agent.go ReloadConfig): services and
    checks stay, each check keeps its status and output, TTL timers
    restart at full length."""

    def test_reload_keeps_services_and_status(self):
        self.assertResp(self.register(Check={"CheckID": "web-1:ttl", "TTL": "30s"}), 200)
        self.assertResp(self.update("web-1:ttl", "warning", "w"), 200)
        self.assertResp(self.put("/v1/agent/service/maintenance/web-1?enable=true"), 200)
        self.assertResp(self.put("/v1/agent/reload"), 200, "")
        chk = self.checks()
        self.assertEqual(chk["web-1:ttl"]["Status"], "warning")
        self.assertEqual(chk["web-1:ttl"]["Output"], "w")
        self.assertIn("_service_maintenance:web-1", chk)
        self.assertEqual(list(self.services()), ["web-1"])
        self.assertIn("Reloading configuration", self.emu.log_text())

    def test_reload_restarts_the_ttl(self):
        self.assertResp(self.register(Check={"CheckID": "web-1:ttl", "TTL": "2s"}), 200)
        self.assertResp(self.update("web-1:ttl", "passing"), 200)
        time.sleep(1.2)
        t0 = time.monotonic()
        self.assertResp(self.put("/v1/agent/reload"), 200)
        self.wait_for(lambda: self.checks()["web-1:ttl"]["Status"] == "critical", "expiry")
        if time.monotonic() - t0 < 5:  # not starved: the timer was re-armed
            self.assertGreater(time.monotonic() - t0, 1.5)

    def test_reload_method_and_acl(self):
        self.assertResp(self.get("/v1/agent/reload"), 405, "method GET not allowed")
        self.assertEqual(self.emu.reload(), 200)


class TestReloadAcl(EmuCase):
    FLAGS = {"acl_default_policy": "deny",
             "acl_token": ["root", "w=service:web:write", "a=agent:emulator-node:write"]}

    def test_reload_needs_agent_write(self):
        r = self.put("/v1/agent/reload", headers={"X-Consul-Token": "w"})
        self.assertEqual(r.status, 403, r.text)
        self.assertIn("lacks permission 'agent:write'", r.text)
        self.assertResp(self.put("/v1/agent/reload", headers={"X-Consul-Token": "a"}), 200)


class TestAclTokens(EmuCase):
    """Tokens can be created, read and deleted (revocation and rotation):
    PUT /v1/acl/token, GET /v1/acl/token/self, DELETE /v1/acl/token/<accessor>.
    A deleted token gets 403 ACL not found (ref 7)."""
    FLAGS = {"acl_default_policy": "deny", "acl_token": ["root"]}
    ROOT = {"X-Consul-Token": "root"}

    def test_create_use_delete(self):
        r = self.put("/v1/acl/token", {"SecretID": "s-1", "Description": "hr",
                                       "ServiceIdentities": [{"ServiceName": "web"}]},
                     headers=self.ROOT)
        self.assertResp(r, 200)
        tok = r.json()
        self.assertEqual(tok["SecretID"], "s-1")
        self.assertEqual(tok["ServiceIdentities"], [{"ServiceName": "web"}])
        me = self.get("/v1/acl/token/self", headers={"X-Consul-Token": "s-1"}).json()
        self.assertEqual(me["AccessorID"], tok["AccessorID"])
        self.assertResp(self.register(headers={"X-Consul-Token": "s-1"}), 200)
        r = self.register(Name="db", ID="db-1", headers={"X-Consul-Token": "s-1"})
        self.assertEqual(r.status, 403)
        self.assertIn("Permission denied", r.text)
        self.assertResp(self.req("DELETE", "/v1/acl/token/" + tok["AccessorID"],
                                 headers=self.ROOT), 200, "true")
        self.assertResp(self.update("web-1:ttl", "passing", headers={"X-Consul-Token": "s-1"}),
                        403, "ACL not found")
        self.assertResp(self.get("/v1/acl/token/self", headers={"X-Consul-Token": "s-1"}),
                        403, "ACL not found")

    def test_only_management_writes_tokens(self):
        self.put("/v1/acl/token", {"SecretID": "s-2",
                                   "ServiceIdentities": [{"ServiceName": "web"}]},
                 headers=self.ROOT)
        r = self.put("/v1/acl/token", {"SecretID": "s-3"}, headers={"X-Consul-Token": "s-2"})
        self.assertEqual(r.status, 403)
        self.assertIn("lacks permission 'acl:write'", r.text)
        r = self.put("/v1/acl/token", {"SecretID": "s-2"}, headers=self.ROOT)
        self.assertResp(r, 400, "Invalid Token: SecretID is already in use")


class TestAclTokensDisabled(EmuCase):
    def test_acl_endpoints_without_acls(self):
        self.assertResp(self.get("/v1/acl/token/self"), 401, "ACL support disabled")


class TestConnLimit(EmuCase):
    """limits.http_max_conns_per_client: the connection over the limit gets
    connlimit's raw 429 (agent/agent.go) and is closed."""
    FLAGS = dict(EmuCase.FLAGS, http_max_conns_per_client=2)

    def test_third_connection_gets_429(self):
        import socket
        held = []
        end = time.monotonic() + DEADLINE
        while len(held) < 2:  # served keep-alive connections hold the slots
            c = http.client.HTTPConnection("127.0.0.1", self.emu.port, timeout=10)
            c.request("GET", "/v1/agent/services")
            r = c.getresponse()
            r.read()
            if r.status == 200:
                held.append(c)
            else:  # the start-up probe's connection still counted
                c.close()
                self.assertLess(time.monotonic(), end)
                time.sleep(0.05)
        self.addCleanup(lambda: [c.close() for c in held])
        s = socket.create_connection(("127.0.0.1", self.emu.port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"GET /v1/agent/services HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
        self.assertTrue(data.startswith(b"HTTP/1.1 429 Too Many Requests\r\n"), data)
        self.assertTrue(data.endswith(b"\r\n\r\nYour IP is issuing too many concurrent "
                                      b"connections, please rate limit your calls\n"), data)
        for c in held:
            c.close()
        self.wait_for(lambda: self.get("/v1/agent/services").status == 200, "a free slot")

    def _no_internal_errors(self):
        pass  # the refusal is logged as [ERROR], as the agent does


class TestAllowWriteHttpFrom(EmuCase):
    """allow_write_http_from (ref 7): a write from outside the networks gets
    403 Access is restricted; reads are served."""
    FLAGS = dict(EmuCase.FLAGS, allow_write_http_from=["10.0.0.0/8"])

    def test_write_from_loopback_refused(self):
        self.assertResp(self.register(), 403, "Access is restricted")
        self.assertResp(self.get("/v1/agent/services"), 200)
        self.assertResp(self.put("/v1/agent/check/update/x", {"Status": "passing"}), 403,
                        "Access is restricted")


class TestAllowWriteHttpFromLoopback(EmuCase):
    FLAGS = dict(EmuCase.FLAGS, allow_write_http_from=["10.0.0.0/8", "127.0.0.0/8"])

    def test_write_from_listed_network_allowed(self):
        self.assertResp(self.register(), 200)


class TestHealthHistory(EmuCase):
    """Test machinery: every change of a service's aggregate (ref 6.3) is one
    [HEALTH] log line, so a test can prove a state was never visible."""

    def test_history(self):
        self.assertResp(self.register(Check={"CheckID": "web-1:ttl", "TTL": "30s"}), 200)
        self.assertResp(self.update("web-1:ttl", "passing"), 200)
        self.assertResp(self.put("/v1/agent/service/maintenance/web-1?enable=true"), 200)
        self.assertResp(self.update("web-1:ttl", "warning"), 200)
        self.assertResp(self.put("/v1/agent/service/deregister/web-1"), 200)
        lines = [ln.split("[HEALTH] ")[1] for ln in self.emu.log_text().splitlines()
                 if "[HEALTH] " in ln]
        self.assertEqual(lines, ["service=web-1 status=critical", "service=web-1 status=passing",
                                 "service=web-1 status=maintenance",
                                 "service=web-1 status=absent"])


class TestKV(EmuCase):
    """The KV store (README "KV"): agent/kvs_endpoint.go, the servers'
    KVS.Get/KVS.Apply and state/kvs.go kvsSetCASTxn/kvsDeleteCASTxn."""
    K = "/v1/kv/healthreg/floor/web"

    def entry(self):
        r = self.get(self.K)
        self.assertResp(r, 200)
        [e] = r.json()
        return r, e

    def test_missing_key_is_404_with_an_index(self):
        r = self.get(self.K)
        self.assertResp(r, 404, "")
        self.assertGreaterEqual(int(r.header("X-Consul-Index")), 1)
        self.assertIsNone(r.header("X-Consul-Reason"))

    def test_put_get_fields_and_raw(self):
        self.assertResp(self.put(self.K + "?flags=7", '{"leavers":[]}'), 200, "true")
        r, e = self.entry()
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(list(e), ["LockIndex", "Key", "Flags", "Value",
                                   "CreateIndex", "ModifyIndex"])
        self.assertEqual(e["Key"], "healthreg/floor/web")
        self.assertEqual(e["Flags"], 7)
        self.assertEqual(e["LockIndex"], 0)
        self.assertEqual(base64.b64decode(e["Value"]), b'{"leavers":[]}')
        self.assertEqual(e["CreateIndex"], e["ModifyIndex"])
        self.assertEqual(r.header("X-Consul-Index"), str(e["ModifyIndex"]))
        raw = self.get(self.K + "?raw")
        self.assertResp(raw, 200, '{"leavers":[]}')
        self.assertEqual(raw.header("Content-Type"), "text/plain")
        # An update keeps CreateIndex, moves ModifyIndex; flags reset to 0.
        self.assertResp(self.put(self.K, "x"), 200, "true")
        _, e2 = self.entry()
        self.assertEqual(e2["CreateIndex"], e["CreateIndex"])
        self.assertGreater(e2["ModifyIndex"], e["ModifyIndex"])
        self.assertEqual(e2["Flags"], 0)
        # An empty value is null (a nil []byte).
        self.put(self.K, "")
        self.assertIsNone(self.entry()[1]["Value"])

    def test_cas(self):
        # cas=0: create only.
        self.assertResp(self.put(self.K + "?cas=0", "a"), 200, "true")
        self.assertResp(self.put(self.K + "?cas=0", "b"), 200, "false")
        _, e = self.entry()
        self.assertEqual(base64.b64decode(e["Value"]), b"a")
        i = e["ModifyIndex"]
        # A stale index loses, the current one wins once.
        self.assertResp(self.put(self.K + "?cas=%d" % (i + 100), "c"), 200, "false")
        self.assertResp(self.put(self.K + "?cas=%d" % i, "d"), 200, "true")
        self.assertResp(self.put(self.K + "?cas=%d" % i, "e"), 200, "false")
        self.assertEqual(self.get(self.K + "?raw").raw, b"d")
        # cas on a missing key other than 0: false.
        self.assertResp(self.put("/v1/kv/other?cas=5", "x"), 200, "false")
        self.assertResp(self.get("/v1/kv/other"), 404)

    def test_cas_serializes_concurrent_writers(self):
        self.put(self.K, "0")
        _, e = self.entry()
        i = e["ModifyIndex"]
        results = []
        barrier = threading.Barrier(8)

        def one(n):
            barrier.wait()
            results.append(self.put(self.K + "?cas=%d" % i, str(n)).text)
        ts = [threading.Thread(target=one, args=(n,)) for n in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(sorted(results), ["false"] * 7 + ["true"])

    def test_delete(self):
        self.put(self.K, "a")
        _, e = self.entry()
        i = e["ModifyIndex"]
        self.assertResp(self.req("DELETE", self.K + "?cas=%d" % (i + 1)), 200, "false")
        self.assertResp(self.get(self.K), 200)
        self.assertResp(self.req("DELETE", self.K + "?cas=%d" % i), 200, "true")
        self.assertResp(self.get(self.K), 404)
        # A missing key: cas delete and plain delete both answer true.
        self.assertResp(self.req("DELETE", self.K + "?cas=3"), 200, "true")
        self.assertResp(self.req("DELETE", self.K), 200, "true")
        # The index moved with the delete.
        self.assertGreater(int(self.get(self.K).header("X-Consul-Index")), i)

    def test_bad_requests(self):
        self.assertResp(self.put("/v1/kv/", "x"), 400, "Missing key name")
        self.assertResp(self.get("/v1/kv/"), 400, "Missing key name")
        self.assertResp(self.put("/v1/kv/a%20b", "x"), 400,
                        "key contains invalid character ' ' at position 1. Only "
                        "alphanumeric characters and ,-_./ are allowed")
        self.assertResp(self.put("/v1/kv/floor.json", "x"), 400,
                        "key contains suspicious file extension '.json' that may "
                        "be cached by proxies")
        self.assertResp(self.put(self.K + "?cas=x", "x"), 500,
                        'strconv.ParseUint: parsing "x": invalid syntax')
        self.assertResp(self.put(self.K + "?cas=1&acquire=s", "x"), 400,
                        "Conflicting flags: acquire=s&cas=1\n")
        self.assertResp(self.req("DELETE", self.K + "?cas=1&recurse"), 400,
                        "Conflicting flags: cas=1&recurse=\n")
        self.assertResp(self.get(self.K + "?dc=dc9"), 500, "No path to datacenter")
        self.assertResp(self.get(self.K + "?stale&consistent"), 400,
                        "Cannot specify ?stale with ?consistent, conflicting semantics.")
        self.assertResp(self.get(self.K + "?index=x"), 400, "Invalid index")
        r = self.req("POST", self.K, "x")
        self.assertResp(r, 405)
        self.assertEqual(r.header("Allow"), "OPTIONS,GET,PUT,DELETE")


class TestKVACL(EmuCase):
    FLAGS = {"acl_default_policy": "deny",
             "acl_token": ["root", "kw=key_prefix:healthreg/floor/:write",
                           "kr=key:healthreg/floor/web:read"]}
    K = "/v1/kv/healthreg/floor/web"

    def test_rights(self):
        h = {"X-Consul-Token": "kw"}
        self.assertResp(self.put(self.K + "?cas=0", "a", headers=h), 200, "true")
        self.assertResp(self.get(self.K, headers=h), 200)
        self.assertResp(self.req("DELETE", self.K + "?cas=1", headers=h), 200, "false")
        r = self.put(self.K, "b", headers={"X-Consul-Token": "kr"})
        self.assertEqual(r.status, 403)
        self.assertIn("lacks permission 'key:write' on \"healthreg/floor/web\"", r.text)
        self.assertResp(self.get(self.K, headers={"X-Consul-Token": "kr"}), 200)
        r = self.put("/v1/kv/other", "b", headers=h)
        self.assertEqual(r.status, 403)
        r = self.get(self.K)  # anonymous, default deny
        self.assertEqual(r.status, 403)
        self.assertIn("lacks permission 'key:read'", r.text)
        self.assertResp(self.get(self.K, headers={"X-Consul-Token": "nope"}), 403,
                        "ACL not found")


if __name__ == "__main__":
    unittest.main()
