"""Loopback test targets for healthreg tests and the demo (stdlib only).

Run as a program:  python3 targets.py --port-file FILE [--port N]
or import start() from a test.  One threaded HTTP server answers by path:

  /status/<code>         that status code, body "status <code>"
  /redirect/<code>       302 to /status/<code>
  /hang                  accepts, reads the request, never answers
  /slow/<ms>             answers 200 after <ms> milliseconds
  /huge/<bytes>          200 with a body of <bytes> bytes ('x')
  /toggle                200 or 503 depending on the file given with
                         --toggle-file: present = 503 (failing)
  /echo                  200 with the request method, headers and body
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    toggle_file = None

    def log_message(self, *args):
        pass

    def _send(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.split("?")[0].strip("/").split("/")
        kind = parts[0]
        arg = parts[1] if len(parts) > 1 else ""
        if kind == "status":
            code = int(arg)
            self._send(code, ("status %d" % code).encode())
        elif kind == "redirect":
            self._send(302, b"", {"Location": "/status/" + arg})
        elif kind == "hang":
            time.sleep(3600)
        elif kind == "slow":
            time.sleep(int(arg) / 1000.0)
            self._send(200, b"slow ok")
        elif kind == "huge":
            self._send(200, b"x" * int(arg))
        elif kind == "toggle":
            failing = self.toggle_file and os.path.exists(self.toggle_file)
            self._send(503 if failing else 200,
                       b"failing" if failing else b"ok")
        elif kind == "echo":
            text = "%s %s\n%s\n" % (self.command, self.path, self.headers)
            self._send(200, text.encode() + body)
        else:
            self._send(404, b"no such target")

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # TCP checks connect and reset: that is not an error here.
        pass


def serve(port, port_file=None, toggle_file=None):
    Handler.toggle_file = toggle_file
    srv = Server(("127.0.0.1", port), Handler)
    if port_file:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(srv.server_address[1]))
        os.rename(tmp, port_file)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    srv.serve_forever()


class Target:
    """A targets.py server in a child process; stop() kills it by PID."""

    def __init__(self, port=0, toggle_file=None):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="hr-target-")
        pf = os.path.join(self.dir, "port")
        cmd = [sys.executable, os.path.abspath(__file__), "--port",
               str(port), "--port-file", pf]
        if toggle_file:
            cmd += ["--toggle-file", toggle_file]
        self.proc = subprocess.Popen(cmd)
        deadline = time.time() + 10
        while not os.path.exists(pf):
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("target server did not start")
            time.sleep(0.02)
        with open(pf) as f:
            self.port = int(f.read())
        self.url = "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    """A loopback port nothing listens on (closed right away)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--toggle-file")
    a = ap.parse_args()
    serve(a.port, a.port_file, a.toggle_file)


if __name__ == "__main__":
    main()
