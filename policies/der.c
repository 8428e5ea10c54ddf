/* der.c - a small DER reader (X.690) and the byte-level helpers the module shares: PEM, hex,
 * SHA-256, whole-file reads.
 *
 * Written here rather than borrowed from wolfSSL because the CRL rules we enforce (unknown critical
 * extensions refused at list and entry level, CRL Number kept as the exact INTEGER, per-entry
 * reasons) need the structure itself, and wolfSSL's CRL parser is internal and keeps entries in a
 * list that does not scale (../shared/DESIGN.md fact 4). Every length is checked against what is
 * left before it is used; nothing here allocates except the PEM and file helpers.
 */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/pol_int.h"

int pol_der_next(struct pol_der *d, struct pol_tlv *t)
{
    if (d->len < 2)
        return POL_E_DER;
    const uint8_t *p = d->p;
    uint8_t tag = p[0];
    /* High tag numbers (0x1f) never occur in the structures we read. */
    if ((tag & 0x1f) == 0x1f)
        return POL_E_DER;
    size_t hdr = 2, len = p[1];
    if (len & 0x80) {
        size_t n = len & 0x7f;
        /* Indefinite length (0x80) is BER, not DER; lengths past 4 octets cannot fit our inputs. */
        if (n == 0 || n > 4 || d->len < 2 + n)
            return POL_E_DER;
        len = 0;
        for (size_t i = 0; i < n; i++)
            len = (len << 8) | p[2 + i];
        /* X.690 10.1: the shortest form. */
        if (len < 0x80 || p[2] == 0)
            return POL_E_DER;
        hdr += n;
    }
    if (len > d->len - hdr)
        return POL_E_DER;
    t->tag = tag;
    t->v = p + hdr;
    t->len = len;
    t->raw = p;
    t->raw_len = hdr + len;
    d->p += hdr + len;
    d->len -= hdr + len;
    return 0;
}

int pol_der_expect(struct pol_der *d, uint8_t tag, struct pol_tlv *t)
{
    if (d->len == 0 || d->p[0] != tag)
        return POL_E_DER;
    return pol_der_next(d, t);
}

int pol_der_peek(const struct pol_der *d)
{
    return d->len > 0 ? d->p[0] : -1;
}

static int digits(const uint8_t *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), without timegm's dependence on TZ. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int pol_der_time(const struct pol_tlv *t, time_t *out)
{
    /* RFC 5280 4.1.2.5.1/4.1.2.5.2: YYMMDDHHMMSSZ and YYYYMMDDHHMMSSZ exactly. */
    int year, mon, day, hh, mm, ss;
    const uint8_t *s = t->v;
    if (t->tag == POL_TAG_UTC_TIME) {
        if (t->len != 13 || s[12] != 'Z' || digits(s, 2, &year) != 0)
            return POL_E_DER;
        year += year < 50 ? 2000 : 1900;
        s += 2;
    } else if (t->tag == POL_TAG_GEN_TIME) {
        if (t->len != 15 || s[14] != 'Z' || digits(s, 4, &year) != 0)
            return POL_E_DER;
        s += 4;
    } else {
        return POL_E_DER;
    }
    if (digits(s, 2, &mon) || digits(s + 2, 2, &day) || digits(s + 4, 2, &hh) || digits(s + 6, 2, &mm) ||
        digits(s + 8, 2, &ss))
        return POL_E_DER;
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || hh > 23 || mm > 59 || ss > 59)
        return POL_E_DER;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (mon == 2 && day == 29 && !leap)
        return POL_E_DER;
    int64_t v = days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 + hh * 3600 + mm * 60 + ss;
    if (sizeof(time_t) < 8 && (v > INT32_MAX || v < INT32_MIN))
        return POL_E_DER;
    *out = (time_t)v;
    return 0;
}

int pol_der_uint(const struct pol_tlv *t, size_t max)
{
    if (t->tag != POL_TAG_INTEGER || t->len == 0)
        return POL_E_DER;
    /* X.690 8.3.2: no redundant leading octet. */
    if (t->len > 1 && ((t->v[0] == 0x00 && !(t->v[1] & 0x80)) || (t->v[0] == 0xff && (t->v[1] & 0x80))))
        return POL_E_DER;
    /* Serials must be positive (RFC 5280 4.1.2.2), but CAs in the wild issued negative ones; they are
     * kept as raw octets, which still identify them. The length is what we bound. */
    if (t->len > max)
        return POL_E_DER;
    return 0;
}

int pol_int_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    while (alen > 0 && a[0] == 0) {
        a++;
        alen--;
    }
    while (blen > 0 && b[0] == 0) {
        b++;
        blen--;
    }
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return alen == 0 ? 0 : memcmp(a, b, alen);
}

int pol_oid_is(const struct pol_tlv *t, const uint8_t *oid, size_t len)
{
    return t->tag == POL_TAG_OID && t->len == len && memcmp(t->v, oid, len) == 0;
}

/* ---------------------------------------------------------------- PEM */

static const char *find_mem(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return hay + i;
    return NULL;
}

/* Base64 text (whitespace ignored) into a malloc'd buffer. */
static int b64_decode(const char *b, size_t n, uint8_t **out, size_t *out_len, const char *what, char *err,
                      size_t errlen)
{
    uint8_t *buf = NULL;
    int rc = 0;
    /* Base64_Decode wants no whitespace but line ends; copy the body without any whitespace. */
    char *body = malloc(n + 1);
    if (body == NULL)
        return pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (b[i] != '\n' && b[i] != '\r' && b[i] != ' ' && b[i] != '\t')
            body[m++] = b[i];
    word32 dlen = (word32)(m / 4 * 3 + 3);
    buf = malloc(dlen ? dlen : 1);
    if (buf == NULL) {
        rc = pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
        goto out;
    }
    if (m == 0 || m > UINT32_MAX / 2 || Base64_Decode((const byte *)body, (word32)m, buf, &dlen) != 0 || dlen == 0) {
        rc = pol_errf(err, errlen, POL_E_DER, "bad base64 in %s", what);
        goto out;
    }
    *out = buf;
    *out_len = dlen;
    buf = NULL;
out:
    free(body);
    body = NULL;
    free(buf);
    buf = NULL;
    return rc;
}

int pol_pem_or_der(const uint8_t *in, size_t len, const char *label, uint8_t **out, size_t *out_len,
                   char *err, size_t errlen)
{
    char begin[80], end[80];
    uint8_t *buf = NULL;

    if (len > 0 && in[0] == POL_TAG_SEQUENCE) {
        buf = malloc(len);
        if (buf == NULL)
            return pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
        memcpy(buf, in, len);
        *out = buf;
        *out_len = len;
        return 0;
    }
    snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
    snprintf(end, sizeof(end), "-----END %s-----", label);
    const char *s = (const char *)in;
    const char *b = find_mem(s, len, begin);
    if (b == NULL)
        return pol_errf(err, errlen, POL_E_DER, "neither DER nor PEM with \"%s\"", begin);
    b += strlen(begin);
    const char *e = find_mem(b, len - (size_t)(b - s), end);
    if (e == NULL)
        return pol_errf(err, errlen, POL_E_DER, "PEM block without \"%s\"", end);
    return b64_decode(b, (size_t)(e - b), out, out_len, "the PEM block", err, errlen);
}

int pol_pem_decode(const uint8_t *in, size_t len, const char *label, int base64_ok, uint8_t **out, size_t *out_len,
                   char *err, size_t errlen)
{
    *out = NULL;
    *out_len = 0;
    if (in == NULL || label == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "nothing to decode");
    if (base64_ok && len > 0 && in[0] != POL_TAG_SEQUENCE && find_mem((const char *)in, len, "-----BEGIN ") == NULL)
        return b64_decode((const char *)in, len, out, out_len, "the base64 text", err, errlen);
    return pol_pem_or_der(in, len, label, out, out_len, err, errlen);
}

int pol_file_read(const char *path, size_t max, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    int rc = 0;
    uint8_t *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "cannot open %s: %s", path, strerror(errno));
    buf = malloc(max + 1);
    if (buf == NULL) {
        rc = pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
        goto out;
    }
    size_t n = fread(buf, 1, max + 1, f);
    if (ferror(f)) {
        rc = pol_errf(err, errlen, POL_E_ARG, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (n > max) {
        rc = pol_errf(err, errlen, POL_E_ARG, "%s is too large (over %zu bytes)", path, max);
        goto out;
    }
    if (n == 0) {
        rc = pol_errf(err, errlen, POL_E_ARG, "%s is empty", path);
        goto out;
    }
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    buf = NULL;
    fclose(f);
    return rc;
}

/* ---------------------------------------------------------------- hex, hashes */

void pol_hex(const uint8_t *in, size_t n, char *out, size_t cap)
{
    static const char d[] = "0123456789abcdef";
    size_t j = 0;
    if (cap == 0)
        return;
    for (size_t i = 0; i < n && j + 2 < cap; i++) {
        out[j++] = d[in[i] >> 4];
        out[j++] = d[in[i] & 15];
    }
    out[j] = '\0';
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int pol_unhex(const char *in, uint8_t *out, size_t cap, size_t want)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = in; *p; p++) {
        if (*p == ':') {
            /* Separators only between whole bytes. */
            if (hi >= 0 || p == in || p[1] == '\0' || p[1] == ':')
                return -1;
            continue;
        }
        int v = nibble(*p);
        if (v < 0)
            return -1;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n == cap)
            return -1;
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    if (hi >= 0 || n == 0 || (want != 0 && n != want))
        return -1;
    return (int)n;
}

int pol_sha256(const void *in, size_t len, uint8_t out[POL_HASH_LEN])
{
    if (len > UINT32_MAX || wc_Sha256Hash(in, (word32)len, out) != 0)
        return POL_E_NOMEM;   /* wolfCrypt's SHA-256 fails only on bad arguments or memory */
    return 0;
}

int pol_file_load(const char *path, const char *label, size_t max, uint8_t **out, size_t *len, char *err,
                  size_t errlen)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = 0;
    *out = NULL;
    POL_TRY(pol_file_read(path, max, &buf, &n, err, errlen));
    if (label == NULL) {
        *out = buf;
        *len = n;
        buf = NULL;
        goto out;
    }
    if ((rc = pol_pem_or_der(buf, n, label, out, len, err, errlen)) != 0) {
        char inner[256];
        snprintf(inner, sizeof(inner), "%s", err ? err : "");
        pol_errf(err, errlen, rc, "%s: %s", path, inner);
    }
out:
    free(buf);
    buf = NULL;
    return rc;
}
