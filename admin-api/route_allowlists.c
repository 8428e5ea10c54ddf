/* route_allowlists.c - /v1/allowlists: the lists with their counts, and each list's entries (list,
 * add, get, remove). The CLI equivalent is `hsmgate allow add|rm|ls` (gateway/cmd_policy.c); the
 * value of an entry is given as text, or taken from a certificate exactly as the CLI does
 * (pol_allow_value_of_cert, pol_issuer_serial_value), and stored in canonical form.
 *
 * A list exists while it has entries: there is nothing to create or delete besides them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin-api/adm_int.h"

#define PEM_MAX (64u * 1024)

/* The {name} of the path: a list name. */
static const char *list_of(struct adm_req *req, struct adm_resp *resp)
{
    const char *name = req->nparams > 0 ? req->params[0] : "";
    if (!pol_list_name_ok(name)) {
        adm_problem(resp, 400, "name", "a list name is 1 to 64 letters, digits, '.', '_' or '-'");
        return NULL;
    }
    return name;
}

static json_t *entry_json(const struct pol_allow_row *row, time_t now)
{
    return json_pack("{s:I, s:s, s:s, s:o, s:o, s:b, s:o, s:o, s:o}", "id", (json_int_t)row->id, "list", row->list,
                     "match", pol_match_name(row->match), "value", adm_jtext(row->value), "expires_at",
                     adm_jtime(row->expires_at), "expired", row->expires_at != 0 && row->expires_at <= now, "actor",
                     adm_jtext(row->actor), "comment", adm_jtext(row->comment), "created_at", adm_jtime(row->created_at));
}

struct page {
    json_t *items;
    size_t limit, n;
    int more;
    time_t now;
    int64_t last_id;
};

static int add_entry(void *arg, const struct pol_allow_row *row)
{
    struct page *p = arg;
    if (p->n == p->limit) {
        p->more = 1;
        return 1;               /* stop: this row is the next page's first */
    }
    json_t *o = entry_json(row, p->now);
    if (o == NULL || json_array_append_new(p->items, o) != 0)
        return POL_E_NOMEM;
    p->n++;
    p->last_id = row->id;
    return 0;
}

/* The entry id of list, as JSON (NULL: none; *rc the store's error if it failed). */
static json_t *entry_get(struct pol_store *st, const char *list, int64_t id, int *rc, char *err, size_t errlen)
{
    struct page p = { json_array(), 1, 0, 0, time(NULL), 0 };
    json_t *found = NULL;
    *rc = p.items == NULL ? POL_E_NOMEM : pol_store_allow_page(st, list, id - 1, 1, add_entry, &p, err, errlen);
    if (*rc == 0 && p.n == 1 && p.last_id == id)
        found = json_incref(json_array_get(p.items, 0));
    json_decref(p.items);
    return found;
}

/* ---------------------------------------------------------------- lists */

struct lists_page {
    json_t *items;
    const char *after;
    size_t limit, n;
    int more;
    const char *last;
    char last_buf[80];
};

static int add_list(void *arg, const struct pol_allow_list_row *row)
{
    struct lists_page *p = arg;
    /* Names come in order (SQLite's BINARY collation is strcmp's): skip up to the cursor. */
    if (p->after != NULL && strcmp(row->list, p->after) <= 0)
        return 0;
    if (p->n == p->limit) {
        p->more = 1;
        return 1;
    }
    json_t *o = json_pack("{s:s, s:I, s:I}", "name", row->list, "entries", (json_int_t)row->entries, "expired",
                          (json_int_t)row->expired);
    if (o == NULL || json_array_append_new(p->items, o) != 0)
        return POL_E_NOMEM;
    p->n++;
    snprintf(p->last_buf, sizeof(p->last_buf), "%s", row->list);
    return 0;
}

static int lists_get(struct adm_req *req, struct adm_resp *resp)
{
    struct pol_store *st = adm_need_store(req, resp);
    struct lists_page p;
    char err[512] = "";
    if (st == NULL)
        return 0;
    memset(&p, 0, sizeof(p));
    if (adm_page(req, resp, &p.limit, &p.after) != 0)
        return 0;
    if ((p.items = json_array()) == NULL) {
        adm_problem(resp, 500, NULL, "out of memory");
        return 0;
    }
    int rc = pol_store_allow_lists(st, add_list, &p, err, sizeof(err));
    if (rc != 0 && rc != 1) {
        json_decref(p.items);
        adm_pol_problem(resp, rc, err);
        return 0;
    }
    adm_json(resp, 200, json_pack("{s:o, s:o}", "items", p.items, "next", p.more ? json_string(p.last_buf) : json_null()));
    return 0;
}

/* ---------------------------------------------------------------- entries */

static int entries_list(struct adm_req *req, struct adm_resp *resp)
{
    struct pol_store *st = adm_need_store(req, resp);
    const char *list, *after = NULL;
    struct page p;
    char err[512] = "", next[24];
    long long after_id = 0;

    if (st == NULL || (list = list_of(req, resp)) == NULL)
        return 0;
    memset(&p, 0, sizeof(p));
    if (adm_page(req, resp, &p.limit, &after) != 0)
        return 0;
    if (after != NULL && (after_id = adm_id_of(after)) < 0) {
        adm_problem(resp, 400, "after", "after must be the cursor of a previous page");
        return 0;
    }
    p.now = time(NULL);
    if ((p.items = json_array()) == NULL) {
        adm_problem(resp, 500, NULL, "out of memory");
        return 0;
    }
    /* One row past the page tells whether there is a next one. */
    int rc = pol_store_allow_page(st, list, (int64_t)after_id, p.limit + 1, add_entry, &p, err, sizeof(err));
    if (rc != 0 && rc != 1) {
        json_decref(p.items);
        adm_pol_problem(resp, rc, err);
        return 0;
    }
    snprintf(next, sizeof(next), "%lld", (long long)p.last_id);
    adm_json(resp, 200, json_pack("{s:o, s:o}", "items", p.items, "next", p.more ? json_string(next) : json_null()));
    return 0;
}

static int cert_of(struct adm_resp *resp, const char *field, const char *pem, struct pol_cert **out)
{
    uint8_t *der = NULL;
    size_t len = 0, n = strlen(pem);
    char err[256];
    *out = NULL;
    if (n == 0 || n > PEM_MAX) {
        adm_problem(resp, 400, field, "%s: a PEM certificate of at most %u bytes was expected", field, PEM_MAX);
        return -1;
    }
    if (pol_pem_decode((const uint8_t *)pem, n, "CERTIFICATE", 1, &der, &len, err, sizeof(err)) != 0) {
        adm_problem(resp, 400, field, "%s: %s", field, err);
        return -1;
    }
    int rc = pol_cert_from_der(der, len, out);
    free(der);
    der = NULL;
    if (rc != 0) {
        adm_problem(resp, 400, field, "%s: not an X.509 certificate (%s)", field, pol_strerror(rc));
        return -1;
    }
    return 0;
}

static int entry_add(struct adm_req *req, struct adm_resp *resp)
{
    static const char *const fields[] = { "match", "value", "certificate", "issuer_certificate", "serial",
                                          "expires_at", "comment", NULL };
    struct pol_store *st = adm_need_store(req, resp);
    struct pol_cert *c = NULL;
    struct pol_allow_entry e;
    struct pol_actor who;
    enum pol_match m;
    uint8_t serial[POL_SERIAL_MAX];
    size_t slen = 0;
    char value[POL_VALUE_MAX], canon[POL_VALUE_MAX], err[POL_VALUE_MAX + 256] = "";
    const char *list, *match = NULL, *val = NULL, *cert = NULL, *issuer = NULL, *sx = NULL, *exp = NULL, *comment = NULL;
    time_t expires = 0, now = time(NULL);
    int64_t id = 0;
    uint64_t gen = 0;
    json_t *body = NULL;

    if (st == NULL || (list = list_of(req, resp)) == NULL || adm_body_object(req, resp, &body) != 0)
        return 0;
    if (adm_only_fields(resp, body, fields) != 0 || adm_field_string(resp, body, "match", 1, &match) != 0 ||
        adm_field_string(resp, body, "value", 0, &val) != 0 || adm_field_string(resp, body, "certificate", 0, &cert) != 0 ||
        adm_field_string(resp, body, "issuer_certificate", 0, &issuer) != 0 ||
        adm_field_string(resp, body, "serial", 0, &sx) != 0 || adm_field_string(resp, body, "expires_at", 0, &exp) != 0 ||
        adm_field_string(resp, body, "comment", 0, &comment) != 0)
        goto out;
    if (pol_match_parse(match, &m) != 0) {
        adm_problem(resp, 400, "match", "unknown match type \"%.40s\" (fingerprint, spki, subject, cn, san-dns, "
                    "san-uri, san-email, issuer-serial)", match);
        goto out;
    }
    if ((val != NULL) + (cert != NULL) + (issuer != NULL) != 1 || (issuer != NULL) != (sx != NULL)) {
        adm_problem(resp, 400, sx != NULL && issuer == NULL ? "issuer_certificate" : "value",
                    "give one of \"value\", \"certificate\" (PEM), or \"issuer_certificate\" (PEM) with \"serial\"");
        goto out;
    }
    if (issuer != NULL && m != POL_MATCH_ISSUER_SERIAL) {
        adm_problem(resp, 400, "issuer_certificate", "\"issuer_certificate\" and \"serial\" make an issuer-serial entry; "
                    "use \"match\": \"issuer-serial\"");
        goto out;
    }
    if (exp != NULL) {
        if (pol_time_parse(exp, now, &expires) != 0) {
            adm_problem(resp, 400, "expires_at", "expected 2026-01-31T12:00:00Z or a relative time like +30d, got "
                        "\"%.60s\"", exp);
            goto out;
        }
        if (expires <= now) {
            adm_problem(resp, 400, "expires_at", "expires_at is in the past");
            goto out;
        }
    }
    if (sx != NULL && pol_serial_parse(sx, serial, &slen) != 0) {
        adm_problem(resp, 400, "serial", "expected a positive hex number of at most %d octets, got \"%.80s\"",
                    POL_SERIAL_MAX, sx);
        goto out;
    }
    if (cert != NULL) {
        if (cert_of(resp, "certificate", cert, &c) != 0)
            goto out;
        if (pol_allow_value_of_cert(c, m, value, sizeof(value)) != 0) {
            adm_problem(resp, 422, "certificate", "the certificate has no %s to match", pol_match_name(m));
            goto out;
        }
    } else if (issuer != NULL) {
        if (cert_of(resp, "issuer_certificate", issuer, &c) != 0)
            goto out;
        pol_issuer_serial_value(c, serial, slen, value, sizeof(value));
    } else {
        if (strlen(val) >= sizeof(value)) {
            adm_problem(resp, 400, "value", "the value is longer than %d bytes", POL_VALUE_MAX - 1);
            goto out;
        }
        snprintf(value, sizeof(value), "%s", val);
    }
    if (pol_allow_value_normalize(m, value, canon, sizeof(canon), err, sizeof(err)) != 0) {
        adm_problem(resp, 400, cert != NULL ? "certificate" : issuer != NULL ? "serial" : "value", "%s", err);
        goto out;
    }
    e.list = list;
    e.match = m;
    e.value = canon;
    e.expires_at = expires;
    adm_actor(req, comment, &who);
    int rc = pol_store_allow_add(st, &e, &who, &id, &gen, err, sizeof(err));
    if (rc != 0) {
        adm_pol_problem(resp, rc, err);
        goto out;
    }
    adm_changed(req);
    json_t *entry = entry_get(st, list, id, &rc, NULL, 0);
    if (entry == NULL)
        entry = json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)id, "list", list, "match", pol_match_name(m),
                          "value", canon);
    if (entry != NULL)
        json_object_set_new(entry, "generation", json_integer((json_int_t)gen));
    snprintf(resp->location, sizeof(resp->location), "/v1/allowlists/%.64s/entries/%lld", list, (long long)id);
    adm_json(resp, 201, entry);
out:
    pol_cert_free(c);
    c = NULL;
    json_decref(body);
    return 0;
}

/* {name} and {id} of the path, and the entry they name: 0, or -1 with the problem made. */
static int entry_of(struct adm_req *req, struct adm_resp *resp, struct pol_store *st, const char **list, int64_t *id,
                    json_t **entry)
{
    char err[512] = "";
    int rc = 0;
    *entry = NULL;
    if ((*list = list_of(req, resp)) == NULL)
        return -1;
    long long v = req->nparams > 1 ? adm_id_of(req->params[1]) : -1;
    if (v < 0) {
        adm_problem(resp, 404, "id", "no such entry (ids are positive integers)");
        return -1;
    }
    *id = (int64_t)v;
    *entry = entry_get(st, *list, *id, &rc, err, sizeof(err));
    if (rc != 0) {
        adm_pol_problem(resp, rc, err);
        return -1;
    }
    if (*entry == NULL) {
        adm_problem(resp, 404, "id", "list %s has no entry %lld", *list, v);
        return -1;
    }
    return 0;
}

static int entry_get_route(struct adm_req *req, struct adm_resp *resp)
{
    struct pol_store *st = adm_need_store(req, resp);
    const char *list;
    int64_t id;
    json_t *entry = NULL;
    if (st == NULL || entry_of(req, resp, st, &list, &id, &entry) != 0)
        return 0;
    adm_json(resp, 200, entry);
    return 0;
}

/* A DELETE may say why: a JSON body {"comment": ...}, or ?comment=. */
static int delete_comment(struct adm_req *req, struct adm_resp *resp, json_t **body, const char **comment)
{
    static const char *const fields[] = { "comment", NULL };
    *body = NULL;
    *comment = NULL;
    if (req->body_len == 0) {
        *comment = adm_query(req, "comment");
        return 0;
    }
    if (adm_body_object(req, resp, body) != 0 || adm_only_fields(resp, *body, fields) != 0 ||
        adm_field_string(resp, *body, "comment", 0, comment) != 0)
        return -1;
    return 0;
}

static int entry_delete(struct adm_req *req, struct adm_resp *resp)
{
    struct pol_store *st = adm_need_store(req, resp);
    struct pol_allow_entry e;
    struct pol_actor who;
    const char *list, *comment = NULL;
    char err[POL_VALUE_MAX + 256] = "";
    int64_t id = 0;
    uint64_t gen = 0;
    json_t *entry = NULL, *body = NULL;

    if (st == NULL || delete_comment(req, resp, &body, &comment) != 0 || entry_of(req, resp, st, &list, &id, &entry) != 0)
        goto out;
    /* Removed by its key as read, not by id alone: the entry must be the one of this list. */
    e.list = list;
    e.value = json_string_value(json_object_get(entry, "value"));
    e.expires_at = 0;
    if (e.value == NULL || pol_match_parse(json_string_value(json_object_get(entry, "match")), &e.match) != 0) {
        adm_problem(resp, 500, NULL, "the entry could not be read back");
        goto out;
    }
    adm_actor(req, comment, &who);
    int rc = pol_store_allow_remove(st, 0, &e, &who, &gen, err, sizeof(err));
    if (rc != 0) {
        adm_pol_problem(resp, rc, err);
        goto out;
    }
    adm_changed(req);
    adm_json(resp, 200, json_pack("{s:O, s:I}", "deleted", entry, "generation", (json_int_t)gen));
out:
    json_decref(entry);
    json_decref(body);
    return 0;
}

const struct adm_route adm_routes_allowlists[] = {
    { "GET", "/v1/allowlists", ADM_ROLE_READER, lists_get, "List allowlists with their entry counts",
      ADM_DOC({"query": ["Limit", "After"],
               "responses": {"200": {"$ref": "AllowListPage"},
                             "400": "limit or after is malformed (field names it)",
                             "503": "No policy store is configured, or it cannot be read now"}}) },
    { "GET", "/v1/allowlists/{name}/entries", ADM_ROLE_READER, entries_list, "List an allowlist's entries (paginated)",
      ADM_DOC({"path": {"name": {"$ref": "ListName"}}, "query": ["Limit", "After"],
               "responses": {"200": {"$ref": "AllowEntryPage"},
                             "400": "The list name, limit or after is malformed (field names it)",
                             "503": "No policy store is configured, or it cannot be read now"}}) },
    { "POST", "/v1/allowlists/{name}/entries", ADM_ROLE_OPERATOR, entry_add, "Add an allowlist entry",
      ADM_DOC({"path": {"name": {"$ref": "ListName"}},
               "request": {"application/json": {"$ref": "AllowEntryCreate"}},
               "responses": {"201": {"allOf": [{"$ref": "AllowEntry"}, {"required": ["generation"]}]},
                             "400": "The list name or the body is malformed, or the value does not fit (field names it)",
                             "409": "The list already has this entry (code exists)",
                             "422": "The certificate has no value of that match type",
                             "503": "No policy store is configured, or it cannot be written now: nothing was applied"}}) },
    { "GET", "/v1/allowlists/{name}/entries/{id}", ADM_ROLE_READER, entry_get_route, "Get an allowlist entry",
      ADM_DOC({"path": {"name": {"$ref": "ListName"}, "id": {"type": "integer", "minimum": 1}},
               "responses": {"200": {"$ref": "AllowEntry"},
                             "400": "The list name is malformed",
                             "404": "That list has no such entry",
                             "503": "No policy store is configured, or it cannot be read now"}}) },
    { "DELETE", "/v1/allowlists/{name}/entries/{id}", ADM_ROLE_OPERATOR, entry_delete, "Remove an allowlist entry",
      ADM_DOC({"path": {"name": {"$ref": "ListName"}, "id": {"type": "integer", "minimum": 1}}, "query": ["Comment"],
               "request": {"application/json": {"$ref": "CommentBody"}}, "request_optional": true,
               "responses": {"200": {"$ref": "AllowEntryDeleted"},
                             "400": "The list name or the body is malformed (field names it)",
                             "404": "That list has no such entry",
                             "503": "No policy store is configured, or it cannot be written now: nothing was applied"}}) },
    { NULL, NULL, ADM_ROLE_NONE, NULL, NULL, ADM_DOC({"schemas": {
        "ListName": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
        "MatchType": {"type": "string", "enum": ["fingerprint", "spki", "subject", "cn", "san-dns", "san-uri", "san-email",
                                                  "issuer-serial"]},
        /* add_list */
        "AllowList": {"type": "object", "required": ["name", "entries", "expired"], "properties": {
            "name": {"$ref": "ListName"},
            "entries": {"type": "integer", "minimum": 1},
            "expired": {"type": "integer", "minimum": 0, "description": "Entries past their expires_at"}}},
        "AllowListPage": {"type": "object", "required": ["items", "next"], "properties": {
            "items": {"type": "array", "items": {"$ref": "AllowList"}}, "next": {"$ref": "NextCursor"}}},
        /* entry_json */
        "AllowEntry": {"type": "object", "required": ["id", "list", "match", "value", "expires_at", "expired", "actor",
                                                      "comment", "created_at"], "properties": {
            "id": {"type": "integer", "minimum": 1},
            "list": {"$ref": "ListName"},
            "match": {"$ref": "MatchType"},
            "value": {"type": "string", "description": "Canonical: hex lower-cased, DNS names lower-cased, ..."},
            "expires_at": {"$ref": "TimestampOrNull"},
            "expired": {"type": "boolean"},
            "actor": {"type": "string"},
            "comment": {"type": "string", "nullable": true},
            "created_at": {"$ref": "Timestamp"},
            "generation": {"$ref": "Generation"}}},
        "AllowEntryPage": {"type": "object", "required": ["items", "next"], "properties": {
            "items": {"type": "array", "items": {"$ref": "AllowEntry"}}, "next": {"$ref": "NextCursor"}}},
        "AllowEntryDeleted": {"type": "object", "required": ["deleted", "generation"], "properties": {
            "deleted": {"$ref": "AllowEntry"}, "generation": {"$ref": "Generation"}}},
        /* entry_add: one of value, certificate, or issuer_certificate with serial (issuer-serial only) */
        "AllowEntryCreate": {"type": "object", "additionalProperties": false, "required": ["match"], "oneOf": [
            {"required": ["value"], "properties": {
                "value": {"type": "string"}, "certificate": {"not": {"type": "string"}},
                "issuer_certificate": {"not": {"type": "string"}}, "serial": {"not": {"type": "string"}}}},
            {"required": ["certificate"], "properties": {
                "certificate": {"type": "string"}, "value": {"not": {"type": "string"}},
                "issuer_certificate": {"not": {"type": "string"}}, "serial": {"not": {"type": "string"}}}},
            {"required": ["issuer_certificate", "serial"], "properties": {
                "match": {"enum": ["issuer-serial"]}, "issuer_certificate": {"type": "string"}, "serial": {"type": "string"},
                "value": {"not": {"type": "string"}}, "certificate": {"not": {"type": "string"}}}}], "properties": {
            "match": {"$ref": "MatchType"},
            "value": {"type": "string", "nullable": true, "maxLength": 4095, "description": "As text (stored canonical)"},
            "certificate": {"$ref": "Pem"},
            "issuer_certificate": {"$ref": "Pem"},
            "serial": {"$ref": "SerialInput"},
            "expires_at": {"$ref": "TimeInput"},
            "comment": {"$ref": "Comment"}}}}}) },
};
