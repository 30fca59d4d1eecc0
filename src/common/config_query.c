/* SPDX-License-Identifier: Apache-2.0 */
/* Questions users of a loaded config ask: entries by name, where a function runs, its file. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/config_internal.h"

const char *pd_config_name_of(const struct pd_config *cfg, enum pd_config_section list, uint32_t i)
{
	switch (list) {
	case PD_CONFIG_NODES: return cfg->nodes[i].name;
	case PD_CONFIG_TENANTS: return cfg->tenants[i].name;
	case PD_CONFIG_FUNCTIONS: return cfg->functions[i].name;
	default: return NULL;
	}
}

/* The index of the entry of list called name; -1 if there is none. */
static int index_of(const struct pd_config *cfg, enum pd_config_section list, uint32_t count,
                    const char *name)
{
	if (cfg == NULL || name == NULL)
		return -1;
	for (uint32_t i = 0; i < count; i++)
		if (strcmp(pd_config_name_of(cfg, list, i), name) == 0)
			return (int)i;
	return -1;
}

int pd_config_node_index(const struct pd_config *cfg, const char *name)
{
	return index_of(cfg, PD_CONFIG_NODES, cfg != NULL ? cfg->nodes_count : 0, name);
}

int pd_config_tenant_index(const struct pd_config *cfg, const char *name)
{
	return index_of(cfg, PD_CONFIG_TENANTS, cfg != NULL ? cfg->tenants_count : 0, name);
}

int pd_config_function_index(const struct pd_config *cfg, const char *name)
{
	return index_of(cfg, PD_CONFIG_FUNCTIONS, cfg != NULL ? cfg->functions_count : 0, name);
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
