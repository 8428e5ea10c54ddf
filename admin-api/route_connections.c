/* route_connections.c - /v1/connections: the gateway's live connections (admitted handshakes) with
 * their client identity, and closing one.
 *
 * The data plane is reached only through the connections and close_connection hooks (adm.h): the
 * gateway copies its workers' summaries and closes a connection on the worker that owns it. Closing
 * is not a change to the policy store, so it leaves no record in the store's audit trail: it is
 * logged (LOG_INFO: the connection, who, the request id, the source, the comment) and shows in the
 * access log as result "closed_by_admin".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin-api/adm_int.h"
#include "gateway/log.h"

#define LISTENER_NAME_MAX 71    /* gateway/config.h: listener names fit 72 bytes */
#define LOG_FIELD_MAX 160

/* A connection id: decimal digits only, at most INT64_MAX (ids are JSON integers), at least min.
 * Returns 0 or -1. */
static int parse_id(const char *s, uint64_t min, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;

    if (s == NULL)
        return -1;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        if (i == 19)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0 || s[i] != '\0' || v > (uint64_t)INT64_MAX || v < min)
        return -1;
    *out = v;
    return 0;
}

static const struct adm_hooks *need_hooks(struct adm_req *req, struct adm_resp *resp, int closing)
{
    const struct adm_hooks *h = adm_hooks(req);
    if (h->connections == NULL || (closing && h->close_connection == NULL)) {
        adm_problem(resp, 503, NULL, "the gateway does not show its connections");
        return NULL;
    }
    return h;
}

/* The connection {id} of the path as the gateway lists it (*out a new reference), or a problem. */
static int conn_of(struct adm_req *req, struct adm_resp *resp, const struct adm_hooks *h, uint64_t *id, json_t **out)
{
    *out = NULL;
    if (parse_id(req->params[0], 1, id) != 0) {
        adm_problem(resp, 400, "id", "a connection id is a positive integer");
        return -1;
    }
    json_t *arr = h->connections(h->ctx, NULL, 1, *id - 1);
    if (arr == NULL) {
        adm_problem(resp, 500, NULL, "the connections could not be read");
        return -1;
    }
    json_t *c = json_array_get(arr, 0);
    if (c == NULL || (uint64_t)json_integer_value(json_object_get(c, "id")) != *id) {
        json_decref(arr);
        adm_problem(resp, 404, NULL, "no live connection has the id %llu", (unsigned long long)*id);
        return -1;
    }
    *out = json_incref(c);
    json_decref(arr);
    return 0;
}

static int conns_list(struct adm_req *req, struct adm_resp *resp)
{
    const struct adm_hooks *h = need_hooks(req, resp, 0);
    const char *after = NULL, *listener = adm_query(req, "listener");
    uint64_t after_id = 0;
    size_t limit;
    char next[24];

    if (h == NULL || adm_page(req, resp, &limit, &after) != 0)
        return 0;
    if (after != NULL && parse_id(after, 0, &after_id) != 0) {
        adm_problem(resp, 400, "after", "after must be a connection id (the cursor of a previous page)");
        return 0;
    }
    if (listener != NULL && (listener[0] == '\0' || strlen(listener) > LISTENER_NAME_MAX)) {
        adm_problem(resp, 400, "listener", "listener must be a listener's name (1-%d characters)", LISTENER_NAME_MAX);
        return 0;
    }
    /* One past the page tells whether there is a next one. */
    json_t *items = h->connections(h->ctx, listener, limit + 1, after_id);
    if (items == NULL) {
        adm_problem(resp, 500, NULL, "the connections could not be read");
        return 0;
    }
    int more = json_array_size(items) > limit;
    if (more)
        json_array_remove(items, limit);
    json_t *last = json_array_get(items, json_array_size(items) - 1);
    snprintf(next, sizeof(next), "%lld", last != NULL ? (long long)json_integer_value(json_object_get(last, "id")) : 0LL);
    adm_json(resp, 200, json_pack("{s:o, s:o}", "items", items, "next", more ? json_string(next) : json_null()));
    return 0;
}

static int conns_get(struct adm_req *req, struct adm_resp *resp)
{
    const struct adm_hooks *h = need_hooks(req, resp, 0);
    uint64_t id;
    json_t *c;

    if (h == NULL || conn_of(req, resp, h, &id, &c) != 0)
        return 0;
    adm_json(resp, 200, c);
    return 0;
}

/* For the log line: control characters (a line break would forge a line) and quotes become '?';
 * long values are cut. */
static const char *log_safe(const char *s, char *buf, size_t cap)
{
    size_t i = 0;
    for (; s != NULL && s[i] != '\0' && i + 1 < cap; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '"' ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

/* A DELETE may say why: a JSON body {"comment": ...}, or ?comment=. */
static int delete_comment(struct adm_req *req, struct adm_resp *resp, json_t **body, const char **comment)
{
    static const char *const fields[] = { "comment", NULL };
    *body = NULL;
    *comment = NULL;
    if (req->body_len == 0) {
        *comment = adm_query(req, "comment");
        return 0;
    }
    if (adm_body_object(req, resp, body) != 0 || adm_only_fields(resp, *body, fields) != 0 ||
        adm_field_string(resp, *body, "comment", 0, comment) != 0)
        return -1;
    return 0;
}

static int conns_delete(struct adm_req *req, struct adm_resp *resp)
{
    const struct adm_hooks *h = need_hooks(req, resp, 1);
    const char *comment = NULL;
    json_t *body = NULL, *c = NULL;
    uint64_t id;
    char l[LOG_FIELD_MAX], p[LOG_FIELD_MAX], s[LOG_FIELD_MAX], cm[LOG_FIELD_MAX];

    if (h == NULL || delete_comment(req, resp, &body, &comment) != 0 || conn_of(req, resp, h, &id, &c) != 0)
        goto out;
    int rc = h->close_connection(h->ctx, id);
    const char *subject = json_string_value(json_object_get(c, "client_subject"));
    log_safe(json_string_value(json_object_get(c, "listener")), l, sizeof(l));
    log_safe(json_string_value(json_object_get(c, "peer")), p, sizeof(p));
    log_safe(subject != NULL ? subject : "-", s, sizeof(s));
    log_safe(comment != NULL ? comment : "", cm, sizeof(cm));
    switch (rc) {
    case ADM_CONN_CLOSED:
    case ADM_CONN_PENDING:
        /* Not a change to the store: no audit record; this line is the trace of who did it. */
        gw_log(LOG_INFO, "admin: connection %llu (listener %s, peer %s, client %s) %s by %s src=%s id=%s comment=\"%s\"",
               (unsigned long long)id, l, p, s, rc == ADM_CONN_CLOSED ? "closed" : "close requested", req->who,
               req->source, req->request_id, cm);
        adm_json(resp, rc == ADM_CONN_CLOSED ? 200 : 202,
                 json_pack("{s:O}", rc == ADM_CONN_CLOSED ? "closed" : "closing", c));
        break;
    case ADM_CONN_UNKNOWN:      /* it ended by itself meanwhile */
        adm_problem(resp, 404, NULL, "no live connection has the id %llu", (unsigned long long)id);
        break;
    default:
        adm_problem(resp, 500, NULL, "the gateway could not be asked to close connection %llu", (unsigned long long)id);
        break;
    }
out:
    json_decref(c);
    json_decref(body);
    return 0;
}

const struct adm_route adm_routes_connections[] = {
    { "GET", "/v1/connections", ADM_ROLE_READER, conns_list, "List live connections and their clients (paginated by id)",
      ADM_DOC({"query": ["Limit", "After", {"name": "listener", "schema": {"type": "string", "minLength": 1, "maxLength": 71},
                                            "description": "Only this listener's"}],
               "responses": {"200": {"$ref": "ConnectionPage"},
                             "400": "limit, after or listener is malformed (field names it)",
                             "503": "The gateway does not show its connections"}}) },
    { "GET", "/v1/connections/{id}", ADM_ROLE_READER, conns_get, "Show one live connection",
      ADM_DOC({"path": {"id": {"type": "integer", "minimum": 1}},
               "responses": {"200": {"$ref": "Connection"},
                             "400": "The id is not a positive integer",
                             "404": "No live connection has that id",
                             "503": "The gateway does not show its connections"}}) },
    { "DELETE", "/v1/connections/{id}", ADM_ROLE_OPERATOR, conns_delete, "Close a live connection",
      ADM_DOC({"path": {"id": {"type": "integer", "minimum": 1}}, "query": ["Comment"],
               "request": {"application/json": {"$ref": "CommentBody"}}, "request_optional": true,
               "responses": {"200": {"$ref": "ConnectionClosed"},
                             "202": {"$ref": "ConnectionClosing"},
                             "400": "The id is not a positive integer, or the body is malformed (field names it)",
                             "404": "No live connection has that id (or it ended by itself meanwhile)",
                             "503": "The gateway does not show its connections"}}) },
    { NULL, NULL, ADM_ROLE_NONE, NULL, NULL, ADM_DOC({"schemas": {
        /* gateway/admin.c: conn_json (the access log's fields, plus id, started_at, worker) */
        "Connection": {"type": "object", "required": ["id", "listener", "peer", "started_at", "tls_version", "cipher", "resumed",
                                                      "client_cert", "client_subject", "client_issuer", "client_serial",
                                                      "client_fingerprint_sha256", "policy", "policy_generation", "bytes_in",
                                                      "bytes_out", "worker"], "properties": {
            "id": {"type": "integer", "minimum": 1, "description": "Never reused in the process (access log: connection_id)"},
            "listener": {"type": "string"},
            "peer": {"type": "string", "description": "address:port"},
            "started_at": {"type": "string", "format": "date-time",
                           "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$",
                           "description": "When it was accepted (RFC 3339, UTC, milliseconds)"},
            "tls_version": {"type": "string"},
            "cipher": {"type": "string"},
            "resumed": {"type": "boolean"},
            "client_cert": {"type": "boolean"},
            "client_subject": {"type": "string", "nullable": true, "description": "RFC 4514; null without a client certificate"},
            "client_issuer": {"type": "string", "nullable": true},
            "client_serial": {"type": "string", "nullable": true, "pattern": "^([0-9A-F]{2})*$"},
            "client_fingerprint_sha256": {"type": "string", "nullable": true, "pattern": "^([0-9a-f]{64})?$"},
            "policy": {"type": "string", "nullable": true, "description": "null where no admission decision was made"},
            "policy_generation": {"type": "integer", "nullable": true, "minimum": 0,
                                  "description": "The store generation of the latest decision"},
            "bytes_in": {"type": "integer", "minimum": 0, "description": "Client to backend, at most about 250 ms old"},
            "bytes_out": {"type": "integer", "minimum": 0},
            "worker": {"type": "integer", "minimum": 0}}},
        "ConnectionPage": {"type": "object", "required": ["items", "next"], "properties": {
            "items": {"type": "array", "items": {"$ref": "Connection"}}, "next": {"$ref": "NextCursor"}}},
        "ConnectionClosed": {"type": "object", "required": ["closed"], "description": "The worker closed it",
                             "properties": {"closed": {"$ref": "Connection"}}},
        "ConnectionClosing": {"type": "object", "required": ["closing"],
                              "description": "The worker did not confirm within 2 s: it closes it when it gets to it",
                              "properties": {"closing": {"$ref": "Connection"}}}}}) },
};
