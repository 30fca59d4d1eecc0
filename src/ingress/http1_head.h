/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP/1 head scanner: counts the field lines of a request head that h2o 2.2's parser
 * settles by itself (see http.c's http1_check). Pure: bytes from the network in, counts
 * out; tests/fuzz/fuzz_http1_head.c feeds it.
 */
#ifndef PD_INGRESS_HTTP1_HEAD_H
#define PD_INGRESS_HTTP1_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o/memory.h>

struct ing_http1_head {
	uint32_t content_length; /* field lines of each name */
	uint32_t transfer_encoding;
	uint32_t host;
	bool folded; /* a line starting with SP or HT (obs-fold) */
};

/* Count the field lines of the head at p (n bytes, from the request line on); 0, or
 * -EINVAL if p does not start with a complete head of a request with this method. */
int ing_http1_head_scan(const char *p, size_t n, h2o_iovec_t method, struct ing_http1_head *out);

#endif
