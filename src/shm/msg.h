/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The message format: what lies in a pool buffer and, unchanged, on the fabric.
 *
 *   [struct pd_msg_hdr, 64 bytes][payload][request metadata][response metadata]
 *
 * Fixed, versioned, little-endian. Everything in it is untrusted by whoever reads it.
 */
#ifndef PD_SHM_MSG_H
#define PD_SHM_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the message header is little-endian; big-endian hosts are not supported");

#define PD_MSG_MAGIC 0x314d4450u /* "PDM1" */
#define PD_MSG_VERSION 2u

/* A message is of exactly one kind (the first four flags); ERROR may come with a
 * RESPONSE or a REPLY. */
enum pd_msg_flags {
	PD_MSG_F_REQUEST = 1u << 0,  /* travelling along the chain */
	PD_MSG_F_RESPONSE = 1u << 1, /* final answer, travelling to the ingress */
	PD_MSG_F_ERROR = 1u << 2,    /* response or reply made by the platform (status + text) */
	PD_MSG_F_CALL = 1u << 3,     /* a function's call, travelling to its callee */
	PD_MSG_F_REPLY = 1u << 4,    /* a call's answer, travelling to the calling instance */
};
#define PD_MSG_KINDS (PD_MSG_F_REQUEST | PD_MSG_F_RESPONSE | PD_MSG_F_CALL | PD_MSG_F_REPLY)

struct pd_msg_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;
	uint16_t tenant; /* index in the cluster config */
	uint16_t route;  /* index in the cluster config (of the request a call serves) */
	union {
		uint16_t hop;    /* REQUEST: index in the route's chain of the function to run */
		uint16_t callee; /* CALL, REPLY: the called function (functions[] index) */
	};
	uint16_t status;     /* HTTP status of a response or reply */
	uint64_t request_id; /* ingress request table: slot (low 32) | generation (high 32) */
	uint16_t origin;     /* ingress id the response goes back to */
	uint16_t depth;      /* calls nested under the request: 0 on the chain, 1 for its calls */
	uint32_t payload_len;
	uint32_t req_meta_len;  /* method, path, query, request headers */
	uint32_t resp_meta_len; /* response headers */
	uint64_t sent_ns;       /* ingress clock at admission; opaque to everyone else */
	/* Calls. The caller's call-table id (slot | generation << 32, never 0) and where its
	 * reply goes (node, instance slot), copied unchanged into the reply. */
	uint64_t call_id;
	/* REQUEST, CALL: milliseconds left of the request's deadline when the message was
	 * queued (relative: host clocks differ); 0 = the route's whole timeout. */
	uint32_t deadline_ms;
	uint16_t reply_node;
	uint16_t reply_slot;
};
_Static_assert(sizeof(struct pd_msg_hdr) == 64, "message header is 64 bytes");

#define PD_MSG_HDR_SIZE ((uint32_t)sizeof(struct pd_msg_hdr))

static inline void *pd_msg_payload(struct pd_msg_hdr *h)
{
	return (char *)h + PD_MSG_HDR_SIZE;
}

static inline unsigned pd_msg_kind(const struct pd_msg_hdr *h)
{
	return h->flags & PD_MSG_KINDS;
}

static inline uint64_t pd_msg_total_len(const struct pd_msg_hdr *h)
{
	return (uint64_t)PD_MSG_HDR_SIZE + h->payload_len + h->req_meta_len + h->resp_meta_len;
}

/*
 * Check a header read from untrusted memory or the wire: magic, version, exactly one kind
 * (REQUEST, RESPONSE, CALL, REPLY), no unknown flag, ERROR only on a RESPONSE or REPLY,
 * a call id on a CALL or REPLY, lengths inside buf_size (and inside received_len if
 * non-zero).
 * Returns 0 or -EBADMSG. Copy the header first (pd_msg_hdr_snapshot) so that a
 * concurrent writer cannot change it between check and use.
 */
int pd_msg_validate(const struct pd_msg_hdr *h, uint64_t buf_size, uint64_t received_len);

static inline void pd_msg_hdr_snapshot(struct pd_msg_hdr *dst, const volatile void *src)
{
	__builtin_memcpy(dst, (const void *)src, sizeof(*dst));
}

/*
 * Metadata: a list of (name, value) pairs.
 *   u16 count; then per entry: u16 name_len, u32 value_len, name bytes, value bytes.
 * Request metadata holds ":method", ":path", ":query" first, then request headers.
 * Response metadata holds response headers.
 */
struct pd_meta_writer {
	uint8_t *base;
	size_t cap;
	size_t len;
	uint16_t count;
	bool overflow;
};

struct pd_meta_entry {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

void pd_meta_writer_init(struct pd_meta_writer *w, void *base, size_t cap);
/* Append one pair; on overflow sets w->overflow and returns -ENOSPC. */
int pd_meta_add(struct pd_meta_writer *w, const char *name, size_t name_len, const char *value,
                size_t value_len);
/* Final length in bytes (0 if nothing was added), or -ENOSPC after an overflow. */
int64_t pd_meta_finish(struct pd_meta_writer *w);

/*
 * Iterate over untrusted metadata. Returns 1 and fills e for each entry, 0 at the end,
 * -EBADMSG if the encoding is broken. *cursor starts at 0.
 */
int pd_meta_next(const void *base, size_t len, size_t *cursor, struct pd_meta_entry *e);
/* Validate the whole encoding: 0 or -EBADMSG. */
int pd_meta_check(const void *base, size_t len);
/* Find an entry by name (case-insensitive); 1 found, 0 not, -EBADMSG broken. */
int pd_meta_find(const void *base, size_t len, const char *name, struct pd_meta_entry *e);

#endif
