/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit test of the frontend's helpers: escaping and the page template, money, the strict
 * form decoder, cookies, and the static files (argv[1]: apps/boutique/static).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "page.h"
#include "statics.h"

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__, #cond);           \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

static const char *render(char *buf, size_t cap, struct page *p)
{
	if (p->overflow)
		return "<overflow>";
	if (p->len >= cap)
		return "<full>";
	buf[p->len] = '\0';
	return buf;
}

static void test_page(void)
{
	char buf[256];
	struct page p;
	page_init(&p, buf, sizeof(buf) - 1);
	page_put(&p, "<b>%s</b>%r|%S|%d %u %D %%", "<script>\"a\" & 'b'</script>", "<i>", 3, "x<yz",
	         -5, 7u, 1234567890123LL);
	CHECK(strcmp(render(buf, sizeof(buf), &p),
	             "<b>&lt;script&gt;&#34;a&#34; &amp; &#39;b&#39;&lt;/script&gt;</b><i>|x&lt;y|"
	             "-5 7 1234567890123 %") == 0);

	/* Control bytes are dropped, UTF-8 passes. */
	page_init(&p, buf, sizeof(buf) - 1);
	page_put(&p, "%s",
	         "a\x01"
	         "b\x7f"
	         "c\tä");
	CHECK(strcmp(render(buf, sizeof(buf), &p), "abc\tä") == 0);

	/* Money: symbols, other codes, cents truncated, negative amounts. */
	struct money m = {.currency_code = "EUR", .units = 12, .nanos = 990000000};
	page_init(&p, buf, sizeof(buf) - 1);
	page_put(&p, "%m", &m);
	CHECK(strcmp(render(buf, sizeof(buf), &p), "€12.99") == 0);
	struct money chf = {.currency_code = "CHF", .units = 4, .nanos = 50000000};
	char text[64];
	money_format(&chf, text, sizeof(text));
	CHECK(strcmp(text, "CHF 4.05") == 0);
	struct money neg = {.currency_code = "USD", .units = -1, .nanos = -500000000};
	money_format(&neg, text, sizeof(text));
	CHECK(strcmp(text, "-$1.50") == 0);
	struct money sum;
	CHECK(money_multiply(&m, 3, &sum)); /* 38.97 */
	CHECK(sum.units == 38 && sum.nanos == 970000000);
	CHECK(money_add(&sum, &m, &sum)); /* 51.96, out aliases an operand */
	CHECK(sum.units == 51 && sum.nanos == 960000000 && strcmp(sum.currency_code, "EUR") == 0);
	CHECK(!money_add(&sum, &chf, &sum));
	struct money huge = {.currency_code = "USD", .units = 9000000000000000000LL};
	CHECK(!money_multiply(&huge, 2, &sum));

	/* A page that does not fit, and a bad directive, mark it unusable. */
	char small[8];
	page_init(&p, small, sizeof(small));
	page_put(&p, "%s", "0123456789");
	CHECK(p.overflow);
	page_init(&p, buf, sizeof(buf));
	page_put(&p, "%x", 1);
	CHECK(p.overflow);
	page_init(&p, buf, sizeof(buf));
	page_put(&p, "abc%");
	CHECK(p.overflow);
}

static void test_form(void)
{
	char out[64];
	CHECK(form_decode("a+b%20c%2Fd%C3%A4", 17, out, sizeof(out)) == 9);
	CHECK(strcmp(out, "a b c/dä") == 0);
	CHECK(form_decode("%2", 2, out, sizeof(out)) == -1);
	CHECK(form_decode("%zz", 3, out, sizeof(out)) == -1);
	CHECK(form_decode("%00", 3, out, sizeof(out)) == -1);
	CHECK(form_decode("%0A", 3, out, sizeof(out)) == 1); /* a newline is text */
	CHECK(form_decode("abcd", 4, out, 4) == -1);         /* no room for the NUL */
	CHECK(form_decode("abc", 3, out, 4) == 3);

	const char *body = "product_id=OLJCESPC7Z&quantity=3&note=a%26b&empty=&flag";
	size_t n = strlen(body);
	CHECK(form_value(body, n, "quantity", out, sizeof(out)) == 1 && strcmp(out, "3") == 0);
	CHECK(form_value(body, n, "product_id", out, sizeof(out)) == 10);
	CHECK(form_value(body, n, "note", out, sizeof(out)) == 3 && strcmp(out, "a&b") == 0);
	CHECK(form_value(body, n, "empty", out, sizeof(out)) == 0);
	CHECK(form_value(body, n, "flag", out, sizeof(out)) == 0);
	CHECK(form_value(body, n, "missing", out, sizeof(out)) == FORM_ABSENT);
	CHECK(form_value("a=1&a=2", 7, "a", out, sizeof(out)) == 1 && strcmp(out, "1") == 0);
	/* A bad escape anywhere refuses the whole body, whichever field is asked for. */
	CHECK(form_value("a=1&b=%G1", 9, "a", out, sizeof(out)) == FORM_MALFORMED);
	CHECK(form_value("a=1&b%=1", 8, "a", out, sizeof(out)) == FORM_MALFORMED);
	CHECK(form_value("a=0123456789", 12, "a", out, 5) == FORM_MALFORMED);
	CHECK(form_value("", 0, "a", out, sizeof(out)) == FORM_ABSENT);
	CHECK(form_value("&&a=1&", 6, "a", out, sizeof(out)) == 1);

	const char *v;
	size_t vlen;
	const char *cookie = "theme=dark;shop_session-id=abc-123 ;  shop_currency=\"EUR\"; x";
	CHECK(cookie_value(cookie, strlen(cookie), "shop_session-id", &v, &vlen) && vlen == 7 &&
	      memcmp(v, "abc-123", 7) == 0);
	CHECK(cookie_value(cookie, strlen(cookie), "shop_currency", &v, &vlen) && vlen == 3 &&
	      memcmp(v, "EUR", 3) == 0);
	CHECK(!cookie_value(cookie, strlen(cookie), "shop", &v, &vlen));
	CHECK(!cookie_value(cookie, strlen(cookie), "x", &v, &vlen));
	CHECK(!cookie_value("", 0, "x", &v, &vlen));
	/* Only the header's own bytes are read: no NUL needed, none past len. */
	CHECK(cookie_value("a=1; b=2XYZ", 8, "b", &v, &vlen) && vlen == 1 && v[0] == '2');
}

static void test_statics(const char *dir)
{
	struct statics s;
	char why[300];
	int rc = statics_load(&s, dir, "/static", why, sizeof(why));
	CHECK(rc == 0);
	if (rc != 0) {
		fprintf(stderr, "statics_load %s: %s\n", dir, why);
		return;
	}
	static const char *const want[] = {
	    "/static/styles/boutique.css",
	    "/static/favicon.svg",
	    "/static/img/products/aviator-shades.svg",
	    "/static/img/products/linen-sleeveless-shirt.svg",
	    "/static/img/products/field-wristwatch.svg",
	    "/static/img/products/suede-slip-ons.svg",
	    "/static/img/products/travel-blow-dryer.svg",
	    "/static/img/products/brass-candlestick.svg",
	    "/static/img/products/oak-spice-grinders.svg",
	    "/static/img/products/stoneware-storage-crock.svg",
	    "/static/img/products/enamel-camp-mug.svg",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct static_file *f = statics_find(&s, want[i], strlen(want[i]));
		CHECK(f != NULL && f->len > 0);
		if (f == NULL)
			fprintf(stderr, "missing %s\n", want[i]);
		else if (strstr(want[i], ".svg") != NULL)
			CHECK(strcmp(f->content_type, "image/svg+xml") == 0 &&
			      memmem(f->data, f->len, "<svg", 4) != NULL);
		else
			CHECK(strncmp(f->content_type, "text/css", 8) == 0);
	}
	static const char *const never[] = {
	    "/static/img/../styles/boutique.css",
	    "/static//favicon.svg",
	    "/static/",
	    "/static/img",
	    "/static/img/products/",
	    "/etc/passwd",
	    "/static/favicon.svg/",
	};
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		CHECK(statics_find(&s, never[i], strlen(never[i])) == NULL);
	statics_free(&s);
	CHECK(statics_load(&s, "/nonexistent/folder", "/static", why, sizeof(why)) < 0);
}

int main(int argc, char **argv)
{
	test_page();
	test_form();
	if (argc > 1)
		test_statics(argv[1]);
	if (failures != 0) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("all checks passed\n");
	return 0;
}
