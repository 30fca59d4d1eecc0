/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a function may set as a response header (pd_response_set_header): a name that is
 * an HTTP token, a value without control characters but tab. One rule for both
 * implementations of the function API (libpalladium and bench/knative's HTTP adapter);
 * the ingress checks again what reaches it from a pool (src/ingress/request.c).
 */
#ifndef PD_COMMON_HTTP_TOKEN_H
#define PD_COMMON_HTTP_TOKEN_H

#include <stdbool.h>
#include <string.h>

static inline bool pd_http_name_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?={}", c) != NULL)
			return false;
	}
	return true;
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
