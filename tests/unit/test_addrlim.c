/* test_addrlim.c - per-client-address limits (gateway/addrlim.c): counts, limits, the table emptying
 * as connections leave, IPv4 and IPv4-mapped IPv6 as one address, and many threads at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "gateway/addrlim.h"

static struct sockaddr_storage v4(const char *a)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, a, &in->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *a)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, a, &in6->sin6_addr), 1);
    return ss;
}

/* enter() with connection and handshake limits only, at time 0. */
static enum gw_addrlim_result enter(struct gw_addrlim *t, const struct sockaddr_storage *ss, unsigned conns,
                                    unsigned hs, struct gw_addrkey *key)
{
    struct gw_addrlim_limits l = { conns, hs, 0 };
    return gw_addrlim_enter(t, ss, &l, 0, key);
}

static void test_handshake_limit(void **state)
{
    (void)state;
    struct gw_addrlim *t = gw_addrlim_new();
    struct gw_addrkey k[4], other;
    struct sockaddr_storage a = v4("192.0.2.7"), b = v4("192.0.2.8");
    assert_non_null(t);
    for (int i = 0; i < 3; i++)
        assert_int_equal(enter(t, &a, 0, 3, &k[i]), GW_ADDRLIM_OK);
    /* a fourth unfinished handshake from the same address is refused; another address is not */
    assert_int_equal(enter(t, &a, 0, 3, &k[3]), GW_ADDRLIM_HANDSHAKES);
    assert_int_equal(enter(t, &b, 0, 3, &other), GW_ADDRLIM_OK);
    /* one handshake ends: room for one more, and the finished one counts as a connection only */
    gw_addrlim_handshake_done(t, &k[0]);
    assert_int_equal(enter(t, &a, 0, 3, &k[3]), GW_ADDRLIM_OK);
    assert_int_equal(enter(t, &a, 0, 3, &k[3]), GW_ADDRLIM_HANDSHAKES);
    char text[64];
    gw_addrlim_key_text(&k[0], text, sizeof(text));
    assert_string_equal(text, "192.0.2.7");
    assert_int_equal(gw_addrlim_addresses(t), 2);
    gw_addrlim_leave(t, &k[0], 0);
    for (int i = 1; i < 4; i++)
        gw_addrlim_leave(t, &k[i], 1);
    gw_addrlim_leave(t, &other, 1);
    assert_int_equal(gw_addrlim_addresses(t), 0);   /* addresses leave with their last connection */
    gw_addrlim_free(t);
}

static void test_connection_limit_and_mapping(void **state)
{
    (void)state;
    struct gw_addrlim *t = gw_addrlim_new();
    struct gw_addrkey k[3], m;
    struct sockaddr_storage a = v4("198.51.100.1"), mapped = v6("::ffff:198.51.100.1"), six = v6("2001:db8::1");
    assert_non_null(t);
    assert_int_equal(enter(t, &a, 2, 0, &k[0]), GW_ADDRLIM_OK);
    gw_addrlim_handshake_done(t, &k[0]);
    /* the same address seen by a dual-stack socket counts against the same limit */
    assert_int_equal(enter(t, &mapped, 2, 0, &k[1]), GW_ADDRLIM_OK);
    assert_memory_equal(&k[0], &k[1], sizeof(k[0]));
    gw_addrlim_handshake_done(t, &k[1]);
    assert_int_equal(enter(t, &a, 2, 0, &k[2]), GW_ADDRLIM_CONNECTIONS);
    /* a refused address that held nothing leaves no entry behind */
    assert_int_equal(enter(t, &six, 2, 0, &m), GW_ADDRLIM_OK);
    char text[64];
    gw_addrlim_key_text(&m, text, sizeof(text));
    assert_string_equal(text, "2001:db8::1");
    gw_addrlim_leave(t, &m, 1);
    assert_int_equal(gw_addrlim_addresses(t), 1);
    gw_addrlim_leave(t, &k[0], 0);
    assert_int_equal(enter(t, &a, 2, 0, &k[2]), GW_ADDRLIM_OK);
    gw_addrlim_leave(t, &k[1], 0);
    gw_addrlim_leave(t, &k[2], 1);
    assert_int_equal(gw_addrlim_addresses(t), 0);
    /* limits of 0: counted, never refused */
    struct gw_addrkey z[100];
    for (int i = 0; i < 100; i++)
        assert_int_equal(enter(t, &a, 0, 0, &z[i]), GW_ADDRLIM_OK);
    for (int i = 0; i < 100; i++)
        gw_addrlim_leave(t, &z[i], 1);
    assert_int_equal(gw_addrlim_addresses(t), 0);
    gw_addrlim_free(t);
}

struct worker_arg {
    struct gw_addrlim *t;
    int id;
    unsigned refused;
};

static void *churn(void *p)
{
    struct worker_arg *w = p;
    struct gw_addrkey keys[8];
    char a[32];
    for (int round = 0; round < 2000; round++) {
        snprintf(a, sizeof(a), "10.0.%d.%d", round % 7, w->id);
        struct sockaddr_storage ss = v4(a);
        int held = 0;
        for (int i = 0; i < 8; i++) {
            if (enter(w->t, &ss, 0, 6, &keys[held]) == GW_ADDRLIM_OK)
                held++;
            else
                w->refused++;
        }
        for (int i = 0; i < held; i++) {
            if (i % 2 == 0)
                gw_addrlim_handshake_done(w->t, &keys[i]);
            gw_addrlim_leave(w->t, &keys[i], i % 2 != 0);
        }
    }
    return NULL;
}

/* Workers share the table: counts stay exact under contention (8 threads, each its own addresses:
 * exactly 2 of 8 refused per round), and it empties at the end. */
static void test_threads(void **state)
{
    (void)state;
    struct gw_addrlim *t = gw_addrlim_new();
    pthread_t th[8];
    struct worker_arg args[8];
    assert_non_null(t);
    for (int i = 0; i < 8; i++) {
        args[i] = (struct worker_arg){ t, i + 1, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, churn, &args[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].refused, 2000 * 2);
    }
    assert_int_equal(gw_addrlim_addresses(t), 0);
    gw_addrlim_free(t);
}

/* The rate: a burst of twice the rate, then rate per second; the entry stays (the bucket remembers)
 * until the sweep finds it idle and full again. */
static void test_rate(void **state)
{
    (void)state;
    struct gw_addrlim *t = gw_addrlim_new();
    struct gw_addrlim_limits l = { 0, 0, 5 };
    struct sockaddr_storage a = v4("203.0.113.9");
    struct gw_addrkey k;
    assert_non_null(t);
    uint64_t now = 1000000;
    for (int i = 0; i < 10; i++) {         /* the burst */
        assert_int_equal(gw_addrlim_enter(t, &a, &l, now, &k), GW_ADDRLIM_OK);
        gw_addrlim_handshake_done(t, &k);
        gw_addrlim_leave(t, &k, 0);
    }
    assert_int_equal(gw_addrlim_enter(t, &a, &l, now, &k), GW_ADDRLIM_RATE);
    assert_int_equal(gw_addrlim_addresses(t), 1);   /* remembered although it holds nothing */
    now += 200;                                      /* 200 ms at 5/s: one more */
    assert_int_equal(gw_addrlim_enter(t, &a, &l, now, &k), GW_ADDRLIM_OK);
    gw_addrlim_leave(t, &k, 1);
    assert_int_equal(gw_addrlim_enter(t, &a, &l, now, &k), GW_ADDRLIM_RATE);
    gw_addrlim_sweep(t, 5, now + 1000);              /* not full yet (1000 ms refills 5 of 10) */
    assert_int_equal(gw_addrlim_addresses(t), 1);
    gw_addrlim_sweep(t, 5, now + 2000);              /* full: forgotten */
    assert_int_equal(gw_addrlim_addresses(t), 0);
    gw_addrlim_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_limit),
        cmocka_unit_test(test_connection_limit_and_mapping),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
