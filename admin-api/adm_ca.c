/* adm_ca.c - the admin API's certificate authority: the root certificate and its key in the HSM,
 * issuing client certificates, and the root's CRL with its cache (adm_ca.h has the contract).
 *
 * The CRL lists the revocations made here (source local, through the API or `hsmgate revoke`) whose
 * issuer is the root: the store keys revocations by the SHA-256 of the issuer's Name, which is the
 * root certificate's subject. Its cRLNumber is the store generation followed by the 32 low bits of
 * thisUpdate, so that it grows with every revocation and also when the same state is signed again
 * before nextUpdate (RFC 5280 5.2.3: monotonically increasing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "admin-api/adm_ca.h"
#include "gateway/log.h"
#include "pkcs11/hsm.h"

#define CA_MAGIC 0x61646d41u            /* "admA" */
#define CA_CERT_MAX (1u << 20)
/* notBefore and thisUpdate a little in the past: relying parties' clocks drift (as `hsmgate pki`). */
#define BACKDATE_S 300

struct crl_item {
    uint8_t serial[POL_SERIAL_MAX];
    size_t serial_len;
    time_t revoked_at;
    int reason;
};

struct adm_ca {
    uint32_t magic;
    struct hsm_ctx *hsm;
    unsigned index;                     /* the API's HSM thread index */
    struct hsm_key *key;                /* owned by hsm */
    uint8_t *cert;                      /* the root, DER */
    size_t cert_len;
    struct pol_cert *root;              /* decoded: subject (hash: the revocations' issuer key), notAfter */
    unsigned days, max_days, crl_validity;
    char *crl_url;                      /* NULL: issued certificates carry no cRLDistributionPoints */
    /* The last CRL made; have_crl 0 until the first. */
    int have_crl;
    uint64_t crl_gen;
    uint8_t *crl;
    size_t crl_len;
    char *crl_pem;
    size_t crl_pem_len;
    time_t this_update, next_update;
    size_t crl_entries;
};

int adm_ca_new(const struct adm_config *cfg, struct adm_ca **out, char *err, size_t errlen)
{
    struct adm_ca *ca = NULL;
    char why[512];
    int rc = -1;

    *out = NULL;
    if (cfg == NULL || cfg->ca_key == NULL)
        return 0;
    if (cfg->hsm == NULL || cfg->ca_certificate == NULL) {
        snprintf(err, errlen, "admin API: ca_key needs %s", cfg->hsm == NULL ? "the HSM (hsm: module and pin)" : "ca_certificate");
        return -1;
    }
    if (cfg->hsm_index >= HSM_MAX_THREADS) {
        snprintf(err, errlen, "admin API: no HSM thread index left for the API's thread (%u; at most %d threads)",
                 cfg->hsm_index, HSM_MAX_THREADS);
        return -1;
    }
    ca = calloc(1, sizeof(*ca));
    if (ca == NULL) {
        snprintf(err, errlen, "admin API: out of memory");
        return -1;
    }
    ca->magic = CA_MAGIC;
    ca->hsm = cfg->hsm;
    ca->index = cfg->hsm_index;
    ca->days = cfg->client_validity_days > 0 ? cfg->client_validity_days : ADM_CA_DEFAULT_DAYS;
    ca->max_days = cfg->client_validity_max_days > 0 ? cfg->client_validity_max_days : ADM_CA_MAX_DAYS;
    ca->crl_validity = cfg->crl_validity_s > 0 ? cfg->crl_validity_s : ADM_CA_CRL_VALIDITY_S;
    if (ca->days > ca->max_days) {
        snprintf(err, errlen, "admin API: client_validity %u days is over the most a certificate may get (%u days)",
                 ca->days, ca->max_days);
        goto out;
    }
    if (cfg->crl_url != NULL && (ca->crl_url = strdup(cfg->crl_url)) == NULL) {
        snprintf(err, errlen, "admin API: out of memory");
        goto out;
    }
    if (pol_file_load(cfg->ca_certificate, "CERTIFICATE", CA_CERT_MAX, &ca->cert, &ca->cert_len, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "admin API: ca_certificate: %s", why);
        goto out;
    }
    if (pol_cert_from_der(ca->cert, ca->cert_len, &ca->root) != 0) {
        snprintf(err, errlen, "admin API: ca_certificate %s: not an X.509 certificate", cfg->ca_certificate);
        goto out;
    }
    if (hsm_key_open(cfg->hsm, cfg->ca_key, &ca->key, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "admin API: ca_key: %s", why);
        goto out;
    }
    if (hsm_ca_cert_check(ca->key, ca->cert, ca->cert_len, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "admin API: ca_certificate %s: %s", cfg->ca_certificate, why);
        goto out;
    }
    gw_log(LOG_INFO, "admin: certificate authority \"%s\" (key %s): client certificates for %u days (at most %u), "
           "CRL valid %u s", pol_cert_subject(ca->root), hsm_key_uri(ca->key), ca->days, ca->max_days, ca->crl_validity);
    *out = ca;
    ca = NULL;
    rc = 0;
out:
    adm_ca_free(ca);
    return rc;
}

void adm_ca_free(struct adm_ca *ca)
{
    if (ca == NULL || ca->magic != CA_MAGIC)
        return;
    free(ca->cert);
    ca->cert = NULL;
    pol_cert_free(ca->root);
    ca->root = NULL;
    free(ca->crl);
    ca->crl = NULL;
    free(ca->crl_pem);
    ca->crl_pem = NULL;
    free(ca->crl_url);
    ca->crl_url = NULL;
    ca->magic = 0;
    free(ca);
}

unsigned adm_ca_default_days(const struct adm_ca *ca)
{
    return ca != NULL ? ca->days : ADM_CA_DEFAULT_DAYS;
}

unsigned adm_ca_max_days(const struct adm_ca *ca)
{
    return ca != NULL ? ca->max_days : ADM_CA_MAX_DAYS;
}

time_t adm_ca_not_after(const struct adm_ca *ca)
{
    return ca != NULL ? pol_cert_not_after(ca->root) : 0;
}

/* The calling thread as the API's HSM thread, for one operation (see adm_ca.h: two libmicrohttpd
 * threads may take turns; detaching closes this thread's session, the token stays logged in through
 * the context's main session). */
static int hsm_enter(struct adm_ca *ca, char *err, size_t errlen)
{
    int rc = hsm_thread_attach(ca->hsm, ca->index, 0);
    if (rc != 0)
        snprintf(err, errlen, "the admin API's thread cannot use the HSM (index %u): %s", ca->index, hsm_strerror(rc));
    return rc;
}

static void hsm_leave(struct adm_ca *ca)
{
    hsm_thread_detach(ca->hsm);
}

int adm_ca_issue(struct adm_ca *ca, const struct hsm_ca_csr *csr, unsigned days, uint8_t **der_out, size_t *der_len,
                 char *err, size_t errlen)
{
    struct hsm_ca_spec spec;
    time_t now = time(NULL);
    int rc;

    *der_out = NULL;
    *der_len = 0;
    if (ca == NULL || ca->magic != CA_MAGIC || csr == NULL || days == 0 || days > ca->max_days) {
        snprintf(err, errlen, "adm_ca_issue: bad argument");
        return HSM_E_ARG;
    }
    memset(&spec, 0, sizeof(spec));
    spec.subject_der = csr->subject_der;
    spec.subject_der_len = csr->subject_len;
    spec.spki_der = csr->spki_der;
    spec.spki_len = csr->spki_len;
    spec.not_before = now - BACKDATE_S;
    spec.not_after = now + (time_t)days * 86400;
    spec.is_ca = 0;
    spec.path_len = -1;
    spec.eku = HSM_CA_EKU_CLIENT_AUTH;
    spec.crl_url = ca->crl_url;
    if ((rc = hsm_enter(ca, err, errlen)) != 0)
        return rc;
    rc = hsm_ca_issue(ca->key, ca->cert, ca->cert_len, &spec, der_out, der_len, err, errlen);
    hsm_leave(ca);
    return rc;
}

struct collect {
    struct crl_item *v;
    size_t n, cap;
};

static int collect_row(void *arg, const struct pol_revocation_row *row)
{
    struct collect *c = arg;
    /* Ours only: an imported CRL's entries are that CA's to publish. */
    if (row->crl_id != 0 || row->serial_len == 0 || row->serial_len > POL_SERIAL_MAX)
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct crl_item *v = realloc(c->v, cap * sizeof(*v));
        if (v == NULL)
            return POL_E_NOMEM;
        c->v = v;
        c->cap = cap;
    }
    struct crl_item *it = &c->v[c->n++];
    memcpy(it->serial, row->serial, row->serial_len);
    it->serial_len = row->serial_len;
    it->revoked_at = row->revoked_at;
    it->reason = row->reason;
    return 0;
}

static void crl_out(const struct adm_ca *ca, struct adm_ca_crl *out)
{
    out->der = ca->crl;
    out->der_len = ca->crl_len;
    out->pem = ca->crl_pem;
    out->pem_len = ca->crl_pem_len;
    out->this_update = ca->this_update;
    out->next_update = ca->next_update;
    out->entries = ca->crl_entries;
}

int adm_ca_crl_get(struct adm_ca *ca, struct pol_store *store, struct adm_ca_crl *out, int *from_store, char *err,
                   size_t errlen)
{
    struct collect col = { 0 };
    struct hsm_ca_crl_entry *entries = NULL;
    struct hsm_ca_crl_spec spec;
    uint8_t number[12], *der = NULL;
    char *pem = NULL, next[POL_CURSOR_MAX];
    size_t der_len = 0, pem_len = 0;
    uint64_t gen = 0;
    time_t now = time(NULL);
    int rc;

    *from_store = 0;
    memset(out, 0, sizeof(*out));
    if (ca == NULL || ca->magic != CA_MAGIC) {
        snprintf(err, errlen, "no certificate authority");
        return HSM_E_ARG;
    }
    if (store != NULL && (rc = pol_store_generation(store, &gen)) != 0) {
        *from_store = 1;
        snprintf(err, errlen, "the policy store cannot be read: %s", pol_strerror(rc));
        return rc;
    }
    /* Fresh enough: the same store state, and less than half the validity gone. */
    if (ca->have_crl && gen == ca->crl_gen && now >= ca->this_update &&
        now - ca->this_update < (time_t)(ca->crl_validity / 2)) {
        crl_out(ca, out);
        return 0;
    }
    if (store != NULL) {
        struct pol_revocation_query q;
        memset(&q, 0, sizeof(q));
        q.issuer_hash = pol_cert_subject_hash(ca->root);
        /* Read after the generation: a revocation committed in between is listed already, and the next
         * request (seeing the generation move) signs again. */
        rc = pol_store_revocations_query(store, &q, collect_row, &col, next, err, errlen);
        if (rc != 0) {
            *from_store = 1;
            goto out;
        }
    }
    if (col.n > 0 && (entries = calloc(col.n, sizeof(*entries))) == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = HSM_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < col.n; i++) {
        entries[i].serial = col.v[i].serial;
        entries[i].serial_len = col.v[i].serial_len;
        entries[i].revoked_at = col.v[i].revoked_at;
        entries[i].reason = col.v[i].reason;
    }
    memset(&spec, 0, sizeof(spec));
    /* Backdated like certificates, but never by more than a tenth of a (short) validity. */
    spec.this_update = now - (time_t)(ca->crl_validity / 10 < BACKDATE_S ? ca->crl_validity / 10 : BACKDATE_S);
    spec.next_update = spec.this_update + (time_t)ca->crl_validity;
    for (int i = 0; i < 8; i++)
        number[i] = (uint8_t)(gen >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        number[8 + i] = (uint8_t)((uint64_t)spec.this_update >> (24 - 8 * i));
    spec.number = number;
    spec.number_len = sizeof(number);
    spec.entries = entries;
    spec.nentries = col.n;
    if ((rc = hsm_enter(ca, err, errlen)) != 0)
        goto out;
    rc = hsm_ca_crl_make(ca->key, ca->cert, ca->cert_len, &spec, &der, &der_len, err, errlen);
    hsm_leave(ca);
    if (rc != 0)
        goto out;
    if ((rc = hsm_ca_pem_encode("X509 CRL", der, der_len, &pem, &pem_len)) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    free(ca->crl);
    free(ca->crl_pem);
    ca->crl = der;
    ca->crl_len = der_len;
    ca->crl_pem = pem;
    ca->crl_pem_len = pem_len;
    der = NULL;
    pem = NULL;
    ca->have_crl = 1;
    ca->crl_gen = gen;
    ca->this_update = spec.this_update;
    ca->next_update = spec.next_update;
    ca->crl_entries = col.n;
    gw_log(LOG_INFO, "admin: signed the CRL of \"%s\": %zu entries, generation %llu, next update in %u s",
           pol_cert_subject(ca->root), col.n, (unsigned long long)gen, ca->crl_validity);
    crl_out(ca, out);
    rc = 0;
out:
    free(col.v);
    col.v = NULL;
    free(entries);
    entries = NULL;
    free(der);
    der = NULL;
    free(pem);
    pem = NULL;
    return rc;
}
