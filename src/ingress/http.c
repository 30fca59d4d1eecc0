/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP side of a request: checks, routing, admission, held 429s, the message, the response. */
#include <errno.h>
#include <string.h>

#include "common/http_token.h"
#include "common/log.h"
#include "ingress/h2o_compat.h"
#include "ingress/http1_head.h"
#include "ingress/ingress_internal.h"

static void send_429(h2o_req_t *req)
{
	static const char body[] = "too many requests\n";
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
	ing_send_text(req, 429, body, sizeof(body) - 1);
}

/*
 * A 429 held back for ingress.reject_delay. Over HTTP/1.1 a client sends its next
 * request on a connection only after the answer to the last, so a client that ignores
 * 429 and Retry-After gets at most one rejection per connection per delay, instead of
 * keeping the ingress's one thread busy answering rejections while other tenants wait.
 *
 * Lives in req->pool. Over HTTP/2, a client that resets the stream or closes the
 * connection is forgotten at once: h2o disposes the request, which calls the dispose
 * callback. Over HTTP/1, h2o does not read a connection while one of its requests is
 * being answered, so it learns that the client left only when the held answer is
 * written, at the end of the hold.
 */
struct held_reject {
	h2o_timeout_entry_t timeout;
	h2o_linklist_t link; /* in ing->held_rejects */
	struct ingress *ing;
	h2o_req_t *req; /* NULL once answered or gone */
	size_t bytes;   /* the request body h2o keeps meanwhile */
};

static void held_reject_unlink(struct held_reject *hr)
{
	struct ingress *ing = hr->ing;
	if (h2o_timeout_is_linked(&hr->timeout))
		h2o_timeout_unlink(&hr->timeout);
	h2o_linklist_unlink(&hr->link);
	ing->nheld_rejects--;
	ing->held_bytes -= hr->bytes;
	hr->req = NULL;
}

static void held_reject_answer(struct held_reject *hr)
{
	h2o_req_t *req = hr->req;
	held_reject_unlink(hr); /* before answering: the answer may free hr with req's pool */
	send_429(req);
}

static void on_held_reject_timeout(h2o_timeout_entry_t *entry)
{
	held_reject_answer(PD_CONTAINER_OF(entry, struct held_reject, timeout));
}

static void on_held_reject_dispose(void *p)
{
	struct held_reject *hr = p;
	if (hr->req != NULL) {
		hr->ing->stats.held_gone++;
		held_reject_unlink(hr);
	}
}

void ing_answer_held_rejects(struct ingress *ing)
{
	while (!h2o_linklist_is_empty(&ing->held_rejects))
		held_reject_answer(
		    PD_CONTAINER_OF(ing->held_rejects.next, struct held_reject, link));
}

/*
 * 429 with Retry-After, after ingress.reject_delay. At once if the delay is 0, if the
 * ingress is stopping, or if holding it would pass MAX_HELD_REJECTS or MAX_HELD_BYTES:
 * holding is to save the ingress work, never to grow its memory without bound. It is
 * counted now (route statistics): the hold is not the platform's latency.
 */
static void reply_429(struct ingress *ing, h2o_req_t *req, uint32_t route, uint64_t start_ns)
{
	ing_record(ing, route, 429, start_ns);
	size_t bytes = req->entity.base != NULL ? req->entity.len : 0;
	if (ing->cfg->ingress.reject_delay_ms == 0 || ing->stop ||
	    ing->nheld_rejects >= MAX_HELD_REJECTS || bytes > MAX_HELD_BYTES - ing->held_bytes) {
		send_429(req);
		return;
	}
	struct held_reject *hr =
	    h2o_mem_alloc_shared(&req->pool, sizeof(*hr), on_held_reject_dispose);
	*hr = (struct held_reject){
	    .timeout = {.cb = on_held_reject_timeout}, .ing = ing, .req = req, .bytes = bytes};
	h2o_linklist_insert(&ing->held_rejects, &hr->link);
	ing->nheld_rejects++;
	ing->held_bytes += bytes;
	ing->stats.held_total++;
	h2o_timeout_link(ing->loop, &ing->reject_delay[ing->next_reject_delay], &hr->timeout);
	ing->next_reject_delay = (ing->next_reject_delay + 1) % NREJECT_DELAYS;
}

/* h2o is done with the request: its client is gone, or its response has been written. */
static void on_ref_dispose(void *p)
{
	struct req_ref *ref = p;
	ing_slot_detach(ref->ing, ref);
	if (ref->held != NULL) {
		struct ing_buf *b = ref->held;
		ref->held = NULL;
		ing_buf_release(b);
	}
}

/* ---- a request arrives -------------------------------------------------------------- */

/* Longest prefix on a segment boundary: "/shout" takes "/shout", "/shout/x", not "/shouting". */
static int route_find(const struct ingress *ing, h2o_iovec_t path)
{
	for (uint32_t k = 0; k < ing->nroutes; k++) {
		const struct ing_route *rt = &ing->routes[ing->route_order[k]];
		size_t n = rt->prefix_len;
		if (path.len < n || memcmp(path.base, rt->prefix, n) != 0)
			continue;
		if (path.len == n || rt->prefix[n - 1] == '/' || path.base[n] == '/' ||
		    path.base[n] == '?')
			return (int)ing->route_order[k];
	}
	return -1;
}

/* Bytes of the request line and header block as HTTP/1.1 would carry them. */
static size_t header_bytes(const h2o_req_t *req)
{
	size_t n = req->input.method.len + 1 + req->input.path.len + sizeof(" HTTP/1.1\r\n") - 1;
	if (req->input.authority.len != 0)
		n += sizeof("host: \r\n") - 1 + req->input.authority.len;
	for (size_t i = 0; i < req->headers.size; i++) {
		const h2o_header_t *h = &req->headers.entries[i];
		n += h->name->len + 2 + h->value.len + 2;
	}
	return n + 2;
}

/* ---- what h2o lets through: HTTP/1 framing, the request target, the method ---------- */

/* The methods a route takes; 405 with this Allow for any other (CONNECT, TRACE, ...). */
static const char allow_header[] = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

static bool method_allowed(h2o_iovec_t m)
{
	static const char *const names[] = {"GET",   "HEAD",   "POST",   "PUT",
	                                    "PATCH", "DELETE", "OPTIONS"};
	for (size_t i = 0; i < PD_ARRAY_SIZE(names); i++)
		if (h2o_memis(m.base, m.len, names[i], strlen(names[i])))
			return true;
	return false;
}

/*
 * h2o 2.2's HTTP/1 parser settles ambiguous framing by itself and keeps Content-Length,
 * Transfer-Encoding and Host out of req->headers: Transfer-Encoding wins over
 * Content-Length, the first of two Content-Lengths wins, only the last Transfer-Encoding
 * is checked, the last Host wins, a folded line (obs-fold) is dropped. RFC 9112 6.3 wants
 * a 400 and the connection closed for all of them. When the handler runs, the request
 * head is still at the start of the connection's input buffer (h2o consumes it once the
 * answer is written; a chunked body is decoded after it: h2o_compat.h), so the field
 * lines are counted there (http1_head.c).
 *
 * HTTP/1 framing and Host (RFC 9112 3.2, 5.2, 6.1, 6.3): NULL if the request may be
 * served, else what is wrong with it (the body of a 400). A request whose body came
 * chunked is served, but h2o closes the connection after its answer: h2o decodes chunk
 * lines in place and the ingress cannot see them (a chunk size "0x3" is size 0 with an
 * extension for h2o), so nothing that follows such a body is taken as a request.
 */
static const char *http1_check(h2o_req_t *req)
{
	h2o_iovec_t raw;
	if (!ing_h2o_http1_head(req, &raw))
		return NULL;
	struct ing_http1_head head;
	if (ing_http1_head_scan(raw.base, raw.len, req->input.method, &head) != 0)
		return "unreadable request head\n";
	if (head.folded)
		return "folded header line (obs-fold)\n";
	if (head.transfer_encoding > 0 && head.content_length > 0)
		return "both Transfer-Encoding and Content-Length\n";
	if (head.transfer_encoding > 1)
		return "more than one Transfer-Encoding\n";
	if (head.content_length > 1)
		return "more than one Content-Length\n";
	if (head.transfer_encoding > 0 && req->version < 0x101)
		return "Transfer-Encoding in HTTP/1.0\n";
	if (head.host > 1)
		return "more than one Host\n";
	if (head.host == 0 && req->version >= 0x101)
		return "no Host\n";
	if (head.transfer_encoding > 0) /* h2o took it: it is "chunked" */
		req->http1_is_persistent = 0;
	return NULL;
}

/*
 * The request target (RFC 9112 3.2): origin-form ("/path?query") is what h2o expects.
 * Absolute-form ("http://host/path?query") is routed on its path, and its authority is
 * the host (3.2.2). Asterisk-form ("*") is the caller's. NULL if the target may be
 * served, else the body of a 400.
 */
static const char *target_check(h2o_req_t *req)
{
	h2o_iovec_t t = req->input.path;
	if (t.len > 0 && t.base[0] == '/')
		return NULL;
	size_t skip;
	if (t.len > 7 && h2o_lcstris(t.base, 7, H2O_STRLIT("http://")))
		skip = 7;
	else if (t.len > 8 && h2o_lcstris(t.base, 8, H2O_STRLIT("https://")))
		skip = 8;
	else
		return "invalid request target\n";
	const char *a = t.base + skip, *end = t.base + t.len, *p = a;
	while (p < end && *p != '/' && *p != '?')
		p++;
	h2o_iovec_t host;
	uint16_t port;
	if (memchr(a, '@', (size_t)(p - a)) != NULL ||
	    h2o_url_parse_hostport(a, (size_t)(p - a), &host, &port) != p)
		return "invalid request target\n";
	h2o_iovec_t path = h2o_iovec_init(p, (size_t)(end - p));
	if (path.len == 0 || path.base[0] != '/')
		path = h2o_concat(&req->pool, h2o_iovec_init(H2O_STRLIT("/")), path);
	req->input.authority = req->authority = h2o_iovec_init(a, (size_t)(p - a));
	req->path = path;
	req->path_normalized = h2o_url_normalize_path(&req->pool, path.base, path.len,
	                                              &req->query_at, &req->norm_indexes);
	return NULL;
}

/* The ingress's own 400 or 405: counted under route (or "none"); over HTTP/1 the
 * connection is closed after it, so that whatever the client sent next is not read. */
static void refuse(struct ingress *ing, h2o_req_t *req, uint32_t route, uint64_t start, int status,
                   const char *body)
{
	req->http1_is_persistent = 0;
	if (status == 405)
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
		               H2O_STRLIT(allow_header));
	ing_reply(ing, req, route, start, status, body);
}

static bool take_token(struct ing_tenant *t, uint64_t now)
{
	double elapsed = (double)(now - t->tokens_ns) / 1e9;
	t->tokens_ns = now;
	t->tokens += elapsed * t->rate;
	if (t->tokens > t->burst)
		t->tokens = t->burst;
	if (t->tokens < 1.0)
		return false;
	t->tokens -= 1.0;
	return true;
}

/* Request metadata after the payload; its length, or -ENOSPC. */
static int64_t write_meta(const h2o_req_t *req, uint8_t *base, size_t cap)
{
	struct pd_meta_writer w;
	pd_meta_writer_init(&w, base, cap);
	pd_meta_add(&w, H2O_STRLIT(":method"), req->method.base, req->method.len);
	pd_meta_add(&w, H2O_STRLIT(":path"), req->path_normalized.base, req->path_normalized.len);
	if (req->query_at != SIZE_MAX && req->query_at < req->path.len)
		pd_meta_add(&w, H2O_STRLIT(":query"), req->path.base + req->query_at + 1,
		            req->path.len - req->query_at - 1);
	else
		pd_meta_add(&w, H2O_STRLIT(":query"), "", 0);
	/* h2o keeps Host aside (HTTP/1 Host, HTTP/2 :authority); functions see it as "host". */
	if (req->input.authority.len != 0)
		pd_meta_add(&w, H2O_STRLIT("host"), req->input.authority.base,
		            req->input.authority.len);
	for (size_t i = 0; i < req->headers.size; i++) {
		const h2o_header_t *h = &req->headers.entries[i];
		pd_meta_add(&w, h->name->base, h->name->len, h->value.base, h->value.len);
	}
	return pd_meta_finish(&w);
}

int ing_on_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct ingress *ing = ((struct ing_handler *)self)->ing;
	uint64_t start = now_ns();

	const char *bad = http1_check(req);
	if (bad != NULL) {
		refuse(ing, req, ing->nroutes, start, 400, bad);
		return 0;
	}
	/* Before the target: CONNECT's is no path. */
	if (!method_allowed(req->method)) {
		int r = req->input.path.len > 0 && req->input.path.base[0] == '/'
		            ? route_find(ing, req->path_normalized)
		            : -1;
		refuse(ing, req, r < 0 ? ing->nroutes : (uint32_t)r, start, 405,
		       "method not allowed\n");
		return 0;
	}
	if (h2o_memis(req->input.path.base, req->input.path.len, H2O_STRLIT("*"))) {
		if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"))) {
			refuse(ing, req, ing->nroutes, start, 400, "invalid request target\n");
			return 0;
		}
		/* OPTIONS *: what the server as a whole takes. */
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
		               H2O_STRLIT(allow_header));
		ing_reply(ing, req, ing->nroutes, start, 200, "");
		return 0;
	}
	if ((bad = target_check(req)) != NULL) {
		refuse(ing, req, ing->nroutes, start, 400, bad);
		return 0;
	}
	int ri = route_find(ing, req->path_normalized);
	if (ri < 0) {
		h2o_iovec_t body =
		    h2o_concat(&req->pool, h2o_iovec_init(H2O_STRLIT("no route for ")),
		               req->path_normalized, h2o_iovec_init(H2O_STRLIT("\n")));
		ing_send_text(req, 404, body.base, body.len);
		ing_record(ing, ing->nroutes, 404, start);
		return 0;
	}
	uint32_t route = (uint32_t)ri;
	struct ing_route *rt = &ing->routes[route];
	struct ing_tenant *t = rt->tenant;

	uint64_t max_header = ing->cfg->ingress.max_header_bytes;
	if (max_header != 0 && header_bytes(req) > max_header) {
		ing_reply(ing, req, route, start, 431, "request header fields too large\n");
		return 0;
	}
	size_t body_len = req->entity.base != NULL ? req->entity.len : 0;
	if (body_len > t->max_body) {
		ing_reply(ing, req, route, start, 413, "request body too large\n");
		return 0;
	}
	if (t->inflight >= t->max_inflight) {
		t->rejected[REJECT_INFLIGHT]++;
		reply_429(ing, req, route, start);
		return 0;
	}
	if (t->rate > 0 && !take_token(t, start)) {
		t->rejected[REJECT_RATE]++;
		reply_429(ing, req, route, start);
		return 0;
	}
	if (!ing_route_reachable(rt)) {
		t->rejected[REJECT_NO_ENGINE]++;
		ing_reply(ing, req, route, start, 503, "no engine available\n");
		return 0;
	}
	struct ing_buf *b = ing_slot_available(ing) ? ing_buf_get(t) : NULL;
	if (b == NULL) {
		t->rejected[REJECT_NO_BUFFER]++;
		ing_reply(ing, req, route, start, 503, "no buffer available\n");
		return 0;
	}
	struct ing_slot *s = ing_slot_alloc(ing, route, start, b);

	/* The metadata goes first (its place is known): no payload copy for a 431. */
	size_t meta_off = PD_MSG_HDR_SIZE + body_len;
	int64_t meta_len = write_meta(req, b->data + meta_off, t->buf_size - meta_off);
	if (meta_len < 0) {
		ing_slot_release(ing, s);
		ing_reply(ing, req, route, start, 431, "request header fields too large\n");
		return 0;
	}
	struct pd_msg_hdr *h = (struct pd_msg_hdr *)b->data;
	*h = (struct pd_msg_hdr){
	    .magic = PD_MSG_MAGIC,
	    .version = PD_MSG_VERSION,
	    .flags = PD_MSG_F_REQUEST,
	    .tenant = (uint16_t)t->index,
	    .route = (uint16_t)route,
	    .hop = 0,
	    .status = 0,
	    .request_id = ing_slot_id(ing, s),
	    .origin = ORIGIN_ID,
	    .payload_len = (uint32_t)body_len,
	    .req_meta_len = (uint32_t)meta_len,
	    .resp_meta_len = 0,
	    .sent_ns = start,
	    /* The whole route timeout: the functions count it from when they get the
	     * request, for the calls they make (the ingress answers 504 at its own). */
	    .deadline_ms = (uint32_t)ing->routes[route].cfg->timeout_ms,
	};
	if (body_len > 0)
		memcpy(b->data + PD_MSG_HDR_SIZE, req->entity.base, body_len); /* the one copy */
	ing->stats.copied_bytes += body_len;
	b->request_id = h->request_id;
	s->msg_len = (uint32_t)(meta_off + (uint64_t)meta_len);

	int rc = ing_dispatch(ing, s);
	if (rc < 0) {
		ing_slot_release(ing, s);
		if (rc == -ENOTCONN) {
			t->rejected[REJECT_NO_ENGINE]++;
			ing_reply(ing, req, route, start, 503, "no engine available\n");
		} else if (rc == -ENOBUFS) {
			t->rejected[REJECT_NO_BUFFER]++;
			ing_reply(ing, req, route, start, 503, "no free buffer at the engine\n");
		} else {
			ing->stats.send_failures++;
			ing_reply(ing, req, route, start, 502, "fabric send failed\n");
		}
		return 0;
	}
	struct req_ref *ref = h2o_mem_alloc_shared(&req->pool, sizeof(*ref), on_ref_dispose);
	*ref = (struct req_ref){.ing = ing};
	ing_slot_attach(ing, s, req, ref, rt->timeout);
	return 0;
}

/* ---- a response arrives ------------------------------------------------------------- */

static bool header_value_ok(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
			return false;
	return true;
}

static bool is_framing_header(const char *p, size_t n)
{
	static const char *const names[] = {"connection", "transfer-encoding", "content-length",
	                                    "keep-alive", "upgrade"};
	for (size_t i = 0; i < PD_ARRAY_SIZE(names); i++)
		if (h2o_lcstris(p, n, names[i], strlen(names[i])))
			return true;
	return false;
}

static void add_response_headers(struct ingress *ing, h2o_req_t *req, const uint8_t *meta,
                                 size_t len)
{
	size_t cursor = 0;
	struct pd_meta_entry e;
	while (pd_meta_next(meta, len, &cursor, &e) == 1) {
		if (!pd_http_name_ok_n(e.name, e.name_len) ||
		    !header_value_ok(e.value, e.value_len)) {
			ing->stats.invalid_headers++;
			continue;
		}
		if (is_framing_header(e.name, e.name_len)) {
			ing->stats.skipped_headers++;
			continue;
		}
		/* HTTP/2 wants lower-case names; values stay in the receive buffer. */
		const char *name = e.name;
		for (size_t i = 0; i < e.name_len; i++)
			if (e.name[i] >= 'A' && e.name[i] <= 'Z') {
				char *lc = h2o_mem_alloc_pool(&req->pool, e.name_len);
				for (size_t j = 0; j < e.name_len; j++)
					lc[j] = (char)h2o_tolower(e.name[j]);
				name = lc;
				break;
			}
		h2o_add_header_by_str(&req->pool, &req->res.headers, name, e.name_len, 1, NULL,
		                      e.value, e.value_len);
	}
}

/* The ingress's ing_response_cb (links.c calls it through ingress.on_response); rx comes
 * back through on_ref_dispose when kept. */
void ing_on_response(struct ingress *ing, struct ing_buf *rx, size_t len, int *kept)
{
	struct ing_tenant *t = rx->tenant;
	struct pd_msg_hdr h;
	*kept = 0;
	if (len < PD_MSG_HDR_SIZE)
		goto bad;
	pd_msg_hdr_snapshot(&h, rx->data);
	if (pd_msg_validate(&h, t->buf_size, len) != 0 || (h.flags & PD_MSG_F_RESPONSE) == 0 ||
	    h.tenant != t->index || h.origin != ORIGIN_ID)
		goto bad;
	struct ing_slot *s = NULL;
	int found = ing_slot_lookup(ing, h.request_id, &s);
	if (found == -ERANGE)
		goto bad;
	const uint8_t *payload = rx->data + PD_MSG_HDR_SIZE;
	const uint8_t *meta = payload + h.payload_len + h.req_meta_len;
	if (pd_meta_check(meta, h.resp_meta_len) != 0)
		goto bad;
	if (found != 0)
		goto late;
	if (ing->routes[s->route].tenant != t)
		goto bad;
	if (s->req == NULL) { /* the client went away: the slot waited for this */
		ing_slot_release(ing, s);
		goto late;
	}

	h2o_req_t *req = s->req;
	struct req_ref *ref = s->ref;
	uint32_t route = s->route;
	uint64_t start_ns = s->start_ns;
	ing_slot_release(ing, s);

	int status = h.status;
	if (status < 200 || status > 599) /* a 1xx is no final answer either */
		status = 502;
	req->res.status = status;
	req->res.reason = ing_reason_phrase(status);
	add_response_headers(ing, req, meta, h.resp_meta_len);
	if (h.flags & PD_MSG_F_ERROR)
		h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
		               H2O_STRLIT("text/plain; charset=utf-8"), 1);
	bool no_body = status == 204 || status == 304;
	req->res.content_length = no_body ? SIZE_MAX : h.payload_len;

	/* The body goes out from the receive buffer, which stays held until h2o is done. */
	rx->state = BUF_HELD;
	ref->held = rx;
	*kept = 1;
	h2o_start_response(req, &ing_final_generator);
	h2o_iovec_t body = h2o_iovec_init(payload, h.payload_len);
	if (no_body || ing_is_head(req) || h.payload_len == 0)
		h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
	else
		h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
	ing_record(ing, route, status, start_ns);
	return;

bad:
	ing->stats.bad_messages++;
	return;
late:
	ing->stats.late_responses++;
}
