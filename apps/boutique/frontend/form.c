/* SPDX-License-Identifier: Apache-2.0 */
/* Form bodies and cookies (form.h). */
#include "form.h"

#include <string.h>

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int form_decode(const char *src, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (n - i < 3)
				return -1;
			int hi = hex(src[i + 1]), lo = hex(src[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		/* Control bytes have no place in any field of these forms; a NUL would cut the
		 * value short wherever it is used as a C string. */
		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
			return -1;
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	if (cap == 0)
		return -1;
	out[o] = '\0';
	return (int)o;
}

int form_value(const char *body, size_t len, const char *name, char *out, size_t cap)
{
	int found = FORM_ABSENT;
	size_t pos = 0;
	while (pos < len) {
		const char *pair = body + pos;
		const char *amp = memchr(pair, '&', len - pos);
		size_t plen = amp != NULL ? (size_t)(amp - pair) : len - pos;
		pos += plen + 1;
		if (plen == 0)
			continue; /* "a=1&&b=2": an empty pair, as browsers never send but allow */
		const char *eq = memchr(pair, '=', plen);
		size_t nlen = eq != NULL ? (size_t)(eq - pair) : plen;
		const char *val = eq != NULL ? eq + 1 : pair + plen;
		size_t vlen = plen - nlen - (eq != NULL);
		char key[64];
		char scratch[1024];
		int k = form_decode(pair, nlen, key, sizeof(key));
		if (k < 0)
			return FORM_MALFORMED;
		if (found == FORM_ABSENT && strcmp(key, name) == 0) {
			found = form_decode(val, vlen, out, cap);
			if (found < 0)
				return FORM_MALFORMED;
		} else if (vlen >= sizeof(scratch) ||
		           form_decode(val, vlen, scratch, sizeof(scratch)) < 0) {
			return FORM_MALFORMED;
		}
	}
	return found;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

bool cookie_value(const char *header, size_t len, const char *name, const char **value,
                  size_t *vlen)
{
	size_t name_len = strlen(name);
	size_t pos = 0;
	while (pos < len) {
		const char *pair = header + pos;
		const char *semi = memchr(pair, ';', len - pos);
		size_t plen = semi != NULL ? (size_t)(semi - pair) : len - pos;
		pos += plen + 1;
		while (plen > 0 && is_space(pair[0])) {
			pair++;
			plen--;
		}
		while (plen > 0 && is_space(pair[plen - 1]))
			plen--;
		const char *eq = memchr(pair, '=', plen);
		if (eq == NULL)
			continue;
		size_t nlen = (size_t)(eq - pair);
		while (nlen > 0 && is_space(pair[nlen - 1]))
			nlen--;
		if (nlen != name_len || memcmp(pair, name, nlen) != 0)
			continue;
		const char *v = eq + 1;
		size_t n = plen - (size_t)(v - pair);
		while (n > 0 && is_space(v[0])) {
			v++;
			n--;
		}
		if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
			v++;
			n -= 2;
		}
		*value = v;
		*vlen = n;
		return true;
	}
	return false;
}
