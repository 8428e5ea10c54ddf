/* ca_int.h - private to the CA code (ca*.c): a DER writer and reader, key and signature helpers.
 * Other modules use pkcs11/ca.h.
 *
 * We encode certificates ourselves instead of with wolfSSL's Cert API because wolfSSL 5.7.2's encoder
 * never marks basicConstraints critical (RFC 5280 4.2.1.9 requires it for CAs), reorders subject
 * RDNs, and takes raw names as NUL-terminated strings. The reader is strict DER: definite minimal
 * lengths, one-byte tags, nothing past the end of a value.
 */
#ifndef HSMGATE_PKCS11_CA_INT_H
#define HSMGATE_PKCS11_CA_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "pkcs11/hsm.h"

enum {
    DER_BOOLEAN = 0x01, DER_INTEGER = 0x02, DER_BIT_STRING = 0x03, DER_OCTET_STRING = 0x04,
    DER_NULL = 0x05, DER_OID = 0x06, DER_UTF8 = 0x0c, DER_PRINTABLE = 0x13, DER_T61 = 0x14,
    DER_IA5 = 0x16, DER_UTCTIME = 0x17, DER_GENTIME = 0x18, DER_UNIVERSAL = 0x1c, DER_BMP = 0x1e,
    DER_SEQUENCE = 0x30, DER_SET = 0x31,
    DER_CTX0 = 0xa0, DER_CTX1 = 0xa1, DER_CTX2 = 0xa2, DER_CTX3 = 0xa3,   /* [n] constructed */
    DER_IMPL0 = 0x80,                                                     /* [0] primitive */
};

/* --- writer: a growing buffer with a sticky failure flag, checked once at the end --- */
struct hsm_ca_der_buf {
    uint8_t *p;
    size_t len, cap;
    int failed;         /* out of memory or a value too large; later writes are ignored */
};
void hsm_ca_der_buf_free(struct hsm_ca_der_buf *b);
void hsm_ca_der_put(struct hsm_ca_der_buf *b, const void *src, size_t n);
void hsm_ca_der_put_tlv(struct hsm_ca_der_buf *b, uint8_t tag, const void *val, size_t n);
/* Appends inner as the value of a tag-tagged TLV, then frees inner (its failure carries over). */
void hsm_ca_der_put_wrapped(struct hsm_ca_der_buf *b, uint8_t tag, struct hsm_ca_der_buf *inner);
void hsm_ca_der_put_uint(struct hsm_ca_der_buf *b, uint64_t v);     /* INTEGER, minimal encoding */
/* UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5); -1 outside 1950-9999. */
int hsm_ca_der_put_time(struct hsm_ca_der_buf *b, time_t t) HSM_WUR;
/* Hands the bytes over: *out gets them (caller frees), b is left empty. -1 if b failed. */
int hsm_ca_der_buf_take(struct hsm_ca_der_buf *b, uint8_t **out, size_t *len) HSM_WUR;

/* --- reader --- */
struct hsm_ca_der {                /* the bytes not read yet */
    const uint8_t *p;
    size_t len;
};
struct hsm_ca_der_tlv {
    uint8_t tag;
    const uint8_t *tlv;         /* the whole encoding, header included */
    size_t tlv_len;
    const uint8_t *val;         /* the value */
    size_t len;
};
/* Reads the next TLV; -1 when there is none or it is not valid DER. */
int hsm_ca_der_get(struct hsm_ca_der *c, struct hsm_ca_der_tlv *t) HSM_WUR;
/* Same, and -1 unless its tag is tag. */
int hsm_ca_der_get_tag(struct hsm_ca_der *c, uint8_t tag, struct hsm_ca_der_tlv *t) HSM_WUR;
/* The next tag, or -1 at the end. */
int hsm_ca_der_peek(const struct hsm_ca_der *c);
/* A cursor over a TLV's value. */
struct hsm_ca_der hsm_ca_der_in(const struct hsm_ca_der_tlv *t);
/* 1 if t is an OID whose content bytes are oid. */
int hsm_ca_der_oid_is(const struct hsm_ca_der_tlv *t, const uint8_t *oid, size_t oid_len);

/* --- keys, algorithms, signatures (ca_sig.c) --- */
enum hsm_ca_sigalg {
    HSM_CA_SIGALG_NONE = 0,
    HSM_CA_SIGALG_ECDSA_SHA256, HSM_CA_SIGALG_ECDSA_SHA384, HSM_CA_SIGALG_ECDSA_SHA512,
    HSM_CA_SIGALG_RSA_SHA256, HSM_CA_SIGALG_RSA_SHA384, HSM_CA_SIGALG_RSA_SHA512,
};

struct hsm_ca_spki {
    enum hsm_key_type type;
    unsigned bits;              /* curve size or modulus size */
    const uint8_t *pub;         /* the subjectPublicKey BIT STRING's bits, inside the caller's SPKI */
    size_t pub_len;
};

/* Checks that spki is exactly one SubjectPublicKeyInfo holding a valid EC P-256/P-384 point or an
 * RSA 2048-4096 key (HSM_E_KEYTYPE otherwise, HSM_E_ARG when malformed). */
int hsm_ca_spki_inspect(const uint8_t *spki, size_t len, struct hsm_ca_spki *out,
                     char *err, size_t errlen) HSM_WUR;
/* RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
int hsm_ca_spki_keyid(const struct hsm_ca_spki *k, uint8_t out[20]) HSM_WUR;

/* The algorithm an AlgorithmIdentifier names, or HSM_CA_SIGALG_NONE when we do not accept it. */
enum hsm_ca_sigalg hsm_ca_sigalg_parse(const struct hsm_ca_der_tlv *algid);
/* Appends the AlgorithmIdentifier (RFC 5758 3.2: no parameters for ECDSA; RFC 4055 5: NULL for RSA). */
void hsm_ca_sigalg_put(struct hsm_ca_der_buf *b, enum hsm_ca_sigalg alg);
/* The algorithm an HSM key signs with (P-256: ECDSA/SHA-256, P-384: ECDSA/SHA-384, RSA: SHA-256). */
int hsm_ca_sigalg_for_key(const struct hsm_key *key, enum hsm_ca_sigalg *alg, char *err, size_t errlen) HSM_WUR;

/* Verifies sig over data with the key in spki. 0 if it verifies, HSM_E_SIGN if not. */
int hsm_ca_sig_verify(const uint8_t *spki, size_t spki_len, enum hsm_ca_sigalg alg,
                   const uint8_t *data, size_t len, const uint8_t *sig, size_t sig_len) HSM_WUR;

/* Signs tbs in the HSM and returns SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING signature }:
 * the shape of both Certificate (RFC 5280 4.1.1) and CertificationRequest (RFC 2986 4.2).
 * The signature is verified with the key's public half before anything is returned. */
int hsm_ca_sign_wrap(struct hsm_key *key, enum hsm_ca_sigalg alg, const uint8_t *tbs, size_t tbs_len,
                  uint8_t **out, size_t *out_len, char *err, size_t errlen) HSM_WUR;

/* Same key? Compared on key type and subjectPublicKey bits, which DER makes canonical. */
int hsm_ca_spki_same(const struct hsm_ca_spki *a, const struct hsm_ca_spki *b);

/* --- certificates (ca.c) --- */
/* What issuing and CRL signing need from a CA certificate; pointers into the caller's DER. */
struct hsm_ca_cert_info {
    const uint8_t *name;        /* the subject, byte for byte (RFC 5280 4.1.2.4, 5.1.2.3: issuer = CA subject) */
    size_t name_len;
    const uint8_t *spki;
    size_t spki_len;
    const uint8_t *serial;      /* INTEGER content octets */
    size_t serial_len;
    const uint8_t *skid;        /* its subjectKeyIdentifier value, or NULL */
    size_t skid_len;
    int is_ca;                  /* basicConstraints cA */
    int ku_present, ku_cert_sign, ku_crl_sign;
};
/* Reads the parts of a Certificate (RFC 5280 4.1) listed above; -1 if der is not exactly one. */
int hsm_ca_cert_read(const uint8_t *der, size_t len, struct hsm_ca_cert_info *out) HSM_WUR;

/* --- names (ca_name.c) --- */
/* Appends GeneralNames (RFC 5280 4.2.1.6) for entries like "DNS:x", "IP:1.2.3.4". */
int hsm_ca_san_put(struct hsm_ca_der_buf *b, const char *const *sans, size_t n,
                char *err, size_t errlen) HSM_WUR;
/* 0 if der is exactly one well-formed Name; *empty is set when it has no RDN. strict also asks
 * every value to be UTF8String, PrintableString or IA5String text without control characters. */
int hsm_ca_name_check(const uint8_t *der, size_t len, int strict, int *empty) HSM_WUR;

/* Formats into err (never NULL-dereferences; errlen may be 0). */
void hsm_ca_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
