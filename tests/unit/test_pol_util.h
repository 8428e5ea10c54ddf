/* test_pol_util.h - helpers shared by the policies/ unit tests (test_pol_*.c): a temporary directory
 * per test binary, shell commands, and a test PKI made with OpenSSL's CLI (which shares no code with
 * wolfSSL or with us). Static functions: each test binary includes this once. */
#ifndef HSMGATE_TESTS_TEST_POL_UTIL_H
#define HSMGATE_TESTS_TEST_POL_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "policies/pol.h"

static char g_dir[64];

/* Rotating buffers so that one call can take several paths. */
static const char *P(const char *name)
{
    static char bufs[64][256];
    static int next;
    char *p = bufs[next++ % 64];
    snprintf(p, 256, "%s/%s", g_dir, name);
    return p;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

static void make_tmpdir(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/hsmgate-pol-XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
}

static void remove_tmpdir(void)
{
    if (g_dir[0] != '\0' && getenv("POL_TEST_KEEP") == NULL)
        (void)sh("rm -rf '%s'", g_dir);
}

/* A test PKI in g_dir (see the script for what each file is). */
static const char pki_script[] =
    "set -e\n"
    "cd \"$1\"\n"
    "ca() { openssl req -x509 -newkey $3 -nodes -keyout $1.key -out $1.pem -subj \"$2\" -days 365 "
    "  -addext \"keyUsage=critical,${4:-keyCertSign,cRLSign}\" -addext basicConstraints=critical,CA:TRUE 2>/dev/null; }\n"
    "ca ca '/O=Test Bank/CN=Test Client CA' 'ec -pkeyopt ec_paramgen_curve:P-256'\n"
    "ca ca2 '/O=Partner/CN=Partner CA' 'ec -pkeyopt ec_paramgen_curve:P-384'\n"
    "ca rsaca '/O=Test Bank/CN=RSA CA' rsa:2048\n"
    "ca evil '/O=Test Bank/CN=Test Client CA' 'ec -pkeyopt ec_paramgen_curve:P-256'\n"  /* same name, other key */
    "ca nocrlsign '/O=Test Bank/CN=No CRL CA' 'ec -pkeyopt ec_paramgen_curve:P-256' keyCertSign\n"
    "leaf() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr -subj \"$3\" 2>/dev/null;"
    "  printf \"$5\" > $1.ext;"
    "  openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -set_serial $4 -days 30 -extfile $1.ext -out $1.pem 2>/dev/null;"
    "  openssl x509 -in $1.pem -outform DER -out $1.der; }\n"
    "leaf client ca '/C=CH/O=Client, Inc./CN=client1' 0x8F1234 "
    "  'extendedKeyUsage=clientAuth\\nsubjectAltName=DNS:Client1.Example.COM,URI:spiffe://bank/client1,email:Ops@Example.COM\\n'\n"
    "leaf client2 ca '/O=Client Two/CN=client2' 0x0A 'extendedKeyUsage=clientAuth\\n'\n"
    "leaf server ca '/CN=server' 0x1001 'extendedKeyUsage=serverAuth\\n'\n"
    "leaf noeku ca '/CN=noeku' 0x1002 'basicConstraints=CA:FALSE\\n'\n"
    "leaf anyeku ca '/CN=anyeku' 0x1003 'extendedKeyUsage=anyExtendedKeyUsage\\n'\n"
    "leaf subca ca '/CN=subca' 0x1004 'basicConstraints=critical,CA:TRUE\\nextendedKeyUsage=clientAuth\\n'\n"
    "leaf partner ca2 '/CN=partner-client' 0x2001 'extendedKeyUsage=clientAuth\\n'\n"
    "leaf subleaf subca '/CN=sub-client' 0x5001 'extendedKeyUsage=clientAuth\\n'\n"
    "leaf rsaclient rsaca '/CN=rsa-client' 0x3001 'extendedKeyUsage=clientAuth\\n'\n"
    "for c in ca ca2 rsaca evil nocrlsign; do openssl x509 -in $c.pem -outform DER -out $c.der; done\n";

static __attribute__((unused)) void make_pki(void)
{
    FILE *f = fopen(P("pki.sh"), "w");
    assert_non_null(f);
    fputs(pki_script, f);
    fclose(f);
    if (sh("sh '%s' '%s'", P("pki.sh"), g_dir) != 0) {
        fprintf(stderr, "making the test PKI with openssl failed\n");
        exit(1);
    }
}

/* DER of a PEM or DER file (malloc'd). */
static __attribute__((unused)) uint8_t *load_der(const char *name, const char *label, size_t *len)
{
    uint8_t *der = NULL;
    char err[256];
    if (pol_file_load(P(name), label, 64u << 20, &der, len, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    return der;
}

static __attribute__((unused)) struct pol_cert *load_cert(const char *name)
{
    struct pol_cert *c = NULL;
    char err[256];
    if (pol_cert_load(P(name), &c, err, sizeof(err)) != 0)
        fprintf(stderr, "%s\n", err);
    return c;
}

/* Output of a shell command (first line, trailing newline removed) into buf. */
static char *sh_out(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4), unused));
static char *sh_out(char *buf, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    buf[0] = '\0';
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return buf;
    if (fgets(buf, (int)cap, f) == NULL)
        buf[0] = '\0';
    pclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

/* `make valgrind` runs the unit tests too: loops that only measure or repeat do less there. */
static __attribute__((unused)) int under_valgrind(void)
{
    const char *pre = getenv("LD_PRELOAD");
    return pre != NULL && strstr(pre, "vgpreload") != NULL;
}

static const struct pol_actor test_actor = { "test:unit", "made by a unit test" };

#endif
