/* SPDX-License-Identifier: Apache-2.0 */
/* wordcount: counts the bytes, words and lines of the request body; answers JSON. */
#include <ctype.h>
#include <stdio.h>

#include <palladium/function.h>

static int handle(const pd_request *req, pd_response *res, void *arg)
{
	(void)arg;
	size_t n;
	const char *in = pd_request_body(req, &n);
	size_t words = 0, lines = 0;
	int in_word = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '\n')
			lines++;
		if (isspace(c)) {
			in_word = 0;
		} else if (!in_word) {
			in_word = 1;
			words++;
		}
	}
	char *out = pd_response_reserve(res, 128);
	if (out == NULL)
		return pd_response_error(res, 500, "no room for the answer\n");
	int len =
	    snprintf(out, 128, "{\"bytes\":%zu,\"words\":%zu,\"lines\":%zu}\n", n, words, lines);
	pd_response_commit(res, (size_t)len);
	pd_response_set_header(res, "content-type", "application/json");
	return 0;
}

int main(int argc, char **argv)
{
	return pd_serve(argc, argv, handle, NULL);
}
