/* auth.c - bearer tokens (RFC 6750) for the admin API: the tokens file, the lookup, and slowing down
 * an address that keeps presenting wrong tokens.
 *
 * The file holds only SHA-256 hashes of the tokens (admin-api/README.md: format), so reading it does
 * not let anyone call the API; still, it must not be writable by group or others (anyone who can add
 * a line becomes admin) nor readable by others (the names and roles are an attack map), like the HSM
 * PIN file rule of pkcs11/pin.c. A presented token is hashed and compared with every entry in
 * constant time, with no early exit, so the time taken says nothing about which entry came close.
 */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin-api/adm_srv.h"

#define AUTH_MAGIC 0x61646d41u          /* "admA" */
#define TOKENS_FILE_MAX (1u << 20)
#define TOKENS_MAX 4096
#define TOKEN_PRESENTED_MAX 512         /* longer Authorization values are refused unhashed */
#define HASH_LEN 32

struct adm_token {
    char name[ADM_TOKEN_NAME_MAX + 1];
    enum adm_role role;
    unsigned cert;              /* 1: hash is a client certificate's SHA-256 ("cert-sha256:" line), which only
                                 * the TLS front's identity matches; 0: a bearer token's hash */
    uint8_t hash[HASH_LEN];
};

struct adm_tokens {
    size_t n;
    struct adm_token t[];
};

struct auth_slot {
    char peer[64];              /* "" when free */
    time_t first_fail;          /* start of the current failure window */
    time_t last_seen;
    unsigned fails;
    time_t blocked_until;       /* 0: not blocked */
};

struct adm_auth {
    uint32_t magic;
    pthread_mutex_t mu;
    char *path;                 /* NULL: no tokens file */
    struct adm_tokens *tokens;  /* under mu; never NULL */
    struct auth_slot slots[ADM_AUTH_SLOTS];
    uint64_t failures, throttled, reloads_ok, reloads_failed;
};

/* The volatile pointer keeps the compiler from treating the stores as dead (C11 5.1.2.3). */
static void auth_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (p != NULL && n--)
        *v++ = 0;
}

const char *adm_role_name(enum adm_role r)
{
    switch (r) {
    case ADM_ROLE_NONE: return "none";
    case ADM_ROLE_READER: return "reader";
    case ADM_ROLE_OPERATOR: return "operator";
    case ADM_ROLE_ADMIN: return "admin";
    }
    return "unknown";
}

static int role_parse(const char *s, size_t n, enum adm_role *out)
{
    static const enum adm_role roles[] = { ADM_ROLE_READER, ADM_ROLE_OPERATOR, ADM_ROLE_ADMIN };

    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        const char *name = adm_role_name(roles[i]);
        if (strlen(name) == n && memcmp(name, s, n) == 0) {
            *out = roles[i];
            return 0;
        }
    }
    return -1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > ADM_TOKEN_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int sha256(const void *p, size_t n, uint8_t out[HASH_LEN])
{
    if (n > UINT32_MAX)
        return -1;
    return wc_Sha256Hash((const byte *)p, (word32)n, out) == 0 ? 0 : -1;
}

/* Reads the whole file after checking what it is and who may change or read it. */
static int tokens_read(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t n = 0;
    int fd, rc = -1;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    /* fstat on the opened file, not stat on the name: the mode we check is the file we read. */
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errlen, "%s: writable by group or others (mode %04o); run chmod 600 on it", path,
                 (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_mode & S_IROTH) {
        snprintf(err, errlen, "%s: readable by others (mode %04o); run chmod 600 (or 640) on it", path,
                 (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_size > (off_t)TOKENS_FILE_MAX) {
        snprintf(err, errlen, "%s: larger than %u bytes", path, TOKENS_FILE_MAX);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *outlen = n;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

#define CERT_PREFIX "cert-sha256:"

/* 64 hex digits into out; -1 if s is anything else. */
static int hex32(const char *s, size_t n, uint8_t out[HASH_LEN])
{
    if (n != 2 * HASH_LEN)
        return -1;
    for (size_t k = 0; k < HASH_LEN; k++) {
        int hi = hexval(s[2 * k]), lo = hexval(s[2 * k + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[k] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* One line "NAME ROLE SHA256HEX" or "NAME ROLE cert-sha256:FINGERPRINT" (blanks or tabs between,
 * nothing after) into t. */
static int tokens_parse_line(const char *path, unsigned lineno, const char *s, size_t len, struct adm_token *t,
                             char *err, size_t errlen)
{
    const char *f[3];
    size_t fl[3], nf = 0, i = 0;

    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == len)
            break;
        if (nf == 3) {
            snprintf(err, errlen, "%s:%u: more than three fields (NAME ROLE SHA256HEX)", path, lineno);
            return -1;
        }
        f[nf] = s + i;
        while (i < len && s[i] != ' ' && s[i] != '\t')
            i++;
        fl[nf] = (size_t)(s + i - f[nf]);
        nf++;
    }
    if (nf != 3) {
        snprintf(err, errlen, "%s:%u: expected three fields (NAME ROLE SHA256HEX), found %zu", path, lineno, nf);
        return -1;
    }
    if (!name_ok(f[0], fl[0])) {
        snprintf(err, errlen, "%s:%u: the name must be 1-%d characters of [A-Za-z0-9._-]", path, lineno,
                 ADM_TOKEN_NAME_MAX);
        return -1;
    }
    memcpy(t->name, f[0], fl[0]);
    t->name[fl[0]] = '\0';
    if (role_parse(f[1], fl[1], &t->role) != 0) {
        snprintf(err, errlen, "%s:%u: unknown role \"%.*s\" (reader, operator or admin)", path, lineno,
                 (int)(fl[1] > 32 ? 32 : fl[1]), f[1]);
        return -1;
    }
    t->cert = fl[2] > strlen(CERT_PREFIX) && memcmp(f[2], CERT_PREFIX, strlen(CERT_PREFIX)) == 0;
    if (t->cert) {
        if (hex32(f[2] + strlen(CERT_PREFIX), fl[2] - strlen(CERT_PREFIX), t->hash) != 0) {
            snprintf(err, errlen, "%s:%u: after cert-sha256: the SHA-256 fingerprint of the client certificate, "
                     "64 hex digits without colons (openssl x509 -noout -fingerprint -sha256, colons removed)",
                     path, lineno);
            return -1;
        }
        return 0;
    }
    if (fl[2] != 2 * HASH_LEN) {
        snprintf(err, errlen, "%s:%u: the hash must be 64 hex digits (the SHA-256 of the token), not %zu characters",
                 path, lineno, fl[2]);
        return -1;
    }
    if (hex32(f[2], fl[2], t->hash) != 0) {
        snprintf(err, errlen, "%s:%u: the hash must be 64 hex digits (the SHA-256 of the token)", path, lineno);
        return -1;
    }
    return 0;
}

/* Loads and checks a whole tokens file into a new table (*out, malloc'd). */
static int tokens_load(const char *path, struct adm_tokens **out, char *err, size_t errlen)
{
    struct adm_tokens *tab = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 16, pos = 0;
    unsigned lineno = 0;
    int rc = -1;

    if (tokens_read(path, &buf, &len, err, errlen) != 0)
        goto out;
    if (memchr(buf, '\0', len) != NULL) {
        snprintf(err, errlen, "%s: contains a NUL byte; not a tokens file", path);
        goto out;
    }
    tab = malloc(sizeof(*tab) + cap * sizeof(tab->t[0]));
    if (tab == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    tab->n = 0;
    while (pos < len) {
        const char *line = buf + pos, *nl = memchr(line, '\n', len - pos);
        size_t ll = nl != NULL ? (size_t)(nl - line) : len - pos, k = 0;

        pos += ll + (nl != NULL);
        lineno++;
        if (ll > 0 && line[ll - 1] == '\r')
            ll--;
        while (k < ll && (line[k] == ' ' || line[k] == '\t'))
            k++;
        if (k == ll || line[k] == '#')
            continue;
        if (tab->n == TOKENS_MAX) {
            snprintf(err, errlen, "%s:%u: more than %d tokens", path, lineno, TOKENS_MAX);
            goto out;
        }
        if (tab->n == cap) {
            struct adm_tokens *bigger = realloc(tab, sizeof(*tab) + 2 * cap * sizeof(tab->t[0]));
            if (bigger == NULL) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto out;
            }
            tab = bigger;
            cap *= 2;
        }
        struct adm_token *t = &tab->t[tab->n];
        if (tokens_parse_line(path, lineno, line, ll, t, err, errlen) != 0)
            goto out;
        for (size_t j = 0; j < tab->n; j++) {
            if (strcmp(tab->t[j].name, t->name) == 0) {
                snprintf(err, errlen, "%s:%u: the name %s is used twice", path, lineno, t->name);
                goto out;
            }
            /* The same token (or certificate) under two names would make "who did it" ambiguous. */
            if (tab->t[j].cert == t->cert && memcmp(tab->t[j].hash, t->hash, HASH_LEN) == 0) {
                snprintf(err, errlen, "%s:%u: the same %s as %s", path, lineno,
                         t->cert ? "certificate fingerprint" : "token hash", tab->t[j].name);
                goto out;
            }
        }
        tab->n++;
    }
    *out = tab;
    tab = NULL;
    rc = 0;
out:
    free(tab);
    free(buf);
    return rc;
}

int adm_auth_new(const char *path, struct adm_auth **out, char *err, size_t errlen)
{
    struct adm_auth *a = NULL;
    int rc = -1;

    *out = NULL;
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    a->magic = AUTH_MAGIC;
    if (pthread_mutex_init(&a->mu, NULL) != 0) {
        snprintf(err, errlen, "cannot create a mutex");
        free(a);
        a = NULL;
        goto out;
    }
    if (path != NULL) {
        a->path = strdup(path);
        if (a->path == NULL) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        if (tokens_load(path, &a->tokens, err, errlen) != 0)
            goto out;
    } else {
        a->tokens = calloc(1, sizeof(*a->tokens));
        if (a->tokens == NULL) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    *out = a;
    a = NULL;
    rc = 0;
out:
    adm_auth_free(a);
    return rc;
}

void adm_auth_free(struct adm_auth *a)
{
    if (a == NULL || a->magic != AUTH_MAGIC)
        return;
    pthread_mutex_destroy(&a->mu);
    free(a->tokens);
    free(a->path);
    a->magic = 0;
    free(a);
}

int adm_auth_reload(struct adm_auth *a, char *err, size_t errlen)
{
    struct adm_tokens *fresh = NULL, *old;

    if (a == NULL || a->magic != AUTH_MAGIC) {
        snprintf(err, errlen, "no admin server");
        return -1;
    }
    if (a->path == NULL) {
        snprintf(err, errlen, "no tokens file configured");
        return -1;
    }
    /* Read outside the lock: requests keep being answered with the old table meanwhile. */
    if (tokens_load(a->path, &fresh, err, errlen) != 0) {
        pthread_mutex_lock(&a->mu);
        a->reloads_failed++;
        pthread_mutex_unlock(&a->mu);
        return -1;
    }
    pthread_mutex_lock(&a->mu);
    old = a->tokens;
    a->tokens = fresh;
    a->reloads_ok++;
    pthread_mutex_unlock(&a->mu);
    free(old);
    return 0;
}

/* The slot of peer, or NULL (_locked: a->mu held). */
static struct auth_slot *slot_find_locked(struct adm_auth *a, const char *peer)
{
    for (size_t i = 0; i < ADM_AUTH_SLOTS; i++)
        if (a->slots[i].peer[0] != '\0' && strcmp(a->slots[i].peer, peer) == 0)
            return &a->slots[i];
    return NULL;
}

/* A slot for peer: a free one, else the least recently seen one that is not blocked, else the least
 * recently seen one (so a flood of new addresses cannot free a blocked one while room remains). */
static struct auth_slot *slot_take_locked(struct adm_auth *a, const char *peer, time_t now)
{
    struct auth_slot *victim = NULL, *oldest = NULL;

    for (size_t i = 0; i < ADM_AUTH_SLOTS; i++) {
        struct auth_slot *s = &a->slots[i];
        if (s->peer[0] == '\0') {
            victim = s;
            break;
        }
        if (oldest == NULL || s->last_seen < oldest->last_seen)
            oldest = s;
        if (s->blocked_until <= now && (victim == NULL || s->last_seen < victim->last_seen))
            victim = s;
    }
    if (victim == NULL)
        victim = oldest;
    memset(victim, 0, sizeof(*victim));
    snprintf(victim->peer, sizeof(victim->peer), "%s", peer);
    victim->first_fail = now;
    return victim;
}

static void fail_locked(struct adm_auth *a, const char *peer, time_t now)
{
    struct auth_slot *s = slot_find_locked(a, peer);

    a->failures++;
    if (s == NULL)
        s = slot_take_locked(a, peer, now);
    if (s->fails == 0 || now - s->first_fail >= ADM_AUTH_FAIL_WINDOW) {
        s->fails = 0;
        s->first_fail = now;
    }
    s->fails++;
    s->last_seen = now;
    if (s->fails >= ADM_AUTH_FAIL_LIMIT)
        s->blocked_until = now + ADM_AUTH_BLOCK_SECONDS;
}

/* "Bearer <b64token>" (RFC 6750 2.1; the scheme is case-insensitive, RFC 9110 11.1) into tok. */
static int bearer_take(const char *h, char *tok, size_t cap, size_t *len)
{
    size_t n = 0;

    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return -1;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    while (h[n] != '\0' && h[n] != ' ' && h[n] != '\t') {
        char c = h[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '='))
            return -1;
        if (n + 1 >= cap)
            return -1;
        tok[n] = c;
        n++;
    }
    tok[n] = '\0';
    for (size_t i = n; h[i] != '\0'; i++)
        if (h[i] != ' ' && h[i] != '\t')
            return -1;
    *len = n;
    return n > 0 ? 0 : -1;
}

enum adm_auth_result adm_auth_check(struct adm_auth *a, const char *authorization, const char *peer, time_t now,
                                    char *name, size_t namecap, enum adm_role *role, unsigned *retry_after)
{
    char tok[TOKEN_PRESENTED_MAX + 1];
    uint8_t h[HASH_LEN];
    enum adm_auth_result rc;
    struct auth_slot *s;
    size_t len = 0, match = 0;
    unsigned found = 0;

    if (name != NULL && namecap > 0)
        name[0] = '\0';
    *role = ADM_ROLE_NONE;
    if (a == NULL || a->magic != AUTH_MAGIC)
        return ADM_AUTH_BAD;
    pthread_mutex_lock(&a->mu);
    s = slot_find_locked(a, peer);
    if (s != NULL && s->blocked_until != 0) {
        if (s->blocked_until > now) {
            *retry_after = (unsigned)(s->blocked_until - now);
            a->throttled++;
            rc = ADM_AUTH_THROTTLED;
            goto out;
        }
        memset(s, 0, sizeof(*s));       /* served its time */
    }
    if (authorization == NULL || authorization[strspn(authorization, " \t")] == '\0') {
        rc = ADM_AUTH_MISSING;
        goto out;
    }
    if (bearer_take(authorization, tok, sizeof(tok), &len) != 0 || sha256(tok, len, h) != 0) {
        fail_locked(a, peer, now);
        rc = ADM_AUTH_BAD;
        goto out;
    }
    /* Every entry, no early exit; the match is selected with masks, not branches. Names and hashes
     * are unique (tokens_load), so at most one entry matches. */
    for (size_t i = 0; i < a->tokens->n; i++) {
        unsigned d = 0;
        for (size_t k = 0; k < HASH_LEN; k++)
            d |= (unsigned)(h[k] ^ a->tokens->t[i].hash[k]);
        unsigned eq = ((d - 1u) >> 8) & 1u & ~a->tokens->t[i].cert;    /* 1 iff d == 0 (d < 256), a token */
        size_t mask = (size_t)0 - (size_t)eq;
        match = (match & ~mask) | (i & mask);
        found |= eq;
    }
    if (!found) {
        fail_locked(a, peer, now);
        rc = ADM_AUTH_BAD;
        goto out;
    }
    if (name != NULL && namecap > 0)
        snprintf(name, namecap, "%s", a->tokens->t[match].name);
    *role = a->tokens->t[match].role;
    if (s != NULL)
        s->fails = 0;
    rc = ADM_AUTH_OK;
out:
    pthread_mutex_unlock(&a->mu);
    auth_wipe(tok, sizeof(tok));
    auth_wipe(h, sizeof(h));
    return rc;
}

void adm_auth_get_stats(struct adm_auth *a, struct adm_auth_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (a == NULL || a->magic != AUTH_MAGIC)
        return;
    pthread_mutex_lock(&a->mu);
    out->tokens = a->tokens->n;
    out->failures = a->failures;
    out->throttled = a->throttled;
    out->reloads_ok = a->reloads_ok;
    out->reloads_failed = a->reloads_failed;
    pthread_mutex_unlock(&a->mu);
}

int adm_token_new(char *token_out, size_t cap, char *hash_hex_out)
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t raw[33] = { 0 }, h[HASH_LEN];
    size_t got = 0, o = 0;
    int rc = -1;

    if (token_out == NULL || hash_hex_out == NULL || cap < ADM_TOKEN_LEN + 1)
        return -1;
    while (got < 32) {
        ssize_t r = getrandom(raw + got, 32 - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto out;
        got += (size_t)r;
    }
    /* 32 bytes: ten groups of three, then two bytes (raw[32] is a zero pad) giving three digits. */
    for (size_t i = 0; i < 33; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        token_out[o++] = b64url[(v >> 18) & 63];
        token_out[o++] = b64url[(v >> 12) & 63];
        token_out[o++] = b64url[(v >> 6) & 63];
        if (i + 3 < 33)
            token_out[o++] = b64url[v & 63];
    }
    token_out[o] = '\0';
    if (o != ADM_TOKEN_LEN || sha256(token_out, o, h) != 0)
        goto out;
    for (size_t i = 0; i < HASH_LEN; i++)
        snprintf(hash_hex_out + 2 * i, 3, "%02x", h[i]);
    rc = 0;
out:
    if (rc != 0)
        auth_wipe(token_out, cap);
    auth_wipe(raw, sizeof(raw));
    auth_wipe(h, sizeof(h));
    return rc;
}

int adm_auth_check_cert(struct adm_auth *a, const char *fingerprint_hex, char *name, size_t namecap,
                        enum adm_role *role)
{
    uint8_t fp[HASH_LEN];
    int rc = -1;

    if (name != NULL && namecap > 0)
        name[0] = '\0';
    *role = ADM_ROLE_NONE;
    if (a == NULL || a->magic != AUTH_MAGIC || fingerprint_hex == NULL ||
        hex32(fingerprint_hex, strlen(fingerprint_hex), fp) != 0)
        return -1;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->tokens->n; i++) {
        const struct adm_token *t = &a->tokens->t[i];
        if (t->cert && memcmp(t->hash, fp, HASH_LEN) == 0) {
            if (name != NULL && namecap > 0)
                snprintf(name, namecap, "%s", t->name);
            *role = t->role;
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}
