/* tls.c - wolfSSL server contexts with the private key in the HSM.
 *
 * The key is bound at the key level only (DESIGN.md fact 2): the context gets PK callbacks for
 * ECDSA, RSA PKCS#1 v1.5 and RSA-PSS signatures and the PUBLIC key as its "private key" buffer
 * (wolfSSL accepts a public key there once PK callbacks are set, and uses it for sizes and for
 * checking our own signature). Hashing, AEAD and verification stay in wolfCrypt with assembly.
 * Each callback signs through the calling worker's own PKCS#11 session (pkcs11/hsm.h).
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/x509.h>
#include <wolfssl/openssl/x509v3.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "gateway/tls.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/log.h"
#include "gateway/tickets.h"
#include "pkcs11/hsm.h"

/* TLS 1.3 suites, then TLS 1.2 ECDHE with AEAD only (no CBC, no RSA key exchange, no SHA-1 MACs). */
static const char default_ciphers[] =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static int ssl_state_idx = -1;

int gw_tls_global_init(void)
{
    if (wolfSSL_Init() != WOLFSSL_SUCCESS)
        return -1;
    ssl_state_idx = wolfSSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (ssl_state_idx < 0 || gw_tickets_init() != 0)
        return -1;
    return 0;
}

/* wolfSSL's fixed-point ECC cache (FP_ECC: on in this build) is per thread and is freed only by that
 * thread calling wc_ecc_fp_free. It is bounded (FP_ENTRIES curves), so not a leak that grows, but a
 * thread that ends without the call loses it: testssl under ASan found 4 MB lost at exit, built when
 * its curve enumeration took the generic ECC path (P-384, P-521). Every thread that runs wolfSSL's ECC
 * registers; the key's destructor frees its cache when the thread ends. */
#ifdef FP_ECC
static pthread_key_t fp_key;
static pthread_once_t fp_once = PTHREAD_ONCE_INIT;
static int fp_key_ok;

static void fp_free(void *unused)
{
    (void)unused;
    wc_ecc_fp_free();
}

static void fp_key_make(void)
{
    fp_key_ok = pthread_key_create(&fp_key, fp_free) == 0;
}
#endif

void gw_tls_thread_register(void)
{
#ifdef FP_ECC
    static char marker;
    (void)pthread_once(&fp_once, fp_key_make);
    if (fp_key_ok && pthread_getspecific(fp_key) == NULL)
        (void)pthread_setspecific(fp_key, &marker);
#endif
}

void gw_tls_global_cleanup(void)
{
    gw_tickets_cleanup();
#ifdef FP_ECC
    wc_ecc_fp_free();   /* the main thread's own cache: it does not end by pthread_exit */
#endif
    wolfSSL_Cleanup();
}

static struct gw_tls_state *state_of(WOLFSSL *ssl)
{
    struct gw_tls_state *st = wolfSSL_get_ex_data(ssl, ssl_state_idx);
    if (st == NULL || st->magic != GW_TLS_STATE_MAGIC)
        return NULL;
    return st;
}

struct gw_tls_state *gw_tls_state_of(void *ssl)
{
    return ssl != NULL ? state_of(ssl) : NULL;
}

void gw_tls_state_clear(struct gw_tls_state *st)
{
    gw_ident_clear(&st->ident);
    free(st->ticket_ids);
    st->ticket_ids = NULL;
    st->ticket_ids_len = 0;
}

static void note_reason(WOLFSSL *ssl, const char *reason)
{
    struct gw_tls_state *st = state_of(ssl);
    if (st != NULL && st->reason == NULL)
        st->reason = reason;
}

/* ---- signing in the HSM ---- */

/* A token that is gone fails every handshake: one line per second at most, with how many were not
 * logged since, rather than one per handshake (thousands a second under load). The reason is in each
 * connection's access-log line and in the metrics all the same. */
static void log_sign_failure(const struct hsm_key *key, int rc)
{
    static struct gw_log_every every;
    uint64_t n = 0;
    if (!gw_log_every_due(&every, &n))
        return;
    if (n > 0)
        gw_log(LOG_WARNING, "HSM signature failed for %s: %s (and %llu more since the last such line)",
               hsm_key_uri(key), hsm_strerror(rc), (unsigned long long)n);
    else
        gw_log(LOG_WARNING, "HSM signature failed for %s: %s", hsm_key_uri(key), hsm_strerror(rc));
}

static int sign_with(WOLFSSL *ssl, void *cbctx, enum hsm_sig_kind kind, unsigned bits,
                     const unsigned char *in, unsigned inSz, unsigned char *out, word32 *outSz)
{
    struct hsm_key *key = cbctx;
    if (key == NULL)
        return BAD_FUNC_ARG;
    size_t olen = *outSz;
    int rc = hsm_sign(key, kind, bits, in, inSz, out, &olen);
    if (rc != 0) {
        note_reason(ssl, rc == HSM_E_SESSION ? "hsm_session_lost" : "hsm_sign_failed");
        log_sign_failure(key, rc);
        return WC_HW_E;
    }
    *outSz = (word32)olen;
    return 0;
}

static int pk_ecc_sign(WOLFSSL *ssl, const unsigned char *in, unsigned int inSz, unsigned char *out,
                       word32 *outSz, const unsigned char *keyDer, unsigned int keySz, void *cbctx)
{
    (void)keyDer;
    (void)keySz;
    return sign_with(ssl, cbctx, HSM_SIG_ECDSA, 0, in, inSz, out, outSz);
}

static int pk_rsa_sign(WOLFSSL *ssl, const unsigned char *in, unsigned int inSz, unsigned char *out,
                       word32 *outSz, const unsigned char *keyDer, unsigned int keySz, void *cbctx)
{
    (void)keyDer;
    (void)keySz;
    return sign_with(ssl, cbctx, HSM_SIG_RSA_PKCS1, 0, in, inSz, out, outSz);
}

static int pk_rsa_pss_sign(WOLFSSL *ssl, const unsigned char *in, unsigned int inSz, unsigned char *out,
                           unsigned int *outSz, int hash, int mgf, const unsigned char *keyDer,
                           unsigned int keySz, void *cbctx)
{
    (void)hash; /* wolfSSL's hash OID sum; the digest's length says the same and needs no private header */
    (void)mgf;
    (void)keyDer;
    (void)keySz;
    unsigned bits = inSz * 8;
    if (bits != 256 && bits != 384 && bits != 512)
        return BAD_FUNC_ARG;
    word32 olen = *outSz;
    int rc = sign_with(ssl, cbctx, HSM_SIG_RSA_PSS, bits, in, inSz, out, &olen);
    *outSz = olen;
    return rc;
}

/* ---- client certificate verification ---- */

const char *gw_tls_x509_reason(int err)
{
    switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED: return "certificate_expired";
    case X509_V_ERR_CERT_NOT_YET_VALID: return "certificate_not_yet_valid";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: return "unknown_ca";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE: return "bad_signature";
    case X509_V_ERR_CERT_CHAIN_TOO_LONG: return "chain_too_long";
    case X509_V_ERR_INVALID_PURPOSE: return "not_for_client_auth";
    case X509_V_ERR_INVALID_CA: return "invalid_ca";
    case X509_V_ERR_PATH_LENGTH_EXCEEDED: return "path_length_exceeded";
    /* wolfSSL passes errors it has no X509_V_ERR for through as they are (GetX509Error). */
    case EXTKEYUSE_AUTH_E: return "not_for_client_auth"; /* its own EKU check */
    case ASN_NAME_INVALID_E: return "name_constraint_violation";
    default: return "certificate_invalid";
    }
}

/* ---- admission ---- */

/* The peer's chain as this connection's TLS session holds it (leaf first): sent in this handshake,
 * or restored with a resumed session. Returns the number of certificates decoded, 0 for none, -1
 * when one does not decode. */
static int ident_load(WOLFSSL *ssl, struct gw_tls_state *st)
{
    struct gw_ident *id = &st->ident;
    gw_ident_clear(id);
    if (st->ticket_resumed && wolfSSL_session_reused(ssl)) {
        /* Resumed with one of our tickets: the chain kept with it (tickets.c). */
        const uint8_t *der[GW_IDENT_MAX_CHAIN];
        size_t len[GW_IDENT_MAX_CHAIN];
        size_t n = gw_tickets_split(st->ticket_ids, st->ticket_ids_len, der, len, GW_IDENT_MAX_CHAIN);
        if (n == 0)
            return 0;
        return gw_ident_from_der(id, der, len, n) == 0 ? (int)n : -1;
    }
    WOLFSSL_X509_CHAIN *chain = wolfSSL_get_peer_chain(ssl);
    int n = chain != NULL ? wolfSSL_get_chain_count(chain) : 0;
    if (n <= 0)
        return 0;
    if (n > GW_IDENT_MAX_CHAIN)
        n = GW_IDENT_MAX_CHAIN;
    const uint8_t *der[GW_IDENT_MAX_CHAIN];
    size_t len[GW_IDENT_MAX_CHAIN];
    for (int i = 0; i < n; i++) {
        der[i] = wolfSSL_get_chain_cert(chain, i);
        int l = wolfSSL_get_chain_length(chain, i);
        if (der[i] == NULL || l <= 0)
            return -1;
        len[i] = (size_t)l;
    }
    return gw_ident_from_der(id, der, len, (size_t)n) == 0 ? n : -1;
}

enum pol_reason gw_tls_decide(void *ssl_, struct gw_tls_state *st)
{
    WOLFSSL *ssl = ssl_;
    int n = ident_load(ssl, st);
    const struct pol_snapshot *snap = pol_snapshot_current(st->live, st->reader);
    if (n < 0) {
        memset(&st->verdict, 0, sizeof(st->verdict));
        st->verdict.reason = POL_R_NO_CERT;
    } else {
        (void)gw_admit_decide(st->admit, snap, &st->ident, time(NULL), &st->verdict);
    }
    st->decided = 1;
    return st->verdict.reason;
}

enum pol_reason gw_tls_redecide(struct gw_tls_state *st, const struct gw_admit *admit)
{
    const struct pol_snapshot *snap = pol_snapshot_current(st->live, st->reader);
    (void)gw_admit_decide(admit != NULL ? admit : st->admit, snap, &st->ident, time(NULL), &st->verdict);
    return st->verdict.reason;
}

/* Without a policy (never for a listener that asks for certificates; kept as the safe default):
 * RFC 5280 4.2.1.12, a client certificate that has an EKU must list clientAuth (or
 * anyExtendedKeyUsage), and an end-entity certificate presented by a client must not be a CA
 * (4.2.1.9). With one, the policy decides (pol_decide_chain), with the current snapshot. */
static int verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    WOLFSSL *ssl = wolfSSL_X509_STORE_CTX_get_ex_data(store, wolfSSL_get_ex_data_X509_STORE_CTX_idx());
    int depth = wolfSSL_X509_STORE_CTX_get_error_depth(store);
    if (!preverify) {
        int err = wolfSSL_X509_STORE_CTX_get_error(store);
        if (ssl != NULL)
            note_reason(ssl, gw_tls_x509_reason(err));
        return 0;
    }
    if (depth != 0)
        return 1;
    struct gw_tls_state *st = ssl != NULL ? state_of(ssl) : NULL;
    if (st != NULL && st->admit != NULL) {
        /* An empty Certificate message: wolfSSL refuses it itself where a certificate is required
         * (two-way); an optional listener goes on without an identity. */
        if (wolfSSL_get_chain_count(wolfSSL_get_peer_chain(ssl)) <= 0)
            return 1;
        enum pol_reason r = gw_tls_decide(ssl, st);
        if (r == POL_ADMIT)
            return 1;
        note_reason(ssl, pol_reason_name(r));
        wolfSSL_X509_STORE_CTX_set_error(store, r == POL_R_REVOKED ? X509_V_ERR_CERT_REVOKED
                                                : r == POL_R_EXPIRED ? X509_V_ERR_CERT_HAS_EXPIRED
                                                : X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    WOLFSSL_X509 *leaf = wolfSSL_X509_STORE_CTX_get_current_cert(store);
    if (leaf == NULL)
        return 1;
    if (wolfSSL_X509_ext_isSet_by_NID(leaf, NID_ext_key_usage)) {
        unsigned eku = wolfSSL_X509_get_extended_key_usage(leaf);
        if ((eku & (XKU_SSL_CLIENT | XKU_ANYEKU)) == 0) {
            if (ssl != NULL)
                note_reason(ssl, "not_for_client_auth");
            wolfSSL_X509_STORE_CTX_set_error(store, X509_V_ERR_INVALID_PURPOSE);
            return 0;
        }
    }
    if (wolfSSL_X509_get_isCA(leaf)) {
        if (ssl != NULL)
            note_reason(ssl, "client_certificate_is_ca");
        wolfSSL_X509_STORE_CTX_set_error(store, X509_V_ERR_INVALID_PURPOSE);
        return 0;
    }
    return 1;
}

/* ---- context ---- */

static int load_key(WOLFSSL_CTX *ctx, const struct gw_listener_cfg *l, struct hsm_ctx *hsm,
                    struct hsm_key **key_out, char *err, size_t errlen, const char *path)
{
    char herr[256];
    if (strncmp(l->key, "pkcs11:", 7) != 0) {
        if (wolfSSL_CTX_use_PrivateKey_file(ctx, l->key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
            snprintf(err, errlen, "%s:%d: listener \"%s\": cannot load key file %s", path, l->key_line,
                     l->name, l->key);
            return -1;
        }
        gw_log(LOG_WARNING, "listener %s: private key read from a file (%s), not from an HSM", l->name, l->key);
        *key_out = NULL;
        return 0;
    }
    if (hsm == NULL) {
        snprintf(err, errlen, "%s:%d: listener \"%s\": no HSM configured for key %s", path, l->key_line,
                 l->name, l->key);
        return -1;
    }
    struct hsm_key *key = NULL;
    int rc = hsm_key_open(hsm, l->key, &key, herr, sizeof(herr));
    if (rc != 0) {
        snprintf(err, errlen, "%s:%d: listener \"%s\": %s", path, l->key_line, l->name, herr);
        return -1;
    }
    /* PK callbacks first: only then does wolfSSL accept a public key in place of the private one. */
    wolfSSL_CTX_SetEccSignCb(ctx, pk_ecc_sign);
    wolfSSL_CTX_SetRsaSignCb(ctx, pk_rsa_sign);
    wolfSSL_CTX_SetRsaPssSignCb(ctx, pk_rsa_pss_sign);
    size_t spki_len = 0;
    const uint8_t *spki = hsm_key_spki(key, &spki_len);
    if (wolfSSL_CTX_use_PrivateKey_buffer(ctx, spki, (long)spki_len, WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "%s:%d: listener \"%s\": wolfSSL refused the public half of %s", path,
                 l->key_line, l->name, l->key);
        return -1;
    }
    gw_log(LOG_INFO, "listener %s: key %s (%s %u) signs in the HSM via %s", l->name, l->key,
           hsm_key_type(key) == HSM_KEY_EC ? "EC" : "RSA", hsm_key_bits(key),
           hsm_key_type(key) == HSM_KEY_EC ? hsm_key_path(key, HSM_SIG_ECDSA) : hsm_key_path(key, HSM_SIG_RSA_PSS));
    *key_out = key;
    return 0;
}

/* The certificate's public key must be the key's: otherwise every handshake would fail at the client. */
static int check_key_matches(WOLFSSL_CTX *ctx, struct hsm_key *key, const struct gw_listener_cfg *l,
                             char *err, size_t errlen, const char *path)
{
    WOLFSSL_X509 *x = wolfSSL_CTX_get0_certificate(ctx);
    if (x == NULL) {
        snprintf(err, errlen, "%s:%d: listener \"%s\": no certificate loaded", path, l->certificate_line, l->name);
        return -1;
    }
    if (key == NULL) {
        if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
            snprintf(err, errlen, "%s:%d: listener \"%s\": the key file does not match the certificate %s",
                     path, l->key_line, l->name, l->certificate);
            return -1;
        }
        return 0;
    }
    /* Compare the certificate's SubjectPublicKeyInfo, as encoded in it, with the token's. */
    int ok = 0;
    unsigned char spki_cert[2048];
    int n = (int)sizeof(spki_cert);
    size_t spki_len = 0;
    const uint8_t *spki = hsm_key_spki(key, &spki_len);
    if (wolfSSL_X509_get_pubkey_buffer(x, spki_cert, &n) == WOLFSSL_SUCCESS)
        ok = n > 0 && (size_t)n == spki_len && memcmp(spki_cert, spki, spki_len) == 0;
    if (!ok) {
        snprintf(err, errlen, "%s:%d: listener \"%s\": the HSM key %s is not the key of certificate %s",
                 path, l->key_line, l->name, l->key, l->certificate);
        return -1;
    }
    return 0;
}

int gw_tls_ctx_new(const struct gw_config *cfg, const struct gw_listener_cfg *l, const struct gw_admit *admit,
                   struct hsm_ctx *hsm, void **ctx_out, struct hsm_key **key_out, char *err, size_t errlen)
{
    const char *path = cfg->path ? cfg->path : "config";
    int ret = -1;
    struct hsm_key *key = NULL;
    WOLFSSL_METHOD *method = l->max_tls == GW_TLS_1_2 ? wolfTLSv1_2_server_method() : wolfSSLv23_server_method();
    WOLFSSL_CTX *ctx = method ? wolfSSL_CTX_new(method) : NULL;
    if (ctx == NULL) {
        snprintf(err, errlen, "%s:%d: listener \"%s\": out of memory creating the TLS context", path, l->line, l->name);
        goto out;
    }
    if (wolfSSL_CTX_SetMinVersion(ctx, l->min_tls == GW_TLS_1_3 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "%s:%d: listener \"%s\": cannot set the minimum TLS version", path, l->line, l->name);
        goto out;
    }
    const char *ciphers = l->ciphers ? l->ciphers : default_ciphers;
    if (wolfSSL_CTX_set_cipher_list(ctx, ciphers) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "%s:%d: listener \"%s\": no usable cipher in \"%s\"", path, l->line, l->name, ciphers);
        goto out;
    }
    if (wolfSSL_CTX_use_certificate_chain_file(ctx, l->certificate) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "%s:%d: listener \"%s\": cannot load certificate chain %s (missing, unreadable or not PEM)",
                 path, l->certificate_line, l->name, l->certificate);
        goto out;
    }
    if (load_key(ctx, l, hsm, &key, err, errlen, path) != 0)
        goto out;
    if (check_key_matches(ctx, key, l, err, errlen, path) != 0)
        goto out;
    if (l->auth != GW_AUTH_ONE_WAY) {
        if (admit == NULL || admit->nca_files == 0) {
            snprintf(err, errlen, "%s:%d: listener \"%s\": no client CA", path, l->line, l->name);
            goto out;
        }
        for (size_t i = 0; i < admit->nca_files; i++) {
            if (wolfSSL_CTX_load_verify_locations(ctx, admit->ca_files[i], NULL) != WOLFSSL_SUCCESS) {
                snprintf(err, errlen, "%s:%d: listener \"%s\": cannot load client CA %s", path, l->client_ca_line,
                         l->name, admit->ca_files[i]);
                goto out;
            }
        }
        int mode = WOLFSSL_VERIFY_PEER;
        if (l->auth == GW_AUTH_TWO_WAY)
            mode |= WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        wolfSSL_CTX_set_verify(ctx, mode, verify_cb);
        wolfSSL_CTX_set_verify_depth(ctx, (int)l->verify_depth);
    } else {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    }
    /* Clients that speak TLS 1.2 must not renegotiate (CVE-2009-3555 class); wolfSSL servers never
     * initiate it, and secure renegotiation is not compiled as a server feature. */
    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_SERVER);
    /* Sessions (IDs and tickets) are bound to this listener and its policy: one issued elsewhere is
     * not resumed here (RFC 5246 F.1.4's session context, which wolfSSL also checks in tickets).
     * 20 bytes: wolfSSL 5.7.2 stores a context into a session only when it is shorter than ID_LEN
     * (32), and then no session of a 32-byte context ever resumes (ssl_sess.c). Listeners that take
     * client certificates issue their own tickets, which keep the client's chain (tickets.h). */
    {
        unsigned char one_way_sid[20];
        const unsigned char *sid = admit != NULL ? admit->sid_ctx : one_way_sid;
        if (admit == NULL)
            gw_admit_sid_ctx(l->name, NULL, one_way_sid);
        if (wolfSSL_CTX_set_session_id_context(ctx, sid, 20) != WOLFSSL_SUCCESS ||
            (admit != NULL && gw_tickets_install(ctx, admit->sid_ctx) != 0)) {
            snprintf(err, errlen, "%s:%d: listener \"%s\": cannot set the session context", path, l->line, l->name);
            goto out;
        }
    }
    *ctx_out = ctx;
    *key_out = key;
    ctx = NULL;
    ret = 0;
out:
    if (ctx != NULL)
        wolfSSL_CTX_free(ctx);
    return ret;
}

void gw_tls_ctx_free(void *ctx)
{
    if (ctx != NULL)
        wolfSSL_CTX_free(ctx);
}

void *gw_tls_new(void *ctx, int fd, struct hsm_key *key, struct gw_tls_state *st)
{
    WOLFSSL *ssl = wolfSSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    if (wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS ||
        wolfSSL_set_ex_data(ssl, ssl_state_idx, st) != WOLFSSL_SUCCESS) {
        wolfSSL_free(ssl);
        return NULL;
    }
    wolfSSL_set_using_nonblock(ssl, 1);
    if (key != NULL) {
        wolfSSL_SetEccSignCtx(ssl, key);
        wolfSSL_SetRsaSignCtx(ssl, key);
        wolfSSL_SetRsaPssSignCtx(ssl, key);
    }
    return ssl;
}

void gw_tls_free(void *ssl)
{
    if (ssl != NULL)
        wolfSSL_free(ssl);
}

void gw_tls_handshake_done(void *ssl)
{
    /* wolfSSL frees what only the handshake needed when it ends, except, after a TLS 1.3 handshake in
     * a build with post-handshake authentication (--enable-distro has it), ssl->arrays: the randoms,
     * secrets and pre-master buffer, about 5 KB per connection for as long as it lives. Only
     * post-handshake authentication, a later NewSessionTicket and keying-material export read them
     * again; this gateway does none of them (its tickets went out before wolfSSL_accept succeeded),
     * and wolfSSL takes post-handshake messages with arrays gone (DoTls13HandShakeMsg). */
    if (ssl != NULL)
        wolfSSL_FreeArrays(ssl);
}

/* ---- peer identity ---- */

/* RFC 4514 2.4: escapes one attribute value into buf at *pos (truncating safely at len). */
static void rdn_escape(const unsigned char *v, int n, char *buf, size_t len, size_t *pos)
{
    for (int i = 0; i < n && *pos + 4 < len; i++) {
        unsigned char ch = v[i];
        int special = ch == ',' || ch == '+' || ch == '"' || ch == '\\' || ch == '<' || ch == '>' || ch == ';' ||
                      (ch == ' ' && (i == 0 || i == n - 1)) || (ch == '#' && i == 0);
        if (ch < 0x20 || ch == 0x7f) {
            *pos += (size_t)snprintf(buf + *pos, len - *pos, "\\%02X", ch);
        } else {
            if (special)
                buf[(*pos)++] = '\\';
            buf[(*pos)++] = (char)ch;
        }
    }
    buf[*pos] = '\0';
}

/* RFC 4514: the most specific RDN first ("CN=client,O=Bank"), as OpenSSL's -nameopt RFC2253 prints. */
static void name_rfc4514(WOLFSSL_X509_NAME *name, char *buf, size_t len)
{
    size_t pos = 0;
    buf[0] = '\0';
    if (name == NULL)
        return;
    int count = wolfSSL_X509_NAME_entry_count(name);
    for (int i = count - 1; i >= 0 && pos + 8 < len; i--) {
        WOLFSSL_X509_NAME_ENTRY *e = wolfSSL_X509_NAME_get_entry(name, i);
        WOLFSSL_ASN1_OBJECT *obj = e ? wolfSSL_X509_NAME_ENTRY_get_object(e) : NULL;
        WOLFSSL_ASN1_STRING *val = e ? wolfSSL_X509_NAME_ENTRY_get_data(e) : NULL;
        if (obj == NULL || val == NULL)
            continue;
        char type[80];
        const char *sn = wolfSSL_OBJ_nid2sn(wolfSSL_OBJ_obj2nid(obj));
        if (sn == NULL || wolfSSL_OBJ_obj2nid(obj) == 0) {
            if (wolfSSL_OBJ_obj2txt(type, (int)sizeof(type), obj, 1) <= 0)
                continue;
            sn = type;
        }
        int w = snprintf(buf + pos, len - pos, "%s%s=", pos ? "," : "", sn);
        if (w < 0 || (size_t)w >= len - pos)
            break;
        pos += (size_t)w;
        rdn_escape(wolfSSL_ASN1_STRING_data(val), wolfSSL_ASN1_STRING_length(val), buf, len, &pos);
    }
}

static void hex(const unsigned char *in, size_t n, char *out, size_t cap, int upper)
{
    static const char lo[] = "0123456789abcdef", up[] = "0123456789ABCDEF";
    const char *d = upper ? up : lo;
    size_t j = 0;
    for (size_t i = 0; i < n && j + 2 < cap; i++) {
        out[j++] = d[in[i] >> 4];
        out[j++] = d[in[i] & 15];
    }
    out[j] = '\0';
}

/* The same facts from the chain this connection was decided on (st->ident, decoded once by
 * policies/cert.c, which prints names as name_rfc4514 does), when its leaf is the certificate wolfSSL
 * holds. wolfSSL_get_peer_certificate would copy and decode the certificate again, twice, each time
 * with its public key and a freshly seeded RNG: a quarter of the CPU of a resumed handshake, for the
 * registry entry and again for the access-log line. Returns -1 where the result could differ
 * (no chain in the session, another leaf, a name long enough to be cut short, a long serial): the
 * caller then asks wolfSSL. */
static int peer_info_from_ident(WOLFSSL *ssl, struct gw_peer_info *out)
{
    const struct gw_tls_state *st = state_of(ssl);
    if (st == NULL || st->ident.n == 0 || st->ident.chain[0] == NULL)
        return -1;
    WOLFSSL_X509_CHAIN *chain = wolfSSL_get_peer_chain(ssl);
    if (chain == NULL || wolfSSL_get_chain_count(chain) <= 0)
        return -1; /* e.g. resumed with a ticket: wolfSSL has no certificate to show, and says so */
    const unsigned char *der = wolfSSL_get_chain_cert(chain, 0);
    int dlen = wolfSSL_get_chain_length(chain, 0);
    const struct pol_cert *leaf = st->ident.chain[0];
    unsigned char fp[WC_SHA256_DIGEST_SIZE];
    if (der == NULL || dlen <= 0 || wc_Sha256Hash(der, (word32)dlen, fp) != 0 ||
        memcmp(fp, pol_cert_fingerprint(leaf), sizeof(fp)) != 0)
        return -1;
    const char *subject = pol_cert_subject(leaf), *issuer = pol_cert_issuer(leaf);
    size_t slen;
    const uint8_t *serial = pol_cert_serial(leaf, &slen);
    /* name_rfc4514 cuts a name near sizeof(out->subject): leave those to it. wolfSSL keeps a serial
     * without its sign octet (a leading 0x00), and at most 64 octets fit its copy below. */
    if (subject == NULL || issuer == NULL || strlen(subject) >= sizeof(out->subject) - 16 ||
        strlen(issuer) >= sizeof(out->issuer) - 16)
        return -1;
    if (slen > 1 && serial[0] == 0x00) {
        serial++;
        slen--;
    }
    if (slen == 0 || slen > 64)
        return -1;
    out->has_cert = 1;
    memcpy(out->subject, subject, strlen(subject) + 1);
    memcpy(out->issuer, issuer, strlen(issuer) + 1);
    hex(serial, slen, out->serial, sizeof(out->serial), 1);
    hex(fp, sizeof(fp), out->fp_sha256, sizeof(out->fp_sha256), 0);
    time_t na = pol_cert_not_after(leaf);
    struct tm tm;
    if (gmtime_r(&na, &tm) != NULL)
        strftime(out->not_after, sizeof(out->not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return 0;
}

void gw_tls_peer_info(void *vssl, struct gw_peer_info *out)
{
    memset(out, 0, sizeof(*out));
    if (vssl != NULL && peer_info_from_ident(vssl, out) == 0)
        return;
    memset(out, 0, sizeof(*out));
    WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(vssl);
    if (x == NULL)
        return;
    out->has_cert = 1;
    name_rfc4514(wolfSSL_X509_get_subject_name(x), out->subject, sizeof(out->subject));
    name_rfc4514(wolfSSL_X509_get_issuer_name(x), out->issuer, sizeof(out->issuer));
    unsigned char serial[64];
    int sn = (int)sizeof(serial);
    if (wolfSSL_X509_get_serial_number(x, serial, &sn) == WOLFSSL_SUCCESS && sn > 0)
        hex(serial, (size_t)sn, out->serial, sizeof(out->serial), 1);
    int dlen = 0;
    const unsigned char *der = wolfSSL_X509_get_der(x, &dlen);
    unsigned char fp[WC_SHA256_DIGEST_SIZE];
    if (der != NULL && dlen > 0 && wc_Sha256Hash(der, (word32)dlen, fp) == 0)
        hex(fp, sizeof(fp), out->fp_sha256, sizeof(out->fp_sha256), 0);
    const WOLFSSL_ASN1_TIME *na = wolfSSL_X509_get_notAfter(x);
    struct tm tm;
    if (na != NULL && wolfSSL_ASN1_TIME_to_tm(na, &tm) == WOLFSSL_SUCCESS)
        strftime(out->not_after, sizeof(out->not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
    wolfSSL_X509_free(x);
}

const char *gw_tls_handshake_reason(void *ssl, int err, const struct gw_tls_state *st)
{
    if (st != NULL && st->reason != NULL)
        return st->reason;
    (void)ssl;
    switch (err) {
    case WOLFSSL_ERROR_ZERO_RETURN: return "client_closed";
    case WOLFSSL_ERROR_SYSCALL: return "connection_reset";
    case NO_PEER_CERT: return "no_client_certificate";
    case VERSION_ERROR: return "protocol_version";
    case MATCH_SUITE_ERROR: return "no_shared_cipher";
    case SOCKET_ERROR_E: return "connection_reset";
    case SOCKET_PEER_CLOSED_E: return "client_closed";
    case FATAL_ERROR: return "alert_received";
    case ASN_NO_SIGNER_E: return "unknown_ca";
    case ASN_AFTER_DATE_E: return "certificate_expired";
    case ASN_BEFORE_DATE_E: return "certificate_not_yet_valid";
    case UNKNOWN_RECORD_TYPE:
    case PARSE_ERROR:
    case BUFFER_ERROR:
    case LENGTH_ERROR:
    case INCOMPLETE_DATA: return "malformed_tls";
    default: return "handshake_failed";
    }
}

/* ---- PROXY protocol v2 facts ---- */

/* OpenSSL's name of the negotiated suite: TLS 1.3 suites have only their RFC 8446 B.4 name, which
 * wolfSSL calls IANA; for TLS 1.2, wolfSSL's own names are OpenSSL's ("ECDHE-ECDSA-AES128-GCM-SHA256"). */
static const char *cipher_openssl_name(WOLFSSL *ssl)
{
    int suite = wolfSSL_get_current_cipher_suite(ssl);
    if (wolfSSL_version(ssl) == TLS1_3_VERSION)
        return wolfSSL_get_cipher_name_iana_from_suite((unsigned char)(suite >> 8), (unsigned char)suite);
    return wolfSSL_get_cipher_name_from_suite((unsigned char)(suite >> 8), (unsigned char)suite);
}

static void copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src != NULL ? src : "");
}

/* The certificate's signature algorithm as OpenSSL names it (`openssl x509 -text`, "Signature
 * Algorithm"): wolfSSL's object table has other long names for some ("sha256WithECDSA"). */
static void sig_alg_name(WOLFSSL_X509 *x, char *buf, size_t len)
{
    static const struct {
        int nid;
        const char *name;
    } names[] = {
        { NID_ecdsa_with_SHA1, "ecdsa-with-SHA1" },
        { NID_ecdsa_with_SHA224, "ecdsa-with-SHA224" },
        { NID_ecdsa_with_SHA256, "ecdsa-with-SHA256" },
        { NID_ecdsa_with_SHA384, "ecdsa-with-SHA384" },
        { NID_ecdsa_with_SHA512, "ecdsa-with-SHA512" },
        { NID_sha1WithRSAEncryption, "sha1WithRSAEncryption" },
        { NID_sha224WithRSAEncryption, "sha224WithRSAEncryption" },
        { NID_sha256WithRSAEncryption, "sha256WithRSAEncryption" },
        { NID_sha384WithRSAEncryption, "sha384WithRSAEncryption" },
        { NID_sha512WithRSAEncryption, "sha512WithRSAEncryption" },
        { NID_rsassaPss, "rsassaPss" },
    };
    int nid = wolfSSL_X509_get_signature_nid(x);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].nid == nid) {
            copy_str(buf, len, names[i].name);
            return;
        }
    }
    copy_str(buf, len, wolfSSL_OBJ_nid2sn(nid));
}

/* The key's algorithm as the OID's long name, as `openssl x509 -text` prints "Public Key Algorithm". */
static void key_alg_name(WOLFSSL_X509 *x, char *buf, size_t len)
{
    WOLFSSL_ASN1_OBJECT *alg = NULL;
    WOLFSSL_X509_PUBKEY *pub = wolfSSL_X509_get_X509_PUBKEY(x);
    if (pub != NULL && wolfSSL_X509_PUBKEY_get0_param(&alg, NULL, NULL, NULL, pub) == WOLFSSL_SUCCESS && alg != NULL)
        copy_str(buf, len, wolfSSL_OBJ_nid2ln(wolfSSL_OBJ_obj2nid(alg)));
}

int gw_tls_pp2_info(void *vssl, int want_der, struct gw_tls_pp2 *out)
{
    WOLFSSL *ssl = vssl;
    int ret = -1;
    memset(out, 0, sizeof(*out));
    copy_str(out->version, sizeof(out->version), wolfSSL_get_version(ssl));
    copy_str(out->cipher, sizeof(out->cipher), cipher_openssl_name(ssl));
    /* The handshake finished, so a certificate that was sent passed verification; the result is
     * read all the same rather than assumed. */
    out->verify = wolfSSL_get_verify_result(ssl);
    WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(ssl);
    if (x == NULL) {
        out->verify = X509_V_OK;
        return 0;
    }
    out->has_cert = 1;
    out->cert_in_conn = !wolfSSL_session_reused(ssl);
    WOLFSSL_X509_NAME *subject = wolfSSL_X509_get_subject_name(x);
    if (subject == NULL || wolfSSL_X509_NAME_get_text_by_NID(subject, NID_commonName, out->cn, (int)sizeof(out->cn)) <= 0)
        out->cn[0] = '\0';
    sig_alg_name(x, out->sig_alg, sizeof(out->sig_alg));
    key_alg_name(x, out->key_alg, sizeof(out->key_alg));
    if (want_der) {
        int dlen = 0;
        const unsigned char *der = wolfSSL_X509_get_der(x, &dlen);
        if (der != NULL && dlen > 0) {
            out->der = malloc((size_t)dlen);
            if (out->der == NULL)
                goto out;
            memcpy(out->der, der, (size_t)dlen);
            out->der_len = (size_t)dlen;
        }
    }
    ret = 0;
out:
    wolfSSL_X509_free(x);
    return ret;
}

void gw_tls_pp2_clear(struct gw_tls_pp2 *info)
{
    if (info == NULL)
        return;
    free(info->der);
    info->der = NULL;
    info->der_len = 0;
}

/* ---- ALPN ---- */

int gw_tls_alpn_http11(void *ssl)
{
    /* RFC 7301 3.2 would have a server refuse a client whose protocols it does not speak; an https
     * listener speaks HTTP/1.1 whatever was offered, so a client offering only h2 goes on without
     * ALPN (CONTINUE_ON_MISMATCH), as OpenSSL servers do, and its request gets a 400 if it is not 1.1. */
    char proto[] = "http/1.1";
    return wolfSSL_UseALPN(ssl, proto, (unsigned)(sizeof(proto) - 1), WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) ==
                   WOLFSSL_SUCCESS
               ? 0
               : -1;
}
