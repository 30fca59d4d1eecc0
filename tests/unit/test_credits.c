/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the engine's receive plan (engine_rx_plan): how many receives a tenant
 * posts and how many credits each of its fabric links gets. */
#include <errno.h>

#include "common/log.h"
#include "engine/engine_internal.h"
#include "unit.h"

/* Pool sizes in buffers: tiny (below the config's 64), around the 1/4 and 1024 bounds,
 * and large. */
static const uint32_t pools[] = {1,   2,    6,    8,    15,    16,    31,    35,    48,
				 63,  64,   96,   128,  383,   384,   1000,  4095,  4096,
				 4097, 8191, 65536, 1u << 20};

/* Every pool and link count a node can have (the ingress plus up to PD_MAX_NODES - 1
 * peers): the credits of all links together never exceed the receives posted, each link
 * gets at least the fabric's minimum, the receives fit in half the pool, and a plan is
 * refused only when no plan could satisfy that. */
static void credits_never_exceed_receives(void)
{
	for (uint32_t i = 0; i < PD_ARRAY_SIZE(pools); i++) {
		uint32_t nbuf = pools[i];
		for (uint32_t links = 1; links <= PD_MAX_NODES; links++) {
			uint32_t depth = 0;
			uint16_t credits = 0;
			int rc = engine_rx_plan(nbuf, links, &depth, &credits);
			if (rc != 0) {
				CHECK(rc == -ENOBUFS);
				/* Refused only if the minimum cannot fit in half the pool. */
				CHECK(links * PD_FABRIC_CREDITS_MIN > nbuf / 2);
				if (rc != -ENOBUFS || links * PD_FABRIC_CREDITS_MIN <= nbuf / 2)
					fprintf(stderr, "  pool %u links %u: refused (%d)\n", nbuf,
						links, rc);
				continue;
			}
			bool ok = (uint64_t)credits * links <= depth &&
				  credits >= PD_FABRIC_CREDITS_MIN && depth <= nbuf / 2;
			CHECK((uint64_t)credits * links <= depth);
			CHECK(credits >= PD_FABRIC_CREDITS_MIN);
			CHECK(depth <= nbuf / 2);
			if (!ok)
				fprintf(stderr,
					"  pool %u links %u: %u receives, %u credits per link (%u in "
					"all)\n",
					nbuf, links, depth, credits, credits * links);
		}
	}
}

/* The review's example: 64 buffers give 16 receives; 8 links need 24. */
static void many_links_raise_the_receives(void)
{
	uint32_t depth = 0;
	uint16_t credits = 0;
	CHECK(engine_rx_plan(64, 8, &depth, &credits) == 0);
	CHECK(depth >= 8 * PD_FABRIC_CREDITS_MIN && depth <= 32);
	CHECK(credits == PD_FABRIC_CREDITS_MIN);
	/* 11 links need 33 receives: more than half of 64 buffers. */
	CHECK(engine_rx_plan(64, 11, &depth, &credits) == -ENOBUFS);
}

/* Pools with few links keep the plan they had: a quarter of the pool, at most 1024,
 * shared evenly. */
static void few_links_keep_a_quarter(void)
{
	uint32_t depth = 0;
	uint16_t credits = 0;
	CHECK(engine_rx_plan(4096, 1, &depth, &credits) == 0);
	CHECK(depth == 1024 && credits == 1024);
	CHECK(engine_rx_plan(4096, 3, &depth, &credits) == 0);
	CHECK(depth == 1024 && credits == 341);
	CHECK(engine_rx_plan(256, 2, &depth, &credits) == 0);
	CHECK(depth == 64 && credits == 32);
	CHECK(engine_rx_plan(64, 2, &depth, &credits) == 0);
	CHECK(depth == 16 && credits == 8);
}

static void no_links_is_an_error(void)
{
	uint32_t depth = 0;
	uint16_t credits = 0;
	CHECK(engine_rx_plan(4096, 0, &depth, &credits) == -EINVAL);
}

int main(void)
{
	RUN(credits_never_exceed_receives);
	RUN(many_links_raise_the_receives);
	RUN(few_links_keep_a_quarter);
	RUN(no_links_is_an_error);
	return SUMMARY("credits");
}
