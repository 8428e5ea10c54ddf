/* store_sqlite_issued.c - the certificates our CA issued (schema version 4: table `issued`), recorded by
 * the admin API when it issues one and listed with their revocation state.
 *
 * Recording is a change like any other: one IMMEDIATE transaction that bumps the generation, writes
 * the audit record ("cert-issue"), inserts the row and seals the record onto the hash chain at COMMIT.
 * It names no revocation or allowlist key, and store_sqlite_delta.c passes over it: a running gateway
 * keeps its snapshot rather than reading the whole store again for a change that admits no one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/store_sqlite_int.h"

int sq_issued_add(struct pol_store *base, const uint8_t *der, size_t len, const struct pol_cert *c,
                  const struct pol_actor *who, time_t now, int64_t *id, uint64_t *gen, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t change = 0;
    char serial[2 * POL_SERIAL_MAX + 1], target[600];
    struct pol_jbuf b = { 0 };
    int rc = 0, src;

    pol_serial_format(c->serial, c->serial_len, serial, sizeof(serial));
    snprintf(target, sizeof(target), "subject=%.400s serial=%s", c->subject ? c->subject : "", serial);
    POL_TRY(sq_begin(s, err, errlen));
    POL_TRY(sq_change(s, who, now, "cert-issue", target, gen, &change, err, errlen));
    POL_TRY(sq_prep(s, "INSERT INTO issued(issuer_hash, serial, issuer, subject, not_before, not_after, der, actor, "
                       "comment, request_id, created_at, change_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", &st, err, errlen));
    sqlite3_bind_blob(st, 1, c->issuer_hash, POL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, c->serial, (int)c->serial_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->issuer ? c->issuer : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->subject ? c->subject : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)c->not_before);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)c->not_after);
    sqlite3_bind_blob(st, 7, der, (int)len, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, who->actor, -1, SQLITE_STATIC);
    if (who->comment != NULL)
        sqlite3_bind_text(st, 9, who->comment, -1, SQLITE_STATIC);
    if (who->request_id != NULL)
        sqlite3_bind_text(st, 10, who->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)now);
    sqlite3_bind_int64(st, 12, change);
    src = sqlite3_step(st);
    if (src == SQLITE_CONSTRAINT_UNIQUE) {
        rc = pol_errf(err, errlen, POL_E_EXISTS, "a certificate with this issuer and serial is recorded already: %s",
                      target);
        goto out;
    }
    if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "issued certificate insert");
        goto out;
    }
    *id = sqlite3_last_insert_rowid(s->db);
    pol_jbuf_open(&b);
    pol_jbuf_int(&b, "id", (long long)*id);
    pol_jbuf_str(&b, "serial", serial);
    pol_jbuf_str(&b, "subject", c->subject);
    pol_jbuf_str(&b, "issuer", c->issuer);
    pol_jbuf_time(&b, "not_before", c->not_before);
    pol_jbuf_time(&b, "not_after", c->not_after);
    pol_jbuf_hex(&b, "fingerprint", c->fingerprint, POL_HASH_LEN);
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

int sq_issued_query(struct pol_store *base, const struct pol_issued_query *q,
                    int (*fn)(void *, const struct pol_issued_row *), void *arg, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = 0, src;

    /* The revocation state now, from any source (ours first, as the data plane sees it): one indexed
     * seek per row on the revocations primary key. */
#define REVOKED_WHERE                                                                              \
    "FROM revocations r JOIN issuers i ON i.id = r.issuer_id WHERE i.name_hash = c.issuer_hash "  \
    "AND r.serial = c.serial ORDER BY r.source LIMIT 1"
    POL_TRY(sq_prep(s,
                    "SELECT c.id, c.issuer_hash, c.issuer, c.subject, c.serial, c.not_before, c.not_after, c.der, "
                    "c.actor, c.comment, c.request_id, c.created_at, "
                    "(SELECT r.reason " REVOKED_WHERE "), (SELECT r.revoked_at " REVOKED_WHERE ") "
                    "FROM issued c WHERE c.id > ?1 AND (?2 IS NULL OR c.serial = ?2) ORDER BY c.id LIMIT ?3",
                    &st, err, errlen));
#undef REVOKED_WHERE
    sqlite3_bind_int64(st, 1, q->after_id);
    if (q->serial != NULL)
        sqlite3_bind_blob(st, 2, q->serial, (int)q->serial_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, q->limit == 0 || q->limit >= INT64_MAX ? -1 : (sqlite3_int64)q->limit);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct pol_issued_row row;
        memset(&row, 0, sizeof(row));
        /* A row that cannot be shown faithfully is skipped rather than shown wrong. */
        if (sqlite3_column_bytes(st, 1) != POL_HASH_LEN || sqlite3_column_bytes(st, 4) <= 0 ||
            sqlite3_column_bytes(st, 4) > POL_SERIAL_MAX || sqlite3_column_bytes(st, 7) <= 0)
            continue;
        row.id = sqlite3_column_int64(st, 0);
        row.issuer_hash = sqlite3_column_blob(st, 1);
        row.issuer = (const char *)sqlite3_column_text(st, 2);
        row.subject = (const char *)sqlite3_column_text(st, 3);
        row.serial = sqlite3_column_blob(st, 4);
        row.serial_len = (size_t)sqlite3_column_bytes(st, 4);
        row.not_before = (time_t)sqlite3_column_int64(st, 5);
        row.not_after = (time_t)sqlite3_column_int64(st, 6);
        row.der = sqlite3_column_blob(st, 7);
        row.der_len = (size_t)sqlite3_column_bytes(st, 7);
        row.actor = (const char *)sqlite3_column_text(st, 8);
        row.comment = (const char *)sqlite3_column_text(st, 9);
        row.request_id = (const char *)sqlite3_column_text(st, 10);
        row.created_at = (time_t)sqlite3_column_int64(st, 11);
        row.revoked = sqlite3_column_type(st, 12) != SQLITE_NULL;
        row.reason = row.revoked ? sqlite3_column_int(st, 12) : 0;
        row.revoked_at = row.revoked ? (time_t)sqlite3_column_int64(st, 13) : 0;
        if (row.issuer == NULL)
            row.issuer = "";
        if (row.subject == NULL)
            row.subject = "";
        if (row.actor == NULL)
            row.actor = "";
        if ((rc = fn(arg, &row)) != 0)
            goto out;
    }
    if (src != SQLITE_DONE)
        rc = sq_fail(s, src, err, errlen, "issued certificates");
out:
    sqlite3_finalize(st);
    st = NULL;
    return rc;
}
