/* SPDX-License-Identifier: Apache-2.0 */
/* One-sided data path: fi_writedata into slots the receiver granted; grants are control messages.
 */
#include "fabric/fabric_internal.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rdma/fi_rma.h>

#define NO_INDEX PD_FABRIC_NO_INDEX
/* Receives a connection adds to the SRX for the peer's GRANT messages (see ctrl_send),
 * and GRANT messages it may have in flight (one send buffer each). */
#define CTRL_RECVS PD_FABRIC_GRANT_MSGS_MAX
#define CTRL_SENDS PD_FABRIC_GRANT_MSGS_MAX

_Static_assert(sizeof(struct pd_fabric_wire_grants) == 8, "grant header wire format");
_Static_assert(sizeof(struct pd_fabric_wire_grant) == 24, "grant wire format");
_Static_assert(PD_FABRIC_GRANTS_PER_MSG == 341, "grants per GRANT message (docs/fabric.md)");
_Static_assert(PD_FABRIC_GRANT_MSGS_MAX <= PD_FABRIC_CREDIT_RESERVE,
               "GRANT messages unprocessed at a peer fit the reserve");
_Static_assert(CTRL_SENDS <= 8, "conn->ctrl_busy is a bit mask of 8");

/*
 * Registered buffers of the layer's own, PD_FABRIC_CTRL_MSG_MAX each: receives posted on
 * the SRX (for GRANT messages, and on verbs for writes) and, for a connection, the
 * buffers its GRANT messages are sent from. Receives cannot be taken back from an SRX one by one,
 * so a region outlives its connection: it waits in rx->ctrl_spare for the next one.
 */
struct pd_fabric_ctrl_region {
	struct pd_fabric_ctrl_region *next;       /* rx->ctrl_regions */
	struct pd_fabric_ctrl_region *next_spare; /* rx->ctrl_spare */
	struct fid_mr *mr;
	void *desc;
	char *mem;
	char *send_buf; /* CTRL_SENDS buffers; NULL in a receive-only region */
	uint32_t n_recv;
	struct pd_fabric_recv_op recv[];
};

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* ---- slot lists: the rx's pool and each conn's owed slots (FIFOs of record indices) -- */

static void list_append(struct pd_fabric_rx *rx, uint32_t *head, uint32_t *tail,
                        struct pd_fabric_recv_op *op)
{
	uint32_t idx = (uint32_t)(op - rx->recv_ops);
	op->next_free = NO_INDEX;
	if (*tail == NO_INDEX)
		*head = idx;
	else
		rx->recv_ops[*tail].next_free = idx;
	*tail = idx;
}

static struct pd_fabric_recv_op *list_pop(struct pd_fabric_rx *rx, uint32_t *head, uint32_t *tail)
{
	if (*head == NO_INDEX)
		return NULL;
	struct pd_fabric_recv_op *op = &rx->recv_ops[*head];
	*head = op->next_free;
	if (*head == NO_INDEX)
		*tail = NO_INDEX;
	op->next_free = NO_INDEX;
	return op;
}

static void pool_push(struct pd_fabric_rx *rx, struct pd_fabric_recv_op *op)
{
	op->slot = PD_FABRIC_SLOT_POOL;
	op->owner = 0;
	list_append(rx, &rx->pool_head, &rx->pool_tail, op);
	rx->n_pool++;
}

static void owed_push(struct pd_fabric_conn *conn, struct pd_fabric_recv_op *op)
{
	op->slot = PD_FABRIC_SLOT_OWED;
	op->owner = conn->handle;
	list_append(conn->rx, &conn->owed_head, &conn->owed_tail, op);
	conn->owed++;
}

/* Slots of this side the peer has, is about to get, or wrote and the app holds. */
static uint32_t conn_assigned(const struct pd_fabric_conn *conn)
{
	return conn->granted + conn->unreturned + conn->owed;
}

/* Give conn pool slots up to its grant; true if it got any. */
static bool conn_fill(struct pd_fabric_conn *conn)
{
	struct pd_fabric_rx *rx = conn->rx;
	bool got = false;
	while (rx->n_pool > 0 && conn_assigned(conn) < conn->grant) {
		owed_push(conn, list_pop(rx, &rx->pool_head, &rx->pool_tail));
		rx->n_pool--;
		got = true;
	}
	return got;
}

/* The pool grew: connections still short of their grant get it, round robin. */
static void rx_fill(struct pd_fabric_rx *rx)
{
	if (rx->closing || rx->fab->closing)
		return;
	/* A failed control message removes its conn from rx->peers: n_peers is re-read,
	 * and a conn skipped that way is served by the next fill. */
	for (uint32_t i = 0; i < rx->n_peers && rx->n_pool > 0; i++) {
		struct pd_fabric_conn *conn = rx->peers[(rx->fill_next + i) % rx->n_peers];
		if (conn->state == PD_FABRIC_CONN_UP && conn_fill(conn))
			pd_fabric_conn_ctrl_check(conn);
	}
	rx->fill_next++;
}

/* ---- the layer's control buffers ---------------------------------------------------- */

static void ctrl_repost(struct pd_fabric_rx *rx, struct pd_fabric_recv_op *op)
{
	int ret = pd_fabric_msg_recv(rx, op);
	if (ret == 0) {
		op->posted = true;
		return;
	}
	rx->fab->stats.recv_errors++;
	PD_FABRIC_WARN_RL(rx->fab, pd_fabric_errno(ret),
	                  "fi_recv of a control receive on tenant %u failed", rx->tenant);
}

static int region_open(struct pd_fabric_rx *rx, uint32_t n_recv, bool with_send,
                       struct pd_fabric_ctrl_region **out)
{
	struct pd_fabric *fab = rx->fab;
	size_t size = ((size_t)n_recv + (with_send ? CTRL_SENDS : 0)) * PD_FABRIC_CTRL_MSG_MAX;
	struct pd_fabric_ctrl_region *region =
	    calloc(1, sizeof(*region) + (size_t)n_recv * sizeof(region->recv[0]));
	if (region == NULL)
		return -ENOMEM;
	region->mem = aligned_alloc(64, size);
	if (region->mem == NULL) {
		free(region);
		return -ENOMEM;
	}
	int ret = fi_mr_reg(fab->domain, region->mem, size, FI_SEND | FI_RECV, 0,
	                    fab->next_mr_key++, 0, &region->mr, NULL);
	if (ret != 0) {
		ret = pd_fabric_errno(ret);
		PD_FABRIC_WARN_RL(fab, ret, "fi_mr_reg of control buffers for tenant %u failed",
		                  rx->tenant);
		free(region->mem);
		free(region);
		return -ret;
	}
	region->desc = fab->mr_local ? fi_mr_desc(region->mr) : NULL;
	region->n_recv = n_recv;
	region->send_buf = with_send ? region->mem + (size_t)n_recv * PD_FABRIC_CTRL_MSG_MAX : NULL;
	/* From here it is the rx's (freed with it), even if a post below fails. */
	region->next = rx->ctrl_regions;
	rx->ctrl_regions = region;
	for (uint32_t i = 0; i < n_recv; i++) {
		struct pd_fabric_recv_op *op = &region->recv[i];
		op->op.kind = PD_FABRIC_OP_RECV;
		op->buf = region->mem + (size_t)i * PD_FABRIC_CTRL_MSG_MAX;
		op->len = PD_FABRIC_CTRL_MSG_MAX;
		op->desc = region->desc;
		op->next_free = NO_INDEX;
		ret = pd_fabric_msg_recv(rx, op);
		if (ret != 0) {
			ret = pd_fabric_errno(ret);
			PD_FABRIC_WARN_RL(fab, ret,
			                  "fi_recv of a control receive on tenant %u failed",
			                  rx->tenant);
			return -ret;
		}
		op->posted = true;
	}
	*out = region;
	return 0;
}

/* ---- receive contexts and connections ------------------------------------------------ */

static int one_sided_rx_open(struct pd_fabric_rx *rx)
{
	rx->pool_head = rx->pool_tail = NO_INDEX;
	if (!rx->fab->write_needs_recv)
		return 0;
	/* verbs: each write with immediate data consumes a posted receive, and a GRANT
	 * message may land in any receive of the SRX, so all are control-sized (a
	 * zero-length one hit by a GRANT would be a length error that breaks the QP): one
	 * per slot that can be granted, on top of the per-connection ones. */
	struct pd_fabric_ctrl_region *region;
	return region_open(rx, rx->depth, false, &region);
}

static void one_sided_rx_close(struct pd_fabric_rx *rx)
{
	while (rx->ctrl_regions != NULL) {
		struct pd_fabric_ctrl_region *region = rx->ctrl_regions;
		rx->ctrl_regions = region->next;
		int ret = fi_close(&region->mr->fid);
		if (ret != 0)
			PD_FABRIC_WARN_RL(rx->fab, pd_fabric_errno(ret),
			                  "fi_close(mr) of control buffers failed");
		free(region->mem);
		free(region);
	}
	rx->ctrl_spare = NULL;
}

/* A posted buffer becomes a slot: for the sender whose message it replaces, else the pool. */
static int one_sided_rx_post(struct pd_fabric_rx *rx, struct pd_fabric_mr *mr,
                             struct pd_fabric_recv_op *op)
{
	struct pd_fabric *fab = rx->fab;
	/* What the peer writes to follows the mr_mode the provider returned. */
	op->raddr =
	    fab->mr_virt ? (uint64_t)(uintptr_t)op->buf : (uint64_t)((char *)op->buf - mr->base);
	op->rkey = mr->key;
	op->posted = true;
	rx->n_posted++;

	struct pd_fabric_conn *conn = pd_fabric_fifo_pop_conn(rx);
	if (conn != NULL) {
		conn->unreturned--;
		owed_push(conn, op);
		pd_fabric_conn_ctrl_check(conn);
		return 0;
	}
	pool_push(rx, op);
	rx_fill(rx);
	return 0;
}

static int one_sided_conn_open(struct pd_fabric_conn *conn)
{
	struct pd_fabric_rx *rx = conn->rx;
	conn->owed_head = conn->owed_tail = NO_INDEX;
	struct pd_fabric_ctrl_region *region = rx->ctrl_spare;
	if (region != NULL) {
		rx->ctrl_spare = region->next_spare;
	} else {
		int ret = region_open(rx, CTRL_RECVS, true, &region);
		if (ret != 0)
			return ret;
	}
	conn->ctrl = region;
	return 0;
}

static void one_sided_conn_close(struct pd_fabric_conn *conn)
{
	/* Slots the dead peer granted are forgotten; our receives stay for the next conn. */
	free(conn->held);
	conn->held = NULL;
	conn->ctrl_busy = 0;
	if (conn->ctrl != NULL) {
		conn->ctrl->next_spare = conn->rx->ctrl_spare;
		conn->rx->ctrl_spare = conn->ctrl;
		conn->ctrl = NULL;
	}
}

/* The initial grant: pool slots up to conn->grant, sent by the control check after on_up. */
static bool one_sided_conn_up(struct pd_fabric_conn *conn)
{
	/* The peer grants no more than 2 GRANT messages' worth unwritten (ctrl_send). */
	uint32_t cap =
	    min_u32(conn->peer_grant, PD_FABRIC_GRANT_MSGS_MAX * PD_FABRIC_GRANTS_PER_MSG);
	conn->held = calloc(cap, sizeof(*conn->held));
	if (conn->held == NULL) {
		pd_fabric_conn_fail(conn, -ENOMEM);
		return false;
	}
	conn->held_cap = cap;
	conn->held_head = 0;
	conn->grant_initial = conn_fill(conn);
	return true;
}

/* Nothing can write into the conn's slots any more (endpoint closed, CQ drained). */
static void one_sided_conn_reap(struct pd_fabric_conn *conn)
{
	struct pd_fabric_rx *rx = conn->rx;
	for (uint32_t i = 0; i < rx->depth; i++) {
		struct pd_fabric_recv_op *op = &rx->recv_ops[i];
		if ((op->slot == PD_FABRIC_SLOT_OWED || op->slot == PD_FABRIC_SLOT_GRANTED) &&
		    op->owner == conn->handle)
			pool_push(rx, op);
	}
	conn->owed_head = conn->owed_tail = NO_INDEX;
	conn->owed = conn->granted = conn->n_grant_msgs = 0;
	rx_fill(rx);
}

/* ---- sending --------------------------------------------------------------------------- */

static int one_sided_data_send(struct pd_fabric_conn *conn, struct pd_fabric_send_op *op,
                               const void *buf, size_t len, void *desc)
{
	/* tcp reports no length for a write, so 0 at the target means "not reported":
	 * an empty message would show the app the slot's old contents. */
	if (len == 0)
		return -FI_EINVAL;
	if (conn->credits == 0)
		return -FI_EAGAIN;
	/* Only slots from this conn's GRANT messages are here. Never write past one: the
	 * target drops the whole connection on a bad write, and we would not know why. */
	const struct pd_fabric_slot *slot = &conn->held[conn->held_head];
	if (len > slot->len)
		return -FI_EMSGSIZE;
	uint32_t imm = pd_fabric_write_imm_encode(conn->fab->local_id, slot->id);
	ssize_t ret = fi_writedata(conn->ep, buf, len, desc, imm, FI_ADDR_UNSPEC, slot->addr,
	                           slot->key, &op->op.fi_ctx);
	if (ret != 0)
		return (int)ret;
	conn->held_head = (conn->held_head + 1) % conn->held_cap;
	conn->credits--;
	conn->fab->stats.writes++;
	return 0;
}

/*
 * A GRANT message with the owed slots (up to 341) while fewer than 2 GRANT messages
 * still have unwritten slots. The peer processes messages in order and writes slots in
 * the order granted, so a message whose slots are all written was processed: at most 2
 * sit unprocessed at the peer, which keeps CTRL_RECVS receives per connection for them.
 * A peer without slots has none unwritten, so it always gets the next message.
 * Batching: the initial grant goes at once (2 messages if it needs them); after that a
 * message waits until half of what the peer may have (assigned) is owed, as credits do.
 */
static int one_sided_ctrl_send(struct pd_fabric_conn *conn)
{
	struct pd_fabric *fab = conn->fab;
	struct pd_fabric_rx *rx = conn->rx;
	if (conn->owed == 0 || conn->n_grant_msgs >= PD_FABRIC_GRANT_MSGS_MAX ||
	    (!conn->grant_initial && conn->owed < (conn_assigned(conn) + 1) / 2)) {
		conn->grant_initial = false;
		return 0;
	}
	unsigned b = 0;
	while (b < CTRL_SENDS && (conn->ctrl_busy & 1u << b))
		b++;
	if (b == CTRL_SENDS) /* cannot happen: ctrl_depth bounds what is in flight */
		return 0;
	uint32_t n = min_u32(conn->owed, PD_FABRIC_GRANTS_PER_MSG);
	char *buf = conn->ctrl->send_buf + (size_t)b * PD_FABRIC_CTRL_MSG_MAX;
	struct pd_fabric_wire_grants hdr = {
	    .magic = htole32(PD_FABRIC_GRANT_MAGIC),
	    .count = htole16((uint16_t)n),
	};
	memcpy(buf, &hdr, sizeof(hdr));
	size_t len = sizeof(hdr);
	uint32_t idx = conn->owed_head;
	for (uint32_t i = 0; i < n; i++) {
		const struct pd_fabric_recv_op *op = &rx->recv_ops[idx];
		struct pd_fabric_wire_grant g = {
		    .slot = htole16((uint16_t)idx),
		    .len = htole32(op->len > UINT32_MAX ? UINT32_MAX : (uint32_t)op->len),
		    .addr = htole64(op->raddr),
		    .key = htole64(op->rkey),
		};
		memcpy(buf + len, &g, sizeof(g));
		len += sizeof(g);
		idx = op->next_free;
	}
	int ret = pd_fabric_ctrl_post(conn, buf, len, conn->ctrl->desc,
	                              pd_fabric_imm_encode(fab->local_id, 0, PD_FABRIC_IMM_GRANT));
	if (ret != 0)
		return ret;
	conn->ctrl_busy |= (uint8_t)(1u << b);
	for (uint32_t i = 0; i < n; i++)
		list_pop(rx, &conn->owed_head, &conn->owed_tail)->slot = PD_FABRIC_SLOT_GRANTED;
	conn->owed -= n;
	conn->granted += n;
	conn->grant_msgs[conn->n_grant_msgs++] = n;
	fab->stats.grants_sent += n;
	return 1;
}

static void one_sided_ctrl_done(struct pd_fabric_conn *conn, const void *buf)
{
	size_t b = (size_t)((const char *)buf - conn->ctrl->send_buf) / PD_FABRIC_CTRL_MSG_MAX;
	conn->ctrl_busy &= (uint8_t) ~(1u << b);
}

/* ---- receiving ------------------------------------------------------------------------- */

/* Slots from a GRANT message join the ones conn may write into; false: protocol error. */
static bool grants_apply(struct pd_fabric_conn *conn, const char *buf, size_t len)
{
	struct pd_fabric_wire_grants hdr;
	if (conn->held == NULL || len < sizeof(hdr))
		return false;
	memcpy(&hdr, buf, sizeof(hdr));
	uint32_t n = le16toh(hdr.count);
	if (le32toh(hdr.magic) != PD_FABRIC_GRANT_MAGIC || n == 0 || n > PD_FABRIC_GRANTS_PER_MSG ||
	    len != sizeof(hdr) + (size_t)n * sizeof(struct pd_fabric_wire_grant) ||
	    conn->credits + n > conn->held_cap)
		return false;
	for (uint32_t i = 0; i < n; i++) {
		struct pd_fabric_wire_grant g;
		memcpy(&g, buf + sizeof(hdr) + (size_t)i * sizeof(g), sizeof(g));
		if (le32toh(g.len) == 0)
			return false;
		conn->held[(conn->held_head + conn->credits) % conn->held_cap] =
		    (struct pd_fabric_slot){
		        .addr = le64toh(g.addr),
		        .key = le64toh(g.key),
		        .len = le32toh(g.len),
		        .id = le16toh(g.slot),
		    };
		conn->credits++;
	}
	conn->fab->stats.grants_recv += n;
	return true;
}

/*
 * A write with immediate data landed: check that the writer owns the slot, take the slot
 * out of the table and hand the buffer to the app. verbs reports the written length
 * (it must fit the slot); tcp 1.17 reports 0, and then the app gets the slot's length
 * (writes are never empty, see data_send) and reads the length from its header.
 */
static void one_sided_remote_write(struct pd_fabric_rx *rx, uint64_t flags, size_t len,
                                   uint64_t imm, int err)
{
	struct pd_fabric *fab = rx->fab;
	if (rx->closing || fab->closing)
		return;
	if (err != 0 || !(flags & FI_REMOTE_CQ_DATA)) {
		fab->stats.recv_errors++;
		return;
	}
	uint16_t peer = pd_fabric_imm_peer(imm);
	uint32_t id = pd_fabric_write_imm_slot(imm);
	struct pd_fabric_conn *conn = pd_fabric_rx_sender(rx, peer);
	if (conn == NULL) { /* conn gone: its slots return to the pool when it is reaped */
		fab->stats.recv_errors++;
		return;
	}
	struct pd_fabric_recv_op *op = id < rx->depth ? &rx->recv_ops[id] : NULL;
	if (op == NULL || op->slot != PD_FABRIC_SLOT_GRANTED || op->owner != conn->handle ||
	    len > op->len) {
		fab->stats.recv_errors++;
		struct pd_fabric_conn *owner = op != NULL && op->slot == PD_FABRIC_SLOT_GRANTED
		                                   ? pd_fabric_conn_lookup(fab, op->owner)
		                                   : NULL;
		if (owner != NULL && owner != conn && owner->state == PD_FABRIC_CONN_DEAD &&
		    owner->peer_id == peer)
			return; /* a late write of the conn this one replaced */
		PD_FABRIC_WARN_RL(fab, 0,
		                  "peer %u tenant %u wrote %zu bytes into slot %u: not its own",
		                  peer, rx->tenant, len, id);
		pd_fabric_conn_fail(conn, -EPROTO);
		return;
	}
	if (len == 0)
		len = op->len;
	op->slot = PD_FABRIC_SLOT_NONE;
	op->owner = 0;
	conn->granted--;
	if (conn->n_grant_msgs > 0 && --conn->grant_msgs[0] == 0) {
		for (uint32_t i = 1; i < conn->n_grant_msgs; i++)
			conn->grant_msgs[i - 1] = conn->grant_msgs[i];
		conn->n_grant_msgs--;
	}
	conn->unreturned++;
	pd_fabric_fifo_push(rx, conn->handle);
	fab->stats.msgs_recv++;
	fab->stats.bytes_recv += len;
	void *buf_ctx = op->buf_ctx;
	rx->n_posted--;
	pd_fabric_recv_op_put(rx, op);
	fab->cb.on_recv(fab->app, conn, buf_ctx, len);
	/* A GRANT message may have waited for this one's slots to be used up. */
	if (conn->owed > 0)
		pd_fabric_conn_ctrl_check(conn);
}

/* Only the layer's control receives are posted on the SRX in this mode. */
static void one_sided_recv_done(struct pd_fabric_rx *rx, struct pd_fabric_recv_op *op,
                                uint64_t flags, size_t len, uint64_t imm, int err)
{
	struct pd_fabric *fab = rx->fab;
	op->posted = false;
	if (rx->closing || fab->closing)
		return;                /* the layer's own buffers: freed with the rx */
	if (flags & FI_REMOTE_WRITE) { /* verbs: a write with immediate data consumed it */
		ctrl_repost(rx, op);
		one_sided_remote_write(rx, flags, len, imm, err);
		return;
	}
	if (!(flags & FI_REMOTE_CQ_DATA)) { /* flushed, or not from a palladium peer */
		if (err != ECANCELED)
			fab->stats.recv_errors++;
		ctrl_repost(rx, op);
		return;
	}
	struct pd_fabric_conn *conn = pd_fabric_rx_sender(rx, pd_fabric_imm_peer(imm));
	if (conn == NULL) {
		fab->stats.recv_errors++;
		ctrl_repost(rx, op);
		return;
	}
	bool ok = err == 0 && pd_fabric_imm_kind(imm) == PD_FABRIC_IMM_GRANT &&
	          grants_apply(conn, op->buf, len);
	ctrl_repost(rx, op);
	if (!ok) {
		fab->stats.recv_errors++;
		PD_FABRIC_WARN_RL(fab, err,
		                  "peer %u tenant %u sent a bad control message (%zu bytes)",
		                  conn->peer_id, conn->tenant, len);
		pd_fabric_conn_fail(conn, -EPROTO);
		return;
	}
	fab->stats.credit_msgs_recv++;
}

const struct pd_fabric_ops pd_fabric_one_sided_ops = {
    .name = "one-sided",
    .caps = FI_MSG | FI_RMA | FI_WRITE | FI_REMOTE_WRITE,
    .mode = FI_RX_CQ_DATA, /* honoured: receives are kept posted for writes then */
    .mr_access = FI_SEND | FI_RECV | FI_WRITE | FI_REMOTE_WRITE,
    .ctrl_depth = CTRL_SENDS,
    .rx_open = one_sided_rx_open,
    .rx_close = one_sided_rx_close,
    .rx_post = one_sided_rx_post,
    .conn_open = one_sided_conn_open,
    .conn_close = one_sided_conn_close,
    .conn_up = one_sided_conn_up,
    .conn_reap = one_sided_conn_reap,
    .data_send = one_sided_data_send,
    .ctrl_send = one_sided_ctrl_send,
    .ctrl_done = one_sided_ctrl_done,
    .recv_done = one_sided_recv_done,
    .remote_write = one_sided_remote_write,
};
