/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A stand-in engine for testing the ingress end to end over the real fabric layer.
 *
 *   ingress_peer CONFIG [NODE [--engine-only]]
 *
 * Forks: the child runs pd_ingress_run(CONFIG); the parent plays engine NODE (default 0)
 * (with --engine-only, no ingress: a second engine for multi-node checks):
 * it listens on that node's fabric address and answers every request message in place
 * with status 200, the body upper-cased and a header "x-peer: 1". Bodies starting with
 * "ERR" get 418 with the ERROR flag, "SLOW" gets no answer (for timeouts), "BAD" gets a
 * malformed message, "HOP" gets hop-by-hop headers the ingress must drop, "LATE" is
 * answered after LATE_MS (after a 1 s route timeout, before a 2 s one).
 * PEER_CREDITS=n in the environment makes it grant n credits per connection (default 512).
 * SIGINT/SIGTERM to the parent stops the child the same way and waits for it; the exit
 * status is the child's.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "fabric/fabric.h"
#include "ingress/ingress.h"
#include "shm/msg.h"

#define PEER_DEPTH 1024u
#define PEER_BUFS (PEER_DEPTH + 256u)
#define MAX_PENDING 4096u
#define MAX_LATE 256u
#define LATE_MS 1500

struct peer_buf {
	struct peer_tenant *tenant;
	uint8_t *data;
	struct pd_fabric_conn *conn; /* where its answer goes */
	uint32_t len;
};

struct peer_tenant {
	uint64_t buf_size;
	uint8_t *region;
	size_t region_len;
	struct pd_fabric_mr *mr;
	struct pd_fabric_rx *rx;
	struct peer_buf bufs[PEER_BUFS];
};

struct peer {
	const struct pd_config *cfg;
	struct pd_fabric *fab;
	struct peer_tenant *tenants;
	struct peer_buf *pending[MAX_PENDING]; /* answers waiting for a credit */
	uint32_t npending;
	struct {
		struct peer_buf *buf;
		uint64_t due_ms;
	} late[MAX_LATE]; /* answers held back on purpose */
	uint32_t nlate;
	uint64_t answered, dropped;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void repost(struct peer_buf *b)
{
	struct peer_tenant *t = b->tenant;
	if (pd_fabric_rx_post(t->rx, t->mr, b->data, t->buf_size, b) != 0)
		fprintf(stderr, "ingress_peer: repost failed\n");
}

static void answer(struct peer *p, struct peer_buf *b)
{
	int rc = pd_fabric_send(b->conn, b->tenant->mr, b->data, b->len, b);
	if (rc == 0) {
		p->answered++;
		return;
	}
	if (rc == -EAGAIN && p->npending < MAX_PENDING) {
		p->pending[p->npending++] = b;
		return;
	}
	p->dropped++;
	repost(b);
}

static void flush_pending(struct peer *p)
{
	uint32_t n = p->npending;
	p->npending = 0;
	for (uint32_t i = 0; i < n; i++)
		answer(p, p->pending[i]);
}

static int put_meta(uint8_t *base, size_t cap, const char *const *kv, size_t n)
{
	struct pd_meta_writer w;
	pd_meta_writer_init(&w, base, cap);
	for (size_t i = 0; i + 1 < n; i += 2)
		pd_meta_add(&w, kv[i], strlen(kv[i]), kv[i + 1], strlen(kv[i + 1]));
	return (int)pd_meta_finish(&w);
}

static void on_recv(void *app, struct pd_fabric_conn *conn, void *buf_ctx, size_t len)
{
	struct peer *p = app;
	struct peer_buf *b = buf_ctx;
	struct pd_msg_hdr h;
	if (len < PD_MSG_HDR_SIZE) {
		repost(b);
		return;
	}
	pd_msg_hdr_snapshot(&h, b->data);
	if (pd_msg_validate(&h, b->tenant->buf_size, len) != 0 ||
	    (h.flags & PD_MSG_F_REQUEST) == 0) {
		fprintf(stderr, "ingress_peer: bad request message\n");
		repost(b);
		return;
	}
	uint8_t *body = b->data + PD_MSG_HDR_SIZE;
	size_t n = h.payload_len;
	if (n >= 4 && memcmp(body, "SLOW", 4) == 0) {
		repost(b);
		return;
	}
	uint16_t status = 200, flags = PD_MSG_F_RESPONSE;
	static const char *const normal[] = {"x-peer", "1", "content-type", "text/plain"};
	static const char *const hop[] = {"x-peer",       "1",   "connection",        "close",
	                                  "keep-alive",   "5",   "Transfer-Encoding", "chunked",
	                                  "X-Mixed-Case", "yes", "bad header",        "x"};
	const char *const *kv = normal;
	size_t nkv = PD_ARRAY_SIZE(normal);
	if (n >= 3 && memcmp(body, "ERR", 3) == 0) {
		status = 418;
		flags |= PD_MSG_F_ERROR;
	} else if (n >= 3 && memcmp(body, "HOP", 3) == 0) {
		kv = hop;
		nkv = PD_ARRAY_SIZE(hop);
	}
	for (size_t i = 0; i < n; i++)
		body[i] = (uint8_t)toupper(body[i]);
	/* Keep the request metadata in place; the response headers follow it. */
	size_t off = PD_MSG_HDR_SIZE + n + h.req_meta_len;
	int ml = put_meta(b->data + off, b->tenant->buf_size - off, kv, nkv);
	if (ml < 0)
		ml = 0;
	h.flags = flags;
	h.status = status;
	h.resp_meta_len = (uint32_t)ml;
	if (n >= 3 && memcmp(body, "BAD", 3) == 0)
		h.magic = 0xdeadbeef;
	memcpy(b->data, &h, sizeof(h));
	b->conn = conn;
	b->len = (uint32_t)(off + (size_t)ml);
	if (n >= 4 && memcmp(body, "LATE", 4) == 0 && p->nlate < MAX_LATE) {
		p->late[p->nlate].buf = b;
		p->late[p->nlate++].due_ms = now_ms() + LATE_MS;
		return;
	}
	answer(p, b);
}

static void on_recv_cancel(void *app, void *buf_ctx)
{
	(void)app, (void)buf_ctx;
}

static void on_send_done(void *app, void *send_ctx, int status)
{
	(void)app;
	(void)status;
	repost(send_ctx);
}

static int on_connect_request(void *app, const struct pd_fabric_hello *hello,
                              struct pd_fabric_rx **rx, uint16_t *credits, void **conn_ctx)
{
	struct peer *p = app;
	if (hello->tenant >= p->cfg->tenants_count || p->tenants[hello->tenant].rx == NULL)
		return -EINVAL;
	*rx = p->tenants[hello->tenant].rx;
	/* PEER_CREDITS=n grants fewer, to make the ingress queue for credits. */
	const char *env = getenv("PEER_CREDITS");
	long c = env != NULL ? strtol(env, NULL, 10) : PEER_DEPTH / 2;
	*credits = (uint16_t)(c < PD_FABRIC_CREDITS_MIN ? PD_FABRIC_CREDITS_MIN
	                      : c > PEER_DEPTH / 2      ? PEER_DEPTH / 2
	                                                : c);
	*conn_ctx = NULL;
	return 0;
}

static void on_up(void *app, struct pd_fabric_conn *conn)
{
	(void)app;
	fprintf(stderr, "ingress_peer: peer %u tenant %u up\n", pd_fabric_conn_peer(conn),
	        pd_fabric_conn_tenant(conn));
}

static void on_down(void *app, struct pd_fabric_conn *conn, int err)
{
	struct peer *p = app;
	/* Answers queued for this connection cannot go anywhere now. */
	uint32_t k = 0;
	for (uint32_t i = 0; i < p->npending; i++) {
		if (p->pending[i]->conn == conn)
			repost(p->pending[i]);
		else
			p->pending[k++] = p->pending[i];
	}
	p->npending = k;
	k = 0;
	for (uint32_t i = 0; i < p->nlate; i++) {
		if (p->late[i].buf->conn == conn)
			repost(p->late[i].buf);
		else
			p->late[k++] = p->late[i];
	}
	p->nlate = k;
	fprintf(stderr, "ingress_peer: peer %u down: %s\n", pd_fabric_conn_peer(conn),
	        strerror(-err));
}

static int run_peer(struct peer *p, uint32_t node, pid_t child, int sfd)
{
	const struct pd_config *cfg = p->cfg;
	struct pd_fabric_attr attr = {
	    .provider = cfg->fabric.provider ? cfg->fabric.provider : "tcp",
	    .listen_host = cfg->nodes[node].address,
	    .listen_port = cfg->nodes[node].port,
	    .local_id = (uint16_t)node,
	    .cb = {on_recv, on_recv_cancel, on_send_done, on_connect_request, on_up, on_down},
	    .app = p,
	};
	int rc = pd_fabric_open(&attr, &p->fab);
	if (rc < 0) {
		fprintf(stderr, "ingress_peer: pd_fabric_open: %s\n", strerror(-rc));
		return rc;
	}
	p->tenants = calloc(cfg->tenants_count, sizeof(*p->tenants));
	for (uint32_t i = 0; i < cfg->tenants_count; i++) {
		struct peer_tenant *t = &p->tenants[i];
		t->buf_size = cfg->tenants[i].buffer_size;
		t->region_len = (size_t)PEER_BUFS * t->buf_size;
		t->region = mmap(NULL, t->region_len, PROT_READ | PROT_WRITE,
		                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (t->region == MAP_FAILED)
			return -ENOMEM;
		if ((rc = pd_fabric_mr_reg(p->fab, t->region, t->region_len, &t->mr)) < 0 ||
		    (rc = pd_fabric_rx_create(p->fab, (uint16_t)i, PEER_DEPTH, &t->rx)) < 0) {
			fprintf(stderr, "ingress_peer: tenant %u: %s\n", i, strerror(-rc));
			return rc;
		}
		for (uint32_t k = 0; k < PEER_BUFS; k++) {
			t->bufs[k].tenant = t;
			t->bufs[k].data = t->region + (size_t)k * t->buf_size;
			if (k < PEER_DEPTH)
				repost(&t->bufs[k]);
		}
	}
	fprintf(stderr, "ingress_peer: node %u listening on %s:%u\n", node, attr.listen_host,
	        attr.listen_port);

	int status = 0; /* engine only: exits 0 */
	bool stopping = false;
	for (;;) {
		pd_fabric_progress(p->fab);
		if (p->npending > 0)
			flush_pending(p);
		for (uint32_t i = 0; i < p->nlate;) {
			if (p->late[i].due_ms > now_ms()) {
				i++;
				continue;
			}
			answer(p, p->late[i].buf);
			p->late[i] = p->late[--p->nlate];
		}
		struct pollfd pfd[64];
		int fds[63];
		int nfd = pd_fabric_wait_fds(p->fab, fds, 63);
		if (nfd < 0)
			nfd = 0;
		for (int i = 0; i < nfd; i++)
			pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
		pfd[nfd] = (struct pollfd){.fd = sfd, .events = POLLIN};
		int timeout = pd_fabric_trywait(p->fab) == 0 ? (p->nlate > 0 ? 10 : 200) : 0;
		if (poll(pfd, (nfds_t)nfd + 1, timeout) < 0 && errno != EINTR)
			break;
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGCHLD)
				continue;
			if (child < 0)
				goto out; /* engine only */
			if (!stopping) {
				stopping = true;
				kill(child, SIGTERM);
			}
		}
		if (child > 0 && waitpid(child, &status, WNOHANG) == child)
			break;
	}
out:
	fprintf(stderr, "ingress_peer: answered %lu, dropped %lu\n", (unsigned long)p->answered,
	        (unsigned long)p->dropped);
	pd_fabric_close(p->fab);
	for (uint32_t i = 0; i < cfg->tenants_count; i++)
		munmap(p->tenants[i].region, p->tenants[i].region_len);
	free(p->tenants);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	fprintf(stderr, "ingress_peer: ingress died of signal %d\n",
	        WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s CONFIG [NODE [--engine-only]]\n", argv[0]);
		return 2;
	}
	struct pd_config *cfg = NULL;
	int rc = pd_config_load(argv[1], &cfg, stderr);
	if (rc < 0)
		return 2;
	uint32_t node = argc > 2 ? (uint32_t)atoi(argv[2]) : 0;
	if (node >= cfg->nodes_count) {
		fprintf(stderr, "no node %u\n", node);
		pd_config_free(cfg);
		return 2;
	}

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	bool engine_only = argc > 3 && strcmp(argv[3], "--engine-only") == 0;
	pid_t child = engine_only ? -2 : fork();
	if (child == -1) {
		perror("fork");
		return 1;
	}
	if (child == 0) {
		sigprocmask(SIG_UNBLOCK, &mask, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		pd_log_set_name("ingress");
		rc = pd_ingress_run(cfg);
		pd_config_free(cfg);
		fprintf(stderr, "ingress_peer: pd_ingress_run returned %d\n", rc);
		return rc == 0 ? 0 : 1;
	}
	pd_log_set_name("ingress_peer");
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	struct peer *p = calloc(1, sizeof(*p));
	p->cfg = cfg;
	rc = run_peer(p, node, child, sfd);
	if (rc < 0) {
		if (child > 0) {
			kill(child, SIGTERM);
			waitpid(child, NULL, 0);
		}
		rc = 1;
	}
	free(p);
	close(sfd);
	pd_config_free(cfg);
	return rc;
}
