/* SPDX-License-Identifier: Apache-2.0 */
/* The palladium command: dispatches to its subcommands. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/config.h"
#include "common/log.h"
#include "engine/engine.h"
#include "ingress/ingress.h"

static const char usage[] =
    "usage: palladium COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  up [--netns] FILE         run the whole cluster of FILE on this machine, in the\n"
    "                            foreground (Ctrl-C stops it)\n"
    "  engine FILE --node NAME   run the network engine (and functions) of one node\n"
    "  ingress FILE              run the HTTP ingress\n"
    "  check FILE                validate FILE; print errors with line and column\n"
    "  stats FILE [--node NAME]  show the live counters of the node engines\n"
    "\n"
    "Every command takes --help. Logs go to stderr; PALLADIUM_LOG=debug|info|warn|error\n"
    "sets the level.\n";

struct pd_config *cli_load(const char *path)
{
	struct pd_config *cfg = NULL;
	/* Every error, a file that cannot be read included, is printed by the loader. */
	if (pd_config_load(path, &cfg, stderr) != 0)
		return NULL;
	return cfg;
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

static int cmd_engine(int argc, char **argv)
{
	static const char help[] =
	    "usage: palladium engine FILE --node NAME\n"
	    "\n"
	    "Run the network engine of node NAME of the cluster FILE in the foreground: its\n"
	    "fabric endpoints, the tenant pools, and the node's function processes, which it\n"
	    "starts and restarts. SIGINT or SIGTERM stops it and its functions.\n";
	if (wants_help(argc, argv)) {
		fputs(help, stdout);
		return 0;
	}
	const char *file = NULL, *node = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--node") == 0 && i + 1 < argc)
			node = argv[++i];
		else if (strncmp(argv[i], "--node=", 7) == 0)
			node = argv[i] + 7;
		else if (argv[i][0] != '-' && file == NULL)
			file = argv[i];
		else {
			fprintf(stderr, "palladium engine: unexpected argument '%s'\n%s", argv[i],
			        help);
			return 2;
		}
	}
	if (file == NULL || node == NULL) {
		fputs(help, stderr);
		return 2;
	}
	struct pd_config *cfg = cli_load(file);
	if (cfg == NULL)
		return 1;
	int idx = pd_config_node_index(cfg, node);
	if (idx < 0) {
		fprintf(stderr, "palladium engine: %s has no node named '%s'\n", file, node);
		pd_config_free(cfg);
		return 1;
	}
	static char name[80];
	snprintf(name, sizeof(name), "engine[%s]", node);
	pd_log_set_name(name);
	int rc = pd_engine_run(cfg, (uint32_t)idx);
	pd_config_free(cfg);
	if (rc != 0)
		fprintf(stderr, "palladium engine: node %s stopped on an error: %s\n", node,
		        strerror(rc < 0 ? -rc : rc));
	return rc == 0 ? 0 : 1;
}

static int cmd_ingress(int argc, char **argv)
{
	static const char help[] =
	    "usage: palladium ingress FILE\n"
	    "\n"
	    "Run the HTTP ingress of the cluster FILE in the foreground: HTTP on\n"
	    "ingress.listen, /healthz and /metrics on ingress.admin, and fabric connections\n"
	    "to the node engines. SIGINT or SIGTERM stops it.\n";
	if (wants_help(argc, argv)) {
		fputs(help, stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fputs(help, stderr);
		return 2;
	}
	struct pd_config *cfg = cli_load(argv[1]);
	if (cfg == NULL)
		return 1;
	pd_log_set_name("ingress");
	int rc = pd_ingress_run(cfg);
	pd_config_free(cfg);
	if (rc != 0)
		fprintf(stderr, "palladium ingress: stopped on an error: %s\n",
		        strerror(rc < 0 ? -rc : rc));
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *level = getenv("PALLADIUM_LOG");
	if (level != NULL) {
		if (strcmp(level, "debug") == 0)
			pd_log_set_level(PD_LOG_DEBUG);
		else if (strcmp(level, "warn") == 0)
			pd_log_set_level(PD_LOG_WARN);
		else if (strcmp(level, "error") == 0)
			pd_log_set_level(PD_LOG_ERROR);
	}
	/* Log lines from several processes share one terminal: flush each line. */
	setvbuf(stderr, NULL, _IOLBF, 0);
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(cmd, "up") == 0)
		return cli_up(argc - 1, argv + 1);
	if (strcmp(cmd, "engine") == 0)
		return cmd_engine(argc - 1, argv + 1);
	if (strcmp(cmd, "ingress") == 0)
		return cmd_ingress(argc - 1, argv + 1);
	if (strcmp(cmd, "check") == 0)
		return cli_check(argc - 1, argv + 1);
	if (strcmp(cmd, "stats") == 0)
		return cli_stats(argc - 1, argv + 1);
	fprintf(stderr, "palladium: unknown command '%s'\n\n%s", cmd, usage);
	return 2;
}
