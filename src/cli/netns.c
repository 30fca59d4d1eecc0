/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Network namespaces for `palladium up --netns`: the ingress and each node in a namespace
 * of their own, joined through veth pairs to a bridge in a separate namespace, with the
 * addresses from the cluster file. Configured with iproute2; a janitor process removes
 * everything when `up` ends, however it ends.
 *
 * Loopback addresses (127.0.0.0/8) are allowed, so that one cluster file serves both the
 * plain and the namespaced `up`: in each namespace the address is moved from the
 * loopback device to the veth (route_localnet permits routing it).
 */
#include "cli/netns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int netns_plan(const struct pd_config *cfg, pid_t owner, struct netns_plan *plan, FILE *errs)
{
	memset(plan, 0, sizeof(*plan));
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "pd%d-", (int)owner);
	memcpy(plan->prefix, prefix, sizeof(prefix));
	snprintf(plan->sw, sizeof(plan->sw), "%sswitch", prefix);
	plan->ncomp = (int)cfg->nodes_count + 1;
	snprintf(plan->comp[0].ns, sizeof(plan->comp[0].ns), "%singress", prefix);
	snprintf(plan->comp[0].addr, sizeof(plan->comp[0].addr), "%s", cfg->ingress.address);
	const char *hosts[2] = {cfg->ingress.listen_addr.host, cfg->ingress.admin_addr.host};
	for (int k = 0; k < 2; k++)
		if (strcmp(hosts[k], cfg->ingress.address) != 0 &&
		    strcmp(hosts[k], "0.0.0.0") != 0 && (k == 0 || strcmp(hosts[0], hosts[1]) != 0))
			snprintf(plan->comp[0].extra[k], sizeof(plan->comp[0].extra[k]), "%s",
			         hosts[k]);
	for (uint32_t i = 0; i < cfg->nodes_count; i++) {
		snprintf(plan->comp[1 + i].ns, sizeof(plan->comp[1 + i].ns), "%snode-%s", prefix,
		         cfg->nodes[i].name);
		snprintf(plan->comp[1 + i].addr, sizeof(plan->comp[1 + i].addr), "%s",
		         cfg->nodes[i].address);
	}
	int bad = 0;
	for (int i = 0; i < plan->ncomp; i++) {
		struct in_addr a;
		const char *who = i == 0 ? "the ingress" : cfg->nodes[i - 1].name;
		if (inet_pton(AF_INET, plan->comp[i].addr, &a) != 1) {
			fprintf(errs,
			        "palladium up --netns: %s: address %s: only IPv4 addresses are "
			        "supported in namespaces\n",
			        who, plan->comp[i].addr);
			bad = 1;
		}
		for (int j = 0; j < i; j++)
			if (strcmp(plan->comp[i].addr, plan->comp[j].addr) == 0) {
				fprintf(errs,
				        "palladium up --netns: %s and %s both use address %s: in "
				        "namespaces every node and the ingress need an address "
				        "of their own (e.g. 127.0.0.1, 127.0.0.2, ...)\n",
				        j == 0 ? "the ingress" : cfg->nodes[j - 1].name, who,
				        plan->comp[i].addr);
				bad = 1;
			}
	}
	return bad ? -EINVAL : 0;
}

/* Run a command quietly; 0 if it exited 0. Its stderr is kept for the error message. */
static int run(FILE *errs, const char *const argv[])
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return -errno;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, STDOUT_FILENO);
		dup2(pipefd[1], STDERR_FILENO);
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "%s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	char msg[512];
	ssize_t n = read(pipefd[0], msg, sizeof(msg) - 1);
	close(pipefd[0]);
	int status;
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (errs != NULL) {
		fprintf(errs, "palladium up --netns: failed:");
		for (int i = 0; argv[i] != NULL; i++)
			fprintf(errs, " %s", argv[i]);
		msg[n > 0 ? n : 0] = '\0';
		fprintf(errs, "\n  %s%s", msg, n > 0 && msg[n - 1] == '\n' ? "" : "\n");
	}
	return -EIO;
}

#define RUN(...)                                                                                   \
	do {                                                                                       \
		const char *const argv_[] = {__VA_ARGS__, NULL};                                   \
		if (run(errs, argv_) != 0)                                                         \
			return -EIO;                                                               \
	} while (0)

/*
 * The links are a data-centre fabric: jumbo frames, and frames of at most one MTU on the
 * wire (TSO off) taken in by NAPI with GRO on, so that a veth delivers each flow in order
 * like a NIC's receive queue. By default a veth hands 64 KiB super-packets to the backlog
 * of whichever CPU sent them, and a connection sent from two CPUs (the writer, and
 * ACK-clocked transmissions in softirq) arrives reordered: spurious fast retransmits and
 * 50-200 ms tail latency on busy connections. Without ethtool the veths keep their
 * defaults (best effort).
 */
#define FABRIC_MTU "9000"

static void fabric_offloads(const char *ns, const char *dev)
{
	const char *const argv[] = {"ip", "netns", "exec", ns,    "ethtool", "-K",
	                            dev,  "tso",   "off",  "gro", "on",      NULL};
	run(NULL, argv);
}

static int setup_comp(const struct netns_plan *plan, int i, FILE *errs)
{
	const char *ns = plan->comp[i].ns;
	char sw_if[16], cidr[80], key[96];
	snprintf(sw_if, sizeof(sw_if), "s%d", i);
	RUN("ip", "netns", "add", ns);
	RUN("ip", "-n", plan->sw, "link", "add", sw_if, "type", "veth", "peer", "name", "pd0",
	    "netns", ns);
	RUN("ip", "-n", plan->sw, "link", "set", sw_if, "mtu", FABRIC_MTU);
	RUN("ip", "-n", ns, "link", "set", "pd0", "mtu", FABRIC_MTU);
	fabric_offloads(plan->sw, sw_if);
	fabric_offloads(ns, "pd0");
	RUN("ip", "-n", plan->sw, "link", "set", sw_if, "master", "br0", "up");
	RUN("ip", "-n", ns, "link", "set", "lo", "up");
	/* Loopback-range addresses on the veth: let the kernel route them, and take them
	 * off the loopback device, where they would otherwise never leave the namespace. */
	RUN("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1");
	snprintf(key, sizeof(key), "net.ipv4.conf.pd0.route_localnet=1");
	RUN("ip", "netns", "exec", ns, "sysctl", "-qw", key);
	/* No IPv4 on the loopback device: an address of another namespace that is local
	 * here (127.0.0.1) would capture replies and make ARP drop its requests. Functions
	 * attach over Unix sockets and need no loopback. */
	RUN("ip", "-n", ns, "-4", "addr", "flush", "dev", "lo");
	const char *mine[3] = {plan->comp[i].addr, plan->comp[i].extra[0], plan->comp[i].extra[1]};
	for (int k = 0; k < 3; k++) {
		if (mine[k][0] == '\0')
			continue;
		snprintf(cidr, sizeof(cidr), "%s/32", mine[k]);
		RUN("ip", "-n", ns, "addr", "add", cidr, "dev", "pd0");
	}
	RUN("ip", "-n", ns, "link", "set", "pd0", "up");
	for (int j = 0; j < plan->ncomp; j++) {
		if (j == i)
			continue;
		snprintf(cidr, sizeof(cidr), "%s/32", plan->comp[j].addr);
		RUN("ip", "-n", ns, "route", "add", cidr, "dev", "pd0", "src", plan->comp[i].addr);
	}
	return 0;
}

int netns_create(const struct netns_plan *plan, FILE *errs)
{
	RUN("ip", "netns", "add", plan->sw);
	RUN("ip", "-n", plan->sw, "link", "add", "br0", "mtu", FABRIC_MTU, "type", "bridge");
	RUN("ip", "-n", plan->sw, "link", "set", "br0", "up");
	for (int i = 0; i < plan->ncomp; i++)
		if (setup_comp(plan, i, errs) != 0)
			return -EIO;
	return 0;
}

static void destroy(const struct netns_plan *plan)
{
	/* Deleting a namespace takes its end of each veth pair, and so the pair, with it. */
	for (int i = 0; i < plan->ncomp; i++) {
		const char *const argv[] = {"ip", "netns", "del", plan->comp[i].ns, NULL};
		run(NULL, argv);
	}
	const char *const argv[] = {"ip", "netns", "del", plan->sw, NULL};
	run(NULL, argv);
}

int netns_janitor(const struct netns_plan *plan, pid_t *janitor)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -errno;
	}
	if (pid == 0) {
		/* Outlive `up` (Ctrl-C reaches the whole process group) to clean up after it. */
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close(fds[1]);
		for (;;) {
			char c;
			ssize_t n = read(fds[0], &c, 1);
			if (n == 0 || (n < 0 && errno != EINTR))
				break;
		}
		destroy(plan);
		_exit(0);
	}
	close(fds[0]);
	*janitor = pid;
	return fds[1];
}

int netns_enter(const char *ns)
{
	char path[160];
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = setns(fd, CLONE_NEWNET);
	int err = errno;
	close(fd);
	return rc == 0 ? 0 : -err;
}
