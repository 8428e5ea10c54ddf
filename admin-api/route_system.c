/* route_system.c - the API's own resources: health, metrics, listeners and the OpenAPI document.
 * Health, metrics and the OpenAPI document need no token: load balancers, Prometheus and client
 * generators read them, and none of them tells more than the route tables already do.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin-api/adm_ca.h"
#include "admin-api/adm_srv.h"

/* GET /v1/health: the gateway's view of the HSM, the store and the listeners; 503 when degraded so a
 * load balancer or a probe needs no JSON parsing. */
static int sys_health(struct adm_req *req, struct adm_resp *resp)
{
    const struct adm_hooks *h = adm_hooks(req);
    int ok = 0;
    json_t *o;

    if (h->health == NULL) {
        adm_problem(resp, 503, NULL, "the gateway gives no health information");
        return 0;
    }
    o = h->health(h->ctx, &ok);
    if (o == NULL) {
        adm_problem(resp, 500, NULL, "the health check failed");
        return 0;
    }
    adm_json(resp, ok ? 200 : 503, o);
    return 0;
}

/* GET /metrics: the gateway's metrics, then the API's own (Prometheus text format 0.0.4). */
static int sys_metrics(struct adm_req *req, struct adm_resp *resp)
{
    const struct adm_hooks *h = adm_hooks(req);
    struct adm_buf b = { 0 };

    b.p = malloc(1);
    if (b.p == NULL) {
        adm_problem(resp, 500, NULL, "out of memory");
        return 0;
    }
    b.p[0] = '\0';
    b.cap = 1;
    if (h->metrics != NULL && h->metrics(h->ctx, &b.p, &b.len) != 0) {
        free(b.p);
        adm_problem(resp, 500, NULL, "the gateway's metrics could not be read");
        return 0;
    }
    /* The hook may have grown the buffer without telling its size: keep exactly what is there. */
    b.cap = b.len + 1;
    adm_metrics_text(req->srv, &b);
    /* Our root's CRL (admin ca_key): how long relying parties can still use the one we serve. Getting
     * it re-signs it when it is due, as a fetch of /crl would. */
    struct adm_ca *ca = adm_ca(req);
    if (ca != NULL) {
        struct adm_ca_crl crl;
        char err[256];
        int from_store = 0;
        if (adm_ca_crl_get(ca, adm_store(req), &crl, &from_store, err, sizeof(err)) == 0)
            adm_buf_printf(&b, "# HELP hsmgate_ca_crl_next_update_seconds Seconds until the nextUpdate of the CRL "
                               "this gateway serves at /crl.\n# TYPE hsmgate_ca_crl_next_update_seconds gauge\n"
                               "hsmgate_ca_crl_next_update_seconds %lld\n"
                               "# HELP hsmgate_ca_crl_entries Certificates listed by the CRL served at /crl.\n"
                               "# TYPE hsmgate_ca_crl_entries gauge\nhsmgate_ca_crl_entries %zu\n",
                           (long long)(crl.next_update - time(NULL)), crl.entries);
        else
            adm_buf_printf(&b, "# the CRL served at /crl could not be made (%s)\n", from_store ? "store" : "HSM");
    }
    if (b.failed || b.p == NULL) {
        free(b.p);
        adm_problem(resp, 500, NULL, "out of memory");
        return 0;
    }
    adm_text(resp, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    return 0;
}

/* GET /v1/listeners: configuration and counters of each listener. */
static int sys_listeners(struct adm_req *req, struct adm_resp *resp)
{
    const struct adm_hooks *h = adm_hooks(req);
    json_t *o;

    if (h->listeners == NULL) {
        adm_problem(resp, 503, NULL, "the gateway gives no listener information");
        return 0;
    }
    o = h->listeners(h->ctx);
    if (o == NULL) {
        adm_problem(resp, 500, NULL, "the listeners could not be read");
        return 0;
    }
    adm_json(resp, 200, o);
    return 0;
}

/* GET /v1/openapi.json: made from the route tables at each call (about 100 kB; rarely asked for). */
static int sys_openapi(struct adm_req *req, struct adm_resp *resp)
{
    json_t *doc = adm_openapi_document();

    if (doc == NULL) {
        /* Out of memory, or a route's ADM_DOC that does not parse (the log names it). */
        adm_problem(resp, 500, NULL, "the OpenAPI document could not be made (request %s)", req->request_id);
        return 0;
    }
    adm_json(resp, 200, doc);
    return 0;
}

const struct adm_route adm_routes_system[] = {
    { "GET", "/v1/health", ADM_ROLE_NONE, sys_health, "Health of the HSM, the policy store and the listeners",
      ADM_DOC({"responses": {
          "200": {"$ref": "Health"},
          "503": {"description": "Degraded (the same JSON), or the gateway gives no health information (a problem)",
                  "content": {"application/json": {"$ref": "Health"}, "application/problem+json": {"$ref": "Problem"}}}}}) },
    { "GET", "/metrics", ADM_ROLE_NONE, sys_metrics, "Prometheus metrics (text format 0.0.4)",
      ADM_DOC({"responses": {
          "200": {"description": "The gateway's metrics, then the API's own (README.md)",
                  "content": {"text/plain; version=0.0.4": {"type": "string"}}}}}) },
    { "GET", "/v1/listeners", ADM_ROLE_READER, sys_listeners, "Listeners with their configuration and counters",
      ADM_DOC({"responses": {"200": {"$ref": "Listeners"},
                             "503": "The gateway gives no listener information"}}) },
    { "GET", "/v1/openapi.json", ADM_ROLE_NONE, sys_openapi, "This OpenAPI 3 description of the API",
      ADM_DOC({"responses": {"200": {"$ref": "OpenApi"}}}) },
    { NULL, NULL, ADM_ROLE_NONE, NULL, NULL, ADM_DOC({"schemas": {
        /* gateway/admin.c: hook_health */
        "Health": {"type": "object", "required": ["status", "state", "store", "hsm", "listeners"], "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"],
                       "description": "degraded: the store cannot be read or written, a token is gone, or not running"},
            "state": {"type": "string", "enum": ["running", "draining", "stopping"]},
            "store": {"type": "object", "required": ["status"], "description": "The policy store (none: not configured)",
                      "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded", "error", "none"],
                           "description": "error: it cannot be read; degraded: it cannot be written (changes answer 503)"},
                "path": {"type": "string"},
                "generation": {"type": "integer", "minimum": 0, "description": "The store's generation on disk"},
                "in_force": {"type": "integer", "minimum": 0, "description": "The generation the data plane enforces"},
                "writable": {"type": "boolean", "description": "false from a change that could not be written until one is"},
                "write_error": {"type": "string", "nullable": true, "description": "Why it is not writable; null when it is"},
                "write_failing_since": {"$ref": "TimestampOrNull"}}},
            "hsm": {"type": "object", "required": ["status"], "description": "The PKCS#11 module (none: not configured)",
                    "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded", "none"], "description": "degraded: a token is missing"},
                "signatures": {"type": "integer", "minimum": 0},
                "errors": {"type": "integer", "minimum": 0},
                "sessions_lost": {"type": "integer", "minimum": 0},
                "tokens_missing": {"type": "string", "nullable": true, "description": "The tokens gone; null: none"}}},
            "listeners": {"type": "object", "required": ["count", "connections"], "properties": {
                "count": {"type": "integer", "minimum": 0},
                "connections": {"type": "integer", "minimum": 0, "description": "Live connections, all listeners"}}}}},
        /* gateway/admin.c: hook_listeners */
        "Listeners": {"type": "object", "required": ["listeners", "config_generation"], "properties": {
            "listeners": {"type": "array", "items": {"$ref": "Listener"}},
            "config_generation": {"type": "integer", "minimum": 0, "description": "Counts configuration loads (SIGHUP)"}}},
        "Listener": {"type": "object", "required": ["name", "type", "bind", "auth", "policy", "backends", "counters"],
                     "properties": {
            "name": {"type": "string"},
            "type": {"type": "string", "enum": ["tcp", "https"]},
            "bind": {"type": "string", "description": "address:port"},
            "auth": {"type": "string", "enum": ["one-way", "two-way", "optional"]},
            "policy": {"type": "string", "nullable": true, "description": "The listener's admission policy; null: none"},
            "backends": {"type": "array", "items": {"type": "string"}},
            "counters": {"type": "object", "required": ["accepted", "active", "handshakes_ok", "handshakes_failed", "resumed",
                                                         "closed_by_policy", "closed_by_admin", "bytes_in", "bytes_out"],
                         "properties": {
                "accepted": {"type": "integer", "minimum": 0},
                "active": {"type": "integer", "minimum": 0},
                "handshakes_ok": {"type": "integer", "minimum": 0},
                "handshakes_failed": {"type": "integer", "minimum": 0},
                "resumed": {"type": "integer", "minimum": 0},
                "closed_by_policy": {"type": "integer", "minimum": 0},
                "closed_by_admin": {"type": "integer", "minimum": 0},
                "bytes_in": {"type": "integer", "minimum": 0},
                "bytes_out": {"type": "integer", "minimum": 0}}}}},
        /* openapi.c: this document */
        "OpenApi": {"type": "object", "required": ["openapi", "info", "paths", "components"], "properties": {
            "openapi": {"type": "string", "pattern": "^3[.]0[.][0-9]+$"},
            "info": {"type": "object"},
            "paths": {"type": "object"},
            "components": {"type": "object"}}}}}) },
};
