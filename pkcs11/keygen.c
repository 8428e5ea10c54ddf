/* keygen.c - key pairs generated inside the token (hsmgate pki). Main thread only.
 *
 * The private half never leaves the token: CKA_SENSITIVE true, CKA_EXTRACTABLE false (PKCS#11 v2.40
 * 4.9). Both halves are token objects with one fresh random 16-byte CKA_ID and the given CKA_LABEL,
 * so hsm_key_open finds the public half by CKA_ID. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "pkcs11/internal.h"

static const uint8_t oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const uint8_t rsa_f4[] = {0x01, 0x00, 0x01};   /* 65537 */

struct keygen_spec {
    enum hsm_key_type type;
    const uint8_t *oid;
    size_t oid_len;
    CK_ULONG bits;
};

static int keygen_parse_spec(const char *spec, struct keygen_spec *ks)
{
    memset(ks, 0, sizeof(*ks));
    if (strcmp(spec, "ec:P-256") == 0) {
        *ks = (struct keygen_spec){HSM_KEY_EC, oid_p256, sizeof(oid_p256), 256};
    } else if (strcmp(spec, "ec:P-384") == 0) {
        *ks = (struct keygen_spec){HSM_KEY_EC, oid_p384, sizeof(oid_p384), 384};
    } else if (strcmp(spec, "rsa:2048") == 0 || strcmp(spec, "rsa:3072") == 0 || strcmp(spec, "rsa:4096") == 0) {
        *ks = (struct keygen_spec){HSM_KEY_RSA, NULL, 0, strtoul(spec + 4, NULL, 10)};
    } else {
        return HSM_E_KEYTYPE;
    }
    return 0;
}

int hsm_key_generate(struct hsm_ctx *ctx, const char *token_uri, const char *label, const char *spec,
                     struct hsm_key **key_out, char *err, size_t errlen)
{
    P11KitUri *uri = NULL;
    struct hsm_module *mod;
    struct hsm_token *tok;
    struct keygen_spec ks;
    CK_FUNCTION_LIST *f = NULL;
    CK_SESSION_HANDLE rw = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE hpub, hpriv, objs[2];
    CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_MECHANISM mech = {0, NULL, 0};
    CK_BYTE id[16];
    CK_ULONG count = 0, npub;
    char *pin_value = NULL, *key_uri = NULL;
    const char *mpath, *mname, *psrc;
    size_t label_len;
    CK_RV rv;
    int r, rc = 0;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (key_out != NULL)
        *key_out = NULL;
    if (ctx == NULL || ctx->magic != HSM_CTX_MAGIC || token_uri == NULL || label == NULL || spec == NULL)
        return hsm_errf(err, errlen, HSM_E_ARG, "hsm_key_generate: bad argument");
    label_len = strlen(label);
    if (label_len == 0 || label_len > 128)
        return hsm_errf(err, errlen, HSM_E_ARG, "key label must be 1 to 128 bytes long");
    if (keygen_parse_spec(spec, &ks) < 0)
        return hsm_errf(err, errlen, HSM_E_KEYTYPE,
                        "key spec \"%s\": want ec:P-256, ec:P-384, rsa:2048, rsa:3072 or rsa:4096", spec);

    uri = p11_kit_uri_new();
    if (uri == NULL)
        return HSM_E_NOMEM;
    r = p11_kit_uri_parse(token_uri, P11_KIT_URI_FOR_ANY, uri);
    if (r != P11_KIT_URI_OK) {
        const char *m = p11_kit_uri_message(r);
        rc = hsm_errf(err, errlen, HSM_E_URI, "bad PKCS#11 token URI (RFC 7512): %s", m != NULL ? m : "parse error");
        goto out;
    }
    if (p11_kit_uri_any_unrecognized(uri)) {
        rc = hsm_errf(err, errlen, HSM_E_URI, "unknown attribute in the token URI path (RFC 7512 2.3)");
        goto out;
    }
    if (p11_kit_uri_get_pin_value(uri) != NULL) {
        if ((pin_value = strdup(p11_kit_uri_get_pin_value(uri))) == NULL) {
            rc = HSM_E_NOMEM;
            goto out;
        }
        hsm_log(LOG_WARNING, "pin-value in the token URI is discouraged; use pin-source");
        p11_kit_uri_set_pin_value(uri, NULL);
    }
    mpath = p11_kit_uri_get_module_path(uri);
    mname = p11_kit_uri_get_module_name(uri);
    if (mpath == NULL && mname == NULL)
        mpath = ctx->default_module;
    psrc = p11_kit_uri_get_pin_source(uri);
    if (psrc == NULL && pin_value == NULL)
        psrc = ctx->default_pin_source;
    HSM_TRY(hsm_module_get(ctx, mpath, mname, &mod, err, errlen));
    HSM_TRY(hsm_token_get(ctx, mod, uri, psrc, pin_value, &tok, err, errlen));
    f = mod->fl;

    if (!(tok->mechs & (ks.type == HSM_KEY_EC ? HSM_MECH_EC_GEN : HSM_MECH_RSA_GEN))) {
        rc = hsm_errf(err, errlen, HSM_E_MECH, "the token offers no %s",
                      ks.type == HSM_KEY_EC ? "CKM_EC_KEY_PAIR_GEN" : "CKM_RSA_PKCS_KEY_PAIR_GEN");
        goto out;
    }
    /* Token objects can only be created in a read/write session (PKCS#11 v2.40 5.6). */
    rv = f->C_OpenSession(tok->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw);
    if (rv != CKR_OK) {
        rw = CK_INVALID_HANDLE;
        rc = hsm_errf(err, errlen, HSM_E_TOKEN, "read/write C_OpenSession: %s", hsm_ckr_name(rv));
        goto out;
    }
    HSM_TRY(hsm_token_login(tok, rw, err, errlen));

    {
        CK_ATTRIBUTE t[2] = {{CKA_CLASS, &priv_cls, sizeof(priv_cls)}, {CKA_LABEL, (void *)label, label_len}};

        rv = f->C_FindObjectsInit(rw, t, 2);
        if (rv == CKR_OK) {
            rv = f->C_FindObjects(rw, objs, 1, &count);
            f->C_FindObjectsFinal(rw);
        }
        if (rv != CKR_OK) {
            rc = hsm_errf(err, errlen, HSM_E_TOKEN, "C_FindObjects: %s", hsm_ckr_name(rv));
            goto out;
        }
        if (count > 0) {
            rc = hsm_errf(err, errlen, HSM_E_EXISTS, "a private key labelled \"%s\" already exists", label);
            goto out;
        }
    }
    rv = f->C_GenerateRandom(rw, id, sizeof(id));
    if (rv != CKR_OK) {
        rc = hsm_errf(err, errlen, HSM_E_GENERATE, "C_GenerateRandom: %s", hsm_ckr_name(rv));
        goto out;
    }

    {
        CK_ATTRIBUTE pub[] = {
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_PRIVATE, &no, sizeof(no)},
            {CKA_VERIFY, &yes, sizeof(yes)},
            {CKA_ID, id, sizeof(id)},
            {CKA_LABEL, (void *)label, label_len},
            {CKA_EC_PARAMS, (void *)ks.oid, ks.oid_len},         /* EC; replaced below for RSA */
            {CKA_PUBLIC_EXPONENT, (void *)rsa_f4, sizeof(rsa_f4)},
        };
        CK_ATTRIBUTE priv[] = {
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_PRIVATE, &yes, sizeof(yes)},
            {CKA_SENSITIVE, &yes, sizeof(yes)},
            {CKA_EXTRACTABLE, &no, sizeof(no)},
            {CKA_SIGN, &yes, sizeof(yes)},
            {CKA_ID, id, sizeof(id)},
            {CKA_LABEL, (void *)label, label_len},
        };

        if (ks.type == HSM_KEY_EC) {
            mech.mechanism = CKM_EC_KEY_PAIR_GEN;
            npub = 6;
        } else {
            mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
            pub[5] = (CK_ATTRIBUTE){CKA_MODULUS_BITS, &ks.bits, sizeof(ks.bits)};
            npub = 7;
        }
        rv = f->C_GenerateKeyPair(rw, &mech, pub, npub, priv, sizeof(priv) / sizeof(priv[0]), &hpub, &hpriv);
        if (rv != CKR_OK) {
            rc = hsm_errf(err, errlen, HSM_E_GENERATE, "C_GenerateKeyPair (%s): %s", spec, hsm_ckr_name(rv));
            goto out;
        }
    }
    hsm_log(LOG_INFO, "generated a %s key pair labelled \"%s\"", spec, label);

    if (key_out != NULL) {
        CK_ATTRIBUTE a[3] = {
            {CKA_CLASS, &priv_cls, sizeof(priv_cls)},
            {CKA_LABEL, (void *)label, label_len},
            {CKA_ID, id, sizeof(id)},
        };

        p11_kit_uri_clear_attributes(uri);
        if (p11_kit_uri_set_attributes(uri, a, 3) != P11_KIT_URI_OK ||
            p11_kit_uri_format(uri, P11_KIT_URI_FOR_ANY, &key_uri) != P11_KIT_URI_OK) {
            rc = HSM_E_NOMEM;
            goto out;
        }
        rc = hsm_key_open(ctx, key_uri, key_out, err, errlen);
    }
out:
    if (rw != CK_INVALID_HANDLE)
        f->C_CloseSession(rw);
    free(key_uri);
    if (pin_value != NULL) {
        hsm_wipe(pin_value, strlen(pin_value));
        free(pin_value);
    }
    p11_kit_uri_free(uri);
    return rc;
}
