/* adm_srv.h - what the server's own files share (http.c, auth.c, route_system.c, openapi.c). Resource
 * files (route_revocations.c, ...) need only adm_int.h.
 */
#ifndef HSMGATE_ADMIN_API_ADM_SRV_H
#define HSMGATE_ADMIN_API_ADM_SRV_H

#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "admin-api/adm_int.h"

/* ---------------------------------------------------------------- auth.c: tokens and throttling */

/* After ADM_AUTH_FAIL_LIMIT wrong tokens within ADM_AUTH_FAIL_WINDOW seconds, a peer address gets 429
 * for ADM_AUTH_BLOCK_SECONDS, whatever it presents. ADM_AUTH_SLOTS addresses are tracked; the least
 * recently seen one that is not blocked makes room for a new one. */
#define ADM_AUTH_FAIL_LIMIT 5
#define ADM_AUTH_FAIL_WINDOW 60
#define ADM_AUTH_BLOCK_SECONDS 60
#define ADM_AUTH_SLOTS 256
#define ADM_TOKEN_NAME_MAX 64

struct adm_auth;

enum adm_auth_result {
    ADM_AUTH_OK = 0,
    ADM_AUTH_MISSING = -1,      /* no Authorization header: 401, not counted as a failure */
    ADM_AUTH_BAD = -2,          /* not a bearer token, or an unknown one: 401, counted */
    ADM_AUTH_THROTTLED = -3,    /* too many failures from this address: 429 */
};

/* Loads the tokens file (path may be NULL: no tokens, every authenticated route answers 401).
 * Returns 0, or -1 with "file:line: why" in err. */
int adm_auth_new(const char *path, struct adm_auth **out, char *err, size_t errlen) ADM_WUR;
void adm_auth_free(struct adm_auth *a);     /* accepts NULL */
/* Loads the file again and swaps the table in atomically; on failure the old table stays. */
int adm_auth_reload(struct adm_auth *a, char *err, size_t errlen) ADM_WUR;
/* Checks an Authorization header value (may be NULL) from peer (an address without port, "unix").
 * now: a monotonic second count. On ADM_AUTH_OK fills name (the token's name) and role; on
 * ADM_AUTH_THROTTLED, *retry_after (seconds, >= 1). Every entry is compared, in constant time. */
enum adm_auth_result adm_auth_check(struct adm_auth *a, const char *authorization, const char *peer, time_t now,
                                    char *name, size_t namecap, enum adm_role *role, unsigned *retry_after);

/* The role of a client certificate, by its SHA-256 fingerprint (64 hex digits, as the TLS front's
 * identity header carries it): a "NAME ROLE cert-sha256:HEX" line of the tokens file. Fills name and
 * role; 0, or -1 when no line names that certificate. A fingerprint is not a secret: no throttling. */
int adm_auth_check_cert(struct adm_auth *a, const char *fingerprint_hex, char *name, size_t namecap,
                        enum adm_role *role);

struct adm_auth_stats {
    size_t tokens;              /* in the table in force */
    uint64_t failures, throttled, reloads_ok, reloads_failed;
};
void adm_auth_get_stats(struct adm_auth *a, struct adm_auth_stats *out);

/* ---------------------------------------------------------------- http.c */

/* Routes only tests/unit/test_adm.c defines (to drive the helpers through real requests); an empty
 * weak table in http.c stands in everywhere else. */
extern const struct adm_route adm_routes_test[];

/* The route tables, in dispatch order (adm_routes_system first); *n of them. */
const struct adm_route *const *adm_route_tables(size_t *n);

/* A growing NUL-terminated text buffer; after an allocation failure it stays failed (check at end). */
struct adm_buf {
    char *p;
    size_t len, cap;
    int failed;
};
void adm_buf_printf(struct adm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends the API's own metrics (Prometheus text format 0.0.4) to b. */
void adm_metrics_text(struct adm_server *s, struct adm_buf *b);

/* A server that listens nowhere (adm_server_stop frees it), and one request through it as if it had
 * come authenticated with role: the same routing, role check and handler as over HTTP, without
 * libmicrohttpd. For the routes' fuzz target (tests/fuzz/fuzz_adm_body.c). resp is the caller's to
 * clear (adm_resp_clear). Returns 0 (resp filled), or -1 on a bad argument. */
int adm_server_offline(struct pol_store *store, const struct adm_hooks *hooks, struct adm_server **out) ADM_WUR;
int adm_request_offline(struct adm_server *s, const char *method, const char *path, const char *content_type,
                        const char *body, size_t len, enum adm_role role, struct adm_resp *resp) ADM_WUR;

/* ---------------------------------------------------------------- json.c */

#define ADM_CT_JSON "application/json"
#define ADM_CT_PROBLEM "application/problem+json"

/* o as compact JSON with a final newline (malloc'd; *len without the NUL), or NULL. */
char *adm_json_dump(const json_t *o, size_t *len);
/* Frees the body of r (the status and content type stay). */
void adm_resp_clear(struct adm_resp *r);
/* A fixed 500 problem, for when even a problem document cannot be made. */
void adm_resp_fixed_500(struct adm_resp *r);
/* adm_problem with a va_list, and with a "code" member (may be NULL) beside "field" (may be NULL). */
void adm_problem_va(struct adm_resp *r, int status, const char *field, const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));
void adm_problem_code(struct adm_resp *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---------------------------------------------------------------- listen.c */

/* A listening TCP socket (non-blocking, close-on-exec) on addr; *port is the port it got. what names
 * the address in messages. Returns 0, or -1 with a message (nothing left open). */
int adm_listen_tcp(const struct sockaddr *addr, socklen_t len, const char *what, int *fd, int *port, char *err,
                   size_t errlen) ADM_WUR;
/* A listening Unix socket at path, mode 0660. A socket file with no server behind it is replaced; a
 * live one, or a file that is not a socket, is refused. *dev and *ino identify the file made, so that
 * only that one is removed at the end. Returns 0, or -1 with a message (nothing left behind). */
int adm_listen_unix(const char *path, int *fd, dev_t *dev, ino_t *ino, char *err, size_t errlen) ADM_WUR;

/* ---------------------------------------------------------------- openapi.c */

/* The OpenAPI 3.0 document of every route in adm_route_tables (a new reference; NULL: no memory). */
json_t *adm_openapi_document(void);

#endif
