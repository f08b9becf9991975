"""One agent per API address (issue 13, blocker 1): a second agent on a
taken api_listen port fails at start with event=api_failed and exit 69,
and the first keeps answering every request itself (the listener used to
set SO_REUSEPORT, so the kernel split the requests between the two); a
restart on the same port while the old connections sit in TIME_WAIT
still binds (SO_REUSEADDR)."""
import http.client
import json
import os
import socket
import subprocess
import unittest

import hrtest
import targets


def ttl_agent(name, port):
    """An agent for service name with one ttl check, its API on port."""
    return hrtest.Agent({
        "service": {"name": name, "checks": [{"name": "hb", "ttl": "30s"}]},
        "agent": {"api_listen": "127.0.0.1:%d" % port}})


def exit_code(agent, timeout=10):
    """The agent's exit code, or None when it is still running."""
    try:
        return agent.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def health_service(port):
    """GET /v1/health on a fresh connection: the service that answered."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/v1/health")
        return json.loads(c.getresponse().read())["service"]
    finally:
        c.close()


def time_wait_on(port):
    """Sockets in TIME_WAIT with local port port (/proc/net/tcp, tcp6)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state = fields[1], fields[3]
            if int(local.rsplit(":", 1)[1], 16) == port and state == "06":
                n += 1
    return n


class TestApiPort(unittest.TestCase):
    def test_second_agent_on_a_taken_port_fails(self):
        port = targets.free_port()
        first = ttl_agent("alpha", port)
        self.addCleanup(first.close)
        self.assertTrue(first.wait_log("event=api_listening"), first.log())
        second = ttl_agent("beta", port)
        self.addCleanup(second.close)
        rc = exit_code(second)
        log = second.log()
        self.assertEqual(rc, 69, log)
        self.assertIn("event=api_failed", log)
        self.assertIn("127.0.0.1:%d" % port, log)
        self.assertIn("Address already in use", log)
        self.assertNotIn("event=api_listening", log)
        # Nothing was registered or started by the failed agent.
        self.assertNotIn("event=ready", log)
        # Every request, each on its own connection, is the first's.
        answers = [health_service(port) for _ in range(40)]
        self.assertEqual(set(answers), {"alpha"})
        self.assertIsNone(first.proc.poll())

    def test_restart_on_the_same_port_with_time_wait(self):
        """The old agent closed its connections first, so they sit in
        TIME_WAIT on the API port; the next agent binds it anyway."""
        port = targets.free_port()
        old = ttl_agent("alpha", port)
        self.addCleanup(old.close)
        self.assertTrue(old.wait_log("event=api_listening"), old.log())
        conns = []
        for _ in range(3):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/v1/health")
            c.getresponse().read()  # keep-alive: the agent holds it open
            conns.append(c)
        self.assertEqual(old.stop(), 0, old.log())
        for c in conns:
            c.close()
        self.assertTrue(hrtest.wait_for(lambda: time_wait_on(port) > 0, 5),
                        "no TIME_WAIT on the API port: the test proves nothing")
        new = ttl_agent("alpha2", port)
        self.addCleanup(new.close)
        self.assertTrue(new.wait_log("event=api_listening"), new.log())
        self.assertEqual(health_service(port), "alpha2")

    def test_port_taken_by_another_program(self):
        """Not only another healthreg: any listener, even one that set
        SO_REUSEPORT itself, keeps the port."""
        s = socket.socket()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        port = s.getsockname()[1]
        a = ttl_agent("alpha", port)
        self.addCleanup(a.close)
        self.assertEqual(exit_code(a), 69, a.log())
        self.assertIn("event=api_failed", a.log())


if __name__ == "__main__":
    unittest.main()
