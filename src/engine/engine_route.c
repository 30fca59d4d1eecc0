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
 * Hand buffer idx to a local instance of function fn, or (if allowed: it came from this
 * node) to the least loaded peer running it.
 */
static void to_function(struct engine *e, struct tenant_rt *t, uint32_t idx, uint16_t fn,
                        bool may_leave)
{
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

/*
 * A request whose header was checked: hand it to a local instance of the function at
 * its hop, or (if allowed: it came from this node) to the least loaded peer running it.
 */
void route_request(struct engine *e, struct tenant_rt *t, uint32_t idx, const struct pd_msg_hdr *h,
                   bool may_leave)
{
	const struct pd_config_route *r = &e->cfg->routes[h->route];
	to_function(e, t, idx, (uint16_t)r->chain_idx[h->hop], may_leave);
}

static bool declares_call(const struct pd_config_function *f, uint32_t callee)
{
	for (uint32_t k = 0; k < f->calls_count; k++)
		if (f->calls_idx[k] == callee)
			return true;
	return false;
}

void route_call(struct engine *e, struct tenant_rt *t, uint32_t idx, const struct pd_msg_hdr *h,
                int from_peer)
{
	if (from_peer >= 0) {
		/* Its reply goes back where it came from, never to a third node. */
		if (h->reply_node != (uint16_t)from_peer) {
			t->c.bad_headers++;
			pd_pool_free(&t->pool, idx);
			return;
		}
	} else {
		/* From this node: the caller must be one of its instances, and may call only
		 * what its function declares (functions[].calls). */
		if (h->reply_node != e->node || h->reply_slot >= t->ninst) {
			t->c.bad_headers++;
			pd_pool_free(&t->pool, idx);
			return;
		}
		const struct pd_config_function *caller =
		    &e->cfg->functions[t->inst[h->reply_slot].function];
		if (!declares_call(caller, h->callee)) {
			t->c.calls_refused++;
			tx_reply_error(e, t, idx, 403, "call refused: not in the caller's calls\n");
			return;
		}
	}
	if (h->depth == 0 || h->depth > e->cfg->engine.max_call_depth) {
		t->c.calls_refused++;
		tx_reply_error(e, t, idx, 508, "call refused: deeper than engine.max_call_depth\n");
		return;
	}
	t->c.calls_routed++;
	to_function(e, t, idx, h->callee, from_peer < 0);
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
	unsigned kind = pd_msg_kind(h);
	if (kind == PD_MSG_F_REQUEST)
		return h->hop < r->chain_count && h->depth == 0;
	if (kind == PD_MSG_F_CALL || kind == PD_MSG_F_REPLY)
		return h->callee < e->cfg->functions_count &&
		       e->cfg->functions[h->callee].tenant_idx == t->tenant;
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
		switch (pd_msg_kind(&snap)) {
		case PD_MSG_F_RESPONSE: tx_send_response(e, t, idx); break;
		case PD_MSG_F_CALL: route_call(e, t, idx, &snap, -1); break;
		case PD_MSG_F_REPLY: tx_deliver_reply(e, t, idx, &snap); break;
		default: route_request(e, t, idx, &snap, true); break;
		}
	}
	return n;
}
