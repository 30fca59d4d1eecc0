/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: a hostile tenant controls everything in its own pool (descriptors
 * pushed to the engine ring, buffer headers, buffer states, the ring's own indexes) and
 * the engine drains its ring. The engine must not crash (ASan/UBSan watch), must keep
 * every index it follows in range, and must never write to another tenant's pool. The
 * messages include calls and replies with fuzzed call ids, depths and reply addresses:
 * the engine may answer a call (403, 508) or deliver a reply only inside the tenant.
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
    "engine: { max_call_depth: 3 }\n"
    "nodes: [ { name: n, address: \"127.0.0.1\", port: 7999 } ]\n"
    "tenants:\n"
    "  - { name: hostile, pool: 1MiB, buffer_size: 4KiB }\n"
    "  - { name: victim, pool: 1MiB, buffer_size: 4KiB }\n"
    "functions:\n"
    "  - { name: fh, tenant: hostile, exec: /bin/true, node: n, instances: 2, calls: [fh] }\n"
    "  - { name: fh2, tenant: hostile, exec: /bin/true, node: n }\n"
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
		/* Hostile: slot 0 runs fh (which may call fh), slot 1 fh2 (which may not). */
		t->inst[s].function = ti == 0 ? s : 2;
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

/* The victim's pool as it was before any input: compared whole after each one (memcmp
 * is not instrumented for coverage, so this costs little of the fuzzer's time). */
static uint8_t *victim_copy;

static bool victim_unchanged(void)
{
	const struct pd_pool *v = &tenants[1].pool;
	if (victim_copy == NULL) {
		victim_copy = malloc(v->map_size);
		if (victim_copy == NULL)
			abort();
		memcpy(victim_copy, v->base, v->map_size);
		return true;
	}
	return memcmp(victim_copy, v->base, v->map_size) == 0;
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
	if (!victim_unchanged())
		abort();

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
			/* Calls and replies: the flags above pick the kind. */
			h->depth = (uint16_t)(take(&c, 1) % 5);
			h->call_id = take(&c, 1);
			h->deadline_ms = take(&c, 1);
			h->reply_node = (uint16_t)(take(&c, 1) % 3);
			h->reply_slot = (uint16_t)(take(&c, 1) % 4);
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
	if (!victim_unchanged())
		abort();
	/* And every buffer the engine keeps is a buffer of the hostile pool, queued once. */
	if (t->pend_count > p->nbuffers)
		abort();
	/* A reply it delivered went to the slot it names, as a valid reply. */
	for (uint16_t s = 0; s < t->ninst; s++) {
		uint64_t v;
		while (pd_ring_pop(&p->reply_ring[s], &v) == 0) {
			if (!pd_pool_index_ok(p, v))
				abort();
			if (atomic_load(&p->ctl[v].state) != PD_BUF_IN_REPLY)
				continue; /* the tenant may have changed it since */
			if (atomic_load(&p->ctl[v].owner) != s)
				abort();
		}
	}
	return 0;
}
