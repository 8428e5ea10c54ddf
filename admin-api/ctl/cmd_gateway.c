/* cmd_gateway.c - hsmgatectl's commands about the running gateway: status (GET /v1/health and
 * /v1/listeners), conns ls|kill (/v1/connections), cert issue (POST /v1/certificates: issuing a client
 * certificate from a CSR with the CA key in the HSM; a server without that route says 404, and the
 * command says so plainly).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin-api/ctl/ctl.h"

#define CSR_FILE_MAX (1u << 20)

static const char usage_status[] =
    "usage: hsmgatectl status\n"
    "\n"
    "GET /v1/health (no token needed) and GET /v1/listeners (a reader's token): the gateway's state, its HSM\n"
    "and policy store, and each listener with its counters. Exit status 1 when the gateway is degraded.\n";

static void health_print(const json_t *h)
{
    struct ctl_strs t = { 0 };
    const json_t *hsm = json_object_get(h, "hsm"), *st = json_object_get(h, "store");

    printf("gateway    %s (%s)\n", ctl_v(&t, h, "status"), ctl_v(&t, h, "state"));
    if (json_is_object(hsm) && json_object_get(hsm, "signatures") != NULL)
        printf("hsm        %s: %s signatures, %s errors, %s sessions lost\n", ctl_v(&t, hsm, "status"),
               ctl_v(&t, hsm, "signatures"), ctl_v(&t, hsm, "errors"), ctl_v(&t, hsm, "sessions_lost"));
    else
        printf("hsm        %s\n", ctl_v(&t, hsm, "status"));
    if (json_is_object(st) && json_object_get(st, "generation") != NULL)
        printf("store      %s: generation %s, %s in force (%s)\n", ctl_v(&t, st, "status"),
               ctl_v(&t, st, "generation"), ctl_v(&t, st, "in_force"), ctl_v(&t, st, "path"));
    else
        printf("store      %s\n", ctl_v(&t, st, "status"));
    printf("listeners  %s, %s connections open\n", ctl_v(&t, h, "listeners.count"),
           ctl_v(&t, h, "listeners.connections"));
    ctl_strs_free(&t);
}

/* Prints o compact on one line, and releases it. */
static void json_print(json_t *o)
{
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

    if (s != NULL)
        printf("%s\n", s);
    free(s);
    json_decref(o);
}

int ctl_cmd_status(struct ctl *c, int argc, char **argv)
{
    static const struct ctl_col cols[] = {
        { "LISTENER", "name", 0 }, { "TYPE", "type", 0 }, { "BIND", "bind", 0 }, { "AUTH", "auth", 0 },
        { "POLICY", "policy", 0 }, { "ACTIVE", "counters.active", 0 }, { "ACCEPTED", "counters.accepted", 0 },
        { "HS_OK", "counters.handshakes_ok", 0 }, { "HS_FAILED", "counters.handshakes_failed", 0 },
        { "POLICY_CLOSED", "counters.closed_by_policy", 0 }, { "BACKENDS", "backends", 60 }, { NULL, NULL, 0 },
    };
    struct ctl_resp h = { 0 }, l = { 0 };
    size_t npos;
    int rc, degraded;

    c->usage = usage_status;
    if ((rc = ctl_args(c, argc, argv, NULL, NULL, 0, &npos)) != 0)
        return rc;
    if ((rc = ctl_call(c, "GET", "/v1/health", NULL, &h)) != 0)
        goto out;
    /* 503 with the health document is "degraded"; 503 with a problem is "no health information". */
    if ((h.status != 200 && h.status != 503) || !json_is_object(h.json) ||
        !json_is_string(json_object_get(h.json, "status")) || json_object_get(h.json, "title") != NULL) {
        rc = ctl_fail(c, &h, "/v1/health");
        goto out;
    }
    degraded = h.status != 200;
    if (!c->json)
        health_print(h.json);
    if (c->token_file == NULL) {
        if (c->json)
            json_print(json_pack("{s:O, s:n}", "health", h.json, "listeners"));
        else
            fputs(CTL_NAME ": no token (--token-file or HSMGATE_TOKEN_FILE): listeners not shown\n", stderr);
        rc = degraded ? CTL_REFUSED : 0;
        goto out;
    }
    if ((rc = ctl_request(c, "GET", "/v1/listeners", NULL, "/v1/listeners", &l)) != 0)
        goto out;
    if (c->json) {
        json_print(json_pack("{s:O, s:O}", "health", h.json, "listeners", l.json));
    } else {
        const json_t *arr = json_object_get(l.json, "listeners");
        putchar('\n');
        if (json_array_size(arr) == 0)
            puts("no listeners");
        else
            ctl_table(stdout, arr, cols);
    }
    rc = degraded ? CTL_REFUSED : 0;
out:
    ctl_resp_free(&h);
    ctl_resp_free(&l);
    return rc;
}

static const char usage_conns_ls[] =
    "usage: hsmgatectl conns ls [--listener L] [--limit N] [--after ID] [--all]\n"
    "\n"
    "GET /v1/connections: the live client connections, with their client's identity.\n"
    "  --listener L    only this listener's\n"
    "  --limit N       at most N per page (1-1000; default 100)\n"
    "  --after ID      the page after ID (printed when there is more)\n"
    "  --all           every page\n";

int ctl_cmd_conns_ls(struct ctl *c, int argc, char **argv)
{
    static const struct ctl_col cols[] = {
        { "ID", "id", 0 }, { "LISTENER", "listener", 0 }, { "PEER", "peer|client_address|remote", 0 },
        { "CLIENT", "client_subject|subject|identity", 56 }, { "TLS", "tls_version", 0 },
        { "RESUMED", "resumed", 0 }, { "STARTED_AT", "started_at|since", 0 }, { "BYTES_IN", "bytes_in", 0 },
        { "BYTES_OUT", "bytes_out", 0 }, { NULL, NULL, 0 },
    };
    const char *listener = NULL;
    struct ctl_pages pg = { 0 };
    const struct ctl_opt opts[] = {
        { "listener", &listener, NULL }, { "limit", &pg.limit, NULL }, { "after", &pg.after, NULL },
        { "all", NULL, &pg.all }, { NULL, NULL, NULL },
    };
    json_t *items = NULL;
    char *next = NULL, *q = NULL;
    size_t npos;
    int rc;

    c->usage = usage_conns_ls;
    if ((rc = ctl_args(c, argc, argv, opts, NULL, 0, &npos)) != 0)
        return rc;
    if (ctl_query_add(&q, "listener", listener) != 0)
        return CTL_REFUSED;
    rc = ctl_list(c, "/v1/connections", q, &pg, "/v1/connections", &items, &next);
    if (rc == 0)
        ctl_list_print(c, items, next, cols, "no live connections");
    json_decref(items);
    free(next);
    free(q);
    return rc;
}

static const char usage_conns_kill[] =
    "usage: hsmgatectl conns kill ID [--comment C]\n"
    "\n"
    "DELETE /v1/connections/ID: close a live connection (ID as `conns ls` shows it). The client may connect\n"
    "again: to keep it out, revoke its certificate or remove it from the allowlist.\n";

int ctl_cmd_conns_kill(struct ctl *c, int argc, char **argv)
{
    const char *comment = NULL, *pos[1];
    const struct ctl_opt opts[] = { { "comment", &comment, NULL }, { NULL, NULL, NULL } };
    struct ctl_resp r = { 0 };
    struct ctl_strs t = { 0 };
    json_t *body = NULL;
    char *id = NULL, *path = NULL;
    size_t npos;
    int rc;

    c->usage = usage_conns_kill;
    if ((rc = ctl_args(c, argc, argv, opts, pos, 1, &npos)) != 0)
        return rc;
    if (npos != 1)
        return ctl_usage_error(c, "which connection? hsmgatectl conns kill ID");
    if (comment != NULL && ((body = json_object()) == NULL || ctl_set_str(body, "comment", comment) != 0)) {
        rc = CTL_USAGE;
        goto out;
    }
    if ((id = ctl_escape(pos[0])) == NULL || asprintf(&path, "/v1/connections/%s", id) < 0) {
        path = NULL;
        rc = CTL_REFUSED;
        goto out;
    }
    if ((rc = ctl_request(c, "DELETE", path, body, "/v1/connections/{id}", &r)) != 0)
        goto out;
    if (c->json) {
        fwrite(r.body, 1, r.len, stdout);
        if (r.len == 0 || r.body[r.len - 1] != '\n')
            fputc('\n', stdout);
        goto out;
    }
    const json_t *k = json_object_get(r.json, "closed");
    int pending = k == NULL;
    if (pending)
        k = json_object_get(r.json, "closing");
    printf("%s connection %s (listener %s, peer %s, client %s)\n", pending ? "closing" : "closed",
           ctl_v(&t, k, "id"), ctl_v(&t, k, "listener"), ctl_v(&t, k, "peer"), ctl_v(&t, k, "client_subject"));
out:
    ctl_strs_free(&t);
    ctl_resp_free(&r);
    json_decref(body);
    free(id);
    free(path);
    return rc;
}

static const char usage_cert_issue[] =
    "usage: hsmgatectl cert issue --csr FILE [--days N] [--profile P] [--comment C] [--out FILE]\n"
    "\n"
    "POST /v1/certificates (an admin's token): the gateway's CA key in the HSM signs a client certificate for\n"
    "the CSR. The certificate (PEM) goes to --out, or to stdout.\n"
    "  --csr FILE      the certificate signing request, PEM or DER (\"-\": stdin)\n"
    "  --days N        validity in days (\"validity_days\"; default: the server's)\n"
    "  --profile P     an issuing profile, for a server that offers them\n"
    "  --comment C     why, for the audit trail\n"
    "  --out FILE      where to write the certificate\n";

int ctl_cmd_cert_issue(struct ctl *c, int argc, char **argv)
{
    const char *csr_file = NULL, *days = NULL, *profile = NULL, *comment = NULL, *out_file = NULL;
    const struct ctl_opt opts[] = {
        { "csr", &csr_file, NULL }, { "days", &days, NULL }, { "profile", &profile, NULL },
        { "comment", &comment, NULL }, { "out", &out_file, NULL }, { NULL, NULL, NULL },
    };
    long long ndays = 0;
    char *end = NULL;
    struct ctl_resp r = { 0 };
    struct ctl_strs t = { 0 };
    json_t *body = NULL;
    char *csr = NULL;
    FILE *f = NULL;
    size_t npos;
    int rc;

    c->usage = usage_cert_issue;
    if ((rc = ctl_args(c, argc, argv, opts, NULL, 0, &npos)) != 0)
        return rc;
    if (csr_file == NULL)
        return ctl_usage_error(c, "--csr FILE is required");
    if (days != NULL && ((ndays = strtoll(days, &end, 10)) < 1 || *end != '\0' || ndays > 100000))
        return ctl_usage_error(c, "--days: a number of days from 1, got \"%.40s\"", days);
    if ((rc = ctl_read_pem(csr_file, "CERTIFICATE REQUEST", CSR_FILE_MAX, &csr)) != 0)
        goto out;
    if ((body = json_object()) == NULL || ctl_set_str(body, "csr", csr) != 0 ||
        ctl_set_str(body, "profile", profile) != 0 || ctl_set_str(body, "comment", comment) != 0 ||
        (days != NULL && json_object_set_new(body, "validity_days", json_integer(ndays)) != 0)) {
        rc = CTL_USAGE;
        goto out;
    }
    if ((rc = ctl_request(c, "POST", "/v1/certificates", body, "/v1/certificates: it cannot issue certificates",
                          &r)) != 0)
        goto out;
    const char *pem = json_string_value(json_object_get(r.json, "certificate"));
    if (c->json || pem == NULL) {
        fwrite(r.body, 1, r.len, stdout);
        if (r.len == 0 || r.body[r.len - 1] != '\n')
            fputc('\n', stdout);
        goto out;
    }
    if (out_file != NULL) {
        if ((f = fopen(out_file, "w")) == NULL) {
            fprintf(stderr, CTL_NAME ": cannot write %s: %s (the certificate was issued: --json shows it)\n",
                    out_file, strerror(errno));
            rc = CTL_USAGE;
            goto out;
        }
        fputs(pem, f);
        if (fclose(f) != 0) {
            f = NULL;
            fprintf(stderr, CTL_NAME ": cannot write %s: %s\n", out_file, strerror(errno));
            rc = CTL_REFUSED;
            goto out;
        }
        f = NULL;
    } else {
        fputs(pem, stdout);
    }
    /* The summary goes to stderr when the certificate itself is on stdout. */
    fprintf(out_file != NULL ? stdout : stderr, "issued serial %s to %s, valid until %s%s%s\n",
            ctl_v(&t, r.json, "serial"), ctl_v(&t, r.json, "subject"), ctl_v(&t, r.json, "not_after"),
            out_file != NULL ? ": " : "", out_file != NULL ? out_file : "");
out:
    ctl_strs_free(&t);
    ctl_resp_free(&r);
    json_decref(body);
    free(csr);
    return rc;
}
