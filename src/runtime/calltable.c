/* SPDX-License-Identifier: Apache-2.0 */
/* The call table of a function process: slots for outstanding calls, ids of slot + generation. */
#include <errno.h>
#include <stdlib.h>

#include "runtime/calltable.h"

#define STATE_SHIFT 29
#define STATE_MASK UINT64_C(7)

static uint64_t make_word(uint32_t generation, enum pd_call_state state, uint32_t buf_idx)
{
	return (uint64_t)generation << 32 | (uint64_t)state << STATE_SHIFT | buf_idx;
}

static uint32_t word_generation(uint64_t word)
{
	return (uint32_t)(word >> 32);
}

static enum pd_call_state word_state(uint64_t word)
{
	return (enum pd_call_state)((word >> STATE_SHIFT) & STATE_MASK);
}

static uint64_t make_id(uint32_t slot, uint32_t generation)
{
	return (uint64_t)generation << 32 | slot;
}

/* The generation after g; never 0, so that no id is 0. */
static uint32_t next_generation(uint32_t g)
{
	return g == UINT32_MAX ? 1 : g + 1;
}

/* The slot that id names, or NULL if its slot index is out of range. */
static struct pd_call_entry *slot_of(const struct pd_calltable *t, uint64_t id)
{
	uint32_t slot = (uint32_t)id;

	if (t->calls == NULL || slot >= t->capacity)
		return NULL;
	return &t->calls[slot];
}

int pd_calltable_init(struct pd_calltable *t, uint32_t capacity)
{
	int err;

	*t = (struct pd_calltable){0};
	if (capacity == 0 || capacity > PD_CALLTABLE_MAX || (capacity & (capacity - 1)) != 0)
		return -EINVAL;
	t->calls = calloc(capacity, sizeof(*t->calls));
	if (t->calls == NULL)
		return -ENOMEM;
	t->free_slots = calloc(capacity, sizeof(*t->free_slots));
	if (t->free_slots == NULL) {
		err = -ENOMEM;
		goto free_calls;
	}
	err = -pthread_mutex_init(&t->lock, NULL);
	if (err < 0)
		goto free_slots;
	t->capacity = capacity;
	for (uint32_t i = 0; i < capacity; i++) {
		atomic_init(&t->calls[i].word, make_word(1, PD_CALL_FREE, 0));
		atomic_init(&t->calls[i].deadline_ns, 0);
		atomic_init(&t->calls[i].callee, 0);
		atomic_init(&t->calls[i].owner, 0);
		/* A stack: slot 0 on top, so a fresh table hands out slots in order. */
		t->free_slots[i] = capacity - 1 - i;
	}
	t->free_count = capacity;
	return 0;

free_slots:
	free(t->free_slots);
free_calls:
	free(t->calls);
	*t = (struct pd_calltable){0};
	return err;
}

void pd_calltable_seed(struct pd_calltable *t, uint32_t generation)
{
	if (generation == 0)
		generation = 1;
	for (uint32_t i = 0; i < t->capacity; i++)
		atomic_store_explicit(&t->calls[i].word, make_word(generation, PD_CALL_FREE, 0),
		                      memory_order_relaxed);
}

void pd_calltable_fini(struct pd_calltable *t)
{
	if (t->calls == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->free_slots);
	free(t->calls);
	*t = (struct pd_calltable){0};
}

int pd_calltable_alloc(struct pd_calltable *t, uint32_t callee, uint64_t deadline_ns,
                       uint32_t owner, uint64_t *id)
{
	struct pd_call_entry *call;
	uint32_t slot, generation;

	pthread_mutex_lock(&t->lock);
	if (t->free_count == 0) {
		pthread_mutex_unlock(&t->lock);
		return -EMFILE;
	}
	slot = t->free_slots[--t->free_count];
	pthread_mutex_unlock(&t->lock);

	/*
	 * The slot is FREE and off the free list: no transition can start from it (they all
	 * need a state other than FREE), so it is ours alone until SENT is published.
	 */
	call = &t->calls[slot];
	generation = word_generation(atomic_load_explicit(&call->word, memory_order_relaxed));
	atomic_store_explicit(&call->deadline_ns, deadline_ns, memory_order_relaxed);
	atomic_store_explicit(&call->callee, callee, memory_order_relaxed);
	atomic_store_explicit(&call->owner, owner, memory_order_relaxed);
	atomic_store_explicit(&call->word, make_word(generation, PD_CALL_SENT, PD_CALL_NO_BUF),
	                      memory_order_release);
	*id = make_id(slot, generation);
	return 0;
}

const struct pd_call_entry *pd_calltable_lookup(const struct pd_calltable *t, uint64_t id)
{
	const struct pd_call_entry *call = slot_of(t, id);
	uint64_t word;

	if (call == NULL)
		return NULL;
	word = atomic_load_explicit(&call->word, memory_order_acquire);
	if (word_generation(word) != (uint32_t)(id >> 32) || word_state(word) == PD_CALL_FREE)
		return NULL;
	return call;
}

int pd_calltable_complete(struct pd_calltable *t, uint64_t id, enum pd_call_state outcome,
                          uint32_t buf_idx)
{
	struct pd_call_entry *call = slot_of(t, id);
	uint64_t sent;

	if ((outcome != PD_CALL_ANSWERED && outcome != PD_CALL_FAILED) ||
	    buf_idx > PD_CALL_NO_BUF || (outcome == PD_CALL_ANSWERED && buf_idx == PD_CALL_NO_BUF))
		return -EINVAL;
	if (call == NULL)
		return -ESTALE;
	/*
	 * One compare-and-swap from exactly (this generation, SENT): a released slot has a
	 * newer generation, a call already answered or timed out another state, and either
	 * makes it fail. The acq_rel pairs with the owner's acquire load of the outcome.
	 */
	sent = make_word((uint32_t)(id >> 32), PD_CALL_SENT, PD_CALL_NO_BUF);
	if (!atomic_compare_exchange_strong_explicit(
	        &call->word, &sent, make_word((uint32_t)(id >> 32), outcome, buf_idx),
	        memory_order_acq_rel, memory_order_acquire))
		return -ESTALE;
	return 0;
}

uint32_t pd_calltable_expire(struct pd_calltable *t, uint64_t now_ns,
                             pd_calltable_expired_fn *expired, void *arg)
{
	uint32_t count = 0;

	for (uint32_t slot = 0; slot < t->capacity; slot++) {
		struct pd_call_entry *call = &t->calls[slot];
		uint64_t word = atomic_load_explicit(&call->word, memory_order_acquire);
		uint32_t callee, owner;

		if (word_state(word) != PD_CALL_SENT ||
		    atomic_load_explicit(&call->deadline_ns, memory_order_relaxed) > now_ns)
			continue;
		/*
		 * Read before the swap, which then proves they were this call's: the word
		 * cannot come back to the same generation and SENT without 2^32 releases.
		 */
		callee = atomic_load_explicit(&call->callee, memory_order_relaxed);
		owner = atomic_load_explicit(&call->owner, memory_order_relaxed);
		if (!atomic_compare_exchange_strong_explicit(
		        &call->word, &word,
		        make_word(word_generation(word), PD_CALL_TIMED_OUT, PD_CALL_NO_BUF),
		        memory_order_acq_rel, memory_order_relaxed))
			continue; /* answered, failed or released meanwhile */
		count++;
		if (expired != NULL)
			expired(arg, make_id(slot, word_generation(word)), callee, owner);
	}
	return count;
}

int pd_calltable_release(struct pd_calltable *t, uint64_t id, enum pd_call_state *last,
                         uint32_t *buf_idx)
{
	struct pd_call_entry *call = slot_of(t, id);
	uint32_t generation = (uint32_t)(id >> 32);
	uint64_t word;

	if (call == NULL)
		return -ESTALE;
	word = atomic_load_explicit(&call->word, memory_order_acquire);
	do {
		if (word_generation(word) != generation || word_state(word) == PD_CALL_FREE)
			return -ESTALE;
		/* A reply or the deadline may change the word under us: retry on what it is. */
	} while (!atomic_compare_exchange_weak_explicit(
	    &call->word, &word, make_word(next_generation(generation), PD_CALL_FREE, 0),
	    memory_order_acq_rel, memory_order_acquire));
	if (last != NULL)
		*last = word_state(word);
	if (buf_idx != NULL)
		*buf_idx =
		    word_state(word) == PD_CALL_ANSWERED || word_state(word) == PD_CALL_FAILED
		        ? (uint32_t)word & PD_CALL_NO_BUF
		        : PD_CALL_NO_BUF;

	pthread_mutex_lock(&t->lock);
	t->free_slots[t->free_count++] = (uint32_t)id;
	pthread_mutex_unlock(&t->lock);
	return 0;
}
