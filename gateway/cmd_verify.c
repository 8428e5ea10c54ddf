/* cmd_verify.c - `hsmgate verify`: the admission decision a listener would make for a client's
 * certificate chain, made offline from the configuration file and the policy store, without the HSM
 * (the listener's own certificate and key play no part in judging a client).
 *
 * Two steps, in the order a handshake takes them:
 *  1. the chain, by wolfSSL (X509_STORE over the listener's client CAs, the client's intermediates,
 *     the verification time and the listener's depth limit): signatures, validity dates, basic
 *     constraints and key usage of issuers, name constraints (RFC 5280 6.1);
 *  2. the listener's policy (policies/pol.h, pol_decide_chain) over the verified path with the
 *     store's snapshot: trusted issuer, chain depth, validity, not a CA, EKU, revocation, CRL
 *     status, allowlist.
 *
 * wolfSSL 5.7.2's X509_verify_cert checks one certificate against the store's CAs and neither
 * builds the path (X509_STORE_CTX_get_chain hands back the untrusted list it was given) nor uses
 * the time of X509_STORE_CTX_set_time or the depth of X509_STORE_CTX_set_depth. So this file builds
 * the path itself (by issuer name and signature, trust anchors first), verifies it top down the way
 * wolfSSL verifies a peer's chain in a handshake (each verified intermediate becomes a CA for the
 * next), sets the time through wolfCrypt's clock (wc_SetTimeCb: this is a one-shot process), and
 * applies the handshake's depth limit itself.
 *
 * Exit status: 0 admit, 1 refuse, 2 usage error or a file or configuration that cannot be used.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/x509.h>
#include <wolfssl/openssl/x509v3.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway/admit.h"
#include "gateway/cmd.h"
#include "gateway/config.h"
#include "gateway/tls.h"
#include "policies/pol.h"

/* wolfSSL's MAX_CHAIN_DEPTH (internal.h): a peer sending more certificates is refused. */
#define WOLFSSL_PEER_CHAIN_MAX 9

static void verr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void verr(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hsmgate verify: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: hsmgate verify -c FILE --listener NAME [--at TIME] [--json] CERT.pem [CHAIN.pem]\n"
               "  Decides, offline, whether listener NAME would admit a client presenting CERT.pem (and the\n"
               "  intermediates in CHAIN.pem, or after the first certificate of CERT.pem): the chain as wolfSSL\n"
               "  verifies it against the listener's client CAs, then the listener's policy with the policy\n"
               "  store's revocations, CRLs and allowlists. The HSM is not used.\n"
               "  --at      verification time: 2026-01-31T12:00:00Z, 2026-01-31T12:00:00+01:00, or relative\n"
               "            to now: +30d, -2h (units d, h, m, s); default now\n"
               "  --json    one JSON object on stdout instead of text\n"
               "  Exit status: 0 admit, 1 refuse, 2 usage error or unusable file.\n");
}

/* --at: pol_time_parse's forms, and RFC 3339 with a numeric offset ("...T12:00:00+01:00"). */
static int parse_at(const char *s, time_t now, time_t *out)
{
    if (pol_time_parse(s, now, out) == 0)
        return 0;
    size_t n = strlen(s);
    if (n != 25 || (s[19] != '+' && s[19] != '-') || s[22] != ':')
        return -1;
    for (size_t i = 20; i < 25; i++)
        if (i != 22 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int hh = (s[20] - '0') * 10 + (s[21] - '0'), mm = (s[23] - '0') * 10 + (s[24] - '0');
    if (hh > 23 || mm > 59)
        return -1;
    char utc[21];
    memcpy(utc, s, 19);
    utc[19] = 'Z';
    utc[20] = '\0';
    time_t local;
    if (pol_time_parse(utc, now, &local) != 0)
        return -1;
    /* RFC 3339 5.6: the offset is local time minus UTC. */
    time_t off = (time_t)(hh * 3600 + mm * 60);
    *out = s[19] == '+' ? local - off : local + off;
    return *out < 0 ? -1 : 0;
}

/* wolfCrypt's clock for every date check: the verification time. */
static time_t verify_time;
static time_t clock_at(time_t *t)
{
    if (t != NULL)
        *t = verify_time;
    return verify_time;
}

static const char *x509_error_text(int err)
{
    return err < 0 ? wc_GetErrorString(err) : wolfSSL_X509_verify_cert_error_string(err);
}

/* ---- certificates ---- */

struct certs {
    WOLFSSL_X509 **x;
    size_t n;
};

static void certs_free(struct certs *c)
{
    for (size_t i = 0; c->x != NULL && i < c->n; i++)
        wolfSSL_X509_free(c->x[i]);
    free(c->x);
    c->x = NULL;
    c->n = 0;
}

/* Appends every certificate of path (a PEM bundle, or one DER certificate). */
static int certs_load(struct certs *c, const char *path, char *err, size_t errlen)
{
    uint8_t **ders = NULL;
    size_t *lens = NULL, n = 0;
    int rc = -1;

    if (gw_der_list_load(path, &ders, &lens, &n, err, errlen) != 0)
        return -1;
    WOLFSSL_X509 **nx = realloc(c->x, (c->n + n) * sizeof(*nx));
    if (nx == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    c->x = nx;
    for (size_t i = 0; i < n; i++) {
        WOLFSSL_X509 *x = wolfSSL_X509_d2i(NULL, ders[i], (int)lens[i]);
        if (x == NULL) {
            snprintf(err, errlen, "%s: certificate #%zu does not decode", path, i + 1);
            goto out;
        }
        c->x[c->n++] = x;
    }
    rc = 0;
out:
    gw_der_list_free(ders, lens, n);
    return rc;
}

/* issuer's name is subject's issuer name (and its key id the AKI), and, when sig, its key verifies
 * subject's signature (for RSA and EC keys; other keys are left to the chain verification). */
static int issued_by(WOLFSSL_X509 *issuer, WOLFSSL_X509 *subject, int sig)
{
    if (wolfSSL_X509_check_issued(issuer, subject) != X509_V_OK)
        return 0;
    if (!sig)
        return 1;
    WOLFSSL_EVP_PKEY *k = wolfSSL_X509_get_pubkey(issuer);
    int ok = k != NULL && wolfSSL_X509_verify(subject, k) == WOLFSSL_SUCCESS;
    wolfSSL_EVP_PKEY_free(k);
    return ok;
}

/* The path from leaf up: path[0] = leaf, then intermediates, each the issuer of the one before;
 * *anchor is the trusted certificate that issued the last one, or NULL when none did. A trusted
 * issuer is preferred at every step (a handshake's chain ends at the first CA it trusts); a
 * candidate whose signature checks is preferred over one that only has the right name. */
static void path_build(WOLFSSL_X509 *leaf, const struct certs *trusted, const struct certs *inter,
                       WOLFSSL_X509 **path, size_t *n, WOLFSSL_X509 **anchor)
{
    unsigned char used[WOLFSSL_PEER_CHAIN_MAX] = {0};    /* chain_verify refuses more before */
    size_t ninter = inter->n < sizeof(used) ? inter->n : sizeof(used);

    path[0] = leaf;
    *n = 1;
    *anchor = NULL;
    while (*n < GW_IDENT_MAX_CHAIN) {
        WOLFSSL_X509 *cur = path[*n - 1], *next = NULL;
        for (int sig = 1; sig >= 0 && next == NULL; sig--) {
            for (size_t i = 0; i < trusted->n; i++) {
                if (issued_by(trusted->x[i], cur, sig)) {
                    *anchor = trusted->x[i];
                    return;
                }
            }
            for (size_t i = 0; i < ninter && next == NULL; i++) {
                if (!used[i] && inter->x[i] != cur && issued_by(inter->x[i], cur, sig)) {
                    used[i] = 1;
                    next = inter->x[i];
                }
            }
        }
        if (next == NULL)
            return;
        path[(*n)++] = next;
    }
}

/* ---- the two steps ---- */

struct outcome {
    const char *stage;          /* "chain" (wolfSSL refused it) or "policy" */
    const char *reason;         /* stable short name */
    int x509_err;               /* chain: the X509_V_ERR (or wolfSSL error) */
    size_t depth;               /* chain: the certificate it concerns (0 = leaf) */
    char detail[512];           /* chain: which certificate, and why */
    struct pol_verdict v;       /* policy: the verdict */
};

/* x's subject as the logs print it (RFC 4514), or "?" */
static void subject_of(WOLFSSL_X509 *x, char *buf, size_t cap)
{
    struct pol_cert *pc = NULL;
    int derlen = 0;
    const unsigned char *der = x != NULL ? wolfSSL_X509_get_der(x, &derlen) : NULL;
    if (der != NULL && derlen > 0 && pol_cert_from_der(der, (size_t)derlen, &pc) == 0)
        snprintf(buf, cap, "%s", pol_cert_subject(pc));
    else
        snprintf(buf, cap, "?");
    pol_cert_free(pc);
    pc = NULL;
}

static void chain_refuse(struct outcome *o, int err, size_t depth, WOLFSSL_X509 *x)
{
    char subject[400];
    subject_of(x, subject, sizeof(subject));
    o->stage = "chain";
    o->reason = gw_tls_x509_reason(err);
    o->x509_err = err;
    o->depth = depth;
    snprintf(o->detail, sizeof(o->detail), "%s (depth %zu: %s)", x509_error_text(err), depth, subject);
    /* A certificate's name is peer input: printable ASCII only, on a terminal and in JSON. */
    for (char *p = o->detail; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
}

/* A trust anchor into the store. wolfSSL refuses to load a CA outside its validity period (so a
 * gateway started then would not start), but never looks at a loaded CA's dates again during a
 * handshake (nor does RFC 5280 6.1 ask for it): such an anchor is loaded anyway, with wolfCrypt's
 * clock moved to its notAfter for the while, and a warning. (wolfSSL_CertManagerLoadCABuffer_ex
 * with WOLFSSL_LOAD_FLAG_DATE_ERR_OKAY on the store's manager still refuses it in 5.7.2.) */
static int anchor_add(WOLFSSL_X509_STORE *store, WOLFSSL_X509 *x, size_t idx)
{
    struct pol_cert *pc = NULL;
    char at[32];
    int derlen = 0, rc = -1;

    if (wolfSSL_X509_STORE_add_cert(store, x) == WOLFSSL_SUCCESS)
        return 0;
    const unsigned char *der = wolfSSL_X509_get_der(x, &derlen);
    if (der == NULL || derlen <= 0 || pol_cert_from_der(der, (size_t)derlen, &pc) != 0)
        return -1;
    time_t saved = verify_time;
    verify_time = pol_cert_not_after(pc);
    int added = wolfSSL_X509_STORE_add_cert(store, x) == WOLFSSL_SUCCESS;
    verify_time = saved;
    if (added) {
        pol_time_format(verify_time, at, sizeof(at));
        verr("warning: client CA #%zu (%s) is not valid at %s: a gateway started then could not load it", idx + 1,
             pol_cert_subject(pc), at);
        rc = 0;
    }
    pol_cert_free(pc);
    pc = NULL;
    return rc;
}

/* One certificate against the store's CAs, as wolfSSL's handshake verifies each of a peer's. Returns
 * 0 (verified), 1 (refused: *x509_err set) or -1 (wolfSSL failed). */
static int verify_one(WOLFSSL_X509_STORE *store, WOLFSSL_X509 *x, unsigned depth, int *x509_err)
{
    WOLFSSL_X509_STORE_CTX *ctx = wolfSSL_X509_STORE_CTX_new();
    int rc = -1;

    if (ctx == NULL || wolfSSL_X509_STORE_CTX_init(ctx, store, x, NULL) != WOLFSSL_SUCCESS)
        goto out;
    /* Recorded for the OpenSSL API's sake; 5.7.2 reads neither (see the top of this file). */
    wolfSSL_X509_STORE_CTX_set_time(ctx, 0, verify_time);
    wolfSSL_X509_STORE_CTX_set_depth(ctx, (int)depth);
    if (wolfSSL_X509_verify_cert(ctx) == WOLFSSL_SUCCESS) {
        rc = 0;
    } else {
        *x509_err = wolfSSL_X509_STORE_CTX_get_error(ctx);
        if (*x509_err == 0)
            *x509_err = 1;      /* X509_V_ERR_UNSPECIFIED (not in every wolfSSL's headers) */
        rc = 1;
    }
out:
    wolfSSL_X509_STORE_CTX_free(ctx);
    ctx = NULL;
    return rc;
}

/* Step 1. On success path[0..*n) is the verified path, leaf first, ending with its trust anchor.
 * Returns 0 verified, 1 refused (o filled in), -1 error (message written). */
static int chain_verify(const struct gw_listener_cfg *l, const struct certs *trusted, const struct certs *sent,
                        WOLFSSL_X509 **path, size_t *n, struct outcome *o, char *err, size_t errlen)
{
    WOLFSSL_X509_STORE *store = wolfSSL_X509_STORE_new();
    struct certs inter = { sent->x + 1, sent->n - 1 };
    WOLFSSL_X509 *anchor = NULL;
    int rc = -1, x509_err = 0;

    if (store == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < trusted->n; i++) {
        if (anchor_add(store, trusted->x[i], i) != 0) {
            snprintf(err, errlen, "trusted CA #%zu of the listener's client CA files cannot be used as a trust anchor",
                     i + 1);
            goto out;
        }
    }
    /* A handshake refuses a peer that sends more certificates than this (wolfSSL's
     * ProcessPeerCerts: verify depth + 1, and its MAX_CHAIN_DEPTH). */
    if (sent->n > (size_t)l->verify_depth + 1 || sent->n > WOLFSSL_PEER_CHAIN_MAX) {
        chain_refuse(o, X509_V_ERR_CERT_CHAIN_TOO_LONG, sent->n - 1, sent->x[sent->n - 1]);
        rc = 1;
        goto out;
    }
    path_build(sent->x[0], trusted, &inter, path, n, &anchor);
    /* Top down: each verified intermediate becomes a CA for the one below, as in a handshake. */
    for (size_t k = *n; k-- > 0;) {
        int vr = verify_one(store, path[k], l->verify_depth, &x509_err);
        if (vr < 0) {
            snprintf(err, errlen, "wolfSSL could not run the verification");
            goto out;
        }
        if (vr > 0) {
            chain_refuse(o, x509_err, k, path[k]);
            rc = 1;
            goto out;
        }
        if (k > 0 && wolfSSL_X509_STORE_add_cert(store, path[k]) != WOLFSSL_SUCCESS) {
            chain_refuse(o, X509_V_ERR_INVALID_CA, k, path[k]);
            rc = 1;
            goto out;
        }
    }
    if (anchor != NULL && *n < GW_IDENT_MAX_CHAIN)
        path[(*n)++] = anchor;
    rc = 0;
out:
    wolfSSL_X509_STORE_free(store);
    store = NULL;
    return rc;
}

/* Step 2: the policy over the verified path. Returns 0, or -1 when a certificate does not decode. */
static int policy_decide(const struct gw_admit *admit, const struct pol_snapshot *snap, WOLFSSL_X509 *const *path,
                         size_t n, struct outcome *o)
{
    const uint8_t *der[GW_IDENT_MAX_CHAIN];
    size_t len[GW_IDENT_MAX_CHAIN];
    struct gw_ident id = { .n = 0 };

    for (size_t i = 0; i < n; i++) {
        int dl = 0;
        der[i] = wolfSSL_X509_get_der(path[i], &dl);
        if (der[i] == NULL || dl <= 0)
            return -1;
        len[i] = (size_t)dl;
    }
    if (gw_ident_from_der(&id, der, len, n) != 0)
        return -1;
    o->stage = "policy";
    o->reason = pol_reason_name(gw_admit_decide(admit, snap, &id, verify_time, &o->v));
    gw_ident_clear(&id);
    return 0;
}

/* The store's snapshot, or an empty one when there is no store (opening would create one). */
static int snapshot_load(const struct gw_config *cfg, struct pol_snapshot **snap, char *err, size_t errlen)
{
    struct pol_store *st = NULL;
    int rc = -1;

    if (cfg->policy_store == NULL || access(cfg->policy_store, F_OK) != 0) {
        if (cfg->policy_store == NULL)
            verr("no policy store: nothing revoked, allowlists empty");
        else
            verr("no policy store (%s: %s): nothing revoked, allowlists empty", cfg->policy_store, strerror(errno));
        if (pol_snapshot_empty(snap) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    if (pol_store_open_sqlite(cfg->policy_store, &st, err, errlen) != 0)
        goto out;
    if (pol_snapshot_build(st, snap, err, errlen) != 0)
        goto out;
    rc = 0;
out:
    pol_store_close(st);
    st = NULL;
    return rc;
}

/* ---- output ---- */

static int print_outcome(const struct outcome *o, const struct gw_admit *admit, const struct gw_config *cfg,
                         const struct gw_listener_cfg *l, uint64_t gen, int json)
{
    int admitted = strcmp(o->stage, "policy") == 0 && o->v.reason == POL_ADMIT;
    int policy = strcmp(o->stage, "policy") == 0;
    const char *crl_reason = policy && o->v.reason == POL_R_REVOKED ? pol_reason_code_name(o->v.crl_reason) : NULL;
    const char *list = l->policy_idx >= 0 ? cfg->policies[l->policy_idx].allowlist : NULL;
    char at[32];

    pol_time_format(verify_time, at, sizeof(at));
    if (json) {
        json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:b, s:s, s:o}", "verdict",
                                admitted ? "admit" : "refuse", "reason", o->reason, "stage", o->stage, "policy",
                                admit->name, "generation", (json_int_t)gen, "allow_entry_id",
                                policy && o->v.allow_entry_id != 0 ? json_integer(o->v.allow_entry_id) : json_null(),
                                "crl_reason", crl_reason != NULL ? json_string(crl_reason) : json_null(),
                                "status_unknown", policy && o->v.status_unknown, "at", at, "chain_error",
                                policy ? json_null() : json_string(o->detail));
        char *s = obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(obj);
        obj = NULL;
        if (s == NULL)
            return -1;
        printf("%s\n", s);
        free(s);
        s = NULL;
    } else {
        if (admitted)
            printf("admit (policy %s, store generation %llu)\n", admit->name, (unsigned long long)gen);
        else
            printf("refuse: %s (policy %s, store generation %llu)\n", o->reason, admit->name, (unsigned long long)gen);
        if (!policy)
            printf("  certificate chain: %s\n", o->detail);
        if (crl_reason != NULL)
            printf("  revoked: CRL reason %s\n", crl_reason);
        if (policy && o->v.allow_entry_id != 0)
            printf("  %s allowlist entry %lld (list %s)\n", admitted ? "admitted by" : "expired:",
                   (long long)o->v.allow_entry_id, list != NULL ? list : "?");
        if (policy && o->v.status_unknown)
            printf("  warning: no usable revocation status (CRL missing or stale); admitted under soft-fail\n");
    }
    return fflush(stdout) == 0 ? 0 : -1;
}

/* ---- the command ---- */

struct vargs {
    const char *config, *listener, *at, *cert, *chain;
    int json;
};

/* Returns 0, 1 for --help, -1 for a usage error (already reported). */
static int parse_args(struct vargs *a, int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "listener", required_argument, NULL, 'l' },
        { "at", required_argument, NULL, 'a' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char **slot;
    int c;

    optind = 0;         /* glibc: start afresh */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': slot = &a->config; break;
        case 'l': slot = &a->listener; break;
        case 'a': slot = &a->at; break;
        case 'j':
            if (a->json) {
                verr("option --json given twice");
                return -1;
            }
            a->json = 1;
            continue;
        case 'h': return 1;
        case ':': verr("option %s needs a value", argv[optind - 1]); return -1;
        default: verr("unknown option %s", argv[optind - 1]); return -1;
        }
        if (*slot != NULL) {
            verr("option %s given twice", argv[optind - 1]);
            return -1;
        }
        *slot = optarg;
    }
    if (optind == argc) {
        verr("which certificate? (CERT.pem)");
        return -1;
    }
    a->cert = argv[optind++];
    if (optind < argc)
        a->chain = argv[optind++];
    if (optind != argc) {
        verr("unexpected argument \"%s\"", argv[optind]);
        return -1;
    }
    if (a->config == NULL || a->listener == NULL) {
        verr("-c FILE and --listener NAME are required");
        return -1;
    }
    return 0;
}

int gw_cmd_verify(int argc, char **argv)
{
    struct vargs a = { NULL, NULL, NULL, NULL, NULL, 0 };
    struct gw_config *cfg = NULL;
    struct gw_admit *admit = NULL;
    struct pol_snapshot *snap = NULL;
    struct certs trusted = { NULL, 0 }, sent = { NULL, 0 };
    WOLFSSL_X509 *path[GW_IDENT_MAX_CHAIN];
    struct outcome o;
    const struct gw_listener_cfg *l = NULL;
    char err[1024] = "";
    size_t npath = 0;
    int rc = 2, wolf = 0;

    memset(&o, 0, sizeof(o));
    int p = parse_args(&a, argc, argv);
    if (p != 0) {
        usage(p > 0 ? stdout : stderr);
        return p > 0 ? 0 : 2;
    }
    verify_time = time(NULL);
    if (a.at != NULL && parse_at(a.at, verify_time, &verify_time) != 0) {
        verr("--at: expected 2026-01-31T12:00:00Z, 2026-01-31T12:00:00+01:00 or [+-]N(d|h|m|s), got \"%s\"", a.at);
        return 2;
    }
    if (gw_config_load(a.config, &cfg, err, sizeof(err)) != 0) {
        verr("%s", err);
        goto out;
    }
    for (size_t i = 0; i < cfg->nlisteners && l == NULL; i++)
        if (strcmp(cfg->listeners[i].name, a.listener) == 0)
            l = &cfg->listeners[i];
    if (l == NULL) {
        verr("%s: no listener named \"%s\"", a.config, a.listener);
        goto out;
    }
    if (l->auth == GW_AUTH_ONE_WAY) {
        verr("listener %s is one-way: it takes no client certificates", l->name);
        goto out;
    }
    if (gw_admit_new(cfg, l, &admit, err, sizeof(err)) != 0 || admit == NULL) {
        verr("%s", admit == NULL && err[0] == '\0' ? "no admission rules" : err);
        goto out;
    }
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        verr("wolfSSL_Init failed");
        goto out;
    }
    wolf = 1;
    wc_SetTimeCb(clock_at);
    for (size_t f = 0; f < admit->nca_files; f++) {
        if (certs_load(&trusted, admit->ca_files[f], err, sizeof(err)) != 0) {
            verr("%s", err);
            goto out;
        }
    }
    if (certs_load(&sent, a.cert, err, sizeof(err)) != 0 ||
        (a.chain != NULL && certs_load(&sent, a.chain, err, sizeof(err)) != 0)) {
        verr("%s", err);
        goto out;
    }
    if (snapshot_load(cfg, &snap, err, sizeof(err)) != 0) {
        verr("%s", err);
        goto out;
    }

    int vr = chain_verify(l, &trusted, &sent, path, &npath, &o, err, sizeof(err));
    if (vr < 0) {
        verr("%s", err);
        goto out;
    }
    if (vr == 0 && policy_decide(admit, snap, path, npath, &o) != 0) {
        verr("%s: a certificate of the path does not decode for the policy", a.cert);
        goto out;
    }
    if (print_outcome(&o, admit, cfg, l, pol_snapshot_generation(snap), a.json) != 0) {
        verr("cannot write the result");
        goto out;
    }
    rc = strcmp(o.stage, "policy") == 0 && o.v.reason == POL_ADMIT ? 0 : 1;
out:
    certs_free(&sent);
    certs_free(&trusted);
    pol_snapshot_free(snap);
    snap = NULL;
    gw_admit_free(admit);
    admit = NULL;
    gw_config_free(cfg);
    cfg = NULL;
    if (wolf) {
        wc_SetTimeCb(NULL);
        wolfSSL_Cleanup();
    }
    return rc;
}
