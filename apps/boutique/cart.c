/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cart: the users' carts in Redis (--redis HOST:PORT), one hash per user, `cart:<user_id>`,
 * product id -> quantity: /AddItem, /GetCart, /EmptyCart (docs/boutique.md). The cart
 * lives in Redis, not here, so it survives a restart of this function.
 *
 * Each handler thread has its own connection, made when it first needs one, with short
 * connect and command timeouts: Redis down or stuck answers 503 within them instead of
 * hanging the request, and the next request connects again.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "common.h"

#define REDIS_TIMEOUT_MS 500
#define MAX_ID_BYTES 256
#define MAX_QUANTITY 1000

static struct boutique_args args;
/* This thread's connection. A key rather than a thread-local variable: its destructor
 * closes the connection when a handler thread ends, so that nothing is left behind. */
static pthread_key_t redis_key;

static void close_connection(void *c)
{
	redisFree(c);
}

static redisContext *connection(void)
{
	redisContext *redis = pthread_getspecific(redis_key);
	if (redis != NULL)
		return redis;
	struct timeval tv = {.tv_sec = 0, .tv_usec = REDIS_TIMEOUT_MS * 1000};
	redisContext *c = redisConnectWithTimeout(args.redis_host, args.redis_port, tv);
	if (c == NULL)
		return NULL;
	if (c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK) {
		redisFree(c);
		return NULL;
	}
	if (pthread_setspecific(redis_key, c) != 0) {
		redisFree(c);
		return NULL;
	}
	return c;
}

/* After a failed command the connection's state is unknown (a reply may still come):
 * drop it, the next request makes a new one. */
static void drop_connection(redisContext *c)
{
	pthread_setspecific(redis_key, NULL);
	redisFree(c);
}

/*
 * A command's reply, or NULL if Redis could not be reached or did not answer in time
 * (the connection is dropped). A connection kept from earlier requests may have been
 * closed meanwhile by a Redis that restarted: the command never reached that Redis, so
 * it goes once more on a new connection. A timeout is not retried: Redis may be stuck,
 * and the request must not wait twice as long.
 */
static redisReply *command(const char *fmt, ...)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		bool reused = pthread_getspecific(redis_key) != NULL;
		redisContext *c = connection();
		if (c == NULL)
			return NULL;
		va_list ap;
		va_start(ap, fmt);
		redisReply *r = redisvCommand(c, fmt, ap);
		va_end(ap);
		if (r != NULL)
			return r;
		bool closed = c->err == REDIS_ERR_EOF ||
		              (c->err == REDIS_ERR_IO && (errno == ECONNRESET || errno == EPIPE));
		drop_connection(c);
		if (!reused || !closed)
			return NULL;
	}
	return NULL;
}

static int unavailable(pd_response *res)
{
	return boutique_error(res, 503, "cart storage unavailable");
}

/* Check a reply: 0 if its type is want, else an answer has been written (503 for no
 * reply, 500 for Redis's own error). */
static int check_reply(pd_response *res, redisReply *r, int want)
{
	if (r == NULL) {
		unavailable(res);
		return -1;
	}
	if (r->type != want) {
		if (r->type == REDIS_REPLY_ERROR)
			boutique_error(res, 500, "cart storage error: %.200s", r->str);
		else
			boutique_error(res, 500, "cart storage answered unexpectedly");
		freeReplyObject(r);
		return -1;
	}
	return 0;
}

/* The user id of the request: a string of 1..MAX_ID_BYTES bytes; NULL after a 400. */
static const char *user_id(pd_response *res, const struct json_object *in)
{
	const char *id = boutique_string(in, "user_id");
	if (id == NULL || id[0] == '\0' || strlen(id) > MAX_ID_BYTES) {
		boutique_error(res, 400, "expected \"user_id\": a string of 1..%d bytes",
		               MAX_ID_BYTES);
		return NULL;
	}
	return id;
}

static int add_item(pd_response *res, const struct json_object *in)
{
	const char *user = user_id(res, in);
	if (user == NULL)
		return 0;
	const struct json_object *item = json_object_object_get(in, "item");
	const char *product = boutique_string(item, "product_id");
	int64_t quantity;
	if (product == NULL || product[0] == '\0' || strlen(product) > MAX_ID_BYTES ||
	    boutique_int(item, "quantity", &quantity) != 0)
		return boutique_error(res, 400,
		                      "expected \"item\": {\"product_id\": string, \"quantity\": "
		                      "integer}");
	if (quantity < 1 || quantity > MAX_QUANTITY)
		return boutique_error(res, 400, "quantity must be 1..%d", MAX_QUANTITY);
	redisReply *r = command("HINCRBY cart:%s %s %lld", user, product, (long long)quantity);
	if (check_reply(res, r, REDIS_REPLY_INTEGER) != 0)
		return 0;
	freeReplyObject(r);
	return boutique_answer(res, 200, json_object_new_object());
}

static int by_product_id(const void *a, const void *b)
{
	const struct json_object *x = *(struct json_object *const *)a,
	                         *y = *(struct json_object *const *)b;
	return strcmp(boutique_string(x, "product_id"), boutique_string(y, "product_id"));
}

static int get_cart(pd_response *res, const struct json_object *in)
{
	const char *user = user_id(res, in);
	if (user == NULL)
		return 0;
	redisReply *r = command("HGETALL cart:%s", user);
	if (check_reply(res, r, REDIS_REPLY_ARRAY) != 0)
		return 0;
	size_t n = r->elements / 2;
	struct json_object **items = calloc(n > 0 ? n : 1, sizeof(*items));
	if (items == NULL) {
		freeReplyObject(r);
		return pd_response_error(res, 500, "out of memory\n");
	}
	size_t nitems = 0;
	for (size_t i = 0; i < n; i++) {
		const redisReply *k = r->element[2 * i], *v = r->element[2 * i + 1];
		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		char *end;
		errno = 0;
		long long q = strtoll(v->str, &end, 10);
		/* Only what this service wrote is shown: a positive count. */
		if (errno != 0 || end == v->str || *end != '\0' || q <= 0)
			continue;
		/* The ids are what AddItem stored from its (checked) JSON: valid UTF-8. */
		struct json_object *item = json_object_new_object();
		bool ok = boutique_add(item, "product_id",
		                       json_object_new_string_len(k->str, (int)k->len));
		ok &= boutique_add(item, "quantity", json_object_new_int64(q));
		if (ok)
			items[nitems++] = item;
		else
			json_object_put(item);
	}
	freeReplyObject(r);
	/* A stable order, whatever order Redis keeps the hash in. */
	qsort(items, nitems, sizeof(*items), by_product_id);
	struct json_object *list = json_object_new_array();
	for (size_t i = 0; i < nitems; i++)
		if (list == NULL || json_object_array_add(list, items[i]) != 0)
			json_object_put(items[i]);
	free(items);
	struct json_object *out = json_object_new_object();
	bool ok = boutique_add(out, "user_id", json_object_new_string(user));
	ok &= boutique_add(out, "items", list);
	if (!ok) {
		json_object_put(out);
		out = NULL;
	}
	return boutique_answer(res, 200, out);
}

static int empty_cart(pd_response *res, const struct json_object *in)
{
	const char *user = user_id(res, in);
	if (user == NULL)
		return 0;
	redisReply *r = command("DEL cart:%s", user);
	if (check_reply(res, r, REDIS_REPLY_INTEGER) != 0)
		return 0;
	freeReplyObject(r);
	return boutique_answer(res, 200, json_object_new_object());
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
	if (strcmp(method, "AddItem") == 0)
		rc = add_item(res, in);
	else if (strcmp(method, "GetCart") == 0)
		rc = get_cart(res, in);
	else if (strcmp(method, "EmptyCart") == 0)
		rc = empty_cart(res, in);
	else
		rc = boutique_unknown_method(res, method);
	json_object_put(in);
	return rc;
}

int main(int argc, char **argv)
{
	if (boutique_args_parse(argc, argv, &args) != 0)
		return 1;
	/* hiredis writes with write(): a Redis gone away must give EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (pthread_key_create(&redis_key, close_connection) != 0) {
		fprintf(stderr, "cart: pthread_key_create failed\n");
		return 1;
	}
	/* Seed json-c's hash function here, before pd_serve starts the handler threads. */
	boutique_json_init();
	return pd_serve(argc, argv, handle, NULL);
}
