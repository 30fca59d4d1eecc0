/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frontend: the Online Boutique's web shop (docs/boutique.md), one function on route `/`.
 * It serves the original frontend's routes, forms and cookies: each page gathers its data
 * from the services with calls, started together and waited for together in as few
 * rounds as the data's dependencies allow, then renders HTML straight into the
 * response's pool buffer (page.h escapes every value). Static files come from memory.
 *
 *   frontend --static DIR
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <json-c/json.h>
#include <palladium/function.h>

#include "form.h"
#include "page.h"
#include "statics.h"

#define DEFAULT_CURRENCY "USD"
#define COOKIE_SESSION "shop_session-id"
#define COOKIE_CURRENCY "shop_currency"
#define COOKIE_MAX_AGE "172800" /* 48 hours, as the original */
#define MAX_PRODUCTS 64         /* of the catalog, or of a cart, handled on one page */
#define MAX_RECOMMENDATIONS 4   /* shown: what fits the row */
#define MAX_QUANTITY 10
#define AD_TIMEOUT_MS 250 /* an ad is not worth waiting for (the original waits 100 ms) */
#define FIELD_MAX 512

static struct statics statics;

/* ---- one request ---------------------------------------------------------------- */

struct ctx {
	const pd_request *req;
	pd_response *res;
	char session[65];
	char currency[8]; /* the session's currency: the cookie's, checked, or the default */
};

/* ---- JSON with json-c ------------------------------------------------------------------- */

/* A string the services can read: UTF-8 as jansson, which they parse with, checks it
 * (no overlong forms, no surrogates, nothing above U+10FFFF). */
static bool utf8_ok(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	while (*u != '\0') {
		unsigned char c = *u++;
		if (c < 0x80)
			continue;
		int more;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf)
			more = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			more = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			more = 3, cp = c & 0x07;
		else
			return false;
		for (int i = 0; i < more; i++, u++) {
			if ((*u & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (*u & 0x3f);
		}
		if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

/* A call body under construction. The first failure (out of memory, or a string that is
 * not UTF-8, which jansson's json_pack refused before) spoils the whole body: jb_end
 * then gives NULL, which rpc_start reports. */
struct jb {
	bool failed;
};

static struct json_object *jb_made(struct jb *b, struct json_object *v)
{
	if (v == NULL)
		b->failed = true;
	return v;
}

static struct json_object *jb_object(struct jb *b)
{
	return jb_made(b, json_object_new_object());
}

static struct json_object *jb_array(struct jb *b)
{
	return jb_made(b, json_object_new_array());
}

static struct json_object *jb_string(struct jb *b, const char *s)
{
	if (!utf8_ok(s)) {
		b->failed = true;
		return NULL;
	}
	return jb_made(b, json_object_new_string(s));
}

static struct json_object *jb_int(struct jb *b, int64_t v)
{
	return jb_made(b, json_object_new_int64(v));
}

/* A value of another tree taken by reference (NULL is JSON's null: no failure). */
static struct json_object *jb_ref(struct json_object *v)
{
	return json_object_get(v);
}

/* obj[key] = v, v's reference passing to obj; keys are literals, each set once. */
static void jb_set(struct jb *b, struct json_object *obj, const char *key, struct json_object *v)
{
	if (obj == NULL ||
	    json_object_object_add_ex(
	        obj, key, v, JSON_C_OBJECT_ADD_KEY_IS_NEW | JSON_C_OBJECT_ADD_CONSTANT_KEY) != 0) {
		json_object_put(v);
		b->failed = true;
	}
}

static void jb_push(struct jb *b, struct json_object *array, struct json_object *v)
{
	if (array == NULL || json_object_array_add(array, v) != 0) {
		json_object_put(v);
		b->failed = true;
	}
}

static struct json_object *jb_end(struct jb *b, struct json_object *root)
{
	if (b->failed) {
		json_object_put(root);
		return NULL;
	}
	return root;
}

/* Whether text holds a \u0000 escape (one whose backslash is not itself escaped). */
static bool has_nul_escape(const char *text, size_t len)
{
	const char *at = text;
	while ((at = memmem(at, len - (size_t)(at - text), "\\u0000", 6)) != NULL) {
		size_t slashes = 0;
		while (at - slashes > text && *(at - slashes - 1) == '\\')
			slashes++;
		if (slashes % 2 == 0)
			return true;
		at++;
	}
	return false;
}

/* A service's answer parsed as strictly as jansson's json_loadb(body, len, 0) did: strict
 * JSON, valid UTF-8, nothing but white space after the value, and no \u0000 in a string
 * (jansson refuses it without JSON_ALLOW_NUL; json-c would cut the string there). NULL
 * when it is not that or not an object. */
static struct json_object *parse_object(const char *body, size_t len)
{
	if (len == 0 || len > INT_MAX)
		return NULL;
	struct json_tokener *tok = json_tokener_new();
	if (tok == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
	                                JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *v = json_tokener_parse_ex(tok, body, (int)len);
	bool ok = json_tokener_get_error(tok) == json_tokener_success;
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	while (ok && end < len &&
	       (body[end] == ' ' || body[end] == '\t' || body[end] == '\n' || body[end] == '\r'))
		end++;
	if (!ok || end != len || !json_object_is_type(v, json_type_object) ||
	    has_nul_escape(body, len)) {
		json_object_put(v);
		return NULL;
	}
	return v;
}

/* obj[key]; NULL when obj is no object, key is absent or its value is null. */
static struct json_object *jget(const struct json_object *obj, const char *key)
{
	struct json_object *v = NULL;
	if (!json_object_object_get_ex(obj, key, &v))
		return NULL;
	return v;
}

/* Whether obj has key at all, null included (json-c's null is a NULL value). */
static bool jhas(const struct json_object *obj, const char *key, struct json_object **v)
{
	*v = NULL;
	return json_object_object_get_ex(obj, key, v);
}

static const char *jstring(const struct json_object *v)
{
	if (!json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string((struct json_object *)v);
}

static bool jis_int(const struct json_object *v)
{
	return json_object_is_type(v, json_type_int);
}

static int64_t jint(const struct json_object *v)
{
	return jis_int(v) ? json_object_get_int64(v) : 0;
}

static size_t jlen(const struct json_object *array)
{
	return json_object_is_type(array, json_type_array) ? json_object_array_length(array) : 0;
}

static struct json_object *jat(const struct json_object *array, size_t i)
{
	return json_object_array_get_idx(array, i);
}

/* ---- calls to the services -------------------------------------------------------- */

/* One call: started by rpc_start, finished by rpcs_wait, which parses its answer. */
struct rpc {
	pd_call *call;
	const char *service;
	const char *method;
	int status;                /* the call's status; -1: it could not be made here (500) */
	struct json_object *reply; /* the answer when status is 200 and it is a JSON object */
	char error[200];
};

static void rpc_start(struct ctx *x, struct rpc *r, const char *service, const char *method,
                      struct json_object *body, unsigned timeout_ms)
{
	*r = (struct rpc){.service = service, .method = method};
	if (body == NULL) {
		snprintf(r->error, sizeof(r->error), "out of memory");
		r->status = -1;
		return;
	}
	r->call = pd_call_start(x->req, service);
	if (r->call == NULL) {
		json_object_put(body);
		snprintf(r->error, sizeof(r->error), "out of memory");
		r->status = -1;
		return;
	}
	if (pd_call_status(r->call) != 0) {
		json_object_put(body); /* refused before it was sent: rpcs_wait reads why */
		return;
	}
	pd_call_set_path(r->call, method, NULL);
	pd_call_set_header(r->call, "content-type", "application/json");
	if (timeout_ms > 0)
		pd_call_set_timeout(r->call, timeout_ms);
	size_t cap = pd_call_capacity(r->call);
	char *room = pd_call_reserve(r->call, cap);
	size_t n = 0;
	const char *text =
	    room != NULL ? json_object_to_json_string_length(
	                       body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n)
	                 : NULL;
	if (text == NULL)
		n = 0;
	else if (n <= cap)
		memcpy(room, text, n);
	json_object_put(body);
	if (room == NULL || n == 0 || n > cap) {
		pd_call_release(r->call);
		r->call = NULL;
		snprintf(r->error, sizeof(r->error), "the request does not fit in a buffer");
		r->status = -1;
		return;
	}
	pd_call_commit(r->call, n);
	pd_call_send(r->call);
}

/* The error text of a failed answer: {"error": "..."} or the platform's short text. */
static void rpc_take_error(struct rpc *r, const char *body, size_t len)
{
	struct json_object *v = parse_object(body, len);
	const char *text = jstring(jget(v, "error"));
	if (text != NULL) {
		snprintf(r->error, sizeof(r->error), "%s", text);
	} else {
		while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == ' '))
			len--;
		if (len >= sizeof(r->error))
			len = sizeof(r->error) - 1;
		memcpy(r->error, body, len);
		r->error[len] = '\0';
	}
	json_object_put(v);
}

/* Wait for every call of rs[0..n) and parse each answer; the calls are released (their
 * buffers go back to the pool at once) and the answers kept as JSON. */
static void rpcs_wait(struct rpc *rs, size_t n)
{
	pd_call *calls[2 * MAX_PRODUCTS + 8] = {NULL};
	size_t k = 0;
	for (size_t i = 0; i < n && k < sizeof(calls) / sizeof(calls[0]); i++)
		if (rs[i].call != NULL)
			calls[k++] = rs[i].call;
	pd_call_wait_all(calls, k);
	for (size_t i = 0; i < n; i++) {
		struct rpc *r = &rs[i];
		if (r->call == NULL)
			continue;
		r->status = pd_call_wait(r->call);
		size_t len;
		const char *body = pd_call_body(r->call, &len);
		if (r->status == 200) {
			r->reply = parse_object(body, len);
			if (r->reply == NULL) {
				r->status = 502;
				snprintf(r->error, sizeof(r->error),
				         "the answer is not a JSON object");
			}
		} else {
			rpc_take_error(r, body, len);
		}
		pd_call_release(r->call);
		r->call = NULL;
	}
}

static bool rpc_ok(const struct rpc *r)
{
	return r->status == 200 && r->reply != NULL;
}

static void rpcs_free(struct rpc *rs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		pd_call_release(rs[i].call);
		json_object_put(rs[i].reply);
		rs[i].call = NULL;
		rs[i].reply = NULL;
	}
}

/* The status of a page whose needed call failed: a Redis that is down (503) and a
 * deadline (504) are told as they are, anything else is a bad gateway. */
static int failure_status(const struct rpc *r)
{
	if (r->status == 503 || r->status == 504)
		return r->status;
	if (r->status < 0)
		return 500;
	return 502;
}

/* ---- reading the services' JSON ------------------------------------------------------ */

static const char *jstr(const struct json_object *obj, const char *key)
{
	const char *s = jstring(jget(obj, key));
	return s != NULL ? s : "";
}

static bool money_from_json(const struct json_object *v, struct money *m)
{
	const char *code = jstring(jget(v, "currency_code"));
	struct json_object *units, *nanos;
	bool has_units = jhas(v, "units", &units);
	bool has_nanos = jhas(v, "nanos", &nanos);
	if (code == NULL || strlen(code) >= sizeof(m->currency_code) ||
	    (has_units && !jis_int(units)) || (has_nanos && !jis_int(nanos)))
		return false;
	int64_t n = jint(nanos);
	if (n <= -1000000000 || n >= 1000000000)
		return false;
	snprintf(m->currency_code, sizeof(m->currency_code), "%s", code);
	m->units = jint(units);
	m->nanos = (int32_t)n;
	return true;
}

static struct json_object *money_to_json(struct jb *b, const struct money *m)
{
	struct json_object *o = jb_object(b);
	jb_set(b, o, "currency_code", jb_string(b, m->currency_code));
	jb_set(b, o, "units", jb_int(b, m->units));
	jb_set(b, o, "nanos", jb_int(b, m->nanos));
	return o;
}

/* A product of the catalog, pointing into the JSON answer that holds it. */
struct product {
	const struct json_object *json;
	const char *id, *name, *description, *picture;
	struct money price_usd;
};

static bool product_from_json(const struct json_object *v, struct product *p)
{
	if (!json_object_is_type(v, json_type_object) || jstring(jget(v, "id")) == NULL)
		return false;
	*p = (struct product){.json = v,
	                      .id = jstr(v, "id"),
	                      .name = jstr(v, "name"),
	                      .description = jstr(v, "description"),
	                      .picture = jstr(v, "picture")};
	return money_from_json(jget(v, "price_usd"), &p->price_usd);
}

/* A currency code as the services spell them: three capital letters. */
static bool currency_code_ok(const char *s, size_t n)
{
	if (n != 3)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 'A' || s[i] > 'Z')
			return false;
	return true;
}

static bool currency_listed(const struct json_object *list, const char *code)
{
	for (size_t i = 0, n = jlen(list); i < n; i++) {
		const char *s = jstring(jat(list, i));
		if (s != NULL && strcmp(s, code) == 0)
			return true;
	}
	return false;
}

/* A link the page may follow: a path of this site, never another site or a script. */
static const char *local_link(const char *url)
{
	if (url[0] != '/' || url[1] == '/' || url[1] == '\\')
		return "/";
	return url;
}

/* ---- the page ------------------------------------------------------------------------ */

/* The body goes straight into the response's buffer: all of the room there is (the
 * headers are set before, they take from the same room). */
static bool page_begin(struct ctx *x, struct page *p)
{
	size_t cap = pd_response_capacity(x->res);
	char *buf = pd_response_reserve(x->res, cap);
	if (buf == NULL)
		return false;
	page_init(p, buf, cap);
	return true;
}

static int page_end(struct ctx *x, struct page *p, int status)
{
	if (p->overflow)
		return pd_response_error(x->res, 500, "the page does not fit in a buffer\n");
	pd_response_commit(x->res, p->len);
	pd_response_set_status(x->res, status);
	return 0;
}

static void put_head(struct page *p, const char *title)
{
	page_put(p,
	         "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
	         "<title>%s | Online Boutique</title>"
	         "<link rel=\"stylesheet\" href=\"/static/styles/boutique.css\">"
	         "<link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\">"
	         "</head><body>\n",
	         title);
}

/* The top bar: the shop's name, the currency picker (when currencies is given) and the
 * cart link with its size (when cart_size >= 0). */
static void put_header(struct page *p, const struct ctx *x, const struct json_object *currencies,
                       int cart_size)
{
	page_put(p, "<header class=\"top\"><a class=\"brand\" href=\"/\">Online Boutique</a>"
	            "<nav>");
	if (currencies != NULL) {
		page_put(p, "<form class=\"currency-form\" method=\"POST\" action=\"/setCurrency\">"
		            "<label>Currency <select name=\"currency_code\" "
		            "onchange=\"this.form.submit()\">");
		for (size_t i = 0, n = jlen(currencies); i < n; i++) {
			const char *code = jstring(jat(currencies, i));
			if (code == NULL)
				continue;
			page_put(p, "<option value=\"%s\"%r>%s</option>", code,
			         strcmp(code, x->currency) == 0 ? " selected" : "", code);
		}
		page_put(p, "</select></label><noscript><button type=\"submit\">Set</button>"
		            "</noscript></form>");
	}
	page_put(p, "<a class=\"cart-link\" href=\"/cart\">Cart");
	if (cart_size > 0)
		page_put(p, " <span class=\"cart-size\">%d</span>", cart_size);
	page_put(p, "</a></nav></header>\n<main>\n");
}

static void put_footer(struct page *p, const struct ctx *x)
{
	page_put(p,
	         "</main>\n<footer><p>Online Boutique on Palladium: every service a function, "
	         "the cart in Redis. Not a real shop.</p><p class=\"session\">session %s</p>"
	         "</footer></body></html>\n",
	         x->session);
}

static void put_ad(struct page *p, const struct rpc *ad)
{
	if (!rpc_ok(ad))
		return; /* an ad that did not come is no error, as in the original */
	struct json_object *ads = jget(ad->reply, "ads");
	size_t n = jlen(ads);
	if (n == 0)
		return;
	unsigned pick = 0;
	if (getrandom(&pick, sizeof(pick), 0) != (ssize_t)sizeof(pick))
		pick = 0;
	struct json_object *one = jat(ads, pick % n);
	page_put(p,
	         "<aside class=\"ad\"><strong>Ad</strong> <a href=\"%s\" rel=\"nofollow\">%s</a>"
	         "</aside>\n",
	         local_link(jstr(one, "redirect_url")), jstr(one, "text"));
}

/* The "you may also like" row: the products of the GetProduct answers recs[0..n). */
static void put_recommendations(struct page *p, const struct rpc *recs, size_t n)
{
	size_t shown = 0;
	for (size_t i = 0; i < n; i++) {
		struct product pr;
		if (!rpc_ok(&recs[i]) || !product_from_json(recs[i].reply, &pr))
			continue;
		if (shown++ == 0)
			page_put(p, "<section class=\"recommendations\"><h2>You may also like</h2>"
			            "<div class=\"grid\">");
		page_put(p,
		         "<a class=\"card small\" href=\"/product/%s\"><img src=\"%s\" alt=\"\">"
		         "<span class=\"product-name\">%s</span></a>",
		         pr.id, local_link(pr.picture), pr.name);
	}
	if (shown > 0)
		page_put(p, "</div></section>\n");
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Error";
	}
}

/* An error page with its status; detail (may be NULL) says what failed. */
static int error_page(struct ctx *x, int status, const char *what, const char *detail)
{
	struct page p;
	if (!page_begin(x, &p))
		return -1;
	put_head(&p, reason_phrase(status));
	put_header(&p, x, NULL, -1);
	page_put(&p,
	         "<section class=\"error\"><h1>Uh-oh, something went wrong</h1>"
	         "<p class=\"status\">HTTP %d %s</p><p class=\"what\">%s</p>",
	         status, reason_phrase(status), what);
	if (detail != NULL && detail[0] != '\0')
		page_put(&p, "<pre class=\"detail\">%s</pre>", detail);
	page_put(&p, "<p><a class=\"button\" href=\"/\">Back to the shop</a></p></section>\n");
	put_footer(&p, x);
	return page_end(x, &p, status);
}

/* The error page of a call that a page could not do without. */
static int rpc_error_page(struct ctx *x, const struct rpc *r, const char *what)
{
	char detail[320];
	if (r->status == 503 && strcmp(r->service, "cart") == 0)
		what = "The cart storage is unavailable right now. Please try again in a moment.";
	snprintf(detail, sizeof(detail), "%s %s: %d %s", r->service, r->method, r->status,
	         r->error);
	return error_page(x, failure_status(r), what, detail);
}

/* ---- session and currency --------------------------------------------------------------- */

static bool session_id_ok(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

/* A new session id: 122 random bits written as a version-4 UUID, as the original. */
static int new_session_id(char *out, size_t cap)
{
	unsigned char b[16];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		got += (size_t)r;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, cap, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	         b[13], b[14], b[15]);
	return 0;
}

/* The session from the cookie, or a new one with its Set-Cookie header (set before any
 * body is reserved: headers and body share the buffer). */
static int start_session(struct ctx *x)
{
	size_t hlen;
	const char *cookies = pd_request_header(x->req, "cookie", &hlen);
	const char *v;
	size_t vlen;
	if (cookies != NULL && cookie_value(cookies, hlen, COOKIE_SESSION, &v, &vlen) &&
	    session_id_ok(v, vlen)) {
		memcpy(x->session, v, vlen);
		x->session[vlen] = '\0';
	} else {
		int rc = new_session_id(x->session, sizeof(x->session));
		if (rc != 0)
			return rc;
		char cookie[160];
		snprintf(cookie, sizeof(cookie),
		         COOKIE_SESSION "=%s; Path=/; Max-Age=" COOKIE_MAX_AGE
		                        "; HttpOnly; SameSite=Lax",
		         x->session);
		pd_response_set_header(x->res, "set-cookie", cookie);
	}
	snprintf(x->currency, sizeof(x->currency), DEFAULT_CURRENCY);
	if (cookies != NULL && cookie_value(cookies, hlen, COOKIE_CURRENCY, &v, &vlen) &&
	    currency_code_ok(v, vlen)) {
		memcpy(x->currency, v, vlen);
		x->currency[vlen] = '\0';
	}
	return 0;
}

/* A session's currency that the currency service does not list (a cookie from before a
 * change of the table, or forged) falls back to the default instead of failing pages. */
static void check_currency(struct ctx *x, const struct rpc *currencies)
{
	struct json_object *list = jget(currencies->reply, "currency_codes");
	if (!currency_listed(list, x->currency))
		snprintf(x->currency, sizeof(x->currency), DEFAULT_CURRENCY);
}

static struct json_object *convert_request(const struct money *m, const char *to)
{
	struct jb b = {0};
	struct json_object *o = jb_object(&b);
	jb_set(&b, o, "from", money_to_json(&b, m));
	jb_set(&b, o, "to_code", jb_string(&b, to));
	return jb_end(&b, o);
}

/* {key: s}, the body of many calls. */
static struct json_object *one_string_request(const char *key, const char *s)
{
	struct jb b = {0};
	struct json_object *o = jb_object(&b);
	jb_set(&b, o, key, jb_string(&b, s));
	return jb_end(&b, o);
}

static struct json_object *user_request(const struct ctx *x)
{
	return one_string_request("user_id", x->session);
}

/* {key: v}, v's reference passing to the body (NULL: a failed array). */
static struct json_object *one_value_request(const char *key, struct json_object *v)
{
	struct jb b = {.failed = v == NULL};
	struct json_object *o = jb_object(&b);
	jb_set(&b, o, key, v);
	return jb_end(&b, o);
}

/* product_ids' reference passes to the call (NULL: it could not be made). */
static void start_recommendations(struct ctx *x, struct rpc *r, struct json_object *product_ids)
{
	struct jb b = {.failed = product_ids == NULL};
	struct json_object *o = jb_object(&b);
	jb_set(&b, o, "user_id", jb_string(&b, x->session));
	jb_set(&b, o, "product_ids", product_ids);
	rpc_start(x, r, "recommendation", "/ListRecommendations", jb_end(&b, o), 0);
}

/* GetProduct for the first MAX_RECOMMENDATIONS ids a ListRecommendations answered;
 * returns how many were started in out[]. */
static size_t start_recommended_products(struct ctx *x, const struct rpc *rec, struct rpc *out)
{
	if (!rpc_ok(rec))
		return 0; /* not worth failing a page for, as in the original */
	struct json_object *ids = jget(rec->reply, "product_ids");
	size_t n = 0;
	for (size_t i = 0, len = jlen(ids); i < len; i++) {
		if (n == MAX_RECOMMENDATIONS)
			break;
		struct json_object *id = jat(ids, i);
		if (json_object_is_type(id, json_type_string))
			rpc_start(x, &out[n++], "productcatalog", "/GetProduct",
			          one_value_request("id", jb_ref(id)), 0);
	}
	return n;
}

static int cart_size(const struct json_object *cart)
{
	long long total = 0;
	struct json_object *items = jget(cart, "items");
	for (size_t i = 0, n = jlen(items); i < n; i++) {
		int64_t q = jint(jget(jat(items, i), "quantity"));
		if (q > 0 && total < 1000000)
			total += q;
	}
	return (int)total;
}

/* ---- GET / -------------------------------------------------------------------------- */

enum { HOME_CURRENCIES, HOME_PRODUCTS, HOME_CART, HOME_AD, HOME_N };

static int home(struct ctx *x)
{
	struct rpc r[HOME_N];
	struct rpc conv[MAX_PRODUCTS];
	struct product products[MAX_PRODUCTS];
	size_t nconv = 0;
	int rc;
	rpc_start(x, &r[HOME_CURRENCIES], "currency", "/GetSupportedCurrencies",
	          json_object_new_object(), 0);
	rpc_start(x, &r[HOME_PRODUCTS], "productcatalog", "/ListProducts", json_object_new_object(),
	          0);
	rpc_start(x, &r[HOME_CART], "cart", "/GetCart", user_request(x), 0);
	rpc_start(x, &r[HOME_AD], "ad", "/GetAds",
	          one_value_request("context_keys", json_object_new_array()), AD_TIMEOUT_MS);
	rpcs_wait(r, HOME_N);
	for (int i = HOME_CURRENCIES; i <= HOME_CART; i++)
		if (!rpc_ok(&r[i])) {
			rc = rpc_error_page(x, &r[i],
			                    i == HOME_CURRENCIES ? "Could not get the currencies."
			                    : i == HOME_PRODUCTS ? "Could not get the products."
			                                         : "Could not get your cart.");
			goto free_r;
		}
	check_currency(x, &r[HOME_CURRENCIES]);

	/* Every price in the session's currency, converted in parallel. */
	struct json_object *list = jget(r[HOME_PRODUCTS].reply, "products");
	size_t i;
	for (i = 0; i < jlen(list); i++) {
		if (nconv == MAX_PRODUCTS)
			break;
		if (!product_from_json(jat(list, i), &products[nconv])) {
			struct rpc bad = {
			    .service = "productcatalog", .method = "/ListProducts", .status = 502};
			snprintf(bad.error, sizeof(bad.error), "a product is malformed");
			rc = rpc_error_page(x, &bad, "Could not get the products.");
			goto free_conv;
		}
		rpc_start(x, &conv[nconv], "currency", "/Convert",
		          convert_request(&products[nconv].price_usd, x->currency), 0);
		nconv++;
	}
	rpcs_wait(conv, nconv);
	struct money prices[MAX_PRODUCTS];
	for (i = 0; i < nconv; i++)
		if (!rpc_ok(&conv[i]) || !money_from_json(conv[i].reply, &prices[i])) {
			rc = rpc_error_page(x, &conv[i], "Could not convert the prices.");
			goto free_conv;
		}

	struct page p;
	if (!page_begin(x, &p)) {
		rc = -1;
		goto free_conv;
	}
	put_head(&p, "Shop");
	put_header(&p, x, jget(r[HOME_CURRENCIES].reply, "currency_codes"),
	           cart_size(r[HOME_CART].reply));
	page_put(&p, "<section class=\"hot-products\"><h1>Hot products</h1><div class=\"grid\">");
	for (i = 0; i < nconv; i++)
		page_put(
		    &p,
		    "<a class=\"card\" href=\"/product/%s\"><img src=\"%s\" alt=\"%s\">"
		    "<span class=\"product-name\">%s</span><span class=\"price\">%m</span></a>",
		    products[i].id, local_link(products[i].picture), products[i].name,
		    products[i].name, &prices[i]);
	page_put(&p, "</div></section>\n");
	put_ad(&p, &r[HOME_AD]);
	put_footer(&p, x);
	rc = page_end(x, &p, 200);
free_conv:
	rpcs_free(conv, nconv);
free_r:
	rpcs_free(r, HOME_N);
	return rc;
}

/* ---- GET /product/{id} ---------------------------------------------------------------- */

enum { PROD_PRODUCT, PROD_CURRENCIES, PROD_CART, PROD_REC, PROD_N };

static bool product_id_ok(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

static int product_page(struct ctx *x, const char *id)
{
	struct rpc r[PROD_N];
	/* Round two: the price, the ad for the product's categories, the recommended ones. */
	struct rpc r2[2 + MAX_RECOMMENDATIONS];
	size_t n2 = 0;
	int rc;
	rpc_start(x, &r[PROD_PRODUCT], "productcatalog", "/GetProduct",
	          one_string_request("id", id), 0);
	rpc_start(x, &r[PROD_CURRENCIES], "currency", "/GetSupportedCurrencies",
	          json_object_new_object(), 0);
	rpc_start(x, &r[PROD_CART], "cart", "/GetCart", user_request(x), 0);
	struct jb b = {0};
	struct json_object *ids = jb_array(&b);
	jb_push(&b, ids, jb_string(&b, id));
	start_recommendations(x, &r[PROD_REC], jb_end(&b, ids));
	rpcs_wait(r, PROD_N);
	if (r[PROD_PRODUCT].status == 404) {
		rc = error_page(x, 404, "There is no such product.", id);
		goto free_r;
	}
	struct product pr;
	if (!rpc_ok(&r[PROD_PRODUCT]) || !product_from_json(r[PROD_PRODUCT].reply, &pr)) {
		rc = rpc_error_page(x, &r[PROD_PRODUCT], "Could not get the product.");
		goto free_r;
	}
	for (int i = PROD_CURRENCIES; i <= PROD_CART; i++)
		if (!rpc_ok(&r[i])) {
			rc = rpc_error_page(x, &r[i],
			                    i == PROD_CART ? "Could not get your cart."
			                                   : "Could not get the currencies.");
			goto free_r;
		}
	check_currency(x, &r[PROD_CURRENCIES]);

	rpc_start(x, &r2[0], "currency", "/Convert", convert_request(&pr.price_usd, x->currency),
	          0);
	struct json_object *cats = jget(pr.json, "categories");
	rpc_start(x, &r2[1], "ad", "/GetAds",
	          one_value_request("context_keys", json_object_is_type(cats, json_type_array)
	                                                ? jb_ref(cats)
	                                                : json_object_new_array()),
	          AD_TIMEOUT_MS);
	n2 = 2 + start_recommended_products(x, &r[PROD_REC], &r2[2]);
	rpcs_wait(r2, n2);
	struct money price;
	if (!rpc_ok(&r2[0]) || !money_from_json(r2[0].reply, &price)) {
		rc = rpc_error_page(x, &r2[0], "Could not convert the price.");
		goto free_r2;
	}

	struct page p;
	if (!page_begin(x, &p)) {
		rc = -1;
		goto free_r2;
	}
	put_head(&p, pr.name);
	put_header(&p, x, jget(r[PROD_CURRENCIES].reply, "currency_codes"),
	           cart_size(r[PROD_CART].reply));
	page_put(&p,
	         "<section class=\"product\"><img class=\"product-picture\" src=\"%s\" alt=\"%s\">"
	         "<div class=\"product-info\"><h1 class=\"product-name\">%s</h1>"
	         "<p class=\"price\">%m</p><p class=\"description\">%s</p>"
	         "<form method=\"POST\" action=\"/cart\">"
	         "<input type=\"hidden\" name=\"product_id\" value=\"%s\">"
	         "<label>Quantity <select name=\"quantity\">",
	         local_link(pr.picture), pr.name, pr.name, &price, pr.description, pr.id);
	for (int q = 1; q <= MAX_QUANTITY; q++)
		page_put(&p, "<option>%d</option>", q);
	page_put(&p, "</select></label> <button type=\"submit\">Add to cart</button></form>"
	             "</div></section>\n");
	put_recommendations(&p, &r2[2], n2 - 2);
	put_ad(&p, &r2[1]);
	put_footer(&p, x);
	rc = page_end(x, &p, 200);
free_r2:
	rpcs_free(r2, n2);
free_r:
	rpcs_free(r, PROD_N);
	return rc;
}

/* ---- GET /cart ------------------------------------------------------------------------ */

static void put_checkout_form(struct page *p)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	int year = tm.tm_year + 1900;
	page_put(p,
	         "<form class=\"checkout\" method=\"POST\" action=\"/cart/checkout\">"
	         "<h2>Shipping address</h2>"
	         "<label>E-mail <input type=\"email\" name=\"email\" "
	         "value=\"someone@example.com\" required></label>"
	         "<label>Street address <input name=\"street_address\" "
	         "value=\"12 Harbour Road\" required></label>"
	         "<label>Zip code <input name=\"zip_code\" value=\"94043\" required "
	         "pattern=\"[0-9]{1,9}\"></label>"
	         "<label>City <input name=\"city\" value=\"Port Elliot\" required></label>"
	         "<label>State <input name=\"state\" value=\"CA\" required></label>"
	         "<label>Country <input name=\"country\" value=\"United States\" required></label>"
	         "<h2>Payment</h2>"
	         "<label>Card number <input name=\"credit_card_number\" "
	         "value=\"4111111111111111\" required pattern=\"[0-9 -]{12,23}\"></label>"
	         "<label>Month <select name=\"credit_card_expiration_month\">");
	for (int m = 1; m <= 12; m++)
		page_put(p, "<option%r>%d</option>", m == 1 ? " selected" : "", m);
	page_put(p, "</select></label><label>Year <select name=\"credit_card_expiration_year\">");
	for (int y = year; y < year + 5; y++)
		page_put(p, "<option%r>%d</option>", y == year + 1 ? " selected" : "", y);
	page_put(p, "</select></label><label>CVV <input name=\"credit_card_cvv\" value=\"672\" "
	            "required pattern=\"[0-9]{3,4}\"></label>"
	            "<button type=\"submit\">Place order</button></form>");
}

enum { CART_CURRENCIES, CART_CART, CART_N };

static int cart_page(struct ctx *x)
{
	struct rpc r[CART_N];
	/* Round two: recommendations, the shipping quote, each item's product. */
	struct rpc r2[2 + MAX_PRODUCTS];
	/* Round three: each item's price, shipping, and the recommended products. */
	struct rpc r3[MAX_PRODUCTS + 1 + MAX_RECOMMENDATIONS];
	struct product products[MAX_PRODUCTS];
	struct money prices[MAX_PRODUCTS];
	uint32_t quantity[MAX_PRODUCTS];
	size_t nitems = 0, n2 = 0, n3 = 0, nrec = 0;
	int rc;

	rpc_start(x, &r[CART_CURRENCIES], "currency", "/GetSupportedCurrencies",
	          json_object_new_object(), 0);
	rpc_start(x, &r[CART_CART], "cart", "/GetCart", user_request(x), 0);
	rpcs_wait(r, CART_N);
	for (int i = 0; i < CART_N; i++)
		if (!rpc_ok(&r[i])) {
			rc = rpc_error_page(x, &r[i],
			                    i == CART_CART ? "Could not get your cart."
			                                   : "Could not get the currencies.");
			goto free_r;
		}
	check_currency(x, &r[CART_CURRENCIES]);

	struct json_object *items = jget(r[CART_CART].reply, "items");
	/* The items' ids, one string each, shared by reference among the calls' bodies. */
	struct jb b = {0};
	struct json_object *ids = jb_array(&b);
	size_t i;
	for (i = 0; i < jlen(items); i++) {
		struct json_object *it = jat(items, i);
		int64_t q = jint(jget(it, "quantity"));
		const char *pid = jstring(jget(it, "product_id"));
		if (pid == NULL || q <= 0 || q > 1000000)
			continue;
		if (nitems == MAX_PRODUCTS)
			break;
		quantity[nitems++] = (uint32_t)q;
		jb_push(&b, ids, jb_string(&b, pid));
	}
	ids = jb_end(&b, ids);
	start_recommendations(x, &r2[0], jb_ref(ids));
	struct jb qb = {.failed = ids == NULL};
	struct json_object *quote = jb_object(&qb);
	struct json_object *address = jb_object(&qb);
	jb_set(&qb, quote, "address", address);
	jb_set(&qb, address, "street_address", jb_string(&qb, ""));
	jb_set(&qb, address, "city", jb_string(&qb, ""));
	jb_set(&qb, address, "state", jb_string(&qb, ""));
	jb_set(&qb, address, "country", jb_string(&qb, ""));
	jb_set(&qb, address, "zip_code", jb_int(&qb, 0));
	struct json_object *quote_items = jb_array(&qb);
	jb_set(&qb, quote, "items", quote_items);
	for (i = 0; i < nitems && ids != NULL; i++) {
		struct json_object *qi = jb_object(&qb);
		jb_push(&qb, quote_items, qi);
		jb_set(&qb, qi, "product_id", jb_ref(jat(ids, i)));
		jb_set(&qb, qi, "quantity", jb_int(&qb, quantity[i]));
	}
	rpc_start(x, &r2[1], "shipping", "/GetQuote", jb_end(&qb, quote), 0);
	for (i = 0; i < nitems; i++)
		rpc_start(x, &r2[2 + i], "productcatalog", "/GetProduct",
		          ids != NULL ? one_value_request("id", jb_ref(jat(ids, i))) : NULL, 0);
	n2 = 2 + nitems;
	json_object_put(ids);
	rpcs_wait(r2, n2);
	for (i = 1; i < n2; i++)
		if (!rpc_ok(&r2[i]) ||
		    (i >= 2 && !product_from_json(r2[i].reply, &products[i - 2]))) {
			rc = rpc_error_page(x, &r2[i],
			                    i == 1 ? "Could not get a shipping quote."
			                           : "Could not get a product of your cart.");
			goto free_r2;
		}
	struct money shipping_usd;
	if (!money_from_json(jget(r2[1].reply, "cost_usd"), &shipping_usd)) {
		r2[1].status = 502;
		snprintf(r2[1].error, sizeof(r2[1].error), "no cost_usd in the answer");
		rc = rpc_error_page(x, &r2[1], "Could not get a shipping quote.");
		goto free_r2;
	}
	for (i = 0; i < nitems; i++)
		rpc_start(x, &r3[i], "currency", "/Convert",
		          convert_request(&products[i].price_usd, x->currency), 0);
	rpc_start(x, &r3[nitems], "currency", "/Convert",
	          convert_request(&shipping_usd, x->currency), 0);
	nrec = start_recommended_products(x, &r2[0], &r3[nitems + 1]);
	n3 = nitems + 1 + nrec;
	rpcs_wait(r3, n3);
	struct money shipping, total = {.units = 0};
	snprintf(total.currency_code, sizeof(total.currency_code), "%s", x->currency);
	for (i = 0; i <= nitems; i++) {
		struct money *m = i < nitems ? &prices[i] : &shipping;
		if (!rpc_ok(&r3[i]) || !money_from_json(r3[i].reply, m)) {
			rc = rpc_error_page(x, &r3[i], "Could not convert the prices.");
			goto free_r3;
		}
		if (i < nitems && !money_multiply(m, quantity[i], m))
			m->units = 0, m->nanos = 0;
		if (!money_add(&total, m, &total)) {
			rc = error_page(x, 502, "Could not add up the prices.", m->currency_code);
			goto free_r3;
		}
	}

	int size = cart_size(r[CART_CART].reply);
	struct page p;
	if (!page_begin(x, &p)) {
		rc = -1;
		goto free_r3;
	}
	put_head(&p, "Cart");
	put_header(&p, x, jget(r[CART_CURRENCIES].reply, "currency_codes"), size);
	if (nitems == 0) {
		page_put(&p,
		         "<section class=\"cart empty\"><h1>Your cart is empty</h1>"
		         "<p>Items you add to your cart will appear here.</p>"
		         "<p><a class=\"button\" href=\"/\">Continue shopping</a></p></section>\n");
	} else {
		page_put(&p,
		         "<section class=\"cart\"><div class=\"cart-summary\">"
		         "<h1>Cart (<span class=\"cart-count\">%d</span>)</h1>"
		         "<form method=\"POST\" action=\"/cart/empty\"><button type=\"submit\" "
		         "class=\"secondary\">Empty cart</button> <a class=\"button\" href=\"/\">"
		         "Continue shopping</a></form><ul class=\"cart-items\">",
		         size);
		for (i = 0; i < nitems; i++)
			page_put(&p,
			         "<li class=\"cart-item\" data-product-id=\"%s\">"
			         "<a href=\"/product/%s\"><img src=\"%s\" alt=\"\"></a><div>"
			         "<span class=\"product-name\">%s</span><span class=\"sku\">SKU "
			         "#%s</span>"
			         "<span class=\"quantity\">Quantity: %u</span></div>"
			         "<span class=\"price\">%m</span></li>",
			         products[i].id, products[i].id, local_link(products[i].picture),
			         products[i].name, products[i].id, quantity[i], &prices[i]);
		page_put(&p,
		         "</ul><p class=\"shipping\">Shipping <span class=\"price\">%m</span></p>"
		         "<p class=\"total\">Total <span class=\"price\">%m</span></p></div>",
		         &shipping, &total);
		put_checkout_form(&p);
		page_put(&p, "</section>\n");
	}
	put_recommendations(&p, &r3[nitems + 1], nrec);
	put_footer(&p, x);
	rc = page_end(x, &p, 200);
free_r3:
	rpcs_free(r3, n3);
free_r2:
	rpcs_free(r2, n2);
free_r:
	rpcs_free(r, CART_N);
	return rc;
}

/* ---- the forms ---------------------------------------------------------------------------- */

/* A 302 to location (a path of this site). */
static int redirect(struct ctx *x, const char *location)
{
	if (pd_response_set_header(x->res, "location", location) != 0)
		pd_response_set_header(x->res, "location", "/");
	pd_response_set_status(x->res, 302);
	return 0;
}

/* A form field: FORM_ABSENT or FORM_MALFORMED (page shown by the caller) or its length. */
static int field(struct ctx *x, const char *name, char *out, size_t cap)
{
	size_t len;
	const char *body = pd_request_body(x->req, &len);
	return form_value(body, len, name, out, cap);
}

/* A decimal number of 1..9 digits, nothing else. */
static bool parse_uint(const char *s, long *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 9)
		return false;
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* The body must be a urlencoded form; a client that says it sends another kind is told
 * so instead of having its body misread. */
static bool form_content_type_ok(struct ctx *x)
{
	size_t n;
	const char *ct = pd_request_header(x->req, "content-type", &n);
	static const char want[] = "application/x-www-form-urlencoded";
	if (ct == NULL)
		return true;
	return n >= sizeof(want) - 1 && strncasecmp(ct, want, sizeof(want) - 1) == 0 &&
	       (n == sizeof(want) - 1 || ct[sizeof(want) - 1] == ';' ||
	        ct[sizeof(want) - 1] == ' ');
}

/* POST /cart: product_id, quantity 1..10. */
static int add_to_cart(struct ctx *x)
{
	char id[80], qty[16];
	int ni = field(x, "product_id", id, sizeof(id));
	int nq = field(x, "quantity", qty, sizeof(qty));
	long q;
	if (ni == FORM_MALFORMED || nq == FORM_MALFORMED)
		return error_page(x, 400, "The form is malformed.", NULL);
	if (ni <= 0)
		return error_page(x, 400, "No product was given.", NULL);
	if (nq <= 0 || !parse_uint(qty, &q) || q < 1 || q > MAX_QUANTITY)
		return error_page(x, 400, "The quantity must be a number from 1 to 10.", qty);
	if (!product_id_ok(id, (size_t)ni))
		return error_page(x, 404, "There is no such product.", id);

	struct rpc r;
	rpc_start(x, &r, "productcatalog", "/GetProduct", one_string_request("id", id), 0);
	rpcs_wait(&r, 1);
	int rc;
	if (r.status == 404) {
		rc = error_page(x, 404, "There is no such product.", id);
	} else if (!rpc_ok(&r)) {
		rc = rpc_error_page(x, &r, "Could not get the product.");
	} else {
		rpcs_free(&r, 1);
		struct jb b = {0};
		struct json_object *o = jb_object(&b), *item = jb_object(&b);
		jb_set(&b, o, "user_id", jb_string(&b, x->session));
		jb_set(&b, o, "item", item);
		jb_set(&b, item, "product_id", jb_string(&b, id));
		jb_set(&b, item, "quantity", jb_int(&b, q));
		rpc_start(x, &r, "cart", "/AddItem", jb_end(&b, o), 0);
		rpcs_wait(&r, 1);
		if (r.status == 400)
			rc = error_page(x, 400, "The cart refused the item.", r.error);
		else if (!rpc_ok(&r))
			rc = rpc_error_page(x, &r, "Could not add the item to your cart.");
		else
			rc = redirect(x, "/cart");
	}
	rpcs_free(&r, 1);
	return rc;
}

/* POST /cart/empty */
static int empty_cart(struct ctx *x)
{
	struct rpc r;
	rpc_start(x, &r, "cart", "/EmptyCart", user_request(x), 0);
	rpcs_wait(&r, 1);
	int rc =
	    rpc_ok(&r) ? redirect(x, "/") : rpc_error_page(x, &r, "Could not empty your cart.");
	rpcs_free(&r, 1);
	return rc;
}

/* Where to go back after setting the currency: the referring page if it is one of this
 * site's (its path), else the home page. */
static void back_location(struct ctx *x, char *out, size_t cap)
{
	snprintf(out, cap, "/");
	size_t n;
	const char *ref = pd_request_header(x->req, "referer", &n);
	if (ref == NULL || n == 0 || n >= cap)
		return;
	const char *path = ref;
	size_t plen = n;
	size_t hn;
	const char *host = pd_request_header(x->req, "host", &hn);
	for (int s = 0; s < 2 && host != NULL; s++) {
		const char *scheme = s == 0 ? "http://" : "https://";
		size_t sl = strlen(scheme);
		if (n > sl + hn && strncasecmp(ref, scheme, sl) == 0 &&
		    strncasecmp(ref + sl, host, hn) == 0 && ref[sl + hn] == '/') {
			path = ref + sl + hn;
			plen = n - sl - hn;
		}
	}
	if (plen == 0 || path[0] != '/' || (plen > 1 && (path[1] == '/' || path[1] == '\\')))
		return;
	for (size_t i = 0; i < plen; i++)
		if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7f)
			return;
	memcpy(out, path, plen);
	out[plen] = '\0';
}

/* POST /setCurrency: currency_code, one the currency service lists. */
static int set_currency(struct ctx *x)
{
	char code[16];
	int n = field(x, "currency_code", code, sizeof(code));
	if (n == FORM_MALFORMED)
		return error_page(x, 400, "The form is malformed.", NULL);
	if (n <= 0 || !currency_code_ok(code, (size_t)n))
		return error_page(x, 400, "Unknown currency.", n > 0 ? code : NULL);
	struct rpc r;
	rpc_start(x, &r, "currency", "/GetSupportedCurrencies", json_object_new_object(), 0);
	rpcs_wait(&r, 1);
	int rc;
	if (!rpc_ok(&r)) {
		rc = rpc_error_page(x, &r, "Could not get the currencies.");
	} else if (!currency_listed(jget(r.reply, "currency_codes"), code)) {
		rc = error_page(x, 400, "Unknown currency.", code);
	} else {
		char cookie[96], location[512];
		snprintf(cookie, sizeof(cookie),
		         COOKIE_CURRENCY "=%s; Path=/; Max-Age=" COOKIE_MAX_AGE "; SameSite=Lax",
		         code);
		pd_response_set_header(x->res, "set-cookie", cookie);
		back_location(x, location, sizeof(location));
		rc = redirect(x, location);
	}
	rpcs_free(&r, 1);
	return rc;
}

/* The checkout form, checked before anything is charged. */
struct order_form {
	char email[FIELD_MAX], street[FIELD_MAX], city[FIELD_MAX], state[FIELD_MAX],
	    country[FIELD_MAX], card[FIELD_MAX];
	long zip, month, year, cvv;
};

static const char *read_order_form(struct ctx *x, struct order_form *f)
{
	char num[FIELD_MAX];
	struct {
		const char *name;
		char *out;
		size_t max;
	} text[] = {
	    {"email", f->email, 254},     {"street_address", f->street, 512},
	    {"city", f->city, 128},       {"state", f->state, 128},
	    {"country", f->country, 128}, {"credit_card_number", f->card, 64},
	};
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
		int n = field(x, text[i].name, text[i].out, FIELD_MAX);
		if (n == FORM_MALFORMED)
			return "The form is malformed.";
		if (n <= 0)
			return "Every field of the form is needed.";
		if ((size_t)n > text[i].max)
			return "A field of the form is too long.";
	}
	const char *at = strchr(f->email, '@');
	if (at == NULL || at == f->email || at[1] == '\0' || strchr(at + 1, '@') != NULL ||
	    strpbrk(f->email, " \t\r\n") != NULL)
		return "The e-mail address is not valid.";
	/* The card number: digits, with the spaces or dashes people type between groups. */
	size_t digits = 0;
	for (char *c = f->card; *c != '\0'; c++) {
		if (*c >= '0' && *c <= '9')
			f->card[digits++] = *c;
		else if (*c != ' ' && *c != '-')
			return "The credit card number is not valid.";
	}
	f->card[digits] = '\0';
	if (digits < 12 || digits > 19)
		return "The credit card number is not valid.";
	struct {
		const char *name;
		long *out, min, max;
		const char *why;
	} nums[] = {
	    {"zip_code", &f->zip, 0, 999999999, "The zip code must be a number."},
	    {"credit_card_expiration_month", &f->month, 1, 12, "The month must be 1 to 12."},
	    {"credit_card_expiration_year", &f->year, 1, 9999, "The year is not valid."},
	    {"credit_card_cvv", &f->cvv, 0, 9999, "The CVV must be 3 or 4 digits."},
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		int n = field(x, nums[i].name, num, sizeof(num));
		if (n == FORM_MALFORMED)
			return "The form is malformed.";
		if (n <= 0 || !parse_uint(num, nums[i].out) || *nums[i].out < nums[i].min ||
		    *nums[i].out > nums[i].max)
			return nums[i].why;
		if (nums[i].out == &f->cvv && (n < 3 || n > 4))
			return nums[i].why;
	}
	return NULL;
}

/* POST /cart/checkout: place the order, show its confirmation. */
static int checkout(struct ctx *x)
{
	struct order_form f;
	const char *bad = read_order_form(x, &f);
	if (bad != NULL)
		return error_page(x, 400, bad, NULL);
	struct rpc order;
	struct jb b = {0};
	struct json_object *req = jb_object(&b), *address = jb_object(&b), *card = jb_object(&b);
	jb_set(&b, req, "user_id", jb_string(&b, x->session));
	jb_set(&b, req, "user_currency", jb_string(&b, x->currency));
	jb_set(&b, req, "email", jb_string(&b, f.email));
	jb_set(&b, req, "address", address);
	jb_set(&b, address, "street_address", jb_string(&b, f.street));
	jb_set(&b, address, "city", jb_string(&b, f.city));
	jb_set(&b, address, "state", jb_string(&b, f.state));
	jb_set(&b, address, "country", jb_string(&b, f.country));
	jb_set(&b, address, "zip_code", jb_int(&b, (int)f.zip));
	jb_set(&b, req, "credit_card", card);
	jb_set(&b, card, "credit_card_number", jb_string(&b, f.card));
	jb_set(&b, card, "credit_card_cvv", jb_int(&b, (int)f.cvv));
	jb_set(&b, card, "credit_card_expiration_year", jb_int(&b, (int)f.year));
	jb_set(&b, card, "credit_card_expiration_month", jb_int(&b, (int)f.month));
	rpc_start(x, &order, "checkout", "/PlaceOrder", jb_end(&b, req), 0);
	rpcs_wait(&order, 1);
	if (order.status == 400) {
		int rc = error_page(x, 400, "The order was not placed.", order.error);
		rpcs_free(&order, 1);
		return rc;
	}
	struct json_object *o = jget(order.reply, "order");
	if (!rpc_ok(&order) || !json_object_is_type(o, json_type_object)) {
		if (order.status == 200) {
			order.status = 502;
			snprintf(order.error, sizeof(order.error), "no order in the answer");
		}
		int rc = rpc_error_page(x, &order, "The order could not be completed.");
		rpcs_free(&order, 1);
		return rc;
	}

	/* What was paid: shipping plus each item's cost times its quantity. */
	struct money total;
	bool sum_ok = money_from_json(jget(o, "shipping_cost"), &total);
	struct json_object *items = jget(o, "items");
	size_t nitems = 0, i;
	struct money costs[MAX_PRODUCTS];
	uint32_t quantity[MAX_PRODUCTS];
	struct rpc r[1];
	struct rpc r2[MAX_PRODUCTS + MAX_RECOMMENDATIONS];
	size_t n2 = 0, nrec = 0;
	for (i = 0; i < jlen(items); i++) {
		if (nitems == MAX_PRODUCTS)
			break;
		struct json_object *it = jat(items, i);
		int64_t q = jint(jget(jget(it, "item"), "quantity"));
		struct money line;
		costs[nitems] = (struct money){.currency_code = "", .units = 0};
		if (q <= 0 || q > 1000000 || !money_from_json(jget(it, "cost"), &costs[nitems]) ||
		    !money_multiply(&costs[nitems], (uint32_t)q, &line) ||
		    !money_add(&total, &line, &total))
			sum_ok = false;
		quantity[nitems++] = (uint32_t)(q > 0 ? q : 0);
	}

	/* The names of what was bought, and recommendations, for the confirmation page. */
	start_recommendations(x, &r[0], json_object_new_array());
	rpcs_wait(r, 1);
	for (i = 0; i < nitems; i++) {
		const char *pid = jstr(jget(jat(items, i), "item"), "product_id");
		rpc_start(x, &r2[n2++], "productcatalog", "/GetProduct",
		          one_string_request("id", pid), 0);
	}
	nrec = start_recommended_products(x, &r[0], &r2[n2]);
	rpcs_wait(r2, n2 + nrec);

	struct page p;
	int rc;
	if (!page_begin(x, &p)) {
		rc = -1;
		goto free_all;
	}
	put_head(&p, "Order complete");
	put_header(&p, x, NULL, -1);
	page_put(&p,
	         "<section class=\"order\"><h1>Your order is complete!</h1>"
	         "<p>A confirmation was sent to %s.</p><dl>"
	         "<dt>Confirmation #</dt><dd class=\"order-id\">%s</dd>"
	         "<dt>Tracking #</dt><dd class=\"tracking-id\">%s</dd>",
	         f.email, jstr(o, "order_id"), jstr(o, "shipping_tracking_id"));
	if (sum_ok)
		page_put(&p, "<dt>Total paid</dt><dd class=\"total-paid\">%m</dd>", &total);
	page_put(&p, "</dl><ul class=\"order-items\">");
	for (i = 0; i < nitems; i++) {
		const char *pid = jstr(jget(jat(items, i), "item"), "product_id");
		const char *name = pid;
		struct product pr;
		if (rpc_ok(&r2[i]) && product_from_json(r2[i].reply, &pr))
			name = pr.name;
		page_put(&p,
		         "<li class=\"order-item\"><span class=\"product-name\">%s</span> "
		         "<span class=\"quantity\">&times; %u</span> <span "
		         "class=\"price\">%m</span></li>",
		         name, quantity[i], &costs[i]);
	}
	page_put(&p,
	         "</ul><p><a class=\"button\" href=\"/\">Continue shopping</a></p></section>\n");
	put_recommendations(&p, &r2[n2], nrec);
	put_footer(&p, x);
	rc = page_end(x, &p, 200);
free_all:
	rpcs_free(r2, n2 + nrec);
	rpcs_free(r, 1);
	rpcs_free(&order, 1);
	return rc;
}

/* GET /logout: forget the session and the currency. */
static int logout(struct ctx *x)
{
	pd_response_set_header(x->res, "set-cookie",
	                       COOKIE_SESSION "=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
	pd_response_set_header(x->res, "set-cookie",
	                       COOKIE_CURRENCY "=; Path=/; Max-Age=0; SameSite=Lax");
	return redirect(x, "/");
}

/* ---- plain answers ------------------------------------------------------------------------ */

static int plain(pd_response *res, int status, const char *content_type, const void *body,
                 size_t len)
{
	pd_response_set_header(res, "content-type", content_type);
	if (pd_response_append(res, body, len) != 0)
		return pd_response_error(res, 500, "the file does not fit in a buffer\n");
	pd_response_set_status(res, status);
	return 0;
}

static int static_file(const pd_request *req, pd_response *res, const char *path, size_t len)
{
	/* Only names read at start-up can match; refusing ".." as well says so plainly. */
	for (size_t i = 0; i + 1 < len; i++)
		if (path[i] == '.' && path[i + 1] == '.')
			return pd_response_error(res, 400, "bad path\n");
	const struct static_file *f = statics_find(&statics, path, len);
	if (f == NULL)
		return pd_response_error(res, 404, "no such file\n");
	(void)req;
	pd_response_set_header(res, "cache-control", "public, max-age=3600");
	return plain(res, 200, f->content_type, f->data, f->len);
}

/* ---- routing --------------------------------------------------------------------------------- */

static bool path_is(const char *path, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(path, want, len) == 0;
}

static int method_not_allowed(struct ctx *x, const char *allow)
{
	pd_response_set_header(x->res, "allow", allow);
	return error_page(x, 405, "This page does not take that method.", NULL);
}

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	size_t plen, mlen;
	const char *path = pd_request_path(req, &plen);
	const char *method = pd_request_method(req, &mlen);
	bool get = (mlen == 3 && memcmp(method, "GET", 3) == 0) ||
	           (mlen == 4 && memcmp(method, "HEAD", 4) == 0);
	bool post = mlen == 4 && memcmp(method, "POST", 4) == 0;

	/* Answers that need no session. */
	if (plen >= 8 && memcmp(path, "/static/", 8) == 0) {
		if (!get)
			return pd_response_error(res, 405, "static files are read with GET\n");
		return static_file(req, res, path, plen);
	}
	if (path_is(path, plen, "/robots.txt")) {
		static const char robots[] = "User-agent: *\nDisallow: /\n";
		return plain(res, 200, "text/plain; charset=utf-8", robots, sizeof(robots) - 1);
	}
	if (path_is(path, plen, "/_healthz"))
		return plain(res, 200, "text/plain; charset=utf-8", "ok", 2);

	struct ctx x = {.req = req, .res = res};
	if (path_is(path, plen, "/logout"))
		return get ? logout(&x) : pd_response_error(res, 405, "use GET\n");
	int rc = start_session(&x);
	if (rc != 0)
		return pd_response_error(res, 500, "no random session id\n");
	pd_response_set_header(res, "content-type", "text/html; charset=utf-8");

	if (path_is(path, plen, "/"))
		return get ? home(&x) : method_not_allowed(&x, "GET, HEAD");
	if (plen > 9 && memcmp(path, "/product/", 9) == 0) {
		if (!get)
			return method_not_allowed(&x, "GET, HEAD");
		char id[80];
		size_t n = plen - 9;
		if (!product_id_ok(path + 9, n))
			return error_page(&x, 404, "There is no such product.", NULL);
		memcpy(id, path + 9, n);
		id[n] = '\0';
		return product_page(&x, id);
	}
	if (path_is(path, plen, "/cart")) {
		if (get)
			return cart_page(&x);
		if (!post)
			return method_not_allowed(&x, "GET, HEAD, POST");
		return form_content_type_ok(&x)
		           ? add_to_cart(&x)
		           : error_page(&x, 400, "Send the form urlencoded.", NULL);
	}
	bool is_empty = path_is(path, plen, "/cart/empty");
	bool is_checkout = path_is(path, plen, "/cart/checkout");
	bool is_currency = path_is(path, plen, "/setCurrency");
	if (is_empty || is_checkout || is_currency) {
		if (!post)
			return method_not_allowed(&x, "POST");
		if (!form_content_type_ok(&x))
			return error_page(&x, 400, "Send the form urlencoded.", NULL);
		return is_empty ? empty_cart(&x) : is_checkout ? checkout(&x) : set_currency(&x);
	}
	return error_page(&x, 404, "There is no such page.", NULL);
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s --static DIR\n", prog);
}

int main(int argc, char **argv)
{
	const char *static_dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--static") == 0 && i + 1 < argc) {
			static_dir = argv[++i];
		} else {
			usage(argv[0]);
			return 2;
		}
	}
	if (static_dir == NULL) {
		usage(argv[0]);
		return 2;
	}
	char why[300] = "";
	int rc = statics_load(&statics, static_dir, "/static", why, sizeof(why));
	if (rc != 0) {
		fprintf(stderr, "frontend: static files: %s: %s\n", why, strerror(-rc));
		return 1;
	}
	/* Seed json-c's hash function here, before pd_serve starts the handler threads: it
	 * draws the seed the first time a key is hashed. */
	json_object_put(json_tokener_parse("{\"seed\":0}"));
	rc = pd_serve(argc, argv, handle, NULL);
	statics_free(&statics);
	return rc;
}
