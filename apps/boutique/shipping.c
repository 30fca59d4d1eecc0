/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shipping: /GetQuote {"address", "items"} answers a flat price in USD for any non-empty
 * order (0 for an empty one); /ShipOrder {"address", "items"} answers a tracking id
 * (docs/boutique.md). Nothing is shipped.
 */
#include <stdio.h>
#include <string.h>

#include "common.h"

/* The flat price of shipping an order, whatever it holds: 8.99 USD. */
static const struct boutique_money flat_rate = {"USD", 8, 990000000};

/* The number of pieces of items (a list of CartItem), or -1 after a 400. An address,
 * when given, must be an object. */
static int64_t count_items(pd_response *res, const struct json_object *in)
{
	const struct json_object *address = json_object_object_get(in, "address");
	const struct json_object *items = json_object_object_get(in, "items");
	if (boutique_has(in, "address") && !boutique_is_object(address)) {
		boutique_error(res, 400, "expected \"address\": an object");
		return -1;
	}
	if (boutique_has(in, "items") && !boutique_is_array(items)) {
		boutique_error(res, 400, "expected \"items\": [{\"product_id\", \"quantity\"}...]");
		return -1;
	}
	int64_t total = 0;
	size_t i;
	const struct json_object *item;
	boutique_array_foreach(items, i, item)
	{
		int64_t q;
		if (boutique_string(item, "product_id") == NULL ||
		    boutique_int(item, "quantity", &q) != 0 || q < 1 || q > 1000000) {
			boutique_error(res, 400,
			               "item %zu: expected {\"product_id\": string, \"quantity\": "
			               "1..1000000}",
			               i + 1);
			return -1;
		}
		total += q;
	}
	return total;
}

static int get_quote(pd_response *res, const struct json_object *in)
{
	int64_t pieces = count_items(res, in);
	if (pieces < 0)
		return 0;
	struct boutique_money cost = {"USD", 0, 0};
	if (pieces > 0)
		cost = flat_rate;
	return boutique_answer(res, 200,
	                       boutique_object1("cost_usd", boutique_money_to_json(&cost)));
}

static int ship_order(pd_response *res, const struct json_object *in)
{
	int64_t pieces = count_items(res, in);
	if (pieces < 0)
		return 0;
	if (pieces == 0)
		return boutique_error(res, 400, "no items to ship");
	/* Two letters, then two groups of digits: PD-48213309-905177. */
	char id[32];
	snprintf(id, sizeof(id), "%c%c-%08llu-%06llu", 'A' + (int)boutique_random_below(26),
	         'A' + (int)boutique_random_below(26),
	         (unsigned long long)boutique_random_below(100000000),
	         (unsigned long long)boutique_random_below(1000000));
	return boutique_answer(res, 200,
	                       boutique_object1("tracking_id", json_object_new_string(id)));
}

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	char method[64];
	boutique_method(req, method, sizeof(method));
	struct json_object *in = boutique_request_object(req, res);
	if (in == NULL)
		return 0;
	int rc;
	if (strcmp(method, "GetQuote") == 0)
		rc = get_quote(res, in);
	else if (strcmp(method, "ShipOrder") == 0)
		rc = ship_order(res, in);
	else
		rc = boutique_unknown_method(res, method);
	json_object_put(in);
	return rc;
}

int main(int argc, char **argv)
{
	struct boutique_args args;
	if (boutique_args_parse(argc, argv, &args) != 0)
		return 1;
	/* Seed json-c's hash function here, before pd_serve starts the handler threads. */
	boutique_json_init();
	return pd_serve(argc, argv, handle, NULL);
}
