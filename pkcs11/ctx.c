/* ctx.c - the HSM context: defaults, what it owns, statistics. */
#include <stdlib.h>
#include <string.h>

#include "pkcs11/internal.h"

/* Context serials name contexts in thread-local attachments; 0 means "none". */
static atomic_uint_fast64_t hsm_ctx_serials;

int hsm_ctx_new(struct hsm_ctx **out, const char *default_module, const char *default_pin_source, char *err,
                size_t errlen)
{
    struct hsm_ctx *ctx;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out == NULL)
        return hsm_errf(err, errlen, HSM_E_ARG, "hsm_ctx_new: no output pointer");
    *out = NULL;
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return hsm_errf(err, errlen, HSM_E_NOMEM, "out of memory");
    ctx->magic = HSM_CTX_MAGIC;
    ctx->serial = atomic_fetch_add(&hsm_ctx_serials, 1) + 1;
    for (unsigned i = 0; i < HSM_MAX_THREADS; i++)
        atomic_init(&ctx->threads[i].in_use, 0);
    atomic_init(&ctx->signs, 0);
    atomic_init(&ctx->sign_errors, 0);
    atomic_init(&ctx->session_lost, 0);
    atomic_init(&ctx->reopened, 0);
    if ((default_module != NULL && (ctx->default_module = strdup(default_module)) == NULL) ||
        (default_pin_source != NULL && (ctx->default_pin_source = strdup(default_pin_source)) == NULL)) {
        hsm_ctx_free(ctx);
        return hsm_errf(err, errlen, HSM_E_NOMEM, "out of memory");
    }
    *out = ctx;
    return 0;
}

void hsm_ctx_free(struct hsm_ctx *ctx)
{
    if (ctx == NULL || ctx->magic != HSM_CTX_MAGIC)
        return;
    hsm_thread_forget(ctx);
    while (ctx->keys != NULL) {
        struct hsm_key *k = ctx->keys;
        ctx->keys = k->next;
        hsm_key_free(k);
    }
    /* Sessions before modules: finalizing a module invalidates every handle. */
    while (ctx->tokens != NULL) {
        struct hsm_token *t = ctx->tokens;
        ctx->tokens = t->next;
        hsm_token_free(t);
    }
    while (ctx->modules != NULL) {
        struct hsm_module *m = ctx->modules;
        ctx->modules = m->next;
        hsm_module_free(m);
    }
    free(ctx->default_module);
    ctx->default_module = NULL;
    free(ctx->default_pin_source);
    ctx->default_pin_source = NULL;
    ctx->magic = 0;
    free(ctx);
}

void hsm_stats_get(const struct hsm_ctx *ctx, struct hsm_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (ctx == NULL || ctx->magic != HSM_CTX_MAGIC)
        return;
    out->signs = atomic_load_explicit(&ctx->signs, memory_order_relaxed);
    out->sign_errors = atomic_load_explicit(&ctx->sign_errors, memory_order_relaxed);
    for (int i = 0; i < HSM_LAT_BUCKETS; i++)
        out->lat_buckets[i] = atomic_load_explicit(&ctx->lat_buckets[i], memory_order_relaxed);
    out->lat_sum_us = atomic_load_explicit(&ctx->lat_sum_us, memory_order_relaxed);
    out->session_lost = atomic_load_explicit(&ctx->session_lost, memory_order_relaxed);
    out->reopened = atomic_load_explicit(&ctx->reopened, memory_order_relaxed);
}
