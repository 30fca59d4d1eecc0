/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine's side of the fabric: the receives each tenant posts on its shared receive
 * context (and the credits its links get from them), and the fabric's callbacks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "engine/engine_internal.h"
#include "shm/msg.h"

#define COMP "engine"

/* ---------------------------------------------------------------- receives */

void rx_post(struct engine *e, struct tenant_rt *t)
{
	while (t->rx_missing > 0) {
		uint32_t idx;
		if (pd_pool_alloc(&t->pool, PD_OWNER_ENGINE, &idx) != 0) {
			t->c.rx_repost_deferred++;
			return;
		}
		pd_pool_set(&t->pool, idx, PD_OWNER_ENGINE, PD_BUF_RX_POSTED);
		int rc = pd_fabric_rx_post(t->rx, t->mr, pd_pool_buf(&t->pool, idx),
		                           t->conf->buffer_size,
		                           ctx_encode((uint32_t)(t - e->tenants), idx));
		if (rc != 0) {
			pd_pool_free(&t->pool, idx);
			t->c.rx_repost_deferred++;
			return;
		}
		t->rx_missing--;
	}
}

int engine_rx_plan(uint32_t nbuffers, uint32_t links, uint32_t *rx_depth,
                   uint16_t *credits_per_link)
{
	if (links == 0)
		return -EINVAL;
	/* A quarter of the pool, 8..1024, unless the links need more: every link's minimum
	 * is posted, never promised on receives that do not exist. */
	uint32_t depth = nbuffers / 4;
	if (depth > 1024)
		depth = 1024;
	if (depth < 8)
		depth = 8;
	uint64_t need = (uint64_t)links * PD_FABRIC_CREDITS_MIN;
	if (need > nbuffers / 2)
		return -ENOBUFS;
	if (depth < need)
		depth = (uint32_t)need;
	if (depth > nbuffers / 2)
		depth = nbuffers / 2; /* a tiny pool: still at least need */
	uint32_t c = depth / links;
	*rx_depth = depth;
	*credits_per_link = (uint16_t)(c > UINT16_MAX ? UINT16_MAX : c);
	return 0;
}

/* ---------------------------------------------------------------- fabric callbacks */

static struct tenant_rt *tenant_of_ctx(struct engine *e, const void *ctx, uint32_t *idx)
{
	uint32_t tl;
	ctx_decode(ctx, &tl, idx);
	PD_ASSERT(tl < e->ntenants);
	return &e->tenants[tl];
}

static void on_recv(void *app, struct pd_fabric_conn *conn, void *buf_ctx, size_t len)
{
	struct engine *e = app;
	uint32_t idx;
	struct tenant_rt *t = tenant_of_ctx(e, buf_ctx, &idx);
	t->rx_missing++;
	pd_pool_set(&t->pool, idx, PD_OWNER_ENGINE, PD_BUF_ENGINE);
	rx_post(e, t);
	t->c.msgs_in++;
	t->c.bytes_in += len;

	struct pd_msg_hdr snap;
	if (len < PD_MSG_HDR_SIZE) {
		t->c.bad_headers++;
		pd_pool_free(&t->pool, idx);
		return;
	}
	pd_msg_hdr_snapshot(&snap, pd_pool_buf(&t->pool, idx));
	uint16_t peer = pd_fabric_conn_peer(conn);
	bool from_ingress = (peer & PD_FABRIC_PEER_INGRESS) != 0;
	unsigned kind = pd_msg_kind(&snap);
	/* The ingress sends requests; peers send requests, calls and replies. */
	if (!route_header_ok(e, t, &snap, len) ||
	    !(kind == PD_MSG_F_REQUEST ||
	      (!from_ingress && peer < PD_MAX_NODES &&
	       (kind == PD_MSG_F_CALL ||
	        (kind == PD_MSG_F_REPLY && snap.reply_node == e->node))))) {
		t->c.bad_headers++;
		pd_pool_free(&t->pool, idx);
		return;
	}
	if (kind != PD_MSG_F_REQUEST) {
		t->peers[peer].received++;
		t->c.from_peers++;
		if (kind == PD_MSG_F_CALL)
			route_call(e, t, idx, &snap, peer);
		else
			tx_deliver_reply(e, t, idx, &snap);
		return;
	}
	if (!from_ingress && peer < PD_MAX_NODES) {
		peer_note_return(&t->peers[peer], &snap);
		t->peers[peer].received++;
		t->c.from_peers++;
	}
	/* A request from a peer was sent here because this node runs its next function: it
	 * never travels on from here, so two nodes can never bounce it between them. */
	route_request(e, t, idx, &snap, from_ingress);
}

static void on_recv_cancel(void *app, void *buf_ctx)
{
	struct engine *e = app;
	uint32_t idx;
	struct tenant_rt *t = tenant_of_ctx(e, buf_ctx, &idx);
	pd_pool_free(&t->pool, idx);
}

static void on_send_done(void *app, void *send_ctx, int status)
{
	struct engine *e = app;
	uint32_t idx;
	struct tenant_rt *t = tenant_of_ctx(e, send_ctx, &idx);
	uint16_t dest = t->dest[idx];
	if (e->tx_inflight > 0)
		e->tx_inflight--;
	if (!DEST_IS_INGRESS(dest) && dest < PD_MAX_NODES && t->peers[dest].inflight > 0)
		t->peers[dest].inflight--;
	/* A failed send to a peer is answered when the peer's link goes down (it has the
	 * request id on record); a failed answer to the ingress is its timeout's to handle. */
	if (status != 0)
		t->c.dropped++;
	pd_pool_free(&t->pool, idx);
}

static int on_connect_request(void *app, const struct pd_fabric_hello *hello,
                              struct pd_fabric_rx **rx, uint16_t *credits, void **conn_ctx)
{
	struct engine *e = app;
	if (hello->tenant >= PD_MAX_TENANTS || e->tenant_map[hello->tenant] < 0) {
		PD_LOG_WARN(COMP, 0, "refused peer %#x: tenant %u has no functions on node %s",
		            hello->peer_id, hello->tenant, e->node_conf->name);
		return -ENOENT;
	}
	struct tenant_rt *t = &e->tenants[e->tenant_map[hello->tenant]];
	if (hello->peer_id & PD_FABRIC_PEER_INGRESS) {
		if ((hello->peer_id & ~PD_FABRIC_PEER_INGRESS) >= ENGINE_MAX_INGRESS) {
			PD_LOG_WARN(COMP, 0, "refused peer %#x: not a known ingress",
			            hello->peer_id);
			return -EPERM;
		}
		*conn_ctx = t;
	} else {
		uint16_t node = hello->peer_id;
		if (!peer_accepts(e, t, node)) {
			PD_LOG_WARN(COMP, 0,
			            "refused peer %u for tenant %s: not a node that connects "
			            "to node %s",
			            node, t->conf->name, e->node_conf->name);
			return -EPERM;
		}
		*conn_ctx = &t->peers[node];
	}
	*rx = t->rx;
	*credits = t->credits_per_link;
	return 0;
}

static void on_up(void *app, struct pd_fabric_conn *conn)
{
	struct engine *e = app;
	uint16_t peer = pd_fabric_conn_peer(conn);
	if (!(peer & PD_FABRIC_PEER_INGRESS)) {
		peer_up(e, pd_fabric_conn_ctx(conn), conn);
		return;
	}
	struct tenant_rt *t = pd_fabric_conn_ctx(conn);
	uint16_t origin = peer & (uint16_t)~PD_FABRIC_PEER_INGRESS;
	if (origin < ENGINE_MAX_INGRESS)
		t->ingress[origin] = conn;
	PD_LOG_INFO(COMP, "node %s: ingress %u connected for tenant %s", e->node_conf->name, origin,
	            t->conf->name);
}

static void on_down(void *app, struct pd_fabric_conn *conn, int err)
{
	struct engine *e = app;
	uint16_t peer = pd_fabric_conn_peer(conn);
	if (!(peer & PD_FABRIC_PEER_INGRESS)) {
		struct peer_link *p = pd_fabric_conn_ctx(conn);
		if (p != NULL && p->conn == conn) {
			peer_down(e, p, conn, err);
		}
		return;
	}
	struct tenant_rt *t = pd_fabric_conn_ctx(conn);
	if (t == NULL)
		return;
	for (int i = 0; i < ENGINE_MAX_INGRESS; i++) {
		if (t->ingress[i] == conn) {
			t->ingress[i] = NULL;
			PD_LOG_INFO(COMP, "node %s: ingress %d disconnected for tenant %s (%s)",
			            e->node_conf->name, i, t->conf->name, strerror(-err));
			tx_fail_queue(e, t, DEST_INGRESS(i));
		}
	}
}

const struct pd_fabric_callbacks engine_fabric_callbacks = {
    .on_recv = on_recv,
    .on_recv_cancel = on_recv_cancel,
    .on_send_done = on_send_done,
    .on_connect_request = on_connect_request,
    .on_up = on_up,
    .on_down = on_down,
};
