/* SPDX-License-Identifier: Apache-2.0 */
/* Loads the cluster file: a libcyaml typed load, then defaults and whole-file validation. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/config_internal.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

#define CONFIG_FILE_MAX (1 * MiB) /* the largest legal cluster is ~100 KiB; bounds parse memory */
#define TEXT_MAX 4095             /* paths and other free text */
#define ARGS_MAX 63               /* the supervisor builds argv[64]: the path, the args, NULL */
#define ROUTE_PATH_MAX 255

/* ---- schema ---- */

static const cyaml_schema_value_t text_entry = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, TEXT_MAX),
};
static const cyaml_schema_value_t name_entry = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 1, PD_NAME_MAX),
};

static const cyaml_strval_t primitive_strings[] = {
    {"two-sided", PD_PRIMITIVE_TWO_SIDED},
    {"one-sided", PD_PRIMITIVE_ONE_SIDED},
};

#define OPT (CYAML_FLAG_OPTIONAL)
#define PTR (CYAML_FLAG_POINTER)
#define OPT_PTR (CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER)

static const cyaml_schema_field_t fabric_fields[] = {
    CYAML_FIELD_STRING_PTR("provider", OPT_PTR, struct pd_config_fabric, provider, 1, PD_NAME_MAX),
    CYAML_FIELD_ENUM("primitive", OPT | CYAML_FLAG_STRICT, struct pd_config_fabric, primitive,
                     primitive_strings, CYAML_ARRAY_LEN(primitive_strings)),
    CYAML_FIELD_END,
};

static const cyaml_strval_t tls_plain_mode_strings[] = {
    {"redirect", PD_TLS_PLAIN_REDIRECT},
    {"serve", PD_TLS_PLAIN_SERVE},
};

static const cyaml_schema_field_t tls_fields[] = {
    CYAML_FIELD_STRING_PTR("cert", PTR, struct pd_config_tls, cert, 1, TEXT_MAX),
    CYAML_FIELD_STRING_PTR("key", PTR, struct pd_config_tls, key, 1, TEXT_MAX),
    CYAML_FIELD_STRING_PTR("plain_listen", OPT_PTR, struct pd_config_tls, plain_listen, 1, 127),
    CYAML_FIELD_ENUM("plain_mode", OPT | CYAML_FLAG_STRICT, struct pd_config_tls, plain_mode,
                     tls_plain_mode_strings, CYAML_ARRAY_LEN(tls_plain_mode_strings)),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t ingress_fields[] = {
    CYAML_FIELD_STRING_PTR("listen", OPT_PTR, struct pd_config_ingress, listen, 1, 127),
    CYAML_FIELD_STRING_PTR("admin", OPT_PTR, struct pd_config_ingress, admin, 1, 127),
    CYAML_FIELD_STRING_PTR("address", OPT_PTR, struct pd_config_ingress, address, 1, 127),
    CYAML_FIELD_UINT("threads", OPT, struct pd_config_ingress, threads),
    CYAML_FIELD_STRING_PTR("max_header_bytes", OPT_PTR, struct pd_config_ingress,
                           max_header_bytes_text, 1, 63),
    CYAML_FIELD_STRING_PTR("reject_delay", OPT_PTR, struct pd_config_ingress,
                           reject_delay_text, 1, 63),
    CYAML_FIELD_UINT("max_connections", OPT, struct pd_config_ingress, max_connections),
    CYAML_FIELD_STRING_PTR("request_read_timeout", OPT_PTR, struct pd_config_ingress,
                           request_read_timeout_text, 1, 63),
    CYAML_FIELD_MAPPING("tls", OPT, struct pd_config_ingress, tls, tls_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t engine_fields[] = {
    CYAML_FIELD_UINT("spin_us", OPT, struct pd_config_engine, spin_us),
    CYAML_FIELD_UINT("ring_size", OPT, struct pd_config_engine, ring_size),
    CYAML_FIELD_STRING_PTR("restart_backoff", OPT_PTR, struct pd_config_engine,
                           restart_backoff_text, 1, 63),
    CYAML_FIELD_STRING_PTR("restart_backoff_max", OPT_PTR, struct pd_config_engine,
                           restart_backoff_max_text, 1, 63),
    CYAML_FIELD_STRING_PTR("functions_dir", OPT_PTR, struct pd_config_engine, functions_dir, 1,
                           TEXT_MAX),
    CYAML_FIELD_STRING_PTR("link_rate", OPT_PTR, struct pd_config_engine, link_rate_text, 1, 63),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t node_fields[] = {
    CYAML_FIELD_STRING_PTR("name", PTR, struct pd_config_node, name, 1, PD_NAME_MAX),
    CYAML_FIELD_STRING_PTR("address", PTR, struct pd_config_node, address, 1, 127),
    CYAML_FIELD_UINT("port", CYAML_FLAG_DEFAULT, struct pd_config_node, port),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t tenant_fields[] = {
    CYAML_FIELD_STRING_PTR("name", PTR, struct pd_config_tenant, name, 1, PD_NAME_MAX),
    CYAML_FIELD_UINT("weight", OPT, struct pd_config_tenant, weight),
    CYAML_FIELD_STRING_PTR("pool", OPT_PTR, struct pd_config_tenant, pool_text, 1, 63),
    CYAML_FIELD_STRING_PTR("buffer_size", OPT_PTR, struct pd_config_tenant, buffer_size_text, 1,
                           63),
    CYAML_FIELD_UINT("max_inflight", OPT, struct pd_config_tenant, max_inflight),
    CYAML_FIELD_FLOAT("rate", OPT, struct pd_config_tenant, rate),
    CYAML_FIELD_STRING_PTR("run_as", OPT_PTR, struct pd_config_tenant, run_as, 1, 127),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t function_fields[] = {
    CYAML_FIELD_STRING_PTR("name", PTR, struct pd_config_function, name, 1, PD_NAME_MAX),
    CYAML_FIELD_STRING_PTR("tenant", PTR, struct pd_config_function, tenant, 1, PD_NAME_MAX),
    CYAML_FIELD_STRING_PTR("exec", PTR, struct pd_config_function, exec, 1, TEXT_MAX),
    CYAML_FIELD_SEQUENCE("args", OPT_PTR, struct pd_config_function, args, &text_entry, 0,
                         ARGS_MAX),
    CYAML_FIELD_STRING_PTR("node", OPT_PTR, struct pd_config_function, node, 1, PD_NAME_MAX),
    CYAML_FIELD_SEQUENCE("nodes", OPT_PTR, struct pd_config_function, nodes, &name_entry, 1,
                         PD_MAX_NODES),
    CYAML_FIELD_UINT("instances", OPT, struct pd_config_function, instances),
    CYAML_FIELD_UINT("threads", OPT, struct pd_config_function, threads),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t route_fields[] = {
    CYAML_FIELD_STRING_PTR("path", PTR, struct pd_config_route, path, 1, ROUTE_PATH_MAX),
    CYAML_FIELD_STRING_PTR("tenant", PTR, struct pd_config_route, tenant, 1, PD_NAME_MAX),
    CYAML_FIELD_SEQUENCE("chain", PTR, struct pd_config_route, chain, &name_entry, 1, PD_MAX_CHAIN),
    CYAML_FIELD_STRING_PTR("timeout", OPT_PTR, struct pd_config_route, timeout_text, 1, 63),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t node_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct pd_config_node, node_fields),
};
static const cyaml_schema_value_t tenant_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct pd_config_tenant, tenant_fields),
};
static const cyaml_schema_value_t function_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct pd_config_function, function_fields),
};
static const cyaml_schema_value_t route_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct pd_config_route, route_fields),
};

static const cyaml_schema_field_t config_fields[] = {
    CYAML_FIELD_MAPPING("fabric", OPT, struct pd_config, fabric, fabric_fields),
    CYAML_FIELD_MAPPING("ingress", OPT, struct pd_config, ingress, ingress_fields),
    CYAML_FIELD_MAPPING("engine", OPT, struct pd_config, engine, engine_fields),
    CYAML_FIELD_SEQUENCE("nodes", PTR, struct pd_config, nodes, &node_schema, 1, PD_MAX_NODES),
    CYAML_FIELD_SEQUENCE("tenants", PTR, struct pd_config, tenants, &tenant_schema, 1,
                         PD_MAX_TENANTS),
    CYAML_FIELD_SEQUENCE("functions", PTR, struct pd_config, functions, &function_schema, 1,
                         PD_MAX_FUNCTIONS),
    CYAML_FIELD_SEQUENCE("routes", PTR, struct pd_config, routes, &route_schema, 1, PD_MAX_ROUTES),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t config_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct pd_config, config_fields),
};

/*
 * Our own allocator rather than cyaml_mem, so that strings we strdup() as defaults can be
 * freed by cyaml_free() and everything libcyaml allocates can be freed with free().
 */
static void *config_mem(void *ctx, void *ptr, size_t size)
{
	(void)ctx;
	if (size == 0) {
		free(ptr);
		return NULL;
	}
	return realloc(ptr, size);
}

static const cyaml_config_t quiet_cyaml = {
    .log_fn = NULL,
    .mem_fn = config_mem,
    .log_level = CYAML_LOG_ERROR,
    .flags = CYAML_CFG_DEFAULT,
};

/* ---- value parsers ---- */

/* Decimal digits, at least one; -EINVAL on overflow. Advances *p past them. */
static int parse_decimal(const char **p, uint64_t *value)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		uint64_t digit = (uint64_t)(*s - '0');

		if (v > (UINT64_MAX - digit) / 10)
			return -EINVAL;
		v = v * 10 + digit;
	}
	*p = s;
	*value = v;
	return 0;
}

int pd_parse_size(const char *text, uint64_t *bytes)
{
	static const struct {
		const char *suffix;
		uint64_t factor;
	} units[] = {{"KiB", KiB}, {"MiB", MiB}, {"GiB", GiB}};
	const char *p = text;
	uint64_t value;

	if (text == NULL || bytes == NULL || parse_decimal(&p, &value) < 0)
		return -EINVAL;
	if (*p == '\0') {
		*bytes = value;
		return 0;
	}
	if (*p == ' ')
		p++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].suffix) != 0)
			continue;
		if (value > UINT64_MAX / units[i].factor)
			return -EINVAL;
		*bytes = value * units[i].factor;
		return 0;
	}
	return -EINVAL;
}

int pd_parse_duration(const char *text, uint64_t *ms)
{
	static const struct {
		const char *suffix;
		uint64_t factor;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}};
	const char *p = text;
	uint64_t value;

	if (text == NULL || ms == NULL || parse_decimal(&p, &value) < 0)
		return -EINVAL;
	/* A bare number is refused: "5" could mean seconds to one reader and ms to another. */
	if (*p == ' ')
		p++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].suffix) != 0)
			continue;
		if (value > UINT64_MAX / units[i].factor)
			return -EINVAL;
		*ms = value * units[i].factor;
		return 0;
	}
	return -EINVAL;
}

/* An IP literal of the given family (AF_UNSPEC: either); binary form in bin if not NULL. */
static bool ip_literal(const char *text, int family, int *family_out, unsigned char bin[16])
{
	unsigned char scratch[16];

	if (bin == NULL)
		bin = scratch;
	memset(bin, 0, 16);
	if (family != AF_INET6 && inet_pton(AF_INET, text, bin) == 1) {
		if (family_out != NULL)
			*family_out = AF_INET;
		return true;
	}
	if (family != AF_INET && inet_pton(AF_INET6, text, bin) == 1) {
		if (family_out != NULL)
			*family_out = AF_INET6;
		return true;
	}
	return false;
}

/* pd_parse_addr with the reason of a failure, for messages. */
static int parse_addr(const char *text, struct pd_config_addr *addr, const char **why)
{
	struct pd_config_addr parsed = {.host = ""};
	const char *host, *colon, *p;
	size_t host_len;
	uint64_t port;
	int family;

	*why = "expected IP:PORT or [IPv6]:PORT";
	if (text == NULL)
		return -EINVAL;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL)
			return -EINVAL;
		host = text + 1;
		host_len = (size_t)(close - host);
		colon = close + 1;
		family = AF_INET6;
		if (*colon != ':') {
			if (*colon == '\0')
				*why = "the port is missing";
			return -EINVAL;
		}
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL) {
			*why = "the port is missing";
			return -EINVAL;
		}
		host = text;
		host_len = (size_t)(colon - host);
		family = AF_INET;
		if (memchr(host, ':', host_len) != NULL) {
			*why = "write an IPv6 address in brackets, as in [::1]:8080";
			return -EINVAL;
		}
	}
	if (host_len == 0) {
		*why = "the IP address is missing";
		return -EINVAL;
	}
	if (host_len >= sizeof(parsed.host)) {
		*why = "not an IP address";
		return -EINVAL;
	}
	memcpy(parsed.host, host, host_len);
	parsed.host[host_len] = '\0';
	if (!ip_literal(parsed.host, family, NULL, NULL)) {
		*why = family == AF_INET6 ? "not an IPv6 address"
		                          : "not an IP address (host names are not accepted)";
		return -EINVAL;
	}
	p = colon + 1;
	if (parse_decimal(&p, &port) < 0 || *p != '\0' || port < 1 || port > 65535) {
		*why = "the port must be a number from 1 to 65535";
		return -EINVAL;
	}
	parsed.port = (uint16_t)port;
	*addr = parsed;
	return 0;
}

int pd_parse_addr(const char *text, struct pd_config_addr *addr)
{
	const char *why;

	if (addr == NULL)
		return -EINVAL;
	return parse_addr(text, addr, &why);
}

/* "16KiB" for 16384, "1000" for 1000: limits in messages read like the values users write. */
static const char *format_size(char *buf, size_t size, uint64_t bytes)
{
	if (bytes >= GiB && bytes % GiB == 0)
		snprintf(buf, size, "%" PRIu64 "GiB", bytes / GiB);
	else if (bytes >= MiB && bytes % MiB == 0)
		snprintf(buf, size, "%" PRIu64 "MiB", bytes / MiB);
	else if (bytes >= KiB && bytes % KiB == 0)
		snprintf(buf, size, "%" PRIu64 "KiB", bytes / KiB);
	else
		snprintf(buf, size, "%" PRIu64, bytes);
	return buf;
}

static const char *format_duration(char *buf, size_t size, uint64_t ms)
{
	if (ms >= 60000 && ms % 60000 == 0)
		snprintf(buf, size, "%" PRIu64 "m", ms / 60000);
	else if (ms >= 1000 && ms % 1000 == 0)
		snprintf(buf, size, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, size, "%" PRIu64 "ms", ms);
	return buf;
}

/* ---- validation ---- */

#define PATH_LEN 256
#define QUOTE_LEN 80
#define LIST_LEN 320

struct check {
	struct pd_config *cfg;
	const struct pd_config_index *index;
	struct pd_config_diags *diags;
	char path[PATH_LEN];
	int err; /* -ENOMEM */
};

/* Formats a YAML path into c->path ("routes[0].chain[1]") and returns it. */
__attribute__((format(printf, 2, 3))) static const char *at(struct check *c, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(c->path, sizeof(c->path), fmt, args);
	va_end(args);
	return c->path;
}

static bool present(struct check *c, const char *path)
{
	return pd_config_index_find(c->index, path) != NULL;
}

/* One error at path (at its key when at_key), prefixed with the path itself. */
__attribute__((format(printf, 4, 5))) static void fail(struct check *c, const char *path,
                                                       bool at_key, const char *fmt, ...)
{
	char message[768];
	va_list args;

	va_start(args, fmt);
	vsnprintf(message, sizeof(message), fmt, args);
	va_end(args);
	pd_config_diag_add(c->diags, pd_config_index_mark(c->index, path, at_key), "%s: %s", path,
	                   message);
}

static const char *mark_text(struct check *c, const char *path, char *buf, size_t size)
{
	struct pd_config_mark m = pd_config_index_mark(c->index, path, false);

	snprintf(buf, size, "%" PRIu32 ":%" PRIu32, m.line, m.column);
	return buf;
}

static void set_default(struct check *c, char **field, const char *value)
{
	if (*field != NULL)
		return;
	*field = strdup(value);
	if (*field == NULL)
		c->err = -ENOMEM;
}

static bool valid_name(const char *name)
{
	size_t len = strlen(name);

	if (len < 1 || len > PD_NAME_MAX)
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '-'))
			return false;
	return true;
}

/* Appends name to a ", "-separated list, ending it with "..." once it is full. */
static void list_add(char *list, size_t size, const char *name)
{
	size_t n = strlen(list);

	if (n >= 3 && strcmp(list + n - 3, "...") == 0)
		return;
	if (n + strlen(name) + 2 + 5 >= size) {
		snprintf(list + n, size - n, "%s...", n ? ", " : "");
		return;
	}
	snprintf(list + n, size - n, "%s%s", n ? ", " : "", name);
}

/*
 * Checks the name at section[i].name; reports an invalid name or a duplicate of an earlier
 * entry. Returns false if it is unusable.
 */
static bool check_name(struct check *c, const char *section, const char *kind, uint32_t i,
                       const char *name, const char *(*name_of)(const struct pd_config *, uint32_t))
{
	char quoted[QUOTE_LEN], first[32], path[PATH_LEN];

	snprintf(path, sizeof(path), "%s[%" PRIu32 "].name", section, i);
	if (!valid_name(name)) {
		fail(c, path, false,
		     "%s is not a valid name: use 1 to %d characters of a-z, 0-9, _ and -",
		     pd_config_quote(quoted, sizeof(quoted), name), PD_NAME_MAX);
		return false;
	}
	for (uint32_t j = 0; j < i; j++) {
		if (strcmp(name_of(c->cfg, j), name) != 0)
			continue;
		fail(c, path, false, "duplicate %s name \"%s\" (first at %s)", kind, name,
		     mark_text(c, at(c, "%s[%" PRIu32 "].name", section, j), first, sizeof(first)));
		return false;
	}
	return true;
}

static const char *node_name(const struct pd_config *cfg, uint32_t i)
{
	return cfg->nodes[i].name;
}

static const char *tenant_name(const struct pd_config *cfg, uint32_t i)
{
	return cfg->tenants[i].name;
}

static const char *function_name(const struct pd_config *cfg, uint32_t i)
{
	return cfg->functions[i].name;
}

/* Parses an optional size at path into *out (dflt if absent); false on error. */
static bool check_size(struct check *c, const char *path, const char *text, uint64_t dflt,
                       uint64_t min, uint64_t max, uint64_t *out)
{
	char quoted[QUOTE_LEN], lo[32], hi[32];
	uint64_t bytes;

	*out = dflt;
	if (text == NULL)
		return true;
	if (pd_parse_size(text, &bytes) < 0) {
		const char *unit = text + strspn(text, "0123456789 ");
		bool decimal_unit =
		    unit != text &&
		    (strcmp(unit, "K") == 0 || strcmp(unit, "KB") == 0 || strcmp(unit, "kB") == 0 ||
		     strcmp(unit, "M") == 0 || strcmp(unit, "MB") == 0 || strcmp(unit, "G") == 0 ||
		     strcmp(unit, "GB") == 0);

		fail(c, path, false,
		     "%s is not a size: write a number of bytes, or a number followed by KiB, "
		     "MiB or GiB%s",
		     pd_config_quote(quoted, sizeof(quoted), text),
		     decimal_unit ? " (units are binary: KiB, not KB)" : "");
		return false;
	}
	if (bytes < min || bytes > max) {
		fail(c, path, false, "%s is out of range (%s..%s)",
		     pd_config_quote(quoted, sizeof(quoted), text),
		     format_size(lo, sizeof(lo), min), format_size(hi, sizeof(hi), max));
		return false;
	}
	*out = bytes;
	return true;
}

/* Parses an optional duration at path into *out in ms (dflt if absent); false on error. */
static bool check_duration(struct check *c, const char *path, const char *text, uint64_t dflt,
                           uint64_t min, uint64_t max, uint64_t *out)
{
	char quoted[QUOTE_LEN], lo[32], hi[32];
	uint64_t ms;

	*out = dflt;
	if (text == NULL)
		return true;
	if (pd_parse_duration(text, &ms) < 0) {
		if (strspn(text, "0123456789") == strlen(text))
			fail(c, path, false, "%s has no unit: write it as %sms, %ss or %sm",
			     pd_config_quote(quoted, sizeof(quoted), text), text, text, text);
		else
			fail(
			    c, path, false,
			    "%s is not a duration: write a number followed by ms, s or m (minutes)",
			    pd_config_quote(quoted, sizeof(quoted), text));
		return false;
	}
	if (ms < min || ms > max) {
		fail(c, path, false, "%s is out of range (%s..%s)",
		     pd_config_quote(quoted, sizeof(quoted), text),
		     format_duration(lo, sizeof(lo), min), format_duration(hi, sizeof(hi), max));
		return false;
	}
	*out = ms;
	return true;
}

/* An optional integer at path: dflt if absent, else it must lie in min..max. */
static void check_uint(struct check *c, const char *path, uint64_t value, uint64_t dflt,
                       uint64_t min, uint64_t max, uint64_t *out)
{
	if (!present(c, path)) {
		*out = dflt;
		return;
	}
	if (value < min || value > max) {
		fail(c, path, false, "%" PRIu64 " is out of range (%" PRIu64 "..%" PRIu64 ")",
		     value, min, max);
		*out = dflt;
		return;
	}
	*out = value;
}

static void check_u32(struct check *c, const char *path, uint32_t *field, uint32_t dflt,
                      uint32_t min, uint32_t max)
{
	uint64_t value;

	check_uint(c, path, *field, dflt, min, max, &value);
	*field = (uint32_t)value;
}

/* Does binding a and b at once collide? Same port and same or wildcard address. */
static bool same_endpoint(const struct pd_config_addr *a, const struct pd_config_addr *b)
{
	static const unsigned char zero[16];
	unsigned char x[16], y[16];
	int fx, fy;

	if (a->port != b->port)
		return false;
	if (!ip_literal(a->host, AF_UNSPEC, &fx, x) || !ip_literal(b->host, AF_UNSPEC, &fy, y))
		return strcmp(a->host, b->host) == 0;
	if (memcmp(x, zero, 16) == 0 || memcmp(y, zero, 16) == 0)
		return true;
	return fx == fy && memcmp(x, y, 16) == 0;
}

static void check_fabric(struct check *c)
{
	struct pd_config_fabric *fabric = &c->cfg->fabric;
	char quoted[QUOTE_LEN];

	set_default(c, &fabric->provider, "tcp");
	if (fabric->provider != NULL && strpbrk(fabric->provider, " \t\r\n") != NULL)
		fail(c, "fabric.provider", false, "%s is not a provider name (try tcp or verbs)",
		     pd_config_quote(quoted, sizeof(quoted), fabric->provider));
}

static bool check_endpoint(struct check *c, const char *path, const char *text,
                           struct pd_config_addr *addr)
{
	char quoted[QUOTE_LEN];
	const char *why;

	if (text == NULL)
		return false;
	if (parse_addr(text, addr, &why) < 0) {
		fail(c, path, false, "%s is not an address: %s",
		     pd_config_quote(quoted, sizeof(quoted), text), why);
		return false;
	}
	return true;
}

/* A relative path is taken relative to the cluster file's folder, as a function's exec is. */
static void resolve_beside_config(struct check *c, char **field)
{
	const char *slash = c->cfg->path != NULL ? strrchr(c->cfg->path, '/') : NULL;
	char *joined;

	if (*field == NULL || (*field)[0] == '/' || slash == NULL)
		return;
	if (asprintf(&joined, "%.*s%s", (int)(slash - c->cfg->path) + 1, c->cfg->path, *field) <
	    0) {
		c->err = -ENOMEM;
		return;
	}
	free(*field);
	*field = joined;
}

/*
 * ingress.tls. The files are not opened here: the same cluster file is loaded on hosts
 * that run only engines, which need not hold the key; the ingress loads them when it
 * starts and fails there, naming the file, if one is missing, unreadable or mismatched.
 */
static void check_tls(struct check *c, bool listen_ok, bool admin_ok)
{
	struct pd_config_ingress *ingress = &c->cfg->ingress;
	struct pd_config_tls *tls = &ingress->tls;

	tls->enabled = present(c, "ingress.tls");
	if (!tls->enabled)
		return;
	resolve_beside_config(c, &tls->cert);
	resolve_beside_config(c, &tls->key);
	if (tls->plain_listen == NULL) {
		if (present(c, "ingress.tls.plain_mode"))
			fail(c, "ingress.tls.plain_mode", false,
			     "has no effect without ingress.tls.plain_listen");
		return;
	}
	if (!check_endpoint(c, "ingress.tls.plain_listen", tls->plain_listen,
	                    &tls->plain_listen_addr))
		return;
	if (listen_ok && same_endpoint(&tls->plain_listen_addr, &ingress->listen_addr))
		fail(c, "ingress.tls.plain_listen", false,
		     "the plain HTTP listener (%s) collides with the HTTPS listener (%s)",
		     tls->plain_listen, ingress->listen);
	if (admin_ok && same_endpoint(&tls->plain_listen_addr, &ingress->admin_addr))
		fail(c, "ingress.tls.plain_listen", false,
		     "the plain HTTP listener (%s) collides with the admin listener (%s)",
		     tls->plain_listen, ingress->admin);
}

static void check_ingress(struct check *c)
{
	struct pd_config_ingress *ingress = &c->cfg->ingress;
	char quoted[QUOTE_LEN];
	bool listen_ok, admin_ok;

	set_default(c, &ingress->listen, "127.0.0.1:8080");
	set_default(c, &ingress->admin, "127.0.0.1:8081");
	set_default(c, &ingress->address, "127.0.0.1");
	listen_ok = check_endpoint(c, "ingress.listen", ingress->listen, &ingress->listen_addr);
	admin_ok = check_endpoint(c, "ingress.admin", ingress->admin, &ingress->admin_addr);
	if (listen_ok && admin_ok && same_endpoint(&ingress->listen_addr, &ingress->admin_addr))
		fail(c, present(c, "ingress.admin") ? "ingress.admin" : "ingress.listen", false,
		     "the admin listener (%s) collides with the HTTP listener (%s)", ingress->admin,
		     ingress->listen);
	if (ingress->address != NULL && !ip_literal(ingress->address, AF_UNSPEC, NULL, NULL))
		fail(c, "ingress.address", false,
		     "%s is not an IP address (host names are not accepted)",
		     pd_config_quote(quoted, sizeof(quoted), ingress->address));
	if (!present(c, "ingress.threads"))
		ingress->threads = 1;
	else if (ingress->threads != 1)
		/* The ingress is single-threaded for now; say so rather than ignore the value. */
		fail(c, "ingress.threads", false,
		     "only 1 thread is supported for now, got %" PRIu32, ingress->threads);
	check_size(c, "ingress.max_header_bytes", ingress->max_header_bytes_text, 8 * KiB, 1 * KiB,
	           64 * KiB, &ingress->max_header_bytes);
	check_duration(c, "ingress.reject_delay", ingress->reject_delay_text, 100, 0, 10 * 1000,
	               &ingress->reject_delay_ms);
	/* 0 (absent): the ingress derives it from its open-file limit when it starts. */
	check_u32(c, "ingress.max_connections", &ingress->max_connections, 0, 1, 1u << 20);
	check_duration(c, "ingress.request_read_timeout", ingress->request_read_timeout_text,
	               10 * 1000, 100, 10 * 60 * 1000, &ingress->request_read_timeout_ms);
	check_tls(c, listen_ok, admin_ok);
}

/* engine.link_rate: a size per second ("800MiB/s"; the "/s" may be left out). */
static void check_link_rate(struct check *c, struct pd_config_engine *engine)
{
	char text[64], quoted[QUOTE_LEN];
	const char *t = engine->link_rate_text;
	uint64_t bytes;

	engine->link_rate = 0;
	if (t == NULL)
		return;
	size_t n = strlen(t);
	if (n >= 2 && strcmp(t + n - 2, "/s") == 0)
		n -= 2;
	snprintf(text, sizeof(text), "%.*s", (int)n, t);
	if (pd_parse_size(text, &bytes) < 0 || bytes < MiB || bytes > 1024 * GiB) {
		fail(c, "engine.link_rate", false,
		     "%s is not a rate from 1MiB/s to 1024GiB/s (bytes per second, e.g. "
		     "\"800MiB/s\"; units are binary)",
		     pd_config_quote(quoted, sizeof(quoted), t));
		return;
	}
	engine->link_rate = bytes;
}

static void check_engine(struct check *c)
{
	struct pd_config_engine *engine = &c->cfg->engine;
	char lo[32], hi[32];
	bool backoff_ok, max_ok;

	check_uint(c, "engine.spin_us", engine->spin_us, 50, 0, 100000, &engine->spin_us);
	if (!present(c, "engine.ring_size"))
		engine->ring_size = 1024;
	else if (engine->ring_size < 16 || engine->ring_size > 65536 ||
	         (engine->ring_size & (engine->ring_size - 1)) != 0)
		fail(c, "engine.ring_size", false,
		     "%" PRIu32 " is not a power of two from 16 to 65536", engine->ring_size);
	backoff_ok = check_duration(c, "engine.restart_backoff", engine->restart_backoff_text, 100,
	                            1, 3600 * 1000, &engine->restart_backoff_ms);
	max_ok = check_duration(c, "engine.restart_backoff_max", engine->restart_backoff_max_text,
	                        5000, 1, 3600 * 1000, &engine->restart_backoff_max_ms);
	if (backoff_ok && max_ok && engine->restart_backoff_max_ms < engine->restart_backoff_ms)
		fail(c,
		     present(c, "engine.restart_backoff_max") ? "engine.restart_backoff_max"
		                                              : "engine.restart_backoff",
		     false, "restart_backoff_max (%s) is less than restart_backoff (%s)",
		     format_duration(hi, sizeof(hi), engine->restart_backoff_max_ms),
		     format_duration(lo, sizeof(lo), engine->restart_backoff_ms));
	check_link_rate(c, engine);
}

static void check_nodes(struct check *c)
{
	struct pd_config *cfg = c->cfg;
	unsigned char bin[PD_MAX_NODES][16];
	int family[PD_MAX_NODES];
	bool addr_ok[PD_MAX_NODES] = {false};
	char quoted[QUOTE_LEN], path[PATH_LEN];

	for (uint32_t i = 0; i < cfg->nodes_count && i < PD_MAX_NODES; i++) {
		struct pd_config_node *node = &cfg->nodes[i];

		check_name(c, "nodes", "node", i, node->name, node_name);
		snprintf(path, sizeof(path), "nodes[%" PRIu32 "].address", i);
		if (!ip_literal(node->address, AF_UNSPEC, &family[i], bin[i])) {
			fail(c, path, false,
			     "%s is not an IP address (host names are not accepted)",
			     pd_config_quote(quoted, sizeof(quoted), node->address));
		} else {
			addr_ok[i] = true;
		}
		if (node->port == 0) {
			fail(c, at(c, "nodes[%" PRIu32 "].port", i), false,
			     "0 is out of range (1..65535)");
			addr_ok[i] = false;
		}
		for (uint32_t j = 0; addr_ok[i] && j < i; j++) {
			if (!addr_ok[j] || cfg->nodes[j].port != node->port ||
			    family[j] != family[i] || memcmp(bin[i], bin[j], 16) != 0)
				continue;
			fail(c, path, false, "node \"%s\" already uses %s port %u",
			     cfg->nodes[j].name, node->address, (unsigned)node->port);
			break;
		}
	}
}

static bool valid_account(const char *s, size_t len)
{
	if (len < 1 || len > 32 || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

static void check_tenants(struct check *c)
{
	struct pd_config *cfg = c->cfg;
	char quoted[QUOTE_LEN], path[PATH_LEN], a[32], b[32];

	for (uint32_t i = 0; i < cfg->tenants_count; i++) {
		struct pd_config_tenant *t = &cfg->tenants[i];
		bool pool_ok, buffer_ok;

		check_name(c, "tenants", "tenant", i, t->name, tenant_name);
		check_u32(c, at(c, "tenants[%" PRIu32 "].weight", i), &t->weight, 1, 1, 1000);
		check_u32(c, at(c, "tenants[%" PRIu32 "].max_inflight", i), &t->max_inflight, 1024,
		          1, 65536);
		pool_ok = check_size(c, at(c, "tenants[%" PRIu32 "].pool", i), t->pool_text,
		                     64 * MiB, 1 * MiB, 64 * GiB, &t->pool);
		buffer_ok =
		    check_size(c, at(c, "tenants[%" PRIu32 "].buffer_size", i), t->buffer_size_text,
		               16 * KiB, 4 * KiB, 16 * MiB, &t->buffer_size);
		if (buffer_ok && t->buffer_size % 64 != 0) {
			/* Buffers are cache-line aligned in the pool. */
			fail(c, c->path, false, "%s is not a multiple of 64 bytes",
			     pd_config_quote(quoted, sizeof(quoted), t->buffer_size_text));
			buffer_ok = false;
			t->buffer_size = 16 * KiB;
		}
		if (pool_ok && buffer_ok && t->pool / t->buffer_size < 64) {
			snprintf(path, sizeof(path), "tenants[%" PRIu32 "].%s", i,
			         t->pool_text != NULL ? "pool" : "buffer_size");
			fail(c, path, false,
			     "a pool of %s holds only %" PRIu64 " buffers of %s; at least 64 are "
			     "needed",
			     format_size(a, sizeof(a), t->pool), t->pool / t->buffer_size,
			     format_size(b, sizeof(b), t->buffer_size));
		}
		if (present(c, at(c, "tenants[%" PRIu32 "].rate", i)) && !(t->rate >= 0))
			fail(c, c->path, false, "%g is negative: use 0 for no limit", t->rate);
		if (t->run_as != NULL) {
			const char *colon = strchr(t->run_as, ':');
			size_t user_len = colon ? (size_t)(colon - t->run_as) : strlen(t->run_as);

			if (!valid_account(t->run_as, user_len) ||
			    (colon != NULL && !valid_account(colon + 1, strlen(colon + 1))))
				fail(c, at(c, "tenants[%" PRIu32 "].run_as", i), false,
				     "%s is not \"user\" or \"user:group\"",
				     pd_config_quote(quoted, sizeof(quoted), t->run_as));
		}
		/*
		 * A buffer holds the 64-byte message header, the request metadata (method,
		 * path, headers) and the body; 256 bytes is the share kept for header and
		 * metadata of a typical request. Larger HTTP headers leave less for the body.
		 */
		t->max_body = t->buffer_size - 256;
	}
}

/* Resolves one node name of function i (at path) into f->node_idx. */
static void add_function_node(struct check *c, struct pd_config_function *f, const char *path,
                              const char *name)
{
	struct pd_config *cfg = c->cfg;
	char quoted[QUOTE_LEN], list[LIST_LEN] = "";
	int n = pd_config_node_index(cfg, name);

	if (n < 0) {
		for (uint32_t k = 0; k < cfg->nodes_count; k++)
			if (valid_name(cfg->nodes[k].name))
				list_add(list, sizeof(list), cfg->nodes[k].name);
		fail(c, path, false, "unknown node %s (nodes: %s)",
		     pd_config_quote(quoted, sizeof(quoted), name), list);
		return;
	}
	if (pd_config_function_on_node(f, (uint32_t)n)) {
		fail(c, path, false, "node \"%s\" is listed twice", name);
		return;
	}
	if (f->node_idx_count < PD_MAX_NODES)
		f->node_idx[f->node_idx_count++] = (uint32_t)n;
}

static void check_functions(struct check *c)
{
	struct pd_config *cfg = c->cfg;
	char quoted[QUOTE_LEN], path[PATH_LEN];
	uint32_t *instances; /* per (tenant, node), to enforce PD_MAX_INSTANCES */

	instances = calloc((size_t)PD_MAX_TENANTS * PD_MAX_NODES, sizeof(*instances));
	if (instances == NULL) {
		c->err = -ENOMEM;
		return;
	}
	for (uint32_t i = 0; i < cfg->functions_count; i++) {
		struct pd_config_function *f = &cfg->functions[i];
		int t;

		check_name(c, "functions", "function", i, f->name, function_name);
		f->tenant_idx = UINT32_MAX;
		t = pd_config_tenant_index(cfg, f->tenant);
		if (t < 0) {
			char list[LIST_LEN] = "";

			for (uint32_t k = 0; k < cfg->tenants_count; k++)
				if (valid_name(cfg->tenants[k].name))
					list_add(list, sizeof(list), cfg->tenants[k].name);
			fail(c, at(c, "functions[%" PRIu32 "].tenant", i), false,
			     "unknown tenant %s (tenants: %s)",
			     pd_config_quote(quoted, sizeof(quoted), f->tenant), list);
		} else {
			f->tenant_idx = (uint32_t)t;
		}
		check_u32(c, at(c, "functions[%" PRIu32 "].instances", i), &f->instances, 1, 1, 64);
		check_u32(c, at(c, "functions[%" PRIu32 "].threads", i), &f->threads, 1, 1, 64);

		f->node_idx_count = 0;
		if (f->node != NULL && f->nodes != NULL) {
			fail(c, at(c, "functions[%" PRIu32 "].nodes", i), true,
			     "give either \"node\" or \"nodes\", not both");
		} else if (f->node == NULL && f->nodes == NULL) {
			fail(c, at(c, "functions[%" PRIu32 "]", i), false,
			     "missing \"node\" (or \"nodes\": a list of nodes to run on)");
		} else if (f->node != NULL) {
			add_function_node(c, f, at(c, "functions[%" PRIu32 "].node", i), f->node);
		} else {
			for (uint32_t j = 0; j < f->nodes_count; j++) {
				snprintf(path, sizeof(path),
				         "functions[%" PRIu32 "].nodes[%" PRIu32 "]", i, j);
				add_function_node(c, f, path, f->nodes[j]);
			}
		}

		for (uint32_t j = 0; t >= 0 && j < f->node_idx_count; j++) {
			uint32_t *count = &instances[(size_t)t * PD_MAX_NODES + f->node_idx[j]];
			uint32_t before = *count;

			*count += f->instances;
			/* Report a (tenant, node) pair once: where it first goes over. */
			if (before > PD_MAX_INSTANCES || *count <= PD_MAX_INSTANCES)
				continue;
			snprintf(path, sizeof(path), "functions[%" PRIu32 "].instances", i);
			if (!present(c, path))
				snprintf(path, sizeof(path), "functions[%" PRIu32 "]", i);
			fail(c, path, false,
			     "tenant \"%s\" would run %" PRIu32
			     " function instances on node \"%s\" "
			     "(at most %d per tenant and node)",
			     cfg->tenants[t].name, *count, cfg->nodes[f->node_idx[j]].name,
			     PD_MAX_INSTANCES);
		}
	}
	free(instances);
}

static bool valid_route_path(const char *path)
{
	for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '?' || *p == '#')
			return false;
	return true;
}

static void check_chain_entry(struct check *c, const struct pd_config_route *route, int tenant,
                              const char *path, const char *name, uint32_t *idx)
{
	struct pd_config *cfg = c->cfg;
	char quoted[QUOTE_LEN], list[LIST_LEN] = "";
	int f = pd_config_function_index(cfg, name);

	if (f < 0) {
		for (uint32_t k = 0; k < cfg->functions_count; k++) {
			const struct pd_config_function *other = &cfg->functions[k];

			if (valid_name(other->name) &&
			    (tenant < 0 || strcmp(other->tenant, route->tenant) == 0))
				list_add(list, sizeof(list), other->name);
		}
		if (tenant < 0)
			fail(c, path, false, "unknown function %s (functions: %s)",
			     pd_config_quote(quoted, sizeof(quoted), name), list);
		else if (list[0] == '\0')
			fail(c, path, false, "unknown function %s (tenant \"%s\" has no functions)",
			     pd_config_quote(quoted, sizeof(quoted), name), route->tenant);
		else
			fail(c, path, false, "unknown function %s (functions of tenant \"%s\": %s)",
			     pd_config_quote(quoted, sizeof(quoted), name), route->tenant, list);
		return;
	}
	*idx = (uint32_t)f;
	if (tenant >= 0 && cfg->functions[f].tenant_idx != UINT32_MAX &&
	    cfg->functions[f].tenant_idx != (uint32_t)tenant)
		/* A chain runs in one tenant's pool; another tenant's function cannot see it. */
		fail(c, path, false, "function \"%s\" belongs to tenant \"%s\", not to \"%s\"",
		     name, cfg->functions[f].tenant, route->tenant);
}

static void check_routes(struct check *c)
{
	struct pd_config *cfg = c->cfg;
	char quoted[QUOTE_LEN], path[PATH_LEN], first[32];

	for (uint32_t i = 0; i < cfg->routes_count; i++) {
		struct pd_config_route *route = &cfg->routes[i];
		int t;

		snprintf(path, sizeof(path), "routes[%" PRIu32 "].path", i);
		if (route->path[0] != '/') {
			fail(c, path, false, "%s must start with '/'",
			     pd_config_quote(quoted, sizeof(quoted), route->path));
		} else if (!valid_route_path(route->path)) {
			fail(c, path, false,
			     "%s must be printable ASCII without spaces, '?' or '#'",
			     pd_config_quote(quoted, sizeof(quoted), route->path));
		} else {
			for (uint32_t j = 0; j < i; j++) {
				if (strcmp(cfg->routes[j].path, route->path) != 0)
					continue;
				fail(c, path, false, "duplicate route path \"%s\" (first at %s)",
				     route->path,
				     mark_text(c, at(c, "routes[%" PRIu32 "].path", j), first,
				               sizeof(first)));
				break;
			}
		}

		route->tenant_idx = UINT32_MAX;
		t = pd_config_tenant_index(cfg, route->tenant);
		if (t < 0) {
			char list[LIST_LEN] = "";

			for (uint32_t k = 0; k < cfg->tenants_count; k++)
				if (valid_name(cfg->tenants[k].name))
					list_add(list, sizeof(list), cfg->tenants[k].name);
			fail(c, at(c, "routes[%" PRIu32 "].tenant", i), false,
			     "unknown tenant %s (tenants: %s)",
			     pd_config_quote(quoted, sizeof(quoted), route->tenant), list);
		} else {
			route->tenant_idx = (uint32_t)t;
		}

		for (uint32_t j = 0; j < route->chain_count && j < PD_MAX_CHAIN; j++) {
			snprintf(path, sizeof(path), "routes[%" PRIu32 "].chain[%" PRIu32 "]", i,
			         j);
			check_chain_entry(c, route, t, path, route->chain[j], &route->chain_idx[j]);
		}

		check_duration(c, at(c, "routes[%" PRIu32 "].timeout", i), route->timeout_text,
		               5000, 1, 3600 * 1000, &route->timeout_ms);
	}
}

static int validate(struct pd_config *cfg, const struct pd_config_index *index,
                    struct pd_config_diags *diags)
{
	struct check c = {.cfg = cfg, .index = index, .diags = diags};

	check_fabric(&c);
	check_ingress(&c);
	check_engine(&c);
	check_nodes(&c);
	check_tenants(&c);
	check_functions(&c);
	check_routes(&c);
	return c.err;
}

/* ---- loading ---- */

/* libcyaml's last word, kept in case it rejects something the libyaml walk let through. */
struct cyaml_capture {
	char message[256];
	struct pd_config_mark mark;
};

static void capture_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
	struct cyaml_capture *cap = ctx;
	char line[256];
	const char *text = line;
	const char *pos;
	size_t len;

	if (level < CYAML_LOG_ERROR)
		return;
	vsnprintf(line, sizeof(line), fmt, args);
	len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == ' '))
		line[--len] = '\0';
	if (strncmp(text, "Load: ", 6) == 0)
		text += 6;
	/* Its backtrace lines read "  in mapping field 'x' (line: 3, column: 7)". */
	pos = strstr(text, "(line: ");
	if (pos != NULL) {
		unsigned line_no, column;

		if (cap->mark.line == 0 &&
		    sscanf(pos, "(line: %u, column: %u)", &line_no, &column) == 2) {
			cap->mark.line = line_no;
			cap->mark.column = column;
		}
		return;
	}
	if (cap->message[0] == '\0' && strncmp(text, "Backtrace", 9) != 0)
		snprintf(cap->message, sizeof(cap->message), "%s", text);
}

static int load_typed(const char *text, size_t len, struct pd_config **out,
                      struct pd_config_diags *diags)
{
	struct cyaml_capture cap = {.message = ""};
	cyaml_config_t cyaml = quiet_cyaml;
	cyaml_data_t *data = NULL;
	cyaml_err_t err;

	cyaml.log_fn = capture_log;
	cyaml.log_ctx = &cap;
	err = cyaml_load_data((const uint8_t *)text, len, &cyaml, &config_schema, &data, NULL);
	if (err == CYAML_ERR_OOM)
		return -ENOMEM;
	if (err != CYAML_OK || data == NULL) {
		struct pd_config_mark mark =
		    cap.mark.line ? cap.mark : (struct pd_config_mark){1, 1};

		pd_config_diag_add(diags, mark, "%s",
		                   cap.message[0] ? cap.message : cyaml_strerror(err));
		if (data != NULL)
			cyaml_free(&quiet_cyaml, &config_schema, data, 0);
		return -EINVAL;
	}
	*out = data;
	return 0;
}

static int read_file(const char *path, char **text_out, size_t *len_out)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0, cap = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out_close;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = -EISDIR;
		goto out_close;
	}
	/* Read to EOF rather than trust st_size, so pipes such as /dev/stdin work too. */
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *grown;

			if (cap >= CONFIG_FILE_MAX) {
				char probe;

				/* Full: fine if this was exactly the end of the file. */
				do
					n = read(fd, &probe, 1);
				while (n < 0 && errno == EINTR);
				if (n == 0)
					break;
				ret = n < 0 ? -errno : -EFBIG;
				goto out_free;
			}
			cap = cap ? cap * 2 : 16 * KiB;
			grown = realloc(text, cap + 1);
			if (grown == NULL) {
				ret = -ENOMEM;
				goto out_free;
			}
			text = grown;
		}
		n = read(fd, text + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (text == NULL) {
		text = malloc(1);
		if (text == NULL) {
			ret = -ENOMEM;
			goto out_close;
		}
	}
	text[len] = '\0';
	*text_out = text;
	*len_out = len;
	close(fd);
	return 0;

out_free:
	free(text);
out_close:
	close(fd);
	return ret;
}

int pd_config_load(const char *path, struct pd_config **out, FILE *errs)
{
	struct pd_config_diags diags = {.file = path};
	struct pd_config_index index = {0};
	struct pd_config *cfg = NULL;
	char *text = NULL;
	size_t len = 0;
	int ret;

	if (out != NULL)
		*out = NULL;
	if (path == NULL || out == NULL)
		return -EINVAL;

	ret = read_file(path, &text, &len);
	if (ret < 0) {
		char buf[128];

		if (ret == -EFBIG)
			pd_config_diag_add(&diags, (struct pd_config_mark){0, 0},
			                   "cannot read: the file is larger than %" PRIu64 " MiB",
			                   CONFIG_FILE_MAX / MiB);
		else
			pd_config_diag_add(&diags, (struct pd_config_mark){0, 0}, "cannot read: %s",
			                   strerror_r(-ret, buf, sizeof(buf)));
		goto out_print;
	}
	ret = pd_config_yaml_check(text, len, &config_schema, &index, &diags);
	if (ret < 0)
		goto out_index;
	ret = load_typed(text, len, &cfg, &diags);
	if (ret < 0)
		goto out_index;
	cfg->path = strdup(path);
	if (cfg->path == NULL) {
		ret = -ENOMEM;
		goto out_cfg;
	}
	ret = validate(cfg, &index, &diags);
	if (ret < 0)
		goto out_cfg;
	if (diags.total > 0) {
		ret = -EINVAL;
		goto out_cfg;
	}
	*out = cfg;
	cfg = NULL;

out_cfg:
	pd_config_free(cfg);
out_index:
	pd_config_index_fini(&index);
	free(text);
out_print:
	if (diags.out_of_memory)
		ret = -ENOMEM;
	if (ret == -ENOMEM && diags.total == 0)
		pd_config_diag_add(&diags, (struct pd_config_mark){0, 0}, "out of memory");
	pd_config_diags_print(&diags, errs);
	pd_config_diags_fini(&diags);
	return ret;
}

void pd_config_free(struct pd_config *cfg)
{
	if (cfg == NULL)
		return;
	/* Not in the schema, so cyaml_free() does not know about it. */
	free(cfg->path);
	cfg->path = NULL;
	cyaml_free(&quiet_cyaml, &config_schema, cfg, 0);
}

/* ---- queries ---- */

int pd_config_node_index(const struct pd_config *cfg, const char *name)
{
	if (cfg == NULL || name == NULL)
		return -1;
	for (uint32_t i = 0; i < cfg->nodes_count; i++)
		if (strcmp(cfg->nodes[i].name, name) == 0)
			return (int)i;
	return -1;
}

int pd_config_tenant_index(const struct pd_config *cfg, const char *name)
{
	if (cfg == NULL || name == NULL)
		return -1;
	for (uint32_t i = 0; i < cfg->tenants_count; i++)
		if (strcmp(cfg->tenants[i].name, name) == 0)
			return (int)i;
	return -1;
}

int pd_config_function_index(const struct pd_config *cfg, const char *name)
{
	if (cfg == NULL || name == NULL)
		return -1;
	for (uint32_t i = 0; i < cfg->functions_count; i++)
		if (strcmp(cfg->functions[i].name, name) == 0)
			return (int)i;
	return -1;
}

bool pd_config_function_on_node(const struct pd_config_function *f, uint32_t node_idx)
{
	if (f == NULL)
		return false;
	for (uint32_t i = 0; i < f->node_idx_count && i < PD_MAX_NODES; i++)
		if (f->node_idx[i] == node_idx)
			return true;
	return false;
}

/* Writes "dir/name" (dir_len bytes of dir; "" means the current folder) into buf. */
static int join_path(char *buf, size_t len, const char *dir, size_t dir_len, const char *name)
{
	bool slash = dir_len > 0 && dir[dir_len - 1] != '/';
	int n;

	if (dir_len > INT_MAX)
		return -ENAMETOOLONG;
	n = snprintf(buf, len, "%.*s%s%s", (int)dir_len, dir, slash ? "/" : "", name);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Length of the folder part of path, as dirname() would give it ("" for a bare name). */
static size_t dir_length(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return 0;
	while (slash > path && slash[-1] == '/')
		slash--;
	return slash == path ? 1 : (size_t)(slash - path);
}

int pd_config_resolve_exec(const struct pd_config *cfg, const struct pd_config_function *f,
                           char *buf, size_t len)
{
	const char *config_path;
	const char *dir = cfg != NULL ? cfg->engine.functions_dir : NULL;
	char tmp[PATH_MAX], self[PATH_MAX];

	if (cfg == NULL || f == NULL || f->exec == NULL)
		return -EINVAL;
	if (buf == NULL || len == 0)
		return -ENAMETOOLONG;
	config_path = cfg->path != NULL ? cfg->path : "";
	if (f->exec[0] == '/')
		return join_path(buf, len, "", 0, f->exec);
	if (strchr(f->exec, '/') != NULL)
		return join_path(buf, len, config_path, dir_length(config_path), f->exec);
	if (dir == NULL) {
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self));

		if (n < 0)
			return -errno;
		if ((size_t)n >= sizeof(self))
			return -ENAMETOOLONG;
		self[n] = '\0';
		if (join_path(tmp, sizeof(tmp), self, dir_length(self), "functions") < 0)
			return -ENAMETOOLONG;
		return join_path(buf, len, tmp, strlen(tmp), f->exec);
	}
	if (dir[0] == '/')
		return join_path(buf, len, dir, strlen(dir), f->exec);
	/* A relative functions_dir, like a relative exec, is relative to the config file. */
	if (join_path(tmp, sizeof(tmp), config_path, dir_length(config_path), dir) < 0)
		return -ENAMETOOLONG;
	return join_path(buf, len, tmp, strlen(tmp), f->exec);
}
