/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ad: /GetAds {"context_keys": [category...]} answers the ads of those categories, or one
 * ad at random when none matches (docs/boutique.md).
 */
#include <stdio.h>
#include <string.h>

#include "common.h"

struct ad {
	const char *category;
	const char *product_id;
	const char *text;
};

/* Our own ads, for the categories of data/products.json. */
static const struct ad ads[] = {
    {"accessories", "OLJCESPC7Z", "Aviator Shades: the sun is out, the price is down."},
    {"accessories", "1YMWWN1N4O", "Field Wristwatch: wind it once a day, keep it for life."},
    {"beauty", "2ZYFJ3GM2N", "Travel Blow Dryer: folds small, dries fast."},
    {"clothing", "66VCHSJNUP", "Linen Sleeveless Shirt: cool linen for hot days."},
    {"decor", "0PUK6V6EV0", "Brass Candlestick: warm light for long dinners."},
    {"footwear", "L9ECAV7KIM", "Suede Slip-Ons: no laces, no fuss."},
    {"hair", "2ZYFJ3GM2N", "Travel Blow Dryer: two heats, one small bag."},
    {"home", "0PUK6V6EV0", "Brass Candlestick: it only gets better with age."},
    {"kitchen", "6E92ZMYYFZ", "Enamel Camp Mug: from the camp stove to your desk."},
    {"kitchen", "LS4PSXUNUM", "Oak Spice Grinders: salt and pepper, freshly ground."},
    {"kitchen", "9SIQT8TOJO", "Stoneware Storage Crock: keeps the coffee beans dry."},
    {"tops", "66VCHSJNUP", "Linen Sleeveless Shirt: breathe easy all summer."},
};
#define NADS (sizeof(ads) / sizeof(ads[0]))

static int append_ad(struct json_object *list, const struct ad *a)
{
	char url[64];
	snprintf(url, sizeof(url), "/product/%s", a->product_id);
	struct json_object *ad = json_object_new_object();
	bool ok = boutique_add(ad, "redirect_url", json_object_new_string(url));
	ok &= boutique_add(ad, "text", json_object_new_string(a->text));
	if (!ok || json_object_array_add(list, ad) != 0) {
		json_object_put(ad);
		return -1;
	}
	return 0;
}

static int get_ads(pd_response *res, const struct json_object *in)
{
	const struct json_object *keys = json_object_object_get(in, "context_keys");
	if (boutique_has(in, "context_keys") && !boutique_is_array(keys))
		return boutique_error(res, 400, "expected \"context_keys\": [string...]");
	size_t i;
	const struct json_object *k;
	boutique_array_foreach(keys, i, k)
	{
		if (!boutique_is_string(k))
			return boutique_error(res, 400, "expected \"context_keys\": [string...]");
	}
	struct json_object *list = json_object_new_array();
	/* In the table's order, each ad once even when several of its keys are given. */
	for (size_t a = 0; a < NADS; a++) {
		boutique_array_foreach(keys, i, k)
		{
			if (strcmp(json_object_get_string((struct json_object *)k),
			           ads[a].category) == 0) {
				append_ad(list, &ads[a]);
				break;
			}
		}
	}
	if (boutique_array_size(list) == 0)
		append_ad(list, &ads[boutique_random_below(NADS)]);
	return boutique_answer(res, 200, boutique_object1("ads", list));
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
	if (strcmp(method, "GetAds") == 0)
		rc = get_ads(res, in);
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
