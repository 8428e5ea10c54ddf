/* store_sqlite_int.h - what the SQLite backend's files share (store_sqlite.c: open, generation,
 * load, helpers; store_sqlite_ops.c: revocation and allowlist changes and listings;
 * store_sqlite_crl.c: imported CRLs; store_sqlite_audit.c: the audit trail; store_sqlite_issued.c:
 * the certificates our CA issued; store_schema.c: migrations). */
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
    int64_t audit_change;       /* the change (audit record) of the open write transaction; 0: none */
};

/* Maps a SQLite result to an enum pol_err with a message ("policy store: what: sqlite's words"). */
int sq_fail(struct sq *s, int src, char *err, size_t errlen, const char *what);
int sq_exec(struct sq *s, const char *sql, char *err, size_t errlen) POL_WUR;
int sq_prep(struct sq *s, const char *sql, sqlite3_stmt **st, char *err, size_t errlen) POL_WUR;
int sq_begin(struct sq *s, char *err, size_t errlen) POL_WUR;
/* Seals the transaction's audit record (if a change was logged), commits; on failure rolls back.
 * Records gen as the store's generation. */
int sq_commit(struct sq *s, uint64_t gen, char *err, size_t errlen) POL_WUR;
/* Rolls back if a transaction is open. */
void sq_rollback(struct sq *s);
/* Inside a write transaction: bump the generation, write the change's audit record (who, when,
 * what, request id, source; sealed into the hash chain by sq_commit). */
int sq_change(struct sq *s, const struct pol_actor *who, time_t now, const char *action, const char *target,
              uint64_t *gen, int64_t *change_id, char *err, size_t errlen) POL_WUR;

/* store_sqlite_audit.c */
/* The state before and after the change of this transaction (JSON texts; NULL writes "null"). */
int sq_audit_state(struct sq *s, const char *before, const char *after, char *err, size_t errlen) POL_WUR;
/* Hashes the transaction's audit record onto the chain (sq_commit calls it). */
int sq_audit_seal(struct sq *s, char *err, size_t errlen) POL_WUR;
/* Migration 3: chains every record made before it, in id order. */
int sq_audit_chain_all(struct sq *s, char *err, size_t errlen) POL_WUR;
int sq_audit_each(struct pol_store *st, int64_t after_id, size_t limit,
                  int (*fn)(void *, const struct pol_audit_record *), void *arg, char *err, size_t errlen);
int sq_audit_verify(struct pol_store *st, struct pol_audit_walk *v, size_t max, char *err, size_t errlen);
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

/* store_sqlite_ops.c: the pol_store_ops entries for revocations and allowlists. */
int sq_step_done(struct sq *s, sqlite3_stmt *st, char *err, size_t errlen, const char *what) POL_WUR;
int sq_revoke(struct pol_store *st, const struct pol_revocation *r, size_t n, enum pol_revoke_mode mode,
              const struct pol_actor *who, time_t now, size_t *applied, uint64_t *gen, char *err, size_t errlen);
int sq_lift(struct pol_store *st, const struct pol_revocation *r, const struct pol_actor *who, time_t now,
            uint64_t *gen, char *err, size_t errlen);
int sq_revocations_query(struct pol_store *st, const struct pol_revocation_query *q,
                         int (*fn)(void *, const struct pol_revocation_row *), void *arg, char next[POL_CURSOR_MAX],
                         char *err, size_t errlen);
int sq_allow_add(struct pol_store *st, const struct pol_allow_entry *e, const struct pol_actor *who, time_t now,
                 int64_t *id, uint64_t *gen, char *err, size_t errlen);
int sq_allow_remove(struct pol_store *st, int64_t id, const struct pol_allow_entry *e, const struct pol_actor *who,
                    time_t now, uint64_t *gen, char *err, size_t errlen);
int sq_allow_query(struct pol_store *st, const char *list, int64_t after_id, size_t limit,
                   int (*fn)(void *, const struct pol_allow_row *), void *arg, char *err, size_t errlen);
int sq_allow_lists(struct pol_store *st, time_t now, int (*fn)(void *, const struct pol_allow_list_row *), void *arg,
                   char *err, size_t errlen);

/* store_sqlite_crl.c: imported CRLs. */
int sq_crl_import(struct pol_store *st, const struct pol_crl *crl, const char *name, const uint8_t *ca_der,
                  size_t ca_len, const struct pol_actor *who, time_t now, int *unchanged, uint64_t *gen, char *err,
                  size_t errlen);
int sq_crl_remove(struct pol_store *st, const char *name, int64_t id, const struct pol_actor *who, time_t now,
                  uint64_t *gen, char *err, size_t errlen);
int sq_crls_each(struct pol_store *st, int (*fn)(void *, const struct pol_crl_row *), void *arg, char *err,
                 size_t errlen);

/* store_sqlite_issued.c: the certificates our CA issued (schema version 4). */
int sq_issued_add(struct pol_store *st, const uint8_t *der, size_t len, const struct pol_cert *c,
                  const struct pol_actor *who, time_t now, int64_t *id, uint64_t *gen, char *err, size_t errlen);
int sq_issued_query(struct pol_store *st, const struct pol_issued_query *q,
                    int (*fn)(void *, const struct pol_issued_row *), void *arg, char *err, size_t errlen);

#endif
