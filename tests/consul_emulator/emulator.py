#!/usr/bin/env python3
"""Consul agent HTTP API emulator (test infrastructure for healthreg).

Python 3 standard library only.  Emulates the subset of the Consul agent HTTP
API described in docs reference ``consul-agent-api.md`` (section numbers in
comments, e.g. "ref 2.1", refer to that document).  See README.md next to this
file for the CLI, every implemented behaviour and the known gaps.

Run:
    python3 emulator.py --port 0 --port-file /tmp/x.port [--bind 127.0.0.1]
        [--acl-default-policy deny --acl-token SECRET[=RULES] ...]
        [--reap-min-ms N] [--reap-tick-ms N] [--log FILE]
        [--tls-cert C --tls-key K [--tls-ca CA] --https-port N
         --https-port-file F] [--unix PATH]

With --tls-cert/--tls-key a second listener serves the same agent over
HTTPS (Consul's ports.https; --tls-ca requires client certificates, like
verify_incoming), and --unix adds one on a Unix socket (addresses.http =
"unix://PATH").

State is kept in memory only (like ``consul agent -dev``): killing the
process and starting a new one on the same port is "an agent restarted with
its state wiped".
"""

import argparse
import base64
import codecs
import hashlib
import http.server
import ipaddress
import json
import os
import random
import re
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

# ---------------------------------------------------------------------------
# Go compatibility helpers
# ---------------------------------------------------------------------------


def _go_replace_errors(exc):
    # Go replaces every invalid byte by U+FFFD (utf8.DecodeRune returns
    # width 1 for invalid input), Python's "replace" collapses maximal invalid
    # subparts.  Resume one byte after the error start to get Go's behaviour.
    if isinstance(exc, UnicodeDecodeError):
        return ("\ufffd", exc.start + 1)
    raise exc


codecs.register_error("go_replace", _go_replace_errors)

_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def go_bytes(s):
    """str -> UTF-8 bytes as Go would hold it (lone surrogates -> U+FFFD)."""
    return _SURROGATE_RE.sub("\ufffd", s).encode("utf-8")


def go_str(b):
    """bytes -> str, invalid UTF-8 replaced byte-by-byte like Go's JSON."""
    return b.decode("utf-8", "go_replace")


def go_quote(s):
    """Approximation of Go's strconv.Quote / %q."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\a":
            out.append("\\a")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\v":
            out.append("\\v")
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02x" % o)
        elif ch == "\ufffd":
            out.append("\\ufffd")
        elif not ch.isprintable() and o > 0x7F:
            out.append("\\u%04x" % o if o <= 0xFFFF else "\\U%08x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class GoError(Exception):
    """An error whose str() is the exact Go error text."""


_DUR_UNITS = {
    "ns": 1,
    "us": 1000,
    "\u00b5s": 1000,  # U+00B5 micro sign
    "\u03bcs": 1000,  # U+03BC greek mu
    "ms": 1000000,
    "s": 1000000000,
    "m": 60 * 1000000000,
    "h": 3600 * 1000000000,
}
_MAX_I64 = (1 << 63) - 1


def parse_duration(orig):
    """Go time.ParseDuration; returns nanoseconds or raises GoError."""
    s = orig
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise GoError("time: invalid duration " + go_quote(orig))
    total = 0
    while s:
        if not (s[0] == "." or s[0].isdigit() and s[0].isascii()):
            raise GoError("time: invalid duration " + go_quote(orig))
        i = 0
        while i < len(s) and "0" <= s[i] <= "9":
            i += 1
        pre = i > 0
        v = int(s[:i]) if pre else 0
        if v > _MAX_I64:
            raise GoError("time: invalid duration " + go_quote(orig))
        s = s[i:]
        frac, scale, post = 0, 1, False
        if s and s[0] == ".":
            s = s[1:]
            j = 0
            while j < len(s) and "0" <= s[j] <= "9":
                j += 1
            post = j > 0
            digits = s[:j]
            s = s[j:]
            for d in digits:
                if scale > _MAX_I64 // 10:
                    break
                frac = frac * 10 + int(d)
                scale *= 10
        if not pre and not post:
            raise GoError("time: invalid duration " + go_quote(orig))
        k = 0
        while k < len(s) and s[k] != "." and not ("0" <= s[k] <= "9"):
            k += 1
        if k == 0:
            raise GoError("time: missing unit in duration " + go_quote(orig))
        u = s[:k]
        s = s[k:]
        if u not in _DUR_UNITS:
            raise GoError("time: unknown unit " + go_quote(u) + " in duration " + go_quote(orig))
        unit = _DUR_UNITS[u]
        if v > _MAX_I64 // unit:
            raise GoError("time: invalid duration " + go_quote(orig))
        v *= unit
        if frac:
            v += int(frac * (unit / scale))
        total += v
        if total > _MAX_I64:
            raise GoError("time: invalid duration " + go_quote(orig))
    return -total if neg else total


def format_duration(ns):
    """Go time.Duration.String()."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    u = -ns if neg else ns

    def frac(v, prec):
        # returns (string of fraction without trailing zeros, v // 10**prec)
        digits = []
        printed = False
        for _ in range(prec):
            d = v % 10
            printed = printed or d != 0
            if printed:
                digits.append(str(d))
            v //= 10
        s = "".join(reversed(digits))
        return ("." + s if s else ""), v

    if u < 1000000000:
        if u < 1000:
            out = "%dns" % u
        elif u < 1000000:
            f, w = frac(u, 3)
            out = "%d%s\u00b5s" % (w, f)
        else:
            f, w = frac(u, 6)
            out = "%d%sms" % (w, f)
    else:
        f, secs = frac(u, 9)
        out = "%d%ss" % (secs % 60, f)
        mins = secs // 60
        if mins > 0:
            out = "%dm" % (mins % 60) + out
            hours = mins // 60
            if hours > 0:
                out = "%dh" % hours + out
    return ("-" if neg else "") + out


def parse_bool(s):
    """Go strconv.ParseBool; returns True/False or None when invalid."""
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def go_json(obj, pretty=False):
    """Serialize like Go's encoding/json (compact, HTML-safe escapes)."""
    if pretty:
        text = json.dumps(obj, indent=4, ensure_ascii=False) + "\n"
    else:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029"))
    return go_bytes(text)


# ---------------------------------------------------------------------------
# Strict JSON decoding (ref 0: lib.DecodeJSON + DisallowUnknownFields)
# ---------------------------------------------------------------------------

class DecodeError(Exception):
    pass


def _json_kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


class Struct:
    """A Go struct type: fields = list of (json key, spec)."""

    def __init__(self, goname, fields):
        self.goname = goname
        self.fields = fields
        self.exact = {k: (k, spec) for k, spec in fields}
        self.folded = {}
        for k, spec in fields:
            self.folded.setdefault(k.lower(), (k, spec))

    def lookup(self, key):
        if key in self.exact:
            return self.exact[key]
        return self.folded.get(key.lower())


# spec kinds: "string" "int" "bool" "duration" "any" ("list", spec)
# ("map", spec) (Struct)
_GOTYPE = {"string": "string", "int": "int", "bool": "bool", "any": "interface {}"}


def _gotype(spec):
    if isinstance(spec, Struct):
        return "structs." + spec.goname
    if isinstance(spec, tuple):
        if spec[0] == "list":
            return "[]" + _gotype(spec[1])
        return "map[string]" + _gotype(spec[1])
    return _GOTYPE.get(spec, spec)


def _type_error(v, spec, where):
    kind = _json_kind(v)
    if kind == "number":
        kind = "number " + json.dumps(v) if isinstance(v, float) else "number"
    if where:
        return DecodeError("json: cannot unmarshal %s into Go struct field %s of type %s"
                           % (kind, where, _gotype(spec).replace("structs.", "")))
    return DecodeError("json: cannot unmarshal %s into Go value of type %s" % (kind, _gotype(spec)))


def decode_value(v, spec, where):
    """Decode JSON value v per spec; None (JSON null) yields the zero value."""
    if isinstance(spec, Struct):
        if v is None:
            return None
        if not isinstance(v, dict):
            raise _type_error(v, spec, where)
        out = {}
        for key, val in v.items():  # document order (object_pairs_hook)
            hit = spec.lookup(key)
            if hit is None:
                raise DecodeError("json: unknown field %s" % go_quote(key))
            canon, fspec = hit
            out[canon] = decode_value(val, fspec, "%s.%s" % (spec.goname, canon))
        return out
    if spec == "duration":
        # CheckType.UnmarshalJSON: string -> time.ParseDuration, number -> ns,
        # anything else is ignored.
        if isinstance(v, str):
            try:
                return parse_duration(v)
            except GoError as e:
                raise DecodeError(str(e))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return int(v)
        return 0
    if v is None:  # Go leaves the zero value
        return {"string": "", "int": 0, "bool": False}.get(spec) if isinstance(spec, str) else None
    if spec == "any":
        return v
    if spec == "string":
        if not isinstance(v, str):
            raise _type_error(v, spec, where)
        return v
    if spec == "bool":
        if not isinstance(v, bool):
            raise _type_error(v, spec, where)
        return v
    if spec == "int":
        if isinstance(v, bool) or not isinstance(v, int) or not (-(1 << 63) <= v <= _MAX_I64):
            raise _type_error(v, spec, where)
        return v
    if isinstance(spec, tuple) and spec[0] == "list":
        if not isinstance(v, list):
            raise _type_error(v, spec, where)
        return [decode_value(x, spec[1], where) for x in v]
    if isinstance(spec, tuple) and spec[0] == "map":
        if not isinstance(v, dict):
            raise _type_error(v, spec, where)
        return {k: decode_value(x, spec[1], where) for k, x in v.items()}
    raise AssertionError(spec)


def _pairs_hook(pairs):
    # Keep document order and duplicate keys (Go: last one wins, per field).
    d = {}
    for k, v in pairs:
        d.pop(k, None)
        d[k] = v
    return d


def decode_body(raw, spec):
    """Go json.Decoder.Decode of the *first* JSON value in raw (trailing data
    is ignored, as Decode does).  Raises DecodeError with Go's text."""
    text = go_str(raw)
    i = 0
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    if i == len(text):
        raise DecodeError("EOF")
    def no_constants(name):  # Go rejects NaN / Infinity literals
        raise DecodeError("invalid character '%s' looking for beginning of value" % name[-8:][0])

    dec = json.JSONDecoder(object_pairs_hook=_pairs_hook, parse_constant=no_constants)
    try:
        value, _ = dec.raw_decode(text, i)
    except json.JSONDecodeError as e:
        if e.pos >= len(text.rstrip(" \t\r\n")):
            raise DecodeError("unexpected EOF")
        ch = text[e.pos]
        raise DecodeError("invalid character %s looking for beginning of value"
                          % ("'%s'" % ch if ch != "'" else "'\\''"))
    except RecursionError:
        raise DecodeError("exceeded max depth")
    return decode_value(value, spec, "")


WEIGHTS = Struct("Weights", [("Passing", "int"), ("Warning", "int")])
SERVICE_ADDRESS = Struct("ServiceAddress", [("Address", "string"), ("Port", "int")])

# ref 1.2: CheckType keys (CheckID, not ID) plus the listed aliases.
CHECK_TYPE = Struct("CheckType", [
    ("CheckID", "string"), ("Name", "string"), ("Notes", "string"),
    ("Status", "string"), ("TTL", "duration"),
    ("DeregisterCriticalServiceAfter", "duration"),
    ("deregister_critical_service_after", "duration"),
    ("Interval", "duration"), ("Timeout", "duration"),
    ("HTTP", "string"), ("Method", "string"),
    ("Header", ("map", ("list", "string"))), ("Body", "string"),
    ("DisableRedirects", "bool"), ("TCP", "string"), ("UDP", "string"),
    ("GRPC", "string"), ("GRPCUseTLS", "bool"), ("H2PING", "string"),
    ("H2PingUseTLS", "bool"), ("ScriptArgs", ("list", "string")),
    ("Args", ("list", "string")), ("DockerContainerID", "string"),
    ("Shell", "string"), ("TLSServerName", "string"), ("TLSSkipVerify", "bool"),
    ("AliasNode", "string"), ("AliasService", "string"), ("OSService", "string"),
    ("SuccessBeforePassing", "int"), ("FailuresBeforeWarning", "int"),
    ("FailuresBeforeCritical", "int"), ("OutputMaxSize", "int"),
    ("ServiceID", "string"), ("service_id", "string"),
])

# ref 1.1: ServiceDefinition keys (Community Edition: no Namespace/Partition).
SERVICE_DEFINITION = Struct("ServiceDefinition", [
    ("Kind", "string"), ("ID", "string"), ("Name", "string"),
    ("Tags", ("list", "string")), ("Address", "string"),
    ("TaggedAddresses", ("map", SERVICE_ADDRESS)),
    ("tagged_addresses", ("map", SERVICE_ADDRESS)),
    ("Meta", ("map", "string")), ("Port", "int"), ("SocketPath", "string"),
    ("EnableTagOverride", "bool"), ("enable_tag_override", "bool"),
    ("Weights", WEIGHTS), ("Check", CHECK_TYPE), ("Checks", ("list", CHECK_TYPE)),
    ("Token", "string"), ("Proxy", "any"), ("Connect", "any"),
])

CHECK_UPDATE = Struct("checkUpdate", [("Status", "string"), ("Output", "string")])

# ---------------------------------------------------------------------------
# HTTP errors
# ---------------------------------------------------------------------------


class HTTPError(Exception):
    """Consul's HTTPError{StatusCode, Reason}: plain-text body (ref 0)."""

    def __init__(self, code, reason, headers=None):
        Exception.__init__(self, reason)
        self.code = code
        self.reason = reason
        self.headers = headers or {}


class Payload(Exception):
    """CodeWithPayloadError (ref 0, 6.3): status + body + X-Consul-Reason."""

    def __init__(self, code, reason, body, content_type):
        Exception.__init__(self, reason)
        self.code = code
        self.reason = reason
        self.body = body
        self.content_type = content_type


def error_status(msg):
    # ref 0: wrapper mapping for plain errors.
    if "Permission denied" in msg or "ACL not found" in msg:
        return 403
    return 500


# ---------------------------------------------------------------------------
# ACLs (ref 7)
# ---------------------------------------------------------------------------

ANONYMOUS_ACCESSOR = "00000000-0000-0000-0000-000000000002"
GLOBAL_MANAGEMENT_ID = "00000000-0000-0000-0000-000000000001"
_LEVEL = {"deny": 0, "read": 1, "write": 2}


class Token:
    def __init__(self, secret, rules, management, accessor=None, description="",
                 service_identities=()):
        self.secret = secret
        self.rules = rules  # list of (resource, name, is_prefix, level)
        self.management = management
        self.description = description
        self.service_identities = list(service_identities)
        if accessor:
            self.accessor = accessor
        elif secret == "anonymous":
            self.accessor = ANONYMOUS_ACCESSOR
        else:
            self.accessor = str(uuid.uuid5(uuid.NAMESPACE_OID, "healthreg-consul-emulator:" + secret))

    def json(self):
        """structs.ACLToken as the /v1/acl/token endpoints render it."""
        return {
            "AccessorID": self.accessor, "SecretID": self.secret,
            "Description": self.description,
            "Policies": ([{"ID": GLOBAL_MANAGEMENT_ID, "Name": "global-management"}]
                         if self.management else []),
            "ServiceIdentities": [{"ServiceName": n} for n in self.service_identities],
            "Local": False,
        }


def parse_token_spec(spec):
    """SECRET  -> management token;  SECRET=RULES -> rule token.
    RULES: comma separated resource:name:level where resource is service,
    service_prefix, node or node_prefix and level is read, write or deny."""
    if "=" not in spec:
        return Token(spec, [], True)
    secret, rules_s = spec.split("=", 1)
    rules = []
    for part in filter(None, (p.strip() for p in rules_s.split(","))):
        bits = part.split(":", 1)
        bits = bits[:1] + bits[1].rsplit(":", 1) if len(bits) == 2 else bits
        if len(bits) != 3 or bits[0] not in ("service", "service_prefix", "node", "node_prefix",
                                             "agent", "agent_prefix", "key", "key_prefix") \
                or bits[2] not in _LEVEL:
            raise ValueError("bad ACL rule %r (want resource:name:read|write|deny)" % part)
        res, name, level = bits
        rules.append((res.replace("_prefix", ""), name, res.endswith("_prefix"), _LEVEL[level]))
    return Token(secret, rules, False)


class ACL:
    def __init__(self, enabled, default_policy, tokens, default_token):
        self.enabled = enabled
        self.default_policy = default_policy
        self.tokens = {t.secret: t for t in tokens}
        self.default_token = default_token or ""
        if "anonymous" not in self.tokens:
            self.tokens["anonymous"] = Token("anonymous", [], False)

    def by_accessor(self, accessor):
        for t in self.tokens.values():
            if t.accessor == accessor:
                return t
        return None

    def resolve(self, secret):
        """Return a Token or None (ACLs disabled).  Unknown -> 403 ACL not found."""
        if not self.enabled:
            return None
        if secret == "":
            secret = self.default_token
        if secret == "":
            return self.tokens["anonymous"]
        tok = self.tokens.get(secret)
        if tok is None:
            raise HTTPError(403, "ACL not found")
        return tok

    def allowed(self, tok, resource, name, want):
        if tok is None or tok.management:
            return True
        best = None  # (exact?, prefix length, level)
        for res, rname, is_prefix, level in tok.rules:
            if res != resource:
                continue
            if is_prefix:
                if name.startswith(rname):
                    key = (0, len(rname))
                else:
                    continue
            elif rname == name:
                key = (1, len(rname))
            else:
                continue
            if best is None or key > best[0]:
                best = (key, level)
        if best is None:
            return self.default_policy == "allow"
        return best[1] >= _LEVEL[want]

    def require(self, tok, resource, name, want):
        if not self.allowed(tok, resource, name, want):
            raise HTTPError(403, "Permission denied: token with AccessorID '%s' lacks permission "
                                 "'%s:%s' on %s" % (tok.accessor, resource, want, go_quote(name)))


# ---------------------------------------------------------------------------
# Agent state
# ---------------------------------------------------------------------------

MAINT_PREFIX = "_service_maintenance:"
NODE_MAINT = "_node_maintenance"
SERF_CHECK = "serfHealth"
SVC_MAINT_DEFAULT = ("Maintenance mode is enabled for this service, but no reason was provided. "
                     "This is a default message.")
NODE_MAINT_DEFAULT = ("Maintenance mode is enabled for this node, but no reason was provided. "
                      "This is a default message.")


class Service:
    def __init__(self, d):
        self.id = d["ID"]
        self.name = d["Name"]
        self.kind = d.get("Kind") or ""
        self.tags = d.get("Tags")
        self.address = d.get("Address") or ""
        self.port = d.get("Port") or 0
        self.meta = d.get("Meta")
        self.socket_path = d.get("SocketPath") or ""
        self.eto = bool(d.get("EnableTagOverride"))
        self.weights = d["Weights"]
        self.tagged = d["TaggedAddresses"]
        self.proxy = d.get("Proxy")
        self.connect = d.get("Connect")

    def tags_list(self):
        return list(self.tags) if self.tags else []

    def agent_json(self, dc):
        """api.AgentService as rendered by buildAgentService (ref 6.1)."""
        o = {}
        if self.kind:
            o["Kind"] = self.kind
        o["ID"] = self.id
        o["Service"] = self.name
        o["Tags"] = self.tags_list()
        o["Meta"] = dict(self.meta) if self.meta else {}
        o["Port"] = self.port
        o["Address"] = self.address
        if self.socket_path:
            o["SocketPath"] = self.socket_path
        if self.tagged:
            o["TaggedAddresses"] = {k: dict(v) for k, v in sorted(self.tagged.items())}
        o["Weights"] = dict(self.weights)
        o["EnableTagOverride"] = self.eto
        o["Datacenter"] = dc
        return o

    def catalog_snapshot(self):
        return {
            "Kind": self.kind, "ID": self.id, "Service": self.name,
            "Tags": self.tags_list(), "Address": self.address,
            "TaggedAddresses": {k: dict(v) for k, v in sorted(self.tagged.items())},
            "Meta": dict(self.meta) if self.meta else {}, "Port": self.port,
            "SocketPath": self.socket_path, "Weights": dict(self.weights),
            "EnableTagOverride": self.eto,
        }


class Check:
    def __init__(self, check_id, name, service_id, service_name, service_tags, ctype):
        self.id = check_id
        self.name = name
        self.notes = ""
        self.status = "critical"
        self.output = ""
        self.service_id = service_id
        self.service_name = service_name
        self.service_tags = service_tags
        self.type = ctype
        self.interval = ""
        self.timeout = ""
        self.ttl = 0                 # ns; > 0 only for TTL checks (ref 3)
        self.ttl_deadline = None     # monotonic time of the one-shot expiry
        self.last_output = ""        # CheckTTL.lastOutput of the current runner
        self.output_max = 4096
        self.reap_after = 0          # effective DCSA in seconds (ref 4)
        self.critical_since = None   # CheckState.CriticalTime (monotonic)
        self.defer_at = None         # pending deferred output sync (ref 9)
        self.chk_type = None         # the CheckType it was registered with (persisted)
        self.token = ""              # the registering token (persisted, ref 1.5)

    def json(self, node, idx=(0, 0)):
        return {
            "Node": node, "CheckID": self.id, "Name": self.name, "Status": self.status,
            "Notes": self.notes, "Output": self.output, "ServiceID": self.service_id,
            "ServiceName": self.service_name,
            "ServiceTags": list(self.service_tags) if self.service_tags else [],
            "Type": self.type, "Interval": self.interval, "Timeout": self.timeout,
            "ExposedPort": 0, "Definition": {},
            "CreateIndex": idx[0], "ModifyIndex": idx[1],
        }


def check_kind(ct):
    """CheckType.Type() (ref 6.2)."""
    if ct.get("ScriptArgs") or ct.get("Args"):
        return "docker" if ct.get("DockerContainerID") else "script"
    for key, name in (("HTTP", "http"), ("TCP", "tcp"), ("UDP", "udp"), ("GRPC", "grpc"),
                      ("H2PING", "h2ping"), ("OSService", "os_service")):
        if ct.get(key):
            return name
    if ct.get("AliasService") or ct.get("AliasNode"):
        return "alias"
    if ct.get("TTL", 0) > 0:
        return "ttl"
    return ""


def validate_check_type(ct):
    """CheckType.Validate (ref 1.2); returns error text or None."""
    ttl = ct.get("TTL", 0)
    interval = ct.get("Interval", 0)
    interval_check = bool(ct.get("ScriptArgs") or ct.get("Args") or ct.get("HTTP") or
                          ct.get("TCP") or ct.get("UDP") or ct.get("GRPC") or
                          ct.get("H2PING") or ct.get("OSService"))
    alias = bool(ct.get("AliasService") or ct.get("AliasNode"))
    if interval > 0 and ttl > 0:
        return "Interval and TTL cannot both be specified"
    if interval_check and interval <= 0:
        return "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
    if not interval_check and not alias and ttl <= 0:
        return "TTL must be > 0 for TTL checks"
    if (ct.get("OutputMaxSize") or 0) < 0:
        return "MaxOutputMaxSize must be positive"
    fbw = ct.get("FailuresBeforeWarning")
    if fbw is not None and fbw > (ct.get("FailuresBeforeCritical") or 0):
        return "FailuresBeforeWarning can't be higher than FailuresBeforeCritical"
    return None


_META_KEY_RE = re.compile(r"[a-zA-Z0-9_-]+")


def validate_meta(meta):
    """structs.ValidateServiceMetadata (ref 1.1); error text or None."""
    if not meta:
        return None
    if len(meta) > 64:
        return "Node metadata cannot contain more than 64 key/value pairs"
    for k, v in meta.items():
        err = None
        if k == "":
            err = "Key cannot be blank"
        elif not _META_KEY_RE.fullmatch(k):
            err = "Key contains invalid characters"
        elif len(k) > 128:
            err = "Key is too long (limit: 128 characters)"
        elif k.startswith("consul-"):
            err = "Key prefix 'consul-' is reserved for internal use"
        elif len(go_bytes(v)) > 512:
            err = "Value is too long (limit: 512 characters)"
        if err:
            return "Couldn't load metadata pair ('%s', '%s'): %s" % (k, v, err)
    return None


def _ip(s):
    """net.ParseIP: plain literals only (no brackets, no zone)."""
    if "%" in s or "[" in s:
        return None
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        return None


def _is_ipv4(ip):
    return ip is not None and (ip.version == 4 or ip.ipv4_mapped is not None)


def _id_hash(s):
    """The file name of a persisted service or check: sha256 of its ID."""
    return hashlib.sha256(go_bytes(s)).hexdigest()


class Store:
    """The agent's data_dir (ref 1.5, 3; agent/agent.go persistService,
    persistCheck, persistCheckState): ``services/<sha256(id)>`` holds
    {Token, Service}, ``checks/<sha256(id)>`` {Token, Check, ChkType} and
    ``checks/state/<sha256(id)>`` {CheckID, Status, Output, Expires} (unix
    seconds).  Without a directory (``--data-dir`` not given) it lives in
    memory only: a restart loses it, ``reload`` still reads it."""

    def __init__(self, directory, log):
        self.dir = directory
        self.log = log
        self.services = {}
        self.checks = {}
        self.state = {}
        if directory:
            for sub in ("services", "checks", os.path.join("checks", "state")):
                os.makedirs(os.path.join(directory, sub), mode=0o700, exist_ok=True)
            self.services = self._read_all("services", "Service", "ID")
            self.checks = self._read_all("checks", "Check", "CheckID")
            self.state = self._read_all(os.path.join("checks", "state"), None, "CheckID")

    def _read_all(self, sub, inner, key):
        out = {}
        d = os.path.join(self.dir, sub)
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if not os.path.isfile(path) or name.endswith(".tmp"):
                continue
            try:
                with open(path, encoding="utf-8") as fh:
                    obj = json.load(fh)
                out[(obj[inner] if inner else obj)[key]] = obj
            except (OSError, ValueError, KeyError, TypeError) as e:
                self.log("[ERROR] agent: failed decoding persisted file %s: %s" % (path, e))
        return out

    def _write(self, sub, ident, obj):
        if not self.dir:
            return
        path = os.path.join(self.dir, sub, _id_hash(ident))
        tmp = path + ".tmp"
        # 0600 as the agent writes them: they hold ACL tokens.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, sort_keys=True)
        os.replace(tmp, path)

    def _purge(self, sub, ident):
        if self.dir:
            try:
                os.unlink(os.path.join(self.dir, sub, _id_hash(ident)))
            except FileNotFoundError:
                pass

    def put_service(self, sid, token, definition):
        obj = {"Token": token, "Service": definition}
        self.services[sid] = obj
        self._write("services", sid, obj)

    def purge_service(self, sid):
        self.services.pop(sid, None)
        self._purge("services", sid)

    def put_check(self, cid, token, check, chk_type):
        obj = {"Token": token, "Check": check, "ChkType": chk_type}
        self.checks[cid] = obj
        self._write("checks", cid, obj)

    def purge_check(self, cid):
        self.checks.pop(cid, None)
        self._purge("checks", cid)
        self.purge_state(cid)

    def put_state(self, cid, status, output, expires):
        obj = {"CheckID": cid, "Status": status, "Output": output, "Expires": expires}
        self.state[cid] = obj
        self._write(os.path.join("checks", "state"), cid, obj)

    def purge_state(self, cid):
        self.state.pop(cid, None)
        self._purge(os.path.join("checks", "state"), cid)


def aggregate_status(checks):
    """api.HealthChecks.AggregatedStatus (ref 6.3)."""
    if any(c.id == NODE_MAINT or c.id.startswith(MAINT_PREFIX) for c in checks):
        return "maintenance"
    for s in ("critical", "warning"):
        if any(c.status == s for c in checks):
            return s
    return "passing"


class Agent:
    def __init__(self, opts, log):
        self.opts = opts
        self.log = log
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.services = {}   # id -> Service
        self.checks = {}     # id -> Check (local state, ref 6.2)
        self.node = opts.node_name
        self.node_id = str(uuid.uuid5(uuid.NAMESPACE_OID, "healthreg-emulator-node:" + self.node))
        self.dc = opts.datacenter
        self.node_addr = opts.node_address
        # Simulated catalog (servers' view, fed by anti-entropy, ref 6.4/9).
        self.raft = 0
        self.tables = {"nodes": 0, "services": 0, "checks": 0, "kvs": 0}
        self.kvs = {}           # key -> KV entry dict (the servers' KV store)
        self.cat_services = {}  # id -> [snapshot, create, modify]
        self.cat_checks = {}    # id -> [snapshot dict, create, modify]
        self.name_index = {}    # service name -> index
        self.stopping = False
        self.health_seen = {}   # service id -> last aggregate logged ([HEALTH] lines)
        self.conn_lock = threading.Lock()
        self.conns = {}         # client address -> open connections (http_max_conns_per_client)
        self.write_nets = [ipaddress.ip_network(n, strict=False)
                           for n in (getattr(opts, "allow_write_http_from", None) or [])]
        self.store = Store(getattr(opts, "data_dir", None), log)
        with self.lock:
            self.node_index = self._next()
            self.tables["nodes"] = self.node_index
            idx = self._next()
            self.cat_checks[SERF_CHECK] = [{
                "CheckID": SERF_CHECK, "Name": "Serf Health Status", "Status": "passing",
                "Notes": "", "Output": "Agent alive and reachable", "ServiceID": "",
                "ServiceName": "", "ServiceTags": [], "Type": "", "Interval": "", "Timeout": "",
            }, idx, idx]
            self.tables["checks"] = idx
        with self.lock:
            if self.store.services:
                self.log("[INFO] agent: restoring %d service(s) from the data dir"
                         % len(self.store.services))
            self.load(None)
        self.thread = threading.Thread(target=self._scheduler, name="scheduler", daemon=True)
        self.thread.start()

    # -- index helpers -------------------------------------------------------
    def _next(self):
        self.raft += 1
        return self.raft

    def service_index(self, name, with_checks=True):
        """maxIndexForService: per-name index when instances exist, else the
        table indexes.  Never 0 (ref 6.4)."""
        exists = any(s[0]["Service"] == name for s in self.cat_services.values())
        if exists and name in self.name_index:
            idx = self.name_index[name]
        else:
            idx = max(self.tables["nodes"], self.tables["services"],
                      self.tables["checks"] if with_checks else 0)
        return max(idx, 1)

    # -- anti-entropy --------------------------------------------------------
    def _check_snapshot(self, c):
        return {
            "CheckID": c.id, "Name": c.name, "Status": c.status, "Notes": c.notes,
            "Output": c.output, "ServiceID": c.service_id, "ServiceName": c.service_name,
            "ServiceTags": list(c.service_tags) if c.service_tags else [],
            "Type": c.type, "Interval": c.interval, "Timeout": c.timeout,
        }

    def sync(self):
        """Push local state to the simulated catalog (SyncChanges, ref 9).
        Output-only differences of checks with a pending deferral are skipped."""
        touched = set()
        node_touched = False
        changed = False
        for sid, svc in self.services.items():
            snap = svc.catalog_snapshot()
            cur = self.cat_services.get(sid)
            if cur is not None and cur[0] == snap:
                continue
            idx = self._next()
            if cur is None:
                self.cat_services[sid] = [snap, idx, idx]
            else:
                touched.add(cur[0]["Service"])
                cur[0], cur[2] = snap, idx
            self.tables["services"] = idx
            touched.add(svc.name)
            changed = True
        for sid in [s for s in self.cat_services if s not in self.services]:
            old = self.cat_services.pop(sid)
            idx = self._next()
            self.tables["services"] = idx
            touched.add(old[0]["Service"])
            changed = True
        for cid, chk in self.checks.items():
            snap = self._check_snapshot(chk)
            cur = self.cat_checks.get(cid)
            if cur is not None:
                if cur[0] == snap:
                    continue
                if chk.defer_at is not None:
                    a = dict(cur[0])
                    a["Output"] = snap["Output"]
                    if a == snap:
                        continue  # output-only change still deferred
            idx = self._next()
            if cur is None:
                self.cat_checks[cid] = [snap, idx, idx]
            else:
                cur[0], cur[2] = snap, idx
            self.tables["checks"] = idx
            if chk.service_id:
                touched.add(chk.service_name)
            else:
                node_touched = True
            changed = True
        for cid in [c for c in self.cat_checks if c not in self.checks and c != SERF_CHECK]:
            old = self.cat_checks.pop(cid)
            idx = self._next()
            self.tables["checks"] = idx
            if old[0]["ServiceID"]:
                touched.add(old[0]["ServiceName"])
            else:
                node_touched = True
            changed = True
        if node_touched:
            touched.update(s[0]["Service"] for s in self.cat_services.values())
        for name in touched:
            self.name_index[name] = self.raft
        if changed:
            self.cond.notify_all()
        self._log_health()

    def _log_health(self):
        """One ``[HEALTH] service=<id> status=<aggregate>`` log line per change
        of a service's aggregate (its checks plus node checks, ref 6.3), or
        ``status=absent`` once it is gone: a complete history of what a
        watcher polling the health endpoints could have seen (test machinery)."""
        node_checks = [c for c in self.checks.values() if not c.service_id]
        for sid in sorted(set(self.services) | set(self.health_seen)):
            if sid in self.services:
                agg = aggregate_status([c for c in self.checks.values() if c.service_id == sid]
                                       + node_checks)
            else:
                agg = "absent"
            if self.health_seen.get(sid) != agg:
                self.log("[HEALTH] service=%s status=%s" % (sid, agg))
                if agg == "absent":
                    self.health_seen.pop(sid, None)
                else:
                    self.health_seen[sid] = agg

    # -- check status updates (local/state.go UpdateCheck, ref 4/9) ----------
    def _update_check(self, chk, status, output):
        if self.opts.discard_check_output:
            output = ""
        now = time.monotonic()
        if status == "critical":
            if chk.critical_since is None:
                chk.critical_since = now
        else:
            chk.critical_since = None
        if chk.status == status and chk.output == output:
            return
        interval = self.opts.check_update_interval_ms / 1000.0
        if interval > 0 and chk.status == status:
            chk.output = output
            if chk.defer_at is None:
                chk.defer_at = now + interval / 2 + random.uniform(0, interval)
            self.cond.notify_all()
            return
        chk.status = status
        chk.output = output
        self.sync()
        self.cond.notify_all()

    def set_ttl_status(self, chk, status, output):
        """CheckTTL.SetStatus (ref 2.3, 2.4): truncate, store, re-arm timer."""
        raw = go_bytes(output)
        limit = chk.output_max
        if len(raw) > limit:
            output = go_str(raw[:limit]) + " ... (captured %d of %d bytes)" % (limit, len(raw))
        self._update_check(chk, status, output)
        chk.last_output = output
        chk.ttl_deadline = time.monotonic() + chk.ttl / 1e9
        # persistCheckState: Expires = time.Now().Add(TTL).Unix() (ref 3)
        self.store.put_state(chk.id, chk.status, chk.output, int(time.time() + chk.ttl / 1e9))
        self.cond.notify_all()

    # -- scheduler: TTL expiry, deferred output, DCSA reaper -----------------
    def _scheduler(self):
        tick = self.opts.reap_tick_ms / 1000.0
        with self.cond:
            next_reap = time.monotonic() + tick
            while not self.stopping:
                now = time.monotonic()
                need_sync = False
                for chk in list(self.checks.values()):
                    if chk.ttl_deadline is not None and chk.ttl_deadline <= now:
                        chk.ttl_deadline = None  # one-shot (ref 3)
                        self.log("[WARN] agent: Check missed TTL, is now critical: check=%s" % chk.id)
                        if chk.last_output == "":
                            out = "TTL expired"
                        else:
                            out = "TTL expired (last output before timeout follows): " + chk.last_output
                        self._update_check(chk, "critical", out)
                    if chk.defer_at is not None and chk.defer_at <= now:
                        chk.defer_at = None
                        need_sync = True
                if now >= next_reap:
                    while next_reap <= now:
                        next_reap += tick
                    self._reap(now)
                if need_sync:
                    self.sync()
                deadlines = [next_reap]
                for chk in self.checks.values():
                    if chk.ttl_deadline is not None:
                        deadlines.append(chk.ttl_deadline)
                    if chk.defer_at is not None:
                        deadlines.append(chk.defer_at)
                self.cond.wait(max(0.0, min(deadlines) - time.monotonic()) + 0.001)

    def _reap(self, now):
        """reapServicesInternal (ref 4)."""
        reaped = set()
        for chk in list(self.checks.values()):
            if not chk.service_id or chk.service_id in reaped or chk.critical_since is None:
                continue
            if chk.reap_after > 0 and now - chk.critical_since > chk.reap_after:
                reaped.add(chk.service_id)
                if chk.service_id in self.services:
                    self._remove_service(chk.service_id)
                    self.log("[INFO] agent: deregistered service with critical health due to "
                             "exceeding health check's 'deregister_critical_service_after' "
                             "timeout: service=%s check=%s" % (chk.service_id, chk.id))
        if reaped:
            self.sync()

    def _remove_service(self, sid, purge=True):
        del self.services[sid]
        if purge:
            self.store.purge_service(sid)
        for cid in [c for c, chk in self.checks.items() if chk.service_id == sid]:
            del self.checks[cid]
            if purge:
                self.store.purge_check(cid)
        self.cond.notify_all()

    def remove_check(self, cid):
        del self.checks[cid]
        self.store.purge_check(cid)
        self.cond.notify_all()

    def add_maintenance(self, chk, token):
        """A maintenance check (service or node): persisted, so it survives a
        restart (ref 5.3)."""
        self.checks[chk.id] = chk
        chk.token = token
        self.store.put_check(chk.id, token, {
            "CheckID": chk.id, "Name": chk.name, "Notes": chk.notes, "ServiceID": chk.service_id,
            "Type": "maintenance", "Status": "critical"}, None)

    # -- data_dir: loadServices / loadChecks, reload (agent/agent.go) --------
    def load(self, snapshot):
        """Restore services and checks from the store.  A check comes back
        critical ("to avoid placing potentially unhealthy services into the
        active pool"), then takes the reload snapshot's status and output,
        then, for a TTL check, its persisted state if ``now < Expires``; its
        TTL timer runs a full TTL from now (ref 3)."""
        for sid, p in sorted(self.store.services.items()):
            d = dict(p["Service"])
            self.add_service(d, [], False, p.get("Token", ""), persist=False)
        now_unix = int(time.time())
        for cid, p in sorted(self.store.checks.items()):
            c = p["Check"]
            svc = self.services.get(c.get("ServiceID") or "")
            if c.get("ServiceID") and svc is None:
                self.store.purge_check(cid)
                continue
            if c.get("Type") == "maintenance":
                if svc is None:
                    chk = Check(cid, c["Name"], "", "", [], "maintenance")
                else:
                    chk = Check(cid, c["Name"], svc.id, svc.name, svc.tags_list(), "maintenance")
                chk.notes = c.get("Notes") or ""
                chk.token = p.get("Token", "")
                self.checks[cid] = chk
                continue
            chk = self._new_check(svc, p["ChkType"], cid)
            chk.token = p.get("Token", "")
            chk.status = "critical"
            if snapshot and cid in snapshot:
                chk.status, chk.output = snapshot[cid]
            if chk.ttl > 0:
                st = self.store.state.get(cid)
                if st is not None and now_unix < st["Expires"]:
                    chk.status, chk.output = st["Status"], st["Output"]
                elif st is not None:
                    self.log("[DEBUG] agent: check state expired, not restoring: check=%s" % cid)
                    self.store.purge_state(cid)
                chk.ttl_deadline = time.monotonic() + chk.ttl / 1e9
            self.checks[cid] = chk
        self.sync()
        self.cond.notify_all()

    def reload(self):
        """`consul reload` (PUT /v1/agent/reload): snapshot the check states,
        unload every service and check, load them again from the data dir."""
        self.log("[INFO] agent: Reloading configuration...")
        snapshot = {cid: (c.status, c.output) for cid, c in self.checks.items()}
        for sid in list(self.services):
            self._remove_service(sid, purge=False)
        self.checks.clear()
        self.load(snapshot)

    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    # -- operations called by handlers (lock held by caller) ----------------
    def _new_check(self, svc, ct, cid):
        """A check of service svc from its CheckType ct (ref 1.2)."""
        name = ct.get("Name") or "Service '%s' check" % svc.name
        chk = Check(cid, name, svc.id, svc.name, svc.tags_list(), check_kind(ct))
        chk.chk_type = ct
        chk.notes = ct.get("Notes") or ""
        if ct.get("Interval"):
            chk.interval = format_duration(ct["Interval"])
        if ct.get("Timeout"):
            chk.timeout = format_duration(ct["Timeout"])
        if ct.get("Status"):
            chk.status = ct["Status"]
        limit = self.opts.check_output_max_size
        if (ct.get("OutputMaxSize") or 0) > 0 and limit > ct["OutputMaxSize"]:
            limit = ct["OutputMaxSize"]
        chk.output_max = limit
        if chk.type == "ttl":
            chk.ttl = ct["TTL"]
        dcsa = ct.get("DeregisterCriticalServiceAfter") or 0
        if dcsa > 0:
            reap = dcsa / 1e9
            minimum = self.opts.reap_min_ms / 1000.0
            if reap < minimum:
                self.log("[WARN] agent: check has deregister interval below minimum: "
                         "check=%s minimum=%s" % (cid, minimum))
                reap = minimum
            chk.reap_after = reap
        return chk

    def add_service(self, d, chk_types, replace_existing, token="", persist=True):
        """Agent.addServiceInternal (ref 1.5)."""
        svc = Service(d)
        ip = _ip(svc.address) if svc.address else None
        tagged = {k: {"Address": (v or {}).get("Address") or "", "Port": (v or {}).get("Port") or 0}
                  for k, v in (svc.tagged or {}).items()}
        for key, want4 in (("lan_ipv4", True), ("wan_ipv4", True),
                           ("lan_ipv6", False), ("wan_ipv6", False)):
            if ip is not None and _is_ipv4(ip) == want4 and key not in tagged:
                tagged[key] = {"Address": svc.address, "Port": svc.port}
        svc.tagged = tagged
        # validateService: tagged address checks -> plain error -> 500
        for key, v4 in (("lan_ipv4", True), ("wan_ipv4", True), ("lan_ipv6", False)):
            if key in tagged:
                tip = _ip(tagged[key].get("Address") or "")
                if tip is None or _is_ipv4(tip) != v4:
                    raise HTTPError(500, "Service tagged address %s must be a valid %s address"
                                    % (go_quote(key), "ipv4" if v4 else "ipv6"))
        for ct in chk_types:
            if ct.get("ScriptArgs") or ct.get("Args"):
                raise HTTPError(500, "Scripts are disabled on this agent from remote calls; "
                                     "to enable, configure 'enable_script_checks' to true")
        existing = {c.id for c in self.checks.values() if c.service_id == svc.id}
        new_checks = []
        for i, ct in enumerate(chk_types):
            cid = ct.get("CheckID") or ""
            if cid == "":
                cid = "service:%s" % svc.id
                if len(chk_types) > 1:
                    cid += ":%d" % (i + 1)
            chk = self._new_check(svc, ct, cid)
            chk.token = token
            prev = self.checks.get(cid)
            if prev is not None:  # restore from snapshot (ref 1.5)
                chk.status = prev.status
                chk.output = prev.output
                chk.defer_at = prev.defer_at
            new_checks.append(chk)
        self.services[svc.id] = svc
        # Other checks of this service keep their ServiceTags in sync.
        for c in self.checks.values():
            if c.service_id == svc.id:
                c.service_name = svc.name
                c.service_tags = svc.tags_list()
        now = time.monotonic()
        keep = set()
        for chk in new_checks:
            self.checks[chk.id] = chk  # new runner: timer restarts (ref 1.5)
            keep.add(chk.id)
            if chk.ttl > 0:
                chk.ttl_deadline = now + chk.ttl / 1e9
        if replace_existing:
            for cid in existing - keep:
                self.checks.pop(cid, None)
                self.store.purge_check(cid)
        if persist:
            self.store.put_service(svc.id, token, {k: v for k, v in d.items()
                                                   if k not in ("Check", "Checks")})
            for chk in new_checks:
                self.store.put_check(chk.id, token, {
                    "CheckID": chk.id, "Name": chk.name, "Notes": chk.notes,
                    "ServiceID": svc.id, "Type": chk.type, "Status": chk.status},
                    chk.chk_type)
        self.sync()
        self.cond.notify_all()


# ---------------------------------------------------------------------------
# HTTP layer
# ---------------------------------------------------------------------------

ROUTES = [
    # (pattern, prefix?, methods, handler name)   ref 0 http_register.go
    ("/v1/agent/service/register", False, ("PUT",), "h_register"),
    ("/v1/agent/service/deregister/", True, ("PUT",), "h_deregister"),
    ("/v1/agent/service/maintenance/", True, ("PUT",), "h_service_maint"),
    ("/v1/agent/service/", True, ("GET",), "h_agent_service"),
    ("/v1/agent/services", False, ("GET",), "h_agent_services"),
    ("/v1/agent/checks", False, ("GET",), "h_agent_checks"),
    ("/v1/agent/check/update/", True, ("PUT",), "h_check_update"),
    ("/v1/agent/check/pass/", True, ("PUT",), "h_check_pass"),
    ("/v1/agent/check/warn/", True, ("PUT",), "h_check_warn"),
    ("/v1/agent/check/fail/", True, ("PUT",), "h_check_fail"),
    ("/v1/agent/check/deregister/", True, ("PUT",), "h_check_deregister"),
    ("/v1/agent/maintenance", False, ("PUT",), "h_node_maint"),
    ("/v1/agent/health/service/id/", True, ("GET",), "h_health_by_id"),
    ("/v1/agent/health/service/name/", True, ("GET",), "h_health_by_name"),
    ("/v1/catalog/service/", True, ("GET",), "h_catalog_service"),
    ("/v1/health/service/", True, ("GET",), "h_health_service"),
    ("/v1/health/checks/", True, ("GET",), "h_health_checks"),
    ("/v1/agent/reload", False, ("PUT",), "h_reload"),
    ("/v1/acl/token", False, ("PUT",), "h_acl_token_create"),
    ("/v1/acl/token/self", False, ("GET",), "h_acl_token_self"),
    ("/v1/acl/token/", True, ("GET", "PUT", "DELETE"), "h_acl_token_item"),
    ("/v1/kv/", True, ("GET", "PUT", "DELETE"), "h_kv"),
]

# connlimit's answer to one connection too many (agent/agent.go, http_max_conns_per_client)
TOO_MANY_CONNS_MSG = b"Your IP is issuing too many concurrent connections, please rate limit your calls\n"
TOO_MANY_CONNS = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                  % (len(TOO_MANY_CONNS_MSG), TOO_MANY_CONNS_MSG))


def match_route(path):
    best = None
    for pattern, prefix, methods, name in ROUTES:
        if (not prefix and path == pattern) or (prefix and path.startswith(pattern)):
            if best is None or len(pattern) > len(best[0]):
                best = (pattern, prefix, methods, name)
    return best


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "consul-emulator"
    sys_version = ""
    timeout = 600  # idle keep-alive connections are closed after this

    def version_string(self):
        return self.server_version

    def handle(self):
        """limits.http_max_conns_per_client: one connection more than the limit
        from one client address gets connlimit's raw 429 and is closed."""
        limit = getattr(self.server.agent.opts, "http_max_conns_per_client", 0) or 0
        if limit <= 0:
            return http.server.BaseHTTPRequestHandler.handle(self)
        ag = self.server.agent
        ip = str(self.client_address[0] if self.client_address else "")
        with ag.conn_lock:
            ag.conns[ip] = ag.conns.get(ip, 0) + 1
            n = ag.conns[ip]
        try:
            if n > limit:
                self.server.emu_log("[ERROR] agent.http: Too many concurrent connections: "
                                    "from=%s limit=%d" % (ip, limit))
                try:
                    self.wfile.write(TOO_MANY_CONNS)
                    self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True
                return None
            return http.server.BaseHTTPRequestHandler.handle(self)
        finally:
            with ag.conn_lock:
                ag.conns[ip] -= 1
                if ag.conns[ip] <= 0:
                    del ag.conns[ip]

    def _write_refused(self):
        """allow_write_http_from (ref 7): a request other than GET from an
        address outside every listed network gets 403 Access is restricted.
        A client without an IP address (Unix socket) is refused too
        (unconfirmed)."""
        nets = self.server.agent.write_nets
        if not nets or self.command == "GET":
            return False
        try:
            ip = ipaddress.ip_address(str(self.client_address[0]).split("%")[0])
        except (ValueError, IndexError, TypeError):
            ip = None
        if ip is not None and getattr(ip, "ipv4_mapped", None) is not None:
            ip = ip.ipv4_mapped
        return ip is None or not any(ip in n for n in nets)

    # -- plumbing -------------------------------------------------------------
    def log_message(self, fmt, *args):
        self.server.emu_log("[HTTP] %s %s" % (self.address_string(), fmt % args))

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, code, body=b"", ctype=None, headers=None):
        self.send_response(code)
        acl = self.server.agent_acl
        self.send_header("X-Consul-Default-Acl-Policy", acl.default_policy)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _dispatch(self):
        try:
            self.body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(400, b"Bad Request", "text/plain; charset=utf-8")
            return
        if self._fault():
            return
        parts = urlsplit(self.path)
        self.rawpath = parts.path
        self.upath = unquote(parts.path, errors="surrogateescape")
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.resp_headers = {}
        # Go ServeMux: "/x" is redirected (301) to "/x/" when only the subtree
        # pattern "/x/" is registered (this wins over shorter subtree patterns).
        if not any(p == self.upath for p, _, _, _ in ROUTES) and \
                any(prefix and p == self.upath + "/" for p, prefix, _, _ in ROUTES):
            loc = parts.path + "/" + ("?" + parts.query if parts.query else "")
            self._send(301, b"", None, {"Location": loc})
            return
        route = match_route(self.upath)
        if route is None:
            if self.upath.startswith("/v1/"):
                self._send(404, b"Invalid URL path: not a recognized HTTP API endpoint",
                           "text/plain; charset=utf-8")
            else:
                self._send(404, b"", None)
            return
        pattern, prefix, methods, name = route
        if self._write_refused():
            self._send(403, b"Access is restricted", "text/plain; charset=utf-8")
            return
        allow = ",".join(("OPTIONS",) + methods)
        if self.command == "OPTIONS":
            self._send(200, b"", None, {"Allow": allow})
            return
        if self.command not in methods:
            self._send(405, go_bytes("method %s not allowed" % self.command),
                       "text/plain; charset=utf-8", {"Allow": allow})
            return
        self.arg = self.upath[len(pattern):] if prefix else ""
        try:
            result = getattr(self, name)()
        except Payload as p:
            hdrs = dict(self.resp_headers)
            if p.reason:  # KV's 404 and ?raw answers carry none
                hdrs["X-Consul-Reason"] = p.reason
            body = p.body if isinstance(p.body, bytes) else go_bytes(p.body)
            self._send(p.code, body, p.content_type, hdrs)
            return
        except HTTPError as e:
            hdrs = dict(self.resp_headers)
            hdrs.update(e.headers)
            self._send(e.code, go_bytes(e.reason), "text/plain; charset=utf-8", hdrs)
            return
        except Exception as e:  # ref 0: anything else -> 500 with error text
            self.server.emu_log("[ERROR] handler %s: %r" % (name, e))
            msg = str(e)
            self._send(error_status(msg), go_bytes(msg), "text/plain; charset=utf-8",
                       self.resp_headers)
            return
        if result is None:
            self._send(200, b"", None, self.resp_headers)
        else:
            pretty = "pretty" in self.query
            self._send(200, go_json(result, pretty), "application/json", self.resp_headers)

    def _fault(self):
        """Apply the injected fault of --fault-file, if any (see FAULTS).
        True when the request was answered (or dropped) by the fault."""
        if self.headers.get(FAULT_BYPASS):
            return False
        try:
            mode, arg = read_fault(self.server.fault_file)
        except ValueError as e:
            self.server.emu_log("[ERROR] %s" % e)
            mode = None
        if mode is None:
            return False
        self.server.emu_log("[FAULT] %s %s %s" % (mode, self.command, self.path))
        if mode == "delay":
            time.sleep(arg / 1000.0)
            return False
        self.close_connection = True
        if mode == "status":
            self._send(arg, b"fault injected", "text/plain; charset=utf-8")
        elif mode == "garbage":
            self.wfile.write(FAULT_GARBAGE)
        # "close": no answer at all, the connection is closed
        return True

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _dispatch

    # -- request helpers ------------------------------------------------------
    @property
    def agent(self):
        return self.server.agent

    @property
    def acl(self):
        return self.server.agent_acl

    def q(self, key):
        v = self.query.get(key)
        return v[0] if v else ""

    def token(self):
        """parseTokenInternal (ref 7): ?token= > X-Consul-Token > Bearer."""
        tok = self.q("token")
        if tok:
            return tok
        tok = self.headers.get("X-Consul-Token") or ""
        if tok:
            return tok
        auth = self.headers.get("Authorization") or ""
        if auth:
            parts = auth.split(" ")
            if len(parts) > 1 and parts[0].lower() == "bearer":
                value = " ".join(parts[1:]).strip()
                return value.split(" ")[0].strip()
        return ""

    def authz(self):
        return self.acl.resolve(self.token())

    def filtered_header(self, filtered):
        # setResultsFilteredByACLs, only for authenticated requests (ref 7)
        if filtered and self.token() != "":
            self.resp_headers["X-Consul-Results-Filtered-By-Acls"] = "true"

    # -- ref 1: register -----------------------------------------------------
    def h_register(self):
        try:
            args = decode_body(self.body, SERVICE_DEFINITION) or {}
        except DecodeError as e:
            raise HTTPError(400, "Request decode failed: %s" % e)
        if not args.get("Name"):
            raise HTTPError(400, "Missing service name")
        if (args.get("Address") or "") in ("0.0.0.0", "::", "[::]"):  # ipaddr.IsAny
            raise HTTPError(400, "Invalid service address")
        tok = self.authz()
        weights = args.get("Weights")
        if "Weights" in args and weights is not None:
            w = {"Passing": weights.get("Passing") or 0, "Warning": weights.get("Warning") or 0}
            if w["Passing"] < 1:
                raise HTTPError(400, "Invalid Weights: Passing must be greater than 0")
            if w["Warning"] < 0:
                raise HTTPError(400, "Invalid Weights: Warning must be greater or equal than 0")
            if w["Passing"] > 65535 or w["Warning"] > 65535:
                raise HTTPError(400, "Invalid Weights: DNS Weight must be between 0 and 65535")
            args["Weights"] = w
        else:
            args["Weights"] = {"Passing": 1, "Warning": 1}
        err = validate_meta(args.get("Meta"))
        if err:
            raise HTTPError(400, "Invalid Service Meta: %s" % err)
        raw_checks = []
        single = args.get("Check")
        if single is not None and not all(v in (None, 0, "", False) or v == [] or v == {}
                                          for v in single.values()):
            raw_checks.append(single)  # Check: {} is ignored (CheckType.Empty)
        raw_checks.extend(args.get("Checks") or [])
        chk_types = []
        for ct in raw_checks:
            ct = dict(ct or {})
            if "DeregisterCriticalServiceAfter" not in ct and "deregister_critical_service_after" in ct:
                ct["DeregisterCriticalServiceAfter"] = ct["deregister_critical_service_after"]
            if not ct.get("ScriptArgs") and ct.get("Args"):
                ct["ScriptArgs"] = ct["Args"]
            err = validate_check_type(ct)
            if err:
                raise HTTPError(400, "Invalid check: %s" % err)
            chk_types.append(ct)
        for ct in chk_types:
            if ct.get("Status") and ct["Status"] not in ("passing", "warning", "critical"):
                raise HTTPError(400, "Status for checks must 'passing', 'warning', 'critical'")
        if "TaggedAddresses" not in args and "tagged_addresses" in args:
            args["TaggedAddresses"] = args["tagged_addresses"]
        if "EnableTagOverride" not in args and "enable_tag_override" in args:
            args["EnableTagOverride"] = args["enable_tag_override"]
        args["TaggedAddresses"] = args.get("TaggedAddresses") or {}
        if not args.get("ID"):
            args["ID"] = args["Name"]
        with self.agent.lock:
            self.acl.require(tok, "service", args["Name"], "write")
            old = self.agent.services.get(args["ID"])
            if old is not None:
                self.acl.require(tok, "service", old.name, "write")
            q = self.query.get("replace-existing-checks")
            replace = bool(q) and (q[0] == "" or q[0] == "true")
            self.agent.add_service(args, chk_types, replace, self.token())
        return None

    # -- ref 5.1 --------------------------------------------------------------
    def h_deregister(self):
        tok = self.authz()
        with self.agent.lock:
            svc = self.agent.services.get(self.arg)
            if svc is None:
                raise HTTPError(404, "Unknown service ID %s. Ensure that the service ID is passed, "
                                     "not the service name." % go_quote(self.arg))
            self.acl.require(tok, "service", svc.name, "write")
            self.agent._remove_service(self.arg)
            self.agent.sync()
        return None

    # -- ref 5.3 --------------------------------------------------------------
    def _enable_param(self):
        if "enable" not in self.query:
            raise HTTPError(400, "Missing value for enable")
        raw = self.q("enable")
        val = parse_bool(raw)
        if val is None:
            raise HTTPError(400, "Invalid value for enable: %s" % go_quote(raw))
        return val

    def h_service_maint(self):
        sid = self.arg
        if sid == "":
            raise HTTPError(400, "Missing service ID")
        enable = self._enable_param()
        tok = self.authz()
        ag = self.agent
        with ag.lock:
            svc = ag.services.get(sid)
            if svc is None:
                # ref 5.3 text (current source reaches vetServiceUpdate first
                # and would say "Unknown service ID ..."; the contract wins).
                raise HTTPError(404, "No service registered with ID %s" % go_quote(sid))
            self.acl.require(tok, "service", svc.name, "write")
            cid = MAINT_PREFIX + sid
            if enable:
                if cid not in ag.checks:
                    chk = Check(cid, "Service Maintenance Mode", svc.id, svc.name,
                                svc.tags_list(), "maintenance")
                    chk.notes = self.q("reason") or SVC_MAINT_DEFAULT
                    chk.status = "critical"
                    ag.add_maintenance(chk, self.token())
            elif cid in ag.checks:
                ag.remove_check(cid)
            ag.sync()
            ag.cond.notify_all()
        return None

    def h_node_maint(self):
        enable = self._enable_param()
        tok = self.authz()
        ag = self.agent
        with ag.lock:
            self.acl.require(tok, "node", ag.node, "write")
            if enable:
                if NODE_MAINT not in ag.checks:
                    chk = Check(NODE_MAINT, "Node Maintenance Mode", "", "", [], "maintenance")
                    chk.notes = self.q("reason") or NODE_MAINT_DEFAULT
                    ag.add_maintenance(chk, self.token())
            elif NODE_MAINT in ag.checks:
                ag.remove_check(NODE_MAINT)
            ag.sync()
            ag.cond.notify_all()
        return None

    # -- ref 2: TTL updates ---------------------------------------------------
    def _vet_check(self, tok, cid):
        chk = self.agent.checks.get(cid)
        if chk is None:
            raise HTTPError(404, "Unknown check ID %s. Ensure that the check ID is passed, not "
                                 "the check name." % go_quote(cid))
        if chk.service_name:
            self.acl.require(tok, "service", chk.service_name, "write")
        else:
            self.acl.require(tok, "node", self.agent.node, "write")
        return chk

    def _ttl_update(self, status, output):
        cid = self.arg
        tok = self.authz()
        with self.agent.lock:
            chk = self._vet_check(tok, cid)
            if chk.ttl <= 0:
                raise HTTPError(500, "CheckID %s does not have associated TTL" % go_quote(cid))
            self.agent.set_ttl_status(chk, status, output)
        return None

    def h_check_update(self):
        try:
            upd = decode_body(self.body, CHECK_UPDATE) or {}
        except DecodeError as e:
            raise HTTPError(400, "Request decode failed: %s" % e)
        status = upd.get("Status") or ""
        if status not in ("passing", "warning", "critical"):
            raise HTTPError(400, "Invalid check status: '%s'" % status)
        return self._ttl_update(status, upd.get("Output") or "")

    def h_check_pass(self):
        return self._ttl_update("passing", self.q("note"))

    def h_check_warn(self):
        return self._ttl_update("warning", self.q("note"))

    def h_check_fail(self):
        return self._ttl_update("critical", self.q("note"))

    def h_check_deregister(self):
        tok = self.authz()
        with self.agent.lock:
            self._vet_check(tok, self.arg)
            self.agent.remove_check(self.arg)
            self.agent.sync()
            self.agent.cond.notify_all()
        return None

    # -- consul reload --------------------------------------------------------
    def h_reload(self):
        """PUT /v1/agent/reload (AgentReload): agent:write on the node name."""
        tok = self.authz()
        with self.agent.lock:
            self.acl.require(tok, "agent", self.agent.node, "write")
            self.agent.reload()
        return None

    # -- ACL tokens: create, read, delete (enough to revoke and rotate) ------
    def _acl_write(self):
        if not self.acl.enabled:
            raise HTTPError(401, "ACL support disabled")
        tok = self.authz()
        if not tok.management:
            raise HTTPError(403, "Permission denied: token with AccessorID '%s' lacks permission "
                                 "'acl:write'" % tok.accessor)
        return tok

    def h_acl_token_create(self):
        """PUT /v1/acl/token: SecretID (default random), AccessorID, Description,
        ServiceIdentities (service:<name>:write, read on every service and node,
        as the service identity's policy), Policies [{"Name":"global-management"}]."""
        self._acl_write()
        try:
            body = json.loads(self.body.decode("utf-8") or "null")
        except ValueError as e:
            raise HTTPError(400, "Request decode failed: %s" % e)
        if not isinstance(body, dict):
            raise HTTPError(400, "Request decode failed: EOF")
        known = {"SecretID", "AccessorID", "Description", "ServiceIdentities", "Policies", "Local"}
        for k in body:
            if k not in known:
                raise HTTPError(400, 'Request decode failed: json: unknown field "%s"' % k)
        secret = body.get("SecretID") or str(uuid.uuid4())
        if secret in self.acl.tokens:
            raise HTTPError(400, "Invalid Token: SecretID is already in use")
        mgmt = False
        for pol in body.get("Policies") or []:
            if (pol or {}).get("Name") == "global-management" or \
                    (pol or {}).get("ID") == GLOBAL_MANAGEMENT_ID:
                mgmt = True
            else:
                raise HTTPError(400, "cannot find policy %s" % go_quote(str((pol or {}).get("Name"))))
        names = [(si or {}).get("ServiceName") or "" for si in body.get("ServiceIdentities") or []]
        rules = []
        for n in names:
            rules.append(("service", n, False, _LEVEL["write"]))
        if names:
            rules += [("service", "", True, _LEVEL["read"]), ("node", "", True, _LEVEL["read"])]
        t = Token(secret, rules, mgmt, accessor=body.get("AccessorID") or str(uuid.uuid4()),
                  description=body.get("Description") or "", service_identities=names)
        with self.agent.lock:
            self.acl.tokens[secret] = t
        return t.json()

    def h_acl_token_self(self):
        if not self.acl.enabled:
            raise HTTPError(401, "ACL support disabled")
        tok = self.authz()
        return tok.json()

    def h_acl_token_item(self):
        self._acl_write()
        with self.agent.lock:
            t = self.acl.by_accessor(self.arg)
            if self.command == "DELETE":
                if t is not None and t.secret == "anonymous":
                    raise HTTPError(400, "Delete operation not permitted on the anonymous token")
                if t is not None:
                    del self.acl.tokens[t.secret]
                    self.server.emu_log("[INFO] acl: token deleted: accessor=%s" % t.accessor)
                return True
            if self.command == "PUT":
                raise HTTPError(400, "token update is not implemented by the emulator")
            if t is None:
                raise HTTPError(403, "ACL not found")
            return t.json()

    # -- ref 6.1 / 6.2 --------------------------------------------------------
    def h_agent_services(self):
        tok = self.authz()
        ag = self.agent
        with ag.lock:
            out = {}
            total = len(ag.services)
            for sid in sorted(ag.services):
                svc = ag.services[sid]
                if self.acl.allowed(tok, "service", svc.name, "read"):
                    out[sid] = svc.agent_json(ag.dc)
        self.filtered_header(len(out) != total)
        return out

    def h_agent_checks(self):
        tok = self.authz()
        ag = self.agent
        with ag.lock:
            out = {}
            total = len(ag.checks)
            for cid in sorted(ag.checks):
                chk = ag.checks[cid]
                ok = (self.acl.allowed(tok, "service", chk.service_name, "read") if chk.service_name
                      else self.acl.allowed(tok, "node", ag.node, "read"))
                if ok:
                    out[cid] = chk.json(ag.node)
        self.filtered_header(len(out) != total)
        return out

    def _parse_wait(self):
        """parseWait (ref 6.4): returns (max seconds or None, min index)."""
        wait = None
        raw = self.q("wait")
        if raw != "":
            try:
                wait = parse_duration(raw) / 1e9
            except GoError:
                raise HTTPError(400, "Invalid wait time")
        index = 0
        raw = self.q("index")
        if raw != "":
            if not re.fullmatch(r"[0-9]+", raw) or int(raw) > (1 << 64) - 1:
                raise HTTPError(400, "Invalid index")
            index = int(raw)
        if wait is None or wait <= 0:
            wait = 300.0
        wait = min(wait, 600.0)
        wait += random.uniform(0, wait / 16)
        return wait, index

    def h_agent_service(self):
        wait, _ = self._parse_wait()
        tok = self.authz()
        want_hash = self.q("hash")
        ag = self.agent
        deadline = time.monotonic() + wait
        with ag.cond:
            while True:
                svc = ag.services.get(self.arg)
                if svc is None:
                    raise HTTPError(404, "unknown service ID: %s" % self.arg)
                self.acl.require(tok, "service", svc.name, "read")
                body = svc.agent_json(ag.dc)
                h = hashlib.sha256(go_json(body)).hexdigest()[:16]
                remaining = deadline - time.monotonic()
                if not want_hash or want_hash != h or remaining <= 0:
                    break
                ag.cond.wait(remaining)
        body["ContentHash"] = h
        self.resp_headers["X-Consul-Contenthash"] = h
        return body

    # -- ref 6.3 --------------------------------------------------------------
    def _text_plain(self):
        if (self.headers.get("Accept") or "").startswith("text/plain"):
            return True
        fmt = self.q("format")
        return fmt == "text" if fmt else False

    def _service_health(self, svc):
        ag = self.agent
        checks = [c for c in ag.checks.values()
                  if c.service_id == svc.id or c.service_id == ""]
        checks.sort(key=lambda c: c.id)
        status = "passing"
        if any(c.id == NODE_MAINT or c.id.startswith(MAINT_PREFIX) for c in checks):
            status = "maintenance"
        elif any(c.status == "critical" for c in checks):
            status = "critical"
        elif any(c.status == "warning" for c in checks):
            status = "warning"
        elif any(c.status != "passing" for c in checks):
            status = "critical"
        code = {"passing": 200, "warning": 429}.get(status, 503)
        jchecks = []
        for c in checks:
            j = c.json(ag.node)
            j["Type"] = ""
            j.pop("Interval")
            j.pop("Timeout")
            jchecks.append(j)
        return code, status, jchecks

    def h_health_by_id(self):
        sid = self.arg
        if sid == "":
            raise HTTPError(400, "Missing serviceID")
        tok = self.authz()
        ag = self.agent
        with ag.lock:
            svc = ag.services.get(sid)
            if svc is not None:
                self.acl.require(tok, "service", svc.name, "read")
                code, status, checks = self._service_health(svc)
                if self._text_plain():
                    raise Payload(code, status, status, "text/plain")
                body = {"AggregatedStatus": status, "Service": svc.agent_json(ag.dc),
                        "Checks": checks}
                raise Payload(code, status, go_json(body, "pretty" in self.query),
                              "application/json")
        reason = "ServiceId %s not found" % sid
        if self._text_plain():
            raise Payload(404, reason, reason, "text/plain")
        body = {"AggregatedStatus": "critical", "Service": None, "Checks": None}
        raise Payload(404, reason, go_json(body, "pretty" in self.query), "application/json")

    def h_health_by_name(self):
        name = self.arg
        if name == "":
            raise HTTPError(400, "Missing service Name")
        tok = self.authz()
        self.acl.require(tok, "service", name, "read")
        ag = self.agent
        code, status = 404, "ServiceName %s Not Found" % name
        result = []
        with ag.lock:
            for sid in sorted(ag.services):
                svc = ag.services[sid]
                if svc.name != name:
                    continue
                scode, sstatus, checks = self._service_health(svc)
                result.append({"AggregatedStatus": sstatus, "Service": svc.agent_json(ag.dc),
                               "Checks": checks})
                if code == 404 or code < scode:
                    code, status = scode, sstatus
        if self._text_plain():
            raise Payload(code, status, status, "text/plain")
        raise Payload(code, status, go_json(result, "pretty" in self.query), "application/json")

    # -- ref 6.4: catalog / health (blocking) --------------------------------
    def _blocking(self, name, with_checks, render):
        """Common s.parse() + blocking query + setMeta."""
        dc = self.q("dc")
        stale = "stale" in self.query
        consistent = "consistent" in self.query
        if stale and consistent:
            raise HTTPError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
        wait, min_index = self._parse_wait()
        if dc and dc != self.agent.dc:
            raise HTTPError(500, "No path to datacenter")
        tok = self.authz()  # resolved by the RPC, after argument parsing
        ag = self.agent
        deadline = time.monotonic() + wait
        with ag.cond:
            while True:
                idx = ag.service_index(name, with_checks)
                remaining = deadline - time.monotonic()
                if min_index == 0 or idx > min_index or remaining <= 0:
                    break
                ag.cond.wait(remaining)
            result, filtered = render(tok)
        self.resp_headers["X-Consul-Index"] = str(idx)
        self.resp_headers["X-Consul-Knownleader"] = "true"
        self.resp_headers["X-Consul-Lastcontact"] = "0"
        self.resp_headers["X-Consul-Effective-Consistency"] = (
            "stale" if stale else "consistent" if consistent else "leader")
        self.filtered_header(filtered)
        return result

    def _node_json(self):
        ag = self.agent
        a = ag.node_addr
        return {
            "ID": ag.node_id, "Node": ag.node, "Address": a, "Datacenter": ag.dc,
            "TaggedAddresses": {"lan": a, "lan_ipv4": a, "wan": a, "wan_ipv4": a},
            "Meta": {"consul-network-segment": ""},
            "CreateIndex": ag.node_index, "ModifyIndex": ag.node_index,
        }

    def _cat_instances(self, name, tok):
        """Catalog instances of name visible to tok; returns (list, filtered)."""
        ag = self.agent
        tags = self.query.get("tag", [])
        out = []
        filtered = False
        for sid in sorted(ag.cat_services):
            snap, ci, mi = ag.cat_services[sid]
            if snap["Service"] != name:
                continue
            if not all(t in snap["Tags"] for t in tags):
                continue
            if not (self.acl.allowed(tok, "service", name, "read") and
                    self.acl.allowed(tok, "node", ag.node, "read")):
                filtered = True
                continue
            out.append((snap, ci, mi))
        return out, filtered

    def _cat_check_json(self, cid):
        snap, ci, mi = self.agent.cat_checks[cid]
        j = {"Node": self.agent.node}
        j.update(snap)
        j["ExposedPort"] = 0
        j["Definition"] = {}
        j["CreateIndex"] = ci
        j["ModifyIndex"] = mi
        return j

    def h_catalog_service(self):
        name = self.arg
        ag = self.agent

        def render(tok):
            out = []
            insts, filtered = self._cat_instances(name, tok)
            node = self._node_json()
            for snap, ci, mi in insts:
                out.append({
                    "ID": ag.node_id, "Node": ag.node, "Address": ag.node_addr,
                    "Datacenter": ag.dc, "TaggedAddresses": node["TaggedAddresses"],
                    "NodeMeta": node["Meta"], "ServiceKind": snap["Kind"],
                    "ServiceID": snap["ID"], "ServiceName": snap["Service"],
                    "ServiceTags": snap["Tags"], "ServiceAddress": snap["Address"],
                    **({"ServiceTaggedAddresses": snap["TaggedAddresses"]}
                       if snap["TaggedAddresses"] else {}),
                    "ServiceWeights": snap["Weights"], "ServiceMeta": snap["Meta"],
                    "ServicePort": snap["Port"], "ServiceSocketPath": snap["SocketPath"],
                    "ServiceEnableTagOverride": snap["EnableTagOverride"],
                    "ServiceProxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
                    "ServiceConnect": {}, "CreateIndex": ci, "ModifyIndex": mi,
                })
            return out, filtered
        return self._blocking(name, False, render)

    def h_health_service(self):
        name = self.arg
        ag = self.agent

        def render(tok):
            insts, filtered = self._cat_instances(name, tok)
            node_checks = sorted(c for c, v in ag.cat_checks.items() if not v[0]["ServiceID"])
            out = []
            for snap, ci, mi in insts:
                svc_checks = sorted(c for c, v in ag.cat_checks.items()
                                    if v[0]["ServiceID"] == snap["ID"])
                svc = {k: snap[k] for k in ("Kind", "ID", "Service", "Tags", "Address")}
                if snap["TaggedAddresses"]:
                    svc["TaggedAddresses"] = snap["TaggedAddresses"]
                svc.update({
                    "Meta": snap["Meta"], "Port": snap["Port"], "Weights": snap["Weights"],
                    "EnableTagOverride": snap["EnableTagOverride"],
                    "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
                    "Connect": {}, "PeerName": "", "CreateIndex": ci, "ModifyIndex": mi,
                })
                out.append({"Node": self._node_json(), "Service": svc,
                            "Checks": [self._cat_check_json(c) for c in node_checks + svc_checks]})
            return out, filtered
        result = self._blocking(name, True, render)
        # getBoolQueryParam runs after the RPC in HealthServiceNodes.
        if "passing" in self.query:
            raw = self.q("passing")
            val = True if raw == "" else parse_bool(raw)
            if val is None:
                raise HTTPError(400, "Invalid value for ?passing")
            if val:
                result = [e for e in result if all(c["Status"] == "passing" for c in e["Checks"])]
        return result

    def h_health_checks(self):
        name = self.arg
        ag = self.agent

        def render(tok):
            out = []
            filtered = False
            for cid in sorted(ag.cat_checks):
                snap = ag.cat_checks[cid][0]
                if snap["ServiceName"] != name or not snap["ServiceID"]:
                    continue
                if not (self.acl.allowed(tok, "service", name, "read") and
                        self.acl.allowed(tok, "node", ag.node, "read")):
                    filtered = True
                    continue
                out.append(self._cat_check_json(cid))
            return out, filtered
        return self._blocking(name, True, render)

    # -- KV store (README "KV"; agent/kvs_endpoint.go, agent/consul/kvs_endpoint.go,
    #    agent/consul/state/kvs.go) -------------------------------------------
    def _kv_key(self):
        """The key after /v1/kv/, checked as validateKVKey does."""
        raw = self.rawpath
        for bad in ("../", "..\\"):
            if bad in raw:
                raise HTTPError(400, "URL path contains invalid traversal sequence")
        key = self.arg
        if key == "":
            return key
        if key.startswith("/"):
            raise HTTPError(400, "key must not begin with a '/'")
        for i, ch in enumerate(key):
            if not (ch.isascii() and (ch.isalnum() or ch in ",-_./")):
                raise HTTPError(400, "key contains invalid character '%s' at position %d. "
                                     "Only alphanumeric characters and ,-_./ are allowed"
                                % (ch, len(key[:i].encode("utf-8"))))
        low = key.lower()
        for ext in KV_SUSPICIOUS_EXT:
            if low.endswith(ext):
                raise HTTPError(400, "key contains suspicious file extension '%s' that may be "
                                     "cached by proxies" % ext)
        return key

    def _kv_uint(self, name):
        """strconv.ParseUint(v, 10, 64); its error is a plain error (500)."""
        raw = self.q(name)
        if not re.fullmatch(r"[0-9]+", raw) or int(raw) > (1 << 64) - 1:
            why = "value out of range" if re.fullmatch(r"[0-9]+", raw) else "invalid syntax"
            raise HTTPError(500, "strconv.ParseUint: parsing %s: %s" % (go_quote(raw), why))
        return int(raw)

    def _kv_conflict(self, *flags):
        if sum(1 for f in flags if f in self.query) > 1:
            raise HTTPError(400, "Conflicting flags: %s\n" % urlencode_sorted(self.query))

    def h_kv(self):
        # s.parse() runs first, for every method: consistency flags, wait
        # and index (blocking itself is not implemented for KV), dc.
        if "stale" in self.query and "consistent" in self.query:
            raise HTTPError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
        self._parse_wait()
        dc = self.q("dc")
        if dc and dc != self.agent.dc:
            raise HTTPError(500, "No path to datacenter")
        key = self._kv_key()
        if self.command == "GET":
            return self._kv_get(key)
        if self.command == "PUT":
            return self._kv_put(key)
        return self._kv_delete(key)

    def _kv_get(self, key):
        if key == "":
            raise HTTPError(400, "Missing key name")
        if "recurse" in self.query or "keys" in self.query:
            raise HTTPError(400, "emulator: ?recurse and ?keys are not implemented")
        tok = self.authz()
        self.acl.require(tok, "key", key, "read")
        ag = self.agent
        with ag.lock:
            ent = ag.kvs.get(key)
            idx = ent["ModifyIndex"] if ent else max(ag.tables["kvs"], 1)
            ent = dict(ent) if ent else None
        self.resp_headers["X-Consul-Index"] = str(idx)
        self.resp_headers["X-Consul-Knownleader"] = "true"
        self.resp_headers["X-Consul-Lastcontact"] = "0"
        self.resp_headers["X-Consul-Effective-Consistency"] = (
            "stale" if "stale" in self.query else
            "consistent" if "consistent" in self.query else "leader")
        if ent is None:
            raise Payload(404, "", b"", None)
        if "raw" in self.query:
            self.resp_headers["X-Content-Type-Options"] = "nosniff"
            self.resp_headers["Content-Security-Policy"] = "sandbox"
            raise Payload(200, "", ent["Value"], "text/plain")
        out = {"LockIndex": ent["LockIndex"], "Key": key, "Flags": ent["Flags"],
               "Value": (base64.b64encode(ent["Value"]).decode() if ent["Value"] else None),
               "CreateIndex": ent["CreateIndex"], "ModifyIndex": ent["ModifyIndex"]}
        return [out]

    def _kv_put(self, key):
        if key == "":
            raise HTTPError(400, "Missing key name")
        self._kv_conflict("cas", "acquire", "release")
        if "acquire" in self.query or "release" in self.query:
            raise HTTPError(400, "emulator: sessions (?acquire, ?release) are not implemented")
        flags = self._kv_uint("flags") if "flags" in self.query else 0
        cas = self._kv_uint("cas") if "cas" in self.query else None
        if len(self.body) > KV_MAX_VALUE_SIZE:
            raise HTTPError(413, "Request body(%d bytes) too large, max size: %d bytes. See %s."
                            % (len(self.body), KV_MAX_VALUE_SIZE,
                               "https://developer.hashicorp.com/docs/agent/config/"
                               "config-files#kv_max_value_size"))
        tok = self.authz()
        self.acl.require(tok, "key", key, "write")
        ag = self.agent
        with ag.cond:
            cur = ag.kvs.get(key)
            if cas is not None:
                if (cas == 0 and cur is not None) or (cas != 0 and cur is None) or \
                        (cur is not None and cas != 0 and cas != cur["ModifyIndex"]):
                    self.agent.log("[KV] put key=%s cas=%d result=false" % (key, cas))
                    return False
            idx = ag._next()
            ag.kvs[key] = {"Value": bytes(self.body), "Flags": flags,
                           "CreateIndex": cur["CreateIndex"] if cur else idx,
                           "ModifyIndex": idx, "LockIndex": cur["LockIndex"] if cur else 0}
            ag.tables["kvs"] = idx
            ag.cond.notify_all()
            self.agent.log("[KV] put key=%s cas=%s result=true index=%d value=%s"
                           % (key, "-" if cas is None else cas, idx,
                              go_str(bytes(self.body))[:400].replace("\n", " ")))
        return True

    def _kv_delete(self, key):
        self._kv_conflict("recurse", "cas")
        if "recurse" in self.query:
            raise HTTPError(400, "emulator: ?recurse is not implemented")
        if key == "":
            raise HTTPError(400, "Missing key name")
        cas = self._kv_uint("cas") if "cas" in self.query else None
        tok = self.authz()
        self.acl.require(tok, "key", key, "write")
        ag = self.agent
        with ag.cond:
            cur = ag.kvs.get(key)
            if cas is not None and cur is not None and cur["ModifyIndex"] != cas:
                self.agent.log("[KV] delete key=%s cas=%d result=false" % (key, cas))
                return False
            if cur is not None:
                del ag.kvs[key]
                ag.tables["kvs"] = ag._next()
                ag.cond.notify_all()
            self.agent.log("[KV] delete key=%s cas=%s result=true"
                           % (key, "-" if cas is None else cas))
        return True


# Injected faults (--fault-file): the file holds one line, read before
# every request, so a test switches modes by rewriting it (atomically):
#   "" or "off"     normal operation
#   "status CODE"   every request gets CODE (200..599), body "fault injected"
#   "delay MS"      every request is held MS milliseconds, then served
#   "garbage"       every request gets bytes that are not HTTP, then close
#   "close"         every request gets no answer: the connection is closed
# The agent's state (TTL timers, the reaper) keeps running under any fault.
# A request with the header X-Emulator-No-Fault (a test looking at the
# state during a fault) is always served normally.
FAULT_BYPASS = "X-Emulator-No-Fault"

# kv_max_value_size (agent/config default: 512 KiB) and validateKVKey's list.
KV_MAX_VALUE_SIZE = 512 * 1024
KV_SUSPICIOUS_EXT = (
    ".js", ".css", ".html", ".htm", ".xml", ".json", ".txt", ".log",
    ".php", ".asp", ".jsp", ".cgi", ".pl", ".py", ".rb", ".sh",
    ".exe", ".dll", ".bat", ".cmd", ".com", ".scr", ".vbs",
    ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx",
    ".zip", ".rar", ".tar", ".gz", ".7z", ".bz2",
    ".jpg", ".jpeg", ".png", ".gif", ".svg", ".ico", ".bmp",
    ".mp3", ".mp4", ".avi", ".mov", ".wmv", ".flv", ".swf",
    ".woff", ".woff2", ".ttf", ".eot", ".otf",
)


def urlencode_sorted(query):
    """url.Values.Encode(): keys sorted, values percent-encoded."""
    from urllib.parse import quote_plus
    return "&".join("%s=%s" % (quote_plus(k), quote_plus(v))
                    for k in sorted(query) for v in query[k])
FAULT_GARBAGE = b"\x00\xffSSH-2.0-not-http {{{\r\n\r\n"


def read_fault(path):
    """(mode, argument) of the fault file, or (None, None) for none."""
    if not path:
        return None, None
    try:
        with open(path, encoding="utf-8") as fh:
            words = fh.read().split()
    except OSError:
        return None, None
    if not words or words[0] == "off":
        return None, None
    mode = words[0]
    if mode in ("garbage", "close") and len(words) == 1:
        return mode, None
    if mode in ("status", "delay") and len(words) == 2 and words[1].isdigit():
        n = int(words[1])
        if mode == "delay" or 200 <= n <= 599:
            return mode, n
    raise ValueError("bad fault file line: %r" % " ".join(words))


GO_HTTP_ON_HTTPS = (b"HTTP/1.0 400 Bad Request\r\n\r\n"
                    b"Client sent an HTTP request to an HTTPS server.\n")


class TLSListener:
    """Server mixin: with tls_ctx set, accepted sockets speak TLS, the
    handshake running in the request's thread."""
    tls_ctx = None      # an ssl.SSLContext: this listener speaks TLS
    listener = "http"   # for log lines: "http", "https", "unix"

    def wrap(self, sock):
        if self.tls_ctx is None:
            return sock
        # The handshake runs in the request's thread (finish_request), so
        # a client that never completes it holds only its own thread.
        return self.tls_ctx.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False)

    def finish_request(self, request, client_address):
        if self.tls_ctx is not None:
            try:
                request.settimeout(10)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                self.emu_log("[TLS] %s handshake failed from %s: %s" % (
                    self.listener, client_address[0], e))
                if getattr(e, "reason", None) == "HTTP_REQUEST":
                    # What Go's net/http answers plain HTTP on a TLS port
                    # (written on the raw socket, outside TLS).
                    try:
                        os.write(request.fileno(), GO_HTTP_ON_HTTPS)
                    except OSError:
                        pass
                else:
                    self._linger(request)
                return
        super().finish_request(request, client_address)

    @staticmethod
    def _linger(request):
        """After a refused handshake (the alert is sent), read what the
        client still sends for up to 1 s before closing, so that a TLS 1.3
        client, whose side of the handshake was already done, reads the
        alert instead of failing its first write on a closed socket."""
        try:
            raw = socket.socket(fileno=os.dup(request.fileno()))
        except OSError:
            return
        try:
            raw.settimeout(1.0)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and raw.recv(4096):
                pass
        except OSError:
            pass
        finally:
            raw.close()


class Server(TLSListener, http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.wrap(sock), addr


class UnixServer(TLSListener, socketserver.ThreadingMixIn,
                 socketserver.UnixStreamServer):
    """The agent's API on a Unix socket (Consul's addresses.http, or with
    --unix-tls addresses.https, = "unix:///path"). A peer has no IP
    address: it is reported as "@", as Go's net/http gives RemoteAddr for
    a Unix-socket connection."""
    daemon_threads = True
    request_queue_size = 128
    listener = "unix"

    def get_request(self):
        sock, _ = self.socket.accept()
        return self.wrap(sock), ("@", 0)


def tls_context(cert, key, ca):
    """Server-side context: cert and key (PEM); with ca, a client
    certificate signed by it is required (Consul's verify_incoming)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=ca)
    return ctx


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def build_parser():
    p = argparse.ArgumentParser(description="Consul agent HTTP API emulator (healthreg tests)")
    p.add_argument("--bind", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    p.add_argument("--port-file", help="write the chosen port here (atomic rename) once listening")
    p.add_argument("--log", help="append log lines to this file (default: stderr)")
    p.add_argument("--acl-default-policy", choices=("allow", "deny"),
                   help="enable ACLs with this acl.default_policy")
    p.add_argument("--acl-token", action="append", default=[], metavar="SECRET[=RULES]",
                   help="known ACL token (repeatable); no RULES = management token; RULES = "
                        "comma list of service|service_prefix|node|node_prefix:NAME:read|write|deny")
    p.add_argument("--acl-default-token", default="", help="acl.tokens.default")
    p.add_argument("--reap-min-ms", type=int, default=60000,
                   help="check_deregister_interval_min (default 60000 = 1m)")
    p.add_argument("--reap-tick-ms", type=int, default=30000,
                   help="check_reap_interval (default 30000 = 30s)")
    p.add_argument("--check-update-interval-ms", type=int, default=300000,
                   help="check_update_interval; output-only catalog deferral (default 300000 "
                        "= 5m, 0 disables)")
    p.add_argument("--check-output-max-size", type=int, default=4096,
                   help="check_output_max_size (default 4096)")
    p.add_argument("--discard-check-output", action="store_true",
                   help="discard_check_output = true")
    p.add_argument("--node-name", default="emulator-node")
    p.add_argument("--node-address", default="127.0.0.1")
    p.add_argument("--datacenter", default="dc1")
    p.add_argument("--data-dir",
                   help="persist services, checks (with their tokens) and TTL check state "
                        "here, as an agent's data_dir; a restart restores them")
    p.add_argument("--allow-write-http-from", action="append", default=[], metavar="CIDR",
                   help="allow_write_http_from (repeatable): other clients get 403 on writes")
    p.add_argument("--http-max-conns-per-client", type=int, default=0,
                   help="limits.http_max_conns_per_client (0 = no limit): one more "
                        "connection gets 429")
    p.add_argument("--fault-file",
                   help="inject faults: read before every request (off | status CODE | "
                        "delay MS | garbage | close)")
    p.add_argument("--tls-cert", help="PEM certificate (chain) for the HTTPS listener")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--tls-ca", help="PEM CA bundle: with it, HTTPS clients must present a "
                                    "certificate signed by it (verify_incoming)")
    p.add_argument("--https-port", type=int, default=0,
                   help="HTTPS port (with --tls-cert/--tls-key); 0 picks a free one")
    p.add_argument("--https-port-file",
                   help="write the chosen HTTPS port here (atomic rename) once listening")
    p.add_argument("--unix", metavar="PATH",
                   help="also serve the API (plain HTTP) on a Unix socket at PATH")
    p.add_argument("--unix-tls", action="store_true",
                   help="the Unix socket speaks HTTPS too (with --tls-cert/--tls-key)")
    return p


def main(argv=None):
    opts = build_parser().parse_args(argv)
    if opts.reap_tick_ms <= 0 or opts.reap_min_ms < 0 or opts.check_output_max_size <= 0:
        sys.exit("emulator: --reap-tick-ms and --check-output-max-size must be > 0")
    try:
        tokens = [parse_token_spec(s) for s in opts.acl_token]
    except ValueError as e:
        sys.exit("emulator: %s" % e)
    acl_enabled = opts.acl_default_policy is not None or bool(tokens)
    acl = ACL(acl_enabled, opts.acl_default_policy or "allow", tokens, opts.acl_default_token)

    log_lock = threading.Lock()
    log_fh = open(opts.log, "a", buffering=1) if opts.log else sys.stderr

    def log(msg):
        with log_lock:
            try:
                log_fh.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
                log_fh.flush()
            except (OSError, ValueError):
                pass

    # Keep SIGTERM/SIGINT away from helper threads so that they interrupt the
    # main thread's wait immediately (threads inherit the blocked mask).
    sigs = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    if bool(opts.tls_cert) != bool(opts.tls_key) or (opts.tls_ca and not opts.tls_cert):
        sys.exit("emulator: --tls-cert and --tls-key go together (--tls-ca needs them)")
    if opts.unix_tls and not (opts.unix and opts.tls_cert):
        sys.exit("emulator: --unix-tls needs --unix and --tls-cert/--tls-key")
    try:
        tls_ctx = tls_context(opts.tls_cert, opts.tls_key, opts.tls_ca) if opts.tls_cert else None
    except (OSError, ssl.SSLError) as e:
        sys.exit("emulator: TLS setup: %s" % e)
    family = socket.AF_INET6 if ":" in opts.bind else socket.AF_INET
    Server.address_family = family
    agent = Agent(opts, log)

    def listen(srv):
        # Every listener serves the same agent (Consul's ports.http,
        # ports.https and a unix:// address share one agent state).
        srv.agent = agent
        srv.agent_acl = acl
        srv.emu_log = log
        srv.fault_file = opts.fault_file
        return srv

    srv = listen(Server((opts.bind, opts.port), Handler))
    servers = [srv]
    port = srv.server_address[1]
    https_port = None
    if tls_ctx is not None:
        tls_srv = listen(Server((opts.bind, opts.https_port), Handler))
        tls_srv.tls_ctx = tls_ctx
        tls_srv.listener = "https"
        servers.append(tls_srv)
        https_port = tls_srv.server_address[1]
    if opts.unix:
        try:
            os.unlink(opts.unix)
        except FileNotFoundError:
            pass
        unix_srv = listen(UnixServer(opts.unix, Handler))
        if opts.unix_tls:
            unix_srv.tls_ctx = tls_ctx
        servers.append(unix_srv)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    for s in servers:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.02},
                         name=s.listener, daemon=True).start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs)

    def write_port(path, value):
        tmp = "%s.tmp.%d" % (path, os.getpid())
        with open(tmp, "w") as fh:
            fh.write("%d\n" % value)
        os.replace(tmp, path)

    # The HTTPS port first: a caller that waits for --port-file finds it.
    if opts.https_port_file and https_port is not None:
        write_port(opts.https_port_file, https_port)
    if opts.port_file:
        write_port(opts.port_file, port)
    log("[INFO] emulator: listening on %s:%d pid=%d acl=%s%s%s" % (
        opts.bind, port, os.getpid(), acl.default_policy if acl.enabled else "disabled",
        "" if https_port is None else " https=%d%s" % (
            https_port, " verify_incoming" if opts.tls_ca else ""),
        " unix=%s%s" % (opts.unix, " (tls)" if opts.unix_tls else "")
        if opts.unix else ""))
    while not stop.wait(1.0):
        pass
    log("[INFO] emulator: shutting down")
    agent.stop()
    for s in servers:
        s.shutdown()
        s.server_close()
    if opts.unix:
        try:
            os.unlink(opts.unix)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
