/* test_pol_snapshot.c - snapshots and their publication (policies/snapshot.c, hset.c, live.c).
 *
 * - Reader threads look things up without locks while a publisher swaps snapshots hundreds of
 *   times; every snapshot a reader sees must be whole (its contents match its generation), readers'
 *   generations never go back, and after pol_live_synchronize no reader decides with an older
 *   snapshot. Run under ASan (make asan) this also shows that no snapshot is freed while a reader
 *   can hold it; under ThreadSanitizer (see policies/README.md) that the orderings are enough.
 * - Reclamation waits for online readers only, and synchronize times out on a stuck one.
 * - pol_live_refresh notices store changes (generation) and does nothing otherwise.
 * - Scale: 1,000,000 revocations written (in a child process), then a snapshot built and published
 *   in this one: time, RSS and lookup cost are printed, never asserted. POL_SCALE=N changes N.
 */
#include "test_pol_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "policies/pol_int.h"

#define NREADERS 4
static const uint8_t ISSUER[POL_HASH_LEN] = { 0x11, 0x22, 0x33 };

static int setup(void **state)
{
    (void)state;
    make_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove_tmpdir();
    return 0;
}

static void serial_of(uint64_t v, uint8_t out[9])
{
    out[0] = 0x01;     /* positive, fixed width */
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(v >> (56 - 8 * i));
}

/* Generation g revokes serials g*1000 .. g*1000 + g%50 and allowlists "gen-<g>". */
static struct pol_snapshot *make_snapshot(uint64_t g)
{
    struct pol_snapshot *s = NULL;
    size_t ix;
    uint8_t serial[9];
    char value[32];
    if (pol_builder_new(&s) != 0 || pol_builder_issuer(s, ISSUER, &ix) != 0)
        return NULL;
    for (uint64_t i = 0; i <= g % 50; i++) {
        serial_of(g * 1000 + i, serial);
        if (pol_builder_revoked(s, ix, serial, sizeof(serial), (int)(g % 7), (int64_t)g) != 0)
            return NULL;
    }
    snprintf(value, sizeof(value), "gen-%llu", (unsigned long long)g);
    if (pol_builder_allow(s, "l", "cn", value, 0, (int64_t)g) != 0 || pol_builder_finish(s, g, NULL, 0) != 0)
        return NULL;
    return s;
}

struct shared {
    struct pol_live *live;
    atomic_int stop;
    atomic_ulong min_expected;      /* set after a synchronize: nothing older may be seen after */
    atomic_int errors;
    atomic_ulong iterations;
    atomic_ulong toggles;
};

struct reader_arg {
    struct shared *sh;
    unsigned index;
};

/* Checks that s is exactly what make_snapshot(gen) made. */
static int snapshot_whole(const struct pol_snapshot *s)
{
    uint64_t g = pol_snapshot_generation(s);
    uint8_t serial[9];
    int reason = -1;
    char value[32];
    serial_of(g * 1000, serial);
    if (!pol_snapshot_is_revoked(s, ISSUER, serial, sizeof(serial), &reason) || reason != (int)(g % 7))
        return 0;
    serial_of(g * 1000 + g % 50, serial);
    if (!pol_snapshot_is_revoked(s, ISSUER, serial, sizeof(serial), NULL))
        return 0;
    serial_of(g * 1000 + g % 50 + 1, serial);
    if (pol_snapshot_is_revoked(s, ISSUER, serial, sizeof(serial), NULL))
        return 0;
    snprintf(value, sizeof(value), "gen-%llu", (unsigned long long)g);
    const struct pol_snap_list *l = pol_snapshot_list(s, "l", 1);
    struct pol_hval e;
    return l != NULL && pol_hset_find(&l->sets[POL_MATCH_CN], s->seed, value, strlen(value), &e) && e.id == (int64_t)g;
}

static void *reader_main(void *varg)
{
    struct reader_arg *a = varg;
    struct shared *sh = a->sh;
    uint64_t last = 0, n = 0;
    if (pol_reader_register(sh->live, a->index) != 0) {
        atomic_fetch_add(&sh->errors, 1);
        return NULL;
    }
    while (!atomic_load(&sh->stop)) {
        /* one event-loop turn: a quiescent point, then handshakes */
        pol_quiescent(sh->live, a->index);
        uint64_t floor = atomic_load(&sh->min_expected);
        const struct pol_snapshot *s = pol_snapshot_current(sh->live, a->index);
        if (s == NULL) {
            atomic_fetch_add(&sh->errors, 1);
            break;
        }
        uint64_t g = pol_snapshot_generation(s);
        if (g < last || g < floor || !snapshot_whole(s))
            atomic_fetch_add(&sh->errors, 1);
        last = g;
        /* hold it a little, as a handshake would */
        for (int k = 0; k < 20; k++) {
            uint8_t serial[9];
            serial_of(g * 1000 + (uint64_t)k, serial);
            (void)pol_snapshot_is_revoked(s, ISSUER, serial, sizeof(serial), NULL);
        }
        n++;
        /* the last reader also blocks now and then, offline, as a worker in epoll_wait */
        if (a->index == NREADERS - 1 && n % 64 == 0) {
            pol_reader_offline(sh->live, a->index);
            if (pol_snapshot_current(sh->live, a->index) != NULL)
                atomic_fetch_add(&sh->errors, 1);
            struct timespec ts = { 0, 20000 };
            nanosleep(&ts, NULL);
            pol_reader_online(sh->live, a->index);
            atomic_fetch_add(&sh->toggles, 1);
        }
    }
    atomic_fetch_add(&sh->iterations, n);
    pol_reader_unregister(sh->live, a->index);
    return NULL;
}

static void test_concurrent_readers_during_publishes(void **state)
{
    (void)state;
    struct shared sh;
    pthread_t th[NREADERS];
    struct reader_arg args[NREADERS];
    memset(&sh, 0, sizeof(sh));
    assert_int_equal(pol_live_new(NREADERS, make_snapshot(1), &sh.live), 0);
    for (unsigned i = 0; i < NREADERS; i++) {
        args[i].sh = &sh;
        args[i].index = i;
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &args[i]), 0);
    }
    /* No cmocka assertion while readers run (a failed one would unwind this frame under them):
     * failures are counted and checked after the join. */
    const uint64_t PUBLISHES = under_valgrind() ? 60 : 400;    /* threads take turns there */
    int failures = 0;
    for (uint64_t g = 2; g <= PUBLISHES && !failures; g++) {
        struct pol_snapshot *s = make_snapshot(g);
        if (s == NULL) {
            failures++;
            break;
        }
        pol_snapshot_publish(sh.live, s);
        failures += pol_live_generation(sh.live) != g;
        if (g % 25 == 0) {
            /* what the admin API does before it answers: after this, nothing older is in use
             * (generous timeout: under valgrind the threads take turns) */
            failures += pol_live_synchronize(sh.live, 60000) != 0;
            atomic_store(&sh.min_expected, g);
            failures += pol_live_reclaim(sh.live) != 0;
        }
    }
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    atomic_store(&sh.stop, 1);
    for (unsigned i = 0; i < NREADERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(failures, 0);
    assert_int_equal(atomic_load(&sh.errors), 0);
    /* every reader gone: whatever was retired is freed now */
    assert_int_equal(pol_live_reclaim(sh.live), 0);
    printf("[ MEASURE  ] %llu publishes, %lu reader turns, %lu offline/online toggles, no error\n",
           (unsigned long long)PUBLISHES - 1, (unsigned long)atomic_load(&sh.iterations),
           (unsigned long)atomic_load(&sh.toggles));
    pol_live_free(sh.live);
}

static void test_reclamation_rules(void **state)
{
    (void)state;
    struct pol_live *live = NULL;
    assert_int_equal(pol_live_new(0, NULL, &live), POL_E_READER);
    assert_int_equal(pol_live_new(POL_MAX_READERS + 1, NULL, &live), POL_E_READER);
    assert_int_equal(pol_live_new(2, NULL, &live), 0);
    assert_int_equal(pol_live_generation(live), 0);
    /* readers: registered once, in range; a snapshot only while online */
    assert_null(pol_snapshot_current(live, 0));
    assert_int_equal(pol_reader_register(live, 2), POL_E_READER);
    assert_int_equal(pol_reader_register(live, 0), 0);
    assert_int_equal(pol_reader_register(live, 0), POL_E_READER);
    const struct pol_snapshot *s0 = pol_snapshot_current(live, 0);
    assert_non_null(s0);
    assert_null(pol_snapshot_current(live, 1));
    assert_null(pol_snapshot_current(live, 99));

    /* reader 0 online and holding: the old snapshot waits, synchronize times out */
    pol_snapshot_publish(live, make_snapshot(5));
    assert_int_equal(pol_live_reclaim(live), 1);
    assert_int_equal(pol_live_synchronize(live, 30), POL_E_TIMEOUT);
    assert_int_equal(pol_snapshot_generation(s0), 0);     /* still readable: not freed */
    pol_quiescent(live, 0);
    assert_int_equal(pol_live_reclaim(live), 0);
    assert_int_equal(pol_live_synchronize(live, 30), 0);
    assert_int_equal(pol_snapshot_generation(pol_snapshot_current(live, 0)), 5);

    /* an offline reader holds nothing: no wait at all */
    pol_reader_offline(live, 0);
    pol_quiescent(live, 0);                               /* offline: stays offline */
    assert_null(pol_snapshot_current(live, 0));
    pol_snapshot_publish(live, make_snapshot(6));
    assert_int_equal(pol_live_reclaim(live), 0);
    pol_reader_online(live, 0);
    assert_int_equal(pol_snapshot_generation(pol_snapshot_current(live, 0)), 6);
    /* a second reader registered late waits too */
    assert_int_equal(pol_reader_register(live, 1), 0);
    pol_snapshot_publish(live, make_snapshot(7));
    pol_quiescent(live, 0);
    assert_int_equal(pol_live_reclaim(live), 1);
    pol_quiescent(live, 1);
    assert_int_equal(pol_live_reclaim(live), 0);
    pol_reader_unregister(live, 0);
    pol_reader_unregister(live, 1);
    pol_snapshot_publish(live, NULL);                     /* ignored */
    assert_int_equal(pol_live_generation(live), 7);
    pol_live_free(live);
    pol_live_free(NULL);
}

static void test_refresh_from_store(void **state)
{
    (void)state;
    struct pol_store *st = NULL;
    struct pol_live *live = NULL;
    char err[512];
    int published = -1;
    assert_int_equal(pol_store_open_sqlite(P("live.db"), &st, err, sizeof(err)), 0);
    assert_int_equal(pol_live_new(1, NULL, &live), 0);
    assert_int_equal(pol_reader_register(live, 0), 0);
    /* an empty store is generation 0, like the initial empty snapshot: nothing to do */
    assert_int_equal(pol_live_refresh(live, st, &published, err, sizeof(err)), 0);
    assert_int_equal(published, 0);

    uint8_t der[] = { 0x30, 0x0b, 0x31, 0x09, 0x30, 0x07, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x00 };
    uint8_t serial[] = { 0x42 };
    struct pol_revocation r = { der, sizeof(der), "CN=", serial, 1, POL_REASON_KEY_COMPROMISE, 0 };
    uint64_t g = 0;
    assert_int_equal(pol_store_revoke(st, &r, &test_actor, &g, err, sizeof(err)), 0);
    assert_int_equal(pol_live_refresh(live, st, &published, err, sizeof(err)), 0);
    assert_int_equal(published, 1);
    assert_int_equal(pol_live_generation(live), g);
    pol_quiescent(live, 0);
    const struct pol_snapshot *s = pol_snapshot_current(live, 0);
    uint8_t h[POL_HASH_LEN];
    assert_int_equal(pol_sha256(der, sizeof(der), h), 0);
    assert_int_equal(pol_snapshot_is_revoked(s, h, serial, 1, NULL), 1);
    assert_int_equal(pol_live_refresh(live, st, &published, err, sizeof(err)), 0);
    assert_int_equal(published, 0);
    pol_reader_unregister(live, 0);
    pol_live_free(live);
    pol_store_close(st);
}

/* Hash sets on their own: many keys, duplicates, misses, lengths. */
static void test_hset(void **state)
{
    (void)state;
    struct pol_hset h;
    memset(&h, 0, sizeof(h));
    uint8_t key[20];
    for (uint32_t i = 0; i < 50000; i++) {
        memset(key, 0, sizeof(key));
        memcpy(key, &i, sizeof(i));
        assert_int_equal(pol_hset_add(&h, key, 1 + i % 20, i, i, 0), 0);
    }
    assert_int_equal(pol_hset_add(&h, key, 20, 0, 0, 0), 0);        /* a duplicate of the last */
    assert_int_equal(pol_hset_add(&h, key, 0, 0, 0, 0), POL_E_ARG);
    size_t dups = 0;
    assert_int_equal(pol_hset_seal(&h, 0x1234, &dups), 0);
    /* keys of length < 4 collide when i differs only in the bytes cut off: count, do not assume */
    assert_true(dups >= 1);
    assert_int_equal(h.count + dups, 50001);
    assert_int_equal(h.nrecs, 50001);
    for (uint32_t i = 0; i < 50000; i++) {
        memset(key, 0, sizeof(key));
        memcpy(key, &i, sizeof(i));
        struct pol_hval v;
        assert_true(pol_hset_find(&h, 0x1234, key, 1 + i % 20, &v));
        assert_true(v.id <= (int64_t)i && v.time == v.id);   /* the first of equal keys wins */
    }
    memset(key, 0xee, sizeof(key));
    assert_false(pol_hset_find(&h, 0x1234, key, 20, NULL));
    pol_hset_clear(&h);
    assert_false(pol_hset_find(&h, 0, key, 20, NULL));
}

/* ---------------------------------------------------------------- scale */

static long status_kb(const char *field)
{
    char line[256];
    long v = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

static double secs(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* A 16-byte random-looking positive serial, as CAs make them (RFC 5280 4.1.2.2 asks for 20 octets at most). */
static void big_serial(uint64_t i, uint8_t out[16])
{
    uint64_t a = i * 0x9e3779b97f4a7c15ull, b = (i ^ 0xdeadbeef) * 0xbf58476d1ce4e5b9ull;
    memcpy(out, &a, 8);
    memcpy(out + 8, &b, 8);
    out[0] = (uint8_t)((out[0] & 0x7f) | 0x40);
}

static void test_scale_one_million(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    size_t N = 200000;
#else
    size_t N = 1000000;
#endif
    if (under_valgrind())
        N = 20000;      /* a million rows there take minutes and measure nothing */
    const char *env = getenv("POL_SCALE");
    if (env != NULL && atol(env) > 0)
        N = (size_t)atol(env);
    char err[512];
    struct timespec t0, t1, t2, t3;

    /* Written by another process, so that this one's memory is only the build's. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct pol_store *cs = NULL;
        uint8_t der[] = { 0x30, 0x11, 0x31, 0x0f, 0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x06,
                          'B', 'i', 'g', ' ', 'C', 'A' };
        struct pol_revocation *rs = calloc(N, sizeof(*rs));
        uint8_t *serials = malloc(N * 16);
        if (rs == NULL || serials == NULL || pol_store_open_sqlite(P("big.db"), &cs, NULL, 0) != 0)
            _exit(10);
        for (size_t i = 0; i < N; i++) {
            big_serial(i, serials + 16 * i);
            rs[i].issuer_der = der;
            rs[i].issuer_der_len = sizeof(der);
            rs[i].issuer_text = "CN=Big CA";
            rs[i].serial = serials + 16 * i;
            rs[i].serial_len = 16;
            rs[i].reason = POL_REASON_KEY_COMPROMISE;
            rs[i].revoked_at = 1700000000;
        }
        int rc = pol_store_revoke_batch(cs, rs, N, &test_actor, NULL, NULL, 0);
        pol_store_close(cs);
        free(rs);
        free(serials);
        _exit(rc == 0 ? 0 : 11);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    struct pol_store *st = NULL;
    struct pol_live *live = NULL;
    assert_int_equal(pol_store_open_sqlite(P("big.db"), &st, err, sizeof(err)), 0);
    assert_int_equal(pol_live_new(1, NULL, &live), 0);
    long rss0 = status_kb("VmRSS"), hwm0 = status_kb("VmHWM");
    clock_gettime(CLOCK_MONOTONIC, &t2);
    struct pol_snapshot *s = NULL;
    assert_int_equal(pol_snapshot_build(st, &s, err, sizeof(err)), 0);
    pol_snapshot_publish(live, s);
    clock_gettime(CLOCK_MONOTONIC, &t3);
    long rss1 = status_kb("VmRSS"), hwm1 = status_kb("VmHWM");

    assert_int_equal(pol_reader_register(live, 0), 0);
    const struct pol_snapshot *cur = pol_snapshot_current(live, 0);
    struct pol_snapshot_stats stats;
    pol_snapshot_get_stats(cur, &stats);
    assert_int_equal(stats.revocations, N);
    uint8_t der[] = { 0x30, 0x11, 0x31, 0x0f, 0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x06,
                      'B', 'i', 'g', ' ', 'C', 'A' };
    uint8_t h[POL_HASH_LEN], serial[16];
    assert_int_equal(pol_sha256(der, sizeof(der), h), 0);
    struct timespec l0, l1;
    size_t hits = 0;
    const size_t LOOKUPS = 2000000;
    clock_gettime(CLOCK_MONOTONIC, &l0);
    for (size_t i = 0; i < LOOKUPS; i++) {
        /* half present, half absent */
        big_serial(i % 2 ? (i / 2) % N : N + i, serial);
        hits += (size_t)pol_snapshot_is_revoked(cur, h, serial, sizeof(serial), NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &l1);
    assert_int_equal(hits, LOOKUPS / 2);

    printf("[ MEASURE  ] %zu revocations: store write (one transaction, child process) %.2f s\n", N, secs(&t0, &t1));
    printf("[ MEASURE  ] snapshot build + publish %.3f s; snapshot %.1f MB; RSS %.1f -> %.1f MB (+%.1f), "
           "peak +%.1f MB\n", secs(&t2, &t3), stats.bytes / 1048576.0, rss0 / 1024.0, rss1 / 1024.0,
           (rss1 - rss0) / 1024.0, (hwm1 - hwm0) / 1024.0);
    printf("[ MEASURE  ] lookup %.0f ns (random 16-byte serials, half hits)\n", secs(&l0, &l1) * 1e9 / LOOKUPS);
    pol_reader_unregister(live, 0);
    pol_live_free(live);
    pol_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* first, so that its RSS figures are those of a fresh process (DESIGN.md, benchmarking) */
        cmocka_unit_test(test_scale_one_million),
        cmocka_unit_test(test_hset),
        cmocka_unit_test(test_reclamation_rules),
        cmocka_unit_test(test_concurrent_readers_during_publishes),
        cmocka_unit_test(test_refresh_from_store),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
