/* standalone.c - the main() every fuzz target gets when built with gcc as a plain program
 * (make test replays each corpus through it): each file named on the command line, or stdin,
 * goes once through LLVMFuzzerTestOneInput. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole stream (up to about 8 MiB: the parsers cap their inputs well below that). */
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
