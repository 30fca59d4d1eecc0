/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine's transmit path: buffers waiting for a credit in per-tenant, per-destination
 * queues, sent in the order the scheduler decides (deficit weighted round robin, the
 * pacer), and the error answers the engine makes when a buffer cannot go where it was
 * headed. Everything above it (routing, fabric callbacks, peers, supervisor) sends
 * through here.
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

/* ---------------------------------------------------------------- sends */

uint64_t engine_msg_len(const struct pd_msg_hdr *snap, uint64_t buf_size)
{
	return pd_msg_validate(snap, buf_size, 0) == 0 ? pd_msg_total_len(snap) : 0;
}

static void pend_push(struct tenant_rt *t, struct pend_queue *q, uint32_t idx)
{
	t->pend_next[idx] = PEND_NONE;
	if (q->tail == PEND_NONE)
		q->head = idx;
	else
		t->pend_next[q->tail] = idx;
	q->tail = idx;
	q->count++;
	t->pend_count++;
}

static void pend_push_front(struct tenant_rt *t, struct pend_queue *q, uint32_t idx)
{
	t->pend_next[idx] = q->head;
	q->head = idx;
	if (q->tail == PEND_NONE)
		q->tail = idx;
	q->count++;
	t->pend_count++;
}

static void pend_pop(struct tenant_rt *t, struct pend_queue *q)
{
	uint32_t idx = q->head;
	q->head = t->pend_next[idx];
	if (q->head == PEND_NONE)
		q->tail = PEND_NONE;
	q->count--;
	t->pend_count--;
}

static struct pend_queue *queue_of(struct tenant_rt *t, uint16_t dest)
{
	if (DEST_IS_INGRESS(dest))
		return &t->pend[dest & (uint16_t)~PD_FABRIC_PEER_INGRESS];
	return &t->pend[ENGINE_MAX_INGRESS + dest];
}

static struct pd_fabric_conn *conn_of(struct tenant_rt *t, uint16_t dest)
{
	if (DEST_IS_INGRESS(dest)) {
		uint16_t origin = dest & (uint16_t)~PD_FABRIC_PEER_INGRESS;
		return origin < ENGINE_MAX_INGRESS ? t->ingress[origin] : NULL;
	}
	return t->peers[dest].up ? t->peers[dest].conn : NULL;
}

static void fail_unsendable(struct engine *e, struct tenant_rt *t, uint32_t idx, uint16_t dest);

/*
 * Try to send buffer idx to t->dest[idx]. 0: sent, or dealt with (freed, or turned into
 * an error answer); -EAGAIN: no credit now, keep it queued.
 */
static int try_send(struct engine *e, struct tenant_rt *t, uint32_t idx)
{
	uint16_t dest = t->dest[idx];
	struct pd_fabric_conn *conn = conn_of(t, dest);
	if (conn == NULL) {
		/* An answer for an ingress not (yet, or again) connected waits for it, as a
		 * request for a peer link being set up does; both expire at their timeout. */
		if (DEST_IS_INGRESS(dest) || t->peers[dest].conn != NULL || !t->peers[dest].ever_up)
			return -EAGAIN;
		fail_unsendable(e, t, idx, dest);
		return 0;
	}
	struct pd_msg_hdr *h = pd_pool_buf(&t->pool, idx);
	struct pd_msg_hdr snap;
	pd_msg_hdr_snapshot(&snap, h);
	/* Checked when it came in, but the tenant's functions can write its header since:
	 * send what the snapshot says only if it still fits the buffer. */
	uint64_t len = engine_msg_len(&snap, t->conf->buffer_size);
	if (len == 0) {
		t->c.bad_headers++;
		pd_pool_free(&t->pool, idx);
		return 0;
	}
	pd_pool_set(&t->pool, idx, PD_OWNER_ENGINE, PD_BUF_SENDING);
	int rc = pd_fabric_send(conn, t->mr, h, len, ctx_encode((uint32_t)(t - e->tenants), idx));
	if (rc == -EAGAIN) {
		pd_pool_set(&t->pool, idx, PD_OWNER_ENGINE, PD_BUF_ENGINE);
		return -EAGAIN;
	}
	if (rc != 0) {
		pd_pool_set(&t->pool, idx, PD_OWNER_ENGINE, PD_BUF_ENGINE);
		fail_unsendable(e, t, idx, dest);
		return 0;
	}
	e->tx_inflight++;
	pd_pacer_charge(&e->pacer, len);
	t->c.msgs_out++;
	t->c.bytes_out += len;
	if (!DEST_IS_INGRESS(dest)) {
		struct peer_link *p = &t->peers[dest];
		p->inflight++;
		p->sent++;
		/* Only chain requests are remembered (by request id): a call or reply carries
		 * its request's id too, but a peer's death fails a call by its deadline. */
		if (pd_msg_kind(&snap) == PD_MSG_F_REQUEST)
			peer_note_forward(p, &snap);
		t->c.to_peers++;
	}
	return 0;
}

/*
 * Queue buffer idx for dest. Every send goes through the tenant's queues and the
 * scheduler (transmit()), which decides among tenants by weight.
 */
void tx_send_to(struct engine *e, struct tenant_rt *t, uint32_t idx, uint16_t dest)
{
	t->dest[idx] = dest;
	atomic_store_explicit(&t->pool.ctl[idx].since_ns, e->now, memory_order_relaxed);
	pend_push(t, queue_of(t, dest), idx);
	pd_sched_wake(&e->sched, (uint32_t)(t - e->tenants));
}

void tx_send_response(struct engine *e, struct tenant_rt *t, uint32_t idx)
{
	struct pd_msg_hdr *h = pd_pool_buf(&t->pool, idx);
	uint16_t origin = h->origin;
	if (origin >= ENGINE_MAX_INGRESS) {
		t->c.dropped++;
		pd_pool_free(&t->pool, idx);
		return;
	}
	tx_send_to(e, t, idx, DEST_INGRESS(origin));
}

/* Can the head of queue d of tenant t go now (or be failed now)? */
static bool queue_ready(struct tenant_rt *t, uint32_t d)
{
	struct pend_queue *q = &t->pend[d];
	if (q->count == 0)
		return false;
	uint16_t dest =
	    d < ENGINE_MAX_INGRESS ? DEST_INGRESS(d) : (uint16_t)(d - ENGINE_MAX_INGRESS);
	struct pd_fabric_conn *conn = conn_of(t, dest);
	if (conn != NULL)
		return pd_fabric_conn_credits(conn) > 0;
	/* No link: ready to be failed, unless it is being set up or is an ingress's. */
	return !DEST_IS_INGRESS(dest) && t->peers[dest].conn == NULL && t->peers[dest].ever_up;
}

/* The scheduler's view of a tenant: bytes of the next message it can send, 0 if none.
 * Destinations take turns within a tenant. */
static uint64_t head_size(void *ctx, uint32_t tl)
{
	struct engine *e = ctx;
	struct tenant_rt *t = &e->tenants[tl];
	if (t->pend_count == 0)
		return 0;
	for (uint32_t k = 0; k < NDEST; k++) {
		uint32_t d = (t->next_dest + k) % NDEST;
		if (!queue_ready(t, d))
			continue;
		t->next_dest = d;
		struct pd_msg_hdr snap;
		pd_msg_hdr_snapshot(&snap, pd_pool_buf(&t->pool, t->pend[d].head));
		/* A header made invalid since it was queued is dropped by try_send: it still
		 * takes its turn, as 1 byte. */
		uint64_t len = engine_msg_len(&snap, t->conf->buffer_size);
		return len > 0 ? len : 1;
	}
	return 0;
}

/*
 * Send what the tenants have queued, in deficit weighted round robin order, while the
 * engine's transmit window has room and the pacer (engine.link_rate) allows. The window
 * and the pacer keep the order decided here: without them every send would go straight
 * into the transport and the tenants would share it by whoever pushed first.
 */
int tx_transmit(struct engine *e, uint64_t now)
{
	int sent = 0;
	while (e->tx_inflight < ENGINE_TX_WINDOW) {
		int tl;
		if (pd_pacer_ready(&e->pacer, now))
			tl = pd_sched_next(&e->sched, head_size, e);
		else if (pd_sched_sparse_waiting(&e->sched) &&
		         pd_pacer_may_overdraw(&e->pacer, now))
			/* A tenant woken from idle does not wait for the link to finish the
			 * backlogged tenants' bytes (see pacer.h); it pays for its own. */
			tl = pd_sched_next_sparse(&e->sched, head_size, e);
		else {
			e->paced++;
			break;
		}
		if (tl < 0)
			break;
		struct tenant_rt *t = &e->tenants[tl];
		struct pend_queue *q = &t->pend[t->next_dest];
		uint32_t idx = q->head;
		pend_pop(t, q);
		if (try_send(e, t, idx) == -EAGAIN) {
			pend_push_front(t, q, idx); /* the transport is busy: try again later */
			break;
		}
		t->next_dest = (t->next_dest + 1) % NDEST;
		sent++;
	}
	return sent;
}

void tx_deliver_reply(struct engine *e, struct tenant_rt *t, uint32_t idx,
                      const struct pd_msg_hdr *h)
{
	if (h->reply_node == e->node) {
		uint16_t slot = h->reply_slot;
		/* A caller that is not running (died, restarting) will never take it. */
		if (slot >= t->ninst || t->inst[slot].state != INST_RUNNING) {
			t->c.replies_dropped++;
			pd_pool_free(&t->pool, idx);
			return;
		}
		if (pd_pool_push_reply(&t->pool, slot, idx) != 0) {
			pd_pool_set(&t->pool, idx, PD_OWNER_ENGINE, PD_BUF_ENGINE);
			t->c.replies_dropped++;
			pd_pool_free(&t->pool, idx);
			return;
		}
		t->c.replies_routed++;
		/* Nobody waits for replies there: wake a worker to take it (see runtime.c). */
		if (atomic_load(&t->pool.inst_status[slot]->reply_waiters) == 0)
			pd_ring_notify(&t->pool.inst_ring[slot], t->inst[slot].efd);
		return;
	}
	if (h->reply_node >= e->cfg->nodes_count || !t->peers[h->reply_node].hosts_tenant) {
		t->c.replies_dropped++;
		pd_pool_free(&t->pool, idx);
		return;
	}
	t->c.replies_routed++;
	tx_send_to(e, t, idx, h->reply_node);
}

void tx_reply_error(struct engine *e, struct tenant_rt *t, uint32_t idx, uint16_t status,
                    const char *msg)
{
	struct pd_msg_hdr *h = pd_pool_buf(&t->pool, idx);
	struct pd_msg_hdr snap;
	pd_msg_hdr_snapshot(&snap, h);
	unsigned kind =
	    pd_msg_validate(&snap, t->conf->buffer_size, 0) == 0 ? pd_msg_kind(&snap) : 0;
	if (kind == PD_MSG_F_REPLY) {
		/* A reply that cannot go where it was headed: its caller times out. */
		t->c.replies_dropped++;
		pd_pool_free(&t->pool, idx);
		return;
	}
	size_t n = strlen(msg);
	/* The engine writes its own error text; it never reads or copies the payload. */
	memcpy(pd_msg_payload(h), msg, n);
	if (kind == PD_MSG_F_CALL) {
		/* A call is answered to its caller, not to the client: the caller decides. */
		snap.flags = PD_MSG_F_REPLY | PD_MSG_F_ERROR;
		snap.status = status;
		snap.payload_len = (uint32_t)n;
		snap.req_meta_len = 0;
		snap.resp_meta_len = 0;
		*h = snap;
		t->c.errors_sent++;
		tx_deliver_reply(e, t, idx, &snap);
		return;
	}
	h->magic = PD_MSG_MAGIC;
	h->version = PD_MSG_VERSION;
	h->flags = PD_MSG_F_RESPONSE | PD_MSG_F_ERROR;
	h->tenant = t->tenant;
	h->status = status;
	h->payload_len = (uint32_t)n;
	h->req_meta_len = 0;
	h->resp_meta_len = 0;
	t->c.errors_sent++;
	tx_send_response(e, t, idx);
}

/* A buffer could not go where it was headed: answer its request (or call) with an
 * error, or drop an answer that has nowhere to go. */
static void fail_unsendable(struct engine *e, struct tenant_rt *t, uint32_t idx, uint16_t dest)
{
	if (DEST_IS_INGRESS(dest)) {
		t->c.dropped++;
		pd_pool_free(&t->pool, idx);
		return;
	}
	if (pd_pool_buf(&t->pool, idx)->flags & PD_MSG_F_REQUEST)
		t->c.lost_with_peer++;
	tx_reply_error(e, t, idx, 502, "next node is unreachable\n");
}

/* Drop or fail everything queued for a destination that went away. */
void tx_fail_queue(struct engine *e, struct tenant_rt *t, uint16_t dest)
{
	struct pend_queue *q = queue_of(t, dest);
	while (q->count > 0) {
		uint32_t idx = q->head;
		pend_pop(t, q);
		fail_unsendable(e, t, idx, dest);
	}
}

/* Drop requests that waited for a peer link longer than their route allows: the
 * ingress has answered them already. */
void tx_expire_queues(struct engine *e, struct tenant_rt *t, uint64_t now)
{
	for (uint32_t d = 0; d < ENGINE_MAX_INGRESS + e->cfg->nodes_count; d++) {
		struct pend_queue *q = &t->pend[d];
		if (d < ENGINE_MAX_INGRESS && t->ingress[d] != NULL)
			continue; /* connected: its queue moves with credits */
		while (q->count > 0) {
			uint32_t idx = q->head;
			uint64_t since =
			    atomic_load_explicit(&t->pool.ctl[idx].since_ns, memory_order_relaxed);
			uint16_t route = pd_pool_buf(&t->pool, idx)->route;
			uint64_t limit = route < e->cfg->routes_count
			                     ? e->cfg->routes[route].timeout_ms * 1000000ull
			                     : 0;
			if (now < since || now - since <= limit)
				break;
			pend_pop(t, q);
			t->c.expired++;
			pd_pool_free(&t->pool, idx);
		}
	}
}
