/* SPDX-License-Identifier: Apache-2.0 */
/* Errors of the config loader: collected with positions, printed sorted; values quoted safely. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config_internal.h"

void pd_config_diag_vadd(struct pd_config_diags *diags, struct pd_config_mark mark, const char *fmt,
                         va_list args)
{
	char *message;

	diags->total++;
	if (diags->count >= PD_CONFIG_DIAGS_MAX) {
		diags->dropped++;
		return;
	}
	if (diags->count == diags->cap) {
		uint32_t cap = diags->cap ? diags->cap * 2 : 8;
		struct pd_config_diag *items = realloc(diags->items, cap * sizeof(*items));

		if (items == NULL) {
			diags->out_of_memory = true;
			return;
		}
		diags->items = items;
		diags->cap = cap;
	}
	if (vasprintf(&message, fmt, args) < 0) {
		diags->out_of_memory = true;
		return;
	}
	diags->items[diags->count] = (struct pd_config_diag){
	    .mark = mark,
	    .seq = diags->count,
	    .message = message,
	};
	diags->count++;
}

void pd_config_diag_add(struct pd_config_diags *diags, struct pd_config_mark mark, const char *fmt,
                        ...)
{
	va_list args;

	va_start(args, fmt);
	pd_config_diag_vadd(diags, mark, fmt, args);
	va_end(args);
}

static int diag_cmp(const void *a, const void *b)
{
	const struct pd_config_diag *x = a, *y = b;

	if (x->mark.line != y->mark.line)
		return x->mark.line < y->mark.line ? -1 : 1;
	if (x->mark.column != y->mark.column)
		return x->mark.column < y->mark.column ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void pd_config_diags_print(struct pd_config_diags *diags, FILE *errs)
{
	if (errs == NULL)
		return;
	if (diags->count > 1)
		qsort(diags->items, diags->count, sizeof(diags->items[0]), diag_cmp);
	for (uint32_t i = 0; i < diags->count; i++) {
		const struct pd_config_diag *d = &diags->items[i];

		if (d->mark.line == 0)
			fprintf(errs, "%s: error: %s\n", diags->file, d->message);
		else
			fprintf(errs, "%s:%" PRIu32 ":%" PRIu32 ": error: %s\n", diags->file,
			        d->mark.line, d->mark.column, d->message);
	}
	if (diags->dropped > 0)
		fprintf(errs, "%s: note: %" PRIu32 " more errors not shown\n", diags->file,
		        diags->dropped);
	if (diags->out_of_memory)
		fprintf(errs, "%s: error: out of memory while reporting errors\n", diags->file);
}

void pd_config_diags_fini(struct pd_config_diags *diags)
{
	for (uint32_t i = 0; i < diags->count; i++)
		free(diags->items[i].message);
	free(diags->items);
	diags->items = NULL;
	diags->count = diags->cap = 0;
}

const char *pd_config_quote(char *out, size_t size, const char *text)
{
	/* Room for the closing quote, "..." and NUL; callers pass QUOTE_LEN-sized buffers. */
	size_t limit = size > 8 ? size - 8 : 0;
	size_t n = 0;

	if (size < 8) {
		if (size > 0)
			out[0] = '\0';
		return out;
	}
	out[n++] = '"';
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		char esc[8];
		size_t e;

		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			e = 2;
		} else if (*p < 0x20 || *p == 0x7f) {
			/* Never let a config value move the cursor or colour a terminal. */
			e = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", *p);
		} else {
			esc[0] = (char)*p;
			e = 1;
		}
		if (n + e > limit) {
			/* Do not leave half of a UTF-8 character before the ellipsis. */
			while (n > 1 && ((unsigned char)out[n - 1] & 0xc0) == 0x80)
				n--;
			if (n > 1 && (unsigned char)out[n - 1] >= 0xc0)
				n--;
			memcpy(out + n, "...", 3);
			n += 3;
			break;
		}
		memcpy(out + n, esc, e);
		n += e;
	}
	out[n++] = '"';
	out[n] = '\0';
	return out;
}
