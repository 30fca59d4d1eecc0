/* SPDX-License-Identifier: Apache-2.0 */
/* palladium stats: ask each node's engine for its live counters. */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/config.h"
#include "engine/engine.h"

#define STATS_MAX (1u << 20)

static int query(const char *path, char *buf, size_t cap)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n >= sizeof(sa.sun_path)) {
		close(fd);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, n);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	if (poll(&pfd, 1, 5000) != 1) {
		close(fd);
		return -ETIMEDOUT;
	}
	ssize_t got = recv(fd, buf, cap - 1, 0);
	int err = errno;
	close(fd);
	if (got < 0)
		return -err;
	buf[got] = '\0';
	return 0;
}

int cli_stats(int argc, char **argv)
{
	static const char help[] =
	    "usage: palladium stats FILE [--node NAME]\n"
	    "\n"
	    "Print the live counters of the engines of the cluster FILE running on this\n"
	    "machine (or in this network namespace): per tenant, messages and bytes in and\n"
	    "out, buffers in use, bad descriptors and headers dropped, payload bytes copied,\n"
	    "and each function instance. Exits 1 if an engine did not answer.\n";
	const char *file = NULL, *node = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(help, stdout);
			return 0;
		} else if (strcmp(argv[i], "--node") == 0 && i + 1 < argc) {
			node = argv[++i];
		} else if (argv[i][0] != '-' && file == NULL) {
			file = argv[i];
		} else {
			fputs(help, stderr);
			return 2;
		}
	}
	if (file == NULL) {
		fputs(help, stderr);
		return 2;
	}
	struct pd_config *cfg = cli_load(file);
	if (cfg == NULL)
		return 1;
	char *buf = malloc(STATS_MAX);
	int status = 0;
	bool found = false;
	for (uint32_t i = 0; buf != NULL && i < cfg->nodes_count; i++) {
		if (node != NULL && strcmp(node, cfg->nodes[i].name) != 0)
			continue;
		found = true;
		char path[128];
		int rc = pd_engine_stats_socket_path(cfg, i, path, sizeof(path));
		if (rc == 0)
			rc = query(path, buf, STATS_MAX);
		if (rc != 0) {
			printf("node %s: no answer (%s)\n", cfg->nodes[i].name, strerror(-rc));
			status = 1;
			continue;
		}
		fputs(buf, stdout);
	}
	if (node != NULL && !found) {
		fprintf(stderr, "palladium stats: %s has no node named '%s'\n", file, node);
		status = 1;
	}
	free(buf);
	pd_config_free(cfg);
	return status;
}
