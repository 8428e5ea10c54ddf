"""Per-client-address limits against a slowloris and a connection flood from one address.

The attacker speaks from 127.0.0.2 and 127.0.0.3 (Linux routes all of 127/8 to lo), the legitimate
client from 127.0.0.1. Asserted: the attacker gets no more than its limit of the gateway, the rest is
closed at accept and counted, the legitimate client's handshakes all succeed meanwhile, and the log
says what happened once a second at most. How fast the legitimate client stays is a number for the
benchmark harness, not a threshold here."""
import re
import resource
import socket
import ssl
import time
import urllib.request

import pytest

from conftest import free_port, listener, client_ctx, roundtrip

WAIT = 30


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def metric(port, name, listener_name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=WAIT).read().decode()
    m = re.search(rf'^{name}{{listener="{listener_name}"}} (\d+)$', text, re.M)
    assert m, f"{name} not in /metrics"
    return int(m.group(1))


def open_from(src, port, n):
    """n TCP connections from address src that never send a byte (a slowloris). Returns those the
    kernel completed; the gateway may close some of them at once."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind((src, 0))
        s.settimeout(WAIT)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def echo_from(src, port, ctx, byte=b"x", keep=False):
    """A mutual-TLS connection from address src and a one-byte echo: the open socket when keep and
    admitted, else whether it was admitted (the gateway may close it at accept)."""
    raw = socket.socket()
    raw.bind((src, 0))
    raw.settimeout(WAIT)
    raw.connect(("127.0.0.1", port))
    try:
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(byte)
        if s.recv(1) == byte:
            if keep:
                return s
            s.close()
            return True
        s.close()
    except (ssl.SSLError, OSError):
        raw.close()
    return None if keep else False


def closed_by_peer(s):
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slowloris_from_one_address(pki, gateway, echo):
    """5,000 connections from one address that never start their handshake: at most
    max_handshakes_per_address of them stay open, the others are closed at accept; a client from
    another address keeps completing handshakes, before, during and after."""
    n = 5000
    if raise_nofile(n + 500) < n + 200:
        pytest.skip("RLIMIT_NOFILE's hard limit is below 5,200 here: cannot hold 5,000 sockets")
    aport = free_port()
    g = gateway([listener(pki, "pub", echo.port, handshake_timeout="60s")], max_handshakes_per_address=50,
                admin=f'{{ bind: "127.0.0.1:{aport}" }}')
    port = g.port("pub")
    assert roundtrip(port, client_ctx(pki))[0] == b"hello hsmgate\n"
    socks = open_from("127.0.0.2", port, n)
    try:
        # the gateway sorts them out: wait until all but the admitted ones are closed
        deadline = time.time() + WAIT
        while True:
            open_ = [s for s in socks if not closed_by_peer(s)]
            if len(open_) <= 50 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert len(open_) <= 50, f"{len(open_)} slowloris connections still open"
        assert metric(aport, "hsmgate_connections_rejected_per_address_total", "pub") >= n - 50 - (n - len(socks))
        # the legitimate client is served while the 50 still hang
        for _ in range(20):
            assert roundtrip(port, client_ctx(pki))[0] == b"hello hsmgate\n"
        log = g.log()
        assert "connection from 127.0.0.2 closed: the address holds 50 unfinished handshakes (max_handshakes_per_address)" in log
        lines = log.count("connection from 127.0.0.2 closed")
        assert lines < 200, f"{lines} log lines for one flood: not rate-limited"
    finally:
        for s in socks:
            s.close()
    assert g.proc.poll() is None


def test_connection_flood_from_one_address(pki, gateway, echo):
    """An address that opens many connections and completes their handshakes holds at most
    max_connections_per_address at once; when it closes some, it may open as many again; another
    address is not affected."""
    aport = free_port()
    g = gateway([listener(pki, "pub", echo.port)], max_connections_per_address=10,
                admin=f'{{ bind: "127.0.0.1:{aport}" }}')
    port = g.port("pub")
    ctx = client_ctx(pki)
    held, refused = [], 0
    for _ in range(25):
        conn = echo_from("127.0.0.3", port, ctx, keep=True)
        if conn is not None:
            held.append(conn)
        else:
            refused += 1
    try:
        assert len(held) == 10 and refused == 15, (len(held), refused)
        assert metric(aport, "hsmgate_connections_rejected_per_address_total", "pub") == 15
        for _ in range(5):
            assert roundtrip(port, client_ctx(pki))[0] == b"hello hsmgate\n"   # 127.0.0.1 is not limited by them
        for s in held[:4]:
            s.close()
        held = held[4:]
        # the gateway notices the closes; then four new connections fit again
        deadline = time.time() + WAIT
        got = 0
        while got < 4 and time.time() < deadline:
            conn = echo_from("127.0.0.3", port, ctx, b"y", keep=True)
            if conn is not None:
                held.append(conn)
                got += 1
            else:
                time.sleep(0.05)
        assert got == 4
    finally:
        for s in held:
            s.close()


def test_handshake_rate_from_one_address(pki, gateway, echo):
    """An address that starts connections faster than max_handshake_rate_per_address gets its burst
    (twice the rate) and then the rate; the rest is closed at accept, before any TLS work. Another
    address is not affected."""
    aport = free_port()
    g = gateway([listener(pki, "pub", echo.port)], max_handshake_rate_per_address=5,
                admin=f'{{ bind: "127.0.0.1:{aport}" }}')
    port = g.port("pub")
    ctx = client_ctx(pki)
    admitted = refused = 0
    t0 = time.monotonic()
    for _ in range(60):
        ok = echo_from("127.0.0.4", port, ctx, b"z")
        admitted += ok
        refused += not ok
    elapsed = time.monotonic() - t0
    # the burst of 10, plus 5 a second for as long as the loop took (and one for the rounding)
    assert admitted <= 10 + int(5 * elapsed) + 1, (admitted, elapsed)
    assert admitted >= 10 and refused > 0, (admitted, refused)
    assert metric(aport, "hsmgate_connections_rejected_per_address_total", "pub") == refused
    assert "the address starts more than 5 a second (max_handshake_rate_per_address)" in g.log()
    for _ in range(8):      # another address has its own bucket (a burst of 10)
        assert roundtrip(port, client_ctx(pki))[0] == b"hello hsmgate\n"
