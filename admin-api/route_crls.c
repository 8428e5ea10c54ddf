/* route_crls.c - /v1/crls: CRLs of other CAs imported into the policy store (list, get, import,
 * remove). The CLI equivalent is `hsmgate crl import|ls` (gateway/cmd_policy.c).
 *
 * {name} is an operator-chosen name ([A-Za-z0-9._-]{1,64}, not all digits) stored with the CRL and
 * bound to its CA (pol_store_crl_import_named); a number addresses a CRL by its id instead, which is
 * how CRLs imported by the CLI (which have no name) are reached, and what revocations' "source":
 * "crl:<id>" refers to.
 *
 * A CRL is accepted only with its CA's signature, so the first import under a name gives the CA's
 * certificate: a JSON body {"ca": PEM, "crl": PEM or base64 DER}. The store keeps that certificate, so
 * later CRLs of the same CA (the daily refresh) may be sent as they are: Content-Type
 * application/pkix-crl (DER) or application/x-pem-file (PEM), verified against the kept certificate.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin-api/adm_int.h"

#define PEM_MAX (64u * 1024)

static void hex_of(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static json_t *crl_json(const struct pol_crl_row *row, time_t now)
{
    char num[2 * POL_SERIAL_MAX + 1], hash[2 * POL_HASH_LEN + 1];
    int has_num = row->number != NULL && row->number_len > 0 && row->number_len <= POL_SERIAL_MAX;
    if (has_num)
        pol_serial_format(row->number, row->number_len, num, sizeof(num));
    hex_of(row->issuer_hash, POL_HASH_LEN, hash);
    return json_pack("{s:I, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:I, s:b, s:b}", "id", (json_int_t)row->id, "name",
                     adm_jtext(row->name), "issuer", adm_jtext(row->issuer_text), "issuer_hash", hash, "crl_number",
                     has_num ? json_string(num) : json_null(), "this_update", adm_jtime(row->this_update), "next_update",
                     adm_jtime(row->next_update), "imported_at", adm_jtime(row->imported_at), "entries",
                     (json_int_t)row->entries, "stale", row->next_update != 0 && row->next_update < now, "ca_kept",
                     row->ca_der != NULL);
}

/* Walks the CRLs for a listing page, or for one CRL (by name, or by id when name is NULL). */
struct crl_walk {
    json_t *items;
    const char *name;
    int64_t id;                 /* one CRL: its id (name NULL); a page: the cursor */
    int one;
    size_t limit, n;
    int more;
    int64_t last_id;
    uint8_t *ca_der;            /* one CRL: a copy of the CA certificate kept with it */
    size_t ca_len;
    time_t now;
};

static int walk_row(void *arg, const struct pol_crl_row *row)
{
    struct crl_walk *w = arg;
    if (w->one) {
        if (w->name != NULL ? row->name == NULL || strcmp(row->name, w->name) != 0 : row->id != w->id)
            return 0;
        if (row->ca_der != NULL && (w->ca_der = malloc(row->ca_len)) != NULL) {
            memcpy(w->ca_der, row->ca_der, row->ca_len);
            w->ca_len = row->ca_len;
        }
    } else {
        if (row->id <= w->id)
            return 0;
        if (w->n == w->limit) {
            w->more = 1;
            return 1;
        }
    }
    json_t *o = crl_json(row, w->now);
    if (o == NULL || json_array_append_new(w->items, o) != 0)
        return POL_E_NOMEM;
    w->n++;
    w->last_id = row->id;
    return w->one ? 1 : 0;
}

/* One CRL (name, or id when name is NULL) as JSON, and a copy of its kept CA certificate if asked
 * (ca may be NULL). NULL when there is none (*rc 0) or the store failed (*rc). */
static json_t *crl_find(struct pol_store *st, const char *name, int64_t id, uint8_t **ca, size_t *ca_len, int *rc,
                        char *err, size_t errlen)
{
    struct crl_walk w;
    json_t *found = NULL;
    memset(&w, 0, sizeof(w));
    w.items = json_array();
    w.name = name;
    w.id = id;
    w.one = 1;
    w.now = time(NULL);
    *rc = w.items == NULL ? POL_E_NOMEM : pol_store_crls_each(st, walk_row, &w, err, errlen);
    if (*rc == 1)
        *rc = 0;
    if (*rc == 0 && w.n == 1)
        found = json_incref(json_array_get(w.items, 0));
    json_decref(w.items);
    if (found != NULL && ca != NULL) {
        *ca = w.ca_der;
        *ca_len = w.ca_len;
        w.ca_der = NULL;
    }
    free(w.ca_der);
    w.ca_der = NULL;
    return found;
}

/* {name}: a CRL name, or (digits) an id. Returns 0 with *name or *id set, or -1 with a 404. */
static int which_crl(struct adm_req *req, struct adm_resp *resp, const char **name, int64_t *id)
{
    const char *p = req->nparams > 0 ? req->params[0] : "";
    long long v = adm_id_of(p);
    *name = NULL;
    *id = 0;
    if (v > 0) {
        *id = (int64_t)v;
        return 0;
    }
    if (!pol_crl_name_ok(p)) {
        adm_problem(resp, 404, "name", "no such CRL (a name is 1 to 64 letters, digits, '.', '_' or '-'; a number is "
                    "an id)");
        return -1;
    }
    *name = p;
    return 0;
}

static int crls_list(struct adm_req *req, struct adm_resp *resp)
{
    struct pol_store *st = adm_need_store(req, resp);
    struct crl_walk w;
    const char *after = NULL;
    char err[512] = "", next[24];
    if (st == NULL)
        return 0;
    memset(&w, 0, sizeof(w));
    if (adm_page(req, resp, &w.limit, &after) != 0)
        return 0;
    if (after != NULL && (w.id = adm_id_of(after)) < 0) {
        adm_problem(resp, 400, "after", "after must be the cursor of a previous page");
        return 0;
    }
    w.now = time(NULL);
    if ((w.items = json_array()) == NULL) {
        adm_problem(resp, 500, NULL, "out of memory");
        return 0;
    }
    int rc = pol_store_crls_each(st, walk_row, &w, err, sizeof(err));
    if (rc != 0 && rc != 1) {
        json_decref(w.items);
        adm_pol_problem(resp, rc, err);
        return 0;
    }
    snprintf(next, sizeof(next), "%lld", (long long)w.last_id);
    adm_json(resp, 200, json_pack("{s:o, s:o}", "items", w.items, "next", w.more ? json_string(next) : json_null()));
    return 0;
}

static int crl_get(struct adm_req *req, struct adm_resp *resp)
{
    struct pol_store *st = adm_need_store(req, resp);
    const char *name;
    char err[512] = "";
    int64_t id;
    int rc = 0;
    if (st == NULL || which_crl(req, resp, &name, &id) != 0)
        return 0;
    json_t *o = crl_find(st, name, id, NULL, NULL, &rc, err, sizeof(err));
    if (rc != 0)
        adm_pol_problem(resp, rc, err);
    else if (o == NULL)
        adm_problem(resp, 404, "name", "no such CRL");
    else
        adm_json(resp, 200, o);
    return 0;
}

/* Is the request's Content-Type this media type (parameters ignored)? */
static int ctype_is(const char *ct, const char *type)
{
    size_t n = strlen(type);
    if (ct == NULL)
        return 0;
    ct += strspn(ct, " \t");
    return strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

/* The status and field for a pol_crl_parse failure. */
static void crl_refused(struct adm_resp *resp, int rc, const char *err)
{
    switch (rc) {
    case POL_E_DER:
    case POL_E_ARG:
        adm_problem(resp, 400, "crl", "the CRL does not parse: %s", err);
        break;
    case POL_E_CRL_SIGNATURE:
    case POL_E_CRL_ISSUER:
    case POL_E_CRL_CRITICAL:
    case POL_E_UNSUPPORTED:
        adm_problem(resp, 422, "crl", "the CRL is refused (%s): %s", pol_errname(rc), err);
        break;
    case POL_E_CERT:
        adm_problem(resp, 422, "ca", "the CA certificate cannot verify CRLs: %s", err);
        break;
    default:
        adm_pol_problem(resp, rc, err);
        break;
    }
}

static int crl_import(struct adm_req *req, struct adm_resp *resp)
{
    static const char *const fields[] = { "ca", "crl", "comment", NULL };
    struct pol_store *st = adm_need_store(req, resp);
    struct pol_crl *crl = NULL;
    struct pol_cert *ca_cert = NULL;
    struct pol_actor who;
    const char *name, *ca = NULL, *crl_text = NULL, *comment = NULL;
    const uint8_t *crl_in = NULL;
    uint8_t *ca_der = NULL, *crl_der = NULL;
    size_t ca_len = 0, crl_len = 0;
    char err[1024] = "";
    int unchanged = 0, rc = 0;
    uint64_t gen = 0;
    json_t *body = NULL, *before = NULL;

    if (st == NULL)
        return 0;
    name = req->nparams > 0 ? req->params[0] : "";
    if (!pol_crl_name_ok(name)) {
        adm_problem(resp, 400, "name", "a CRL name is 1 to 64 letters, digits, '.', '_' or '-', and not a number "
                    "(numbers address CRLs by id)");
        return 0;
    }
    if (ctype_is(req->content_type, "application/json")) {
        if (adm_body_object(req, resp, &body) != 0 || adm_only_fields(resp, body, fields) != 0 ||
            adm_field_string(resp, body, "crl", 1, &crl_text) != 0 || adm_field_string(resp, body, "ca", 0, &ca) != 0 ||
            adm_field_string(resp, body, "comment", 0, &comment) != 0)
            goto out;
        if (pol_pem_decode((const uint8_t *)crl_text, strlen(crl_text), "X509 CRL", 1, &crl_der, &crl_len, err,
                           sizeof(err)) != 0) {
            adm_problem(resp, 400, "crl", "crl: %s", err);
            goto out;
        }
        crl_in = crl_der;
    } else if (ctype_is(req->content_type, "application/pkix-crl") ||
               ctype_is(req->content_type, "application/x-pem-file")) {
        if (req->body_len == 0) {
            adm_problem(resp, 400, "crl", "the body is empty; the CRL was expected");
            goto out;
        }
        crl_in = (const uint8_t *)req->body;
        crl_len = req->body_len;
        comment = adm_query(req, "comment");
    } else {
        adm_problem(resp, 415, NULL, "send application/json {\"ca\": PEM, \"crl\": PEM or base64 DER}, or the CRL "
                    "itself as application/pkix-crl (DER) or application/x-pem-file (PEM)");
        goto out;
    }
    before = crl_find(st, name, 0, ca == NULL ? &ca_der : NULL, &ca_len, &rc, err, sizeof(err));
    if (rc != 0) {
        adm_pol_problem(resp, rc, err);
        goto out;
    }
    if (ca != NULL) {
        if (strlen(ca) > PEM_MAX ||
            pol_pem_decode((const uint8_t *)ca, strlen(ca), "CERTIFICATE", 1, &ca_der, &ca_len, err, sizeof(err)) != 0) {
            adm_problem(resp, 400, "ca", "ca: %s", strlen(ca) > PEM_MAX ? "too long for a certificate" : err);
            goto out;
        }
        if (pol_cert_from_der(ca_der, ca_len, &ca_cert) != 0) {
            adm_problem(resp, 400, "ca", "ca: not an X.509 certificate");
            goto out;
        }
    } else if (ca_der == NULL) {
        adm_problem(resp, 422, "ca", "no CA certificate is kept for a CRL named \"%s\": the first import under a name "
                    "gives it, as JSON {\"ca\": PEM, \"crl\": ...}", name);
        goto out;
    }
    if ((rc = pol_crl_parse(crl_in, crl_len, ca_der, ca_len, &crl, err, sizeof(err))) != 0) {
        crl_refused(resp, rc, err);
        goto out;
    }
    adm_actor(req, comment, &who);
    rc = pol_store_crl_import_named(st, name, ca_der, ca_len, crl, &who, &unchanged, &gen, err, sizeof(err));
    if (rc != 0) {
        if (rc == POL_E_CRL_ISSUER)
            adm_problem(resp, 422, "ca", "%s", err);
        else
            adm_pol_problem(resp, rc, err);
        goto out;
    }
    adm_changed(req);
    json_t *o = crl_find(st, name, 0, NULL, NULL, &rc, NULL, 0);
    if (o == NULL)
        o = json_pack("{s:s}", "name", name);
    if (o != NULL) {
        json_object_set_new(o, "unchanged", json_boolean(unchanged));
        json_object_set_new(o, "generation", json_integer((json_int_t)gen));
    }
    snprintf(resp->location, sizeof(resp->location), "/v1/crls/%.64s", name);
    adm_json(resp, before == NULL ? 201 : 200, o);
out:
    pol_crl_free(crl);
    crl = NULL;
    pol_cert_free(ca_cert);
    ca_cert = NULL;
    free(ca_der);
    ca_der = NULL;
    free(crl_der);
    crl_der = NULL;
    json_decref(before);
    json_decref(body);
    return 0;
}

static int crl_delete(struct adm_req *req, struct adm_resp *resp)
{
    static const char *const fields[] = { "comment", NULL };
    struct pol_store *st = adm_need_store(req, resp);
    struct pol_actor who;
    const char *name, *comment = NULL;
    char err[1024] = "";
    int64_t id;
    int rc = 0;
    uint64_t gen = 0;
    json_t *body = NULL, *before = NULL;

    if (st == NULL || which_crl(req, resp, &name, &id) != 0)
        return 0;
    /* Why, from a JSON body {"comment": ...} or ?comment=. */
    if (req->body_len > 0) {
        if (adm_body_object(req, resp, &body) != 0 || adm_only_fields(resp, body, fields) != 0 ||
            adm_field_string(resp, body, "comment", 0, &comment) != 0)
            goto out;
    } else {
        comment = adm_query(req, "comment");
    }
    before = crl_find(st, name, id, NULL, NULL, &rc, err, sizeof(err));
    if (rc != 0) {
        adm_pol_problem(resp, rc, err);
        goto out;
    }
    if (before == NULL) {
        adm_problem(resp, 404, "name", "no such CRL");
        goto out;
    }
    adm_actor(req, comment, &who);
    rc = pol_store_crl_remove(st, name, id, &who, &gen, err, sizeof(err));
    if (rc != 0) {
        adm_pol_problem(resp, rc, err);
        goto out;
    }
    adm_changed(req);
    adm_json(resp, 200, json_pack("{s:O, s:I}", "deleted", before, "generation", (json_int_t)gen));
out:
    json_decref(before);
    json_decref(body);
    return 0;
}

const struct adm_route adm_routes_crls[] = {
    { "GET", "/v1/crls", ADM_ROLE_READER, crls_list, "List imported CRLs of other CAs",
      ADM_DOC({"query": ["Limit", "After"],
               "responses": {"200": {"$ref": "CrlPage"},
                             "400": "limit or after is malformed (field names it)",
                             "503": "No policy store is configured, or it cannot be read now"}}) },
    { "GET", "/v1/crls/{name}", ADM_ROLE_READER, crl_get, "Get an imported CRL (by name, or by id)",
      ADM_DOC({"path": {"name": {"$ref": "CrlNameOrId"}},
               "responses": {"200": {"$ref": "Crl"},
                             "404": "No such CRL",
                             "503": "No policy store is configured, or it cannot be read now"}}) },
    { "POST", "/v1/crls/{name}", ADM_ROLE_OPERATOR, crl_import,
      "Import a CA's CRL under a name (JSON {ca, crl}, or the CRL as DER/PEM once the CA is kept)",
      ADM_DOC({"path": {"name": {"$ref": "CrlName"}}, "query": ["Comment"],
               "request": {"application/json": {"$ref": "CrlImport"},
                           "application/pkix-crl": {"type": "string", "format": "binary",
                                                    "description": "The CRL, DER, verified with the CA certificate kept"},
                           "application/x-pem-file": {"type": "string", "description": "The CRL, PEM"}},
               "responses": {"201": {"allOf": [{"$ref": "Crl"}, {"required": ["unchanged", "generation"]}]},
                             "200": {"description": "Replaced the name's CRL, or the same CRL again (unchanged: true)",
                                     "headers": ["Location"], "content": {"application/json": {
                                         "allOf": [{"$ref": "Crl"}, {"required": ["unchanged", "generation"]}]}}},
                             "400": "The name, the body, the CRL or the CA certificate is malformed (field names it)",
                             "409": "The name is another CA's, or this CA's CRLs have another name (code exists)",
                             "415": "The body is not application/json, application/pkix-crl or application/x-pem-file",
                             "422": "The CRL's signature, issuer, critical extension, algorithm; a rollback (crl_rollback); no CA kept",
                             "503": "No policy store is configured, or it cannot be written now: nothing was applied"}}) },
    { "DELETE", "/v1/crls/{name}", ADM_ROLE_OPERATOR, crl_delete,
      "Remove an imported CRL and the revocations it listed",
      ADM_DOC({"path": {"name": {"$ref": "CrlNameOrId"}}, "query": ["Comment"],
               "request": {"application/json": {"$ref": "CommentBody"}}, "request_optional": true,
               "responses": {"200": {"$ref": "CrlDeleted"},
                             "400": "The body is malformed (field names it)",
                             "404": "No such CRL",
                             "503": "No policy store is configured, or it cannot be written now: nothing was applied"}}) },
    { NULL, NULL, ADM_ROLE_NONE, NULL, NULL, ADM_DOC({"schemas": {
        "CrlName": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[0-9]*[A-Za-z._-][A-Za-z0-9._-]*$",
                    "description": "A name the operator chooses (not all digits: numbers are ids)"},
        "CrlNameOrId": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$",
                        "description": "A CRL's name, or its id (digits: what a revocation's source crl:ID names)"},
        /* crl_json */
        "Crl": {"type": "object", "required": ["id", "name", "issuer", "issuer_hash", "crl_number", "this_update", "next_update",
                                               "imported_at", "entries", "stale", "ca_kept"], "properties": {
            "id": {"type": "integer", "minimum": 1},
            "name": {"type": "string", "nullable": true, "description": "null: imported with the CLI, without a name"},
            "issuer": {"type": "string", "description": "The CA's Name (RFC 4514)"},
            "issuer_hash": {"$ref": "Sha256Hex"},
            "crl_number": {"type": "string", "nullable": true, "pattern": "^([0-9A-F]{2}){1,32}$",
                           "description": "The CRL Number (RFC 5280 5.2.3), hex; null: the CRL has none"},
            "this_update": {"$ref": "Timestamp"},
            "next_update": {"$ref": "TimestampOrNull"},
            "imported_at": {"$ref": "Timestamp"},
            "entries": {"type": "integer", "minimum": 0},
            "stale": {"type": "boolean", "description": "Past its nextUpdate"},
            "ca_kept": {"type": "boolean", "description": "The CA certificate is kept: later CRLs may come as they are"},
            "unchanged": {"type": "boolean", "description": "In the answer to an import: the same CRL again"},
            "generation": {"$ref": "Generation"}}},
        "CrlPage": {"type": "object", "required": ["items", "next"], "properties": {
            "items": {"type": "array", "items": {"$ref": "Crl"}}, "next": {"$ref": "NextCursor"}}},
        "CrlDeleted": {"type": "object", "required": ["deleted", "generation"], "properties": {
            "deleted": {"$ref": "Crl"}, "generation": {"$ref": "Generation"}}},
        "CrlImport": {"type": "object", "additionalProperties": false, "required": ["crl"], "properties": {
            "crl": {"type": "string", "minLength": 1, "description": "PEM (-----BEGIN X509 CRL-----), or bare base64 of the DER"},
            "ca": {"$ref": "Pem"},
            "comment": {"$ref": "Comment"}},
            "description": "ca: the issuing CA's certificate, needed at the first import under a name (the store keeps it)"}}}) },
};
