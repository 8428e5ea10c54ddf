/* conn_reg.h - each worker's registry of its live connections, the only view another thread (the
 * admin API's) has of them. Internal to gateway/.
 *
 * A worker owns its connections (server.h); the admin thread must never walk w->conns. So each
 * worker keeps, beside them, a list of small summaries behind a mutex: the worker alone writes it (an
 * entry added when a handshake is admitted, removed when the connection closes, the byte counts
 * refreshed at each sweep), the admin thread reads it under the lock, copying what it needs. Closing
 * goes the other way: the admin thread marks an entry under the lock and wakes the worker (its
 * adm_evfd); the worker closes the marked connections on its own thread and signals cv when it has.
 * The data path takes no lock: only the insert, the remove and the sweep's refresh do.
 */
#ifndef HSMGATE_GATEWAY_CONN_REG_H
#define HSMGATE_GATEWAY_CONN_REG_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"

struct gw_conn;
struct gw_server;
struct gw_worker;
struct gw_peer_info;

/* One registered connection: a single allocation with its strings packed after the fixed part, so
 * that the admin thread copies one with a malloc and a memcpy. Every field is written under the
 * registry's lock; a copy's prev, next and conn are NULL. */
struct gw_conn_entry {
    struct gw_conn_entry *prev, *next; /* the registry's list, ascending id */
    struct gw_conn *conn;              /* dereferenced by the owning worker only */
    size_t size;                       /* of the allocation, text included */
    uint64_t id;                       /* unique in the process, never reused, ascending in time */
    int64_t started_ms;                /* accepted at (CLOCK_REALTIME, ms since the epoch) */
    uint64_t bytes_in, bytes_out;      /* as of the worker's latest sweep (at most ~250 ms old) */
    uint64_t policy_generation;        /* store generation of the latest admission decision */
    unsigned worker;
    unsigned resumed : 1, has_cert : 1, decided : 1, close_requested : 1;
    /* Offsets into text of NUL-terminated strings ("" when unknown). */
    uint32_t listener, peer, version, cipher, subject, issuer, serial, fingerprint, policy;
    char text[];
};

static inline const char *gw_conn_entry_str(const struct gw_conn_entry *e, uint32_t off)
{
    return e->text + off;
}

struct gw_conn_reg {
    pthread_mutex_t mu;
    pthread_cond_t cv;                 /* a marked entry went away (CLOCK_MONOTONIC) */
    struct gw_conn_entry *head, *tail; /* under mu */
    size_t n;                          /* under mu */
    int close_pending;                 /* under mu: some entry has close_requested */
    unsigned waiters;                  /* under mu: threads waiting on cv */
    int ready;                         /* mu and cv initialized */
};

/* Results of gw_conn_reg_close. */
enum gw_conn_close_result {
    GW_CONN_CLOSED = 0,                /* the owning worker closed it */
    GW_CONN_UNKNOWN = 1,               /* no live connection has that id */
    GW_CONN_PENDING = 2,               /* marked; the worker has not got to it within the timeout */
};

/* Set-up and tear-down (main thread, before the workers start / after they and the admin API have
 * stopped). init returns 0 or -1; destroy accepts a registry that was never initialized. */
int gw_conn_reg_init(struct gw_conn_reg *r) GW_WUR;
void gw_conn_reg_destroy(struct gw_conn_reg *r);

/* ---- the owning worker's side ---- */

/* Registers c (its handshake was admitted) with its client pi (NULL: read here). Returns 0, or -1
 * out of memory (c is then not registered). */
int gw_conn_reg_add(struct gw_conn *c, const struct gw_peer_info *pi) GW_WUR;
/* Unregisters c (gw_conn_close); nothing when it was not registered. */
void gw_conn_reg_remove(struct gw_conn *c);
/* Copies every registered connection's byte counts and policy generation into its entry (each sweep). */
void gw_conn_reg_refresh(struct gw_worker *w);
/* Closes the connections the admin API marked (on the worker's adm_evfd), with access-log result
 * "closed_by_admin", reason "admin_request". */
void gw_conn_reg_turn(struct gw_worker *w);

/* ---- any other thread (the admin API's) ---- */

/* Copies of up to limit registered connections with an id above after_id, of the listener named
 * listener (NULL: all), in ascending id, into a new array *out of *n copies (gw_conn_reg_list_free).
 * Each worker's lock is held while its matching entries are copied, not longer. Returns 0 or -1. */
int gw_conn_reg_list(struct gw_server *srv, const char *listener, uint64_t after_id, size_t limit,
                     struct gw_conn_entry ***out, size_t *n) GW_WUR;
void gw_conn_reg_list_free(struct gw_conn_entry **v, size_t n);
/* Asks the worker that owns connection id to close it and waits up to timeout_ms for it to have.
 * Returns an enum gw_conn_close_result, or -1 when the worker cannot be woken. */
int gw_conn_reg_close(struct gw_server *srv, uint64_t id, unsigned timeout_ms) GW_WUR;

#endif
