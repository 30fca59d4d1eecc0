// SPDX-License-Identifier: Apache-2.0
/* The adaptive waiting policy's decisions, fed with a simulated clock. */
#include "shm/waiter.h"
#include "unit.h"

#include <stdlib.h>

#define US 1000u
#define MS 1000000u
#define MAX_POLL (200 * US)
#define WAKE (25 * US) /* what a wake-up from a blocked wait costs on this VM */
#define STEP (1 * US)  /* one look at the rings / completion queues */

/* What one idle spell cost, in the simulation. */
struct spell {
	uint64_t polled; /* ns spent polling */
	bool blocked;
};

/* The consumer goes idle at *now; work arrives gap ns later. Returns what the wait cost
 * and leaves *now at the moment the consumer sees the work. */
static struct spell idle_spell(struct pd_waiter *w, uint64_t *now, uint64_t gap)
{
	struct spell s = {0};
	uint64_t start = *now, arrival = start + gap;
	for (;;) {
		if (*now >= arrival) {
			pd_waiter_work(w, *now);
			return s;
		}
		if (pd_waiter_idle(w, *now) == PD_WAIT_BLOCK) {
			s.blocked = true;
			*now = arrival + WAKE;
			pd_waiter_work(w, *now);
			return s;
		}
		s.polled += STEP;
		*now += STEP;
	}
}

#define SHARED (25 * US)     /* a saved wake-up's worth on a shared core: its own cost */
#define DEDICATED (400 * US) /* ... on a core that is the consumer's own */

static struct pd_waiter make_valued(uint64_t max_poll, uint64_t wake_value)
{
	struct pd_waiter w;
	struct pd_waiter_attr attr = {
	    .max_poll_ns = max_poll, .wake_ns = WAKE, .wake_value_ns = wake_value};
	pd_waiter_init(&w, &attr);
	return w;
}

static struct pd_waiter make(uint64_t max_poll)
{
	return make_valued(max_poll, SHARED);
}

/* max_poll 0 is the sleeping mode: every idle spell blocks at once. */
static void test_no_poll_blocks_at_once(void)
{
	struct pd_waiter w = make(0);
	uint64_t now = 1;
	for (int i = 0; i < 100; i++) {
		struct spell s = idle_spell(&w, &now, (uint64_t)(i % 7) * US);
		CHECK(s.polled == 0);
		CHECK(s.blocked || i % 7 == 0);
	}
	CHECK(pd_waiter_budget(&w) == 0);
}

/* Dense arrivals (every 10 us): every spell is caught by polling, no wake-ups. */
static void test_dense_load_polls(void)
{
	struct pd_waiter w = make(MAX_POLL);
	uint64_t now = 0;
	for (int i = 0; i < 50; i++)
		idle_spell(&w, &now, 10 * US);
	int blocked = 0;
	for (int i = 0; i < 1000; i++)
		blocked += idle_spell(&w, &now, 10 * US).blocked;
	CHECK(blocked == 0);
	CHECK(pd_waiter_budget(&w) >= 10 * US);
	CHECK(pd_waiter_budget(&w) <= MAX_POLL);
}

/* Sparse arrivals (every 5 ms, far beyond the most worth polling): block at once, so
 * an idle consumer burns nothing. A fixed spin would poll 200 us for every message. */
static void test_sparse_load_blocks_at_once(void)
{
	struct pd_waiter w = make(MAX_POLL);
	uint64_t now = 0;
	for (int i = 0; i < 50; i++)
		idle_spell(&w, &now, 5 * MS);
	uint64_t polled = 0;
	for (int i = 0; i < 1000; i++)
		polled += idle_spell(&w, &now, 5 * MS).polled;
	CHECK(polled == 0);
	CHECK(pd_waiter_budget(&w) == 0);
}

/* The load changes: the policy follows within a few arrivals, both ways. */
static void test_follows_load_changes(void)
{
	struct pd_waiter w = make(MAX_POLL);
	uint64_t now = 0;
	for (int i = 0; i < 200; i++)
		idle_spell(&w, &now, 5 * MS);
	CHECK(pd_waiter_budget(&w) == 0);
	/* Dense again: the wake-ups' own gaps (gap + wake-up) bring polling back. */
	int first_win = -1;
	for (int i = 0; i < 100 && first_win < 0; i++)
		if (!idle_spell(&w, &now, 5 * US).blocked)
			first_win = i;
	CHECK(first_win >= 0 && first_win < 40);
	int blocked = 0;
	for (int i = 0; i < 100; i++)
		blocked += idle_spell(&w, &now, 5 * US).blocked;
	CHECK(blocked == 0);
	/* Sparse again: polling stops within a few arrivals. */
	int last_poll = -1;
	for (int i = 0; i < 100; i++)
		if (idle_spell(&w, &now, 5 * MS).polled > 0)
			last_poll = i;
	CHECK(last_poll < 40);
	CHECK(pd_waiter_budget(&w) == 0);
}

/* Whatever the gaps, no spell polls longer than max_poll. */
static void test_budget_never_exceeds_max(void)
{
	struct pd_waiter w = make(MAX_POLL);
	uint64_t now = 0;
	srand(7);
	for (int i = 0; i < 20000; i++) {
		uint64_t gap = (uint64_t)(rand() % 400) * US;
		CHECK(pd_waiter_budget(&w) <= MAX_POLL);
		struct spell s = idle_spell(&w, &now, gap);
		CHECK(s.polled <= MAX_POLL);
	}
}

/* mixed_gaps: half 20 us, half 2 ms. Returns the time polled in vain per arrival (ns) and
 * the share of dense arrivals caught by polling. */
static void mixed_gaps(struct pd_waiter *w, double *lost_per_arrival, double *dense_caught)
{
	uint64_t now = 0, lost = 0, dense = 0, dense_won = 0;
	srand(11);
	for (int i = 0; i < 20000; i++) {
		bool is_dense = rand() % 2 == 0;
		struct spell s = idle_spell(w, &now, is_dense ? 20 * US : 2 * MS);
		if (s.blocked)
			lost += s.polled; /* polled, then blocked anyway */
		if (is_dense) {
			dense++;
			dense_won += !s.blocked;
		}
	}
	CHECK(w->stats.poll_wins == dense_won);
	CHECK(w->stats.arrivals == 20000);
	*lost_per_arrival = (double)lost / 20000;
	*dense_caught = (double)dense_won / (double)dense;
}

/* Gaps that straddle any budget. A fixed 200 us spin polls 100 us in vain per arrival.
 * On a shared core a wake-up saved is not worth polling half the time for nothing: the
 * waiter blocks. On a core of its own it polls just past the dense gaps: it catches them
 * and loses little on the sparse ones. */
static void test_mixed_gaps(void)
{
	double lost, caught;
	struct pd_waiter shared = make(MAX_POLL);
	mixed_gaps(&shared, &lost, &caught);
	printf("  shared core: %.1f us polled in vain per arrival, %.0f%% of dense caught\n",
	       lost / US, 100 * caught);
	CHECK(lost < 5 * US);

	struct pd_waiter own = make_valued(MAX_POLL, DEDICATED);
	mixed_gaps(&own, &lost, &caught);
	printf("  own core: %.1f us polled in vain per arrival, %.0f%% of dense caught\n",
	       lost / US, 100 * caught);
	CHECK(caught > 0.9);
	CHECK(lost < 40 * US);
}

/* fixed: every idle spell polls max_poll, whatever the gaps (the old fixed spin). */
static void test_fixed_polls_every_spell(void)
{
	struct pd_waiter w;
	struct pd_waiter_attr attr = pd_waiter_attr_default(MAX_POLL, false);
	attr.fixed = true;
	pd_waiter_init(&w, &attr);
	uint64_t now = 0;
	for (int i = 0; i < 100; i++) {
		struct spell s = idle_spell(&w, &now, 5 * MS);
		CHECK(s.blocked);
		CHECK(s.polled == MAX_POLL);
	}
	CHECK(pd_waiter_budget(&w) == MAX_POLL);
}

/* The hops of a request come close together, then nothing until the next request: gaps
 * alternate 20 ms / 40 us. The spell after a long gap polls and catches the next hop; the
 * spell after the short one sleeps at once. A single histogram (P(short) = 1/2) polls for
 * none of them. */
static void test_request_pattern(void)
{
	struct pd_waiter w;
	struct pd_waiter_attr attr = pd_waiter_attr_default(MAX_POLL, false); /* as in use */
	pd_waiter_init(&w, &attr);
	uint64_t now = 0;
	for (int i = 0; i < 200; i++)
		idle_spell(&w, &now, i % 2 ? 40 * US : 20 * MS);
	int short_caught = 0;
	uint64_t vain = 0;
	for (int i = 0; i < 1000; i++) {
		bool is_short = i % 2;
		struct spell s = idle_spell(&w, &now, is_short ? 40 * US : 20 * MS);
		if (is_short)
			short_caught += !s.blocked;
		else
			vain += s.polled;
	}
	printf("  request pattern: %d of 500 short gaps caught polling, %.1f us polled in vain per "
	       "long gap\n",
	       short_caught, (double)vain / 500 / US);
	CHECK(short_caught == 500);
	CHECK(vain == 0);
}

/* Stats account for every spell. */
static void test_stats(void)
{
	struct pd_waiter w = make(MAX_POLL);
	uint64_t now = 0;
	for (int i = 0; i < 100; i++)
		idle_spell(&w, &now, 10 * US);
	CHECK(w.stats.arrivals == 100);
	CHECK(w.stats.poll_wins + w.stats.blocks >= 100);
	/* Busy: work found without an idle spell in between is not an arrival. */
	pd_waiter_work(&w, now);
	pd_waiter_work(&w, now + 1);
	CHECK(w.stats.arrivals == 100);
}

int main(void)
{
	RUN(test_no_poll_blocks_at_once);
	RUN(test_dense_load_polls);
	RUN(test_sparse_load_blocks_at_once);
	RUN(test_follows_load_changes);
	RUN(test_budget_never_exceeds_max);
	RUN(test_mixed_gaps);
	RUN(test_request_pattern);
	RUN(test_fixed_polls_every_spell);
	RUN(test_stats);
	return SUMMARY("test_waiter");
}
