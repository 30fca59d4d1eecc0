/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's network engine: one event loop over the fabric, the tenants' engine-bound
 * rings, the attach and stats sockets and signals. It reads headers and descriptors,
 * never payload.
 */
#include "engine/engine.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "engine/dwrr.h"
#include "engine/engine_internal.h"
#include "shm/msg.h"

#define COMP "engine"
#define RING_BURST 64
#define PEND_NONE UINT32_MAX

/* ---------------------------------------------------------------- small helpers */

static void *ctx_encode(uint32_t tenant_local, uint32_t idx)
{
	/* Never dereferenced: a (tenant, buffer) pair carried through the fabric. */
	return (void *)(uintptr_t)(((uint64_t)(tenant_local + 1) << 32) | idx);
}

static void ctx_decode(const void *ctx, uint32_t *tenant_local, uint32_t *idx)
{
	uint64_t v = (uint64_t)(uintptr_t)ctx;
	*tenant_local = (uint32_t)(v >> 32) - 1;
	*idx = (uint32_t)v;
}

int engine_watch(struct engine *e, int fd, int kind)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ((uint64_t)kind << 32) | (uint32_t)fd};
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		return -errno;
	return 0;
}

void engine_unwatch(struct engine *e, int fd)
{
	epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
}

static void runtime_dir(char *buf, size_t len)
{
	if (geteuid() == 0) {
		snprintf(buf, len, "/run/palladium");
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(buf, len, "%s/palladium-%u", tmp != NULL && tmp[0] == '/' ? tmp : "/tmp",
			 (unsigned)geteuid());
	}
}

int pd_engine_stats_socket_path(const struct pd_config *cfg, uint32_t node_idx, char *buf,
				size_t len)
{
	const struct pd_config_node *n = &cfg->nodes[node_idx];
	char dir[256];
	runtime_dir(dir, sizeof(dir));
	int w = snprintf(buf, len, "%s/engine.%s.%u.%s.sock", dir, n->address, (unsigned)n->port,
			 n->name);
	return w < 0 || (size_t)w >= len || (size_t)w >= sizeof(((struct sockaddr_un *)0)->sun_path)
		       ? -ENAMETOOLONG
		       : 0;
}

/* ---------------------------------------------------------------- receives */

static void post_receives(struct engine *e, struct tenant_rt *t)
{
	while (t->rx_missing > 0) {
		uint32_t idx;
		if (pd_pool_alloc(&t->pool, PD_OWNER_ENGINE, &idx) != 0) {
			t->c.rx_repost_deferred++;
			return;
		}
		pd_pool_set(&t->pool, idx, PD_OWNER_ENGINE, PD_BUF_RX_POSTED);
		int rc = pd_fabric_rx_post(t->rx, t->mr, pd_pool_buf(&t->pool, idx),
					   t->conf->buffer_size, ctx_encode((uint32_t)(t - e->tenants), idx));
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
		peer_note_forward(p, &snap);
		t->c.to_peers++;
	}
	return 0;
}

/*
 * Queue buffer idx for dest. Every send goes through the tenant's queues and the
 * scheduler (transmit()), which decides among tenants by weight.
 */
static void send_to(struct engine *e, struct tenant_rt *t, uint32_t idx, uint16_t dest)
{
	t->dest[idx] = dest;
	atomic_store_explicit(&t->pool.ctl[idx].since_ns, pd_now_ns(), memory_order_relaxed);
	pend_push(t, queue_of(t, dest), idx);
	pd_sched_wake(&e->sched, (uint32_t)(t - e->tenants));
}

static void send_response(struct engine *e, struct tenant_rt *t, uint32_t idx)
{
	struct pd_msg_hdr *h = pd_pool_buf(&t->pool, idx);
	uint16_t origin = h->origin;
	if (origin >= ENGINE_MAX_INGRESS) {
		t->c.dropped++;
		pd_pool_free(&t->pool, idx);
		return;
	}
	send_to(e, t, idx, DEST_INGRESS(origin));
}

/* Can the head of queue d of tenant t go now (or be failed now)? */
static bool queue_ready(struct tenant_rt *t, uint32_t d)
{
	struct pend_queue *q = &t->pend[d];
	if (q->count == 0)
		return false;
	uint16_t dest = d < ENGINE_MAX_INGRESS ? DEST_INGRESS(d)
					      : (uint16_t)(d - ENGINE_MAX_INGRESS);
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
static int transmit(struct engine *e, uint64_t now)
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

void engine_send_error(struct engine *e, struct tenant_rt *t, uint32_t idx, uint16_t status,
		       const char *msg)
{
	struct pd_msg_hdr *h = pd_pool_buf(&t->pool, idx);
	size_t n = strlen(msg);
	/* The engine writes its own error text; it never reads or copies the payload. */
	memcpy(pd_msg_payload(h), msg, n);
	h->magic = PD_MSG_MAGIC;
	h->version = PD_MSG_VERSION;
	h->flags = PD_MSG_F_RESPONSE | PD_MSG_F_ERROR;
	h->tenant = t->tenant;
	h->status = status;
	h->payload_len = (uint32_t)n;
	h->req_meta_len = 0;
	h->resp_meta_len = 0;
	t->c.errors_sent++;
	send_response(e, t, idx);
}

/* A buffer could not go where it was headed: answer its request with an error, or drop
 * an answer that has nowhere to go. */
static void fail_unsendable(struct engine *e, struct tenant_rt *t, uint32_t idx, uint16_t dest)
{
	if (DEST_IS_INGRESS(dest)) {
		t->c.dropped++;
		pd_pool_free(&t->pool, idx);
		return;
	}
	t->c.lost_with_peer++;
	engine_send_error(e, t, idx, 502, "next node is unreachable\n");
}

/* Drop or fail everything queued for a destination that went away. */
static void fail_queue(struct engine *e, struct tenant_rt *t, uint16_t dest)
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
static void expire_queues(struct engine *e, struct tenant_rt *t, uint64_t now)
{
	for (uint32_t d = 0; d < ENGINE_MAX_INGRESS + e->cfg->nodes_count; d++) {
		struct pend_queue *q = &t->pend[d];
		if (d < ENGINE_MAX_INGRESS && t->ingress[d] != NULL)
			continue; /* connected: its queue moves with credits */
		while (q->count > 0) {
			uint32_t idx = q->head;
			uint64_t since = atomic_load_explicit(&t->pool.ctl[idx].since_ns,
							      memory_order_relaxed);
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

/* ---------------------------------------------------------------- routing */

/* Pick a local instance of function fn: a running one with the shortest ring. */
static struct instance *pick_instance(struct tenant_rt *t, uint16_t fn)
{
	struct instance *best = NULL, *fallback = NULL;
	uint32_t best_len = UINT32_MAX;
	for (uint16_t s = 0; s < t->ninst; s++) {
		struct instance *in = &t->inst[s];
		if (in->function != fn)
			continue;
		if (fallback == NULL)
			fallback = in;
		if (in->state != INST_RUNNING)
			continue;
		uint32_t len = pd_ring_count(&t->pool.inst_ring[s]);
		if (len < best_len) {
			best = in;
			best_len = len;
		}
	}
	/* None running (restarting): queue on one anyway; it is served when it is back. */
	return best != NULL ? best : fallback;
}

static uint32_t peer_load(const struct tenant_rt *t, const struct peer_link *p)
{
	return p->inflight + t->pend[ENGINE_MAX_INGRESS + p->node].count;
}

/*
 * Pick the connected peer running fn with the fewest sends outstanding. If none is
 * connected but a link is being set up (this engine is connecting, or the peer has not
 * connected since start), pick that one: the request waits for the link, and fails if
 * the attempt does or expires at its route's timeout. NULL: none.
 */
static struct peer_link *pick_peer(struct engine *e, struct tenant_rt *t, uint16_t fn)
{
	const struct pd_config_function *f = &e->cfg->functions[fn];
	struct peer_link *best = NULL, *pending = NULL;
	for (uint32_t k = 0; k < f->node_idx_count; k++) {
		if (f->node_idx[k] == e->node)
			continue;
		struct peer_link *p = &t->peers[f->node_idx[k]];
		if (!p->up) {
			if ((p->conn != NULL || !p->ever_up) && pending == NULL)
				pending = p;
			continue;
		}
		if (best == NULL || peer_load(t, p) < peer_load(t, best))
			best = p;
	}
	return best != NULL ? best : pending;
}

/*
 * A request whose header was checked: hand it to a local instance of the function at
 * its hop, or (if allowed: it came from this node) to the least loaded peer running it.
 */
static void route_request(struct engine *e, struct tenant_rt *t, uint32_t idx,
			  const struct pd_msg_hdr *h, bool may_leave)
{
	const struct pd_config_route *r = &e->cfg->routes[h->route];
	uint16_t fn = (uint16_t)r->chain_idx[h->hop];
	struct instance *in = pick_instance(t, fn);
	if (in == NULL) {
		struct peer_link *p = may_leave ? pick_peer(e, t, fn) : NULL;
		if (p == NULL) {
			engine_send_error(e, t, idx, 502,
					  may_leave ? "no node running the next function is reachable\n"
						    : "function not available on this node\n");
			return;
		}
		send_to(e, t, idx, p->node);
		return;
	}
	atomic_store_explicit(&t->pool.ctl[idx].since_ns, pd_now_ns(), memory_order_relaxed);
	pd_pool_set(&t->pool, idx, in->slot, PD_BUF_IN_RING);
	if (pd_ring_push(&t->pool.inst_ring[in->slot], idx) != 0) {
		pd_pool_set(&t->pool, idx, PD_OWNER_ENGINE, PD_BUF_ENGINE);
		engine_send_error(e, t, idx, 503, "function queue is full\n");
		return;
	}
	t->c.to_functions++;
	pd_ring_notify(&t->pool.inst_ring[in->slot], in->efd);
}

/* Check a header against the cluster config and this tenant. */
static bool header_ok(const struct engine *e, const struct tenant_rt *t,
		      const struct pd_msg_hdr *h, uint64_t received_len)
{
	if (pd_msg_validate(h, t->conf->buffer_size, received_len) != 0)
		return false;
	if (h->tenant != t->tenant || h->route >= e->cfg->routes_count)
		return false;
	const struct pd_config_route *r = &e->cfg->routes[h->route];
	if (r->tenant_idx != t->tenant)
		return false;
	if ((h->flags & PD_MSG_F_REQUEST) && h->hop >= r->chain_count)
		return false;
	return true;
}

static int drain_engine_ring(struct engine *e, struct tenant_rt *t)
{
	int n = 0;
	for (; n < RING_BURST; n++) {
		uint64_t v;
		if (pd_ring_pop(&t->pool.engine_ring, &v) != 0)
			break;
		/* The descriptor comes from tenant memory: check it before anything else. */
		if (!pd_pool_index_ok(&t->pool, v)) {
			t->c.bad_descriptors++;
			continue;
		}
		uint32_t idx = (uint32_t)v;
		uint32_t expected = PD_BUF_TO_ENGINE;
		if (!atomic_compare_exchange_strong(&t->pool.ctl[idx].state, &expected,
						    PD_BUF_ENGINE)) {
			t->c.bad_descriptors++;
			continue;
		}
		atomic_store(&t->pool.ctl[idx].owner, PD_OWNER_ENGINE);
		struct pd_msg_hdr snap;
		pd_msg_hdr_snapshot(&snap, pd_pool_buf(&t->pool, idx));
		if (!header_ok(e, t, &snap, 0)) {
			t->c.bad_headers++;
			pd_pool_free(&t->pool, idx);
			continue;
		}
		if (snap.flags & PD_MSG_F_RESPONSE)
			send_response(e, t, idx);
		else
			route_request(e, t, idx, &snap, true);
	}
	return n;
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
	post_receives(e, t);
	t->c.msgs_in++;
	t->c.bytes_in += len;

	struct pd_msg_hdr snap;
	if (len < PD_MSG_HDR_SIZE) {
		t->c.bad_headers++;
		pd_pool_free(&t->pool, idx);
		return;
	}
	pd_msg_hdr_snapshot(&snap, pd_pool_buf(&t->pool, idx));
	if (!header_ok(e, t, &snap, len) || !(snap.flags & PD_MSG_F_REQUEST)) {
		t->c.bad_headers++;
		pd_pool_free(&t->pool, idx);
		return;
	}
	uint16_t peer = pd_fabric_conn_peer(conn);
	bool from_ingress = (peer & PD_FABRIC_PEER_INGRESS) != 0;
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
			PD_LOG_WARN(COMP, 0, "refused peer %#x: not a known ingress", hello->peer_id);
			return -EPERM;
		}
		*conn_ctx = t;
	} else {
		uint16_t node = hello->peer_id;
		if (node >= e->cfg->nodes_count || node == e->node || !t->peers[node].hosts_tenant ||
		    t->peers[node].active) {
			PD_LOG_WARN(COMP, 0, "refused peer %u for tenant %s: not a node that connects "
					     "to node %s", node, t->conf->name, e->node_conf->name);
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
	PD_LOG_INFO(COMP, "node %s: ingress %u connected for tenant %s", e->node_conf->name,
		    origin, t->conf->name);
}

static void on_down(void *app, struct pd_fabric_conn *conn, int err)
{
	struct engine *e = app;
	uint16_t peer = pd_fabric_conn_peer(conn);
	if (!(peer & PD_FABRIC_PEER_INGRESS)) {
		struct peer_link *p = pd_fabric_conn_ctx(conn);
		if (p != NULL && p->conn == conn) {
			peer_down(e, p, conn, err);
			fail_queue(e, p->tenant, p->node);
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
			fail_queue(e, t, DEST_INGRESS(i));
		}
	}
}

/* ---------------------------------------------------------------- stats */

static void stats_answer(struct engine *e, int fd)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL)
		return;
	fprintf(f, "node %s pid %d attach_refused=%lu link_rate=%lu paced=%lu\n",
		e->node_conf->name, (int)getpid(), (unsigned long)e->attach_refused,
		(unsigned long)e->pacer.rate, (unsigned long)e->paced);
	for (uint32_t i = 0; i < e->ntenants; i++) {
		struct tenant_rt *t = &e->tenants[i];
		uint64_t census[PD_BUF_STATE_COUNT];
		pd_pool_census(&t->pool, census);
		uint64_t fn_handled = 0, fn_bad = 0, fn_copied = 0, fn_meta = 0, fn_expired = 0;
		for (uint16_t s = 0; s < t->ninst; s++) {
			struct pd_inst_status *st = t->pool.inst_status[s];
			fn_handled += atomic_load(&st->handled);
			fn_bad += atomic_load(&st->bad_input);
			fn_copied += atomic_load(&st->copied_bytes);
			fn_meta += atomic_load(&st->meta_bytes);
			fn_expired += atomic_load(&st->expired);
		}
		const struct tenant_counters *c = &t->c;
		fprintf(f,
			"tenant %s buffers_total=%u buffers_free=%lu buffers_in_use=%lu "
			"buffers_rx_posted=%lu msgs_in=%lu bytes_in=%lu msgs_out=%lu bytes_out=%lu "
			"to_functions=%lu bad_descriptors=%lu bad_headers=%lu dropped=%lu "
			"engine_payload_copied_bytes=%lu function_payload_copied_bytes=%lu "
			"function_meta_copied_bytes=%lu function_handled=%lu function_bad_input=%lu "
			"errors_sent=%lu reclaimed=%lu restarts=%lu hung_killed=%lu "
			"pending_sends=%u to_peers=%lu from_peers=%lu lost_with_peer=%lu expired=%lu "
			"function_expired=%lu rx_depth=%u rx_credits=%lu rx_repost_deferred=%lu\n",
			t->conf->name, t->pool.nbuffers, census[PD_BUF_FREE],
			t->pool.nbuffers - census[PD_BUF_FREE] - census[PD_BUF_RX_POSTED],
			census[PD_BUF_RX_POSTED], c->msgs_in, c->bytes_in, c->msgs_out,
			c->bytes_out, c->to_functions, c->bad_descriptors, c->bad_headers,
			c->dropped, c->payload_copied, fn_copied, fn_meta, fn_handled, fn_bad,
			c->errors_sent, c->reclaimed, c->function_restarts, c->hung_killed,
			t->pend_count, c->to_peers, c->from_peers, c->lost_with_peer, c->expired,
			fn_expired, t->rx_depth, (unsigned long)t->credits_per_link * t->links,
			c->rx_repost_deferred);
		for (uint32_t n = 0; n < e->cfg->nodes_count; n++) {
			const struct peer_link *p = &t->peers[n];
			if (!p->hosts_tenant)
				continue;
			fprintf(f, "  peer %s state=%s sent=%lu received=%lu inflight=%u queued=%u "
				   "lost=%lu\n",
				e->cfg->nodes[n].name, p->up ? "up" : "down", p->sent, p->received,
				p->inflight, t->pend[ENGINE_MAX_INGRESS + n].count, p->lost);
		}
		for (uint16_t s = 0; s < t->ninst; s++) {
			const struct instance *in = &t->inst[s];
			static const char *const names[] = {"down", "starting", "running",
							    "stopping"};
			fprintf(f, "  instance %s/%u pid=%d state=%s restarts=%u ring=%u\n",
				e->cfg->functions[in->function].name, (unsigned)s, (int)in->pid,
				names[in->state], in->restarts,
				pd_ring_count(&t->pool.inst_ring[s]));
		}
	}
	struct pd_fabric_stats fs;
	pd_fabric_get_stats(e->fab, &fs);
	fprintf(f,
		"fabric msgs_sent=%lu bytes_sent=%lu msgs_recv=%lu bytes_recv=%lu "
		"credit_msgs_sent=%lu credit_msgs_recv=%lu send_errors=%lu refused=%lu "
		"no_credit=%lu writes=%lu grants_sent=%lu grants_recv=%lu\n",
		fs.msgs_sent, fs.bytes_sent, fs.msgs_recv, fs.bytes_recv, fs.credit_msgs_sent,
		fs.credit_msgs_recv, fs.send_errors, fs.refused, fs.no_credit, fs.writes,
		fs.grants_sent, fs.grants_recv);
	fclose(f);
	/* One datagram; large clusters may need a larger limit some day. */
	ssize_t n = send(fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)n;
	free(text);
}

static void on_stats_listen(struct engine *e)
{
	int fd = accept4(e->stats_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	stats_answer(e, fd);
	close(fd);
}

/* ---------------------------------------------------------------- set-up */

static int listen_abstract(const char *name, int type)
{
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	if (n + 1 >= sizeof(sa.sun_path)) {
		close(fd);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path + 1, name, n);
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	if (bind(fd, (struct sockaddr *)&sa, salen) != 0 || listen(fd, 64) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int engine_private_dir(const char *path, uid_t uid)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return -errno;
	/* It may have been there before: anyone can create a name in /tmp. */
	struct stat st;
	if (lstat(path, &st) != 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (st.st_uid != uid || (st.st_mode & 07777) != 0700)
		return -EPERM;
	return 0;
}

/*
 * Listen on a Unix socket path. A socket file left by an engine that died is replaced;
 * one that still answers belongs to a running engine: -EADDRINUSE.
 */
static int listen_path(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, n);
	char *slash = strrchr(sa.sun_path, '/');
	if (slash != NULL && slash != sa.sun_path) {
		*slash = '\0';
		int rc = engine_private_dir(sa.sun_path, geteuid());
		if (rc != 0)
			PD_LOG_ERR(COMP, rc, "stats socket directory %s: %s", sa.sun_path,
				   rc == -EPERM || rc == -ENOTDIR
					   ? "must be a directory (not a link) of this engine's uid "
					     "with mode 0700; remove it or fix its owner and mode"
					   : "mkdir or lstat");
		*slash = '/';
		if (rc != 0)
			return rc;
	}
	int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return -errno;
	bool alive = connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(probe);
	if (alive)
		return -EADDRINUSE;
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int tenants_init(struct engine *e)
{
	const struct pd_config *cfg = e->cfg;
	memset(e->tenant_map, -1, sizeof(e->tenant_map));
	e->tenants = calloc(cfg->tenants_count, sizeof(*e->tenants));
	if (e->tenants == NULL)
		return -ENOMEM;
	for (uint32_t ti = 0; ti < cfg->tenants_count; ti++) {
		uint32_t ninst = 0;
		for (uint32_t f = 0; f < cfg->functions_count; f++)
			if (cfg->functions[f].tenant_idx == ti &&
			    pd_config_function_on_node(&cfg->functions[f], e->node))
				ninst += cfg->functions[f].instances;
		if (ninst == 0)
			continue;
		struct tenant_rt *t = &e->tenants[e->ntenants];
		e->tenant_map[ti] = (int16_t)e->ntenants;
		e->ntenants++;
		t->tenant = (uint16_t)ti;
		t->conf = &cfg->tenants[ti];
		t->engine_efd = -1;
		for (uint32_t d = 0; d < NDEST; d++)
			t->pend[d].head = t->pend[d].tail = PEND_NONE;
		uint64_t max_timeout = 0;
		for (uint32_t r = 0; r < cfg->routes_count; r++)
			if (cfg->routes[r].tenant_idx == ti && cfg->routes[r].timeout_ms > max_timeout)
				max_timeout = cfg->routes[r].timeout_ms;
		/* A handler still busy this long after its request timed out is hung. */
		t->hang_ns = (max_timeout + 1000) * 1000000ull;

		struct pd_pool_attr attr = {
			.tenant = (uint16_t)ti,
			.pool_size = t->conf->pool,
			.buffer_size = (uint32_t)t->conf->buffer_size,
			.ring_size = cfg->engine.ring_size,
			.ninst = ninst,
		};
		char name[80];
		snprintf(name, sizeof(name), "palladium.%s.%s", e->node_conf->name, t->conf->name);
		int rc = pd_pool_create(&attr, name, &t->pool);
		if (rc != 0) {
			PD_LOG_ERR(COMP, rc, "tenant %s: pool of %lu bytes", t->conf->name,
				   (unsigned long)attr.pool_size);
			return rc;
		}
		t->pool_ok = true;
		t->ninst = (uint16_t)ninst;
		t->pend_next = calloc(t->pool.nbuffers, sizeof(uint32_t));
		t->dest = calloc(t->pool.nbuffers, sizeof(uint16_t));
		if (t->pend_next == NULL || t->dest == NULL)
			return -ENOMEM;
		rc = peers_init(e, t);
		if (rc != 0)
			return rc;
		t->engine_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->engine_efd < 0)
			return -errno;
		rc = engine_watch(e, t->engine_efd, W_RING);
		if (rc != 0)
			return rc;

		rc = pd_fabric_mr_reg(e->fab, t->pool.buffers,
				      (size_t)t->pool.nbuffers * t->conf->buffer_size, &t->mr);
		if (rc != 0) {
			PD_LOG_ERR(COMP, rc, "tenant %s: register pool with the fabric",
				   t->conf->name);
			return rc;
		}
		/* The receives are shared by the ingress link and every peer link. */
		uint32_t links = 1;
		for (uint32_t n = 0; n < cfg->nodes_count; n++)
			links += t->peers[n].hosts_tenant;
		t->links = links;
		rc = engine_rx_plan(t->pool.nbuffers, links, &t->rx_depth, &t->credits_per_link);
		if (rc != 0) {
			PD_LOG_ERR(COMP, rc, "tenant %s: a pool of %u buffers cannot hold the %u receives "
					     "its %u fabric links need (%u each, at most half the pool)",
				   t->conf->name, t->pool.nbuffers, links * PD_FABRIC_CREDITS_MIN, links,
				   PD_FABRIC_CREDITS_MIN);
			return rc;
		}
		rc = pd_fabric_rx_create(e->fab, (uint16_t)ti, t->rx_depth, &t->rx);
		if (rc != 0) {
			PD_LOG_ERR(COMP, rc, "tenant %s: receive context", t->conf->name);
			return rc;
		}
		t->rx_missing = t->rx_depth;
		post_receives(e, t);
	}
	return 0;
}

static void tenants_fini(struct engine *e)
{
	for (uint32_t i = 0; i < e->ntenants; i++) {
		struct tenant_rt *t = &e->tenants[i];
		if (t->engine_efd >= 0)
			close(t->engine_efd);
		peers_fini(t);
		free(t->pend_next);
		free(t->dest);
	}
}

static void tenants_close_pools(struct engine *e)
{
	for (uint32_t i = 0; i < e->ntenants; i++)
		if (e->tenants[i].pool_ok)
			pd_pool_close(&e->tenants[i].pool);
	free(e->tenants);
	e->tenants = NULL;
}

/* ---------------------------------------------------------------- the loop */

static void handle_signal(struct engine *e)
{
	struct signalfd_siginfo si;
	while (read(e->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			sup_on_sigchld(e);
		else
			e->stopping = true;
	}
}

static void drain_eventfd(int fd)
{
	uint64_t v;
	ssize_t n = read(fd, &v, sizeof(v));
	(void)n;
}

static int poll_work(struct engine *e, uint64_t now)
{
	int work = pd_fabric_progress(e->fab);
	for (uint32_t i = 0; i < e->ntenants; i++) {
		struct tenant_rt *t = &e->tenants[i];
		/* A tenant with a full send queue is not drained: its functions run out of
		 * buffers and wait (backpressure), nothing is dropped. */
		if (t->pend_count < ENGINE_TX_QUEUE) {
			t->last_drained = (uint32_t)drain_engine_ring(e, t);
			work += (int)t->last_drained;
		}
		/* Credits or links may have come back: queued tenants take turns again. */
		if (t->pend_count > 0)
			pd_sched_wake(&e->sched, i);
	}
	work += transmit(e, now);
	return work;
}

static void handle_events(struct engine *e, struct epoll_event *evs, int n)
{
	for (int i = 0; i < n; i++) {
		int kind = (int)(evs[i].data.u64 >> 32);
		int fd = (int)(uint32_t)evs[i].data.u64;
		switch (kind) {
		case W_SIGNAL:
			handle_signal(e);
			break;
		case W_ATTACH:
			sup_on_attach_ready(e);
			break;
		case W_CTL:
			sup_on_ctl_event(e, fd, evs[i].events);
			break;
		case W_STATS:
			on_stats_listen(e);
			break;
		case W_RING:
			drain_eventfd(fd);
			break;
		default: /* fabric: progress runs at the top of the loop */
			break;
		}
	}
}

/* Nanoseconds until the pacer lets a held-back send go; 0 if it holds nothing back. */
static uint64_t pacer_wait(struct engine *e, uint64_t now)
{
	uint64_t wait = pd_pacer_wait_ns(&e->pacer, now);
	if (wait == 0 || e->tx_inflight >= ENGINE_TX_WINDOW)
		return 0;
	for (uint32_t i = 0; i < e->ntenants; i++)
		if (e->tenants[i].pend_count > 0)
			return wait;
	return 0;
}

static void run_loop(struct engine *e)
{
	uint64_t idle_since = pd_now_ns();
	uint64_t next_tick = idle_since + ENGINE_TICK_MS * 1000000ull;
	uint64_t last_events = 0;
	struct epoll_event evs[32];
	while (!e->stopping) {
		uint64_t now = pd_now_ns();
		if (now >= next_tick) {
			sup_tick(e, now);
			peers_tick(e, now);
			for (uint32_t i = 0; i < e->ntenants; i++)
				expire_queues(e, &e->tenants[i], now);
			for (uint32_t i = 0; i < e->ntenants; i++)
				post_receives(e, &e->tenants[i]);
			next_tick = now + ENGINE_TICK_MS * 1000000ull;
		}
		if (poll_work(e, now) > 0) {
			idle_since = now;
			/* Busy: the rings and the fabric are polled above; the rest (signals,
			 * attach, control sockets, stats) can wait a little, which saves an
			 * epoll_wait per message under load. */
			if (now - last_events >= ENGINE_BUSY_EVENTS_NS) {
				last_events = now;
				int n = epoll_wait(e->epfd, evs, PD_ARRAY_SIZE(evs), 0);
				if (n > 0)
					handle_events(e, evs, n);
			}
			continue;
		}
		if (now - idle_since < e->spin_ns) {
			/* Spin, but let a process with work have the core (see ring.c). */
			sched_yield();
			continue;
		}
		/* Going to sleep: announce it on every engine ring, then look once more. */
		for (uint32_t i = 0; i < e->ntenants; i++)
			pd_ring_sleep_begin(&e->tenants[i].pool.engine_ring);
		bool busy = pd_fabric_trywait(e->fab) != 0;
		/* Sends waiting for a credit need no polling: credits arrive as completions,
		 * which wake the fabric's wait fds. */
		for (uint32_t i = 0; i < e->ntenants && !busy; i++)
			/* A ring that looks full but gave nothing on the last drain is not
			 * work: a tenant scribbling on its own ring indexes must not keep
			 * the engine from sleeping. A real push still wakes it (eventfd). */
			busy = !pd_ring_looks_empty(&e->tenants[i].pool.engine_ring) &&
			       e->tenants[i].pend_count < ENGINE_TX_QUEUE &&
			       e->tenants[i].last_drained > 0;
		uint64_t wait_ns = next_tick > now ? next_tick - now : 0;
		/* Sends held back by the pacer: wake when the link rate lets the next go. */
		uint64_t paced_ns = pacer_wait(e, now);
		if (paced_ns != 0 && paced_ns < wait_ns)
			wait_ns = paced_ns;
		struct timespec ts = {.tv_sec = (time_t)(wait_ns / 1000000000ull),
				      .tv_nsec = (long)(wait_ns % 1000000000ull)};
		if (busy)
			ts = (struct timespec){0};
		int n = epoll_pwait2(e->epfd, evs, PD_ARRAY_SIZE(evs), &ts, NULL);
		for (uint32_t i = 0; i < e->ntenants; i++)
			pd_ring_sleep_end(&e->tenants[i].pool.engine_ring);
		if (n > 0) {
			handle_events(e, evs, n);
			idle_since = pd_now_ns();
		}
	}
}

int pd_engine_run(const struct pd_config *cfg, uint32_t node_idx)
{
	struct engine eng = {
		.cfg = cfg,
		.node = node_idx,
		.node_conf = &cfg->nodes[node_idx],
		.epfd = -1,
		.sigfd = -1,
		.attach_fd = -1,
		.stats_fd = -1,
		.spin_ns = cfg->engine.spin_us * 1000,
	};
	struct engine *e = &eng;
	int rc;

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigset_t old_mask;
	sigprocmask(SIG_BLOCK, &mask, &old_mask);

	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0) {
		rc = -errno;
		goto out;
	}
	e->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (e->sigfd < 0) {
		rc = -errno;
		goto close_epoll;
	}
	rc = engine_watch(e, e->sigfd, W_SIGNAL);
	if (rc != 0) {
		PD_LOG_ERR(COMP, rc, "epoll_ctl(signalfd)");
		goto close_signal;
	}

	uint8_t key[PD_FABRIC_KEY_LEN];
	int keyed = pd_fabric_key_from_env(key);
	if (keyed < 0) {
		PD_LOG_ERR(COMP, 0, "%s must be 64 hex digits", PD_FABRIC_KEY_ENV);
		rc = -EINVAL;
		goto close_signal;
	}
	if (keyed == 0)
		PD_LOG_WARN(COMP, 0, "no %s: the fabric accepts any peer that can reach %s:%u "
				     "(see docs/security.md)",
			    PD_FABRIC_KEY_ENV, e->node_conf->address, e->node_conf->port);
	struct pd_fabric_attr fattr = {
		.key = keyed > 0 ? key : NULL,
		.provider = cfg->fabric.provider,
		.listen_host = e->node_conf->address,
		.listen_port = e->node_conf->port,
		.local_id = (uint16_t)node_idx,
		.primitive = cfg->fabric.primitive == PD_PRIMITIVE_ONE_SIDED ? PD_FABRIC_ONE_SIDED
									    : PD_FABRIC_TWO_SIDED,
		.cb = {
			.on_recv = on_recv,
			.on_recv_cancel = on_recv_cancel,
			.on_send_done = on_send_done,
			.on_connect_request = on_connect_request,
			.on_up = on_up,
			.on_down = on_down,
		},
		.app = e,
	};
	rc = pd_fabric_open(&fattr, &e->fab);
	if (rc != 0) {
		PD_LOG_ERR(COMP, rc, "node %s: open fabric provider %s on %s:%u", e->node_conf->name,
			   cfg->fabric.provider, e->node_conf->address, e->node_conf->port);
		goto close_signal;
	}
	rc = tenants_init(e);
	if (rc != 0)
		goto close_tenants;
	uint32_t weights[PD_MAX_TENANTS];
	uint64_t quantum = 0;
	for (uint32_t i = 0; i < e->ntenants; i++) {
		weights[i] = e->tenants[i].conf->weight;
		if (e->tenants[i].conf->buffer_size > quantum)
			quantum = e->tenants[i].conf->buffer_size;
	}
	/* A quantum of at least the largest message: every turn sends something. */
	pd_sched_init(&e->sched, e->ntenants, weights, quantum);
	/* The bucket holds 2 ms at the link rate, and at least the largest message. */
	uint64_t burst = cfg->engine.link_rate / 500;
	pd_pacer_init(&e->pacer, cfg->engine.link_rate, burst > quantum ? burst : quantum,
		      pd_now_ns());
	int fds[PD_MAX_TENANTS + 1];
	int nfds = pd_fabric_wait_fds(e->fab, fds, (int)PD_ARRAY_SIZE(fds));
	for (int i = 0; i < nfds; i++) {
		rc = engine_watch(e, fds[i], W_FABRIC);
		if (rc != 0) {
			PD_LOG_ERR(COMP, rc, "epoll_ctl(fabric wait fd)");
			goto close_tenants;
		}
	}

	snprintf(e->attach_name, sizeof(e->attach_name), "palladium-attach.%d.%s", (int)getpid(),
		 e->node_conf->name);
	e->attach_fd = listen_abstract(e->attach_name, SOCK_SEQPACKET);
	if (e->attach_fd < 0) {
		rc = e->attach_fd;
		PD_LOG_ERR(COMP, rc, "attach socket");
		goto close_tenants;
	}
	rc = engine_watch(e, e->attach_fd, W_ATTACH);
	if (rc != 0) {
		PD_LOG_ERR(COMP, rc, "epoll_ctl(attach socket)");
		goto close_attach;
	}
	rc = pd_engine_stats_socket_path(cfg, node_idx, e->stats_path, sizeof(e->stats_path));
	if (rc == 0)
		rc = e->stats_fd = listen_path(e->stats_path);
	if (rc < 0) {
		PD_LOG_ERR(COMP, rc, "stats socket %s%s%s%s", e->stats_path,
			   rc == -EADDRINUSE ? " (is another engine of node " : "",
			   rc == -EADDRINUSE ? e->node_conf->name : "",
			   rc == -EADDRINUSE ? " running?)" : "");
		goto close_attach;
	}
	rc = engine_watch(e, e->stats_fd, W_STATS);
	if (rc != 0) {
		PD_LOG_ERR(COMP, rc, "epoll_ctl(stats socket)");
		goto close_stats;
	}

	rc = sup_init(e);
	if (rc != 0)
		goto close_stats;
	PD_LOG_INFO(COMP, "node %s: listening on %s:%u (%s, %s), %u tenant(s)", e->node_conf->name,
		    e->node_conf->address, e->node_conf->port, cfg->fabric.provider,
		    cfg->fabric.primitive == PD_PRIMITIVE_ONE_SIDED ? "one-sided" : "two-sided",
		    e->ntenants);
	sup_start_all(e);
	peers_tick(e, pd_now_ns());
	run_loop(e);
	PD_LOG_INFO(COMP, "node %s: stopping", e->node_conf->name);
	sup_stop_all(e, 3000);
	sup_fini(e);
	rc = 0;
close_stats:
	close(e->stats_fd);
	unlink(e->stats_path);
close_attach:
	close(e->attach_fd);
close_tenants:
	/* The fabric first, and with it every tenant's receive context and memory region:
	 * closing its links calls back into the engine (on_down, on_send_done,
	 * on_recv_cancel), which still needs the tenants' queues and pools. */
	if (e->fab != NULL)
		pd_fabric_close(e->fab);
	tenants_fini(e);
	tenants_close_pools(e);
close_signal:
	close(e->sigfd);
close_epoll:
	close(e->epfd);
out:
	/* Take the signals still pending (a second stop signal, a function's SIGCHLD)
	 * before unblocking them: they were the engine's, not the caller's. */
	for (struct timespec zero = {0, 0}; sigtimedwait(&mask, NULL, &zero) > 0;)
		;
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	return rc;
}
