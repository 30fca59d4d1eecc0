/* SPDX-License-Identifier: Apache-2.0 */
/* Deficit weighted round robin over tenants, in bytes, with a sparse-tenant fast path. */
#include "engine/dwrr.h"

#include <string.h>

void pd_sched_init(struct pd_sched *s, uint32_t n, const uint32_t *weights, uint64_t quantum_bytes)
{
	memset(s, 0, sizeof(*s));
	s->n = n > PD_SCHED_MAX ? PD_SCHED_MAX : n;
	if (quantum_bytes > (uint64_t)INT32_MAX)
		quantum_bytes = INT32_MAX; /* times a weight <= 1000: far from overflow */
	for (uint32_t i = 0; i < s->n; i++)
		s->quantum[i] =
		    (int64_t)(weights[i] == 0 ? 1 : weights[i]) * (int64_t)quantum_bytes;
	s->fresh_turn = true;
}

static void list_push(struct pd_sched_list *l, uint32_t t)
{
	l->item[(l->head + l->count) % PD_SCHED_MAX] = t;
	l->count++;
}

static uint32_t list_pop(struct pd_sched_list *l)
{
	uint32_t t = l->item[l->head];
	l->head = (l->head + 1) % PD_SCHED_MAX;
	l->count--;
	return t;
}

/* Into the round, at its end. */
static void join_round(struct pd_sched *s, uint32_t t)
{
	list_push(&s->round, t);
	if (s->round.count == 1)
		s->fresh_turn = true;
}

void pd_sched_wake(struct pd_sched *s, uint32_t t)
{
	if (t >= s->n || s->active[t])
		return;
	s->active[t] = true;
	list_push(&s->sparse, t);
}

bool pd_sched_sparse_waiting(const struct pd_sched *s)
{
	return s->sparse.count > 0;
}

/* The tenant at the head of the round ends its turn: to the back if still backlogged,
 * else out of the round with a clean slate (see dwrr.h for why a debt can go). */
static void end_turn(struct pd_sched *s, bool backlogged)
{
	uint32_t t = list_pop(&s->round);
	if (backlogged) {
		list_push(&s->round, t);
	} else {
		s->active[t] = false;
		s->deficit[t] = 0;
	}
	s->fresh_turn = true;
}

int pd_sched_next_sparse(struct pd_sched *s, uint64_t (*head_size)(void *ctx, uint32_t t),
                         void *ctx)
{
	/* One message of each tenant woken from idle, then into the round (also when it has
	 * nothing after all: the round is where a tenant leaves). */
	while (s->sparse.count > 0) {
		uint32_t t = list_pop(&s->sparse);
		uint64_t size = head_size(ctx, t);
		join_round(s, t);
		if (size > 0) {
			s->deficit[t] -= (int64_t)size;
			return (int)t;
		}
	}
	return -1;
}

int pd_sched_next(struct pd_sched *s, uint64_t (*head_size)(void *ctx, uint32_t t), void *ctx)
{
	int sparse = pd_sched_next_sparse(s, head_size, ctx);
	if (sparse >= 0)
		return sparse;
	/* Each pass either sends or ends a turn; a turn that ends adds a quantum, so within
	 * a bounded number of passes some tenant can send. */
	for (uint32_t guard = 0; s->round.count > 0 && guard < 4 * PD_SCHED_MAX + 64; guard++) {
		uint32_t t = s->round.item[s->round.head];
		uint64_t size = head_size(ctx, t);
		if (size == 0) {
			end_turn(s, false);
			continue;
		}
		if (s->fresh_turn) {
			s->deficit[t] += s->quantum[t];
			s->fresh_turn = false;
		}
		if ((int64_t)size <= s->deficit[t]) {
			s->deficit[t] -= (int64_t)size;
			return (int)t;
		}
		end_turn(s, true);
	}
	return -1;
}
