/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The frontend's small template approach: a page is written into one fixed buffer (the
 * response's pool buffer) with page_put(), a printf-like call whose string arguments are
 * HTML-escaped unless the format says they are trusted markup, so that no value from a
 * service or a client reaches the page unescaped by accident.
 */
#ifndef BOUTIQUE_FRONTEND_PAGE_H
#define BOUTIQUE_FRONTEND_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An amount of money as the services pass it (docs/boutique.md): units and nanos have
 * the same sign, |nanos| < 10^9. */
struct money {
	char currency_code[8];
	int64_t units;
	int32_t nanos;
};

struct page {
	char *buf;
	size_t len;
	size_t cap;
	bool overflow; /* something did not fit, or a bad format: the page is unusable */
};

void page_init(struct page *p, char *buf, size_t cap);

/*
 * Append fmt with its arguments. Directives:
 *   %s  const char *, HTML-escaped (NULL writes nothing)
 *   %S  int len, const char *s: len bytes, HTML-escaped (like %.*s)
 *   %r  const char *, raw: trusted markup of the frontend itself, never data
 *   %d  int          %u  unsigned          %D  long long
 *   %m  const struct money *: the amount with its currency's symbol, escaped
 *   %%  a percent sign
 * Anything else marks the page as overflowed (a programmer error caught by the tests).
 */
void page_put(struct page *p, const char *fmt, ...);

/* Append n bytes HTML-escaped: & < > " ' become entities; bytes below 0x20 other than
 * tab, newline and carriage return are dropped. */
void page_escape(struct page *p, const char *s, size_t n);

/* The amount as text ("€12.30", "CHF 4.05", "-$1.50"): into out (>= 48 bytes). */
void money_format(const struct money *m, char *out, size_t cap);

/* m * q and a + b (same currency), exact to the nano; false on overflow or on
 * different currencies. */
bool money_multiply(const struct money *m, uint32_t q, struct money *out);
bool money_add(const struct money *a, const struct money *b, struct money *out);

#endif
