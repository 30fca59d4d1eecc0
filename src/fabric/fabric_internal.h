/* SPDX-License-Identifier: Apache-2.0 */
/* Private state of the fabric layer: objects, wire formats, immediate data, the ops table. */
#ifndef PD_FABRIC_FABRIC_INTERNAL_H
#define PD_FABRIC_FABRIC_INTERNAL_H

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>

#include <rdma/fi_errno.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"
#include "fabric/fabric.h"

#define PD_FABRIC_FI_VERSION FI_VERSION(1, 17)
#define PD_FABRIC_LOG_COMP "fabric"
#define PD_FABRIC_NO_INDEX UINT32_MAX

/*
 * Immediate data (32 bits, the verbs limit), sent with every two-sided message:
 *   bits  0..15  sender peer id
 *   bits 16..29  credits returned to the receiver (0..16383; 0 in GRANT messages)
 *   bits 30..31  kind (enum pd_fabric_imm_kind)
 */
enum pd_fabric_imm_kind {
	PD_FABRIC_IMM_DATA = 0,   /* application message: handed to on_recv */
	PD_FABRIC_IMM_CREDIT = 1, /* credit return only: reposted by the layer */
	PD_FABRIC_IMM_GRANT = 2,  /* one-sided: slot grants (struct pd_fabric_wire_grants) */
};
#define PD_FABRIC_IMM_CREDITS_MAX 16383u

static inline uint32_t pd_fabric_imm_encode(uint16_t peer, uint32_t credits,
                                            enum pd_fabric_imm_kind kind)
{
	return (uint32_t)peer | (credits & PD_FABRIC_IMM_CREDITS_MAX) << 16 |
	       ((uint32_t)kind & 3u) << 30;
}
static inline uint16_t pd_fabric_imm_peer(uint64_t imm)
{
	return (uint16_t)(imm & 0xffffu);
}
static inline uint32_t pd_fabric_imm_credits(uint64_t imm)
{
	return (uint32_t)(imm >> 16) & PD_FABRIC_IMM_CREDITS_MAX;
}
static inline unsigned pd_fabric_imm_kind(uint64_t imm)
{
	return (unsigned)(imm >> 30) & 3u;
}

/*
 * One-sided: the immediate data of a write (fi_writedata) names the writer and the slot:
 *   bits  0..15  sender peer id
 *   bits 16..31  slot id: index of the receive record at the target (depth <= 65536)
 */
static inline uint32_t pd_fabric_write_imm_encode(uint16_t peer, uint16_t slot)
{
	return (uint32_t)peer | (uint32_t)slot << 16;
}
static inline uint32_t pd_fabric_write_imm_slot(uint64_t imm)
{
	return (uint32_t)(imm >> 16) & 0xffffu;
}

/*
 * Connection data, little-endian and packed. magic and version stay at these offsets in
 * every future version so that any version can be read and refused by name. Every piece
 * fits the 55 bytes verbs carries in a connection request, accept or reject.
 *
 * With a cluster key, a link takes two connection requests and the key never travels
 * (docs/security.md): the first hello (auth CHALLENGE) carries the client's nonce Nc and
 * is refused with a challenge (the server's nonce Ns and its HMAC, proving the server
 * holds the key); the second hello (auth PROOF) carries the client's HMAC over both
 * nonces, and the server accepts it once: the challenge is consumed by the attempt.
 * The accept carries the server's HMAC over both nonces and the accepted fields.
 */
#define PD_FABRIC_HELLO_MAGIC 0x4f4c4450u     /* "PDLO" */
#define PD_FABRIC_ACCEPT_MAGIC 0x43414450u    /* "PDAC" */
#define PD_FABRIC_CHALLENGE_MAGIC 0x48434450u /* "PDCH" */
#define PD_FABRIC_CM_DATA_PORTABLE 55u        /* verbs: 56 minus its own length byte */
#define PD_FABRIC_NONCE_LEN 16
#define PD_FABRIC_MAC_LEN 32 /* HMAC-SHA256 */

enum pd_fabric_auth {
	PD_FABRIC_AUTH_NONE = 0,      /* no cluster key on this side; proof all zero */
	PD_FABRIC_AUTH_CHALLENGE = 1, /* hello: asks for a challenge; proof starts with Nc */
	PD_FABRIC_AUTH_PROOF = 2,     /* hello: the client's HMAC; accept: the server's */
};

struct pd_fabric_wire_hello { /* fi_connect param: the connecting side */
	uint32_t magic;
	uint16_t version;
	uint16_t peer_id; /* connecting side's id */
	uint16_t tenant;
	uint16_t credits;   /* receives reserved for this connection */
	uint16_t primitive; /* enum pd_fabric_primitive */
	uint8_t auth;       /* enum pd_fabric_auth */
	uint8_t proof[PD_FABRIC_MAC_LEN];
} __attribute__((packed));

struct pd_fabric_wire_accept { /* fi_accept param: the accepting side */
	uint32_t magic;
	uint16_t version;
	uint16_t peer_id; /* accepting side's id */
	uint16_t tenant;
	uint16_t credits; /* receives reserved for this connection */
	uint16_t primitive;
	uint8_t auth;
	uint8_t proof[PD_FABRIC_MAC_LEN];
} __attribute__((packed));

struct pd_fabric_wire_challenge { /* fi_reject param answering an auth CHALLENGE hello */
	uint32_t magic;
	uint16_t version;
	uint8_t nonce[PD_FABRIC_NONCE_LEN]; /* Ns */
	uint8_t mac[PD_FABRIC_MAC_LEN];
} __attribute__((packed));

/* A challenge the server issued and the client has not answered yet. */
#define PD_FABRIC_CHALLENGES 64      /* outstanding at once; the oldest is dropped */
#define PD_FABRIC_CHALLENGE_MS 10000 /* how long a challenge can be answered */
struct pd_fabric_challenge {
	bool live;
	uint16_t peer_id, tenant;
	int64_t expires_ms; /* CLOCK_MONOTONIC */
	uint8_t nc[PD_FABRIC_NONCE_LEN], ns[PD_FABRIC_NONCE_LEN];
};

/*
 * One-sided GRANT message (two-sided send, kind PD_FABRIC_IMM_GRANT), little-endian and
 * packed: a header then count entries, each a slot the receiver may write into once.
 * addr is an offset from the start of the registered region when the target's mr_mode
 * has no FI_MR_VIRT_ADDR, else a virtual address; key is what fi_mr_key() gave.
 */
#define PD_FABRIC_GRANT_MAGIC 0x52474450u /* "PDGR" */
struct pd_fabric_wire_grants {
	uint32_t magic;
	uint16_t count;
	uint16_t reserved; /* 0 */
} __attribute__((packed));
struct pd_fabric_wire_grant {
	uint16_t slot;     /* goes back in the write's immediate data */
	uint16_t reserved; /* 0 */
	uint32_t len;      /* most bytes the write may carry */
	uint64_t addr;
	uint64_t key;
} __attribute__((packed));
/* Control receives (and GRANT messages) are this big: 341 grants per message. */
#define PD_FABRIC_CTRL_MSG_MAX 8192u
#define PD_FABRIC_GRANTS_PER_MSG                                                                   \
	((PD_FABRIC_CTRL_MSG_MAX - sizeof(struct pd_fabric_wire_grants)) /                         \
	 sizeof(struct pd_fabric_wire_grant))

/* A CREDIT-only message carries this many bytes (a fixed marker) from fab->credit_buf. */
#define PD_FABRIC_CREDIT_MSG_LEN 8u

struct pd_fabric_ctrl_region; /* one-sided: the layer's registered control buffers */

/* Every post carries one of these; the completion's op_context points at fi_ctx. */
enum pd_fabric_op_kind {
	PD_FABRIC_OP_RECV = 1,
	PD_FABRIC_OP_SEND = 2,
};
struct pd_fabric_op {
	struct fi_context2 fi_ctx; /* first: handed to libfabric */
	uint8_t kind;
};

/* One-sided: where an application buffer is (enum value in pd_fabric_recv_op.slot). */
enum pd_fabric_slot_state {
	PD_FABRIC_SLOT_NONE = 0, /* not a slot (free record, two-sided, or with the app) */
	PD_FABRIC_SLOT_POOL,     /* the rx's, not assigned to a connection */
	PD_FABRIC_SLOT_OWED,     /* assigned to owner, grant not sent yet */
	PD_FABRIC_SLOT_GRANTED,  /* granted to owner, not written yet */
};

struct pd_fabric_recv_op {
	struct pd_fabric_op op;
	void *buf;
	size_t len;
	void *desc;
	void *buf_ctx;
	uint32_t next_free; /* free list; one-sided: next in the pool or the owed list */
	bool posted;        /* the fabric's: posted on the SRX, or (one-sided) a slot */
	uint8_t slot;       /* enum pd_fabric_slot_state */
	uint64_t owner;     /* conn handle of an OWED or GRANTED slot */
	uint64_t raddr;     /* what the peer writes to: offset or virtual address */
	uint64_t rkey;
};

/* One-sided: a slot the peer granted to this side. */
struct pd_fabric_slot {
	uint64_t addr;
	uint64_t key;
	uint32_t len;
	uint16_t id;
};

/* Slots per GRANT message not used up yet, most tracked per connection. */
#define PD_FABRIC_GRANT_MSGS_MAX PD_FABRIC_CREDIT_RESERVE

struct pd_fabric_send_op {
	struct pd_fabric_op op;
	struct pd_fabric_send_op *next, *prev; /* free list, or the conn's in-flight list */
	void *send_ctx;
	uint64_t conn_handle; /* generation-checked: the conn may be gone at completion */
	bool credit;          /* a control message (CREDIT-only or GRANT) */
	const void *ctrl_buf; /* ... sent from this buffer (for ops->ctrl_done) */
	bool orphan;          /* already reported as cancelled; recycle on completion */
	bool in_flight;
};

#define PD_FABRIC_SEND_CHUNK 64
struct pd_fabric_send_chunk {
	struct pd_fabric_send_chunk *next;
	struct pd_fabric_send_op ops[PD_FABRIC_SEND_CHUNK];
};

enum pd_fabric_conn_state {
	PD_FABRIC_CONN_CONNECTING, /* fi_connect issued, waiting for FI_CONNECTED */
	PD_FABRIC_CONN_ACCEPTING,  /* fi_accept issued, waiting for FI_CONNECTED */
	PD_FABRIC_CONN_UP,
	PD_FABRIC_CONN_DEAD, /* endpoint closed; on_down pending in the reaper */
};

struct pd_fabric_conn {
	struct pd_fabric *fab;
	struct pd_fabric_rx *rx;
	struct fid_ep *ep;
	uint64_t handle; /* slot index | generation << 32; the endpoint's fid context */
	enum pd_fabric_conn_state state;
	bool outbound;
	int down_err;
	uint16_t peer_id;
	uint16_t tenant;
	void *ctx;

	/* Outbound, keyed: the challenge-response (enum pd_fabric_auth of the last hello). */
	uint8_t auth;
	uint16_t hello_credits;
	uint16_t port;
	char host[64];
	uint8_t nc[PD_FABRIC_NONCE_LEN], ns[PD_FABRIC_NONCE_LEN];

	uint32_t credits;       /* DATA messages this side may still send (one-sided: slots held) */
	uint32_t peer_grant;    /* DATA credits the peer granted (upper bound of credits) */
	uint32_t grant;         /* DATA credits granted to the peer */
	uint32_t owed;          /* credits to return to the peer (one-sided: OWED slots) */
	uint32_t unreturned;    /* DATA received whose credit has not been sent back (<= grant) */
	uint8_t ctrl_in_flight; /* control messages in flight (<= ops->ctrl_depth) */
	bool credit_retry;      /* a control message could not be posted: retry from progress */

	/* One-sided, as the target: slots of rx assigned to the peer. */
	uint32_t owed_head, owed_tail; /* OWED slots, oldest first (recv_op indices) */
	uint32_t granted;              /* GRANTED slots */
	uint32_t grant_msgs[PD_FABRIC_GRANT_MSGS_MAX]; /* unwritten slots per GRANT sent */
	uint32_t n_grant_msgs;
	bool grant_initial; /* the initial grant is not all sent yet: no batching */
	/* One-sided, as the writer: slots the peer granted, oldest first (credits of them). */
	struct pd_fabric_slot *held;
	uint32_t held_cap, held_head;
	struct pd_fabric_ctrl_region *ctrl; /* GRANT send buffers (+ 2 receives on the SRX) */
	uint8_t ctrl_busy;                  /* GRANT send buffers in flight (bit mask) */

	struct pd_fabric_send_op *in_flight; /* sends posted on ep and not completed */
	struct pd_fabric_conn *next, *prev;  /* fab->conns */
	struct pd_fabric_conn *dead_next;    /* fab->dead */
};

#define PD_FABRIC_STASH 64
struct pd_fabric_rx {
	struct pd_fabric *fab;
	uint16_t tenant;
	uint32_t depth;
	struct fid_ep *srx;
	struct fid_cq *cq;
	int cq_fd;
	bool closing;

	struct pd_fabric_recv_op *recv_ops; /* depth records */
	uint32_t recv_free;                 /* head of the free list, UINT32_MAX: none */
	uint32_t n_posted;

	/* Conns whose DATA messages reached the app and were not replaced by a post yet. */
	uint64_t *fifo; /* depth handles */
	uint32_t fifo_head, fifo_len;

	struct pd_fabric_send_op *send_free;
	struct pd_fabric_send_chunk *send_chunks;

	/* Live conns of this rx, looked up by the sender peer id of each completion. */
	struct pd_fabric_conn **peers;
	uint32_t n_peers, cap_peers;

	/* Completions read but not dispatched yet (read by the send path on -FI_EAGAIN). */
	struct fi_cq_data_entry stash[PD_FABRIC_STASH];
	uint32_t stash_head, stash_len;

	/* One-sided: slots assigned to no connection (recv_op indices, oldest first). */
	uint32_t pool_head, pool_tail, n_pool;
	uint32_t fill_next; /* round robin over peers when the pool refills */
	struct pd_fabric_ctrl_region *ctrl_regions; /* every region: freed with the rx */
	struct pd_fabric_ctrl_region *ctrl_spare;   /* regions of connections gone */

	struct pd_fabric_rx *next, *prev;
};

struct pd_fabric_mr {
	struct pd_fabric *fab;
	struct fid_mr *mr;
	void *desc; /* fi_mr_desc when the provider wants FI_MR_LOCAL, else NULL */
	char *base;
	size_t len;
	uint64_t key; /* fi_mr_key (one-sided only) */
	struct pd_fabric_mr *next, *prev;
};

/*
 * The data-path primitive, chosen once at open. The common code owns connections,
 * queues, send records and the control-message machinery; a primitive decides what a posted
 * buffer becomes, how DATA travels and what its control messages say.
 */
struct pd_fabric_ops {
	const char *name;
	uint64_t caps;      /* fi_getinfo capabilities */
	uint64_t mode;      /* mode bits it can honour, beyond FI_CONTEXT | FI_CONTEXT2 */
	uint64_t mr_access; /* access of pd_fabric_mr_reg() regions */
	uint8_t ctrl_depth; /* control messages in flight per conn, at most */
	/* A receive context was created / its SRX closed and CQ drained (free leftovers). */
	int (*rx_open)(struct pd_fabric_rx *rx);
	void (*rx_close)(struct pd_fabric_rx *rx);
	/* The app posts op (buf, len, desc, buf_ctx filled) from mr: 0 or negative fi errno. */
	int (*rx_post)(struct pd_fabric_rx *rx, struct pd_fabric_mr *mr,
	               struct pd_fabric_recv_op *op);
	/* A conn is created (0 or negative errno) / freed. */
	int (*conn_open)(struct pd_fabric_conn *conn);
	void (*conn_close)(struct pd_fabric_conn *conn);
	/* The conn just went UP (before on_up): false if it failed instead. */
	bool (*conn_up)(struct pd_fabric_conn *conn);
	/* The conn is dead, the CQ drained and its sends reported (before on_down). */
	void (*conn_reap)(struct pd_fabric_conn *conn);
	/* Post a DATA message: 0 or a negative libfabric errno: -FI_EAGAIN no credit
	 * (conn->credits is 0) or the provider is busy, -FI_EMSGSIZE too big for what the
	 * peer offers, -FI_EINVAL a message the primitive cannot carry, another: failed.
	 * Consumes a credit only on 0, so it may be called again. */
	int (*data_send)(struct pd_fabric_conn *conn, struct pd_fabric_send_op *op, const void *buf,
	                 size_t len, void *desc);
	/* Post a control message if one is due (pd_fabric_ctrl_post): 1 posted, 0 none
	 * due, or negative fi errno (-FI_EAGAIN / -FI_ENOMEM: retried from progress). */
	int (*ctrl_send)(struct pd_fabric_conn *conn);
	/* The control message sent from buf completed (conn still exists). */
	void (*ctrl_done)(struct pd_fabric_conn *conn, const void *buf);
	/* Completion of a receive posted on rx's SRX / of a remote write (op_context NULL). */
	void (*recv_done)(struct pd_fabric_rx *rx, struct pd_fabric_recv_op *op, uint64_t flags,
	                  size_t len, uint64_t imm, int err);
	void (*remote_write)(struct pd_fabric_rx *rx, uint64_t flags, size_t len, uint64_t imm,
	                     int err);
};
extern const struct pd_fabric_ops pd_fabric_two_sided_ops;
extern const struct pd_fabric_ops pd_fabric_one_sided_ops;

struct pd_fabric_conn_slot {
	struct pd_fabric_conn *conn;
	uint32_t gen;
	uint32_t next_free;
};

struct pd_fabric {
	struct pd_fabric_callbacks cb;
	void *app;
	uint16_t local_id;
	uint16_t version; /* PD_FABRIC_PROTO_VERSION, or attr.test.version */
	char *provider;
	const struct pd_fabric_ops *ops;
	bool closing; /* pd_fabric_close(): no more callbacks */

	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_eq *eq;
	struct fid_pep *pep;
	int eq_fd;
	bool mr_local;
	bool mr_virt;          /* remote addresses are virtual addresses, not offsets */
	bool write_needs_recv; /* a write with immediate data consumes a posted receive */
	enum pd_fabric_primitive primitive;
	bool keyed;
	bool no_server_check; /* attr.test.no_server_check */
	uint8_t key[PD_FABRIC_KEY_LEN];
	struct pd_fabric_challenge challenges[PD_FABRIC_CHALLENGES];
	uint64_t next_mr_key;
	size_t max_msg_size;

	struct fid_mr *credit_mr;
	void *credit_desc;
	_Alignas(64) char credit_buf[64];

	struct pd_fabric_conn_slot *slots;
	uint32_t n_slots, cap_slots, slot_free;
	struct pd_fabric_conn *conns;
	struct pd_fabric_conn *dead, **dead_tail;
	uint32_t credit_retries;

	struct pd_fabric_rx *rxs;
	uint32_t n_rx;
	struct fid **wait_fids;
	struct pd_fabric_mr *mrs;

	struct pd_fabric_stats stats;
	struct pd_log_rate rl_conn; /* connection events */
	struct pd_log_rate rl_err;  /* repeated errors */
};

/*
 * ---- who calls whom -------------------------------------------------------------------
 *
 * Each file of the common code calls only the files below it. The common code reaches a
 * primitive only through fab->ops; a primitive calls back only the helpers of the
 * section "for the primitives" below (libfabric's ofi_util layering).
 *
 *   fabric.c          open/close, memory regions, pd_fabric_send, progress, waiting
 *   fabric_cm.c       pd_fabric_connect, the EQ: requests, accepts, the challenge-response
 *   fabric_hello.c    connection data on the wire, its HMACs, the cluster key (calls none)
 *   fabric_rx.c       receive contexts, their CQ (stash, poll, dispatch), the reaper
 *   fabric_conn.c     handles, peer tables, conn lifecycle, control messages
 *   fabric_msg.c      operation records, fi_recv / fi_senddata on an SRX and a conn
 *   - - - - - - - - - fab->ops - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
 *   fabric_two_sided.c, fabric_one_sided.c: the primitives
 *
 * One path comes back up at run time, through fab->ops and on purpose: a completion
 * dispatched from the CQ (fabric_rx.c) reaches a primitive, whose pd_fabric_rx_sender()
 * (fabric_cm.c) may read the EQ first; a connection request read there (a restarted
 * peer) drains the same CQ before it closes the old conn. The order of completions
 * holds: each is taken from the stash once, in order.
 */

/* ---- for the common code and the primitives ------------------------------------------ */

/* libfabric's own error codes (>= FI_ERRNO_OFFSET) have no errno twin: map them. */
static inline int pd_fabric_errno(int fi_err)
{
	if (fi_err < 0)
		fi_err = -fi_err;
	if (fi_err == 0)
		return 0;
	if (fi_err < FI_ERRNO_OFFSET)
		return fi_err;
	switch (fi_err) {
	case FI_ETRUNC:
	case FI_ETOOSMALL: return EMSGSIZE;
	case FI_EOPBADSTATE: return ENOTCONN;
	case FI_EAVAIL: return EAGAIN;
	default: return EIO;
	}
}

static inline bool pd_fabric_in_mr(const struct pd_fabric_mr *mr, const void *buf, size_t len)
{
	const char *p = buf;
	return p >= mr->base && len <= mr->len && (size_t)(p - mr->base) <= mr->len - len;
}

#define PD_FABRIC_WARN_RL(fab, err, ...)                                                           \
	do {                                                                                       \
		if (pd_log_rate_allow(&(fab)->rl_err, PD_FABRIC_LOG_COMP))                         \
			PD_LOG_WARN(PD_FABRIC_LOG_COMP, err, __VA_ARGS__);                         \
	} while (0)
/* Connection events (up, down, failed attempts), rate-limited apart from the errors. */
#define PD_FABRIC_INFO_RL(fab, ...)                                                                \
	do {                                                                                       \
		if (pd_log_rate_allow(&(fab)->rl_conn, PD_FABRIC_LOG_COMP))                        \
			PD_LOG_INFO(PD_FABRIC_LOG_COMP, __VA_ARGS__);                              \
	} while (0)

/* ---- for the primitives (and the common code) ------------------------------------------ */

/* fabric_msg.c. Two-sided operations on the SRX and a conn (the DATA path of two-sided,
 * and the control messages of both): 0 or a negative libfabric errno (-FI_EAGAIN: busy). */
int pd_fabric_msg_recv(struct pd_fabric_rx *rx, struct pd_fabric_recv_op *op);
int pd_fabric_msg_send(struct pd_fabric_conn *conn, struct pd_fabric_send_op *op, const void *buf,
                       size_t len, void *desc, uint32_t imm);
void pd_fabric_recv_op_put(struct pd_fabric_rx *rx, struct pd_fabric_recv_op *op);

/* fabric_conn.c */
struct pd_fabric_conn *pd_fabric_conn_lookup(const struct pd_fabric *fab, uint64_t handle);
/* Close the endpoint; on_down follows from the reaper. Safe anywhere, calls nothing. */
void pd_fabric_conn_fail(struct pd_fabric_conn *conn, int err);
/* Let ops->ctrl_send post control messages now if due (ops->ctrl_depth in flight per
 * conn); a busy provider makes it retry from progress, a failure fails the conn. */
void pd_fabric_conn_ctrl_check(struct pd_fabric_conn *conn);
/* Post a control message (buf stays untouched until its completion). */
int pd_fabric_ctrl_post(struct pd_fabric_conn *conn, const void *buf, size_t len, void *desc,
                        uint32_t imm);

/* fabric_rx.c. The FIFO of conns whose delivered messages were not replaced by a post
 * yet. */
void pd_fabric_fifo_push(struct pd_fabric_rx *rx, uint64_t handle);
/* Pop the oldest entry: its conn if still alive, else NULL (also when empty). */
struct pd_fabric_conn *pd_fabric_fifo_pop_conn(struct pd_fabric_rx *rx);

/* fabric_cm.c. The live conn of rx whose peer id is peer_id; reads the EQ first if it is
 * not UP yet (its first messages can be read before its FI_CONNECTED). NULL: none. */
struct pd_fabric_conn *pd_fabric_rx_sender(struct pd_fabric_rx *rx, uint16_t peer_id);

/* ---- for the common code only ---------------------------------------------------------- */

#define PD_FABRIC_CQ_BATCH 16  /* completions per fi_cq_read */
#define PD_FABRIC_EQ_BUDGET 64 /* events per pd_fabric_progress() */

/* fabric_msg.c: records of an rx, never allocated per message. recv: NULL when all
 * depth are in use; send: NULL when out of memory (they come in chunks). */
struct pd_fabric_recv_op *pd_fabric_recv_op_get(struct pd_fabric_rx *rx);
struct pd_fabric_send_op *pd_fabric_send_op_get(struct pd_fabric_rx *rx);
void pd_fabric_send_op_put(struct pd_fabric_rx *rx, struct pd_fabric_send_op *op);

/* fabric_conn.c */
/* A conn of rx to peer_id that is not DEAD (in the peer table), or NULL. */
struct pd_fabric_conn *pd_fabric_rx_peer(const struct pd_fabric_rx *rx, uint16_t peer_id);
/* A new conn (CONNECTING if outbound, else ACCEPTING) with a handle, in rx's peer table
 * and fab->conns, no endpoint yet; NULL: out of memory. */
struct pd_fabric_conn *pd_fabric_conn_new(struct pd_fabric *fab, struct pd_fabric_rx *rx,
                                          uint16_t peer_id, void *ctx, bool outbound);
/* Free a conn whose endpoint is closed and whose sends are all accounted for. */
void pd_fabric_conn_free(struct pd_fabric_conn *conn);
/* Open, bind (EQ, the rx's CQ and SRX) and enable conn->ep: 0 or negative errno. */
int pd_fabric_conn_ep_open(struct pd_fabric_conn *conn, struct fi_info *info);
/* A send posted on conn / completed or given up: the conn's in-flight list. */
void pd_fabric_conn_track(struct pd_fabric_conn *conn, struct pd_fabric_send_op *op);
void pd_fabric_conn_untrack(struct pd_fabric_conn *conn, struct pd_fabric_send_op *op);

/* fabric_rx.c */
/* Read up to max completions into the stash without dispatching them. */
ssize_t pd_fabric_cq_stash(struct pd_fabric_rx *rx, size_t max);
/* Dispatch up to budget completions, in order (stash first); drain: until the CQ is
 * empty, not only a full batch at a time. Returns how many. */
int pd_fabric_cq_poll(struct pd_fabric_rx *rx, int budget, bool drain);
/* Reap the dead conns (of only, or all if NULL): their sends reported, then on_down and
 * free. Returns how many. */
int pd_fabric_reap(struct pd_fabric *fab, const struct pd_fabric_rx *only);
/* fab->wait_fids: the EQ and every rx's CQ, for fi_trywait. 0 or -ENOMEM. */
int pd_fabric_wait_fids_rebuild(struct pd_fabric *fab);

/* fabric_hello.c */
/* What an HMAC vouches for (docs/security.md): each has its own label in the MAC. */
enum pd_fabric_mac_label {
	PD_FABRIC_MAC_SERVER_CHALLENGE,
	PD_FABRIC_MAC_CLIENT_PROOF,
	PD_FABRIC_MAC_SERVER_ACCEPT,
};
/* Encode hello or accept data (same layout, different magic) into out. */
void pd_fabric_hello_encode(const struct pd_fabric *fab, const struct pd_fabric_hello *h,
                            uint32_t magic, uint8_t auth, const uint8_t *proof, size_t proof_len,
                            void *out);
/* Parse a hello or an accept (magic) sent to fab: 0, or -EPROTO / -EACCES with reason. */
int pd_fabric_hello_parse(const struct pd_fabric *fab, const void *data, size_t len, uint32_t magic,
                          struct pd_fabric_hello *h, uint8_t *auth,
                          uint8_t proof[PD_FABRIC_MAC_LEN], char *reason, size_t reason_len);
/* HMAC-SHA256 under fab's key (see the definition for what it covers): 0 or -EIO. */
int pd_fabric_mac(const struct pd_fabric *fab, enum pd_fabric_mac_label which, const uint8_t *nc,
                  const uint8_t *ns, const struct pd_fabric_hello *h, uint16_t primitive,
                  uint16_t to_id, uint8_t out[PD_FABRIC_MAC_LEN]);
/* Constant-time comparison of two MACs. */
bool pd_fabric_mac_equal(const uint8_t *a, const uint8_t *b);

/* fabric_cm.c */
/* fi_getinfo hints for provider and the primitive ops (NULL: out of memory). */
struct fi_info *pd_fabric_hints(const char *provider, const struct pd_fabric_ops *ops);
/* Handle up to budget EQ events (connection requests, accepts, refusals, shutdowns).
 * Returns how many. */
int pd_fabric_eq_poll(struct pd_fabric *fab, int budget);

#endif
