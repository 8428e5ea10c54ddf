/* live.c - publishing snapshots to reader threads that never take a lock, and freeing old ones
 * only when no reader can hold them (quiescent-state-based reclamation, as in liburcu's QSBR flavour).
 *
 * State: `current` (the live snapshot), `epoch` (a counter bumped by every publish), and per reader a
 * `seen` word: the epoch it read at its last quiescent point, or OFFLINE when it holds nothing and
 * promises to take nothing until it comes back online. A publisher swaps `current`, bumps `epoch` to
 * E and retires the old snapshot tagged E; a retired snapshot is freed once every reader's `seen` is
 * OFFLINE or >= E.
 *
 * Memory ordering (C11), and why each operation has the order it has:
 *  - publish: exchange(current, new, acq_rel) then fetch_add(epoch, acq_rel). The release half of the
 *    exchange makes the snapshot's contents, written while building, visible to any reader whose
 *    acquire load of `current` returns it. The fetch_add comes after the exchange in program order,
 *    so a reader that reads the new epoch with acquire (in pol_quiescent) also sees the new `current`
 *    in every later load: after a quiescent point that recorded E, the old snapshot is unreachable.
 *  - pol_quiescent: load(epoch, acquire), store(seen, release). The release store orders every read
 *    the reader made of older snapshots before it; the reclaimer's acquire load of `seen` then
 *    makes those reads happen-before the free (no use after free).
 *  - going offline: store(seen, OFFLINE, release), for the same reason.
 *  - going online is the one store-then-load race (Dekker): the reader writes `seen` and then loads
 *    `current`, while a reclaimer wrote `current` and then loads `seen`. Plain acquire/release would
 *    allow both to miss each other (the reader gets the old snapshot, the reclaimer sees OFFLINE and
 *    frees it). A seq_cst fence on both sides (after the store in pol_reader_online, before scanning
 *    in reclaim) forbids that: either the reclaimer sees the reader online, or the reader sees the
 *    new `current`.
 *  - readers' `seen` words sit on their own cache lines: a worker's quiescent store must not make
 *    the other workers' lines bounce.
 * Publishers and reclaimers serialize on a mutex that readers never touch.
 */
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policies/pol_int.h"

#define OFFLINE UINT64_MAX

struct reader_slot {
    alignas(64) _Atomic uint64_t seen;
    _Atomic int registered;
};

struct retired {
    struct pol_snapshot *snap;
    uint64_t epoch;
    struct retired *next;
};

struct pol_live {
    _Atomic(struct pol_snapshot *) current;
    _Atomic uint64_t epoch;
    _Atomic uint64_t generation;       /* of current; readable without holding a snapshot */
    unsigned nreaders;
    pthread_mutex_t lock;              /* publishers and reclaimers */
    pthread_mutex_t refresh_lock;      /* one build at a time */
    struct retired *retired;           /* under lock */
    struct reader_slot *readers;
};

int pol_live_new(unsigned nreaders, struct pol_snapshot *initial, struct pol_live **out)
{
    struct pol_live *live = NULL;
    int rc = 0;
    *out = NULL;
    if (nreaders == 0 || nreaders > POL_MAX_READERS) {
        pol_snapshot_free(initial);
        return POL_E_READER;
    }
    if (initial == NULL && (rc = pol_snapshot_empty(&initial)) != 0)
        return rc;
    live = calloc(1, sizeof(*live));
    if (live != NULL)
        live->readers = aligned_alloc(64, sizeof(struct reader_slot) * nreaders);
    if (live == NULL || live->readers == NULL) {
        if (live != NULL)
            free(live);
        live = NULL;
        pol_snapshot_free(initial);
        return POL_E_NOMEM;
    }
    for (unsigned i = 0; i < nreaders; i++) {
        atomic_init(&live->readers[i].seen, OFFLINE);
        atomic_init(&live->readers[i].registered, 0);
    }
    live->nreaders = nreaders;
    atomic_init(&live->current, initial);
    atomic_init(&live->epoch, 1);
    atomic_init(&live->generation, initial->generation);
    pthread_mutex_init(&live->lock, NULL);
    pthread_mutex_init(&live->refresh_lock, NULL);
    *out = live;
    return 0;
}

void pol_live_free(struct pol_live *live)
{
    if (live == NULL)
        return;
    pol_snapshot_free(atomic_load(&live->current));
    atomic_store(&live->current, NULL);
    for (struct retired *r = live->retired, *next; r != NULL; r = next) {
        next = r->next;
        pol_snapshot_free(r->snap);
        free(r);
    }
    live->retired = NULL;
    pthread_mutex_destroy(&live->lock);
    pthread_mutex_destroy(&live->refresh_lock);
    free(live->readers);
    live->readers = NULL;
    free(live);
}

static struct reader_slot *slot_of(struct pol_live *live, unsigned reader)
{
    return live != NULL && reader < live->nreaders ? &live->readers[reader] : NULL;
}

void pol_reader_online(struct pol_live *live, unsigned reader)
{
    struct reader_slot *s = slot_of(live, reader);
    if (s == NULL || !atomic_load_explicit(&s->registered, memory_order_relaxed))
        return;
    atomic_store_explicit(&s->seen, atomic_load_explicit(&live->epoch, memory_order_acquire), memory_order_relaxed);
    /* Pairs with the fence in reclaim_locked (the Dekker case in the header comment). */
    atomic_thread_fence(memory_order_seq_cst);
}

void pol_reader_offline(struct pol_live *live, unsigned reader)
{
    struct reader_slot *s = slot_of(live, reader);
    if (s != NULL)
        atomic_store_explicit(&s->seen, OFFLINE, memory_order_release);
}

int pol_reader_register(struct pol_live *live, unsigned reader)
{
    struct reader_slot *s = slot_of(live, reader);
    int expected = 0;
    if (s == NULL || !atomic_compare_exchange_strong(&s->registered, &expected, 1))
        return POL_E_READER;
    pol_reader_online(live, reader);
    return 0;
}

void pol_reader_unregister(struct pol_live *live, unsigned reader)
{
    struct reader_slot *s = slot_of(live, reader);
    if (s == NULL)
        return;
    pol_reader_offline(live, reader);
    atomic_store_explicit(&s->registered, 0, memory_order_release);
}

void pol_quiescent(struct pol_live *live, unsigned reader)
{
    struct reader_slot *s = slot_of(live, reader);
    /* Only the reader itself writes its slot, so a relaxed look at it is exact. */
    if (s == NULL || atomic_load_explicit(&s->seen, memory_order_relaxed) == OFFLINE)
        return;
    atomic_store_explicit(&s->seen, atomic_load_explicit(&live->epoch, memory_order_acquire), memory_order_release);
}

const struct pol_snapshot *pol_snapshot_current(struct pol_live *live, unsigned reader)
{
    struct reader_slot *s = slot_of(live, reader);
    if (s == NULL || atomic_load_explicit(&s->seen, memory_order_relaxed) == OFFLINE)
        return NULL;
    return atomic_load_explicit(&live->current, memory_order_acquire);
}

/* The oldest epoch any online reader may still be using. */
static uint64_t min_seen(struct pol_live *live)
{
    uint64_t m = OFFLINE;
    for (unsigned i = 0; i < live->nreaders; i++) {
        uint64_t v = atomic_load_explicit(&live->readers[i].seen, memory_order_acquire);
        if (v < m)
            m = v;
    }
    return m;
}

static size_t reclaim_locked(struct pol_live *live)
{
    size_t waiting = 0;
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t m = min_seen(live);
    struct retired **pp = &live->retired;
    while (*pp != NULL) {
        struct retired *r = *pp;
        if (r->epoch <= m) {
            *pp = r->next;
            pol_snapshot_free(r->snap);
            r->snap = NULL;
            free(r);
        } else {
            waiting++;
            pp = &r->next;
        }
    }
    return waiting;
}

void pol_snapshot_publish(struct pol_live *live, struct pol_snapshot *s)
{
    if (live == NULL || s == NULL) {
        pol_snapshot_free(s);
        return;
    }
    /* Allocated before the swap, so that a failure cannot leave an old snapshot unaccounted for. */
    struct retired *r = malloc(sizeof(*r));
    pthread_mutex_lock(&live->lock);
    struct pol_snapshot *old = atomic_exchange_explicit(&live->current, s, memory_order_acq_rel);
    uint64_t e = atomic_fetch_add_explicit(&live->epoch, 1, memory_order_acq_rel) + 1;
    atomic_store_explicit(&live->generation, s->generation, memory_order_release);
    if (r != NULL) {
        r->snap = old;
        r->epoch = e;
        r->next = live->retired;
        live->retired = r;
    } else {
        /* No memory to remember it: wait out the readers here instead (they never block on us). */
        pthread_mutex_unlock(&live->lock);
        while (atomic_thread_fence(memory_order_seq_cst), min_seen(live) < e) {
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
        }
        pol_snapshot_free(old);
        old = NULL;
        pthread_mutex_lock(&live->lock);
    }
    reclaim_locked(live);
    pthread_mutex_unlock(&live->lock);
}

size_t pol_live_reclaim(struct pol_live *live)
{
    pthread_mutex_lock(&live->lock);
    size_t n = reclaim_locked(live);
    pthread_mutex_unlock(&live->lock);
    return n;
}

int pol_live_synchronize(struct pol_live *live, unsigned timeout_ms)
{
    struct timespec start, now;
    uint64_t e = atomic_load_explicit(&live->epoch, memory_order_acquire);
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        atomic_thread_fence(memory_order_seq_cst);
        if (min_seen(live) >= e) {
            pol_live_reclaim(live);
            return 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long ms = (now.tv_sec - start.tv_sec) * 1000LL + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (ms >= (long long)timeout_ms)
            return POL_E_TIMEOUT;
        struct timespec ts = { 0, 200000 };
        nanosleep(&ts, NULL);
    }
}

uint64_t pol_live_generation(struct pol_live *live)
{
    return atomic_load_explicit(&live->generation, memory_order_acquire);
}

int pol_live_refresh(struct pol_live *live, struct pol_store *st, int *published, char *err, size_t errlen)
{
    uint64_t g = 0;
    struct pol_snapshot *s = NULL;
    int rc = 0;
    if (published != NULL)
        *published = 0;
    pthread_mutex_lock(&live->refresh_lock);
    if ((rc = pol_store_generation(st, &g)) != 0) {
        pol_errf(err, errlen, rc, "cannot read the store's generation: %s", pol_strerror(rc));
        goto out;
    }
    if (g == pol_live_generation(live))
        goto out;
    /* A few single changes since the snapshot in force: an overlay of just those keys over its
     * base, built in microseconds whatever the size of the store. Anything else (a CRL import, a
     * batch, too many keys): the whole store again. The current snapshot cannot go away meanwhile:
     * only a publish retires it, and publishes go through here. */
    struct pol_snapshot *cur = atomic_load_explicit(&live->current, memory_order_acquire);
    if (cur != NULL && cur->generation > 0) {
        struct pol_delta d;
        uint64_t dg = 0;
        int full = 1;
        memset(&d, 0, sizeof(d));
        size_t max = pol_overlay_limit(cur);
        rc = pol_store_delta(st, cur->generation, max, &d, &dg, &full, err, errlen);
        if (rc == 0 && !full) {
            if (dg != cur->generation)
                rc = pol_snapshot_overlay(cur, &d, dg, max, &s, err, errlen);
            pol_delta_clear(&d);
            if (rc != 0)
                goto out;
            if (dg == cur->generation)
                goto out;
            if (s != NULL) {
                pol_snapshot_publish(live, s);
                s = NULL;
                if (published != NULL)
                    *published = 1;
                goto out;
            }
        }
        pol_delta_clear(&d);
        rc = 0;
    }
    POL_TRY(pol_snapshot_build(st, &s, err, errlen));
    pol_snapshot_publish(live, s);
    s = NULL;
    if (published != NULL)
        *published = 1;
out:
    pthread_mutex_unlock(&live->refresh_lock);
    return rc;
}
