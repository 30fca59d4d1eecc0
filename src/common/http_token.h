/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a function may set as a response header (pd_response_set_header): a name that is
 * an HTTP token, a value without control characters but tab. One rule for both
 * implementations of the function API (libpalladium and bench/knative's HTTP adapter).
 * The ingress checks names again with the same rule when they reach it from a pool, and
 * values only for what would break the response (src/ingress/http.c).
 */
#ifndef PD_COMMON_HTTP_TOKEN_H
#define PD_COMMON_HTTP_TOKEN_H

#include <stdbool.h>
#include <string.h>

/* n bytes at p form an HTTP token (RFC 9110 tchar: visible ASCII but delimiters). */
static inline bool pd_http_name_ok_n(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?={}", c) != NULL)
			return false;
	}
	return true;
}

static inline bool pd_http_name_ok(const char *s)
{
	return pd_http_name_ok_n(s, strlen(s));
}

static inline bool pd_http_value_ok(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c < 32 && c != '\t') || c == 127)
			return false;
	}
	return true;
}

#endif
