/* SPDX-License-Identifier: Apache-2.0 */
/* libpalladium: attaches a function process to its engine and runs its handler on requests. */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/http_token.h"
#include "palladium/function.h"
#include "shm/attach.h"
#include "shm/msg.h"
#include "shm/pool.h"
#include "shm/waiter.h"

#define RESP_META_MAX 8192
#define MAX_THREADS 64
/* How long a handler waits for a free output buffer: 500 x 200 us = 100 ms. */
#define ALLOC_WAIT_STEPS 500
#define ALLOC_WAIT_STEP_NS 200000

struct runtime {
	struct pd_attach_reply cfg;
	struct pd_pool pool;
	int ctl_fd;
	int engine_efd;
	int stop_efd;
	int inst_efd[PD_MAX_INSTANCES]; /* by attach inst[] position */
	pd_handler handler;
	void *arg;
	atomic_bool stopping;
	atomic_uint rr; /* round robin among local instances */
};

struct pd_request {
	struct pd_msg_hdr hdr; /* snapshot */
	const char *body;
	const uint8_t *meta;
	size_t meta_len;
	unsigned chain_len;
};

struct pd_response {
	uint32_t in_idx;
	struct pd_msg_hdr *out; /* NULL until the body needs a buffer */
	uint32_t out_idx;
	bool alloc_failed;
	bool forward; /* the request body is the response body: no new buffer */
	/* A buffer holds, after its header: the body, the request metadata when the message
	 * goes on to another hop (carried), then the response headers. */
	size_t room;    /* buffer_size - header */
	size_t carried; /* request metadata bytes that travel on (0 on the last hop) */
	size_t in_len;  /* the request body's length: the body when forwarded */
	size_t reserved;
	size_t len;
	int status;
	bool error;
	size_t err_len;
	char err_msg[512];
	struct pd_meta_writer headers;
	uint8_t header_buf[RESP_META_MAX];
};

static struct runtime rt;

static void fail(const char *what, int err)
{
	if (err < 0)
		err = -err;
	fprintf(stderr, "palladium function %d: %s%s%s\n", (int)getpid(), what, err ? ": " : "",
	        err ? strerror(err) : "");
}

/* ---------------------------------------------------------------- request accessors */

PD_API const char *pd_request_body(const pd_request *req, size_t *len)
{
	*len = req->hdr.payload_len;
	return req->body;
}

static const char *meta_value(const pd_request *req, const char *name, size_t *len)
{
	struct pd_meta_entry e;
	if (pd_meta_find(req->meta, req->meta_len, name, &e) != 1)
		return NULL;
	if (len != NULL)
		*len = e.value_len;
	return e.value;
}

static const char *meta_or_empty(const pd_request *req, const char *name, size_t *len)
{
	const char *v = meta_value(req, name, len);
	if (v == NULL) {
		if (len != NULL)
			*len = 0;
		return "";
	}
	return v;
}

PD_API const char *pd_request_method(const pd_request *req, size_t *len)
{
	return meta_or_empty(req, ":method", len);
}

PD_API const char *pd_request_path(const pd_request *req, size_t *len)
{
	return meta_or_empty(req, ":path", len);
}

PD_API const char *pd_request_query(const pd_request *req, size_t *len)
{
	return meta_or_empty(req, ":query", len);
}

PD_API const char *pd_request_header(const pd_request *req, const char *name, size_t *len)
{
	if (name == NULL || name[0] == ':')
		return NULL;
	return meta_value(req, name, len);
}

PD_API unsigned pd_request_hop(const pd_request *req)
{
	return req->hdr.hop;
}

PD_API unsigned pd_request_chain_length(const pd_request *req)
{
	return req->chain_len;
}

/* ---------------------------------------------------------------- response */

/* The output buffer, taken from the pool the first time the body needs it. */
static struct pd_msg_hdr *ensure_out(pd_response *res)
{
	if (res->out != NULL)
		return res->out;
	if (res->alloc_failed)
		return NULL;
	/* An empty pool is backpressure (the engine is holding sends back): wait a little
	 * for a buffer before giving up with 503. */
	int rc = pd_pool_alloc(&rt.pool, rt.cfg.slot, &res->out_idx);
	for (int i = 0; rc != 0 && i < ALLOC_WAIT_STEPS; i++) {
		struct timespec step = {0, ALLOC_WAIT_STEP_NS};
		nanosleep(&step, NULL);
		rc = pd_pool_alloc(&rt.pool, rt.cfg.slot, &res->out_idx);
	}
	if (rc != 0) {
		res->alloc_failed = true;
		return NULL;
	}
	pd_pool_set(&rt.pool, res->out_idx, rt.cfg.slot, PD_BUF_IN_FUNCTION);
	atomic_store_explicit(&rt.pool.ctl[res->out_idx].since_ns, pd_now_ns(),
	                      memory_order_relaxed);
	res->out = pd_pool_buf(&rt.pool, res->out_idx);
	return res->out;
}

/* What the body may still grow to: the room left by the carried metadata and the
 * response headers added so far (pd_response_set_header keeps those within room). */
static size_t body_room(const pd_response *res)
{
	return res->room - res->carried - res->headers.len;
}

PD_API char *pd_response_reserve(pd_response *res, size_t n)
{
	if (n > body_room(res) || ensure_out(res) == NULL)
		return NULL;
	res->forward = false;
	if (n > res->reserved)
		res->reserved = n;
	return (char *)pd_msg_payload(res->out);
}

PD_API size_t pd_response_capacity(const pd_response *res)
{
	return body_room(res);
}

PD_API int pd_response_commit(pd_response *res, size_t n)
{
	if (n > res->reserved)
		return -1;
	res->len = n;
	return 0;
}

PD_API int pd_response_append(pd_response *res, const void *data, size_t n)
{
	if (n > body_room(res) - res->len)
		return -1;
	char *p = pd_response_reserve(res, res->len + n);
	if (p == NULL)
		return -1;
	memcpy(p + res->len, data, n);
	res->len += n;
	return 0;
}

PD_API int pd_response_forward(pd_response *res)
{
	res->forward = true;
	return 0;
}

PD_API void pd_response_set_status(pd_response *res, int status)
{
	if (status >= 100 && status <= 599)
		res->status = status;
}

PD_API int pd_response_set_header(pd_response *res, const char *name, const char *value)
{
	if (name == NULL || value == NULL || !pd_http_name_ok(name) || !pd_http_value_ok(value))
		return -1;
	char lower[256];
	size_t n = strlen(name);
	if (n >= sizeof(lower))
		return -1;
	size_t vlen = strlen(value);
	/* The headers must fit beside the body (reserved, or forwarded) and what is carried,
	 * or the answer could not be sent: refuse the header now, never the whole answer. */
	size_t body = res->reserved;
	if (res->forward && res->in_len > body)
		body = res->in_len;
	size_t limit = res->room - res->carried - body;
	if (limit > sizeof(res->header_buf))
		limit = sizeof(res->header_buf);
	size_t start = res->headers.len == 0 ? 2 : res->headers.len;
	if (start > limit || 6 + n > limit - start || vlen > limit - start - 6 - n)
		return -1;
	for (size_t i = 0; i < n; i++)
		lower[i] = (char)tolower((unsigned char)name[i]);
	return pd_meta_add(&res->headers, lower, n, value, vlen) == 0 ? 0 : -1;
}

PD_API int pd_response_error(pd_response *res, int status, const char *message)
{
	if (status < 400 || status > 599)
		status = 500;
	res->status = status;
	res->error = true;
	/* Kept aside: the answer is written over the request once the handler is done. */
	size_t n = message != NULL ? strlen(message) : 0;
	if (n > sizeof(res->err_msg))
		n = sizeof(res->err_msg);
	memcpy(res->err_msg, message != NULL ? message : "", n);
	res->err_len = n;
	return 0;
}

/* ---------------------------------------------------------------- forwarding */

static const struct pd_attach_route *find_route(uint16_t route)
{
	for (uint16_t i = 0; i < rt.cfg.nroutes; i++)
		if (rt.cfg.routes[i].route == route)
			return &rt.cfg.routes[i];
	return NULL;
}

/*
 * Hand buffer idx (held by this instance) to the engine. The engine ring has room for
 * every buffer, but the tenant's functions can write it: when it takes nothing even
 * after pd_pool_push's retries, the message is dropped (its client gets the route's
 * 504), counted, and its buffer goes back to the pool rather than staying TO_ENGINE
 * where nobody would ever look for it.
 */
static void to_engine(uint32_t idx)
{
	pd_pool_set(&rt.pool, idx, rt.cfg.slot, PD_BUF_TO_ENGINE);
	if (pd_pool_push(&rt.pool, &rt.pool.engine_ring, idx) == 0) {
		pd_ring_notify(&rt.pool.engine_ring, rt.engine_efd);
		return;
	}
	atomic_fetch_add_explicit(&rt.pool.inst_status[rt.cfg.slot]->push_failures, 1,
	                          memory_order_relaxed);
	pd_pool_set(&rt.pool, idx, rt.cfg.slot, PD_BUF_IN_FUNCTION);
	/* If the free list will not take it either, it stays IN_FUNCTION here: the engine
	 * takes it back as from a hung instance. */
	(void)pd_pool_free(&rt.pool, idx);
}

/* Push to a local instance of function fn; false if there is none or all are full. */
static bool to_local(uint32_t idx, uint16_t fn)
{
	int cand[PD_MAX_INSTANCES];
	int n = 0;
	for (uint16_t i = 0; i < rt.cfg.ninst; i++)
		if (rt.cfg.inst[i].function == fn)
			cand[n++] = i;
	if (n == 0)
		return false;
	unsigned start = atomic_fetch_add_explicit(&rt.rr, 1, memory_order_relaxed);
	for (int k = 0; k < n; k++) {
		int i = cand[(start + (unsigned)k) % (unsigned)n];
		uint16_t slot = rt.cfg.inst[i].slot;
		atomic_store_explicit(&rt.pool.ctl[idx].since_ns, pd_now_ns(),
		                      memory_order_relaxed);
		pd_pool_set(&rt.pool, idx, slot, PD_BUF_IN_RING);
		if (pd_ring_push(&rt.pool.inst_ring[slot], idx) == 0) {
			pd_ring_notify(&rt.pool.inst_ring[slot], rt.inst_efd[i]);
			return true;
		}
	}
	pd_pool_set(&rt.pool, idx, rt.cfg.slot, PD_BUF_IN_FUNCTION);
	return false;
}

/* Turn buffer h into an error answer (status + text), keeping its request id. */
static void make_error(struct pd_msg_hdr *h, uint16_t status, const char *msg, size_t n)
{
	memmove(pd_msg_payload(h), msg, n);
	h->flags = PD_MSG_F_RESPONSE | PD_MSG_F_ERROR;
	h->status = status;
	h->payload_len = (uint32_t)n;
	h->req_meta_len = 0;
	h->resp_meta_len = 0;
}

/* ---------------------------------------------------------------- one request */

/*
 * Send buffer idx on: a request to its next function (next_fn, here or through the
 * engine), a response to the engine. Takes the decision from the caller's checked
 * locals: the buffer is tenant memory and may have changed since it was written.
 */
static void forward(uint32_t idx, bool request, uint16_t next_fn)
{
	if (request) {
		if (to_local(idx, next_fn))
			return;
		bool any_local = false;
		for (uint16_t i = 0; i < rt.cfg.ninst; i++)
			any_local |= rt.cfg.inst[i].function == next_fn;
		if (any_local) {
			static const char msg[] = "next function is overloaded\n";
			make_error(pd_pool_buf(&rt.pool, idx), 503, msg, sizeof(msg) - 1);
		}
		/* Otherwise the next function runs on another node: the engine sends it. */
	}
	to_engine(idx);
}

/*
 * One request from this instance's ring. Everything in the buffer is tenant memory that
 * another process (or the handler) may rewrite at any time: its header is copied once
 * (req.hdr), checked, and only that copy is used from then on.
 */
/* Run the handler on buffer in_idx, popped at now. */
static void handle_one(uint32_t in_idx, pd_response *res, uint64_t now)
{
	struct pd_pool *pool = &rt.pool;
	struct pd_inst_status *st = pool->inst_status[rt.cfg.slot];
	uint32_t bufsz = pool->attr.buffer_size;
	struct pd_msg_hdr *in = pd_pool_buf(pool, in_idx);
	pd_request req;

	uint64_t queued_since =
	    atomic_load_explicit(&pool->ctl[in_idx].since_ns, memory_order_relaxed);
	pd_pool_set(pool, in_idx, rt.cfg.slot, PD_BUF_IN_FUNCTION);
	atomic_store_explicit(&pool->ctl[in_idx].since_ns, now, memory_order_relaxed);
	pd_msg_hdr_snapshot(&req.hdr, in);
	const struct pd_attach_route *route = find_route(req.hdr.route);
	if (route != NULL && queued_since != 0 && queued_since < now &&
	    now - queued_since > (uint64_t)route->timeout_ms * 1000000u) {
		/* Waited in the ring past its route's timeout: the client has had its 504;
		 * running it now would only delay the requests behind it. */
		atomic_fetch_add_explicit(&st->expired, 1, memory_order_relaxed);
		pd_pool_free(pool, in_idx);
		return;
	}
	if (pd_msg_validate(&req.hdr, bufsz, 0) != 0 || !(req.hdr.flags & PD_MSG_F_REQUEST) ||
	    req.hdr.tenant != rt.cfg.tenant || route == NULL || req.hdr.hop >= route->chain_len ||
	    route->chain[req.hdr.hop] != rt.cfg.function) {
		atomic_fetch_add_explicit(&st->bad_input, 1, memory_order_relaxed);
		pd_pool_free(pool, in_idx);
		return;
	}
	/* Checked: hop < chain_len, and the lengths fit in the buffer. */
	uint16_t hop = req.hdr.hop;
	size_t in_len = req.hdr.payload_len;
	bool last = hop + 1u >= route->chain_len;
	req.body = (const char *)pd_msg_payload(in);
	req.meta = (const uint8_t *)req.body + in_len;
	req.meta_len = req.hdr.req_meta_len;
	req.chain_len = route->chain_len;

	res->in_idx = in_idx;
	res->out = NULL;
	res->alloc_failed = false;
	res->forward = false;
	res->room = bufsz - PD_MSG_HDR_SIZE;
	/* The ingress reads no request metadata from an answer: only a request going on to
	 * another hop carries it. */
	res->carried = last ? 0 : req.meta_len;
	res->in_len = in_len;
	res->reserved = 0;
	res->len = 0;
	res->status = 200;
	res->error = false;
	res->err_len = 0;
	pd_meta_writer_init(&res->headers, res->header_buf, sizeof(res->header_buf));

	int rc = rt.handler(&req, res, rt.arg);
	atomic_fetch_add_explicit(&st->handled, 1, memory_order_relaxed);

	if (rc != 0 && !res->error && res->status < 400)
		pd_response_error(res, 500, "function failed\n");
	if (res->alloc_failed && (res->error || rc != 0))
		pd_response_error(res, 503, "no free buffer\n");
	if (!res->error && !res->forward && ensure_out(res) == NULL)
		pd_response_error(res, 503, "no free buffer\n");

	if (res->error) {
		/* The answer goes back in the request's own buffer. */
		if (res->out != NULL)
			pd_pool_free(pool, res->out_idx);
		*in = req.hdr;
		make_error(in, (uint16_t)res->status, res->err_msg, res->err_len);
		to_engine(in_idx);
		return;
	}

	uint32_t out_idx = res->forward ? in_idx : res->out_idx;
	struct pd_msg_hdr *out = pd_pool_buf(pool, out_idx);
	if (res->forward && res->out != NULL)
		pd_pool_free(pool, res->out_idx); /* reserved, then forwarded after all */
	size_t body_len = res->forward ? in_len : res->len;
	bool final = res->status >= 400 || last;
	size_t carried = final ? 0 : req.meta_len;
	/* Written whole from the checked copy, whatever the buffer holds now. */
	*out = req.hdr;
	out->payload_len = (uint32_t)body_len;
	if (final) {
		out->flags = PD_MSG_F_RESPONSE;
		out->status = (uint16_t)res->status;
	} else {
		out->flags = PD_MSG_F_REQUEST;
		out->hop = (uint16_t)(hop + 1);
		out->status = 0;
	}
	/* A request carries its metadata on (forwarding leaves it where it is), followed by
	 * this hop's response headers. pd_response_set_header keeps them within the buffer,
	 * except when headers were added before pd_response_forward. */
	int64_t hlen = pd_meta_finish(&res->headers);
	uint8_t *tail = (uint8_t *)pd_msg_payload(out) + body_len;
	size_t room = res->room - body_len; /* body_len <= room: checked above */
	if (hlen < 0 || carried > room || (size_t)hlen > room - carried) {
		static const char msg[] = "response headers do not fit in the buffer\n";
		if (!res->forward)
			pd_pool_free(pool, in_idx);
		make_error(out, 500, msg, sizeof(msg) - 1);
		to_engine(out_idx);
		return;
	}
	if (!res->forward && carried > 0) {
		memcpy(tail, req.meta, carried);
		atomic_fetch_add_explicit(&st->meta_bytes, carried, memory_order_relaxed);
	}
	memcpy(tail + carried, res->header_buf, (size_t)hlen);
	out->req_meta_len = (uint32_t)carried;
	out->resp_meta_len = (uint32_t)hlen;
	atomic_fetch_add_explicit(&st->meta_bytes, (uint64_t)hlen, memory_order_relaxed);
	if (!res->forward)
		pd_pool_free(pool, in_idx);
	forward(out_idx, !final, final ? 0 : route->chain[hop + 1]);
}

/* A handler thread; its pd_response was allocated by pd_serve (it is too big for a
 * thread stack of any size, and a failed allocation must stop pd_serve, not a thread). */
static void *worker(void *arg)
{
	pd_response *res = arg;
	struct pd_ring *ring = &rt.pool.inst_ring[rt.cfg.slot];
	struct pd_inst_status *st = rt.pool.inst_status[rt.cfg.slot];
	int self_efd = -1;
	for (uint16_t i = 0; i < rt.cfg.ninst; i++)
		if (rt.cfg.inst[i].slot == rt.cfg.slot)
			self_efd = rt.inst_efd[i];
	/* Each thread waits its own way: its arrivals are its own. */
	struct pd_waiter waiter;
	struct pd_waiter_attr wattr = pd_waiter_attr_default(rt.cfg.spin_ns, false);
	wattr.fixed = rt.cfg.poll_fixed != 0;
	pd_waiter_init(&waiter, &wattr);
	while (!atomic_load(&rt.stopping)) {
		uint64_t v;
		if (pd_ring_pop(ring, &v) == 0) {
			uint64_t now = pd_now_ns();
			pd_waiter_work(&waiter, now);
			uint32_t state = pd_pool_index_ok(&rt.pool, v)
			                     ? atomic_load(&rt.pool.ctl[v].state)
			                     : PD_BUF_STATE_COUNT;
			if (state != PD_BUF_IN_RING) {
				atomic_fetch_add_explicit(&st->bad_input, 1, memory_order_relaxed);
				continue;
			}
			handle_one((uint32_t)v, res, now);
			continue;
		}
		int rc = pd_ring_wait(ring, self_efd, rt.stop_efd, &waiter, -1);
		if (rc == -ECANCELED)
			break;
	}
	return NULL;
}

/* ---------------------------------------------------------------- attach */

static int attach(void)
{
	const char *name = getenv(PD_ENGINE_SOCKET_ENV);
	if (name == NULL || name[0] == '\0' ||
	    strlen(name) >= sizeof(((struct sockaddr_un *)0)->sun_path) - 1) {
		fail("not started by a Palladium engine (" PD_ENGINE_SOCKET_ENV " is not set)", 0);
		return -EINVAL;
	}
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path + 1, name, strlen(name));
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	if (connect(fd, (struct sockaddr *)&sa, salen) != 0) {
		int err = -errno;
		fail("connect to the engine", err);
		close(fd);
		return err;
	}
	struct pd_attach_hello hello = {PD_ATTACH_MAGIC, PD_ATTACH_VERSION, (int32_t)getpid()};
	if (send(fd, &hello, sizeof(hello), MSG_NOSIGNAL) != (ssize_t)sizeof(hello)) {
		int err = -errno;
		close(fd);
		return err;
	}

	int nfds = PD_ATTACH_FIXED_FDS + PD_MAX_INSTANCES;
	/* Aligned for the struct cmsghdr that CMSG_FIRSTHDR hands out from it. */
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * (PD_ATTACH_FIXED_FDS + PD_MAX_INSTANCES))];
	} cbuf;
	struct iovec iov = {.iov_base = &rt.cfg, .iov_len = sizeof(rt.cfg)};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = cbuf.buf,
	                    .msg_controllen = sizeof(cbuf.buf)};
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	if (n != (ssize_t)sizeof(rt.cfg) || rt.cfg.magic != PD_ATTACH_MAGIC ||
	    rt.cfg.version != PD_ATTACH_VERSION) {
		fail("bad attach reply from the engine", n < 0 ? -errno : 0);
		close(fd);
		return -EPROTO;
	}
	if (rt.cfg.status != 0) {
		fail("the engine refused to attach this process", rt.cfg.status);
		close(fd);
		return rt.cfg.status;
	}
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int fds[PD_ATTACH_FIXED_FDS + PD_MAX_INSTANCES];
	int got = 0;
	if (cm != NULL && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
		got = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		if (got > nfds)
			got = nfds;
		memcpy(fds, CMSG_DATA(cm), sizeof(int) * (size_t)got);
	}
	if (rt.cfg.ninst > PD_MAX_INSTANCES || rt.cfg.nroutes > PD_MAX_ROUTES ||
	    got != PD_ATTACH_FIXED_FDS + rt.cfg.ninst || rt.cfg.slot >= rt.cfg.pool.ninst) {
		fail("attach reply carries the wrong number of descriptors", 0);
		for (int i = 0; i < got; i++)
			close(fds[i]);
		close(fd);
		return -EPROTO;
	}
	int rc = pd_pool_attach(fds[0], &rt.cfg.pool, &rt.pool);
	if (rc != 0) {
		fail("map the tenant pool", rc);
		for (int i = 0; i < got; i++)
			close(fds[i]);
		close(fd);
		return rc;
	}
	rt.engine_efd = fds[1];
	for (int i = 0; i < rt.cfg.ninst; i++)
		rt.inst_efd[i] = fds[PD_ATTACH_FIXED_FDS + i];
	rt.ctl_fd = fd;
	return 0;
}

PD_API int pd_serve(int argc, char **argv, pd_handler handler, void *arg)
{
	(void)argc;
	(void)argv;
	rt.handler = handler;
	rt.arg = arg;

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	/* Block before creating threads so that only the signalfd sees them. */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		fail("signalfd", -errno);
		return 1;
	}
	/* Private to this process: written once to release every handler thread. */
	rt.stop_efd = eventfd(0, EFD_CLOEXEC);
	if (rt.stop_efd < 0 || attach() != 0) {
		if (rt.stop_efd >= 0)
			close(rt.stop_efd);
		close(sfd);
		return 1;
	}

	unsigned nthreads = rt.cfg.threads == 0 ? 1 : rt.cfg.threads;
	if (nthreads > MAX_THREADS)
		nthreads = MAX_THREADS;
	pthread_t tids[MAX_THREADS];
	pd_response *resp[MAX_THREADS];
	unsigned started = 0;
	int status = 0;
	for (; started < nthreads; started++) {
		resp[started] = malloc(sizeof(*resp[started]));
		if (resp[started] == NULL) {
			fail("allocate a handler thread's response", -ENOMEM);
			break;
		}
		int err = pthread_create(&tids[started], NULL, worker, resp[started]);
		if (err != 0) {
			fail("start a handler thread", err);
			free(resp[started]);
			break;
		}
	}
	if (started < nthreads) {
		/* Fewer threads than configured would serve below the capacity the engine
		 * counts on: stop those that started and exit, and the engine restarts us. */
		char what[96];
		snprintf(what, sizeof(what), "only %u of %u handler threads started: exiting",
		         started, nthreads);
		fail(what, 0);
		status = 1;
		goto stop_threads;
	}

	/* The main thread waits for a stop signal or for the engine to go away. */
	struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN}, {.fd = rt.ctl_fd, .events = POLLIN}};
	for (;;) {
		int rc = poll(pfd, 2, -1);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0 || (pfd[0].revents & POLLIN) ||
		    (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
			break;
	}
stop_threads:
	atomic_store(&rt.stopping, true);
	uint64_t one = 1;
	ssize_t w = write(rt.stop_efd, &one, sizeof(one));
	(void)w;
	for (unsigned i = 0; i < started; i++) {
		pthread_join(tids[i], NULL);
		free(resp[i]);
	}
	pd_pool_close(&rt.pool);
	close(rt.ctl_fd);
	close(rt.stop_efd);
	close(sfd);
	return status;
}
