/* main.c - hsmgate's command line: dispatches to the sub-commands in cmd.h. */
#include <stdio.h>
#include <string.h>

#include "gateway/cmd.h"

#ifndef HSMGATE_VERSION
#define HSMGATE_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hsmgate COMMAND [OPTIONS]\n"
            "\n"
            "commands:\n"
            "  run -c FILE      run the gateway (as root: needs user: or allow_root: true, or --allow-root)\n"
            "  check -c FILE    validate FILE and resolve every key in the HSM; exit 0 or print file:line: problem\n"
            "  pki ...          keys and certificates in the HSM (hsmgate pki --help)\n"
            "  revoke ...       revoke a client certificate, or lift a hold (hsmgate revoke --help)\n"
            "  revocations ...  list revocations (hsmgate revocations --help)\n"
            "  allow ...        allowlist entries: add, rm, ls (hsmgate allow --help)\n"
            "  crl ...          import CRLs of other CAs, list them (hsmgate crl --help)\n"
            "  verify ...       would a listener admit this client certificate? offline (hsmgate verify --help)\n"
            "  audit ...        the store's hash-chained audit trail: verify, ls (hsmgate audit --help)\n"
            "  admin token ...  make a bearer token for the admin API (hsmgate admin --help)\n"
            "  version          print the version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return gw_cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return gw_cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "pki") == 0)
        return gw_cmd_pki(argc - 1, argv + 1);
    if (strcmp(cmd, "revoke") == 0)
        return gw_cmd_revoke(argc - 1, argv + 1);
    if (strcmp(cmd, "revocations") == 0)
        return gw_cmd_revocations(argc - 1, argv + 1);
    if (strcmp(cmd, "allow") == 0)
        return gw_cmd_allow(argc - 1, argv + 1);
    if (strcmp(cmd, "crl") == 0)
        return gw_cmd_crl(argc - 1, argv + 1);
    if (strcmp(cmd, "verify") == 0)
        return gw_cmd_verify(argc - 1, argv + 1);
    if (strcmp(cmd, "audit") == 0)
        return gw_cmd_audit(argc - 1, argv + 1);
    if (strcmp(cmd, "admin") == 0)
        return gw_cmd_admin(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("hsmgate %s\n", HSMGATE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "hsmgate: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
