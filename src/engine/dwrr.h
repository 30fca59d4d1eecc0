/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Deficit weighted round robin over tenants, counted in bytes (Shreedhar & Varghese).
 * Each backlogged tenant, in turn, gets a quantum proportional to its weight added to
 * its deficit, and sends head-of-queue messages while they fit in the deficit. Only
 * backlogged tenants take turns, so an idle tenant's share goes to the others at once
 * (work-conserving). The scheduler holds no messages: it asks the caller for the size
 * of a tenant's next message and tells it which tenant sends next.
 */
#ifndef PD_ENGINE_DWRR_H
#define PD_ENGINE_DWRR_H

#include <stdbool.h>
#include <stdint.h>

#define PD_SCHED_MAX 64

struct pd_sched {
	uint32_t n;
	uint64_t quantum[PD_SCHED_MAX];
	uint64_t deficit[PD_SCHED_MAX];
	bool active[PD_SCHED_MAX];
	/* Active tenants in round-robin order: a ring of indexes. */
	uint32_t ring[PD_SCHED_MAX];
	uint32_t head, count;
	bool fresh_turn; /* the tenant at head has not had its quantum this turn */
};

/*
 * weights[i] >= 1; quantum_bytes is the quantum of weight 1 (use at least the largest
 * message size, so that every turn sends something).
 */
void pd_sched_init(struct pd_sched *s, uint32_t n, const uint32_t *weights,
		   uint64_t quantum_bytes);

/* Tenant t has something to send now (idempotent). */
void pd_sched_wake(struct pd_sched *s, uint32_t t);

/*
 * Pick the tenant whose head message goes next. head_size(ctx, t) returns the size in
 * bytes of tenant t's next message, or 0 if its queue is empty. Returns the tenant, and
 * charges its deficit with that size (the caller must then send that message), or -1
 * when no tenant has anything to send.
 */
int pd_sched_next(struct pd_sched *s, uint64_t (*head_size)(void *ctx, uint32_t t), void *ctx);

#endif
