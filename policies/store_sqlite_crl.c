/* store_sqlite_crl.c - imported CRLs in the SQLite store: import (replacing the CA's previous CRL
 * and what it listed), named imports with the CA certificate kept (the admin API's /v1/crls/{name}),
 * removal, listing. Changes follow store_sqlite_ops.c's pattern: one IMMEDIATE transaction, the audit
 * record first, its before and after last, sealed at COMMIT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/store_sqlite_int.h"

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

/* A stored or new CRL's state for the audit record. */
static int crl_state(const char *name, const char *issuer, const uint8_t *number, size_t number_len,
                     time_t this_update, time_t next_update, long long entries, const uint8_t *sha256, char **out)
{
    struct pol_jbuf b = { 0 };
    pol_jbuf_open(&b);
    pol_jbuf_str(&b, "name", name);
    pol_jbuf_str(&b, "issuer", issuer);
    pol_jbuf_hex(&b, "crl_number", number_len > 0 ? number : NULL, number_len);
    pol_jbuf_time(&b, "this_update", this_update);
    pol_jbuf_time(&b, "next_update", next_update);
    pol_jbuf_int(&b, "entries", entries);
    pol_jbuf_hex(&b, "sha256", sha256, sha256 ? POL_HASH_LEN : 0);
    pol_jbuf_close(&b);
    int rc = pol_jbuf_done(&b);
    *out = rc == 0 ? b.p : NULL;
    return rc;
}

/* A name belongs to one CA: refuse it when another CA's CRL holds it. */
static int name_free_for(struct sq *s, const char *name, int64_t issuer, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    POL_TRY(sq_prep(s, "SELECT i.name_text FROM crls c JOIN issuers i ON i.id = c.issuer_id "
                       "WHERE c.name = ? AND c.issuer_id <> ?", &st, err, errlen));
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, issuer);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        rc = pol_errf(err, errlen, POL_E_EXISTS, "the name \"%s\" belongs to the CRL of another CA (%s)", name,
                      (const char *)sqlite3_column_text(st, 0));
    else if (src != SQLITE_DONE)
        rc = sq_fail(s, src, err, errlen, "crl name lookup");
out:
    sqlite3_finalize(st);
    st = NULL;
    return rc;
}

/* The same CRL again under a name (or with a CA certificate) it did not have: record just that. */
static int crl_rename(struct sq *s, int64_t crl_id, const char *old_name, const char *name, const uint8_t *ca_der,
                      size_t ca_len, const struct pol_actor *who, time_t now, uint64_t *gen, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    struct pol_jbuf before = { 0 }, after = { 0 };
    char target[160];
    int64_t change = 0;
    int rc = 0;

    snprintf(target, sizeof(target), "crl=%lld name=%s", (long long)crl_id, name);
    POL_TRY(sq_change(s, who, now, "crl-name", target, gen, &change, err, errlen));
    POL_TRY(sq_prep(s, "UPDATE crls SET name = ?, ca_der = ? WHERE id = ?", &st, err, errlen));
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, ca_der, (int)ca_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, crl_id);
    POL_TRY(sq_step_done(s, st, err, errlen, "crl name"));
    pol_jbuf_open(&before);
    pol_jbuf_str(&before, "name", old_name);
    pol_jbuf_close(&before);
    pol_jbuf_open(&after);
    pol_jbuf_str(&after, "name", name);
    pol_jbuf_close(&after);
    POL_TRY(pol_jbuf_done(&before));
    POL_TRY(pol_jbuf_done(&after));
    POL_TRY(sq_audit_state(s, before.p, after.p, err, errlen));
    rc = sq_commit(s, *gen, err, errlen);
out:
    sqlite3_finalize(st);
    st = NULL;
    pol_jbuf_free(&before);
    pol_jbuf_free(&after);
    return rc;
}

int sq_crl_import(struct pol_store *base, const struct pol_crl *crl, const char *name, const uint8_t *ca_der,
                  size_t ca_len, const struct pol_actor *who, time_t now, int *unchanged, uint64_t *gen, char *err,
                  size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    size_t *ord = NULL;
    int64_t issuer = 0, change = 0, crl_id = 0;
    char target[800], num[64] = "none", *before = NULL, *after = NULL, *old_name = NULL;
    int rc = 0, src, same_ca = 0;

    *unchanged = 0;
    if (crl->number != NULL)
        pol_hex(crl->number, crl->number_len, num, sizeof(num));
    snprintf(target, sizeof(target), "issuer=%s crl_number=%s entries=%zu%s%s", crl->issuer_text, num, crl->nentries,
             name ? " name=" : "", name ? name : "");
    POL_TRY(sq_begin(s, err, errlen));
    POL_TRY(sq_issuer_id(s, crl->issuer_hash, crl->issuer_der, crl->issuer_der_len, crl->issuer_text, &issuer, err, errlen));
    POL_TRY(sq_prep(s, "SELECT c.id, c.crl_number, c.this_update, c.sha256, c.name, c.next_update, c.entries, c.ca_der, "
                       "i.name_text FROM crls c JOIN issuers i ON i.id = c.issuer_id WHERE c.issuer_id = ?",
                    &st, err, errlen));
    sqlite3_bind_int64(st, 1, issuer);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        crl_id = sqlite3_column_int64(st, 0);
        if (sqlite3_column_type(st, 4) != SQLITE_NULL &&
            (old_name = strdup((const char *)sqlite3_column_text(st, 4))) == NULL) {
            rc = pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
            goto out;
        }
        same_ca = ca_der != NULL && (size_t)sqlite3_column_bytes(st, 7) == ca_len &&
                  memcmp(sqlite3_column_blob(st, 7), ca_der, ca_len) == 0;
        if (name != NULL && old_name != NULL && strcmp(old_name, name) != 0) {
            rc = pol_errf(err, errlen, POL_E_EXISTS, "this CA's CRL is stored under the name \"%s\", not \"%s\"",
                          old_name, name);
            goto out;
        }
        POL_TRY(check_newer(crl, st, unchanged, err, errlen));
        const uint8_t *onum = sqlite3_column_blob(st, 1);
        POL_TRY(crl_state(old_name, (const char *)sqlite3_column_text(st, 8), onum,
                          onum ? (size_t)sqlite3_column_bytes(st, 1) : 0, (time_t)sqlite3_column_int64(st, 2),
                          (time_t)sqlite3_column_int64(st, 5), sqlite3_column_int64(st, 6),
                          sqlite3_column_bytes(st, 3) == POL_HASH_LEN ? sqlite3_column_blob(st, 3) : NULL, &before));
    } else if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, err, errlen, "crl lookup");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (name != NULL)
        POL_TRY(name_free_for(s, name, issuer, err, errlen));
    if (*unchanged) {
        if (name != NULL && (old_name == NULL || !same_ca)) {
            rc = crl_rename(s, crl_id, old_name, name, ca_der, ca_len, who, now, gen, err, errlen);
            goto out;
        }
        /* Nothing to write: the generation stays as it is. */
        sq_rollback(s);
        rc = base->ops->generation(base, gen);
        goto out;
    }
    POL_TRY(sq_change(s, who, now, "crl-import", target, gen, &change, err, errlen));
    /* An unnamed import (the CLI) keeps the name and CA certificate a named one recorded. */
    if (crl_id != 0) {
        POL_TRY(sq_prep(s, "UPDATE crls SET crl_number = ?, this_update = ?, next_update = ?, sha256 = ?, entries = ?, "
                           "imported_at = ?, change_id = ?, name = coalesce(?9, name), ca_der = coalesce(?10, ca_der) "
                           "WHERE id = ?8", &st, err, errlen));
        sqlite3_bind_int64(st, 8, crl_id);
    } else {
        POL_TRY(sq_prep(s, "INSERT INTO crls(crl_number, this_update, next_update, sha256, entries, imported_at, "
                           "change_id, issuer_id, name, ca_der) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &st, err, errlen));
        sqlite3_bind_int64(st, 8, issuer);
    }
    if (name != NULL) {
        sqlite3_bind_text(st, 9, name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 10, ca_der, (int)ca_len, SQLITE_STATIC);
    }
    if (crl->number != NULL)
        sqlite3_bind_blob(st, 1, crl->number, (int)crl->number_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)crl->this_update);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)crl->next_update);
    sqlite3_bind_blob(st, 4, crl->sha256, POL_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)crl->nentries);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)now);
    sqlite3_bind_int64(st, 7, change);
    POL_TRY(sq_step_done(s, st, err, errlen, "crl row"));
    if (crl_id == 0)
        crl_id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    st = NULL;
    /* The new CRL replaces what the old one listed: a hold the CA lifted disappears here too. */
    POL_TRY(sq_prep(s, "DELETE FROM revocations WHERE issuer_id = ? AND source = ?", &st, err, errlen));
    sqlite3_bind_int64(st, 1, issuer);
    sqlite3_bind_int64(st, 2, crl_id);
    POL_TRY(sq_step_done(s, st, err, errlen, "crl entries delete"));
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
        POL_TRY(sq_step_done(s, st, err, errlen, "crl entry insert"));
    }
    sqlite3_finalize(st);
    st = NULL;
    POL_TRY(crl_state(name ? name : old_name, crl->issuer_text, crl->number, crl->number ? crl->number_len : 0,
                      crl->this_update, crl->next_update, (long long)crl->nentries, crl->sha256, &after));
    POL_TRY(sq_audit_state(s, before, after, err, errlen));
    rc = sq_commit(s, *gen, err, errlen);
out:
    sqlite3_finalize(st);
    st = NULL;
    free(ord);
    ord = NULL;
    free(before);
    before = NULL;
    free(after);
    after = NULL;
    free(old_name);
    old_name = NULL;
    sq_rollback(s);
    return rc;
}

int sq_crl_remove(struct pol_store *base, const char *name, int64_t id, const struct pol_actor *who, time_t now,
                  uint64_t *gen, char *err, size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t change = 0, crl_id = 0, issuer = 0;
    char target[800], *before = NULL;
    int rc = 0, src;

    POL_TRY(sq_begin(s, err, errlen));
    POL_TRY(sq_prep(s, name != NULL
                       ? "SELECT c.id, c.issuer_id, i.name_text, c.crl_number, c.this_update, c.next_update, c.entries, "
                         "c.sha256, c.name FROM crls c JOIN issuers i ON i.id = c.issuer_id WHERE c.name = ?1"
                       : "SELECT c.id, c.issuer_id, i.name_text, c.crl_number, c.this_update, c.next_update, c.entries, "
                         "c.sha256, c.name FROM crls c JOIN issuers i ON i.id = c.issuer_id WHERE c.id = ?2",
                    &st, err, errlen));
    if (name != NULL)
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 2, id);
    src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        if (name != NULL)
            rc = pol_errf(err, errlen, POL_E_NOT_FOUND, "no CRL named \"%s\"", name);
        else
            rc = pol_errf(err, errlen, POL_E_NOT_FOUND, "no CRL with id %lld", (long long)id);
        goto out;
    }
    if (src != SQLITE_ROW) {
        rc = sq_fail(s, src, err, errlen, "crl lookup");
        goto out;
    }
    crl_id = sqlite3_column_int64(st, 0);
    issuer = sqlite3_column_int64(st, 1);
    const char *itext = (const char *)sqlite3_column_text(st, 2), *cname = (const char *)sqlite3_column_text(st, 8);
    const uint8_t *num = sqlite3_column_blob(st, 3);
    snprintf(target, sizeof(target), "crl=%lld issuer=%s%s%s", (long long)crl_id, itext ? itext : "",
             cname ? " name=" : "", cname ? cname : "");
    POL_TRY(crl_state(cname, itext, num, num ? (size_t)sqlite3_column_bytes(st, 3) : 0,
                      (time_t)sqlite3_column_int64(st, 4), (time_t)sqlite3_column_int64(st, 5),
                      sqlite3_column_int64(st, 6),
                      sqlite3_column_bytes(st, 7) == POL_HASH_LEN ? sqlite3_column_blob(st, 7) : NULL, &before));
    sqlite3_finalize(st);
    st = NULL;
    POL_TRY(sq_change(s, who, now, "crl-remove", target, gen, &change, err, errlen));
    POL_TRY(sq_prep(s, "DELETE FROM revocations WHERE issuer_id = ? AND source = ?", &st, err, errlen));
    sqlite3_bind_int64(st, 1, issuer);
    sqlite3_bind_int64(st, 2, crl_id);
    POL_TRY(sq_step_done(s, st, err, errlen, "crl entries delete"));
    sqlite3_finalize(st);
    st = NULL;
    POL_TRY(sq_prep(s, "DELETE FROM crls WHERE id = ?", &st, err, errlen));
    sqlite3_bind_int64(st, 1, crl_id);
    POL_TRY(sq_step_done(s, st, err, errlen, "crl delete"));
    sqlite3_finalize(st);
    st = NULL;
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

int sq_crls_each(struct pol_store *base, int (*fn)(void *, const struct pol_crl_row *), void *arg, char *err,
                 size_t errlen)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    POL_TRY(sq_prep(s, "SELECT c.id, i.name_text, c.crl_number, c.this_update, c.next_update, c.imported_at, c.entries, "
                       "c.name, i.name_hash, c.ca_der FROM crls c JOIN issuers i ON i.id = c.issuer_id ORDER BY c.id",
                    &st, err, errlen));
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
        row.name = (const char *)sqlite3_column_text(st, 7);
        row.issuer_hash = sqlite3_column_bytes(st, 8) == POL_HASH_LEN ? sqlite3_column_blob(st, 8) : NULL;
        row.ca_der = sqlite3_column_blob(st, 9);
        row.ca_len = row.ca_der ? (size_t)sqlite3_column_bytes(st, 9) : 0;
        if (row.issuer_hash == NULL)
            continue;
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
