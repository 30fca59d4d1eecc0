/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the runtime's per-message path (handle_one) on a buffer whose header,
 * payload and request metadata come from the fuzzer, with a handler whose calls (reserve,
 * append, forward, headers, status, errors) and rewrites of its own input buffer during
 * the call come from the fuzzer too. Whatever the tenant's memory holds, the runtime
 * must not crash (ASan/UBSan watch), must send only messages that are valid and carry
 * the request id it checked, must write to no buffer but its input and output, and must
 * give every buffer back.
 *
 * Calls: the input may be a call (fuzzed callee, depth, reply address) instead of a
 * request, and the handler makes calls of its own (declared or not, with fuzzed
 * metadata), which get replies with fuzzed headers and call ids (the right one, a
 * neighbour, garbage) pushed into its reply ring while it waits or looks.
 */
#include <stdlib.h>

#include "runtime_harness.h"

#define FUZZ_BUF 1024u
#define PATTERN 0xa5

struct cursor {
	const uint8_t *d;
	size_t n;
};

static uint32_t take(struct cursor *c, unsigned bytes)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < bytes && c->n > 0; i++, c->d++, c->n--)
		v = v << 8 | *c->d;
	return v;
}

static struct cursor hc;      /* the handler's share of the input */
static uint8_t touched[4096]; /* buffers the handler got from reserve */
static uint64_t parent_id;    /* the request id the runtime checked */

static void note_touched(const void *p)
{
	int64_t idx = pd_pool_index_of(&rt.pool, p);
	if (idx < 0 || (uint64_t)idx >= sizeof(touched))
		abort();
	touched[idx] = 1;
}

/* A reply for call id pushed into slot 0's reply ring, header partly fuzzed. */
static void inject_reply(struct cursor *c, uint64_t id)
{
	uint32_t idx;
	if (pd_pool_alloc(&rt.pool, PD_OWNER_ENGINE, &idx) != 0)
		return;
	struct pd_msg_hdr *h = pd_pool_buf(&rt.pool, idx);
	unsigned how = take(c, 1);
	*h = (struct pd_msg_hdr){.magic = PD_MSG_MAGIC,
	                         .version = PD_MSG_VERSION,
	                         .flags = how % 5 == 0 ? (uint16_t)take(c, 1) : PD_MSG_F_REPLY,
	                         .tenant = how % 7 == 0 ? 1 : H_TENANT,
	                         .status = (uint16_t)take(c, 2),
	                         .request_id = parent_id,
	                         .payload_len = take(c, 2) % FUZZ_BUF,
	                         .req_meta_len = take(c, 1) % 32,
	                         .resp_meta_len = take(c, 1) % 64,
	                         .call_id = how % 3 == 0 ? id ^ take(c, 4) : id,
	                         .reply_node = how % 11 == 0 ? 1 : 0,
	                         .reply_slot = how % 13 == 0 ? 1 : 0};
	if (how & 0x80)
		h->flags |= PD_MSG_F_ERROR;
	uint8_t *b = pd_msg_payload(h);
	size_t fill = take(c, 1) % 128;
	for (size_t i = 0; i < fill && c->n > 0; i++)
		b[i] = (uint8_t)take(c, 1);
	note_touched(h);
	pd_pool_set(&rt.pool, idx, how % 17 == 0 ? 1 : 0, PD_BUF_IN_REPLY);
	if (pd_ring_push(&rt.pool.reply_ring[0], idx) != 0)
		pd_pool_free(&rt.pool, idx);
}

/* A call made by the handler: to a declared function here or on another node, or to one
 * it may not call; fuzzed metadata and body; sent, looked at, waited for or abandoned. */
static void fuzz_call(struct cursor *c, const pd_request *req)
{
	static const char *const callees[] = {"local", "remote", "nope", ""};
	pd_call *call = pd_call_start(req, callees[take(c, 1) % 4]);
	if (call == NULL)
		abort();
	unsigned ops = take(c, 1) % 8;
	for (unsigned k = 0; k < ops; k++) {
		switch (take(c, 1) % 8) {
		case 0: {
			size_t want = take(c, 2);
			char *p = pd_call_reserve(call, want);
			if (p != NULL) {
				note_touched(p);
				memset(p, 'b', want);
				pd_call_commit(call, take(c, 1) % 2 ? want : want / 2);
			}
			break;
		}
		case 1: {
			char v[100];
			size_t m = take(c, 1) % sizeof(v);
			for (size_t i = 0; i < m; i++)
				v[i] = (char)(take(c, 1) | 0x20);
			v[m] = '\0';
			switch (take(c, 1) % 3) {
			case 0: pd_call_set_header(call, "x-h", v); break;
			case 1: pd_call_set_path(call, take(c, 1) % 2 ? "/p" : v, v); break;
			default: pd_call_set_method(call, v); break;
			}
			break;
		}
		case 2:
			if (pd_call_send(call) == 0 && call->req_idx != PD_CALL_NO_BUF)
				abort(); /* a sent call keeps no buffer */
			break;
		case 3: inject_reply(c, call->id); break;
		case 4: (void)pd_call_status(call); break;
		case 5: /* wait, with a deadline that has passed unless a reply is there */
			if (call->id != 0) {
				call->deadline_ns = 0;
				atomic_store(&rt.calls.calls[(uint32_t)call->id].deadline_ns, 0);
			} else {
				pd_call_set_timeout(call, 0);
			}
			if (pd_call_wait(call) == 0)
				abort();
			break;
		case 6: {
			size_t n;
			const char *b = pd_call_body(call, &n);
			volatile size_t sink = n > 0 ? (unsigned char)b[n - 1] : 0;
			(void)sink;
			(void)pd_call_header(call, "x-h", &n);
			break;
		}
		default: pd_call_release(call); return;
		}
	}
	/* Left open: the runtime releases it when the handler returns. */
}

static int handler(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	struct cursor *c = &hc;
	size_t n, l;
	const char *in = pd_request_body(req, &n);
	/* The accessors parse the fuzzed metadata. */
	volatile size_t sink = 0;
	sink += (size_t)pd_request_method(req, &l) + l;
	sink += (size_t)pd_request_path(req, &l) + l;
	sink += (size_t)pd_request_query(req, &l) + l;
	const char *v = pd_request_header(req, "content-type", &l);
	sink += v != NULL ? l : 0;
	sink += pd_request_header(req, ":path", &l) != NULL; /* pseudo-headers are not headers */
	sink += pd_request_hop(req) + pd_request_chain_length(req);
	for (size_t i = 0; i < n; i += 97)
		sink += (unsigned char)in[i];
	(void)sink;

	static const char *const names[] = {
	    "content-type", "x-a", "Set-Cookie",
	    "bad name",     "",    "x-very-long-name-for-a-header-of-the-fuzzer"};
	unsigned ops = take(c, 1) % 10;
	for (unsigned k = 0; k < ops; k++) {
		switch (take(c, 1) % 11) {
		case 10: fuzz_call(c, req); break;
		case 0: { /* reserve, copy the input, commit */
			size_t want = take(c, 2);
			char *p = pd_response_reserve(res, want);
			if (p == NULL)
				break;
			note_touched(p);
			size_t m = want < n ? want : n;
			memcpy(p, in, m);
			pd_response_commit(res, take(c, 1) % 2 ? m : want);
			break;
		}
		case 1: { /* append */
			char bytes[300];
			size_t m = take(c, 2) % sizeof(bytes);
			memset(bytes, 'x', m);
			if (pd_response_append(res, bytes, m) == 0) {
				char *p = pd_response_reserve(res, 0);
				if (p != NULL)
					note_touched(p);
			}
			break;
		}
		case 2: pd_response_forward(res); break;
		case 3: { /* a header, value from the input */
			char value[200];
			size_t m = take(c, 1) % sizeof(value);
			for (size_t i = 0; i < m; i++)
				value[i] = (char)(take(c, 1) | 0x20);
			value[m] = '\0';
			pd_response_set_header(res, names[take(c, 1) % 6], value);
			break;
		}
		case 4: pd_response_set_status(res, (int)take(c, 2)); break;
		case 5: return pd_response_error(res, (int)(take(c, 2) % 700), "fuzzed error\n");
		case 6: { /* rewrite the input buffer's header while the runtime works on it */
			uint8_t *h = (uint8_t *)(uintptr_t)(in - PD_MSG_HDR_SIZE);
			unsigned off = take(c, 1) % PD_MSG_HDR_SIZE, len = take(c, 1) % 16;
			for (unsigned i = 0; i < len; i++)
				h[(off + i) % PD_MSG_HDR_SIZE] = (uint8_t)take(c, 1);
			break;
		}
		case 7: { /* exactly the capacity */
			size_t cap = pd_response_capacity(res);
			char *p = pd_response_reserve(res, cap);
			if (p == NULL)
				break;
			note_touched(p);
			memset(p, 'c', cap);
			pd_response_commit(res, cap);
			break;
		}
		case 8: return (int)take(c, 1) % 2;
		default: { /* scribble on the input's own metadata and body */
			uint8_t *b = (uint8_t *)(uintptr_t)in;
			size_t off = take(c, 2) % (FUZZ_BUF - PD_MSG_HDR_SIZE);
			b[off] = (uint8_t)take(c, 1);
			break;
		}
		}
	}
	return 0;
}

static void fill_pattern(uint32_t idx)
{
	memset(pd_pool_buf(&rt.pool, idx), PATTERN, FUZZ_BUF);
}

static uint8_t pattern[FUZZ_BUF];

static bool is_pattern(uint32_t idx)
{
	return memcmp(pd_pool_buf(&rt.pool, idx), pattern, FUZZ_BUF) == 0;
}

/* A message the runtime sent: valid, the checked request id, sane metadata. */
static void check_sent(uint32_t idx, uint64_t request_id)
{
	struct pd_msg_hdr h;
	pd_msg_hdr_snapshot(&h, pd_pool_buf(&rt.pool, idx));
	if (pd_msg_validate(&h, FUZZ_BUF, 0) != 0 || h.tenant != H_TENANT ||
	    h.request_id != request_id)
		abort();
	const uint8_t *p = pd_msg_payload(pd_pool_buf(&rt.pool, idx));
	if (pd_meta_check(p + h.payload_len + h.req_meta_len, h.resp_meta_len) != 0)
		abort();
	if ((h.flags & PD_MSG_F_RESPONSE) && h.req_meta_len != 0)
		abort();
	/* A call goes to a declared callee with a reply address of this instance. */
	if (pd_msg_kind(&h) == PD_MSG_F_CALL &&
	    (h.depth == 0 || h.depth > rt.cfg.max_call_depth || h.reply_slot != 0 ||
	     h.reply_node != 0 || (h.callee != 1 && h.callee != 2)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		if (h_init(FUZZ_BUF, handler, NULL) != 0 || rt.pool.nbuffers > sizeof(touched))
			abort();
		memset(pattern, PATTERN, sizeof(pattern));
		for (uint32_t i = 0; i < rt.pool.nbuffers; i++)
			fill_pattern(i);
		ready = true;
	}
	struct cursor c = {data, size};
	/* The request: a plausible header with fuzzed fields, or raw header bytes. */
	uint32_t idx;
	if (pd_pool_alloc(&rt.pool, PD_OWNER_ENGINE, &idx) != 0)
		abort();
	struct pd_msg_hdr *h = pd_pool_buf(&rt.pool, idx);
	uint8_t *payload = pd_msg_payload(h);
	unsigned mode = take(&c, 1);
	if (mode % 4 == 0) {
		for (unsigned i = 0; i < PD_MSG_HDR_SIZE; i++)
			((uint8_t *)h)[i] = (uint8_t)take(&c, 1);
	} else {
		*h = (struct pd_msg_hdr){.magic = PD_MSG_MAGIC,
		                         .version = PD_MSG_VERSION,
		                         .flags = mode % 4 == 1   ? (uint16_t)take(&c, 1)
		                                  : mode % 4 == 2 ? PD_MSG_F_CALL
		                                                  : PD_MSG_F_REQUEST,
		                         .tenant = (uint16_t)(take(&c, 1) % 4 == 0 ? 1 : H_TENANT),
		                         .route = (uint16_t)(take(&c, 1) % 4),
		                         .hop = (uint16_t)(take(&c, 1) % 3),
		                         .request_id = 0x500000000ull | idx,
		                         .payload_len = take(&c, 2) % FUZZ_BUF,
		                         .req_meta_len = take(&c, 2) % FUZZ_BUF,
		                         .resp_meta_len = take(&c, 1) % 64};
	}
	if (mode % 4 == 2) {
		/* A call: usually to this function (0), from slot 1 here or from node 1. */
		h->callee = (uint16_t)(take(&c, 1) % 8 == 0 ? 1 : 0);
		h->depth = (uint16_t)(take(&c, 1) % 6);
		h->call_id = take(&c, 1) % 8 == 0 ? 0 : 0x100000000ull | take(&c, 1);
		h->deadline_ms = take(&c, 2);
		h->reply_node = (uint16_t)(take(&c, 1) % 4 == 0 ? 1 : 0);
		h->reply_slot = (uint16_t)(take(&c, 1) % 3);
	}
	uint64_t request_id = h->request_id;
	parent_id = request_id;
	/* Body and metadata bytes: the rest of the room, as much as the input gives. */
	size_t fill = take(&c, 2) % (FUZZ_BUF - PD_MSG_HDR_SIZE);
	for (size_t i = 0; i < fill && c.n > 0; i++)
		payload[i] = (uint8_t)take(&c, 1);
	atomic_store(&rt.pool.ctl[idx].since_ns, 0);
	pd_pool_set(&rt.pool, idx, 0, PD_BUF_IN_RING);

	hc = c;
	memset(touched, 0, sizeof(touched));
	h_handle(idx);

	/* What was sent, to the engine or to slot 1, and replies to slot 0 or 1 (the
	 * answer to a call, or injected replies nobody took). Nothing else may have changed. */
	uint8_t sent[4096] = {0};
	struct pd_ring *rings[] = {&rt.pool.engine_ring, &rt.pool.inst_ring[1],
	                           &rt.pool.reply_ring[0], &rt.pool.reply_ring[1]};
	for (int ring = 0; ring < 4; ring++) {
		uint64_t v;
		while (pd_ring_pop(rings[ring], &v) == 0) {
			if (!pd_pool_index_ok(&rt.pool, v))
				abort();
			uint32_t out = (uint32_t)v;
			if (sent[out])
				abort(); /* the same buffer sent twice */
			sent[out] = 1;
			pd_pool_set(&rt.pool, out, PD_OWNER_ENGINE, PD_BUF_ENGINE);
			if (ring != 2 || !touched[out]) /* injected replies may be anything */
				check_sent(out, request_id);
			pd_pool_free(&rt.pool, out);
		}
	}
	/* An injected reply marked as another instance's is refused and left to that
	 * instance (as the tenant that forged it deserves): give it back here. */
	for (uint32_t i = 0; i < rt.pool.nbuffers; i++)
		if (touched[i] && atomic_load(&rt.pool.ctl[i].state) == PD_BUF_IN_REPLY &&
		    atomic_load(&rt.pool.ctl[i].owner) == 1)
			pd_pool_free(&rt.pool, i);
	for (uint32_t i = 0; i < rt.pool.nbuffers; i++) {
		if (i == idx || sent[i] || touched[i]) {
			fill_pattern(i);
			continue;
		}
		if (!is_pattern(i))
			abort(); /* written outside its input and output buffers */
	}
	/* Every buffer is back in the pool: none lost, none left with the function. */
	if (h_count(PD_BUF_FREE) != rt.pool.nbuffers)
		abort();
	return 0;
}
