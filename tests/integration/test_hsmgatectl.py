"""hsmgatectl, the admin API's command-line client, against the real gateway: status, a revocation that
refuses the next handshake, a hold lifted, allowlist entries added, listed and removed on a policy
listener, CRL imports, live connections, certificate issuance (or the clear "no such route"), and the
failures an operator meets: a bad token (1), a server that is not there (3), usage errors (2), a token
file others can read (2). The token travels from a file: it is never on the command line."""
import json
import os
import pathlib
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import BIN, free_port, listener, run, client_ctx
from test_admin import admin_gw, handshake, make_token, wait_refused, WAIT, write_tokens  # noqa: F401 (admin_gw: a fixture)
from test_policies import OpenSslCa

CTL = os.environ.get("HSMGATE_CTL") or str(pathlib.Path(BIN).parent / "hsmgatectl")


@pytest.fixture(autouse=True)
def _ctl_built():
    if not pathlib.Path(CTL).exists():
        pytest.fail(f"{CTL} is missing: run `make all` first")


def ctl(*args, port=None, token_file=None, input=None, env_extra=None, timeout=60):
    """Runs hsmgatectl with a clean environment (no HSMGATE_* from the caller); returns CompletedProcess
    with text stdout/stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSMGATE_")}
    env.update(env_extra or {})
    cmd = [CTL]
    if port is not None:
        cmd += ["--url", f"http://127.0.0.1:{port}"]
    if token_file is not None:
        cmd += ["--token-file", str(token_file)]
    cmd += [str(a) for a in args]
    r = subprocess.run(cmd, env=env, input=input, capture_output=True, timeout=timeout)
    r.out, r.err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    return r


def token_file(tmp_path, name, token, mode=0o600):
    f = tmp_path / f"{name}.token"
    f.write_text(token + "\n")
    os.chmod(f, mode)
    return f


@pytest.fixture
def ctl_gw(admin_gw, tmp_path):
    """admin_gw, its API port, and a token file per role."""
    g, api, tokens, store, tf = admin_gw
    port = int(api.base.rsplit(":", 1)[1])
    files = {role: token_file(tmp_path, role, tok) for role, tok in tokens.items()}
    return g, api, port, files, tokens


def test_status(ctl_gw):
    """status: health without a token, and the listeners with a reader's; --json gives both documents."""
    g, api, port, files, _ = ctl_gw
    r = ctl("status", port=port, token_file=files["reader"])
    assert r.returncode == 0, r.err
    assert re.search(r"^gateway +ok \(running\)$", r.out, re.M), r.out
    assert re.search(r"^store +ok: generation \d+", r.out, re.M), r.out
    row = next(l for l in r.out.splitlines() if l.startswith("mtls "))
    assert "two-way" in row and f"127.0.0.1:{g.port('mtls')}" in row, r.out
    r = ctl("status", "--json", port=port, token_file=files["reader"])
    doc = json.loads(r.out)
    assert doc["health"]["status"] == "ok" and doc["listeners"]["listeners"][0]["name"] == "mtls", doc
    # no token: the health alone, and a word about the listeners
    r = ctl("status", port=port)
    assert r.returncode == 0 and "gateway    ok" in r.out and "listeners not shown" in r.err, (r.out, r.err)
    # the environment works as the options do
    r = ctl("status", env_extra={"HSMGATE_URL": f"http://127.0.0.1:{port}/", "HSMGATE_TOKEN_FILE": str(files["reader"])})
    assert r.returncode == 0 and "mtls" in r.out, r.err


def test_revoke_refuses_next_handshake(ctl_gw, pki):
    """revoke --cert: the next handshake of that client is refused; listed by revocations ls; the same
    again is the server's 409; a reader may not revoke (403); the audit trail has the request id and
    verifies. A certificateHold is lifted with revoke --lift and the client is admitted again."""
    g, api, port, files, tokens = ctl_gw
    crt, key = pki.client("ctl-victim")
    ctx = client_ctx(pki, cert=(crt, key))
    mtls = g.port("mtls")
    assert handshake(mtls, ctx)

    r = ctl("revoke", "--cert", crt, port=port, token_file=files["reader"])
    assert r.returncode == 1 and "403 Forbidden" in r.err and "request id" in r.err, r.err
    assert handshake(mtls, ctx)

    r = ctl("revoke", "--cert", crt, "--reason", "keyCompromise", "--comment", "INC-9", "--request-id", "ctl-revoke-1",
            port=port, token_file=files["operator"])
    assert r.returncode == 0, r.err
    assert r.out.startswith("revoked serial ") and "keyCompromise" in r.out and "generation" in r.out, r.out
    wait_refused(mtls, ctx)

    r = ctl("revoke", "--cert", crt, port=port, token_file=files["operator"])
    assert r.returncode == 1 and r.err.startswith("hsmgatectl: 409 Conflict: ") and "request id" in r.err, r.err

    r = ctl("revocations", "ls", port=port, token_file=files["reader"])
    assert r.returncode == 0 and r.out.splitlines()[0].split()[:3] == ["SERIAL", "REASON", "REVOKED_AT"], r.out
    assert "keyCompromise" in r.out and "INC-9" in r.out and "token:operator-1" in r.out, r.out
    items = json.loads(ctl("revocations", "ls", "--json", "--all", port=port, token_file=files["reader"]).out)["items"]
    assert [i["reason"] for i in items] == ["keyCompromise"], items

    r = ctl("audit", "ls", "--json", port=port, token_file=files["reader"])
    mine = [a for a in json.loads(r.out)["items"] if a["request_id"] == "ctl-revoke-1"]
    assert len(mine) == 1 and mine[0]["actor"] == "token:operator-1" and mine[0]["comment"] == "INC-9", r.out
    r = ctl("audit", "ls", port=port, token_file=files["reader"])
    assert r.returncode == 0 and "revoke" in r.out, r.out
    r = ctl("audit", "verify", port=port, token_file=files["reader"])
    assert r.returncode == 0 and r.out.startswith("audit trail intact: "), (r.out, r.err)

    # a hold, lifted; by issuer certificate and serial this time
    crt2, key2 = pki.client("ctl-held")
    ctx2 = client_ctx(pki, cert=(crt2, key2))
    serial = run(["openssl", "x509", "-in", str(crt2), "-noout", "-serial"]).stdout.decode().strip().split("=")[1]
    r = ctl("revoke", "--issuer-cert", pki.root, "--serial", serial, "--reason", "certificateHold",
            port=port, token_file=files["operator"])
    assert r.returncode == 0 and "certificateHold" in r.out, r.err
    wait_refused(mtls, ctx2)
    r = ctl("revoke", "--lift", "--cert", crt2, "--comment", "false alarm", port=port, token_file=files["operator"])
    assert r.returncode == 0 and r.out.startswith("lifted the hold on serial "), (r.out, r.err)
    deadline = time.time() + WAIT
    while not handshake(mtls, ctx2):
        assert time.time() < deadline, "still refused after the hold was lifted"
        time.sleep(0.01)


def test_allow_add_ls_rm(pki, gateway, echo, tmp_path):
    """On a listener whose policy requires an allowlist: refused, admitted after `allow add --cert`,
    listed by `allow ls`, refused again after `allow rm`; a bad match type is the server's 400 naming
    the field."""
    tok, line = make_token("ops", "operator")
    tf = write_tokens(tmp_path / "t.tokens", line)
    port = free_port()
    store = tmp_path / "policy.db"
    l = dict(listener(pki, "api", echo.port, auth="two-way"))
    l.pop("client_ca", None)
    l["policy"] = "partners"
    g = gateway([l], policy_store=f'"{store}"', admin=f'{{ bind: "127.0.0.1:{port}", tokens_file: "{tf}" }}',
                policies=f'{{ partners: {{ client_ca: ["{pki.root}"], require_allowlist: true }} }}')
    g.wait_log("admin API on 127.0.0.1:%d" % port)
    ops = token_file(tmp_path, "ops", tok)
    crt, key = pki.client("ctl-partner")
    ctx = client_ctx(pki, cert=(crt, key))
    assert not handshake(g.port("api"), ctx)

    r = ctl("allow", "ls", port=port, token_file=ops)
    assert r.returncode == 0 and r.out.startswith("no allowlists"), r.out
    # the certificate as DER: hsmgatectl wraps it in PEM
    der = tmp_path / "partner.der"
    run(["openssl", "x509", "-in", str(crt), "-outform", "DER", "-out", str(der)])
    r = ctl("allow", "add", "partners", "--match", "spki", "--cert", der, "--comment", "onboarding",
            port=port, token_file=ops)
    assert r.returncode == 0, r.err
    m = re.match(r"added entry (\d+) to partners: spki ([0-9a-f]{64}) \(generation \d+\)$", r.out.strip())
    assert m, r.out
    entry = m.group(1)
    deadline = time.time() + WAIT
    while not handshake(g.port("api"), ctx):
        assert time.time() < deadline, "not admitted after allow add"
        time.sleep(0.01)
    r = ctl("allow", "add", "partners", "--match", "cn", "--value", "client-7", "--expires", "+30d", port=port,
            token_file=ops)
    assert r.returncode == 0 and "cn client-7, expires 20" in r.out, r.out

    r = ctl("allow", "ls", port=port, token_file=ops)
    assert r.returncode == 0 and re.search(r"^partners +2 +0$", r.out, re.M), r.out
    r = ctl("allow", "ls", "partners", port=port, token_file=ops)
    assert r.returncode == 0 and m.group(2) in r.out and "onboarding" in r.out and "client-7" in r.out, r.out
    r = ctl("allow", "ls", "partners", "--limit", "1", port=port, token_file=ops)
    assert r.returncode == 0 and len(r.out.splitlines()) == 2 and "--after" in r.err, (r.out, r.err)
    r = ctl("allow", "ls", "partners", "--limit", "1", "--all", "--json", port=port, token_file=ops)
    assert [e["match"] for e in json.loads(r.out)["items"]] == ["spki", "cn"], r.out

    r = ctl("allow", "add", "partners", "--match", "colour", "--value", "x", port=port, token_file=ops)
    assert r.returncode == 1 and r.err.startswith("hsmgatectl: 400 Bad Request: ") and "(field match" in r.err, r.err
    r = ctl("allow", "rm", "partners", "999", port=port, token_file=ops)
    assert r.returncode == 1 and "404" in r.err and "field id" in r.err, r.err

    r = ctl("allow", "rm", "partners", entry, "--comment", "offboarding", port=port, token_file=ops)
    assert r.returncode == 0 and r.out.startswith(f"removed entry {entry} from partners: spki "), (r.out, r.err)
    wait_refused(g.port("api"), ctx)


def test_crl_import_ls_rm(ctl_gw, tmp_path):
    """crl import with the CA (first time), the same CRL again (unchanged), a newer one as DER without the
    CA (the kept one verifies it), crl ls, crl rm; a rollback is the server's 422 with its code."""
    g, api, port, files, _ = ctl_gw
    ca = OpenSslCa(tmp_path / "partner-ca")
    victim = ca.client("ctl-crl-victim")
    crl1 = ca.crl(1)
    r = ctl("crl", "import", "partner", "--ca", ca.pem, crl1, "--comment", "first", port=port, token_file=files["operator"])
    assert r.returncode == 0 and r.out.startswith("imported CRL partner (id "), (r.out, r.err)
    r = ctl("crl", "import", "partner", crl1, port=port, token_file=files["operator"])
    assert r.returncode == 0 and "unchanged" in r.out, (r.out, r.err)
    der = tmp_path / "crl2.der"
    run(["openssl", "crl", "-in", str(ca.crl(2, revoked=[victim])), "-outform", "DER", "-out", str(der)])
    r = ctl("crl", "import", "partner", der, port=port, token_file=files["operator"])
    assert r.returncode == 0 and r.out.startswith("replaced CRL partner") and ", 1 entries" in r.out, (r.out, r.err)
    r = ctl("crl", "import", "partner", crl1, port=port, token_file=files["operator"])
    assert r.returncode == 1 and "422" in r.err and "code crl_rollback" in r.err, r.err
    r = ctl("crl", "ls", port=port, token_file=files["reader"])
    assert r.returncode == 0 and re.search(r"^\d+ +partner +0?2 +1 ", r.out, re.M), r.out
    r = ctl("crl", "rm", "partner", port=port, token_file=files["operator"])
    assert r.returncode == 0 and r.out.startswith("removed CRL partner"), (r.out, r.err)
    assert ctl("crl", "ls", port=port, token_file=files["reader"]).out.startswith("no imported CRLs")


def test_conns_ls_kill(ctl_gw, pki):
    """conns ls lists a live client connection with its identity; conns kill closes it. A server without
    /v1/connections is said to have none, plainly (exit status 1)."""
    g, api, port, files, tokens = ctl_gw
    crt, key = pki.client("ctl-conns")
    s = client_ctx(pki, cert=(crt, key)).wrap_socket(socket.create_connection(("127.0.0.1", g.port("mtls")), timeout=WAIT),
                                                     server_hostname="localhost")
    try:
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        r = ctl("conns", "ls", "--listener", "mtls", port=port, token_file=files["reader"])
        if api.call("GET", "/v1/connections", tokens["reader"])[0] == 404:
            assert r.returncode == 1 and "this server has no /v1/connections" in r.err, r.err
            r = ctl("conns", "kill", "1", port=port, token_file=files["operator"])
            assert r.returncode == 1 and "this server has no /v1/connections/{id}" in r.err, r.err
            return
        assert r.returncode == 0, r.err
        me = "127.0.0.1:%d" % s.getsockname()[1]
        row = next((l for l in r.out.splitlines() if me in l), None)
        assert row is not None and "CN=client-ctl-conns" in row, r.out
        cid = row.split()[0]
        r = ctl("conns", "kill", cid, "--comment", "INC-8", port=port, token_file=files["reader"])
        assert r.returncode == 1 and "403 Forbidden" in r.err, r.err
        r = ctl("conns", "kill", cid, "--comment", "INC-8", port=port, token_file=files["operator"])
        assert r.returncode == 0 and re.match(rf"clos(ed|ing) connection {cid} \(listener mtls, peer {me}", r.out), r.out
        s.settimeout(WAIT)
        try:
            assert s.recv(1) == b""
        except (OSError,):
            pass
        r = ctl("conns", "kill", cid, port=port, token_file=files["operator"])
        assert r.returncode == 1 and "404" in r.err and "has no /v1" not in r.err, r.err
    finally:
        s.close()


def make_csr(tmp_path, cn):
    key, csr = tmp_path / f"{cn}.key", tmp_path / f"{cn}.csr"
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}/O=hsmgate tests"])
    return key, csr


def test_cert_issue(ctl_gw, pki, gateway, echo, tmp_path):
    """cert issue --csr (a DER CSR: sent wrapped in PEM) on a gateway whose admin API has a CA: the
    certificate written to --out chains to the root and opens a two-way handshake. A reader may not
    issue (403); a gateway without a CA says so (503)."""
    g, api, port, files, tokens = ctl_gw
    key, csr = make_csr(tmp_path, "ctl-issued")
    if api.call("POST", "/v1/certificates", tokens["admin"], {"csr": csr.read_text()})[0] == 404:
        pytest.skip("this gateway has no /v1/certificates (the route-missing answer is tested with a fake server)")
    r = ctl("cert", "issue", "--csr", csr, port=port, token_file=files["admin"])
    assert r.returncode == 1 and r.err.startswith("hsmgatectl: 503 Service Unavailable: "), r.err

    tok, line = make_token("ca-admin", "admin")
    rtok, rline = make_token("ca-reader", "reader")
    tf = write_tokens(tmp_path / "ca.tokens", line, rline)
    caport = free_port()
    admin = (f'{{ bind: "127.0.0.1:{caport}", tokens_file: "{tf}", ca_certificate: "{pki.root}", '
             f'ca_key: "{pki.token.uri("root")}" }}')
    cg = gateway([listener(pki, "ca-mtls", echo.port, auth="two-way")], policy_store=f'"{tmp_path / "ca.db"}"',
                 admin=admin)
    cg.wait_log("admin API on 127.0.0.1:%d" % caport)
    der = tmp_path / "ctl-issued.csr.der"
    run(["openssl", "req", "-in", str(csr), "-outform", "DER", "-out", str(der)])
    out = tmp_path / "ctl-issued.crt"
    r = ctl("cert", "issue", "--csr", der, "--out", out, port=caport, token_file=token_file(tmp_path, "rd", rtok))
    assert r.returncode == 1 and "403 Forbidden" in r.err and not out.exists(), r.err
    r = ctl("cert", "issue", "--csr", der, "--days", "10", "--comment", "INC-5", "--out", out, port=caport,
            token_file=token_file(tmp_path, "ad", tok))
    assert r.returncode == 0, r.err
    assert re.match(r"issued serial [0-9A-F]+ to .*CN=ctl-issued.*, valid until 20\S+Z: ", r.out), r.out
    assert out.read_text().startswith("-----BEGIN CERTIFICATE-----\n"), out.read_text()
    run(["openssl", "verify", "-CAfile", str(pki.root), str(out)])
    assert handshake(cg.port("ca-mtls"), client_ctx(pki, cert=(out, key)))
    # without --out: the certificate on stdout, the summary on stderr
    r = ctl("cert", "issue", "--csr", "-", port=caport, token_file=token_file(tmp_path, "ad2", tok),
            input=csr.read_bytes())
    assert r.returncode == 0 and r.out.startswith("-----BEGIN CERTIFICATE-----") and r.err.startswith("issued "), r.err


class FakeApi:
    """A one-connection HTTP server on 127.0.0.1 that records the request and answers with (status,
    body) once released; for what the real gateway cannot show (an older server without a route, a
    request in flight)."""

    def __init__(self, status=200, body=b'{"items":[],"next":null}', ctype="application/json", hold=False):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.request = None
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.answer = (status, body, ctype)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.srv.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length: *(\d+)", head)
            while m and len(rest) < int(m.group(1)):
                rest += conn.recv(65536)
            self.request = data.decode(errors="replace")
            self.release.wait(WAIT)
            status, body, ctype = self.answer
            conn.sendall(b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\nX-Request-Id: fake-1\r\n"
                         b"Connection: close\r\n\r\n%s" % (status, ctype.encode(), len(body), body))

    def close(self):
        self.release.set()
        self.thread.join(WAIT)
        self.srv.close()


ROUTER_404 = json.dumps({"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no such resource",
                         "instance": "urn:request:fake-1"}).encode()


@pytest.mark.parametrize("args,route", [
    (["cert", "issue", "--csr", "CSR"], "/v1/certificates"),
    (["conns", "ls"], "/v1/connections"),
    (["conns", "kill", "7"], "/v1/connections/{id}"),
])
def test_route_missing_said_plainly(tmp_path, args, route):
    """A server without a route (an older gateway) answers the router's 404: the command says that this
    server has no such route, with exit status 1."""
    _, csr = make_csr(tmp_path, "old")
    tf = token_file(tmp_path, "t", "some-token")
    fake = FakeApi(404, ROUTER_404, "application/problem+json")
    try:
        r = ctl(*[str(csr) if a == "CSR" else a for a in args], port=fake.port, token_file=tf)
    finally:
        fake.close()
    assert r.returncode == 1, r.err
    assert r.err.startswith(f"hsmgatectl: this server has no {route}") and "request id fake-1" in r.err, r.err


def test_errors_exit_status(ctl_gw, tmp_path):
    """A wrong token: 1 with the 401 problem; no token: 1 and a hint; nobody listening: 3; usage
    errors: 2; a token file others can read, or a token on the command line: 2, and the token is not
    printed."""
    g, api, port, files, tokens = ctl_gw
    bad = token_file(tmp_path, "bad", "not-the-right-token")
    r = ctl("allow", "ls", port=port, token_file=bad)
    assert r.returncode == 1, r.err
    assert re.match(r"hsmgatectl: 401 Unauthorized: .+ \(request id [0-9a-f]{32}\)$", r.err.strip()), r.err
    r = ctl("allow", "ls", "--json", port=port, token_file=bad)
    assert r.returncode == 1 and json.loads(r.out)["status"] == 401, r.out
    r = ctl("allow", "ls", port=port)
    assert r.returncode == 1 and "401" in r.err and "no token was sent" in r.err, r.err

    nobody = free_port()
    for args in (["status"], ["allow", "ls"], ["revocations", "ls"]):
        r = ctl(*args, port=nobody, token_file=files["reader"])
        assert r.returncode == 3 and "cannot reach the admin API" in r.err, (args, r.err)
    r = ctl("status", "--unix-socket", tmp_path / "no.sock")
    assert r.returncode == 3 and "Unix socket" in r.err, r.err

    for args in ([], ["frobnicate"], ["allow"], ["allow", "zap"], ["allow", "add", "partners"],
                 ["allow", "add", "partners", "--match", "cn"],
                 ["allow", "add", "partners", "--match", "cn", "--value", "a", "--cert", "x.pem"],
                 ["allow", "rm", "partners"], ["revoke"], ["revoke", "--serial", "01"],
                 ["revoke", "--lift", "--cert", "x", "--reason", "keyCompromise"],
                 ["revoke", "--cert", "x", "--cert", "y"], ["revoke", "--cert"], ["revoke", "--no-such-option"],
                 ["revoke", "--cert", tmp_path / "missing.pem"], ["crl", "import", "partner"],
                 ["status", "extra"], ["status", "--timeout", "soon"], ["status", "--url", "ftp://127.0.0.1/"],
                 ["status", "--request-id", "bad id"], ["cert", "issue"], ["conns", "kill"], ["status", "--json=1"]):
        r = ctl(*args, port=port, token_file=files["reader"])
        assert r.returncode == 2 and r.err.startswith("hsmgatectl: "), (args, r.returncode, r.err)
    assert ctl("--help").returncode == 0 and "Exit status" in ctl("--help").out
    r = ctl("allow", "add", "--help")
    assert r.returncode == 0 and r.out.startswith("usage: hsmgatectl allow add"), r.out

    # the token file: readable by others is refused, and never printed; nor is a token taken from argv
    loose = token_file(tmp_path, "loose", tokens["reader"], mode=0o644)
    r = ctl("allow", "ls", port=port, token_file=loose)
    assert r.returncode == 2 and "chmod 600" in r.err and tokens["reader"] not in r.err + r.out, r.err
    r = ctl("allow", "ls", "--token", tokens["reader"], port=port)
    assert r.returncode == 2 and "--token-file" in r.err and tokens["reader"] not in r.err + r.out, r.err
    junk = token_file(tmp_path, "junk", "two words")
    r = ctl("allow", "ls", port=port, token_file=junk)
    assert r.returncode == 2 and "does not hold a token" in r.err and "two words" not in r.err, r.err
    # group-readable (a team's group) is accepted, as the server accepts 640 for its own file
    team = token_file(tmp_path, "team", tokens["reader"], mode=0o640)
    assert ctl("allow", "ls", port=port, token_file=team).returncode == 0


def test_token_from_file_not_argv(tmp_path):
    """While a request is in flight, neither the command line nor the environment of hsmgatectl holds
    the token; the request carries it as a Bearer token, with the request id asked for."""
    secret = "Zm9vYmFyLXRoZS10b2tlbi0xMjM0NTY3ODkwYWJjZGVm"
    tf = token_file(tmp_path, "op", secret)
    fake = FakeApi(hold=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSMGATE_")}
    p = subprocess.Popen([CTL, "--url", f"http://127.0.0.1:{fake.port}", "--token-file", str(tf),
                          "--request-id", "ctl-42", "allow", "ls"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        deadline = time.time() + WAIT
        while fake.request is None:
            assert time.time() < deadline and p.poll() is None, p.communicate()
            time.sleep(0.01)
        cmdline = pathlib.Path(f"/proc/{p.pid}/cmdline").read_bytes()
        environ = pathlib.Path(f"/proc/{p.pid}/environ").read_bytes()
        assert str(tf).encode() in cmdline and secret.encode() not in cmdline, cmdline
        assert secret.encode() not in environ
        assert f"Authorization: Bearer {secret}\r\n" in fake.request, fake.request
        assert "X-Request-Id: ctl-42\r\n" in fake.request and fake.request.startswith("GET /v1/allowlists "), \
            fake.request
    finally:
        fake.close()
        out, err = p.communicate(timeout=WAIT)
    assert p.returncode == 0 and out.decode().startswith("no allowlists"), (out, err)


def test_unix_socket(pki, gateway, echo, tmp_path):
    """An API on a Unix socket only (bind: off): --unix-socket reaches it; the URL's host is not used."""
    tok, line = make_token("sock-reader", "reader")
    tf = write_tokens(tmp_path / "t.tokens", line)
    sock = tmp_path / "admin.sock"
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")],
                admin=f'{{ bind: "off", unix_socket: "{sock}", tokens_file: "{tf}" }}')
    g.wait_log("admin API on")
    reader = token_file(tmp_path, "reader", tok)
    r = ctl("--unix-socket", sock, "status", token_file=reader, env_extra={"HSMGATE_URL": "http://admin.invalid"})
    assert r.returncode == 0 and "mtls" in r.out and "store      none" in r.out, (r.out, r.err)
    r = ctl("revocations", "ls", "--unix-socket", sock, token_file=reader)
    assert r.returncode == 1 and "503" in r.err and "no policy store" in r.err, r.err
