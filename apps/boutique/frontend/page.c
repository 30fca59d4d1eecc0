/* SPDX-License-Identifier: Apache-2.0 */
/* The page writer: escaped by default, raw only where the format says so (page.h). */
#include "page.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NANOS_PER_UNIT 1000000000LL

void page_init(struct page *p, char *buf, size_t cap)
{
	*p = (struct page){.buf = buf, .cap = cap};
}

static void put_raw(struct page *p, const char *s, size_t n)
{
	if (p->overflow)
		return;
	if (n > p->cap - p->len) {
		p->overflow = true;
		return;
	}
	memcpy(p->buf + p->len, s, n);
	p->len += n;
}

void page_escape(struct page *p, const char *s, size_t n)
{
	size_t run = 0; /* bytes that need no escaping, copied in one go */
	for (size_t i = 0; i < n; i++) {
		const char *ent = NULL;
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '&': ent = "&amp;"; break;
		case '<': ent = "&lt;"; break;
		case '>': ent = "&gt;"; break;
		case '"': ent = "&#34;"; break;
		case '\'': ent = "&#39;"; break;
		default:
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
				ent = "";
			else if (c == 0x7f)
				ent = "";
		}
		if (ent == NULL) {
			run++;
			continue;
		}
		put_raw(p, s + i - run, run);
		run = 0;
		put_raw(p, ent, strlen(ent));
	}
	put_raw(p, s + n - run, run);
}

static const char *currency_symbol(const char *code)
{
	static const struct {
		const char *code, *symbol;
	} symbols[] = {
	    {"USD", "$"}, {"CAD", "$"}, {"EUR", "€"}, {"GBP", "£"}, {"JPY", "¥"}, {"TRY", "₺"},
	};
	for (size_t i = 0; i < sizeof(symbols) / sizeof(symbols[0]); i++)
		if (strcmp(code, symbols[i].code) == 0)
			return symbols[i].symbol;
	return NULL;
}

void money_format(const struct money *m, char *out, size_t cap)
{
	const char *sym = currency_symbol(m->currency_code);
	bool neg = m->units < 0 || m->nanos < 0;
	unsigned long long units =
	    neg ? 0ULL - (unsigned long long)m->units : (unsigned long long)m->units;
	long cents = (neg ? -(long)m->nanos : (long)m->nanos) / 10000000L;
	if (sym != NULL)
		snprintf(out, cap, "%s%s%llu.%02ld", neg ? "-" : "", sym, units, cents);
	else
		snprintf(out, cap, "%s%s %llu.%02ld", neg ? "-" : "", m->currency_code, units,
		         cents);
}

static bool to_nanos(const struct money *m, long long *out)
{
	long long n;
	if (__builtin_mul_overflow(m->units, NANOS_PER_UNIT, &n) ||
	    __builtin_add_overflow(n, (long long)m->nanos, &n))
		return false;
	*out = n;
	return true;
}

/* out may be one of the operands: code is copied before out is written. */
static void from_nanos(long long n, const char *code, struct money *out)
{
	char copy[sizeof(out->currency_code)];
	snprintf(copy, sizeof(copy), "%s", code);
	memcpy(out->currency_code, copy, sizeof(copy));
	out->units = n / NANOS_PER_UNIT;
	out->nanos = (int32_t)(n % NANOS_PER_UNIT); /* same sign as units (C division) */
}

bool money_multiply(const struct money *m, uint32_t q, struct money *out)
{
	long long n;
	if (!to_nanos(m, &n) || __builtin_mul_overflow(n, (long long)q, &n))
		return false;
	from_nanos(n, m->currency_code, out);
	return true;
}

bool money_add(const struct money *a, const struct money *b, struct money *out)
{
	long long x, y;
	if (strcmp(a->currency_code, b->currency_code) != 0 || !to_nanos(a, &x) ||
	    !to_nanos(b, &y) || __builtin_add_overflow(x, y, &x))
		return false;
	from_nanos(x, a->currency_code, out);
	return true;
}

void page_put(struct page *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *lit = fmt;
	for (const char *f = fmt; *f != '\0'; f++) {
		if (*f != '%')
			continue;
		put_raw(p, lit, (size_t)(f - lit));
		char num[32];
		f++;
		switch (*f) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (s != NULL)
				page_escape(p, s, strlen(s));
			break;
		}
		case 'S': {
			int n = va_arg(ap, int);
			const char *s = va_arg(ap, const char *);
			if (n > 0 && s != NULL)
				page_escape(p, s, (size_t)n);
			break;
		}
		case 'r': {
			const char *s = va_arg(ap, const char *);
			if (s != NULL)
				put_raw(p, s, strlen(s));
			break;
		}
		case 'd':
			snprintf(num, sizeof(num), "%d", va_arg(ap, int));
			put_raw(p, num, strlen(num));
			break;
		case 'u':
			snprintf(num, sizeof(num), "%u", va_arg(ap, unsigned));
			put_raw(p, num, strlen(num));
			break;
		case 'D':
			snprintf(num, sizeof(num), "%lld", va_arg(ap, long long));
			put_raw(p, num, strlen(num));
			break;
		case 'm': {
			char text[64];
			money_format(va_arg(ap, const struct money *), text, sizeof(text));
			page_escape(p, text, strlen(text));
			break;
		}
		case '%': put_raw(p, "%", 1); break;
		default:
			p->overflow = true; /* a bad directive, or a lone % at the end */
			va_end(ap);
			return;
		}
		lit = f + 1;
	}
	put_raw(p, lit, strlen(lit));
	va_end(ap);
}
