/* ca_sig.c - public keys, signature algorithms, signing in the HSM and verification with wolfCrypt. */
#include "pkcs11/ca.h"
#include "pkcs11/ca_int.h"

#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>

/* RFC 5480 2.1.1 / RFC 3279 2.3.1 */
static const uint8_t OID_EC_PUBKEY[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
static const uint8_t OID_RSA_ENC[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
/* RFC 5480 2.1.1.1 */
static const uint8_t OID_P256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const uint8_t OID_P384[] = { 0x2b, 0x81, 0x04, 0x00, 0x22 };

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 4096
/* A 4096-bit RSA signature; DER ECDSA signatures are far smaller. */
#define SIG_MAX 512

static const struct {
    enum hsm_ca_sigalg alg;
    uint8_t oid[9];
    uint8_t oid_len;
    enum hsm_key_type key;
    enum wc_HashType hash;
} sigalgs[] = {
    /* RFC 5758 3.2 */
    { HSM_CA_SIGALG_ECDSA_SHA256, { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 }, 8, HSM_KEY_EC, WC_HASH_TYPE_SHA256 },
    { HSM_CA_SIGALG_ECDSA_SHA384, { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03 }, 8, HSM_KEY_EC, WC_HASH_TYPE_SHA384 },
    { HSM_CA_SIGALG_ECDSA_SHA512, { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04 }, 8, HSM_KEY_EC, WC_HASH_TYPE_SHA512 },
    /* RFC 4055 5 */
    { HSM_CA_SIGALG_RSA_SHA256, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b }, 9, HSM_KEY_RSA, WC_HASH_TYPE_SHA256 },
    { HSM_CA_SIGALG_RSA_SHA384, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c }, 9, HSM_KEY_RSA, WC_HASH_TYPE_SHA384 },
    { HSM_CA_SIGALG_RSA_SHA512, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d }, 9, HSM_KEY_RSA, WC_HASH_TYPE_SHA512 },
};
#define NSIGALGS (sizeof(sigalgs) / sizeof(sigalgs[0]))

static int sigalg_index(enum hsm_ca_sigalg alg)
{
    for (size_t i = 0; i < NSIGALGS; i++)
        if (sigalgs[i].alg == alg)
            return (int)i;
    return -1;
}

/* Splits a SubjectPublicKeyInfo (RFC 5280 4.1.2.7) into algorithm OID, parameters and key bits. */
static int spki_split(const uint8_t *spki, size_t len, struct hsm_ca_der_tlv *oid, struct hsm_ca_der_tlv *params,
                      int *has_params, const uint8_t **bits, size_t *bits_len)
{
    struct hsm_ca_der c = { spki, len }, in, alg;
    struct hsm_ca_der_tlv seq, algseq, bs;
    if (hsm_ca_der_get_tag(&c, DER_SEQUENCE, &seq) != 0 || c.len != 0)
        return -1;
    in = hsm_ca_der_in(&seq);
    if (hsm_ca_der_get_tag(&in, DER_SEQUENCE, &algseq) != 0 || hsm_ca_der_get_tag(&in, DER_BIT_STRING, &bs) != 0 || in.len != 0)
        return -1;
    alg = hsm_ca_der_in(&algseq);
    if (hsm_ca_der_get_tag(&alg, DER_OID, oid) != 0)
        return -1;
    *has_params = 0;
    if (alg.len != 0) {
        if (hsm_ca_der_get(&alg, params) != 0 || alg.len != 0)
            return -1;
        *has_params = 1;
    }
    /* Key bits come in whole octets: the unused-bits count must be 0. */
    if (bs.len < 2 || bs.val[0] != 0)
        return -1;
    *bits = bs.val + 1;
    *bits_len = bs.len - 1;
    return 0;
}

int hsm_ca_spki_inspect(const uint8_t *spki, size_t len, struct hsm_ca_spki *out, char *err, size_t errlen)
{
    struct hsm_ca_der_tlv oid, params;
    int has_params = 0, rc = HSM_E_ARG;
    const uint8_t *bits;
    size_t bits_len;
    ecc_key ec;
    RsaKey rsa;
    int ec_init = 0, rsa_init = 0;

    memset(out, 0, sizeof(*out));
    if (spki == NULL || len == 0 || len > UINT32_MAX ||
        spki_split(spki, len, &oid, &params, &has_params, &bits, &bits_len) != 0) {
        hsm_ca_errf(err, errlen, "the public key is not a DER SubjectPublicKeyInfo");
        return HSM_E_ARG;
    }
    if (hsm_ca_der_oid_is(&oid, OID_EC_PUBKEY, sizeof(OID_EC_PUBKEY))) {
        unsigned bitsz;
        /* RFC 5480 2.1.1: namedCurve only; explicit curve parameters are refused. */
        if (has_params && hsm_ca_der_oid_is(&params, OID_P256, sizeof(OID_P256))) {
            bitsz = 256;
        } else if (has_params && hsm_ca_der_oid_is(&params, OID_P384, sizeof(OID_P384))) {
            bitsz = 384;
        } else {
            hsm_ca_errf(err, errlen, "unsupported EC key: only named curves P-256 and P-384 are accepted");
            rc = HSM_E_KEYTYPE;
            goto out;
        }
        word32 idx = 0;
        if (wc_ecc_init_ex(&ec, NULL, INVALID_DEVID) != 0) {
            rc = HSM_E_NOMEM;
            goto out;
        }
        ec_init = 1;
        /* An invalid point would make every later verification meaningless: check it is on the curve. */
        if (wc_EccPublicKeyDecode(spki, &idx, &ec, (word32)len) != 0 || idx != len || wc_ecc_check_key(&ec) != 0) {
            hsm_ca_errf(err, errlen, "invalid EC public key (not a point on P-%u)", bitsz);
            goto out;
        }
        out->type = HSM_KEY_EC;
        out->bits = bitsz;
    } else if (hsm_ca_der_oid_is(&oid, OID_RSA_ENC, sizeof(OID_RSA_ENC))) {
        /* RFC 3279 2.3.1: parameters are NULL (some encoders omit them; both are read). */
        if (has_params && !(params.tag == DER_NULL && params.len == 0)) {
            hsm_ca_errf(err, errlen, "RSA public key with unexpected parameters");
            goto out;
        }
        word32 idx = 0;
        if (wc_InitRsaKey_ex(&rsa, NULL, INVALID_DEVID) != 0) {
            rc = HSM_E_NOMEM;
            goto out;
        }
        rsa_init = 1;
        uint8_t n[RSA_MAX_BITS / 8 + 1], e[16];
        word32 nlen = sizeof(n), elen = sizeof(e);
        if (wc_RsaPublicKeyDecode(spki, &idx, &rsa, (word32)len) != 0 || idx != len) {
            hsm_ca_errf(err, errlen, "invalid RSA public key");
            goto out;
        }
        if (wc_RsaFlattenPublicKey(&rsa, e, &elen, n, &nlen) != 0 || nlen == 0 || n[0] == 0) {
            hsm_ca_errf(err, errlen, "unsupported RSA key: modulus larger than %d bits or exponent too large", RSA_MAX_BITS);
            rc = HSM_E_KEYTYPE;
            goto out;
        }
        unsigned nbits = (unsigned)nlen * 8;
        for (uint8_t top = n[0]; !(top & 0x80); top <<= 1)
            nbits--;
        if (nbits < RSA_MIN_BITS || nbits > RSA_MAX_BITS) {
            hsm_ca_errf(err, errlen, "unsupported RSA key of %u bits (accepted: %d-%d)", nbits, RSA_MIN_BITS, RSA_MAX_BITS);
            rc = HSM_E_KEYTYPE;
            goto out;
        }
        /* An even or tiny exponent is a broken key, not a policy choice. */
        if (elen == 0 || !(e[elen - 1] & 1) || (elen == 1 && e[0] < 3)) {
            hsm_ca_errf(err, errlen, "invalid RSA public exponent");
            goto out;
        }
        out->type = HSM_KEY_RSA;
        out->bits = nbits;
    } else {
        hsm_ca_errf(err, errlen, "unsupported key type (accepted: EC P-256, EC P-384, RSA %d-%d)", RSA_MIN_BITS, RSA_MAX_BITS);
        rc = HSM_E_KEYTYPE;
        goto out;
    }
    out->pub = bits;
    out->pub_len = bits_len;
    rc = 0;
out:
    if (ec_init)
        wc_ecc_free(&ec);
    if (rsa_init)
        wc_FreeRsaKey(&rsa);
    return rc;
}

int hsm_ca_spki_keyid(const struct hsm_ca_spki *k, uint8_t out[20])
{
    return wc_Hash(WC_HASH_TYPE_SHA, k->pub, (word32)k->pub_len, out, 20) == 0 ? 0 : HSM_E_ARG;
}

enum hsm_ca_sigalg hsm_ca_sigalg_parse(const struct hsm_ca_der_tlv *algid)
{
    struct hsm_ca_der c;
    struct hsm_ca_der_tlv oid, params;
    if (algid->tag != DER_SEQUENCE)
        return HSM_CA_SIGALG_NONE;
    c = hsm_ca_der_in(algid);
    if (hsm_ca_der_get_tag(&c, DER_OID, &oid) != 0)
        return HSM_CA_SIGALG_NONE;
    int has_params = 0;
    if (c.len != 0) {
        if (hsm_ca_der_get(&c, &params) != 0 || c.len != 0)
            return HSM_CA_SIGALG_NONE;
        has_params = 1;
    }
    for (size_t i = 0; i < NSIGALGS; i++) {
        if (!hsm_ca_der_oid_is(&oid, sigalgs[i].oid, sigalgs[i].oid_len))
            continue;
        /* RFC 5758 3.2: ECDSA has no parameters; RFC 4055 5: RSA has NULL (absent is tolerated). */
        if (sigalgs[i].key == HSM_KEY_EC && has_params)
            return HSM_CA_SIGALG_NONE;
        if (sigalgs[i].key == HSM_KEY_RSA && has_params && !(params.tag == DER_NULL && params.len == 0))
            return HSM_CA_SIGALG_NONE;
        return sigalgs[i].alg;
    }
    return HSM_CA_SIGALG_NONE;
}

void hsm_ca_sigalg_put(struct hsm_ca_der_buf *b, enum hsm_ca_sigalg alg)
{
    struct hsm_ca_der_buf in = { 0 };
    int i = sigalg_index(alg);
    if (i < 0) {
        b->failed = 1;
        return;
    }
    hsm_ca_der_put_tlv(&in, DER_OID, sigalgs[i].oid, sigalgs[i].oid_len);
    if (sigalgs[i].key == HSM_KEY_RSA)
        hsm_ca_der_put_tlv(&in, DER_NULL, NULL, 0);
    hsm_ca_der_put_wrapped(b, DER_SEQUENCE, &in);
}

int hsm_ca_sigalg_for_key(const struct hsm_key *key, enum hsm_ca_sigalg *alg, char *err, size_t errlen)
{
    unsigned bits = hsm_key_bits(key);
    switch (hsm_key_type(key)) {
    case HSM_KEY_EC:
        if (bits == 256) {
            *alg = HSM_CA_SIGALG_ECDSA_SHA256;
            return 0;
        }
        if (bits == 384) {
            *alg = HSM_CA_SIGALG_ECDSA_SHA384;
            return 0;
        }
        break;
    case HSM_KEY_RSA:
        if (bits >= RSA_MIN_BITS && bits <= RSA_MAX_BITS) {
            *alg = HSM_CA_SIGALG_RSA_SHA256;
            return 0;
        }
        break;
    }
    hsm_ca_errf(err, errlen, "the signing key (%s %u bits) is not supported (accepted: EC P-256, EC P-384, RSA %d-%d)",
                hsm_key_type(key) == HSM_KEY_EC ? "EC" : "RSA", bits, RSA_MIN_BITS, RSA_MAX_BITS);
    return HSM_E_KEYTYPE;
}

/* Hashes data with alg's hash; *dlen gets the digest size. */
static int sig_digest(int i, const uint8_t *data, size_t len, uint8_t *digest, word32 *dlen)
{
    int sz = wc_HashGetDigestSize(sigalgs[i].hash);
    if (sz <= 0 || len > UINT32_MAX)
        return -1;
    *dlen = (word32)sz;
    return wc_Hash(sigalgs[i].hash, data, (word32)len, digest, *dlen) == 0 ? 0 : -1;
}

/* RFC 8017 9.2 step 2: the DigestInfo that PKCS#1 v1.5 signs. */
static int sig_digest_info(int i, const uint8_t *digest, word32 dlen, uint8_t *out, size_t cap, word32 *outlen)
{
    int oid = wc_HashGetOID(sigalgs[i].hash);
    if (oid <= 0 || cap < dlen + 32)
        return -1;
    *outlen = wc_EncodeSignature(out, digest, dlen, oid);
    return *outlen > 0 ? 0 : -1;
}

int hsm_ca_sig_verify(const uint8_t *spki, size_t spki_len, enum hsm_ca_sigalg alg,
                   const uint8_t *data, size_t len, const uint8_t *sig, size_t sig_len)
{
    uint8_t digest[WC_MAX_DIGEST_SIZE], di[WC_MAX_DIGEST_SIZE + 32], tmp[SIG_MAX];
    word32 dlen = 0, dilen = 0, idx = 0;
    int i = sigalg_index(alg), rc = HSM_E_SIGN;
    ecc_key ec;
    RsaKey rsa;
    int ec_init = 0, rsa_init = 0;

    if (i < 0 || spki == NULL || sig == NULL || sig_len == 0 || sig_len > SIG_MAX || spki_len > UINT32_MAX)
        return HSM_E_SIGN;
    if (sig_digest(i, data, len, digest, &dlen) != 0)
        goto out;
    if (sigalgs[i].key == HSM_KEY_EC) {
        int ok = 0;
        if (wc_ecc_init_ex(&ec, NULL, INVALID_DEVID) != 0)
            goto out;
        ec_init = 1;
        if (wc_EccPublicKeyDecode(spki, &idx, &ec, (word32)spki_len) != 0)
            goto out;
        if (wc_ecc_verify_hash(sig, (word32)sig_len, digest, dlen, &ok, &ec) != 0 || ok != 1)
            goto out;
    } else {
        byte *plain = NULL;
        if (sig_digest_info(i, digest, dlen, di, sizeof(di), &dilen) != 0)
            goto out;
        if (wc_InitRsaKey_ex(&rsa, NULL, INVALID_DEVID) != 0)
            goto out;
        rsa_init = 1;
        if (wc_RsaPublicKeyDecode(spki, &idx, &rsa, (word32)spki_len) != 0)
            goto out;
        /* RFC 8017 8.2.2 step 1: the signature is exactly as long as the modulus. */
        if ((int)sig_len != wc_RsaEncryptSize(&rsa))
            goto out;
        memcpy(tmp, sig, sig_len);
        int n = wc_RsaSSL_VerifyInline(tmp, (word32)sig_len, &plain, &rsa);
        if (n <= 0 || plain == NULL || (word32)n != dilen || memcmp(plain, di, dilen) != 0)
            goto out;
    }
    rc = 0;
out:
    if (ec_init)
        wc_ecc_free(&ec);
    if (rsa_init)
        wc_FreeRsaKey(&rsa);
    return rc;
}

int hsm_ca_sign_wrap(struct hsm_key *key, enum hsm_ca_sigalg alg, const uint8_t *tbs, size_t tbs_len,
                  uint8_t **out, size_t *out_len, char *err, size_t errlen)
{
    uint8_t digest[WC_MAX_DIGEST_SIZE], di[WC_MAX_DIGEST_SIZE + 32], sig[SIG_MAX + 1];
    word32 dlen = 0, dilen = 0;
    size_t sig_len = sizeof(sig) - 1, spki_len = 0;
    struct hsm_ca_der_buf body = { 0 }, whole = { 0 };
    int i = sigalg_index(alg), rc;

    if (i < 0 || sigalgs[i].key != hsm_key_type(key)) {
        hsm_ca_errf(err, errlen, "internal: signature algorithm does not match the key");
        return HSM_E_ARG;
    }
    if (sig_digest(i, tbs, tbs_len, digest, &dlen) != 0) {
        hsm_ca_errf(err, errlen, "hashing failed");
        return HSM_E_SIGN;
    }
    /* sig[0] is the BIT STRING's unused-bits octet; the token writes after it. */
    sig[0] = 0;
    if (sigalgs[i].key == HSM_KEY_EC) {
        rc = hsm_sign(key, HSM_SIG_ECDSA, 0, digest, dlen, sig + 1, &sig_len);
    } else {
        if (sig_digest_info(i, digest, dlen, di, sizeof(di), &dilen) != 0) {
            hsm_ca_errf(err, errlen, "encoding the DigestInfo failed");
            return HSM_E_SIGN;
        }
        rc = hsm_sign(key, HSM_SIG_RSA_PKCS1, 0, di, dilen, sig + 1, &sig_len);
    }
    if (rc != 0) {
        hsm_ca_errf(err, errlen, "the HSM did not sign with %s: %s", hsm_key_uri(key), hsm_strerror(rc));
        return rc;
    }
    /* A token fault must not produce a published bad signature: a faulty RSA-CRT signature even
     * reveals the key (Boneh-DeMillo-Lipton). This also catches a key that is not the one we think. */
    const uint8_t *spki = hsm_key_spki(key, &spki_len);
    if (hsm_ca_sig_verify(spki, spki_len, alg, tbs, tbs_len, sig + 1, sig_len) != 0) {
        hsm_ca_errf(err, errlen, "the HSM's signature does not verify with the key's public half; nothing was issued");
        return HSM_E_SIGN;
    }
    hsm_ca_der_put(&body, tbs, tbs_len);
    hsm_ca_sigalg_put(&body, alg);
    hsm_ca_der_put_tlv(&body, DER_BIT_STRING, sig, sig_len + 1);
    hsm_ca_der_put_wrapped(&whole, DER_SEQUENCE, &body);
    if (hsm_ca_der_buf_take(&whole, out, out_len) != 0) {
        hsm_ca_errf(err, errlen, "out of memory");
        return HSM_E_NOMEM;
    }
    return 0;
}
