/* SPDX-License-Identifier: Apache-2.0 */
/* Checks the YAML shape of a config file against the schema, so every error has a position. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/config_internal.h"

#define PATH_LEN PD_CONFIG_PATH_LEN
#define QUOTE_LEN PD_CONFIG_QUOTE_LEN
#define MAX_FIELDS 64 /* keys of one mapping in the schema */
#define MAX_DEPTH 16  /* the schema nests 4 levels deep */
#define MAX_ANCHORS 256

/* ---- position index ---- */

static int index_entry_cmp(const void *a, const void *b)
{
	const struct pd_config_index_entry *x = a, *y = b;

	return strcmp(x->path, y->path);
}

const struct pd_config_index_entry *pd_config_index_find(const struct pd_config_index *index,
                                                         const char *path)
{
	struct pd_config_index_entry key = {.path = (char *)path};

	if (index->count == 0)
		return NULL;
	return bsearch(&key, index->entries, index->count, sizeof(key), index_entry_cmp);
}

struct pd_config_mark pd_config_index_mark(const struct pd_config_index *index, const char *path,
                                           bool at_key)
{
	char buf[PATH_LEN];
	bool exact = true;

	snprintf(buf, sizeof(buf), "%s", path);
	for (;;) {
		const struct pd_config_index_entry *e = pd_config_index_find(index, buf);
		size_t cut;

		if (e != NULL)
			return exact && at_key ? e->key : e->value;
		if (buf[0] == '\0')
			break;
		/* Drop the last ".key" or "[i]": cut at the last '.' or '[', or all of it. */
		cut = strlen(buf);
		while (cut > 0 && buf[cut - 1] != '.' && buf[cut - 1] != '[')
			cut--;
		buf[cut > 0 ? cut - 1 : 0] = '\0';
		exact = false;
	}
	return (struct pd_config_mark){1, 1};
}

const char *pd_config_index_text(const struct pd_config_index *index, const char *path)
{
	const struct pd_config_index_entry *e = pd_config_index_find(index, path);

	return e != NULL ? e->text : NULL;
}

void pd_config_index_fini(struct pd_config_index *index)
{
	for (uint32_t i = 0; i < index->count; i++) {
		free(index->entries[i].path);
		free(index->entries[i].text);
	}
	free(index->entries);
	index->entries = NULL;
	index->count = index->cap = 0;
}

/* ---- the schema walk ---- */

struct walk {
	yaml_document_t *doc;
	struct pd_config_index *index;
	struct pd_config_diags *diags;
	char path[PATH_LEN]; /* of the node being checked: "routes[1].chain" */
	int err;             /* -ENOMEM once an allocation failed */
};

static struct pd_config_mark mark_of(yaml_mark_t m)
{
	return (struct pd_config_mark){
	    .line = m.line >= UINT32_MAX ? UINT32_MAX : (uint32_t)m.line + 1,
	    .column = m.column >= UINT32_MAX ? UINT32_MAX : (uint32_t)m.column + 1,
	};
}

/* Records the node at w->path: its key's position (key_node NULL: the node's) and text. */
static void index_add(struct walk *w, const yaml_node_t *key_node, const yaml_node_t *node)
{
	struct pd_config_index *index = w->index;
	char *path, *text = NULL;

	if (w->err < 0)
		return;
	if (index->count == index->cap) {
		uint32_t cap = index->cap ? index->cap * 2 : 64;
		struct pd_config_index_entry *entries =
		    realloc(index->entries, cap * sizeof(*entries));

		if (entries == NULL)
			goto fail_oom;
		index->entries = entries;
		index->cap = cap;
	}
	path = strdup(w->path);
	if (path == NULL)
		goto fail_oom;
	if (node->type == YAML_SCALAR_NODE) {
		text = strndup((const char *)node->data.scalar.value, node->data.scalar.length);
		if (text == NULL) {
			free(path);
			goto fail_oom;
		}
	}
	index->entries[index->count++] = (struct pd_config_index_entry){
	    .path = path,
	    .key = mark_of((key_node != NULL ? key_node : node)->start_mark),
	    .value = mark_of(node->start_mark),
	    .text = text,
	};
	return;

fail_oom:
	w->err = -ENOMEM;
}

__attribute__((format(printf, 3, 4))) static void walk_error(struct walk *w, yaml_mark_t at,
                                                             const char *fmt, ...)
{
	char message[512];
	va_list args;

	va_start(args, fmt);
	vsnprintf(message, sizeof(message), fmt, args);
	va_end(args);
	if (w->path[0] == '\0')
		pd_config_diag_add(w->diags, mark_of(at), "%s", message);
	else
		pd_config_diag_add(w->diags, mark_of(at), "%s: %s", w->path, message);
}

static size_t path_push_key(struct walk *w, const char *key)
{
	size_t old = strlen(w->path);

	snprintf(w->path + old, sizeof(w->path) - old, "%s%s", old ? "." : "", key);
	return old;
}

static size_t path_push_index(struct walk *w, size_t i)
{
	size_t old = strlen(w->path);

	snprintf(w->path + old, sizeof(w->path) - old, "[%zu]", i);
	return old;
}

static void path_pop(struct walk *w, size_t old)
{
	w->path[old] = '\0';
}

/* What a node is, for "expected X, got Y". */
static const char *node_kind(const yaml_node_t *node, char *buf, size_t size)
{
	switch (node->type) {
	case YAML_SCALAR_NODE:
		if (node->data.scalar.length == 0 &&
		    node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
			return "an empty value";
		return pd_config_quote(buf, size, (const char *)node->data.scalar.value);
	case YAML_SEQUENCE_NODE: return "a sequence";
	case YAML_MAPPING_NODE: return "a mapping";
	default: return "nothing";
	}
}

static void expected(struct walk *w, const yaml_node_t *node, const char *what)
{
	char quoted[QUOTE_LEN];

	walk_error(w, node->start_mark, "expected %s, got %s", what,
	           node_kind(node, quoted, sizeof(quoted)));
}

/* Levenshtein distance, capped: only used to suggest a key for a likely typo. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[33];

	if (la > 32 || lb > 32)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static void unknown_key(struct walk *w, const yaml_node_t *key_node,
                        const cyaml_schema_field_t *fields)
{
	const char *key = (const char *)key_node->data.scalar.value;
	const char *where = w->path[0] == '\0' ? " at top level" : "";
	const char *suggestion = NULL;
	size_t best = 3; /* suggest only for one or two typos */
	char quoted[QUOTE_LEN];
	char list[256];
	size_t n = 0;

	list[0] = '\0';
	for (const cyaml_schema_field_t *f = fields; f->key != NULL; f++) {
		size_t d = edit_distance(key, f->key);

		if (d < best && d < strlen(f->key)) {
			best = d;
			suggestion = f->key;
		}
		n += (size_t)snprintf(list + n, n < sizeof(list) ? sizeof(list) - n : 0, "%s%s",
		                      n ? ", " : "", f->key);
	}
	pd_config_quote(quoted, sizeof(quoted), key);
	if (suggestion != NULL)
		walk_error(w, key_node->start_mark, "unknown key %s%s (did you mean \"%s\"?)",
		           quoted, where, suggestion);
	else
		walk_error(w, key_node->start_mark, "unknown key %s%s (expected one of: %s)",
		           quoted, where, list);
}

static void walk_value(struct walk *w, const cyaml_schema_value_t *schema, yaml_node_t *node);

static void walk_mapping(struct walk *w, const cyaml_schema_value_t *schema, yaml_node_t *node)
{
	const cyaml_schema_field_t *fields = schema->mapping.fields;
	const yaml_node_t *seen[MAX_FIELDS] = {NULL};
	size_t nfields = 0;

	while (fields[nfields].key != NULL)
		nfields++;
	if (nfields > MAX_FIELDS) {
		walk_error(w, node->start_mark, "internal error: schema mapping too large");
		return;
	}
	if (node->type != YAML_MAPPING_NODE) {
		expected(w, node, "a mapping");
		return;
	}
	for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
	     pair < node->data.mapping.pairs.top; pair++) {
		yaml_node_t *key = yaml_document_get_node(w->doc, pair->key);
		yaml_node_t *value = yaml_document_get_node(w->doc, pair->value);
		const char *name;
		size_t f, old;

		if (key == NULL || value == NULL)
			continue;
		if (key->type != YAML_SCALAR_NODE) {
			expected(w, key, "a key name");
			continue;
		}
		name = (const char *)key->data.scalar.value;
		for (f = 0; f < nfields; f++)
			if (strlen(name) == key->data.scalar.length &&
			    strcmp(name, fields[f].key) == 0)
				break;
		if (f == nfields) {
			unknown_key(w, key, fields);
			continue;
		}
		if (seen[f] != NULL) {
			struct pd_config_mark first = mark_of(seen[f]->start_mark);

			walk_error(w, key->start_mark,
			           "key \"%s\" given twice (first at %" PRIu32 ":%" PRIu32 ")",
			           name, first.line, first.column);
			continue;
		}
		seen[f] = key;
		old = path_push_key(w, name);
		index_add(w, key, value);
		walk_value(w, &fields[f].value, value);
		path_pop(w, old);
	}
	for (size_t f = 0; f < nfields; f++) {
		if (seen[f] != NULL || (fields[f].value.flags & CYAML_FLAG_OPTIONAL))
			continue;
		if (w->path[0] == '\0')
			walk_error(w, node->start_mark, "missing required section \"%s\"",
			           fields[f].key);
		else
			walk_error(w, node->start_mark, "missing required key \"%s\"",
			           fields[f].key);
	}
}

static void walk_sequence(struct walk *w, const cyaml_schema_value_t *schema, yaml_node_t *node)
{
	size_t count;

	if (node->type != YAML_SEQUENCE_NODE) {
		expected(w, node, "a sequence");
		return;
	}
	count = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
	if (count < schema->sequence.min) {
		if (count == 0)
			walk_error(w, node->start_mark, "must not be empty");
		else
			walk_error(w, node->start_mark,
			           "needs at least %" PRIu32 " entries, got %zu",
			           schema->sequence.min, count);
	}
	if (count > schema->sequence.max) {
		/* Do not descend: with aliases a long list could be walked many times over. */
		walk_error(w, node->start_mark, "too many entries: %zu (at most %" PRIu32 ")",
		           count, schema->sequence.max);
		return;
	}
	for (size_t i = 0; i < count; i++) {
		yaml_node_t *item =
		    yaml_document_get_node(w->doc, node->data.sequence.items.start[i]);
		size_t old;

		if (item == NULL)
			continue;
		old = path_push_index(w, i);
		index_add(w, NULL, item);
		walk_value(w, schema->sequence.entry, item);
		path_pop(w, old);
	}
}

static bool all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/*
 * Stricter than libcyaml, which reads integers with strtoll(base 0): "010" would be 8,
 * "0x10" 16, "1.5" 1 and "1_000" 1. Only plain decimal passes here, so what the user
 * wrote is what is loaded.
 */
static void walk_integer(struct walk *w, const cyaml_schema_value_t *schema, yaml_node_t *node)
{
	const char *text = (const char *)node->data.scalar.value;
	bool is_signed = schema->type == CYAML_INT;
	bool negative = is_signed && text[0] == '-';
	const char *digits = text + negative;
	uint64_t value = 0, max;
	bool overflow = false;
	unsigned bits = schema->data_size >= 8 ? 64 : schema->data_size * 8;
	char quoted[QUOTE_LEN];

	if (!all_digits(digits) || strlen(text) != node->data.scalar.length) {
		expected(w, node, "an integer");
		return;
	}
	if (digits[0] == '0' && digits[1] != '\0') {
		/* YAML 1.1 and libcyaml would read it as octal. */
		walk_error(w, node->start_mark, "%s: leading zeros are not allowed",
		           pd_config_quote(quoted, sizeof(quoted), text));
		return;
	}
	for (const char *p = digits; *p != '\0'; p++) {
		uint64_t digit = (uint64_t)(*p - '0');

		if (value > (UINT64_MAX - digit) / 10) {
			overflow = true;
			break;
		}
		value = value * 10 + digit;
	}
	if (is_signed)
		max = (UINT64_C(1) << (bits - 1)) - (negative ? 0 : 1);
	else
		max = bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
	if (overflow || value > max)
		walk_error(w, node->start_mark, "%s is out of range (%s %s%" PRIu64 ")",
		           pd_config_quote(quoted, sizeof(quoted), text),
		           negative ? "at least" : "at most", negative ? "-" : "", max);
}

static void walk_float(struct walk *w, yaml_node_t *node)
{
	const char *text = (const char *)node->data.scalar.value;
	const char *p = text;
	char *end;
	double value;

	/* Plain decimal notation only, so strtod and libcyaml agree on the value. */
	if (*p == '-')
		p++;
	if (*p < '0' || *p > '9')
		goto fail_syntax;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			goto fail_syntax;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (*p < '0' || *p > '9')
			goto fail_syntax;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p != '\0' || (size_t)(p - text) != node->data.scalar.length)
		goto fail_syntax;
	errno = 0;
	value = strtod(text, &end);
	if (errno == ERANGE || !isfinite(value)) {
		char quoted[QUOTE_LEN];

		walk_error(w, node->start_mark, "%s is out of range",
		           pd_config_quote(quoted, sizeof(quoted), text));
	}
	return;

fail_syntax:
	expected(w, node, "a number");
}

static void walk_enum(struct walk *w, const cyaml_schema_value_t *schema, yaml_node_t *node)
{
	const char *text = (const char *)node->data.scalar.value;
	char list[256];
	size_t n = 0;

	list[0] = '\0';
	for (uint32_t i = 0; i < schema->enumeration.count; i++) {
		const char *s = schema->enumeration.strings[i].str;

		if (strcmp(text, s) == 0 && strlen(text) == node->data.scalar.length)
			return;
		n += (size_t)snprintf(list + n, n < sizeof(list) ? sizeof(list) - n : 0, "%s%s",
		                      n ? ", " : "", s);
	}
	{
		char what[300];

		snprintf(what, sizeof(what), "one of %s", list);
		expected(w, node, what);
	}
}

static void walk_string(struct walk *w, const cyaml_schema_value_t *schema, yaml_node_t *node)
{
	size_t length = node->data.scalar.length;

	/* A "\0" escape would silently cut the C string short. */
	if (strlen((const char *)node->data.scalar.value) != length) {
		walk_error(w, node->start_mark, "must not contain NUL characters");
		return;
	}
	if (length < schema->string.min) {
		if (length == 0)
			walk_error(w, node->start_mark, "must not be empty");
		else
			walk_error(w, node->start_mark,
			           "too short (at least %" PRIu32 " characters)",
			           schema->string.min);
	} else if (length > schema->string.max) {
		walk_error(w, node->start_mark, "too long: %zu characters (at most %" PRIu32 ")",
		           length, schema->string.max);
	}
}

static void walk_value(struct walk *w, const cyaml_schema_value_t *schema, yaml_node_t *node)
{
	/* A size, duration or rate: libcyaml skips it, the loader parses its text. */
	static const cyaml_schema_value_t parsed_text = {
	    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 1, PD_CONFIG_VALUE_MAX),
	};

	if (schema->type == CYAML_IGNORE)
		schema = &parsed_text;
	switch (schema->type) {
	case CYAML_MAPPING: walk_mapping(w, schema, node); return;
	case CYAML_SEQUENCE: walk_sequence(w, schema, node); return;
	default: break;
	}
	if (node->type != YAML_SCALAR_NODE) {
		switch (schema->type) {
		case CYAML_INT:
		case CYAML_UINT: expected(w, node, "an integer"); return;
		case CYAML_FLOAT: expected(w, node, "a number"); return;
		case CYAML_STRING: expected(w, node, "a string"); return;
		default: expected(w, node, "a single value"); return;
		}
	}
	switch (schema->type) {
	case CYAML_INT:
	case CYAML_UINT: walk_integer(w, schema, node); return;
	case CYAML_FLOAT: walk_float(w, node); return;
	case CYAML_ENUM: walk_enum(w, schema, node); return;
	case CYAML_STRING: walk_string(w, schema, node); return;
	default:
		/* The config schema uses none of the other types; refuse rather than guess. */
		walk_error(w, node->start_mark, "internal error: unsupported schema type %d",
		           (int)schema->type);
		return;
	}
}

/* ---- syntax errors ---- */

/* libyaml gives reader errors (bad bytes, bad UTF-8) as an offset, not a mark. */
static struct pd_config_mark mark_at_offset(const char *text, size_t len, size_t offset)
{
	struct pd_config_mark m = {1, 1};

	for (size_t i = 0; i < offset && i < len; i++) {
		if (text[i] == '\n') {
			m.line++;
			m.column = 1;
		} else if (((unsigned char)text[i] & 0xc0) != 0x80) {
			m.column++;
		}
	}
	return m;
}

static int syntax_error(const yaml_parser_t *parser, const char *text, size_t len,
                        struct pd_config_diags *diags)
{
	const char *problem = parser->problem ? parser->problem : "invalid YAML";
	struct pd_config_mark at, context;

	switch (parser->error) {
	case YAML_MEMORY_ERROR: return -ENOMEM;
	case YAML_READER_ERROR:
		at = mark_at_offset(text, len, parser->problem_offset);
		if (parser->problem_value >= 0)
			pd_config_diag_add(diags, at, "invalid YAML: %s (byte 0x%02x)", problem,
			                   (unsigned)parser->problem_value & 0xff);
		else
			pd_config_diag_add(diags, at, "invalid YAML: %s", problem);
		return -EINVAL;
	default:
		at = mark_of(parser->problem_mark);
		context = mark_of(parser->context_mark);
		if (parser->context != NULL &&
		    (context.line != at.line || context.column != at.column))
			pd_config_diag_add(diags, at,
			                   "invalid YAML: %s (%s that started at %" PRIu32
			                   ":%" PRIu32 ")",
			                   problem, parser->context, context.line, context.column);
		else if (parser->context != NULL)
			pd_config_diag_add(diags, at, "invalid YAML: %s (%s)", problem,
			                   parser->context);
		else
			pd_config_diag_add(diags, at, "invalid YAML: %s", problem);
		return -EINVAL;
	}
}

/*
 * A first pass over the events, before anything builds a tree. libyaml's scanner is
 * quadratic in the flow nesting depth, and its loader in the number of anchors: without
 * these limits a few MiB of "[[[[..." keeps a process busy for hours. A cluster file
 * nests four levels deep and needs few anchors, if any.
 */
static int check_limits(const char *text, size_t len, struct pd_config_diags *diags)
{
	yaml_parser_t parser;
	yaml_event_t event;
	unsigned depth = 0, anchors = 0;
	bool done = false;
	int ret = 0;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done && ret == 0) {
		const yaml_char_t *anchor = NULL;

		if (!yaml_parser_parse(&parser, &event)) {
			ret = syntax_error(&parser, text, len, diags);
			break;
		}
		switch (event.type) {
		case YAML_SEQUENCE_START_EVENT:
			anchor = event.data.sequence_start.anchor;
			depth++;
			break;
		case YAML_MAPPING_START_EVENT:
			anchor = event.data.mapping_start.anchor;
			depth++;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT: depth--; break;
		case YAML_SCALAR_EVENT: anchor = event.data.scalar.anchor; break;
		case YAML_STREAM_END_EVENT: done = true; break;
		default: break;
		}
		if (depth > MAX_DEPTH) {
			pd_config_diag_add(diags, mark_of(event.start_mark),
			                   "nested deeper than %d levels", MAX_DEPTH);
			ret = -EINVAL;
		} else if (anchor != NULL && ++anchors > MAX_ANCHORS) {
			pd_config_diag_add(diags, mark_of(event.start_mark),
			                   "more than %d anchors (&name)", MAX_ANCHORS);
			ret = -EINVAL;
		}
		yaml_event_delete(&event);
	}
	yaml_parser_delete(&parser);
	return ret;
}

int pd_config_yaml_check(const char *text, size_t len, const cyaml_schema_value_t *schema,
                         struct pd_config_index *index, struct pd_config_diags *diags)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	yaml_node_t *root;
	uint32_t before = diags->total;
	struct walk w = {.doc = &doc, .index = index, .diags = diags};
	int ret;

	ret = check_limits(text, len, diags);
	if (ret < 0)
		return ret;
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		ret = syntax_error(&parser, text, len, diags);
		goto out_parser;
	}
	root = yaml_document_get_root_node(&doc);
	if (root == NULL) {
		pd_config_diag_add(diags, (struct pd_config_mark){1, 1},
		                   "the file is empty: expected a mapping with the sections nodes, "
		                   "tenants, functions and routes");
		ret = -EINVAL;
		goto out_doc;
	}
	/* libcyaml would silently ignore a second document; it is almost surely a mistake. */
	if (!yaml_parser_load(&parser, &extra)) {
		ret = syntax_error(&parser, text, len, diags);
		goto out_doc;
	}
	if (yaml_document_get_root_node(&extra) != NULL) {
		pd_config_diag_add(
		    diags, mark_of(extra.start_mark),
		    "a second YAML document is not allowed: one file is one cluster");
		yaml_document_delete(&extra);
		ret = -EINVAL;
		goto out_doc;
	}
	yaml_document_delete(&extra);

	index_add(&w, NULL, root);
	walk_value(&w, schema, root);
	if (w.err < 0) {
		ret = w.err;
		goto out_doc;
	}
	qsort(index->entries, index->count, sizeof(index->entries[0]), index_entry_cmp);
	ret = diags->total != before ? -EINVAL : 0;

out_doc:
	yaml_document_delete(&doc);
out_parser:
	yaml_parser_delete(&parser);
	return ret;
}
