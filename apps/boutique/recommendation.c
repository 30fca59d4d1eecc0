/* SPDX-License-Identifier: Apache-2.0 */
/*
 * recommendation: /ListRecommendations {"user_id", "product_ids"} answers up to five
 * catalog ids that are not among product_ids, in random order, from productcatalog's
 * /ListProducts (docs/boutique.md).
 */
#include <stdio.h>
#include <string.h>

#include "common.h"

#define MAX_RECOMMENDATIONS 5
#define MAX_CATALOG 1024

static bool requested(const struct json_object *ids, const char *id)
{
	size_t i;
	const struct json_object *v;
	boutique_array_foreach(ids, i, v)
	{
		const char *s =
		    boutique_is_string(v) ? json_object_get_string((struct json_object *)v) : NULL;
		if (s != NULL && strcmp(s, id) == 0)
			return true;
	}
	return false;
}

static int list_recommendations(const pd_request *req, pd_response *res,
                                const struct json_object *in)
{
	const struct json_object *ids = json_object_object_get(in, "product_ids");
	/* Left out, it reads as no ids: every loop over NULL is empty. */
	if (boutique_has(in, "product_ids") && !boutique_is_array(ids))
		return boutique_error(res, 400, "expected \"product_ids\": [string...]");
	size_t i;
	const struct json_object *v;
	boutique_array_foreach(ids, i, v)
	{
		if (!boutique_is_string(v))
			return boutique_error(res, 400, "expected \"product_ids\": [string...]");
	}
	struct json_object *catalog;
	char why[256];
	int status = boutique_call(req, "productcatalog", "ListProducts", json_object_new_object(),
	                           &catalog, why, sizeof(why));
	if (status != 200)
		return boutique_error(res, 502, "productcatalog failed with status %d: %s", status,
		                      why);
	const struct json_object *products = json_object_object_get(catalog, "products");
	const char *candidates[MAX_CATALOG];
	size_t n = 0;
	const struct json_object *p;
	boutique_array_foreach(products, i, p)
	{
		const char *id = boutique_string(p, "id");
		if (id != NULL && n < MAX_CATALOG && !requested(ids, id))
			candidates[n++] = id;
	}
	/* The first picks of a Fisher-Yates shuffle: a random sample without repeats. */
	struct json_object *out = json_object_new_array();
	for (size_t k = 0; k < n && k < MAX_RECOMMENDATIONS; k++) {
		size_t j = k + (size_t)boutique_random_below(n - k);
		const char *t = candidates[k];
		candidates[k] = candidates[j];
		candidates[j] = t;
		struct json_object *s = json_object_new_string(candidates[k]);
		if (out == NULL || json_object_array_add(out, s) != 0)
			json_object_put(s);
	}
	json_object_put(catalog);
	return boutique_answer(res, 200, boutique_object1("product_ids", out));
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
	if (strcmp(method, "ListRecommendations") == 0)
		rc = list_recommendations(req, res, in);
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
