/* health.c - active health checks: one thread for the whole process, one probe per backend of
 * every listener that has a health_check, all probes non-blocking on the thread's own epoll loop
 * (a backend that blackholes its probe costs its timeout, not everyone else's interval).
 *
 *   tcp   the connect completes within timeout.
 *   http  connect, send "GET path HTTP/1.1" with Host, Connection: close and User-Agent, and read
 *         the status line within timeout; 2xx and 3xx are healthy (RFC 9110 15.3, 15.4).
 *
 * rise consecutive successes mark a down backend up, fall consecutive failures an up backend down;
 * the change is logged and stored in the pool's atomics that the workers read (pool.h). Connections
 * already open to a backend marked down are left alone: if the backend really died they end on
 * their own (reset or EOF); if only its probe failed, cutting them would do harm for nothing.
 *
 * The thread works on the generation the main thread last handed it (gw_health_publish) and holds
 * a reference to it; the hand-over goes through a mutex, so the thread never dereferences a
 * generation pointer the main thread may be freeing.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/log.h"
#include "gateway/pool.h"
#include "gateway/server.h"

/* How long the thread sleeps at most without anything due: bounds the delay of nothing, since the
 * eventfd wakes it for a new generation and for stop; it only keeps the loop honest. */
#define HEALTH_MAX_SLEEP_MS 1000
/* A status line longer than this is not one ("HTTP/1.1 200 OK\r\n" is 17 bytes). */
#define HEALTH_STATUS_MAX 256

enum probe_phase { PROBE_IDLE = 0, PROBE_CONNECTING, PROBE_SENDING, PROBE_READING };

struct probe {
    struct gw_pool *pool;
    size_t idx;
    const struct gw_listener_cfg *lc;
    const struct gw_backend_cfg *b;
    enum probe_phase phase;
    int fd;
    uint64_t due_ms, deadline_ms;
    char *req;                         /* HTTP: the request, built once */
    size_t req_len, req_off;
    char resp[HEALTH_STATUS_MAX];
    size_t resp_len;
    unsigned ok_run, fail_run;
};

struct gw_health {
    pthread_t thread;
    int epfd, evfd;
    pthread_mutex_t lock;              /* pending, stop */
    struct gw_gen *pending;            /* handed over by the main thread, not yet taken */
    int stop;
    /* the thread's own */
    struct gw_gen *gen;
    struct probe *probes;
    size_t nprobes;
};

/* strerror, with the first letter lower-cased: it goes in the middle of a sentence. */
static void errno_text(int err, char *buf, size_t len)
{
    snprintf(buf, len, "%s", strerror(err));
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
        buf[0] = (char)(buf[0] - 'A' + 'a');
}

static void probe_close(struct probe *pr)
{
    if (pr->fd >= 0)
        close(pr->fd); /* closing removes it from epoll */
    pr->fd = -1;
    pr->phase = PROBE_IDLE;
    pr->req_off = 0;
    pr->resp_len = 0;
}

/* The outcome of one probe: counts it, and flips the backend's state after rise/fall in a row. */
static void probe_done(struct probe *pr, uint64_t now, int ok, const char *why)
{
    probe_close(pr);
    const struct gw_health_cfg *hc = &pr->lc->health;
    pr->due_ms = pr->due_ms + hc->interval_ms > now ? pr->due_ms + hc->interval_ms : now;
    unsigned rise = hc->rise ? hc->rise : 1, fall = hc->fall ? hc->fall : 1;
    int up = gw_pool_is_up(pr->pool, pr->idx);
    if (ok) {
        pr->fail_run = 0;
        if (pr->ok_run < rise)
            pr->ok_run++;
        if (!up && pr->ok_run >= rise) {
            (void)gw_pool_set_up(pr->pool, pr->idx, 1);
            gw_log(LOG_WARNING, "backend %s of listener %s is UP (%u success%s)", pr->b->addr.text,
                   pr->lc->name, pr->ok_run, pr->ok_run == 1 ? "" : "es");
        }
        return;
    }
    pr->ok_run = 0;
    if (pr->fail_run < fall)
        pr->fail_run++;
    gw_log(LOG_DEBUG, "health check of backend %s of listener %s failed: %s", pr->b->addr.text, pr->lc->name,
           why);
    if (up && pr->fail_run >= fall) {
        (void)gw_pool_set_up(pr->pool, pr->idx, 0);
        gw_log(LOG_WARNING, "backend %s of listener %s is DOWN (%u failure%s: %s)", pr->b->addr.text,
               pr->lc->name, pr->fail_run, pr->fail_run == 1 ? "" : "s", why);
    }
}

static int probe_watch(struct gw_health *h, struct probe *pr, uint32_t events, int op)
{
    struct epoll_event ev = { .events = events, .data.ptr = pr };
    return epoll_ctl(h->epfd, op, pr->fd, &ev);
}

static void probe_start(struct gw_health *h, struct probe *pr, uint64_t now)
{
    char why[96];
    pr->deadline_ms = now + pr->lc->health.timeout_ms;
    pr->fd = socket(pr->b->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (pr->fd < 0) {
        errno_text(errno, why, sizeof(why));
        probe_done(pr, now, 0, why);
        return;
    }
    int one = 1;
    (void)setsockopt(pr->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(pr->fd, (const struct sockaddr *)&pr->b->addr.ss, pr->b->addr.len) != 0 && errno != EINPROGRESS) {
        errno_text(errno, why, sizeof(why));
        probe_done(pr, now, 0, why);
        return;
    }
    pr->phase = PROBE_CONNECTING;
    if (probe_watch(h, pr, EPOLLOUT, EPOLL_CTL_ADD) != 0) {
        errno_text(errno, why, sizeof(why));
        probe_done(pr, now, 0, why);
    }
}

/* "HTTP/1.1 204 No Content": healthy for 2xx and 3xx. why gets the verdict's reason. */
static int status_ok(const char *line, size_t len, char *why, size_t wlen)
{
    if (len < 12 || memcmp(line, "HTTP/", 5) != 0) {
        snprintf(why, wlen, "not an HTTP status line");
        return 0;
    }
    const char *sp = memchr(line, ' ', len);
    if (sp == NULL || (size_t)(line + len - sp) < 4 || sp[1] < '1' || sp[1] > '5' || sp[2] < '0' || sp[2] > '9' ||
        sp[3] < '0' || sp[3] > '9') {
        snprintf(why, wlen, "not an HTTP status line");
        return 0;
    }
    int status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
    if (status >= 200 && status < 400)
        return 1;
    snprintf(why, wlen, "HTTP status %d", status);
    return 0;
}

static void probe_step(struct gw_health *h, struct probe *pr, uint64_t now)
{
    char why[96];
    if (pr->phase == PROBE_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(pr->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            errno_text(err, why, sizeof(why));
            probe_done(pr, now, 0, why);
            return;
        }
        if (pr->lc->health.type == GW_HEALTH_TCP) {
            probe_done(pr, now, 1, NULL);
            return;
        }
        pr->phase = PROBE_SENDING;
    }
    if (pr->phase == PROBE_SENDING) {
        while (pr->req_off < pr->req_len) {
            ssize_t n = send(pr->fd, pr->req + pr->req_off, pr->req_len - pr->req_off, MSG_NOSIGNAL);
            if (n > 0) {
                pr->req_off += (size_t)n;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return; /* still watched for EPOLLOUT */
            errno_text(n < 0 ? errno : EPIPE, why, sizeof(why));
            probe_done(pr, now, 0, why);
            return;
        }
        pr->phase = PROBE_READING;
        if (probe_watch(h, pr, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD) != 0) {
            errno_text(errno, why, sizeof(why));
            probe_done(pr, now, 0, why);
        }
        return;
    }
    if (pr->phase == PROBE_READING) {
        for (;;) {
            ssize_t n = recv(pr->fd, pr->resp + pr->resp_len, sizeof(pr->resp) - 1 - pr->resp_len, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            if (n < 0) {
                errno_text(errno, why, sizeof(why));
                probe_done(pr, now, 0, why);
                return;
            }
            if (n == 0) {
                probe_done(pr, now, 0, "connection closed before the status line");
                return;
            }
            pr->resp_len += (size_t)n;
            const char *eol = memchr(pr->resp, '\n', pr->resp_len);
            if (eol != NULL) {
                int ok = status_ok(pr->resp, (size_t)(eol - pr->resp), why, sizeof(why));
                probe_done(pr, now, ok, why);
                return;
            }
            if (pr->resp_len >= sizeof(pr->resp) - 1) {
                probe_done(pr, now, 0, "status line too long");
                return;
            }
        }
    }
}

static void probes_clear(struct gw_health *h)
{
    for (size_t i = 0; i < h->nprobes; i++) {
        probe_close(&h->probes[i]);
        free(h->probes[i].req);
    }
    free(h->probes);
    h->probes = NULL;
    h->nprobes = 0;
}

/* The request of an HTTP probe (RFC 9112 3.2: Host is required in HTTP/1.1). */
static int http_request(struct probe *pr)
{
    const char *path = pr->lc->health.path ? pr->lc->health.path : "/";
    size_t cap = strlen(path) + strlen(pr->b->addr.text) + 128; /* the fixed text is 72 bytes */
    pr->req = malloc(cap);
    if (pr->req == NULL)
        return -1;
    int len = snprintf(pr->req, cap, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: hsmgate-health\r\n\r\n",
                       path, pr->b->addr.text);
    if (len < 0 || (size_t)len >= cap) {
        free(pr->req);
        pr->req = NULL;
        return -1;
    }
    pr->req_len = (size_t)len;
    return 0;
}

/* Builds the probes of generation g (every backend of every listener with a health_check); all
 * due at once, so a reload learns the state of new backends quickly. */
static void probes_build(struct gw_health *h, struct gw_gen *g, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < g->nlisteners; i++)
        if (g->listeners[i].cfg->health.type != GW_HEALTH_NONE && g->listeners[i].pool != NULL)
            n += gw_pool_size(g->listeners[i].pool);
    if (n == 0)
        return;
    h->probes = calloc(n, sizeof(*h->probes));
    if (h->probes == NULL) {
        gw_log(LOG_ERR, "health checks: out of memory; backends keep their current state");
        return;
    }
    for (size_t i = 0; i < g->nlisteners; i++) {
        struct gw_listener *l = &g->listeners[i];
        if (l->cfg->health.type == GW_HEALTH_NONE || l->pool == NULL)
            continue;
        for (size_t k = 0; k < gw_pool_size(l->pool); k++) {
            struct probe *pr = &h->probes[h->nprobes++];
            pr->pool = l->pool;
            pr->idx = k;
            pr->lc = l->cfg;
            pr->b = gw_pool_backend(l->pool, k);
            pr->fd = -1;
            pr->due_ms = now;
            /* The runs start at zero: a backend inherited as down needs rise successes to come
             * up, one inherited as up fall failures to go down. */
            if (l->cfg->health.type == GW_HEALTH_HTTP && http_request(pr) != 0) {
                gw_log(LOG_ERR, "health checks: out of memory; backend %s of listener %s is not checked",
                       pr->b->addr.text, l->cfg->name);
                memset(pr, 0, sizeof(*pr));
                h->nprobes--;
            }
        }
    }
    gw_log(LOG_DEBUG, "health checks: %zu backend(s) of generation %llu", h->nprobes, (unsigned long long)g->id);
}

/* Takes the generation the main thread handed over, if any. Returns 1 when asked to stop. */
static int take_over(struct gw_health *h, uint64_t now)
{
    pthread_mutex_lock(&h->lock);
    int stop = h->stop;
    struct gw_gen *g = h->pending;
    h->pending = NULL;
    pthread_mutex_unlock(&h->lock);
    if (g != NULL) {
        probes_clear(h);
        gw_gen_unref(h->gen);
        h->gen = g; /* the reference gw_health_publish took */
        probes_build(h, g, now);
    }
    return stop;
}

static int next_timeout(const struct gw_health *h, uint64_t now)
{
    uint64_t next = now + HEALTH_MAX_SLEEP_MS;
    for (size_t i = 0; i < h->nprobes; i++) {
        const struct probe *pr = &h->probes[i];
        uint64_t t = pr->phase == PROBE_IDLE ? pr->due_ms : pr->deadline_ms;
        if (t < next)
            next = t;
    }
    return next > now ? (int)(next - now) : 0;
}

static void *health_main(void *arg)
{
    struct gw_health *h = arg;
    struct epoll_event evs[64];
    for (;;) {
        uint64_t now = gw_now_ms();
        if (take_over(h, now))
            break;
        for (size_t i = 0; i < h->nprobes; i++) {
            struct probe *pr = &h->probes[i];
            if (pr->phase == PROBE_IDLE && pr->due_ms <= now)
                probe_start(h, pr, now);
            else if (pr->phase != PROBE_IDLE && pr->deadline_ms <= now)
                probe_done(pr, now, 0, "timeout");
        }
        int n = epoll_wait(h->epfd, evs, 64, next_timeout(h, now));
        now = gw_now_ms();
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                uint64_t v;
                while (read(h->evfd, &v, sizeof(v)) < 0 && errno == EINTR) {
                }
                continue;
            }
            struct probe *pr = evs[i].data.ptr;
            if (pr->phase != PROBE_IDLE)
                probe_step(h, pr, now);
        }
    }
    probes_clear(h);
    gw_gen_unref(h->gen);
    h->gen = NULL;
    return NULL;
}

static void health_free(struct gw_health *h)
{
    if (h->epfd >= 0)
        close(h->epfd);
    if (h->evfd >= 0)
        close(h->evfd);
    gw_gen_unref(h->pending);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

int gw_health_start(struct gw_health **out)
{
    *out = NULL;
    struct gw_health *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        gw_log(LOG_ERR, "health checks: out of memory");
        return -1;
    }
    h->epfd = h->evfd = -1;
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h);
        gw_log(LOG_ERR, "health checks: cannot create a mutex");
        return -1;
    }
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    h->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (h->epfd < 0 || h->evfd < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->evfd, &ev) != 0) {
        gw_log(LOG_ERR, "health checks: %s", strerror(errno));
        health_free(h);
        return -1;
    }
    int rc = pthread_create(&h->thread, NULL, health_main, h);
    if (rc != 0) {
        gw_log(LOG_ERR, "health checks: cannot start the thread: %s", strerror(rc));
        health_free(h);
        return -1;
    }
    *out = h;
    return 0;
}

static void wake(struct gw_health *h)
{
    uint64_t one = 1;
    if (write(h->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        gw_log(LOG_ERR, "health checks: cannot wake the thread: %s", strerror(errno));
}

void gw_health_publish(struct gw_health *h, struct gw_gen *g)
{
    if (h == NULL)
        return;
    struct gw_gen *ref = gw_gen_ref(g);
    pthread_mutex_lock(&h->lock);
    struct gw_gen *old = h->pending;
    h->pending = ref;
    pthread_mutex_unlock(&h->lock);
    gw_gen_unref(old); /* handed over but never taken: a newer one replaces it */
    wake(h);
}

void gw_health_stop(struct gw_health *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    h->stop = 1;
    pthread_mutex_unlock(&h->lock);
    wake(h);
    pthread_join(h->thread, NULL);
    health_free(h);
}
