/* fuzz_p11_uri.c - fuzz target for what an operator writes about keys: RFC 7512 PKCS#11 URIs as
 * hsm_key_open takes them (p11-kit parses; our rules follow: pin-value and pin-source, the object
 * class, unknown attributes, the canonical form) and PIN sources (hsm_pin_read, "env:NAME").
 *
 * libFuzzer: make fuzz FUZZ_TIME=600; replay: make fuzz-replay.
 *
 * Input: a selector byte, then the text. The default module is a path that does not exist, and URIs
 * naming a module (module-path, module-name) are skipped, so no library is ever loaded: the target
 * stops where a real gateway would open the module. Checked beyond the sanitizers:
 *  - a refusal always says why (a non-empty message);
 *  - no message ever contains the URI's pin-value, nor the PIN an "env:" source read: secrets are
 *    never echoed (pkcs11/pin.c, key.c);
 *  - a PIN read from "env:" is the first line of the variable's value, NUL-terminated, and wiped
 *    buffers are the caller's to wipe (hsm_wipe is called here as the gateway does).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11/hsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "S3cr3t-PIN-7f2a"

static void no_secret(const char *msg, const char *secret)
{
    if (secret[0] != '\0' && strstr(msg, secret) != NULL) {
        fprintf(stderr, "fuzz_p11_uri: a message echoes a secret: %s\n", msg);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[2048], err[512], pin[256];
    size_t len = 0;

    if (size < 1 || size - 1 >= sizeof(text))
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (strlen(text) != size - 1)
        return 0;

    if (data[0] & 1) {
        /* A PIN source; the variable holds the text (a PIN and maybe more lines). */
        if (setenv("HSMGATE_FUZZ_PIN", text, 1) != 0)
            return 0;
        static const char *const sources[] = { "env:HSMGATE_FUZZ_PIN", "env:", "env:HSMGATE_FUZZ_UNSET", "pin:1234",
                                               "file:relative", "" };
        const char *src = sources[(data[0] >> 1) % (sizeof(sources) / sizeof(sources[0]))];
        err[0] = '\0';
        int rc = hsm_pin_read(src, pin, sizeof(pin), &len, err, sizeof(err));
        if (rc == 0) {
            size_t want = strcspn(text, "\n");
            if (want > 0 && text[want - 1] == '\r')
                want--;
            if (len != want || memcmp(pin, text, len) != 0 || pin[len] != '\0') {
                fprintf(stderr, "fuzz_p11_uri: env PIN read as %zu bytes, wanted %zu\n", len, want);
                abort();
            }
        } else {
            if (err[0] == '\0')
                abort();
            /* The value must not be echoed (only checkable when it is long enough to be unmistakable). */
            if (strlen(text) >= 8)
                no_secret(err, text);
        }
        hsm_wipe(pin, sizeof(pin));
        unsetenv("HSMGATE_FUZZ_PIN");
        return 0;
    }

    if (strstr(text, "module-") != NULL || strstr(text, "module%2") != NULL || strstr(text, "modul%") != NULL)
        return 0; /* never load a library named by the input */
    char uri[2048 + 64];
    /* Half the inputs carry a pin-value that must never be echoed. */
    if (data[0] & 2)
        snprintf(uri, sizeof(uri), "%s%spin-value=" SECRET, text, strchr(text, '?') != NULL ? "&" : "?");
    else
        snprintf(uri, sizeof(uri), "%s", text);
    struct hsm_ctx *ctx = NULL;
    if (hsm_ctx_new(&ctx, "/nonexistent/hsmgate-fuzz-module.so", "env:HSMGATE_FUZZ_UNSET", err, sizeof(err)) != 0)
        abort();
    struct hsm_key *key = NULL;
    err[0] = '\0';
    int rc = hsm_key_open(ctx, uri, &key, err, sizeof(err));
    if (rc == 0) {
        fprintf(stderr, "fuzz_p11_uri: a key opened without a module: %s\n", uri);
        abort();
    }
    if (err[0] == '\0') {
        fprintf(stderr, "fuzz_p11_uri: refused without a message (%d)\n", rc);
        abort();
    }
    no_secret(err, SECRET);
    hsm_ctx_free(ctx);
    return 0;
}
