/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the runtime's per-message path (handle_one) on a buffer whose header,
 * payload and request metadata come from the fuzzer, with a handler whose calls (reserve,
 * append, forward, headers, status, errors) and rewrites of its own input buffer during
 * the call come from the fuzzer too. Whatever the tenant's memory holds, the runtime
 * must not crash (ASan/UBSan watch), must send only messages that are valid and carry
 * the request id it checked, must write to no buffer but its input and output, and must
 * give every buffer back.
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

static void note_touched(const void *p)
{
	int64_t idx = pd_pool_index_of(&rt.pool, p);
	if (idx < 0 || (uint64_t)idx >= sizeof(touched))
		abort();
	touched[idx] = 1;
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
		switch (take(c, 1) % 10) {
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
		                         .flags = mode % 4 == 1 ? (uint16_t)take(&c, 1)
		                                                : PD_MSG_F_REQUEST,
		                         .tenant = (uint16_t)(take(&c, 1) % 4 == 0 ? 1 : H_TENANT),
		                         .route = (uint16_t)(take(&c, 1) % 4),
		                         .hop = (uint16_t)(take(&c, 1) % 3),
		                         .request_id = 0x500000000ull | idx,
		                         .payload_len = take(&c, 2) % FUZZ_BUF,
		                         .req_meta_len = take(&c, 2) % FUZZ_BUF,
		                         .resp_meta_len = take(&c, 1) % 64};
	}
	uint64_t request_id = h->request_id;
	/* Body and metadata bytes: the rest of the room, as much as the input gives. */
	size_t fill = take(&c, 2) % (FUZZ_BUF - PD_MSG_HDR_SIZE);
	for (size_t i = 0; i < fill && c.n > 0; i++)
		payload[i] = (uint8_t)take(&c, 1);
	atomic_store(&rt.pool.ctl[idx].since_ns, 0);
	pd_pool_set(&rt.pool, idx, 0, PD_BUF_IN_RING);

	hc = c;
	memset(touched, 0, sizeof(touched));
	h_handle(idx);

	/* What was sent, to the engine or to slot 1. Nothing else may have changed. */
	uint8_t sent[4096] = {0};
	for (int ring = 0; ring < 2; ring++) {
		uint32_t out;
		while ((out = h_sent(ring)) != UINT32_MAX) {
			if (sent[out])
				abort(); /* the same buffer sent twice */
			sent[out] = 1;
			check_sent(out, request_id);
			pd_pool_free(&rt.pool, out);
		}
	}
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
