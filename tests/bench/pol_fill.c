/* pol_fill.c - fills a policy store with random revocations under one issuer, for the admission-policy
 * benchmarks (tests/bench/run.py, scenario "policy").
 *
 *   pol_fill --store FILE --issuer-cert CA.pem --count N [--seed S] [--batch B] [--except-cert C.pem]
 *
 * Adds N revocations (reason keyCompromise) of random 16-byte positive serials (first octet 0x40..0x7f,
 * so each is a minimal DER INTEGER content) issued by CA.pem's subject, B per transaction
 * (pol_store_revoke_batch; default 50000). The same seed gives the same serials. --except-cert names
 * a certificate whose serial must not be among them (the bench client's); with a 16-byte serial of
 * another length or value it never is, but the check is cheap. --count 0 only creates the store.
 * Prints the time taken and the store generation; exit status 1 on any failure, 2 on a usage error. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policies/pol.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* splitmix64: small, fast, and the same sequence everywhere for one seed. */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: pol_fill --store FILE --issuer-cert CA.pem --count N [--seed S] [--batch B] "
               "[--except-cert C.pem]\n");
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || *s == '-')
        return -1;
    *out = (size_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "store", required_argument, NULL, 's' },      { "issuer-cert", required_argument, NULL, 'I' },
        { "count", required_argument, NULL, 'n' },      { "seed", required_argument, NULL, 'S' },
        { "batch", required_argument, NULL, 'b' },      { "except-cert", required_argument, NULL, 'x' },
        { "help", no_argument, NULL, 'h' },             { NULL, 0, NULL, 0 },
    };
    const char *store = NULL, *issuer = NULL, *except = NULL;
    size_t count = 0, batch = 50000, seed = 1;
    int have_count = 0, c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': store = optarg; break;
        case 'I': issuer = optarg; break;
        case 'x': except = optarg; break;
        case 'n':
            if (parse_size(optarg, &count) != 0) {
                fprintf(stderr, "pol_fill: --count: not a number: %s\n", optarg);
                return 2;
            }
            have_count = 1;
            break;
        case 'S':
            if (parse_size(optarg, &seed) != 0) {
                fprintf(stderr, "pol_fill: --seed: not a number: %s\n", optarg);
                return 2;
            }
            break;
        case 'b':
            if (parse_size(optarg, &batch) != 0 || batch == 0) {
                fprintf(stderr, "pol_fill: --batch: not a positive number: %s\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || store == NULL || issuer == NULL || !have_count) {
        usage(stderr);
        return 2;
    }

    char err[512];
    struct pol_cert *ca = NULL, *skip = NULL;
    struct pol_store *st = NULL;
    struct pol_revocation *rs = NULL;
    uint8_t *serials = NULL;
    const uint8_t *skip_serial = NULL;
    size_t skip_len = 0, skipped = 0;
    uint64_t gen = 0, rng = (uint64_t)seed;
    int status = 1;

    if (pol_cert_load(issuer, &ca, err, sizeof(err)) != 0) {
        fprintf(stderr, "pol_fill: %s: %s\n", issuer, err);
        goto out;
    }
    if (except != NULL) {
        if (pol_cert_load(except, &skip, err, sizeof(err)) != 0) {
            fprintf(stderr, "pol_fill: %s: %s\n", except, err);
            goto out;
        }
        skip_serial = pol_cert_serial(skip, &skip_len);
    }
    double t0 = now_s();
    if (pol_store_open_sqlite(store, &st, err, sizeof(err)) != 0) {
        fprintf(stderr, "pol_fill: %s: %s\n", store, err);
        goto out;
    }
    if (batch > count)
        batch = count ? count : 1;
    rs = calloc(batch, sizeof(*rs));
    serials = malloc(batch * 16);
    if (rs == NULL || serials == NULL) {
        fprintf(stderr, "pol_fill: out of memory\n");
        goto out;
    }
    const struct pol_actor who = { .actor = "bench:pol_fill", .comment = "random serials for tests/bench/run.py" };
    time_t at = time(NULL);
    size_t done = 0, batches = 0;
    while (done < count) {
        size_t n = count - done < batch ? count - done : batch, k = 0;
        while (k < n) {
            uint8_t *s = serials + 16 * k;
            uint64_t a = next_rand(&rng), b = next_rand(&rng);
            memcpy(s, &a, 8);
            memcpy(s + 8, &b, 8);
            s[0] = (uint8_t)((s[0] & 0x3f) | 0x40);     /* positive, 16 octets, minimal */
            if (skip_serial != NULL && skip_len == 16 && memcmp(s, skip_serial, 16) == 0) {
                skipped++;
                continue;
            }
            pol_revocation_of_issuer(ca, s, 16, &rs[k]);
            rs[k].reason = POL_REASON_KEY_COMPROMISE;
            rs[k].revoked_at = at;
            k++;
        }
        if (pol_store_revoke_batch(st, rs, n, &who, &gen, err, sizeof(err)) != 0) {
            fprintf(stderr, "pol_fill: batch %zu (%zu rows from %zu): %s\n", batches + 1, n, done, err);
            goto out;
        }
        done += n;
        batches++;
    }
    if (count == 0 && pol_store_generation(st, &gen) != 0) {
        fprintf(stderr, "pol_fill: %s: cannot read the generation\n", store);
        goto out;
    }
    double t1 = now_s();
    if (count == 0) {
        printf("pol_fill: store %s ready, no revocation added: %.2f s; store generation %llu\n", store, t1 - t0,
               (unsigned long long)gen);
        status = 0;
        goto out;
    }
    printf("pol_fill: %zu revocations under %s in %zu transaction(s) of up to %zu: %.2f s (%.0f rows/s); "
           "store generation %llu%s\n",
           count, pol_cert_subject(ca), batches, batch, t1 - t0, (double)count / (t1 - t0),
           (unsigned long long)gen, skipped ? " (the excepted serial came up and was skipped)" : "");
    status = 0;
out:
    pol_store_close(st);
    free(rs);
    free(serials);
    pol_cert_free(ca);
    pol_cert_free(skip);
    return status;
}
