/* ca_name.c - distinguished names (RFC 5280 4.1.2.4) from and to "/CN=x/O=y" text, and
 * subjectAltName entries (RFC 5280 4.2.1.6). */
#include "pkcs11/ca.h"
#include "pkcs11/ca_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NAME_MAX_RDNS 32
#define NAME_MAX_TEXT 4096

/* Upper bounds are RFC 5280 Appendix A's ub-* values, counted in characters. */
static const struct name_attr {
    const char *name;           /* as printed */
    const char *alias;          /* long form also accepted on input */
    uint8_t oid[10];
    uint8_t oid_len;
    uint8_t str;                /* string type used when encoding */
    unsigned max;
} attrs[] = {
    { "CN", "commonName", { 0x55, 0x04, 0x03 }, 3, DER_UTF8, 64 },
    { "O", "organizationName", { 0x55, 0x04, 0x0a }, 3, DER_UTF8, 64 },
    { "OU", "organizationalUnitName", { 0x55, 0x04, 0x0b }, 3, DER_UTF8, 64 },
    { "C", "countryName", { 0x55, 0x04, 0x06 }, 3, DER_PRINTABLE, 2 },
    { "L", "localityName", { 0x55, 0x04, 0x07 }, 3, DER_UTF8, 128 },
    { "ST", "stateOrProvinceName", { 0x55, 0x04, 0x08 }, 3, DER_UTF8, 128 },
    { "serialNumber", NULL, { 0x55, 0x04, 0x05 }, 3, DER_PRINTABLE, 64 },
    /* PKCS#9 emailAddress: IA5String (RFC 5280 4.1.2.6 prefers a SAN, but clients still use it). */
    { "emailAddress", NULL, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01 }, 9, DER_IA5, 255 },
    /* RFC 4519 2.4 domainComponent: IA5String, one DNS label. */
    { "DC", "domainComponent", { 0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19 }, 10, DER_IA5, 63 },
};
#define NATTRS (sizeof(attrs) / sizeof(attrs[0]))
#define KNOWN_ATTRS "CN, O, OU, C, L, ST, emailAddress, DC, serialNumber"

/* Counts the UTF-8 characters of s; -1 if it is not UTF-8 or holds a control character. */
static long utf8_chars(const uint8_t *s, size_t n)
{
    long chars = 0;
    for (size_t i = 0; i < n; chars++) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t k;
        if (c < 0x80) {
            cp = c;
            k = 1;
        } else if ((c & 0xe0) == 0xc0) {
            cp = c & 0x1f;
            k = 2;
        } else if ((c & 0xf0) == 0xe0) {
            cp = c & 0x0f;
            k = 3;
        } else if ((c & 0xf8) == 0xf0) {
            cp = c & 0x07;
            k = 4;
        } else {
            return -1;
        }
        if (i + k > n)
            return -1;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        /* Overlong forms, surrogates and out-of-range values are not UTF-8 (RFC 3629 3). */
        if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return -1;
        i += k;
    }
    return chars;
}

/* X.680 41.4: the PrintableString alphabet. */
static int printable_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr(" '()+,-./:=?", c) != NULL))
            return 0;
    }
    return 1;
}

static int ia5_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)s[i] < 0x20 || (uint8_t)s[i] > 0x7e)
            return 0;
    return 1;
}

static const struct name_attr *attr_by_name(const char *name, size_t n)
{
    for (size_t i = 0; i < NATTRS; i++) {
        if (strlen(attrs[i].name) == n && strncasecmp(attrs[i].name, name, n) == 0)
            return &attrs[i];
        if (attrs[i].alias && strlen(attrs[i].alias) == n && strncasecmp(attrs[i].alias, name, n) == 0)
            return &attrs[i];
    }
    return NULL;
}

/* Checks one value against its attribute's syntax; writes why not into err. */
static int value_check(const struct name_attr *a, char *v, size_t n, char *err, size_t errlen)
{
    long chars = utf8_chars((const uint8_t *)v, n);
    if (n == 0) {
        hsm_ca_errf(err, errlen, "%s has an empty value", a->name);
        return -1;
    }
    if (chars < 0) {
        hsm_ca_errf(err, errlen, "%s is not valid UTF-8 or holds a control character", a->name);
        return -1;
    }
    if ((unsigned long)chars > a->max) {
        hsm_ca_errf(err, errlen, "%s is %ld characters long (at most %u, RFC 5280 Appendix A)", a->name, chars, a->max);
        return -1;
    }
    if (strcmp(a->name, "C") == 0) {
        /* countryName: a two-letter ISO 3166 code (RFC 5280 Appendix A, X520countryName). */
        if (n != 2 || !((v[0] | 0x20) >= 'a' && (v[0] | 0x20) <= 'z') || !((v[1] | 0x20) >= 'a' && (v[1] | 0x20) <= 'z')) {
            hsm_ca_errf(err, errlen, "C must be a two-letter country code such as CH");
            return -1;
        }
        v[0] = (char)(v[0] & ~0x20);
        v[1] = (char)(v[1] & ~0x20);
    }
    if (a->str == DER_PRINTABLE && !printable_ok(v, n)) {
        hsm_ca_errf(err, errlen, "%s may hold only letters, digits, spaces and '()+,-./:=?", a->name);
        return -1;
    }
    if (a->str == DER_IA5 && !ia5_ok(v, n)) {
        hsm_ca_errf(err, errlen, "%s must be printable ASCII", a->name);
        return -1;
    }
    if (strcmp(a->name, "emailAddress") == 0 && (memchr(v, '@', n) == NULL || v[0] == '@' || v[n - 1] == '@')) {
        hsm_ca_errf(err, errlen, "emailAddress must look like name@domain");
        return -1;
    }
    return 0;
}

int hsm_ca_subject_parse(const char *text, uint8_t **der_out, size_t *der_len, char *err, size_t errlen)
{
    struct hsm_ca_der_buf rdns = { 0 }, whole = { 0 };
    char *buf = NULL;
    int rc = HSM_E_ARG, count = 0;

    if (der_out == NULL || der_len == NULL)
        return HSM_E_ARG;
    *der_out = NULL;
    *der_len = 0;
    if (text == NULL || text[0] == '\0') {
        hsm_ca_errf(err, errlen, "malformed subject: empty (expected e.g. \"/CN=example/O=Example\")");
        goto out;
    }
    size_t tlen = strlen(text);
    if (tlen > NAME_MAX_TEXT) {
        hsm_ca_errf(err, errlen, "malformed subject: longer than %d bytes", NAME_MAX_TEXT);
        goto out;
    }
    if (text[0] != '/') {
        hsm_ca_errf(err, errlen, "malformed subject: must start with '/' (e.g. \"/CN=example/O=Example\")");
        goto out;
    }
    buf = malloc(tlen + 1);
    if (buf == NULL) {
        rc = HSM_E_NOMEM;
        goto out;
    }
    const char *p = text + 1;
    for (;;) {
        /* One component: "KEY=VALUE" up to the next unescaped '/'. The key is read raw, the value
         * unescaped into buf ("\x" is x, so "\/" is a slash inside a value). */
        const char *eq = NULL, *q = p;
        while (*q != '\0' && *q != '/' && *q != '=') {
            if (*q == '\\')
                break;
            q++;
        }
        if (*q == '=')
            eq = q;
        count++;
        if (eq == NULL || eq == p) {
            size_t show = strcspn(p, "/");
            hsm_ca_errf(err, errlen, "malformed subject: component %d \"%.*s\" is not KEY=VALUE", count,
                        (int)(show > 64 ? 64 : show), p);
            goto out;
        }
        const struct name_attr *a = attr_by_name(p, (size_t)(eq - p));
        if (a == NULL) {
            hsm_ca_errf(err, errlen, "malformed subject: component %d: unknown attribute \"%.*s\" (known: %s)",
                        count, (int)((size_t)(eq - p) > 32 ? 32 : (size_t)(eq - p)), p, KNOWN_ATTRS);
            goto out;
        }
        size_t n = 0;
        q = eq + 1;
        while (*q != '\0' && *q != '/') {
            if (*q == '\\') {
                if (q[1] == '\0') {
                    hsm_ca_errf(err, errlen, "malformed subject: component %d ends with a lone backslash", count);
                    goto out;
                }
                q++;
            }
            buf[n++] = *q++;
        }
        char verr[160];
        if (value_check(a, buf, n, verr, sizeof(verr)) != 0) {
            hsm_ca_errf(err, errlen, "malformed subject: component %d: %s", count, verr);
            goto out;
        }
        if (count > NAME_MAX_RDNS) {
            hsm_ca_errf(err, errlen, "malformed subject: more than %d components", NAME_MAX_RDNS);
            goto out;
        }
        /* RelativeDistinguishedName ::= SET OF AttributeTypeAndValue; one attribute per RDN. */
        struct hsm_ca_der_buf atv = { 0 }, set = { 0 };
        hsm_ca_der_put_tlv(&atv, DER_OID, a->oid, a->oid_len);
        hsm_ca_der_put_tlv(&atv, a->str, buf, n);
        hsm_ca_der_put_wrapped(&set, DER_SEQUENCE, &atv);
        hsm_ca_der_put_wrapped(&rdns, DER_SET, &set);
        if (*q == '\0')
            break;
        p = q + 1;
        if (*p == '\0') {
            hsm_ca_errf(err, errlen, "malformed subject: trailing '/' (remove it, or write \"\\/\" for a slash)");
            goto out;
        }
    }
    hsm_ca_der_put_wrapped(&whole, DER_SEQUENCE, &rdns);
    if (hsm_ca_der_buf_take(&whole, der_out, der_len) != 0) {
        rc = HSM_E_NOMEM;
        goto out;
    }
    rc = 0;
out:
    hsm_ca_der_buf_free(&rdns);
    hsm_ca_der_buf_free(&whole);
    free(buf);
    buf = NULL;
    return rc;
}

/* A value we are willing to sign: a non-empty UTF8String, PrintableString or IA5String without
 * control characters. Names end up in logs and in identity headers sent to backends, where a
 * requester-chosen CR/LF or NUL would be an injection. */
static int text_value_ok(const struct hsm_ca_der_tlv *v)
{
    if (v->len == 0 || utf8_chars(v->val, v->len) < 0)
        return 0;
    switch (v->tag) {
    case DER_UTF8:
        return 1;
    case DER_PRINTABLE:
        return printable_ok((const char *)v->val, v->len);
    case DER_IA5:
        return ia5_ok((const char *)v->val, v->len);
    default:
        return 0;
    }
}

/* Appends printable text to out at *k (bounded by cap, NUL kept). */
static void out_put(char *out, size_t cap, size_t *k, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *k + 1 < cap; i++)
        out[(*k)++] = s[i];
    if (cap)
        out[*k < cap ? *k : cap - 1] = '\0';
}

static void oid_dotted(const struct hsm_ca_der_tlv *oid, char *s, size_t cap)
{
    size_t k = 0;
    uint64_t v = 0;
    int first = 1;
    s[0] = '\0';
    for (size_t i = 0; i < oid->len && k + 24 < cap; i++) {
        v = (v << 7) | (oid->val[i] & 0x7f);
        if (oid->val[i] & 0x80)
            continue;
        if (first) {
            unsigned top = v < 40 ? 0 : v < 80 ? 1 : 2;
            k += (size_t)snprintf(s + k, cap - k, "%u.%llu", top, (unsigned long long)(v - 40u * top));
            first = 0;
        } else {
            k += (size_t)snprintf(s + k, cap - k, ".%llu", (unsigned long long)v);
        }
        v = 0;
    }
}

/* Walks a Name; with out != NULL also prints it. strict: every value must be printable text
 * (see hsm_ca_name_check). Returns the number of RDNs, or -1. */
static int name_walk(const uint8_t *der, size_t len, int strict, char *out, size_t cap)
{
    struct hsm_ca_der c = { der, len }, rdns;
    struct hsm_ca_der_tlv seq, set, atv, oid, val;
    size_t k = 0;
    int count = 0;
    if (out && cap)
        out[0] = '\0';
    if (der == NULL || hsm_ca_der_get_tag(&c, DER_SEQUENCE, &seq) != 0 || c.len != 0)
        return -1;
    rdns = hsm_ca_der_in(&seq);
    while (rdns.len != 0) {
        if (hsm_ca_der_get_tag(&rdns, DER_SET, &set) != 0 || set.len == 0)
            return -1;
        struct hsm_ca_der in = hsm_ca_der_in(&set);
        int first = 1;
        while (in.len != 0) {
            if (hsm_ca_der_get_tag(&in, DER_SEQUENCE, &atv) != 0)
                return -1;
            struct hsm_ca_der a = hsm_ca_der_in(&atv);
            if (hsm_ca_der_get_tag(&a, DER_OID, &oid) != 0 || oid.len == 0 || hsm_ca_der_get(&a, &val) != 0 || a.len != 0)
                return -1;
            if (strict && !text_value_ok(&val))
                return -1;
            if (out == NULL)
                continue;
            char dotted[96];
            const char *name = NULL;
            for (size_t i = 0; i < NATTRS && name == NULL; i++)
                if (hsm_ca_der_oid_is(&oid, attrs[i].oid, attrs[i].oid_len))
                    name = attrs[i].name;
            if (name == NULL) {
                oid_dotted(&oid, dotted, sizeof(dotted));
                name = dotted;
            }
            out_put(out, cap, &k, first ? "/" : "+", 1);
            out_put(out, cap, &k, name, strlen(name));
            out_put(out, cap, &k, "=", 1);
            int is_text = val.tag == DER_UTF8 || val.tag == DER_PRINTABLE || val.tag == DER_IA5 || val.tag == DER_T61;
            for (size_t i = 0; i < val.len; i++) {
                uint8_t ch = val.val[i];
                char esc[8];
                if (is_text && (ch == '/' || ch == '\\' || ch == '+')) {
                    esc[0] = '\\';
                    esc[1] = (char)ch;
                    out_put(out, cap, &k, esc, 2);
                } else if (is_text && ch >= 0x20 && ch != 0x7f) {
                    out_put(out, cap, &k, (const char *)&ch, 1);
                } else {
                    snprintf(esc, sizeof(esc), "\\x%02X", ch);
                    out_put(out, cap, &k, esc, 4);
                }
            }
            first = 0;
        }
        count++;
    }
    return count;
}

int hsm_ca_name_format(const uint8_t *der, size_t len, char *out, size_t cap)
{
    if (out == NULL || cap == 0)
        return HSM_E_ARG;
    return name_walk(der, len, 0, out, cap) < 0 ? HSM_E_ARG : 0;
}

int hsm_ca_name_check(const uint8_t *der, size_t len, int strict, int *empty)
{
    int n = name_walk(der, len, strict, NULL, 0);
    if (n < 0)
        return HSM_E_ARG;
    *empty = n == 0;
    return 0;
}

int hsm_ca_subject_check(const uint8_t *der, size_t len, char *cn, size_t cap, char *err, size_t errlen)
{
    struct hsm_ca_der c = { der, len }, rdns;
    struct hsm_ca_der_tlv seq, set, atv, oid, val;
    int count = 0, have_cn = 0;

    if (cn != NULL && cap > 0)
        cn[0] = '\0';
    if (der == NULL || len == 0 || hsm_ca_der_get_tag(&c, DER_SEQUENCE, &seq) != 0 || c.len != 0) {
        hsm_ca_errf(err, errlen, "the subject is not a DER Name");
        return HSM_E_ARG;
    }
    if (len > HSM_CA_SUBJECT_MAX_DER) {
        hsm_ca_errf(err, errlen, "the subject is %zu bytes long (at most %d)", len, HSM_CA_SUBJECT_MAX_DER);
        return HSM_E_ARG;
    }
    rdns = hsm_ca_der_in(&seq);
    while (rdns.len != 0) {
        if (hsm_ca_der_get_tag(&rdns, DER_SET, &set) != 0 || set.len == 0) {
            hsm_ca_errf(err, errlen, "the subject is not a DER Name");
            return HSM_E_ARG;
        }
        if (++count > HSM_CA_SUBJECT_MAX_RDNS) {
            hsm_ca_errf(err, errlen, "the subject has more than %d RDNs", HSM_CA_SUBJECT_MAX_RDNS);
            return HSM_E_ARG;
        }
        struct hsm_ca_der in = hsm_ca_der_in(&set);
        while (in.len != 0) {
            const struct name_attr *a = NULL;
            if (hsm_ca_der_get_tag(&in, DER_SEQUENCE, &atv) != 0) {
                hsm_ca_errf(err, errlen, "the subject is not a DER Name");
                return HSM_E_ARG;
            }
            struct hsm_ca_der x = hsm_ca_der_in(&atv);
            if (hsm_ca_der_get_tag(&x, DER_OID, &oid) != 0 || oid.len == 0 || hsm_ca_der_get(&x, &val) != 0 || x.len != 0) {
                hsm_ca_errf(err, errlen, "the subject is not a DER Name");
                return HSM_E_ARG;
            }
            for (size_t i = 0; i < NATTRS && a == NULL; i++)
                if (hsm_ca_der_oid_is(&oid, attrs[i].oid, attrs[i].oid_len))
                    a = &attrs[i];
            if (a == NULL) {
                char dotted[96];
                oid_dotted(&oid, dotted, sizeof(dotted));
                hsm_ca_errf(err, errlen, "the subject has an attribute %s this CA does not certify (accepted: %s)",
                            dotted, KNOWN_ATTRS);
                return HSM_E_ARG;
            }
            /* Names reach logs and identity headers: printable text only (see text_value_ok). */
            if (!text_value_ok(&val)) {
                hsm_ca_errf(err, errlen, "the subject's %s is not printable text (UTF8String, PrintableString or "
                                         "IA5String without control characters)", a->name);
                return HSM_E_ARG;
            }
            long chars = utf8_chars(val.val, val.len);
            if (chars < 0 || (unsigned long)chars > a->max) {
                hsm_ca_errf(err, errlen, "the subject's %s is %ld characters long (at most %u, RFC 5280 Appendix A)",
                            a->name, chars, a->max);
                return HSM_E_ARG;
            }
            if (strcmp(a->name, "CN") == 0) {
                size_t k = 0;
                have_cn = 1;
                if (cn != NULL && cap > 0) {
                    out_put(cn, cap, &k, (const char *)val.val, val.len);
                }
            }
        }
    }
    if (!have_cn) {
        hsm_ca_errf(err, errlen, "the subject has no commonName (CN): a client certificate must name its client");
        return HSM_E_ARG;
    }
    return 0;
}

/* RFC 1034 3.5 preferred name syntax (RFC 5280 4.2.1.6), with a leading "*." wildcard label. */
static int dns_name_ok(const char *s)
{
    size_t n = strlen(s), label = 0, labels = 0;
    int wildcard = 0;
    if (n == 0 || n > 253)
        return 0;
    if (s[0] == '*') {
        if (s[1] != '.' || n < 3)
            return 0;
        wildcard = 1;
        s += 2;
        n -= 2;
    }
    for (size_t i = 0; i <= n; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return 0;
            label = 0;
            labels++;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
        if (label == 0 && c == '-')
            return 0;
        label++;
    }
    /* "*.com" would cover a whole top-level domain: a wildcard needs two labels under it. */
    return !wildcard || labels >= 2;
}

/* RFC 3986 3.1: scheme ":" followed by printable ASCII without spaces. */
static int uri_ok(const char *s)
{
    const char *colon = strchr(s, ':');
    if (colon == NULL || colon == s || !((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z') || colon[1] == '\0')
        return 0;
    for (const char *p = s; p < colon; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("+-.", *p)))
            return 0;
    for (const char *p = s; *p; p++)
        if ((uint8_t)*p <= 0x20 || (uint8_t)*p >= 0x7f)
            return 0;
    return 1;
}

static int email_ok(const char *s)
{
    const char *at = strchr(s, '@');
    if (at == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@') != NULL || strlen(s) > 255)
        return 0;
    for (const char *p = s; *p; p++)
        if ((uint8_t)*p <= 0x20 || (uint8_t)*p >= 0x7f)
            return 0;
    return dns_name_ok(at + 1) && at[1] != '*';
}

int hsm_ca_san_put(struct hsm_ca_der_buf *b, const char *const *sans, size_t n, char *err, size_t errlen)
{
    struct hsm_ca_der_buf names = { 0 };
    int rc = HSM_E_ARG;
    if (n > HSM_CA_MAX_SANS) {
        hsm_ca_errf(err, errlen, "too many subjectAltName entries (at most %d)", HSM_CA_MAX_SANS);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = sans[i];
        const char *colon = s ? strchr(s, ':') : NULL;
        if (colon == NULL) {
            hsm_ca_errf(err, errlen, "SAN \"%.64s\": expected TYPE:VALUE (DNS:, IP:, URI:, email:)", s ? s : "");
            goto out;
        }
        size_t tl = (size_t)(colon - s);
        const char *v = colon + 1;
        /* GeneralName context tags, IMPLICIT (RFC 5280 4.2.1.6 / Appendix A.2). */
        if (tl == 3 && strncasecmp(s, "DNS", 3) == 0) {
            if (!dns_name_ok(v)) {
                hsm_ca_errf(err, errlen, "SAN \"%.64s\": not a valid DNS name", s);
                goto out;
            }
            hsm_ca_der_put_tlv(&names, 0x82, v, strlen(v));
        } else if (tl == 2 && strncasecmp(s, "IP", 2) == 0) {
            uint8_t a[16];
            if (inet_pton(AF_INET, v, a) == 1) {
                hsm_ca_der_put_tlv(&names, 0x87, a, 4);
            } else if (inet_pton(AF_INET6, v, a) == 1) {
                hsm_ca_der_put_tlv(&names, 0x87, a, 16);
            } else {
                hsm_ca_errf(err, errlen, "SAN \"%.64s\": not an IPv4 or IPv6 address", s);
                goto out;
            }
        } else if (tl == 3 && strncasecmp(s, "URI", 3) == 0) {
            if (!uri_ok(v)) {
                hsm_ca_errf(err, errlen, "SAN \"%.64s\": not an absolute URI", s);
                goto out;
            }
            hsm_ca_der_put_tlv(&names, 0x86, v, strlen(v));
        } else if (tl == 5 && strncasecmp(s, "email", 5) == 0) {
            if (!email_ok(v)) {
                hsm_ca_errf(err, errlen, "SAN \"%.64s\": not an email address", s);
                goto out;
            }
            hsm_ca_der_put_tlv(&names, 0x81, v, strlen(v));
        } else {
            hsm_ca_errf(err, errlen, "SAN \"%.64s\": unknown type \"%.*s\" (DNS, IP, URI, email)", s,
                        (int)(tl > 16 ? 16 : tl), s);
            goto out;
        }
    }
    hsm_ca_der_put_wrapped(b, DER_SEQUENCE, &names);
    rc = 0;
out:
    hsm_ca_der_buf_free(&names);
    return rc;
}
