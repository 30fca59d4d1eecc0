/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounded lock-free multi-producer multi-consumer rings of 64-bit descriptors, living in
 * shared memory, with an eventfd wake-up protocol that costs no system call while the
 * consumer is busy.
 *
 * The shared part holds only indexes, cells and the sleeper count; capacity and pointers
 * live in each process's private handle, so a process that distrusts the writers of the
 * shared part (the engine) never follows anything read from it. Every loop is bounded.
 */
#ifndef PD_SHM_RING_H
#define PD_SHM_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pd_ring_shared;
struct pd_ring_cell;

struct pd_ring {
	struct pd_ring_shared *sh;
	struct pd_ring_cell *cells;
	uint32_t mask;
};

/* Bytes of shared memory a ring of capacity slots needs (capacity: power of two). */
size_t pd_ring_footprint(uint32_t capacity);
/* Initialise the shared memory of an empty ring (done once, by its creator). */
void pd_ring_format(void *mem, uint32_t capacity);
/* Fill a private handle for a ring formatted at mem with this capacity. */
void pd_ring_bind(struct pd_ring *r, void *mem, uint32_t capacity);

/* 0; -ENOBUFS when full; -EBUSY when it could not get a slot within its retry bound. */
int pd_ring_push(struct pd_ring *r, uint64_t value);
/* 0; -EAGAIN when empty (or no slot could be taken within the retry bound). */
int pd_ring_pop(struct pd_ring *r, uint64_t *value);
/* A racy hint: true if the ring looked empty. */
bool pd_ring_looks_empty(const struct pd_ring *r);
/* A racy count of the descriptors in the ring. */
uint32_t pd_ring_count(const struct pd_ring *r);

/*
 * Wake-up protocol. A consumer about to sleep calls pd_ring_sleep_begin(), checks the
 * ring once more, and only if it is still empty blocks on its eventfd; after waking it
 * calls pd_ring_sleep_end(). A producer calls pd_ring_notify() after each push: it
 * writes the eventfd only if a consumer announced that it sleeps.
 */
void pd_ring_sleep_begin(struct pd_ring *r);
void pd_ring_sleep_end(struct pd_ring *r);
/* Returns true if it wrote the eventfd. */
bool pd_ring_notify(struct pd_ring *r, int efd);

struct pd_waiter;

/*
 * Consumer side in one call: poll the ring while the waiter w says that polling is worth
 * it (w NULL: not at all; see waiter.h), then sleep on efd until notified (or until
 * timeout_ms passes, -1 = no limit). stop_fd (or -1) is polled too and never read: once
 * readable, every waiter returns -ECANCELED. Returns 0 when the ring may have work,
 * -ETIMEDOUT, -EINTR or -ECANCELED. The caller tells w about the work it then finds
 * (pd_waiter_work).
 */
int pd_ring_wait(struct pd_ring *r, int efd, int stop_fd, struct pd_waiter *w, int timeout_ms);

/* A hint to the CPU that we are spinning. */
static inline void pd_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/* Monotonic clock in nanoseconds. */
uint64_t pd_now_ns(void);

#endif
