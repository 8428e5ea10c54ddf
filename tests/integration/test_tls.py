"""TLS termination on tcp listeners: one-way, two-way and optional, the client-certificate rules,
server keys of each supported type in the HSM, and bad peers."""
import socket
import ssl
import subprocess
import time

import pytest

from conftest import BIN, client_ctx, free_port, listener, refused, roundtrip, run


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_one_way_echo(pki, gateway, echo, version):
    g = gateway([listener(pki, "pub", echo.port)])
    got, ver, cipher = roundtrip(g.port("pub"), client_ctx(pki, version=version))
    assert got == b"hello hsmgate\n"
    assert ver == f"TLSv{version}"
    rec = g.wait_access(lambda r: r["listener"] == "pub" and r["result"] == "ok")
    assert rec["tls_version"] == f"TLSv{version}"
    assert rec["client_cert"] is False
    assert rec["bytes_in"] == len(b"hello hsmgate\n") and rec["bytes_out"] == len(b"hello hsmgate\n")
    assert rec["peer"].startswith("127.0.0.1:")
    for field in ("time", "cipher", "resumed", "client_subject", "client_issuer", "client_serial",
                  "client_fingerprint_sha256", "reason", "duration_ms", "backend"):
        assert field in rec, field


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_two_way_good_client(pki, gateway, echo, version):
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")])
    cert = pki.client("good")
    got, ver, _ = roundtrip(g.port("mtls"), client_ctx(pki, cert=cert, version=version))
    assert got == b"hello hsmgate\n"
    rec = g.wait_access(lambda r: r["listener"] == "mtls" and r["result"] == "ok")
    assert rec["client_cert"] is True
    subj = run(["openssl", "x509", "-in", str(cert[0]), "-noout", "-subject", "-nameopt", "RFC2253"]).stdout.decode()
    assert rec["client_subject"] == subj.split("=", 1)[1].strip()
    assert "CN=client-good" in rec["client_subject"]
    issuer = run(["openssl", "x509", "-in", str(cert[0]), "-noout", "-issuer", "-nameopt", "RFC2253"]).stdout.decode()
    assert rec["client_issuer"] == issuer.split("=", 1)[1].strip()
    fp = run(["openssl", "x509", "-in", str(cert[0]), "-noout", "-fingerprint", "-sha256"]).stdout.decode()
    assert rec["client_fingerprint_sha256"] == fp.split("=", 1)[1].strip().replace(":", "").lower()
    serial = run(["openssl", "x509", "-in", str(cert[0]), "-noout", "-serial"]).stdout.decode()
    assert rec["client_serial"].lstrip("0") == serial.split("=", 1)[1].strip().upper().lstrip("0")


def refusal_reason(g, name):
    rec = g.wait_access(lambda r: r["listener"] == name and r["result"] == "handshake_failed")
    return rec["reason"]


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_two_way_no_client_certificate(pki, gateway, echo, version):
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")])
    err = refused(g.port("mtls"), client_ctx(pki, version=version))
    assert echo.connections == 0
    assert refusal_reason(g, "mtls") == "no_client_certificate"
    if version == "1.3":
        assert "CERTIFICATE_REQUIRED" in err.upper() or "HANDSHAKE_FAILURE" in err.upper(), err


def test_two_way_foreign_ca(pki, gateway, echo):
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")])
    err = refused(g.port("mtls"), client_ctx(pki, cert=pki.foreign_client(), version="1.2"))
    assert echo.connections == 0
    assert refusal_reason(g, "mtls") == "unknown_ca"
    assert "alert" in err.lower(), err


def test_two_way_expired(pki, gateway, echo):
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")])
    cert = pki.client("expired", "--not-before", "-30d", "--not-after", "-1d")
    err = refused(g.port("mtls"), client_ctx(pki, cert=cert, version="1.2"))
    assert echo.connections == 0
    assert refusal_reason(g, "mtls") == "certificate_expired"
    assert "expired" in err.lower(), err


def test_two_way_not_yet_valid(pki, gateway, echo):
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")])
    cert = pki.client("notyet", "--not-before", "+1d", "--not-after", "+30d")
    refused(g.port("mtls"), client_ctx(pki, cert=cert, version="1.3"))
    assert echo.connections == 0
    assert refusal_reason(g, "mtls") == "certificate_not_yet_valid"


def test_two_way_server_auth_only(pki, gateway, echo):
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")])
    cert = pki.client("serveronly", "--eku", "serverAuth")
    refused(g.port("mtls"), client_ctx(pki, cert=cert, version="1.3"))
    assert echo.connections == 0
    assert refusal_reason(g, "mtls") == "not_for_client_auth"


def test_two_way_client_cert_with_ca_flag(pki, gateway, echo):
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")])
    cert = pki.client("isca", "--ca")
    refused(g.port("mtls"), client_ctx(pki, cert=cert, version="1.2"))
    assert echo.connections == 0
    assert refusal_reason(g, "mtls") == "client_certificate_is_ca"


def deep_chain(pki, tmp):
    """A client certificate two intermediates below the root: root (HSM) -> int1 -> int2 -> leaf, the
    intermediates' keys in files. Returns (chain file: leaf, int2, int1; leaf key)."""
    def req(name, subj):
        run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(tmp / f"{name}.key"), "-out", str(tmp / f"{name}.csr"), "-subj", subj])
    req("int1", "/CN=deep int1/O=hsmgate tests")
    t = pki.token
    t.pki("client", "--ca-key", t.uri("root"), "--ca-cert", str(pki.root), "--csr", str(tmp / "int1.csr"),
          "--ca", "--path-len", "3", "--eku", "none", "--out", str(tmp / "int1.pem"))
    ca_ext, leaf_ext = tmp / "ca.ext", tmp / "leaf.ext"
    ca_ext.write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                      "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    leaf_ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                        "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    req("int2", "/CN=deep int2/O=hsmgate tests")
    run(["openssl", "x509", "-req", "-in", str(tmp / "int2.csr"), "-CA", str(tmp / "int1.pem"), "-CAkey",
         str(tmp / "int1.key"), "-CAcreateserial", "-days", "30", "-extfile", str(ca_ext), "-out", str(tmp / "int2.pem")])
    req("leaf", "/CN=deep leaf/O=hsmgate tests")
    run(["openssl", "x509", "-req", "-in", str(tmp / "leaf.csr"), "-CA", str(tmp / "int2.pem"), "-CAkey",
         str(tmp / "int2.key"), "-CAcreateserial", "-days", "30", "-extfile", str(leaf_ext), "-out", str(tmp / "leaf.pem")])
    chain = tmp / "chain.pem"
    chain.write_text((tmp / "leaf.pem").read_text() + (tmp / "int2.pem").read_text() + (tmp / "int1.pem").read_text())
    return chain, tmp / "leaf.key"


def test_two_way_chain_too_deep(pki, gateway, echo, tmp_path):
    """A chain deeper than the listener allows is refused (chain_too_long); the same chain within the
    limit is admitted."""
    chain = deep_chain(pki, tmp_path)
    g = gateway([listener(pki, "shallow", echo.port, auth="two-way", verify_depth=2),
                 listener(pki, "deep", echo.port, auth="two-way", verify_depth=4)])
    refused(g.port("shallow"), client_ctx(pki, cert=chain, version="1.3"))
    assert refusal_reason(g, "shallow") == "chain_too_long"
    assert roundtrip(g.port("deep"), client_ctx(pki, cert=chain, version="1.3"))[0] == b"hello hsmgate\n"


def test_optional_records_both(pki, gateway, echo):
    g = gateway([listener(pki, "opt", echo.port, auth="optional")])
    assert roundtrip(g.port("opt"), client_ctx(pki))[0] == b"hello hsmgate\n"
    assert roundtrip(g.port("opt"), client_ctx(pki, cert=pki.client("good")))[0] == b"hello hsmgate\n"
    recs = [r for r in g.access_lines() if r["listener"] == "opt"]
    deadline = time.time() + 10
    while len(recs) < 2 and time.time() < deadline:
        time.sleep(0.05)
        recs = [r for r in g.access_lines() if r["listener"] == "opt"]
    assert sorted(r["client_cert"] for r in recs) == [False, True]
    assert all(r["result"] == "ok" for r in recs)
    # optional still refuses a bad certificate
    refused(g.port("opt"), client_ctx(pki, cert=pki.foreign_client(), version="1.2"))


@pytest.mark.parametrize("name,spec", [("ec384", "ec:P-384"), ("rsa3072", "rsa:3072"), ("rsa4096", "rsa:4096")])
def test_more_server_key_types(pki, gateway, echo, name, spec):
    pki.server(name, spec)
    g = gateway([listener(pki, name, echo.port, server=name)])
    for version in ("1.2", "1.3"):
        got, ver, _ = roundtrip(g.port(name), client_ctx(pki, version=version))
        assert got == b"hello hsmgate\n" and ver == f"TLSv{version}"


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_rsa2048_server_key(pki, gateway, echo, version):
    g = gateway([listener(pki, "rsa", echo.port, auth="two-way", server="rsa2048")])
    got, _, cipher = roundtrip(g.port("rsa"), client_ctx(pki, cert=pki.client("good"), version=version))
    assert got == b"hello hsmgate\n"
    if version == "1.2":
        assert "RSA" in cipher[0]


def test_openssl_s_client_sees_hsm_chain(pki, gateway, echo):
    g = gateway([listener(pki, "pub", echo.port)])
    # stdin stays open a moment after "ping", so the echo comes back before s_client closes
    cmd = (f"(echo ping; sleep 2) | openssl s_client -connect 127.0.0.1:{g.port('pub')} -servername localhost "
           f"-CAfile {pki.root} -verify_return_error -brief")
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert "Verification: OK" in out, out
    assert "ping" in out


def test_garbage_on_tls_port(pki, gateway, echo):
    g = gateway([listener(pki, "pub", echo.port)])
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256)) * 8, b"\x16\x03\x01\xff\xff" + b"A" * 100):
        with socket.create_connection(("127.0.0.1", g.port("pub")), timeout=10) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
    assert echo.connections == 0
    assert roundtrip(g.port("pub"), client_ctx(pki))[0] == b"hello hsmgate\n"
    reasons = [r["reason"] for r in g.access_lines() if r["result"] == "handshake_failed"]
    assert len(reasons) >= 3, reasons


def test_backend_refused(pki, gateway):
    dead = free_port()
    g = gateway([listener(pki, "pub", dead)])
    with socket.create_connection(("127.0.0.1", g.port("pub")), timeout=10) as raw:
        with client_ctx(pki).wrap_socket(raw, server_hostname="localhost") as s:
            try:
                s.sendall(b"x")
                data = s.recv(10)
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                data = b""
            assert data == b""
    rec = g.wait_access(lambda r: r["result"] == "backend_unreachable")
    assert rec["reason"] and "refused" in rec["reason"].lower()
    assert "backend 127.0.0.1:%d" % dead in g.log()


def test_curl_through_tcp_listener(pki, gateway, tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("served behind hsmgate\n")
    port = free_port()
    web = subprocess.Popen(["/usr/bin/python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                           cwd=tmp_path / "www", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        g = gateway([listener(pki, "web", port, auth="two-way")])
        crt, key = pki.client("good")
        r = run(["curl", "-sS", "--cacert", str(pki.root), "--cert", str(crt), "--key", str(key),
                 f"https://localhost:{g.port('web')}/index.html"])
        assert r.stdout == b"served behind hsmgate\n"
        r = run(["curl", "-sS", "--cacert", str(pki.root), f"https://localhost:{g.port('web')}/index.html"], check=False)
        assert r.returncode != 0
    finally:
        web.terminate()
        web.wait()


def exchange(s, payload, sent, got, timeout=120):
    """Sends payload[sent:] on the non-blocking TLS socket s while reading what comes back into got,
    until all of payload is back (or timeout). Returns how much was sent in all."""
    import select
    deadline = time.time() + timeout
    while len(got) < len(payload) and time.time() < deadline:
        want_w = [s] if sent < len(payload) else []
        _, w, _ = select.select([s], want_w, [], 1.0)
        if w:
            try:
                sent += s.send(payload[sent:sent + 65536])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        while True:
            try:
                chunk = s.recv(1 << 16)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            if not chunk:
                break
            got.extend(chunk)
    return sent


def test_large_transfer_both_ways(pki, gateway, echo):
    """Back-pressure: 8 MiB through the echo, written and read in one non-blocking loop."""
    g = gateway([listener(pki, "pub", echo.port)])
    payload = bytes((i * 7) & 0xFF for i in range(8 * 1024 * 1024))
    got = bytearray()
    sent = 0
    with socket.create_connection(("127.0.0.1", g.port("pub")), timeout=30) as raw:
        with client_ctx(pki).wrap_socket(raw, server_hostname="localhost") as s:
            s.setblocking(False)
            sent = exchange(s, payload, sent, got)
    assert bytes(got) == payload


def test_stalled_reader_keeps_pending_bytes_across_sweeps(pki, gateway, echo):
    """A tcp connection holds no proxy buffer while idle: bytes still pending when the client stops
    reading move into a buffer of the connection's own, which the periodic sweep (every 250 ms) must
    keep while it holds bytes and give back once drained; the connection then works as before."""
    import select
    g = gateway([listener(pki, "pub", echo.port)])
    payload = bytes((i * 13 + 5) & 0xFF for i in range(4 * 1024 * 1024))
    with socket.create_connection(("127.0.0.1", g.port("pub")), timeout=30) as raw:
        with client_ctx(pki).wrap_socket(raw, server_hostname="localhost") as s:
            s.setblocking(False)
            sent = 0
            # Write without reading until nothing more goes: every buffer on the way fills up.
            idle_rounds = 0
            while sent < len(payload) and idle_rounds < 3:
                _, w, _ = select.select([], [s], [], 0.5)
                if not w:
                    idle_rounds += 1
                    continue
                try:
                    sent += s.send(payload[sent:sent + 65536])
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    idle_rounds += 1
            assert sent > 0
            time.sleep(1.0)  # several sweeps while the gateway holds pending bytes
            got = bytearray()
            sent = exchange(s, payload, sent, got)
            assert bytes(got) == payload
            time.sleep(0.6)  # drained and idle: the sweep frees the buffers; the next bytes borrow again
            s.setblocking(True)
            s.sendall(b"after the sweep")
            back = b""
            while len(back) < len(b"after the sweep"):
                back += s.recv(64)
            assert back == b"after the sweep"


def test_tls12_renegotiation_refused(pki, gateway, echo):
    """A client-initiated TLS 1.2 renegotiation gets an alert, never a second handshake."""
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")])
    crt, key = pki.client("good")
    cmd = (f"(echo hello; sleep 1; echo R; sleep 2; echo after) | openssl s_client -connect 127.0.0.1:{g.port('mtls')} "
           f"-tls1_2 -CAfile {pki.root} -cert {crt} -key {key} -servername localhost")
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert "hello" in out and "RENEGOTIATING" in out, out
    assert "alert" in out.lower(), out
    assert "\nafter" not in out, out  # nothing flows after the refused renegotiation
    assert g.proc.poll() is None
