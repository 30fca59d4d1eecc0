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
#include <limits.h>
#include <linux/futex.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/http_token.h"
#include "palladium/function.h"
#include "runtime/calltable.h"
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
	struct pd_calltable calls; /* this process's calls out, all threads */
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

/* A handler thread. */
struct worker {
	unsigned index;           /* the owner of its calls in the call table */
	pd_response *res;         /* allocated by pd_serve */
	struct pd_waiter replies; /* how it waits for replies to its calls */
	pd_call *open; /* its calls not released yet: released when the handler returns */
};

struct pd_request {
	struct pd_msg_hdr hdr; /* snapshot */
	const char *body;
	const uint8_t *meta;
	size_t meta_len;
	unsigned hop;
	unsigned chain_len;
	uint64_t deadline_ns; /* this process's clock: when the request's time is up */
	struct worker *w;
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
	return req->hop;
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
static bool to_engine(uint32_t idx)
{
	pd_pool_set(&rt.pool, idx, rt.cfg.slot, PD_BUF_TO_ENGINE);
	if (pd_pool_push(&rt.pool, &rt.pool.engine_ring, idx) == 0) {
		pd_ring_notify(&rt.pool.engine_ring, rt.engine_efd);
		return true;
	}
	atomic_fetch_add_explicit(&rt.pool.inst_status[rt.cfg.slot]->push_failures, 1,
	                          memory_order_relaxed);
	pd_pool_set(&rt.pool, idx, rt.cfg.slot, PD_BUF_IN_FUNCTION);
	/* If the free list will not take it either, it stays IN_FUNCTION here: the engine
	 * takes it back as from a hung instance. */
	(void)pd_pool_free(&rt.pool, idx);
	return false;
}

/* Does this node run an instance of function fn? */
static bool any_local(uint16_t fn)
{
	for (uint16_t i = 0; i < rt.cfg.ninst; i++)
		if (rt.cfg.inst[i].function == fn)
			return true;
	return false;
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

/* Turn buffer h into an error answer (status + text), keeping its request id; the
 * answer to a call is a reply (without ERROR: it is the callee's answer). */
static void make_error(struct pd_msg_hdr *h, bool call, uint16_t status, const char *msg, size_t n)
{
	memmove(pd_msg_payload(h), msg, n);
	h->flags = call ? PD_MSG_F_REPLY : PD_MSG_F_RESPONSE | PD_MSG_F_ERROR;
	h->status = status;
	h->payload_len = (uint32_t)n;
	h->req_meta_len = 0;
	h->resp_meta_len = 0;
}

/* ---------------------------------------------------------------- calls */

/* Request metadata of a call (method, path, query, headers) kept aside until it is sent;
 * the body is written in place meanwhile. */
#define CALL_META_MAX 4096
#define CALL_PATH_MAX 2048
#define CALL_TEXT_MAX 160
/* Replies taken from the ring at a time. */
#define REPLY_BURST 32

struct pd_call {
	struct worker *w;
	pd_call *next, *prev; /* the worker's open calls */
	/* From the request it serves. */
	struct pd_msg_hdr parent;
	uint64_t deadline_ns;
	uint16_t callee;
	bool sent;
	/* The request: its buffer until sent (PD_CALL_NO_BUF: none yet), body length. */
	uint32_t req_idx;
	size_t reserved, len;
	uint64_t id; /* call table id while out, 0 otherwise */
	/* Once finished: status (0 before), the answer's buffer (or none), what it holds. */
	int status;
	uint32_t ans_idx;
	const char *body;
	size_t body_len;
	const uint8_t *headers;
	size_t headers_len;
	char text[CALL_TEXT_MAX]; /* a failure's body */
	/* Request metadata set by the caller. */
	char method[16];
	size_t path_len, query_len;
	char path[CALL_PATH_MAX]; /* path, then query */
	struct pd_meta_writer hw;
	uint8_t header_buf[CALL_META_MAX];
};

static struct pd_inst_status *rt_inst_status(void)
{
	return rt.pool.inst_status[rt.cfg.slot];
}

static void count(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* The call finishes without an answer from its callee (a failure of the platform's or a
 * deadline): status and a short text. */
static void call_finish(pd_call *c, int status, const char *fmt, const char *arg)
{
	c->status = status;
	int n = snprintf(c->text, sizeof(c->text), fmt, arg != NULL ? arg : "");
	c->body = c->text;
	c->body_len = n < 0 ? 0 : (size_t)n >= sizeof(c->text) ? sizeof(c->text) - 1 : (size_t)n;
	c->headers = NULL;
	c->headers_len = 0;
	count(status == 504 ? &rt_inst_status()->calls_timed_out : &rt_inst_status()->calls_failed);
	if (!c->sent)
		count(&rt_inst_status()->calls_started);
	if (c->req_idx != PD_CALL_NO_BUF) {
		pd_pool_free(&rt.pool, c->req_idx);
		c->req_idx = PD_CALL_NO_BUF;
	}
}

/* Whole milliseconds from now to deadline, rounded down so that no message ever carries
 * more time than its sender had left; 0 when less than one is left. */
static uint32_t ms_left(uint64_t deadline, uint64_t now)
{
	uint64_t ms = deadline > now ? (deadline - now) / 1000000 : 0;
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

PD_API pd_call *pd_call_start(const pd_request *req, const char *function)
{
	if (req == NULL || req->w == NULL || function == NULL)
		return NULL;
	pd_call *c = malloc(sizeof(*c));
	if (c == NULL)
		return NULL;
	c->w = req->w;
	c->parent = req->hdr;
	c->deadline_ns = req->deadline_ns;
	c->sent = false;
	c->req_idx = PD_CALL_NO_BUF;
	c->reserved = c->len = 0;
	c->id = 0;
	c->status = 0;
	c->ans_idx = PD_CALL_NO_BUF;
	c->body = "";
	c->body_len = 0;
	c->headers = NULL;
	c->headers_len = 0;
	memcpy(c->method, "POST", 5);
	c->path[0] = '/';
	c->path_len = 1;
	c->query_len = 0;
	pd_meta_writer_init(&c->hw, c->header_buf, sizeof(c->header_buf));
	c->prev = NULL;
	c->next = c->w->open;
	if (c->next != NULL)
		c->next->prev = c;
	c->w->open = c;

	int callee = -1;
	for (uint16_t i = 0; i < rt.cfg.ncallees && i < PD_MAX_CALLS; i++)
		if (strncmp(rt.cfg.callees[i].name, function, sizeof(rt.cfg.callees[i].name)) == 0)
			callee = rt.cfg.callees[i].function;
	c->callee = callee < 0 ? 0 : (uint16_t)callee;
	if (callee < 0)
		call_finish(c, 403, "call to '%s' refused: not in this function's calls\n",
		            function);
	else if ((unsigned)req->hdr.depth + 1 > rt.cfg.max_call_depth)
		call_finish(c, 508, "call to '%s' refused: deeper than engine.max_call_depth\n",
		            function);
	return c;
}

/* The metadata of the call's request, encoded: its length, or -1 if it cannot be. */
static int64_t call_meta_write(const pd_call *c, uint8_t *dst, size_t cap)
{
	struct pd_meta_writer w;
	pd_meta_writer_init(&w, dst, cap);
	pd_meta_add(&w, ":method", 7, c->method, strlen(c->method));
	pd_meta_add(&w, ":path", 5, c->path, c->path_len);
	pd_meta_add(&w, ":query", 6, c->path + c->path_len, c->query_len);
	int64_t hlen = c->hw.overflow ? -1 : (int64_t)c->hw.len;
	size_t cursor = 0;
	struct pd_meta_entry e;
	while (hlen > 0 && pd_meta_next(c->header_buf, (size_t)hlen, &cursor, &e) == 1)
		pd_meta_add(&w, e.name, e.name_len, e.value, e.value_len);
	return pd_meta_finish(&w);
}

/* Bytes the metadata takes in the buffer: the pseudo-headers and the headers set. */
static size_t call_meta_size(const pd_call *c)
{
	size_t n = 2 + 6 * 3 + 7 + strlen(c->method) + 5 + c->path_len + 6 + c->query_len;
	return n + (c->hw.len > 2 ? c->hw.len - 2 : 0);
}

PD_API size_t pd_call_capacity(const pd_call *call)
{
	size_t room = rt.pool.attr.buffer_size - PD_MSG_HDR_SIZE;
	size_t meta = call_meta_size(call);
	return call->status != 0 || call->sent || meta > room ? 0 : room - meta;
}

PD_API char *pd_call_reserve(pd_call *call, size_t n)
{
	if (call == NULL || call->status != 0 || call->sent || n > pd_call_capacity(call))
		return NULL;
	if (call->req_idx == PD_CALL_NO_BUF) {
		int rc = pd_pool_alloc(&rt.pool, rt.cfg.slot, &call->req_idx);
		for (int i = 0; rc != 0 && i < ALLOC_WAIT_STEPS; i++) {
			struct timespec step = {0, ALLOC_WAIT_STEP_NS};
			nanosleep(&step, NULL);
			rc = pd_pool_alloc(&rt.pool, rt.cfg.slot, &call->req_idx);
		}
		if (rc != 0) {
			call->req_idx = PD_CALL_NO_BUF;
			call_finish(call, 503, "call refused: no free buffer%s\n", "");
			return NULL;
		}
		pd_pool_set(&rt.pool, call->req_idx, rt.cfg.slot, PD_BUF_IN_FUNCTION);
		atomic_store_explicit(&rt.pool.ctl[call->req_idx].since_ns, pd_now_ns(),
		                      memory_order_relaxed);
	}
	if (n > call->reserved)
		call->reserved = n;
	return (char *)pd_msg_payload(pd_pool_buf(&rt.pool, call->req_idx));
}

PD_API int pd_call_commit(pd_call *call, size_t n)
{
	if (call == NULL || call->sent || call->status != 0 || n > call->reserved)
		return -1;
	call->len = n;
	return 0;
}

PD_API int pd_call_append(pd_call *call, const void *data, size_t n)
{
	if (call == NULL || call->len > pd_call_capacity(call) ||
	    n > pd_call_capacity(call) - call->len)
		return -1;
	char *p = pd_call_reserve(call, call->len + n);
	if (p == NULL)
		return -1;
	memcpy(p + call->len, data, n);
	call->len += n;
	return 0;
}

/* Would the body written so far still fit with extra more bytes of metadata? */
static bool call_meta_fits(const pd_call *c, size_t extra)
{
	size_t room = rt.pool.attr.buffer_size - PD_MSG_HDR_SIZE;
	size_t meta = call_meta_size(c) + extra;
	return meta <= room && c->reserved <= room - meta;
}

PD_API int pd_call_set_method(pd_call *call, const char *method)
{
	if (call == NULL || call->sent || call->status != 0 || method == NULL ||
	    !pd_http_name_ok(method) || strlen(method) >= sizeof(call->method))
		return -1;
	size_t old = strlen(call->method), n = strlen(method);
	if (n > old && !call_meta_fits(call, n - old))
		return -1;
	memcpy(call->method, method, n + 1);
	return 0;
}

PD_API int pd_call_set_path(pd_call *call, const char *path, const char *query)
{
	if (call == NULL || call->sent || call->status != 0 || path == NULL || path[0] != '/')
		return -1;
	size_t pn = strlen(path), qn = query != NULL ? strlen(query) : 0;
	if (pn + qn >= sizeof(call->path) || !pd_http_value_ok(path) ||
	    (query != NULL && !pd_http_value_ok(query)) || memchr(path, '?', pn) != NULL)
		return -1;
	if (pn + qn > call->path_len + call->query_len &&
	    !call_meta_fits(call, pn + qn - call->path_len - call->query_len))
		return -1;
	memcpy(call->path, path, pn);
	memcpy(call->path + pn, query != NULL ? query : "", qn);
	call->path_len = pn;
	call->query_len = qn;
	return 0;
}

PD_API int pd_call_set_header(pd_call *call, const char *name, const char *value)
{
	if (call == NULL || call->sent || call->status != 0 || name == NULL || value == NULL ||
	    !pd_http_name_ok(name) || !pd_http_value_ok(value))
		return -1;
	char lower[256];
	size_t n = strlen(name), vlen = strlen(value);
	if (n >= sizeof(lower) || !call_meta_fits(call, 6 + n + vlen))
		return -1;
	for (size_t i = 0; i < n; i++)
		lower[i] = (char)tolower((unsigned char)name[i]);
	return pd_meta_add(&call->hw, lower, n, value, vlen) == 0 ? 0 : -1;
}

PD_API int pd_call_set_timeout(pd_call *call, unsigned timeout_ms)
{
	if (call == NULL || call->sent)
		return -1;
	uint64_t d = pd_now_ns() + (uint64_t)timeout_ms * 1000000u;
	if (d < call->deadline_ns)
		call->deadline_ns = d;
	return 0;
}

static bool to_engine(uint32_t idx);
static bool to_local(uint32_t idx, uint16_t fn);
static bool any_local(uint16_t fn);

PD_API int pd_call_send(pd_call *call)
{
	if (call == NULL || call->sent || call->status != 0)
		return -1;
	if (pd_call_reserve(call, call->reserved) == NULL) /* the buffer, for an empty body */
		return -1;
	uint64_t now = pd_now_ns();
	uint32_t left_ms = ms_left(call->deadline_ns, now);
	if (left_ms == 0) {
		/* Less than a millisecond: no callee could answer in time. */
		call_finish(call, 504, "call not sent: the request's deadline has passed%s\n", "");
		return -1;
	}
	struct pd_msg_hdr *h = pd_pool_buf(&rt.pool, call->req_idx);
	uint8_t *meta = (uint8_t *)pd_msg_payload(h) + call->len;
	size_t room = rt.pool.attr.buffer_size - PD_MSG_HDR_SIZE - call->len;
	int64_t mlen = call_meta_write(call, meta, room);
	if (mlen < 0) {
		call_finish(call, 413, "call not sent: its request does not fit a buffer%s\n", "");
		return -1;
	}
	if (pd_calltable_alloc(&rt.calls, call->callee, call->deadline_ns, call->w->index,
	                       &call->id) != 0) {
		call->id = 0;
		call_finish(call, 503, "call refused: too many calls out%s\n", "");
		return -1;
	}
	*h = (struct pd_msg_hdr){
	    .magic = PD_MSG_MAGIC,
	    .version = PD_MSG_VERSION,
	    .flags = PD_MSG_F_CALL,
	    .tenant = rt.cfg.tenant,
	    .route = call->parent.route,
	    .callee = call->callee,
	    .request_id = call->parent.request_id,
	    .origin = call->parent.origin,
	    .depth = (uint16_t)(call->parent.depth + 1),
	    .payload_len = (uint32_t)call->len,
	    .req_meta_len = (uint32_t)mlen,
	    .sent_ns = call->parent.sent_ns,
	    .call_id = call->id,
	    .deadline_ms = left_ms,
	    .reply_node = rt.cfg.node,
	    .reply_slot = rt.cfg.slot,
	};
	atomic_fetch_add_explicit(&rt_inst_status()->meta_bytes, (uint64_t)mlen,
	                          memory_order_relaxed);
	uint32_t idx = call->req_idx;
	bool ok;
	if (any_local(call->callee))
		ok = to_local(idx, call->callee);
	else
		ok = to_engine(idx); /* another node runs it: the engine sends it there */
	if (!ok) {
		/* to_engine freed the buffer; to_local left it with us. */
		if (any_local(call->callee))
			pd_pool_free(&rt.pool, idx);
		call->req_idx = PD_CALL_NO_BUF;
		(void)pd_calltable_release(&rt.calls, call->id, NULL, NULL);
		call->id = 0;
		call_finish(call, 503, "call refused: the callee's queue is full%s\n", "");
		return -1;
	}
	call->req_idx = PD_CALL_NO_BUF;
	call->sent = true;
	count(&rt_inst_status()->calls_started);
	return 0;
}

/* Take what the reply ring holds: each reply completes its call. Returns true if it
 * completed a call of another thread (which must then be woken). */
static bool drain_replies(const struct worker *self)
{
	struct pd_pool *pool = &rt.pool;
	struct pd_inst_status *st = rt_inst_status();
	uint32_t bufsz = pool->attr.buffer_size;
	bool others = false;
	for (int n = 0; n < REPLY_BURST; n++) {
		uint64_t v;
		if (pd_ring_pop(&pool->reply_ring[rt.cfg.slot], &v) != 0)
			break;
		uint32_t expected = PD_BUF_IN_REPLY;
		if (!pd_pool_index_ok(pool, v) ||
		    atomic_load_explicit(&pool->ctl[v].owner, memory_order_relaxed) !=
		        rt.cfg.slot ||
		    !atomic_compare_exchange_strong(&pool->ctl[v].state, &expected,
		                                    PD_BUF_IN_FUNCTION)) {
			count(&st->bad_input);
			continue;
		}
		uint32_t idx = (uint32_t)v;
		atomic_store_explicit(&pool->ctl[idx].since_ns, pd_now_ns(), memory_order_relaxed);
		struct pd_msg_hdr h;
		pd_msg_hdr_snapshot(&h, pd_pool_buf(pool, idx));
		if (pd_msg_validate(&h, bufsz, 0) != 0 || pd_msg_kind(&h) != PD_MSG_F_REPLY ||
		    h.tenant != rt.cfg.tenant || h.reply_node != rt.cfg.node ||
		    h.reply_slot != rt.cfg.slot) {
			count(&st->bad_input);
			pd_pool_free(pool, idx);
			continue;
		}
		/* A reply made by an engine (the callee died, could not be reached) failed the
		 * call; one without ERROR is the callee's own answer, whatever its status. */
		enum pd_call_state outcome =
		    (h.flags & PD_MSG_F_ERROR) ? PD_CALL_FAILED : PD_CALL_ANSWERED;
		const struct pd_call_entry *e = pd_calltable_lookup(&rt.calls, h.call_id);
		uint32_t owner = e != NULL ? pd_call_entry_owner(e) : 0;
		if (pd_calltable_complete(&rt.calls, h.call_id, outcome, idx) != 0) {
			/* Late (timed out, released), stale (an earlier process's) or forged. */
			count(&st->calls_late);
			pd_pool_free(pool, idx);
			continue;
		}
		if (owner != self->index)
			others = true;
	}
	return others;
}

/* The call's slot left SENT: take its outcome and free the slot. */
static void call_collect(pd_call *c)
{
	enum pd_call_state last;
	uint32_t buf;
	if (pd_calltable_release(&rt.calls, c->id, &last, &buf) != 0)
		return; /* cannot happen: only its owner releases it */
	c->id = 0;
	if (last == PD_CALL_TIMED_OUT || buf == PD_CALL_NO_BUF) {
		call_finish(c, 504, "call timed out%s\n", "");
		return;
	}
	/* The reply was checked when it was taken from the ring; its header is read again
	 * (once) here from the buffer the caller now holds alone. */
	struct pd_msg_hdr h;
	pd_msg_hdr_snapshot(&h, pd_pool_buf(&rt.pool, buf));
	if (pd_msg_validate(&h, rt.pool.attr.buffer_size, 0) != 0) {
		pd_pool_free(&rt.pool, buf);
		call_finish(c, 502, "call answered with a broken message%s\n", "");
		return;
	}
	c->ans_idx = buf;
	c->status = h.status >= 100 && h.status <= 599 ? h.status : 502;
	c->body = (const char *)pd_msg_payload(pd_pool_buf(&rt.pool, buf));
	c->body_len = h.payload_len;
	c->headers = (const uint8_t *)c->body + h.payload_len + h.req_meta_len;
	c->headers_len = h.resp_meta_len;
	count(last == PD_CALL_ANSWERED ? &rt_inst_status()->calls_answered
	                               : &rt_inst_status()->calls_failed);
}

/* Has the call finished? Collects its outcome if it just did. */
static bool call_done(pd_call *c)
{
	if (c->status != 0)
		return true;
	if (!c->sent)
		return false;
	const struct pd_call_entry *e = pd_calltable_lookup(&rt.calls, c->id);
	if (e != NULL && pd_call_entry_state(e) == PD_CALL_SENT)
		return false;
	call_collect(c);
	return true;
}

struct expire_ctx {
	unsigned self;
	bool others;
};

static void on_expired(void *arg, uint64_t id, uint32_t callee, uint32_t owner)
{
	struct expire_ctx *x = arg;
	(void)id;
	(void)callee;
	if (owner != x->self)
		x->others = true;
}

/*
 * Wait until all (or any) of calls[] have finished. Replies come to the instance's reply
 * ring; whichever waiting thread takes one completes its call and wakes the others if it
 * was theirs. A thread polls while its waiter says that polling pays (pd_waiter), then
 * sleeps on the ring's futex word until a reply, its earliest deadline or the stop.
 */
static void wait_calls(struct worker *w, pd_call *const *calls, size_t n, bool all)
{
	struct pd_inst_status *st = rt_inst_status();
	for (size_t i = 0; i < n; i++)
		if (calls[i] != NULL && !calls[i]->sent && calls[i]->status == 0)
			pd_call_send(calls[i]);
	for (;;) {
		uint32_t seq = atomic_load(&st->reply_seq);
		if (drain_replies(w))
			pd_pool_wake_replies(&rt.pool, rt.cfg.slot);
		size_t live = 0, done = 0;
		uint64_t first = UINT64_MAX;
		for (size_t i = 0; i < n; i++) {
			if (calls[i] == NULL)
				continue;
			live++;
			if (call_done(calls[i]))
				done++;
			else if (calls[i]->deadline_ns < first)
				first = calls[i]->deadline_ns;
		}
		if (live == 0 || done == live || (!all && done > 0))
			return;
		uint64_t now = pd_now_ns();
		if (atomic_load(&rt.stopping)) {
			for (size_t i = 0; i < n; i++)
				if (calls[i] != NULL && calls[i]->status == 0 &&
				    calls[i]->id != 0) {
					(void)pd_calltable_release(&rt.calls, calls[i]->id, NULL,
					                           NULL);
					calls[i]->id = 0;
					call_finish(calls[i], 503,
					            "call abandoned: the function is stopping%s\n",
					            "");
				}
			return;
		}
		if (now >= first) {
			struct expire_ctx x = {w->index, false};
			pd_calltable_expire(&rt.calls, now, on_expired, &x);
			if (x.others)
				pd_pool_wake_replies(&rt.pool, rt.cfg.slot);
			continue;
		}
		if (!pd_ring_looks_empty(&rt.pool.reply_ring[rt.cfg.slot]) ||
		    atomic_load(&st->reply_seq) != seq) {
			pd_waiter_work(&w->replies, now);
			continue;
		}
		if (pd_waiter_idle(&w->replies, now) == PD_WAIT_POLL) {
			pd_waiter_relax(&w->replies);
			continue;
		}
		uint64_t left = first - now;
		struct timespec ts = {(time_t)(left / 1000000000u), (long)(left % 1000000000u)};
		atomic_fetch_add(&st->reply_waiters, 1);
		syscall(SYS_futex, &st->reply_seq, FUTEX_WAIT, seq, &ts, NULL, 0);
		atomic_fetch_sub(&st->reply_waiters, 1);
	}
}

PD_API int pd_call_wait(pd_call *call)
{
	if (call == NULL)
		return 0;
	wait_calls(call->w, &call, 1, true);
	return call->status;
}

PD_API int pd_call_wait_all(pd_call *const *calls, size_t n)
{
	struct worker *w = NULL;
	for (size_t i = 0; i < n && w == NULL; i++)
		if (calls[i] != NULL)
			w = calls[i]->w;
	if (w != NULL)
		wait_calls(w, calls, n, true);
	return 0;
}

PD_API int pd_call_wait_any(pd_call *const *calls, size_t n)
{
	struct worker *w = NULL;
	for (size_t i = 0; i < n && w == NULL; i++)
		if (calls[i] != NULL)
			w = calls[i]->w;
	if (w == NULL)
		return -1;
	wait_calls(w, calls, n, false);
	for (size_t i = 0; i < n; i++)
		if (calls[i] != NULL && calls[i]->status != 0)
			return (int)i;
	return -1;
}

PD_API int pd_call_status(const pd_call *call)
{
	if (call == NULL)
		return 0;
	/* A look without waiting: take the replies that came, then ask. */
	pd_call *c = (pd_call *)call;
	if (c->status == 0 && c->sent) {
		if (drain_replies(c->w))
			pd_pool_wake_replies(&rt.pool, rt.cfg.slot);
		if (!call_done(c) && pd_now_ns() >= c->deadline_ns) {
			struct expire_ctx x = {c->w->index, false};
			pd_calltable_expire(&rt.calls, pd_now_ns(), on_expired, &x);
			if (x.others)
				pd_pool_wake_replies(&rt.pool, rt.cfg.slot);
			call_done(c);
		}
	}
	return c->status;
}

PD_API const char *pd_call_body(const pd_call *call, size_t *len)
{
	if (call == NULL || call->status == 0) {
		*len = 0;
		return "";
	}
	*len = call->body_len;
	return call->body;
}

PD_API const char *pd_call_header(const pd_call *call, const char *name, size_t *len)
{
	struct pd_meta_entry e;
	if (call == NULL || name == NULL || call->headers == NULL ||
	    pd_meta_find(call->headers, call->headers_len, name, &e) != 1)
		return NULL;
	if (len != NULL)
		*len = e.value_len;
	return e.value;
}

PD_API void pd_call_release(pd_call *call)
{
	if (call == NULL)
		return;
	if (call->id != 0) {
		/* Still out: abandoned. A reply that already came is freed here, a later one is
		 * refused by its id. */
		uint32_t buf = PD_CALL_NO_BUF;
		(void)pd_calltable_release(&rt.calls, call->id, NULL, &buf);
		if (buf != PD_CALL_NO_BUF)
			pd_pool_free(&rt.pool, buf);
	}
	if (call->req_idx != PD_CALL_NO_BUF)
		pd_pool_free(&rt.pool, call->req_idx);
	if (call->ans_idx != PD_CALL_NO_BUF)
		pd_pool_free(&rt.pool, call->ans_idx);
	if (call->prev != NULL)
		call->prev->next = call->next;
	else
		call->w->open = call->next;
	if (call->next != NULL)
		call->next->prev = call->prev;
	free(call);
}

PD_API pd_call *pd_call_run(const pd_request *req, const char *function, const void *body,
                            size_t len)
{
	pd_call *c = pd_call_start(req, function);
	if (c == NULL)
		return NULL;
	if (c->status == 0 && pd_call_append(c, body, len) != 0 && c->status == 0)
		call_finish(c, 413, "call not sent: its body does not fit a buffer%s\n", "");
	if (c->status == 0)
		pd_call_wait(c);
	return c;
}

/* ---------------------------------------------------------------- one request */

/*
 * Send buffer idx on: a request to its next function (next_fn, here or through the
 * engine), a response to the engine. Takes the decision from the caller's checked
 * locals: the buffer is tenant memory and may have changed since it was written.
 */
/*
 * The answer to a call, in buffer idx: straight into the calling instance's reply ring
 * when it runs on this node (reply_slot: checked to be a slot of this pool), else to the
 * engine, which sends it to the caller's node.
 */
static void reply(uint32_t idx, uint16_t reply_node, uint16_t reply_slot)
{
	if (reply_node != rt.cfg.node) {
		(void)to_engine(idx);
		return;
	}
	if (pd_pool_push_reply(&rt.pool, reply_slot, idx) == 0) {
		/* Nobody waits for replies there: the reply may be for a call not waited on yet,
		 * or for a process that died (the restarted one frees it). Wake a sleeping
		 * worker of that instance to take it, so that it never sits there. */
		if (atomic_load(&rt.pool.inst_status[reply_slot]->reply_waiters) == 0)
			for (uint16_t i = 0; i < rt.cfg.ninst; i++)
				if (rt.cfg.inst[i].slot == reply_slot)
					pd_ring_notify(&rt.pool.inst_ring[reply_slot],
					               rt.inst_efd[i]);
		return;
	}
	/* The caller's reply ring is full: it gets its 504 at its deadline. */
	atomic_fetch_add_explicit(&rt.pool.inst_status[rt.cfg.slot]->push_failures, 1,
	                          memory_order_relaxed);
	pd_pool_set(&rt.pool, idx, rt.cfg.slot, PD_BUF_IN_FUNCTION);
	(void)pd_pool_free(&rt.pool, idx);
}

static void forward(uint32_t idx, bool request, uint16_t next_fn)
{
	if (request) {
		if (to_local(idx, next_fn))
			return;
		if (any_local(next_fn)) {
			static const char msg[] = "next function is overloaded\n";
			make_error(pd_pool_buf(&rt.pool, idx), false, 503, msg, sizeof(msg) - 1);
		}
		/* Otherwise the next function runs on another node: the engine sends it. */
	}
	(void)to_engine(idx);
}

/*
 * One request from this instance's ring. Everything in the buffer is tenant memory that
 * another process (or the handler) may rewrite at any time: its header is copied once
 * (req.hdr), checked, and only that copy is used from then on.
 */
/* The request's deadline on this process's clock: the time it had left when it was
 * queued here (or its route's whole timeout, from an older sender), from then. */
static uint64_t deadline_of(const struct pd_msg_hdr *h, const struct pd_attach_route *route,
                            uint64_t queued_since, uint64_t now)
{
	uint64_t ms = h->deadline_ms != 0 ? h->deadline_ms : route != NULL ? route->timeout_ms : 0;
	uint64_t from = queued_since != 0 && queued_since <= now ? queued_since : now;
	return from + ms * 1000000u;
}

/*
 * May the instance in slot of this node call this function? Only if it is an instance
 * of a function that declares this one in its calls: a function that pushes a call
 * straight into this instance's ring cannot get around its calls list.
 */
static bool local_caller_ok(uint16_t slot)
{
	for (uint16_t i = 0; i < rt.cfg.ninst && i < PD_MAX_INSTANCES; i++) {
		if (rt.cfg.inst[i].slot != slot)
			continue;
		for (uint16_t k = 0; k < rt.cfg.ncallers && k < PD_MAX_FUNCTIONS; k++)
			if (rt.cfg.callers[k] == rt.cfg.inst[i].function)
				return true;
		return false;
	}
	return false;
}

/* Release the calls the handler left open: their buffers go back, late replies are
 * refused by their ids. */
static void release_open_calls(struct worker *w)
{
	while (w->open != NULL)
		pd_call_release(w->open);
}

/* Run the handler on buffer in_idx, popped at now, on worker w. */
static void handle_one(struct worker *w, uint32_t in_idx, uint64_t now)
{
	struct pd_pool *pool = &rt.pool;
	struct pd_inst_status *st = pool->inst_status[rt.cfg.slot];
	uint32_t bufsz = pool->attr.buffer_size;
	struct pd_msg_hdr *in = pd_pool_buf(pool, in_idx);
	pd_response *res = w->res;
	pd_request req;

	uint64_t queued_since =
	    atomic_load_explicit(&pool->ctl[in_idx].since_ns, memory_order_relaxed);
	pd_pool_set(pool, in_idx, rt.cfg.slot, PD_BUF_IN_FUNCTION);
	atomic_store_explicit(&pool->ctl[in_idx].since_ns, now, memory_order_relaxed);
	pd_msg_hdr_snapshot(&req.hdr, in);
	const struct pd_attach_route *route = find_route(req.hdr.route);
	req.deadline_ns = deadline_of(&req.hdr, route, queued_since, now);
	if (req.deadline_ns < now) {
		/* Waited in the ring past its deadline: the client (or the caller) has had its
		 * 504; running it now would only delay the requests behind it. */
		atomic_fetch_add_explicit(&st->expired, 1, memory_order_relaxed);
		pd_pool_free(pool, in_idx);
		return;
	}
	unsigned kind = pd_msg_kind(&req.hdr);
	bool call = kind == PD_MSG_F_CALL;
	bool ok = pd_msg_validate(&req.hdr, bufsz, 0) == 0 && req.hdr.tenant == rt.cfg.tenant &&
	          route != NULL;
	if (ok && call)
		/* A call: to this function, within the depth limit, with a reply address this
		 * pool has (or on another node, which the engine checks). */
		ok = req.hdr.callee == rt.cfg.function && req.hdr.depth >= 1 &&
		     req.hdr.depth <= rt.cfg.max_call_depth &&
		     (req.hdr.reply_node != rt.cfg.node || (req.hdr.reply_slot < pool->attr.ninst &&
		                                            local_caller_ok(req.hdr.reply_slot)));
	else if (ok)
		ok = kind == PD_MSG_F_REQUEST && req.hdr.hop < route->chain_len &&
		     route->chain[req.hdr.hop] == rt.cfg.function && req.hdr.depth == 0;
	if (!ok) {
		atomic_fetch_add_explicit(&st->bad_input, 1, memory_order_relaxed);
		pd_pool_free(pool, in_idx);
		return;
	}
	/* Checked: hop < chain_len (or a call: a chain of one), lengths inside the buffer. */
	uint16_t hop = call ? 0 : req.hdr.hop;
	size_t in_len = req.hdr.payload_len;
	bool last = call || hop + 1u >= route->chain_len;
	req.body = (const char *)pd_msg_payload(in);
	req.meta = (const uint8_t *)req.body + in_len;
	req.meta_len = req.hdr.req_meta_len;
	req.hop = hop;
	req.chain_len = call ? 1 : route->chain_len;
	req.w = w;

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
	release_open_calls(w);
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
		make_error(in, call, (uint16_t)res->status, res->err_msg, res->err_len);
		if (call)
			reply(in_idx, req.hdr.reply_node, req.hdr.reply_slot);
		else
			(void)to_engine(in_idx);
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
	if (call) {
		out->flags = PD_MSG_F_REPLY;
		out->status = (uint16_t)res->status;
	} else if (final) {
		out->flags = PD_MSG_F_RESPONSE;
		out->status = (uint16_t)res->status;
	} else {
		out->flags = PD_MSG_F_REQUEST;
		out->hop = (uint16_t)(hop + 1);
		out->status = 0;
		/* At least 1 (0 would mean the route's whole timeout): the next function drops
		 * a request whose time is up as expired. */
		uint32_t left = ms_left(req.deadline_ns, pd_now_ns());
		out->deadline_ms = left > 0 ? left : 1;
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
		make_error(out, call, 500, msg, sizeof(msg) - 1);
		if (call)
			reply(out_idx, req.hdr.reply_node, req.hdr.reply_slot);
		else
			(void)to_engine(out_idx);
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
	if (call)
		reply(out_idx, req.hdr.reply_node, req.hdr.reply_slot);
	else
		forward(out_idx, !final, final ? 0 : route->chain[hop + 1]);
}

/* A handler thread; its pd_response was allocated by pd_serve (it is too big for a
 * thread stack of any size, and a failed allocation must stop pd_serve, not a thread). */
static void *worker_main(void *arg)
{
	struct worker *self = arg;
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
	pd_waiter_init(&self->replies, &wattr);
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
			handle_one(self, (uint32_t)v, now);
			continue;
		}
		/* Replies nobody waits for (a handler busy before its wait, or a predecessor's
		 * calls): any worker may complete them. */
		if (!pd_ring_looks_empty(&rt.pool.reply_ring[rt.cfg.slot]) && drain_replies(self))
			pd_pool_wake_replies(&rt.pool, rt.cfg.slot);
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
	for (uint16_t i = 0; i < PD_MAX_CALLS; i++)
		rt.cfg.callees[i].name[PD_NAME_MAX] = '\0';
	if (rt.cfg.ninst > PD_MAX_INSTANCES || rt.cfg.nroutes > PD_MAX_ROUTES ||
	    rt.cfg.ncallees > PD_MAX_CALLS || rt.cfg.ncallers > PD_MAX_FUNCTIONS ||
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

	/* One slot per reply the reply ring can hold. Seeded at random: this process may have
	 * taken the slot over from one that died with calls out. */
	int crc = pd_calltable_init(&rt.calls, rt.cfg.pool.ring_size);
	if (crc != 0) {
		fail("allocate the call table", crc);
		pd_pool_close(&rt.pool);
		close(rt.ctl_fd);
		close(rt.stop_efd);
		close(sfd);
		return 1;
	}
	uint32_t seed = 0;
	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed = (uint32_t)pd_now_ns() ^ (uint32_t)getpid() << 16;
	pd_calltable_seed(&rt.calls, seed);

	unsigned nthreads = rt.cfg.threads == 0 ? 1 : rt.cfg.threads;
	if (nthreads > MAX_THREADS)
		nthreads = MAX_THREADS;
	pthread_t tids[MAX_THREADS];
	struct worker *wk[MAX_THREADS];
	unsigned started = 0;
	int status = 0;
	for (; started < nthreads; started++) {
		wk[started] = calloc(1, sizeof(*wk[started]));
		if (wk[started] != NULL) {
			wk[started]->index = started;
			wk[started]->res = malloc(sizeof(*wk[started]->res));
			if (wk[started]->res == NULL) {
				free(wk[started]);
				wk[started] = NULL;
			}
		}
		if (wk[started] == NULL) {
			fail("allocate a handler thread's response", -ENOMEM);
			break;
		}
		int err = pthread_create(&tids[started], NULL, worker_main, wk[started]);
		if (err != 0) {
			fail("start a handler thread", err);
			free(wk[started]->res);
			free(wk[started]);
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
	pd_pool_wake_replies(&rt.pool, rt.cfg.slot); /* handlers waiting for replies */
	for (unsigned i = 0; i < started; i++) {
		pthread_join(tids[i], NULL);
		free(wk[i]->res);
		free(wk[i]);
	}
	pd_calltable_fini(&rt.calls);
	pd_pool_close(&rt.pool);
	close(rt.ctl_fd);
	close(rt.stop_efd);
	close(sfd);
	return status;
}
