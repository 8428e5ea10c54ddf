/* cmd_run.c - `hsmgate run -c FILE` and `hsmgate check -c FILE`. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "gateway/cmd.h"
#include "gateway/server.h"

static int run_or_check(int argc, char **argv, int check_only)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
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
        case 'h':
            printf("usage: hsmgate %s -c FILE\n", argv[0]);
            return 0;
        default:
            fprintf(stderr, "usage: hsmgate %s -c FILE\n", argv[0]);
            return 2;
        }
    }
    if (config == NULL || optind != argc) {
        fprintf(stderr, "usage: hsmgate %s -c FILE\n", argv[0]);
        return 2;
    }
    return gw_server_main(config, check_only);
}

int gw_cmd_run(int argc, char **argv)
{
    return run_or_check(argc, argv, 0);
}

int gw_cmd_check(int argc, char **argv)
{
    return run_or_check(argc, argv, 1);
}
