/* store_sqlite_delta.c - the keys single changes touched (schema version 2), and the delta a running
 * gateway applies as an overlay instead of reading the whole store again.
 *
 * A revoke of one certificate, a lift, an allowlist add or remove names its key in its change-log
 * row. pol_store_delta reads, in one read transaction, the change-log rows past a generation and,
 * for each key, its state now (revoked or not and why; the entry's id and expiry or its absence).
 * A row without a key (a batch, a CRL import, a change an older hsmgate made) means "read it all";
 * a certificate our CA issued (cert-issue) changes nothing a snapshot holds and is passed over.
 */
#include <stdlib.h>
#include <string.h>

#include "policies/store_sqlite_int.h"

int sq_change_key_rev(struct sq *s, int64_t change_id, const uint8_t hash[POL_HASH_LEN], const uint8_t *serial,
                      size_t len, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    POL_TRY(sq_prep(s, "UPDATE changes SET key_issuer = ?, key_serial = ? WHERE id = ?", &st, err, errlen));
    sqlite3_bind_blob(st, 1, hash, POL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, serial, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, change_id);
    if ((src = sqlite3_step(st)) != SQLITE_DONE)
        rc = sq_fail(s, src, err, errlen, "change key");
out:
    sqlite3_finalize(st);
    return rc;
}

int sq_change_key_allow(struct sq *s, int64_t change_id, const char *list, const char *match, const char *value,
                        char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    POL_TRY(sq_prep(s, "UPDATE changes SET key_list = ?, key_match = ?, key_value = ? WHERE id = ?", &st, err,
                    errlen));
    sqlite3_bind_text(st, 1, list, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, match, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, change_id);
    if ((src = sqlite3_step(st)) != SQLITE_DONE)
        rc = sq_fail(s, src, err, errlen, "change key");
out:
    sqlite3_finalize(st);
    return rc;
}

/* The state of one revocation key now: any source counts (ours or an imported CRL's), ours first. */
static int rev_state(struct sq *s, sqlite3_stmt *q, const uint8_t *hash, const uint8_t *serial, size_t len,
                     struct pol_delta *d, char *err, size_t errlen)
{
    sqlite3_bind_blob(q, 1, hash, POL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(q, 2, serial, (int)len, SQLITE_STATIC);
    int src = sqlite3_step(q);
    int revoked = src == SQLITE_ROW, reason = revoked ? sqlite3_column_int(q, 0) : 0;
    sqlite3_reset(q);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return sq_fail(s, src, err, errlen, "revocation state");
    int rc = pol_delta_add_rev(d, hash, serial, len, revoked, reason);
    return rc == 0 ? 0 : pol_errf(err, errlen, rc, "out of memory");
}

static int allow_state(struct sq *s, sqlite3_stmt *q, const char *list, const char *match, const char *value,
                       struct pol_delta *d, char *err, size_t errlen)
{
    sqlite3_bind_text(q, 1, list, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, match, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, value, -1, SQLITE_STATIC);
    int src = sqlite3_step(q);
    int present = src == SQLITE_ROW;
    int64_t id = present ? sqlite3_column_int64(q, 0) : 0, exp = present ? sqlite3_column_int64(q, 1) : 0;
    sqlite3_reset(q);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return sq_fail(s, src, err, errlen, "allowlist state");
    int rc = pol_delta_add_allow(d, list, match, value, present, id, exp);
    /* A value another version wrote that this one cannot read: read it all (the builder skips it). */
    return rc == POL_E_ARG ? 1 : rc == 0 ? 0 : pol_errf(err, errlen, rc, "out of memory");
}

int sq_delta(struct pol_store *base, uint64_t since, size_t max, struct pol_delta *d, uint64_t *gen, int *full,
             char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *g = NULL, *c = NULL, *rq = NULL, *aq = NULL;
    int rc = 0, src;
    size_t n = 0;

    *full = 1;
    POL_TRY(sq_exec(s, "BEGIN", err, errlen));
    POL_TRY(sq_prep(s, "SELECT value FROM meta WHERE key = 'generation'", &g, err, errlen));
    if ((src = sqlite3_step(g)) != SQLITE_ROW) {
        rc = src == SQLITE_DONE ? pol_errf(err, errlen, POL_E_SCHEMA, "policy store: no generation row")
                                : sq_fail(s, src, err, errlen, "generation");
        goto out;
    }
    *gen = (uint64_t)sqlite3_column_int64(g, 0);
    if (*gen < since)
        goto out; /* the store went back (replaced by an older copy): read it all */
    if (*gen == since) {
        *full = 0;
        goto out;
    }
    /* Every generation past since must be a change-log row with a key, or one that changes nothing a
     * snapshot holds (an issued certificate: column 5). */
    POL_TRY(sq_prep(s, "SELECT key_issuer, key_serial, key_list, key_match, key_value, action = 'cert-issue' FROM changes "
                       "WHERE generation > ? AND generation <= ? ORDER BY generation", &c, err, errlen));
    POL_TRY(sq_prep(s, "SELECT r.reason FROM revocations r JOIN issuers i ON i.id = r.issuer_id "
                       "WHERE i.name_hash = ? AND r.serial = ? ORDER BY r.source LIMIT 1", &rq, err, errlen));
    POL_TRY(sq_prep(s, "SELECT id, expires_at FROM allowlist WHERE list = ? AND match = ? AND value = ?", &aq, err,
                    errlen));
    sqlite3_bind_int64(c, 1, (sqlite3_int64)since);
    sqlite3_bind_int64(c, 2, (sqlite3_int64)*gen);
    while ((src = sqlite3_step(c)) == SQLITE_ROW) {
        if (++n > max)
            goto out;
        const void *hash = sqlite3_column_blob(c, 0), *serial = sqlite3_column_blob(c, 1);
        int hlen = sqlite3_column_bytes(c, 0), slen = sqlite3_column_bytes(c, 1);
        const char *list = (const char *)sqlite3_column_text(c, 2), *match = (const char *)sqlite3_column_text(c, 3);
        const char *value = (const char *)sqlite3_column_text(c, 4);
        if (sqlite3_column_int(c, 5) == 1) {
            continue;
        } else if (hash != NULL && serial != NULL && hlen == POL_HASH_LEN && slen > 0 && slen <= POL_SERIAL_MAX) {
            POL_TRY(rev_state(s, rq, hash, serial, (size_t)slen, d, err, errlen));
        } else if (list != NULL && match != NULL && value != NULL) {
            if ((rc = allow_state(s, aq, list, match, value, d, err, errlen)) != 0) {
                if (rc == 1)
                    rc = 0;
                goto out;
            }
        } else {
            goto out; /* a change without a key */
        }
    }
    if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "change log");
        goto out;
    }
    /* Generations without a change-log row cannot be told apart from lost ones: read it all. */
    if (n == *gen - since)
        *full = 0;
out:
    sqlite3_finalize(g);
    sqlite3_finalize(c);
    sqlite3_finalize(rq);
    sqlite3_finalize(aq);
    sq_rollback(s);
    return rc;
}
