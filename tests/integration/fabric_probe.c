/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fabric_probe: connect to a Palladium fabric listener (an engine) the way an ingress
 * does, but announcing a protocol version of our choice, and report whether the peer
 * accepted or refused the connection. For tests/integration/version_refused.sh and
 * replay_refused.sh.
 *
 *   fabric_probe HOST PORT PEER_NODE [--version V] [--primitive two-sided|one-sided]
 *                [--tenant T] [--provider P] [--timeout-ms MS] [--key-env]
 *                [--record FILE]
 *   fabric_probe HOST PORT --replay FILE [--timeout-ms MS]
 *
 * --key-env: use the cluster key in PALLADIUM_CLUSTER_KEY (default: none).
 * --record FILE: connect through a TCP relay on 127.0.0.1 (HOST must be a loopback
 * address) and write to FILE what this side sent on each TCP connection before the
 * engine answered (its connection requests), as records of a 4-byte length then the
 * bytes.
 * --replay FILE: no fabric; send FILE's last record on a new TCP connection to
 * HOST:PORT, then every record in order, each on its own connection, and wait for the
 * engine to answer or close each one. Exit 0 when it did for all, 2 when one got no
 * answer before the deadline, 3 on other errors. What the engine made of them is for
 * the test to read in its log and stats.
 *
 * Opens a pd_fabric (tcp provider, no listener) as peer id PD_FABRIC_PEER_INGRESS|0,
 * sets the protocol version with pd_fabric_attr.test (default: the real one + 1),
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
#include "../tcp_relay.h"

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
	                "[--timeout-ms MS] [--key-env] [--record FILE]\n"
	                "       fabric_probe HOST PORT --replay FILE [--timeout-ms MS]\n");
	return 4;
}

/* The relay's records into path: a 4-byte length then the bytes, per connection. */
static int records_write(const char *path, const struct tcp_relay *r)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return -errno;
	for (unsigned i = 0; i < r->n; i++) {
		uint32_t len = (uint32_t)r->conns[i].len;
		fwrite(&len, sizeof(len), 1, f);
		fwrite(r->conns[i].rec, 1, len, f);
	}
	return fclose(f) == 0 ? 0 : -EIO;
}

/* --replay: the last record alone, then all in order. */
static int replay_main(const char *path, unsigned long port, unsigned long timeout_ms)
{
	static struct tcp_relay_conn recs[TCP_RELAY_CONNS];
	unsigned n = 0;
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		printf("fabric_probe: %s: %s\n", path, strerror(errno));
		return 3;
	}
	uint32_t len;
	while (n < TCP_RELAY_CONNS && fread(&len, sizeof(len), 1, f) == 1 &&
	       len <= TCP_RELAY_RECORD_MAX && fread(recs[n].rec, 1, len, f) == len)
		recs[n++].len = len;
	fclose(f);
	if (n == 0) {
		printf("fabric_probe: %s: no records\n", path);
		return 3;
	}
	int status = 0;
	for (unsigned k = 0; k <= n; k++) {
		const struct tcp_relay_conn *rc = &recs[k == 0 ? n - 1 : k - 1];
		int ret = tcp_replay((uint16_t)port, rc->rec, rc->len, (int)timeout_ms);
		if (ret >= 0)
			printf(
			    "fabric_probe: replayed %zu bytes: answered with %d bytes or closed\n",
			    rc->len, ret);
		else
			printf("fabric_probe: replayed %zu bytes: %s\n", rc->len, strerror(-ret));
		if (ret == -ETIMEDOUT && status == 0)
			status = 2;
		else if (ret < 0)
			status = 3;
	}
	return status;
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
	const char *host = argv[1], *provider = "tcp", *record = NULL;
	unsigned long port, peer, version = PD_FABRIC_PROTO_VERSION + 1, tenant = 0;
	unsigned long timeout_ms = 10000;
	enum pd_fabric_primitive primitive = PD_FABRIC_TWO_SIDED;
	bool key_env = false;
	if (!parse_u(argv[2], 65535, &port))
		return usage();
	if (strcmp(argv[3], "--replay") == 0) {
		if (argc == 7 && strcmp(argv[5], "--timeout-ms") == 0 &&
		    parse_u(argv[6], 600000, &timeout_ms))
			return replay_main(argv[4], port, timeout_ms);
		return argc == 5 ? replay_main(argv[4], port, timeout_ms) : usage();
	}
	if (!parse_u(argv[3], 0x7fff, &peer))
		return usage();
	for (int i = 4; i < argc; i++) {
		if (strcmp(argv[i], "--key-env") == 0) {
			key_env = true;
			continue;
		}
		if (i + 1 >= argc)
			return usage();
		const char *opt = argv[i], *val = argv[++i];
		if (strcmp(opt, "--record") == 0) {
			record = val;
		} else if (strcmp(opt, "--version") == 0) {
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
	uint8_t key[PD_FABRIC_KEY_LEN];
	if (key_env && pd_fabric_key_from_env(key) != 1) {
		printf("fabric_probe: --key-env: %s is not set to 64 hex digits\n",
		       PD_FABRIC_KEY_ENV);
		return 4;
	}
	struct tcp_relay relay = {.lfd = -1};
	if (record != NULL) {
		int rc = tcp_relay_open(&relay, (uint16_t)port);
		if (rc != 0) {
			printf("fabric_probe: relay: %s\n", strerror(-rc));
			return 3;
		}
	}
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
	    .key = key_env ? key : NULL,
	    .test = {.set_version = true, .version = (uint16_t)version},
	};
	struct pd_fabric *fab = NULL;
	int rc = pd_fabric_open(&attr, &fab);
	if (rc != 0) {
		printf("fabric_probe: pd_fabric_open(%s): %s\n", provider, strerror(-rc));
		return 3;
	}

	size_t area_len = (size_t)NBUFS * BUF_SIZE;
	char *area =
	    mmap(NULL, area_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
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
	rc = pd_fabric_connect(fab, rx, record != NULL ? "127.0.0.1" : host,
	                       record != NULL ? relay.port : (uint16_t)port, (uint16_t)peer, NBUFS,
	                       &p, &conn);
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
		bool busy = nfd <= 0 || pd_fabric_trywait(fab) != 0;
		if (busy && record == NULL)
			continue; /* progress again at once (bounded by the deadline) */
		struct pollfd pfd[16 + 1 + 2 * TCP_RELAY_CONNS];
		nfd = nfd < 0 ? 0 : nfd;
		for (int i = 0; i < nfd; i++)
			pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
		int nrelay =
		    record != NULL ? tcp_relay_fds(&relay, pfd + nfd, 1 + 2 * TCP_RELAY_CONNS) : 0;
		uint64_t left = deadline - now;
		/* The relay needs turns while the fabric is busy too: then do not sleep. */
		poll(pfd, (nfds_t)(nfd + nrelay), busy ? 0 : left > 100 ? 100 : (int)left);
		tcp_relay_service(&relay, pfd + nfd, nrelay);
	}
	if (record != NULL && p.done && p.outcome == 1) {
		rc = records_write(record, &relay);
		if (rc != 0)
			printf("fabric_probe: %s: %s\n", record, strerror(-rc));
		else
			printf("fabric_probe: recorded %u connection(s) in %s\n", relay.n, record);
	}

	if (!p.done) {
		printf("fabric_probe: no answer from %s:%lu within %lu ms\n", host, port,
		       timeout_ms);
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
	tcp_relay_close(&relay);
	if (area != MAP_FAILED)
		munmap(area, area_len);
	return status;
}
