/* SPDX-License-Identifier: Apache-2.0 */
/*
 * productcatalog: the catalog of apps/boutique/data/products.json (--data DIR), read once
 * at start: /ListProducts, /GetProduct {"id"}, /SearchProducts {"query"}
 * (docs/boutique.md).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* The catalog never changes once loaded: the handler threads only read it, and every
 * answer is built from the products' JSON text, serialized once at start (jansson's
 * values are not meant to be shared between threads). */
struct product {
	char *id;
	char *name_lower;
	char *description_lower;
	char *json; /* the Product object, compact */
	size_t json_len;
};

static struct product *products;
static size_t nproducts;
static char *list_answer; /* {"products":[...]} */
static size_t list_answer_len;

static char *lower_dup(const char *s)
{
	char *d = strdup(s);
	for (char *p = d; p != NULL && *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

/* A product is accepted only with every field of the contract, of the right type. */
static int product_valid(const struct json_object *p)
{
	struct boutique_money price;
	const struct json_object *categories = json_object_object_get(p, "categories");
	if (boutique_string(p, "id") == NULL || boutique_string(p, "name") == NULL ||
	    boutique_string(p, "description") == NULL || boutique_string(p, "picture") == NULL ||
	    boutique_money_from_json(json_object_object_get(p, "price_usd"), &price) != 0 ||
	    strcmp(price.currency_code, "USD") != 0 || !boutique_is_array(categories))
		return -1;
	size_t i;
	const struct json_object *c;
	boutique_array_foreach(categories, i, c)
	{
		if (!boutique_is_string(c))
			return -1;
	}
	return 0;
}

static int load_catalog(const char *dir)
{
	struct json_object *root = boutique_load_json(dir, "products.json");
	if (root == NULL)
		return -1;
	const struct json_object *list = json_object_object_get(root, "products");
	if (!boutique_is_array(list) || boutique_array_size(list) == 0) {
		fprintf(stderr,
		        "productcatalog: %s/products.json: expected {\"products\": [...]}\n", dir);
		json_object_put(root);
		return -1;
	}
	nproducts = boutique_array_size(list);
	products = calloc(nproducts, sizeof(*products));
	size_t i;
	struct json_object *p;
	boutique_array_foreach(list, i, p)
	{
		if (product_valid(p) != 0) {
			fprintf(stderr,
			        "productcatalog: %s/products.json: product %zu lacks a field "
			        "or has one of the wrong type\n",
			        dir, i + 1);
			json_object_put(root);
			return -1;
		}
		products[i].id = strdup(boutique_string(p, "id"));
		products[i].name_lower = lower_dup(boutique_string(p, "name"));
		products[i].description_lower = lower_dup(boutique_string(p, "description"));
		products[i].json = boutique_dumps(p);
		if (products[i].json == NULL) {
			json_object_put(root);
			return -1;
		}
		products[i].json_len = strlen(products[i].json);
	}
	struct json_object *answer = boutique_object1("products", boutique_ref(list));
	list_answer = boutique_dumps(answer);
	json_object_put(answer);
	json_object_put(root);
	if (list_answer == NULL)
		return -1;
	list_answer_len = strlen(list_answer);
	return 0;
}

static int answer_text(pd_response *res, const char *text, size_t len)
{
	pd_response_set_header(res, "content-type", "application/json");
	if (pd_response_append(res, text, len) != 0 || pd_response_append(res, "\n", 1) != 0)
		return pd_response_error(res, 500, "the answer does not fit in a buffer\n");
	return 0;
}

static int get_product(pd_response *res, const struct json_object *in)
{
	const char *id = boutique_string(in, "id");
	if (id == NULL)
		return boutique_error(res, 400, "expected {\"id\": string}");
	for (size_t i = 0; i < nproducts; i++)
		if (strcmp(products[i].id, id) == 0)
			return answer_text(res, products[i].json, products[i].json_len);
	return boutique_error(res, 404, "no product with id '%s'", id);
}

static int search_products(pd_response *res, const struct json_object *in)
{
	const char *query = boutique_string(in, "query");
	if (query == NULL)
		return boutique_error(res, 400, "expected {\"query\": string}");
	char *q = lower_dup(query);
	if (q == NULL)
		return pd_response_error(res, 500, "out of memory\n");
	pd_response_set_header(res, "content-type", "application/json");
	int rc = pd_response_append(res, "{\"results\":[", 12);
	bool first = true;
	for (size_t i = 0; i < nproducts && rc == 0; i++) {
		if (strstr(products[i].name_lower, q) == NULL &&
		    strstr(products[i].description_lower, q) == NULL)
			continue;
		if (!first)
			rc = pd_response_append(res, ",", 1);
		first = false;
		if (rc == 0)
			rc = pd_response_append(res, products[i].json, products[i].json_len);
	}
	free(q);
	if (rc == 0)
		rc = pd_response_append(res, "]}\n", 3);
	if (rc != 0)
		return pd_response_error(res, 500, "the answer does not fit in a buffer\n");
	return 0;
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
	if (strcmp(method, "ListProducts") == 0)
		rc = answer_text(res, list_answer, list_answer_len);
	else if (strcmp(method, "GetProduct") == 0)
		rc = get_product(res, in);
	else if (strcmp(method, "SearchProducts") == 0)
		rc = search_products(res, in);
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
	if (load_catalog(args.data_dir) != 0)
		return 1;
	return pd_serve(argc, argv, handle, NULL);
}
