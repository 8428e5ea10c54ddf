/* route_revocations.c - /v1/revocations: list (paginated, filtered by issuer or serial), revoke one
 * certificate, revoke many in one transaction, lift a certificateHold. The CLI equivalents are
 * `hsmgate revoke`, `revoke --lift` and `revocations` (gateway/cmd_policy.c); both end in the same
 * pol_store_* calls, so the rules (RFC 5280 5.3.1: a hold may become final, only a hold is lifted)
 * live in policies/ alone.
 *
 * A target is {"certificate": PEM} (the client's certificate: its issuer and serial are taken from
 * it), or {"issuer_certificate": PEM, "serial": "hex"} (the issuing CA's certificate, which must be a
 * CA, and the serial). PEM may also be bare base64 of the DER. Every change answers only after
 * pol_store_* returned, that is after the commit is on disk, and then kicks the gateway (adm_changed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin-api/adm_int.h"

#define BATCH_MAX 100000            /* revocations in one batch (one transaction) */
#define BATCH_ISSUERS_MAX 64        /* different issuer certificates in one batch */
#define PEM_MAX (64u * 1024)        /* one certificate's text */
#define FIELD_MAX 96                /* "revocations[99999].issuer_certificate" */

static void hex_of(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* 64 hex digits into 32 bytes; -1 if it is not that. */
static int unhex_hash(const char *s, uint8_t out[POL_HASH_LEN])
{
    if (strlen(s) != 2 * POL_HASH_LEN)
        return -1;
    for (size_t i = 0; i < POL_HASH_LEN; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + (size_t)k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* "name", or "prefix.name" inside a batch item. */
static const char *fname(char buf[FIELD_MAX], const char *prefix, const char *name)
{
    if (prefix[0] == '\0')
        return name;
    snprintf(buf, FIELD_MAX, "%s.%s", prefix, name);
    return buf;
}

/* A string field (JSON null counts as absent): 0, or -1 with a 400 naming it. */
static int get_str(struct adm_resp *resp, json_t *o, const char *prefix, const char *name, int required,
                   const char **out)
{
    char fb[FIELD_MAX];
    json_t *v = json_object_get(o, name);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (!required)
            return 0;
        adm_problem(resp, 400, fname(fb, prefix, name), "the field \"%s\" is required", fname(fb, prefix, name));
        return -1;
    }
    if (!json_is_string(v)) {
        adm_problem(resp, 400, fname(fb, prefix, name), "the field \"%s\" must be a string", fname(fb, prefix, name));
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* The fields of a batch item (adm_only_fields names the key alone; here the item is named too). */
static int item_fields(struct adm_resp *resp, json_t *o, const char *prefix)
{
    static const char *const allowed[] = { "certificate", "issuer_certificate", "serial", "reason", "revoked_at", NULL };
    const char *key;
    json_t *v;
    char fb[FIELD_MAX];
    json_object_foreach(o, key, v) {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], key) != 0)
            i++;
        if (allowed[i] == NULL) {
            snprintf(fb, sizeof(fb), "%s.%.40s", prefix, key);
            adm_problem(resp, 400, fb, "unknown field \"%s\"", fb);
            return -1;
        }
    }
    return 0;
}

/* A certificate from PEM (or base64 DER) text. */
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

/* Issuer certificates of a request, parsed once each (a batch names the same CA again and again). */
struct issuers {
    const char *pem[BATCH_ISSUERS_MAX];
    struct pol_cert *cert[BATCH_ISSUERS_MAX];
    size_t n;
};

static void issuers_free(struct issuers *is)
{
    for (size_t i = 0; i < is->n; i++) {
        pol_cert_free(is->cert[i]);
        is->cert[i] = NULL;
    }
    is->n = 0;
}

static int issuer_of(struct adm_resp *resp, struct issuers *is, const char *field, const char *pem,
                     struct pol_cert **out)
{
    for (size_t i = 0; i < is->n; i++) {
        if (strcmp(is->pem[i], pem) == 0) {
            *out = is->cert[i];
            return 0;
        }
    }
    if (is->n == BATCH_ISSUERS_MAX) {
        adm_problem(resp, 422, field, "more than %d different issuer certificates in one request; split the batch",
                    BATCH_ISSUERS_MAX);
        return -1;
    }
    struct pol_cert *c = NULL;
    if (cert_of(resp, field, pem, &c) != 0)
        return -1;
    if (!pol_cert_is_ca(c)) {
        adm_problem(resp, 422, field, "%s: not a CA certificate (%.200s)", field, pol_cert_subject(c));
        pol_cert_free(c);
        c = NULL;
        return -1;
    }
    is->pem[is->n] = pem;
    is->cert[is->n++] = c;
    *out = c;
    return 0;
}

/* What a request names: a revocation target, and the issuer hash to find it by afterwards. */
struct target {
    struct pol_revocation r;
    const uint8_t *issuer_hash;
};

/* Fills t from o: "certificate", or "issuer_certificate" (or dflt, the batch's) and "serial". A client
 * certificate parsed is put in *own (the caller frees it); serial is the caller's buffer. */
static int parse_target(struct adm_resp *resp, json_t *o, const char *prefix, struct issuers *is,
                        struct pol_cert *dflt, struct pol_cert **own, uint8_t serial[POL_SERIAL_MAX], struct target *t)
{
    const char *cert = NULL, *issuer = NULL, *sx = NULL;
    char fb[FIELD_MAX];
    size_t slen = 0;
    struct pol_cert *ca = dflt;

    if (get_str(resp, o, prefix, "certificate", 0, &cert) != 0 || get_str(resp, o, prefix, "issuer_certificate", 0, &issuer) != 0 ||
        get_str(resp, o, prefix, "serial", 0, &sx) != 0)
        return -1;
    if (cert != NULL) {
        if (issuer != NULL || sx != NULL) {
            adm_problem(resp, 400, fname(fb, prefix, "certificate"),
                        "give either \"certificate\", or \"issuer_certificate\" and \"serial\", not both");
            return -1;
        }
        if (cert_of(resp, fname(fb, prefix, "certificate"), cert, own) != 0)
            return -1;
        pol_revocation_of_cert(*own, &t->r);
        t->issuer_hash = pol_cert_issuer_hash(*own);
        return 0;
    }
    if (sx == NULL) {
        adm_problem(resp, 400, fname(fb, prefix, "serial"),
                    "give \"certificate\" (PEM), or \"issuer_certificate\" (PEM) and \"serial\" (hex)");
        return -1;
    }
    if (pol_serial_parse(sx, serial, &slen) != 0) {
        adm_problem(resp, 400, fname(fb, prefix, "serial"),
                    "%s: expected a positive hex number of at most %d octets (\"01AF\", \"01:af\"), got \"%.80s\"",
                    fname(fb, prefix, "serial"), POL_SERIAL_MAX, sx);
        return -1;
    }
    if (issuer != NULL && issuer_of(resp, is, fname(fb, prefix, "issuer_certificate"), issuer, &ca) != 0)
        return -1;
    if (ca == NULL) {
        adm_problem(resp, 400, fname(fb, prefix, "issuer_certificate"),
                    "a serial needs its issuer: give \"issuer_certificate\" (PEM)");
        return -1;
    }
    pol_revocation_of_issuer(ca, serial, slen, &t->r);
    t->issuer_hash = pol_cert_subject_hash(ca);
    return 0;
}

/* "reason" (an RFC 5280 5.3.1 name) and "revoked_at" (RFC 3339 or relative), with defaults. */
static int parse_reason_time(struct adm_resp *resp, json_t *o, const char *prefix, int dflt_reason, time_t dflt_at,
                             time_t now, struct pol_revocation *r)
{
    const char *reason = NULL, *at = NULL;
    char fb[FIELD_MAX];
    if (get_str(resp, o, prefix, "reason", 0, &reason) != 0 || get_str(resp, o, prefix, "revoked_at", 0, &at) != 0)
        return -1;
    r->reason = dflt_reason;
    r->revoked_at = dflt_at;
    if (reason != NULL && pol_reason_code_parse(reason, &r->reason) != 0) {
        adm_problem(resp, 400, fname(fb, prefix, "reason"),
                    "%s: unknown reason \"%.60s\" (RFC 5280 5.3.1: unspecified, keyCompromise, cACompromise, "
                    "affiliationChanged, superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, "
                    "aACompromise)", fname(fb, prefix, "reason"), reason);
        return -1;
    }
    if (at != NULL && (pol_time_parse(at, now, &r->revoked_at) != 0 || r->revoked_at <= 0)) {
        adm_problem(resp, 400, fname(fb, prefix, "revoked_at"),
                    "%s: expected 2026-01-31T12:00:00Z or a relative time like -2h, got \"%.60s\"",
                    fname(fb, prefix, "revoked_at"), at);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- listing */

static json_t *row_json(const struct pol_revocation_row *row)
{
    char serial[2 * POL_SERIAL_MAX + 1], hash[2 * POL_HASH_LEN + 1], at[32], rec[32], src[32];
    pol_serial_format(row->serial, row->serial_len, serial, sizeof(serial));
    hex_of(row->issuer_hash, POL_HASH_LEN, hash);
    pol_time_format(row->revoked_at, at, sizeof(at));
    pol_time_format(row->recorded_at, rec, sizeof(rec));
    if (row->crl_id == 0)
        snprintf(src, sizeof(src), "local");
    else
        snprintf(src, sizeof(src), "crl:%lld", (long long)row->crl_id);
    return json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:s}", "issuer", adm_jtext(row->issuer_text), "issuer_hash",
                     hash, "serial", serial, "reason", pol_reason_code_name(row->reason), "revoked_at", at, "source",
                     src, "actor", adm_jtext(row->actor), "comment", adm_jtext(row->comment), "recorded_at", rec);
}

static int add_row(void *arg, const struct pol_revocation_row *row)
{
    json_t *o = row_json(row);
    return o != NULL && json_array_append_new(arg, o) == 0 ? 0 : POL_E_NOMEM;
}

/* The revocation made here (source local) of a target, as JSON; NULL if there is none. */
static json_t *local_record(struct pol_store *st, const struct target *t)
{
    struct pol_revocation_query q;
    char next[POL_CURSOR_MAX];
    json_t *rows = json_array(), *found = NULL;
    memset(&q, 0, sizeof(q));
    q.issuer_hash = t->issuer_hash;
    q.serial = t->r.serial;
    q.serial_len = t->r.serial_len;
    if (rows != NULL && pol_store_revocations_query(st, &q, add_row, rows, next, NULL, 0) == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(rows, i, v) {
            if (strcmp(json_string_value(json_object_get(v, "source")), "local") == 0) {
                found = json_incref(v);
                break;
            }
        }
    }
    json_decref(rows);
    return found;
}

static int rev_list(struct adm_req *req, struct adm_resp *resp)
{
    struct pol_store *st = adm_need_store(req, resp);
    struct pol_revocation_query q;
    uint8_t hash[POL_HASH_LEN], serial[POL_SERIAL_MAX];
    char next[POL_CURSOR_MAX], err[512] = "";
    size_t limit = 0, slen = 0;
    const char *after = NULL, *ih, *sx;

    if (st == NULL || adm_page(req, resp, &limit, &after) != 0)
        return 0;
    memset(&q, 0, sizeof(q));
    q.after = after;
    q.limit = limit;
    if ((ih = adm_query(req, "issuer_hash")) != NULL) {
        if (unhex_hash(ih, hash) != 0) {
            adm_problem(resp, 400, "issuer_hash", "issuer_hash must be 64 hex digits (SHA-256 of the issuer Name DER)");
            return 0;
        }
        q.issuer_hash = hash;
    }
    if ((sx = adm_query(req, "serial")) != NULL) {
        if (pol_serial_parse(sx, serial, &slen) != 0) {
            adm_problem(resp, 400, "serial", "serial must be a positive hex number of at most %d octets", POL_SERIAL_MAX);
            return 0;
        }
        q.serial = serial;
        q.serial_len = slen;
    }
    json_t *items = json_array();
    if (items == NULL) {
        adm_problem(resp, 500, NULL, "out of memory");
        return 0;
    }
    int rc = pol_store_revocations_query(st, &q, add_row, items, next, err, sizeof(err));
    if (rc != 0) {
        json_decref(items);
        if (rc == POL_E_ARG)
            adm_problem(resp, 400, "after", "after: %s", err);
        else
            adm_pol_problem(resp, rc, err);
        return 0;
    }
    adm_json(resp, 200, json_pack("{s:o, s:o}", "items", items, "next", next[0] ? json_string(next) : json_null()));
    return 0;
}

/* ---------------------------------------------------------------- changes */

static void set_location(struct adm_resp *resp, const struct target *t)
{
    char hash[2 * POL_HASH_LEN + 1], serial[2 * POL_SERIAL_MAX + 1];
    hex_of(t->issuer_hash, POL_HASH_LEN, hash);
    pol_serial_format(t->r.serial, t->r.serial_len, serial, sizeof(serial));
    snprintf(resp->location, sizeof(resp->location), "/v1/revocations?issuer_hash=%s&serial=%s", hash, serial);
}

static int rev_create(struct adm_req *req, struct adm_resp *resp)
{
    static const char *const fields[] = { "certificate", "issuer_certificate", "serial", "reason", "revoked_at",
                                          "comment", NULL };
    struct pol_store *st = adm_need_store(req, resp);
    struct issuers is = { 0 };
    struct pol_cert *own = NULL;
    struct target t;
    struct pol_actor who;
    uint8_t serial[POL_SERIAL_MAX];
    char err[1024] = "";
    const char *comment = NULL;
    uint64_t gen = 0;
    json_t *body = NULL;

    if (st == NULL || adm_body_object(req, resp, &body) != 0)
        return 0;
    memset(&t, 0, sizeof(t));
    if (adm_only_fields(resp, body, fields) != 0 || parse_target(resp, body, "", &is, NULL, &own, serial, &t) != 0 ||
        parse_reason_time(resp, body, "", POL_REASON_UNSPECIFIED, 0, time(NULL), &t.r) != 0 ||
        get_str(resp, body, "", "comment", 0, &comment) != 0)
        goto out;
    adm_actor(req, comment, &who);
    int rc = pol_store_revoke(st, &t.r, &who, &gen, err, sizeof(err));
    if (rc != 0) {
        adm_pol_problem(resp, rc, err);
        goto out;
    }
    adm_changed(req);
    /* Answer with the record as stored (revoked_at "now" was set by the store). */
    json_t *rec = local_record(st, &t);
    if (rec == NULL) {
        char sx[2 * POL_SERIAL_MAX + 1];
        pol_serial_format(t.r.serial, t.r.serial_len, sx, sizeof(sx));
        rec = json_pack("{s:o, s:s, s:s, s:s}", "issuer", adm_jtext(t.r.issuer_text), "serial", sx, "reason",
                        pol_reason_code_name(t.r.reason), "source", "local");
    }
    if (rec != NULL)
        json_object_set_new(rec, "generation", json_integer((json_int_t)gen));
    set_location(resp, &t);
    adm_json(resp, 201, rec);
out:
    pol_cert_free(own);
    own = NULL;
    issuers_free(&is);
    json_decref(body);
    return 0;
}

static int rev_lift(struct adm_req *req, struct adm_resp *resp)
{
    static const char *const fields[] = { "certificate", "issuer_certificate", "serial", "comment", NULL };
    struct pol_store *st = adm_need_store(req, resp);
    struct issuers is = { 0 };
    struct pol_cert *own = NULL;
    struct target t;
    struct pol_actor who;
    uint8_t serial[POL_SERIAL_MAX];
    char err[1024] = "";
    const char *comment = NULL;
    uint64_t gen = 0;
    json_t *body = NULL, *before = NULL;

    if (st == NULL || adm_body_object(req, resp, &body) != 0)
        return 0;
    memset(&t, 0, sizeof(t));
    if (adm_only_fields(resp, body, fields) != 0 || parse_target(resp, body, "", &is, NULL, &own, serial, &t) != 0 ||
        get_str(resp, body, "", "comment", 0, &comment) != 0)
        goto out;
    before = local_record(st, &t);
    adm_actor(req, comment, &who);
    int rc = pol_store_lift(st, &t.r, &who, &gen, err, sizeof(err));
    if (rc != 0) {
        adm_pol_problem(resp, rc, err);
        goto out;
    }
    adm_changed(req);
    adm_json(resp, 200, json_pack("{s:o, s:I}", "lifted", before ? json_incref(before) : json_null(), "generation",
                                  (json_int_t)gen));
out:
    json_decref(before);
    pol_cert_free(own);
    own = NULL;
    issuers_free(&is);
    json_decref(body);
    return 0;
}

static int rev_batch(struct adm_req *req, struct adm_resp *resp)
{
    static const char *const fields[] = { "revocations", "issuer_certificate", "reason", "revoked_at", "comment", NULL };
    struct pol_store *st = adm_need_store(req, resp);
    struct issuers is = { 0 };
    struct pol_cert **own = NULL, *dflt = NULL;
    struct pol_revocation *revs = NULL, defaults;
    uint8_t (*serials)[POL_SERIAL_MAX] = NULL;
    struct pol_actor who;
    char err[1024] = "", prefix[48];
    const char *comment = NULL, *issuer = NULL;
    uint64_t gen = 0;
    size_t n = 0, applied = 0;
    time_t now = time(NULL);
    json_t *body = NULL, *list;

    if (st == NULL || adm_body_object(req, resp, &body) != 0)
        return 0;
    if (adm_only_fields(resp, body, fields) != 0 || get_str(resp, body, "", "comment", 0, &comment) != 0 ||
        get_str(resp, body, "", "issuer_certificate", 0, &issuer) != 0 ||
        parse_reason_time(resp, body, "", POL_REASON_UNSPECIFIED, 0, now, &defaults) != 0)
        goto out;
    list = json_object_get(body, "revocations");
    if (!json_is_array(list) || (n = json_array_size(list)) == 0) {
        adm_problem(resp, 400, "revocations", "\"revocations\" must be a non-empty array of revocations");
        goto out;
    }
    if (n > BATCH_MAX) {
        adm_problem(resp, 400, "revocations", "at most %d revocations in one batch (%zu given)", BATCH_MAX, n);
        goto out;
    }
    if (issuer != NULL && issuer_of(resp, &is, "issuer_certificate", issuer, &dflt) != 0)
        goto out;
    revs = calloc(n, sizeof(*revs));
    serials = calloc(n, sizeof(*serials));
    own = calloc(n, sizeof(*own));
    if (revs == NULL || serials == NULL || own == NULL) {
        adm_problem(resp, 500, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(list, i);
        struct target t;
        snprintf(prefix, sizeof(prefix), "revocations[%zu]", i);
        if (!json_is_object(item)) {
            adm_problem(resp, 400, prefix, "%s must be an object", prefix);
            goto out;
        }
        memset(&t, 0, sizeof(t));
        if (item_fields(resp, item, prefix) != 0 || parse_target(resp, item, prefix, &is, dflt, &own[i], serials[i], &t) != 0 ||
            parse_reason_time(resp, item, prefix, defaults.reason, defaults.revoked_at, now, &t.r) != 0)
            goto out;
        revs[i] = t.r;
    }
    adm_actor(req, comment, &who);
    int rc = pol_store_revoke_batch_count(st, revs, n, &who, &applied, &gen, err, sizeof(err));
    if (rc != 0) {
        adm_pol_problem(resp, rc, err);
        goto out;
    }
    adm_changed(req);
    adm_json(resp, 200, json_pack("{s:I, s:I, s:I, s:I}", "requested", (json_int_t)n, "revoked", (json_int_t)applied,
                                  "skipped", (json_int_t)(n - applied), "generation", (json_int_t)gen));
out:
    for (size_t i = 0; own != NULL && i < n; i++) {
        pol_cert_free(own[i]);
        own[i] = NULL;
    }
    free(own);
    own = NULL;
    free(revs);
    revs = NULL;
    free(serials);
    serials = NULL;
    issuers_free(&is);
    json_decref(body);
    return 0;
}

const struct adm_route adm_routes_revocations[] = {
    { "GET", "/v1/revocations", ADM_ROLE_READER, rev_list,
      "List revocations (paginated; ?issuer_hash=, ?serial= filter)",
      ADM_DOC({"query": ["Limit", "After",
                         {"name": "issuer_hash", "schema": {"type": "string", "pattern": "^[0-9A-Fa-f]{64}$"},
                          "description": "Only this issuer's (SHA-256 of its Name DER, as issuer_hash shows it)"},
                         {"name": "serial",
                          "schema": {"type": "string", "pattern": "^(0[xX])?[0-9A-Fa-f:]*[0-9A-Fa-f][0-9A-Fa-f:]*$"},
                          "description": "Only this serial number (hex)"}],
               "responses": {"200": {"$ref": "RevocationPage"},
                             "400": "limit, after, issuer_hash or serial is malformed (field names it)",
                             "503": "No policy store is configured, or it cannot be read now"}}) },
    { "POST", "/v1/revocations", ADM_ROLE_OPERATOR, rev_create,
      "Revoke a certificate (by certificate, or by issuer certificate and serial)",
      ADM_DOC({"request": {"application/json": {"$ref": "RevocationCreate"}},
               "responses": {"201": {"allOf": [{"$ref": "Revocation"}, {"required": ["generation"]}]},
                             "400": "A field is missing, unknown, of the wrong type or malformed (field names it)",
                             "409": "Already revoked (code exists); a certificateHold may be revoked again with a final reason",
                             "422": "issuer_certificate is not a CA, or the certificate is unusable (code unusable_certificate)",
                             "503": "No policy store is configured, or it cannot be written now: nothing was applied"}}) },
    { "POST", "/v1/revocations/batch", ADM_ROLE_OPERATOR, rev_batch,
      "Revoke many certificates in one transaction",
      ADM_DOC({"request": {"application/json": {"$ref": "RevocationBatch"}},
               "responses": {"200": {"$ref": "RevocationBatchResult"},
                             "400": "The body or an item is malformed (field: revocations[12].serial); nothing was applied",
                             "422": "An issuer certificate is not a CA, or more than 64 different ones; nothing was applied",
                             "503": "No policy store is configured, or it cannot be written now: nothing was applied"}}) },
    { "POST", "/v1/revocations/lift", ADM_ROLE_OPERATOR, rev_lift, "Lift a certificateHold",
      ADM_DOC({"request": {"application/json": {"$ref": "RevocationLift"}},
               "responses": {"200": {"$ref": "RevocationLifted"},
                             "400": "A field is missing, unknown, of the wrong type or malformed (field names it)",
                             "404": "No revocation made here for that certificate (code not_found)",
                             "409": "The revocation is not a certificateHold (code not_on_hold)",
                             "422": "issuer_certificate is not a CA, or the certificate is unusable (code unusable_certificate)",
                             "503": "No policy store is configured, or it cannot be written now: nothing was applied"}}) },
    { NULL, NULL, ADM_ROLE_NONE, NULL, NULL, ADM_DOC({"schemas": {
        "ReasonCode": {"type": "string", "description": "RFC 5280 5.3.1 CRLReason (unknown: an imported CRL's code RFC 5280 lacks)",
                       "enum": ["unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
                                "cessationOfOperation", "certificateHold", "removeFromCRL", "privilegeWithdrawn",
                                "aACompromise", "unknown"]},
        "ReasonInput": {"type": "string", "nullable": true,
                        "description": "RFC 5280 5.3.1 CRLReason (the server ignores case); unspecified when absent or null",
                        "enum": ["unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
                                 "cessationOfOperation", "certificateHold", "privilegeWithdrawn", "aACompromise", null]},
        /* row_json */
        "Revocation": {"type": "object", "required": ["issuer", "issuer_hash", "serial", "reason", "revoked_at", "source",
                                                      "actor", "comment", "recorded_at"], "properties": {
            "issuer": {"type": "string", "description": "The issuer's Name (RFC 4514)"},
            "issuer_hash": {"$ref": "Sha256Hex"},
            "serial": {"$ref": "Serial"},
            "reason": {"$ref": "ReasonCode"},
            "revoked_at": {"$ref": "Timestamp"},
            "source": {"type": "string", "pattern": "^(local|crl:[0-9]+)$",
                       "description": "local: made here (API or CLI); crl:ID: listed by an imported CRL (GET /v1/crls/ID)"},
            "actor": {"type": "string", "nullable": true, "description": "Who made it (token:alice)"},
            "comment": {"type": "string", "nullable": true},
            "recorded_at": {"$ref": "Timestamp"},
            "generation": {"$ref": "Generation"}}},
        "RevocationPage": {"type": "object", "required": ["items", "next"], "properties": {
            "items": {"type": "array", "items": {"$ref": "Revocation"}}, "next": {"$ref": "NextCursor"}}},
        /* parse_target: a certificate, or an issuer certificate and a serial, never both */
        "ByCertificate": {"required": ["certificate"], "properties": {
            "certificate": {"type": "string"}, "issuer_certificate": {"not": {"type": "string"}},
            "serial": {"not": {"type": "string"}}}},
        "ByIssuerAndSerial": {"required": ["issuer_certificate", "serial"], "properties": {
            "issuer_certificate": {"type": "string"}, "serial": {"type": "string"},
            "certificate": {"not": {"type": "string"}}}},
        "RevocationCreate": {"type": "object", "additionalProperties": false,
                             "description": "The client's certificate, or its issuer's (a CA) and the serial",
                             "oneOf": [{"$ref": "ByCertificate"}, {"$ref": "ByIssuerAndSerial"}], "properties": {
            "certificate": {"$ref": "Pem"},
            "issuer_certificate": {"$ref": "Pem"},
            "serial": {"$ref": "SerialInput"},
            "reason": {"$ref": "ReasonInput"},
            "revoked_at": {"$ref": "TimeInput"},
            "comment": {"$ref": "Comment"}}},
        "RevocationLift": {"type": "object", "additionalProperties": false,
                           "oneOf": [{"$ref": "ByCertificate"}, {"$ref": "ByIssuerAndSerial"}], "properties": {
            "certificate": {"$ref": "Pem"},
            "issuer_certificate": {"$ref": "Pem"},
            "serial": {"$ref": "SerialInput"},
            "comment": {"$ref": "Comment"}}},
        /* rev_batch, item_fields: an item's issuer_certificate, reason and revoked_at default to the batch's */
        "RevocationBatch": {"type": "object", "additionalProperties": false, "required": ["revocations"], "properties": {
            "revocations": {"type": "array", "minItems": 1, "maxItems": 100000, "items": {"$ref": "RevocationBatchItem"}},
            "issuer_certificate": {"$ref": "Pem"},
            "reason": {"$ref": "ReasonInput"},
            "revoked_at": {"$ref": "TimeInput"},
            "comment": {"$ref": "Comment"}}},
        "RevocationBatchItem": {"type": "object", "additionalProperties": false,
                                "description": "A serial needs an issuer_certificate, its own or the batch's",
                                "oneOf": [{"$ref": "ByCertificate"},
                                          {"required": ["serial"], "properties": {"serial": {"type": "string"},
                                                                                  "certificate": {"not": {"type": "string"}}}}],
                                "properties": {
            "certificate": {"$ref": "Pem"},
            "issuer_certificate": {"$ref": "Pem"},
            "serial": {"$ref": "SerialInput"},
            "reason": {"$ref": "ReasonInput"},
            "revoked_at": {"$ref": "TimeInput"}}},
        "RevocationBatchResult": {"type": "object", "required": ["requested", "revoked", "skipped", "generation"], "properties": {
            "requested": {"type": "integer", "minimum": 1},
            "revoked": {"type": "integer", "minimum": 0},
            "skipped": {"type": "integer", "minimum": 0, "description": "Already revoked"},
            "generation": {"$ref": "Generation"}}},
        "RevocationLifted": {"type": "object", "required": ["lifted", "generation"], "properties": {
            "lifted": {"type": "object", "nullable": true, "allOf": [{"$ref": "Revocation"}],
                       "description": "The hold as it was"},
            "generation": {"$ref": "Generation"}}}}}) },
};
