/* err.c - error messages, the logging hook, CK_RV names and classes, wiping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "pkcs11/internal.h"

static const struct {
    int code;
    const char *msg;
} hsm_errs[] = {
    {HSM_OK, "success"},
    {HSM_E_NOMEM, "out of memory"},
    {HSM_E_URI, "bad PKCS#11 URI"},
    {HSM_E_MODULE, "PKCS#11 module cannot be loaded or initialised"},
    {HSM_E_TOKEN, "no token matches the URI"},
    {HSM_E_PIN_SOURCE, "PIN source cannot be read"},
    {HSM_E_PIN, "the token refused the PIN"},
    {HSM_E_KEY, "no single private key matches the URI"},
    {HSM_E_KEYTYPE, "unsupported key type or size"},
    {HSM_E_SESSION, "PKCS#11 session or token lost"},
    {HSM_E_SIGN, "the token failed to sign"},
    {HSM_E_MECH, "the token offers no mechanism for this signature"},
    {HSM_E_ARG, "bad argument"},
    {HSM_E_NOT_ATTACHED, "thread not attached to the HSM context"},
    {HSM_E_EXISTS, "a key with this label already exists"},
    {HSM_E_GENERATE, "the token failed to generate the key pair"},
};

const char *hsm_strerror(int err)
{
    for (size_t i = 0; i < sizeof(hsm_errs) / sizeof(hsm_errs[0]); i++)
        if (hsm_errs[i].code == err)
            return hsm_errs[i].msg;
    return "unknown HSM error";
}

/* The volatile pointer keeps the compiler from treating the stores as dead (C11 5.1.2.3). */
void hsm_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    if (p == NULL)
        return;
    while (n--)
        *v++ = 0;
}

static _Atomic(hsm_log_fn) hsm_logger;

void hsm_set_logger(hsm_log_fn fn)
{
    atomic_store(&hsm_logger, fn);
}

/* Without a hook, warnings and errors go to stderr so a misconfiguration is never silent. */
void hsm_log(int level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    hsm_log_fn fn = atomic_load(&hsm_logger);

    if (fn == NULL && level > LOG_WARNING)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (fn != NULL)
        fn(level, buf);
    else
        fprintf(stderr, "hsm: %s\n", buf);
}

int hsm_errf(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return code;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

char *hsm_strdup(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

void hsm_monotonic(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

#define CKR(x) {x, #x}
static const struct {
    CK_RV rv;
    const char *name;
} hsm_ckrs[] = {
    CKR(CKR_OK), CKR(CKR_CANCEL), CKR(CKR_HOST_MEMORY), CKR(CKR_SLOT_ID_INVALID), CKR(CKR_GENERAL_ERROR),
    CKR(CKR_FUNCTION_FAILED), CKR(CKR_ARGUMENTS_BAD), CKR(CKR_ATTRIBUTE_READ_ONLY),
    CKR(CKR_ATTRIBUTE_SENSITIVE), CKR(CKR_ATTRIBUTE_TYPE_INVALID), CKR(CKR_ATTRIBUTE_VALUE_INVALID),
    CKR(CKR_DATA_INVALID), CKR(CKR_DATA_LEN_RANGE), CKR(CKR_DEVICE_ERROR), CKR(CKR_DEVICE_MEMORY),
    CKR(CKR_DEVICE_REMOVED), CKR(CKR_FUNCTION_CANCELED), CKR(CKR_FUNCTION_NOT_SUPPORTED),
    CKR(CKR_KEY_HANDLE_INVALID), CKR(CKR_KEY_SIZE_RANGE), CKR(CKR_KEY_TYPE_INCONSISTENT),
    CKR(CKR_KEY_FUNCTION_NOT_PERMITTED), CKR(CKR_MECHANISM_INVALID), CKR(CKR_MECHANISM_PARAM_INVALID),
    CKR(CKR_OBJECT_HANDLE_INVALID), CKR(CKR_OPERATION_ACTIVE), CKR(CKR_OPERATION_NOT_INITIALIZED),
    CKR(CKR_PIN_INCORRECT), CKR(CKR_PIN_INVALID), CKR(CKR_PIN_LEN_RANGE), CKR(CKR_PIN_EXPIRED),
    CKR(CKR_PIN_LOCKED), CKR(CKR_SESSION_CLOSED), CKR(CKR_SESSION_COUNT), CKR(CKR_SESSION_HANDLE_INVALID),
    CKR(CKR_SESSION_READ_ONLY), CKR(CKR_SESSION_EXISTS), CKR(CKR_TEMPLATE_INCOMPLETE),
    CKR(CKR_TEMPLATE_INCONSISTENT), CKR(CKR_TOKEN_NOT_PRESENT), CKR(CKR_TOKEN_NOT_RECOGNIZED),
    CKR(CKR_TOKEN_WRITE_PROTECTED), CKR(CKR_USER_ALREADY_LOGGED_IN), CKR(CKR_USER_NOT_LOGGED_IN),
    CKR(CKR_USER_PIN_NOT_INITIALIZED), CKR(CKR_USER_TYPE_INVALID), CKR(CKR_BUFFER_TOO_SMALL),
    CKR(CKR_CRYPTOKI_NOT_INITIALIZED), CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    CKR(CKR_RANDOM_NO_RNG), CKR(CKR_DOMAIN_PARAMS_INVALID),
};
#undef CKR

const char *hsm_ckr_name(CK_RV rv)
{
    static _Thread_local char buf[32];

    for (size_t i = 0; i < sizeof(hsm_ckrs) / sizeof(hsm_ckrs[0]); i++)
        if (hsm_ckrs[i].rv == rv)
            return hsm_ckrs[i].name;
    snprintf(buf, sizeof(buf), "CKR_0x%08lx", (unsigned long)rv);
    return buf;
}

int hsm_ckr_is_lost(CK_RV rv)
{
    switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_DEVICE_ERROR:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
        return 1;
    default:
        return 0;
    }
}

int hsm_ckr_is_pin(CK_RV rv)
{
    return rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_PIN_INVALID ||
           rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_EXPIRED;
}
