/* route_crl.c - /crl and /crl.pem: the root CA's certificate revocation list (RFC 5280 5), signed in
 * the HSM, served without authentication so that it can be a CRL distribution point (RFC 5280
 * 4.2.1.13). Media types: application/pkix-crl for DER (RFC 2585 4.2), the customary
 * application/x-pem-file for PEM (RFC 7468).
 *
 * The CRL is made on request when the cached one is stale (adm_ca_crl_get: the store's generation
 * moved, or half of its validity passed), so a revocation is on the next CRL fetched after it commits.
 */
#include <stdlib.h>
#include <string.h>

#include "admin-api/adm_ca.h"

static int crl_answer(struct adm_req *req, struct adm_resp *resp, int pem)
{
    struct adm_ca *ca = adm_ca(req);
    struct adm_ca_crl crl;
    char err[512] = "";
    int from_store = 0;

    if (ca == NULL) {
        adm_problem(resp, 404, NULL, "this gateway has no certificate authority (admin: ca_key), hence no CRL");
        return 0;
    }
    int rc = adm_ca_crl_get(ca, adm_store(req), &crl, &from_store, err, sizeof(err));
    if (rc != 0) {
        if (from_store)
            adm_pol_problem(resp, rc, err);
        else if (rc == HSM_E_SESSION || rc == HSM_E_TOKEN || rc == HSM_E_PIN || rc == HSM_E_KEY)
            adm_problem(resp, 503, NULL, "the HSM cannot sign the CRL now: %s", err);
        else
            adm_problem(resp, 500, NULL, "the CRL could not be made: %s", err);
        return 0;
    }
    size_t n = pem ? crl.pem_len : crl.der_len;
    char *body = malloc(n);
    if (body == NULL) {
        adm_problem(resp, 500, NULL, "out of memory");
        return 0;
    }
    memcpy(body, pem ? (const void *)crl.pem : (const void *)crl.der, n);
    adm_text(resp, 200, pem ? "application/x-pem-file" : "application/pkix-crl", body, n);
    return 0;
}

static int crl_der(struct adm_req *req, struct adm_resp *resp)
{
    return crl_answer(req, resp, 0);
}

static int crl_pem(struct adm_req *req, struct adm_resp *resp)
{
    return crl_answer(req, resp, 1);
}

const struct adm_route adm_routes_crl[] = {
    { "GET", "/crl", ADM_ROLE_NONE, crl_der, "The root CA's CRL (DER), signed in the HSM",
      ADM_DOC({"responses": {"200": {"description": "The root's CRL (RFC 5280 5), DER (RFC 2585 4.2)",
                                     "content": {"application/pkix-crl": {"type": "string", "format": "binary"}}},
                             "404": "This gateway has no CA (admin: ca_key)",
                             "503": "The HSM cannot sign now, or the policy store cannot be read"}}) },
    { "GET", "/crl.pem", ADM_ROLE_NONE, crl_pem, "The root CA's CRL (PEM)",
      ADM_DOC({"responses": {"200": {"description": "The same CRL, PEM (RFC 7468)",
                                     "content": {"application/x-pem-file": {"type": "string",
                                                                            "pattern": "^-----BEGIN X509 CRL-----"}}},
                             "404": "This gateway has no CA (admin: ca_key)",
                             "503": "The HSM cannot sign now, or the policy store cannot be read"}}) },
    { NULL, NULL, ADM_ROLE_NONE, NULL, NULL },
};
