/* store_sqlite_int.h - what the SQLite backend's files share (store_sqlite.c: open, generation,
 * load, helpers; store_sqlite_ops.c: changes and listings; store_schema.c: migrations). */
#ifndef HSMGATE_POLICIES_STORE_SQLITE_INT_H
#define HSMGATE_POLICIES_STORE_SQLITE_INT_H

#include <sqlite3.h>

#include "policies/store_int.h"

struct sq {
    struct pol_store base;      /* first: a struct pol_store * is a struct sq * */
    sqlite3 *db;
    int64_t data_version;       /* PRAGMA data_version when gen_cache was read */
    int dv_valid;
    uint64_t gen_cache;
};

/* Maps a SQLite result to an enum pol_err with a message ("policy store: what: sqlite's words"). */
int sq_fail(struct sq *s, int src, char *err, size_t errlen, const char *what);
int sq_exec(struct sq *s, const char *sql, char *err, size_t errlen) POL_WUR;
int sq_prep(struct sq *s, const char *sql, sqlite3_stmt **st, char *err, size_t errlen) POL_WUR;
int sq_begin(struct sq *s, char *err, size_t errlen) POL_WUR;
/* Commits; on failure rolls back. Records gen as the store's generation. */
int sq_commit(struct sq *s, uint64_t gen, char *err, size_t errlen) POL_WUR;
/* Rolls back if a transaction is open. */
void sq_rollback(struct sq *s);
/* Inside a write transaction: bump the generation, log the change. */
int sq_change(struct sq *s, const struct pol_actor *who, time_t now, const char *action, const char *target,
              uint64_t *gen, int64_t *change_id, char *err, size_t errlen) POL_WUR;
int sq_issuer_id(struct sq *s, const uint8_t hash[POL_HASH_LEN], const uint8_t *der, size_t der_len,
                 const char *text, int64_t *id, char *err, size_t errlen) POL_WUR;

/* Applies pending migrations in one transaction (store_schema.c). */
int sq_migrate(struct sq *s, char *err, size_t errlen) POL_WUR;
/* Names the key change_id touched: a revocation (hash and serial) or an allowlist entry. */
int sq_change_key_rev(struct sq *s, int64_t change_id, const uint8_t hash[POL_HASH_LEN], const uint8_t *serial,
                      size_t len, char *err, size_t errlen) POL_WUR;
int sq_change_key_allow(struct sq *s, int64_t change_id, const char *list, const char *match, const char *value,
                        char *err, size_t errlen) POL_WUR;
int sq_delta(struct pol_store *st, uint64_t since, size_t max, struct pol_delta *d, uint64_t *gen, int *full,
             char *err, size_t errlen);

/* store_sqlite_ops.c: the pol_store_ops entries for changes and listings. */
int sq_revoke(struct pol_store *st, const struct pol_revocation *r, size_t n, enum pol_revoke_mode mode,
              const struct pol_actor *who, time_t now, uint64_t *gen, char *err, size_t errlen);
int sq_lift(struct pol_store *st, const struct pol_revocation *r, const struct pol_actor *who, time_t now,
            uint64_t *gen, char *err, size_t errlen);
int sq_revocations_each(struct pol_store *st, int (*fn)(void *, const struct pol_revocation_row *), void *arg,
                        char *err, size_t errlen);
int sq_allow_add(struct pol_store *st, const struct pol_allow_entry *e, const struct pol_actor *who, time_t now,
                 int64_t *id, uint64_t *gen, char *err, size_t errlen);
int sq_allow_remove(struct pol_store *st, int64_t id, const struct pol_allow_entry *e, const struct pol_actor *who,
                    time_t now, uint64_t *gen, char *err, size_t errlen);
int sq_allow_each(struct pol_store *st, const char *list, int (*fn)(void *, const struct pol_allow_row *), void *arg,
                  char *err, size_t errlen);
int sq_crl_import(struct pol_store *st, const struct pol_crl *crl, const struct pol_actor *who, time_t now,
                  int *unchanged, uint64_t *gen, char *err, size_t errlen);
int sq_crls_each(struct pol_store *st, int (*fn)(void *, const struct pol_crl_row *), void *arg, char *err,
                 size_t errlen);

#endif
