/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the shared-memory rings: order, bounds, concurrency, wake-ups. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/ring.h"
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

static void test_cross_process_wakeup(void)
{
	void *m = ring_mem(16);
	struct pd_ring r;
	pd_ring_bind(&r, m, 16);
	int efd = eventfd(0, EFD_NONBLOCK);
	pid_t pid = fork();
	if (pid == 0) {
		/* Child: consume 1000 values, sleeping whenever the ring is empty. */
		uint64_t sum = 0, v;
		int got = 0;
		while (got < 1000) {
			if (pd_ring_pop(&r, &v) == 0) {
				sum += v;
				got++;
				continue;
			}
			if (pd_ring_wait(&r, efd, -1, 0, 10000) == -ETIMEDOUT)
				_exit(2);
		}
		_exit(sum == 1000 * 1001 / 2 ? 0 : 1);
	}
	int wakes = 0;
	for (uint64_t i = 1; i <= 1000; i++) {
		while (pd_ring_push(&r, i) != 0)
			pd_cpu_relax();
		wakes += pd_ring_notify(&r, efd);
		if (i % 100 == 0)
			usleep(1000); /* let the consumer fall asleep now and then */
	}
	int status;
	waitpid(pid, &status, 0);
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
	CHECK(pd_ring_wait(&r, efd, stop, 0, 10000) == -ECANCELED);
	CHECK(pd_ring_wait(&r, efd, -1, 0, 0) == -ETIMEDOUT);
	CHECK(pd_ring_push(&r, 7) == 0);
	CHECK(pd_ring_wait(&r, efd, stop, 1000, 10000) == 0);
	close(efd);
	close(stop);
	munmap(m, pd_ring_footprint(4));
}

static void test_corrupted_indexes_are_bounded(void)
{
	/* A hostile writer scribbles over the shared part: calls still return. */
	void *m = ring_mem(8);
	struct pd_ring r;
	pd_ring_bind(&r, m, 8);
	memset(m, 0x5a, pd_ring_footprint(8));
	uint64_t v;
	int rc = pd_ring_pop(&r, &v);
	CHECK(rc == 0 || rc == -EAGAIN);
	rc = pd_ring_push(&r, 1);
	CHECK(rc == 0 || rc == -ENOBUFS || rc == -EBUSY);
	CHECK(pd_ring_count(&r) <= 8);
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
