/* SPDX-License-Identifier: Apache-2.0 */
/*
 * price: prices an order from a small fixed catalogue. The request body is a JSON object,
 * {"items": [{"id": "book", "qty": 2}, ...]} (every field optional: no items costs 0);
 * the answer is {"price": {"currency": "EUR", "items": <count>, "total_cents": <sum>}}.
 * Invalid JSON, an item that is not in the catalogue or a bad quantity: 400 with
 * {"error": "..."}. Called by quote (examples/calls.yaml).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <palladium/function.h>

static const struct {
	const char *id;
	json_int_t cents;
} catalogue[] = {
    {"book", 1250},
    {"mug", 850},
    {"pen", 199},
};

enum { MAX_QTY = 1000 };

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

static const json_int_t *unit_price(const char *id)
{
	for (size_t i = 0; i < sizeof(catalogue) / sizeof(catalogue[0]); i++)
		if (strcmp(catalogue[i].id, id) == 0)
			return &catalogue[i].cents;
	return NULL;
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
	json_t *items = json_object_get(order, "items");
	if (items != NULL && !json_is_array(items)) {
		json_decref(order);
		return bad_request(res, "\"items\" is not an array");
	}
	json_int_t count = 0, total = 0;
	size_t i;
	json_t *item;
	json_array_foreach(items, i, item)
	{
		const char *id = json_string_value(json_object_get(item, "id"));
		json_t *qty = json_object_get(item, "qty");
		const json_int_t *cents = id != NULL ? unit_price(id) : NULL;
		json_int_t q = qty == NULL ? 1 : json_integer_value(qty);
		char why[160];
		if (!json_is_object(item)) {
			snprintf(why, sizeof(why), "item %zu is not a JSON object", i);
		} else if (cents == NULL) {
			snprintf(why, sizeof(why),
			         "item %zu: \"id\" names no item of the catalogue", i);
		} else if ((qty != NULL && !json_is_integer(qty)) || q < 1 || q > MAX_QTY) {
			snprintf(why, sizeof(why), "item %zu: \"qty\" is not an integer 1..%d", i,
			         MAX_QTY);
		} else {
			count += q;
			total += q * *cents;
			continue;
		}
		json_decref(order);
		return bad_request(res, why);
	}
	json_decref(order);
	return answer_json(res, 200,
	                   json_pack("{s:{s:s,s:I,s:I}}", "price", "currency", "EUR", "items",
	                             count, "total_cents", total));
}

int main(int argc, char **argv)
{
	/* Seed jansson's hash function here, before pd_serve starts the handler threads. */
	json_object_seed(0);
	return pd_serve(argc, argv, handle, NULL);
}
