"""The gateway's life: check, start-up errors (wrong PIN, missing key), SIGHUP reloads, SIGTERM drain,
timeouts, the connection cap, and an HSM that loses its sessions mid-run."""
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import BIN, SHIM, Gateway, client_ctx, listener, refused, roundtrip, run


def test_check_ok(pki, gateway, echo):
    g = gateway([listener(pki, "pub", echo.port)], start=False)
    r = run([BIN, "check", "-c", str(g.config)], env=pki.token.env)
    assert b"configuration OK" in r.stdout


def test_check_missing_key_names_line(pki, gateway, echo):
    l = listener(pki, "pub", echo.port)
    l["key"] = pki.token.uri("no-such-key")
    g = gateway([l], start=False)
    r = run([BIN, "check", "-c", str(g.config)], env=pki.token.env, check=False)
    assert r.returncode == 1
    err = r.stderr.decode()
    key_line = [i + 1 for i, t in enumerate(g.config.read_text().splitlines()) if t.strip().startswith("key:")][0]
    assert f"{g.config}:{key_line}:" in err, err
    assert "no-such-key" in err


def test_check_config_error_names_line(pki, gateway, echo):
    g = gateway([listener(pki, "pub", echo.port, auth="both-ways")], start=False)
    r = run([BIN, "check", "-c", str(g.config)], env=pki.token.env, check=False)
    assert r.returncode == 1
    assert f"{g.config}:" in r.stderr.decode() and "auth" in r.stderr.decode()


def test_wrong_pin_is_clear_and_not_retried(pki, tmp_path, echo):
    bad = tmp_path / "bad.pin"
    bad.write_text("9999\n")
    os.chmod(bad, 0o600)
    g = Gateway(tmp_path, pki.token)
    g.write_config([listener(pki, "pub", echo.port)], hsm=False)
    text = g.config.read_text()
    g.config.write_text(f"hsm: {{ module: {pki.token.module}, pin: \"file:{bad}\" }}\n" + text)
    t0 = time.time()
    r = run([BIN, "run", "-c", str(g.config)], env=pki.token.env, check=False, timeout=60)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "PIN" in err and "9999" not in err, err
    assert err.lower().count("pin") < 10  # one clear message, no retry loop
    # the token still takes the right PIN (one wrong attempt, not a lock-out)
    g2 = Gateway(tmp_path / "ok", pki.token)
    (tmp_path / "ok").mkdir()
    g2.write_config([listener(pki, "pub", echo.port)])
    g2.start()
    try:
        assert roundtrip(g2.port("pub"), client_ctx(pki))[0] == b"hello hsmgate\n"
    finally:
        g2.stop()


def test_world_readable_pin_file_refused(pki, tmp_path, echo):
    loose = tmp_path / "loose.pin"
    loose.write_text("1234\n")
    os.chmod(loose, 0o644)
    g = Gateway(tmp_path, pki.token)
    g.write_config([listener(pki, "pub", echo.port)], hsm=False)
    g.config.write_text(f"hsm: {{ module: {pki.token.module}, pin: \"file:{loose}\" }}\n" + g.config.read_text())
    r = run([BIN, "check", "-c", str(g.config)], env=pki.token.env, check=False)
    assert r.returncode != 0
    assert str(loose) in r.stderr.decode()


def test_sighup_new_certificate_keeps_connections(pki, gateway, echo):
    g = gateway([listener(pki, "pub", echo.port)])
    ctx = client_ctx(pki)
    raw = socket.create_connection(("127.0.0.1", g.port("pub")), timeout=10)
    live = ctx.wrap_socket(raw, server_hostname="localhost")
    live.sendall(b"before\n")
    assert live.recv(100) == b"before\n"
    old_cert = live.getpeercert(binary_form=True)

    # a new certificate for a new HSM key, and the config pointing at it
    uri, cert = pki.server("reload", "ec:P-256", subject="/CN=localhost/OU=reloaded")
    text = g.config.read_text().replace(str(pki.servers["ec256"][1]), str(cert)).replace(pki.servers["ec256"][0], uri)
    g.config.write_text(text)
    g.signal(signal.SIGHUP)
    g.wait_log("reloaded: generation 2")

    with socket.create_connection(("127.0.0.1", g.port("pub")), timeout=10) as raw2:
        with ctx.wrap_socket(raw2, server_hostname="localhost") as s2:
            assert "reloaded" in str(s2.getpeercert()["subject"])
            s2.sendall(b"new\n")
            assert s2.recv(100) == b"new\n"
    # the connection made before the reload still works, with its old certificate
    live.sendall(b"after\n")
    assert live.recv(100) == b"after\n"
    assert live.getpeercert(binary_form=True) == old_cert
    live.close()


def test_sighup_broken_config_keeps_running(pki, gateway, echo):
    g = gateway([listener(pki, "pub", echo.port)])
    good = g.config.read_text()
    g.config.write_text(good + "  - name: [broken\n")
    g.signal(signal.SIGHUP)
    g.wait_log("reload refused")
    assert roundtrip(g.port("pub"), client_ctx(pki))[0] == b"hello hsmgate\n"
    assert g.proc.poll() is None


def test_sigterm_drains(pki, gateway, echo):
    g = gateway([listener(pki, "pub", echo.port)], drain_timeout="20s")
    raw = socket.create_connection(("127.0.0.1", g.port("pub")), timeout=10)
    live = client_ctx(pki).wrap_socket(raw, server_hostname="localhost")
    live.sendall(b"one\n")
    assert live.recv(100) == b"one\n"
    g.signal(signal.SIGTERM)
    g.wait_log("draining")
    # new connections are refused, the live one goes on
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", g.port("pub")), timeout=2).close()
    live.sendall(b"two\n")
    assert live.recv(100) == b"two\n"
    assert g.proc.poll() is None
    live.close()
    assert g.proc.wait(15) == 0
    assert "stopped" in g.log()


def test_handshake_timeout(pki, gateway, echo):
    g = gateway([listener(pki, "pub", echo.port, handshake_timeout="1s")])
    with socket.create_connection(("127.0.0.1", g.port("pub")), timeout=15) as s:
        t0 = time.time()
        assert s.recv(100) == b""  # closed by the gateway, not by us
        assert time.time() - t0 < 14
    rec = g.wait_access(lambda r: r["reason"] == "handshake_timeout")
    assert rec["result"] == "handshake_failed"


def test_idle_timeout(pki, gateway, echo):
    g = gateway([listener(pki, "pub", echo.port, idle_timeout="1s")])
    with socket.create_connection(("127.0.0.1", g.port("pub")), timeout=15) as raw:
        with client_ctx(pki).wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"x")
            assert s.recv(10) == b"x"
            try:
                assert s.recv(10) == b""
            except (ssl.SSLError, ConnectionResetError):
                pass
    g.wait_access(lambda r: r["reason"] == "idle_timeout")


def test_connection_cap(pki, gateway, echo):
    g = gateway([listener(pki, "pub", echo.port, max_connections=2)])
    ctx = client_ctx(pki)
    held = []
    for _ in range(2):
        raw = socket.create_connection(("127.0.0.1", g.port("pub")), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"k")
        assert s.recv(1) == b"k"
        held.append(s)
    refused(g.port("pub"), ctx)
    for s in held:
        s.close()
    time.sleep(0.3)
    deadline = time.time() + 10
    while True:
        try:
            assert roundtrip(g.port("pub"), ctx)[0] == b"hello hsmgate\n"
            break
        except (ssl.SSLError, ConnectionResetError, AssertionError):
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def test_hsm_session_lost_and_recovered(pki, gateway, echo, tmp_path):
    if not os.path.exists(SHIM):
        pytest.fail(f"{SHIM} is missing: run `make`")
    fault = tmp_path / "token-gone"
    g = gateway([listener(pki, "pub", echo.port)], start=False)
    g.config.write_text(g.config.read_text().replace(pki.token.module, SHIM))
    g.extra_env = {"P11SHIM_MODULE": pki.token.module, "P11SHIM_FAULT": str(fault)}
    g.start()
    ctx = client_ctx(pki, version="1.3")
    ctx.options |= ssl.OP_NO_TICKET
    assert roundtrip(g.port("pub"), ctx)[0] == b"hello hsmgate\n"

    fault.write_text("gone")
    failures = 0
    for _ in range(6):
        try:
            roundtrip(g.port("pub"), client_ctx(pki, version="1.3"))
        except (ssl.SSLError, ConnectionResetError):
            failures += 1
    assert failures == 6
    assert g.proc.poll() is None
    rec = g.wait_access(lambda r: r["reason"] in ("hsm_session_lost", "hsm_sign_failed"))
    assert rec["result"] == "handshake_failed"

    fault.unlink()
    deadline = time.time() + 10
    ok = False
    while time.time() < deadline and not ok:
        try:
            ok = roundtrip(g.port("pub"), client_ctx(pki, version="1.3"))[0] == b"hello hsmgate\n"
        except (ssl.SSLError, ConnectionResetError):
            time.sleep(0.2)
    assert ok, g.log()
    # every worker recovers, not just one: a run of handshakes all succeed
    for _ in range(8):
        assert roundtrip(g.port("pub"), client_ctx(pki, version="1.3"))[0] == b"hello hsmgate\n"
    assert g.proc.poll() is None
