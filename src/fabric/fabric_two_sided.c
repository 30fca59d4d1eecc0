/* SPDX-License-Identifier: Apache-2.0 */
/* Two-sided data path: fi_senddata on the connection, fi_recv on the tenant's SRX. */
#include "fabric/fabric_internal.h"

static int two_sided_post_recv(struct pd_fabric_rx *rx, struct pd_fabric_recv_op *op)
{
	return (int)fi_recv(rx->srx, op->buf, op->len, op->desc, FI_ADDR_UNSPEC, &op->op.fi_ctx);
}

static int two_sided_send(struct pd_fabric_conn *conn, struct pd_fabric_send_op *op,
                          const void *buf, size_t len, void *desc, uint32_t imm)
{
	return (int)fi_senddata(conn->ep, buf, len, desc, imm, FI_ADDR_UNSPEC, &op->op.fi_ctx);
}

const struct pd_fabric_ops pd_fabric_two_sided_ops = {
    .name = "two-sided",
    .post_recv = two_sided_post_recv,
    .send = two_sided_send,
};
