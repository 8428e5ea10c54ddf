/* cert.c - a client (or CA) certificate decoded once into what decisions and the store need.
 *
 * wolfSSL's parser (wc_ParseCert) gives the names as WOLFSSL_X509_NAME, so subject and issuer print
 * exactly as gateway/tls.c prints them for logs and identity headers (an operator copies a DN from
 * a log line into an allowlist entry: the two must agree byte for byte); it also gives the SANs, the
 * EKU and basicConstraints. The raw pieces wolfSSL does not keep (the SubjectPublicKeyInfo encoding,
 * the serial as its INTEGER content, the validity) come from our own walk of the TBSCertificate
 * (RFC 5280 4.1). Everything lands in one allocation: one malloc and one free per handshake.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/x509.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/pol_int.h"

#define NAME_MAX_TEXT 2048      /* RFC 4514 text of one Name; longer names are refused */
#define CERT_FILE_MAX (1u << 20)

/* RFC 4514 2.4, as gateway/tls.c's rdn_escape: returns the new position or -1 when out of room. */
static int rdn_escape(const unsigned char *v, int n, char *buf, size_t cap, size_t pos)
{
    for (int i = 0; i < n; i++) {
        unsigned char ch = v[i];
        int special = ch == ',' || ch == '+' || ch == '"' || ch == '\\' || ch == '<' || ch == '>' || ch == ';' ||
                      (ch == ' ' && (i == 0 || i == n - 1)) || (ch == '#' && i == 0);
        if (pos + 4 >= cap)
            return -1;
        if (ch < 0x20 || ch == 0x7f) {
            pos += (size_t)snprintf(buf + pos, cap - pos, "\\%02X", ch);
        } else {
            if (special)
                buf[pos++] = '\\';
            buf[pos++] = (char)ch;
        }
    }
    buf[pos] = '\0';
    return (int)pos;
}

int pol_name_rfc4514(void *vname, char *buf, size_t cap)
{
    WOLFSSL_X509_NAME *name = vname;
    size_t pos = 0;
    if (cap == 0)
        return -1;
    buf[0] = '\0';
    if (name == NULL)
        return 0;
    /* Most specific RDN first (RFC 4514 2.1), one "type=value" per attribute, "," between. */
    int count = wolfSSL_X509_NAME_entry_count(name);
    for (int i = count - 1; i >= 0; i--) {
        WOLFSSL_X509_NAME_ENTRY *e = wolfSSL_X509_NAME_get_entry(name, i);
        WOLFSSL_ASN1_OBJECT *obj = e ? wolfSSL_X509_NAME_ENTRY_get_object(e) : NULL;
        WOLFSSL_ASN1_STRING *val = e ? wolfSSL_X509_NAME_ENTRY_get_data(e) : NULL;
        if (obj == NULL || val == NULL)
            continue;
        char type[80];
        int nid = wolfSSL_OBJ_obj2nid(obj);
        const char *sn = wolfSSL_OBJ_nid2sn(nid);
        if (sn == NULL || nid == 0) {
            if (wolfSSL_OBJ_obj2txt(type, (int)sizeof(type), obj, 1) <= 0)
                continue;
            sn = type;
        }
        int w = snprintf(buf + pos, cap - pos, "%s%s=", pos ? "," : "", sn);
        if (w < 0 || (size_t)w >= cap - pos)
            return -1;
        pos += (size_t)w;
        int np = rdn_escape(wolfSSL_ASN1_STRING_data(val), wolfSSL_ASN1_STRING_length(val), buf, cap, pos);
        if (np < 0)
            return -1;
        pos = (size_t)np;
    }
    return (int)pos;
}

/* The most specific commonName's value (raw, not escaped), or NULL. */
static const unsigned char *name_cn(WOLFSSL_X509_NAME *name, int *len)
{
    if (name == NULL)
        return NULL;
    for (int i = wolfSSL_X509_NAME_entry_count(name) - 1; i >= 0; i--) {
        WOLFSSL_X509_NAME_ENTRY *e = wolfSSL_X509_NAME_get_entry(name, i);
        WOLFSSL_ASN1_OBJECT *obj = e ? wolfSSL_X509_NAME_ENTRY_get_object(e) : NULL;
        WOLFSSL_ASN1_STRING *val = e ? wolfSSL_X509_NAME_ENTRY_get_data(e) : NULL;
        if (obj == NULL || val == NULL || wolfSSL_OBJ_obj2nid(obj) != NID_commonName)
            continue;
        *len = wolfSSL_ASN1_STRING_length(val);
        return wolfSSL_ASN1_STRING_data(val);
    }
    return NULL;
}

/* What our own walk of the TBSCertificate (RFC 5280 4.1.1.1, 4.1.2) finds. */
struct tbs_parts {
    struct pol_tlv serial, issuer, subject, spki;
    time_t not_before, not_after;
};

static int walk_tbs(const uint8_t *der, size_t len, struct tbs_parts *p)
{
    struct pol_der d = { der, len };
    struct pol_tlv cert, tbs, t, nb, na;
    if (pol_der_expect(&d, POL_TAG_SEQUENCE, &cert) != 0 || d.len != 0)
        return POL_E_DER;
    struct pol_der c = pol_der_in(&cert);
    if (pol_der_expect(&c, POL_TAG_SEQUENCE, &tbs) != 0)
        return POL_E_DER;
    struct pol_der b = pol_der_in(&tbs);
    if (pol_der_peek(&b) == POL_TAG_CTX(0) && pol_der_next(&b, &t) != 0)
        return POL_E_DER;
    if (pol_der_expect(&b, POL_TAG_INTEGER, &p->serial) != 0 || pol_der_uint(&p->serial, POL_SERIAL_MAX) != 0 ||
        pol_der_expect(&b, POL_TAG_SEQUENCE, &t) != 0 || pol_der_expect(&b, POL_TAG_SEQUENCE, &p->issuer) != 0 ||
        pol_der_expect(&b, POL_TAG_SEQUENCE, &t) != 0)
        return POL_E_DER;
    struct pol_der v = pol_der_in(&t);
    if (pol_der_next(&v, &nb) != 0 || pol_der_next(&v, &na) != 0 || v.len != 0 ||
        pol_der_time(&nb, &p->not_before) != 0 || pol_der_time(&na, &p->not_after) != 0)
        return POL_E_DER;
    if (pol_der_expect(&b, POL_TAG_SEQUENCE, &p->subject) != 0 || pol_der_expect(&b, POL_TAG_SEQUENCE, &p->spki) != 0)
        return POL_E_DER;
    return 0;
}

static unsigned eku_bits(unsigned char wolf)
{
    unsigned e = 0;
    if (wolf & EXTKEYUSE_SERVER_AUTH) e |= POL_EKU_SERVER_AUTH;
    if (wolf & EXTKEYUSE_CLIENT_AUTH) e |= POL_EKU_CLIENT_AUTH;
    if (wolf & EXTKEYUSE_CODESIGN) e |= POL_EKU_CODE_SIGNING;
    if (wolf & EXTKEYUSE_EMAILPROT) e |= POL_EKU_EMAIL;
    if (wolf & EXTKEYUSE_TIMESTAMP) e |= POL_EKU_TIME_STAMPING;
    if (wolf & EXTKEYUSE_OCSP_SIGN) e |= POL_EKU_OCSP_SIGNING;
    if (wolf & EXTKEYUSE_ANY) e |= POL_EKU_ANY;
    return e;
}

/* A SAN we can match on: DNS, URI, rfc822; values with a NUL inside are skipped (they could only
 * ever match by truncation, which is how NUL-prefix attacks work). */
static int san_type(int wolf_type)
{
    switch (wolf_type) {
    case ASN_DNS_TYPE: return POL_MATCH_SAN_DNS;
    case ASN_URI_TYPE: return POL_MATCH_SAN_URI;
    case ASN_RFC822_TYPE: return POL_MATCH_SAN_EMAIL;
    default: return -1;
    }
}

static int san_usable(const DNS_entry *e)
{
    return e->name != NULL && e->len > 0 && san_type(e->type) >= 0 && memchr(e->name, 0, (size_t)e->len) == NULL;
}

/* Canonical form for matching (the same as pol_allow_value_normalize): DNS names lower-cased
 * (RFC 4343), an email's domain lower-cased (RFC 5280 4.2.1.6), URIs as they are. */
static void san_canon(int type, char *s, size_t len)
{
    if (type == POL_MATCH_SAN_DNS) {
        for (size_t i = 0; i < len; i++)
            s[i] = (char)tolower((unsigned char)s[i]);
    } else if (type == POL_MATCH_SAN_EMAIL) {
        char *at = memrchr(s, '@', len);
        for (char *p = at ? at : s + len; p < s + len; p++)
            *p = (char)tolower((unsigned char)*p);
    }
}

int pol_cert_from_der(const uint8_t *der, size_t len, struct pol_cert **out)
{
    DecodedCert dc;
    struct tbs_parts tp;
    struct pol_cert *c = NULL;
    char subject[NAME_MAX_TEXT], issuer[NAME_MAX_TEXT];
    int rc = 0, inited = 0;

    *out = NULL;
    if (der == NULL || len == 0 || len > UINT32_MAX)
        return POL_E_DER;
    POL_TRY(walk_tbs(der, len, &tp));
    wc_InitDecodedCert(&dc, der, (word32)len, NULL);
    inited = 1;
    if (wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL) != 0) {
        rc = POL_E_DER;
        goto out;
    }
    int slen = pol_name_rfc4514(dc.subjectName, subject, sizeof(subject));
    int ilen = pol_name_rfc4514(dc.issuerName, issuer, sizeof(issuer));
    if (slen < 0 || ilen < 0) {
        rc = POL_E_DER;
        goto out;
    }
    int cnlen = 0;
    const unsigned char *cn = name_cn(dc.subjectName, &cnlen);
    if (cn != NULL && (cnlen <= 0 || memchr(cn, 0, (size_t)cnlen) != NULL))
        cn = NULL;

    /* Sizes first, then one block: struct, DERs, strings, SAN table, SAN strings. */
    size_t nsans = 0, san_bytes = 0;
    const DNS_entry *lists[2] = { dc.altNames, dc.altEmailNames };
    for (int l = 0; l < 2; l++)
        for (const DNS_entry *e = lists[l]; e != NULL; e = e->next)
            if (san_usable(e)) {
                nsans++;
                san_bytes += (size_t)e->len + 1;
            }
    size_t total = tp.issuer.raw_len + tp.subject.raw_len + tp.spki.raw_len + (size_t)slen + 1 + (size_t)ilen + 1 +
                   (cn ? (size_t)cnlen + 1 : 0) + san_bytes + nsans * sizeof(struct pol_san) + sizeof(struct pol_san);
    c = calloc(1, sizeof(*c) + total);
    if (c == NULL) {
        rc = POL_E_NOMEM;
        goto out;
    }
    c->data_len = total;
    /* The SAN table first: it is the only part with alignment needs. */
    unsigned char *p = c->data;
    c->sans = (struct pol_san *)(void *)p;
    p += (nsans + 1) * sizeof(struct pol_san);
#define PUT(dst, src, n) do { memcpy(p, (src), (n)); (dst) = (void *)p; p += (n); } while (0)
    PUT(c->issuer_der, tp.issuer.raw, tp.issuer.raw_len);
    c->issuer_der_len = tp.issuer.raw_len;
    PUT(c->subject_der, tp.subject.raw, tp.subject.raw_len);
    c->subject_der_len = tp.subject.raw_len;
    PUT(c->spki_der, tp.spki.raw, tp.spki.raw_len);
    c->spki_der_len = tp.spki.raw_len;
    PUT(c->subject, subject, (size_t)slen + 1);
    c->subject_len = (size_t)slen;
    PUT(c->issuer, issuer, (size_t)ilen + 1);
    if (cn != NULL) {
        memcpy(p, cn, (size_t)cnlen);
        p[cnlen] = '\0';
        c->cn = (const char *)p;
        c->cn_len = (size_t)cnlen;
        p += cnlen + 1;
    }
#undef PUT
    c->strings = (char *)p;
    size_t off = 0;
    for (int l = 0; l < 2; l++)
        for (const DNS_entry *e = lists[l]; e != NULL; e = e->next) {
            if (!san_usable(e))
                continue;
            struct pol_san *s = &c->sans[c->nsans++];
            s->type = (uint8_t)san_type(e->type);
            s->off = (uint32_t)off;
            s->len = (uint32_t)e->len;
            memcpy(c->strings + off, e->name, (size_t)e->len);
            c->strings[off + (size_t)e->len] = '\0';
            san_canon(s->type, c->strings + off, (size_t)e->len);
            off += (size_t)e->len + 1;
        }

    memcpy(c->serial, tp.serial.v, tp.serial.len);
    c->serial_len = tp.serial.len;
    c->not_before = tp.not_before;
    c->not_after = tp.not_after;
    c->has_eku = dc.extExtKeyUsageSet;
    c->eku = c->has_eku ? eku_bits(dc.extExtKeyUsage) : 0;
    c->is_ca = dc.isCA;
    c->has_key_usage = dc.extKeyUsageSet;
    c->key_usage = dc.extKeyUsage;
    if ((rc = pol_sha256(der, len, c->fingerprint)) != 0 ||
        (rc = pol_sha256(tp.spki.raw, tp.spki.raw_len, c->spki_hash)) != 0 ||
        (rc = pol_sha256(tp.issuer.raw, tp.issuer.raw_len, c->issuer_hash)) != 0 ||
        (rc = pol_sha256(tp.subject.raw, tp.subject.raw_len, c->subject_hash)) != 0)
        goto out;
    *out = c;
    c = NULL;
out:
    if (inited)
        wc_FreeDecodedCert(&dc);
    free(c);
    c = NULL;
    return rc;
}

void pol_cert_free(struct pol_cert *c)
{
    free(c);
}

int pol_cert_load(const char *path, struct pol_cert **out, char *err, size_t errlen)
{
    uint8_t *der = NULL;
    size_t dlen = 0;
    int rc = 0;
    *out = NULL;
    POL_TRY(pol_file_load(path, "CERTIFICATE", CERT_FILE_MAX, &der, &dlen, err, errlen));
    if ((rc = pol_cert_from_der(der, dlen, out)) != 0)
        pol_errf(err, errlen, rc, "%s: the certificate does not parse (%s)", path, pol_strerror(rc));
out:
    free(der);
    der = NULL;
    return rc;
}

const char *pol_cert_subject(const struct pol_cert *c) { return c->subject; }
const char *pol_cert_issuer(const struct pol_cert *c) { return c->issuer; }
const char *pol_cert_cn(const struct pol_cert *c) { return c->cn; }
const uint8_t *pol_cert_fingerprint(const struct pol_cert *c) { return c->fingerprint; }
const uint8_t *pol_cert_spki_hash(const struct pol_cert *c) { return c->spki_hash; }
const uint8_t *pol_cert_issuer_hash(const struct pol_cert *c) { return c->issuer_hash; }
const uint8_t *pol_cert_subject_hash(const struct pol_cert *c) { return c->subject_hash; }
int pol_cert_is_ca(const struct pol_cert *c) { return c->is_ca; }
time_t pol_cert_not_after(const struct pol_cert *c) { return c->not_after; }

time_t pol_cert_not_before(const struct pol_cert *c) { return c->not_before; }

const uint8_t *pol_cert_serial(const struct pol_cert *c, size_t *len)
{
    *len = c->serial_len;
    return c->serial;
}

void pol_revocation_of_cert(const struct pol_cert *c, struct pol_revocation *r)
{
    memset(r, 0, sizeof(*r));
    r->issuer_der = c->issuer_der;
    r->issuer_der_len = c->issuer_der_len;
    r->issuer_text = c->issuer;
    r->serial = c->serial;
    r->serial_len = c->serial_len;
}

void pol_revocation_of_issuer(const struct pol_cert *ca, const uint8_t *serial, size_t len, struct pol_revocation *r)
{
    memset(r, 0, sizeof(*r));
    r->issuer_der = ca->subject_der;
    r->issuer_der_len = ca->subject_der_len;
    r->issuer_text = ca->subject;
    r->serial = serial;
    r->serial_len = len;
}
