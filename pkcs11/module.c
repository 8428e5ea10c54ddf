/* module.c - PKCS#11 modules loaded through p11-kit.
 *
 * Modules are loaded "managed" (flags 0): p11-kit initialises them with CKF_OS_LOCKING_OK, shares one
 * underlying initialisation between users in the process, and on finalize closes the sessions this
 * context opened. A module is named by path (module-path, or the context default) or by its p11-kit
 * registered name (module-name, RFC 7512 2.4 query attributes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <p11-kit/p11-kit.h>

#include "pkcs11/internal.h"

void hsm_module_free(struct hsm_module *mod)
{
    if (mod == NULL)
        return;
    if (mod->fl != NULL) {
        CK_RV rv = p11_kit_module_finalize(mod->fl);
        if (rv != CKR_OK)
            hsm_log(LOG_WARNING, "module %s: finalize: %s", mod->ident, hsm_ckr_name(rv));
        /* A module picked from the registry array is released with the array. */
        if (mod->all == NULL)
            p11_kit_module_release(mod->fl);
        mod->fl = NULL;
    }
    if (mod->all != NULL) {
        p11_kit_modules_release(mod->all);
        mod->all = NULL;
    }
    free(mod->ident);
    mod->ident = NULL;
    free(mod);
}

int hsm_module_get(struct hsm_ctx *ctx, const char *path, const char *name, struct hsm_module **out,
                   char *err, size_t errlen)
{
    struct hsm_module *mod = NULL;
    char ident[4096];
    CK_RV rv;
    int rc = 0;

    *out = NULL;
    if (path != NULL)
        snprintf(ident, sizeof(ident), "path:%s", path);
    else if (name != NULL)
        snprintf(ident, sizeof(ident), "name:%s", name);
    else
        return hsm_errf(err, errlen, HSM_E_URI,
                        "no PKCS#11 module: the URI has no module-path or module-name and no default module is set");

    for (mod = ctx->modules; mod != NULL; mod = mod->next) {
        if (strcmp(mod->ident, ident) == 0) {
            *out = mod;
            return 0;
        }
    }

    mod = calloc(1, sizeof(*mod));
    if (mod == NULL || (mod->ident = strdup(ident)) == NULL) {
        rc = HSM_E_NOMEM;
        goto out;
    }
    if (path != NULL) {
        mod->fl = p11_kit_module_load(path, 0);
        if (mod->fl == NULL) {
            const char *m = p11_kit_message();
            rc = hsm_errf(err, errlen, HSM_E_MODULE, "cannot load PKCS#11 module %s: %s", path,
                          m != NULL ? m : "unknown error");
            goto out;
        }
    } else {
        mod->all = p11_kit_modules_load(NULL, 0);
        if (mod->all == NULL) {
            const char *m = p11_kit_message();
            rc = hsm_errf(err, errlen, HSM_E_MODULE, "cannot load the p11-kit registered modules: %s",
                          m != NULL ? m : "unknown error");
            goto out;
        }
        mod->fl = p11_kit_module_for_name(mod->all, name);
        if (mod->fl == NULL) {
            rc = hsm_errf(err, errlen, HSM_E_MODULE,
                          "no PKCS#11 module named \"%s\" is registered with p11-kit", name);
            goto out;
        }
    }
    rv = p11_kit_module_initialize(mod->fl);
    if (rv != CKR_OK) {
        rc = hsm_errf(err, errlen, HSM_E_MODULE, "PKCS#11 module %s: C_Initialize: %s", ident + 5,
                      hsm_ckr_name(rv));
        /* Not initialised: release without finalizing. */
        if (mod->all == NULL)
            p11_kit_module_release(mod->fl);
        mod->fl = NULL;
        goto out;
    }
    hsm_log(LOG_DEBUG, "loaded PKCS#11 module %s", ident + 5);
    mod->next = ctx->modules;
    ctx->modules = mod;
    *out = mod;
    mod = NULL;
out:
    hsm_module_free(mod);
    return rc;
}
