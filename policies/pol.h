/* pol.h - admission policies: revocations, allowlists, imported CRLs, per-listener policies; the
 * durable store behind them and the immutable in-memory snapshot that handshakes read.
 *
 * Shape (policies/README.md has the tour):
 *   store (SQLite, durable, every change one transaction that bumps a generation counter)
 *     -> pol_snapshot_build (off the data plane: the whole store in one read transaction)
 *     -> pol_snapshot_publish (atomic pointer swap; old snapshots freed once every reader has
 *        passed a quiescent point, so readers take no lock a writer can hold)
 *     -> pol_decide(snapshot, policy, cert, ...) on a worker thread: admit or one precise reason.
 *
 * Identities: a certificate's issuer is keyed by the SHA-256 of its issuer Name DER, a serial by the
 * content octets of its DER INTEGER (RFC 5280 4.1.2.2; "serial" below always means those octets).
 *
 * Return convention: fallible functions return 0 or a negative enum pol_err. Functions taking
 * (char *err, size_t errlen) also write a one-line message there (err may be NULL).
 * Input from operators, peers or the store never asserts; it gets an error.
 */
#ifndef HSMGATE_POLICIES_POL_H
#define HSMGATE_POLICIES_POL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define POL_WUR __attribute__((warn_unused_result))

#define POL_MAX_READERS 256     /* reader indexes 0..POL_MAX_READERS-1, like the HSM layer's threads */
#define POL_SERIAL_MAX 32       /* RFC 5280 4.1.2.2 allows 20 octets; some CAs overshoot a little */
#define POL_HASH_LEN 32         /* SHA-256 */
#define POL_VALUE_MAX 4096      /* longest allowlist value (a subject DN, a URI) */

enum pol_err {
    POL_OK = 0,
    POL_E_NOMEM = -1,           /* out of memory */
    POL_E_ARG = -2,             /* bad argument or malformed operator input */
    POL_E_DER = -3,             /* malformed DER or PEM (certificate, CRL) */
    POL_E_CRL_SIGNATURE = -4,   /* the CRL's signature does not verify with the CA's key */
    POL_E_CRL_ISSUER = -5,      /* the CRL's issuer is not the CA, or the CA may not sign CRLs */
    POL_E_CRL_ROLLBACK = -6,    /* the CRL is not newer than the one stored (CRL Number, thisUpdate) */
    POL_E_CRL_CRITICAL = -7,    /* an unknown critical extension (RFC 5280 5.2, 5.3) */
    POL_E_UNSUPPORTED = -8,     /* unsupported algorithm, delta or indirect CRL */
    POL_E_STORE = -9,           /* the store failed (I/O, SQL, disk full) */
    POL_E_SCHEMA = -10,         /* the store's schema is newer than this binary, or corrupt */
    POL_E_NOT_FOUND = -11,      /* no such revocation or allowlist entry */
    POL_E_EXISTS = -12,         /* already revoked, or the same allowlist entry exists */
    POL_E_NOT_HOLD = -13,       /* only a certificateHold can be lifted (RFC 5280 5.3.1) */
    POL_E_BUSY = -14,           /* the store stayed locked by another process past the busy timeout */
    POL_E_TIMEOUT = -15,        /* readers did not pass a quiescent point in time */
    POL_E_READER = -16,         /* reader index out of range or not registered */
    POL_E_CERT = -17,           /* the certificate cannot be used as asked (e.g. not a CA) */
    POL_E_AUDIT = -18,          /* the audit trail's hash chain is broken (pol_store_audit_verify) */
};

/* Message and stable short name ("crl_rollback") of an enum pol_err value; never NULL. */
const char *pol_strerror(int err);
const char *pol_errname(int err);

/* ---------------------------------------------------------------- certificates */

/* A client (or CA) certificate, decoded once into what policy decisions need. Opaque. */
struct pol_cert;

/* Extended key usages (RFC 5280 4.2.1.12) as a bit set. */
#define POL_EKU_SERVER_AUTH 0x01u
#define POL_EKU_CLIENT_AUTH 0x02u
#define POL_EKU_CODE_SIGNING 0x04u
#define POL_EKU_EMAIL 0x08u
#define POL_EKU_TIME_STAMPING 0x10u
#define POL_EKU_OCSP_SIGNING 0x20u
#define POL_EKU_ANY 0x80u       /* anyExtendedKeyUsage */

/* Decodes one DER certificate (exactly one value, nothing after it) with wolfSSL's parser. No
 * signature or date check: the chain was verified by wolfSSL before this is called.
 * *out is one allocation owned by the caller (pol_cert_free). Cheap enough for every handshake
 * (measured in tests/unit/test_pol_decide.c). Returns 0, POL_E_DER or POL_E_NOMEM. */
int pol_cert_from_der(const uint8_t *der, size_t len, struct pol_cert **out) POL_WUR;
void pol_cert_free(struct pol_cert *c);

/* Reads the first certificate of a PEM file (or a DER file). */
int pol_cert_load(const char *path, struct pol_cert **out, char *err, size_t errlen) POL_WUR;

/* Reads a file of at most max bytes into *out (malloc'd; the caller frees). With a label
 * ("CERTIFICATE", "X509 CRL"), returns the DER of the first PEM block so labelled, or the file as is
 * when it is DER already; with NULL, the bytes as they are. */
int pol_file_load(const char *path, const char *label, size_t max, uint8_t **out, size_t *len,
                  char *err, size_t errlen) POL_WUR;

/* Decodes a buffer holding a certificate or CRL: the first PEM block labelled label ("CERTIFICATE",
 * "X509 CRL"; RFC 7468), or DER as is (a buffer starting with a SEQUENCE tag), or, with base64_ok and
 * no PEM block, the whole buffer as base64 of the DER (whitespace ignored). *out is malloc'd (the
 * caller frees it). POL_E_DER when it is none of these. */
int pol_pem_decode(const uint8_t *in, size_t len, const char *label, int base64_ok, uint8_t **out, size_t *out_len,
                   char *err, size_t errlen) POL_WUR;

/* RFC 4514 strings, most specific RDN first, as gateway/tls.c prints them ("CN=client,O=Bank"). */
const char *pol_cert_subject(const struct pol_cert *c);
const char *pol_cert_issuer(const struct pol_cert *c);
/* The most specific commonName, or NULL. */
const char *pol_cert_cn(const struct pol_cert *c);
const uint8_t *pol_cert_serial(const struct pol_cert *c, size_t *len);
const uint8_t *pol_cert_fingerprint(const struct pol_cert *c);   /* SHA-256 of the DER, 32 bytes */
const uint8_t *pol_cert_spki_hash(const struct pol_cert *c);     /* SHA-256 of SubjectPublicKeyInfo */
const uint8_t *pol_cert_issuer_hash(const struct pol_cert *c);   /* SHA-256 of the issuer Name DER */
const uint8_t *pol_cert_subject_hash(const struct pol_cert *c);  /* SHA-256 of the subject Name DER */
int pol_cert_is_ca(const struct pol_cert *c);
time_t pol_cert_not_after(const struct pol_cert *c);
time_t pol_cert_not_before(const struct pol_cert *c);

/* ---------------------------------------------------------------- small values */

/* CRLReason (RFC 5280 5.3.1). 7 is unused; removeFromCRL only appears in delta CRLs. */
enum pol_crl_reason {
    POL_REASON_UNSPECIFIED = 0, POL_REASON_KEY_COMPROMISE = 1, POL_REASON_CA_COMPROMISE = 2,
    POL_REASON_AFFILIATION_CHANGED = 3, POL_REASON_SUPERSEDED = 4, POL_REASON_CESSATION = 5,
    POL_REASON_CERTIFICATE_HOLD = 6, POL_REASON_REMOVE_FROM_CRL = 8, POL_REASON_PRIVILEGE_WITHDRAWN = 9,
    POL_REASON_AA_COMPROMISE = 10,
};
/* RFC 5280's spelling ("keyCompromise"); parse is case-insensitive and refuses removeFromCRL. */
const char *pol_reason_code_name(int reason);
int pol_reason_code_parse(const char *name, int *out) POL_WUR;

/* Serial numbers as hex: parse takes "01AF", "1af", "01:af" (a positive number; the result is the
 * minimal DER INTEGER content, with a 0x00 prefix when the top bit is set); format writes the number
 * in upper-case hex without separators or sign octet (as gateway/tls.c's identity headers do). */
int pol_serial_parse(const char *hex, uint8_t out[POL_SERIAL_MAX], size_t *len) POL_WUR;
void pol_serial_format(const uint8_t *serial, size_t len, char *out, size_t cap);

/* "2026-01-31T12:00:00Z", or relative to now: "+30d", "-2h" (units d, h, m, s). */
int pol_time_parse(const char *text, time_t now, time_t *out) POL_WUR;
void pol_time_format(time_t t, char *out, size_t cap);   /* "2026-01-31T12:00:00Z" */

/* ---------------------------------------------------------------- the store */

/* The durable store. A handle may be used by several threads (calls are serialized on it); several
 * processes may open the same file (a CLI beside a running gateway). A change returns only once it
 * is committed to disk (SQLite WAL, synchronous=FULL). Opaque; backends live behind an interface
 * in policies/store_int.h (SQLite now, PostgreSQL for a fleet later). */
struct pol_store;

/* Opens (creating if needed) a SQLite store and applies pending schema migrations in one
 * transaction. A store made by a newer hsmgate is refused (POL_E_SCHEMA). */
int pol_store_open_sqlite(const char *path, struct pol_store **out, char *err, size_t errlen) POL_WUR;
void pol_store_close(struct pol_store *st);   /* accepts NULL */

/* The store's change counter: every committed change, from any process, increases it. Cheap (no
 * disk read unless another connection wrote): poll it to notice a CLI's changes. */
int pol_store_generation(struct pol_store *st, uint64_t *gen) POL_WUR;

/* The schema version this binary writes, and the one found in the store. */
int pol_store_schema_version(struct pol_store *st, int *version) POL_WUR;
#define POL_SCHEMA_VERSION 4

/* Whether the last change made through this handle was written: 0 if so (or none was tried yet), else
 * POL_E_STORE with its message in err and, in *since (may be NULL), when the changes began to fail.
 * Reads cannot tell that a store is full or read-only; only a change can, and the next change written
 * clears it. Refusals (exists, not found, bad input) and a store busy with another writer leave it. */
int pol_store_write_status(struct pol_store *st, time_t *since, char *err, size_t errlen) POL_WUR;

/* Who made a change and why; recorded with the change in its audit record (pol_store_audit_each).
 * New members go at the end: positional initializers ({ "cli:root", "why" }) stay valid. */
struct pol_actor {
    const char *actor;          /* "admin:alice", "cli:root"; required, non-empty */
    const char *comment;        /* may be NULL */
    const char *request_id;     /* the admin API's request id (X-Request-Id); may be NULL */
    const char *source;         /* where the request came from ("127.0.0.1:51234", "unix"); may be NULL */
};

/* A revocation by issuer and serial. */
struct pol_revocation {
    const uint8_t *issuer_der;  /* the issuer's Name, DER (a CA certificate's subject) */
    size_t issuer_der_len;
    const char *issuer_text;    /* RFC 4514, kept for listings; may be NULL */
    const uint8_t *serial;
    size_t serial_len;          /* 1..POL_SERIAL_MAX */
    int reason;                 /* enum pol_crl_reason, not removeFromCRL */
    time_t revoked_at;          /* 0: now */
};

/* Fill r from a client certificate, or from its issuer's certificate and a serial. r points into
 * the certificates (and serial), which must outlive it; reason and revoked_at are set to 0. */
void pol_revocation_of_cert(const struct pol_cert *c, struct pol_revocation *r);
void pol_revocation_of_issuer(const struct pol_cert *ca, const uint8_t *serial, size_t len,
                              struct pol_revocation *r);

/* Records a revocation. Refused with POL_E_EXISTS when this serial is already revoked here, except
 * that a certificateHold may be turned into a final revocation (RFC 5280 5.3.1). */
int pol_store_revoke(struct pol_store *st, const struct pol_revocation *r, const struct pol_actor *who,
                     uint64_t *gen, char *err, size_t errlen) POL_WUR;
/* Many revocations in one transaction (one fsync); serials already revoked are skipped. */
int pol_store_revoke_batch(struct pol_store *st, const struct pol_revocation *r, size_t n,
                           const struct pol_actor *who, uint64_t *gen, char *err, size_t errlen) POL_WUR;
/* The same, and *applied (may be NULL) gets how many revocations it wrote: new ones and holds made
 * final; the other n - *applied were revoked already (or repeated within r). */
int pol_store_revoke_batch_count(struct pol_store *st, const struct pol_revocation *r, size_t n,
                                 const struct pol_actor *who, size_t *applied, uint64_t *gen, char *err,
                                 size_t errlen) POL_WUR;
/* Lifts a certificateHold made here (reason and revoked_at of r are ignored). POL_E_NOT_HOLD for any
 * other reason; POL_E_NOT_FOUND when there is none (a hold listed by an imported CRL is lifted by
 * importing that CA's next CRL). */
int pol_store_lift(struct pol_store *st, const struct pol_revocation *r, const struct pol_actor *who,
                   uint64_t *gen, char *err, size_t errlen) POL_WUR;

struct pol_revocation_row {
    const uint8_t *issuer_hash;         /* POL_HASH_LEN bytes */
    const char *issuer_text;
    const uint8_t *serial;
    size_t serial_len;
    int reason;
    time_t revoked_at;
    int64_t crl_id;                     /* 0: made here; else the imported CRL that lists it */
    const char *actor, *comment;        /* comment may be NULL */
    time_t recorded_at;
};
/* Calls fn for every revocation, ordered by issuer and serial; a nonzero return from fn stops the
 * walk and is returned. Pointers in row are valid during the call only. */
int pol_store_revocations_each(struct pol_store *st, int (*fn)(void *arg, const struct pol_revocation_row *row),
                               void *arg, char *err, size_t errlen) POL_WUR;

/* One page of revocations, in pol_store_revocations_each's order, optionally of one issuer and/or
 * one serial. The cursor is an opaque short text (at most POL_CURSOR_MAX bytes with its NUL). */
#define POL_CURSOR_MAX 96
struct pol_revocation_query {
    const char *after;          /* a cursor from an earlier page; NULL or "": from the start */
    size_t limit;               /* rows at most; 0: no limit */
    const uint8_t *issuer_hash; /* POL_HASH_LEN bytes: only this issuer; NULL: every issuer */
    const uint8_t *serial;      /* only this serial; NULL: every serial */
    size_t serial_len;
};
/* Calls fn for each row of the page (as pol_store_revocations_each does) and writes into next
 * (POL_CURSOR_MAX bytes) the cursor of the following page, or "" when this one was the last.
 * POL_E_ARG for a cursor this store did not make. */
int pol_store_revocations_query(struct pol_store *st, const struct pol_revocation_query *q,
                                int (*fn)(void *arg, const struct pol_revocation_row *row), void *arg,
                                char next[POL_CURSOR_MAX], char *err, size_t errlen) POL_WUR;

/* How an allowlist entry matches a client certificate. */
enum pol_match {
    POL_MATCH_FINGERPRINT = 0,  /* SHA-256 of the certificate DER, hex */
    POL_MATCH_SPKI = 1,         /* SHA-256 of the SubjectPublicKeyInfo DER, hex */
    POL_MATCH_SUBJECT = 2,      /* the exact RFC 4514 subject DN */
    POL_MATCH_CN = 3,           /* the exact most specific commonName */
    POL_MATCH_SAN_DNS = 4,      /* a dNSName SAN (ASCII case-insensitive, no wildcard expansion) */
    POL_MATCH_SAN_URI = 5,      /* a uniformResourceIdentifier SAN, exact */
    POL_MATCH_SAN_EMAIL = 6,    /* an rfc822Name SAN (domain case-insensitive, RFC 5280 4.2.1.6) */
    POL_MATCH_ISSUER_SERIAL = 7,/* "<issuer Name SHA-256 hex>:<serial hex>" (pol_issuer_serial_value);
                                   positive serials only (RFC 5280 4.1.2.2) */
};
#define POL_MATCH_COUNT 8
/* "fingerprint", "spki", "subject", "cn", "san-dns", "san-uri", "san-email", "issuer-serial". */
const char *pol_match_name(enum pol_match m);
int pol_match_parse(const char *name, enum pol_match *out) POL_WUR;
/* Canonical stored form of an operator's value (hex lower-cased and colons dropped, DNS names
 * lower-cased, ...); POL_E_ARG with a message when the value cannot match anything. */
int pol_allow_value_normalize(enum pol_match m, const char *in, char *out, size_t cap,
                              char *err, size_t errlen) POL_WUR;
/* The value a certificate presents for m (the first SAN of that type), canonical; POL_E_NOT_FOUND
 * when it has none. */
int pol_allow_value_of_cert(const struct pol_cert *c, enum pol_match m, char *out, size_t cap) POL_WUR;
/* "<issuer hash hex>:<serial hex>" for an issuer certificate and serial. */
void pol_issuer_serial_value(const struct pol_cert *ca, const uint8_t *serial, size_t len, char *out, size_t cap);

/* Whether an allowlist list name is acceptable: [A-Za-z0-9._-]{1,64}. */
int pol_list_name_ok(const char *name);

struct pol_allow_entry {
    const char *list;           /* [A-Za-z0-9._-]{1,64} */
    enum pol_match match;
    const char *value;          /* normalized on the way in */
    time_t expires_at;          /* 0: never */
};
int pol_store_allow_add(struct pol_store *st, const struct pol_allow_entry *e, const struct pol_actor *who,
                        int64_t *id, uint64_t *gen, char *err, size_t errlen) POL_WUR;
/* Removes entry id (or, with id 0, the entry e names). */
int pol_store_allow_remove(struct pol_store *st, int64_t id, const struct pol_allow_entry *e,
                           const struct pol_actor *who, uint64_t *gen, char *err, size_t errlen) POL_WUR;

struct pol_allow_row {
    int64_t id;
    const char *list;
    enum pol_match match;
    const char *value;
    time_t expires_at;          /* 0: never */
    const char *actor, *comment;
    time_t created_at;
};
/* Every entry (of one list, or all when list is NULL), ordered by list and id. */
int pol_store_allow_each(struct pol_store *st, const char *list,
                         int (*fn)(void *arg, const struct pol_allow_row *row), void *arg,
                         char *err, size_t errlen) POL_WUR;
/* The entries of one list with id > after_id, by id, at most limit (0: no limit). */
int pol_store_allow_page(struct pol_store *st, const char *list, int64_t after_id, size_t limit,
                         int (*fn)(void *arg, const struct pol_allow_row *row), void *arg,
                         char *err, size_t errlen) POL_WUR;
struct pol_allow_list_row {
    const char *list;
    size_t entries;
    size_t expired;             /* entries past their expires_at now */
};
/* Every list that has entries, by name, with its counts. */
int pol_store_allow_lists(struct pol_store *st, int (*fn)(void *arg, const struct pol_allow_list_row *row),
                          void *arg, char *err, size_t errlen) POL_WUR;

/* ---------------------------------------------------------------- imported CRLs */

/* A CRL from another CA, decoded and verified. Opaque. */
struct pol_crl;

/* Decodes a CRL (PEM "X509 CRL" or DER) and accepts it only if: it is a v2 (or v1) CertificateList
 * (RFC 5280 5.1); its issuer is, byte for byte, the subject of ca_der, and ca_der's keyUsage (if
 * any) has cRLSign (RFC 5280 4.2.1.3); its signature verifies with ca_der's public key
 * (ECDSA with SHA-256/384/512, RSA PKCS#1 v1.5 with SHA-256/384/512, Ed25519); it carries no
 * unknown critical extension, at list or entry level (RFC 5280 5.2, 5.3); it is not a delta CRL
 * (5.2.4), not indirect (5.2.5, 5.3.3) and not partitioned by reasons or certificate kind (5.2.5).
 * Staleness is not judged here (nextUpdate is kept for pol_decide). */
int pol_crl_parse(const uint8_t *in, size_t len, const uint8_t *ca_der, size_t ca_len, struct pol_crl **out,
                  char *err, size_t errlen) POL_WUR;
void pol_crl_free(struct pol_crl *crl);

struct pol_crl_info {
    const char *issuer_text;    /* RFC 4514 */
    const uint8_t *number;      /* CRL Number (RFC 5280 5.2.3) INTEGER content; NULL if absent */
    size_t number_len;
    time_t this_update, next_update;  /* next_update 0 when absent */
    size_t entries;
};
void pol_crl_get_info(const struct pol_crl *crl, struct pol_crl_info *info);

/* Replaces the stored CRL of that issuer and the revocations it listed, in one transaction.
 * POL_E_CRL_ROLLBACK when its CRL Number is lower than the stored one, or equal with other content,
 * or (without numbers) its thisUpdate is older; re-importing the very same CRL is a no-op that
 * returns 0 with *unchanged set (unchanged may be NULL). */
int pol_store_crl_import(struct pol_store *st, const struct pol_crl *crl, const struct pol_actor *who,
                         int *unchanged, uint64_t *gen, char *err, size_t errlen) POL_WUR;
/* The same, and names the CRL and keeps its CA's certificate with it (the admin API's
 * /v1/crls/{name}), so that the next CRL of that CA can be imported by name alone. name: see
 * pol_crl_name_ok; ca_der: the certificate crl was verified with (pol_crl_parse). A name is bound to
 * one CA: POL_E_EXISTS when it names another CA's CRL, or when this CA's CRL has another name.
 * Re-importing the same CRL under a name it did not have yet records the name (a change). */
int pol_store_crl_import_named(struct pol_store *st, const char *name, const uint8_t *ca_der, size_t ca_len,
                               const struct pol_crl *crl, const struct pol_actor *who, int *unchanged,
                               uint64_t *gen, char *err, size_t errlen) POL_WUR;
/* [A-Za-z0-9._-]{1,64}, not all digits (a number addresses a CRL by its id). */
int pol_crl_name_ok(const char *name);
/* Removes a CA's CRL (by name, or with name NULL by id) and every revocation it listed, in one
 * transaction. Listeners that require that CA's CRL refuse its clients as crl_missing from then on.
 * POL_E_NOT_FOUND when there is none. */
int pol_store_crl_remove(struct pol_store *st, const char *name, int64_t id, const struct pol_actor *who,
                         uint64_t *gen, char *err, size_t errlen) POL_WUR;

struct pol_crl_row {
    int64_t id;
    const char *issuer_text;
    const uint8_t *number;
    size_t number_len;
    time_t this_update, next_update, imported_at;
    size_t entries;
    const char *name;           /* NULL: imported without a name (hsmgate crl import) */
    const uint8_t *issuer_hash; /* POL_HASH_LEN bytes: SHA-256 of the issuer Name DER */
    const uint8_t *ca_der;      /* the CA certificate kept by a named import; NULL otherwise */
    size_t ca_len;
};
int pol_store_crls_each(struct pol_store *st, int (*fn)(void *arg, const struct pol_crl_row *row), void *arg,
                        char *err, size_t errlen) POL_WUR;

/* ---------------------------------------------------------------- certificates we issued */

/* Records a certificate our CA issued (the admin API's POST /v1/certificates), in one transaction with
 * its audit record ("cert-issue": subject, serial, validity, SHA-256 fingerprint). der is the whole
 * certificate (DER, at most 64 KiB); its issuer, serial, subject and validity are read from it here.
 * The change moves the generation (every change does) but leaves the data plane's snapshot as it was.
 * POL_E_DER when der is not a certificate, POL_E_EXISTS when that issuer's serial is recorded already.
 * *id (may be NULL) gets the record's id. */
int pol_store_issued_add(struct pol_store *st, const uint8_t *der, size_t len, const struct pol_actor *who,
                         int64_t *id, uint64_t *gen, char *err, size_t errlen) POL_WUR;

struct pol_issued_row {
    int64_t id;                         /* 1, 2, 3, ... in the order of issue */
    const uint8_t *issuer_hash;         /* POL_HASH_LEN bytes: SHA-256 of the issuer Name DER */
    const char *issuer, *subject;       /* RFC 4514 */
    const uint8_t *serial;              /* DER INTEGER content octets */
    size_t serial_len;
    time_t not_before, not_after;
    const uint8_t *der;                 /* the certificate */
    size_t der_len;
    const char *actor;                  /* who asked for it */
    const char *comment, *request_id;   /* NULL when not given */
    time_t created_at;
    int revoked;                        /* revoked now (here or by an imported CRL): reason and revoked_at */
    int reason;
    time_t revoked_at;
};
struct pol_issued_query {
    int64_t after_id;           /* rows with a larger id (0: from the first) */
    size_t limit;               /* rows at most; 0: no limit */
    const uint8_t *serial;      /* only this serial (any issuer); NULL: every one */
    size_t serial_len;
};
/* Calls fn for each row of the query, by id; pointers in row are valid during the call only; a nonzero
 * return from fn stops the walk and is returned. */
int pol_store_issued_query(struct pol_store *st, const struct pol_issued_query *q,
                           int (*fn)(void *arg, const struct pol_issued_row *row), void *arg,
                           char *err, size_t errlen) POL_WUR;

/* ---------------------------------------------------------------- the audit trail */

/* Every change writes one audit record in its own transaction: who, when, what, the state before
 * and after (short JSON texts), the request id and source address. Records are hash-chained:
 * hash = SHA-256 of a length-prefixed encoding of (prev_hash, id, at, generation, actor, action,
 * target, before, after, request_id, source, comment), prev_hash the previous record's hash (32 zero
 * bytes for the first). policies/README.md has the encoding and what the chain does and does not
 * prove. */
struct pol_audit_record {
    int64_t id;                 /* 1, 2, 3, ... with no gaps */
    time_t at;
    uint64_t generation;        /* the store generation the change made */
    const char *actor, *action, *target;
    const char *before, *after; /* JSON texts ("null": nothing); NULL in records made before schema 3 */
    const char *request_id, *source, *comment;   /* NULL when not given */
    const uint8_t *prev_hash, *hash;             /* POL_HASH_LEN bytes; NULL when missing (damaged) */
};
/* Calls fn for each record with id > after_id, by id, at most limit (0: no limit); pointers are
 * valid during the call only; a nonzero return from fn stops the walk and is returned. */
int pol_store_audit_each(struct pol_store *st, int64_t after_id, size_t limit,
                         int (*fn)(void *arg, const struct pol_audit_record *rec), void *arg,
                         char *err, size_t errlen) POL_WUR;
/* Checks the whole chain: ids 1, 2, 3, ...; each prev_hash the hash of the record before; each hash
 * recomputed; generations increasing, the last one the store's (records removed at the end).
 * Returns 0 with *records the count; POL_E_AUDIT with *first_bad_id the first record that fails
 * (a removed record shows at the one after it; removed last records at the last id + 1), *records
 * the good ones before it and a message naming it; or another error if the store cannot be read.
 * Reads in chunks, letting other calls on the handle run in between. records, first_bad_id may be NULL. */
int pol_store_audit_verify(struct pol_store *st, uint64_t *records, int64_t *first_bad_id, char *err,
                           size_t errlen) POL_WUR;

/* ---------------------------------------------------------------- snapshots */

/* Everything a handshake needs, immutable once built: per issuer a hash set of revoked serials and
 * the imported CRL's times; per allowlist a hash set per match type. Opaque. */
struct pol_snapshot;

/* Builds a snapshot of the whole store, read in one transaction (a consistent generation). Runs off
 * the data plane: 1,000,000 revocations take well under a second. Allowlist rows that cannot match
 * (bad values) are skipped and counted; a revocation row that cannot be read fails the build. */
int pol_snapshot_build(struct pol_store *st, struct pol_snapshot **out, char *err, size_t errlen) POL_WUR;
/* Frees a snapshot that was never published (published ones belong to their pol_live). */
void pol_snapshot_free(struct pol_snapshot *s);
/* An empty snapshot with generation 0 (nothing revoked, every allowlist empty). */
int pol_snapshot_empty(struct pol_snapshot **out) POL_WUR;

uint64_t pol_snapshot_generation(const struct pol_snapshot *s);
struct pol_snapshot_stats {
    uint64_t generation;
    size_t issuers, revocations, crls, lists, allow_entries, skipped_rows;
    size_t bytes;               /* memory held by the snapshot (with its base, for an overlay) */
    uint64_t base_generation;   /* an overlay: the generation of the whole snapshot under it; else generation */
    size_t overlay_keys;        /* keys changed since that base (0: a whole snapshot) */
};
void pol_snapshot_get_stats(const struct pol_snapshot *s, struct pol_snapshot_stats *out);
/* O(1): 1 and *reason (may be NULL) if serial of that issuer is revoked, else 0. */
int pol_snapshot_is_revoked(const struct pol_snapshot *s, const uint8_t issuer_hash[POL_HASH_LEN],
                            const uint8_t *serial, size_t len, int *reason);

/* ---------------------------------------------------------------- publication */

/* The live snapshot and its readers. Readers are threads with an index 0..nreaders-1 (a worker's
 * index); each registers once, then calls pol_quiescent at least once per event-loop turn, at a
 * point where it holds no snapshot pointer. pol_snapshot_current's result stays valid until the
 * calling reader's next pol_quiescent, pol_reader_offline or pol_reader_unregister. Readers never
 * take a lock; a publisher frees an old snapshot only after every online reader has passed a
 * quiescent point since the swap (quiescent-state-based reclamation; memory ordering in live.c).
 * A reader that may block for long (epoll_wait without timeout) goes offline around the wait. */
struct pol_live;

/* initial: the first snapshot (ownership passes; NULL for an empty one). */
int pol_live_new(unsigned nreaders, struct pol_snapshot *initial, struct pol_live **out) POL_WUR;
/* Frees the live snapshot and every retired one; no reader may be online. Accepts NULL. */
void pol_live_free(struct pol_live *live);

int pol_reader_register(struct pol_live *live, unsigned reader) POL_WUR;   /* and go online */
void pol_reader_unregister(struct pol_live *live, unsigned reader);
void pol_reader_offline(struct pol_live *live, unsigned reader);
void pol_reader_online(struct pol_live *live, unsigned reader);
void pol_quiescent(struct pol_live *live, unsigned reader);
/* The current snapshot, for a registered, online reader (NULL otherwise: decide fails closed). */
const struct pol_snapshot *pol_snapshot_current(struct pol_live *live, unsigned reader);

/* Publishes s (ownership passes) and frees whatever older snapshots no reader can still hold.
 * Publishers are serialized among themselves; readers are never blocked. */
void pol_snapshot_publish(struct pol_live *live, struct pol_snapshot *s);
/* Frees retired snapshots that no reader can hold; returns how many still wait. */
size_t pol_live_reclaim(struct pol_live *live);
/* Waits until every online reader has passed a quiescent point after the latest publish (then no
 * handshake can still decide with an older snapshot), and reclaims. POL_E_TIMEOUT after timeout_ms. */
int pol_live_synchronize(struct pol_live *live, unsigned timeout_ms) POL_WUR;
/* The generation of the live snapshot (any thread). */
uint64_t pol_live_generation(struct pol_live *live);
/* If the store's generation differs from the live snapshot's, builds and publishes a new one;
 * *published (may be NULL) says whether it did. Cheap when nothing changed: call it often. */
int pol_live_refresh(struct pol_live *live, struct pol_store *st, int *published, char *err, size_t errlen) POL_WUR;

/* ---------------------------------------------------------------- policies and decisions */

enum pol_revocation_mode {
    POL_REVOCATION_HARD_FAIL = 0,   /* no usable revocation status: refuse (default) */
    POL_REVOCATION_SOFT_FAIL = 1,   /* no usable revocation status: admit, flagged in the verdict */
};

/* A trusted issuing CA of a listener. */
struct pol_ca_spec {
    const uint8_t *cert_der;    /* the CA certificate, DER */
    size_t cert_len;
    int crl_required;           /* revocation status of its certificates comes from an imported CRL */
};

/* A listener's policy, as plain values (the configuration file fills one). */
struct pol_policy_spec {
    const char *name;                   /* for messages: the listener's name */
    const struct pol_ca_spec *cas;      /* the leaf's issuer must be one of these; none: any issuer */
    size_t ncas;
    int allowlist_required;             /* the client must match an entry of allowlist */
    const char *allowlist;              /* list name; required when allowlist_required */
    enum pol_revocation_mode revocation;
    unsigned crl_grace_s;               /* an imported CRL past nextUpdate stays usable this long;
                                           0 (default): fail closed at nextUpdate */
    unsigned required_eku;              /* POL_EKU_* that the leaf's EKU extension must list
                                           (anyExtendedKeyUsage satisfies all); default clientAuth */
    unsigned max_chain_depth;           /* trust anchor's depth (leaf 0) at most this; 0: no limit */
};
/* Sets the defaults: hard-fail, fail-closed CRLs, clientAuth, depth 4, no allowlist, any issuer. */
void pol_policy_spec_init(struct pol_policy_spec *spec);

struct pol_policy;
int pol_policy_new(const struct pol_policy_spec *spec, struct pol_policy **out, char *err, size_t errlen) POL_WUR;
void pol_policy_free(struct pol_policy *p);

/* Why a client is refused; each has a stable short name for logs and metrics (pol_reason_name). */
enum pol_reason {
    POL_ADMIT = 0,                      /* "admit" */
    POL_R_NO_POLICY,                    /* "policy_unavailable": no snapshot or policy (fail closed) */
    POL_R_NO_CERT,                      /* "no_client_certificate" */
    POL_R_ISSUER_NOT_TRUSTED,           /* "issuer_not_trusted" */
    POL_R_CHAIN_TOO_LONG,               /* "chain_too_long" */
    POL_R_NOT_YET_VALID,                /* "certificate_not_yet_valid" */
    POL_R_EXPIRED,                      /* "certificate_expired" */
    POL_R_CERT_IS_CA,                   /* "client_certificate_is_ca" */
    POL_R_EKU_MISSING,                  /* "eku_missing" */
    POL_R_REVOKED,                      /* "revoked" */
    POL_R_CRL_MISSING,                  /* "crl_missing": crl_required, none imported */
    POL_R_CRL_STALE,                    /* "crl_stale": past nextUpdate (+ grace) */
    POL_R_NOT_ALLOWLISTED,              /* "not_allowlisted" */
    POL_R_ALLOWLIST_EXPIRED,            /* "allowlist_entry_expired": only expired entries match */
};
#define POL_REASON_COUNT 14
const char *pol_reason_name(enum pol_reason r);

struct pol_verdict {
    enum pol_reason reason;
    int crl_reason;             /* POL_R_REVOKED: enum pol_crl_reason */
    int64_t allow_entry_id;     /* the allowlist entry that admitted (or expired); 0 if none */
    int status_unknown;         /* admitted under soft-fail without usable revocation status */
    uint64_t generation;        /* the snapshot's */
};

/* Decides for one client certificate, in this order: issuer trusted, chain depth, validity at now,
 * not a CA, EKU, revoked, revocation status usable (CRL present and fresh), allowlist.
 * chain_depth: the depth of the trust anchor in the verified chain (0 leaf, 1 the leaf's issuer, ...).
 * Lock-free, allocation-free, O(1) in the number of revocations and allowlist entries.
 * out may be NULL. Returns out->reason. */
enum pol_reason pol_decide(const struct pol_snapshot *snap, const struct pol_policy *policy,
                           const struct pol_cert *cert, unsigned chain_depth, time_t now,
                           struct pol_verdict *out);

/* The same decision for a path: chain[0] the leaf, then its issuers in order as the peer sent them
 * (verified by wolfSSL, or kept in a resumed session; the trust anchor may be left out). The policy
 * CA is the first issuer, walking up from the leaf, that the policy trusts (issuer_not_trusted when
 * none); the trust anchor's depth is one above the certificate it issued; the leaf and every
 * intermediate below the policy CA are checked for revocation, and their issuers' CRLs for
 * freshness. With no CAs in the policy, the last certificate given (or its issuer) is the anchor. */
enum pol_reason pol_decide_chain(const struct pol_snapshot *snap, const struct pol_policy *policy,
                                 const struct pol_cert *const *chain, size_t n, time_t now,
                                 struct pol_verdict *out);

#endif
