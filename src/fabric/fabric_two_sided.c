/* SPDX-License-Identifier: Apache-2.0 */
/* Two-sided data path: fi_senddata on the connection, fi_recv on the tenant's SRX, credits. */
#include "fabric/fabric_internal.h"

#include <errno.h>

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* Credits returned by the peer; false if that broke the protocol (conn failed). */
static bool conn_add_credits(struct pd_fabric_conn *conn, uint32_t n)
{
	conn->credits += n;
	if (conn->state == PD_FABRIC_CONN_UP && conn->credits > conn->peer_grant) {
		conn->fab->stats.recv_errors++;
		PD_FABRIC_WARN_RL(conn->fab, 0,
		                  "peer %u tenant %u returned more credits than granted",
		                  conn->peer_id, conn->tenant);
		pd_fabric_conn_fail(conn, -EPROTO);
		return false;
	}
	return true;
}

/* Give a receive buffer back to the SRX without telling the app. */
static void recv_repost(struct pd_fabric_rx *rx, struct pd_fabric_recv_op *op)
{
	struct pd_fabric *fab = rx->fab;
	int ret = pd_fabric_msg_recv(rx, op);
	if (ret == 0) {
		op->posted = true;
		rx->n_posted++;
		return;
	}
	/* Lost to the fabric: hand it back to its owner rather than leak it. */
	fab->stats.recv_errors++;
	PD_FABRIC_WARN_RL(fab, pd_fabric_errno(ret), "fi_recv repost on tenant %u failed",
	                  rx->tenant);
	void *buf_ctx = op->buf_ctx;
	pd_fabric_recv_op_put(rx, op);
	if (!fab->closing)
		fab->cb.on_recv_cancel(fab->app, buf_ctx);
}

static int two_sided_rx_open(struct pd_fabric_rx *rx)
{
	(void)rx;
	return 0;
}

static void two_sided_rx_close(struct pd_fabric_rx *rx)
{
	(void)rx;
}

static int two_sided_rx_post(struct pd_fabric_rx *rx, struct pd_fabric_mr *mr,
                             struct pd_fabric_recv_op *op)
{
	(void)mr;
	int ret = pd_fabric_msg_recv(rx, op);
	if (ret != 0)
		return ret;
	op->posted = true;
	rx->n_posted++;

	/* This post replaces the oldest delivered message: its sender gets the credit. */
	struct pd_fabric_conn *conn = pd_fabric_fifo_pop_conn(rx);
	if (conn != NULL) {
		conn->owed++;
		pd_fabric_conn_ctrl_check(conn);
	}
	return 0;
}

static int two_sided_conn_open(struct pd_fabric_conn *conn)
{
	(void)conn;
	return 0;
}

static void two_sided_conn_close(struct pd_fabric_conn *conn)
{
	(void)conn;
}

/* The peer's grant becomes credits; credits returned by early messages add to it. */
static bool two_sided_conn_up(struct pd_fabric_conn *conn)
{
	return conn_add_credits(conn, conn->peer_grant);
}

static void two_sided_conn_reap(struct pd_fabric_conn *conn)
{
	(void)conn; /* receives stay posted on the SRX for the other connections */
}

/* Owed credits ride on every DATA message (up to 16383). */
static int two_sided_data_send(struct pd_fabric_conn *conn, struct pd_fabric_send_op *op,
                               const void *buf, size_t len, void *desc)
{
	if (conn->credits == 0)
		return -FI_EAGAIN;
	uint32_t n = min_u32(conn->owed, PD_FABRIC_IMM_CREDITS_MAX);
	uint32_t imm = pd_fabric_imm_encode(conn->fab->local_id, n, PD_FABRIC_IMM_DATA);
	int ret = pd_fabric_msg_send(conn, op, buf, len, desc, imm);
	if (ret != 0)
		return ret;
	conn->credits--;
	conn->owed -= n;
	conn->unreturned -= n;
	return 0;
}

static uint32_t credit_threshold(const struct pd_fabric_conn *conn)
{
	uint32_t half = (conn->grant + 1) / 2;
	return half > 0 ? half : 1;
}

/*
 * A CREDIT-only message when enough credits are owed. Every such message carries
 * >= ceil(grant/2) credits, and returned-but-unprocessed credits never exceed grant, so
 * at most 2 sit unprocessed at the peer: the reserve.
 */
static int two_sided_ctrl_send(struct pd_fabric_conn *conn)
{
	struct pd_fabric *fab = conn->fab;
	if (conn->owed < credit_threshold(conn))
		return 0;
	uint32_t n = min_u32(conn->owed, PD_FABRIC_IMM_CREDITS_MAX);
	int ret =
	    pd_fabric_ctrl_post(conn, fab->credit_buf, PD_FABRIC_CREDIT_MSG_LEN, fab->credit_desc,
	                        pd_fabric_imm_encode(fab->local_id, n, PD_FABRIC_IMM_CREDIT));
	if (ret != 0)
		return ret;
	conn->owed -= n;
	conn->unreturned -= n;
	return 1;
}

static void two_sided_recv_done(struct pd_fabric_rx *rx, struct pd_fabric_recv_op *op,
                                uint64_t flags, size_t len, uint64_t imm, int err)
{
	struct pd_fabric *fab = rx->fab;
	op->posted = false;
	rx->n_posted--;

	if (rx->closing || fab->closing) { /* being destroyed: every buffer goes back */
		void *buf_ctx = op->buf_ctx;
		pd_fabric_recv_op_put(rx, op);
		if (!fab->closing)
			fab->cb.on_recv_cancel(fab->app, buf_ctx);
		return;
	}
	if (!(flags & FI_REMOTE_CQ_DATA)) {
		/* No sender to credit (or a flushed receive): the buffer goes back as it was. */
		if (err != ECANCELED)
			fab->stats.recv_errors++;
		recv_repost(rx, op);
		return;
	}

	unsigned kind = pd_fabric_imm_kind(imm);
	struct pd_fabric_conn *conn = pd_fabric_rx_sender(rx, pd_fabric_imm_peer(imm));
	if (conn == NULL) {
		fab->stats.recv_errors++;
		recv_repost(rx, op);
		return;
	}
	if (!conn_add_credits(conn, pd_fabric_imm_credits(imm))) {
		recv_repost(rx, op);
		return;
	}
	if (kind == PD_FABRIC_IMM_CREDIT && err == 0) {
		fab->stats.credit_msgs_recv++;
		recv_repost(rx, op);
		return;
	}
	if (kind != PD_FABRIC_IMM_DATA && kind != PD_FABRIC_IMM_CREDIT) {
		fab->stats.recv_errors++;
		recv_repost(rx, op);
		return;
	}
	if (kind == PD_FABRIC_IMM_DATA && conn->unreturned >= conn->grant) {
		fab->stats.recv_errors++;
		PD_FABRIC_WARN_RL(fab, 0, "peer %u tenant %u sent without credit", conn->peer_id,
		                  conn->tenant);
		pd_fabric_conn_fail(conn, -EPROTO);
		recv_repost(rx, op);
		return;
	}
	if (err != 0) {
		/* A DATA message lost (truncated...): the buffer is reposted here, so its
		 * credit goes straight back to the sender. */
		fab->stats.recv_errors++;
		if (kind == PD_FABRIC_IMM_DATA) {
			conn->unreturned++;
			conn->owed++;
		}
		recv_repost(rx, op);
		pd_fabric_conn_ctrl_check(conn);
		return;
	}

	conn->unreturned++;
	pd_fabric_fifo_push(rx, conn->handle);
	fab->stats.msgs_recv++;
	fab->stats.bytes_recv += len;
	void *buf_ctx = op->buf_ctx;
	pd_fabric_recv_op_put(rx, op);
	fab->cb.on_recv(fab->app, conn, buf_ctx, len);
}

static void two_sided_ctrl_done(struct pd_fabric_conn *conn, const void *buf)
{
	(void)conn;
	(void)buf; /* the one credit marker buffer is never written */
}

/* Nothing of ours writes here: a peer that does is counted, not trusted. */
static void two_sided_remote_write(struct pd_fabric_rx *rx, uint64_t flags, size_t len,
                                   uint64_t imm, int err)
{
	(void)flags;
	(void)len;
	(void)imm;
	(void)err;
	rx->fab->stats.recv_errors++;
}

const struct pd_fabric_ops pd_fabric_two_sided_ops = {
    .name = "two-sided",
    .caps = FI_MSG,
    .mode = 0,
    .mr_access = FI_SEND | FI_RECV,
    .ctrl_depth = 1,
    .rx_open = two_sided_rx_open,
    .rx_close = two_sided_rx_close,
    .rx_post = two_sided_rx_post,
    .conn_open = two_sided_conn_open,
    .conn_close = two_sided_conn_close,
    .conn_up = two_sided_conn_up,
    .conn_reap = two_sided_conn_reap,
    .data_send = two_sided_data_send,
    .ctrl_send = two_sided_ctrl_send,
    .ctrl_done = two_sided_ctrl_done,
    .recv_done = two_sided_recv_done,
    .remote_write = two_sided_remote_write,
};
