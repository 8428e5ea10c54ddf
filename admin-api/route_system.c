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

/* GET /v1/openapi.json: made from the route tables at each call (a few kB; rarely asked for). */
static int sys_openapi(struct adm_req *req, struct adm_resp *resp)
{
    (void)req;
    json_t *doc = adm_openapi_document();

    if (doc == NULL) {
        adm_problem(resp, 500, NULL, "out of memory");
        return 0;
    }
    adm_json(resp, 200, doc);
    return 0;
}

const struct adm_route adm_routes_system[] = {
    { "GET", "/v1/health", ADM_ROLE_NONE, sys_health, "Health of the HSM, the policy store and the listeners" },
    { "GET", "/metrics", ADM_ROLE_NONE, sys_metrics, "Prometheus metrics (text format 0.0.4)" },
    { "GET", "/v1/listeners", ADM_ROLE_READER, sys_listeners, "Listeners with their configuration and counters" },
    { "GET", "/v1/openapi.json", ADM_ROLE_NONE, sys_openapi, "This OpenAPI 3 description of the API" },
    { NULL, NULL, ADM_ROLE_NONE, NULL, NULL },
};
