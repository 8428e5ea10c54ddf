/* store_sqlite.c - the embedded store: one SQLite file in WAL mode with synchronous=FULL, so that
 * a commit is on disk (the WAL fsynced) before a change is acknowledged, readers never block the
 * writer, and a CLI in another process can write while the gateway runs.
 *
 * Schema (version 4; migrations in store_schema.c):
 *   meta(key, value)                 'generation': bumped by every change, in the change's transaction
 *   issuers(id, name_hash, name_der, name_text)          one row per issuer Name (SHA-256 of the DER)
 *   revocations(issuer_id, serial, source, reason, revoked_at, change_id)   WITHOUT ROWID, keyed by
 *                                    (issuer_id, serial, source); source 0 = made here, else crls.id
 *   crls(id, issuer_id, crl_number, this_update, next_update, sha256, entries, imported_at, change_id,
 *        name, ca_der)               name and CA certificate: the admin API's named imports (v3)
 *   allowlist(id, list, match, value, expires_at, actor, comment, created_at)   UNIQUE(list, match, value)
 *   changes(id, at, generation, actor, action, target, comment, key_issuer, key_serial, key_list,
 *           key_match, key_value, before_json, after_json, request_id, source, prev_hash, hash)
 *                                    the change log and audit trail: one hash-chained record per change
 *   issued(id, issuer_hash, serial, issuer, subject, not_before, not_after, der, actor, comment,
 *          request_id, created_at, change_id)   certificates our CA issued (v4), UNIQUE(issuer_hash, serial)
 * Revocation rows are small on purpose (an issuer id, not its hash; who and why live in `changes`):
 * a snapshot build reads all of them.
 *
 * Noticing other processes' changes cheaply: PRAGMA data_version changes when another connection
 * commits; only then is the generation re-read.
 */
#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policies/store_sqlite_int.h"

#define BUSY_TIMEOUT_MS 5000
#define SQ_CACHE_KIB "512"      /* PRAGMA cache_size, KiB */

static const struct pol_store_ops sqlite_ops;

int sq_fail(struct sq *s, int src, char *err, size_t errlen, const char *what)
{
    int code = POL_E_STORE;
    int prim = src & 0xff;
    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
        code = POL_E_BUSY;
    else if (prim == SQLITE_NOMEM)
        code = POL_E_NOMEM;
    else if (prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB)
        code = POL_E_SCHEMA;
    return pol_errf(err, errlen, code, "policy store: %s: %s", what, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src));
}

int sq_exec(struct sq *s, const char *sql, char *err, size_t errlen)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_fail(s, rc, err, errlen, sql);
}

int sq_prep(struct sq *s, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? 0 : sq_fail(s, rc, err, errlen, "prepare");
}

/* BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that upgrades later can
 * fail with SQLITE_BUSY without waiting, and then the caller would have to retry. */
int sq_begin(struct sq *s, char *err, size_t errlen)
{
    s->audit_change = 0;
    return sq_exec(s, "BEGIN IMMEDIATE", err, errlen);
}

void sq_rollback(struct sq *s)
{
    s->audit_change = 0;
    if (!sqlite3_get_autocommit(s->db))
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* After a COMMIT that failed on I/O. When the WAL sync is what failed, SQLite had written the
 * transaction's frames, commit marker included, then left them out of the WAL index and rolled back:
 * this connection no longer sees them, but they are still in the -wal file with valid checksums, and
 * the next open that rebuilds the index from the file (after a crash, or a close whose checkpoint
 * failed too) would apply a change we refused with "nothing was applied". A transaction that changes
 * nothing in effect (a row added and removed) writes its frame where they begin, which breaks their
 * checksum chain: recovery stops before them. Its own sync may fail as well; replayed, it changes
 * nothing. When the writes themselves fail (a full or read-only disk) it fails too, harmlessly: then
 * no commit marker was written. */
static void sq_wal_bury(struct sq *s)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE; INSERT INTO meta(key, value) VALUES ('wal-bury', 0); "
                            "DELETE FROM meta WHERE key = 'wal-bury'; COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        sq_rollback(s);
}

int sq_commit(struct sq *s, uint64_t gen, char *err, size_t errlen)
{
    /* Sealing here rather than in each change: no change can commit without its record on the chain. */
    int rc = s->audit_change != 0 ? sq_audit_seal(s, err, errlen) : 0;
    if (rc == 0)
        rc = sq_exec(s, "COMMIT", err, errlen);
    s->audit_change = 0;
    if (rc != 0) {
        int prim = sqlite3_extended_errcode(s->db) & 0xff;
        sq_rollback(s);
        if (prim == SQLITE_IOERR || prim == SQLITE_FULL)
            sq_wal_bury(s);
        return rc;
    }
    /* Our own commits do not move data_version; remember the generation we made. */
    s->gen_cache = gen;
    return 0;
}

/* Bumps the generation and writes the change's audit record, inside the caller's transaction. Its
 * before and after (sq_audit_state) and its place on the hash chain (sq_audit_seal) come later in
 * the same transaction: they are known only once the change is made. */
int sq_change(struct sq *s, const struct pol_actor *who, time_t now, const char *action, const char *target,
              uint64_t *gen, int64_t *change_id, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    POL_TRY(sq_prep(s, "UPDATE meta SET value = value + 1 WHERE key = 'generation' RETURNING value", &st, err, errlen));
    if ((src = sqlite3_step(st)) != SQLITE_ROW) {
        rc = src == SQLITE_DONE ? pol_errf(err, errlen, POL_E_SCHEMA, "policy store: no generation row")
                                : sq_fail(s, src, err, errlen, "generation");
        goto out;
    }
    *gen = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    POL_TRY(sq_prep(s, "INSERT INTO changes(at, generation, actor, action, target, comment, request_id, source) "
                       "VALUES (?,?,?,?,?,?,?,?)", &st, err, errlen));
    sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)*gen);
    sqlite3_bind_text(st, 3, who->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, target, -1, SQLITE_STATIC);
    if (who->comment != NULL)
        sqlite3_bind_text(st, 6, who->comment, -1, SQLITE_STATIC);
    if (who->request_id != NULL)
        sqlite3_bind_text(st, 7, who->request_id, -1, SQLITE_STATIC);
    if (who->source != NULL)
        sqlite3_bind_text(st, 8, who->source, -1, SQLITE_STATIC);
    if ((src = sqlite3_step(st)) != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "change log");
        goto out;
    }
    *change_id = sqlite3_last_insert_rowid(s->db);
    s->audit_change = *change_id;
out:
    sqlite3_finalize(st);
    st = NULL;
    return rc;
}

/* The id of an issuer, adding it if new. */
int sq_issuer_id(struct sq *s, const uint8_t hash[POL_HASH_LEN], const uint8_t *der, size_t der_len,
                 const char *text, int64_t *id, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    POL_TRY(sq_prep(s,
                    "INSERT INTO issuers(name_hash, name_der, name_text) VALUES (?1, ?2, ?3) "
                    "ON CONFLICT(name_hash) DO UPDATE SET name_text = ?3 WHERE name_text = '' AND ?3 <> '' "
                    "RETURNING id",
                    &st, err, errlen));
    sqlite3_bind_blob(st, 1, hash, POL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, der, (int)der_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, text ? text : "", -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        goto out;
    }
    if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "issuer");
        goto out;
    }
    /* The conflict clause's WHERE was false: the row exists unchanged and RETURNING gave nothing. */
    sqlite3_finalize(st);
    st = NULL;
    POL_TRY(sq_prep(s, "SELECT id FROM issuers WHERE name_hash = ?", &st, err, errlen));
    sqlite3_bind_blob(st, 1, hash, POL_HASH_LEN, SQLITE_STATIC);
    if ((src = sqlite3_step(st)) != SQLITE_ROW) {
        rc = sq_fail(s, src, err, errlen, "issuer lookup");
        goto out;
    }
    *id = sqlite3_column_int64(st, 0);
out:
    sqlite3_finalize(st);
    st = NULL;
    return rc;
}

/* ---------------------------------------------------------------- open, close, generation */

static void sqlite_close(struct pol_store *base)
{
    struct sq *s = (struct sq *)base;
    if (s->db != NULL)
        sqlite3_close_v2(s->db);
    s->db = NULL;
    pol_store_base_fini(&s->base);
    free(s);
}

static int sqlite_generation(struct pol_store *base, uint64_t *gen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    POL_TRY(sq_prep(s, "PRAGMA data_version", &st, NULL, 0));
    if ((src = sqlite3_step(st)) != SQLITE_ROW) {
        rc = sq_fail(s, src, NULL, 0, "data_version");
        goto out;
    }
    int64_t dv = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (!s->dv_valid || dv != s->data_version) {
        POL_TRY(sq_prep(s, "SELECT value FROM meta WHERE key = 'generation'", &st, NULL, 0));
        if ((src = sqlite3_step(st)) != SQLITE_ROW) {
            rc = src == SQLITE_DONE ? POL_E_SCHEMA : sq_fail(s, src, NULL, 0, "generation");
            goto out;
        }
        s->gen_cache = (uint64_t)sqlite3_column_int64(st, 0);
        s->data_version = dv;
        s->dv_valid = 1;
    }
    *gen = s->gen_cache;
out:
    sqlite3_finalize(st);
    st = NULL;
    return rc;
}

static int sqlite_schema_version(struct pol_store *base, int *version)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = 0;
    POL_TRY(sq_prep(s, "SELECT max(version) FROM schema_version", &st, NULL, 0));
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = POL_E_SCHEMA;
        goto out;
    }
    *version = sqlite3_column_int(st, 0);
out:
    sqlite3_finalize(st);
    st = NULL;
    return rc;
}

int pol_store_open_sqlite(const char *path, struct pol_store **out, char *err, size_t errlen)
{
    struct sq *s = NULL;
    int rc = 0, src;

    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return pol_errf(err, errlen, POL_E_ARG, "no store path");
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
    if ((rc = pol_store_base_init(&s->base, &sqlite_ops)) != 0) {
        free(s);
        s = NULL;
        return pol_errf(err, errlen, rc, "out of memory");
    }
    /* Created here rather than by SQLite so that a new store is 0640 whatever the umask; SQLite
     * gives its -wal and -shm files the main file's mode. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = pol_errf(err, errlen, POL_E_STORE, "policy store %s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    close(fd);
    src = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = sq_fail(s, src, err, errlen, path);
        goto out;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    /* The file may come from anywhere (a backup, a copy): no schema-embedded code, no writes that
     * could corrupt it through the SQL language (SQLite's "defensive" mode). */
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    POL_TRY(sq_exec(s, "PRAGMA journal_mode=WAL", err, errlen));
    POL_TRY(sq_exec(s, "PRAGMA synchronous=FULL", err, errlen));
    /* A small page cache (SQLite's default is 2 MiB per connection): a rebuild reads the store once
     * from start to end and a change touches a few pages of each index, so the kernel's page cache
     * serves as well, and a long-running gateway's memory does not creep up by the cache's size as
     * the store grows (the soak, docs/security.md). */
    POL_TRY(sq_exec(s, "PRAGMA cache_size=-" SQ_CACHE_KIB, err, errlen));
    char jm[16] = "";
    sqlite3_stmt *st = NULL;
    if (sq_prep(s, "PRAGMA journal_mode", &st, err, errlen) == 0 && sqlite3_step(st) == SQLITE_ROW)
        snprintf(jm, sizeof(jm), "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    st = NULL;
    if (strcmp(jm, "wal") != 0) {
        rc = pol_errf(err, errlen, POL_E_STORE, "policy store %s: cannot switch to WAL mode (journal_mode %s)", path, jm);
        goto out;
    }
    POL_TRY(sq_migrate(s, err, errlen));
    *out = &s->base;
    s = NULL;
out:
    if (s != NULL)
        sqlite_close(&s->base);
    s = NULL;
    return rc;
}

/* ---------------------------------------------------------------- snapshot load */

static int sqlite_load(struct pol_store *base, struct pol_snapshot *b, uint64_t *gen, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t *ids = NULL;
    size_t nids = 0, cap = 0, last = 0;
    int rc = 0, src;

    /* One read transaction: every table as of one commit, whatever writers do meanwhile. */
    POL_TRY(sq_exec(s, "BEGIN", err, errlen));
    POL_TRY(sq_prep(s, "SELECT value FROM meta WHERE key = 'generation'", &st, err, errlen));
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = pol_errf(err, errlen, POL_E_SCHEMA, "policy store: no generation row");
        goto out;
    }
    *gen = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;

    POL_TRY(sq_prep(s, "SELECT id, name_hash FROM issuers ORDER BY id", &st, err, errlen));
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        size_t idx;
        if (sqlite3_column_bytes(st, 1) != POL_HASH_LEN) {
            rc = pol_errf(err, errlen, POL_E_SCHEMA, "policy store: issuer %lld is corrupt",
                          (long long)sqlite3_column_int64(st, 0));
            goto out;
        }
        if (nids == cap) {
            size_t n = cap ? cap * 2 : 16;
            int64_t *q = realloc(ids, n * sizeof(*q));
            if (q == NULL) {
                rc = pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
                goto out;
            }
            ids = q;
            cap = n;
        }
        ids[nids++] = sqlite3_column_int64(st, 0);
        POL_TRY(pol_builder_issuer(b, sqlite3_column_blob(st, 1), &idx));
    }
    if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "issuers");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;

/* issuers.id -> builder index (ids ascending): rows come grouped by issuer, so mostly the last one. */
#define ISSUER_INDEX(id, out_ok)                                                                  \
    do {                                                                                          \
        int64_t want_ = (id);                                                                     \
        out_ok = 0;                                                                               \
        if (last < nids && ids[last] == want_) {                                                  \
            out_ok = 1;                                                                           \
        } else {                                                                                  \
            size_t lo_ = 0, hi_ = nids;                                                           \
            while (lo_ < hi_) {                                                                   \
                size_t mid_ = lo_ + (hi_ - lo_) / 2;                                              \
                if (ids[mid_] < want_)                                                            \
                    lo_ = mid_ + 1;                                                               \
                else                                                                              \
                    hi_ = mid_;                                                                   \
            }                                                                                     \
            if (lo_ < nids && ids[lo_] == want_) {                                                \
                last = lo_;                                                                       \
                out_ok = 1;                                                                       \
            }                                                                                     \
        }                                                                                         \
    } while (0)

    int ok;
    POL_TRY(sq_prep(s, "SELECT issuer_id, this_update, next_update FROM crls", &st, err, errlen));
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        ISSUER_INDEX(sqlite3_column_int64(st, 0), ok);
        if (!ok) {
            rc = pol_errf(err, errlen, POL_E_SCHEMA, "policy store: a CRL names an unknown issuer");
            goto out;
        }
        POL_TRY(pol_builder_crl(b, last, (time_t)sqlite3_column_int64(st, 1), (time_t)sqlite3_column_int64(st, 2)));
    }
    if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "crls");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;

    POL_TRY(sq_prep(s, "SELECT issuer_id, serial, reason, revoked_at FROM revocations", &st, err, errlen));
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        ISSUER_INDEX(sqlite3_column_int64(st, 0), ok);
        const void *serial = sqlite3_column_blob(st, 1);
        int slen = sqlite3_column_bytes(st, 1);
        /* A revocation row we cannot read must not be skipped: that would un-revoke it. */
        if (!ok || serial == NULL || slen <= 0 || slen > POL_SERIAL_MAX ||
            pol_builder_revoked(b, last, serial, (size_t)slen, sqlite3_column_int(st, 2),
                                (int64_t)sqlite3_column_int64(st, 3)) != 0) {
            rc = pol_errf(err, errlen, POL_E_SCHEMA, "policy store: a revocation row is corrupt");
            goto out;
        }
    }
    if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "revocations");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
#undef ISSUER_INDEX

    POL_TRY(sq_prep(s, "SELECT id, list, match, value, expires_at FROM allowlist ORDER BY list, id", &st, err, errlen));
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        POL_TRY(pol_builder_allow(b, (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
                                  (const char *)sqlite3_column_text(st, 3), sqlite3_column_int64(st, 4),
                                  sqlite3_column_int64(st, 0)));
    }
    if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "allowlist");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    POL_TRY(sq_exec(s, "COMMIT", err, errlen));
out:
    sqlite3_finalize(st);
    st = NULL;
    sq_rollback(s);
    free(ids);
    ids = NULL;
    return rc;
}

static const struct pol_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sqlite_close,
    .generation = sqlite_generation,
    .schema_version = sqlite_schema_version,
    .revoke = sq_revoke,
    .lift = sq_lift,
    .revocations_query = sq_revocations_query,
    .allow_add = sq_allow_add,
    .allow_remove = sq_allow_remove,
    .allow_query = sq_allow_query,
    .allow_lists = sq_allow_lists,
    .crl_import = sq_crl_import,
    .crl_remove = sq_crl_remove,
    .crls_each = sq_crls_each,
    .issued_add = sq_issued_add,
    .issued_query = sq_issued_query,
    .audit_each = sq_audit_each,
    .audit_verify = sq_audit_verify,
    .load = sqlite_load,
    .delta = sq_delta,
};
