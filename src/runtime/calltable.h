/* SPDX-License-Identifier: Apache-2.0 */
/* The outstanding calls of one function process, in slots named by slot + generation. */
#ifndef PD_RUNTIME_CALLTABLE_H
#define PD_RUNTIME_CALLTABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/*
 * A call id is what travels on the wire and comes back in the reply: the slot in the low
 * 32 bits, the slot's generation in the high 32. Generations start at 1 and skip 0 when
 * they wrap, so an id is never 0. Releasing a slot bumps its generation: a reply that
 * arrives after its call was released names an old generation and is refused. An id is
 * not a secret: it stops stale and stray replies, not a forger who can read the caller's
 * ids (one generation recurs after 2^32 uses of a slot).
 */

/*
 * The life of a call. Only these transitions exist, each a compare-and-swap but the first
 * (a store: a slot off the free list is its allocator's alone):
 *   FREE -> SENT                 pd_calltable_alloc
 *   SENT -> ANSWERED | FAILED    pd_calltable_complete (any thread)
 *   SENT -> TIMED_OUT            pd_calltable_expire (any thread)
 *   any but FREE -> FREE         pd_calltable_release (its owner), generation + 1
 * The first of complete and expire to leave SENT wins; the other gets -ESTALE / skips.
 */
enum pd_call_state {
	PD_CALL_FREE = 0,
	PD_CALL_SENT = 1,      /* waiting for its reply */
	PD_CALL_ANSWERED = 2,  /* the answer is in buffer buf_idx */
	PD_CALL_FAILED = 3,    /* the callee failed (died, unreachable); buf_idx may hold why */
	PD_CALL_TIMED_OUT = 4, /* the deadline passed first; any later reply is refused */
};

/* buf_idx of a call without a buffer; buffer indexes are below it (29 bits). */
#define PD_CALL_NO_BUF ((UINT32_C(1) << 29) - 1)
#define PD_CALLTABLE_MAX (UINT32_C(1) << 20) /* slots of one table at most */

/*
 * One slot. Every field is atomic because threads other than the owner read it while the
 * owner may reuse the slot; word is the slot's state, and the only field that decides
 * anything: generation << 32 | state << 29 | buf_idx, changed by compare-and-swap only, so
 * a transition checks the generation and the state in one step and a stale id can never
 * change a newer call. The other fields are written by pd_calltable_alloc before it
 * publishes SENT (release order) and read after the word (acquire order).
 */
struct pd_call_entry {
	_Atomic uint64_t word;
	_Atomic uint64_t deadline_ns; /* on the caller's clock (CLOCK_MONOTONIC) */
	_Atomic uint32_t callee;      /* function index (functions[] of the config) */
	_Atomic uint32_t owner;       /* the thread that waits for it; opaque */
};

/*
 * The free slots are a stack behind a mutex: alloc and release are one push or pop each,
 * once per call, on the caller's own thread, and a mutex keeps the free list trivially
 * correct (no ABA). complete, expire and lookup, which run on any thread and on every
 * reply, take no lock.
 */
struct pd_calltable {
	struct pd_call_entry *calls;
	uint32_t capacity;
	pthread_mutex_t lock; /* guards free_slots and free_count */
	uint32_t *free_slots;
	uint32_t free_count;
};

/*
 * Makes an empty table of capacity slots, a power of two from 1 to PD_CALLTABLE_MAX.
 * Returns 0, -EINVAL (capacity), -ENOMEM. Not thread-safe (nothing else may use t).
 */
int pd_calltable_init(struct pd_calltable *t, uint32_t capacity);
/*
 * Starts every slot at generation (1 if 0) instead of 1: a process that takes over an
 * instance slot from one that died seeds its table at random, so that the replies to the
 * dead process's calls, which still name this slot, are refused rather than taken for
 * the new process's calls. Only on a table that holds no call. Not thread-safe.
 */
void pd_calltable_seed(struct pd_calltable *t, uint32_t generation);
/* Frees the table; outstanding calls are forgotten. Not thread-safe. */
void pd_calltable_fini(struct pd_calltable *t);

/*
 * Takes a free slot for a call to function callee, due at deadline_ns, waited on by
 * thread owner; the call starts in SENT (send its request after this returns). Writes the
 * call id to *id. Returns 0, or -EMFILE when every slot holds a call (like a process out
 * of file descriptors: release one first). Thread-safe.
 */
int pd_calltable_alloc(struct pd_calltable *t, uint32_t callee, uint64_t deadline_ns,
                       uint32_t owner, uint64_t *id);

/*
 * The slot of id if id names a call that is not free: slot in range, generation equal to
 * the slot's. NULL for a stale, released or forged id. The entry may change after this
 * returns (a reply, the deadline, its owner's release); read it with the pd_call_*
 * accessors below. Thread-safe.
 */
const struct pd_call_entry *pd_calltable_lookup(const struct pd_calltable *t, uint64_t id);

/*
 * The reply of call id arrived: SENT -> outcome (PD_CALL_ANSWERED with the answer's
 * buffer, or PD_CALL_FAILED with a buffer or PD_CALL_NO_BUF). Returns 0; -ESTALE if id is
 * stale or forged or the call no longer waits (answered, failed, timed out, released):
 * the caller then still owns buf_idx, counts the late reply and frees its buffer;
 * -EINVAL for another outcome, a buf_idx above PD_CALL_NO_BUF, or ANSWERED without a
 * buffer. Thread-safe: any thread of the process may complete any call.
 */
int pd_calltable_complete(struct pd_calltable *t, uint64_t id, enum pd_call_state outcome,
                          uint32_t buf_idx);

/* Called by pd_calltable_expire for each call it marked TIMED_OUT. */
typedef void pd_calltable_expired_fn(void *arg, uint64_t id, uint32_t callee, uint32_t owner);

/*
 * Marks every SENT call with deadline_ns <= now_ns TIMED_OUT and calls expired (if not
 * NULL) for each, on this thread, without a lock held. Returns how many it marked. A call
 * completed at the same moment is either answered or timed out, never both. Scans the
 * whole table. Thread-safe.
 */
uint32_t pd_calltable_expire(struct pd_calltable *t, uint64_t now_ns,
                             pd_calltable_expired_fn *expired, void *arg);

/*
 * Frees the slot of call id in any state but FREE and bumps its generation, so that any
 * later reply to id gets -ESTALE. When last is not NULL, the call's final state goes
 * there (with *buf_idx its buffer, if not NULL): a reply may have landed after the owner
 * last looked, and its buffer is the owner's to free. Returns 0 or -ESTALE (stale,
 * forged, already released). Thread-safe, but only the owner should release a call.
 */
int pd_calltable_release(struct pd_calltable *t, uint64_t id, enum pd_call_state *last,
                         uint32_t *buf_idx);

/* ---- reading an entry (each one atomic load; the entry may change between two) ---- */

static inline enum pd_call_state pd_call_entry_state(const struct pd_call_entry *c)
{
	return (enum pd_call_state)((atomic_load_explicit(&c->word, memory_order_acquire) >> 29) &
	                            7);
}

/* The buffer of an ANSWERED or FAILED call; PD_CALL_NO_BUF otherwise. */
static inline uint32_t pd_call_entry_buf(const struct pd_call_entry *c)
{
	uint64_t word = atomic_load_explicit(&c->word, memory_order_acquire);
	uint32_t state = (uint32_t)(word >> 29) & 7;

	if (state != PD_CALL_ANSWERED && state != PD_CALL_FAILED)
		return PD_CALL_NO_BUF;
	return (uint32_t)word & PD_CALL_NO_BUF;
}

static inline uint64_t pd_call_entry_deadline_ns(const struct pd_call_entry *c)
{
	return atomic_load_explicit(&c->deadline_ns, memory_order_relaxed);
}

static inline uint32_t pd_call_entry_callee(const struct pd_call_entry *c)
{
	return atomic_load_explicit(&c->callee, memory_order_relaxed);
}

static inline uint32_t pd_call_entry_owner(const struct pd_call_entry *c)
{
	return atomic_load_explicit(&c->owner, memory_order_relaxed);
}

#endif
