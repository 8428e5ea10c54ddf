/* adm_int.h - inside the admin API: requests, responses, routes, and the helpers every resource file
 * uses. One resource per file (route_revocations.c, route_allowlists.c, ...), each exporting a route
 * table; http.c dispatches (exact segments, "{name}" matches one segment), checks the role, and turns
 * every failure into an RFC 9457 problem document.
 *
 * Conventions: a handler fills resp and returns 0; it never returns a half-made response. Helpers
 * returning int return 0 on success and -1 after having put a problem into resp (the handler then
 * returns 0 at once).
 */
#ifndef HSMGATE_ADMIN_API_ADM_INT_H
#define HSMGATE_ADMIN_API_ADM_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "admin-api/adm.h"

struct MHD_Connection;

/* Roles (admin-api/README.md): each includes the ones before it. */
enum adm_role {
    ADM_ROLE_NONE = 0,          /* unauthenticated routes: /v1/health, /metrics, /crl */
    ADM_ROLE_READER = 1,        /* GET */
    ADM_ROLE_OPERATOR = 2,      /* allowlists, revocations, CRL imports, closing connections */
    ADM_ROLE_ADMIN = 3,         /* certificates, everything */
};
const char *adm_role_name(enum adm_role r);

#define ADM_MAX_PARAMS 4
#define ADM_PARAM_MAX 256

struct adm_req {
    struct adm_server *srv;
    struct MHD_Connection *conn;
    const char *method;                     /* "GET", "POST", "PUT", "DELETE" */
    const char *path;                       /* decoded, without the query */
    char params[ADM_MAX_PARAMS][ADM_PARAM_MAX];   /* the {name} segments of the route, in order */
    size_t nparams;
    const char *body;                       /* NUL-terminated; body_len bytes before the NUL */
    size_t body_len;
    const char *content_type;               /* NULL if none */
    char request_id[65];                    /* X-Request-Id if the client gave a sane one (1-64 of
                                             * [A-Za-z0-9._-]), else 32 random hex digits made here */
    char source[64];                        /* the peer: "127.0.0.1:51234", "unix" */
    char who[512];                          /* "token:alice", "cert:CN=alice,O=Bank" (the TLS front);
                                             * "" for unauthenticated routes */
    enum adm_role role;                     /* what the caller's token allows */
};

struct adm_resp {
    int status;
    char *body;                             /* malloc'd; NULL: empty */
    size_t len;
    const char *content_type;               /* static string */
    char location[256];                     /* a Location header when non-empty (201 Created) */
};

typedef int (*adm_handler)(struct adm_req *req, struct adm_resp *resp);

struct adm_route {
    const char *method;
    const char *pattern;                    /* "/v1/allowlists/{name}/entries/{id}" */
    enum adm_role role;                     /* the least role that may call it */
    adm_handler fn;
    const char *summary;                    /* one line, for the OpenAPI document and logs */
    const char *doc;                        /* the rest of its OpenAPI description: ADM_DOC(...) below */
};

/* ADM_DOC({...}) is JSON text written as plain C tokens (the preprocessor makes it a string: no
 * escaping; comments allowed). openapi.c turns it into the route's OpenAPI 3.0.3 operation:
 *   "path":      {"id": SCHEMA}             the {name} segments (default: any non-empty string)
 *   "query":     ["Limit", "After", {"name": "serial", "schema": SCHEMA, "description": "..."}]
 *                (a string names a parameter of openapi.c's components: Limit, After, Comment)
 *   "request":   {"application/json": SCHEMA, ...}   the body, by media type
 *   "request_optional": true                           the body may be left out
 *   "responses": {"201": SCHEMA}                       a JSON body (application/json)
 *                {"404": "when"}                       an RFC 9457 problem document, and when it comes
 *                {"200": {"description": "...", "content": {MEDIA: SCHEMA}, "headers": ["Location"]}}
 * every status the handler answers with; openapi.c adds 401, 403, 429 (roles above none), 413, 415
 * (JSON bodies), 500 and "default". A table's final entry (method NULL) may carry
 * {"schemas": {"Name": SCHEMA}}, the components its routes share. In a SCHEMA, {"$ref": "Name"} is
 * short for {"$ref": "#/components/schemas/Name"}. OpenAPI 3.0: "nullable": true, not type arrays;
 * request bodies say "additionalProperties": false (adm_only_fields refuses unknown fields). */
#define ADM_DOC(...) #__VA_ARGS__

/* Each resource file's table, ended by an entry with method NULL. http.c lists them all. */
extern const struct adm_route adm_routes_system[];      /* route_system.c: health, metrics, listeners, openapi */
extern const struct adm_route adm_routes_revocations[]; /* route_revocations.c */
extern const struct adm_route adm_routes_allowlists[];  /* route_allowlists.c */
extern const struct adm_route adm_routes_crls[];        /* route_crls.c */
extern const struct adm_route adm_routes_audit[];       /* route_audit.c */
extern const struct adm_route adm_routes_certificates[];/* route_certificates.c */
extern const struct adm_route adm_routes_crl[];         /* route_crl.c: /crl, /crl.pem */
extern const struct adm_route adm_routes_connections[]; /* route_connections.c */

/* --- responses (http.c) --- */

/* status with a JSON body; steals o (NULL: 500). */
void adm_json(struct adm_resp *r, int status, json_t *o);
/* An RFC 9457 problem document (application/problem+json): type "about:blank" unless given, title the
 * status's reason phrase, detail formatted, and "field" when the problem is about one (may be NULL). */
void adm_problem(struct adm_resp *r, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The problem for a policies/ error (enum pol_err) with its message: 400/422 for bad input, 404, 409,
 * 503 for a store that cannot be written (POL_E_STORE, POL_E_BUSY), 500 otherwise. */
void adm_pol_problem(struct adm_resp *r, int err, const char *msg);
/* Plain text (metrics, PEM). Takes body (malloc'd). */
void adm_text(struct adm_resp *r, int status, const char *content_type, char *body, size_t len);

/* --- requests (http.c) --- */

/* The body as a JSON object (415 unless application/json, 400 naming the position when it does not
 * parse, 400 when it is not an object). *out is a new reference. */
int adm_body_object(struct adm_req *req, struct adm_resp *resp, json_t **out) ADM_WUR;
/* 400 naming the first field of o not in allowed (NULL-terminated). */
int adm_only_fields(struct adm_resp *resp, json_t *o, const char *const allowed[]) ADM_WUR;
/* Typed fields: 400 naming the field when present with the wrong type, or absent when required. */
int adm_field_string(struct adm_resp *resp, json_t *o, const char *name, int required, const char **out) ADM_WUR;
int adm_field_int(struct adm_resp *resp, json_t *o, const char *name, int required, long long min, long long max,
                  long long *out) ADM_WUR;
/* A query argument (NULL if absent). */
const char *adm_query(struct adm_req *req, const char *key);
/* ?limit=N (1..1000, default 100) and ?after=CURSOR (opaque, may be NULL). */
int adm_page(struct adm_req *req, struct adm_resp *resp, size_t *limit, const char **after) ADM_WUR;

/* --- the gateway and the store (http.c) --- */

struct pol_store *adm_store(struct adm_req *req);      /* NULL: no store configured */
const struct adm_hooks *adm_hooks(struct adm_req *req);
/* Who made a change, for the store's change log and audit trail: actor = req->who, comment from the
 * request body's optional "comment", request id and source. Valid while req is. */
void adm_actor(struct adm_req *req, const char *comment, struct pol_actor *out);
/* After a committed change: tell the gateway to publish it now. */
void adm_changed(struct adm_req *req);

/* --- shared by the resource files (json.c) --- */

/* The store, or NULL after a 503 problem (no policy_store configured). */
struct pol_store *adm_need_store(struct adm_req *req, struct adm_resp *resp);
/* A stored text as a JSON string (bytes that are not UTF-8 shown as '?'); NULL: null. */
json_t *adm_jtext(const char *s);
/* RFC 3339 UTC, or null for 0. */
json_t *adm_jtime(time_t t);
/* A positive decimal id (a path segment or a cursor), or -1. */
long long adm_id_of(const char *s);

#endif
