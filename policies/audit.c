/* audit.c - the audit trail's parts that do not depend on a backend: the record hash (one canonical
 * encoding, so that every backend and every version computes the same bytes), the checks a verifier
 * makes record by record, and the small JSON texts that describe a change's before and after.
 *
 * Why length-prefixed fields: with plain concatenation ("ab" + "c" and "a" + "bc") two different
 * records could hash alike, and a NULL could pass for an empty text. Each text here is a presence
 * octet, then its length in 8 octets, then its bytes; integers are 8 octets big-endian; a leading
 * domain label keeps these hashes apart from any other SHA-256 the gateway computes.
 */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/store_int.h"

#define AUDIT_DOMAIN "hsmgate-audit-v1"

static void put_u64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

/* wolfCrypt's SHA-256 functions return 0 on success; anything else is a bad argument. */
#define SHA_TRY(expr)                                                                              \
    do {                                                                                           \
        if ((expr) != 0) {                                                                         \
            rc = POL_E_NOMEM;                                                                      \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static int sha_text(wc_Sha256 *sha, const char *text, size_t len)
{
    uint8_t hdr[9];
    if (text == NULL) {
        hdr[0] = 0;
        return wc_Sha256Update(sha, hdr, 1);
    }
    if (len > UINT32_MAX)
        return -1;
    hdr[0] = 1;
    put_u64(hdr + 1, (uint64_t)len);
    if (wc_Sha256Update(sha, hdr, sizeof(hdr)) != 0)
        return -1;
    return len == 0 ? 0 : wc_Sha256Update(sha, (const byte *)text, (word32)len);
}

int pol_audit_hash(const struct pol_audit_record *r, const size_t *len, const uint8_t prev[POL_HASH_LEN],
                   uint8_t out[POL_HASH_LEN])
{
    const char *texts[POL_AUDIT_TEXTS] = { r->actor, r->action, r->target, r->before,
                                          r->after, r->request_id, r->source, r->comment };
    wc_Sha256 sha;
    uint8_t ints[24];
    int rc = 0, inited = 0;

    SHA_TRY(wc_InitSha256(&sha));
    inited = 1;
    SHA_TRY(sha_text(&sha, AUDIT_DOMAIN, strlen(AUDIT_DOMAIN)));
    SHA_TRY(wc_Sha256Update(&sha, prev, POL_HASH_LEN));
    put_u64(ints, (uint64_t)r->id);
    put_u64(ints + 8, (uint64_t)(int64_t)r->at);
    put_u64(ints + 16, r->generation);
    SHA_TRY(wc_Sha256Update(&sha, ints, sizeof(ints)));
    for (int i = 0; i < POL_AUDIT_TEXTS; i++) {
        size_t n = texts[i] == NULL ? 0 : len != NULL ? len[i] : strlen(texts[i]);
        SHA_TRY(sha_text(&sha, texts[i], n));
    }
    SHA_TRY(wc_Sha256Final(&sha, out));
out:
    if (inited)
        wc_Sha256Free(&sha);
    return rc;
}

static void hex_short(const uint8_t *p, char *out, size_t cap)
{
    pol_hex(p, 8, out, cap);    /* 16 hex digits are enough for a person to compare */
}

int pol_audit_check(struct pol_audit_walk *v, const struct pol_audit_record *r, const size_t *len,
                    size_t prev_len, size_t hash_len, char *err, size_t errlen)
{
    uint8_t h[POL_HASH_LEN];
    char a[24], b[24];
    int rc;

    v->bad_id = r->id;
    if (r->id != v->last_id + 1) {
        if (v->last_id == 0)
            return pol_errf(err, errlen, POL_E_AUDIT, "audit record %lld: the trail starts at id %lld, not 1 "
                            "(the records before it were removed)", (long long)r->id, (long long)r->id);
        return pol_errf(err, errlen, POL_E_AUDIT, "audit record %lld: follows record %lld (records %lld to %lld "
                        "were removed, or records were reordered)", (long long)r->id, (long long)v->last_id,
                        (long long)v->last_id + 1, (long long)r->id - 1);
    }
    if (r->prev_hash == NULL || prev_len != POL_HASH_LEN || memcmp(r->prev_hash, v->prev, POL_HASH_LEN) != 0) {
        if (r->prev_hash != NULL && prev_len == POL_HASH_LEN)
            hex_short(r->prev_hash, a, sizeof(a));
        else
            snprintf(a, sizeof(a), "missing");
        hex_short(v->prev, b, sizeof(b));
        return pol_errf(err, errlen, POL_E_AUDIT, "audit record %lld: prev_hash %s... is not the hash of the record "
                        "before it (%s...): a record before it was removed, changed or reordered",
                        (long long)r->id, a, b);
    }
    if ((rc = pol_audit_hash(r, len, v->prev, h)) != 0)
        return pol_errf(err, errlen, rc, "audit record %lld: cannot hash it", (long long)r->id);
    if (r->hash == NULL || hash_len != POL_HASH_LEN || memcmp(r->hash, h, POL_HASH_LEN) != 0)
        return pol_errf(err, errlen, POL_E_AUDIT, "audit record %lld: its content does not match its hash "
                        "(the record was changed)", (long long)r->id);
    if (v->last_id != 0 && r->generation <= v->last_gen)
        return pol_errf(err, errlen, POL_E_AUDIT, "audit record %lld: generation %llu does not follow %llu",
                        (long long)r->id, (unsigned long long)r->generation, (unsigned long long)v->last_gen);
    memcpy(v->prev, h, POL_HASH_LEN);
    v->last_id = r->id;
    v->last_gen = r->generation;
    v->records++;
    v->bad_id = 0;
    return 0;
}

int pol_audit_check_tail(struct pol_audit_walk *v, uint64_t store_gen, char *err, size_t errlen)
{
    if (store_gen == v->last_gen)
        return 0;
    v->bad_id = v->last_id + 1;
    if (store_gen > v->last_gen)
        return pol_errf(err, errlen, POL_E_AUDIT, "audit record %lld: missing: the store is at generation %llu but "
                        "the last record (%lld) made generation %llu (the last records were removed)",
                        (long long)v->bad_id, (unsigned long long)store_gen, (long long)v->last_id,
                        (unsigned long long)v->last_gen);
    return pol_errf(err, errlen, POL_E_AUDIT, "audit record %lld: the last record claims generation %llu, past the "
                    "store's %llu", (long long)v->last_id, (unsigned long long)v->last_gen,
                    (unsigned long long)store_gen);
}

/* ---------------------------------------------------------------- JSON texts */

static void jb_put(struct pol_jbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (q == NULL) {
            b->failed = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void jb_puts(struct pol_jbuf *b, const char *s)
{
    jb_put(b, s, strlen(s));
}

/* A JSON string (RFC 8259 7): quote, backslash and control characters escaped; bytes >= 0x80 as
 * they are (the texts stored are UTF-8 or ASCII already). */
static void jb_string(struct pol_jbuf *b, const char *s)
{
    jb_put(b, "\"", 1);
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            jb_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            jb_put(b, esc, 6);
        } else {
            jb_put(b, p, 1);
        }
    }
    jb_put(b, "\"", 1);
}

static void jb_key(struct pol_jbuf *b, const char *key)
{
    if (b->len > 0 && b->p[b->len - 1] != '{')
        jb_put(b, ",", 1);
    jb_string(b, key);
    jb_put(b, ":", 1);
}

void pol_jbuf_open(struct pol_jbuf *b)
{
    jb_put(b, "{", 1);
}

void pol_jbuf_close(struct pol_jbuf *b)
{
    jb_put(b, "}", 1);
}

void pol_jbuf_str(struct pol_jbuf *b, const char *key, const char *v)
{
    jb_key(b, key);
    if (v == NULL)
        jb_puts(b, "null");
    else
        jb_string(b, v);
}

void pol_jbuf_int(struct pol_jbuf *b, const char *key, long long v)
{
    char n[32];
    snprintf(n, sizeof(n), "%lld", v);
    jb_key(b, key);
    jb_puts(b, n);
}

void pol_jbuf_time(struct pol_jbuf *b, const char *key, time_t t)
{
    char at[32];
    if (t == 0) {
        pol_jbuf_str(b, key, NULL);
        return;
    }
    pol_time_format(t, at, sizeof(at));
    pol_jbuf_str(b, key, at);
}

void pol_jbuf_hex(struct pol_jbuf *b, const char *key, const uint8_t *p, size_t n)
{
    char hex[2 * 64 + 1];
    if (p == NULL || n > 64) {
        pol_jbuf_str(b, key, NULL);
        return;
    }
    pol_hex(p, n, hex, sizeof(hex));
    pol_jbuf_str(b, key, hex);
}

int pol_jbuf_done(struct pol_jbuf *b)
{
    if (b->failed || b->p == NULL) {
        pol_jbuf_free(b);
        return POL_E_NOMEM;
    }
    return 0;
}

void pol_jbuf_free(struct pol_jbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}
