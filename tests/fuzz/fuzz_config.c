/* fuzz_config.c - fuzz target for gw_config_parse (gateway/config.c).
 *
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_config.c gateway/config.c -lyaml
 * Replay a corpus with gcc (no libFuzzer needed):
 *   gcc -DFUZZ_STANDALONE -I. tests/fuzz/fuzz_config.c gateway/config.c -lyaml
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

#ifdef FUZZ_STANDALONE
/* Reads a whole stream; the parser caps input at 1 MiB, so a little more is enough to test it. */
static int read_all(FILE *f, uint8_t **buf, size_t *len)
{
    size_t cap = 4096, n = 0;
    uint8_t *b = malloc(cap);

    if (b == NULL)
        return -1;
    for (;;) {
        size_t r;
        if (n == cap) {
            uint8_t *nb;
            if (cap > 4u * 1024 * 1024)
                break;
            cap *= 2;
            nb = realloc(b, cap);
            if (nb == NULL) {
                free(b);
                return -1;
            }
            b = nb;
        }
        r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        free(b);
        return -1;
    }
    *buf = b;
    *len = n;
    return 0;
}

static int run_one(const char *path)
{
    FILE *f = path != NULL ? fopen(path, "rb") : stdin;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    if (f == NULL) {
        perror(path);
        return -1;
    }
    rc = read_all(f, &buf, &len);
    if (path != NULL)
        fclose(f);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot read\n", path != NULL ? path : "<stdin>");
        return -1;
    }
    (void)LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    buf = NULL;
    return 0;
}

int main(int argc, char **argv)
{
    int failed = 0;

    if (argc < 2)
        return run_one(NULL) < 0 ? 1 : 0;
    for (int i = 1; i < argc; i++)
        if (run_one(argv[i]) < 0)
            failed = 1;
    return failed;
}
#endif
