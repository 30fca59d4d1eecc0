/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine's statistics socket: where it lives (a private directory, checked), and
 * the key=value lines `palladium stats` reads from it.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "engine/engine_internal.h"
#include "shm/msg.h"

#define COMP "engine"

static void runtime_dir(char *buf, size_t len)
{
	if (geteuid() == 0) {
		snprintf(buf, len, "/run/palladium");
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(buf, len, "%s/palladium-%u", tmp != NULL && tmp[0] == '/' ? tmp : "/tmp",
		         (unsigned)geteuid());
	}
}

int pd_engine_stats_socket_path(const struct pd_config *cfg, uint32_t node_idx, char *buf,
                                size_t len)
{
	const struct pd_config_node *n = &cfg->nodes[node_idx];
	char dir[256];
	runtime_dir(dir, sizeof(dir));
	int w = snprintf(buf, len, "%s/engine.%s.%u.%s.sock", dir, n->address, (unsigned)n->port,
	                 n->name);
	return w < 0 || (size_t)w >= len || (size_t)w >= sizeof(((struct sockaddr_un *)0)->sun_path)
	           ? -ENAMETOOLONG
	           : 0;
}

int engine_private_dir(const char *path, uid_t uid)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return -errno;
	/* It may have been there before: anyone can create a name in /tmp. */
	struct stat st;
	if (lstat(path, &st) != 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (st.st_uid != uid || (st.st_mode & 07777) != 0700)
		return -EPERM;
	return 0;
}

/*
 * Listen on a Unix socket path. A socket file left by an engine that died is replaced;
 * one that still answers belongs to a running engine: -EADDRINUSE.
 */
int stats_listen(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, n);
	char *slash = strrchr(sa.sun_path, '/');
	if (slash != NULL && slash != sa.sun_path) {
		*slash = '\0';
		int rc = engine_private_dir(sa.sun_path, geteuid());
		if (rc != 0)
			PD_LOG_ERR(COMP, rc, "stats socket directory %s: %s", sa.sun_path,
			           rc == -EPERM || rc == -ENOTDIR
			               ? "must be a directory (not a link) of this engine's uid "
			                 "with mode 0700; remove it or fix its owner and mode"
			               : "mkdir or lstat");
		*slash = '/';
		if (rc != 0)
			return rc;
	}
	int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return -errno;
	bool alive = connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(probe);
	if (alive)
		return -EADDRINUSE;
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* ---------------------------------------------------------------- stats */

/* One line per function of tenant t on this node: its instances' counters summed. */
static void stats_functions(FILE *f, const struct engine *e, const struct tenant_rt *t)
{
	for (uint32_t fn = 0; fn < e->cfg->functions_count; fn++) {
		uint64_t v[6] = {0};
		bool here = false;
		for (uint16_t s = 0; s < t->ninst; s++) {
			if (t->inst[s].function != fn)
				continue;
			const struct pd_inst_status *st = t->pool.inst_status[s];
			here = true;
			v[0] += atomic_load(&st->handled);
			v[1] += atomic_load(&st->calls_started);
			v[2] += atomic_load(&st->calls_answered);
			v[3] += atomic_load(&st->calls_failed);
			v[4] += atomic_load(&st->calls_timed_out);
			v[5] += atomic_load(&st->calls_late);
		}
		if (!here)
			continue;
		fprintf(f,
		        "  function %s handled=%" PRIu64 " calls_started=%" PRIu64
		        " calls_answered=%" PRIu64 " calls_failed=%" PRIu64
		        " calls_timed_out=%" PRIu64 " calls_late=%" PRIu64 "\n",
		        e->cfg->functions[fn].name, v[0], v[1], v[2], v[3], v[4], v[5]);
	}
}

static void stats_answer(struct engine *e, int fd)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL)
		return;
	const struct pd_waiter_stats *ws = &e->waiter.stats;
	fprintf(f,
	        "node %s pid %d attach_refused=%" PRIu64 " link_rate=%" PRIu64 " paced=%" PRIu64
	        " poll_budget_ns=%" PRIu64 " idle_arrivals=%" PRIu64 " poll_wins=%" PRIu64
	        " poll_losses=%" PRIu64 " sleeps=%" PRIu64 " polled_ns=%" PRIu64 "\n",
	        e->node_conf->name, (int)getpid(), e->attach_refused, e->pacer.rate, e->paced,
	        pd_waiter_budget(&e->waiter), ws->arrivals, ws->poll_wins, ws->poll_loses,
	        ws->blocks, ws->polled_ns);
	for (uint32_t i = 0; i < e->ntenants; i++) {
		struct tenant_rt *t = &e->tenants[i];
		uint64_t census[PD_BUF_STATE_COUNT];
		pd_pool_census(&t->pool, census);
		uint64_t fn_handled = 0, fn_bad = 0, fn_copied = 0, fn_meta = 0, fn_expired = 0,
		         fn_push_failures = 0;
		for (uint16_t s = 0; s < t->ninst; s++) {
			struct pd_inst_status *st = t->pool.inst_status[s];
			fn_handled += atomic_load(&st->handled);
			fn_bad += atomic_load(&st->bad_input);
			fn_copied += atomic_load(&st->copied_bytes);
			fn_meta += atomic_load(&st->meta_bytes);
			fn_expired += atomic_load(&st->expired);
			fn_push_failures += atomic_load(&st->push_failures);
		}
		const struct tenant_counters *c = &t->c;
		fprintf(
		    f,
		    "tenant %s buffers_total=%u buffers_free=%lu buffers_in_use=%lu "
		    "buffers_rx_posted=%lu msgs_in=%lu bytes_in=%lu msgs_out=%lu bytes_out=%lu "
		    "to_functions=%lu bad_descriptors=%lu bad_headers=%lu dropped=%lu "
		    "engine_payload_copied_bytes=%lu function_payload_copied_bytes=%lu "
		    "function_meta_copied_bytes=%lu function_handled=%lu function_bad_input=%lu "
		    "errors_sent=%lu reclaimed=%lu restarts=%lu hung_killed=%lu "
		    "pending_sends=%u to_peers=%lu from_peers=%lu lost_with_peer=%lu expired=%lu "
		    "function_expired=%lu rx_depth=%u rx_credits=%lu rx_repost_deferred=%lu "
		    "function_push_failures=%" PRIu64 " pool_push_failures=%" PRIu64
		    " calls_routed=%" PRIu64 " replies_routed=%" PRIu64 " calls_refused=%" PRIu64
		    " replies_dropped=%" PRIu64 "\n",
		    t->conf->name, t->pool.nbuffers, census[PD_BUF_FREE],
		    t->pool.nbuffers - census[PD_BUF_FREE] - census[PD_BUF_RX_POSTED],
		    census[PD_BUF_RX_POSTED], c->msgs_in, c->bytes_in, c->msgs_out, c->bytes_out,
		    c->to_functions, c->bad_descriptors, c->bad_headers, c->dropped,
		    c->payload_copied, fn_copied, fn_meta, fn_handled, fn_bad, c->errors_sent,
		    c->reclaimed, c->function_restarts, c->hung_killed, t->pend_count, c->to_peers,
		    c->from_peers, c->lost_with_peer, c->expired, fn_expired, t->rx_depth,
		    (unsigned long)t->credits_per_link * t->links, c->rx_repost_deferred,
		    fn_push_failures, atomic_load(&t->pool.sh->push_failures), c->calls_routed,
		    c->replies_routed, c->calls_refused, c->replies_dropped);
		stats_functions(f, e, t);
		for (uint32_t n = 0; n < e->cfg->nodes_count; n++) {
			const struct peer_link *p = &t->peers[n];
			if (!p->hosts_tenant)
				continue;
			fprintf(f,
			        "  peer %s state=%s sent=%lu received=%lu inflight=%u queued=%u "
			        "lost=%lu\n",
			        e->cfg->nodes[n].name, p->up ? "up" : "down", p->sent, p->received,
			        p->inflight, t->pend[ENGINE_MAX_INGRESS + n].count, p->lost);
		}
		for (uint16_t s = 0; s < t->ninst; s++) {
			const struct instance *in = &t->inst[s];
			static const char *const names[] = {"down", "starting", "running",
			                                    "stopping"};
			fprintf(f, "  instance %s/%u pid=%d state=%s restarts=%u ring=%u\n",
			        e->cfg->functions[in->function].name, (unsigned)s, (int)in->pid,
			        names[in->state], in->restarts,
			        pd_ring_count(&t->pool.inst_ring[s]));
		}
	}
	struct pd_fabric_stats fs;
	pd_fabric_get_stats(e->fab, &fs);
	fprintf(f,
	        "fabric msgs_sent=%lu bytes_sent=%lu msgs_recv=%lu bytes_recv=%lu "
	        "credit_msgs_sent=%lu credit_msgs_recv=%lu send_errors=%lu refused=%lu "
	        "no_credit=%lu writes=%lu grants_sent=%lu grants_recv=%lu\n",
	        fs.msgs_sent, fs.bytes_sent, fs.msgs_recv, fs.bytes_recv, fs.credit_msgs_sent,
	        fs.credit_msgs_recv, fs.send_errors, fs.refused, fs.no_credit, fs.writes,
	        fs.grants_sent, fs.grants_recv);
	fclose(f);
	/* One datagram; large clusters may need a larger limit some day. */
	ssize_t n = send(fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)n;
	free(text);
}

void stats_on_listen(struct engine *e)
{
	int fd = accept4(e->stats_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	stats_answer(e, fd);
	close(fd);
}
