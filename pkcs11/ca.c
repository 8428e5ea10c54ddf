/* ca.c - issuing X.509 v3 certificates (RFC 5280) signed by a key held in the HSM.
 *
 * The TBSCertificate is encoded here (see ca_int.h for why not with wolfSSL's Cert API), signed by
 * hsm_ca_sign_wrap (hash here, signature in the token, verified before use), and finally read back by
 * wolfSSL's own X.509 parser so the gateway's TLS stack is known to accept what we issue.
 */
#include "pkcs11/ca.h"
#include "pkcs11/ca_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/random.h>

#define SERIAL_LEN 16

/* keyUsage bits, numbered as in RFC 5280 4.2.1.3 (bit 0 is the first, most significant). */
enum {
    KU_DIGITAL_SIGNATURE = 1u << 0,
    KU_KEY_ENCIPHERMENT = 1u << 2,
    KU_KEY_CERT_SIGN = 1u << 5,
    KU_CRL_SIGN = 1u << 6,
};

static const uint8_t OID_BASIC_CONSTRAINTS[] = { 0x55, 0x1d, 0x13 };
static const uint8_t OID_KEY_USAGE[] = { 0x55, 0x1d, 0x0f };
static const uint8_t OID_EXT_KEY_USAGE[] = { 0x55, 0x1d, 0x25 };
static const uint8_t OID_SAN[] = { 0x55, 0x1d, 0x11 };
static const uint8_t OID_SKI[] = { 0x55, 0x1d, 0x0e };
static const uint8_t OID_AKI[] = { 0x55, 0x1d, 0x23 };
static const uint8_t OID_CRL_DP[] = { 0x55, 0x1d, 0x1f };
static const uint8_t OID_KP_SERVER_AUTH[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01 };
static const uint8_t OID_KP_CLIENT_AUTH[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02 };

int hsm_ca_cert_read(const uint8_t *der, size_t len, struct hsm_ca_cert_info *out)
{
    struct hsm_ca_der c = { der, len }, cert, tbs;
    struct hsm_ca_der_tlv t_cert, t_tbs, t, alg, sig, ver, issuer, validity, subject, spki, serial_tlv;
    struct hsm_ca_der_tlv *serial = &serial_tlv;

    memset(out, 0, sizeof(*out));
    if (hsm_ca_der_get_tag(&c, DER_SEQUENCE, &t_cert) != 0 || c.len != 0)
        return -1;
    cert = hsm_ca_der_in(&t_cert);
    if (hsm_ca_der_get_tag(&cert, DER_SEQUENCE, &t_tbs) != 0 || hsm_ca_der_get_tag(&cert, DER_SEQUENCE, &alg) != 0 ||
        hsm_ca_der_get_tag(&cert, DER_BIT_STRING, &sig) != 0 || cert.len != 0)
        return -1;
    tbs = hsm_ca_der_in(&t_tbs);
    int v3 = 0;
    if (hsm_ca_der_get_tag(&tbs, DER_CTX0, &ver) == 0) {
        struct hsm_ca_der vin = hsm_ca_der_in(&ver);
        struct hsm_ca_der_tlv vi;
        if (hsm_ca_der_get_tag(&vin, DER_INTEGER, &vi) != 0 || vin.len != 0 || vi.len != 1 || vi.val[0] > 2)
            return -1;
        v3 = vi.val[0] == 2;
    }
    if (hsm_ca_der_get_tag(&tbs, DER_INTEGER, serial) != 0 || serial->len == 0 ||
        hsm_ca_der_get_tag(&tbs, DER_SEQUENCE, &t) != 0 || hsm_ca_der_get_tag(&tbs, DER_SEQUENCE, &issuer) != 0 ||
        hsm_ca_der_get_tag(&tbs, DER_SEQUENCE, &validity) != 0 || hsm_ca_der_get_tag(&tbs, DER_SEQUENCE, &subject) != 0 ||
        hsm_ca_der_get_tag(&tbs, DER_SEQUENCE, &spki) != 0)
        return -1;
    out->serial = serial->val;
    out->serial_len = serial->len;
    out->name = subject.tlv;
    out->name_len = subject.tlv_len;
    out->spki = spki.tlv;
    out->spki_len = spki.tlv_len;
    /* issuerUniqueID [1] and subjectUniqueID [2] (primitive, IMPLICIT) are skipped. */
    while (hsm_ca_der_peek(&tbs) == 0x81 || hsm_ca_der_peek(&tbs) == 0x82)
        if (hsm_ca_der_get(&tbs, &t) != 0)
            return -1;
    if (tbs.len == 0)
        return 0;
    struct hsm_ca_der_tlv ext_wrap, exts;
    if (!v3 || hsm_ca_der_get_tag(&tbs, DER_CTX3, &ext_wrap) != 0 || tbs.len != 0)
        return -1;
    struct hsm_ca_der w = hsm_ca_der_in(&ext_wrap);
    if (hsm_ca_der_get_tag(&w, DER_SEQUENCE, &exts) != 0 || w.len != 0)
        return -1;
    struct hsm_ca_der e = hsm_ca_der_in(&exts);
    while (e.len != 0) {
        struct hsm_ca_der_tlv ext, oid, crit, val;
        if (hsm_ca_der_get_tag(&e, DER_SEQUENCE, &ext) != 0)
            return -1;
        struct hsm_ca_der x = hsm_ca_der_in(&ext);
        if (hsm_ca_der_get_tag(&x, DER_OID, &oid) != 0)
            return -1;
        if (hsm_ca_der_get_tag(&x, DER_BOOLEAN, &crit) == 0 && crit.len != 1)
            return -1;
        if (hsm_ca_der_get_tag(&x, DER_OCTET_STRING, &val) != 0 || x.len != 0)
            return -1;
        struct hsm_ca_der v = hsm_ca_der_in(&val);
        struct hsm_ca_der_tlv in;
        if (hsm_ca_der_oid_is(&oid, OID_BASIC_CONSTRAINTS, sizeof(OID_BASIC_CONSTRAINTS))) {
            if (hsm_ca_der_get_tag(&v, DER_SEQUENCE, &in) != 0 || v.len != 0)
                return -1;
            struct hsm_ca_der bc = hsm_ca_der_in(&in);
            struct hsm_ca_der_tlv ca;
            if (hsm_ca_der_get_tag(&bc, DER_BOOLEAN, &ca) == 0)
                out->is_ca = ca.len == 1 && ca.val[0] != 0;
        } else if (hsm_ca_der_oid_is(&oid, OID_KEY_USAGE, sizeof(OID_KEY_USAGE))) {
            if (hsm_ca_der_get_tag(&v, DER_BIT_STRING, &in) != 0 || v.len != 0 || in.len < 1)
                return -1;
            out->ku_present = 1;
            out->ku_cert_sign = in.len >= 2 && (in.val[1] & (0x80 >> 5));
            out->ku_crl_sign = in.len >= 2 && (in.val[1] & (0x80 >> 6));
        } else if (hsm_ca_der_oid_is(&oid, OID_SKI, sizeof(OID_SKI))) {
            if (hsm_ca_der_get_tag(&v, DER_OCTET_STRING, &in) != 0 || v.len != 0 || in.len == 0)
                return -1;
            out->skid = in.val;
            out->skid_len = in.len;
        }
    }
    return 0;
}

int hsm_ca_cert_serial(const uint8_t *der, size_t len, char *hex, size_t cap)
{
    struct hsm_ca_cert_info info;
    if (der == NULL || hex == NULL || cap == 0 || hsm_ca_cert_read(der, len, &info) != 0 || cap < info.serial_len * 2 + 1)
        return HSM_E_ARG;
    for (size_t i = 0; i < info.serial_len; i++)
        snprintf(hex + 2 * i, cap - 2 * i, "%02x", info.serial[i]);
    return 0;
}

/* RFC 5280 4.1.2.2: positive, at most 20 octets, unpredictable (we use 16 random octets). */
static int make_serial(uint8_t out[SERIAL_LEN])
{
    WC_RNG rng;
    int rc = -1;
    if (wc_InitRng(&rng) != 0)
        return -1;
    /* The top bit is cleared so the INTEGER is positive without a pad octet; a zero first octet
     * would make the encoding non-minimal, so draw again (1 in 128). */
    for (int tries = 0; tries < 64; tries++) {
        if (wc_RNG_GenerateBlock(&rng, out, SERIAL_LEN) != 0)
            break;
        out[0] &= 0x7f;
        if (out[0] != 0) {
            rc = 0;
            break;
        }
    }
    wc_FreeRng(&rng);
    return rc;
}

/* Appends Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE, extnValue } and frees value. */
static void ext_put(struct hsm_ca_der_buf *exts, const uint8_t *oid, size_t oid_len, int critical,
                    struct hsm_ca_der_buf *value)
{
    static const uint8_t true_ = 0xff;
    struct hsm_ca_der_buf e = { 0 };
    hsm_ca_der_put_tlv(&e, DER_OID, oid, oid_len);
    /* DER omits a DEFAULT value (X.690 11.5): "critical" appears only when TRUE. */
    if (critical)
        hsm_ca_der_put_tlv(&e, DER_BOOLEAN, &true_, 1);
    hsm_ca_der_put_wrapped(&e, DER_OCTET_STRING, value);
    hsm_ca_der_put_wrapped(exts, DER_SEQUENCE, &e);
}

/* keyUsage as a DER named BIT STRING: trailing zero bits dropped (X.690 11.2.2). */
static void ku_put(struct hsm_ca_der_buf *b, unsigned bits)
{
    uint8_t v[2] = { 0, 0 };
    for (unsigned i = 0; i < 8; i++)
        if (bits & (1u << i))
            v[1] |= (uint8_t)(0x80 >> i);
    while (v[1] && !(v[1] & (1u << v[0])))
        v[0]++;
    hsm_ca_der_put_tlv(b, DER_BIT_STRING, v, v[1] ? 2 : 1);
}

int hsm_ca_spki_same(const struct hsm_ca_spki *a, const struct hsm_ca_spki *b)
{
    return a->type == b->type && a->bits == b->bits && a->pub_len == b->pub_len &&
           memcmp(a->pub, b->pub, a->pub_len) == 0;
}

static int build_extensions(struct hsm_ca_der_buf *exts, const struct hsm_ca_spec *spec, const struct hsm_ca_spki *subj_key,
                            const uint8_t skid[20], const uint8_t *akid, size_t akid_len, int subject_empty,
                            char *err, size_t errlen)
{
    struct hsm_ca_der_buf v = { 0 }, in = { 0 };
    static const uint8_t true_ = 0xff;
    int rc;

    /* basicConstraints, always critical (RFC 5280 4.2.1.9: MUST for CAs; for an end entity it
     * stops a verifier that ignores the extension from treating the certificate as a CA). */
    if (spec->is_ca) {
        hsm_ca_der_put_tlv(&in, DER_BOOLEAN, &true_, 1);
        if (spec->path_len >= 0)
            hsm_ca_der_put_uint(&in, (uint64_t)spec->path_len);
    }
    hsm_ca_der_put_wrapped(&v, DER_SEQUENCE, &in);
    ext_put(exts, OID_BASIC_CONSTRAINTS, sizeof(OID_BASIC_CONSTRAINTS), 1, &v);

    /* keyUsage, critical (RFC 5280 4.2.1.3). A CA that also gets an EKU is meant to sign as an end
     * entity too, so it also gets digitalSignature. keyEncipherment serves TLS 1.2 RSA key transport. */
    unsigned ku;
    if (spec->is_ca)
        ku = KU_KEY_CERT_SIGN | KU_CRL_SIGN | (spec->eku ? KU_DIGITAL_SIGNATURE : 0);
    else
        ku = KU_DIGITAL_SIGNATURE |
             ((subj_key->type == HSM_KEY_RSA && (spec->eku & HSM_CA_EKU_SERVER_AUTH)) ? KU_KEY_ENCIPHERMENT : 0);
    ku_put(&v, ku);
    ext_put(exts, OID_KEY_USAGE, sizeof(OID_KEY_USAGE), 1, &v);

    /* extKeyUsage (RFC 5280 4.2.1.12), not critical, as most CAs do. */
    if (spec->eku) {
        if (spec->eku & HSM_CA_EKU_SERVER_AUTH)
            hsm_ca_der_put_tlv(&in, DER_OID, OID_KP_SERVER_AUTH, sizeof(OID_KP_SERVER_AUTH));
        if (spec->eku & HSM_CA_EKU_CLIENT_AUTH)
            hsm_ca_der_put_tlv(&in, DER_OID, OID_KP_CLIENT_AUTH, sizeof(OID_KP_CLIENT_AUTH));
        hsm_ca_der_put_wrapped(&v, DER_SEQUENCE, &in);
        ext_put(exts, OID_EXT_KEY_USAGE, sizeof(OID_EXT_KEY_USAGE), 0, &v);
    }

    /* subjectAltName: critical exactly when the subject is empty (RFC 5280 4.2.1.6). */
    if (spec->nsans > 0) {
        rc = hsm_ca_san_put(&v, spec->sans, spec->nsans, err, errlen);
        if (rc != 0)
            goto out;
        ext_put(exts, OID_SAN, sizeof(OID_SAN), subject_empty, &v);
    }

    /* subjectKeyIdentifier (RFC 5280 4.2.1.2) and authorityKeyIdentifier (4.2.1.1), both required
     * for conforming CA-issued certificates and what path builders match on. */
    hsm_ca_der_put_tlv(&v, DER_OCTET_STRING, skid, 20);
    ext_put(exts, OID_SKI, sizeof(OID_SKI), 0, &v);
    hsm_ca_der_put_tlv(&in, DER_IMPL0, akid, akid_len);
    hsm_ca_der_put_wrapped(&v, DER_SEQUENCE, &in);
    ext_put(exts, OID_AKI, sizeof(OID_AKI), 0, &v);

    /* cRLDistributionPoints (RFC 5280 4.2.1.13), not critical: SEQUENCE OF DistributionPoint {
     * distributionPoint [0] { fullName [0] GeneralNames { uniformResourceIdentifier [6] } } }. */
    if (spec->crl_url != NULL) {
        struct hsm_ca_der_buf dpn = { 0 }, dp = { 0 };
        hsm_ca_der_put_tlv(&in, 0x86, spec->crl_url, strlen(spec->crl_url));   /* [6] IA5String */
        hsm_ca_der_put_wrapped(&dpn, 0xa0, &in);                                /* fullName [0] */
        hsm_ca_der_put_wrapped(&dp, 0xa0, &dpn);                                /* distributionPoint [0] */
        hsm_ca_der_put_wrapped(&in, DER_SEQUENCE, &dp);                         /* DistributionPoint */
        hsm_ca_der_put_wrapped(&v, DER_SEQUENCE, &in);
        ext_put(exts, OID_CRL_DP, sizeof(OID_CRL_DP), 0, &v);
    }
    rc = 0;
out:
    hsm_ca_der_buf_free(&v);
    hsm_ca_der_buf_free(&in);
    return rc;
}

int hsm_ca_crl_url_ok(const char *url)
{
    size_t n = url != NULL ? strlen(url) : 0;
    if (n <= 7 || n > 1024 || strncmp(url, "http://", 7) != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return 0;
    return 1;
}

int hsm_ca_issue(struct hsm_key *ca_key, const uint8_t *ca_cert_der, size_t ca_cert_len,
                 const struct hsm_ca_spec *spec, uint8_t **der_out, size_t *der_len,
                 char *err, size_t errlen)
{
    uint8_t *subject_owned = NULL, *cert = NULL;
    size_t cert_len = 0;
    struct hsm_ca_der_buf tbs = { 0 }, body = { 0 }, tmp = { 0 }, exts = { 0 };
    struct hsm_ca_spki ca_pub, subj_pub;
    struct hsm_ca_cert_info issuer;
    uint8_t serial[SERIAL_LEN], skid[20], ca_keyid[20];
    const uint8_t *akid = NULL, *subject = NULL, *issuer_name = NULL;
    size_t akid_len = 0, subject_len = 0, issuer_name_len = 0;
    enum hsm_ca_sigalg alg;
    int rc = HSM_E_ARG, empty = 0;
    char why[200];

    if (der_out)
        *der_out = NULL;
    if (der_len)
        *der_len = 0;
    if (ca_key == NULL || spec == NULL || der_out == NULL || der_len == NULL ||
        (ca_cert_der == NULL) != (ca_cert_len == 0)) {
        hsm_ca_errf(err, errlen, "hsm_ca_issue: missing argument");
        return HSM_E_ARG;
    }
    if (spec->eku & ~(HSM_CA_EKU_SERVER_AUTH | HSM_CA_EKU_CLIENT_AUTH)) {
        hsm_ca_errf(err, errlen, "unknown extended key usage bits 0x%x", spec->eku);
        return HSM_E_ARG;
    }
    if (spec->nsans > 0 && spec->sans == NULL) {
        hsm_ca_errf(err, errlen, "hsm_ca_issue: nsans without sans");
        return HSM_E_ARG;
    }
    if (spec->crl_url != NULL && !hsm_ca_crl_url_ok(spec->crl_url)) {
        hsm_ca_errf(err, errlen, "hsm_ca_issue: the CRL URL must be http://, printable ASCII, at most 1024 characters");
        return HSM_E_ARG;
    }
    if (spec->is_ca && spec->path_len > 255) {
        hsm_ca_errf(err, errlen, "path length %d is out of range (0-255)", spec->path_len);
        return HSM_E_ARG;
    }
    rc = hsm_ca_sigalg_for_key(ca_key, &alg, err, errlen);
    if (rc != 0)
        goto out;

    /* The issuing key's public half, as the token reports it. */
    size_t ca_spki_len = 0;
    const uint8_t *ca_spki = hsm_key_spki(ca_key, &ca_spki_len);
    rc = hsm_ca_spki_inspect(ca_spki, ca_spki_len, &ca_pub, why, sizeof(why));
    if (rc != 0) {
        hsm_ca_errf(err, errlen, "the CA key's public half: %s", why);
        goto out;
    }
    rc = hsm_ca_spki_inspect(spec->spki_der, spec->spki_len, &subj_pub, why, sizeof(why));
    if (rc != 0) {
        hsm_ca_errf(err, errlen, "subject public key: %s", why);
        goto out;
    }

    /* Subject. */
    if (spec->subject != NULL) {
        rc = hsm_ca_subject_parse(spec->subject, &subject_owned, &subject_len, err, errlen);
        if (rc != 0)
            goto out;
        subject = subject_owned;
    } else {
        subject = spec->subject_der;
        subject_len = spec->subject_der_len;
    }
    rc = HSM_E_ARG;
    if (hsm_ca_name_check(subject, subject_len, 0, &empty) != 0) {
        hsm_ca_errf(err, errlen, "the subject is not a DER Name");
        goto out;
    }
    if (hsm_ca_name_check(subject, subject_len, 1, &empty) != 0) {
        hsm_ca_errf(err, errlen, "the subject has a value that is not printable text "
                                 "(UTF8String, PrintableString or IA5String without control characters)");
        goto out;
    }
    if (empty && (spec->is_ca || spec->nsans == 0)) {
        hsm_ca_errf(err, errlen, "the subject is empty; %s (RFC 5280 4.1.2.6)",
                    spec->is_ca ? "a CA needs a subject" : "give a subject or a subjectAltName");
        goto out;
    }
    if (hsm_ca_spki_keyid(&subj_pub, skid) != 0) {
        hsm_ca_errf(err, errlen, "hashing the public key failed");
        goto out;
    }

    /* Issuer: the CA certificate's subject and key identifier, or ourselves. */
    if (ca_cert_der != NULL) {
        struct hsm_ca_spki cert_pub;
        if (hsm_ca_cert_read(ca_cert_der, ca_cert_len, &issuer) != 0) {
            hsm_ca_errf(err, errlen, "the CA certificate is not a DER X.509 certificate");
            goto out;
        }
        /* RFC 5280 6.1.4 (k) and (n): only a CA certificate with keyCertSign may issue. */
        if (!issuer.is_ca || (issuer.ku_present && !issuer.ku_cert_sign)) {
            hsm_ca_errf(err, errlen, "the CA certificate is not a CA (%s)",
                        !issuer.is_ca ? "basicConstraints cA is not TRUE" : "keyUsage lacks keyCertSign");
            goto out;
        }
        if (hsm_ca_spki_inspect(issuer.spki, issuer.spki_len, &cert_pub, why, sizeof(why)) != 0 ||
            !hsm_ca_spki_same(&cert_pub, &ca_pub)) {
            hsm_ca_errf(err, errlen, "the CA key %s does not hold the CA certificate's public key", hsm_key_uri(ca_key));
            goto out;
        }
        issuer_name = issuer.name;
        issuer_name_len = issuer.name_len;
        if (issuer.skid != NULL) {
            akid = issuer.skid;
            akid_len = issuer.skid_len;
        } else {
            if (hsm_ca_spki_keyid(&ca_pub, ca_keyid) != 0)
                goto out;
            akid = ca_keyid;
            akid_len = sizeof(ca_keyid);
        }
    } else {
        if (!hsm_ca_spki_same(&subj_pub, &ca_pub)) {
            hsm_ca_errf(err, errlen, "a self-signed certificate must certify the signing key itself");
            goto out;
        }
        issuer_name = subject;
        issuer_name_len = subject_len;
        akid = skid;
        akid_len = sizeof(skid);
    }

    if (spec->not_before >= spec->not_after) {
        hsm_ca_errf(err, errlen, "notBefore must be earlier than notAfter");
        goto out;
    }
    if (make_serial(serial) != 0) {
        hsm_ca_errf(err, errlen, "the random number generator failed");
        goto out;
    }

    /* TBSCertificate (RFC 5280 4.1). */
    hsm_ca_der_put_uint(&tmp, 2);                                  /* v3 */
    hsm_ca_der_put_wrapped(&body, DER_CTX0, &tmp);
    hsm_ca_der_put_tlv(&body, DER_INTEGER, serial, sizeof(serial));
    hsm_ca_sigalg_put(&body, alg);                                 /* must equal the outer one (4.1.2.3) */
    hsm_ca_der_put(&body, issuer_name, issuer_name_len);
    if (hsm_ca_der_put_time(&tmp, spec->not_before) != 0 || hsm_ca_der_put_time(&tmp, spec->not_after) != 0) {
        hsm_ca_errf(err, errlen, "the validity period must lie within the years 1950-9999");
        goto out;
    }
    hsm_ca_der_put_wrapped(&body, DER_SEQUENCE, &tmp);
    hsm_ca_der_put(&body, subject, subject_len);
    hsm_ca_der_put(&body, spec->spki_der, spec->spki_len);
    rc = build_extensions(&tmp, spec, &subj_pub, skid, akid, akid_len, empty, err, errlen);
    if (rc != 0)
        goto out;
    hsm_ca_der_put_wrapped(&exts, DER_SEQUENCE, &tmp);
    hsm_ca_der_put_wrapped(&body, DER_CTX3, &exts);
    hsm_ca_der_put_wrapped(&tbs, DER_SEQUENCE, &body);
    if (tbs.failed) {
        hsm_ca_errf(err, errlen, "out of memory");
        rc = HSM_E_NOMEM;
        goto out;
    }

    rc = hsm_ca_sign_wrap(ca_key, alg, tbs.p, tbs.len, &cert, &cert_len, err, errlen);
    if (rc != 0)
        goto out;

    /* What we cannot read back we must not hand out: parse it with wolfSSL as the gateway will. */
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer(cert, (int)cert_len, WOLFSSL_FILETYPE_ASN1);
    if (x == NULL) {
        hsm_ca_errf(err, errlen, "internal: wolfSSL cannot parse the issued certificate");
        rc = HSM_E_ARG;
        goto out;
    }
    wolfSSL_X509_free(x);

    *der_out = cert;
    *der_len = cert_len;
    cert = NULL;
    rc = 0;
out:
    free(subject_owned);
    subject_owned = NULL;
    free(cert);
    cert = NULL;
    hsm_ca_der_buf_free(&tbs);
    hsm_ca_der_buf_free(&body);
    hsm_ca_der_buf_free(&tmp);
    hsm_ca_der_buf_free(&exts);
    return rc;
}
