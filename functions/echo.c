/* SPDX-License-Identifier: Apache-2.0 */
/* echo: answers with the request body, unchanged. */
#include <string.h>

#include <palladium/function.h>

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	size_t n;
	const char *in = pd_request_body(req, &n);
	char *out = pd_response_reserve(res, n);
	if (out == NULL)
		return pd_response_error(res, 413, "body too large\n");
	memcpy(out, in, n);
	pd_response_commit(res, n);
	size_t ctlen;
	const char *ct = pd_request_header(req, "content-type", &ctlen);
	if (ct != NULL && ctlen < 128) {
		char value[128];
		memcpy(value, ct, ctlen);
		value[ctlen] = '\0';
		pd_response_set_header(res, "content-type", value);
	}
	return 0;
}

int main(int argc, char **argv)
{
	return pd_serve(argc, argv, handle, NULL);
}
