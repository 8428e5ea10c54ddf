/* adm.h - the admin REST API (libmicrohttpd, jansson): what the gateway sees of it.
 *
 * The server runs in libmicrohttpd's own thread (MHD_USE_INTERNAL_POLLING_THREAD, one thread), so a
 * slow request never blocks the data plane, and the data plane is reached only through the hooks
 * below (counters read atomically, the policy thread kicked). Changes go to the policy store
 * (policies/pol.h), which makes them durable before the API answers; the gateway's policy thread then
 * publishes them to the workers at once. See admin-api/README.md for the routes.
 */
#ifndef HSMGATE_ADMIN_API_ADM_H
#define HSMGATE_ADMIN_API_ADM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <jansson.h>

#include "policies/pol.h"

struct hsm_ctx;

#define ADM_WUR __attribute__((warn_unused_result))

struct adm_server;

/* The admin section of the configuration (gateway/config.h fills one). */
struct adm_config {
    const struct sockaddr *bind;    /* TCP address (127.0.0.1:9440 by default); NULL: none */
    socklen_t bind_len;
    const char *bind_text;          /* for messages */
    const char *unix_socket;        /* a Unix socket path besides (or instead of) TCP; NULL: none */
    const char *tokens_file;        /* bearer tokens (admin-api/README.md: format); NULL: every
                                     * authenticated route answers 401 */
    size_t max_body;                /* request body cap in bytes; 0: 8 MiB */
    /* The mutual-TLS front (admin: tls:): the gateway terminates TLS on an https listener and forwards
     * to this Unix socket, which only the gateway's own process may use (SO_PEERCRED); requests there
     * are authenticated by the client certificate the identity headers name ("cert-sha256:" lines of
     * the tokens file), never by a bearer token. Put it in a directory only the gateway can enter.
     * NULL: none. */
    const char *front_socket;
    /* The certificate authority (POST /v1/certificates, /crl): the root whose key is in the HSM.
     * ca_key NULL: no CA (the certificate routes answer 503, /crl 404). adm_server_start opens the key
     * (so it runs on the main thread, as hsm.h asks of hsm_key_open); the API's thread signs with it as
     * HSM thread hsm_index, which no other thread may use. */
    struct hsm_ctx *hsm;            /* the gateway's HSM context; required with ca_key */
    unsigned hsm_index;             /* the API thread's HSM thread index (the gateway: nworkers + 1) */
    const char *ca_certificate;     /* the root's certificate (PEM or DER file) */
    const char *ca_key;             /* its key, an RFC 7512 "pkcs11:" URI */
    unsigned client_validity_days;  /* default validity of issued certificates; 0: 365 */
    unsigned client_validity_max_days;  /* the most a request may ask (validity_days); 0: 825 */
    unsigned crl_validity_s;        /* nextUpdate - thisUpdate of /crl; 0: 7 days */
    const char *crl_url;            /* where relying parties fetch /crl: put in issued certificates'
                                     * cRLDistributionPoints; NULL: no such extension */
};

/* What the API reads or asks of the running gateway. Every callback runs on the API's thread and must
 * not block for long; ctx is the gateway's. Any callback may be NULL (the route then says 503). */
struct adm_hooks {
    void *ctx;
    /* A change was committed to the store: publish it now (wakes the policy thread). */
    void (*policy_changed)(void *ctx);
    /* Prometheus text exposition (format 0.0.4) of the gateway's own metrics, appended to *out
     * (a malloc'd, NUL-terminated buffer the callee may realloc; *len is its length). 0 or -1. */
    int (*metrics)(void *ctx, char **out, size_t *len);
    /* {"listeners": [...]} with each listener's configuration and counters (a new reference). */
    json_t *(*listeners)(void *ctx);
    /* {"status": "ok"|"degraded", "hsm": ..., "store": ..., "listeners": ...}; *ok 0 when degraded. */
    json_t *(*health)(void *ctx, int *ok);
    /* The store generation in force on the data plane (0 without a store). */
    uint64_t (*policy_generation)(void *ctx);
    /* Live connections (admitted handshakes) with an id above after_id, of listener (NULL: every
     * listener), ascending id, at most limit: a new JSON array of objects as admin-api/README.md
     * "Connections" shows, or NULL on failure. Ids are unique in the process and never reused. */
    json_t *(*connections)(void *ctx, const char *listener, size_t limit, uint64_t after_id);
    /* Closes live connection id on its worker's thread and waits (bounded; the gateway's: 2 s) for the
     * worker to confirm. Returns ADM_CONN_CLOSED, ADM_CONN_UNKNOWN, ADM_CONN_PENDING (asked, not
     * confirmed in time: the worker closes it when it gets to it), or -1 on failure. */
    int (*close_connection)(void *ctx, uint64_t id);
};

/* close_connection's answers. */
#define ADM_CONN_CLOSED 0
#define ADM_CONN_UNKNOWN 1
#define ADM_CONN_PENDING 2

/* Starts the server. store may be NULL (the policy routes then answer 503). Returns 0, or a negative
 * value with a message in err (a bind that fails, a tokens file that does not load, a CA certificate
 * that is not the CA key's). Runs on the main thread when cfg has a ca_key (it opens the key). */
int adm_server_start(const struct adm_config *cfg, struct pol_store *store, const struct adm_hooks *hooks,
                     struct adm_server **out, char *err, size_t errlen) ADM_WUR;
/* What adm_server_start checks, without listening: the tokens file loads and the CA's certificate is
 * the CA key's (for `hsmgate check`). Runs on the main thread. 0, or -1 with a message. */
int adm_config_check(const struct adm_config *cfg, char *err, size_t errlen) ADM_WUR;
/* Stops accepting, finishes the request in progress, frees everything. Accepts NULL. */
void adm_server_stop(struct adm_server *s);

/* Reloads the tokens file (SIGHUP); the old tokens stay in force if the file does not load. */
int adm_server_reload_tokens(struct adm_server *s, char *err, size_t errlen) ADM_WUR;

/* The TCP port the server listens on (useful when cfg->bind asked for port 0), or 0 without TCP. */
int adm_server_port(const struct adm_server *s);

/* A new bearer token for the tokens file (for `hsmgate admin token NAME ROLE`): 32 random bytes from
 * getrandom(2), base64url without padding (ADM_TOKEN_LEN characters), into token_out (cap at least
 * ADM_TOKEN_LEN + 1), and the lower-case hex SHA-256 of that string into hash_hex_out (at least
 * ADM_TOKEN_HASH_HEX_LEN + 1 bytes): the third field of the line `NAME ROLE HASH`. The caller shows
 * the token once and wipes it. Returns 0 or -1 (cap too small, no randomness). */
#define ADM_TOKEN_LEN 43
#define ADM_TOKEN_HASH_HEX_LEN 64
int adm_token_new(char *token_out, size_t cap, char *hash_hex_out) ADM_WUR;

#endif
