/* der.c - the few DER structures this module emits: two SubjectPublicKeyInfo shapes and the
 * ECDSA-Sig-Value.
 *
 * Hand-written on purpose: the structures are fixed and tiny (X.690 definite-length TLVs of at most a
 * few hundred bytes), and writing them here keeps pkcs11/ free of wolfSSL, whose ASN.1 API differs
 * between the local build and Debian's 5.5.4. Everything is sized first, then written into one buffer,
 * so no intermediate allocation can leak on an error path. */
#include <stdlib.h>
#include <string.h>

#include "pkcs11/internal.h"

#define DER_INTEGER 0x02
#define DER_BIT_STRING 0x03
#define DER_OCTET_STRING 0x04
#define DER_NULL 0x05
#define DER_OID 0x06
#define DER_SEQUENCE 0x30

/* id-ecPublicKey 1.2.840.10045.2.1 (RFC 5480 2.1.1) */
static const uint8_t oid_ec_public_key[] = {0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
/* rsaEncryption 1.2.840.113549.1.1.1 with NULL parameters (RFC 3279 2.3.1) */
static const uint8_t alg_rsa[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                  0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};

struct der_w {
    uint8_t *p;
    size_t cap, len;
};

/* Size of a TLV with content_len bytes of content (lengths below 16 MiB are all we need). */
static size_t der_tlv_size(size_t content_len)
{
    if (content_len < 0x80)
        return 2 + content_len;
    if (content_len < 0x100)
        return 3 + content_len;
    if (content_len < 0x10000)
        return 4 + content_len;
    return 5 + content_len;
}

static int der_put(struct der_w *w, const void *p, size_t n)
{
    if (n > w->cap - w->len)
        return HSM_E_ARG;
    memcpy(w->p + w->len, p, n);
    w->len += n;
    return 0;
}

static int der_put_hdr(struct der_w *w, uint8_t tag, size_t content_len)
{
    uint8_t h[5];
    size_t n = 0;

    h[n++] = tag;
    if (content_len < 0x80) {
        h[n++] = (uint8_t)content_len;
    } else if (content_len < 0x100) {
        h[n++] = 0x81;
        h[n++] = (uint8_t)content_len;
    } else if (content_len < 0x10000) {
        h[n++] = 0x82;
        h[n++] = (uint8_t)(content_len >> 8);
        h[n++] = (uint8_t)content_len;
    } else {
        h[n++] = 0x83;
        h[n++] = (uint8_t)(content_len >> 16);
        h[n++] = (uint8_t)(content_len >> 8);
        h[n++] = (uint8_t)content_len;
    }
    return der_put(w, h, n);
}

/* An unsigned big-endian number as INTEGER content: leading zeros dropped, one 0x00 added when the top
 * bit is set so the value stays positive (X.690 8.3). */
static void der_uint_trim(const uint8_t **v, size_t *n, int *pad)
{
    while (*n > 1 && (*v)[0] == 0) {
        (*v)++;
        (*n)--;
    }
    *pad = (*n == 0 || ((*v)[0] & 0x80)) ? 1 : 0;
}

static size_t der_uint_size(const uint8_t *v, size_t n)
{
    int pad;

    der_uint_trim(&v, &n, &pad);
    return der_tlv_size(n + (size_t)pad);
}

static int der_put_uint(struct der_w *w, const uint8_t *v, size_t n)
{
    static const uint8_t zero = 0;
    int pad, rc;

    der_uint_trim(&v, &n, &pad);
    if ((rc = der_put_hdr(w, DER_INTEGER, n + (size_t)pad)) < 0)
        return rc;
    if (pad && (rc = der_put(w, &zero, 1)) < 0)
        return rc;
    return der_put(w, v, n);
}

int hsm_der_spki_ec(const uint8_t *curve_oid, size_t oid_len, const uint8_t *point, size_t point_len,
                    uint8_t **out, size_t *out_len)
{
    struct der_w w = {0};
    size_t alg_len, bits_len, total;
    int rc = 0;

    *out = NULL;
    alg_len = sizeof(oid_ec_public_key) + oid_len;
    bits_len = 1 + point_len;
    total = der_tlv_size(der_tlv_size(alg_len) + der_tlv_size(bits_len));
    w.p = malloc(total);
    if (w.p == NULL)
        return HSM_E_NOMEM;
    w.cap = total;
    /* RFC 5480 2: SEQUENCE { SEQUENCE { id-ecPublicKey, namedCurve }, BIT STRING point } */
    HSM_TRY(der_put_hdr(&w, DER_SEQUENCE, der_tlv_size(alg_len) + der_tlv_size(bits_len)));
    HSM_TRY(der_put_hdr(&w, DER_SEQUENCE, alg_len));
    HSM_TRY(der_put(&w, oid_ec_public_key, sizeof(oid_ec_public_key)));
    HSM_TRY(der_put(&w, curve_oid, oid_len));
    HSM_TRY(der_put_hdr(&w, DER_BIT_STRING, bits_len));
    HSM_TRY(der_put(&w, "", 1));   /* no unused bits */
    HSM_TRY(der_put(&w, point, point_len));
    *out = w.p;
    *out_len = w.len;
    w.p = NULL;
out:
    free(w.p);
    return rc;
}

int hsm_der_spki_rsa(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len, uint8_t **out,
                     size_t *out_len)
{
    struct der_w w = {0};
    size_t key_len, bits_len, total;
    int rc = 0;

    *out = NULL;
    key_len = der_uint_size(n, n_len) + der_uint_size(e, e_len);
    bits_len = 1 + der_tlv_size(key_len);
    total = der_tlv_size(sizeof(alg_rsa) + der_tlv_size(bits_len));
    w.p = malloc(total);
    if (w.p == NULL)
        return HSM_E_NOMEM;
    w.cap = total;
    /* RFC 3279 2.3.1: BIT STRING wraps RSAPublicKey ::= SEQUENCE { modulus, publicExponent } */
    HSM_TRY(der_put_hdr(&w, DER_SEQUENCE, sizeof(alg_rsa) + der_tlv_size(bits_len)));
    HSM_TRY(der_put(&w, alg_rsa, sizeof(alg_rsa)));
    HSM_TRY(der_put_hdr(&w, DER_BIT_STRING, bits_len));
    HSM_TRY(der_put(&w, "", 1));
    HSM_TRY(der_put_hdr(&w, DER_SEQUENCE, key_len));
    HSM_TRY(der_put_uint(&w, n, n_len));
    HSM_TRY(der_put_uint(&w, e, e_len));
    *out = w.p;
    *out_len = w.len;
    w.p = NULL;
out:
    free(w.p);
    return rc;
}

int hsm_der_ecdsa_sig(const uint8_t *rs, size_t rs_len, uint8_t *out, size_t *out_len)
{
    struct der_w w = {.p = out, .cap = *out_len};
    size_t half = rs_len / 2, body;
    int rc = 0;

    if (rs_len == 0 || rs_len % 2 != 0)
        return HSM_E_SIGN;
    /* RFC 3279 2.2.3 (X9.62): Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } */
    body = der_uint_size(rs, half) + der_uint_size(rs + half, half);
    if (der_tlv_size(body) > *out_len)
        return HSM_E_ARG;
    HSM_TRY(der_put_hdr(&w, DER_SEQUENCE, body));
    HSM_TRY(der_put_uint(&w, rs, half));
    HSM_TRY(der_put_uint(&w, rs + half, half));
    *out_len = w.len;
out:
    return rc;
}

int hsm_der_unwrap_octets(const uint8_t *p, size_t len, const uint8_t **inner, size_t *inner_len)
{
    size_t hdr, l;

    if (len < 2 || p[0] != DER_OCTET_STRING)
        return 0;
    if (p[1] < 0x80) {
        hdr = 2;
        l = p[1];
    } else if (p[1] == 0x81 && len >= 3) {
        hdr = 3;
        l = p[2];
    } else if (p[1] == 0x82 && len >= 4) {
        hdr = 4;
        l = ((size_t)p[2] << 8) | p[3];
    } else {
        return 0;
    }
    if (hdr + l != len)
        return 0;
    *inner = p + hdr;
    *inner_len = l;
    return 1;
}
