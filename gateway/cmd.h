/* cmd.h - the hsmgate sub-commands. Each takes the arguments after its own name
 * (argv[0] is the sub-command's name) and returns the process exit status. */
#ifndef HSMGATE_GATEWAY_CMD_H
#define HSMGATE_GATEWAY_CMD_H

int gw_cmd_run(int argc, char **argv);     /* hsmgate run -c FILE */
int gw_cmd_check(int argc, char **argv);   /* hsmgate check -c FILE */
int gw_cmd_pki(int argc, char **argv);     /* hsmgate pki keygen|root|server|client|csr ... */
int gw_cmd_revoke(int argc, char **argv);       /* hsmgate revoke [--lift] --store FILE ... */
int gw_cmd_revocations(int argc, char **argv);  /* hsmgate revocations --store FILE [--json] */
int gw_cmd_allow(int argc, char **argv);        /* hsmgate allow add|rm|ls --store FILE ... */
int gw_cmd_crl(int argc, char **argv);          /* hsmgate crl import|ls --store FILE ... */
int gw_cmd_verify(int argc, char **argv);       /* hsmgate verify -c FILE --listener NAME [--at T] [--json] CERT [CHAIN] */
int gw_cmd_audit(int argc, char **argv);        /* hsmgate audit verify|ls --store FILE ... */
int gw_cmd_admin(int argc, char **argv);        /* hsmgate admin token NAME ROLE */

#endif
