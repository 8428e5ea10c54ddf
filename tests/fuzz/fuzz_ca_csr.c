/* fuzz_ca_csr.c - fuzz target for hsm_ca_csr_parse (pkcs11/ca_csr.c) and hsm_ca_subject_check
 * (pkcs11/ca_name.c): the PKCS#10 requests anyone with an admin token sends to POST /v1/certificates,
 * parsed and checked before the HSM signs anything.
 *
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -I. -isystem build/wolfssl/include \
 *              tests/fuzz/fuzz_ca_csr.c build/release/libhsmgate.a build/wolfssl/lib/libwolfssl.a ...
 * Replay a corpus with gcc (no libFuzzer needed): make build/release/tests/fuzz_ca_csr, then
 *   build/release/tests/fuzz_ca_csr tests/fuzz/corpus/ca_csr/FILE...   (or one input on stdin)
 *
 * The corpus holds OpenSSL-made requests (EC, RSA, one asking for a CA, one without a commonName) so
 * that mutations reach the signature check, the attribute walk and the subject profile. Beyond the
 * sanitizers, the target checks the contract: on failure a zeroed result and a message; on success a
 * subject and key no longer than the input, and, when the profile accepts the subject, a non-empty CN.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11/ca.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hsm_ca_csr csr;
    char err[512] = "", cn[128];

    int rc = hsm_ca_csr_parse(data, size, &csr, err, sizeof(err));
    if (rc != 0) {
        if (csr.subject_der != NULL || csr.spki_der != NULL || err[0] == '\0')
            abort();
        return 0;
    }
    if (csr.subject_der == NULL || csr.spki_der == NULL || csr.subject_len > size || csr.spki_len > size ||
        (csr.requests_ca != 0 && csr.requests_ca != 1))
        abort();
    err[0] = '\0';
    rc = hsm_ca_subject_check(csr.subject_der, csr.subject_len, cn, sizeof(cn), err, sizeof(err));
    if ((rc == 0 && cn[0] == '\0') || (rc != 0 && (rc != HSM_E_ARG || err[0] == '\0')))
        abort();
    hsm_ca_csr_clear(&csr);
    if (csr.subject_der != NULL || csr.spki_der != NULL)
        abort();
    return 0;
}

/* Built as a plain program, tests/fuzz/standalone.c supplies main(). */
