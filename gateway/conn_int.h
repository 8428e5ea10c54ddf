/* conn_int.h - one client connection, shared by conn.c (accept, handshake, tcp proxying, policy
 * re-decisions) and conn_http.c (https listeners). Internal to gateway/. */
#ifndef HSMGATE_GATEWAY_CONN_INT_H
#define HSMGATE_GATEWAY_CONN_INT_H

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <stdint.h>
#include <string.h>

#include "gateway/addrlim.h"
#include "gateway/pool.h"
#include "gateway/server.h"

#define GW_BUF_SIZE 16384u

enum gw_conn_state { CS_HANDSHAKE, CS_CONNECTING, CS_PROXY, CS_LINGER };

/* After a refused handshake the client may still have bytes in flight (TLS 1.3 clients send data
 * right after their Finished). Closing with unread data makes the kernel send a reset, which can
 * destroy our alert before the client reads it; so shut our side, read and drop for a moment, close. */
#define LINGER_MS 1000

struct gw_buf {
    unsigned char *data;
    uint32_t start, end;
};

struct gw_conn {
    struct gw_tag ctag;                /* data.ptr of the client socket */
    struct gw_tag btag;                /* data.ptr of the backend socket */
    struct gw_conn *prev, *next;
    struct gw_worker *w;
    struct gw_gen *gen;
    struct gw_listener *l;
    WOLFSSL *ssl;
    struct gw_tls_state tls;
    int cfd, bfd;
    enum gw_conn_state state;
    uint32_t cev, bev;                 /* interest currently registered (0: not registered) */
    unsigned client_eof : 1, backend_eof : 1, backend_shut : 1;
    unsigned backend_wfail : 1;        /* https: a write to the backend failed; its answer is still read */
    unsigned c_read_wants_write : 1, c_write_wants_read : 1, c_write_wants_write : 1, c_hs_wants_write : 1;
    unsigned counted_listener : 1, closed : 1, hs_done : 1, admin_closed : 1;
    uint32_t pending_write;            /* length of a wolfSSL_write that must be retried as is */
    struct gw_addrkey akey;            /* its client address in srv->addrlim */
    unsigned akey_held : 1, akey_handshaking : 1;
    struct gw_buf c2b, b2c;
    uint64_t bytes_in, bytes_out;
    uint64_t started_ms, deadline_ms;
    unsigned backend_tries, backend_idx;   /* connect attempts so far; the backend of the latest */
    unsigned backend_held : 1;         /* backend_idx counts as active in the listener's pool */
    struct gw_pool_tried tried;        /* backends this connection has tried (each at most once) */
    const char *backend_why;           /* why the latest attempt failed */
    unsigned char *pp2;                /* the PROXY v2 header, sent before any client byte */
    uint32_t pp2_len, pp2_off;
    char peer[64];
    const char *result, *reason;
    struct gw_http *http;              /* https listeners: the HTTP engine (http.h); NULL for tcp */
    struct gw_peer_info *pi;           /* https: the client, read once for its headers and the log */
    uint64_t idle_ms;                  /* https: when the connection counts as idle (deadline_ms: the nearer
                                        * of this and the engine's backend_timeout) */
    struct gw_conn_entry *reg;         /* its entry in w->reg once admitted (conn_reg.h); NULL before */
    uint64_t id;                       /* the entry's id, kept for the access log; 0 until registered */
};

static inline uint32_t buf_len(const struct gw_buf *b) { return b->end - b->start; }
static inline uint32_t buf_space(const struct gw_buf *b) { return GW_BUF_SIZE - b->end; }
static inline void buf_compact(struct gw_buf *b)
{
    if (b->start == b->end) {
        b->start = b->end = 0;
    } else if (b->start > GW_BUF_SIZE / 2) {
        memmove(b->data, b->data + b->start, buf_len(b));
        b->end -= b->start;
        b->start = 0;
    }
}

/* conn.c */
int gw_conn_ep_set(struct gw_worker *w, int fd, struct gw_tag *tag, uint32_t *cur, uint32_t want);
void gw_conn_close(struct gw_conn *c);
void gw_conn_fail(struct gw_conn *c, const char *result, const char *reason);
void gw_conn_linger(struct gw_conn *c);
int gw_conn_backend_start(struct gw_conn *c);
void gw_conn_log_requests(struct gw_conn *c);

/* conn_http.c: https listeners */
int gw_conn_http_pump(struct gw_conn *c);
int gw_conn_http_interest(struct gw_conn *c);
void gw_conn_http_backend_up(struct gw_conn *c);
void gw_conn_http_unreachable(struct gw_conn *c, const char *reason);
void gw_conn_http_start(struct gw_conn *c);
void gw_conn_http_sweep(struct gw_conn *c);

#endif
