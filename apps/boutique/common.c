/* SPDX-License-Identifier: Apache-2.0 */
/* What the Online Boutique services share: JSON bodies, errors, calls, money, arguments. */
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ------------------------------------------------------------------------ arguments */

static int parse_host_port(const char *s, struct boutique_args *args)
{
	const char *colon = strrchr(s, ':');
	if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof(args->redis_host))
		return -1;
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
		return -1;
	memcpy(args->redis_host, s, (size_t)(colon - s));
	args->redis_host[colon - s] = '\0';
	args->redis_port = (int)port;
	return 0;
}

int boutique_args_parse(int argc, char **argv, struct boutique_args *args)
{
	*args = (struct boutique_args){.data_dir = "data", .redis_port = 6379};
	strcpy(args->redis_host, "127.0.0.1");
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--data") != 0 && strcmp(arg, "--static") != 0 &&
		    strcmp(arg, "--redis") != 0) {
			fprintf(stderr,
			        "%s: unknown argument '%s' (expected --data DIR, --static DIR, "
			        "--redis HOST:PORT)\n",
			        argv[0], arg);
			return -1;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "%s: %s needs a value\n", argv[0], arg);
			return -1;
		}
		const char *value = argv[++i];
		if (strcmp(arg, "--data") == 0) {
			args->data_dir = value;
		} else if (strcmp(arg, "--static") == 0) {
			args->static_dir = value;
		} else if (parse_host_port(value, args) != 0) {
			fprintf(stderr, "%s: --redis '%s': expected HOST:PORT\n", argv[0], value);
			return -1;
		}
	}
	return 0;
}

/* jansson's limit on nesting, which the services had before json-c (whose default is 32). */
#define MAX_DEPTH 2048

/*
 * What jansson rejected and json-c's tokener lets through, even strict: integers beyond
 * 64 bits (json-c saturates them), reals that overflow to infinity, and strings with
 * \u0000 in them. Returns the reason, or NULL if v is fine.
 */
static const char *check_tree(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_int:
		/* A number above INT64_MAX is kept as uint64; one below INT64_MIN saturates
		 * to it and cannot be told apart (the services' range checks reject it). */
		if (json_object_get_int64(v) == INT64_MAX && json_object_get_uint64(v) > INT64_MAX)
			return "too big integer";
		return NULL;
	case json_type_double:
		if (!isfinite(json_object_get_double(v)))
			return "real number overflow";
		/* json-c would write a parsed real back as its text was (1e5, 0.1); jansson
		 * wrote %.17g with ".0" on whole numbers, as json-c's own serializer does. */
		json_object_set_serializer(v, NULL, NULL, NULL);
		return NULL;
	case json_type_string:
		if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
			return "\\u0000 is not allowed";
		return NULL;
	case json_type_array: {
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++) {
			const char *why = check_tree(json_object_array_get_idx(v, i));
			if (why != NULL)
				return why;
		}
		return NULL;
	}
	case json_type_object: {
		json_object_object_foreach(v, key, member)
		{
			(void)key;
			const char *why = check_tree(member);
			if (why != NULL)
				return why;
		}
		return NULL;
	}
	default: return NULL;
	}
}

/* Whether s is UTF-8 as jansson's json_string checked it: no overlong forms, no
 * surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		unsigned c = *p;
		int n;
		uint32_t cp, min;
		if (c < 0x80) {
			p++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (end - p <= n)
			return false;
		for (int i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n + 1;
	}
	return true;
}

/* The escape at p (after its backslash): 1 if it is \u of a first half of a surrogate
 * pair, 2 of a second half, 0 if something else. */
static int surrogate(const char *p, size_t len)
{
	if (len < 5 || p[0] != 'u' || (p[1] != 'd' && p[1] != 'D'))
		return 0;
	char c = p[2];
	if ((c >= '8' && c <= '9') || (c >= 'a' && c <= 'b') || (c >= 'A' && c <= 'B'))
		return 1;
	if ((c >= 'c' && c <= 'f') || (c >= 'C' && c <= 'F'))
		return 2;
	return 0;
}

/*
 * What json-c's tokener takes even when strict and JSON (and jansson) does not, seen in
 * the text: 'single-quoted' strings, control characters inside strings, and bytes that
 * are not UTF-8 (its own check lets overlong forms through). The reason, or NULL.
 */
static const char *scan_text(const char *text, size_t len)
{
	if (!utf8_valid(text, len))
		return "invalid UTF-8";
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (in_string) {
			if (c < 0x20)
				return "control character in a string";
			if (c == '\\') {
				/* json-c takes a lone half of a surrogate pair. */
				int half = surrogate(text + i + 1, len - i - 1);
				if (half == 2)
					return "unpaired surrogate";
				if (half == 1) {
					if (surrogate(text + i + 7, len - (i + 7)) != 2)
						return "unpaired surrogate";
					i += 6;
				}
				i++;
			} else if (c == '"') {
				in_string = false;
			}
		} else if (c == '"') {
			in_string = true;
		} else if (c == '\'') {
			return "single quotes are not JSON";
		} else if (c == '.' && (i + 1 == len || text[i + 1] < '0' || text[i + 1] > '9')) {
			/* json-c takes "1." as a real. */
			return "a fraction needs digits";
		}
	}
	return NULL;
}

struct json_object *boutique_parse(const char *text, size_t len, const char **why)
{
	*why = NULL;
	if (memchr(text, '\0', len) != NULL) {
		*why = "NUL byte in the input";
		return NULL;
	}
	if (len > INT_MAX) {
		*why = "input too large";
		return NULL;
	}
	*why = scan_text(text, len);
	if (*why != NULL)
		return NULL;
	struct json_tokener *tok = json_tokener_new_ex(MAX_DEPTH);
	if (tok == NULL) {
		*why = "out of memory";
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *v = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	/* A number at the very end of the input waits for what follows it: the end of
	 * the input is told with a NUL. */
	if (v == NULL && e == json_tokener_continue) {
		v = json_tokener_parse_ex(tok, "", 1);
		e = json_tokener_get_error(tok);
		end = len;
	}
	if (e != json_tokener_success) {
		*why = e == json_tokener_continue ? "unexpected end of input"
		                                  : json_tokener_error_desc(e);
		json_object_put(v);
		v = NULL;
	} else {
		/* What follows the value may only be white space. */
		while (end < len && (text[end] == ' ' || text[end] == '\n' || text[end] == '\r' ||
		                     text[end] == '\t'))
			end++;
		if (end != len)
			*why = "end of file expected";
		else
			*why = check_tree(v);
		if (*why != NULL) {
			json_object_put(v);
			v = NULL;
		}
	}
	json_tokener_free(tok);
	return v;
}

struct json_object *boutique_load_json(const char *dir, const char *name)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		fprintf(stderr, "boutique: path %s/%s too long\n", dir, name);
		return NULL;
	}
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "boutique: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	char *text = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap > 0 ? 2 * cap : 65536;
			char *more = realloc(text, cap);
			if (more == NULL) {
				free(text);
				fclose(f);
				fprintf(stderr, "boutique: %s: out of memory\n", path);
				return NULL;
			}
			text = more;
		}
		size_t got = fread(text + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	bool failed = ferror(f) != 0;
	fclose(f);
	if (failed) {
		free(text);
		fprintf(stderr, "boutique: %s: read error\n", path);
		return NULL;
	}
	const char *why;
	struct json_object *v = boutique_parse(text, len, &why);
	free(text);
	if (v == NULL)
		fprintf(stderr, "boutique: %s: %s\n", path, why);
	return v;
}

/* ---------------------------------------------------------------- requests, answers */

void boutique_method(const pd_request *req, char *buf, size_t size)
{
	size_t len;
	const char *path = pd_request_path(req, &len);
	const char *q = memchr(path, '?', len);
	if (q != NULL)
		len = (size_t)(q - path);
	/* A trailing slash does not start a new segment: /svc/cart/GetCart/ is GetCart. */
	while (len > 0 && path[len - 1] == '/')
		len--;
	size_t start = len;
	while (start > 0 && path[start - 1] != '/')
		start--;
	size_t n = len - start;
	if (n >= size)
		n = 0;
	memcpy(buf, path + start, n);
	buf[n] = '\0';
}

struct json_object *boutique_request_object(const pd_request *req, pd_response *res)
{
	size_t len;
	const char *body = pd_request_body(req, &len);
	size_t i = 0;
	while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
		i++;
	if (i == len)
		return json_object_new_object();
	const char *why;
	struct json_object *v = boutique_parse(body, len, &why);
	if (v == NULL) {
		boutique_error(res, 400, "invalid JSON: %s", why);
		return NULL;
	}
	if (!json_object_is_type(v, json_type_object)) {
		json_object_put(v);
		boutique_error(res, 400, "the body must be a JSON object");
		return NULL;
	}
	return v;
}

/* v compact (as jansson's JSON_COMPACT wrote it) into buf of cap bytes: its length, or 0
 * when out of memory, or more than cap when it does not fit. json-c writes into the
 * object's own buffer; the copy is what jansson's json_dumpb did in place. */
static size_t dump_into(struct json_object *v, char *buf, size_t cap)
{
	size_t n;
	const char *text = json_object_to_json_string_length(
	    v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	if (text == NULL)
		return 0;
	if (n <= cap)
		memcpy(buf, text, n);
	return n;
}

/* The header goes first: reserving all the room would leave none for it. */
int boutique_answer(pd_response *res, int status, struct json_object *v)
{
	if (v == NULL)
		return pd_response_error(res, 500, "out of memory\n");
	pd_response_set_header(res, "content-type", "application/json");
	size_t cap = pd_response_capacity(res);
	char *out = pd_response_reserve(res, cap);
	size_t n = out != NULL ? dump_into(v, out, cap) : 0;
	json_object_put(v);
	if (out == NULL)
		return -1; /* no free buffer: the platform answers 503 */
	if (n == 0 || n >= cap)
		return pd_response_error(res, 500, "the answer does not fit in a buffer\n");
	out[n++] = '\n';
	pd_response_commit(res, n);
	pd_response_set_status(res, status);
	return 0;
}

int boutique_error(pd_response *res, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A message cut in the middle of a UTF-8 sequence (or not UTF-8 at all, from a
	 * callee) is no JSON string: fall back on a plain one, as jansson's json_string
	 * refused it. */
	return boutique_answer(
	    res, status,
	    boutique_object1("error", json_object_new_string(
	                                  utf8_valid(msg, strlen(msg)) ? msg : "invalid request")));
}

int boutique_unknown_method(pd_response *res, const char *method)
{
	return boutique_error(res, 404, "unknown method '%s'", method);
}

/* --------------------------------------------------------------------------- fields */

const char *boutique_string(const struct json_object *obj, const char *key)
{
	struct json_object *v = json_object_object_get(obj, key);
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

int boutique_int(const struct json_object *obj, const char *key, int64_t *out)
{
	const struct json_object *v = json_object_object_get(obj, key);
	if (!json_object_is_type(v, json_type_int))
		return -1;
	*out = json_object_get_int64(v);
	return 0;
}

/* ----------------------------------------------------------------------- building */

bool boutique_add(struct json_object *obj, const char *key, struct json_object *v)
{
	if (obj == NULL || v == NULL || json_object_object_add(obj, key, v) != 0) {
		json_object_put(v);
		return false;
	}
	return true;
}

struct json_object *boutique_object1(const char *key, struct json_object *v)
{
	struct json_object *obj = json_object_new_object();
	if (!boutique_add(obj, key, v)) {
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

struct json_object *boutique_object2(const char *k1, struct json_object *v1, const char *k2,
                                     struct json_object *v2)
{
	struct json_object *obj = json_object_new_object();
	bool ok = boutique_add(obj, k1, v1);
	ok &= boutique_add(obj, k2, v2);
	if (!ok) {
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

struct json_object *boutique_new_string(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}

char *boutique_dumps(struct json_object *v)
{
	if (v == NULL)
		return NULL;
	const char *text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
	                                                         JSON_C_TO_STRING_NOSLASHESCAPE);
	return text != NULL ? strdup(text) : NULL;
}

void boutique_json_init(void)
{
	json_object_put(boutique_object1("seed", json_object_new_int(0)));
}

/* ---------------------------------------------------------------------------- calls */

pd_call *boutique_call_start(const pd_request *req, const char *function, const char *method,
                             struct json_object *v)
{
	if (v == NULL)
		return NULL;
	pd_call *c = pd_call_start(req, function);
	if (c == NULL || pd_call_status(c) != 0) {
		json_object_put(v);
		return c;
	}
	char path[128];
	snprintf(path, sizeof(path), "/%s", method);
	pd_call_set_path(c, path, NULL);
	pd_call_set_header(c, "content-type", "application/json");
	size_t cap = pd_call_capacity(c);
	char *room = pd_call_reserve(c, cap);
	size_t n = room != NULL ? dump_into(v, room, cap) : 0;
	json_object_put(v);
	if (n == 0 || n > cap) {
		/* The body does not fit in a buffer: the call is not made at all. */
		pd_call_release(c);
		return NULL;
	}
	pd_call_commit(c, n);
	pd_call_send(c);
	return c;
}

static void text_of(const char *body, size_t len, char *why, size_t size)
{
	while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == ' ' || body[len - 1] == '\r'))
		len--;
	if (len >= size)
		len = size - 1;
	for (size_t i = 0; i < len; i++)
		why[i] = body[i] >= 0x20 && body[i] < 0x7f ? body[i] : '?';
	why[len] = '\0';
}

int boutique_call_result(pd_call *c, struct json_object **answer, char *why, size_t why_size)
{
	*answer = NULL;
	if (why_size > 0)
		why[0] = '\0';
	if (c == NULL) {
		snprintf(why, why_size, "out of memory or request too large");
		return 0;
	}
	int status = pd_call_status(c);
	size_t len;
	const char *body = pd_call_body(c, &len);
	const char *ignored;
	struct json_object *v = boutique_parse(body, len, &ignored);
	if (status == 200) {
		if (json_object_is_type(v, json_type_object)) {
			*answer = v;
			return 200;
		}
		json_object_put(v);
		snprintf(why, why_size, "the answer is not a JSON object");
		return 502;
	}
	const char *err = boutique_string(v, "error");
	if (err != NULL)
		text_of(err, strlen(err), why, why_size);
	else
		text_of(body, len, why, why_size);
	json_object_put(v);
	return status;
}

int boutique_call(const pd_request *req, const char *function, const char *method,
                  struct json_object *v, struct json_object **answer, char *why, size_t why_size)
{
	pd_call *c = boutique_call_start(req, function, method, v);
	if (c != NULL)
		pd_call_wait(c);
	int status = boutique_call_result(c, answer, why, why_size);
	pd_call_release(c);
	return status;
}

/* ---------------------------------------------------------------------------- money */

#define NANOS BOUTIQUE_NANOS_PER_UNIT

bool boutique_currency_code_valid(const char *code)
{
	if (code == NULL)
		return false;
	for (int i = 0; i < 3; i++)
		if (code[i] < 'A' || code[i] > 'Z')
			return false;
	return code[3] == '\0';
}

bool boutique_money_valid(const struct boutique_money *m)
{
	if (!boutique_currency_code_valid(m->currency_code))
		return false;
	if (m->nanos <= -NANOS || m->nanos >= NANOS)
		return false;
	if ((m->units > 0 && m->nanos < 0) || (m->units < 0 && m->nanos > 0))
		return false;
	return m->units >= -BOUTIQUE_MAX_UNITS && m->units <= BOUTIQUE_MAX_UNITS;
}

int boutique_money_from_json(const struct json_object *j, struct boutique_money *m)
{
	const char *code = boutique_string(j, "currency_code");
	int64_t units, nanos;
	if (!json_object_is_type(j, json_type_object) || !boutique_currency_code_valid(code) ||
	    boutique_int(j, "units", &units) != 0)
		return -EINVAL;
	/* nanos may be left out, as proto3 leaves out zero fields. */
	if (!json_object_object_get_ex(j, "nanos", NULL))
		nanos = 0;
	else if (boutique_int(j, "nanos", &nanos) != 0)
		return -EINVAL;
	if (nanos <= -NANOS || nanos >= NANOS || (units > 0 && nanos < 0) ||
	    (units < 0 && nanos > 0))
		return -EINVAL;
	if (units < -BOUTIQUE_MAX_UNITS || units > BOUTIQUE_MAX_UNITS)
		return -ERANGE;
	memcpy(m->currency_code, code, 4);
	m->units = units;
	m->nanos = (int32_t)nanos;
	return 0;
}

struct json_object *boutique_money_to_json(const struct boutique_money *m)
{
	struct json_object *v = json_object_new_object();
	bool ok = boutique_add(v, "currency_code", json_object_new_string(m->currency_code));
	ok &= boutique_add(v, "units", json_object_new_int64(m->units));
	ok &= boutique_add(v, "nanos", json_object_new_int(m->nanos));
	if (!ok) {
		json_object_put(v);
		return NULL;
	}
	return v;
}

static __int128 total_nanos(const struct boutique_money *m)
{
	return (__int128)m->units * NANOS + m->nanos;
}

/* Split a total in nanos into units and nanos of the same sign: C's division truncates
 * toward zero, so quotient and remainder both take the sign of the total. */
static int from_total(__int128 total, const char *code, struct boutique_money *out)
{
	__int128 units = total / NANOS;
	if (units < -BOUTIQUE_MAX_UNITS || units > BOUTIQUE_MAX_UNITS)
		return -ERANGE;
	memcpy(out->currency_code, code, 4);
	out->units = (int64_t)units;
	out->nanos = (int32_t)(total % NANOS);
	return 0;
}

int boutique_money_add(const struct boutique_money *a, const struct boutique_money *b,
                       struct boutique_money *out)
{
	if (strcmp(a->currency_code, b->currency_code) != 0)
		return -EINVAL;
	char code[4];
	memcpy(code, a->currency_code, 4); /* out may be a or b */
	return from_total(total_nanos(a) + total_nanos(b), code, out);
}

int boutique_money_mul(const struct boutique_money *a, int64_t k, struct boutique_money *out)
{
	/* Both factors are bounded (10^21 nanos, and k checked here) so the product fits. */
	if (k < -BOUTIQUE_MAX_UNITS || k > BOUTIQUE_MAX_UNITS)
		return -ERANGE;
	char code[4];
	memcpy(code, a->currency_code, 4);
	return from_total(total_nanos(a) * k, code, out);
}

#define MAX_RATE (INT64_C(1000000) * NANOS)

int boutique_money_convert(const struct boutique_money *from, int64_t from_rate,
                           const char *to_code, int64_t to_rate, struct boutique_money *out)
{
	if (from_rate <= 0 || to_rate <= 0 || from_rate > MAX_RATE || to_rate > MAX_RATE ||
	    !boutique_currency_code_valid(to_code))
		return -EINVAL;
	/* |total| <= 10^21 and to_rate <= 10^15: the product stays below 2^127. */
	__int128 num = total_nanos(from) * to_rate;
	__int128 q = num / from_rate;
	__int128 r = num % from_rate;
	/* Round half away from zero: compare twice the remainder with the divisor. */
	if (r < 0 ? -2 * r >= from_rate : 2 * r >= from_rate)
		q += r < 0 ? -1 : 1;
	char code[4];
	memcpy(code, to_code, 4);
	return from_total(q, code, out);
}

int boutique_rate_from_json(const struct json_object *j, int64_t *rate)
{
	if (!json_object_is_type(j, json_type_double) && !json_object_is_type(j, json_type_int))
		return -EINVAL;
	double v = json_object_get_double(j);
	/* A decimal of the table, like 1.0842, is a double within 10^-16 of it: rounding
	 * to the nano gives back the decimal exactly. */
	if (!(v > 0) || v > 1e6)
		return -EINVAL;
	long long r = llround(v * 1e9);
	if (r <= 0)
		return -EINVAL;
	*rate = r;
	return 0;
}

/* ---------------------------------------------------------------------- identifiers */

static void random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			/* getrandom does not fail once the pool is ready; ids need not be
			 * secret, so something unique enough will do. */
			for (size_t i = 0; i < n; i++)
				p[i] = (unsigned char)rand();
			return;
		}
		p += got;
		n -= (size_t)got;
	}
}

void boutique_uuid(char buf[37])
{
	unsigned char b[16];
	random_bytes(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	         b[13], b[14], b[15]);
}

uint64_t boutique_random_below(uint64_t bound)
{
	/* Rejection sampling: no bias toward small values. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
	uint64_t x;
	do
		random_bytes(&x, sizeof(x));
	while (x >= limit);
	return x % bound;
}
