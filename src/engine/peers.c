/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Links between engines: one fabric connection per (peer node, tenant) where both nodes
 * run functions of the tenant. The lower-numbered node connects, with backoff, and
 * reconnects when the link drops; the other accepts. Requests forwarded to a peer are
 * remembered until they come back or time out, so that a peer's death fails the requests
 * it may hold, at once, with 502. A request the peer (or a node after it) already
 * answered straight to the ingress stays on record until its timeout: its 502 then
 * reaches the ingress as a late answer and is dropped there, so the client never sees
 * it; `lost` counts such 502s too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "engine/engine_internal.h"

#define COMP "engine"
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 1;
	while (p < v && p < (1u << 30))
		p <<= 1;
	return p;
}

static bool node_hosts_tenant(const struct pd_config *cfg, uint32_t node, uint32_t tenant)
{
	for (uint32_t f = 0; f < cfg->functions_count; f++)
		if (cfg->functions[f].tenant_idx == tenant &&
		    pd_config_function_on_node(&cfg->functions[f], node))
			return true;
	return false;
}

int peers_init(struct engine *e, struct tenant_rt *t)
{
	const struct pd_config *cfg = e->cfg;
	/* Request ids carry the ingress slot in their low bits; the table is indexed by it. */
	uint32_t size = pow2_at_least(t->conf->max_inflight < 64 ? 64 : t->conf->max_inflight);
	for (uint32_t n = 0; n < cfg->nodes_count; n++) {
		struct peer_link *p = &t->peers[n];
		p->tenant = t;
		p->node = (uint16_t)n;
		if (n == e->node || !node_hosts_tenant(cfg, n, t->tenant))
			continue;
		p->hosts_tenant = true;
		p->active = e->node < n;
		p->backoff_ms = BACKOFF_MIN_MS;
		p->retry_at_ns = 1; /* connect at the first tick */
		p->fwd = calloc(size, sizeof(*p->fwd));
		if (p->fwd == NULL)
			return -ENOMEM;
		p->fwd_mask = size - 1;
	}
	return 0;
}

void peers_fini(struct tenant_rt *t)
{
	for (uint32_t n = 0; n < PD_MAX_NODES; n++) {
		free(t->peers[n].fwd);
		t->peers[n].fwd = NULL;
	}
}

bool peer_accepts(const struct engine *e, const struct tenant_rt *t, uint16_t node)
{
	/* Of two engines, the one with the lower node index connects (peers_init). */
	return node < e->cfg->nodes_count && node != e->node && t->peers[node].hosts_tenant &&
	       !t->peers[node].active;
}

static void connect_peer(struct engine *e, struct peer_link *p)
{
	const struct pd_config_node *n = &e->cfg->nodes[p->node];
	struct tenant_rt *t = p->tenant;
	struct pd_fabric_conn *conn = NULL;
	int rc = pd_fabric_connect(e->fab, t->rx, n->address, n->port, p->node, t->credits_per_link,
	                           p, &conn);
	if (rc != 0) {
		p->retry_at_ns = pd_now_ns() + (uint64_t)p->backoff_ms * 1000000u;
		p->backoff_ms =
		    p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
		return;
	}
	p->conn = conn;
	p->retry_at_ns = 0;
}

void peers_tick(struct engine *e, uint64_t now)
{
	if (e->stopping)
		return;
	for (uint32_t i = 0; i < e->ntenants; i++) {
		struct tenant_rt *t = &e->tenants[i];
		for (uint32_t n = 0; n < e->cfg->nodes_count; n++) {
			struct peer_link *p = &t->peers[n];
			if (p->hosts_tenant && p->active && p->conn == NULL &&
			    p->retry_at_ns != 0 && now >= p->retry_at_ns)
				connect_peer(e, p);
		}
	}
}

void peer_up(struct engine *e, struct peer_link *p, struct pd_fabric_conn *conn)
{
	/* An accepted link from a restarted peer replaces the old one. */
	p->conn = conn;
	p->up = true;
	p->ever_up = true;
	p->backoff_ms = BACKOFF_MIN_MS;
	PD_LOG_INFO(COMP, "node %s: link to node %s up for tenant %s", e->node_conf->name,
	            e->cfg->nodes[p->node].name, p->tenant->conf->name);
}

/* Answer 502 for every request the dead peer held that has not timed out yet. */
static void fail_forwarded(struct engine *e, struct peer_link *p)
{
	struct tenant_rt *t = p->tenant;
	uint64_t now = pd_now_ns();
	for (uint32_t i = 0; i <= p->fwd_mask; i++) {
		struct forwarded *f = &p->fwd[i];
		if (f->request_id == 0)
			continue;
		uint64_t timeout_ns = e->cfg->routes[f->route].timeout_ms * 1000000ull;
		if (now - f->sent_ns < timeout_ns) {
			uint32_t idx;
			if (pd_pool_alloc(&t->pool, PD_OWNER_ENGINE, &idx) == 0) {
				struct pd_msg_hdr *h = pd_pool_buf(&t->pool, idx);
				memset(h, 0, sizeof(*h));
				h->request_id = f->request_id;
				h->origin = f->origin;
				h->route = f->route;
				p->lost++;
				t->c.lost_with_peer++;
				tx_reply_error(e, t, idx, 502, "node failed\n");
			}
		}
		f->request_id = 0;
	}
}

void peer_down(struct engine *e, struct peer_link *p, struct pd_fabric_conn *conn, int err)
{
	(void)conn;
	bool was_up = p->up;
	p->conn = NULL;
	p->up = false;
	p->inflight = 0;
	if (was_up)
		PD_LOG_WARN(COMP, err, "node %s: link to node %s down for tenant %s",
		            e->node_conf->name, e->cfg->nodes[p->node].name, p->tenant->conf->name);
	if (!e->stopping)
		fail_forwarded(e, p);
	tx_fail_queue(e, p->tenant, p->node);
	if (p->active && !e->stopping) {
		p->retry_at_ns = pd_now_ns() + (uint64_t)p->backoff_ms * 1000000u;
		p->backoff_ms =
		    p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
	}
}
