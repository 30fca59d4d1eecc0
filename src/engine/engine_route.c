/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Routing: checks a message header against the cluster config, hands a request to a
 * local instance of the function at its hop or to the least loaded peer running it, and
 * drains the tenants' engine-bound rings.
 */
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "engine/engine_internal.h"
#include "shm/msg.h"

#define COMP "engine"

#define RING_BURST 64

/* ---------------------------------------------------------------- routing */

/* Pick a local instance of function fn: a running one with the shortest ring. */
static struct instance *pick_instance(struct tenant_rt *t, uint16_t fn)
{
	struct instance *best = NULL, *fallback = NULL;
	uint32_t best_len = UINT32_MAX;
	for (uint16_t s = 0; s < t->ninst; s++) {
		struct instance *in = &t->inst[s];
		if (in->function != fn)
			continue;
		if (fallback == NULL)
			fallback = in;
		if (in->state != INST_RUNNING)
			continue;
		uint32_t len = pd_ring_count(&t->pool.inst_ring[s]);
		if (len < best_len) {
			best = in;
			best_len = len;
		}
	}
	/* None running (restarting): queue on one anyway; it is served when it is back. */
	return best != NULL ? best : fallback;
}

static uint32_t peer_load(const struct tenant_rt *t, const struct peer_link *p)
{
	return p->inflight + t->pend[ENGINE_MAX_INGRESS + p->node].count;
}

/*
 * Pick the connected peer running fn with the fewest sends outstanding. If none is
 * connected but a link is being set up (this engine is connecting, or the peer has not
 * connected since start), pick that one: the request waits for the link, and fails if
 * the attempt does or expires at its route's timeout. NULL: none.
 */
static struct peer_link *pick_peer(struct engine *e, struct tenant_rt *t, uint16_t fn)
{
	const struct pd_config_function *f = &e->cfg->functions[fn];
	struct peer_link *best = NULL, *pending = NULL;
	for (uint32_t k = 0; k < f->node_idx_count; k++) {
		if (f->node_idx[k] == e->node)
			continue;
		struct peer_link *p = &t->peers[f->node_idx[k]];
		if (!p->up) {
			if ((p->conn != NULL || !p->ever_up) && pending == NULL)
				pending = p;
			continue;
		}
		if (best == NULL || peer_load(t, p) < peer_load(t, best))
			best = p;
	}
	return best != NULL ? best : pending;
}

/*
 * A request whose header was checked: hand it to a local instance of the function at
 * its hop, or (if allowed: it came from this node) to the least loaded peer running it.
 */
void route_request(struct engine *e, struct tenant_rt *t, uint32_t idx, const struct pd_msg_hdr *h,
                   bool may_leave)
{
	const struct pd_config_route *r = &e->cfg->routes[h->route];
	uint16_t fn = (uint16_t)r->chain_idx[h->hop];
	struct instance *in = pick_instance(t, fn);
	if (in == NULL) {
		struct peer_link *p = may_leave ? pick_peer(e, t, fn) : NULL;
		if (p == NULL) {
			tx_reply_error(e, t, idx, 502,
			               may_leave
			                   ? "no node running the next function is reachable\n"
			                   : "function not available on this node\n");
			return;
		}
		tx_send_to(e, t, idx, p->node);
		return;
	}
	atomic_store_explicit(&t->pool.ctl[idx].since_ns, e->now, memory_order_relaxed);
	pd_pool_set(&t->pool, idx, in->slot, PD_BUF_IN_RING);
	if (pd_ring_push(&t->pool.inst_ring[in->slot], idx) != 0) {
		pd_pool_set(&t->pool, idx, PD_OWNER_ENGINE, PD_BUF_ENGINE);
		tx_reply_error(e, t, idx, 503, "function queue is full\n");
		return;
	}
	t->c.to_functions++;
	pd_ring_notify(&t->pool.inst_ring[in->slot], in->efd);
}

/* Check a header against the cluster config and this tenant. */
bool route_header_ok(const struct engine *e, const struct tenant_rt *t, const struct pd_msg_hdr *h,
                     uint64_t received_len)
{
	if (pd_msg_validate(h, t->conf->buffer_size, received_len) != 0)
		return false;
	if (h->tenant != t->tenant || h->route >= e->cfg->routes_count)
		return false;
	const struct pd_config_route *r = &e->cfg->routes[h->route];
	if (r->tenant_idx != t->tenant)
		return false;
	if ((h->flags & PD_MSG_F_REQUEST) && h->hop >= r->chain_count)
		return false;
	return true;
}

int route_drain_ring(struct engine *e, struct tenant_rt *t)
{
	int n = 0;
	for (; n < RING_BURST; n++) {
		uint64_t v;
		if (pd_ring_pop(&t->pool.engine_ring, &v) != 0)
			break;
		/* The descriptor comes from tenant memory: check it before anything else. */
		if (!pd_pool_index_ok(&t->pool, v)) {
			t->c.bad_descriptors++;
			continue;
		}
		uint32_t idx = (uint32_t)v;
		uint32_t expected = PD_BUF_TO_ENGINE;
		if (!atomic_compare_exchange_strong(&t->pool.ctl[idx].state, &expected,
		                                    PD_BUF_ENGINE)) {
			t->c.bad_descriptors++;
			continue;
		}
		atomic_store(&t->pool.ctl[idx].owner, PD_OWNER_ENGINE);
		struct pd_msg_hdr snap;
		pd_msg_hdr_snapshot(&snap, pd_pool_buf(&t->pool, idx));
		if (!route_header_ok(e, t, &snap, 0)) {
			t->c.bad_headers++;
			pd_pool_free(&t->pool, idx);
			continue;
		}
		if (snap.flags & PD_MSG_F_RESPONSE)
			tx_send_response(e, t, idx);
		else
			route_request(e, t, idx, &snap, true);
	}
	return n;
}
