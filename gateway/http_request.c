/* http_request.c - the request side of the HTTP engine (http.h, http_int.h): client bytes in,
 * checked, a rebuilt request out for the backend.
 *
 * http_parser (HTTP_REQUEST) is run over the client's bytes, paused at the end of each
 * head, at each chunk-size line and at the end of each message, so every call covers one part of
 * one request. Head bytes are kept (up to max_header_bytes) and checked once the head is complete,
 * for what Debian's http_parser (built without HTTP_PARSER_STRICT) accepts and RFC 9112 does not:
 * bare CR or LF (2.2), obs-fold (5.2), a request line that is not "method SP target SP HTTP/1.x"
 * (3; HTTP/0.9 and 2.0 lines too), field names that are not tokens ("Transfer-Encoding :"),
 * control bytes in values, Host missing or repeated (3.2), CONNECT, and framing (6.1-6.3, in
 * gw_http_framing_decide): Content-Length with Transfer-Encoding, several Content-Length, codings
 * other than one "chunked", and any disagreement between our reading and http_parser's. Then a new
 * head is written: the request line as received, the fields minus the identity and hop-by-hop ones
 * (RFC 9110 7.6.1, including those Connection names; naming a framing field there is refused), one
 * framing field, Connection when needed, the identity block. Body bytes are what on_body delimits;
 * chunk-size lines are checked (RFC 9112 7.1: "\r\n" after data, hex size, extensions without
 * control bytes, CRLF) before they are copied; trailers are dropped (RFC 9110 6.5.1 allows it)
 * and the chunked body ends with our own CRLF. A problem in a head is answered (400, 413, 431) in
 * its turn, with Connection: close; a problem in a body whose head was forwarded is answered the
 * same way when no byte of its response was relayed, and the backend connection is dropped.
 */
#include "gateway/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Method and target of the request being read, for its log record. */
static void describe(struct gw_http *h, struct gw_hreq *r)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t i = 0;
    while (i + 1 < h->head_len && h->head[i] == '\r' && h->head[i + 1] == '\n')
        i += 2;
    size_t m = i;
    while (m < h->head_len && h->head[m] != ' ' && m - i < sizeof(r->method) - 1)
        m++;
    r->method[0] = '\0';
    if (m < h->head_len && h->head[m] == ' ' && gw_http_token_ok(h->head + i, m - i)) {
        memcpy(r->method, h->head + i, m - i);
        r->method[m - i] = '\0';
    }
    size_t j = 0;
    for (size_t k = 0; k < h->url_len && j + 4 < sizeof(r->path); k++) {
        unsigned char ch = (unsigned char)h->head[h->url_off + k];
        if (ch > 0x20 && ch < 0x7f) {
            r->path[j++] = (char)ch;
        } else {
            r->path[j++] = '%';
            r->path[j++] = hexd[ch >> 4];
            r->path[j++] = hexd[ch & 15];
        }
    }
    r->path[j] = '\0';
}

/* Answers the request being read, none of which was forwarded, with status, in its turn. */
static void reject(struct gw_http *h, int status, const char *reason)
{
    if (h->qlen == GW_HTTP_PIPELINE) {
        h->abort_now = 1;
        return;
    }
    struct gw_hreq *r = &h->q[(h->qhead + h->qlen) % GW_HTTP_PIPELINE];
    memset(r, 0, sizeof(*r));
    h->qlen++;
    describe(h, r);
    r->local = 1;
    r->status = status;
    r->result = "rejected";
    r->reason = reason;
    r->t_start = h->cur_t_start ? h->cur_t_start : h->now;
    r->bytes_in = h->cur_bytes_in;
    gw_http_stop_reading(h);
    gw_http_front_check(h);
}

/* A request whose head was forwarded turns out bad in its body: the backend holds half a request,
 * so it is dropped when this request's turn comes, and the client gets status if no byte of the
 * response went out yet. */
static void body_fail(struct gw_http *h, int status, const char *reason)
{
    struct gw_hreq *r = gw_http_newest(h);
    gw_http_stop_reading(h);
    if (r == NULL || r->local || r->complete) {
        h->abort_now = 1;
        return;
    }
    r->local = 1;
    r->status = status;
    r->result = "rejected";
    r->reason = reason;
    r->bytes_in = h->cur_bytes_in;
    gw_http_front_check(h);
}

/* ---- request callbacks (http_parser) ---- */

static size_t head_off(const struct gw_http *h, const char *at)
{
    return h->exec_head_off + (size_t)(at - h->exec_base);
}

static int rq_url(http_parser *p, const char *at, size_t len)
{
    struct gw_http *h = gw_http_of(p);
    if (h == NULL)
        return -1;
    if (h->phase != RQ_HEAD)
        return 0;
    size_t off = head_off(h, at);
    if (h->last == CB_URL && off == h->url_off + h->url_len) {
        h->url_len += len;
    } else if (h->last == CB_NONE) {
        h->url_off = off;
        h->url_len = len;
    } else {
        h->pieces_apart = 1;
    }
    h->last = CB_URL;
    return 0;
}

/* http_parser hands names and values over in pieces, when it reaches their end or the end of its
 * input: the callbacks below record and never refuse (but for memory), so that what is refused, and
 * with which status, does not depend on how the bytes were cut into reads; head_finish decides. */

static int rq_field(http_parser *p, const char *at, size_t len)
{
    struct gw_http *h = gw_http_of(p);
    if (h == NULL)
        return -1;
    if (h->phase != RQ_HEAD)
        return 0; /* trailers: dropped, counted in body_step */
    size_t off = head_off(h, at);
    if (h->last == CB_FIELD) {
        if (h->skipping)
            return 0;
        struct gw_hfield *f = &h->f[h->nf - 1];
        if (off != f->name_off + f->name_len)
            h->pieces_apart = 1;
        f->name_len += len;
        f->val_off = off + len;
        return 0;
    }
    h->last = CB_FIELD;
    h->nfields++;
    h->skipping = h->nf >= h->max_headers; /* counted, not kept: 431 once the head is complete */
    if (h->skipping)
        return 0;
    if (h->f == NULL) {
        h->f = calloc(h->max_headers, sizeof(*h->f));
        if (h->f == NULL) {
            h->err = 500;
            h->err_reason = "out_of_memory";
            return -1;
        }
    }
    struct gw_hfield *f = &h->f[h->nf++];
    f->name_off = off;
    f->name_len = len;
    f->val_off = off + len;
    f->val_len = 0;
    return 0;
}

static int rq_value(http_parser *p, const char *at, size_t len)
{
    struct gw_http *h = gw_http_of(p);
    if (h == NULL)
        return -1;
    if (h->phase != RQ_HEAD)
        return 0;
    size_t off = head_off(h, at);
    if (h->last != CB_FIELD && h->last != CB_VALUE) {
        h->pieces_apart = 1;
        return 0;
    }
    int first = h->last == CB_FIELD;
    h->last = CB_VALUE;
    if (h->skipping)
        return 0;
    struct gw_hfield *f = &h->f[h->nf - 1];
    if (first) {
        f->val_off = off;
        f->val_len = len;
    } else {
        /* A value in two pieces that do not touch: obs-fold (RFC 9112 5.2). */
        if (off != f->val_off + f->val_len)
            h->pieces_apart = 1;
        f->val_len += len;
    }
    return 0;
}

static int rq_headers_complete(http_parser *p)
{
    struct gw_http *h = gw_http_of(p);
    if (h == NULL)
        return -1;
    if (h->phase == RQ_HEAD) {
        h->head_done = 1;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int rq_body(http_parser *p, const char *at, size_t len)
{
    struct gw_http *h = gw_http_of(p);
    if (h == NULL)
        return -1;
    /* Body bytes come only right after a head or a chunk-size line, each of which pauses the parser:
     * anything else means the framing was not what we checked. */
    if (h->phase != RQ_BODY || at != h->body_next || h->chunk_line_len != 0) {
        h->body_err = 400;
        return -1;
    }
    if (gw_hbuf_add(&h->tob, at, len) != 0) {
        h->body_err = 500;
        return -1;
    }
    h->body_next = at + len;
    return 0;
}

static int rq_chunk_header(http_parser *p)
{
    struct gw_http *h = gw_http_of(p);
    if (h == NULL)
        return -1;
    h->chunk_hdr = 1;
    http_parser_pause(p, 1);
    return 0;
}

static int rq_message_complete(http_parser *p)
{
    struct gw_http *h = gw_http_of(p);
    if (h == NULL)
        return -1;
    h->msg_done = 1;
    http_parser_pause(p, 1);
    return 0;
}

/* ---- request side ---- */

/* The raw bytes data[0..n) the parser took: RFC 9112 2.2, every LF after a CR and every CR before a LF. */
static void crlf_scan(struct gw_http *h, const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)data[i];
        if ((ch == '\n' && h->prev != '\r') || (h->prev == '\r' && ch != '\n'))
            h->crlf_bad = 1;
        h->prev = ch;
    }
}

static void head_take(struct gw_http *h, const char *data, size_t n)
{
    crlf_scan(h, data, n);
    memcpy(h->head + h->head_len, data, n);
    h->head_len += n;
    gw_hbuf_consume(&h->in, n);
    h->cur_bytes_in += n;
}

static int name_is(const char *s, size_t len, const char *lit);

/* http_parser refuses a Content-Length past 2^64 as it reads it: 413 rather than 400 when what it
 * stopped in is a Content-Length of digits only, too many of them (gw_http_framing_decide's rule). */
static int length_too_long(const struct gw_http *h)
{
    if (h->nf == 0 || !name_is(h->head + h->f[h->nf - 1].name_off, h->f[h->nf - 1].name_len, "content-length"))
        return 0;
    size_t i = h->f[h->nf - 1].name_off + h->f[h->nf - 1].name_len, digits = 0;
    while (i < h->head_len && (h->head[i] == ':' || h->head[i] == ' ' || h->head[i] == '\t'))
        i++;
    for (; i < h->head_len && h->head[i] >= '0' && h->head[i] <= '9'; i++)
        digits++;
    return digits >= 18;
}

/* The verdict after a call on head bytes: 0 to go on, -1 after a reject. Whatever is found first in
 * the bytes wins, however they were cut into reads: a bare CR or LF is seen in bytes the parser took,
 * so before anything the parser stopped at. */
static int head_verdict(struct gw_http *h)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&h->rp);
    if (h->crlf_bad) {
        reject(h, 400, "bare_cr_or_lf");
        return -1;
    }
    if (h->err != 0) {
        reject(h, h->err, h->err_reason);
        return -1;
    }
    if (e == HPE_INVALID_CONTENT_LENGTH && length_too_long(h)) {
        reject(h, 413, "content_length_too_large");
        return -1;
    }
    if (e != HPE_OK && e != HPE_PAUSED) {
        reject(h, e == HPE_HEADER_OVERFLOW ? 431 : 400, http_errno_name(e));
        return -1;
    }
    return 0;
}

static void request_reset(struct gw_http *h)
{
    h->head_len = 0;
    h->nf = 0;
    h->nfields = 0;
    h->skipping = 0;
    h->pieces_apart = 0;
    h->url_off = h->url_len = 0;
    h->last = CB_NONE;
    h->head_done = h->msg_done = h->chunk_hdr = h->chunked = 0;
    h->prev = 0;
    h->crlf_bad = 0;
    h->chunk_line_len = 0;
    h->trailer_bytes = 0;
    h->cur_bytes_in = 0;
    h->cur_t_start = 0;
}

/* Every byte of the newest request is queued for the backend. */
static void request_done(struct gw_http *h)
{
    struct gw_hreq *r = gw_http_newest(h);
    r->complete = 1;
    r->t_done = h->now;
    r->bytes_in = h->cur_bytes_in;
    int keep = h->keep_alive;
    request_reset(h);
    if (keep)
        h->phase = RQ_HEAD;
    else
        gw_http_stop_reading(h);
}

static int name_is(const char *s, size_t len, const char *lit)
{
    if (strlen(lit) != len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch - 'A' + 'a');
        if (ch == '_' && lit[i] == '-')
            ch = '-';
        if (ch != (unsigned char)lit[i])
            return 0;
    }
    return 1;
}

/* Field names compared as gw_http_header_stripped does: case-insensitive, '_' as '-'. */
static int names_eq(const char *a, size_t al, const char *b, size_t bl)
{
    if (al != bl)
        return 0;
    for (size_t i = 0; i < al; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        x = x >= 'A' && x <= 'Z' ? (unsigned char)(x - 'A' + 'a') : x == '_' ? '-' : x;
        y = y >= 'A' && y <= 'Z' ? (unsigned char)(y - 'A' + 'a') : y == '_' ? '-' : y;
        if (x != y)
            return 0;
    }
    return 1;
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

/* Splits a list value (RFC 9110 5.6.1) into trimmed, non-empty elements; returns their count, or
 * -1 with more than max. */
static int list_split(const char *v, size_t len, const char **el, size_t *ell, size_t max, size_t have)
{
    size_t n = have, i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && v[j] != ',')
            j++;
        const char *e = v + i;
        size_t el_len = j - i;
        trim(&e, &el_len);
        if (el_len > 0) {
            if (n == max)
                return -1;
            el[n] = e;
            ell[n] = el_len;
            n++;
        }
        i = j + 1;
    }
    return (int)n;
}

/* Fields the gateway never forwards as received: hop-by-hop ones (RFC 9110 7.6.1; Upgrade and
 * HTTP2-Settings too: the gateway does not switch protocols, and an h2c upgrade would take the
 * backend connection out of its sight) and the framing, which it writes itself. */
static int hop_by_hop(const char *name, size_t len)
{
    static const char *const names[] = { "connection", "keep-alive", "proxy-connection", "upgrade",
                                         "http2-settings", "transfer-encoding", "content-length" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (name_is(name, len, names[i]))
            return 1;
    return 0;
}

#define ADD(s, n)                                                                                  \
    do {                                                                                           \
        if (gw_hbuf_add(&h->tob, (s), (n)) != 0)                                                       \
            ok = 0;                                                                                \
    } while (0)
#define ADDS(lit) ADD(lit, sizeof(lit) - 1)

/* The head is complete and its last byte taken: check it, write the backend's version of it. */
static void head_finish(struct gw_http *h)
{
    const char *hd = h->head;
    size_t i = 0;
    while (i + 1 < h->head_len && hd[i] == '\r' && hd[i + 1] == '\n')
        i += 2;
    const char *line = hd + i;
    const char *eol = memmem(line, h->head_len - i, "\r\n", 2);
    int minor = 1;
    if (eol == NULL || !gw_http_request_line_ok(line, (size_t)(eol - line), &minor)) {
        reject(h, 400, "bad_request_line");
        return;
    }
    size_t line_len = (size_t)(eol - line);
    const char *sp1 = memchr(line, ' ', line_len);
    const char *ms = http_method_str((enum http_method)h->rp.method);
    /* Belt and braces: what http_parser read is what we checked. */
    if (sp1 == NULL || strlen(ms) != (size_t)(sp1 - line) || memcmp(ms, line, strlen(ms)) != 0 ||
        h->url_off != (size_t)(sp1 + 1 - hd) || h->url_len == 0 || hd[h->url_off + h->url_len] != ' ' ||
        h->rp.http_major != 1 || h->rp.http_minor != (unsigned short)minor) {
        reject(h, 400, "bad_request_line");
        return;
    }
    /* RFC 9112 5.2: a line that starts with SP or HTAB continues the previous one (obs-fold). */
    for (const char *p = eol + 2; p < hd + h->head_len;) {
        if (*p == ' ' || *p == '\t') {
            reject(h, 400, "obs_fold");
            return;
        }
        const char *e = memmem(p, (size_t)(hd + h->head_len - p), "\r\n", 2);
        if (e == NULL)
            break;
        p = e + 2;
    }
    if (h->pieces_apart) { /* a name, value or target that http_parser reported in pieces apart */
        reject(h, 400, "obs_fold");
        return;
    }
    if (h->nfields > h->max_headers) {
        reject(h, 431, "too_many_headers");
        return;
    }
    if (h->rp.method == HTTP_CONNECT) {
        reject(h, 400, "connect_not_supported");
        return;
    }
    const char *te[GW_HTTP_MAX_TE], *cl[2], *ct[GW_HTTP_MAX_CONN_TOKENS];
    size_t te_len[GW_HTTP_MAX_TE], cl_len[2], ct_len[GW_HTTP_MAX_CONN_TOKENS];
    size_t nte = 0, ncl = 0, nct = 0, nhost = 0;
    for (size_t k = 0; k < h->nf; k++) {
        const char *name = hd + h->f[k].name_off, *v = hd + h->f[k].val_off;
        size_t nl = h->f[k].name_len, vl = h->f[k].val_len;
        trim(&v, &vl);
        if (!gw_http_token_ok(name, nl)) {
            reject(h, 400, "bad_header_name");
            return;
        }
        if (!gw_http_value_ok(v, vl)) {
            reject(h, 400, "bad_header_value");
            return;
        }
        /* Content_Length is not Content-Length to us, but is to a CGI-style backend; and http_parser
         * 2.9 takes any name that starts with Transfer-Encoding ("Transfer-EncodingX") for one. */
        if ((memchr(name, '_', nl) != NULL && (name_is(name, nl, "content-length") ||
                                               name_is(name, nl, "transfer-encoding") || name_is(name, nl, "host"))) ||
            (nl > 17 && name_is(name, 17, "transfer-encoding")) || (nl > 14 && name_is(name, 14, "content-length"))) {
            reject(h, 400, "ambiguous_header_name");
            return;
        }
        if (name_is(name, nl, "host")) {
            nhost++;
        } else if (name_is(name, nl, "transfer-encoding")) {
            int n = list_split(v, vl, te, te_len, GW_HTTP_MAX_TE, nte);
            if (n < 0 || (size_t)n == nte) {
                reject(h, 400, "bad_transfer_encoding");
                return;
            }
            nte = (size_t)n;
        } else if (name_is(name, nl, "content-length")) {
            if (ncl < 2) {
                cl[ncl] = v;
                cl_len[ncl] = vl;
            }
            ncl++;
        } else if (name_is(name, nl, "connection")) {
            int n = list_split(v, vl, ct, ct_len, GW_HTTP_MAX_CONN_TOKENS, nct);
            if (n < 0) {
                reject(h, 400, "bad_connection");
                return;
            }
            nct = (size_t)n;
        }
    }
    for (size_t k = 0; k < nct; k++) {
        /* Naming a framing field in Connection asks a proxy to remove it: the backend would then
         * frame the body differently from us (RFC 9110 7.6.1 lets us refuse). */
        if (!gw_http_token_ok(ct[k], ct_len[k]) || name_is(ct[k], ct_len[k], "content-length") ||
            name_is(ct[k], ct_len[k], "transfer-encoding") || name_is(ct[k], ct_len[k], "host")) {
            reject(h, 400, "bad_connection");
            return;
        }
    }
    /* RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0. */
    if (minor == 1 ? nhost != 1 : nhost > 1) {
        reject(h, 400, "bad_host");
        return;
    }
    enum gw_http_framing framing;
    uint64_t length;
    int st = gw_http_framing_decide(te, te_len, nte, cl, cl_len, ncl > 2 ? 2 : ncl, minor == 0, &framing, &length);
    if (st == 0 && ncl > 2)
        st = 400;
    if (st != 0) {
        reject(h, st, st == 413 ? "content_length_too_large" : "ambiguous_framing");
        return;
    }
    /* Our reading and http_parser's must agree, or the body would be cut where the backend does not. */
    int parser_chunked = (h->rp.flags & F_CHUNKED) != 0;
    if ((framing == GW_HTTP_FRAMING_CHUNKED) != parser_chunked ||
        (framing == GW_HTTP_FRAMING_NONE && !h->msg_done) ||
        (framing == GW_HTTP_FRAMING_LENGTH && length == 0 && !h->msg_done) ||
        (framing == GW_HTTP_FRAMING_LENGTH && length > 0 && (h->msg_done || h->rp.content_length != length))) {
        reject(h, 400, "framing_mismatch");
        return;
    }
    h->keep_alive = http_should_keep_alive(&h->rp) != 0;

    int ok = gw_hbuf_reserve(&h->tob, h->head_len + h->ident_len + 128) == 0;
    ADD(line, line_len);
    ADDS("\r\n");
    for (size_t k = 0; k < h->nf; k++) {
        const char *name = hd + h->f[k].name_off, *v = hd + h->f[k].val_off;
        size_t nl = h->f[k].name_len, vl = h->f[k].val_len;
        trim(&v, &vl);
        if (hop_by_hop(name, nl) || gw_http_header_stripped(&h->names, h->cfg->strip_headers,
                                                             h->cfg->nstrip_headers, name, nl))
            continue;
        int listed = 0;
        for (size_t c = 0; c < nct && !listed; c++)
            listed = names_eq(name, nl, ct[c], ct_len[c]);
        if (listed)
            continue;
        ADD(name, nl);
        ADDS(": ");
        ADD(v, vl);
        ADDS("\r\n");
    }
    if (framing == GW_HTTP_FRAMING_CHUNKED) {
        ADDS("Transfer-Encoding: chunked\r\n");
    } else if (framing == GW_HTTP_FRAMING_LENGTH) {
        char clh[48];
        int n = snprintf(clh, sizeof(clh), "Content-Length: %llu\r\n", (unsigned long long)length);
        ADD(clh, (size_t)n);
    }
    if (!h->keep_alive)
        ADDS("Connection: close\r\n");
    else if (minor == 0)
        ADDS("Connection: keep-alive\r\n");
    ADD(h->ident, h->ident_len);
    ADDS("\r\n");
    if (!ok) {
        h->abort_now = 1;
        return;
    }
    struct gw_hreq *r = &h->q[(h->qhead + h->qlen) % GW_HTTP_PIPELINE];
    memset(r, 0, sizeof(*r));
    h->qlen++;
    describe(h, r);
    r->head_only = h->rp.method == HTTP_HEAD;
    r->t_start = h->cur_t_start ? h->cur_t_start : h->now;
    r->t_sent = h->now;
    r->upstream_ms = -1;
    if (!h->backend_asked)
        h->want_backend = 1;
    h->chunked = framing == GW_HTTP_FRAMING_CHUNKED;
    h->first_chunk = 1;
    h->chunk_line_len = 0;
    if (h->msg_done) {
        http_parser_pause(&h->rp, 0);
        request_done(h);
    } else {
        h->phase = RQ_BODY;
    }
}
#undef ADD
#undef ADDS

/* Parses head bytes; returns 1 when a head was finished (or refused) and there may be more to do. */
static int head_step(struct gw_http *h)
{
    if (h->head_len >= h->max_header_bytes) {
        reject(h, 431, "header_too_large");
        return 0;
    }
    if (h->head == NULL && (h->head = malloc(h->max_header_bytes + 1)) == NULL) {
        h->abort_now = 1;
        return 0;
    }
    size_t feed = h->max_header_bytes - h->head_len;
    if (feed > gw_hbuf_len(&h->in))
        feed = gw_hbuf_len(&h->in);
    if (h->head_len == 0 && h->cur_t_start == 0)
        h->cur_t_start = h->now;
    const char *data = (const char *)h->in.data + h->in.start;
    h->exec_base = data;
    h->exec_head_off = h->head_len;
    size_t n = http_parser_execute(&h->rp, &h->rs, data, feed);
    head_take(h, data, n);
    if (head_verdict(h) != 0)
        return 0;
    if (!h->head_done) {
        if (h->head_len >= h->max_header_bytes)
            reject(h, 431, "header_too_large");
        return 0; /* the rest of the head is still to come */
    }
    http_parser_pause(&h->rp, 0);
    /* http_parser 2.9 reports the head on its last CR and takes the LF in the next call. */
    if (h->prev == '\r') {
        if (gw_hbuf_len(&h->in) == 0) {
            reject(h, 400, "bad_head_end");
            return 0;
        }
        data = (const char *)h->in.data + h->in.start;
        h->exec_base = data;
        h->exec_head_off = h->head_len;
        n = http_parser_execute(&h->rp, &h->rs, data, 1);
        head_take(h, data, n);
        if (head_verdict(h) != 0)
            return 0;
        http_parser_pause(&h->rp, 0);
    }
    head_finish(h);
    return 1;
}

/* Parses body bytes as far as the backend's queue allows; returns 1 when it made progress. */
static int body_step(struct gw_http *h)
{
    size_t pend = gw_hbuf_len(&h->tob);
    size_t feed = GW_HTTP_TOB_HIGH > pend ? GW_HTTP_TOB_HIGH - pend : 0;
    if (feed > gw_hbuf_len(&h->in))
        feed = gw_hbuf_len(&h->in);
    if (feed == 0)
        return 0;
    if (gw_hbuf_reserve(&h->tob, feed + GW_HTTP_CHUNK_LINE_MAX + 2) != 0) {
        h->abort_now = 1;
        return 0;
    }
    const char *data = (const char *)h->in.data + h->in.start;
    h->body_next = data;
    h->body_err = 0;
    size_t n = http_parser_execute(&h->rp, &h->rs, data, feed);
    enum http_errno e = HTTP_PARSER_ERRNO(&h->rp);
    const char *framing = h->body_next;
    size_t fl = (size_t)(data + n - framing);
    gw_hbuf_consume(&h->in, n);
    h->cur_bytes_in += n;
    if (h->body_err != 0) {
        body_fail(h, h->body_err == 500 ? 500 : 400, "bad_body");
        return 0;
    }
    if (fl > 0) {
        if (h->phase == RQ_TRAILERS) {
            crlf_scan(h, framing, fl);
            h->trailer_bytes += fl;
            if (h->trailer_bytes > h->max_header_bytes) {
                body_fail(h, 431, "trailers_too_large");
                return 0;
            }
        } else if (h->chunked && h->chunk_line_len + fl <= GW_HTTP_CHUNK_LINE_MAX) {
            memcpy(h->chunk_line + h->chunk_line_len, framing, fl);
            h->chunk_line_len += fl;
        } else {
            body_fail(h, 400, h->chunked ? "chunk_line_too_long" : "bad_body");
            return 0;
        }
    }
    if (e != HPE_OK && e != HPE_PAUSED) {
        body_fail(h, 400, http_errno_name(e));
        return 0;
    }
    if (h->chunk_hdr) {
        h->chunk_hdr = 0;
        http_parser_pause(&h->rp, 0);
        if (h->phase != RQ_BODY || !gw_http_chunk_line_ok(h->chunk_line, h->chunk_line_len, h->first_chunk)) {
            body_fail(h, 400, "bad_chunk");
            return 0;
        }
        if (gw_hbuf_add(&h->tob, h->chunk_line, h->chunk_line_len) != 0) {
            h->abort_now = 1;
            return 0;
        }
        h->chunk_line_len = 0;
        h->first_chunk = 0;
        if (h->rp.content_length == 0) { /* the last chunk: trailers follow, which are dropped */
            h->phase = RQ_TRAILERS;
            h->prev = 0;
            h->crlf_bad = 0;
        }
    }
    if (h->msg_done) {
        http_parser_pause(&h->rp, 0);
        if (h->chunked) {
            if (h->phase != RQ_TRAILERS || h->crlf_bad) {
                body_fail(h, 400, "bad_chunk");
                return 0;
            }
            if (gw_hbuf_add(&h->tob, "\r\n", 2) != 0) {
                h->abort_now = 1;
                return 0;
            }
        }
        request_done(h);
    }
    return n > 0;
}

void gw_http_req_process(struct gw_http *h)
{
    int more = 1;
    while (more && !h->abort_now && gw_hbuf_len(&h->in) > 0) {
        switch (h->phase) {
        case RQ_HEAD:
            /* Pipelining: a bounded number of requests in flight, and the backend's queue drained. */
            if (h->qlen >= GW_HTTP_PIPELINE || gw_hbuf_len(&h->tob) >= GW_HTTP_TOB_HIGH)
                return;
            more = head_step(h);
            break;
        case RQ_BODY:
        case RQ_TRAILERS:
            more = body_step(h);
            break;
        case RQ_STOP:
            h->in.start = h->in.end = 0;
            return;
        }
    }
    if (h->client_eof && gw_hbuf_len(&h->in) == 0 && h->phase != RQ_STOP && !h->abort_now) {
        /* A body cut short leaves the backend waiting for bytes that will never come; a partial head
         * was never forwarded and is simply dropped. */
        if (h->phase != RQ_HEAD)
            h->abort_now = 1;
        gw_http_stop_reading(h);
    }
}

void gw_http_request_settings(http_parser_settings *s)
{
    http_parser_settings_init(s);
    s->on_url = rq_url;
    s->on_header_field = rq_field;
    s->on_header_value = rq_value;
    s->on_headers_complete = rq_headers_complete;
    s->on_body = rq_body;
    s->on_chunk_header = rq_chunk_header;
    s->on_message_complete = rq_message_complete;
}
