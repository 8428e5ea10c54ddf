/* config.h - the YAML configuration file (libyaml), parsed into plain structs.
 *
 * Every value remembers the line it came from, so that later checks (a key the HSM does not have,
 * a certificate that does not load) can name file:line too. Parsing is strict: unknown keys,
 * wrong types, duplicate keys, duplicate listener names or bind addresses are errors.
 */
#ifndef HSMGATE_GATEWAY_CONFIG_H
#define HSMGATE_GATEWAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define GW_WUR __attribute__((warn_unused_result))

enum gw_auth { GW_AUTH_ONE_WAY = 0, GW_AUTH_TWO_WAY = 1, GW_AUTH_OPTIONAL = 2 };
enum gw_ltype { GW_LISTENER_TCP = 0, GW_LISTENER_HTTPS = 1 };
enum gw_tls_version { GW_TLS_1_2 = 12, GW_TLS_1_3 = 13 };

struct gw_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[64];              /* as written, normalised: "127.0.0.1:7000", "[::1]:7000" */
};

struct gw_backend_cfg {
    struct gw_addr addr;
    unsigned weight;            /* 1..256, default 1 */
    int line;
};

enum gw_balance { GW_BALANCE_ROUND_ROBIN = 0, GW_BALANCE_LEAST_CONN = 1 };
enum gw_health_type { GW_HEALTH_NONE = 0, GW_HEALTH_TCP = 1, GW_HEALTH_HTTP = 2 };
enum gw_proxy_protocol { GW_PROXY_NONE = 0, GW_PROXY_V2 = 2 };

struct gw_health_cfg {
    enum gw_health_type type;   /* NONE: every backend counts as up */
    char *path;                 /* HTTP: "GET path HTTP/1.1"; a 2xx or 3xx status is healthy; default "/" */
    unsigned interval_ms;       /* default 5000 */
    unsigned timeout_ms;        /* default 2000 */
    unsigned rise;              /* consecutive successes to mark a down backend up, default 2 */
    unsigned fall;              /* consecutive failures to mark an up backend down, default 3 */
    int line;
};

/* Header names of the identity an https listener forwards (NULL: that header is not sent). */
struct gw_identity_headers {
    char *client_cert;          /* RFC 9440 "Client-Cert" */
    char *client_cert_chain;    /* RFC 9440 "Client-Cert-Chain"; NULL unless configured */
    char *subject;              /* "X-Client-Cert-Subject" */
    char *issuer;               /* "X-Client-Cert-Issuer" */
    char *serial;               /* "X-Client-Cert-Serial" */
    char *fingerprint;          /* "X-Client-Cert-Fingerprint-SHA256" */
    char *not_after;            /* "X-Client-Cert-Not-After" */
    char *verify;               /* "X-Client-Verify": SUCCESS, NONE or the failure */
    char *forwarded_for;        /* "X-Forwarded-For" */
    char *forwarded_proto;      /* "X-Forwarded-Proto" */
};

/* A trusted client CA file of a policy: a PEM bundle of one or more CA certificates. */
struct gw_policy_ca_cfg {
    char *file;
    int crl_required;           /* crl: required - their certificates' status comes from an imported CRL */
    int line;
};

/* policies: { NAME: {...} } - who a listener admits (policies/pol.h does the deciding). */
struct gw_policy_cfg {
    char *name;                 int line;
    struct gw_policy_ca_cfg *cas; size_t ncas;      /* client_ca: required */
    char *allowlist;            /* the allowlist's name; default the policy's name */
    int require_allowlist;      /* require_allowlist: true - only clients on the allowlist get in */
    int soft_fail;              /* revocation: soft-fail (default hard-fail) */
    unsigned crl_grace_s;       /* stale_crl: fail-closed (0, default) or a grace period */
    unsigned required_eku;      /* POL_EKU_* bits; default clientAuth */
    unsigned max_chain_depth;   /* default 4 */
};

struct gw_listener_cfg {
    char *name;                 int name_line;
    enum gw_ltype type;         int type_line;
    struct gw_addr bind;        int bind_line;
    enum gw_auth auth;          int auth_line;
    char *certificate;          int certificate_line;   /* PEM: leaf first, then intermediates */
    char *key;                  int key_line;           /* "pkcs11:..." URI, or a PEM key file path (for comparison only) */
    char *client_ca;            int client_ca_line;     /* PEM bundle; required for two-way and optional */
    struct gw_backend_cfg *backends; size_t nbackends; int backends_line;
    enum gw_tls_version min_tls;  /* default 1.2 */
    enum gw_tls_version max_tls;  /* default 1.3 */
    char *ciphers;              /* TLS 1.2 cipher list (wolfSSL syntax); NULL: the built-in secure default */
    unsigned verify_depth;      /* max client chain depth; default 4 */
    int verify_depth_set;       /* written in the file (a listener with a policy takes the policy's) */
    unsigned handshake_timeout_ms;  /* default 10000 */
    unsigned idle_timeout_ms;       /* default 300000 */
    unsigned connect_timeout_ms;    /* default 5000 */
    unsigned max_connections;       /* per listener; 0 = only the global cap */
    enum gw_balance balance;        /* default round-robin (weighted) */
    struct gw_health_cfg health;    /* health_check: {...}; type NONE when absent */
    /* tcp listeners */
    enum gw_proxy_protocol proxy_protocol;  /* proxy_protocol: v2 */
    int proxy_protocol_cert;        /* proxy_protocol_cert: true - the client certificate (DER) in TLV 0xE0 */
    /* https listeners */
    struct gw_identity_headers headers;     /* identity_headers: {...}; defaults as in the struct's comments */
    char **strip_headers;           /* strip_headers: [...] - removed from requests besides the built-in list */
    size_t nstrip_headers;
    unsigned backend_timeout_ms;    /* time to a response's head before 504, default 60000 */
    unsigned max_header_bytes;      /* request line + headers, default 16384 (431 beyond) */
    unsigned max_headers;           /* header count, default 100 (431 beyond) */
    char *policy;               int policy_line;        /* policy: NAME, or NULL */
    int policy_idx;             /* index in gw_config.policies, or -1 */
    int line;                   /* the line of the listener's mapping */
    /* The admin API's mutual-TLS front (admin: tls:): an https listener named GW_ADMIN_TLS_LISTENER
     * whose one backend is the admin API's private Unix socket, filled in by the server at run time
     * (AF_UNIX with an empty path until then). */
    int admin_front;
};

#define GW_ADMIN_TLS_LISTENER "admin-tls"

/* admin: {...} - the REST admin API (admin-api/adm.h); enabled only when the section is there. */
struct gw_admin_cfg {
    int enabled;
    int tcp;                    /* listen on bind (default 127.0.0.1:9440) */
    struct gw_addr bind;
    char *unix_socket;          /* NULL: none */
    char *tokens_file;          /* NULL: authenticated routes answer 401 */
    int line;
    /* The certificate authority of POST /v1/certificates and /crl: both or neither. */
    char *ca_certificate;       int ca_certificate_line;   /* PEM or DER file; NULL: no CA */
    char *ca_key;               int ca_key_line;           /* "pkcs11:" URI of the root's key; NULL: no CA */
    unsigned client_validity_days;  /* validity of issued certificates, and the most a request may ask:
                                     * default 365, at most 825 */
    unsigned crl_validity_s;    /* nextUpdate - thisUpdate of /crl: default 7 days, 1 minute to 365 days */
    char *crl_url;              /* http:// URL of /crl for issued certificates' cRLDistributionPoints; NULL: none */
    int tls;                    /* admin: tls: {...} - the mutual-TLS front is the listener with admin_front */
    int tls_line;
};

struct gw_config {
    char *path;                 /* the file read */
    char *hsm_module;           int hsm_module_line;    /* may be NULL when every URI names its module */
    char *hsm_pin;              int hsm_pin_line;       /* pin source: "file:/path" or "env:NAME"; may be NULL */
    unsigned workers;           /* 0 in the file = one per core (resolved by the caller) */
    unsigned max_connections;   /* global cap, default 10000 */
    unsigned max_connections_per_address;   /* open connections one client address may hold; 0 (default): no limit */
    unsigned max_handshakes_per_address;    /* unfinished handshakes one address may hold; default 256, 0: no limit */
    unsigned max_handshake_rate_per_address;    /* new connections a second from one address (burst: twice);
                                                 * 0 (default): no limit */
    unsigned drain_timeout_ms;  /* SIGTERM: how long to wait for connections, default 30000 */
    char *log_level;            /* "error" | "warning" | "info" | "debug"; default "info" */
    char *access_log;           /* path, "-" for stdout, NULL for off; default "-" */
    char *pid_file;             /* NULL: none */
    int log_syslog;             /* log: to: syslog - the error log goes to syslog(3) instead of stderr */
    int log_facility;           /* log: facility: LOG_DAEMON (default) or LOG_LOCAL0..7 */
    /* Privileges (gateway/service.c): after binding and opening everything, switch to user (and its
     * group, or group); as root with neither user nor allow_root: true, `run` refuses to start. */
    char *user;                 int user_line;          /* a name or a numeric uid; NULL: stay */
    char *group;                int group_line;         /* NULL: the user's primary group */
    int allow_root;             /* allow_root: true - keep running as root (tests, containers that map it) */
    char *policy_store;         int policy_store_line;  /* SQLite file of revocations and allowlists; NULL: none */
    struct gw_policy_cfg *policies; size_t npolicies;
    struct gw_admin_cfg admin;
    struct gw_listener_cfg *listeners; size_t nlisteners;
};

/* Parses the file at path. On success *out is a new config (free with gw_config_free).
 * On failure returns -1 and writes "path:line: message" (or "path: message") into err. */
int gw_config_load(const char *path, struct gw_config **out, char *err, size_t errlen) GW_WUR;

/* Same, from a buffer (name is used in messages). For tests and fuzzing. */
int gw_config_parse(const char *name, const char *buf, size_t len, struct gw_config **out,
                    char *err, size_t errlen) GW_WUR;

void gw_config_free(struct gw_config *cfg);

/* Parses "host:port", "[v6]:port" or "*:port" (numeric addresses only; "localhost" is 127.0.0.1). */
int gw_addr_parse(const char *text, struct gw_addr *out) GW_WUR;

/* Parses a duration: "250ms", "10s", "5m", "1h", or a bare number of seconds. */
int gw_duration_parse(const char *text, unsigned *ms_out) GW_WUR;

#endif
