/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test function that misbehaves on request, to test the platform's defences. The
 * first word of the body picks the behaviour:
 *   crash    - dies of SIGSEGV while holding the request
 *   hang     - never returns
 *   error    - answers 418 with the message "teapot"
 *   fail     - returns -1 without setting an error (500)
 *   garbage  - pushes forged descriptors and headers to the engine, then answers "ok"
 *   big      - answers more than the buffer holds (must become 413)
 *   headers  - sets a response header "x-test: 1" and answers "ok"
 *   scribble N - N rounds (at most 100000) of `garbage` plus random 64-bit words written
 *              over its own inbound ring and its tenant's engine-bound ring (indexes,
 *              sleeper count and cells), and at last leaves the engine-bound ring
 *              looking non-empty with nothing that can be popped (the consumer's worst
 *              case); answers "ok" - an answer that may never arrive: the function has
 *              wrecked its own tenant's way out
 *   anything else - echoes the body
 * It includes the runtime's source to reach its private state for `garbage`.
 */
#include "../../src/runtime/runtime.c"

#include <signal.h>

static void forge(void)
{
	struct pd_pool *pool = &rt.pool;
	/* 1. Indexes out of range. */
	pd_ring_push(&pool->engine_ring, pool->nbuffers);
	pd_ring_push(&pool->engine_ring, UINT64_MAX);
	pd_ring_push(&pool->engine_ring, 1ull << 40);
	/* 2. A free buffer (wrong state). */
	uint32_t idx;
	if (pd_pool_alloc(pool, rt.cfg.slot, &idx) == 0) {
		pd_pool_free(pool, idx);
		pd_ring_push(&pool->engine_ring, idx);
	}
	/* 3. Right state, garbage header. */
	if (pd_pool_alloc(pool, rt.cfg.slot, &idx) == 0) {
		memset(pd_pool_buf(pool, idx), 0xa5, 256);
		to_engine(idx);
	}
	/* 4. Right magic, lengths past the end of the buffer. */
	if (pd_pool_alloc(pool, rt.cfg.slot, &idx) == 0) {
		struct pd_msg_hdr *h = pd_pool_buf(pool, idx);
		memset(h, 0, sizeof(*h));
		h->magic = PD_MSG_MAGIC;
		h->version = PD_MSG_VERSION;
		h->flags = PD_MSG_F_RESPONSE;
		h->tenant = rt.cfg.tenant;
		h->payload_len = pool->attr.buffer_size;
		to_engine(idx);
	}
	/* 5. Another tenant's id and an unknown route. */
	if (pd_pool_alloc(pool, rt.cfg.slot, &idx) == 0) {
		struct pd_msg_hdr *h = pd_pool_buf(pool, idx);
		memset(h, 0, sizeof(*h));
		h->magic = PD_MSG_MAGIC;
		h->version = PD_MSG_VERSION;
		h->flags = PD_MSG_F_REQUEST;
		h->tenant = (uint16_t)(rt.cfg.tenant + 1);
		h->route = 0xffff;
		to_engine(idx);
	}
	/* 6. The same descriptor twice. */
	if (pd_pool_alloc(pool, rt.cfg.slot, &idx) == 0) {
		memset(pd_pool_buf(pool, idx), 0, 64);
		to_engine(idx);
		pd_ring_push(&pool->engine_ring, idx);
		pd_ring_notify(&pool->engine_ring, rt.engine_efd);
	}
}

/* Random words over a ring's shared memory: its indexes, sleeper count and cells. */
static void scribble_ring(struct pd_ring *r, uint64_t *rng)
{
	size_t words = pd_ring_footprint(r->mask + 1) / sizeof(uint64_t);
	_Atomic uint64_t *mem = (_Atomic uint64_t *)(void *)r->sh;
	for (int k = 0; k < 4; k++) {
		*rng ^= *rng << 13;
		*rng ^= *rng >> 7;
		*rng ^= *rng << 17;
		/* Aim at the indexes half of the time: they are what a consumer trusts most. */
		size_t at = (k & 1) ? (*rng >> 32) % words : ((*rng >> 32) % 3) * 8;
		atomic_store_explicit(&mem[at], *rng, memory_order_relaxed);
	}
}

static void scribble(unsigned long rounds)
{
	uint64_t rng = pd_now_ns() | 1;
	if (rounds > 100000)
		rounds = 100000;
	for (unsigned long i = 0; i < rounds; i++) {
		forge();
		scribble_ring(&rt.pool.inst_ring[rt.cfg.slot], &rng);
		scribble_ring(&rt.pool.engine_ring, &rng);
		pd_ring_notify(&rt.pool.engine_ring, rt.engine_efd);
		if (i % 64 == 63) {
			/* Spread the noise over time, so that it overlaps other tenants' work. */
			struct timespec pause_ts = {0, 1000000};
			nanosleep(&pause_ts, NULL);
		}
	}
	/* The ring layout (ring.c): enqueue_pos in the first word, dequeue_pos 64 bytes on.
	 * One slot "filled" whose cell never says so. */
	_Atomic uint64_t *pos = (_Atomic uint64_t *)(void *)rt.pool.engine_ring.sh;
	uint64_t head = atomic_load(&pos[8]);
	atomic_store(&pos[0], head + 1);
	pd_ring_notify(&rt.pool.engine_ring, rt.engine_efd);
}

static bool starts(const char *body, size_t n, const char *word)
{
	size_t k = strlen(word);
	return n >= k && memcmp(body, word, k) == 0;
}

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	size_t n;
	const char *in = pd_request_body(req, &n);
	if (starts(in, n, "crash"))
		raise(SIGSEGV);
	if (starts(in, n, "hang"))
		for (;;)
			pause();
	if (starts(in, n, "error"))
		return pd_response_error(res, 418, "teapot");
	if (starts(in, n, "fail"))
		return -1;
	if (starts(in, n, "garbage")) {
		forge();
		return pd_response_append(res, "ok", 2);
	}
	if (starts(in, n, "big")) {
		if (pd_response_reserve(res, pd_response_capacity(res) + 1) == NULL)
			return pd_response_error(res, 413, "answer too large\n");
		return 0;
	}
	if (starts(in, n, "scribble")) {
		char num[24] = "";
		size_t k = n - 8 < sizeof(num) - 1 ? n - 8 : sizeof(num) - 1;
		memcpy(num, in + 8, k);
		scribble(strtoul(num, NULL, 10));
		return pd_response_append(res, "ok", 2);
	}
	if (starts(in, n, "headers")) {
		pd_response_set_header(res, "x-test", "1");
		return pd_response_append(res, "ok", 2);
	}
	return pd_response_append(res, in, n);
}

int main(int argc, char **argv)
{
	return pd_serve(argc, argv, handle, NULL);
}
