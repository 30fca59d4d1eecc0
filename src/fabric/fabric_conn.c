/* SPDX-License-Identifier: Apache-2.0 */
/* Connections: handles, the per-rx peer table, lifecycle, in-flight sends, control messages. */
#include "fabric/fabric_internal.h"

#include <errno.h>
#include <stdlib.h>

#define NO_INDEX PD_FABRIC_NO_INDEX

_Static_assert(sizeof(uintptr_t) >= sizeof(uint64_t), "conn handles travel as fid contexts");

/* ---- generation-checked connection handles -------------------------------------------------- */

static uint64_t slot_alloc(struct pd_fabric *fab, struct pd_fabric_conn *conn)
{
	uint32_t idx;
	if (fab->slot_free != NO_INDEX) {
		idx = fab->slot_free;
		fab->slot_free = fab->slots[idx].next_free;
	} else {
		if (fab->n_slots == fab->cap_slots) {
			uint32_t cap = fab->cap_slots ? fab->cap_slots * 2 : 16;
			struct pd_fabric_conn_slot *s = realloc(fab->slots, cap * sizeof(*s));
			if (s == NULL)
				return 0;
			fab->slots = s;
			fab->cap_slots = cap;
		}
		idx = fab->n_slots++;
		fab->slots[idx].gen = 0;
	}
	struct pd_fabric_conn_slot *slot = &fab->slots[idx];
	if (++slot->gen == 0)
		slot->gen = 1;
	slot->conn = conn;
	slot->next_free = NO_INDEX;
	return (uint64_t)slot->gen << 32 | idx;
}

static void slot_release(struct pd_fabric *fab, uint64_t handle)
{
	uint32_t idx = (uint32_t)handle;
	fab->slots[idx].conn = NULL;
	fab->slots[idx].next_free = fab->slot_free;
	fab->slot_free = idx;
}

struct pd_fabric_conn *pd_fabric_conn_lookup(const struct pd_fabric *fab, uint64_t handle)
{
	uint32_t idx = (uint32_t)handle;
	uint32_t gen = (uint32_t)(handle >> 32);
	if (gen == 0 || idx >= fab->n_slots || fab->slots[idx].gen != gen)
		return NULL;
	return fab->slots[idx].conn;
}

/* ---- per-rx peer table ---------------------------------------------------------------------- */

struct pd_fabric_conn *pd_fabric_rx_peer(const struct pd_fabric_rx *rx, uint16_t peer_id)
{
	for (uint32_t i = 0; i < rx->n_peers; i++)
		if (rx->peers[i]->peer_id == peer_id)
			return rx->peers[i];
	return NULL;
}

static int rx_add_peer(struct pd_fabric_rx *rx, struct pd_fabric_conn *conn)
{
	if (rx->n_peers == rx->cap_peers) {
		uint32_t cap = rx->cap_peers ? rx->cap_peers * 2 : 8;
		struct pd_fabric_conn **p = realloc(rx->peers, cap * sizeof(*p));
		if (p == NULL)
			return -ENOMEM;
		rx->peers = p;
		rx->cap_peers = cap;
	}
	rx->peers[rx->n_peers++] = conn;
	return 0;
}

static void rx_remove_peer(struct pd_fabric_rx *rx, struct pd_fabric_conn *conn)
{
	for (uint32_t i = 0; i < rx->n_peers; i++) {
		if (rx->peers[i] == conn) {
			rx->peers[i] = rx->peers[--rx->n_peers];
			return;
		}
	}
}

/* ---- sends in flight on a conn -------------------------------------------------------------- */

void pd_fabric_conn_track(struct pd_fabric_conn *conn, struct pd_fabric_send_op *op)
{
	op->in_flight = true;
	op->prev = NULL;
	op->next = conn->in_flight;
	if (conn->in_flight != NULL)
		conn->in_flight->prev = op;
	conn->in_flight = op;
}

void pd_fabric_conn_untrack(struct pd_fabric_conn *conn, struct pd_fabric_send_op *op)
{
	if (op->prev != NULL)
		op->prev->next = op->next;
	else
		conn->in_flight = op->next;
	if (op->next != NULL)
		op->next->prev = op->prev;
	op->next = op->prev = NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

struct pd_fabric_conn *pd_fabric_conn_new(struct pd_fabric *fab, struct pd_fabric_rx *rx,
                                          uint16_t peer_id, void *ctx, bool outbound)
{
	struct pd_fabric_conn *conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return NULL;
	conn->fab = fab;
	conn->rx = rx;
	conn->peer_id = peer_id;
	conn->tenant = rx->tenant;
	conn->ctx = ctx;
	conn->outbound = outbound;
	conn->state = outbound ? PD_FABRIC_CONN_CONNECTING : PD_FABRIC_CONN_ACCEPTING;
	conn->handle = slot_alloc(fab, conn);
	if (conn->handle == 0)
		goto free_conn;
	if (fab->ops->conn_open(conn) != 0)
		goto release_slot;
	if (rx_add_peer(rx, conn) != 0)
		goto close_conn;
	conn->next = fab->conns;
	if (fab->conns != NULL)
		fab->conns->prev = conn;
	fab->conns = conn;
	return conn;

close_conn:
	fab->ops->conn_close(conn);
release_slot:
	slot_release(fab, conn->handle);
free_conn:
	free(conn);
	return NULL;
}

/* Free a conn whose endpoint is closed and whose sends are all accounted for. */
void pd_fabric_conn_free(struct pd_fabric_conn *conn)
{
	struct pd_fabric *fab = conn->fab;
	fab->ops->conn_close(conn);
	rx_remove_peer(conn->rx, conn);
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		fab->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	slot_release(fab, conn->handle);
	free(conn);
}

int pd_fabric_conn_ep_open(struct pd_fabric_conn *conn, struct fi_info *info)
{
	struct pd_fabric *fab = conn->fab;
	const char *what = "fi_endpoint";
	int ret = fi_endpoint(fab->domain, info, &conn->ep, (void *)(uintptr_t)conn->handle);
	if (ret != 0)
		goto fail;
	what = "fi_ep_bind(eq)";
	ret = fi_ep_bind(conn->ep, &fab->eq->fid, 0);
	if (ret != 0)
		goto close_ep;
	what = "fi_ep_bind(cq)";
	ret = fi_ep_bind(conn->ep, &conn->rx->cq->fid, FI_TRANSMIT | FI_RECV);
	if (ret != 0)
		goto close_ep;
	what = "fi_ep_bind(srx)";
	ret = fi_ep_bind(conn->ep, &conn->rx->srx->fid, 0);
	if (ret != 0)
		goto close_ep;
	what = "fi_enable";
	ret = fi_enable(conn->ep);
	if (ret != 0)
		goto close_ep;
	return 0;

close_ep:
	fi_close(&conn->ep->fid);
	conn->ep = NULL;
fail:
	PD_FABRIC_WARN_RL(fab, pd_fabric_errno(ret), "%s for peer %u tenant %u failed", what,
	                  conn->peer_id, conn->tenant);
	return -pd_fabric_errno(ret);
}

/*
 * The connection is gone: close its endpoint now (the provider flushes its sends to the
 * CQ as cancelled), report on_down later from the reaper. Safe anywhere, calls nothing.
 */
void pd_fabric_conn_fail(struct pd_fabric_conn *conn, int err)
{
	struct pd_fabric *fab = conn->fab;
	if (conn->state == PD_FABRIC_CONN_DEAD)
		return;
	conn->state = PD_FABRIC_CONN_DEAD;
	conn->down_err = err;
	rx_remove_peer(conn->rx, conn);
	if (conn->credit_retry) {
		conn->credit_retry = false;
		fab->credit_retries--;
	}
	if (conn->ep != NULL) {
		int ret = fi_close(&conn->ep->fid);
		if (ret != 0)
			PD_FABRIC_WARN_RL(fab, pd_fabric_errno(ret),
			                  "fi_close(ep) for peer %u failed", conn->peer_id);
		conn->ep = NULL;
	}
	conn->dead_next = NULL;
	*fab->dead_tail = conn;
	fab->dead_tail = &conn->dead_next;
}

void pd_fabric_disconnect(struct pd_fabric_conn *conn)
{
	if (conn == NULL || conn->state == PD_FABRIC_CONN_DEAD)
		return;
	if (conn->ep != NULL && conn->state == PD_FABRIC_CONN_UP)
		(void)fi_shutdown(conn->ep, 0);
	pd_fabric_conn_fail(conn, -ESHUTDOWN);
}

void *pd_fabric_conn_ctx(const struct pd_fabric_conn *conn)
{
	return conn->ctx;
}

uint16_t pd_fabric_conn_peer(const struct pd_fabric_conn *conn)
{
	return conn->peer_id;
}

uint16_t pd_fabric_conn_tenant(const struct pd_fabric_conn *conn)
{
	return conn->tenant;
}

uint32_t pd_fabric_conn_credits(const struct pd_fabric_conn *conn)
{
	return conn->state == PD_FABRIC_CONN_UP ? conn->credits : 0;
}

/* ---- control messages ----------------------------------------------------------------------- */

static void credit_retry_set(struct pd_fabric_conn *conn, bool on)
{
	if (conn->credit_retry == on)
		return;
	conn->credit_retry = on;
	if (on)
		conn->fab->credit_retries++;
	else
		conn->fab->credit_retries--;
}

int pd_fabric_ctrl_post(struct pd_fabric_conn *conn, const void *buf, size_t len, void *desc,
                        uint32_t imm)
{
	struct pd_fabric_send_op *op = pd_fabric_send_op_get(conn->rx);
	if (op == NULL)
		return -FI_ENOMEM;
	op->credit = true;
	op->ctrl_buf = buf;
	op->conn_handle = conn->handle;
	int ret = pd_fabric_msg_send(conn, op, buf, len, desc, imm);
	if (ret != 0) {
		pd_fabric_send_op_put(conn->rx, op);
		return ret;
	}
	pd_fabric_conn_track(conn, op);
	conn->ctrl_in_flight++;
	conn->fab->stats.credit_msgs_sent++;
	return 0;
}

/*
 * Post the primitive's control messages (credit return, slot grants) while due, up to
 * ops->ctrl_depth in flight per conn: a completion runs the check again. What is due,
 * and why the peer always has a receive for it, is the primitive's (docs/fabric.md).
 */
void pd_fabric_conn_ctrl_check(struct pd_fabric_conn *conn)
{
	struct pd_fabric *fab = conn->fab;
	int ret = 0;
	while (conn->state == PD_FABRIC_CONN_UP && conn->ctrl_in_flight < fab->ops->ctrl_depth) {
		ret = fab->ops->ctrl_send(conn);
		if (ret <= 0)
			break;
	}
	if (ret >= 0) {
		credit_retry_set(conn, false);
		return;
	}
	if (ret == -FI_EAGAIN || ret == -FI_ENOMEM) {
		credit_retry_set(conn, true);
		return;
	}
	fab->stats.send_errors++;
	PD_FABRIC_WARN_RL(fab, pd_fabric_errno(ret), "control message to peer %u tenant %u failed",
	                  conn->peer_id, conn->tenant);
	pd_fabric_conn_fail(conn, -pd_fabric_errno(ret));
}
