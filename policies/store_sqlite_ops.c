/* store_sqlite_ops.c - the SQLite store's revocation and allowlist changes and listings (CRLs are
 * in store_sqlite_crl.c). Each change is one IMMEDIATE transaction: bump the generation and write
 * the audit record first (the rows reference the change), then the rows, then what the change found
 * and left (sq_audit_state), then COMMIT, which seals the record onto the hash chain; any failure
 * rolls everything back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/store_sqlite_int.h"

int sq_step_done(struct sq *s, sqlite3_stmt *st, char *err, size_t errlen, const char *what)
{
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : sq_fail(s, src, err, errlen, what);
}

static void describe(const struct pol_revocation *r, char *out, size_t cap)
{
    char serial[2 * POL_SERIAL_MAX + 1];
    pol_serial_format(r->serial, r->serial_len, serial, sizeof(serial));
    snprintf(out, cap, "issuer=%s serial=%s", r->issuer_text ? r->issuer_text : "?", serial);
}

/* Batch order: by issuer, then serial as SQLite compares BLOBs (memcmp, then length), so that rows
 * go into the revocations B-tree in key order (appends, not random page splits: 3x faster for 1M). */
static int batch_cmp(const void *a, const void *b, void *arg)
{
    const struct pol_revocation *r = arg;
    const struct pol_revocation *x = &r[*(const size_t *)a], *y = &r[*(const size_t *)b];
    if (x->issuer_der != y->issuer_der) {
        size_t n = x->issuer_der_len < y->issuer_der_len ? x->issuer_der_len : y->issuer_der_len;
        int c = memcmp(x->issuer_der, y->issuer_der, n);
        if (c != 0 || x->issuer_der_len != y->issuer_der_len)
            return c != 0 ? c : (x->issuer_der_len < y->issuer_der_len ? -1 : 1);
    }
    size_t n = x->serial_len < y->serial_len ? x->serial_len : y->serial_len;
    int c = memcmp(x->serial, y->serial, n);
    if (c != 0)
        return c;
    return x->serial_len < y->serial_len ? -1 : x->serial_len > y->serial_len;
}

/* A revocation's state for the audit record: {"reason": ..., "revoked_at": ...}. */
static int rev_state(int reason, time_t revoked_at, char **out)
{
    struct pol_jbuf b = { 0 };
    pol_jbuf_open(&b);
    pol_jbuf_str(&b, "reason", pol_reason_code_name(reason));
    pol_jbuf_time(&b, "revoked_at", revoked_at);
    pol_jbuf_close(&b);
    int rc = pol_jbuf_done(&b);
    *out = rc == 0 ? b.p : NULL;
    return rc;
}

/* A batch: one upsert per row, skipping what is revoked already except a hold becoming final.
 * *applied counts the rows written (SQLite reports 0 changes for an upsert whose WHERE said no). */
static int revoke_batch(struct sq *s, const struct pol_revocation *r, size_t n, int64_t change, size_t *applied,
                        char *err, size_t errlen)
{
    sqlite3_stmt *ups = NULL;
    size_t *ord = malloc(n * sizeof(*ord));
    uint8_t hash[POL_HASH_LEN];
    int64_t issuer = 0;
    int rc = 0;
    if (ord == NULL)
        return pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        ord[i] = i;
    qsort_r(ord, n, sizeof(*ord), batch_cmp, (void *)r);
    POL_TRY(sq_prep(s, "INSERT INTO revocations(issuer_id, serial, source, reason, revoked_at, change_id) "
                       "VALUES (?, ?, 0, ?, ?, ?) ON CONFLICT(issuer_id, serial, source) DO UPDATE SET "
                       "reason = excluded.reason, revoked_at = excluded.revoked_at, change_id = excluded.change_id "
                       "WHERE revocations.reason = 6 AND excluded.reason <> 6", &ups, err, errlen));
    for (size_t k = 0; k < n; k++) {
        const struct pol_revocation *x = &r[ord[k]];
        const struct pol_revocation *prev = k ? &r[ord[k - 1]] : NULL;
        if (prev == NULL || x->issuer_der_len != prev->issuer_der_len ||
            (x->issuer_der != prev->issuer_der && memcmp(x->issuer_der, prev->issuer_der, x->issuer_der_len) != 0)) {
            POL_TRY(pol_sha256(x->issuer_der, x->issuer_der_len, hash));
            POL_TRY(sq_issuer_id(s, hash, x->issuer_der, x->issuer_der_len, x->issuer_text, &issuer, err, errlen));
        }
        sqlite3_bind_int64(ups, 1, issuer);
        sqlite3_bind_blob(ups, 2, x->serial, (int)x->serial_len, SQLITE_STATIC);
        sqlite3_bind_int(ups, 3, x->reason);
        sqlite3_bind_int64(ups, 4, (sqlite3_int64)x->revoked_at);
        sqlite3_bind_int64(ups, 5, change);
        POL_TRY(sq_step_done(s, ups, err, errlen, "revocation upsert"));
        *applied += (size_t)sqlite3_changes(s->db);
    }
out:
    sqlite3_finalize(ups);
    ups = NULL;
    free(ord);
    ord = NULL;
    return rc;
}

int sq_revoke(struct pol_store *base, const struct pol_revocation *r, size_t n, enum pol_revoke_mode mode,
              const struct pol_actor *who, time_t now, size_t *applied, uint64_t *gen, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *find = NULL, *ins = NULL, *upd = NULL;
    uint8_t hash[POL_HASH_LEN];
    int64_t change = 0, issuer = 0;
    char target[600], *before = NULL, *after = NULL;
    int rc = 0, src;
    struct pol_jbuf b = { 0 };

    *applied = 0;
    if (n == 1) {
        describe(&r[0], target, sizeof(target));
        size_t l = strlen(target);
        snprintf(target + l, sizeof(target) - l, " reason=%s", pol_reason_code_name(r[0].reason));
    } else {
        snprintf(target, sizeof(target), "%zu certificates", n);
    }
    POL_TRY(sq_begin(s, err, errlen));
    POL_TRY(sq_change(s, who, now, mode == POL_REVOKE_BATCH ? "revoke-batch" : "revoke", target, gen, &change, err,
                      errlen));
    if (mode == POL_REVOKE_BATCH) {
        POL_TRY(revoke_batch(s, r, n, change, applied, err, errlen));
        pol_jbuf_open(&b);
        pol_jbuf_int(&b, "requested", (long long)n);
        pol_jbuf_int(&b, "applied", (long long)*applied);
        pol_jbuf_int(&b, "skipped", (long long)(n - *applied));
        pol_jbuf_close(&b);
        POL_TRY(pol_jbuf_done(&b));
        POL_TRY(sq_audit_state(s, NULL, b.p, err, errlen));
        rc = sq_commit(s, *gen, err, errlen);
        goto out;
    }
    POL_TRY(sq_prep(s, "SELECT reason, revoked_at FROM revocations WHERE issuer_id = ? AND serial = ? AND source = 0",
                    &find, err, errlen));
    POL_TRY(sq_prep(s, "INSERT INTO revocations(issuer_id, serial, source, reason, revoked_at, change_id) "
                       "VALUES (?, ?, 0, ?, ?, ?)", &ins, err, errlen));
    POL_TRY(sq_prep(s, "UPDATE revocations SET reason = ?, revoked_at = ?, change_id = ? "
                       "WHERE issuer_id = ? AND serial = ? AND source = 0", &upd, err, errlen));
    for (size_t i = 0; i < n; i++) {
        const struct pol_revocation *x = &r[i];
        /* Batches are mostly one issuer: hash and look it up only when it changes. */
        if (i == 0 || x->issuer_der_len != r[i - 1].issuer_der_len ||
            (x->issuer_der != r[i - 1].issuer_der && memcmp(x->issuer_der, r[i - 1].issuer_der, x->issuer_der_len) != 0)) {
            POL_TRY(pol_sha256(x->issuer_der, x->issuer_der_len, hash));
            POL_TRY(sq_issuer_id(s, hash, x->issuer_der, x->issuer_der_len, x->issuer_text, &issuer, err, errlen));
        }
        sqlite3_bind_int64(find, 1, issuer);
        sqlite3_bind_blob(find, 2, x->serial, (int)x->serial_len, SQLITE_STATIC);
        src = sqlite3_step(find);
        int existing = src == SQLITE_ROW ? sqlite3_column_int(find, 0) : -1;
        time_t existing_at = src == SQLITE_ROW ? (time_t)sqlite3_column_int64(find, 1) : 0;
        sqlite3_reset(find);
        if (src != SQLITE_ROW && src != SQLITE_DONE) {
            rc = sq_fail(s, src, err, errlen, "revocation lookup");
            goto out;
        }
        if (existing >= 0) {
            /* RFC 5280 5.3.1: a certificate on hold may be revoked for good; nothing else changes. */
            if (existing == POL_REASON_CERTIFICATE_HOLD && x->reason != POL_REASON_CERTIFICATE_HOLD) {
                sqlite3_bind_int(upd, 1, x->reason);
                sqlite3_bind_int64(upd, 2, (sqlite3_int64)x->revoked_at);
                sqlite3_bind_int64(upd, 3, change);
                sqlite3_bind_int64(upd, 4, issuer);
                sqlite3_bind_blob(upd, 5, x->serial, (int)x->serial_len, SQLITE_STATIC);
                POL_TRY(sq_step_done(s, upd, err, errlen, "revocation update"));
                (*applied)++;
                if (n == 1)
                    POL_TRY(rev_state(existing, existing_at, &before));
                continue;
            }
            describe(x, target, sizeof(target));
            rc = pol_errf(err, errlen, POL_E_EXISTS, "already revoked (%s): %s", pol_reason_code_name(existing), target);
            goto out;
        }
        sqlite3_bind_int64(ins, 1, issuer);
        sqlite3_bind_blob(ins, 2, x->serial, (int)x->serial_len, SQLITE_STATIC);
        sqlite3_bind_int(ins, 3, x->reason);
        sqlite3_bind_int64(ins, 4, (sqlite3_int64)x->revoked_at);
        sqlite3_bind_int64(ins, 5, change);
        POL_TRY(sq_step_done(s, ins, err, errlen, "revocation insert"));
        (*applied)++;
    }
    if (n == 1) {
        POL_TRY(sq_change_key_rev(s, change, hash, r[0].serial, r[0].serial_len, err, errlen));
        POL_TRY(rev_state(r[0].reason, r[0].revoked_at, &after));
    } else {
        pol_jbuf_open(&b);
        pol_jbuf_int(&b, "requested", (long long)n);
        pol_jbuf_int(&b, "applied", (long long)*applied);
        pol_jbuf_close(&b);
        POL_TRY(pol_jbuf_done(&b));
        after = b.p;
        b.p = NULL;
    }
    POL_TRY(sq_audit_state(s, before, after, err, errlen));
    sqlite3_finalize(find);
    find = NULL;
    sqlite3_finalize(ins);
    ins = NULL;
    sqlite3_finalize(upd);
    upd = NULL;
    rc = sq_commit(s, *gen, err, errlen);
out:
    sqlite3_finalize(find);
    find = NULL;
    sqlite3_finalize(ins);
    ins = NULL;
    sqlite3_finalize(upd);
    upd = NULL;
    free(before);
    before = NULL;
    free(after);
    after = NULL;
    pol_jbuf_free(&b);
    sq_rollback(s);
    return rc;
}

int sq_lift(struct pol_store *base, const struct pol_revocation *r, const struct pol_actor *who, time_t now,
            uint64_t *gen, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    uint8_t hash[POL_HASH_LEN];
    int64_t change = 0;
    char target[600], *before = NULL;
    int rc = 0, src, reason = -1, in_crl = 0;
    time_t revoked_at = 0;

    describe(r, target, sizeof(target));
    POL_TRY(pol_sha256(r->issuer_der, r->issuer_der_len, hash));
    POL_TRY(sq_begin(s, err, errlen));
    POL_TRY(sq_prep(s, "SELECT r.reason, r.source, r.revoked_at FROM revocations r JOIN issuers i ON i.id = r.issuer_id "
                       "WHERE i.name_hash = ? AND r.serial = ? ORDER BY r.source", &st, err, errlen));
    sqlite3_bind_blob(st, 1, hash, POL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, r->serial, (int)r->serial_len, SQLITE_STATIC);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_int64(st, 1) == 0) {
            reason = sqlite3_column_int(st, 0);
            revoked_at = (time_t)sqlite3_column_int64(st, 2);
        } else
            in_crl = 1;
    }
    if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "revocation lookup");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (reason < 0) {
        rc = pol_errf(err, errlen, POL_E_NOT_FOUND, "%s: %s", in_crl
                      ? "listed only by an imported CRL (import that CA's next CRL to lift it)"
                      : "not revoked", target);
        goto out;
    }
    if (reason != POL_REASON_CERTIFICATE_HOLD) {
        rc = pol_errf(err, errlen, POL_E_NOT_HOLD, "revoked for %s, which is final (only certificateHold can be lifted): %s",
                      pol_reason_code_name(reason), target);
        goto out;
    }
    POL_TRY(sq_change(s, who, now, "lift", target, gen, &change, err, errlen));
    POL_TRY(sq_prep(s, "DELETE FROM revocations WHERE issuer_id = (SELECT id FROM issuers WHERE name_hash = ?) "
                       "AND serial = ? AND source = 0", &st, err, errlen));
    sqlite3_bind_blob(st, 1, hash, POL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, r->serial, (int)r->serial_len, SQLITE_STATIC);
    POL_TRY(sq_step_done(s, st, err, errlen, "lift"));
    sqlite3_finalize(st);
    st = NULL;
    POL_TRY(sq_change_key_rev(s, change, hash, r->serial, r->serial_len, err, errlen));
    POL_TRY(rev_state(reason, revoked_at, &before));
    POL_TRY(sq_audit_state(s, before, NULL, err, errlen));
    rc = sq_commit(s, *gen, err, errlen);
out:
    sqlite3_finalize(st);
    st = NULL;
    free(before);
    before = NULL;
    sq_rollback(s);
    return rc;
}

/* The cursor of a revocation row: its key, "<issuer_id>.<serial hex>.<source>". */
static void rev_cursor(int64_t issuer, const uint8_t *serial, size_t len, int64_t source, char out[POL_CURSOR_MAX])
{
    char hex[2 * POL_SERIAL_MAX + 1];
    pol_hex(serial, len, hex, sizeof(hex));
    snprintf(out, POL_CURSOR_MAX, "%lld.%s.%lld", (long long)issuer, hex, (long long)source);
}

static int rev_cursor_parse(const char *c, int64_t *issuer, uint8_t serial[POL_SERIAL_MAX], size_t *len,
                            int64_t *source)
{
    char hex[2 * POL_SERIAL_MAX + 1];
    long long a = 0, b = 0;
    int used = 0;
    if (strlen(c) >= POL_CURSOR_MAX || sscanf(c, "%lld.%64[0-9a-f].%lld%n", &a, hex, &b, &used) != 3 ||
        c[used] != '\0' || a <= 0 || b < 0)
        return POL_E_ARG;
    int n = pol_unhex(hex, serial, POL_SERIAL_MAX, 0);
    if (n <= 0)
        return POL_E_ARG;
    *issuer = a;
    *len = (size_t)n;
    *source = b;
    return 0;
}

int sq_revocations_query(struct pol_store *base, const struct pol_revocation_query *q,
                         int (*fn)(void *, const struct pol_revocation_row *), void *arg, char next[POL_CURSOR_MAX],
                         char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    uint8_t after_serial[POL_SERIAL_MAX];
    size_t after_len = 0, n = 0;
    int64_t after_issuer = 0, after_source = 0;
    int rc = 0, src;

    next[0] = '\0';
    if (q->after != NULL && q->after[0] != '\0' &&
        rev_cursor_parse(q->after, &after_issuer, after_serial, &after_len, &after_source) != 0)
        return pol_errf(err, errlen, POL_E_ARG, "not a revocation cursor: \"%.40s\"", q->after);
    /* Keyset pagination on the revocations primary key: each page is a seek, not a skip. One row past
     * the limit tells whether there is a next page. */
    POL_TRY(sq_prep(s,
                    "SELECT i.name_hash, i.name_text, r.serial, r.reason, r.revoked_at, r.source, c.actor, c.comment, "
                    "c.at, r.issuer_id FROM revocations r JOIN issuers i ON i.id = r.issuer_id "
                    "LEFT JOIN changes c ON c.id = r.change_id "
                    "WHERE (r.issuer_id, r.serial, r.source) > (?1, ?2, ?3) "
                    "AND (?4 IS NULL OR i.name_hash = ?4) AND (?5 IS NULL OR r.serial = ?5) "
                    "ORDER BY r.issuer_id, r.serial, r.source LIMIT ?6",
                    &st, err, errlen));
    sqlite3_bind_int64(st, 1, after_issuer);
    sqlite3_bind_blob(st, 2, after_serial, (int)after_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, after_source);
    if (q->issuer_hash != NULL)
        sqlite3_bind_blob(st, 4, q->issuer_hash, POL_HASH_LEN, SQLITE_STATIC);
    if (q->serial != NULL)
        sqlite3_bind_blob(st, 5, q->serial, (int)q->serial_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, q->limit == 0 || q->limit >= INT64_MAX ? -1 : (sqlite3_int64)q->limit + 1);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct pol_revocation_row row;
        memset(&row, 0, sizeof(row));
        if (sqlite3_column_bytes(st, 0) != POL_HASH_LEN || sqlite3_column_bytes(st, 2) <= 0 ||
            sqlite3_column_bytes(st, 2) > POL_SERIAL_MAX)
            continue;
        row.issuer_hash = sqlite3_column_blob(st, 0);
        row.issuer_text = (const char *)sqlite3_column_text(st, 1);
        row.serial = sqlite3_column_blob(st, 2);
        row.serial_len = (size_t)sqlite3_column_bytes(st, 2);
        row.reason = sqlite3_column_int(st, 3);
        row.revoked_at = (time_t)sqlite3_column_int64(st, 4);
        row.crl_id = sqlite3_column_int64(st, 5);
        row.actor = (const char *)sqlite3_column_text(st, 6);
        row.comment = (const char *)sqlite3_column_text(st, 7);
        row.recorded_at = (time_t)sqlite3_column_int64(st, 8);
        if (row.issuer_text == NULL)
            row.issuer_text = "";
        if (row.actor == NULL)
            row.actor = "";
        if (q->limit != 0 && n == q->limit) {
            /* There is more: the next page starts after the last row given. */
            break;
        }
        if ((rc = fn(arg, &row)) != 0)
            goto out;
        if (++n == q->limit)
            rev_cursor(sqlite3_column_int64(st, 9), row.serial, row.serial_len, row.crl_id, next);
    }
    if (src != SQLITE_DONE && src != SQLITE_ROW) {
        rc = sq_fail(s, src, err, errlen, "revocations");
        goto out;
    }
    /* The limit reached exactly at the last row: no next page after all. */
    if (src == SQLITE_DONE)
        next[0] = '\0';
out:
    sqlite3_finalize(st);
    st = NULL;
    return rc;
}

int sq_allow_add(struct pol_store *base, const struct pol_allow_entry *e, const struct pol_actor *who, time_t now,
                 int64_t *id, uint64_t *gen, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t change = 0;
    char target[POL_VALUE_MAX + 160];
    int rc = 0, src;
    struct pol_jbuf b = { 0 };

    snprintf(target, sizeof(target), "list=%s %s=%s", e->list, pol_match_name(e->match), e->value);
    POL_TRY(sq_begin(s, err, errlen));
    POL_TRY(sq_change(s, who, now, "allow-add", target, gen, &change, err, errlen));
    POL_TRY(sq_prep(s, "INSERT INTO allowlist(list, match, value, expires_at, actor, comment, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", &st, err, errlen));
    sqlite3_bind_text(st, 1, e->list, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, pol_match_name(e->match), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, e->value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)e->expires_at);
    sqlite3_bind_text(st, 5, who->actor, -1, SQLITE_STATIC);
    if (who->comment != NULL)
        sqlite3_bind_text(st, 6, who->comment, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)now);
    src = sqlite3_step(st);
    if (src == SQLITE_CONSTRAINT_UNIQUE) {
        rc = pol_errf(err, errlen, POL_E_EXISTS, "the entry exists already: %s", target);
        goto out;
    }
    if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "allowlist insert");
        goto out;
    }
    *id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    st = NULL;
    POL_TRY(sq_change_key_allow(s, change, e->list, pol_match_name(e->match), e->value, err, errlen));
    pol_jbuf_open(&b);
    pol_jbuf_int(&b, "id", (long long)*id);
    pol_jbuf_str(&b, "list", e->list);
    pol_jbuf_str(&b, "match", pol_match_name(e->match));
    pol_jbuf_str(&b, "value", e->value);
    pol_jbuf_time(&b, "expires_at", e->expires_at);
    pol_jbuf_close(&b);
    POL_TRY(pol_jbuf_done(&b));
    POL_TRY(sq_audit_state(s, NULL, b.p, err, errlen));
    rc = sq_commit(s, *gen, err, errlen);
out:
    sqlite3_finalize(st);
    st = NULL;
    pol_jbuf_free(&b);
    sq_rollback(s);
    return rc;
}

/* What allow_remove's DELETE returns: the whole entry, for the audit record. */
#define REMOVED_COLS "id, list, match, value, expires_at, actor, comment, created_at"

static char *dup_col(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return strdup(t ? t : "");
}

int sq_allow_remove(struct pol_store *base, int64_t id, const struct pol_allow_entry *e, const struct pol_actor *who,
                    time_t now, uint64_t *gen, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t change = 0;
    char target[POL_VALUE_MAX + 160];
    int rc = 0;
    struct pol_jbuf b = { 0 };

    if (e != NULL)
        snprintf(target, sizeof(target), "list=%s %s=%s", e->list, pol_match_name(e->match), e->value);
    else
        snprintf(target, sizeof(target), "id=%lld", (long long)id);
    POL_TRY(sq_begin(s, err, errlen));
    POL_TRY(sq_change(s, who, now, "allow-remove", target, gen, &change, err, errlen));
    if (e != NULL) {
        POL_TRY(sq_prep(s, "DELETE FROM allowlist WHERE list = ? AND match = ? AND value = ? "
                           "RETURNING " REMOVED_COLS, &st, err, errlen));
        sqlite3_bind_text(st, 1, e->list, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, pol_match_name(e->match), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, e->value, -1, SQLITE_STATIC);
    } else {
        POL_TRY(sq_prep(s, "DELETE FROM allowlist WHERE id = ? RETURNING " REMOVED_COLS, &st, err, errlen));
        sqlite3_bind_int64(st, 1, id);
    }
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        rc = pol_errf(err, errlen, POL_E_NOT_FOUND, "no such allowlist entry: %s", target);
        goto out;
    }
    if (src != SQLITE_ROW) {
        rc = sq_fail(s, src, err, errlen, "allowlist delete");
        goto out;
    }
    /* The entry removed: its key for the change log, all of it for the audit record (copied: the
     * row goes with the next step). */
    char *klist = dup_col(st, 1), *kmatch = dup_col(st, 2), *kvalue = dup_col(st, 3);
    pol_jbuf_open(&b);
    pol_jbuf_int(&b, "id", (long long)sqlite3_column_int64(st, 0));
    pol_jbuf_str(&b, "list", klist);
    pol_jbuf_str(&b, "match", kmatch);
    pol_jbuf_str(&b, "value", kvalue);
    pol_jbuf_time(&b, "expires_at", (time_t)sqlite3_column_int64(st, 4));
    pol_jbuf_str(&b, "actor", (const char *)sqlite3_column_text(st, 5));
    pol_jbuf_str(&b, "comment", (const char *)sqlite3_column_text(st, 6));
    pol_jbuf_time(&b, "created_at", (time_t)sqlite3_column_int64(st, 7));
    pol_jbuf_close(&b);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (klist == NULL || kmatch == NULL || kvalue == NULL || pol_jbuf_done(&b) != 0)
        rc = pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
    else if (src != SQLITE_DONE)
        rc = sq_fail(s, src, err, errlen, "allowlist delete");
    else
        rc = sq_change_key_allow(s, change, klist, kmatch, kvalue, err, errlen);
    free(klist);
    free(kmatch);
    free(kvalue);
    if (rc != 0)
        goto out;
    POL_TRY(sq_audit_state(s, b.p, NULL, err, errlen));
    rc = sq_commit(s, *gen, err, errlen);
out:
    sqlite3_finalize(st);
    st = NULL;
    pol_jbuf_free(&b);
    sq_rollback(s);
    return rc;
}

int sq_allow_query(struct pol_store *base, const char *list, int64_t after_id, size_t limit,
                   int (*fn)(void *, const struct pol_allow_row *), void *arg, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    POL_TRY(sq_prep(s, list ? "SELECT id, list, match, value, expires_at, actor, comment, created_at FROM allowlist "
                              "WHERE list = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                            : "SELECT id, list, match, value, expires_at, actor, comment, created_at FROM allowlist "
                              "WHERE id > ?2 ORDER BY list, id LIMIT ?3",
                    &st, err, errlen));
    if (list != NULL)
        sqlite3_bind_text(st, 1, list, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, after_id);
    sqlite3_bind_int64(st, 3, limit == 0 || limit >= INT64_MAX ? -1 : (sqlite3_int64)limit);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct pol_allow_row row;
        const char *m = (const char *)sqlite3_column_text(st, 2);
        memset(&row, 0, sizeof(row));
        row.id = sqlite3_column_int64(st, 0);
        row.list = (const char *)sqlite3_column_text(st, 1);
        row.value = (const char *)sqlite3_column_text(st, 3);
        row.expires_at = (time_t)sqlite3_column_int64(st, 4);
        row.actor = (const char *)sqlite3_column_text(st, 5);
        row.comment = (const char *)sqlite3_column_text(st, 6);
        row.created_at = (time_t)sqlite3_column_int64(st, 7);
        /* Rows the snapshot would skip are not shown as if they worked. */
        if (row.list == NULL || row.value == NULL || m == NULL || pol_match_parse(m, &row.match) != 0)
            continue;
        if (row.actor == NULL)
            row.actor = "";
        if ((rc = fn(arg, &row)) != 0)
            goto out;
    }
    if (src != SQLITE_DONE)
        rc = sq_fail(s, src, err, errlen, "allowlist");
out:
    sqlite3_finalize(st);
    st = NULL;
    return rc;
}

int sq_allow_lists(struct pol_store *base, time_t now, int (*fn)(void *, const struct pol_allow_list_row *), void *arg,
                   char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    POL_TRY(sq_prep(s, "SELECT list, count(*), sum(expires_at <> 0 AND expires_at <= ?) FROM allowlist "
                       "GROUP BY list ORDER BY list", &st, err, errlen));
    sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct pol_allow_list_row row;
        row.list = (const char *)sqlite3_column_text(st, 0);
        row.entries = (size_t)sqlite3_column_int64(st, 1);
        row.expired = (size_t)sqlite3_column_int64(st, 2);
        if (row.list == NULL)
            continue;
        if ((rc = fn(arg, &row)) != 0)
            goto out;
    }
    if (src != SQLITE_DONE)
        rc = sq_fail(s, src, err, errlen, "allowlist");
out:
    sqlite3_finalize(st);
    st = NULL;
    return rc;
}
