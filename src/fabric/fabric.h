/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fabric layer: libfabric FI_EP_MSG endpoints between Palladium processes (ingress,
 * engines), one endpoint per (peer, tenant), receives posted on a per-tenant shared
 * receive context from caller-registered memory, and receiver-granted credits so that a
 * sender never sends without a posted receive at the peer.
 *
 * Two primitives move DATA messages, chosen at open (pd_fabric_attr.primitive), with the
 * same calls and callbacks: two-sided send/receive (the default), or one-sided RMA write
 * with immediate data into receiver-granted slots (kept to measure why two-sided wins).
 * In one-sided mode the buffers given to pd_fabric_rx_post() are not posted to the
 * provider: they become slots that the layer grants to peers (a credit is a slot), and a
 * send writes into one of the slots the peer granted. See docs/fabric.md.
 *
 * Single-threaded: every call on one pd_fabric and its objects comes from one thread.
 * No call blocks. Completions and connection events are delivered by
 * pd_fabric_progress() through the callbacks given at open (and by
 * pd_fabric_rx_destroy(), see there). Callbacks may call pd_fabric_send(),
 * pd_fabric_rx_post(), pd_fabric_connect() and pd_fabric_disconnect(), but not
 * pd_fabric_rx_destroy() or pd_fabric_close().
 */
#ifndef PD_FABRIC_FABRIC_H
#define PD_FABRIC_FABRIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_FABRIC_PROTO_VERSION 2      /* 2: challenge-response, the key never travels */
#define PD_FABRIC_PEER_INGRESS 0x8000u /* peer ids: node index, or 0x8000 | ingress index */

/*
 * Credits given to pd_fabric_connect() and by on_connect_request() count the receives a
 * side reserved for one connection. The layer keeps PD_FABRIC_CREDIT_RESERVE of them for
 * its own credit-return messages; the peer may have the rest (at most 16383) of DATA
 * messages unreturned. Fewer than PD_FABRIC_CREDITS_MIN is refused with -EINVAL.
 */
#define PD_FABRIC_CREDIT_RESERVE 2u
#define PD_FABRIC_CREDITS_MIN (PD_FABRIC_CREDIT_RESERVE + 1u)

/* How DATA messages travel; both ends of a connection must use the same one. */
#define PD_FABRIC_KEY_LEN 32
#define PD_FABRIC_KEY_ENV "PALLADIUM_CLUSTER_KEY" /* 64 hex digits */

/*
 * Read the cluster key from the environment (PD_FABRIC_KEY_ENV). 1 and key filled: set;
 * 0: not set; -EINVAL: set but not 64 hex digits.
 */
int pd_fabric_key_from_env(uint8_t key[PD_FABRIC_KEY_LEN]);

enum pd_fabric_primitive {
	PD_FABRIC_TWO_SIDED = 0, /* fi_senddata into receives posted on the tenant's SRX */
	PD_FABRIC_ONE_SIDED = 1, /* fi_writedata into slots the receiver granted */
};

struct pd_fabric;
struct pd_fabric_mr;
struct pd_fabric_rx;
struct pd_fabric_conn;

/* What a connecting peer says about itself (carried in the connection data). */
struct pd_fabric_hello {
	uint16_t version; /* PD_FABRIC_PROTO_VERSION */
	uint16_t peer_id; /* the connecting side's id */
	uint16_t tenant;  /* tenant index in the shared config */
	uint16_t credits; /* receives the connecting side reserved for this connection */
};

struct pd_fabric_callbacks {
	/*
	 * A message arrived into a buffer posted with pd_fabric_rx_post(); buf_ctx is the
	 * context given there, len the bytes received. The buffer belongs to the caller
	 * again. The caller must post one receive (this buffer or another) for each
	 * message received, as soon as it can: that is what returns the credit.
	 * One-sided: len is the length the provider reports for the write, or the
	 * length of the slot (the whole buffer) if it reports none, as tcp does
	 * (docs/fabric.md): the message's own header must say how long it is.
	 */
	void (*on_recv)(void *app, struct pd_fabric_conn *conn, void *buf_ctx, size_t len);
	/*
	 * A posted receive came back unused (context closed, or lost to a failed repost):
	 * the buffer is the caller's. One-sided: slots granted to a connection that went
	 * down are not reported here; like receives on the SRX they stay with the rx and
	 * are granted to the other or the next connections.
	 */
	void (*on_recv_cancel)(void *app, void *buf_ctx);
	/* A send finished: status 0, or a negative errno. The buffer is the caller's again. */
	void (*on_send_done)(void *app, void *send_ctx, int status);
	/*
	 * A peer asks to connect. Return 0 and set *rx (which receive context the
	 * connection uses, matching hello->tenant), *credits (receives reserved for this
	 * peer, >= PD_FABRIC_CREDITS_MIN) and *conn_ctx to accept; return a negative errno
	 * to refuse (the reason is logged here and sent to the peer). A request with a
	 * wrong protocol version is refused before this is called. A new connection from a
	 * peer id that already has an accepted one on the same rx replaces it (the peer
	 * restarted): the old one goes down with -ECONNRESET, and its on_down may come
	 * after the new one's on_up.
	 */
	int (*on_connect_request)(void *app, const struct pd_fabric_hello *hello,
	                          struct pd_fabric_rx **rx, uint16_t *credits, void **conn_ctx);
	/* A connection (either side) is up and may send. */
	void (*on_up)(void *app, struct pd_fabric_conn *conn);
	/*
	 * A connection is gone (peer closed, died, refused, or failed to connect; err is a
	 * negative errno). Sends in flight on it complete with errors before or after
	 * this. The conn is freed by the layer after this returns.
	 * err: -ECONNREFUSED (refused or no listener), -ECONNRESET (peer closed or died),
	 * -ESHUTDOWN (pd_fabric_disconnect), -EPROTO (peer broke the protocol), -EACCES
	 * (the server did not prove the cluster key), or what the provider reported
	 * (-ETIMEDOUT, -EHOSTUNREACH, ...).
	 */
	void (*on_down)(void *app, struct pd_fabric_conn *conn, int err);
};

struct pd_fabric_attr {
	const char *provider;    /* "tcp", "verbs", ... */
	const char *listen_host; /* NULL: no listener (connect only) */
	uint16_t listen_port;
	uint16_t local_id; /* this process's peer id */
	struct pd_fabric_callbacks cb;
	void *app;                          /* first argument of every callback */
	enum pd_fabric_primitive primitive; /* 0: PD_FABRIC_TWO_SIDED */
	/*
	 * The cluster key (PD_FABRIC_KEY_LEN bytes) or NULL. When set, both sides prove
	 * they hold it with HMAC-SHA256 over nonces of both (a challenge-response in the
	 * connection data; the key itself never travels, and a recorded exchange cannot be
	 * replayed: docs/security.md). A peer without the same key is refused: the server
	 * refuses the connection request (the client's on_down gets -ECONNREFUSED), the
	 * client refuses a server that cannot prove the key (on_down -EACCES). Both count
	 * in stats.refused. Both sides must agree: a keyed side refuses an unkeyed one and
	 * the other way round.
	 */
	const uint8_t *key;
	/* Test-only hooks: production code leaves them all zero. */
	struct pd_fabric_test_attr {
		/* Advertise version instead of PD_FABRIC_PROTO_VERSION (hello, accept and
		 * challenge) and accept only it. */
		bool set_version;
		uint16_t version;
		/* mr_mode bits forced onto the provider's answer before fi_domain (0: none);
		 * requested keys then start at 1000, so that a provider key differs from
		 * ours. */
		uint64_t mr_mode;
		/* A connecting side answers a challenge without checking the server's HMAC
		 * (so that a server can be shown a proof made with the wrong key). */
		bool no_server_check;
	} test;
};

/*
 * Open the provider, domain, event queue and, if listen_host is set, the listener
 * (listen_host is resolved here and may block on DNS; startup only).
 * -EINVAL (bad attr, unknown primitive), -ENODATA (no such provider/address, or the
 * provider lacks the primitive's capabilities), -EADDRINUSE (port taken), -ENOSYS (the
 * provider's memory registration mode is not supported), -ENOMEM, or another negative
 * errno from libfabric.
 */
int pd_fabric_open(const struct pd_fabric_attr *attr, struct pd_fabric **out);
/*
 * Close everything: connections, receive contexts and memory regions still open
 * become invalid. No callback runs: posted receives and sends in flight are not
 * reported.
 */
void pd_fabric_close(struct pd_fabric *fab);

/*
 * Register [base, base+len) for sends and receives (one-sided: also as a target of
 * remote writes, with its own key); once per pool. 0, -EINVAL, -ENOMEM, -ENOSYS (no
 * usable key), ...
 */
int pd_fabric_mr_reg(struct pd_fabric *fab, void *base, size_t len, struct pd_fabric_mr **out);
void pd_fabric_mr_dereg(struct pd_fabric_mr *mr);

/*
 * A tenant's shared receive context and completion queue. depth: most receives posted
 * at once (1..65536). The set of wait fds changes: call pd_fabric_wait_fds() again.
 */
int pd_fabric_rx_create(struct pd_fabric *fab, uint16_t tenant, uint32_t depth,
                        struct pd_fabric_rx **out);
/*
 * Close the connections still using rx (sends in flight -> on_send_done(-ECANCELED),
 * then on_down(-ECANCELED), synchronously), then the receive context: every posted
 * receive comes back through on_recv_cancel before this returns.
 */
void pd_fabric_rx_destroy(struct pd_fabric_rx *rx);
/*
 * Post one receive buffer (inside mr, len >= 8). 0, or a negative errno: -EINVAL (not
 * inside mr, too short), -ENOBUFS (depth receives already posted), -EAGAIN (provider
 * busy). Each post after a message was delivered returns one credit to the sender of
 * the oldest message not yet replaced.
 * One-sided: the buffer becomes a slot granted to that sender (or, for a post with no
 * message to replace, to a connection still short of its initial grant, or kept for
 * later ones); grants travel in batches. Never -EAGAIN.
 */
int pd_fabric_rx_post(struct pd_fabric_rx *rx, struct pd_fabric_mr *mr, void *buf, size_t len,
                      void *buf_ctx);

/*
 * Start connecting to a peer for one tenant (asynchronous: on_up or on_down follows).
 * credits is the number of receives this side reserved for the peer on rx.
 * host is a numeric address (no DNS lookup on the event loop); peer_id is the id the
 * peer must announce (checked). The tenant is rx's. 0 (on_up or on_down follows,
 * errors of the connection attempt itself included), or -EINVAL (credits below
 * PD_FABRIC_CREDITS_MIN, bad host), -EEXIST (rx already has a connection with
 * peer_id), -ENOMEM, other negative errno (nothing follows).
 */
int pd_fabric_connect(struct pd_fabric *fab, struct pd_fabric_rx *rx, const char *host,
                      uint16_t port, uint16_t peer_id, uint16_t credits, void *conn_ctx,
                      struct pd_fabric_conn **out);
/* Close a connection; on_down(-ESHUTDOWN) follows from pd_fabric_progress(). */
void pd_fabric_disconnect(struct pd_fabric_conn *conn);

void *pd_fabric_conn_ctx(const struct pd_fabric_conn *conn);
uint16_t pd_fabric_conn_peer(const struct pd_fabric_conn *conn);
uint16_t pd_fabric_conn_tenant(const struct pd_fabric_conn *conn);
/* Credits left to send on this connection now (one-sided: slots the peer granted). */
uint32_t pd_fabric_conn_credits(const struct pd_fabric_conn *conn);

/*
 * Send len bytes at buf (inside mr) on conn. 0: posted, on_send_done follows.
 * -EAGAIN: no credit or the provider is busy; try again after progress.
 * -ENOTCONN: the connection is not up. -EINVAL: buf not inside mr, or (one-sided) len 0
 * (the target could not tell it from the slot's old contents). -EMSGSIZE: too big
 * for the provider, or (one-sided) longer than the next granted slot (nothing is
 * written, the slot stays). Other negative errno: failed. Never calls a callback.
 * One-sided: writes into the oldest slot the peer granted on conn, with the immediate
 * data naming this side and the slot; the peer validates both.
 */
int pd_fabric_send(struct pd_fabric_conn *conn, struct pd_fabric_mr *mr, const void *buf,
                   size_t len, void *send_ctx);

/*
 * Read completion and event queues; run callbacks. Returns events handled (>= 0).
 * A busy queue is read in bounded batches: call again while pd_fabric_trywait() fails.
 */
int pd_fabric_progress(struct pd_fabric *fab);

/*
 * File descriptors to poll for readability (one per queue: the event queue, then one per
 * rx). Returns how many (<= max), or -ENOSPC if max is too small.
 */
int pd_fabric_wait_fds(struct pd_fabric *fab, int *fds, int max);
/* 0: safe to sleep on the wait fds now; -EAGAIN: call pd_fabric_progress() first. */
int pd_fabric_trywait(struct pd_fabric *fab);

/*
 * Counters of this fabric instance. msgs/bytes count DATA messages only; refused counts
 * connection requests this side refused (wrong version, primitive, key or proof, a
 * replayed or late proof, or the app said no) and servers this side refused to trust
 * (their challenge or accept did not prove the cluster key); no_credit counts sends
 * refused for lack of credit, send_busy those refused because the provider was busy;
 * recv_errors counts receive completions dropped (error, no immediate data, unknown
 * sender, protocol violation). credit_msgs_sent/recv count the layer's own control
 * messages (one-sided: the grant messages). One-sided only: writes counts fi_writedata
 * posted (each is also a DATA message in msgs_sent), grants_sent/grants_recv count slots
 * granted to peers and slots peers granted to this side.
 */
struct pd_fabric_stats {
	uint64_t msgs_sent, bytes_sent, msgs_recv, bytes_recv;
	uint64_t credit_msgs_sent, credit_msgs_recv, send_errors, refused, no_credit;
	uint64_t recv_errors, send_busy;
	uint64_t writes, grants_sent, grants_recv;
};
void pd_fabric_get_stats(const struct pd_fabric *fab, struct pd_fabric_stats *out);

#endif
