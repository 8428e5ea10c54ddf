/* hsm_bench.c - signatures per second through the HSM layer, one session per thread.
 *
 *   hsm_bench MODULE PINSOURCE URI THREADS SECONDS [GENSPEC]
 *
 * Each thread attaches (eagerly: session and key handle before the clock starts) and signs for SECONDS:
 * ECDSA over a SHA-256-sized hash for an EC key, PKCS#1 v1.5 over a SHA-256 DigestInfo for an RSA key.
 * With GENSPEC ("ec:P-256", "rsa:2048", ...) a missing key is first generated in the URI's token under
 * the URI's object= label. Prints the total and per-thread rates; exit status 1 on any failure. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pkcs11/hsm.h"

struct bench_thread {
    pthread_t tid;
    struct hsm_ctx *ctx;
    struct hsm_key *key;
    unsigned index;
    double seconds;
    unsigned long long signs, errors;
    int attach_rc;
};

static atomic_int bench_go;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *bench_main(void *p)
{
    static const uint8_t di[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
                                 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    struct bench_thread *t = p;
    enum hsm_sig_kind kind = hsm_key_type(t->key) == HSM_KEY_EC ? HSM_SIG_ECDSA : HSM_SIG_RSA_PKCS1;
    uint8_t in[sizeof(di) + 32], sig[1024];
    size_t in_len = kind == HSM_SIG_ECDSA ? 32 : sizeof(in);
    double end;

    memcpy(in, di, sizeof(di));
    for (size_t i = sizeof(di); i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 7 + t->index);
    t->attach_rc = hsm_thread_attach(t->ctx, t->index, 1);
    while (!atomic_load(&bench_go))
        ;
    if (t->attach_rc != 0)
        return NULL;
    end = now_s() + t->seconds;
    do {
        /* Check the clock every 64 signatures: clock_gettime is cheap but not free. */
        for (int i = 0; i < 64; i++) {
            size_t sig_len = sizeof(sig);
            const uint8_t *data = kind == HSM_SIG_ECDSA ? in + sizeof(di) : in;

            in[sizeof(in) - 1]++;
            if (hsm_sign(t->key, kind, 0, data, in_len, sig, &sig_len) == 0)
                t->signs++;
            else
                t->errors++;
        }
    } while (now_s() < end);
    hsm_thread_detach(t->ctx);
    return NULL;
}

/* The object= value of the URI, for GENSPEC. */
static int uri_label(const char *uri, char *out, size_t cap)
{
    const char *p = strstr(uri, "object=");
    size_t n;

    if (p == NULL)
        return -1;
    p += 7;
    n = strcspn(p, ";?&");
    if (n == 0 || n >= cap || memchr(p, '%', n) != NULL)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

int main(int argc, char **argv)
{
    struct hsm_ctx *ctx = NULL;
    struct hsm_key *key = NULL;
    struct bench_thread *th = NULL;
    struct hsm_stats st;
    char err[512] = "", label[128];
    unsigned nthreads;
    double seconds, t0, t1;
    unsigned long long total = 0, errors = 0;
    int rc, status = 1;

    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: %s MODULE PINSOURCE URI THREADS SECONDS [GENSPEC]\n", argv[0]);
        return 2;
    }
    nthreads = (unsigned)strtoul(argv[4], NULL, 10);
    seconds = strtod(argv[5], NULL);
    if (nthreads == 0 || nthreads > HSM_MAX_THREADS || seconds <= 0) {
        fprintf(stderr, "hsm_bench: THREADS must be 1..%d and SECONDS > 0\n", HSM_MAX_THREADS);
        return 2;
    }
    rc = hsm_ctx_new(&ctx, argv[1], argv[2], err, sizeof(err));
    if (rc != 0)
        goto out;
    rc = hsm_key_open(ctx, argv[3], &key, err, sizeof(err));
    if (rc == HSM_E_KEY && argc == 7) {
        char token_uri[1024];

        if (uri_label(argv[3], label, sizeof(label)) != 0) {
            fprintf(stderr, "hsm_bench: GENSPEC needs a plain object= label in the URI\n");
            goto out;
        }
        /* The token URI is the key URI without its object attributes: hsm_key_generate ignores them. */
        snprintf(token_uri, sizeof(token_uri), "%s", argv[3]);
        rc = hsm_key_generate(ctx, token_uri, label, argv[6], &key, err, sizeof(err));
        if (rc == 0)
            fprintf(stderr, "hsm_bench: generated %s key \"%s\"\n", argv[6], label);
    }
    if (rc != 0)
        goto out;
    th = calloc(nthreads, sizeof(*th));
    if (th == NULL)
        goto out;
    for (unsigned i = 0; i < nthreads; i++) {
        th[i] = (struct bench_thread){.ctx = ctx, .key = key, .index = i, .seconds = seconds};
        if (pthread_create(&th[i].tid, NULL, bench_main, &th[i]) != 0) {
            fprintf(stderr, "hsm_bench: pthread_create failed\n");
            exit(1);
        }
    }
    t0 = now_s();
    atomic_store(&bench_go, 1);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(th[i].tid, NULL);
    t1 = now_s();
    for (unsigned i = 0; i < nthreads; i++) {
        if (th[i].attach_rc != 0) {
            fprintf(stderr, "hsm_bench: thread %u: attach: %s\n", i, hsm_strerror(th[i].attach_rc));
            rc = th[i].attach_rc;
        }
        total += th[i].signs;
        errors += th[i].errors;
    }
    hsm_stats_get(ctx, &st);
    printf("key %s (%s %u bits, %s)\n", hsm_key_uri(key), hsm_key_type(key) == HSM_KEY_EC ? "EC" : "RSA",
           hsm_key_bits(key),
           hsm_key_path(key, hsm_key_type(key) == HSM_KEY_EC ? HSM_SIG_ECDSA : HSM_SIG_RSA_PKCS1));
    for (unsigned i = 0; i < nthreads; i++)
        printf("thread %u: %.0f signs/s\n", i, (double)th[i].signs / seconds);
    printf("threads %u, %.2f s: %llu signs, %llu errors, %.0f signs/s total\n", nthreads, t1 - t0, total, errors,
           (double)total / (t1 - t0));
    printf("stats: signs %llu, errors %llu, sessions lost %llu, reopened %llu\n", (unsigned long long)st.signs,
           (unsigned long long)st.sign_errors, (unsigned long long)st.session_lost, (unsigned long long)st.reopened);
    if (rc == 0 && errors == 0)
        status = 0;
out:
    if (rc != 0)
        fprintf(stderr, "hsm_bench: %s\n", err[0] != '\0' ? err : hsm_strerror(rc));
    free(th);
    hsm_ctx_free(ctx);
    return status;
}
