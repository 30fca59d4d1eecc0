/* SPDX-License-Identifier: Apache-2.0 */
/*
 * callbench: calls the function "echo" n times with its own request body and answers
 * "ok <n>" when every call answered 200 with that body, else with the first failing
 * call's status and body. The query says how: n=<0..64> (default 1; 0 makes no call, the reference
 * that bench/call subtracts) and mode=par (start and send all, then wait for all; default) or
 * mode=seq (one call after another, stopping at the first failure).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <palladium/function.h>

#define CALLS_MAX 64

/* The value of key in the query q (qlen bytes), or NULL; *vlen gets its length. */
static const char *query_value(const char *q, size_t qlen, const char *key, size_t *vlen)
{
	size_t klen = strlen(key);
	while (qlen > 0) {
		const char *amp = memchr(q, '&', qlen);
		size_t plen = amp != NULL ? (size_t)(amp - q) : qlen;
		if (plen > klen && memcmp(q, key, klen) == 0 && q[klen] == '=') {
			*vlen = plen - klen - 1;
			return q + klen + 1;
		}
		if (amp == NULL)
			break;
		qlen -= plen + 1;
		q = amp + 1;
	}
	return NULL;
}

/* n=, mode=: 0, or -1 if either is malformed. */
static int parse_query(const pd_request *req, unsigned *n, bool *parallel)
{
	size_t qlen, vlen;
	const char *q = pd_request_query(req, &qlen), *v;
	*n = 1;
	*parallel = true;
	if ((v = query_value(q, qlen, "n", &vlen)) != NULL) {
		if (vlen == 0 || vlen > 2)
			return -1;
		unsigned x = 0;
		for (size_t i = 0; i < vlen; i++) {
			if (v[i] < '0' || v[i] > '9')
				return -1;
			x = x * 10 + (unsigned)(v[i] - '0');
		}
		if (x > CALLS_MAX)
			return -1;
		*n = x;
	}
	if ((v = query_value(q, qlen, "mode", &vlen)) != NULL) {
		if (vlen == 3 && memcmp(v, "par", 3) == 0)
			*parallel = true;
		else if (vlen == 3 && memcmp(v, "seq", 3) == 0)
			*parallel = false;
		else
			return -1;
	}
	return 0;
}

/* A call to echo with body (len bytes) written in place, sent. NULL: out of memory. */
static pd_call *send_echo(const pd_request *req, const char *body, size_t len)
{
	pd_call *c = pd_call_start(req, "echo");
	if (c == NULL)
		return NULL;
	/* A call that cannot be made has finished already: its status says why. */
	if (pd_call_status(c) == 0 && len > 0) {
		char *p = pd_call_reserve(c, len);
		if (p != NULL) {
			memcpy(p, body, len);
			pd_call_commit(c, len);
		}
	}
	pd_call_send(c);
	return c;
}

/* Answer with a failed call's status and body. */
static int answer_with(pd_response *res, const pd_call *c)
{
	size_t len;
	const char *body = pd_call_body(c, &len);
	pd_response_set_status(res, pd_call_status(c));
	if (len > 0 && pd_response_append(res, body, len) != 0)
		return pd_response_error(res, 502, "answer of echo too large\n");
	return 0;
}

/* Every answer is the body sent (the bench checks what it measures). */
static bool all_echoed(pd_call *const *calls, unsigned n, const char *body, size_t len)
{
	for (unsigned i = 0; i < n; i++) {
		size_t got;
		const char *answer = pd_call_body(calls[i], &got);
		if (got != len || memcmp(answer, body, len) != 0)
			return false;
	}
	return true;
}

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	unsigned n;
	bool parallel;
	if (parse_query(req, &n, &parallel) != 0)
		return pd_response_error(res, 400, "expected n=0..64 and mode=par|seq\n");
	size_t len;
	const char *body = pd_request_body(req, &len);
	pd_call *calls[CALLS_MAX] = {0};
	const pd_call *failed = NULL;
	int rc = 0;
	for (unsigned i = 0; i < n; i++) {
		calls[i] = send_echo(req, body, len);
		if (calls[i] == NULL) {
			rc = pd_response_error(res, 503, "out of memory for calls\n");
			goto release;
		}
		if (!parallel && pd_call_wait(calls[i]) != 200) {
			failed = calls[i];
			break;
		}
	}
	if (parallel)
		pd_call_wait_all(calls, n);
	for (unsigned i = 0; i < n && failed == NULL; i++)
		if (calls[i] != NULL && pd_call_status(calls[i]) != 200)
			failed = calls[i];
	if (failed != NULL) {
		rc = answer_with(res, failed);
	} else if (!all_echoed(calls, n, body, len)) {
		rc = pd_response_error(res, 502, "echo answered another body\n");
	} else {
		char ok[16];
		int m = snprintf(ok, sizeof(ok), "ok %u\n", n);
		pd_response_append(res, ok, (size_t)m);
	}
release:
	for (unsigned i = 0; i < n; i++)
		pd_call_release(calls[i]);
	return rc;
}

int main(int argc, char **argv)
{
	return pd_serve(argc, argv, handle, NULL);
}
