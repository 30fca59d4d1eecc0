/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of tenant pools: geometry, alloc/free across processes, sealing, census. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/pool.h"
#include "unit.h"

static struct pd_pool_attr attr(void)
{
	return (struct pd_pool_attr){
	    .tenant = 3, .pool_size = 4u << 20, .buffer_size = 16384, .ring_size = 64, .ninst = 4};
}

static void test_geometry(void)
{
	struct pd_pool_attr a = attr();
	uint32_t n = pd_pool_buffer_count(&a);
	CHECK(n > 200 && n < 256);
	CHECK(pd_pool_file_size(&a) <= a.pool_size);
	a.buffer_size = 100; /* not a multiple of 64 */
	CHECK(pd_pool_buffer_count(&a) == 0);
	a = attr();
	a.ring_size = 48;
	CHECK(pd_pool_buffer_count(&a) == 0);
	a = attr();
	a.pool_size = 1000;
	CHECK(pd_pool_buffer_count(&a) == 0);
}

static void test_alloc_free_all(void)
{
	struct pd_pool_attr a = attr();
	struct pd_pool p;
	CHECK(pd_pool_create(&a, "test", &p) == 0);
	uint32_t n = p.nbuffers;
	uint32_t *got = calloc(n, sizeof(*got));
	char *seen = calloc(n, 1);
	for (uint32_t i = 0; i < n; i++) {
		CHECK(pd_pool_alloc(&p, 1, &got[i]) == 0);
		CHECK(got[i] < n && !seen[got[i]]);
		seen[got[i]] = 1;
	}
	uint32_t extra;
	CHECK(pd_pool_alloc(&p, 1, &extra) == -ENOBUFS);
	uint64_t census[PD_BUF_STATE_COUNT];
	pd_pool_census(&p, census);
	CHECK(census[PD_BUF_FREE] == 0 && census[PD_BUF_ENGINE] == n);
	for (uint32_t i = 0; i < n; i++)
		pd_pool_free(&p, got[i]);
	pd_pool_free(&p, got[0]); /* a double free is ignored */
	pd_pool_census(&p, census);
	CHECK(census[PD_BUF_FREE] == n);
	for (uint32_t i = 0; i < n; i++)
		CHECK(pd_pool_alloc(&p, 1, &got[i]) == 0);
	CHECK(pd_pool_alloc(&p, 1, &extra) == -ENOBUFS);
	CHECK(pd_pool_index_of(&p, pd_pool_buf(&p, 5)) == 5);
	CHECK(pd_pool_index_of(&p, (char *)pd_pool_buf(&p, 5) + 100) == 5);
	CHECK(pd_pool_index_of(&p, p.base) == -1);
	free(got);
	free(seen);
	pd_pool_close(&p);
}

#define XP_ROUNDS 300
#define XP_CHILDREN 2

/* Shared by the parent and the children of test_cross_process. */
struct xp_shared {
	pthread_barrier_t barrier;
	_Atomic uint32_t conflicts; /* buffers found holding another child's mark */
	_Atomic uint32_t attach_failed;
	uint32_t held[XP_ROUNDS][XP_CHILDREN]; /* buffers each child held at the check */
};

/* The mark a child leaves in a buffer it owns: its pid, at both ends of the buffer. */
static void xp_mark(struct pd_pool *c, uint32_t idx, uint64_t mark)
{
	struct pd_msg_hdr *h = pd_pool_buf(c, idx);
	h->request_id = mark;
	memcpy((uint8_t *)h + c->attr.buffer_size - sizeof(mark), &mark, sizeof(mark));
}

static bool xp_marked(struct pd_pool *c, uint32_t idx, uint64_t mark)
{
	struct pd_msg_hdr *h = pd_pool_buf(c, idx);
	uint64_t tail;
	memcpy(&tail, (uint8_t *)h + c->attr.buffer_size - sizeof(tail), sizeof(tail));
	return h->request_id == mark && tail == mark;
}

/*
 * One child: each round, take up to 3/4 of the pool (the two children together want
 * more than there is), mark every buffer taken with its pid, wait until the other child
 * has marked its own, check that every mark is still its own, then give all back. Two
 * processes owning one buffer leave one of them a foreign mark. Failures are recorded,
 * never cut short, so that the other child never waits at the barrier alone.
 */
static void xp_child(struct xp_shared *x, int fd, const struct pd_pool_attr *a, uint32_t k)
{
	struct pd_pool c;
	bool attached = pd_pool_attach(fd, a, &c) == 0;
	if (!attached)
		atomic_fetch_add(&x->attach_failed, 1);
	uint32_t n = attached ? c.nbuffers : 0, want = n * 3 / 4;
	uint32_t *own = calloc(n + 1, sizeof(*own));
	uint64_t mark = (uint64_t)getpid();
	for (int round = 0; round < XP_ROUNDS; round++) {
		uint32_t held = 0;
		while (held < want && pd_pool_alloc(&c, k, &own[held]) == 0)
			xp_mark(&c, own[held++], mark);
		x->held[round][k] = held;
		pthread_barrier_wait(&x->barrier); /* both marked what they own */
		for (uint32_t i = 0; i < held; i++)
			if (!xp_marked(&c, own[i], mark))
				atomic_fetch_add(&x->conflicts, 1);
		pthread_barrier_wait(&x->barrier); /* both checked */
		for (uint32_t i = 0; i < held; i++)
			pd_pool_free(&c, own[i]);
		pthread_barrier_wait(&x->barrier); /* the pool is whole again */
	}
	free(own);
	_exit(0);
}

static void test_cross_process(void)
{
	struct pd_pool_attr a = attr();
	struct pd_pool p;
	CHECK(pd_pool_create(&a, "test", &p) == 0);
	uint32_t n = p.nbuffers;
	struct xp_shared *x =
	    mmap(NULL, sizeof(*x), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(x != MAP_FAILED);
	if (x == MAP_FAILED)
		return;
	memset(x, 0, sizeof(*x));
	pthread_barrierattr_t ba;
	pthread_barrierattr_init(&ba);
	pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
	pthread_barrier_init(&x->barrier, &ba, XP_CHILDREN);
	pthread_barrierattr_destroy(&ba);
	pid_t pids[XP_CHILDREN];
	for (uint32_t k = 0; k < XP_CHILDREN; k++) {
		pids[k] = fork();
		if (pids[k] == 0)
			xp_child(x, p.fd, &a, k);
	}
	/* Reap both within 60 s; a child stuck at the barrier (its peer died) is killed. */
	int exited = 0, ok = 0;
	for (int tick = 0; tick < 6000 && exited < XP_CHILDREN; tick++) {
		for (int k = 0; k < XP_CHILDREN; k++) {
			int status;
			if (pids[k] > 0 && waitpid(pids[k], &status, WNOHANG) == pids[k]) {
				pids[k] = 0;
				exited++;
				ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
			}
		}
		if (exited < XP_CHILDREN)
			usleep(10000);
	}
	for (int k = 0; k < XP_CHILDREN; k++) {
		if (pids[k] > 0) {
			kill(pids[k], SIGKILL);
			waitpid(pids[k], NULL, 0);
		}
	}
	CHECK(ok == XP_CHILDREN);
	CHECK(atomic_load(&x->attach_failed) == 0);
	CHECK(atomic_load(&x->conflicts) == 0);
	/* The children held no more than the pool has, and fought over all of it. */
	uint32_t over = 0, exhausted = 0;
	for (int r = 0; r < XP_ROUNDS; r++) {
		uint32_t sum = x->held[r][0] + x->held[r][1];
		over += sum > n;
		exhausted += sum == n;
	}
	CHECK(over == 0);
	CHECK(exhausted > 0);
	uint64_t census[PD_BUF_STATE_COUNT];
	pd_pool_census(&p, census);
	CHECK(census[PD_BUF_FREE] == n);
	pthread_barrier_destroy(&x->barrier);
	munmap(x, sizeof(*x));
	pd_pool_close(&p);
}

/*
 * The free list is tenant memory: a function can fill it with junk. A buffer the list
 * will not take stays with its holder, counted, rather than FREE off the list where no
 * allocation would ever find it again.
 */
static void test_free_into_a_full_list(void)
{
	struct pd_pool_attr a = attr();
	struct pd_pool p;
	CHECK(pd_pool_create(&a, "test", &p) == 0);
	uint32_t n = p.nbuffers;
	uint32_t *got = calloc(n, sizeof(*got));
	for (uint32_t i = 0; i < n; i++)
		CHECK(pd_pool_alloc(&p, 7, &got[i]) == 0);
	int junk = 0;
	while (pd_ring_push(&p.free_ring, UINT64_MAX) == 0)
		junk++;
	CHECK(junk > 0);
	pd_pool_free(&p, got[0]);
	CHECK(atomic_load(&p.push_failures) == 1 && atomic_load(&p.sh->push_failures) == 1);
	uint64_t census[PD_BUF_STATE_COUNT];
	pd_pool_census(&p, census);
	CHECK(census[PD_BUF_FREE] == 0 && census[PD_BUF_ENGINE] == n);
	CHECK(atomic_load(&p.ctl[got[0]].state) == PD_BUF_ENGINE &&
	      atomic_load(&p.ctl[got[0]].owner) == 7);
	/* Once the junk is gone, the buffer is freed like any other. */
	uint64_t v;
	while (pd_ring_pop(&p.free_ring, &v) == 0)
		CHECK(v == UINT64_MAX);
	for (uint32_t i = 0; i < n; i++)
		CHECK(pd_pool_free(&p, got[i]) == 0);
	pd_pool_census(&p, census);
	CHECK(census[PD_BUF_FREE] == n);
	for (uint32_t i = 0; i < n; i++)
		CHECK(pd_pool_alloc(&p, 1, &got[i]) == 0);
	free(got);
	pd_pool_close(&p);
}

static void test_sealed_and_checked(void)
{
	struct pd_pool_attr a = attr();
	struct pd_pool p;
	CHECK(pd_pool_create(&a, "test", &p) == 0);
	/* A function cannot shrink the pool under the engine. */
	CHECK(ftruncate(p.fd, 4096) != 0);
	/* Attaching with another geometry is refused. */
	struct pd_pool_attr other = a;
	other.pool_size *= 2;
	struct pd_pool c;
	int dup = fcntl(p.fd, F_DUPFD_CLOEXEC, 0);
	CHECK(pd_pool_attach(dup, &other, &c) != 0);
	close(dup);
	/* A garbage index in the shared free list is skipped, never returned. */
	uint32_t idx, held[4];
	for (int i = 0; i < 4; i++)
		CHECK(pd_pool_alloc(&p, 1, &held[i]) == 0);
	for (int i = 0; i < 4; i++)
		CHECK(pd_ring_push(&p.free_ring, 0xffffffffull - (uint64_t)i) == 0);
	uint32_t got = 0;
	while (pd_pool_alloc(&p, 1, &idx) == 0) {
		CHECK(idx < p.nbuffers);
		got++;
	}
	CHECK(got == p.nbuffers - 4);
	pd_pool_close(&p);
}

int main(void)
{
	RUN(test_geometry);
	RUN(test_alloc_free_all);
	RUN(test_cross_process);
	RUN(test_free_into_a_full_list);
	RUN(test_sealed_and_checked);
	return SUMMARY("pool");
}
