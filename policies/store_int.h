/* store_int.h - the interface a store backend implements (SQLite in store_sqlite.c; PostgreSQL for
 * a fleet later). store.c validates every input and serializes calls on a handle before it calls a
 * backend, so backends see well-formed values only, one call at a time per handle.
 *
 * Contract for every change: one transaction that also increments the generation counter and
 * appends an audit record (who, when, what, the state before and after as JSON texts made with
 * pol_jbuf, request id, source; chained with pol_audit_hash); the call returns only after the commit
 * is durable; *gen gets the generation the change produced. Reads (each, load) see one consistent
 * state.
 */
#ifndef HSMGATE_POLICIES_STORE_INT_H
#define HSMGATE_POLICIES_STORE_INT_H

#include <pthread.h>
#include <time.h>

#include "policies/pol_int.h"

/* How revoke treats a serial that is already revoked here. */
enum pol_revoke_mode {
    POL_REVOKE_ONE,             /* POL_E_EXISTS, except a hold becoming final (RFC 5280 5.3.1) */
    POL_REVOKE_BATCH,           /* skip it */
};

/* Where a chunked audit verification stands (pol_store_audit_verify, ops->audit_verify). */
struct pol_audit_walk {
    int64_t last_id;                    /* the last record checked; 0 before the first */
    uint8_t prev[POL_HASH_LEN];         /* its hash; zeros before the first */
    uint64_t last_gen;                  /* its generation */
    uint64_t records;                   /* records checked and good */
    int64_t bad_id;                     /* the first record that failed */
    int done;
};

/* The hash of an audit record (policies/audit.c): SHA-256 over "hsmgate-audit-v1", prev, id, at,
 * generation and the eight texts (actor, action, target, before, after, request_id, source, comment),
 * each text as a presence octet (0 NULL, 1 present) and, when present, its length as 8 octets
 * big-endian and its bytes; integers as 8 octets big-endian. len[i] (NULL: strlen) are the texts'
 * lengths in that order, so that a text with a NUL inside is hashed whole. */
#define POL_AUDIT_TEXTS 8
int pol_audit_hash(const struct pol_audit_record *r, const size_t *len, const uint8_t prev[POL_HASH_LEN],
                   uint8_t out[POL_HASH_LEN]) POL_WUR;
/* Checks one record against the chain so far (v) and moves v on: 0, or POL_E_AUDIT with v->bad_id
 * and a message. Shared by backends, so that all of them judge a record alike. */
int pol_audit_check(struct pol_audit_walk *v, const struct pol_audit_record *r, const size_t *len,
                    size_t prev_len, size_t hash_len, char *err, size_t errlen) POL_WUR;
/* The end of the walk: the last record's generation must be the store's. */
int pol_audit_check_tail(struct pol_audit_walk *v, uint64_t store_gen, char *err, size_t errlen) POL_WUR;

/* Short JSON texts for audit records (before/after), built without a JSON library: objects of
 * strings, integers, times (RFC 3339, or null for 0). A failed allocation is remembered and
 * reported by pol_jbuf_done. */
struct pol_jbuf {
    char *p;
    size_t len, cap;
    int failed;
};
void pol_jbuf_open(struct pol_jbuf *b);                 /* "{" */
void pol_jbuf_str(struct pol_jbuf *b, const char *key, const char *v);    /* NULL v: null */
void pol_jbuf_int(struct pol_jbuf *b, const char *key, long long v);
void pol_jbuf_time(struct pol_jbuf *b, const char *key, time_t t);        /* 0: null */
void pol_jbuf_hex(struct pol_jbuf *b, const char *key, const uint8_t *p, size_t n);   /* NULL p: null */
void pol_jbuf_close(struct pol_jbuf *b);                /* "}" */
/* 0 with the text in b->p (the caller frees it, or pol_jbuf_free), or POL_E_NOMEM. */
int pol_jbuf_done(struct pol_jbuf *b) POL_WUR;
void pol_jbuf_free(struct pol_jbuf *b);

struct pol_store;

struct pol_store_ops {
    const char *name;
    void (*close)(struct pol_store *st);
    int (*generation)(struct pol_store *st, uint64_t *gen);
    int (*schema_version)(struct pol_store *st, int *version);
    /* r[i].revoked_at is set (never 0); now is the change's time; *applied gets the rows written. */
    int (*revoke)(struct pol_store *st, const struct pol_revocation *r, size_t n, enum pol_revoke_mode mode,
                  const struct pol_actor *who, time_t now, size_t *applied, uint64_t *gen, char *err, size_t errlen);
    int (*lift)(struct pol_store *st, const struct pol_revocation *r, const struct pol_actor *who, time_t now,
                uint64_t *gen, char *err, size_t errlen);
    /* q is never NULL (all-zero: every row); next gets the cursor of the next page or "". */
    int (*revocations_query)(struct pol_store *st, const struct pol_revocation_query *q,
                             int (*fn)(void *, const struct pol_revocation_row *), void *arg,
                             char next[POL_CURSOR_MAX], char *err, size_t errlen);
    /* e->value is already canonical. */
    int (*allow_add)(struct pol_store *st, const struct pol_allow_entry *e, const struct pol_actor *who, time_t now,
                     int64_t *id, uint64_t *gen, char *err, size_t errlen);
    int (*allow_remove)(struct pol_store *st, int64_t id, const struct pol_allow_entry *e, const struct pol_actor *who,
                        time_t now, uint64_t *gen, char *err, size_t errlen);
    /* list NULL: every list, by list and id (after_id then 0); else that list's entries by id. */
    int (*allow_query)(struct pol_store *st, const char *list, int64_t after_id, size_t limit,
                       int (*fn)(void *, const struct pol_allow_row *), void *arg, char *err, size_t errlen);
    int (*allow_lists)(struct pol_store *st, time_t now, int (*fn)(void *, const struct pol_allow_list_row *),
                       void *arg, char *err, size_t errlen);
    /* name NULL: an unnamed import (ca_der NULL too); else name is valid and ca_der is crl's CA. */
    int (*crl_import)(struct pol_store *st, const struct pol_crl *crl, const char *name, const uint8_t *ca_der,
                      size_t ca_len, const struct pol_actor *who, time_t now, int *unchanged, uint64_t *gen,
                      char *err, size_t errlen);
    int (*crl_remove)(struct pol_store *st, const char *name, int64_t id, const struct pol_actor *who, time_t now,
                      uint64_t *gen, char *err, size_t errlen);
    int (*crls_each)(struct pol_store *st, int (*fn)(void *, const struct pol_crl_row *), void *arg, char *err,
                     size_t errlen);
    /* der parsed by store.c into c (its issuer, serial, subject, validity). */
    int (*issued_add)(struct pol_store *st, const uint8_t *der, size_t len, const struct pol_cert *c,
                      const struct pol_actor *who, time_t now, int64_t *id, uint64_t *gen, char *err, size_t errlen);
    int (*issued_query)(struct pol_store *st, const struct pol_issued_query *q,
                        int (*fn)(void *, const struct pol_issued_row *), void *arg, char *err, size_t errlen);
    int (*audit_each)(struct pol_store *st, int64_t after_id, size_t limit,
                      int (*fn)(void *, const struct pol_audit_record *), void *arg, char *err, size_t errlen);
    /* One step of pol_store_audit_verify: checks at most max records past v->last_id, in one read
     * transaction; sets v->done when none is left (and then checks the last generation against the
     * store's in that same transaction). POL_E_AUDIT with v->bad_id and a message when one fails. */
    int (*audit_verify)(struct pol_store *st, struct pol_audit_walk *v, size_t max, char *err, size_t errlen);
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
    /* The last change this handle tried to write (pol_store_write_status); under lock. */
    int write_rc;                       /* 0, or POL_E_STORE: the store did not take it */
    time_t write_failing_since;         /* the first failure of the current run of them */
    char write_err[256];
};

/* For backends: set up / tear down the common part. */
int pol_store_base_init(struct pol_store *st, const struct pol_store_ops *ops) POL_WUR;
void pol_store_base_fini(struct pol_store *st);

#endif
