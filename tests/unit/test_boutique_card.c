/* SPDX-License-Identifier: Apache-2.0 */
/* Online Boutique's card checks: digits, Luhn, network by prefix and length, expiry. */
#include <string.h>

#include "card.h"
#include "unit.h"

static void test_digits(void)
{
	char d[20];
	CHECK(boutique_card_digits("4242 4242-4242 4242", d) == 0 &&
	      strcmp(d, "4242424242424242") == 0);
	CHECK(boutique_card_digits("4242424242424242424", d) == 0);   /* 19 */
	CHECK(boutique_card_digits("42424242424242424242", d) == -1); /* 20 */
	CHECK(boutique_card_digits("42424242424", d) == -1);          /* 11 */
	CHECK(boutique_card_digits("4242x42424242424", d) == -1);
	CHECK(boutique_card_digits("", d) == -1);
	CHECK(boutique_card_digits("4242424242424242\n", d) == -1);
}

static void test_luhn(void)
{
	CHECK(boutique_card_luhn("4242424242424242"));
	CHECK(!boutique_card_luhn("4242424242424241"));
	CHECK(boutique_card_luhn("79927398713"));
	CHECK(!boutique_card_luhn("79927398710"));
	CHECK(boutique_card_luhn("5555555555554444"));
	CHECK(boutique_card_luhn("4222222222222"));
	CHECK(!boutique_card_luhn(""));
}

static void test_network(void)
{
	CHECK(boutique_card_network("4111111111111111") == BOUTIQUE_CARD_VISA);
	CHECK(boutique_card_network("4222222222222") == BOUTIQUE_CARD_VISA);
	CHECK(boutique_card_network("41111111111111") == BOUTIQUE_CARD_UNKNOWN); /* 14 */
	CHECK(boutique_card_network("5555555555554444") == BOUTIQUE_CARD_MASTERCARD);
	CHECK(boutique_card_network("5105105105105100") == BOUTIQUE_CARD_MASTERCARD);
	CHECK(boutique_card_network("2223003122003222") == BOUTIQUE_CARD_MASTERCARD);
	CHECK(boutique_card_network("2720991111111111") == BOUTIQUE_CARD_MASTERCARD);
	CHECK(boutique_card_network("2721001111111111") == BOUTIQUE_CARD_UNKNOWN);
	CHECK(boutique_card_network("2220991111111111") == BOUTIQUE_CARD_UNKNOWN);
	CHECK(boutique_card_network("5655555555554444") == BOUTIQUE_CARD_UNKNOWN);
	CHECK(boutique_card_network("378282246310005") == BOUTIQUE_CARD_UNKNOWN);  /* Amex */
	CHECK(boutique_card_network("6011111111111117") == BOUTIQUE_CARD_UNKNOWN); /* Discover */
}

static void test_check(void)
{
	enum boutique_card_network net = BOUTIQUE_CARD_UNKNOWN;
	char why[128];
	/* Good through its month: December 2026 is accepted in December 2026. */
	CHECK(boutique_card_check("4242 4242 4242 4242", 2026, 12, 2026, 12, &net, why,
	                          sizeof(why)) == NULL &&
	      net == BOUTIQUE_CARD_VISA);
	CHECK(boutique_card_check("5555555555554444", 2027, 1, 2026, 12, &net, why, sizeof(why)) ==
	          NULL &&
	      net == BOUTIQUE_CARD_MASTERCARD);
	const char *r =
	    boutique_card_check("4242424242424242", 2026, 11, 2026, 12, &net, why, sizeof(why));
	CHECK(r != NULL && strcmp(r, "the card expired in 11/2026") == 0);
	r = boutique_card_check("4242424242424242", 2025, 12, 2026, 1, &net, why, sizeof(why));
	CHECK(r != NULL && strcmp(r, "the card expired in 12/2025") == 0);
	r = boutique_card_check("4242424242424241", 2030, 1, 2026, 12, &net, why, sizeof(why));
	CHECK(r != NULL && strcmp(r, "invalid card number") == 0);
	r = boutique_card_check("4242-4242-4242-424a", 2030, 1, 2026, 12, &net, why, sizeof(why));
	CHECK(r != NULL && strcmp(r, "invalid card number") == 0);
	r = boutique_card_check("378282246310005", 2030, 1, 2026, 12, &net, why, sizeof(why));
	CHECK(r != NULL && strcmp(r, "only VISA and MasterCard are accepted") == 0);
	r = boutique_card_check("4242424242424242", 2030, 13, 2026, 12, &net, why, sizeof(why));
	CHECK(r != NULL && strcmp(r, "invalid expiration month") == 0);
	r = boutique_card_check("4242424242424242", 2030, 0, 2026, 12, &net, why, sizeof(why));
	CHECK(r != NULL && strcmp(r, "invalid expiration month") == 0);
}

int main(void)
{
	RUN(test_digits);
	RUN(test_luhn);
	RUN(test_network);
	RUN(test_check);
	return SUMMARY("boutique_card");
}
