/* SPDX-License-Identifier: Apache-2.0 */
/* A round of bench/json/compare.c with json-c. */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "rounds.h"

void round_jsonc(const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *root = json_tokener_parse_ex(tok, text, (int)len);
	json_tokener_free(tok);
	if (root == NULL)
		abort();
	struct json_object *products, *v;
	if (!json_object_object_get_ex(root, "products", &products))
		abort();
	size_t n = json_object_array_length(products);
	for (size_t i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(products, i), *price, *units;
		json_object_object_get_ex(p, "id", &v);
		sink += strlen(json_object_get_string(v));
		json_object_object_get_ex(p, "name", &v);
		sink += strlen(json_object_get_string(v));
		json_object_object_get_ex(p, "price_usd", &price);
		json_object_object_get_ex(price, "units", &units);
		sink += (size_t)json_object_get_int64(units);
	}
	struct json_object *cart = json_object_new_object();
	struct json_object *items = json_object_new_array();
	for (int k = 0; k < 5; k++) {
		struct json_object *it = json_object_new_object();
		json_object_object_add(it, "product_id", json_object_new_string("OLJCESPC7Z"));
		json_object_object_add(it, "quantity", json_object_new_int(k + 1));
		json_object_array_add(items, it);
	}
	json_object_object_add(cart, "user_id", json_object_new_string("3c9d4e0a-session"));
	json_object_object_add(cart, "items", items);
	sink += strlen(json_object_to_json_string_ext(cart, JSON_C_TO_STRING_PLAIN));
	sink += strlen(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(cart);
	json_object_put(root);
}
