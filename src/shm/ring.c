/* SPDX-License-Identifier: Apache-2.0 */
/* Bounded MPMC rings in shared memory (Vyukov's sequence-numbered cells) and wake-ups. */
#include "shm/ring.h"
#include "shm/waiter.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CACHELINE 64
/* How often a push or pop retries under contention before it gives up. */
#define RETRY_BOUND 4096

struct pd_ring_shared {
	_Alignas(CACHELINE) _Atomic uint64_t enqueue_pos;
	_Alignas(CACHELINE) _Atomic uint64_t dequeue_pos;
	_Alignas(CACHELINE) _Atomic uint32_t sleepers;
};

struct pd_ring_cell {
	_Atomic uint64_t seq;
	uint64_t value;
};

size_t pd_ring_footprint(uint32_t capacity)
{
	return sizeof(struct pd_ring_shared) + (size_t)capacity * sizeof(struct pd_ring_cell);
}

void pd_ring_format(void *mem, uint32_t capacity)
{
	struct pd_ring_shared *sh = mem;
	struct pd_ring_cell *cells = (struct pd_ring_cell *)(sh + 1);
	atomic_init(&sh->enqueue_pos, 0);
	atomic_init(&sh->dequeue_pos, 0);
	atomic_init(&sh->sleepers, 0);
	for (uint32_t i = 0; i < capacity; i++) {
		atomic_init(&cells[i].seq, i);
		cells[i].value = 0;
	}
}

void pd_ring_bind(struct pd_ring *r, void *mem, uint32_t capacity)
{
	r->sh = mem;
	r->cells = (struct pd_ring_cell *)(r->sh + 1);
	r->mask = capacity - 1;
}

int pd_ring_push(struct pd_ring *r, uint64_t value)
{
	uint64_t pos = atomic_load_explicit(&r->sh->enqueue_pos, memory_order_relaxed);
	for (int tries = 0; tries < RETRY_BOUND; tries++) {
		struct pd_ring_cell *cell = &r->cells[pos & r->mask];
		uint64_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
		int64_t dif = (int64_t)(seq - pos);
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&r->sh->enqueue_pos, &pos,
			                                          pos + 1, memory_order_relaxed,
			                                          memory_order_relaxed)) {
				cell->value = value;
				atomic_store_explicit(&cell->seq, pos + 1, memory_order_release);
				return 0;
			}
		} else if (dif < 0) {
			return -ENOBUFS;
		} else {
			pos = atomic_load_explicit(&r->sh->enqueue_pos, memory_order_relaxed);
		}
	}
	return -EBUSY;
}

int pd_ring_pop(struct pd_ring *r, uint64_t *value)
{
	uint64_t pos = atomic_load_explicit(&r->sh->dequeue_pos, memory_order_relaxed);
	for (int tries = 0; tries < RETRY_BOUND; tries++) {
		struct pd_ring_cell *cell = &r->cells[pos & r->mask];
		uint64_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
		int64_t dif = (int64_t)(seq - (pos + 1));
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&r->sh->dequeue_pos, &pos,
			                                          pos + 1, memory_order_relaxed,
			                                          memory_order_relaxed)) {
				*value = cell->value;
				atomic_store_explicit(&cell->seq, pos + r->mask + 1,
				                      memory_order_release);
				return 0;
			}
		} else if (dif < 0) {
			return -EAGAIN;
		} else {
			pos = atomic_load_explicit(&r->sh->dequeue_pos, memory_order_relaxed);
		}
	}
	return -EAGAIN;
}

bool pd_ring_looks_empty(const struct pd_ring *r)
{
	return pd_ring_count(r) == 0;
}

uint32_t pd_ring_count(const struct pd_ring *r)
{
	uint64_t head = atomic_load_explicit(&r->sh->dequeue_pos, memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&r->sh->enqueue_pos, memory_order_acquire);
	/* Untrusted indexes: clamp rather than believe a corrupted distance. */
	if (tail <= head)
		return 0;
	uint64_t n = tail - head;
	return n > (uint64_t)r->mask + 1 ? r->mask + 1 : (uint32_t)n;
}

void pd_ring_sleep_begin(struct pd_ring *r)
{
	atomic_fetch_add_explicit(&r->sh->sleepers, 1, memory_order_seq_cst);
	/* Pairs with the fence in pd_ring_notify: either the producer sees us asleep, or we
	 * see its push when we re-check the ring. */
	atomic_thread_fence(memory_order_seq_cst);
}

void pd_ring_sleep_end(struct pd_ring *r)
{
	atomic_fetch_sub_explicit(&r->sh->sleepers, 1, memory_order_relaxed);
}

bool pd_ring_notify(struct pd_ring *r, int efd)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&r->sh->sleepers, memory_order_relaxed) == 0)
		return false;
	uint64_t one = 1;
	/* EAGAIN means the counter is already non-zero: the consumer will wake anyway. */
	ssize_t n = write(efd, &one, sizeof(one));
	(void)n;
	return true;
}

uint64_t pd_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int pd_ring_wait(struct pd_ring *r, int efd, int stop_fd, struct pd_waiter *w, int timeout_ms)
{
	while (w != NULL) {
		if (!pd_ring_looks_empty(r))
			return 0;
		if (pd_waiter_idle(w, pd_now_ns()) == PD_WAIT_BLOCK)
			break;
		pd_waiter_relax(w);
	}
	pd_ring_sleep_begin(r);
	if (!pd_ring_looks_empty(r)) {
		pd_ring_sleep_end(r);
		return 0;
	}
	struct pollfd pfd[2] = {{.fd = efd, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};
	int rc = poll(pfd, stop_fd >= 0 ? 2 : 1, timeout_ms);
	int err = errno;
	pd_ring_sleep_end(r);
	if (rc < 0)
		return err == EINTR ? -EINTR : -err;
	if (rc == 0)
		return -ETIMEDOUT;
	if (stop_fd >= 0 && (pfd[1].revents & POLLIN))
		return -ECANCELED;
	uint64_t count;
	/* Non-blocking eventfd: several sleepers may race for the same wake-up. */
	ssize_t n = read(efd, &count, sizeof(count));
	(void)n;
	return 0;
}
