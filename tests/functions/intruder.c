/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A hostile test function: on a request whose body starts with "attack", it tries to
 * reach other tenants and the engine by every way a process on the node could, and
 * answers with a JSON report of what it tried and what succeeded (for
 * tests/integration/isolation.sh, which expects every attempt to fail):
 *
 *   attach_self      connect to the engine's attach socket again and ask for a pool, as
 *                    this (already attached) process, once honestly and once claiming in
 *                    the hello to be each victim pid
 *   attach_child     the same from a forked child (a pid the engine did not start)
 *   engine_fd        list and open /proc/<engine>/fd/N (engine = getppid()), and open
 *                    N = 0..255 blindly; open /proc/<engine>/{mem,environ}, map_files/
 *   dev_shm          list /dev/shm and open every file in it
 *   proc_fd_other    list /proc/<pid>/fd of every process of another uid, open what is
 *                    listed
 *   victim_fd        the same as engine_fd on each victim (another tenant's function:
 *                    a child of the engine running as another uid, or a pid named in the
 *                    request), plus /proc/<victim>/mem and map_files/
 *   pidfd_getfd      pidfd_open + pidfd_getfd(0..63) on the victims and the engine
 *   vm_read          process_vm_readv of the victims and the engine
 *   ptrace           PTRACE_ATTACH and PTRACE_SEIZE of the victims and the engine
 *   signal           kill(pid, 0) of the victims and the engine
 *   setuid_root      setuid(0), setresuid(0, 0, 0)
 *   mmap             mmap every descriptor any attempt above managed to get
 *
 * "own_fds": what this process holds (only stdio, its attach socket, its own pool and
 * its tenant's eventfds are expected).
 * "controls": the same techniques against its own forked child (same uid, fair game)
 * must work, or the failures above would only prove a broken attack.
 *
 * Body: "attack [PID ...] [fabric=PORT]": PIDs are victims known to the test (they are
 * also searched for), PORT the engine's fabric port: whether a TCP connection to it
 * works is reported under "info" (not an attempt: see docs/security.md).
 * Anything else is echoed. It includes the runtime's source to know its own pool fd.
 */
#include "../../src/runtime/runtime.c"

#include <dirent.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define MAX_VICTIMS 16
#define MAX_GOT 256
#define MAX_SUCCESSES 64
#define MAX_EXAMPLES 3
#define BLIND_FDS 256

struct json {
	char *buf;
	size_t len, cap;
};

static void jputs(struct json *j, const char *s, size_t n)
{
	if (j->len + n + 1 > j->cap) {
		size_t cap = (j->cap + n + 1) * 2;
		char *p = realloc(j->buf, cap);
		if (p == NULL)
			return;
		j->buf = p;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

static void jprintf(struct json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jprintf(struct json *j, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		jputs(j, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A JSON string, escaped. */
static void jstr(struct json *j, const char *s)
{
	jputs(j, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			jputs(j, e, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			jprintf(j, "\\u%04x", c);
		} else {
			jputs(j, (const char *)&c, 1);
		}
	}
	jputs(j, "\"", 1);
}

/* One category of attempts: counts, the successes in full, a few failures as examples. */
struct category {
	const char *name;
	unsigned tried, succeeded;
	char successes[MAX_SUCCESSES][160];
	unsigned nexamples;
	char examples[MAX_EXAMPLES][160];
};

enum {
	C_ATTACH_SELF,
	C_ATTACH_CHILD,
	C_ENGINE_FD,
	C_DEV_SHM,
	C_PROC_FD_OTHER,
	C_VICTIM_FD,
	C_PIDFD_GETFD,
	C_VM_READ,
	C_PTRACE,
	C_SIGNAL,
	C_SETUID_ROOT,
	C_MMAP,
	C_COUNT,
};

struct attack {
	struct category cat[C_COUNT];
	pid_t engine;
	pid_t victims[MAX_VICTIMS];
	int nvictims;
	int got[MAX_GOT]; /* descriptors obtained, for the mmap attempt */
	char got_what[MAX_GOT][128];
	int ngot;
};

static void note(struct attack *a, int c, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void note(struct attack *a, int c, bool ok, const char *fmt, ...)
{
	struct category *cat = &a->cat[c];
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	cat->tried++;
	if (ok) {
		if (cat->succeeded < MAX_SUCCESSES)
			memcpy(cat->successes[cat->succeeded], what, sizeof(what));
		cat->succeeded++;
	} else if (cat->nexamples < MAX_EXAMPLES) {
		memcpy(cat->examples[cat->nexamples++], what, sizeof(what));
	}
}

/* Keep a descriptor some attempt obtained (for mmap), or close it. */
static void keep(struct attack *a, int fd, const char *what)
{
	if (a->ngot < MAX_GOT) {
		a->got[a->ngot] = fd;
		size_t n = strnlen(what, sizeof(a->got_what[0]) - 1);
		memcpy(a->got_what[a->ngot], what, n);
		a->got_what[a->ngot][n] = '\0';
		a->ngot++;
	} else {
		close(fd);
	}
}

/* Open path read-write, else read-only; note the outcome under category c. */
static void try_open(struct attack *a, int c, const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int err = errno;
	if (fd < 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		err = errno;
	}
	if (fd < 0) {
		note(a, c, false, "open %s: %s", path, strerror(err));
		return;
	}
	note(a, c, true, "open %s", path);
	keep(a, fd, path);
}

/* List directory dir (a success if it can be listed) and open each entry. */
static void try_dir(struct attack *a, int c, const char *dir, bool open_entries)
{
	DIR *d = opendir(dir);
	if (d == NULL) {
		note(a, c, false, "opendir %s: %s", dir, strerror(errno));
		return;
	}
	struct dirent *de;
	int listed = 0;
	char path[512];
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		listed++;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (open_entries)
			try_open(a, c, path);
	}
	closedir(d);
	/* Listing /dev/shm is open to all; listing another process's fds is not. */
	if (strncmp(dir, "/proc/", 6) == 0)
		note(a, c, true, "list %s (%d entries)", dir, listed);
}

static uid_t owner_of(pid_t pid)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	return stat(path, &st) == 0 ? st.st_uid : (uid_t)-1;
}

static pid_t ppid_of(pid_t pid)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return -1;
	size_t n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = '\0';
	char *p = strrchr(line, ')');
	int ppid;
	if (p == NULL || sscanf(p + 2, "%*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

static void add_victim(struct attack *a, pid_t pid)
{
	if (pid <= 1 || pid == getpid() || pid == a->engine)
		return;
	for (int i = 0; i < a->nvictims; i++)
		if (a->victims[i] == pid)
			return;
	if (a->nvictims < MAX_VICTIMS)
		a->victims[a->nvictims++] = pid;
}

/* Other tenants' functions: children of the engine that run as another uid. */
static void find_victims(struct attack *a)
{
	DIR *d = opendir("/proc");
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || pid <= 0)
			continue;
		if (ppid_of((pid_t)pid) == a->engine && owner_of((pid_t)pid) != getuid())
			add_victim(a, (pid_t)pid);
	}
	closedir(d);
}

/* ---------------------------------------------------------------- (a) attach again */

/* One attach attempt on a new connection; 1 if the engine handed anything over. */
static int attach_once(int32_t claim_pid, char *detail, size_t len, int *got_fd)
{
	*got_fd = -1;
	const char *name = getenv(PD_ENGINE_SOCKET_ENV);
	if (name == NULL) {
		snprintf(detail, len, "no %s", PD_ENGINE_SOCKET_ENV);
		return 0;
	}
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(detail, len, "socket: %s", strerror(errno));
		return 0;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	if (n + 1 >= sizeof(sa.sun_path))
		n = sizeof(sa.sun_path) - 2;
	memcpy(sa.sun_path + 1, name, n);
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	if (connect(fd, (struct sockaddr *)&sa, salen) != 0) {
		snprintf(detail, len, "connect: %s", strerror(errno));
		close(fd);
		return 0;
	}
	struct pd_attach_hello hello = {PD_ATTACH_MAGIC, PD_ATTACH_VERSION, claim_pid};
	if (send(fd, &hello, sizeof(hello), MSG_NOSIGNAL) != (ssize_t)sizeof(hello)) {
		snprintf(detail, len, "send hello: %s", strerror(errno));
		close(fd);
		return 0;
	}
	struct pd_attach_reply *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		close(fd);
		return 0;
	}
	char cbuf[CMSG_SPACE(sizeof(int) * (PD_ATTACH_FIXED_FDS + PD_MAX_INSTANCES))];
	struct iovec iov = {.iov_base = r, .iov_len = sizeof(*r)};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int ready = poll(&pfd, 1, 3000);
	ssize_t got = ready == 1 ? recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT) : -1;
	int nfds = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); got >= 0 && cm != NULL;
	     cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int *fds = (int *)CMSG_DATA(cm);
		for (int i = 0; i < k; i++) {
			if (*got_fd < 0)
				*got_fd = fds[i];
			else
				close(fds[i]);
			nfds++;
		}
	}
	int handed = 0;
	if (ready != 1)
		snprintf(detail, len, "no answer within 3 s");
	else if (got <= 0)
		snprintf(detail, len, "connection closed without a reply (%s)",
		         got < 0 ? strerror(errno) : "end of file");
	else if (nfds > 0 || (got == (ssize_t)sizeof(*r) && r->status == 0)) {
		snprintf(detail, len, "engine answered status %d with %d descriptor(s), tenant %u",
		         (int)r->status, nfds, (unsigned)r->tenant);
		handed = 1;
	} else {
		snprintf(detail, len, "refused with status %d (%s)", (int)r->status,
		         strerror(r->status < 0 ? -r->status : EPROTO));
	}
	free(r);
	close(fd);
	return handed;
}

static void attack_attach(struct attack *a)
{
	char detail[160];
	int fd;
	int ok = attach_once((int32_t)getpid(), detail, sizeof(detail), &fd);
	note(a, C_ATTACH_SELF, ok, "second attach as pid %d: %s", (int)getpid(), detail);
	if (fd >= 0)
		keep(a, fd, "fd from a second attach");
	for (int i = 0; i < a->nvictims; i++) {
		ok = attach_once((int32_t)a->victims[i], detail, sizeof(detail), &fd);
		note(a, C_ATTACH_SELF, ok, "attach claiming pid %d in the hello: %s",
		     (int)a->victims[i], detail);
		if (fd >= 0)
			keep(a, fd, "fd from an attach claiming a victim's pid");
	}

	/* From a child: a pid the engine never started. One line back through a pipe. */
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return;
	pid_t child = fork();
	if (child == 0) {
		close(p[0]);
		char line[200];
		int cfd;
		int cok = attach_once((int32_t)getpid(), detail, sizeof(detail), &cfd);
		int n = snprintf(line, sizeof(line), "%d pid %d: %s", cok, (int)getpid(), detail);
		ssize_t w = write(p[1], line, (size_t)n);
		(void)w;
		_exit(0);
	}
	close(p[1]);
	char line[200] = "";
	ssize_t n = child > 0 ? read(p[0], line, sizeof(line) - 1) : -1;
	close(p[0]);
	if (child > 0)
		waitpid(child, NULL, 0);
	if (n <= 0) {
		note(a, C_ATTACH_CHILD, false, "child: no report");
		return;
	}
	line[n] = '\0';
	note(a, C_ATTACH_CHILD, line[0] == '1', "attach from a forked child, %s", line + 2);
}

/* ---------------------------------------------------------------- (b), (d) /proc of others */

static void attack_proc_of(struct attack *a, int c, pid_t pid)
{
	char path[128];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	try_dir(a, c, path, true);
	/* The listing may be denied while opening guessed numbers is not: try them all. */
	unsigned denied = 0, absent = 0;
	for (int n = 0; n < BLIND_FDS; n++) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, n);
		int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0 && errno != ENOENT)
			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd >= 0) {
			note(a, c, true, "open %s (guessed)", path);
			keep(a, fd, path);
		} else if (errno == ENOENT) {
			absent++;
		} else {
			denied++;
		}
	}
	a->cat[c].tried += BLIND_FDS - 1; /* one note below for the whole sweep */
	note(a, c, false, "open /proc/%d/fd/0..%d blindly: %u denied, %u absent", (int)pid,
	     BLIND_FDS - 1, denied, absent);
	static const char *const files[] = {"mem", "environ", "maps", "pagemap"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, files[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			note(a, c, false, "open %s: %s", path, strerror(errno));
			continue;
		}
		/* Opening environ or maps may work while reading is checked: read to know. */
		char buf[64];
		ssize_t r = read(fd, buf, sizeof(buf));
		note(a, c, r > 0, "open+read %s: %s", path, r > 0 ? "read" : strerror(errno));
		close(fd);
	}
	snprintf(path, sizeof(path), "/proc/%d/map_files", (int)pid);
	try_dir(a, c, path, true);
}

/* ---------------------------------------------------------------- (c) /dev/shm, /proc/<other>/fd
 */

static void attack_shared_memory(struct attack *a)
{
	try_dir(a, C_DEV_SHM, "/dev/shm", true);
	if (a->cat[C_DEV_SHM].tried == 0)
		note(a, C_DEV_SHM, false, "/dev/shm is empty");
	DIR *d = opendir("/proc");
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || pid <= 0 || owner_of((pid_t)pid) == getuid())
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
		try_dir(a, C_PROC_FD_OTHER, path, true);
	}
	closedir(d);
}

/* ---------------------------------------------------------------- (d), (e) other calls */

static void attack_process(struct attack *a, pid_t pid, const char *who)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0) {
		note(a, C_PIDFD_GETFD, false, "pidfd_open %s %d: %s", who, (int)pid,
		     strerror(errno));
	} else {
		unsigned denied = 0;
		int last_err = 0;
		for (int n = 0; n < 64; n++) {
			int fd = (int)syscall(SYS_pidfd_getfd, pfd, n, 0);
			if (fd >= 0) {
				char what[64];
				snprintf(what, sizeof(what), "pidfd_getfd %s %d fd %d", who,
				         (int)pid, n);
				note(a, C_PIDFD_GETFD, true, "%s", what);
				keep(a, fd, what);
			} else if (errno != EBADF) {
				denied++;
				last_err = errno;
			}
		}
		note(a, C_PIDFD_GETFD, false, "pidfd_getfd %s %d fds 0..63: %u denied (%s)", who,
		     (int)pid, denied, last_err ? strerror(last_err) : "none open");
		close(pfd);
	}
#endif
	/* Any address will do: the permission check comes before the address is looked at. */
	char buf[64];
	static char probe[64];
	struct iovec local = {buf, sizeof(buf)};
	struct iovec remote = {probe, sizeof(probe)};
	ssize_t r = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	note(a, C_VM_READ, r >= 0, "process_vm_readv %s %d: %s", who, (int)pid,
	     r >= 0 ? "read" : strerror(errno));

	if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) == 0) {
		note(a, C_PTRACE, true, "PTRACE_ATTACH %s %d", who, (int)pid);
		waitpid(pid, NULL, __WALL);
		ptrace(PTRACE_DETACH, pid, NULL, NULL);
	} else {
		note(a, C_PTRACE, false, "PTRACE_ATTACH %s %d: %s", who, (int)pid, strerror(errno));
	}
	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) == 0) {
		note(a, C_PTRACE, true, "PTRACE_SEIZE %s %d", who, (int)pid);
		ptrace(PTRACE_DETACH, pid, NULL, NULL);
	} else {
		note(a, C_PTRACE, false, "PTRACE_SEIZE %s %d: %s", who, (int)pid, strerror(errno));
	}
	int k = kill(pid, 0);
	note(a, C_SIGNAL, k == 0, "kill(%s %d, 0): %s", who, (int)pid,
	     k == 0 ? "allowed" : strerror(errno));
}

static void attack_setuid(struct attack *a)
{
	int r = setuid(0);
	note(a, C_SETUID_ROOT, r == 0, "setuid(0): %s", r == 0 ? "became root" : strerror(errno));
	r = setresuid(0, 0, 0);
	note(a, C_SETUID_ROOT, r == 0, "setresuid(0, 0, 0): %s",
	     r == 0 ? "became root" : strerror(errno));
}

/* ---------------------------------------------------------------- (f) mmap */

static void attack_mmap(struct attack *a)
{
	for (int i = 0; i < a->ngot; i++) {
		void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, a->got[i], 0);
		note(a, C_MMAP, p != MAP_FAILED, "mmap %s: %s", a->got_what[i],
		     p != MAP_FAILED ? "mapped" : strerror(errno));
		if (p != MAP_FAILED)
			munmap(p, 4096);
		close(a->got[i]);
	}
	if (a->ngot == 0)
		note(a, C_MMAP, false, "nothing was obtained to map");
}

/* ---------------------------------------------------------------- controls */

/*
 * The same techniques against a process that is fair game - a forked child of this one,
 * same uid - must work: otherwise a failure above would prove nothing but a broken
 * attack. Results go under "controls".
 */
struct controls {
	bool proc_fd, pidfd_getfd, vm_read, ptrace;
};

static void run_controls(struct controls *k)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return;
	pid_t child = fork();
	if (child == 0) {
		close(p[1]);
		char c;
		ssize_t r = read(p[0], &c, 1); /* until the parent closes its end */
		(void)r;
		_exit(0);
	}
	if (child < 0) {
		close(p[0]);
		close(p[1]);
		return;
	}
	char path[64];
	/* The child holds the pipe's read end as p[0]. */
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)child, p[0]);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	k->proc_fd = fd >= 0;
	if (fd >= 0)
		close(fd);
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
	int pfd = (int)syscall(SYS_pidfd_open, child, 0);
	if (pfd >= 0) {
		fd = (int)syscall(SYS_pidfd_getfd, pfd, p[0], 0);
		k->pidfd_getfd = fd >= 0;
		if (fd >= 0)
			close(fd);
		close(pfd);
	}
#endif
	static char probe[16] = "control";
	char buf[16];
	struct iovec local = {buf, sizeof(buf)}, remote = {probe, sizeof(probe)};
	k->vm_read = process_vm_readv(child, &local, 1, &remote, 1, 0) == (ssize_t)sizeof(buf);
	if (ptrace(PTRACE_SEIZE, child, NULL, NULL) == 0) {
		k->ptrace = true;
		ptrace(PTRACE_DETACH, child, NULL, NULL);
	}
	close(p[0]);
	close(p[1]);
	waitpid(child, NULL, 0);
}

/* ---------------------------------------------------------------- report */

static bool tcp_reachable(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_port = htons((uint16_t)port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bool ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(fd);
	return ok;
}

/* What this process holds: the target of every /proc/self/fd link (not the listing's). */
static void own_fds(struct json *j)
{
	jprintf(j, ",\"own_fds\":[");
	DIR *d = opendir("/proc/self/fd");
	int dfd = d != NULL ? dirfd(d) : -1;
	struct dirent *de;
	bool first = true;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || atoi(de->d_name) == dfd)
			continue;
		char path[64], target[256];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", atoi(de->d_name));
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		jprintf(j, "%s{\"fd\":%d,\"target\":", first ? "" : ",", atoi(de->d_name));
		jstr(j, target);
		jputs(j, "}", 1);
		first = false;
	}
	if (d != NULL)
		closedir(d);
	jputs(j, "]", 1);
}

static void self_status(struct json *j)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "NoNewPrivs:", 11) == 0)
			jprintf(j, ",\"no_new_privs\":%d", atoi(line + 11));
		else if (strncmp(line, "CapEff:", 7) == 0) {
			line[strcspn(line, "\n")] = '\0';
			jprintf(j, ",\"cap_eff\":");
			jstr(j, line + 7 + strspn(line + 7, " \t"));
		}
	}
	if (f != NULL)
		fclose(f);
	gid_t groups[64];
	int n = getgroups(64, groups);
	jprintf(j, ",\"groups\":[");
	for (int i = 0; i < n; i++)
		jprintf(j, "%s%u", i ? "," : "", (unsigned)groups[i]);
	jprintf(j, "]");
}

static char *report(struct attack *a, const struct controls *ctl, int fabric_port)
{
	static const char *const names[C_COUNT] = {
	    "attach_self", "attach_child", "engine_fd", "dev_shm", "proc_fd_other", "victim_fd",
	    "pidfd_getfd", "vm_read",      "ptrace",    "signal",  "setuid_root",   "mmap"};
	struct json j = {0};
	unsigned tried = 0, succeeded = 0;
	jprintf(&j, "{\"pid\":%d,\"uid\":%u,\"gid\":%u,\"tenant\":%u", (int)getpid(),
	        (unsigned)getuid(), (unsigned)getgid(), (unsigned)rt.cfg.tenant);
	self_status(&j);
	own_fds(&j);
	jprintf(&j, ",\"engine_pid\":%d,\"victims\":[", (int)a->engine);
	for (int i = 0; i < a->nvictims; i++)
		jprintf(&j, "%s%d", i ? "," : "", (int)a->victims[i]);
	jprintf(&j, "],\"attempts\":{");
	for (int c = 0; c < C_COUNT; c++) {
		struct category *cat = &a->cat[c];
		tried += cat->tried;
		succeeded += cat->succeeded;
		jprintf(&j, "%s\"%s\":{\"tried\":%u,\"succeeded\":%u,\"successes\":[", c ? "," : "",
		        names[c], cat->tried, cat->succeeded);
		for (unsigned k = 0; k < cat->succeeded && k < MAX_SUCCESSES; k++) {
			if (k)
				jputs(&j, ",", 1);
			jstr(&j, cat->successes[k]);
		}
		jprintf(&j, "],\"failed_examples\":[");
		for (unsigned k = 0; k < cat->nexamples; k++) {
			if (k)
				jputs(&j, ",", 1);
			jstr(&j, cat->examples[k]);
		}
		jprintf(&j, "]}");
	}
	jprintf(&j, "},\"tried\":%u,\"succeeded\":%u", tried, succeeded);
	jprintf(&j,
	        ",\"controls\":{\"proc_fd\":%s,\"pidfd_getfd\":%s,\"vm_read\":%s,\"ptrace\":%s}",
	        ctl->proc_fd ? "true" : "false", ctl->pidfd_getfd ? "true" : "false",
	        ctl->vm_read ? "true" : "false", ctl->ptrace ? "true" : "false");
	jprintf(&j, ",\"info\":{");
	if (fabric_port > 0)
		jprintf(&j, "\"fabric_port\":%d,\"fabric_tcp_reachable\":%s", fabric_port,
		        tcp_reachable(fabric_port) ? "true" : "false");
	jprintf(&j, "}}\n");
	return j.buf;
}

static char *run_attack(const char *args, size_t n)
{
	struct attack *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->engine = getppid();
	int fabric_port = 0;
	char words[512];
	if (n >= sizeof(words))
		n = sizeof(words) - 1;
	memcpy(words, args, n);
	words[n] = '\0';
	char *save = NULL;
	for (char *w = strtok_r(words, " \t\r\n", &save); w != NULL;
	     w = strtok_r(NULL, " \t\r\n", &save)) {
		if (strncmp(w, "fabric=", 7) == 0)
			fabric_port = atoi(w + 7);
		else if (atoi(w) > 0)
			add_victim(a, (pid_t)atoi(w));
	}
	find_victims(a);

	attack_attach(a);
	attack_proc_of(a, C_ENGINE_FD, a->engine);
	attack_shared_memory(a);
	for (int i = 0; i < a->nvictims; i++)
		attack_proc_of(a, C_VICTIM_FD, a->victims[i]);
	for (int i = 0; i < a->nvictims; i++)
		attack_process(a, a->victims[i], "victim");
	attack_process(a, a->engine, "engine");
	attack_setuid(a);
	attack_mmap(a);
	struct controls k = {0};
	run_controls(&k);
	char *out = report(a, &k, fabric_port);
	free(a);
	return out;
}

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	size_t n;
	const char *in = pd_request_body(req, &n);
	if (n < 6 || memcmp(in, "attack", 6) != 0)
		return pd_response_append(res, in, n);
	char *out = run_attack(in + 6, n - 6);
	if (out == NULL)
		return pd_response_error(res, 500, "intruder: out of memory\n");
	pd_response_set_header(res, "content-type", "application/json");
	int rc = pd_response_append(res, out, strlen(out));
	free(out);
	if (rc != 0)
		return pd_response_error(res, 500, "intruder: report larger than the buffer\n");
	return 0;
}

int main(int argc, char **argv)
{
	return pd_serve(argc, argv, handle, NULL);
}
