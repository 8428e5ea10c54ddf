/* internal.h - types and helpers shared by the files of the pkcs11/ module. Not for other modules:
 * they use hsm.h only.
 *
 * Ownership: an hsm_ctx owns its modules, tokens and keys (singly linked lists, freed by hsm_ctx_free).
 * A token owns one "main" session, used only by the main thread (key lookups at open, key generation),
 * and one session slot per worker thread index. Each per-thread slot, and each key's per-thread cached
 * handle, is touched only by the thread attached with that index (DESIGN.md fact 2), so the hot path
 * takes no lock. */
#ifndef HSMGATE_PKCS11_INTERNAL_H
#define HSMGATE_PKCS11_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include "pkcs11/hsm.h"

#define HSM_CTX_MAGIC 0x48534d43u   /* "HSMC" */
#define HSM_KEY_MAGIC 0x48534d4bu   /* "HSMK" */
#define HSM_PIN_MAX 256             /* PKCS#11 PINs are short; SoftHSM caps them at 255 */
#define HSM_RETRY_NS (100L * 1000 * 1000)  /* one recovery attempt per 100 ms per thread */

#define HSM_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Guard macros (STYLE.md): ours (0 is success) and PKCS#11's (CKR_OK is 0). */
#define HSM_TRY(expr) do { rc = (expr); if (rc < 0) goto out; } while (0)

/* --- err.c --- */
void hsm_log(int level, const char *fmt, ...) HSM_PRINTF(2, 3);
/* Writes a one-line message to err (if any) and returns code, so callers can `return hsm_errf(...)`. */
int hsm_errf(char *err, size_t errlen, int code, const char *fmt, ...) HSM_PRINTF(4, 5);
/* Symbolic name of a CK_RV ("CKR_PIN_INCORRECT"), or "CKR_0x..." for unknown values (static buffer per thread). */
const char *hsm_ckr_name(CK_RV rv);
/* 1 when rv means the session or token is gone and a reopen may help (the list in hsm.h). */
int hsm_ckr_is_lost(CK_RV rv);
/* 1 when rv means the token refused the PIN itself: retrying would only burn PIN attempts. */
int hsm_ckr_is_pin(CK_RV rv);
/* Copies a NUL-terminated string; NULL in gives NULL out (check with the input). */
char *hsm_strdup(const char *s);
void hsm_monotonic(struct timespec *ts);

/* --- der.c: a minimal DER writer, see the file for why it is hand-written --- */
/* SubjectPublicKeyInfo for an EC key: curve_oid is the DER OID TLV (CKA_EC_PARAMS), point the uncompressed point. */
int hsm_der_spki_ec(const uint8_t *curve_oid, size_t oid_len, const uint8_t *point, size_t point_len,
                    uint8_t **out, size_t *out_len) HSM_WUR;
/* SubjectPublicKeyInfo for an RSA key from big-endian modulus and exponent. */
int hsm_der_spki_rsa(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len,
                     uint8_t **out, size_t *out_len) HSM_WUR;
/* ECDSA-Sig-Value from the raw r||s that CKM_ECDSA returns (PKCS#11 v2.40 curr. mech. 2.3.1). */
int hsm_der_ecdsa_sig(const uint8_t *rs, size_t rs_len, uint8_t *out, size_t *out_len) HSM_WUR;
/* If p is a DER OCTET STRING spanning exactly len bytes, sets *inner and *inner_len to its content and returns 1. */
int hsm_der_unwrap_octets(const uint8_t *p, size_t len, const uint8_t **inner, size_t *inner_len);

/* --- module.c --- */
struct hsm_module {
    struct hsm_module *next;
    char *ident;                 /* "path:<path>" or "name:<name>", how it was asked for */
    CK_FUNCTION_LIST *fl;        /* p11-kit managed function list */
    CK_FUNCTION_LIST **all;      /* registry array when loaded by name (released at free), else NULL */
};
/* Finds or loads (and initialises) a module by path or by p11-kit registered name. Owned by ctx. */
int hsm_module_get(struct hsm_ctx *ctx, const char *path, const char *name, struct hsm_module **out,
                   char *err, size_t errlen) HSM_WUR;
void hsm_module_free(struct hsm_module *mod);

/* --- token.c --- */
enum hsm_mech_bits {
    HSM_MECH_ECDSA = 1 << 0,
    HSM_MECH_RSA_PKCS = 1 << 1,
    HSM_MECH_RSA_X509 = 1 << 2,
    HSM_MECH_RSA_PSS = 1 << 3,
    HSM_MECH_EC_GEN = 1 << 4,
    HSM_MECH_RSA_GEN = 1 << 5,
};

enum hsm_sess_state { HSM_SESS_NONE = 0, HSM_SESS_OPEN, HSM_SESS_LOST };

/* One worker thread's session on one token. */
struct hsm_tsess {
    CK_SESSION_HANDLE h;
    enum hsm_sess_state state;
    unsigned epoch;              /* bumped at each open: key handles cached in an older epoch are stale */
    int lost;                    /* it was open and got lost: the next successful open counts as a reopen */
    int fail_logged;             /* one log line per outage and thread, not one per retry */
};

struct hsm_token {
    struct hsm_token *next;
    struct hsm_ctx *ctx;
    struct hsm_module *mod;
    CK_TOKEN_INFO info;          /* identity used to re-find the slot: label, manufacturer, model, serial */
    CK_SLOT_ID slot;             /* as last found by the main thread; a worker re-finds its own */
    CK_SESSION_HANDLE main_sess;
    int main_open;
    int login_needed;            /* CKF_LOGIN_REQUIRED, or a PIN was configured */
    char *pin_source;            /* "file:..." / "env:..."; never the PIN itself */
    char *pin_value;             /* URI pin-value (discouraged): kept only because re-login needs it; wiped at free */
    atomic_int pin_refused;      /* the token refused the PIN once: never try it again (no lockout by retries) */
    unsigned mechs;              /* enum hsm_mech_bits, from C_GetMechanismList at first open */
    struct hsm_tsess sess[HSM_MAX_THREADS];
};

/* Finds the single token matching uri (token, slot and library attributes), reusing a known one,
 * else opens its main session and logs in. pin_source/pin_value may be NULL. */
int hsm_token_get(struct hsm_ctx *ctx, struct hsm_module *mod, P11KitUri *uri, const char *pin_source,
                  const char *pin_value, struct hsm_token **out, char *err, size_t errlen) HSM_WUR;
/* Makes sure the main session is usable (reopens and logs in again after a loss). Main thread only. */
int hsm_token_main_ensure(struct hsm_token *tok, char *err, size_t errlen) HSM_WUR;
/* Re-finds the token's current slot by identity (the slot id may change across a removal). */
int hsm_token_find_slot(struct hsm_token *tok, CK_SLOT_ID *slot, char *err, size_t errlen) HSM_WUR;
/* Logs session h in if the token needs it and is not logged in yet. Reads the PIN from its source,
 * wipes it after C_Login. HSM_E_PIN (never retried), HSM_E_PIN_SOURCE, HSM_E_SESSION or HSM_E_TOKEN. */
int hsm_token_login(struct hsm_token *tok, CK_SESSION_HANDLE h, char *err, size_t errlen) HSM_WUR;
void hsm_token_free(struct hsm_token *tok);

/* --- key.c --- */
/* Serializes object searches and object creation across threads (key.c says why). */
void hsm_objects_lock(void);
void hsm_objects_unlock(void);
struct hsm_key_th {
    CK_OBJECT_HANDLE h;
    unsigned epoch;              /* == the thread's session epoch when h is valid; 0 = never found */
    int missing;                 /* the last lookup found no key: retry at most every 100 ms, log once */
};

struct hsm_key {
    uint32_t magic;
    struct hsm_key *next;
    struct hsm_ctx *ctx;
    struct hsm_token *tok;
    char *uri;                   /* canonical URI without pin-value */
    enum hsm_key_type type;
    unsigned bits;
    size_t sig_len;              /* EC: 2 * field bytes (raw r||s); RSA: modulus bytes */
    uint8_t *spki;
    size_t spki_len;
    /* The lookup template, fixed at open (class + CKA_ID + CKA_LABEL as found), reused at every reopen. */
    CK_ATTRIBUTE tmpl[4];
    CK_ULONG ntmpl;
    CK_OBJECT_CLASS cls;
    CK_BBOOL on_token;           /* CKA_TOKEN = TRUE in tmpl: our own session copies never match */
    atomic_int copy_logged;      /* the session-copy path has been logged once */
    uint8_t *id;
    char *label;
    CK_OBJECT_HANDLE main_h;
    struct hsm_key_th th[HSM_MAX_THREADS];
};

/* Finds exactly one object for key->tmpl through session h: 0, HSM_E_KEY, or HSM_E_SESSION (*rv says why). */
int hsm_key_find_handle(struct hsm_key *key, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE *out, CK_RV *rv) HSM_WUR;
void hsm_key_free(struct hsm_key *key);

/* --- session.c --- */
struct hsm_thread {
    atomic_int in_use;           /* an attached thread owns this index */
    struct timespec next_try;    /* no recovery attempt before this (CLOCK_MONOTONIC) */
};

/* Index of the calling thread in ctx, or -1 when it did not attach. */
int hsm_thread_index(const struct hsm_ctx *ctx);
/* Drops the calling thread's attachment to ctx (hsm_ctx_free), freeing its thread-local slot. */
void hsm_thread_forget(const struct hsm_ctx *ctx);
/* Makes the calling thread's session on tok usable (opening or reopening it, rate-limited after a loss). */
int hsm_tsess_ready(struct hsm_token *tok, unsigned idx) HSM_WUR;
/* Marks the calling thread's session on tok lost after rv, counts it, closes what is left of it. */
void hsm_tsess_lost(struct hsm_token *tok, unsigned idx, CK_RV rv);
/* Makes key's handle in the calling thread's session current (lookup only after a (re)open). */
int hsm_key_th_ready(struct hsm_key *key, unsigned idx, CK_OBJECT_HANDLE *out) HSM_WUR;

/* --- ctx.c --- */
struct hsm_ctx {
    uint32_t magic;
    uint64_t serial;             /* unique per process: thread-local attachments name a ctx by it */
    char *default_module;
    char *default_pin_source;
    struct hsm_module *modules;
    struct hsm_token *tokens;
    struct hsm_key *keys;
    struct hsm_thread threads[HSM_MAX_THREADS];
    atomic_uint_fast64_t signs, sign_errors, session_lost, reopened;
    atomic_uint_fast64_t lat_buckets[HSM_LAT_BUCKETS], lat_sum_us;
};

#endif
