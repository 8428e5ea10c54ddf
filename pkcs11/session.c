/* session.c - one PKCS#11 session per worker thread per token, and its recovery after a loss.
 *
 * A session is never used by two threads (SoftHSM corrupts its heap; PKCS#11 v2.40 6.7.1 leaves
 * concurrent use of one session to the application). Each thread names itself with the index it
 * gave hsm_thread_attach; tok->sess[index] and key->th[index] belong to that thread alone, so the
 * signing path takes no lock. After a loss the next signature on that thread re-finds the slot
 * (its id may change), opens a new session, logs in if the token is not logged in any more and
 * re-finds the key handles, at most once per 100 ms per thread. */
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "pkcs11/internal.h"

/* A thread may be attached to a few contexts at once (tests, a CLI next to a server); a context is
 * named by its serial, never by its address, which a later context may reuse. */
#define HSM_TLS_SLOTS 8
static _Thread_local struct {
    uint64_t serial;             /* 0: free */
    unsigned index;
} hsm_tls[HSM_TLS_SLOTS];

int hsm_thread_index(const struct hsm_ctx *ctx)
{
    for (int i = 0; i < HSM_TLS_SLOTS; i++)
        if (hsm_tls[i].serial == ctx->serial)
            return (int)hsm_tls[i].index;
    return -1;
}

static int ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void retry_later(struct hsm_thread *th)
{
    hsm_monotonic(&th->next_try);
    th->next_try.tv_nsec += HSM_RETRY_NS;
    if (th->next_try.tv_nsec >= 1000000000L) {
        th->next_try.tv_sec++;
        th->next_try.tv_nsec -= 1000000000L;
    }
}

static const char *tok_label(const struct hsm_token *tok, char buf[33])
{
    size_t n = sizeof(tok->info.label);

    memcpy(buf, tok->info.label, n);
    while (n > 0 && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
    return buf;
}

void hsm_tsess_lost(struct hsm_token *tok, unsigned idx, CK_RV rv)
{
    struct hsm_tsess *ts = &tok->sess[idx];
    char label[33];

    if (ts->state != HSM_SESS_OPEN)
        return;
    /* Close what is left: after USER_NOT_LOGGED_IN or a vanished key the session itself is valid. */
    tok->mod->fl->C_CloseSession(ts->h);
    ts->state = HSM_SESS_LOST;
    ts->lost = 1;
    atomic_fetch_add_explicit(&tok->ctx->session_lost, 1, memory_order_relaxed);
    retry_later(&tok->ctx->threads[idx]);
    hsm_log(LOG_WARNING, "token \"%s\": thread %u lost its session (%s); reopening at a later signature",
            tok_label(tok, label), idx, hsm_ckr_name(rv));
}

int hsm_tsess_ready(struct hsm_token *tok, unsigned idx)
{
    struct hsm_tsess *ts = &tok->sess[idx];
    struct hsm_thread *th = &tok->ctx->threads[idx];
    CK_FUNCTION_LIST *f = tok->mod->fl;
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_SLOT_ID slot;
    struct timespec now;
    char err[256] = "", label[33];
    CK_RV rv;
    int rc = 0, opened = 0;

    if (ts->state == HSM_SESS_OPEN)
        return 0;
    if (atomic_load(&tok->pin_refused))
        return HSM_E_PIN;
    if (ts->state == HSM_SESS_LOST) {
        hsm_monotonic(&now);
        if (ts_before(&now, &th->next_try))
            return HSM_E_SESSION;
    }
    HSM_TRY(hsm_token_find_slot(tok, &slot, err, sizeof(err)));
    rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h);
    if (rv != CKR_OK) {
        rc = hsm_errf(err, sizeof(err), hsm_ckr_is_lost(rv) ? HSM_E_SESSION : HSM_E_TOKEN, "C_OpenSession: %s",
                      hsm_ckr_name(rv));
        goto out;
    }
    opened = 1;
    HSM_TRY(hsm_token_login(tok, h, err, sizeof(err)));
    ts->h = h;
    ts->state = HSM_SESS_OPEN;
    /* Never 0, so that a key handle never found (epoch 0) is never taken for current. */
    if (++ts->epoch == 0)
        ts->epoch = 1;
    ts->fail_logged = 0;
    if (ts->lost) {
        ts->lost = 0;
        atomic_fetch_add_explicit(&tok->ctx->reopened, 1, memory_order_relaxed);
        hsm_log(LOG_INFO, "token \"%s\": thread %u reopened its session", tok_label(tok, label), idx);
    }
    opened = 0;
out:
    if (opened)
        f->C_CloseSession(h);
    if (rc < 0) {
        ts->state = HSM_SESS_LOST;
        retry_later(th);
        hsm_log(ts->fail_logged ? LOG_DEBUG : rc == HSM_E_SESSION ? LOG_WARNING : LOG_ERR,
                "token \"%s\": thread %u cannot open a session: %s", tok_label(tok, label), idx,
                err[0] != '\0' ? err : hsm_strerror(rc));
        ts->fail_logged = 1;
    }
    return rc;
}

int hsm_key_th_ready(struct hsm_key *key, unsigned idx, CK_OBJECT_HANDLE *out)
{
    struct hsm_tsess *ts = &key->tok->sess[idx];
    struct hsm_key_th *kt = &key->th[idx];
    CK_OBJECT_HANDLE h;
    CK_RV rv = CKR_OK;
    int rc;

    if (kt->epoch == ts->epoch) {
        *out = kt->h;
        return 0;
    }
    if (kt->missing) {
        struct timespec now;

        hsm_monotonic(&now);
        if (ts_before(&now, &key->ctx->threads[idx].next_try))
            return HSM_E_KEY;
    }
    /* The only lookup: once per key per (re)opened session. */
    rc = hsm_key_find_handle(key, ts->h, &h, &rv);
    if (rc == HSM_E_SESSION) {
        hsm_tsess_lost(key->tok, idx, rv);
        return rc;
    }
    if (rc < 0) {
        /* Deleted, or not visible any more: the token may get it back (a swap), so retry, slowly. */
        if (!kt->missing)
            hsm_log(LOG_ERR, "key %s: thread %u cannot find it in the token any more", key->uri, idx);
        kt->missing = 1;
        retry_later(&key->ctx->threads[idx]);
        return rc;
    }
    kt->missing = 0;
    /* A session copy of the key (C_CopyObject, CKA_TOKEN false: it stays inside the token, as
     * sensitive and unextractable as the original, and dies with the session). SoftHSM re-reads and
     * locks a token object's file at every use; a session object lives in memory, which roughly
     * doubles the signatures per second. A token whose policy refuses the copy keeps the original. */
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE copy_tmpl[] = { { CKA_TOKEN, &no, sizeof(no) } };
    CK_OBJECT_HANDLE copy = CK_INVALID_HANDLE;
    hsm_objects_lock();
    CK_RV crv = key->tok->mod->fl->C_CopyObject(ts->h, h, copy_tmpl, 1, &copy);
    hsm_objects_unlock();
    if (crv == CKR_OK && copy != CK_INVALID_HANDLE) {
        if (atomic_exchange(&key->copy_logged, 1) == 0)
            hsm_log(LOG_INFO, "key %s: each worker signs with its own session copy of the key", key->uri);
        h = copy;
    } else if (hsm_ckr_is_lost(crv)) {
        hsm_tsess_lost(key->tok, idx, crv);
        return HSM_E_SESSION;
    } else if (atomic_exchange(&key->copy_logged, 1) == 0) {
        hsm_log(LOG_INFO, "key %s: the token refuses a session copy (%s); signing with the token object",
                key->uri, hsm_ckr_name(crv));
    }
    kt->h = h;
    kt->epoch = ts->epoch;
    *out = h;
    return 0;
}

void hsm_thread_detach(struct hsm_ctx *ctx)
{
    int idx;

    if (ctx == NULL || ctx->magic != HSM_CTX_MAGIC || (idx = hsm_thread_index(ctx)) < 0)
        return;
    for (struct hsm_token *tok = ctx->tokens; tok != NULL; tok = tok->next) {
        struct hsm_tsess *ts = &tok->sess[idx];

        if (ts->state == HSM_SESS_OPEN)
            tok->mod->fl->C_CloseSession(ts->h);
        /* The epoch stays: key handles cached under it must never look current again. */
        ts->state = HSM_SESS_NONE;
        ts->lost = 0;
    }
    for (int i = 0; i < HSM_TLS_SLOTS; i++)
        if (hsm_tls[i].serial == ctx->serial)
            hsm_tls[i].serial = 0;
    atomic_store(&ctx->threads[idx].in_use, 0);
}

int hsm_thread_attach(struct hsm_ctx *ctx, unsigned index, int eager)
{
    int cur, expected = 0, slot = -1, rc = 0;

    if (ctx == NULL || ctx->magic != HSM_CTX_MAGIC || index >= HSM_MAX_THREADS)
        return HSM_E_ARG;
    cur = hsm_thread_index(ctx);
    if (cur >= 0 && (unsigned)cur != index)
        hsm_thread_detach(ctx);
    if (cur < 0 || (unsigned)cur != index) {
        /* An index is owned by one thread at a time. */
        if (!atomic_compare_exchange_strong(&ctx->threads[index].in_use, &expected, 1))
            return HSM_E_ARG;
        for (int i = 0; i < HSM_TLS_SLOTS && slot < 0; i++)
            if (hsm_tls[i].serial == 0)
                slot = i;
        if (slot < 0) {
            atomic_store(&ctx->threads[index].in_use, 0);
            return HSM_E_ARG;
        }
        hsm_tls[slot].serial = ctx->serial;
        hsm_tls[slot].index = index;
        ctx->threads[index].next_try = (struct timespec){0, 0};
    }
    if (!eager)
        return 0;
    /* Eager: sessions and key handles now, so the first handshake pays nothing. A failure is reported
     * but the thread stays attached: later signatures retry. */
    for (struct hsm_token *tok = ctx->tokens; tok != NULL && rc == 0; tok = tok->next)
        rc = hsm_tsess_ready(tok, index);
    for (struct hsm_key *key = ctx->keys; key != NULL && rc == 0; key = key->next) {
        CK_OBJECT_HANDLE h;

        rc = hsm_tsess_ready(key->tok, index);
        if (rc == 0)
            rc = hsm_key_th_ready(key, index, &h);
    }
    return rc;
}

void hsm_thread_forget(const struct hsm_ctx *ctx)
{
    for (int i = 0; i < HSM_TLS_SLOTS; i++)
        if (hsm_tls[i].serial == ctx->serial)
            hsm_tls[i].serial = 0;
}
