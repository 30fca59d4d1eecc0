/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How a consumer (the engine's loop, a function's worker, a handler waiting for replies)
 * waits for work: an adaptive policy, pure (no clock reads, no system calls), fed with
 * the caller's clock so that its decisions can be tested.
 *
 * Polling after the last message wins when the next one comes within the poll (no
 * wake-up: ~25 us of latency and two context switches on this VM), and burns CPU for
 * nothing when it does not. A fixed spin picks one point on that trade-off; the best
 * point moves with the load. The waiter keeps a decaying histogram of the idle gaps that
 * preceded arrivals (log2 buckets from 1 us to max_poll) and, every few arrivals, picks
 * the poll budget b that maximises
 *
 *     wake_value x P(gap <= b)  -  E[min(gap, b)]
 *
 * (what the saved wake-ups are worth, less the time polled), or 0 (block at once) when
 * no budget is worth its polling. wake_value is what one saved wake-up is worth in ns of
 * polling: about its cost on a shared core, much more on a core that is the consumer's
 * own (a DPU core, a pinned host core), where polling takes nothing from anybody.
 *
 * An arrival that found the consumer blocked is recorded as its gap less wake_ns (the
 * wake-up's own delay), so a load that becomes dense turns polling back on.
 *
 * Gaps come in patterns: the hops of one request follow each other closely, then nothing
 * comes until the next request. So the waiter keeps two histograms, one for the gaps that
 * follow a short gap (<= max_poll) and one for those that follow a long one, and each
 * idle spell gets the budget planned for what the previous gap was: a request that
 * arrives after a long silence makes the consumer poll for the next hop of it, the last
 * hop makes it sleep at once.
 *
 * Usage, by one thread:
 *
 *   for (;;) {
 *       if (found work)                { pd_waiter_work(&w, now); continue; }
 *       if (pd_waiter_idle(&w, now) == PD_WAIT_POLL) { pd_cpu_relax(); continue; }
 *       block on the fds (announcing the sleep first, e.g. pd_ring_sleep_begin);
 *   }
 */
#ifndef PD_SHM_WAITER_H
#define PD_SHM_WAITER_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "shm/ring.h"

enum pd_wait {
	PD_WAIT_POLL,  /* look again (after a CPU relax hint) */
	PD_WAIT_BLOCK, /* sleep on the fds until woken */
};

struct pd_waiter_attr {
	uint64_t max_poll_ns;   /* the most one idle spell polls; 0: always block at once */
	uint64_t wake_ns;       /* the delay of a wake-up from a blocked wait */
	uint64_t wake_value_ns; /* what one saved wake-up is worth, in ns of polling */
	bool own_core;          /* the core is the consumer's own: pause, never yield */
	bool fixed;             /* poll every idle spell for max_poll_ns (the policy before
	                           this one, kept to measure against) */
};

/* A wake-up's delay on this kind of VM (docs/fabric.md: 25-30 us), the default. */
#define PD_WAITER_WAKE_NS 25000u
/* What a saved wake-up is worth, in wake-ups' time of polling: on a shared core (its
 * latency and the CPU of the sleep and wake-up it saves), and on a core of its own. */
#ifndef PD_WAITER_SHARED_VALUE
#define PD_WAITER_SHARED_VALUE 4u
#endif
#define PD_WAITER_OWN_CORE_VALUE 16u

/* The attributes for a consumer that polls at most max_poll_ns, on a shared core or on
 * one of its own. */
static inline struct pd_waiter_attr pd_waiter_attr_default(uint64_t max_poll_ns, bool own_core)
{
	return (struct pd_waiter_attr){
	    .max_poll_ns = max_poll_ns,
	    .fixed = false,
	    .wake_ns = PD_WAITER_WAKE_NS,
	    .wake_value_ns =
	        (own_core ? PD_WAITER_OWN_CORE_VALUE : PD_WAITER_SHARED_VALUE) * PD_WAITER_WAKE_NS,
	    .own_core = own_core,
	};
}

struct pd_waiter_stats {
	uint64_t arrivals;   /* work found after an idle spell */
	uint64_t poll_wins;  /* ... while polling: a wake-up saved */
	uint64_t poll_loses; /* spells that polled their whole budget, then blocked */
	uint64_t blocks;     /* times the caller was told to block */
	uint64_t polled_ns;  /* time spent polling idle spells */
};

/* Buckets: gap <= 1 us, <= 2 us, ..., <= 2^(N-2) us, and beyond. */
#define PD_WAITER_BUCKETS 20
/* The budget is chosen again after this many arrivals; the histogram halves after
 * PD_WAITER_DECAY of them. */
#define PD_WAITER_REPLAN 4
#define PD_WAITER_DECAY 16

struct pd_waiter {
	struct pd_waiter_attr attr;
	bool idle;           /* in an idle spell (nothing found since the last work) */
	bool blocked;        /* the current spell ended in a block */
	uint64_t idle_since; /* start of the current idle spell */
	uint64_t budget;     /* the poll budget of the current idle spell, ns */
	uint8_t after_short; /* the previous gap was short (<= max_poll): 1, else 0 */
	uint32_t since_plan; /* arrivals since the budgets were chosen */
	uint32_t since_decay;
	uint64_t plans[2];                   /* budgets after a long / after a short gap */
	uint32_t hist[2][PD_WAITER_BUCKETS]; /* gaps after a long / after a short gap */
	struct pd_waiter_stats stats;
};

void pd_waiter_init(struct pd_waiter *w, const struct pd_waiter_attr *attr);

/* The consumer found work at now (ns, any monotonic clock). */
void pd_waiter_work(struct pd_waiter *w, uint64_t now);

/* The consumer looked and found nothing at now: poll again, or block. */
enum pd_wait pd_waiter_idle(struct pd_waiter *w, uint64_t now);

/* Between two polls: a pause on a core of its own; on a shared core, let a process that
 * has work (perhaps the very producer this consumer waits for) have the core. */
static inline void pd_waiter_relax(const struct pd_waiter *w)
{
	if (w->attr.own_core)
		pd_cpu_relax();
	else
		sched_yield();
}

/* The poll budget an idle spell starting now gets, ns. */
static inline uint64_t pd_waiter_budget(const struct pd_waiter *w)
{
	return w->plans[w->after_short];
}

#endif
