/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the engine's DWRR scheduler (byte shares by weight, work conservation)
 * and of its transmit pacer (engine.link_rate). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dwrr.h"
#include "engine/pacer.h"
#include "unit.h"

#define QUANTUM 16384

struct sim {
	uint32_t n;
	bool backlogged[PD_SCHED_MAX];
	uint64_t next_size[PD_SCHED_MAX];
	uint64_t min_size[PD_SCHED_MAX], max_size[PD_SCHED_MAX];
	uint64_t bytes[PD_SCHED_MAX];
	uint64_t msgs[PD_SCHED_MAX];
};

static uint64_t draw(struct sim *sm, uint32_t t)
{
	uint64_t span = sm->max_size[t] - sm->min_size[t];
	return sm->min_size[t] + (span ? (uint64_t)rand() % (span + 1) : 0);
}

static uint64_t head_size(void *ctx, uint32_t t)
{
	struct sim *sm = ctx;
	return sm->backlogged[t] ? sm->next_size[t] : 0;
}

static void run(struct pd_sched *s, struct sim *sm, uint64_t sends)
{
	for (uint64_t i = 0; i < sends; i++) {
		int t = pd_sched_next(s, head_size, sm);
		CHECK(t >= 0);
		if (t < 0)
			return;
		CHECK(sm->backlogged[t]);
		sm->bytes[t] += sm->next_size[t];
		sm->msgs[t]++;
		sm->next_size[t] = draw(sm, (uint32_t)t);
	}
}

static void setup(struct pd_sched *s, struct sim *sm, uint32_t n, const uint32_t *w,
                  const uint64_t *lo, const uint64_t *hi)
{
	*sm = (struct sim){.n = n};
	pd_sched_init(s, n, w, QUANTUM);
	for (uint32_t t = 0; t < n; t++) {
		sm->min_size[t] = lo[t];
		sm->max_size[t] = hi[t];
		sm->next_size[t] = draw(sm, t);
		sm->backlogged[t] = true;
		pd_sched_wake(s, t);
	}
}

static double share(const struct sim *sm, uint32_t t)
{
	uint64_t total = 0;
	for (uint32_t i = 0; i < sm->n; i++)
		total += sm->bytes[i];
	return total ? (double)sm->bytes[t] / (double)total : 0;
}

/* Rounds: one round gives every backlogged tenant one turn (sum of weights quanta). */
static uint64_t sends_for_rounds(uint64_t rounds, uint64_t weight_sum, uint64_t msg)
{
	return rounds * weight_sum * QUANTUM / msg;
}

static void test_weights_1_2_4(void)
{
	struct pd_sched s;
	struct sim sm;
	uint32_t w[] = {1, 2, 4};
	uint64_t lo[] = {1024, 1024, 1024}, hi[] = {1024, 1024, 1024};
	setup(&s, &sm, 3, w, lo, hi);
	run(&s, &sm, sends_for_rounds(10000, 7, 1024));
	for (uint32_t t = 0; t < 3; t++)
		CHECK(fabs(share(&sm, t) - w[t] / 7.0) < 0.01 * (w[t] / 7.0));
}

static void test_idle_share_goes_to_others(void)
{
	struct pd_sched s;
	struct sim sm;
	uint32_t w[] = {1, 2, 4};
	uint64_t lo[] = {1024, 1024, 1024}, hi[] = {1024, 1024, 1024};
	setup(&s, &sm, 3, w, lo, hi);
	run(&s, &sm, 1000);
	/* Tenant 2 (the heaviest) goes idle: 0 and 1 split everything 1:2 at once. */
	sm.backlogged[2] = false;
	uint64_t b0 = sm.bytes[0], b1 = sm.bytes[1], b2 = sm.bytes[2];
	run(&s, &sm, sends_for_rounds(10000, 3, 1024));
	double d0 = (double)(sm.bytes[0] - b0), d1 = (double)(sm.bytes[1] - b1);
	CHECK(sm.bytes[2] == b2);
	CHECK(fabs(d0 / (d0 + d1) - 1.0 / 3) < 0.01 / 3);
	CHECK(fabs(d1 / (d0 + d1) - 2.0 / 3) < 0.01 * 2 / 3);
	/* It comes back: shares return to 1:2:4. */
	sm.backlogged[2] = true;
	pd_sched_wake(&s, 2);
	memset(sm.bytes, 0, sizeof(sm.bytes));
	run(&s, &sm, sends_for_rounds(10000, 7, 1024));
	for (uint32_t t = 0; t < 3; t++)
		CHECK(fabs(share(&sm, t) - w[t] / 7.0) < 0.01 * (w[t] / 7.0));
}

static void test_bytes_not_messages(void)
{
	struct pd_sched s;
	struct sim sm;
	uint32_t w[] = {1, 1, 1};
	/* Tiny, large and mixed messages: equal weights must mean equal bytes. */
	uint64_t lo[] = {64, 16384, 64}, hi[] = {64, 16384, 16384};
	setup(&s, &sm, 3, w, lo, hi);
	srand(7);
	run(&s, &sm, 2000000);
	for (uint32_t t = 0; t < 3; t++)
		CHECK(fabs(share(&sm, t) - 1.0 / 3) < 0.01 / 3);
	CHECK(sm.msgs[0] > 100 * sm.msgs[1]); /* many more small messages for the same bytes */
}

static void test_nothing_to_send(void)
{
	struct pd_sched s;
	struct sim sm = {.n = 2};
	uint32_t w[] = {1, 1};
	pd_sched_init(&s, 2, w, QUANTUM);
	CHECK(pd_sched_next(&s, head_size, &sm) == -1);
	pd_sched_wake(&s, 1);
	CHECK(pd_sched_next(&s, head_size, &sm) == -1); /* woken, but its queue is empty */
	sm.backlogged[0] = true;
	sm.next_size[0] = 100;
	pd_sched_wake(&s, 0);
	pd_sched_wake(&s, 0); /* idempotent */
	CHECK(pd_sched_next(&s, head_size, &sm) == 0);
}

/* A tenant woken from idle sends its first message next, ahead of the round, even in
 * the middle of another tenant's turn. */
static void test_sparse_goes_first(void)
{
	struct pd_sched s;
	struct sim sm;
	uint32_t w[] = {1, 1, 1};
	uint64_t lo[] = {4096, 4096, 1024}, hi[] = {4096, 4096, 1024};
	setup(&s, &sm, 3, w, lo, hi);
	sm.backlogged[2] = false;
	run(&s, &sm, 1001); /* tenants 0 and 1 mid-turn (4 messages per quantum) */
	sm.backlogged[2] = true;
	pd_sched_wake(&s, 2);
	CHECK(pd_sched_sparse_waiting(&s));
	CHECK(pd_sched_next(&s, head_size, &sm) == 2);
	CHECK(!pd_sched_sparse_waiting(&s));
	/* Still backlogged: from now on it takes turns in the round like the others. */
	memset(sm.bytes, 0, sizeof(sm.bytes));
	run(&s, &sm, sends_for_rounds(10000, 3, 4096));
	for (uint32_t t = 0; t < 3; t++)
		CHECK(fabs(share(&sm, t) - 1.0 / 3) < 0.01 / 3);
}

/*
 * Tenants 0 and 1 stay backlogged with 4096-byte messages; tenant 2 has one message of
 * `size` bytes whenever it is woken, and none after it was sent. It is woken before every
 * pick, or (only_when_out) only when it has left the round. Returns tenant 2's share of
 * the bytes over 300000 picks.
 */
static double sparse_game(uint64_t size, bool only_when_out)
{
	struct pd_sched s;
	struct sim sm;
	uint32_t w[] = {1, 1, 1};
	uint64_t lo[] = {4096, 4096, size}, hi[] = {4096, 4096, size};
	setup(&s, &sm, 3, w, lo, hi);
	for (int i = 0; i < 300000; i++) {
		if (!only_when_out || !s.active[2]) {
			sm.backlogged[2] = true;
			pd_sched_wake(&s, 2);
		}
		int t = pd_sched_next(&s, head_size, &sm);
		CHECK(t >= 0);
		if (t < 0)
			break;
		sm.bytes[t] += sm.next_size[t];
		if (t == 2)
			sm.backlogged[2] = false; /* one message, then empty */
	}
	return share(&sm, 2);
}

/* A tenant that empties its queue after every message and is woken again at once (the
 * best way to use the fast path) gets no more than its weight's share of the bytes. */
static void test_sparse_cannot_take_more(void)
{
	double sh = sparse_game(4096, false);
	CHECK(sh <= 1.0 / 3 * 1.01);
	CHECK(sh >= 1.0 / 3 * 0.99); /* and all of its share when it wants it */
}

/* A low-rate tenant (one message, then nothing until long after its turn) beside two
 * backlogged ones: every one of its messages is the next to go after it wakes, not only
 * every other one (a debt kept from the last fast-path message would put it at the back
 * of the round instead). */
static void test_sparse_every_time(void)
{
	struct pd_sched s;
	struct sim sm;
	uint32_t w[] = {1, 1, 1};
	uint64_t lo[] = {4096, 4096, 1024}, hi[] = {4096, 4096, 1024};
	setup(&s, &sm, 3, w, lo, hi);
	sm.backlogged[2] = false;
	for (int i = 0; i < 1000; i++) {
		run(&s, &sm, sends_for_rounds(2, 3, 4096)); /* its turn has come and gone */
		CHECK(!s.active[2]);
		sm.backlogged[2] = true;
		pd_sched_wake(&s, 2);
		CHECK(pd_sched_next(&s, head_size, &sm) == 2);
		sm.bytes[2] += sm.next_size[2];
		sm.backlogged[2] = false;
	}
}

/* A tenant that is empty at each of its turns (so it leaves the round) and has a
 * message again right after (so every message takes the fast path) still gets no more
 * than its weight's share: it can leave only through a turn in which it sends nothing,
 * so it sends at most one message per round, and a message is at most a quantum. */
static void test_sparse_leave_and_return(void)
{
	double whole = sparse_game(QUANTUM, true), small = sparse_game(1024, true);
	CHECK(whole <= 1.0 / 3 * 1.01);
	CHECK(whole >= 1.0 / 3 * 0.99); /* a whole quantum per round: all of its share */
	CHECK(small <= 1.0 / 3 * 1.01);
}

/* Over a simulated second of 64 KiB messages sent whenever the pacer allows, the bytes
 * sent match the rate (plus the initial burst), whatever the step of the clock (below
 * the time the bucket takes to fill). */
static void test_pacer_rate(void)
{
	const uint64_t rate = 100u << 20, burst = 200u << 10, msg = 64u << 10;
	const uint64_t steps[] = {1000, 37000, 250000, 1500000}; /* < burst / rate */
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct pd_pacer p;
		uint64_t now = 5000000000ull, sent = 0;
		pd_pacer_init(&p, rate, burst, now);
		for (uint64_t end = now + 1000000000ull; now < end; now += steps[k])
			while (pd_pacer_ready(&p, now)) {
				pd_pacer_charge(&p, msg);
				sent += msg;
			}
		double want = (double)(rate + burst);
		CHECK(fabs((double)sent - want) <= (double)(msg + burst));
	}
}

/* The wait the pacer announces is when it becomes ready: not earlier, not much later. */
static void test_pacer_wait(void)
{
	struct pd_pacer p;
	uint64_t now = 1000;
	pd_pacer_init(&p, 1000000, 1000, now); /* 1 byte per microsecond */
	CHECK(pd_pacer_ready(&p, now));
	CHECK(pd_pacer_wait_ns(&p, now) == 0);
	pd_pacer_charge(&p, 5000); /* 4000 bytes in debt */
	CHECK(!pd_pacer_ready(&p, now));
	uint64_t w = pd_pacer_wait_ns(&p, now);
	CHECK(w >= 4000000 && w <= 4002000);
	CHECK(!pd_pacer_ready(&p, now + w - 2000));
	CHECK(pd_pacer_ready(&p, now + w));
}

/* Rate 0: no cap at all. */
static void test_pacer_off(void)
{
	struct pd_pacer p;
	pd_pacer_init(&p, 0, 0, 0);
	for (int i = 0; i < 1000; i++) {
		CHECK(pd_pacer_ready(&p, 0));
		pd_pacer_charge(&p, 1u << 30);
	}
	CHECK(pd_pacer_wait_ns(&p, 0) == 0);
}

int main(void)
{
	RUN(test_weights_1_2_4);
	RUN(test_idle_share_goes_to_others);
	RUN(test_bytes_not_messages);
	RUN(test_nothing_to_send);
	RUN(test_sparse_goes_first);
	RUN(test_sparse_cannot_take_more);
	RUN(test_sparse_every_time);
	RUN(test_sparse_leave_and_return);
	RUN(test_pacer_rate);
	RUN(test_pacer_wait);
	RUN(test_pacer_off);
	return SUMMARY("sched");
}
