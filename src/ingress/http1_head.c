/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/1 head scanner (http1_head.h). */
#include "ingress/http1_head.h"

#include <errno.h>
#include <string.h>

#include <h2o/string_.h>

int ing_http1_head_scan(const char *p, size_t n, h2o_iovec_t method, struct ing_http1_head *out)
{
	const char *q = p, *end = p + n;
	*out = (struct ing_http1_head){0};
	/* picohttpparser skips one empty line before the request line. */
	if (end - q >= 2 && q[0] == '\r' && q[1] == '\n')
		q += 2;
	else if (q < end && q[0] == '\n')
		q++;
	if ((size_t)(end - q) <= method.len || memcmp(q, method.base, method.len) != 0 ||
	    q[method.len] != ' ')
		return -EINVAL;
	const char *nl = memchr(q, '\n', (size_t)(end - q)); /* end of the request line */
	while (nl != NULL) {
		q = nl + 1;
		if ((nl = memchr(q, '\n', (size_t)(end - q))) == NULL)
			break;
		size_t len = (size_t)(nl - q);
		if (len > 0 && q[len - 1] == '\r')
			len--;
		if (len == 0)
			return 0; /* the empty line that ends the head */
		if (q[0] == ' ' || q[0] == '\t') {
			out->folded = true;
			continue;
		}
		const char *colon = memchr(q, ':', len);
		if (colon == NULL)
			return -EINVAL;
		size_t name_len = (size_t)(colon - q);
		if (h2o_lcstris(q, name_len, H2O_STRLIT("content-length")))
			out->content_length++;
		else if (h2o_lcstris(q, name_len, H2O_STRLIT("transfer-encoding")))
			out->transfer_encoding++;
		else if (h2o_lcstris(q, name_len, H2O_STRLIT("host")))
			out->host++;
	}
	return -EINVAL;
}
