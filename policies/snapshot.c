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
    return pol_hset_find(&s->issuer_index, s->seed, hash, POL_HASH_LEN, &v) ? &s->issuers[v.id] : NULL;
}

const struct pol_snap_list *pol_snapshot_list(const struct pol_snapshot *s, const char *name, size_t len)
{
    struct pol_hval v;
    return pol_hset_find(&s->list_index, s->seed, name, len, &v) ? &s->lists[v.id] : NULL;
}

int pol_snapshot_is_revoked(const struct pol_snapshot *s, const uint8_t issuer_hash[POL_HASH_LEN],
                            const uint8_t *serial, size_t len, int *reason)
{
    const struct pol_snap_issuer *is = pol_snapshot_issuer(s, issuer_hash);
    struct pol_hval v;
    if (is == NULL || !pol_hset_find(&is->revoked, s->seed, serial, len, &v))
        return 0;
    if (reason != NULL)
        *reason = v.reason;
    return 1;
}

uint64_t pol_snapshot_generation(const struct pol_snapshot *s)
{
    return s->generation;
}

void pol_snapshot_get_stats(const struct pol_snapshot *s, struct pol_snapshot_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->generation = s->generation;
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
