/* cmd_policy.c - hsmgatectl's policy commands: revoke (and --lift), revocations ls, allow add|rm|ls,
 * crl import|ls|rm, audit ls|verify. Each is one route of admin-api/README.md ("Policy routes"); the
 * server checks everything that needs the store or a certificate's contents, so the checks here are
 * only the ones of the command line (which options go together).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin-api/ctl/ctl.h"

#define PEM_FILE_MAX (1u << 20)             /* a certificate */
#define CRL_FILE_MAX (256u << 20)           /* a CRL of millions of entries (mind the server's max_body) */

#define PAGES_USAGE "  --limit N       at most N per page (1-1000; default 100)\n" \
                    "  --after CURSOR  the page after CURSOR (printed when there is more)\n" \
                    "  --all           every page\n"
#define PAGES_OPTS(pg) { "limit", &(pg).limit, NULL }, { "after", &(pg).after, NULL }, { "all", NULL, &(pg).all }

/* Prints the body of a success with --json. Returns 1 if it did. */
static int raw_json(const struct ctl *c, const struct ctl_resp *r)
{
    if (!c->json)
        return 0;
    fwrite(r->body, 1, r->len, stdout);
    if (r->len == 0 || r->body[r->len - 1] != '\n')
        fputc('\n', stdout);
    return 1;
}

/* Puts a certificate file into body under key; 0 or an exit status. */
static int put_pem(json_t *body, const char *key, const char *path, const char *label, size_t max)
{
    char *pem = NULL;
    int rc = ctl_read_pem(path, label, max, &pem);

    if (rc != 0)
        return rc;
    rc = ctl_set_str(body, key, pem) == 0 ? 0 : CTL_USAGE;
    free(pem);
    return rc;
}

/* The target of a revocation (or of an issuer-serial allowlist entry): --cert, or --issuer-cert with
 * --serial. */
static int put_target(struct ctl *c, json_t *body, const char *cert, const char *issuer, const char *serial)
{
    if (cert != NULL && (issuer != NULL || serial != NULL))
        return ctl_usage_error(c, "give --cert, or --issuer-cert with --serial, not both");
    if (cert == NULL && (issuer == NULL || serial == NULL))
        return ctl_usage_error(c, cert == NULL && issuer == NULL && serial == NULL
                                      ? "which certificate? give --cert FILE, or --issuer-cert FILE --serial HEX"
                                      : "--issuer-cert and --serial go together");
    if (cert != NULL)
        return put_pem(body, "certificate", cert, "CERTIFICATE", PEM_FILE_MAX);
    int rc = put_pem(body, "issuer_certificate", issuer, "CERTIFICATE", PEM_FILE_MAX);
    if (rc == 0 && ctl_set_str(body, "serial", serial) != 0)
        rc = CTL_USAGE;
    return rc;
}

static const char usage_revoke[] =
    "usage: hsmgatectl revoke (--cert FILE | --issuer-cert FILE --serial HEX) [--reason R] [--revoked-at T]\n"
    "                         [--comment C]\n"
    "       hsmgatectl revoke --lift (--cert FILE | --issuer-cert FILE --serial HEX) [--comment C]\n"
    "\n"
    "POST /v1/revocations (or /v1/revocations/lift): revoke a client's certificate, named by the certificate\n"
    "itself or by its issuing CA's certificate and its serial; the next handshake of that client is refused\n"
    "and its live connections are closed. --lift lifts a certificateHold made here.\n"
    "  --reason R      an RFC 5280 5.3.1 reason: unspecified (default), keyCompromise, cACompromise,\n"
    "                  affiliationChanged, superseded, cessationOfOperation, certificateHold,\n"
    "                  privilegeWithdrawn, aACompromise\n"
    "  --revoked-at T  when it was compromised: 2026-01-31T12:00:00Z, or -2h (default: now)\n"
    "  --comment C     why, for the audit trail\n"
    "Files are PEM, or DER.\n";

int ctl_cmd_revoke(struct ctl *c, int argc, char **argv)
{
    const char *cert = NULL, *issuer = NULL, *serial = NULL, *reason = NULL, *at = NULL, *comment = NULL;
    int lift = 0, rc;
    size_t npos;
    struct ctl_resp r = { 0 };
    struct ctl_strs t = { 0 };
    const struct ctl_opt opts[] = {
        { "cert", &cert, NULL }, { "issuer-cert", &issuer, NULL }, { "serial", &serial, NULL },
        { "reason", &reason, NULL }, { "revoked-at", &at, NULL }, { "comment", &comment, NULL },
        { "lift", NULL, &lift }, { NULL, NULL, NULL },
    };
    json_t *body = NULL;

    c->usage = usage_revoke;
    if ((rc = ctl_args(c, argc, argv, opts, NULL, 0, &npos)) != 0)
        return rc;
    if (lift && (reason != NULL || at != NULL))
        return ctl_usage_error(c, "--lift takes no --reason or --revoked-at");
    if ((body = json_object()) == NULL)
        return CTL_REFUSED;
    if ((rc = put_target(c, body, cert, issuer, serial)) != 0)
        goto out;
    if (ctl_set_str(body, "reason", reason) != 0 || ctl_set_str(body, "revoked_at", at) != 0 ||
        ctl_set_str(body, "comment", comment) != 0) {
        rc = CTL_USAGE;
        goto out;
    }
    if (lift) {
        if ((rc = ctl_request(c, "POST", "/v1/revocations/lift", body, "/v1/revocations/lift", &r)) != 0 ||
            raw_json(c, &r))
            goto out;
        const json_t *l = json_object_get(r.json, "lifted");
        if (json_is_object(l))
            printf("lifted the hold on serial %s of %s (generation %s)\n", ctl_v(&t, l, "serial"),
                   ctl_v(&t, l, "issuer"), ctl_v(&t, r.json, "generation"));
        else
            printf("lifted the hold (generation %s)\n", ctl_v(&t, r.json, "generation"));
        goto out;
    }
    if ((rc = ctl_request(c, "POST", "/v1/revocations", body, "/v1/revocations", &r)) != 0 || raw_json(c, &r))
        goto out;
    printf("revoked serial %s of %s: %s since %s (generation %s)\n", ctl_v(&t, r.json, "serial"),
           ctl_v(&t, r.json, "issuer"), ctl_v(&t, r.json, "reason"), ctl_v(&t, r.json, "revoked_at"),
           ctl_v(&t, r.json, "generation"));
out:
    ctl_strs_free(&t);
    ctl_resp_free(&r);
    json_decref(body);
    return rc;
}

static const char usage_revocations_ls[] =
    "usage: hsmgatectl revocations ls [--issuer-hash H] [--serial HEX] [--limit N] [--after CURSOR] [--all]\n"
    "\n"
    "GET /v1/revocations: revocations made here and listed by imported CRLs.\n"
    "  --issuer-hash H  only this issuer's (SHA-256 of its Name DER, as listed)\n"
    "  --serial HEX     only this serial\n" PAGES_USAGE;

int ctl_cmd_revocations_ls(struct ctl *c, int argc, char **argv)
{
    static const struct ctl_col cols[] = {
        { "SERIAL", "serial", 42 }, { "REASON", "reason", 0 }, { "REVOKED_AT", "revoked_at", 0 },
        { "SOURCE", "source", 0 }, { "ACTOR", "actor", 24 }, { "ISSUER", "issuer", 48 },
        { "COMMENT", "comment", 60 }, { NULL, NULL, 0 },
    };
    const char *hash = NULL, *serial = NULL;
    struct ctl_pages pg = { 0 };
    const struct ctl_opt opts[] = {
        { "issuer-hash", &hash, NULL }, { "serial", &serial, NULL }, PAGES_OPTS(pg), { NULL, NULL, NULL },
    };
    json_t *items = NULL;
    char *next = NULL, *q = NULL;
    size_t npos;
    int rc;

    c->usage = usage_revocations_ls;
    if ((rc = ctl_args(c, argc, argv, opts, NULL, 0, &npos)) != 0)
        return rc;
    if (ctl_query_add(&q, "issuer_hash", hash) != 0 || ctl_query_add(&q, "serial", serial) != 0) {
        free(q);
        return CTL_REFUSED;
    }
    rc = ctl_list(c, "/v1/revocations", q, &pg, "/v1/revocations", &items, &next);
    if (rc == 0)
        ctl_list_print(c, items, next, cols, "no revocations");
    json_decref(items);
    free(next);
    free(q);
    return rc;
}

static const char usage_allow_add[] =
    "usage: hsmgatectl allow add LIST --match TYPE (--value V | --cert FILE | --issuer-cert FILE --serial HEX)\n"
    "                            [--expires T] [--comment C]\n"
    "\n"
    "POST /v1/allowlists/LIST/entries: admit the clients that match.\n"
    "  --match TYPE    fingerprint, spki, subject, cn, san-dns, san-uri, san-email, issuer-serial\n"
    "  --value V       the value to match, as text\n"
    "  --cert FILE     take the value from this certificate (PEM or DER)\n"
    "  --issuer-cert FILE --serial HEX   for issuer-serial: the issuing CA's certificate and the serial\n"
    "  --expires T     the entry stops matching then: 2026-03-01T00:00:00Z, or +30d\n"
    "  --comment C     why, for the audit trail\n";

int ctl_cmd_allow_add(struct ctl *c, int argc, char **argv)
{
    const char *match = NULL, *value = NULL, *cert = NULL, *issuer = NULL, *serial = NULL, *expires = NULL;
    const char *comment = NULL, *pos[1];
    const struct ctl_opt opts[] = {
        { "match", &match, NULL }, { "value", &value, NULL }, { "cert", &cert, NULL },
        { "issuer-cert", &issuer, NULL }, { "serial", &serial, NULL }, { "expires", &expires, NULL },
        { "comment", &comment, NULL }, { NULL, NULL, NULL },
    };
    struct ctl_resp r = { 0 };
    struct ctl_strs t = { 0 };
    json_t *body = NULL;
    char *list = NULL, *path = NULL;
    size_t npos;
    int rc;

    c->usage = usage_allow_add;
    if ((rc = ctl_args(c, argc, argv, opts, pos, 1, &npos)) != 0)
        return rc;
    if (npos != 1)
        return ctl_usage_error(c, "which list? hsmgatectl allow add LIST --match TYPE ...");
    if (match == NULL)
        return ctl_usage_error(c, "--match TYPE is required (fingerprint, spki, subject, cn, san-dns, san-uri, "
                               "san-email, issuer-serial)");
    if ((value != NULL) + (cert != NULL) + (issuer != NULL || serial != NULL) != 1)
        return ctl_usage_error(c, "give one of --value V, --cert FILE, or --issuer-cert FILE with --serial HEX");
    if ((body = json_object()) == NULL || (list = ctl_escape(pos[0])) == NULL ||
        asprintf(&path, "/v1/allowlists/%s/entries", list) < 0) {
        path = NULL;
        rc = CTL_REFUSED;
        goto out;
    }
    if (value != NULL && ctl_set_str(body, "value", value) != 0) {
        rc = CTL_USAGE;
        goto out;
    }
    if (value == NULL && (rc = put_target(c, body, cert, issuer, serial)) != 0)
        goto out;
    if (ctl_set_str(body, "match", match) != 0 || ctl_set_str(body, "expires_at", expires) != 0 ||
        ctl_set_str(body, "comment", comment) != 0) {
        rc = CTL_USAGE;
        goto out;
    }
    if ((rc = ctl_request(c, "POST", path, body, "/v1/allowlists/{name}/entries", &r)) != 0 || raw_json(c, &r))
        goto out;
    printf("added entry %s to %s: %s %s%s%s (generation %s)\n", ctl_v(&t, r.json, "id"), ctl_v(&t, r.json, "list"),
           ctl_v(&t, r.json, "match"), ctl_v(&t, r.json, "value"), json_is_string(json_object_get(r.json, "expires_at"))
           ? ", expires " : "", json_is_string(json_object_get(r.json, "expires_at")) ? ctl_v(&t, r.json, "expires_at")
           : "", ctl_v(&t, r.json, "generation"));
out:
    ctl_strs_free(&t);
    ctl_resp_free(&r);
    json_decref(body);
    free(list);
    free(path);
    return rc;
}

/* A body {"comment": C} for a DELETE, or NULL without a comment (*rc says if that is a failure). */
static json_t *comment_body(const char *comment, int *rc)
{
    json_t *b = NULL;

    *rc = 0;
    if (comment == NULL)
        return NULL;
    if ((b = json_object()) == NULL || ctl_set_str(b, "comment", comment) != 0) {
        json_decref(b);
        *rc = CTL_USAGE;
        return NULL;
    }
    return b;
}

static const char usage_allow_rm[] =
    "usage: hsmgatectl allow rm LIST ID [--comment C]\n"
    "\n"
    "DELETE /v1/allowlists/LIST/entries/ID: remove an entry (ID as `allow ls LIST` shows it).\n";

int ctl_cmd_allow_rm(struct ctl *c, int argc, char **argv)
{
    const char *comment = NULL, *pos[2];
    const struct ctl_opt opts[] = { { "comment", &comment, NULL }, { NULL, NULL, NULL } };
    struct ctl_resp r = { 0 };
    struct ctl_strs t = { 0 };
    char *list = NULL, *id = NULL, *path = NULL;
    json_t *body = NULL;
    size_t npos;
    int rc;

    c->usage = usage_allow_rm;
    if ((rc = ctl_args(c, argc, argv, opts, pos, 2, &npos)) != 0)
        return rc;
    if (npos != 2)
        return ctl_usage_error(c, "hsmgatectl allow rm LIST ID");
    body = comment_body(comment, &rc);
    if (rc != 0)
        goto out;
    if ((list = ctl_escape(pos[0])) == NULL || (id = ctl_escape(pos[1])) == NULL ||
        asprintf(&path, "/v1/allowlists/%s/entries/%s", list, id) < 0) {
        path = NULL;
        rc = CTL_REFUSED;
        goto out;
    }
    if ((rc = ctl_request(c, "DELETE", path, body, "/v1/allowlists/{name}/entries/{id}", &r)) != 0 ||
        raw_json(c, &r))
        goto out;
    const json_t *d = json_object_get(r.json, "deleted");
    printf("removed entry %s from %s: %s %s (generation %s)\n", ctl_v(&t, d, "id"), ctl_v(&t, d, "list"),
           ctl_v(&t, d, "match"), ctl_v(&t, d, "value"), ctl_v(&t, r.json, "generation"));
out:
    ctl_strs_free(&t);
    ctl_resp_free(&r);
    json_decref(body);
    free(list);
    free(id);
    free(path);
    return rc;
}

static const char usage_allow_ls[] =
    "usage: hsmgatectl allow ls [LIST] [--limit N] [--after CURSOR] [--all]\n"
    "\n"
    "GET /v1/allowlists (the lists and their counts), or GET /v1/allowlists/LIST/entries (a list's entries).\n"
    PAGES_USAGE;

int ctl_cmd_allow_ls(struct ctl *c, int argc, char **argv)
{
    static const struct ctl_col lists[] = {
        { "LIST", "name", 0 }, { "ENTRIES", "entries", 0 }, { "EXPIRED", "expired", 0 }, { NULL, NULL, 0 },
    };
    static const struct ctl_col entries[] = {
        { "ID", "id", 0 }, { "MATCH", "match", 0 }, { "VALUE", "value", 66 }, { "EXPIRES_AT", "expires_at", 0 },
        { "EXPIRED", "expired", 0 }, { "ACTOR", "actor", 24 }, { "CREATED_AT", "created_at", 0 },
        { "COMMENT", "comment", 60 }, { NULL, NULL, 0 },
    };
    struct ctl_pages pg = { 0 };
    const struct ctl_opt opts[] = { PAGES_OPTS(pg), { NULL, NULL, NULL } };
    const char *pos[1];
    json_t *items = NULL;
    char *next = NULL, *list = NULL, *path = NULL;
    size_t npos;
    int rc;

    c->usage = usage_allow_ls;
    if ((rc = ctl_args(c, argc, argv, opts, pos, 1, &npos)) != 0)
        return rc;
    if (npos == 0) {
        rc = ctl_list(c, "/v1/allowlists", NULL, &pg, "/v1/allowlists", &items, &next);
        if (rc == 0)
            ctl_list_print(c, items, next, lists, "no allowlists (a list exists while it has entries)");
        goto out;
    }
    if ((list = ctl_escape(pos[0])) == NULL || asprintf(&path, "/v1/allowlists/%s/entries", list) < 0) {
        path = NULL;
        rc = CTL_REFUSED;
        goto out;
    }
    rc = ctl_list(c, path, NULL, &pg, "/v1/allowlists/{name}/entries", &items, &next);
    if (rc == 0)
        ctl_list_print(c, items, next, entries, "no entries");
out:
    json_decref(items);
    free(next);
    free(list);
    free(path);
    return rc;
}

static const char usage_crl_import[] =
    "usage: hsmgatectl crl import NAME [--ca CA.pem] CRL [--comment C]\n"
    "\n"
    "POST /v1/crls/NAME: import another CA's CRL under a name of your choosing. The first import under a\n"
    "name gives the CA's certificate (--ca), which the server keeps; later CRLs of that CA need none.\n"
    "The CRL (and the CA) may be PEM or DER; \"-\" reads the CRL from stdin.\n";

int ctl_cmd_crl_import(struct ctl *c, int argc, char **argv)
{
    const char *ca = NULL, *comment = NULL, *pos[2];
    const struct ctl_opt opts[] = { { "ca", &ca, NULL }, { "comment", &comment, NULL }, { NULL, NULL, NULL } };
    struct ctl_resp r = { 0 };
    struct ctl_strs t = { 0 };
    char *name = NULL, *path = NULL;
    json_t *body = NULL;
    size_t npos;
    int rc;

    c->usage = usage_crl_import;
    if ((rc = ctl_args(c, argc, argv, opts, pos, 2, &npos)) != 0)
        return rc;
    if (npos != 2)
        return ctl_usage_error(c, "hsmgatectl crl import NAME [--ca CA.pem] CRL");
    if ((body = json_object()) == NULL || (name = ctl_escape(pos[0])) == NULL ||
        asprintf(&path, "/v1/crls/%s", name) < 0) {
        path = NULL;
        rc = CTL_REFUSED;
        goto out;
    }
    if ((rc = put_pem(body, "crl", pos[1], "X509 CRL", CRL_FILE_MAX)) != 0 ||
        (ca != NULL && (rc = put_pem(body, "ca", ca, "CERTIFICATE", PEM_FILE_MAX)) != 0))
        goto out;
    if (ctl_set_str(body, "comment", comment) != 0) {
        rc = CTL_USAGE;
        goto out;
    }
    if ((rc = ctl_request(c, "POST", path, body, "/v1/crls/{name}", &r)) != 0 || raw_json(c, &r))
        goto out;
    if (json_is_true(json_object_get(r.json, "unchanged")))
        printf("CRL %s unchanged: the server has this CRL already (number %s)\n", ctl_v(&t, r.json, "name"),
               ctl_v(&t, r.json, "crl_number"));
    else
        printf("%s CRL %s (id %s): %s, number %s, %s entries, next update %s (generation %s)\n",
               r.status == 201 ? "imported" : "replaced", ctl_v(&t, r.json, "name"), ctl_v(&t, r.json, "id"),
               ctl_v(&t, r.json, "issuer"), ctl_v(&t, r.json, "crl_number"), ctl_v(&t, r.json, "entries"),
               ctl_v(&t, r.json, "next_update"), ctl_v(&t, r.json, "generation"));
out:
    ctl_strs_free(&t);
    ctl_resp_free(&r);
    json_decref(body);
    free(name);
    free(path);
    return rc;
}

static const char usage_crl_ls[] =
    "usage: hsmgatectl crl ls [--limit N] [--after CURSOR] [--all]\n"
    "\n"
    "GET /v1/crls: the imported CRLs of other CAs.\n" PAGES_USAGE;

/* A list command with the paging options only: GET path, one table. */
static int plain_list(struct ctl *c, int argc, char **argv, const char *usage, const char *path,
                      const struct ctl_col *cols, const char *empty)
{
    struct ctl_pages pg = { 0 };
    const struct ctl_opt opts[] = { PAGES_OPTS(pg), { NULL, NULL, NULL } };
    json_t *items = NULL;
    char *next = NULL;
    size_t npos;
    int rc;

    c->usage = usage;
    if ((rc = ctl_args(c, argc, argv, opts, NULL, 0, &npos)) != 0)
        return rc;
    rc = ctl_list(c, path, NULL, &pg, path, &items, &next);
    if (rc == 0)
        ctl_list_print(c, items, next, cols, empty);
    json_decref(items);
    free(next);
    return rc;
}

int ctl_cmd_crl_ls(struct ctl *c, int argc, char **argv)
{
    static const struct ctl_col cols[] = {
        { "ID", "id", 0 }, { "NAME", "name", 0 }, { "NUMBER", "crl_number", 0 }, { "ENTRIES", "entries", 0 },
        { "THIS_UPDATE", "this_update", 0 }, { "NEXT_UPDATE", "next_update", 0 }, { "STALE", "stale", 0 },
        { "CA_KEPT", "ca_kept", 0 }, { "ISSUER", "issuer", 60 }, { NULL, NULL, 0 },
    };
    return plain_list(c, argc, argv, usage_crl_ls, "/v1/crls", cols, "no imported CRLs");
}

static const char usage_crl_rm[] =
    "usage: hsmgatectl crl rm NAME [--comment C]\n"
    "\n"
    "DELETE /v1/crls/NAME (or an id): remove an imported CRL and the revocations it listed.\n";

int ctl_cmd_crl_rm(struct ctl *c, int argc, char **argv)
{
    const char *comment = NULL, *pos[1];
    const struct ctl_opt opts[] = { { "comment", &comment, NULL }, { NULL, NULL, NULL } };
    struct ctl_resp r = { 0 };
    struct ctl_strs t = { 0 };
    char *name = NULL, *path = NULL;
    json_t *body = NULL;
    size_t npos;
    int rc;

    c->usage = usage_crl_rm;
    if ((rc = ctl_args(c, argc, argv, opts, pos, 1, &npos)) != 0)
        return rc;
    if (npos != 1)
        return ctl_usage_error(c, "which CRL? hsmgatectl crl rm NAME");
    body = comment_body(comment, &rc);
    if (rc != 0)
        goto out;
    if ((name = ctl_escape(pos[0])) == NULL || asprintf(&path, "/v1/crls/%s", name) < 0) {
        path = NULL;
        rc = CTL_REFUSED;
        goto out;
    }
    if ((rc = ctl_request(c, "DELETE", path, body, "/v1/crls/{name}", &r)) != 0 || raw_json(c, &r))
        goto out;
    const json_t *d = json_object_get(r.json, "deleted");
    printf("removed CRL %s (id %s) of %s and its %s revocations (generation %s)\n", ctl_v(&t, d, "name"),
           ctl_v(&t, d, "id"), ctl_v(&t, d, "issuer"), ctl_v(&t, d, "entries"), ctl_v(&t, r.json, "generation"));
out:
    ctl_strs_free(&t);
    ctl_resp_free(&r);
    json_decref(body);
    free(name);
    free(path);
    return rc;
}

static const char usage_audit_ls[] =
    "usage: hsmgatectl audit ls [--limit N] [--after ID] [--all]\n"
    "\n"
    "GET /v1/audit: the audit trail, oldest first (--json for every field, hashes included).\n" PAGES_USAGE;

int ctl_cmd_audit_ls(struct ctl *c, int argc, char **argv)
{
    static const struct ctl_col cols[] = {
        { "ID", "id", 0 }, { "AT", "at", 0 }, { "GEN", "generation", 0 }, { "ACTOR", "actor", 24 },
        { "ACTION", "action", 0 }, { "TARGET", "target", 70 }, { "SOURCE", "source", 0 },
        { "COMMENT", "comment", 50 }, { NULL, NULL, 0 },
    };
    return plain_list(c, argc, argv, usage_audit_ls, "/v1/audit", cols, "no audit records");
}

static const char usage_audit_verify[] =
    "usage: hsmgatectl audit verify\n"
    "\n"
    "GET /v1/audit/verify: check the audit trail's hash chain. Exit status 0 when it is intact, 1 when it\n"
    "is broken (the first record that fails is named). Keep the last hash somewhere the store's writers\n"
    "cannot reach: it proves later that the trail was not rewritten as a whole.\n";

int ctl_cmd_audit_verify(struct ctl *c, int argc, char **argv)
{
    struct ctl_resp r = { 0 };
    struct ctl_strs t = { 0 };
    size_t npos;
    int rc;

    c->usage = usage_audit_verify;
    if ((rc = ctl_args(c, argc, argv, NULL, NULL, 0, &npos)) != 0)
        return rc;
    if ((rc = ctl_request(c, "GET", "/v1/audit/verify", NULL, "/v1/audit/verify", &r)) != 0)
        goto out;
    int intact = json_is_true(json_object_get(r.json, "intact"));
    if (!raw_json(c, &r)) {
        if (intact)
            printf("audit trail intact: %s records, last record %s, last hash %s\n", ctl_v(&t, r.json, "records"),
                   ctl_v(&t, r.json, "last_id"), ctl_v(&t, r.json, "last_hash"));
        else
            printf("audit trail BROKEN: %s records, first bad record %s: %s\n", ctl_v(&t, r.json, "records"),
                   ctl_v(&t, r.json, "first_bad_id"), ctl_v(&t, r.json, "detail"));
    }
    rc = intact ? 0 : CTL_REFUSED;
out:
    ctl_strs_free(&t);
    ctl_resp_free(&r);
    return rc;
}
