/* cmd_run.c - `hsmgate run -c FILE` and `hsmgate check -c FILE`. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "gateway/cmd.h"
#include "gateway/server.h"
#include "gateway/service.h"

static int run_or_check(int argc, char **argv, int check_only)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { "allow-root", no_argument, NULL, 'R' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'R':
            if (check_only)
                goto usage;
            /* The same as allow_root: true (service.c): stay root after start-up. */
            gw_service_allow_root(1);
            break;
        case 'h':
            printf("usage: hsmgate %s -c FILE%s\n", argv[0], check_only ? "" : " [--allow-root]");
            return 0;
        default:
            goto usage;
        }
    }
    if (config == NULL || optind != argc)
        goto usage;
    return gw_server_main(config, check_only);
usage:
    fprintf(stderr, "usage: hsmgate %s -c FILE%s\n", argv[0], check_only ? "" : " [--allow-root]");
    return 2;
}

int gw_cmd_run(int argc, char **argv)
{
    return run_or_check(argc, argv, 0);
}

int gw_cmd_check(int argc, char **argv)
{
    return run_or_check(argc, argv, 1);
}
