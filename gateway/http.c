/* http.c - the HTTP/1.1 engine of an https listener's connection (http.h): its buffers, the queue of
 * requests in flight, the gateway's own answers, the response side and the API. The request side is
 * in http_request.c; the state both share in http_int.h.
 *
 * Responses are relayed byte for byte. A second http_parser (HTTP_RESPONSE) says where each one
 * ends; a head is held until it is complete, so a response that turns out malformed, or a backend
 * that stays silent past backend_timeout, can still be answered 502 or 504 by the gateway.
 */
#include "gateway/http_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffers ---- */

/* Room for n more bytes at b->end: compacts, then grows. */
int gw_hbuf_reserve(struct gw_hbuf *b, size_t n)
{
    if (b->cap - b->end >= n)
        return 0;
    if (b->start > 0) {
        memmove(b->data, b->data + b->start, gw_hbuf_len(b));
        b->end -= b->start;
        b->start = 0;
        if (b->cap - b->end >= n)
            return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->end < n)
        cap *= 2;
    unsigned char *d = realloc(b->data, cap);
    if (d == NULL)
        return GW_HTTP_E_NOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int gw_hbuf_add(struct gw_hbuf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (gw_hbuf_reserve(b, n) != 0)
        return GW_HTTP_E_NOMEM;
    memcpy(b->data + b->end, p, n);
    b->end += n;
    return 0;
}

void gw_hbuf_consume(struct gw_hbuf *b, size_t n)
{
    b->start += n;
    if (b->start == b->end)
        b->start = b->end = 0;
}

/* toc moves its indexes along with it. */
static void toc_compact(struct gw_http *h)
{
    struct gw_hbuf *b = &h->toc;
    if (b->start == 0)
        return;
    size_t s = b->start;
    memmove(b->data, b->data + s, gw_hbuf_len(b));
    b->end -= s;
    b->start = 0;
    h->toc_ready -= s;
    h->toc_parsed -= s;
}

/* ---- log records ---- */

void gw_http_log_push(struct gw_http *h, const struct gw_hreq *r, int status, const char *result, const char *reason)
{
    if (h->llen == GW_HTTP_LOGQ) { /* cannot happen: records are popped after every event; keep the newest */
        h->lhead = (h->lhead + 1) % GW_HTTP_LOGQ;
        h->llen--;
    }
    struct gw_http_log *l = &h->logq[(h->lhead + h->llen) % GW_HTTP_LOGQ];
    h->llen++;
    h->logged++;
    memcpy(l->method, r->method, sizeof(l->method));
    memcpy(l->path, r->path, sizeof(l->path));
    l->status = status;
    l->upstream_ms = r->local ? -1 : r->upstream_ms;
    l->bytes_in = r->bytes_in;
    l->bytes_out = r->bytes_out;
    l->duration_ms = h->now >= r->t_start ? h->now - r->t_start : 0;
    l->result = result;
    l->reason = reason;
}

void gw_http_q_pop(struct gw_http *h)
{
    h->qhead = (h->qhead + 1) % GW_HTTP_PIPELINE;
    h->qlen--;
}

/* ---- local responses ---- */

/* Stops reading requests; what is left unread is dropped. */
void gw_http_stop_reading(struct gw_http *h)
{
    h->phase = RQ_STOP;
    h->in.start = h->in.end = 0;
}

/* The front request is answered by the gateway: in its turn, so after every earlier response. The
 * backend's bytes not yet released (a partial head) are dropped and the backend with them. */
void gw_http_front_check(struct gw_http *h)
{
    struct gw_hreq *r = gw_http_front(h);
    if (r == NULL || !r->local)
        return;
    if (r->head_seen) {
        /* Part of its response already went out: nothing sensible can follow it. */
        h->abort_now = 1;
        return;
    }
    h->toc.end = h->toc_parsed = h->toc_ready;
    char text[512];
    int n = gw_http_local_response(r->status, r->head_only, text, sizeof(text));
    if (n > 0 && gw_hbuf_add(&h->toc, text, (size_t)n) == 0) {
        h->toc_ready = h->toc_parsed = h->toc.end;
        r->bytes_out = (uint64_t)n;
    } else {
        h->abort_now = 1;
    }
    if (h->backend_asked && !h->backend_gone)
        h->backend_unwanted = 1;
    h->backend_gone = 1;
    gw_http_log_push(h, r, r->status, r->result, r->reason);
    gw_http_q_pop(h);
    gw_http_stop_reading(h);
}

/* ---- response side ---- */

static int sp_headers_complete(http_parser *p)
{
    struct gw_http *h = gw_http_of(p);
    struct gw_hreq *r = h != NULL ? gw_http_front(h) : NULL;
    if (r == NULL)
        return -1;
    unsigned st = p->status_code;
    if (st == 101) { /* never asked for: the gateway drops Upgrade from requests */
        h->resp_bad = 1;
        return -1;
    }
    h->resp_head = 1;
    if (st >= 100 && st < 200) { /* interim (100 Continue, 103 Early Hints): the final one follows */
        h->resp_interim = 1;
        return 0;
    }
    h->resp_interim = 0;
    r->status = (int)st;
    r->head_seen = 1;
    r->upstream_ms = (int64_t)(h->now - r->t_sent);
    return r->head_only ? 1 : 0; /* 1: no body, whatever the head says (RFC 9110 9.3.2) */
}

static int sp_message_complete(http_parser *p)
{
    struct gw_http *h = gw_http_of(p);
    if (h == NULL)
        return -1;
    h->resp_done = 1;
    http_parser_pause(p, 1);
    return 0;
}

/* The front request is answered 502 if nothing of its response went out; else what went out stands
 * and the connection ends after it. Either way the backend goes. */
static void resp_fail(struct gw_http *h, const char *why)
{
    struct gw_hreq *r = gw_http_front(h);
    gw_http_stop_reading(h);
    h->toc.end = h->toc_parsed = h->toc_ready;
    if (r != NULL && !r->local && !r->head_seen) {
        r->local = 1;
        r->status = 502;
        r->result = "bad_gateway";
        r->reason = why;
        gw_http_front_check(h); /* drops the backend too */
        return;
    }
    if (!h->backend_gone)
        h->backend_unwanted = 1;
    h->backend_gone = 1;
}

static void response_done(struct gw_http *h)
{
    struct gw_hreq *r = gw_http_front(h);
    h->resp_head = 0;
    if (h->resp_interim) {
        h->resp_interim = 0;
        return;
    }
    r->bytes_out = h->resp_bytes;
    h->resp_bytes = 0;
    int keep = http_should_keep_alive(&h->sp) != 0;
    gw_http_log_push(h, r, r->status, "ok", NULL);
    gw_http_q_pop(h);
    h->last_resp_end = h->now;
    if (!keep) {
        /* The backend ends its connection after this response (Connection: close, HTTP/1.0, a body
         * read to the end): later requests cannot be answered here; the client sees the close. */
        h->backend_unwanted = 1;
        h->backend_gone = 1;
        h->toc.end = h->toc_parsed;
        gw_http_stop_reading(h);
    }
    gw_http_front_check(h);
}

static void resp_process(struct gw_http *h)
{
    while (!h->abort_now && !h->backend_gone && h->toc_parsed < h->toc.end) {
        struct gw_hreq *r = gw_http_front(h);
        if (r != NULL && r->local) {
            gw_http_front_check(h);
            continue;
        }
        if (r == NULL) { /* bytes nobody asked for */
            resp_fail(h, "unsolicited_response");
            return;
        }
        const char *data = (const char *)h->toc.data + h->toc_parsed;
        size_t len = h->toc.end - h->toc_parsed;
        h->resp_done = 0;
        size_t n = http_parser_execute(&h->sp, &h->ss, data, len);
        enum http_errno e = HTTP_PARSER_ERRNO(&h->sp);
        h->toc_parsed += n;
        h->resp_bytes += n;
        if (h->resp_head)
            h->toc_ready = h->toc_parsed;
        if (e != HPE_OK && e != HPE_PAUSED) {
            resp_fail(h, h->resp_bad ? "unexpected_101" : "bad_response");
            return;
        }
        if (!h->resp_done)
            break;
        http_parser_pause(&h->sp, 0);
        response_done(h);
    }
    /* A response head that fills half the buffer is not going to fit (cf. max_header_bytes). */
    if (!h->backend_gone && !h->resp_head && h->toc_parsed - h->toc_ready >= GW_HTTP_TOC_SIZE / 2)
        resp_fail(h, "response_head_too_large");
}

/* ---- API ---- */

static pthread_once_t parser_once = PTHREAD_ONCE_INIT;

/* http_parser checks head bytes against one process-wide limit (80 KiB unless set); ours are per
 * listener (max_header_bytes, at most 1 MiB) and come first, so its own is put above them. */
static void parser_limits(void)
{
    http_parser_set_max_header_size(2u * 1024 * 1024);
}

int gw_http_new(const struct gw_listener_cfg *cfg, const char *ident, size_t ident_len, struct gw_http **out)
{
    if (cfg == NULL || out == NULL || (ident == NULL && ident_len > 0))
        return GW_HTTP_E_ARG;
    (void)pthread_once(&parser_once, parser_limits);
    struct gw_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return GW_HTTP_E_NOMEM;
    h->magic = GW_HTTP_MAGIC;
    h->cfg = cfg;
    gw_http_names_resolve(cfg, &h->names);
    h->max_header_bytes = cfg->max_header_bytes ? cfg->max_header_bytes : 16384;
    h->max_headers = cfg->max_headers ? cfg->max_headers : 100;
    h->backend_timeout_ms = cfg->backend_timeout_ms ? cfg->backend_timeout_ms : 60000;
    h->ident = malloc(ident_len + 1);
    h->in.data = malloc(GW_HTTP_IN_SIZE);
    h->toc.data = malloc(GW_HTTP_TOC_SIZE);
    if (h->ident == NULL || h->in.data == NULL || h->toc.data == NULL) {
        gw_http_free(h);
        return GW_HTTP_E_NOMEM;
    }
    if (ident_len > 0)
        memcpy(h->ident, ident, ident_len);
    h->ident[ident_len] = '\0';
    h->ident_len = ident_len;
    h->in.cap = GW_HTTP_IN_SIZE;
    h->toc.cap = GW_HTTP_TOC_SIZE;
    http_parser_init(&h->rp, HTTP_REQUEST);
    h->rp.data = h;
    gw_http_request_settings(&h->rs);
    http_parser_init(&h->sp, HTTP_RESPONSE);
    h->sp.data = h;
    http_parser_settings_init(&h->ss);
    h->ss.on_headers_complete = sp_headers_complete;
    h->ss.on_message_complete = sp_message_complete;
    h->phase = RQ_HEAD;
    *out = h;
    return 0;
}

void gw_http_free(struct gw_http *h)
{
    if (h == NULL)
        return;
    h->magic = 0;
    free(h->ident);
    free(h->head);
    free(h->f);
    free(h->in.data);
    free(h->tob.data);
    free(h->toc.data);
    free(h);
}

unsigned char *gw_http_req_space(struct gw_http *h, size_t *cap)
{
    *cap = 0;
    if (h->phase == RQ_STOP || h->abort_now || h->client_eof)
        return NULL;
    if (h->in.start > 0) {
        memmove(h->in.data, h->in.data + h->in.start, gw_hbuf_len(&h->in));
        h->in.end -= h->in.start;
        h->in.start = 0;
    }
    if (h->in.end == h->in.cap)
        return NULL;
    *cap = h->in.cap - h->in.end;
    return h->in.data + h->in.end;
}

void gw_http_req_commit(struct gw_http *h, size_t n, uint64_t now_ms)
{
    h->now = now_ms;
    if (h->phase == RQ_STOP || n > h->in.cap - h->in.end)
        return;
    h->in.end += n;
    gw_http_req_process(h);
}

void gw_http_req_eof(struct gw_http *h, uint64_t now_ms)
{
    h->now = now_ms;
    h->client_eof = 1;
    gw_http_req_process(h);
}

const unsigned char *gw_http_tob_peek(const struct gw_http *h, size_t *len)
{
    *len = gw_hbuf_len(&h->tob);
    return h->tob.data != NULL ? h->tob.data + h->tob.start : NULL;
}

void gw_http_tob_consume(struct gw_http *h, size_t n, uint64_t now_ms)
{
    h->now = now_ms;
    gw_hbuf_consume(&h->tob, n > gw_hbuf_len(&h->tob) ? gw_hbuf_len(&h->tob) : n);
    gw_http_req_process(h);
}

unsigned char *gw_http_resp_space(struct gw_http *h, size_t *cap)
{
    *cap = 0;
    if (h->backend_gone || h->abort_now)
        return NULL;
    size_t pending = gw_hbuf_len(&h->toc);
    if (pending >= GW_HTTP_TOC_SIZE)
        return NULL;
    if (h->toc.cap - h->toc.end < GW_HTTP_TOC_SIZE - pending)
        toc_compact(h);
    *cap = GW_HTTP_TOC_SIZE - pending;
    if (*cap > h->toc.cap - h->toc.end)
        *cap = h->toc.cap - h->toc.end;
    return *cap > 0 ? h->toc.data + h->toc.end : NULL;
}

void gw_http_resp_commit(struct gw_http *h, size_t n, uint64_t now_ms)
{
    h->now = now_ms;
    if (h->backend_gone || n > h->toc.cap - h->toc.end)
        return;
    h->toc.end += n;
    resp_process(h);
    gw_http_req_process(h); /* a slot in the pipeline may have freed up */
}

void gw_http_resp_eof(struct gw_http *h, uint64_t now_ms, const char *why)
{
    h->now = now_ms;
    if (h->backend_gone)
        return;
    if (why == NULL && !h->abort_now && gw_http_front(h) != NULL && !gw_http_front(h)->local) {
        /* A body that ends with the connection (RFC 9112 6.3 (8)) ends here. */
        h->resp_done = 0;
        (void)http_parser_execute(&h->sp, &h->ss, NULL, 0);
        if (h->resp_done) {
            http_parser_pause(&h->sp, 0);
            h->toc_ready = h->toc_parsed;
            response_done(h);
        }
    }
    if (h->backend_gone)
        return;
    h->backend_gone = 1;
    gw_http_stop_reading(h);
    struct gw_hreq *r = gw_http_front(h);
    if (r != NULL && !r->local && !r->head_seen) {
        h->toc.end = h->toc_parsed = h->toc_ready;
        r->local = 1;
        r->status = 502;
        r->result = "bad_gateway";
        r->reason = why != NULL ? why : "backend_closed";
        gw_http_front_check(h);
    }
}

const unsigned char *gw_http_toc_peek(const struct gw_http *h, size_t *len)
{
    *len = h->toc_ready - h->toc.start;
    return h->toc.data + h->toc.start;
}

void gw_http_toc_consume(struct gw_http *h, size_t n)
{
    size_t ready = h->toc_ready - h->toc.start;
    h->toc.start += n > ready ? ready : n;
    if (h->toc.start == h->toc.end)
        h->toc.start = h->toc.end = h->toc_ready = h->toc_parsed = 0;
}

int gw_http_wants_backend(const struct gw_http *h)
{
    /* Not once the gateway answers for itself: a request refused before its turn came needs none. */
    return h->want_backend && !h->backend_asked && !h->backend_gone && !h->abort_now;
}

void gw_http_backend_up(struct gw_http *h)
{
    h->want_backend = 0;
    h->backend_asked = 1;
}

void gw_http_backend_failed(struct gw_http *h, uint64_t now_ms, const char *why)
{
    h->now = now_ms;
    h->want_backend = 0;
    h->backend_asked = 1;
    h->backend_gone = 1;
    gw_http_stop_reading(h);
    struct gw_hreq *r = gw_http_front(h);
    if (r != NULL && !r->local) {
        r->local = 1;
        r->status = 502;
        r->result = "backend_unreachable";
        r->reason = why;
    }
    gw_http_front_check(h);
}

int gw_http_backend_unwanted(const struct gw_http *h)
{
    return h->backend_unwanted || h->abort_now;
}

uint64_t gw_http_deadline(const struct gw_http *h)
{
    const struct gw_hreq *r = h->qlen ? &h->q[h->qhead] : NULL;
    if (r == NULL || r->local || !r->complete || r->head_seen || h->backend_gone || h->abort_now)
        return UINT64_MAX;
    uint64_t t = r->t_done > h->last_resp_end ? r->t_done : h->last_resp_end;
    return t + h->backend_timeout_ms;
}

int gw_http_timeout(struct gw_http *h, uint64_t now_ms)
{
    if (gw_http_deadline(h) > now_ms)
        return 0;
    h->now = now_ms;
    struct gw_hreq *r = gw_http_front(h);
    r->local = 1;
    r->status = 504;
    r->result = "backend_timeout";
    r->reason = "no_response_head";
    gw_http_front_check(h);
    return 1;
}

int gw_http_finished(const struct gw_http *h)
{
    if (h->abort_now)
        return 1;
    if (h->toc_ready > h->toc.start || h->phase != RQ_STOP)
        return 0;
    return h->qlen == 0 || h->backend_gone;
}

int gw_http_idle(const struct gw_http *h)
{
    return h->qlen == 0 && h->phase == RQ_HEAD && h->head_len == 0 && gw_hbuf_len(&h->in) == 0 &&
           h->toc_ready == h->toc.start && !h->abort_now;
}

int gw_http_log_pop(struct gw_http *h, struct gw_http_log *out)
{
    if (h->llen == 0)
        return 0;
    *out = h->logq[h->lhead];
    h->lhead = (h->lhead + 1) % GW_HTTP_LOGQ;
    h->llen--;
    return 1;
}

void gw_http_abort(struct gw_http *h, uint64_t now_ms, const char *why)
{
    h->now = now_ms;
    while (h->qlen > 0) {
        struct gw_hreq *r = gw_http_front(h);
        if (r->head_seen)
            r->bytes_out += h->resp_bytes;
        h->resp_bytes = 0;
        gw_http_log_push(h, r, r->head_seen ? r->status : 0, "aborted", why);
        gw_http_q_pop(h);
    }
    h->abort_now = 1;
}

unsigned gw_http_logged(const struct gw_http *h)
{
    return h->logged;
}
