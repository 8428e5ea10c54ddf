/* snapshot.c - building an immutable snapshot from store rows, and reading it.
 *
 * A snapshot is built by one thread (the builder functions; store backends call them row by row),
 * sealed by pol_builder_finish, and from then on only read: any number of threads may look things
 * up in it without synchronization, since nothing in it changes until it is freed (live.c decides
 * when that is safe).
 *
 * Layout: issuers[] (one per issuer Name hash, with its revoked-serial set and the imported CRL's
 * times), indexed by issuer_index; lists[] (one per allowlist, a set per match type), indexed by
 * list_index. Lookups are two hash probes: issuer, then serial.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "policies/pol_int.h"

static uint64_t fresh_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        /* Early boot without entropy: still differs per process and per build. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&seed;
    }
    return seed;
}

int pol_builder_new(struct pol_snapshot **out)
{
    struct pol_snapshot *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return POL_E_NOMEM;
    s->seed = fresh_seed();
    s->last_list = SIZE_MAX;
    atomic_init(&s->refs, 1);
    *out = s;
    return 0;
}

int pol_builder_issuer(struct pol_snapshot *b, const uint8_t hash[POL_HASH_LEN], size_t *idx)
{
    if (b->nissuers == b->issuers_cap) {
        size_t n = b->issuers_cap ? b->issuers_cap * 2 : 16;
        struct pol_snap_issuer *q = realloc(b->issuers, n * sizeof(*q));
        if (q == NULL)
            return POL_E_NOMEM;
        b->issuers = q;
        b->issuers_cap = n;
    }
    struct pol_snap_issuer *is = &b->issuers[b->nissuers];
    memset(is, 0, sizeof(*is));
    memcpy(is->hash, hash, POL_HASH_LEN);
    *idx = b->nissuers++;
    return 0;
}

int pol_builder_crl(struct pol_snapshot *b, size_t issuer, time_t this_update, time_t next_update)
{
    if (issuer >= b->nissuers)
        return POL_E_ARG;
    struct pol_snap_issuer *is = &b->issuers[issuer];
    is->has_crl = 1;
    is->this_update = this_update;
    is->next_update = next_update;
    b->crls++;
    return 0;
}

int pol_builder_revoked(struct pol_snapshot *b, size_t issuer, const uint8_t *serial, size_t len, int reason,
                        int64_t revoked_at)
{
    if (issuer >= b->nissuers || len == 0 || len > POL_SERIAL_MAX || reason < 0 || reason > 10)
        return POL_E_ARG;
    /* revokedAt is kept in the store, not here: decisions need only the reason. */
    (void)revoked_at;
    return pol_hset_add(&b->issuers[issuer].revoked, serial, len, 0, 0, (uint8_t)reason);
}

static int list_for(struct pol_snapshot *b, const char *name, size_t *idx)
{
    /* Rows come ordered by list, so the last list is nearly always the one. */
    if (b->last_list < b->nlists && strcmp(b->lists[b->last_list].name, name) == 0) {
        *idx = b->last_list;
        return 0;
    }
    for (size_t i = 0; i < b->nlists; i++) {
        if (strcmp(b->lists[i].name, name) == 0) {
            *idx = b->last_list = i;
            return 0;
        }
    }
    if (b->nlists == b->lists_cap) {
        size_t n = b->lists_cap ? b->lists_cap * 2 : 8;
        struct pol_snap_list *q = realloc(b->lists, n * sizeof(*q));
        if (q == NULL)
            return POL_E_NOMEM;
        b->lists = q;
        b->lists_cap = n;
    }
    struct pol_snap_list *l = &b->lists[b->nlists];
    memset(l, 0, sizeof(*l));
    l->name = strdup(name);
    if (l->name == NULL)
        return POL_E_NOMEM;
    *idx = b->last_list = b->nlists++;
    return 0;
}

int pol_builder_allow(struct pol_snapshot *b, const char *list, const char *match, const char *value,
                      int64_t expires_at, int64_t id)
{
    enum pol_match m;
    uint8_t key[POL_VALUE_MAX];
    size_t idx;
    int rc;

    /* A row that cannot match anything (bad list name, match or value: another version wrote it, or
     * the file was edited) is skipped: skipping an allowlist entry can only refuse, never admit. */
    if (list == NULL || match == NULL || value == NULL || !pol_list_name_ok(list) || pol_match_parse(match, &m) != 0) {
        b->skipped_rows++;
        return 0;
    }
    int k = pol_allow_key(m, value, key, sizeof(key));
    if (k <= 0) {
        b->skipped_rows++;
        return 0;
    }
    if ((rc = list_for(b, list, &idx)) != 0)
        return rc;
    if ((rc = pol_hset_add(&b->lists[idx].sets[m], key, (size_t)k, expires_at, id, 0)) != 0)
        return rc;
    b->allow_entries++;
    return 0;
}

int pol_builder_finish(struct pol_snapshot *b, uint64_t generation, char *err, size_t errlen)
{
    size_t dups = 0;
    int rc;
    b->generation = generation;
    b->revocations = 0;
    for (size_t i = 0; i < b->nissuers; i++) {
        struct pol_snap_issuer *is = &b->issuers[i];
        if ((rc = pol_hset_add(&b->issuer_index, is->hash, POL_HASH_LEN, 0, (int64_t)i, 0)) != 0)
            return pol_errf(err, errlen, rc, "out of memory building the snapshot");
        /* A serial both revoked here and listed by a CRL appears twice: one is enough. */
        if ((rc = pol_hset_seal(&is->revoked, b->seed, NULL)) != 0)
            return pol_errf(err, errlen, rc, "out of memory building the snapshot");
        b->revocations += is->revoked.count;
    }
    if ((rc = pol_hset_seal(&b->issuer_index, b->seed, &dups)) != 0)
        return pol_errf(err, errlen, rc, "out of memory building the snapshot");
    if (dups != 0)
        return pol_errf(err, errlen, POL_E_SCHEMA, "the store lists an issuer twice");
    for (size_t i = 0; i < b->nlists; i++) {
        struct pol_snap_list *l = &b->lists[i];
        if ((rc = pol_hset_add(&b->list_index, l->name, strlen(l->name), 0, (int64_t)i, 0)) != 0)
            return pol_errf(err, errlen, rc, "out of memory building the snapshot");
        for (unsigned m = 0; m < POL_MATCH_COUNT; m++) {
            size_t d = 0;
            if ((rc = pol_hset_seal(&l->sets[m], b->seed, &d)) != 0)
                return pol_errf(err, errlen, rc, "out of memory building the snapshot");
            b->allow_entries -= d;
        }
    }
    if ((rc = pol_hset_seal(&b->list_index, b->seed, NULL)) != 0)
        return pol_errf(err, errlen, rc, "out of memory building the snapshot");
    return 0;
}

int pol_snapshot_empty(struct pol_snapshot **out)
{
    struct pol_snapshot *s = NULL;
    int rc = pol_builder_new(&s);
    if (rc == 0 && (rc = pol_builder_finish(s, 0, NULL, 0)) != 0) {
        pol_snapshot_free(s);
        s = NULL;
    }
    *out = s;
    return rc;
}

void pol_snapshot_free(struct pol_snapshot *s)
{
    if (s == NULL)
        return;
    if (s->base != NULL) {
        /* An overlay: its own sets, then its share of the base. */
        struct pol_snapshot *base = s->base;
        pol_hset_clear(&s->ov_rev);
        pol_hset_clear(&s->ov_allow);
        free(s);
        pol_snapshot_free(base);
        return;
    }
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return; /* overlays still stand on it */
    for (size_t i = 0; i < s->nissuers; i++)
        pol_hset_clear(&s->issuers[i].revoked);
    free(s->issuers);
    s->issuers = NULL;
    for (size_t i = 0; i < s->nlists; i++) {
        for (unsigned m = 0; m < POL_MATCH_COUNT; m++)
            pol_hset_clear(&s->lists[i].sets[m]);
        free(s->lists[i].name);
        s->lists[i].name = NULL;
    }
    free(s->lists);
    s->lists = NULL;
    pol_hset_clear(&s->issuer_index);
    pol_hset_clear(&s->list_index);
    free(s);
}

const struct pol_snap_issuer *pol_snapshot_issuer(const struct pol_snapshot *s, const uint8_t hash[POL_HASH_LEN])
{
    struct pol_hval v;
    if (s->base != NULL)
        s = s->base;
    return pol_hset_find(&s->issuer_index, s->seed, hash, POL_HASH_LEN, &v) ? &s->issuers[v.id] : NULL;
}

const struct pol_snap_list *pol_snapshot_list(const struct pol_snapshot *s, const char *name, size_t len)
{
    struct pol_hval v;
    if (s->base != NULL)
        s = s->base;
    return pol_hset_find(&s->list_index, s->seed, name, len, &v) ? &s->lists[v.id] : NULL;
}

int pol_snapshot_is_revoked(const struct pol_snapshot *s, const uint8_t issuer_hash[POL_HASH_LEN],
                            const uint8_t *serial, size_t len, int *reason)
{
    return pol_snapshot_revoked(s, pol_snapshot_issuer(s, issuer_hash), issuer_hash, serial, len, reason);
}

int pol_snapshot_revoked(const struct pol_snapshot *s, const struct pol_snap_issuer *is,
                         const uint8_t issuer_hash[POL_HASH_LEN], const uint8_t *serial, size_t len, int *reason)
{
    struct pol_hval v;
    if (s->base != NULL && s->ov_rev.count > 0 && len <= POL_SERIAL_MAX) {
        uint8_t key[POL_HASH_LEN + POL_SERIAL_MAX];
        memcpy(key, issuer_hash, POL_HASH_LEN);
        memcpy(key + POL_HASH_LEN, serial, len);
        if (pol_hset_find(&s->ov_rev, s->seed, key, POL_HASH_LEN + len, &v)) {
            if (v.id == 0)
                return 0;
            if (reason != NULL)
                *reason = v.reason;
            return 1;
        }
    }
    const struct pol_snapshot *b = s->base != NULL ? s->base : s;
    if (is == NULL || !pol_hset_find(&is->revoked, b->seed, serial, len, &v))
        return 0;
    if (reason != NULL)
        *reason = v.reason;
    return 1;
}

/* [list length][list][match][binary key]: the overlay's allowlist key. */
static size_t allow_okey(uint8_t *out, size_t cap, const char *list, size_t list_len, enum pol_match m,
                         const void *key, size_t len)
{
    if (list_len == 0 || list_len > 64 || 2 + list_len + len > cap)
        return 0;
    out[0] = (uint8_t)list_len;
    memcpy(out + 1, list, list_len);
    out[1 + list_len] = (uint8_t)m;
    memcpy(out + 2 + list_len, key, len);
    return 2 + list_len + len;
}

int pol_snapshot_allow_find(const struct pol_snapshot *s, const struct pol_snap_list *l, const char *list,
                            size_t list_len, enum pol_match m, const void *key, size_t len, struct pol_hval *out)
{
    if (s->base != NULL && s->ov_allow.count > 0) {
        uint8_t k[2 + 64 + POL_VALUE_MAX];
        size_t kl = allow_okey(k, sizeof(k), list, list_len, m, key, len);
        if (kl > 0 && pol_hset_find(&s->ov_allow, s->seed, k, kl, out))
            return out->id != 0;
    }
    const struct pol_snapshot *b = s->base != NULL ? s->base : s;
    return l != NULL && pol_hset_find(&l->sets[m], b->seed, key, len, out);
}

/* ---- overlays ---- */

struct carry {
    struct pol_hset *h;
    int rc;
};

static int carry_one(void *arg, const uint8_t *key, size_t len, const struct pol_hval *v)
{
    struct carry *c = arg;
    c->rc = pol_hset_add(c->h, key, len, v->time, v->id, v->reason);
    return c->rc;
}

struct ov_count {
    const struct pol_snapshot *base;
    long long rev, allow;
};

/* How an overlay key changes the base's counts. */
static int count_rev(void *arg, const uint8_t *key, size_t len, const struct pol_hval *v)
{
    struct ov_count *c = arg;
    const struct pol_snap_issuer *is = pol_snapshot_issuer(c->base, key);
    int in_base = pol_snapshot_revoked(c->base, is, key, key + POL_HASH_LEN, len - POL_HASH_LEN, NULL);
    c->rev += (v->id != 0) - in_base;
    return 0;
}

static int count_allow(void *arg, const uint8_t *key, size_t len, const struct pol_hval *v)
{
    struct ov_count *c = arg;
    size_t ll = key[0];
    struct pol_hval bv;
    const struct pol_snap_list *l = pol_snapshot_list(c->base, (const char *)key + 1, ll);
    int in_base = pol_snapshot_allow_find(c->base, l, (const char *)key + 1, ll, (enum pol_match)key[1 + ll],
                                          key + 2 + ll, len - 2 - ll, &bv);
    c->allow += (v->id != 0) - in_base;
    return 0;
}

int pol_snapshot_overlay(const struct pol_snapshot *cur, const struct pol_delta *d, uint64_t gen, size_t max,
                         struct pol_snapshot **out, char *err, size_t errlen)
{
    struct pol_snapshot *base = cur->base != NULL ? cur->base : (struct pol_snapshot *)cur;
    struct pol_snapshot *s = NULL;
    int rc = 0;

    *out = NULL;
    if (cur->ov_keys + d->nrev + d->nallow > max)
        return 0;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return pol_errf(err, errlen, POL_E_NOMEM, "out of memory");
    s->seed = fresh_seed();
    s->generation = gen;
    atomic_init(&s->refs, 1);
    /* The newest state first: a key that was in cur's overlay too keeps the delta's (seal keeps the
     * first of duplicates). */
    for (size_t i = 0; i < d->nrev; i++) {
        const struct pol_delta_rev *r = &d->rev[i];
        uint8_t key[POL_HASH_LEN + POL_SERIAL_MAX];
        memcpy(key, r->issuer_hash, POL_HASH_LEN);
        memcpy(key + POL_HASH_LEN, r->serial, r->serial_len);
        /* The change log lists a key once per change: the last change to it is the one in force. */
        if ((rc = pol_hset_add(&s->ov_rev, key, POL_HASH_LEN + r->serial_len, 0, r->revoked ? 1 : 0,
                               (uint8_t)r->reason)) != 0)
            goto fail;
    }
    for (size_t i = 0; i < d->nallow; i++) {
        const struct pol_delta_allow *a = &d->allow[i];
        uint8_t bin[POL_VALUE_MAX], key[2 + 64 + POL_VALUE_MAX];
        int bl = pol_allow_key(a->match, a->value, bin, sizeof(bin));
        size_t kl = bl > 0 ? allow_okey(key, sizeof(key), a->list, strlen(a->list), a->match, bin, (size_t)bl) : 0;
        if (kl == 0) {
            s->skipped_rows++;
            continue;
        }
        if ((rc = pol_hset_add(&s->ov_allow, key, kl, a->present ? a->expires_at : 0, a->present ? a->id : 0, 0)) != 0)
            goto fail;
    }
    if (cur->base != NULL) {
        struct carry c = { &s->ov_rev, 0 };
        if (pol_hset_each(&cur->ov_rev, carry_one, &c) != 0 || c.rc != 0) {
            rc = c.rc ? c.rc : POL_E_NOMEM;
            goto fail;
        }
        c.h = &s->ov_allow;
        if (pol_hset_each(&cur->ov_allow, carry_one, &c) != 0 || c.rc != 0) {
            rc = c.rc ? c.rc : POL_E_NOMEM;
            goto fail;
        }
    }
    if ((rc = pol_hset_seal(&s->ov_rev, s->seed, NULL)) != 0 || (rc = pol_hset_seal(&s->ov_allow, s->seed, NULL)) != 0)
        goto fail;
    s->ov_keys = s->ov_rev.count + s->ov_allow.count;
    atomic_fetch_add_explicit(&base->refs, 1, memory_order_relaxed);
    s->base = base;
    /* Counts for the log: the base's, moved by what the overlay changes. */
    struct ov_count cnt = { base, 0, 0 };
    (void)pol_hset_each(&s->ov_rev, count_rev, &cnt);
    (void)pol_hset_each(&s->ov_allow, count_allow, &cnt);
    s->revocations = (size_t)((long long)base->revocations + cnt.rev);
    s->allow_entries = (size_t)((long long)base->allow_entries + cnt.allow);
    s->crls = base->crls;
    s->skipped_rows += base->skipped_rows;
    *out = s;
    return 0;
fail:
    pol_hset_clear(&s->ov_rev);
    pol_hset_clear(&s->ov_allow);
    free(s);
    return pol_errf(err, errlen, rc, "out of memory building the snapshot overlay");
}

size_t pol_overlay_limit(const struct pol_snapshot *cur)
{
    const struct pol_snapshot *base = cur->base != NULL ? cur->base : cur;
    size_t n = (base->revocations + base->allow_entries) / POL_OVERLAY_SHARE;
    return n < POL_OVERLAY_MIN ? POL_OVERLAY_MIN : n > POL_OVERLAY_MAX ? POL_OVERLAY_MAX : n;
}

uint64_t pol_snapshot_generation(const struct pol_snapshot *s)
{
    return s->generation;
}

void pol_snapshot_get_stats(const struct pol_snapshot *s, struct pol_snapshot_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (s->base != NULL) {
        pol_snapshot_get_stats(s->base, out);
        out->base_generation = s->base->generation;
        out->overlay_keys = s->ov_keys;
        out->generation = s->generation;
        out->revocations = s->revocations;
        out->allow_entries = s->allow_entries;
        out->skipped_rows = s->skipped_rows;
        out->bytes += sizeof(*s) + pol_hset_bytes(&s->ov_rev) + pol_hset_bytes(&s->ov_allow);
        return;
    }
    out->generation = s->generation;
    out->base_generation = s->generation;
    out->issuers = s->nissuers;
    out->revocations = s->revocations;
    out->crls = s->crls;
    out->lists = s->nlists;
    out->allow_entries = s->allow_entries;
    out->skipped_rows = s->skipped_rows;
    size_t bytes = sizeof(*s) + s->issuers_cap * sizeof(*s->issuers) + s->lists_cap * sizeof(*s->lists) +
                   pol_hset_bytes(&s->issuer_index) + pol_hset_bytes(&s->list_index);
    for (size_t i = 0; i < s->nissuers; i++)
        bytes += pol_hset_bytes(&s->issuers[i].revoked);
    for (size_t i = 0; i < s->nlists; i++)
        for (unsigned m = 0; m < POL_MATCH_COUNT; m++)
            bytes += pol_hset_bytes(&s->lists[i].sets[m]) + strlen(s->lists[i].name) + 1;
    out->bytes = bytes;
}
