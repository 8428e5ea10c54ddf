/* openapi.c - the OpenAPI 3.0.3 description of the API, made at run time from the route tables that
 * http.c dispatches on, so it cannot drift from them: every route of every resource file appears with
 * its method, summary, path parameters ({name} segments), the role it needs and, for role > none,
 * the bearer security requirement. What a handler reads and answers (query parameters, request and
 * response bodies per status and media type) is the route's doc (ADM_DOC in adm_int.h), written in
 * the resource file next to the handler; the schemas that several routes share are in the doc of the
 * table's final entry. This file adds what http.c and json.c do for every route (authentication, the
 * body cap, problem documents, the request id) and the formats every resource uses (times, serials,
 * hashes, pages). tests/integration/test_admin_openapi.py checks real answers against the result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "admin-api/adm_srv.h"
#include "gateway/log.h"

#define REF_SCHEMAS "#/components/schemas/"
#define REF_HEADERS "#/components/headers/"
#define REF_PARAMETERS "#/components/parameters/"

/* What json.c and http.c give every route, and the formats the resource files share. */
static const char base_components[] = ADM_DOC({
    "securitySchemes": {
        "bearerAuth": {"type": "http", "scheme": "bearer",
                       "description": "A token of the tokens file; roles reader < operator < admin (the TLS front: a certificate)"}
    },
    "parameters": {
        "RequestId": {"name": "X-Request-Id", "in": "header", "required": false,
                      "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
                      "description": "Echoed in the answer, its problem and the audit trail; made up when absent or malformed."},
        "Limit": {"name": "limit", "in": "query", "required": false,
                  "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                  "description": "Items on a page."},
        "After": {"name": "after", "in": "query", "required": false,
                  "schema": {"type": "string", "minLength": 1, "maxLength": 256},
                  "description": "The next cursor of the previous page (opaque)."},
        "Comment": {"name": "comment", "in": "query", "required": false, "schema": {"type": "string"},
                    "description": "Why, for the audit trail or the log, when there is no JSON body."}
    },
    "headers": {
        "X-Request-Id": {"required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
                         "description": "The request id (the client's X-Request-Id when sane, else made here)."},
        "Location": {"required": true, "schema": {"type": "string"}, "description": "Where the resource is."},
        "Retry-After": {"required": false, "schema": {"type": "integer", "minimum": 1},
                        "description": "Seconds to wait before trying again."},
        "WWW-Authenticate": {"required": false, "schema": {"type": "string"},
                             "description": "Bearer realm=\"hsmgate-admin\" (error=\"invalid_token\": RFC 6750 3)."}
    },
    "schemas": {
        "Problem": {"type": "object", "required": ["type", "title", "status"],
                    "description": "An RFC 9457 problem document.",
                    "properties": {
                        "type": {"type": "string", "default": "about:blank"},
                        "title": {"type": "string", "description": "The status's reason phrase."},
                        "status": {"type": "integer", "minimum": 400, "maximum": 599},
                        "detail": {"type": "string"},
                        "instance": {"type": "string", "pattern": "^urn:request:[A-Za-z0-9._-]{1,64}$",
                                     "description": "The request id, as in X-Request-Id and the log line."},
                        "field": {"type": "string", "description": "The request field at fault (revocations[12].serial)."},
                        "code": {"type": "string", "description": "The policy store's error name (crl_rollback, exists, ...)."}}},
        "Timestamp": {"type": "string", "format": "date-time",
                      "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
                      "description": "RFC 3339, UTC, whole seconds."},
        "TimestampOrNull": {"type": "string", "format": "date-time", "nullable": true,
                            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
                            "description": "RFC 3339, UTC, whole seconds; null: none."},
        "TimeInput": {"type": "string", "nullable": true,
                      "pattern": "^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z|[+-][0-9]+[smhd])$",
                      "description": "RFC 3339 UTC (2026-01-31T12:00:00Z), or from now (-2h, +30d). null counts as absent."},
        "Serial": {"type": "string", "pattern": "^([0-9A-F]{2}){1,32}$",
                   "description": "A certificate serial number (or CRL number): upper-case hex, whole octets, no separators."},
        "SerialInput": {"type": "string", "nullable": true, "pattern": "^(0[xX])?[0-9A-Fa-f:]*[0-9A-Fa-f][0-9A-Fa-f:]*$",
                        "description": "A serial of at most 32 octets, hex (8F1234, 8f:12:34). null counts as absent."},
        "Sha256Hex": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "A SHA-256, lower-case hex."},
        "Pem": {"type": "string", "nullable": true, "minLength": 1,
                "description": "A certificate, PEM or bare base64 of its DER. null counts as absent."},
        "Comment": {"type": "string", "nullable": true,
                    "description": "Why, recorded in the audit trail with who made the change. null counts as absent."},
        "Generation": {"type": "integer", "minimum": 0,
                       "description": "The policy store generation this change made (in the answer to a change)."},
        "CommentBody": {"type": "object", "additionalProperties": false, "description": "Why (DELETE; or ?comment=).",
                        "properties": {"comment": {"$ref": "Comment"}}},
        "NextCursor": {"type": "string", "nullable": true, "minLength": 1,
                       "description": "Pass as ?after= for the next page; null on the last page."}
    }
});

/* json_object_set_new that remembers a failure instead of returning it at every call. */
static void put(json_t *o, const char *k, json_t *v, int *bad)
{
    if (o == NULL || v == NULL || json_object_set_new(o, k, v) != 0) {
        json_decref(v);
        *bad = 1;
    }
}

static void push(json_t *a, json_t *v, int *bad)
{
    if (a == NULL || v == NULL || json_array_append_new(a, v) != 0) {
        json_decref(v);
        *bad = 1;
    }
}

static json_t *ref(const char *prefix, const char *name)
{
    char r[192];
    snprintf(r, sizeof(r), "%s%s", prefix, name);
    return json_pack("{s:s}", "$ref", r);
}

/* A doc's JSON text (NULL: nothing to say). what names it in the log when it does not parse. */
static json_t *doc_load(const char *text, const char *what)
{
    json_error_t je;
    json_t *d;

    if (text == NULL)
        return json_object();
    d = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (d == NULL || !json_is_object(d)) {
        gw_log(LOG_ERR, "admin: the OpenAPI doc of %s does not parse (column %d: %s)", what, je.column,
               d == NULL ? je.text : "not an object");
        json_decref(d);
        return NULL;
    }
    return d;
}

/* {"$ref": "Name"} -> {"$ref": "#/components/schemas/Name"}, everywhere in v. */
static void refs_expand(json_t *v, int *bad)
{
    const char *k;
    json_t *x;
    size_t i;

    if (json_is_array(v)) {
        json_array_foreach(v, i, x)
            refs_expand(x, bad);
        return;
    }
    if (!json_is_object(v))
        return;
    json_object_foreach(v, k, x) {
        if (strcmp(k, "$ref") == 0 && json_is_string(x) && json_string_value(x)[0] != '#') {
            char r[192];
            snprintf(r, sizeof(r), REF_SCHEMAS "%s", json_string_value(x));
            if (json_string_set(x, r) != 0)
                *bad = 1;
        } else {
            refs_expand(x, bad);
        }
    }
}

/* A doc's keys must be known ones: a typo would silently leave a route undescribed. */
static int doc_keys_ok(json_t *d, const char *const known[], const char *what)
{
    const char *k;
    json_t *v;

    json_object_foreach(d, k, v) {
        size_t i = 0;
        while (known[i] != NULL && strcmp(known[i], k) != 0)
            i++;
        if (known[i] == NULL) {
            gw_log(LOG_ERR, "admin: the OpenAPI doc of %s has an unknown key \"%s\"", what, k);
            return -1;
        }
    }
    return 0;
}

/* "get /v1/allowlists/{name}/entries" -> "getV1AllowlistsNameEntries" (unique per method and path). */
static void operation_id(const char *method, const char *pattern, char *out, size_t cap)
{
    size_t o = 0;
    int up = 1;

    for (const char *m = method; *m != '\0' && o + 1 < cap; m++)
        out[o++] = (char)(*m >= 'A' && *m <= 'Z' ? *m - 'A' + 'a' : *m);
    for (const char *p = pattern; *p != '\0' && o + 1 < cap; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
            up = 1;
            continue;
        }
        if (up && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        up = 0;
        out[o++] = c;
    }
    out[o] = '\0';
}

/* The resource a route belongs to: the segment after /v1, or the first one ("metrics", "crl"). */
static void route_tag(const char *pattern, char *out, size_t cap)
{
    const char *p = pattern;
    size_t n;

    if (strncmp(p, "/v1/", 4) == 0)
        p += 4;
    else if (*p == '/')
        p++;
    n = strcspn(p, "/.{");
    snprintf(out, cap, "%.*s", (int)(n > 0 ? n : 1), n > 0 ? p : "/");
}

/* The {name} segments (schema from the doc's "path", else a string), the request id header, and the
 * doc's "query" parameters. */
static json_t *parameters(const char *pattern, json_t *path, json_t *query, const char *what, int *bad)
{
    json_t *a = json_array(), *q;
    size_t named = 0, i;

    for (const char *p = strchr(pattern, '{'); a != NULL && p != NULL; p = strchr(p + 1, '{')) {
        const char *e = strchr(p, '}');
        if (e == NULL)
            break;
        char name[ADM_PARAM_MAX];
        snprintf(name, sizeof(name), "%.*s", (int)(e - p - 1), p + 1);
        json_t *schema = json_object_get(path, name);
        named += schema != NULL;
        schema = schema != NULL ? json_deep_copy(schema) : json_pack("{s:s, s:i}", "type", "string", "minLength", 1);
        push(a, json_pack("{s:s, s:s, s:b, s:o}", "name", name, "in", "path", "required", 1, "schema", schema), bad);
    }
    if (path != NULL && named != json_object_size(path)) {
        gw_log(LOG_ERR, "admin: the OpenAPI doc of %s describes a path parameter the route does not have", what);
        *bad = 1;
    }
    push(a, ref(REF_PARAMETERS, "RequestId"), bad);
    json_array_foreach(query, i, q) {
        if (json_is_string(q)) {
            push(a, ref(REF_PARAMETERS, json_string_value(q)), bad);
        } else if (json_is_object(q)) {
            json_t *c = json_deep_copy(q);
            put(c, "in", json_string("query"), bad);
            if (json_object_get(c, "required") == NULL)
                put(c, "required", json_false(), bad);
            push(a, c, bad);
        } else {
            *bad = 1;
        }
    }
    if (a == NULL)
        *bad = 1;
    return a;
}

static const char *reason(int status)
{
    const char *r = MHD_get_reason_phrase_for((unsigned)status);
    return r != NULL && r[0] != '\0' ? r : "Response";
}

/* The headers every answer carries, and those of its status. */
static json_t *headers_of(int status, json_t *named, int *bad)
{
    json_t *h = json_object(), *v;
    size_t i;

    put(h, "X-Request-Id", ref(REF_HEADERS, "X-Request-Id"), bad);
    if (status == 201)
        put(h, "Location", ref(REF_HEADERS, "Location"), bad);
    if (status == 429 || status == 503)
        put(h, "Retry-After", ref(REF_HEADERS, "Retry-After"), bad);
    if (status == 401)
        put(h, "WWW-Authenticate", ref(REF_HEADERS, "WWW-Authenticate"), bad);
    json_array_foreach(named, i, v) {
        if (!json_is_string(v))
            *bad = 1;
        else
            put(h, json_string_value(v), ref(REF_HEADERS, json_string_value(v)), bad);
    }
    return h;
}

static json_t *problem_response(int status, const char *why, int *bad)
{
    json_t *r = json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", why != NULL && why[0] != '\0' ? why : reason(status),
                          "content", "application/problem+json", "schema", "$ref", REF_SCHEMAS "Problem");
    put(r, "headers", headers_of(status, NULL, bad), bad);
    return r;
}

/* One entry of a doc's "responses" (adm_int.h): a problem's "when", a JSON schema, or a response with
 * its own content. */
static json_t *response_of(int status, json_t *spec, int *bad)
{
    json_t *r, *content, *m;
    const char *mt;

    if (json_is_string(spec))
        return problem_response(status, json_string_value(spec), bad);
    if (!json_is_object(spec)) {
        *bad = 1;
        return NULL;
    }
    content = json_object_get(spec, "content");
    if (content == NULL) {
        r = json_pack("{s:s, s:{s:{s:O}}}", "description", reason(status), "content", "application/json", "schema", spec);
        put(r, "headers", headers_of(status, NULL, bad), bad);
        return r;
    }
    const char *d = json_string_value(json_object_get(spec, "description"));
    r = json_pack("{s:s, s:{}}", "description", d != NULL ? d : reason(status), "content");
    json_object_foreach(content, mt, m)
        put(json_object_get(r, "content"), mt, json_pack("{s:O}", "schema", m), bad);
    put(r, "headers", headers_of(status, json_object_get(spec, "headers"), bad), bad);
    return r;
}

static void generic(json_t *resp, const char *status, const char *why, int *bad)
{
    if (json_object_get(resp, status) == NULL)
        put(resp, status, problem_response(atoi(status), why, bad), bad);
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* resp with its statuses in order ("default", after the digits, comes last). Steals resp. */
static json_t *responses_sorted(json_t *resp, int *bad)
{
    const char *keys[64], *k;
    size_t n = 0;
    json_t *v, *out = json_object();

    json_object_foreach(resp, k, v) {
        if (n == sizeof(keys) / sizeof(keys[0])) {
            *bad = 1;
            break;
        }
        keys[n++] = k;
    }
    qsort(keys, n, sizeof(keys[0]), key_cmp);
    for (size_t i = 0; i < n; i++)
        put(out, keys[i], json_incref(json_object_get(resp, keys[i])), bad);
    json_decref(resp);
    return out;
}

static json_t *operation(const struct adm_route *r, int *bad)
{
    static const char *const keys[] = { "path", "query", "request", "request_optional", "responses", NULL };
    char id[160], tag[64], what[192];
    json_t *op = json_object(), *resp = json_object(), *doc, *v, *req;
    const char *k;

    snprintf(what, sizeof(what), "%s %s", r->method, r->pattern);
    doc = doc_load(r->doc, what);
    if (doc == NULL || doc_keys_ok(doc, keys, what) != 0) {
        json_decref(doc);
        json_decref(op);
        json_decref(resp);
        *bad = 1;
        return NULL;
    }
    refs_expand(doc, bad);
    operation_id(r->method, r->pattern, id, sizeof(id));
    route_tag(r->pattern, tag, sizeof(tag));
    put(op, "operationId", json_string(id), bad);
    put(op, "summary", json_string(r->summary != NULL ? r->summary : ""), bad);
    put(op, "tags", json_pack("[s]", tag), bad);
    put(op, "x-hsmgate-role", json_string(adm_role_name(r->role)), bad);
    put(op, "parameters", parameters(r->pattern, json_object_get(doc, "path"), json_object_get(doc, "query"), what, bad), bad);
    put(op, "security", r->role > ADM_ROLE_NONE ? json_pack("[{s:[]}]", "bearerAuth") : json_array(), bad);
    if ((req = json_object_get(doc, "request")) != NULL) {
        json_t *body = json_pack("{s:b, s:{}}", "required", !json_is_true(json_object_get(doc, "request_optional")),
                                 "content");
        json_object_foreach(req, k, v)
            put(json_object_get(body, "content"), k, json_pack("{s:O}", "schema", v), bad);
        put(op, "requestBody", body, bad);
    }
    json_object_foreach(json_object_get(doc, "responses"), k, v) {
        int status = atoi(k);
        if (status < 100 || status > 599 || strlen(k) != 3) {
            gw_log(LOG_ERR, "admin: the OpenAPI doc of %s has a response \"%s\"", what, k);
            *bad = 1;
            continue;
        }
        put(resp, k, response_of(status, v, bad), bad);
    }
    if (r->role > ADM_ROLE_NONE) {
        generic(resp, "401", "No bearer token, or one that is not valid (WWW-Authenticate says which)", bad);
        generic(resp, "403", "The caller's role is below this operation's (x-hsmgate-role)", bad);
        generic(resp, "429", "Too many failed authentications from this address: wait Retry-After seconds", bad);
    }
    generic(resp, "413", "The body is larger than the server's max_body (8 MiB by default); nothing was read", bad);
    if (json_object_get(req, "application/json") != NULL)
        generic(resp, "415", "The body is not Content-Type: application/json", bad);
    generic(resp, "500", "An internal error (the log says more, under the request id)", bad);
    put(resp, "default", problem_response(0, "Any other problem", bad), bad);
    put(op, "responses", responses_sorted(resp, bad), bad);
    json_decref(doc);
    return op;
}

/* The shared schemas of a table (its final entry's doc) into components/schemas, refusing a name
 * defined twice. */
static void table_schemas(const struct adm_route *end, json_t *schemas, int *bad)
{
    static const char *const keys[] = { "schemas", NULL };
    json_t *doc, *v;
    const char *k;

    if (end->doc == NULL)
        return;
    doc = doc_load(end->doc, "a route table's shared schemas");
    if (doc == NULL || doc_keys_ok(doc, keys, "a route table's shared schemas") != 0) {
        json_decref(doc);
        *bad = 1;
        return;
    }
    refs_expand(doc, bad);
    json_object_foreach(json_object_get(doc, "schemas"), k, v) {
        if (json_object_get(schemas, k) != NULL) {
            gw_log(LOG_ERR, "admin: the OpenAPI schema %s is defined twice", k);
            *bad = 1;
            continue;
        }
        put(schemas, k, json_incref(v), bad);
    }
    json_decref(doc);
}

json_t *adm_openapi_document(void)
{
    json_t *doc, *paths = json_object(), *comp = doc_load(base_components, "openapi.c");
    size_t ntables;
    int bad = comp == NULL;

    refs_expand(comp, &bad);

    doc = json_pack("{s:s, s:{s:s, s:s, s:s}}", "openapi", "3.0.3", "info", "title", "hsmgate admin API",
                    "version", "1", "description",
                    "Manage the gateway's allowlists, revocations, CRLs and client certificates. Generated from "
                    "the server's route tables. Answers may gain members: clients ignore those they do not know.");
    const struct adm_route *const *tables = adm_route_tables(&ntables);
    for (size_t t = 0; t < ntables && !bad; t++) {
        const struct adm_route *r = tables[t];
        for (; r->method != NULL; r++) {
            char m[16];
            size_t i = 0;
            json_t *item;
            if (r->pattern == NULL)
                continue;
            item = json_object_get(paths, r->pattern);
            if (item == NULL) {
                item = json_object();
                put(paths, r->pattern, item, &bad);     /* paths keeps the reference */
                if (bad)
                    break;
            }
            for (; r->method[i] != '\0' && i + 1 < sizeof(m); i++)
                m[i] = (char)(r->method[i] >= 'A' && r->method[i] <= 'Z' ? r->method[i] - 'A' + 'a' : r->method[i]);
            m[i] = '\0';
            put(item, m, operation(r, &bad), &bad);
        }
        if (r->method == NULL)
            table_schemas(r, json_object_get(comp, "schemas"), &bad);
    }
    put(doc, "paths", paths, &bad);
    put(doc, "components", comp, &bad);
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}
