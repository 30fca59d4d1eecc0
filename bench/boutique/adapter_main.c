/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The baseline's start-up for an Online Boutique service (bench/boutique): the service's
 * own source, unchanged, is compiled with -Dmain=boutique_main and
 * -Dpd_serve=boutique_pd_serve and linked with bench/knative/adapter.c. Both the
 * service and the adapter read the whole command line and refuse what they do not
 * know, so it is split: the adapter's options, then "--", then the service's
 * (--data, --static, --redis), as in
 *   http-boutique-cart --listen 10.0.0.2:9000 --threads 2 -- --redis 10.0.0.4:6379
 */
#include <stdlib.h>
#include <string.h>

#include "palladium/function.h"

int boutique_main(int argc, char **argv);
int boutique_pd_serve(int argc, char **argv, pd_handler handler, void *arg);

static int adapter_argc;
static char **adapter_argv;

/* The service calls this where it calls pd_serve: the adapter gets its own options. */
int boutique_pd_serve(int argc, char **argv, pd_handler handler, void *arg)
{
	(void)argc;
	(void)argv;
	return pd_serve(adapter_argc, adapter_argv, handler, arg);
}

int main(int argc, char **argv)
{
	int sep = argc;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			sep = i;
			break;
		}
	}
	/* getopt wants argv[argc] == NULL: the adapter gets a copy ending there. */
	adapter_argv = calloc((size_t)sep + 1, sizeof(*adapter_argv));
	if (adapter_argv == NULL)
		return 1;
	memcpy(adapter_argv, argv, (size_t)sep * sizeof(*adapter_argv));
	adapter_argc = sep;
	if (sep == argc)
		return boutique_main(1, argv); /* no service options (it reads argv[0] only) */
	argv[sep] = argv[0];
	return boutique_main(argc - sep, argv + sep);
}
