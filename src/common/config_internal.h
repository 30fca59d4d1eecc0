/* SPDX-License-Identifier: Apache-2.0 */
/* Private to the config loader: diagnostics, the YAML path -> position index, the schema walk. */
#ifndef PD_COMMON_CONFIG_INTERNAL_H
#define PD_COMMON_CONFIG_INTERNAL_H

#include <cyaml/cyaml.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A position in the file, 1-based. line == 0 means "no position" (I/O errors). */
struct pd_config_mark {
	uint32_t line;
	uint32_t column;
};

/* Errors are collected, then printed sorted by position, so the output reads top-down. */
#define PD_CONFIG_DIAGS_MAX 100

struct pd_config_diag {
	struct pd_config_mark mark;
	uint32_t seq; /* insertion order, breaks ties so sorting is stable */
	char *message;
};

struct pd_config_diags {
	const char *file;
	struct pd_config_diag *items;
	uint32_t count;
	uint32_t cap;
	uint32_t dropped; /* beyond PD_CONFIG_DIAGS_MAX */
	uint32_t total;   /* every error reported, kept or dropped */
	bool out_of_memory;
};

void pd_config_diag_add(struct pd_config_diags *diags, struct pd_config_mark mark, const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));
void pd_config_diag_vadd(struct pd_config_diags *diags, struct pd_config_mark mark, const char *fmt,
                         va_list args) __attribute__((format(printf, 3, 0)));
/* Sorts and writes every error to errs (NULL: discard). */
void pd_config_diags_print(struct pd_config_diags *diags, FILE *errs);
void pd_config_diags_fini(struct pd_config_diags *diags);

/*
 * Positions of every node the schema knows, by path: "" (the document), "nodes",
 * "nodes[0]", "nodes[0].port", "routes[1].chain[0]". For a mapping field, key is the
 * position of the key and value that of the value; for a sequence entry both are the
 * entry's. Presence in the index is also how validation tells "absent" from "0".
 */
struct pd_config_index_entry {
	char *path;
	struct pd_config_mark key;
	struct pd_config_mark value;
};

struct pd_config_index {
	struct pd_config_index_entry *entries;
	uint32_t count;
	uint32_t cap;
};

/* Exact lookup; NULL if the path is not in the file. */
const struct pd_config_index_entry *pd_config_index_find(const struct pd_config_index *index,
                                                         const char *path);
/*
 * The position of path, or of its nearest ancestor present in the file (so an error about
 * a defaulted key points at the entry that lacks it). Never fails: falls back to 1:1.
 */
struct pd_config_mark pd_config_index_mark(const struct pd_config_index *index, const char *path,
                                           bool at_key);
void pd_config_index_fini(struct pd_config_index *index);

/*
 * Parse text as one YAML document with libyaml and check its structure against schema
 * the way libcyaml will (types, unknown/duplicate/missing keys, sequence lengths, scalar
 * syntax), but report every problem with its position instead of stopping at the first.
 * Refuses input nested deeper than 16 levels or with more than 256 anchors first, where
 * libyaml would go quadratic. Fills index. Returns 0 if libcyaml can load the text, -EINVAL if errors were added to
 * diags, -ENOMEM.
 */
int pd_config_yaml_check(const char *text, size_t len, const cyaml_schema_value_t *schema,
                         struct pd_config_index *index, struct pd_config_diags *diags);

/* Copies text into out (size > 0) for a message: quoted, escaped, shortened if long. */
const char *pd_config_quote(char *out, size_t size, const char *text);

#endif
