/* SPDX-License-Identifier: Apache-2.0 */
/* Online Boutique's money: units + nanos arithmetic, JSON in and out, conversions. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "unit.h"

static struct boutique_money m(const char *code, int64_t units, int32_t nanos)
{
	struct boutique_money v = {.units = units, .nanos = nanos};
	memcpy(v.currency_code, code, 4);
	return v;
}

static int same(const struct boutique_money *a, const char *code, int64_t units, int32_t nanos)
{
	return strcmp(a->currency_code, code) == 0 && a->units == units && a->nanos == nanos;
}

static void test_add_carries(void)
{
	struct boutique_money a = m("EUR", 1, 500000000), b = m("EUR", 2, 700000000), r;
	CHECK(boutique_money_add(&a, &b, &r) == 0 && same(&r, "EUR", 4, 200000000));
	a = m("EUR", 0, 999999999), b = m("EUR", 0, 1);
	CHECK(boutique_money_add(&a, &b, &r) == 0 && same(&r, "EUR", 1, 0));
	a = m("EUR", -1, -750000000), b = m("EUR", 0, 500000000);
	CHECK(boutique_money_add(&a, &b, &r) == 0 && same(&r, "EUR", -1, -250000000));
	/* Across zero, both ways: units and nanos keep one sign. */
	a = m("USD", -1, -250000000), b = m("USD", 2, 500000000);
	CHECK(boutique_money_add(&a, &b, &r) == 0 && same(&r, "USD", 1, 250000000));
	a = m("USD", 1, 250000000), b = m("USD", -2, -500000000);
	CHECK(boutique_money_add(&a, &b, &r) == 0 && same(&r, "USD", -1, -250000000));
	a = m("USD", 0, 300000000), b = m("USD", 0, -800000000);
	CHECK(boutique_money_add(&a, &b, &r) == 0 && same(&r, "USD", 0, -500000000));
	/* The result may be one of the operands. */
	a = m("USD", 3, 600000000);
	CHECK(boutique_money_add(&a, &a, &a) == 0 && same(&a, "USD", 7, 200000000));
}

static void test_add_refuses(void)
{
	struct boutique_money a = m("EUR", 1, 0), b = m("USD", 1, 0), r;
	CHECK(boutique_money_add(&a, &b, &r) == -EINVAL);
	a = m("EUR", BOUTIQUE_MAX_UNITS, 999999999), b = m("EUR", 0, 1);
	CHECK(boutique_money_add(&a, &b, &r) == -ERANGE);
	a = m("EUR", -BOUTIQUE_MAX_UNITS, 0), b = m("EUR", -1, 0);
	CHECK(boutique_money_add(&a, &b, &r) == -ERANGE);
}

static void test_mul(void)
{
	struct boutique_money a = m("USD", 19, 990000000), r;
	CHECK(boutique_money_mul(&a, 3, &r) == 0 && same(&r, "USD", 59, 970000000));
	a = m("USD", 0, -500000000);
	CHECK(boutique_money_mul(&a, 3, &r) == 0 && same(&r, "USD", -1, -500000000));
	CHECK(boutique_money_mul(&a, 0, &r) == 0 && same(&r, "USD", 0, 0));
	a = m("USD", BOUTIQUE_MAX_UNITS / 2, 0);
	CHECK(boutique_money_mul(&a, 3, &r) == -ERANGE);
	CHECK(boutique_money_mul(&a, BOUTIQUE_MAX_UNITS + 1, &r) == -ERANGE);
}

static void test_from_json(void)
{
	struct boutique_money r;
	const char *why;
	const char *text = "{\"currency_code\":\"EUR\",\"units\":12,\"nanos\":990000000}";
	struct json_object *j = boutique_parse(text, strlen(text), &why);
	CHECK(boutique_money_from_json(j, &r) == 0 && same(&r, "EUR", 12, 990000000));
	struct json_object *back = boutique_money_to_json(&r);
	CHECK(json_object_equal(j, back));
	/* Compact and in the same member order, as the services answered with jansson. */
	char *back_text = boutique_dumps(back);
	CHECK(back_text != NULL && strcmp(back_text, text) == 0);
	free(back_text);
	json_object_put(back);
	json_object_put(j);

	/* nanos left out reads as 0, as proto3 leaves out zeros. */
	text = "{\"currency_code\":\"JPY\",\"units\":1500}";
	j = boutique_parse(text, strlen(text), &why);
	CHECK(boutique_money_from_json(j, &r) == 0 && same(&r, "JPY", 1500, 0));
	json_object_put(j);

	/* A null nanos is there, of the wrong type: json-c's NULL must not read as absent. */
	text = "{\"currency_code\":\"JPY\",\"units\":1500,\"nanos\":null}";
	j = boutique_parse(text, strlen(text), &why);
	CHECK(boutique_money_from_json(j, &r) == -EINVAL);
	json_object_put(j);

	const char *bad[] = {
	    "{\"currency_code\":\"EUR\",\"units\":1,\"nanos\":-1}",
	    "{\"currency_code\":\"EUR\",\"units\":-1,\"nanos\":1}",
	    "{\"currency_code\":\"EUR\",\"units\":0,\"nanos\":1000000000}",
	    "{\"currency_code\":\"EUR\",\"units\":0,\"nanos\":-1000000000}",
	    "{\"currency_code\":\"EUR\",\"units\":\"1\",\"nanos\":0}",
	    "{\"currency_code\":\"EUR\",\"units\":1.5,\"nanos\":0}",
	    "{\"currency_code\":\"EUR\",\"nanos\":0}",
	    "{\"currency_code\":\"eur\",\"units\":1}",
	    "{\"currency_code\":\"EURO\",\"units\":1}",
	    "{\"currency_code\":7,\"units\":1}",
	    "{\"units\":1}",
	    "[1,2]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = boutique_parse(bad[i], strlen(bad[i]), &why);
		CHECK(j != NULL);
		if (boutique_money_from_json(j, &r) != -EINVAL)
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		CHECK(boutique_money_from_json(j, &r) == -EINVAL);
		json_object_put(j);
	}
	CHECK(boutique_money_from_json(NULL, &r) == -EINVAL);
	text = "{\"currency_code\":\"EUR\",\"units\":10000000000000}";
	j = boutique_parse(text, strlen(text), &why);
	CHECK(boutique_money_from_json(j, &r) == -ERANGE);
	json_object_put(j);

	r = m("EUR", -1, -750000000);
	j = boutique_money_to_json(&r);
	CHECK(json_object_get_int64(json_object_object_get(j, "units")) == -1);
	CHECK(json_object_get_int64(json_object_object_get(j, "nanos")) == -750000000);
	json_object_put(j);
}

static void test_rates(void)
{
	int64_t rate;
	struct json_object *j = json_object_new_double(1.0842);
	CHECK(boutique_rate_from_json(j, &rate) == 0 && rate == 1084200000);
	json_object_put(j);
	j = json_object_new_double(161.37);
	CHECK(boutique_rate_from_json(j, &rate) == 0 && rate == INT64_C(161370000000));
	json_object_put(j);
	j = json_object_new_int(1);
	CHECK(boutique_rate_from_json(j, &rate) == 0 && rate == 1000000000);
	json_object_put(j);
	/* NULL is json-c's JSON null. */
	struct json_object *bad[] = {json_object_new_int(0), json_object_new_double(-1.5),
	                             json_object_new_double(2e6), json_object_new_string("1.1"),
	                             NULL};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(boutique_rate_from_json(bad[i], &rate) == -EINVAL);
		json_object_put(bad[i]);
	}
}

static void test_convert(void)
{
	const int64_t eur = 1000000000, usd = 1084200000, jpy = INT64_C(161370000000),
	              gbp = 856100000;
	struct boutique_money a = m("EUR", 10, 0), r;
	CHECK(boutique_money_convert(&a, eur, "USD", usd, &r) == 0 &&
	      same(&r, "USD", 10, 842000000));
	/* 1 / 1.0842 = 0.92233905183...: rounded to the nano. */
	a = m("USD", 1, 0);
	CHECK(boutique_money_convert(&a, usd, "EUR", eur, &r) == 0 &&
	      same(&r, "EUR", 0, 922339052));
	/* Between two currencies, through the base: 9.95 * 161.37 / 1.0842. */
	a = m("USD", 9, 950000000);
	CHECK(boutique_money_convert(&a, usd, "JPY", jpy, &r) == 0 &&
	      same(&r, "JPY", 1480, 936635307));
	a = m("USD", -9, -950000000);
	CHECK(boutique_money_convert(&a, usd, "JPY", jpy, &r) == 0 &&
	      same(&r, "JPY", -1480, -936635307));
	a = m("USD", 19, 990000000);
	CHECK(boutique_money_convert(&a, usd, "GBP", gbp, &r) == 0 &&
	      same(&r, "GBP", 15, 784393101));
	/* Halves round away from zero. */
	a = m("AAA", 0, 1);
	CHECK(boutique_money_convert(&a, 2, "BBB", 1, &r) == 0 && same(&r, "BBB", 0, 1));
	a = m("AAA", 0, -1);
	CHECK(boutique_money_convert(&a, 2, "BBB", 1, &r) == 0 && same(&r, "BBB", 0, -1));
	a = m("AAA", 0, 3);
	CHECK(boutique_money_convert(&a, 4, "BBB", 1, &r) == 0 && same(&r, "BBB", 0, 1));
	/* The same currency: unchanged. */
	a = m("USD", 123, 456789012);
	CHECK(boutique_money_convert(&a, usd, "USD", usd, &r) == 0 &&
	      same(&r, "USD", 123, 456789012));
	/* Refusals: rates, codes, a result too large. */
	CHECK(boutique_money_convert(&a, 0, "EUR", eur, &r) == -EINVAL);
	CHECK(boutique_money_convert(&a, usd, "EUR", -1, &r) == -EINVAL);
	CHECK(boutique_money_convert(&a, usd, "eur", eur, &r) == -EINVAL);
	a = m("USD", BOUTIQUE_MAX_UNITS, 0);
	CHECK(boutique_money_convert(&a, usd, "JPY", jpy, &r) == -ERANGE);
	a = m("USD", BOUTIQUE_MAX_UNITS, 999999999);
	CHECK(boutique_money_convert(&a, 1, "XXX", INT64_C(1000000) * 1000000000, &r) == -ERANGE);
}

int main(void)
{
	RUN(test_add_carries);
	RUN(test_add_refuses);
	RUN(test_mul);
	RUN(test_from_json);
	RUN(test_rates);
	RUN(test_convert);
	return SUMMARY("boutique_money");
}
