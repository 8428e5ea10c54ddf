/* hset.c - the open-addressing hash sets a snapshot is made of.
 *
 * Why not a general hash table: a snapshot is built once and then only read, by many threads, on
 * every handshake. So records are appended while building (into one byte arena that grows by
 * doubling; glibc grows large blocks with mremap, without copying) and the index is made once at
 * the end, sized to a load factor of at most 1/2.
 *
 * Layout, chosen for cache misses (a lookup in a set of 1,000,000 misses the cache twice: one slot,
 * one record):
 *  - a slot is one 64-bit word: 24 bits of the key's hash (rejects almost every non-matching slot
 *    without touching the record) over the record's offset + 1 in 40 bits (0 = empty);
 *  - a record is [key length: 2][reason: 1][flags: 1]([time: 8][id: 8] if flags & EXTRA)[key],
 *    unaligned and read with memcpy; revocations carry no time or id, so a 16-byte serial costs
 *    20 bytes plus its slot.
 *
 * The hash is seeded per snapshot from getrandom(): serials in imported CRLs are chosen by another
 * CA, and a known hash would let one build long probe chains.
 */
#include <stdlib.h>
#include <string.h>

#include "policies/pol_int.h"

#define REC_HDR 4
#define REC_EXTRA 16
#define FLAG_EXTRA 0x01
#define OFF_BITS 40
#define OFF_MASK ((1ull << OFF_BITS) - 1)
#define HSET_MAX_KEY 0xffffu

static inline uint64_t mix(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* A multiply-fold hash over 8-byte words (in the wyhash family): a few ns for a 20-byte serial. */
uint64_t pol_hash(const void *p, size_t n, uint64_t seed)
{
    const uint8_t *s = p;
    uint64_t h = seed ^ mix(n ^ 0x2d358dccaa6c78a5ull, 0x8bb84b93962eacc9ull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = mix(h ^ v, 0x4b33a62ed433d4a3ull ^ seed);
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    h = mix(h ^ v ^ ((uint64_t)n << 59), 0x4d5a2da51de1aa47ull);
    return mix(h, 0x9e3779b97f4a7c15ull);
}

static size_t rec_size(const uint8_t *r)
{
    uint16_t klen;
    memcpy(&klen, r, 2);
    return REC_HDR + ((r[3] & FLAG_EXTRA) ? REC_EXTRA : 0) + klen;
}

static const uint8_t *rec_key(const uint8_t *r, size_t *len)
{
    uint16_t klen;
    memcpy(&klen, r, 2);
    *len = klen;
    return r + REC_HDR + ((r[3] & FLAG_EXTRA) ? REC_EXTRA : 0);
}

static void rec_value(const uint8_t *r, struct pol_hval *out)
{
    out->reason = r[2];
    out->time = 0;
    out->id = 0;
    if (r[3] & FLAG_EXTRA) {
        memcpy(&out->time, r + REC_HDR, 8);
        memcpy(&out->id, r + REC_HDR + 8, 8);
    }
}

int pol_hset_add(struct pol_hset *h, const void *key, size_t len, int64_t time, int64_t id, uint8_t reason)
{
    int extra = time != 0 || id != 0;
    size_t need = REC_HDR + (extra ? REC_EXTRA : 0) + len;
    if (len == 0 || len > HSET_MAX_KEY || h->nbytes + need > OFF_MASK - 1 || h->nrecs >= UINT32_MAX)
        return POL_E_ARG;
    if (h->nbytes + need > h->cap) {
        size_t n = h->cap ? h->cap : 256;
        while (n < h->nbytes + need) {
            if (n > SIZE_MAX / 2)
                return POL_E_NOMEM;
            n *= 2;
        }
        uint8_t *q = realloc(h->recs, n);
        if (q == NULL)
            return POL_E_NOMEM;
        h->recs = q;
        h->cap = n;
    }
    uint8_t *r = h->recs + h->nbytes;
    uint16_t klen = (uint16_t)len;
    memcpy(r, &klen, 2);
    r[2] = reason;
    r[3] = extra ? FLAG_EXTRA : 0;
    if (extra) {
        memcpy(r + REC_HDR, &time, 8);
        memcpy(r + REC_HDR + 8, &id, 8);
    }
    memcpy(r + REC_HDR + (extra ? REC_EXTRA : 0), key, len);
    h->nbytes += need;
    h->nrecs++;
    return 0;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t probe(const struct pol_hset *h, uint64_t hv, const void *key, size_t len, int *found)
{
    uint64_t tag = hv >> OFF_BITS;
    for (size_t pos = (size_t)hv & h->mask;; pos = (pos + 1) & h->mask) {
        uint64_t sl = h->slots[pos];
        if (sl == 0) {
            *found = 0;
            return pos;
        }
        if ((sl >> OFF_BITS) == tag) {
            size_t klen;
            const uint8_t *k = rec_key(h->recs + (sl & OFF_MASK) - 1, &klen);
            if (klen == len && memcmp(k, key, len) == 0) {
                *found = 1;
                return pos;
            }
        }
    }
}

int pol_hset_seal(struct pol_hset *h, uint64_t seed, size_t *dups)
{
    size_t nslots = 8, dropped = 0;
    while (nslots < 2 * h->nrecs)
        nslots *= 2;
    free(h->slots);
    h->slots = calloc(nslots, sizeof(*h->slots));
    if (h->slots == NULL)
        return POL_E_NOMEM;
    h->mask = nslots - 1;
    h->count = 0;
    for (size_t off = 0; off < h->nbytes; off += rec_size(h->recs + off)) {
        size_t klen;
        const uint8_t *k = rec_key(h->recs + off, &klen);
        uint64_t hv = pol_hash(k, klen, seed);
        int found;
        size_t pos = probe(h, hv, k, klen, &found);
        /* A later duplicate stays in the arena, unindexed: the first one wins. */
        if (found) {
            dropped++;
            continue;
        }
        h->slots[pos] = (hv >> OFF_BITS) << OFF_BITS | (uint64_t)(off + 1);
        h->count++;
    }
    /* Shrink to fit: a published snapshot should hold no slack (the 100 MB budget for 1M). */
    if (h->nbytes > 0 && h->nbytes < h->cap) {
        uint8_t *q = realloc(h->recs, h->nbytes);
        if (q != NULL) {
            h->recs = q;
            h->cap = h->nbytes;
        }
    }
    if (dups != NULL)
        *dups = dropped;
    return 0;
}

int pol_hset_find(const struct pol_hset *h, uint64_t seed, const void *key, size_t len, struct pol_hval *out)
{
    int found = 0;
    if (h->slots == NULL || h->count == 0 || len == 0)
        return 0;
    size_t pos = probe(h, pol_hash(key, len, seed), key, len, &found);
    if (found && out != NULL)
        rec_value(h->recs + (h->slots[pos] & OFF_MASK) - 1, out);
    return found;
}

void pol_hset_clear(struct pol_hset *h)
{
    free(h->slots);
    h->slots = NULL;
    free(h->recs);
    h->recs = NULL;
    memset(h, 0, sizeof(*h));
}

size_t pol_hset_bytes(const struct pol_hset *h)
{
    return (h->slots ? (h->mask + 1) * sizeof(*h->slots) : 0) + h->cap;
}

int pol_hset_each(const struct pol_hset *h, int (*fn)(void *arg, const uint8_t *key, size_t len,
                                                      const struct pol_hval *v), void *arg)
{
    if (h->slots == NULL)
        return 0;
    for (size_t pos = 0; pos <= h->mask; pos++) {
        uint64_t sl = h->slots[pos];
        if (sl == 0)
            continue;
        const uint8_t *r = h->recs + (sl & OFF_MASK) - 1;
        size_t klen;
        const uint8_t *k = rec_key(r, &klen);
        struct pol_hval v;
        rec_value(r, &v);
        int rc = fn(arg, k, klen, &v);
        if (rc != 0)
            return rc;
    }
    return 0;
}
