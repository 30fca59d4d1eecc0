/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private state of the ingress, shared by its files. Who calls whom (each file calls only
 * the files below it; nothing calls upward):
 *
 *   ingress.c      the process: tables, h2o set-up, listeners, connections, the loop
 *     admin.c        /healthz and /metrics
 *     http.c         a request: checks, route, admission, held 429s, the message, the
 *                    response written from a receive buffer
 *       links.c        fabric links to hop-0 engines: dispatch, backlogs, credits, the
 *                      fabric's callbacks, its wait fds in h2o's loop
 *         slots.c        the request table: request ids, alloc/release, fail, fail_all
 *           bufs.c         each tenant's registered area: free stack, receives posted
 *           reply.c        platform answers (text/plain), route statistics
 *     http1_head.c   the HTTP/1 head scanner (pure: bytes in, counts out)
 *
 * Upward there is one callback: links.c hands each message received to
 * ingress.on_response, which ingress.c sets to http.c's ing_on_response at set-up.
 * Whatever reaches past h2o's public API is in h2o_compat.h.
 */
#ifndef PD_INGRESS_INGRESS_INTERNAL_H
#define PD_INGRESS_INGRESS_INTERNAL_H

/* libh2o-evloop's headers pick libuv unless told which poller the library was built with. */
#ifndef H2O_USE_EPOLL
#define H2O_USE_EPOLL 1
#endif

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <h2o.h>

#include "common/config.h"
#include "fabric/fabric.h"
#include "shm/msg.h"

#define LOG_COMP "ingress"

#define ORIGIN_ID 0                /* this ingress's id: responses carry it back */
#define SEND_BUFS_CAP 8192         /* send buffers per tenant, at most */
#define RX_DEPTH_CAP 4096          /* receives posted per tenant, before the per-node slack */
#define MAX_WAIT_FDS 256           /* fabric wait fds followed in the loop */
#define PROGRESS_BURST 64          /* pd_fabric_progress() calls per wake-up, at most */
#define NBACKOFF 7                 /* reconnect delays: 50 ms doubling to 2 s */
#define MAX_HELD_REJECTS 4096      /* 429s held for ingress.reject_delay at once */
#define MAX_HELD_BYTES (64u << 20) /* and their request bodies */
#define NREJECT_DELAYS 8           /* distinct hold times around ingress.reject_delay */
#define NBUCKETS 16                /* latency histogram buckets (plus +Inf) */
#define ADMIN_MAX_CONNS 16         /* admin connections at once (their fds are in the reserve) */
#define FD_RESERVE_BASE 64         /* other fds: stdio, epoll, signalfd, listeners, libfabric */
#define FD_RESERVE_PER_LINK 4      /* a fabric link: its socket, wait fd, h2o's dup of it, slack */
#define ACCEPT_BACKOFF_MS 100      /* a listener rests this long after EMFILE/ENFILE/ENOBUFS */
#define STATUS_MIN 100
#define STATUS_MAX 599

enum reject_reason {
	REJECT_INFLIGHT,
	REJECT_RATE,
	REJECT_NO_BUFFER,
	REJECT_NO_ENGINE,
	REJECT_MAX,
};

enum buf_state {
	BUF_FREE,
	BUF_POSTED,  /* posted for receive: the fabric's */
	BUF_FILLED,  /* holds a request waiting for a credit */
	BUF_SENDING, /* handed to pd_fabric_send: the fabric's until on_send_done */
	BUF_HELD,    /* holds a response h2o is writing from */
};

struct ing_tenant;

/* One buffer of a tenant's registered area. Its address is the fabric context. */
struct ing_buf {
	struct ing_tenant *tenant;
	uint8_t *data;
	uint64_t request_id; /* of the request it carries, while it is a send buffer */
	uint8_t state;
};

struct ing_tenant {
	struct ingress *ing;
	uint32_t index;
	const struct pd_config_tenant *cfg;
	uint64_t buf_size;
	uint64_t max_body;
	/* fabric resources; region == NULL if no route uses the tenant */
	uint8_t *region;
	size_t region_len;
	struct pd_fabric_mr *mr;
	struct pd_fabric_rx *rx;
	struct ing_buf *bufs;
	uint32_t nbufs;
	uint32_t *free_stack;
	uint32_t nfree;
	uint32_t rx_depth;
	uint32_t owed_posts; /* receives still to post (no buffer was free when one was due) */
	uint32_t nlinks;
	/* admission */
	uint32_t inflight;
	uint32_t max_inflight;
	double rate, burst, tokens;
	uint64_t tokens_ns;
	uint64_t rejected[REJECT_MAX];
};

enum link_logged { LINK_LOGGED_NONE, LINK_LOGGED_UP, LINK_LOGGED_DOWN };

/* The fabric connection to one node for one tenant. */
struct ing_link {
	struct ingress *ing;
	struct ing_tenant *tenant;
	uint32_t node_idx;
	uint16_t credits;
	struct pd_fabric_conn *conn; /* set while connecting or up */
	bool up;
	uint32_t outstanding;   /* requests sent or queued on it, not yet finished */
	uint32_t epoch;         /* bumped on every down: older requests no longer count */
	h2o_linklist_t backlog; /* slots whose request waits for a credit, FIFO */
	uint32_t backlog_len;
	uint32_t window;           /* credits the engine granted: the most the backlog may hold */
	h2o_linklist_t backlogged; /* in ingress.backlogged while backlog is not empty */
	h2o_timeout_entry_t retry;
	uint32_t backoff_step;
	enum link_logged logged;
};

struct ing_route_stats {
	uint64_t status[STATUS_MAX - STATUS_MIN + 1];
	uint64_t bucket[NBUCKETS + 1];
	uint64_t count;
	double sum;
};

struct ing_route {
	const struct pd_config_route *cfg;
	const char *prefix;
	size_t prefix_len;
	struct ing_tenant *tenant;
	struct ing_link **hop0; /* the tenant's links to nodes running the route's hop 0 */
	uint32_t nhop0;
	h2o_timeout_t *timeout;
};

enum slot_state { SLOT_FREE, SLOT_QUEUED, SLOT_SENT };

struct req_ref;

/* One entry of the request table; request_id = index | generation << 32. */
struct ing_slot {
	struct ingress *ing;
	uint32_t gen;
	uint8_t state;
	uint32_t route;
	struct ing_buf *buf; /* the request message while it waits in a backlog */
	uint32_t msg_len;
	struct ing_link *link;
	uint32_t link_epoch;
	h2o_req_t *req; /* NULL once the client is gone */
	struct req_ref *ref;
	uint64_t start_ns;
	h2o_timeout_entry_t timeout;
	h2o_linklist_t queued; /* in link->backlog */
};

/*
 * Lives in req->pool (h2o_mem_alloc_shared): its dispose callback is how the ingress
 * learns that h2o is done with a request, either because the client went away while the
 * request was in flight, or because the response has been written from a receive buffer.
 */
struct req_ref {
	struct ingress *ing;
	uint32_t slot;        /* valid while waiting */
	bool waiting;         /* the slot still points at this request */
	struct ing_buf *held; /* receive buffer the response body points into */
};

/*
 * A message arrived for the ingress in receive buffer rx. On return *kept says whether
 * rx now backs a response that h2o is writing (it comes back through the request's
 * dispose callback); otherwise the caller reposts it at once.
 */
typedef void ing_response_cb(struct ingress *ing, struct ing_buf *rx, size_t len, int *kept);

struct ing_handler {
	h2o_handler_t super;
	struct ingress *ing;
};

struct ing_stats {
	uint64_t copied_bytes;
	uint64_t response_copied_bytes;
	uint64_t bad_messages;
	uint64_t late_responses;
	uint64_t skipped_headers;
	uint64_t invalid_headers;
	uint64_t send_failures;
	uint64_t lost_on_link_down; /* requests failed because their engine link went down */
	uint64_t post_failures;
	uint64_t held_total; /* 429s held for ingress.reject_delay */
	uint64_t held_gone;  /* of those, whose client went away during the hold */
};

enum listener_kind { LISTENER_HTTP, LISTENER_ADMIN, LISTENER_MAX };

enum accept_pause { PAUSE_LIMIT, PAUSE_NO_FD, PAUSE_ERROR, PAUSE_MAX };

/*
 * A listening socket and the connections accepted on it. At max_conns it stops reading
 * (the kernel queues newer clients) until one of its connections closes; after an
 * accept error such as EMFILE it rests for ACCEPT_BACKOFF_MS: it never spins.
 */
struct ing_listener {
	struct ingress *ing;
	h2o_socket_t *sock;
	h2o_accept_ctx_t *actx;
	uint32_t nconns; /* open connections accepted on it */
	uint32_t max_conns;
	bool full;                   /* stopped reading at max_conns */
	h2o_timeout_entry_t backoff; /* linked while it rests after an accept error */
	uint64_t accepted;
	uint64_t paused[PAUSE_MAX];
	uint64_t accept_errors; /* transient ones (ECONNABORTED...), skipped */
	uint64_t timed_out;     /* connections closed by ingress.request_read_timeout */
};

/*
 * One accepted client connection, found from its h2o_socket_t through on_close.data
 * (h2o 2.2's only public per-socket hook; h2o keeps socket->data for itself). Freed once
 * the socket is closed and no request of it is left (requests may outlive the socket).
 */
struct ing_conn {
	struct ing_listener *lst;
	h2o_socket_t *sock;           /* NULL once h2o closed it */
	uint32_t active;              /* requests handed to a handler, not yet disposed by h2o */
	bool expired;                 /* shut down by its deadline */
	h2o_timeout_entry_t deadline; /* linked while active == 0 */
	h2o_linklist_t link;          /* in ingress.conns while sock != NULL */
};

struct ing_waitfd {
	int fd;             /* the fabric's */
	h2o_socket_t *sock; /* over a dup of fd */
	dev_t dev;
	ino_t ino;
};

struct ingress {
	const struct pd_config *cfg;
	h2o_globalconf_t globalconf;
	h2o_context_t ctx;
	h2o_evloop_t *loop;
	h2o_hostconf_t *hosts_main[2];
	h2o_hostconf_t *hosts_admin[2];
	h2o_accept_ctx_t accept_main;
	h2o_accept_ctx_t accept_admin;
	struct ing_listener listeners[LISTENER_MAX];
	/* ingress.tls: the HTTPS context of listeners[LISTENER_HTTP], and the optional plain
	 * listener (redirecting or serving); it shares ingress.max_connections with it. */
	SSL_CTX *ssl_ctx;
	h2o_hostconf_t *hosts_redirect[2];
	h2o_accept_ctx_t accept_plain;
	struct ing_listener plain;
	h2o_linklist_t conns;         /* struct ing_conn, open ones */
	h2o_timeout_t conn_deadline;  /* ingress.request_read_timeout */
	h2o_timeout_t accept_backoff; /* ACCEPT_BACKOFF_MS */
	h2o_socket_t *signal_sock;
	bool stop;
	bool closing; /* tearing down: fabric callbacks must not start anything */

	struct pd_fabric *fab;
	struct ing_waitfd waitfds[MAX_WAIT_FDS];
	uint32_t nwaitfds;
	bool waitfds_dirty;

	struct ing_tenant *tenants;
	uint32_t ntenants;
	struct ing_link *links;
	uint32_t nlinks;
	h2o_linklist_t backlogged;

	struct ing_route *routes;
	uint32_t nroutes;
	uint32_t *route_order;               /* route indexes, longest prefix first */
	struct ing_route_stats *route_stats; /* nroutes + 1: the last one is "no route" */
	h2o_timeout_t *route_timeouts;
	uint32_t nroute_timeouts;
	h2o_timeout_t backoff[NBACKOFF];
	bool backoff_inited;
	/* How long a 429 is held: ingress.reject_delay, spread over 9/16..23/16 of it (mean:
	 * the delay) so that clients rejected together do not all come back together. */
	h2o_timeout_t reject_delay[NREJECT_DELAYS];
	h2o_linklist_t held_rejects; /* struct held_reject, oldest first */
	uint32_t nheld_rejects;
	uint64_t held_bytes; /* their request bodies, which h2o keeps meanwhile */
	uint32_t next_reject_delay;

	struct ing_slot *slots;
	uint32_t nslots;
	uint32_t *free_slots;
	uint32_t nfree_slots;

	/* http.c's ing_on_response: links.c hands it every message received */
	ing_response_cb *on_response;

	struct ing_stats stats;
};

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* reply.c: platform answers and route statistics. */
extern h2o_generator_t ing_final_generator; /* for answers complete in one h2o_send() */
const char *ing_reason_phrase(int status);
bool ing_is_head(const h2o_req_t *req);
void ing_record(struct ingress *ing, uint32_t route, int status, uint64_t start_ns);
void ing_send_text(h2o_req_t *req, int status, const char *body, size_t len);
void ing_reply(struct ingress *ing, h2o_req_t *req, uint32_t route, uint64_t start_ns, int status,
               const char *body);

/* bufs.c: a tenant's registered area, its free stack and the receives posted from it. */
int ing_bufs_open(struct ingress *ing, struct ing_tenant *t);
void ing_bufs_close(struct ing_tenant *t);
struct ing_buf *ing_buf_get(struct ing_tenant *t);
void ing_buf_release(struct ing_buf *b);
void ing_buf_push_free(struct ing_buf *b);
void ing_rx_replace(struct ing_tenant *t);
void ing_rx_repost(struct ing_buf *b);

/* slots.c: the request table. */
void ing_slots_init(struct ingress *ing);
bool ing_slot_available(const struct ingress *ing);
struct ing_slot *ing_slot_alloc(struct ingress *ing, uint32_t route, uint64_t start_ns,
                                struct ing_buf *buf);
uint64_t ing_slot_id(const struct ingress *ing, const struct ing_slot *s);
int ing_slot_lookup(struct ingress *ing, uint64_t request_id, struct ing_slot **out);
void ing_slot_attach(struct ingress *ing, struct ing_slot *s, h2o_req_t *req, struct req_ref *ref,
                     h2o_timeout_t *timeout);
void ing_slot_detach(struct ingress *ing, struct req_ref *ref);
void ing_slot_release(struct ingress *ing, struct ing_slot *s);
void ing_slot_fail(struct ingress *ing, struct ing_slot *s, int status, const char *body);
uint32_t ing_slots_fail_link(struct ingress *ing, const struct ing_link *l, uint32_t epoch,
                             int status, const char *body);
void ing_fail_all(struct ingress *ing, int status, const char *body);

/* links.c: fabric links, dispatch, backlogs, callbacks, wait fds. */
int ing_fabric_open(struct ingress *ing);
void ing_fabric_close(struct ingress *ing);
void ing_fabric_poll(struct ingress *ing, int max_rounds);
int ing_fabric_sync_waitfds(struct ingress *ing);
void ing_links_start(struct ingress *ing);
int ing_dispatch(struct ingress *ing, struct ing_slot *s);
void ing_flush_backlogs(struct ingress *ing);
bool ing_route_reachable(const struct ing_route *rt);

/* http.c: the HTTP side of a request. */
int ing_on_req(h2o_handler_t *self, h2o_req_t *req);
void ing_on_response(struct ingress *ing, struct ing_buf *rx, size_t len, int *kept);
void ing_answer_held_rejects(struct ingress *ing);

/* admin.c: /healthz and /metrics. */
int ing_on_admin_req(h2o_handler_t *self, h2o_req_t *req);

#endif
