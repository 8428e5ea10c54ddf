/* ca.h - a certificate authority whose private key lives in the HSM.
 *
 * Issues X.509 v3 certificates (RFC 5280) and PKCS#10 requests (RFC 2986) whose signatures are made
 * by hsm_sign; reads and verifies PKCS#10 requests; converts between DER and PEM (RFC 7468).
 * The TBSCertificate is encoded here (DER), hashed here, and only the hash (ECDSA) or the DigestInfo
 * (RSA PKCS#1 v1.5) goes to the token. Every signature is verified with the public key before the
 * certificate is returned, so a faulty token never yields a published bad (or key-leaking) signature.
 *
 * Signature algorithms follow the issuing key: ecdsa-with-SHA256 for P-256, ecdsa-with-SHA384 for
 * P-384, sha256WithRSAEncryption for RSA 2048-4096 (RFC 5758 3.2, RFC 4055 5).
 *
 * Threads: signing functions run on a thread that called hsm_thread_attach for the key's context.
 * Return convention: 0 on success, a negative enum hsm_err on failure (HSM_E_ARG for input that is
 * malformed or refused, HSM_E_KEYTYPE for an unsupported key, HSM_E_SIGN when a signature does not
 * verify, or whatever hsm_sign returned); err gets a one-line message. Never asserts on input.
 */
#ifndef HSMGATE_PKCS11_CA_H
#define HSMGATE_PKCS11_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "pkcs11/hsm.h"

/* Extended key usages (RFC 5280 4.2.1.12); a bit set. 0: no extKeyUsage extension. */
#define HSM_CA_EKU_SERVER_AUTH 0x1u   /* id-kp-serverAuth */
#define HSM_CA_EKU_CLIENT_AUTH 0x2u   /* id-kp-clientAuth */

/* Most subjectAltName entries a certificate may carry. */
#define HSM_CA_MAX_SANS 64

/* What to certify. The caller owns every pointer; hsm_ca_issue only reads them. */
struct hsm_ca_spec {
    /* Subject as "/CN=x/O=y" (see hsm_ca_subject_parse), or NULL to use subject_der as is (a DER
     * Name, e.g. taken from a CSR; every value must be a UTF8String, PrintableString or IA5String
     * without control characters, since names reach logs and identity headers).
     * An empty subject is allowed for an end entity only when SANs are given; the SAN extension
     * is then critical (RFC 5280 4.1.2.6, 4.2.1.6). */
    const char *subject;
    const uint8_t *subject_der;
    size_t subject_der_len;
    /* subjectAltName entries: "DNS:host.example", "IP:192.0.2.1", "IP:2001:db8::1",
     * "URI:spiffe://example/x", "email:a@example.com" (prefixes case-insensitive). */
    const char *const *sans;
    size_t nsans;
    time_t not_before;          /* RFC 5280 4.1.2.5; not_before < not_after, years 1950-9999 */
    time_t not_after;
    int is_ca;                  /* basicConstraints cA (always critical, RFC 5280 4.2.1.9) */
    int path_len;               /* pathLenConstraint when is_ca; < 0 for none */
    unsigned eku;               /* HSM_CA_EKU_* */
    const uint8_t *spki_der;    /* the subject's public key, DER SubjectPublicKeyInfo */
    size_t spki_len;
    /* cRLDistributionPoints (RFC 5280 4.2.1.13): one fullName URI where relying parties fetch the
     * issuer's CRL ("http://gw.example:9440/crl"), printable ASCII without spaces; NULL: none. */
    const char *crl_url;
};

/* Issues a certificate for spec, signed by ca_key.
 * ca_cert_der: the issuer's certificate (DER), whose subject becomes the issuer name byte for byte
 * and whose subjectKeyIdentifier becomes the authorityKeyIdentifier; it must be a CA
 * (basicConstraints cA, keyCertSign if keyUsage is present) and hold ca_key's public key.
 * NULL (len 0) for a self-signed certificate: spec->spki_der must then be ca_key's public key.
 * Extensions: basicConstraints (critical), keyUsage (critical: keyCertSign+cRLSign for a CA, plus
 * digitalSignature when it also has an EKU; digitalSignature for an end entity, plus keyEncipherment
 * for an RSA key with serverAuth), extKeyUsage, subjectAltName, subjectKeyIdentifier (SHA-1 of the
 * key, RFC 5280 4.2.1.2 method 1), authorityKeyIdentifier, cRLDistributionPoints when crl_url is set. Serial: 16 random bytes, positive, nonzero
 * (RFC 5280 4.1.2.2). Accepted subject keys: EC P-256/P-384, RSA 2048-4096 bits.
 * On success *der_out (malloc'd, the caller frees) holds the certificate and *der_len its size. */
/* Whether url may be a certificate's cRLDistributionPoints URI: http:// (RFC 5280 4.2.1.13: an HTTP
 * URI of a DER CRL; https would make fetching the CRL depend on checking the revocation of the server
 * that serves it), printable ASCII without spaces, at most 1024 characters. */
int hsm_ca_crl_url_ok(const char *url);

int hsm_ca_issue(struct hsm_key *ca_key, const uint8_t *ca_cert_der, size_t ca_cert_len,
                 const struct hsm_ca_spec *spec, uint8_t **der_out, size_t *der_len,
                 char *err, size_t errlen) HSM_WUR;

/* A PKCS#10 request's useful parts, copied out (the caller clears with hsm_ca_csr_clear). */
struct hsm_ca_csr {
    uint8_t *subject_der;       /* DER Name, possibly the empty SEQUENCE */
    size_t subject_len;
    uint8_t *spki_der;          /* DER SubjectPublicKeyInfo */
    size_t spki_len;
    int requests_ca;            /* its extensionRequest asks for basicConstraints cA TRUE (the request is
                                 * still parsed: refusing it is the caller's policy) */
};

/* Reads a CSR in PEM ("CERTIFICATE REQUEST" or "NEW CERTIFICATE REQUEST") or DER, checks its
 * structure (RFC 2986 4), that its key is EC P-256/P-384 or RSA 2048-4096 (HSM_E_KEYTYPE
 * otherwise) and that its self-signature verifies (HSM_E_SIGN otherwise). Requested extensions
 * are ignored: the CA decides what to certify. On failure *out is left zeroed. */
int hsm_ca_csr_parse(const uint8_t *in, size_t len, struct hsm_ca_csr *out,
                     char *err, size_t errlen) HSM_WUR;
/* Frees what hsm_ca_csr_parse filled in and zeroes it. Accepts a zeroed struct. */
void hsm_ca_csr_clear(struct hsm_ca_csr *csr);

/* Makes a CSR for an HSM-held key (to have another CA certify it), signed in the HSM.
 * subject as in hsm_ca_subject_parse; sans (may be NULL when nsans is 0) go into an
 * extensionRequest attribute (RFC 2985 5.4.2). *der_out is malloc'd; the caller frees it. */
int hsm_ca_csr_make(struct hsm_key *key, const char *subject, const char *const *sans, size_t nsans,
                    uint8_t **der_out, size_t *der_len, char *err, size_t errlen) HSM_WUR;

/* Parses "/CN=x/O=y/OU=z/C=CH/L=city/ST=state/emailAddress=a@b" (openssl's -subj form) into a DER
 * Name (RFC 5280 4.1.2.4), RDNs in the order written. Attributes: CN, O, OU, C, L, ST, emailAddress,
 * DC, serialNumber. "\/" and "\\" escape a slash and a backslash. Values must be non-empty UTF-8
 * without control characters, within RFC 5280's upper bounds; C is two letters (PrintableString),
 * emailAddress is IA5String, everything else UTF8String. *der_out is malloc'd. */
int hsm_ca_subject_parse(const char *text, uint8_t **der_out, size_t *der_len,
                         char *err, size_t errlen) HSM_WUR;

/* The subject profile of certificates issued over the admin API (RFC 5280 4.1.2.4, 4.1.2.6): der is
 * one Name of at most HSM_CA_SUBJECT_MAX_RDNS RDNs and HSM_CA_SUBJECT_MAX_DER bytes, whose attributes
 * are the ones hsm_ca_subject_parse knows, each a printable text value (UTF8String, PrintableString or
 * IA5String without control characters) within RFC 5280's upper bounds, with at least one non-empty
 * commonName. The most specific (last) commonName goes to cn (truncated to cap, NUL-terminated).
 * Returns 0, or HSM_E_ARG with the reason in err. */
#define HSM_CA_SUBJECT_MAX_RDNS 16
#define HSM_CA_SUBJECT_MAX_DER 1024
int hsm_ca_subject_check(const uint8_t *der, size_t len, char *cn, size_t cap, char *err, size_t errlen) HSM_WUR;

/* Writes a DER Name as "/CN=x/O=y" into out (truncated to cap, always NUL-terminated);
 * unknown attribute types print as dotted OIDs. Returns 0, or HSM_E_ARG if der is not a Name. */
int hsm_ca_name_format(const uint8_t *der, size_t len, char *out, size_t cap) HSM_WUR;

/* Reads a certificate's serial number as lower-case hex (no separators) into hex.
 * Returns 0, or HSM_E_ARG if der is not a certificate or hex is too small. */
int hsm_ca_cert_serial(const uint8_t *der, size_t len, char *hex, size_t cap) HSM_WUR;

/* --- CRLs (ca_crl.c) --- */

/* One revoked certificate (RFC 5280 5.1.2.6). */
struct hsm_ca_crl_entry {
    const uint8_t *serial;      /* the serial's DER INTEGER content octets (as certificates carry it) */
    size_t serial_len;          /* 1..20 (RFC 5280 4.1.2.2; 32 tolerated, as the policy store does) */
    time_t revoked_at;          /* revocationDate */
    int reason;                 /* CRLReason (RFC 5280 5.3.1); 0 (unspecified): no reasonCode extension */
};

/* What a CRL says besides the issuer. */
struct hsm_ca_crl_spec {
    time_t this_update, next_update;    /* this_update < next_update, years 1950-9999 */
    const uint8_t *number;      /* cRLNumber (RFC 5280 5.2.3) as an unsigned big-endian number, 1..20 octets
                                 * (leading zero octets allowed; at most 159 bits once they are dropped) */
    size_t number_len;
    const struct hsm_ca_crl_entry *entries;     /* may be NULL when nentries is 0 */
    size_t nentries;
};

/* Makes a v2 CRL (RFC 5280 5.1) of the CA whose certificate is ca_cert_der, signed by ca_key in the
 * HSM with the algorithm its certificates get (ECDSA or RSA PKCS#1 v1.5, as ca.h says). The issuer is
 * the CA certificate's subject byte for byte; crlExtensions are authorityKeyIdentifier (the CA's
 * subjectKeyIdentifier, or the SHA-1 of its key) and cRLNumber, both non-critical; entries carry a
 * reasonCode extension unless their reason is unspecified; revokedCertificates is absent when there
 * are no entries (5.1.2.6). The CA certificate must be a CA whose keyUsage (if any) has cRLSign
 * (4.2.1.3) and hold ca_key's public key. The signature is verified before the CRL is returned.
 * *der_out (malloc'd, the caller frees) gets the DER CertificateList. */
int hsm_ca_crl_make(struct hsm_key *ca_key, const uint8_t *ca_cert_der, size_t ca_cert_len,
                    const struct hsm_ca_crl_spec *spec, uint8_t **der_out, size_t *der_len,
                    char *err, size_t errlen) HSM_WUR;

/* Checks, before any signature, that ca_cert_der can serve as ca_key's certificate for both
 * hsm_ca_issue and hsm_ca_crl_make: a CA (basicConstraints cA) whose keyUsage, if present, has
 * keyCertSign and cRLSign, holding ca_key's public key, and a key type we sign with. 0, or HSM_E_ARG /
 * HSM_E_KEYTYPE with the reason. */
int hsm_ca_cert_check(struct hsm_key *ca_key, const uint8_t *ca_cert_der, size_t ca_cert_len,
                      char *err, size_t errlen) HSM_WUR;

/* PEM (RFC 7468): "-----BEGIN <label>-----", base64 in 64-character lines, "-----END <label>-----\n".
 * *pem_out is malloc'd and NUL-terminated; *pem_len excludes the NUL. */
int hsm_ca_pem_encode(const char *label, const uint8_t *der, size_t len,
                      char **pem_out, size_t *pem_len) HSM_WUR;

/* Decodes the first PEM block whose label is one of labels (a NULL-terminated list), or takes in
 * as DER when it starts with a SEQUENCE tag and is exactly one DER value. *der_out is malloc'd. */
int hsm_ca_pem_decode(const uint8_t *in, size_t len, const char *const *labels,
                      uint8_t **der_out, size_t *der_len, char *err, size_t errlen) HSM_WUR;

#endif
