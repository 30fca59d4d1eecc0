/* SPDX-License-Identifier: Apache-2.0 */
/* palladium up: run every component of a cluster file on this machine, in the foreground. */
#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/netns.h"
#include "fabric/fabric.h"
#include "common/config.h"

/* How long a stopping component may take before it is killed; PALLADIUM_STOP_TIMEOUT_MS
 * overrides it (sanitizer builds, whose leak check at exit symbolizes stacks, need more). */
#define STOP_TIMEOUT_MS 4000

static uint64_t stop_timeout_ms(void)
{
	const char *v = getenv("PALLADIUM_STOP_TIMEOUT_MS");
	char *end;
	unsigned long long ms = v != NULL ? strtoull(v, &end, 10) : 0;
	if (v == NULL || *v == '\0' || *end != '\0' || ms == 0 || ms > 600000)
		return STOP_TIMEOUT_MS;
	return ms;
}

/*
 * A component that dies while the cluster runs is started again, with the same
 * arguments, environment (cluster key) and namespace, after a backoff that doubles from
 * RESTART_BACKOFF_MS to RESTART_BACKOFF_MAX_MS (as the engine does for functions). A run
 * longer than STABLE_RUN_MS resets the backoff. A component that ends within
 * STABLE_RUN_MS of its start QUICK_FAILS_MAX times in a row cannot start at all (its
 * port is taken, say): then `up` stops the cluster and exits 1.
 */
#define RESTART_BACKOFF_MS 100
#define RESTART_BACKOFF_MAX_MS 5000
#define STABLE_RUN_MS 1000
#define QUICK_FAILS_MAX 5

struct child {
	pid_t pid; /* 0: not running */
	char what[80];
	char *argv[6];
	const char *netns;      /* network namespace to run in, or NULL */
	uint64_t started_ms;    /* of the current (or last) run */
	uint64_t restart_at_ms; /* 0: no restart pending */
	uint32_t backoff_ms;
	uint32_t restarts;
	uint32_t quick_fails; /* runs in a row that ended within STABLE_RUN_MS */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Forks and execs the component; 0 or a negative errno (fork failed). */
static int start(struct child *kid, const sigset_t *oldmask)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		kid->pid = pid;
		kid->started_ms = now_ms();
		return 0;
	}
	/* If `up` dies without cleaning up, its components stop too. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(1);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	if (kid->netns != NULL) {
		int rc = netns_enter(kid->netns);
		if (rc != 0) {
			fprintf(stderr, "palladium up: enter network namespace %s: %s\n",
			        kid->netns, strerror(-rc));
			_exit(127);
		}
	}
	execv("/proc/self/exe", kid->argv);
	fprintf(stderr, "palladium up: exec: %s\n", strerror(errno));
	_exit(127);
}

/*
 * Reap what has exited; returns the index of an exited component (its pid in *pid, its
 * wait status in *status) or -1 when none is left to reap.
 */
static int reap(struct child *kids, int n, pid_t *pid, int *status)
{
	for (;;) {
		*pid = waitpid(-1, status, WNOHANG);
		if (*pid <= 0)
			return -1;
		for (int i = 0; i < n; i++)
			if (kids[i].pid == *pid) {
				kids[i].pid = 0;
				return i;
			}
		/* Not a component (the janitor of --netns): nothing to restart. */
	}
}

/* "(pid 12) killed by signal 9", "(pid 12) exited with status 1". */
static void describe_end(pid_t pid, int wst, char *buf, size_t len)
{
	if (WIFSIGNALED(wst))
		snprintf(buf, len, "(pid %d) was killed by signal %d", (int)pid, WTERMSIG(wst));
	else
		snprintf(buf, len, "(pid %d) exited with status %d", (int)pid, WEXITSTATUS(wst));
}

/*
 * A component ended (how: what happened to it) while the cluster runs: report it and
 * schedule its restart. False if it cannot start at all (QUICK_FAILS_MAX short runs in a
 * row): the caller stops the cluster.
 */
static bool schedule_restart(struct child *kid, const char *how, uint64_t now)
{
	if (now - kid->started_ms >= STABLE_RUN_MS) {
		kid->backoff_ms = RESTART_BACKOFF_MS;
		kid->quick_fails = 0;
	} else if (++kid->quick_fails >= QUICK_FAILS_MAX) {
		fprintf(stderr,
		        "palladium up: %s %s; it ended within %d ms of its start %d times in a "
		        "row: stopping the cluster\n",
		        kid->what, how, STABLE_RUN_MS, QUICK_FAILS_MAX);
		return false;
	}
	kid->restart_at_ms = now + kid->backoff_ms;
	kid->restarts++;
	fprintf(stderr, "palladium up: %s %s; restart %u in %u ms\n", kid->what, how, kid->restarts,
	        kid->backoff_ms);
	kid->backoff_ms *= 2;
	if (kid->backoff_ms > RESTART_BACKOFF_MAX_MS)
		kid->backoff_ms = RESTART_BACKOFF_MAX_MS;
	return true;
}

/* Restarts the components whose backoff has passed; false if one cannot be started. */
static bool restart_due(struct child *kids, int n, const sigset_t *oldmask, uint64_t now)
{
	for (int i = 0; i < n; i++) {
		struct child *kid = &kids[i];
		if (kid->pid != 0 || kid->restart_at_ms == 0 || now < kid->restart_at_ms)
			continue;
		kid->restart_at_ms = 0;
		int rc = start(kid, oldmask);
		if (rc != 0) {
			char how[96];
			snprintf(how, sizeof(how), "could not be started again (fork: %s)",
			         strerror(-rc));
			/* Counted as a run that ended at once. */
			kid->started_ms = now;
			if (!schedule_restart(kid, how, now))
				return false;
			continue;
		}
		fprintf(stderr, "palladium up: %s restarted (pid %d, restart %u)\n", kid->what,
		        (int)kid->pid, kid->restarts);
	}
	return true;
}

/* Milliseconds until the next pending restart, or -1 (none: wait for a signal only). */
static int next_restart_in(const struct child *kids, int n, uint64_t now)
{
	int timeout = -1;
	for (int i = 0; i < n; i++) {
		if (kids[i].restart_at_ms == 0)
			continue;
		uint64_t in = kids[i].restart_at_ms > now ? kids[i].restart_at_ms - now : 0;
		if (timeout < 0 || in < (uint64_t)timeout)
			timeout = (int)in;
	}
	return timeout;
}

/*
 * Says how a child ended if it did not end well. False if it crashed (killed by a
 * signal other than the SIGTERM/SIGINT that stop it): that makes `up` exit 1. A non-zero
 * exit status is reported but not counted: the component said why itself.
 */
static bool ended_well(const struct child *kid, int wst)
{
	if (WIFEXITED(wst) && WEXITSTATUS(wst) == 0)
		return true;
	fprintf(stderr, "palladium up: %s (pid %d) ended badly while stopping (%s %d)\n", kid->what,
	        (int)kid->pid, WIFSIGNALED(wst) ? "signal" : "status",
	        WIFSIGNALED(wst) ? WTERMSIG(wst) : WEXITSTATUS(wst));
	return !WIFSIGNALED(wst) || WTERMSIG(wst) == SIGTERM || WTERMSIG(wst) == SIGINT;
}

/* Stops every child; false if one crashed or had to be killed. */
static bool stop_all(struct child *kids, int n)
{
	bool well = true;
	for (int i = 0; i < n; i++)
		if (kids[i].pid > 0)
			kill(kids[i].pid, SIGTERM);
	uint64_t deadline = now_ms() + stop_timeout_ms();
	for (;;) {
		int alive = 0;
		for (int i = 0; i < n; i++) {
			int wst;
			if (kids[i].pid > 0 && waitpid(kids[i].pid, &wst, WNOHANG) == kids[i].pid) {
				well &= ended_well(&kids[i], wst);
				kids[i].pid = 0;
			}
			alive += kids[i].pid > 0;
		}
		if (alive == 0)
			return well;
		if (now_ms() >= deadline)
			break;
		usleep(10000);
	}
	for (int i = 0; i < n; i++)
		if (kids[i].pid > 0) {
			fprintf(stderr, "palladium up: %s (pid %d) did not stop: killing it\n",
			        kids[i].what, (int)kids[i].pid);
			kill(kids[i].pid, SIGKILL);
			waitpid(kids[i].pid, NULL, 0);
			kids[i].pid = 0;
			well = false;
		}
	return well;
}

int cli_up(int argc, char **argv)
{
	static const char help[] =
	    "usage: palladium up [--netns] FILE\n"
	    "\n"
	    "Run the whole cluster described by FILE on this machine, in the foreground: one\n"
	    "engine per node (each starts its node's functions) and the ingress. Ctrl-C or\n"
	    "SIGTERM stops every process it started (exit status 0). A component that dies\n"
	    "is started again after a backoff (100 ms, doubling to 5 s; reset by a run of 1 s),\n"
	    "with the same cluster key and ports, and the restart is logged. One that ends\n"
	    "within 1 s of its start 5 times in a row cannot start: `up` then stops the\n"
	    "others and exits 1. A component that has not stopped 4 s after SIGTERM is\n"
	    "killed (exit status 1); PALLADIUM_STOP_TIMEOUT_MS in the environment changes\n"
	    "the 4 s.\n"
	    "\n"
	    "  --netns   put the ingress and each node in a network namespace of its own\n"
	    "            (pd<pid>-ingress, pd<pid>-node-<name>), joined by veth pairs to a\n"
	    "            bridge, with the addresses from FILE; removed when `up` ends, however\n"
	    "            it ends. Needs root. Every node and the ingress need their own IPv4\n"
	    "            address (127.0.0.x addresses work).\n";
	const char *file = NULL;
	bool use_netns = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(help, stdout);
			return 0;
		} else if (strcmp(argv[i], "--netns") == 0) {
			use_netns = true;
		} else if (argv[i][0] != '-' && file == NULL) {
			file = argv[i];
		} else {
			fprintf(stderr, "palladium up: unexpected argument '%s'\n%s", argv[i],
			        help);
			return 2;
		}
	}
	if (file == NULL) {
		fputs(help, stderr);
		return 2;
	}
	struct pd_config *cfg = cli_load(file);
	if (cfg == NULL)
		return 1;

	struct netns_plan *plan = NULL;
	pid_t janitor = -1;
	int janitor_fd = -1;
	if (use_netns) {
		if (geteuid() != 0) {
			fprintf(stderr,
			        "palladium up --netns: needs root, to create network "
			        "namespaces and veth pairs; run it as root, or without --netns\n");
			pd_config_free(cfg);
			return 1;
		}
		plan = calloc(1, sizeof(*plan));
		if (plan == NULL || netns_plan(cfg, getpid(), plan, stderr) != 0) {
			free(plan);
			pd_config_free(cfg);
			return 1;
		}
		/* The janitor first, so that nothing created can outlive us. */
		janitor_fd = netns_janitor(plan, &janitor);
		if (janitor_fd < 0 || netns_create(plan, stderr) != 0) {
			if (janitor_fd >= 0) {
				close(janitor_fd);
				waitpid(janitor, NULL, 0);
			}
			fprintf(stderr, "palladium up --netns: could not set up the namespaces "
			                "(is iproute2 installed?)\n");
			free(plan);
			pd_config_free(cfg);
			return 1;
		}
	}

	/* A fresh cluster key for this run unless the operator gave one: the components
	 * get it through the environment, functions never do (docs/security.md). */
	if (getenv(PD_FABRIC_KEY_ENV) == NULL || getenv(PD_FABRIC_KEY_ENV)[0] == '\0') {
		uint8_t key[PD_FABRIC_KEY_LEN];
		char hex[2 * PD_FABRIC_KEY_LEN + 1];
		if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
			perror("palladium up: getrandom");
			pd_config_free(cfg);
			return 1;
		}
		for (size_t i = 0; i < sizeof(key); i++)
			snprintf(hex + 2 * i, 3, "%02x", key[i]);
		setenv(PD_FABRIC_KEY_ENV, hex, 1);
	}

	sigset_t mask, oldmask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		perror("palladium up: signalfd");
		pd_config_free(cfg);
		return 1;
	}

	/* Every engine, then the ingress; all of them or none. */
	int n = 0, status = 0;
	struct child *kids = calloc(cfg->nodes_count + 1, sizeof(*kids));
	if (kids == NULL) {
		fprintf(stderr, "palladium up: calloc: %s\n", strerror(ENOMEM));
		status = 1;
		goto stop;
	}
	for (uint32_t i = 0; i <= cfg->nodes_count; i++) {
		struct child *kid = &kids[n];
		bool ingress = i == cfg->nodes_count;
		char **a = kid->argv;
		*a++ = "palladium";
		*a++ = ingress ? "ingress" : "engine";
		*a++ = (char *)file;
		if (!ingress) {
			*a++ = "--node";
			*a++ = cfg->nodes[i].name;
			snprintf(kid->what, sizeof(kid->what), "engine of node %s",
			         cfg->nodes[i].name);
		} else {
			snprintf(kid->what, sizeof(kid->what), "ingress");
		}
		*a = NULL;
		kid->netns = plan == NULL ? NULL
		             : ingress    ? plan->comp[0].ns
		                          : plan->comp[1 + i].ns;
		kid->backoff_ms = RESTART_BACKOFF_MS;
		int rc = start(kid, &oldmask);
		if (rc != 0) {
			fprintf(stderr, "palladium up: start the %s: fork: %s\n", kid->what,
			        strerror(-rc));
			status = 1;
			goto stop;
		}
		n++;
	}
	const char *example = cfg->routes_count > 0 ? cfg->routes[0].path : "/";
	/* With ingress.tls the listener speaks HTTPS (curl needs the CA: --cacert). */
	const char *scheme = cfg->ingress.tls.enabled ? "https" : "http";
	if (plan != NULL)
		printf("palladium: cluster %s is starting: %u node(s) in network namespaces "
		       "%s*, ingress on %s://%s in %s\n"
		       "palladium: try   ip netns exec %s curl -s -d hello %s://%s%s\n"
		       "palladium: Ctrl-C stops it\n",
		       file, cfg->nodes_count, plan->prefix, scheme, cfg->ingress.listen,
		       plan->comp[0].ns, plan->comp[0].ns, scheme, cfg->ingress.listen, example);
	else
		printf("palladium: cluster %s is starting: %u node(s), ingress on %s://%s\n"
		       "palladium: try   curl -s -d hello %s://%s%s\n"
		       "palladium: Ctrl-C stops it\n",
		       file, cfg->nodes_count, scheme, cfg->ingress.listen, scheme,
		       cfg->ingress.listen, example);
	fflush(stdout);

	/* Until SIGINT or SIGTERM: restart what dies (see RESTART_BACKOFF_MS). */
	for (;;) {
		struct pollfd pfd = {.fd = sfd, .events = POLLIN};
		int ready = poll(&pfd, 1, next_restart_in(kids, n, now_ms()));
		if (ready < 0 && errno != EINTR) {
			perror("palladium up: poll");
			status = 1;
			break;
		}
		if (ready > 0) {
			struct signalfd_siginfo si;
			ssize_t got = read(sfd, &si, sizeof(si));
			if (got != (ssize_t)sizeof(si)) {
				if (got < 0 && (errno == EINTR || errno == EAGAIN))
					continue;
				perror("palladium up: read signalfd");
				status = 1;
				break;
			}
			if (si.ssi_signo != SIGCHLD)
				break;
		}
		/* SIGCHLD may stand for several children: reap them all. */
		bool gave_up = false;
		int wst, idx;
		pid_t pid;
		while ((idx = reap(kids, n, &pid, &wst)) >= 0) {
			char how[80];
			describe_end(pid, wst, how, sizeof(how));
			gave_up |= !schedule_restart(&kids[idx], how, now_ms());
		}
		if (gave_up || !restart_due(kids, n, &oldmask, now_ms())) {
			status = 1;
			break;
		}
	}
stop:
	if (kids != NULL && !stop_all(kids, n))
		status = 1;
	if (janitor_fd >= 0) {
		close(janitor_fd);
		waitpid(janitor, NULL, 0);
	}
	free(plan);
	printf("palladium: stopped\n");
	free(kids);
	close(sfd);
	pd_config_free(cfg);
	return status;
}
