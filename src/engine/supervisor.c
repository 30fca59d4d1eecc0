/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine's supervisor: starts the node's function processes, each as its tenant's
 * user when the engine is root, attaches them (pool fd and eventfds over SCM_RIGHTS,
 * identity from SO_PEERCRED: pid and uid), restarts crashed ones with backoff, kills hung
 * ones, and takes back every buffer a dead process held. See docs/security.md.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "engine/engine_internal.h"
#include "engine/identity_internal.h"
#include "shm/attach.h"

#define COMP "supervisor"
#define STABLE_RUN_NS (10ull * 1000000000ull)
/* Attach connections accepted per readiness of the listener (as the ingress's accepts). */
#define ATTACH_ACCEPT_BURST 32

static struct instance *find_pid(struct engine *e, pid_t pid)
{
	for (uint32_t i = 0; i < e->ntenants; i++)
		for (uint16_t s = 0; s < e->tenants[i].ninst; s++)
			if (e->tenants[i].inst[s].pid == pid)
				return &e->tenants[i].inst[s];
	return NULL;
}

static struct instance *find_ctl(struct engine *e, int fd)
{
	for (uint32_t i = 0; i < e->ntenants; i++)
		for (uint16_t s = 0; s < e->tenants[i].ninst; s++)
			if (e->tenants[i].inst[s].ctl_fd == fd)
				return &e->tenants[i].inst[s];
	return NULL;
}

/*
 * Who each tenant's functions run as. As root: its run_as user, or its default identity;
 * two tenants of this node never share a uid. Not root: everyone runs as the engine.
 */
static int resolve_identities(struct engine *e)
{
	const struct pd_config *cfg = e->cfg;
	bool as_root = geteuid() == 0;
	for (uint32_t i = 0; i < e->ntenants; i++) {
		struct tenant_rt *t = &e->tenants[i];
		char why[256] = "";
		int rc = identity_resolve(cfg, t->tenant, as_root, &t->ident, why, sizeof(why));
		if (rc != 0) {
			PD_LOG_ERR(COMP, 0, "tenant %s: %s", t->conf->name, why);
			return rc;
		}
		for (uint32_t k = 0; k < i && as_root; k++) {
			const struct tenant_rt *o = &e->tenants[k];
			if (o->ident.uid != t->ident.uid)
				continue;
			PD_LOG_ERR(COMP, 0,
			           "tenants %s and %s would both run as uid %u: two tenants "
			           "never share a uid (give each its own run_as user)",
			           o->conf->name, t->conf->name, (unsigned)t->ident.uid);
			return -EINVAL;
		}
		char account[64];
		if (as_root && !t->ident.from_run_as &&
		    identity_account_of(t->ident.uid, account, sizeof(account)) == 0)
			PD_LOG_WARN(COMP, 0,
			            "tenant %s: its default uid %u is the account \"%s\" "
			            "of this host, which can therefore trace its functions "
			            "(give the tenant a run_as user)",
			            t->conf->name, (unsigned)t->ident.uid, account);
		if (as_root)
			PD_LOG_INFO(COMP, "tenant %s: functions run as uid %u gid %u (%s)",
			            t->conf->name, (unsigned)t->ident.uid, (unsigned)t->ident.gid,
			            t->ident.from_run_as ? t->conf->run_as : "default identity");
		else if (t->conf->run_as != NULL)
			PD_LOG_WARN(COMP, 0,
			            "tenant %s: run_as \"%s\" is not applied: the engine "
			            "is not root",
			            t->conf->name, t->conf->run_as);
	}
	if (!as_root && e->ntenants > 0)
		PD_LOG_WARN(COMP, 0,
		            "the engine runs as uid %u, not root: the functions of all %u "
		            "tenant(s) on node %s run as uid %u too, so tenants are not "
		            "isolated from each other by uid (see docs/security.md)",
		            (unsigned)geteuid(), e->ntenants, e->node_conf->name,
		            (unsigned)geteuid());
	return 0;
}

int sup_init(struct engine *e)
{
	const struct pd_config *cfg = e->cfg;
	/*
	 * The engine holds every tenant's pool: no other process of its uid (its functions,
	 * when it is not root) may open /proc/<engine>/fd/N, read its memory or ptrace it.
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		int err = -errno;
		PD_LOG_ERR(COMP, err, "prctl(PR_SET_DUMPABLE, 0)");
		return err;
	}
	int rc = resolve_identities(e);
	if (rc != 0)
		return rc;
	for (uint32_t i = 0; i < e->ntenants; i++) {
		struct tenant_rt *t = &e->tenants[i];
		/* Only the engine may open the pool again (e.g. through /proc); its functions
		 * map the descriptor they are given, which needs no permission bits. */
		if (t->pool_ok && fchmod(t->pool.fd, 0600) != 0)
			PD_LOG_WARN(COMP, errno, "tenant %s: fchmod of the pool", t->conf->name);
	}
	for (uint32_t i = 0; i < e->ntenants; i++) {
		struct tenant_rt *t = &e->tenants[i];
		uint16_t slot = 0;
		for (uint32_t f = 0; f < cfg->functions_count; f++) {
			const struct pd_config_function *fc = &cfg->functions[f];
			if (fc->tenant_idx != t->tenant || !pd_config_function_on_node(fc, e->node))
				continue;
			for (uint32_t k = 0; k < fc->instances; k++, slot++) {
				struct instance *in = &t->inst[slot];
				in->function = (uint16_t)f;
				in->slot = slot;
				in->tenant = t;
				in->state = INST_DOWN;
				in->ctl_fd = -1;
				in->backoff_ms = cfg->engine.restart_backoff_ms;
				in->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
				if (in->efd < 0)
					return -errno;
			}
		}
	}
	return 0;
}

/* Try again after the current backoff, and double it for next time. */
static void schedule_restart(struct engine *e, struct instance *in)
{
	in->state = INST_DOWN;
	in->restart_at_ns = pd_now_ns() + in->backoff_ms * 1000000ull;
	in->backoff_ms *= 2;
	if (in->backoff_ms > e->cfg->engine.restart_backoff_max_ms)
		in->backoff_ms = e->cfg->engine.restart_backoff_max_ms;
	in->restarts++;
	in->tenant->c.function_restarts++;
}

/* In a forked child: close every descriptor from fd on. */
static void close_from(int fd)
{
	if (close_range((unsigned)fd, ~0u, 0) == 0)
		return;
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 1 << 20)
		max = 1 << 20;
	for (long i = fd; i < max; i++)
		close((int)i);
}

/* In a forked child: say what failed (stderr is the engine's log) and exit. */
static _Noreturn void child_fail(const char *function, const char *what, int err, int status)
{
	char msg[PATH_MAX + 256];
	int n = snprintf(msg, sizeof(msg), "palladium: function %s (pid %d, uid %u): %s: %s\n",
	                 function, (int)getpid(), (unsigned)getuid(), what, strerror(err));
	if (n > 0) {
		size_t len = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
		ssize_t w = write(STDERR_FILENO, msg, len);
		(void)w;
	}
	_exit(status);
}

static void spawn(struct engine *e, struct instance *in)
{
	const struct pd_config_function *fc = &e->cfg->functions[in->function];
	char path[PATH_MAX];
	/* pd_config_resolve_exec returns its error and leaves errno alone; access sets it. */
	int rc = pd_config_resolve_exec(e->cfg, fc, path, sizeof(path));
	const char *what = fc->exec;
	if (rc == 0) {
		what = path;
		if (access(path, X_OK) != 0)
			rc = -errno;
	}
	if (rc != 0) {
		/* Say it once, then keep trying quietly: the file may yet appear. */
		if (in->restarts == 0 || in->backoff_ms < e->cfg->engine.restart_backoff_max_ms)
			PD_LOG_ERR(COMP, rc, "function %s: cannot execute %s", fc->name, what);
		schedule_restart(e, in);
		return;
	}
	char *argv[1 + PD_MAX_ARGS + 1]; /* the path, the args (the loader caps them), NULL */
	int argc = 0;
	argv[argc++] = path;
	for (uint32_t i = 0; i < fc->args_count && argc < 1 + PD_MAX_ARGS; i++)
		argv[argc++] = fc->args[i];
	argv[argc] = NULL;

	/* Functions start in the cluster file's folder, so that relative paths in their
	 * args mean what they mean in the file (the engine's own folder may be anywhere). */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", e->cfg->path != NULL ? e->cfg->path : ".");
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';

	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		PD_LOG_ERR(COMP, errno, "function %s: fork", fc->name);
		schedule_restart(e, in);
		return;
	}
	if (pid == 0) {
		/* Child: its own process group (terminal signals go to the engine, which
		 * stops it), a clean signal mask, nothing of the engine's but stdio, its
		 * tenant's identity, and death with the engine. */
		setpgid(0, 0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Whatever their close-on-exec flag says, no descriptor of the engine (another
		 * tenant's pool, a fabric socket) may cross into a function. */
		close_from(3);
		const char *step = "";
		rc = identity_apply(&in->tenant->ident, &step);
		if (rc != 0)
			child_fail(fc->name, step, -rc, 126);
		/* Set after the identity change, which clears it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		/* The cluster key is for engines and the ingress, never for functions. */
		unsetenv(PD_FABRIC_KEY_ENV);
		setenv(PD_ENGINE_SOCKET_ENV, e->attach_name, 1);
		setenv("PD_FUNCTION", fc->name, 1);
		setenv("PD_TENANT", in->tenant->conf->name, 1);
		setenv("PD_NODE", e->node_conf->name, 1);
		/* A folder its tenant's identity may not enter: the root, which every
		 * process may (the function then needs absolute paths). */
		if (chdir(dir) != 0 && chdir("/") != 0)
			child_fail(fc->name, "chdir", errno, 126);
		execv(path, argv);
		child_fail(fc->name, path, errno, 127);
	}
	in->pid = pid;
	in->state = INST_STARTING;
	in->killed_hung = false;
	in->started_ns = pd_now_ns();
}

void sup_start_all(struct engine *e)
{
	for (uint32_t i = 0; i < e->ntenants; i++)
		for (uint16_t s = 0; s < e->tenants[i].ninst; s++)
			spawn(e, &e->tenants[i].inst[s]);
}

/* ---------------------------------------------------------------- attach */

/* Send the attach reply with the pool and eventfds. 0, -ENOMEM, or sendmsg's error
 * (-EMSGSIZE if it went out short). */
static int attach_reply(struct engine *e, struct instance *in, int fd)
{
	struct tenant_rt *t = in->tenant;
	const struct pd_config *cfg = e->cfg;
	struct pd_attach_reply *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->magic = PD_ATTACH_MAGIC;
	r->version = PD_ATTACH_VERSION;
	r->tenant = t->tenant;
	r->function = in->function;
	r->slot = in->slot;
	r->threads = (uint16_t)cfg->functions[in->function].threads;
	r->spin_ns = cfg->engine.spin_us * 1000;
	r->poll_fixed = cfg->engine.poll == PD_POLL_FIXED;
	r->node = (uint16_t)e->node;
	r->max_call_depth = (uint16_t)cfg->engine.max_call_depth;
	const struct pd_config_function *fc = &cfg->functions[in->function];
	for (uint32_t k = 0; k < fc->calls_count && k < PD_MAX_CALLS; k++) {
		struct pd_attach_callee *c = &r->callees[r->ncallees++];
		c->function = (uint16_t)fc->calls_idx[k];
		snprintf(c->name, sizeof(c->name), "%s", cfg->functions[fc->calls_idx[k]].name);
	}
	for (uint32_t f = 0; f < cfg->functions_count && f < PD_MAX_FUNCTIONS; f++)
		for (uint32_t k = 0; k < cfg->functions[f].calls_count; k++)
			if (cfg->functions[f].calls_idx[k] == in->function)
				r->callers[r->ncallers++] = (uint16_t)f;
	r->pool = t->pool.attr;
	for (uint32_t ri = 0; ri < cfg->routes_count; ri++) {
		const struct pd_config_route *rc = &cfg->routes[ri];
		if (rc->tenant_idx != t->tenant)
			continue;
		struct pd_attach_route *ar = &r->routes[r->nroutes++];
		ar->route = (uint16_t)ri;
		ar->chain_len = (uint16_t)rc->chain_count;
		ar->timeout_ms = (uint32_t)rc->timeout_ms;
		for (uint32_t k = 0; k < rc->chain_count; k++)
			ar->chain[k] = (uint16_t)rc->chain_idx[k];
	}
	int fds[PD_ATTACH_FIXED_FDS + PD_MAX_INSTANCES];
	fds[0] = t->pool.fd;
	fds[1] = t->engine_efd;
	for (uint16_t s = 0; s < t->ninst; s++) {
		r->inst[s].function = t->inst[s].function;
		r->inst[s].slot = s;
		fds[PD_ATTACH_FIXED_FDS + s] = t->inst[s].efd;
	}
	r->ninst = t->ninst;
	int nfds = PD_ATTACH_FIXED_FDS + t->ninst;

	/* Aligned for struct cmsghdr, which a char array is not. */
	union {
		char buf[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr align;
	} cbuf;
	memset(&cbuf, 0, sizeof(cbuf));
	struct iovec iov = {.iov_base = r, .iov_len = sizeof(*r)};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = cbuf.buf,
	                    .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	int rc = n == (ssize_t)sizeof(*r) ? 0 : n < 0 ? -errno : -EMSGSIZE;
	free(r);
	return rc;
}

static void refuse(int fd, int status)
{
	struct pd_attach_reply *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return;
	r->magic = PD_ATTACH_MAGIC;
	r->version = PD_ATTACH_VERSION;
	r->status = status;
	ssize_t n = send(fd, r, sizeof(*r), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)n;
	free(r);
}

/* Count a refused attach; log it, at most PD_LOG_RATE_BURST lines a second. */
static void note_refused(struct engine *e, const struct ucred *cred, const char *why)
{
	e->attach_refused++;
	if (!pd_log_rate_allow(&e->attach_log, COMP))
		return;
	PD_LOG_WARN(COMP, 0, "refused attach from pid %d uid %u: %s (%lu refused so far)",
	            (int)cred->pid, (unsigned)cred->uid, why, (unsigned long)e->attach_refused);
}

void sup_on_attach_ready(struct engine *e)
{
	/* A burst at a time: the listener stays readable and the loop comes back, but a
	 * process connecting fast cannot keep the engine here. */
	for (int burst = 0; burst < ATTACH_ACCEPT_BURST; burst++) {
		int fd = accept4(e->attach_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
			close(fd);
			continue;
		}
		/* Identity comes from the kernel, never from what the process says: the pid
		 * must be one this engine started and still waits for, and run as its
		 * tenant's identity. */
		struct instance *in = find_pid(e, cred.pid);
		const char *why = NULL;
		if (in == NULL)
			why = "not a process this engine started";
		else if (in->state != INST_STARTING || in->ctl_fd >= 0)
			why = "that process is attached already";
		else if (cred.uid != in->tenant->ident.uid || cred.gid != in->tenant->ident.gid)
			why = "not its tenant's uid and gid";
		if (why != NULL) {
			note_refused(e, &cred, why);
			refuse(fd, -EPERM);
			/* Closing with its hello unread would reset the connection before the
			 * process reads why it was refused. */
			char sink[sizeof(struct pd_attach_hello)];
			for (int k = 0; k < 4 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0;
			     k++)
				;
			close(fd);
			continue;
		}
		int rc = engine_watch(e, fd, W_CTL);
		if (rc != 0) {
			/* Unwatched, its hello would never be read and the process would wait
			 * for ever: stop it, it is restarted like a crashed one. */
			PD_LOG_ERR(COMP, rc, "function %s pid %d: epoll_ctl(attach connection)",
			           e->cfg->functions[in->function].name, (int)in->pid);
			close(fd);
			kill(in->pid, SIGKILL);
			continue;
		}
		in->ctl_fd = fd;
	}
}

static void close_ctl(struct engine *e, struct instance *in)
{
	if (in->ctl_fd < 0)
		return;
	engine_unwatch(e, in->ctl_fd);
	close(in->ctl_fd);
	in->ctl_fd = -1;
}

void sup_on_ctl_event(struct engine *e, int fd, uint32_t events)
{
	struct instance *in = find_ctl(e, fd);
	if (in == NULL) {
		engine_unwatch(e, fd);
		close(fd);
		return;
	}
	if (events & EPOLLIN) {
		struct pd_attach_hello hello;
		ssize_t n = recv(fd, &hello, sizeof(hello), MSG_DONTWAIT);
		if (n == (ssize_t)sizeof(hello) && hello.magic == PD_ATTACH_MAGIC &&
		    hello.version == PD_ATTACH_VERSION && in->state == INST_STARTING) {
			int rc = attach_reply(e, in, fd);
			if (rc != 0) {
				/* Not attached: it never runs. Stop it; it is restarted like a
				 * crashed one. */
				PD_LOG_WARN(COMP, rc, "function %s pid %d: attach reply",
				            e->cfg->functions[in->function].name, (int)in->pid);
				close_ctl(e, in);
				if (in->pid > 0)
					kill(in->pid, SIGKILL);
				return;
			}
			in->state = INST_RUNNING;
			PD_LOG_DEBUG(COMP, "function %s pid %d attached",
			             e->cfg->functions[in->function].name, (int)in->pid);
			return;
		}
		if (n > 0 || in->state != INST_RUNNING) {
			/* Anything else on the socket is a protocol error: stop the process. */
			refuse(fd, -EPROTO);
			close_ctl(e, in);
			if (in->pid > 0)
				kill(in->pid, SIGKILL);
			return;
		}
	}
	if (events & (EPOLLHUP | EPOLLERR))
		close_ctl(e, in);
}

/* ---------------------------------------------------------------- death and reclaim */

/*
 * Take back what a dead instance held. Requests it was working on fail with 502 to their
 * client, calls it was answering with 502 to their caller; replies to its own calls
 * (held, or still in its reply ring) and the calls it was writing are freed.
 */
static void reclaim(struct engine *e, struct instance *in)
{
	struct tenant_rt *t = in->tenant;
	uint64_t failed[64];
	int nfailed = 0;
	/* Its reply ring: nobody else takes from it while the instance is down. */
	uint64_t v;
	for (uint32_t k = 0; k <= t->pool.attr.ring_size; k++) {
		if (pd_ring_pop(&t->pool.reply_ring[in->slot], &v) != 0)
			break;
		uint32_t expected = PD_BUF_IN_REPLY;
		if (pd_pool_index_ok(&t->pool, v) &&
		    atomic_load(&t->pool.ctl[v].owner) == in->slot &&
		    atomic_compare_exchange_strong(&t->pool.ctl[v].state, &expected,
		                                   PD_BUF_ENGINE)) {
			t->c.reclaimed++;
			pd_pool_free(&t->pool, (uint32_t)v);
		}
	}
	for (uint32_t i = 0; i < t->pool.nbuffers; i++) {
		struct pd_buf_ctl *c = &t->pool.ctl[i];
		uint32_t state = atomic_load(&c->state);
		if (atomic_load(&c->owner) != in->slot ||
		    (state != PD_BUF_IN_FUNCTION && state != PD_BUF_IN_REPLY))
			continue;
		if (!atomic_compare_exchange_strong(&c->state, &state, PD_BUF_ENGINE))
			continue;
		atomic_store(&c->owner, PD_OWNER_ENGINE);
		t->c.reclaimed++;
		struct pd_msg_hdr snap;
		pd_msg_hdr_snapshot(&snap, pd_pool_buf(&t->pool, i));
		if (state == PD_BUF_IN_REPLY ||
		    pd_msg_validate(&snap, t->conf->buffer_size, 0) != 0 ||
		    snap.tenant != t->tenant) {
			pd_pool_free(&t->pool, i);
			continue;
		}
		unsigned kind = pd_msg_kind(&snap);
		if (kind == PD_MSG_F_CALL) {
			/* A call it was answering: its caller gets the 502. One it was making
			 * (its own reply address) goes nowhere. */
			if (snap.reply_node == e->node && snap.reply_slot == in->slot)
				pd_pool_free(&t->pool, i);
			else
				tx_reply_error(e, t, i, 502, "called function crashed\n");
			continue;
		}
		if (kind == PD_MSG_F_REPLY) {
			pd_pool_free(&t->pool, i);
			continue;
		}
		bool dup = false;
		for (int k = 0; k < nfailed; k++)
			dup |= failed[k] == snap.request_id;
		if (dup) {
			pd_pool_free(&t->pool, i);
			continue;
		}
		if (nfailed < (int)PD_ARRAY_SIZE(failed))
			failed[nfailed++] = snap.request_id;
		tx_reply_error(e, t, i, 502, "function crashed\n");
	}
}

void sup_on_sigchld(struct engine *e)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		struct instance *in = find_pid(e, pid);
		if (in == NULL)
			continue;
		const char *name = e->cfg->functions[in->function].name;
		bool expected = in->state == INST_STOPPING || e->stopping;
		close_ctl(e, in);
		in->pid = 0;
		reclaim(e, in);
		in->state = INST_DOWN;
		if (expected) {
			in->restart_at_ns = 0;
			continue;
		}
		uint64_t now = pd_now_ns();
		if (now - in->started_ns > STABLE_RUN_NS)
			in->backoff_ms = e->cfg->engine.restart_backoff_ms;
		if (WIFSIGNALED(status))
			PD_LOG_WARN(
			    COMP, 0, "function %s pid %d killed by signal %d; restart in %lu ms",
			    name, (int)pid, WTERMSIG(status), (unsigned long)in->backoff_ms);
		else
			PD_LOG_WARN(COMP, 0,
			            "function %s pid %d exited with status %d; restart in "
			            "%lu ms",
			            name, (int)pid, WEXITSTATUS(status),
			            (unsigned long)in->backoff_ms);
		schedule_restart(e, in);
	}
}

/* Kill instances that hold a request far longer than any of its routes allows. */
static void find_hung(struct engine *e, struct tenant_rt *t, uint64_t now)
{
	for (uint32_t i = 0; i < t->pool.nbuffers; i++) {
		struct pd_buf_ctl *c = &t->pool.ctl[i];
		if (atomic_load_explicit(&c->state, memory_order_relaxed) != PD_BUF_IN_FUNCTION)
			continue;
		uint64_t since = atomic_load_explicit(&c->since_ns, memory_order_relaxed);
		if (since == 0 || since > now || now - since < t->hang_ns)
			continue;
		uint32_t owner = atomic_load_explicit(&c->owner, memory_order_relaxed);
		if (owner >= t->ninst)
			continue;
		struct instance *in = &t->inst[owner];
		if (in->state == INST_RUNNING && in->pid > 0 && !in->killed_hung) {
			PD_LOG_WARN(COMP, 0, "function %s pid %d is stuck on a request: killing it",
			            e->cfg->functions[in->function].name, (int)in->pid);
			/* Its death is handled like a crash: reclaim, 502s, restart. */
			kill(in->pid, SIGKILL);
			in->killed_hung = true;
			t->c.hung_killed++;
			atomic_store(&c->since_ns, 0);
		}
	}
}

void sup_tick(struct engine *e, uint64_t now)
{
	for (uint32_t i = 0; i < e->ntenants; i++) {
		struct tenant_rt *t = &e->tenants[i];
		find_hung(e, t, now);
		for (uint16_t s = 0; s < t->ninst; s++) {
			struct instance *in = &t->inst[s];
			if (in->state == INST_DOWN && in->restart_at_ns != 0 &&
			    now >= in->restart_at_ns && !e->stopping)
				spawn(e, in);
		}
	}
}

int sup_stop_all(struct engine *e, int timeout_ms)
{
	int alive = 0;
	for (uint32_t i = 0; i < e->ntenants; i++)
		for (uint16_t s = 0; s < e->tenants[i].ninst; s++) {
			struct instance *in = &e->tenants[i].inst[s];
			if (in->pid > 0) {
				in->state = INST_STOPPING;
				kill(in->pid, SIGTERM);
				alive++;
			}
		}
	uint64_t deadline = pd_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	while (alive > 0) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid > 0) {
			struct instance *in = find_pid(e, pid);
			if (in != NULL) {
				in->pid = 0;
				alive--;
			}
			continue;
		}
		if (pid < 0 && errno == ECHILD)
			break;
		if (pd_now_ns() >= deadline) {
			for (uint32_t i = 0; i < e->ntenants; i++)
				for (uint16_t s = 0; s < e->tenants[i].ninst; s++) {
					struct instance *in = &e->tenants[i].inst[s];
					if (in->pid > 0) {
						PD_LOG_WARN(COMP, 0,
						            "function %s pid %d did not stop: "
						            "killing it",
						            e->cfg->functions[in->function].name,
						            (int)in->pid);
						kill(in->pid, SIGKILL);
						waitpid(in->pid, &status, 0);
						in->pid = 0;
					}
				}
			break;
		}
		/* Child exits are not signalled while SIGCHLD is blocked: poll gently. */
		usleep(5000);
	}
	return 0;
}

void sup_fini(struct engine *e)
{
	for (uint32_t i = 0; i < e->ntenants; i++)
		for (uint16_t s = 0; s < e->tenants[i].ninst; s++) {
			struct instance *in = &e->tenants[i].inst[s];
			close_ctl(e, in);
			if (in->efd >= 0)
				close(in->efd);
			in->efd = -1;
		}
}
