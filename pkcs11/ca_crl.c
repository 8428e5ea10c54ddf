/* ca_crl.c - certificate revocation lists (RFC 5280 5) of a CA whose key lives in the HSM.
 *
 * The TBSCertList is encoded here with the CA code's DER writer (ca_der.c), signed by
 * hsm_ca_sign_wrap (hash here, signature in the token, verified with the public key before use),
 * whose SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING } is exactly a CertificateList (5.1.1).
 */
#include "pkcs11/ca.h"
#include "pkcs11/ca_int.h"

#include <stdlib.h>
#include <string.h>

#define DER_ENUMERATED 0x0a
#define CRL_NUMBER_MAX 20       /* RFC 5280 5.2.3: conforming CAs use at most 20 octets */
#define CRL_SERIAL_MAX 32       /* what the policy store accepts (pol.h POL_SERIAL_MAX) */

static const uint8_t OID_AKI[] = { 0x55, 0x1d, 0x23 };          /* 5.2.1 */
static const uint8_t OID_CRL_NUMBER[] = { 0x55, 0x1d, 0x14 };   /* 5.2.3 */
static const uint8_t OID_REASON_CODE[] = { 0x55, 0x1d, 0x15 };  /* 5.3.1 */

/* Appends Extension ::= SEQUENCE { extnID, extnValue } (never critical here: critical DEFAULT FALSE
 * is omitted, X.690 11.5) and frees value. */
static void ext_put(struct hsm_ca_der_buf *exts, const uint8_t *oid, size_t oid_len, struct hsm_ca_der_buf *value)
{
    struct hsm_ca_der_buf e = { 0 };
    hsm_ca_der_put_tlv(&e, DER_OID, oid, oid_len);
    hsm_ca_der_put_wrapped(&e, DER_OCTET_STRING, value);
    hsm_ca_der_put_wrapped(exts, DER_SEQUENCE, &e);
}

/* An unsigned big-endian number as a minimal, non-negative DER INTEGER (X.690 8.3.2). -1 when it has
 * no octet or its content (sign octet included) would be longer than max octets. */
static int put_unsigned(struct hsm_ca_der_buf *b, const uint8_t *v, size_t n, size_t max)
{
    uint8_t tmp[CRL_NUMBER_MAX + 1];
    size_t k = 0;
    if (v == NULL || n == 0)
        return -1;
    while (n > 1 && v[0] == 0) {
        v++;
        n--;
    }
    if (v[0] & 0x80)
        tmp[k++] = 0;
    if (k + n > max || k + n > sizeof(tmp))
        return -1;
    memcpy(tmp + k, v, n);
    hsm_ca_der_put_tlv(b, DER_INTEGER, tmp, k + n);
    return 0;
}

/* A serial as certificates carry it: the content octets of a positive DER INTEGER, copied as they are
 * (a CRL entry must name the serial byte for byte, RFC 5280 5.1.2.6). Refused when not minimal or
 * negative, which no certificate we would list can have. */
static int put_serial(struct hsm_ca_der_buf *b, const uint8_t *s, size_t n)
{
    if (s == NULL || n == 0 || n > CRL_SERIAL_MAX || (s[0] & 0x80) || (n > 1 && s[0] == 0 && !(s[1] & 0x80)))
        return -1;
    hsm_ca_der_put_tlv(b, DER_INTEGER, s, n);
    return 0;
}

static int reason_ok(int r)
{
    /* 7 is unused; removeFromCRL (8) belongs to delta CRLs only (5.3.1). */
    return r >= 0 && r <= 10 && r != 7 && r != 8;
}

/* revokedCertificates (5.1.2.6): SEQUENCE OF SEQUENCE { userCertificate, revocationDate,
 * crlEntryExtensions }, into b. */
static int entries_put(struct hsm_ca_der_buf *b, const struct hsm_ca_crl_spec *spec, char *err, size_t errlen)
{
    struct hsm_ca_der_buf list = { 0 }, e = { 0 }, exts = { 0 }, v = { 0 };
    int rc = HSM_E_ARG;

    for (size_t i = 0; i < spec->nentries; i++) {
        const struct hsm_ca_crl_entry *x = &spec->entries[i];
        if (put_serial(&e, x->serial, x->serial_len) != 0) {
            hsm_ca_errf(err, errlen, "CRL entry %zu: the serial is not the content of a positive DER INTEGER of "
                                     "1 to %d octets", i + 1, CRL_SERIAL_MAX);
            goto out;
        }
        if (hsm_ca_der_put_time(&e, x->revoked_at) != 0) {
            hsm_ca_errf(err, errlen, "CRL entry %zu: the revocation date is outside the years 1950-9999", i + 1);
            goto out;
        }
        if (!reason_ok(x->reason)) {
            hsm_ca_errf(err, errlen, "CRL entry %zu: %d is not a CRLReason (RFC 5280 5.3.1)", i + 1, x->reason);
            goto out;
        }
        /* 5.3.1: the reasonCode extension SHOULD be absent rather than say unspecified. */
        if (x->reason != 0) {
            uint8_t r = (uint8_t)x->reason;
            hsm_ca_der_put_tlv(&v, DER_ENUMERATED, &r, 1);
            ext_put(&exts, OID_REASON_CODE, sizeof(OID_REASON_CODE), &v);
            hsm_ca_der_put_wrapped(&e, DER_SEQUENCE, &exts);
        }
        hsm_ca_der_put_wrapped(&list, DER_SEQUENCE, &e);
    }
    /* 5.1.2.6: with no revoked certificates the list is absent, not empty. */
    if (spec->nentries > 0)
        hsm_ca_der_put_wrapped(b, DER_SEQUENCE, &list);
    rc = 0;
out:
    hsm_ca_der_buf_free(&list);
    hsm_ca_der_buf_free(&e);
    hsm_ca_der_buf_free(&exts);
    hsm_ca_der_buf_free(&v);
    return rc;
}

/* The CA certificate read and checked for signing with ca_key: a CA whose keyUsage (if any) has
 * keyCertSign (when cert_sign) and cRLSign, holding ca_key's public key. *ca_pub gets that key. */
static int issuer_check(struct hsm_key *ca_key, const uint8_t *der, size_t len, int cert_sign,
                        struct hsm_ca_cert_info *ca, struct hsm_ca_spki *ca_pub, char *err, size_t errlen)
{
    struct hsm_ca_spki cert_pub;
    size_t spki_len = 0;
    char why[200];

    if (hsm_ca_cert_read(der, len, ca) != 0) {
        hsm_ca_errf(err, errlen, "the CA certificate is not a DER X.509 certificate");
        return HSM_E_ARG;
    }
    /* RFC 5280 6.1.4 (k), (n) and 6.3.3 (f): only a CA certificate with keyCertSign may issue, and a
     * CRL verifies only with a key whose certificate allows cRLSign. */
    if (!ca->is_ca || (ca->ku_present && ((cert_sign && !ca->ku_cert_sign) || !ca->ku_crl_sign))) {
        hsm_ca_errf(err, errlen, "the CA certificate may not %s (%s)", cert_sign ? "issue certificates and CRLs" : "sign CRLs",
                    !ca->is_ca ? "basicConstraints cA is not TRUE"
                               : !ca->ku_crl_sign ? "keyUsage lacks cRLSign" : "keyUsage lacks keyCertSign");
        return HSM_E_ARG;
    }
    const uint8_t *key_spki = hsm_key_spki(ca_key, &spki_len);
    if (hsm_ca_spki_inspect(key_spki, spki_len, ca_pub, why, sizeof(why)) != 0 ||
        hsm_ca_spki_inspect(ca->spki, ca->spki_len, &cert_pub, why, sizeof(why)) != 0 ||
        !hsm_ca_spki_same(ca_pub, &cert_pub)) {
        hsm_ca_errf(err, errlen, "the CA key %s does not hold the CA certificate's public key", hsm_key_uri(ca_key));
        return HSM_E_ARG;
    }
    return 0;
}

int hsm_ca_cert_check(struct hsm_key *ca_key, const uint8_t *ca_cert_der, size_t ca_cert_len, char *err, size_t errlen)
{
    struct hsm_ca_cert_info ca;
    struct hsm_ca_spki pub;
    enum hsm_ca_sigalg alg;

    if (ca_key == NULL || ca_cert_der == NULL || ca_cert_len == 0) {
        hsm_ca_errf(err, errlen, "hsm_ca_cert_check: missing argument");
        return HSM_E_ARG;
    }
    int rc = hsm_ca_sigalg_for_key(ca_key, &alg, err, errlen);
    return rc != 0 ? rc : issuer_check(ca_key, ca_cert_der, ca_cert_len, 1, &ca, &pub, err, errlen);
}

int hsm_ca_crl_make(struct hsm_key *ca_key, const uint8_t *ca_cert_der, size_t ca_cert_len,
                    const struct hsm_ca_crl_spec *spec, uint8_t **der_out, size_t *der_len, char *err, size_t errlen)
{
    struct hsm_ca_der_buf tbs = { 0 }, body = { 0 }, tmp = { 0 }, exts = { 0 }, v = { 0 };
    struct hsm_ca_cert_info ca;
    struct hsm_ca_spki ca_pub;
    enum hsm_ca_sigalg alg;
    uint8_t keyid[20];
    const uint8_t *akid;
    size_t akid_len;
    int rc = HSM_E_ARG;

    if (der_out != NULL)
        *der_out = NULL;
    if (der_len != NULL)
        *der_len = 0;
    if (ca_key == NULL || ca_cert_der == NULL || ca_cert_len == 0 || spec == NULL || der_out == NULL ||
        der_len == NULL || (spec->entries == NULL && spec->nentries > 0)) {
        hsm_ca_errf(err, errlen, "hsm_ca_crl_make: missing argument");
        return HSM_E_ARG;
    }
    rc = hsm_ca_sigalg_for_key(ca_key, &alg, err, errlen);
    if (rc != 0)
        goto out;
    rc = issuer_check(ca_key, ca_cert_der, ca_cert_len, 0, &ca, &ca_pub, err, errlen);
    if (rc != 0)
        goto out;
    rc = HSM_E_ARG;
    /* 5.2.1: the key identifier the CA's certificates carry as their AKI, so path builders match. */
    if (ca.skid != NULL) {
        akid = ca.skid;
        akid_len = ca.skid_len;
    } else {
        if (hsm_ca_spki_keyid(&ca_pub, keyid) != 0) {
            hsm_ca_errf(err, errlen, "hashing the CA key failed");
            goto out;
        }
        akid = keyid;
        akid_len = sizeof(keyid);
    }
    if (spec->this_update >= spec->next_update) {
        hsm_ca_errf(err, errlen, "thisUpdate must be earlier than nextUpdate");
        goto out;
    }

    /* TBSCertList (5.1.2). */
    hsm_ca_der_put_uint(&body, 1);                                 /* v2: extensions follow */
    hsm_ca_sigalg_put(&body, alg);                                 /* must equal the outer one (5.1.2.2) */
    hsm_ca_der_put(&body, ca.name, ca.name_len);                   /* 5.1.2.3 */
    if (hsm_ca_der_put_time(&body, spec->this_update) != 0 || hsm_ca_der_put_time(&body, spec->next_update) != 0) {
        hsm_ca_errf(err, errlen, "thisUpdate and nextUpdate must lie within the years 1950-9999");
        goto out;
    }
    rc = entries_put(&body, spec, err, errlen);
    if (rc != 0)
        goto out;
    rc = HSM_E_ARG;
    hsm_ca_der_put_tlv(&tmp, DER_IMPL0, akid, akid_len);          /* keyIdentifier [0] */
    hsm_ca_der_put_wrapped(&v, DER_SEQUENCE, &tmp);
    ext_put(&exts, OID_AKI, sizeof(OID_AKI), &v);
    if (put_unsigned(&v, spec->number, spec->number_len, CRL_NUMBER_MAX) != 0) {
        hsm_ca_errf(err, errlen, "the CRL number must be 1 to %d octets (RFC 5280 5.2.3)", CRL_NUMBER_MAX);
        goto out;
    }
    ext_put(&exts, OID_CRL_NUMBER, sizeof(OID_CRL_NUMBER), &v);
    hsm_ca_der_put_wrapped(&tmp, DER_SEQUENCE, &exts);
    hsm_ca_der_put_wrapped(&body, DER_CTX0, &tmp);                 /* crlExtensions [0] EXPLICIT */
    hsm_ca_der_put_wrapped(&tbs, DER_SEQUENCE, &body);
    if (tbs.failed) {
        hsm_ca_errf(err, errlen, "out of memory, or a CRL larger than the DER writer's 16 MiB");
        rc = HSM_E_NOMEM;
        goto out;
    }
    rc = hsm_ca_sign_wrap(ca_key, alg, tbs.p, tbs.len, der_out, der_len, err, errlen);
out:
    hsm_ca_der_buf_free(&tbs);
    hsm_ca_der_buf_free(&body);
    hsm_ca_der_buf_free(&tmp);
    hsm_ca_der_buf_free(&exts);
    hsm_ca_der_buf_free(&v);
    return rc;
}
