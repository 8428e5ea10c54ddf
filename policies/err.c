/* err.c - the module's lists of codes with their names and messages (errors, decision reasons,
 * CRL reasons, match types), and the small text formats operators type: serials and times. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policies/pol_int.h"

static const struct {
    int code;
    const char *name, *msg;
} pol_errs[] = {
    { POL_OK, "ok", "success" },
    { POL_E_NOMEM, "nomem", "out of memory" },
    { POL_E_ARG, "bad_argument", "bad argument" },
    { POL_E_DER, "malformed", "malformed DER or PEM" },
    { POL_E_CRL_SIGNATURE, "crl_bad_signature", "the CRL's signature does not verify with the CA's key" },
    { POL_E_CRL_ISSUER, "crl_wrong_issuer", "the CRL was not issued by this CA" },
    { POL_E_CRL_ROLLBACK, "crl_rollback", "the CRL is not newer than the one stored" },
    { POL_E_CRL_CRITICAL, "crl_unknown_critical_extension", "the CRL has an unknown critical extension" },
    { POL_E_UNSUPPORTED, "unsupported", "unsupported algorithm or CRL kind" },
    { POL_E_STORE, "store_failed", "the policy store failed" },
    { POL_E_SCHEMA, "store_schema", "the policy store's schema is unknown or corrupt" },
    { POL_E_NOT_FOUND, "not_found", "no such entry" },
    { POL_E_EXISTS, "exists", "the entry exists already" },
    { POL_E_NOT_HOLD, "not_on_hold", "only a certificateHold can be lifted" },
    { POL_E_BUSY, "store_busy", "the policy store is locked by another process" },
    { POL_E_TIMEOUT, "timeout", "readers did not pass a quiescent point in time" },
    { POL_E_READER, "bad_reader", "reader index out of range or not registered" },
    { POL_E_CERT, "unusable_certificate", "the certificate cannot be used for this" },
    { POL_E_AUDIT, "audit_broken", "the audit trail's hash chain is broken" },
};

const char *pol_strerror(int err)
{
    for (size_t i = 0; i < sizeof(pol_errs) / sizeof(pol_errs[0]); i++)
        if (pol_errs[i].code == err)
            return pol_errs[i].msg;
    return "unknown policy error";
}

const char *pol_errname(int err)
{
    for (size_t i = 0; i < sizeof(pol_errs) / sizeof(pol_errs[0]); i++)
        if (pol_errs[i].code == err)
            return pol_errs[i].name;
    return "unknown";
}

int pol_errf(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return code;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* Stable names: logs, metrics and tests depend on them; add, never rename. */
static const char *const reason_names[POL_REASON_COUNT] = {
    [POL_ADMIT] = "admit",
    [POL_R_NO_POLICY] = "policy_unavailable",
    [POL_R_NO_CERT] = "no_client_certificate",
    [POL_R_ISSUER_NOT_TRUSTED] = "issuer_not_trusted",
    [POL_R_CHAIN_TOO_LONG] = "chain_too_long",
    [POL_R_NOT_YET_VALID] = "certificate_not_yet_valid",
    [POL_R_EXPIRED] = "certificate_expired",
    [POL_R_CERT_IS_CA] = "client_certificate_is_ca",
    [POL_R_EKU_MISSING] = "eku_missing",
    [POL_R_REVOKED] = "revoked",
    [POL_R_CRL_MISSING] = "crl_missing",
    [POL_R_CRL_STALE] = "crl_stale",
    [POL_R_NOT_ALLOWLISTED] = "not_allowlisted",
    [POL_R_ALLOWLIST_EXPIRED] = "allowlist_entry_expired",
};

const char *pol_reason_name(enum pol_reason r)
{
    if ((unsigned)r >= POL_REASON_COUNT || reason_names[r] == NULL)
        return "unknown";
    return reason_names[r];
}

/* RFC 5280 5.3.1 CRLReason, spelled as the ASN.1 module does. */
static const char *const crl_reasons[] = {
    [0] = "unspecified", [1] = "keyCompromise", [2] = "cACompromise", [3] = "affiliationChanged",
    [4] = "superseded", [5] = "cessationOfOperation", [6] = "certificateHold", [7] = NULL,
    [8] = "removeFromCRL", [9] = "privilegeWithdrawn", [10] = "aACompromise",
};
#define NREASONS (sizeof(crl_reasons) / sizeof(crl_reasons[0]))

const char *pol_reason_code_name(int reason)
{
    if (reason < 0 || (size_t)reason >= NREASONS || crl_reasons[reason] == NULL)
        return "unknown";
    return crl_reasons[reason];
}

int pol_reason_code_parse(const char *name, int *out)
{
    for (size_t i = 0; i < NREASONS; i++) {
        /* removeFromCRL is a delta-CRL instruction, never a reason to revoke. */
        if (crl_reasons[i] == NULL || i == POL_REASON_REMOVE_FROM_CRL)
            continue;
        if (strcasecmp(name, crl_reasons[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    return POL_E_ARG;
}

static const char *const match_names[POL_MATCH_COUNT] = {
    [POL_MATCH_FINGERPRINT] = "fingerprint", [POL_MATCH_SPKI] = "spki", [POL_MATCH_SUBJECT] = "subject",
    [POL_MATCH_CN] = "cn", [POL_MATCH_SAN_DNS] = "san-dns", [POL_MATCH_SAN_URI] = "san-uri",
    [POL_MATCH_SAN_EMAIL] = "san-email", [POL_MATCH_ISSUER_SERIAL] = "issuer-serial",
};

const char *pol_match_name(enum pol_match m)
{
    if ((unsigned)m >= POL_MATCH_COUNT)
        return "unknown";
    return match_names[m];
}

int pol_match_parse(const char *name, enum pol_match *out)
{
    for (unsigned i = 0; i < POL_MATCH_COUNT; i++) {
        if (strcmp(name, match_names[i]) == 0) {
            *out = (enum pol_match)i;
            return 0;
        }
    }
    return POL_E_ARG;
}

/* ---------------------------------------------------------------- serials */

int pol_serial_parse(const char *hex, uint8_t out[POL_SERIAL_MAX], size_t *len)
{
    uint8_t raw[POL_SERIAL_MAX + 1];
    char digits[2 * (POL_SERIAL_MAX + 1) + 1];
    size_t nd = 0;

    if (hex == NULL)
        return POL_E_ARG;
    if (hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X'))
        hex += 2;
    /* Collect the digits (colons between pairs allowed), then left-pad to whole bytes. */
    for (const char *p = hex; *p; p++) {
        if (*p == ':')
            continue;
        if (!isxdigit((unsigned char)*p) || nd + 1 >= sizeof(digits))
            return POL_E_ARG;
        digits[nd++] = *p;
    }
    if (nd == 0)
        return POL_E_ARG;
    size_t nb = (nd + 1) / 2;
    if (nb > sizeof(raw))
        return POL_E_ARG;
    for (size_t i = 0, d = 0; i < nb; i++) {
        int hi = 0, lo;
        if (i == 0 && (nd & 1)) {
            lo = digits[d++];
        } else {
            hi = digits[d++];
            lo = digits[d++];
        }
        int h = hi ? (isdigit(hi) ? hi - '0' : (tolower(hi) - 'a' + 10)) : 0;
        int l = isdigit(lo) ? lo - '0' : (tolower(lo) - 'a' + 10);
        raw[i] = (uint8_t)(h << 4 | l);
    }
    /* The minimal DER INTEGER content of this positive number (X.690 8.3.2). */
    size_t s = 0;
    while (s + 1 < nb && raw[s] == 0)
        s++;
    size_t n = nb - s;
    int pad = raw[s] & 0x80 ? 1 : 0;
    if (n + (size_t)pad > POL_SERIAL_MAX)
        return POL_E_ARG;
    if (pad)
        out[0] = 0;
    memcpy(out + pad, raw + s, n);
    *len = n + (size_t)pad;
    return 0;
}

void pol_serial_format(const uint8_t *serial, size_t len, char *out, size_t cap)
{
    static const char d[] = "0123456789ABCDEF";
    size_t j = 0;
    if (cap == 0)
        return;
    /* The number, not its encoding: no sign octet (as OpenSSL and gateway/tls.c print serials). */
    if (len > 1 && serial[0] == 0) {
        serial++;
        len--;
    }
    for (size_t i = 0; i < len && j + 2 < cap; i++) {
        out[j++] = d[serial[i] >> 4];
        out[j++] = d[serial[i] & 15];
    }
    out[j] = '\0';
}

/* ---------------------------------------------------------------- times */

int pol_time_parse(const char *s, time_t now, time_t *out)
{
    if (s == NULL)
        return POL_E_ARG;
    if (s[0] == '+' || s[0] == '-') {
        long long n = 0;
        size_t i = 1;
        if (!isdigit((unsigned char)s[i]))
            return POL_E_ARG;
        for (; isdigit((unsigned char)s[i]); i++) {
            n = n * 10 + (s[i] - '0');
            if (n > 36500LL * 86400)
                return POL_E_ARG;
        }
        long long unit = s[i] == 'd' ? 86400 : s[i] == 'h' ? 3600 : s[i] == 'm' ? 60 : s[i] == 's' ? 1 : 0;
        if (unit == 0 || s[i + 1] != '\0' || n > 36500LL * 86400 / unit)
            return POL_E_ARG;
        *out = now + (time_t)(s[0] == '-' ? -n * unit : n * unit);
        return 0;
    }
    /* "YYYY-MM-DDTHH:MM:SSZ" through the GeneralizedTime parser, so both agree on what a date is. */
    if (strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        s[19] != 'Z')
        return POL_E_ARG;
    uint8_t g[15];
    memcpy(g, s, 4);
    memcpy(g + 4, s + 5, 2);
    memcpy(g + 6, s + 8, 2);
    memcpy(g + 8, s + 11, 2);
    memcpy(g + 10, s + 14, 2);
    memcpy(g + 12, s + 17, 2);
    g[14] = 'Z';
    struct pol_tlv t = { .tag = POL_TAG_GEN_TIME, .v = g, .len = sizeof(g) };
    time_t v;
    /* Before 1970 nothing of ours happened: such a time is a typo. */
    if (pol_der_time(&t, &v) != 0 || v < 0)
        return POL_E_ARG;
    *out = v;
    return 0;
}

void pol_time_format(time_t t, char *out, size_t cap)
{
    struct tm tm;
    if (cap == 0)
        return;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%lld", (long long)t);
}
