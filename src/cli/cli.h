/* SPDX-License-Identifier: Apache-2.0 */
/* The palladium command's subcommands. */
#ifndef PD_CLI_H
#define PD_CLI_H

int cli_check(int argc, char **argv);
int cli_stats(int argc, char **argv);
int cli_up(int argc, char **argv);

/* Load a config file, printing errors to stderr; NULL on failure. */
struct pd_config *cli_load(const char *path);

#endif
