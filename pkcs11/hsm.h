/* hsm.h - the HSM layer: PKCS#11 modules loaded through p11-kit, keys named by RFC 7512 URIs,
 * one session per worker thread with cached key handles, signatures made in the token.
 *
 * Threads: hsm_ctx_new/hsm_key_open/hsm_ctx_free run on the main thread before/after the workers.
 * Each thread that signs calls hsm_thread_attach(ctx, index) once; index is unique per thread
 * (0 .. HSM_MAX_THREADS-1). A PKCS#11 session is never shared by two threads (../shared/DESIGN.md fact 2).
 *
 * Return convention: 0 on success, a negative enum hsm_err on failure. Functions taking
 * (char *err, size_t errlen) also write a one-line human message there; it never holds a PIN.
 */
#ifndef HSMGATE_PKCS11_HSM_H
#define HSMGATE_PKCS11_HSM_H

#include <stddef.h>
#include <stdint.h>

#define HSM_MAX_THREADS 256
#define HSM_WUR __attribute__((warn_unused_result))

enum hsm_err {
    HSM_OK = 0,
    HSM_E_NOMEM = -1,        /* out of memory */
    HSM_E_URI = -2,          /* the PKCS#11 URI does not parse or lacks what is needed */
    HSM_E_MODULE = -3,       /* the module cannot be loaded or initialised */
    HSM_E_TOKEN = -4,        /* no token matches the URI */
    HSM_E_PIN_SOURCE = -5,   /* the pin source cannot be read (missing file, unset variable, unsafe mode) */
    HSM_E_PIN = -6,          /* the token refused the PIN (CKR_PIN_INCORRECT / LOCKED / ...) */
    HSM_E_KEY = -7,          /* no key (or more than one) matches the URI */
    HSM_E_KEYTYPE = -8,      /* unsupported key type or size */
    HSM_E_SESSION = -9,      /* the session or token was lost; a later call reopens it */
    HSM_E_SIGN = -10,        /* the token refused or failed to sign */
    HSM_E_MECH = -11,        /* the token offers no mechanism for this signature */
    HSM_E_ARG = -12,         /* bad argument (buffer too small, unknown thread index, ...) */
    HSM_E_NOT_ATTACHED = -13,/* the calling thread did not call hsm_thread_attach */
    HSM_E_EXISTS = -14,      /* a key with this label/id already exists (key generation) */
    HSM_E_GENERATE = -15,    /* the token failed to generate a key pair */
};

/* Message for an enum hsm_err value; never NULL. */
const char *hsm_strerror(int err);

enum hsm_key_type { HSM_KEY_EC = 1, HSM_KEY_RSA = 2 };

/* What the caller asks to be signed. */
enum hsm_sig_kind {
    HSM_SIG_ECDSA,        /* in: a hash; out: DER ECDSA-Sig-Value (RFC 5480 / X9.62) */
    HSM_SIG_RSA_PKCS1,    /* in: a DER DigestInfo (RFC 8017 9.2 step 2); out: modulus-sized signature */
    HSM_SIG_RSA_PSS,      /* in: a hash; hash_bits selects SHA-256/384/512, MGF1 with the same hash, salt = hash length (RFC 8446 4.2.3) */
};

struct hsm_ctx;   /* loaded modules, tokens, keys, per-thread sessions */
struct hsm_key;   /* a private key in a token, owned by its hsm_ctx */

/* Logging hook: level is a syslog priority (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG). */
typedef void (*hsm_log_fn)(int level, const char *msg);
void hsm_set_logger(hsm_log_fn fn);

/* Creates an empty context.
 * default_module: module path used when a key URI names none (may be NULL: then URIs must carry
 * module-path or module-name). default_pin_source: "file:/path" or "env:NAME" (may be NULL: then
 * URIs must carry pin-source or the token must need no login). Strings are copied. */
int hsm_ctx_new(struct hsm_ctx **out, const char *default_module, const char *default_pin_source,
                char *err, size_t errlen) HSM_WUR;

/* Closes every session, logs out, finalizes modules, wipes what it held. Accepts NULL. */
void hsm_ctx_free(struct hsm_ctx *ctx);

/* Resolves a private key by RFC 7512 URI ("pkcs11:token=hsmgate;object=server;type=private",
 * query attributes module-path, module-name and pin-source honoured). Loads the module if needed,
 * finds the slot whose token matches, logs in once (a wrong PIN is HSM_E_PIN and is not retried),
 * finds exactly one private key, reads its public half. Opening the same URI twice returns the
 * same key. The key is owned by ctx. */
int hsm_key_open(struct hsm_ctx *ctx, const char *uri, struct hsm_key **out,
                 char *err, size_t errlen) HSM_WUR;

/* Key facts. bits: EC field size (256, 384, 521) or RSA modulus size. */
enum hsm_key_type hsm_key_type(const struct hsm_key *key);
unsigned hsm_key_bits(const struct hsm_key *key);
/* The public key as DER SubjectPublicKeyInfo (RFC 5280 4.1.2.7); owned by the key. */
const uint8_t *hsm_key_spki(const struct hsm_key *key, size_t *len);
/* The URI the key was opened with (never holds a PIN value). */
const char *hsm_key_uri(const struct hsm_key *key);
/* Human description of the signing path ("CKM_ECDSA", "CKM_RSA_PKCS_PSS", "CKM_RSA_X_509 (raw, padded here)"). */
const char *hsm_key_path(const struct hsm_key *key, enum hsm_sig_kind kind);

/* Gives the calling thread its index and opens its sessions lazily (at its first signature, or now
 * when eager is nonzero: then every token gets a session and every key a cached handle). */
int hsm_thread_attach(struct hsm_ctx *ctx, unsigned index, int eager) HSM_WUR;
/* Closes the calling thread's sessions. */
void hsm_thread_detach(struct hsm_ctx *ctx);

/* Signs in the token through the calling thread's own session and cached key handle.
 * hash_bits is used by HSM_SIG_RSA_PSS only (256, 384 or 512).
 * *out_len: in, the size of out; out, the signature's length.
 * A lost session/token (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_DEVICE_REMOVED,
 * CKR_TOKEN_NOT_PRESENT, CKR_DEVICE_ERROR, CKR_USER_NOT_LOGGED_IN, CKR_KEY_HANDLE_INVALID,
 * CKR_OBJECT_HANDLE_INVALID) returns HSM_E_SESSION and marks the session for reopening; the next
 * call reopens it, logs in again and finds the key again (at most one attempt per 100 ms per thread). */
int hsm_sign(struct hsm_key *key, enum hsm_sig_kind kind, unsigned hash_bits,
             const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len) HSM_WUR;

/* Counters since start (all threads). */
/* Upper bounds (microseconds) of the signature latency histogram's buckets; the last is +Inf. */
#define HSM_LAT_BUCKETS 10
extern const unsigned hsm_lat_bounds_us[HSM_LAT_BUCKETS - 1];

struct hsm_stats {
    uint64_t signs;           /* successful signatures */
    uint64_t sign_errors;     /* failed signatures (any cause) */
    uint64_t session_lost;    /* sessions found lost */
    uint64_t reopened;        /* sessions reopened after a loss */
    uint64_t lat_buckets[HSM_LAT_BUCKETS];  /* successful signatures by time in the token (C_SignInit+C_Sign),
                                               not cumulative */
    uint64_t lat_sum_us;
};
void hsm_stats_get(const struct hsm_ctx *ctx, struct hsm_stats *out);

/* Whether every token the context uses is present now (C_GetSlotList and C_GetTokenInfo, as the
 * recovery path finds a token again; any thread, the module's own locking serializes). Returns the
 * number of tokens missing, 0 when all are there; the labels of the missing ones go to missing
 * (comma-separated, cut to cap). For health checks: a signature that fails says so only when one is
 * attempted, this says it at once, and says when the token is back. */
int hsm_ctx_probe(struct hsm_ctx *ctx, char *missing, size_t cap);

/* --- key generation (hsmgate pki) --- */

/* Generates a key pair inside the token named by token_uri ("pkcs11:token=hsmgate"), labelled
 * label with a fresh random CKA_ID, private half CKA_SENSITIVE and not CKA_EXTRACTABLE, both halves
 * CKA_TOKEN. spec: "ec:P-256", "ec:P-384", "rsa:2048", "rsa:3072", "rsa:4096".
 * Fails with HSM_E_EXISTS when a private key with that label exists. On success *key_out (may be NULL)
 * is the new private key, opened as by hsm_key_open. */
int hsm_key_generate(struct hsm_ctx *ctx, const char *token_uri, const char *label, const char *spec,
                     struct hsm_key **key_out, char *err, size_t errlen) HSM_WUR;

/* --- pin sources --- */

/* Reads a PIN from "file:/path" (first line; the file must not be readable by group/other)
 * or "env:NAME". Writes at most cap-1 bytes and a NUL to pin; *len gets the length.
 * The caller wipes pin with hsm_wipe after use. */
int hsm_pin_read(const char *source, char *pin, size_t cap, size_t *len,
                 char *err, size_t errlen) HSM_WUR;

/* Wipes memory in a way the compiler cannot elide. */
void hsm_wipe(void *p, size_t n);

#endif
