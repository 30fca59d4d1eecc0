/* SPDX-License-Identifier: Apache-2.0 */
/*
 * currency: the rates of apps/boutique/data/currencies.json (--data DIR), read once at
 * start: /GetSupportedCurrencies, /Convert {"from": Money, "to_code"} (docs/boutique.md).
 * Conversions go through the base currency in exact fixed-point arithmetic.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define MAX_CURRENCIES 256

struct currency {
	char code[4];
	int64_t rate; /* nanos of this currency per unit of the base */
};

/* Read-only once loaded: the handler threads share it without locks. */
static struct currency currencies[MAX_CURRENCIES];
static size_t ncurrencies;
static char *codes_answer; /* {"currency_codes":[...]} in the file's order */

static int load_table(const char *dir)
{
	struct json_object *root = boutique_load_json(dir, "currencies.json");
	if (root == NULL)
		return -1;
	const struct json_object *rates = json_object_object_get(root, "rates");
	struct json_object *codes = json_object_new_array();
	int rc = -1;
	if (!boutique_is_object(rates) || json_object_object_length(rates) == 0 ||
	    json_object_object_length(rates) > MAX_CURRENCIES) {
		fprintf(stderr,
		        "currency: %s/currencies.json: expected {\"rates\": {\"EUR\": 1, "
		        "...}} with 1..%d currencies\n",
		        dir, MAX_CURRENCIES);
		goto out;
	}
	/* json-c, as jansson did, keeps an object's members in the order of the file. */
	json_object_object_foreach((struct json_object *)rates, code, rate)
	{
		struct currency *c = &currencies[ncurrencies];
		if (!boutique_currency_code_valid(code) ||
		    boutique_rate_from_json(rate, &c->rate) != 0) {
			fprintf(stderr, "currency: %s/currencies.json: bad currency '%s' or rate\n",
			        dir, code);
			goto out;
		}
		memcpy(c->code, code, 4);
		ncurrencies++;
		struct json_object *s = json_object_new_string(code);
		if (codes == NULL || json_object_array_add(codes, s) != 0) {
			json_object_put(s);
			goto out;
		}
	}
	struct json_object *answer = boutique_object1("currency_codes", boutique_ref(codes));
	codes_answer = boutique_dumps(answer);
	json_object_put(answer);
	rc = codes_answer != NULL ? 0 : -1;
out:
	json_object_put(codes);
	json_object_put(root);
	return rc;
}

static const struct currency *find(const char *code)
{
	for (size_t i = 0; code != NULL && i < ncurrencies; i++)
		if (strcmp(currencies[i].code, code) == 0)
			return &currencies[i];
	return NULL;
}

static int convert(pd_response *res, const struct json_object *in)
{
	struct boutique_money from, to;
	int rc = boutique_money_from_json(json_object_object_get(in, "from"), &from);
	if (rc == -ERANGE)
		return boutique_error(res, 400, "amount out of range");
	const char *to_code = boutique_string(in, "to_code");
	if (rc != 0 || to_code == NULL)
		return boutique_error(
		    res, 400,
		    "expected {\"from\": {\"currency_code\", \"units\", \"nanos\"}, "
		    "\"to_code\": string}");
	const struct currency *src = find(from.currency_code);
	if (src == NULL)
		return boutique_error(res, 400, "unknown currency '%s'", from.currency_code);
	const struct currency *dst = find(to_code);
	if (dst == NULL)
		return boutique_error(res, 400, "unknown currency '%s'", to_code);
	if (boutique_money_convert(&from, src->rate, dst->code, dst->rate, &to) != 0)
		return boutique_error(res, 400, "amount out of range");
	return boutique_answer(res, 200, boutique_money_to_json(&to));
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
	if (strcmp(method, "GetSupportedCurrencies") == 0) {
		pd_response_set_header(res, "content-type", "application/json");
		rc = pd_response_append(res, codes_answer, strlen(codes_answer));
		if (rc == 0)
			rc = pd_response_append(res, "\n", 1);
		if (rc != 0)
			rc = pd_response_error(res, 500, "the answer does not fit in a buffer\n");
	} else if (strcmp(method, "Convert") == 0) {
		rc = convert(res, in);
	} else {
		rc = boutique_unknown_method(res, method);
	}
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
	if (load_table(args.data_dir) != 0)
		return 1;
	return pd_serve(argc, argv, handle, NULL);
}
