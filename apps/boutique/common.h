/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the Online Boutique services share (docs/boutique.md): JSON bodies in and out of
 * requests and calls, errors as {"error": "..."}, money in units + nanos, and the
 * command-line arguments of the cluster file's `args:`.
 *
 * Every function here is thread-safe: the services run several handler threads.
 */
#ifndef BOUTIQUE_COMMON_H
#define BOUTIQUE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <palladium/function.h>

/* ---- Arguments (`args:` in the cluster file) ---- */

struct boutique_args {
	const char *data_dir;   /* --data DIR: products.json, currencies.json; default "data" */
	const char *static_dir; /* --static DIR (the frontend's); NULL if not given */
	char redis_host[256];   /* --redis HOST:PORT; default 127.0.0.1:6379 */
	int redis_port;
};

/*
 * Parse argv[1..argc-1] into *args (defaults first). Returns 0, or -1 after printing on
 * stderr what is wrong (an unknown argument, a missing value, a bad HOST:PORT).
 */
int boutique_args_parse(int argc, char **argv, struct boutique_args *args);

/*
 * Parse the JSON text[0..len) (NUL-terminated or not) with json-c, as strictly as jansson
 * did: the whole text is one value, no NUL bytes, no \u0000, integers within 64 bits,
 * strict JSON only. The value, or NULL with *why a static reason. A JSON null parses to
 * NULL too (json-c's null is the NULL pointer) with *why NULL.
 */
struct json_object *boutique_parse(const char *text, size_t len, const char **why);

/* Read and parse the JSON file DIR/NAME; NULL (with the reason on stderr) on failure. */
struct json_object *boutique_load_json(const char *dir, const char *name);

/* ---- Requests and answers ---- */

/*
 * The method of a request: the last segment of its path, without the query, so that a
 * call to `/GetCart` and a route's `/svc/cart/GetCart` both give "GetCart". Copied into
 * buf (NUL-terminated); an empty string if the path has none or it does not fit.
 */
void boutique_method(const pd_request *req, char *buf, size_t size);

/*
 * The request's body as a JSON object: an empty body reads as {}. NULL when it is not
 * a JSON object; an answer 400 {"error": ...} has then been written to res.
 */
struct json_object *boutique_request_object(const pd_request *req, pd_response *res);

/*
 * Answer the JSON value v (freed, NULL allowed: 500) with status and content-type
 * application/json. Returns what the handler returns.
 */
int boutique_answer(pd_response *res, int status, struct json_object *v);

/* Answer status with {"error": message (printf format)}. Returns what the handler returns. */
int boutique_error(pd_response *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The unknown method's 404. */
int boutique_unknown_method(pd_response *res, const char *method);

/*
 * json-c reads a JSON null as the NULL pointer, so json_object_object_get cannot tell a
 * null member from an absent one: boutique_has can (what jansson's non-NULL null did).
 */
static inline bool boutique_has(const struct json_object *obj, const char *key)
{
	return json_object_object_get_ex(obj, key, NULL);
}
static inline bool boutique_is_object(const struct json_object *v)
{
	return json_object_is_type(v, json_type_object);
}
static inline bool boutique_is_array(const struct json_object *v)
{
	return json_object_is_type(v, json_type_array);
}
static inline bool boutique_is_string(const struct json_object *v)
{
	return json_object_is_type(v, json_type_string);
}

/* The length of the array v, 0 if v is not an array (json-c asserts, jansson said 0). */
static inline size_t boutique_array_size(const struct json_object *v)
{
	return boutique_is_array(v) ? json_object_array_length(v) : 0;
}

/* jansson's json_array_foreach: each element of array (none if it is not an array). */
#define boutique_array_foreach(array, index, value)                                                \
	for ((index) = 0; (index) < boutique_array_size(array) &&                                  \
	                  ((value) = json_object_array_get_idx((array), (index)), true);           \
	     (index)++)

/* ---- Building values ---- */

/*
 * Add the member key: v to obj, taking v (as jansson's json_pack "o" did): true, or false
 * (v released) when obj or v is NULL (out of memory) or the add fails. Chained with &=
 * so that every v is taken even after a failure.
 */
bool boutique_add(struct json_object *obj, const char *key, struct json_object *v);
/* {key: v}, taking v; NULL when v is NULL or out of memory. */
struct json_object *boutique_object1(const char *key, struct json_object *v);
/* {k1: v1, k2: v2}, taking both; NULL when either is NULL or out of memory. */
struct json_object *boutique_object2(const char *k1, struct json_object *v1, const char *k2,
                                     struct json_object *v2);
/* json_object_new_string of s, or NULL when s is NULL (json-c would make a JSON null). */
struct json_object *boutique_new_string(const char *s);
/* v as compact JSON text (jansson's json_dumps with JSON_COMPACT), malloc'd; NULL when
 * v is NULL or out of memory. */
char *boutique_dumps(struct json_object *v);
/* A new reference to v (jansson's "O"); NULL stays NULL. */
static inline struct json_object *boutique_ref(const struct json_object *v)
{
	return json_object_get((struct json_object *)v);
}

/*
 * Warm json-c's string hash up (its random seed) before pd_serve starts the handler
 * threads, as the services seeded jansson's hash before.
 */
void boutique_json_init(void);

/* ---- Reading fields ---- */

/* obj's string member key: its value, or NULL if absent or not a string. */
const char *boutique_string(const struct json_object *obj, const char *key);
/* obj's integer member key into *out: 0, or -1 if absent or not an integer. */
int boutique_int(const struct json_object *obj, const char *key, int64_t *out);

/* ---- Calls ---- */

/*
 * Start a call to function's method (path "/<method>") with the JSON body v (freed),
 * and send it. Returns the call, sent or already finished (pd_call_status says why),
 * or NULL when out of memory, v is NULL or v does not fit in a buffer (the call is then
 * not made). Call it on the handler thread of req, like every pd_call_*.
 */
pd_call *boutique_call_start(const pd_request *req, const char *function, const char *method,
                             struct json_object *v);

/*
 * The answer of a finished call: its status (0 if c is NULL), and in *answer the JSON
 * object it answered when the status is 200 (else NULL; a 200 without a JSON object
 * counts as 502). When the status is not 200, why gets a short text: the callee's
 * "error" member, or its text body.
 */
int boutique_call_result(pd_call *c, struct json_object **answer, char *why, size_t why_size);

/* The blocking one-liner: start, wait, result, release. */
int boutique_call(const pd_request *req, const char *function, const char *method,
                  struct json_object *v, struct json_object **answer, char *why, size_t why_size);

/* ---- Money ---- */

#define BOUTIQUE_NANOS_PER_UNIT 1000000000
/* The largest |units| an amount may have: products of amounts and rates stay within
 * 128-bit integers (10^12 units * 10^9 nanos * rates up to 10^6 * 10^9). */
#define BOUTIQUE_MAX_UNITS INT64_C(1000000000000)

struct boutique_money {
	char currency_code[4]; /* three upper-case letters, NUL-terminated */
	int64_t units;
	int32_t nanos; /* same sign as units (or units 0), |nanos| < 10^9 */
};

/* Three upper-case ASCII letters. */
bool boutique_currency_code_valid(const char *code);

/*
 * *m from the JSON Money {"currency_code", "units", "nanos"}: 0, or -EINVAL if a member
 * is missing or of the wrong type, the code is not three upper-case letters, |nanos| >=
 * 10^9, the signs of units and nanos differ, or -ERANGE if |units| > BOUTIQUE_MAX_UNITS.
 */
int boutique_money_from_json(const struct json_object *j, struct boutique_money *m);
/* The JSON Money of m; NULL when out of memory. */
struct json_object *boutique_money_to_json(const struct boutique_money *m);

/* Whether m is well formed (the checks of boutique_money_from_json). */
bool boutique_money_valid(const struct boutique_money *m);

/* *out = a + b: 0, -EINVAL if the currencies differ, -ERANGE if the sum is too large. */
int boutique_money_add(const struct boutique_money *a, const struct boutique_money *b,
                       struct boutique_money *out);
/* *out = a * k: 0, or -ERANGE if the product is too large. */
int boutique_money_mul(const struct boutique_money *a, int64_t k, struct boutique_money *out);

/*
 * Rates are fixed-point: how many nanos of a currency one unit of the base currency
 * buys (1.0842 USD per EUR is 1084200000). Converting multiplies by to_rate / from_rate
 * and rounds to the nearest nano, halves away from zero. 0, -EINVAL if a rate is not
 * positive, -ERANGE if the result is too large. out->currency_code is to_code.
 */
int boutique_money_convert(const struct boutique_money *from, int64_t from_rate,
                           const char *to_code, int64_t to_rate, struct boutique_money *out);

/* A rate of the currency table (a JSON number, at most 10^6) as fixed-point nanos:
 * 0, or -EINVAL. */
int boutique_rate_from_json(const struct json_object *j, int64_t *rate);

/* ---- Identifiers ---- */

/* A random UUID (version 4) into buf[37]. */
void boutique_uuid(char buf[37]);
/* A random number below bound (bound > 0), from the kernel's random source. */
uint64_t boutique_random_below(uint64_t bound);

#endif
