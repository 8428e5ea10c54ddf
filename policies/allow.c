/* allow.c - allowlist values: the canonical text stored for each match type, the binary key the
 * snapshot indexes, and the value a certificate presents. The three must agree, or an entry an
 * operator made from a certificate would not match that certificate: tests/unit/test_pol_decide.c
 * checks each match type both ways.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "policies/pol_int.h"

/* "<issuer hash>:<serial>" in lower-case hex, the serial as a number (no sign octet). */
static int issuer_serial_text(const uint8_t hash[POL_HASH_LEN], const uint8_t *serial, size_t len, char *out,
                              size_t cap)
{
    if (len > 1 && serial[0] == 0) {
        serial++;
        len--;
    }
    if (cap < 2 * (POL_HASH_LEN + len) + 2)
        return POL_E_ARG;
    pol_hex(hash, POL_HASH_LEN, out, cap);
    out[2 * POL_HASH_LEN] = ':';
    pol_hex(serial, len, out + 2 * POL_HASH_LEN + 1, cap - 2 * POL_HASH_LEN - 1);
    return 0;
}

int pol_list_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '.' && name[i] != '_' && name[i] != '-')
            return 0;
    return 1;
}

/* Printable ASCII without spaces: what a dNSName or URI SAN (IA5String) we can match holds. */
static int ia5_token(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

static int no_controls(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

int pol_allow_value_normalize(enum pol_match m, const char *in, char *out, size_t cap, char *err, size_t errlen)
{
    uint8_t buf[POL_HASH_LEN + POL_SERIAL_MAX];
    size_t n = in ? strlen(in) : 0;

    if (in == NULL || n == 0)
        return pol_errf(err, errlen, POL_E_ARG, "the value is empty");
    if (n >= POL_VALUE_MAX || n >= cap)
        return pol_errf(err, errlen, POL_E_ARG, "the value is too long (at most %d bytes)", POL_VALUE_MAX - 1);
    switch (m) {
    case POL_MATCH_FINGERPRINT:
    case POL_MATCH_SPKI:
        if (pol_unhex(in, buf, POL_HASH_LEN, POL_HASH_LEN) < 0)
            return pol_errf(err, errlen, POL_E_ARG, "%s: expected a SHA-256 in hex (64 digits, colons allowed)",
                            pol_match_name(m));
        pol_hex(buf, POL_HASH_LEN, out, cap);
        return 0;
    case POL_MATCH_ISSUER_SERIAL: {
        /* "<64 hex digits>:<serial hex>": the issuer's Name hash, then a positive serial. */
        uint8_t serial[POL_SERIAL_MAX];
        size_t slen = 0;
        char hash[2 * POL_HASH_LEN + 1];
        if (n < 2 * POL_HASH_LEN + 2 || in[2 * POL_HASH_LEN] != ':')
            return pol_errf(err, errlen, POL_E_ARG,
                            "issuer-serial: expected <SHA-256 of the issuer Name, 64 hex digits>:<serial hex>");
        memcpy(hash, in, 2 * POL_HASH_LEN);
        hash[2 * POL_HASH_LEN] = '\0';
        if (pol_unhex(hash, buf, POL_HASH_LEN, POL_HASH_LEN) < 0 ||
            pol_serial_parse(in + 2 * POL_HASH_LEN + 1, serial, &slen) != 0)
            return pol_errf(err, errlen, POL_E_ARG,
                            "issuer-serial: expected <SHA-256 of the issuer Name, 64 hex digits>:<serial hex>");
        if (issuer_serial_text(buf, serial, slen, out, cap) != 0)
            return pol_errf(err, errlen, POL_E_ARG, "the value is too long");
        return 0;
    }
    case POL_MATCH_SUBJECT:
    case POL_MATCH_CN:
        /* Exact text: RFC 4514 output escapes control characters, so a real one cannot match. */
        if (!no_controls(in))
            return pol_errf(err, errlen, POL_E_ARG, "%s: control characters cannot match any certificate",
                            pol_match_name(m));
        memcpy(out, in, n + 1);
        return 0;
    case POL_MATCH_SAN_DNS:
        if (!ia5_token(in))
            return pol_errf(err, errlen, POL_E_ARG, "san-dns: expected a DNS name (printable ASCII, no spaces)");
        for (size_t i = 0; i <= n; i++)
            out[i] = (char)tolower((unsigned char)in[i]);
        return 0;
    case POL_MATCH_SAN_URI:
        if (!ia5_token(in) || strchr(in, ':') == NULL)
            return pol_errf(err, errlen, POL_E_ARG, "san-uri: expected an absolute URI (RFC 5280 4.2.1.6)");
        memcpy(out, in, n + 1);
        return 0;
    case POL_MATCH_SAN_EMAIL: {
        const char *at = strrchr(in, '@');
        if (!ia5_token(in) || at == NULL || at == in || at[1] == '\0')
            return pol_errf(err, errlen, POL_E_ARG, "san-email: expected local@domain");
        memcpy(out, in, n + 1);
        for (char *p = out + (at - in); *p; p++)
            *p = (char)tolower((unsigned char)*p);
        return 0;
    }
    }
    return pol_errf(err, errlen, POL_E_ARG, "unknown match type");
}

int pol_allow_key(enum pol_match m, const char *value, uint8_t *out, size_t cap)
{
    size_t n = value ? strlen(value) : 0;
    if (n == 0 || n >= POL_VALUE_MAX || n > cap)
        return POL_E_ARG;
    switch (m) {
    case POL_MATCH_FINGERPRINT:
    case POL_MATCH_SPKI:
        if (cap < POL_HASH_LEN || pol_unhex(value, out, POL_HASH_LEN, POL_HASH_LEN) < 0)
            return POL_E_ARG;
        return POL_HASH_LEN;
    case POL_MATCH_ISSUER_SERIAL: {
        char hash[2 * POL_HASH_LEN + 1];
        if (n < 2 * POL_HASH_LEN + 3 || value[2 * POL_HASH_LEN] != ':' || cap < POL_HASH_LEN + POL_SERIAL_MAX)
            return POL_E_ARG;
        memcpy(hash, value, 2 * POL_HASH_LEN);
        hash[2 * POL_HASH_LEN] = '\0';
        if (pol_unhex(hash, out, POL_HASH_LEN, POL_HASH_LEN) < 0)
            return POL_E_ARG;
        /* The number back to its INTEGER content octets, as certificates carry it. */
        size_t k = 0;
        if (strchr(value + 2 * POL_HASH_LEN + 1, ':') != NULL ||
            pol_serial_parse(value + 2 * POL_HASH_LEN + 1, out + POL_HASH_LEN, &k) != 0)
            return POL_E_ARG;
        return (int)(POL_HASH_LEN + k);
    }
    case POL_MATCH_SUBJECT:
    case POL_MATCH_CN:
    case POL_MATCH_SAN_DNS:
    case POL_MATCH_SAN_URI:
    case POL_MATCH_SAN_EMAIL:
        memcpy(out, value, n);
        return (int)n;
    }
    return POL_E_ARG;
}

void pol_issuer_serial_value(const struct pol_cert *ca, const uint8_t *serial, size_t len, char *out, size_t cap)
{
    if (issuer_serial_text(ca->subject_hash, serial, len, out, cap) != 0 && cap > 0)
        out[0] = '\0';
}

int pol_allow_value_of_cert(const struct pol_cert *c, enum pol_match m, char *out, size_t cap)
{
    const char *s = NULL;
    switch (m) {
    case POL_MATCH_FINGERPRINT:
    case POL_MATCH_SPKI:
        if (cap < 2 * POL_HASH_LEN + 1)
            return POL_E_ARG;
        pol_hex(m == POL_MATCH_FINGERPRINT ? c->fingerprint : c->spki_hash, POL_HASH_LEN, out, cap);
        return 0;
    case POL_MATCH_ISSUER_SERIAL:
        return issuer_serial_text(c->issuer_hash, c->serial, c->serial_len, out, cap);
    case POL_MATCH_SUBJECT:
        s = c->subject;
        break;
    case POL_MATCH_CN:
        s = c->cn;
        break;
    case POL_MATCH_SAN_DNS:
    case POL_MATCH_SAN_URI:
    case POL_MATCH_SAN_EMAIL:
        for (size_t i = 0; i < c->nsans && s == NULL; i++)
            if (c->sans[i].type == (uint8_t)m)
                s = c->strings + c->sans[i].off;
        break;
    }
    if (s == NULL || *s == '\0')
        return POL_E_NOT_FOUND;
    if (strlen(s) >= cap)
        return POL_E_ARG;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}
