/* SPDX-License-Identifier: Apache-2.0 */
/* The payment service's checks of a credit card: number (Luhn), network, expiry. Pure. */
#ifndef BOUTIQUE_CARD_H
#define BOUTIQUE_CARD_H

#include <stdbool.h>
#include <stdint.h>

enum boutique_card_network {
	BOUTIQUE_CARD_UNKNOWN,
	BOUTIQUE_CARD_VISA,
	BOUTIQUE_CARD_MASTERCARD,
};

/*
 * The digits of a card number written with optional spaces or dashes between them, into
 * digits[20] (NUL-terminated). 0, or -1 if there is any other character or the number of
 * digits is not 12..19.
 */
int boutique_card_digits(const char *number, char digits[20]);

/* Whether digits (only digits) pass the Luhn checksum. */
bool boutique_card_luhn(const char *digits);

/* The network by prefix and length: VISA 4 (13, 16 or 19 digits), MasterCard 51-55 or
 * 2221-2720 (16 digits); else UNKNOWN. */
enum boutique_card_network boutique_card_network(const char *digits);

/*
 * The whole check of a card used in year/month now: NULL if it is accepted (*network
 * set), else why not ("invalid card number", "only VISA and MasterCard are accepted",
 * "invalid expiration month", "the card expired in MM/YYYY"), written into why.
 */
const char *boutique_card_check(const char *number, int64_t exp_year, int64_t exp_month,
                                int now_year, int now_month, enum boutique_card_network *network,
                                char *why, unsigned why_size);

#endif
