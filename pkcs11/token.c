/* token.c - finding a token by RFC 7512 URI, its main session, login, mechanisms.
 *
 * The slot is found by matching C_GetTokenInfo against the URI ourselves (p11-kit's matcher over
 * C_GetSlotList(TRUE)), not through wolfSSL, whose lookup by label fails on SoftHSM's slot ids
 * (DESIGN.md fact 2). Once found, a token is re-found by its identity (label, manufacturer, model,
 * serial): after a removal the slot id may change, the identity does not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "pkcs11/internal.h"

/* Printable token label (CK_TOKEN_INFO pads with spaces, PKCS#11 v2.40 3.2). */
static const char *token_label(const CK_TOKEN_INFO *ti, char buf[33])
{
    size_t n = sizeof(ti->label);

    memcpy(buf, ti->label, n);
    while (n > 0 && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
    return buf;
}

static int token_same(const CK_TOKEN_INFO *a, const CK_TOKEN_INFO *b)
{
    return memcmp(a->label, b->label, sizeof(a->label)) == 0 &&
           memcmp(a->manufacturerID, b->manufacturerID, sizeof(a->manufacturerID)) == 0 &&
           memcmp(a->model, b->model, sizeof(a->model)) == 0 &&
           memcmp(a->serialNumber, b->serialNumber, sizeof(a->serialNumber)) == 0;
}

/* Scans the slots with a present token. With uri: counts initialised tokens matching its module,
 * slot and token attributes. With ident: counts tokens with that identity. The first match goes to
 * *slot / *info. A failing module is HSM_E_SESSION: the caller decides what that means. */
static int token_scan(struct hsm_module *mod, const P11KitUri *uri, const CK_TOKEN_INFO *ident,
                      CK_SLOT_ID *slot, CK_TOKEN_INFO *info, unsigned *count, char *err, size_t errlen)
{
    CK_FUNCTION_LIST *f = mod->fl;
    CK_SLOT_ID *slots = NULL;
    CK_ULONG n = 0;
    CK_RV rv;
    int rc = 0;

    *count = 0;
    if (uri != NULL) {
        CK_INFO mi;

        rv = f->C_GetInfo(&mi);
        if (rv != CKR_OK) {
            rc = hsm_errf(err, errlen, HSM_E_SESSION, "C_GetInfo: %s", hsm_ckr_name(rv));
            goto out;
        }
        if (!p11_kit_uri_match_module_info(uri, &mi))
            goto out;
    }
    /* The list may grow between the two calls (a token inserted): retry on CKR_BUFFER_TOO_SMALL. */
    for (int tries = 0;; tries++) {
        rv = f->C_GetSlotList(CK_TRUE, NULL, &n);
        if (rv != CKR_OK) {
            rc = hsm_errf(err, errlen, HSM_E_SESSION, "C_GetSlotList: %s", hsm_ckr_name(rv));
            goto out;
        }
        if (n == 0)
            goto out;
        free(slots);
        slots = calloc(n, sizeof(*slots));
        if (slots == NULL) {
            rc = HSM_E_NOMEM;
            goto out;
        }
        rv = f->C_GetSlotList(CK_TRUE, slots, &n);
        if (rv == CKR_OK)
            break;
        if (rv != CKR_BUFFER_TOO_SMALL || tries >= 3) {
            rc = hsm_errf(err, errlen, HSM_E_SESSION, "C_GetSlotList: %s", hsm_ckr_name(rv));
            goto out;
        }
    }
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;

        if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;   /* removed meanwhile */
        if (uri != NULL) {
            CK_SLOT_INFO si;
            CK_SLOT_ID want = p11_kit_uri_get_slot_id((P11KitUri *)uri);

            if (!(ti.flags & CKF_TOKEN_INITIALIZED))
                continue;
            if (want != (CK_SLOT_ID)-1 && want != slots[i])
                continue;
            if (f->C_GetSlotInfo(slots[i], &si) != CKR_OK || !p11_kit_uri_match_slot_info(uri, &si))
                continue;
            if (!p11_kit_uri_match_token_info(uri, &ti))
                continue;
        } else if (!token_same(&ti, ident)) {
            continue;
        }
        if ((*count)++ == 0) {
            *slot = slots[i];
            *info = ti;
        }
    }
out:
    free(slots);
    return rc;
}

int hsm_token_find_slot(struct hsm_token *tok, CK_SLOT_ID *slot, char *err, size_t errlen)
{
    CK_TOKEN_INFO ti;
    unsigned count;
    char label[33];
    int rc;

    rc = token_scan(tok->mod, NULL, &tok->info, slot, &ti, &count, err, errlen);
    if (rc < 0)
        return rc;
    if (count == 0)
        return hsm_errf(err, errlen, HSM_E_SESSION, "token \"%s\" is not present",
                        token_label(&tok->info, label));
    return 0;
}

/* Which signing and key generation mechanisms the token offers, with the flags that matter
 * (PKCS#11 v2.40 5.5 C_GetMechanismList / C_GetMechanismInfo). */
static unsigned token_mechs(CK_FUNCTION_LIST *f, CK_SLOT_ID slot)
{
    static const struct {
        CK_MECHANISM_TYPE m;
        CK_FLAGS need;
        unsigned bit;
    } known[] = {
        {CKM_ECDSA, CKF_SIGN, HSM_MECH_ECDSA},
        {CKM_RSA_PKCS, CKF_SIGN, HSM_MECH_RSA_PKCS},
        {CKM_RSA_X_509, CKF_SIGN, HSM_MECH_RSA_X509},
        {CKM_RSA_PKCS_PSS, CKF_SIGN, HSM_MECH_RSA_PSS},
        {CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR, HSM_MECH_EC_GEN},
        {CKM_RSA_PKCS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR, HSM_MECH_RSA_GEN},
    };
    CK_MECHANISM_TYPE *list = NULL;
    CK_ULONG n = 0;
    unsigned bits = 0;

    if (f->C_GetMechanismList(slot, NULL, &n) != CKR_OK || n == 0)
        goto out;
    list = calloc(n, sizeof(*list));
    if (list == NULL || f->C_GetMechanismList(slot, list, &n) != CKR_OK)
        goto out;
    for (CK_ULONG i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
            CK_MECHANISM_INFO mi;

            if (list[i] != known[k].m)
                continue;
            if (f->C_GetMechanismInfo(slot, list[i], &mi) == CKR_OK && (mi.flags & known[k].need))
                bits |= known[k].bit;
        }
    }
out:
    free(list);
    return bits;
}

int hsm_token_login(struct hsm_token *tok, CK_SESSION_HANDLE h, char *err, size_t errlen)
{
    CK_FUNCTION_LIST *f = tok->mod->fl;
    CK_SESSION_INFO si;
    char pin[HSM_PIN_MAX];
    char label[33];
    size_t len = 0;
    CK_RV rv;
    int rc = 0;

    token_label(&tok->info, label);
    if (atomic_load(&tok->pin_refused))
        return hsm_errf(err, errlen, HSM_E_PIN,
                        "token \"%s\" refused the PIN earlier; not trying again (fix the PIN and restart)",
                        label);
    /* Login state is per token and application (PKCS#11 v2.40 5.6): skip reading the PIN when
     * another session of ours is already logged in. */
    rv = f->C_GetSessionInfo(h, &si);
    if (rv != CKR_OK)
        return hsm_errf(err, errlen, hsm_ckr_is_lost(rv) ? HSM_E_SESSION : HSM_E_TOKEN,
                        "token \"%s\": C_GetSessionInfo: %s", label, hsm_ckr_name(rv));
    if (si.state == CKS_RO_USER_FUNCTIONS || si.state == CKS_RW_USER_FUNCTIONS ||
        si.state == CKS_RW_SO_FUNCTIONS || !tok->login_needed)
        return 0;

    if (tok->pin_source != NULL) {
        HSM_TRY(hsm_pin_read(tok->pin_source, pin, sizeof(pin), &len, err, errlen));
    } else if (tok->pin_value != NULL) {
        len = strlen(tok->pin_value);
        if (len >= sizeof(pin)) {
            rc = hsm_errf(err, errlen, HSM_E_PIN_SOURCE, "pin-value too long");
            goto out;
        }
        memcpy(pin, tok->pin_value, len + 1);
    } else {
        rc = hsm_errf(err, errlen, HSM_E_PIN_SOURCE,
                      "token \"%s\" requires a login and no pin source is configured", label);
        goto out;
    }
    rv = f->C_Login(h, CKU_USER, (CK_UTF8CHAR *)pin, (CK_ULONG)len);
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN)
        goto out;
    if (hsm_ckr_is_pin(rv)) {
        /* Never retried: each attempt counts towards the token's PIN lockout. */
        atomic_store(&tok->pin_refused, 1);
        rc = hsm_errf(err, errlen, HSM_E_PIN, "token \"%s\" refused the PIN from %s: %s", label,
                      tok->pin_source != NULL ? tok->pin_source : "the URI's pin-value", hsm_ckr_name(rv));
        hsm_log(LOG_ERR, "token \"%s\" refused the PIN (%s); no further login attempts", label,
                hsm_ckr_name(rv));
    } else if (rv == CKR_USER_PIN_NOT_INITIALIZED) {
        rc = hsm_errf(err, errlen, HSM_E_PIN, "token \"%s\": the user PIN is not initialised", label);
    } else {
        rc = hsm_errf(err, errlen, hsm_ckr_is_lost(rv) ? HSM_E_SESSION : HSM_E_TOKEN,
                      "token \"%s\": C_Login: %s", label, hsm_ckr_name(rv));
    }
out:
    hsm_wipe(pin, sizeof(pin));
    return rc;
}

/* Opens the main session on tok->slot and logs it in. */
static int token_main_open(struct hsm_token *tok, char *err, size_t errlen)
{
    CK_FUNCTION_LIST *f = tok->mod->fl;
    char label[33];
    CK_RV rv;
    int rc;

    rv = f->C_OpenSession(tok->slot, CKF_SERIAL_SESSION, NULL, NULL, &tok->main_sess);
    if (rv != CKR_OK)
        return hsm_errf(err, errlen, hsm_ckr_is_lost(rv) ? HSM_E_SESSION : HSM_E_TOKEN,
                        "token \"%s\": C_OpenSession: %s", token_label(&tok->info, label), hsm_ckr_name(rv));
    tok->main_open = 1;
    rc = hsm_token_login(tok, tok->main_sess, err, errlen);
    if (rc < 0) {
        f->C_CloseSession(tok->main_sess);
        tok->main_open = 0;
    }
    return rc;
}

int hsm_token_main_ensure(struct hsm_token *tok, char *err, size_t errlen)
{
    CK_FUNCTION_LIST *f = tok->mod->fl;
    CK_SESSION_INFO si;
    CK_RV rv;
    int rc;

    if (tok->main_open) {
        rv = f->C_GetSessionInfo(tok->main_sess, &si);
        if (rv == CKR_OK)
            return hsm_token_login(tok, tok->main_sess, err, errlen);
        if (!hsm_ckr_is_lost(rv))
            return hsm_errf(err, errlen, HSM_E_TOKEN, "C_GetSessionInfo: %s", hsm_ckr_name(rv));
        f->C_CloseSession(tok->main_sess);   /* whatever is left of it */
        tok->main_open = 0;
    }
    rc = hsm_token_find_slot(tok, &tok->slot, err, errlen);
    if (rc < 0)
        return rc;
    return token_main_open(tok, err, errlen);
}

int hsm_token_get(struct hsm_ctx *ctx, struct hsm_module *mod, P11KitUri *uri, const char *pin_source,
                  const char *pin_value, struct hsm_token **out, char *err, size_t errlen)
{
    struct hsm_token *tok = NULL;
    CK_TOKEN_INFO ti;
    CK_SLOT_ID slot = 0;
    unsigned count;
    char label[33];
    int rc;

    *out = NULL;
    rc = token_scan(mod, uri, NULL, &slot, &ti, &count, err, errlen);
    if (rc < 0)
        return rc == HSM_E_SESSION ? HSM_E_TOKEN : rc;
    if (count == 0)
        return hsm_errf(err, errlen, HSM_E_TOKEN, "no initialised token in module %s matches the URI",
                        mod->ident + 5);
    if (count > 1)
        return hsm_errf(err, errlen, HSM_E_TOKEN,
                        "%u tokens in module %s match the URI; name one with token= or serial=", count,
                        mod->ident + 5);

    for (tok = ctx->tokens; tok != NULL; tok = tok->next) {
        if (tok->mod == mod && token_same(&tok->info, &ti)) {
            *out = tok;
            return hsm_token_main_ensure(tok, err, errlen);
        }
    }

    tok = calloc(1, sizeof(*tok));
    if (tok == NULL)
        return HSM_E_NOMEM;
    tok->ctx = ctx;
    tok->mod = mod;
    tok->info = ti;
    tok->slot = slot;
    atomic_init(&tok->pin_refused, 0);
    if ((pin_source != NULL && (tok->pin_source = strdup(pin_source)) == NULL) ||
        (pin_value != NULL && (tok->pin_value = strdup(pin_value)) == NULL)) {
        rc = HSM_E_NOMEM;
        goto out;
    }
    tok->login_needed = (ti.flags & CKF_LOGIN_REQUIRED) || pin_source != NULL || pin_value != NULL;
    tok->mechs = token_mechs(mod->fl, slot);
    rc = token_main_open(tok, err, errlen);
    if (rc == HSM_E_SESSION)
        rc = HSM_E_TOKEN;
    if (rc < 0)
        goto out;
    hsm_log(LOG_INFO, "token \"%s\" (module %s, slot %lu) opened", token_label(&ti, label), mod->ident + 5,
            (unsigned long)slot);
    tok->next = ctx->tokens;
    __atomic_store_n(&ctx->tokens, tok, __ATOMIC_RELEASE);    /* hsm_ctx_probe reads it from other threads */
    *out = tok;
    tok = NULL;
out:
    hsm_token_free(tok);
    return rc;
}

void hsm_token_free(struct hsm_token *tok)
{
    CK_FUNCTION_LIST *f;

    if (tok == NULL)
        return;
    f = tok->mod->fl;
    /* Sessions of threads that did not detach: their threads are gone by now (hsm.h contract). */
    for (unsigned i = 0; i < HSM_MAX_THREADS; i++) {
        if (tok->sess[i].state == HSM_SESS_OPEN)
            f->C_CloseSession(tok->sess[i].h);
        tok->sess[i].state = HSM_SESS_NONE;
    }
    /* Closing our last session logs the token out (PKCS#11 v2.40 5.6 C_CloseSession). No explicit
     * C_Logout: another context of this process sharing the module would be logged out too. */
    if (tok->main_open)
        f->C_CloseSession(tok->main_sess);
    tok->main_open = 0;
    free(tok->pin_source);
    tok->pin_source = NULL;
    if (tok->pin_value != NULL) {
        hsm_wipe(tok->pin_value, strlen(tok->pin_value));
        free(tok->pin_value);
        tok->pin_value = NULL;
    }
    free(tok);
}

int hsm_ctx_probe(struct hsm_ctx *ctx, char *missing, size_t cap)
{
    char err[256], label[33];
    size_t used = 0;
    int gone = 0;

    if (missing != NULL && cap > 0)
        missing[0] = '\0';
    if (ctx == NULL || ctx->magic != HSM_CTX_MAGIC)
        return 0;
    /* The list only grows, at key opening on the main thread (start, reload), by prepending: a
     * reader sees the old head or the new one, both whole. */
    for (struct hsm_token *tok = __atomic_load_n(&ctx->tokens, __ATOMIC_ACQUIRE); tok != NULL; tok = tok->next) {
        CK_SLOT_ID slot;
        if (hsm_token_find_slot(tok, &slot, err, sizeof(err)) == 0)
            continue;
        gone++;
        if (missing != NULL && used < cap) {
            int n = snprintf(missing + used, cap - used, "%s%s", used > 0 ? ", " : "", token_label(&tok->info, label));
            used = n < 0 ? cap : used + (size_t)n;
        }
    }
    return gone;
}
