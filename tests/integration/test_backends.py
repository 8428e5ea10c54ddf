"""Backend pools: weighted round-robin, least-connections, retries on the next backend, active health
checks (tcp and http) with rise/fall, every backend down, and failover with connections in flight.

The backends name themselves ("<port>:" before the echo, tests/integration/pp2.py), so a client knows
which one served it. Health checks run every 200 ms here; waits are bounded, never asserted on.
"""
import signal
import socket
import ssl

import pytest

from conftest import client_ctx, free_port, listener
from pp2 import TaggedBackend, ask, wait_for

FAST_TCP = "{ type: tcp, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }"
FAST_HTTP = "{ type: http, path: /healthz, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }"


@pytest.fixture
def backends():
    made = []

    def make(n):
        bs = [TaggedBackend() for _ in range(n)]
        made.extend(bs)
        return bs

    yield make
    for b in made:
        b.close()


def pool_listener(pki, name, addrs, **kw):
    d = listener(pki, name, 0, **kw)
    d["backends"] = addrs
    return d


def addr(b, weight=None):
    port = b if isinstance(b, int) else b.port
    return f"127.0.0.1:{port}" if weight is None else f"{{ address: 127.0.0.1:{port}, weight: {weight} }}"


class Held:
    """A connection through the gateway that stays open; knows its backend."""

    def __init__(self, port, ctx):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s = ctx.wrap_socket(raw, server_hostname="localhost")
        self.s.sendall(b"hi\n")
        got = b""
        while not got.endswith(b"hi\n"):
            chunk = self.s.recv(100)
            assert chunk, f"closed before the reply: {got!r}"
            got += chunk
        self.backend = int(got.split(b":", 1)[0])

    def echo(self, data=b"again\n"):
        """The echo of data, or b"" if the connection was closed."""
        try:
            self.s.sendall(data)
            got = b""
            while len(got) < len(data):
                chunk = self.s.recv(100)
                if not chunk:
                    break
                got += chunk
            return got
        except (ssl.SSLError, OSError):
            return b""

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def ok_lines(g, name):
    return [r for r in g.access_lines() if r["listener"] == name and r["result"] == "ok"]


def test_weighted_round_robin(pki, gateway, backends):
    a, b, c = backends(3)
    g = gateway([pool_listener(pki, "rr", [addr(a, 1), addr(b, 3), addr(c, 2)])])
    ctx = client_ctx(pki)
    served = [ask(g.port("rr"), ctx)[0] for _ in range(42)]
    # Smooth weighted round-robin: exactly 1:3:2 over whole cycles of 6, and spread within one.
    assert served.count(a.port) == 7 and served.count(b.port) == 21 and served.count(c.port) == 14, served
    assert served[:6].count(b.port) == 3 and served[:6].count(c.port) == 2, served[:6]
    assert not any(served[i] == served[i + 1] == served[i + 2] for i in range(len(served) - 2)), served
    rec = g.wait_access(lambda r: r["listener"] == "rr" and r["result"] == "ok")
    assert rec["backend"] in (addr(a), addr(b), addr(c))


def test_round_robin_equal_weights(pki, gateway, backends):
    bs = backends(3)
    g = gateway([pool_listener(pki, "rr", [addr(x) for x in bs])])
    ctx = client_ctx(pki)
    served = [ask(g.port("rr"), ctx)[0] for _ in range(30)]
    assert sorted(served.count(x.port) for x in bs) == [10, 10, 10], served
    assert [x.data_connections for x in bs] == [10, 10, 10]


def test_least_connections(pki, gateway, backends):
    a, b = backends(2)
    g = gateway([pool_listener(pki, "lc", [addr(a), addr(b)], balance="least-connections")])
    ctx = client_ctx(pki)
    busy = Held(g.port("lc"), ctx)               # stays open on one backend
    other = b.port if busy.backend == a.port else a.port
    try:
        # While it is open, every short connection goes to the other backend (round-robin would alternate).
        for i in range(6):
            port, _ = ask(g.port("lc"), ctx)
            assert port == other, f"connection {i} went to {port}, the busy backend"
            # The gateway counts a connection until it has closed it: wait for its access log line.
            wait_for(lambda: len(ok_lines(g, "lc")) >= i + 1, what="access log line")
        # Two more held: one each side evens out 2:1 -> the next goes to the less loaded.
        second = Held(g.port("lc"), ctx)
        assert second.backend == other
        third = Held(g.port("lc"), ctx)            # 1:1 -> either
        fourth = Held(g.port("lc"), ctx)
        loads = [h.backend for h in (busy, second, third, fourth)]
        assert loads.count(a.port) == 2 and loads.count(b.port) == 2, loads
        for h in (second, third, fourth):
            h.close()
    finally:
        busy.close()


def test_dead_backend_is_skipped(pki, gateway, backends):
    (live,) = backends(1)
    dead = free_port()
    g = gateway([pool_listener(pki, "pool", [addr(dead), addr(live)])])
    ctx = client_ctx(pki)
    for _ in range(6):
        port, echoed = ask(g.port("pool"), ctx)
        assert port == live.port and echoed == b"who\n"
    recs = wait_for(lambda: len(ok_lines(g, "pool")) >= 6 and ok_lines(g, "pool"), what="6 ok lines")
    assert all(r["backend"] == addr(live) for r in recs)
    assert f"listener pool: backend 127.0.0.1:{dead}: Connection refused" in g.log()
    assert not [r for r in g.access_lines() if r["result"] != "ok"]


def test_tcp_health_check(pki, gateway, backends):
    a, b = backends(2)
    g = gateway([pool_listener(pki, "hc", [addr(a), addr(b)], health_check=FAST_TCP)])
    ctx = client_ctx(pki)
    b.kill()
    down = f"backend 127.0.0.1:{b.port} of listener hc is DOWN (2 failures: connection refused)"
    g.wait_log(down)
    mark = len(g.log())
    for _ in range(8):
        assert ask(g.port("hc"), ctx)[0] == a.port
    # Marked down: not even a connect attempt (which would log "Connection refused").
    assert f"backend 127.0.0.1:{b.port}: Connection refused" not in g.log()[mark:]
    b.revive()
    g.wait_log(f"backend 127.0.0.1:{b.port} of listener hc is UP (2 successes)")
    served = {ask(g.port("hc"), ctx)[0] for _ in range(4)}
    assert served == {a.port, b.port}
    assert b.data_connections >= 1


def test_http_health_check(pki, gateway, backends):
    a, b = backends(2)
    g = gateway([pool_listener(pki, "web", [addr(a), addr(b)], health_check=FAST_HTTP)])
    ctx = client_ctx(pki)
    req = wait_for(lambda: b.health_requests and b.health_requests[0], what="a health request")
    assert req == (f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{b.port}\r\nConnection: close\r\n"
                   "User-Agent: hsmgate-health\r\n\r\n")
    b.status = 500
    g.wait_log(f"backend 127.0.0.1:{b.port} of listener web is DOWN (2 failures: HTTP status 500)")
    before = b.data_connections
    for _ in range(8):
        assert ask(g.port("web"), ctx)[0] == a.port
    assert b.data_connections == before         # it accepts connections, but is sent none
    b.status = 302                              # 3xx counts as healthy
    g.wait_log(f"backend 127.0.0.1:{b.port} of listener web is UP (2 successes)")
    served = [ask(g.port("web"), ctx)[0] for _ in range(4)]
    assert served.count(b.port) == 2, served
    assert b.data_connections == before + 2


def test_http_health_check_silent_backend(pki, gateway, backends):
    """A backend that accepts but never answers fails its checks by timeout."""
    (a,) = backends(1)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        hc = "{ type: http, path: /, interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }"
        g = gateway([pool_listener(pki, "web", [addr(a), addr(silent.getsockname()[1])], health_check=hc)])
        g.wait_log(f"backend 127.0.0.1:{silent.getsockname()[1]} of listener web is DOWN (1 failure: timeout)")
        assert f"backend 127.0.0.1:{a.port} of listener web is DOWN" not in g.log()
    finally:
        silent.close()


def test_all_backends_dead(pki, gateway):
    d1, d2 = free_port(), free_port()
    g = gateway([pool_listener(pki, "none", [addr(d1), addr(d2)])])
    with socket.create_connection(("127.0.0.1", g.port("none")), timeout=10) as raw:
        with client_ctx(pki).wrap_socket(raw, server_hostname="localhost") as s:
            try:
                s.sendall(b"x")
                data = s.recv(10)
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                data = b""
            assert data == b""
    rec = g.wait_access(lambda r: r["result"] == "backend_unreachable")
    assert "refused" in rec["reason"].lower()
    # Each backend tried once.
    assert g.log().count(f"backend 127.0.0.1:{d1}: Connection refused") == 1
    assert g.log().count(f"backend 127.0.0.1:{d2}: Connection refused") == 1


def test_all_down_are_still_tried(pki, gateway, backends):
    """Every backend marked down: connections still try them, so a backend that is back is used
    before its checks have risen (rise 50 x 200 ms here)."""
    a, b = backends(2)
    hc = "{ type: tcp, interval: 200ms, timeout: 150ms, rise: 50, fall: 1 }"
    g = gateway([pool_listener(pki, "pool", [addr(a), addr(b)], health_check=hc)])
    a.kill()
    b.kill()
    g.wait_log(f"backend 127.0.0.1:{a.port} of listener pool is DOWN")
    g.wait_log(f"backend 127.0.0.1:{b.port} of listener pool is DOWN")
    with pytest.raises((ssl.SSLError, OSError, AssertionError)):
        ask(g.port("pool"), client_ctx(pki))
    g.wait_access(lambda r: r["result"] == "backend_unreachable")
    b.revive()
    assert ask(g.port("pool"), client_ctx(pki))[0] == b.port
    assert "is UP" not in g.log()


def test_failover_with_connections_in_flight(pki, gateway, backends):
    a, b = backends(2)
    g = gateway([pool_listener(pki, "fo", [addr(a), addr(b)], health_check=FAST_TCP)])
    ctx = client_ctx(pki)
    held = [Held(g.port("fo"), ctx) for _ in range(4)]
    try:
        on_a = [h for h in held if h.backend == a.port]
        on_b = [h for h in held if h.backend == b.port]
        assert len(on_a) == 2 and len(on_b) == 2
        a.kill()
        for h in on_a:                               # closed, not hanging
            assert h.echo() == b""
        for h in on_b:                               # untouched
            assert h.echo() == b"again\n"
        # New connections go to b, before a is marked down (retry) and after.
        for _ in range(4):
            assert ask(g.port("fo"), ctx)[0] == b.port
        g.wait_log(f"backend 127.0.0.1:{a.port} of listener fo is DOWN")
        for _ in range(4):
            assert ask(g.port("fo"), ctx)[0] == b.port
        recs = g.access_lines()
        assert not [r for r in recs if r["result"] == "backend_unreachable"]
        assert len([r for r in recs if r.get("backend") == addr(a)]) == 2   # the two cut off, nothing new
    finally:
        for h in held:
            h.close()


def test_reload_keeps_down_state(pki, gateway, backends):
    """A reload does not hand a backend known to be down new connections."""
    a, b = backends(2)
    hc = "{ type: tcp, interval: 200ms, timeout: 150ms, rise: 50, fall: 1 }"
    lst = [pool_listener(pki, "rl", [addr(a), addr(b)], health_check=hc)]
    g = gateway(lst)
    b.kill()
    g.wait_log(f"backend 127.0.0.1:{b.port} of listener rl is DOWN")
    b.revive()                                   # back, but rise 50 keeps it down for 10 s
    g.write_config(lst)
    g.signal(signal.SIGHUP)
    g.wait_log("reloaded: generation 2")
    ctx = client_ctx(pki)
    for _ in range(4):
        assert ask(g.port("rl"), ctx)[0] == a.port
