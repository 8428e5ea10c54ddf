/* store_int.h - the interface a store backend implements (SQLite in store_sqlite.c; PostgreSQL for
 * a fleet later). store.c validates every input and serializes calls on a handle before it calls a
 * backend, so backends see well-formed values only, one call at a time per handle.
 *
 * Contract for every change: one transaction that also increments the generation counter and
 * appends a row to the change log; the call returns only after the commit is durable; *gen gets the
 * generation the change produced. Reads (each, load) see one consistent state.
 */
#ifndef HSMGATE_POLICIES_STORE_INT_H
#define HSMGATE_POLICIES_STORE_INT_H

#include <pthread.h>

#include "policies/pol_int.h"

/* How revoke treats a serial that is already revoked here. */
enum pol_revoke_mode {
    POL_REVOKE_ONE,             /* POL_E_EXISTS, except a hold becoming final (RFC 5280 5.3.1) */
    POL_REVOKE_BATCH,           /* skip it */
};

struct pol_store;

struct pol_store_ops {
    const char *name;
    void (*close)(struct pol_store *st);
    int (*generation)(struct pol_store *st, uint64_t *gen);
    int (*schema_version)(struct pol_store *st, int *version);
    /* r[i].revoked_at is set (never 0); now is the change's time. */
    int (*revoke)(struct pol_store *st, const struct pol_revocation *r, size_t n, enum pol_revoke_mode mode,
                  const struct pol_actor *who, time_t now, uint64_t *gen, char *err, size_t errlen);
    int (*lift)(struct pol_store *st, const struct pol_revocation *r, const struct pol_actor *who, time_t now,
                uint64_t *gen, char *err, size_t errlen);
    int (*revocations_each)(struct pol_store *st, int (*fn)(void *, const struct pol_revocation_row *), void *arg,
                            char *err, size_t errlen);
    /* e->value is already canonical. */
    int (*allow_add)(struct pol_store *st, const struct pol_allow_entry *e, const struct pol_actor *who, time_t now,
                     int64_t *id, uint64_t *gen, char *err, size_t errlen);
    int (*allow_remove)(struct pol_store *st, int64_t id, const struct pol_allow_entry *e, const struct pol_actor *who,
                        time_t now, uint64_t *gen, char *err, size_t errlen);
    int (*allow_each)(struct pol_store *st, const char *list, int (*fn)(void *, const struct pol_allow_row *),
                      void *arg, char *err, size_t errlen);
    int (*crl_import)(struct pol_store *st, const struct pol_crl *crl, const struct pol_actor *who, time_t now,
                      int *unchanged, uint64_t *gen, char *err, size_t errlen);
    int (*crls_each)(struct pol_store *st, int (*fn)(void *, const struct pol_crl_row *), void *arg, char *err,
                     size_t errlen);
    /* Feeds every issuer, CRL, revocation and allowlist row to the builder (snapshot.c) from one read
     * transaction, and says which generation that was. */
    int (*load)(struct pol_store *st, struct pol_snapshot *b, uint64_t *gen, char *err, size_t errlen);
    /* pol_store_delta (pol_int.h); a backend without it sets NULL: every change is a full rebuild. */
    int (*delta)(struct pol_store *st, uint64_t since, size_t max, struct pol_delta *d, uint64_t *gen, int *full,
                 char *err, size_t errlen);
};

/* Every backend's handle starts with this. */
struct pol_store {
    const struct pol_store_ops *ops;
    pthread_mutex_t lock;
};

/* For backends: set up / tear down the common part. */
int pol_store_base_init(struct pol_store *st, const struct pol_store_ops *ops) POL_WUR;
void pol_store_base_fini(struct pol_store *st);

#endif
