// SPDX-License-Identifier: Apache-2.0
/* The adaptive waiting policy (see waiter.h). */
#include "shm/waiter.h"

#include <string.h>

#define US 1000u

/* Upper bound of bucket i in ns (the last bucket has none). */
static uint64_t bucket_top(unsigned i)
{
	return (uint64_t)US << i;
}

static unsigned bucket_of(uint64_t gap)
{
	unsigned i = 0;
	while (i + 1 < PD_WAITER_BUCKETS && gap > bucket_top(i))
		i++;
	return i;
}

/* The budget that maximises wake_value x hits - time polled, over one histogram. */
static uint64_t plan(const struct pd_waiter *w, const uint32_t *hist)
{
	uint64_t max = w->attr.max_poll_ns;
	uint64_t total = 0;
	for (unsigned i = 0; i < PD_WAITER_BUCKETS; i++)
		total += hist[i];
	if (max == 0 || total == 0 || w->attr.fixed)
		return max; /* nothing seen yet: poll as much as allowed, to learn */

	/* Candidates: each bucket's top, capped at max. A gap in bucket i costs about 3/4
	 * of the bucket's top when caught. */
	double best_value = 0.0;
	uint64_t best = 0;
	double hits = 0.0, caught_cost = 0.0;
	for (unsigned k = 0; k + 1 < PD_WAITER_BUCKETS; k++) {
		uint64_t b = bucket_top(k) < max ? bucket_top(k) : max;
		hits += hist[k];
		caught_cost += (double)hist[k] * 0.75 * (double)b; /* b: this bucket's top */
		double misses = (double)total - hits;
		double value =
		    (double)w->attr.wake_value_ns * hits - caught_cost - misses * (double)b;
		if (value > best_value) {
			best_value = value;
			best = b;
		}
		if (b == max)
			break;
	}
	return best;
}

void pd_waiter_init(struct pd_waiter *w, const struct pd_waiter_attr *attr)
{
	memset(w, 0, sizeof(*w));
	w->attr = *attr;
	w->plans[0] = w->plans[1] = plan(w, w->hist[0]);
	w->budget = w->plans[0];
}

void pd_waiter_work(struct pd_waiter *w, uint64_t now)
{
	if (!w->idle)
		return; /* still busy: no gap */
	uint64_t gap = now > w->idle_since ? now - w->idle_since : 0;
	w->stats.arrivals++;
	if (w->blocked) {
		/* The wake-up's own delay is not part of the gap. */
		gap = gap > w->attr.wake_ns ? gap - w->attr.wake_ns : 0;
		/* It came after the budget it was polled for, or polling would have caught it. */
		if (gap <= w->budget)
			gap = w->budget + 1;
	} else {
		w->stats.poll_wins++;
		w->stats.polled_ns += gap;
	}
	w->hist[w->after_short][bucket_of(gap)]++;
	w->after_short = gap <= w->attr.max_poll_ns;
	if (++w->since_decay >= PD_WAITER_DECAY) {
		w->since_decay = 0;
		for (unsigned i = 0; i < PD_WAITER_BUCKETS; i++) {
			w->hist[0][i] /= 2;
			w->hist[1][i] /= 2;
		}
	}
	if (++w->since_plan >= PD_WAITER_REPLAN) {
		w->since_plan = 0;
		w->plans[0] = plan(w, w->hist[0]);
		w->plans[1] = plan(w, w->hist[1]);
	}
	w->idle = false;
	w->blocked = false;
}

enum pd_wait pd_waiter_idle(struct pd_waiter *w, uint64_t now)
{
	if (!w->idle) {
		w->idle = true;
		w->blocked = false;
		w->idle_since = now;
		w->budget = w->plans[w->after_short];
	}
	if (!w->blocked) {
		uint64_t spent = now > w->idle_since ? now - w->idle_since : 0;
		if (spent < w->budget)
			return PD_WAIT_POLL;
		if (w->budget > 0) {
			w->stats.poll_loses++; /* polled the whole budget for nothing */
			w->stats.polled_ns += spent;
		}
		w->blocked = true;
	}
	w->stats.blocks++;
	return PD_WAIT_BLOCK;
}
