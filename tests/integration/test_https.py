"""https listeners: HTTP/1.1 through the gateway with the client's identity in request headers.

Requests through (keep-alive, pipelining, bodies both ways, streaming), the identity headers checked
against openssl's own view of the certificate, forged identity headers stripped, every malformed or
smuggling request answered 400/413/431 with the backend never seeing it, 502 and 504, ALPN, curl, and
one access-log line per request. The backend (https_backend.py) records every byte it receives.
"""
import base64
import datetime
import hashlib
import http.client
import json
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import client_ctx, free_port, listener, run
from https_backend import HttpBackend


@pytest.fixture
def backend():
    made = []

    def make(mode="echo"):
        b = HttpBackend(mode)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def https_listener(pki, name, port, auth="optional", **kw):
    return listener(pki, name, port, auth=auth, type="https", **kw)


def conn(g, name, ctx, timeout=20):
    return http.client.HTTPSConnection("localhost", g.port(name), context=ctx, timeout=timeout)


def get_json(c, method="GET", path="/", body=None, headers=None):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    assert r.status == 200, (r.status, data)
    return json.loads(data)


def header_values(info, name):
    return [v for n, v in info["headers"] if n.lower() == name.lower()]


def tls_socket(g, name, ctx, timeout=20):
    raw = socket.create_connection(("127.0.0.1", g.port(name)), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def read_all(s):
    """Everything until the gateway closes (or resets) the connection."""
    got = b""
    while True:
        try:
            data = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            return got
        if not data:
            return got
        got += data


class Responses:
    """Reads HTTP/1.1 responses one after the other from a socket (Content-Length or chunked bodies)."""

    def __init__(self, s):
        self.s, self.buf = s, b""

    def _fill(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def next(self, head_only=False):
        head = self._until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = b""
        if head_only or status in (204, 304) or 100 <= status < 200:
            pass
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                n = int(self._until(b"\r\n")[:-2].split(b";")[0], 16)
                if n == 0:
                    self._until(b"\r\n")
                    break
                body += self._exact(n)
                self._exact(2)
        else:
            body = self._exact(int(headers.get("content-length", "0")))
        return status, headers, body


# ---- requests through ----

def test_get_post_keep_alive(pki, gateway, backend):
    b = backend()
    g = gateway([https_listener(pki, "api", b.port)])
    c = conn(g, "api", client_ctx(pki))
    info = get_json(c, path="/first?x=1")
    assert info["method"] == "GET" and info["target"] == "/first?x=1" and info["framing"] == "none"
    body = b"some form data " * 100
    info = get_json(c, "POST", "/submit", body=body, headers={"Content-Type": "text/plain"})
    assert info["method"] == "POST" and info["framing"] == "length" and info["body_len"] == len(body)
    assert info["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert header_values(info, "Content-Type") == ["text/plain"]
    for i in range(5):
        assert get_json(c, path=f"/again/{i}")["target"] == f"/again/{i}"
    c.close()
    assert b.connections == 1  # seven requests, one client connection, one backend connection
    # HEAD: a head without a body, and the connection goes on.
    c = conn(g, "api", client_ctx(pki))
    c.request("HEAD", "/big/1000")
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Length") == "1000" and r.read() == b""
    assert get_json(c, path="/after-head")["target"] == "/after-head"
    c.close()


def test_pipelining_in_order(pki, gateway, backend):
    b = backend()
    g = gateway([https_listener(pki, "api", b.port)])
    reqs = (b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n"
            b"POST /two HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /three HTTP/1.1\r\nHost: localhost\r\n\r\n")
    with tls_socket(g, "api", client_ctx(pki)) as s:
        s.sendall(reqs)  # all three at once, in one TLS record
        rd = Responses(s)
        seen = []
        for _ in range(3):
            status, _, body = rd.next()
            assert status == 200
            seen.append(json.loads(body))
    assert [i["target"] for i in seen] == ["/one", "/two", "/three"]
    assert seen[1]["body_len"] == 5
    assert b.connections == 1


def test_chunked_request_body_streamed(pki, gateway, backend):
    """A 6 MiB chunked body reaches the backend intact; its first part is there before the client
    has sent the rest (the gateway forwards as it goes, never holding a whole body)."""
    b = backend()
    g = gateway([https_listener(pki, "api", b.port)])
    piece = bytes(range(256)) * 1024  # 256 KiB
    first, rest = piece * 2, piece * 22
    with tls_socket(g, "api", client_ctx(pki), timeout=60) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
        s.sendall(b"%x\r\n%s\r\n" % (len(first), first))
        deadline = time.time() + 30
        while len(b.raw_bytes()) < len(first) and time.time() < deadline:
            time.sleep(0.05)
        assert len(b.raw_bytes()) >= len(first), "the first half did not reach the backend on its own"
        assert b.requests == []  # ... while the request is still incomplete
        for i in range(0, len(rest), len(piece)):
            s.sendall(b"%x;ext=1\r\n%s\r\n" % (len(piece), rest[i:i + len(piece)]))
        s.sendall(b"0\r\nX-Trailer: dropped\r\n\r\n")
        status, _, body = Responses(s).next()
    assert status == 200
    info = json.loads(body)
    assert info["framing"] == "chunked"
    assert info["body_len"] == len(first) + len(rest)
    assert info["body_sha256"] == hashlib.sha256(first + rest).hexdigest()
    assert b"X-Trailer" not in b.raw_bytes()


def test_large_responses_streamed(pki, gateway, backend):
    b = backend()
    g = gateway([https_listener(pki, "api", b.port)])
    c = conn(g, "api", client_ctx(pki), timeout=60)
    expect = (bytes(range(256)) * 256 * 400)[:20 * 1024 * 1024 + 7]
    for path in (f"/big/{len(expect)}", f"/chunked-big/{len(expect)}"):
        c.request("GET", path)
        r = c.getresponse()
        data = r.read()
        assert r.status == 200 and len(data) == len(expect)
        assert hashlib.sha256(data).digest() == hashlib.sha256(expect).digest()
    c.close()


def test_expect_100_continue_and_backend_close(pki, gateway, backend):
    b = backend()
    g = gateway([https_listener(pki, "api", b.port)])
    with tls_socket(g, "api", client_ctx(pki)) as s:
        s.sendall(b"POST /e HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        rd = Responses(s)
        assert rd.next()[0] == 100  # the interim response is relayed, then the final one follows
        s.sendall(b"data")
        status, _, body = rd.next()
        assert status == 200 and json.loads(body)["body_len"] == 4
        # The backend ends its connection after this one: so does the gateway.
        s.sendall(b"GET /close HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, headers, _ = rd.next()
        assert status == 200 and headers["connection"] == "close"
        assert read_all(s) == rd.buf == b""


# ---- identity ----

def openssl_view(crt):
    """What openssl says of a certificate: the values the identity headers must carry."""
    def x509(*args):
        return run(["openssl", "x509", "-in", str(crt), "-noout", *args]).stdout.decode().strip()
    der = run(["openssl", "x509", "-in", str(crt), "-outform", "DER"]).stdout
    fp = x509("-fingerprint", "-sha256").split("=", 1)[1].replace(":", "").lower()
    serial = x509("-serial").split("=", 1)[1].upper()
    subject = x509("-subject", "-nameopt", "RFC2253").split("=", 1)[1]
    issuer = x509("-issuer", "-nameopt", "RFC2253").split("=", 1)[1]
    end = x509("-enddate").split("=", 1)[1]
    not_after = datetime.datetime.strptime(end, "%b %d %H:%M:%S %Y %Z").strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"der": der, "fp": fp, "serial": serial, "subject": subject, "issuer": issuer, "not_after": not_after}


IDENTITY = ["Client-Cert", "Client-Cert-Chain", "X-Client-Cert-Subject", "X-Client-Cert-Issuer",
            "X-Client-Cert-Serial", "X-Client-Cert-Fingerprint-SHA256", "X-Client-Cert-Not-After",
            "X-Client-Verify", "X-Forwarded-For", "X-Forwarded-Proto"]


def check_identity(info, view):
    one = {}
    for name in IDENTITY:
        vals = header_values(info, name)
        assert len(vals) <= 1, (name, vals)
        one[name] = vals[0] if vals else None
    if view is None:
        assert one["X-Client-Verify"] == "NONE"
        for name in IDENTITY[:7]:
            assert one[name] is None, name
    else:
        assert one["X-Client-Verify"] == "SUCCESS"
        assert one["Client-Cert"] == ":" + base64.b64encode(view["der"]).decode() + ":"  # RFC 9440
        assert one["X-Client-Cert-Fingerprint-SHA256"] == view["fp"]
        assert one["X-Client-Cert-Serial"].lstrip("0") == view["serial"].lstrip("0")
        assert one["X-Client-Cert-Subject"] == view["subject"]
        assert one["X-Client-Cert-Issuer"] == view["issuer"]
        assert one["X-Client-Cert-Not-After"] == view["not_after"]
    assert one["X-Forwarded-For"] == "127.0.0.1"
    assert one["X-Forwarded-Proto"] == "https"


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_identity_two_way(pki, gateway, backend, version):
    b = backend()
    g = gateway([https_listener(pki, "api", b.port, auth="two-way")])
    crt, key = pki.client("good")
    view = openssl_view(crt)
    ctx = client_ctx(pki, cert=(crt, key), version=version)
    c = conn(g, "api", ctx)
    for i in range(2):  # every request of the connection carries it
        check_identity(get_json(c, path=f"/{i}"), view)
    session = c.sock.session
    c.close()
    # A resumed session (no certificate in its handshake) still knows its client.
    raw = socket.create_connection(("127.0.0.1", g.port("api")), timeout=20)
    with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
        s.sendall(b"GET /resumed HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, _, body = Responses(s).next()
        assert s.session_reused
    assert status == 200
    check_identity(json.loads(body), view)


def test_verify_none_without_certificate(pki, gateway, backend):
    b = backend()
    g = gateway([https_listener(pki, "api", b.port, auth="optional"),
                 https_listener(pki, "pub", b.port, auth="one-way")])
    check_identity(get_json(conn(g, "api", client_ctx(pki))), None)
    check_identity(get_json(conn(g, "pub", client_ctx(pki))), None)
    crt, key = pki.client("good")
    check_identity(get_json(conn(g, "api", client_ctx(pki, cert=(crt, key)))), openssl_view(crt))


FORGED = [
    ("Client-Cert", ":AAAA:"), ("client-cert", ":QUFB:"), ("CLIENT-CERT-CHAIN", ":AAAA:"),
    ("X-Client-Cert-Subject", "CN=admin,O=Example Bank"), ("x-client-cert-subject", "CN=root"),
    ("X_Client_Cert_Subject", "CN=underscore"), ("X-Client-Cert-Issuer", "CN=forged CA"),
    ("X-Client-Cert-Serial", "01"), ("X-Client-Cert-Fingerprint-SHA256", "00" * 32),
    ("X-Client-Cert-Not-After", "2999-01-01T00:00:00Z"), ("X-Client-Certificate", "x"),
    ("X-Client-Verify", "SUCCESS"), ("x-client-verify", "SUCCESS"), ("X-SSL-Client-Verify", "0"),
    ("X-SSL-Client-DN", "CN=admin"), ("X-Forwarded-Client-Cert", "By=x;Hash=y;Subject=\"CN=admin\""),
    ("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-Proto", "http"), ("X-Forwarded-Host", "internal"),
    ("Forwarded", "for=10.0.0.1;proto=https"), ("X-Real-IP", "10.0.0.1"),
]


def forged_request(path="/"):
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", "X-Kept: yes"] + [f"{n}: {v}" for n, v in FORGED]
    lines += ["X-Client-Verify: SUCCESS"]  # repeated
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def forged_exchange(g, name, ctx):
    with tls_socket(g, name, ctx) as s:
        s.sendall(forged_request())
        status, _, body = Responses(s).next()
    assert status == 200
    return json.loads(body)


def test_forged_identity_headers_stripped(pki, gateway, backend):
    b = backend()
    g = gateway([https_listener(pki, "api", b.port, auth="optional")])
    # No certificate: none of the forged values survive, and the gateway says NONE.
    info = forged_exchange(g, "api", client_ctx(pki))
    check_identity(info, None)
    assert header_values(info, "X-Kept") == ["yes"]
    names = [n.lower() for n, _ in info["headers"]]
    for bad in ("x_client_cert_subject", "x-client-certificate", "x-ssl-client-verify", "x-ssl-client-dn",
                "x-forwarded-client-cert", "x-forwarded-host", "forwarded", "x-real-ip", "client-cert-chain"):
        assert bad not in names, bad
    assert "CN=admin" not in json.dumps(info) and "10.0.0.1" not in json.dumps(info)
    # Another client's certificate: its own identity, never the forged one.
    crt, key = pki.client("other", subject="/CN=other client/O=hsmgate tests")
    info = forged_exchange(g, "api", client_ctx(pki, cert=(crt, key)))
    check_identity(info, openssl_view(crt))
    assert "CN=admin" not in json.dumps(info) and "10.0.0.1" not in json.dumps(info)
    assert b.errors == []


def test_strip_headers(pki, gateway, backend):
    b = backend()
    g = gateway([https_listener(pki, "api", b.port, strip_headers="[X-Internal-User, X-Debug-Auth]")])
    info = get_json(conn(g, "api", client_ctx(pki)), headers={
        "x-internal-user": "admin", "X-DEBUG-AUTH": "1", "X_Internal_User": "admin", "X-Other": "kept"})
    names = [n.lower() for n, _ in info["headers"]]
    assert "x-internal-user" not in names and "x-debug-auth" not in names and "x_internal_user" not in names
    assert header_values(info, "X-Other") == ["kept"]


def test_identity_odd_subject_and_chain(pki, gateway, backend, tmp_path):
    """A subject holding CR, LF, commas and UTF-8 never breaks a header line; Client-Cert-Chain carries
    the intermediate the client sent (RFC 9440 2.3)."""
    d = tmp_path
    def ossl(*a):
        run(["openssl", *a])
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(d / "r.key"),
         "-out", str(d / "r.pem"), "-subj", "/CN=chain root", "-days", "30",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(d / "i.key"),
         "-out", str(d / "i.csr"), "-subj", "/CN=chain intermediate")
    (d / "ca.cnf").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n")
    ossl("x509", "-req", "-in", str(d / "i.csr"), "-CA", str(d / "r.pem"), "-CAkey", str(d / "r.key"),
         "-CAcreateserial", "-days", "30", "-extfile", str(d / "ca.cnf"), "-out", str(d / "i.pem"))
    ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(d / "c.key"),
         "-out", str(d / "c.csr"), "-utf8", "-subj", "/CN=evil\r\nX-Injected: 1/O=a\\,b\\+c \u00e9t\u00e9")
    (d / "leaf.cnf").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    ossl("x509", "-req", "-in", str(d / "c.csr"), "-CA", str(d / "i.pem"), "-CAkey", str(d / "i.key"),
         "-CAcreateserial", "-days", "30", "-extfile", str(d / "leaf.cnf"), "-out", str(d / "c.pem"))
    (d / "chain.pem").write_text((d / "c.pem").read_text() + (d / "i.pem").read_text())
    b = backend()
    g = gateway([https_listener(pki, "api", b.port, auth="two-way", client_ca=d / "r.pem",
                                identity_headers="{ client_cert_chain: Client-Cert-Chain }")])
    info = get_json(conn(g, "api", client_ctx(pki, cert=(d / "chain.pem", d / "c.key"))))
    assert b.errors == []
    assert header_values(info, "X-Injected") == []
    subject = header_values(info, "X-Client-Cert-Subject")
    assert len(subject) == 1 and "\r" not in subject[0] and "\n" not in subject[0]
    assert "\\0D\\0A" in subject[0] and "a\\,b\\+c \\C3\\A9t\\C3\\A9" in subject[0], subject
    assert all(0x20 <= ord(ch) < 0x7f for ch in subject[0])
    inter_der = run(["openssl", "x509", "-in", str(d / "i.pem"), "-outform", "DER"]).stdout
    assert header_values(info, "Client-Cert-Chain") == [":" + base64.b64encode(inter_der).decode() + ":"]
    assert header_values(info, "X-Client-Verify") == ["SUCCESS"]


# ---- malformed requests and smuggling ----

H = b"Host: localhost\r\n"
BAD = [
    # name, request, status
    ("http09", b"GET /\r\n\r\n", 400),
    ("http20", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 400),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    ("two-spaces", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("extra-token", b"GET / HTTP/1.1 x\r\n" + H + b"\r\n", 400),
    ("bad-method", b"G@T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-ctl", b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-utf8", b"GET /\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("no-host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400),
    ("bare-lf", b"GET / HTTP/1.1\n" + b"Host: localhost\n\n", 400),
    ("bare-cr", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400),
    ("name-space", b"GET / HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n", 400),
    ("name-bad-char", b"GET / HTTP/1.1\r\n" + H + b"X(A): b\r\n\r\n", 400),
    ("value-ctl", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x0bb\r\n\r\n", 400),
    ("value-nul", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    ("connect", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 400),
    ("cl-te", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", 400),
    ("te-cl", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n1\r\nA\r\n0\r\n\r\n", 400),
    ("te-te-two", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n", 400),
    ("te-te-list", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    ("te-gzip-chunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-xchunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    ("te-space-name", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-vtab", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n", 400),
    ("te-underscore", b"POST / HTTP/1.1\r\n" + H + b"Transfer_Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-identity", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n", 400),
    ("te-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("cl-two-differ", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("cl-list", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 4\r\n\r\nabcd", 400),
    ("cl-sign", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc", 400),
    ("cl-huge", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999\r\n\r\n", 413),
    ("connection-lists-cl", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nConnection: Content-Length\r\n\r\nabc", 400),
    ("chunk-size-bad", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-ext-lf", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3;a\nb\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-no-crlf", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n", 400),
    ("chunk-size-space", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400),
    ("too-many-headers", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(20)) + b"\r\n", 431),
    ("header-too-large", b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 3000 + b"\r\n\r\n", 431),
]


@pytest.fixture(scope="module")
def strict_gw(request, pki, tmp_path_factory):
    """One gateway for every malformed case (small limits: max_headers 10, max_header_bytes 2048)."""
    from conftest import Gateway
    b = HttpBackend()
    g = Gateway(tmp_path_factory.mktemp("strict"), pki.token)
    g.write_config([https_listener(pki, "api", b.port, max_headers=10, max_header_bytes=2048)])
    g.start()
    yield g, b
    g.stop()
    print(f"---- gateway log ({g.errlog}) ----\n{g.log()}")
    b.close()


@pytest.mark.parametrize("name,req,status", BAD, ids=[x[0] for x in BAD])
def test_malformed_refused(pki, strict_gw, name, req, status):
    g, b = strict_gw
    before = len(b.requests)
    raw_before = len(b.raw_bytes())
    with tls_socket(g, "api", client_ctx(pki)) as s:
        port = s.getsockname()[1]
        s.sendall(req)
        got = read_all(s)  # the gateway answers and closes
    head = got.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    assert head.startswith(f"HTTP/1.1 {status} "), got
    assert "\r\nConnection: close" in head, got
    assert len(b.requests) == before, b.requests[before:]  # the backend never got a request
    if b"chunked\r\n\r\n" in req and status == 400 and name.startswith("chunk"):
        pass  # the head went ahead of its body; the backend holds half a request, then loses it
    else:
        assert len(b.raw_bytes()) == raw_before, "the backend saw bytes of a refused head"
    rec = g.wait_access(lambda r: r.get("status") == status and r["peer"] == f"127.0.0.1:{port}")
    assert rec["result"] == "rejected" and rec["reason"]


def test_refusal_reaches_a_client_still_sending(pki, strict_gw):
    """The gateway answers 413 at the head while the client goes on sending its (huge) body and reads
    only later: the answer is still there for it (the gateway sends close_notify and FIN, then reads and
    drops for a moment rather than closing on unread bytes, which makes a reset)."""
    import select
    g, b = strict_gw
    got = b""
    with tls_socket(g, "api", client_ctx(pki)) as s:
        s.sendall(b"POST /big HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999\r\n\r\n")
        s.setblocking(False)
        sent = 0
        while sent < (2 << 20):  # 2 MiB more, without reading anything
            _, w, _ = select.select([], [s], [], 2.0)
            if not w:
                break
            try:
                sent += s.send(b"x" * 16384)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                continue
            except OSError:
                break
        time.sleep(0.3)  # the gateway has answered and closed by now; the client reads only now
        s.setblocking(True)
        s.settimeout(10)
        try:
            while b"\r\n\r\n" not in got:
                data = s.recv(65536)
                if not data:
                    break
                got += data
        except (OSError, ssl.SSLError) as e:
            got += repr(e).encode()
    assert got.startswith(b"HTTP/1.1 413 "), got


class EarlyAnswerBackend:
    """Answers 403 as soon as a request head is in, and closes without reading the body: the close
    resets the connection while the gateway is still sending that body (as libmicrohttpd does when it
    refuses a request at its head)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                head = b""
                while b"\r\n\r\n" not in head:
                    d = c.recv(4096)
                    if not d:
                        break
                    head += d
                c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnope\n")

    def close(self):
        self.stop = True
        self.sock.close()


def test_backend_answering_before_the_body_is_relayed(pki, gateway):
    """A backend that refuses a large request at its head and closes: the gateway's next write to it
    fails, and its answer (already in the gateway's receive queue) still reaches the client instead of
    a 502 (found with the admin API's TLS front: libmicrohttpd answers 403 before reading a body)."""
    b = EarlyAnswerBackend()
    try:
        g = gateway([https_listener(pki, "api", b.port)])
        for attempt in range(20):
            c = conn(g, "api", client_ctx(pki))
            body = b"x" * (4 << 20)
            try:
                c.request("POST", "/upload", body=body, headers={"Content-Type": "application/octet-stream"})
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # the gateway closed after answering; the answer is still to be read
            r = c.getresponse()
            assert (r.status, r.read()) == (403, b"nope\n"), attempt
            c.close()
        recs = g.wait_access(lambda x: x.get("path") == "/upload")
        assert recs["status"] == 403, recs
        assert all(x.get("status") != 502 for x in g.access_lines()), g.access_lines()
    finally:
        b.close()


def test_smuggled_after_good_request(pki, strict_gw):
    """CL.TE after a good request on the same connection: the first is answered, the second refused,
    and the backend saw the first only."""
    g, b = strict_gw
    before = len(b.requests)
    with tls_socket(g, "api", client_ctx(pki)) as s:
        s.sendall(b"GET /fine HTTP/1.1\r\n" + H + b"\r\n"
                  b"POST /smuggle HTTP/1.1\r\n" + H + b"Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        rd = Responses(s)
        status, _, body = rd.next()
        assert status == 200 and json.loads(body)["target"] == "/fine"
        status, headers, _ = rd.next()
        assert status == 400 and headers["connection"] == "close"
        assert read_all(s) == rd.buf == b""
    assert [r["target"] for r in b.requests[before:]] == ["/fine"]
    assert b"/admin" not in b.raw_bytes() and b"/smuggle" not in b.raw_bytes()


# ---- backend failures ----

def test_502_when_no_backend(pki, gateway):
    dead = free_port()
    g = gateway([https_listener(pki, "api", dead)])
    c = conn(g, "api", client_ctx(pki))
    c.request("GET", "/nobody")
    r = c.getresponse()
    body = r.read()
    assert r.status == 502 and r.getheader("Connection") == "close"
    assert b"bad gateway" in body
    rec = g.wait_access(lambda x: x.get("status") == 502)
    assert rec["result"] == "backend_unreachable" and rec["path"] == "/nobody"
    assert rec["backend"] == f"127.0.0.1:{dead}" and rec["upstream_ms"] is None


def test_504_when_backend_silent(pki, gateway, backend):
    b = backend("silent")
    g = gateway([https_listener(pki, "api", b.port, backend_timeout="1s")])
    c = conn(g, "api", client_ctx(pki), timeout=30)
    c.request("GET", "/hang")
    r = c.getresponse()
    assert r.status == 504 and r.getheader("Connection") == "close"
    r.read()
    rec = g.wait_access(lambda x: x.get("status") == 504)
    assert rec["result"] == "backend_timeout" and rec["path"] == "/hang"
    assert b"GET /hang HTTP/1.1" in b.raw_bytes()  # it was forwarded, and never answered


# ---- clients ----

def test_alpn_http11(pki, gateway, backend):
    b = backend()
    g = gateway([https_listener(pki, "api", b.port)])
    ctx = client_ctx(pki)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with tls_socket(g, "api", ctx) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        s.sendall(b"GET /alpn HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert Responses(s).next()[0] == 200
    ctx = client_ctx(pki)
    ctx.set_alpn_protocols(["h2"])
    with tls_socket(g, "api", ctx) as s:  # no common protocol: the handshake goes on without ALPN
        assert s.selected_alpn_protocol() is None


def test_curl_demo_style(pki, gateway, backend):
    b = backend()
    g = gateway([https_listener(pki, "api", b.port, auth="two-way")])
    crt, key = pki.client("good")
    r = run(["curl", "-sS", "-w", "\n%{http_version}", "--cert", str(crt), "--key", str(key), "--cacert", str(pki.root),
             f"https://localhost:{g.port('api')}/"])
    body, version = r.stdout.rsplit(b"\n", 1)
    assert version == b"1.1"
    check_identity(json.loads(body), openssl_view(crt))
    r = run(["curl", "-sS", "--cacert", str(pki.root), f"https://localhost:{g.port('api')}/"], check=False)
    assert r.returncode != 0  # two-way: no certificate, no request


def test_access_log_per_request(pki, gateway, backend):
    b = backend()
    g = gateway([https_listener(pki, "api", b.port, auth="optional")])
    crt, key = pki.client("good")
    c = conn(g, "api", client_ctx(pki, cert=(crt, key)))
    get_json(c, path="/a")
    get_json(c, "POST", "/b", body=b"12345")
    c.request("GET", "/status/404")
    assert c.getresponse().read() == b""
    c.close()
    lines = []
    deadline = time.time() + 10
    while len(lines) < 3 and time.time() < deadline:
        lines = [r for r in g.access_lines() if r["listener"] == "api"]
        time.sleep(0.05)
    assert [(r["method"], r["path"], r["status"]) for r in lines] == [("GET", "/a", 200), ("POST", "/b", 200),
                                                                     ("GET", "/status/404", 404)]
    fp = openssl_view(crt)["fp"]
    for r in lines:
        assert r["backend"] == f"127.0.0.1:{b.port}" and r["result"] == "ok"
        assert isinstance(r["upstream_ms"], int) and r["upstream_ms"] >= 0
        assert r["client_cert"] is True and r["client_fingerprint_sha256"] == fp
        for field in ("time", "peer", "tls_version", "cipher", "resumed", "client_subject", "client_issuer",
                      "client_serial", "reason", "bytes_in", "bytes_out", "duration_ms"):
            assert field in r, field
    assert lines[1]["bytes_in"] > 5


def test_drain_closes_idle_keep_alive(pki, gateway, backend):
    """SIGTERM: a keep-alive connection between two requests is closed at once, rather than holding the
    gateway until drain_timeout."""
    import signal
    b = backend()
    g = gateway([https_listener(pki, "api", b.port)], drain_timeout="120s")
    with tls_socket(g, "api", client_ctx(pki), timeout=60) as s:
        s.sendall(b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n")
        rd = Responses(s)
        assert rd.next()[0] == 200
        g.signal(signal.SIGTERM)
        assert read_all(s) == rd.buf == b""  # closed by the gateway, cleanly
    assert g.proc.wait(60) == 0
    rec = g.wait_access(lambda r: r.get("path") == "/one")
    assert rec["status"] == 200


def test_idle_connection_and_handshake_failure_logged_once(pki, gateway, backend):
    b = backend()
    g = gateway([https_listener(pki, "api", b.port, auth="two-way")])
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with tls_socket(g, "api", client_ctx(pki)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            s.recv(100)
    rec = g.wait_access(lambda r: r["result"] == "handshake_failed")
    assert rec["reason"] == "no_client_certificate" and "status" not in rec
