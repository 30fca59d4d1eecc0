/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Drives the runtime's per-message path (handle_one) in this process, without an
 * engine: includes the runtime's source, attaches it to a pool made here as the engine
 * would, and reads back what it sends. Used by tests/fuzz/fuzz_runtime.c and
 * tests/unit/test_runtime.c.
 *
 * The pool: tenant 0, two instance slots. Slot 0 is "this" instance (function 0),
 * slot 1 a local instance of function 1. Routes: 0 = [0] (this function answers),
 * 1 = [0, 1] (this function, then function 1 on slot 1), 2 = [0, 2] (then function 2,
 * which runs on another node: the request goes to the engine).
 */
#ifndef PD_TESTS_RUNTIME_HARNESS_H
#define PD_TESTS_RUNTIME_HARNESS_H

#include "../../src/runtime/runtime.c"

#define H_TENANT 0
#define H_ROUTE_ONE 0
#define H_ROUTE_LOCAL 1
#define H_ROUTE_REMOTE 2

static pd_response *h_res;
static struct worker h_worker;

/* Attach the runtime to a new pool of buffers of buffer_size bytes. 0 or -errno. */
static inline int h_init(uint32_t buffer_size, pd_handler handler, void *arg)
{
	memset(&rt, 0, sizeof(rt));
	struct pd_attach_reply *c = &rt.cfg;
	c->magic = PD_ATTACH_MAGIC;
	c->version = PD_ATTACH_VERSION;
	c->tenant = H_TENANT;
	c->function = 0;
	c->slot = 0;
	c->threads = 1;
	c->pool = (struct pd_pool_attr){.tenant = H_TENANT,
	                                .pool_size = (uint64_t)buffer_size * 80,
	                                .buffer_size = buffer_size,
	                                .ring_size = 64,
	                                .ninst = 2};
	c->nroutes = 3;
	c->routes[0] = (struct pd_attach_route){
	    .route = H_ROUTE_ONE, .chain_len = 1, .timeout_ms = 60000, .chain = {0}};
	c->routes[1] = (struct pd_attach_route){
	    .route = H_ROUTE_LOCAL, .chain_len = 2, .timeout_ms = 60000, .chain = {0, 1}};
	c->routes[2] = (struct pd_attach_route){
	    .route = H_ROUTE_REMOTE, .chain_len = 2, .timeout_ms = 60000, .chain = {0, 2}};
	/* Calls: function 1 (local, slot 1) and function 2 (another node). */
	c->node = 0;
	c->max_call_depth = 4;
	c->ncallees = 2;
	c->callees[0] = (struct pd_attach_callee){.function = 1, .name = "local"};
	c->callees[1] = (struct pd_attach_callee){.function = 2, .name = "remote"};
	/* Function 1 (slot 1) may call this one (function 0). */
	c->ncallers = 1;
	c->callers[0] = 1;
	c->ninst = 2;
	c->inst[0] = (struct pd_attach_inst){.function = 0, .slot = 0};
	c->inst[1] = (struct pd_attach_inst){.function = 1, .slot = 1};
	int rc = pd_pool_create(&c->pool, "runtime-harness", &rt.pool);
	if (rc != 0)
		return rc;
	rt.engine_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	rt.inst_efd[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	rt.inst_efd[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	rt.stop_efd = -1;
	rt.handler = handler;
	rt.arg = arg;
	h_res = malloc(sizeof(*h_res));
	if (rt.engine_efd < 0 || rt.inst_efd[0] < 0 || rt.inst_efd[1] < 0 || h_res == NULL)
		return -ENOMEM;
	rc = pd_calltable_init(&rt.calls, c->pool.ring_size);
	if (rc != 0)
		return rc;
	h_worker = (struct worker){.index = 0, .res = h_res};
	struct pd_waiter_attr wa = pd_waiter_attr_default(0, false);
	pd_waiter_init(&h_worker.replies, &wa);
	return 0;
}

/* Room after the message header in each buffer. */
static inline size_t h_room(void)
{
	return rt.pool.attr.buffer_size - PD_MSG_HDR_SIZE;
}

/* Request metadata as the ingress writes it. Returns its length, or 0 if cap is short. */
static inline size_t h_meta(uint8_t *buf, size_t cap, const char *const *pairs, size_t npairs)
{
	struct pd_meta_writer w;
	pd_meta_writer_init(&w, buf, cap);
	for (size_t i = 0; i + 1 < npairs; i += 2)
		pd_meta_add(&w, pairs[i], strlen(pairs[i]), pairs[i + 1], strlen(pairs[i + 1]));
	int64_t n = pd_meta_finish(&w);
	return n > 0 ? (size_t)n : 0;
}

/*
 * A request as the engine hands it to this instance: in a buffer, pushed to slot 0's
 * ring. Returns the buffer index, or UINT32_MAX if the pool is empty.
 */
static inline uint32_t h_request(uint16_t route, uint16_t hop, const void *body, size_t n,
                                 const void *meta, size_t meta_len)
{
	uint32_t idx;
	if (pd_pool_alloc(&rt.pool, PD_OWNER_ENGINE, &idx) != 0)
		return UINT32_MAX;
	struct pd_msg_hdr *h = pd_pool_buf(&rt.pool, idx);
	*h = (struct pd_msg_hdr){.magic = PD_MSG_MAGIC,
	                         .version = PD_MSG_VERSION,
	                         .flags = PD_MSG_F_REQUEST,
	                         .tenant = H_TENANT,
	                         .route = route,
	                         .hop = hop,
	                         .request_id = 0x100000000ull | idx,
	                         .payload_len = (uint32_t)n,
	                         .req_meta_len = (uint32_t)meta_len};
	if (n > 0)
		memcpy(pd_msg_payload(h), body, n);
	if (meta_len > 0)
		memcpy((uint8_t *)pd_msg_payload(h) + n, meta, meta_len);
	atomic_store(&rt.pool.ctl[idx].since_ns, 0);
	pd_pool_set(&rt.pool, idx, 0, PD_BUF_IN_RING);
	return idx;
}

/* Run the runtime on buffer idx, as its worker thread would after popping it. */
static inline void h_handle(uint32_t idx)
{
	handle_one(&h_worker, idx, pd_now_ns());
}

/* Take one message the runtime sent: to the engine (ring 0) or to slot 1 (ring 1).
 * Returns its buffer index (now held by the engine), or UINT32_MAX if none. */
static inline uint32_t h_sent(int to_slot1)
{
	struct pd_ring *r = to_slot1 ? &rt.pool.inst_ring[1] : &rt.pool.engine_ring;
	uint64_t v;
	if (pd_ring_pop(r, &v) != 0 || !pd_pool_index_ok(&rt.pool, v))
		return UINT32_MAX;
	pd_pool_set(&rt.pool, (uint32_t)v, PD_OWNER_ENGINE, PD_BUF_ENGINE);
	return (uint32_t)v;
}

/* Buffers in state s (a census). */
static inline uint64_t h_count(enum pd_buf_state s)
{
	uint64_t counts[PD_BUF_STATE_COUNT];
	pd_pool_census(&rt.pool, counts);
	return counts[s];
}

#endif
