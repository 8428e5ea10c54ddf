/* store_sqlite_audit.c - the audit trail in the SQLite store (schema version 3): each row of
 * `changes` is one audit record. sq_change writes it first in a change's transaction (who, when,
 * what, request id, source); the change then says what it found and left (sq_audit_state); sq_commit
 * seals it onto the hash chain (sq_audit_seal) just before COMMIT. The write lock that BEGIN IMMEDIATE
 * took makes "the record before" well defined: no other writer can append in between.
 *
 * Verification and listing read records in id order; verification goes in chunks, each in its own
 * read transaction, so a long trail does not hold the handle (and the gateway's policy thread
 * behind it) for seconds. Records appended between chunks extend the chain and are checked too.
 */
#include <stdlib.h>
#include <string.h>

#include "policies/store_sqlite_int.h"

/* Column order of every record read here (read_record). */
#define RECORD_COLS                                                                                \
    "id, at, generation, actor, action, target, before_json, after_json, request_id, source, "    \
    "comment, prev_hash, hash"

struct rec_lens {
    size_t text[POL_AUDIT_TEXTS];
    size_t prev, hash;
};

static const char *col_text(sqlite3_stmt *st, int i, size_t *len)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL) {
        *len = 0;
        return NULL;
    }
    const char *t = (const char *)sqlite3_column_text(st, i);
    *len = (size_t)sqlite3_column_bytes(st, i);
    return t ? t : "";
}

static const uint8_t *col_blob(sqlite3_stmt *st, int i, size_t *len)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL) {
        *len = 0;
        return NULL;
    }
    const uint8_t *b = sqlite3_column_blob(st, i);
    *len = (size_t)sqlite3_column_bytes(st, i);
    return b;
}

/* One record from a row in RECORD_COLS order. The texts keep their stored lengths (a NUL inside a
 * tampered text must not hide the bytes after it from the hash). */
static void read_record(sqlite3_stmt *st, struct pol_audit_record *r, struct rec_lens *l)
{
    memset(r, 0, sizeof(*r));
    r->id = sqlite3_column_int64(st, 0);
    r->at = (time_t)sqlite3_column_int64(st, 1);
    r->generation = (uint64_t)sqlite3_column_int64(st, 2);
    r->actor = col_text(st, 3, &l->text[0]);
    r->action = col_text(st, 4, &l->text[1]);
    r->target = col_text(st, 5, &l->text[2]);
    r->before = col_text(st, 6, &l->text[3]);
    r->after = col_text(st, 7, &l->text[4]);
    r->request_id = col_text(st, 8, &l->text[5]);
    r->source = col_text(st, 9, &l->text[6]);
    r->comment = col_text(st, 10, &l->text[7]);
    r->prev_hash = col_blob(st, 11, &l->prev);
    r->hash = col_blob(st, 12, &l->hash);
}

int sq_audit_state(struct sq *s, const char *before, const char *after, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    if (s->audit_change == 0)
        return pol_errf(err, errlen, POL_E_STORE, "policy store: no change to describe");
    POL_TRY(sq_prep(s, "UPDATE changes SET before_json = ?, after_json = ? WHERE id = ?", &st, err, errlen));
    sqlite3_bind_text(st, 1, before ? before : "null", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, after ? after : "null", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, s->audit_change);
    if ((src = sqlite3_step(st)) != SQLITE_DONE)
        rc = sq_fail(s, src, err, errlen, "audit record");
out:
    sqlite3_finalize(st);
    st = NULL;
    return rc;
}

/* Hashes record id onto prev and stores both: the chain's one writing step. */
static int chain_one(struct sq *s, sqlite3_stmt *get, sqlite3_stmt *put, int64_t id, const uint8_t prev[POL_HASH_LEN],
                     uint8_t out[POL_HASH_LEN], char *err, size_t errlen)
{
    struct pol_audit_record r;
    struct rec_lens l;
    int rc = 0, src;

    sqlite3_bind_int64(get, 1, id);
    if ((src = sqlite3_step(get)) != SQLITE_ROW) {
        rc = src == SQLITE_DONE ? pol_errf(err, errlen, POL_E_STORE, "policy store: audit record %lld vanished",
                                           (long long)id)
                                : sq_fail(s, src, err, errlen, "audit record");
        goto out;
    }
    read_record(get, &r, &l);
    POL_TRY(pol_audit_hash(&r, l.text, prev, out));
    sqlite3_bind_blob(put, 1, prev, POL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(put, 2, out, POL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(put, 3, id);
    POL_TRY(sq_step_done(s, put, err, errlen, "audit chain"));
out:
    sqlite3_reset(get);
    return rc;
}

int sq_audit_seal(struct sq *s, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL, *get = NULL, *put = NULL;
    uint8_t prev[POL_HASH_LEN], h[POL_HASH_LEN];
    int rc = 0, src;

    /* The record before: a damaged one (hash missing) is chained over as zeros rather than blocking
     * a revocation; verification reports it. */
    memset(prev, 0, sizeof(prev));
    POL_TRY(sq_prep(s, "SELECT hash FROM changes WHERE id < ? ORDER BY id DESC LIMIT 1", &q, err, errlen));
    sqlite3_bind_int64(q, 1, s->audit_change);
    src = sqlite3_step(q);
    if (src == SQLITE_ROW && sqlite3_column_bytes(q, 0) == POL_HASH_LEN)
        memcpy(prev, sqlite3_column_blob(q, 0), POL_HASH_LEN);
    else if (src != SQLITE_ROW && src != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "audit chain");
        goto out;
    }
    POL_TRY(sq_prep(s, "SELECT " RECORD_COLS " FROM changes WHERE id = ?", &get, err, errlen));
    POL_TRY(sq_prep(s, "UPDATE changes SET prev_hash = ?, hash = ? WHERE id = ?", &put, err, errlen));
    POL_TRY(chain_one(s, get, put, s->audit_change, prev, h, err, errlen));
out:
    sqlite3_finalize(q);
    q = NULL;
    sqlite3_finalize(get);
    get = NULL;
    sqlite3_finalize(put);
    put = NULL;
    return rc;
}

int sq_audit_chain_all(struct sq *s, char *err, size_t errlen)
{
    sqlite3_stmt *next = NULL, *get = NULL, *put = NULL;
    uint8_t prev[POL_HASH_LEN], h[POL_HASH_LEN];
    int64_t id = INT64_MIN;
    int rc = 0, src;

    memset(prev, 0, sizeof(prev));
    /* One seek per record rather than one scan: the scan would see its own table being updated,
     * which SQLite leaves undefined. */
    POL_TRY(sq_prep(s, "SELECT id FROM changes WHERE id > ? ORDER BY id LIMIT 1", &next, err, errlen));
    POL_TRY(sq_prep(s, "SELECT " RECORD_COLS " FROM changes WHERE id = ?", &get, err, errlen));
    POL_TRY(sq_prep(s, "UPDATE changes SET prev_hash = ?, hash = ? WHERE id = ?", &put, err, errlen));
    for (;;) {
        sqlite3_bind_int64(next, 1, id);
        src = sqlite3_step(next);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = sq_fail(s, src, err, errlen, "audit chain");
            goto out;
        }
        id = sqlite3_column_int64(next, 0);
        sqlite3_reset(next);
        POL_TRY(chain_one(s, get, put, id, prev, h, err, errlen));
        memcpy(prev, h, POL_HASH_LEN);
    }
out:
    sqlite3_finalize(next);
    next = NULL;
    sqlite3_finalize(get);
    get = NULL;
    sqlite3_finalize(put);
    put = NULL;
    return rc;
}

int sq_audit_each(struct pol_store *base, int64_t after_id, size_t limit,
                  int (*fn)(void *, const struct pol_audit_record *), void *arg, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = 0, src;

    POL_TRY(sq_prep(s, "SELECT " RECORD_COLS " FROM changes WHERE id > ? ORDER BY id LIMIT ?", &st, err, errlen));
    sqlite3_bind_int64(st, 1, after_id);
    sqlite3_bind_int64(st, 2, limit == 0 || limit > INT64_MAX ? -1 : (sqlite3_int64)limit);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct pol_audit_record r;
        struct rec_lens l;
        read_record(st, &r, &l);
        /* A hash of the wrong size is shown as missing, never read past its end. */
        if (l.prev != POL_HASH_LEN)
            r.prev_hash = NULL;
        if (l.hash != POL_HASH_LEN)
            r.hash = NULL;
        if (r.actor == NULL)
            r.actor = "";
        if (r.action == NULL)
            r.action = "";
        if (r.target == NULL)
            r.target = "";
        if ((rc = fn(arg, &r)) != 0)
            goto out;
    }
    if (src != SQLITE_DONE)
        rc = sq_fail(s, src, err, errlen, "audit trail");
out:
    sqlite3_finalize(st);
    st = NULL;
    return rc;
}

int sq_audit_verify(struct pol_store *base, struct pol_audit_walk *v, size_t max, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    int rc = 0, src;

    POL_TRY(sq_exec(s, "BEGIN", err, errlen));
    POL_TRY(sq_prep(s, "SELECT " RECORD_COLS " FROM changes WHERE id > ? ORDER BY id LIMIT ?", &st, err, errlen));
    /* From the very start, any id: a record slipped in at id 0 or below is a record too. */
    sqlite3_bind_int64(st, 1, v->last_id == 0 ? INT64_MIN : v->last_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct pol_audit_record r;
        struct rec_lens l;
        read_record(st, &r, &l);
        POL_TRY(pol_audit_check(v, &r, l.text, l.prev, l.hash, err, errlen));
        n++;
    }
    if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "audit trail");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (n < max) {
        /* The end, in the same read transaction as the last records: compare with the generation. */
        POL_TRY(sq_prep(s, "SELECT value FROM meta WHERE key = 'generation'", &st, err, errlen));
        if ((src = sqlite3_step(st)) != SQLITE_ROW) {
            rc = src == SQLITE_DONE ? pol_errf(err, errlen, POL_E_SCHEMA, "policy store: no generation row")
                                    : sq_fail(s, src, err, errlen, "generation");
            goto out;
        }
        POL_TRY(pol_audit_check_tail(v, (uint64_t)sqlite3_column_int64(st, 0), err, errlen));
        v->done = 1;
    }
    sqlite3_finalize(st);
    st = NULL;
    POL_TRY(sq_exec(s, "COMMIT", err, errlen));
out:
    sqlite3_finalize(st);
    st = NULL;
    sq_rollback(s);
    return rc;
}
