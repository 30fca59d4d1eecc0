/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the shared-memory rings: order, bounds, concurrency, wake-ups. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/ring.h"
#include "shm/waiter.h"
#include "unit.h"

static void *ring_mem(uint32_t cap)
{
	void *m = mmap(NULL, pd_ring_footprint(cap), PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pd_ring_format(m, cap);
	return m;
}

static void test_fifo_and_bounds(void)
{
	struct pd_ring r;
	void *m = ring_mem(8);
	pd_ring_bind(&r, m, 8);
	uint64_t v;
	CHECK(pd_ring_pop(&r, &v) == -EAGAIN);
	for (uint64_t i = 0; i < 8; i++)
		CHECK(pd_ring_push(&r, i * 3) == 0);
	CHECK(pd_ring_push(&r, 99) == -ENOBUFS);
	CHECK(pd_ring_count(&r) == 8);
	for (uint64_t i = 0; i < 8; i++) {
		CHECK(pd_ring_pop(&r, &v) == 0);
		CHECK(v == i * 3);
	}
	CHECK(pd_ring_pop(&r, &v) == -EAGAIN);
	CHECK(pd_ring_looks_empty(&r));
	/* Wrap around many times. */
	for (uint64_t i = 0; i < 1000; i++) {
		CHECK(pd_ring_push(&r, i) == 0);
		CHECK(pd_ring_pop(&r, &v) == 0 && v == i);
	}
	munmap(m, pd_ring_footprint(8));
}

#define PRODUCERS 3
#define PER_PRODUCER 200000

static struct pd_ring shared_ring;
static _Atomic uint64_t consumed_sum, consumed_count;

static void *producer(void *arg)
{
	uint64_t base = (uint64_t)(uintptr_t)arg * PER_PRODUCER;
	for (uint64_t i = 0; i < PER_PRODUCER; i++) {
		while (pd_ring_push(&shared_ring, base + i + 1) != 0)
			pd_cpu_relax();
	}
	return NULL;
}

static void *consumer(void *arg)
{
	(void)arg;
	uint64_t v;
	while (atomic_load(&consumed_count) < (uint64_t)PRODUCERS * PER_PRODUCER) {
		if (pd_ring_pop(&shared_ring, &v) == 0) {
			atomic_fetch_add(&consumed_sum, v);
			atomic_fetch_add(&consumed_count, 1);
		} else {
			pd_cpu_relax();
		}
	}
	return NULL;
}

static void test_mpmc_threads(void)
{
	void *m = ring_mem(64);
	pd_ring_bind(&shared_ring, m, 64);
	pthread_t p[PRODUCERS], c[2];
	for (uintptr_t i = 0; i < PRODUCERS; i++)
		pthread_create(&p[i], NULL, producer, (void *)i);
	for (int i = 0; i < 2; i++)
		pthread_create(&c[i], NULL, consumer, NULL);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(p[i], NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(c[i], NULL);
	uint64_t n = (uint64_t)PRODUCERS * PER_PRODUCER;
	CHECK(atomic_load(&consumed_count) == n);
	CHECK(atomic_load(&consumed_sum) == n * (n + 1) / 2);
	munmap(m, pd_ring_footprint(64));
}

/*
 * The shared part of a ring as ring.c lays it out (private to ring.c): the tests read the
 * sleeper count to see a consumer asleep, and scribble over the indexes. ring_view()
 * checks the layout against the library before any test relies on it.
 */
struct ring_view {
	_Alignas(64) _Atomic uint64_t enqueue_pos;
	_Alignas(64) _Atomic uint64_t dequeue_pos;
	_Alignas(64) _Atomic uint32_t sleepers;
};

static struct ring_view *ring_view(struct pd_ring *r, void *m)
{
	struct ring_view *v = m;
	CHECK(pd_ring_footprint(0) == sizeof(*v));
	CHECK(atomic_load(&v->sleepers) == 0);
	pd_ring_sleep_begin(r);
	CHECK(atomic_load(&v->sleepers) == 1);
	pd_ring_sleep_end(r);
	CHECK(atomic_load(&v->sleepers) == 0);
	return v;
}

/* State letter of a process (field 3 of /proc/PID/stat), or 0. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' ? p[2] : 0;
}

static int64_t mono_ms(void)
{
	return (int64_t)(pd_now_ns() / 1000000u);
}

/*
 * The consumer is asleep in pd_ring_wait: it announced it (sleepers == 1) and blocks in
 * poll (state S; between the announcement and poll it only reads the ring, so it is
 * running then). Waits up to 10 s.
 */
static bool consumer_asleep(struct ring_view *v, pid_t pid)
{
	int64_t deadline = mono_ms() + 10000;
	for (;;) {
		if (atomic_load(&v->sleepers) == 1 && proc_state(pid) == 'S' &&
		    atomic_load(&v->sleepers) == 1)
			return true;
		if (mono_ms() >= deadline)
			return false;
		sched_yield();
	}
}

#define WAKE_BATCHES 10
#define WAKE_PER_BATCH 100

static void test_cross_process_wakeup(void)
{
	void *m = ring_mem(16);
	struct pd_ring r;
	pd_ring_bind(&r, m, 16);
	struct ring_view *view = ring_view(&r, m);
	int efd = eventfd(0, EFD_NONBLOCK);
	/* Nobody sleeps: notify does not touch the eventfd. */
	CHECK(!pd_ring_notify(&r, efd));
	uint64_t cnt;
	CHECK(read(efd, &cnt, sizeof(cnt)) == -1 && errno == EAGAIN);
	const int total = WAKE_BATCHES * WAKE_PER_BATCH;
	pid_t pid = fork();
	if (pid == 0) {
		/* Child: consume every value, sleeping whenever the ring is empty. */
		uint64_t sum = 0, v;
		int got = 0;
		while (got < total) {
			if (pd_ring_pop(&r, &v) == 0) {
				sum += v;
				got++;
				continue;
			}
			if (pd_ring_wait(&r, efd, -1, NULL, 10000) == -ETIMEDOUT)
				_exit(2);
		}
		_exit(sum == (uint64_t)total * (total + 1) / 2 ? 0 : 1);
	}
	/*
	 * Before each batch the consumer has drained the ring and sleeps: the first push of
	 * the batch must write the eventfd (notify true), or the consumer would sleep on
	 * until its timeout. Later pushes of a batch may or may not find it asleep.
	 */
	int wakes = 0, first_wakes = 0, asleep = 0, pushed = 0;
	uint64_t i = 1;
	int64_t deadline = mono_ms() + 20000; /* a consumer that never wakes fills the ring */
	for (int b = 0; b < WAKE_BATCHES && pushed == b * WAKE_PER_BATCH; b++) {
		if (!consumer_asleep(view, pid))
			break;
		asleep++;
		for (int k = 0; k < WAKE_PER_BATCH; k++, i++) {
			int rc;
			while ((rc = pd_ring_push(&r, i)) != 0 && mono_ms() < deadline)
				pd_cpu_relax();
			if (rc != 0)
				break;
			pushed++;
			bool woke = pd_ring_notify(&r, efd);
			wakes += woke;
			if (k == 0)
				first_wakes += woke;
		}
	}
	if (pushed < total)
		kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	CHECK(asleep == WAKE_BATCHES);
	CHECK(pushed == total);
	CHECK(first_wakes == WAKE_BATCHES);
	CHECK(wakes >= WAKE_BATCHES && wakes <= total);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(efd);
	munmap(m, pd_ring_footprint(16));
}

static void test_stop_fd(void)
{
	void *m = ring_mem(4);
	struct pd_ring r;
	pd_ring_bind(&r, m, 4);
	int efd = eventfd(0, EFD_NONBLOCK), stop = eventfd(1, EFD_NONBLOCK);
	CHECK(pd_ring_wait(&r, efd, stop, NULL, 10000) == -ECANCELED);
	CHECK(pd_ring_wait(&r, efd, -1, NULL, 0) == -ETIMEDOUT);
	CHECK(pd_ring_push(&r, 7) == 0);
	struct pd_waiter_attr attr = pd_waiter_attr_default(1000, false);
	struct pd_waiter w;
	pd_waiter_init(&w, &attr);
	CHECK(pd_ring_wait(&r, efd, stop, &w, 10000) == 0);
	close(efd);
	close(stop);
	munmap(m, pd_ring_footprint(4));
}

/* Every call on a ring with corrupted indexes returns what the index arithmetic says. */
static void test_corrupted_indexes_are_bounded(void)
{
	void *m = ring_mem(8);
	struct pd_ring r;
	pd_ring_bind(&r, m, 8);
	struct ring_view *view = ring_view(&r, m);
	uint64_t v = 0;

	/* A hostile writer scribbles 0x5a over everything: indexes and cell sequences all
	 * read 0x5a5a...: the cell at the head looks free for a push and empty for a pop. */
	memset(m, 0x5a, pd_ring_footprint(8));
	CHECK(pd_ring_pop(&r, &v) == -EAGAIN);
	CHECK(pd_ring_count(&r) == 0);
	CHECK(pd_ring_push(&r, 1) == 0);
	CHECK(pd_ring_count(&r) == 1);
	CHECK(pd_ring_pop(&r, &v) == 0 && v == 1);

	/* Cell sequences far ahead of both indexes: every try reloads the index and finds
	 * the same; the retry bound ends the call (push -EBUSY, pop -EAGAIN). */
	pd_ring_format(m, 8);
	uint64_t *cell_seq = (uint64_t *)(view + 1);
	for (int c = 0; c < 8; c++)
		cell_seq[2 * c] = 1ull << 40;
	CHECK(pd_ring_push(&r, 2) == -EBUSY);
	CHECK(pd_ring_pop(&r, &v) == -EAGAIN);

	/* Tail far past the head: the count is clamped to the capacity; head past the tail
	 * (a negative distance): 0. */
	pd_ring_format(m, 8);
	atomic_store(&view->enqueue_pos, 1ull << 40);
	CHECK(pd_ring_count(&r) == 8);
	CHECK(!pd_ring_looks_empty(&r));
	/* The cell at 1 << 40 (slot 0) still has sequence 0: behind, so the ring is full. */
	CHECK(pd_ring_push(&r, 3) == -ENOBUFS);
	atomic_store(&view->enqueue_pos, 0);
	atomic_store(&view->dequeue_pos, 5);
	CHECK(pd_ring_count(&r) == 0);
	CHECK(pd_ring_looks_empty(&r));
	/* The cell at 5 has sequence 5, not 6: empty. */
	CHECK(pd_ring_pop(&r, &v) == -EAGAIN);
	munmap(m, pd_ring_footprint(8));
}

int main(void)
{
	RUN(test_fifo_and_bounds);
	RUN(test_mpmc_threads);
	RUN(test_cross_process_wakeup);
	RUN(test_stop_fd);
	RUN(test_corrupted_indexes_are_bounded);
	return SUMMARY("ring");
}
