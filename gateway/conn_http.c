/* conn_http.c - the connection side of https listeners: the HTTP engine (http.h) between the
 * client's TLS and the backend socket. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/conn_int.h"
#include "gateway/http.h"
#include "gateway/log.h"

/* ---- https listeners (http.h) ----
 *
 * After the handshake the connection is in CS_PROXY with no backend (bfd -1) until the first request
 * head is complete; then backend_start connects as for tcp (CS_CONNECTING, the client quiet) and
 * enter_proxy hands back here, or conn_fail's backend_unreachable becomes a 502. The engine does the
 * HTTP; this part moves bytes, keeps the deadlines and writes one access-log line per request. */

static void http_drop_backend(struct gw_conn *c)
{
    if (c->bfd >= 0) {
        close(c->bfd); /* closing removes it from epoll */
        c->bfd = -1;
        c->bev = 0;
    }
    c->backend_eof = 1;
}

/* The last response is out. A client still sending (a body the gateway refused, requests after the
 * last one) would turn our close into a reset, which can destroy that response before it is read:
 * so close_notify, FIN, and a moment of reading and dropping, as after a refused handshake. */
static void http_close(struct gw_conn *c)
{
    http_drop_backend(c);
    if (c->client_eof) {
        gw_conn_close(c);
        return;
    }
    (void)wolfSSL_shutdown(c->ssl); /* best effort; never waits */
    gw_conn_linger(c);
}

/* The handshake is done: the client's identity, once, then the engine. */
void gw_conn_http_start(struct gw_conn *c)
{
    struct gw_http_names names;
    char *ident = NULL;
    size_t ident_len = 0;
    c->pi = malloc(sizeof(*c->pi));
    if (c->pi == NULL) {
        gw_conn_fail(c, "error", "out_of_memory");
        return;
    }
    gw_tls_peer_info(c->ssl, c->pi);
    gw_http_names_resolve(c->l->cfg, &names);
    int rc = gw_http_identity_from_tls(c->ssl, c->cfd, c->l->cfg->auth != GW_AUTH_ONE_WAY, c->pi, &names, &ident,
                                       &ident_len);
    if (rc == 0)
        rc = gw_http_new(c->l->cfg, ident, ident_len, &c->http);
    free(ident);
    if (rc != 0) {
        gw_log(LOG_ERR, "listener %s: cannot set up HTTP for %s: %s", c->l->cfg->name, c->peer, gw_http_strerror(rc));
        gw_conn_fail(c, "error", rc == GW_HTTP_E_NOMEM ? "out_of_memory" : "identity_headers");
        return;
    }
    c->state = CS_PROXY;
    c->idle_ms = c->w->now_ms + c->l->cfg->idle_timeout_ms;
    (void)gw_conn_http_pump(c);
}

/* The backend is connected (enter_proxy): what the engine queued meanwhile goes out. */
void gw_conn_http_backend_up(struct gw_conn *c)
{
    c->state = CS_PROXY;
    gw_http_backend_up(c->http);
    (void)gw_conn_http_pump(c);
}

/* No backend could be reached (backend_start, through conn_fail). */
void gw_conn_http_unreachable(struct gw_conn *c, const char *reason)
{
    http_drop_backend(c);
    c->state = CS_PROXY;
    gw_http_backend_failed(c->http, c->w->now_ms, reason);
    (void)gw_conn_http_pump(c);
}

void gw_conn_http_sweep(struct gw_conn *c)
{
    uint64_t now = c->w->now_ms;
    if (gw_http_timeout(c->http, now)) {
        const struct gw_backend_cfg *b = &c->l->cfg->backends[c->backend_idx];
        gw_log(LOG_WARNING, "listener %s: backend %s: no response head within %u ms, answered 504",
               c->l->cfg->name, b->addr.text, c->l->cfg->backend_timeout_ms);
        http_drop_backend(c);
        (void)gw_conn_http_pump(c);
        return;
    }
    if (c->idle_ms <= now) {
        gw_conn_fail(c, "ok", "idle_timeout");
        return;
    }
    uint64_t d = gw_http_deadline(c->http);
    c->deadline_ms = d < c->idle_ms ? d : c->idle_ms;
}

int gw_conn_http_interest(struct gw_conn *c)
{
    size_t cap = 0, len = 0;
    uint32_t cw = 0, bw = 0;
    if ((!c->client_eof && gw_http_req_space(c->http, &cap) != NULL && cap > 0) || c->c_write_wants_read)
        cw |= EPOLLIN | EPOLLRDHUP;
    if (c->c_read_wants_write || c->c_write_wants_write)
        cw |= EPOLLOUT;
    if (c->bfd >= 0) {
        if (!c->backend_eof && gw_http_resp_space(c->http, &cap) != NULL && cap > 0)
            bw |= EPOLLIN | EPOLLRDHUP;
        (void)gw_http_tob_peek(c->http, &len);
        if (len > 0 && !c->backend_wfail)
            bw |= EPOLLOUT;
    }
    if (gw_conn_ep_set(c->w, c->cfd, &c->ctag, &c->cev, cw) != 0 ||
        (c->bfd >= 0 && gw_conn_ep_set(c->w, c->bfd, &c->btag, &c->bev, bw) != 0)) {
        gw_conn_fail(c, "error", "epoll");
        return -1;
    }
    return 0;
}

/* pump() for https: client -> engine -> backend and back, as far as every side allows. Returns -1
 * when the connection was closed. */
int gw_conn_http_pump(struct gw_conn *c)
{
    struct gw_http *h = c->http;
    int progress, moved = 0;
    do {
        uint64_t now = c->w->now_ms;
        size_t cap = 0, len = 0;
        progress = 0;
        /* client -> engine */
        unsigned char *in = c->client_eof || c->c_write_wants_read ? NULL : gw_http_req_space(h, &cap);
        if (in != NULL && cap > 0) {
            c->c_read_wants_write = 0;
            int n = wolfSSL_read(c->ssl, in, cap > INT_MAX ? INT_MAX : (int)cap);
            if (n > 0) {
                c->bytes_in += (uint64_t)n;
                gw_http_req_commit(h, (size_t)n, now);
                progress = 1;
            } else {
                int e = wolfSSL_get_error(c->ssl, n);
                if (e == WOLFSSL_ERROR_WANT_READ) {
                    /* wait for the socket */
                } else if (e == WOLFSSL_ERROR_WANT_WRITE) {
                    c->c_read_wants_write = 1;
                } else if (e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E || e == WOLFSSL_ERROR_SYSCALL) {
                    c->client_eof = 1;
                    gw_http_req_eof(h, now);
                    progress = 1;
                } else {
                    gw_conn_fail(c, "error", "tls_read_failed");
                    return -1;
                }
            }
        }
        /* engine -> backend. A backend that answers before it has read the whole request (a 403 or
         * 413 to a large body) and closes makes this write fail; its answer is in our receive queue
         * all the same, so the backend is read to its end rather than dropped at once. */
        const unsigned char *out =
            c->state == CS_PROXY && c->bfd >= 0 && !c->backend_wfail ? gw_http_tob_peek(h, &len) : NULL;
        if (out != NULL && len > 0) {
            ssize_t n = send(c->bfd, out, len, MSG_NOSIGNAL);
            if (n > 0) {
                gw_http_tob_consume(h, (size_t)n, now);
                progress = 1;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                c->backend_wfail = 1;
                if (c->backend_eof) {
                    gw_http_resp_eof(h, now, "backend_write_failed");
                    http_drop_backend(c);
                }
                progress = 1;
            }
        }
        /* backend -> engine */
        in = c->state == CS_PROXY && c->bfd >= 0 && !c->backend_eof ? gw_http_resp_space(h, &cap) : NULL;
        if (in != NULL && cap > 0) {
            ssize_t n = recv(c->bfd, in, cap, 0);
            if (n > 0) {
                gw_http_resp_commit(h, (size_t)n, now);
                progress = 1;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                gw_http_resp_eof(h, now, c->backend_wfail ? "backend_write_failed" : n == 0 ? NULL : "backend_reset");
                http_drop_backend(c);
                progress = 1;
            }
        }
        if (c->bfd >= 0 && gw_http_backend_unwanted(h))
            http_drop_backend(c);
        /* engine -> client */
        out = gw_http_toc_peek(h, &len);
        if (len > 0) {
            uint32_t wlen = c->pending_write ? c->pending_write : (uint32_t)(len > GW_BUF_SIZE ? GW_BUF_SIZE : len);
            c->c_write_wants_read = 0;
            c->c_write_wants_write = 0;
            int n = wolfSSL_write(c->ssl, out, (int)wlen);
            if (n > 0) {
                c->pending_write = 0;
                c->bytes_out += (uint64_t)n;
                gw_http_toc_consume(h, (size_t)n);
                progress = 1;
            } else {
                int e = wolfSSL_get_error(c->ssl, n);
                if (e == WOLFSSL_ERROR_WANT_WRITE || e == WOLFSSL_ERROR_WANT_READ) {
                    /* wolfSSL keeps the record; the retry must offer the same bytes. */
                    c->pending_write = wlen;
                    if (e == WOLFSSL_ERROR_WANT_WRITE)
                        c->c_write_wants_write = 1;
                    else
                        c->c_write_wants_read = 1;
                } else {
                    gw_conn_fail(c, c->client_eof ? "ok" : "error", c->client_eof ? NULL : "tls_write_failed");
                    return -1;
                }
            }
        }
        gw_conn_log_requests(c);
        if (gw_http_finished(h)) {
            if (c->result == NULL)
                c->result = "ok";
            http_close(c);
            return -1;
        }
        moved |= progress;
    } while (progress);
    if (moved)
        c->idle_ms = c->w->now_ms + c->l->cfg->idle_timeout_ms;
    uint64_t d = gw_http_deadline(h);
    c->deadline_ms = d < c->idle_ms ? d : c->idle_ms;
    if (gw_http_wants_backend(h) && c->bfd < 0 && c->state == CS_PROXY) {
        /* A request head is complete: a backend now, so that a 502 can still answer it. */
        (void)gw_conn_backend_start(c);
        return c->closed ? -1 : 0;
    }
    return gw_conn_http_interest(c);
}

