/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay: appends {"fn": <function>, "node": <node>} to the JSON array in the request body
 * (an empty body or "{}" starts a new one) and passes it on. Chained across nodes, the
 * answer is the trace of where the request went.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <palladium/function.h>

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	const char *fn = getenv("PD_FUNCTION"), *node = getenv("PD_NODE");
	size_t n;
	const char *in = pd_request_body(req, &n);
	/* Strip trailing white space and the closing bracket of an existing trace. */
	while (n > 0 && (in[n - 1] == '\n' || in[n - 1] == ' '))
		n--;
	bool fresh = n == 0 || in[0] != '[' || in[n - 1] != ']';
	size_t keep = fresh ? 0 : n - 1;
	char entry[256];
	int len = snprintf(entry, sizeof(entry), "%s{\"fn\":\"%s\",\"node\":\"%s\"}]\n",
	                   fresh ? "[" : (keep > 1 ? "," : ""), fn ? fn : "?", node ? node : "?");
	if (len < 0 || (size_t)len >= sizeof(entry))
		return pd_response_error(res, 500, "name too long\n");
	char *out = pd_response_reserve(res, keep + (size_t)len);
	if (out == NULL)
		return pd_response_error(res, 413, "trace too large\n");
	memcpy(out, in, keep);
	memcpy(out + keep, entry, (size_t)len);
	pd_response_commit(res, keep + (size_t)len);
	pd_response_set_header(res, "content-type", "application/json");
	return 0;
}

int main(int argc, char **argv)
{
	return pd_serve(argc, argv, handle, NULL);
}
