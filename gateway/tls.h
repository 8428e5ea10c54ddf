/* tls.h - wolfSSL termination for one listener: the context (certificate chain, HSM-held key bound
 * through wolfSSL's PK callbacks, client CA and verification rules) and per-connection helpers.
 * wolfSSL types are kept out of this header's users' way: they get void pointers. */
#ifndef HSMGATE_GATEWAY_TLS_H
#define HSMGATE_GATEWAY_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/admit.h"
#include "gateway/config.h"

struct hsm_ctx;
struct hsm_key;

/* Per-connection verification state the verify callback writes; lives in the connection. */
#define GW_TLS_STATE_MAGIC 0x67775453u /* "gwTS" */
struct gw_tls_state {
    uint32_t magic;
    const char *reason;       /* static string: why the client was refused, or NULL */
    /* Admission (set before the handshake for listeners that take client certificates). */
    const struct gw_admit *admit;   /* NULL: one-way */
    struct pol_live *live;          /* the snapshot, read as reader index reader (the worker's) */
    unsigned reader;
    struct gw_ident ident;          /* the client's chain, kept to decide again (gw_ident_clear) */
    int decided;                    /* verdict holds a decision */
    struct pol_verdict verdict;
    /* A ticket this connection presented (tickets.h): the chain kept with it. */
    unsigned char *ticket_ids;
    size_t ticket_ids_len;
    int ticket_resumed;
};
/* The state attached to ssl (NULL if none), and freeing what it holds. */
struct gw_tls_state *gw_tls_state_of(void *ssl);
void gw_tls_state_clear(struct gw_tls_state *st);

/* Process-wide wolfSSL set-up and tear-down (call once each from the main thread). */
int gw_tls_global_init(void);
void gw_tls_global_cleanup(void);
/* Every thread that may run wolfSSL's ECC (workers, the admin API's) calls this once or more: its
 * per-thread ECC cache is freed when it ends. Cheap after the first call. */
void gw_tls_thread_register(void);

/* Builds a server context for the listener: chain from l->certificate, key from l->key (a PKCS#11
 * URI resolved in hsm, or a PEM file), client CAs (admit->ca_files) and verify mode from l->auth,
 * versions, ciphers, session tickets. *ctx_out is a WOLFSSL_CTX *. *key_out is the HSM key or NULL
 * for a file key. On failure writes "file:line: ..." into err and returns -1. */
int gw_tls_ctx_new(const struct gw_config *cfg, const struct gw_listener_cfg *l, const struct gw_admit *admit,
                   struct hsm_ctx *hsm, void **ctx_out, struct hsm_key **key_out, char *err, size_t errlen);

/* Loads the peer's chain from ssl's session into st->ident and decides with the current snapshot
 * (the verify callback does this in a full handshake; call it after a resumed one). A chain that
 * does not decode is refused. */
enum pol_reason gw_tls_decide(void *ssl, struct gw_tls_state *st);
/* Decides again on st->ident (kept from the handshake) with the current snapshot, under admit (the
 * listener's rules as now configured) or, when NULL, those it was admitted under. */
enum pol_reason gw_tls_redecide(struct gw_tls_state *st, const struct gw_admit *admit);
void gw_tls_ctx_free(void *ctx);

/* Creates the WOLFSSL for an accepted socket, with the key's signing context and the
 * verification state attached. Returns NULL on allocation failure. */
void *gw_tls_new(void *ctx, int fd, struct hsm_key *key, struct gw_tls_state *st);
void gw_tls_free(void *ssl);
/* After wolfSSL_accept succeeded: frees what wolfSSL keeps of the handshake that nothing reads again
 * (an idle connection's memory). */
void gw_tls_handshake_done(void *ssl);

/* What the access log and later the identity headers need to know of the peer. */
struct gw_peer_info {
    int has_cert;
    char subject[512];        /* RFC 4514 */
    char issuer[512];
    char serial[130];         /* hex, upper case */
    char fp_sha256[65];       /* hex, lower case, of the DER certificate */
    char not_after[32];       /* RFC 3339 */
};
void gw_tls_peer_info(void *ssl, struct gw_peer_info *out);

/* The short reason for an X509_V_ERR_* (or a wolfSSL error passed through as one) of a client
 * chain: "certificate_expired", "unknown_ca", "name_constraint_violation", ... */
const char *gw_tls_x509_reason(int err);

/* Maps a failed handshake (err: wolfSSL_get_error of the failing call) to a short reason for logs and metrics
 * ("no_client_certificate", "certificate_expired", "unknown_ca", "hsm_sign_failed", ...). */
const char *gw_tls_handshake_reason(void *ssl, int err, const struct gw_tls_state *st);

/* The TLS facts a PROXY v2 header's PP2_TYPE_SSL carries (proxy_v2.h), of a finished handshake.
 * Names are OpenSSL's, which is what receivers of the header (HAProxy, nginx) compare against. */
struct gw_tls_pp2 {
    int has_cert;             /* the TLS session has a client certificate */
    int cert_in_conn;         /* ... sent in this connection's handshake (a full one, not resumed) */
    long verify;              /* X509_V_OK (0): verified, or no certificate */
    char version[16];         /* "TLSv1.3" */
    char cipher[64];          /* "TLS_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256" */
    char cn[256];             /* the client certificate's first subject CN */
    char sig_alg[64];         /* its signature algorithm, "ecdsa-with-SHA256", "sha256WithRSAEncryption" */
    char key_alg[64];         /* its public key algorithm, "id-ecPublicKey", "rsaEncryption" */
    unsigned char *der;       /* with want_der: the client certificate, DER, malloc'd; else NULL */
    size_t der_len;
};
/* Fills out for ssl; free with gw_tls_pp2_clear. Returns 0, or -1 when out of memory. */
int gw_tls_pp2_info(void *ssl, int want_der, struct gw_tls_pp2 *out) GW_WUR;
void gw_tls_pp2_clear(struct gw_tls_pp2 *info);

/* https listeners: offers ALPN "http/1.1" (RFC 7301) on ssl, a new connection. Returns 0, or -1
 * when out of memory. */
int gw_tls_alpn_http11(void *ssl) GW_WUR;

#endif
