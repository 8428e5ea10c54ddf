/* adm_ca.h - the admin API's certificate authority (adm_ca.c): the root whose key is in the HSM, the
 * client certificates it issues (route_certificates.c) and the CRL it signs (route_crl.c).
 *
 * Threads: adm_ca_new and adm_ca_free run on the thread that starts and stops the server (the
 * gateway's main thread: hsm_key_open's rule, pkcs11/hsm.h). Everything else runs in a handler, and
 * handlers run one at a time (http.c's dispatch lock), so the CA takes no lock of its own. A handler
 * may run on either of libmicrohttpd's threads (TCP and Unix socket), so each signature attaches its
 * thread to the HSM index of the API and detaches after: the index never has two owners.
 */
#ifndef HSMGATE_ADMIN_API_ADM_CA_H
#define HSMGATE_ADMIN_API_ADM_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "admin-api/adm_int.h"
#include "pkcs11/ca.h"

#define ADM_CA_DEFAULT_DAYS 365u
#define ADM_CA_MAX_DAYS 825u            /* the CA/Browser Forum's old ceiling; a sane bound for clients */
#define ADM_CA_CRL_VALIDITY_S (7u * 86400u)

struct adm_ca;

/* The CA of cfg (*out NULL when cfg->ca_key is NULL: no CA). Reads the certificate, opens the key in
 * the HSM and checks that the certificate is a CA allowed to issue and to sign CRLs whose public key
 * is the key's. Returns 0, or -1 with a message in err. */
int adm_ca_new(const struct adm_config *cfg, struct adm_ca **out, char *err, size_t errlen) ADM_WUR;
void adm_ca_free(struct adm_ca *ca);    /* accepts NULL */

/* The request's server's CA, or NULL when none is configured (http.c). */
struct adm_ca *adm_ca(struct adm_req *req);

unsigned adm_ca_default_days(const struct adm_ca *ca);
unsigned adm_ca_max_days(const struct adm_ca *ca);
/* The root certificate's notAfter: no certificate it issues may outlive it. */
time_t adm_ca_not_after(const struct adm_ca *ca);

/* Issues a client certificate (clientAuth, digitalSignature, CA:FALSE, SKI/AKI; RFC 5280 4.2) for the
 * key and subject of a parsed, verified request, valid from a few minutes ago for days days. *der_out
 * (malloc'd) gets it. Returns 0 or a negative enum hsm_err with a message. */
int adm_ca_issue(struct adm_ca *ca, const struct hsm_ca_csr *csr, unsigned days, uint8_t **der_out, size_t *der_len,
                 char *err, size_t errlen) ADM_WUR;

/* The CA's current CRL (RFC 5280 5): made again when the store's generation has moved since the last
 * one (a revocation), or when half of its validity has passed, so that a relying party always holds
 * one valid for at least half the period; otherwise the cached one. store may be NULL (an empty
 * CRL). The pointers stay valid until the next call. Returns 0, a negative enum pol_err (*from_store
 * set: the store could not be read) or a negative enum hsm_err (the HSM did not sign), with err. */
struct adm_ca_crl {
    const uint8_t *der;
    size_t der_len;
    const char *pem;
    size_t pem_len;
    time_t this_update, next_update;
    size_t entries;
};
int adm_ca_crl_get(struct adm_ca *ca, struct pol_store *store, struct adm_ca_crl *out, int *from_store, char *err,
                   size_t errlen) ADM_WUR;

#endif
