/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test function for calls (issue 13, tests/integration/calls*.sh): one program that
 * serves as caller and callee under as many function names as the cluster file gives
 * it. The request's query says what to do (values are taken as they are, no
 * percent-decoding):
 *
 *   do=echo (or no do)   answer the body, with headers saying what this callee saw:
 *                        x-probe-fn, x-probe-node (PD_FUNCTION, PD_NODE), x-probe-hop
 *                        ("hop/chain length"), x-probe-method, x-probe-path,
 *                        x-probe-query, and x-probe-tag (the request's x-probe-tag)
 *   do=error&status=S    answer status S with the body as its message
 *   do=sleep&ms=N        sleep N ms, then echo (a callee that hangs: N large)
 *   do=crash[&how=H]     die without answering: H = kill (SIGKILL, the default), abort,
 *                        exit (_exit(3))
 *   do=call&to=NAME      call NAME and answer with what came back. Options:
 *       n=K              K calls in parallel (1..64), call i's body is "<body>-<i>" when
 *                        K > 1, else the request's body
 *       wait=all|any|each  pd_call_wait_all, pd_call_wait_any until -1, or pd_call_wait
 *                        on each in turn (the default)
 *       via=run|zc       the blocking pd_call_run (n=1 only, no options below) or a
 *                        body reserved and written in place; default pd_call_append
 *       timeout=MS       pd_call_set_timeout on each call
 *       then=crash       die (SIGKILL) right after the calls are sent
 *       reply=relay|summary  relay (default for n=1): the callee's status, body and its
 *                        x-probe-* headers become this answer; summary (default for
 *                        n > 1): 200 with one line "<i> <status> <body>" per call
 *       prop=1           a call that did not end 200 makes this answer that status
 *                        (an error, whose message is the summary)
 *     The callee gets method POST (or the request's x-callee-method), path "/" (or
 *     x-callee-path), the query in the request's x-callee-query header, and the
 *     request's x-probe-tag header.
 *   do=recurse&to=SELF&depth=D  call SELF with depth D+1 (and the same timeout and prop);
 *                        answer the callee's body if it answered 200, else 200 with
 *                        "deepest=D status=S" (or that status with prop=1)
 *
 *   do=forge&what=W,...  (an intruder of its own tenant) writes forged call messages
 *                        and answers "forged <W> ..." (see forge() for each W); it
 *                        includes the runtime's source to reach the pool and its rings
 *
 * Every API result that the contract fixes is checked on the way (a call not yet sent
 * has status 0, wait returns what status then says, wait_any returns each index once
 * and then -1): a broken promise answers 500 "api: ...", which no test expects.
 */
#include "../../src/runtime/runtime.c"

#include <signal.h>

#define MAX_CALLS 64
#define MAX_TEXT 1024

/* The value of key in query q (key=value pairs joined by '&'); NULL if absent. */
static const char *param(const char *q, size_t qlen, const char *key, size_t *vlen)
{
	size_t k = strlen(key);
	size_t i = 0;
	while (i < qlen) {
		size_t end = i;
		while (end < qlen && q[end] != '&')
			end++;
		if (end - i > k && memcmp(q + i, key, k) == 0 && q[i + k] == '=') {
			*vlen = end - i - k - 1;
			return q + i + k + 1;
		}
		i = end + 1;
	}
	return NULL;
}

/* A parameter copied into buf (NUL-terminated); dflt (copied too, if not NULL) when it is
 * absent or too long. Returns buf, or NULL when there is neither. */
static const char *param_str(const char *q, size_t qlen, const char *key, char *buf, size_t cap,
                             const char *dflt)
{
	size_t n;
	const char *v = param(q, qlen, key, &n);
	if (v == NULL || n >= cap) {
		if (dflt == NULL)
			return NULL;
		v = dflt;
		n = strnlen(dflt, cap - 1);
	}
	memcpy(buf, v, n);
	buf[n] = '\0';
	return buf;
}

static long param_long(const char *q, size_t qlen, const char *key, long dflt)
{
	char buf[32];
	const char *v = param_str(q, qlen, key, buf, sizeof(buf), NULL);
	if (v == NULL)
		return dflt;
	char *end;
	long x = strtol(v, &end, 10);
	return *end == '\0' ? x : dflt;
}

/* A request header copied into a NUL-terminated buffer; NULL if absent or too long. */
static const char *header_str(const pd_request *req, const char *name, char *buf, size_t cap)
{
	size_t n;
	const char *v = pd_request_header(req, name, &n);
	if (v == NULL || n >= cap)
		return NULL;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return buf;
}

static int api_broken(pd_response *res, const char *what)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "api: %s\n", what);
	return pd_response_error(res, 500, msg);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void crash(const char *how)
{
	if (strcmp(how, "abort") == 0)
		abort();
	if (strcmp(how, "exit") == 0)
		_exit(3);
	raise(SIGKILL);
}

static int echo(const pd_request *req, pd_response *res)
{
	char buf[MAX_TEXT];
	const char *fn = getenv("PD_FUNCTION"), *node = getenv("PD_NODE");
	pd_response_set_header(res, "x-probe-fn", fn != NULL ? fn : "?");
	pd_response_set_header(res, "x-probe-node", node != NULL ? node : "?");
	snprintf(buf, sizeof(buf), "%u/%u", pd_request_hop(req), pd_request_chain_length(req));
	pd_response_set_header(res, "x-probe-hop", buf);
	static const char *const parts[] = {"x-probe-method", "x-probe-path", "x-probe-query"};
	const char *(*const get[])(const pd_request *, size_t *) = {
	    pd_request_method, pd_request_path, pd_request_query};
	for (size_t i = 0; i < 3; i++) {
		size_t n;
		const char *v = get[i](req, &n);
		if (n < sizeof(buf)) {
			memcpy(buf, v, n);
			buf[n] = '\0';
			pd_response_set_header(res, parts[i], buf);
		}
	}
	if (header_str(req, "x-probe-tag", buf, sizeof(buf)) != NULL)
		pd_response_set_header(res, "x-probe-tag", buf);
	size_t n;
	const char *in = pd_request_body(req, &n);
	return pd_response_append(res, in, n);
}

/* The answer of finished call c becomes this response: status, body, x-probe-* headers. */
static int relay(pd_call *c, pd_response *res)
{
	static const char *const names[] = {"x-probe-fn",     "x-probe-node", "x-probe-hop",
	                                    "x-probe-method", "x-probe-path", "x-probe-query",
	                                    "x-probe-tag"};
	char buf[MAX_TEXT];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n;
		const char *v = pd_call_header(c, names[i], &n);
		if (v != NULL && n < sizeof(buf)) {
			memcpy(buf, v, n);
			buf[n] = '\0';
			pd_response_set_header(res, names[i], buf);
		}
	}
	size_t n;
	const char *body = pd_call_body(c, &n);
	pd_response_set_status(res, pd_call_status(c));
	return pd_response_append(res, body, n);
}

/* Fill and send one call; the body is req's, or "<body>-<i>" when tagged. */
static int prepare(pd_call *c, const pd_request *req, const char *query, bool zero_copy,
                   bool tagged, int i, long timeout)
{
	char buf[MAX_TEXT];
	if (header_str(req, "x-callee-method", buf, sizeof(buf)) != NULL &&
	    pd_call_set_method(c, buf) != 0)
		return -1;
	char path[MAX_TEXT];
	const char *p = header_str(req, "x-callee-path", path, sizeof(path));
	if ((p != NULL || query != NULL) && pd_call_set_path(c, p != NULL ? p : "/", query) != 0)
		return -1;
	if (header_str(req, "x-probe-tag", buf, sizeof(buf)) != NULL &&
	    pd_call_set_header(c, "x-probe-tag", buf) != 0)
		return -1;
	if (timeout >= 0 && pd_call_set_timeout(c, (unsigned)timeout) != 0)
		return -1;
	size_t n;
	const char *in = pd_request_body(req, &n);
	char suffix[16] = "";
	int slen = tagged ? snprintf(suffix, sizeof(suffix), "-%d", i) : 0;
	size_t total = n + (size_t)slen;
	if (zero_copy) {
		if (pd_call_capacity(c) < total)
			return -1;
		char *at = pd_call_reserve(c, total);
		if (at == NULL)
			return -1;
		memcpy(at, in, n);
		memcpy(at + n, suffix, (size_t)slen);
		if (pd_call_commit(c, total) != 0)
			return -1;
	} else if (pd_call_append(c, in, n) != 0 || pd_call_append(c, suffix, (size_t)slen) != 0) {
		return -1;
	}
	return 0;
}

/* One summary line per call: "<i> <status> <body>", the body's first 200 bytes on one
 * line (line breaks become spaces, a trailing one is dropped). */
static void summarize(char *out, size_t cap, size_t *len, int i, const pd_call *c)
{
	size_t n;
	const char *body = pd_call_body(c, &n);
	while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == '\r'))
		n--;
	char line[201];
	if (n > sizeof(line) - 1)
		n = sizeof(line) - 1;
	for (size_t k = 0; k < n; k++)
		line[k] = body[k] == '\n' || body[k] == '\r' ? ' ' : body[k];
	line[n] = '\0';
	if (*len < cap) {
		int w = snprintf(out + *len, cap - *len, "%d %d %s\n", i, pd_call_status(c), line);
		*len += w > 0 ? (size_t)w : 0;
		if (*len > cap)
			*len = cap;
	}
}

static int do_call(const pd_request *req, pd_response *res, const char *q, size_t qlen)
{
	char to[128], wait[8], via[8], reply[16], then[16], cq[MAX_TEXT];
	if (param_str(q, qlen, "to", to, sizeof(to), NULL) == NULL)
		return pd_response_error(res, 400, "do=call needs to=NAME\n");
	long n = param_long(q, qlen, "n", 1);
	if (n < 1 || n > MAX_CALLS)
		return pd_response_error(res, 400, "n must be 1..64\n");
	param_str(q, qlen, "wait", wait, sizeof(wait), "each");
	param_str(q, qlen, "via", via, sizeof(via), "append");
	param_str(q, qlen, "reply", reply, sizeof(reply), n == 1 ? "relay" : "summary");
	param_str(q, qlen, "then", then, sizeof(then), "");
	long timeout = param_long(q, qlen, "timeout", -1);
	bool prop = param_long(q, qlen, "prop", 0) == 1;
	const char *query = header_str(req, "x-callee-query", cq, sizeof(cq));

	pd_call *calls[MAX_CALLS] = {0};
	if (strcmp(via, "run") == 0) {
		size_t blen;
		const char *body = pd_request_body(req, &blen);
		calls[0] = pd_call_run(req, to, body, blen);
		n = 1;
		if (calls[0] == NULL)
			return api_broken(res, "pd_call_run returned NULL");
		if (pd_call_status(calls[0]) == 0)
			return api_broken(res, "pd_call_run returned an unfinished call");
	} else {
		for (int i = 0; i < n; i++) {
			calls[i] = pd_call_start(req, to);
			if (calls[i] == NULL)
				return api_broken(res, "pd_call_start returned NULL");
			int before = pd_call_status(calls[i]);
			if (before != 0)
				continue; /* refused at once (403, 503, 508): it says why */
			if (prepare(calls[i], req, query, strcmp(via, "zc") == 0, n > 1, i,
			            timeout) != 0)
				return api_broken(res, "could not fill a call");
			if (pd_call_send(calls[i]) != 0 && pd_call_status(calls[i]) == 0)
				return api_broken(res, "pd_call_send failed without a status");
		}
		if (strcmp(then, "crash") == 0)
			crash("kill");
		if (strcmp(wait, "all") == 0) {
			if (pd_call_wait_all(calls, (size_t)n) != 0)
				return api_broken(res, "pd_call_wait_all did not return 0");
		} else if (strcmp(wait, "any") == 0) {
			pd_call *left[MAX_CALLS];
			memcpy(left, calls, sizeof(left));
			bool seen[MAX_CALLS] = {0};
			for (int k = 0; k < n; k++) {
				int i = pd_call_wait_any(left, (size_t)n);
				if (i < 0 || i >= n || seen[i] || pd_call_status(calls[i]) == 0)
					return api_broken(res, "pd_call_wait_any: a wrong index");
				seen[i] = true;
				left[i] = NULL;
			}
			if (pd_call_wait_any(left, (size_t)n) != -1)
				return api_broken(res, "pd_call_wait_any: no -1 at the end");
		} else {
			for (int i = 0; i < n; i++)
				if (pd_call_wait(calls[i]) != pd_call_status(calls[i]))
					return api_broken(res,
					                  "pd_call_wait and pd_call_status differ");
		}
	}
	char out[MAX_CALLS * 224]; /* a summary line of every call, whole */
	size_t len = 0;
	int worst = 200;
	for (int i = 0; i < n; i++) {
		int s = pd_call_status(calls[i]);
		if (s == 0)
			return api_broken(res, "a waited call has status 0");
		if (s != 200 && worst == 200)
			worst = s;
		summarize(out, sizeof(out), &len, i, calls[i]);
	}
	int rc;
	if (prop && worst != 200) {
		out[len < sizeof(out) ? len : sizeof(out) - 1] = '\0';
		rc = pd_response_error(res, worst, out);
	} else if (strcmp(reply, "relay") == 0) {
		rc = relay(calls[0], res);
	} else {
		rc = pd_response_append(res, out, len);
	}
	for (int i = 0; i < n; i++)
		pd_call_release(calls[i]);
	return rc;
}

static int do_recurse(const pd_request *req, pd_response *res, const char *q, size_t qlen)
{
	char to[128], query[512];
	if (param_str(q, qlen, "to", to, sizeof(to), NULL) == NULL)
		return pd_response_error(res, 400, "do=recurse needs to=SELF\n");
	long depth = param_long(q, qlen, "depth", 0);
	long timeout = param_long(q, qlen, "timeout", -1);
	bool prop = param_long(q, qlen, "prop", 0) == 1;
	int w = snprintf(query, sizeof(query), "do=recurse&to=%s&depth=%ld", to, depth + 1);
	if (timeout >= 0)
		w += snprintf(query + w, sizeof(query) - (size_t)w, "&timeout=%ld", timeout);
	if (prop)
		snprintf(query + w, sizeof(query) - (size_t)w, "&prop=1");

	pd_call *c = pd_call_start(req, to);
	if (c == NULL)
		return api_broken(res, "pd_call_start returned NULL");
	if (pd_call_status(c) == 0) {
		if (pd_call_set_path(c, "/", query) != 0 ||
		    (timeout >= 0 && pd_call_set_timeout(c, (unsigned)timeout) != 0)) {
			pd_call_release(c);
			return api_broken(res, "could not fill a call");
		}
		pd_call_send(c);
	}
	int s = pd_call_wait(c);
	int rc;
	if (s == 200) {
		size_t n;
		const char *body = pd_call_body(c, &n);
		rc = pd_response_append(res, body, n);
	} else {
		char msg[64];
		snprintf(msg, sizeof(msg), "deepest=%ld status=%d\n", depth, s);
		rc = prop ? pd_response_error(res, s, msg)
		          : pd_response_append(res, msg, strlen(msg));
	}
	pd_call_release(c);
	return rc;
}

/* ---------------------------------------------------------------- forged messages */

/* The function index of a function this one declares in `calls:`; -1 if it does not. */
static int callee_index(const char *name)
{
	for (uint16_t i = 0; i < rt.cfg.ncallees && i < PD_MAX_CALLS; i++)
		if (strncmp(rt.cfg.callees[i].name, name, sizeof(rt.cfg.callees[i].name)) == 0)
			return rt.cfg.callees[i].function;
	return -1;
}

/* The position in rt.cfg.inst of the first instance of function fn on this node. */
static int inst_of(int fn)
{
	for (uint16_t i = 0; i < rt.cfg.ninst; i++)
		if (rt.cfg.inst[i].function == fn)
			return i;
	return -1;
}

/* A buffer of this instance holding a well-formed call message (kind: PD_MSG_F_CALL or
 * PD_MSG_F_REPLY) for req's route and request, with body "forged", that the caller then
 * spoils one field of. PD_CALL_NO_BUF if the pool has no free buffer. */
static uint32_t forge_msg(const pd_request *req, uint16_t kind, uint16_t callee,
                          struct pd_msg_hdr **hp)
{
	uint32_t idx;
	if (pd_pool_alloc(&rt.pool, rt.cfg.slot, &idx) != 0)
		return PD_CALL_NO_BUF;
	pd_pool_set(&rt.pool, idx, rt.cfg.slot, PD_BUF_IN_FUNCTION);
	struct pd_msg_hdr *h = pd_pool_buf(&rt.pool, idx);
	*h = (struct pd_msg_hdr){
	    .magic = PD_MSG_MAGIC,
	    .version = PD_MSG_VERSION,
	    .flags = kind,
	    .tenant = rt.cfg.tenant,
	    .route = req->hdr.route,
	    .callee = callee,
	    .status = kind == PD_MSG_F_REPLY ? 200 : 0,
	    .request_id = req->hdr.request_id,
	    .origin = req->hdr.origin,
	    .depth = 1,
	    .payload_len = 6,
	    .sent_ns = req->hdr.sent_ns,
	    /* Slot 0xfffff of the table, generation 0xdead: never issued. */
	    .call_id = (UINT64_C(0xdead) << 32) | 0xfffff,
	    .deadline_ms = 1000,
	    .reply_node = rt.cfg.node,
	    .reply_slot = rt.cfg.slot,
	};
	memcpy(pd_msg_payload(h), "forged", 6);
	*hp = h;
	return idx;
}

/* Straight into the inbound ring of instance i (rt.cfg.inst[i]), as a local call goes. */
static void to_inst_ring(uint32_t idx, int i)
{
	uint16_t slot = rt.cfg.inst[i].slot;
	atomic_store_explicit(&rt.pool.ctl[idx].since_ns, pd_now_ns(), memory_order_relaxed);
	pd_pool_set(&rt.pool, idx, slot, PD_BUF_IN_RING);
	if (pd_ring_push(&rt.pool.inst_ring[slot], idx) == 0)
		pd_ring_notify(&rt.pool.inst_ring[slot], rt.inst_efd[i]);
	else
		pd_pool_free(&rt.pool, idx);
}

/*
 * One forged message W (query: victim=NAME a caller waiting for a call, callee=NAME a
 * function this one declares, never=NAME one it does not, other=INDEX a function of
 * another tenant). Returns 0, or -1 if W is unknown or what it needs is missing.
 *   reply_id      a reply with a call id never issued, into the victim's reply ring
 *   reply_id_eng  the same through the engine (addressed to the victim)
 *   reply_tenant  a reply through the engine that says it is another tenant's
 *   reply_slot    a reply through the engine to an instance slot that does not exist
 *   reply_node    a reply through the engine to a node that does not exist
 *   reply_misaddr a reply into the victim's reply ring addressed to this instance
 *   call_tenant   a call through the engine to another tenant's function
 *   call_undecl   a call through the engine to a function this one does not declare
 *   call_depth    a call through the engine 200 deep (its 403/508 replies come back here)
 *   call_slot     a call into the callee's ring whose reply slot does not exist
 *   call_callee   a call into the callee's ring that names another function
 *   call_ring_undecl  a call into the ring of a function this one does not declare
 */
static int forge_one(const pd_request *req, const char *w, const char *q, size_t qlen)
{
	char name[64];
	int victim = callee_index(param_str(q, qlen, "victim", name, sizeof(name), ""));
	int callee = callee_index(param_str(q, qlen, "callee", name, sizeof(name), ""));
	long other = param_long(q, qlen, "other", -1);
	int never = -1;
	/* A function it does not declare: its index from the instances of this node. */
	long never_idx = param_long(q, qlen, "never", -1);
	if (never_idx >= 0 && inst_of((int)never_idx) >= 0)
		never = (int)never_idx;
	struct pd_msg_hdr *h;
	uint32_t idx;
	bool reply = strncmp(w, "reply_", 6) == 0;
	int target = reply ? victim : strcmp(w, "call_ring_undecl") == 0 ? never : callee;
	if (target < 0 || inst_of(target) < 0)
		return -1;
	idx = forge_msg(req, reply ? PD_MSG_F_REPLY : PD_MSG_F_CALL, (uint16_t)target, &h);
	if (idx == PD_CALL_NO_BUF)
		return -1;
	uint16_t victim_slot = rt.cfg.inst[inst_of(target)].slot;
	if (reply)
		h->reply_slot = victim_slot;
	if (strcmp(w, "reply_id") == 0) {
		if (pd_pool_push_reply(&rt.pool, victim_slot, idx) != 0)
			pd_pool_free(&rt.pool, idx);
	} else if (strcmp(w, "reply_id_eng") == 0) {
		to_engine(idx);
	} else if (strcmp(w, "reply_tenant") == 0) {
		h->tenant = (uint16_t)(rt.cfg.tenant + 1);
		to_engine(idx);
	} else if (strcmp(w, "reply_slot") == 0) {
		h->reply_slot = 250;
		to_engine(idx);
	} else if (strcmp(w, "reply_node") == 0) {
		h->reply_node = 9;
		to_engine(idx);
	} else if (strcmp(w, "reply_misaddr") == 0) {
		h->reply_slot = rt.cfg.slot;
		if (pd_pool_push_reply(&rt.pool, victim_slot, idx) != 0)
			pd_pool_free(&rt.pool, idx);
	} else if (strcmp(w, "call_tenant") == 0 && other >= 0) {
		h->callee = (uint16_t)other;
		to_engine(idx);
	} else if (strcmp(w, "call_undecl") == 0 && never >= 0) {
		h->callee = (uint16_t)never;
		to_engine(idx);
	} else if (strcmp(w, "call_depth") == 0) {
		h->depth = 200;
		to_engine(idx);
	} else if (strcmp(w, "call_slot") == 0) {
		h->reply_slot = 250;
		to_inst_ring(idx, inst_of(target));
	} else if (strcmp(w, "call_callee") == 0) {
		h->callee = (uint16_t)(never >= 0 ? never : rt.cfg.function);
		to_inst_ring(idx, inst_of(target));
	} else if (strcmp(w, "call_ring_undecl") == 0) {
		to_inst_ring(idx, inst_of(target));
	} else {
		pd_pool_free(&rt.pool, idx);
		return -1;
	}
	return 0;
}

/*
 * what=stale: a real call to callee (its answer checked), then a reply with that
 * released call's id into this instance's own reply ring, then a second real call, during
 * whose wait the stale reply is taken from the ring: it must be counted late and must not
 * become the second call's answer. Answers "<status> <body>" of the second call.
 */
static int forge_stale(const pd_request *req, pd_response *res, const char *q, size_t qlen)
{
	char name[64];
	const char *to = param_str(q, qlen, "callee", name, sizeof(name), "");
	pd_call *c = pd_call_start(req, to);
	if (c == NULL || pd_call_append(c, "first", 5) != 0 || pd_call_send(c) != 0)
		return api_broken(res, "the first call of what=stale could not be sent");
	uint64_t stale = c->id; /* the runtime forgets it once the call is collected */
	if (pd_call_wait(c) != 200)
		return api_broken(res, "the first call of what=stale failed");
	pd_call_release(c);
	struct pd_msg_hdr *h;
	uint32_t idx = forge_msg(req, PD_MSG_F_REPLY, (uint16_t)callee_index(to), &h);
	if (idx == PD_CALL_NO_BUF)
		return api_broken(res, "no buffer to forge");
	h->call_id = stale;
	if (pd_pool_push_reply(&rt.pool, rt.cfg.slot, idx) != 0)
		pd_pool_free(&rt.pool, idx);
	c = pd_call_run(req, to, "second", 6);
	if (c == NULL)
		return api_broken(res, "the second call of what=stale: NULL");
	size_t n;
	const char *body = pd_call_body(c, &n);
	char out[256];
	int w = snprintf(out, sizeof(out), "%d %.*s", pd_call_status(c), (int)(n < 200 ? n : 200),
	                 body);
	pd_call_release(c);
	return pd_response_append(res, out, (size_t)w);
}

static int do_forge(const pd_request *req, pd_response *res, const char *q, size_t qlen)
{
	char list[512];
	param_str(q, qlen, "what", list, sizeof(list), "");
	if (strcmp(list, "stale") == 0)
		return forge_stale(req, res, q, qlen);
	char out[600] = "forged";
	size_t len = strlen(out);
	for (char *save = NULL, *w = strtok_r(list, ",", &save); w != NULL;
	     w = strtok_r(NULL, ",", &save)) {
		if (forge_one(req, w, q, qlen) != 0) {
			char msg[128];
			snprintf(msg, sizeof(msg), "cannot forge %s\n", w);
			return pd_response_error(res, 400, msg);
		}
		len += (size_t)snprintf(out + len, sizeof(out) - len, " %s", w);
	}
	return pd_response_append(res, out, len);
}

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	size_t qlen;
	const char *q = pd_request_query(req, &qlen);
	char what[16], buf[MAX_TEXT];
	param_str(q, qlen, "do", what, sizeof(what), "echo");
	if (strcmp(what, "echo") == 0)
		return echo(req, res);
	if (strcmp(what, "error") == 0) {
		size_t n;
		const char *in = pd_request_body(req, &n);
		if (n >= sizeof(buf))
			n = sizeof(buf) - 1;
		memcpy(buf, in, n);
		buf[n] = '\0';
		return pd_response_error(res, (int)param_long(q, qlen, "status", 500), buf);
	}
	if (strcmp(what, "sleep") == 0) {
		sleep_ms(param_long(q, qlen, "ms", 0));
		return echo(req, res);
	}
	if (strcmp(what, "crash") == 0) {
		crash(param_str(q, qlen, "how", buf, sizeof(buf), "kill"));
		return -1;
	}
	if (strcmp(what, "call") == 0)
		return do_call(req, res, q, qlen);
	if (strcmp(what, "recurse") == 0)
		return do_recurse(req, res, q, qlen);
	if (strcmp(what, "forge") == 0)
		return do_forge(req, res, q, qlen);
	return pd_response_error(res, 400, "unknown do=\n");
}

int main(int argc, char **argv)
{
	return pd_serve(argc, argv, handle, NULL);
}
