/* SPDX-License-Identifier: Apache-2.0 */
/* The engine's private state, shared between its loop (engine.c) and supervisor. */
#ifndef PD_ENGINE_INTERNAL_H
#define PD_ENGINE_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/log.h"
#include "engine/dwrr.h"
#include "engine/pacer.h"
#include "engine/identity_internal.h"
#include "fabric/fabric.h"
#include "shm/msg.h"
#include "shm/pool.h"
#include "shm/ring.h"
#include "shm/waiter.h"

#define ENGINE_TICK_MS 100
/* While busy, how often the engine looks at its other events (signals, attach...). */
#define ENGINE_BUSY_EVENTS_NS 200000ull
#define ENGINE_MAX_INGRESS 1
/* Sends the engine has in the transport at once, all tenants together. */
#define ENGINE_TX_WINDOW 32
/* Messages a tenant may have queued for sending before its ring is left alone. */
#define ENGINE_TX_QUEUE 256

enum instance_state {
	INST_DOWN,     /* not running; restart at restart_at_ns (0 = never) */
	INST_STARTING, /* forked, not attached yet */
	INST_RUNNING,  /* attached */
	INST_STOPPING, /* asked to stop */
};

struct instance {
	uint16_t function; /* global function index */
	uint16_t slot;     /* instance slot in the tenant pool */
	struct tenant_rt *tenant;
	enum instance_state state;
	pid_t pid;
	int efd;    /* inbound ring wake-up */
	int ctl_fd; /* attach connection, -1 if none */
	uint64_t started_ns;
	uint64_t restart_at_ns;
	uint64_t backoff_ms;
	uint32_t restarts;
	bool killed_hung; /* already killed for holding a request too long */
};

struct tenant_counters {
	uint64_t msgs_in, bytes_in, msgs_out, bytes_out;
	uint64_t to_functions;    /* descriptors pushed to function rings */
	uint64_t bad_descriptors; /* from the engine ring: index, state */
	uint64_t bad_headers;     /* header or routing checks failed */
	uint64_t dropped;         /* answers with nowhere to go */
	uint64_t payload_copied;  /* payload bytes this engine copied */
	uint64_t errors_sent;     /* error responses the engine made (502/503) */
	uint64_t reclaimed;       /* buffers taken back from dead functions */
	uint64_t function_restarts;
	uint64_t hung_killed;
	uint64_t rx_repost_deferred; /* receive could not be reposted at once */
	uint64_t to_peers;           /* requests forwarded to another node */
	uint64_t from_peers;         /* requests received from another node */
	uint64_t lost_with_peer;     /* requests failed because their peer died */
	uint64_t expired;            /* queued past their route's timeout, dropped */
	uint64_t calls_routed;       /* calls handed to a callee's instance or node */
	uint64_t replies_routed;     /* replies handed to a caller's instance or node */
	uint64_t calls_refused;      /* calls answered at once: undeclared, too deep */
	uint64_t replies_dropped;    /* replies whose caller is gone or unreachable */
};

/* Where a buffer waiting to be sent goes: an ingress (PD_FABRIC_PEER_INGRESS | origin)
 * or a node index. */
#define DEST_INGRESS(origin) ((uint16_t)(PD_FABRIC_PEER_INGRESS | (origin)))
#define DEST_IS_INGRESS(d) (((d)&PD_FABRIC_PEER_INGRESS) != 0)
#define NDEST (ENGINE_MAX_INGRESS + PD_MAX_NODES)

/* A request this engine forwarded to a peer, remembered so that it can be failed at once
 * if the peer dies while holding it. */
struct forwarded {
	uint64_t request_id; /* 0: empty */
	uint64_t sent_ns;
	uint16_t origin;
	uint16_t route;
};

/* The link of one tenant to one peer engine. */
struct peer_link {
	struct tenant_rt *tenant;
	uint16_t node;
	bool hosts_tenant; /* the peer runs functions of this tenant: a link exists */
	bool active;       /* this engine connects (lower node index); the peer accepts */
	bool up;
	bool ever_up; /* requests wait for a link still being set up at start */
	struct pd_fabric_conn *conn;
	uint64_t retry_at_ns;
	uint32_t backoff_ms;
	uint32_t inflight;     /* sends posted and not completed */
	struct forwarded *fwd; /* direct-mapped by request slot */
	uint32_t fwd_mask;
	uint64_t sent, received, lost;
};

/* A FIFO of buffers waiting for a credit, linked through tenant_rt.pend_next. */
#define PEND_NONE UINT32_MAX
struct pend_queue {
	uint32_t head, tail, count;
};

struct tenant_rt {
	uint16_t tenant; /* global tenant index */
	const struct pd_config_tenant *conf;
	struct pd_pool pool;
	bool pool_ok;
	struct pd_fabric_mr *mr;
	struct pd_fabric_rx *rx;
	uint32_t rx_depth;
	uint32_t rx_missing; /* receives consumed and not yet reposted */
	int engine_efd;
	uint16_t ninst;
	struct instance inst[PD_MAX_INSTANCES]; /* by slot */
	struct pd_fabric_conn *ingress[ENGINE_MAX_INGRESS];
	struct peer_link peers[PD_MAX_NODES];
	uint16_t credits_per_link; /* receives reserved for each ingress or peer link */
	uint32_t links;            /* the ingress's and one per peer running the tenant */
	/* Buffers waiting for a send credit, one FIFO per destination. */
	uint32_t *pend_next;
	uint16_t *dest; /* per buffer: where it is being sent */
	struct pend_queue pend[NDEST];
	uint32_t pend_count;
	uint32_t next_dest;    /* the scheduler's choice among this tenant's queues */
	uint32_t last_drained; /* descriptors the last drain of its engine ring took */
	uint64_t hang_ns;
	struct identity ident; /* who its function processes run as (supervisor) */
	struct tenant_counters c;
};

struct engine {
	const struct pd_config *cfg;
	uint32_t node;
	const struct pd_config_node *node_conf;
	int epfd;
	int sigfd;
	int attach_fd;
	int stats_fd;
	char attach_name[96];
	char stats_path[128];
	struct pd_fabric *fab;
	struct tenant_rt *tenants; /* one per tenant with functions on this node */
	uint32_t ntenants;
	int16_t tenant_map[PD_MAX_TENANTS]; /* global tenant -> index in tenants, -1 */
	bool stopping;
	struct pd_waiter waiter; /* when the idle loop polls and when it sleeps */
	uint64_t now;            /* the loop's clock reading, for stamping buffers */
	struct pd_sched sched;
	struct pd_pacer pacer; /* engine.link_rate */
	uint64_t paced;        /* times the pacer held sends back */
	uint32_t tx_inflight;
	/* Attach connections refused (not a pid this engine started and is waiting for, or
	 * not its identity), all tenants together; the supervisor logs them rate-limited. */
	uint64_t attach_refused;
	struct pd_log_rate attach_log; /* how many of them get a log line */
};

/*
 * Who calls whom (downward only):
 *
 *   engine.c         set-up, the loop, signals
 *     engine_fabric.c  receives posted and the fabric's callbacks
 *     engine_stats.c   the statistics socket
 *     supervisor.c     function processes
 *     peers.c          links to peer engines
 *       engine_route.c   header checks, where a request goes, the engine rings
 *         engine_tx.c      send queues, the scheduler's turns, error answers
 */

/* Encodings of epoll user data: low 32 bits fd, high bits a kind tag. */
enum watch_kind { W_FABRIC = 1, W_SIGNAL, W_ATTACH, W_CTL, W_STATS, W_RING };

/* Watch fd for input in the engine's loop. 0 or -errno. */
static inline int engine_watch(struct engine *e, int fd, enum watch_kind kind)
{
	struct epoll_event ev = {.events = EPOLLIN,
	                         .data.u64 = ((uint64_t)kind << 32) | (uint32_t)fd};
	return epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

static inline void engine_unwatch(struct engine *e, int fd)
{
	epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* A (tenant, buffer) pair carried through the fabric as a context; never dereferenced. */
static inline void *ctx_encode(uint32_t tenant_local, uint32_t idx)
{
	return (void *)(uintptr_t)(((uint64_t)(tenant_local + 1) << 32) | idx);
}

static inline void ctx_decode(const void *ctx, uint32_t *tenant_local, uint32_t *idx)
{
	uint64_t v = (uint64_t)(uintptr_t)ctx;
	*tenant_local = (uint32_t)(v >> 32) - 1;
	*idx = (uint32_t)v;
}

/* Remember a request forwarded to peer p, so that it can be failed if p dies with it. */
static inline void peer_note_forward(struct peer_link *p, const struct pd_msg_hdr *h)
{
	struct forwarded *f = &p->fwd[(uint32_t)h->request_id & p->fwd_mask];
	f->request_id = h->request_id;
	f->sent_ns = pd_now_ns();
	f->origin = h->origin;
	f->route = h->route;
}

/* A request came back from peer p: it no longer holds it. */
static inline void peer_note_return(struct peer_link *p, const struct pd_msg_hdr *h)
{
	if (p->fwd == NULL)
		return;
	struct forwarded *f = &p->fwd[(uint32_t)h->request_id & p->fwd_mask];
	if (f->request_id == h->request_id)
		f->request_id = 0;
}

/* engine_tx.c */
/* Queue buffer idx of tenant t for dest (a node index or DEST_INGRESS(origin)). */
void tx_send_to(struct engine *e, struct tenant_rt *t, uint32_t idx, uint16_t dest);
/* Queue the answer in buffer idx for the ingress it came from (dropped if unknown). */
void tx_send_response(struct engine *e, struct tenant_rt *t, uint32_t idx);
/* Send what the queues hold, in the scheduler's order; returns the sends posted. */
int tx_transmit(struct engine *e, uint64_t now);
/* Turn buffer idx into an error answer (status, msg) and queue it for its ingress. */
void tx_reply_error(struct engine *e, struct tenant_rt *t, uint32_t idx, uint16_t status,
                    const char *msg);
/*
 * Hand the reply in buffer idx (its header checked, copied in *h) to the calling
 * instance: into its reply ring if it runs here, else to its node. Dropped and counted
 * when the caller is not running or its node is not a peer of this tenant.
 */
void tx_deliver_reply(struct engine *e, struct tenant_rt *t, uint32_t idx,
                      const struct pd_msg_hdr *h);
/* Drop or fail everything queued for a destination that went away. */
void tx_fail_queue(struct engine *e, struct tenant_rt *t, uint16_t dest);
/* Drop what waited for a link longer than its route allows. */
void tx_expire_queues(struct engine *e, struct tenant_rt *t, uint64_t now);
/*
 * Bytes to send of a message whose header *snap was copied out of tenant memory: its
 * total length if the header is valid for a buffer of buf_size bytes, else 0. Read the
 * header once (pd_msg_hdr_snapshot), check it here, then use only the copy.
 */
uint64_t engine_msg_len(const struct pd_msg_hdr *snap, uint64_t buf_size);

/* engine_route.c */
/* Check a header (a copy) against the cluster config and tenant t. */
bool route_header_ok(const struct engine *e, const struct tenant_rt *t, const struct pd_msg_hdr *h,
                     uint64_t received_len);
/* Hand a checked request to a local instance, or (may_leave) to a peer running it. */
void route_request(struct engine *e, struct tenant_rt *t, uint32_t idx, const struct pd_msg_hdr *h,
                   bool may_leave);
/*
 * A checked call: refused at once (508 too deep; from this node, 403 when its caller does
 * not declare the callee), else to a local instance of the callee or (from this node) to
 * the least loaded peer running it. from_peer: the node it came from, or -1.
 */
void route_call(struct engine *e, struct tenant_rt *t, uint32_t idx, const struct pd_msg_hdr *h,
                int from_peer);
/* Take up to a burst of descriptors from t's engine ring; returns how many. */
int route_drain_ring(struct engine *e, struct tenant_rt *t);

/* peers.c */
int peers_init(struct engine *e, struct tenant_rt *t);
void peers_fini(struct tenant_rt *t);
void peers_tick(struct engine *e, uint64_t now_ns);
/* Does this engine accept a link from node for tenant t (the peer is the connecting side)? */
bool peer_accepts(const struct engine *e, const struct tenant_rt *t, uint16_t node);
void peer_up(struct engine *e, struct peer_link *p, struct pd_fabric_conn *conn);
/* The link went down: fail what the peer held and what waited for it, retry later. */
void peer_down(struct engine *e, struct peer_link *p, struct pd_fabric_conn *conn, int err);

/* supervisor.c */
int sup_init(struct engine *e);
void sup_start_all(struct engine *e);
void sup_on_sigchld(struct engine *e);
void sup_on_attach_ready(struct engine *e);
void sup_on_ctl_event(struct engine *e, int fd, uint32_t events);
void sup_tick(struct engine *e, uint64_t now_ns);
int sup_stop_all(struct engine *e, int timeout_ms);
void sup_fini(struct engine *e);

/* engine_fabric.c */
extern const struct pd_fabric_callbacks engine_fabric_callbacks;
/* Post receives for what tenant t's links consumed. */
void rx_post(struct engine *e, struct tenant_rt *t);
/*
 * The receives a tenant posts on its shared receive context (*rx_depth) and how many of
 * them each of its links may have in use (*credits_per_link), for a pool of nbuffers
 * buffers and links fabric links (the ingress's and one per peer engine running the
 * tenant). Every link gets at least PD_FABRIC_CREDITS_MIN, the credits of all links
 * together never exceed the receives posted (a sender never sends without a posted
 * receive), and the receives take at most half the pool: the rest carries requests in
 * functions and their answers. 0, -EINVAL (links 0) or -ENOBUFS (the pool is too small
 * for that many links: 2 * PD_FABRIC_CREDITS_MIN buffers per link are needed).
 */
int engine_rx_plan(uint32_t nbuffers, uint32_t links, uint32_t *rx_depth,
                   uint16_t *credits_per_link);

/* engine_stats.c */
/* Listen on the stats socket path (its directory made private); fd or -errno. */
int stats_listen(const char *path);
/* Answer the stats connections waiting on the listener. */
void stats_on_listen(struct engine *e);
/*
 * Make sure path is a directory only uid can use: create it (mode 0700) if missing; if
 * it exists, it must be a directory, not a symbolic link, owned by uid, with mode
 * exactly 0700. 0, -ENOTDIR (not a directory), -EPERM (owner or mode), or the errno of
 * mkdir or lstat.
 */
int engine_private_dir(const char *path, uid_t uid);

#endif
