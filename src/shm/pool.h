/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tenant pool: one memfd per (node, tenant) holding a control area (buffer states, the
 * free list, the engine-bound ring, one inbound ring and status block per function
 * instance) and fixed-size buffers. Descriptors are buffer indexes, never pointers.
 *
 * The geometry is computed from pd_pool_attr by each process on its own; nothing that
 * locates memory is ever read back from the shared area.
 */
#ifndef PD_SHM_POOL_H
#define PD_SHM_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"
#include "shm/msg.h"
#include "shm/ring.h"

#define PD_POOL_MAGIC 0x4c4f4f50u /* "POOL" */
#define PD_POOL_VERSION 2u

/* Owners of a buffer: an instance slot (0..PD_MAX_INSTANCES-1) or one of these. */
#define PD_OWNER_ENGINE 0xfffeu
#define PD_OWNER_NONE 0xffffu

enum pd_buf_state {
	PD_BUF_FREE = 0,
	PD_BUF_RX_POSTED,   /* posted to the fabric for a receive (engine) */
	PD_BUF_ENGINE,      /* held by the engine */
	PD_BUF_IN_RING,     /* in the inbound ring of instance `owner` */
	PD_BUF_IN_FUNCTION, /* taken by instance `owner` */
	PD_BUF_TO_ENGINE,   /* in the engine-bound ring, pushed by `owner` */
	PD_BUF_SENDING,     /* handed to the fabric for a send */
	PD_BUF_IN_REPLY,    /* a call's reply, in the reply ring of instance `owner` */
	PD_BUF_STATE_COUNT,
};

struct pd_buf_ctl {
	_Atomic uint32_t owner;
	_Atomic uint32_t state;
	_Atomic uint64_t since_ns; /* when it entered its state (set for IN_FUNCTION) */
};

/* Per function instance, written by the instance, read (untrusted) by the engine. */
struct pd_inst_status {
	_Alignas(64) _Atomic uint64_t handled;
	_Atomic uint64_t bad_input;     /* descriptors it refused */
	_Atomic uint64_t copied_bytes;  /* payload bytes the runtime copied (stays 0) */
	_Atomic uint64_t meta_bytes;    /* metadata bytes the runtime copied forward */
	_Atomic uint64_t expired;       /* requests dropped: waited past their timeout */
	_Atomic uint64_t push_failures; /* messages no ring would take: dropped, buffer freed */
	/* Its calls: started; finished with the callee's answer, by the platform (403, 502,
	 * 503, 508), by the deadline (504); replies dropped as late, stale or forged. */
	_Atomic uint64_t calls_started;
	_Atomic uint64_t calls_answered;
	_Atomic uint64_t calls_failed;
	_Atomic uint64_t calls_timed_out;
	_Atomic uint64_t calls_late;
	/* The reply ring's wake-up: a futex word that whoever pushes a reply (or completes a
	 * call of another thread) increments, then wakes the waiters if there are any. */
	_Atomic uint32_t reply_seq;
	_Atomic uint32_t reply_waiters;
};

struct pd_pool_attr {
	uint16_t tenant;
	uint64_t pool_size;   /* bytes requested for the whole pool */
	uint32_t buffer_size; /* bytes per buffer */
	uint32_t ring_size;   /* slots per instance ring (power of two) */
	uint32_t ninst;       /* instance slots (<= PD_MAX_INSTANCES) */
};

/* The control area's first bytes, for debugging tools and sanity checks only. */
struct pd_pool_shared {
	uint32_t magic;
	uint32_t version;
	uint32_t tenant;
	uint32_t nbuffers;
	uint32_t buffer_size;
	uint32_t ninst;
	_Atomic uint64_t alloc_failures;
	_Atomic uint64_t push_failures; /* pd_pool_push calls that failed, every process */
};

struct pd_pool {
	int fd;
	bool owner; /* created here (engine) */
	uint8_t *base;
	size_t map_size;
	struct pd_pool_attr attr;
	uint32_t nbuffers;
	struct pd_pool_shared *sh;
	struct pd_buf_ctl *ctl;
	struct pd_ring free_ring;
	struct pd_ring engine_ring;
	struct pd_ring inst_ring[PD_MAX_INSTANCES];
	struct pd_ring reply_ring[PD_MAX_INSTANCES]; /* replies to the instance's calls */
	struct pd_inst_status *inst_status[PD_MAX_INSTANCES];
	uint8_t *buffers;
	_Atomic uint64_t push_failures; /* pd_pool_push calls of this process that failed */
};

/* Create (engine): memfd, size, map, format. Hugepages when the system has them. */
int pd_pool_create(const struct pd_pool_attr *attr, const char *name, struct pd_pool *pool);
/* Attach (function): map an existing pool fd with the same attr; checks the file size. */
int pd_pool_attach(int fd, const struct pd_pool_attr *attr, struct pd_pool *pool);
/* Unmap and close the fd. */
void pd_pool_close(struct pd_pool *pool);

/* Number of buffers a pool of this attr holds (0 if the attr is unusable). */
uint32_t pd_pool_buffer_count(const struct pd_pool_attr *attr);
/* Size of the memfd for this attr. */
size_t pd_pool_file_size(const struct pd_pool_attr *attr);

/* Take a free buffer for owner. 0 and *idx, or -ENOBUFS. */
int pd_pool_alloc(struct pd_pool *pool, uint32_t owner, uint32_t *idx);
/*
 * Return a buffer to the free list: 0, or the error of pd_pool_push when the list (which
 * the tenant's functions can write) would not take it. The buffer then keeps the state
 * and owner it had, so that it stays accounted for (and reclaimable) instead of lost.
 */
int pd_pool_free(struct pd_pool *pool, uint32_t idx);
/*
 * Push buffer idx to one of the pool's rings, retrying a contended ring a bounded number
 * of times. 0, or -ENOBUFS (full) / -EBUSY (contended), counted in push_failures (here
 * and in the shared area): the caller still holds the buffer and must account for it.
 */
int pd_pool_push(struct pd_pool *pool, struct pd_ring *ring, uint32_t idx);

static inline bool pd_pool_index_ok(const struct pd_pool *pool, uint64_t idx)
{
	return idx < pool->nbuffers;
}

static inline struct pd_msg_hdr *pd_pool_buf(const struct pd_pool *pool, uint32_t idx)
{
	return (struct pd_msg_hdr *)(pool->buffers + (size_t)idx * pool->attr.buffer_size);
}

/* Index of the buffer containing p, or -1. */
int64_t pd_pool_index_of(const struct pd_pool *pool, const void *p);

static inline void pd_pool_set(struct pd_pool *pool, uint32_t idx, uint32_t owner,
                               enum pd_buf_state state)
{
	atomic_store_explicit(&pool->ctl[idx].owner, owner, memory_order_relaxed);
	atomic_store_explicit(&pool->ctl[idx].state, state, memory_order_release);
}

/*
 * Hand a call's reply in buffer idx to the reply ring of instance slot and wake its
 * waiting threads. 0, or the error of pd_pool_push (the caller still holds idx).
 */
int pd_pool_push_reply(struct pd_pool *pool, uint32_t slot, uint32_t idx);
/* Wake the threads of instance slot that wait for replies (after reply_seq changed). */
void pd_pool_wake_replies(struct pd_pool *pool, uint32_t slot);

/* Count buffers by state (a racy snapshot). */
void pd_pool_census(const struct pd_pool *pool, uint64_t counts[PD_BUF_STATE_COUNT]);

#endif
