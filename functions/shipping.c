/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shipping: the cost and delivery time of an order to a country. The request body is a
 * JSON object, {"country": "FR", ...} (optional: "DE"; other members are ignored); the
 * answer is {"shipping": {"country": "FR", "cost_cents": 890, "days": 3}}, from a small
 * fixed table with one rate for every other country. Invalid JSON or a country that is
 * not two capital letters: 400 with {"error": "..."}. Called by quote
 * (examples/calls.yaml).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <palladium/function.h>

struct rate {
	const char *country;
	json_int_t cost_cents;
	json_int_t days;
};

static const struct rate rates[] = {
    {"DE", 490, 2},
    {"FR", 890, 3},
    {"IT", 890, 4},
    {"US", 2490, 7},
};
static const struct rate rest_of_world = {NULL, 1990, 10};

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

static int bad_request(pd_response *res, const char *why)
{
	return answer_json(res, 400, json_pack("{s:s}", "error", why));
}

static int is_country_code(const char *s)
{
	return s != NULL && strlen(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' &&
	       s[1] <= 'Z';
}

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	size_t len;
	const char *body = pd_request_body(req, &len);
	json_error_t err;
	/* An empty body (a GET) asks for the same as "{}". */
	json_t *order = len == 0 ? json_object() : json_loadb(body, len, 0, &err);
	if (order == NULL) {
		char why[200];
		snprintf(why, sizeof(why), "invalid JSON at line %d column %d: %s", err.line,
		         err.column, err.text);
		return bad_request(res, why);
	}
	if (!json_is_object(order)) {
		json_decref(order);
		return bad_request(res, "the body is not a JSON object");
	}
	json_t *country = json_object_get(order, "country");
	const char *code = country == NULL ? "DE" : json_string_value(country);
	if (!is_country_code(code)) {
		json_decref(order);
		return bad_request(res, "\"country\" is not a code of two capital letters");
	}
	const struct rate *r = &rest_of_world;
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
		if (strcmp(rates[i].country, code) == 0)
			r = &rates[i];
	/* code points into order: pack it before freeing order. */
	json_t *answer = json_pack("{s:{s:s,s:I,s:I}}", "shipping", "country", code, "cost_cents",
	                           r->cost_cents, "days", r->days);
	json_decref(order);
	return answer_json(res, 200, answer);
}

int main(int argc, char **argv)
{
	/* Seed jansson's hash function here, before pd_serve starts the handler threads. */
	json_object_seed(0);
	return pd_serve(argc, argv, handle, NULL);
}
