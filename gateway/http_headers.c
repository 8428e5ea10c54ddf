/* http_headers.c - the pure parts of https listeners (http.h): which incoming headers go, the syntax
 * checks http_parser leaves out, the identity headers the gateway adds, its own short responses.
 * No I/O, no state: each function is tested on its own (tests/unit/test_http.c).
 */
#include "gateway/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *gw_http_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case GW_HTTP_E_NOMEM: return "out of memory";
    case GW_HTTP_E_ARG: return "invalid argument";
    case GW_HTTP_E_SPACE: return "buffer too small";
    default: return "unknown error";
    }
}

/* ---- names ---- */

void gw_http_names_resolve(const struct gw_listener_cfg *cfg, struct gw_http_names *out)
{
    const struct gw_identity_headers *h = &cfg->headers;
    out->client_cert = h->client_cert;
    out->client_cert_chain = h->client_cert_chain;
    out->subject = h->subject;
    out->issuer = h->issuer;
    out->serial = h->serial;
    out->fingerprint = h->fingerprint;
    out->not_after = h->not_after;
    out->verify = h->verify;
    out->forwarded_for = h->forwarded_for;
    out->forwarded_proto = h->forwarded_proto;
}

/* One byte of a header name, folded for comparison: lower case, '_' as '-'. */
static unsigned char fold(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return (unsigned char)(ch - 'A' + 'a');
    return ch == '_' ? '-' : ch;
}

/* 1 when name[0..len) starts with lit (lit: lower case, dashes), or equals it when whole. */
static int name_match(const char *name, size_t len, const char *lit, int whole)
{
    size_t n = strlen(lit);
    if (len < n || (whole && len != n))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (fold((unsigned char)name[i]) != fold((unsigned char)lit[i]))
            return 0;
    return 1;
}

int gw_http_header_stripped(const struct gw_http_names *names, char *const *strip, size_t nstrip,
                            const char *name, size_t len)
{
    /* Whatever a backend could take for the gateway's word on the client: certificate headers of
     * RFC 9440 and of the common proxies (nginx $ssl_client_*, Envoy XFCC), forwarding headers. */
    static const char *const exact[] = { "client-cert", "client-cert-chain", "x-client-verify", "forwarded",
                                         "x-real-ip" };
    static const char *const prefix[] = { "x-client-cert", "x-ssl", "x-forwarded-" };
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        if (name_match(name, len, exact[i], 1))
            return 1;
    for (size_t i = 0; i < sizeof(prefix) / sizeof(prefix[0]); i++)
        if (name_match(name, len, prefix[i], 0))
            return 1;
    if (names != NULL) {
        const char *const mine[] = { names->client_cert, names->client_cert_chain, names->subject,
                                     names->issuer, names->serial, names->fingerprint, names->not_after,
                                     names->verify, names->forwarded_for, names->forwarded_proto };
        for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
            if (mine[i] != NULL && name_match(name, len, mine[i], 1))
                return 1;
    }
    for (size_t i = 0; strip != NULL && i < nstrip; i++)
        if (strip[i] != NULL && name_match(name, len, strip[i], 1))
            return 1;
    return 0;
}

/* ---- syntax ---- */

/* RFC 9110 5.6.2: tchar. */
static int tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return 1;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

int gw_http_token_ok(const char *s, size_t len)
{
    if (s == NULL || len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

int gw_http_value_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
            return 0;
    }
    return 1;
}

int gw_http_request_line_ok(const char *line, size_t len, int *minor)
{
    size_t i = 0;
    while (i < len && line[i] != ' ')
        i++;
    if (i == len || !gw_http_token_ok(line, i))
        return 0;
    size_t t = ++i;
    /* RFC 9112 3.2: the target holds no whitespace; visible ASCII only (RFC 3986 characters, and
     * the few others browsers send percent-encoded or not). */
    while (i < len && (unsigned char)line[i] > 0x20 && (unsigned char)line[i] < 0x7f)
        i++;
    if (i == t || i == len || line[i] != ' ')
        return 0;
    i++;
    /* RFC 9112 2.3: HTTP/1.0 or HTTP/1.1, nothing after it. HTTP/0.9 has no version, HTTP/2 has
     * another framing: both are refused rather than guessed. */
    if (len - i != 8 || memcmp(line + i, "HTTP/1.", 7) != 0 || (line[i + 7] != '0' && line[i + 7] != '1'))
        return 0;
    if (minor != NULL)
        *minor = line[i + 7] - '0';
    return 1;
}

/* Case-insensitive equality of s[0..len) with lit (lower case). */
static int ieq(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch - 'A' + 'a');
        if (ch != (unsigned char)lit[i])
            return 0;
    }
    return 1;
}

int gw_http_framing_decide(const char *const *te, const size_t *te_len, size_t nte, const char *const *cl,
                           const size_t *cl_len, size_t ncl, int http10, enum gw_http_framing *framing,
                           uint64_t *length)
{
    *framing = GW_HTTP_FRAMING_NONE;
    *length = 0;
    if (nte > 0) {
        /* RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request is faulty; 6.3 (3): with
         * Content-Length too, the message is a smuggling attempt until proven otherwise (CL.TE,
         * TE.CL); and the only coding a gateway can frame without decoding is one final "chunked".
         * Several fields or a list ("chunked, chunked", "gzip, chunked", "chunked, identity")
         * are refused too: TE.TE attacks live in the differences between parsers' lists. */
        if (http10 || ncl > 0 || nte != 1 || !ieq(te[0], te_len[0], "chunked"))
            return 400;
        *framing = GW_HTTP_FRAMING_CHUNKED;
        return 0;
    }
    if (ncl == 0)
        return 0;
    /* RFC 9110 8.6: one Content-Length, 1*DIGIT. A list ("5, 5") or repeated fields are refused,
     * equal or not: the gateway forwards exactly one. */
    if (ncl != 1 || cl_len[0] == 0)
        return 400;
    for (size_t i = 0; i < cl_len[0]; i++)
        if (cl[0][i] < '0' || cl[0][i] > '9')
            return 400;
    size_t i = 0;
    while (i + 1 < cl_len[0] && cl[0][i] == '0')
        i++;
    if (cl_len[0] - i > 18)
        return 413;
    uint64_t v = 0;
    for (; i < cl_len[0]; i++)
        v = v * 10 + (uint64_t)(cl[0][i] - '0');
    *framing = GW_HTTP_FRAMING_LENGTH;
    *length = v;
    return 0;
}

int gw_http_chunk_line_ok(const unsigned char *s, size_t len, int first)
{
    size_t i = 0;
    if (!first) {
        if (len < 2 || s[0] != '\r' || s[1] != '\n')
            return 0;
        i = 2;
    }
    if (len < i + 3 || s[len - 2] != '\r' || s[len - 1] != '\n')
        return 0;
    len -= 2;
    size_t d = i;
    while (i < len && ((s[i] >= '0' && s[i] <= '9') || ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'f')))
        i++;
    if (i == d || i - d > 16)
        return 0;
    if (i == len)
        return 1;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == len || s[i] != ';')
        return 0;
    for (; i < len; i++)
        if (s[i] != '\t' && (s[i] < 0x20 || s[i] == 0x7f))
            return 0;
    return 1;
}

/* ---- identity ---- */

int gw_http_value_escape(const char *in, char *out, size_t cap)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t n = strlen(in), j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)in[i];
        int plain = (ch > 0x20 && ch < 0x7f) || (ch == ' ' && i > 0 && i + 1 < n);
        size_t need = plain ? 1 : 3;
        if (j + need >= cap)
            return GW_HTTP_E_SPACE;
        if (plain) {
            out[j++] = (char)ch;
        } else {
            out[j++] = '\\';
            out[j++] = hexd[ch >> 4];
            out[j++] = hexd[ch & 15];
        }
    }
    if (j >= cap)
        return GW_HTTP_E_SPACE;
    out[j] = '\0';
    return (int)j;
}

int gw_http_base64(const unsigned char *in, size_t n, char *out, size_t cap)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t need = (n + 2) / 3 * 4;
    if (need >= cap || need > (size_t)0x7fffffff)
        return GW_HTTP_E_SPACE;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[j++] = al[(v >> 18) & 63];
        out[j++] = al[(v >> 12) & 63];
        out[j++] = i + 1 < n ? al[(v >> 6) & 63] : '=';
        out[j++] = i + 2 < n ? al[v & 63] : '=';
    }
    out[j] = '\0';
    return (int)j;
}

/* A growing string; err sticks once an allocation failed. */
struct sbuf {
    char *p;
    size_t len, cap;
    int err;
};

static char *sb_reserve(struct sbuf *sb, size_t n)
{
    if (sb->err)
        return NULL;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 1024;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *p = realloc(sb->p, cap);
        if (p == NULL) {
            sb->err = GW_HTTP_E_NOMEM;
            return NULL;
        }
        sb->p = p;
        sb->cap = cap;
    }
    return sb->p + sb->len;
}

static void sb_add(struct sbuf *sb, const char *s, size_t n)
{
    char *d = sb_reserve(sb, n);
    if (d == NULL)
        return;
    memcpy(d, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static void sb_str(struct sbuf *sb, const char *s)
{
    sb_add(sb, s, strlen(s));
}

/* "name: escaped value\r\n"; a name that is not a token is a configuration error. */
static void sb_header(struct sbuf *sb, const char *name, const char *value)
{
    if (name == NULL || sb->err)
        return;
    if (!gw_http_token_ok(name, strlen(name))) {
        sb->err = GW_HTTP_E_ARG;
        return;
    }
    size_t cap = strlen(value) * 3 + 1;
    char *d = sb_reserve(sb, strlen(name) + 2 + cap + 2);
    if (d == NULL)
        return;
    int n = sprintf(d, "%s: ", name);
    int v = gw_http_value_escape(value, d + n, cap);
    if (v < 0) {
        sb->err = v;
        return;
    }
    sb->len += (size_t)n + (size_t)v;
    sb_add(sb, "\r\n", 2);
}

/* RFC 8941 3.3.5: a byte sequence, ":" base64 ":". */
static void sb_sf_binary(struct sbuf *sb, const unsigned char *der, size_t len)
{
    size_t cap = (len + 2) / 3 * 4 + 1;
    char *d = sb_reserve(sb, cap + 2);
    if (d == NULL)
        return;
    d[0] = ':';
    int n = gw_http_base64(der, len, d + 1, cap);
    if (n < 0) {
        sb->err = n;
        return;
    }
    d[1 + n] = ':';
    sb->len += (size_t)n + 2;
    sb->p[sb->len] = '\0';
}

int gw_http_identity_build(const struct gw_http_names *names, const struct gw_http_client *cl, char **out,
                           size_t *len)
{
    if (names == NULL || cl == NULL || out == NULL || len == NULL || (cl->verified && cl->pi == NULL))
        return GW_HTTP_E_ARG;
    struct sbuf sb = { 0 };
    sb_add(&sb, "", 0);
    int cert = cl->verified && cl->der != NULL && cl->der_len > 0;
    if (cert && names->client_cert != NULL && gw_http_token_ok(names->client_cert, strlen(names->client_cert))) {
        /* RFC 9440 2.2: the DER certificate as a byte sequence; base64 cannot hold CR or LF. */
        sb_str(&sb, names->client_cert);
        sb_str(&sb, ": ");
        sb_sf_binary(&sb, cl->der, cl->der_len);
        sb_str(&sb, "\r\n");
    } else if (cert && names->client_cert != NULL) {
        sb.err = GW_HTTP_E_ARG;
    }
    if (cert && names->client_cert_chain != NULL && cl->nchain > 0) {
        if (!gw_http_token_ok(names->client_cert_chain, strlen(names->client_cert_chain))) {
            sb.err = GW_HTTP_E_ARG;
        } else {
            /* RFC 9440 2.3: a list of byte sequences, the issuer of the leaf first. */
            sb_str(&sb, names->client_cert_chain);
            sb_str(&sb, ": ");
            for (size_t i = 0; i < cl->nchain; i++) {
                if (i > 0)
                    sb_str(&sb, ", ");
                sb_sf_binary(&sb, cl->chain[i], cl->chain_len[i]);
            }
            sb_str(&sb, "\r\n");
        }
    }
    if (cl->verified) {
        sb_header(&sb, names->subject, cl->pi->subject);
        sb_header(&sb, names->issuer, cl->pi->issuer);
        sb_header(&sb, names->serial, cl->pi->serial);
        sb_header(&sb, names->fingerprint, cl->pi->fp_sha256);
        sb_header(&sb, names->not_after, cl->pi->not_after);
    }
    sb_header(&sb, names->verify, cl->verify != NULL ? cl->verify : "NONE");
    if (cl->ip != NULL && cl->ip[0] != '\0')
        sb_header(&sb, names->forwarded_for, cl->ip);
    sb_header(&sb, names->forwarded_proto, "https");
    if (sb.err != 0) {
        free(sb.p);
        return sb.err;
    }
    *out = sb.p;
    *len = sb.len;
    return 0;
}

/* ---- the gateway's own responses ---- */

int gw_http_local_response(int status, int head_only, char *out, size_t cap)
{
    const char *reason, *body;
    switch (status) {
    case 400: reason = "Bad Request"; body = "bad request\n"; break;
    case 413: reason = "Content Too Large"; body = "request body too large\n"; break;
    case 431: reason = "Request Header Fields Too Large"; body = "request header fields too large\n"; break;
    case 502: reason = "Bad Gateway"; body = "bad gateway: no backend could be reached\n"; break;
    case 504: reason = "Gateway Timeout"; body = "gateway timeout: the backend did not answer in time\n"; break;
    default: status = 500; reason = "Internal Server Error"; body = "internal error\n"; break;
    }
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, reason, strlen(body), head_only ? "" : body);
    if (n < 0 || (size_t)n >= cap)
        return GW_HTTP_E_SPACE;
    return n;
}
