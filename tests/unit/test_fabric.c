/* SPDX-License-Identifier: Apache-2.0 */
/* Fabric layer tests: real processes talking over libfabric's tcp provider on 127.0.0.1. */
#include "fabric/fabric.h"
#include "fabric/fabric_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "../tcp_relay.h"

#define PROVIDER "tcp"
#define HOST "127.0.0.1"
#define DEADLINE_MS 10000   /* per phase, inside a child */
#define CASE_LIMIT_MS 60000 /* per case, in the parent: then children are killed */
#define BUF_SIZE 65536u
#define MIN_MSG 64u
#define NT 2
#define FLOOD_IDX 0x7fffffu /* send context of flood messages: no tx buffer to return */

#define SERVER_ID 1
#define CLIENT_ID 2
#define SERVER_CREDITS 64 /* receives the server reserves per connection */
#define CLIENT_CREDITS 64
#define PINGS 10000
#define FLOOD_CREDITS 514 /* the victim in case 4: 512 DATA credits of 64 KiB */
#define LAT_LEN 1024u     /* latency mode: message size */
#define LAT_WARMUP 1000u

/* ---- messages ------------------------------------------------------------------------ */

enum msg_type { MSG_ECHO_REQ = 1, MSG_ECHO_REP, MSG_HOLD, MSG_FLOOD };
#define MSG_MAGIC 0x54534554u

struct msg_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t tenant;
	uint32_t seq;
	uint32_t len;
	uint64_t csum;
};

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static uint64_t payload_sum(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 1099511628211ull;
	}
	for (; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	return h;
}

static uint32_t msg_size(uint32_t seq, uint16_t tenant)
{
	uint64_t s = 0x9e3779b97f4a7c15ull * (seq + 1) + tenant;
	xorshift(&s);
	return MIN_MSG + (uint32_t)(xorshift(&s) % (BUF_SIZE - MIN_MSG + 1));
}

static void msg_fill(char *buf, uint16_t type, uint16_t tenant, uint32_t seq, uint32_t len)
{
	struct msg_hdr h = {
	    .magic = MSG_MAGIC, .type = type, .tenant = tenant, .seq = seq, .len = len};
	uint64_t s = 0x2545f4914f6cdd1dull ^ ((uint64_t)seq << 16) ^ tenant;
	char *p = buf + sizeof(h);
	size_t n = len - sizeof(h), i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w = xorshift(&s);
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		p[i] = (char)xorshift(&s);
	h.csum = payload_sum(p, n);
	memcpy(buf, &h, sizeof(h));
}

/* ---- a test process's view: tenants, pools, counters --------------------------------- */

struct tenant {
	uint16_t id;
	struct pd_fabric_rx *rx;
	char *rx_mem;
	struct pd_fabric_mr *rx_mr;
	uint32_t n_rx;
	char *tx_mem;
	struct pd_fabric_mr *tx_mr;
	uint32_t n_tx, *tx_free, n_tx_free;
	uint16_t credits; /* receives reserved per connection */
	struct pd_fabric_conn *conn;

	uint32_t *pending; /* echo server: received requests to echo (ring of rx buffers) */
	struct pd_fabric_conn **pending_conn; /* ... and the connection each came from */
	uint32_t pend_head, pend_len;
	uint32_t *held; /* MSG_HOLD buffers not reposted */
	uint32_t n_held;
	uint32_t outstanding; /* delivered, not reposted */
	uint32_t max_outstanding;

	uint32_t sent, echoed, target; /* pinger */
	uint32_t max_credits;
};

struct node {
	const char *name;
	struct pd_fabric *fab;
	struct tenant t[NT];
	int nt;
	uint16_t peer_credits; /* what the peer reserves for us: our credits <= this - 2 */
	int ups, downs, down_err, connreqs, cancels;
	uint64_t send_ok, send_err;
	uint32_t flood_target, flood_sent;
	uint32_t release_count; /* case 1: holds announced by the client, 0: none */
	bool stop;              /* the parent closed our stop pipe */
	bool failed;
	bool busy;      /* latency mode: spin on progress, never sleep */
	bool lat;       /* latency mode: echo / count replies without checking payloads */
	bool lat_reply; /* latency client: the reply arrived */
};

static int status_fd = -1; /* child -> parent messages */
/* The cluster key of the nodes this process opens (NULL: none; children inherit it). */
static const uint8_t *node_key;
/* The test hooks of the nodes this process opens (children inherit them). */
static struct pd_fabric_test_attr node_test;
/* The primitive of every process of the case being run (children inherit it). */
static enum pd_fabric_primitive primitive = PD_FABRIC_TWO_SIDED;

static enum pd_fabric_primitive other_primitive(void)
{
	return primitive == PD_FABRIC_ONE_SIDED ? PD_FABRIC_TWO_SIDED : PD_FABRIC_ONE_SIDED;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fail(struct node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct node *n, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: FAIL: %s\n", n->name, msg);
	n->failed = true;
}

static void *ctx_of(int ti, bool tx, uint32_t idx)
{
	return (void *)(uintptr_t)(((uintptr_t)ti << 24 | (uintptr_t)tx << 23 | idx) + 1);
}
static void ctx_parse(void *ctx, int *ti, bool *tx, uint32_t *idx)
{
	uintptr_t v = (uintptr_t)ctx - 1;
	*ti = (int)(v >> 24);
	*tx = (v >> 23) & 1;
	*idx = (uint32_t)(v & 0x7fffff);
}

static char *rx_buf(struct tenant *t, uint32_t idx)
{
	return t->rx_mem + (size_t)idx * BUF_SIZE;
}

static void repost(struct node *n, int ti, uint32_t idx)
{
	struct tenant *t = &n->t[ti];
	int ret =
	    pd_fabric_rx_post(t->rx, t->rx_mr, rx_buf(t, idx), BUF_SIZE, ctx_of(ti, false, idx));
	if (ret != 0)
		fail(n, "rx_post: %s", strerror(-ret));
	t->outstanding--;
}

static void on_recv(void *app, struct pd_fabric_conn *conn, void *buf_ctx, size_t len)
{
	struct node *n = app;
	int ti;
	bool tx;
	uint32_t idx;
	ctx_parse(buf_ctx, &ti, &tx, &idx);
	struct tenant *t = &n->t[ti];
	t->outstanding++;
	if (t->outstanding > t->max_outstanding)
		t->max_outstanding = t->outstanding;
	if (n->lat) { /* latency mode: echo at once, or note the reply */
		if (tx || len < LAT_LEN) {
			fail(n, "latency: bad message (len %zu)", len);
		} else if (pd_fabric_conn_peer(conn) == SERVER_ID) { /* we are the client */
			n->lat_reply = true;
		} else {
			int ret = pd_fabric_send(conn, t->rx_mr, rx_buf(t, idx), LAT_LEN,
			                         ctx_of(ti, false, idx));
			if (ret == 0)
				return;
			fail(n, "latency echo: %s", strerror(-ret));
		}
		repost(n, ti, idx);
		return;
	}
	/* The sender must never have more unreturned messages here than we granted. */
	if (t->outstanding > (uint32_t)t->credits - PD_FABRIC_CREDIT_RESERVE)
		fail(n, "tenant %u: %u messages held, granted %u", t->id, t->outstanding,
		     t->credits - PD_FABRIC_CREDIT_RESERVE);
	if (tx || pd_fabric_conn_tenant(conn) != t->id)
		fail(n, "message for tenant %u landed in tenant %u's buffer",
		     pd_fabric_conn_tenant(conn), t->id);
	struct msg_hdr h;
	char *buf = rx_buf(t, idx);
	memcpy(&h, buf, sizeof(h));
	/* One-sided over tcp: the write's length is not reported, len is the slot's. */
	if (primitive == PD_FABRIC_ONE_SIDED && len == BUF_SIZE && h.len <= len)
		len = h.len;
	if (len < sizeof(h) || h.magic != MSG_MAGIC || h.len != len || h.tenant != t->id ||
	    payload_sum(buf + sizeof(h), len - sizeof(h)) != h.csum) {
		fail(n, "tenant %u: corrupt message (len %zu, hdr len %u tenant %u seq %u)", t->id,
		     len, h.len, h.tenant, h.seq);
		repost(n, ti, idx);
		return;
	}
	switch (h.type) {
	case MSG_ECHO_REQ: {
		uint32_t slot = (t->pend_head + t->pend_len++) % t->n_rx;
		t->pending[slot] = idx;
		t->pending_conn[slot] = conn;
		break;
	}
	case MSG_ECHO_REP:
		if (h.seq != t->echoed || len != msg_size(h.seq, t->id))
			fail(n, "tenant %u: echo %u (len %zu), expected %u", t->id, h.seq, len,
			     t->echoed);
		t->echoed++;
		repost(n, ti, idx);
		break;
	case MSG_HOLD: t->held[t->n_held++] = idx; break;
	default: repost(n, ti, idx); break;
	}
}

static void on_recv_cancel(void *app, void *buf_ctx)
{
	struct node *n = app;
	(void)buf_ctx;
	n->cancels++;
}

static void on_send_done(void *app, void *send_ctx, int status)
{
	struct node *n = app;
	int ti;
	bool tx;
	uint32_t idx;
	ctx_parse(send_ctx, &ti, &tx, &idx);
	if (status == 0)
		n->send_ok++;
	else
		n->send_err++;
	if (tx && idx == FLOOD_IDX)
		return;
	if (tx)
		n->t[ti].tx_free[n->t[ti].n_tx_free++] = idx;
	else
		repost(n, ti, idx); /* an echo went out of the receive buffer itself */
}

static int on_connect_request(void *app, const struct pd_fabric_hello *hello,
                              struct pd_fabric_rx **rx, uint16_t *credits, void **conn_ctx)
{
	struct node *n = app;
	n->connreqs++;
	for (int i = 0; i < n->nt; i++) {
		if (n->t[i].id == hello->tenant) {
			*rx = n->t[i].rx;
			*credits = n->t[i].credits;
			*conn_ctx = &n->t[i];
			return 0;
		}
	}
	return -ENOENT;
}

static void on_up(void *app, struct pd_fabric_conn *conn)
{
	struct node *n = app;
	struct tenant *t = pd_fabric_conn_ctx(conn);
	t->conn = conn;
	n->ups++;
}

static void on_down(void *app, struct pd_fabric_conn *conn, int err)
{
	struct node *n = app;
	struct tenant *t = pd_fabric_conn_ctx(conn);
	if (t->conn == conn)
		t->conn = NULL;
	/* Requests of this conn can no longer be echoed: their buffers go back. Those of a
	 * newer conn (a replacement comes up before the old one goes down) stay. */
	uint32_t keep = 0;
	for (uint32_t i = 0; i < t->pend_len; i++) {
		uint32_t from = (t->pend_head + i) % t->n_rx;
		if (t->pending_conn[from] == conn) {
			repost(n, (int)(t - n->t), t->pending[from]);
			continue;
		}
		uint32_t to = (t->pend_head + keep++) % t->n_rx;
		t->pending[to] = t->pending[from];
		t->pending_conn[to] = t->pending_conn[from];
	}
	t->pend_len = keep;
	n->downs++;
	n->down_err = err;
}

static int node_open(struct node *n, const char *name, uint16_t id, uint16_t listen_port)
{
	memset(n, 0, sizeof(*n));
	n->name = name;
	pd_log_set_name(name);
	struct pd_fabric_attr attr = {
	    .provider = PROVIDER,
	    .listen_host = listen_port ? HOST : NULL,
	    .listen_port = listen_port,
	    .local_id = id,
	    .cb = {.on_recv = on_recv,
	           .on_recv_cancel = on_recv_cancel,
	           .on_send_done = on_send_done,
	           .on_connect_request = on_connect_request,
	           .on_up = on_up,
	           .on_down = on_down},
	    .app = n,
	    .primitive = primitive,
	    .key = node_key,
	    .test = node_test,
	};
	int ret = pd_fabric_open(&attr, &n->fab);
	if (ret == 0 && node_test.mr_mode != 0) {
		fprintf(stderr, "%s: mr_mode forced to %#" PRIx64 ": %s addresses\n", name,
		        node_test.mr_mode, n->fab->mr_virt ? "virtual" : "offset");
		if (!n->fab->mr_virt)
			fail(n, "forced FI_MR_VIRT_ADDR not in effect");
	}
	return ret;
}

static void *pool_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static int tenant_add(struct node *n, uint16_t id, uint32_t n_rx, uint32_t n_tx, uint16_t credits)
{
	struct tenant *t = &n->t[n->nt];
	int ti = n->nt++;
	t->id = id;
	t->n_rx = n_rx;
	t->n_tx = n_tx;
	t->credits = credits;
	t->rx_mem = pool_map((size_t)n_rx * BUF_SIZE);
	t->tx_mem = pool_map((size_t)n_tx * BUF_SIZE);
	t->tx_free = calloc(n_tx, sizeof(uint32_t));
	t->pending = calloc(n_rx, sizeof(uint32_t));
	t->pending_conn = calloc(n_rx, sizeof(*t->pending_conn));
	t->held = calloc(n_rx, sizeof(uint32_t));
	if (!t->rx_mem || !t->tx_mem || !t->tx_free || !t->pending || !t->pending_conn || !t->held)
		return -ENOMEM;
	int ret = pd_fabric_rx_create(n->fab, id, n_rx, &t->rx);
	if (ret == 0)
		ret = pd_fabric_mr_reg(n->fab, t->rx_mem, (size_t)n_rx * BUF_SIZE, &t->rx_mr);
	if (ret == 0)
		ret = pd_fabric_mr_reg(n->fab, t->tx_mem, (size_t)n_tx * BUF_SIZE, &t->tx_mr);
	if (ret != 0)
		return ret;
	if (node_test.mr_mode != 0)
		fprintf(stderr,
		        "%s: tenant %u: receive pool key %#" PRIx64 " (requested %" PRIu64 ")\n",
		        n->name, id, t->rx_mr->key, n->fab->next_mr_key - 2);
	if (node_test.mr_mode & FI_MR_PROV_KEY && t->rx_mr->key == n->fab->next_mr_key - 2)
		fail(n, "provider key equals the requested one: the case proves nothing");
	for (uint32_t i = 0; i < n_tx; i++)
		t->tx_free[t->n_tx_free++] = i;
	for (uint32_t i = 0; i < n_rx; i++) {
		t->outstanding++;
		repost(n, ti, i);
	}
	return 0;
}

static void node_close(struct node *n)
{
	for (int i = 0; i < n->nt; i++) {
		struct tenant *t = &n->t[i];
		if (t->rx)
			pd_fabric_rx_destroy(t->rx);
		if (t->rx_mr)
			pd_fabric_mr_dereg(t->rx_mr);
		if (t->tx_mr)
			pd_fabric_mr_dereg(t->tx_mr);
		if (t->rx_mem)
			munmap(t->rx_mem, (size_t)t->n_rx * BUF_SIZE);
		if (t->tx_mem)
			munmap(t->tx_mem, (size_t)t->n_tx * BUF_SIZE);
		free(t->tx_free);
		free(t->pending);
		free(t->pending_conn);
		free(t->held);
	}
	if (n->fab)
		pd_fabric_close(n->fab);
	n->fab = NULL;
}

/* Echo pending requests, send pinger requests and floods as far as credits allow. */
static void work(struct node *n)
{
	for (int ti = 0; ti < n->nt; ti++) {
		struct tenant *t = &n->t[ti];
		if (t->conn == NULL)
			continue;
		uint32_t c = pd_fabric_conn_credits(t->conn);
		if (c > t->max_credits)
			t->max_credits = c;
		if (c > (uint32_t)n->peer_credits - PD_FABRIC_CREDIT_RESERVE)
			fail(n, "tenant %u: %u credits, peer granted %u", t->id, c,
			     n->peer_credits - PD_FABRIC_CREDIT_RESERVE);
		while (t->pend_len > 0) {
			uint32_t idx = t->pending[t->pend_head];
			char *buf = rx_buf(t, idx);
			struct msg_hdr h;
			memcpy(&h, buf, sizeof(h));
			h.type = MSG_ECHO_REP;
			memcpy(buf, &h, sizeof(h));
			int ret = pd_fabric_send(t->pending_conn[t->pend_head], t->rx_mr, buf,
			                         h.len, ctx_of(ti, false, idx));
			if (ret == -EAGAIN)
				break;
			t->pend_head = (t->pend_head + 1) % t->n_rx;
			t->pend_len--;
			if (ret != 0) {
				fail(n, "echo send: %s", strerror(-ret));
				repost(n, ti, idx);
			}
		}
		while (t->sent < t->target && t->n_tx_free > 0) {
			uint32_t idx = t->tx_free[t->n_tx_free - 1];
			char *buf = t->tx_mem + (size_t)idx * BUF_SIZE;
			uint32_t len = msg_size(t->sent, t->id);
			msg_fill(buf, MSG_ECHO_REQ, t->id, t->sent, len);
			int ret =
			    pd_fabric_send(t->conn, t->tx_mr, buf, len, ctx_of(ti, true, idx));
			if (ret == -EAGAIN)
				break;
			if (ret != 0) {
				fail(n, "send: %s", strerror(-ret));
				break;
			}
			t->n_tx_free--;
			t->sent++;
		}
		while (n->flood_sent < n->flood_target) {
			int ret = pd_fabric_send(t->conn, t->tx_mr, t->tx_mem, BUF_SIZE,
			                         ctx_of(ti, true, FLOOD_IDX));
			if (ret == -EAGAIN)
				break;
			if (ret != 0) {
				fail(n, "flood send: %s", strerror(-ret));
				break;
			}
			n->flood_sent++; /* tx buffer 0 is shared by every flood message */
		}
	}
}

typedef bool (*done_fn)(struct node *n, void *arg);

/*
 * Run the event loop until done() or the deadline: progress, work, and sleep in poll()
 * on the fabric's fds (and extra fds) only when pd_fabric_trywait() allows it.
 */
static int run(struct node *n, done_fn done, void *arg, int64_t deadline, const int *extra,
               int n_extra, void (*on_extra)(struct node *n, int fd))
{
	for (uint32_t spins = 0;; spins++) {
		pd_fabric_progress(n->fab);
		work(n);
		if (n->failed)
			return -1;
		if (done(n, arg))
			return 0;
		if (n->busy && spins % 4096 != 0)
			continue;
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			fail(n, "deadline passed");
			return -1;
		}
		if (n->busy) { /* look at the extra fds only */
			for (int i = 0; i < n_extra; i++) {
				struct pollfd p = {.fd = extra[i], .events = POLLIN};
				if (poll(&p, 1, 0) > 0)
					on_extra(n, extra[i]);
			}
			continue;
		}
		if (pd_fabric_trywait(n->fab) != 0)
			continue;
		struct pollfd pfd[8];
		int fds[8];
		int nf = pd_fabric_wait_fds(n->fab, fds, 8 - n_extra);
		if (nf < 0) {
			fail(n, "wait_fds: %s", strerror(-nf));
			return -1;
		}
		for (int i = 0; i < nf; i++)
			pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
		for (int i = 0; i < n_extra; i++)
			pfd[nf + i] = (struct pollfd){.fd = extra[i], .events = POLLIN};
		int ret = poll(pfd, (nfds_t)(nf + n_extra), (int)left);
		if (ret < 0 && errno != EINTR) {
			fail(n, "poll: %s", strerror(errno));
			return -1;
		}
		for (int i = 0; i < n_extra; i++)
			if (pfd[nf + i].revents != 0)
				on_extra(n, extra[i]);
	}
}

/* ---- parent <-> child plumbing ------------------------------------------------------- */

enum { ST_PORT = 1, ST_UP, ST_FLOODED, ST_READY, ST_LAT_MEDIAN, ST_LAT_P99 };

static void status_send(uint32_t code, uint32_t value)
{
	uint32_t m[2] = {code, value};
	if (write(status_fd, m, sizeof(m)) != (ssize_t)sizeof(m))
		fprintf(stderr, "status write: %s\n", strerror(errno));
}

/* Wait for a message from a child: 0, or -ETIMEDOUT / -EPIPE (child gone). */
static int status_wait(int fd, uint32_t code, uint32_t *value, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		uint32_t m[2];
		ssize_t r = read(fd, m, sizeof(m));
		if (r != (ssize_t)sizeof(m))
			return -EPIPE;
		if (m[0] == code) {
			if (value)
				*value = m[1];
			return 0;
		}
	}
}

struct child {
	pid_t pid;
	int pidfd;     /* readable once the child has exited */
	int status_rd; /* read end of the child's status pipe */
	int stop_wr;   /* write end of the child's stop pipe: closing it tells it to finish */
};

static int stop_rd_in_child = -1;

static int spawn(struct child *c, int (*fn)(void *), void *arg)
{
	int st[2], sp[2];
	if (pipe2(st, O_CLOEXEC) != 0)
		return -errno;
	if (pipe2(sp, O_CLOEXEC) != 0) {
		close(st[0]);
		close(st[1]);
		return -errno;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(st[0]);
		close(sp[1]);
		status_fd = st[1];
		stop_rd_in_child = sp[0];
		signal(SIGPIPE, SIG_IGN);
		exit(fn(arg));
	}
	close(st[1]);
	close(sp[0]);
	c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	c->pid = pid;
	c->status_rd = st[0];
	c->stop_wr = sp[1];
	return 0;
}

static void child_stop(struct child *c)
{
	if (c->stop_wr >= 0)
		close(c->stop_wr);
	c->stop_wr = -1;
}

/* Reap by pid: wait until the deadline for its exit, then kill -9. Returns exit code. */
static int child_reap(struct child *c, int64_t deadline)
{
	if (c->pid <= 0)
		return -1;
	child_stop(c);
	int status = 0;
	pid_t done = 0;
	for (;;) { /* the pidfd turns readable when the child has exited */
		done = waitpid(c->pid, &status, WNOHANG);
		int64_t left = deadline - now_ms();
		if (done != 0 || left <= 0 || c->pidfd < 0)
			break;
		struct pollfd p = {.fd = c->pidfd, .events = POLLIN};
		poll(&p, 1, (int)left);
	}
	if (done == 0 && c->pidfd < 0) /* no pidfd: wait for EOF on the status pipe */
		for (;;) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				break;
			struct pollfd p = {.fd = c->status_rd, .events = POLLIN};
			if (poll(&p, 1, (int)left) <= 0)
				continue;
			uint32_t m[2];
			if (read(c->status_rd, m, sizeof(m)) <= 0) {
				done = waitpid(c->pid, &status, 0);
				break;
			}
		}
	if (done == 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, &status, 0);
		fprintf(stderr, "child %d killed at the deadline\n", (int)c->pid);
		status = 1 << 8;
	}
	close(c->status_rd);
	if (c->pidfd >= 0)
		close(c->pidfd);
	c->pid = 0;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void child_kill(struct child *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		close(c->status_rd);
		if (c->pidfd >= 0)
			close(c->pidfd);
		child_stop(c);
		c->pid = 0;
	}
}

/* ---- server and client programs ------------------------------------------------------ */

struct server_cfg {
	int tenants;             /* tenant ids 1..tenants */
	uint16_t peer_credits;   /* what clients reserve for us */
	int expect_downs;        /* connections to see end before finishing */
	uint64_t expect_refused; /* connection requests to refuse */
	int release_fd;          /* case 1: the client's "release your holds" pipe, or -1 */
	bool flood;              /* case 4 */
	bool expect_clean;       /* no receive may have been dropped (stats.recv_errors) */
	bool latency;            /* echo LAT_LEN bytes at once, busy polling */
};

static void server_extra(struct node *n, int fd)
{
	if (fd == stop_rd_in_child) {
		n->stop = true;
		return;
	}
	uint32_t count;
	ssize_t r = read(fd, &count, sizeof(count));
	if (r == (ssize_t)sizeof(count))
		n->release_count = count;
}

static bool server_done(struct node *n, void *arg)
{
	const struct server_cfg *cfg = arg;
	/* Case 1: release the holds once all the client announced have arrived. */
	if (n->release_count > 0 && n->t[0].n_held >= n->release_count) {
		if (n->t[0].n_held != n->release_count)
			fail(n, "held %u, client sent %u", n->t[0].n_held, n->release_count);
		for (uint32_t i = 0; i < n->t[0].n_held; i++)
			repost(n, 0, n->t[0].held[i]);
		n->t[0].n_held = 0;
		n->release_count = 0;
	}
	struct pd_fabric_stats st;
	pd_fabric_get_stats(n->fab, &st);
	return n->stop && n->downs >= cfg->expect_downs && st.refused >= cfg->expect_refused;
}

static bool flood_posted(struct node *n, void *arg)
{
	(void)arg;
	return n->flood_target > 0 && n->flood_sent == n->flood_target;
}

static bool flood_dead(struct node *n, void *arg)
{
	(void)arg;
	return n->downs >= 1 && n->send_ok + n->send_err == n->flood_target;
}

static bool got_up(struct node *n, void *arg)
{
	(void)arg;
	return n->ups >= 1;
}

static int open_listener(struct node *n, const char *name)
{
	srand((unsigned)(getpid() ^ now_ms()));
	for (int attempt = 0; attempt < 20; attempt++) {
		uint16_t port = (uint16_t)(20000 + rand() % 40000);
		int ret = node_open(n, name, SERVER_ID, port);
		if (ret == 0)
			return port;
		if (ret != -EADDRINUSE)
			return ret;
	}
	return -EADDRINUSE;
}

static int server_main(void *arg)
{
	const struct server_cfg *cfg = arg;
	struct node n;
	int port = open_listener(&n, "server");
	if (port < 0) {
		fprintf(stderr, "server: open: %s\n", strerror(-port));
		return 1;
	}
	n.peer_credits = cfg->peer_credits;
	n.busy = n.lat = cfg->latency;
	for (int i = 0; i < cfg->tenants; i++)
		if (tenant_add(&n, (uint16_t)(i + 1), SERVER_CREDITS, 1, SERVER_CREDITS) != 0)
			fail(&n, "tenant setup");
	status_send(ST_PORT, (uint32_t)port);

	int extra[2] = {stop_rd_in_child, cfg->release_fd};
	int n_extra = cfg->release_fd >= 0 ? 2 : 1;
	if (cfg->flood && !n.failed) {
		/* Case 4: flood the first client, which never reads; then it gets killed. */
		if (run(&n, got_up, NULL, now_ms() + DEADLINE_MS, extra, 1, server_extra) == 0) {
			n.flood_target = (uint32_t)cfg->peer_credits - PD_FABRIC_CREDIT_RESERVE;
			msg_fill(n.t[0].tx_mem, MSG_FLOOD, n.t[0].id, 0, BUF_SIZE);
			if (run(&n, flood_posted, NULL, now_ms() + DEADLINE_MS, extra, 1,
			        server_extra) == 0)
				status_send(ST_FLOODED, n.flood_sent);
		}
		if (!n.failed && run(&n, flood_dead, NULL, now_ms() + DEADLINE_MS, extra, 1,
		                     server_extra) == 0) {
			if (n.send_err == 0)
				fail(&n, "no send completed with an error after the peer died");
			fprintf(stderr,
			        "server: peer died: %" PRIu64 " sends ok, %" PRIu64
			        " failed, on_down err %d (%s)\n",
			        n.send_ok, n.send_err, n.down_err, strerror(-n.down_err));
			n.flood_target = n.flood_sent = 0;
			status_send(ST_READY, (uint32_t)n.send_err);
		}
	}
	if (!n.failed)
		run(&n, server_done, arg, now_ms() + DEADLINE_MS * 3, extra, n_extra, server_extra);
	if (cfg->expect_refused > 0 && n.connreqs != 0)
		fail(&n, "on_connect_request ran for a refused version");
	struct pd_fabric_stats st;
	pd_fabric_get_stats(n.fab, &st);
	if (cfg->expect_clean && st.recv_errors != 0)
		fail(&n, "%" PRIu64 " receives dropped", st.recv_errors);

	for (int i = 0; i < n.nt; i++)
		if (n.t[i].max_outstanding > 0)
			fprintf(stderr,
			        "server: tenant %u: at most %u messages held (granted %u)\n",
			        n.t[i].id, n.t[i].max_outstanding,
			        n.t[i].credits - PD_FABRIC_CREDIT_RESERVE);
	bool failed = n.failed;
	node_close(&n);
	return failed ? 1 : 0;
}

struct client_cfg {
	uint16_t port;
	int tenants;
	uint32_t pings;   /* echo requests per tenant */
	uint16_t version; /* 0: the real one */
	uint16_t credits; /* receives reserved per connection */
	int release_fd;   /* case 1: stop reposting at the server, then release: -1 none */
	bool idle_check;  /* case 6 */
	bool freeze;      /* case 4: the victim: never progress after on_up */
	bool replaced;    /* case 7: after the pings, wait to be replaced by a new process */
	bool mismatch;    /* case 8: use the other primitive than the server */
	bool oversize;    /* case 9: a message longer than the granted slot first */
	uint32_t latency; /* latency mode: round trips to time (then nothing else) */
	int expect_err;   /* 0: expect success; else the on_down error expected */
};

static bool all_echoed(struct node *n, void *arg)
{
	(void)arg;
	for (int i = 0; i < n->nt; i++)
		if (n->t[i].echoed < n->t[i].target || n->t[i].conn == NULL)
			return false;
	return true;
}

static bool got_down(struct node *n, void *arg)
{
	int want = *(int *)arg;
	return n->downs >= want;
}

/* Case 1, phase B: send holds until the fabric says no credit. */
static bool holds_blocked(struct node *n, void *arg)
{
	uint32_t *holds = arg;
	struct tenant *t = &n->t[0];
	while (t->n_tx_free > 0) {
		uint32_t idx = t->tx_free[t->n_tx_free - 1];
		char *buf = t->tx_mem + (size_t)idx * BUF_SIZE;
		msg_fill(buf, MSG_HOLD, t->id, *holds, MIN_MSG);
		struct pd_fabric_stats before, after;
		pd_fabric_get_stats(n->fab, &before);
		int ret = pd_fabric_send(t->conn, t->tx_mr, buf, MIN_MSG, ctx_of(0, true, idx));
		pd_fabric_get_stats(n->fab, &after);
		if (ret == -EAGAIN && after.no_credit > before.no_credit)
			return true;
		if (ret == -EAGAIN)
			return false;
		if (ret != 0) {
			fail(n, "hold send: %s", strerror(-ret));
			return false;
		}
		t->n_tx_free--;
		(*holds)++;
	}
	return false;
}

static bool credits_back(struct node *n, void *arg)
{
	(void)arg;
	return pd_fabric_conn_credits(n->t[0].conn) ==
	       (uint32_t)n->peer_credits - PD_FABRIC_CREDIT_RESERVE;
}

static bool idle_now(struct node *n, void *arg)
{
	(void)arg;
	return pd_fabric_trywait(n->fab) == 0;
}

/*
 * Case 6: once every echo came back and trywait allows sleeping, the wait fds stay
 * quiet: a poll of 100 ms finds none ready. A fd that is ready must mean work: then
 * progress handles at least one event (traffic still on its way), and the check starts
 * again; a fd ready with nothing to handle is a spurious wake-up, a failure. Bounded:
 * 20 rounds of traffic at most.
 */
static void idle_check(struct node *n)
{
	for (int round = 0; round < 20; round++) {
		if (run(n, idle_now, NULL, now_ms() + DEADLINE_MS, NULL, 0, NULL) != 0)
			return;
		int fds[4];
		int nf = pd_fabric_wait_fds(n->fab, fds, 4);
		if (nf <= 0) {
			fail(n, "idle: wait_fds returned %d", nf);
			return;
		}
		struct pollfd p[4];
		for (int i = 0; i < nf; i++)
			p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
		int ready = poll(p, (nfds_t)nf, 100);
		if (ready == 0) {
			fprintf(stderr, "client: idle: trywait 0, no fd ready after 100 ms\n");
			return;
		}
		if (ready < 0) {
			fail(n, "idle: poll: %s", strerror(errno));
			return;
		}
		int events = pd_fabric_progress(n->fab);
		if (events == 0) {
			fail(n, "idle: %d of %d wait fds ready with no event to handle", ready, nf);
			return;
		}
		fprintf(stderr, "client: idle: %d fds ready, %d events handled\n", ready, events);
	}
	fail(n, "idle: still busy after 20 rounds");
}

static bool got_credit(struct node *n, void *arg)
{
	(void)arg;
	return n->t[0].conn != NULL && pd_fabric_conn_credits(n->t[0].conn) > 0;
}

/* Case 9: a message longer than the slot is refused before anything is written. */
static void oversize_check(struct node *n)
{
	struct tenant *t = &n->t[0];
	struct pd_fabric_stats before, after;
	pd_fabric_get_stats(n->fab, &before);
	uint32_t credits = pd_fabric_conn_credits(t->conn);
	msg_fill(t->tx_mem, MSG_ECHO_REQ, t->id, 0, BUF_SIZE + 1);
	int ret = pd_fabric_send(t->conn, t->tx_mr, t->tx_mem, BUF_SIZE + 1, ctx_of(0, true, 0));
	pd_fabric_get_stats(n->fab, &after);
	fprintf(stderr, "client: %u bytes into a %u-byte slot: %d (%s)\n", BUF_SIZE + 1, BUF_SIZE,
	        ret, strerror(-ret));
	if (ret != -EMSGSIZE)
		fail(n, "oversized send: %d, expected -EMSGSIZE", ret);
	if (pd_fabric_conn_credits(t->conn) != credits || after.writes != before.writes)
		fail(n, "oversized send used a slot");
	if (pd_fabric_send(t->conn, t->tx_mr, t->tx_mem, 0, ctx_of(0, true, 0)) != -EINVAL)
		fail(n, "an empty one-sided send was not refused");
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Latency mode: LAT_LEN-byte ping-pong, both sides spinning on pd_fabric_progress(). */
static void latency_client(struct node *n, uint32_t iters)
{
	struct tenant *t = &n->t[0];
	uint64_t *rtt = calloc(iters, sizeof(*rtt));
	if (rtt == NULL) {
		fail(n, "latency: out of memory");
		return;
	}
	msg_fill(t->tx_mem, MSG_ECHO_REQ, t->id, 0, LAT_LEN);
	n->lat = n->busy = true;
	int64_t deadline = now_ms() + DEADLINE_MS * 6;
	for (uint32_t i = 0; i < LAT_WARMUP + iters && !n->failed; i++) {
		uint64_t t0 = now_ns();
		int ret;
		while ((ret = pd_fabric_send(t->conn, t->tx_mr, t->tx_mem, LAT_LEN,
		                             ctx_of(0, true, FLOOD_IDX))) == -EAGAIN)
			pd_fabric_progress(n->fab);
		if (ret != 0) {
			fail(n, "latency send: %s", strerror(-ret));
			break;
		}
		n->lat_reply = false;
		for (uint32_t spins = 0; !n->lat_reply && !n->failed; spins++) {
			pd_fabric_progress(n->fab);
			if (spins % 4096 == 4095 && now_ms() > deadline)
				fail(n, "latency: no reply");
		}
		if (i >= LAT_WARMUP)
			rtt[i - LAT_WARMUP] = now_ns() - t0;
	}
	if (!n->failed) {
		qsort(rtt, iters, sizeof(*rtt), cmp_u64);
		/* One-way: half the round trip, in nanoseconds. */
		status_send(ST_LAT_MEDIAN, (uint32_t)(rtt[iters / 2] / 2));
		status_send(ST_LAT_P99, (uint32_t)(rtt[(size_t)iters * 99 / 100] / 2));
	}
	n->lat = n->busy = false;
	free(rtt);
}

static int client_main(void *arg)
{
	const struct client_cfg *cfg = arg;
	struct node n;
	if (cfg->mismatch)
		primitive = other_primitive();
	if (cfg->version != 0) {
		node_test.set_version = true;
		node_test.version = cfg->version;
	}
	int ret = node_open(&n, "client", CLIENT_ID, 0);
	if (ret != 0) {
		fprintf(stderr, "client: open: %s\n", strerror(-ret));
		return 1;
	}
	n.peer_credits = SERVER_CREDITS;
	uint32_t n_rx = cfg->credits;
	for (int i = 0; i < cfg->tenants && !n.failed; i++)
		if (tenant_add(&n, (uint16_t)(i + 1), n_rx, 64, cfg->credits) != 0)
			fail(&n, "tenant setup");
	for (int i = 0; i < n.nt && !n.failed; i++) {
		struct pd_fabric_conn *conn;
		ret = pd_fabric_connect(n.fab, n.t[i].rx, HOST, cfg->port, SERVER_ID, cfg->credits,
		                        &n.t[i], &conn);
		if (ret != 0)
			fail(&n, "connect: %s", strerror(-ret));
	}
	int64_t deadline = now_ms() + DEADLINE_MS;
	int want_downs = 1;
	if (n.failed) {
		/* nothing */
	} else if (cfg->expect_err != 0) {
		if (run(&n, got_down, &want_downs, deadline, NULL, 0, NULL) == 0) {
			fprintf(stderr, "client: on_down %d (%s)\n", n.down_err,
			        strerror(-n.down_err));
			if (n.down_err != cfg->expect_err || n.ups != 0)
				fail(&n, "on_down %d after %d ups, expected %d and none",
				     n.down_err, n.ups, cfg->expect_err);
		}
	} else if (cfg->freeze) {
		if (run(&n, got_up, NULL, deadline, NULL, 0, NULL) == 0) {
			status_send(ST_UP, 0);
			char c;
			/* Frozen: no progress from here on; the parent kills us. */
			if (read(stop_rd_in_child, &c, 1) < 0)
				fprintf(stderr, "client: read: %s\n", strerror(errno));
			fail(&n, "victim was not killed");
		}
	} else if (cfg->latency > 0) {
		if (run(&n, got_credit, NULL, deadline, NULL, 0, NULL) == 0)
			latency_client(&n, cfg->latency);
	} else {
		if (cfg->oversize && run(&n, got_credit, NULL, deadline, NULL, 0, NULL) == 0)
			oversize_check(&n);
		for (int i = 0; i < n.nt; i++)
			n.t[i].target = cfg->pings;
		run(&n, all_echoed, NULL, now_ms() + DEADLINE_MS * 3, NULL, 0, NULL);
		if (!n.failed && cfg->release_fd >= 0) {
			uint32_t holds = 0;
			if (run(&n, holds_blocked, &holds, now_ms() + DEADLINE_MS, NULL, 0, NULL) ==
			    0) {
				fprintf(stderr,
				        "client: -EAGAIN (no credit) after %u held messages\n",
				        holds);
				if (holds == 0 || holds > SERVER_CREDITS - PD_FABRIC_CREDIT_RESERVE)
					fail(&n, "%u messages sent to a receiver not reposting",
					     holds);
				if (write(cfg->release_fd, &holds, sizeof(holds)) != sizeof(holds))
					fail(&n, "release write");
			}
			if (!n.failed)
				run(&n, credits_back, NULL, now_ms() + DEADLINE_MS, NULL, 0, NULL);
			for (int i = 0; i < n.nt; i++) /* traffic resumes */
				n.t[i].target += 200;
			if (!n.failed)
				run(&n, all_echoed, NULL, now_ms() + DEADLINE_MS, NULL, 0, NULL);
		}
		if (!n.failed && cfg->replaced) {
			/* A new process with our peer id connects: the server drops us. */
			status_send(ST_READY, 0);
			if (run(&n, got_down, &want_downs, now_ms() + DEADLINE_MS, NULL, 0, NULL) ==
			        0 &&
			    n.down_err != -ECONNRESET)
				fail(&n, "replaced: on_down %d, expected -ECONNRESET", n.down_err);
			fprintf(stderr, "client: replaced: on_down %d (%s)\n", n.down_err,
			        strerror(-n.down_err));
		}
		if (!n.failed && cfg->idle_check)
			idle_check(&n);
		struct pd_fabric_stats st;
		pd_fabric_get_stats(n.fab, &st);
		fprintf(stderr,
		        "client: sent %" PRIu64 " (%" PRIu64 " B), received %" PRIu64
		        ", credit msgs %" PRIu64 "/%" PRIu64 ", no_credit %" PRIu64
		        ", max credits %u\n",
		        st.msgs_sent, st.bytes_sent, st.msgs_recv, st.credit_msgs_sent,
		        st.credit_msgs_recv, st.no_credit, n.t[0].max_credits);
		for (int i = 0; i < n.nt; i++)
			if (n.t[i].conn != NULL)
				pd_fabric_disconnect(n.t[i].conn);
		want_downs = n.nt;
		if (!n.failed && !cfg->replaced &&
		    run(&n, got_down, &want_downs, now_ms() + DEADLINE_MS, NULL, 0, NULL) == 0 &&
		    n.down_err != -ESHUTDOWN)
			fail(&n, "on_down %d after disconnect", n.down_err);
		if (n.send_err != 0)
			fail(&n, "%" PRIu64 " sends failed", n.send_err);
	}
	bool failed = n.failed;
	node_close(&n);
	return failed ? 1 : 0;
}

/* Case 5: connect to a port that is bound but not listening. */
static int nolistener_main(void *arg)
{
	(void)arg;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(s, (struct sockaddr *)&a, &alen) != 0) {
		fprintf(stderr, "nolistener: socket: %s\n", strerror(errno));
		return 1;
	}
	struct client_cfg cfg = {.port = ntohs(a.sin_port),
	                         .tenants = 1,
	                         .credits = CLIENT_CREDITS,
	                         .release_fd = -1,
	                         .expect_err = -ECONNREFUSED};
	int rc = client_main(&cfg);
	close(s);
	return rc;
}

/* ---- the cases ------------------------------------------------------------------------ */

static int get_port(struct child *server, uint16_t *port)
{
	uint32_t v;
	int ret = status_wait(server->status_rd, ST_PORT, &v, now_ms() + DEADLINE_MS);
	*port = (uint16_t)v;
	return ret;
}

/* One server, one client; both must exit 0. */
static bool pair_case(struct server_cfg *scfg, struct client_cfg *ccfg, bool with_release)
{
	int64_t limit = now_ms() + CASE_LIMIT_MS;
	struct child s = {0}, c = {0};
	int rel[2] = {-1, -1};
	bool ok = false;
	if (with_release && pipe2(rel, O_CLOEXEC) != 0)
		return false;
	scfg->release_fd = rel[0];
	ccfg->release_fd = rel[1];
	if (spawn(&s, server_main, scfg) != 0)
		goto out;
	if (get_port(&s, &ccfg->port) != 0)
		goto out;
	if (spawn(&c, client_main, ccfg) != 0)
		goto out;
	int crc = child_reap(&c, limit);
	int src = child_reap(&s, limit);
	ok = crc == 0 && src == 0;
	if (!ok)
		fprintf(stderr, "client exit %d, server exit %d\n", crc, src);
out:
	child_kill(&c);
	child_kill(&s);
	if (rel[0] >= 0) {
		close(rel[0]);
		close(rel[1]);
	}
	return ok;
}

static bool case_pingpong(void)
{
	struct server_cfg s = {
	    .tenants = 1, .peer_credits = CLIENT_CREDITS, .expect_downs = 1, .expect_clean = true};
	struct client_cfg c = {.tenants = 1, .pings = PINGS, .credits = CLIENT_CREDITS};
	return pair_case(&s, &c, true);
}

static bool case_two_tenants(void)
{
	struct server_cfg s = {
	    .tenants = 2, .peer_credits = CLIENT_CREDITS, .expect_downs = 2, .expect_clean = true};
	struct client_cfg c = {.tenants = 2, .pings = 1000, .credits = CLIENT_CREDITS};
	return pair_case(&s, &c, false);
}

static bool case_bad_version(void)
{
	struct server_cfg s = {.tenants = 1, .peer_credits = CLIENT_CREDITS, .expect_refused = 1};
	struct client_cfg c = {.tenants = 1,
	                       .credits = CLIENT_CREDITS,
	                       .version = PD_FABRIC_PROTO_VERSION + 1,
	                       .expect_err = -ECONNREFUSED};
	return pair_case(&s, &c, false);
}

static bool case_peer_killed(void)
{
	int64_t limit = now_ms() + CASE_LIMIT_MS;
	struct server_cfg scfg = {.tenants = 1,
	                          .peer_credits = FLOOD_CREDITS,
	                          .expect_downs = 2,
	                          .release_fd = -1,
	                          .flood = true};
	struct client_cfg vcfg = {
	    .tenants = 1, .credits = FLOOD_CREDITS, .release_fd = -1, .freeze = true};
	struct child s = {0}, v = {0}, c = {0};
	bool ok = false;
	uint32_t errors = 0;
	if (spawn(&s, server_main, &scfg) != 0 || get_port(&s, &vcfg.port) != 0)
		goto out;
	if (spawn(&v, client_main, &vcfg) != 0 ||
	    status_wait(v.status_rd, ST_UP, NULL, now_ms() + DEADLINE_MS) != 0 ||
	    status_wait(s.status_rd, ST_FLOODED, NULL, now_ms() + DEADLINE_MS) != 0) {
		fprintf(stderr, "case 4: victim did not come up or flood not posted\n");
		goto out;
	}
	child_kill(&v); /* kill -9 */
	if (status_wait(s.status_rd, ST_READY, &errors, now_ms() + DEADLINE_MS) != 0) {
		fprintf(stderr, "case 4: survivor did not see the peer die in time\n");
		goto out;
	}
	/* A new peer process connects to the same listener and works. */
	struct client_cfg ccfg = {.port = vcfg.port,
	                          .tenants = 1,
	                          .pings = 500,
	                          .credits = CLIENT_CREDITS,
	                          .release_fd = -1};
	if (spawn(&c, client_main, &ccfg) != 0)
		goto out;
	int crc = child_reap(&c, limit);
	int src = child_reap(&s, limit);
	ok = crc == 0 && src == 0;
	if (!ok)
		fprintf(stderr, "new client exit %d, server exit %d\n", crc, src);
out:
	child_kill(&c);
	child_kill(&v);
	child_kill(&s);
	return ok;
}

static bool case_replaced(void)
{
	int64_t limit = now_ms() + CASE_LIMIT_MS;
	struct server_cfg scfg = {
	    .tenants = 1, .peer_credits = CLIENT_CREDITS, .expect_downs = 2, .release_fd = -1};
	struct client_cfg acfg = {.tenants = 1,
	                          .pings = 100,
	                          .credits = CLIENT_CREDITS,
	                          .release_fd = -1,
	                          .replaced = true};
	struct child s = {0}, a = {0}, b = {0};
	bool ok = false;
	if (spawn(&s, server_main, &scfg) != 0 || get_port(&s, &acfg.port) != 0)
		goto out;
	if (spawn(&a, client_main, &acfg) != 0 ||
	    status_wait(a.status_rd, ST_READY, NULL, now_ms() + DEADLINE_MS) != 0)
		goto out;
	struct client_cfg bcfg = {.port = acfg.port,
	                          .tenants = 1,
	                          .pings = 100,
	                          .credits = CLIENT_CREDITS,
	                          .release_fd = -1};
	if (spawn(&b, client_main, &bcfg) != 0)
		goto out;
	int brc = child_reap(&b, limit);
	int arc = child_reap(&a, limit);
	int src = child_reap(&s, limit);
	ok = arc == 0 && brc == 0 && src == 0;
	if (!ok)
		fprintf(stderr, "old client exit %d, new client exit %d, server exit %d\n", arc,
		        brc, src);
out:
	child_kill(&b);
	child_kill(&a);
	child_kill(&s);
	return ok;
}

static bool case_no_listener(void)
{
	struct child c = {0};
	if (spawn(&c, nolistener_main, NULL) != 0)
		return false;
	return child_reap(&c, now_ms() + CASE_LIMIT_MS) == 0;
}

static bool case_idle(void)
{
	struct server_cfg s = {.tenants = 1, .peer_credits = CLIENT_CREDITS, .expect_downs = 1};
	struct client_cfg c = {
	    .tenants = 1, .pings = 20, .credits = CLIENT_CREDITS, .idle_check = true};
	return pair_case(&s, &c, false);
}

static bool case_mismatch(void)
{
	struct server_cfg s = {.tenants = 1, .peer_credits = CLIENT_CREDITS, .expect_refused = 1};
	struct client_cfg c = {
	    .tenants = 1, .credits = CLIENT_CREDITS, .mismatch = true, .expect_err = -ECONNREFUSED};
	return pair_case(&s, &c, false);
}

static bool case_oversize(void)
{
	struct server_cfg s = {
	    .tenants = 1, .peer_credits = CLIENT_CREDITS, .expect_downs = 1, .expect_clean = true};
	struct client_cfg c = {
	    .tenants = 1, .pings = 1000, .credits = CLIENT_CREDITS, .oversize = true};
	return pair_case(&s, &c, false);
}

/* Case 1 again with the provider picking keys and addresses virtual (verbs' mr_mode). */
static bool case_virt_addr(void)
{
	node_test.mr_mode = FI_MR_VIRT_ADDR | FI_MR_PROV_KEY;
	bool ok = case_pingpong();
	node_test.mr_mode = 0;
	return ok;
}

/* ---- the cluster key: challenge-response, replays --------------------------------------- */

static const uint8_t key_a[PD_FABRIC_KEY_LEN] = {
    0x3a, 0x11, 0x5c, 0x82, 0x07, 0xe4, 0x9b, 0x60, 0x21, 0xd8, 0x4f, 0x93, 0x0e, 0x77, 0xaa, 0x15,
    0xc2, 0x58, 0x36, 0xf1, 0x6d, 0x0b, 0x94, 0x2e, 0x81, 0x4a, 0xb7, 0x19, 0xe0, 0x63, 0x5f, 0xd4};
static const uint8_t key_b[PD_FABRIC_KEY_LEN] = {
    0x3a, 0x11, 0x5c, 0x82, 0x07, 0xe4, 0x9b, 0x60, 0x21, 0xd8, 0x4f, 0x93, 0x0e, 0x77, 0xaa, 0x15,
    0xc2, 0x58, 0x36, 0xf1, 0x6d, 0x0b, 0x94, 0x2e, 0x81, 0x4a, 0xb7, 0x19, 0xe0, 0x63, 0x5f, 0xd5};

struct keyed_server_cfg {
	const uint8_t *key;
	int expect_ups, expect_downs, expect_connreqs;
	uint64_t expect_refused;
};

static bool keyed_server_done(struct node *n, void *arg)
{
	const struct keyed_server_cfg *cfg = arg;
	struct pd_fabric_stats st;
	pd_fabric_get_stats(n->fab, &st);
	return n->stop && n->downs >= cfg->expect_downs && st.refused >= cfg->expect_refused;
}

/* An echo server with a cluster key: exact counts of what it let in and refused. */
static int keyed_server_main(void *arg)
{
	const struct keyed_server_cfg *cfg = arg;
	node_key = cfg->key;
	struct node n;
	int port = open_listener(&n, "server");
	if (port < 0) {
		fprintf(stderr, "server: open: %s\n", strerror(-port));
		return 1;
	}
	n.peer_credits = CLIENT_CREDITS;
	if (tenant_add(&n, 1, SERVER_CREDITS, 1, SERVER_CREDITS) != 0)
		fail(&n, "tenant setup");
	status_send(ST_PORT, (uint32_t)port);
	int extra[1] = {stop_rd_in_child};
	if (!n.failed)
		run(&n, keyed_server_done, arg, now_ms() + DEADLINE_MS * 3, extra, 1, server_extra);
	struct pd_fabric_stats st;
	pd_fabric_get_stats(n.fab, &st);
	fprintf(stderr,
	        "server: %d requests passed to the app, %d up, %d down, %" PRIu64 " refused\n",
	        n.connreqs, n.ups, n.downs, st.refused);
	if (n.connreqs != cfg->expect_connreqs || n.ups != cfg->expect_ups ||
	    st.refused != cfg->expect_refused)
		fail(&n, "expected %d requests passed to the app, %d up, %" PRIu64 " refused",
		     cfg->expect_connreqs, cfg->expect_ups, cfg->expect_refused);
	bool failed = n.failed;
	node_close(&n);
	return failed ? 1 : 0;
}

/* A keyed server and a client with client_key (no_check: it skips the server's HMAC). */
static bool keyed_pair(struct keyed_server_cfg *scfg, const uint8_t *client_key, bool no_check,
                       struct client_cfg *ccfg)
{
	int64_t limit = now_ms() + CASE_LIMIT_MS;
	struct child s = {0}, c = {0};
	bool ok = false;
	ccfg->release_fd = -1;
	node_key = client_key;
	node_test.no_server_check = no_check;
	if (spawn(&s, keyed_server_main, scfg) != 0 || get_port(&s, &ccfg->port) != 0 ||
	    spawn(&c, client_main, ccfg) != 0)
		goto out;
	int crc = child_reap(&c, limit);
	int src = child_reap(&s, limit);
	ok = crc == 0 && src == 0;
	if (!ok)
		fprintf(stderr, "client exit %d, server exit %d\n", crc, src);
out:
	child_kill(&c);
	child_kill(&s);
	node_key = NULL;
	node_test.no_server_check = false;
	return ok;
}

static bool case_keyed(void)
{
	struct keyed_server_cfg s = {
	    .key = key_a, .expect_ups = 1, .expect_downs = 1, .expect_connreqs = 1};
	struct client_cfg c = {.tenants = 1, .pings = 1000, .credits = CLIENT_CREDITS};
	return keyed_pair(&s, key_a, false, &c);
}

static bool case_wrong_key(void)
{
	/* The client refuses a server whose challenge is not made with its key; the server
	 * has only issued a challenge (no refusal, nothing passed to its app). */
	struct keyed_server_cfg s1 = {.key = key_a};
	struct client_cfg c1 = {.tenants = 1, .credits = CLIENT_CREDITS, .expect_err = -EACCES};
	bool ok = keyed_pair(&s1, key_b, false, &c1);
	/* The server refuses a proof made with another key (the client skips its check). */
	struct keyed_server_cfg s2 = {.key = key_a, .expect_refused = 1};
	struct client_cfg c2 = {
	    .tenants = 1, .credits = CLIENT_CREDITS, .expect_err = -ECONNREFUSED};
	ok = keyed_pair(&s2, key_b, true, &c2) && ok;
	/* No key at all, and a key where the server has none: refused too. */
	struct keyed_server_cfg s3 = {.key = key_a, .expect_refused = 1};
	struct client_cfg c3 = {
	    .tenants = 1, .credits = CLIENT_CREDITS, .expect_err = -ECONNREFUSED};
	ok = keyed_pair(&s3, NULL, false, &c3) && ok;
	struct keyed_server_cfg s4 = {.key = NULL, .expect_refused = 1};
	struct client_cfg c4 = {
	    .tenants = 1, .credits = CLIENT_CREDITS, .expect_err = -ECONNREFUSED};
	ok = keyed_pair(&s4, key_a, false, &c4) && ok;
	return ok;
}

/* Relay the client's traffic to the server until the client has exited. */
static bool relay_until_exit(struct tcp_relay *r, struct child *c, int64_t deadline)
{
	while (now_ms() < deadline) {
		struct pollfd pfd[2 + 2 * TCP_RELAY_CONNS];
		pfd[0] = (struct pollfd){.fd = c->pidfd, .events = POLLIN};
		int n = tcp_relay_fds(r, pfd + 1, 1 + 2 * TCP_RELAY_CONNS);
		int left = (int)(deadline - now_ms());
		if (poll(pfd, (nfds_t)(1 + n), left > 0 ? left : 0) < 0 && errno != EINTR)
			return false;
		tcp_relay_service(r, pfd + 1, n);
		if (pfd[0].revents != 0)
			return true;
	}
	return false;
}

/* Replay a record to the server at port: it must answer or close within the deadline. */
static bool replay_one(uint16_t port, const struct tcp_relay_conn *rc)
{
	int ret = tcp_replay(port, rc->rec, rc->len, DEADLINE_MS);
	fprintf(stderr, "replayed %zu bytes to port %u: %d%s\n", rc->len, port, ret,
	        ret == -ETIMEDOUT ? " (no answer)" : "");
	return ret >= 0;
}

/*
 * A keyed client connects through a TCP relay that records what it said before each
 * answer (its connection requests). Those bytes, sent again, must be refused: by the
 * same server (its challenge was used up) and by a new one (the proof answers a
 * challenge it never issued; the first request replayed first gets a fresh challenge,
 * which the recorded proof does not answer). Nothing reaches either server's app.
 */
static bool case_replay(void)
{
	int64_t limit = now_ms() + CASE_LIMIT_MS;
	struct keyed_server_cfg s1cfg = {.key = key_a,
	                                 .expect_ups = 1,
	                                 .expect_downs = 1,
	                                 .expect_connreqs = 1,
	                                 .expect_refused = 1};
	struct keyed_server_cfg s2cfg = {.key = key_a, .expect_refused = 2};
	struct client_cfg ccfg = {
	    .tenants = 1, .pings = 10, .credits = CLIENT_CREDITS, .release_fd = -1};
	struct child s1 = {0}, s2 = {0}, c = {0};
	struct tcp_relay r = {.lfd = -1};
	bool ok = false;
	uint16_t port1, port2;
	if (spawn(&s1, keyed_server_main, &s1cfg) != 0 || get_port(&s1, &port1) != 0 ||
	    tcp_relay_open(&r, port1) != 0)
		goto out;
	ccfg.port = r.port;
	node_key = key_a;
	if (spawn(&c, client_main, &ccfg) != 0)
		goto out;
	if (!relay_until_exit(&r, &c, limit)) {
		fprintf(stderr, "replay: the client did not finish\n");
		goto out;
	}
	int crc = child_reap(&c, limit);
	fprintf(stderr, "replay: client exit %d, %u connections recorded\n", crc, r.n);
	if (crc != 0 || r.n == 0 || r.conns[r.n - 1].len == 0)
		goto out;
	const struct tcp_relay_conn *last = &r.conns[r.n - 1];
	if (spawn(&s2, keyed_server_main, &s2cfg) != 0 || get_port(&s2, &port2) != 0)
		goto out;
	ok = replay_one(port1, last);       /* the same server: refused 1 */
	ok = replay_one(port2, last) && ok; /* a new server: refused 1 */
	for (unsigned i = 0; i < r.n; i++)  /* ... whole exchange: refused 2 */
		ok = replay_one(port2, &r.conns[i]) && ok;
	/* s2 first: it holds a copy of s1's stop pipe (forked later). */
	int s2rc = child_reap(&s2, limit);
	int s1rc = child_reap(&s1, limit);
	if (s1rc != 0 || s2rc != 0)
		fprintf(stderr, "replay: server exits %d (recorded from) and %d (new)\n", s1rc,
		        s2rc);
	ok = ok && s1rc == 0 && s2rc == 0;
out:
	node_key = NULL;
	tcp_relay_close(&r);
	child_kill(&c);
	child_kill(&s2);
	child_kill(&s1);
	return ok;
}

/* `test_fabric latency [round trips]`: 1 KiB ping-pong, busy polling, both primitives. */
static int latency_main(uint32_t iters)
{
	static const enum pd_fabric_primitive prims[] = {PD_FABRIC_TWO_SIDED, PD_FABRIC_ONE_SIDED};
	uint32_t median[2] = {0}, p99[2] = {0};
	for (int p = 0; p < 2; p++) {
		primitive = prims[p];
		struct server_cfg scfg = {.tenants = 1,
		                          .peer_credits = CLIENT_CREDITS,
		                          .expect_downs = 1,
		                          .release_fd = -1,
		                          .latency = true};
		struct client_cfg ccfg = {
		    .tenants = 1, .credits = CLIENT_CREDITS, .release_fd = -1, .latency = iters};
		struct child s = {0}, c = {0};
		int64_t limit = now_ms() + CASE_LIMIT_MS * 2;
		bool ok = spawn(&s, server_main, &scfg) == 0 && get_port(&s, &ccfg.port) == 0 &&
		          spawn(&c, client_main, &ccfg) == 0 &&
		          status_wait(c.status_rd, ST_LAT_MEDIAN, &median[p], limit) == 0 &&
		          status_wait(c.status_rd, ST_LAT_P99, &p99[p], limit) == 0;
		ok = child_reap(&c, limit) == 0 && ok;
		ok = child_reap(&s, limit) == 0 && ok;
		child_kill(&c);
		child_kill(&s);
		if (!ok) {
			printf("latency (%s): FAILED\n", p == 0 ? "two-sided" : "one-sided");
			return 1;
		}
	}
	printf("one-way latency, %u-byte ping-pong, busy polling, %u round trips (+%u warm-up),"
	       " half the round trip:\n",
	       LAT_LEN, iters, LAT_WARMUP);
	printf("| primitive | median (us) | p99 (us) |\n|---|---|---|\n");
	printf("| two-sided | %.2f | %.2f |\n", median[0] / 1000.0, p99[0] / 1000.0);
	printf("| one-sided | %.2f | %.2f |\n", median[1] / 1000.0, p99[1] / 1000.0);
	printf("one-sided / two-sided: median %.2f, p99 %.2f\n", (double)median[1] / median[0],
	       (double)p99[1] / p99[0]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "latency") == 0) {
		signal(SIGPIPE, SIG_IGN);
		long iters = argc > 2 ? strtol(argv[2], NULL, 10) : PINGS;
		return latency_main(iters > 0 && iters < 10000000 ? (uint32_t)iters : PINGS);
	}
	static const struct {
		const char *name;
		bool (*fn)(void);
	} cases[] = {
	    {"ping-pong 10000 mixed sizes, credits, -EAGAIN and resume", case_pingpong},
	    {"two tenants on one pair of processes", case_two_tenants},
	    {"wrong protocol version refused", case_bad_version},
	    {"peer killed with sends in flight, then a new peer", case_peer_killed},
	    {"connect to a port with no listener", case_no_listener},
	    {"idle: trywait allows sleeping", case_idle},
	    {"same peer id reconnects while its old connection is up", case_replaced},
	    {"a peer with the other primitive is refused", case_mismatch},
	    {"cluster key: the right key works", case_keyed},
	    {"cluster key: a wrong or missing key is refused by either side", case_wrong_key},
	    {"cluster key: a recorded exchange replayed is refused", case_replay},
	};
	static const struct {
		const char *name;
		bool (*fn)(void);
	} one_sided_cases[] = {
	    {"message longer than the granted slot: -EMSGSIZE, connection survives", case_oversize},
	    {"ping-pong with FI_MR_VIRT_ADDR | FI_MR_PROV_KEY (virtual addresses, provider keys)",
	     case_virt_addr},
	};
	static const struct {
		enum pd_fabric_primitive primitive;
		const char *name;
	} primitives[] = {
	    {PD_FABRIC_TWO_SIDED, "two-sided"},
	    {PD_FABRIC_ONE_SIDED, "one-sided"},
	};
	signal(SIGPIPE, SIG_IGN);
	int passed = 0, failed = 0;
	for (size_t p = 0; p < PD_ARRAY_SIZE(primitives); p++) {
		primitive = primitives[p].primitive;
		for (size_t i = 0; i < PD_ARRAY_SIZE(cases); i++) {
			int64_t t0 = now_ms();
			bool ok = cases[i].fn();
			printf("case %zu (%s): %s: %s (%.1f s)\n", i + 1, primitives[p].name,
			       cases[i].name, ok ? "ok" : "FAILED",
			       (double)(now_ms() - t0) / 1000.0);
			fflush(stdout);
			if (ok)
				passed++;
			else
				failed++;
		}
	}
	primitive = PD_FABRIC_ONE_SIDED;
	for (size_t i = 0; i < PD_ARRAY_SIZE(one_sided_cases); i++) {
		int64_t t0 = now_ms();
		bool ok = one_sided_cases[i].fn();
		printf("case %zu (one-sided): %s: %s (%.1f s)\n", PD_ARRAY_SIZE(cases) + i + 1,
		       one_sided_cases[i].name, ok ? "ok" : "FAILED",
		       (double)(now_ms() - t0) / 1000.0);
		fflush(stdout);
		if (ok)
			passed++;
		else
			failed++;
	}
	printf("fabric: %d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
