/* admit.c - listeners' admission rules and client identities (admit.h). */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "gateway/admit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CA_FILE_MAX (4u << 20)
#define CA_BUNDLE_MAX 256

static const char pem_begin[] = "-----BEGIN CERTIFICATE-----";
static const char pem_end[] = "-----END CERTIFICATE-----";

void gw_der_list_free(uint8_t **ders, size_t *lens, size_t n)
{
    for (size_t i = 0; ders != NULL && i < n; i++) {
        free(ders[i]);
        ders[i] = NULL;
    }
    free(ders);
    free(lens);
}

static int push(uint8_t ***ders, size_t **lens, size_t *n, const uint8_t *der, size_t len)
{
    uint8_t **nd = realloc(*ders, (*n + 1) * sizeof(**ders));
    if (nd == NULL)
        return -1;
    *ders = nd;
    size_t *nl = realloc(*lens, (*n + 1) * sizeof(**lens));
    if (nl == NULL)
        return -1;
    *lens = nl;
    uint8_t *copy = malloc(len);
    if (copy == NULL)
        return -1;
    memcpy(copy, der, len);
    (*ders)[*n] = copy;
    (*lens)[*n] = len;
    (*n)++;
    return 0;
}

int gw_der_list_load(const char *path, uint8_t ***ders, size_t **lens, size_t *n, char *err, size_t errlen)
{
    uint8_t *buf = NULL, *der = NULL;
    size_t len = 0;
    int rc = -1;

    *ders = NULL;
    *lens = NULL;
    *n = 0;
    if (pol_file_load(path, NULL, CA_FILE_MAX, &buf, &len, err, errlen) != 0)
        return -1;
    const char *p = (const char *)buf, *end = (const char *)buf + len;
    if (memmem(buf, len, pem_begin, sizeof(pem_begin) - 1) == NULL) {
        /* One DER certificate. */
        if (push(ders, lens, n, buf, len) != 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto out;
        }
        rc = 0;
        goto out;
    }
    der = malloc(len);
    if (der == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (;;) {
        const char *b = memmem(p, (size_t)(end - p), pem_begin, sizeof(pem_begin) - 1);
        if (b == NULL)
            break;
        const char *e = memmem(b, (size_t)(end - b), pem_end, sizeof(pem_end) - 1);
        if (e == NULL) {
            snprintf(err, errlen, "%s: certificate #%zu has no END line", path, *n + 1);
            goto out;
        }
        e += sizeof(pem_end) - 1;
        int dl = wc_CertPemToDer((const unsigned char *)b, (int)(e - b), der, (int)len, CERT_TYPE);
        if (dl <= 0) {
            snprintf(err, errlen, "%s: certificate #%zu is not valid PEM", path, *n + 1);
            goto out;
        }
        if (*n == CA_BUNDLE_MAX) {
            snprintf(err, errlen, "%s: more than %d certificates", path, CA_BUNDLE_MAX);
            goto out;
        }
        if (push(ders, lens, n, der, (size_t)dl) != 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto out;
        }
        p = e;
    }
    if (*n == 0) {
        snprintf(err, errlen, "%s: no certificate in it", path);
        goto out;
    }
    rc = 0;
out:
    free(buf);
    free(der);
    if (rc != 0) {
        gw_der_list_free(*ders, *lens, *n);
        *ders = NULL;
        *lens = NULL;
        *n = 0;
    }
    return rc;
}

void gw_admit_sid_ctx(const char *listener, const char *policy, unsigned char out[20])
{
    char sid[256];
    unsigned char h[WC_SHA256_DIGEST_SIZE];
    snprintf(sid, sizeof(sid), "hsmgate\n%s\n%s", listener, policy != NULL ? policy : "-");
    if (wc_Sha256Hash((const byte *)sid, (word32)strlen(sid), h) != 0)
        memset(h, 0, sizeof(h)); /* cannot fail for these sizes; still bound to nothing else */
    memcpy(out, h, 20);
}

void gw_admit_free(struct gw_admit *a)
{
    if (a == NULL)
        return;
    pol_policy_free(a->policy);
    a->policy = NULL;
    free(a->ca_files);
    a->ca_files = NULL;
    free(a);
}

int gw_admit_new(const struct gw_config *cfg, const struct gw_listener_cfg *l, struct gw_admit **out,
                 char *err, size_t errlen)
{
    const struct gw_policy_cfg *pc = l->policy_idx >= 0 ? &cfg->policies[l->policy_idx] : NULL;
    struct gw_admit *a = NULL;
    struct pol_ca_spec *cas = NULL;
    size_t ncas = 0, cap = 0;
    uint8_t **ders = NULL;
    size_t *lens = NULL, nders = 0;
    char perr[256];
    int rc = -1;

    *out = NULL;
    if (l->auth == GW_AUTH_ONE_WAY)
        return 0;
    a = calloc(1, sizeof(*a));
    size_t nfiles = pc != NULL ? pc->ncas : 1;
    if (a == NULL || (a->ca_files = calloc(nfiles, sizeof(*a->ca_files))) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (pc != NULL)
        snprintf(a->name, sizeof(a->name), "%s", pc->name);
    else
        snprintf(a->name, sizeof(a->name), "listener:%s", l->name);
    gw_admit_sid_ctx(l->name, a->name, a->sid_ctx);

    /* Every certificate of every CA file becomes a trusted CA of the policy; their DER is kept
     * until the policy has hashed their names. */
    for (size_t f = 0; f < nfiles; f++) {
        const char *file = pc != NULL ? pc->cas[f].file : l->client_ca;
        int line = pc != NULL ? pc->cas[f].line : l->client_ca_line;
        uint8_t **d = NULL;
        size_t *dl = NULL, dn = 0;
        a->ca_files[a->nca_files++] = file;
        if (gw_der_list_load(file, &d, &dl, &dn, perr, sizeof(perr)) != 0) {
            snprintf(err, errlen, "%s:%d: %s \"%s\": client CA: %s", cfg->path, line, pc ? "policy" : "listener",
                     pc ? pc->name : l->name, perr);
            goto out;
        }
        for (size_t i = 0; i < dn; i++) {
            if (ncas == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                struct pol_ca_spec *nc = realloc(cas, ncap * sizeof(*cas));
                uint8_t **nd = realloc(ders, ncap * sizeof(*ders));
                if (nd != NULL)
                    ders = nd;
                size_t *nl = nd != NULL ? realloc(lens, ncap * sizeof(*lens)) : NULL;
                if (nl != NULL)
                    lens = nl;
                if (nc != NULL)
                    cas = nc;
                if (nc == NULL || nd == NULL || nl == NULL) {
                    gw_der_list_free(d, dl, dn);
                    snprintf(err, errlen, "out of memory");
                    goto out;
                }
                cap = ncap;
            }
            ders[nders] = d[i];
            lens[nders] = dl[i];
            d[i] = NULL;
            cas[ncas].cert_der = ders[nders];
            cas[ncas].cert_len = lens[nders];
            cas[ncas].crl_required = pc != NULL && pc->cas[f].crl_required;
            nders++;
            ncas++;
        }
        gw_der_list_free(d, dl, dn);
    }

    struct pol_policy_spec spec;
    pol_policy_spec_init(&spec);
    spec.name = a->name;
    spec.cas = cas;
    spec.ncas = ncas;
    if (pc != NULL) {
        spec.allowlist_required = pc->require_allowlist;
        spec.allowlist = pc->require_allowlist ? pc->allowlist : NULL;
        spec.revocation = pc->soft_fail ? POL_REVOCATION_SOFT_FAIL : POL_REVOCATION_HARD_FAIL;
        spec.crl_grace_s = pc->crl_grace_s;
        spec.required_eku = pc->required_eku;
        spec.max_chain_depth = pc->max_chain_depth;
    } else {
        spec.max_chain_depth = l->verify_depth;
    }
    if (pol_policy_new(&spec, &a->policy, perr, sizeof(perr)) != 0) {
        snprintf(err, errlen, "%s:%d: %s", cfg->path, pc != NULL ? pc->line : l->client_ca_line, perr);
        goto out;
    }
    *out = a;
    a = NULL;
    rc = 0;
out:
    gw_der_list_free(ders, lens, nders);
    free(cas);
    gw_admit_free(a);
    return rc;
}

void gw_ident_clear(struct gw_ident *id)
{
    for (size_t i = 0; i < id->n; i++) {
        pol_cert_free(id->chain[i]);
        id->chain[i] = NULL;
    }
    id->n = 0;
}

int gw_ident_from_der(struct gw_ident *id, const uint8_t *const *der, const size_t *len, size_t n)
{
    id->n = 0;
    if (n > GW_IDENT_MAX_CHAIN)
        n = GW_IDENT_MAX_CHAIN;
    for (size_t i = 0; i < n; i++) {
        int rc = pol_cert_from_der(der[i], len[i], &id->chain[i]);
        if (rc != 0) {
            gw_ident_clear(id);
            return rc;
        }
        id->n++;
    }
    return 0;
}

enum pol_reason gw_admit_decide(const struct gw_admit *a, const struct pol_snapshot *snap, const struct gw_ident *id,
                                time_t now, struct pol_verdict *v)
{
    return pol_decide_chain(snap, a != NULL ? a->policy : NULL, (const struct pol_cert *const *)id->chain, id->n,
                            now, v);
}
