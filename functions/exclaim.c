/* SPDX-License-Identifier: Apache-2.0 */
/* exclaim: answers with the request body followed by "!". */
#include <string.h>

#include <palladium/function.h>

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	size_t n;
	const char *in = pd_request_body(req, &n);
	char *out = pd_response_reserve(res, n + 1);
	if (out == NULL)
		return pd_response_error(res, 413, "body too large\n");
	memcpy(out, in, n);
	out[n] = '!';
	pd_response_commit(res, n + 1);
	pd_response_set_header(res, "content-type", "text/plain");
	return 0;
}

int main(int argc, char **argv)
{
	return pd_serve(argc, argv, handle, NULL);
}
