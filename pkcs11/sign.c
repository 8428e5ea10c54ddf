/* sign.c - signatures made in the token through the calling thread's own session and cached handle.
 *
 * The token gets the digest (DESIGN.md fact 2): CKM_ECDSA on the hash, CKM_RSA_PKCS on the DigestInfo,
 * CKM_RSA_PKCS_PSS on the hash. Only when a token lacks CKM_RSA_PKCS do we pad PKCS#1 v1.5 ourselves
 * and ask for the raw CKM_RSA_X_509. PSS is never padded here: it needs a salt from a good RNG and a
 * MGF, and a token without CKM_RSA_PKCS_PSS gets HSM_E_MECH. */
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "pkcs11/internal.h"

#define HSM_RSA_MAX_BYTES (16384 / 8)
#define HSM_EC_MAX_RAW (2 * 66)

/* Non-loss signing failures are logged at most once a second for the whole process. */
static void sign_log_failure(const struct hsm_key *key, CK_RV rv)
{
    static atomic_llong last;
    struct timespec now;
    long long prev;

    hsm_monotonic(&now);
    prev = atomic_load(&last);
    if (prev == (long long)now.tv_sec || !atomic_compare_exchange_strong(&last, &prev, (long long)now.tv_sec))
        return;
    hsm_log(LOG_ERR, "key %s: signing failed: %s", key->uri, hsm_ckr_name(rv));
}

/* RFC 8017 9.2 step 5: EM = 0x00 || 0x01 || PS (0xff, at least 8) || 0x00 || T. */
static int pkcs1_type1_pad(const uint8_t *t, size_t t_len, uint8_t *em, size_t k)
{
    if (t_len + 11 > k)
        return HSM_E_ARG;
    em[0] = 0x00;
    em[1] = 0x01;
    memset(em + 2, 0xff, k - t_len - 3);
    em[k - t_len - 1] = 0x00;
    memcpy(em + k - t_len, t, t_len);
    return 0;
}

const unsigned hsm_lat_bounds_us[HSM_LAT_BUCKETS - 1] = { 25, 50, 100, 250, 500, 1000, 2500, 10000, 100000 };

int hsm_sign(struct hsm_key *key, enum hsm_sig_kind kind, unsigned hash_bits, const uint8_t *in, size_t in_len,
             uint8_t *out, size_t *out_len)
{
    struct hsm_ctx *ctx;
    struct hsm_token *tok;
    CK_MECHANISM mech = {0, NULL, 0};
    CK_RSA_PKCS_PSS_PARAMS pss;
    CK_OBJECT_HANDLE kh;
    CK_SESSION_HANDLE sh;
    CK_FUNCTION_LIST *f;
    uint8_t em[HSM_RSA_MAX_BYTES];
    uint8_t raw[HSM_EC_MAX_RAW];
    const uint8_t *data = in;
    CK_ULONG data_len = in_len, sig_len;
    uint8_t *sig;
    CK_RV rv;
    int idx, rc = 0;

    if (key == NULL || key->magic != HSM_KEY_MAGIC || in == NULL || in_len == 0 || out == NULL ||
        out_len == NULL)
        return HSM_E_ARG;
    ctx = key->ctx;
    tok = key->tok;
    f = tok->mod->fl;
    idx = hsm_thread_index(ctx);
    if (idx < 0) {
        rc = HSM_E_NOT_ATTACHED;
        goto out;
    }

    /* Arguments first: a signature the caller cannot take would waste a token operation. */
    switch (kind) {
    case HSM_SIG_ECDSA:
        if (key->type != HSM_KEY_EC) {
            rc = HSM_E_ARG;
            goto out;
        }
        if (!(tok->mechs & HSM_MECH_ECDSA)) {
            rc = HSM_E_MECH;
            goto out;
        }
        if (in_len > 64) {
            rc = HSM_E_ARG;
            goto out;
        }
        mech.mechanism = CKM_ECDSA;
        sig = raw;
        sig_len = (CK_ULONG)key->sig_len;
        break;
    case HSM_SIG_RSA_PKCS1:
        if (key->type != HSM_KEY_RSA || in_len + 11 > key->sig_len || *out_len < key->sig_len) {
            rc = HSM_E_ARG;
            goto out;
        }
        if (tok->mechs & HSM_MECH_RSA_PKCS) {
            mech.mechanism = CKM_RSA_PKCS;
        } else if (tok->mechs & HSM_MECH_RSA_X509) {
            mech.mechanism = CKM_RSA_X_509;
            HSM_TRY(pkcs1_type1_pad(in, in_len, em, key->sig_len));
            data = em;
            data_len = (CK_ULONG)key->sig_len;
        } else {
            rc = HSM_E_MECH;
            goto out;
        }
        sig = out;
        sig_len = (CK_ULONG)key->sig_len;
        break;
    case HSM_SIG_RSA_PSS:
        if (key->type != HSM_KEY_RSA || *out_len < key->sig_len) {
            rc = HSM_E_ARG;
            goto out;
        }
        /* RFC 8446 4.2.3: MGF1 with the same hash, salt as long as the hash. */
        switch (hash_bits) {
        case 256:
            pss = (CK_RSA_PKCS_PSS_PARAMS){CKM_SHA256, CKG_MGF1_SHA256, 32};
            break;
        case 384:
            pss = (CK_RSA_PKCS_PSS_PARAMS){CKM_SHA384, CKG_MGF1_SHA384, 48};
            break;
        case 512:
            pss = (CK_RSA_PKCS_PSS_PARAMS){CKM_SHA512, CKG_MGF1_SHA512, 64};
            break;
        default:
            rc = HSM_E_ARG;
            goto out;
        }
        if (in_len != pss.sLen) {
            rc = HSM_E_ARG;
            goto out;
        }
        if (!(tok->mechs & HSM_MECH_RSA_PSS)) {
            rc = HSM_E_MECH;
            goto out;
        }
        mech = (CK_MECHANISM){CKM_RSA_PKCS_PSS, &pss, sizeof(pss)};
        sig = out;
        sig_len = (CK_ULONG)key->sig_len;
        break;
    default:
        rc = HSM_E_ARG;
        goto out;
    }

    HSM_TRY(hsm_tsess_ready(tok, (unsigned)idx));
    HSM_TRY(hsm_key_th_ready(key, (unsigned)idx, &kh));
    sh = tok->sess[idx].h;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rv = f->C_SignInit(sh, &mech, kh);
    if (rv == CKR_OK)
        rv = f->C_Sign(sh, (CK_BYTE *)data, data_len, sig, &sig_len);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rv != CKR_OK) {
        /* OPERATION_ACTIVE: a sign operation was left open; only a new session clears it. */
        if (hsm_ckr_is_lost(rv) || rv == CKR_OPERATION_ACTIVE) {
            hsm_tsess_lost(tok, (unsigned)idx, rv);
            rc = HSM_E_SESSION;
        } else {
            sign_log_failure(key, rv);
            rc = HSM_E_SIGN;
        }
        goto out;
    }
    if (kind == HSM_SIG_ECDSA) {
        if (sig_len != key->sig_len) {
            rc = HSM_E_SIGN;
            goto out;
        }
        HSM_TRY(hsm_der_ecdsa_sig(raw, sig_len, out, out_len));
    } else {
        *out_len = sig_len;
    }
    atomic_fetch_add_explicit(&ctx->signs, 1, memory_order_relaxed);
    {
        uint64_t us = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000u + (uint64_t)(t1.tv_nsec - t0.tv_nsec) / 1000u;
        int b = 0;
        while (b < HSM_LAT_BUCKETS - 1 && us > hsm_lat_bounds_us[b])
            b++;
        atomic_fetch_add_explicit(&ctx->lat_buckets[b], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&ctx->lat_sum_us, us, memory_order_relaxed);
    }
out:
    if (rc < 0)
        atomic_fetch_add_explicit(&key->ctx->sign_errors, 1, memory_order_relaxed);
    return rc;
}
