/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the call table: ids, stale and forged ids, a full table, deadlines, races. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/calltable.h"
#include "unit.h"

#define CAP 256

static void test_init_capacity(void)
{
	struct pd_calltable t;

	CHECK(pd_calltable_init(&t, 0) == -EINVAL);
	CHECK(pd_calltable_init(&t, 3) == -EINVAL);
	CHECK(pd_calltable_init(&t, 96) == -EINVAL);
	CHECK(pd_calltable_init(&t, PD_CALLTABLE_MAX * 2) == -EINVAL);
	CHECK(pd_calltable_init(&t, 1) == 0);
	pd_calltable_fini(&t);
	pd_calltable_fini(&t); /* twice is harmless */
}

/* Ids are never 0 and unique among outstanding calls; a full table gives -EMFILE. */
static void test_ids_unique_and_full(void)
{
	struct pd_calltable t;
	uint64_t ids[CAP], extra;

	CHECK(pd_calltable_init(&t, CAP) == 0);
	for (uint32_t i = 0; i < CAP; i++) {
		CHECK(pd_calltable_alloc(&t, i % 7, 1000 + i, 3, &ids[i]) == 0);
		CHECK(ids[i] != 0);
		for (uint32_t j = 0; j < i; j++)
			CHECK(ids[j] != ids[i]);
		CHECK(pd_calltable_lookup(&t, ids[i]) != NULL);
	}
	CHECK(pd_calltable_alloc(&t, 0, 0, 0, &extra) == -EMFILE);
	/* One released: exactly one more fits, with a new id. */
	CHECK(pd_calltable_release(&t, ids[17], NULL, NULL) == 0);
	CHECK(pd_calltable_alloc(&t, 1, 2, 3, &extra) == 0);
	CHECK(extra != 0 && extra != ids[17]);
	CHECK((uint32_t)extra == (uint32_t)ids[17]); /* the same slot, a newer generation */
	for (uint32_t i = 0; i < CAP; i++)
		CHECK(i == 17 || extra != ids[i]);
	CHECK(pd_calltable_alloc(&t, 0, 0, 0, &ids[17]) == -EMFILE);
	pd_calltable_fini(&t);
}

/* Reusing one slot many times never gives 0 nor an id it gave before; wrap skips 0. */
static void test_ids_reuse_and_wrap(void)
{
	struct pd_calltable t;
	uint64_t id, prev = 0;

	CHECK(pd_calltable_init(&t, 1) == 0);
	for (int i = 0; i < 100000; i++) {
		CHECK(pd_calltable_alloc(&t, 0, 0, 0, &id) == 0);
		CHECK(id != 0 && id > prev); /* slot 0: the generation grows */
		prev = id;
		CHECK(pd_calltable_release(&t, id, NULL, NULL) == 0);
	}
	/* Force the last generation, then see the wrap: 0xffffffff, then 1. */
	atomic_store(&t.calls[0].word, (uint64_t)UINT32_MAX << 32);
	CHECK(pd_calltable_alloc(&t, 0, 0, 0, &id) == 0);
	CHECK(id == (uint64_t)UINT32_MAX << 32);
	CHECK(pd_calltable_release(&t, id, NULL, NULL) == 0);
	CHECK(pd_calltable_alloc(&t, 0, 0, 0, &id) == 0);
	CHECK(id == UINT64_C(1) << 32);
	CHECK(pd_calltable_lookup(&t, (uint64_t)UINT32_MAX << 32) == NULL);
	pd_calltable_fini(&t);
}

/* The entry of a live id says what alloc and complete put there. */
static void test_lookup_and_complete(void)
{
	struct pd_calltable t;
	const struct pd_call_entry *c;
	enum pd_call_state last;
	uint32_t buf;
	uint64_t a, b;

	CHECK(pd_calltable_init(&t, CAP) == 0);
	CHECK(pd_calltable_alloc(&t, 5, 123456789, 9, &a) == 0);
	CHECK(pd_calltable_alloc(&t, 6, 42, 10, &b) == 0);
	c = pd_calltable_lookup(&t, a);
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(pd_call_entry_state(c) == PD_CALL_SENT);
		CHECK(pd_call_entry_callee(c) == 5 && pd_call_entry_owner(c) == 9);
		CHECK(pd_call_entry_deadline_ns(c) == 123456789);
		CHECK(pd_call_entry_buf(c) == PD_CALL_NO_BUF);
	}
	/* Bad outcomes and buffers are refused and change nothing. */
	CHECK(pd_calltable_complete(&t, a, PD_CALL_TIMED_OUT, 1) == -EINVAL);
	CHECK(pd_calltable_complete(&t, a, PD_CALL_SENT, 1) == -EINVAL);
	CHECK(pd_calltable_complete(&t, a, PD_CALL_FREE, 1) == -EINVAL);
	CHECK(pd_calltable_complete(&t, a, PD_CALL_ANSWERED, PD_CALL_NO_BUF) == -EINVAL);
	CHECK(pd_calltable_complete(&t, a, PD_CALL_ANSWERED, PD_CALL_NO_BUF + 1) == -EINVAL);
	CHECK(c != NULL && pd_call_entry_state(c) == PD_CALL_SENT);

	CHECK(pd_calltable_complete(&t, a, PD_CALL_ANSWERED, 77) == 0);
	CHECK(c != NULL && pd_call_entry_state(c) == PD_CALL_ANSWERED &&
	      pd_call_entry_buf(c) == 77);
	/* A second reply to an answered call: -ESTALE, the first answer stays. */
	CHECK(pd_calltable_complete(&t, a, PD_CALL_ANSWERED, 78) == -ESTALE);
	CHECK(pd_calltable_complete(&t, a, PD_CALL_FAILED, PD_CALL_NO_BUF) == -ESTALE);
	CHECK(c != NULL && pd_call_entry_buf(c) == 77);
	CHECK(pd_calltable_release(&t, a, &last, &buf) == 0);
	CHECK(last == PD_CALL_ANSWERED && buf == 77);

	CHECK(pd_calltable_complete(&t, b, PD_CALL_FAILED, PD_CALL_NO_BUF) == 0);
	c = pd_calltable_lookup(&t, b);
	CHECK(c != NULL && pd_call_entry_state(c) == PD_CALL_FAILED);
	CHECK(pd_calltable_release(&t, b, &last, &buf) == 0);
	CHECK(last == PD_CALL_FAILED && buf == PD_CALL_NO_BUF);
	pd_calltable_fini(&t);
}

/* After release, the id is dead everywhere, also once its slot holds a new call. */
static void test_stale_after_release(void)
{
	struct pd_calltable t;
	const struct pd_call_entry *c;
	enum pd_call_state last;
	uint32_t buf;
	uint64_t old, fresh;

	CHECK(pd_calltable_init(&t, 4) == 0);
	CHECK(pd_calltable_alloc(&t, 1, 100, 1, &old) == 0);
	CHECK(pd_calltable_release(&t, old, &last, &buf) == 0);
	CHECK(last == PD_CALL_SENT && buf == PD_CALL_NO_BUF); /* abandoned while waiting */
	CHECK(pd_calltable_lookup(&t, old) == NULL);
	/* A late reply: refused, the buffer stays the replier's to free. */
	CHECK(pd_calltable_complete(&t, old, PD_CALL_ANSWERED, 5) == -ESTALE);
	CHECK(pd_calltable_release(&t, old, NULL, NULL) == -ESTALE); /* no double release */

	/* The slot is reused (the free list is a stack): the old id still names nothing. */
	CHECK(pd_calltable_alloc(&t, 2, 200, 2, &fresh) == 0);
	CHECK((uint32_t)fresh == (uint32_t)old && fresh != old);
	CHECK(pd_calltable_lookup(&t, old) == NULL);
	CHECK(pd_calltable_complete(&t, old, PD_CALL_ANSWERED, 5) == -ESTALE);
	CHECK(pd_calltable_release(&t, old, NULL, NULL) == -ESTALE);
	c = pd_calltable_lookup(&t, fresh);
	CHECK(c != NULL && pd_call_entry_state(c) == PD_CALL_SENT && pd_call_entry_callee(c) == 2);
	/* The new call gets its own reply. */
	CHECK(pd_calltable_complete(&t, fresh, PD_CALL_ANSWERED, 6) == 0);
	CHECK(c != NULL && pd_call_entry_buf(c) == 6);
	CHECK(pd_calltable_release(&t, fresh, NULL, NULL) == 0);
	pd_calltable_fini(&t);
}

/* Ids nobody handed out: random, slot out of range, wrong generation. */
static void test_forged_ids(void)
{
	struct pd_calltable t;
	uint64_t live[8], forged[64];
	unsigned seed = 12345;
	int n = 0;

	CHECK(pd_calltable_init(&t, 8) == 0);
	for (int i = 0; i < 8; i++)
		CHECK(pd_calltable_alloc(&t, (uint32_t)i, 1000, 0, &live[i]) == 0);
	/* Release and reuse slot 3 so that it has an old generation too. */
	CHECK(pd_calltable_release(&t, live[3], NULL, NULL) == 0);
	CHECK(pd_calltable_alloc(&t, 3, 1000, 0, &live[3]) == 0);

	forged[n++] = 0;
	forged[n++] = live[0] & 0xffffffffu;             /* generation 0 */
	forged[n++] = live[3] - (UINT64_C(1) << 32);     /* the slot's previous generation */
	forged[n++] = live[3] + (UINT64_C(1) << 32);     /* its next one */
	forged[n++] = live[5] ^ (UINT64_C(1) << 63);     /* a far generation */
	forged[n++] = (UINT64_C(1) << 32) | 8;           /* slot == capacity */
	forged[n++] = (UINT64_C(1) << 32) | 0xffffffffu; /* the last slot index */
	forged[n++] = (UINT64_C(1) << 32) | 0x80000000u;
	while (n < 64) {
		uint64_t r = (uint64_t)rand_r(&seed) << 42 ^ (uint64_t)rand_r(&seed) << 21 ^
		             (uint64_t)rand_r(&seed);
		bool is_live = false;

		for (int i = 0; i < 8; i++)
			is_live = is_live || r == live[i];
		if (!is_live)
			forged[n++] = r;
	}
	for (int i = 0; i < n; i++) {
		if (pd_calltable_lookup(&t, forged[i]) != NULL ||
		    pd_calltable_complete(&t, forged[i], PD_CALL_ANSWERED, 1) != -ESTALE ||
		    pd_calltable_release(&t, forged[i], NULL, NULL) != -ESTALE) {
			fprintf(stderr, "  forged id %#llx accepted\n",
			        (unsigned long long)forged[i]);
			unit_case_failed = 1;
		}
	}
	CHECK(pd_calltable_expire(&t, 999, NULL, NULL) == 0);
	/* None of them touched a live call. */
	for (int i = 0; i < 8; i++) {
		const struct pd_call_entry *c = pd_calltable_lookup(&t, live[i]);

		CHECK(c != NULL && pd_call_entry_state(c) == PD_CALL_SENT);
		CHECK(c != NULL && pd_call_entry_callee(c) == (uint32_t)i);
	}
	pd_calltable_fini(&t);
}

struct expired_log {
	int count;
	uint64_t ids[8];
	uint32_t callees[8], owners[8];
};

static void log_expired(void *arg, uint64_t id, uint32_t callee, uint32_t owner)
{
	struct expired_log *log = arg;

	if (log->count < 8) {
		log->ids[log->count] = id;
		log->callees[log->count] = callee;
		log->owners[log->count] = owner;
	}
	log->count++;
}

/* expire at a clock the test feeds: due calls time out once, others are left alone. */
static void test_expire_fed_clock(void)
{
	struct pd_calltable t;
	struct expired_log log = {0};
	const struct pd_call_entry *c;
	uint64_t a, b, d, e;

	CHECK(pd_calltable_init(&t, 16) == 0);
	CHECK(pd_calltable_alloc(&t, 1, 100, 11, &a) == 0);
	CHECK(pd_calltable_alloc(&t, 2, 200, 12, &b) == 0);
	CHECK(pd_calltable_alloc(&t, 3, 300, 13, &d) == 0);
	CHECK(pd_calltable_alloc(&t, 4, 150, 14, &e) == 0);
	CHECK(pd_calltable_complete(&t, e, PD_CALL_ANSWERED, 9) == 0); /* answered in time */

	CHECK(pd_calltable_expire(&t, 99, log_expired, &log) == 0);
	CHECK(log.count == 0);
	CHECK(pd_calltable_expire(&t, 100, log_expired, &log) == 1); /* due at 100: now */
	CHECK(log.count == 1 && log.ids[0] == a && log.callees[0] == 1 && log.owners[0] == 11);
	c = pd_calltable_lookup(&t, a);
	CHECK(c != NULL && pd_call_entry_state(c) == PD_CALL_TIMED_OUT);
	CHECK(pd_calltable_expire(&t, 150, log_expired, &log) == 0); /* a once; e answered */
	CHECK(log.count == 1);
	/* The reply after the deadline: refused. */
	CHECK(pd_calltable_complete(&t, a, PD_CALL_ANSWERED, 3) == -ESTALE);
	CHECK(c != NULL && pd_call_entry_state(c) == PD_CALL_TIMED_OUT);

	CHECK(pd_calltable_expire(&t, 1000, log_expired, &log) == 2);
	CHECK(log.count == 3);
	CHECK((log.ids[1] == b && log.ids[2] == d) || (log.ids[1] == d && log.ids[2] == b));
	c = pd_calltable_lookup(&t, e);
	CHECK(c != NULL && pd_call_entry_state(c) == PD_CALL_ANSWERED && pd_call_entry_buf(c) == 9);
	/* A released call is not expired. */
	CHECK(pd_calltable_release(&t, a, NULL, NULL) == 0);
	CHECK(pd_calltable_alloc(&t, 5, 2000, 15, &a) == 0);
	CHECK(pd_calltable_release(&t, a, NULL, NULL) == 0);
	CHECK(pd_calltable_expire(&t, UINT64_MAX, NULL, NULL) == 0);
	pd_calltable_fini(&t);
}

/* ---- races ---- */

#define RACE_ROUNDS 1000
#define RACE_CALLS 256 /* per round: the two threads sweep the slots in the same order */

static struct pd_calltable race_table;
static pthread_barrier_t race_start, race_end;
static uint64_t race_ids[RACE_CALLS];
static int race_complete_ret[RACE_CALLS];
static uint8_t race_expired[RACE_CALLS]; /* by slot */
static _Atomic uint32_t race_expired_count;

static void *race_completer(void *arg)
{
	(void)arg;
	for (int round = 0; round < RACE_ROUNDS; round++) {
		pthread_barrier_wait(&race_start);
		for (uint32_t i = 0; i < RACE_CALLS; i++)
			race_complete_ret[i] =
			    pd_calltable_complete(&race_table, race_ids[i], PD_CALL_ANSWERED, i);
		pthread_barrier_wait(&race_end);
	}
	return NULL;
}

static void note_expired(void *arg, uint64_t id, uint32_t callee, uint32_t owner)
{
	(void)arg;
	(void)callee;
	(void)owner;
	race_expired[(uint32_t)id]++;
}

static void *race_expirer(void *arg)
{
	(void)arg;
	for (int round = 0; round < RACE_ROUNDS; round++) {
		pthread_barrier_wait(&race_start);
		atomic_store(&race_expired_count,
		             pd_calltable_expire(&race_table, 1000, note_expired, NULL));
		pthread_barrier_wait(&race_end);
	}
	return NULL;
}

/*
 * A reply and the deadline at the same moment: exactly one of them wins, every time. Each
 * round one thread answers RACE_CALLS due calls while another expires them, both walking
 * the slots upwards, so that they meet on the same slot again and again.
 */
static void test_complete_races_expire(void)
{
	pthread_t completer, expirer;
	long answered = 0, timed_out = 0, bad = 0;

	CHECK(pd_calltable_init(&race_table, RACE_CALLS) == 0);
	pthread_barrier_init(&race_start, NULL, 3);
	pthread_barrier_init(&race_end, NULL, 3);
	pthread_create(&completer, NULL, race_completer, NULL);
	pthread_create(&expirer, NULL, race_expirer, NULL);
	for (int round = 0; round < RACE_ROUNDS; round++) {
		uint32_t round_timed_out = 0;

		for (uint32_t i = 0; i < RACE_CALLS; i++) {
			/* A fresh table hands out slots in order: race_ids[i] is slot i. */
			if (pd_calltable_alloc(&race_table, 1, 1000, 0, &race_ids[i]) != 0 ||
			    (uint32_t)race_ids[i] != i)
				bad++;
			race_expired[i] = 0;
		}
		pthread_barrier_wait(&race_start);
		pthread_barrier_wait(&race_end);
		for (uint32_t i = RACE_CALLS; i-- > 0;) {
			enum pd_call_state last = PD_CALL_FREE;
			uint32_t buf = 0;

			if (pd_calltable_release(&race_table, race_ids[i], &last, &buf) != 0)
				bad++;
			if (race_complete_ret[i] == 0 && race_expired[i] == 0 &&
			    last == PD_CALL_ANSWERED && buf == i) {
				answered++;
			} else if (race_complete_ret[i] == -ESTALE && race_expired[i] == 1 &&
			           last == PD_CALL_TIMED_OUT && buf == PD_CALL_NO_BUF) {
				timed_out++;
				round_timed_out++;
			} else if (bad++ < 5) {
				fprintf(stderr,
				        "  round %d call %u: complete %d, expired %u times, final "
				        "state %d buffer %u\n",
				        round, i, race_complete_ret[i], race_expired[i], (int)last,
				        buf);
			}
		}
		if (atomic_load(&race_expired_count) != round_timed_out)
			bad++;
	}
	pthread_join(completer, NULL);
	pthread_join(expirer, NULL);
	pthread_barrier_destroy(&race_start);
	pthread_barrier_destroy(&race_end);
	printf("  %d calls: reply won %ld, deadline won %ld\n", RACE_ROUNDS * RACE_CALLS, answered,
	       timed_out);
	CHECK(bad == 0);
	CHECK(answered + timed_out == (long)RACE_ROUNDS * RACE_CALLS);
	pd_calltable_fini(&race_table);
}

#define CHURN_THREADS 4
#define CHURN_ROUNDS 20000

/* Each thread's calls, for the others to complete: slot ids, 0 when empty. */
static _Atomic uint64_t churn_posted[CHURN_THREADS];
static _Atomic int churn_errors;

static void *churn(void *arg)
{
	uint32_t me = (uint32_t)(uintptr_t)arg;

	for (uint32_t i = 0; i < CHURN_ROUNDS; i++) {
		uint64_t id, other;
		enum pd_call_state last;
		uint32_t buf;
		int ret;

		if (pd_calltable_alloc(&race_table, me, i, me, &id) != 0) {
			atomic_fetch_add(&churn_errors, 1);
			continue;
		}
		atomic_store(&churn_posted[me], id);
		/* Answer a neighbour's call, if it is still there. */
		other = atomic_load(&churn_posted[(me + 1) % CHURN_THREADS]);
		if (other != 0) {
			ret = pd_calltable_complete(&race_table, other, PD_CALL_ANSWERED, me);
			if (ret != 0 && ret != -ESTALE)
				atomic_fetch_add(&churn_errors, 1);
		}
		atomic_store(&churn_posted[me], 0);
		if (pd_calltable_release(&race_table, id, &last, &buf) != 0 ||
		    (last == PD_CALL_ANSWERED && buf != (me + CHURN_THREADS - 1) % CHURN_THREADS) ||
		    (last != PD_CALL_ANSWERED && last != PD_CALL_SENT))
			atomic_fetch_add(&churn_errors, 1);
	}
	return NULL;
}

/*
 * Threads allocating, answering each other's calls and releasing their own: every answer
 * lands on the call it was meant for (its buffer says who sent it) or is refused; no slot
 * is lost.
 */
static void test_threads_churn(void)
{
	pthread_t threads[CHURN_THREADS];
	uint64_t ids[8];

	CHECK(pd_calltable_init(&race_table, 8) == 0);
	for (uintptr_t i = 0; i < CHURN_THREADS; i++)
		pthread_create(&threads[i], NULL, churn, (void *)i);
	for (int i = 0; i < CHURN_THREADS; i++)
		pthread_join(threads[i], NULL);
	CHECK(atomic_load(&churn_errors) == 0);
	for (int i = 0; i < 8; i++)
		CHECK(pd_calltable_alloc(&race_table, 0, 0, 0, &ids[i]) == 0);
	CHECK(pd_calltable_alloc(&race_table, 0, 0, 0, &ids[0]) == -EMFILE);
	pd_calltable_fini(&race_table);
}

/* Two tables seeded differently hand out different ids for the same slot: a process
 * that takes over an instance slot refuses the replies to its predecessor's calls. */
static void test_seed(void)
{
	struct pd_calltable old, fresh;
	uint64_t old_id, new_id;

	CHECK(pd_calltable_init(&old, 4) == 0);
	CHECK(pd_calltable_init(&fresh, 4) == 0);
	CHECK(pd_calltable_alloc(&old, 1, 10, 0, &old_id) == 0);
	pd_calltable_seed(&fresh, 0x9e3779b9u);
	CHECK(pd_calltable_alloc(&fresh, 1, 10, 0, &new_id) == 0);
	CHECK((uint32_t)old_id == (uint32_t)new_id); /* the same slot */
	CHECK(new_id >> 32 == 0x9e3779b9u);
	CHECK(pd_calltable_complete(&fresh, old_id, PD_CALL_ANSWERED, 5) == -ESTALE);
	CHECK(pd_calltable_lookup(&fresh, old_id) == NULL);
	CHECK(pd_calltable_complete(&fresh, new_id, PD_CALL_ANSWERED, 5) == 0);
	/* 0 is not a generation: seeding with it starts at 1. */
	pd_calltable_fini(&fresh);
	CHECK(pd_calltable_init(&fresh, 4) == 0);
	pd_calltable_seed(&fresh, 0);
	CHECK(pd_calltable_alloc(&fresh, 1, 10, 0, &new_id) == 0);
	CHECK(new_id >> 32 == 1);
	pd_calltable_fini(&fresh);
	pd_calltable_fini(&old);
}

int main(void)
{
	RUN(test_seed);
	RUN(test_init_capacity);
	RUN(test_ids_unique_and_full);
	RUN(test_ids_reuse_and_wrap);
	RUN(test_lookup_and_complete);
	RUN(test_stale_after_release);
	RUN(test_forged_ids);
	RUN(test_expire_fed_clock);
	RUN(test_complete_races_expire);
	RUN(test_threads_churn);
	return SUMMARY("calltable");
}
