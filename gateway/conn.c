/* conn.c - one client connection: TLS handshake, backend connect, then bytes both ways.
 *
 * Life: HANDSHAKE -> CONNECTING -> PROXY -> closed. Everything runs on the owning worker's thread.
 * Back-pressure: each direction has one buffer; a side is read only while the buffer towards the
 * other side has room, so a slow reader slows the writer instead of growing memory.
 * Half-close: the client's close_notify/EOF becomes shutdown(SHUT_WR) to the backend; the
 * backend's EOF, once its bytes are delivered, becomes close_notify and the end of the connection.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/http.h"
#include "gateway/log.h"
#include "gateway/pool.h"
#include "gateway/proxy_v2.h"
#include "gateway/server.h"
#include "gateway/conn_int.h"





static struct gw_conn *conn_of(struct gw_tag *tag)
{
    if (tag->kind == GW_TAG_CLIENT)
        return (struct gw_conn *)((char *)tag - offsetof(struct gw_conn, ctag));
    return (struct gw_conn *)((char *)tag - offsetof(struct gw_conn, btag));
}

static void buf_release(struct gw_worker *w, struct gw_buf *b);

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        port = ntohs(s4->sin_port);
        snprintf(buf, len, "%s:%u", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        port = ntohs(s6->sin6_port);
        snprintf(buf, len, "[%s]:%u", host, port);
    } else {
        snprintf(buf, len, "unknown");
    }
}

/* Sets the epoll interest of fd. No interest means "not registered": an fd left registered with no
 * events would still report EPOLLHUP/EPOLLERR over and over, level-triggered. */
int gw_conn_ep_set(struct gw_worker *w, int fd, struct gw_tag *tag, uint32_t *cur, uint32_t want)
{
    if (*cur == want)
        return 0;
    struct epoll_event ev = { .events = want, .data.ptr = tag };
    int op = want == 0 ? EPOLL_CTL_DEL : (*cur == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD);
    if (epoll_ctl(w->epfd, op, fd, &ev) != 0)
        return -1;
    *cur = want;
    return 0;
}

/* The fields every access-log line has: the connection and its TLS. known: the peer, when already read. */
static json_t *access_line(struct gw_conn *c, const struct gw_peer_info *known)
{
    if (!gw_access_log_on())
        return NULL; /* access_log: off - nothing to decode the client's certificate for */
    struct gw_peer_info pi;
    const char *version = "", *cipher = "";
    int resumed = 0;
    if (c->ssl != NULL && c->hs_done) {
        if (known != NULL)
            pi = *known;
        else
            gw_tls_peer_info(c->ssl, &pi);
        version = wolfSSL_get_version(c->ssl);
        cipher = wolfSSL_get_cipher(c->ssl);
        resumed = wolfSSL_session_reused(c->ssl) ? 1 : 0;
    } else if (c->ssl != NULL) {
        /* A refused client certificate is still worth naming: wolfSSL keeps it when verification fails. */
        gw_tls_peer_info(c->ssl, &pi);
    } else {
        memset(&pi, 0, sizeof(pi));
    }
    char ts[40];
    gw_time_rfc3339(ts, sizeof(ts));
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "listener", json_string(c->l->cfg->name));
    if (c->id != 0) /* admitted: the id GET /v1/connections showed it under */
        json_object_set_new(o, "connection_id", json_integer((json_int_t)c->id));
    json_object_set_new(o, "peer", json_string(c->peer));
    json_object_set_new(o, "tls_version", json_string(version ? version : ""));
    json_object_set_new(o, "cipher", json_string(cipher ? cipher : ""));
    json_object_set_new(o, "resumed", json_boolean(resumed));
    json_object_set_new(o, "client_cert", json_boolean(pi.has_cert));
    json_object_set_new(o, "client_subject", json_string(pi.subject));
    json_object_set_new(o, "client_issuer", json_string(pi.issuer));
    json_object_set_new(o, "client_serial", json_string(pi.serial));
    json_object_set_new(o, "client_fingerprint_sha256", json_string(pi.fp_sha256));
    if (c->tls.decided) {
        /* The admission decision: the policy, the store generation it was made with, and the
         * allowlist entry that admitted the client (the reason of a refusal is "reason"). */
        json_object_set_new(o, "policy", json_string(c->tls.admit->name));
        json_object_set_new(o, "policy_generation", json_integer((json_int_t)c->tls.verdict.generation));
        if (c->tls.verdict.allow_entry_id != 0)
            json_object_set_new(o, "allow_entry", json_integer((json_int_t)c->tls.verdict.allow_entry_id));
        if (c->tls.verdict.status_unknown)
            json_object_set_new(o, "revocation_status", json_string("unknown"));
    }
    return o;
}

static void log_backend(struct gw_conn *c, json_t *o)
{
    if (c->hs_done && c->backend_tries > 0) {
        const struct gw_backend_cfg *b = &c->l->cfg->backends[c->backend_idx];
        json_object_set_new(o, "backend", json_string(b->addr.text));
    }
}

/* https: one line per finished request, with the connection's fields and the request's own. */
void gw_conn_log_requests(struct gw_conn *c)
{
    struct gw_http_log r;
    while (gw_http_log_pop(c->http, &r)) {
        json_t *o = access_line(c, c->pi);
        if (o == NULL)
            continue;
        json_object_set_new(o, "result", json_string(r.result ? r.result : "ok"));
        json_object_set_new(o, "reason", r.reason ? json_string(r.reason) : json_null());
        log_backend(c, o);
        json_object_set_new(o, "method", json_string(r.method));
        json_object_set_new(o, "path", json_string(r.path));
        json_object_set_new(o, "status", r.status ? json_integer(r.status) : json_null());
        json_object_set_new(o, "upstream_ms", r.upstream_ms >= 0 ? json_integer((json_int_t)r.upstream_ms) : json_null());
        json_object_set_new(o, "bytes_in", json_integer((json_int_t)r.bytes_in));
        json_object_set_new(o, "bytes_out", json_integer((json_int_t)r.bytes_out));
        json_object_set_new(o, "duration_ms", json_integer((json_int_t)r.duration_ms));
        gw_access_log_write(o);
    }
}

static void log_access(struct gw_conn *c)
{
    if (c->http != NULL) {
        /* Requests still outstanding end with the connection; a connection that carried requests
         * is told by their lines, one that carried none (idle, refused) by its own. One an operator
         * closed says so in a line of its own as well: its requests' lines cannot. */
        gw_http_abort(c->http, gw_now_ms(), c->reason ? c->reason : "connection_closed");
        gw_conn_log_requests(c);
        if (gw_http_logged(c->http) > 0 && !c->admin_closed)
            return;
    }
    json_t *o = access_line(c, c->pi);
    if (o == NULL)
        return;
    json_object_set_new(o, "result", json_string(c->result ? c->result : "closed"));
    json_object_set_new(o, "reason", c->reason ? json_string(c->reason) : json_null());
    log_backend(c, o);
    json_object_set_new(o, "bytes_in", json_integer((json_int_t)c->bytes_in));
    json_object_set_new(o, "bytes_out", json_integer((json_int_t)c->bytes_out));
    json_object_set_new(o, "duration_ms", json_integer((json_int_t)(gw_now_ms() - c->started_ms)));
    gw_access_log_write(o);
}

void gw_conn_close(struct gw_conn *c)
{
    struct gw_worker *w = c->w;
    log_access(c);
    gw_conn_reg_remove(c);
    if (c->ssl != NULL) {
        if (c->state == CS_PROXY)
            (void)wolfSSL_shutdown(c->ssl); /* best effort close_notify; never waits */
        gw_tls_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->cfd >= 0)
        close(c->cfd);
    if (c->bfd >= 0)
        close(c->bfd);
    buf_release(c->w, &c->c2b);
    buf_release(c->w, &c->b2c);
    gw_tls_state_clear(&c->tls);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    atomic_fetch_sub(&w->srv->active, 1);
    if (c->akey_held)
        gw_addrlim_leave(w->srv->addrlim, &c->akey, c->akey_handshaking);
    c->akey_held = c->akey_handshaking = 0;
    if (c->counted_listener)
        atomic_fetch_sub(&c->l->stats->active, 1);
    atomic_fetch_add(&c->l->stats->bytes_in, c->bytes_in);
    atomic_fetch_add(&c->l->stats->bytes_out, c->bytes_out);
    /* The pool belongs to the generation: released before the reference goes. */
    if (c->backend_held)
        gw_pool_release(c->l->pool, c->backend_idx, 0);
    c->backend_held = 0;
    gw_pool_tried_free(&c->tried);
    free(c->pp2);
    c->pp2 = NULL;
    gw_http_free(c->http); /* holds the listener's config: before the generation goes */
    c->http = NULL;
    free(c->pi);
    c->pi = NULL;
    gw_gen_unref(c->gen);
    c->gen = NULL;
    /* Freed at the end of the loop turn: a later event of the same epoll batch may name it. */
    c->closed = 1;
    c->next = w->dead;
    w->dead = c;
}

void gw_conn_reap(struct gw_worker *w)
{
    while (w->dead != NULL) {
        struct gw_conn *c = w->dead;
        w->dead = c->next;
        free(c);
    }
}

void gw_conn_fail(struct gw_conn *c, const char *result, const char *reason)
{
    /* https: the request that needed a backend gets a 502 rather than a closed connection. */
    if (c->http != NULL && !c->closed && strcmp(result, "backend_unreachable") == 0) {
        gw_conn_http_unreachable(c, reason);
        return;
    }
    if (c->result == NULL)
        c->result = result;
    if (c->reason == NULL)
        c->reason = reason;
    gw_conn_close(c);
}

/* A connection refused for its address: one log line a second at most (a flood would flood the log). */
static void addr_refused(const struct gw_listener *l, const struct gw_addrkey *key, enum gw_addrlim_result why,
                         unsigned limit)
{
    static struct gw_log_every every;
    uint64_t n = 0;
    if (!gw_log_every_due(&every, &n))
        return;
    char addr[64], more[80] = "";
    gw_addrlim_key_text(key, addr, sizeof(addr));
    if (n > 0)
        snprintf(more, sizeof(more), "; %llu more refused since the last such line", (unsigned long long)n);
    if (why == GW_ADDRLIM_NOMEM)
        gw_log(LOG_WARNING, "listener %s: connection from %s closed: out of memory for the per-address counts%s",
               l->cfg->name, addr, more);
    else if (why == GW_ADDRLIM_RATE)
        gw_log(LOG_WARNING, "listener %s: connection from %s closed: the address starts more than %u a second "
               "(max_handshake_rate_per_address)%s", l->cfg->name, addr, limit, more);
    else
        gw_log(LOG_WARNING, "listener %s: connection from %s closed: the address holds %u %s (%s)%s", l->cfg->name,
               addr, limit, why == GW_ADDRLIM_CONNECTIONS ? "connections" : "unfinished handshakes",
               why == GW_ADDRLIM_CONNECTIONS ? "max_connections_per_address" : "max_handshakes_per_address", more);
}

void gw_conn_accept(struct gw_worker *w, struct gw_listener *l, int fd, const struct sockaddr_storage *peer,
                    socklen_t peerlen)
{
    (void)peerlen;
    struct gw_server *srv = w->srv;
    atomic_fetch_add(&l->stats->accepted, 1);
    unsigned active = atomic_fetch_add(&srv->active, 1) + 1;
    unsigned lactive = atomic_fetch_add(&l->stats->active, 1) + 1;
    if (active > srv->max_connections || (l->cfg->max_connections && lactive > l->cfg->max_connections)) {
        atomic_fetch_sub(&srv->active, 1);
        atomic_fetch_sub(&l->stats->active, 1);
        atomic_fetch_add(&l->stats->rejected_cap, 1);
        close(fd);
        return;
    }
    struct gw_addrkey akey;
    enum gw_addrlim_result lim = GW_ADDRLIM_OK;
    struct gw_addrlim_limits limits = { atomic_load(&srv->max_conns_per_addr), atomic_load(&srv->max_hs_per_addr),
                                        atomic_load(&srv->max_rate_per_addr) };
    /* Counted always (when the table exists), so that a reload that sets a limit finds the counts. */
    int entered = 0;
    if (srv->addrlim != NULL) {
        lim = gw_addrlim_enter(srv->addrlim, peer, &limits, w->now_ms, &akey);
        entered = lim == GW_ADDRLIM_OK;
    }
    if (lim != GW_ADDRLIM_OK) {
        atomic_fetch_sub(&srv->active, 1);
        atomic_fetch_sub(&l->stats->active, 1);
        atomic_fetch_add(&l->stats->rejected_addr, 1);
        addr_refused(l, &akey, lim, lim == GW_ADDRLIM_CONNECTIONS ? limits.conns
                                    : lim == GW_ADDRLIM_HANDSHAKES ? limits.handshakes : limits.rate);
        close(fd);
        return;
    }
    struct gw_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        atomic_fetch_sub(&srv->active, 1);
        atomic_fetch_sub(&l->stats->active, 1);
        if (entered)
            gw_addrlim_leave(srv->addrlim, &akey, 1);
        close(fd);
        return;
    }
    if (entered) {
        c->akey = akey;
        c->akey_held = c->akey_handshaking = 1;
    }
    c->ctag.kind = GW_TAG_CLIENT;
    c->btag.kind = GW_TAG_BACKEND;
    c->w = w;
    c->gen = gw_gen_ref(w->gen);
    c->l = l;
    c->cfd = fd;
    c->bfd = -1;
    c->counted_listener = 1;
    c->tls.magic = GW_TLS_STATE_MAGIC;
    c->tls.admit = l->admit;
    c->tls.live = srv->live;
    c->tls.reader = w->index;
    c->state = CS_HANDSHAKE;
    c->started_ms = w->now_ms;
    c->deadline_ms = w->now_ms + l->cfg->handshake_timeout_ms;
    addr_text(peer, c->peer, sizeof(c->peer));
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->ssl = gw_tls_new(l->tls_ctx, fd, l->key, &c->tls);
    if (c->ssl == NULL || (l->cfg->type == GW_LISTENER_HTTPS && gw_tls_alpn_http11(c->ssl) != 0)) {
        gw_conn_fail(c, "error", "out_of_memory");
        return;
    }
    if (gw_conn_ep_set(w, fd, &c->ctag, &c->cev, EPOLLIN | EPOLLRDHUP) != 0) {
        gw_conn_fail(c, "error", "epoll");
        return;
    }
}

/* ---- backend ---- */

/* The attempt on backend_idx failed (why: a static string): on to the next backend the pool offers. */
static void backend_next(struct gw_conn *c, const char *why)
{
    const struct gw_backend_cfg *b = &c->l->cfg->backends[c->backend_idx];
    gw_log(LOG_WARNING, "listener %s: backend %s: %s", c->l->cfg->name, b->addr.text, why);
    if (c->bfd >= 0) {
        close(c->bfd); /* closing removes it from epoll */
        c->bfd = -1;
        c->bev = 0;
    }
    if (c->backend_held)
        gw_pool_release(c->l->pool, c->backend_idx, 1);
    c->backend_held = 0;
    c->backend_why = why;
    (void)gw_conn_backend_start(c);
}

/* Starts a non-blocking connect to the backend the listener's pool picks (pool.h: balance, up
 * backends only unless none is up, each backend once per connection). When none is left, the
 * connection ends as backend_unreachable with the latest failure as the reason. Returns -1 if the
 * connection was closed. */
int gw_conn_backend_start(struct gw_conn *c)
{
    const struct gw_listener_cfg *lc = c->l->cfg;
    if (c->backend_tries == 0 && gw_pool_tried_init(&c->tried, gw_pool_size(c->l->pool)) != 0) {
        gw_conn_fail(c, "error", "out_of_memory");
        return -1;
    }
    int idx = gw_pool_pick(c->l->pool, &c->tried);
    if (idx < 0) {
        atomic_fetch_add(&c->l->stats->backend_failed, 1);
        gw_conn_fail(c, "backend_unreachable", c->backend_why ? c->backend_why : "no_backend");
        return -1;
    }
    c->backend_idx = (unsigned)idx;
    c->backend_held = 1;
    c->backend_tries++;
    c->pp2_off = 0;
    const struct gw_backend_cfg *b = &lc->backends[c->backend_idx];
    int fd = socket(b->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        backend_next(c, strerror(errno));
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->bfd = fd;
    c->state = CS_CONNECTING;
    c->deadline_ms = c->w->now_ms + lc->connect_timeout_ms;
    if (connect(fd, (const struct sockaddr *)&b->addr.ss, b->addr.len) != 0 && errno != EINPROGRESS) {
        backend_next(c, strerror(errno));
        return -1;
    }
    if (gw_conn_ep_set(c->w, fd, &c->btag, &c->bev, EPOLLOUT) != 0) {
        gw_conn_fail(c, "error", "epoll");
        return -1;
    }
    /* The client is quiet while we connect: nothing is read from it yet. */
    if (gw_conn_ep_set(c->w, c->cfd, &c->ctag, &c->cev, 0) != 0) {
        gw_conn_fail(c, "error", "epoll");
        return -1;
    }
    return 0;
}

/* ---- proxying ---- */

/* Proxy buffers (tcp listeners). An idle connection holds none: a direction with nothing pending
 * borrows its worker's scratch buffer (one per direction, the worker being one thread) for the length
 * of one pump, and only bytes still pending when the pump ends (back-pressure, a write wolfSSL must
 * retry) move into a buffer of the connection's own, which the sweep gives back once it is empty.
 * A buffer with data == NULL is empty, with GW_BUF_SIZE of space. */
static int buf_lent(const struct gw_worker *w, const struct gw_buf *b)
{
    return b->data != NULL && (b->data == w->scratch[0] || b->data == w->scratch[1]);
}

static int buf_borrow(struct gw_worker *w, struct gw_buf *b, int which)
{
    if (b->data != NULL)
        return 0;
    if (w->scratch[which] == NULL && (w->scratch[which] = malloc(GW_BUF_SIZE)) == NULL)
        return -1;
    b->data = w->scratch[which];
    b->start = b->end = 0;
    return 0;
}

/* At the end of a pump: a borrowed buffer is given back, its pending bytes (if any) copied into one
 * of the connection's own. Returns -1 when that allocation failed (the bytes are lost: close). */
static int buf_settle(struct gw_worker *w, struct gw_buf *b)
{
    if (!buf_lent(w, b))
        return 0;
    uint32_t len = buf_len(b);
    unsigned char *own = NULL;
    if (len > 0) {
        own = malloc(GW_BUF_SIZE);
        if (own != NULL)
            memcpy(own, b->data + b->start, len);
    }
    b->data = own;
    b->start = 0;
    b->end = own != NULL ? len : 0;
    return len > 0 && own == NULL ? -1 : 0;
}

/* Frees a buffer of the connection's own; a borrowed one is only let go. */
static void buf_release(struct gw_worker *w, struct gw_buf *b)
{
    if (!buf_lent(w, b))
        free(b->data);
    b->data = NULL;
    b->start = b->end = 0;
}

static int update_interest(struct gw_conn *c)
{
    if (c->http != NULL)
        return gw_conn_http_interest(c);
    uint32_t cw = 0, bw = 0;
    if ((!c->client_eof && buf_space(&c->c2b) > 0) || c->c_write_wants_read)
        cw |= EPOLLIN | EPOLLRDHUP;
    if (c->c_read_wants_write || c->c_write_wants_write)
        cw |= EPOLLOUT;
    if (!c->backend_eof && buf_space(&c->b2c) > 0)
        bw |= EPOLLIN | EPOLLRDHUP;
    if (buf_len(&c->c2b) > 0)
        bw |= EPOLLOUT;
    if (gw_conn_ep_set(c->w, c->cfd, &c->ctag, &c->cev, cw) != 0 || gw_conn_ep_set(c->w, c->bfd, &c->btag, &c->bev, bw) != 0) {
        gw_conn_fail(c, "error", "epoll");
        return -1;
    }
    return 0;
}

/* Moves as many bytes as both sides allow. Returns -1 when the connection was closed. */
static int pump(struct gw_conn *c)
{
    if (c->http != NULL)
        return gw_conn_http_pump(c);
    if (buf_borrow(c->w, &c->c2b, 0) != 0 || buf_borrow(c->w, &c->b2c, 1) != 0) {
        gw_conn_fail(c, "error", "out_of_memory");
        return -1;
    }
    int progress, moved = 0;
    do {
        progress = 0;
        /* client -> c2b */
        if (!c->client_eof && buf_space(&c->c2b) > 0 && !c->c_write_wants_read) {
            c->c_read_wants_write = 0;
            int n = wolfSSL_read(c->ssl, c->c2b.data + c->c2b.end, (int)buf_space(&c->c2b));
            if (n > 0) {
                c->c2b.end += (uint32_t)n;
                c->bytes_in += (uint64_t)n;
                progress = 1;
            } else {
                int e = wolfSSL_get_error(c->ssl, n);
                if (e == WOLFSSL_ERROR_WANT_READ) {
                    /* wait for the socket */
                } else if (e == WOLFSSL_ERROR_WANT_WRITE) {
                    c->c_read_wants_write = 1;
                } else if (e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E ||
                           e == WOLFSSL_ERROR_SYSCALL) {
                    c->client_eof = 1;
                    progress = 1;
                } else {
                    gw_conn_fail(c, "error", "tls_read_failed");
                    return -1;
                }
            }
        }
        /* c2b -> backend */
        if (buf_len(&c->c2b) > 0) {
            ssize_t n = send(c->bfd, c->c2b.data + c->c2b.start, buf_len(&c->c2b), MSG_NOSIGNAL);
            if (n > 0) {
                c->c2b.start += (uint32_t)n;
                buf_compact(&c->c2b);
                progress = 1;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                gw_conn_fail(c, "backend_error", "backend_write_failed");
                return -1;
            }
        }
        if (c->client_eof && buf_len(&c->c2b) == 0 && !c->backend_shut) {
            (void)shutdown(c->bfd, SHUT_WR);
            c->backend_shut = 1;
        }
        /* backend -> b2c */
        if (!c->backend_eof && buf_space(&c->b2c) > 0) {
            ssize_t n = recv(c->bfd, c->b2c.data + c->b2c.end, buf_space(&c->b2c), 0);
            if (n > 0) {
                c->b2c.end += (uint32_t)n;
                progress = 1;
            } else if (n == 0) {
                c->backend_eof = 1;
                progress = 1;
            } else if (errno != EAGAIN && errno != EINTR) {
                if (buf_len(&c->b2c) == 0) {
                    gw_conn_fail(c, "backend_error", "backend_reset");
                    return -1;
                }
                c->backend_eof = 1;
            }
        }
        /* b2c -> client */
        if (buf_len(&c->b2c) > 0) {
            uint32_t len = c->pending_write ? c->pending_write : buf_len(&c->b2c);
            c->c_write_wants_read = 0;
            c->c_write_wants_write = 0;
            int n = wolfSSL_write(c->ssl, c->b2c.data + c->b2c.start, (int)len);
            if (n > 0) {
                c->pending_write = 0;
                c->b2c.start += (uint32_t)n;
                c->bytes_out += (uint64_t)n;
                buf_compact(&c->b2c);
                progress = 1;
            } else {
                int e = wolfSSL_get_error(c->ssl, n);
                if (e == WOLFSSL_ERROR_WANT_WRITE || e == WOLFSSL_ERROR_WANT_READ) {
                    /* wolfSSL keeps the record; the retry must offer the same bytes. */
                    c->pending_write = len;
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
        if (c->backend_eof && buf_len(&c->b2c) == 0) {
            c->result = "ok";
            gw_conn_close(c);
            return -1;
        }
        moved |= progress;
    } while (progress);
    if (buf_settle(c->w, &c->c2b) != 0 || buf_settle(c->w, &c->b2c) != 0) {
        gw_conn_fail(c, "error", "out_of_memory");
        return -1;
    }
    if (moved)
        c->deadline_ms = c->w->now_ms + c->l->cfg->idle_timeout_ms;
    return update_interest(c);
}

static void enter_proxy(struct gw_conn *c)
{
    if (c->http != NULL) { /* https: the engine has its own buffers */
        gw_conn_http_backend_up(c);
        return;
    }
    c->state = CS_PROXY; /* the buffers come with the first bytes (buf_borrow) */
    c->deadline_ms = c->w->now_ms + c->l->cfg->idle_timeout_ms;
    (void)pump(c);
}

/* The PROXY v2 header of this connection (proxy_v2.h) into c->pp2: the client's address, the
 * listener's local one, the TLS facts. Its own buffer: with a client certificate it can outgrow
 * c2b. Returns NULL, or the reason the connection cannot go on. */
static const char *pp2_build(struct gw_conn *c)
{
    struct sockaddr_storage src, dst;
    socklen_t sl = sizeof(src), dl = sizeof(dst);
    if (getpeername(c->cfd, (struct sockaddr *)&src, &sl) != 0 || getsockname(c->cfd, (struct sockaddr *)&dst, &dl) != 0)
        return "client_closed";
    struct gw_tls_pp2 info;
    if (gw_tls_pp2_info(c->ssl, c->l->cfg->proxy_protocol_cert, &info) != 0)
        return "out_of_memory";
    /* PP2_CLIENT_CERT_SESS: a certificate was sent at least once in the TLS session this
     * connection belongs to - always so when it was sent in this very handshake. */
    struct gw_pp2_ssl s = {
        .present = 1,
        .client = (uint8_t)(GW_PP2_CLIENT_SSL | (info.has_cert ? GW_PP2_CLIENT_CERT_SESS : 0) |
                            (info.cert_in_conn ? GW_PP2_CLIENT_CERT_CONN : 0)),
        .verify = (uint32_t)info.verify,
        .version = info.version,
        .cn = info.cn,
        .cipher = info.cipher,
        .sig_alg = info.sig_alg,
        .key_alg = info.key_alg,
        .cert_der = info.der,
        .cert_len = info.der_len,
    };
    const char *why = NULL;
    size_t len = 0;
    int rc = gw_pp2_encode((struct sockaddr *)&src, (struct sockaddr *)&dst, &s, NULL, 0, &len);
    if (rc == GW_PP2_E_SPACE) {
        c->pp2 = malloc(len);
        rc = c->pp2 != NULL ? gw_pp2_encode((struct sockaddr *)&src, (struct sockaddr *)&dst, &s, c->pp2, len, &len)
                            : GW_PP2_E_SPACE;
    }
    if (rc == 0) {
        c->pp2_len = (uint32_t)len;
    } else {
        why = rc == GW_PP2_E_TOO_LONG ? "proxy_header_too_long" : "out_of_memory";
        free(c->pp2);
        c->pp2 = NULL;
    }
    gw_tls_pp2_clear(&info);
    return why;
}

/* The connect finished (or failed). With proxy_protocol: v2 the header goes out first, still in
 * CS_CONNECTING: no client byte can overtake it, and a backend that fails to take it is one more
 * failed attempt (nothing of the client's was sent yet, so the next backend is safe to try). */
static void backend_connected(struct gw_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->bfd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        backend_next(c, strerror(err));
        return;
    }
    if (c->l->cfg->type == GW_LISTENER_TCP && c->l->cfg->proxy_protocol == GW_PROXY_V2) {
        if (c->pp2 == NULL) {
            const char *why = pp2_build(c);
            if (why != NULL) {
                gw_conn_fail(c, "error", why);
                return;
            }
        }
        while (c->pp2_off < c->pp2_len) {
            ssize_t n = send(c->bfd, c->pp2 + c->pp2_off, c->pp2_len - c->pp2_off, MSG_NOSIGNAL);
            if (n > 0) {
                c->pp2_off += (uint32_t)n;
            } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                return; /* the backend socket is still watched for EPOLLOUT */
            } else {
                backend_next(c, strerror(n < 0 ? errno : EPIPE));
                return;
            }
        }
        free(c->pp2);
        c->pp2 = NULL;
        c->pp2_len = c->pp2_off = 0;
    }
    enter_proxy(c);
}

/* ---- handshake ---- */

static void linger_read(struct gw_conn *c)
{
    unsigned char sink[4096];
    for (;;) {
        ssize_t n = recv(c->cfd, sink, sizeof(sink), 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        gw_conn_close(c); /* EOF or error: the client is done */
        return;
    }
}

void gw_conn_linger(struct gw_conn *c)
{
    c->state = CS_LINGER;
    c->deadline_ms = c->w->now_ms + LINGER_MS;
    (void)shutdown(c->cfd, SHUT_WR);
    if (gw_conn_ep_set(c->w, c->cfd, &c->ctag, &c->cev, EPOLLIN | EPOLLRDHUP) != 0) {
        gw_conn_close(c);
        return;
    }
    linger_read(c);
}

static void policy_refused(struct gw_conn *c)
{
    if (c->tls.decided && c->tls.verdict.reason != POL_ADMIT && (unsigned)c->tls.verdict.reason < POL_REASON_COUNT)
        atomic_fetch_add(&c->l->stats->policy_refused[c->tls.verdict.reason], 1);
}

/* A resumed session skips certificate verification: the identity kept in the session is decided
 * on again with the current snapshot (../shared/DESIGN.md fact 6). Returns 0 when admitted. */
static int resumed_admission(struct gw_conn *c)
{
    if (c->tls.admit == NULL || !wolfSSL_session_reused(c->ssl))
        return 0;
    enum pol_reason r = gw_tls_decide(c->ssl, &c->tls);
    if (r == POL_ADMIT || (r == POL_R_NO_CERT && c->tls.ident.n == 0 && c->l->cfg->auth == GW_AUTH_OPTIONAL)) {
        if (c->tls.ident.n == 0)
            c->tls.decided = 0; /* optional, and no certificate in this session: nothing was decided */
        return 0;
    }
    policy_refused(c);
    atomic_fetch_add(&c->l->stats->handshakes_failed, 1);
    atomic_fetch_add(&c->l->stats->hs_failed[gw_hs_reason_index(pol_reason_name(r))], 1);
    gw_log(LOG_INFO, "listener %s: resumed session from %s refused: %s", c->l->cfg->name, c->peer,
           pol_reason_name(r));
    c->result = "handshake_failed";
    c->reason = pol_reason_name(r);
    (void)wolfSSL_shutdown(c->ssl); /* close_notify: the client learns at once */
    gw_conn_linger(c);
    return -1;
}

static void handshake_step(struct gw_conn *c)
{
    int rc = wolfSSL_accept(c->ssl);
    if (rc == WOLFSSL_SUCCESS) {
        c->hs_done = 1;
        if (c->akey_handshaking) {
            gw_addrlim_handshake_done(c->w->srv->addrlim, &c->akey);
            c->akey_handshaking = 0;
        }
        gw_tls_handshake_done(c->ssl);
        if (resumed_admission(c) != 0)
            return;
        atomic_fetch_add(&c->l->stats->handshakes_ok, 1);
        if (wolfSSL_session_reused(c->ssl))
            atomic_fetch_add(&c->l->stats->resumed, 1);
        /* Admitted: from here on the admin API lists it (conn_reg.h). */
        if (c->l->cfg->type == GW_LISTENER_HTTPS) { /* the backend comes with the first request */
            gw_conn_http_start(c); /* reads the client's identity into c->pi, which the entry reuses */
            if (!c->closed && gw_conn_reg_add(c, c->pi) != 0)
                gw_conn_fail(c, "error", "out_of_memory");
            return;
        }
        if (gw_conn_reg_add(c, NULL) != 0) {
            gw_conn_fail(c, "error", "out_of_memory");
            return;
        }
        (void)gw_conn_backend_start(c);
        return;
    }
    int e = wolfSSL_get_error(c->ssl, rc);
    if (e == WOLFSSL_ERROR_WANT_READ) {
        if (gw_conn_ep_set(c->w, c->cfd, &c->ctag, &c->cev, EPOLLIN | EPOLLRDHUP) != 0)
            gw_conn_fail(c, "error", "epoll");
        return;
    }
    if (e == WOLFSSL_ERROR_WANT_WRITE) {
        if (gw_conn_ep_set(c->w, c->cfd, &c->ctag, &c->cev, EPOLLOUT) != 0)
            gw_conn_fail(c, "error", "epoll");
        return;
    }
    atomic_fetch_add(&c->l->stats->handshakes_failed, 1);
    policy_refused(c);
    const char *reason = gw_tls_handshake_reason(c->ssl, e, &c->tls);
    atomic_fetch_add(&c->l->stats->hs_failed[gw_hs_reason_index(reason)], 1);
    gw_log(LOG_INFO, "listener %s: handshake from %s refused: %s", c->l->cfg->name, c->peer, reason);
    c->result = "handshake_failed";
    c->reason = reason;
    gw_conn_linger(c);
}

void gw_conn_on_event(struct gw_worker *w, struct gw_tag *tag, uint32_t events)
{
    (void)w;
    struct gw_conn *c = conn_of(tag);
    if (c->closed)
        return;
    switch (c->state) {
    case CS_HANDSHAKE:
        handshake_step(c);
        return;
    case CS_CONNECTING:
        if (tag->kind == GW_TAG_BACKEND && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            backend_connected(c);
        return;
    case CS_PROXY:
        (void)pump(c);
        return;
    case CS_LINGER:
        linger_read(c);
        return;
    }
}

void gw_conn_sweep(struct gw_worker *w, int force)
{
    struct gw_conn *c = w->conns;
    int draining = atomic_load(&w->srv->state) != GW_RUNNING;
    while (c != NULL) {
        struct gw_conn *next = c->next;
        if (c->state == CS_PROXY && c->http == NULL) {
            /* Drained since the last sweep: an idle connection keeps no buffer. */
            if (c->c2b.data != NULL && buf_len(&c->c2b) == 0)
                buf_release(w, &c->c2b);
            if (c->b2c.data != NULL && buf_len(&c->b2c) == 0)
                buf_release(w, &c->b2c);
        }
        if (force) {
            gw_conn_fail(c, "closed", "shutdown");
        } else if (draining && c->http != NULL && c->state == CS_PROXY && gw_http_idle(c->http)) {
            /* Draining: an https connection between two requests has nothing left to finish. */
            gw_conn_fail(c, "ok", "shutdown");
        } else if (c->deadline_ms <= w->now_ms) {
            switch (c->state) {
            case CS_HANDSHAKE:
                atomic_fetch_add(&c->l->stats->handshakes_failed, 1);
                atomic_fetch_add(&c->l->stats->hs_failed[gw_hs_reason_index("handshake_timeout")], 1);
                gw_conn_fail(c, "handshake_failed", "handshake_timeout");
                break;
            case CS_CONNECTING:
                backend_next(c, "connect timeout");
                break;
            case CS_PROXY:
                if (c->http != NULL)
                    gw_conn_http_sweep(c);
                else
                    gw_conn_fail(c, "ok", "idle_timeout");
                break;
            case CS_LINGER:
                gw_conn_close(c);
                break;
            }
        }
        c = next;
    }
}

/* ---- policy changes ---- */

/* The rules of c's listener as now configured: a reload that tightens a policy applies to the
 * connections it admitted before, too. A listener renamed away, or now one-way, keeps its old rules
 * for the connections it has. */
static const struct gw_admit *admit_now(struct gw_worker *w, const struct gw_conn *c)
{
    if (w->gen == NULL || w->gen == c->gen)
        return c->tls.admit;
    for (size_t i = 0; i < w->gen->nlisteners; i++) {
        const struct gw_listener *l = &w->gen->listeners[i];
        if (strcmp(l->cfg->name, c->l->cfg->name) == 0)
            return l->admit != NULL ? l->admit : c->tls.admit;
    }
    return c->tls.admit;
}

unsigned gw_conn_policy_recheck(struct gw_worker *w)
{
    unsigned closed = 0;
    for (struct gw_conn *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->closed || c->state == CS_LINGER || !c->tls.decided || c->tls.ident.n == 0)
            continue;
        if (c->tls.verdict.reason != POL_ADMIT)
            continue; /* refused already; its handshake is failing */
        enum pol_reason r = gw_tls_redecide(&c->tls, admit_now(w, c));
        if (r == POL_ADMIT)
            continue;
        atomic_fetch_add(&c->l->stats->policy_closed, 1);
        policy_refused(c);
        gw_log(LOG_INFO, "listener %s: connection from %s closed: %s (store generation %llu)", c->l->cfg->name,
               c->peer, pol_reason_name(r), (unsigned long long)c->tls.verdict.generation);
        c->result = "policy_closed";
        c->reason = pol_reason_name(r);
        gw_conn_close(c);
        closed++;
    }
    return closed;
}
