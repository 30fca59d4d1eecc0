/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fabric_probe: connect to a Palladium fabric listener (an engine) the way an ingress
 * does, but announcing a protocol version of our choice, and report whether the peer
 * accepted or refused the connection. For tests/integration/version_refused.sh.
 *
 *   fabric_probe HOST PORT PEER_NODE [--version V] [--primitive two-sided|one-sided]
 *                [--tenant T] [--provider P] [--timeout-ms MS]
 *
 * Opens a pd_fabric (tcp provider, no listener) as peer id PD_FABRIC_PEER_INGRESS|0,
 * sets the protocol version with pd_fabric_test_set_version (default: the real one + 1),
 * registers a small buffer area, creates tenant T's receive context (default 0) and
 * posts its receives, connects to HOST:PORT expecting the peer to be node PEER_NODE, and
 * runs progress until on_up or on_down (deadline --timeout-ms, default 10000).
 *
 * Exit status: 0 refused (on_down with -ECONNREFUSED), 1 accepted (on_up), 2 no answer
 * before the deadline, 3 another outcome (on_down with another error, set-up failed),
 * 4 usage. One line on stdout says what happened.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "common/log.h"
#include "fabric/fabric.h"
#include "fabric/fabric_internal.h"

#define NBUFS 8u
#define BUF_SIZE 4096u

struct probe {
	bool done;
	int outcome; /* exit status once done */
	int down_err;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_recv(void *app, struct pd_fabric_conn *conn, void *buf_ctx, size_t len)
{
	(void)app, (void)conn, (void)buf_ctx, (void)len;
}

static void on_recv_cancel(void *app, void *buf_ctx)
{
	(void)app, (void)buf_ctx;
}

static void on_send_done(void *app, void *send_ctx, int status)
{
	(void)app, (void)send_ctx, (void)status;
}

static int on_connect_request(void *app, const struct pd_fabric_hello *hello,
			      struct pd_fabric_rx **rx, uint16_t *credits, void **conn_ctx)
{
	(void)app, (void)hello, (void)rx, (void)credits, (void)conn_ctx;
	return -ECONNREFUSED; /* no listener anyway */
}

static void on_up(void *app, struct pd_fabric_conn *conn)
{
	(void)conn;
	struct probe *p = app;
	if (!p->done) {
		p->done = true;
		p->outcome = 1;
	}
}

static void on_down(void *app, struct pd_fabric_conn *conn, int err)
{
	(void)conn;
	struct probe *p = app;
	if (!p->done) {
		p->done = true;
		p->down_err = err;
		p->outcome = err == -ECONNREFUSED ? 0 : 3;
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: fabric_probe HOST PORT PEER_NODE [--version V] "
			"[--primitive two-sided|one-sided] [--tenant T] [--provider P] "
			"[--timeout-ms MS]\n");
	return 4;
}

static bool parse_u(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > max)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return usage();
	const char *host = argv[1], *provider = "tcp";
	unsigned long port, peer, version = PD_FABRIC_PROTO_VERSION + 1, tenant = 0;
	unsigned long timeout_ms = 10000;
	enum pd_fabric_primitive primitive = PD_FABRIC_TWO_SIDED;
	if (!parse_u(argv[2], 65535, &port) || !parse_u(argv[3], 0x7fff, &peer))
		return usage();
	for (int i = 4; i < argc; i++) {
		if (i + 1 >= argc)
			return usage();
		const char *opt = argv[i], *val = argv[++i];
		if (strcmp(opt, "--version") == 0) {
			if (!parse_u(val, 65535, &version))
				return usage();
		} else if (strcmp(opt, "--tenant") == 0) {
			if (!parse_u(val, 65535, &tenant))
				return usage();
		} else if (strcmp(opt, "--timeout-ms") == 0) {
			if (!parse_u(val, 600000, &timeout_ms))
				return usage();
		} else if (strcmp(opt, "--provider") == 0) {
			provider = val;
		} else if (strcmp(opt, "--primitive") == 0) {
			if (strcmp(val, "two-sided") == 0)
				primitive = PD_FABRIC_TWO_SIDED;
			else if (strcmp(val, "one-sided") == 0)
				primitive = PD_FABRIC_ONE_SIDED;
			else
				return usage();
		} else {
			return usage();
		}
	}

	pd_log_set_name("fabric_probe");
	struct probe p = {0};
	struct pd_fabric_attr attr = {
	    .provider = provider,
	    .listen_host = NULL,
	    .local_id = PD_FABRIC_PEER_INGRESS | 0u,
	    .cb =
		{
		    .on_recv = on_recv,
		    .on_recv_cancel = on_recv_cancel,
		    .on_send_done = on_send_done,
		    .on_connect_request = on_connect_request,
		    .on_up = on_up,
		    .on_down = on_down,
		},
	    .app = &p,
	    .primitive = primitive,
	};
	struct pd_fabric *fab = NULL;
	int rc = pd_fabric_open(&attr, &fab);
	if (rc != 0) {
		printf("fabric_probe: pd_fabric_open(%s): %s\n", provider, strerror(-rc));
		return 3;
	}
	pd_fabric_test_set_version(fab, (uint16_t)version);

	size_t area_len = (size_t)NBUFS * BUF_SIZE;
	char *area = mmap(NULL, area_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pd_fabric_mr *mr = NULL;
	struct pd_fabric_rx *rx = NULL;
	struct pd_fabric_conn *conn = NULL;
	int status = 3;
	if (area == MAP_FAILED) {
		printf("fabric_probe: mmap: %s\n", strerror(errno));
		goto out;
	}
	if ((rc = pd_fabric_mr_reg(fab, area, area_len, &mr)) != 0) {
		printf("fabric_probe: pd_fabric_mr_reg: %s\n", strerror(-rc));
		goto out;
	}
	if ((rc = pd_fabric_rx_create(fab, (uint16_t)tenant, NBUFS, &rx)) != 0) {
		printf("fabric_probe: pd_fabric_rx_create: %s\n", strerror(-rc));
		goto out;
	}
	for (uint32_t i = 0; i < NBUFS; i++) {
		rc = pd_fabric_rx_post(rx, mr, area + (size_t)i * BUF_SIZE, BUF_SIZE, NULL);
		if (rc != 0) {
			printf("fabric_probe: pd_fabric_rx_post: %s\n", strerror(-rc));
			goto out;
		}
	}
	rc = pd_fabric_connect(fab, rx, host, (uint16_t)port, (uint16_t)peer, NBUFS, &p, &conn);
	if (rc != 0) {
		printf("fabric_probe: pd_fabric_connect(%s:%lu): %s\n", host, port, strerror(-rc));
		goto out;
	}

	uint64_t deadline = now_ms() + timeout_ms;
	while (!p.done) {
		pd_fabric_progress(fab);
		if (p.done)
			break;
		uint64_t now = now_ms();
		if (now >= deadline)
			break;
		int fds[16];
		int nfd = pd_fabric_wait_fds(fab, fds, 16);
		if (nfd <= 0 || pd_fabric_trywait(fab) != 0)
			continue; /* progress again at once (bounded by the deadline) */
		struct pollfd pfd[16];
		for (int i = 0; i < nfd; i++)
			pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
		uint64_t left = deadline - now;
		poll(pfd, (nfds_t)nfd, left > 100 ? 100 : (int)left);
	}

	if (!p.done) {
		printf("fabric_probe: no answer from %s:%lu within %lu ms\n", host, port, timeout_ms);
		status = 2;
	} else if (p.outcome == 1) {
		printf("fabric_probe: accepted by %s:%lu (version %lu)\n", host, port, version);
		status = 1;
	} else {
		printf("fabric_probe: %s by %s:%lu (version %lu): %s\n",
		       p.outcome == 0 ? "refused" : "connection failed", host, port, version,
		       strerror(-p.down_err));
		status = p.outcome;
	}
out:
	fflush(stdout);
	/* pd_fabric_close releases connections, receive contexts and regions. */
	pd_fabric_close(fab);
	if (area != MAP_FAILED)
		munmap(area, area_len);
	return status;
}
