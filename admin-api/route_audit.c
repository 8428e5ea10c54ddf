/* route_audit.c - /v1/audit: the policy store's audit trail (one hash-chained record per change,
 * policies/README.md "Audit trail") and its verification. The CLI equivalents are `hsmgate audit ls`
 * and `hsmgate audit verify` (gateway/cmd_audit.c); a record here has the same fields as there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin-api/adm_int.h"

static json_t *jhash(const uint8_t *h)
{
    static const char digits[] = "0123456789abcdef";
    char hex[2 * POL_HASH_LEN + 1];
    if (h == NULL)
        return json_null();
    for (size_t i = 0; i < POL_HASH_LEN; i++) {
        hex[2 * i] = digits[h[i] >> 4];
        hex[2 * i + 1] = digits[h[i] & 15];
    }
    hex[2 * POL_HASH_LEN] = '\0';
    return json_string(hex);
}

/* before/after are JSON texts the store wrote: embedded as JSON (text that does not parse, which only
 * a hand edit makes, is shown as a string so that nothing is hidden; verification flags it anyway). */
static json_t *jstate(const char *text)
{
    if (text == NULL)
        return json_null();
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v != NULL ? v : adm_jtext(text);
}

static json_t *record_json(const struct pol_audit_record *r)
{
    char at[32];
    pol_time_format(r->at, at, sizeof(at));
    return json_pack("{s:I, s:s, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", (json_int_t)r->id, "at",
                     at, "generation", (json_int_t)r->generation, "actor", adm_jtext(r->actor), "action", adm_jtext(r->action),
                     "target", adm_jtext(r->target), "before", jstate(r->before), "after", jstate(r->after), "request_id",
                     adm_jtext(r->request_id), "source", adm_jtext(r->source), "comment", adm_jtext(r->comment), "prev_hash",
                     jhash(r->prev_hash), "hash", jhash(r->hash));
}

struct page {
    json_t *items;
    size_t limit, n;
    int more;
    int64_t last_id;
    const uint8_t *last_hash;
    uint8_t last_hash_buf[POL_HASH_LEN];
};

static int add_record(void *arg, const struct pol_audit_record *r)
{
    struct page *p = arg;
    if (p->n == p->limit) {
        p->more = 1;
        return 1;               /* stop: this record is the next page's first */
    }
    json_t *o = record_json(r);
    if (o == NULL || json_array_append_new(p->items, o) != 0)
        return POL_E_NOMEM;
    p->n++;
    p->last_id = r->id;
    p->last_hash = NULL;
    if (r->hash != NULL) {
        memcpy(p->last_hash_buf, r->hash, POL_HASH_LEN);
        p->last_hash = p->last_hash_buf;
    }
    return 0;
}

static int audit_list(struct adm_req *req, struct adm_resp *resp)
{
    struct pol_store *st = adm_need_store(req, resp);
    struct page p;
    const char *after = NULL;
    char err[512] = "", next[24];
    long long after_id = 0;

    if (st == NULL)
        return 0;
    memset(&p, 0, sizeof(p));
    if (adm_page(req, resp, &p.limit, &after) != 0)
        return 0;
    if (after != NULL) {
        char *end = NULL;
        errno = 0;
        after_id = strtoll(after, &end, 10);
        if (errno != 0 || end == after || *end != '\0' || after_id < 0 || after[0] < '0' || after[0] > '9') {
            adm_problem(resp, 400, "after", "after must be a record id (the cursor of a previous page)");
            return 0;
        }
    }
    if ((p.items = json_array()) == NULL) {
        adm_problem(resp, 500, NULL, "out of memory");
        return 0;
    }
    /* One record past the page tells whether there is a next one. */
    int rc = pol_store_audit_each(st, (int64_t)after_id, p.limit + 1, add_record, &p, err, sizeof(err));
    if (rc != 0 && rc != 1) {
        json_decref(p.items);
        adm_pol_problem(resp, rc, err);
        return 0;
    }
    snprintf(next, sizeof(next), "%lld", (long long)p.last_id);
    adm_json(resp, 200, json_pack("{s:o, s:o}", "items", p.items, "next", p.more ? json_string(next) : json_null()));
    return 0;
}

static int audit_verify(struct adm_req *req, struct adm_resp *resp)
{
    struct pol_store *st = adm_need_store(req, resp);
    struct page last;
    char err[1024] = "";
    uint64_t n = 0;
    int64_t bad = 0;

    if (st == NULL)
        return 0;
    int rc = pol_store_audit_verify(st, &n, &bad, err, sizeof(err));
    if (rc == POL_E_AUDIT) {
        /* A broken trail is an answer about the store, not a failure of the request. */
        adm_json(resp, 200, json_pack("{s:b, s:I, s:I, s:s}", "intact", 0, "records", (json_int_t)n, "first_bad_id",
                                      (json_int_t)bad, "detail", err));
        return 0;
    }
    if (rc != 0) {
        adm_pol_problem(resp, rc, err);
        return 0;
    }
    /* The last record and its hash: kept apart from the store, they show later that the trail was not
     * rewritten as a whole (records are ids 1..n). */
    memset(&last, 0, sizeof(last));
    last.limit = 1;
    last.items = json_array();
    if (n > 0 && last.items != NULL && pol_store_audit_each(st, (int64_t)n - 1, 1, add_record, &last, NULL, 0) != 0)
        last.n = 0;             /* the verdict stands; the head is only left out */
    json_decref(last.items);
    adm_json(resp, 200, json_pack("{s:b, s:I, s:o, s:o}", "intact", 1, "records", (json_int_t)n, "last_id",
                                  last.n == 1 ? json_integer((json_int_t)last.last_id) : json_null(), "last_hash",
                                  last.n == 1 ? jhash(last.last_hash) : json_null()));
    return 0;
}

const struct adm_route adm_routes_audit[] = {
    { "GET", "/v1/audit", ADM_ROLE_READER, audit_list, "List the audit trail (paginated by record id)",
      ADM_DOC({"query": ["Limit", "After"],
               "responses": {"200": {"$ref": "AuditPage"},
                             "400": "limit or after is malformed (field names it)",
                             "503": "No policy store is configured, or it cannot be read now"}}) },
    { "GET", "/v1/audit/verify", ADM_ROLE_READER, audit_verify, "Verify the audit trail's hash chain",
      ADM_DOC({"responses": {"200": {"$ref": "AuditVerify"},
                             "503": "No policy store is configured, or it cannot be read now"}}) },
    { NULL, NULL, ADM_ROLE_NONE, NULL, NULL, ADM_DOC({"schemas": {
        /* record_json */
        "AuditRecord": {"type": "object", "required": ["id", "at", "generation", "actor", "action", "target", "before", "after",
                                                       "request_id", "source", "comment", "prev_hash", "hash"], "properties": {
            "id": {"type": "integer", "minimum": 1},
            "at": {"$ref": "Timestamp"},
            "generation": {"type": "integer", "minimum": 0},
            "actor": {"type": "string"},
            "action": {"type": "string", "enum": ["revoke", "revoke-batch", "lift", "allow-add", "allow-remove", "crl-import",
                                                   "crl-name", "crl-remove", "cert-issue"]},
            "target": {"type": "string"},
            "before": {"nullable": true, "description": "Any JSON: the state before (null: nothing)"},
            "after": {"nullable": true, "description": "Any JSON: the state after (null: nothing)"},
            "request_id": {"type": "string", "nullable": true, "description": "null for records made before store schema 3"},
            "source": {"type": "string", "nullable": true},
            "comment": {"type": "string", "nullable": true},
            "prev_hash": {"type": "string", "nullable": true, "pattern": "^[0-9a-f]{64}$"},
            "hash": {"type": "string", "nullable": true, "pattern": "^[0-9a-f]{64}$"}}},
        "AuditPage": {"type": "object", "required": ["items", "next"], "properties": {
            "items": {"type": "array", "items": {"$ref": "AuditRecord"}}, "next": {"$ref": "NextCursor"}}},
        /* audit_verify: a broken trail is an answer, not an error */
        "AuditVerify": {"oneOf": [
            {"type": "object", "required": ["intact", "records", "last_id", "last_hash"], "properties": {
                "intact": {"type": "boolean", "enum": [true]},
                "records": {"type": "integer", "minimum": 0},
                "last_id": {"type": "integer", "nullable": true, "description": "null: no records"},
                "last_hash": {"type": "string", "nullable": true, "pattern": "^[0-9a-f]{64}$",
                              "description": "Keep it where the store's writers cannot reach"}}},
            {"type": "object", "required": ["intact", "records", "first_bad_id", "detail"], "properties": {
                "intact": {"type": "boolean", "enum": [false]},
                "records": {"type": "integer", "minimum": 0},
                "first_bad_id": {"type": "integer",
                                 "description": "The first record that fails (changed, reordered; removed: the next)"},
                "detail": {"type": "string"}}}]}}}) },
};
