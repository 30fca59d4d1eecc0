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
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/http1client.h>
#include <h2o/socketpool.h>

#include "common/http_status.h"
#include "common/http_token.h"
#include "palladium/function.h"

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
	h2o_globalconf_t globalconf;
	h2o_hostconf_t *hosts[2];
	struct worker *workers;
};

struct pd_request {
	h2o_req_t *req;
	unsigned hop;
	unsigned chain_length;
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
	unsigned hop, chain_length;
	if (header_uint(req, H2O_STRLIT("x-pd-hop"), HOP_MAX - 1, 0, &hop) != 0 ||
	    header_uint(req, H2O_STRLIT("x-pd-chain-length"), HOP_MAX, 1, &chain_length) != 0) {
		SEND_TEXT(req, 400, "bad x-pd-hop or x-pd-chain-length\n");
		return 0;
	}

	struct exchange *x = h2o_mem_alloc_shared(&req->pool, sizeof(*x), exchange_dispose);
	*x = (struct exchange){
	    .request = {.req = req, .hop = hop, .chain_length = chain_length},
	    .response = {.status = 200},
	    .w = w,
	};
	w->inflight++;
	pd_response *res = &x->response;
	int rc = ad.handler(&x->request, res, ad.arg);

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

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *worker_main(void *p)
{
	struct worker *w = p;
	w->loop = h2o_evloop_create();
	h2o_context_init(&w->ctx, w->loop, &ad.globalconf);
	w->accept_ctx = (h2o_accept_ctx_t){.ctx = &w->ctx, .hosts = ad.hosts};
	w->bodies = (h2o_mem_recycle_t){.max = RECYCLED_BODIES};
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
	        "          [--max-body BYTES]\n"
	        "Serves the function over HTTP/1.1 (the baseline of bench/knative). With --next,\n"
	        "POSTs the function's output to the next hop and answers with its answer.\n"
	        "  --listen HOST:PORT   address to serve on (HOST may be empty or [v6])\n"
	        "  --next URL           next hop of the chain (http:// only)\n"
	        "  --threads N          event loops, one listening socket each (default 1)\n"
	        "  --max-body BYTES     largest request body, larger gets 413 (default %d;\n"
	        "                       suffixes K/KiB, M/MiB)\n",
	        prog, DEFAULT_MAX_BODY);
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

static int parse_next(const char *prog, const char *url)
{
	h2o_url_t u;
	if (h2o_url_parse(url, strlen(url), &u) != 0 || u.scheme != &H2O_URL_SCHEME_HTTP) {
		fprintf(stderr, "%s: --next %s: expected http://HOST:PORT/PATH\n", prog, url);
		return -1;
	}
	h2o_iovec_t path = u.path.len != 0 ? u.path : h2o_iovec_init(H2O_STRLIT("/"));
	for (size_t i = 0; i < path.len; i++) {
		unsigned char c = (unsigned char)path.base[i];
		if (c <= 32 || c >= 127) {
			fprintf(stderr,
			        "%s: --next %s: the path has a character not allowed in a URL\n",
			        prog, url);
			return -1;
		}
	}
	char host[256], port[8];
	h2o_iovec_t hv = u.host;
	if (hv.len >= 2 && hv.base[0] == '[' && hv.base[hv.len - 1] == ']')
		hv = h2o_iovec_init(hv.base + 1, hv.len - 2);
	if (hv.len == 0 || hv.len >= sizeof(host)) {
		fprintf(stderr, "%s: --next %s: bad host\n", prog, url);
		return -1;
	}
	memcpy(host, hv.base, hv.len);
	host[hv.len] = '\0';
	snprintf(port, sizeof(port), "%u", (unsigned)h2o_url_get_port(&u));
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0) {
		fprintf(stderr, "%s: --next %s: cannot resolve %s: %s\n", prog, url, host,
		        gai_strerror(gai));
		return -1;
	}
	memcpy(&ad.next_addr, res->ai_addr, res->ai_addrlen);
	ad.next_addrlen = res->ai_addrlen;
	freeaddrinfo(res);

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

struct options {
	const char *listen;
	const char *next;
};

/* 0, or the exit status (2: bad command line, 0 after --help). */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, 'l'},  {"next", required_argument, NULL, 'n'},
	    {"threads", required_argument, NULL, 't'}, {"max-body", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	const char *prog = argc > 0 && argv[0] != NULL ? argv[0] : "http-function";
	size_t v;
	int c;
	ad.nthreads = 1;
	ad.max_body = DEFAULT_MAX_BODY;
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
	for (unsigned t = 0; t < ad.nthreads; t++)
		if (ad.workers[t].listen_fd >= 0)
			close(ad.workers[t].listen_fd);
	free(ad.workers);
	ad.workers = NULL;
	return rc;
}
