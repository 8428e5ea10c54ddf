/* tickets.c - session tickets with the client's identity kept beside them (tickets.h). */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>

#include "gateway/tickets.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "gateway/log.h"
#include "gateway/tls.h"
#include "pkcs11/hsm.h"

#define KEY_LEN 32
#define GCM_IV_LEN 12
#define GCM_TAG_LEN 16
#define IDS_MAX (GW_IDENT_MAX_CHAIN * 4096u)

struct entry {
    uint8_t handle[WOLFSSL_TICKET_NAME_SZ];
    uint8_t tag[GW_TICKET_TAG_LEN];
    uint64_t expires_ms;
    unsigned char *ids;         /* serialized chain (tickets.h); NULL with ids_len 0: no certificate */
    uint32_t ids_len;
    int32_t next;               /* bucket chain, -1 ends it */
    int used;
};

static struct {
    pthread_mutex_t mu;
    struct entry *ring;         /* GW_TICKETS_MAX slots, filled in order; the oldest goes first */
    uint32_t head;
    int32_t *buckets;
    uint32_t nbuckets;          /* a power of two */
    uint8_t key[KEY_LEN];
    int ready;
} T = { .mu = PTHREAD_MUTEX_INITIALIZER };

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int random_bytes(void *p, size_t n)
{
    unsigned char *b = p;
    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

int gw_tickets_init(void)
{
    if (T.ready)
        return 0;
    T.nbuckets = 1;
    while (T.nbuckets < GW_TICKETS_MAX)
        T.nbuckets <<= 1;
    T.ring = calloc(GW_TICKETS_MAX, sizeof(*T.ring));
    T.buckets = malloc(T.nbuckets * sizeof(*T.buckets));
    if (T.ring == NULL || T.buckets == NULL || random_bytes(T.key, sizeof(T.key)) != 0) {
        free(T.ring);
        free(T.buckets);
        T.ring = NULL;
        T.buckets = NULL;
        return -1;
    }
    for (uint32_t i = 0; i < T.nbuckets; i++)
        T.buckets[i] = -1;
    T.head = 0;
    T.ready = 1;
    return 0;
}

void gw_tickets_cleanup(void)
{
    if (!T.ready)
        return;
    for (uint32_t i = 0; i < GW_TICKETS_MAX; i++)
        free(T.ring[i].ids);
    free(T.ring);
    free(T.buckets);
    T.ring = NULL;
    T.buckets = NULL;
    hsm_wipe(T.key, sizeof(T.key));
    T.ready = 0;
}

static uint32_t bucket_of(const uint8_t *handle)
{
    uint32_t h;
    memcpy(&h, handle, sizeof(h)); /* random bytes: any four of them hash well */
    return h & (T.nbuckets - 1);
}

static void unlink_entry(int32_t idx)
{
    int32_t *p = &T.buckets[bucket_of(T.ring[idx].handle)];
    while (*p >= 0 && *p != idx)
        p = &T.ring[*p].next;
    if (*p == idx)
        *p = T.ring[idx].next;
    free(T.ring[idx].ids);
    T.ring[idx].ids = NULL;
    T.ring[idx].used = 0;
}

/* Takes ownership of ids. */
static void insert(const uint8_t *handle, const uint8_t *tag, unsigned char *ids, uint32_t ids_len)
{
    pthread_mutex_lock(&T.mu);
    int32_t idx = (int32_t)T.head;
    T.head = (T.head + 1) % GW_TICKETS_MAX;
    if (T.ring[idx].used)
        unlink_entry(idx);
    struct entry *e = &T.ring[idx];
    memcpy(e->handle, handle, sizeof(e->handle));
    memcpy(e->tag, tag, sizeof(e->tag));
    e->expires_ms = mono_ms() + GW_TICKET_LIFETIME_S * 1000u;
    e->ids = ids;
    e->ids_len = ids_len;
    e->used = 1;
    uint32_t b = bucket_of(handle);
    e->next = T.buckets[b];
    T.buckets[b] = idx;
    pthread_mutex_unlock(&T.mu);
}

/* Copies the identity of handle (if present, fresh, and issued under tag) into *ids. 0: found. */
static int lookup(const uint8_t *handle, const uint8_t *tag, unsigned char **ids, size_t *ids_len)
{
    int rc = -1;
    pthread_mutex_lock(&T.mu);
    for (int32_t i = T.buckets[bucket_of(handle)]; i >= 0; i = T.ring[i].next) {
        struct entry *e = &T.ring[i];
        if (memcmp(e->handle, handle, sizeof(e->handle)) != 0)
            continue;
        if (memcmp(e->tag, tag, sizeof(e->tag)) != 0 || e->expires_ms <= mono_ms())
            break;
        *ids = NULL;
        *ids_len = e->ids_len;
        if (e->ids_len > 0) {
            *ids = malloc(e->ids_len);
            if (*ids == NULL)
                break;
            memcpy(*ids, e->ids, e->ids_len);
        }
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&T.mu);
    return rc;
}

size_t gw_tickets_split(const unsigned char *buf, size_t len, const uint8_t **der, size_t *lens, size_t max)
{
    size_t n = 0, off = 0;
    while (off + 2 <= len && n < max) {
        size_t l = ((size_t)buf[off] << 8) | buf[off + 1];
        off += 2;
        if (l == 0 || l > len - off)
            break;
        der[n] = buf + off;
        lens[n] = l;
        n++;
        off += l;
    }
    return n;
}

/* The chain this connection's client is known by: the one kept with the ticket it resumed with,
 * or the one in its TLS session (sent in this handshake, or restored from wolfSSL's cache). */
static int current_ids(WOLFSSL *ssl, struct gw_tls_state *st, unsigned char **out, uint32_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (st->ticket_resumed && wolfSSL_session_reused(ssl)) {
        if (st->ticket_ids_len > 0) {
            if ((*out = malloc(st->ticket_ids_len)) == NULL)
                return -1;
            memcpy(*out, st->ticket_ids, st->ticket_ids_len);
            *out_len = (uint32_t)st->ticket_ids_len;
        }
        return 0;
    }
    WOLFSSL_X509_CHAIN *chain = wolfSSL_get_peer_chain(ssl);
    int n = chain != NULL ? wolfSSL_get_chain_count(chain) : 0;
    if (n > GW_IDENT_MAX_CHAIN)
        n = GW_IDENT_MAX_CHAIN;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        int l = wolfSSL_get_chain_length(chain, i);
        if (l <= 0 || l > 65535)
            return -1;
        total += 2 + (size_t)l;
    }
    if (total == 0)
        return 0;
    if (total > IDS_MAX || (*out = malloc(total)) == NULL)
        return -1;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        int l = wolfSSL_get_chain_length(chain, i);
        const unsigned char *d = wolfSSL_get_chain_cert(chain, i);
        if (d == NULL) {
            free(*out);
            *out = NULL;
            return -1;
        }
        (*out)[off++] = (unsigned char)(l >> 8);
        (*out)[off++] = (unsigned char)l;
        memcpy(*out + off, d, (size_t)l);
        off += (size_t)l;
    }
    *out_len = (uint32_t)off;
    return 0;
}

static int seal(int enc, const unsigned char *key_name, const unsigned char *iv, unsigned char *mac,
                unsigned char *ticket, int len)
{
    Aes aes;
    unsigned char aad[WOLFSSL_TICKET_NAME_SZ + GCM_IV_LEN + 2];
    int ok;

    memcpy(aad, key_name, WOLFSSL_TICKET_NAME_SZ);
    memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, GCM_IV_LEN);
    aad[sizeof(aad) - 2] = (unsigned char)(len >> 8);
    aad[sizeof(aad) - 1] = (unsigned char)len;
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0)
        return -1;
    ok = wc_AesGcmSetKey(&aes, T.key, KEY_LEN) == 0;
    if (ok && enc)
        ok = wc_AesGcmEncrypt(&aes, ticket, ticket, (word32)len, iv, GCM_IV_LEN, mac, GCM_TAG_LEN, aad,
                              sizeof(aad)) == 0;
    else if (ok)
        ok = wc_AesGcmDecrypt(&aes, ticket, ticket, (word32)len, iv, GCM_IV_LEN, mac, GCM_TAG_LEN, aad,
                              sizeof(aad)) == 0;
    wc_AesFree(&aes);
    return ok ? 0 : -1;
}

static int ticket_cb(WOLFSSL *ssl, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
                     unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc,
                     unsigned char *ticket, int inLen, int *outLen, void *userCtx)
{
    const uint8_t *tag = userCtx;
    struct gw_tls_state *st = gw_tls_state_of(ssl);
    if (st == NULL || tag == NULL || inLen <= 0 || inLen > 65535 || !T.ready)
        return WOLFSSL_TICKET_RET_REJECT;
    if (enc) {
        unsigned char *ids = NULL;
        uint32_t ids_len = 0;
        if (current_ids(ssl, st, &ids, &ids_len) != 0 || random_bytes(key_name, WOLFSSL_TICKET_NAME_SZ) != 0 ||
            random_bytes(iv, GCM_IV_LEN) != 0) {
            free(ids);
            return WOLFSSL_TICKET_RET_REJECT; /* no ticket: the client does full handshakes */
        }
        memset(iv + GCM_IV_LEN, 0, WOLFSSL_TICKET_IV_SZ - GCM_IV_LEN);
        memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
        if (seal(1, key_name, iv, mac, ticket, inLen) != 0) {
            free(ids);
            return WOLFSSL_TICKET_RET_REJECT;
        }
        insert(key_name, tag, ids, ids_len);
        *outLen = inLen;
        return WOLFSSL_TICKET_RET_OK;
    }
    /* A ticket we cannot vouch for is not an error: the client gets a full handshake. */
    static const unsigned char zero[WOLFSSL_TICKET_MAC_SZ - GCM_TAG_LEN];
    unsigned char *ids = NULL;
    size_t ids_len = 0;
    if (memcmp(mac + GCM_TAG_LEN, zero, sizeof(zero)) != 0 || lookup(key_name, tag, &ids, &ids_len) != 0)
        return WOLFSSL_TICKET_RET_REJECT;
    if (seal(0, key_name, iv, mac, ticket, inLen) != 0) {
        free(ids);
        return WOLFSSL_TICKET_RET_REJECT;
    }
    free(st->ticket_ids);
    st->ticket_ids = ids;
    st->ticket_ids_len = ids_len;
    st->ticket_resumed = 1;
    *outLen = inLen;
    return WOLFSSL_TICKET_RET_OK;
}

int gw_tickets_install(void *ctx, const unsigned char *tag)
{
    WOLFSSL_CTX *c = ctx;
    if (wolfSSL_CTX_set_TicketEncCb(c, ticket_cb) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_TicketEncCtx(c, (void *)(uintptr_t)tag) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_TicketHint(c, (int)GW_TICKET_LIFETIME_S) != WOLFSSL_SUCCESS)
        return -1;
    return 0;
}
