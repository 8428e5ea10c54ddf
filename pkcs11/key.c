/* key.c - opening a private key by RFC 7512 URI, reading its public half, key facts.
 *
 * The URI is parsed by p11-kit (P11_KIT_URI_FOR_ANY). Its object attributes (object=, id=, type=)
 * select exactly one private key; the key's own CKA_ID and CKA_LABEL, read once here, form the
 * template each worker thread uses to find its handle after a (re)open, so the lookup is stable and
 * done once per session, never per signature (DESIGN.md fact 3). */
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <syslog.h>

#include "pkcs11/internal.h"

/* Named curves we accept, as the DER OID TLV found in CKA_EC_PARAMS (RFC 5480 2.1.1.1). */
static const struct {
    const char *name;
    uint8_t oid[10];
    size_t oid_len;
    unsigned bits;
} hsm_curves[] = {
    {"P-256", {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}, 10, 256},
    {"P-384", {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}, 7, 384},
    {"P-521", {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23}, 7, 521},
};

/* Reads a variable-length attribute into a fresh buffer (one extra NUL byte, for labels).
 * Returns 0, HSM_E_NOMEM, or HSM_E_KEY with *rv set when the token will not give it. */
static int attr_get(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type,
                    uint8_t **buf, size_t *len, CK_RV *rv)
{
    CK_ATTRIBUTE a = {type, NULL, 0};

    *buf = NULL;
    *len = 0;
    *rv = f->C_GetAttributeValue(h, obj, &a, 1);
    if (*rv != CKR_OK)
        return HSM_E_KEY;
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION)
        return HSM_E_KEY;
    a.pValue = calloc(1, a.ulValueLen + 1);
    if (a.pValue == NULL)
        return HSM_E_NOMEM;
    *rv = f->C_GetAttributeValue(h, obj, &a, 1);
    if (*rv != CKR_OK) {
        free(a.pValue);
        return HSM_E_KEY;
    }
    *buf = a.pValue;
    *len = a.ulValueLen;
    return 0;
}

static int attr_get_ulong(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
                          CK_ATTRIBUTE_TYPE type, CK_ULONG *v)
{
    CK_ATTRIBUTE a = {type, v, sizeof(*v)};

    return f->C_GetAttributeValue(h, obj, &a, 1) == CKR_OK ? 0 : HSM_E_KEY;
}

/* CK_BBOOL attribute, or dflt when the token does not have it. */
static int attr_get_bool(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
                         CK_ATTRIBUTE_TYPE type, int dflt)
{
    CK_BBOOL b = CK_FALSE;
    CK_ATTRIBUTE a = {type, &b, sizeof(b)};

    if (f->C_GetAttributeValue(h, obj, &a, 1) != CKR_OK)
        return dflt;
    return b == CK_TRUE;
}

/* Object searches and object creation are never run at the same time by two threads: SoftHSM 2.6.1
 * (Debian 12) can return an incomplete result to a C_FindObjects that runs while another session
 * creates an object (softhsm/SoftHSMv2#573, fixed upstream after 2.6.1), which showed as a worker
 * that "cannot find" its key when both workers copied the key at start. Both happen once per
 * (re)opened session, never per signature, so one lock costs nothing measurable. */
static pthread_mutex_t objects_mu = PTHREAD_MUTEX_INITIALIZER;

void hsm_objects_lock(void)
{
    pthread_mutex_lock(&objects_mu);
}

void hsm_objects_unlock(void)
{
    pthread_mutex_unlock(&objects_mu);
}

/* Finds up to two objects matching tmpl; *count tells how many (capped at 2). */
static CK_RV find_objects(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE h, CK_ATTRIBUTE *tmpl, CK_ULONG n,
                          CK_OBJECT_HANDLE objs[2], CK_ULONG *count)
{
    CK_RV rv;

    *count = 0;
    hsm_objects_lock();
    rv = f->C_FindObjectsInit(h, tmpl, n);
    if (rv == CKR_OK) {
        rv = f->C_FindObjects(h, objs, 2, count);
        f->C_FindObjectsFinal(h);
    }
    hsm_objects_unlock();
    return rv;
}

int hsm_key_find_handle(struct hsm_key *key, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE *out, CK_RV *rv)
{
    CK_OBJECT_HANDLE objs[2];
    CK_ULONG count;

    *rv = find_objects(key->tok->mod->fl, h, key->tmpl, key->ntmpl, objs, &count);
    if (*rv != CKR_OK)
        return hsm_ckr_is_lost(*rv) ? HSM_E_SESSION : HSM_E_KEY;
    if (count != 1)
        return HSM_E_KEY;
    *out = objs[0];
    return 0;
}

void hsm_key_free(struct hsm_key *key)
{
    if (key == NULL)
        return;
    key->magic = 0;
    free(key->spki);
    key->spki = NULL;
    free(key->id);
    key->id = NULL;
    free(key->label);
    key->label = NULL;
    free(key->uri);
    key->uri = NULL;
    free(key);
}

/* The public key object with the private key's CKA_ID (or label when it has no id), if any. */
static int key_find_public(struct hsm_key *key, CK_KEY_TYPE kt, CK_OBJECT_HANDLE *pub)
{
    CK_FUNCTION_LIST *f = key->tok->mod->fl;
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_ATTRIBUTE t[3] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_ID, NULL, 0},
    };
    CK_OBJECT_HANDLE objs[2];
    CK_ULONG count;

    if (key->ntmpl < 2)
        return HSM_E_KEY;
    t[2] = key->tmpl[1];   /* CKA_ID, or CKA_LABEL when the key has no id */
    if (find_objects(f, key->tok->main_sess, t, 3, objs, &count) != CKR_OK || count == 0)
        return HSM_E_KEY;
    *pub = objs[0];
    return 0;
}

/* Reads an attribute of the private key, else of its public key object. */
static int key_attr_either(struct hsm_key *key, int have_pub, CK_OBJECT_HANDLE pub, CK_ATTRIBUTE_TYPE type,
                           int pub_first, uint8_t **buf, size_t *len)
{
    CK_FUNCTION_LIST *f = key->tok->mod->fl;
    CK_SESSION_HANDLE h = key->tok->main_sess;
    CK_OBJECT_HANDLE order[2];
    int n = 0, rc = HSM_E_KEY;
    CK_RV rv;

    if (pub_first && have_pub)
        order[n++] = pub;
    order[n++] = key->main_h;
    if (!pub_first && have_pub)
        order[n++] = pub;
    for (int i = 0; i < n; i++) {
        rc = attr_get(f, h, order[i], type, buf, len, &rv);
        if (rc != HSM_E_KEY)
            return rc;
    }
    return rc;
}

static int key_read_ec(struct hsm_key *key, char *err, size_t errlen)
{
    uint8_t *params = NULL, *point = NULL;
    size_t params_len = 0, point_len = 0, inner_len, fb = 0;
    const uint8_t *inner;
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;
    int have_pub, rc = 0;

    have_pub = key_find_public(key, CKK_EC, &pub) == 0;
    rc = key_attr_either(key, have_pub, pub, CKA_EC_PARAMS, 0, &params, &params_len);
    if (rc < 0) {
        rc = hsm_errf(err, errlen, rc == HSM_E_NOMEM ? rc : HSM_E_KEY, "cannot read CKA_EC_PARAMS");
        goto out;
    }
    for (size_t i = 0; i < sizeof(hsm_curves) / sizeof(hsm_curves[0]); i++) {
        if (params_len == hsm_curves[i].oid_len && memcmp(params, hsm_curves[i].oid, params_len) == 0) {
            key->bits = hsm_curves[i].bits;
            fb = (key->bits + 7) / 8;
        }
    }
    if (fb == 0) {
        rc = hsm_errf(err, errlen, HSM_E_KEYTYPE, "EC key on an unsupported curve (want P-256, P-384 or P-521)");
        goto out;
    }
    /* The token stores the point in its public key object; some also expose it on the private key. */
    rc = key_attr_either(key, have_pub, pub, CKA_EC_POINT, 1, &point, &point_len);
    if (rc < 0) {
        rc = hsm_errf(err, errlen, rc == HSM_E_NOMEM ? rc : HSM_E_KEY,
                      "no public key: neither a public key object with the same CKA_ID nor CKA_EC_POINT on the private key");
        goto out;
    }
    /* PKCS#11 v2.40 2.3.3: CKA_EC_POINT is the DER OCTET STRING of the point; a few tokens give the
     * raw point. Accept both, keep the uncompressed point (X9.62 4.3.6). */
    if (!hsm_der_unwrap_octets(point, point_len, &inner, &inner_len)) {
        inner = point;
        inner_len = point_len;
    }
    if (inner_len != 1 + 2 * fb || inner[0] != 0x04) {
        rc = hsm_errf(err, errlen, HSM_E_KEYTYPE, "CKA_EC_POINT is not an uncompressed %u-bit point", key->bits);
        goto out;
    }
    rc = hsm_der_spki_ec(params, params_len, inner, inner_len, &key->spki, &key->spki_len);
    if (rc < 0)
        goto out;
    key->sig_len = 2 * fb;
out:
    free(params);
    free(point);
    return rc;
}

static int key_read_rsa(struct hsm_key *key, char *err, size_t errlen)
{
    uint8_t *n = NULL, *e = NULL;
    size_t n_len = 0, e_len = 0, off = 0;
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;
    int have_pub, rc = 0;

    have_pub = key_find_public(key, CKK_RSA, &pub) == 0;
    rc = key_attr_either(key, have_pub, pub, CKA_MODULUS, 0, &n, &n_len);
    if (rc == 0)
        rc = key_attr_either(key, have_pub, pub, CKA_PUBLIC_EXPONENT, 0, &e, &e_len);
    if (rc < 0) {
        rc = hsm_errf(err, errlen, rc == HSM_E_NOMEM ? rc : HSM_E_KEY,
                      "cannot read the RSA public key (CKA_MODULUS, CKA_PUBLIC_EXPONENT)");
        goto out;
    }
    while (off < n_len && n[off] == 0)
        off++;
    if (off == n_len || e_len == 0) {
        rc = hsm_errf(err, errlen, HSM_E_KEY, "empty RSA modulus or exponent");
        goto out;
    }
    key->bits = (unsigned)(n_len - off - 1) * 8;
    for (uint8_t top = n[off]; top != 0; top >>= 1)
        key->bits++;
    /* Below 2048 bits is too weak for a TLS server key (NIST SP 800-131A). */
    if (key->bits < 2048 || key->bits > 16384) {
        rc = hsm_errf(err, errlen, HSM_E_KEYTYPE, "RSA key of %u bits: want 2048 to 16384", key->bits);
        goto out;
    }
    key->sig_len = (key->bits + 7) / 8;
    rc = hsm_der_spki_rsa(n + off, n_len - off, e, e_len, &key->spki, &key->spki_len);
out:
    free(n);
    free(e);
    return rc;
}

const char *hsm_key_path(const struct hsm_key *key, enum hsm_sig_kind kind)
{
    unsigned m;

    if (key == NULL)
        return "unavailable";
    m = key->tok->mechs;
    switch (kind) {
    case HSM_SIG_ECDSA:
        if (key->type != HSM_KEY_EC)
            return "unavailable (not an EC key)";
        return (m & HSM_MECH_ECDSA) ? "CKM_ECDSA" : "unavailable (token lacks CKM_ECDSA)";
    case HSM_SIG_RSA_PKCS1:
        if (key->type != HSM_KEY_RSA)
            return "unavailable (not an RSA key)";
        if (m & HSM_MECH_RSA_PKCS)
            return "CKM_RSA_PKCS";
        if (m & HSM_MECH_RSA_X509)
            return "CKM_RSA_X_509 (raw, padded here)";
        return "unavailable (token lacks CKM_RSA_PKCS and CKM_RSA_X_509)";
    case HSM_SIG_RSA_PSS:
        if (key->type != HSM_KEY_RSA)
            return "unavailable (not an RSA key)";
        return (m & HSM_MECH_RSA_PSS) ? "CKM_RSA_PKCS_PSS" : "unavailable (token lacks CKM_RSA_PKCS_PSS)";
    }
    return "unavailable";
}

/* Reads what the key is and builds its template, public half and signing paths. */
static int key_describe(struct hsm_key *key, char *err, size_t errlen)
{
    CK_FUNCTION_LIST *f = key->tok->mod->fl;
    CK_SESSION_HANDLE h = key->tok->main_sess;
    CK_KEY_TYPE kt;
    size_t id_len = 0, label_len = 0;
    CK_RV rv;
    int rc;

    if (attr_get_ulong(f, h, key->main_h, CKA_KEY_TYPE, &kt) < 0)
        return hsm_errf(err, errlen, HSM_E_KEY, "cannot read CKA_KEY_TYPE");
    if (!attr_get_bool(f, h, key->main_h, CKA_SIGN, 1))
        return hsm_errf(err, errlen, HSM_E_KEY, "the key has CKA_SIGN false");
    /* A key that needs a login before every signature (PKCS#11 v2.40 4.9 CKA_ALWAYS_AUTHENTICATE)
     * would need the PIN in memory for each handshake. */
    if (attr_get_bool(f, h, key->main_h, CKA_ALWAYS_AUTHENTICATE, 0))
        return hsm_errf(err, errlen, HSM_E_KEY, "the key has CKA_ALWAYS_AUTHENTICATE: unsupported");

    rc = attr_get(f, h, key->main_h, CKA_ID, &key->id, &id_len, &rv);
    if (rc == HSM_E_NOMEM)
        return rc;
    rc = attr_get(f, h, key->main_h, CKA_LABEL, (uint8_t **)&key->label, &label_len, &rv);
    if (rc == HSM_E_NOMEM)
        return rc;
    key->cls = CKO_PRIVATE_KEY;
    key->tmpl[0] = (CK_ATTRIBUTE){CKA_CLASS, &key->cls, sizeof(key->cls)};
    key->ntmpl = 1;
    if (id_len > 0)
        key->tmpl[key->ntmpl++] = (CK_ATTRIBUTE){CKA_ID, key->id, id_len};
    if (label_len > 0)
        key->tmpl[key->ntmpl++] = (CK_ATTRIBUTE){CKA_LABEL, key->label, label_len};
    key->on_token = CK_TRUE;
    key->tmpl[key->ntmpl++] = (CK_ATTRIBUTE){CKA_TOKEN, &key->on_token, sizeof(key->on_token)};

    if (kt == CKK_EC) {
        key->type = HSM_KEY_EC;
        rc = key_read_ec(key, err, errlen);
        if (rc == 0 && !(key->tok->mechs & HSM_MECH_ECDSA))
            rc = hsm_errf(err, errlen, HSM_E_MECH, "the token offers no CKM_ECDSA");
    } else if (kt == CKK_RSA) {
        key->type = HSM_KEY_RSA;
        rc = key_read_rsa(key, err, errlen);
        if (rc == 0 && !(key->tok->mechs & (HSM_MECH_RSA_PKCS | HSM_MECH_RSA_X509 | HSM_MECH_RSA_PSS)))
            rc = hsm_errf(err, errlen, HSM_E_MECH, "the token offers no RSA signing mechanism");
    } else {
        rc = hsm_errf(err, errlen, HSM_E_KEYTYPE, "key type 0x%lx is neither EC nor RSA", (unsigned long)kt);
    }
    return rc;
}

/* The URI in p11-kit's canonical form with only what names the key and how to reach it (token, slot
 * and module identification, object attributes, module-name, module-path, pin-source): what we log
 * and compare. Built in a fresh URI, so that nothing else the operator wrote reaches a message: not
 * the pin-value, nor an attribute p11-kit did not recognise, whose value can hold a mistyped
 * "pin-value=..." (found by tests/fuzz/fuzz_p11_uri.c). */
static int uri_canonical(P11KitUri *uri, char **out)
{
    P11KitUri *clean = p11_kit_uri_new();
    CK_ATTRIBUTE *attrs;
    CK_ULONG n = 0;
    char *s = NULL;
    int rc = HSM_E_NOMEM;

    if (clean == NULL)
        return HSM_E_NOMEM;
    *p11_kit_uri_get_module_info(clean) = *p11_kit_uri_get_module_info(uri);
    *p11_kit_uri_get_slot_info(clean) = *p11_kit_uri_get_slot_info(uri);
    *p11_kit_uri_get_token_info(clean) = *p11_kit_uri_get_token_info(uri);
    p11_kit_uri_set_slot_id(clean, p11_kit_uri_get_slot_id(uri));
    attrs = p11_kit_uri_get_attributes(uri, &n);
    if (n > 0 && p11_kit_uri_set_attributes(clean, attrs, n) != P11_KIT_URI_OK)
        goto out;
    p11_kit_uri_set_module_name(clean, p11_kit_uri_get_module_name(uri));
    p11_kit_uri_set_module_path(clean, p11_kit_uri_get_module_path(uri));
    p11_kit_uri_set_pin_source(clean, p11_kit_uri_get_pin_source(uri));
    if (p11_kit_uri_format(clean, P11_KIT_URI_FOR_ANY, &s) == P11_KIT_URI_OK) {
        *out = s;
        rc = 0;
    }
out:
    p11_kit_uri_free(clean);
    return rc;
}

/* Prefixes err with the key URI, so every message names what failed. */
static void err_prefix(char *err, size_t errlen, const char *uri, int rc)
{
    char tmp[512];

    if (err == NULL || errlen == 0)
        return;
    snprintf(tmp, sizeof(tmp), "%s", err[0] != '\0' ? err : hsm_strerror(rc));
    snprintf(err, errlen, "%s: %s", uri, tmp);
}

int hsm_key_open(struct hsm_ctx *ctx, const char *uri_str, struct hsm_key **out, char *err, size_t errlen)
{
    P11KitUri *uri = NULL;
    struct hsm_key *key = NULL, *k;
    struct hsm_module *mod = NULL;
    struct hsm_token *tok = NULL;
    char *canon = NULL, *pin_value = NULL;
    const char *mpath, *mname, *psrc;
    CK_ATTRIBUTE *attrs, tmpl[4];
    CK_BBOOL on_token = CK_TRUE;
    CK_ULONG nattrs, nt = 0, count = 0;
    CK_OBJECT_CLASS priv = CKO_PRIVATE_KEY;
    CK_OBJECT_HANDLE objs[2];
    CK_RV rv;
    int r, rc = 0;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out != NULL)
        *out = NULL;
    if (ctx == NULL || ctx->magic != HSM_CTX_MAGIC || uri_str == NULL || out == NULL)
        return hsm_errf(err, errlen, HSM_E_ARG, "hsm_key_open: bad argument");

    uri = p11_kit_uri_new();
    if (uri == NULL)
        return HSM_E_NOMEM;
    r = p11_kit_uri_parse(uri_str, P11_KIT_URI_FOR_ANY, uri);
    if (r != P11_KIT_URI_OK) {
        /* Do not echo the string: it may hold a pin-value. */
        const char *m = p11_kit_uri_message(r);
        rc = hsm_errf(err, errlen, HSM_E_URI, "bad PKCS#11 URI (RFC 7512): %s", m != NULL ? m : "parse error");
        goto out;
    }
    if (p11_kit_uri_get_pin_value(uri) != NULL && (pin_value = strdup(p11_kit_uri_get_pin_value(uri))) == NULL) {
        rc = HSM_E_NOMEM;
        goto out;
    }
    if ((rc = uri_canonical(uri, &canon)) < 0)
        goto out;
    if (p11_kit_uri_any_unrecognized(uri)) {
        rc = hsm_errf(err, errlen, HSM_E_URI, "unknown attribute in the URI path (RFC 7512 2.3)");
        goto out;
    }
    for (k = ctx->keys; k != NULL; k = k->next) {
        if (strcmp(k->uri, canon) == 0) {
            *out = k;
            goto out;
        }
    }
    if (pin_value != NULL)
        hsm_log(LOG_WARNING, "%s: pin-value in the URI is discouraged (the PIN sits in the configuration); use pin-source",
                canon);

    /* The object attributes: type must be private if given; object= and id= as given. */
    attrs = p11_kit_uri_get_attributes(uri, &nattrs);
    tmpl[nt++] = (CK_ATTRIBUTE){CKA_CLASS, &priv, sizeof(priv)};
    for (CK_ULONG i = 0; i < nattrs; i++) {
        if (attrs[i].type == CKA_CLASS) {
            if (attrs[i].ulValueLen != sizeof(CK_OBJECT_CLASS) ||
                *(CK_OBJECT_CLASS *)attrs[i].pValue != CKO_PRIVATE_KEY) {
                rc = hsm_errf(err, errlen, HSM_E_URI, "type= must be \"private\": only private keys sign");
                goto out;
            }
        } else if ((attrs[i].type == CKA_LABEL || attrs[i].type == CKA_ID) && nt < 3) {
            tmpl[nt++] = attrs[i];
        }
    }
    /* Token objects only: the session copies workers make (session.c) must never count as a second match. */
    tmpl[nt++] = (CK_ATTRIBUTE){CKA_TOKEN, &on_token, sizeof(on_token)};

    mpath = p11_kit_uri_get_module_path(uri);
    mname = p11_kit_uri_get_module_name(uri);
    if (mpath == NULL && mname == NULL)
        mpath = ctx->default_module;
    psrc = p11_kit_uri_get_pin_source(uri);
    if (psrc == NULL && pin_value == NULL)
        psrc = ctx->default_pin_source;
    HSM_TRY(hsm_module_get(ctx, mpath, mname, &mod, err, errlen));
    HSM_TRY(hsm_token_get(ctx, mod, uri, psrc, pin_value, &tok, err, errlen));

    rv = find_objects(mod->fl, tok->main_sess, tmpl, nt, objs, &count);
    if (rv != CKR_OK) {
        rc = hsm_errf(err, errlen, hsm_ckr_is_lost(rv) ? HSM_E_SESSION : HSM_E_KEY, "C_FindObjects: %s",
                      hsm_ckr_name(rv));
        goto out;
    }
    if (count == 0) {
        rc = hsm_errf(err, errlen, HSM_E_KEY, "no private key matches");
        goto out;
    }
    if (count > 1) {
        rc = hsm_errf(err, errlen, HSM_E_KEY, "more than one private key matches; add id= or a unique object=");
        goto out;
    }
    /* Another URI naming the same key object gives the same key. */
    for (k = ctx->keys; k != NULL; k = k->next) {
        if (k->tok == tok && k->main_h == objs[0]) {
            *out = k;
            goto out;
        }
    }

    key = calloc(1, sizeof(*key));
    if (key == NULL) {
        rc = HSM_E_NOMEM;
        goto out;
    }
    key->magic = HSM_KEY_MAGIC;
    key->ctx = ctx;
    key->tok = tok;
    key->main_h = objs[0];
    key->uri = canon;
    canon = NULL;
    HSM_TRY(key_describe(key, err, errlen));

    if (key->type == HSM_KEY_EC)
        hsm_log(LOG_INFO, "key %s: EC P-%u; ECDSA: %s", key->uri, key->bits, hsm_key_path(key, HSM_SIG_ECDSA));
    else
        hsm_log(LOG_INFO, "key %s: RSA-%u; PKCS#1 v1.5: %s; PSS: %s", key->uri, key->bits,
                hsm_key_path(key, HSM_SIG_RSA_PKCS1), hsm_key_path(key, HSM_SIG_RSA_PSS));
    key->next = ctx->keys;
    ctx->keys = key;
    *out = key;
    key = NULL;
out:
    if (rc < 0 && (canon != NULL || key != NULL))
        err_prefix(err, errlen, canon != NULL ? canon : key->uri, rc);
    else if (rc < 0 && err != NULL && errlen > 0 && err[0] == '\0')
        hsm_errf(err, errlen, rc, "%s", hsm_strerror(rc));
    hsm_key_free(key);
    free(canon);
    if (pin_value != NULL) {
        hsm_wipe(pin_value, strlen(pin_value));
        free(pin_value);
    }
    p11_kit_uri_free(uri);
    return rc;
}

enum hsm_key_type hsm_key_type(const struct hsm_key *key)
{
    return key != NULL ? key->type : 0;
}

unsigned hsm_key_bits(const struct hsm_key *key)
{
    return key != NULL ? key->bits : 0;
}

const uint8_t *hsm_key_spki(const struct hsm_key *key, size_t *len)
{
    *len = key != NULL ? key->spki_len : 0;
    return key != NULL ? key->spki : NULL;
}

const char *hsm_key_uri(const struct hsm_key *key)
{
    return key != NULL ? key->uri : "";
}
