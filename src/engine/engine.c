/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's network engine: one event loop over the fabric, the tenants' engine-bound
 * rings, the attach and stats sockets and signals. It reads headers and descriptors,
 * never payload.
 */
#include "engine/engine.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "engine/dwrr.h"
#include "engine/engine_internal.h"
#include "shm/msg.h"

#define COMP "engine"

/* ---------------------------------------------------------------- set-up */

static int listen_abstract(const char *name, int type)
{
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	if (n + 1 >= sizeof(sa.sun_path)) {
		close(fd);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path + 1, name, n);
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	if (bind(fd, (struct sockaddr *)&sa, salen) != 0 || listen(fd, 64) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int tenants_init(struct engine *e)
{
	const struct pd_config *cfg = e->cfg;
	memset(e->tenant_map, -1, sizeof(e->tenant_map));
	e->tenants = calloc(cfg->tenants_count, sizeof(*e->tenants));
	if (e->tenants == NULL)
		return -ENOMEM;
	for (uint32_t ti = 0; ti < cfg->tenants_count; ti++) {
		uint32_t ninst = 0;
		for (uint32_t f = 0; f < cfg->functions_count; f++)
			if (cfg->functions[f].tenant_idx == ti &&
			    pd_config_function_on_node(&cfg->functions[f], e->node))
				ninst += cfg->functions[f].instances;
		if (ninst == 0)
			continue;
		struct tenant_rt *t = &e->tenants[e->ntenants];
		e->tenant_map[ti] = (int16_t)e->ntenants;
		e->ntenants++;
		t->tenant = (uint16_t)ti;
		t->conf = &cfg->tenants[ti];
		t->engine_efd = -1;
		for (uint32_t d = 0; d < NDEST; d++)
			t->pend[d].head = t->pend[d].tail = PEND_NONE;
		uint64_t max_timeout = 0;
		for (uint32_t r = 0; r < cfg->routes_count; r++)
			if (cfg->routes[r].tenant_idx == ti &&
			    cfg->routes[r].timeout_ms > max_timeout)
				max_timeout = cfg->routes[r].timeout_ms;
		/* A handler still busy this long after its request timed out is hung. */
		t->hang_ns = (max_timeout + 1000) * 1000000ull;

		struct pd_pool_attr attr = {
		    .tenant = (uint16_t)ti,
		    .pool_size = t->conf->pool,
		    .buffer_size = (uint32_t)t->conf->buffer_size,
		    .ring_size = cfg->engine.ring_size,
		    .ninst = ninst,
		};
		char name[80];
		snprintf(name, sizeof(name), "palladium.%s.%s", e->node_conf->name, t->conf->name);
		int rc = pd_pool_create(&attr, name, &t->pool);
		if (rc != 0) {
			PD_LOG_ERR(COMP, rc, "tenant %s: pool of %lu bytes", t->conf->name,
			           (unsigned long)attr.pool_size);
			return rc;
		}
		t->pool_ok = true;
		t->ninst = (uint16_t)ninst;
		t->pend_next = calloc(t->pool.nbuffers, sizeof(uint32_t));
		t->dest = calloc(t->pool.nbuffers, sizeof(uint16_t));
		if (t->pend_next == NULL || t->dest == NULL)
			return -ENOMEM;
		rc = peers_init(e, t);
		if (rc != 0)
			return rc;
		t->engine_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->engine_efd < 0)
			return -errno;
		rc = engine_watch(e, t->engine_efd, W_RING);
		if (rc != 0)
			return rc;

		rc = pd_fabric_mr_reg(e->fab, t->pool.buffers,
		                      (size_t)t->pool.nbuffers * t->conf->buffer_size, &t->mr);
		if (rc != 0) {
			PD_LOG_ERR(COMP, rc, "tenant %s: register pool with the fabric",
			           t->conf->name);
			return rc;
		}
		/* The receives are shared by the ingress link and every peer link. */
		uint32_t links = 1;
		for (uint32_t n = 0; n < cfg->nodes_count; n++)
			links += t->peers[n].hosts_tenant;
		t->links = links;
		rc = engine_rx_plan(t->pool.nbuffers, links, &t->rx_depth, &t->credits_per_link);
		if (rc != 0) {
			PD_LOG_ERR(COMP, rc,
			           "tenant %s: a pool of %u buffers cannot hold the %u receives "
			           "its %u fabric links need (%u each, at most half the pool)",
			           t->conf->name, t->pool.nbuffers, links * PD_FABRIC_CREDITS_MIN,
			           links, PD_FABRIC_CREDITS_MIN);
			return rc;
		}
		rc = pd_fabric_rx_create(e->fab, (uint16_t)ti, t->rx_depth, &t->rx);
		if (rc != 0) {
			PD_LOG_ERR(COMP, rc, "tenant %s: receive context", t->conf->name);
			return rc;
		}
		t->rx_missing = t->rx_depth;
		rx_post(e, t);
	}
	return 0;
}

static void tenants_fini(struct engine *e)
{
	for (uint32_t i = 0; i < e->ntenants; i++) {
		struct tenant_rt *t = &e->tenants[i];
		if (t->engine_efd >= 0)
			close(t->engine_efd);
		peers_fini(t);
		free(t->pend_next);
		free(t->dest);
	}
}

static void tenants_close_pools(struct engine *e)
{
	for (uint32_t i = 0; i < e->ntenants; i++)
		if (e->tenants[i].pool_ok)
			pd_pool_close(&e->tenants[i].pool);
	free(e->tenants);
	e->tenants = NULL;
}

/* ---------------------------------------------------------------- the loop */

static void handle_signal(struct engine *e)
{
	struct signalfd_siginfo si;
	while (read(e->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			sup_on_sigchld(e);
		else
			e->stopping = true;
	}
}

static void drain_eventfd(int fd)
{
	uint64_t v;
	ssize_t n = read(fd, &v, sizeof(v));
	(void)n;
}

static int poll_work(struct engine *e, uint64_t now)
{
	int work = pd_fabric_progress(e->fab);
	for (uint32_t i = 0; i < e->ntenants; i++) {
		struct tenant_rt *t = &e->tenants[i];
		/* A tenant with a full send queue is not drained: its functions run out of
		 * buffers and wait (backpressure), nothing is dropped. */
		if (t->pend_count < ENGINE_TX_QUEUE) {
			t->last_drained = (uint32_t)route_drain_ring(e, t);
			work += (int)t->last_drained;
		}
		/* Credits or links may have come back: queued tenants take turns again. */
		if (t->pend_count > 0)
			pd_sched_wake(&e->sched, i);
	}
	work += tx_transmit(e, now);
	return work;
}

static void handle_events(struct engine *e, struct epoll_event *evs, int n)
{
	for (int i = 0; i < n; i++) {
		int kind = (int)(evs[i].data.u64 >> 32);
		int fd = (int)(uint32_t)evs[i].data.u64;
		switch (kind) {
		case W_SIGNAL: handle_signal(e); break;
		case W_ATTACH: sup_on_attach_ready(e); break;
		case W_CTL: sup_on_ctl_event(e, fd, evs[i].events); break;
		case W_STATS: stats_on_listen(e); break;
		case W_RING: drain_eventfd(fd); break;
		default: /* fabric: progress runs at the top of the loop */ break;
		}
	}
}

/* Nanoseconds until the pacer lets a held-back send go; 0 if it holds nothing back. */
static uint64_t pacer_wait(struct engine *e, uint64_t now)
{
	uint64_t wait = pd_pacer_wait_ns(&e->pacer, now);
	if (wait == 0 || e->tx_inflight >= ENGINE_TX_WINDOW)
		return 0;
	for (uint32_t i = 0; i < e->ntenants; i++)
		if (e->tenants[i].pend_count > 0)
			return wait;
	return 0;
}

static void run_loop(struct engine *e)
{
	uint64_t next_tick = pd_now_ns() + ENGINE_TICK_MS * 1000000ull;
	uint64_t last_events = 0;
	struct epoll_event evs[32];
	while (!e->stopping) {
		uint64_t now = pd_now_ns();
		e->now = now;
		if (now >= next_tick) {
			sup_tick(e, now);
			peers_tick(e, now);
			for (uint32_t i = 0; i < e->ntenants; i++)
				tx_expire_queues(e, &e->tenants[i], now);
			for (uint32_t i = 0; i < e->ntenants; i++)
				rx_post(e, &e->tenants[i]);
			next_tick = now + ENGINE_TICK_MS * 1000000ull;
		}
		if (poll_work(e, now) > 0) {
			pd_waiter_work(&e->waiter, now);
			/* Busy: the rings and the fabric are polled above; the rest (signals,
			 * attach, control sockets, stats) can wait a little, which saves an
			 * epoll_wait per message under load. */
			if (now - last_events >= ENGINE_BUSY_EVENTS_NS) {
				last_events = now;
				int n = epoll_wait(e->epfd, evs, PD_ARRAY_SIZE(evs), 0);
				if (n > 0)
					handle_events(e, evs, n);
			}
			continue;
		}
		if (pd_waiter_idle(&e->waiter, now) == PD_WAIT_POLL) {
			pd_waiter_relax(&e->waiter);
			continue;
		}
		/* Going to sleep: announce it on every engine ring, then look once more. */
		for (uint32_t i = 0; i < e->ntenants; i++)
			pd_ring_sleep_begin(&e->tenants[i].pool.engine_ring);
		bool busy = pd_fabric_trywait(e->fab) != 0;
		/* Sends waiting for a credit need no polling: credits arrive as completions,
		 * which wake the fabric's wait fds. */
		for (uint32_t i = 0; i < e->ntenants && !busy; i++)
			/* A ring that looks full but gave nothing on the last drain is not
			 * work: a tenant scribbling on its own ring indexes must not keep
			 * the engine from sleeping. A real push still wakes it (eventfd). */
			busy = !pd_ring_looks_empty(&e->tenants[i].pool.engine_ring) &&
			       e->tenants[i].pend_count < ENGINE_TX_QUEUE &&
			       e->tenants[i].last_drained > 0;
		uint64_t wait_ns = next_tick > now ? next_tick - now : 0;
		/* Sends held back by the pacer: wake when the link rate lets the next go. */
		uint64_t paced_ns = pacer_wait(e, now);
		if (paced_ns != 0 && paced_ns < wait_ns)
			wait_ns = paced_ns;
		struct timespec ts = {.tv_sec = (time_t)(wait_ns / 1000000000ull),
		                      .tv_nsec = (long)(wait_ns % 1000000000ull)};
		if (busy)
			ts = (struct timespec){0};
		int n = epoll_pwait2(e->epfd, evs, PD_ARRAY_SIZE(evs), &ts, NULL);
		for (uint32_t i = 0; i < e->ntenants; i++)
			pd_ring_sleep_end(&e->tenants[i].pool.engine_ring);
		if (n > 0) {
			/* It slept: what the events queue gets a fresh stamp. */
			e->now = pd_now_ns();
			handle_events(e, evs, n);
		}
	}
}

int pd_engine_run(const struct pd_config *cfg, uint32_t node_idx)
{
	struct engine eng = {
	    .cfg = cfg,
	    .node = node_idx,
	    .node_conf = &cfg->nodes[node_idx],
	    .epfd = -1,
	    .sigfd = -1,
	    .attach_fd = -1,
	    .stats_fd = -1,
	};
	struct engine *e = &eng;
	int rc;
	struct pd_waiter_attr wattr =
	    pd_waiter_attr_default(cfg->engine.spin_us * 1000, cfg->engine.core == PD_CORE_OWN);
	wattr.fixed = cfg->engine.poll == PD_POLL_FIXED;
	pd_waiter_init(&e->waiter, &wattr);

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigset_t old_mask;
	sigprocmask(SIG_BLOCK, &mask, &old_mask);

	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0) {
		rc = -errno;
		goto out;
	}
	e->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (e->sigfd < 0) {
		rc = -errno;
		goto close_epoll;
	}
	rc = engine_watch(e, e->sigfd, W_SIGNAL);
	if (rc != 0) {
		PD_LOG_ERR(COMP, rc, "epoll_ctl(signalfd)");
		goto close_signal;
	}

	uint8_t key[PD_FABRIC_KEY_LEN];
	int keyed = pd_fabric_key_from_env(key);
	if (keyed < 0) {
		PD_LOG_ERR(COMP, 0, "%s must be 64 hex digits", PD_FABRIC_KEY_ENV);
		rc = -EINVAL;
		goto close_signal;
	}
	if (keyed == 0)
		PD_LOG_WARN(COMP, 0,
		            "no %s: the fabric accepts any peer that can reach %s:%u "
		            "(see docs/security.md)",
		            PD_FABRIC_KEY_ENV, e->node_conf->address, e->node_conf->port);
	struct pd_fabric_attr fattr = {
	    .key = keyed > 0 ? key : NULL,
	    .provider = cfg->fabric.provider,
	    .listen_host = e->node_conf->address,
	    .listen_port = e->node_conf->port,
	    .local_id = (uint16_t)node_idx,
	    .primitive = cfg->fabric.primitive == PD_PRIMITIVE_ONE_SIDED ? PD_FABRIC_ONE_SIDED
	                                                                 : PD_FABRIC_TWO_SIDED,
	    .cb = engine_fabric_callbacks,
	    .app = e,
	};
	rc = pd_fabric_open(&fattr, &e->fab);
	if (rc != 0) {
		PD_LOG_ERR(COMP, rc, "node %s: open fabric provider %s on %s:%u",
		           e->node_conf->name, cfg->fabric.provider, e->node_conf->address,
		           e->node_conf->port);
		goto close_signal;
	}
	rc = tenants_init(e);
	if (rc != 0)
		goto close_tenants;
	uint32_t weights[PD_MAX_TENANTS];
	uint64_t quantum = 0;
	for (uint32_t i = 0; i < e->ntenants; i++) {
		weights[i] = e->tenants[i].conf->weight;
		if (e->tenants[i].conf->buffer_size > quantum)
			quantum = e->tenants[i].conf->buffer_size;
	}
	/* A quantum of at least the largest message: every turn sends something. */
	pd_sched_init(&e->sched, e->ntenants, weights, quantum);
	/* The bucket holds 2 ms at the link rate, and at least the largest message. */
	uint64_t burst = cfg->engine.link_rate / 500;
	pd_pacer_init(&e->pacer, cfg->engine.link_rate, burst > quantum ? burst : quantum,
	              pd_now_ns());
	int fds[PD_MAX_TENANTS + 1];
	int nfds = pd_fabric_wait_fds(e->fab, fds, (int)PD_ARRAY_SIZE(fds));
	for (int i = 0; i < nfds; i++) {
		rc = engine_watch(e, fds[i], W_FABRIC);
		if (rc != 0) {
			PD_LOG_ERR(COMP, rc, "epoll_ctl(fabric wait fd)");
			goto close_tenants;
		}
	}

	snprintf(e->attach_name, sizeof(e->attach_name), "palladium-attach.%d.%s", (int)getpid(),
	         e->node_conf->name);
	e->attach_fd = listen_abstract(e->attach_name, SOCK_SEQPACKET);
	if (e->attach_fd < 0) {
		rc = e->attach_fd;
		PD_LOG_ERR(COMP, rc, "attach socket");
		goto close_tenants;
	}
	rc = engine_watch(e, e->attach_fd, W_ATTACH);
	if (rc != 0) {
		PD_LOG_ERR(COMP, rc, "epoll_ctl(attach socket)");
		goto close_attach;
	}
	rc = pd_engine_stats_socket_path(cfg, node_idx, e->stats_path, sizeof(e->stats_path));
	if (rc == 0)
		rc = e->stats_fd = stats_listen(e->stats_path);
	if (rc < 0) {
		PD_LOG_ERR(COMP, rc, "stats socket %s%s%s%s", e->stats_path,
		           rc == -EADDRINUSE ? " (is another engine of node " : "",
		           rc == -EADDRINUSE ? e->node_conf->name : "",
		           rc == -EADDRINUSE ? " running?)" : "");
		goto close_attach;
	}
	rc = engine_watch(e, e->stats_fd, W_STATS);
	if (rc != 0) {
		PD_LOG_ERR(COMP, rc, "epoll_ctl(stats socket)");
		goto close_stats;
	}

	rc = sup_init(e);
	if (rc != 0)
		goto close_stats;
	PD_LOG_INFO(COMP, "node %s: listening on %s:%u (%s, %s), %u tenant(s)", e->node_conf->name,
	            e->node_conf->address, e->node_conf->port, cfg->fabric.provider,
	            cfg->fabric.primitive == PD_PRIMITIVE_ONE_SIDED ? "one-sided" : "two-sided",
	            e->ntenants);
	e->now = pd_now_ns();
	sup_start_all(e);
	peers_tick(e, pd_now_ns());
	run_loop(e);
	PD_LOG_INFO(COMP, "node %s: stopping", e->node_conf->name);
	sup_stop_all(e, 3000);
	sup_fini(e);
	rc = 0;
close_stats:
	close(e->stats_fd);
	unlink(e->stats_path);
close_attach:
	close(e->attach_fd);
close_tenants:
	/* The fabric first, and with it every tenant's receive context and memory region:
	 * closing its links calls back into the engine (on_down, on_send_done,
	 * on_recv_cancel), which still needs the tenants' queues and pools. */
	if (e->fab != NULL)
		pd_fabric_close(e->fab);
	tenants_fini(e);
	tenants_close_pools(e);
close_signal:
	close(e->sigfd);
close_epoll:
	close(e->epfd);
out:
	/* Take the signals still pending (a second stop signal, a function's SIGCHLD)
	 * before unblocking them: they were the engine's, not the caller's. */
	for (struct timespec zero = {0, 0}; sigtimedwait(&mask, NULL, &zero) > 0;)
		;
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	return rc;
}
