/* fuzz_config.c - fuzz target for gw_config_parse (gateway/config.c).
 *
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_config.c gateway/config*.c -lyaml
 * Replay a corpus with gcc (no libFuzzer needed):
 *   make build/release/tests/fuzz_config (links tests/fuzz/standalone.c for main())
 *   ./a.out tests/fuzz/corpus/config/FILE...   (or one input on stdin)
 *
 * Beyond the sanitizers, the target checks the parser's contract: success gives a config with at
 * least one listener; failure gives no config and a message that starts with "name:".
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config.h"

#define FUZZ_NAME "fuzz.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_config *cfg = NULL;
    char err[512] = "";

    if (gw_config_parse(FUZZ_NAME, (const char *)data, size, &cfg, err, sizeof(err)) == 0) {
        if (cfg == NULL || cfg->nlisteners == 0 || cfg->listeners == NULL)
            abort();
        gw_config_free(cfg);
        return 0;
    }
    if (cfg != NULL || strncmp(err, FUZZ_NAME ":", sizeof(FUZZ_NAME)) != 0)
        abort();
    return 0;
}

/* Built as a plain program, tests/fuzz/standalone.c supplies main(). */
