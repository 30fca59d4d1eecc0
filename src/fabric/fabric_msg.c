/* SPDX-License-Identifier: Apache-2.0 */
/* Operation records and the plain posts on an SRX and a conn that every primitive uses. */
#include "fabric/fabric_internal.h"

#include <stdlib.h>

#define NO_INDEX PD_FABRIC_NO_INDEX

_Static_assert(offsetof(struct pd_fabric_op, fi_ctx) == 0, "fi_ctx first");

/* ---- operation records ---------------------------------------------------------------------- */

struct pd_fabric_recv_op *pd_fabric_recv_op_get(struct pd_fabric_rx *rx)
{
	if (rx->recv_free == NO_INDEX)
		return NULL;
	struct pd_fabric_recv_op *op = &rx->recv_ops[rx->recv_free];
	rx->recv_free = op->next_free;
	op->next_free = NO_INDEX;
	return op;
}

void pd_fabric_recv_op_put(struct pd_fabric_rx *rx, struct pd_fabric_recv_op *op)
{
	op->posted = false;
	op->buf_ctx = NULL;
	op->slot = PD_FABRIC_SLOT_NONE;
	op->owner = 0;
	op->next_free = rx->recv_free;
	rx->recv_free = (uint32_t)(op - rx->recv_ops);
}

/* Send records live in chunks owned by the rx (whose CQ reports them), never per message. */
struct pd_fabric_send_op *pd_fabric_send_op_get(struct pd_fabric_rx *rx)
{
	if (rx->send_free == NULL) {
		struct pd_fabric_send_chunk *chunk = calloc(1, sizeof(*chunk));
		if (chunk == NULL)
			return NULL;
		chunk->next = rx->send_chunks;
		rx->send_chunks = chunk;
		for (size_t i = 0; i < PD_FABRIC_SEND_CHUNK; i++) {
			chunk->ops[i].op.kind = PD_FABRIC_OP_SEND;
			chunk->ops[i].next = rx->send_free;
			rx->send_free = &chunk->ops[i];
		}
	}
	struct pd_fabric_send_op *op = rx->send_free;
	rx->send_free = op->next;
	op->next = op->prev = NULL;
	op->send_ctx = NULL;
	op->conn_handle = 0;
	op->credit = false;
	op->ctrl_buf = NULL;
	op->orphan = false;
	op->in_flight = false;
	return op;
}

void pd_fabric_send_op_put(struct pd_fabric_rx *rx, struct pd_fabric_send_op *op)
{
	op->in_flight = false;
	op->prev = NULL;
	op->next = rx->send_free;
	rx->send_free = op;
}

/* ---- two-sided posts: the DATA path of two-sided, the control messages of both -------------- */

int pd_fabric_msg_recv(struct pd_fabric_rx *rx, struct pd_fabric_recv_op *op)
{
	return (int)fi_recv(rx->srx, op->buf, op->len, op->desc, FI_ADDR_UNSPEC, &op->op.fi_ctx);
}

int pd_fabric_msg_send(struct pd_fabric_conn *conn, struct pd_fabric_send_op *op, const void *buf,
                       size_t len, void *desc, uint32_t imm)
{
	return (int)fi_senddata(conn->ep, buf, len, desc, imm, FI_ADDR_UNSPEC, &op->op.fi_ctx);
}
