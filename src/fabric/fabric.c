/* SPDX-License-Identifier: Apache-2.0 */
/* Fabric layer over libfabric FI_EP_MSG: connections, receive contexts, control messages. */
#include "fabric/fabric_internal.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <rdma/fi_errno.h>

#include "common/log.h"

#define COMP PD_FABRIC_LOG_COMP
#define CQ_BATCH 16   /* completions per fi_cq_read */
#define CQ_BUDGET 256 /* completions per rx per pd_fabric_progress() */
#define CQ_EXTRA 256  /* CQ entries beyond 2 * depth, for sends */
#define EQ_BUDGET 64  /* events per pd_fabric_progress() */
#define EQ_SIZE 256
#define CM_DATA_MAX 256 /* FI_OPT_CM_DATA_SIZE of the tcp provider */
#define NO_INDEX PD_FABRIC_NO_INDEX

_Static_assert(sizeof(uintptr_t) >= sizeof(uint64_t), "conn handles travel as fid contexts");
_Static_assert(sizeof(struct pd_fabric_wire_hello) == 15 + PD_FABRIC_MAC_LEN, "hello wire format");
_Static_assert(offsetof(struct pd_fabric_wire_hello, version) == 4, "version at offset 4");
_Static_assert(sizeof(struct pd_fabric_wire_accept) == sizeof(struct pd_fabric_wire_hello),
               "accept and hello share one layout");
_Static_assert(sizeof(struct pd_fabric_wire_hello) <= PD_FABRIC_CM_DATA_PORTABLE &&
                   sizeof(struct pd_fabric_wire_challenge) <= PD_FABRIC_CM_DATA_PORTABLE,
               "connection data fits verbs");
_Static_assert(PD_FABRIC_NONCE_LEN <= PD_FABRIC_MAC_LEN, "Nc fits the hello's proof field");
_Static_assert(offsetof(struct pd_fabric_op, fi_ctx) == 0, "fi_ctx first");

static const char credit_marker[PD_FABRIC_CREDIT_MSG_LEN] = {'P', 'D', 'C', 'R',
                                                             'E', 'D', 'I', 'T'};

/* ---- small helpers ------------------------------------------------------------------ */

#define LOG_CONN(fab, ...)                                                                         \
	do {                                                                                       \
		if (pd_log_rate_allow(&(fab)->rl_conn, COMP))                                      \
			PD_LOG_INFO(COMP, __VA_ARGS__);                                            \
	} while (0)

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* DATA credits that `credits` reserved receives allow (see PD_FABRIC_CREDIT_RESERVE). */
static uint32_t grant_from(uint16_t credits)
{
	return min_u32((uint32_t)credits - PD_FABRIC_CREDIT_RESERVE, PD_FABRIC_IMM_CREDITS_MAX);
}

/* ---- generation-checked connection handles ----------------------------------------- */

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

/* ---- per-rx peer table -------------------------------------------------------------- */

static struct pd_fabric_conn *rx_find_peer(const struct pd_fabric_rx *rx, uint16_t peer_id)
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

/* ---- operation records -------------------------------------------------------------- */

static struct pd_fabric_recv_op *recv_op_get(struct pd_fabric_rx *rx)
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
static struct pd_fabric_send_op *send_op_get(struct pd_fabric_rx *rx)
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

static void send_op_put(struct pd_fabric_rx *rx, struct pd_fabric_send_op *op)
{
	op->in_flight = false;
	op->prev = NULL;
	op->next = rx->send_free;
	rx->send_free = op;
}

static void conn_track(struct pd_fabric_conn *conn, struct pd_fabric_send_op *op)
{
	op->in_flight = true;
	op->prev = NULL;
	op->next = conn->in_flight;
	if (conn->in_flight != NULL)
		conn->in_flight->prev = op;
	conn->in_flight = op;
}

static void conn_untrack(struct pd_fabric_conn *conn, struct pd_fabric_send_op *op)
{
	if (op->prev != NULL)
		op->prev->next = op->next;
	else
		conn->in_flight = op->next;
	if (op->next != NULL)
		op->next->prev = op->prev;
	op->next = op->prev = NULL;
}

/* ---- the FIFO of conns owed a credit by the next post ------------------------------- */

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

/* ---- connections -------------------------------------------------------------------- */

static struct pd_fabric_conn *conn_new(struct pd_fabric *fab, struct pd_fabric_rx *rx,
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
static void conn_free(struct pd_fabric_conn *conn)
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

static int ep_open(struct pd_fabric_conn *conn, struct fi_info *info)
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
	struct pd_fabric_send_op *op = send_op_get(conn->rx);
	if (op == NULL)
		return -FI_ENOMEM;
	op->credit = true;
	op->ctrl_buf = buf;
	op->conn_handle = conn->handle;
	int ret = pd_fabric_msg_send(conn, op, buf, len, desc, imm);
	if (ret != 0) {
		send_op_put(conn->rx, op);
		return ret;
	}
	conn_track(conn, op);
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

/* ---- completions -------------------------------------------------------------------- */

static int eq_poll(struct pd_fabric *fab, int budget);

struct pd_fabric_conn *pd_fabric_rx_sender(struct pd_fabric_rx *rx, uint16_t peer_id)
{
	struct pd_fabric_conn *conn = rx_find_peer(rx, peer_id);
	if (conn != NULL && conn->state != PD_FABRIC_CONN_UP) {
		/* The peer is up before we read FI_CONNECTED: read it now, keep the order. */
		eq_poll(rx->fab, EQ_BUDGET);
		conn = rx_find_peer(rx, peer_id);
	}
	return conn;
}

static void send_done(struct pd_fabric_rx *rx, struct pd_fabric_send_op *op, int err)
{
	struct pd_fabric *fab = rx->fab;
	if (op->orphan) { /* reported as cancelled when its conn was reaped */
		send_op_put(rx, op);
		return;
	}
	struct pd_fabric_conn *conn = pd_fabric_conn_lookup(fab, op->conn_handle);
	if (conn != NULL)
		conn_untrack(conn, op);
	bool credit = op->credit;
	const void *ctrl_buf = op->ctrl_buf;
	void *send_ctx = op->send_ctx;
	send_op_put(rx, op);

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
static ssize_t stash_fill(struct pd_fabric_rx *rx, size_t max)
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
static int cq_poll(struct pd_fabric_rx *rx, int budget, bool drain)
{
	int n = 0;
	bool more = true;
	while (n < budget) {
		if (rx->stash_len == 0) {
			if (!more && !drain)
				break;
			rx->stash_head = 0; /* a whole batch fits without wrapping */
			ssize_t ret = stash_fill(rx, CQ_BATCH);
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
			more = ret == CQ_BATCH;
		}
		struct fi_cq_data_entry entry = rx->stash[rx->stash_head];
		rx->stash_head = (rx->stash_head + 1) % PD_FABRIC_STASH;
		rx->stash_len--;
		cq_dispatch(rx, entry.op_context, entry.flags, entry.len, entry.data, 0);
		n++;
	}
	return n;
}

/* ---- the reaper: on_down after every send of the conn is accounted for -------------- */

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
		cq_poll(conn->rx, INT_MAX, true);
	/* Anything the provider did not report is reported here, once; late completions of
	 * these records are recycled silently. */
	while (conn->in_flight != NULL) {
		struct pd_fabric_send_op *op = conn->in_flight;
		conn_untrack(conn, op);
		op->orphan = true;
		if (op->credit)
			continue;
		fab->stats.send_errors++;
		if (!fab->closing)
			fab->cb.on_send_done(fab->app, op->send_ctx, -ECANCELED);
	}
	fab->ops->conn_reap(conn);
	if (!fab->closing) {
		LOG_CONN(fab, "connection %s peer %u tenant %u down: %s",
		         conn->outbound ? "to" : "from", conn->peer_id, conn->tenant,
		         strerror(-conn->down_err));
		fab->cb.on_down(fab->app, conn, conn->down_err);
	}
	conn_free(conn);
}

static int reap_dead(struct pd_fabric *fab, const struct pd_fabric_rx *only)
{
	int n = 0;
	struct pd_fabric_conn *conn;
	while ((conn = dead_pop(fab, only)) != NULL) {
		conn_reap(conn);
		n++;
	}
	return n;
}

/* ---- connection management events -------------------------------------------------- */

static int resolve_peer(struct pd_fabric *fab, const char *host, uint16_t port,
                        struct fi_info **info);

static const char *primitive_name(unsigned primitive)
{
	return primitive == PD_FABRIC_ONE_SIDED   ? "one-sided"
	       : primitive == PD_FABRIC_TWO_SIDED ? "two-sided"
	                                          : "unknown";
}

/* Encode hello or accept data (same layout, different magic) into out. */
static void cm_data_encode(const struct pd_fabric *fab, const struct pd_fabric_hello *h,
                           uint32_t magic, uint8_t auth, const uint8_t *proof, size_t proof_len,
                           void *out)
{
	struct pd_fabric_wire_hello w = {
	    .magic = htole32(magic),
	    .version = htole16(h->version),
	    .peer_id = htole16(h->peer_id),
	    .tenant = htole16(h->tenant),
	    .credits = htole16(h->credits),
	    .primitive = htole16((uint16_t)fab->primitive),
	    .auth = auth,
	};
	if (proof != NULL)
		memcpy(w.proof, proof, proof_len);
	memcpy(out, &w, sizeof(w));
}

/* What an HMAC vouches for: the label keeps the three apart (docs/security.md). */
static const char mac_server_challenge[] = "palladium v2 server challenge";
static const char mac_client_proof[] = "palladium v2 client proof";
static const char mac_server_accept[] = "palladium v2 server accept";
#define MAC_LABEL_MAX 32
_Static_assert(sizeof(mac_server_challenge) <= MAC_LABEL_MAX &&
                   sizeof(mac_client_proof) <= MAC_LABEL_MAX &&
                   sizeof(mac_server_accept) <= MAC_LABEL_MAX,
               "MAC labels fit mac_compute's buffer");

/*
 * HMAC-SHA256 under the cluster key of: label (with its NUL), Nc, Ns, the fields of the
 * hello or accept h (version, peer id, tenant, credits; little-endian), the sender's
 * primitive, and the id of the side it is meant for. 0 or -EIO.
 */
static int mac_compute(const struct pd_fabric *fab, const char *label, const uint8_t *nc,
                       const uint8_t *ns, const struct pd_fabric_hello *h, uint16_t primitive,
                       uint16_t to_id, uint8_t out[PD_FABRIC_MAC_LEN])
{
	uint8_t msg[MAC_LABEL_MAX + 2 * PD_FABRIC_NONCE_LEN + 6 * sizeof(uint16_t)];
	uint16_t fields[6] = {htole16(h->version), htole16(h->peer_id), htole16(h->tenant),
	                      htole16(h->credits), htole16(primitive),  htole16(to_id)};
	size_t n = strlen(label) + 1;
	memcpy(msg, label, n);
	memcpy(msg + n, nc, PD_FABRIC_NONCE_LEN);
	n += PD_FABRIC_NONCE_LEN;
	memcpy(msg + n, ns, PD_FABRIC_NONCE_LEN);
	n += PD_FABRIC_NONCE_LEN;
	memcpy(msg + n, fields, sizeof(fields));
	n += sizeof(fields);
	unsigned int out_len = 0;
	if (HMAC(EVP_sha256(), fab->key, PD_FABRIC_KEY_LEN, msg, n, out, &out_len) == NULL ||
	    out_len != PD_FABRIC_MAC_LEN)
		return -EIO;
	return 0;
}

static bool mac_equal(const uint8_t *a, const uint8_t *b)
{
	return CRYPTO_memcmp(a, b, PD_FABRIC_MAC_LEN) == 0;
}

int pd_fabric_key_from_env(uint8_t key[PD_FABRIC_KEY_LEN])
{
	const char *hex = getenv(PD_FABRIC_KEY_ENV);
	if (hex == NULL || hex[0] == '\0')
		return 0;
	if (strlen(hex) != 2 * PD_FABRIC_KEY_LEN)
		return -EINVAL;
	for (size_t i = 0; i < PD_FABRIC_KEY_LEN; i++) {
		unsigned v;
		char byte[3] = {hex[2 * i], hex[2 * i + 1], '\0'};
		char *end;
		v = (unsigned)strtoul(byte, &end, 16);
		if (*end != '\0' || !isxdigit((unsigned char)byte[0]) ||
		    !isxdigit((unsigned char)byte[1]))
			return -EINVAL;
		key[i] = (uint8_t)v;
	}
	return 1;
}

/*
 * Parse connection data (hello or accept: same layout) sent to fab. 0, or -EPROTO /
 * -EACCES with reason set; fields that could be read are filled either way (for the
 * log). *auth and proof: what the peer sent, checked here only against fab being keyed.
 */
static int hello_from_wire(const struct pd_fabric *fab, const void *data, size_t len,
                           uint32_t magic, struct pd_fabric_hello *h, uint8_t *auth,
                           uint8_t proof[PD_FABRIC_MAC_LEN], char *reason, size_t reason_len)
{
	uint16_t version = fab->version;
	struct pd_fabric_wire_hello w;
	memset(h, 0, sizeof(*h));
	memset(&w, 0, sizeof(w));
	memcpy(&w, data, len < sizeof(w) ? len : sizeof(w));
	h->version = le16toh(w.version);
	h->peer_id = le16toh(w.peer_id);
	h->tenant = le16toh(w.tenant);
	h->credits = le16toh(w.credits);
	*auth = w.auth;
	memcpy(proof, w.proof, PD_FABRIC_MAC_LEN);
	if (len < offsetof(struct pd_fabric_wire_hello, peer_id) || le32toh(w.magic) != magic) {
		snprintf(reason, reason_len, "palladium: not a palladium peer");
		return -EPROTO;
	}
	if (h->version != version) {
		snprintf(reason, reason_len, "palladium: protocol version %u unsupported (want %u)",
		         h->version, version);
		return -EPROTO;
	}
	if (len < sizeof(w)) {
		snprintf(reason, reason_len, "palladium: short connection data (%zu bytes)", len);
		return -EPROTO;
	}
	unsigned primitive = le16toh(w.primitive);
	if (primitive != fab->primitive) {
		snprintf(reason, reason_len, "palladium: primitive %s, this side is %s",
		         primitive_name(primitive), primitive_name(fab->primitive));
		return -EPROTO;
	}
	if (h->credits < PD_FABRIC_CREDITS_MIN) {
		snprintf(reason, reason_len, "palladium: %u credits, need at least %u", h->credits,
		         PD_FABRIC_CREDITS_MIN);
		return -EPROTO;
	}
	if (w.auth > PD_FABRIC_AUTH_PROOF) {
		snprintf(reason, reason_len, "palladium: unknown authentication %u", w.auth);
		return -EPROTO;
	}
	if ((w.auth != PD_FABRIC_AUTH_NONE) != fab->keyed) {
		snprintf(reason, reason_len, "palladium: %s",
		         fab->keyed ? "no cluster key"
		                    : "unexpected cluster key (this side has none)");
		return -EACCES;
	}
	return 0;
}

static void connreq_refuse(struct pd_fabric *fab, struct fi_info *info,
                           const struct pd_fabric_hello *h, int err, const char *reason)
{
	fab->stats.refused++;
	PD_FABRIC_WARN_RL(fab, err, "refused connection from peer %u (version %u, tenant %u): %s",
	                  h->peer_id, h->version, h->tenant, reason);
	int ret = fi_reject(fab->pep, info->handle, reason, strlen(reason) + 1);
	if (ret != 0)
		PD_FABRIC_WARN_RL(fab, pd_fabric_errno(ret), "fi_reject failed");
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The live challenge issued to (peer_id, tenant), or NULL; expired ones die here. */
static struct pd_fabric_challenge *challenge_find(struct pd_fabric *fab, uint16_t peer_id,
                                                  uint16_t tenant, int64_t now)
{
	for (size_t i = 0; i < PD_FABRIC_CHALLENGES; i++) {
		struct pd_fabric_challenge *c = &fab->challenges[i];
		if (c->live && c->expires_ms <= now)
			c->live = false;
		if (c->live && c->peer_id == peer_id && c->tenant == tenant)
			return c;
	}
	return NULL;
}

/*
 * A keyed hello asking for a challenge: refuse it with one (a fresh Ns and the HMAC that
 * proves this side holds the key). One challenge per (peer, tenant): a newer request
 * replaces it. Not counted as a refusal: it is the first half of every keyed link.
 */
static void challenge_issue(struct pd_fabric *fab, struct fi_info *info,
                            const struct pd_fabric_hello *h, const uint8_t *nc)
{
	int64_t now = mono_ms();
	struct pd_fabric_challenge *c = challenge_find(fab, h->peer_id, h->tenant, now);
	for (size_t i = 0; c == NULL && i < PD_FABRIC_CHALLENGES; i++)
		if (!fab->challenges[i].live)
			c = &fab->challenges[i];
	if (c == NULL) { /* all taken: the one closest to expiring goes */
		c = &fab->challenges[0];
		for (size_t i = 1; i < PD_FABRIC_CHALLENGES; i++)
			if (fab->challenges[i].expires_ms < c->expires_ms)
				c = &fab->challenges[i];
	}
	c->live = false;
	struct pd_fabric_wire_challenge w = {
	    .magic = htole32(PD_FABRIC_CHALLENGE_MAGIC),
	    .version = htole16(fab->version),
	};
	memcpy(c->nc, nc, PD_FABRIC_NONCE_LEN);
	if (RAND_bytes(c->ns, PD_FABRIC_NONCE_LEN) != 1 ||
	    mac_compute(fab, mac_server_challenge, c->nc, c->ns, h, (uint16_t)fab->primitive,
	                fab->local_id, w.mac) != 0) {
		connreq_refuse(fab, info, h, -EIO, "palladium: cannot make a challenge");
		return;
	}
	memcpy(w.nonce, c->ns, PD_FABRIC_NONCE_LEN);
	c->live = true;
	c->peer_id = h->peer_id;
	c->tenant = h->tenant;
	c->expires_ms = now + PD_FABRIC_CHALLENGE_MS;
	int ret = fi_reject(fab->pep, info->handle, &w, sizeof(w));
	if (ret != 0) {
		c->live = false;
		PD_FABRIC_WARN_RL(fab, pd_fabric_errno(ret), "fi_reject (challenge) failed");
	}
}

/*
 * A keyed hello answering a challenge: 0 if proof is the HMAC over the nonces of the
 * challenge issued to this peer and tenant (nc, ns filled), else -EACCES and reason.
 * The challenge is used up either way: a proof is accepted once.
 */
static int proof_check(struct pd_fabric *fab, const struct pd_fabric_hello *h, const uint8_t *proof,
                       uint8_t *nc, uint8_t *ns, char *reason, size_t reason_len)
{
	struct pd_fabric_challenge *c = challenge_find(fab, h->peer_id, h->tenant, mono_ms());
	if (c == NULL) {
		snprintf(
		    reason, reason_len,
		    "palladium: no challenge outstanding for this peer (replayed or late proof)");
		return -EACCES;
	}
	c->live = false;
	memcpy(nc, c->nc, PD_FABRIC_NONCE_LEN);
	memcpy(ns, c->ns, PD_FABRIC_NONCE_LEN);
	uint8_t want[PD_FABRIC_MAC_LEN];
	if (mac_compute(fab, mac_client_proof, nc, ns, h, (uint16_t)fab->primitive, fab->local_id,
	                want) != 0) {
		snprintf(reason, reason_len, "palladium: cannot check the proof");
		return -EACCES;
	}
	if (!mac_equal(want, proof)) {
		snprintf(reason, reason_len,
		         "palladium: wrong proof (another cluster key, or a replay)");
		return -EACCES;
	}
	return 0;
}

static void on_connreq(struct pd_fabric *fab, struct fi_info *info, const void *data, size_t len)
{
	struct pd_fabric_hello hello;
	char reason[128];
	uint8_t auth, proof[PD_FABRIC_MAC_LEN];
	uint8_t nc[PD_FABRIC_NONCE_LEN] = {0}, ns[PD_FABRIC_NONCE_LEN] = {0};
	int err = hello_from_wire(fab, data, len, PD_FABRIC_HELLO_MAGIC, &hello, &auth, proof,
	                          reason, sizeof(reason));
	if (err != 0) {
		connreq_refuse(fab, info, &hello, err, reason);
		return;
	}
	if (auth == PD_FABRIC_AUTH_CHALLENGE) {
		challenge_issue(fab, info, &hello, proof);
		return;
	}
	if (auth == PD_FABRIC_AUTH_PROOF) {
		err = proof_check(fab, &hello, proof, nc, ns, reason, sizeof(reason));
		if (err != 0) {
			connreq_refuse(fab, info, &hello, err, reason);
			return;
		}
	}

	struct pd_fabric_rx *rx = NULL;
	uint16_t credits = 0;
	void *conn_ctx = NULL;
	err = fab->cb.on_connect_request(fab->app, &hello, &rx, &credits, &conn_ctx);
	if (err == 0 &&
	    (rx == NULL || rx->fab != fab || rx->closing || credits < PD_FABRIC_CREDITS_MIN))
		err = -EINVAL;
	if (err != 0) {
		snprintf(reason, sizeof(reason), "palladium: refused by peer: %s",
		         strerror(err < 0 ? -err : err));
		connreq_refuse(fab, info, &hello, err, reason);
		return;
	}

	struct pd_fabric_conn *old = rx_find_peer(rx, hello.peer_id);
	if (old != NULL && old->outbound) {
		snprintf(reason, sizeof(reason), "palladium: already connected to this peer");
		connreq_refuse(fab, info, &hello, -EEXIST, reason);
		return;
	}
	if (old != NULL) {
		/* The peer restarted. Dispatch what the old endpoint already completed while
		 * its sender id still means the old conn, then close it. */
		cq_poll(rx, INT_MAX, true);
		old = rx_find_peer(rx, hello.peer_id);
		if (old != NULL)
			pd_fabric_conn_fail(old, -ECONNRESET);
	}

	struct pd_fabric_conn *conn = conn_new(fab, rx, hello.peer_id, conn_ctx, false);
	if (conn == NULL) {
		snprintf(reason, sizeof(reason), "palladium: out of memory");
		connreq_refuse(fab, info, &hello, -ENOMEM, reason);
		return;
	}
	conn->peer_grant = grant_from(hello.credits);
	conn->grant = grant_from(credits);

	err = ep_open(conn, info);
	if (err != 0)
		goto refuse;
	struct pd_fabric_hello mine = {
	    .version = fab->version,
	    .peer_id = fab->local_id,
	    .tenant = rx->tenant,
	    .credits = credits,
	};
	uint8_t mac[PD_FABRIC_MAC_LEN];
	if (fab->keyed && mac_compute(fab, mac_server_accept, nc, ns, &mine,
	                              (uint16_t)fab->primitive, hello.peer_id, mac) != 0) {
		err = -EIO;
		goto close_ep;
	}
	struct pd_fabric_wire_accept accept;
	cm_data_encode(fab, &mine, PD_FABRIC_ACCEPT_MAGIC,
	               fab->keyed ? PD_FABRIC_AUTH_PROOF : PD_FABRIC_AUTH_NONE,
	               fab->keyed ? mac : NULL, sizeof(mac), &accept);
	err = fi_accept(conn->ep, &accept, sizeof(accept));
	if (err != 0) {
		err = -pd_fabric_errno(err);
		PD_FABRIC_WARN_RL(fab, err, "fi_accept for peer %u failed", hello.peer_id);
		goto close_ep;
	}
	return;

close_ep:
	fi_close(&conn->ep->fid);
	conn->ep = NULL;
refuse:
	conn_free(conn);
	snprintf(reason, sizeof(reason), "palladium: cannot accept: %s", strerror(-err));
	connreq_refuse(fab, info, &hello, err, reason);
}

/* The hello this side sends on conn (both requests of a keyed link say the same). */
static struct pd_fabric_hello conn_hello(const struct pd_fabric_conn *conn)
{
	return (struct pd_fabric_hello){
	    .version = conn->fab->version,
	    .peer_id = conn->fab->local_id,
	    .tenant = conn->tenant,
	    .credits = conn->hello_credits,
	};
}

/* This side refuses the peer it connected to: it did not prove the cluster key. */
static void server_refuse(struct pd_fabric_conn *conn, const char *why)
{
	struct pd_fabric *fab = conn->fab;
	fab->stats.refused++;
	PD_FABRIC_WARN_RL(fab, EACCES, "refused peer %u tenant %u: %s", conn->peer_id, conn->tenant,
	                  why);
	pd_fabric_conn_fail(conn, -EACCES);
}

/*
 * The server refused the first request with a challenge: check its HMAC (the server
 * holds the key), then connect again on a new endpoint (a refused one cannot) with the
 * proof.
 */
static void challenge_answer(struct pd_fabric_conn *conn, const struct pd_fabric_wire_challenge *ch)
{
	struct pd_fabric *fab = conn->fab;
	if (le16toh(ch->version) != fab->version) {
		PD_FABRIC_WARN_RL(fab, EPROTO, "peer %u tenant %u: challenge of version %u",
		                  conn->peer_id, conn->tenant, le16toh(ch->version));
		pd_fabric_conn_fail(conn, -EPROTO);
		return;
	}
	struct pd_fabric_hello hello = conn_hello(conn);
	uint8_t mac[PD_FABRIC_MAC_LEN];
	memcpy(conn->ns, ch->nonce, PD_FABRIC_NONCE_LEN);
	int err = mac_compute(fab, mac_server_challenge, conn->nc, conn->ns, &hello,
	                      (uint16_t)fab->primitive, conn->peer_id, mac);
	if (err == 0 && !fab->no_server_check && !mac_equal(mac, ch->mac)) {
		server_refuse(conn, "its challenge does not prove the cluster key");
		return;
	}
	if (err == 0)
		err = mac_compute(fab, mac_client_proof, conn->nc, conn->ns, &hello,
		                  (uint16_t)fab->primitive, conn->peer_id, mac);
	if (err != 0) {
		pd_fabric_conn_fail(conn, err);
		return;
	}
	fi_close(&conn->ep->fid);
	conn->ep = NULL;
	struct fi_info *info = NULL;
	int ret = resolve_peer(fab, conn->host, conn->port, &info);
	if (ret != 0) {
		pd_fabric_conn_fail(conn, -pd_fabric_errno(ret));
		return;
	}
	ret = ep_open(conn, info);
	if (ret == 0) {
		struct pd_fabric_wire_hello wire;
		cm_data_encode(fab, &hello, PD_FABRIC_HELLO_MAGIC, PD_FABRIC_AUTH_PROOF, mac,
		               sizeof(mac), &wire);
		conn->auth = PD_FABRIC_AUTH_PROOF;
		ret = fi_connect(conn->ep, info->dest_addr, &wire, sizeof(wire));
		if (ret != 0)
			ret = -pd_fabric_errno(ret);
	}
	fi_freeinfo(info);
	if (ret != 0)
		pd_fabric_conn_fail(conn, ret);
}

static void on_connected(struct pd_fabric *fab, struct pd_fabric_conn *conn, const void *data,
                         size_t len)
{
	if (conn->state == PD_FABRIC_CONN_CONNECTING) {
		struct pd_fabric_hello acc;
		char reason[128];
		uint8_t auth, proof[PD_FABRIC_MAC_LEN];
		int err = hello_from_wire(fab, data, len, PD_FABRIC_ACCEPT_MAGIC, &acc, &auth,
		                          proof, reason, sizeof(reason));
		if (err == 0 && (acc.peer_id != conn->peer_id || acc.tenant != conn->tenant)) {
			snprintf(reason, sizeof(reason), "peer id %u tenant %u, expected %u/%u",
			         acc.peer_id, acc.tenant, conn->peer_id, conn->tenant);
			err = -EPROTO;
		}
		if (err == 0 && fab->keyed) {
			uint8_t want[PD_FABRIC_MAC_LEN];
			if (conn->auth != PD_FABRIC_AUTH_PROOF || auth != PD_FABRIC_AUTH_PROOF ||
			    mac_compute(fab, mac_server_accept, conn->nc, conn->ns, &acc,
			                (uint16_t)fab->primitive, fab->local_id, want) != 0 ||
			    !mac_equal(want, proof)) {
				server_refuse(conn, "its accept does not prove the cluster key");
				return;
			}
		}
		if (err != 0) {
			PD_FABRIC_WARN_RL(fab, err, "bad accept from peer %u tenant %u: %s",
			                  conn->peer_id, conn->tenant, reason);
			pd_fabric_conn_fail(conn, err);
			return;
		}
		conn->peer_grant = grant_from(acc.credits);
		conn->state = PD_FABRIC_CONN_UP;
	} else if (conn->state == PD_FABRIC_CONN_ACCEPTING) {
		conn->state = PD_FABRIC_CONN_UP;
	} else {
		return;
	}
	if (!fab->ops->conn_up(conn))
		return;
	LOG_CONN(fab, "connection %s peer %u tenant %u up (credits %u/%u)",
	         conn->outbound ? "to" : "from", conn->peer_id, conn->tenant, conn->peer_grant,
	         conn->grant);
	fab->cb.on_up(fab->app, conn);
	pd_fabric_conn_ctrl_check(conn);
}

static struct pd_fabric_conn *conn_of_fid(const struct pd_fabric *fab, fid_t fid)
{
	if (fid == NULL || (fab->pep != NULL && fid == &fab->pep->fid))
		return NULL;
	/* Events of a closed endpoint are purged by fi_close(); the handle is checked too. */
	return pd_fabric_conn_lookup(fab, (uint64_t)(uintptr_t)fid->context);
}

static void eq_read_error(struct pd_fabric *fab)
{
	char err_data[CM_DATA_MAX + 1];
	struct fi_eq_err_entry entry;
	memset(&entry, 0, sizeof(entry));
	entry.err_data = err_data;
	entry.err_data_size = CM_DATA_MAX;
	ssize_t ret = fi_eq_readerr(fab->eq, &entry, 0);
	if (ret < 0) {
		if (ret != -FI_EAGAIN)
			PD_FABRIC_WARN_RL(fab, pd_fabric_errno((int)ret), "fi_eq_readerr failed");
		return;
	}
	int err = pd_fabric_errno(entry.err);
	if (err == 0)
		err = EIO;
	struct pd_fabric_conn *conn = conn_of_fid(fab, entry.fid);
	if (conn == NULL) {
		PD_FABRIC_WARN_RL(fab, err, "event queue error on %s",
		                  entry.fid != NULL && fab->pep != NULL &&
		                          entry.fid == &fab->pep->fid
		                      ? "listener"
		                      : "closed endpoint");
		return;
	}
	size_t n = entry.err_data_size;
	if (entry.err_data != err_data) /* the provider kept its own copy */
		n = 0;
	if (n > CM_DATA_MAX)
		n = CM_DATA_MAX;
	if (err == ECONNREFUSED && conn->state == PD_FABRIC_CONN_CONNECTING &&
	    conn->auth == PD_FABRIC_AUTH_CHALLENGE &&
	    n == sizeof(struct pd_fabric_wire_challenge)) {
		struct pd_fabric_wire_challenge ch;
		memcpy(&ch, err_data, sizeof(ch));
		if (le32toh(ch.magic) == PD_FABRIC_CHALLENGE_MAGIC) {
			challenge_answer(conn, &ch);
			return;
		}
	}
	err_data[n] = '\0';
	if (n > 0)
		PD_FABRIC_WARN_RL(fab, err, "connection to peer %u tenant %u failed: %s",
		                  conn->peer_id, conn->tenant, err_data);
	pd_fabric_conn_fail(conn, -err);
}

static int eq_poll(struct pd_fabric *fab, int budget)
{
	_Alignas(struct fi_eq_cm_entry) uint8_t buf[sizeof(struct fi_eq_cm_entry) + CM_DATA_MAX];
	struct fi_eq_cm_entry *entry = (struct fi_eq_cm_entry *)buf;
	int n = 0;
	while (n < budget) {
		uint32_t event;
		ssize_t ret = fi_eq_read(fab->eq, &event, buf, sizeof(buf), 0);
		if (ret == -FI_EAGAIN)
			break;
		n++;
		if (ret == -FI_EAVAIL) {
			eq_read_error(fab);
			continue;
		}
		if (ret < 0) {
			PD_FABRIC_WARN_RL(fab, pd_fabric_errno((int)ret), "fi_eq_read failed");
			break;
		}
		size_t data_len = (size_t)ret > sizeof(*entry) ? (size_t)ret - sizeof(*entry) : 0;
		switch (event) {
		case FI_CONNREQ:
			on_connreq(fab, entry->info, entry->data, data_len);
			fi_freeinfo(entry->info);
			break;
		case FI_CONNECTED: {
			struct pd_fabric_conn *conn = conn_of_fid(fab, entry->fid);
			if (conn != NULL)
				on_connected(fab, conn, entry->data, data_len);
			break;
		}
		case FI_SHUTDOWN: {
			struct pd_fabric_conn *conn = conn_of_fid(fab, entry->fid);
			if (conn != NULL)
				pd_fabric_conn_fail(conn, -ECONNRESET);
			break;
		}
		default:
			PD_FABRIC_WARN_RL(fab, 0, "unexpected event %" PRIu32, event);
			break;
		}
	}
	return n;
}

/* ---- open / close ------------------------------------------------------------------ */

static struct fi_info *make_hints(const char *provider, const struct pd_fabric_ops *ops)
{
	struct fi_info *hints = fi_allocinfo();
	if (hints == NULL)
		return NULL;
	hints->ep_attr->type = FI_EP_MSG;
	hints->caps = ops->caps;
	hints->mode = FI_CONTEXT | FI_CONTEXT2 | ops->mode;
	hints->domain_attr->mr_mode =
	    FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	hints->domain_attr->threading = FI_THREAD_DOMAIN;
	hints->ep_attr->rx_ctx_cnt = FI_SHARED_CONTEXT;
	hints->fabric_attr->prov_name = strdup(provider);
	if (hints->fabric_attr->prov_name == NULL) {
		fi_freeinfo(hints);
		return NULL;
	}
	return hints;
}

static int rebuild_wait_fids(struct pd_fabric *fab)
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

int pd_fabric_open(const struct pd_fabric_attr *attr, struct pd_fabric **out)
{
	if (attr == NULL || out == NULL || attr->provider == NULL || attr->cb.on_recv == NULL ||
	    attr->cb.on_recv_cancel == NULL || attr->cb.on_send_done == NULL ||
	    attr->cb.on_up == NULL || attr->cb.on_down == NULL ||
	    (attr->listen_host != NULL && attr->cb.on_connect_request == NULL) ||
	    (attr->primitive != PD_FABRIC_TWO_SIDED && attr->primitive != PD_FABRIC_ONE_SIDED))
		return -EINVAL;

	int ret = -ENOMEM;
	const char *what = "";
	struct pd_fabric *fab = calloc(1, sizeof(*fab));
	if (fab == NULL)
		return -ENOMEM;
	fab->cb = attr->cb;
	fab->app = attr->app;
	fab->local_id = attr->local_id;
	fab->version = attr->test.set_version ? attr->test.version : PD_FABRIC_PROTO_VERSION;
	fab->no_server_check = attr->test.no_server_check;
	fab->primitive = attr->primitive;
	if (attr->key != NULL) {
		fab->keyed = true;
		memcpy(fab->key, attr->key, PD_FABRIC_KEY_LEN);
	}
	fab->ops = attr->primitive == PD_FABRIC_ONE_SIDED ? &pd_fabric_one_sided_ops
	                                                  : &pd_fabric_two_sided_ops;
	fab->eq_fd = -1;
	fab->slot_free = NO_INDEX;
	fab->dead_tail = &fab->dead;
	fab->next_mr_key = 1;
	fab->provider = strdup(attr->provider);
	if (fab->provider == NULL)
		goto free_fab;

	struct fi_info *hints = make_hints(attr->provider, fab->ops);
	if (hints == NULL)
		goto free_provider;
	char port[8];
	snprintf(port, sizeof(port), "%u", attr->listen_port);
	what = "fi_getinfo";
	if (attr->listen_host != NULL)
		ret = fi_getinfo(PD_FABRIC_FI_VERSION, attr->listen_host, port, FI_SOURCE, hints,
		                 &fab->info);
	else
		ret = fi_getinfo(PD_FABRIC_FI_VERSION, NULL, NULL, 0, hints, &fab->info);
	fi_freeinfo(hints);
	if (ret != 0)
		goto log_fail;
	if (fab->info->domain_attr->mr_mode & FI_MR_ENDPOINT) {
		what = "provider needs FI_MR_ENDPOINT";
		ret = -FI_ENOSYS;
		goto free_info;
	}
	fab->info->domain_attr->mr_mode |= (int)attr->test.mr_mode;
	if (attr->test.mr_mode != 0) /* keys the provider would not pick (it counts from 1) */
		fab->next_mr_key = 1000;
	int mr_mode = fab->info->domain_attr->mr_mode;
	if (fab->primitive == PD_FABRIC_ONE_SIDED && (mr_mode & FI_MR_RAW)) {
		what = "one-sided with FI_MR_RAW keys";
		ret = -FI_ENOSYS;
		goto free_info;
	}
	fab->mr_local = (mr_mode & FI_MR_LOCAL) != 0;
	/* Remote addresses: what the provider returned decides, not what we asked for. */
	fab->mr_virt = (mr_mode & FI_MR_VIRT_ADDR) || mr_mode == FI_MR_BASIC;
	/* verbs consumes a posted receive per write with immediate data; tcp does not. */
	fab->write_needs_recv = (fab->info->mode & FI_RX_CQ_DATA) ||
	                        strcmp(fab->info->fabric_attr->prov_name, "tcp") != 0;
	fab->max_msg_size = fab->info->ep_attr->max_msg_size;

	what = "fi_fabric";
	ret = fi_fabric(fab->info->fabric_attr, &fab->fabric, NULL);
	if (ret != 0)
		goto free_info;
	what = "fi_domain";
	ret = fi_domain(fab->fabric, fab->info, &fab->domain, NULL);
	if (ret != 0)
		goto close_fabric;
	struct fi_eq_attr eq_attr = {.size = EQ_SIZE, .wait_obj = FI_WAIT_FD};
	what = "fi_eq_open";
	ret = fi_eq_open(fab->fabric, &eq_attr, &fab->eq, NULL);
	if (ret != 0)
		goto close_domain;
	what = "fi_control(eq, FI_GETWAIT)";
	ret = fi_control(&fab->eq->fid, FI_GETWAIT, &fab->eq_fd);
	if (ret != 0)
		goto close_eq;

	memcpy(fab->credit_buf, credit_marker, sizeof(credit_marker));
	what = "fi_mr_reg(credit)";
	ret = fi_mr_reg(fab->domain, fab->credit_buf, sizeof(fab->credit_buf), FI_SEND, 0,
	                fab->next_mr_key++, 0, &fab->credit_mr, NULL);
	if (ret != 0)
		goto close_eq;
	fab->credit_desc = fab->mr_local ? fi_mr_desc(fab->credit_mr) : NULL;

	if (attr->listen_host != NULL) {
		what = "fi_passive_ep";
		ret = fi_passive_ep(fab->fabric, fab->info, &fab->pep, NULL);
		if (ret != 0)
			goto close_credit_mr;
		what = "fi_pep_bind";
		ret = fi_pep_bind(fab->pep, &fab->eq->fid, 0);
		if (ret != 0)
			goto close_pep;
		what = "fi_listen";
		ret = fi_listen(fab->pep);
		if (ret != 0)
			goto close_pep;
	}
	ret = rebuild_wait_fids(fab);
	if (ret != 0)
		goto close_pep;
	if (attr->listen_host != NULL)
		PD_LOG_INFO(COMP, "listening on %s:%u (provider %s, domain %s, %s)",
		            attr->listen_host, attr->listen_port, fab->info->fabric_attr->prov_name,
		            fab->info->domain_attr->name, fab->ops->name);
	*out = fab;
	return 0;

close_pep:
	if (fab->pep != NULL)
		fi_close(&fab->pep->fid);
close_credit_mr:
	fi_close(&fab->credit_mr->fid);
close_eq:
	fi_close(&fab->eq->fid);
close_domain:
	fi_close(&fab->domain->fid);
close_fabric:
	fi_close(&fab->fabric->fid);
free_info:
	fi_freeinfo(fab->info);
log_fail:
	ret = pd_fabric_errno(ret);
	PD_LOG_WARN(COMP, ret, "%s failed (provider %s, listen %s:%u)", what, attr->provider,
	            attr->listen_host ? attr->listen_host : "-", attr->listen_port);
	ret = -ret;
free_provider:
	free(fab->provider);
free_fab:
	free(fab->wait_fids);
	free(fab);
	return ret;
}

static void rx_close(struct pd_fabric_rx *rx);

void pd_fabric_close(struct pd_fabric *fab)
{
	if (fab == NULL)
		return;
	fab->closing = true;
	for (struct pd_fabric_conn *conn = fab->conns; conn != NULL; conn = conn->next)
		pd_fabric_conn_fail(conn, -ECANCELED);
	reap_dead(fab, NULL);
	while (fab->rxs != NULL)
		rx_close(fab->rxs);
	while (fab->mrs != NULL)
		pd_fabric_mr_dereg(fab->mrs);
	if (fab->pep != NULL)
		fi_close(&fab->pep->fid);
	fi_close(&fab->credit_mr->fid);
	fi_close(&fab->eq->fid);
	int ret = fi_close(&fab->domain->fid);
	if (ret != 0)
		PD_LOG_WARN(COMP, pd_fabric_errno(ret), "fi_close(domain) failed");
	fi_close(&fab->fabric->fid);
	fi_freeinfo(fab->info);
	free(fab->wait_fids);
	free(fab->slots);
	free(fab->provider);
	free(fab);
}

/* ---- memory regions --------------------------------------------------------------- */

int pd_fabric_mr_reg(struct pd_fabric *fab, void *base, size_t len, struct pd_fabric_mr **out)
{
	if (fab == NULL || base == NULL || len == 0 || out == NULL)
		return -EINVAL;
	struct pd_fabric_mr *mr = calloc(1, sizeof(*mr));
	if (mr == NULL)
		return -ENOMEM;
	/* Requested keys are unique per domain: with mr_mode [] they are the keys peers
	 * write with (with FI_MR_PROV_KEY the provider picks its own). */
	int ret = fi_mr_reg(fab->domain, base, len, fab->ops->mr_access, 0, fab->next_mr_key++, 0,
	                    &mr->mr, NULL);
	if (ret != 0) {
		PD_LOG_WARN(COMP, pd_fabric_errno(ret), "fi_mr_reg of %zu bytes failed", len);
		free(mr);
		return -pd_fabric_errno(ret);
	}
	if (fab->primitive == PD_FABRIC_ONE_SIDED) {
		mr->key = fi_mr_key(mr->mr);
		if (mr->key == FI_KEY_NOTAVAIL) {
			PD_LOG_WARN(COMP, ENOSYS, "fi_mr_key of %zu bytes: no key", len);
			fi_close(&mr->mr->fid);
			free(mr);
			return -ENOSYS;
		}
	}
	mr->fab = fab;
	mr->base = base;
	mr->len = len;
	mr->desc = fab->mr_local ? fi_mr_desc(mr->mr) : NULL;
	mr->next = fab->mrs;
	if (fab->mrs != NULL)
		fab->mrs->prev = mr;
	fab->mrs = mr;
	*out = mr;
	return 0;
}

void pd_fabric_mr_dereg(struct pd_fabric_mr *mr)
{
	if (mr == NULL)
		return;
	struct pd_fabric *fab = mr->fab;
	int ret = fi_close(&mr->mr->fid);
	if (ret != 0)
		PD_LOG_WARN(COMP, pd_fabric_errno(ret), "fi_close(mr) failed");
	if (mr->prev != NULL)
		mr->prev->next = mr->next;
	else
		fab->mrs = mr->next;
	if (mr->next != NULL)
		mr->next->prev = mr->prev;
	free(mr);
}

/* ---- receive contexts --------------------------------------------------------------- */

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
	ret = rebuild_wait_fids(fab);
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
	reap_dead(fab, rx);

	/* Closing the SRX returns its posted buffers as cancelled completions. */
	int ret = fi_close(&rx->srx->fid);
	if (ret != 0)
		PD_LOG_WARN(COMP, pd_fabric_errno(ret), "fi_close(srx) for tenant %u failed",
		            rx->tenant);
	if (!fab->closing)
		cq_poll(rx, INT_MAX, true);
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
	(void)rebuild_wait_fids(fab);

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
	struct pd_fabric_recv_op *op = recv_op_get(rx);
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

/* ---- connecting and sending -------------------------------------------------------- */

static int resolve_peer(struct pd_fabric *fab, const char *host, uint16_t port,
                        struct fi_info **info)
{
	struct fi_info *hints = make_hints(fab->provider, fab->ops);
	if (hints == NULL)
		return -FI_ENOMEM;
	char service[8];
	snprintf(service, sizeof(service), "%u", port);
	/* Same fabric and domain as ours (the endpoint is opened on our domain). */
	hints->fabric_attr->name = strdup(fab->info->fabric_attr->name);
	hints->domain_attr->name = strdup(fab->info->domain_attr->name);
	int ret = -FI_ENOMEM;
	if (hints->fabric_attr->name != NULL && hints->domain_attr->name != NULL)
		ret = fi_getinfo(PD_FABRIC_FI_VERSION, host, service, FI_NUMERICHOST, hints, info);
	if (ret == -FI_ENODATA) {
		free(hints->fabric_attr->name);
		free(hints->domain_attr->name);
		hints->fabric_attr->name = NULL;
		hints->domain_attr->name = NULL;
		ret = fi_getinfo(PD_FABRIC_FI_VERSION, host, service, FI_NUMERICHOST, hints, info);
	}
	fi_freeinfo(hints);
	return ret;
}

int pd_fabric_connect(struct pd_fabric *fab, struct pd_fabric_rx *rx, const char *host,
                      uint16_t port, uint16_t peer_id, uint16_t credits, void *conn_ctx,
                      struct pd_fabric_conn **out)
{
	if (fab == NULL || rx == NULL || rx->fab != fab || rx->closing || host == NULL ||
	    out == NULL || credits < PD_FABRIC_CREDITS_MIN)
		return -EINVAL;
	if (rx_find_peer(rx, peer_id) != NULL)
		return -EEXIST;
	if (strlen(host) >= sizeof(((struct pd_fabric_conn *)NULL)->host))
		return -EINVAL;

	struct fi_info *info = NULL;
	int ret = resolve_peer(fab, host, port, &info);
	if (ret != 0) {
		ret = pd_fabric_errno(ret);
		PD_FABRIC_WARN_RL(fab, ret, "fi_getinfo for %s:%u failed", host, port);
		return ret == ENODATA ? -EINVAL : -ret;
	}
	struct pd_fabric_conn *conn = conn_new(fab, rx, peer_id, conn_ctx, true);
	if (conn == NULL) {
		ret = -ENOMEM;
		goto free_info;
	}
	conn->grant = grant_from(credits);
	conn->hello_credits = credits;
	conn->port = port;
	strcpy(conn->host, host);
	conn->auth = PD_FABRIC_AUTH_NONE;
	if (fab->keyed) { /* ask for a challenge first (docs/security.md) */
		conn->auth = PD_FABRIC_AUTH_CHALLENGE;
		if (RAND_bytes(conn->nc, PD_FABRIC_NONCE_LEN) != 1) {
			ret = -EIO;
			goto free_conn;
		}
	}
	ret = ep_open(conn, info);
	if (ret != 0)
		goto free_conn;

	struct pd_fabric_hello hello = conn_hello(conn);
	struct pd_fabric_wire_hello wire;
	cm_data_encode(fab, &hello, PD_FABRIC_HELLO_MAGIC, conn->auth, fab->keyed ? conn->nc : NULL,
	               PD_FABRIC_NONCE_LEN, &wire);
	ret = fi_connect(conn->ep, info->dest_addr, &wire, sizeof(wire));
	if (ret != 0) {
		/* The attempt itself failed (e.g. refused at once on loopback): report it
		 * like any other failed attempt, through on_down. */
		LOG_CONN(fab, "fi_connect to %s:%u (peer %u) failed: %s", host, port, peer_id,
		         fi_strerror(-ret));
		pd_fabric_conn_fail(conn, -pd_fabric_errno(ret));
	}
	fi_freeinfo(info);
	*out = conn;
	return 0;

free_conn:
	conn_free(conn);
free_info:
	fi_freeinfo(info);
	return ret;
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

int pd_fabric_send(struct pd_fabric_conn *conn, struct pd_fabric_mr *mr, const void *buf,
                   size_t len, void *send_ctx)
{
	if (conn == NULL || mr == NULL || mr->fab != conn->fab || (buf == NULL && len > 0))
		return -EINVAL;
	struct pd_fabric *fab = conn->fab;
	if (conn->state != PD_FABRIC_CONN_UP)
		return -ENOTCONN;
	if (len > 0 && !pd_fabric_in_mr(mr, buf, len))
		return -EINVAL;
	if (len > fab->max_msg_size)
		return -EMSGSIZE;
	if (conn->credits == 0) {
		fab->stats.no_credit++;
		return -EAGAIN;
	}
	struct pd_fabric_send_op *op = send_op_get(conn->rx);
	if (op == NULL)
		return -ENOMEM;
	op->send_ctx = send_ctx;
	op->conn_handle = conn->handle;

	int ret = fab->ops->data_send(conn, op, buf, len, mr->desc);
	if (ret == -FI_EAGAIN && conn->credits > 0) {
		/* The provider is busy: let it progress (completions are kept for
		 * pd_fabric_progress(), no callback runs here), then try once more. */
		(void)stash_fill(conn->rx, CQ_BATCH);
		ret = fab->ops->data_send(conn, op, buf, len, mr->desc);
	}
	if (ret != 0) {
		send_op_put(conn->rx, op);
		switch (ret) {
		case -FI_EAGAIN:
			if (conn->credits == 0)
				fab->stats.no_credit++;
			else
				fab->stats.send_busy++;
			return -EAGAIN;
		case -FI_EMSGSIZE: /* the caller's message, not a fabric error: not counted */
			return -EMSGSIZE;
		case -FI_EINVAL:
			return -EINVAL;
		default:
			fab->stats.send_errors++;
			return -pd_fabric_errno(ret);
		}
	}
	conn_track(conn, op);
	fab->stats.msgs_sent++;
	fab->stats.bytes_sent += len;
	return 0;
}

/* ---- progress and waiting ---------------------------------------------------------- */

int pd_fabric_progress(struct pd_fabric *fab)
{
	int n = eq_poll(fab, EQ_BUDGET);
	for (struct pd_fabric_rx *rx = fab->rxs; rx != NULL; rx = rx->next)
		n += cq_poll(rx, CQ_BUDGET, false);
	if (fab->credit_retries > 0)
		for (struct pd_fabric_conn *conn = fab->conns; conn != NULL; conn = conn->next)
			if (conn->credit_retry)
				pd_fabric_conn_ctrl_check(conn);
	n += reap_dead(fab, NULL);
	return n;
}

int pd_fabric_wait_fds(struct pd_fabric *fab, int *fds, int max)
{
	if (fab == NULL || (fds == NULL && max > 0))
		return -EINVAL;
	if (max < 0 || (uint32_t)max < 1 + fab->n_rx)
		return -ENOSPC;
	int n = 0;
	fds[n++] = fab->eq_fd;
	for (struct pd_fabric_rx *rx = fab->rxs; rx != NULL; rx = rx->next)
		fds[n++] = rx->cq_fd;
	return n;
}

int pd_fabric_trywait(struct pd_fabric *fab)
{
	if (fab->dead != NULL || fab->credit_retries > 0)
		return -EAGAIN;
	for (struct pd_fabric_rx *rx = fab->rxs; rx != NULL; rx = rx->next)
		if (rx->stash_len > 0)
			return -EAGAIN;
	int ret = fi_trywait(fab->fabric, fab->wait_fids, (int)(1 + fab->n_rx));
	return ret == 0 ? 0 : -EAGAIN;
}

void pd_fabric_get_stats(const struct pd_fabric *fab, struct pd_fabric_stats *out)
{
	*out = fab->stats;
}
