/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the ingress's handling of a message from the fabric
 * (ing_on_response): the message header, its metadata and the response headers it
 * copies into h2o all come from the fuzzer, for a request table slot that is waiting,
 * whose client has gone, or that does not match. The ingress must not crash (ASan and
 * UBSan watch), must hand h2o only valid, lower-case, non-framing headers and a body
 * inside the receive buffer, and must give the receive buffer back once h2o is done.
 *
 * Includes the ingress's http.c (to reach its static parts); the rest of the ingress
 * (request table: slots.c, buffers: bufs.c) is linked from its library, unchanged. The
 * h2o request is a real one on a connection whose final output stream is this harness.
 */
#include "../../src/ingress/http.c"

#include <stdlib.h>

#define BUF_SIZE 4096u
#define NSLOTS 4u

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

static struct ingress ing;
static struct ing_tenant tenant;
static struct ing_route route;
static struct ing_route_stats route_stats[2];
static struct ing_slot slots[NSLOTS];
static uint32_t free_slots[NSLOTS];
static struct ing_buf rx;
static uint32_t free_stack[1];
static uint8_t *area;
static h2o_pathconf_t path_conf;
static h2o_conn_t conn;
static h2o_ostream_t final_ostr;
static bool sent_final;

/* The end of h2o's output chain: what would go to the client. */
static void on_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t n,
                    h2o_send_state_t state)
{
	(void)self;
	(void)req;
	volatile uint8_t sum = 0;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = (const uint8_t *)bufs[i].base;
		/* The body goes out from the receive buffer, and never past it. */
		if (bufs[i].len > 0 && (p < area || bufs[i].len > BUF_SIZE ||
		                        (size_t)(p - area) > BUF_SIZE - bufs[i].len))
			abort();
		for (size_t k = 0; k < bufs[i].len; k++)
			sum ^= p[k];
	}
	(void)sum;
	if (!h2o_send_state_is_in_progress(state))
		sent_final = true;
}

static void init(void)
{
	area = aligned_alloc(64, BUF_SIZE);
	if (area == NULL)
		abort();
	ing.slots = slots;
	ing.nslots = NSLOTS;
	ing.free_slots = free_slots;
	ing.routes = &route;
	ing.nroutes = 1;
	ing.route_stats = route_stats;
	ing.tenants = &tenant;
	ing.ntenants = 1;
	ing_slots_init(&ing);
	tenant.ing = &ing;
	tenant.index = 0;
	tenant.buf_size = BUF_SIZE;
	tenant.bufs = &rx;
	tenant.nbufs = 1;
	tenant.free_stack = free_stack;
	rx.tenant = &tenant;
	rx.data = area;
	route.tenant = &tenant;
	conn.ctx = NULL;
	final_ostr.do_send = on_send;
}

/* The headers the ingress gave h2o: valid names in lower case, clean values, no framing. */
static void check_headers(const h2o_req_t *req)
{
	for (size_t i = 0; i < req->res.headers.size; i++) {
		const h2o_header_t *h = &req->res.headers.entries[i];
		const char *n = h->name->base;
		size_t nl = h->name->len;
		if (!pd_http_name_ok_n(n, nl) || is_framing_header(n, nl))
			abort();
		for (size_t k = 0; k < nl; k++)
			if (n[k] >= 'A' && n[k] <= 'Z')
				abort();
		if (!header_value_ok(h->value.base, h->value.len))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		init();
		ready = true;
	}
	struct cursor c = {data, size};

	/* The table: slot k waits for a response, with or without its client. */
	uint32_t k = take(&c, 1) % NSLOTS;
	unsigned mode = take(&c, 1);
	struct ing_slot *s = &slots[k];
	bool waiting = mode % 4 != 0;
	bool client = mode % 4 != 1;
	h2o_req_t *req = NULL;
	if (waiting) {
		/* Take slot k out of the free list, as ing_on_req does. */
		uint32_t j = 0;
		while (j < ing.nfree_slots && free_slots[j] != k)
			j++;
		if (j == ing.nfree_slots)
			abort();
		free_slots[j] = free_slots[--ing.nfree_slots];
		s->state = SLOT_SENT;
		s->route = 0;
		s->start_ns = now_ns();
		tenant.inflight++;
		if (client) {
			req = calloc(1, sizeof(*req));
			if (req == NULL)
				abort();
			h2o_init_request(req, &conn, NULL);
			req->pathconf = &path_conf;
			req->_ostr_top = &final_ostr;
			req->method = (mode & 8) ? h2o_iovec_init(H2O_STRLIT("HEAD"))
			                         : h2o_iovec_init(H2O_STRLIT("POST"));
			struct req_ref *ref =
			    h2o_mem_alloc_shared(&req->pool, sizeof(*ref), on_ref_dispose);
			*ref = (struct req_ref){.ing = &ing, .slot = k, .waiting = true};
			s->ref = ref;
			s->req = req;
		}
	}

	/* The message: a plausible header with fuzzed fields, or raw bytes. */
	memset(area, 0, BUF_SIZE);
	struct pd_msg_hdr *h = (struct pd_msg_hdr *)area;
	if (mode & 16) {
		for (unsigned i = 0; i < PD_MSG_HDR_SIZE; i++)
			area[i] = (uint8_t)take(&c, 1);
	} else {
		uint32_t gen = (mode & 32) ? take(&c, 4) : s->gen;
		*h = (struct pd_msg_hdr){
		    .magic = PD_MSG_MAGIC,
		    .version = PD_MSG_VERSION,
		    .flags = (mode & 64) ? (uint16_t)(take(&c, 1) % 8) : PD_MSG_F_RESPONSE,
		    .tenant = (uint16_t)(take(&c, 1) % 8 == 0 ? 1 : 0),
		    .status = (uint16_t)take(&c, 2),
		    .request_id = (uint64_t)gen << 32 | (take(&c, 1) % 8 == 0 ? take(&c, 4) : k),
		    .origin = (uint16_t)(take(&c, 1) % 8 == 0 ? 1 : ORIGIN_ID),
		    .payload_len = take(&c, 2) % BUF_SIZE,
		    .req_meta_len = take(&c, 2) % 256,
		    .resp_meta_len = take(&c, 2) % BUF_SIZE};
	}
	size_t room = BUF_SIZE - PD_MSG_HDR_SIZE;
	size_t fill = take(&c, 2) % room;
	for (size_t i = 0; i < fill && c.n > 0; i++)
		area[PD_MSG_HDR_SIZE + i] = (uint8_t)take(&c, 1);
	/* Response metadata built from the input, placed where the header says it is. */
	if (c.n > 0 && !(mode & 16)) {
		size_t at = (size_t)h->payload_len + h->req_meta_len;
		if (at < room) {
			struct pd_meta_writer w;
			pd_meta_writer_init(&w, area + PD_MSG_HDR_SIZE + at, room - at);
			unsigned count = take(&c, 1) % 8;
			static const char *const known[] = {"content-type", "Content-Length",
			                                    "connection",   "Transfer-Encoding",
			                                    "keep-alive",   "upgrade",
			                                    "X-Upper",      "set-cookie",
			                                    "bad name",     ""};
			for (unsigned i = 0; i < count && c.n > 0; i++) {
				unsigned pick = take(&c, 1);
				size_t nl = take(&c, 1) % 24, vl = take(&c, 1) % 40;
				const char *name;
				if (pick % 2 == 0) {
					name = known[pick / 2 % (sizeof(known) / sizeof(known[0]))];
					nl = strlen(name);
				} else {
					if (nl > c.n)
						nl = c.n;
					name = (const char *)c.d;
					c.d += nl, c.n -= nl;
				}
				if (vl > c.n)
					vl = c.n;
				const char *value = (const char *)c.d;
				c.d += vl, c.n -= vl;
				pd_meta_add(&w, name, nl, value, vl);
			}
			int64_t ml = pd_meta_finish(&w);
			if (ml >= 0 && (mode & 128))
				h->resp_meta_len = (uint32_t)ml;
		}
	}
	size_t len = (mode & 4) ? take(&c, 2) % (BUF_SIZE + 1) : BUF_SIZE;

	rx.state = BUF_POSTED;
	sent_final = false;
	int kept = -1;
	ing_on_response(&ing, &rx, len, &kept);
	if (kept != 0 && kept != 1)
		abort();
	if (kept) {
		/* Answered from the receive buffer: the client's request, sent whole. */
		if (req == NULL || !sent_final || rx.state != BUF_HELD || s->state != SLOT_FREE)
			abort();
		check_headers(req);
	} else if (rx.state != BUF_POSTED) {
		abort(); /* not kept: the caller reposts it, so it must be untouched */
	}
	if (req != NULL) {
		/* h2o is done with the request: the receive buffer comes back. */
		h2o_dispose_request(req);
		free(req);
		if (kept && (rx.state != BUF_FREE || tenant.nfree != 1))
			abort();
		tenant.nfree = 0;
	}
	if (s->state != SLOT_FREE) {
		/* Not answered (a bad or late message): the slot still waits; free it. */
		if (s->req != NULL || (req != NULL && s->ref != NULL))
			abort();
		s->ref = NULL;
		s->req = NULL;
		ing_slot_release(&ing, s);
	}
	if (ing.nfree_slots != NSLOTS || tenant.inflight != 0)
		abort();
	return 0;
}
