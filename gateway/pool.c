/* pool.c - backend selection for one listener: smooth weighted round-robin or least-connections,
 * over the backends that are up, each tried at most once per client connection (pool.h).
 *
 * Round-robin keeps nginx's "current weight" per backend, so it needs a lock: the critical section
 * is a pass over the backends, taken once per connect attempt, after a TLS handshake that costs far
 * more. Least-connections reads atomics only. The up/down state and the counters are atomics that
 * the health thread writes and everyone reads.
 */
#include "gateway/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct gw_backend {
    const struct gw_backend_cfg *cfg;  /* owned by the generation's config */
    unsigned weight;                   /* cfg->weight, 0 read as 1 */
    atomic_int up;
    atomic_uint active;
    atomic_uint_fast64_t total, failures;
    long long cw;                      /* smooth round-robin's current weight; under the pool's lock */
};

struct gw_pool {
    const struct gw_listener_cfg *cfg;
    pthread_mutex_t lock;              /* the cw fields */
    atomic_uint rr;                    /* least-connections: where the scan for ties starts */
    size_t n;
    struct gw_backend *b;
};

static void backend_inherit(struct gw_backend *b, const struct gw_pool *prev, int keep_state)
{
    for (size_t k = 0; prev != NULL && k < prev->n; k++) {
        const struct gw_backend *o = &prev->b[k];
        if (strcmp(o->cfg->addr.text, b->cfg->addr.text) != 0)
            continue;
        atomic_store(&b->total, atomic_load(&o->total));
        atomic_store(&b->failures, atomic_load(&o->failures));
        if (keep_state)
            atomic_store(&b->up, atomic_load(&o->up));
        return;
    }
}

int gw_pool_new(const struct gw_listener_cfg *cfg, const struct gw_pool *prev, struct gw_pool **out)
{
    *out = NULL;
    struct gw_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -1;
    p->b = calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*p->b));
    if (p->b == NULL || pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p->b);
        free(p);
        return -1;
    }
    p->cfg = cfg;
    p->n = cfg->nbackends;
    atomic_init(&p->rr, 0);
    int keep_state = prev != NULL && prev->cfg->health.type != GW_HEALTH_NONE && cfg->health.type != GW_HEALTH_NONE;
    for (size_t i = 0; i < p->n; i++) {
        struct gw_backend *b = &p->b[i];
        b->cfg = &cfg->backends[i];
        b->weight = b->cfg->weight ? b->cfg->weight : 1;
        atomic_init(&b->up, 1);
        atomic_init(&b->active, 0);
        atomic_init(&b->total, 0);
        atomic_init(&b->failures, 0);
        backend_inherit(b, prev, keep_state);
    }
    *out = p;
    return 0;
}

void gw_pool_free(struct gw_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p->b);
    free(p);
}

size_t gw_pool_size(const struct gw_pool *p)
{
    return p->n;
}

const struct gw_backend_cfg *gw_pool_backend(const struct gw_pool *p, size_t i)
{
    return p->b[i].cfg;
}

const struct gw_listener_cfg *gw_pool_listener(const struct gw_pool *p)
{
    return p->cfg;
}

/* ---- the tried set ---- */

int gw_pool_tried_init(struct gw_pool_tried *t, size_t n)
{
    t->small = 0;
    t->big = NULL;
    if (n > 64) {
        t->big = calloc((n + 63) / 64, sizeof(uint64_t));
        if (t->big == NULL)
            return -1;
    }
    return 0;
}

void gw_pool_tried_free(struct gw_pool_tried *t)
{
    free(t->big);
    t->big = NULL;
}

static int tried_has(const struct gw_pool_tried *t, size_t i)
{
    const uint64_t *w = t->big != NULL ? t->big : &t->small;
    return (w[i / 64] >> (i % 64)) & 1u;
}

static void tried_add(struct gw_pool_tried *t, size_t i)
{
    uint64_t *w = t->big != NULL ? t->big : &t->small;
    w[i / 64] |= (uint64_t)1 << (i % 64);
}

/* ---- selection ---- */

static int any_up(const struct gw_pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (atomic_load_explicit(&p->b[i].up, memory_order_relaxed))
            return 1;
    return 0;
}

/* all_down: no backend is up, so the up state is not a filter (pool.h). */
static int eligible(const struct gw_pool *p, const struct gw_pool_tried *t, size_t i, int all_down)
{
    if (i >= 64 && t->big == NULL)
        return 0; /* a set sized for a smaller pool: never pick what it cannot record */
    if (tried_has(t, i))
        return 0;
    return all_down || atomic_load_explicit(&p->b[i].up, memory_order_relaxed);
}

/* nginx's smooth weighted round-robin (ngx_http_upstream_get_peer): every eligible backend's
 * current weight grows by its weight, the largest wins (the first on a tie) and gives back the sum. */
static int pick_round_robin(struct gw_pool *p, const struct gw_pool_tried *t, int all_down)
{
    int best = -1;
    long long total = 0;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++) {
        if (!eligible(p, t, i, all_down))
            continue;
        struct gw_backend *b = &p->b[i];
        b->cw += b->weight;
        total += b->weight;
        if (best < 0 || b->cw > p->b[best].cw)
            best = (int)i;
    }
    if (best >= 0)
        p->b[best].cw -= total;
    pthread_mutex_unlock(&p->lock);
    return best;
}

/* Fewest active connections per unit of weight: a/wa < b/wb, compared as a*wb < b*wa. The scan
 * starts one further each time, so equal loads take turns. */
static int pick_least_conn(struct gw_pool *p, const struct gw_pool_tried *t, int all_down)
{
    int best = -1;
    unsigned long long best_active = 0, best_weight = 1;
    size_t start = atomic_fetch_add_explicit(&p->rr, 1, memory_order_relaxed) % p->n;
    for (size_t k = 0; k < p->n; k++) {
        size_t i = (start + k) % p->n;
        if (!eligible(p, t, i, all_down))
            continue;
        unsigned long long a = atomic_load_explicit(&p->b[i].active, memory_order_relaxed);
        unsigned long long w = p->b[i].weight;
        if (best < 0 || a * best_weight < best_active * w) {
            best = (int)i;
            best_active = a;
            best_weight = w;
        }
    }
    return best;
}

int gw_pool_pick(struct gw_pool *p, struct gw_pool_tried *tried)
{
    if (p->n == 0)
        return -1;
    int all_down = !any_up(p);
    int i = p->cfg->balance == GW_BALANCE_LEAST_CONN ? pick_least_conn(p, tried, all_down)
                                                     : pick_round_robin(p, tried, all_down);
    if (i < 0)
        return -1;
    tried_add(tried, (size_t)i);
    atomic_fetch_add(&p->b[i].active, 1);
    atomic_fetch_add(&p->b[i].total, 1);
    return i;
}

void gw_pool_release(struct gw_pool *p, size_t i, int failed)
{
    if (i >= p->n)
        return;
    atomic_fetch_sub(&p->b[i].active, 1);
    if (failed)
        atomic_fetch_add(&p->b[i].failures, 1);
}

/* ---- health state and counters ---- */

int gw_pool_is_up(const struct gw_pool *p, size_t i)
{
    return atomic_load(&p->b[i].up);
}

int gw_pool_set_up(struct gw_pool *p, size_t i, int up)
{
    return atomic_exchange(&p->b[i].up, up ? 1 : 0);
}

void gw_pool_stats(const struct gw_pool *p, size_t i, struct gw_backend_stats *out)
{
    const struct gw_backend *b = &p->b[i];
    out->up = atomic_load(&b->up);
    out->active = atomic_load(&b->active);
    out->total = atomic_load(&b->total);
    out->failures = atomic_load(&b->failures);
}
