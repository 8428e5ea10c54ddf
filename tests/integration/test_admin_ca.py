"""The admin API's certificate authority on the real gateway: the root whose key is in the SoftHSM token
issues a client certificate from an OpenSSL-made CSR (POST /v1/certificates, admin role only), the
certificate works for a two-way handshake, is listed and fetched, is revoked through /v1/revocations and
refused at the next handshake, and /crl (served without a token, signed in the HSM) lists it: checked with
`openssl crl -verify` against the root certificate. Bad requests are refused naming the field, and nothing
is recorded."""
import base64
import calendar
import json
import os
import re
import subprocess
import time

import pytest

from conftest import BIN, free_port, listener, run, client_ctx
from test_admin import Api, WAIT, handshake, wait_refused, role_tokens


@pytest.fixture
def ca_gw(pki, gateway, echo, tmp_path):
    """A gateway with a two-way listener trusting the root, a policy store, and the admin API whose CA is
    that root (its key in the token)."""
    tf, tokens = role_tokens(tmp_path)
    port = free_port()
    store = tmp_path / "policy.db"
    admin = (f'{{ bind: "127.0.0.1:{port}", tokens_file: "{tf}", ca_certificate: "{pki.root}", '
             f'ca_key: "{pki.token.uri("root")}", client_validity: 30d, crl_validity: 2d, '
             f'crl_url: "http://127.0.0.1:{port}/crl" }}')
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")], policy_store=f'"{store}"', admin=admin)
    g.wait_log("admin API on 127.0.0.1:%d" % port)
    g.crl_url = f"http://127.0.0.1:{port}/crl"
    return g, Api(port), tokens, tmp_path


def make_csr(tmp, name, subj, newkey=("ec", "-pkeyopt", "ec_paramgen_curve:P-256"), extra=()):
    key, csr = tmp / f"{name}.key", tmp / f"{name}.csr"
    run(["openssl", "req", "-new", "-newkey", *newkey, "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", subj, *extra])
    return key, csr.read_text()


def pem_body(pem):
    return base64.b64decode("".join(l for l in pem.splitlines() if l and not l.startswith("-----")))


def to_pem(der, label):
    b64 = base64.b64encode(der).decode()
    return f"-----BEGIN {label}-----\n" + "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)) + \
        f"\n-----END {label}-----\n"


def crl_number(text):
    """The CRL Number as openssl prints it: decimal, or 0x-prefixed hex when large."""
    m = re.search(r"X509v3 CRL Number:\s*\n\s*(\S+)", text)
    assert m, text
    v = m.group(1)
    return int(v, 16) if v.lower().startswith("0x") else int(v)


def fetch_crl(api, tmp, name):
    """GET /crl and /crl.pem without a token; both verify against the root; returns openssl's text."""
    status, headers, der = api.call("GET", "/crl")
    assert status == 200 and headers["Content-Type"] == "application/pkix-crl", (status, headers)
    status, headers, pem = api.call("GET", "/crl.pem")
    assert status == 200 and headers["Content-Type"] == "application/x-pem-file", (status, headers)
    assert pem.startswith(b"-----BEGIN X509 CRL-----\n") and pem_body(pem.decode()) == der
    path = tmp / f"{name}.der"
    path.write_bytes(der)
    return path


def test_issue_use_revoke_and_crl(ca_gw, pki):
    """Issue (admin only) -> a two-way handshake admitted -> listed and fetched -> revoked over the API ->
    the next handshake refused -> /crl lists the serial with its reason, verified against the root."""
    g, api, tokens, tmp = ca_gw
    key, csr = make_csr(tmp, "api-client", "/O=hsmgate tests/CN=api-client-1")
    body = {"csr": csr, "validity_days": 10, "comment": "ticket 7"}
    for role in ("reader", "operator"):
        status, _, raw = api.call("POST", "/v1/certificates", tokens[role], body)
        assert status == 403, (role, status, raw)
    assert api.call("POST", "/v1/certificates", None, body)[0] == 401

    status, headers, raw = api.call("POST", "/v1/certificates", tokens["admin"], body,
                                    headers={"X-Request-Id": "issue-1"})
    assert status == 201, raw
    issued = json.loads(raw)
    serial = issued["serial"]
    assert re.fullmatch(r"[0-7][0-9A-F]{31}", serial), issued
    assert headers["Location"] == f"/v1/certificates/{serial}"
    assert issued["subject"] == "CN=api-client-1,O=hsmgate tests", issued
    assert issued["certificate"].startswith("-----BEGIN CERTIFICATE-----\n")
    crt = tmp / "api-client.crt"
    crt.write_text(issued["certificate"])

    # The profile, read by OpenSSL: a client certificate of the root, for 10 days.
    text = run(["openssl", "x509", "-in", str(crt), "-noout", "-text"]).stdout.decode()
    assert "X509v3 Basic Constraints: critical\n                CA:FALSE" in text, text
    assert "X509v3 Key Usage: critical\n                Digital Signature\n" in text, text
    assert "TLS Web Client Authentication" in text and "TLS Web Server Authentication" not in text, text
    assert "X509v3 Subject Key Identifier" in text and "X509v3 Authority Key Identifier" in text, text
    assert "Issuer: CN = hsmgate test root, O = hsmgate tests" in text, text
    # where relying parties find the CRL (admin: crl_url)
    assert f"X509v3 CRL Distribution Points: \n                Full Name:\n                  URI:{g.crl_url}" in text, text
    run(["openssl", "verify", "-purpose", "sslclient", "-CAfile", str(pki.root), str(crt)])
    end = run(["openssl", "x509", "-in", str(crt), "-noout", "-checkend", str(9 * 86400)])
    assert end.returncode == 0
    assert run(["openssl", "x509", "-in", str(crt), "-noout", "-checkend", str(11 * 86400)], check=False).returncode == 1

    # Used for a two-way handshake to a listener trusting the root: admitted.
    ctx = client_ctx(pki, cert=(crt, key))
    port = g.port("mtls")
    assert handshake(port, ctx)

    # Listed and fetched (reader).
    page = api.json("GET", "/v1/certificates", tokens["reader"])
    (item,) = [i for i in page["items"] if i["serial"] == serial]
    assert item["status"] == "valid" and item["revoked"] is None and item["actor"] == "token:admin-1", item
    assert item["comment"] == "ticket 7" and item["request_id"] == "issue-1" and "certificate" not in item, item
    one = api.json("GET", f"/v1/certificates/{serial}", tokens["reader"])
    assert one["certificate"] == issued["certificate"] and one["id"] == issued["id"], one
    assert api.json("GET", f"/v1/certificates/{serial.lower()}", tokens["reader"])["serial"] == serial
    assert api.call("GET", "/v1/certificates/0102", tokens["reader"])[0] == 404
    status, _, raw = api.call("GET", "/v1/certificates/not-hex", tokens["reader"])
    assert status == 400 and json.loads(raw)["field"] == "serial", raw

    # The CRL before: no entries, verifies against the root, has a number and the root's key id.
    before = fetch_crl(api, tmp, "before")
    r = run(["openssl", "crl", "-inform", "DER", "-in", str(before), "-CAfile", str(pki.root), "-noout", "-verify"])
    assert b"verify OK" in r.stdout + r.stderr, r
    text0 = run(["openssl", "crl", "-inform", "DER", "-in", str(before), "-noout", "-text"]).stdout.decode()
    assert "Version 2" in text0 and "No Revoked Certificates" in text0, text0
    assert "X509v3 Authority Key Identifier" in text0 and "Issuer: CN = hsmgate test root, O = hsmgate tests" in text0
    n0 = crl_number(text0)

    # Revoked over the API: the next handshake is refused.
    status, _, raw = api.call("POST", "/v1/revocations", tokens["operator"],
                              {"certificate": issued["certificate"], "reason": "keyCompromise"})
    assert status == 201, raw
    wait_refused(port, ctx)
    one = api.json("GET", f"/v1/certificates/{serial}", tokens["reader"])
    assert one["status"] == "revoked" and one["revoked"]["reason"] == "keyCompromise", one

    # The CRL after: made again (a higher number), lists the serial with its reason, verifies.
    after = fetch_crl(api, tmp, "after")
    r = run(["openssl", "crl", "-inform", "DER", "-in", str(after), "-CAfile", str(pki.root), "-noout", "-verify"])
    assert b"verify OK" in r.stdout + r.stderr, r
    text1 = run(["openssl", "crl", "-inform", "DER", "-in", str(after), "-noout", "-text"]).stdout.decode()
    assert f"Serial Number: {serial}" in text1, text1
    assert "X509v3 CRL Reason Code:" in text1 and "Key Compromise" in text1, text1
    assert crl_number(text1) > n0
    # thisUpdate to nextUpdate: crl_validity (2d).
    dates = run(["openssl", "crl", "-inform", "DER", "-in", str(after), "-noout", "-lastupdate", "-nextupdate"])
    last = re.search(r"lastUpdate=(.*)", dates.stdout.decode()).group(1)
    nxt = re.search(r"nextUpdate=(.*)", dates.stdout.decode()).group(1)
    fmt = "%b %d %H:%M:%S %Y %Z"
    assert calendar.timegm(time.strptime(nxt, fmt)) - calendar.timegm(time.strptime(last, fmt)) == 2 * 86400
    # The same state again: the cached CRL, byte for byte.
    assert api.call("GET", "/crl")[2] == after.read_bytes()
    # /metrics says how long that CRL stays usable, and how many it lists.
    text = api.call("GET", "/metrics")[2].decode()
    left = re.search(r"^hsmgate_ca_crl_next_update_seconds (-?\d+)$", text, re.M)
    assert left and 0 < int(left.group(1)) <= 2 * 86400, text[-2000:]
    assert re.search(r"^hsmgate_ca_crl_entries 1$", text, re.M), text[-2000:]

    # The audit trail names the issue: who, the request id, and the certificate.
    audit = api.json("GET", "/v1/audit", tokens["reader"])["items"]
    rec = [a for a in audit if a["action"] == "cert-issue"]
    assert len(rec) == 1 and rec[0]["actor"] == "token:admin-1" and rec[0]["request_id"] == "issue-1", audit
    assert rec[0]["after"]["serial"] == serial, rec
    assert api.json("GET", "/v1/audit/verify", tokens["reader"])["intact"] is True


def test_openssl_verifies_with_the_crl(ca_gw, pki):
    """OpenSSL's verifier with -crl_check: the issued certificate is good against the CRL before the
    revocation and "certificate revoked" after it (with reason certificateHold)."""
    g, api, tokens, tmp = ca_gw
    key, csr = make_csr(tmp, "held", "/CN=held-client")
    issued = api.json("POST", "/v1/certificates", tokens["admin"], {"csr": csr}, want=201)
    crt = tmp / "held.crt"
    crt.write_text(issued["certificate"])

    def verify():
        (tmp / "crl.pem").write_bytes(api.call("GET", "/crl.pem")[2])
        return run(["openssl", "verify", "-crl_check", "-CAfile", str(pki.root), "-CRLfile", str(tmp / "crl.pem"),
                    str(crt)], check=False)

    assert verify().returncode == 0
    status, _, raw = api.call("POST", "/v1/revocations", tokens["operator"],
                              {"certificate": issued["certificate"], "reason": "certificateHold"})
    assert status == 201, raw
    r = verify()
    assert r.returncode != 0 and b"certificate revoked" in r.stdout + r.stderr, r
    text = run(["openssl", "crl", "-in", str(tmp / "crl.pem"), "-noout", "-text"]).stdout.decode()
    assert "Certificate Hold" in text, text
    # Lifting the hold takes it off the next CRL.
    status, _, raw = api.call("POST", "/v1/revocations/lift", tokens["operator"], {"certificate": issued["certificate"]})
    assert status == 200, raw
    assert verify().returncode == 0


def test_bad_requests_refused_and_nothing_recorded(ca_gw, pki):
    """Garbage, a tampered signature, a CA request, a subject without CN, an unsupported key, a validity
    out of range, unknown fields: 4xx naming the field; no certificate recorded, no audit record."""
    g, api, tokens, tmp = ca_gw
    admin = tokens["admin"]
    _, csr = make_csr(tmp, "good", "/CN=good/O=hsmgate tests")

    def refused(body, status, field):
        st, _, raw = api.call("POST", "/v1/certificates", admin, body)
        assert st == status, (body if len(str(body)) < 200 else str(body)[:200], st, raw)
        p = json.loads(raw)
        assert p.get("field") == field and p["status"] == status, p
        return p

    refused({"csr": "this is not a CSR"}, 400, "csr")
    refused({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}, 400, "csr")
    der = bytearray(pem_body(csr))
    der[-3] ^= 0x01  # inside the signature's last INTEGER: still DER, no longer a valid signature
    p = refused({"csr": to_pem(bytes(der), "CERTIFICATE REQUEST")}, 422, "csr")
    assert "signature" in p["detail"], p
    _, ca_csr = make_csr(tmp, "ca", "/CN=sneaky CA", extra=("-addext", "basicConstraints=critical,CA:TRUE"))
    p = refused({"csr": ca_csr}, 422, "csr")
    assert "CA" in p["detail"], p
    _, no_cn = make_csr(tmp, "nocn", "/O=hsmgate tests/OU=no common name")
    p = refused({"csr": no_cn}, 422, "csr")
    assert "commonName" in p["detail"], p
    _, small = make_csr(tmp, "rsa1024", "/CN=small", newkey=("rsa:1024",))
    refused({"csr": small}, 422, "csr")
    _, uid = make_csr(tmp, "uid", "/CN=with uid/UID=u1")
    p = refused({"csr": uid}, 422, "csr")
    assert "attribute" in p["detail"], p
    _, tab = make_csr(tmp, "tab", "/CN=tab\there")
    p = refused({"csr": tab}, 422, "csr")
    assert "printable" in p["detail"], p
    refused({"csr": csr, "validity_days": 0}, 400, "validity_days")
    refused({"csr": csr, "validity_days": 31}, 400, "validity_days")  # over client_validity (30d)
    refused({"csr": csr, "validity_days": "10"}, 400, "validity_days")
    refused({"csr": csr, "subject": "/CN=other"}, 400, "subject")
    refused({"validity_days": 5}, 400, "csr")
    refused({"csr": 42}, 400, "csr")
    st, _, _ = api.call("POST", "/v1/certificates", admin, b"csr=x", ctype="application/x-www-form-urlencoded")
    assert st == 415

    assert api.json("GET", "/v1/certificates", tokens["reader"])["items"] == []
    audit = api.json("GET", "/v1/audit", tokens["reader"])["items"]
    assert [a for a in audit if a["action"] == "cert-issue"] == [], audit
    # The good one still goes through, with the default validity (client_validity: 30d).
    issued = api.json("POST", "/v1/certificates", admin, {"csr": csr}, want=201)
    (tmp / "good.crt").write_text(issued["certificate"])
    assert run(["openssl", "x509", "-in", str(tmp / "good.crt"), "-noout", "-checkend", str(29 * 86400)]).returncode == 0
    assert run(["openssl", "x509", "-in", str(tmp / "good.crt"), "-noout", "-checkend", str(31 * 86400)],
               check=False).returncode == 1


def test_rsa_and_p384_requests(ca_gw, pki):
    """Each accepted request key type gets a certificate that verifies against the root; a page of one
    gives a cursor to the next."""
    g, api, tokens, tmp = ca_gw
    serials = []
    for name, newkey in (("rsa", ("rsa:2048",)), ("p384", ("ec", "-pkeyopt", "ec_paramgen_curve:P-384"))):
        _, csr = make_csr(tmp, name, f"/CN={name}-client/C=CH", newkey=newkey)
        issued = api.json("POST", "/v1/certificates", tokens["admin"], {"csr": csr}, want=201)
        (tmp / f"{name}.crt").write_text(issued["certificate"])
        run(["openssl", "verify", "-purpose", "sslclient", "-CAfile", str(pki.root), str(tmp / f"{name}.crt")])
        serials.append(issued["serial"])
    page = api.json("GET", "/v1/certificates?limit=1", tokens["reader"])
    assert [i["serial"] for i in page["items"]] == serials[:1] and page["next"], page
    page2 = api.json("GET", f"/v1/certificates?limit=1&after={page['next']}", tokens["reader"])
    assert [i["serial"] for i in page2["items"]] == serials[1:] and page2["next"] is None, page2
    assert api.call("GET", "/v1/certificates?after=x", tokens["reader"])[0] == 400


def test_without_ca(pki, gateway, echo, tmp_path):
    """Without ca_key the certificate routes answer 503 and /crl 404; the OpenAPI document lists them."""
    tf, tokens = role_tokens(tmp_path)
    port = free_port()
    g = gateway([listener(pki, "plain", echo.port)], policy_store=f'"{tmp_path / "p.db"}"',
                admin=f'{{ bind: "127.0.0.1:{port}", tokens_file: "{tf}" }}')
    g.wait_log("admin API on 127.0.0.1:%d" % port)
    api = Api(port)
    _, csr = make_csr(tmp_path, "x", "/CN=x")
    status, headers, raw = api.call("POST", "/v1/certificates", tokens["admin"], {"csr": csr})
    assert status == 503 and headers.get("Retry-After"), raw
    assert api.call("GET", "/crl")[0] == 404
    assert api.call("GET", "/crl.pem")[0] == 404
    assert api.json("GET", "/v1/certificates", tokens["reader"])["items"] == []
    doc = api.json("GET", "/v1/openapi.json")
    for path in ("/v1/certificates", "/v1/certificates/{serial}", "/crl", "/crl.pem"):
        assert path in doc["paths"], sorted(doc["paths"])


def test_ca_that_does_not_match_its_key_refused(pki, gateway, echo, tmp_path):
    """A ca_certificate that is not the ca_key's (here a server certificate) stops the gateway at start,
    with the configuration's file and line."""
    tf, _ = role_tokens(tmp_path)
    port = free_port()
    _, server_cert = pki.servers["ec256"]
    g = gateway([listener(pki, "plain", echo.port)], start=False, policy_store=f'"{tmp_path / "p.db"}"',
                admin=f'{{ bind: "127.0.0.1:{port}", tokens_file: "{tf}", ca_certificate: "{server_cert}", '
                      f'ca_key: "{pki.token.uri("root")}" }}')
    g.expect_failure = True
    g.start(wait=False)
    deadline = time.time() + WAIT
    while g.proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert g.proc.poll() not in (None, 0), g.log()
    assert "admin: admin API: ca_certificate" in g.log() and "hsmgate.yaml:" in g.log(), g.log()


def test_check_finds_what_start_would(pki, gateway, echo, tmp_path):
    """`hsmgate check` catches what would stop the API at start: a CA certificate that is not its key's,
    and a tokens file others can read; a good configuration passes."""
    tf, _ = role_tokens(tmp_path)
    _, server_cert = pki.servers["ec256"]
    root_uri = pki.token.uri("root")
    cases = [(server_cert, tf, "admin: admin API: ca_certificate"), (pki.root, tf, None)]
    loose = tmp_path / "loose.tokens"
    loose.write_text(tf.read_text())
    os.chmod(loose, 0o644)
    cases.append((pki.root, loose, "readable by others"))
    for i, (cert, tokens, message) in enumerate(cases):
        g = gateway([listener(pki, "plain", echo.port)], start=False, policy_store=f'"{tmp_path / "p.db"}"',
                    admin=f'{{ bind: "127.0.0.1:{free_port()}", tokens_file: "{tokens}", ca_certificate: "{cert}", '
                          f'ca_key: "{root_uri}" }}')
        r = subprocess.run([BIN, "check", "-c", str(g.config)], capture_output=True, env=pki.token.env)
        if message is None:
            assert r.returncode == 0 and b"configuration OK" in r.stdout, r.stderr
        else:
            assert r.returncode != 0 and message in r.stderr.decode(), r.stderr
            assert f"{g.config}:" in r.stderr.decode(), r.stderr


def test_tcp_and_unix_socket_take_turns(pki, gateway, echo, tmp_path):
    """With a TCP address and a Unix socket, libmicrohttpd serves each from its own thread: both sign in
    the HSM in turn (the API's HSM thread index changes hands between them)."""
    tf, tokens = role_tokens(tmp_path)
    port = free_port()
    sock = tmp_path / "admin.sock"
    admin = (f'{{ bind: "127.0.0.1:{port}", unix_socket: "{sock}", tokens_file: "{tf}", '
             f'ca_certificate: "{pki.root}", ca_key: "{pki.token.uri("root")}" }}')
    g = gateway([listener(pki, "plain", echo.port)], policy_store=f'"{tmp_path / "p.db"}"', admin=admin)
    g.wait_log("admin API on 127.0.0.1:%d" % port)
    api = Api(port)
    for i in range(3):
        _, csr = make_csr(tmp_path, f"u{i}", f"/CN=unix-{i}")
        r = run(["curl", "-sS", "--unix-socket", str(sock), "-H", f"Authorization: Bearer {tokens['admin']}",
                 "-H", "Content-Type: application/json", "--data-binary", json.dumps({"csr": csr}),
                 "-w", "\n%{http_code}", "http://localhost/v1/certificates"])
        body, _, code = r.stdout.decode().rpartition("\n")
        assert code == "201", r.stdout
        r = run(["curl", "-sS", "--unix-socket", str(sock), "-o", str(tmp_path / f"u{i}.crl"), "-w", "%{http_code}",
                 "http://localhost/crl"])
        assert r.stdout == b"200"
        _, csr = make_csr(tmp_path, f"t{i}", f"/CN=tcp-{i}")
        api.json("POST", "/v1/certificates", tokens["admin"], {"csr": csr}, want=201)
        assert api.call("GET", "/crl")[0] == 200
    assert len(api.json("GET", "/v1/certificates", tokens["reader"])["items"]) == 6
    assert "cannot use the HSM" not in g.log()
