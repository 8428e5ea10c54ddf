/* worker.c - one worker thread: an epoll loop over its listening sockets, its connections and a
 * control eventfd. Level-triggered; timeouts are swept every 250 ms (a scan of this worker's
 * connections: cheap next to the handshakes they cost). */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gateway/addrlim.h"
#include "gateway/log.h"
#include "gateway/server.h"
#include "gateway/tls.h"
#include "pkcs11/hsm.h"

#define SWEEP_MS 250
/* Decisions also depend on the time (a certificate or an allowlist entry expires, a CRL goes past
 * its nextUpdate): live connections are decided on again this often even when the store is quiet. */
#define POLICY_TIME_RECHECK_MS 10000
#define ACCEPT_BATCH 64

uint64_t gw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void listeners_unregister(struct gw_worker *w)
{
    for (size_t i = 0; i < w->nltags; i++)
        (void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->ltags[i].fd, NULL);
    w->accepting = 0;
}

static int listeners_register(struct gw_worker *w)
{
    for (size_t i = 0; i < w->nltags; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &w->ltags[i].tag };
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->ltags[i].fd, &ev) != 0 && errno != EEXIST) {
            gw_log(LOG_ERR, "worker %u: cannot watch listener %s: %s", w->index,
                   w->ltags[i].l->cfg->name, strerror(errno));
            return -1;
        }
    }
    w->accepting = 1;
    return 0;
}

/* Moves this worker onto generation g: its listening sockets replace the old ones. */
static void switch_gen(struct gw_worker *w, struct gw_gen *g)
{
    listeners_unregister(w);
    struct gw_ltag *tags = calloc(g->nlisteners ? g->nlisteners : 1, sizeof(*tags));
    if (tags == NULL) {
        gw_log(LOG_ERR, "worker %u: out of memory switching configuration; keeping the old one", w->index);
        (void)listeners_register(w);
        return;
    }
    for (size_t i = 0; i < g->nlisteners; i++) {
        tags[i].tag.kind = GW_TAG_LISTEN;
        tags[i].l = &g->listeners[i];
        tags[i].fd = g->listeners[i].fds[w->index];
    }
    free(w->ltags);
    w->ltags = tags;
    w->nltags = g->nlisteners;
    struct gw_gen *old = w->gen;
    w->gen = gw_gen_ref(g);
    gw_gen_unref(old);
    (void)listeners_register(w);
}

static void control(struct gw_worker *w)
{
    uint64_t v;
    while (read(w->evfd, &v, sizeof(v)) < 0 && errno == EINTR) {
    }
    struct gw_server *srv = w->srv;
    if (atomic_load(&srv->state) == GW_RUNNING) {
        struct gw_gen *g = atomic_load(&srv->gen);
        if (g != w->gen) {
            switch_gen(w, g);
            /* The new configuration's policies judge the connections already open too. */
            unsigned closed = gw_conn_policy_recheck(w);
            if (closed > 0)
                gw_log(LOG_INFO, "worker %u: reload: closed %u live connection(s) the new policies refuse", w->index,
                       closed);
        }
    } else {
        listeners_unregister(w);
    }
    atomic_fetch_add(&srv->acks, 1);
}

/* The policy thread published a snapshot: decide again on every live connection with it. */
static void policy_turn(struct gw_worker *w)
{
    struct gw_server *srv = w->srv;
    uint64_t gen = pol_live_generation(srv->live);
    if (gen == w->pol_gen) {
        if (w->now_ms - w->pol_checked_ms >= POLICY_TIME_RECHECK_MS) {
            w->pol_checked_ms = w->now_ms;
            (void)gw_conn_policy_recheck(w);
        }
        return;
    }
    unsigned closed = gw_conn_policy_recheck(w);
    w->pol_gen = gen;
    w->pol_checked_ms = w->now_ms;
    atomic_store(&w->pol_closed, closed);
    atomic_store(&w->pol_seen, gen);
}

static void policy_wake(struct gw_worker *w)
{
    uint64_t v;
    while (read(w->pol_evfd, &v, sizeof(v)) < 0 && errno == EINTR) {
    }
}

/* The admin API marked connections to close (conn_reg.h). */
static void admin_wake(struct gw_worker *w)
{
    uint64_t v;
    while (read(w->adm_evfd, &v, sizeof(v)) < 0 && errno == EINTR) {
    }
    gw_conn_reg_turn(w);
}

static void accept_some(struct gw_worker *w, struct gw_ltag *lt)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lt->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop watching the listeners until the next sweep, or this
                 * level-triggered loop would spin on a connection it cannot take. */
                gw_log(LOG_ERR, "worker %u: accept on %s: %s; pausing accepts", w->index, lt->l->cfg->name,
                       strerror(errno));
                listeners_unregister(w);
            }
            return;
        }
        gw_conn_accept(w, lt->l, fd, &ss, sl);
    }
}

void *gw_worker_main(void *arg)
{
    struct gw_worker *w = arg;
    struct gw_server *srv = w->srv;
    gw_tls_thread_register();
    if (srv->hsm != NULL) {
        int rc = hsm_thread_attach(srv->hsm, w->index + 1, 1);
        if (rc != 0)
            gw_log(LOG_WARNING, "worker %u: HSM sessions not opened yet (%s); retried at the first handshake",
                   w->index, hsm_strerror(rc));
    }
    w->now_ms = gw_now_ms();
    /* A reader of the policy snapshots: it passes a quiescent point at the end of every loop turn
     * (epoll_wait returns at least every SWEEP_MS, so no snapshot waits long to be freed). */
    if (pol_reader_register(srv->live, w->index) != 0)
        gw_log(LOG_ERR, "worker %u: cannot read policy snapshots: every client certificate is refused", w->index);
    w->pol_gen = pol_live_generation(srv->live);
    atomic_store(&w->pol_seen, w->pol_gen);
    switch_gen(w, atomic_load(&srv->gen));
    atomic_store(&w->beat_ms, w->now_ms);
    atomic_fetch_add(&srv->started, 1);     /* the main thread waits for all before it switches users */
    uint64_t last_sweep = w->now_ms;
    struct epoll_event evs[128];
    for (;;) {
        int n = epoll_wait(w->epfd, evs, 128, SWEEP_MS);
        w->now_ms = gw_now_ms();
        atomic_store_explicit(&w->beat_ms, w->now_ms, memory_order_relaxed);
        for (int i = 0; i < n; i++) {
            struct gw_tag *tag = evs[i].data.ptr;
            switch (tag->kind) {
            case GW_TAG_LISTEN:
                if (w->accepting)
                    accept_some(w, (struct gw_ltag *)tag);
                break;
            case GW_TAG_CLIENT:
            case GW_TAG_BACKEND:
                gw_conn_on_event(w, tag, evs[i].events);
                break;
            case GW_TAG_CONTROL:
                control(w);
                break;
            case GW_TAG_POLICY:
                policy_wake(w);
                break;
            case GW_TAG_ADMIN:
                admin_wake(w);
                break;
            }
        }
        policy_turn(w);
        int state = atomic_load(&srv->state);
        if (w->now_ms - last_sweep >= SWEEP_MS) {
            last_sweep = w->now_ms;
            gw_conn_sweep(w, state == GW_STOPPING);
            /* Worker 0 forgets the addresses whose rate bucket has filled up again (addrlim.h). */
            if (w->index == 0 && srv->addrlim != NULL && w->now_ms - w->addrlim_swept_ms >= 1000) {
                w->addrlim_swept_ms = w->now_ms;
                gw_addrlim_sweep(srv->addrlim, atomic_load(&srv->max_rate_per_addr), w->now_ms);
            }
            gw_conn_reg_refresh(w);
            if (!w->accepting && state == GW_RUNNING)
                (void)listeners_register(w);
        }
        gw_conn_reap(w);
        pol_quiescent(srv->live, w->index);
        if (state == GW_STOPPING || (state == GW_DRAINING && w->nconns == 0)) {
            gw_conn_sweep(w, 1);
            gw_conn_reap(w);
            break;
        }
    }
    pol_reader_unregister(srv->live, w->index);
    listeners_unregister(w);
    free(w->ltags);
    w->ltags = NULL;
    free(w->scratch[0]);
    free(w->scratch[1]);
    w->scratch[0] = w->scratch[1] = NULL;
    w->nltags = 0;
    gw_gen_unref(w->gen);
    w->gen = NULL;
    if (srv->hsm != NULL)
        hsm_thread_detach(srv->hsm);
    return NULL;
}
