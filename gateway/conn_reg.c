/* conn_reg.c - each worker's registry of its live connections (conn_reg.h): the worker's side
 * (register, unregister, refresh the byte counts, close what the admin API asked to) and the other
 * threads' (list copies, ask for a close and wait for it).
 *
 * Locking: one mutex per worker, so workers never contend with each other. The worker takes its own
 * lock to insert (once per admitted handshake), to remove (once per closed connection), once per
 * sweep to refresh the counts, and when woken to close; never while moving bytes. The admin thread
 * takes one worker's lock at a time, only long enough to copy (or mark) entries. Only the worker
 * writes the list, so it may read it without the lock on its own thread.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway/conn_int.h"
#include "gateway/conn_reg.h"
#include "gateway/log.h"
#include "gateway/server.h"

/* Connection ids: 1, 2, ... in the order handshakes are admitted, over the whole process (0 is "before
 * the first", the cursor of a first page). A worker takes the next id and appends its entry on its own
 * thread, so each worker's list is in ascending id order. */
static atomic_uint_fast64_t next_id = 1;

/* At most this many connections are closed per look at the marks (the lock is not held meanwhile). */
#define CLOSE_BATCH 32

int gw_conn_reg_init(struct gw_conn_reg *r)
{
    pthread_condattr_t ca;
    int rc;

    memset(r, 0, sizeof(*r));
    if (pthread_mutex_init(&r->mu, NULL) != 0)
        return -1;
    if (pthread_condattr_init(&ca) != 0) {
        pthread_mutex_destroy(&r->mu);
        return -1;
    }
    /* The wait is bounded by a monotonic deadline: a clock step must not stretch or cut it. */
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        pthread_mutex_destroy(&r->mu);
        return -1;
    }
    r->ready = 1;
    return 0;
}

void gw_conn_reg_destroy(struct gw_conn_reg *r)
{
    if (r == NULL || !r->ready)
        return;
    /* The workers closed every connection before they stopped: the list is empty; freed regardless. */
    while (r->head != NULL) {
        struct gw_conn_entry *e = r->head;
        r->head = e->next;
        free(e);
    }
    r->tail = NULL;
    r->n = 0;
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    r->ready = 0;
}

/* ---- the owning worker's side ---- */

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t pack(struct gw_conn_entry *e, size_t *used, const char *s)
{
    size_t n = strlen(s) + 1;
    uint32_t off = (uint32_t)*used;
    memcpy(e->text + *used, s, n);
    *used += n;
    return off;
}

int gw_conn_reg_add(struct gw_conn *c, const struct gw_peer_info *known)
{
    struct gw_peer_info local;
    const struct gw_peer_info *pi = known;
    struct gw_worker *w = c->w;
    struct gw_conn_reg *r = &w->reg;

    if (c->reg != NULL)
        return 0;
    if (pi == NULL) {
        gw_tls_peer_info(c->ssl, &local);
        pi = &local;
    }
    const char *version = wolfSSL_get_version(c->ssl), *cipher = wolfSSL_get_cipher(c->ssl);
    const char *s[9] = {
        c->l->cfg->name, c->peer, version != NULL ? version : "", cipher != NULL ? cipher : "",
        pi->subject, pi->issuer, pi->serial, pi->fp_sha256,
        c->tls.decided && c->tls.admit != NULL ? c->tls.admit->name : "",
    };
    size_t textlen = 0, used = 0;
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        textlen += strlen(s[i]) + 1;
    struct gw_conn_entry *e = malloc(sizeof(*e) + textlen);
    if (e == NULL)
        return -1;
    memset(e, 0, sizeof(*e));
    e->size = sizeof(*e) + textlen;
    e->listener = pack(e, &used, s[0]);
    e->peer = pack(e, &used, s[1]);
    e->version = pack(e, &used, s[2]);
    e->cipher = pack(e, &used, s[3]);
    e->subject = pack(e, &used, s[4]);
    e->issuer = pack(e, &used, s[5]);
    e->serial = pack(e, &used, s[6]);
    e->fingerprint = pack(e, &used, s[7]);
    e->policy = pack(e, &used, s[8]);
    e->conn = c;
    e->started_ms = realtime_ms() - (int64_t)(w->now_ms - c->started_ms);
    e->bytes_in = c->bytes_in;
    e->bytes_out = c->bytes_out;
    e->policy_generation = c->tls.decided ? c->tls.verdict.generation : 0;
    e->worker = w->index;
    e->resumed = wolfSSL_session_reused(c->ssl) ? 1 : 0;
    e->has_cert = pi->has_cert ? 1 : 0;
    e->decided = c->tls.decided ? 1 : 0;
    e->id = atomic_fetch_add(&next_id, 1);
    pthread_mutex_lock(&r->mu);
    e->prev = r->tail;
    if (r->tail != NULL)
        r->tail->next = e;
    else
        r->head = e;
    r->tail = e;
    r->n++;
    pthread_mutex_unlock(&r->mu);
    c->reg = e;
    c->id = e->id;
    return 0;
}

void gw_conn_reg_remove(struct gw_conn *c)
{
    struct gw_conn_entry *e = c->reg;
    if (e == NULL)
        return;
    struct gw_conn_reg *r = &c->w->reg;
    pthread_mutex_lock(&r->mu);
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        r->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        r->tail = e->prev;
    r->n--;
    /* Someone asked for this one and may be waiting to hear it is gone. */
    if (e->close_requested && r->waiters > 0)
        pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    c->reg = NULL;
    free(e);
}

void gw_conn_reg_refresh(struct gw_worker *w)
{
    struct gw_conn_reg *r = &w->reg;
    if (r->head == NULL) /* our own list: readable without the lock on this thread */
        return;
    pthread_mutex_lock(&r->mu);
    for (struct gw_conn_entry *e = r->head; e != NULL; e = e->next) {
        const struct gw_conn *c = e->conn;
        e->bytes_in = c->bytes_in;
        e->bytes_out = c->bytes_out;
        if (c->tls.decided)
            e->policy_generation = c->tls.verdict.generation;
    }
    pthread_mutex_unlock(&r->mu);
}

static void admin_close(struct gw_conn *c)
{
    if (c->closed)
        return;
    atomic_fetch_add(&c->l->stats->admin_closed, 1);
    gw_log(LOG_DEBUG, "listener %s: connection %llu from %s closed at the admin API's request", c->l->cfg->name,
           (unsigned long long)c->id, c->peer);
    c->result = "closed_by_admin";
    c->reason = "admin_request";
    c->admin_closed = 1;
    gw_conn_close(c); /* unregisters it, which tells the waiting admin thread */
}

void gw_conn_reg_turn(struct gw_worker *w)
{
    struct gw_conn_reg *r = &w->reg;
    struct gw_conn *batch[CLOSE_BATCH];
    int more;

    do {
        size_t n = 0;
        more = 0;
        pthread_mutex_lock(&r->mu);
        if (r->close_pending) {
            for (struct gw_conn_entry *e = r->head; e != NULL; e = e->next) {
                if (!e->close_requested)
                    continue;
                if (n == CLOSE_BATCH) {
                    more = 1;
                    break;
                }
                batch[n++] = e->conn;
            }
            r->close_pending = more;
        }
        pthread_mutex_unlock(&r->mu);
        /* Closing one connection never closes another: the batch stays valid throughout. */
        for (size_t i = 0; i < n; i++)
            admin_close(batch[i]);
    } while (more);
}

/* ---- other threads ---- */

static int by_id(const void *a, const void *b)
{
    const struct gw_conn_entry *x = *(struct gw_conn_entry *const *)a, *y = *(struct gw_conn_entry *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

void gw_conn_reg_list_free(struct gw_conn_entry **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int gw_conn_reg_list(struct gw_server *srv, const char *listener, uint64_t after_id, size_t limit,
                     struct gw_conn_entry ***out, size_t *nout)
{
    struct gw_conn_entry **v = NULL;
    size_t n = 0, cap;
    int rc = -1;

    *out = NULL;
    *nout = 0;
    if (limit == 0 || srv->nworkers == 0)
        return 0;
    /* Each worker gives its first limit matches at most: the lowest limit ids overall are among them. */
    if (limit > SIZE_MAX / sizeof(*v) / srv->nworkers)
        return -1;
    cap = limit * srv->nworkers;
    v = calloc(cap, sizeof(*v));
    if (v == NULL)
        return -1;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct gw_conn_reg *r = &srv->workers[i].reg;
        size_t taken = 0;
        int failed = 0;
        if (!r->ready)
            continue;
        pthread_mutex_lock(&r->mu);
        for (const struct gw_conn_entry *e = r->head; e != NULL && taken < limit; e = e->next) {
            if (e->id <= after_id)
                continue;
            if (listener != NULL && strcmp(gw_conn_entry_str(e, e->listener), listener) != 0)
                continue;
            struct gw_conn_entry *copy = malloc(e->size);
            if (copy == NULL) {
                failed = 1;
                break;
            }
            memcpy(copy, e, e->size);
            copy->prev = copy->next = NULL;
            copy->conn = NULL;
            v[n++] = copy;
            taken++;
        }
        pthread_mutex_unlock(&r->mu);
        if (failed)
            goto out;
    }
    qsort(v, n, sizeof(*v), by_id);
    for (size_t i = limit; i < n; i++) {
        free(v[i]);
        v[i] = NULL;
    }
    if (n > limit)
        n = limit;
    *out = v;
    *nout = n;
    v = NULL;
    n = 0;
    rc = 0;
out:
    gw_conn_reg_list_free(v, n);
    return rc;
}

/* The entry of id in r (under r->mu), or NULL. */
static struct gw_conn_entry *find_locked(struct gw_conn_reg *r, uint64_t id)
{
    for (struct gw_conn_entry *e = r->head; e != NULL && e->id <= id; e = e->next)
        if (e->id == id)
            return e;
    return NULL;
}

int gw_conn_reg_close(struct gw_server *srv, uint64_t id, unsigned timeout_ms)
{
    struct timespec deadline;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct gw_worker *w = &srv->workers[i];
        struct gw_conn_reg *r = &w->reg;
        uint64_t one = 1;
        int rc = 0;
        if (!r->ready)
            continue;
        pthread_mutex_lock(&r->mu);
        struct gw_conn_entry *e = find_locked(r, id);
        if (e == NULL) {
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        e->close_requested = 1;
        r->close_pending = 1;
        /* EAGAIN: the counter is full, so a wake is pending anyway. */
        if (write(w->adm_evfd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
            gw_log(LOG_ERR, "cannot wake worker %u: %s", w->index, strerror(errno));
            pthread_mutex_unlock(&r->mu);
            return -1;
        }
        r->waiters++;
        while (rc == 0 && find_locked(r, id) != NULL) /* 0: woken (perhaps spuriously); else ETIMEDOUT */
            rc = pthread_cond_timedwait(&r->cv, &r->mu, &deadline);
        int gone = find_locked(r, id) == NULL;
        r->waiters--;
        pthread_mutex_unlock(&r->mu);
        return gone ? GW_CONN_CLOSED : GW_CONN_PENDING;
    }
    return GW_CONN_UNKNOWN;
}
