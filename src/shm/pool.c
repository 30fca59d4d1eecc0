/* SPDX-License-Identifier: Apache-2.0 */
/* Tenant pools: a sealed memfd with buffer states, rings and fixed-size buffers. */
#include "shm/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"

#define PAGE 4096u
#define HUGEPAGE (2u * 1024 * 1024)
#define INST_STATUS_SIZE 128u
#define ALLOC_RETRIES 8
/* How often a push that found its ring contended (-EBUSY) is tried again. */
#define PUSH_RETRIES 8

_Static_assert(sizeof(struct pd_inst_status) <= INST_STATUS_SIZE, "status block fits its slot");

struct layout {
	size_t ctl_off, free_off, engine_off, inst_off, inst_stride, buffers_off, total;
	uint32_t nbuffers, list_cap;
};

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

static void compute(const struct pd_pool_attr *attr, uint32_t n, struct layout *l)
{
	l->nbuffers = n;
	l->list_cap = pow2_at_least(n < 2 ? 2 : n);
	l->ctl_off = PAGE;
	l->free_off = align_up(l->ctl_off + (size_t)n * sizeof(struct pd_buf_ctl), 64);
	l->engine_off = align_up(l->free_off + pd_ring_footprint(l->list_cap), 64);
	l->inst_off = align_up(l->engine_off + pd_ring_footprint(l->list_cap), 64);
	/* Per instance: status block, inbound ring, reply ring. */
	l->inst_stride = align_up(INST_STATUS_SIZE + 2 * pd_ring_footprint(attr->ring_size), 64);
	l->buffers_off = align_up(l->inst_off + (size_t)attr->ninst * l->inst_stride, PAGE);
	l->total = l->buffers_off + (size_t)n * attr->buffer_size;
}

static int plan(const struct pd_pool_attr *attr, struct layout *l)
{
	if (attr->buffer_size < PD_MSG_HDR_SIZE + 64 || attr->buffer_size % 64 != 0 ||
	    attr->ring_size < 2 || (attr->ring_size & (attr->ring_size - 1)) != 0 ||
	    attr->ninst > PD_MAX_INSTANCES)
		return -EINVAL;
	uint64_t n = attr->pool_size / attr->buffer_size;
	if (n > UINT32_MAX / 2)
		return -EINVAL;
	compute(attr, (uint32_t)n, l);
	/* Shrink until control area plus buffers fit in the requested size. */
	while (n > 0 && l->total > attr->pool_size) {
		uint64_t over = l->total - attr->pool_size;
		uint64_t drop = over / attr->buffer_size;
		n -= drop > 0 ? (drop < n ? drop : n) : 1;
		compute(attr, (uint32_t)n, l);
	}
	return n > 0 ? 0 : -EINVAL;
}

uint32_t pd_pool_buffer_count(const struct pd_pool_attr *attr)
{
	struct layout l;
	return plan(attr, &l) == 0 ? l.nbuffers : 0;
}

size_t pd_pool_file_size(const struct pd_pool_attr *attr)
{
	struct layout l;
	return plan(attr, &l) == 0 ? l.total : 0;
}

static void bind(struct pd_pool *pool, const struct layout *l)
{
	pool->nbuffers = l->nbuffers;
	pool->sh = (struct pd_pool_shared *)pool->base;
	pool->ctl = (struct pd_buf_ctl *)(pool->base + l->ctl_off);
	pd_ring_bind(&pool->free_ring, pool->base + l->free_off, l->list_cap);
	pd_ring_bind(&pool->engine_ring, pool->base + l->engine_off, l->list_cap);
	for (uint32_t i = 0; i < pool->attr.ninst; i++) {
		uint8_t *slot = pool->base + l->inst_off + i * l->inst_stride;
		pool->inst_status[i] = (struct pd_inst_status *)slot;
		pd_ring_bind(&pool->inst_ring[i], slot + INST_STATUS_SIZE, pool->attr.ring_size);
		pd_ring_bind(&pool->reply_ring[i],
		             slot + INST_STATUS_SIZE + pd_ring_footprint(pool->attr.ring_size),
		             pool->attr.ring_size);
	}
	pool->buffers = pool->base + l->buffers_off;
}

static void format(struct pd_pool *pool, const struct layout *l)
{
	struct pd_pool_shared *sh = pool->sh;
	sh->magic = PD_POOL_MAGIC;
	sh->version = PD_POOL_VERSION;
	sh->tenant = pool->attr.tenant;
	sh->nbuffers = l->nbuffers;
	sh->buffer_size = pool->attr.buffer_size;
	sh->ninst = pool->attr.ninst;
	atomic_init(&sh->alloc_failures, 0);
	atomic_init(&sh->push_failures, 0);
	pd_ring_format(pool->base + l->free_off, l->list_cap);
	pd_ring_format(pool->base + l->engine_off, l->list_cap);
	for (uint32_t i = 0; i < pool->attr.ninst; i++) {
		memset(pool->inst_status[i], 0, INST_STATUS_SIZE);
		uint8_t *rings = pool->base + l->inst_off + i * l->inst_stride + INST_STATUS_SIZE;
		pd_ring_format(rings, pool->attr.ring_size);
		pd_ring_format(rings + pd_ring_footprint(pool->attr.ring_size),
		               pool->attr.ring_size);
	}
	for (uint32_t i = 0; i < l->nbuffers; i++) {
		atomic_init(&pool->ctl[i].owner, PD_OWNER_NONE);
		atomic_init(&pool->ctl[i].state, PD_BUF_FREE);
		int rc = pd_ring_push(&pool->free_ring, i);
		PD_ASSERT(rc == 0);
	}
}

static int map_fd(struct pd_pool *pool, int fd, size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	pool->base = p;
	pool->map_size = size;
	return 0;
}

static int create_memfd(const char *name, size_t size, bool huge)
{
	unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | (huge ? MFD_HUGETLB : 0);
	int fd = memfd_create(name, flags);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	/* A function must not be able to shrink the file under the engine (SIGBUS). */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int pd_pool_create(const struct pd_pool_attr *attr, const char *name, struct pd_pool *pool)
{
	struct layout l;
	int rc = plan(attr, &l);
	if (rc != 0)
		return rc;
	memset(pool, 0, sizeof(*pool));
	pool->attr = *attr;
	pool->owner = true;

	int fd = -1;
	size_t size = l.total;
	size_t huge_size = align_up(l.total, HUGEPAGE);
	fd = create_memfd(name, huge_size, true);
	if (fd >= 0 && map_fd(pool, fd, huge_size) == 0) {
		size = huge_size;
	} else {
		if (fd >= 0)
			close(fd);
		fd = create_memfd(name, size, false);
		if (fd < 0)
			return fd;
		rc = map_fd(pool, fd, size);
		if (rc != 0) {
			close(fd);
			return rc;
		}
	}
	pool->fd = fd;
	bind(pool, &l);
	format(pool, &l);
	return 0;
}

int pd_pool_attach(int fd, const struct pd_pool_attr *attr, struct pd_pool *pool)
{
	struct layout l;
	int rc = plan(attr, &l);
	if (rc != 0)
		return rc;
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	if ((uint64_t)st.st_size < l.total)
		return -EINVAL;
	memset(pool, 0, sizeof(*pool));
	pool->attr = *attr;
	rc = map_fd(pool, fd, (size_t)st.st_size);
	if (rc != 0)
		return rc;
	pool->fd = fd;
	bind(pool, &l);
	if (pool->sh->magic != PD_POOL_MAGIC || pool->sh->version != PD_POOL_VERSION ||
	    pool->sh->nbuffers != l.nbuffers) {
		munmap(pool->base, pool->map_size);
		memset(pool, 0, sizeof(*pool));
		pool->fd = -1;
		return -EPROTO;
	}
	return 0;
}

void pd_pool_close(struct pd_pool *pool)
{
	if (pool->base != NULL)
		munmap(pool->base, pool->map_size);
	if (pool->fd >= 0)
		close(pool->fd);
	pool->base = NULL;
	pool->fd = -1;
}

int pd_pool_alloc(struct pd_pool *pool, uint32_t owner, uint32_t *idx)
{
	for (int i = 0; i < ALLOC_RETRIES; i++) {
		uint64_t v;
		if (pd_ring_pop(&pool->free_ring, &v) != 0)
			break;
		/* The free list is shared with the tenant's functions: never trust an entry. */
		if (!pd_pool_index_ok(pool, v))
			continue;
		uint32_t expected = PD_BUF_FREE;
		if (!atomic_compare_exchange_strong(&pool->ctl[v].state, &expected, PD_BUF_ENGINE))
			continue;
		atomic_store_explicit(&pool->ctl[v].owner, owner, memory_order_relaxed);
		*idx = (uint32_t)v;
		return 0;
	}
	atomic_fetch_add_explicit(&pool->sh->alloc_failures, 1, memory_order_relaxed);
	return -ENOBUFS;
}

int pd_pool_push(struct pd_pool *pool, struct pd_ring *ring, uint32_t idx)
{
	int rc = pd_ring_push(ring, idx);
	for (int i = 0; rc == -EBUSY && i < PUSH_RETRIES; i++) {
		sched_yield(); /* let the producers it collides with finish */
		rc = pd_ring_push(ring, idx);
	}
	if (rc != 0) {
		atomic_fetch_add_explicit(&pool->push_failures, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&pool->sh->push_failures, 1, memory_order_relaxed);
	}
	return rc;
}

void pd_pool_wake_replies(struct pd_pool *pool, uint32_t slot)
{
	struct pd_inst_status *st = pool->inst_status[slot];
	/* Sequentially consistent with the waiters' announcement (pd_reply_wait): either a
	 * waiter sees the new sequence number before it sleeps, or this sees the waiter. */
	atomic_fetch_add(&st->reply_seq, 1);
	if (atomic_load(&st->reply_waiters) != 0)
		syscall(SYS_futex, &st->reply_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

int pd_pool_push_reply(struct pd_pool *pool, uint32_t slot, uint32_t idx)
{
	pd_pool_set(pool, idx, slot, PD_BUF_IN_REPLY);
	int rc = pd_pool_push(pool, &pool->reply_ring[slot], idx);
	if (rc != 0)
		return rc;
	pd_pool_wake_replies(pool, slot);
	return 0;
}

int pd_pool_free(struct pd_pool *pool, uint32_t idx)
{
	PD_ASSERT(idx < pool->nbuffers);
	uint32_t owner = atomic_load_explicit(&pool->ctl[idx].owner, memory_order_relaxed);
	uint32_t prev = atomic_exchange(&pool->ctl[idx].state, PD_BUF_FREE);
	if (prev == PD_BUF_FREE)
		return 0; /* double free: keep the free list free of duplicates */
	atomic_store_explicit(&pool->ctl[idx].owner, PD_OWNER_NONE, memory_order_relaxed);
	/* The free list has room for every buffer, but the tenant's functions can write it
	 * (fill it with junk, contend on it): a buffer that could not be listed stays with
	 * its holder (counted), rather than FREE where no allocation would ever find it. */
	int rc = pd_pool_push(pool, &pool->free_ring, idx);
	if (rc != 0) {
		uint32_t expected = PD_BUF_FREE;
		if (atomic_compare_exchange_strong(&pool->ctl[idx].state, &expected, prev))
			atomic_store_explicit(&pool->ctl[idx].owner, owner, memory_order_relaxed);
	}
	return rc;
}

int64_t pd_pool_index_of(const struct pd_pool *pool, const void *p)
{
	const uint8_t *b = p;
	if (b < pool->buffers)
		return -1;
	size_t off = (size_t)(b - pool->buffers);
	size_t idx = off / pool->attr.buffer_size;
	return idx < pool->nbuffers ? (int64_t)idx : -1;
}

void pd_pool_census(const struct pd_pool *pool, uint64_t counts[PD_BUF_STATE_COUNT])
{
	memset(counts, 0, sizeof(uint64_t) * PD_BUF_STATE_COUNT);
	for (uint32_t i = 0; i < pool->nbuffers; i++) {
		uint32_t s = atomic_load_explicit(&pool->ctl[i].state, memory_order_relaxed);
		if (s < PD_BUF_STATE_COUNT)
			counts[s]++;
	}
}
