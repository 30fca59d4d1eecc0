/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The function API of include/palladium/function.h over HTTP/1.1 with h2o: the baseline
 * of the Knative-style comparison (bench/knative). Each hop is an HTTP server that runs
 * the handler on the request and, with --next, POSTs the handler's output to the next
 * hop over a pooled keep-alive connection and answers with what comes back.
 *
 * Threads: --threads N event loops, each with its own listening socket (SO_REUSEPORT),
 * its own connection pool to the next hop and its own body buffers. A request lives on
 * one loop from start to end; nothing is shared between loops but the configuration.
 *
 * Calls (pd_call_*): a call is an HTTP/1.1 request from this adapter to the callee's
 * address given with --call NAME=URL (its sidecar, or its adapter), over a keep-alive
 * connection pooled per loop and callee. The handler runs on the loop's thread, so it
 * blocks there while it waits, as a handler with a blocking HTTP client would: sends go
 * out at once, and the waits poll(2) every connection of the request's calls together,
 * so a fan-out runs in parallel. The time left of the request's deadline and the call
 * depth travel as the headers pd-deadline-ms and pd-call-depth, which the callee's
 * adapter takes as its request's deadline and depth. Answers are parsed with
 * picohttpparser as h2o ships it.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/http1client.h>
#include <h2o/socketpool.h>

#include "common/http_status.h"
#include "common/http_token.h"
#include "palladium/function.h"

/*
 * picohttpparser, as libh2o-evloop 2.2.5 carries it (its header is not installed): the
 * declarations of deps/picohttpparser/picohttpparser.h of that release. The chunked
 * decoder's layout is that release's (16 bytes; later releases added counters).
 */
struct phr_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};
int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status,
                       const char **msg, size_t *msg_len, struct phr_header *headers,
                       size_t *num_headers, size_t last_len);
struct phr_chunked_decoder {
	size_t bytes_left_in_chunk;
	char consume_trailer;
	char _hex_count;
	char _state;
};
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#define DEFAULT_MAX_BODY (1024 * 1024)
#define MAX_MAX_BODY (1024UL * 1024 * 1024)
#define MAX_THREADS 256
#define ACCEPT_BURST 32
/* A next hop that does not connect, take the request or answer within this: 504. */
#define NEXT_TIMEOUT_MS 10000
/* Idle pooled connections to the next hop are closed after this, well before the next
 * hop (h2o: 10 s, nginx: 75 s) would close them and race a new request. */
#define POOL_IDLE_MS 2000
/* Idle client connections are kept longer than nginx keeps idle upstream connections
 * (keepalive_timeout 60 s) so that nginx, not us, closes them: a POST on a connection
 * we closed meanwhile would not be retried by nginx. Also the request read timeout. */
#define CLIENT_IDLE_MS 120000
/* Body buffers kept for reuse per loop (each --max-body bytes, pages touched on use). */
#define RECYCLED_BODIES 64
#define DRAIN_MS 500
#define ERROR_MESSAGE_MAX 512
#define HOP_MAX 65535

/* Calls. */
#define MAX_CALLEES 64
#define DEFAULT_MAX_CALL_DEPTH 16
#define MAX_MAX_CALL_DEPTH 64
/* A request that carries no pd-deadline-ms (from a client) has this long for its calls,
 * like a route's timeout. */
#define DEFAULT_DEADLINE_MS 10000
#define MAX_DEADLINE_MS 3600000
/* Calls of one request not yet released; more get 503 (bounds the poll set). */
#define CALLS_MAX 256
/* Released calls kept per loop for the next ones. */
#define SPARE_CALLS 64
/* Idle keep-alive connections kept per loop and callee; idle ones are closed after
 * POOL_IDLE_MS, well before the callee (h2o, nginx) would close them under a request. */
#define POOL_CONNS_MAX 64
#define CALL_METHOD_MAX 16
#define CALL_TARGET_MAX 1024
#define CALL_HEADERS_MAX 2048
#define CALLEE_URL_MAX 512
/* The request head we write: request line, host, framing, pd-* and the handler's
 * headers; each part is bounded above, so the head always fits. */
#define CALL_HEAD_MAX                                                                              \
	(CALL_METHOD_MAX + CALL_TARGET_MAX + 2 * CALLEE_URL_MAX + CALL_HEADERS_MAX + 256)
#define CALL_ERROR_MAX 192
#define ANSWER_HEAD_MAX 16384
#define ANSWER_HEADERS_MAX 64
/* 1xx heads skipped before the final one. */
#define ANSWER_INTERIM_MAX 4
/* Room for the chunk framing of a chunked answer of --max-body bytes. */
#define CHUNK_SLACK 4096

struct worker {
	unsigned index;
	int listen_fd;
	int wake_fd;
	sem_t done;
	bool stop;
	size_t inflight;
	h2o_evloop_t *loop;
	h2o_context_t ctx;
	h2o_accept_ctx_t accept_ctx;
	h2o_socket_t *listener;
	h2o_socket_t *wake;
	h2o_timeout_t next_timeout;
	h2o_http1client_ctx_t client_ctx;
	h2o_socketpool_t next_pool;
	h2o_mem_recycle_t bodies;
	/* Calls: those of the request being handled (the handler runs on this thread, one
	 * request at a time), released ones for reuse, the idle connections per callee. */
	h2o_linklist_t calls;
	size_t ncalls;
	h2o_linklist_t spare_calls;
	size_t nspare_calls;
	struct conn_pool *pools;
	h2o_mem_recycle_t answers;
	struct pollfd pollset[CALLS_MAX];
	struct pd_call *polled[CALLS_MAX];
};

/* A function this one may call (--call NAME=URL). */
struct callee {
	const char *name;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	h2o_iovec_t authority; /* the host header */
	h2o_iovec_t prefix;    /* the URL's path without its trailing '/', before the call's */
};

struct idle_conn {
	int fd;
	uint64_t since_ms;
};

/* Idle connections to one callee, oldest first. */
struct conn_pool {
	struct idle_conn idle[POOL_CONNS_MAX];
	size_t n;
};

struct adapter {
	pd_handler handler;
	void *arg;
	size_t max_body;
	size_t body_buf_size;
	unsigned nthreads;
	bool has_next;
	struct sockaddr_storage next_addr;
	socklen_t next_addrlen;
	h2o_iovec_t next_head; /* "POST <path> HTTP/1.1\r\nhost: <authority>\r\n" */
	struct callee callees[MAX_CALLEES];
	unsigned ncallees;
	unsigned max_call_depth;
	unsigned deadline_ms;
	size_t answer_buf_size;
	h2o_globalconf_t globalconf;
	h2o_hostconf_t *hosts[2];
	struct worker *workers;
};

struct pd_request {
	h2o_req_t *req;
	unsigned hop;
	unsigned chain_length;
	uint64_t deadline_ns; /* CLOCK_MONOTONIC: the request's calls end by then */
	unsigned call_depth;  /* 0 from a client, n in a call n deep */
};

struct pd_response {
	char *body; /* from the loop's recycled buffers; NULL until reserved */
	size_t reserved;
	size_t len;
	int status;
	bool forward;
	bool error;
	h2o_iovec_t error_message;
};

/* One request on one loop, in the request's pool; disposed with it. */
struct exchange {
	struct pd_request request;
	struct pd_response response;
	struct worker *w;
	h2o_http1client_t *client; /* while the next hop has the request */
	h2o_iovec_t next_req[3];   /* head, per-request headers, body */
	size_t next_req_count;
	int next_status;
	h2o_iovec_t next_content_type;
	h2o_buffer_t *next_body; /* the next hop's answer, taken over from the socket */
};

static struct adapter ad;

/* Every response here is complete in one h2o_send(): nothing to proceed or stop. */
static h2o_generator_t final_generator = {NULL, NULL};

/* ---- answers ------------------------------------------------------------------------ */

static void send_response(h2o_req_t *req, int status, h2o_iovec_t body)
{
	if (status < 200 || status > 599)
		status = 500; /* a 1xx is no final answer */
	bool no_body = status == 204 || status == 304;
	req->res.status = status;
	req->res.reason = pd_http_reason(status);
	req->res.content_length = no_body ? SIZE_MAX : body.len;
	h2o_start_response(req, &final_generator);
	if (no_body || body.len == 0 ||
	    h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
		h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
	else
		h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

/* A platform answer: text/plain, whatever headers the handler had set are dropped. */
static void send_text(h2o_req_t *req, int status, const char *text, size_t len)
{
	req->res.headers.size = 0;
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
	               H2O_STRLIT("text/plain; charset=utf-8"));
	send_response(req, status, h2o_iovec_init(text, len));
}

#define SEND_TEXT(req, status, lit) send_text((req), (status), H2O_STRLIT(lit))

/* ---- the request accessors ---------------------------------------------------------- */

static bool name_is(const h2o_iovec_t *name, const char *s, size_t n)
{
	return name->len == n && strncasecmp(name->base, s, n) == 0;
}

static const h2o_iovec_t *find_header(const h2o_req_t *req, const char *name, size_t n)
{
	for (size_t i = 0; i < req->headers.size; i++)
		if (name_is(req->headers.entries[i].name, name, n))
			return &req->headers.entries[i].value;
	return NULL;
}

PD_API const char *pd_request_body(const pd_request *req, size_t *len)
{
	const h2o_req_t *r = req->req;
	*len = r->entity.base != NULL ? r->entity.len : 0;
	return r->entity.base != NULL ? r->entity.base : "";
}

static const char *iovec_out(h2o_iovec_t v, size_t *len)
{
	if (len != NULL)
		*len = v.base != NULL ? v.len : 0;
	return v.base != NULL ? v.base : "";
}

PD_API const char *pd_request_method(const pd_request *req, size_t *len)
{
	return iovec_out(req->req->method, len);
}

PD_API const char *pd_request_path(const pd_request *req, size_t *len)
{
	return iovec_out(req->req->path_normalized, len);
}

PD_API const char *pd_request_query(const pd_request *req, size_t *len)
{
	const h2o_req_t *r = req->req;
	if (r->query_at == SIZE_MAX || r->query_at >= r->path.len)
		return iovec_out(h2o_iovec_init(NULL, 0), len);
	return iovec_out(
	    h2o_iovec_init(r->path.base + r->query_at + 1, r->path.len - r->query_at - 1), len);
}

PD_API const char *pd_request_header(const pd_request *req, const char *name, size_t *len)
{
	if (name == NULL)
		return NULL;
	size_t n = strlen(name);
	const h2o_req_t *r = req->req;
	/* h2o keeps Host aside (as the authority); functions see it as a header. */
	if (n == 4 && strncasecmp(name, "host", 4) == 0 && r->input.authority.len != 0)
		return iovec_out(r->input.authority, len);
	const h2o_iovec_t *v = find_header(r, name, n);
	return v != NULL ? iovec_out(*v, len) : NULL;
}

PD_API unsigned pd_request_hop(const pd_request *req)
{
	return req->hop;
}

PD_API unsigned pd_request_chain_length(const pd_request *req)
{
	return req->chain_length;
}

/* ---- the response ------------------------------------------------------------------- */

static struct exchange *exchange_of(pd_response *res)
{
	return H2O_STRUCT_FROM_MEMBER(struct exchange, response, res);
}

PD_API char *pd_response_reserve(pd_response *res, size_t n)
{
	if (n > ad.max_body)
		return NULL;
	if (res->body == NULL)
		res->body = h2o_mem_alloc_recycle(&exchange_of(res)->w->bodies, ad.body_buf_size);
	res->forward = false;
	if (n > res->reserved)
		res->reserved = n;
	return res->body;
}

PD_API size_t pd_response_capacity(const pd_response *res)
{
	(void)res;
	return ad.max_body;
}

PD_API int pd_response_commit(pd_response *res, size_t n)
{
	if (n > res->reserved)
		return -1;
	res->len = n;
	return 0;
}

PD_API int pd_response_append(pd_response *res, const void *data, size_t n)
{
	if (n > ad.max_body - res->len)
		return -1;
	char *p = pd_response_reserve(res, res->len + n);
	if (p == NULL)
		return -1;
	memcpy(p + res->len, data, n);
	res->len += n;
	return 0;
}

PD_API int pd_response_forward(pd_response *res)
{
	res->forward = true;
	return 0;
}

PD_API void pd_response_set_status(pd_response *res, int status)
{
	if (status >= 100 && status <= 599)
		res->status = status;
}

/* Headers that frame the message belong to h2o, not to the function. */
static bool is_framing_header(const char *name, size_t n)
{
	static const char *const names[] = {"connection", "content-length", "keep-alive",
	                                    "transfer-encoding", "upgrade"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (n == strlen(names[i]) && strncasecmp(name, names[i], n) == 0)
			return true;
	return false;
}

PD_API int pd_response_set_header(pd_response *res, const char *name, const char *value)
{
	if (name == NULL || value == NULL || !pd_http_name_ok(name) || !pd_http_value_ok(value))
		return -1;
	size_t n = strlen(name);
	if (is_framing_header(name, n))
		return 0;
	h2o_req_t *req = exchange_of(res)->request.req;
	h2o_iovec_t lc = h2o_strdup(&req->pool, name, n);
	h2o_strtolower(lc.base, lc.len);
	h2o_iovec_t v = h2o_strdup(&req->pool, value, strlen(value));
	h2o_add_header_by_str(&req->pool, &req->res.headers, lc.base, lc.len, 1, NULL, v.base,
	                      v.len);
	return 0;
}

PD_API int pd_response_error(pd_response *res, int status, const char *message)
{
	if (status < 400 || status > 599)
		status = 500;
	res->status = status;
	res->error = true;
	size_t n = message != NULL ? strnlen(message, ERROR_MESSAGE_MAX) : 0;
	res->error_message =
	    h2o_strdup(&exchange_of(res)->request.req->pool, message != NULL ? message : "", n);
	return 0;
}

/* ---- the next hop ------------------------------------------------------------------- */

static void next_failed(struct exchange *x, const char *errstr)
{
	if (strstr(errstr, "timeout") != NULL)
		SEND_TEXT(x->request.req, 504, "next hop timed out\n");
	else
		SEND_TEXT(x->request.req, 502, "next hop failed\n");
}

static void reply_with_next(struct exchange *x, h2o_iovec_t body)
{
	h2o_req_t *req = x->request.req;
	req->res.headers.size = 0;
	if (x->next_content_type.base != NULL)
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
		               x->next_content_type.base, x->next_content_type.len);
	send_response(req, x->next_status, body);
}

static int on_next_body(h2o_http1client_t *client, const char *errstr)
{
	struct exchange *x = client->data;
	if (errstr == NULL) {
		/* The body gathers in the socket's buffer until the end. */
		if (client->sock->input->size > ad.max_body) {
			x->client = NULL;
			SEND_TEXT(x->request.req, 502, "answer of the next hop too large\n");
			return -1;
		}
		return 0;
	}
	x->client = NULL;
	if (errstr != h2o_http1client_error_is_eos) {
		next_failed(x, errstr);
		return 0;
	}
	/* Take the buffer over (as h2o's proxy does): h2o writes the answer from it. */
	x->next_body = client->sock->input;
	h2o_buffer_init(&client->sock->input, &h2o_socket_buffer_prototype);
	reply_with_next(x, h2o_iovec_init(x->next_body->bytes, x->next_body->size));
	return 0;
}

static h2o_http1client_body_cb on_next_head(h2o_http1client_t *client, const char *errstr,
                                            int minor_version, int status, h2o_iovec_t msg,
                                            h2o_header_t *headers, size_t num_headers, int rlen)
{
	struct exchange *x = client->data;
	h2o_req_t *req = x->request.req;
	(void)minor_version;
	(void)msg;
	(void)rlen;
	if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
		x->client = NULL;
		next_failed(x, errstr);
		return NULL;
	}
	if (status < 200 || status > 599) {
		x->client = NULL;
		SEND_TEXT(req, 502, "bad answer from the next hop\n");
		return NULL;
	}
	for (size_t i = 0; i < num_headers; i++) {
		if (headers[i].name == &H2O_TOKEN_CONTENT_TYPE->buf) {
			/* The header block goes once the head is parsed: keep a copy. */
			x->next_content_type =
			    h2o_strdup(&req->pool, headers[i].value.base, headers[i].value.len);
		} else if (headers[i].name == &H2O_TOKEN_CONTENT_LENGTH->buf &&
		           h2o_strtosize(headers[i].value.base, headers[i].value.len) >
		               ad.max_body) {
			x->client = NULL;
			SEND_TEXT(req, 502, "answer of the next hop too large\n");
			return NULL;
		}
	}
	x->next_status = status;
	if (errstr == h2o_http1client_error_is_eos) {
		x->client = NULL;
		reply_with_next(x, h2o_iovec_init(NULL, 0));
		return NULL;
	}
	return on_next_body;
}

static h2o_http1client_head_cb on_next_connect(h2o_http1client_t *client, const char *errstr,
                                               h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                               int *method_is_head)
{
	struct exchange *x = client->data;
	if (errstr != NULL) {
		x->client = NULL;
		next_failed(x, errstr);
		return NULL;
	}
	*reqbufs = x->next_req;
	*reqbufcnt = x->next_req_count;
	*method_is_head = 0;
	return on_next_head;
}

/* POST body to the next hop; the answer comes back through the callbacks above. */
static void forward_to_next(struct exchange *x, h2o_iovec_t body)
{
	h2o_req_t *req = x->request.req;
	/* The handler's content-type, else the request's, travels on. */
	h2o_iovec_t ctype = h2o_iovec_init(NULL, 0);
	ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
	if (i >= 0) {
		ctype = req->res.headers.entries[i].value;
	} else if ((i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1)) >= 0) {
		ctype = req->headers.entries[i].value;
	}
	const h2o_iovec_t *chain = find_header(req, H2O_STRLIT("x-pd-chain-length"));

	static const char ct_name[] = "content-type: ", chain_name[] = "x-pd-chain-length: ";
	size_t cap = sizeof("content-length: \r\nx-pd-hop: \r\n\r\n") +
	             2 * sizeof("18446744073709551615") +
	             (chain != NULL ? sizeof(chain_name) + 2 + chain->len : 0) +
	             (ctype.base != NULL ? sizeof(ct_name) + 2 + ctype.len : 0);
	char *h = h2o_mem_alloc_pool(&req->pool, cap);
	int n = snprintf(h, cap, "content-length: %zu\r\nx-pd-hop: %u\r\n", body.len,
	                 x->request.hop + 1);
	size_t len = n > 0 ? (size_t)n : 0;
	if (chain != NULL) {
		memcpy(h + len, chain_name, sizeof(chain_name) - 1);
		len += sizeof(chain_name) - 1;
		memcpy(h + len, chain->base, chain->len);
		len += chain->len;
		memcpy(h + len, "\r\n", 2);
		len += 2;
	}
	if (ctype.base != NULL) {
		memcpy(h + len, ct_name, sizeof(ct_name) - 1);
		len += sizeof(ct_name) - 1;
		memcpy(h + len, ctype.base, ctype.len);
		len += ctype.len;
		memcpy(h + len, "\r\n", 2);
		len += 2;
	}
	memcpy(h + len, "\r\n", 2);
	len += 2;

	x->next_req[0] = ad.next_head;
	x->next_req[1] = h2o_iovec_init(h, len);
	x->next_req[2] = body;
	x->next_req_count = body.len != 0 ? 3 : 2;
	req->res.headers.size = 0; /* the answer carries the next hop's headers */
	/* May call back at once (a pooled connection, or a refused connect). */
	h2o_http1client_connect_with_pool(&x->client, x, &x->w->client_ctx, &x->w->next_pool,
	                                  on_next_connect);
}

/* ---- calls -------------------------------------------------------------------------- */

enum call_state {
	CALL_NEW,        /* being filled */
	CALL_CONNECTING, /* a new connection, not yet up */
	CALL_WRITING,    /* the request is going out */
	CALL_READING,    /* the answer is coming in */
	CALL_DONE,       /* status, headers and body are final */
};

enum answer_framing { FRAME_LENGTH, FRAME_CHUNKED, FRAME_TO_EOF, FRAME_NONE };

struct pd_call {
	h2o_linklist_t link; /* in worker.calls, or worker.spare_calls */
	struct worker *w;
	const struct callee *callee;
	enum call_state state;
	int status;
	int fd;
	bool reused;    /* fd came from the pool: it may have been closed under us */
	bool retried;   /* one retry on a new connection was made */
	bool keepalive; /* the connection may go back to the pool after the answer */
	bool has_timeout;
	unsigned timeout_ms;
	unsigned depth;
	uint64_t deadline_ns;
	/* the request */
	char *body; /* from the loop's recycled body buffers; NULL until reserved */
	size_t reserved, len;
	char method[CALL_METHOD_MAX];
	char target[CALL_TARGET_MAX]; /* path[?query] */
	char headers[CALL_HEADERS_MAX];
	size_t headers_len;
	char head[CALL_HEAD_MAX];
	struct iovec out[2];
	size_t out_sent, out_total;
	/* the answer, parsed in place in `in` */
	char *in;
	size_t in_len;
	bool head_done;
	unsigned interim;
	enum answer_framing framing;
	size_t content_length;
	struct phr_chunked_decoder chunked;
	size_t body_off, body_len;
	struct phr_header answer_headers[ANSWER_HEADERS_MAX];
	size_t nanswer_headers;
	const char *answer;
	size_t answer_len;
	char error[CALL_ERROR_MAX];
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ms(void)
{
	return now_ns() / 1000000;
}

static struct conn_pool *pool_of(const struct pd_call *c)
{
	return &c->w->pools[c->callee - ad.callees];
}

/* The most recently idle connection to the callee that has not idled too long, or -1. */
static int pool_take(struct pd_call *c)
{
	struct conn_pool *p = pool_of(c);
	if (p->n == 0)
		return -1;
	uint64_t now = now_ms();
	size_t stale = 0;
	while (stale < p->n && now - p->idle[stale].since_ms >= POOL_IDLE_MS)
		close(p->idle[stale++].fd);
	if (stale > 0) {
		memmove(p->idle, p->idle + stale, (p->n - stale) * sizeof(p->idle[0]));
		p->n -= stale;
	}
	return p->n > 0 ? p->idle[--p->n].fd : -1;
}

static void pool_put(struct pd_call *c, int fd)
{
	struct conn_pool *p = pool_of(c);
	if (p->n == POOL_CONNS_MAX) {
		close(p->idle[0].fd);
		memmove(p->idle, p->idle + 1, (p->n - 1) * sizeof(p->idle[0]));
		p->n--;
	}
	p->idle[p->n++] = (struct idle_conn){.fd = fd, .since_ms = now_ms()};
}

/* The call ends with a status of ours and a short text saying why. */
__attribute__((format(printf, 3, 4))) static void call_fail(struct pd_call *c, int status,
                                                            const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	c->status = status;
	c->answer = c->error;
	c->answer_len = n < 0 ? 0 : (size_t)n < sizeof(c->error) ? (size_t)n : sizeof(c->error) - 1;
	c->nanswer_headers = 0;
	c->head_done = false;
	c->state = CALL_DONE;
}

/* The answer is complete: the connection goes back to the pool if it may. */
static void call_done(struct pd_call *c)
{
	if (c->keepalive)
		pool_put(c, c->fd);
	else
		close(c->fd);
	c->fd = -1;
	c->answer = c->in + c->body_off;
	c->answer_len = c->body_len;
	c->state = CALL_DONE;
}

static void call_write(struct pd_call *c);

static void call_connect(struct pd_call *c)
{
	const struct callee *ce = c->callee;
	int fd = socket(ce->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		call_fail(c, 502, "cannot connect to %s: socket: %s\n", ce->name, strerror(errno));
		return;
	}
	/* The head and the body go out in one sendmsg; the answer must not wait for Nagle. */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->reused = false;
	if (connect(fd, (const struct sockaddr *)&ce->addr, ce->addrlen) == 0) {
		c->state = CALL_WRITING;
	} else if (errno == EINPROGRESS) {
		c->state = CALL_CONNECTING;
	} else {
		call_fail(c, 502, "cannot connect to %s: %s\n", ce->name, strerror(errno));
	}
}

/* The connection failed (err) before the answer was complete: 502, or once, when a
 * pooled connection turns out closed before any byte of an answer, a new connection. */
static void call_broken(struct pd_call *c, int err, const char *what)
{
	if (c->reused && !c->retried && c->in_len == 0) {
		close(c->fd);
		c->fd = -1;
		c->retried = true;
		c->out_sent = 0;
		call_connect(c);
		if (c->state == CALL_WRITING)
			call_write(c);
		return;
	}
	if (err != 0)
		call_fail(c, 502, "call to %s: %s: %s\n", c->callee->name, what, strerror(err));
	else
		call_fail(c, 502, "call to %s: %s\n", c->callee->name, what);
}

static void call_write(struct pd_call *c)
{
	while (c->out_sent < c->out_total) {
		struct iovec iov[2];
		int k = 0;
		size_t skip = c->out_sent;
		for (int i = 0; i < 2; i++) {
			if (skip >= c->out[i].iov_len) {
				skip -= c->out[i].iov_len;
				continue;
			}
			iov[k].iov_base = (char *)c->out[i].iov_base + skip;
			iov[k].iov_len = c->out[i].iov_len - skip;
			skip = 0;
			k++;
		}
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)k};
		ssize_t r = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			call_broken(c, errno, "sending");
			return;
		}
		c->out_sent += (size_t)r;
	}
	c->state = CALL_READING;
}

static bool token_is(const char *p, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return n == l && strncasecmp(p, lit, l) == 0;
}

/* Whether the comma-separated list v holds token lit (or, last, only checks the last). */
static bool list_has(const char *v, size_t n, const char *lit, bool last)
{
	bool found = false;
	while (n > 0) {
		const char *comma = memchr(v, ',', n);
		size_t l = comma != NULL ? (size_t)(comma - v) : n;
		found = token_is(v, l, lit);
		if (found && !last)
			return true;
		if (comma == NULL)
			break;
		n -= l + 1;
		v = comma + 1;
	}
	return found;
}

static bool phr_name_is(const struct phr_header *h, const char *lit)
{
	size_t l = strlen(lit);
	return h->name != NULL && h->name_len == l && strncasecmp(h->name, lit, l) == 0;
}

/* The head is complete (hl bytes, status): how the body is framed. 0 or -1 (failed). */
static int call_take_head(struct pd_call *c, int hl, int minor, int status)
{
	bool chunked = false, has_length = false, close_conn = minor < 1;
	size_t length = 0;
	for (size_t i = 0; i < c->nanswer_headers; i++) {
		const struct phr_header *h = &c->answer_headers[i];
		if (phr_name_is(h, "connection")) {
			if (list_has(h->value, h->value_len, "close", false))
				close_conn = true;
			else if (minor < 1 && list_has(h->value, h->value_len, "keep-alive", false))
				close_conn = false;
		} else if (phr_name_is(h, "transfer-encoding")) {
			if (!list_has(h->value, h->value_len, "chunked", true)) {
				call_fail(
				    c, 502,
				    "call to %s: answer with a transfer coding not supported\n",
				    c->callee->name);
				return -1;
			}
			chunked = true;
		} else if (phr_name_is(h, "content-length")) {
			size_t v = h2o_strtosize(h->value, h->value_len);
			if (v == SIZE_MAX || (has_length && v != length)) {
				call_fail(c, 502, "call to %s: answer with a bad content-length\n",
				          c->callee->name);
				return -1;
			}
			has_length = true;
			length = v;
		}
	}
	c->head_done = true;
	c->status = status;
	c->body_off = (size_t)hl;
	c->body_len = 0;
	c->keepalive = !close_conn;
	bool is_head = strcasecmp(c->method, "HEAD") == 0;
	if (is_head || status == 204 || status == 304) {
		c->framing = FRAME_NONE;
	} else if (chunked) {
		c->framing = FRAME_CHUNKED;
		c->chunked = (struct phr_chunked_decoder){.consume_trailer = 1};
		if (has_length) /* RFC 9112 6.3: chunked wins, and the connection must close */
			c->keepalive = false;
	} else if (has_length) {
		if (length > ad.max_body) {
			call_fail(c, 502, "call to %s: answer larger than %zu bytes\n",
			          c->callee->name, ad.max_body);
			return -1;
		}
		c->framing = FRAME_LENGTH;
		c->content_length = length;
	} else {
		c->framing = FRAME_TO_EOF;
		c->keepalive = false;
	}
	return 0;
}

/* Parse what has come in: the head once, then the body; finishes the call when complete. */
static void call_parse(struct pd_call *c)
{
	while (!c->head_done) {
		int minor, status;
		const char *msg;
		size_t msg_len;
		c->nanswer_headers = ANSWER_HEADERS_MAX;
		int hl = phr_parse_response(c->in, c->in_len, &minor, &status, &msg, &msg_len,
		                            c->answer_headers, &c->nanswer_headers, 0);
		if (hl == -2) {
			if (c->in_len >= ANSWER_HEAD_MAX)
				call_fail(c, 502, "call to %s: answer head larger than %d bytes\n",
				          c->callee->name, ANSWER_HEAD_MAX);
			return;
		}
		if (hl < 0 || status < 100 || status > 599) {
			call_fail(c, 502, "call to %s: malformed answer\n", c->callee->name);
			return;
		}
		if (status < 200) { /* an interim answer (100 Continue...): the final one follows */
			if (++c->interim > ANSWER_INTERIM_MAX) {
				call_fail(c, 502, "call to %s: too many interim answers\n",
				          c->callee->name);
				return;
			}
			memmove(c->in, c->in + hl, c->in_len - (size_t)hl);
			c->in_len -= (size_t)hl;
			continue;
		}
		if (call_take_head(c, hl, minor, status) != 0)
			return;
	}
	size_t raw = c->in_len - c->body_off - c->body_len; /* bytes not yet taken as body */
	switch (c->framing) {
	case FRAME_NONE:
		if (raw > 0)
			c->keepalive = false;
		call_done(c);
		return;
	case FRAME_LENGTH:
		c->body_len += raw;
		if (c->body_len >= c->content_length) {
			if (c->body_len > c->content_length) /* more than announced: not reusable */
				c->keepalive = false;
			c->body_len = c->content_length;
			call_done(c);
		}
		return;
	case FRAME_CHUNKED: {
		ssize_t rc =
		    phr_decode_chunked(&c->chunked, c->in + c->body_off + c->body_len, &raw);
		if (rc == -1) {
			call_fail(c, 502, "call to %s: malformed chunked answer\n",
			          c->callee->name);
			return;
		}
		c->body_len += raw;
		c->in_len = c->body_off + c->body_len;
		if (c->body_len > ad.max_body) {
			call_fail(c, 502, "call to %s: answer larger than %zu bytes\n",
			          c->callee->name, ad.max_body);
			return;
		}
		if (rc >= 0) {
			if (rc > 0)
				c->keepalive = false;
			call_done(c);
		}
		return;
	}
	case FRAME_TO_EOF:
		c->body_len += raw;
		if (c->body_len > ad.max_body)
			call_fail(c, 502, "call to %s: answer larger than %zu bytes\n",
			          c->callee->name, ad.max_body);
		return;
	}
}

static void call_read(struct pd_call *c)
{
	size_t room = ad.answer_buf_size - c->in_len;
	if (room == 0) {
		call_fail(c, 502, "call to %s: answer too large\n", c->callee->name);
		return;
	}
	ssize_t r;
	while ((r = recv(c->fd, c->in + c->in_len, room, MSG_DONTWAIT)) < 0 && errno == EINTR)
		;
	if (r < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			call_broken(c, errno, "receiving");
		return;
	}
	if (r == 0) {
		if (c->head_done && c->framing == FRAME_TO_EOF)
			call_done(c);
		else
			call_broken(c, 0,
			            c->in_len == 0 ? "connection closed before an answer"
			                           : "answer cut short");
		return;
	}
	c->in_len += (size_t)r;
	call_parse(c);
}

/* Move one call on after poll reported revents on its connection. */
static void call_progress(struct pd_call *c, short revents)
{
	switch (c->state) {
	case CALL_CONNECTING: {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0) {
			call_fail(c, 502, "cannot connect to %s: %s\n", c->callee->name,
			          strerror(err));
			return;
		}
		if (!(revents & POLLOUT))
			return;
		c->state = CALL_WRITING;
		call_write(c);
		return;
	}
	case CALL_WRITING:
		if (revents & POLLIN) {
			/* An answer before the whole request went (an early error): take it; the
			 * connection cannot carry another request. */
			c->state = CALL_READING;
			c->keepalive = false;
			call_read(c);
			return;
		}
		call_write(c);
		return;
	case CALL_READING: call_read(c); return;
	default: return;
	}
}

static short call_events(const struct pd_call *c)
{
	switch (c->state) {
	case CALL_CONNECTING: return POLLOUT;
	case CALL_WRITING: return POLLOUT | POLLIN;
	case CALL_READING: return POLLIN;
	default: return 0;
	}
}

static bool call_out(const struct pd_call *c)
{
	return c->state != CALL_NEW && c->state != CALL_DONE;
}

/*
 * One round: calls past their deadline get 504, then poll every connection of the
 * request's calls until one has something or the next deadline passes, and move those
 * calls on. Returns with no round done when no call is out.
 */
static void calls_poll(struct worker *w)
{
	uint64_t now = now_ns(), next = UINT64_MAX;
	nfds_t n = 0;
	for (h2o_linklist_t *l = w->calls.next; l != &w->calls; l = l->next) {
		struct pd_call *c = H2O_STRUCT_FROM_MEMBER(struct pd_call, link, l);
		if (!call_out(c))
			continue;
		if (c->deadline_ns <= now) {
			call_fail(c, 504, "call to %s: deadline passed\n", c->callee->name);
			continue;
		}
		if (c->deadline_ns < next)
			next = c->deadline_ns;
		w->pollset[n] = (struct pollfd){.fd = c->fd, .events = call_events(c)};
		w->polled[n++] = c;
	}
	if (n == 0)
		return;
	uint64_t wait_ms = (next - now + 999999) / 1000000;
	int rc = poll(w->pollset, n, wait_ms > INT_MAX ? INT_MAX : (int)wait_ms);
	if (rc <= 0)
		return; /* timed out (the next round fails what passed its deadline), or EINTR */
	for (nfds_t i = 0; i < n; i++)
		if (w->pollset[i].revents != 0)
			call_progress(w->polled[i], w->pollset[i].revents);
}

static struct exchange *exchange_of_request(const pd_request *req)
{
	return H2O_STRUCT_FROM_MEMBER(struct exchange, request, req);
}

static const struct callee *find_callee(const char *name)
{
	for (unsigned i = 0; i < ad.ncallees; i++)
		if (strcmp(ad.callees[i].name, name) == 0)
			return &ad.callees[i];
	return NULL;
}

PD_API pd_call *pd_call_start(const pd_request *req, const char *function)
{
	if (req == NULL || function == NULL)
		return NULL;
	struct worker *w = exchange_of_request(req)->w;
	pd_call *c;
	if (!h2o_linklist_is_empty(&w->spare_calls)) {
		c = H2O_STRUCT_FROM_MEMBER(struct pd_call, link, w->spare_calls.next);
		h2o_linklist_unlink(&c->link);
		w->nspare_calls--;
	} else if ((c = malloc(sizeof(*c))) == NULL) {
		return NULL;
	} else {
		c->link = (h2o_linklist_t){NULL, NULL};
	}
	c->w = w;
	c->callee = NULL;
	c->state = CALL_NEW;
	c->status = 0;
	c->fd = -1;
	c->reused = c->retried = c->keepalive = c->has_timeout = false;
	c->depth = req->call_depth + 1;
	c->deadline_ns = req->deadline_ns;
	c->body = NULL;
	c->reserved = c->len = 0;
	memcpy(c->method, "POST", sizeof("POST"));
	memcpy(c->target, "/", sizeof("/"));
	c->headers_len = 0;
	c->in = NULL;
	c->in_len = 0;
	c->head_done = false;
	c->interim = 0;
	c->nanswer_headers = 0;
	c->answer = "";
	c->answer_len = 0;
	h2o_linklist_insert(&w->calls, &c->link);
	w->ncalls++;

	if ((c->callee = find_callee(function)) == NULL)
		call_fail(c, 403, "%.64s is not in this function's calls (--call)\n", function);
	else if (c->depth > ad.max_call_depth)
		call_fail(c, 508, "call to %s: deeper than --max-call-depth %u\n", function,
		          ad.max_call_depth);
	else if (w->ncalls > CALLS_MAX)
		call_fail(c, 503, "call to %s: more than %d calls out\n", function, CALLS_MAX);
	return c;
}

PD_API char *pd_call_reserve(pd_call *c, size_t n)
{
	if (c == NULL || c->state != CALL_NEW || n > ad.max_body)
		return NULL;
	if (c->body == NULL)
		c->body = h2o_mem_alloc_recycle(&c->w->bodies, ad.body_buf_size);
	if (n > c->reserved)
		c->reserved = n;
	return c->body;
}

PD_API size_t pd_call_capacity(const pd_call *c)
{
	return c != NULL && c->state == CALL_NEW ? ad.max_body : 0;
}

PD_API int pd_call_commit(pd_call *c, size_t n)
{
	if (c == NULL || c->state != CALL_NEW || n > c->reserved)
		return -1;
	c->len = n;
	return 0;
}

PD_API int pd_call_append(pd_call *c, const void *data, size_t n)
{
	if (c == NULL || (data == NULL && n > 0) || c->state != CALL_NEW ||
	    n > ad.max_body - c->len)
		return -1;
	char *p = pd_call_reserve(c, c->len + n);
	if (p == NULL)
		return -1;
	memcpy(p + c->len, data, n);
	c->len += n;
	return 0;
}

PD_API int pd_call_set_method(pd_call *c, const char *method)
{
	if (c == NULL || c->state != CALL_NEW || method == NULL || !pd_http_name_ok(method) ||
	    strlen(method) >= sizeof(c->method))
		return -1;
	memcpy(c->method, method, strlen(method) + 1);
	return 0;
}

/* n bytes of a request target part: visible ASCII, none of the bytes in stop. */
static bool target_part_ok(const char *p, size_t n, const char *stop)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch <= 32 || ch >= 127 || strchr(stop, ch) != NULL)
			return false;
	}
	return true;
}

PD_API int pd_call_set_path(pd_call *c, const char *path, const char *query)
{
	if (c == NULL || c->state != CALL_NEW || path == NULL || path[0] != '/')
		return -1;
	size_t pl = strlen(path), ql = query != NULL ? strlen(query) : 0;
	if (!target_part_ok(path, pl, "?#") || !target_part_ok(query, ql, "#") ||
	    pl + 1 + ql >= sizeof(c->target))
		return -1;
	memcpy(c->target, path, pl);
	if (query != NULL) {
		c->target[pl] = '?';
		memcpy(c->target + pl + 1, query, ql);
		pl += 1 + ql;
	}
	c->target[pl] = '\0';
	return 0;
}

/* Headers the adapter writes itself: the framing, the host and the call's own. */
static bool is_call_owned_header(const char *name, size_t n)
{
	static const char *const names[] = {"host", "pd-call-depth", "pd-deadline-ms"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (n == strlen(names[i]) && strncasecmp(name, names[i], n) == 0)
			return true;
	return is_framing_header(name, n);
}

PD_API int pd_call_set_header(pd_call *c, const char *name, const char *value)
{
	if (c == NULL || c->state != CALL_NEW || name == NULL || value == NULL ||
	    !pd_http_name_ok(name) || !pd_http_value_ok(value))
		return -1;
	size_t n = strlen(name), v = strlen(value);
	if (is_call_owned_header(name, n))
		return -1;
	if (n + 2 + v + 2 > sizeof(c->headers) - c->headers_len)
		return -1;
	char *p = c->headers + c->headers_len;
	memcpy(p, name, n);
	memcpy(p + n, ": ", 2);
	memcpy(p + n + 2, value, v);
	memcpy(p + n + 2 + v, "\r\n", 2);
	c->headers_len += n + 2 + v + 2;
	return 0;
}

PD_API int pd_call_set_timeout(pd_call *c, unsigned timeout_ms)
{
	if (c == NULL || c->state != CALL_NEW)
		return -1;
	c->has_timeout = true;
	c->timeout_ms = timeout_ms;
	return 0;
}

PD_API int pd_call_send(pd_call *c)
{
	if (c == NULL || c->state != CALL_NEW) /* finished, or already out */
		return -1;
	uint64_t now = now_ns();
	if (c->has_timeout && now + (uint64_t)c->timeout_ms * 1000000 < c->deadline_ns)
		c->deadline_ns = now + (uint64_t)c->timeout_ms * 1000000;
	if (c->deadline_ns <= now) {
		call_fail(c, 504, "call to %s: deadline passed before it was sent\n",
		          c->callee->name);
		return -1;
	}
	const struct callee *ce = c->callee;
	unsigned long long left_ms = (c->deadline_ns - now + 999999) / 1000000;
	int n = snprintf(c->head, sizeof(c->head),
	                 "%s %.*s%s HTTP/1.1\r\nhost: %.*s\r\ncontent-length: %zu\r\n"
	                 "pd-deadline-ms: %llu\r\npd-call-depth: %u\r\n%.*s\r\n",
	                 c->method, (int)ce->prefix.len, ce->prefix.base, c->target,
	                 (int)ce->authority.len, ce->authority.base, c->len, left_ms, c->depth,
	                 (int)c->headers_len, c->headers);
	if (n < 0 || (size_t)n >= sizeof(c->head)) { /* cannot happen: every part is bounded */
		call_fail(c, 500, "call to %s: request head too large\n", ce->name);
		return -1;
	}
	c->out[0] = (struct iovec){.iov_base = c->head, .iov_len = (size_t)n};
	c->out[1] = (struct iovec){.iov_base = c->body, .iov_len = c->len};
	c->out_sent = 0;
	c->out_total = (size_t)n + c->len;
	if (c->in == NULL)
		c->in = h2o_mem_alloc_recycle(&c->w->answers, ad.answer_buf_size);
	c->fd = pool_take(c);
	if (c->fd >= 0) {
		c->reused = true;
		c->state = CALL_WRITING;
	} else {
		call_connect(c);
	}
	if (c->state == CALL_WRITING)
		call_write(c);
	return c->state == CALL_DONE ? -1 : 0;
}

/* Whether the wait for calls[0..n-1] is over: all (or any) have finished. Calls not
 * sent yet are sent: waiting for them would never end otherwise. */
static bool calls_finished(pd_call *const *calls, size_t n, bool all, int *first)
{
	bool any = false, every = true;
	*first = -1;
	for (size_t i = 0; i < n; i++) {
		if (calls[i] == NULL)
			continue;
		if (calls[i]->state == CALL_NEW)
			pd_call_send(calls[i]);
		if (calls[i]->state == CALL_DONE) {
			if (!any)
				*first = (int)i;
			any = true;
		} else {
			every = false;
		}
	}
	return all ? every : any;
}

static void calls_wait(pd_call *const *calls, size_t n, bool all, int *first)
{
	struct worker *w = NULL;
	for (size_t i = 0; i < n && w == NULL; i++)
		if (calls[i] != NULL)
			w = calls[i]->w;
	*first = -1;
	if (w == NULL)
		return;
	while (!calls_finished(calls, n, all, first))
		calls_poll(w);
}

PD_API int pd_call_wait(pd_call *c)
{
	if (c == NULL)
		return 0;
	int first;
	calls_wait(&c, 1, true, &first);
	return c->status;
}

PD_API int pd_call_wait_all(pd_call *const *calls, size_t n)
{
	if (calls == NULL)
		return 0;
	int first;
	calls_wait(calls, n, true, &first);
	return 0;
}

PD_API int pd_call_wait_any(pd_call *const *calls, size_t n)
{
	if (calls == NULL)
		return -1;
	int first;
	calls_wait(calls, n, false, &first);
	return first;
}

PD_API int pd_call_status(const pd_call *c)
{
	return c != NULL && c->state == CALL_DONE ? c->status : 0;
}

PD_API const char *pd_call_body(const pd_call *c, size_t *len)
{
	bool done = c != NULL && c->state == CALL_DONE;
	if (len != NULL)
		*len = done ? c->answer_len : 0;
	return done ? c->answer : "";
}

PD_API const char *pd_call_header(const pd_call *c, const char *name, size_t *len)
{
	if (c == NULL || c->state != CALL_DONE || !c->head_done || name == NULL)
		return NULL;
	for (size_t i = 0; i < c->nanswer_headers; i++) {
		const struct phr_header *h = &c->answer_headers[i];
		if (phr_name_is(h, name)) {
			if (len != NULL)
				*len = h->value_len;
			return h->value;
		}
	}
	return NULL;
}

PD_API void pd_call_release(pd_call *c)
{
	if (c == NULL)
		return;
	struct worker *w = c->w;
	if (c->fd >= 0) /* abandoned while out: whatever comes on it is not ours to read */
		close(c->fd);
	if (c->body != NULL)
		h2o_mem_free_recycle(&w->bodies, c->body);
	if (c->in != NULL)
		h2o_mem_free_recycle(&w->answers, c->in);
	h2o_linklist_unlink(&c->link);
	w->ncalls--;
	if (w->nspare_calls < SPARE_CALLS) {
		h2o_linklist_insert(&w->spare_calls, &c->link);
		w->nspare_calls++;
	} else {
		free(c);
	}
}

PD_API pd_call *pd_call_run(const pd_request *req, const char *function, const void *body,
                            size_t len)
{
	pd_call *c = pd_call_start(req, function);
	if (c == NULL)
		return NULL;
	if (c->state == CALL_NEW && len > 0 && pd_call_append(c, body, len) != 0)
		call_fail(c, 413, "call to %s: request body larger than %zu bytes\n", function,
		          ad.max_body);
	pd_call_send(c);
	pd_call_wait(c);
	return c;
}

/* The handler has returned: the calls it did not release go now. */
static void calls_release_all(struct worker *w)
{
	while (!h2o_linklist_is_empty(&w->calls))
		pd_call_release(H2O_STRUCT_FROM_MEMBER(struct pd_call, link, w->calls.next));
}

/* ---- a request ---------------------------------------------------------------------- */

/* An unsigned header value in [0, max]; def if absent. -1 if malformed. */
static int header_uint(const h2o_req_t *req, const char *name, size_t n, unsigned max, unsigned def,
                       unsigned *out)
{
	const h2o_iovec_t *v = find_header(req, name, n);
	*out = def;
	if (v == NULL)
		return 0;
	size_t x = h2o_strtosize(v->base, v->len);
	if (x == SIZE_MAX || x > max)
		return -1;
	*out = (unsigned)x;
	return 0;
}

static void exchange_dispose(void *p)
{
	struct exchange *x = p;
	if (x->client != NULL) {
		h2o_http1client_cancel(x->client);
		x->client = NULL;
	}
	if (x->response.body != NULL)
		h2o_mem_free_recycle(&x->w->bodies, x->response.body);
	if (x->next_body != NULL)
		h2o_buffer_dispose(&x->next_body);
	x->w->inflight--;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
	(void)self;
	struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, ctx, req->conn->ctx);
	if (req->entity.base != NULL && req->entity.len > ad.max_body) {
		SEND_TEXT(req, 413, "request body too large\n");
		return 0;
	}
	unsigned hop, chain_length, deadline_ms, call_depth;
	if (header_uint(req, H2O_STRLIT("x-pd-hop"), HOP_MAX - 1, 0, &hop) != 0 ||
	    header_uint(req, H2O_STRLIT("x-pd-chain-length"), HOP_MAX, 1, &chain_length) != 0) {
		SEND_TEXT(req, 400, "bad x-pd-hop or x-pd-chain-length\n");
		return 0;
	}
	/* A call from another adapter: its caller's time left and depth bound our calls. */
	if (header_uint(req, H2O_STRLIT("pd-deadline-ms"), MAX_DEADLINE_MS, ad.deadline_ms,
	                &deadline_ms) != 0 ||
	    header_uint(req, H2O_STRLIT("pd-call-depth"), HOP_MAX, 0, &call_depth) != 0) {
		SEND_TEXT(req, 400, "bad pd-deadline-ms or pd-call-depth\n");
		return 0;
	}

	struct exchange *x = h2o_mem_alloc_shared(&req->pool, sizeof(*x), exchange_dispose);
	*x = (struct exchange){
	    .request = {.req = req,
	                .hop = hop,
	                .chain_length = chain_length,
	                .deadline_ns = now_ns() + (uint64_t)deadline_ms * 1000000,
	                .call_depth = call_depth},
	    .response = {.status = 200},
	    .w = w,
	};
	w->inflight++;
	pd_response *res = &x->response;
	int rc = ad.handler(&x->request, res, ad.arg);
	calls_release_all(w);

	if (rc != 0 && !res->error && res->status < 400)
		pd_response_error(res, 500, "function failed\n");
	if (res->error) {
		send_text(req, res->status, res->error_message.base, res->error_message.len);
		return 0;
	}
	h2o_iovec_t body;
	if (res->forward)
		body = h2o_iovec_init(req->entity.base,
		                      req->entity.base != NULL ? req->entity.len : 0);
	else
		body = h2o_iovec_init(res->body, res->len);
	if (!ad.has_next || res->status >= 400)
		send_response(req, res->status, body);
	else
		forward_to_next(x, body);
	return 0;
}

/* ---- the loops ---------------------------------------------------------------------- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
	struct worker *w = listener->data;
	if (err != NULL)
		return;
	for (int i = 0; i < ACCEPT_BURST; i++) {
		h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
		if (sock == NULL)
			break;
		h2o_accept(&w->accept_ctx, sock);
	}
}

static void on_wake(h2o_socket_t *sock, const char *err)
{
	struct worker *w = sock->data;
	uint64_t v;
	(void)err;
	while (read(w->wake_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
	w->stop = true;
}

static void *worker_main(void *p)
{
	struct worker *w = p;
	w->loop = h2o_evloop_create();
	h2o_context_init(&w->ctx, w->loop, &ad.globalconf);
	w->accept_ctx = (h2o_accept_ctx_t){.ctx = &w->ctx, .hosts = ad.hosts};
	w->bodies = (h2o_mem_recycle_t){.max = RECYCLED_BODIES};
	w->answers = (h2o_mem_recycle_t){.max = RECYCLED_BODIES};
	h2o_linklist_init_anchor(&w->calls);
	h2o_linklist_init_anchor(&w->spare_calls);
	if (ad.has_next) {
		h2o_timeout_init(w->loop, &w->next_timeout, NEXT_TIMEOUT_MS);
		w->client_ctx = (h2o_http1client_ctx_t){
		    .loop = w->loop,
		    .getaddr_receiver = &w->ctx.receivers.hostinfo_getaddr,
		    .io_timeout = &w->next_timeout,
		};
		h2o_socketpool_init_by_address(&w->next_pool, (struct sockaddr *)&ad.next_addr,
		                               ad.next_addrlen, 0, SIZE_MAX);
		h2o_socketpool_set_timeout(&w->next_pool, w->loop, POOL_IDLE_MS);
	}
	w->listener = h2o_evloop_socket_create(w->loop, w->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
	w->listener->data = w;
	h2o_socket_read_start(w->listener, on_accept);
	w->wake = h2o_evloop_socket_create(w->loop, w->wake_fd, H2O_SOCKET_FLAG_DONT_READ);
	w->wake->data = w;
	h2o_socket_read_start(w->wake, on_wake);

	while (!w->stop)
		h2o_evloop_run(w->loop, INT32_MAX);

	/* Stop: no new connections; answers in progress get a short while to finish. */
	h2o_socket_read_stop(w->listener);
	h2o_socket_close(w->listener);
	w->listener = NULL;
	h2o_context_request_shutdown(&w->ctx);
	uint64_t deadline = now_ms() + DRAIN_MS;
	for (uint64_t now; w->inflight > 0 && (now = now_ms()) < deadline;)
		h2o_evloop_run(w->loop, (int32_t)(deadline - now));
	sem_post(&w->done);
	/*
	 * The process ends under this thread: it stays (parked) so that what h2o caches per
	 * thread stays reachable, and exit() reclaims the loop with its idle connections.
	 */
	for (;;)
		pause();
	return NULL;
}

/* ---- start-up ----------------------------------------------------------------------- */

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
	        "usage: %s --listen HOST:PORT [--next http://HOST:PORT/PATH] [--threads N]\n"
	        "          [--max-body BYTES] [--call NAME=http://HOST:PORT[/PATH]]...\n"
	        "          [--max-call-depth N] [--timeout MS]\n"
	        "Serves the function over HTTP/1.1 (the baseline of bench/knative). With --next,\n"
	        "POSTs the function's output to the next hop and answers with its answer.\n"
	        "  --listen HOST:PORT   address to serve on (HOST may be empty or [v6])\n"
	        "  --next URL           next hop of the chain (http:// only)\n"
	        "  --threads N          event loops, one listening socket each (default 1)\n"
	        "  --max-body BYTES     largest request body, larger gets 413 (default %d;\n"
	        "                       suffixes K/KiB, M/MiB); also the largest call body\n"
	        "                       and call answer\n"
	        "  --call NAME=URL      the handler may call function NAME (pd_call_start), at\n"
	        "                       URL (the callee's sidecar or adapter; a path there goes\n"
	        "                       before the call's); repeatable, at most %d; a name not\n"
	        "                       given ends the call with 403\n"
	        "  --max-call-depth N   calls nested deeper than N end with 508 (default %d;\n"
	        "                       1..%d)\n"
	        "  --timeout MS         a request's deadline for its calls when it does not\n"
	        "                       carry pd-deadline-ms (default %d; 1..%d)\n",
	        prog, DEFAULT_MAX_BODY, MAX_CALLEES, DEFAULT_MAX_CALL_DEPTH, MAX_MAX_CALL_DEPTH,
	        DEFAULT_DEADLINE_MS, MAX_DEADLINE_MS);
}

static int parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	unsigned long long mult = 1;
	if (strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0 || strcmp(end, "k") == 0)
		mult = 1024;
	else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0)
		mult = 1024 * 1024;
	else if (*end != '\0')
		return -1;
	if (v > ULLONG_MAX / mult)
		return -1;
	*out = (size_t)(v * mult);
	return 0;
}

/* HOST:PORT -> host (brackets removed, "" for any) and port, in buf. */
static int split_hostport(const char *s, char *host, size_t host_cap, char *port, size_t port_cap)
{
	const char *colon = strrchr(s, ':');
	if (colon == NULL)
		return -1;
	const char *h = s, *he = colon;
	if (*h == '[') {
		if (he == h || he[-1] != ']')
			return -1;
		h++;
		he--;
	}
	size_t hl = (size_t)(he - h), pl = strlen(colon + 1);
	if (hl >= host_cap || pl == 0 || pl >= port_cap)
		return -1;
	for (const char *c = colon + 1; *c; c++)
		if (*c < '0' || *c > '9')
			return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memcpy(port, colon + 1, pl + 1);
	long p = strtol(port, NULL, 10);
	return p >= 1 && p <= 65535 ? 0 : -1;
}

/* An http://HOST:PORT[/PATH] URL of option opt: its address, path ("/" if none) and
 * authority. 0, or -1 (said on stderr). */
static int resolve_url(const char *prog, const char *opt, const char *url, h2o_url_t *u,
                       struct sockaddr_storage *addr, socklen_t *addrlen, h2o_iovec_t *path)
{
	if (h2o_url_parse(url, strlen(url), u) != 0 || u->scheme != &H2O_URL_SCHEME_HTTP) {
		fprintf(stderr, "%s: %s %s: expected http://HOST:PORT/PATH\n", prog, opt, url);
		return -1;
	}
	*path = u->path.len != 0 ? u->path : h2o_iovec_init(H2O_STRLIT("/"));
	for (size_t i = 0; i < path->len; i++) {
		unsigned char c = (unsigned char)path->base[i];
		if (c <= 32 || c >= 127) {
			fprintf(stderr,
			        "%s: %s %s: the path has a character not allowed in a URL\n", prog,
			        opt, url);
			return -1;
		}
	}
	char host[256], port[8];
	h2o_iovec_t hv = u->host;
	if (hv.len >= 2 && hv.base[0] == '[' && hv.base[hv.len - 1] == ']')
		hv = h2o_iovec_init(hv.base + 1, hv.len - 2);
	if (hv.len == 0 || hv.len >= sizeof(host)) {
		fprintf(stderr, "%s: %s %s: bad host\n", prog, opt, url);
		return -1;
	}
	memcpy(host, hv.base, hv.len);
	host[hv.len] = '\0';
	snprintf(port, sizeof(port), "%u", (unsigned)h2o_url_get_port(u));
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0) {
		fprintf(stderr, "%s: %s %s: cannot resolve %s: %s\n", prog, opt, url, host,
		        gai_strerror(gai));
		return -1;
	}
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int parse_next(const char *prog, const char *url)
{
	h2o_url_t u;
	h2o_iovec_t path;
	if (resolve_url(prog, "--next", url, &u, &ad.next_addr, &ad.next_addrlen, &path) != 0)
		return -1;
	static const char fmt[] = "POST %.*s HTTP/1.1\r\nhost: %.*s\r\n";
	size_t cap = sizeof(fmt) + path.len + u.authority.len;
	char *head = malloc(cap);
	if (head == NULL)
		return -1;
	int n = snprintf(head, cap, fmt, (int)path.len, path.base, (int)u.authority.len,
	                 u.authority.base);
	ad.next_head = h2o_iovec_init(head, n > 0 ? (size_t)n : 0);
	ad.has_next = true;
	return 0;
}

/* --call NAME=URL: NAME may be called at URL (its path, if any, goes before the call's). */
static int parse_call(const char *prog, const char *arg)
{
	const char *eq = strchr(arg, '=');
	if (eq == NULL || eq == arg) {
		fprintf(stderr, "%s: --call %s: expected NAME=http://HOST:PORT\n", prog, arg);
		return -1;
	}
	if (ad.ncallees == MAX_CALLEES) {
		fprintf(stderr, "%s: --call %s: at most %d callees\n", prog, arg, MAX_CALLEES);
		return -1;
	}
	const char *url = eq + 1;
	if (strlen(url) >= CALLEE_URL_MAX) {
		fprintf(stderr, "%s: --call %s: URL longer than %d bytes\n", prog, arg,
		        CALLEE_URL_MAX - 1);
		return -1;
	}
	struct callee *ce = &ad.callees[ad.ncallees];
	char *name = strndup(arg, (size_t)(eq - arg));
	if (name == NULL)
		return -1;
	if (find_callee(name) != NULL) {
		fprintf(stderr, "%s: --call %s: %s is given twice\n", prog, arg, name);
		free(name);
		return -1;
	}
	h2o_url_t u;
	h2o_iovec_t path;
	if (resolve_url(prog, "--call", url, &u, &ce->addr, &ce->addrlen, &path) != 0) {
		free(name);
		return -1;
	}
	if (memchr(path.base, '?', path.len) != NULL || memchr(path.base, '#', path.len) != NULL) {
		fprintf(stderr, "%s: --call %s: no query or fragment in the URL\n", prog, arg);
		free(name);
		return -1;
	}
	while (path.len > 0 && path.base[path.len - 1] == '/')
		path.len--;
	/* u points into url (argv), which lives as long as the process. */
	ce->name = name;
	ce->authority = u.authority;
	ce->prefix = path;
	ad.ncallees++;
	return 0;
}

struct options {
	const char *listen;
	const char *next;
};

/* 0, or the exit status (2: bad command line, 0 after --help). */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"next", required_argument, NULL, 'n'},
	    {"threads", required_argument, NULL, 't'},
	    {"max-body", required_argument, NULL, 'm'},
	    {"call", required_argument, NULL, 'c'},
	    {"max-call-depth", required_argument, NULL, 'd'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *prog = argc > 0 && argv[0] != NULL ? argv[0] : "http-function";
	size_t v;
	int c;
	ad.nthreads = 1;
	ad.max_body = DEFAULT_MAX_BODY;
	ad.max_call_depth = DEFAULT_MAX_CALL_DEPTH;
	ad.deadline_ms = DEFAULT_DEADLINE_MS;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': o->listen = optarg; break;
		case 'n': o->next = optarg; break;
		case 't':
			if (parse_size(optarg, &v) != 0 || v < 1 || v > MAX_THREADS) {
				fprintf(stderr, "%s: --threads %s: expected 1..%d\n", prog, optarg,
				        MAX_THREADS);
				return 2;
			}
			ad.nthreads = (unsigned)v;
			break;
		case 'm':
			if (parse_size(optarg, &v) != 0 || v < 1 || v > MAX_MAX_BODY) {
				fprintf(stderr, "%s: --max-body %s: expected 1..%lu bytes\n", prog,
				        optarg, MAX_MAX_BODY);
				return 2;
			}
			ad.max_body = v;
			break;
		case 'c':
			if (parse_call(prog, optarg) != 0)
				return 2;
			break;
		case 'd':
			if (parse_size(optarg, &v) != 0 || v < 1 || v > MAX_MAX_CALL_DEPTH) {
				fprintf(stderr, "%s: --max-call-depth %s: expected 1..%d\n", prog,
				        optarg, MAX_MAX_CALL_DEPTH);
				return 2;
			}
			ad.max_call_depth = (unsigned)v;
			break;
		case 'T':
			if (parse_size(optarg, &v) != 0 || v < 1 || v > MAX_DEADLINE_MS) {
				fprintf(stderr, "%s: --timeout %s: expected 1..%d ms\n", prog,
				        optarg, MAX_DEADLINE_MS);
				return 2;
			}
			ad.deadline_ms = (unsigned)v;
			break;
		case 'h': usage(stdout, prog); return 0;
		default: usage(stderr, prog); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
		usage(stderr, prog);
		return 2;
	}
	if (o->listen == NULL) {
		fprintf(stderr, "%s: --listen HOST:PORT is required\n", prog);
		usage(stderr, prog);
		return 2;
	}
	if (o->next != NULL && parse_next(prog, o->next) != 0)
		return 2;
	/* Recycled chunks hold a link when free. */
	ad.body_buf_size = ad.max_body < 64 ? 64 : ad.max_body;
	ad.answer_buf_size = ANSWER_HEAD_MAX + ad.max_body + CHUNK_SLACK;
	return -1;
}

/* The listening sockets, one per thread. 0, 1 (cannot listen) or 2 (bad address). */
static int open_listeners(const char *prog, const char *listen_arg)
{
	char host[256], port[8];
	if (split_hostport(listen_arg, host, sizeof(host), port, sizeof(port)) != 0) {
		fprintf(stderr, "%s: --listen %s: expected HOST:PORT with a port in 1..65535\n",
		        prog, listen_arg);
		return 2;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &res);
	if (gai != 0) {
		fprintf(stderr, "%s: --listen %s: cannot resolve: %s\n", prog, listen_arg,
		        gai_strerror(gai));
		return 2;
	}
	int rc = 0;
	for (unsigned t = 0; t < ad.nthreads && rc == 0; t++) {
		int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1;
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		    (ad.nthreads > 1 &&
		     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
		    bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
			fprintf(stderr, "%s: cannot listen on %s: %s\n", prog, listen_arg,
			        strerror(errno));
			if (fd >= 0)
				close(fd);
			rc = 1;
			break;
		}
		ad.workers[t].listen_fd = fd;
	}
	freeaddrinfo(res);
	return rc;
}

static void setup_h2o(void)
{
	h2o_config_init(&ad.globalconf);
	ad.globalconf.server_name = h2o_iovec_init(H2O_STRLIT("h2o"));
	/* h2o answers 413 itself past this (+1: its chunked decoder refuses at the limit);
	 * on_req checks the exact limit. */
	ad.globalconf.max_request_entity_size = ad.max_body + 1;
	ad.globalconf.http1.req_timeout = CLIENT_IDLE_MS;
	ad.globalconf.http1.upgrade_to_http2 = 0;
	h2o_hostconf_t *host =
	    h2o_config_register_host(&ad.globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
	h2o_handler_t *h = h2o_create_handler(pc, sizeof(*h));
	h->on_req = on_req;
	ad.hosts[0] = host;
	ad.hosts[1] = NULL;
}

PD_API int pd_serve(int argc, char **argv, pd_handler handler, void *arg)
{
	const char *prog = argc > 0 && argv[0] != NULL ? argv[0] : "http-function";
	struct options o = {0};
	ad.handler = handler;
	ad.arg = arg;
	int rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;

	ad.workers = calloc(ad.nthreads, sizeof(*ad.workers));
	if (ad.workers == NULL)
		return 1;
	for (unsigned t = 0; t < ad.nthreads; t++) {
		ad.workers[t].index = t;
		ad.workers[t].listen_fd = -1;
		ad.workers[t].wake_fd = -1;
		ad.workers[t].pools =
		    calloc(ad.ncallees > 0 ? ad.ncallees : 1, sizeof(struct conn_pool));
		if (ad.workers[t].pools == NULL) {
			fprintf(stderr, "%s: out of memory\n", prog);
			rc = 1;
			goto close_fds;
		}
	}
	rc = open_listeners(prog, o.listen);
	if (rc != 0)
		goto close_fds;

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	/* Blocked before the threads start, so that only the signalfd sees them. */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN); /* a client that goes away must not kill us */
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		fprintf(stderr, "%s: signalfd: %s\n", prog, strerror(errno));
		rc = 1;
		goto close_fds;
	}
	setup_h2o();

	unsigned started = 0;
	for (; started < ad.nthreads; started++) {
		struct worker *w = &ad.workers[started];
		pthread_t tid;
		w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->wake_fd < 0 || sem_init(&w->done, 0, 0) != 0) {
			fprintf(stderr, "%s: eventfd: %s\n", prog, strerror(errno));
			break;
		}
		if (pthread_create(&tid, NULL, worker_main, w) != 0) {
			fprintf(stderr, "%s: cannot start thread %u\n", prog, started);
			sem_destroy(&w->done);
			break;
		}
		pthread_detach(tid);
	}
	rc = started == ad.nthreads ? 0 : 1;

	/* Serve until SIGTERM or SIGINT (unless a thread did not start). */
	struct signalfd_siginfo si;
	while (rc == 0 && read(sfd, &si, sizeof(si)) < 0 && errno == EINTR)
		;
	uint64_t one = 1;
	for (unsigned t = 0; t < started; t++)
		if (write(ad.workers[t].wake_fd, &one, sizeof(one)) < 0)
			fprintf(stderr, "%s: waking thread %u: %s\n", prog, t, strerror(errno));
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 1;
	for (unsigned t = 0; t < started; t++)
		while (sem_timedwait(&ad.workers[t].done, &deadline) != 0 && errno == EINTR)
			;
	close(sfd);
	/* The threads own their sockets now (h2o closes them with the loop, or exit does). */
	return rc;

close_fds:
	for (unsigned t = 0; t < ad.nthreads; t++) {
		if (ad.workers[t].listen_fd >= 0)
			close(ad.workers[t].listen_fd);
		free(ad.workers[t].pools);
	}
	free(ad.workers);
	ad.workers = NULL;
	return rc;
}
