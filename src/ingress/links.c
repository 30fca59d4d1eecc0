/* SPDX-License-Identifier: Apache-2.0 */
/* The ingress's fabric side: links to hop-0 engines, dispatch, backlogs, credits, callbacks. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "ingress/ingress_internal.h"

/* ---- links -------------------------------------------------------------------------- */

static const char *node_name(const struct ing_link *l)
{
	return l->ing->cfg->nodes[l->node_idx].name;
}

static void link_schedule_retry(struct ing_link *l)
{
	struct ingress *ing = l->ing;
	if (ing->closing || h2o_timeout_is_linked(&l->retry))
		return;
	h2o_timeout_link(ing->loop, &ing->backoff[l->backoff_step], &l->retry);
	if (l->backoff_step + 1 < NBACKOFF)
		l->backoff_step++;
}

static void link_log_down(struct ing_link *l, bool was_up, int err)
{
	if (l->logged == LINK_LOGGED_DOWN)
		return;
	l->logged = LINK_LOGGED_DOWN;
	const struct pd_config_node *n = &l->ing->cfg->nodes[l->node_idx];
	if (was_up)
		PD_LOG_WARN(LOG_COMP, err, "lost node %s (%s:%u) for tenant %s; reconnecting",
		            n->name, n->address, n->port, l->tenant->cfg->name);
	else
		PD_LOG_WARN(LOG_COMP, err, "cannot reach node %s (%s:%u) for tenant %s; retrying",
		            n->name, n->address, n->port, l->tenant->cfg->name);
}

static void link_connect(struct ing_link *l)
{
	struct ingress *ing = l->ing;
	const struct pd_config_node *n = &ing->cfg->nodes[l->node_idx];
	struct pd_fabric_conn *conn = NULL;
	int rc = pd_fabric_connect(ing->fab, l->tenant->rx, n->address, n->port,
	                           (uint16_t)l->node_idx, l->credits, l, &conn);
	ing->waitfds_dirty = true;
	if (rc < 0) {
		link_log_down(l, false, rc);
		link_schedule_retry(l);
		return;
	}
	l->conn = conn;
}

static void on_link_retry(h2o_timeout_entry_t *entry)
{
	struct ing_link *l = PD_CONTAINER_OF(entry, struct ing_link, retry);
	if (!l->ing->closing && l->conn == NULL)
		link_connect(l);
}

void ing_links_start(struct ingress *ing)
{
	for (uint32_t i = 0; i < ing->nlinks; i++)
		link_connect(&ing->links[i]);
}

bool ing_route_reachable(const struct ing_route *rt)
{
	for (uint32_t i = 0; i < rt->nhop0; i++)
		if (rt->hop0[i]->up)
			return true;
	return false;
}

/* ---- sending ------------------------------------------------------------------------ */

static int send_slot(struct ing_link *l, struct ing_slot *s)
{
	struct ing_buf *b = s->buf;
	int rc = pd_fabric_send(l->conn, l->tenant->mr, b->data, s->msg_len, b);
	if (rc == 0) {
		b->state = BUF_SENDING;
		s->buf = NULL;
		s->state = SLOT_SENT;
	}
	return rc;
}

static void backlog_push(struct ingress *ing, struct ing_link *l, struct ing_slot *s)
{
	l->backlog_len++;
	h2o_linklist_insert(&l->backlog, &s->queued);
	if (!h2o_linklist_is_linked(&l->backlogged))
		h2o_linklist_insert(&ing->backlogged, &l->backlogged);
}

static void backlog_unlink(struct ing_link *l, struct ing_slot *s)
{
	h2o_linklist_unlink(&s->queued);
	l->backlog_len--;
}

/*
 * Send the request of slot s (state SLOT_QUEUED, s->buf filled) to the least loaded
 * connected hop-0 engine of its route, or queue it behind that link's backlog until a
 * credit comes back. The backlog holds at most one window of credits: an engine that
 * has not returned that many has no free buffers, and waiting longer would only turn
 * a quick 503 into a 504 later. 0: sent or queued; -ENOTCONN: no engine; -ENOBUFS: the
 * engine is out of buffers; other negative errno: the send failed.
 */
int ing_dispatch(struct ingress *ing, struct ing_slot *s)
{
	const struct ing_route *rt = &ing->routes[s->route];
	struct ing_link *best = NULL;
	for (uint32_t i = 0; i < rt->nhop0; i++) {
		struct ing_link *l = rt->hop0[i];
		if (l->up && (best == NULL || l->outstanding < best->outstanding))
			best = l;
	}
	if (best == NULL)
		return -ENOTCONN;
	if (!h2o_linklist_is_empty(&best->backlog) && best->backlog_len >= best->window)
		return -ENOBUFS;
	s->link = best;
	s->link_epoch = best->epoch;
	best->outstanding++;
	if (h2o_linklist_is_empty(&best->backlog)) {
		int rc = send_slot(best, s);
		if (rc == 0)
			return 0;
		if (rc != -EAGAIN) {
			best->outstanding--;
			s->link = NULL;
			return rc;
		}
	}
	backlog_push(ing, best, s);
	return 0;
}

void ing_flush_backlogs(struct ingress *ing)
{
	h2o_linklist_t *node = ing->backlogged.next;
	while (node != &ing->backlogged) {
		struct ing_link *l = PD_CONTAINER_OF(node, struct ing_link, backlogged);
		node = node->next;
		while (l->up && !h2o_linklist_is_empty(&l->backlog) &&
		       pd_fabric_conn_credits(l->conn) > 0) {
			struct ing_slot *s =
			    PD_CONTAINER_OF(l->backlog.next, struct ing_slot, queued);
			int rc = send_slot(l, s);
			if (rc == -EAGAIN)
				break;
			backlog_unlink(l, s);
			if (rc < 0)
				ing_slot_fail(ing, s, rc == -ENOTCONN ? 503 : 502,
				              rc == -ENOTCONN ? "no engine available\n"
				                              : "fabric send failed\n");
		}
		if (h2o_linklist_is_empty(&l->backlog))
			h2o_linklist_unlink(&l->backlogged);
	}
}

/* ---- fabric callbacks --------------------------------------------------------------- */

static void on_recv(void *app, struct pd_fabric_conn *conn, void *buf_ctx, size_t len)
{
	struct ingress *ing = app;
	struct ing_buf *b = buf_ctx;
	(void)conn;
	if (ing->closing) {
		ing_buf_push_free(b);
		return;
	}
	b->state = BUF_FILLED;
	int kept = 0;
	ing->on_response(ing, b, len, &kept);
	if (kept)
		ing_rx_replace(b->tenant);
	else
		ing_rx_repost(b);
}

static void on_recv_cancel(void *app, void *buf_ctx)
{
	(void)app;
	ing_buf_push_free(buf_ctx);
}

static void on_send_done(void *app, void *send_ctx, int status)
{
	struct ingress *ing = app;
	struct ing_buf *b = send_ctx;
	uint64_t request_id = b->request_id;
	ing_buf_release(b);
	if (status == 0 || ing->closing)
		return;
	ing->stats.send_failures++;
	struct ing_slot *s;
	if (ing_slot_lookup(ing, request_id, &s) == 0)
		ing_slot_fail(ing, s, 502, "fabric send failed\n");
}

static int on_connect_request(void *app, const struct pd_fabric_hello *hello,
                              struct pd_fabric_rx **rx, uint16_t *credits, void **conn_ctx)
{
	(void)app, (void)hello, (void)rx, (void)credits, (void)conn_ctx;
	return -ECONNREFUSED; /* the ingress only connects out */
}

static void on_up(void *app, struct pd_fabric_conn *conn)
{
	struct ingress *ing = app;
	struct ing_link *l = pd_fabric_conn_ctx(conn);
	ing->waitfds_dirty = true;
	if (ing->closing)
		return;
	l->conn = conn;
	l->up = true;
	l->backoff_step = 0;
	/* Right after set-up, the credits are the whole window the engine granted. */
	l->window = pd_fabric_conn_credits(conn);
	if (l->window == 0)
		l->window = 1;
	if (l->logged != LINK_LOGGED_UP) {
		l->logged = LINK_LOGGED_UP;
		PD_LOG_INFO(LOG_COMP, "connected to node %s for tenant %s (%u credits)",
		            node_name(l), l->tenant->cfg->name, l->credits);
	}
}

static void on_down(void *app, struct pd_fabric_conn *conn, int err)
{
	struct ingress *ing = app;
	struct ing_link *l = pd_fabric_conn_ctx(conn);
	ing->waitfds_dirty = true;
	if (l == NULL || l->conn != conn)
		return;
	bool was_up = l->up;
	uint32_t lost_epoch = l->epoch;
	l->conn = NULL;
	l->up = false;
	l->epoch++;
	l->outstanding = 0;
	if (ing->closing)
		return;
	link_log_down(l, was_up, err);

	/* Requests the lost engine had taken will not come back from it: fail them now
	 * rather than at their timeout. */
	ing->stats.lost_on_link_down +=
	    ing_slots_fail_link(ing, l, lost_epoch, 502, "node failed\n");

	/* Requests still waiting for a credit go to another engine of their route, or fail. */
	h2o_linklist_t moved;
	h2o_linklist_init_anchor(&moved);
	if (!h2o_linklist_is_empty(&l->backlog))
		h2o_linklist_insert_list(&moved, &l->backlog);
	if (h2o_linklist_is_linked(&l->backlogged))
		h2o_linklist_unlink(&l->backlogged);
	l->backlog_len = 0;
	while (!h2o_linklist_is_empty(&moved)) {
		struct ing_slot *s = PD_CONTAINER_OF(moved.next, struct ing_slot, queued);
		h2o_linklist_unlink(&s->queued);
		s->link = NULL;
		int rc = ing_dispatch(ing, s);
		if (rc < 0)
			ing_slot_fail(ing, s, rc == -ENOTCONN ? 503 : 502,
			              rc == -ENOTCONN ? "no engine available\n"
			                              : "fabric send failed\n");
	}
	link_schedule_retry(l);
}

/* ---- the wait fds in h2o's loop ------------------------------------------------------ */

void ing_fabric_poll(struct ingress *ing, int max_rounds)
{
	for (int i = 0; i < max_rounds; i++)
		if (pd_fabric_progress(ing->fab) <= 0)
			break;
	if (!h2o_linklist_is_empty(&ing->backlogged))
		ing_flush_backlogs(ing);
	if (ing->waitfds_dirty)
		ing_fabric_sync_waitfds(ing);
}

static void on_waitfd_readable(h2o_socket_t *sock, const char *err)
{
	struct ingress *ing = sock->data;
	(void)err;
	ing_fabric_poll(ing, PROGRESS_BURST);
}

static void waitfd_close(struct ing_waitfd *w)
{
	h2o_socket_read_stop(w->sock);
	h2o_socket_close(w->sock); /* closes our dup, not the fabric's fd */
	w->sock = NULL;
}

/*
 * Follow the fabric's wait fds in the loop. h2o closes the fds of its sockets, so it gets
 * a dup of each; fds are matched by inode so that a reused fd number is noticed.
 */
int ing_fabric_sync_waitfds(struct ingress *ing)
{
	int fds[MAX_WAIT_FDS];
	struct stat st[MAX_WAIT_FDS];
	ing->waitfds_dirty = false;
	int n = pd_fabric_wait_fds(ing->fab, fds, MAX_WAIT_FDS);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++)
		if (fstat(fds[i], &st[i]) != 0)
			st[i].st_ino = 0;

	for (uint32_t j = 0; j < ing->nwaitfds;) {
		struct ing_waitfd *w = &ing->waitfds[j];
		bool keep = false;
		for (int i = 0; i < n && !keep; i++)
			keep = fds[i] == w->fd && st[i].st_ino == w->ino && st[i].st_dev == w->dev;
		if (keep) {
			j++;
			continue;
		}
		waitfd_close(w);
		ing->waitfds[j] = ing->waitfds[--ing->nwaitfds];
	}

	for (int i = 0; i < n; i++) {
		bool have = false;
		for (uint32_t j = 0; j < ing->nwaitfds && !have; j++)
			have = ing->waitfds[j].fd == fds[i];
		if (have || st[i].st_ino == 0 || ing->nwaitfds == MAX_WAIT_FDS)
			continue;
		int dupfd = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
		if (dupfd < 0) {
			PD_LOG_ERR(LOG_COMP, errno, "dup of fabric wait fd %d", fds[i]);
			continue;
		}
		struct ing_waitfd *w = &ing->waitfds[ing->nwaitfds++];
		w->fd = fds[i];
		w->dev = st[i].st_dev;
		w->ino = st[i].st_ino;
		w->sock = h2o_evloop_socket_create(ing->loop, dupfd, H2O_SOCKET_FLAG_DONT_READ);
		w->sock->data = ing;
		h2o_socket_read_start(w->sock, on_waitfd_readable);
	}
	return 0;
}

/* ---- open / close ------------------------------------------------------------------- */

int ing_fabric_open(struct ingress *ing)
{
	const struct pd_config *cfg = ing->cfg;
	uint8_t cluster_key[PD_FABRIC_KEY_LEN];
	int keyed = pd_fabric_key_from_env(cluster_key);
	if (keyed < 0) {
		PD_LOG_ERR(LOG_COMP, 0, "%s must be 64 hex digits", PD_FABRIC_KEY_ENV);
		return -EINVAL;
	}
	struct pd_fabric_attr attr = {
	    .key = keyed > 0 ? cluster_key : NULL,
	    .provider = cfg->fabric.provider != NULL ? cfg->fabric.provider : "tcp",
	    .listen_host = NULL,
	    .local_id = PD_FABRIC_PEER_INGRESS | ORIGIN_ID,
	    .primitive = cfg->fabric.primitive == PD_PRIMITIVE_ONE_SIDED ? PD_FABRIC_ONE_SIDED
	                                                                 : PD_FABRIC_TWO_SIDED,
	    .cb =
	        {
	            .on_recv = on_recv,
	            .on_recv_cancel = on_recv_cancel,
	            .on_send_done = on_send_done,
	            .on_connect_request = on_connect_request,
	            .on_up = on_up,
	            .on_down = on_down,
	        },
	    .app = ing,
	};
	int rc = pd_fabric_open(&attr, &ing->fab);
	if (rc < 0) {
		PD_LOG_ERR(LOG_COMP, rc, "pd_fabric_open (provider %s)", attr.provider);
		ing->fab = NULL;
		return rc;
	}

	/*
	 * A link to every (node, tenant) pair where the node runs a function of the tenant:
	 * hop 0 goes out on some of them, and a response comes back from whichever node ran
	 * the last hop (or failed the request).
	 */
	uint32_t nn = cfg->nodes_count, nt = ing->ntenants;
	int32_t *link_of = malloc(sizeof(*link_of) * ((size_t)nn * nt + 1));
	if (link_of == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < (size_t)nn * nt; i++)
		link_of[i] = -1;
	uint32_t nlinks = 0;
	for (uint32_t fi = 0; fi < cfg->functions_count; fi++) {
		const struct pd_config_function *f = &cfg->functions[fi];
		if (f->tenant_idx >= nt)
			continue;
		for (uint32_t k = 0; k < f->node_idx_count; k++) {
			size_t key = (size_t)f->tenant_idx * nn + f->node_idx[k];
			if (f->node_idx[k] < nn && link_of[key] < 0)
				link_of[key] = (int32_t)nlinks++;
		}
	}
	ing->links = calloc(nlinks ? nlinks : 1, sizeof(*ing->links));
	if (ing->links == NULL) {
		free(link_of);
		return -ENOMEM;
	}
	ing->nlinks = nlinks;
	for (uint32_t t = 0; t < nt; t++)
		for (uint32_t n = 0; n < nn; n++) {
			int32_t li = link_of[(size_t)t * nn + n];
			if (li < 0)
				continue;
			struct ing_link *l = &ing->links[li];
			l->ing = ing;
			l->tenant = &ing->tenants[t];
			l->node_idx = n;
			l->retry.cb = on_link_retry;
			h2o_linklist_init_anchor(&l->backlog);
			ing->tenants[t].nlinks++;
		}
	for (uint32_t r = 0; r < ing->nroutes; r++) {
		struct ing_route *rt = &ing->routes[r];
		rt->hop0 = calloc(nn ? nn : 1, sizeof(*rt->hop0));
		if (rt->hop0 == NULL) {
			free(link_of);
			return -ENOMEM;
		}
		if (rt->cfg->chain_count == 0)
			continue;
		const struct pd_config_function *f = &cfg->functions[rt->cfg->chain_idx[0]];
		for (uint32_t k = 0; k < f->node_idx_count; k++) {
			if (f->node_idx[k] >= nn)
				continue;
			int32_t li = link_of[(size_t)rt->cfg->tenant_idx * nn + f->node_idx[k]];
			rt->hop0[rt->nhop0++] = &ing->links[li];
		}
	}
	free(link_of);

	for (uint32_t t = 0; t < nt; t++) {
		struct ing_tenant *ten = &ing->tenants[t];
		if (ten->nlinks == 0)
			continue;
		rc = ing_bufs_open(ing, ten);
		if (rc < 0)
			return rc;
	}
	for (uint32_t i = 0; i < nlinks; i++) {
		struct ing_link *l = &ing->links[i];
		uint32_t c = l->tenant->rx_depth / l->tenant->nlinks;
		l->credits = (uint16_t)(c < PD_FABRIC_CREDITS_MIN ? PD_FABRIC_CREDITS_MIN
		                        : c > UINT16_MAX          ? UINT16_MAX
		                                                  : c);
	}
	return 0;
}

void ing_fabric_close(struct ingress *ing)
{
	ing->closing = true;
	for (uint32_t i = 0; i < ing->nlinks; i++)
		if (h2o_timeout_is_linked(&ing->links[i].retry))
			h2o_timeout_unlink(&ing->links[i].retry);
	while (ing->nwaitfds > 0)
		waitfd_close(&ing->waitfds[--ing->nwaitfds]);
	if (ing->fab != NULL) {
		/* Connections, receive contexts and regions go with it; no callback runs. */
		pd_fabric_close(ing->fab);
		ing->fab = NULL;
		for (uint32_t i = 0; i < ing->nlinks; i++)
			ing->links[i].conn = NULL;
		for (uint32_t t = 0; t < ing->ntenants; t++) {
			ing->tenants[t].rx = NULL;
			ing->tenants[t].mr = NULL;
		}
	}
	for (uint32_t t = 0; t < ing->ntenants; t++)
		ing_bufs_close(&ing->tenants[t]);
	for (uint32_t r = 0; r < ing->nroutes; r++) {
		free(ing->routes[r].hop0);
		ing->routes[r].hop0 = NULL;
	}
	free(ing->links);
	ing->links = NULL;
	ing->nlinks = 0;
}
