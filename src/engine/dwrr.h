/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Deficit weighted round robin over tenants, counted in bytes (Shreedhar & Varghese),
 * with a fast path for sparse tenants (as fq_codel's "new flows").
 *
 * Each backlogged tenant, in turn, gets a quantum proportional to its weight added to
 * its deficit, and sends head-of-queue messages while they fit in the deficit. Only
 * backlogged tenants take turns, so an idle tenant's share goes to the others at once
 * (work-conserving).
 *
 * A tenant that was idle and gets something to send goes ahead of the round: its first
 * message is the next to go, instead of waiting for every backlogged tenant's turn,
 * and it joins the round at the back. That message is charged to its deficit, which may
 * go below zero and is paid back from its next quantum if it stays backlogged. A tenant
 * leaves the round only when its turn finds it empty, and leaves with a clean slate
 * (deficit 0), so a low-rate tenant gets the fast path for every message, not one in
 * two. Forgiving the debt gives nothing away: to take the fast path again a tenant must
 * first leave, and it can leave only through a turn in which it sends nothing, so it
 * sends at most one message per round; a message is at most one quantum of weight 1
 * (quantum_bytes), so it never gets more than its weight's share.
 *
 * The scheduler holds no messages: it asks the caller for the size of a tenant's next
 * message and tells it which tenant sends next.
 */
#ifndef PD_ENGINE_DWRR_H
#define PD_ENGINE_DWRR_H

#include <stdbool.h>
#include <stdint.h>

#define PD_SCHED_MAX 64

struct pd_sched_list {
	uint32_t item[PD_SCHED_MAX]; /* tenant indexes, a ring */
	uint32_t head, count;
};

struct pd_sched {
	uint32_t n;
	int64_t quantum[PD_SCHED_MAX];
	int64_t deficit[PD_SCHED_MAX]; /* below zero: owes its fast-path message */
	bool active[PD_SCHED_MAX];     /* in one of the two lists */
	struct pd_sched_list sparse;   /* woken from idle: one message each, first */
	struct pd_sched_list round;    /* backlogged tenants taking turns */
	bool fresh_turn; /* the tenant at the head of round has not had its quantum yet */
};

/*
 * weights[i] >= 1; quantum_bytes is the quantum of weight 1 (use at least the largest
 * message size, so that every turn sends something).
 */
void pd_sched_init(struct pd_sched *s, uint32_t n, const uint32_t *weights, uint64_t quantum_bytes);

/* Tenant t has something to send now (idempotent). */
void pd_sched_wake(struct pd_sched *s, uint32_t t);

/*
 * Pick the tenant whose head message goes next. head_size(ctx, t) returns the size in
 * bytes of tenant t's next message, or 0 if it has nothing it can send now. Returns the
 * tenant, and charges its deficit with that size (the caller must then send that
 * message), or -1 when no tenant has anything to send.
 */
int pd_sched_next(struct pd_sched *s, uint64_t (*head_size)(void *ctx, uint32_t t), void *ctx);

/* Is a tenant waiting on the fast path (its next message goes before the round's)? */
bool pd_sched_sparse_waiting(const struct pd_sched *s);

/* pd_sched_next() for the fast path only: -1 if no tenant woken from idle can send. */
int pd_sched_next_sparse(struct pd_sched *s, uint64_t (*head_size)(void *ctx, uint32_t t),
                         void *ctx);

#endif
