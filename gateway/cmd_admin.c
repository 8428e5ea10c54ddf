/* cmd_admin.c - `hsmgate admin token NAME ROLE`: makes a bearer token for the admin API.
 *
 * Prints the token once on stdout (the caller keeps it; hsmgate never stores it) and, on stderr, the
 * line to append to the tokens file: only its SHA-256 is kept there (admin-api/README.md). */
#include <stdio.h>
#include <string.h>

#include "admin-api/adm.h"
#include "gateway/cmd.h"
#include "pkcs11/hsm.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: hsmgate admin token NAME ROLE [--line-only]\n"
               "  Makes a random bearer token for the admin API. ROLE: reader, operator or admin.\n"
               "  stdout: the token (shown once); stderr: the line for the tokens file,\n"
               "  \"NAME ROLE SHA256\". With --line-only, the line goes to stdout and the token to stderr.\n");
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 64 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

int gw_cmd_admin(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 4 || argc > 5 || strcmp(argv[1], "token") != 0 || (argc == 5 && strcmp(argv[4], "--line-only") != 0)) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[2], *role = argv[3];
    if (!name_ok(name)) {
        fprintf(stderr, "hsmgate admin: NAME must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_', '-'\n");
        return 2;
    }
    if (strcmp(role, "reader") != 0 && strcmp(role, "operator") != 0 && strcmp(role, "admin") != 0) {
        fprintf(stderr, "hsmgate admin: ROLE must be reader, operator or admin, not \"%s\"\n", role);
        return 2;
    }
    char token[ADM_TOKEN_LEN + 1], hash[ADM_TOKEN_HASH_HEX_LEN + 1];
    if (adm_token_new(token, sizeof(token), hash) != 0) {
        fprintf(stderr, "hsmgate admin: no random bytes from the system\n");
        return 1;
    }
    int line_only = argc == 5;
    fprintf(line_only ? stderr : stdout, "%s\n", token);
    fprintf(line_only ? stdout : stderr, "%s %s %s\n", name, role, hash);
    hsm_wipe(token, sizeof(token));
    return 0;
}
