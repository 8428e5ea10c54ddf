/* store.c - the store's public functions: check every input, serialize calls on a handle, and
 * hand over to the backend (store_int.h). Keeping validation here means a second backend cannot
 * forget a rule, and a backend never sees a value an operator typed unchecked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policies/store_int.h"

#define ACTOR_MAX 256
#define COMMENT_MAX 4096
#define REQUEST_ID_MAX 128
#define SOURCE_MAX 256
#define ISSUER_DER_MAX 65536
#define CA_DER_MAX (1u << 20)
#define AUDIT_CHUNK 5000        /* records verified per hold of the handle's lock */

int pol_store_base_init(struct pol_store *st, const struct pol_store_ops *ops)
{
    st->ops = ops;
    st->write_rc = 0;
    st->write_failing_since = 0;
    st->write_err[0] = '\0';
    return pthread_mutex_init(&st->lock, NULL) == 0 ? 0 : POL_E_NOMEM;
}

void pol_store_base_fini(struct pol_store *st)
{
    pthread_mutex_destroy(&st->lock);
}

void pol_store_close(struct pol_store *st)
{
    if (st != NULL)
        st->ops->close(st);
}

static int text_ok(const char *s, size_t max, int required)
{
    if (s == NULL)
        return !required;
    size_t n = strlen(s);
    if ((required && n == 0) || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
            return 0;
    return 1;
}

static int check_actor(const struct pol_actor *who, char *err, size_t errlen)
{
    if (who == NULL || !text_ok(who->actor, ACTOR_MAX, 1))
        return pol_errf(err, errlen, POL_E_ARG, "an actor (1-%d printable characters) is required", ACTOR_MAX);
    if (!text_ok(who->comment, COMMENT_MAX, 0))
        return pol_errf(err, errlen, POL_E_ARG, "the comment must be printable text of at most %d bytes", COMMENT_MAX);
    if (!text_ok(who->request_id, REQUEST_ID_MAX, 0))
        return pol_errf(err, errlen, POL_E_ARG, "the request id must be printable text of at most %d bytes",
                        REQUEST_ID_MAX);
    if (!text_ok(who->source, SOURCE_MAX, 0))
        return pol_errf(err, errlen, POL_E_ARG, "the source must be printable text of at most %d bytes", SOURCE_MAX);
    return 0;
}

static int check_target(const struct pol_revocation *r, char *err, size_t errlen)
{
    struct pol_der d;
    struct pol_tlv t;
    if (r == NULL || r->issuer_der == NULL || r->issuer_der_len == 0 || r->issuer_der_len > ISSUER_DER_MAX)
        return pol_errf(err, errlen, POL_E_ARG, "no issuer given");
    d.p = r->issuer_der;
    d.len = r->issuer_der_len;
    if (pol_der_expect(&d, POL_TAG_SEQUENCE, &t) != 0 || d.len != 0)
        return pol_errf(err, errlen, POL_E_ARG, "the issuer is not a DER Name");
    if (r->serial == NULL || r->serial_len == 0 || r->serial_len > POL_SERIAL_MAX)
        return pol_errf(err, errlen, POL_E_ARG, "the serial must be 1 to %d octets", POL_SERIAL_MAX);
    if (!text_ok(r->issuer_text, 4096, 0))
        return pol_errf(err, errlen, POL_E_ARG, "bad issuer text");
    return 0;
}

static int check_reason(int reason, char *err, size_t errlen)
{
    if (reason < 0 || reason > 10 || reason == 7 || reason == POL_REASON_REMOVE_FROM_CRL)
        return pol_errf(err, errlen, POL_E_ARG, "bad revocation reason %d (RFC 5280 5.3.1)", reason);
    return 0;
}

int pol_store_generation(struct pol_store *st, uint64_t *gen)
{
    if (st == NULL || gen == NULL)
        return POL_E_ARG;
    pthread_mutex_lock(&st->lock);
    int rc = st->ops->generation(st, gen);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* After a change, under st->lock: POL_E_STORE means the store did not take it (full, read-only, an
 * I/O error: the backend rolled back); success means it did. Other refusals say nothing of the disk. */
static void note_write_locked(struct pol_store *st, int rc, const char *err)
{
    if (rc == 0) {
        st->write_rc = 0;
        st->write_failing_since = 0;
        st->write_err[0] = '\0';
    } else if (rc == POL_E_STORE) {
        if (st->write_rc == 0)
            st->write_failing_since = time(NULL);
        st->write_rc = rc;
        snprintf(st->write_err, sizeof(st->write_err), "%s", err != NULL && err[0] != '\0' ? err : pol_strerror(rc));
    }
}

int pol_store_write_status(struct pol_store *st, time_t *since, char *err, size_t errlen)
{
    if (st == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store");
    pthread_mutex_lock(&st->lock);
    int rc = st->write_rc;
    if (since != NULL)
        *since = st->write_failing_since;
    if (rc != 0)
        pol_errf(err, errlen, rc, "%s", st->write_err);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int pol_store_schema_version(struct pol_store *st, int *version)
{
    if (st == NULL || version == NULL)
        return POL_E_ARG;
    pthread_mutex_lock(&st->lock);
    int rc = st->ops->schema_version(st, version);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static int revoke_common(struct pol_store *st, const struct pol_revocation *r, size_t n, enum pol_revoke_mode mode,
                         const struct pol_actor *who, size_t *applied, uint64_t *gen, char *err, size_t errlen)
{
    struct pol_revocation one;
    struct pol_revocation *copy = NULL;
    uint64_t g = 0;
    size_t done = 0;
    int rc = 0;
    time_t now = time(NULL);

    if (applied != NULL)
        *applied = 0;
    if (st == NULL || (r == NULL && n > 0))
        return pol_errf(err, errlen, POL_E_ARG, "no store or no revocation");
    POL_TRY(check_actor(who, err, errlen));
    for (size_t i = 0; i < n; i++) {
        if ((rc = check_target(&r[i], err, errlen)) != 0 || (rc = check_reason(r[i].reason, err, errlen)) != 0) {
            if (n > 1)
                pol_errf(err, errlen, rc, "revocation #%zu: %s", i + 1, pol_strerror(rc));
            goto out;
        }
    }
    if (n == 0)
        goto out;
    /* revoked_at 0 means now; backends only ever see a real time. */
    const struct pol_revocation *use = r;
    if (n == 1) {
        one = r[0];
        if (one.revoked_at == 0)
            one.revoked_at = now;
        use = &one;
    } else {
        int need = 0;
        for (size_t i = 0; i < n && !need; i++)
            need = r[i].revoked_at == 0;
        if (need) {
            copy = malloc(n * sizeof(*copy));
            if (copy == NULL) {
                rc = pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
                goto out;
            }
            memcpy(copy, r, n * sizeof(*copy));
            for (size_t i = 0; i < n; i++)
                if (copy[i].revoked_at == 0)
                    copy[i].revoked_at = now;
            use = copy;
        }
    }
    pthread_mutex_lock(&st->lock);
    rc = st->ops->revoke(st, use, n, mode, who, now, &done, &g, err, errlen);
    note_write_locked(st, rc, errlen > 0 ? err : NULL);
    pthread_mutex_unlock(&st->lock);
    if (rc == 0 && gen != NULL)
        *gen = g;
    if (rc == 0 && applied != NULL)
        *applied = done;
out:
    free(copy);
    copy = NULL;
    return rc;
}

int pol_store_revoke(struct pol_store *st, const struct pol_revocation *r, const struct pol_actor *who, uint64_t *gen,
                     char *err, size_t errlen)
{
    if (r == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no revocation");
    return revoke_common(st, r, 1, POL_REVOKE_ONE, who, NULL, gen, err, errlen);
}

int pol_store_revoke_batch(struct pol_store *st, const struct pol_revocation *r, size_t n, const struct pol_actor *who,
                           uint64_t *gen, char *err, size_t errlen)
{
    return revoke_common(st, r, n, POL_REVOKE_BATCH, who, NULL, gen, err, errlen);
}

int pol_store_revoke_batch_count(struct pol_store *st, const struct pol_revocation *r, size_t n,
                                 const struct pol_actor *who, size_t *applied, uint64_t *gen, char *err, size_t errlen)
{
    return revoke_common(st, r, n, POL_REVOKE_BATCH, who, applied, gen, err, errlen);
}

int pol_store_lift(struct pol_store *st, const struct pol_revocation *r, const struct pol_actor *who, uint64_t *gen,
                   char *err, size_t errlen)
{
    uint64_t g = 0;
    int rc;
    if (st == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store");
    if ((rc = check_actor(who, err, errlen)) != 0 || (rc = check_target(r, err, errlen)) != 0)
        return rc;
    pthread_mutex_lock(&st->lock);
    rc = st->ops->lift(st, r, who, time(NULL), &g, err, errlen);
    note_write_locked(st, rc, errlen > 0 ? err : NULL);
    pthread_mutex_unlock(&st->lock);
    if (rc == 0 && gen != NULL)
        *gen = g;
    return rc;
}

int pol_store_revocations_each(struct pol_store *st, int (*fn)(void *, const struct pol_revocation_row *), void *arg,
                               char *err, size_t errlen)
{
    if (st == NULL || fn == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store or no callback");
    struct pol_revocation_query all;
    char next[POL_CURSOR_MAX];
    memset(&all, 0, sizeof(all));
    pthread_mutex_lock(&st->lock);
    int rc = st->ops->revocations_query(st, &all, fn, arg, next, err, errlen);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int pol_store_revocations_query(struct pol_store *st, const struct pol_revocation_query *q,
                                int (*fn)(void *, const struct pol_revocation_row *), void *arg,
                                char next[POL_CURSOR_MAX], char *err, size_t errlen)
{
    if (next != NULL)
        next[0] = '\0';
    if (st == NULL || q == NULL || fn == NULL || next == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store, query, callback or cursor buffer");
    if (q->serial != NULL && (q->serial_len == 0 || q->serial_len > POL_SERIAL_MAX))
        return pol_errf(err, errlen, POL_E_ARG, "the serial must be 1 to %d octets", POL_SERIAL_MAX);
    pthread_mutex_lock(&st->lock);
    int rc = st->ops->revocations_query(st, q, fn, arg, next, err, errlen);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int pol_store_allow_add(struct pol_store *st, const struct pol_allow_entry *e, const struct pol_actor *who, int64_t *id,
                        uint64_t *gen, char *err, size_t errlen)
{
    char value[POL_VALUE_MAX];
    struct pol_allow_entry canon;
    uint64_t g = 0;
    int64_t newid = 0;
    int rc;

    if (st == NULL || e == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store or no entry");
    if ((rc = check_actor(who, err, errlen)) != 0)
        return rc;
    if (!pol_list_name_ok(e->list))
        return pol_errf(err, errlen, POL_E_ARG, "bad list name (letters, digits, '.', '_', '-'; 1 to 64)");
    if ((unsigned)e->match >= POL_MATCH_COUNT)
        return pol_errf(err, errlen, POL_E_ARG, "unknown match type");
    if ((rc = pol_allow_value_normalize(e->match, e->value, value, sizeof(value), err, errlen)) != 0)
        return rc;
    if (e->expires_at < 0)
        return pol_errf(err, errlen, POL_E_ARG, "bad expiry time");
    canon = *e;
    canon.value = value;
    pthread_mutex_lock(&st->lock);
    rc = st->ops->allow_add(st, &canon, who, time(NULL), &newid, &g, err, errlen);
    note_write_locked(st, rc, errlen > 0 ? err : NULL);
    pthread_mutex_unlock(&st->lock);
    if (rc == 0) {
        if (id != NULL)
            *id = newid;
        if (gen != NULL)
            *gen = g;
    }
    return rc;
}

int pol_store_allow_remove(struct pol_store *st, int64_t id, const struct pol_allow_entry *e, const struct pol_actor *who,
                           uint64_t *gen, char *err, size_t errlen)
{
    char value[POL_VALUE_MAX];
    struct pol_allow_entry canon;
    const struct pol_allow_entry *use = NULL;
    uint64_t g = 0;
    int rc;

    if (st == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store");
    if ((rc = check_actor(who, err, errlen)) != 0)
        return rc;
    if (id <= 0) {
        if (e == NULL || !pol_list_name_ok(e->list) || (unsigned)e->match >= POL_MATCH_COUNT)
            return pol_errf(err, errlen, POL_E_ARG, "give an entry id, or a list, match type and value");
        if ((rc = pol_allow_value_normalize(e->match, e->value, value, sizeof(value), err, errlen)) != 0)
            return rc;
        canon = *e;
        canon.value = value;
        use = &canon;
    }
    pthread_mutex_lock(&st->lock);
    rc = st->ops->allow_remove(st, id, use, who, time(NULL), &g, err, errlen);
    note_write_locked(st, rc, errlen > 0 ? err : NULL);
    pthread_mutex_unlock(&st->lock);
    if (rc == 0 && gen != NULL)
        *gen = g;
    return rc;
}

int pol_store_allow_each(struct pol_store *st, const char *list, int (*fn)(void *, const struct pol_allow_row *),
                         void *arg, char *err, size_t errlen)
{
    if (st == NULL || fn == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store or no callback");
    if (list != NULL && !pol_list_name_ok(list))
        return pol_errf(err, errlen, POL_E_ARG, "bad list name");
    pthread_mutex_lock(&st->lock);
    int rc = st->ops->allow_query(st, list, 0, 0, fn, arg, err, errlen);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int pol_store_allow_page(struct pol_store *st, const char *list, int64_t after_id, size_t limit,
                         int (*fn)(void *, const struct pol_allow_row *), void *arg, char *err, size_t errlen)
{
    if (st == NULL || fn == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store or no callback");
    if (!pol_list_name_ok(list))
        return pol_errf(err, errlen, POL_E_ARG, "bad list name (letters, digits, '.', '_', '-'; 1 to 64)");
    if (after_id < 0)
        return pol_errf(err, errlen, POL_E_ARG, "bad entry id");
    pthread_mutex_lock(&st->lock);
    int rc = st->ops->allow_query(st, list, after_id, limit, fn, arg, err, errlen);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int pol_store_allow_lists(struct pol_store *st, int (*fn)(void *, const struct pol_allow_list_row *), void *arg,
                          char *err, size_t errlen)
{
    if (st == NULL || fn == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store or no callback");
    pthread_mutex_lock(&st->lock);
    int rc = st->ops->allow_lists(st, time(NULL), fn, arg, err, errlen);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int pol_store_crl_import(struct pol_store *st, const struct pol_crl *crl, const struct pol_actor *who, int *unchanged,
                         uint64_t *gen, char *err, size_t errlen)
{
    uint64_t g = 0;
    int same = 0, rc;
    if (st == NULL || crl == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store or no CRL");
    /* Only a CRL that went through pol_crl_verify has its issuer's text: never store an unverified one. */
    if (crl->issuer_text == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "the CRL was not verified against a CA");
    if ((rc = check_actor(who, err, errlen)) != 0)
        return rc;
    pthread_mutex_lock(&st->lock);
    rc = st->ops->crl_import(st, crl, NULL, NULL, 0, who, time(NULL), &same, &g, err, errlen);
    if (rc != 0 || !same)              /* the same CRL again writes nothing */
        note_write_locked(st, rc, errlen > 0 ? err : NULL);
    pthread_mutex_unlock(&st->lock);
    if (rc == 0) {
        if (unchanged != NULL)
            *unchanged = same;
        if (gen != NULL)
            *gen = g;
    }
    return rc;
}

int pol_crl_name_ok(const char *name)
{
    int digits_only = 1;
    if (!pol_list_name_ok(name))
        return 0;
    for (const char *p = name; *p != '\0'; p++)
        digits_only &= *p >= '0' && *p <= '9';
    return !digits_only;
}

int pol_store_crl_import_named(struct pol_store *st, const char *name, const uint8_t *ca_der, size_t ca_len,
                               const struct pol_crl *crl, const struct pol_actor *who, int *unchanged, uint64_t *gen,
                               char *err, size_t errlen)
{
    struct pol_cert *ca = NULL;
    uint64_t g = 0;
    int same = 0, rc = 0;

    if (st == NULL || crl == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store or no CRL");
    if (crl->issuer_text == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "the CRL was not verified against a CA");
    if (!pol_crl_name_ok(name))
        return pol_errf(err, errlen, POL_E_ARG, "bad CRL name (letters, digits, '.', '_', '-'; 1 to 64; not a number)");
    POL_TRY(check_actor(who, err, errlen));
    /* The certificate kept must be the CRL's issuer: a later import by name trusts it. */
    if (ca_der == NULL || ca_len == 0 || ca_len > CA_DER_MAX || pol_cert_from_der(ca_der, ca_len, &ca) != 0) {
        rc = pol_errf(err, errlen, POL_E_ARG, "the CA certificate does not parse");
        goto out;
    }
    if (memcmp(pol_cert_subject_hash(ca), crl->issuer_hash, POL_HASH_LEN) != 0) {
        rc = pol_errf(err, errlen, POL_E_CRL_ISSUER, "the CRL was not issued by this CA certificate");
        goto out;
    }
    pthread_mutex_lock(&st->lock);
    rc = st->ops->crl_import(st, crl, name, ca_der, ca_len, who, time(NULL), &same, &g, err, errlen);
    if (rc != 0 || !same)              /* the same CRL again writes nothing */
        note_write_locked(st, rc, errlen > 0 ? err : NULL);
    pthread_mutex_unlock(&st->lock);
    if (rc == 0) {
        if (unchanged != NULL)
            *unchanged = same;
        if (gen != NULL)
            *gen = g;
    }
out:
    pol_cert_free(ca);
    ca = NULL;
    return rc;
}

int pol_store_crl_remove(struct pol_store *st, const char *name, int64_t id, const struct pol_actor *who, uint64_t *gen,
                         char *err, size_t errlen)
{
    uint64_t g = 0;
    int rc;
    if (st == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store");
    if (name != NULL ? !pol_crl_name_ok(name) : id <= 0)
        return pol_errf(err, errlen, POL_E_ARG, "give a CRL name or a positive CRL id");
    if ((rc = check_actor(who, err, errlen)) != 0)
        return rc;
    pthread_mutex_lock(&st->lock);
    rc = st->ops->crl_remove(st, name, id, who, time(NULL), &g, err, errlen);
    note_write_locked(st, rc, errlen > 0 ? err : NULL);
    pthread_mutex_unlock(&st->lock);
    if (rc == 0 && gen != NULL)
        *gen = g;
    return rc;
}

int pol_store_crls_each(struct pol_store *st, int (*fn)(void *, const struct pol_crl_row *), void *arg, char *err,
                        size_t errlen)
{
    if (st == NULL || fn == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store or no callback");
    pthread_mutex_lock(&st->lock);
    int rc = st->ops->crls_each(st, fn, arg, err, errlen);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int pol_store_issued_add(struct pol_store *st, const uint8_t *der, size_t len, const struct pol_actor *who, int64_t *id,
                         uint64_t *gen, char *err, size_t errlen)
{
    struct pol_cert *c = NULL;
    uint64_t g = 0;
    int64_t newid = 0;
    int rc = 0;

    if (st == NULL || der == NULL || len == 0)
        return pol_errf(err, errlen, POL_E_ARG, "no store or no certificate");
    POL_TRY(check_actor(who, err, errlen));
    if (len > ISSUER_DER_MAX) {
        rc = pol_errf(err, errlen, POL_E_ARG, "the certificate is larger than %d bytes", ISSUER_DER_MAX);
        goto out;
    }
    /* Read here, once: the backend stores what the certificate says, never what a caller claims. */
    if (pol_cert_from_der(der, len, &c) != 0) {
        rc = pol_errf(err, errlen, POL_E_DER, "the certificate does not parse");
        goto out;
    }
    if (c->serial_len == 0 || c->serial_len > POL_SERIAL_MAX || !text_ok(c->subject, 4096, 0) ||
        !text_ok(c->issuer, 4096, 0)) {
        rc = pol_errf(err, errlen, POL_E_DER, "the certificate's serial or names cannot be recorded");
        goto out;
    }
    pthread_mutex_lock(&st->lock);
    rc = st->ops->issued_add(st, der, len, c, who, time(NULL), &newid, &g, err, errlen);
    note_write_locked(st, rc, errlen > 0 ? err : NULL);
    pthread_mutex_unlock(&st->lock);
    if (rc == 0) {
        if (id != NULL)
            *id = newid;
        if (gen != NULL)
            *gen = g;
    }
out:
    pol_cert_free(c);
    c = NULL;
    return rc;
}

int pol_store_issued_query(struct pol_store *st, const struct pol_issued_query *q,
                           int (*fn)(void *, const struct pol_issued_row *), void *arg, char *err, size_t errlen)
{
    if (st == NULL || q == NULL || fn == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store, query or callback");
    if (q->after_id < 0)
        return pol_errf(err, errlen, POL_E_ARG, "bad record id");
    if (q->serial != NULL && (q->serial_len == 0 || q->serial_len > POL_SERIAL_MAX))
        return pol_errf(err, errlen, POL_E_ARG, "the serial must be 1 to %d octets", POL_SERIAL_MAX);
    pthread_mutex_lock(&st->lock);
    int rc = st->ops->issued_query(st, q, fn, arg, err, errlen);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int pol_store_audit_each(struct pol_store *st, int64_t after_id, size_t limit,
                         int (*fn)(void *, const struct pol_audit_record *), void *arg, char *err, size_t errlen)
{
    if (st == NULL || fn == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store or no callback");
    if (after_id < 0)
        return pol_errf(err, errlen, POL_E_ARG, "bad record id");
    pthread_mutex_lock(&st->lock);
    int rc = st->ops->audit_each(st, after_id, limit, fn, arg, err, errlen);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int pol_store_audit_verify(struct pol_store *st, uint64_t *records, int64_t *first_bad_id, char *err, size_t errlen)
{
    struct pol_audit_walk v;
    int rc = 0;

    memset(&v, 0, sizeof(v));
    if (records != NULL)
        *records = 0;
    if (first_bad_id != NULL)
        *first_bad_id = 0;
    if (st == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store");
    /* Chunks, the lock released in between: a handshake-serving gateway's policy thread shares the
     * handle. Records appended meanwhile extend the chain and are checked too. */
    while (!v.done && rc == 0) {
        pthread_mutex_lock(&st->lock);
        rc = st->ops->audit_verify(st, &v, AUDIT_CHUNK, err, errlen);
        pthread_mutex_unlock(&st->lock);
    }
    if (records != NULL)
        *records = v.records;
    if (rc == POL_E_AUDIT && first_bad_id != NULL)
        *first_bad_id = v.bad_id;
    return rc;
}

int pol_snapshot_build(struct pol_store *st, struct pol_snapshot **out, char *err, size_t errlen)
{
    struct pol_snapshot *b = NULL;
    uint64_t gen = 0;
    int rc = 0;

    *out = NULL;
    if (st == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store");
    if ((rc = pol_builder_new(&b)) != 0)
        return pol_errf(err, errlen, rc, "out of memory");
    pthread_mutex_lock(&st->lock);
    rc = st->ops->load(st, b, &gen, err, errlen);
    pthread_mutex_unlock(&st->lock);
    if (rc != 0)
        goto out;
    POL_TRY(pol_builder_finish(b, gen, err, errlen));
    *out = b;
    b = NULL;
out:
    pol_snapshot_free(b);
    b = NULL;
    return rc;
}

int pol_store_delta(struct pol_store *st, uint64_t since, size_t max, struct pol_delta *d, uint64_t *gen, int *full,
                    char *err, size_t errlen)
{
    int rc;
    *full = 1;
    *gen = 0;
    if (st == NULL)
        return pol_errf(err, errlen, POL_E_ARG, "no store");
    if (st->ops->delta == NULL)
        return 0;
    pthread_mutex_lock(&st->lock);
    rc = st->ops->delta(st, since, max, d, gen, full, err, errlen);
    pthread_mutex_unlock(&st->lock);
    if (rc != 0 || *full)
        pol_delta_clear(d);
    return rc;
}

int pol_delta_add_rev(struct pol_delta *d, const uint8_t *hash, const uint8_t *serial, size_t len, int revoked,
                      int reason)
{
    if (len == 0 || len > POL_SERIAL_MAX)
        return POL_E_ARG;
    if (d->nrev == d->rev_cap) {
        size_t n = d->rev_cap ? d->rev_cap * 2 : 16;
        struct pol_delta_rev *q = realloc(d->rev, n * sizeof(*q));
        if (q == NULL)
            return POL_E_NOMEM;
        d->rev = q;
        d->rev_cap = n;
    }
    struct pol_delta_rev *r = &d->rev[d->nrev++];
    memcpy(r->issuer_hash, hash, POL_HASH_LEN);
    memcpy(r->serial, serial, len);
    r->serial_len = len;
    r->revoked = revoked;
    r->reason = reason;
    return 0;
}

int pol_delta_add_allow(struct pol_delta *d, const char *list, const char *match, const char *value, int present,
                        int64_t id, int64_t expires_at)
{
    enum pol_match m;
    if (list == NULL || match == NULL || value == NULL || pol_match_parse(match, &m) != 0)
        return POL_E_ARG;
    if (d->nallow == d->allow_cap) {
        size_t n = d->allow_cap ? d->allow_cap * 2 : 16;
        struct pol_delta_allow *q = realloc(d->allow, n * sizeof(*q));
        if (q == NULL)
            return POL_E_NOMEM;
        d->allow = q;
        d->allow_cap = n;
    }
    struct pol_delta_allow *a = &d->allow[d->nallow];
    a->list = strdup(list);
    a->value = strdup(value);
    if (a->list == NULL || a->value == NULL) {
        free(a->list);
        free(a->value);
        return POL_E_NOMEM;
    }
    a->match = m;
    a->present = present;
    a->id = id;
    a->expires_at = expires_at;
    d->nallow++;
    return 0;
}

void pol_delta_clear(struct pol_delta *d)
{
    for (size_t i = 0; i < d->nallow; i++) {
        free(d->allow[i].list);
        free(d->allow[i].value);
    }
    free(d->allow);
    free(d->rev);
    memset(d, 0, sizeof(*d));
}
