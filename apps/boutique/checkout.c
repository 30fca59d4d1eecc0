/* SPDX-License-Identifier: Apache-2.0 */
/*
 * checkout: /PlaceOrder {"user_id", "user_currency", "address", "email", "credit_card"}
 * (docs/boutique.md): gets the user's cart; looks up every product and quotes shipping
 * at once; converts every price and the shipping cost to the user's currency at once;
 * charges the total; ships; empties the cart; sends the confirmation. Answers
 * {"order": OrderResult}.
 *
 * Errors: 400 for a bad request, an empty cart, an unknown currency or a refused card
 * (with payment's reason); 503 when the cart's storage is down (cart's own 503); 502
 * when another service fails, naming it. Once the card is charged, a failure to empty
 * the cart or to send the e-mail does not fail the order.
 */
#include <stdio.h>
#include <string.h>

#include "common.h"

/* Distinct products in one order at most: each needs two calls out at once. */
#define MAX_ORDER_ITEMS 64

struct line {
	const char *product_id; /* in the cart's answer */
	int64_t quantity;
	struct boutique_money price_usd;
	struct boutique_money cost; /* unit price in the user's currency */
};

struct order {
	const pd_request *req;
	pd_response *res;
	const struct json_object *in;
	const char *currency;
	struct json_object *cart; /* cart's answer: the lines point into it */
	struct line lines[MAX_ORDER_ITEMS];
	size_t nlines;
	struct boutique_money shipping_usd, shipping;
};

static int callee_failed(struct order *o, const char *callee, int status, const char *why)
{
	return boutique_error(o->res, 502, "%s failed with status %d: %s", callee, status, why);
}

static void release_all(pd_call **calls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pd_call_release(calls[i]);
}

/* The cart's lines into o->lines. 0, or -1 after an answer. */
static int get_cart(struct order *o)
{
	char why[256];
	int status = boutique_call(
	    o->req, "cart", "GetCart",
	    boutique_object1("user_id", boutique_new_string(boutique_string(o->in, "user_id"))),
	    &o->cart, why, sizeof(why));
	if (status == 503) {
		boutique_error(o->res, 503, "cart: %s", why);
		return -1;
	}
	if (status != 200) {
		callee_failed(o, "cart", status, why);
		return -1;
	}
	const struct json_object *items = json_object_object_get(o->cart, "items");
	size_t i;
	const struct json_object *item;
	boutique_array_foreach(items, i, item)
	{
		int64_t q;
		const char *id = boutique_string(item, "product_id");
		if (id == NULL || boutique_int(item, "quantity", &q) != 0 || q < 1) {
			callee_failed(o, "cart", 200, "an item without product_id or quantity");
			return -1;
		}
		if (o->nlines == MAX_ORDER_ITEMS) {
			boutique_error(o->res, 400, "more than %d products in the cart",
			               MAX_ORDER_ITEMS);
			return -1;
		}
		o->lines[o->nlines++] = (struct line){.product_id = id, .quantity = q};
	}
	if (o->nlines == 0) {
		boutique_error(o->res, 400, "the cart is empty");
		return -1;
	}
	return 0;
}

/* Append v (taken) to the array a; a failure (out of memory) loses v, as jansson's
 * json_array_append_new did. */
static void append(struct json_object *a, struct json_object *v)
{
	if (a == NULL || v == NULL || json_object_array_add(a, v) != 0)
		json_object_put(v);
}

/* {"product_id", "quantity"} of line i. */
static struct json_object *cart_item(const struct order *o, size_t i)
{
	return boutique_object2("product_id", json_object_new_string(o->lines[i].product_id),
	                        "quantity", json_object_new_int64(o->lines[i].quantity));
}

/* The cart's items as CartItems, for shipping. */
static struct json_object *cart_items(const struct order *o)
{
	struct json_object *items = json_object_new_array();
	for (size_t i = 0; i < o->nlines; i++)
		append(items, cart_item(o, i));
	return items;
}

/* Every product's price and the shipping quote, all calls out at once. */
static int prices_and_quote(struct order *o)
{
	pd_call *calls[MAX_ORDER_ITEMS + 1] = {NULL};
	size_t n = o->nlines;
	for (size_t i = 0; i < n; i++)
		calls[i] = boutique_call_start(
		    o->req, "productcatalog", "GetProduct",
		    boutique_object1("id", json_object_new_string(o->lines[i].product_id)));
	calls[n] = boutique_call_start(
	    o->req, "shipping", "GetQuote",
	    boutique_object2("address", boutique_ref(json_object_object_get(o->in, "address")),
	                     "items", cart_items(o)));
	pd_call_wait_all(calls, n + 1);
	int rc = 0;
	for (size_t i = 0; i <= n && rc == 0; i++) {
		struct json_object *answer;
		char why[256];
		int status = boutique_call_result(calls[i], &answer, why, sizeof(why));
		const char *callee = i < n ? "productcatalog" : "shipping";
		if (status != 200) {
			callee_failed(o, callee, status, why);
			rc = -1;
			break;
		}
		struct boutique_money *m = i < n ? &o->lines[i].price_usd : &o->shipping_usd;
		const char *member = i < n ? "price_usd" : "cost_usd";
		if (boutique_money_from_json(json_object_object_get(answer, member), m) != 0) {
			callee_failed(o, callee, 200, "no valid price in the answer");
			rc = -1;
		}
		json_object_put(answer);
	}
	release_all(calls, n + 1);
	return rc;
}

/* Every price and the shipping cost in the user's currency, all calls out at once. */
static int convert_all(struct order *o)
{
	pd_call *calls[MAX_ORDER_ITEMS + 1] = {NULL};
	size_t n = o->nlines;
	for (size_t i = 0; i <= n; i++) {
		const struct boutique_money *from =
		    i < n ? &o->lines[i].price_usd : &o->shipping_usd;
		calls[i] = boutique_call_start(
		    o->req, "currency", "Convert",
		    boutique_object2("from", boutique_money_to_json(from), "to_code",
		                     json_object_new_string(o->currency)));
	}
	pd_call_wait_all(calls, n + 1);
	int rc = 0;
	for (size_t i = 0; i <= n && rc == 0; i++) {
		struct json_object *answer;
		char why[256];
		int status = boutique_call_result(calls[i], &answer, why, sizeof(why));
		if (status == 400) {
			/* The only thing of ours currency refuses is the user's currency. */
			boutique_error(o->res, 400, "currency: %s", why);
			rc = -1;
		} else if (status != 200) {
			callee_failed(o, "currency", status, why);
			rc = -1;
		} else if (boutique_money_from_json(answer, i < n ? &o->lines[i].cost
		                                                  : &o->shipping) != 0) {
			callee_failed(o, "currency", 200, "no valid amount in the answer");
			rc = -1;
		}
		json_object_put(answer);
	}
	release_all(calls, n + 1);
	return rc;
}

static int total(struct order *o, struct boutique_money *sum)
{
	*sum = o->shipping;
	for (size_t i = 0; i < o->nlines; i++) {
		struct boutique_money line;
		if (boutique_money_mul(&o->lines[i].cost, o->lines[i].quantity, &line) != 0 ||
		    boutique_money_add(sum, &line, sum) != 0) {
			boutique_error(o->res, 400, "the order's total is out of range");
			return -1;
		}
	}
	return 0;
}

static int charge(struct order *o, const struct boutique_money *amount)
{
	struct json_object *answer;
	char why[256];
	int status = boutique_call(
	    o->req, "payment", "Charge",
	    boutique_object2("amount", boutique_money_to_json(amount), "credit_card",
	                     boutique_ref(json_object_object_get(o->in, "credit_card"))),
	    &answer, why, sizeof(why));
	json_object_put(answer);
	if (status == 400) {
		boutique_error(o->res, 400, "payment refused: %s", why);
		return -1;
	}
	if (status != 200) {
		callee_failed(o, "payment", status, why);
		return -1;
	}
	return 0;
}

/* The tracking id into id[size]. */
static int ship(struct order *o, char *id, size_t size)
{
	struct json_object *answer;
	char why[256];
	int status = boutique_call(
	    o->req, "shipping", "ShipOrder",
	    boutique_object2("address", boutique_ref(json_object_object_get(o->in, "address")),
	                     "items", cart_items(o)),
	    &answer, why, sizeof(why));
	const char *tracking = boutique_string(answer, "tracking_id");
	if (status != 200 || tracking == NULL) {
		json_object_put(answer);
		callee_failed(o, "shipping", status, status == 200 ? "no tracking_id" : why);
		return -1;
	}
	snprintf(id, size, "%s", tracking);
	json_object_put(answer);
	return 0;
}

static struct json_object *order_result(const struct order *o, const char *order_id,
                                        const char *tracking)
{
	struct json_object *items = json_object_new_array();
	for (size_t i = 0; i < o->nlines; i++)
		append(items, boutique_object2("item", cart_item(o, i), "cost",
		                               boutique_money_to_json(&o->lines[i].cost)));
	struct json_object *result = json_object_new_object();
	bool ok = boutique_add(result, "order_id", json_object_new_string(order_id));
	ok &= boutique_add(result, "shipping_tracking_id", json_object_new_string(tracking));
	ok &= boutique_add(result, "shipping_cost", boutique_money_to_json(&o->shipping));
	ok &= boutique_add(result, "shipping_address",
	                   boutique_ref(json_object_object_get(o->in, "address")));
	ok &= boutique_add(result, "items", items);
	if (!ok) {
		json_object_put(result);
		return NULL;
	}
	return result;
}

/* After the charge nothing may fail the order: the answers of these two are only
 * logged. */
static void finish_quietly(struct order *o, const struct json_object *result)
{
	struct json_object *answer;
	char why[256];
	int status = boutique_call(
	    o->req, "cart", "EmptyCart",
	    boutique_object1("user_id", boutique_new_string(boutique_string(o->in, "user_id"))),
	    &answer, why, sizeof(why));
	json_object_put(answer);
	if (status != 200)
		fprintf(stderr, "checkout: emptying the cart failed (%d: %s)\n", status, why);
	status = boutique_call(
	    o->req, "email", "SendOrderConfirmation",
	    boutique_object2("email", boutique_new_string(boutique_string(o->in, "email")), "order",
	                     boutique_ref(result)),
	    &answer, why, sizeof(why));
	json_object_put(answer);
	if (status != 200)
		fprintf(stderr, "checkout: the confirmation e-mail failed (%d: %s)\n", status, why);
}

static int place_order(const pd_request *req, pd_response *res, const struct json_object *in)
{
	const char *user = boutique_string(in, "user_id");
	const char *currency = boutique_string(in, "user_currency");
	const char *email = boutique_string(in, "email");
	if (user == NULL || user[0] == '\0' || !boutique_currency_code_valid(currency) ||
	    email == NULL || !boutique_is_object(json_object_object_get(in, "address")) ||
	    !boutique_is_object(json_object_object_get(in, "credit_card")))
		return boutique_error(res, 400,
		                      "expected {\"user_id\": string, \"user_currency\": code, "
		                      "\"address\": object, \"email\": string, \"credit_card\": "
		                      "object}");
	struct order o = {.req = req, .res = res, .in = in, .currency = currency};
	struct boutique_money amount;
	char tracking[128], order_id[37];
	struct json_object *result;
	int rc = 0; /* each step that fails has written the answer */
	if (get_cart(&o) != 0 || prices_and_quote(&o) != 0 || convert_all(&o) != 0 ||
	    total(&o, &amount) != 0 || charge(&o, &amount) != 0 ||
	    ship(&o, tracking, sizeof(tracking)) != 0)
		goto out;
	boutique_uuid(order_id);
	result = order_result(&o, order_id, tracking);
	if (result == NULL) {
		rc = pd_response_error(res, 500, "out of memory\n");
		goto out;
	}
	finish_quietly(&o, result);
	rc = boutique_answer(res, 200, boutique_object1("order", result));
out:
	json_object_put(o.cart);
	return rc;
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
	if (strcmp(method, "PlaceOrder") == 0)
		rc = place_order(req, res, in);
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
