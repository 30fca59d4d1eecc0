/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the config loader: the table of keys, diagnostics, the YAML path -> position
 * index, the schema walk, and the value parsers the checks share.
 */
#ifndef PD_COMMON_CONFIG_INTERNAL_H
#define PD_COMMON_CONFIG_INTERNAL_H

#include <cyaml/cyaml.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"

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
	char *text; /* a scalar's value as written; NULL for a mapping or a sequence */
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

/* The text of a scalar at path as written in the file; NULL if absent or not a scalar. */
const char *pd_config_index_text(const struct pd_config_index *index, const char *path);

/*
 * Parse text as one YAML document with libyaml and check its structure against schema
 * the way libcyaml will (types, unknown/duplicate/missing keys, sequence lengths, scalar
 * syntax), but report every problem with its position instead of stopping at the first.
 * Refuses input nested deeper than 16 levels or with more than 256 anchors first, where
 * libyaml would go quadratic. Fills index. A CYAML_IGNORE field of the schema is a value
 * the loader parses itself from its text (a size, a duration, a rate): the walk checks that
 * it is a string of 1..PD_CONFIG_VALUE_MAX characters. Returns 0 if libcyaml can load the
 * text, -EINVAL if errors were added to diags, -ENOMEM.
 */
int pd_config_yaml_check(const char *text, size_t len, const cyaml_schema_value_t *schema,
                         struct pd_config_index *index, struct pd_config_diags *diags);

/* Copies text into out (size > 0) for a message: quoted, escaped, shortened if long. */
const char *pd_config_quote(char *out, size_t size, const char *text);
#define PD_CONFIG_QUOTE_LEN 80 /* a buffer size for pd_config_quote that messages use */
#define PD_CONFIG_PATH_LEN 256 /* "routes[255].chain[31]" and the like, with room */

/* ---- value parsers and formatters (config_parse.c) ---- */

#define PD_KiB (UINT64_C(1) << 10)
#define PD_MiB (UINT64_C(1) << 20)
#define PD_GiB (UINT64_C(1) << 30)

/* Decimal digits, at least one; -EINVAL on overflow. Advances *p past them. */
int pd_config_parse_decimal(const char **p, uint64_t *value);
/* pd_parse_addr with the reason of a failure, for messages. */
int pd_config_parse_addr(const char *text, struct pd_config_addr *addr, const char **why);
/* An IP literal of the given family (AF_UNSPEC: either); binary form in bin if not NULL. */
bool pd_config_ip_literal(const char *text, int family, int *family_out, unsigned char bin[16]);
/* "16KiB" for 16384, "1000" for 1000: limits in messages read like the values users write. */
const char *pd_config_format_size(char *buf, size_t size, uint64_t bytes);
/* "2s" for 2000, "1m" for 60000, "150ms" for 150. */
const char *pd_config_format_duration(char *buf, size_t size, uint64_t ms);

/* ---- the table of keys (config_keys.c) ---- */

/*
 * The mappings of the file that hold keys: three sections, the entries of four lists, and
 * one sub-section (a mapping inside a section).
 */
enum pd_config_section {
	PD_CONFIG_FABRIC,
	PD_CONFIG_INGRESS,
	PD_CONFIG_INGRESS_TLS,
	PD_CONFIG_ENGINE,
	PD_CONFIG_NODES,
	PD_CONFIG_TENANTS,
	PD_CONFIG_FUNCTIONS,
	PD_CONFIG_ROUTES,
	PD_CONFIG_SECTIONS
};

struct pd_config_section_def {
	const char *name; /* its path: "ingress", "tenants", "ingress.tls" */
	bool list;        /* a required sequence of mappings; else an optional mapping */
	/*
	 * A sub-section is an optional mapping under the key after the last '.' of name, in
	 * the mapping of parent (a section that is neither a list nor a sub-section); its
	 * struct lies inside the parent's. Its presence in the file is for the checks to read.
	 */
	bool sub;
	enum pd_config_section parent;
	size_t offset;       /* in struct pd_config: the struct, or the list's array pointer */
	size_t count_offset; /* list: of its uint32_t entry count */
	size_t size;         /* of the struct, or of one entry */
	uint32_t max;        /* list: at most this many entries (at least 1) */
};

extern const struct pd_config_section_def pd_config_sections[PD_CONFIG_SECTIONS];

enum pd_config_type {
	PD_CONFIG_STRING,   /* char *; length min..max; default: dflt_text (NULL: none) */
	PD_CONFIG_ENDPOINT, /* char * "ip:port", also parsed into the pd_config_addr at aux */
	PD_CONFIG_IP,       /* char *, an IPv4 or IPv6 literal */
	PD_CONFIG_ENUM,     /* an enum, spelled as in enum_strings; default dflt */
	PD_CONFIG_UINT,     /* uint16/32/64_t (by the field's size), written as an integer */
	PD_CONFIG_POW2,     /* uint32_t, a power of two */
	PD_CONFIG_NUMBER,   /* double, 0 or more */
	PD_CONFIG_SIZE,     /* uint64_t bytes, written "16KiB" */
	PD_CONFIG_DURATION, /* uint64_t ms, written "2s" */
	PD_CONFIG_RATE,     /* uint64_t bytes per second, written "800MiB/s" */
	PD_CONFIG_NAMES,    /* char ** of names; uint32_t count at aux; min..max entries */
	PD_CONFIG_TEXTS,    /* char ** of free text; uint32_t count at aux; min..max entries */
};

/*
 * An extra rule of one key, run after the value parsed and lies in min..max. Returns NULL
 * if the value is fine, else the message (written into why) that follows "PATH: ".
 */
typedef const char *pd_config_rule_fn(const void *field, const char *text, char *why, size_t size);

struct pd_config_key {
	const char *name; /* the key in its mapping */
	enum pd_config_type type;
	enum pd_config_section section;
	bool required;
	size_t offset;     /* of the field in the section's struct */
	size_t size;       /* of the field; checked against the type when the schema is built */
	size_t aux;        /* ENDPOINT: offset of its pd_config_addr; NAMES, TEXTS: of the count */
	uint64_t min, max; /* the range of the value, a string's length or a list's count */
	uint64_t dflt;     /* numbers, when the key is absent */
	const char *dflt_text;              /* strings, when absent (NULL: the field stays NULL) */
	const cyaml_strval_t *enum_strings; /* ENUM */
	uint32_t enum_count;
	pd_config_rule_fn *rule; /* optional */
	const char *doc;         /* one line; docs/config.md says more */
};

extern const struct pd_config_key pd_config_keys[];
extern const size_t pd_config_keys_count;

#define PD_CONFIG_VALUE_MAX 63 /* characters of a size, duration or rate as written */

/* The libcyaml schema, built from the tables once; NULL if they contradict themselves. */
const cyaml_schema_value_t *pd_config_schema(void);

/*
 * Gives every key of one section its value in entry (the section's struct, or one entry of
 * a list): the default if absent, else the value parsed and checked. prefix is the entry's
 * path ("ingress", "ingress.tls", "tenants[2]"). A bad value is reported and replaced by
 * the default. Returns the keys that failed, bit i for the section's i-th key (see
 * pd_config_key_bit), or sets *err to -ENOMEM.
 */
uint64_t pd_config_keys_apply(enum pd_config_section section, void *entry, const char *prefix,
                              const struct pd_config_index *index, struct pd_config_diags *diags,
                              int *err);
/* The bit of section's key name in pd_config_keys_apply's result. */
uint64_t pd_config_key_bit(enum pd_config_section section, const char *name);

/* ---- queries (config_query.c) ---- */

/* Entry i of a named list (nodes, tenants, functions): its name. */
const char *pd_config_name_of(const struct pd_config *cfg, enum pd_config_section list, uint32_t i);

/* ---- whole-config validation (config_check.c) ---- */

/* Applies the keys of every section, then checks names, cross references and limits. */
int pd_config_validate(struct pd_config *cfg, const struct pd_config_index *index,
                       struct pd_config_diags *diags);

#endif
