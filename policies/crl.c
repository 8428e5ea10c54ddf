/* crl.c - importing CRLs issued by other CAs: decoding (RFC 5280 5.1), the extension rules
 * (5.2, 5.3) and the signature check against the configured CA certificate.
 *
 * What is refused, and why:
 *  - an unknown critical extension, in the list or in an entry: RFC 5280 5.2 and 5.3 say a CRL
 *    with one must not be used to decide revocation status;
 *  - delta CRLs (5.2.4) and indirect CRLs (certificateIssuer 5.3.3, indirectCRL 5.2.5): the store
 *    keeps one complete CRL per issuer, so a delta would replace the base and an indirect CRL would
 *    file revocations under the wrong issuer;
 *  - CRLs limited by reasons or to CA/attribute certificates (5.2.5): they would pass for complete;
 *  - removeFromCRL in an entry (only meaningful in a delta, 5.3.1);
 *  - serials longer than POL_SERIAL_MAX: dropping one would silently un-revoke it.
 * A CRL scoped to a distribution point (issuingDistributionPoint with only distributionPoint and
 * onlyContainsUserCerts) is accepted as the issuer's CRL: many CAs always send that extension.
 */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/signature.h>

#include <stdlib.h>
#include <string.h>

#include "policies/pol_int.h"

/* DER content octets of the OIDs we act on. */
static const uint8_t OID_CRL_NUMBER[] = { 0x55, 0x1d, 0x14 };          /* 2.5.29.20 */
static const uint8_t OID_REASON_CODE[] = { 0x55, 0x1d, 0x15 };         /* 2.5.29.21 */
static const uint8_t OID_INVALIDITY_DATE[] = { 0x55, 0x1d, 0x18 };     /* 2.5.29.24 */
static const uint8_t OID_DELTA_CRL[] = { 0x55, 0x1d, 0x1b };           /* 2.5.29.27 */
static const uint8_t OID_IDP[] = { 0x55, 0x1d, 0x1c };                 /* 2.5.29.28 */
static const uint8_t OID_CERT_ISSUER[] = { 0x55, 0x1d, 0x1d };         /* 2.5.29.29 */
static const uint8_t OID_ISSUER_ALT_NAME[] = { 0x55, 0x1d, 0x12 };     /* 2.5.29.18 */
static const uint8_t OID_AKI[] = { 0x55, 0x1d, 0x23 };                 /* 2.5.29.35 */
static const uint8_t OID_FRESHEST_CRL[] = { 0x55, 0x1d, 0x2e };        /* 2.5.29.46 */
static const uint8_t OID_AIA[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01 };
static const uint8_t OID_ECDSA_SHA256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 };
static const uint8_t OID_ECDSA_SHA384[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03 };
static const uint8_t OID_ECDSA_SHA512[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04 };
static const uint8_t OID_RSA_SHA256[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b };
static const uint8_t OID_RSA_SHA384[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c };
static const uint8_t OID_RSA_SHA512[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d };
static const uint8_t OID_ED25519[] = { 0x2b, 0x65, 0x70 };
static const uint8_t OID_EC_PUBKEY[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
static const uint8_t OID_RSA_PUBKEY[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };

#define CRL_NUMBER_MAX 20       /* RFC 5280 5.2.3 */

void pol_crl_free(struct pol_crl *crl)
{
    if (crl == NULL)
        return;
    free(crl->der);
    crl->der = NULL;
    free(crl->entries);
    crl->entries = NULL;
    free(crl->issuer_text);
    crl->issuer_text = NULL;
    free(crl);
}

/* One Extension (RFC 5280 4.1): its OID, criticality and value. */
static int read_extension(struct pol_der *exts, struct pol_tlv *oid, int *critical, struct pol_tlv *value)
{
    struct pol_tlv ext, b;
    if (pol_der_expect(exts, POL_TAG_SEQUENCE, &ext) != 0)
        return POL_E_DER;
    struct pol_der e = pol_der_in(&ext);
    *critical = 0;
    if (pol_der_expect(&e, POL_TAG_OID, oid) != 0 || oid->len == 0)
        return POL_E_DER;
    if (pol_der_peek(&e) == POL_TAG_BOOLEAN) {
        if (pol_der_next(&e, &b) != 0 || b.len != 1 || (b.v[0] != 0x00 && b.v[0] != 0xff))
            return POL_E_DER;
        *critical = b.v[0] == 0xff;
    }
    if (pol_der_expect(&e, POL_TAG_OCTET_STRING, value) != 0 || e.len != 0)
        return POL_E_DER;
    return 0;
}

/* issuingDistributionPoint (RFC 5280 5.2.5): what narrows the CRL's scope is refused. */
static int check_idp(const struct pol_tlv *value, char *err, size_t errlen)
{
    struct pol_der d = pol_der_in(value);
    struct pol_tlv seq, f;
    if (pol_der_expect(&d, POL_TAG_SEQUENCE, &seq) != 0 || d.len != 0)
        return pol_errf(err, errlen, POL_E_DER, "malformed issuingDistributionPoint");
    struct pol_der s = pol_der_in(&seq);
    while (s.len > 0) {
        if (pol_der_next(&s, &f) != 0)
            return pol_errf(err, errlen, POL_E_DER, "malformed issuingDistributionPoint");
        int is_true = f.len == 1 && f.v[0] == 0xff;
        switch (f.tag) {
        case 0xa0:      /* distributionPoint */
            break;
        case 0x81:      /* onlyContainsUserCerts: client certificates are user certificates */
            break;
        case 0x82:      /* onlyContainsCACerts */
        case 0x85:      /* onlyContainsAttributeCerts */
            if (is_true)
                return pol_errf(err, errlen, POL_E_UNSUPPORTED,
                                "the CRL covers only CA or attribute certificates (RFC 5280 5.2.5)");
            break;
        case 0x83:      /* onlySomeReasons */
            return pol_errf(err, errlen, POL_E_UNSUPPORTED, "the CRL covers only some reasons (RFC 5280 5.2.5)");
        case 0x84:      /* indirectCRL */
            if (is_true)
                return pol_errf(err, errlen, POL_E_UNSUPPORTED, "indirect CRLs are not supported (RFC 5280 5.2.5)");
            break;
        default:
            return pol_errf(err, errlen, POL_E_DER, "malformed issuingDistributionPoint");
        }
    }
    return 0;
}

static int crl_extensions(struct pol_crl *crl, const struct pol_tlv *wrapped, char *err, size_t errlen)
{
    struct pol_der w = pol_der_in(wrapped);
    struct pol_tlv exts, oid, value, n;
    int critical, rc, seen_number = 0, seen_idp = 0;
    if (pol_der_expect(&w, POL_TAG_SEQUENCE, &exts) != 0 || w.len != 0 || exts.len == 0)
        return pol_errf(err, errlen, POL_E_DER, "malformed crlExtensions");
    struct pol_der e = pol_der_in(&exts);
    while (e.len > 0) {
        if (read_extension(&e, &oid, &critical, &value) != 0)
            return pol_errf(err, errlen, POL_E_DER, "malformed CRL extension");
        if (POL_OID_IS(&oid, OID_CRL_NUMBER)) {
            struct pol_der v = pol_der_in(&value);
            if (critical)
                return pol_errf(err, errlen, POL_E_CRL_CRITICAL, "cRLNumber marked critical (RFC 5280 5.2.3: it is non-critical)");
            if (seen_number++ || pol_der_expect(&v, POL_TAG_INTEGER, &n) != 0 || v.len != 0 ||
                pol_der_uint(&n, CRL_NUMBER_MAX + 1) != 0 || (n.v[0] & 0x80) ||
                (n.len == CRL_NUMBER_MAX + 1 && n.v[0] != 0))
                return pol_errf(err, errlen, POL_E_DER, "malformed or repeated cRLNumber (RFC 5280 5.2.3)");
            crl->number = n.v;
            crl->number_len = n.len;
        } else if (POL_OID_IS(&oid, OID_DELTA_CRL)) {
            return pol_errf(err, errlen, POL_E_UNSUPPORTED, "delta CRLs are not supported (RFC 5280 5.2.4)");
        } else if (POL_OID_IS(&oid, OID_IDP)) {
            if (seen_idp++)
                return pol_errf(err, errlen, POL_E_DER, "repeated issuingDistributionPoint");
            if ((rc = check_idp(&value, err, errlen)) != 0)
                return rc;
        } else if (POL_OID_IS(&oid, OID_AKI) || POL_OID_IS(&oid, OID_ISSUER_ALT_NAME) ||
                   POL_OID_IS(&oid, OID_FRESHEST_CRL) || POL_OID_IS(&oid, OID_AIA)) {
            /* Known, and nothing in them changes what the CRL says about a serial. */
        } else if (critical) {
            return pol_errf(err, errlen, POL_E_CRL_CRITICAL, "the CRL has an unknown critical extension (RFC 5280 5.2)");
        }
    }
    return 0;
}

static int entry_extensions(struct pol_crl_entry *ent, const struct pol_tlv *exts, char *err, size_t errlen)
{
    struct pol_tlv oid, value, r;
    int critical, seen_reason = 0;
    struct pol_der e = pol_der_in(exts);
    if (exts->len == 0)
        return pol_errf(err, errlen, POL_E_DER, "empty crlEntryExtensions");
    while (e.len > 0) {
        if (read_extension(&e, &oid, &critical, &value) != 0)
            return pol_errf(err, errlen, POL_E_DER, "malformed CRL entry extension");
        if (POL_OID_IS(&oid, OID_REASON_CODE)) {
            struct pol_der v = pol_der_in(&value);
            if (seen_reason++ || pol_der_expect(&v, POL_TAG_ENUMERATED, &r) != 0 || v.len != 0 || r.len != 1 ||
                r.v[0] > 10 || r.v[0] == 7)
                return pol_errf(err, errlen, POL_E_DER, "malformed reasonCode (RFC 5280 5.3.1)");
            if (r.v[0] == POL_REASON_REMOVE_FROM_CRL)
                return pol_errf(err, errlen, POL_E_UNSUPPORTED, "removeFromCRL outside a delta CRL (RFC 5280 5.3.1)");
            ent->reason = r.v[0];
        } else if (POL_OID_IS(&oid, OID_CERT_ISSUER)) {
            return pol_errf(err, errlen, POL_E_UNSUPPORTED, "indirect CRLs are not supported (RFC 5280 5.3.3)");
        } else if (POL_OID_IS(&oid, OID_INVALIDITY_DATE)) {
            /* Informational (5.3.2): the certificate is revoked either way. */
        } else if (critical) {
            return pol_errf(err, errlen, POL_E_CRL_CRITICAL,
                            "a CRL entry has an unknown critical extension (RFC 5280 5.3)");
        }
    }
    return 0;
}

static int decode_entries(struct pol_crl *crl, const struct pol_tlv *list, int v2, char *err, size_t errlen)
{
    struct pol_tlv ent, serial, date, exts;
    size_t n = 0;
    /* Count first: one allocation for a million entries. */
    for (struct pol_der c = pol_der_in(list); c.len > 0; n++)
        if (pol_der_expect(&c, POL_TAG_SEQUENCE, &ent) != 0)
            return pol_errf(err, errlen, POL_E_DER, "malformed revokedCertificates");
    /* RFC 5280 5.1.2.6 says to omit an empty list; some CAs send it anyway, and it means the same. */
    if (n == 0)
        return 0;
    crl->entries = calloc(n, sizeof(*crl->entries));
    if (crl->entries == NULL)
        return pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
    struct pol_der d = pol_der_in(list);
    for (size_t i = 0; i < n; i++) {
        struct pol_crl_entry *e = &crl->entries[i];
        if (pol_der_expect(&d, POL_TAG_SEQUENCE, &ent) != 0)
            return pol_errf(err, errlen, POL_E_DER, "malformed revokedCertificates");
        struct pol_der r = pol_der_in(&ent);
        if (pol_der_expect(&r, POL_TAG_INTEGER, &serial) != 0 || pol_der_next(&r, &date) != 0 ||
            pol_der_time(&date, &e->revoked_at) != 0)
            return pol_errf(err, errlen, POL_E_DER, "malformed CRL entry #%zu", i + 1);
        if (pol_der_uint(&serial, POL_SERIAL_MAX) != 0)
            return pol_errf(err, errlen, POL_E_DER, "CRL entry #%zu: serial malformed or longer than %d octets", i + 1,
                            POL_SERIAL_MAX);
        e->serial = serial.v;
        e->serial_len = (uint8_t)serial.len;
        e->reason = POL_REASON_UNSPECIFIED;
        if (r.len > 0) {
            int rc;
            if (!v2 || pol_der_expect(&r, POL_TAG_SEQUENCE, &exts) != 0 || r.len != 0)
                return pol_errf(err, errlen, POL_E_DER, "malformed CRL entry #%zu (extensions need a v2 CRL)", i + 1);
            if ((rc = entry_extensions(e, &exts, err, errlen)) != 0)
                return rc;
        }
    }
    crl->nentries = n;
    return 0;
}

int pol_crl_decode(uint8_t *der, size_t len, struct pol_crl **out, char *err, size_t errlen)
{
    struct pol_crl *crl = NULL;
    struct pol_tlv all, tbs, alg, sig, t, issuer, tu;
    int rc = 0, v2 = 0;

    *out = NULL;
    crl = calloc(1, sizeof(*crl));
    if (crl == NULL) {
        free(der);
        der = NULL;
        return pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
    }
    crl->der = der;
    crl->der_len = len;
    der = NULL;

    /* CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue } (5.1.1) */
    struct pol_der d = { crl->der, len };
    if (pol_der_expect(&d, POL_TAG_SEQUENCE, &all) != 0 || d.len != 0) {
        rc = pol_errf(err, errlen, POL_E_DER, "not a DER CertificateList (RFC 5280 5.1)");
        goto out;
    }
    struct pol_der c = pol_der_in(&all);
    if (pol_der_expect(&c, POL_TAG_SEQUENCE, &tbs) != 0 || pol_der_expect(&c, POL_TAG_SEQUENCE, &alg) != 0 ||
        pol_der_expect(&c, POL_TAG_BIT_STRING, &sig) != 0 || c.len != 0 || sig.len < 2 || sig.v[0] != 0) {
        rc = pol_errf(err, errlen, POL_E_DER, "malformed CertificateList (RFC 5280 5.1.1)");
        goto out;
    }
    crl->tbs = tbs.raw;
    crl->tbs_len = tbs.raw_len;
    crl->sig_alg = alg.raw;
    crl->sig_alg_len = alg.raw_len;
    crl->sig = sig.v + 1;
    crl->sig_len = sig.len - 1;

    /* TBSCertList (5.1.2) */
    struct pol_der b = pol_der_in(&tbs);
    if (pol_der_peek(&b) == POL_TAG_INTEGER) {
        if (pol_der_next(&b, &t) != 0 || t.len != 1 || t.v[0] != 1) {
            rc = pol_errf(err, errlen, POL_E_DER, "unknown CRL version (RFC 5280 5.1.2.1: v2 is 1)");
            goto out;
        }
        v2 = 1;
    }
    if (pol_der_expect(&b, POL_TAG_SEQUENCE, &t) != 0 || pol_der_expect(&b, POL_TAG_SEQUENCE, &issuer) != 0 ||
        pol_der_next(&b, &tu) != 0 || pol_der_time(&tu, &crl->this_update) != 0) {
        rc = pol_errf(err, errlen, POL_E_DER, "malformed TBSCertList (signature, issuer or thisUpdate)");
        goto out;
    }
    crl->tbs_sig_alg = t.raw;
    crl->tbs_sig_alg_len = t.raw_len;
    crl->issuer_der = issuer.raw;
    crl->issuer_der_len = issuer.raw_len;
    if (pol_der_peek(&b) == POL_TAG_UTC_TIME || pol_der_peek(&b) == POL_TAG_GEN_TIME) {
        if (pol_der_next(&b, &t) != 0 || pol_der_time(&t, &crl->next_update) != 0 ||
            crl->next_update <= crl->this_update) {
            rc = pol_errf(err, errlen, POL_E_DER, "malformed nextUpdate, or not after thisUpdate");
            goto out;
        }
    }
    if (pol_der_peek(&b) == POL_TAG_SEQUENCE) {
        if (pol_der_next(&b, &t) != 0) {
            rc = pol_errf(err, errlen, POL_E_DER, "malformed revokedCertificates");
            goto out;
        }
        POL_TRY(decode_entries(crl, &t, v2, err, errlen));
    }
    if (pol_der_peek(&b) == POL_TAG_CTX(0)) {
        if (!v2 || pol_der_next(&b, &t) != 0) {
            rc = pol_errf(err, errlen, POL_E_DER, "crlExtensions in a v1 CRL (RFC 5280 5.1.2.1)");
            goto out;
        }
        POL_TRY(crl_extensions(crl, &t, err, errlen));
    }
    /* 5.2.3: conforming CRL issuers MUST include the CRL number; without it a rollback to an older
     * CRL cannot be told from a new one. A v1 CRL cannot carry it and is ordered by thisUpdate. */
    if (v2 && crl->number == NULL) {
        rc = pol_errf(err, errlen, POL_E_DER, "a v2 CRL without cRLNumber (RFC 5280 5.2.3 requires it)");
        goto out;
    }
    if (b.len != 0) {
        rc = pol_errf(err, errlen, POL_E_DER, "unexpected data at the end of TBSCertList");
        goto out;
    }
    /* 5.1.1.2: the outer algorithm must be the one inside the signed part. */
    if (crl->sig_alg_len != crl->tbs_sig_alg_len || memcmp(crl->sig_alg, crl->tbs_sig_alg, crl->sig_alg_len) != 0) {
        rc = pol_errf(err, errlen, POL_E_DER, "signatureAlgorithm differs from TBSCertList.signature (RFC 5280 5.1.1.2)");
        goto out;
    }
    POL_TRY(pol_sha256(crl->der, crl->der_len, crl->sha256));
    POL_TRY(pol_sha256(crl->issuer_der, crl->issuer_der_len, crl->issuer_hash));
    *out = crl;
    crl = NULL;
out:
    pol_crl_free(crl);
    crl = NULL;
    return rc;
}

/* Which key type and hash the signature algorithm names. */
static int sig_algorithm(const uint8_t *alg, size_t len, int *key, enum wc_HashType *hash)
{
    struct pol_der d = { alg, len };
    struct pol_tlv seq, oid, p;
    if (pol_der_expect(&d, POL_TAG_SEQUENCE, &seq) != 0)
        return POL_E_DER;
    struct pol_der s = pol_der_in(&seq);
    if (pol_der_expect(&s, POL_TAG_OID, &oid) != 0)
        return POL_E_DER;
    int has_null = 0;
    if (s.len > 0) {
        if (pol_der_expect(&s, POL_TAG_NULL, &p) != 0 || p.len != 0 || s.len != 0)
            return POL_E_UNSUPPORTED;
        has_null = 1;
    }
    if (POL_OID_IS(&oid, OID_ECDSA_SHA256) || POL_OID_IS(&oid, OID_ECDSA_SHA384) || POL_OID_IS(&oid, OID_ECDSA_SHA512)) {
        *key = 1;
        *hash = oid.v[7] == 2 ? WC_HASH_TYPE_SHA256 : oid.v[7] == 3 ? WC_HASH_TYPE_SHA384 : WC_HASH_TYPE_SHA512;
        return has_null ? POL_E_DER : 0;        /* RFC 5758 3.2: parameters absent */
    }
    if (POL_OID_IS(&oid, OID_RSA_SHA256) || POL_OID_IS(&oid, OID_RSA_SHA384) || POL_OID_IS(&oid, OID_RSA_SHA512)) {
        *key = 2;
        *hash = oid.v[8] == 0x0b ? WC_HASH_TYPE_SHA256 : oid.v[8] == 0x0c ? WC_HASH_TYPE_SHA384 : WC_HASH_TYPE_SHA512;
        return 0;
    }
    if (POL_OID_IS(&oid, OID_ED25519)) {
        *key = 3;
        *hash = WC_HASH_TYPE_NONE;
        return has_null ? POL_E_DER : 0;        /* RFC 8410 3 */
    }
    return POL_E_UNSUPPORTED;
}

static int spki_key_type(const uint8_t *spki, size_t len)
{
    struct pol_der d = { spki, len };
    struct pol_tlv seq, alg, oid;
    if (pol_der_expect(&d, POL_TAG_SEQUENCE, &seq) != 0)
        return -1;
    struct pol_der s = pol_der_in(&seq);
    if (pol_der_expect(&s, POL_TAG_SEQUENCE, &alg) != 0)
        return -1;
    struct pol_der a = pol_der_in(&alg);
    if (pol_der_expect(&a, POL_TAG_OID, &oid) != 0)
        return -1;
    if (POL_OID_IS(&oid, OID_EC_PUBKEY))
        return 1;
    if (POL_OID_IS(&oid, OID_RSA_PUBKEY))
        return 2;
    if (POL_OID_IS(&oid, OID_ED25519))
        return 3;
    return -1;
}

static int verify_signature(const struct pol_crl *crl, const struct pol_cert *ca, char *err, size_t errlen)
{
    int key = 0, rc;
    enum wc_HashType hash = WC_HASH_TYPE_NONE;
    word32 idx = 0;

    if ((rc = sig_algorithm(crl->sig_alg, crl->sig_alg_len, &key, &hash)) != 0)
        return pol_errf(err, errlen, rc == POL_E_DER ? POL_E_DER : POL_E_UNSUPPORTED,
                        "unsupported CRL signature algorithm (ECDSA or RSA PKCS#1 v1.5 with SHA-2, or Ed25519)");
    if (spki_key_type(ca->spki_der, ca->spki_der_len) != key)
        return pol_errf(err, errlen, POL_E_CRL_SIGNATURE, "the CRL's signature algorithm does not fit the CA's key");
    if (crl->tbs_len > UINT32_MAX || crl->sig_len > UINT32_MAX)
        return pol_errf(err, errlen, POL_E_DER, "CRL too large");
    if (key == 1) {
        ecc_key k;
        if (wc_ecc_init(&k) != 0)
            return pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
        rc = wc_EccPublicKeyDecode(ca->spki_der, &idx, &k, (word32)ca->spki_der_len);
        if (rc == 0)
            rc = wc_SignatureVerify(hash, WC_SIGNATURE_TYPE_ECC, crl->tbs, (word32)crl->tbs_len, crl->sig,
                                    (word32)crl->sig_len, &k, sizeof(k));
        wc_ecc_free(&k);
    } else if (key == 2) {
        RsaKey k;
        if (wc_InitRsaKey(&k, NULL) != 0)
            return pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
        rc = wc_RsaPublicKeyDecode(ca->spki_der, &idx, &k, (word32)ca->spki_der_len);
        if (rc == 0 && wc_RsaEncryptSize(&k) < 256) {
            wc_FreeRsaKey(&k);
            return pol_errf(err, errlen, POL_E_UNSUPPORTED, "the CA's RSA key is shorter than 2048 bits");
        }
        if (rc == 0)
            rc = wc_SignatureVerify(hash, WC_SIGNATURE_TYPE_RSA_W_ENC, crl->tbs, (word32)crl->tbs_len, crl->sig,
                                    (word32)crl->sig_len, &k, sizeof(k));
        wc_FreeRsaKey(&k);
    } else {
        ed25519_key k;
        int ok = 0;
        if (wc_ed25519_init(&k) != 0)
            return pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
        rc = wc_Ed25519PublicKeyDecode(ca->spki_der, &idx, &k, (word32)ca->spki_der_len);
        if (rc == 0)
            rc = wc_ed25519_verify_msg(crl->sig, (word32)crl->sig_len, crl->tbs, (word32)crl->tbs_len, &ok, &k);
        if (rc == 0 && ok != 1)
            rc = -1;
        wc_ed25519_free(&k);
    }
    if (rc != 0)
        return pol_errf(err, errlen, POL_E_CRL_SIGNATURE, "the CRL's signature does not verify with the CA's key");
    return 0;
}

int pol_crl_verify(struct pol_crl *crl, const struct pol_cert *ca, char *err, size_t errlen)
{
    /* RFC 5280 6.3.3 (b)/(f): the CRL issuer is the CA, and the CA may sign CRLs (4.2.1.3, 4.2.1.9). */
    if (!ca->is_ca)
        return pol_errf(err, errlen, POL_E_CERT, "%s is not a CA certificate", ca->subject);
    if (ca->has_key_usage && !(ca->key_usage & KEYUSE_CRL_SIGN))
        return pol_errf(err, errlen, POL_E_CRL_ISSUER, "the CA's keyUsage lacks cRLSign (RFC 5280 4.2.1.3)");
    if (crl->issuer_der_len != ca->subject_der_len || memcmp(crl->issuer_der, ca->subject_der, ca->subject_der_len) != 0)
        return pol_errf(err, errlen, POL_E_CRL_ISSUER, "the CRL's issuer is not the CA's subject (%s)", ca->subject);
    int rc = verify_signature(crl, ca, err, errlen);
    if (rc != 0)
        return rc;
    free(crl->issuer_text);
    crl->issuer_text = strdup(ca->subject);
    if (crl->issuer_text == NULL)
        return pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
    return 0;
}

int pol_crl_parse(const uint8_t *in, size_t len, const uint8_t *ca_der, size_t ca_len, struct pol_crl **out,
                  char *err, size_t errlen)
{
    uint8_t *der = NULL;
    size_t dlen = 0;
    struct pol_crl *crl = NULL;
    struct pol_cert *ca = NULL;
    int rc = 0;

    *out = NULL;
    if (in == NULL || len == 0 || ca_der == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no CRL or no CA certificate");
    if ((rc = pol_cert_from_der(ca_der, ca_len, &ca)) != 0) {
        pol_errf(err, errlen, rc, "the CA certificate does not parse");
        goto out;
    }
    POL_TRY(pol_pem_or_der(in, len, "X509 CRL", &der, &dlen, err, errlen));
    rc = pol_crl_decode(der, dlen, &crl, err, errlen);
    der = NULL;
    if (rc != 0)
        goto out;
    POL_TRY(pol_crl_verify(crl, ca, err, errlen));
    *out = crl;
    crl = NULL;
out:
    pol_crl_free(crl);
    crl = NULL;
    pol_cert_free(ca);
    ca = NULL;
    return rc;
}

void pol_crl_get_info(const struct pol_crl *crl, struct pol_crl_info *info)
{
    memset(info, 0, sizeof(*info));
    info->issuer_text = crl->issuer_text ? crl->issuer_text : "";
    info->number = crl->number;
    info->number_len = crl->number_len;
    info->this_update = crl->this_update;
    info->next_update = crl->next_update;
    info->entries = crl->nentries;
}
