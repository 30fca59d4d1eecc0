/* SPDX-License-Identifier: Apache-2.0 */
/* A round of bench/json/compare.c with jansson. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rounds.h"

void round_jansson(const char *text, size_t len)
{
	json_error_t err;
	json_t *root = json_loadb(text, len, 0, &err);
	if (root == NULL)
		abort();
	json_t *products = json_object_get(root, "products");
	size_t i;
	json_t *p;
	json_array_foreach(products, i, p)
	{
		const char *id = json_string_value(json_object_get(p, "id"));
		const char *name = json_string_value(json_object_get(p, "name"));
		json_t *price = json_object_get(p, "price_usd");
		sink += strlen(id) + strlen(name) +
		        (size_t)json_integer_value(json_object_get(price, "units"));
	}
	json_t *cart = json_object();
	json_t *items = json_array();
	for (int k = 0; k < 5; k++)
		json_array_append_new(
		    items, json_pack("{s:s, s:i}", "product_id", "OLJCESPC7Z", "quantity", k + 1));
	json_object_set_new(cart, "user_id", json_string("3c9d4e0a-session"));
	json_object_set_new(cart, "items", items);
	char *a = json_dumps(cart, JSON_COMPACT);
	char *b = json_dumps(root, JSON_COMPACT);
	sink += strlen(a) + strlen(b);
	free(a);
	free(b);
	json_decref(cart);
	json_decref(root);
}
