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

#define STOP_TIMEOUT_MS 4000

struct child {
	pid_t pid;
	char what[80];
};

static pid_t start(char *const argv[], const sigset_t *oldmask, const char *netns)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	/* If `up` dies without cleaning up, its components stop too. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(1);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	if (netns != NULL) {
		int rc = netns_enter(netns);
		if (rc != 0) {
			fprintf(stderr, "palladium up: enter network namespace %s: %s\n", netns,
				strerror(-rc));
			_exit(127);
		}
	}
	execv("/proc/self/exe", argv);
	fprintf(stderr, "palladium up: exec: %s\n", strerror(errno));
	_exit(127);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reap what has exited; returns the index of an exited child or -1. */
static int reap(struct child *kids, int n, int *status)
{
	pid_t pid = waitpid(-1, status, WNOHANG);
	if (pid <= 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (kids[i].pid == pid) {
			kids[i].pid = 0;
			return i;
		}
	return -1;
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
	fprintf(stderr, "palladium up: %s (pid %d) ended badly while stopping (%s %d)\n",
		kid->what, (int)kid->pid, WIFSIGNALED(wst) ? "signal" : "status",
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
	uint64_t deadline = now_ms() + STOP_TIMEOUT_MS;
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
		"SIGTERM stops every process it started. If any component exits on its own, the\n"
		"others are stopped too and the exit status is 1.\n"
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
			fprintf(stderr, "palladium up: unexpected argument '%s'\n%s", argv[i], help);
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
			fprintf(stderr, "palladium up --netns: needs root, to create network "
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

	int n = 0;
	struct child *kids = calloc(cfg->nodes_count + 1, sizeof(*kids));
	for (uint32_t i = 0; kids != NULL && i < cfg->nodes_count; i++) {
		char *args[] = {"palladium", "engine", (char *)file, "--node", cfg->nodes[i].name,
				NULL};
		snprintf(kids[n].what, sizeof(kids[n].what), "engine of node %s",
			 cfg->nodes[i].name);
		kids[n].pid = start(args, &oldmask, plan != NULL ? plan->comp[1 + i].ns : NULL);
		if (kids[n].pid > 0)
			n++;
	}
	char *iargs[] = {"palladium", "ingress", (char *)file, NULL};
	if (kids != NULL) {
		snprintf(kids[n].what, sizeof(kids[n].what), "ingress");
		kids[n].pid = start(iargs, &oldmask, plan != NULL ? plan->comp[0].ns : NULL);
		if (kids[n].pid > 0)
			n++;
	}
	const char *example = cfg->routes_count > 0 ? cfg->routes[0].path : "/";
	if (plan != NULL)
		printf("palladium: cluster %s is starting: %u node(s) in network namespaces "
		       "%s*, ingress on http://%s in %s\n"
		       "palladium: try   ip netns exec %s curl -s -d hello http://%s%s\n"
		       "palladium: Ctrl-C stops it\n",
		       file, cfg->nodes_count, plan->prefix, cfg->ingress.listen, plan->comp[0].ns,
		       plan->comp[0].ns, cfg->ingress.listen, example);
	else
		printf("palladium: cluster %s is starting: %u node(s), ingress on http://%s\n"
		       "palladium: try   curl -s -d hello http://%s%s\n"
		       "palladium: Ctrl-C stops it\n",
		       file, cfg->nodes_count, cfg->ingress.listen, cfg->ingress.listen, example);
	fflush(stdout);

	int status = 0;
	for (;;) {
		struct signalfd_siginfo si;
		ssize_t got = read(sfd, &si, sizeof(si));
		if (got != (ssize_t)sizeof(si)) {
			if (got < 0 && errno == EINTR)
				continue;
			break;
		}
		if (si.ssi_signo != SIGCHLD)
			break;
		int wst, idx;
		bool died = false;
		while ((idx = reap(kids, n, &wst)) >= 0) {
			fprintf(stderr, "palladium up: %s exited (%s %d): stopping the cluster\n",
				kids[idx].what, WIFSIGNALED(wst) ? "signal" : "status",
				WIFSIGNALED(wst) ? WTERMSIG(wst) : WEXITSTATUS(wst));
			died = true;
		}
		if (died) {
			status = 1;
			break;
		}
	}
	if (!stop_all(kids, n))
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
