"""Hostile HTTP targets for healthreg's tests (stdlib only, loopback).

One threaded raw-TCP server answers by the request path's first segment;
each behaviour is a generator of pieces (bytes to send, or a Pause, or
RST, or CLOSE). A target that goes on "forever" stops as soon as the
client goes away (a failed send) or the server is closed, so nothing
outlives a test.

    srv = hostile.Server(); srv.url("127.0.0.1", "continue") ...; srv.close()

HOSTILE lists the behaviours every engine must survive within its
timeout: see tests/integration/test_hostile_targets.py.
"""
import socket
import threading
import time

RST = object()      # close with a reset (SO_LINGER 0)
CLOSE = object()    # close now (FIN)


class Pause:
    def __init__(self, seconds):
        self.seconds = seconds


def _forever(*pieces):
    while True:
        for p in pieces:
            yield p


def silent(path):
    """Reads the request and never answers."""
    yield Pause(3600)


def trickle_head(path):
    """A head at 1 byte / 100 ms, never complete."""
    for ch in _forever(*b"HTTP/1.1 200 OK\r\nX-Slow: yes\r\n"):
        yield bytes([ch])
        yield Pause(0.1)


def trickle_body(path):
    """A complete head, then the body at 1 byte / 100 ms."""
    yield b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"
    while True:
        yield b"x"
        yield Pause(0.1)


def endless_body(path):
    """200 without Content-Length, a body that never ends (~3 MB/s)."""
    yield b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
    chunk = b"endless " * 2048
    while True:
        yield chunk
        yield Pause(0.005)


def endless_chunked(path):
    """A chunked body that never ends."""
    yield b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"4000\r\n" + b"c" * 0x4000 + b"\r\n"
    while True:
        yield chunk
        yield Pause(0.005)


def huge_headers(path):
    """Header lines without end."""
    yield b"HTTP/1.1 200 OK\r\n"
    n = 0
    while True:
        yield b"".join(b"X-H%d: %s\r\n" % (n + i, b"y" * 200) for i in range(64))
        n += 64
        yield Pause(0.002)


def huge_line(path):
    """One header line without end."""
    yield b"HTTP/1.1 200 OK\r\nX-Long: "
    while True:
        yield b"z" * 8192
        yield Pause(0.002)


def continue_loop(path):
    """100 Continue, again and again, as fast as the client reads."""
    block = b"HTTP/1.1 100 Continue\r\n\r\n" * 256
    while True:
        yield block


def continue_split(path):
    """100 Continue forever, each head split in pieces that arrive apart
    (so every line spans two reads)."""
    yield b"HTTP/1.1 100 Cont"
    while True:
        yield Pause(0.001)
        yield b"inue\r\nX-A: b\r\n\r\nHTTP/1.1 100 Cont"


def _utf8_body():
    """Control bytes, quotes, backslashes, invalid and truncated UTF-8,
    longer than the 4 KiB kept, a multi-byte sequence across byte 4096,
    NULs after it."""
    bad = (b"\x01\x1b[0m\"\\\xff\xfe\xc3\x28\xe2\x82\xed\xa0\x80"
           b"\xf4\x90\x80\x80\xc0\xaf\t\r\n") * 200
    return bad[:4095] + "\u20ac".encode() + b"\x00" + bad


_UTF8_BODY = _utf8_body()
_BAD_503 = b"\xff\xfe down \xc3\x28 \xe2\x82"
_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

# One response, sent at once: (bytes, how the connection ends after 50 ms)
ONE_SHOT = {
    "chunkhex": (_CHUNKED + b"zz\r\nok\r\n", CLOSE),
    "chunknegative": (_CHUNKED + b"-5\r\nok\r\n", CLOSE),
    # a chunk size over 63 bits (16 hex digits), and one of 17 digits
    "chunkoverflow": (_CHUNKED + b"ffffffffffffffff\r\nok\r\n", CLOSE),
    "chunktoolong": (_CHUNKED + b"00000000000000001\r\nx\r\n", CLOSE),
    # a chunk of 2^62 bytes announced, 3 given
    "chunkhuge": (_CHUNKED + b"4000000000000000\r\nabc", CLOSE),
    "conflict": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                 b"Content-Length: 6\r\n\r\nhello!", CLOSE),
    "nulstatus": (b"HTTP/1.1 200 O\x00K\r\nContent-Length: 2\r\n\r\nok", CLOSE),
    "nulheader": (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok", CLOSE),
    "nulbody": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab\x00cd", CLOSE),
    # control characters and invalid UTF-8 in the reason phrase
    "ctlstatus": (b"HTTP/1.1 200 \x1b[31m\xff\xfe\x01bad\x7f\xc3\r\n"
                  b"Content-Length: 2\r\n\r\nok", CLOSE),
    "ctlheader": (b"HTTP/1.1 200 OK\r\nX-Ctl: \x01\x02\x1b\x7f\xff\xc0\xaf\r\n"
                  b"Content-Length: 2\r\n\r\nok", CLOSE),
    "utf8body": (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                 % len(_UTF8_BODY) + _UTF8_BODY, CLOSE),
    "utf8error": (b"HTTP/1.1 503 \xff\r\nContent-Length: %d\r\n\r\n"
                  % len(_BAD_503) + _BAD_503, CLOSE),
    "rsthead": (b"HTTP/1.1 200 OK\r\nContent-Le", RST),
    "rstbody": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", RST),
    # a FIN inside the head and inside the status line: not a response
    "closehead": (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n", CLOSE),
    "closestatus": (b"HTTP/1.1 200 O", CLOSE),
    "loop": (b"HTTP/1.1 302 Found\r\nLocation: /loop\r\n"
             b"Content-Length: 0\r\n\r\n", CLOSE),
    "bigbody": (b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" +
                b"big " * 25000, CLOSE),
    "ok": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", CLOSE),
}


def _one_shot(data, end, after=0):
    def behaviour(path):
        if after:
            yield Pause(after)
        yield data
        yield Pause(0.05)
        yield end
    return behaviour


def _redirect(after, location):
    """After `after` seconds a 302 to location (bytes)."""
    yield Pause(after)
    yield (b"HTTP/1.1 302 Found\r\nLocation: " + location +
           b"\r\nContent-Length: 0\r\n\r\n")
    yield Pause(0.05)
    yield CLOSE


def _numbers(path, defaults):
    """The path's numeric segments after the first, or the defaults."""
    parts = (path.split("/") + [str(d) for d in defaults])[1:1 + len(defaults)]
    return [int(p) if p.isdigit() else 0 for p in parts]


def redirect_loop_slow(path):
    """A redirect to itself after 60 ms: eleven hops outlast 500 ms."""
    return _redirect(0.06, b"/loopslow")


def redirect_chain(path):
    """/chain/<ms>/<n>: after <ms> milliseconds a 302 to /chain/<ms>/<n+1>,
    up to n = 9 (then 200 "done")."""
    delay, n = _numbers(path, (150, 0))
    if n < 9:
        return _redirect(delay / 1000.0, b"/chain/%d/%d" % (delay, n + 1))
    return _one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone",
                     CLOSE, delay / 1000.0)(path)


def redirect_to_silence(path):
    """/hops/<k>: after 50 ms a 302 to /hops/<k-1>; /hops/0 never answers.
    After a redirect nothing more arrives that would wake a client up."""
    k, = _numbers(path, (0,))
    if k <= 0:
        return silent(path)
    return _redirect(0.05, b"/hops/%d" % (k - 1))


BEHAVIOURS = {
    "silent": silent,
    "tricklehead": trickle_head,
    "tricklebody": trickle_body,
    "endless": endless_body,
    "endlesschunked": endless_chunked,
    "hugeheaders": huge_headers,
    "hugeline": huge_line,
    "continue": continue_loop,
    "continuesplit": continue_split,
    "loopslow": redirect_loop_slow,
    "chain": redirect_chain,
    "hops": redirect_to_silence,
}
BEHAVIOURS.update((k, _one_shot(*v)) for k, v in ONE_SHOT.items())

# Every behaviour but the well-behaved one and the timing-only ones.
HOSTILE = [k for k in BEHAVIOURS if k not in ("ok", "chain", "loopslow", "hops")]


class Server:
    """The hostile targets on a loopback port, one thread per connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, host, path):
        return "http://%s:%d/%s" % (host, self.port, path)

    def _accept(self):
        while not self.stopped.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read_request(c):
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(4096)
            if not d:
                return None
            req += d
            if len(req) > 65536:
                return None
        return req

    def _serve(self, c):
        try:
            c.settimeout(10)
            req = self._read_request(c)
            if req is None:
                return
            path = req.split(b" ")[1].decode("latin-1").split("?")[0].strip("/")
            behaviour = BEHAVIOURS.get(path.split("/")[0], BEHAVIOURS["ok"])
            self._play(c, behaviour(path))
        except OSError:
            pass
        finally:
            c.close()

    def _play(self, c, pieces):
        for piece in pieces:
            if self.stopped.is_set():
                return
            if piece is RST:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return
            if piece is CLOSE:
                return
            if isinstance(piece, Pause):
                if self._wait_closed(c, piece.seconds):
                    return
                continue
            c.sendall(piece)

    def _wait_closed(self, c, seconds):
        """Sleep, or less if the client closed or the server stopped;
        true when the connection is over."""
        import select
        end = time.monotonic() + seconds
        while not self.stopped.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([c], [], [], min(left, 0.5))
            if r:
                try:
                    if not c.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                        return True
                    c.recv(4096)
                except BlockingIOError:
                    pass
                except OSError:
                    return True
        return True

    def close(self):
        self.stopped.set()
        self.sock.close()
