/* policy.c - per-listener policies and the decision made for each client certificate.
 *
 * pol_decide runs on worker threads for every handshake (and again for live connections after a
 * publish, and for resumed sessions: ../shared/DESIGN.md fact 6), so it takes no lock, allocates
 * nothing and does a bounded number of hash probes: one for the issuer, one for the serial, and for
 * an allowlist one per match type and SAN.
 */
#include <stdlib.h>
#include <string.h>

#include "policies/pol_int.h"

struct policy_ca {
    uint8_t hash[POL_HASH_LEN];         /* SHA-256 of the CA's subject Name DER */
    int crl_required;
};

struct pol_policy {
    char *name;
    struct policy_ca *cas;
    size_t ncas;
    int allowlist_required;
    char *allowlist;
    size_t allowlist_len;
    enum pol_revocation_mode revocation;
    unsigned crl_grace_s, required_eku, max_chain_depth;
};

void pol_policy_spec_init(struct pol_policy_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->revocation = POL_REVOCATION_HARD_FAIL;
    spec->required_eku = POL_EKU_CLIENT_AUTH;
    spec->max_chain_depth = 4;
}

void pol_policy_free(struct pol_policy *p)
{
    if (p == NULL)
        return;
    free(p->name);
    p->name = NULL;
    free(p->cas);
    p->cas = NULL;
    free(p->allowlist);
    p->allowlist = NULL;
    free(p);
}

int pol_policy_new(const struct pol_policy_spec *spec, struct pol_policy **out, char *err, size_t errlen)
{
    struct pol_policy *p = NULL;
    struct pol_cert *ca = NULL;
    const char *name = spec && spec->name ? spec->name : "policy";
    int rc = 0;

    *out = NULL;
    if (spec == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no policy given");
    if (spec->revocation != POL_REVOCATION_HARD_FAIL && spec->revocation != POL_REVOCATION_SOFT_FAIL)
        return pol_errf(err, errlen, POL_E_ARG, "%s: revocation mode must be hard-fail or soft-fail", name);
    if (spec->allowlist != NULL && !pol_list_name_ok(spec->allowlist))
        return pol_errf(err, errlen, POL_E_ARG, "%s: bad allowlist name \"%s\" (letters, digits, . _ -; 1-64)",
                        name, spec->allowlist);
    if (spec->allowlist_required && spec->allowlist == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "%s: an allowlist is required but none is named", name);
    if (spec->ncas > 0 && spec->cas == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "%s: CA list missing", name);
    if (spec->required_eku & ~(POL_EKU_SERVER_AUTH | POL_EKU_CLIENT_AUTH | POL_EKU_CODE_SIGNING | POL_EKU_EMAIL |
                               POL_EKU_TIME_STAMPING | POL_EKU_OCSP_SIGNING))
        return pol_errf(err, errlen, POL_E_ARG, "%s: unknown EKU bits", name);

    p = calloc(1, sizeof(*p));
    if (p == NULL || (p->name = strdup(name)) == NULL ||
        (spec->allowlist != NULL && (p->allowlist = strdup(spec->allowlist)) == NULL) ||
        (spec->ncas > 0 && (p->cas = calloc(spec->ncas, sizeof(*p->cas))) == NULL)) {
        rc = pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < spec->ncas; i++) {
        if ((rc = pol_cert_from_der(spec->cas[i].cert_der, spec->cas[i].cert_len, &ca)) != 0) {
            pol_errf(err, errlen, rc, "%s: trusted CA #%zu does not parse", name, i + 1);
            goto out;
        }
        /* RFC 5280 4.2.1.9: only a CA certificate issues others. */
        if (!ca->is_ca) {
            rc = pol_errf(err, errlen, POL_E_CERT, "%s: trusted CA #%zu (%s) is not a CA certificate", name, i + 1,
                          ca->subject);
            goto out;
        }
        memcpy(p->cas[i].hash, ca->subject_hash, POL_HASH_LEN);
        p->cas[i].crl_required = spec->cas[i].crl_required != 0;
        pol_cert_free(ca);
        ca = NULL;
    }
    p->ncas = spec->ncas;
    p->allowlist_required = spec->allowlist_required != 0;
    p->allowlist_len = p->allowlist ? strlen(p->allowlist) : 0;
    p->revocation = spec->revocation;
    p->crl_grace_s = spec->crl_grace_s;
    p->required_eku = spec->required_eku;
    p->max_chain_depth = spec->max_chain_depth;
    *out = p;
    p = NULL;
out:
    pol_cert_free(ca);
    ca = NULL;
    pol_policy_free(p);
    p = NULL;
    return rc;
}

/* The allowlist step: admit on any unexpired entry; report "expired" only when nothing else matched. */
static enum pol_reason check_allowlist(const struct pol_snapshot *snap, const struct pol_policy *pol,
                                       const struct pol_cert *c, time_t now, struct pol_verdict *v)
{
    const struct pol_snap_list *l = pol_snapshot_list(snap, pol->allowlist, pol->allowlist_len);
    struct pol_hval e, expired = { 0, 0, 0 };
    int any_expired = 0;
    uint8_t is_key[POL_HASH_LEN + POL_SERIAL_MAX];

    if (l == NULL && snap->base == NULL)
        return POL_R_NOT_ALLOWLISTED;
    memcpy(is_key, c->issuer_hash, POL_HASH_LEN);
    memcpy(is_key + POL_HASH_LEN, c->serial, c->serial_len);

    struct probe {
        enum pol_match m;
        const void *key;
        size_t len;
    } probes[6] = {
        { POL_MATCH_FINGERPRINT, c->fingerprint, POL_HASH_LEN },
        { POL_MATCH_SPKI, c->spki_hash, POL_HASH_LEN },
        { POL_MATCH_ISSUER_SERIAL, is_key, POL_HASH_LEN + c->serial_len },
        { POL_MATCH_SUBJECT, c->subject, c->subject_len },
        { POL_MATCH_CN, c->cn, c->cn_len },
    };
    size_t np = c->cn ? 5 : 4;
    for (size_t i = 0; i < np + c->nsans; i++) {
        const struct probe *pr = &probes[i < np ? i : 5];
        if (i >= np) {
            const struct pol_san *s = &c->sans[i - np];
            probes[5].m = (enum pol_match)s->type;
            probes[5].key = c->strings + s->off;
            probes[5].len = s->len;
        }
        if (pr->len == 0)
            continue;
        if (!pol_snapshot_allow_find(snap, l, pol->allowlist, pol->allowlist_len, pr->m, pr->key, pr->len, &e))
            continue;
        if (e.time == 0 || now < e.time) {
            v->allow_entry_id = e.id;
            return POL_ADMIT;
        }
        if (!any_expired++)
            expired = e;
    }
    if (any_expired) {
        v->allow_entry_id = expired.id;
        return POL_R_ALLOWLIST_EXPIRED;
    }
    return POL_R_NOT_ALLOWLISTED;
}

/* Revocation and status of one certificate of the path (issued by issuer_hash). */
static enum pol_reason check_status(const struct pol_snapshot *snap, const struct pol_policy *pol,
                                    const struct pol_cert *c, int crl_required, time_t now, struct pol_verdict *v)
{
    const struct pol_snap_issuer *is = pol_snapshot_issuer(snap, c->issuer_hash);
    int why = 0;
    if (pol_snapshot_revoked(snap, is, c->issuer_hash, c->serial, c->serial_len, &why)) {
        /* A stale CRL still proves what it lists: revoked wins over stale. */
        v->crl_reason = why;
        return POL_R_REVOKED;
    }
    enum pol_reason unknown = POL_ADMIT;
    if (is != NULL && is->has_crl) {
        /* RFC 5280 5.1.2.5: past nextUpdate the CRL no longer says anything about certificates
         * revoked since; usable for crl_grace_s more if the policy allows. A CRL without nextUpdate
         * never goes stale by date. */
        if (is->next_update != 0 && now > is->next_update && (int64_t)now - is->next_update > (int64_t)pol->crl_grace_s)
            unknown = POL_R_CRL_STALE;
    } else if (crl_required) {
        unknown = POL_R_CRL_MISSING;
    }
    if (unknown != POL_ADMIT) {
        if (pol->revocation == POL_REVOCATION_HARD_FAIL)
            return unknown;
        v->status_unknown = 1;
    }
    return POL_ADMIT;
}

static const struct policy_ca *policy_ca_of(const struct pol_policy *pol, const uint8_t hash[POL_HASH_LEN])
{
    for (size_t i = 0; i < pol->ncas; i++)
        if (memcmp(pol->cas[i].hash, hash, POL_HASH_LEN) == 0)
            return &pol->cas[i];
    return NULL;
}

/* chain[0] is the leaf, chain[1..n) its issuers as the peer sent them (verified by wolfSSL, or
 * kept in a resumed session). top is the position of the certificate the policy CA issued. */
static enum pol_reason decide(const struct pol_snapshot *snap, const struct pol_policy *pol,
                              const struct pol_cert *const *chain, size_t n, int depth_given, unsigned depth,
                              time_t now, struct pol_verdict *v)
{
    if (snap == NULL || pol == NULL)
        return POL_R_NO_POLICY;
    v->generation = snap->generation;
    if (n == 0 || chain == NULL || chain[0] == NULL)
        return POL_R_NO_CERT;
    const struct pol_cert *c = chain[0];

    /* The policy CA: the first issuer, walking up from the leaf, that the policy trusts. */
    const struct policy_ca *ca = NULL;
    size_t top = 0;
    if (pol->ncas > 0) {
        for (top = 0; top < n && chain[top] != NULL; top++)
            if ((ca = policy_ca_of(pol, chain[top]->issuer_hash)) != NULL)
                break;
        if (ca == NULL)
            return POL_R_ISSUER_NOT_TRUSTED;
    } else {
        /* Any issuer: the path ends at the last certificate given (a self-issued one is the anchor). */
        top = n - 1;
        if (top > 0 && memcmp(chain[top]->subject_hash, chain[top]->issuer_hash, POL_HASH_LEN) == 0)
            top--;
    }
    /* The trust anchor's depth: one above the certificate it issued. */
    if (!depth_given)
        depth = (unsigned)top + 1;
    if (pol->max_chain_depth > 0 && depth > pol->max_chain_depth)
        return POL_R_CHAIN_TOO_LONG;
    /* RFC 5280 4.1.2.5: valid from notBefore to notAfter inclusive. Checked here too because a
     * resumed session is not re-verified by wolfSSL. */
    if (now < c->not_before)
        return POL_R_NOT_YET_VALID;
    if (now > c->not_after)
        return POL_R_EXPIRED;
    if (c->is_ca)
        return POL_R_CERT_IS_CA;
    /* RFC 5280 4.2.1.12: anyExtendedKeyUsage stands for every purpose. */
    if (pol->required_eku != 0 &&
        (!c->has_eku || ((c->eku & pol->required_eku) != pol->required_eku && !(c->eku & POL_EKU_ANY))))
        return POL_R_EKU_MISSING;

    /* Revocation of the leaf and of every intermediate below the policy CA; status (a fresh CRL)
     * for each of their issuers that has one, or must have one. */
    int crl_required = ca != NULL && ca->crl_required;
    for (size_t i = 0; i <= top && i < n; i++) {
        enum pol_reason r = check_status(snap, pol, chain[i], crl_required, now, v);
        if (r != POL_ADMIT)
            return r;
    }
    if (pol->allowlist_required)
        return check_allowlist(snap, pol, c, now, v);
    return POL_ADMIT;
}

enum pol_reason pol_decide(const struct pol_snapshot *snap, const struct pol_policy *policy, const struct pol_cert *cert,
                           unsigned chain_depth, time_t now, struct pol_verdict *out)
{
    struct pol_verdict v;
    const struct pol_cert *chain[1] = { cert };
    memset(&v, 0, sizeof(v));
    v.reason = decide(snap, policy, chain, cert != NULL ? 1 : 0, 1, chain_depth, now, &v);
    if (out != NULL)
        *out = v;
    return v.reason;
}

enum pol_reason pol_decide_chain(const struct pol_snapshot *snap, const struct pol_policy *policy,
                                 const struct pol_cert *const *chain, size_t n, time_t now, struct pol_verdict *out)
{
    struct pol_verdict v;
    memset(&v, 0, sizeof(v));
    v.reason = decide(snap, policy, chain, n, 0, 0, now, &v);
    if (out != NULL)
        *out = v;
    return v.reason;
}
