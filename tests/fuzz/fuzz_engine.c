/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: a hostile tenant controls everything in its own pool (descriptors
 * pushed to the engine ring, buffer headers, buffer states, the ring's own indexes) and
 * the engine drains its ring. The engine must not crash (ASan/UBSan watch), must keep
 * every index it follows in range, and must never write to another tenant's pool.
 * Built with the engine's sources (tests/fuzz/meson.build), instrumented for coverage.
 */
#include <string.h>

#include "common/log.h"
#include "engine/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

static const char cluster[] =
    "nodes: [ { name: n, address: \"127.0.0.1\", port: 7999 } ]\n"
    "tenants:\n"
    "  - { name: hostile, pool: 1MiB, buffer_size: 4KiB }\n"
    "  - { name: victim, pool: 1MiB, buffer_size: 4KiB }\n"
    "functions:\n"
    "  - { name: fh, tenant: hostile, exec: /bin/true, node: n, instances: 2 }\n"
    "  - { name: fv, tenant: victim, exec: /bin/true, node: n }\n"
    "routes:\n"
    "  - { path: /h, tenant: hostile, chain: [fh, fh] }\n"
    "  - { path: /v, tenant: victim, chain: [fv] }\n";

static struct pd_config *cfg;
static struct engine eng;
static struct tenant_rt tenants[2];

static void tenant_setup(struct tenant_rt *t, uint16_t ti, uint16_t ninst)
{
	memset(t, 0, sizeof(*t));
	t->tenant = ti;
	t->conf = &cfg->tenants[ti];
	struct pd_pool_attr attr = {.tenant = ti,
	                            .pool_size = t->conf->pool,
	                            .buffer_size = (uint32_t)t->conf->buffer_size,
	                            .ring_size = 16,
	                            .ninst = ninst};
	if (pd_pool_create(&attr, "fuzz", &t->pool) != 0)
		abort();
	t->ninst = ninst;
	for (uint16_t s = 0; s < ninst; s++) {
		t->inst[s].slot = s;
		t->inst[s].tenant = t;
		t->inst[s].function = ti == 0 ? 0 : 1;
		t->inst[s].state = INST_RUNNING;
		t->inst[s].efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	}
	t->pend_next = calloc(t->pool.nbuffers, sizeof(uint32_t));
	t->dest = calloc(t->pool.nbuffers, sizeof(uint16_t));
	for (uint32_t d = 0; d < NDEST; d++)
		t->pend[d].head = t->pend[d].tail = PEND_NONE;
	t->engine_efd = -1;
}

static int init(void)
{
	char path[] = "/tmp/palladium-fuzz-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, cluster, sizeof(cluster) - 1) != (ssize_t)(sizeof(cluster) - 1))
		abort();
	close(fd);
	FILE *null = fopen("/dev/null", "w");
	if (pd_config_load(path, &cfg, null) != 0)
		abort();
	fclose(null);
	unlink(path);
	pd_log_set_level(PD_LOG_ERROR);
	eng.cfg = cfg;
	eng.node = 0;
	eng.node_conf = &cfg->nodes[0];
	eng.tenants = tenants;
	eng.ntenants = 2;
	memset(eng.tenant_map, -1, sizeof(eng.tenant_map));
	eng.tenant_map[0] = 0;
	eng.tenant_map[1] = 1;
	tenant_setup(&tenants[0], 0, 2);
	tenant_setup(&tenants[1], 1, 1);
	uint32_t weights[2] = {1, 1};
	pd_sched_init(&eng.sched, 2, weights, 4096);
	return 0;
}

static uint64_t checksum(const struct pd_pool *p)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < p->map_size; i += 8) {
		uint64_t v;
		memcpy(&v, p->base + i, 8);
		h = (h ^ v) * 1099511628211ull;
	}
	return h;
}

struct cursor {
	const uint8_t *d;
	size_t n;
};

static uint32_t take(struct cursor *c, unsigned bytes)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < bytes && c->n > 0; i++, c->d++, c->n--)
		v = v << 8 | *c->d;
	return v;
}

/* Give every buffer back and empty every ring of the hostile tenant, as a fresh pool. */
static void reset(struct tenant_rt *t)
{
	struct pd_pool_attr attr = t->pool.attr;
	pd_pool_close(&t->pool);
	if (pd_pool_create(&attr, "fuzz", &t->pool) != 0)
		abort();
	for (uint32_t d = 0; d < NDEST; d++)
		t->pend[d] = (struct pend_queue){PEND_NONE, PEND_NONE, 0};
	t->pend_count = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready = -1;
	if (ready < 0)
		ready = init();
	struct tenant_rt *t = &tenants[0];
	struct pd_pool *p = &t->pool;
	reset(t);
	uint64_t victim_before = checksum(&tenants[1].pool);

	struct cursor c = {data, size};
	while (c.n > 0) {
		uint32_t op = take(&c, 1) % 6;
		uint32_t k = take(&c, 2) % p->nbuffers;
		struct pd_msg_hdr *h = pd_pool_buf(p, k);
		switch (op) {
		case 0: /* any descriptor value */
			pd_ring_push(&p->engine_ring, (uint64_t)take(&c, 4) << (take(&c, 1) % 33));
			break;
		case 1: { /* raw bytes into a header */
			uint32_t off = take(&c, 1) % 64, len = take(&c, 1) % 64;
			for (uint32_t i = 0; i < len && c.n > 0; i++)
				((uint8_t *)h)[(off + i) % 128] = (uint8_t)take(&c, 1);
			break;
		}
		case 2: /* any state and owner */
			atomic_store(&p->ctl[k].state, take(&c, 1));
			atomic_store(&p->ctl[k].owner, take(&c, 2));
			break;
		case 3: { /* a plausible header, pushed like a function would */
			memset(h, 0, sizeof(*h));
			h->magic = PD_MSG_MAGIC;
			h->version = PD_MSG_VERSION;
			h->flags = (uint16_t)take(&c, 1);
			h->tenant = (uint16_t)(take(&c, 1) % 3);
			h->route = (uint16_t)(take(&c, 1) % 3);
			h->hop = (uint16_t)(take(&c, 1) % 3);
			h->origin = (uint16_t)(take(&c, 1) % 2);
			h->payload_len = take(&c, 2);
			h->req_meta_len = take(&c, 2);
			h->resp_meta_len = take(&c, 1);
			pd_pool_set(p, k, 0, PD_BUF_TO_ENGINE);
			pd_ring_push(&p->engine_ring, k);
			break;
		}
		case 4: { /* scribble on the ring's own indexes */
			uint8_t *sh = (uint8_t *)p->engine_ring.sh;
			sh[take(&c, 1) % 160] = (uint8_t)take(&c, 1);
			break;
		}
		default: /* let the engine work now and then */ route_drain_ring(&eng, t); break;
		}
	}
	route_drain_ring(&eng, t);
	tx_transmit(&eng, pd_now_ns());

	/* Whatever the hostile tenant did, the engine never touched the victim's pool. */
	if (checksum(&tenants[1].pool) != victim_before)
		abort();
	/* And every buffer the engine keeps is a buffer of the hostile pool, queued once. */
	if (t->pend_count > p->nbuffers)
		abort();
	return 0;
}
