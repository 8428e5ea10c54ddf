/* p11shim.c - a test-only PKCS#11 module that forwards to a real one and can lose the token.
 *
 * Environment:
 *   P11SHIM_MODULE      the real module (default /usr/lib/softhsm/libsofthsm2.so)
 *   P11SHIM_FAULT       a file name: while that file exists the token is "removed". The first call that
 *                       notices it closes every real session (C_CloseAllSessions on every slot), so the
 *                       sessions the application holds are really gone; then C_OpenSession, C_Login,
 *                       C_SignInit and C_Sign return CKR_DEVICE_REMOVED and C_GetSlotList(TRUE) reports
 *                       no slot. Once the file is gone everything forwards again.
 *   P11SHIM_HIDE_MECHS  comma-separated mechanism numbers (hex with 0x, or decimal) the token pretends
 *                       not to have: left out of C_GetMechanismList, CKR_MECHANISM_INVALID elsewhere.
 *                       Lets tests take the fallback paths (CKM_RSA_X_509, no CKM_RSA_PKCS_PSS).
 * The file is checked with stat() on every call: cheap enough for tests, and it needs no signal. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <p11-kit/pkcs11.h>

#define SHIM_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define SHIM_MAX_HIDDEN 16

static pthread_once_t shim_once = PTHREAD_ONCE_INIT;
static CK_FUNCTION_LIST *real;
static char fault_path[4096];
static CK_MECHANISM_TYPE hidden[SHIM_MAX_HIDDEN];
static size_t nhidden;
static atomic_int faulted;

/* Read at each C_Initialize, so a test can change them between two loads of the module. */
static void shim_read_env(void)
{
    const char *fault = getenv("P11SHIM_FAULT");
    const char *hide = getenv("P11SHIM_HIDE_MECHS");

    fault_path[0] = '\0';
    if (fault != NULL)
        snprintf(fault_path, sizeof(fault_path), "%s", fault);
    atomic_store(&faulted, 0);
    nhidden = 0;
    while (hide != NULL && *hide != '\0' && nhidden < SHIM_MAX_HIDDEN) {
        char *end;
        unsigned long m = strtoul(hide, &end, 0);

        if (end == hide)
            break;
        hidden[nhidden++] = m;
        hide = *end == ',' ? end + 1 : end;
    }
}

static void shim_load(void)
{
    const char *path = getenv("P11SHIM_MODULE");
    CK_C_GetFunctionList get;
    void *dl;

    if (path == NULL || path[0] == '\0')
        path = SHIM_DEFAULT_MODULE;
    /* Never dlclosed: the real module lives as long as the process, like the shim itself. */
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        fprintf(stderr, "p11shim: cannot load %s: %s\n", path, dlerror());
        return;
    }
    *(void **)&get = dlsym(dl, "C_GetFunctionList");
    if (get == NULL || get(&real) != CKR_OK)
        real = NULL;
    if (real == NULL)
        fprintf(stderr, "p11shim: %s has no usable C_GetFunctionList\n", path);
}

static int is_hidden(CK_MECHANISM_TYPE m)
{
    for (size_t i = 0; i < nhidden; i++)
        if (hidden[i] == m)
            return 1;
    return 0;
}

/* 1 while the fault file exists; the first caller to see it closes every real session. */
static int fault_poll(void)
{
    struct stat st;
    int expected = 0;

    if (fault_path[0] == '\0')
        return 0;
    if (stat(fault_path, &st) != 0) {
        atomic_store(&faulted, 0);
        return 0;
    }
    if (atomic_compare_exchange_strong(&faulted, &expected, 1)) {
        CK_SLOT_ID slots[64];
        CK_ULONG n = 64;

        if (real->C_GetSlotList(CK_FALSE, slots, &n) == CKR_OK)
            for (CK_ULONG i = 0; i < n; i++)
                real->C_CloseAllSessions(slots[i]);
    }
    return 1;
}

#define FWD(name, params, args)          \
    static CK_RV shim_##name params      \
    {                                    \
        fault_poll();                    \
        return real->name args;          \
    }

#define FAULTY(name, params, args)       \
    static CK_RV shim_##name params      \
    {                                    \
        if (fault_poll())                \
            return CKR_DEVICE_REMOVED;   \
        return real->name args;          \
    }

typedef unsigned char uc;
typedef unsigned long ul;

FWD(C_Finalize, (void *a), (a))
FWD(C_GetInfo, (CK_INFO *i), (i))
FWD(C_GetSlotInfo, (CK_SLOT_ID s, CK_SLOT_INFO *i), (s, i))
FWD(C_GetTokenInfo, (CK_SLOT_ID s, CK_TOKEN_INFO *i), (s, i))
FWD(C_WaitForSlotEvent, (CK_FLAGS f, CK_SLOT_ID *s, void *r), (f, s, r))
FWD(C_InitToken, (CK_SLOT_ID s, uc *p, ul l, uc *lab), (s, p, l, lab))
FWD(C_InitPIN, (CK_SESSION_HANDLE h, uc *p, ul l), (h, p, l))
FWD(C_SetPIN, (CK_SESSION_HANDLE h, uc *o, ul ol, uc *n, ul nl), (h, o, ol, n, nl))
FAULTY(C_OpenSession, (CK_SLOT_ID s, CK_FLAGS f, void *a, CK_NOTIFY n, CK_SESSION_HANDLE *h), (s, f, a, n, h))
FWD(C_CloseSession, (CK_SESSION_HANDLE h), (h))
FWD(C_CloseAllSessions, (CK_SLOT_ID s), (s))
FWD(C_GetSessionInfo, (CK_SESSION_HANDLE h, CK_SESSION_INFO *i), (h, i))
FWD(C_GetOperationState, (CK_SESSION_HANDLE h, uc *s, ul *l), (h, s, l))
FWD(C_SetOperationState, (CK_SESSION_HANDLE h, uc *s, ul l, CK_OBJECT_HANDLE e, CK_OBJECT_HANDLE a), (h, s, l, e, a))
FAULTY(C_Login, (CK_SESSION_HANDLE h, CK_USER_TYPE u, uc *p, ul l), (h, u, p, l))
FWD(C_Logout, (CK_SESSION_HANDLE h), (h))
FWD(C_CreateObject, (CK_SESSION_HANDLE h, CK_ATTRIBUTE *t, ul n, CK_OBJECT_HANDLE *o), (h, t, n, o))
FWD(C_CopyObject, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE *t, ul n, CK_OBJECT_HANDLE *no), (h, o, t, n, no))
FWD(C_DestroyObject, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o), (h, o))
FWD(C_GetObjectSize, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, ul *s), (h, o, s))
FWD(C_GetAttributeValue, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE *t, ul n), (h, o, t, n))
FWD(C_SetAttributeValue, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE *t, ul n), (h, o, t, n))
FWD(C_FindObjectsInit, (CK_SESSION_HANDLE h, CK_ATTRIBUTE *t, ul n), (h, t, n))
FWD(C_FindObjects, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE *o, ul m, ul *n), (h, o, m, n))
FWD(C_FindObjectsFinal, (CK_SESSION_HANDLE h), (h))
FWD(C_EncryptInit, (CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE k), (h, m, k))
FWD(C_Encrypt, (CK_SESSION_HANDLE h, uc *d, ul dl, uc *e, ul *el), (h, d, dl, e, el))
FWD(C_EncryptUpdate, (CK_SESSION_HANDLE h, uc *d, ul dl, uc *e, ul *el), (h, d, dl, e, el))
FWD(C_EncryptFinal, (CK_SESSION_HANDLE h, uc *e, ul *el), (h, e, el))
FWD(C_DecryptInit, (CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE k), (h, m, k))
FWD(C_Decrypt, (CK_SESSION_HANDLE h, uc *e, ul el, uc *d, ul *dl), (h, e, el, d, dl))
FWD(C_DecryptUpdate, (CK_SESSION_HANDLE h, uc *e, ul el, uc *d, ul *dl), (h, e, el, d, dl))
FWD(C_DecryptFinal, (CK_SESSION_HANDLE h, uc *d, ul *dl), (h, d, dl))
FWD(C_DigestInit, (CK_SESSION_HANDLE h, CK_MECHANISM *m), (h, m))
FWD(C_Digest, (CK_SESSION_HANDLE h, uc *d, ul dl, uc *o, ul *ol), (h, d, dl, o, ol))
FWD(C_DigestUpdate, (CK_SESSION_HANDLE h, uc *d, ul dl), (h, d, dl))
FWD(C_DigestKey, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE k), (h, k))
FWD(C_DigestFinal, (CK_SESSION_HANDLE h, uc *o, ul *ol), (h, o, ol))
FAULTY(C_Sign, (CK_SESSION_HANDLE h, uc *d, ul dl, uc *s, ul *sl), (h, d, dl, s, sl))
FWD(C_SignUpdate, (CK_SESSION_HANDLE h, uc *d, ul dl), (h, d, dl))
FWD(C_SignFinal, (CK_SESSION_HANDLE h, uc *s, ul *sl), (h, s, sl))
FWD(C_SignRecoverInit, (CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE k), (h, m, k))
FWD(C_SignRecover, (CK_SESSION_HANDLE h, uc *d, ul dl, uc *s, ul *sl), (h, d, dl, s, sl))
FWD(C_VerifyInit, (CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE k), (h, m, k))
FWD(C_Verify, (CK_SESSION_HANDLE h, uc *d, ul dl, uc *s, ul sl), (h, d, dl, s, sl))
FWD(C_VerifyUpdate, (CK_SESSION_HANDLE h, uc *d, ul dl), (h, d, dl))
FWD(C_VerifyFinal, (CK_SESSION_HANDLE h, uc *s, ul sl), (h, s, sl))
FWD(C_VerifyRecoverInit, (CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE k), (h, m, k))
FWD(C_VerifyRecover, (CK_SESSION_HANDLE h, uc *s, ul sl, uc *d, ul *dl), (h, s, sl, d, dl))
FWD(C_DigestEncryptUpdate, (CK_SESSION_HANDLE h, uc *p, ul pl, uc *e, ul *el), (h, p, pl, e, el))
FWD(C_DecryptDigestUpdate, (CK_SESSION_HANDLE h, uc *e, ul el, uc *p, ul *pl), (h, e, el, p, pl))
FWD(C_SignEncryptUpdate, (CK_SESSION_HANDLE h, uc *p, ul pl, uc *e, ul *el), (h, p, pl, e, el))
FWD(C_DecryptVerifyUpdate, (CK_SESSION_HANDLE h, uc *e, ul el, uc *p, ul *pl), (h, e, el, p, pl))
FWD(C_GenerateKey, (CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_ATTRIBUTE *t, ul n, CK_OBJECT_HANDLE *k), (h, m, t, n, k))
FWD(C_GenerateKeyPair,
    (CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_ATTRIBUTE *pt, ul pn, CK_ATTRIBUTE *st, ul sn, CK_OBJECT_HANDLE *pk,
     CK_OBJECT_HANDLE *sk),
    (h, m, pt, pn, st, sn, pk, sk))
FWD(C_WrapKey, (CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE w, CK_OBJECT_HANDLE k, uc *o, ul *ol),
    (h, m, w, k, o, ol))
FWD(C_UnwrapKey,
    (CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE u, uc *w, ul wl, CK_ATTRIBUTE *t, ul n, CK_OBJECT_HANDLE *k),
    (h, m, u, w, wl, t, n, k))
FWD(C_DeriveKey, (CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE b, CK_ATTRIBUTE *t, ul n, CK_OBJECT_HANDLE *k),
    (h, m, b, t, n, k))
FWD(C_SeedRandom, (CK_SESSION_HANDLE h, uc *s, ul l), (h, s, l))
FWD(C_GenerateRandom, (CK_SESSION_HANDLE h, uc *r, ul l), (h, r, l))
FWD(C_GetFunctionStatus, (CK_SESSION_HANDLE h), (h))
FWD(C_CancelFunction, (CK_SESSION_HANDLE h), (h))

static CK_RV shim_C_GetFunctionList(CK_FUNCTION_LIST **list);

static CK_RV shim_C_Initialize(void *args)
{
    shim_read_env();
    return real->C_Initialize(args);
}

/* While faulted, C_GetSlotList(TRUE) sees no token at all. */
static CK_RV shim_C_GetSlotList(uc present, CK_SLOT_ID *list, ul *count)
{
    if (fault_poll() && present) {
        if (count == NULL)
            return CKR_ARGUMENTS_BAD;
        *count = 0;
        return CKR_OK;
    }
    return real->C_GetSlotList(present, list, count);
}

static CK_RV shim_C_GetMechanismList(CK_SLOT_ID s, CK_MECHANISM_TYPE *list, ul *count)
{
    CK_MECHANISM_TYPE *all;
    ul n = 0, kept = 0;
    CK_RV rv;

    fault_poll();
    if (nhidden == 0)
        return real->C_GetMechanismList(s, list, count);
    if (count == NULL)
        return CKR_ARGUMENTS_BAD;
    rv = real->C_GetMechanismList(s, NULL, &n);
    if (rv != CKR_OK)
        return rv;
    all = calloc(n + 1, sizeof(*all));
    if (all == NULL)
        return CKR_HOST_MEMORY;
    rv = real->C_GetMechanismList(s, all, &n);
    for (ul i = 0; rv == CKR_OK && i < n; i++)
        if (!is_hidden(all[i]))
            all[kept++] = all[i];
    if (rv == CKR_OK && list != NULL) {
        if (*count < kept)
            rv = CKR_BUFFER_TOO_SMALL;
        else
            memcpy(list, all, kept * sizeof(*all));
    }
    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL)
        *count = kept;
    free(all);
    return rv;
}

static CK_RV shim_C_GetMechanismInfo(CK_SLOT_ID s, CK_MECHANISM_TYPE m, CK_MECHANISM_INFO *i)
{
    fault_poll();
    if (is_hidden(m))
        return CKR_MECHANISM_INVALID;
    return real->C_GetMechanismInfo(s, m, i);
}

static CK_RV shim_C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE k)
{
    if (fault_poll())
        return CKR_DEVICE_REMOVED;
    if (m != NULL && is_hidden(m->mechanism))
        return CKR_MECHANISM_INVALID;
    return real->C_SignInit(h, m, k);
}

static CK_FUNCTION_LIST shim_list = {
    {2, 40},
    shim_C_Initialize, shim_C_Finalize, shim_C_GetInfo, shim_C_GetFunctionList, shim_C_GetSlotList,
    shim_C_GetSlotInfo, shim_C_GetTokenInfo, shim_C_GetMechanismList, shim_C_GetMechanismInfo,
    shim_C_InitToken, shim_C_InitPIN, shim_C_SetPIN, shim_C_OpenSession, shim_C_CloseSession,
    shim_C_CloseAllSessions, shim_C_GetSessionInfo, shim_C_GetOperationState, shim_C_SetOperationState,
    shim_C_Login, shim_C_Logout, shim_C_CreateObject, shim_C_CopyObject, shim_C_DestroyObject,
    shim_C_GetObjectSize, shim_C_GetAttributeValue, shim_C_SetAttributeValue, shim_C_FindObjectsInit,
    shim_C_FindObjects, shim_C_FindObjectsFinal, shim_C_EncryptInit, shim_C_Encrypt, shim_C_EncryptUpdate,
    shim_C_EncryptFinal, shim_C_DecryptInit, shim_C_Decrypt, shim_C_DecryptUpdate, shim_C_DecryptFinal,
    shim_C_DigestInit, shim_C_Digest, shim_C_DigestUpdate, shim_C_DigestKey, shim_C_DigestFinal,
    shim_C_SignInit, shim_C_Sign, shim_C_SignUpdate, shim_C_SignFinal, shim_C_SignRecoverInit,
    shim_C_SignRecover, shim_C_VerifyInit, shim_C_Verify, shim_C_VerifyUpdate, shim_C_VerifyFinal,
    shim_C_VerifyRecoverInit, shim_C_VerifyRecover, shim_C_DigestEncryptUpdate, shim_C_DecryptDigestUpdate,
    shim_C_SignEncryptUpdate, shim_C_DecryptVerifyUpdate, shim_C_GenerateKey, shim_C_GenerateKeyPair,
    shim_C_WrapKey, shim_C_UnwrapKey, shim_C_DeriveKey, shim_C_SeedRandom, shim_C_GenerateRandom,
    shim_C_GetFunctionStatus, shim_C_CancelFunction, shim_C_WaitForSlotEvent,
};

static CK_RV shim_C_GetFunctionList(CK_FUNCTION_LIST **list)
{
    return C_GetFunctionList(list);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **list)
{
    pthread_once(&shim_once, shim_load);
    if (real == NULL)
        return CKR_GENERAL_ERROR;
    if (list == NULL)
        return CKR_ARGUMENTS_BAD;
    *list = &shim_list;
    return CKR_OK;
}
