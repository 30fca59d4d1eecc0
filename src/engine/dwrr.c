/* SPDX-License-Identifier: Apache-2.0 */
/* Deficit weighted round robin over tenants, in bytes. */
#include "engine/dwrr.h"

#include <string.h>

void pd_sched_init(struct pd_sched *s, uint32_t n, const uint32_t *weights,
		   uint64_t quantum_bytes)
{
	memset(s, 0, sizeof(*s));
	s->n = n > PD_SCHED_MAX ? PD_SCHED_MAX : n;
	for (uint32_t i = 0; i < s->n; i++)
		s->quantum[i] = (uint64_t)(weights[i] == 0 ? 1 : weights[i]) * quantum_bytes;
	s->fresh_turn = true;
}

void pd_sched_wake(struct pd_sched *s, uint32_t t)
{
	if (t >= s->n || s->active[t])
		return;
	s->active[t] = true;
	s->deficit[t] = 0;
	s->ring[(s->head + s->count) % PD_SCHED_MAX] = t;
	s->count++;
	if (s->count == 1)
		s->fresh_turn = true;
}

/* The tenant at head ends its turn: to the back if still backlogged, else out. */
static void end_turn(struct pd_sched *s, bool backlogged)
{
	uint32_t t = s->ring[s->head];
	s->head = (s->head + 1) % PD_SCHED_MAX;
	s->count--;
	if (backlogged) {
		s->ring[(s->head + s->count) % PD_SCHED_MAX] = t;
		s->count++;
	} else {
		s->active[t] = false;
		s->deficit[t] = 0; /* an idle tenant keeps no credit for later */
	}
	s->fresh_turn = true;
}

int pd_sched_next(struct pd_sched *s, uint64_t (*head_size)(void *ctx, uint32_t t), void *ctx)
{
	/* Each pass either sends or ends a turn; a turn that ends adds a quantum, so within
	 * a bounded number of passes some tenant can send. */
	for (uint32_t guard = 0; s->count > 0 && guard < 4 * PD_SCHED_MAX + 64; guard++) {
		uint32_t t = s->ring[s->head];
		uint64_t size = head_size(ctx, t);
		if (size == 0) {
			end_turn(s, false);
			continue;
		}
		if (s->fresh_turn) {
			s->deficit[t] += s->quantum[t];
			s->fresh_turn = false;
		}
		if (size <= s->deficit[t]) {
			s->deficit[t] -= size;
			return (int)t;
		}
		end_turn(s, true);
	}
	return -1;
}
