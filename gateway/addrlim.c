/* addrlim.c - per-client-address limits (addrlim.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/addrlim.h"

#define STRIPES 64u
#define BUCKETS_PER_STRIPE 256u
#define ADDRLIM_MAGIC 0x61646c6du /* "adlm" */

struct node {
    struct node *next;
    struct gw_addrkey key;
    unsigned conns, handshakes;
    uint64_t tokens_milli;          /* the rate bucket, in thousandths of a connection */
    uint64_t refilled_ms;           /* when tokens_milli was last brought up to date */
    unsigned rate;                  /* the rate in force at its latest accept (0: none) */
};

/* Brings n's bucket up to now: rate tokens a second, at most 2 * rate. */
static void refill(struct node *n, unsigned rate, uint64_t now_ms)
{
    uint64_t cap = (uint64_t)rate * 2000u;
    if (now_ms > n->refilled_ms) {
        uint64_t add = (now_ms - n->refilled_ms) * rate;    /* milli-tokens: rate per 1000 ms */
        n->tokens_milli = n->tokens_milli + add > cap ? cap : n->tokens_milli + add;
        n->refilled_ms = now_ms;
    }
    if (n->tokens_milli > cap)
        n->tokens_milli = cap;
}

/* An entry with no connection may go once its bucket is full again (or when no rate applies). */
static int idle_and_full(const struct node *n, unsigned rate)
{
    return n->conns == 0 && (rate == 0 || n->tokens_milli >= (uint64_t)rate * 2000u);
}

struct stripe {
    pthread_mutex_t mu;
    size_t n;
    struct node *buckets[BUCKETS_PER_STRIPE];
};

struct gw_addrlim {
    uint32_t magic;
    struct stripe s[STRIPES];
};

struct gw_addrlim *gw_addrlim_new(void)
{
    struct gw_addrlim *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    for (unsigned i = 0; i < STRIPES; i++) {
        if (pthread_mutex_init(&t->s[i].mu, NULL) != 0) {
            while (i-- > 0)
                pthread_mutex_destroy(&t->s[i].mu);
            free(t);
            return NULL;
        }
    }
    t->magic = ADDRLIM_MAGIC;
    return t;
}

void gw_addrlim_free(struct gw_addrlim *t)
{
    if (t == NULL || t->magic != ADDRLIM_MAGIC)
        return;
    for (unsigned i = 0; i < STRIPES; i++) {
        for (unsigned b = 0; b < BUCKETS_PER_STRIPE; b++) {
            struct node *n = t->s[i].buckets[b];
            while (n != NULL) {
                struct node *next = n->next;
                free(n);
                n = next;
            }
        }
        pthread_mutex_destroy(&t->s[i].mu);
    }
    t->magic = 0;
    free(t);
}

static void key_of(const struct sockaddr_storage *ss, struct gw_addrkey *key)
{
    memset(key, 0, sizeof(*key));
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ss;
        key->a[10] = key->a[11] = 0xff;
        memcpy(key->a + 12, &in->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)ss;
        memcpy(key->a, &in6->sin6_addr, 16);
    }
}

/* FNV-1a: the table is keyed by addresses an attacker chooses, but a bucket's chain only costs the
 * attacker's own accepts, under one stripe's lock, and addresses leave with their last connection. */
static uint32_t key_hash(const struct gw_addrkey *key)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < sizeof(key->a); i++) {
        h ^= key->a[i];
        h *= 16777619u;
    }
    return h;
}

/* The key's stripe, locked; *pp the link that points at its node (or the chain's end). */
static struct stripe *lock_slot(struct gw_addrlim *t, const struct gw_addrkey *key, struct node ***out)
{
    uint32_t h = key_hash(key);
    struct stripe *s = &t->s[h % STRIPES];
    pthread_mutex_lock(&s->mu);
    struct node **pp = &s->buckets[(h / STRIPES) % BUCKETS_PER_STRIPE];
    while (*pp != NULL && memcmp(&(*pp)->key, key, sizeof(*key)) != 0)
        pp = &(*pp)->next;
    *out = pp;
    return s;
}

enum gw_addrlim_result gw_addrlim_enter(struct gw_addrlim *t, const struct sockaddr_storage *peer,
                                        const struct gw_addrlim_limits *lim, uint64_t now_ms, struct gw_addrkey *key)
{
    enum gw_addrlim_result rc = GW_ADDRLIM_OK;
    struct gw_addrlim_limits l = *lim;
    struct node **pp;

    key_of(peer, key);
    if (peer->ss_family != AF_INET && peer->ss_family != AF_INET6)
        l.conns = l.handshakes = l.rate = 0;
    struct stripe *s = lock_slot(t, key, &pp);
    struct node *n = *pp;
    if (n == NULL) {
        n = calloc(1, sizeof(*n));
        if (n == NULL) {
            rc = GW_ADDRLIM_NOMEM;
            goto out;
        }
        n->key = *key;
        n->tokens_milli = (uint64_t)l.rate * 2000u;     /* a new address starts with a full burst */
        n->refilled_ms = now_ms;
        *pp = n;
        s->n++;
    }
    if (l.rate != 0)
        refill(n, l.rate, now_ms);
    n->rate = l.rate;
    if (l.conns != 0 && n->conns >= l.conns)
        rc = GW_ADDRLIM_CONNECTIONS;
    else if (l.handshakes != 0 && n->handshakes >= l.handshakes)
        rc = GW_ADDRLIM_HANDSHAKES;
    else if (l.rate != 0 && n->tokens_milli < 1000u)
        rc = GW_ADDRLIM_RATE;
    if (rc == GW_ADDRLIM_OK) {
        n->conns++;
        n->handshakes++;
        if (l.rate != 0)
            n->tokens_milli -= 1000u;
    } else if (idle_and_full(n, l.rate)) {
        *pp = n->next;      /* holds nothing and owes nothing: no entry stays behind */
        s->n--;
        free(n);
    }
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void gw_addrlim_handshake_done(struct gw_addrlim *t, const struct gw_addrkey *key)
{
    struct node **pp;
    struct stripe *s = lock_slot(t, key, &pp);
    if (*pp != NULL && (*pp)->handshakes > 0)
        (*pp)->handshakes--;
    pthread_mutex_unlock(&s->mu);
}

void gw_addrlim_leave(struct gw_addrlim *t, const struct gw_addrkey *key, int handshaking)
{
    struct node **pp;
    struct stripe *s = lock_slot(t, key, &pp);
    struct node *n = *pp;
    if (n != NULL) {
        if (handshaking && n->handshakes > 0)
            n->handshakes--;
        if (n->conns > 0)
            n->conns--;
        /* Without a rate (tokens never spent: full) the entry goes with its last connection; with
         * one, the sweep frees it once the bucket has filled up. */
        if (n->conns == 0 && n->rate == 0) {
            *pp = n->next;
            s->n--;
            free(n);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void gw_addrlim_sweep(struct gw_addrlim *t, unsigned rate, uint64_t now_ms)
{
    for (unsigned i = 0; i < STRIPES; i++) {
        struct stripe *s = &t->s[i];
        pthread_mutex_lock(&s->mu);
        for (unsigned b = 0; b < BUCKETS_PER_STRIPE; b++) {
            struct node **pp = &s->buckets[b];
            while (*pp != NULL) {
                struct node *n = *pp;
                if (rate != 0)
                    refill(n, rate, now_ms);
                if (idle_and_full(n, rate)) {
                    *pp = n->next;
                    s->n--;
                    free(n);
                } else {
                    pp = &n->next;
                }
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
}

size_t gw_addrlim_addresses(struct gw_addrlim *t)
{
    size_t total = 0;
    for (unsigned i = 0; i < STRIPES; i++) {
        pthread_mutex_lock(&t->s[i].mu);
        total += t->s[i].n;
        pthread_mutex_unlock(&t->s[i].mu);
    }
    return total;
}

void gw_addrlim_key_text(const struct gw_addrkey *key, char *buf, size_t len)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    char tmp[INET6_ADDRSTRLEN];
    const char *r = memcmp(key->a, mapped, 12) == 0 ? inet_ntop(AF_INET, key->a + 12, tmp, sizeof(tmp))
                                                    : inet_ntop(AF_INET6, key->a, tmp, sizeof(tmp));
    snprintf(buf, len, "%s", r != NULL ? r : "?");
}
