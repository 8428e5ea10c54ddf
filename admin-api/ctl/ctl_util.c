/* ctl_util.c - hsmgatectl's small helpers: text from the server made safe for a terminal, values of
 * JSON answers as text, aligned tables, certificate/CRL/CSR files (PEM, or DER wrapped in PEM), and
 * percent-encoding for paths and queries.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin-api/ctl/ctl.h"

/* Length of the valid UTF-8 sequence at p (1-4), or 0. Overlongs and surrogates count as invalid. */
static size_t utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (p[0] >= 0xe0 && p[0] <= 0xef) {
        if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))
            return 0;
        return 3;
    }
    if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

void ctl_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;

    while (*p != '\0') {
        size_t n = utf8_len(p);
        if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f))) {
            *p++ = '?';
            continue;
        }
        /* C1 controls (U+0080-U+009F: 0xC2 0x80-0x9F) are read as escape sequences by some terminals. */
        if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
            p[0] = p[1] = '?';
            p += 2;
            continue;
        }
        p += n;
    }
}

/* Display width of clean UTF-8 text: one column per code point (good enough for names and comments). */
static size_t text_width(const char *s)
{
    size_t w = 0;

    for (; *s != '\0'; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/* Cuts clean text to max columns (max >= 4), ending it with "..." when cut. */
static void text_cut(char *s, unsigned max)
{
    size_t w = 0, k;

    if (max == 0 || text_width(s) <= max)
        return;
    for (k = 0; s[k] != '\0'; k++) {
        if (((unsigned char)s[k] & 0xc0) == 0x80)
            continue;
        if (w == max - 3)
            break;
        w++;
    }
    memcpy(s + k, "...", 4);
}

static char *fmt_scalar(const json_t *v)
{
    char *s = NULL;

    switch (json_typeof(v)) {
    case JSON_STRING:
        s = strdup(json_string_value(v));
        if (s != NULL)
            ctl_clean(s);
        return s;
    case JSON_INTEGER:
        if (asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0)
            return NULL;
        return s;
    case JSON_REAL:
        if (asprintf(&s, "%g", json_real_value(v)) < 0)
            return NULL;
        return s;
    case JSON_TRUE:
        return strdup("yes");
    case JSON_FALSE:
        return strdup("no");
    case JSON_NULL:
        return strdup("-");
    case JSON_ARRAY: {
        size_t i, n = 0;
        json_t *e;
        char *out = strdup(json_array_size(v) ? "" : "-");
        json_array_foreach(v, i, e) {
            char *one = fmt_scalar(e), *q;
            if (one == NULL || out == NULL || (q = realloc(out, n + strlen(one) + 2)) == NULL) {
                free(one);
                free(out);
                return NULL;
            }
            out = q;
            n += (size_t)sprintf(out + n, "%s%s", i ? "," : "", one);
            free(one);
        }
        return out;
    }
    case JSON_OBJECT:
        s = json_dumps(v, JSON_COMPACT);
        if (s != NULL)
            ctl_clean(s);
        return s;
    }
    return NULL;
}

/* The member at a dotted path ("counters.active"), or NULL. */
static const json_t *path_get(const json_t *o, const char *path, size_t n)
{
    char key[64];

    while (o != NULL && n > 0) {
        const char *dot = memchr(path, '.', n);
        size_t k = dot != NULL ? (size_t)(dot - path) : n;
        if (k >= sizeof(key))
            return NULL;
        memcpy(key, path, k);
        key[k] = '\0';
        o = json_object_get(o, key);
        if (dot == NULL)
            break;
        path += k + 1;
        n -= k + 1;
    }
    return o;
}

char *ctl_value(const json_t *o, const char *keys)
{
    const json_t *v = NULL;

    while (*keys != '\0' && (v == NULL || json_is_null(v))) {
        size_t n = strcspn(keys, "|");
        v = path_get(o, keys, n);
        keys += n + (keys[n] == '|');
    }
    return v != NULL ? fmt_scalar(v) : strdup("-");
}

const char *ctl_v(struct ctl_strs *t, const json_t *o, const char *keys)
{
    char *s;

    if (t->n == sizeof(t->s) / sizeof(t->s[0]) || (s = ctl_value(o, keys)) == NULL)
        return "?";
    t->s[t->n++] = s;
    return s;
}

void ctl_strs_free(struct ctl_strs *t)
{
    for (size_t k = 0; k < t->n; k++) {
        free(t->s[k]);
        t->s[k] = NULL;
    }
    t->n = 0;
}

void ctl_table(FILE *f, const json_t *items, const struct ctl_col *cols)
{
    size_t ncols = 0, nrows = json_array_size(items), *width;
    char **cell;

    while (cols[ncols].head != NULL)
        ncols++;
    width = calloc(ncols, sizeof(*width));
    cell = calloc((nrows + 1) * ncols, sizeof(*cell));
    if (width == NULL || cell == NULL) {
        fputs(CTL_NAME ": out of memory\n", stderr);
        goto out;
    }
    for (size_t c = 0; c < ncols; c++) {
        cell[c] = strdup(cols[c].head);
        for (size_t r = 0; r < nrows; r++) {
            char *s = ctl_value(json_array_get(items, r), cols[c].keys);
            if (s != NULL)
                text_cut(s, cols[c].max);
            cell[(r + 1) * ncols + c] = s;
        }
    }
    for (size_t k = 0; k < (nrows + 1) * ncols; k++) {
        size_t w = cell[k] != NULL ? text_width(cell[k]) : 1;
        if (w > width[k % ncols])
            width[k % ncols] = w;
    }
    for (size_t r = 0; r <= nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *s = cell[r * ncols + c] != NULL ? cell[r * ncols + c] : "?";
            if (c + 1 == ncols)
                fprintf(f, "%s\n", s);
            else
                fprintf(f, "%s%*s", s, (int)(width[c] - text_width(s) + 2), "");
        }
    }
out:
    for (size_t k = 0; cell != NULL && k < (nrows + 1) * ncols; k++)
        free(cell[k]);
    free(cell);
    free(width);
}

static int read_all(const char *path, size_t max, unsigned char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    unsigned char *p = NULL, *q;
    size_t n = 0, cap = 0;
    int rc = CTL_USAGE;

    if (f == NULL) {
        fprintf(stderr, CTL_NAME ": cannot open %s: %s\n", path, strerror(errno));
        return CTL_USAGE;
    }
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8192;
            if ((q = realloc(p, cap + 1)) == NULL) {
                fputs(CTL_NAME ": out of memory\n", stderr);
                goto out;
            }
            p = q;
        }
        size_t got = fread(p + n, 1, cap - n, f);
        n += got;
        if (n > max) {
            fprintf(stderr, CTL_NAME ": %s is larger than %zu MiB\n", path, max >> 20);
            goto out;
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, CTL_NAME ": cannot read %s\n", path);
        goto out;
    }
    if (n == 0) {
        fprintf(stderr, CTL_NAME ": %s is empty\n", path);
        goto out;
    }
    p[n] = '\0';
    *out = p;
    *len = n;
    p = NULL;
    rc = 0;
out:
    free(p);
    if (f != stdin)
        fclose(f);
    return rc;
}

int ctl_read_pem(const char *path, const char *label, size_t max, char **out)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char *raw = NULL;
    size_t n = 0, k, o = 0;
    char *pem;
    int rc;

    *out = NULL;
    if ((rc = read_all(path, max, &raw, &n)) != 0)
        return rc;
    if (memchr(raw, '\0', n) == NULL && strstr((char *)raw, "-----BEGIN ") != NULL) {
        *out = (char *)raw;     /* PEM: the server reads it (and says which block it missed) */
        return 0;
    }
    /* DER: base64 in lines of 64 between the PEM lines of RFC 7468. */
    size_t need = strlen(label) * 2 + 64 + (n + 2) / 3 * 4 + (n / 48 + 1);
    if ((pem = malloc(need)) == NULL) {
        free(raw);
        fputs(CTL_NAME ": out of memory\n", stderr);
        return CTL_REFUSED;
    }
    o = (size_t)sprintf(pem, "-----BEGIN %s-----\n", label);
    for (k = 0; k < n; k += 3) {
        uint32_t v = (uint32_t)raw[k] << 16 | (k + 1 < n ? (uint32_t)raw[k + 1] << 8 : 0) | (k + 2 < n ? raw[k + 2] : 0);
        pem[o++] = b64[v >> 18 & 63];
        pem[o++] = b64[v >> 12 & 63];
        pem[o++] = k + 1 < n ? b64[v >> 6 & 63] : '=';
        pem[o++] = k + 2 < n ? b64[v & 63] : '=';
        if ((k / 3 + 1) % 16 == 0 || k + 3 >= n)
            pem[o++] = '\n';
    }
    sprintf(pem + o, "-----END %s-----\n", label);
    free(raw);
    *out = pem;
    return 0;
}

char *ctl_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

int ctl_query_add(char **q, const char *name, const char *value)
{
    char *e, *n = NULL;

    if (value == NULL)
        return 0;
    if ((e = ctl_escape(value)) == NULL)
        return -1;
    int w = asprintf(&n, "%s%s%s=%s", *q != NULL ? *q : "", *q != NULL ? "&" : "", name, e);
    free(e);
    if (w < 0)
        return -1;
    free(*q);
    *q = n;
    return 0;
}

int ctl_set_str(json_t *o, const char *key, const char *value)
{
    json_t *v;

    if (value == NULL)
        return 0;
    if ((v = json_string(value)) == NULL) {
        fprintf(stderr, CTL_NAME ": the value of %s is not UTF-8 text\n", key);
        return -1;
    }
    return json_object_set_new(o, key, v) == 0 ? 0 : -1;
}
