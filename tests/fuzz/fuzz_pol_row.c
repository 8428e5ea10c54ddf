/* fuzz_pol_row.c - fuzz target for what the snapshot builder decodes from store rows and what
 * operators type (policies/allow.c, err.c, snapshot.c): allowlist values per match type, serials,
 * times, reason names. Store files are untrusted input too: a backup from elsewhere, a hand edit.
 *
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -I. -isystem build/wolfssl/include \
 *              tests/fuzz/fuzz_pol_row.c policies/[a-z]*.c build/wolfssl/lib/libwolfssl.a -lsqlite3 -lm -lpthread
 * Replay: build/release/tests/fuzz_pol_row tests/fuzz/corpus/pol_row/FILE...
 *
 * Input: one byte selecting the match type, then text up to a NUL; after the NUL, a list name.
 * Properties checked beyond the sanitizers:
 *  - a normalized value decodes (pol_allow_key) and normalizes to itself (canonical is a fixed point);
 *  - a parsed serial formats and parses back to the same octets;
 *  - a parsed time formats (absolute times) and parses back to the same instant;
 *  - the builder never fails on a bad row (it skips it) and the finished snapshot finds what it took.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/pol_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[POL_VALUE_MAX + 8], list[80], norm[POL_VALUE_MAX], again[POL_VALUE_MAX], fmt[80];
    uint8_t key[POL_VALUE_MAX], serial[POL_SERIAL_MAX], serial2[POL_SERIAL_MAX];
    size_t n, n2;
    time_t t, t2;
    int r;

    if (size < 1)
        return 0;
    enum pol_match m = (enum pol_match)(data[0] % (POL_MATCH_COUNT + 1));   /* one past: an unknown type */
    size_t len = 0;
    while (1 + len < size && data[1 + len] != 0 && len < POL_VALUE_MAX + 4)
        len++;
    memcpy(text, data + 1, len);
    text[len] = '\0';
    size_t rest = 1 + len < size ? size - 2 - len : 0;
    size_t llen = rest < sizeof(list) - 1 ? rest : sizeof(list) - 1;
    memcpy(list, data + size - rest, llen);
    list[llen] = '\0';

    /* allowlist values */
    if (pol_allow_value_normalize(m, text, norm, sizeof(norm), NULL, 0) == 0) {
        if (pol_allow_key(m, norm, key, sizeof(key)) <= 0)
            abort();
        if (pol_allow_value_normalize(m, norm, again, sizeof(again), NULL, 0) != 0 || strcmp(norm, again) != 0)
            abort();
    }
    if (pol_allow_key(m, text, key, sizeof(key)) > (int)sizeof(key))
        abort();

    /* serials, times, names */
    if (pol_serial_parse(text, serial, &n) == 0) {
        pol_serial_format(serial, n, fmt, sizeof(fmt));
        if (pol_serial_parse(fmt, serial2, &n2) != 0 || n2 != n || memcmp(serial, serial2, n) != 0)
            abort();
    }
    if (pol_time_parse(text, 1700000000, &t) == 0 && text[0] != '+' && text[0] != '-') {
        pol_time_format(t, fmt, sizeof(fmt));
        if (pol_time_parse(fmt, 0, &t2) != 0 || t2 != t)
            abort();
    }
    if (pol_reason_code_parse(text, &r) == 0 && strcmp(pol_reason_code_name(r), "unknown") == 0)
        abort();
    (void)pol_list_name_ok(list);

    /* a store row through the builder */
    struct pol_snapshot *s = NULL;
    if (pol_builder_new(&s) != 0)
        return 0;
    if (pol_builder_allow(s, list, pol_match_name(m), text, 0, 42) != 0)
        abort();
    if (pol_builder_finish(s, 1, NULL, 0) != 0)
        abort();
    struct pol_snapshot_stats st;
    pol_snapshot_get_stats(s, &st);
    if (st.allow_entries + st.skipped_rows != 1)
        abort();
    if (st.allow_entries == 1) {
        const struct pol_snap_list *l = pol_snapshot_list(s, list, strlen(list));
        int k = pol_allow_key(m, text, key, sizeof(key));
        struct pol_hval v;
        if (l == NULL || k <= 0 || !pol_hset_find(&l->sets[m], s->seed, key, (size_t)k, &v) || v.id != 42)
            abort();
    }
    pol_snapshot_free(s);
    return 0;
}

/* Built as a plain program, tests/fuzz/standalone.c supplies main(). */
