"""The admin API over mutual TLS (admin: tls:): the gateway's own https listener "admin-tls" terminates
TLS with its key in the HSM, checks the admin's certificate (chain, revocation) and forwards to the
API's private socket; the API takes the caller's role from the certificate ("cert-sha256:" lines of
the tokens file) and records the certificate's subject as who made a change."""
import hashlib
import http.client
import json
import signal
import socket
import ssl
import stat
import subprocess
import time

import pytest

from conftest import BIN, free_port, listener, client_ctx
from test_admin import Api, handshake, make_token, write_tokens

WAIT = 10


def fingerprint(crt):
    der = ssl.PEM_cert_to_DER_cert(open(crt).read())
    return hashlib.sha256(der).hexdigest()


class TlsApi:
    """HTTPS requests to the admin TLS front with a client certificate (or none)."""

    def __init__(self, pki, port):
        self.pki, self.port = pki, port

    def call(self, method, path, cert=None, body=None, headers=None):
        ctx = client_ctx(self.pki, cert=cert)
        conn = http.client.HTTPSConnection("localhost", self.port, context=ctx, timeout=WAIT)
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()


@pytest.fixture
def tls_gw(pki, gateway, echo, tmp_path):
    """A gateway with a two-way data listener, a store, and the admin API on TCP (bearer tokens) and
    over mutual TLS, where alice is an operator and rita a reader by certificate."""
    alice, rita = pki.client("adm-alice"), pki.client("adm-rita")
    tok, line = make_token("root-admin", "admin")
    tf = write_tokens(tmp_path / "admin.tokens", line, f"alice operator cert-sha256:{fingerprint(alice[0])}",
                      f"rita reader cert-sha256:{fingerprint(rita[0])}")
    uri, cert = pki.servers["ec256"]
    aport, tport = free_port(), free_port()
    rundir = tmp_path / "run"
    rundir.mkdir()
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")], start=False,
                policy_store=f'"{tmp_path / "policy.db"}"',
                admin=f'{{ bind: "127.0.0.1:{aport}", tokens_file: "{tf}", tls: {{ bind: "127.0.0.1:{tport}", '
                      f'certificate: "{cert}", key: "{uri}", client_ca: "{pki.root}" }} }}')
    g.extra_env["TMPDIR"] = str(rundir)
    g.start()
    g.wait_log("admin API on 127.0.0.1:%d" % aport)
    return g, Api(aport), TlsApi(pki, tport), tok, dict(alice=alice, rita=rita), rundir


def test_roles_from_certificates(pki, tls_gw):
    g, api, tapi, tok, certs, _ = tls_gw
    victim = pki.client("adm-tls-victim")
    # unauthenticated routes answer over the front too
    st, _, body = tapi.call("GET", "/v1/health", certs["rita"])
    assert st == 200 and json.loads(body)["status"] == "ok", body
    # the front is listed as a listener of its own
    names = [l["name"] for l in api.json("GET", "/v1/listeners", tok)["listeners"]]
    assert "admin-tls" in names and "mtls" in names, names
    # a reader reads, and may not write
    st, _, body = tapi.call("GET", "/v1/revocations", certs["rita"])
    assert st == 200, body
    st, _, body = tapi.call("POST", "/v1/revocations", certs["rita"], {"certificate": open(victim[0]).read()})
    assert st == 403 and b"operator" in body, body
    # an operator writes; the audit says which certificate did it, from where
    st, _, body = tapi.call("POST", "/v1/revocations", certs["alice"],
                            {"certificate": open(victim[0]).read(), "reason": "keyCompromise"},
                            headers={"X-Request-Id": "tls-revoke-1"})
    assert st == 201, body
    audit = api.json("GET", "/v1/audit", tok)["items"]
    mine = [a for a in audit if a.get("request_id") == "tls-revoke-1"]
    assert len(mine) == 1, audit
    assert mine[0]["actor"] == "cert:O=hsmgate tests,CN=client-adm-alice (alice)", mine
    assert mine[0]["source"] == "tls:127.0.0.1", mine
    items = api.json("GET", "/v1/revocations", tok)["items"]
    assert [i["actor"] for i in items] == ["cert:O=hsmgate tests,CN=client-adm-alice (alice)"], items
    # and it is enforced like any other change
    assert not handshake(g.port("mtls"), client_ctx(pki, cert=victim))
    assert api.json("GET", "/v1/audit/verify", tok)["intact"] is True


def test_unknown_certificate_and_forged_headers(pki, tls_gw):
    g, api, tapi, tok, certs, _ = tls_gw
    mallory = pki.client("adm-mallory")
    fp_alice = fingerprint(certs["alice"][0])
    # a certificate the CA issued but the tokens file does not name: 403, and the log says the line to add
    st, _, body = tapi.call("GET", "/v1/revocations", mallory)
    assert st == 403 and b"no role" in body, body
    g.wait_log("cert-sha256:" + fingerprint(mallory[0]))
    # claiming to be alice in the identity headers changes nothing: the gateway replaces them
    forged = {"X-Client-Cert-Fingerprint-SHA256": fp_alice, "X-Client-Verify": "SUCCESS",
              "X-Client-Cert-Subject": "CN=adm-alice,O=hsmgate tests", "X-Forwarded-For": "10.9.9.9"}
    st, _, body = tapi.call("POST", "/v1/revocations", mallory, {"serial": "0A", "issuer": "CN=x"}, headers=forged)
    assert st == 403 and b"no role" in body, body
    # a bearer token does not stand in for a certificate on the front
    st, _, body = tapi.call("GET", "/v1/revocations", mallory, headers={"Authorization": f"Bearer {tok}"})
    assert st == 403, body
    # and the headers mean nothing on the plain API: a bearer token is required there
    st, _, body = api.call("GET", "/v1/revocations", headers=forged)
    assert st == 401, body
    # no client certificate: no handshake at all
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        tapi.call("GET", "/v1/revocations", None)
    # a certificate from a CA the front does not trust: no handshake either
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        tapi.call("GET", "/v1/revocations", pki.foreign_client())


def test_private_socket_is_the_gateways_own(pki, tls_gw):
    """Another local process that finds the API's private socket gets nothing from it."""
    g, api, tapi, tok, certs, rundir = tls_gw
    dirs = [d for d in rundir.iterdir() if d.name.startswith("hsmgate-admin.")]
    assert len(dirs) == 1, list(rundir.iterdir())
    assert stat.S_IMODE(dirs[0].stat().st_mode) == 0o700
    sock_path = dirs[0] / "api.sock"
    req = ("GET /v1/revocations HTTP/1.1\r\nHost: x\r\nX-Client-Verify: SUCCESS\r\n"
           f"X-Client-Cert-Fingerprint-SHA256: {fingerprint(certs['alice'][0])}\r\nConnection: close\r\n\r\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(WAIT)
        s.connect(str(sock_path))
        s.sendall(req.encode())
        resp = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            resp += chunk
    assert resp.startswith(b"HTTP/1.1 403"), resp
    g.wait_log("refused a connection to the TLS front's socket from another process")
    # the directory goes with the gateway
    assert g.stop() == 0
    assert not dirs[0].exists()


def test_revoked_admin_certificate_is_shut_out(pki, tls_gw):
    """The front's listener has the default policy over its client CA: revoking an admin's certificate
    refuses their next handshake, as on any two-way listener."""
    g, api, tapi, tok, certs, _ = tls_gw
    st, _, _ = tapi.call("GET", "/v1/revocations", certs["alice"])
    assert st == 200
    st, _, body = api.call("POST", "/v1/revocations", tok, {"certificate": open(certs["alice"][0]).read()})
    assert st == 201, body
    deadline = time.time() + WAIT
    while time.time() < deadline:
        try:
            tapi.call("GET", "/v1/revocations", certs["alice"])
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            break
        time.sleep(0.02)
    else:
        raise AssertionError("a revoked admin certificate still gets through the TLS front")
    st, _, _ = tapi.call("GET", "/v1/revocations", certs["rita"])
    assert st == 200


def test_reload_keeps_the_front_and_tokens(pki, tls_gw, tmp_path):
    """SIGHUP reloads the tokens file: a certificate given a role gets in without a restart."""
    g, api, tapi, tok, certs, _ = tls_gw
    newbie = pki.client("adm-newbie")
    assert tapi.call("GET", "/v1/revocations", newbie)[0] == 403
    tf = tmp_path / "admin.tokens"
    tf.write_text(tf.read_text() + f"newbie reader cert-sha256:{fingerprint(newbie[0])}\n")
    g.signal(signal.SIGHUP)
    g.wait_log("admin: tokens reloaded")
    assert tapi.call("GET", "/v1/revocations", newbie)[0] == 200
    assert tapi.call("GET", "/v1/revocations", certs["rita"])[0] == 200


def test_reload_cannot_add_a_front(pki, gateway, echo, tmp_path):
    """A front added by a reload would have no API behind it: the reload is refused, saying why."""
    tok, line = make_token("a", "admin")
    tf = write_tokens(tmp_path / "admin.tokens", line)
    aport, tport = free_port(), free_port()
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")],
                admin=f'{{ bind: "127.0.0.1:{aport}", tokens_file: "{tf}" }}')
    uri, cert = pki.servers["ec256"]
    text = g.config.read_text().replace(
        f'tokens_file: "{tf}" }}',
        f'tokens_file: "{tf}", tls: {{ bind: "127.0.0.1:{tport}", certificate: "{cert}", key: "{uri}", '
        f'client_ca: "{pki.root}" }} }}')
    g.config.write_text(text)
    g.signal(signal.SIGHUP)
    g.wait_log("restart it to add one")
    assert "reload refused" in g.log()
    assert handshake(g.port("mtls"), client_ctx(pki, cert=pki.client("adm-alice")))


def check_fails(pki, cfg, text, message):
    """`hsmgate check` on text refuses it, saying message; returns its stderr."""
    cfg.write_text(text)
    r = subprocess.run([BIN, "check", "-c", str(cfg)], capture_output=True, env=pki.token.env)
    err = r.stderr.decode()
    assert r.returncode != 0 and message in err, err
    return err


@pytest.mark.parametrize("extra,message", [
    ("backends: [\"127.0.0.1:1\"]", "backends is not a setting of the admin API's TLS front"),
    ("auth: one-way", "auth is not a setting of the admin API's TLS front"),
    ("identity_headers: { subject: X-S }", "identity_headers is not a setting"),
])
def test_front_settings_that_are_not_the_operators(pki, tmp_path, extra, message):
    uri, cert = pki.servers["ec256"]
    cfg = tmp_path / "c.yaml"
    err = check_fails(pki, cfg, f"admin:\n  tls:\n    bind: 127.0.0.1:1\n    certificate: \"{cert}\"\n    key: \"{uri}\"\n"
                      f"    client_ca: \"{pki.root}\"\n    {extra}\n"
                      f"listeners:\n  - {{ name: a, bind: \"127.0.0.1:2\", certificate: \"{cert}\", key: \"{uri}\", "
                      f"backends: [\"127.0.0.1:3\"] }}\n", message)
    assert f"{cfg}:7:" in err, err


@pytest.mark.parametrize("admin,message", [
    ('{ tls: { bind: "127.0.0.1:4", certificate: "C", key: "K" } }', "admin: tls: client_ca (or policy) is required"),
    ('{ tls: { bind: "127.0.0.1:2", certificate: "C", key: "K", client_ca: "R" } }', "is already used by listener \"a\""),
    ('{ bind: "127.0.0.1:4", tls: { bind: "127.0.0.1:4", certificate: "C", key: "K", client_ca: "R" } }',
     "clashes with the admin API's own bind"),
    ('{ tls: [1] }', "admin: tls must be a mapping"),
])
def test_front_config_errors(pki, tmp_path, admin, message):
    uri, cert = pki.servers["ec256"]
    check_fails(pki, tmp_path / "c.yaml", f"admin: {admin}\nlisteners:\n  - {{ name: a, bind: \"127.0.0.1:2\", "
                f"certificate: \"{cert}\", key: \"{uri}\", backends: [\"127.0.0.1:3\"] }}\n", message)


def test_listener_named_like_the_front(pki, tmp_path):
    uri, cert = pki.servers["ec256"]
    check_fails(pki, tmp_path / "c.yaml", f"admin:\n  tls: {{ bind: \"127.0.0.1:1\", certificate: \"{cert}\", key: \"{uri}\", "
                f"client_ca: \"{pki.root}\" }}\n"
                f"listeners:\n  - {{ name: admin-tls, bind: \"127.0.0.1:2\", certificate: \"{cert}\", key: \"{uri}\", "
                f"backends: [\"127.0.0.1:3\"] }}\n", "is the admin API's TLS front's")
