/* SPDX-License-Identifier: Apache-2.0 */
/* palladium check: validate a cluster file. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/config.h"

int cli_check(int argc, char **argv)
{
	static const char help[] =
	    "usage: palladium check FILE\n"
	    "\n"
	    "Validate the cluster file FILE. Prints every error as FILE:LINE:COLUMN: error:\n"
	    "MESSAGE and exits 1, or prints a summary and exits 0.\n";
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
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
	printf("%s: ok: %u node(s), %u tenant(s), %u function(s), %u route(s)\n", argv[1],
	       cfg->nodes_count, cfg->tenants_count, cfg->functions_count, cfg->routes_count);
	pd_config_free(cfg);
	return 0;
}
