/* hs_reasons.c - the names under which failed handshakes are counted (server.h, GW_HS_REASONS). */
#include <string.h>

#include "gateway/server.h"

/* The handshake failure reasons counted one by one (tls.c, conn.c, policies/); any other is "other". */
static const char *const hs_reasons[GW_HS_REASONS] = {
    "other", "no_client_certificate", "unknown_ca", "certificate_expired", "certificate_not_yet_valid",
    "bad_signature", "chain_too_long", "invalid_ca", "path_length_exceeded", "not_for_client_auth",
    "client_certificate_is_ca", "name_constraint_violation", "certificate_invalid", "hsm_session_lost",
    "hsm_sign_failed", "handshake_timeout", "malformed_tls", "protocol_version", "no_shared_cipher",
    "client_closed", "connection_reset", "alert_received", "handshake_failed", "revoked", "not_allowlisted",
    "allowlist_entry_expired", "crl_missing", "crl_stale", "issuer_not_trusted", "eku_missing",
    "policy_unavailable",
};

const char *gw_hs_reason_name(unsigned i)
{
    return i < GW_HS_REASONS && hs_reasons[i] != NULL ? hs_reasons[i] : "other";
}

unsigned gw_hs_reason_index(const char *reason)
{
    for (unsigned i = 1; reason != NULL && i < GW_HS_REASONS; i++)
        if (hs_reasons[i] != NULL && strcmp(hs_reasons[i], reason) == 0)
            return i;
    return 0;
}

