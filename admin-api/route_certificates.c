/* route_certificates.c - /v1/certificates: client certificates issued by the root CA whose key is in
 * the HSM, from a PKCS#10 request (issue), and the certificates issued so far (list, get). Revoking one
 * is a revocation (POST /v1/revocations with its certificate, or the root's certificate and its serial).
 *
 * Issuing checks everything before the HSM signs: the request parses, its self-signature verifies
 * (RFC 2986 3, proof of possession), its key is EC P-256/P-384 or RSA 2048-4096, it does not ask for
 * a CA, and its subject fits the profile (hsm_ca_subject_check: known attributes, printable text within
 * RFC 5280's bounds, a commonName). The certificate is then recorded in the store with its audit record
 * before it is handed out: a certificate the store did not take is never returned.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin-api/adm_ca.h"
#include "gateway/log.h"

#define CSR_MAX (64u * 1024)

static json_t *jpem(const uint8_t *der, size_t len)
{
    char *pem = NULL;
    size_t n = 0;
    if (hsm_ca_pem_encode("CERTIFICATE", der, len, &pem, &n) != 0)
        return NULL;
    json_t *v = json_stringn(pem, n);
    free(pem);
    return v;
}

/* One issued certificate; with_pem adds the certificate itself. */
static json_t *issued_json(const struct pol_issued_row *row, time_t now, int with_pem)
{
    char serial[2 * POL_SERIAL_MAX + 1];
    const char *status = row->revoked ? "revoked" : row->not_after <= now ? "expired" : "valid";
    json_t *revoked = row->revoked ? json_pack("{s:s, s:o}", "reason", pol_reason_code_name(row->reason),
                                               "revoked_at", adm_jtime(row->revoked_at))
                                   : json_null();

    pol_serial_format(row->serial, row->serial_len, serial, sizeof(serial));
    json_t *o = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o}", "id", (json_int_t)row->id,
                          "serial", serial, "subject", adm_jtext(row->subject), "issuer", adm_jtext(row->issuer), "not_before",
                          adm_jtime(row->not_before), "not_after", adm_jtime(row->not_after), "status", status, "revoked",
                          revoked ? revoked : json_null(), "actor", adm_jtext(row->actor), "comment", adm_jtext(row->comment),
                          "request_id", adm_jtext(row->request_id), "created_at", adm_jtime(row->created_at));
    if (o != NULL && with_pem) {
        json_t *pem = jpem(row->der, row->der_len);
        if (pem == NULL || json_object_set_new(o, "certificate", pem) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

struct page {
    json_t *items;
    size_t limit, n;
    int more, with_pem;
    time_t now;
    int64_t last_id;
};

static int add_row(void *arg, const struct pol_issued_row *row)
{
    struct page *p = arg;
    if (p->n == p->limit) {
        p->more = 1;
        return 1;               /* stop: this row is the next page's first */
    }
    json_t *o = issued_json(row, p->now, p->with_pem);
    if (o == NULL || json_array_append_new(p->items, o) != 0)
        return POL_E_NOMEM;
    p->n++;
    p->last_id = row->id;
    return 0;
}

/* The problem for a CSR that hsm_ca_csr_parse refused: malformed 400, refused 422 (RFC 9457 "field"). */
static void csr_problem(struct adm_resp *resp, int rc, const char *why)
{
    switch (rc) {
    case HSM_E_KEYTYPE:
    case HSM_E_SIGN:
        adm_problem(resp, 422, "csr", "%s", why);
        break;
    case HSM_E_NOMEM:
        adm_problem(resp, 500, NULL, "out of memory");
        break;
    default:
        adm_problem(resp, 400, "csr", "%s", why);
        break;
    }
}

static int certificate_issue(struct adm_req *req, struct adm_resp *resp)
{
    static const char *const fields[] = { "csr", "validity_days", "comment", NULL };
    struct adm_ca *ca = adm_ca(req);
    struct pol_store *st = adm_store(req);
    struct hsm_ca_csr csr = { 0 };
    struct pol_cert *cert = NULL;
    struct pol_actor who;
    const char *pem = NULL, *comment = NULL;
    long long days;
    uint8_t *der = NULL;
    size_t der_len = 0;
    char err[512] = "", cn[128], serial[2 * POL_SERIAL_MAX + 1];
    int64_t id = 0;
    uint64_t gen = 0;
    json_t *body = NULL;
    int rc;

    if (ca == NULL) {
        adm_problem(resp, 503, NULL, "no certificate authority is configured (admin: ca_certificate and ca_key)");
        return 0;
    }
    if (st == NULL) {
        /* Every certificate issued is recorded and audited: no store, no issuing. */
        adm_problem(resp, 503, NULL, "no policy store is configured (policy_store in the configuration)");
        return 0;
    }
    days = adm_ca_default_days(ca);
    if (adm_body_object(req, resp, &body) != 0)
        return 0;
    if (adm_only_fields(resp, body, fields) != 0 || adm_field_string(resp, body, "csr", 1, &pem) != 0 ||
        adm_field_int(resp, body, "validity_days", 0, 1, adm_ca_max_days(ca), &days) != 0 ||
        adm_field_string(resp, body, "comment", 0, &comment) != 0)
        goto out;
    size_t n = strlen(pem);
    if (n == 0 || n > CSR_MAX) {
        adm_problem(resp, 400, "csr", "csr: a PEM certificate request of at most %u bytes was expected", CSR_MAX);
        goto out;
    }
    if ((rc = hsm_ca_csr_parse((const uint8_t *)pem, n, &csr, err, sizeof(err))) != 0) {
        csr_problem(resp, rc, err);
        goto out;
    }
    if (csr.requests_ca) {
        adm_problem(resp, 422, "csr", "the request asks for a CA certificate (basicConstraints CA:TRUE); "
                    "this CA issues client certificates only");
        goto out;
    }
    if (hsm_ca_subject_check(csr.subject_der, csr.subject_len, cn, sizeof(cn), err, sizeof(err)) != 0) {
        adm_problem(resp, 422, "csr", "CSR: %s", err);
        goto out;
    }
    /* A certificate outliving its CA would be refused by every verifier at the CA's end anyway. */
    if (time(NULL) + (time_t)days * 86400 > adm_ca_not_after(ca)) {
        adm_problem(resp, 422, "validity_days", "%lld days would outlive the CA certificate; ask for fewer", days);
        goto out;
    }
    if ((rc = adm_ca_issue(ca, &csr, (unsigned)days, &der, &der_len, err, sizeof(err))) != 0) {
        gw_log(LOG_ERR, "admin: cannot issue a certificate for \"%s\" (request %s): %s", cn, req->request_id, err);
        if (rc == HSM_E_SESSION || rc == HSM_E_TOKEN || rc == HSM_E_PIN || rc == HSM_E_KEY || rc == HSM_E_NOT_ATTACHED)
            adm_problem(resp, 503, NULL, "the HSM cannot sign now: %s", err);
        else
            adm_problem(resp, 500, NULL, "the certificate could not be issued (request %s)", req->request_id);
        goto out;
    }
    if (pol_cert_from_der(der, der_len, &cert) != 0) {
        adm_problem(resp, 500, NULL, "the issued certificate does not parse (request %s)", req->request_id);
        goto out;
    }
    adm_actor(req, comment, &who);
    rc = pol_store_issued_add(st, der, der_len, &who, &id, &gen, err, sizeof(err));
    if (rc != 0) {
        /* Signed but not recorded: it is dropped here and never handed out. */
        adm_pol_problem(resp, rc, err);
        goto out;
    }
    adm_changed(req);
    size_t slen = 0;
    const uint8_t *sb = pol_cert_serial(cert, &slen);
    pol_serial_format(sb, slen, serial, sizeof(serial));
    gw_log(LOG_INFO, "admin: issued certificate %s to \"%s\" for %lld days (%s, request %s)", serial,
           pol_cert_subject(cert), days, req->who, req->request_id);
    json_t *o = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:I}", "id", (json_int_t)id, "serial", serial,
                          "subject", adm_jtext(pol_cert_subject(cert)), "issuer", adm_jtext(pol_cert_issuer(cert)), "not_before",
                          adm_jtime(pol_cert_not_before(cert)), "not_after", adm_jtime(pol_cert_not_after(cert)), "certificate",
                          jpem(der, der_len), "generation", (json_int_t)gen);
    snprintf(resp->location, sizeof(resp->location), "/v1/certificates/%s", serial);
    adm_json(resp, 201, o);
out:
    json_decref(body);
    hsm_ca_csr_clear(&csr);
    pol_cert_free(cert);
    cert = NULL;
    free(der);
    der = NULL;
    return 0;
}

static int certificates_list(struct adm_req *req, struct adm_resp *resp)
{
    struct pol_store *st = adm_store(req);
    struct pol_issued_query q;
    const char *after = NULL;
    struct page p;
    char err[512] = "", next[24];
    long long after_id = 0;

    if (st == NULL) {
        adm_problem(resp, 503, NULL, "no policy store is configured (policy_store in the configuration)");
        return 0;
    }
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
    memset(&q, 0, sizeof(q));
    q.after_id = (int64_t)after_id;
    q.limit = p.limit + 1;      /* one row past the page tells whether there is a next one */
    int rc = pol_store_issued_query(st, &q, add_row, &p, err, sizeof(err));
    if (rc != 0 && rc != 1) {
        json_decref(p.items);
        adm_pol_problem(resp, rc, err);
        return 0;
    }
    snprintf(next, sizeof(next), "%lld", (long long)p.last_id);
    adm_json(resp, 200, json_pack("{s:o, s:o}", "items", p.items, "next", p.more ? json_string(next) : json_null()));
    return 0;
}

static int certificate_get(struct adm_req *req, struct adm_resp *resp)
{
    struct pol_store *st = adm_store(req);
    struct pol_issued_query q;
    uint8_t serial[POL_SERIAL_MAX];
    size_t slen = 0;
    struct page p;
    char err[512] = "";

    if (st == NULL) {
        adm_problem(resp, 503, NULL, "no policy store is configured (policy_store in the configuration)");
        return 0;
    }
    if (pol_serial_parse(req->params[0], serial, &slen) != 0) {
        adm_problem(resp, 400, "serial", "expected a positive hex number of at most %d octets, got \"%.80s\"",
                    POL_SERIAL_MAX, req->params[0]);
        return 0;
    }
    memset(&p, 0, sizeof(p));
    p.limit = 1;
    p.with_pem = 1;
    p.now = time(NULL);
    if ((p.items = json_array()) == NULL) {
        adm_problem(resp, 500, NULL, "out of memory");
        return 0;
    }
    memset(&q, 0, sizeof(q));
    q.serial = serial;
    q.serial_len = slen;
    q.limit = 1;
    int rc = pol_store_issued_query(st, &q, add_row, &p, err, sizeof(err));
    if (rc != 0 && rc != 1) {
        json_decref(p.items);
        adm_pol_problem(resp, rc, err);
        return 0;
    }
    if (p.n == 0) {
        json_decref(p.items);
        adm_problem(resp, 404, "serial", "no certificate with serial %.80s was issued here", req->params[0]);
        return 0;
    }
    json_t *o = json_incref(json_array_get(p.items, 0));
    json_decref(p.items);
    adm_json(resp, 200, o);
    return 0;
}

const struct adm_route adm_routes_certificates[] = {
    { "POST", "/v1/certificates", ADM_ROLE_ADMIN, certificate_issue,
      "Issue a client certificate for a PKCS#10 request, signed by the root CA key in the HSM",
      ADM_DOC({"request": {"application/json": {"$ref": "CertificateRequest"}},
               "responses": {"201": {"$ref": "IssuedCertificate"},
                             "400": "The body is malformed, or the CSR does not parse (field names it)",
                             "422": "The CSR's signature, key or subject; it asks for a CA; validity_days outlives the CA",
                             "503": "No CA (ca_key) or no store, the HSM cannot sign now, or the store cannot be written"}}) },
    { "GET", "/v1/certificates", ADM_ROLE_READER, certificates_list, "List the certificates issued here",
      ADM_DOC({"query": ["Limit", "After"],
               "responses": {"200": {"$ref": "CertificatePage"},
                             "400": "limit or after is malformed (field names it)",
                             "503": "No policy store is configured, or it cannot be read now"}}) },
    { "GET", "/v1/certificates/{serial}", ADM_ROLE_READER, certificate_get, "Get an issued certificate by serial",
      ADM_DOC({"path": {"serial": {"type": "string", "pattern": "^(0[xX])?[0-9A-Fa-f:]*[0-9A-Fa-f][0-9A-Fa-f:]*$"}},
               "responses": {"200": {"allOf": [{"$ref": "Certificate"}, {"required": ["certificate"]}]},
                             "400": "The serial is not hex",
                             "404": "No certificate with that serial was issued here",
                             "503": "No policy store is configured, or it cannot be read now"}}) },
    { NULL, NULL, ADM_ROLE_NONE, NULL, NULL, ADM_DOC({"schemas": {
        "CertificateRequest": {"type": "object", "additionalProperties": false, "required": ["csr"], "properties": {
            "csr": {"type": "string", "minLength": 1, "maxLength": 65536,
                    "description": "PKCS#10, PEM: EC P-256/P-384 or RSA 2048-4096, a subject with a commonName"},
            "validity_days": {"type": "integer", "nullable": true, "minimum": 1,
                              "description": "At most admin: client_validity, which is also the default"},
            "comment": {"$ref": "Comment"}}},
        "CertificatePem": {"type": "string", "pattern": "^-----BEGIN CERTIFICATE-----",
                           "description": "The certificate, PEM"},
        /* certificate_issue */
        "IssuedCertificate": {"type": "object", "required": ["id", "serial", "subject", "issuer", "not_before", "not_after",
                                                             "certificate", "generation"], "properties": {
            "id": {"type": "integer", "minimum": 1},
            "serial": {"$ref": "Serial"},
            "subject": {"type": "string", "description": "RFC 4514"},
            "issuer": {"type": "string", "description": "The root's subject (RFC 4514)"},
            "not_before": {"$ref": "Timestamp"},
            "not_after": {"$ref": "Timestamp"},
            "certificate": {"$ref": "CertificatePem"},
            "generation": {"$ref": "Generation"}}},
        /* issued_json */
        "Certificate": {"type": "object", "required": ["id", "serial", "subject", "issuer", "not_before", "not_after", "status",
                                                       "revoked", "actor", "comment", "request_id", "created_at"], "properties": {
            "id": {"type": "integer", "minimum": 1},
            "serial": {"$ref": "Serial"},
            "subject": {"type": "string"},
            "issuer": {"type": "string"},
            "not_before": {"$ref": "Timestamp"},
            "not_after": {"$ref": "Timestamp"},
            "status": {"type": "string", "enum": ["valid", "expired", "revoked"],
                       "description": "revoked: by any source (a revocation made here or an imported CRL)"},
            "revoked": {"type": "object", "nullable": true, "required": ["reason", "revoked_at"],
                        "description": "The revocation in force; null: none", "properties": {
                "reason": {"$ref": "ReasonCode"}, "revoked_at": {"$ref": "TimestampOrNull"}}},
            "actor": {"type": "string"},
            "comment": {"type": "string", "nullable": true},
            "request_id": {"type": "string", "nullable": true},
            "created_at": {"$ref": "Timestamp"},
            "certificate": {"$ref": "CertificatePem"}}},
        "CertificatePage": {"type": "object", "required": ["items", "next"], "properties": {
            "items": {"type": "array", "items": {"$ref": "Certificate"}}, "next": {"$ref": "NextCursor"}}}}}) },
};
