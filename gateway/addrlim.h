/* addrlim.h - per-client-address limits: open connections and unfinished handshakes.
 *
 * A slowloris (thousands of connections that never finish their handshake) or a handshake flood from
 * one address must not take the gateway from everyone else. The global and per-listener caps bound
 * the total; these bound what one address may hold, and how many new connections it may start per
 * second (a token bucket: rate per second, a burst of twice that): at accept, a connection over its
 * address's limit is closed at once (counted per listener, logged at most once a second), before any
 * TLS work is spent on it.
 *
 * Counts are shared by every worker (SO_REUSEPORT spreads one address's connections over them): a
 * table of addresses in 64 stripes, each under its own mutex, taken once at accept, once when the
 * handshake ends and once at close, never while bytes move. An address leaves the table with its last
 * connection, or, when a rate applies, once its bucket has filled up again (gw_addrlim_sweep). IPv4
 * addresses are kept IPv4-mapped, so a dual-stack listener counts them the same way.
 */
#ifndef HSMGATE_GATEWAY_ADDRLIM_H
#define HSMGATE_GATEWAY_ADDRLIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct gw_addrlim;

struct gw_addrkey {
    uint8_t a[16];      /* IPv6, or IPv4-mapped */
};

enum gw_addrlim_result {
    GW_ADDRLIM_OK = 0,
    GW_ADDRLIM_CONNECTIONS = 1,     /* the address holds max_conns connections already */
    GW_ADDRLIM_HANDSHAKES = 2,      /* the address has max_hs handshakes unfinished already */
    GW_ADDRLIM_NOMEM = 3,
    GW_ADDRLIM_RATE = 4,            /* the address started max_rate connections a second for too long */
};

/* The limits of one accept; 0 in a field: no such limit. */
struct gw_addrlim_limits {
    unsigned conns;                 /* open connections */
    unsigned handshakes;            /* unfinished handshakes */
    unsigned rate;                  /* new connections per second (burst: twice that) */
};

/* NULL on allocation failure. */
struct gw_addrlim *gw_addrlim_new(void);
void gw_addrlim_free(struct gw_addrlim *t);        /* accepts NULL */

/* A new connection from peer, counted as open and handshaking unless a limit (0: none) refuses it.
 * On GW_ADDRLIM_OK, *key names it for the calls below; on any other result nothing was counted. An
 * address family other than IPv4/IPv6 is never limited (counted under the all-zero key). */
enum gw_addrlim_result gw_addrlim_enter(struct gw_addrlim *t, const struct sockaddr_storage *peer,
                                        const struct gw_addrlim_limits *lim, uint64_t now_ms, struct gw_addrkey *key);
/* The connection's handshake is over (succeeded or not): it no longer counts as handshaking. */
void gw_addrlim_handshake_done(struct gw_addrlim *t, const struct gw_addrkey *key);
/* The connection is closed; handshaking: its handshake had not ended. */
void gw_addrlim_leave(struct gw_addrlim *t, const struct gw_addrkey *key, int handshaking);

/* Frees the entries of addresses with no connection whose bucket has filled up again (with rate, the
 * rate in force); call about once a second. */
void gw_addrlim_sweep(struct gw_addrlim *t, unsigned rate, uint64_t now_ms);

/* Addresses in the table now (for tests and metrics). */
size_t gw_addrlim_addresses(struct gw_addrlim *t);
/* Formats key as text ("192.0.2.7", "2001:db8::1") into buf. */
void gw_addrlim_key_text(const struct gw_addrkey *key, char *buf, size_t len);

#endif
