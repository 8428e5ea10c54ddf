/* pol_int.h - what the files of policies/ share with each other (never included outside policies/,
 * except by this module's tests and fuzz targets). */
#ifndef HSMGATE_POLICIES_POL_INT_H
#define HSMGATE_POLICIES_POL_INT_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "policies/pol.h"

/* Guard macro for our own convention (0 is success): run, keep the code, jump to out on failure. */
#define POL_TRY(expr)                                                                              \
    do {                                                                                           \
        rc = (expr);                                                                               \
        if (rc != 0)                                                                               \
            goto out;                                                                              \
    } while (0)

/* Writes a message into err (if any) and returns code. */
int pol_errf(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---------------------------------------------------------------- DER (X.690) reader */

/* A cursor over DER bytes. */
struct pol_der {
    const uint8_t *p;
    size_t len;
};

/* One TLV: tag (single-octet tags only: X.509 needs no others), value, and the whole encoding. */
struct pol_tlv {
    uint8_t tag;
    const uint8_t *v;
    size_t len;
    const uint8_t *raw;
    size_t raw_len;
};

#define POL_TAG_BOOLEAN 0x01
#define POL_TAG_INTEGER 0x02
#define POL_TAG_BIT_STRING 0x03
#define POL_TAG_OCTET_STRING 0x04
#define POL_TAG_NULL 0x05
#define POL_TAG_OID 0x06
#define POL_TAG_ENUMERATED 0x0a
#define POL_TAG_UTC_TIME 0x17
#define POL_TAG_GEN_TIME 0x18
#define POL_TAG_SEQUENCE 0x30
#define POL_TAG_SET 0x31
#define POL_TAG_CTX(n) (0xa0 | (n))     /* [n] constructed */

/* Reads the next TLV, enforcing definite, minimal lengths (DER, X.690 10.1). POL_E_DER otherwise. */
int pol_der_next(struct pol_der *d, struct pol_tlv *t) POL_WUR;
/* Same, and the tag must be tag. */
int pol_der_expect(struct pol_der *d, uint8_t tag, struct pol_tlv *t) POL_WUR;
/* The next tag without consuming it, or -1 at the end. */
int pol_der_peek(const struct pol_der *d);
/* A cursor over a TLV's value. */
static inline struct pol_der pol_der_in(const struct pol_tlv *t)
{
    struct pol_der d = { t->v, t->len };
    return d;
}
/* UTCTime (years 1950-2049) or GeneralizedTime, "Z" form with seconds (RFC 5280 4.1.2.5). */
int pol_der_time(const struct pol_tlv *t, time_t *out) POL_WUR;
/* A DER INTEGER's content octets as a positive, minimal serial / CRL number: 1..max octets. */
int pol_der_uint(const struct pol_tlv *t, size_t max) POL_WUR;
/* Compares two non-negative INTEGER contents numerically: <0, 0, >0. */
int pol_int_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* OID value equality with a constant (DER content octets). */
int pol_oid_is(const struct pol_tlv *t, const uint8_t *oid, size_t len);
#define POL_OID_IS(t, arr) pol_oid_is((t), (arr), sizeof(arr))

/* PEM (RFC 7468): the first block labelled label, base64-decoded; or the input as is when it starts
 * like DER. *out is malloc'd. */
int pol_pem_or_der(const uint8_t *in, size_t len, const char *label, uint8_t **out, size_t *out_len,
                   char *err, size_t errlen) POL_WUR;
/* Reads a whole file (at most max bytes). *out is malloc'd. */
int pol_file_read(const char *path, size_t max, uint8_t **out, size_t *len, char *err, size_t errlen) POL_WUR;

void pol_hex(const uint8_t *in, size_t n, char *out, size_t cap);   /* lower case */
/* Lower/upper-case hex with optional ':' separators into exactly want bytes (want 0: any length up to
 * cap); returns the byte count or -1. */
int pol_unhex(const char *in, uint8_t *out, size_t cap, size_t want);

int pol_sha256(const void *in, size_t len, uint8_t out[POL_HASH_LEN]) POL_WUR;

/* ---------------------------------------------------------------- certificates (cert.c) */

struct pol_san {
    uint8_t type;               /* POL_MATCH_SAN_DNS, _URI, _EMAIL */
    uint32_t off, len;          /* into the cert's string area; NUL-terminated there */
};

struct pol_cert {
    uint8_t fingerprint[POL_HASH_LEN], spki_hash[POL_HASH_LEN];
    uint8_t issuer_hash[POL_HASH_LEN], subject_hash[POL_HASH_LEN];
    uint8_t serial[POL_SERIAL_MAX];
    size_t serial_len;
    time_t not_before, not_after;
    unsigned eku;               /* POL_EKU_* */
    int has_eku, is_ca, has_key_usage;
    unsigned key_usage;         /* wolfSSL KEYUSE_* bits */
    const char *subject, *issuer, *cn;       /* cn NULL if none */
    size_t subject_len, cn_len;
    const uint8_t *issuer_der, *subject_der, *spki_der;
    size_t issuer_der_len, subject_der_len, spki_der_len;
    struct pol_san *sans;
    size_t nsans;
    char *strings;              /* SAN values, NUL-separated */
    /* one allocation: the above point into data */
    size_t data_len;
    unsigned char data[];
};

/* ---------------------------------------------------------------- hash sets (hset.c) */

/* What a set keeps with a key. */
struct pol_hval {
    uint8_t reason;             /* revocations: CRLReason */
    int64_t time;               /* allowlists: expires_at (0 never) */
    int64_t id;                 /* allowlists: entry id; indexes: position in the owner's array */
};

/* Open addressing, linear probing, load factor at most 1/2; records with inline keys in one arena
 * (layout in hset.c). Built in two steps: pol_hset_add appends (no index), pol_hset_seal makes the
 * slots; then read-only. */
struct pol_hset {
    uint64_t *slots;
    size_t mask;
    size_t count;               /* indexed records (duplicates dropped) */
    uint8_t *recs;
    size_t nbytes, cap, nrecs;
};

uint64_t pol_hash(const void *p, size_t n, uint64_t seed);
int pol_hset_add(struct pol_hset *h, const void *key, size_t len, int64_t time, int64_t id, uint8_t reason) POL_WUR;
/* Makes the index; later duplicates of a key are dropped (*dups counts them, may be NULL). */
int pol_hset_seal(struct pol_hset *h, uint64_t seed, size_t *dups) POL_WUR;
/* 1 and *out (may be NULL) if key is in the set, else 0. */
int pol_hset_find(const struct pol_hset *h, uint64_t seed, const void *key, size_t len, struct pol_hval *out);
void pol_hset_clear(struct pol_hset *h);
/* Calls fn for every indexed record (duplicates dropped at seal are not); a nonzero return stops. */
int pol_hset_each(const struct pol_hset *h, int (*fn)(void *arg, const uint8_t *key, size_t len,
                                                      const struct pol_hval *v), void *arg);
size_t pol_hset_bytes(const struct pol_hset *h);

/* ---------------------------------------------------------------- snapshots (snapshot.c) */

struct pol_snap_issuer {
    uint8_t hash[POL_HASH_LEN];
    struct pol_hset revoked;
    int has_crl;
    time_t this_update, next_update;   /* next_update 0: the CRL gave none */
};

struct pol_snap_list {
    char *name;
    struct pol_hset sets[POL_MATCH_COUNT];
};

struct pol_snapshot {
    uint64_t generation;
    uint64_t seed;              /* hash seed, random per snapshot */
    /* An overlay (pol_snapshot_overlay) is a full snapshot (base, shared) plus the keys changed
     * since, with their state now; its own issuers and lists are empty. A full snapshot counts the
     * overlays over it in refs (itself included) and is freed with the last. */
    struct pol_snapshot *base;
    atomic_int refs;
    struct pol_hset ov_rev;     /* issuer hash || serial -> id 1 revoked (reason) / 0 not */
    struct pol_hset ov_allow;   /* [list length][list][match][binary key] -> id (0: removed), time: expiry */
    size_t ov_keys;
    struct pol_snap_issuer *issuers;
    size_t nissuers, issuers_cap;
    struct pol_hset issuer_index;      /* issuer hash -> position */
    struct pol_snap_list *lists;
    size_t nlists, lists_cap;
    struct pol_hset list_index;        /* list name -> position */
    size_t revocations, crls, allow_entries, skipped_rows;
    size_t last_list;           /* builder's cache */
};

/* The issuer's CRL data and revoked set, and a list's sets, of a snapshot's full base. */
const struct pol_snap_issuer *pol_snapshot_issuer(const struct pol_snapshot *s, const uint8_t hash[POL_HASH_LEN]);
const struct pol_snap_list *pol_snapshot_list(const struct pol_snapshot *s, const char *name, size_t len);
/* Overlay first, then the base: 1 and *reason if revoked. is: pol_snapshot_issuer's answer (may be NULL). */
int pol_snapshot_revoked(const struct pol_snapshot *s, const struct pol_snap_issuer *is,
                         const uint8_t issuer_hash[POL_HASH_LEN], const uint8_t *serial, size_t len, int *reason);
/* Overlay first, then the base list l (may be NULL): 1 and *out if an entry matches. */
int pol_snapshot_allow_find(const struct pol_snapshot *s, const struct pol_snap_list *l, const char *list,
                            size_t list_len, enum pol_match m, const void *key, size_t len, struct pol_hval *out);

/* The builder interface a store backend feeds (rows in any order unless said). */
int pol_builder_new(struct pol_snapshot **out) POL_WUR;
/* Adds an issuer (each hash once) and returns its index for the calls below. */
int pol_builder_issuer(struct pol_snapshot *b, const uint8_t hash[POL_HASH_LEN], size_t *idx) POL_WUR;
int pol_builder_crl(struct pol_snapshot *b, size_t issuer, time_t this_update, time_t next_update) POL_WUR;
int pol_builder_revoked(struct pol_snapshot *b, size_t issuer, const uint8_t *serial, size_t len, int reason,
                        int64_t revoked_at) POL_WUR;
/* An allowlist row as stored (value in canonical text); a value that cannot match is skipped and
 * counted, not an error. Rows of one list are best given together (ordered by list). */
int pol_builder_allow(struct pol_snapshot *b, const char *list, const char *match, const char *value,
                      int64_t expires_at, int64_t id) POL_WUR;
/* Seals every index and sets the generation: the snapshot is then immutable. */
int pol_builder_finish(struct pol_snapshot *b, uint64_t generation, char *err, size_t errlen) POL_WUR;

/* The binary key an allowlist value is indexed under (pol_allow_value_normalize's output):
 * hex-decoded for fingerprint/spki/issuer-serial, the text itself otherwise. Returns its length or
 * a negative error. Used on store rows: untrusted input (fuzzed by tests/fuzz/fuzz_pol_row.c). */
int pol_allow_key(enum pol_match m, const char *value, uint8_t *out, size_t cap) POL_WUR;

/* ---------------------------------------------------------------- deltas (store, snapshot.c) */

/* What changed since a generation, as keys with their state now (pol_store_delta). */
struct pol_delta_rev {
    uint8_t issuer_hash[POL_HASH_LEN];
    uint8_t serial[POL_SERIAL_MAX];
    size_t serial_len;
    int revoked;                /* 0: not revoked any more (a hold lifted) */
    int reason;
};
struct pol_delta_allow {
    char *list, *value;         /* owned; value canonical */
    enum pol_match match;
    int present;                /* 0: removed */
    int64_t id, expires_at;
};
struct pol_delta {
    struct pol_delta_rev *rev;
    size_t nrev, rev_cap;
    struct pol_delta_allow *allow;
    size_t nallow, allow_cap;
};
int pol_delta_add_rev(struct pol_delta *d, const uint8_t *hash, const uint8_t *serial, size_t len, int revoked,
                      int reason) POL_WUR;
int pol_delta_add_allow(struct pol_delta *d, const char *list, const char *match, const char *value, int present,
                        int64_t id, int64_t expires_at) POL_WUR;
void pol_delta_clear(struct pol_delta *d);

/* The changes since generation since, from one read transaction; *gen is that state's generation.
 * *full is set when they cannot be told as at most max keys (a CRL import, a batch, a change made by
 * an older version, a store that went back): the caller then builds a whole snapshot. */
int pol_store_delta(struct pol_store *st, uint64_t since, size_t max, struct pol_delta *d, uint64_t *gen, int *full,
                    char *err, size_t errlen) POL_WUR;

/* Keys an overlay may hold before the next change rebuilds the whole snapshot: an eighth of the
 * base's keys, at least POL_OVERLAY_MIN and at most POL_OVERLAY_MAX (pol_overlay_limit). A rebuild
 * costs in proportion to the base, so a change costs the same amortised whatever the store's size,
 * and an overlay's memory, and what the allocator keeps of its predecessors, stays a small part of
 * the base's instead of growing for hours in a small store (the hour-long soak measured +8% RSS with
 * a flat 4096). */
#define POL_OVERLAY_MIN 64
#define POL_OVERLAY_MAX 4096
#define POL_OVERLAY_SHARE 8
size_t pol_overlay_limit(const struct pol_snapshot *cur);

/* A new snapshot at generation gen: cur's state with d applied, as an overlay over cur's full base
 * (shared). *out NULL with 0 when the overlay would pass max keys (build a whole one instead). */
int pol_snapshot_overlay(const struct pol_snapshot *cur, const struct pol_delta *d, uint64_t gen, size_t max,
                         struct pol_snapshot **out, char *err, size_t errlen) POL_WUR;

/* ---------------------------------------------------------------- CRLs (crl.c) */

struct pol_crl_entry {
    const uint8_t *serial;      /* into der */
    uint8_t serial_len;
    uint8_t reason;
    time_t revoked_at;
};

struct pol_crl {
    uint8_t *der;               /* owned */
    size_t der_len;
    uint8_t sha256[POL_HASH_LEN];
    const uint8_t *issuer_der;  /* into der */
    size_t issuer_der_len;
    uint8_t issuer_hash[POL_HASH_LEN];
    char *issuer_text;          /* owned; from the CA certificate */
    const uint8_t *number;      /* into der; NULL if absent */
    size_t number_len;
    time_t this_update, next_update;
    struct pol_crl_entry *entries;   /* owned */
    size_t nentries;
    /* where the signed part and signature are (decode fills, verify uses) */
    const uint8_t *tbs;
    size_t tbs_len;
    const uint8_t *sig_alg, *tbs_sig_alg;   /* AlgorithmIdentifier encodings */
    size_t sig_alg_len, tbs_sig_alg_len;
    const uint8_t *sig;
    size_t sig_len;
};

/* Structure only: RFC 5280 5.1 syntax and the extension rules, no signature and no CA.
 * Takes ownership of der on success and on failure. For the fuzz target and pol_crl_parse. */
int pol_crl_decode(uint8_t *der, size_t len, struct pol_crl **out, char *err, size_t errlen) POL_WUR;
/* Checks issuer and signature against a decoded CA certificate. */
int pol_crl_verify(struct pol_crl *crl, const struct pol_cert *ca, char *err, size_t errlen) POL_WUR;

/* ---------------------------------------------------------------- RFC 4514 (cert.c) */

/* Formats a wolfSSL WOLFSSL_X509_NAME (void * so that this header needs no wolfSSL) like
 * gateway/tls.c. Returns the length, or -1 if it does not fit in cap. */
int pol_name_rfc4514(void *x509_name, char *buf, size_t cap);

#endif
