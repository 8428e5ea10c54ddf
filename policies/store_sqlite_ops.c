/* store_sqlite_ops.c - the SQLite store's changes (revoke, lift, allowlist, CRL import) and
 * listings. Each change is one IMMEDIATE transaction: bump the generation and log the change first
 * (the rows reference the change), then the rows, then COMMIT; any failure rolls everything back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/store_sqlite_int.h"

static int step_done(struct sq *s, sqlite3_stmt *st, char *err, size_t errlen, const char *what)
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

/* A batch: one upsert per row, skipping what is revoked already except a hold becoming final. */
static int revoke_batch(struct sq *s, const struct pol_revocation *r, size_t n, int64_t change, char *err,
                        size_t errlen)
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
        POL_TRY(step_done(s, ups, err, errlen, "revocation upsert"));
    }
out:
    sqlite3_finalize(ups);
    ups = NULL;
    free(ord);
    ord = NULL;
    return rc;
}

int sq_revoke(struct pol_store *base, const struct pol_revocation *r, size_t n, enum pol_revoke_mode mode,
              const struct pol_actor *who, time_t now, uint64_t *gen, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *find = NULL, *ins = NULL, *upd = NULL;
    uint8_t hash[POL_HASH_LEN];
    int64_t change = 0, issuer = 0;
    char target[600];
    int rc = 0, src;

    if (n == 1) {
        describe(&r[0], target, sizeof(target));
        size_t l = strlen(target);
        snprintf(target + l, sizeof(target) - l, " reason=%s", pol_reason_code_name(r[0].reason));
    } else {
        snprintf(target, sizeof(target), "%zu certificates", n);
    }
    POL_TRY(sq_begin(s, err, errlen));
    POL_TRY(sq_change(s, who, now, "revoke", target, gen, &change, err, errlen));
    if (mode == POL_REVOKE_BATCH) {
        POL_TRY(revoke_batch(s, r, n, change, err, errlen));
        rc = sq_commit(s, *gen, err, errlen);
        goto out;
    }
    POL_TRY(sq_prep(s, "SELECT reason FROM revocations WHERE issuer_id = ? AND serial = ? AND source = 0", &find, err,
                    errlen));
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
                POL_TRY(step_done(s, upd, err, errlen, "revocation update"));
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
        POL_TRY(step_done(s, ins, err, errlen, "revocation insert"));
    }
    if (n == 1)
        POL_TRY(sq_change_key_rev(s, change, hash, r[0].serial, r[0].serial_len, err, errlen));
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
    char target[600];
    int rc = 0, src, reason = -1, in_crl = 0;

    describe(r, target, sizeof(target));
    POL_TRY(pol_sha256(r->issuer_der, r->issuer_der_len, hash));
    POL_TRY(sq_begin(s, err, errlen));
    POL_TRY(sq_prep(s, "SELECT r.reason, r.source FROM revocations r JOIN issuers i ON i.id = r.issuer_id "
                       "WHERE i.name_hash = ? AND r.serial = ? ORDER BY r.source", &st, err, errlen));
    sqlite3_bind_blob(st, 1, hash, POL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, r->serial, (int)r->serial_len, SQLITE_STATIC);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_int64(st, 1) == 0)
            reason = sqlite3_column_int(st, 0);
        else
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
    POL_TRY(step_done(s, st, err, errlen, "lift"));
    sqlite3_finalize(st);
    st = NULL;
    POL_TRY(sq_change_key_rev(s, change, hash, r->serial, r->serial_len, err, errlen));
    rc = sq_commit(s, *gen, err, errlen);
out:
    sqlite3_finalize(st);
    st = NULL;
    sq_rollback(s);
    return rc;
}

int sq_revocations_each(struct pol_store *base, int (*fn)(void *, const struct pol_revocation_row *), void *arg,
                        char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    POL_TRY(sq_prep(s,
                    "SELECT i.name_hash, i.name_text, r.serial, r.reason, r.revoked_at, r.source, c.actor, c.comment, "
                    "c.at FROM revocations r JOIN issuers i ON i.id = r.issuer_id "
                    "LEFT JOIN changes c ON c.id = r.change_id ORDER BY r.issuer_id, r.serial, r.source",
                    &st, err, errlen));
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct pol_revocation_row row;
        memset(&row, 0, sizeof(row));
        if (sqlite3_column_bytes(st, 0) != POL_HASH_LEN || sqlite3_column_bytes(st, 2) <= 0)
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
        if ((rc = fn(arg, &row)) != 0)
            goto out;
    }
    if (src != SQLITE_DONE)
        rc = sq_fail(s, src, err, errlen, "revocations");
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
    rc = sq_commit(s, *gen, err, errlen);
out:
    sqlite3_finalize(st);
    st = NULL;
    sq_rollback(s);
    return rc;
}

int sq_allow_remove(struct pol_store *base, int64_t id, const struct pol_allow_entry *e, const struct pol_actor *who,
                    time_t now, uint64_t *gen, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t change = 0;
    char target[POL_VALUE_MAX + 160];
    int rc = 0;

    if (e != NULL)
        snprintf(target, sizeof(target), "list=%s %s=%s", e->list, pol_match_name(e->match), e->value);
    else
        snprintf(target, sizeof(target), "id=%lld", (long long)id);
    POL_TRY(sq_begin(s, err, errlen));
    POL_TRY(sq_change(s, who, now, "allow-remove", target, gen, &change, err, errlen));
    if (e != NULL) {
        POL_TRY(sq_prep(s, "DELETE FROM allowlist WHERE list = ? AND match = ? AND value = ? "
                           "RETURNING list, match, value", &st, err, errlen));
        sqlite3_bind_text(st, 1, e->list, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, pol_match_name(e->match), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, e->value, -1, SQLITE_STATIC);
    } else {
        POL_TRY(sq_prep(s, "DELETE FROM allowlist WHERE id = ? RETURNING list, match, value", &st, err, errlen));
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
    /* The key of the entry removed, for the change log (copied: the row goes with the next step). */
    char *klist = strdup((const char *)sqlite3_column_text(st, 0)), *kmatch = strdup((const char *)sqlite3_column_text(st, 1));
    char *kvalue = strdup((const char *)sqlite3_column_text(st, 2));
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (klist == NULL || kmatch == NULL || kvalue == NULL)
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
    rc = sq_commit(s, *gen, err, errlen);
out:
    sqlite3_finalize(st);
    st = NULL;
    sq_rollback(s);
    return rc;
}

int sq_allow_each(struct pol_store *base, const char *list, int (*fn)(void *, const struct pol_allow_row *), void *arg,
                  char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    POL_TRY(sq_prep(s, list ? "SELECT id, list, match, value, expires_at, actor, comment, created_at FROM allowlist "
                              "WHERE list = ? ORDER BY list, id"
                            : "SELECT id, list, match, value, expires_at, actor, comment, created_at FROM allowlist "
                              "ORDER BY list, id",
                    &st, err, errlen));
    if (list != NULL)
        sqlite3_bind_text(st, 1, list, -1, SQLITE_STATIC);
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

/* RFC 5280 5.2.3: CRL Numbers only grow. Decides whether crl may replace the stored one. */
static int check_newer(const struct pol_crl *crl, sqlite3_stmt *old, int *unchanged, char *err, size_t errlen)
{
    const uint8_t *num = sqlite3_column_blob(old, 1);
    size_t nlen = (size_t)sqlite3_column_bytes(old, 1);
    time_t this_update = (time_t)sqlite3_column_int64(old, 2);
    const void *sha = sqlite3_column_blob(old, 3);
    char a[64], b[64];

    if (sha != NULL && sqlite3_column_bytes(old, 3) == POL_HASH_LEN && memcmp(sha, crl->sha256, POL_HASH_LEN) == 0) {
        *unchanged = 1;
        return 0;
    }
    if (num != NULL && nlen > 0) {
        if (crl->number == NULL)
            return pol_errf(err, errlen, POL_E_CRL_ROLLBACK, "the stored CRL has a CRL Number and this one has none");
        int cmp = pol_int_cmp(crl->number, crl->number_len, num, nlen);
        pol_hex(crl->number, crl->number_len, a, sizeof(a));
        pol_hex(num, nlen, b, sizeof(b));
        if (cmp < 0)
            return pol_errf(err, errlen, POL_E_CRL_ROLLBACK, "CRL Number 0x%s is lower than the stored 0x%s", a, b);
        if (cmp == 0)
            return pol_errf(err, errlen, POL_E_CRL_ROLLBACK,
                            "CRL Number 0x%s is the stored one's, but the content differs", a);
    }
    if (crl->this_update < this_update)
        return pol_errf(err, errlen, POL_E_CRL_ROLLBACK, "thisUpdate is older than the stored CRL's");
    return 0;
}

static int entry_cmp(const void *a, const void *b, void *arg)
{
    const struct pol_crl_entry *e = arg;
    const struct pol_crl_entry *x = &e[*(const size_t *)a], *y = &e[*(const size_t *)b];
    size_t n = x->serial_len < y->serial_len ? x->serial_len : y->serial_len;
    int c = memcmp(x->serial, y->serial, n);
    if (c != 0)
        return c;
    return x->serial_len < y->serial_len ? -1 : x->serial_len > y->serial_len;
}

int sq_crl_import(struct pol_store *base, const struct pol_crl *crl, const struct pol_actor *who, time_t now,
                  int *unchanged, uint64_t *gen, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    size_t *ord = NULL;
    int64_t issuer = 0, change = 0, crl_id = 0;
    char target[600], num[64] = "none";
    int rc = 0, src;

    *unchanged = 0;
    if (crl->number != NULL)
        pol_hex(crl->number, crl->number_len, num, sizeof(num));
    snprintf(target, sizeof(target), "issuer=%s crl_number=%s entries=%zu", crl->issuer_text, num, crl->nentries);
    POL_TRY(sq_begin(s, err, errlen));
    POL_TRY(sq_issuer_id(s, crl->issuer_hash, crl->issuer_der, crl->issuer_der_len, crl->issuer_text, &issuer, err, errlen));
    POL_TRY(sq_prep(s, "SELECT id, crl_number, this_update, sha256 FROM crls WHERE issuer_id = ?", &st, err, errlen));
    sqlite3_bind_int64(st, 1, issuer);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        crl_id = sqlite3_column_int64(st, 0);
        POL_TRY(check_newer(crl, st, unchanged, err, errlen));
    } else if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "crl lookup");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (*unchanged) {
        /* Nothing to write: the generation stays as it is. */
        sq_rollback(s);
        rc = base->ops->generation(base, gen);
        goto out;
    }
    POL_TRY(sq_change(s, who, now, "crl-import", target, gen, &change, err, errlen));
    if (crl_id != 0) {
        POL_TRY(sq_prep(s, "UPDATE crls SET crl_number = ?, this_update = ?, next_update = ?, sha256 = ?, entries = ?, "
                           "imported_at = ?, change_id = ? WHERE id = ?", &st, err, errlen));
        sqlite3_bind_int64(st, 8, crl_id);
    } else {
        POL_TRY(sq_prep(s, "INSERT INTO crls(crl_number, this_update, next_update, sha256, entries, imported_at, "
                           "change_id, issuer_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", &st, err, errlen));
        sqlite3_bind_int64(st, 8, issuer);
    }
    if (crl->number != NULL)
        sqlite3_bind_blob(st, 1, crl->number, (int)crl->number_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)crl->this_update);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)crl->next_update);
    sqlite3_bind_blob(st, 4, crl->sha256, POL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)crl->nentries);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)now);
    sqlite3_bind_int64(st, 7, change);
    POL_TRY(step_done(s, st, err, errlen, "crl row"));
    if (crl_id == 0)
        crl_id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    st = NULL;
    /* The new CRL replaces what the old one listed: a hold the CA lifted disappears here too. */
    POL_TRY(sq_prep(s, "DELETE FROM revocations WHERE issuer_id = ? AND source = ?", &st, err, errlen));
    sqlite3_bind_int64(st, 1, issuer);
    sqlite3_bind_int64(st, 2, crl_id);
    POL_TRY(step_done(s, st, err, errlen, "crl entries delete"));
    sqlite3_finalize(st);
    st = NULL;
    /* In key order, as for batches (batch_cmp): a CRL of a million entries is not sorted by serial. */
    ord = malloc((crl->nentries ? crl->nentries : 1) * sizeof(*ord));
    if (ord == NULL) {
        rc = pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < crl->nentries; i++)
        ord[i] = i;
    qsort_r(ord, crl->nentries, sizeof(*ord), entry_cmp, crl->entries);
    POL_TRY(sq_prep(s, "INSERT OR IGNORE INTO revocations(issuer_id, serial, source, reason, revoked_at, change_id) "
                       "VALUES (?, ?, ?, ?, ?, ?)", &st, err, errlen));
    for (size_t i = 0; i < crl->nentries; i++) {
        const struct pol_crl_entry *e = &crl->entries[ord[i]];
        sqlite3_bind_int64(st, 1, issuer);
        sqlite3_bind_blob(st, 2, e->serial, e->serial_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, crl_id);
        sqlite3_bind_int(st, 4, e->reason);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)e->revoked_at);
        sqlite3_bind_int64(st, 6, change);
        POL_TRY(step_done(s, st, err, errlen, "crl entry insert"));
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = sq_commit(s, *gen, err, errlen);
out:
    sqlite3_finalize(st);
    st = NULL;
    free(ord);
    ord = NULL;
    sq_rollback(s);
    return rc;
}

int sq_crls_each(struct pol_store *base, int (*fn)(void *, const struct pol_crl_row *), void *arg, char *err,
                 size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    POL_TRY(sq_prep(s, "SELECT c.id, i.name_text, c.crl_number, c.this_update, c.next_update, c.imported_at, c.entries "
                       "FROM crls c JOIN issuers i ON i.id = c.issuer_id ORDER BY c.id", &st, err, errlen));
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct pol_crl_row row;
        memset(&row, 0, sizeof(row));
        row.id = sqlite3_column_int64(st, 0);
        row.issuer_text = (const char *)sqlite3_column_text(st, 1);
        row.number = sqlite3_column_blob(st, 2);
        row.number_len = (size_t)sqlite3_column_bytes(st, 2);
        row.this_update = (time_t)sqlite3_column_int64(st, 3);
        row.next_update = (time_t)sqlite3_column_int64(st, 4);
        row.imported_at = (time_t)sqlite3_column_int64(st, 5);
        row.entries = (size_t)sqlite3_column_int64(st, 6);
        if (row.issuer_text == NULL)
            row.issuer_text = "";
        if ((rc = fn(arg, &row)) != 0)
            goto out;
    }
    if (src != SQLITE_DONE)
        rc = sq_fail(s, src, err, errlen, "crls");
out:
    sqlite3_finalize(st);
    st = NULL;
    return rc;
}
