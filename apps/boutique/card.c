/* SPDX-License-Identifier: Apache-2.0 */
/* The payment service's checks of a credit card: number (Luhn), network, expiry. */
#include "card.h"

#include <stdio.h>
#include <string.h>

int boutique_card_digits(const char *number, char digits[20])
{
	size_t n = 0;
	for (const char *p = number; *p != '\0'; p++) {
		if (*p == ' ' || *p == '-')
			continue;
		if (*p < '0' || *p > '9' || n == 19)
			return -1;
		digits[n++] = *p;
	}
	digits[n] = '\0';
	return n >= 12 ? 0 : -1;
}

bool boutique_card_luhn(const char *digits)
{
	size_t n = strlen(digits);
	unsigned sum = 0;
	/* From the right: every second digit is doubled, and 9 taken off a two-digit result. */
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(digits[n - 1 - i] - '0');
		if (i % 2 == 1) {
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
	}
	return n > 0 && sum % 10 == 0;
}

enum boutique_card_network boutique_card_network(const char *digits)
{
	size_t n = strlen(digits);
	if (digits[0] == '4' && (n == 13 || n == 16 || n == 19))
		return BOUTIQUE_CARD_VISA;
	if (n == 16) {
		int two = (digits[0] - '0') * 10 + (digits[1] - '0');
		int four = two * 100 + (digits[2] - '0') * 10 + (digits[3] - '0');
		if ((two >= 51 && two <= 55) || (four >= 2221 && four <= 2720))
			return BOUTIQUE_CARD_MASTERCARD;
	}
	return BOUTIQUE_CARD_UNKNOWN;
}

const char *boutique_card_check(const char *number, int64_t exp_year, int64_t exp_month,
                                int now_year, int now_month, enum boutique_card_network *network,
                                char *why, unsigned why_size)
{
	char digits[20];
	if (boutique_card_digits(number, digits) != 0 || !boutique_card_luhn(digits)) {
		snprintf(why, why_size, "invalid card number");
		return why;
	}
	*network = boutique_card_network(digits);
	if (*network == BOUTIQUE_CARD_UNKNOWN) {
		snprintf(why, why_size, "only VISA and MasterCard are accepted");
		return why;
	}
	if (exp_month < 1 || exp_month > 12) {
		snprintf(why, why_size, "invalid expiration month");
		return why;
	}
	/* A card is good through the last day of its expiration month. */
	if (exp_year < now_year || (exp_year == now_year && exp_month < now_month)) {
		snprintf(why, why_size, "the card expired in %02d/%lld", (int)exp_month,
		         (long long)exp_year);
		return why;
	}
	return NULL;
}
