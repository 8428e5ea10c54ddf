/* ca_csr.c - PKCS#10 certification requests (RFC 2986): reading and verifying one, and making one
 * for an HSM-held key. */
#include "pkcs11/ca.h"
#include "pkcs11/ca_int.h"

#include <stdlib.h>
#include <string.h>

/* RFC 2985 5.4.2 */
static const uint8_t OID_EXTENSION_REQUEST[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e };
static const uint8_t OID_SAN[] = { 0x55, 0x1d, 0x11 };
static const uint8_t OID_BASIC_CONSTRAINTS[] = { 0x55, 0x1d, 0x13 };

void hsm_ca_csr_clear(struct hsm_ca_csr *csr)
{
    if (csr == NULL)
        return;
    free(csr->subject_der);
    csr->subject_der = NULL;
    free(csr->spki_der);
    csr->spki_der = NULL;
    csr->subject_len = csr->spki_len = 0;
}

/* Whether the attributes ([0] IMPLICIT SET OF Attribute, RFC 2986 4.1) hold an extensionRequest
 * (RFC 2985 5.4.2) asking for basicConstraints cA TRUE. The CA ignores requested extensions, but a
 * request for a CA certificate is refused rather than silently turned into an end entity: the
 * requester meant something else. -1 when an extensionRequest is malformed. */
static int attrs_request_ca(const struct hsm_ca_der_tlv *attrs, int *ca)
{
    struct hsm_ca_der set = hsm_ca_der_in(attrs);
    *ca = 0;
    while (set.len != 0) {
        struct hsm_ca_der_tlv attr, type, values, exts;
        if (hsm_ca_der_get_tag(&set, DER_SEQUENCE, &attr) != 0)
            return -1;
        struct hsm_ca_der a = hsm_ca_der_in(&attr);
        if (hsm_ca_der_get_tag(&a, DER_OID, &type) != 0 || hsm_ca_der_get_tag(&a, DER_SET, &values) != 0 || a.len != 0)
            return -1;
        if (!hsm_ca_der_oid_is(&type, OID_EXTENSION_REQUEST, sizeof(OID_EXTENSION_REQUEST)))
            continue;
        struct hsm_ca_der v = hsm_ca_der_in(&values);
        if (hsm_ca_der_get_tag(&v, DER_SEQUENCE, &exts) != 0 || v.len != 0)
            return -1;
        struct hsm_ca_der e = hsm_ca_der_in(&exts);
        while (e.len != 0) {
            struct hsm_ca_der_tlv ext, oid, crit, val, bc, flag;
            if (hsm_ca_der_get_tag(&e, DER_SEQUENCE, &ext) != 0)
                return -1;
            struct hsm_ca_der x = hsm_ca_der_in(&ext);
            if (hsm_ca_der_get_tag(&x, DER_OID, &oid) != 0)
                return -1;
            if (hsm_ca_der_get_tag(&x, DER_BOOLEAN, &crit) == 0 && crit.len != 1)
                return -1;
            if (hsm_ca_der_get_tag(&x, DER_OCTET_STRING, &val) != 0 || x.len != 0)
                return -1;
            if (!hsm_ca_der_oid_is(&oid, OID_BASIC_CONSTRAINTS, sizeof(OID_BASIC_CONSTRAINTS)))
                continue;
            struct hsm_ca_der b = hsm_ca_der_in(&val);
            if (hsm_ca_der_get_tag(&b, DER_SEQUENCE, &bc) != 0 || b.len != 0)
                return -1;
            struct hsm_ca_der in = hsm_ca_der_in(&bc);
            if (hsm_ca_der_get_tag(&in, DER_BOOLEAN, &flag) == 0 && flag.len == 1 && flag.val[0] != 0)
                *ca = 1;
        }
    }
    return 0;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d != NULL && n)
        memcpy(d, p, n);
    return d;
}

int hsm_ca_csr_parse(const uint8_t *in, size_t len, struct hsm_ca_csr *out, char *err, size_t errlen)
{
    static const char *const labels[] = { "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST", NULL };
    uint8_t *der = NULL;
    size_t der_len = 0;
    struct hsm_ca_spki key;
    int rc, empty = 0;
    char why[200];

    if (out == NULL)
        return HSM_E_ARG;
    memset(out, 0, sizeof(*out));
    rc = hsm_ca_pem_decode(in, len, labels, &der, &der_len, why, sizeof(why));
    if (rc != 0) {
        hsm_ca_errf(err, errlen, "CSR: %s", why);
        goto out;
    }

    /* CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature } */
    struct hsm_ca_der c = { der, der_len }, req, info;
    struct hsm_ca_der_tlv t_req, t_info, t_alg, t_sig, ver, subject, spki, attrs = { 0 };
    rc = HSM_E_ARG;
    if (hsm_ca_der_get_tag(&c, DER_SEQUENCE, &t_req) != 0 || c.len != 0) {
        hsm_ca_errf(err, errlen, "CSR: not a PKCS#10 request");
        goto out;
    }
    req = hsm_ca_der_in(&t_req);
    if (hsm_ca_der_get_tag(&req, DER_SEQUENCE, &t_info) != 0 || hsm_ca_der_get_tag(&req, DER_SEQUENCE, &t_alg) != 0 ||
        hsm_ca_der_get_tag(&req, DER_BIT_STRING, &t_sig) != 0 || req.len != 0) {
        hsm_ca_errf(err, errlen, "CSR: not a PKCS#10 request (expected info, algorithm, signature)");
        goto out;
    }
    /* CertificationRequestInfo ::= SEQUENCE { version 0, subject, subjectPKInfo, attributes [0] } */
    info = hsm_ca_der_in(&t_info);
    if (hsm_ca_der_get_tag(&info, DER_INTEGER, &ver) != 0 || ver.len != 1 || ver.val[0] != 0) {
        hsm_ca_errf(err, errlen, "CSR: unsupported version (only v1 = 0 exists)");
        goto out;
    }
    if (hsm_ca_der_get_tag(&info, DER_SEQUENCE, &subject) != 0 || hsm_ca_der_get_tag(&info, DER_SEQUENCE, &spki) != 0) {
        hsm_ca_errf(err, errlen, "CSR: malformed subject or public key");
        goto out;
    }
    /* RFC 2986 makes attributes mandatory, but some encoders drop an empty set; accept both. */
    int requests_ca = 0;
    if (info.len != 0 && (hsm_ca_der_get_tag(&info, DER_CTX0, &attrs) != 0 || info.len != 0)) {
        hsm_ca_errf(err, errlen, "CSR: unexpected data after the public key");
        goto out;
    }
    if (attrs.tag == DER_CTX0 && attrs_request_ca(&attrs, &requests_ca) != 0) {
        hsm_ca_errf(err, errlen, "CSR: malformed attributes (extensionRequest)");
        goto out;
    }
    if (hsm_ca_name_check(subject.tlv, subject.tlv_len, 0, &empty) != 0) {
        hsm_ca_errf(err, errlen, "CSR: malformed subject name");
        goto out;
    }
    rc = hsm_ca_spki_inspect(spki.tlv, spki.tlv_len, &key, why, sizeof(why));
    if (rc != 0) {
        hsm_ca_errf(err, errlen, "CSR: %s", why);
        goto out;
    }

    /* Proof of possession (RFC 2986 3): the request is signed by the key it carries. */
    rc = HSM_E_SIGN;
    enum hsm_ca_sigalg alg = hsm_ca_sigalg_parse(&t_alg);
    if (alg == HSM_CA_SIGALG_NONE) {
        hsm_ca_errf(err, errlen, "CSR: unsupported signature algorithm (accepted: ECDSA or RSA PKCS#1 v1.5 with SHA-2)");
        goto out;
    }
    int alg_is_ec = alg == HSM_CA_SIGALG_ECDSA_SHA256 || alg == HSM_CA_SIGALG_ECDSA_SHA384 || alg == HSM_CA_SIGALG_ECDSA_SHA512;
    if (alg_is_ec != (key.type == HSM_KEY_EC)) {
        hsm_ca_errf(err, errlen, "CSR: the signature algorithm does not fit the key type");
        goto out;
    }
    if (t_sig.len < 2 || t_sig.val[0] != 0 ||
        hsm_ca_sig_verify(spki.tlv, spki.tlv_len, alg, t_info.tlv, t_info.tlv_len, t_sig.val + 1, t_sig.len - 1) != 0) {
        hsm_ca_errf(err, errlen, "CSR: the signature does not verify (corrupted, or not signed by its own key)");
        goto out;
    }

    rc = HSM_E_NOMEM;
    out->subject_der = dup_bytes(subject.tlv, subject.tlv_len);
    out->spki_der = dup_bytes(spki.tlv, spki.tlv_len);
    if (out->subject_der == NULL || out->spki_der == NULL) {
        hsm_ca_csr_clear(out);
        hsm_ca_errf(err, errlen, "out of memory");
        goto out;
    }
    out->subject_len = subject.tlv_len;
    out->spki_len = spki.tlv_len;
    out->requests_ca = requests_ca;
    rc = 0;
out:
    free(der);
    der = NULL;
    return rc;
}

int hsm_ca_csr_make(struct hsm_key *key, const char *subject, const char *const *sans, size_t nsans,
                    uint8_t **der_out, size_t *der_len, char *err, size_t errlen)
{
    uint8_t *name = NULL;
    size_t name_len = 0, spki_len = 0;
    struct hsm_ca_der_buf info = { 0 }, body = { 0 }, a = { 0 }, b = { 0 };
    struct hsm_ca_spki pub;
    enum hsm_ca_sigalg alg;
    int rc;
    char why[200];

    if (der_out)
        *der_out = NULL;
    if (der_len)
        *der_len = 0;
    if (key == NULL || der_out == NULL || der_len == NULL || (nsans > 0 && sans == NULL)) {
        hsm_ca_errf(err, errlen, "hsm_ca_csr_make: missing argument");
        return HSM_E_ARG;
    }
    rc = hsm_ca_sigalg_for_key(key, &alg, err, errlen);
    if (rc != 0)
        goto out;
    const uint8_t *spki = hsm_key_spki(key, &spki_len);
    rc = hsm_ca_spki_inspect(spki, spki_len, &pub, why, sizeof(why));
    if (rc != 0) {
        hsm_ca_errf(err, errlen, "the key's public half: %s", why);
        goto out;
    }
    rc = hsm_ca_subject_parse(subject, &name, &name_len, err, errlen);
    if (rc != 0)
        goto out;

    hsm_ca_der_put_uint(&body, 0);
    hsm_ca_der_put(&body, name, name_len);
    hsm_ca_der_put(&body, spki, spki_len);
    if (nsans > 0) {
        /* attributes [0] { Attribute { extensionRequest, SET { Extensions { SAN } } } } */
        rc = hsm_ca_san_put(&a, sans, nsans, err, errlen);
        if (rc != 0)
            goto out;
        hsm_ca_der_put_tlv(&b, DER_OID, OID_SAN, sizeof(OID_SAN));
        hsm_ca_der_put_wrapped(&b, DER_OCTET_STRING, &a);
        hsm_ca_der_put_wrapped(&a, DER_SEQUENCE, &b);          /* Extension */
        hsm_ca_der_put_wrapped(&b, DER_SEQUENCE, &a);          /* Extensions */
        hsm_ca_der_put_wrapped(&a, DER_SET, &b);               /* attribute values */
        hsm_ca_der_put_tlv(&b, DER_OID, OID_EXTENSION_REQUEST, sizeof(OID_EXTENSION_REQUEST));
        hsm_ca_der_put(&b, a.p, a.len);
        if (a.failed)
            b.failed = 1;
        hsm_ca_der_buf_free(&a);
        hsm_ca_der_put_wrapped(&a, DER_SEQUENCE, &b);          /* Attribute */
        hsm_ca_der_put_wrapped(&body, DER_CTX0, &a);
    } else {
        hsm_ca_der_put_tlv(&body, DER_CTX0, NULL, 0);
    }
    hsm_ca_der_put_wrapped(&info, DER_SEQUENCE, &body);
    if (info.failed) {
        hsm_ca_errf(err, errlen, "out of memory");
        rc = HSM_E_NOMEM;
        goto out;
    }
    rc = hsm_ca_sign_wrap(key, alg, info.p, info.len, der_out, der_len, err, errlen);
out:
    free(name);
    name = NULL;
    hsm_ca_der_buf_free(&info);
    hsm_ca_der_buf_free(&body);
    hsm_ca_der_buf_free(&a);
    hsm_ca_der_buf_free(&b);
    return rc;
}
