/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the runtime's per-message path (handle_one) on a real pool, without an
 * engine (tests/fuzz/runtime_harness.h): answers at the buffer's limit, a handler that
 * rewrites its own input's header, an engine ring that takes nothing, and calls: a round
 * trip, refusals, a deadline, a late reply, forged calls and replies.
 */
#include "../fuzz/runtime_harness.h"
#include "unit.h"

#define BUF 16384u

static const char content_type[] = "application/x-www-form-urlencoded";

/* functions/echo.c */
static int echo(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	size_t n;
	const char *in = pd_request_body(req, &n);
	char *out = pd_response_reserve(res, n);
	if (out == NULL)
		return pd_response_error(res, 413, "body too large\n");
	memcpy(out, in, n);
	pd_response_commit(res, n);
	size_t ctlen;
	const char *ct = pd_request_header(req, "content-type", &ctlen);
	if (ct != NULL && ctlen < 128) {
		char value[128];
		memcpy(value, ct, ctlen);
		value[ctlen] = '\0';
		pd_response_set_header(res, "content-type", value);
	}
	return 0;
}

/* What curl sends by default with -d @file, as the ingress encodes it. */
static size_t curl_meta(uint8_t *buf, size_t cap, int extra)
{
	const char *pairs[] = {":method",      "POST",
	                       ":path",        "/echo",
	                       ":query",       "",
	                       "host",         "127.0.0.1:38080",
	                       "user-agent",   "curl/7.88.1",
	                       "accept",       "*/*",
	                       "content-type", content_type,
	                       "x-extra-one",  "some value of the first extra header",
	                       "x-extra-two",  "and another one, a little longer than the first"};
	return h_meta(buf, cap, pairs, extra ? 18 : 14);
}

static char body[BUF];

/* Sizes around the limit: the answer is the body (200) with or without its header, or
 * the function's own 413 on an intermediate hop; never a 500. */
static void sweep(uint16_t route, int extra)
{
	uint8_t meta[1024];
	size_t mlen = curl_meta(meta, sizeof(meta), extra);
	CHECK(mlen > 0);
	size_t ct_entry = 6 + strlen("content-type") + strlen(content_type);
	int bad = 0, with_header = 0, refused = 0;
	for (size_t n = h_room() - mlen - 400; n <= h_room() - mlen; n++) {
		uint32_t in = h_request(route, 0, body, n, meta, mlen);
		CHECK(in != UINT32_MAX);
		h_handle(in);
		int local = route == H_ROUTE_LOCAL;
		uint32_t out = h_sent(local);
		if (out == UINT32_MAX) { /* an error goes to the engine even on a chain */
			local = 0;
			out = h_sent(0);
		}
		CHECK(out != UINT32_MAX);
		if (out == UINT32_MAX)
			return;
		struct pd_msg_hdr h = *pd_pool_buf(&rt.pool, out);
		const uint8_t *p = pd_msg_payload(pd_pool_buf(&rt.pool, out));
		bool ok = pd_msg_validate(&h, BUF, 0) == 0;
		if (ok && (h.flags & PD_MSG_F_ERROR)) {
			ok = h.status == 413 && route == H_ROUTE_LOCAL;
			refused++;
		} else if (ok && local) {
			/* On to function 1: the request's metadata travels with the body. */
			ok = (h.flags & PD_MSG_F_REQUEST) && h.hop == 1 && h.payload_len == n &&
			     h.req_meta_len == mlen && memcmp(p, body, n) == 0 &&
			     memcmp(p + n, meta, mlen) == 0 &&
			     pd_meta_check(p + n + mlen, h.resp_meta_len) == 0;
		} else if (ok) {
			/* The final answer: the body, then the response headers only. */
			struct pd_meta_entry e;
			int found = pd_meta_find(p + n, h.resp_meta_len, "content-type", &e);
			ok = (h.flags & PD_MSG_F_RESPONSE) && h.status == 200 &&
			     h.payload_len == n && h.req_meta_len == 0 && memcmp(p, body, n) == 0 &&
			     found >= 0 &&
			     /* the header is dropped only when it does not fit */
			     (found == 1 || n + 2 + ct_entry > h_room());
			with_header += found == 1;
		}
		if (!ok && bad++ < 5)
			fprintf(stderr,
			        "  route %u extra %d: body %zu: flags %u status %u len %u "
			        "req_meta %u resp_meta %u\n",
			        route, extra, n, h.flags, h.status, h.payload_len, h.req_meta_len,
			        h.resp_meta_len);
		pd_pool_free(&rt.pool, out);
	}
	CHECK(bad == 0);
	if (route == H_ROUTE_ONE)
		CHECK(with_header > 0 && refused == 0);
	CHECK(h_count(PD_BUF_FREE) == rt.pool.nbuffers);
}

static void test_answers_at_the_limit(void)
{
	sweep(H_ROUTE_ONE, 0);
	sweep(H_ROUTE_ONE, 1);
}

static void test_requests_at_the_limit(void)
{
	sweep(H_ROUTE_LOCAL, 0);
	sweep(H_ROUTE_LOCAL, 1);
}

/* Reserve, capacity and set_header agree: what capacity promises, reserve gives, and
 * headers never push the answer past the buffer. */
static int fill_then_headers(const pd_request *req, pd_response *res, void *arg)
{
	(void)req;
	int *stage = arg;
	size_t cap = pd_response_capacity(res);
	if (pd_response_reserve(res, cap + 1) != NULL || pd_response_reserve(res, cap - 10) == NULL)
		return pd_response_error(res, 418, "capacity and reserve disagree\n");
	pd_response_commit(res, cap - 10);
	*stage = 1;
	/* 10 bytes left: a 2 + 6 + 1 + 1 = 10-byte header fits, then nothing more. */
	if (pd_response_set_header(res, "a", "b") != 0)
		return pd_response_error(res, 418, "the header that fits was refused\n");
	*stage = 2;
	if (pd_response_set_header(res, "c", "") == 0)
		return pd_response_error(res, 418, "a header past the buffer was taken\n");
	if (pd_response_capacity(res) != cap - 10 || pd_response_append(res, "x", 1) == 0)
		return pd_response_error(res, 418, "the body grew over the headers\n");
	*stage = 3;
	return 0;
}

static void test_capacity_reserve_headers(void)
{
	int stage = 0;
	rt.handler = fill_then_headers;
	rt.arg = &stage;
	uint8_t meta[1024];
	size_t mlen = curl_meta(meta, sizeof(meta), 0);
	uint32_t in = h_request(H_ROUTE_ONE, 0, "hi", 2, meta, mlen);
	h_handle(in);
	uint32_t out = h_sent(0);
	CHECK(out != UINT32_MAX);
	if (out == UINT32_MAX)
		return;
	struct pd_msg_hdr h = *pd_pool_buf(&rt.pool, out);
	CHECK(stage == 3);
	CHECK(h.status == 200 && !(h.flags & PD_MSG_F_ERROR));
	CHECK(pd_msg_total_len(&h) == BUF);
	pd_pool_free(&rt.pool, out);
	rt.handler = echo;
	rt.arg = NULL;
}

/*
 * A handler (or any process of the tenant) rewrites the header of its input while the
 * runtime works on it. The runtime must send what it checked: the forwarded body keeps
 * its length, and nothing is written past the buffer.
 */
static uint32_t tamper_len;

static int forward_and_tamper(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	size_t n;
	const char *b = pd_request_body(req, &n);
	struct pd_msg_hdr *h = (struct pd_msg_hdr *)(uintptr_t)(b - PD_MSG_HDR_SIZE);
	h->payload_len = tamper_len;
	h->hop = 0x7fff;
	h->req_meta_len = 0xffffffffu;
	h->request_id = 42;
	pd_response_set_header(res, "x-seen", "yes");
	return pd_response_forward(res);
}

static void test_forward_with_tampered_header(void)
{
	rt.handler = forward_and_tamper;
	uint8_t meta[1024];
	size_t mlen = curl_meta(meta, sizeof(meta), 0);
	const uint32_t lens[] = {BUF, BUF - 64, 0xffffff00u, 1};
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		tamper_len = lens[k];
		for (uint16_t route = H_ROUTE_ONE; route <= H_ROUTE_LOCAL; route++) {
			uint32_t in = h_request(route, 0, "hello", 5, meta, mlen);
			/* The next buffer's header must stay as it is. */
			uint32_t next = in + 1 < rt.pool.nbuffers ? in + 1 : in - 1;
			struct pd_msg_hdr before = *pd_pool_buf(&rt.pool, next);
			h_handle(in);
			uint32_t out = h_sent(route == H_ROUTE_LOCAL);
			CHECK(out == in);
			if (out != in)
				continue;
			struct pd_msg_hdr h = *pd_pool_buf(&rt.pool, out);
			const uint8_t *p = pd_msg_payload(pd_pool_buf(&rt.pool, out));
			CHECK(pd_msg_validate(&h, BUF, 0) == 0);
			CHECK(h.payload_len == 5 && memcmp(p, "hello", 5) == 0);
			CHECK(h.request_id == (0x100000000ull | in));
			if (route == H_ROUTE_LOCAL)
				CHECK(h.hop == 1 && h.req_meta_len == mlen &&
				      memcmp(p + 5, meta, mlen) == 0);
			else
				CHECK(h.req_meta_len == 0 && h.status == 200);
			struct pd_meta_entry e;
			CHECK(pd_meta_find(p + 5 + h.req_meta_len, h.resp_meta_len, "x-seen", &e) ==
			      1);
			CHECK(memcmp(&before, pd_pool_buf(&rt.pool, next), sizeof(before)) == 0);
			pd_pool_free(&rt.pool, out);
		}
	}
	rt.handler = echo;
}

/*
 * The engine ring is tenant memory: a process of the tenant can fill it with junk.
 * The answer that cannot be pushed is counted, and its buffer goes back to the pool
 * instead of staying TO_ENGINE, where nothing would ever free it.
 */
static void test_engine_ring_full_of_junk(void)
{
	int pushed = 0;
	while (pd_ring_push(&rt.pool.engine_ring, UINT64_MAX) == 0)
		pushed++;
	CHECK(pushed > 0);
	uint64_t fails_before = atomic_load(&rt.pool.inst_status[0]->push_failures);
	uint32_t in = h_request(H_ROUTE_ONE, 0, "hello", 5, NULL, 0);
	h_handle(in);
	CHECK(atomic_load(&rt.pool.inst_status[0]->push_failures) == fails_before + 1);
	CHECK(h_count(PD_BUF_TO_ENGINE) == 0);
	CHECK(h_count(PD_BUF_FREE) == rt.pool.nbuffers);
	/* Empty the ring again: only junk in it, no buffer. */
	uint64_t v;
	int popped = 0;
	while (pd_ring_pop(&rt.pool.engine_ring, &v) == 0) {
		CHECK(v == UINT64_MAX);
		popped++;
	}
	CHECK(popped == pushed);
	/* And everything works as before. */
	in = h_request(H_ROUTE_ONE, 0, "again", 5, NULL, 0);
	h_handle(in);
	uint32_t out = h_sent(0);
	CHECK(out != UINT32_MAX);
	if (out != UINT32_MAX) {
		struct pd_msg_hdr *h = pd_pool_buf(&rt.pool, out);
		CHECK(h->status == 200 && h->payload_len == 5 &&
		      memcmp(pd_msg_payload(h), "again", 5) == 0);
		pd_pool_free(&rt.pool, out);
	}
	CHECK(h_count(PD_BUF_FREE) == rt.pool.nbuffers);
}

/* ---------------------------------------------------------------- calls */

/* What the call handler does with its one call, and what it saw. */
static struct {
	const char *callee;
	int mode; /* 0: the callee answers before the wait; 1: nobody answers; 2: wait_any */
	int status;
	char body[64];
	size_t body_len;
	char header[32];
	uint32_t call_msg; /* the CALL message the test took from the callee's ring */
	uint64_t call_id;
} cx;

/* As the callee's runtime would: turn the CALL in buffer idx into its reply. */
static void answer_call(uint32_t idx, uint16_t status, const char *text)
{
	struct pd_msg_hdr *h = pd_pool_buf(&rt.pool, idx);
	size_t n = strlen(text);
	memcpy(pd_msg_payload(h), text, n);
	uint8_t *meta = (uint8_t *)pd_msg_payload(h) + n;
	const char *pairs[] = {"x-answer", "yes"};
	size_t mlen = h_meta(meta, 64, pairs, 2);
	h->flags = PD_MSG_F_REPLY;
	h->status = status;
	h->payload_len = (uint32_t)n;
	h->req_meta_len = 0;
	h->resp_meta_len = (uint32_t)mlen;
	CHECK(pd_pool_push_reply(&rt.pool, h->reply_slot, idx) == 0);
}

static int call_handler(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	pd_call *c = pd_call_start(req, cx.callee);
	CHECK(c != NULL);
	if (c == NULL)
		return 1;
	/* A refused call (403, 508) has finished already: nothing more can be set on it. */
	int ok = pd_call_status(c) == 0 ? 0 : -1;
	CHECK(pd_call_set_header(c, "X-Trace", "t1") == ok);
	CHECK(pd_call_set_path(c, "/price", "cur=EUR") == ok);
	pd_call_append(c, "{\"q\":1}", 7);
	if (cx.mode == 1)
		pd_call_set_timeout(c, 20);
	pd_call_send(c);
	cx.call_id = c->id;
	cx.call_msg = UINT32_MAX;
	/* The callee, here: take the call from its instance's ring and answer it. */
	uint64_t v;
	if (cx.mode != 1 && pd_ring_pop(&rt.pool.inst_ring[1], &v) == 0) {
		cx.call_msg = (uint32_t)v;
		pd_pool_set(&rt.pool, (uint32_t)v, 1, PD_BUF_IN_FUNCTION);
		answer_call((uint32_t)v, 201, "{\"price\":3}");
	}
	if (cx.mode == 2) {
		pd_call *set[3] = {NULL, c, NULL};
		CHECK(pd_call_wait_any(set, 3) == 1);
	}
	cx.status = pd_call_wait(c);
	size_t n, hl;
	const char *b = pd_call_body(c, &n);
	cx.body_len = n < sizeof(cx.body) ? n : sizeof(cx.body);
	memcpy(cx.body, b, cx.body_len);
	const char *hv = pd_call_header(c, "X-Answer", &hl);
	snprintf(cx.header, sizeof(cx.header), "%.*s", hv != NULL ? (int)hl : 0, hv ? hv : "");
	/* Left open on purpose: the runtime releases it when the handler returns. */
	return pd_response_append(res, "done", 4);
}

static uint64_t st(size_t off)
{
	return atomic_load((_Atomic uint64_t *)((char *)rt.pool.inst_status[0] + off));
}
#define ST(f) st(offsetof(struct pd_inst_status, f))

/* A call to a function on this node goes straight to its ring, as a CALL carrying the
 * request's id, a depth of 1, this instance's reply address and the metadata set; its
 * reply comes back in place (status, body, headers), and every buffer goes back. */
static void test_local_call_round_trip(void)
{
	rt.handler = call_handler;
	cx.callee = "local";
	for (int mode = 0; mode <= 2; mode += 2) {
		cx.mode = mode;
		uint64_t answered = ST(calls_answered), started = ST(calls_started);
		uint32_t in = h_request(H_ROUTE_ONE, 0, "x", 1, NULL, 0);
		uint64_t request_id = pd_pool_buf(&rt.pool, in)->request_id;
		h_handle(in);
		CHECK(cx.call_msg != UINT32_MAX);
		CHECK(cx.status == 201);
		CHECK(cx.body_len == 11 && memcmp(cx.body, "{\"price\":3}", 11) == 0);
		CHECK(strcmp(cx.header, "yes") == 0);
		CHECK(ST(calls_started) == started + 1 && ST(calls_answered) == answered + 1);
		if (cx.call_msg != UINT32_MAX) {
			struct pd_msg_hdr *h = pd_pool_buf(&rt.pool, cx.call_msg);
			CHECK(h->request_id == request_id && h->depth == 1 && h->callee == 1);
			CHECK(h->reply_node == 0 && h->reply_slot == 0 && h->call_id == cx.call_id);
			CHECK(h->deadline_ms > 0 && h->deadline_ms <= 60000);
		}
		uint32_t out = h_sent(0);
		CHECK(out != UINT32_MAX);
		if (out != UINT32_MAX) {
			struct pd_msg_hdr *h = pd_pool_buf(&rt.pool, out);
			CHECK(h->status == 200 && h->payload_len == 4);
			pd_pool_free(&rt.pool, out);
		}
		CHECK(h_count(PD_BUF_FREE) == rt.pool.nbuffers);
	}
	rt.handler = echo;
}

/* A call to a function on another node goes to the engine; one to a function not in
 * calls is refused (403) and one past max_call_depth too (508): neither is sent. */
static void test_remote_undeclared_and_deep(void)
{
	rt.handler = call_handler;
	cx.mode = 1; /* nobody answers: 504 after 20 ms */
	cx.callee = "remote";
	uint64_t timed_out = ST(calls_timed_out);
	uint32_t in = h_request(H_ROUTE_ONE, 0, "x", 1, NULL, 0);
	h_handle(in);
	CHECK(cx.status == 504);
	CHECK(ST(calls_timed_out) == timed_out + 1);
	uint32_t call = h_sent(0);
	CHECK(call != UINT32_MAX);
	uint32_t out = h_sent(0);
	CHECK(out != UINT32_MAX);
	if (call != UINT32_MAX) {
		struct pd_msg_hdr *h = pd_pool_buf(&rt.pool, call);
		CHECK(pd_msg_kind(h) == PD_MSG_F_CALL && h->callee == 2);
		/* Its reply comes after the deadline: counted late, its buffer freed. */
		uint64_t late = ST(calls_late);
		pd_pool_set(&rt.pool, call, 1, PD_BUF_IN_FUNCTION);
		answer_call(call, 200, "late");
		pd_call *probe = NULL;
		CHECK(pd_call_wait_any(&probe, 1) == -1); /* nothing to wait for */
		CHECK(drain_replies(&h_worker) == false);
		CHECK(ST(calls_late) == late + 1);
	}
	if (out != UINT32_MAX)
		pd_pool_free(&rt.pool, out);
	CHECK(h_count(PD_BUF_FREE) == rt.pool.nbuffers);

	cx.mode = 0;
	cx.callee = "nope";
	uint64_t failed = ST(calls_failed);
	in = h_request(H_ROUTE_ONE, 0, "x", 1, NULL, 0);
	h_handle(in);
	CHECK(cx.status == 403 && cx.call_msg == UINT32_MAX);
	CHECK(ST(calls_failed) == failed + 1);
	out = h_sent(0);
	CHECK(out != UINT32_MAX && h_sent(0) == UINT32_MAX); /* the answer, nothing else */
	if (out != UINT32_MAX)
		pd_pool_free(&rt.pool, out);

	/* The request is itself a call at the depth limit: its calls are refused. */
	cx.callee = "local";
	in = h_request(H_ROUTE_ONE, 0, "x", 1, NULL, 0);
	struct pd_msg_hdr *h = pd_pool_buf(&rt.pool, in);
	h->flags = PD_MSG_F_CALL;
	h->callee = 0;
	h->depth = (uint16_t)rt.cfg.max_call_depth;
	h->call_id = 0x300000007ull;
	h->reply_node = 0;
	h->reply_slot = 1;
	h_handle(in);
	CHECK(cx.status == 508 && cx.call_msg == UINT32_MAX);
	/* Its own answer is a reply, in slot 1's reply ring, with the caller's call id. */
	uint64_t v;
	CHECK(pd_ring_pop(&rt.pool.reply_ring[1], &v) == 0);
	if (pd_pool_index_ok(&rt.pool, v)) {
		struct pd_msg_hdr *r = pd_pool_buf(&rt.pool, (uint32_t)v);
		CHECK(pd_msg_kind(r) == PD_MSG_F_REPLY && !(r->flags & PD_MSG_F_ERROR));
		CHECK(r->call_id == 0x300000007ull && r->status == 200 && r->payload_len == 4);
		CHECK(atomic_load(&rt.pool.ctl[v].state) == PD_BUF_IN_REPLY);
		pd_pool_free(&rt.pool, (uint32_t)v);
	}
	CHECK(h_sent(0) == UINT32_MAX);
	CHECK(h_count(PD_BUF_FREE) == rt.pool.nbuffers);
	rt.handler = echo;
}

/* Calls that are not this function's to answer are refused, and their buffers freed:
 * another callee, depth 0 or past the limit, a reply slot this pool does not have, no
 * call id, a caller here whose function does not declare this one. */
static void test_forged_calls(void)
{
	struct {
		uint16_t callee, depth, slot;
		uint64_t id;
	} bad[] = {{1, 1, 1, 5},
	           {0, 0, 1, 5},
	           {0, 5, 1, 5},
	           {0, 1, 9, 5},
	           {0, 1, 1, 0},
	           /* from slot 0: function 0 does not declare itself in its calls */
	           {0, 1, 0, 5}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t bad_input = ST(bad_input), handled = ST(handled);
		uint32_t in = h_request(H_ROUTE_ONE, 0, "x", 1, NULL, 0);
		struct pd_msg_hdr *h = pd_pool_buf(&rt.pool, in);
		h->flags = PD_MSG_F_CALL;
		h->callee = bad[i].callee;
		h->depth = bad[i].depth;
		h->reply_slot = bad[i].slot;
		h->call_id = bad[i].id;
		h_handle(in);
		CHECK(ST(bad_input) == bad_input + 1 && ST(handled) == handled);
		CHECK(h_sent(0) == UINT32_MAX && pd_ring_looks_empty(&rt.pool.reply_ring[1]));
		CHECK(h_count(PD_BUF_FREE) == rt.pool.nbuffers);
	}
}

/* Replies that are not for this instance, or name no call of it, are dropped and
 * counted; a stale generation never completes a newer call in the same slot. */
static void test_forged_replies(void)
{
	uint64_t id;
	CHECK(pd_calltable_alloc(&rt.calls, 1, UINT64_MAX, 0, &id) == 0);
	struct {
		uint16_t flags, tenant, slot;
		uint64_t id;
		int late;
	} bad[] = {
	    {PD_MSG_F_REPLY, H_TENANT, 0, id + (1ull << 32), 1}, /* stale / future generation */
	    {PD_MSG_F_REPLY, H_TENANT, 0, id + 1, 1},            /* another slot */
	    {PD_MSG_F_REPLY, 1, 0, id, 0},                       /* another tenant */
	    {PD_MSG_F_REPLY, H_TENANT, 1, id, 0},                /* another instance */
	    {PD_MSG_F_CALL, H_TENANT, 0, id, 0},                 /* not a reply */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t late = ST(calls_late), bad_input = ST(bad_input);
		uint32_t idx = h_request(H_ROUTE_ONE, 0, "r", 1, NULL, 0);
		struct pd_msg_hdr *h = pd_pool_buf(&rt.pool, idx);
		h->flags = bad[i].flags;
		h->tenant = bad[i].tenant;
		h->reply_slot = bad[i].slot;
		h->call_id = bad[i].id;
		h->callee = 1;
		h->depth = 1;
		CHECK(pd_pool_push_reply(&rt.pool, 0, idx) == 0);
		drain_replies(&h_worker);
		CHECK(ST(calls_late) == late + (uint64_t)bad[i].late);
		CHECK(ST(bad_input) == bad_input + (uint64_t)!bad[i].late);
		CHECK(pd_call_entry_state(pd_calltable_lookup(&rt.calls, id)) == PD_CALL_SENT);
		CHECK(h_count(PD_BUF_FREE) == rt.pool.nbuffers);
	}
	CHECK(pd_calltable_release(&rt.calls, id, NULL, NULL) == 0);
}

int main(void)
{
	memset(body, 'b', sizeof(body));
	for (size_t i = 0; i < sizeof(body); i += 7)
		body[i] = (char)('a' + i % 26);
	if (h_init(BUF, echo, NULL) != 0) {
		fprintf(stderr, "cannot make a pool\n");
		return 1;
	}
	RUN(test_answers_at_the_limit);
	RUN(test_requests_at_the_limit);
	RUN(test_capacity_reserve_headers);
	RUN(test_forward_with_tampered_header);
	RUN(test_engine_ring_full_of_junk);
	RUN(test_local_call_round_trip);
	RUN(test_remote_undeclared_and_deep);
	RUN(test_forged_calls);
	RUN(test_forged_replies);
	return SUMMARY("runtime");
}
