/* SPDX-License-Identifier: Apache-2.0 */
#include "engine/pacer.h"

void pd_pacer_init(struct pd_pacer *p, uint64_t rate, uint64_t burst, uint64_t now_ns)
{
	p->rate = rate;
	p->burst = burst > INT64_MAX ? INT64_MAX : (int64_t)burst;
	p->tokens = p->burst;
	p->last_ns = now_ns;
}

static void refill(struct pd_pacer *p, uint64_t now_ns)
{
	if (now_ns <= p->last_ns)
		return;
	uint64_t dt = now_ns - p->last_ns;
	/* dt * rate overflows 64 bits only after seconds at terabytes per second: cap dt at
	 * one second, which fills any bucket (burst <= rate). */
	if (dt > 1000000000ull)
		dt = 1000000000ull;
	uint64_t add = dt * p->rate / 1000000000ull;
	if (add == 0)
		return; /* keep last_ns, so that small steps add up */
	p->tokens += (int64_t)add;
	if (p->tokens > p->burst)
		p->tokens = p->burst;
	/* Advance by the time the whole bytes took, not by dt: no fraction is lost. */
	p->last_ns += add * 1000000000ull / p->rate;
	if (now_ns - p->last_ns >= 1000000000ull)
		p->last_ns = now_ns;
}

bool pd_pacer_ready(struct pd_pacer *p, uint64_t now_ns)
{
	if (p->rate == 0)
		return true;
	refill(p, now_ns);
	return p->tokens > 0;
}

bool pd_pacer_may_overdraw(struct pd_pacer *p, uint64_t now_ns)
{
	if (p->rate == 0)
		return true;
	refill(p, now_ns);
	return p->tokens > -p->burst;
}

void pd_pacer_charge(struct pd_pacer *p, uint64_t n)
{
	if (p->rate == 0)
		return;
	p->tokens -= n > (uint64_t)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)n;
}

uint64_t pd_pacer_wait_ns(const struct pd_pacer *p, uint64_t now_ns)
{
	if (p->rate == 0 || p->tokens > 0)
		return 0;
	uint64_t need = (uint64_t)(1 - p->tokens); /* bytes until the bucket is positive */
	uint64_t at = p->last_ns + (need * 1000000000ull + p->rate - 1) / p->rate;
	return at > now_ns ? at - now_ns : 0;
}
