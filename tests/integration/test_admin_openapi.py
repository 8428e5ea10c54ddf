"""/v1/openapi.json against the real gateway: the document is OpenAPI 3.0.3 as far as can be checked
without a network (every $ref resolves, every schema is a valid JSON Schema once `nullable` is spelled
the JSON Schema way, every operation says what it answers), and real requests over every operation,
each answered with success and with at least one error, get a status the document lists for that
operation and a body that its schema for that status and media type accepts, with no member it does not
name. Request bodies the server takes are valid per the document's request schema; bodies it refuses
for an unknown field, a wrong type or a missing member are not (the document and the server agree).

Validation is Debian's python3-jsonschema (Draft 4, the closest to OpenAPI 3.0's schema dialect)."""
import base64
import contextlib
import http.client
import json
import re
import socket

import pytest
from jsonschema import Draft4Validator, RefResolver

from conftest import free_port, listener, run, client_ctx
from test_admin import Api, WAIT, admin_gw, role_tokens  # noqa: F401 (admin_gw: a fixture)
from test_policies import OpenSslCa

# ---------------------------------------------------------------- the document, read as OpenAPI 3.0.3

# OpenAPI 3.0.3 4.7.24: the Schema Object's fields (JSON Schema Wright-00 subset, plus its own).
SCHEMA_KEYS = {
    "title", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength",
    "pattern", "maxItems", "minItems", "uniqueItems", "maxProperties", "minProperties", "required", "enum", "type",
    "allOf", "oneOf", "anyOf", "not", "items", "properties", "additionalProperties", "description", "format",
    "default", "nullable", "discriminator", "readOnly", "writeOnly", "xml", "externalDocs", "example", "deprecated",
    "$ref"}
TYPES = {"string", "number", "integer", "boolean", "array", "object"}
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def pointer(doc, ref):
    """The node a local $ref names (RFC 6901), or KeyError."""
    assert ref.startswith("#/"), f"not a local reference: {ref}"
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def deref(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        node = pointer(doc, node["$ref"])
    return node


def walk(node, path="#"):
    """Every (path, dict) in node, depth first."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}/{i}")


def subschemas(schema):
    for k in ("allOf", "oneOf", "anyOf"):
        yield from schema.get(k, [])
    for k in ("not", "items"):
        if isinstance(schema.get(k), dict):
            yield schema[k]
    if isinstance(schema.get("additionalProperties"), dict):
        yield schema["additionalProperties"]
    yield from schema.get("properties", {}).values()


def check_oas_schema(schema, where):
    """The OpenAPI 3.0 rules JSON Schema does not check: known keywords only, type a single name (no
    type arrays: nullable instead), array with items, $ref without siblings, null in an enum only when
    nullable, required members that properties names."""
    assert isinstance(schema, dict), where
    if "$ref" in schema:
        assert list(schema) == ["$ref"], f"{where}: $ref with siblings (ignored by OpenAPI 3.0): {schema}"
        return
    unknown = [k for k in schema if k not in SCHEMA_KEYS and not k.startswith("x-")]
    assert not unknown, f"{where}: not OpenAPI 3.0 schema keywords: {unknown}"
    if "type" in schema:
        assert isinstance(schema["type"], str) and schema["type"] in TYPES, f"{where}: type {schema['type']!r}"
        if schema["type"] == "array":
            assert "items" in schema, f"{where}: an array without items"
    if "nullable" in schema:
        assert isinstance(schema["nullable"], bool), where
    if None in schema.get("enum", []):
        assert schema.get("nullable") is True, f"{where}: null in an enum that is not nullable"
    if "pattern" in schema:
        re.compile(schema["pattern"])
    if "properties" in schema and "required" in schema:
        missing = set(schema["required"]) - set(schema["properties"])
        assert not missing, f"{where}: required but not described: {missing}"
    for i, sub in enumerate(subschemas(schema)):
        check_oas_schema(sub, f"{where}/{i}")


def to_draft4(node):
    """A deep copy where {"nullable": true, ...rest} is {"anyOf": [{"type": "null"}, rest]}: what
    OpenAPI 3.0's nullable means, in JSON Schema."""
    if isinstance(node, list):
        return [to_draft4(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_draft4(v) for k, v in node.items()}
    if out.get("nullable") is True:
        del out["nullable"]
        return {"anyOf": [{"type": "null"}, out]}
    out.pop("nullable", None)
    return out


def closed(node):
    """A deep copy where every object schema that lists properties refuses others: answers must not
    carry members the document does not name (it says clients may ignore new ones; this test makes
    sure none is left undocumented)."""
    if isinstance(node, list):
        return [closed(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: closed(v) if k != "properties" else {p: closed(s) for p, s in v.items()} for k, v in node.items()}
    if isinstance(out.get("properties"), dict) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def schema_places(doc):
    """(where, schema) of every schema the document uses outside components/schemas."""
    comps = doc["components"]
    for name, p in comps.get("parameters", {}).items():
        yield f"#/components/parameters/{name}", p["schema"]
    for name, h in comps.get("headers", {}).items():
        yield f"#/components/headers/{name}", h["schema"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            for p in op.get("parameters", []):
                if "$ref" not in p:
                    yield f"{where} parameter {p['name']}", p["schema"]
            for mt, media in op.get("requestBody", {}).get("content", {}).items():
                yield f"{where} request {mt}", media["schema"]
            for status, r in op["responses"].items():
                for mt, media in r.get("content", {}).items():
                    yield f"{where} {status} {mt}", media["schema"]


def check_document(doc):
    """Structural checks of an OpenAPI 3.0.3 document; returns the number of operations."""
    assert doc["openapi"] == "3.0.3", doc.get("openapi")
    assert doc["info"]["title"] and doc["info"]["version"], doc["info"]
    # every $ref resolves
    for where, node in walk(doc):
        if "$ref" in node and isinstance(node["$ref"], str):
            try:
                pointer(doc, node["$ref"])
            except KeyError:
                raise AssertionError(f"{where}: $ref {node['$ref']} does not resolve")
    # every schema: OpenAPI's rules, and a valid JSON Schema (Draft 4) once nullable is converted
    for name, s in doc["components"]["schemas"].items():
        check_oas_schema(s, f"#/components/schemas/{name}")
        Draft4Validator.check_schema(to_draft4(s))
    for where, s in schema_places(doc):
        check_oas_schema(s, where)
        Draft4Validator.check_schema(to_draft4(s))
    for name, scheme in doc["components"]["securitySchemes"].items():
        assert scheme["type"] in ("http", "apiKey", "oauth2", "openIdConnect"), name
    ids, n = set(), 0
    for path, ops in doc["paths"].items():
        assert path.startswith("/"), path
        template = set(re.findall(r"\{([^}]+)\}", path))
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            assert method in METHODS, where
            assert op["operationId"] not in ids, f"{where}: operationId {op['operationId']} twice"
            ids.add(op["operationId"])
            assert op["x-hsmgate-role"] in ("none", "reader", "operator", "admin"), where
            for req in op.get("security", []):
                for scheme in req:
                    assert scheme in doc["components"]["securitySchemes"], where
            assert bool(op.get("security")) == (op["x-hsmgate-role"] != "none"), where
            params = [deref(doc, p) for p in op.get("parameters", [])]
            for p in params:
                assert p["in"] in ("path", "query", "header", "cookie") and p["name"] and "schema" in p, (where, p)
            assert {p["name"] for p in params if p["in"] == "path"} == template, where
            assert all(p["required"] is True for p in params if p["in"] == "path"), where
            body = op.get("requestBody")
            if body is not None:
                assert body["content"], where
                for mt, media in body["content"].items():
                    assert "schema" in media, (where, mt)
                    if mt == "application/json":
                        top = deref(doc, media["schema"])
                        # adm_only_fields: the server refuses members it does not know
                        assert top.get("additionalProperties") is False, f"{where}: an open request body"
            assert op["responses"], where
            assert "default" in op["responses"], where
            ok = 0
            for status, r in op["responses"].items():
                assert status == "default" or re.fullmatch(r"[1-5][0-9][0-9]", status), (where, status)
                assert r.get("description"), (where, status)
                assert r.get("content"), f"{where} {status}: no content (every answer here has a body)"
                for mt, media in r["content"].items():
                    assert "schema" in media, (where, status, mt)
                    if status != "default" and int(status) >= 400 and mt != "application/json":
                        assert mt == "application/problem+json", (where, status, mt)
                for h in r.get("headers", {}).values():
                    assert "schema" in deref(doc, h), (where, status)
                ok += status.startswith("2")
            assert ok, f"{where}: no success response"
            if op["x-hsmgate-role"] != "none":
                assert {"401", "403"} <= set(op["responses"]), where
            n += 1
    return n


# ---------------------------------------------------------------- answers checked against it

# What the server says when it refuses a request body for its shape (adm_only_fields, adm_field_*,
# parse_target, entry_add): such a body must be invalid per the document's request schema too.
SHAPE_REFUSALS = re.compile(r'unknown field|must be a string|must be an integer|is required|must be a non-empty array|'
                            r'must be an object|must be a JSON object|give either|give one of|give "certificate"|'
                            r'make an issuer-serial entry|unknown match type|unknown reason')


class Oas:
    """The document and what real answers showed of it."""

    def __init__(self, doc):
        self.doc = doc
        self.req_doc = to_draft4(doc)
        self.resp_doc = closed(self.req_doc)
        self.seen = {}          # (METHOD, pattern) -> statuses answered
        self.bodies = 0         # request bodies checked against a request schema

    def operation(self, method, path):
        path = path.split("?")[0]
        ops = self.doc["paths"]
        if path in ops and method.lower() in ops[path]:
            return path, ops[path][method.lower()]
        for pattern, item in ops.items():
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(pattern)) + "$"
            if re.match(rx, path) and method.lower() in item:
                return pattern, item[method.lower()]
        raise AssertionError(f"{method} {path}: not in the document")

    def valid(self, doc, schema, instance):
        v = Draft4Validator(schema, resolver=RefResolver.from_schema(doc))
        return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in v.iter_errors(instance)]

    def request_schema(self, op, ctype):
        content = op.get("requestBody", {}).get("content", {})
        return content.get((ctype or "").split(";")[0].strip().lower(), {}).get("schema")

    def check(self, method, path, status, headers, raw, body=None, ctype=None):
        """Asserts that the answer is one the document describes, and that the request body agrees
        with the request schema as the server judged it."""
        pattern, op = self.operation(method, path)
        where = f"{method} {path} -> {status}"
        assert str(status) in op["responses"], f"{where}: status not documented ({sorted(op['responses'])}): {raw[:300]!r}"
        resp = op["responses"][str(status)]
        lower = {k.lower(): v for k, v in headers.items()}
        for name, h in resp.get("headers", {}).items():
            if deref(self.doc, h).get("required"):
                assert name.lower() in lower, f"{where}: no {name} header: {headers}"
        ct = lower.get("content-type", "")
        content = resp["content"]
        mt = ct if ct in content else next((k for k in content if k.split(";")[0] == ct.split(";")[0].strip()), None)
        assert mt is not None, f"{where}: Content-Type {ct!r} not documented ({sorted(content)})"
        schema = content[mt]["schema"]
        if mt.endswith("json"):
            instance = json.loads(raw)
        elif deref(self.doc, schema).get("format") == "binary":
            assert deref(self.doc, schema)["type"] == "string" and raw, where
            instance = None
        else:
            instance = raw.decode()
        if instance is not None:
            errors = self.valid(self.resp_doc, to_draft4(closed(schema)), instance)
            assert not errors, f"{where}: the body does not match the documented schema: {errors}\n{raw[:2000]!r}"
        rs = self.request_schema(op, ctype) if isinstance(body, (dict, list)) else None
        if rs is not None:
            self.bodies += 1
            errors = self.valid(self.req_doc, to_draft4(rs), body)
            if 200 <= status < 300:
                assert not errors, f"{where}: the server took a body its request schema refuses: {errors}\n{body}"
            elif status == 400 and SHAPE_REFUSALS.search(json.loads(raw).get("detail", "")):
                assert errors, f"{where}: the server refused a body the request schema takes: {raw!r}\n{body}"
        self.seen.setdefault((method, pattern), set()).add(status)
        return instance

    def uncovered(self):
        """Operations not yet seen answering both a success and an error."""
        out = []
        for pattern, ops in self.doc["paths"].items():
            for method in ops:
                got = self.seen.get((method.upper(), pattern), set())
                if not any(200 <= s < 300 for s in got) or not any(s >= 400 for s in got):
                    out.append(f"{method.upper()} {pattern} {sorted(got)}")
        return out


class Client:
    """An Api whose every answer is checked against the document."""

    def __init__(self, api, oas, port):
        self.api, self.oas, self.port = api, oas, port

    def call(self, method, path, token=None, body=None, ctype="application/json", headers=None, want=None):
        status, h, raw = self.api.call(method, path, token, body, ctype=ctype, headers=headers)
        instance = self.oas.check(method, path, status, h, raw, body if body is not None else None,
                                  ctype if body is not None else None)
        if want is not None:
            assert status in (want if isinstance(want, tuple) else (want,)), f"{method} {path}: {status} {raw[:500]!r}"
        return status, h, instance

    def refused(self, method, path, token, body, field=None):
        """A body the server refuses (400) for its shape; it must be invalid per the request schema."""
        status, _, problem = self.call(method, path, token, body, want=400)
        assert SHAPE_REFUSALS.search(problem["detail"]), (body, problem)
        _, op = self.oas.operation(method, path)
        assert self.oas.valid(self.oas.req_doc, to_draft4(self.oas.request_schema(op, "application/json")), body), \
            f"{method} {path}: refused {problem['detail']!r}, yet valid per the document: {body}"
        if field is not None:
            assert problem.get("field") == field, (body, problem)
        return problem

    def oversized(self, method, path, token=None):
        """A request whose Content-Length is above max_body (8 MiB): 413 before a byte is read."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        try:
            c.putrequest(method, path)
            c.putheader("Content-Type", "application/json")
            c.putheader("Content-Length", str(9 * 1024 * 1024))
            if token is not None:
                c.putheader("Authorization", f"Bearer {token}")
            c.endheaders()
            r = c.getresponse()
            raw = r.read()
        finally:
            c.close()
        self.oas.check(method, path, r.status, dict(r.getheaders()), raw)
        assert r.status == 413, (method, path, r.status, raw)


@pytest.fixture
def ca_api(pki, gateway, echo, tmp_path):
    """The gateway with everything the API can show: a two-way listener trusting the root, a policy
    store, and the admin API whose CA is the root (its key in the token); tokens of each role."""
    tf, tokens = role_tokens(tmp_path, "ca", "ca.tokens")
    port = free_port()
    admin = (f'{{ bind: "127.0.0.1:{port}", tokens_file: "{tf}", ca_certificate: "{pki.root}", '
             f'ca_key: "{pki.token.uri("root")}", client_validity: 30d, crl_validity: 2d }}')
    g = gateway([listener(pki, "mtls", echo.port, auth="two-way")], policy_store=f'"{tmp_path / "policy.db"}"',
                admin=admin)
    g.wait_log("admin API on 127.0.0.1:%d" % port)
    return g, Api(port), tokens, port


@pytest.fixture
def bare_api(pki, gateway, echo, tmp_path):
    """The admin API with neither a policy store nor a CA: what those routes answer without them."""
    tf, tokens = role_tokens(tmp_path, "bare", "bare.tokens")
    port = free_port()
    g = gateway([listener(pki, "plain", echo.port)], admin=f'{{ bind: "127.0.0.1:{port}", tokens_file: "{tf}" }}')
    g.wait_log("admin API on 127.0.0.1:%d" % port)
    return g, Api(port), tokens, port


def fetch_doc(api):
    status, headers, raw = api.call("GET", "/v1/openapi.json")
    assert status == 200 and headers["Content-Type"] == "application/json", (status, headers, raw[:500])
    return json.loads(raw)


def der_of(pem_path):
    text = pem_path.read_text()
    return base64.b64decode("".join(l for l in text.splitlines() if l and not l.startswith("-----")))


# ---------------------------------------------------------------- tests


def test_document_is_valid_openapi(admin_gw):
    """(a) Structure: OpenAPI 3.0.3, every $ref resolves, every schema is OpenAPI's dialect and a valid
    JSON Schema, every operation has its parameters, closed request bodies and documented answers; the
    document is the same at every call (made from the route tables, not from the moment)."""
    _, api, _, _, _ = admin_gw
    doc = fetch_doc(api)
    n = check_document(doc)
    assert n >= 27, f"only {n} operations"
    assert fetch_doc(api) == doc
    # a few facts the handlers decide, as the document says them
    schemas = doc["components"]["schemas"]
    assert "removeFromCRL" not in schemas["ReasonInput"]["enum"] and "keyCompromise" in schemas["ReasonInput"]["enum"]
    assert set(schemas["MatchType"]["enum"]) == {"fingerprint", "spki", "subject", "cn", "san-dns", "san-uri",
                                                 "san-email", "issuer-serial"}
    imp = doc["paths"]["/v1/crls/{name}"]["post"]["requestBody"]["content"]
    assert set(imp) == {"application/json", "application/pkix-crl", "application/x-pem-file"}, imp
    assert set(doc["paths"]["/crl"]["get"]["responses"]["200"]["content"]) == {"application/pkix-crl"}
    assert set(doc["paths"]["/crl.pem"]["get"]["responses"]["200"]["content"]) == {"application/x-pem-file"}
    assert list(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"])[0].startswith("text/plain")
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, r in op["responses"].items():
                if status != "default" and int(status) >= 400:
                    assert "application/problem+json" in r["content"], (method, path, status)


def test_every_operation_answers_as_documented(ca_api, bare_api, pki, tmp_path):
    """(b, c) Every operation, with success and with errors, on a gateway with a store and a CA (and one
    without either): each status is documented for its operation, each body matches the schema of its
    status and media type, and each request body the server took is valid per the request schema."""
    g, api, tokens, port = ca_api
    oas = Oas(fetch_doc(api))
    c = Client(api, oas, port)
    rd, op, ad = tokens["reader"], tokens["operator"], tokens["admin"]
    root_pem = pki.root.read_text()

    # -- the API's own resources
    c.call("GET", "/v1/health", want=200)
    c.call("GET", "/metrics", want=200)
    c.call("GET", "/v1/openapi.json", want=200)
    c.call("GET", "/v1/listeners", rd, want=200)
    c.call("GET", "/v1/listeners", want=401)
    c.call("GET", "/v1/listeners", "not-a-token", want=401)
    for path in ("/v1/health", "/metrics", "/v1/openapi.json"):
        c.oversized("GET", path)

    # -- revocations
    victim = pki.client("oas-victim")[0].read_text()
    _, h, rec = c.call("POST", "/v1/revocations", op, {"certificate": victim, "reason": "keyCompromise",
                                                       "comment": "INC-1"}, want=201)
    _, _, page = c.call("GET", h["Location"], rd, want=200)
    assert [r["serial"] for r in page["items"]] == [rec["serial"]], page
    c.call("POST", "/v1/revocations", op, {"certificate": victim}, want=409)
    c.call("POST", "/v1/revocations", op, {"issuer_certificate": root_pem, "serial": "7a:01",
                                           "reason": "certificateHold", "revoked_at": "-1h"}, want=201)
    c.call("POST", "/v1/revocations", op, {"issuer_certificate": victim, "serial": "01"}, want=422)
    c.call("POST", "/v1/revocations", op, b"serial=01", ctype="application/x-www-form-urlencoded", want=415)
    c.call("POST", "/v1/revocations", rd, {"certificate": victim}, want=403)
    c.call("POST", "/v1/revocations/lift", op, {"issuer_certificate": root_pem, "serial": "7A01", "comment": "ok"},
           want=200)
    c.call("POST", "/v1/revocations/lift", op, {"issuer_certificate": root_pem, "serial": "7A01"}, want=404)
    c.call("POST", "/v1/revocations/lift", op, {"certificate": victim}, want=409)
    _, _, res = c.call("POST", "/v1/revocations/batch", op, {
        "revocations": [{"serial": "7B01"}, {"serial": "7B02", "reason": "superseded"}, {"certificate": victim}],
        "issuer_certificate": root_pem, "reason": "cessationOfOperation", "comment": "batch"}, want=200)
    assert res["requested"] == 3 and res["skipped"] == 1, res
    c.call("POST", "/v1/revocations/batch", op, {"revocations": [{"serial": "7B03"}]}, want=400)
    c.call("GET", "/v1/revocations", rd, want=200)
    c.call("GET", "/v1/revocations?limit=1", rd, want=200)
    c.call("GET", "/v1/revocations?issuer_hash=xyz", rd, want=400)
    c.call("GET", "/v1/revocations?limit=0", rd, want=400)

    # -- allowlists
    base = "/v1/allowlists/partners/entries"
    _, h, cn = c.call("POST", base, op, {"match": "cn", "value": "client-7", "expires_at": "+30d", "comment": "x"},
                      want=201)
    assert c.call("GET", h["Location"], rd, want=200)[2]["id"] == cn["id"]
    c.call("POST", base, op, {"match": "cn", "value": "client-7"}, want=409)
    friend = pki.client("oas-friend")[0].read_text()
    _, _, spki = c.call("POST", base, op, {"match": "spki", "certificate": friend}, want=201)
    c.call("POST", base, op, {"match": "issuer-serial", "issuer_certificate": root_pem, "serial": "0A",
                              "expires_at": None, "comment": None}, want=201)
    c.call("POST", base, op, {"match": "san-email", "certificate": friend}, want=422)
    c.call("POST", "/v1/allowlists/other/entries", op, {"match": "fingerprint", "certificate": friend}, want=201)
    c.call("GET", "/v1/allowlists", rd, want=200)
    _, _, lists = c.call("GET", "/v1/allowlists?limit=1", rd, want=200)
    assert lists["next"] == "other", lists
    c.call("GET", "/v1/allowlists?after=", rd, want=400)
    c.call("GET", base, rd, want=200)
    c.call("GET", "/v1/allowlists/bad%20name/entries", rd, want=400)
    c.call("GET", f"{base}/{cn['id']}", rd, want=200)
    c.call("GET", f"{base}/999999", rd, want=404)
    c.call("DELETE", f"{base}/{cn['id']}", op, {"comment": "offboarding"}, want=200)
    c.call("DELETE", f"{base}/{cn['id']}", op, want=404)
    c.call("DELETE", f"{base}/{spki['id']}?comment=bye", op, want=200)
    c.call("DELETE", f"{base}/1", rd, want=403)

    # -- imported CRLs (another CA, made with openssl)
    partner = OpenSslCa(tmp_path / "partner")
    gone = partner.client("gone")
    crl1, crl2 = partner.crl(1), partner.crl(2, revoked=[gone])
    _, h, crl = c.call("POST", "/v1/crls/partner", op, {"ca": partner.pem.read_text(), "crl": crl1.read_text(),
                                                         "comment": "first"}, want=201)
    assert crl["unchanged"] is False and h["Location"] == "/v1/crls/partner", (crl, h)
    _, _, same = c.call("POST", "/v1/crls/partner", op, {"crl": crl1.read_text()}, want=200)
    assert same["unchanged"] is True, same
    c.call("POST", "/v1/crls/partner?comment=daily", op, der_of(crl2), ctype="application/pkix-crl", want=200)
    _, _, problem = c.call("POST", "/v1/crls/partner", op, crl1.read_bytes(), ctype="application/x-pem-file", want=422)
    assert problem["code"] == "crl_rollback", problem
    c.call("POST", "/v1/crls/stranger", op, der_of(crl2), ctype="application/pkix-crl", want=422)
    c.call("POST", "/v1/crls/stranger", op, b"crl", ctype="text/plain", want=415)
    c.call("POST", "/v1/crls/123", op, {"crl": crl1.read_text()}, want=400)
    c.call("GET", "/v1/crls", rd, want=200)
    c.call("GET", "/v1/crls?after=x", rd, want=400)
    c.call("GET", "/v1/crls/partner", rd, want=200)
    c.call("GET", f"/v1/crls/{crl['id']}", rd, want=200)
    c.call("GET", "/v1/crls/nosuch", rd, want=404)
    _, _, listed = c.call("GET", "/v1/revocations?limit=1000", rd, want=200)
    assert any(r["source"] == f"crl:{crl['id']}" for r in listed["items"]), listed

    # -- the audit trail (every change above made a record)
    _, _, trail = c.call("GET", "/v1/audit?limit=3", rd, want=200)
    c.call("GET", f"/v1/audit?after={trail['next']}", rd, want=200)
    c.call("GET", "/v1/audit?after=x", rd, want=400)
    _, _, verdict = c.call("GET", "/v1/audit/verify", rd, want=200)
    assert verdict["intact"] is True, verdict
    c.call("GET", "/v1/audit/verify", want=401)

    # -- removing the CRL (after the trail was read with it)
    c.call("DELETE", "/v1/crls/partner", op, {"comment": "done"}, want=200)
    c.call("DELETE", "/v1/crls/partner", op, want=404)

    # -- certificates issued by the root in the HSM
    key, csr = tmp_path / "api.key", tmp_path / "api.csr"
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
         "-out", str(csr), "-subj", "/O=hsmgate tests/CN=oas-client"])
    _, h, issued = c.call("POST", "/v1/certificates", ad, {"csr": csr.read_text(), "validity_days": 10,
                                                           "comment": "onboarding"}, want=201)
    assert h["Location"] == f"/v1/certificates/{issued['serial']}", h
    c.call("GET", h["Location"], rd, want=200)
    ca_csr = tmp_path / "ca.csr"
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
         str(tmp_path / "ca.key"), "-out", str(ca_csr), "-subj", "/CN=not a ca", "-addext",
         "basicConstraints=critical,CA:TRUE"])
    c.call("POST", "/v1/certificates", ad, {"csr": ca_csr.read_text()}, want=422)
    c.call("POST", "/v1/certificates", ad, {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"}, want=400)
    c.call("POST", "/v1/certificates", ad, {"csr": csr.read_text(), "validity_days": 100000}, want=400)
    c.call("POST", "/v1/certificates", op, {"csr": csr.read_text()}, want=403)
    crt = tmp_path / "api.crt"
    crt.write_text(issued["certificate"])
    # the issued certificate connects (a live connection for /v1/connections), then is revoked
    with contextlib.ExitStack() as open_sockets:
        def connect(cert):
            s = client_ctx(pki, cert=cert).wrap_socket(socket.create_connection(("127.0.0.1", g.port("mtls")),
                                                                                timeout=WAIT), server_hostname="localhost")
            open_sockets.callback(s.close)
            s.sendall(b"x")
            assert s.recv(1) == b"x"
            return s
        connect((crt, key))
        other = connect(pki.client("oas-other"))

        # -- live connections
        _, _, conns = c.call("GET", "/v1/connections", rd, want=200)
        me = "127.0.0.1:%d" % other.getsockname()[1]
        (mine,) = [x for x in conns["items"] if x["peer"] == me]
        c.call("GET", "/v1/connections?listener=mtls&limit=1", rd, want=200)
        c.call("GET", "/v1/connections?listener=", rd, want=400)
        c.call("GET", f"/v1/connections/{mine['id']}", rd, want=200)
        c.call("GET", "/v1/connections/abc", rd, want=400)
        c.call("GET", "/v1/connections/987654321", rd, want=404)
        c.call("DELETE", f"/v1/connections/{mine['id']}", op, {"comment": "INC-7"}, want=(200, 202))
        c.call("DELETE", "/v1/connections/987654321", op, want=404)

        c.call("POST", "/v1/revocations", op, {"certificate": issued["certificate"], "reason": "affiliationChanged"},
               want=201)
        _, _, certs = c.call("GET", "/v1/certificates", rd, want=200)
        (mine,) = [x for x in certs["items"] if x["serial"] == issued["serial"]]
        assert mine["status"] == "revoked" and mine["revoked"]["reason"] == "affiliationChanged", mine
    c.call("GET", "/v1/certificates?limit=abc", rd, want=400)
    c.call("GET", "/v1/certificates/0102", rd, want=404)
    c.call("GET", "/v1/certificates/not-hex", rd, want=400)

    # -- the root's CRL
    _, _, pem = c.call("GET", "/crl.pem", want=200)
    assert pem.startswith("-----BEGIN X509 CRL-----"), pem
    c.call("GET", "/crl", want=200)

    # -- without a policy store or a CA
    _, bapi, btok, bport = bare_api
    b = Client(bapi, oas, bport)
    assert fetch_doc(bapi) == oas.doc
    b.call("GET", "/v1/health", want=200)
    b.call("GET", "/crl", want=404)
    b.call("GET", "/crl.pem", want=404)
    b.call("POST", "/v1/certificates", btok["admin"], {"csr": csr.read_text()}, want=503)
    for path in ("/v1/revocations", "/v1/allowlists", "/v1/crls", "/v1/audit", "/v1/audit/verify", "/v1/certificates",
                 "/v1/allowlists/partners/entries", "/v1/crls/partner", "/v1/certificates/0A"):
        b.call("GET", path, btok["reader"], want=503)

    assert not oas.uncovered(), "operations not seen with both a success and an error:\n" + "\n".join(oas.uncovered())
    assert oas.bodies >= 25, oas.bodies


def test_refused_bodies_are_invalid_per_document(ca_api, pki):
    """(c) Bodies the server refuses for their shape (an unknown member, a wrong type, a missing or
    conflicting one, a value outside an enumeration) are invalid per the request schema, and the
    base bodies they are made from are valid; nothing of it is applied."""
    g, api, tokens, port = ca_api
    oas = Oas(fetch_doc(api))
    c = Client(api, oas, port)
    op, ad = tokens["operator"], tokens["admin"]
    pem = pki.client("oas-shape")[0].read_text()
    root = pki.root.read_text()
    cases = {
        ("POST", "/v1/revocations", op): {"certificate": pem, "reason": "keyCompromise", "comment": "c"},
        ("POST", "/v1/revocations/batch", op): {"revocations": [{"serial": "0A"}], "issuer_certificate": root},
        ("POST", "/v1/revocations/lift", op): {"issuer_certificate": root, "serial": "0A", "comment": "c"},
        ("POST", "/v1/allowlists/shape/entries", op): {"match": "cn", "value": "client-1", "comment": "c"},
        ("DELETE", "/v1/allowlists/shape/entries/1", op): {"comment": "c"},
        ("POST", "/v1/crls/shape", op): {"crl": "x", "ca": root, "comment": "c"},
        ("DELETE", "/v1/crls/shape", op): {"comment": "c"},
        ("DELETE", "/v1/connections/1", op): {"comment": "c"},
        ("POST", "/v1/certificates", ad): {"csr": "x", "validity_days": 10, "comment": "c"},
    }
    for (method, path, tok), good in cases.items():
        _, o = oas.operation(method, path)
        schema = to_draft4(oas.request_schema(o, "application/json"))
        assert not oas.valid(oas.req_doc, schema, good), (method, path, good)
        c.refused(method, path, tok, dict(good, colour="blue"), field="colour")
        c.refused(method, path, tok, [good])
        for k, v in good.items():
            wrong = 12 if isinstance(v, str) else "12" if isinstance(v, int) else "x"
            c.refused(method, path, tok, dict(good, **{k: wrong}), field=k)
    # missing, conflicting and out-of-enumeration members
    r, b, al, ce = "/v1/revocations", "/v1/revocations/batch", "/v1/allowlists/shape/entries", "/v1/certificates"
    c.refused("POST", r, op, {})
    c.refused("POST", r, op, {"reason": "keyCompromise"})
    c.refused("POST", r, op, {"certificate": pem, "serial": "0A"})
    c.refused("POST", r, op, {"certificate": pem, "issuer_certificate": root})
    c.refused("POST", r, op, {"certificate": pem, "reason": "removeFromCRL"}, field="reason")
    c.refused("POST", r, op, {"certificate": pem, "reason": "sleepy"}, field="reason")
    c.refused("POST", "/v1/revocations/lift", op, {"serial": "0A", "certificate": pem})
    c.refused("POST", b, op, {"revocations": []}, field="revocations")
    c.refused("POST", b, op, {"revocations": "0A"}, field="revocations")
    c.refused("POST", b, op, {"issuer_certificate": root}, field="revocations")
    c.refused("POST", b, op, {"revocations": ["0A"], "issuer_certificate": root}, field="revocations[0]")
    c.refused("POST", b, op, {"revocations": [{"serial": "0A", "comment": "c"}], "issuer_certificate": root},
              field="revocations[0].comment")
    c.refused("POST", b, op, {"revocations": [{"serial": 10}], "issuer_certificate": root}, field="revocations[0].serial")
    c.refused("POST", b, op, {"revocations": [{"reason": "superseded"}], "issuer_certificate": root})
    c.refused("POST", al, op, {"value": "x"}, field="match")
    c.refused("POST", al, op, {"match": "colour", "value": "x"}, field="match")
    c.refused("POST", al, op, {"match": "cn"})
    c.refused("POST", al, op, {"match": "cn", "value": "x", "certificate": pem})
    c.refused("POST", al, op, {"match": "cn", "serial": "0A"})
    c.refused("POST", al, op, {"match": "cn", "issuer_certificate": root, "serial": "0A"}, field="issuer_certificate")
    c.refused("POST", "/v1/crls/shape", op, {"ca": root}, field="crl")
    c.refused("POST", ce, ad, {"validity_days": 10}, field="csr")
    c.refused("POST", ce, ad, {"csr": "x", "validity_days": 1.5}, field="validity_days")
    # nothing was applied
    assert api.json("GET", "/v1/revocations", tokens["reader"])["items"] == []
    assert api.json("GET", "/v1/allowlists", tokens["reader"])["items"] == []
    assert api.json("GET", "/v1/audit/verify", tokens["reader"])["records"] == 0
