/* policy_rt.c - the running gateway's side of policies/: the store it follows, the live snapshot
 * its workers decide with, and the thread that turns a committed change into enforcement.
 *
 * A change committed by anyone (the CLI beside the gateway, later the admin API) bumps the store's
 * generation. This thread looks every POLL_MS (a PRAGMA data_version and one row: cheap), builds a
 * new snapshot off the data plane, publishes it, wakes every worker (eventfd), and waits until each
 * has decided again on its live connections with it; then logs what changed and how many
 * connections were closed. Workers never touch SQLite (../shared/DESIGN.md fact 5).
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gateway/log.h"
#include "gateway/server.h"

#define POLL_MS 20
#define ACK_WAIT_MS 1000
#define ERROR_LOG_EVERY_MS 10000

static void log_snapshot(struct gw_server *srv, unsigned reader, const char *what, uint64_t build_ms,
                         unsigned long long closed, int all_acked)
{
    const struct pol_snapshot *s = pol_snapshot_current(srv->live, reader);
    struct pol_snapshot_stats st;
    if (s == NULL)
        return;
    pol_snapshot_get_stats(s, &st);
    if (closed == (unsigned long long)-1)
        gw_log(LOG_INFO, "policy: %s generation %llu in force: %zu revocation(s) from %zu issuer(s), %zu CRL(s), "
               "%zu allowlist entr%s in %zu list(s)%s; snapshot %zu KiB",
               what, (unsigned long long)st.generation, st.revocations, st.issuers, st.crls, st.allow_entries,
               st.allow_entries == 1 ? "y" : "ies", st.lists,
               st.skipped_rows ? " (some rows skipped: see warnings)" : "", st.bytes / 1024);
    else
    {
        char how[96];
        if (st.overlay_keys > 0)
            snprintf(how, sizeof(how), "%zu changed key(s) over generation %llu", st.overlay_keys,
                     (unsigned long long)st.base_generation);
        else
            snprintf(how, sizeof(how), "the whole store");
        gw_log(LOG_INFO, "policy: store generation %llu in force (%zu revocation(s), %zu allowlist entr%s, %zu CRL(s); "
               "%s, built in %llu ms); closed %llu live connection(s) now refused%s",
               (unsigned long long)st.generation, st.revocations, st.allow_entries,
               st.allow_entries == 1 ? "y" : "ies", st.crls, how, (unsigned long long)build_ms, closed,
               all_acked ? "" : " so far (a worker is still busy; it closes the rest at its next turn)");
    }
    pol_quiescent(srv->live, reader);
}

int gw_policy_open(struct gw_server *srv, const struct gw_config *cfg, char *err, size_t errlen)
{
    struct pol_snapshot *snap = NULL;
    char perr[512];

    pthread_mutex_init(&srv->pol_mu, NULL);
    pthread_cond_init(&srv->pol_cv, NULL);
    if (cfg->policy_store != NULL) {
        srv->policy_store_path = strdup(cfg->policy_store);
        if (srv->policy_store_path == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (pol_store_open_sqlite(cfg->policy_store, &srv->store, perr, sizeof(perr)) != 0) {
            snprintf(err, errlen, "%s:%d: policy_store: %s", cfg->path, cfg->policy_store_line, perr);
            return -1;
        }
        if (pol_snapshot_build(srv->store, &snap, perr, sizeof(perr)) != 0) {
            snprintf(err, errlen, "%s:%d: policy_store %s: %s", cfg->path, cfg->policy_store_line,
                     cfg->policy_store, perr);
            return -1;
        }
    }
    /* Readers: one per worker, this module's thread for its reports, the admin API's thread. */
    if (pol_live_new(srv->nworkers + 2, snap, &srv->live) != 0) {
        pol_snapshot_free(snap);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (pol_reader_register(srv->live, srv->nworkers) != 0) {
        snprintf(err, errlen, "policy: cannot register the policy thread as a reader");
        return -1;
    }
    if (srv->store != NULL)
        log_snapshot(srv, srv->nworkers, cfg->policy_store, 0, (unsigned long long)-1, 1);
    else
        gw_log(LOG_INFO, "policy: no policy_store configured: nothing is revoked and allowlists are empty");
    pol_reader_offline(srv->live, srv->nworkers);
    return 0;
}

int gw_policy_same_store(const struct gw_server *srv, const struct gw_config *cfg, char *err, size_t errlen)
{
    const char *a = srv->policy_store_path, *b = cfg->policy_store;
    if ((a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0))
        return 0;
    snprintf(err, errlen, "%s:%d: policy_store cannot change on reload (%s -> %s); restart instead", cfg->path,
             cfg->policy_store_line, a ? a : "none", b ? b : "none");
    return -1;
}

static void wake_workers(struct gw_server *srv)
{
    uint64_t one = 1;
    for (unsigned i = 0; i < srv->nworkers; i++)
        if (write(srv->workers[i].pol_evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            gw_log(LOG_ERR, "policy: cannot wake worker %u: %s", i, strerror(errno));
}

/* Waits until every worker has decided again with generation gen (bounded). */
static int wait_workers(struct gw_server *srv, uint64_t gen, unsigned long long *closed)
{
    uint64_t deadline = gw_now_ms() + ACK_WAIT_MS;
    for (;;) {
        unsigned done = 0;
        *closed = 0;
        for (unsigned i = 0; i < srv->nworkers; i++) {
            if (atomic_load(&srv->workers[i].pol_seen) >= gen) {
                done++;
                *closed += atomic_load(&srv->workers[i].pol_closed);
            }
        }
        if (done == srv->nworkers)
            return 1;
        if (gw_now_ms() >= deadline || atomic_load(&srv->state) == GW_STOPPING)
            return 0;
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
}

static void *policy_main(void *arg)
{
    struct gw_server *srv = arg;
    char err[512];
    uint64_t last_error_ms = 0;
    unsigned reader = srv->nworkers;

    for (;;) {
        pthread_mutex_lock(&srv->pol_mu);
        if (!srv->pol_stop && !srv->pol_kicked) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += srv->pol_poll_ms / 1000;
            until.tv_nsec += (long)(srv->pol_poll_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            (void)pthread_cond_timedwait(&srv->pol_cv, &srv->pol_mu, &until);
        }
        int stop = srv->pol_stop;
        srv->pol_kicked = 0;
        pthread_mutex_unlock(&srv->pol_mu);
        if (stop)
            break;
        uint64_t t0 = gw_now_ms();
        int published = 0;
        if (pol_live_refresh(srv->live, srv->store, &published, err, sizeof(err)) != 0) {
            /* The snapshot in force stays in force; say so now and then, not 50 times a second. */
            if (last_error_ms == 0 || t0 - last_error_ms >= ERROR_LOG_EVERY_MS) {
                gw_log(LOG_ERR, "policy: cannot read the store %s (the snapshot in force stays): %s",
                       srv->policy_store_path, err);
                last_error_ms = t0;
            }
            continue;
        }
        if (last_error_ms != 0) {
            gw_log(LOG_INFO, "policy: the store %s reads again", srv->policy_store_path);
            last_error_ms = 0;
        }
        if (!published)
            continue;
        uint64_t built = gw_now_ms() - t0;
        uint64_t gen = pol_live_generation(srv->live);
        wake_workers(srv);
        unsigned long long closed = 0;
        int all = wait_workers(srv, gen, &closed);
        pol_reader_online(srv->live, reader);
        const struct pol_snapshot *cs = pol_snapshot_current(srv->live, reader);
        struct pol_snapshot_stats now_st = { 0 };
        if (cs != NULL)
            pol_snapshot_get_stats(cs, &now_st);
        int whole = now_st.overlay_keys == 0;
        log_snapshot(srv, reader, "store", built, closed, all);
        pol_reader_offline(srv->live, reader);
        if (pol_live_reclaim(srv->live) == 0 && whole)
            malloc_trim(0); /* a whole snapshot's memory goes back to the system, not to the next one's peak */
    }
    return NULL;
}

int gw_policy_sync(struct gw_server *srv)
{
    uint64_t want = 0;
    if (!srv->pol_thread_started || pol_store_generation(srv->store, &want) != 0)
        return -1;
    gw_policy_kick(srv);
    uint64_t deadline = gw_now_ms() + ACK_WAIT_MS;
    while (pol_live_generation(srv->live) < want) {
        if (gw_now_ms() >= deadline)
            return -1;
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    return 0;
}

void gw_policy_kick(struct gw_server *srv)
{
    if (!srv->pol_thread_started)
        return;
    pthread_mutex_lock(&srv->pol_mu);
    srv->pol_kicked = 1;
    pthread_cond_signal(&srv->pol_cv);
    pthread_mutex_unlock(&srv->pol_mu);
}

int gw_policy_thread_start(struct gw_server *srv)
{
    if (srv->store == NULL)
        return 0;
    /* HSMGATE_POLICY_POLL_MS: how often to look for changes other processes made (the CLI); for tests
     * and diagnosis, 1 ms to 60 s. Changes made through the admin API are published at once anyway. */
    const char *poll = getenv("HSMGATE_POLICY_POLL_MS");
    char *end = NULL;
    long v = poll != NULL ? strtol(poll, &end, 10) : 0;
    srv->pol_poll_ms = poll != NULL && end != poll && *end == '\0' && v >= 1 && v <= 60000 ? (unsigned)v : POLL_MS;
    if (srv->pol_poll_ms != POLL_MS)
        gw_log(LOG_INFO, "policy: looking for changes to the store every %u ms (HSMGATE_POLICY_POLL_MS)", srv->pol_poll_ms);
    int rc = pthread_create(&srv->pol_thread, NULL, policy_main, srv);
    if (rc != 0) {
        gw_log(LOG_ERR, "policy: cannot start the policy thread: %s", strerror(rc));
        return -1;
    }
    srv->pol_thread_started = 1;
    return 0;
}

void gw_policy_close(struct gw_server *srv)
{
    if (srv->pol_thread_started) {
        pthread_mutex_lock(&srv->pol_mu);
        srv->pol_stop = 1;
        pthread_cond_signal(&srv->pol_cv);
        pthread_mutex_unlock(&srv->pol_mu);
        pthread_join(srv->pol_thread, NULL);
        srv->pol_thread_started = 0;
    }
    if (srv->live != NULL) {
        pol_reader_unregister(srv->live, srv->nworkers);
        pol_live_free(srv->live);
        srv->live = NULL;
    }
    pol_store_close(srv->store);
    srv->store = NULL;
    free(srv->policy_store_path);
    srv->policy_store_path = NULL;
}
