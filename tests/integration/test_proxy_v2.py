"""PROXY protocol v2 from tcp listeners to their backends (`proxy_protocol: v2`).

The backend (tests/integration/pp2.py) parses the header strictly, from the specification, and answers
with what it found as JSON; every field is checked against what the client knows of its own
connection, and against openssl's view of the client certificate.
"""
import base64
import json
import shutil
import socket
import subprocess
import time

import pytest

from conftest import client_ctx, free_port, listener, run
from pp2 import Pp2Backend


@pytest.fixture
def pp2():
    b = Pp2Backend()
    yield b
    b.close()


def through(port, ctx, payload=b"ping after the header\n", host="127.0.0.1", session=None):
    """Connects and sends payload at once (before anything comes back), then returns the backend's
    parsed header, the echo, and what the client saw of the TLS connection."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    raw = socket.socket(fam, socket.SOCK_STREAM)
    raw.settimeout(10)
    raw.connect((host, port))
    with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
        s.sendall(payload)
        buf = b""
        while buf.count(b"\n") < 2:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        line, _, echo = buf.partition(b"\n")
        seen = dict(local=s.getsockname()[:2], version=s.version(), cipher=s.cipher()[0], session=s.session,
                    reused=s.session_reused)
    parsed = json.loads(line)
    assert "error" not in parsed, parsed["error"]
    return parsed, echo, seen


def openssl_fields(cert):
    """Signature and public key algorithm as `openssl x509 -text` names them, and the DER."""
    text = run(["openssl", "x509", "-in", str(cert), "-noout", "-text"]).stdout.decode()
    sig = next(l.split(":", 1)[1].strip() for l in text.splitlines() if "Signature Algorithm:" in l)
    key = next(l.split(":", 1)[1].strip() for l in text.splitlines() if "Public Key Algorithm:" in l)
    der = run(["openssl", "x509", "-in", str(cert), "-outform", "DER"]).stdout
    return sig, key, der


def check_header_common(h, g, name, seen):
    assert h["version"] == 2 and h["command"] == "PROXY"
    assert h["family"] == "TCP4"
    assert h["src"] == ["127.0.0.1", seen["local"][1]]
    assert h["dst"] == ["127.0.0.1", g.port(name)]
    assert h["unknown_tlvs"] == []
    ssl_tlv = h["ssl"]
    assert ssl_tlv["verify"] == 0
    assert ssl_tlv["version"] == seen["version"]
    assert ssl_tlv["cipher"] == seen["cipher"]
    return ssl_tlv


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_two_way_every_field(pki, gateway, pp2, version):
    g = gateway([listener(pki, "mtls", pp2.port, auth="two-way", proxy_protocol="v2", proxy_protocol_cert="true")])
    cert = pki.client("pp2", subject="/CN=pp2 client/O=hsmgate tests")
    h, echo, seen = through(g.port("mtls"), client_ctx(pki, cert=cert, version=version))
    assert echo == b"ping after the header\n"    # the client's bytes came after the header, whole
    assert seen["version"] == f"TLSv{version}"
    s = check_header_common(h, g, "mtls", seen)
    assert h["tlv_types"] == [0x20, 0xE0]
    assert s["client"] == 0x07                   # PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS
    assert s["subtypes"] == [0x21, 0x22, 0x23, 0x24, 0x25]
    assert s["cn"] == "pp2 client"
    sig, key, der = openssl_fields(cert[0])
    assert (s["sig_alg"], s["key_alg"]) == (sig, key) == ("ecdsa-with-SHA256", "id-ecPublicKey")
    assert base64.b64decode(h["cert_der_b64"]) == der
    rec = g.wait_access(lambda r: r["listener"] == "mtls" and r["result"] == "ok")
    assert rec["bytes_in"] == len(b"ping after the header\n")   # the header is not client data


def test_rsa_client_key(pki, gateway, pp2, tmp_path):
    """Key algorithm of an RSA client certificate (signed by the EC root: ecdsa-with-SHA256)."""
    key, csr, crt = tmp_path / "rsa.key", tmp_path / "rsa.csr", tmp_path / "rsa.crt"
    run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", "/CN=rsa client/O=hsmgate tests"])
    t = pki.token
    t.pki("client", "--ca-key", t.uri("root"), "--ca-cert", str(pki.root), "--csr", str(csr), "--out", str(crt))
    g = gateway([listener(pki, "mtls", pp2.port, auth="two-way", proxy_protocol="v2", proxy_protocol_cert="true")])
    h, _, seen = through(g.port("mtls"), client_ctx(pki, cert=(crt, key)))
    s = check_header_common(h, g, "mtls", seen)
    sig, key_alg, der = openssl_fields(crt)
    assert s["key_alg"] == key_alg == "rsaEncryption"
    assert s["sig_alg"] == sig
    assert s["cn"] == "rsa client"
    assert base64.b64decode(h["cert_der_b64"]) == der


def test_one_way_no_certificate(pki, gateway, pp2):
    g = gateway([listener(pki, "pub", pp2.port, proxy_protocol="v2", proxy_protocol_cert="true")])
    h, echo, seen = through(g.port("pub"), client_ctx(pki))
    assert echo == b"ping after the header\n"
    s = check_header_common(h, g, "pub", seen)
    assert h["tlv_types"] == [0x20]              # no certificate, so no 0xE0 either
    assert s["client"] == 0x01
    assert s["subtypes"] == [0x21, 0x23]
    assert "cn" not in s and "sig_alg" not in s and "key_alg" not in s


def test_optional_with_and_without_certificate(pki, gateway, pp2):
    g = gateway([listener(pki, "opt", pp2.port, auth="optional", proxy_protocol="v2")])
    h, _, seen = through(g.port("opt"), client_ctx(pki))
    assert check_header_common(h, g, "opt", seen)["client"] == 0x01
    h, _, seen = through(g.port("opt"), client_ctx(pki, cert=pki.client("good")))
    s = check_header_common(h, g, "opt", seen)
    assert s["client"] == 0x07 and s["cn"] == "client-good"
    assert h["tlv_types"] == [0x20]              # proxy_protocol_cert is off: no certificate TLV


def test_resumed_session(pki, gateway, pp2):
    """TLS 1.2 resumption: the certificate came with the session, not this connection."""
    g = gateway([listener(pki, "mtls", pp2.port, auth="two-way", proxy_protocol="v2", proxy_protocol_cert="true")])
    ctx = client_ctx(pki, cert=pki.client("good"), version="1.2")
    h1, _, seen1 = through(g.port("mtls"), ctx)
    assert h1["ssl"]["client"] == 0x07 and not seen1["reused"]
    h2, _, seen2 = through(g.port("mtls"), ctx, session=seen1["session"])
    if not seen2["reused"]:
        pytest.skip("the gateway did not resume the session")
    s = check_header_common(h2, g, "mtls", seen2)
    assert s["client"] == 0x05                   # PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS
    assert s["cn"] == "client-good"
    assert h2.get("cert_der_b64") == h1["cert_der_b64"]


def test_ipv6_listener(pki, gateway, pp2):
    g = gateway([listener(pki, "v6", pp2.port, proxy_protocol="v2")], start=False)
    port = g.port("v6")
    g.config.write_text(g.config.read_text().replace(f"bind: 127.0.0.1:{port}", f"bind: \"[::1]:{port}\""))
    g.start()
    h, echo, seen = through(port, client_ctx(pki), host="::1")
    assert echo == b"ping after the header\n"
    assert h["family"] == "TCP6"
    assert h["src"] == ["::1", seen["local"][1]]
    assert h["dst"] == ["::1", port]


def test_large_client_certificate(pki, gateway, pp2, tmp_path):
    """A client certificate larger than the connection's 16 KiB buffer still goes whole in TLV 0xE0.
    (About 17 KB, within wolfSSL's limits: a certificate message of at most 18,462 bytes,
    MAX_CERTIFICATE_SZ, and at most 128 subject alternative names, WOLFSSL_MAX_ALT_NAMES.)"""
    d = tmp_path / "bigca"
    d.mkdir()
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-subj", "/CN=big root", "-days", "30",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(d / "c.key"), "-out", str(d / "c.csr"), "-subj", "/CN=big client"])
    sans = ",".join(f"DNS:h{i:03d}.{'a' * 60}.{'b' * 60}.example.com" for i in range(120))
    (d / "ext.cnf").write_text(f"extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\nsubjectAltName={sans}\n")
    run(["openssl", "x509", "-req", "-in", str(d / "c.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
         "-CAcreateserial", "-days", "30", "-extfile", str(d / "ext.cnf"), "-out", str(d / "c.crt")])
    _, _, der = openssl_fields(d / "c.crt")
    assert 16384 < len(der) < 18000
    g = gateway([listener(pki, "big", pp2.port, auth="two-way", client_ca=d / "ca.pem", proxy_protocol="v2",
                          proxy_protocol_cert="true")])
    h, echo, seen = through(g.port("big"), client_ctx(pki, cert=(d / "c.crt", d / "c.key")))
    assert echo == b"ping after the header\n"
    assert base64.b64decode(h["cert_der_b64"]) == der
    assert h["header_len"] > len(der) and check_header_common(h, g, "big", seen)["cn"] == "big client"


def test_no_header_without_the_setting(pki, gateway, pp2):
    """Without proxy_protocol the backend's first bytes are the client's: the strict parser says so."""
    g = gateway([listener(pki, "plain", pp2.port)])
    with socket.create_connection(("127.0.0.1", g.port("plain")), timeout=10) as raw:
        with client_ctx(pki).wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"0123456789abcdefghij")
            line = s.recv(65536)
    assert "not a PROXY v2 signature" in json.loads(line)["error"]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (Debian package haproxy)")
def test_haproxy_accept_proxy(pki, gateway, tmp_path):
    """Another implementation takes the header: HAProxy with accept-proxy answers with the addresses
    it read from it (HAProxy 2.6 checks the header's structure and TLV lengths)."""
    hport = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n"
        f"frontend fe\n  bind 127.0.0.1:{hport} accept-proxy\n"
        "  http-request return status 200 content-type text/plain "
        "lf-string \"src=%[src]:%[src_port] dst=%[dst]:%[dst_port]\\n\"\n")
    hap = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", hport), timeout=1).close()
                break
            except OSError:
                assert hap.poll() is None and time.time() < deadline, hap.stdout.read().decode(errors="replace")
                time.sleep(0.05)
        g = gateway([listener(pki, "mtls", hport, auth="two-way", proxy_protocol="v2", proxy_protocol_cert="true")])
        ctx = client_ctx(pki, cert=pki.client("good"))
        with socket.create_connection(("127.0.0.1", g.port("mtls")), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                resp = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    resp += chunk
                local = s.getsockname()[1]
        assert resp.startswith(b"HTTP/1.0 200") or resp.startswith(b"HTTP/1.1 200"), resp
        assert f"src=127.0.0.1:{local} dst=127.0.0.1:{g.port('mtls')}".encode() in resp, resp
    finally:
        hap.terminate()
        hap.wait(10)
