"""A real gRPC server with the standard health service, for the grpc
check tests (tests/integration/test_grpc_check.py).

It runs on Debian's python3-grpcio (grpc core, HTTP/2, TLS), started with
the Debian interpreter (/usr/bin/python3, where python3-grpcio is
installed). grpc_health.v1 is not packaged in Debian 12, so the service
grpc.health.v1.Health/Check is a generic handler and its two messages are
encoded by hand, from health.proto:

    message HealthCheckRequest { string service = 1; }
    message HealthCheckResponse { ServingStatus status = 1; }
    enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2;
                         SERVICE_UNKNOWN = 3; }

What each service answers comes from a JSON state file, read on every
call, so a test switches states while an agent runs:

    {"": "SERVING", "my.Service": "NOT_SERVING", "slow": "HANG",
     "broken": {"code": "UNAVAILABLE", "message": "database down"},
     "raw": {"status": 7}, "junk": {"hex": "0801ff", "repeat": 1}}

A service missing from the file is answered as grpc-health's servicer
does: NOT_FOUND "unknown service". {"hex": ...} is sent as the message's
bytes (repeat times), whatever they are. "HANG" holds the call until the client
goes away (or 60 s). Every request's service name and grpc-timeout
(the client's deadline) is appended to <state>.log, one JSON line each.

    grpc_health_server.py --state FILE --port-file FILE
                          [--tls CERT KEY] [--port N] [--host ADDR]

Tests use the class GrpcHealthServer (importable without grpc: the
module imports grpc only to serve), which starts it in a child process
and stops it by PID.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

# python3-grpcio is a Debian package: the Debian interpreter has it, a
# python3 elsewhere on PATH may not.
PYTHON = os.environ.get("HR_GRPC_PYTHON", "/usr/bin/python3")

STATUS = {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 2, "SERVICE_UNKNOWN": 3}


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(b, i):
    shift = n = 0
    while True:
        if i >= len(b) or shift > 63:
            raise ValueError("bad varint")
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return n, i


def decode_request(b):
    """HealthCheckRequest -> its service name (unknown fields skipped)."""
    i, service = 0, ""
    while i < len(b):
        key, i = read_varint(b, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = read_varint(b, i)
        elif wire == 2:
            n, i = read_varint(b, i)
            if field == 1:
                service = b[i:i + n].decode("utf-8")
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError("wire type %d" % wire)
    return service


def encode_response(status):
    if isinstance(status, bytes):
        return status  # a hostile answer, as the state file gave it
    # proto3: the default value (UNKNOWN = 0) is not written
    return b"" if status == 0 else b"\x08" + varint(status)


def available():
    """True when PYTHON can import grpc (python3-grpcio)."""
    try:
        return subprocess.run([PYTHON, "-c", "import grpc"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class GrpcHealthServer:
    """This server in a child process; stop() kills it by PID.

    states: the state file's content (see the module's text); set()
    replaces it while the server runs; requests() lists what the server
    was asked, oldest first."""

    def __init__(self, states, tls=None, port=0, host="127.0.0.1"):
        self.dir = tempfile.mkdtemp(prefix="hr-grpc-")
        self.state = os.path.join(self.dir, "state.json")
        self.set(states)
        pf = os.path.join(self.dir, "port")
        cmd = [PYTHON, os.path.abspath(__file__), "--state", self.state,
               "--port-file", pf, "--port", str(port), "--host", host]
        if tls:
            cmd += ["--tls", tls[0], tls[1]]
        with open(os.path.join(self.dir, "stderr"), "w") as err:
            self.proc = subprocess.Popen(cmd, stderr=err)
        deadline = time.time() + 30
        while not os.path.exists(pf):
            if time.time() > deadline or self.proc.poll() is not None:
                err = self.stderr()
                self.stop()
                raise RuntimeError("gRPC server did not start: " + err)
            time.sleep(0.02)
        with open(pf) as f:
            self.port = int(f.read())
        self.addr = "%s:%d" % ("[%s]" % host if ":" in host else host,
                               self.port)

    def set(self, states):
        tmp = self.state + ".tmp"
        with open(tmp, "w") as f:
            json.dump(states, f)
        os.rename(tmp, self.state)

    def requests(self):
        try:
            with open(self.state + ".log") as f:
                return [json.loads(line) for line in f if line.strip()]
        except OSError:
            return []

    def stderr(self):
        try:
            with open(os.path.join(self.dir, "stderr")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Health:
    def __init__(self, state_path):
        self.state_path = state_path
        self.lock = threading.Lock()

    def state(self):
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def record(self, service, context):
        line = json.dumps({"service": service,
                           "time_remaining": context.time_remaining()})
        with self.lock, open(self.state_path + ".log", "a") as f:
            f.write(line + "\n")

    def check(self, service, context):
        import grpc

        self.record(service, context)
        states = self.state()
        if service not in states:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        want = states[service]
        if want == "HANG":
            end = time.time() + 60
            while context.is_active() and time.time() < end:
                time.sleep(0.02)
            context.abort(grpc.StatusCode.CANCELLED, "gave up")
        if isinstance(want, dict) and "code" in want:
            context.abort(getattr(grpc.StatusCode, want["code"]),
                          want.get("message", ""))
        if isinstance(want, dict) and "hex" in want:
            return bytes.fromhex(want["hex"]) * want.get("repeat", 1)
        if isinstance(want, dict):
            return want["status"]
        return STATUS[want]


def serve(a):
    from concurrent import futures

    import grpc
    health = Health(a.state)
    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {"Check": grpc.unary_unary_rpc_method_handler(
            health.check, request_deserializer=decode_request,
            response_serializer=encode_response)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    addr = "%s:%d" % ("[%s]" % a.host if ":" in a.host else a.host, a.port)
    if a.tls:
        with open(a.tls[0], "rb") as f:
            cert = f.read()
        with open(a.tls[1], "rb") as f:
            key = f.read()
        creds = grpc.ssl_server_credentials([(key, cert)])
        port = server.add_secure_port(addr, creds)
    else:
        port = server.add_insecure_port(addr)
    if not port:
        sys.exit("cannot bind %s" % addr)
    server.start()
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.rename(tmp, a.port_file)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    server.stop(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    serve(ap.parse_args())


if __name__ == "__main__":
    main()
