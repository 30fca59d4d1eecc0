/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whole-config validation: applies the key table to every section, then checks what no
 * single key can: names and their uniqueness, cross references, and rules across keys.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/config.h"
#include "common/config_internal.h"

#define PATH_LEN PD_CONFIG_PATH_LEN
#define QUOTE_LEN PD_CONFIG_QUOTE_LEN
#define LIST_LEN 320

struct check {
	struct pd_config *cfg;
	const struct pd_config_index *index;
	struct pd_config_diags *diags;
	int err; /* -ENOMEM */
};

/* Formats a YAML path ("routes[0].chain[1]") into the caller's path and returns it. */
__attribute__((format(printf, 2, 3))) static const char *at(char path[PATH_LEN], const char *fmt,
                                                            ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(path, PATH_LEN, fmt, args);
	va_end(args);
	return path;
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

/* Applies the key table to entry (prefix: its path); returns the keys that failed. */
static uint64_t apply(struct check *c, enum pd_config_section section, void *entry,
                      const char *prefix)
{
	return pd_config_keys_apply(section, entry, prefix, c->index, c->diags, &c->err);
}

/* Did key name of section fail in the mask apply() returned? */
static bool failed(uint64_t mask, enum pd_config_section section, const char *name)
{
	return (mask & pd_config_key_bit(section, name)) != 0;
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
 * The index of the tenant an entry names (its key at path), or UINT32_MAX after reporting
 * an unknown tenant, with the tenants there are.
 */
static uint32_t resolve_tenant(struct check *c, const char *name, const char *path)
{
	char quoted[QUOTE_LEN], list[LIST_LEN] = "";
	int t = pd_config_tenant_index(c->cfg, name);

	if (t >= 0)
		return (uint32_t)t;
	for (uint32_t k = 0; k < c->cfg->tenants_count; k++)
		if (valid_name(c->cfg->tenants[k].name))
			list_add(list, sizeof(list), c->cfg->tenants[k].name);
	fail(c, path, false, "unknown tenant %s (tenants: %s)",
	     pd_config_quote(quoted, sizeof(quoted), name), list);
	return UINT32_MAX;
}

/*
 * Checks the name of entry i of a list (nodes, tenants, functions); reports an invalid
 * name or a duplicate of an earlier entry. Returns false if it is unusable.
 */
static bool check_name(struct check *c, enum pd_config_section list, const char *kind, uint32_t i)
{
	const char *section = pd_config_sections[list].name;
	const char *name = pd_config_name_of(c->cfg, list, i);
	char quoted[QUOTE_LEN], first[32], path[PATH_LEN], first_path[PATH_LEN];

	at(path, "%s[%" PRIu32 "].name", section, i);
	if (!valid_name(name)) {
		fail(c, path, false,
		     "%s is not a valid name: use 1 to %d characters of a-z, 0-9, _ and -",
		     pd_config_quote(quoted, sizeof(quoted), name), PD_NAME_MAX);
		return false;
	}
	for (uint32_t j = 0; j < i; j++) {
		if (strcmp(pd_config_name_of(c->cfg, list, j), name) != 0)
			continue;
		fail(c, path, false, "duplicate %s name \"%s\" (first at %s)", kind, name,
		     mark_text(c, at(first_path, "%s[%" PRIu32 "].name", section, j), first,
		               sizeof(first)));
		return false;
	}
	return true;
}

/* Does binding a and b at once collide? Same port and same or wildcard address. */
static bool same_endpoint(const struct pd_config_addr *a, const struct pd_config_addr *b)
{
	static const unsigned char zero[16];
	unsigned char x[16], y[16];
	int fx, fy;

	if (a->port != b->port)
		return false;
	if (!pd_config_ip_literal(a->host, AF_UNSPEC, &fx, x) ||
	    !pd_config_ip_literal(b->host, AF_UNSPEC, &fy, y))
		return strcmp(a->host, b->host) == 0;
	if (memcmp(x, zero, 16) == 0 || memcmp(y, zero, 16) == 0)
		return true;
	return fx == fy && memcmp(x, y, 16) == 0;
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
 * ingress.tls: present means HTTPS. The files are not opened here: the same cluster file
 * is loaded on hosts that run only engines, which need not hold the key; the ingress loads
 * them when it starts and fails there, naming the file, if one is missing, unreadable or
 * mismatched.
 */
static void check_tls(struct check *c, bool listen_ok, bool admin_ok)
{
	struct pd_config_ingress *ingress = &c->cfg->ingress;
	struct pd_config_tls *tls = &ingress->tls;
	uint64_t bad;

	tls->enabled = present(c, "ingress.tls");
	if (!tls->enabled)
		return;
	bad = apply(c, PD_CONFIG_INGRESS_TLS, tls, "ingress.tls");
	resolve_beside_config(c, &tls->cert);
	resolve_beside_config(c, &tls->key);
	if (tls->plain_listen == NULL) {
		if (present(c, "ingress.tls.plain_mode"))
			fail(c, "ingress.tls.plain_mode", false,
			     "has no effect without ingress.tls.plain_listen");
		return;
	}
	if (failed(bad, PD_CONFIG_INGRESS_TLS, "plain_listen"))
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
	uint64_t bad = apply(c, PD_CONFIG_INGRESS, ingress, "ingress");
	bool listen_ok = !failed(bad, PD_CONFIG_INGRESS, "listen");
	bool admin_ok = !failed(bad, PD_CONFIG_INGRESS, "admin");

	if (listen_ok && admin_ok && same_endpoint(&ingress->listen_addr, &ingress->admin_addr))
		fail(c, present(c, "ingress.admin") ? "ingress.admin" : "ingress.listen", false,
		     "the admin listener (%s) collides with the HTTP listener (%s)", ingress->admin,
		     ingress->listen);
	check_tls(c, listen_ok, admin_ok);
}

static void check_engine(struct check *c)
{
	struct pd_config_engine *engine = &c->cfg->engine;
	uint64_t bad = apply(c, PD_CONFIG_ENGINE, engine, "engine");
	char lo[32], hi[32];

	if (!failed(bad, PD_CONFIG_ENGINE, "restart_backoff") &&
	    !failed(bad, PD_CONFIG_ENGINE, "restart_backoff_max") &&
	    engine->restart_backoff_max_ms < engine->restart_backoff_ms)
		fail(c,
		     present(c, "engine.restart_backoff_max") ? "engine.restart_backoff_max"
		                                              : "engine.restart_backoff",
		     false, "restart_backoff_max (%s) is less than restart_backoff (%s)",
		     pd_config_format_duration(hi, sizeof(hi), engine->restart_backoff_max_ms),
		     pd_config_format_duration(lo, sizeof(lo), engine->restart_backoff_ms));
}

static void check_nodes(struct check *c)
{
	struct pd_config *cfg = c->cfg;
	unsigned char bin[PD_MAX_NODES][16];
	int family[PD_MAX_NODES];
	bool addr_ok[PD_MAX_NODES] = {false};
	char path[PATH_LEN];

	for (uint32_t i = 0; i < cfg->nodes_count && i < PD_MAX_NODES; i++) {
		struct pd_config_node *node = &cfg->nodes[i];
		uint64_t bad = apply(c, PD_CONFIG_NODES, node, at(path, "nodes[%" PRIu32 "]", i));

		check_name(c, PD_CONFIG_NODES, "node", i);
		addr_ok[i] = !failed(bad, PD_CONFIG_NODES, "address") &&
		             !failed(bad, PD_CONFIG_NODES, "port") &&
		             pd_config_ip_literal(node->address, AF_UNSPEC, &family[i], bin[i]);
		for (uint32_t j = 0; addr_ok[i] && j < i; j++) {
			if (!addr_ok[j] || cfg->nodes[j].port != node->port ||
			    family[j] != family[i] || memcmp(bin[i], bin[j], 16) != 0)
				continue;
			fail(c, at(path, "nodes[%" PRIu32 "].address", i), false,
			     "node \"%s\" already uses %s port %u", cfg->nodes[j].name,
			     node->address, (unsigned)node->port);
			break;
		}
	}
}

static void check_tenants(struct check *c)
{
	struct pd_config *cfg = c->cfg;
	char path[PATH_LEN], a[32], b[32];

	for (uint32_t i = 0; i < cfg->tenants_count; i++) {
		struct pd_config_tenant *t = &cfg->tenants[i];
		uint64_t bad = apply(c, PD_CONFIG_TENANTS, t, at(path, "tenants[%" PRIu32 "]", i));

		check_name(c, PD_CONFIG_TENANTS, "tenant", i);
		if (!failed(bad, PD_CONFIG_TENANTS, "pool") &&
		    !failed(bad, PD_CONFIG_TENANTS, "buffer_size") &&
		    t->pool / t->buffer_size < 64) {
			at(path, "tenants[%" PRIu32 "].pool", i);
			if (!present(c, path))
				at(path, "tenants[%" PRIu32 "].buffer_size", i);
			fail(c, path, false,
			     "a pool of %s holds only %" PRIu64 " buffers of %s; at least 64 are "
			     "needed",
			     pd_config_format_size(a, sizeof(a), t->pool), t->pool / t->buffer_size,
			     pd_config_format_size(b, sizeof(b), t->buffer_size));
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
	char path[PATH_LEN];
	uint32_t *instances; /* per (tenant, node), to enforce PD_MAX_INSTANCES */

	instances = calloc((size_t)PD_MAX_TENANTS * PD_MAX_NODES, sizeof(*instances));
	if (instances == NULL) {
		c->err = -ENOMEM;
		return;
	}
	for (uint32_t i = 0; i < cfg->functions_count; i++) {
		struct pd_config_function *f = &cfg->functions[i];
		int t;

		apply(c, PD_CONFIG_FUNCTIONS, f, at(path, "functions[%" PRIu32 "]", i));
		check_name(c, PD_CONFIG_FUNCTIONS, "function", i);
		f->tenant_idx =
		    resolve_tenant(c, f->tenant, at(path, "functions[%" PRIu32 "].tenant", i));
		t = f->tenant_idx == UINT32_MAX ? -1 : (int)f->tenant_idx;

		f->node_idx_count = 0;
		if (f->node != NULL && f->nodes != NULL) {
			fail(c, at(path, "functions[%" PRIu32 "].nodes", i), true,
			     "give either \"node\" or \"nodes\", not both");
		} else if (f->node == NULL && f->nodes == NULL) {
			fail(c, at(path, "functions[%" PRIu32 "]", i), false,
			     "missing \"node\" (or \"nodes\": a list of nodes to run on)");
		} else if (f->node != NULL) {
			add_function_node(c, f, at(path, "functions[%" PRIu32 "].node", i),
			                  f->node);
		} else {
			for (uint32_t j = 0; j < f->nodes_count; j++) {
				add_function_node(
				    c, f,
				    at(path, "functions[%" PRIu32 "].nodes[%" PRIu32 "]", i, j),
				    f->nodes[j]);
			}
		}

		for (uint32_t j = 0; t >= 0 && j < f->node_idx_count; j++) {
			uint32_t *count = &instances[(size_t)t * PD_MAX_NODES + f->node_idx[j]];
			uint32_t before = *count;

			*count += f->instances;
			/* Report a (tenant, node) pair once: where it first goes over. */
			if (before > PD_MAX_INSTANCES || *count <= PD_MAX_INSTANCES)
				continue;
			at(path, "functions[%" PRIu32 "].instances", i);
			if (!present(c, path))
				at(path, "functions[%" PRIu32 "]", i);
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

/*
 * Resolves a function name of a chain or a calls list (at path) into *idx. tenant is the
 * index of the route's or caller's tenant (-1: unknown, then any function's name does),
 * tenant_name its name. An unknown function or one of another tenant is reported.
 */
static void check_function_ref(struct check *c, int tenant, const char *tenant_name,
                               const char *path, const char *name, uint32_t *idx)
{
	struct pd_config *cfg = c->cfg;
	char quoted[QUOTE_LEN], list[LIST_LEN] = "";
	int f = pd_config_function_index(cfg, name);

	if (f < 0) {
		for (uint32_t k = 0; k < cfg->functions_count; k++) {
			const struct pd_config_function *other = &cfg->functions[k];

			if (valid_name(other->name) &&
			    (tenant < 0 || strcmp(other->tenant, tenant_name) == 0))
				list_add(list, sizeof(list), other->name);
		}
		if (tenant < 0)
			fail(c, path, false, "unknown function %s (functions: %s)",
			     pd_config_quote(quoted, sizeof(quoted), name), list);
		else if (list[0] == '\0')
			fail(c, path, false, "unknown function %s (tenant \"%s\" has no functions)",
			     pd_config_quote(quoted, sizeof(quoted), name), tenant_name);
		else
			fail(c, path, false, "unknown function %s (functions of tenant \"%s\": %s)",
			     pd_config_quote(quoted, sizeof(quoted), name), tenant_name, list);
		return;
	}
	*idx = (uint32_t)f;
	if (tenant >= 0 && cfg->functions[f].tenant_idx != UINT32_MAX &&
	    cfg->functions[f].tenant_idx != (uint32_t)tenant)
		/*
		 * A chain runs in one tenant's pool, and a call's request and answer live in
		 * the caller's pool; another tenant's function cannot see it.
		 */
		fail(c, path, false, "function \"%s\" belongs to tenant \"%s\", not to \"%s\"",
		     name, cfg->functions[f].tenant, tenant_name);
}

/*
 * functions[].calls, once every function's tenant is known: each name a function of the
 * caller's tenant (itself included: recursion is bounded by engine.max_call_depth at run
 * time), none twice.
 */
static void check_calls(struct check *c)
{
	struct pd_config *cfg = c->cfg;
	char path[PATH_LEN], first_path[PATH_LEN], first[32];

	for (uint32_t i = 0; i < cfg->functions_count; i++) {
		struct pd_config_function *f = &cfg->functions[i];
		int t = f->tenant_idx == UINT32_MAX ? -1 : (int)f->tenant_idx;

		for (uint32_t j = 0; j < f->calls_count && j < PD_MAX_CALLS; j++) {
			uint32_t k;

			f->calls_idx[j] = UINT32_MAX;
			at(path, "functions[%" PRIu32 "].calls[%" PRIu32 "]", i, j);
			for (k = 0; k < j; k++)
				if (strcmp(f->calls[k], f->calls[j]) == 0)
					break;
			if (k < j) {
				fail(
				    c, path, false, "function \"%s\" is listed twice (first at %s)",
				    f->calls[j],
				    mark_text(c,
				              at(first_path,
				                 "functions[%" PRIu32 "].calls[%" PRIu32 "]", i, k),
				              first, sizeof(first)));
				continue;
			}
			check_function_ref(c, t, f->tenant, path, f->calls[j], &f->calls_idx[j]);
		}
	}
}

static void check_routes(struct check *c)
{
	struct pd_config *cfg = c->cfg;
	char quoted[QUOTE_LEN], path[PATH_LEN], first_path[PATH_LEN], first[32];

	for (uint32_t i = 0; i < cfg->routes_count; i++) {
		struct pd_config_route *route = &cfg->routes[i];
		int t;

		apply(c, PD_CONFIG_ROUTES, route, at(path, "routes[%" PRIu32 "]", i));
		at(path, "routes[%" PRIu32 "].path", i);
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
				     mark_text(c, at(first_path, "routes[%" PRIu32 "].path", j),
				               first, sizeof(first)));
				break;
			}
		}

		route->tenant_idx =
		    resolve_tenant(c, route->tenant, at(path, "routes[%" PRIu32 "].tenant", i));
		t = route->tenant_idx == UINT32_MAX ? -1 : (int)route->tenant_idx;

		for (uint32_t j = 0; j < route->chain_count && j < PD_MAX_CHAIN; j++) {
			at(path, "routes[%" PRIu32 "].chain[%" PRIu32 "]", i, j);
			check_function_ref(c, t, route->tenant, path, route->chain[j],
			                   &route->chain_idx[j]);
		}
	}
}

int pd_config_validate(struct pd_config *cfg, const struct pd_config_index *index,
                       struct pd_config_diags *diags)
{
	struct check c = {.cfg = cfg, .index = index, .diags = diags};

	apply(&c, PD_CONFIG_FABRIC, &cfg->fabric, "fabric");
	check_ingress(&c);
	check_engine(&c);
	check_nodes(&c);
	check_tenants(&c);
	check_functions(&c);
	check_calls(&c);
	check_routes(&c);
	return c.err;
}
