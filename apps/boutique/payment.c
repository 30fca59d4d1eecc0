/* SPDX-License-Identifier: Apache-2.0 */
/*
 * payment: /Charge {"amount": Money, "credit_card": CreditCardInfo} accepts a valid VISA
 * or MasterCard number (Luhn) that has not expired, and answers a transaction id
 * (docs/boutique.md). Nothing is charged.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "card.h"
#include "common.h"

static int charge(pd_response *res, const struct json_object *in)
{
	struct boutique_money amount;
	if (boutique_money_from_json(json_object_object_get(in, "amount"), &amount) != 0)
		return boutique_error(
		    res, 400, "expected \"amount\": {\"currency_code\", \"units\", \"nanos\"}");
	if (amount.units < 0 || amount.nanos < 0)
		return boutique_error(res, 400, "a charge cannot be negative");
	const struct json_object *card = json_object_object_get(in, "credit_card");
	const char *number = boutique_string(card, "credit_card_number");
	int64_t year, month, cvv;
	if (number == NULL || boutique_int(card, "credit_card_expiration_year", &year) != 0 ||
	    boutique_int(card, "credit_card_expiration_month", &month) != 0 ||
	    boutique_int(card, "credit_card_cvv", &cvv) != 0)
		return boutique_error(res, 400,
		                      "expected \"credit_card\": {\"credit_card_number\": string, "
		                      "\"credit_card_cvv\", \"credit_card_expiration_year\", "
		                      "\"credit_card_expiration_month\": integers}");
	if (cvv < 0 || cvv > 9999)
		return boutique_error(res, 400, "invalid card verification code");
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	enum boutique_card_network network;
	char why[128];
	if (boutique_card_check(number, year, month, tm.tm_year + 1900, tm.tm_mon + 1, &network,
	                        why, sizeof(why)) != NULL)
		return boutique_error(res, 400, "%s", why);
	char id[37];
	boutique_uuid(id);
	return boutique_answer(res, 200,
	                       boutique_object1("transaction_id", json_object_new_string(id)));
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
	if (strcmp(method, "Charge") == 0)
		rc = charge(res, in);
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
