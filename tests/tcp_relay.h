/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A TCP relay on 127.0.0.1 that records, for each connection it carries, what the client
 * sent before the server's first byte came back: with libfabric's tcp provider, that is
 * exactly the connection request (the client waits for the answer before sending
 * anything else). tcp_replay() sends such a record again on a new connection: a
 * replay attack on the fabric's hello, made with bytes captured off the wire, with no
 * help from the fabric layer. For tests (test_fabric, fabric_probe) only.
 */
#ifndef PD_TESTS_TCP_RELAY_H
#define PD_TESTS_TCP_RELAY_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TCP_RELAY_CONNS 8
#define TCP_RELAY_RECORD_MAX 1024

struct tcp_relay_conn {
	int c, s;      /* client side (accepted), server side; -1: closed */
	bool answered; /* the server has sent something: recording stopped */
	size_t len;
	uint8_t rec[TCP_RELAY_RECORD_MAX];
};

struct tcp_relay {
	int lfd;
	uint16_t port; /* where the relay listens */
	uint16_t target;
	unsigned n; /* connections carried so far (records) */
	struct tcp_relay_conn conns[TCP_RELAY_CONNS];
};

/* A blocking TCP connection to 127.0.0.1:port, or -errno. */
static inline int tcp_connect_lo(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static inline int tcp_relay_open(struct tcp_relay *r, uint16_t target)
{
	memset(r, 0, sizeof(*r));
	r->target = target;
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->lfd < 0)
		return -errno;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	if (bind(r->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(r->lfd, 8) != 0 ||
	    getsockname(r->lfd, (struct sockaddr *)&a, &alen) != 0) {
		int err = -errno;
		close(r->lfd);
		r->lfd = -1;
		return err;
	}
	r->port = ntohs(a.sin_port);
	return 0;
}

/* The relay's fds to poll for reading, into pfd (at most max); returns how many. */
static inline int tcp_relay_fds(const struct tcp_relay *r, struct pollfd *pfd, int max)
{
	int n = 0;
	if (r->lfd >= 0 && n < max)
		pfd[n++] = (struct pollfd){.fd = r->lfd, .events = POLLIN};
	for (unsigned i = 0; i < r->n && i < TCP_RELAY_CONNS; i++) {
		const struct tcp_relay_conn *rc = &r->conns[i];
		if (rc->c >= 0 && n + 2 <= max) {
			pfd[n++] = (struct pollfd){.fd = rc->c, .events = POLLIN};
			pfd[n++] = (struct pollfd){.fd = rc->s, .events = POLLIN};
		}
	}
	return n;
}

static inline bool tcp_write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		len -= (size_t)w;
	}
	return true;
}

static inline void tcp_relay_drop(struct tcp_relay_conn *rc)
{
	close(rc->c);
	close(rc->s);
	rc->c = rc->s = -1;
}

/* Handle what poll() reported on the fds of tcp_relay_fds(). */
static inline void tcp_relay_service(struct tcp_relay *r, const struct pollfd *pfd, int n)
{
	uint8_t buf[65536];
	for (int k = 0; k < n; k++) {
		if (pfd[k].revents == 0)
			continue;
		if (pfd[k].fd == r->lfd) {
			int c = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
			if (c < 0)
				continue;
			int s = r->n < TCP_RELAY_CONNS ? tcp_connect_lo(r->target) : -1;
			if (s < 0) {
				close(c);
				continue;
			}
			r->conns[r->n++] = (struct tcp_relay_conn){.c = c, .s = s};
			continue;
		}
		for (unsigned i = 0; i < r->n; i++) {
			struct tcp_relay_conn *rc = &r->conns[i];
			if (rc->c < 0 || (pfd[k].fd != rc->c && pfd[k].fd != rc->s))
				continue;
			bool from_client = pfd[k].fd == rc->c;
			ssize_t got = read(pfd[k].fd, buf, sizeof(buf));
			if (got <= 0) {
				tcp_relay_drop(rc);
				break;
			}
			if (from_client && !rc->answered) {
				size_t room = TCP_RELAY_RECORD_MAX - rc->len;
				size_t take = (size_t)got < room ? (size_t)got : room;
				memcpy(rc->rec + rc->len, buf, take);
				rc->len += take;
			}
			if (!from_client)
				rc->answered = true;
			if (!tcp_write_all(from_client ? rc->s : rc->c, buf, (size_t)got))
				tcp_relay_drop(rc);
			break;
		}
	}
}

static inline void tcp_relay_close(struct tcp_relay *r)
{
	for (unsigned i = 0; i < r->n; i++)
		if (r->conns[i].c >= 0)
			tcp_relay_drop(&r->conns[i]);
	if (r->lfd >= 0)
		close(r->lfd);
	r->lfd = -1;
}

/*
 * Send len bytes to 127.0.0.1:port on a new TCP connection, then wait up to timeout_ms
 * for the server to answer or close it. Returns the bytes of the answer (0: closed
 * without one), -ETIMEDOUT, or another -errno.
 */
static inline int tcp_replay(uint16_t port, const uint8_t *bytes, size_t len, int timeout_ms)
{
	int fd = tcp_connect_lo(port);
	if (fd < 0)
		return fd;
	int ret = -EIO;
	if (tcp_write_all(fd, bytes, len)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int ready = poll(&p, 1, timeout_ms);
		if (ready > 0) {
			uint8_t buf[4096];
			ssize_t got = read(fd, buf, sizeof(buf));
			ret = got >= 0 ? (int)got : (errno == ECONNRESET ? 0 : -errno);
		} else {
			ret = ready == 0 ? -ETIMEDOUT : -errno;
		}
	}
	close(fd);
	return ret;
}

#endif
