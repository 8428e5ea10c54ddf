/* http_int.h - the state of the HTTP engine, shared by http.c (buffers, the queue of requests in
 * flight, responses, the API) and http_request.c (requests). Internal to them: everyone else uses
 * http.h.
 */
#ifndef HSMGATE_GATEWAY_HTTP_INT_H
#define HSMGATE_GATEWAY_HTTP_INT_H

#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/http.h"

#define GW_HTTP_MAGIC 0x67774854u /* "gwHT" */
#define GW_HTTP_IN_SIZE 16384u            /* client bytes read and not yet parsed */
#define GW_HTTP_TOB_HIGH 16384u           /* parsing waits while this much waits for the backend */
#define GW_HTTP_TOC_SIZE 32768u           /* backend bytes not yet written; a response head must fit */
#define GW_HTTP_CHUNK_LINE_MAX 1024u      /* CRLF, chunk size, extensions, CRLF */
#define GW_HTTP_MAX_TE 8u
#define GW_HTTP_MAX_CONN_TOKENS 16u
#define GW_HTTP_LOGQ (2u * GW_HTTP_PIPELINE + 2u)

struct gw_hbuf {
    unsigned char *data;
    size_t start, end, cap;
};

enum gw_hphase { RQ_HEAD, RQ_BODY, RQ_TRAILERS, RQ_STOP };
enum gw_hlast { CB_NONE, CB_URL, CB_FIELD, CB_VALUE };

struct gw_hfield {
    size_t name_off, name_len, val_off, val_len;
};

/* One request, from its head to the end of its response. */
struct gw_hreq {
    char method[24];
    char path[GW_HTTP_LOG_PATH];
    unsigned head_only : 1;   /* HEAD: its response has no body */
    unsigned complete : 1;    /* every byte of it went to the backend's queue */
    unsigned local : 1;       /* the gateway answers it: status */
    unsigned head_seen : 1;   /* its final response head was parsed and released */
    int status;
    const char *result, *reason;
    int64_t upstream_ms;
    uint64_t t_start, t_sent, t_done;
    uint64_t bytes_in, bytes_out;
};

struct gw_http {
    uint32_t magic;
    const struct gw_listener_cfg *cfg;
    struct gw_http_names names;
    char *ident;
    size_t ident_len;
    size_t max_header_bytes, max_headers;
    uint64_t backend_timeout_ms;
    uint64_t now;

    http_parser rp, sp;
    http_parser_settings rs, ss;
    struct gw_hbuf in, tob, toc;
    size_t toc_ready;         /* toc.data[toc.start, toc_ready) may be written to the client */
    size_t toc_parsed;        /* toc.data[.., toc_parsed) went through the response parser */

    /* the request being read */
    enum gw_hphase phase;
    char *head;               /* its raw head, max_header_bytes + 1 */
    size_t head_len;
    struct gw_hfield *f;
    size_t nf;                /* fields kept in f (at most max_headers) */
    size_t nfields;           /* fields seen */
    unsigned skipping : 1;    /* the current field is past max_headers: counted, not kept */
    unsigned pieces_apart : 1; /* a name, value or target came in pieces that do not touch */
    size_t url_off, url_len;
    enum gw_hlast last;
    int err;                  /* an HTTP status a callback decided on */
    const char *err_reason;
    unsigned char prev;       /* the byte before, for the CR/LF checks */
    int crlf_bad;
    unsigned head_done : 1, msg_done : 1, chunk_hdr : 1, chunked : 1, first_chunk : 1, keep_alive : 1;
    unsigned client_eof : 1;
    const char *exec_base;    /* head offsets of callback pointers */
    size_t exec_head_off;
    const char *body_next;    /* body parsing: the first byte of this call not yet accounted */
    int body_err;
    unsigned char chunk_line[GW_HTTP_CHUNK_LINE_MAX];
    size_t chunk_line_len;
    size_t trailer_bytes;
    uint64_t cur_bytes_in, cur_t_start;

    /* requests in flight, oldest first */
    struct gw_hreq q[GW_HTTP_PIPELINE];
    unsigned qhead, qlen;

    /* the response being read */
    unsigned resp_head : 1, resp_done : 1, resp_interim : 1, resp_bad : 1;
    uint64_t resp_bytes, last_resp_end;

    unsigned want_backend : 1, backend_asked : 1, backend_unwanted : 1, backend_gone : 1, abort_now : 1;

    struct gw_http_log logq[GW_HTTP_LOGQ];
    unsigned lhead, llen, logged;
};

/* http_parser's data pointer, checked on the way back. */
static inline struct gw_http *gw_http_of(http_parser *p)
{
    struct gw_http *h = p->data;
    return h != NULL && h->magic == GW_HTTP_MAGIC ? h : NULL;
}

static inline size_t gw_hbuf_len(const struct gw_hbuf *b) { return b->end - b->start; }

/* The oldest request in flight, and the newest (the one being read once its head went out). */
static inline struct gw_hreq *gw_http_front(struct gw_http *h)
{
    return h->qlen ? &h->q[h->qhead] : NULL;
}

static inline struct gw_hreq *gw_http_newest(struct gw_http *h)
{
    return h->qlen ? &h->q[(h->qhead + h->qlen - 1) % GW_HTTP_PIPELINE] : NULL;
}

/* http.c */
/* Room for n more bytes at b->end (compacts, then grows); 0 or GW_HTTP_E_NOMEM. */
int gw_hbuf_reserve(struct gw_hbuf *b, size_t n);
int gw_hbuf_add(struct gw_hbuf *b, const void *p, size_t n);
void gw_hbuf_consume(struct gw_hbuf *b, size_t n);
/* A finished request's access-log record. */
void gw_http_log_push(struct gw_http *h, const struct gw_hreq *r, int status, const char *result, const char *reason);
void gw_http_q_pop(struct gw_http *h);
/* No more requests are read on this connection; what is buffered is dropped. */
void gw_http_stop_reading(struct gw_http *h);
/* When the front request is one the gateway answers itself: its answer, in its turn. */
void gw_http_front_check(struct gw_http *h);

/* http_request.c */
/* The request parser's callbacks. */
void gw_http_request_settings(http_parser_settings *s);
/* Parses buffered client bytes as far as the backend's queue and the pipeline allow. */
void gw_http_req_process(struct gw_http *h);

#endif
