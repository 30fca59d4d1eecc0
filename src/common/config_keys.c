/* SPDX-License-Identifier: Apache-2.0 */
/* The keys of the cluster file, one table row each, and the generic setters that apply them. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/config.h"
#include "common/config_internal.h"

#define KiB PD_KiB
#define MiB PD_MiB
#define GiB PD_GiB

#define TEXT_MAX 4095 /* paths and other free text */
#define ADDR_MAX 127  /* addresses and endpoints as written */
#define ROUTE_PATH_MAX 255

/* ---- the sections ---- */

#define LIST(field, entries, most)                                                                 \
	.list = true, .offset = offsetof(struct pd_config, field),                                 \
	.count_offset = offsetof(struct pd_config, field##_count), .size = sizeof(entries),        \
	.max = most
#define MAP(field)                                                                                 \
	.offset = offsetof(struct pd_config, field),                                               \
	.size = sizeof(((struct pd_config *)NULL)->field)
#define SUB(in, field) .sub = true, .parent = in, MAP(field)

/* In the order of the file's top level; the order of messages about it follows. */
const struct pd_config_section_def pd_config_sections[PD_CONFIG_SECTIONS] = {
    [PD_CONFIG_FABRIC] = {"fabric", MAP(fabric)},
    [PD_CONFIG_INGRESS] = {"ingress", MAP(ingress)},
    [PD_CONFIG_INGRESS_TLS] = {"ingress.tls", SUB(PD_CONFIG_INGRESS, ingress.tls)},
    [PD_CONFIG_ENGINE] = {"engine", MAP(engine)},
    [PD_CONFIG_NODES] = {"nodes", LIST(nodes, struct pd_config_node, PD_MAX_NODES)},
    [PD_CONFIG_TENANTS] = {"tenants", LIST(tenants, struct pd_config_tenant, PD_MAX_TENANTS)},
    [PD_CONFIG_FUNCTIONS] = {"functions",
                             LIST(functions, struct pd_config_function, PD_MAX_FUNCTIONS)},
    [PD_CONFIG_ROUTES] = {"routes", LIST(routes, struct pd_config_route, PD_MAX_ROUTES)},
};

/* ---- rules that a range cannot say ---- */

static const char *one_thread(const void *field, const char *text, char *why, size_t size)
{
	uint32_t threads = *(const uint32_t *)field;

	(void)text;
	if (threads == 1)
		return NULL;
	/* The ingress is single-threaded for now; say so rather than ignore the value. */
	snprintf(why, size, "only 1 thread is supported for now, got %" PRIu32, threads);
	return why;
}

static const char *provider_name(const void *field, const char *text, char *why, size_t size)
{
	const char *provider = *(char *const *)field;
	char quoted[PD_CONFIG_QUOTE_LEN];

	(void)text;
	if (strpbrk(provider, " \t\r\n") == NULL)
		return NULL;
	snprintf(why, size, "%s is not a provider name (try tcp or verbs)",
	         pd_config_quote(quoted, sizeof(quoted), provider));
	return why;
}

static const char *cache_aligned(const void *field, const char *text, char *why, size_t size)
{
	char quoted[PD_CONFIG_QUOTE_LEN];

	/* Buffers are cache-line aligned in the pool. */
	if (*(const uint64_t *)field % 64 == 0)
		return NULL;
	snprintf(why, size, "%s is not a multiple of 64 bytes",
	         pd_config_quote(quoted, sizeof(quoted), text));
	return why;
}

/* A user or group name as the engine looks it up: 1..32 of [A-Za-z0-9._-], no leading '-'. */
static bool valid_account(const char *s, size_t len)
{
	if (len < 1 || len > PD_ACCOUNT_NAME_MAX || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

static const char *user_group(const void *field, const char *text, char *why, size_t size)
{
	const char *run_as = *(char *const *)field;
	const char *colon = strchr(run_as, ':');
	size_t user_len = colon ? (size_t)(colon - run_as) : strlen(run_as);
	char quoted[PD_CONFIG_QUOTE_LEN];

	(void)text;
	if (valid_account(run_as, user_len) &&
	    (colon == NULL || valid_account(colon + 1, strlen(colon + 1))))
		return NULL;
	snprintf(why, size, "%s is not \"user\" or \"user:group\"",
	         pd_config_quote(quoted, sizeof(quoted), run_as));
	return why;
}

/* ---- the table ---- */

static const cyaml_strval_t primitive_strings[] = {
    {"two-sided", PD_PRIMITIVE_TWO_SIDED},
    {"one-sided", PD_PRIMITIVE_ONE_SIDED},
};
static const cyaml_strval_t poll_strings[] = {
    {"adaptive", PD_POLL_ADAPTIVE},
    {"fixed", PD_POLL_FIXED},
};

static const cyaml_strval_t core_strings[] = {
    {"shared", PD_CORE_SHARED},
    {"own", PD_CORE_OWN},
};

static const cyaml_strval_t plain_mode_strings[] = {
    {"redirect", PD_TLS_PLAIN_REDIRECT},
    {"serve", PD_TLS_PLAIN_SERVE},
};

#define IN(sec, st, member)                                                                        \
	.section = sec, .offset = offsetof(st, member), .size = sizeof(((st *)NULL)->member)
#define FABRIC(m) IN(PD_CONFIG_FABRIC, struct pd_config_fabric, m)
#define INGRESS(m) IN(PD_CONFIG_INGRESS, struct pd_config_ingress, m)
#define TLS(m) IN(PD_CONFIG_INGRESS_TLS, struct pd_config_tls, m)
#define ENGINE(m) IN(PD_CONFIG_ENGINE, struct pd_config_engine, m)
#define NODE(m) IN(PD_CONFIG_NODES, struct pd_config_node, m)
#define TENANT(m) IN(PD_CONFIG_TENANTS, struct pd_config_tenant, m)
#define FUNCTION(m) IN(PD_CONFIG_FUNCTIONS, struct pd_config_function, m)
#define ROUTE(m) IN(PD_CONFIG_ROUTES, struct pd_config_route, m)
#define COUNT(st, m) .aux = offsetof(st, m##_count)
#define ADDR(st, m) .aux = offsetof(st, m)
#define REQUIRED .required = true

#define STRING PD_CONFIG_STRING
#define ENDPOINT PD_CONFIG_ENDPOINT
#define IP PD_CONFIG_IP
#define ENUM PD_CONFIG_ENUM
#define UINT PD_CONFIG_UINT
#define POW2 PD_CONFIG_POW2
#define NUMBER PD_CONFIG_NUMBER
#define SIZE PD_CONFIG_SIZE
#define DURATION PD_CONFIG_DURATION
#define RATE PD_CONFIG_RATE
#define NAMES PD_CONFIG_NAMES
#define TEXTS PD_CONFIG_TEXTS

/*
 * Every key of the file, in the order of the file's sections, each section's keys in the
 * order that "expected one of" lists them. Defaults and ranges live here and nowhere else.
 *
 * To add a key: add its field to the section's struct in config.h, then one row here with
 * its type, the field, the range (min..max: the value, a string's length or a list's
 * count), the default (dflt, or dflt_text for strings) and a line of doc; then its row in
 * docs/config.md, which the "docs" test of test_config.c compares with this table. The
 * schema, the shape check, the default and the range check follow from the row. A rule a
 * range cannot say goes into .rule; a check across keys or entries into config_check.c.
 */
const struct pd_config_key pd_config_keys[] = {
    {"provider", STRING, FABRIC(provider), .min = 1, .max = PD_NAME_MAX, .dflt_text = "tcp",
     .rule = provider_name, .doc = "libfabric provider"},
    {"primitive", ENUM, FABRIC(primitive), .dflt = PD_PRIMITIVE_TWO_SIDED,
     .enum_strings = primitive_strings, .enum_count = CYAML_ARRAY_LEN(primitive_strings),
     .doc = "send/receive, or RMA write with immediate data"},

    {"listen", ENDPOINT, INGRESS(listen), ADDR(struct pd_config_ingress, listen_addr), .min = 1,
     .max = ADDR_MAX, .dflt_text = "127.0.0.1:8080", .doc = "the HTTP listener"},
    {"admin", ENDPOINT, INGRESS(admin), ADDR(struct pd_config_ingress, admin_addr), .min = 1,
     .max = ADDR_MAX, .dflt_text = "127.0.0.1:8081", .doc = "the /healthz, /metrics listener"},
    {"address", IP, INGRESS(address), .min = 1, .max = ADDR_MAX, .dflt_text = "127.0.0.1",
     .doc = "the ingress's own fabric address"},
    {"threads", UINT, INGRESS(threads), .min = 0, .max = UINT32_MAX, .dflt = 1, .rule = one_thread,
     .doc = "ingress threads; only 1 for now"},
    {"max_header_bytes", SIZE, INGRESS(max_header_bytes), .min = 1 * KiB, .max = 64 * KiB,
     .dflt = 8 * KiB, .doc = "request line plus headers; more gets 431"},
    {"reject_delay", DURATION, INGRESS(reject_delay_ms), .min = 0, .max = 10 * 1000, .dflt = 100,
     .doc = "how late a 429 is answered"},
    /* 0 (absent): the ingress derives it from its open-file limit when it starts. */
    {"max_connections", UINT, INGRESS(max_connections), .min = 1, .max = 1u << 20, .dflt = 0,
     .doc = "client connections at once"},
    {"request_read_timeout", DURATION, INGRESS(request_read_timeout_ms), .min = 100,
     .max = 10 * 60 * 1000, .dflt = 10 * 1000, .doc = "deadline to deliver a whole request"},

    /* ingress.tls: config_check.c resolves relative paths and checks plain_listen/mode. */
    {"cert", STRING, TLS(cert), REQUIRED, .min = 1, .max = TEXT_MAX,
     .doc = "PEM certificate chain, leaf first"},
    {"key", STRING, TLS(key), REQUIRED, .min = 1, .max = TEXT_MAX,
     .doc = "PEM private key of the certificate, not encrypted"},
    {"plain_listen", ENDPOINT, TLS(plain_listen), ADDR(struct pd_config_tls, plain_listen_addr),
     .min = 1, .max = ADDR_MAX, .doc = "an optional plain HTTP listener"},
    {"plain_mode", ENUM, TLS(plain_mode), .dflt = PD_TLS_PLAIN_REDIRECT,
     .enum_strings = plain_mode_strings, .enum_count = CYAML_ARRAY_LEN(plain_mode_strings),
     .doc = "what plain_listen does: redirect to https, or serve"},

    {"spin_us", UINT, ENGINE(spin_us), .min = 0, .max = 100000, .dflt = 50,
     .doc = "the most an idle consumer polls before it sleeps"},
    {"poll", ENUM, ENGINE(poll), .dflt = PD_POLL_ADAPTIVE, .enum_strings = poll_strings,
     .enum_count = CYAML_ARRAY_LEN(poll_strings),
     .doc = "adaptive: poll while an arrival is likely; fixed: spin_us every time"},
    {"core", ENUM, ENGINE(core), .dflt = PD_CORE_SHARED, .enum_strings = core_strings,
     .enum_count = CYAML_ARRAY_LEN(core_strings),
     .doc = "shared: polls yield the core; own: the engine's core is its own"},
    {"ring_size", POW2, ENGINE(ring_size), .min = 16, .max = 65536, .dflt = 1024,
     .doc = "inbound ring slots per function instance"},
    {"restart_backoff", DURATION, ENGINE(restart_backoff_ms), .min = 1, .max = 3600 * 1000,
     .dflt = 100, .doc = "first restart delay of a crashed function"},
    {"restart_backoff_max", DURATION, ENGINE(restart_backoff_max_ms), .min = 1, .max = 3600 * 1000,
     .dflt = 5000, .doc = "cap of the doubling restart delay"},
    {"functions_dir", STRING, ENGINE(functions_dir), .min = 1, .max = TEXT_MAX,
     .doc = "where bare exec names are found"},
    {"link_rate", RATE, ENGINE(link_rate), .min = 1 * MiB, .max = 1024 * GiB, .dflt = 0,
     .doc = "bytes per second an engine sends at most"},
    {"max_call_depth", UINT, ENGINE(max_call_depth), .min = 1, .max = 64, .dflt = 16,
     .doc = "calls nested at most under one request"},

    {"name", STRING, NODE(name), REQUIRED, .min = 1, .max = PD_NAME_MAX, .doc = "node name"},
    {"address", IP, NODE(address), REQUIRED, .min = 1, .max = ADDR_MAX,
     .doc = "the node's fabric address"},
    {"port", UINT, NODE(port), REQUIRED, .min = 1, .max = 65535, .doc = "the engine's port"},

    {"name", STRING, TENANT(name), REQUIRED, .min = 1, .max = PD_NAME_MAX, .doc = "tenant name"},
    {"weight", UINT, TENANT(weight), .min = 1, .max = 1000, .dflt = 1,
     .doc = "share of the fabric under contention"},
    {"pool", SIZE, TENANT(pool), .min = 1 * MiB, .max = 64 * GiB, .dflt = 64 * MiB,
     .doc = "shared memory on each node"},
    {"buffer_size", SIZE, TENANT(buffer_size), .min = 4 * KiB, .max = 16 * MiB, .dflt = 16 * KiB,
     .rule = cache_aligned, .doc = "bytes of one buffer, header included"},
    {"max_inflight", UINT, TENANT(max_inflight), .min = 1, .max = 65536, .dflt = 1024,
     .doc = "requests admitted at the ingress at once"},
    {"rate", NUMBER, TENANT(rate), .dflt = 0, .doc = "requests/s admitted; 0: no limit"},
    {"run_as", STRING, TENANT(run_as), .min = 1, .max = 127, .rule = user_group,
     .doc = "\"user\" or \"user:group\" of its functions"},

    {"name", STRING, FUNCTION(name), REQUIRED, .min = 1, .max = PD_NAME_MAX,
     .doc = "function name"},
    {"tenant", STRING, FUNCTION(tenant), REQUIRED, .min = 1, .max = PD_NAME_MAX,
     .doc = "the tenant it belongs to"},
    {"exec", STRING, FUNCTION(exec), REQUIRED, .min = 1, .max = TEXT_MAX, .doc = "the executable"},
    {"args", TEXTS, FUNCTION(args), COUNT(struct pd_config_function, args), .min = 0,
     .max = PD_MAX_ARGS, .doc = "extra argv entries"},
    {"node", STRING, FUNCTION(node), .min = 1, .max = PD_NAME_MAX, .doc = "the node to run on"},
    {"nodes", NAMES, FUNCTION(nodes), COUNT(struct pd_config_function, nodes), .min = 1,
     .max = PD_MAX_NODES, .doc = "or the nodes to run on"},
    {"instances", UINT, FUNCTION(instances), .min = 1, .max = 64, .dflt = 1,
     .doc = "processes per node"},
    {"threads", UINT, FUNCTION(threads), .min = 1, .max = 64, .dflt = 1,
     .doc = "handler threads per process"},
    {"calls", NAMES, FUNCTION(calls), COUNT(struct pd_config_function, calls), .min = 0,
     .max = PD_MAX_CALLS, .doc = "functions of its tenant it may call"},

    {"path", STRING, ROUTE(path), REQUIRED, .min = 1, .max = ROUTE_PATH_MAX,
     .doc = "URL path prefix"},
    {"tenant", STRING, ROUTE(tenant), REQUIRED, .min = 1, .max = PD_NAME_MAX,
     .doc = "the tenant it runs in"},
    {"chain", NAMES, ROUTE(chain), COUNT(struct pd_config_route, chain), REQUIRED, .min = 1,
     .max = PD_MAX_CHAIN, .doc = "functions run in order"},
    {"timeout", DURATION, ROUTE(timeout_ms), .min = 1, .max = 3600 * 1000, .dflt = 5000,
     .doc = "time the ingress waits before a 504"},
};

const size_t pd_config_keys_count = sizeof(pd_config_keys) / sizeof(pd_config_keys[0]);

/* ---- the libcyaml schema, built from the table ---- */

#define SECTION_KEYS_MAX 63 /* the schema walk handles 64 fields a mapping; bits of a mask */

static const cyaml_schema_value_t text_entry = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, TEXT_MAX),
};
static const cyaml_schema_value_t name_entry = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 1, PD_NAME_MAX),
};

static struct {
	/* A section's keys, then its sub-sections, then the end. */
	cyaml_schema_field_t fields[PD_CONFIG_SECTIONS][SECTION_KEYS_MAX + 1];
	cyaml_schema_value_t entries[PD_CONFIG_SECTIONS];
	cyaml_schema_field_t top[PD_CONFIG_SECTIONS + 1];
	cyaml_schema_value_t root;
	bool ok;
} schema;
static pthread_once_t schema_once = PTHREAD_ONCE_INIT;

/* The size a field of this type must have; 0: 2, 4 or 8 (UINT). */
static size_t type_size(enum pd_config_type type)
{
	switch (type) {
	case PD_CONFIG_STRING:
	case PD_CONFIG_ENDPOINT:
	case PD_CONFIG_IP: return sizeof(char *);
	case PD_CONFIG_ENUM: return sizeof(enum pd_primitive);
	case PD_CONFIG_UINT: return 0;
	case PD_CONFIG_POW2: return sizeof(uint32_t);
	case PD_CONFIG_NUMBER: return sizeof(double);
	case PD_CONFIG_SIZE:
	case PD_CONFIG_DURATION:
	case PD_CONFIG_RATE: return sizeof(uint64_t);
	case PD_CONFIG_NAMES:
	case PD_CONFIG_TEXTS: return sizeof(char **);
	}
	return SIZE_MAX;
}

/* Is the field a char * string? */
static bool is_text(enum pd_config_type type)
{
	return type == PD_CONFIG_STRING || type == PD_CONFIG_ENDPOINT || type == PD_CONFIG_IP;
}

/* One row as a libcyaml field; false if the row contradicts its field. */
static bool schema_field(const struct pd_config_key *k, cyaml_schema_field_t *f)
{
	enum cyaml_flag flags = k->required ? CYAML_FLAG_DEFAULT : CYAML_FLAG_OPTIONAL;
	size_t want = type_size(k->type);

	if (want == 0 ? k->size != 2 && k->size != 4 && k->size != 8 : k->size != want)
		return false;
	if (k->min > k->max || (k->dflt_text != NULL && !is_text(k->type)))
		return false;
	*f = (cyaml_schema_field_t){.key = k->name, .data_offset = (uint32_t)k->offset};
	switch (k->type) {
	case PD_CONFIG_STRING:
	case PD_CONFIG_ENDPOINT:
	case PD_CONFIG_IP:
		f->value = (cyaml_schema_value_t){
		    CYAML_VALUE_STRING(flags | CYAML_FLAG_POINTER, char *, (uint32_t)k->min,
		                       (uint32_t)k->max),
		};
		return k->max <= TEXT_MAX;
	case PD_CONFIG_ENUM:
		f->value = (cyaml_schema_value_t){
		    CYAML_VALUE_ENUM(flags | CYAML_FLAG_STRICT, enum pd_primitive, k->enum_strings,
		                     k->enum_count),
		};
		return k->enum_strings != NULL;
	case PD_CONFIG_UINT:
	case PD_CONFIG_POW2:
		f->value = (cyaml_schema_value_t){
		    .type = CYAML_UINT, .flags = flags, .data_size = (uint32_t)k->size};
		return true;
	case PD_CONFIG_NUMBER:
		f->value = (cyaml_schema_value_t){CYAML_VALUE_FLOAT(flags, double)};
		return true;
	case PD_CONFIG_SIZE:
	case PD_CONFIG_DURATION:
	case PD_CONFIG_RATE:
		/* libcyaml skips it; the shape check and pd_config_keys_apply read its text. */
		*f = (cyaml_schema_field_t)CYAML_FIELD_IGNORE(k->name, flags);
		return true;
	case PD_CONFIG_NAMES:
	case PD_CONFIG_TEXTS:
		f->count_offset = (uint32_t)k->aux;
		f->count_size = sizeof(uint32_t);
		f->value = (cyaml_schema_value_t){
		    CYAML_VALUE_SEQUENCE(flags | CYAML_FLAG_POINTER, char *,
		                         k->type == PD_CONFIG_NAMES ? &name_entry : &text_entry,
		                         (uint32_t)k->min, (uint32_t)k->max),
		};
		return true;
	}
	return false;
}

/*
 * Sub-section s as a field of its parent's mapping, after the parent's keys; false if
 * the parent cannot hold it.
 */
static bool schema_sub(int s, uint32_t count[PD_CONFIG_SECTIONS])
{
	const struct pd_config_section_def *def = &pd_config_sections[s];
	const struct pd_config_section_def *parent;
	const char *key = strrchr(def->name, '.');

	if (def->list || def->parent >= PD_CONFIG_SECTIONS || key == NULL)
		return false;
	parent = &pd_config_sections[def->parent];
	if (parent->list || parent->sub || count[def->parent] >= SECTION_KEYS_MAX ||
	    def->offset < parent->offset || def->offset + def->size > parent->offset + parent->size)
		return false;
	schema.fields[def->parent][count[def->parent]++] = (cyaml_schema_field_t){
	    .key = key + 1,
	    .data_offset = (uint32_t)(def->offset - parent->offset),
	    .value = {.type = CYAML_MAPPING,
	              .flags = CYAML_FLAG_OPTIONAL,
	              .data_size = (uint32_t)def->size,
	              .mapping.fields = schema.fields[s]},
	};
	return true;
}

static void schema_build(void)
{
	uint32_t count[PD_CONFIG_SECTIONS] = {0}, ntop = 0;

	for (size_t i = 0; i < pd_config_keys_count; i++) {
		const struct pd_config_key *k = &pd_config_keys[i];

		if (k->section >= PD_CONFIG_SECTIONS || count[k->section] >= SECTION_KEYS_MAX ||
		    !schema_field(k, &schema.fields[k->section][count[k->section]++]))
			return;
	}
	for (int s = 0; s < PD_CONFIG_SECTIONS; s++)
		if (pd_config_sections[s].sub && !schema_sub(s, count))
			return;
	for (int s = 0; s < PD_CONFIG_SECTIONS; s++) {
		const struct pd_config_section_def *def = &pd_config_sections[s];
		cyaml_schema_field_t *top;

		schema.fields[s][count[s]] = (cyaml_schema_field_t)CYAML_FIELD_END;
		if (def->sub)
			continue;
		top = &schema.top[ntop++];
		*top =
		    (cyaml_schema_field_t){.key = def->name, .data_offset = (uint32_t)def->offset};
		if (!def->list) {
			top->value = (cyaml_schema_value_t){.type = CYAML_MAPPING,
			                                    .flags = CYAML_FLAG_OPTIONAL,
			                                    .data_size = (uint32_t)def->size,
			                                    .mapping.fields = schema.fields[s]};
			continue;
		}
		schema.entries[s] = (cyaml_schema_value_t){.type = CYAML_MAPPING,
		                                           .flags = CYAML_FLAG_DEFAULT,
		                                           .data_size = (uint32_t)def->size,
		                                           .mapping.fields = schema.fields[s]};
		top->count_offset = (uint32_t)def->count_offset;
		top->count_size = sizeof(uint32_t);
		top->value = (cyaml_schema_value_t){
		    .type = CYAML_SEQUENCE,
		    .flags = CYAML_FLAG_POINTER,
		    .data_size = (uint32_t)def->size,
		    .sequence = {.entry = &schema.entries[s], .min = 1, .max = def->max}};
	}
	schema.top[ntop] = (cyaml_schema_field_t)CYAML_FIELD_END;
	schema.root = (cyaml_schema_value_t){.type = CYAML_MAPPING,
	                                     .flags = CYAML_FLAG_POINTER,
	                                     .data_size = sizeof(struct pd_config),
	                                     .mapping.fields = schema.top};
	schema.ok = true;
}

const cyaml_schema_value_t *pd_config_schema(void)
{
	pthread_once(&schema_once, schema_build);
	return schema.ok ? &schema.root : NULL;
}

/* ---- the generic setters ---- */

struct setter {
	const struct pd_config_key *key;
	void *field;
	const char *path;
	const char *text; /* as written; NULL if absent (or not a scalar) */
	struct pd_config_diags *diags;
	const struct pd_config_index *index;
};

/* One error at the key's value, prefixed with its path. */
__attribute__((format(printf, 2, 3))) static void fail(const struct setter *s, const char *fmt, ...)
{
	char message[768];
	va_list args;

	va_start(args, fmt);
	vsnprintf(message, sizeof(message), fmt, args);
	va_end(args);
	pd_config_diag_add(s->diags, pd_config_index_mark(s->index, s->path, false), "%s: %s",
	                   s->path, message);
}

static uint64_t load_uint(const void *field, size_t size)
{
	if (size == 2)
		return *(const uint16_t *)field;
	if (size == 4)
		return *(const uint32_t *)field;
	return *(const uint64_t *)field;
}

static void store_uint(void *field, size_t size, uint64_t value)
{
	if (size == 2)
		*(uint16_t *)field = (uint16_t)value;
	else if (size == 4)
		*(uint32_t *)field = (uint32_t)value;
	else
		*(uint64_t *)field = value;
}

static bool set_size(const struct setter *s, uint64_t *out)
{
	const struct pd_config_key *k = s->key;
	char quoted[PD_CONFIG_QUOTE_LEN], lo[32], hi[32];
	const char *text = s->text;
	uint64_t bytes;

	if (pd_parse_size(text, &bytes) < 0) {
		const char *unit = text + strspn(text, "0123456789 ");
		bool decimal_unit =
		    unit != text &&
		    (strcmp(unit, "K") == 0 || strcmp(unit, "KB") == 0 || strcmp(unit, "kB") == 0 ||
		     strcmp(unit, "M") == 0 || strcmp(unit, "MB") == 0 || strcmp(unit, "G") == 0 ||
		     strcmp(unit, "GB") == 0);

		fail(s,
		     "%s is not a size: write a number of bytes, or a number followed by KiB, "
		     "MiB or GiB%s",
		     pd_config_quote(quoted, sizeof(quoted), text),
		     decimal_unit ? " (units are binary: KiB, not KB)" : "");
		return false;
	}
	if (bytes < k->min || bytes > k->max) {
		fail(s, "%s is out of range (%s..%s)",
		     pd_config_quote(quoted, sizeof(quoted), text),
		     pd_config_format_size(lo, sizeof(lo), k->min),
		     pd_config_format_size(hi, sizeof(hi), k->max));
		return false;
	}
	*out = bytes;
	return true;
}

static bool set_duration(const struct setter *s, uint64_t *out)
{
	const struct pd_config_key *k = s->key;
	char quoted[PD_CONFIG_QUOTE_LEN], lo[32], hi[32];
	const char *text = s->text;
	uint64_t ms;

	if (pd_parse_duration(text, &ms) < 0) {
		if (strspn(text, "0123456789") == strlen(text))
			fail(s, "%s has no unit: write it as %sms, %ss or %sm",
			     pd_config_quote(quoted, sizeof(quoted), text), text, text, text);
		else
			fail(
			    s,
			    "%s is not a duration: write a number followed by ms, s or m (minutes)",
			    pd_config_quote(quoted, sizeof(quoted), text));
		return false;
	}
	if (ms < k->min || ms > k->max) {
		fail(s, "%s is out of range (%s..%s)",
		     pd_config_quote(quoted, sizeof(quoted), text),
		     pd_config_format_duration(lo, sizeof(lo), k->min),
		     pd_config_format_duration(hi, sizeof(hi), k->max));
		return false;
	}
	*out = ms;
	return true;
}

/* A size per second ("800MiB/s"; the "/s" may be left out). */
static bool set_rate(const struct setter *s, uint64_t *out)
{
	const struct pd_config_key *k = s->key;
	char value[PD_CONFIG_VALUE_MAX + 1], quoted[PD_CONFIG_QUOTE_LEN], lo[32], hi[32];
	size_t n = strlen(s->text);
	uint64_t bytes;

	if (n >= 2 && strcmp(s->text + n - 2, "/s") == 0)
		n -= 2;
	snprintf(value, sizeof(value), "%.*s", (int)n, s->text);
	if (pd_parse_size(value, &bytes) < 0 || bytes < k->min || bytes > k->max) {
		fail(s,
		     "%s is not a rate from %s/s to %s/s (bytes per second, e.g. \"800MiB/s\"; "
		     "units are binary)",
		     pd_config_quote(quoted, sizeof(quoted), s->text),
		     pd_config_format_size(lo, sizeof(lo), k->min),
		     pd_config_format_size(hi, sizeof(hi), k->max));
		return false;
	}
	*out = bytes;
	return true;
}

/* The value of a present key: parsed, checked. false (reported) if it is bad. */
static bool set_present(const struct setter *s, void *entry)
{
	const struct pd_config_key *k = s->key;
	char quoted[PD_CONFIG_QUOTE_LEN];
	const char *why;
	uint64_t v;

	switch (k->type) {
	case PD_CONFIG_STRING:
	case PD_CONFIG_ENUM:
	case PD_CONFIG_NAMES:
	case PD_CONFIG_TEXTS: return true; /* the shape check and libcyaml did it all */
	case PD_CONFIG_ENDPOINT:
		if (pd_config_parse_addr(*(char **)s->field,
		                         (struct pd_config_addr *)((char *)entry + k->aux),
		                         &why) == 0)
			return true;
		fail(s, "%s is not an address: %s",
		     pd_config_quote(quoted, sizeof(quoted), *(char **)s->field), why);
		return false;
	case PD_CONFIG_IP:
		if (pd_config_ip_literal(*(char **)s->field, AF_UNSPEC, NULL, NULL))
			return true;
		fail(s, "%s is not an IP address (host names are not accepted)",
		     pd_config_quote(quoted, sizeof(quoted), *(char **)s->field));
		return false;
	case PD_CONFIG_UINT:
		v = load_uint(s->field, k->size);
		if (v >= k->min && v <= k->max)
			return true;
		fail(s, "%" PRIu64 " is out of range (%" PRIu64 "..%" PRIu64 ")", v, k->min,
		     k->max);
		return false;
	case PD_CONFIG_POW2:
		v = *(uint32_t *)s->field;
		if (v >= k->min && v <= k->max && (v & (v - 1)) == 0)
			return true;
		fail(s, "%" PRIu64 " is not a power of two from %" PRIu64 " to %" PRIu64, v, k->min,
		     k->max);
		return false;
	case PD_CONFIG_NUMBER:
		if (*(double *)s->field >= (double)k->min)
			return true;
		fail(s, "%g is negative: use 0 for no limit", *(double *)s->field);
		return false;
	case PD_CONFIG_SIZE: return set_size(s, s->field);
	case PD_CONFIG_DURATION: return set_duration(s, s->field);
	case PD_CONFIG_RATE: return set_rate(s, s->field);
	}
	return false;
}

/* The default of an absent key (or of one that was bad); -ENOMEM. */
static int set_default(const struct pd_config_key *k, void *field)
{
	switch (k->type) {
	case PD_CONFIG_STRING:
	case PD_CONFIG_ENDPOINT:
	case PD_CONFIG_IP:
		if (*(char **)field != NULL || k->dflt_text == NULL)
			return 0;
		*(char **)field = strdup(k->dflt_text);
		return *(char **)field != NULL ? 0 : -ENOMEM;
	case PD_CONFIG_ENUM: *(enum pd_primitive *)field = (enum pd_primitive)k->dflt; return 0;
	case PD_CONFIG_NUMBER: *(double *)field = (double)k->dflt; return 0;
	case PD_CONFIG_UINT:
	case PD_CONFIG_POW2:
	case PD_CONFIG_SIZE:
	case PD_CONFIG_DURATION:
	case PD_CONFIG_RATE: store_uint(field, k->size, k->dflt); return 0;
	case PD_CONFIG_NAMES:
	case PD_CONFIG_TEXTS: return 0;
	}
	return 0;
}

uint64_t pd_config_keys_apply(enum pd_config_section section, void *entry, const char *prefix,
                              const struct pd_config_index *index, struct pd_config_diags *diags,
                              int *err)
{
	uint64_t failed = 0, bit = 1;

	for (size_t i = 0; i < pd_config_keys_count; i++) {
		const struct pd_config_key *k = &pd_config_keys[i];
		char path[PD_CONFIG_PATH_LEN], why[512];
		struct setter s = {.key = k, .diags = diags, .index = index};
		bool present;

		if (k->section != section)
			continue;
		snprintf(path, sizeof(path), "%s.%s", prefix, k->name);
		s.path = path;
		s.field = (char *)entry + k->offset;
		s.text = pd_config_index_text(index, path);
		present = pd_config_index_find(index, path) != NULL;
		if (!present) {
			if (set_default(k, s.field) < 0)
				*err = -ENOMEM;
			else if (k->type == PD_CONFIG_ENDPOINT && *(char **)s.field != NULL &&
			         !set_present(&s, entry))
				failed |=
				    bit; /* a default that does not parse: a bug in the table */
		} else if (!set_present(&s, entry)) {
			failed |= bit;
		} else if (k->rule != NULL && k->rule(s.field, s.text, why, sizeof(why)) != NULL) {
			fail(&s, "%s", why);
			failed |= bit;
		}
		/* A bad number takes its default, so checks across keys see a sane value. */
		if ((failed & bit) && !is_text(k->type))
			set_default(k, s.field);
		bit <<= 1;
	}
	return failed;
}

uint64_t pd_config_key_bit(enum pd_config_section section, const char *name)
{
	uint64_t bit = 1;

	for (size_t i = 0; i < pd_config_keys_count; i++) {
		if (pd_config_keys[i].section != section)
			continue;
		if (strcmp(pd_config_keys[i].name, name) == 0)
			return bit;
		bit <<= 1;
	}
	return 0;
}
