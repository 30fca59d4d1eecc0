/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of tenant pools: geometry, alloc/free across processes, sealing, census. */
#include <errno.h>
#include <fcntl.h>
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

static void test_cross_process(void)
{
	struct pd_pool_attr a = attr();
	struct pd_pool p;
	CHECK(pd_pool_create(&a, "test", &p) == 0);
	uint32_t n = p.nbuffers;
	pid_t pids[2];
	for (int k = 0; k < 2; k++) {
		pids[k] = fork();
		if (pids[k] == 0) {
			struct pd_pool c;
			if (pd_pool_attach(p.fd, &a, &c) != 0)
				_exit(3);
			/* Churn: take and give back buffers, writing a pattern into each. */
			for (int round = 0; round < 20000; round++) {
				uint32_t idx;
				if (pd_pool_alloc(&c, (uint32_t)k, &idx) != 0)
					continue;
				struct pd_msg_hdr *h = pd_pool_buf(&c, idx);
				h->request_id = (uint64_t)k << 32 | (uint64_t)round;
				if (h->request_id != ((uint64_t)k << 32 | (uint64_t)round))
					_exit(4);
				pd_pool_free(&c, idx);
			}
			_exit(0);
		}
	}
	for (int k = 0; k < 2; k++) {
		int status;
		waitpid(pids[k], &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	uint64_t census[PD_BUF_STATE_COUNT];
	pd_pool_census(&p, census);
	CHECK(census[PD_BUF_FREE] == n);
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
