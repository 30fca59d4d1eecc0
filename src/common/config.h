/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster configuration: one YAML file, loaded through one table of keys and validated whole.
 */
#ifndef PD_COMMON_CONFIG_H
#define PD_COMMON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/limits.h"

enum pd_primitive {
	PD_PRIMITIVE_TWO_SIDED = 0,
	PD_PRIMITIVE_ONE_SIDED = 1,
};

/* A "host:port" or "[v6]:port" endpoint, parsed. */
struct pd_config_addr {
	char host[64];
	uint16_t port;
};

struct pd_config_fabric {
	char *provider;              /* libfabric provider name; default "tcp" */
	enum pd_primitive primitive; /* default two-sided */
};

/* ingress.tls: HTTPS on ingress.listen; an optional plain HTTP listener beside it. */
enum pd_tls_plain_mode {
	PD_TLS_PLAIN_REDIRECT = 0, /* answer 308 to https://HOST:TLS-PORT/PATH */
	PD_TLS_PLAIN_SERVE = 1,    /* serve the routes over plain HTTP too */
};

struct pd_config_tls {
	char *cert;         /* PEM certificate chain, leaf first; a relative path is resolved
	                       against the cluster file's folder by validation */
	char *key;          /* PEM private key of the leaf (not encrypted); resolved the same */
	char *plain_listen; /* optional plain HTTP listener "host:port"; NULL: none */
	enum pd_tls_plain_mode plain_mode; /* what plain_listen does; default redirect */
	/* Resolved by validation: */
	bool enabled; /* ingress.tls is in the file */
	struct pd_config_addr plain_listen_addr;
};

struct pd_config_ingress {
	char *listen;     /* HTTP listener "host:port"; default "127.0.0.1:8080" */
	char *admin;      /* admin listener (/healthz, /metrics); default "127.0.0.1:8081" */
	char *address;    /* local fabric address the ingress connects from;
	                     default "127.0.0.1" */
	uint32_t threads; /* default 1 */
	uint64_t max_header_bytes;        /* request line + headers; default 8 KiB; 431 above */
	uint64_t reject_delay_ms;         /* a 429 is answered this late; default 100 */
	uint32_t max_connections;         /* client connections at once; 0 (default): derived at
	                                     start from RLIMIT_NOFILE minus a reserve */
	uint64_t request_read_timeout_ms; /* a connection's fixed deadline to deliver a whole
	                                     request, from its accept or its last response;
	                                     default 10000 */
	struct pd_config_tls tls;         /* ingress.tls; see tls.enabled */
	/* Resolved by validation: */
	struct pd_config_addr listen_addr;
	struct pd_config_addr admin_addr;
};

struct pd_config_node {
	char *name;
	char *address; /* fabric address (IPv4/IPv6 literal) */
	uint16_t port; /* fabric port */
};

struct pd_config_tenant {
	char *name;
	uint32_t weight;       /* 1..1000, default 1 */
	uint64_t pool;         /* bytes of shared memory per node; default 64 MiB */
	uint64_t buffer_size;  /* bytes per buffer (header included); default 16 KiB */
	uint32_t max_inflight; /* requests admitted at the ingress at once; default 1024 */
	double rate;           /* requests/s admitted at the ingress; 0 = unlimited (default) */
	char *run_as;          /* optional "user" or "user:group" for its functions */
	/* Resolved by validation: */
	uint64_t max_body; /* largest request or response body a buffer holds */
};

struct pd_config_function {
	char *name;
	char *tenant;
	char *exec;  /* path; see pd_config_resolve_exec() */
	char **args; /* optional extra argv entries */
	uint32_t args_count;
	char *node;   /* either node ... */
	char **nodes; /* ... or nodes: [..] */
	uint32_t nodes_count;
	uint32_t instances; /* per node; default 1 */
	uint32_t threads;   /* handler threads per instance; default 1 */
	char **calls;       /* optional: the functions of its tenant it may call */
	uint32_t calls_count;
	/* Resolved by validation: */
	uint32_t tenant_idx;
	uint32_t node_idx[PD_MAX_NODES];
	uint32_t node_idx_count;
	uint32_t calls_idx[PD_MAX_CALLS]; /* indexes into functions[], calls_count of them */
};

struct pd_config_route {
	char *path; /* path prefix, starts with '/' */
	char *tenant;
	char **chain; /* function names, run in order */
	uint32_t chain_count;
	uint64_t timeout_ms; /* default 5000 */
	/* Resolved by validation: */
	uint32_t tenant_idx;
	uint32_t chain_idx[PD_MAX_CHAIN]; /* indexes into functions[] */
};

/* engine.poll: how an idle consumer decides how long to poll (src/shm/waiter.h). */
enum pd_poll_mode {
	PD_POLL_ADAPTIVE = 0, /* as long as the next arrival is likely to come, <= spin_us */
	PD_POLL_FIXED = 1,    /* spin_us every idle spell */
};

/* engine.core: whose core the engine's loop runs on. */
enum pd_core_mode {
	PD_CORE_SHARED = 0, /* shared with functions and others: polls yield the core */
	PD_CORE_OWN = 1,    /* its own (a DPU core, a pinned host core): polls pause */
};

struct pd_config_engine {
	uint64_t spin_us;            /* the most an idle consumer polls before sleeping; 50 */
	enum pd_poll_mode poll;      /* default adaptive */
	enum pd_core_mode core;      /* default shared */
	uint32_t ring_size;          /* inbound ring slots per function instance; default 1024 */
	uint64_t restart_backoff_ms; /* first restart delay of a crashed function; default 100 */
	uint64_t restart_backoff_max_ms; /* cap of the doubling delay; default 5000 */
	char *functions_dir;             /* where bare exec names are found; default: the
	                                    "functions" folder beside the palladium binary */
	uint64_t link_rate;              /* bytes/s the engine transmits at most; 0 = no cap */
	uint32_t max_call_depth;         /* calls nested at most under one request; default 16 */
};

struct pd_config {
	char *path; /* the file it was loaded from */
	struct pd_config_fabric fabric;
	struct pd_config_ingress ingress;
	struct pd_config_engine engine;
	struct pd_config_node *nodes;
	uint32_t nodes_count;
	struct pd_config_tenant *tenants;
	uint32_t tenants_count;
	struct pd_config_function *functions;
	uint32_t functions_count;
	struct pd_config_route *routes;
	uint32_t routes_count;
};

/*
 * Load and validate a cluster file. On success *out is the config (free with
 * pd_config_free) and 0 is returned. On any error nothing is returned in *out, every
 * error found is written to errs as "FILE:LINE:COLUMN: error: MESSAGE\n", and the
 * result is -EINVAL (bad content) or another negative errno (file could not be read).
 */
int pd_config_load(const char *path, struct pd_config **out, FILE *errs);
void pd_config_free(struct pd_config *cfg);

/* Index lookups by name; -1 if absent. */
int pd_config_node_index(const struct pd_config *cfg, const char *name);
int pd_config_tenant_index(const struct pd_config *cfg, const char *name);
int pd_config_function_index(const struct pd_config *cfg, const char *name);

/* Does function f run on node n? */
bool pd_config_function_on_node(const struct pd_config_function *f, uint32_t node_idx);

/*
 * The executable of a function: an exec with a '/' is taken relative to the config
 * file's folder (absolute stays absolute); a bare name is looked up in
 * engine.functions_dir. Writes at most len bytes; returns 0 or -ENAMETOOLONG.
 * A relative functions_dir is taken relative to the config file's folder. When
 * functions_dir is unset and /proc/self/exe cannot be read, readlink's negative
 * errno is returned.
 */
int pd_config_resolve_exec(const struct pd_config *cfg, const struct pd_config_function *f,
                           char *buf, size_t len);

/* Parsers shared with the CLI, exposed for tests. Return 0 or -EINVAL. */
int pd_parse_size(const char *text, uint64_t *bytes);             /* "16KiB", "64MiB", "4096" */
int pd_parse_duration(const char *text, uint64_t *ms);            /* "500ms", "2s", "1m" */
int pd_parse_addr(const char *text, struct pd_config_addr *addr); /* "host:port" */

#endif
