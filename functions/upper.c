/* SPDX-License-Identifier: Apache-2.0 */
/* upper: answers with the request body in upper case (ASCII). */
#include <ctype.h>

#include <palladium/function.h>

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	size_t n;
	const char *in = pd_request_body(req, &n);
	char *out = pd_response_reserve(res, n);
	if (out == NULL)
		return pd_response_error(res, 413, "body too large\n");
	for (size_t i = 0; i < n; i++)
		out[i] = (char)toupper((unsigned char)in[i]);
	pd_response_commit(res, n);
	pd_response_set_header(res, "content-type", "text/plain");
	return 0;
}

int main(int argc, char **argv)
{
	return pd_serve(argc, argv, handle, NULL);
}
