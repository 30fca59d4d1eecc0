/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading what a browser sends besides the path: fields of an
 * application/x-www-form-urlencoded body, and cookies of the Cookie header. Strict: a
 * malformed body is refused as a whole rather than guessed at.
 */
#ifndef BOUTIQUE_FRONTEND_FORM_H
#define BOUTIQUE_FRONTEND_FORM_H

#include <stdbool.h>
#include <stddef.h>

/* form_value's answers besides a length. */
#define FORM_ABSENT (-1)    /* no field of that name */
#define FORM_MALFORMED (-2) /* the body is not valid urlencoded, or the value too long */

/*
 * Percent-decode src[0..n) into out ('+' is a space, %XX a byte of two hex digits).
 * Refuses (returns -1) a '%' without two hex digits after it, a decoded NUL or control
 * byte other than tab, CR and LF, and a result of cap bytes or more; otherwise returns
 * the decoded length and NUL-terminates out.
 */
int form_decode(const char *src, size_t n, char *out, size_t cap);

/*
 * The first field called name (names compared after decoding) of the body
 * body[0..len), decoded into out[0..cap) and NUL-terminated: its length, FORM_ABSENT, or
 * FORM_MALFORMED when any part of the body does not decode (checked whatever the name,
 * so that a bad body is refused the same way whichever field is asked for) or the value
 * does not fit.
 */
int form_value(const char *body, size_t len, const char *name, char *out, size_t cap);

/*
 * The value of the cookie called name in a Cookie header (pairs separated by ';', spaces
 * around them ignored, a value in double quotes unquoted): true and *value, *vlen
 * pointing into header, or false. Pairs without '=' are skipped.
 */
bool cookie_value(const char *header, size_t len, const char *name, const char **value,
                  size_t *vlen);

#endif
