/* store_schema.c - the SQLite store's schema as a list of migrations.
 *
 * schema_version holds the version the file is at. At open, every migration past it runs, in order,
 * in one IMMEDIATE transaction together with the version update: a crash or a failure leaves the
 * file at its old version, never half-migrated, and two processes opening a new file at once
 * serialize on the write lock (the second finds the work done). A file at a version newer than
 * this binary knows is refused rather than misread.
 *
 * To change the schema: append a migration; never edit one that has shipped.
 */
#include <stdio.h>

#include "policies/store_sqlite_int.h"

typedef int (*migration_fn)(struct sq *s, char *err, size_t errlen);

/* Version 1: the first schema (described in store_sqlite.c). */
static int migrate_1(struct sq *s, char *err, size_t errlen)
{
    static const char sql[] =
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
        "INSERT INTO meta(key, value) VALUES ('generation', 0);"
        "CREATE TABLE issuers("
        "  id INTEGER PRIMARY KEY,"
        "  name_hash BLOB NOT NULL UNIQUE,"      /* SHA-256 of the issuer Name DER */
        "  name_der BLOB NOT NULL,"
        "  name_text TEXT NOT NULL);"            /* RFC 4514, for people */
        "CREATE TABLE changes("
        "  id INTEGER PRIMARY KEY,"
        "  at INTEGER NOT NULL,"
        "  generation INTEGER NOT NULL,"
        "  actor TEXT NOT NULL,"
        "  action TEXT NOT NULL,"
        "  target TEXT NOT NULL,"
        "  comment TEXT);"
        "CREATE TABLE crls("
        "  id INTEGER PRIMARY KEY,"
        "  issuer_id INTEGER NOT NULL UNIQUE,"
        "  crl_number BLOB,"                     /* INTEGER content octets; NULL when absent */
        "  this_update INTEGER NOT NULL,"
        "  next_update INTEGER NOT NULL,"        /* 0 when absent */
        "  sha256 BLOB NOT NULL,"
        "  entries INTEGER NOT NULL,"
        "  imported_at INTEGER NOT NULL,"
        "  change_id INTEGER NOT NULL);"
        "CREATE TABLE revocations("
        "  issuer_id INTEGER NOT NULL,"
        "  serial BLOB NOT NULL,"                /* INTEGER content octets */
        "  source INTEGER NOT NULL,"             /* 0: made here; else crls.id */
        "  reason INTEGER NOT NULL,"             /* RFC 5280 5.3.1 */
        "  revoked_at INTEGER NOT NULL,"
        "  change_id INTEGER NOT NULL,"
        "  PRIMARY KEY (issuer_id, serial, source)) WITHOUT ROWID;"
        "CREATE TABLE allowlist("
        "  id INTEGER PRIMARY KEY,"
        "  list TEXT NOT NULL,"
        "  match TEXT NOT NULL,"
        "  value TEXT NOT NULL,"                 /* canonical (pol_allow_value_normalize) */
        "  expires_at INTEGER NOT NULL DEFAULT 0,"
        "  actor TEXT NOT NULL,"
        "  comment TEXT,"
        "  created_at INTEGER NOT NULL,"
        "  UNIQUE (list, match, value));";
    return sq_exec(s, sql, err, errlen);
}

/* Version 2: each single change names the key it touched (an issuer hash and a serial, or an
 * allowlist list, match and value), so that a running gateway can apply it to its snapshot as a small
 * overlay instead of reading the whole store again (pol_store_delta). Batches and CRL imports name
 * none: they take a full rebuild. */
static int migrate_2(struct sq *s, char *err, size_t errlen)
{
    static const char sql[] =
        "ALTER TABLE changes ADD COLUMN key_issuer BLOB;"      /* SHA-256 of the issuer Name DER */
        "ALTER TABLE changes ADD COLUMN key_serial BLOB;"
        "ALTER TABLE changes ADD COLUMN key_list TEXT;"
        "ALTER TABLE changes ADD COLUMN key_match TEXT;"
        "ALTER TABLE changes ADD COLUMN key_value TEXT;"
        "CREATE INDEX changes_generation ON changes(generation);";
    return sq_exec(s, sql, err, errlen);
}

/* Version 3: the change log becomes the audit trail. Each row gains the state before and after the
 * change (JSON texts), the request id and source address of who made it, and its place on a hash
 * chain (prev_hash, hash; policies/audit.c). Extending `changes` rather than adding a table keeps one
 * record per change, written first in the change's transaction as before, so the log and the audit
 * trail cannot disagree; the rows made before this version are chained here, in id order, so the
 * whole log is covered (their before/after/request_id/source stay NULL: not recorded then).
 * crls gains an operator-chosen name and the CA certificate it was verified with, for the admin
 * API's /v1/crls/{name} (a later CRL of that CA can then be imported by name alone). */
static int migrate_3(struct sq *s, char *err, size_t errlen)
{
    static const char sql[] =
        "ALTER TABLE changes ADD COLUMN before_json TEXT;"
        "ALTER TABLE changes ADD COLUMN after_json TEXT;"
        "ALTER TABLE changes ADD COLUMN request_id TEXT;"
        "ALTER TABLE changes ADD COLUMN source TEXT;"
        "ALTER TABLE changes ADD COLUMN prev_hash BLOB;"
        "ALTER TABLE changes ADD COLUMN hash BLOB;"
        "ALTER TABLE crls ADD COLUMN name TEXT;"
        "ALTER TABLE crls ADD COLUMN ca_der BLOB;"
        "CREATE UNIQUE INDEX crls_name ON crls(name);";
    int rc = sq_exec(s, sql, err, errlen);
    return rc != 0 ? rc : sq_audit_chain_all(s, err, errlen);
}

/* Version 4: the certificates our CA issued over the admin API (POST /v1/certificates), each with who
 * asked for it; the certificate itself is kept (DER) so that it can be fetched again and revoked by
 * certificate. Keyed like revocations (issuer name hash and serial octets) so that its revocation
 * state is one seek away. */
static int migrate_4(struct sq *s, char *err, size_t errlen)
{
    static const char sql[] =
        "CREATE TABLE issued("
        "  id INTEGER PRIMARY KEY,"
        "  issuer_hash BLOB NOT NULL,"           /* SHA-256 of the issuer Name DER */
        "  serial BLOB NOT NULL,"                /* INTEGER content octets */
        "  issuer TEXT NOT NULL,"                /* RFC 4514, for people */
        "  subject TEXT NOT NULL,"
        "  not_before INTEGER NOT NULL,"
        "  not_after INTEGER NOT NULL,"
        "  der BLOB NOT NULL,"
        "  actor TEXT NOT NULL,"
        "  comment TEXT,"
        "  request_id TEXT,"
        "  created_at INTEGER NOT NULL,"
        "  change_id INTEGER NOT NULL,"
        "  UNIQUE (issuer_hash, serial));"
        "CREATE INDEX issued_serial ON issued(serial);";
    return sq_exec(s, sql, err, errlen);
}

static const migration_fn migrations[] = { migrate_1, migrate_2, migrate_3, migrate_4 };
#define LATEST ((int)(sizeof(migrations) / sizeof(migrations[0])))

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == POL_SCHEMA_VERSION,
               "POL_SCHEMA_VERSION must be the number of migrations");

int sq_migrate(struct sq *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, version = 0;
    char sql[96];

    POL_TRY(sq_begin(s, err, errlen));
    POL_TRY(sq_exec(s, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)", err, errlen));
    POL_TRY(sq_prep(s, "SELECT max(version) FROM schema_version", &st, err, errlen));
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (version < 0 || version > LATEST) {
        rc = pol_errf(err, errlen, POL_E_SCHEMA,
                      "policy store: schema version %d is newer than this hsmgate knows (%d); upgrade hsmgate",
                      version, LATEST);
        goto out;
    }
    if (version == LATEST)
        goto out;
    for (int v = version; v < LATEST; v++) {
        if ((rc = migrations[v](s, err, errlen)) != 0) {
            char inner[256];
            snprintf(inner, sizeof(inner), "%s", err ? err : "");
            pol_errf(err, errlen, rc, "policy store: migration to version %d failed: %s", v + 1, inner);
            goto out;
        }
    }
    POL_TRY(sq_exec(s, "DELETE FROM schema_version", err, errlen));
    snprintf(sql, sizeof(sql), "INSERT INTO schema_version(version) VALUES (%d)", LATEST);
    POL_TRY(sq_exec(s, sql, err, errlen));
    rc = sq_exec(s, "COMMIT", err, errlen);
out:
    sqlite3_finalize(st);
    st = NULL;
    sq_rollback(s);
    return rc;
}
