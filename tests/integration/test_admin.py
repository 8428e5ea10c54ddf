"""The admin REST API on the real gateway: tokens made with `hsmgate admin token`, roles, health and
metrics that move with real traffic, listeners, the OpenAPI document, token reload on SIGHUP, and
changes made over the API enforced on the next handshake and on live connections."""
import json
import os
import re
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request

import pytest

from conftest import BIN, free_port, listener, run, client_ctx

WAIT = 10


def make_token(name, role):
    r = run([BIN, "admin", "token", name, role])
    return r.stdout.decode().strip(), r.stderr.decode().strip()


def write_tokens(path, *lines):
    """A tokens file of these lines, readable by its owner only (the gateway refuses others): path."""
    path.write_text("".join(f"{l}\n" for l in lines))
    os.chmod(path, 0o600)
    return path


def role_tokens(tmp_path, who="1", name="admin.tokens", comment=None):
    """A token of each role (reader-WHO, operator-WHO, admin-WHO) in tmp_path/NAME, after a comment line
    if given: (path, {role: token})."""
    tokens, lines = {}, [] if comment is None else [comment]
    for role in ("reader", "operator", "admin"):
        tok, line = make_token(f"{role}-{who}", role)
        tokens[role] = tok
        lines.append(line)
    return write_tokens(tmp_path / name, *lines), tokens


class Api:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method, path, token=None, body=None, ctype="application/json", headers=None):
        data = None
        h = dict(headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h["Content-Type"] = ctype
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=WAIT) as r:
                raw = r.read()
                return r.status, dict(r.headers), raw
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, method, path, token=None, body=None, want=200):
        status, headers, raw = self.call(method, path, token, body)
        assert status == want, (status, raw)
        return json.loads(raw) if raw else None


@pytest.fixture
def admin_gw(pki, gateway, echo, tmp_path):
    """A gateway with a two-way listener, a policy store and the admin API; tokens of each role."""
    tf, tokens = role_tokens(tmp_path, comment="# made by test_admin.py")
    port = free_port()
    store = tmp_path / "policy.db"
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")], policy_store=f'"{store}"',
                admin=f'{{ bind: "127.0.0.1:{port}", tokens_file: "{tf}" }}')
    g.wait_log("admin API on 127.0.0.1:%d" % port)
    return g, Api(port), tokens, store, tf


def handshake(port, ctx, payload=b"ping"):
    """True if admitted (the echo comes back), False if refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(payload)
                return s.recv(len(payload)) == payload
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return False


def metric(text, name, **labels):
    """The value of one sample of the Prometheus text, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head == name and not labels or head == f"{name}{{{want}}}":
            return float(value)
    return None


def test_token_cli():
    """`hsmgate admin token NAME ROLE`: a fresh random token on stdout, `NAME ROLE SHA256(token)` on stderr;
    bad names and roles are usage errors."""
    import hashlib
    tok, line = make_token("ci-bot", "operator")
    name, role, digest = line.split()
    assert (name, role) == ("ci-bot", "operator")
    assert digest == hashlib.sha256(tok.encode()).hexdigest()
    assert make_token("ci-bot", "operator")[0] != tok
    assert run([BIN, "admin", "token", "bad name", "reader"], check=False).returncode == 2
    assert run([BIN, "admin", "token", "x", "root"], check=False).returncode == 2


def test_health_metrics_without_auth_and_moving(admin_gw, pki):
    """/v1/health and /metrics answer without a token; the handshake counters and the HSM signature
    histogram move with real handshakes, and a refusal is counted under its reason."""
    g, api, _, _, _ = admin_gw
    h = api.json("GET", "/v1/health")
    assert h["status"] == "ok" and h["store"]["status"] == "ok" and h["hsm"]["status"] == "ok", h
    status, headers, before = api.call("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain"), headers
    before = before.decode()
    ok0 = metric(before, "hsmgate_handshakes_total", listener="mtls", result="ok", reason="") or 0
    signs0 = metric(before, "hsmgate_hsm_signature_seconds_count") or 0
    crt, key = pki.client("adm-metrics")
    assert handshake(g.port("mtls"), client_ctx(pki, cert=(crt, key)))
    assert not handshake(g.port("mtls"), client_ctx(pki))  # no client certificate
    deadline = time.time() + WAIT
    while True:
        after = api.call("GET", "/metrics")[2].decode()
        failed = metric(after, "hsmgate_handshakes_total", listener="mtls", result="failed", reason="no_client_certificate")
        if failed or time.time() > deadline:
            break
        time.sleep(0.05)
    assert metric(after, "hsmgate_handshakes_total", listener="mtls", result="ok", reason="") >= ok0 + 1, after
    assert failed and failed >= 1, after
    assert metric(after, "hsmgate_hsm_signature_seconds_count") >= signs0 + 2, after
    assert metric(after, "hsmgate_policy_generation") is not None
    assert metric(after, "hsmgate_admin_requests_total", method="GET", route="/v1/health", status="200") >= 1, after


def test_roles_and_tokens(admin_gw):
    """No token or a wrong one: 401 with WWW-Authenticate; a reader may read, not write (403); every
    response carries a request id; problems are RFC 9457 documents."""
    g, api, tokens, _, _ = admin_gw
    status, headers, body = api.call("GET", "/v1/listeners")
    assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Bearer"), (status, headers)
    problem = json.loads(body)
    assert problem["status"] == 401 and problem["title"] and problem["instance"].startswith("urn:request:"), problem
    assert api.call("GET", "/v1/listeners", token="not-a-token")[0] == 401
    ls = api.json("GET", "/v1/listeners", tokens["reader"])
    (l,) = ls["listeners"]
    assert l["name"] == "mtls" and l["auth"] == "two-way" and "handshakes_ok" in l["counters"], ls
    status, headers, body = api.call("POST", "/v1/revocations", tokens["reader"], {"serial": "01"})
    assert status == 403, (status, body)
    status, headers, _ = api.call("GET", "/v1/health", headers={"X-Request-Id": "req-42"})
    assert headers.get("X-Request-Id") == "req-42"


def test_openapi_lists_the_routes(admin_gw):
    """/v1/openapi.json is an OpenAPI 3 document of the routes the server really has."""
    _, api, _, _, _ = admin_gw
    doc = api.json("GET", "/v1/openapi.json")
    assert doc["openapi"].startswith("3."), doc.get("openapi")
    for path in ("/v1/health", "/metrics", "/v1/listeners", "/v1/revocations"):
        assert path in doc["paths"], sorted(doc["paths"])


def test_sighup_reloads_tokens(admin_gw):
    """A token added to the tokens file works after SIGHUP; a broken file leaves the old tokens."""
    g, api, tokens, _, tf = admin_gw
    tok, line = make_token("late", "reader")
    assert api.call("GET", "/v1/listeners", tok)[0] == 401
    tf.write_text(tf.read_text() + line + "\n")
    g.signal(signal.SIGHUP)
    g.wait_log("reloaded: generation 2")
    deadline = time.time() + WAIT
    while api.call("GET", "/v1/listeners", tok)[0] != 200:
        assert time.time() < deadline, g.log()
        time.sleep(0.05)
    tf.write_text("this is not a tokens file\n")
    g.signal(signal.SIGHUP)
    g.wait_log("reloaded: generation 3")
    g.wait_log("admin: tokens not reloaded")
    assert api.call("GET", "/v1/listeners", tok)[0] == 200


def test_no_admin_section_no_api(pki, gateway, echo):
    """Without an admin: section there is no admin API (and no port taken)."""
    g = gateway([listener(pki, "plain", echo.port)])
    assert "admin API on" not in g.log()


def wait_refused(port, ctx, timeout=WAIT):
    deadline = time.time() + timeout
    while handshake(port, ctx):
        assert time.time() < deadline, "still admitted"
        time.sleep(0.01)


def test_revoke_over_api_enforced_and_audited(admin_gw, pki):
    """An operator revokes a client over the API: the answer comes after the commit (it names the new
    generation), the next handshake is refused, the client's live connection is closed, the revocation is
    listed, and the audit trail names the token, the request id and the source, and verifies."""
    g, api, tokens, store, _ = admin_gw
    crt, key = pki.client("adm-victim")
    ctx = client_ctx(pki, cert=(crt, key))
    port = g.port("mtls")
    assert handshake(port, ctx)
    live = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=WAIT), server_hostname="localhost")
    live.sendall(b"x")
    assert live.recv(1) == b"x"
    pem = open(crt).read()
    status, headers, body = api.call("POST", "/v1/revocations", tokens["operator"],
                                     {"certificate": pem, "reason": "keyCompromise", "comment": "INC-1"},
                                     headers={"X-Request-Id": "adm-revoke-1"})
    assert status == 201, body
    rec = json.loads(body)
    assert rec["reason"] == "keyCompromise" and rec["generation"] >= 1, rec
    wait_refused(port, ctx)
    live.settimeout(WAIT)
    try:
        closed = live.recv(1) == b""
    except (ssl.SSLError, ConnectionResetError):
        closed = True
    assert closed, "the revoked client's live connection is still open"
    live.close()
    # the same again: 409, nothing changes
    assert api.call("POST", "/v1/revocations", tokens["operator"], {"certificate": pem})[0] == 409
    items = api.json("GET", "/v1/revocations", tokens["reader"])["items"]
    assert [i["reason"] for i in items] == ["keyCompromise"] and items[0]["actor"] == "token:operator-1", items
    audit = api.json("GET", "/v1/audit", tokens["reader"])["items"]
    mine = [a for a in audit if a.get("request_id") == "adm-revoke-1"]
    assert len(mine) == 1 and mine[0]["actor"] == "token:operator-1" and mine[0]["source"].startswith("127.0.0.1"), audit
    v = api.json("GET", "/v1/audit/verify", tokens["reader"])
    assert v["intact"] is True and v["records"] >= 1 and len(v["last_hash"]) == 64, v
    # the CLI sees the same trail
    r = run([BIN, "audit", "verify", "--store", str(store)])
    assert b"intact" in r.stdout + r.stderr


def test_allowlist_over_api(pki, gateway, echo, tmp_path):
    """A policy that requires an allowlist: a client is refused until an operator adds it over the API
    (by certificate, match spki), and refused again once the entry is deleted."""
    tok, line = make_token("ops", "operator")
    tf = write_tokens(tmp_path / "t.tokens", line)
    port = free_port()
    store = tmp_path / "policy.db"
    l = dict(listener(pki, "api", echo.port, auth="two-way"))
    l.pop("client_ca", None)
    l["policy"] = "partners"
    g = gateway([l], policy_store=f'"{store}"', admin=f'{{ bind: "127.0.0.1:{port}", tokens_file: "{tf}" }}',
                policies=f'{{ partners: {{ client_ca: ["{pki.root}"], require_allowlist: true }} }}')
    api = Api(port)
    crt, key = pki.client("adm-partner")
    ctx = client_ctx(pki, cert=(crt, key))
    assert not handshake(g.port("api"), ctx)
    status, headers, body = api.call("POST", "/v1/allowlists/partners/entries", tok,
                                     {"match": "spki", "certificate": open(crt).read(), "comment": "onboarding"})
    assert status == 201, body
    entry = json.loads(body)
    deadline = time.time() + WAIT
    while not handshake(g.port("api"), ctx):
        assert time.time() < deadline, "not admitted after the allowlist entry"
        time.sleep(0.01)
    # bad input names the field and changes nothing
    status, _, body = api.call("POST", "/v1/allowlists/partners/entries", tok, {"match": "colour", "value": "x"})
    assert status == 400 and json.loads(body).get("field") == "match", body
    status, _, body = api.call("POST", "/v1/allowlists/partners/entries", tok, {"match": "cn", "value": "x", "extra": 1})
    assert status == 400 and json.loads(body).get("field") == "extra", body
    assert api.call("DELETE", f"/v1/allowlists/partners/entries/{entry['id']}", tok)[0] == 200
    wait_refused(g.port("api"), ctx)


# ---- /v1/connections: live connections, closing one ----

def live_conn(port, ctx):
    """An open TLS connection through the gateway, proven proxied by one echo."""
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=WAIT), server_hostname="localhost")
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    return s


def sees_eof(s):
    """True once the gateway has closed s (close_notify, FIN or reset), False if it stays open."""
    s.settimeout(WAIT)
    try:
        return s.recv(1) == b""
    except (ssl.SSLError, ConnectionResetError):
        return True
    except socket.timeout:
        return False


def conn_by_peer(api, token, s, query=""):
    """The listed connection whose peer is s's local address, or None."""
    me = "127.0.0.1:%d" % s.getsockname()[1]
    items = api.json("GET", "/v1/connections" + query, token)["items"]
    return next((c for c in items if c["peer"] == me), None)


def test_connections_list_get_close(admin_gw, pki):
    """A client with a certificate is listed with its identity and listener; one connection is shown by
    id; a reader may not close it (403); an operator does: the client sees the connection end, the access
    log says closed_by_admin, the error log names who and the request id; then it is gone (404)."""
    g, api, tokens, _, _ = admin_gw
    crt, key = pki.client("adm-conns")
    live = live_conn(g.port("mtls"), client_ctx(pki, cert=(crt, key)))
    other = live_conn(g.port("mtls"), client_ctx(pki, cert=(crt, key)))
    c = conn_by_peer(api, tokens["reader"], live)
    assert c is not None, api.json("GET", "/v1/connections", tokens["reader"])
    assert c["listener"] == "mtls" and c["client_cert"] is True, c
    assert "CN=client-adm-conns" in c["client_subject"] and "hsmgate test root" in c["client_issuer"], c
    assert len(c["client_fingerprint_sha256"]) == 64 and c["client_serial"], c
    assert c["tls_version"].startswith("TLS") and c["resumed"] is False and c["started_at"].endswith("Z"), c
    assert c["policy"] and c["policy_generation"] is not None, c
    one = api.json("GET", f"/v1/connections/{c['id']}", tokens["reader"])
    assert one["id"] == c["id"] and one["peer"] == c["peer"], one
    assert conn_by_peer(api, tokens["reader"], live, "?listener=mtls")["id"] == c["id"]
    assert api.json("GET", "/v1/connections?listener=nope", tokens["reader"])["items"] == []
    # bytes are refreshed at the workers' sweeps (every 250 ms)
    deadline = time.time() + WAIT
    while api.json("GET", f"/v1/connections/{c['id']}", tokens["reader"])["bytes_in"] < 1:
        assert time.time() < deadline, "bytes_in never moved"
        time.sleep(0.05)

    # a reader cannot close it; the connection stays up
    status, _, body = api.call("DELETE", f"/v1/connections/{c['id']}", tokens["reader"])
    assert status == 403, body
    live.sendall(b"y")
    assert live.recv(1) == b"y"

    status, _, body = api.call("DELETE", f"/v1/connections/{c['id']}?comment=INC-7", tokens["operator"],
                               headers={"X-Request-Id": "adm-close-1"})
    assert status == 200, body
    assert json.loads(body)["closed"]["id"] == c["id"], body
    assert sees_eof(live), "the closed connection is still open"
    live.close()
    rec = g.wait_access(lambda r: r.get("connection_id") == c["id"])
    assert rec["result"] == "closed_by_admin" and rec["reason"] == "admin_request", rec
    assert rec["client_subject"] == c["client_subject"], rec
    g.wait_log(f"admin: connection {c['id']} (listener mtls")
    line = next(l for l in g.log().splitlines() if f"admin: connection {c['id']} " in l)
    assert "who=token:operator-1" in line or "by token:operator-1" in line, line
    assert "id=adm-close-1" in line and 'comment="INC-7"' in line, line

    # gone; the other connection of the same client is untouched
    assert api.call("GET", f"/v1/connections/{c['id']}", tokens["reader"])[0] == 404
    assert api.call("DELETE", f"/v1/connections/{c['id']}", tokens["operator"])[0] == 404
    assert conn_by_peer(api, tokens["reader"], other) is not None
    other.sendall(b"z")
    assert other.recv(1) == b"z"
    other.close()
    # unknown and malformed ids
    assert api.call("GET", "/v1/connections/987654321", tokens["reader"])[0] == 404
    assert api.call("DELETE", "/v1/connections/987654321", tokens["operator"])[0] == 404
    for bad in ("abc", "0", "-1", "99999999999999999999"):
        status, _, body = api.call("GET", f"/v1/connections/{bad}", tokens["reader"])
        assert status == 400 and json.loads(body)["field"] == "id", (bad, status, body)
    status, _, body = api.call("GET", "/v1/connections?after=x", tokens["reader"])
    assert status == 400 and json.loads(body)["field"] == "after", body
    assert api.call("GET", "/v1/connections")[0] == 401
    after = api.call("GET", "/metrics")[2].decode()
    assert metric(after, "hsmgate_connections_closed_by_admin_total", listener="mtls") == 1, after


def test_connections_one_way_listed_and_paged(pki, gateway, echo, tmp_path):
    """A connection without a client certificate (one-way listener) is listed too, with no identity;
    ?listener= filters; pages of ?limit=1 walk every connection once, in ascending id."""
    tok, line = make_token("watcher", "reader")
    tf = write_tokens(tmp_path / "conns.tokens", line)
    port = free_port()
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way"), listener(pki, "plain", echo.port)],
                admin=f'{{ bind: "127.0.0.1:{port}", tokens_file: "{tf}" }}')
    api = Api(port)
    crt, key = pki.client("adm-pages")
    socks = [live_conn(g.port("plain"), client_ctx(pki)),
             live_conn(g.port("mtls"), client_ctx(pki, cert=(crt, key))),
             live_conn(g.port("mtls"), client_ctx(pki, cert=(crt, key)))]
    try:
        plain = api.json("GET", "/v1/connections?listener=plain", tok)["items"]
        assert len(plain) == 1, plain
        p = plain[0]
        assert p["peer"] == "127.0.0.1:%d" % socks[0].getsockname()[1], p
        assert p["client_cert"] is False and p["client_subject"] is None and p["client_fingerprint_sha256"] is None, p
        assert p["policy"] is None and p["policy_generation"] is None, p
        assert len(api.json("GET", "/v1/connections?listener=mtls", tok)["items"]) == 2
        seen, after = [], None
        for _ in range(10):
            page = api.json("GET", "/v1/connections?limit=1" + (f"&after={after}" if after else ""), tok)
            assert len(page["items"]) <= 1, page
            seen += [c["id"] for c in page["items"]]
            after = page["next"]
            if after is None:
                break
        assert len(seen) == 3 and seen == sorted(set(seen)), seen
        paths = api.json("GET", "/v1/openapi.json")["paths"]
        assert "delete" in paths["/v1/connections/{id}"] and "get" in paths["/v1/connections"], sorted(paths)
    finally:
        for s in socks:
            s.close()
    # closed by the clients: no longer listed
    deadline = time.time() + WAIT
    while api.json("GET", "/v1/connections", tok)["items"]:
        assert time.time() < deadline, api.json("GET", "/v1/connections", tok)
        time.sleep(0.05)


def test_connections_https_close_logged(pki, gateway, tmp_path):
    """An https connection that already carried a request, closed by an operator: its request keeps its
    own access-log line, and the closure gets a connection line of its own (closed_by_admin)."""
    import http.client
    from https_backend import HttpBackend
    b = HttpBackend("echo")
    try:
        tok, line = make_token("ops-https", "operator")
        tf = write_tokens(tmp_path / "https.tokens", line)
        port = free_port()
        g = gateway([listener(pki, "web", b.port, auth="optional", type="https")],
                    admin=f'{{ bind: "127.0.0.1:{port}", tokens_file: "{tf}" }}')
        api = Api(port)
        crt, key = pki.client("adm-https")
        hc = http.client.HTTPSConnection("localhost", g.port("web"), context=client_ctx(pki, cert=(crt, key)),
                                         timeout=WAIT)
        hc.request("GET", "/one")
        r = hc.getresponse()
        r.read()
        assert r.status == 200
        c = conn_by_peer(api, tok, hc.sock)
        assert c is not None and c["listener"] == "web" and "CN=client-adm-https" in c["client_subject"], c
        assert api.call("DELETE", f"/v1/connections/{c['id']}", tok)[0] == 200
        assert sees_eof(hc.sock)
        hc.close()
        req = g.wait_access(lambda x: x.get("connection_id") == c["id"] and x.get("path") == "/one")
        assert req["status"] == 200, req
        rec = g.wait_access(lambda x: x.get("connection_id") == c["id"] and x.get("result") == "closed_by_admin")
        assert rec["reason"] == "admin_request" and "path" not in rec, rec
    finally:
        b.close()


def test_every_route_and_role(admin_gw):
    """For every operation the OpenAPI document lists (it is generated from the routes the server really
    has): without a token an authenticated route answers 401, a token whose role is below the route's
    answers 403, and one at the route's role gets past authorization (whatever the handler then says of
    the empty request: never 401 or 403). Unauthenticated routes answer without a token."""
    g, api, tokens, _, _ = admin_gw
    doc = api.json("GET", "/v1/openapi.json")
    order = ["none", "reader", "operator", "admin"]
    seen = 0
    for path, ops in doc["paths"].items():
        concrete = re.sub(r"\{[a-z_]+\}", lambda m: {"{id}": "999999", "{serial}": "0A"}.get(m.group(0), "nosuch"),
                          path)
        for method, op in ops.items():
            if method not in ("get", "post", "put", "delete"):
                continue
            role = op["x-hsmgate-role"]
            need = order.index(role)
            body = {} if method in ("post", "put") else None
            for have in order:
                tok = None if have == "none" else tokens[have]
                status, _, raw = api.call(method.upper(), concrete, tok, body)
                where = f"{method.upper()} {concrete} as {have} (route role {role}): {status} {raw[:200]!r}"
                if need == 0:
                    assert status not in (401, 403), where
                elif have == "none":
                    assert status == 401, where
                elif order.index(have) < need:
                    assert status == 403, where
                else:
                    assert status not in (401, 403), where
            seen += 1
    assert seen >= 20, f"only {seen} operations in the OpenAPI document"
