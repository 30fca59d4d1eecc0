// SPDX-License-Identifier: Apache-2.0
/* The transport's floor: a raw libfabric loop that moves messages the way the engine does
 * (FI_EP_MSG endpoint, a shared receive context, one CQ with a wait fd, sends straight
 * from the buffer a message was received into, a receive reposted when its send
 * completes) and does nothing else: no rings, no functions, no scheduler, no credits on
 * the wire (a fixed window no larger than the posted receives stands for them).
 *
 *   floor relay PORT [options]          receive -> send back, until the driver says stop
 *   floor drive HOST PORT [options]     sends, counts what comes back, prints the result
 *
 * Options: --size BYTES (1024), --window N (messages in flight at once, 16), --rate R
 * (messages per second the driver starts; 0: peak, the window circulates), --seconds S
 * (5), --wait spin|sleep (spin: busy fi_cq_read; sleep: fi_trywait + epoll_wait),
 * --provider NAME (tcp).
 *
 * The driver prints one line: `floor: size=... rate=... wait=... msgs=<fabric messages,
 * both directions> seconds=... cpu_us=<driver> relay_cpu_us=<relay>`; cpu is user+system
 * time of the measured window. The relay reports its CPU in the payload of its last
 * message (the only bytes either side ever reads: the loop itself is payload-blind). */
#include <errno.h>
#include <inttypes.h>
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define FI_VER FI_VERSION(1, 17)
#define BATCH 16
/* Immediate data: what a message is. */
#define IMM_DATA 1u
#define IMM_STOP 2u

struct opts {
	size_t size;
	uint32_t window;
	uint64_t rate;
	double seconds;
	bool sleep;
	const char *provider;
};

struct loop {
	struct opts o;
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_eq *eq;
	struct fid_pep *pep;
	struct fid_ep *ep;
	struct fid_ep *srx;
	struct fid_cq *cq;
	struct fid_mr *mr;
	void *desc;
	uint8_t *bufs;
	uint32_t depth;
	struct fi_context2 *ctx; /* one per buffer: send and receive of a buffer never overlap */
	int cq_fd;
	int epfd;
	uint64_t msgs; /* fabric messages received + sent */
	bool stop;
};

static _Noreturn void die(const char *what, int ret)
{
	fprintf(stderr, "floor: %s: %s\n", what, ret < 0 ? fi_strerror(-ret) : strerror(ret));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static uint8_t *buf_of(struct loop *l, uint32_t i)
{
	return l->bufs + (size_t)i * l->o.size;
}

static uint32_t index_of(struct loop *l, void *op_context)
{
	return (uint32_t)((struct fi_context2 *)op_context - l->ctx);
}

static void post_recv(struct loop *l, uint32_t i)
{
	ssize_t ret;
	while ((ret = fi_recv(l->srx, buf_of(l, i), l->o.size, l->desc, FI_ADDR_UNSPEC,
	                      &l->ctx[i])) == -FI_EAGAIN)
		;
	if (ret != 0)
		die("fi_recv", (int)ret);
}

static void post_send(struct loop *l, uint32_t i, size_t len, uint64_t imm)
{
	ssize_t ret;
	struct fi_cq_data_entry e[BATCH];
	/* -FI_EAGAIN: the provider needs its completions read to make progress. */
	while ((ret = fi_senddata(l->ep, buf_of(l, i), len, l->desc, imm, FI_ADDR_UNSPEC,
	                          &l->ctx[i])) == -FI_EAGAIN)
		(void)fi_cq_read(l->cq, e, 0);
	if (ret != 0)
		die("fi_senddata", (int)ret);
}

static struct fi_info *hints_for(const struct opts *o)
{
	struct fi_info *h = fi_allocinfo();
	if (h == NULL)
		die("fi_allocinfo", ENOMEM);
	h->ep_attr->type = FI_EP_MSG;
	h->caps = FI_MSG;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->ep_attr->rx_ctx_cnt = FI_SHARED_CONTEXT;
	h->fabric_attr->prov_name = strdup(o->provider);
	return h;
}

static void open_domain(struct loop *l)
{
	int ret = fi_fabric(l->info->fabric_attr, &l->fabric, NULL);
	if (ret != 0)
		die("fi_fabric", ret);
	if ((ret = fi_domain(l->fabric, l->info, &l->domain, NULL)) != 0)
		die("fi_domain", ret);
	struct fi_eq_attr eq_attr = {.wait_obj = FI_WAIT_FD};
	if ((ret = fi_eq_open(l->fabric, &eq_attr, &l->eq, NULL)) != 0)
		die("fi_eq_open", ret);

	/* Buffers: the window's receives plus as many again, as the engine's pool has more
	 * buffers than it posts. */
	l->depth = l->o.window * 2;
	l->bufs = mmap(NULL, (size_t)l->depth * l->o.size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	l->ctx = calloc(l->depth, sizeof(*l->ctx));
	if (l->bufs == MAP_FAILED || l->ctx == NULL)
		die("buffers", ENOMEM);
	memset(l->bufs, 'x', (size_t)l->depth * l->o.size);
	if ((ret = fi_mr_reg(l->domain, l->bufs, (size_t)l->depth * l->o.size, FI_SEND | FI_RECV, 0,
	                     1, 0, &l->mr, NULL)) != 0)
		die("fi_mr_reg", ret);
	l->desc = (l->info->domain_attr->mr_mode & FI_MR_LOCAL) ? fi_mr_desc(l->mr) : NULL;

	struct fi_rx_attr rx_attr = *l->info->rx_attr;
	rx_attr.size = l->depth;
	if ((ret = fi_srx_context(l->domain, &rx_attr, &l->srx, NULL)) != 0)
		die("fi_srx_context", ret);
	struct fi_cq_attr cq_attr = {
	    .size = (size_t)l->depth * 2 + 64,
	    .format = FI_CQ_FORMAT_DATA,
	    .wait_obj = FI_WAIT_FD,
	};
	if ((ret = fi_cq_open(l->domain, &cq_attr, &l->cq, NULL)) != 0)
		die("fi_cq_open", ret);
	if ((ret = fi_ep_bind(l->srx, &l->cq->fid, FI_RECV)) != 0)
		die("fi_ep_bind(srx, cq)", ret);
	if ((ret = fi_control(&l->cq->fid, FI_GETWAIT, &l->cq_fd)) != 0)
		die("fi_control(FI_GETWAIT)", ret);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
	if (l->epfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->cq_fd, &ev) != 0)
		die("epoll", errno);
}

static void open_ep(struct loop *l, struct fi_info *info)
{
	int ret = fi_endpoint(l->domain, info, &l->ep, NULL);
	if (ret != 0)
		die("fi_endpoint", ret);
	if ((ret = fi_ep_bind(l->ep, &l->eq->fid, 0)) != 0)
		die("fi_ep_bind(eq)", ret);
	if ((ret = fi_ep_bind(l->ep, &l->cq->fid, FI_TRANSMIT | FI_RECV)) != 0)
		die("fi_ep_bind(cq)", ret);
	if ((ret = fi_ep_bind(l->ep, &l->srx->fid, 0)) != 0)
		die("fi_ep_bind(srx)", ret);
	if ((ret = fi_enable(l->ep)) != 0)
		die("fi_enable", ret);
}

/* Waits for one CM event; connection set-up advances only while the EQ is read. */
static uint32_t eq_wait(struct loop *l, struct fi_eq_cm_entry *entry)
{
	uint32_t event;
	char buf[sizeof(*entry) + 256];
	for (;;) {
		ssize_t ret = fi_eq_sread(l->eq, &event, buf, sizeof(buf), 1000, 0);
		if (ret == -FI_EAGAIN || ret == -FI_ETIMEDOUT)
			continue;
		if (ret < 0) {
			struct fi_eq_err_entry err = {0};
			fi_eq_readerr(l->eq, &err, 0);
			die("fi_eq_sread", err.err != 0 ? err.err : (int)-ret);
		}
		memcpy(entry, buf, sizeof(*entry));
		return event;
	}
}

/* Reads up to BATCH completions, sleeping on the CQ's fd first when asked to and there
 * is nothing to read. Returns how many entries it read. */
static int poll_cq(struct loop *l, struct fi_cq_data_entry *e, int extra_fd)
{
	ssize_t n = fi_cq_read(l->cq, e, BATCH);
	if (n == -FI_EAGAIN && l->o.sleep) {
		struct fid *fids[] = {&l->cq->fid};
		if (fi_trywait(l->fabric, fids, 1) == 0) {
			struct epoll_event ev[2];
			(void)epoll_wait(l->epfd, ev, 2, 100);
			(void)extra_fd;
		}
		n = fi_cq_read(l->cq, e, BATCH);
	}
	if (n == -FI_EAGAIN)
		return 0;
	if (n < 0) {
		struct fi_cq_err_entry err = {0};
		fi_cq_readerr(l->cq, &err, 0);
		die("fi_cq_read", err.err != 0 ? err.err : (int)-n);
	}
	return (int)n;
}

static int relay(const char *port, struct opts o)
{
	struct loop l = {.o = o};
	struct fi_info *h = hints_for(&o);
	int ret = fi_getinfo(FI_VER, "127.0.0.1", port, FI_SOURCE, h, &l.info);
	fi_freeinfo(h);
	if (ret != 0)
		die("fi_getinfo", ret);
	open_domain(&l);
	if ((ret = fi_passive_ep(l.fabric, l.info, &l.pep, NULL)) != 0)
		die("fi_passive_ep", ret);
	if ((ret = fi_pep_bind(l.pep, &l.eq->fid, 0)) != 0 || (ret = fi_listen(l.pep)) != 0)
		die("fi_listen", ret);
	for (uint32_t i = 0; i < l.depth; i++)
		post_recv(&l, i);
	printf("floor: relay listening\n");
	fflush(stdout);

	struct fi_eq_cm_entry entry;
	if (eq_wait(&l, &entry) != FI_CONNREQ)
		die("expected FI_CONNREQ", EPROTO);
	open_ep(&l, entry.info);
	if ((ret = fi_accept(l.ep, NULL, 0)) != 0)
		die("fi_accept", ret);
	fi_freeinfo(entry.info);
	if (eq_wait(&l, &entry) != FI_CONNECTED)
		die("expected FI_CONNECTED", EPROTO);

	uint64_t cpu0 = 0;
	uint32_t stop_idx = UINT32_MAX;
	bool started = false;
	struct fi_cq_data_entry e[BATCH];
	while (!l.stop) {
		int n = poll_cq(&l, e, -1);
		for (int k = 0; k < n; k++) {
			uint32_t i = index_of(&l, e[k].op_context);
			if (e[k].flags & FI_SEND) {
				l.msgs++;
				post_recv(&l, i);
				continue;
			}
			l.msgs++;
			if (!started) {
				started = true;
				cpu0 = cpu_us();
			}
			if (e[k].data == IMM_STOP) {
				/* Answer with this side's CPU, then leave. */
				uint64_t used = cpu_us() - cpu0;
				memcpy(buf_of(&l, i), &used, sizeof(used));
				post_send(&l, i, sizeof(used), IMM_STOP);
				stop_idx = i;
				l.stop = true;
				continue;
			}
			post_send(&l, i, e[k].len, IMM_DATA);
		}
	}
	/* Let the answer's send complete before closing. */
	for (uint64_t deadline = now_ns() + 2000000000u;
	     stop_idx != UINT32_MAX && now_ns() < deadline;) {
		int n = poll_cq(&l, e, -1);
		for (int k = 0; k < n; k++)
			if ((e[k].flags & FI_SEND) && index_of(&l, e[k].op_context) == stop_idx)
				stop_idx = UINT32_MAX;
	}
	fi_shutdown(l.ep, 0);
	return 0;
}

static int drive(const char *host, const char *port, struct opts o)
{
	struct loop l = {.o = o};
	struct fi_info *h = hints_for(&o);
	int ret = fi_getinfo(FI_VER, NULL, NULL, 0, h, &l.info);
	if (ret != 0)
		die("fi_getinfo", ret);
	open_domain(&l);
	struct fi_info *dest = NULL;
	ret = fi_getinfo(FI_VER, host, port, FI_NUMERICHOST, h, &dest);
	fi_freeinfo(h);
	if (ret != 0)
		die("fi_getinfo(peer)", ret);
	open_ep(&l, dest);
	/* Half the buffers take receives; the other half are the driver's to send from. */
	uint32_t *free_tx = calloc(l.depth, sizeof(*free_tx));
	uint32_t n_free = 0;
	for (uint32_t i = 0; i < l.o.window; i++)
		post_recv(&l, i);
	for (uint32_t i = l.o.window; i < l.depth; i++)
		free_tx[n_free++] = i;
	if ((ret = fi_connect(l.ep, dest->dest_addr, NULL, 0)) != 0)
		die("fi_connect", ret);
	fi_freeinfo(dest);
	struct fi_eq_cm_entry entry;
	if (eq_wait(&l, &entry) != FI_CONNECTED)
		die("expected FI_CONNECTED", EPROTO);

	int tfd = -1;
	if (o.rate > 0 && o.sleep) {
		tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		uint64_t gap = 1000000000u / o.rate;
		struct itimerspec its = {
		    .it_interval = {.tv_sec = (time_t)(gap / 1000000000u),
		                    .tv_nsec = (long)(gap % 1000000000u)},
		    .it_value = {.tv_sec = 0, .tv_nsec = 1},
		};
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 1};
		if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) != 0 ||
		    epoll_ctl(l.epfd, EPOLL_CTL_ADD, tfd, &ev) != 0)
			die("timerfd", errno);
	}

	uint64_t t0 = now_ns(), cpu0 = cpu_us();
	uint64_t end = t0 + (uint64_t)(o.seconds * 1e9);
	uint64_t started = 0, outstanding = 0, relay_cpu = 0;
	uint64_t gap_ns = o.rate > 0 ? 1000000000u / o.rate : 0;
	bool stopping = false, done = false;
	struct fi_cq_data_entry e[BATCH];
	while (!done) {
		uint64_t now = now_ns();
		if (!stopping && now >= end && outstanding == 0) {
			/* The stop message goes from a free buffer; its answer carries the relay's
			 * CPU. */
			stopping = true;
			post_send(&l, free_tx[--n_free], 8, IMM_STOP);
		}
		/* Start what the rate (or, at peak, the window) allows. */
		while (!stopping && now < end && outstanding < o.window && n_free > 0 &&
		       (o.rate == 0 ? started < o.window : started * gap_ns <= now - t0)) {
			post_send(&l, free_tx[--n_free], o.size, IMM_DATA);
			started++;
			outstanding++;
		}
		int n = poll_cq(&l, e, tfd);
		if (tfd >= 0) {
			uint64_t ticks;
			(void)!read(tfd, &ticks, sizeof(ticks));
		}
		for (int k = 0; k < n; k++) {
			uint32_t i = index_of(&l, e[k].op_context);
			l.msgs++;
			if (e[k].flags & FI_SEND) {
				if (i >= l.o.window)
					free_tx[n_free++] = i;
				else
					post_recv(&l, i); /* a receive buffer sent back at peak */
				continue;
			}
			if (e[k].data == IMM_STOP) {
				memcpy(&relay_cpu, buf_of(&l, i), sizeof(relay_cpu));
				l.msgs -= 2; /* the stop message and its answer are not load */
				done = true;
				continue;
			}
			if (o.rate == 0 && now_ns() < end) {
				post_send(&l, i, e[k].len,
				          IMM_DATA); /* peak: the window circulates */
			} else {
				outstanding--;
				post_recv(&l, i);
			}
		}
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	uint64_t used = cpu_us() - cpu0;
	printf("floor: size=%zu window=%u rate=%" PRIu64 " wait=%s msgs=%" PRIu64
	       " seconds=%.2f cpu_us=%" PRIu64 " relay_cpu_us=%" PRIu64 " cpu_us_per_msg=%.2f\n",
	       o.size, o.window, o.rate, o.sleep ? "sleep" : "spin", l.msgs, secs, used, relay_cpu,
	       l.msgs > 0 ? (double)(used + relay_cpu) / (double)l.msgs : 0.0);
	fi_shutdown(l.ep, 0);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: floor relay PORT [opts] | floor drive HOST PORT [opts]\n"
	                "opts: --size B --window N --rate R --seconds S --wait spin|sleep "
	                "--provider P\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts o = {.size = 1024, .window = 16, .seconds = 5, .provider = "tcp"};
	if (argc < 3)
		usage();
	int pos = strcmp(argv[1], "drive") == 0 ? 4 : 3;
	if (argc < pos)
		usage();
	for (int i = pos; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (strcmp(k, "--size") == 0)
			o.size = strtoull(v, NULL, 10);
		else if (strcmp(k, "--window") == 0)
			o.window = (uint32_t)strtoul(v, NULL, 10);
		else if (strcmp(k, "--rate") == 0)
			o.rate = strtoull(v, NULL, 10);
		else if (strcmp(k, "--seconds") == 0)
			o.seconds = strtod(v, NULL);
		else if (strcmp(k, "--wait") == 0)
			o.sleep = strcmp(v, "sleep") == 0;
		else if (strcmp(k, "--provider") == 0)
			o.provider = v;
		else
			usage();
	}
	if (o.size < 8 || o.window == 0 || o.seconds <= 0)
		usage();
	if (strcmp(argv[1], "relay") == 0)
		return relay(argv[2], o);
	if (strcmp(argv[1], "drive") == 0)
		return drive(argv[2], argv[3], o);
	usage();
}
