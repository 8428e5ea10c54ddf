/*
 * loadgen: TLS load generator for hsmgate's benchmark harness.
 *
 * It is built on OpenSSL's libssl on purpose: the gateway runs wolfSSL, and a
 * client sharing the server's TLS stack could share its bugs and hide interop
 * faults. Each thread runs its own epoll loop over non-blocking sockets so no
 * lock sits on the hot path; threads meet only at two atomics (stop flag and
 * the --count budget) and merge their statistics after joining.
 *
 * A success is counted only once a correct reply has been read: under TLS 1.3
 * the server verifies the client certificate after the client has already
 * finished its handshake (RFC 8446 4.4.2, 4.6.2), so a rejected client sees the
 * alert (or EOF) only on its first read.
 *
 * Build: gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Wshadow -Wformat=2
 *        -Wmissing-prototypes -Wstrict-prototypes -o build/release/tests/loadgen
 *        tests/bench/loadgen.c -lssl -lcrypto -lm
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define LG_CONN_MAGIC 0x4c47434eu /* "LGCN": checked on every void * round trip */
#define HIST_SUB_BITS 6           /* 64 sub-buckets per power of two */
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((32 - HIST_SUB_BITS + 1) * HIST_SUB)
#define BULK_CHUNK 16384          /* one full TLS record per write */
#define BULK_WINDOW (1u << 20)    /* bytes in flight per bulk connection */
#define PAT_PERIOD 251            /* prime, so stream offsets never alias a record size */
#define REPLY_CAP 16384           /* buffer for --expect replies (HTTP headers) */
#define CONNECT_BACKOFF_NS 20000000ull /* a refused port must not spin a core */
#define SCAN_NS 10000000ull
#define MAX_EVENTS 256
#define IDLE_RAMP 64    /* idle mode: handshakes in flight per thread while the held set grows */
#define DRIVE_ROUNDS 64 /* steps one wake-up may take before the loop moves on */
#define TIMEOUT_NS ((uint64_t)(g_opt.timeout * 1e9))

enum lg_mode { LG_FULL, LG_RESUME, LG_KEEPALIVE, LG_BULK, LG_IDLE, LG_MODE_MAX };
static const char *const mode_names[] = { "full", "resume", "keepalive", "bulk", "idle" };

enum lg_err { LG_E_NONE, LG_E_CONNECT, LG_E_HANDSHAKE, LG_E_ALERT, LG_E_EOF, LG_E_MISMATCH,
              LG_E_TIMEOUT, LG_E_MAX };
static const char *const err_names[] = { "none", "connect", "handshake", "alert", "eof",
                                         "mismatch", "timeout" };

/* ST_HOLD sits before ST_CONNECTING: a held connection has no deadline (worker_scan). */
enum lg_state { ST_IDLE, ST_RETRY, ST_HOLD, ST_CONNECTING, ST_HANDSHAKE, ST_WRITE, ST_READ, ST_BULK };
static const char *const state_names[] = { "idle", "retry", "holding", "connecting", "handshake", "writing",
                                           "reading", "streaming" };

struct lg_opts {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    const char *connect, *ca, *cert, *key, *servername, *cipher;
    unsigned char *expect; /* escapes decoded, like the payload's */
    size_t expect_len;
    int tls; /* 0: 1.2 or 1.3, else 12 or 13 */
    enum lg_mode mode;
    int concurrency, threads, json, allow_remote;
    struct sockaddr_in bind4;          /* --bind: the source address (IPv4 loopback only); sin_family 0: none */
    double duration, timeout; /* seconds; duration 0 means "until --count" */
    uint64_t count;           /* operations (successes + errors); 0 means none */
    double rate;              /* --rate: operations started per second (open loop); 0: closed loop */
    unsigned char *payload;
    size_t payload_len;
};

struct lg_hist {
    uint64_t b[HIST_BUCKETS];
    uint64_t n, sum, max;
};

struct lg_stats {
    uint64_t ok, err[LG_E_MAX], resumed, not_resumed, bytes;
    struct lg_hist h;
};

struct lg_worker;

struct lg_conn {
    uint32_t magic;
    struct lg_worker *w;
    int fd;
    SSL *ssl;
    enum lg_state st;
    int warmup;       /* resume mode: the untimed priming handshake */
    int paced;        /* --rate: holds a start slot (retry_at) and waits for it in ST_RETRY */
    int alert;        /* (level << 8) | description of a non-close_notify alert read */
    uint32_t ev;      /* epoll interest currently registered */
    uint32_t revents; /* events of the current wake-up */
    uint64_t t_start, deadline, retry_at; /* CLOCK_MONOTONIC ns */
    size_t woff, rlen;                    /* request bytes written, reply bytes buffered */
    size_t need, got;                     /* keepalive HTTP framing: whole reply size, seen */
    uint64_t bw, br;                      /* bulk stream offsets written / verified */
    unsigned char *rbuf;
    size_t rcap;
    char why[160];
};

struct lg_worker {
    int ep, nconn;
    SSL_CTX *ctx;
    SSL_SESSION **pool; /* resume mode: tickets, newest on top (a ring) */
    int pool_cap, pool_top, pool_n;
    int next_open; /* idle mode: slots are opened IDLE_RAMP at a time, the next one when one is held */
    uint64_t next_slot, slot_gap; /* --rate: this thread's next start time and the time between starts (ns) */
    struct lg_conn *conns;
    struct lg_stats st;
    char first_err[LG_E_MAX][200];
    pthread_t th;
    int rc;
};

static struct lg_opts g_opt;
static atomic_int g_stop;
static atomic_uint_fast64_t g_claimed;
static atomic_int g_ready, g_go; /* workers primed / clock started */
static atomic_int g_held;        /* idle mode: connections admitted and now held open */
static uint64_t g_end_ns;
static unsigned char *g_pat; /* bulk pattern: byte at stream offset i is i % PAT_PERIOD */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Log-linear buckets (as in HdrHistogram): exact below 128 us, then 64 per
 * power of two, so memory is fixed whatever the run length.
 */
static void hist_add(struct lg_hist *h, uint64_t us)
{
    unsigned e;

    us = us > UINT32_MAX ? UINT32_MAX : us;
    e = us < 2 * HIST_SUB ? 0 : 63u - (unsigned)__builtin_clzll(us) - HIST_SUB_BITS;
    h->b[e == 0 ? (unsigned)us : (e + 1) * HIST_SUB + (unsigned)((us >> e) - HIST_SUB)]++;
    h->n++;
    h->sum += us;
    h->max = us > h->max ? us : h->max;
}

/* Percentile p of h, as its bucket's midpoint: off by at most half a bucket (under 0.8 %). */
static uint64_t hist_pct(const struct lg_hist *h, double p)
{
    uint64_t target = (uint64_t)ceil(p * (double)h->n), acc = 0, v;
    unsigned i, e;

    for (i = 0; h->n != 0 && i < HIST_BUCKETS; i++) {
        acc += h->b[i];
        if (acc < target || acc == 0)
            continue;
        e = i / HIST_SUB - 1;
        v = i < 2 * HIST_SUB ? i : ((uint64_t)(i % HIST_SUB + HIST_SUB) << e) + ((1ull << e) >> 1);
        return v < h->max ? v : h->max;
    }
    return h->max;
}

static void stats_merge(struct lg_stats *dst, const struct lg_stats *src)
{
    size_t i;
    uint64_t max = dst->h.max > src->h.max ? dst->h.max : src->h.max;
    const uint64_t *a = (const uint64_t *)src;
    uint64_t *b = (uint64_t *)dst;

    /* Every field is a uint64_t counter, so the sum goes field by field; max is fixed up. */
    for (i = 0; i < sizeof(*src) / sizeof(uint64_t); i++)
        b[i] += a[i];
    dst->h.max = max;
}

__attribute__((format(printf, 2, 3)))
static void conn_why(struct lg_conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
}

/* Claims one operation from the --count budget. Returns 0, or -1 once the run is over. */
static int op_claim(void)
{
    if (atomic_load(&g_stop) || (g_opt.count != 0 && atomic_fetch_add(&g_claimed, 1) >= g_opt.count))
        return -1;
    return 0;
}

/* SSL_get_error() and errno are only meaningful if both were clear before the call. */
static void ssl_prep(void)
{
    ERR_clear_error();
    errno = 0;
}

/* Frees the TLS object and socket; `clean` sends close_notify first (best effort). */
static void conn_close(struct lg_conn *c, int clean)
{
    if (c->ssl != NULL) {
        if (clean) {
            ERR_clear_error();
            (void)SSL_shutdown(c->ssl);
        }
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    if (c->fd >= 0) {
        close(c->fd); /* also drops it from the epoll set */
        c->fd = -1;
    }
    c->st = ST_IDLE;
    c->ev = 0;
    c->alert = 0;
    c->woff = c->rlen = c->need = c->got = c->bw = c->br = 0;
}

static void conn_fail(struct lg_conn *c, int kind);

/* Keeps a ticket; when the ring is full the oldest one is dropped. Takes ownership. */
static void pool_push(struct lg_worker *w, SSL_SESSION *sess)
{
    if (w->pool_n == w->pool_cap)
        SSL_SESSION_free(w->pool[w->pool_top]); /* the oldest sits where the next goes */
    else
        w->pool_n++;
    w->pool[w->pool_top] = sess;
    w->pool_top = (w->pool_top + 1) % w->pool_cap;
}

/*
 * Offers the newest ticket. OpenSSL's client uses a TLS 1.3 ticket once and
 * then marks it not resumable (RFC 8446 C.4), so concurrent connections each
 * need their own: 1.3 tickets leave the pool, 1.2 sessions stay for reuse.
 * With an empty pool the handshake is full and shows up as not_resumed.
 */
static int conn_take_session(struct lg_conn *c)
{
    struct lg_worker *w = c->w;
    SSL_SESSION *sess;
    int rc;

    if (w->pool_n == 0)
        return 0;
    w->pool_top = (w->pool_top + w->pool_cap - 1) % w->pool_cap;
    w->pool_n--;
    sess = w->pool[w->pool_top];
    w->pool[w->pool_top] = NULL;
    rc = SSL_set_session(c->ssl, sess) == 1 ? 0 : -1;
    if (rc == 0 && SSL_SESSION_get_protocol_version(sess) != TLS1_3_VERSION)
        pool_push(w, sess);
    else
        SSL_SESSION_free(sess); /* the SSL holds its own reference */
    return rc;
}

/*
 * Starts a new connection in slot c (which must be idle). Ops are claimed per
 * connection, except bulk (timed only). Failures here count as connect errors.
 */
static void conn_open(struct lg_conn *c)
{
    struct epoll_event e = { .events = EPOLLOUT, .data.ptr = c };
    const char *why;
    int one = 1, r;

    c->st = ST_IDLE;
    errno = 0; /* so a failing TLS call does not report some older errno */
    if (c->paced) { /* its slot has come (worker_scan) */
        c->paced = 0;
        c->t_start = c->retry_at;
    } else {
        if ((g_opt.mode == LG_BULK || c->warmup) ? atomic_load(&g_stop) != 0 : op_claim() != 0)
            return;
        c->t_start = now_ns();
        if (g_opt.rate > 0 && !c->warmup) {
            /* Open loop: starts follow the schedule whatever the server's pace; a slot already
             * past starts now (catching up), and latency counts from the slot, so time spent
             * behind schedule is not hidden (no coordinated omission). */
            uint64_t slot = c->w->next_slot;
            c->w->next_slot += c->w->slot_gap;
            if (slot > c->t_start) {
                c->paced = 1;
                c->st = ST_RETRY;
                c->retry_at = slot;
                return;
            }
            c->t_start = slot;
        }
    }
    c->deadline = c->t_start + TIMEOUT_NS;
    why = "socket";
    c->fd = socket(g_opt.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        goto fail;
    /* Requests are small and latency is measured: do not let Nagle hold them. */
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    why = "bind";
    if (g_opt.bind4.sin_family == AF_INET &&
        bind(c->fd, (const struct sockaddr *)&g_opt.bind4, sizeof(g_opt.bind4)) != 0)
        goto fail;
    why = "TLS object setup";
    c->ssl = SSL_new(c->w->ctx);
    if (c->ssl == NULL || SSL_set_app_data(c->ssl, c) != 1 || SSL_set_fd(c->ssl, c->fd) != 1)
        goto fail;
    if (g_opt.servername != NULL && (SSL_set_tlsext_host_name(c->ssl, g_opt.servername) != 1 ||
                                     SSL_set1_host(c->ssl, g_opt.servername) != 1))
        goto fail;
    if (g_opt.mode == LG_RESUME && !c->warmup && conn_take_session(c) != 0)
        goto fail;
    SSL_set_connect_state(c->ssl);
    why = "connect";
    r = connect(c->fd, (const struct sockaddr *)&g_opt.addr, g_opt.addrlen);
    if (r != 0 && errno != EINPROGRESS)
        goto fail;
    why = "epoll_ctl";
    if (epoll_ctl(c->w->ep, EPOLL_CTL_ADD, c->fd, &e) != 0)
        goto fail;
    c->ev = EPOLLOUT;
    c->st = r == 0 ? ST_HANDSHAKE : ST_CONNECTING;
    return;
fail:
    conn_why(c, "%s: %s", why, errno != 0 ? strerror(errno) : "failed");
    conn_fail(c, LG_E_CONNECT);
}

/*
 * Records an error (unless the run is already stopping: connections we tear
 * down ourselves are not the server's fault) and recycles the slot. Connect
 * errors back off briefly so a closed port does not turn into a busy loop.
 */
static void conn_fail(struct lg_conn *c, int kind)
{
    struct lg_worker *w = c->w;

    if (!atomic_load(&g_stop)) {
        w->st.err[kind]++;
        if (w->first_err[kind][0] == '\0')
            snprintf(w->first_err[kind], sizeof(w->first_err[kind]), "%s (while %s%s)", c->why,
                     state_names[c->st], c->warmup ? ", priming" : "");
    }
    conn_close(c, 0);
    if (c->warmup) { /* priming is tried once per slot, so it always ends */
        c->warmup = 0;
        return;
    }
    if (kind == LG_E_CONNECT) {
        c->st = ST_RETRY;
        c->retry_at = now_ns() + CONNECT_BACKOFF_NS;
        return;
    }
    conn_open(c);
}

/*
 * Maps an SSL_* result to "wait for these epoll events" (returns 0) or an
 * error kind (returns -kind). The error queue is read before anything clears it.
 */
static int ssl_wait(struct lg_conn *c, int r, uint32_t *ev)
{
    int saved = errno, e = SSL_get_error(c->ssl, r);
    unsigned long ec = ERR_peek_error();
    long vr = SSL_get_verify_result(c->ssl);
    char buf[120];

    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *ev |= e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
        return 0;
    }
    if (c->alert != 0 && (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL)) {
        conn_why(c, "alert from server: %s", SSL_alert_desc_string_long(c->alert));
        return -LG_E_ALERT;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        conn_why(c, "close_notify before a complete reply");
        return -LG_E_EOF;
    }
    /* OpenSSL 3 reports a bare TCP EOF as a protocol error; it is an EOF all the same. */
    if (e == SSL_ERROR_SYSCALL || (e == SSL_ERROR_SSL && ERR_GET_LIB(ec) == ERR_LIB_SSL &&
                                   ERR_GET_REASON(ec) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
        conn_why(c, "%s", saved != 0 ? strerror(saved) : "EOF without close_notify");
        return -LG_E_EOF;
    }
    ERR_error_string_n(ec, buf, sizeof(buf));
    conn_why(c, "%s%s%s", buf, vr != X509_V_OK ? "; verify: " : "",
             vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
    return -LG_E_HANDSHAKE;
}

/* Returns 1 once a non-blocking connect has finished, 0 to keep waiting, -LG_E_CONNECT. */
static int sock_connected(struct lg_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if ((c->revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0)
        return 0;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        conn_why(c, "connect: %s", strerror(err != 0 ? err : errno));
        return -LG_E_CONNECT;
    }
    c->st = ST_HANDSHAKE;
    return 1;
}

/* Begins one request on an established connection. */
static void req_start(struct lg_conn *c, uint64_t now)
{
    c->woff = c->rlen = 0;
    c->need = c->got = 0;
    if (g_opt.mode == LG_KEEPALIVE) {
        c->t_start = now;
        c->deadline = now + TIMEOUT_NS;
    }
    c->st = ST_WRITE;
}

static int step_handshake(struct lg_conn *c, uint32_t *ev)
{
    int r;

    ssl_prep();
    r = SSL_do_handshake(c->ssl);
    if (r != 1)
        return ssl_wait(c, r, ev);
    if (g_opt.mode != LG_BULK) {
        req_start(c, now_ns());
        return 1;
    }
    c->deadline = now_ns() + TIMEOUT_NS; /* bulk: the deadline then follows progress */
    c->st = ST_BULK;
    return 1;
}

static int step_write(struct lg_conn *c, uint32_t *ev)
{
    int r;

    while (c->woff < g_opt.payload_len) {
        ssl_prep();
        r = SSL_write(c->ssl, g_opt.payload + c->woff, (int)(g_opt.payload_len - c->woff));
        if (r <= 0)
            return ssl_wait(c, r, ev);
        c->woff += (size_t)r;
    }
    c->st = ST_READ;
    return 1;
}

/*
 * Keepalive against an HTTP backend needs each reply's end: the header block
 * plus Content-Length (RFC 9112 6.3). Chunked or close-delimited bodies cannot
 * be reused, so they are reported as mismatches. Returns 1 when framed,
 * 0 when the header block is incomplete, -kind on error.
 */
static int http_frame(struct lg_conn *c)
{
    char *end, *cl;
    unsigned long long n;

    c->rbuf[c->rlen] = '\0';
    end = strstr((char *)c->rbuf, "\r\n\r\n");
    if (end == NULL) {
        if (c->rlen == c->rcap) {
            conn_why(c, "reply header over %zu bytes", c->rcap);
            return -LG_E_MISMATCH;
        }
        return 0;
    }
    end[2] = '\0'; /* restrict the search to the header block */
    cl = strcasestr((char *)c->rbuf, "\r\ncontent-length:");
    if (cl == NULL || strcasestr((char *)c->rbuf, "\r\ntransfer-encoding:") != NULL) {
        conn_why(c, "keepalive needs a Content-Length reply");
        return -LG_E_MISMATCH;
    }
    n = strtoull(cl + 17, NULL, 10);
    c->need = (size_t)(end + 4 - (char *)c->rbuf) + (size_t)n;
    c->got = c->rlen;
    return 1;
}

/*
 * Accepts r new bytes of reply. Returns 1 when the reply is complete and
 * correct, 0 when more is needed, -LG_E_MISMATCH when it is wrong.
 */
static int reply_take(struct lg_conn *c, size_t r)
{
    size_t old = c->rlen, cmp;
    int rc;

    if (c->need != 0) { /* keepalive HTTP body: bytes only counted */
        c->got += r;
        goto check_len;
    }
    c->rlen += r;
    if (g_opt.expect == NULL) {
        if (memcmp(c->rbuf + old, g_opt.payload + old, r) != 0) {
            conn_why(c, "echo differs at byte %zu", old);
            return -LG_E_MISMATCH;
        }
        return c->rlen == g_opt.payload_len;
    }
    cmp = c->rlen < g_opt.expect_len ? c->rlen : g_opt.expect_len;
    if (old < cmp && memcmp(c->rbuf + old, g_opt.expect + old, cmp - old) != 0) {
        conn_why(c, "reply does not start with --expect: \"%.*s\"", (int)(cmp < 40 ? cmp : 40),
                 (const char *)c->rbuf);
        return -LG_E_MISMATCH;
    }
    if (c->rlen < g_opt.expect_len)
        return 0;
    if (g_opt.mode != LG_KEEPALIVE)
        return 1; /* the connection is closed next: the rest of the reply is moot */
    rc = http_frame(c);
    if (rc <= 0)
        return rc;
check_len:
    if (c->got > c->need) {
        conn_why(c, "%zu bytes past the end of the reply", c->got - c->need);
        return -LG_E_MISMATCH;
    }
    return c->got == c->need;
}

/*
 * Idle mode: the connection was admitted (its echo came back); it now stays open with only EPOLLIN
 * registered, so the loop sees a server that closes it. The line {"held":N} on stdout, once every slot
 * is held, tells a harness that it may measure the server now. Returns 2 (nothing more to drive).
 */
static int conn_hold(struct lg_conn *c)
{
    struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };

    c->st = ST_HOLD;
    if (c->ev != EPOLLIN && epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
        c->ev = EPOLLIN;
    if (c->w->next_open < c->w->nconn)
        conn_open(&c->w->conns[c->w->next_open++]);
    if (atomic_fetch_add(&g_held, 1) + 1 == g_opt.concurrency) {
        printf("{\"held\":%d}\n", g_opt.concurrency);
        fflush(stdout);
    }
    return 2;
}

/* A held connection woke up: a ticket (TLS 1.3 sends them after the handshake) is fine, data or a close is not. */
static int step_hold(struct lg_conn *c, uint32_t *ev)
{
    unsigned char b[256];
    int r, rc;

    ssl_prep();
    r = SSL_read(c->ssl, b, sizeof(b));
    if (r > 0) {
        conn_why(c, "%d unexpected bytes on a held connection", r);
        rc = -LG_E_MISMATCH;
    } else {
        rc = ssl_wait(c, r, ev);
    }
    if (rc < 0)
        atomic_fetch_sub(&g_held, 1); /* conn_fail counts it and opens a new one */
    return rc;
}

/* A reply was verified: counts it and moves the slot on. Returns 1 to keep driving, 2 when recycled. */
static int op_done(struct lg_conn *c)
{
    struct lg_worker *w = c->w;
    uint64_t now = now_ns();
    int reused;

    if (c->warmup) { /* it only fetched tickets: not a measured op */
        c->warmup = 0;
        conn_close(c, 1);
        return 2;
    }
    w->st.ok++;
    hist_add(&w->st.h, (now - c->t_start) / 1000);
    if (g_opt.mode == LG_RESUME) {
        reused = SSL_session_reused(c->ssl) == 1;
        w->st.resumed += (uint64_t)reused;
        w->st.not_resumed += (uint64_t)!reused;
    }
    if (g_opt.mode == LG_IDLE)
        return conn_hold(c);
    if (g_opt.mode == LG_KEEPALIVE) {
        if (op_claim() == 0) {
            req_start(c, now);
            return 1;
        }
        conn_close(c, 1);
        return 2;
    }
    conn_close(c, 1);
    conn_open(c);
    return 2;
}

static int step_read(struct lg_conn *c, uint32_t *ev)
{
    size_t room;
    unsigned char *dst;
    int r, rc;

    for (;;) {
        if (c->need != 0) { /* discard the body of an already framed HTTP reply */
            dst = c->rbuf;
            room = c->need - c->got < c->rcap ? c->need - c->got : c->rcap;
        } else {
            dst = c->rbuf + c->rlen;
            room = c->rcap - c->rlen;
        }
        ssl_prep();
        r = SSL_read(c->ssl, dst, (int)room);
        if (r <= 0)
            return ssl_wait(c, r, ev);
        rc = reply_take(c, (size_t)r);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return op_done(c);
    }
}

/*
 * Streams the pattern through an echo backend: keeps up to BULK_WINDOW bytes
 * in flight and verifies every byte read back against its stream offset.
 */
static int step_bulk(struct lg_conn *c, uint32_t *ev)
{
    uint32_t rev, wev;
    int r, rc, progress, rounds = 0;

    do {
        progress = 0;
        rev = wev = 0;
        ssl_prep();
        r = SSL_read(c->ssl, c->rbuf, (int)c->rcap);
        if (r > 0) {
            if ((uint64_t)r > c->bw - c->br) {
                conn_why(c, "echo returned more than was sent");
                return -LG_E_MISMATCH;
            }
            if (memcmp(c->rbuf, g_pat + c->br % PAT_PERIOD, (size_t)r) != 0) {
                conn_why(c, "echo differs near stream offset %" PRIu64, c->br);
                return -LG_E_MISMATCH;
            }
            c->br += (uint64_t)r;
            c->w->st.bytes += (uint64_t)r;
            c->deadline = now_ns() + TIMEOUT_NS;
            progress = 1;
        } else if ((rc = ssl_wait(c, r, &rev)) < 0) {
            return rc;
        }
        /* The pointer of a retried write stays the same because bw has not moved. */
        if (c->bw - c->br < BULK_WINDOW) {
            ssl_prep();
            r = SSL_write(c->ssl, g_pat + c->bw % PAT_PERIOD, BULK_CHUNK);
            if (r > 0) {
                c->bw += (uint64_t)r;
                progress = 1;
            } else if ((rc = ssl_wait(c, r, &wev)) < 0) {
                return rc;
            }
        }
    } while (progress && ++rounds < DRIVE_ROUNDS);
    /* Still flowing: yield to the other slots and the clock; a writable socket wakes us at once. */
    *ev = progress ? EPOLLIN | EPOLLOUT : rev | wev;
    return 0;
}

/* Advances c as far as it goes without blocking, then waits for what its TLS object wants. */
static void conn_drive(struct lg_conn *c)
{
    struct epoll_event e;
    uint32_t ev;
    int rc, rounds;

    for (rounds = 0;; rounds++) {
        ev = 0;
        switch (c->st) {
        case ST_CONNECTING:
            rc = sock_connected(c);
            ev = EPOLLOUT;
            break;
        case ST_HANDSHAKE: rc = step_handshake(c, &ev); break;
        case ST_WRITE: rc = step_write(c, &ev); break;
        case ST_READ: rc = step_read(c, &ev); break;
        case ST_BULK: rc = step_bulk(c, &ev); break;
        case ST_HOLD: rc = step_hold(c, &ev); break;
        default: return;
        }
        if (rc != 1)
            break;
        if (rounds == DRIVE_ROUNDS) { /* a fast keepalive peer must not starve the loop */
            rc = 0;
            ev = EPOLLIN | EPOLLOUT;
            break;
        }
    }
    if (rc < 0) {
        conn_fail(c, -rc);
    } else if (rc == 0 && ev != 0 && ev != c->ev) {
        e.events = ev;
        e.data.ptr = c;
        if (epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
            c->ev = ev;
    }
}

/* OpenSSL hands over every new session or ticket here (a server sends several per handshake). */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct lg_conn *c = SSL_get_app_data(ssl);

    if (c == NULL || c->magic != LG_CONN_MAGIC || !SSL_SESSION_is_resumable(sess))
        return 0;
    pool_push(c->w, sess);
    return 1; /* we now own the reference */
}

/* Notes fatal alerts so a failed read is reported as "alert", not a bare protocol error. */
static void on_info(const SSL *ssl, int where, int ret)
{
    struct lg_conn *c;

    /* SSL_CB_READ_ALERT shares its SSL_CB_ALERT bit with alerts we send: test both bits. */
    if ((where & SSL_CB_ALERT) == 0 || (where & SSL_CB_READ) == 0 || (ret & 0xff) == SSL_AD_CLOSE_NOTIFY)
        return;
    c = SSL_get_app_data(ssl);
    if (c != NULL && c->magic == LG_CONN_MAGIC)
        c->alert = ret;
}

/* Builds one thread's client context. Returns 0 and stores it in *out, or -1. */
static int ctx_new(SSL_CTX **out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int rc = -1, v;

    if (ctx == NULL)
        goto out;
    v = g_opt.tls == 13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx, v) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, g_opt.tls == 12 ? TLS1_2_VERSION : TLS1_3_VERSION) != 1)
        goto out;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, g_opt.ca, NULL) != 1) {
        fprintf(stderr, "loadgen: cannot load CA %s\n", g_opt.ca);
        goto out;
    }
    if (g_opt.cert != NULL &&
        (SSL_CTX_use_certificate_chain_file(ctx, g_opt.cert) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, g_opt.key, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(ctx) != 1)) {
        fprintf(stderr, "loadgen: cannot load client certificate %s / key %s\n", g_opt.cert, g_opt.key);
        goto out;
    }
    /* --cipher: a TLS 1.3 suite (TLS_...) or a TLS 1.2 cipher list; the client offers only that. */
    if (g_opt.cipher != NULL &&
        (strncmp(g_opt.cipher, "TLS_", 4) == 0 ? SSL_CTX_set_ciphersuites(ctx, g_opt.cipher)
                                                : SSL_CTX_set_cipher_list(ctx, g_opt.cipher)) != 1) {
        fprintf(stderr, "loadgen: OpenSSL does not know the cipher %s\n", g_opt.cipher);
        goto out;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (g_opt.mode == LG_RESUME) {
        /* External store only: the callback hands us each ticket, no cache lookups. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    SSL_CTX_set_info_callback(ctx, on_info);
    *out = ctx;
    ctx = NULL;
    rc = 0;
out:
    if (rc != 0)
        ERR_print_errors_fp(stderr);
    SSL_CTX_free(ctx);
    return rc;
}

/* Fires retries and timeouts. Returns how many slots are still busy. */
static int worker_scan(struct lg_worker *w, uint64_t now)
{
    struct lg_conn *c;
    int i, busy = 0;

    for (i = 0; i < w->nconn; i++) {
        c = &w->conns[i];
        if (c->st == ST_RETRY && now >= c->retry_at) {
            conn_open(c);
        } else if (c->st >= ST_CONNECTING && now >= c->deadline) {
            conn_why(c, "no progress for %.1f s", g_opt.timeout);
            conn_fail(c, LG_E_TIMEOUT);
        }
        busy += c->st != ST_IDLE;
    }
    return busy;
}

/*
 * Runs the loop until the run stops, or (priming) until every slot is idle.
 * Returns 0, or -1 when epoll itself fails.
 */
static int worker_loop(struct lg_worker *w, int priming)
{
    struct epoll_event evs[MAX_EVENTS];
    uint64_t now, last_scan = 0;
    struct lg_conn *c;
    int i, n;

    for (;;) {
        /* Paced starts are due at their slot: look every millisecond, not every ten. */
        n = epoll_wait(w->ep, evs, MAX_EVENTS, g_opt.rate > 0 ? 1 : 5);
        if (n < 0 && errno != EINTR) {
            perror("loadgen: epoll_wait");
            atomic_store(&g_stop, 1);
            return -1;
        }
        for (i = 0; i < n; i++) {
            c = evs[i].data.ptr;
            c->revents = evs[i].events;
            conn_drive(c);
        }
        now = now_ns();
        if (!priming && g_end_ns != 0 && now >= g_end_ns)
            atomic_store(&g_stop, 1);
        if (atomic_load(&g_stop))
            return 0;
        if (now - last_scan >= (g_opt.rate > 0 ? SCAN_NS / 10 : SCAN_NS)) {
            last_scan = now;
            if (worker_scan(w, now) == 0 &&
                (priming || (g_opt.count != 0 && atomic_load(&g_claimed) >= g_opt.count)))
                return 0; /* every slot idle and no more work to hand out */
        }
    }
}

static void *worker_main(void *arg)
{
    struct lg_worker *w = arg;
    const struct timespec ms = { 0, 1000000 };
    struct lg_conn *c;
    int i;

    /* Resume: every slot first makes one untimed full handshake to fill the ticket pool. */
    if (g_opt.mode == LG_RESUME) {
        for (i = 0; i < w->nconn; i++) {
            w->conns[i].warmup = 1;
            conn_open(&w->conns[i]);
        }
        w->rc = worker_loop(w, 1);
    }
    atomic_fetch_add(&g_ready, 1);
    while (!atomic_load(&g_go) && !atomic_load(&g_stop))
        nanosleep(&ms, NULL);
    w->next_open = g_opt.mode == LG_IDLE && w->nconn > IDLE_RAMP ? IDLE_RAMP : w->nconn;
    if (g_opt.rate > 0) {
        w->slot_gap = (uint64_t)(1e9 * g_opt.threads / g_opt.rate);
        w->next_slot = now_ns();
    }
    for (i = 0; i < w->next_open && w->rc == 0; i++)
        conn_open(&w->conns[i]);
    if (w->rc == 0)
        w->rc = worker_loop(w, 0);
    for (i = 0; i < w->nconn; i++) {
        c = &w->conns[i];
        /* A bulk stream that ran to the deadline without error is a success. */
        if (g_opt.mode == LG_BULK && c->st == ST_BULK && c->br > 0)
            w->st.ok++;
        conn_close(c, 0);
    }
    return NULL;
}

/*
 * Parses a numeric "IPv4:port" or "[IPv6]:port" (no DNS: the run targets
 * exactly the address given). Loopback only, unless --allow-remote.
 */
static int parse_addr(const char *s)
{
    struct sockaddr_in *a4 = (struct sockaddr_in *)&g_opt.addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&g_opt.addr;
    const char *colon = strrchr(s, ':');
    char host[64], *end;
    unsigned long port = colon != NULL ? strtoul(colon + 1, &end, 10) : 0;
    size_t hl = colon != NULL ? (size_t)(colon - s) : 0;
    int v6 = hl >= 2 && s[0] == '[' && s[hl - 1] == ']', loop = 0;

    if (port == 0 || port > 65535 || *end != '\0' || hl - 2 * v6 >= sizeof(host))
        goto bad;
    memcpy(host, s + v6, hl - 2 * v6);
    host[hl - 2 * v6] = '\0';
    if (!v6 && inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        g_opt.addrlen = sizeof(*a4);
        loop = ntohl(a4->sin_addr.s_addr) >> 24 == 127;
    } else if (v6 && inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        g_opt.addrlen = sizeof(*a6);
        loop = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
    } else {
        goto bad;
    }
    if (loop || g_opt.allow_remote)
        return 0;
    fprintf(stderr, "loadgen: %s is not loopback (--allow-remote if meant)\n", s);
    return -1;
bad:
    fprintf(stderr, "loadgen: --connect wants IPv4:PORT or [IPv6]:PORT, not '%s'\n", s);
    return -1;
}

/* Decodes \r \n \t \\ and \xHH so an HTTP request fits on a command line. */
static int unescape(const char *s, unsigned char **out, size_t *outlen)
{
    unsigned char *b = malloc(strlen(s) + 1);
    size_t n = 0;
    unsigned hx;
    int k;

    if (b == NULL)
        return -1;
    for (; *s != '\0'; s++) {
        if (*s != '\\' || s[1] == '\0') {
            b[n++] = (unsigned char)*s;
            continue;
        }
        switch (*++s) {
        case 'r': b[n++] = '\r'; break;
        case 'n': b[n++] = '\n'; break;
        case 't': b[n++] = '\t'; break;
        case 'x':
            for (hx = 0, k = 0; k < 2 && isxdigit((unsigned char)s[1]); k++, s++)
                hx = hx * 16 + (unsigned)(isdigit((unsigned char)s[1]) ? s[1] - '0' : (s[1] | 0x20) - 'a' + 10);
            b[n++] = (unsigned char)hx;
            break;
        default: b[n++] = (unsigned char)*s; break;
        }
    }
    *out = b;
    *outlen = n;
    return 0;
}

static int parse_num(const char *s, double lo, double hi, double *v)
{
    char *end;

    errno = 0;
    *v = strtod(s, &end);
    if (errno == 0 && end != s && *end == '\0' && *v >= lo && *v <= hi)
        return 0;
    fprintf(stderr, "loadgen: bad number '%s'\n", s);
    return -1;
}

static int parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        { "connect", 1, 0, 'c' }, { "ca", 1, 0, 'A' }, { "cert", 1, 0, 'C' }, { "key", 1, 0, 'K' },
        { "tls", 1, 0, 't' }, { "mode", 1, 0, 'm' }, { "concurrency", 1, 0, 'n' },
        { "threads", 1, 0, 'T' }, { "duration", 1, 0, 'd' }, { "count", 1, 0, 'N' },
        { "payload", 1, 0, 'p' }, { "echo-bytes", 1, 0, 'e' }, { "expect", 1, 0, 'x' },
        { "servername", 1, 0, 's' }, { "timeout", 1, 0, 'o' }, { "json", 0, 0, 'j' },
        { "allow-remote", 0, 0, 'R' }, { "cipher", 1, 0, 'P' }, { "bind", 1, 0, 'B' }, { "rate", 1, 0, 'r' },
        { 0, 0, 0, 0 }
    };
    const char *payload = NULL, *expect = NULL;
    double v = 0, conc = 0, echo = 0;
    int opt, bad = 0;
    size_t k;

    g_opt.threads = 1;
    g_opt.timeout = 10;
    while (!bad && (opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'c': g_opt.connect = optarg; break;
        case 'A': g_opt.ca = optarg; break;
        case 'C': g_opt.cert = optarg; break;
        case 'K': g_opt.key = optarg; break;
        case 's': g_opt.servername = optarg; break;
        case 'P': g_opt.cipher = optarg; break;
        case 'x': expect = optarg; break;
        case 'p': payload = optarg; break;
        case 'j': g_opt.json = 1; break;
        case 'R': g_opt.allow_remote = 1; break;
        case 'B':
            /* A loopback source (127.0.0.2, ...): a second client address on one machine. */
            g_opt.bind4.sin_family = AF_INET;
            bad = inet_pton(AF_INET, optarg, &g_opt.bind4.sin_addr) != 1 ||
                  ntohl(g_opt.bind4.sin_addr.s_addr) >> 24 != 127;
            break;
        case 't':
            g_opt.tls = strcmp(optarg, "1.2") == 0 ? 12 : strcmp(optarg, "1.3") == 0 ? 13 : -1;
            bad = g_opt.tls < 0;
            break;
        case 'm':
            for (k = 0; k < LG_MODE_MAX && strcmp(optarg, mode_names[k]) != 0; k++)
                ;
            g_opt.mode = (enum lg_mode)k;
            bad = k == LG_MODE_MAX;
            break;
        case 'n': bad = parse_num(optarg, 1, 18000, &conc); break;
        case 'T': bad = parse_num(optarg, 1, 64, &v); g_opt.threads = (int)v; break;
        case 'd': bad = parse_num(optarg, 0.001, 86400, &g_opt.duration); break;
        case 'N': bad = parse_num(optarg, 1, 1e12, &v); g_opt.count = (uint64_t)v; break;
        case 'o': bad = parse_num(optarg, 0.001, 3600, &g_opt.timeout); break;
        case 'e': bad = parse_num(optarg, 1, 1 << 20, &echo); break;
        case 'r': bad = parse_num(optarg, 0.1, 1e6, &g_opt.rate); break;
        default: bad = 1; break;
        }
    }
    if (!bad && expect != NULL)
        bad = unescape(expect, &g_opt.expect, &g_opt.expect_len);
    if (bad || optind != argc || g_opt.connect == NULL || g_opt.ca == NULL ||
        (g_opt.cert == NULL) != (g_opt.key == NULL) || (payload != NULL && echo != 0) ||
        (g_opt.expect != NULL && (g_opt.expect_len == 0 || g_opt.expect_len > REPLY_CAP / 2)) ||
        ((g_opt.mode == LG_BULK || g_opt.mode == LG_IDLE) && g_opt.count != 0) ||
        (g_opt.rate > 0 && g_opt.mode != LG_FULL && g_opt.mode != LG_RESUME)) {
        fprintf(stderr,
                "usage: loadgen --connect ADDR:PORT --ca ROOT.pem [--cert C --key K] [--tls 1.2|1.3]\n"
                "  [--mode full|resume|keepalive|bulk|idle] [--concurrency N] [--threads N]\n"
                "  [--duration S | --count N (not bulk)] [--payload STR | --echo-bytes N]\n"
                "  [--expect PREFIX] [--servername NAME] [--timeout S] [--json] [--allow-remote]\n"
                "  [--bind 127.x.y.z]   source address (loopback): another client address on this machine\n"
                "  [--cipher TLS_SUITE|TLS1.2-CIPHER-LIST]\n"
                "  [--rate R]   full and resume: start R connections a second in all (open loop, at most\n"
                "               --concurrency at once); latency counts from each start's scheduled time\n"
                "idle: each connection is admitted (one echo), then held until the end; {\"held\":N}\n"
                "  is printed once all N are held (measure the server then).\n"
                "Without --expect the reply must equal the payload (echo backend).\n"
                "Exit: 0 no errors, 1 errors or no success, 2 usage or setup failure.\n");
        return -1;
    }
    g_opt.concurrency = conc != 0 ? (int)conc : g_opt.mode == LG_BULK ? 1 : 32;
    if (g_opt.duration == 0 && g_opt.count == 0)
        g_opt.duration = 10;
    if (g_opt.threads > g_opt.concurrency)
        g_opt.threads = g_opt.concurrency;
    if (payload != NULL) {
        if (unescape(payload, &g_opt.payload, &g_opt.payload_len) != 0 || g_opt.payload_len == 0) {
            fprintf(stderr, "loadgen: empty --payload\n");
            return -1;
        }
    } else {
        /* Printable and newline-terminated, so line-oriented echo servers work too. */
        g_opt.payload_len = echo != 0 ? (size_t)echo : 64;
        g_opt.payload = malloc(g_opt.payload_len);
        if (g_opt.payload == NULL)
            return -1;
        for (k = 0; k < g_opt.payload_len; k++)
            g_opt.payload[k] = (unsigned char)('a' + k % 26);
        g_opt.payload[g_opt.payload_len - 1] = '\n';
    }
    return parse_addr(g_opt.connect);
}

static void report(const struct lg_stats *s, double elapsed)
{
    static const double pct[] = { 0.50, 0.90, 0.99, 0.999 };
    uint64_t errs = 0, p[4];
    double rate = (double)s->ok / elapsed, mbps = (double)s->bytes / elapsed / 1e6;
    double mean = s->h.n ? (double)s->h.sum / (double)s->h.n : 0;
    double rfrac = s->ok ? (double)s->resumed / (double)s->ok : 0;
    const char *tls = g_opt.tls == 12 ? "1.2" : g_opt.tls == 13 ? "1.3" : "any";
    const uint64_t *e = s->err;
    int i;

    for (i = 1; i < LG_E_MAX; i++)
        errs += e[i];
    for (i = 0; i < 4; i++)
        p[i] = hist_pct(&s->h, pct[i]);
    if (g_opt.json) {
        printf("{\"mode\":\"%s\",\"tls\":\"%s\",\"concurrency\":%d,\"threads\":%d,\"elapsed_s\":%.3f,"
               "\"successes\":%" PRIu64 ",\"rate_per_s\":%.1f,\"errors\":{\"total\":%" PRIu64 ","
               "\"connect\":%" PRIu64 ",\"handshake\":%" PRIu64 ",\"alert\":%" PRIu64 ",\"eof\":%" PRIu64 ","
               "\"mismatch\":%" PRIu64 ",\"timeout\":%" PRIu64 "},\"resumed\":%" PRIu64 ","
               "\"not_resumed\":%" PRIu64 ",\"resumed_fraction\":%.4f,\"latency_us\":{\"p50\":%" PRIu64 ","
               "\"p90\":%" PRIu64 ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"mean\":%.1f,\"max\":%" PRIu64 "},"
               "\"bytes\":%" PRIu64 ",\"mb_per_s\":%.2f,\"offered_per_s\":%.1f}\n",
               mode_names[g_opt.mode], tls, g_opt.concurrency, g_opt.threads, elapsed, s->ok, rate, errs,
               e[LG_E_CONNECT], e[LG_E_HANDSHAKE], e[LG_E_ALERT], e[LG_E_EOF], e[LG_E_MISMATCH],
               e[LG_E_TIMEOUT], s->resumed, s->not_resumed, rfrac, p[0], p[1], p[2], p[3], mean,
               s->h.max, s->bytes, mbps, g_opt.rate);
        return;
    }
    printf("mode %s, TLS %s, %d connections on %d thread(s), %.3f s\nsuccesses %" PRIu64 " (%.1f/s)\n"
           "errors %" PRIu64 ":", mode_names[g_opt.mode], tls, g_opt.concurrency, g_opt.threads,
           elapsed, s->ok, rate, errs);
    for (i = 1; i < LG_E_MAX; i++)
        printf(" %s %" PRIu64, err_names[i], e[i]);
    printf("\n");
    if (g_opt.mode == LG_RESUME)
        printf("resumed %" PRIu64 ", not_resumed %" PRIu64 " (%.2f %% resumed)\n", s->resumed,
               s->not_resumed, 100 * rfrac);
    if (s->h.n != 0)
        printf("latency us: p50 %" PRIu64 " p90 %" PRIu64 " p99 %" PRIu64 " p99.9 %" PRIu64
               " mean %.1f max %" PRIu64 "\n", p[0], p[1], p[2], p[3], mean, s->h.max);
    if (g_opt.mode == LG_BULK)
        printf("echoed and verified %" PRIu64 " bytes (%.2f MB/s)\n", s->bytes, mbps);
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_stop, 1);
}

/* Sets up one thread's connections, context and epoll set. Returns 0 or -1; worker_free undoes it. */
static int worker_init(struct lg_worker *w, int nconn, size_t cap)
{
    int j;

    w->nconn = nconn;
    w->conns = calloc((size_t)nconn, sizeof(*w->conns));
    w->pool_cap = 4 * nconn + 8; /* a resumed TLS 1.3 handshake usually brings two tickets */
    w->pool = calloc((size_t)w->pool_cap, sizeof(*w->pool));
    if (w->conns == NULL || w->pool == NULL || ctx_new(&w->ctx) != 0)
        return -1;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    if (w->ep < 0)
        return -1;
    for (j = 0; j < nconn; j++) {
        w->conns[j] = (struct lg_conn){ .magic = LG_CONN_MAGIC, .w = w, .fd = -1, .rcap = cap };
        w->conns[j].rbuf = malloc(cap + 1); /* +1: NUL for header parsing */
        if (w->conns[j].rbuf == NULL)
            return -1;
    }
    return 0;
}

static void worker_free(struct lg_worker *w)
{
    int j;

    for (j = 0; w->conns != NULL && j < w->nconn; j++)
        free(w->conns[j].rbuf);
    for (j = 0; w->pool != NULL && j < w->pool_cap; j++)
        SSL_SESSION_free(w->pool[j]);
    free(w->conns);
    free(w->pool);
    SSL_CTX_free(w->ctx);
    if (w->ep >= 0)
        close(w->ep);
    *w = (struct lg_worker){ .ep = -1 };
}

int main(int argc, char **argv)
{
    const struct timespec ms = { 0, 1000000 };
    struct lg_worker *ws = NULL;
    struct lg_stats total;
    struct rlimit rl;
    uint64_t t0, t1;
    int i, j, started = 0, rc = 2;
    size_t cap;

    if (parse_args(argc, argv) != 0)
        goto out;
    signal(SIGPIPE, SIG_IGN); /* a server closing mid-write must give EPIPE, not kill us */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)g_opt.concurrency + 64) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    g_pat = malloc(PAT_PERIOD + BULK_CHUNK);
    ws = calloc((size_t)g_opt.threads, sizeof(*ws));
    if (g_pat == NULL || ws == NULL)
        goto out;
    for (i = 0; i < PAT_PERIOD + BULK_CHUNK; i++)
        g_pat[i] = (unsigned char)(i % PAT_PERIOD);
    for (i = 0; i < g_opt.threads; i++)
        ws[i].ep = -1; /* so cleanup never closes fd 0 for a worker not yet set up */
    cap = g_opt.mode == LG_BULK ? BULK_CHUNK : g_opt.expect != NULL ? REPLY_CAP : g_opt.payload_len;
    for (i = 0; i < g_opt.threads; i++)
        if (worker_init(&ws[i], g_opt.concurrency / g_opt.threads + (i < g_opt.concurrency % g_opt.threads),
                        cap) != 0)
            goto out;
    for (; started < g_opt.threads; started++)
        if (pthread_create(&ws[started].th, NULL, worker_main, &ws[started]) != 0) {
            atomic_store(&g_stop, 1);
            break;
        }
    /* The clock starts once every thread is primed, so priming never dilutes the rate. */
    while (atomic_load(&g_ready) < started && !atomic_load(&g_stop))
        nanosleep(&ms, NULL);
    t0 = now_ns();
    g_end_ns = g_opt.duration > 0 ? t0 + (uint64_t)(g_opt.duration * 1e9) : 0;
    atomic_store(&g_go, 1);
    for (i = 0; i < started; i++)
        pthread_join(ws[i].th, NULL);
    t1 = now_ns();
    if (started != g_opt.threads)
        goto out;
    memset(&total, 0, sizeof(total));
    for (i = 0; i < g_opt.threads; i++) {
        stats_merge(&total, &ws[i].st);
        for (j = 1; j < LG_E_MAX; j++)
            if (ws[i].first_err[j][0] != '\0')
                fprintf(stderr, "loadgen: thread %d, first %s error: %s\n", i, err_names[j], ws[i].first_err[j]);
        if (ws[i].rc != 0)
            goto out;
    }
    report(&total, (double)(t1 - t0) / 1e9);
    rc = total.ok == 0 ? 1 : 0;
    for (j = 1; j < LG_E_MAX; j++)
        rc = total.err[j] != 0 ? 1 : rc;
out:
    for (i = 0; ws != NULL && i < g_opt.threads; i++)
        worker_free(&ws[i]);
    free(ws);
    free(g_pat);
    free(g_opt.payload);
    free(g_opt.expect);
    return rc;
}
