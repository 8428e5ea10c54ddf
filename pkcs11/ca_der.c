/* ca_der.c - the CA code's DER writer and strict DER reader (X.690 10), and PEM (RFC 7468). */
#include "pkcs11/ca.h"
#include "pkcs11/ca_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

/* Nothing we build or accept comes near this; refusing larger values keeps size arithmetic trivial. */
#define DER_MAX_LEN (1u << 24)

void hsm_ca_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* --- writer --- */

void hsm_ca_der_buf_free(struct hsm_ca_der_buf *b)
{
    if (b == NULL)
        return;
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void hsm_ca_der_put(struct hsm_ca_der_buf *b, const void *src, size_t n)
{
    if (b->failed || n == 0)
        return;
    if (n > DER_MAX_LEN || b->len + n > DER_MAX_LEN) {
        b->failed = 1;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_header(struct hsm_ca_der_buf *b, uint8_t tag, size_t n)
{
    uint8_t h[6];
    size_t k = 0;
    h[k++] = tag;
    if (n < 0x80) {
        h[k++] = (uint8_t)n;
    } else if (n <= 0xff) {
        h[k++] = 0x81;
        h[k++] = (uint8_t)n;
    } else if (n <= 0xffff) {
        h[k++] = 0x82;
        h[k++] = (uint8_t)(n >> 8);
        h[k++] = (uint8_t)n;
    } else if (n <= DER_MAX_LEN) {
        h[k++] = 0x83;
        h[k++] = (uint8_t)(n >> 16);
        h[k++] = (uint8_t)(n >> 8);
        h[k++] = (uint8_t)n;
    } else {
        b->failed = 1;
        return;
    }
    hsm_ca_der_put(b, h, k);
}

void hsm_ca_der_put_tlv(struct hsm_ca_der_buf *b, uint8_t tag, const void *val, size_t n)
{
    put_header(b, tag, n);
    hsm_ca_der_put(b, val, n);
}

void hsm_ca_der_put_wrapped(struct hsm_ca_der_buf *b, uint8_t tag, struct hsm_ca_der_buf *inner)
{
    if (inner->failed)
        b->failed = 1;
    else
        hsm_ca_der_put_tlv(b, tag, inner->p, inner->len);
    hsm_ca_der_buf_free(inner);
    inner->failed = 0;
}

void hsm_ca_der_put_uint(struct hsm_ca_der_buf *b, uint64_t v)
{
    uint8_t tmp[9];
    size_t k = sizeof(tmp);
    do {
        tmp[--k] = (uint8_t)v;
        v >>= 8;
    } while (v != 0);
    /* A set top bit would read as negative (X.690 8.3.3). */
    if (tmp[k] & 0x80)
        tmp[--k] = 0;
    hsm_ca_der_put_tlv(b, DER_INTEGER, tmp + k, sizeof(tmp) - k);
}

int hsm_ca_der_put_time(struct hsm_ca_der_buf *b, time_t t)
{
    struct tm tm;
    char s[64];
    if (gmtime_r(&t, &tm) == NULL)
        return -1;
    int year = tm.tm_year + 1900;
    if (year < 1950 || year > 9999)
        return -1;
    /* RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; always Z, seconds, no fraction. */
    if (year < 2050) {
        snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", year % 100, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        hsm_ca_der_put_tlv(b, DER_UTCTIME, s, 13);
    } else {
        snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        hsm_ca_der_put_tlv(b, DER_GENTIME, s, 15);
    }
    return 0;
}

int hsm_ca_der_buf_take(struct hsm_ca_der_buf *b, uint8_t **out, size_t *len)
{
    if (b->failed || b->len == 0) {
        hsm_ca_der_buf_free(b);
        return -1;
    }
    *out = b->p;
    *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return 0;
}

/* --- reader --- */

int hsm_ca_der_get(struct hsm_ca_der *c, struct hsm_ca_der_tlv *t)
{
    const uint8_t *p = c->p;
    size_t n = c->len, hdr, len;
    if (p == NULL || n < 2)
        return -1;
    /* High tag numbers never occur in the structures we read. */
    if ((p[0] & 0x1f) == 0x1f)
        return -1;
    if (p[1] < 0x80) {
        len = p[1];
        hdr = 2;
    } else {
        size_t k = p[1] & 0x7f;
        /* 0x80 is BER's indefinite length; DER also wants the shortest length form (X.690 10.1). */
        if (k == 0 || k > 3 || n < 2 + k || p[2] == 0)
            return -1;
        len = 0;
        for (size_t i = 0; i < k; i++)
            len = (len << 8) | p[2 + i];
        if (len < 0x80)
            return -1;
        hdr = 2 + k;
    }
    if (len > n - hdr)
        return -1;
    t->tag = p[0];
    t->tlv = p;
    t->tlv_len = hdr + len;
    t->val = p + hdr;
    t->len = len;
    c->p += hdr + len;
    c->len -= hdr + len;
    return 0;
}

int hsm_ca_der_get_tag(struct hsm_ca_der *c, uint8_t tag, struct hsm_ca_der_tlv *t)
{
    struct hsm_ca_der save = *c;
    if (hsm_ca_der_get(c, t) != 0 || t->tag != tag) {
        *c = save;
        return -1;
    }
    return 0;
}

int hsm_ca_der_peek(const struct hsm_ca_der *c)
{
    return (c->p != NULL && c->len > 0) ? c->p[0] : -1;
}

struct hsm_ca_der hsm_ca_der_in(const struct hsm_ca_der_tlv *t)
{
    struct hsm_ca_der c = { t->val, t->len };
    return c;
}

int hsm_ca_der_oid_is(const struct hsm_ca_der_tlv *t, const uint8_t *oid, size_t oid_len)
{
    return t->tag == DER_OID && t->len == oid_len && memcmp(t->val, oid, oid_len) == 0;
}

/* --- PEM --- */

int hsm_ca_pem_encode(const char *label, const uint8_t *der, size_t len, char **pem_out, size_t *pem_len)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (label == NULL || der == NULL || len == 0 || len > DER_MAX_LEN || pem_out == NULL || pem_len == NULL)
        return HSM_E_ARG;
    size_t nlabel = strlen(label);
    size_t chars = (len + 2) / 3 * 4;
    size_t cap = 2 * (nlabel + 20) + chars + chars / 64 + 2;
    char *pem = malloc(cap);
    if (pem == NULL)
        return HSM_E_NOMEM;
    size_t k = (size_t)snprintf(pem, cap, "-----BEGIN %s-----\n", label);
    size_t col = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)der[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)der[i + 1] << 8;
        if (i + 2 < len)
            v |= der[i + 2];
        pem[k++] = b64[(v >> 18) & 63];
        pem[k++] = b64[(v >> 12) & 63];
        pem[k++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        pem[k++] = i + 2 < len ? b64[v & 63] : '=';
        col += 4;
        /* RFC 7468 2: lines of exactly 64 characters except the last. */
        if (col == 64) {
            pem[k++] = '\n';
            col = 0;
        }
    }
    if (col != 0)
        pem[k++] = '\n';
    k += (size_t)snprintf(pem + k, cap - k, "-----END %s-----\n", label);
    *pem_out = pem;
    *pem_len = k;
    return 0;
}

/* Finds "-----BEGIN <label>-----" at a line start; returns the text after it, or NULL. */
static const char *pem_find(const char *text, size_t len, const char *label, const char **end)
{
    char begin[96], endline[96];
    snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
    snprintf(endline, sizeof(endline), "-----END %s-----", label);
    size_t nb = strlen(begin);
    for (size_t i = 0; i + nb <= len; i++) {
        if ((i == 0 || text[i - 1] == '\n') && memcmp(text + i, begin, nb) == 0) {
            const char *body = text + i + nb;
            const char *e = memmem(body, len - (size_t)(body - text), endline, strlen(endline));
            if (e == NULL)
                return NULL;
            *end = e;
            return body;
        }
    }
    return NULL;
}

int hsm_ca_pem_decode(const uint8_t *in, size_t len, const char *const *labels,
                      uint8_t **der_out, size_t *der_len, char *err, size_t errlen)
{
    uint8_t *clean = NULL, *der = NULL;
    int rc = HSM_E_ARG;

    if (in == NULL || len == 0 || len > DER_MAX_LEN || der_out == NULL || der_len == NULL) {
        hsm_ca_errf(err, errlen, "empty input");
        return HSM_E_ARG;
    }
    *der_out = NULL;
    *der_len = 0;

    if (in[0] == DER_SEQUENCE) {
        struct hsm_ca_der c = { in, len };
        struct hsm_ca_der_tlv t;
        if (hsm_ca_der_get(&c, &t) != 0 || c.len != 0) {
            hsm_ca_errf(err, errlen, "not a DER value (bad length or trailing bytes)");
            goto out;
        }
        der = malloc(len);
        if (der == NULL) {
            rc = HSM_E_NOMEM;
            goto out;
        }
        memcpy(der, in, len);
        *der_len = len;
        *der_out = der;
        der = NULL;
        rc = 0;
        goto out;
    }

    const char *body = NULL, *end = NULL;
    for (size_t i = 0; labels != NULL && labels[i] != NULL && body == NULL; i++)
        body = pem_find((const char *)in, len, labels[i], &end);
    if (body == NULL) {
        hsm_ca_errf(err, errlen, "no PEM block \"%s\" found (and not DER)", labels && labels[0] ? labels[0] : "?");
        goto out;
    }
    /* Base64 text may be wrapped at any width and use CRLF; anything else is refused. */
    size_t n = (size_t)(end - body), k = 0;
    clean = malloc(n + 1);
    if (clean == NULL) {
        rc = HSM_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = body[i];
        if (ch == '\n' || ch == '\r' || ch == ' ' || ch == '\t')
            continue;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/' || ch == '=')) {
            hsm_ca_errf(err, errlen, "PEM: unexpected character in base64 (headers are not supported)");
            goto out;
        }
        clean[k++] = (uint8_t)ch;
    }
    if (k == 0 || k % 4 != 0) {
        hsm_ca_errf(err, errlen, "PEM: truncated base64");
        goto out;
    }
    word32 outlen = (word32)(k / 4 * 3);
    der = malloc(outlen);
    if (der == NULL) {
        rc = HSM_E_NOMEM;
        goto out;
    }
    if (Base64_Decode(clean, (word32)k, der, &outlen) != 0 || outlen == 0) {
        hsm_ca_errf(err, errlen, "PEM: bad base64");
        goto out;
    }
    struct hsm_ca_der c = { der, outlen };
    struct hsm_ca_der_tlv t;
    if (hsm_ca_der_get(&c, &t) != 0 || c.len != 0) {
        hsm_ca_errf(err, errlen, "PEM: the decoded data is not one DER value");
        goto out;
    }
    *der_out = der;
    *der_len = outlen;
    der = NULL;
    rc = 0;
out:
    free(clean);
    clean = NULL;
    free(der);
    der = NULL;
    return rc;
}
