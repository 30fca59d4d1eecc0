/* SPDX-License-Identifier: Apache-2.0 */
/* Private state of the fabric layer: objects, wire formats, immediate data, the ops table. */
#ifndef PD_FABRIC_FABRIC_INTERNAL_H
#define PD_FABRIC_FABRIC_INTERNAL_H

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>

#include <stdbool.h>
#include <stdint.h>

#include "fabric/fabric.h"

#define PD_FABRIC_FI_VERSION FI_VERSION(1, 17)

/*
 * Immediate data (32 bits, the verbs limit), sent with every message:
 *   bits  0..15  sender peer id
 *   bits 16..29  credits returned to the receiver (0..16383)
 *   bits 30..31  kind (enum pd_fabric_imm_kind)
 */
enum pd_fabric_imm_kind {
	PD_FABRIC_IMM_DATA = 0,   /* application message: handed to on_recv */
	PD_FABRIC_IMM_CREDIT = 1, /* credit return only: reposted by the layer */
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
 * Connection data, little-endian and packed. magic and version stay at these offsets in
 * every future version so that any version can be read and refused by name.
 */
#define PD_FABRIC_HELLO_MAGIC 0x4f4c4450u  /* "PDLO" */
#define PD_FABRIC_ACCEPT_MAGIC 0x43414450u /* "PDAC" */

struct pd_fabric_wire_hello { /* fi_connect param: the connecting side */
	uint32_t magic;
	uint16_t version;
	uint16_t peer_id; /* connecting side's id */
	uint16_t tenant;
	uint16_t credits; /* receives reserved for this connection */
} __attribute__((packed));

struct pd_fabric_wire_accept { /* fi_accept param: the accepting side */
	uint32_t magic;
	uint16_t version;
	uint16_t peer_id; /* accepting side's id */
	uint16_t tenant;
	uint16_t credits; /* receives reserved for this connection */
} __attribute__((packed));

/* A CREDIT-only message carries this many bytes (a fixed marker) from fab->credit_buf. */
#define PD_FABRIC_CREDIT_MSG_LEN 8u

/* Every post carries one of these; the completion's op_context points at fi_ctx. */
enum pd_fabric_op_kind {
	PD_FABRIC_OP_RECV = 1,
	PD_FABRIC_OP_SEND = 2,
};
struct pd_fabric_op {
	struct fi_context2 fi_ctx; /* first: handed to libfabric */
	uint8_t kind;
};

struct pd_fabric_recv_op {
	struct pd_fabric_op op;
	void *buf;
	size_t len;
	void *desc;
	void *buf_ctx;
	uint32_t next_free;
	bool posted;
};

struct pd_fabric_send_op {
	struct pd_fabric_op op;
	struct pd_fabric_send_op *next, *prev; /* free list, or the conn's in-flight list */
	void *send_ctx;
	uint64_t conn_handle; /* generation-checked: the conn may be gone at completion */
	bool credit;          /* a CREDIT-only message */
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

	uint32_t credits;    /* DATA messages this side may still send */
	uint32_t peer_grant; /* DATA credits the peer granted (upper bound of credits) */
	uint32_t grant;      /* DATA credits granted to the peer */
	uint32_t owed;       /* credits to return to the peer */
	uint32_t unreturned; /* DATA received whose credit has not been sent back (<= grant) */
	bool credit_in_flight;
	bool credit_retry; /* a credit message could not be posted: retry from progress */

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

	struct pd_fabric_rx *next, *prev;
};

struct pd_fabric_mr {
	struct pd_fabric *fab;
	struct fid_mr *mr;
	void *desc; /* fi_mr_desc when the provider wants FI_MR_LOCAL, else NULL */
	char *base;
	size_t len;
	struct pd_fabric_mr *next, *prev;
};

/*
 * The data-path primitive, chosen once at open. Only two-sided send/receive exists
 * today; one-sided (fi_writedata into receiver-granted slots) is meant to slot in here.
 */
struct pd_fabric_ops {
	const char *name;
	/* Post op (buf, len, desc filled) on rx: 0 or a negative libfabric errno. */
	int (*post_recv)(struct pd_fabric_rx *rx, struct pd_fabric_recv_op *op);
	/* Send buf with imm on conn: 0 or a negative libfabric errno (-FI_EAGAIN: busy). */
	int (*send)(struct pd_fabric_conn *conn, struct pd_fabric_send_op *op, const void *buf,
	            size_t len, void *desc, uint32_t imm);
};
extern const struct pd_fabric_ops pd_fabric_two_sided_ops;

struct pd_fabric_conn_slot {
	struct pd_fabric_conn *conn;
	uint32_t gen;
	uint32_t next_free;
};

struct pd_fabric_ratelimit {
	int64_t window; /* seconds, CLOCK_MONOTONIC */
	uint32_t count;
	uint32_t suppressed;
};

struct pd_fabric {
	struct pd_fabric_callbacks cb;
	void *app;
	uint16_t local_id;
	uint16_t version; /* PD_FABRIC_PROTO_VERSION, or a test override */
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
	struct pd_fabric_ratelimit rl_conn; /* connection events */
	struct pd_fabric_ratelimit rl_err;  /* repeated errors */
};

/* Test-only: advertise another protocol version in the hello and accept data. */
void pd_fabric_test_set_version(struct pd_fabric *fab, uint16_t version);

#endif
