/* server.h - the data plane's structures, shared by server.c (life cycle, reload), worker.c (event
 * loop, accept) and conn.c (one proxied connection). Internal to gateway/.
 *
 * Threads: the main thread loads configurations and builds generations; N worker threads each own
 * an epoll loop, one SO_REUSEPORT listening socket per listener, and their connections. A
 * generation (config + TLS contexts + keys) is published with an atomic pointer; a connection
 * keeps a reference to the generation it was accepted under, so a reload never disturbs it.
 */
#ifndef HSMGATE_GATEWAY_SERVER_H
#define HSMGATE_GATEWAY_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "admin-api/adm.h"
#include "gateway/admit.h"
#include "gateway/config.h"
#include "gateway/conn_reg.h"
#include "gateway/tls.h"
#include "policies/pol.h"

struct hsm_ctx;
struct hsm_key;
struct gw_pool;
struct gw_health;
struct gw_server;
struct gw_worker;

/* Handshake failure reasons counted one by one (admin.c has the names; 0 is "other"). */
#define GW_HS_REASONS 31
unsigned gw_hs_reason_index(const char *reason);
const char *gw_hs_reason_name(unsigned i);

/* Counters of one listener, kept across reloads (looked up by listener name). */
struct gw_listener_stats {
    char name[72];
    atomic_uint_fast64_t accepted;
    atomic_uint_fast64_t handshakes_ok;
    atomic_uint_fast64_t handshakes_failed;
    atomic_uint_fast64_t resumed;
    atomic_uint_fast64_t backend_failed;
    atomic_uint_fast64_t rejected_cap;
    atomic_uint_fast64_t rejected_addr;    /* closed at accept: the client address is over its limit */
    atomic_uint_fast64_t bytes_in;     /* client -> backend */
    atomic_uint_fast64_t bytes_out;    /* backend -> client */
    atomic_uint_fast64_t policy_refused[POL_REASON_COUNT];  /* by enum pol_reason: handshakes and resumptions */
    atomic_uint_fast64_t policy_closed;    /* live connections closed after a change to the store */
    atomic_uint_fast64_t admin_closed;     /* live connections closed over the admin API */
    atomic_uint_fast64_t hs_failed[GW_HS_REASONS];  /* failed handshakes by reason (gw_hs_reason_index) */
    atomic_uint active;
};

struct gw_listener {
    const struct gw_listener_cfg *cfg; /* owned by the generation's config */
    void *tls_ctx;                     /* WOLFSSL_CTX */
    struct hsm_key *key;               /* NULL for a key file */
    int *fds;                          /* one listening socket per worker; owned by the server's socket table */
    struct gw_listener_stats *stats;
    struct gw_pool *pool;              /* its backends (pool.h); owned by the generation */
    struct gw_admit *admit;            /* who gets in (admit.h); NULL for one-way; owned by the generation */
};

struct gw_gen {
    atomic_int refs;
    uint64_t id;
    struct gw_config *cfg;
    struct gw_listener *listeners;
    size_t nlisteners;
};

/* epoll data.ptr always points at one of these, so one loop can dispatch every kind of fd. */
enum gw_tag_kind { GW_TAG_LISTEN = 1, GW_TAG_CLIENT, GW_TAG_BACKEND, GW_TAG_CONTROL, GW_TAG_POLICY, GW_TAG_ADMIN };
struct gw_tag {
    enum gw_tag_kind kind;
};

struct gw_conn;

struct gw_worker {
    unsigned index;
    pthread_t thread;
    int epfd;
    int evfd;                          /* eventfd: the main thread's "look at the server state" */
    struct gw_tag evtag;
    struct gw_server *srv;
    struct gw_gen *gen;                /* generation whose listening sockets are registered */
    struct gw_ltag *ltags;             /* per listener of gen */
    size_t nltags;
    struct gw_conn *conns;             /* doubly linked list of this worker's connections */
    struct gw_conn *dead;              /* closed this loop turn, freed at its end */
    unsigned nconns;
    int accepting;
    uint64_t now_ms;                   /* CLOCK_MONOTONIC, refreshed once per loop turn */
    int pol_evfd;                      /* eventfd: "a new policy snapshot is out" */
    struct gw_tag poltag;
    uint64_t pol_gen;                  /* snapshot generation this worker's connections were decided on */
    uint64_t pol_checked_ms;           /* when they were last decided on (the time matters too) */
    atomic_uint_fast64_t pol_seen;     /* the same, for the policy thread */
    atomic_uint_fast64_t pol_closed;   /* connections closed by the latest re-decision */
    int adm_evfd;                      /* eventfd: "the admin API marked connections to close" */
    struct gw_tag admtag;
    struct gw_conn_reg reg;            /* what other threads may see of conns (conn_reg.h) */
    atomic_uint_fast64_t beat_ms;      /* now_ms of its latest loop turn, for the watchdog (service.c) */
    uint64_t addrlim_swept_ms;         /* worker 0: the last gw_addrlim_sweep */
    unsigned char *scratch[2];         /* tcp proxying: buffers a pump borrows (conn.c); freed at exit */
};

struct gw_ltag {
    struct gw_tag tag;
    struct gw_listener *l;
    int fd;
};

enum gw_run_state { GW_RUNNING = 0, GW_DRAINING = 1, GW_STOPPING = 2 };

/* A listening socket set (one fd per worker) for a bind address, reused across reloads. */
struct gw_socket_set {
    char bind[64];
    int *fds;
    int used;                          /* mark for the reload sweep */
};

struct gw_server {
    struct hsm_ctx *hsm;
    char *config_path;
    unsigned nworkers;
    struct gw_worker *workers;
    _Atomic(struct gw_gen *) gen;
    uint64_t next_gen_id;
    struct gw_socket_set *socks;
    size_t nsocks;
    struct gw_listener_stats **stats;  /* by listener name, grows with reloads */
    size_t nstats;
    atomic_int state;                  /* enum gw_run_state */
    atomic_uint acks;                  /* workers that have seen the latest state change */
    atomic_uint started;               /* workers whose HSM sessions and listening sockets are set up */
    atomic_uint active;                /* connections, all listeners */
    unsigned max_connections;
    /* Per client address (addrlim.h): the table, and the limits in force (reload changes them). */
    struct gw_addrlim *addrlim;
    _Atomic unsigned max_conns_per_addr, max_hs_per_addr, max_rate_per_addr;
    unsigned drain_timeout_ms;
    struct gw_health *health;          /* the health-check thread (pool.h), started after the workers */
    /* Admission policies (policy_rt.c): the store, the live snapshot the workers read (reader i is
     * worker i; reader nworkers is the policy thread), and the thread that follows the store. */
    char *policy_store_path;           /* NULL: no store, an empty snapshot */
    struct pol_store *store;
    struct pol_live *live;
    pthread_t pol_thread;
    int pol_thread_started;
    pthread_mutex_t pol_mu;
    pthread_cond_t pol_cv;
    int pol_stop;
    int pol_kicked;                    /* under pol_mu: refresh now, a change was committed (admin API) */
    unsigned pol_poll_ms;              /* how often the policy thread looks at the store (default 20) */
    pthread_mutex_t gen_mu;            /* taking a reference to gen from another thread than main */
    /* The admin API (admin.c): it reads the snapshot as reader nworkers + 1. */
    struct adm_server *admin;
    struct adm_hooks admin_hooks;
    uint32_t admin_magic;
    int admin_reader_registered;       /* the API's thread only */
    /* The admin API's TLS front (admin: tls:): its private Unix socket, in a directory of mode 0700
     * made at start ("" when there is no front). */
    char admin_front_dir[96];
    char admin_front_path[108];    /* fits sockaddr_un.sun_path */
};

/* server.c */
/* Loads config_path and runs the gateway until SIGTERM/SIGINT (check_only: loads, resolves every
 * key and certificate, prints a verdict, binds nothing). Returns the process exit status. */
int gw_server_main(const char *config_path, int check_only);
struct gw_gen *gw_gen_ref(struct gw_gen *g);
void gw_gen_unref(struct gw_gen *g);
uint64_t gw_now_ms(void);

/* policy_rt.c */
/* Opens the store of cfg (if any) and publishes its first snapshot; before the workers start.
 * Returns 0, or -1 with a message in err. */
int gw_policy_open(struct gw_server *srv, const struct gw_config *cfg, char *err, size_t errlen) GW_WUR;
/* The thread that follows the store's changes; after the workers start. */
int gw_policy_thread_start(struct gw_server *srv) GW_WUR;
/* Stops the thread (after the workers have stopped) and frees the store and the snapshots. */
void gw_policy_close(struct gw_server *srv);
/* Asks the policy thread to look at the store now (a change was committed). Any thread. */
void gw_policy_kick(struct gw_server *srv);
/* Publishes what the store holds now and waits (bounded) until it is in force: a reload judges live
 * connections with the new rules and the store as it is, not as the last poll saw it. 0, or -1 (no
 * store, or not in force in time: the next poll publishes it). */
int gw_policy_sync(struct gw_server *srv);
/* A reload must not move the store: 0 if cfg names the same store, else -1 with a message. */
int gw_policy_same_store(const struct gw_server *srv, const struct gw_config *cfg, char *err, size_t errlen) GW_WUR;

/* admin.c: the admin API, when cfg has an admin: section (after the policy store is open). */
int gw_admin_start(struct gw_server *srv, const struct gw_config *cfg, char *err, size_t errlen) GW_WUR;
void gw_admin_stop(struct gw_server *srv);
void gw_admin_reload(struct gw_server *srv);
/* `hsmgate check`: the tokens file and the CA (certificate against its key in the HSM), as
 * gw_admin_start would find them. 0, or -1 with "file:line: admin: why". */
int gw_admin_check(const struct gw_server *srv, const struct gw_config *cfg, char *err, size_t errlen) GW_WUR;
/* Makes the private directory of the TLS front's socket when cfg has admin: tls: (before the first
 * generation is built). 0, or -1 with a message. */
int gw_admin_front_prepare(struct gw_server *srv, const struct gw_config *cfg, char *err, size_t errlen) GW_WUR;
/* Points the TLS front listener of cfg (if any) at the API's socket. -1 with a message when cfg has a
 * front and the running gateway did not start with one (a reload that adds admin: tls:). */
int gw_admin_front_fill(const struct gw_server *srv, struct gw_config *cfg, char *err, size_t errlen) GW_WUR;

/* worker.c */
void *gw_worker_main(void *arg);

/* conn.c */
void gw_conn_accept(struct gw_worker *w, struct gw_listener *l, int fd,
                    const struct sockaddr_storage *peer, socklen_t peerlen);
void gw_conn_on_event(struct gw_worker *w, struct gw_tag *tag, uint32_t events);
/* Closes connections past their deadline; with force, closes all of them. */
void gw_conn_sweep(struct gw_worker *w, int force);
/* Frees the connections closed during this loop turn. */
void gw_conn_reap(struct gw_worker *w);
/* Decides again on every connection with a client identity (the snapshot changed); closes those
 * now refused. Returns how many it closed. */
unsigned gw_conn_policy_recheck(struct gw_worker *w);

#endif
