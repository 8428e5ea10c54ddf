/* pool.h - a listener's backends: which one a new connection goes to, which are up, and counters.
 * Internal to gateway/.
 *
 * One pool per listener per generation (server.c builds and frees them with the generation).
 * Workers pick from it concurrently; the health-check thread (health.c) is the only writer of the
 * up/down state, which workers read lock-free.
 *
 * Selection (docs/configuration.md, "Backend pools and health checks"):
 *   round-robin        smooth weighted round-robin, as nginx does it: over a cycle of W = sum of
 *                      weights picks, a backend of weight w gets w picks, spread out, not in a burst.
 *   least-connections  the fewest active connections per unit of weight (active / weight); ties go
 *                      round-robin.
 * Only backends that are up are eligible. When no backend at all is up, every backend is eligible
 * again: a health checker that lags, or one whose own probes are what fails, must not turn a
 * working pool into a wall; the connect attempt itself then decides. Each backend is tried at most
 * once per client connection (struct gw_pool_tried).
 */
#ifndef HSMGATE_GATEWAY_POOL_H
#define HSMGATE_GATEWAY_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"

struct gw_pool;
struct gw_server;
struct gw_gen;

/* The backends one client connection has tried already. Zeroed memory is a valid empty set for a
 * pool of up to 64 backends; gw_pool_tried_init prepares it for any size. */
struct gw_pool_tried {
    uint64_t small;                    /* the set when the pool has at most 64 backends */
    uint64_t *big;                     /* otherwise: (n + 63) / 64 words, owned */
};

/* A snapshot of one backend's counters (for metrics and tests). */
struct gw_backend_stats {
    int up;
    unsigned active;                   /* connections open now, connecting ones included */
    uint64_t total;                    /* connections started towards it */
    uint64_t failures;                 /* of which the connect failed */
};

/* Builds the pool of listener cfg (which must outlive the pool: both belong to a generation).
 * prev, if not NULL, is the same listener's pool in the running generation: a backend found in both
 * (same address) keeps its total and failure counters, and its up/down state when both pools have
 * health checks, so a reload does not send traffic to a backend known to be down. Active
 * connections stay counted in the pool they started in. Returns 0, or -1 (out of memory). */
int gw_pool_new(const struct gw_listener_cfg *cfg, const struct gw_pool *prev, struct gw_pool **out) GW_WUR;
void gw_pool_free(struct gw_pool *p);

size_t gw_pool_size(const struct gw_pool *p);
const struct gw_backend_cfg *gw_pool_backend(const struct gw_pool *p, size_t i);
const struct gw_listener_cfg *gw_pool_listener(const struct gw_pool *p);

int gw_pool_tried_init(struct gw_pool_tried *t, size_t n) GW_WUR;
void gw_pool_tried_free(struct gw_pool_tried *t);

/* Chooses the backend for the next connect attempt of a client connection, among those not in
 * tried, by the pool's balance. Adds it to tried and counts it as active (pair with
 * gw_pool_release). Returns its index, or -1 when no eligible backend is left. Thread-safe. */
int gw_pool_pick(struct gw_pool *p, struct gw_pool_tried *tried);
/* Ends what gw_pool_pick started: one active connection less; failed counts a failed connect. */
void gw_pool_release(struct gw_pool *p, size_t i, int failed);

/* The health state; gw_pool_set_up returns the previous one. Lock-free. */
int gw_pool_is_up(const struct gw_pool *p, size_t i);
int gw_pool_set_up(struct gw_pool *p, size_t i, int up);
void gw_pool_stats(const struct gw_pool *p, size_t i, struct gw_backend_stats *out);

/* ---- health.c: active health checks, one thread for the whole process ---- */

struct gw_health;

/* Starts the health-check thread (call after the workers). It does nothing until a generation is
 * published. Returns 0, or -1 with the reason logged. */
int gw_health_start(struct gw_health **out) GW_WUR;
/* Hands the thread generation g (it takes its own reference; the caller keeps its own). Call after
 * publishing g, before dropping the reference of the generation it replaces. */
void gw_health_publish(struct gw_health *h, struct gw_gen *g);
/* Stops and joins the thread, closes its probes, drops its generation. NULL is a no-op. */
void gw_health_stop(struct gw_health *h);

#endif
