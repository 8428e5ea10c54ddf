/* admit.h - a listener's admission rules: its policy (policies/pol.h) with the client CAs it
 * trusts, and the client identity a connection keeps so that it can be decided on again (a resumed
 * session, a live connection after a change to the store).
 *
 * A listener with "policy: NAME" takes the named policy; a two-way or optional listener without
 * one gets the default policy over its own client_ca (hard-fail, clientAuth, no allowlist, its
 * verify_depth). One-way listeners have none. */
#ifndef HSMGATE_GATEWAY_ADMIT_H
#define HSMGATE_GATEWAY_ADMIT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "gateway/config.h"
#include "policies/pol.h"

#define GW_IDENT_MAX_CHAIN 10

struct gw_admit {
    struct pol_policy *policy;
    char name[72];              /* the policy's name, or "listener:NAME" for a default one */
    const char **ca_files;      /* PEM bundles wolfSSL loads as trust anchors (point into the config) */
    size_t nca_files;
    unsigned char sid_ctx[20];  /* session context: listener and policy names, hashed (tls.c, tickets.c) */
};

/* Builds l's admission (the CA files are read now; errors say file:line). *out is NULL for a
 * one-way listener. Returns 0 or -1. */
int gw_admit_new(const struct gw_config *cfg, const struct gw_listener_cfg *l, struct gw_admit **out,
                 char *err, size_t errlen) GW_WUR;
void gw_admit_free(struct gw_admit *a);
/* The session context of a listener with that policy (NULL: none): a session or ticket issued under
 * one context is not resumed under another. 20 bytes (see tls.c on why not 32). */
void gw_admit_sid_ctx(const char *listener, const char *policy, unsigned char out[20]);

/* A client's chain as the peer sent it, decoded: leaf first. */
struct gw_ident {
    struct pol_cert *chain[GW_IDENT_MAX_CHAIN];
    size_t n;
};
/* Decodes n DER certificates (leaf first; beyond GW_IDENT_MAX_CHAIN are ignored). Returns 0, or a
 * negative enum pol_err (the identity is then empty). */
int gw_ident_from_der(struct gw_ident *id, const uint8_t *const *der, const size_t *len, size_t n) GW_WUR;
void gw_ident_clear(struct gw_ident *id);

/* The decision for id under a's policy and snapshot snap at now. */
enum pol_reason gw_admit_decide(const struct gw_admit *a, const struct pol_snapshot *snap, const struct gw_ident *id,
                                time_t now, struct pol_verdict *v);

/* Every certificate of a PEM bundle (or one DER certificate), as DER: *ders and each (*ders)[i]
 * malloc'd (free with gw_der_list_free). Returns 0, or -1 with a message. */
int gw_der_list_load(const char *path, uint8_t ***ders, size_t **lens, size_t *n, char *err, size_t errlen) GW_WUR;
void gw_der_list_free(uint8_t **ders, size_t *lens, size_t n);

#endif
