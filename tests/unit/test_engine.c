/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the engine's pure helpers: its receive plan (engine_rx_plan: receives a
 * tenant posts, credits each of its fabric links gets), the length it sends of a message
 * (engine_msg_len) and the check of its stats socket directory (engine_private_dir). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "unit.h"

/* Pool sizes in buffers: tiny (below the config's 64), around the 1/4 and 1024 bounds,
 * and large. */
static const uint32_t pools[] = {1,  2,   6,   8,   15,   16,   31,   35,   48,   63,    64,
                                 96, 128, 383, 384, 1000, 4095, 4096, 4097, 8191, 65536, 1u << 20};

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
				fprintf(
				    stderr,
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

static struct pd_msg_hdr valid_hdr(void)
{
	return (struct pd_msg_hdr){
	    .magic = PD_MSG_MAGIC,
	    .version = PD_MSG_VERSION,
	    .flags = PD_MSG_F_RESPONSE,
	    .payload_len = 100,
	    .resp_meta_len = 20,
	};
}

/* The length sent is the header's, only while it fits the buffer: a function that
 * rewrote a length after the engine checked it gets nothing sent. */
static void send_length_is_bounded(void)
{
	struct pd_msg_hdr h = valid_hdr();
	CHECK(engine_msg_len(&h, 16384) == PD_MSG_HDR_SIZE + 120);
	h.payload_len = 16384 - PD_MSG_HDR_SIZE - 20;
	CHECK(engine_msg_len(&h, 16384) == 16384);
	h.payload_len++;
	CHECK(engine_msg_len(&h, 16384) == 0);
	h.payload_len = UINT32_MAX;
	h.req_meta_len = UINT32_MAX;
	h.resp_meta_len = UINT32_MAX;
	CHECK(engine_msg_len(&h, 16384) == 0);
	h = valid_hdr();
	h.magic ^= 1;
	CHECK(engine_msg_len(&h, 16384) == 0);
	h = valid_hdr();
	h.flags = PD_MSG_F_REQUEST | PD_MSG_F_RESPONSE;
	CHECK(engine_msg_len(&h, 16384) == 0);
}

/* The stats socket directory: made 0700 if missing; an existing one is used only if it
 * is a directory of this uid with mode 0700. Anyone can create $TMPDIR/palladium-<uid>
 * first and would otherwise own the stats socket. */
static void stats_dir_must_be_private(void)
{
	char base[] = "/tmp/palladium-test-engine.XXXXXX";
	if (mkdtemp(base) == NULL) {
		CHECK(!"mkdtemp");
		return;
	}
	char dir[sizeof(base) + 16];
	snprintf(dir, sizeof(dir), "%s/d", base);
	uid_t me = geteuid();
	struct stat st;

	/* Missing: created, 0700, ours. */
	CHECK(engine_private_dir(dir, me) == 0);
	CHECK(lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700 &&
	      st.st_uid == me);
	/* Existing and right: accepted again. */
	CHECK(engine_private_dir(dir, me) == 0);
	/* Group or other bits: refused. */
	CHECK(chmod(dir, 0755) == 0);
	CHECK(engine_private_dir(dir, me) == -EPERM);
	CHECK(chmod(dir, 0770) == 0);
	CHECK(engine_private_dir(dir, me) == -EPERM);
	CHECK(chmod(dir, 01777) == 0);
	CHECK(engine_private_dir(dir, me) == -EPERM);
	CHECK(chmod(dir, 0700) == 0);
	/* Another owner: refused (a root-owned directory if this test cannot chown). */
	if (me == 0) {
		CHECK(chown(dir, 65534, 65534) == 0);
		CHECK(engine_private_dir(dir, me) == -EPERM);
		CHECK(chown(dir, 0, 0) == 0);
		CHECK(engine_private_dir(dir, 65534) == -EPERM);
	} else {
		CHECK(engine_private_dir("/", me) == -EPERM);
	}
	CHECK(engine_private_dir(dir, me) == 0);
	/* A symbolic link to a good directory: refused (lstat, not stat). */
	char link[sizeof(base) + 16];
	snprintf(link, sizeof(link), "%s/l", base);
	CHECK(symlink(dir, link) == 0);
	CHECK(engine_private_dir(link, me) == -ENOTDIR);
	/* A file: refused. */
	char file[sizeof(base) + 16];
	snprintf(file, sizeof(file), "%s/f", base);
	FILE *f = fopen(file, "w");
	CHECK(f != NULL);
	if (f != NULL)
		fclose(f);
	CHECK(engine_private_dir(file, me) == -ENOTDIR);
	/* Its parent missing: mkdir's error. */
	char deep[sizeof(base) + 16];
	snprintf(deep, sizeof(deep), "%s/x/y", base);
	CHECK(engine_private_dir(deep, me) == -ENOENT);

	unlink(file);
	unlink(link);
	rmdir(dir);
	CHECK(rmdir(base) == 0);
}

/* pd_engine_run blocks the signals it reads through its signalfd; whichever way it
 * returns, the caller's mask is back (here: a bad cluster key, an early return). */
static void run_restores_the_signal_mask(void)
{
	struct pd_config *cfg = NULL;
	CHECK(pd_config_load(PD_SOURCE_ROOT "/tests/unit/configs/minimal.yaml", &cfg, NULL) == 0);
	if (cfg == NULL)
		return;
	sigset_t before, after;
	sigemptyset(&before);
	sigaddset(&before, SIGUSR1);
	CHECK(sigprocmask(SIG_SETMASK, &before, NULL) == 0);
	CHECK(setenv(PD_FABRIC_KEY_ENV, "not hex", 1) == 0);
	CHECK(pd_engine_run(cfg, 0) == -EINVAL);
	unsetenv(PD_FABRIC_KEY_ENV);
	CHECK(sigprocmask(SIG_SETMASK, NULL, &after) == 0);
	CHECK(sigismember(&after, SIGUSR1) == 1);
	CHECK(sigismember(&after, SIGINT) == 0);
	CHECK(sigismember(&after, SIGTERM) == 0);
	CHECK(sigismember(&after, SIGCHLD) == 0);
	sigemptyset(&before);
	sigprocmask(SIG_SETMASK, &before, NULL);
	pd_config_free(cfg);
}

int main(void)
{
	RUN(credits_never_exceed_receives);
	RUN(many_links_raise_the_receives);
	RUN(few_links_keep_a_quarter);
	RUN(no_links_is_an_error);
	RUN(send_length_is_bounded);
	RUN(stats_dir_must_be_private);
	RUN(run_restores_the_signal_mask);
	return SUMMARY("engine");
}
