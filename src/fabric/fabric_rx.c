/* SPDX-License-Identifier: Apache-2.0 */
/* Receive contexts: create/destroy/post, their CQ (stash, poll, dispatch) and the reaper. */
#include "fabric/fabric_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define COMP PD_FABRIC_LOG_COMP
#define CQ_EXTRA 256 /* CQ entries beyond 2 * depth, for sends */
#define NO_INDEX PD_FABRIC_NO_INDEX

/* ---- the FIFO of conns owed a credit by the next post --------------------------------------- */

void pd_fabric_fifo_push(struct pd_fabric_rx *rx, uint64_t handle)
{
	/* Holds: entries <= free receive records <= depth (each entry freed one record). */
	PD_ASSERT(rx->fifo_len < rx->depth);
	rx->fifo[(rx->fifo_head + rx->fifo_len) % rx->depth] = handle;
	rx->fifo_len++;
}

struct pd_fabric_conn *pd_fabric_fifo_pop_conn(struct pd_fabric_rx *rx)
{
	if (rx->fifo_len == 0)
		return NULL;
	uint64_t handle = rx->fifo[rx->fifo_head];
	rx->fifo_head = (rx->fifo_head + 1) % rx->depth;
	rx->fifo_len--;
	struct pd_fabric_conn *conn = pd_fabric_conn_lookup(rx->fab, handle);
	return conn != NULL && conn->state != PD_FABRIC_CONN_DEAD ? conn : NULL;
}

/* ---- completions ---------------------------------------------------------------------------- */

static void send_done(struct pd_fabric_rx *rx, struct pd_fabric_send_op *op, int err)
{
	struct pd_fabric *fab = rx->fab;
	if (op->orphan) { /* reported as cancelled when its conn was reaped */
		pd_fabric_send_op_put(rx, op);
		return;
	}
	struct pd_fabric_conn *conn = pd_fabric_conn_lookup(fab, op->conn_handle);
	if (conn != NULL)
		pd_fabric_conn_untrack(conn, op);
	bool credit = op->credit;
	const void *ctrl_buf = op->ctrl_buf;
	void *send_ctx = op->send_ctx;
	pd_fabric_send_op_put(rx, op);

	if (err != 0 && conn != NULL && conn->state != PD_FABRIC_CONN_DEAD) {
		PD_FABRIC_WARN_RL(fab, err, "send to peer %u tenant %u failed", conn->peer_id,
		                  conn->tenant);
		/* On a live conn these mean the provider tore the connection down. */
		bool broken = err == ECANCELED || err == ENOTCONN || err == EPIPE;
		pd_fabric_conn_fail(conn, broken ? -ECONNRESET : -err);
	}
	if (credit) {
		if (conn != NULL) {
			conn->ctrl_in_flight--;
			fab->ops->ctrl_done(conn, ctrl_buf);
			pd_fabric_conn_ctrl_check(conn);
		}
		return;
	}
	if (err != 0)
		fab->stats.send_errors++;
	if (!fab->closing)
		fab->cb.on_send_done(fab->app, send_ctx, -err);
}

static void cq_dispatch(struct pd_fabric_rx *rx, void *op_context, uint64_t flags, size_t len,
                        uint64_t data, int err)
{
	if (op_context == NULL) { /* a remote write with immediate data (one-sided) */
		rx->fab->ops->remote_write(rx, flags, len, data, err);
		return;
	}
	struct pd_fabric_op *op = PD_CONTAINER_OF(op_context, struct pd_fabric_op, fi_ctx);
	if (op->kind == PD_FABRIC_OP_RECV)
		rx->fab->ops->recv_done(rx, PD_CONTAINER_OF(op, struct pd_fabric_recv_op, op),
		                        flags, len, data, err);
	else
		send_done(rx, PD_CONTAINER_OF(op, struct pd_fabric_send_op, op), err);
}

/* Read up to max completions into the stash without dispatching them. */
ssize_t pd_fabric_cq_stash(struct pd_fabric_rx *rx, size_t max)
{
	if (rx->stash_len == PD_FABRIC_STASH)
		return 0;
	uint32_t tail = (rx->stash_head + rx->stash_len) % PD_FABRIC_STASH;
	size_t room = PD_FABRIC_STASH - rx->stash_len;
	if (room > PD_FABRIC_STASH - tail)
		room = PD_FABRIC_STASH - tail;
	if (room > max)
		room = max;
	ssize_t ret = fi_cq_read(rx->cq, &rx->stash[tail], room);
	if (ret > 0)
		rx->stash_len += (uint32_t)ret;
	return ret;
}

static void cq_read_error(struct pd_fabric_rx *rx)
{
	struct fi_cq_err_entry entry;
	memset(&entry, 0, sizeof(entry));
	ssize_t ret = fi_cq_readerr(rx->cq, &entry, 0);
	if (ret < 0) {
		if (ret != -FI_EAGAIN)
			PD_FABRIC_WARN_RL(rx->fab, pd_fabric_errno((int)ret),
			                  "fi_cq_readerr failed");
		return;
	}
	int err = pd_fabric_errno(entry.err);
	cq_dispatch(rx, entry.op_context, entry.flags, entry.len, entry.data, err ? err : EIO);
}

/*
 * Dispatch up to budget completions, in order (stash first). Returns how many. Without
 * drain, a short batch ends the call: another fi_cq_read would only run one more
 * provider progress pass (on tcp, a socket poll) before the app can react to what it
 * just got; pd_fabric_trywait() fails anyway while the CQ holds anything.
 */
int pd_fabric_cq_poll(struct pd_fabric_rx *rx, int budget, bool drain)
{
	int n = 0;
	bool more = true;
	while (n < budget) {
		if (rx->stash_len == 0) {
			if (!more && !drain)
				break;
			rx->stash_head = 0; /* a whole batch fits without wrapping */
			ssize_t ret = pd_fabric_cq_stash(rx, PD_FABRIC_CQ_BATCH);
			if (ret == -FI_EAVAIL) {
				cq_read_error(rx);
				n++;
				continue;
			}
			if (ret <= 0) {
				if (ret < 0 && ret != -FI_EAGAIN)
					PD_FABRIC_WARN_RL(rx->fab, pd_fabric_errno((int)ret),
					                  "fi_cq_read failed");
				break;
			}
			more = ret == PD_FABRIC_CQ_BATCH;
		}
		struct fi_cq_data_entry entry = rx->stash[rx->stash_head];
		rx->stash_head = (rx->stash_head + 1) % PD_FABRIC_STASH;
		rx->stash_len--;
		cq_dispatch(rx, entry.op_context, entry.flags, entry.len, entry.data, 0);
		n++;
	}
	return n;
}

/* ---- the reaper: on_down after every send of the conn is accounted for ---------------------- */

static struct pd_fabric_conn *dead_pop(struct pd_fabric *fab, const struct pd_fabric_rx *only)
{
	for (struct pd_fabric_conn **pp = &fab->dead; *pp != NULL; pp = &(*pp)->dead_next) {
		struct pd_fabric_conn *conn = *pp;
		if (only != NULL && conn->rx != only)
			continue;
		*pp = conn->dead_next;
		if (fab->dead_tail == &conn->dead_next)
			fab->dead_tail = pp;
		conn->dead_next = NULL;
		return conn;
	}
	return NULL;
}

static void conn_reap(struct pd_fabric_conn *conn)
{
	struct pd_fabric *fab = conn->fab;
	/* fi_close() of the endpoint queued its sends on the CQ as cancelled: take them. */
	if (!fab->closing)
		pd_fabric_cq_poll(conn->rx, INT_MAX, true);
	/* Anything the provider did not report is reported here, once; late completions of
	 * these records are recycled silently. */
	while (conn->in_flight != NULL) {
		struct pd_fabric_send_op *op = conn->in_flight;
		pd_fabric_conn_untrack(conn, op);
		op->orphan = true;
		if (op->credit)
			continue;
		fab->stats.send_errors++;
		if (!fab->closing)
			fab->cb.on_send_done(fab->app, op->send_ctx, -ECANCELED);
	}
	fab->ops->conn_reap(conn);
	if (!fab->closing) {
		PD_FABRIC_INFO_RL(fab, "connection %s peer %u tenant %u down: %s",
		                  conn->outbound ? "to" : "from", conn->peer_id, conn->tenant,
		                  strerror(-conn->down_err));
		fab->cb.on_down(fab->app, conn, conn->down_err);
	}
	pd_fabric_conn_free(conn);
}

int pd_fabric_reap(struct pd_fabric *fab, const struct pd_fabric_rx *only)
{
	int n = 0;
	struct pd_fabric_conn *conn;
	while ((conn = dead_pop(fab, only)) != NULL) {
		conn_reap(conn);
		n++;
	}
	return n;
}

/* ---- receive contexts ----------------------------------------------------------------------- */

int pd_fabric_wait_fids_rebuild(struct pd_fabric *fab)
{
	struct fid **fids = realloc(fab->wait_fids, (1 + fab->n_rx) * sizeof(*fids));
	if (fids == NULL)
		return -ENOMEM;
	fab->wait_fids = fids;
	uint32_t i = 0;
	fids[i++] = &fab->eq->fid;
	for (struct pd_fabric_rx *rx = fab->rxs; rx != NULL; rx = rx->next)
		fids[i++] = &rx->cq->fid;
	return 0;
}

int pd_fabric_rx_create(struct pd_fabric *fab, uint16_t tenant, uint32_t depth,
                        struct pd_fabric_rx **out)
{
	if (fab == NULL || out == NULL || depth == 0 || depth > fab->info->rx_attr->size ||
	    depth > UINT32_MAX / 4)
		return -EINVAL;
	int ret = -ENOMEM;
	const char *what = "";
	struct pd_fabric_rx *rx = calloc(1, sizeof(*rx));
	if (rx == NULL)
		return -ENOMEM;
	rx->fab = fab;
	rx->tenant = tenant;
	rx->depth = depth;
	rx->cq_fd = -1;
	rx->recv_ops = calloc(depth, sizeof(*rx->recv_ops));
	rx->fifo = calloc(depth, sizeof(*rx->fifo));
	if (rx->recv_ops == NULL || rx->fifo == NULL)
		goto free_arrays;
	for (uint32_t i = 0; i < depth; i++) {
		rx->recv_ops[i].op.kind = PD_FABRIC_OP_RECV;
		rx->recv_ops[i].next_free = i + 1 < depth ? i + 1 : NO_INDEX;
	}
	rx->recv_free = 0;

	struct fi_rx_attr rx_attr = *fab->info->rx_attr;
	rx_attr.size = depth;
	/* One-sided: the SRX holds the layer's control receives instead: 2 per conn, plus
	 * one per slot where writes consume receives (verbs). tcp does not size it at all. */
	if (fab->primitive == PD_FABRIC_ONE_SIDED && fab->info->rx_attr->size / 3 >= depth)
		rx_attr.size = (size_t)depth * 3;
	else if (fab->primitive == PD_FABRIC_ONE_SIDED)
		rx_attr.size = fab->info->rx_attr->size;
	what = "fi_srx_context";
	ret = fi_srx_context(fab->domain, &rx_attr, &rx->srx, NULL);
	if (ret != 0)
		goto free_arrays;
	struct fi_cq_attr cq_attr = {
	    .size = (size_t)depth * 2 + CQ_EXTRA,
	    .format = FI_CQ_FORMAT_DATA,
	    .wait_obj = FI_WAIT_FD,
	};
	what = "fi_cq_open";
	ret = fi_cq_open(fab->domain, &cq_attr, &rx->cq, NULL);
	if (ret != 0)
		goto close_srx;
	what = "fi_control(cq, FI_GETWAIT)";
	ret = fi_control(&rx->cq->fid, FI_GETWAIT, &rx->cq_fd);
	if (ret != 0)
		goto close_cq;
	what = "fi_ep_bind(srx, cq)";
	ret = fi_ep_bind(rx->srx, &rx->cq->fid, FI_RECV);
	if (ret != 0)
		goto close_cq;
	what = fab->ops->name;
	ret = fab->ops->rx_open(rx);
	if (ret != 0)
		goto close_primitive;

	rx->next = fab->rxs;
	if (fab->rxs != NULL)
		fab->rxs->prev = rx;
	fab->rxs = rx;
	fab->n_rx++;
	ret = pd_fabric_wait_fids_rebuild(fab);
	if (ret != 0)
		goto unlink;
	*out = rx;
	return 0;

unlink:
	fab->rxs = rx->next;
	if (rx->next != NULL)
		rx->next->prev = NULL;
	fab->n_rx--;
close_primitive:
	fi_close(&rx->srx->fid);
	rx->srx = NULL;
	fab->ops->rx_close(rx);
close_cq:
	fi_close(&rx->cq->fid);
close_srx:
	if (rx->srx != NULL)
		fi_close(&rx->srx->fid);
free_arrays:
	if (ret != -ENOMEM) {
		ret = -pd_fabric_errno(ret);
		PD_LOG_WARN(COMP, ret, "%s for tenant %u failed", what, tenant);
	}
	free(rx->fifo);
	free(rx->recv_ops);
	free(rx);
	return ret;
}

static void rx_close(struct pd_fabric_rx *rx)
{
	struct pd_fabric *fab = rx->fab;
	rx->closing = true;
	for (struct pd_fabric_conn *conn = fab->conns; conn != NULL; conn = conn->next)
		if (conn->rx == rx)
			pd_fabric_conn_fail(conn, -ECANCELED);
	pd_fabric_reap(fab, rx);

	/* Closing the SRX returns its posted buffers as cancelled completions. */
	int ret = fi_close(&rx->srx->fid);
	if (ret != 0)
		PD_LOG_WARN(COMP, pd_fabric_errno(ret), "fi_close(srx) for tenant %u failed",
		            rx->tenant);
	if (!fab->closing)
		pd_fabric_cq_poll(rx, INT_MAX, true);
	for (uint32_t i = 0; i < rx->depth; i++) {
		struct pd_fabric_recv_op *op = &rx->recv_ops[i];
		if (op->posted) { /* not reported by the provider: report it here */
			void *buf_ctx = op->buf_ctx;
			op->posted = false;
			rx->n_posted--;
			if (!fab->closing)
				fab->cb.on_recv_cancel(fab->app, buf_ctx);
		}
	}
	fab->ops->rx_close(rx);
	ret = fi_close(&rx->cq->fid);
	if (ret != 0)
		PD_LOG_WARN(COMP, pd_fabric_errno(ret), "fi_close(cq) for tenant %u failed",
		            rx->tenant);

	if (rx->prev != NULL)
		rx->prev->next = rx->next;
	else
		fab->rxs = rx->next;
	if (rx->next != NULL)
		rx->next->prev = rx->prev;
	fab->n_rx--;
	/* Shrinking cannot fail to fit: the old array stays if realloc says no. */
	(void)pd_fabric_wait_fids_rebuild(fab);

	while (rx->send_chunks != NULL) {
		struct pd_fabric_send_chunk *chunk = rx->send_chunks;
		rx->send_chunks = chunk->next;
		free(chunk);
	}
	free(rx->peers);
	free(rx->fifo);
	free(rx->recv_ops);
	free(rx);
}

void pd_fabric_rx_destroy(struct pd_fabric_rx *rx)
{
	if (rx != NULL)
		rx_close(rx);
}

int pd_fabric_rx_post(struct pd_fabric_rx *rx, struct pd_fabric_mr *mr, void *buf, size_t len,
                      void *buf_ctx)
{
	if (rx == NULL || mr == NULL || buf == NULL || len < PD_FABRIC_CREDIT_MSG_LEN ||
	    mr->fab != rx->fab || rx->closing || !pd_fabric_in_mr(mr, buf, len))
		return -EINVAL;
	struct pd_fabric *fab = rx->fab;
	struct pd_fabric_recv_op *op = pd_fabric_recv_op_get(rx);
	if (op == NULL)
		return -ENOBUFS;
	op->buf = buf;
	op->len = len;
	op->desc = mr->desc;
	op->buf_ctx = buf_ctx;
	int ret = fab->ops->rx_post(rx, mr, op);
	if (ret != 0) {
		pd_fabric_recv_op_put(rx, op);
		return ret == -FI_EAGAIN ? -EAGAIN : -pd_fabric_errno(ret);
	}
	return 0;
}
