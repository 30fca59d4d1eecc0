/* SPDX-License-Identifier: Apache-2.0 */
/*
 * quote: asks price and shipping about the same order at once and answers one JSON object
 * with the members of both answers, {"price": {...}, "shipping": {...}}
 * (examples/calls.yaml). The order, this request's body, goes to each callee written in
 * place into the call's pool buffer; the two calls run in parallel. When a callee fails
 * the answer is 502 {"error": "...", "callee": "price", "status": 400, "detail": ...},
 * the detail being the callee's own answer.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <palladium/function.h>

/* The functions quote calls: each must be in its `calls:` list in the cluster file. */
static const char *const callees[] = {"price", "shipping"};
#define NCALLEES (sizeof(callees) / sizeof(callees[0]))

/* Answer the JSON value v with status (v is freed). Written straight into the response
 * buffer: json_dumpb is told the room there is, and says how much it needed. The header
 * goes first: reserving all the room would leave none for it. */
static int answer_json(pd_response *res, int status, json_t *v)
{
	if (v == NULL)
		return pd_response_error(res, 500, "out of memory\n");
	pd_response_set_header(res, "content-type", "application/json");
	size_t cap = pd_response_capacity(res);
	char *out = pd_response_reserve(res, cap);
	size_t n = out != NULL ? json_dumpb(v, out, cap, JSON_COMPACT) : 0;
	json_decref(v);
	if (out == NULL)
		return -1; /* no free buffer: the platform answers 503 */
	if (n == 0 || n >= cap)
		return pd_response_error(res, 500, "the answer does not fit in a buffer\n");
	out[n++] = '\n';
	pd_response_commit(res, n);
	pd_response_set_status(res, status);
	return 0;
}

static void release_all(pd_call **calls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pd_call_release(calls[i]);
}

/* 502 naming the callee that failed, with its status and answer: the callee's JSON as
 * it is, or its text (a failure of the platform, such as 504, has a short text body). */
static int callee_failed(pd_response *res, const char *callee, int status, const char *body,
                         size_t len)
{
	json_t *detail = json_loadb(body, len, JSON_DECODE_ANY, NULL);
	while (detail == NULL && len > 0 && (body[len - 1] == '\n' || body[len - 1] == ' '))
		len--;
	if (detail == NULL)
		detail = json_stringn(body, len); /* NULL if not UTF-8: "detail" is null then */
	char why[160];
	if (status == 200)
		snprintf(why, sizeof(why), "%s answered no JSON object", callee);
	else
		snprintf(why, sizeof(why), "%s failed with status %d", callee, status);
	return answer_json(res, 502,
	                   json_pack("{s:s,s:s,s:i,s:o?}", "error", why, "callee", callee, "status",
	                             status, "detail", detail));
}

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	size_t len;
	const char *order = pd_request_body(req, &len);
	pd_call *calls[NCALLEES] = {NULL};

	/* Fan out: start, fill and send each call before waiting for any. */
	for (size_t i = 0; i < NCALLEES; i++) {
		calls[i] = pd_call_start(req, callees[i]);
		if (calls[i] == NULL) {
			release_all(calls, i);
			return pd_response_error(res, 500, "out of memory\n");
		}
		if (pd_call_status(calls[i]) != 0)
			continue; /* refused before it was sent (403, 503, 508): read below */
		char *room = pd_call_reserve(calls[i], len);
		if (room == NULL) {
			release_all(calls, i + 1);
			return pd_response_error(res, 413, "the order does not fit in a call\n");
		}
		memcpy(room, order, len);
		pd_call_commit(calls[i], len);
		pd_call_set_header(calls[i], "content-type", "application/json");
		pd_call_send(calls[i]);
	}
	pd_call_wait_all(calls, NCALLEES);

	/* Merge the answers, read in place from the callees' buffers. */
	json_t *quote = json_object();
	for (size_t i = 0; i < NCALLEES && quote != NULL; i++) {
		int status = pd_call_status(calls[i]);
		size_t n;
		const char *answer = pd_call_body(calls[i], &n);
		json_t *part = status == 200 ? json_loadb(answer, n, 0, NULL) : NULL;
		if (!json_is_object(part)) {
			json_decref(part);
			json_decref(quote);
			int rc = callee_failed(res, callees[i], status, answer, n);
			release_all(calls, NCALLEES);
			return rc;
		}
		json_object_update(quote, part);
		json_decref(part);
	}
	release_all(calls, NCALLEES);
	return answer_json(res, 200, quote);
}

int main(int argc, char **argv)
{
	/* Seed jansson's hash function here, before pd_serve starts the handler threads. */
	json_object_seed(0);
	return pd_serve(argc, argv, handle, NULL);
}
