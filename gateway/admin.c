/* admin.c - the gateway's side of the admin API (admin-api/adm.h): starting and stopping it, and the
 * hooks through which it sees the gateway: metrics in the Prometheus text format, listeners with
 * their counters, health, the kick that publishes a committed change at once, and the live
 * connections (listed, closed).
 *
 * Everything here runs on the API's own thread. It reads counters (atomics), the running generation
 * (a reference taken under gen_mu, so a reload cannot free it meanwhile), the policy snapshot (as
 * reader nworkers + 1) and the store (its handle serializes callers); it never touches a worker's
 * connections: it sees them through the workers' registries (conn_reg.h), copies taken under each
 * worker's lock, and closes one by asking its worker to.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin-api/adm.h"
#include "gateway/log.h"
#include "gateway/server.h"
#include "pkcs11/hsm.h"

#define ADMIN_MAGIC 0x61646d47u /* "Gmda" */
/* How long DELETE /v1/connections/{id} waits for the worker to confirm the close. A worker answers
 * within one loop turn, unless it is stuck in a long HSM call; the API's requests are served one at a
 * time, so this also bounds how long the others wait. */
#define CLOSE_WAIT_MS 2000

static struct gw_server *srv_of(void *ctx)
{
    struct gw_server *srv = ctx;
    return srv != NULL && srv->admin_magic == ADMIN_MAGIC ? srv : NULL;
}

/* The running generation, referenced (gw_gen_unref when done). */
static struct gw_gen *current_gen(struct gw_server *srv)
{
    pthread_mutex_lock(&srv->gen_mu);
    struct gw_gen *g = gw_gen_ref(atomic_load(&srv->gen));
    pthread_mutex_unlock(&srv->gen_mu);
    return g;
}

/* Prometheus label values: backslash, quote and newline escaped (text format 0.0.4). */
static void label(FILE *f, const char *s)
{
    for (; s != NULL && *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void metric_head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void listener_metrics(FILE *f, struct gw_server *srv, struct gw_gen *g)
{
    static const struct {
        const char *name, *type, *help;
    } heads[] = {
        { "hsmgate_connections_accepted_total", "counter", "Client connections accepted." },
        { "hsmgate_connections_active", "gauge", "Client connections open now." },
        { "hsmgate_connections_rejected_capacity_total", "counter", "Connections closed at once: a connection cap was reached." },
        { "hsmgate_connections_rejected_per_address_total", "counter", "Connections closed at once: their client address was over max_connections_per_address, max_handshakes_per_address or max_handshake_rate_per_address." },
        { "hsmgate_handshakes_total", "counter", "TLS handshakes by result and, for failures, reason." },
        { "hsmgate_resumptions_total", "counter", "Handshakes that resumed a session (ticket, session ID or PSK)." },
        { "hsmgate_backend_failures_total", "counter", "Connections whose backends could not be reached." },
        { "hsmgate_bytes_total", "counter", "Application bytes, client to backend (in) and backend to client (out)." },
        { "hsmgate_policy_refusals_total", "counter", "Client certificates refused by the admission policy, by reason." },
        { "hsmgate_connections_closed_by_policy_total", "counter", "Live connections closed because a change to the policy store refuses their client now." },
        { "hsmgate_connections_closed_by_admin_total", "counter", "Live connections closed at an operator's request (DELETE /v1/connections/{id})." },
    };
    for (size_t h = 0; h < sizeof(heads) / sizeof(heads[0]); h++) {
        metric_head(f, heads[h].name, heads[h].type, heads[h].help);
        for (size_t i = 0; g != NULL && i < g->nlisteners; i++) {
            const struct gw_listener_stats *st = g->listeners[i].stats;
            const char *ln = g->listeners[i].cfg->name;
            switch (h) {
            case 0: fprintf(f, "%s{listener=\"", heads[h].name); label(f, ln);
                fprintf(f, "\"} %llu\n", (unsigned long long)atomic_load(&st->accepted)); break;
            case 1: fprintf(f, "%s{listener=\"", heads[h].name); label(f, ln);
                fprintf(f, "\"} %u\n", atomic_load(&st->active)); break;
            case 2: fprintf(f, "%s{listener=\"", heads[h].name); label(f, ln);
                fprintf(f, "\"} %llu\n", (unsigned long long)atomic_load(&st->rejected_cap)); break;
            case 3: fprintf(f, "%s{listener=\"", heads[h].name); label(f, ln);
                fprintf(f, "\"} %llu\n", (unsigned long long)atomic_load(&st->rejected_addr)); break;
            case 4:
                fprintf(f, "%s{listener=\"", heads[h].name); label(f, ln);
                fprintf(f, "\",result=\"ok\",reason=\"\"} %llu\n", (unsigned long long)atomic_load(&st->handshakes_ok));
                for (unsigned r = 0; r < GW_HS_REASONS; r++) {
                    unsigned long long n = atomic_load(&st->hs_failed[r]);
                    if (n == 0)
                        continue;
                    fprintf(f, "%s{listener=\"", heads[h].name); label(f, ln);
                    fprintf(f, "\",result=\"failed\",reason=\"%s\"} %llu\n", gw_hs_reason_name(r), n);
                }
                break;
            case 5: fprintf(f, "%s{listener=\"", heads[h].name); label(f, ln);
                fprintf(f, "\"} %llu\n", (unsigned long long)atomic_load(&st->resumed)); break;
            case 6: fprintf(f, "%s{listener=\"", heads[h].name); label(f, ln);
                fprintf(f, "\"} %llu\n", (unsigned long long)atomic_load(&st->backend_failed)); break;
            case 7:
                fprintf(f, "%s{listener=\"", heads[h].name); label(f, ln);
                fprintf(f, "\",direction=\"in\"} %llu\n", (unsigned long long)atomic_load(&st->bytes_in));
                fprintf(f, "%s{listener=\"", heads[h].name); label(f, ln);
                fprintf(f, "\",direction=\"out\"} %llu\n", (unsigned long long)atomic_load(&st->bytes_out));
                break;
            case 8:
                for (unsigned r = 1; r < POL_REASON_COUNT; r++) {
                    unsigned long long n = atomic_load(&st->policy_refused[r]);
                    fprintf(f, "%s{listener=\"", heads[h].name); label(f, ln);
                    fprintf(f, "\",reason=\"%s\"} %llu\n", pol_reason_name((enum pol_reason)r), n);
                }
                break;
            case 9: fprintf(f, "%s{listener=\"", heads[h].name); label(f, ln);
                fprintf(f, "\"} %llu\n", (unsigned long long)atomic_load(&st->policy_closed)); break;
            case 10: fprintf(f, "%s{listener=\"", heads[h].name); label(f, ln);
                fprintf(f, "\"} %llu\n", (unsigned long long)atomic_load(&st->admin_closed)); break;
            }
        }
    }
    (void)srv;
}

static void hsm_metrics(FILE *f, struct gw_server *srv)
{
    struct hsm_stats st;
    if (srv->hsm == NULL)
        return;
    hsm_stats_get(srv->hsm, &st);
    metric_head(f, "hsmgate_hsm_signatures_total", "counter", "Signatures made in the HSM.");
    fprintf(f, "hsmgate_hsm_signatures_total %llu\n", (unsigned long long)st.signs);
    metric_head(f, "hsmgate_hsm_signature_errors_total", "counter", "Signatures that failed (any cause).");
    fprintf(f, "hsmgate_hsm_signature_errors_total %llu\n", (unsigned long long)st.sign_errors);
    metric_head(f, "hsmgate_hsm_sessions_lost_total", "counter", "PKCS#11 sessions found lost (and reopened later).");
    fprintf(f, "hsmgate_hsm_sessions_lost_total %llu\n", (unsigned long long)st.session_lost);
    metric_head(f, "hsmgate_hsm_signature_seconds", "histogram", "Time of a signature in the token (C_SignInit + C_Sign).");
    unsigned long long cum = 0;
    for (int b = 0; b < HSM_LAT_BUCKETS; b++) {
        cum += st.lat_buckets[b];
        if (b < HSM_LAT_BUCKETS - 1)
            fprintf(f, "hsmgate_hsm_signature_seconds_bucket{le=\"%g\"} %llu\n", hsm_lat_bounds_us[b] / 1e6, cum);
        else
            fprintf(f, "hsmgate_hsm_signature_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
    }
    fprintf(f, "hsmgate_hsm_signature_seconds_sum %.6f\nhsmgate_hsm_signature_seconds_count %llu\n",
            st.lat_sum_us / 1e6, cum);
}

struct crl_metric {
    FILE *f;
    time_t now;
};

static int crl_row(void *arg, const struct pol_crl_row *row)
{
    struct crl_metric *m = arg;
    fprintf(m->f, "hsmgate_crl_next_update_seconds{issuer=\"");
    label(m->f, row->issuer_text);
    fprintf(m->f, "\"} %lld\n", row->next_update ? (long long)(row->next_update - m->now) : -1LL);
    return 0;
}

static void policy_metrics(FILE *f, struct gw_server *srv)
{
    unsigned reader = srv->nworkers + 1;
    if (srv->live == NULL)
        return;
    if (!srv->admin_reader_registered) {
        if (pol_reader_register(srv->live, reader) != 0)
            return;
        srv->admin_reader_registered = 1;
    } else {
        pol_reader_online(srv->live, reader);
    }
    const struct pol_snapshot *s = pol_snapshot_current(srv->live, reader);
    if (s != NULL) {
        struct pol_snapshot_stats st;
        pol_snapshot_get_stats(s, &st);
        metric_head(f, "hsmgate_policy_generation", "gauge", "Policy store generation in force on the data plane.");
        fprintf(f, "hsmgate_policy_generation %llu\n", (unsigned long long)st.generation);
        metric_head(f, "hsmgate_policy_revocations", "gauge", "Revoked serials in the snapshot in force (ours and imported CRLs').");
        fprintf(f, "hsmgate_policy_revocations %zu\n", st.revocations);
        metric_head(f, "hsmgate_policy_allowlist_entries", "gauge", "Allowlist entries in the snapshot in force.");
        fprintf(f, "hsmgate_policy_allowlist_entries %zu\n", st.allow_entries);
        metric_head(f, "hsmgate_policy_snapshot_bytes", "gauge", "Memory held by the snapshot in force.");
        fprintf(f, "hsmgate_policy_snapshot_bytes %zu\n", st.bytes);
    }
    pol_reader_offline(srv->live, reader);
    if (srv->store != NULL) {
        char err[256];
        struct crl_metric m = { f, time(NULL) };
        metric_head(f, "hsmgate_crl_next_update_seconds", "gauge",
                    "Seconds until an imported CRL's nextUpdate (negative: past it; -1 without one).");
        if (pol_store_crls_each(srv->store, crl_row, &m, err, sizeof(err)) != 0)
            fprintf(f, "# the store could not be read: %s\n", err);
    }
}

static int hook_metrics(void *ctx, char **out, size_t *len)
{
    struct gw_server *srv = srv_of(ctx);
    char *buf = NULL;
    size_t n = 0;
    if (srv == NULL)
        return -1;
    FILE *f = open_memstream(&buf, &n);
    if (f == NULL)
        return -1;
    struct gw_gen *g = current_gen(srv);
    listener_metrics(f, srv, g);
    gw_gen_unref(g);
    metric_head(f, "hsmgate_connections_open", "gauge", "Client connections open now, all listeners.");
    fprintf(f, "hsmgate_connections_open %u\n", atomic_load(&srv->active));
    hsm_metrics(f, srv);
    policy_metrics(f, srv);
    if (fclose(f) != 0) {
        free(buf);
        return -1;
    }
    char *q = realloc(*out, *len + n + 1);
    if (q == NULL) {
        free(buf);
        return -1;
    }
    memcpy(q + *len, buf, n + 1);
    *out = q;
    *len += n;
    free(buf);
    return 0;
}

static json_t *hook_listeners(void *ctx)
{
    static const char *const auths[] = { "one-way", "two-way", "optional" };
    struct gw_server *srv = srv_of(ctx);
    if (srv == NULL)
        return NULL;
    json_t *arr = json_array();
    struct gw_gen *g = current_gen(srv);
    for (size_t i = 0; g != NULL && arr != NULL && i < g->nlisteners; i++) {
        const struct gw_listener *l = &g->listeners[i];
        const struct gw_listener_cfg *c = l->cfg;
        json_t *backends = json_array();
        for (size_t b = 0; backends != NULL && b < c->nbackends; b++)
            json_array_append_new(backends, json_string(c->backends[b].addr.text));
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s?, s:o, s:{s:I, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
            "name", c->name, "type", c->type == GW_LISTENER_HTTPS ? "https" : "tcp", "bind", c->bind.text,
            "auth", auths[c->auth], "policy", l->admit != NULL ? l->admit->name : NULL,
            "backends", backends ? backends : json_array(),
            "counters", "accepted", (json_int_t)atomic_load(&l->stats->accepted), "active", (int)atomic_load(&l->stats->active),
            "handshakes_ok", (json_int_t)atomic_load(&l->stats->handshakes_ok),
            "handshakes_failed", (json_int_t)atomic_load(&l->stats->handshakes_failed),
            "resumed", (json_int_t)atomic_load(&l->stats->resumed),
            "closed_by_policy", (json_int_t)atomic_load(&l->stats->policy_closed),
            "closed_by_admin", (json_int_t)atomic_load(&l->stats->admin_closed),
            "bytes_in", (json_int_t)atomic_load(&l->stats->bytes_in),
            "bytes_out", (json_int_t)atomic_load(&l->stats->bytes_out)));
    }
    uint64_t gen_id = g != NULL ? g->id : 0;
    gw_gen_unref(g);
    return arr != NULL ? json_pack("{s:o, s:I}", "listeners", arr, "config_generation", (json_int_t)gen_id) : NULL;
}

static json_t *hook_health(void *ctx, int *ok)
{
    struct gw_server *srv = srv_of(ctx);
    *ok = 0;
    if (srv == NULL)
        return NULL;
    int good = 1;
    json_t *store = NULL, *hsm = NULL;
    if (srv->store != NULL) {
        uint64_t gen = 0;
        int rc = pol_store_generation(srv->store, &gen);
        /* Reads work on a full or read-only disk: only a change can tell, and until one is written
         * again the store cannot take changes (the API answers them 503): degraded. */
        char werr[256] = "", since[32] = "";
        time_t since_t = 0;
        int wrc = pol_store_write_status(srv->store, &since_t, werr, sizeof(werr));
        if (wrc != 0)
            pol_time_format(since_t, since, sizeof(since));
        good &= rc == 0 && wrc == 0;
        store = json_pack("{s:s, s:s, s:I, s:I, s:b, s:s?, s:s?}", "status",
                          rc != 0 ? "error" : wrc != 0 ? "degraded" : "ok", "path", srv->policy_store_path,
                          "generation", (json_int_t)gen, "in_force", (json_int_t)pol_live_generation(srv->live),
                          "writable", wrc == 0, "write_error", wrc != 0 ? werr : NULL,
                          "write_failing_since", wrc != 0 ? since : NULL);
    } else {
        store = json_pack("{s:s}", "status", "none");
    }
    if (srv->hsm != NULL) {
        struct hsm_stats st;
        char missing[256];
        hsm_stats_get(srv->hsm, &st);
        int gone = hsm_ctx_probe(srv->hsm, missing, sizeof(missing));
        good &= gone == 0;
        hsm = json_pack("{s:s, s:I, s:I, s:I, s:s?}", "status", gone == 0 ? "ok" : "degraded", "signatures",
                        (json_int_t)st.signs, "errors", (json_int_t)st.sign_errors, "sessions_lost",
                        (json_int_t)st.session_lost, "tokens_missing", gone != 0 ? missing : NULL);
    } else {
        hsm = json_pack("{s:s}", "status", "none");
    }
    struct gw_gen *g = current_gen(srv);
    size_t nl = g != NULL ? g->nlisteners : 0;
    gw_gen_unref(g);
    int state = atomic_load(&srv->state);
    good &= state == GW_RUNNING;
    *ok = good;
    return json_pack("{s:s, s:s, s:o, s:o, s:{s:I, s:i}}", "status", good ? "ok" : "degraded",
                     "state", state == GW_RUNNING ? "running" : state == GW_DRAINING ? "draining" : "stopping",
                     "store", store ? store : json_null(), "hsm", hsm ? hsm : json_null(),
                     "listeners", "count", (json_int_t)nl, "connections", (int)atomic_load(&srv->active));
}

/* A JSON string of s (jansson takes UTF-8 only: other bytes, which a certificate's name may carry, show
 * as '?'); "" is null when empty_null. */
static json_t *jstr(const char *s, int empty_null)
{
    if (s == NULL || (empty_null && s[0] == '\0'))
        return json_null();
    json_t *v = json_string(s);
    if (v != NULL)
        return v;
    char *copy = strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    v = json_string(copy);
    free(copy);
    return v;
}

static json_t *conn_json(const struct gw_conn_entry *e)
{
    char at[40];
    struct tm tm;
    time_t secs = (time_t)(e->started_ms / 1000);
    if (gmtime_r(&secs, &tm) == NULL)
        return NULL;
    size_t n = strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(at + n, sizeof(at) - n, ".%03dZ", (int)(e->started_ms % 1000));
    const char *cert[4] = { gw_conn_entry_str(e, e->subject), gw_conn_entry_str(e, e->issuer),
                            gw_conn_entry_str(e, e->serial), gw_conn_entry_str(e, e->fingerprint) };
    return json_pack("{s:I, s:o, s:o, s:s, s:o, s:o, s:b, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:i}",
                     "id", (json_int_t)e->id, "listener", jstr(gw_conn_entry_str(e, e->listener), 0),
                     "peer", jstr(gw_conn_entry_str(e, e->peer), 0), "started_at", at,
                     "tls_version", jstr(gw_conn_entry_str(e, e->version), 0),
                     "cipher", jstr(gw_conn_entry_str(e, e->cipher), 0), "resumed", (int)e->resumed,
                     "client_cert", (int)e->has_cert, "client_subject", jstr(cert[0], !e->has_cert),
                     "client_issuer", jstr(cert[1], !e->has_cert), "client_serial", jstr(cert[2], !e->has_cert),
                     "client_fingerprint_sha256", jstr(cert[3], !e->has_cert),
                     "policy", jstr(e->decided ? gw_conn_entry_str(e, e->policy) : NULL, 1),
                     "policy_generation", e->decided ? json_integer((json_int_t)e->policy_generation) : json_null(),
                     "bytes_in", (json_int_t)e->bytes_in, "bytes_out", (json_int_t)e->bytes_out,
                     "worker", (int)e->worker);
}

static json_t *hook_connections(void *ctx, const char *listener, size_t limit, uint64_t after_id)
{
    struct gw_server *srv = srv_of(ctx);
    struct gw_conn_entry **v = NULL;
    size_t n = 0;
    json_t *arr = NULL;
    if (srv == NULL || gw_conn_reg_list(srv, listener, after_id, limit, &v, &n) != 0)
        return NULL;
    arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_t *o = conn_json(v[i]);
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    gw_conn_reg_list_free(v, n);
    return arr;
}

static int hook_close_connection(void *ctx, uint64_t id)
{
    struct gw_server *srv = srv_of(ctx);
    if (srv == NULL)
        return -1;
    switch (gw_conn_reg_close(srv, id, CLOSE_WAIT_MS)) {
    case GW_CONN_CLOSED: return ADM_CONN_CLOSED;
    case GW_CONN_UNKNOWN: return ADM_CONN_UNKNOWN;
    case GW_CONN_PENDING: return ADM_CONN_PENDING;
    default: return -1;
    }
}

static void hook_policy_changed(void *ctx)
{
    struct gw_server *srv = srv_of(ctx);
    if (srv != NULL)
        gw_policy_kick(srv);
}

static uint64_t hook_policy_generation(void *ctx)
{
    struct gw_server *srv = srv_of(ctx);
    return srv != NULL && srv->live != NULL ? pol_live_generation(srv->live) : 0;
}

/* The API's configuration from the admin: section (pointers into cfg and srv). */
static void admin_config(const struct gw_server *srv, const struct gw_config *cfg, struct adm_config *out)
{
    const struct gw_admin_cfg *a = &cfg->admin;
    *out = (struct adm_config){
        .bind = a->tcp ? (const struct sockaddr *)&a->bind.ss : NULL,
        .bind_len = a->tcp ? a->bind.len : 0,
        .bind_text = a->tcp ? a->bind.text : NULL,
        .unix_socket = a->unix_socket,
        .tokens_file = a->tokens_file,
        .max_body = 0,
        /* The CA signs on the API's thread as HSM thread nworkers + 1 (0: main, 1..nworkers: workers). */
        .hsm = a->ca_key != NULL ? srv->hsm : NULL,
        .hsm_index = srv->nworkers + 1,
        .ca_certificate = a->ca_certificate,
        .ca_key = a->ca_key,
        .client_validity_days = a->client_validity_days,
        .client_validity_max_days = a->client_validity_days,
        .crl_validity_s = a->crl_validity_s,
        .crl_url = a->crl_url,
        .front_socket = srv->admin_front_path[0] != '\0' ? srv->admin_front_path : NULL,
    };
}

int gw_admin_check(const struct gw_server *srv, const struct gw_config *cfg, char *err, size_t errlen)
{
    struct adm_config ac;
    char aerr[512];

    if (!cfg->admin.enabled)
        return 0;
    admin_config(srv, cfg, &ac);
    if (adm_config_check(&ac, aerr, sizeof(aerr)) != 0) {
        snprintf(err, errlen, "%s:%d: admin: %s", cfg->path, cfg->admin.line, aerr);
        return -1;
    }
    return 0;
}

int gw_admin_start(struct gw_server *srv, const struct gw_config *cfg, char *err, size_t errlen)
{
    const struct gw_admin_cfg *a = &cfg->admin;
    if (!a->enabled)
        return 0;
    srv->admin_magic = ADMIN_MAGIC;
    srv->admin_hooks = (struct adm_hooks){
        .ctx = srv,
        .policy_changed = hook_policy_changed,
        .metrics = hook_metrics,
        .listeners = hook_listeners,
        .health = hook_health,
        .policy_generation = hook_policy_generation,
        .connections = hook_connections,
        .close_connection = hook_close_connection,
    };
    struct adm_config ac;
    admin_config(srv, cfg, &ac);
    char aerr[512];
    if (adm_server_start(&ac, srv->store, &srv->admin_hooks, &srv->admin, aerr, sizeof(aerr)) != 0) {
        snprintf(err, errlen, "%s:%d: admin: %s", cfg->path, a->line, aerr);
        return -1;
    }
    const char *front = NULL;
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (cfg->listeners[i].admin_front)
            front = cfg->listeners[i].bind.text;
    gw_log(LOG_INFO, "admin API on %s%s%s%s%s%s", a->tcp ? a->bind.text : "", a->tcp && a->unix_socket ? " and " : "",
           a->unix_socket ? a->unix_socket : "", front != NULL ? (a->tcp || a->unix_socket ? ", mutual TLS on " : "mutual TLS on ") : "",
           front != NULL ? front : "", a->tokens_file ? "" : " (no tokens_file: every authenticated route answers 401)");
    return 0;
}

void gw_admin_stop(struct gw_server *srv)
{
    adm_server_stop(srv->admin);
    srv->admin = NULL;
    if (srv->admin_front_dir[0] != '\0') {
        (void)unlink(srv->admin_front_path);   /* when the API never started */
        if (rmdir(srv->admin_front_dir) != 0 && errno != ENOENT)
            gw_log(LOG_WARNING, "admin: cannot remove %s: %s", srv->admin_front_dir, strerror(errno));
        srv->admin_front_dir[0] = srv->admin_front_path[0] = '\0';
    }
}

/* The directory of the front's socket: $RUNTIME_DIRECTORY (systemd), else $TMPDIR, else /tmp. Only
 * this user can enter it (mkdtemp makes it 0700), and the API also checks that the socket's peer is
 * this process, so no other local process can speak to the API as an authenticated certificate. */
int gw_admin_front_prepare(struct gw_server *srv, const struct gw_config *cfg, char *err, size_t errlen)
{
    const char *base = getenv("RUNTIME_DIRECTORY");
    char dir[sizeof(srv->admin_front_dir)];

    if (!cfg->admin.enabled || !cfg->admin.tls)
        return 0;
    if (base == NULL || base[0] != '/' || strchr(base, ':') != NULL)  /* systemd may list several */
        base = getenv("TMPDIR");
    if (base == NULL || base[0] != '/')
        base = "/tmp";
    if ((size_t)snprintf(dir, sizeof(dir), "%s/hsmgate-admin.XXXXXX", base) >= sizeof(dir)) {
        snprintf(err, errlen, "admin: tls: the directory %s is too long for a Unix socket path", base);
        return -1;
    }
    if (mkdtemp(dir) == NULL) {
        snprintf(err, errlen, "admin: tls: cannot make a private directory in %s: %s", base, strerror(errno));
        return -1;
    }
    snprintf(srv->admin_front_dir, sizeof(srv->admin_front_dir), "%s", dir);
    snprintf(srv->admin_front_path, sizeof(srv->admin_front_path), "%s/api.sock", dir);
    return 0;
}

int gw_admin_front_fill(const struct gw_server *srv, struct gw_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        struct gw_listener_cfg *l = &cfg->listeners[i];
        if (!l->admin_front)
            continue;
        if (srv->admin_front_path[0] == '\0') {
            snprintf(err, errlen, "%s:%d: admin: tls: the gateway started without the admin API's TLS front; "
                     "restart it to add one", cfg->path, l->line);
            return -1;
        }
        struct sockaddr_un *un = (struct sockaddr_un *)(void *)&l->backends[0].addr.ss;
        memset(un, 0, sizeof(*un));
        un->sun_family = AF_UNIX;
        snprintf(un->sun_path, sizeof(un->sun_path), "%s", srv->admin_front_path);
        l->backends[0].addr.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(un->sun_path) + 1);
    }
    return 0;
}

void gw_admin_reload(struct gw_server *srv)
{
    char err[512];
    if (srv->admin == NULL)
        return;
    if (adm_server_reload_tokens(srv->admin, err, sizeof(err)) != 0)
        gw_log(LOG_ERR, "admin: tokens not reloaded, the old ones stay in force: %s", err);
}
