/* server.c - the gateway's life cycle on the main thread: load a configuration, resolve keys in the
 * HSM, build a generation, bind, start workers, then wait for signals: SIGHUP reloads (a broken new
 * configuration leaves the running one in force), SIGTERM/SIGINT drain. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gateway/addrlim.h"
#include "gateway/log.h"
#include "gateway/pool.h"
#include "gateway/server.h"
#include "gateway/service.h"
#include "pkcs11/hsm.h"

struct gw_gen *gw_gen_ref(struct gw_gen *g)
{
    if (g != NULL)
        atomic_fetch_add(&g->refs, 1);
    return g;
}

static void gen_free(struct gw_gen *g)
{
    for (size_t i = 0; i < g->nlisteners; i++) {
        gw_tls_ctx_free(g->listeners[i].tls_ctx);
        gw_admit_free(g->listeners[i].admit);
        g->listeners[i].admit = NULL;
        gw_pool_free(g->listeners[i].pool);
        g->listeners[i].pool = NULL;
    }
    free(g->listeners);
    gw_config_free(g->cfg);
    free(g);
}

void gw_gen_unref(struct gw_gen *g)
{
    if (g != NULL && atomic_fetch_sub(&g->refs, 1) == 1)
        gen_free(g);
}

static void hsm_logger(int level, const char *msg)
{
    gw_log(level, "hsm: %s", msg);
}

static struct gw_listener_stats *stats_for(struct gw_server *srv, const char *name)
{
    for (size_t i = 0; i < srv->nstats; i++)
        if (strcmp(srv->stats[i]->name, name) == 0)
            return srv->stats[i];
    struct gw_listener_stats **grown = realloc(srv->stats, (srv->nstats + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    srv->stats = grown;
    struct gw_listener_stats *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    snprintf(st->name, sizeof(st->name), "%s", name);
    srv->stats[srv->nstats++] = st;
    return st;
}

/* One SO_REUSEPORT socket per worker, so the kernel spreads connections over workers. */
static int open_socket_set(struct gw_server *srv, const struct gw_listener_cfg *l, struct gw_socket_set *set,
                           const char *path, char *err, size_t errlen)
{
    set->fds = malloc(srv->nworkers * sizeof(int));
    if (set->fds == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (unsigned i = 0; i < srv->nworkers; i++)
        set->fds[i] = -1;
    snprintf(set->bind, sizeof(set->bind), "%s", l->bind.text);
    for (unsigned i = 0; i < srv->nworkers; i++) {
        int fd = socket(l->bind.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
            bind(fd, (const struct sockaddr *)&l->bind.ss, l->bind.len) != 0 || listen(fd, 1024) != 0) {
            snprintf(err, errlen, "%s:%d: listener \"%s\": cannot listen on %s: %s", path, l->bind_line, l->name,
                     l->bind.text, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        set->fds[i] = fd;
    }
    return 0;
}

static void close_socket_set(struct gw_socket_set *set, unsigned n)
{
    if (set->fds != NULL)
        for (unsigned i = 0; i < n; i++)
            if (set->fds[i] >= 0)
                close(set->fds[i]);
    free(set->fds);
    set->fds = NULL;
}

static struct gw_socket_set *socket_set_for(struct gw_server *srv, const struct gw_listener_cfg *l,
                                            const char *path, char *err, size_t errlen)
{
    for (size_t i = 0; i < srv->nsocks; i++) {
        if (strcmp(srv->socks[i].bind, l->bind.text) == 0) {
            srv->socks[i].used = 1;
            return &srv->socks[i];
        }
    }
    struct gw_socket_set *grown = realloc(srv->socks, (srv->nsocks + 1) * sizeof(*grown));
    if (grown == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->socks = grown;
    struct gw_socket_set *set = &srv->socks[srv->nsocks];
    memset(set, 0, sizeof(*set));
    if (open_socket_set(srv, l, set, path, err, errlen) != 0) {
        close_socket_set(set, srv->nworkers);
        return NULL;
    }
    set->used = 1;
    srv->nsocks++;
    return set;
}

/* Closes the socket sets no listener of the current generation uses. */
static void sweep_sockets(struct gw_server *srv)
{
    size_t j = 0;
    for (size_t i = 0; i < srv->nsocks; i++) {
        if (srv->socks[i].used) {
            srv->socks[j++] = srv->socks[i];
        } else {
            gw_log(LOG_INFO, "closing listening sockets on %s", srv->socks[i].bind);
            close_socket_set(&srv->socks[i], srv->nworkers);
        }
    }
    srv->nsocks = j;
}

/* The pool of the running generation's listener of that name, whose health state a reload keeps. */
static const struct gw_pool *running_pool(struct gw_server *srv, const char *name)
{
    struct gw_gen *cur = atomic_load(&srv->gen); /* the main thread's own reference */
    for (size_t i = 0; cur != NULL && i < cur->nlisteners; i++)
        if (strcmp(cur->listeners[i].cfg->name, name) == 0)
            return cur->listeners[i].pool;
    return NULL;
}

static int needs_hsm(const struct gw_config *cfg)
{
    /* The admin API's certificate authority signs with the root's key in the HSM. */
    if (cfg->admin.enabled && cfg->admin.ca_key != NULL)
        return 1;
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (strncmp(cfg->listeners[i].key, "pkcs11:", 7) == 0)
            return 1;
    return 0;
}

/* Builds TLS contexts (and with bind_sockets, listening sockets) for every listener of cfg.
 * Takes ownership of cfg. */
static int gen_build(struct gw_server *srv, struct gw_config *cfg, int bind_sockets, struct gw_gen **out,
                     char *err, size_t errlen)
{
    struct gw_gen *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        gw_config_free(cfg);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    atomic_init(&g->refs, 1);
    g->cfg = cfg;
    if (bind_sockets && gw_admin_front_fill(srv, cfg, err, errlen) != 0)
        goto fail;
    g->id = ++srv->next_gen_id;
    g->listeners = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*g->listeners));
    if (g->listeners == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < srv->nsocks; i++)
        srv->socks[i].used = 0;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct gw_listener_cfg *lc = &cfg->listeners[i];
        struct gw_listener *l = &g->listeners[i];
        g->nlisteners = i + 1;
        l->cfg = lc;
        if (gw_admit_new(cfg, lc, &l->admit, err, errlen) != 0)
            goto fail;
        if (gw_tls_ctx_new(cfg, lc, l->admit, srv->hsm, &l->tls_ctx, &l->key, err, errlen) != 0)
            goto fail;
        l->stats = stats_for(srv, lc->name);
        if (l->stats == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (gw_pool_new(lc, running_pool(srv, lc->name), &l->pool) != 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (bind_sockets) {
            struct gw_socket_set *set = socket_set_for(srv, lc, cfg->path, err, errlen);
            if (set == NULL)
                goto fail;
            l->fds = set->fds;
        }
    }
    *out = g;
    return 0;
fail:
    /* Sockets opened for this attempt and not used by the running generation go at the next sweep;
     * mark what the running generation uses so a failed reload keeps it whole. */
    if (bind_sockets) {
        struct gw_gen *cur = atomic_load(&srv->gen);
        for (size_t i = 0; i < srv->nsocks; i++) {
            srv->socks[i].used = 0;
            for (size_t k = 0; cur != NULL && k < cur->nlisteners; k++)
                if (strcmp(cur->listeners[k].cfg->bind.text, srv->socks[i].bind) == 0)
                    srv->socks[i].used = 1;
        }
        sweep_sockets(srv);
    }
    gw_gen_unref(g);
    return -1;
}

/* Tells every worker to look at the state and waits until all have (bounded: a worker stuck in a
 * long HSM call must not hang the main thread forever). */
static void notify_workers(struct gw_server *srv, int wait)
{
    atomic_store(&srv->acks, 0);
    uint64_t one = 1;
    for (unsigned i = 0; i < srv->nworkers; i++)
        if (write(srv->workers[i].evfd, &one, sizeof(one)) < 0)
            gw_log(LOG_ERR, "cannot wake worker %u: %s", i, strerror(errno));
    for (int spins = 0; wait && spins < 10000 && atomic_load(&srv->acks) < srv->nworkers; spins++) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
}

static unsigned default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n <= HSM_MAX_THREADS - 1 ? (unsigned)n : 1;
}

static void reload(struct gw_server *srv)
{
    char err[1024];
    struct gw_config *cfg = NULL;
    gw_log(LOG_INFO, "SIGHUP: reloading %s", srv->config_path);
    if (gw_config_load(srv->config_path, &cfg, err, sizeof(err)) != 0) {
        gw_log(LOG_ERR, "reload refused, the running configuration stays in force: %s", err);
        return;
    }
    if (needs_hsm(cfg) && srv->hsm == NULL) {
        gw_log(LOG_ERR, "reload refused: the new configuration needs an HSM the running one did not open; restart instead");
        gw_config_free(cfg);
        return;
    }
    if (gw_policy_same_store(srv, cfg, err, sizeof(err)) != 0) {
        gw_log(LOG_ERR, "reload refused, the running configuration stays in force: %s", err);
        gw_config_free(cfg);
        return;
    }
    unsigned want = cfg->workers ? cfg->workers : default_workers();
    if (want != srv->nworkers)
        gw_log(LOG_WARNING, "reload: workers %u -> %u takes effect at the next restart", srv->nworkers, want);
    const char *access_log = cfg->access_log;
    char *access_copy = access_log ? strdup(access_log) : NULL;
    const char *level = cfg->log_level;
    char *level_copy = level ? strdup(level) : NULL;
    unsigned max_conn = cfg->max_connections, drain = cfg->drain_timeout_ms;
    unsigned max_ca = cfg->max_connections_per_address, max_ha = cfg->max_handshakes_per_address;
    unsigned max_ra = cfg->max_handshake_rate_per_address;
    int to_syslog = cfg->log_syslog, facility = cfg->log_facility;
    struct gw_gen *g = NULL;
    if (gen_build(srv, cfg, 1, &g, err, sizeof(err)) != 0) {
        gw_log(LOG_ERR, "reload refused, the running configuration stays in force: %s", err);
        free(access_copy);
        free(level_copy);
        return;
    }
    pthread_mutex_lock(&srv->gen_mu);
    struct gw_gen *old = atomic_exchange(&srv->gen, g);
    pthread_mutex_unlock(&srv->gen_mu);
    gw_health_publish(srv->health, g);
    srv->max_connections = max_conn;
    atomic_store(&srv->max_conns_per_addr, max_ca);
    atomic_store(&srv->max_hs_per_addr, max_ha);
    atomic_store(&srv->max_rate_per_addr, max_ra);
    srv->drain_timeout_ms = drain;
    /* The workers judge their live connections again with the new rules: with the store as it is now
     * (a change another process just made may not have been polled yet). */
    if (srv->store != NULL && gw_policy_sync(srv) != 0)
        gw_log(LOG_WARNING, "reload: the policy store's latest changes were not in force in time; the next poll applies them");
    notify_workers(srv, 1);
    sweep_sockets(srv);
    gw_gen_unref(old);
    if (level_copy != NULL)
        (void)gw_log_set_level(level_copy);
    gw_log_to_syslog(to_syslog, facility);
    if (gw_access_log_open(access_copy) != 0)
        gw_log(LOG_ERR, "cannot reopen access log %s: %s", access_copy, strerror(errno));
    free(access_copy);
    free(level_copy);
    gw_admin_reload(srv);
    gw_log(LOG_INFO, "reloaded: generation %llu, %zu listener(s)", (unsigned long long)g->id, g->nlisteners);
}

static void server_free(struct gw_server *srv)
{
    /* First: the API's hooks reach the generation, the workers' registries and their eventfds. */
    gw_admin_stop(srv);
    gw_health_stop(srv->health);
    srv->health = NULL;
    gw_gen_unref(atomic_exchange(&srv->gen, NULL));
    for (size_t i = 0; i < srv->nsocks; i++)
        close_socket_set(&srv->socks[i], srv->nworkers);
    free(srv->socks);
    for (size_t i = 0; i < srv->nstats; i++)
        free(srv->stats[i]);
    free(srv->stats);
    if (srv->workers != NULL) {
        for (unsigned i = 0; i < srv->nworkers; i++) {
            if (srv->workers[i].epfd >= 0)
                close(srv->workers[i].epfd);
            if (srv->workers[i].evfd >= 0)
                close(srv->workers[i].evfd);
            if (srv->workers[i].pol_evfd >= 0)
                close(srv->workers[i].pol_evfd);
            if (srv->workers[i].adm_evfd >= 0)
                close(srv->workers[i].adm_evfd);
            gw_conn_reg_destroy(&srv->workers[i].reg);
        }
        free(srv->workers);
    }
    gw_policy_close(srv);
    hsm_ctx_free(srv->hsm);
    gw_addrlim_free(srv->addrlim);      /* after the workers: their connections were the last users */
    free(srv->config_path);
    free(srv);
}

static int start_workers(struct gw_server *srv)
{
    srv->workers = calloc(srv->nworkers, sizeof(*srv->workers));
    if (srv->workers == NULL)
        return -1;
    for (unsigned i = 0; i < srv->nworkers; i++)
        srv->workers[i].epfd = srv->workers[i].evfd = srv->workers[i].pol_evfd = srv->workers[i].adm_evfd = -1;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct gw_worker *w = &srv->workers[i];
        w->index = i;
        w->srv = srv;
        w->evtag.kind = GW_TAG_CONTROL;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        w->poltag.kind = GW_TAG_POLICY;
        w->pol_evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        w->admtag.kind = GW_TAG_ADMIN;
        w->adm_evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->epfd < 0 || w->evfd < 0 || w->pol_evfd < 0 || w->adm_evfd < 0)
            return -1;
        if (gw_conn_reg_init(&w->reg) != 0)
            return -1;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &w->evtag };
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) != 0)
            return -1;
        struct epoll_event pev = { .events = EPOLLIN, .data.ptr = &w->poltag };
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->pol_evfd, &pev) != 0)
            return -1;
        struct epoll_event aev = { .events = EPOLLIN, .data.ptr = &w->admtag };
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->adm_evfd, &aev) != 0)
            return -1;
    }
    for (unsigned i = 0; i < srv->nworkers; i++) {
        int rc = pthread_create(&srv->workers[i].thread, NULL, gw_worker_main, &srv->workers[i]);
        if (rc != 0) {
            gw_log(LOG_ERR, "cannot start worker %u: %s", i, strerror(rc));
            /* Workers already started stop at once: nothing has been accepted yet that matters. */
            atomic_store(&srv->state, GW_STOPPING);
            srv->nworkers = i;
            notify_workers(srv, 0);
            for (unsigned k = 0; k < i; k++)
                pthread_join(srv->workers[k].thread, NULL);
            return -1;
        }
    }
    return 0;
}

static void drain(struct gw_server *srv)
{
    atomic_store(&srv->state, GW_DRAINING);
    notify_workers(srv, 1);
    for (size_t i = 0; i < srv->nsocks; i++)
        srv->socks[i].used = 0;
    sweep_sockets(srv);
    /* Said once the listening sockets are closed: from here on a new connection is refused. */
    gw_log(LOG_INFO, "draining: no new connections; waiting up to %u ms for %u open connection(s)",
           srv->drain_timeout_ms, atomic_load(&srv->active));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    uint64_t deadline = gw_now_ms() + srv->drain_timeout_ms;
    while (atomic_load(&srv->active) > 0 && gw_now_ms() < deadline) {
        struct timespec ts = { 0, 50 * 1000000 };
        if (sigtimedwait(&set, NULL, &ts) > 0) {
            gw_log(LOG_INFO, "second signal: closing the remaining connections now");
            break;
        }
    }
    /* Workers that finished draining have exited and will not acknowledge: join them instead. */
    atomic_store(&srv->state, GW_STOPPING);
    notify_workers(srv, 0);
    for (unsigned i = 0; i < srv->nworkers; i++)
        pthread_join(srv->workers[i].thread, NULL);
}

/* Every worker has opened its HSM sessions and watches its listening sockets: what they need root
 * for is done. A worker stuck in its HSM's C_OpenSession holds the start-up, as it should. */
static void wait_workers_started(struct gw_server *srv)
{
    uint64_t next_note = gw_now_ms() + 10000;
    while (atomic_load(&srv->started) < srv->nworkers) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
        if (gw_now_ms() >= next_note) {
            gw_log(LOG_WARNING, "still waiting for %u worker(s) to open their HSM sessions",
                   srv->nworkers - atomic_load(&srv->started));
            next_note += 10000;
        }
    }
}

static int write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%ld\n", (long)getpid());
    return fclose(f) == 0 ? 0 : -1;
}

int gw_server_main(const char *config_path, int check_only)
{
    char err[1024];
    int status = 1;
    struct gw_config *cfg = NULL;
    struct gw_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL || (srv->config_path = strdup(config_path)) == NULL) {
        fprintf(stderr, "hsmgate: out of memory\n");
        free(srv);
        return 1;
    }
    hsm_set_logger(hsm_logger);
    pthread_mutex_init(&srv->gen_mu, NULL);
    if (gw_config_load(config_path, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "hsmgate: %s\n", err);
        goto out;
    }
    if (cfg->log_level != NULL && gw_log_set_level(cfg->log_level) != 0)
        gw_log(LOG_WARNING, "unknown log level %s", cfg->log_level);
    struct gw_ids ids;
    if (gw_service_ids(cfg, &ids, err, sizeof(err)) != 0 ||
        (!check_only && gw_service_may_run(cfg, &ids, err, sizeof(err)) != 0)) {
        fprintf(stderr, "hsmgate: %s\n", err);
        goto out;
    }
    if (!check_only && cfg->log_syslog)
        gw_log_to_syslog(1, cfg->log_facility);
    if (gw_tls_global_init() != 0) {
        fprintf(stderr, "hsmgate: wolfSSL initialisation failed\n");
        goto out;
    }
    if (needs_hsm(cfg)) {
        if (hsm_ctx_new(&srv->hsm, cfg->hsm_module, cfg->hsm_pin, err, sizeof(err)) != 0) {
            fprintf(stderr, "hsmgate: %s:%d: %s\n", cfg->path, cfg->hsm_module_line, err);
            goto out;
        }
    }
    srv->nworkers = cfg->workers ? cfg->workers : default_workers();
    srv->max_connections = cfg->max_connections;
    atomic_store(&srv->max_conns_per_addr, cfg->max_connections_per_address);
    atomic_store(&srv->max_hs_per_addr, cfg->max_handshakes_per_address);
    atomic_store(&srv->max_rate_per_addr, cfg->max_handshake_rate_per_address);
    if (!check_only && (srv->addrlim = gw_addrlim_new()) == NULL) {
        fprintf(stderr, "hsmgate: out of memory\n");
        goto out;
    }
    srv->drain_timeout_ms = cfg->drain_timeout_ms;
    if (check_only && cfg->policy_store != NULL && access(cfg->policy_store, F_OK) != 0) {
        printf("%s: policy_store %s does not exist yet: the gateway creates it when it starts\n", config_path,
               cfg->policy_store);
    } else if (gw_policy_open(srv, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "hsmgate: %s\n", err);
        goto out;
    }
    if (!check_only && gw_admin_front_prepare(srv, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "hsmgate: %s\n", err);
        goto out;
    }
    char *access_log = cfg->access_log ? strdup(cfg->access_log) : NULL;
    char *pid_file = cfg->pid_file ? strdup(cfg->pid_file) : NULL;
    struct gw_gen *g = NULL;
    int rc = gen_build(srv, cfg, !check_only, &g, err, sizeof(err));
    cfg = NULL; /* owned by the generation, or freed */
    if (rc != 0) {
        fprintf(stderr, "hsmgate: %s\n", err);
        free(access_log);
        free(pid_file);
        goto out;
    }
    atomic_store(&srv->gen, g);
    if (check_only && gw_admin_check(srv, g->cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "hsmgate: %s\n", err);
        free(access_log);
        free(pid_file);
        goto out;
    }
    if (check_only) {
        printf("%s: configuration OK: %zu listener(s), every key resolved in the HSM\n", config_path, g->nlisteners);
        free(access_log);
        free(pid_file);
        status = 0;
        goto out;
    }
    if (gw_access_log_open(access_log) != 0) {
        fprintf(stderr, "hsmgate: cannot open access log %s: %s\n", access_log, strerror(errno));
        free(access_log);
        free(pid_file);
        goto out;
    }
    free(access_log);
    if (pid_file != NULL && write_pid_file(pid_file) != 0)
        gw_log(LOG_ERR, "cannot write pid file %s: %s", pid_file, strerror(errno));

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (start_workers(srv) != 0) {
        gw_log(LOG_ERR, "cannot start workers");
        free(pid_file);
        goto out;
    }
    /* After the workers, stopped before them: without it every backend simply counts as up. */
    if (gw_health_start(&srv->health) != 0)
        gw_log(LOG_ERR, "health checks are off: every backend counts as up");
    gw_health_publish(srv->health, g);
    for (size_t i = 0; i < g->nlisteners; i++) {
        const struct gw_listener_cfg *lc = g->listeners[i].cfg;
        static const char *const auths[] = { "one-way", "two-way", "optional" };
        const struct gw_admit *ad = g->listeners[i].admit;
        gw_log(LOG_INFO, "listener %s: %s on %s, %s TLS%s%s, %zu backend(s)", lc->name,
               lc->type == GW_LISTENER_HTTPS ? "https" : "tcp", lc->bind.text, auths[lc->auth],
               ad != NULL ? ", policy " : "", ad != NULL ? ad->name : "", lc->nbackends);
    }
    if (gw_policy_thread_start(srv) != 0)
        gw_log(LOG_ERR, "policy: changes to the store are not followed until a restart");
    wait_workers_started(srv);
    if (gw_admin_start(srv, g->cfg, err, sizeof(err)) != 0 || gw_service_drop(srv, &ids, err, sizeof(err)) != 0) {
        /* The operator asked for the API: without it they cannot manage the gateway. Stop. The
         * same when the switch to user: failed: never serve as root when told not to. */
        gw_log(LOG_ERR, "%s", err);
        atomic_store(&srv->state, GW_STOPPING);
        notify_workers(srv, 0);
        for (unsigned i = 0; i < srv->nworkers; i++)
            pthread_join(srv->workers[i].thread, NULL);
        gw_health_stop(srv->health);
        srv->health = NULL;
        free(pid_file);
        goto out;
    }
    gw_log(LOG_INFO, "ready: %zu listener(s), %u worker(s)", g->nlisteners, srv->nworkers);
    /* Every listener bound, every key resolved, the admin API up, the user switched: systemd's
     * Type=notify starts what depends on the gateway only now. */
    gw_service_notify("READY=1\nSTATUS=ready: %zu listener(s), %u worker(s)", g->nlisteners, srv->nworkers);
    for (;;) {
        int sig = gw_service_wait_signal(srv, &set);
        if (sig == SIGHUP) {
            gw_service_notify("RELOADING=1\nSTATUS=reloading");
            reload(srv);
            gw_service_notify("READY=1\nSTATUS=ready: generation %llu, %zu listener(s)",
                              (unsigned long long)atomic_load(&srv->gen)->id, atomic_load(&srv->gen)->nlisteners);
        } else if (sig == SIGTERM || sig == SIGINT) {
            gw_log(LOG_INFO, "%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            gw_service_notify("STOPPING=1\nSTATUS=draining");
            break;
        }
    }
    gw_health_stop(srv->health);
    srv->health = NULL;
    drain(srv);
    gw_admin_stop(srv);
    gw_policy_close(srv);
    if (pid_file != NULL)
        unlink(pid_file);
    free(pid_file);
    gw_access_log_close();
    gw_log(LOG_INFO, "stopped");
    status = 0;
out:
    gw_config_free(cfg);
    server_free(srv);
    gw_tls_global_cleanup();
    return status;
}
