/* SPDX-License-Identifier: Apache-2.0 */
/*
 * email: /SendOrderConfirmation {"email", "order": OrderResult} writes one line about the
 * order on stderr (the function's log) and sends nothing (docs/boutique.md).
 */
#include <stdio.h>
#include <string.h>

#include "common.h"

static int send_confirmation(pd_response *res, const struct json_object *in)
{
	const char *email = boutique_string(in, "email");
	const struct json_object *order = json_object_object_get(in, "order");
	if (email == NULL || email[0] == '\0' || strchr(email, '@') == NULL)
		return boutique_error(res, 400, "expected \"email\": an address with an @");
	if (!boutique_is_object(order))
		return boutique_error(res, 400, "expected \"order\": an object");
	const char *id = boutique_string(order, "order_id");
	/* The one line the contract asks for: printable characters only, bounded. */
	char who[128], what[64];
	snprintf(who, sizeof(who), "%s", email);
	snprintf(what, sizeof(what), "%s", id != NULL ? id : "?");
	for (char *p = who; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
	for (char *p = what; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
	fprintf(stderr, "email: confirmation of order %s to %s (not sent)\n", what, who);
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
	if (strcmp(method, "SendOrderConfirmation") == 0)
		rc = send_confirmation(res, in);
	else
		rc = boutique_unknown_method(res, method);
	json_object_put(in);
	return rc;
}

int main(int argc, char **argv)
{
	struct boutique_args args;
	if (boutique_args_parse(argc, argv, &args) != 0)
		return 1;
	/* Seed json-c's hash function here, before pd_serve starts the handler threads. */
	boutique_json_init();
	return pd_serve(argc, argv, handle, NULL);
}
