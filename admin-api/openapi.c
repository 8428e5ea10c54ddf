/* openapi.c - the OpenAPI 3.0 description of the API, made at run time from the route tables that
 * http.c dispatches on, so it cannot drift from them: every route of every resource file appears with
 * its method, summary, path parameters ({name} segments), the role it needs and, for role > none,
 * the bearer security requirement; errors are RFC 9457 problem documents.
 */
#include <stdio.h>
#include <string.h>

#include "admin-api/adm_srv.h"

#define REF_PROBLEM "#/components/responses/Problem"

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

static json_t *ref(const char *r)
{
    return json_pack("{s:s}", "$ref", r);
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

static json_t *path_parameters(const char *pattern, int *bad)
{
    json_t *a = json_array();

    for (const char *p = strchr(pattern, '{'); a != NULL && p != NULL; p = strchr(p + 1, '{')) {
        const char *e = strchr(p, '}');
        if (e == NULL)
            break;
        char name[ADM_PARAM_MAX];
        snprintf(name, sizeof(name), "%.*s", (int)(e - p - 1), p + 1);
        push(a, json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", name, "in", "path", "required", 1, "schema", "type",
                          "string"), bad);
    }
    if (a == NULL)
        *bad = 1;
    return a;
}

static json_t *operation(const struct adm_route *r, int *bad)
{
    char id[160], tag[64];
    json_t *op = json_object(), *resp = json_object(), *params;

    operation_id(r->method, r->pattern, id, sizeof(id));
    route_tag(r->pattern, tag, sizeof(tag));
    put(op, "operationId", json_string(id), bad);
    put(op, "summary", json_string(r->summary != NULL ? r->summary : ""), bad);
    put(op, "tags", json_pack("[s]", tag), bad);
    put(op, "x-hsmgate-role", json_string(adm_role_name(r->role)), bad);
    params = path_parameters(r->pattern, bad);
    push(params, json_pack("{s:s}", "$ref", "#/components/parameters/RequestId"), bad);
    put(op, "parameters", params, bad);
    if (r->role > ADM_ROLE_NONE) {
        put(op, "security", json_pack("[{s:[]}]", "bearerAuth"), bad);
        put(resp, "401", ref(REF_PROBLEM), bad);
        put(resp, "403", ref(REF_PROBLEM), bad);
        put(resp, "429", ref(REF_PROBLEM), bad);
    } else {
        put(op, "security", json_array(), bad);
    }
    put(resp, "2XX", json_pack("{s:s}", "description", "Success"), bad);
    put(resp, "4XX", ref(REF_PROBLEM), bad);
    put(resp, "5XX", ref(REF_PROBLEM), bad);
    put(op, "responses", resp, bad);
    return op;
}

static json_t *components(void)
{
    return json_pack(
        "{s:{s:{s:s, s:s, s:s}},"
        " s:{s:{s:s, s:s, s:b, s:{s:s, s:s}, s:s}},"
        " s:{s:{s:s, s:{s:{s:{s:s}}}}},"
        " s:{s:{s:s, s:[s,s,s], s:{s:{s:s, s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s, s:s}, s:{s:s, s:s}}}}}",
        "securitySchemes", "bearerAuth", "type", "http", "scheme", "bearer", "description",
        "A token of the tokens file (admin-api/README.md); roles reader < operator < admin.",
        "parameters", "RequestId", "name", "X-Request-Id", "in", "header", "required", 0, "schema", "type", "string",
        "pattern", "^[A-Za-z0-9._-]{1,64}$",
        "description", "Echoed in the response and in problem documents; made up when absent or malformed.",
        "responses", "Problem", "description", "An RFC 9457 problem document", "content",
        "application/problem+json", "schema", "$ref", "#/components/schemas/Problem",
        "schemas", "Problem", "type", "object", "required", "type", "title", "status", "properties",
        "type", "type", "string", "default", "about:blank",
        "title", "type", "string",
        "status", "type", "integer",
        "detail", "type", "string",
        "instance", "type", "string",
        "field", "type", "string", "description", "The request field the problem is about",
        "code", "type", "string", "description", "The policy store's error name (e.g. crl_rollback)");
}

json_t *adm_openapi_document(void)
{
    json_t *doc, *paths = json_object();
    size_t ntables;
    int bad = 0;

    doc = json_pack("{s:s, s:{s:s, s:s, s:s}}", "openapi", "3.0.3", "info", "title", "hsmgate admin API",
                    "version", "1", "description",
                    "Manage the gateway's allowlists, revocations, CRLs and client certificates. Generated from "
                    "the server's route tables.");
    const struct adm_route *const *tables = adm_route_tables(&ntables);
    for (size_t t = 0; t < ntables; t++) {
        for (const struct adm_route *r = tables[t]; r->method != NULL; r++) {
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
    }
    put(doc, "paths", paths, &bad);
    put(doc, "components", components(), &bad);
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}
