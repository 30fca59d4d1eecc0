/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the ingress's HTTP/1 head scanner (src/ingress/http1_head.c), which
 * reads raw request heads from the network before h2o's answer is written. The scanner
 * must read only the n bytes it is given (each input is scanned from an exact-size heap
 * copy, so ASan sees a byte past them), answer 0 or -EINVAL only, count no more field
 * lines than the input has lines, and settle on a complete head: once a prefix of the
 * input scans as a complete head, the whole input scans the same (the bytes after the
 * head, a body or the next request, change nothing).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ingress/http1_head.h"

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

static int scan_copy(const uint8_t *data, size_t n, h2o_iovec_t method, struct ing_http1_head *out)
{
	char *p = malloc(n ? n : 1);
	if (p == NULL)
		abort();
	if (n > 0)
		memcpy(p, data, n);
	int rc = ing_http1_head_scan(p, n, method, out);
	free(p);
	if (rc != 0 && rc != -EINVAL)
		abort();
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	/* The method h2o parsed: one of the allowed ones, or bytes of the input. */
	h2o_iovec_t method;
	uint8_t pick = data[0];
	data++, size--;
	if (pick < 0xf0) {
		const char *m = methods[pick % (sizeof(methods) / sizeof(methods[0]))];
		method = h2o_iovec_init(m, strlen(m));
	} else {
		size_t len = pick & 0x0f;
		if (len > size)
			len = size;
		method = h2o_iovec_init((const char *)data, len);
		data += len, size -= len;
	}
	size_t cut = size > 0 ? data[0] % (size + 1) : 0; /* a prefix, as read so far */

	struct ing_http1_head whole, part;
	int rc = scan_copy(data, size, method, &whole);
	size_t lines = 0;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	if ((uint64_t)whole.content_length + whole.transfer_encoding + whole.host > lines)
		abort();
	if (rc == 0 && lines < 2) /* a request line and the empty line, at least */
		abort();

	if (scan_copy(data, cut, method, &part) == 0 &&
	    (rc != 0 || part.content_length != whole.content_length ||
	     part.transfer_encoding != whole.transfer_encoding || part.host != whole.host ||
	     part.folded != whole.folded))
		abort();
	return 0;
}
