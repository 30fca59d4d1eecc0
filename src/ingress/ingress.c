/* SPDX-License-Identifier: Apache-2.0 */
/* The ingress's life: tables, h2o set-up, listeners, signals, the event loop, teardown. */
#include "ingress/ingress.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "ingress/h2o_compat.h"
#include "ingress/ingress_internal.h"

#define ACCEPT_BURST 32
#define DRAIN_SOFT_MS 500 /* after a stop: answers may still go out */
#define DRAIN_HARD_MS 300 /* then connections are cut */

/* ---- tables ------------------------------------------------------------------------- */

static int cmp_route_order(const void *a, const void *b, void *arg)
{
	const struct ingress *ing = arg;
	size_t la = ing->routes[*(const uint32_t *)a].prefix_len;
	size_t lb = ing->routes[*(const uint32_t *)b].prefix_len;
	return la < lb ? 1 : la > lb ? -1 : 0;
}

static int tables_create(struct ingress *ing)
{
	const struct pd_config *cfg = ing->cfg;
	ing->ntenants = cfg->tenants_count;
	ing->nroutes = cfg->routes_count;
	ing->tenants = calloc(ing->ntenants ? ing->ntenants : 1, sizeof(*ing->tenants));
	ing->routes = calloc(ing->nroutes ? ing->nroutes : 1, sizeof(*ing->routes));
	ing->route_order = calloc(ing->nroutes ? ing->nroutes : 1, sizeof(*ing->route_order));
	ing->route_stats = calloc(ing->nroutes + 1, sizeof(*ing->route_stats));
	if (ing->tenants == NULL || ing->routes == NULL || ing->route_order == NULL ||
	    ing->route_stats == NULL)
		return -ENOMEM;
	h2o_linklist_init_anchor(&ing->backlogged);
	h2o_linklist_init_anchor(&ing->conns);

	uint64_t nslots = 0;
	uint64_t now = now_ns();
	for (uint32_t i = 0; i < ing->ntenants; i++) {
		const struct pd_config_tenant *tc = &cfg->tenants[i];
		struct ing_tenant *t = &ing->tenants[i];
		t->ing = ing;
		t->index = i;
		t->cfg = tc;
		t->buf_size = tc->buffer_size;
		if (t->buf_size <= PD_MSG_HDR_SIZE) {
			PD_LOG_ERR(LOG_COMP, EINVAL, "tenant %s: buffer_size %lu too small",
			           tc->name, (unsigned long)tc->buffer_size);
			return -EINVAL;
		}
		uint64_t room = t->buf_size - PD_MSG_HDR_SIZE;
		t->max_body = tc->max_body != 0 && tc->max_body < room ? tc->max_body : room;
		t->max_inflight = tc->max_inflight;
		t->rate = tc->rate > 0 ? tc->rate : 0;
		t->burst = t->rate > 1 ? t->rate : 1;
		t->tokens = t->burst;
		t->tokens_ns = now;
		nslots += tc->max_inflight;
	}
	if (nslots > UINT32_MAX / 2) {
		PD_LOG_ERR(LOG_COMP, EINVAL, "sum of max_inflight too large");
		return -EINVAL;
	}
	ing->nslots = (uint32_t)nslots;
	ing->slots = calloc(nslots ? nslots : 1, sizeof(*ing->slots));
	ing->free_slots = calloc(nslots ? nslots : 1, sizeof(*ing->free_slots));
	if (ing->slots == NULL || ing->free_slots == NULL)
		return -ENOMEM;
	ing_slots_init(ing);
	ing->on_response = ing_on_response; /* links.c hands it what the fabric brings */

	for (uint32_t r = 0; r < ing->nroutes; r++) {
		const struct pd_config_route *rc = &cfg->routes[r];
		struct ing_route *rt = &ing->routes[r];
		if (rc->tenant_idx >= ing->ntenants || rc->path == NULL || rc->path[0] != '/' ||
		    (rc->chain_count > 0 && rc->chain_idx[0] >= cfg->functions_count)) {
			PD_LOG_ERR(LOG_COMP, EINVAL, "route %u is not resolved", r);
			return -EINVAL;
		}
		rt->cfg = rc;
		rt->prefix = rc->path;
		rt->prefix_len = strlen(rc->path);
		rt->tenant = &ing->tenants[rc->tenant_idx];
		ing->route_order[r] = r;
	}
	qsort_r(ing->route_order, ing->nroutes, sizeof(*ing->route_order), cmp_route_order, ing);
	return 0;
}

static void tables_destroy(struct ingress *ing)
{
	free(ing->tenants);
	free(ing->routes);
	free(ing->route_order);
	free(ing->route_stats);
	free(ing->slots);
	free(ing->free_slots);
	free(ing->route_timeouts);
}

/* One h2o_timeout_t per distinct route timeout, plus the reconnect delays. */
static int timeouts_init(struct ingress *ing)
{
	static const uint64_t backoff_ms[NBACKOFF] = {50, 100, 200, 400, 800, 1600, 2000};
	ing->route_timeouts = calloc(ing->nroutes ? ing->nroutes : 1, sizeof(*ing->route_timeouts));
	if (ing->route_timeouts == NULL)
		return -ENOMEM;
	for (uint32_t r = 0; r < ing->nroutes; r++) {
		uint64_t ms = ing->routes[r].cfg->timeout_ms;
		uint32_t k = 0;
		while (k < ing->nroute_timeouts && ing->route_timeouts[k].timeout != ms)
			k++;
		if (k == ing->nroute_timeouts)
			h2o_timeout_init(ing->loop, &ing->route_timeouts[ing->nroute_timeouts++],
			                 ms);
		ing->routes[r].timeout = &ing->route_timeouts[k];
	}
	for (int i = 0; i < NBACKOFF; i++)
		h2o_timeout_init(ing->loop, &ing->backoff[i], backoff_ms[i]);
	for (uint64_t k = 0; k < NREJECT_DELAYS; k++)
		h2o_timeout_init(ing->loop, &ing->reject_delay[k],
		                 ing->cfg->ingress.reject_delay_ms * (NREJECT_DELAYS + 2 * k + 1) /
		                     (2 * NREJECT_DELAYS));
	h2o_linklist_init_anchor(&ing->held_rejects);
	h2o_timeout_init(ing->loop, &ing->conn_deadline, ing->cfg->ingress.request_read_timeout_ms);
	h2o_timeout_init(ing->loop, &ing->accept_backoff, ACCEPT_BACKOFF_MS);
	ing->backoff_inited = true;
	return 0;
}

static void timeouts_dispose(struct ingress *ing)
{
	for (uint32_t k = 0; k < ing->nroute_timeouts; k++)
		h2o_timeout_dispose(ing->loop, &ing->route_timeouts[k]);
	ing->nroute_timeouts = 0;
	if (ing->backoff_inited) {
		ing_answer_held_rejects(ing);
		for (int i = 0; i < NBACKOFF; i++)
			h2o_timeout_dispose(ing->loop, &ing->backoff[i]);
		for (int k = 0; k < NREJECT_DELAYS; k++)
			h2o_timeout_dispose(ing->loop, &ing->reject_delay[k]);
		/* Connections still open at exit (see pd_ingress_run) keep their entries. */
		for (h2o_linklist_t *l = ing->conns.next; l != &ing->conns; l = l->next) {
			struct ing_conn *c = H2O_STRUCT_FROM_MEMBER(struct ing_conn, link, l);
			if (h2o_timeout_is_linked(&c->deadline))
				h2o_timeout_unlink(&c->deadline);
		}
		h2o_timeout_dispose(ing->loop, &ing->conn_deadline);
		h2o_timeout_dispose(ing->loop, &ing->accept_backoff);
	}
	ing->backoff_inited = false;
}

/* ---- client connections ------------------------------------------------------------ */

static void conn_free(struct ing_conn *c)
{
	free(c);
}

/*
 * The deadline of a connection that has no request in the handlers: it had
 * ingress.request_read_timeout, from its accept or from the end of its last request, to
 * deliver a whole request. Bytes that trickle in do not extend it (h2o 2.2 renews its
 * HTTP/2 idle timer on every read). h2o owns the connection, so it is not closed here:
 * shutdown() makes h2o's pending read or write fail, and h2o closes it itself.
 */
static void on_conn_deadline(h2o_timeout_entry_t *entry)
{
	struct ing_conn *c = H2O_STRUCT_FROM_MEMBER(struct ing_conn, deadline, entry);
	if (c->sock == NULL || c->active != 0 || c->expired)
		return;
	c->expired = true;
	c->lst->timed_out++;
	shutdown(h2o_socket_get_fd(c->sock), SHUT_RDWR);
}

static void on_accept(h2o_socket_t *listener, const char *err);

static void listener_read_start(struct ing_listener *l)
{
	if (l->sock != NULL && !l->full && !h2o_timeout_is_linked(&l->backoff))
		h2o_socket_read_start(l->sock, on_accept);
}

/* The client listeners (ingress.listen and ingress.tls.plain_listen) share one limit. */
static uint32_t conns_counted(const struct ing_listener *l)
{
	const struct ingress *ing = l->ing;
	if (l == &ing->listeners[LISTENER_ADMIN])
		return l->nconns;
	return ing->listeners[LISTENER_HTTP].nconns + ing->plain.nconns;
}

static void listener_resume_below_limit(struct ing_listener *l)
{
	if (l->full && conns_counted(l) < l->max_conns) {
		l->full = false;
		listener_read_start(l);
	}
}

/* h2o closed the connection's socket (on_close: called after h2o freed it). */
static void on_conn_close(void *data)
{
	struct ing_conn *c = data;
	struct ing_listener *l = c->lst;
	if (h2o_timeout_is_linked(&c->deadline))
		h2o_timeout_unlink(&c->deadline);
	h2o_linklist_unlink(&c->link);
	c->sock = NULL;
	l->nconns--;
	listener_resume_below_limit(l);
	if (l != &l->ing->listeners[LISTENER_ADMIN]) {
		listener_resume_below_limit(&l->ing->listeners[LISTENER_HTTP]);
		listener_resume_below_limit(&l->ing->plain);
	}
	if (c->active == 0)
		conn_free(c);
}

/* A request of the connection was disposed by h2o (answered, or its client left). */
static void on_conn_req_dispose(void *p)
{
	struct ing_conn *c = *(struct ing_conn **)p;
	if (--c->active != 0)
		return;
	if (c->sock == NULL)
		conn_free(c);
	else if (!c->expired)
		h2o_timeout_link(c->lst->ing->loop, &c->lst->ing->conn_deadline, &c->deadline);
}

/*
 * A whole request of the connection reached a handler: its deadline stops until h2o is
 * done with the request. h2o 2.2 has no per-connection hook: the socket comes from the
 * public get_socket callback, the connection from its on_close.data.
 */
static void conn_request_begin(h2o_req_t *req)
{
	h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL
	                         ? req->conn->callbacks->get_socket(req->conn)
	                         : NULL;
	if (sock == NULL || sock->on_close.cb != on_conn_close)
		return;
	struct ing_conn *c = sock->on_close.data;
	struct ing_conn **ref = h2o_mem_alloc_shared(&req->pool, sizeof(*ref), on_conn_req_dispose);
	*ref = c;
	if (c->active++ == 0 && h2o_timeout_is_linked(&c->deadline))
		h2o_timeout_unlink(&c->deadline);
}

static int on_req_http(h2o_handler_t *self, h2o_req_t *req)
{
	conn_request_begin(req);
	return ing_on_req(self, req);
}

static int on_req_admin(h2o_handler_t *self, h2o_req_t *req)
{
	conn_request_begin(req);
	return ing_on_admin_req(self, req);
}

/*
 * The host part of an authority ("name", "name:port", "[v6]", "[v6]:port"), checked to be
 * a DNS name or a bracketed IPv6 literal, so that it can go into a Location header as is.
 * Returns its length, or 0 if it is neither.
 */
static size_t authority_host(h2o_iovec_t a)
{
	size_t n = 0;
	if (a.len > 0 && a.base[0] == '[') {
		for (n = 1; n < a.len && a.base[n] != ']'; n++)
			if (strchr("0123456789abcdefABCDEF:.", a.base[n]) == NULL)
				return 0;
		if (n == a.len || n == 1)
			return 0;
		n++;
	} else {
		for (; n < a.len && a.base[n] != ':'; n++)
			if (strchr(
			        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-",
			        a.base[n]) == NULL)
				return 0;
		if (n > 253)
			return 0;
	}
	return n < a.len && a.base[n] != ':' ? 0 : n;
}

/*
 * ingress.tls.plain_mode redirect: 308 to https://HOST[:PORT]/PATH, HOST from the
 * request's authority (or, without one, the HTTPS listener's address), PORT that of
 * ingress.listen. 308 rather than 301: a POST stays a POST with its body.
 */
static int on_req_redirect(h2o_handler_t *self, h2o_req_t *req)
{
	struct ingress *ing = ((struct ing_handler *)self)->ing;
	const struct pd_config_addr *tls_addr = &ing->cfg->ingress.listen_addr;
	conn_request_begin(req);

	/* Without a Host h2o sets the authority to the hostconf's own name (that pointer). */
	h2o_iovec_t authority = req->input.authority;
	char fallback[sizeof(tls_addr->host) + 2];
	if (authority.base == ing->hosts_redirect[0]->authority.hostport.base) {
		bool v6 = strchr(tls_addr->host, ':') != NULL;
		snprintf(fallback, sizeof(fallback), v6 ? "[%s]" : "%s", tls_addr->host);
		authority = h2o_iovec_init(fallback, strlen(fallback));
		if (strcmp(tls_addr->host, "0.0.0.0") == 0 || strcmp(tls_addr->host, "::") == 0)
			authority.len = 0;
	}
	size_t host_len = authority_host(authority);
	h2o_iovec_t path = req->input.path;
	if (host_len == 0 || path.len == 0 || path.base[0] != '/') {
		static const char body[] = "bad request: a Host and a path starting with / are "
		                           "needed to redirect to https\n";
		ing_send_text(req, 400, body, sizeof(body) - 1);
		return 0;
	}
	char port[8] = "";
	if (tls_addr->port != 443)
		snprintf(port, sizeof(port), ":%u", tls_addr->port);
	size_t len = strlen("https://") + host_len + strlen(port) + path.len;
	char *url = h2o_mem_alloc_pool(&req->pool, len + 1);
	snprintf(url, len + 1, "https://%.*s%s%.*s", (int)host_len, authority.base, port,
	         (int)path.len, path.base);
	h2o_send_redirect(req, 308, "Permanent Redirect", url, len);
	return 0;
}

/* ---- listeners and signals ---------------------------------------------------------- */

static void on_accept_backoff(h2o_timeout_entry_t *entry)
{
	struct ing_listener *l = H2O_STRUCT_FROM_MEMBER(struct ing_listener, backoff, entry);
	listener_read_start(l);
}

static void listener_pause(struct ing_listener *l, enum accept_pause why)
{
	l->paused[why]++;
	h2o_socket_read_stop(l->sock);
	if (why == PAUSE_LIMIT)
		l->full = true;
	else if (!h2o_timeout_is_linked(&l->backoff))
		h2o_timeout_link(l->ing->loop, &l->ing->accept_backoff, &l->backoff);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
	struct ing_listener *l = listener->data;
	if (err != NULL)
		return;
	for (int i = 0; i < ACCEPT_BURST; i++) {
		if (conns_counted(l) >= l->max_conns) {
			listener_pause(l, PAUSE_LIMIT);
			return;
		}
		h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
		if (sock == NULL) {
			/* h2o_evloop_socket_accept fails only where accept4 did: errno is its. */
			switch (errno) {
			case EAGAIN:
#if EWOULDBLOCK != EAGAIN
			case EWOULDBLOCK:
#endif
				return;
			case ECONNABORTED:
			case EINTR:
			case EPROTO:
			case EPERM: /* refused by a firewall rule */ l->accept_errors++; continue;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM: listener_pause(l, PAUSE_NO_FD); return;
			default: listener_pause(l, PAUSE_ERROR); return;
			}
		}
		struct ing_conn *c = calloc(1, sizeof(*c));
		if (c == NULL) {
			h2o_socket_close(sock);
			listener_pause(l, PAUSE_NO_FD);
			return;
		}
		c->lst = l;
		c->sock = sock;
		c->deadline.cb = on_conn_deadline;
		h2o_linklist_insert(&l->ing->conns, &c->link);
		/* On the HTTPS listener the deadline also bounds the TLS handshake: h2o_accept
		 * starts with it, and a shut-down socket fails it. */
		h2o_timeout_link(l->ing->loop, &l->ing->conn_deadline, &c->deadline);
		sock->on_close.cb = on_conn_close;
		sock->on_close.data = c;
		l->nconns++;
		l->accepted++;
		h2o_accept(l->actx, sock);
	}
}

static int listener_open(struct ingress *ing, const struct pd_config_addr *addr,
                         h2o_accept_ctx_t *actx, struct ing_listener *l)
{
	char port[8];
	snprintf(port, sizeof(port), "%u", addr->port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(addr->host[0] != '\0' ? addr->host : NULL, port, &hints, &res);
	if (gai != 0) {
		PD_LOG_ERR(LOG_COMP, 0, "cannot resolve %s:%s: %s", addr->host, port,
		           gai_strerror(gai));
		return -EINVAL;
	}
	int fd = -1, err = 0;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		int one = 1;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
			break;
		err = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		PD_LOG_ERR(LOG_COMP, err, "cannot listen on %s:%u", addr->host, addr->port);
		return err != 0 ? err : -EADDRNOTAVAIL;
	}
	h2o_socket_t *sock = h2o_evloop_socket_create(ing->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
	l->sock = sock;
	l->actx = actx;
	sock->data = l;
	h2o_socket_read_start(sock, on_accept);
	return 0;
}

static void listener_close(struct ing_listener *l)
{
	if (h2o_timeout_is_linked(&l->backoff))
		h2o_timeout_unlink(&l->backoff);
	if (l->sock == NULL)
		return;
	h2o_socket_read_stop(l->sock);
	h2o_socket_close(l->sock);
	l->sock = NULL;
}

/*
 * ingress.max_connections, or (0) what RLIMIT_NOFILE leaves after a reserve for the
 * fabric, the admin connections and the process's own fds; never above that, so that
 * accept() does not meet EMFILE while the admin listener and the fabric still need fds.
 */
static int listeners_init(struct ingress *ing)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		int rc = -errno;
		PD_LOG_ERR(LOG_COMP, rc, "getrlimit(RLIMIT_NOFILE)");
		return rc;
	}
	uint64_t nofile = rl.rlim_cur == RLIM_INFINITY ? UINT32_MAX : (uint64_t)rl.rlim_cur;
	uint64_t reserve =
	    FD_RESERVE_BASE + ADMIN_MAX_CONNS + (uint64_t)FD_RESERVE_PER_LINK * ing->nlinks;
	if (nofile <= reserve) {
		PD_LOG_ERR(LOG_COMP, EMFILE,
		           "the open-file limit (%lu) leaves no fds for client connections: "
		           "%lu are reserved for %u fabric links and the admin listener",
		           (unsigned long)nofile, (unsigned long)reserve, ing->nlinks);
		return -EMFILE;
	}
	uint64_t room = nofile - reserve;
	if (room > UINT32_MAX)
		room = UINT32_MAX;
	uint64_t max = ing->cfg->ingress.max_connections;
	if (max == 0) {
		max = room;
	} else if (max > room) {
		PD_LOG_WARN(LOG_COMP, 0,
		            "ingress.max_connections %lu is above what the open-file limit (%lu) "
		            "leaves (%lu reserved): using %lu",
		            (unsigned long)max, (unsigned long)nofile, (unsigned long)reserve,
		            (unsigned long)room);
		max = room;
	}
	for (int k = 0; k < LISTENER_MAX; k++) {
		struct ing_listener *l = &ing->listeners[k];
		l->ing = ing;
		l->max_conns = k == LISTENER_ADMIN ? ADMIN_MAX_CONNS : (uint32_t)max;
		l->backoff.cb = on_accept_backoff;
	}
	ing->plain.ing = ing;
	ing->plain.max_conns = (uint32_t)max;
	ing->plain.backoff.cb = on_accept_backoff;
	return 0;
}

static void on_signal(h2o_socket_t *sock, const char *err)
{
	struct ingress *ing = sock->data;
	struct signalfd_siginfo si;
	(void)err;
	while (read(h2o_socket_get_fd(sock), &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (!ing->stop)
			PD_LOG_INFO(LOG_COMP, "signal %u: stopping", si.ssi_signo);
		ing->stop = true;
	}
}

/* ---- TLS ---------------------------------------------------------------------------- */

/* OpenSSL's queued errors, oldest first, "; "-separated; empties the queue. */
static const char *ssl_errors(char *buf, size_t len)
{
	size_t n = 0;
	unsigned long e;
	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		char one[256];
		ERR_error_string_n(e, one, sizeof(one));
		if (n < len)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n != 0 ? "; " : "", one);
	}
	if (n == 0)
		snprintf(buf, len, "no detail from OpenSSL");
	return buf;
}

/* An encrypted key would make OpenSSL prompt on the terminal: refuse it instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	(void)buf, (void)size, (void)rwflag, (void)userdata;
	return -1;
}

/*
 * The HTTPS context of ingress.listen: TLS 1.2 and 1.3 only, OpenSSL's default ciphers
 * (its DEFAULT list at the system's security level), the server's cipher order, no
 * renegotiation; ALPN offers h2 and http/1.1 (no ALPN: HTTP/1.1). The key must match the
 * certificate. Every error names the file and carries OpenSSL's reason.
 */
static int tls_open(struct ingress *ing)
{
	const struct pd_config_tls *tls = &ing->cfg->ingress.tls;
	char why[1024];
	if (!tls->enabled)
		return 0;
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		PD_LOG_ERR(LOG_COMP, 0, "SSL_CTX_new: %s", ssl_errors(why, sizeof(why)));
		return -ENOMEM;
	}
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		PD_LOG_ERR(LOG_COMP, 0, "SSL_CTX_set_min_proto_version: %s",
		           ssl_errors(why, sizeof(why)));
		goto free_ctx;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, tls->cert) != 1) {
		PD_LOG_ERR(LOG_COMP, 0,
		           "ingress.tls.cert: cannot load the certificate chain %s: %s", tls->cert,
		           ssl_errors(why, sizeof(why)));
		goto free_ctx;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, tls->key, SSL_FILETYPE_PEM) != 1) {
		PD_LOG_ERR(LOG_COMP, 0,
		           "ingress.tls.key: cannot load the private key %s (for the certificate "
		           "%s): %s",
		           tls->key, tls->cert, ssl_errors(why, sizeof(why)));
		goto free_ctx;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		PD_LOG_ERR(LOG_COMP, 0,
		           "ingress.tls.key: the private key %s does not match the certificate %s: "
		           "%s",
		           tls->key, tls->cert, ssl_errors(why, sizeof(why)));
		goto free_ctx;
	}
	h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
	ing->ssl_ctx = ctx;
	return 0;

free_ctx:
	SSL_CTX_free(ctx);
	return -EINVAL;
}

/* ---- h2o ---------------------------------------------------------------------------- */

static int h2o_setup(struct ingress *ing)
{
	h2o_config_init(&ing->globalconf);
	ing->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("palladium"));
	uint64_t max_body = 0;
	for (uint32_t t = 0; t < ing->ntenants; t++)
		if (ing->tenants[t].max_body > max_body)
			max_body = ing->tenants[t].max_body;
	/* h2o refuses larger bodies itself (413) before buffering them; +1 because its
	 * chunked decoder refuses at >= the limit. */
	ing->globalconf.max_request_entity_size = (size_t)max_body + 1;
	/* The ingress's own deadline (on_conn_deadline) closes slow or idle connections; h2o's
	 * timers stay as a backstop a second later (its HTTP/2 one is renewed per read). */
	uint64_t read_timeout = ing->cfg->ingress.request_read_timeout_ms + 1000;
	ing->globalconf.http1.req_timeout = read_timeout;
	ing->globalconf.http2.idle_timeout = read_timeout;
	ing->globalconf.handshake_timeout = read_timeout;

	h2o_hostconf_t *main_host = h2o_config_register_host(
	    &ing->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	h2o_pathconf_t *pc = h2o_config_register_path(main_host, "/", 0);
	struct ing_handler *h = (void *)h2o_create_handler(pc, sizeof(*h));
	h->super.on_req = on_req_http;
	h->ing = ing;

	h2o_hostconf_t *admin_host =
	    h2o_config_register_host(&ing->globalconf, h2o_iovec_init(H2O_STRLIT("admin")), 65535);
	pc = h2o_config_register_path(admin_host, "/", 0);
	h = (void *)h2o_create_handler(pc, sizeof(*h));
	h->super.on_req = on_req_admin;
	h->ing = ing;

	h2o_hostconf_t *redirect_host = h2o_config_register_host(
	    &ing->globalconf, h2o_iovec_init(H2O_STRLIT("redirect")), 65535);
	pc = h2o_config_register_path(redirect_host, "/", 0);
	h = (void *)h2o_create_handler(pc, sizeof(*h));
	h->super.on_req = on_req_redirect;
	h->ing = ing;

	ing->loop = h2o_evloop_create();
	h2o_context_init(&ing->ctx, ing->loop, &ing->globalconf);
	ing->hosts_main[0] = main_host;
	ing->hosts_admin[0] = admin_host;
	ing->hosts_redirect[0] = redirect_host;
	ing->accept_main =
	    (h2o_accept_ctx_t){.ctx = &ing->ctx, .hosts = ing->hosts_main, .ssl_ctx = ing->ssl_ctx};
	ing->accept_admin = (h2o_accept_ctx_t){.ctx = &ing->ctx, .hosts = ing->hosts_admin};
	bool redirect = ing->cfg->ingress.tls.plain_mode == PD_TLS_PLAIN_REDIRECT;
	ing->accept_plain = (h2o_accept_ctx_t){
	    .ctx = &ing->ctx, .hosts = redirect ? ing->hosts_redirect : ing->hosts_main};
	return 0;
}

static bool conns_left(struct ingress *ing)
{
	return !h2o_linklist_is_empty(&ing->conns);
}

/*
 * Make client connections end: h2o sees EOF (SHUT_RD) or errors (SHUT_RDWR) and closes
 * them itself. Every accepted connection is in ing->conns until h2o closes it (HTTP/2
 * ones that are idle included, which h2o 2.2 does not list).
 */
static void shutdown_conns(struct ingress *ing, int how)
{
	for (h2o_linklist_t *l = ing->conns.next; l != &ing->conns; l = l->next) {
		struct ing_conn *c = H2O_STRUCT_FROM_MEMBER(struct ing_conn, link, l);
		shutdown(h2o_socket_get_fd(c->sock), how);
	}
}

/* ---- the loop ----------------------------------------------------------------------- */

/*
 * Fabric progress is manual: the loop reads the fabric once per turn, and lets h2o sleep
 * (bounded only by its timers) only when pd_fabric_trywait() says nothing is pending;
 * otherwise h2o polls without waiting. The fabric's fds (dups in h2o's epoll) wake the
 * loop when it sleeps, and their callback drains the fabric in bounded bursts.
 */
static void loop_turn(struct ingress *ing, int32_t max_wait)
{
	ing_fabric_poll(ing, 1);
	/* Answers written just now (outside h2o_evloop_run) leave h2o callbacks pending that
	 * its poll does not count as work: they must run before the loop may sleep. */
	bool h2o_pending = ing_h2o_loop_has_pending(ing->loop);
	int32_t wait = !h2o_pending && pd_fabric_trywait(ing->fab) == 0 ? max_wait : 0;
	if (h2o_evloop_run(ing->loop, wait) != 0 && errno != EINTR && !ing->stop) {
		PD_LOG_ERR(LOG_COMP, errno, "h2o_evloop_run: stopping");
		ing->stop = true;
	}
}

static void run_until(struct ingress *ing, uint64_t deadline_ns)
{
	uint64_t now;
	while (conns_left(ing) && (now = now_ns()) < deadline_ns)
		loop_turn(ing, (int32_t)((deadline_ns - now) / 1000000 + 1));
}

static void stop_http(struct ingress *ing)
{
	listener_close(&ing->listeners[LISTENER_HTTP]);
	listener_close(&ing->listeners[LISTENER_ADMIN]);
	listener_close(&ing->plain);
	h2o_context_request_shutdown(&ing->ctx); /* no more keep-alive; HTTP/2 GOAWAY */
	ing_answer_held_rejects(ing);
	ing_fail_all(ing, 503, "shutting down\n");
	shutdown_conns(ing, SHUT_RD);
	run_until(ing, now_ns() + DRAIN_SOFT_MS * 1000000ull);
	if (conns_left(ing)) {
		shutdown_conns(ing, SHUT_RDWR);
		run_until(ing, now_ns() + DRAIN_HARD_MS * 1000000ull);
	}
	/* One more turn lets h2o free what it closed last. */
	h2o_evloop_run(ing->loop, 0);
	/* The HTTP/2 graceful shutdown timer would outlive the context. */
	ing_h2o_cancel_goaway_timer(&ing->ctx);
}

int pd_ingress_run(const struct pd_config *cfg)
{
	if (cfg->ingress.threads != 1) {
		PD_LOG_ERR(LOG_COMP, EINVAL, "ingress.threads must be 1 (is %u)",
		           cfg->ingress.threads);
		return -EINVAL;
	}
	struct ingress *ing = calloc(1, sizeof(*ing));
	if (ing == NULL)
		return -ENOMEM;
	ing->cfg = cfg;
	int rc;

	sigset_t mask, old_mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, &old_mask);
	/* A client that goes away must not kill us through a write. */
	struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
	sigaction(SIGPIPE, &ign, &old_pipe);
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		rc = -errno;
		PD_LOG_ERR(LOG_COMP, rc, "signalfd");
		goto restore_signals;
	}

	rc = tables_create(ing);
	if (rc < 0)
		goto free_tables;
	rc = tls_open(ing);
	if (rc < 0)
		goto free_tables;
	rc = h2o_setup(ing);
	if (rc < 0)
		goto close_tls;
	rc = timeouts_init(ing);
	if (rc < 0)
		goto close_fabric;
	rc = ing_fabric_open(ing);
	if (rc < 0)
		goto close_fabric;
	rc = listeners_init(ing);
	if (rc < 0)
		goto close_fabric;
	rc = listener_open(ing, &cfg->ingress.listen_addr, &ing->accept_main,
	                   &ing->listeners[LISTENER_HTTP]);
	if (rc < 0)
		goto close_fabric;
	rc = listener_open(ing, &cfg->ingress.admin_addr, &ing->accept_admin,
	                   &ing->listeners[LISTENER_ADMIN]);
	if (rc < 0)
		goto close_listeners;
	if (cfg->ingress.tls.plain_listen != NULL) {
		rc = listener_open(ing, &cfg->ingress.tls.plain_listen_addr, &ing->accept_plain,
		                   &ing->plain);
		if (rc < 0)
			goto close_listeners;
	}
	ing->signal_sock = h2o_evloop_socket_create(ing->loop, sfd, H2O_SOCKET_FLAG_DONT_READ);
	sfd = -1; /* h2o closes it */
	ing->signal_sock->data = ing;
	h2o_socket_read_start(ing->signal_sock, on_signal);

	rc = ing_fabric_sync_waitfds(ing);
	if (rc < 0) {
		PD_LOG_ERR(LOG_COMP, rc, "pd_fabric_wait_fds");
		goto close_listeners;
	}
	ing_links_start(ing);
	PD_LOG_INFO(LOG_COMP,
	            "listening on %s://%s:%u (admin %s:%u), %u routes, %u fabric links, at most "
	            "%u client connections",
	            ing->ssl_ctx != NULL ? "https" : "http", cfg->ingress.listen_addr.host,
	            cfg->ingress.listen_addr.port, cfg->ingress.admin_addr.host,
	            cfg->ingress.admin_addr.port, ing->nroutes, ing->nlinks,
	            ing->listeners[LISTENER_HTTP].max_conns);
	if (ing->plain.sock != NULL)
		PD_LOG_INFO(LOG_COMP, "plain HTTP on %s: %s", cfg->ingress.tls.plain_listen,
		            cfg->ingress.tls.plain_mode == PD_TLS_PLAIN_REDIRECT
		                ? "redirects to https"
		                : "serves the routes");

	while (!ing->stop)
		loop_turn(ing, INT32_MAX);

	stop_http(ing);
	rc = 0;
	if (conns_left(ing))
		PD_LOG_WARN(LOG_COMP, 0, "client connections still open at exit");

close_listeners:
	listener_close(&ing->listeners[LISTENER_HTTP]);
	listener_close(&ing->listeners[LISTENER_ADMIN]);
	listener_close(&ing->plain);
	if (ing->signal_sock != NULL) {
		h2o_socket_read_stop(ing->signal_sock);
		h2o_socket_close(ing->signal_sock);
		ing->signal_sock = NULL;
	}
close_fabric:
	ing_fail_all(ing, 503, "shutting down\n");
	ing_fabric_close(ing);
	timeouts_dispose(ing);
	if (!conns_left(ing)) {
		ing_h2o_context_dispose(&ing->ctx);
		h2o_evloop_destroy(ing->loop);
	} /* else h2o would abort on the connections' timers: leave it (the process ends) */
	h2o_config_dispose(&ing->globalconf);
close_tls:
	SSL_CTX_free(ing->ssl_ctx); /* connections still open hold their own references */
free_tables:
	tables_destroy(ing);
	if (sfd >= 0)
		close(sfd);
restore_signals:
	sigaction(SIGPIPE, &old_pipe, NULL);
	{
		/* Take the stop signals still pending before unblocking them. */
		struct timespec zero = {0, 0};
		while (sigtimedwait(&mask, NULL, &zero) > 0)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	free(ing);
	return rc;
}
