/* test_pool.c - unit tests for gateway/pool.c: smooth weighted round-robin, least-connections,
 * backends marked down, each backend tried at most once per connection, counters, reloads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/pool.h"

#define MAXB 100

struct fixture {
    struct gw_backend_cfg backends[MAXB];
    struct gw_listener_cfg l;
    struct gw_pool *pool;
};

/* A listener with n backends 127.0.0.1:7001.. of the given weights (NULL: weight 0, read as 1). */
static struct fixture *fixture_new(size_t n, const unsigned *weights, enum gw_balance balance)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_true(n <= MAXB);
    for (size_t i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof(text), "127.0.0.1:%zu", 7001 + i);
        assert_int_equal(gw_addr_parse(text, &f->backends[i].addr), 0);
        f->backends[i].weight = weights ? weights[i] : 0;
    }
    f->l.name = "api";
    f->l.backends = f->backends;
    f->l.nbackends = n;
    f->l.balance = balance;
    assert_int_equal(gw_pool_new(&f->l, NULL, &f->pool), 0);
    return f;
}

static void fixture_free(struct fixture *f)
{
    gw_pool_free(f->pool);
    free(f);
}

/* One connection's first pick, released at once as a completed connection. */
static int pick_one(struct gw_pool *p)
{
    struct gw_pool_tried t;
    assert_int_equal(gw_pool_tried_init(&t, gw_pool_size(p)), 0);
    int i = gw_pool_pick(p, &t);
    if (i >= 0)
        gw_pool_release(p, (size_t)i, 0);
    gw_pool_tried_free(&t);
    return i;
}

/* ---- round-robin ---- */

static void test_rr_weights_1_3(void **state)
{
    (void)state;
    unsigned w[] = { 1, 3 };
    struct fixture *f = fixture_new(2, w, GW_BALANCE_ROUND_ROBIN);
    unsigned count[2] = { 0, 0 };
    for (int k = 0; k < 400; k++) {
        int i = pick_one(f->pool);
        assert_true(i == 0 || i == 1);
        count[i]++;
    }
    assert_int_equal(count[0], 100);
    assert_int_equal(count[1], 300);
    struct gw_backend_stats st;
    gw_pool_stats(f->pool, 1, &st);
    assert_int_equal(st.total, 300);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.up, 1);
    fixture_free(f);
}

/* nginx's documented example: weights 5, 1, 1 give a a b a c a a - spread, not a a a a a b c. */
static void test_rr_smooth_order(void **state)
{
    (void)state;
    unsigned w[] = { 5, 1, 1 };
    struct fixture *f = fixture_new(3, w, GW_BALANCE_ROUND_ROBIN);
    static const int want[] = { 0, 0, 1, 0, 2, 0, 0 };
    for (int cycle = 0; cycle < 3; cycle++)
        for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++)
            assert_int_equal(pick_one(f->pool), want[k]);
    fixture_free(f);
}

/* Weight 0 (the parser's default before it fills weights) reads as 1: plain rotation. */
static void test_rr_weight_zero_is_one(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(3, NULL, GW_BALANCE_ROUND_ROBIN);
    for (int k = 0; k < 9; k++)
        assert_int_equal(pick_one(f->pool), k % 3);
    fixture_free(f);
}

static void test_rr_skips_down(void **state)
{
    (void)state;
    unsigned w[] = { 1, 1, 2 };
    struct fixture *f = fixture_new(3, w, GW_BALANCE_ROUND_ROBIN);
    assert_int_equal(gw_pool_set_up(f->pool, 2, 0), 1);
    assert_int_equal(gw_pool_is_up(f->pool, 2), 0);
    unsigned count[3] = { 0, 0, 0 };
    for (int k = 0; k < 100; k++)
        count[pick_one(f->pool)]++;
    assert_int_equal(count[2], 0);
    assert_int_equal(count[0], 50);
    assert_int_equal(count[1], 50);
    /* Up again: it gets its share again (2 of every 4). */
    assert_int_equal(gw_pool_set_up(f->pool, 2, 1), 0);
    memset(count, 0, sizeof(count));
    for (int k = 0; k < 400; k++)
        count[pick_one(f->pool)]++;
    assert_in_range(count[2], 195, 205);
    fixture_free(f);
}

/* ---- least-connections ---- */

static void test_lc_fewest_active(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(3, NULL, GW_BALANCE_LEAST_CONN);
    struct gw_pool_tried t;
    /* Three held connections: one on each backend, whatever the order. */
    unsigned seen = 0;
    for (int k = 0; k < 3; k++) {
        assert_int_equal(gw_pool_tried_init(&t, 3), 0);
        int i = gw_pool_pick(f->pool, &t);
        assert_in_range(i, 0, 2);
        seen |= 1u << i;
        gw_pool_tried_free(&t);
    }
    assert_int_equal(seen, 7);
    /* Backend 1's connection ends: the next one goes to backend 1, the least loaded. */
    gw_pool_release(f->pool, 1, 0);
    assert_int_equal(gw_pool_tried_init(&t, 3), 0);
    assert_int_equal(gw_pool_pick(f->pool, &t), 1);
    gw_pool_tried_free(&t);
    /* One each now: ties take turns, so three short connections cover the three backends. */
    seen = 0;
    for (int k = 0; k < 3; k++)
        seen |= 1u << pick_one(f->pool);
    assert_int_equal(seen, 7);
    for (size_t i = 0; i < 3; i++) {
        struct gw_backend_stats st;
        gw_pool_stats(f->pool, i, &st);
        assert_int_equal(st.active, 1);
        gw_pool_release(f->pool, i, 0);
    }
    fixture_free(f);
}

/* Weight divides: with weights 1 and 3 and connections held, backend 1 carries three times as many. */
static void test_lc_weight_divides(void **state)
{
    (void)state;
    unsigned w[] = { 1, 3 };
    struct fixture *f = fixture_new(2, w, GW_BALANCE_LEAST_CONN);
    for (int k = 0; k < 40; k++) {
        struct gw_pool_tried t;
        assert_int_equal(gw_pool_tried_init(&t, 2), 0);
        assert_true(gw_pool_pick(f->pool, &t) >= 0); /* held: never released */
        gw_pool_tried_free(&t);
    }
    struct gw_backend_stats a, b;
    gw_pool_stats(f->pool, 0, &a);
    gw_pool_stats(f->pool, 1, &b);
    assert_int_equal(a.active, 10);
    assert_int_equal(b.active, 30);
    fixture_free(f);
}

static void test_lc_skips_down(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(3, NULL, GW_BALANCE_LEAST_CONN);
    (void)gw_pool_set_up(f->pool, 0, 0);
    for (int k = 0; k < 30; k++) {
        struct gw_pool_tried t;
        assert_int_equal(gw_pool_tried_init(&t, 3), 0);
        assert_int_not_equal(gw_pool_pick(f->pool, &t), 0); /* held */
        gw_pool_tried_free(&t);
    }
    struct gw_backend_stats st;
    gw_pool_stats(f->pool, 0, &st);
    assert_int_equal(st.total, 0);
    assert_int_equal(st.up, 0);
    fixture_free(f);
}

/* ---- retries ---- */

/* Every connect fails: each backend is offered once, then nothing; failures are counted. */
static void check_each_once(enum gw_balance balance)
{
    unsigned w[] = { 3, 1, 2, 1, 5 };
    struct fixture *f = fixture_new(5, w, balance);
    for (int conn = 0; conn < 7; conn++) {
        struct gw_pool_tried t;
        assert_int_equal(gw_pool_tried_init(&t, 5), 0);
        unsigned seen = 0;
        for (int k = 0; k < 5; k++) {
            int i = gw_pool_pick(f->pool, &t);
            assert_in_range(i, 0, 4);
            assert_int_equal(seen & (1u << i), 0);
            seen |= 1u << i;
            gw_pool_release(f->pool, (size_t)i, 1);
        }
        assert_int_equal(seen, 0x1f);
        assert_int_equal(gw_pool_pick(f->pool, &t), -1);
        gw_pool_tried_free(&t);
    }
    for (size_t i = 0; i < 5; i++) {
        struct gw_backend_stats st;
        gw_pool_stats(f->pool, i, &st);
        assert_int_equal(st.total, 7);
        assert_int_equal(st.failures, 7);
        assert_int_equal(st.active, 0);
    }
    fixture_free(f);
}

static void test_each_tried_once_rr(void **state)
{
    (void)state;
    check_each_once(GW_BALANCE_ROUND_ROBIN);
}

static void test_each_tried_once_lc(void **state)
{
    (void)state;
    check_each_once(GW_BALANCE_LEAST_CONN);
}

/* With some backends down, retries go over the up ones only: a down backend receives nothing. */
static void test_retry_skips_down(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(4, NULL, GW_BALANCE_ROUND_ROBIN);
    (void)gw_pool_set_up(f->pool, 1, 0);
    (void)gw_pool_set_up(f->pool, 3, 0);
    for (int conn = 0; conn < 5; conn++) {
        struct gw_pool_tried t;
        assert_int_equal(gw_pool_tried_init(&t, 4), 0);
        unsigned seen = 0;
        int i;
        while ((i = gw_pool_pick(f->pool, &t)) >= 0) {
            seen |= 1u << i;
            gw_pool_release(f->pool, (size_t)i, 1);
        }
        assert_int_equal(seen, 0x5);
        gw_pool_tried_free(&t);
    }
    fixture_free(f);
}

/* No backend up at all: every backend is tried anyway (pool.h says why), each once. */
static void test_all_down_still_tried(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(3, NULL, GW_BALANCE_ROUND_ROBIN);
    for (size_t i = 0; i < 3; i++)
        (void)gw_pool_set_up(f->pool, i, 0);
    struct gw_pool_tried t;
    assert_int_equal(gw_pool_tried_init(&t, 3), 0);
    unsigned seen = 0;
    int i;
    while ((i = gw_pool_pick(f->pool, &t)) >= 0) {
        seen |= 1u << i;
        gw_pool_release(f->pool, (size_t)i, 1);
    }
    assert_int_equal(seen, 0x7);
    gw_pool_tried_free(&t);
    fixture_free(f);
}

/* More backends than one word of the tried set. */
static void test_many_backends(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(MAXB, NULL, GW_BALANCE_ROUND_ROBIN);
    struct gw_pool_tried t;
    assert_int_equal(gw_pool_tried_init(&t, MAXB), 0);
    assert_non_null(t.big);
    unsigned char seen[MAXB] = { 0 };
    for (int k = 0; k < MAXB; k++) {
        int i = gw_pool_pick(f->pool, &t);
        assert_in_range(i, 0, MAXB - 1);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        gw_pool_release(f->pool, (size_t)i, 1);
    }
    assert_int_equal(gw_pool_pick(f->pool, &t), -1);
    gw_pool_tried_free(&t);
    assert_null(t.big);
    gw_pool_tried_free(&t); /* twice is harmless */
    fixture_free(f);
}

/* ---- reloads ---- */

/* A reload keeps what is known of a backend with the same address: down stays down (when both
 * generations check health), counters carry on; a new backend starts up. */
static void test_reload_inherits(void **state)
{
    (void)state;
    struct fixture *old = fixture_new(2, NULL, GW_BALANCE_ROUND_ROBIN);
    old->l.health.type = GW_HEALTH_TCP;
    (void)gw_pool_set_up(old->pool, 1, 0);
    for (int k = 0; k < 4; k++)
        (void)pick_one(old->pool);
    struct fixture *nw = calloc(1, sizeof(*nw));
    assert_non_null(nw);
    /* New order: 7002 first, and a new 7009. */
    assert_int_equal(gw_addr_parse("127.0.0.1:7002", &nw->backends[0].addr), 0);
    assert_int_equal(gw_addr_parse("127.0.0.1:7009", &nw->backends[1].addr), 0);
    assert_int_equal(gw_addr_parse("127.0.0.1:7001", &nw->backends[2].addr), 0);
    nw->l.name = "api";
    nw->l.backends = nw->backends;
    nw->l.nbackends = 3;
    nw->l.health.type = GW_HEALTH_HTTP;
    assert_int_equal(gw_pool_new(&nw->l, old->pool, &nw->pool), 0);
    assert_int_equal(gw_pool_is_up(nw->pool, 0), 0);
    assert_int_equal(gw_pool_is_up(nw->pool, 1), 1);
    assert_int_equal(gw_pool_is_up(nw->pool, 2), 1);
    struct gw_backend_stats st;
    gw_pool_stats(nw->pool, 2, &st);
    assert_int_equal(st.total, 4);
    assert_int_equal(st.active, 0);
    gw_pool_free(nw->pool);
    /* Without health checks in the new generation, every backend starts up. */
    nw->l.health.type = GW_HEALTH_NONE;
    assert_int_equal(gw_pool_new(&nw->l, old->pool, &nw->pool), 0);
    assert_int_equal(gw_pool_is_up(nw->pool, 0), 1);
    fixture_free(nw);
    fixture_free(old);
}

static void test_free_null(void **state)
{
    (void)state;
    gw_pool_free(NULL);
    gw_health_stop(NULL);
    gw_health_publish(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rr_weights_1_3),
        cmocka_unit_test(test_rr_smooth_order),
        cmocka_unit_test(test_rr_weight_zero_is_one),
        cmocka_unit_test(test_rr_skips_down),
        cmocka_unit_test(test_lc_fewest_active),
        cmocka_unit_test(test_lc_weight_divides),
        cmocka_unit_test(test_lc_skips_down),
        cmocka_unit_test(test_each_tried_once_rr),
        cmocka_unit_test(test_each_tried_once_lc),
        cmocka_unit_test(test_retry_skips_down),
        cmocka_unit_test(test_all_down_still_tried),
        cmocka_unit_test(test_many_backends),
        cmocka_unit_test(test_reload_inherits),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
