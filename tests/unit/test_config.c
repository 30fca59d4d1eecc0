/* SPDX-License-Identifier: Apache-2.0 */
/* Config loader tests: values, defaults, parsers, and each error class with its position. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/config_internal.h"

#ifndef PD_SOURCE_ROOT
#error "PD_SOURCE_ROOT must name the project source root"
#endif
#define FIXTURE(name) PD_SOURCE_ROOT "/tests/unit/configs/" name

static int passed, failed;
static bool case_failed;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("    %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
			case_failed = true;                                                        \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *a_ = (a), *b_ = (b);                                                   \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                             \
			printf("    %s:%d: check failed: %s == \"%s\" (got \"%s\")\n", __FILE__,   \
			       __LINE__, #a, b_ ? b_ : "(null)", a_ ? a_ : "(null)");              \
			case_failed = true;                                                        \
		}                                                                                  \
	} while (0)

static void run(const char *name, void (*fn)(void))
{
	case_failed = false;
	fn();
	if (case_failed)
		failed++;
	else
		passed++;
	printf("%s %s\n", case_failed ? "FAIL" : "ok  ", name);
}

/* ---- helpers ---- */

struct result {
	int ret;
	struct pd_config *cfg;
	char *errs;
	size_t errs_len;
	char path[PATH_MAX];
};

static void load(struct result *r, const char *path)
{
	FILE *errs;

	memset(r, 0, sizeof(*r));
	snprintf(r->path, sizeof(r->path), "%s", path);
	errs = open_memstream(&r->errs, &r->errs_len);
	if (errs == NULL) {
		printf("    open_memstream failed\n");
		case_failed = true;
		r->ret = -ENOMEM;
		return;
	}
	r->cfg = (struct pd_config *)(uintptr_t)1; /* must be overwritten */
	r->ret = pd_config_load(path, &r->cfg, errs);
	fclose(errs);
}

static void release(struct result *r)
{
	pd_config_free(r->cfg);
	free(r->errs);
	r->cfg = NULL;
	r->errs = NULL;
}

/* Writes text to a fresh temporary .yaml file; its path goes to path. */
static void write_temp(char *path, size_t size, const char *text)
{
	FILE *f;
	int fd;

	snprintf(path, size, "/tmp/pd_test_config_XXXXXX.yaml");
	fd = mkstemps(path, 5);
	if (fd < 0) {
		printf("    mkstemps failed\n");
		case_failed = true;
		return;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		case_failed = true;
		return;
	}
	fputs(text, f);
	fclose(f);
}

/* Loads text from a temporary file, which is removed again. */
static void load_text(struct result *r, const char *text)
{
	char path[64];

	write_temp(path, sizeof(path), text);
	load(r, path);
	unlink(path);
}

static int count_lines(const char *text)
{
	int n = 0;

	for (; text != NULL && *text != '\0'; text++)
		n += *text == '\n';
	return n;
}

/* Is there a line "PATH:LINE:COL: error: ...SUBSTRING..." in r->errs? */
static bool has_error(const struct result *r, int line, int col, const char *substring)
{
	char prefix[PATH_MAX + 64];
	const char *p = r->errs;

	snprintf(prefix, sizeof(prefix), "%s:%d:%d: error: ", r->path, line, col);
	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char text[2048];

		snprintf(text, sizeof(text), "%.*s", (int)len, p);
		if (strncmp(text, prefix, strlen(prefix)) == 0 && strstr(text, substring) != NULL)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

#define EXPECT_ERROR(r, line, col, substring)                                                      \
	do {                                                                                       \
		if (!has_error((r), (line), (col), (substring))) {                                 \
			printf("    %s:%d: no error at %d:%d containing \"%s\"; got:\n%s",         \
			       __FILE__, __LINE__, (line), (col), (substring),                     \
			       (r)->errs ? (r)->errs : "");                                        \
			case_failed = true;                                                        \
		}                                                                                  \
	} while (0)

/* A load that must fail with -EINVAL, report n errors, and return nothing. */
#define EXPECT_INVALID(r, n)                                                                       \
	do {                                                                                       \
		CHECK((r)->ret == -EINVAL);                                                        \
		CHECK((r)->cfg == NULL);                                                           \
		if ((n) > 0 && count_lines((r)->errs) != (n)) {                                    \
			printf("    %s:%d: expected %d error lines, got:\n%s", __FILE__, __LINE__, \
			       (n), (r)->errs ? (r)->errs : "");                                   \
			case_failed = true;                                                        \
		}                                                                                  \
	} while (0)

#define EXPECT_VALID(r)                                                                            \
	do {                                                                                       \
		if ((r)->ret != 0 || (r)->cfg == NULL) {                                           \
			printf("    %s:%d: load failed (%d):\n%s", __FILE__, __LINE__, (r)->ret,   \
			       (r)->errs ? (r)->errs : "");                                        \
			case_failed = true;                                                        \
		}                                                                                  \
		CHECK((r)->errs_len == 0);                                                         \
	} while (0)

#define BASE_NODES "nodes: [{ name: a, address: \"127.0.0.1\", port: 7001 }]\n"
#define BASE_TENANTS "tenants: [{ name: acme }]\n"
#define BASE_FUNCTIONS "functions: [{ name: upper, tenant: acme, exec: upper, node: a }]\n"
#define BASE_ROUTES "routes: [{ path: /, tenant: acme, chain: [upper] }]\n"
#define BASE BASE_NODES BASE_TENANTS BASE_FUNCTIONS BASE_ROUTES

/* ---- valid files ---- */

static void test_full(void)
{
	struct result r;
	const struct pd_config *c;

	load(&r, FIXTURE("full.yaml"));
	EXPECT_VALID(&r);
	c = r.cfg;
	if (c == NULL || r.ret != 0)
		goto out;
	CHECK_STR(c->path, FIXTURE("full.yaml"));
	CHECK_STR(c->fabric.provider, "verbs");
	CHECK(c->fabric.primitive == PD_PRIMITIVE_ONE_SIDED);

	CHECK_STR(c->ingress.listen, "0.0.0.0:9080");
	CHECK_STR(c->ingress.listen_addr.host, "0.0.0.0");
	CHECK(c->ingress.listen_addr.port == 9080);
	CHECK_STR(c->ingress.admin, "[::1]:9081");
	CHECK_STR(c->ingress.admin_addr.host, "::1");
	CHECK(c->ingress.admin_addr.port == 9081);
	CHECK_STR(c->ingress.address, "10.0.0.1");
	CHECK(c->ingress.threads == 1);
	CHECK(c->ingress.max_header_bytes == 16384);
	CHECK(c->ingress.reject_delay_ms == 250);

	CHECK(c->engine.spin_us == 0);
	CHECK(c->engine.ring_size == 4096);
	CHECK(c->engine.restart_backoff_ms == 250);
	CHECK(c->engine.restart_backoff_max_ms == 60000);
	CHECK_STR(c->engine.functions_dir, "/opt/palladium/functions");
	CHECK(c->engine.link_rate == 800ull << 20);

	CHECK(c->nodes_count == 2);
	CHECK_STR(c->nodes[0].name, "a");
	CHECK_STR(c->nodes[0].address, "10.0.0.2");
	CHECK(c->nodes[0].port == 7001);
	CHECK_STR(c->nodes[1].name, "b");
	CHECK_STR(c->nodes[1].address, "fd00::3");
	CHECK(c->nodes[1].port == 7002);

	CHECK(c->tenants_count == 2);
	CHECK_STR(c->tenants[0].name, "acme");
	CHECK(c->tenants[0].weight == 2);
	CHECK(c->tenants[0].pool == 128ull << 20);
	CHECK(c->tenants[0].buffer_size == 32768);
	CHECK(c->tenants[0].max_inflight == 512);
	CHECK(c->tenants[0].rate == 1500.5);
	CHECK_STR(c->tenants[0].run_as, "acme:staff");
	CHECK(c->tenants[0].max_body == 32768 - 256);
	CHECK_STR(c->tenants[1].name, "beta");
	CHECK(c->tenants[1].weight == 1);
	CHECK(c->tenants[1].pool == 64ull << 20);

	CHECK(c->functions_count == 3);
	CHECK_STR(c->functions[0].name, "upper");
	CHECK_STR(c->functions[0].tenant, "acme");
	CHECK_STR(c->functions[0].exec, "functions/upper");
	CHECK(c->functions[0].args == NULL && c->functions[0].args_count == 0);
	CHECK_STR(c->functions[0].node, "a");
	CHECK(c->functions[0].nodes == NULL);
	CHECK(c->functions[0].instances == 2);
	CHECK(c->functions[0].threads == 4);
	CHECK(c->functions[0].tenant_idx == 0);
	CHECK(c->functions[0].node_idx_count == 1 && c->functions[0].node_idx[0] == 0);

	CHECK_STR(c->functions[1].name, "exclaim");
	CHECK(c->functions[1].args_count == 3);
	if (c->functions[1].args_count == 3) {
		CHECK_STR(c->functions[1].args[0], "--loud");
		CHECK_STR(c->functions[1].args[1], "-n");
		CHECK_STR(c->functions[1].args[2], "3");
	}
	CHECK(c->functions[1].node == NULL);
	CHECK(c->functions[1].nodes_count == 2);
	CHECK(c->functions[1].node_idx_count == 2);
	CHECK(c->functions[1].node_idx[0] == 1 && c->functions[1].node_idx[1] == 0);
	CHECK(c->functions[1].instances == 1 && c->functions[1].threads == 1);
	CHECK(pd_config_function_on_node(&c->functions[1], 0));
	CHECK(pd_config_function_on_node(&c->functions[1], 1));
	CHECK(!pd_config_function_on_node(&c->functions[0], 1));
	CHECK(c->functions[2].tenant_idx == 1);

	CHECK(c->routes_count == 2);
	CHECK_STR(c->routes[0].path, "/shout");
	CHECK(c->routes[0].tenant_idx == 0);
	CHECK(c->routes[0].chain_count == 2);
	CHECK(c->routes[0].chain_idx[0] == 0 && c->routes[0].chain_idx[1] == 1);
	CHECK(c->routes[0].timeout_ms == 2000);
	CHECK_STR(c->routes[1].path, "/echo");
	CHECK(c->routes[1].tenant_idx == 1);
	CHECK(c->routes[1].chain_count == 1 && c->routes[1].chain_idx[0] == 2);
	CHECK(c->routes[1].timeout_ms == 5000);

	CHECK(pd_config_node_index(c, "b") == 1);
	CHECK(pd_config_node_index(c, "c") == -1);
	CHECK(pd_config_tenant_index(c, "beta") == 1);
	CHECK(pd_config_function_index(c, "echo") == 2);
	CHECK(pd_config_function_index(c, "nope") == -1);
out:
	release(&r);
}

static void test_defaults(void)
{
	struct result r;
	const struct pd_config *c;

	load(&r, FIXTURE("minimal.yaml"));
	EXPECT_VALID(&r);
	c = r.cfg;
	if (c == NULL || r.ret != 0)
		goto out;
	CHECK_STR(c->fabric.provider, "tcp");
	CHECK(c->fabric.primitive == PD_PRIMITIVE_TWO_SIDED);
	CHECK_STR(c->ingress.listen, "127.0.0.1:8080");
	CHECK_STR(c->ingress.listen_addr.host, "127.0.0.1");
	CHECK(c->ingress.listen_addr.port == 8080);
	CHECK_STR(c->ingress.admin, "127.0.0.1:8081");
	CHECK(c->ingress.admin_addr.port == 8081);
	CHECK_STR(c->ingress.address, "127.0.0.1");
	CHECK(c->ingress.threads == 1);
	CHECK(c->ingress.max_header_bytes == 8192);
	CHECK(c->ingress.reject_delay_ms == 100);
	CHECK(c->ingress.max_connections == 0); /* derived from RLIMIT_NOFILE at start */
	CHECK(c->ingress.request_read_timeout_ms == 10000);
	CHECK(c->engine.spin_us == 50);
	CHECK(c->engine.ring_size == 1024);
	CHECK(c->engine.restart_backoff_ms == 100);
	CHECK(c->engine.restart_backoff_max_ms == 5000);
	CHECK(c->engine.functions_dir == NULL);
	CHECK(c->tenants[0].weight == 1);
	CHECK(c->tenants[0].pool == 64ull << 20);
	CHECK(c->tenants[0].buffer_size == 16384);
	CHECK(c->tenants[0].max_inflight == 1024);
	CHECK(c->tenants[0].rate == 0);
	CHECK(c->tenants[0].run_as == NULL);
	CHECK(c->tenants[0].max_body == 16384 - 256);
	CHECK(c->functions[0].instances == 1);
	CHECK(c->functions[0].threads == 1);
	CHECK(c->functions[0].args_count == 0);
	CHECK(c->functions[0].calls == NULL && c->functions[0].calls_count == 0);
	CHECK(c->engine.max_call_depth == 16);
	CHECK(c->routes[0].timeout_ms == 5000);
out:
	release(&r);
}

/* Explicit values equal to the defaults, and the edges of every range, are accepted. */
static void test_edges_accepted(void)
{
	struct result r;

	load_text(
	    &r, "ingress: { max_header_bytes: 64KiB, threads: 1 }\n"
	        "engine: { spin_us: 100000, ring_size: 16, restart_backoff: 1ms, "
	        "restart_backoff_max: 60m }\n"
	        "nodes: [{ name: n-1_x, address: \"::1\", port: 65535 }]\n"
	        "tenants: [{ name: acme, weight: 1000, pool: 64GiB, buffer_size: 16MiB, "
	        "max_inflight: 65536, rate: 0.5, run_as: web }]\n"
	        "functions: [{ name: upper, tenant: acme, exec: upper, nodes: [n-1_x], "
	        "instances: 64, threads: 64 }]\n"
	        "routes: [{ path: \"/a/b-c.d~e\", tenant: acme, chain: [upper], timeout: 60m }]\n");
	EXPECT_VALID(&r);
	if (r.cfg != NULL && r.ret == 0) {
		CHECK(r.cfg->ingress.max_header_bytes == 65536);
		CHECK(r.cfg->engine.ring_size == 16);
		CHECK(r.cfg->engine.restart_backoff_max_ms == 3600000);
		CHECK(r.cfg->tenants[0].pool == 64ull << 30);
		CHECK(r.cfg->routes[0].timeout_ms == 3600000);
		CHECK(r.cfg->functions[0].instances == 64);
	}
	release(&r);

	/* Same bytes, different families: different addresses. */
	load_text(&r,
	          "nodes: [{ name: a, address: \"127.0.0.1\", port: 7001 }, "
	          "{ name: b, address: \"7f00:1::\", port: 7001 }]\n" BASE_TENANTS BASE_FUNCTIONS
	              BASE_ROUTES);
	EXPECT_VALID(&r);
	release(&r);

	load_text(&r, "engine: { ring_size: 65536 }\n"
	              "tenants: [{ name: acme, pool: 1MiB, buffer_size: 16KiB }]\n" BASE_NODES
	                  BASE_FUNCTIONS BASE_ROUTES);
	EXPECT_VALID(&r);
	release(&r);
}

/* engine.poll and engine.core: their defaults, their values, and a wrong value. */
static void test_engine_poll_and_core(void)
{
	struct result r;

	load_text(&r, BASE);
	EXPECT_VALID(&r);
	if (r.cfg != NULL) {
		CHECK(r.cfg->engine.poll == PD_POLL_ADAPTIVE);
		CHECK(r.cfg->engine.core == PD_CORE_SHARED);
	}
	release(&r);

	load_text(&r, "engine: { poll: fixed, core: own }\n" BASE);
	EXPECT_VALID(&r);
	if (r.cfg != NULL) {
		CHECK(r.cfg->engine.poll == PD_POLL_FIXED);
		CHECK(r.cfg->engine.core == PD_CORE_OWN);
	}
	release(&r);

	load_text(&r, "engine: { poll: sometimes, core: mine }\n" BASE);
	EXPECT_INVALID(&r, 2);
	EXPECT_ERROR(&r, 1, 17, "engine.poll: expected one of adaptive, fixed, got \"sometimes\"");
	EXPECT_ERROR(&r, 1, 34, "engine.core: expected one of shared, own, got \"mine\"");
	release(&r);
}

/* YAML anchors and aliases are plain YAML; libcyaml accepts them, so do we. */
static void test_aliases(void)
{
	struct result r;

	load_text(
	    &r, BASE_NODES BASE_TENANTS
	    "functions:\n"
	    "  - { name: upper, tenant: acme, exec: upper, node: a, args: &common [-v, -q] }\n"
	    "  - { name: lower, tenant: acme, exec: lower, node: a, args: *common }\n" BASE_ROUTES);
	EXPECT_VALID(&r);
	if (r.cfg != NULL && r.ret == 0) {
		CHECK(r.cfg->functions[1].args_count == 2);
		CHECK_STR(r.cfg->functions[1].args[1], "-q");
	}
	release(&r);
}

static void test_resolve_exec(void)
{
	struct result r;
	char buf[PATH_MAX], want[PATH_MAX + 32], self[PATH_MAX];
	ssize_t n;

	load(&r, FIXTURE("full.yaml"));
	EXPECT_VALID(&r);
	if (r.cfg != NULL && r.ret == 0) {
		CHECK(pd_config_resolve_exec(r.cfg, &r.cfg->functions[0], buf, sizeof(buf)) == 0);
		CHECK_STR(buf, FIXTURE("functions/upper"));
		CHECK(pd_config_resolve_exec(r.cfg, &r.cfg->functions[1], buf, sizeof(buf)) == 0);
		CHECK_STR(buf, "/opt/palladium/functions/exclaim");
		CHECK(pd_config_resolve_exec(r.cfg, &r.cfg->functions[2], buf, sizeof(buf)) == 0);
		CHECK_STR(buf, "/usr/local/bin/echo");
		/* len counts the NUL: exactly enough, one short, nothing. */
		CHECK(pd_config_resolve_exec(r.cfg, &r.cfg->functions[2], buf, 20) == 0);
		CHECK(pd_config_resolve_exec(r.cfg, &r.cfg->functions[2], buf, 19) ==
		      -ENAMETOOLONG);
		CHECK(pd_config_resolve_exec(r.cfg, &r.cfg->functions[2], buf, 0) == -ENAMETOOLONG);
	}
	release(&r);

	/* Default functions_dir: "functions" beside the running binary. */
	load(&r, FIXTURE("minimal.yaml"));
	EXPECT_VALID(&r);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	CHECK(n > 0);
	if (r.cfg != NULL && r.ret == 0 && n > 0) {
		self[n] = '\0';
		*strrchr(self, '/') = '\0';
		snprintf(want, sizeof(want), "%s/functions/upper", self);
		CHECK(pd_config_resolve_exec(r.cfg, &r.cfg->functions[0], buf, sizeof(buf)) == 0);
		CHECK_STR(buf, want);
	}
	release(&r);

	/* A relative functions_dir is relative to the config file's folder. */
	{
		char path[64], dir[64];

		write_temp(path, sizeof(path), "engine: { functions_dir: bin }\n" BASE);
		load(&r, path);
		unlink(path);
		EXPECT_VALID(&r);
		snprintf(dir, sizeof(dir), "%s", path);
		*strrchr(dir, '/') = '\0';
		snprintf(want, sizeof(want), "%s/bin/upper", dir);
		if (r.cfg != NULL && r.ret == 0) {
			CHECK(pd_config_resolve_exec(r.cfg, &r.cfg->functions[0], buf,
			                             sizeof(buf)) == 0);
			CHECK_STR(buf, want);
		}
		release(&r);
	}
}

/* ---- parsers ---- */

static void test_parse_size(void)
{
	static const struct {
		const char *text;
		uint64_t bytes;
	} good[] = {
	    {"0", 0},
	    {"4096", 4096},
	    {"16KiB", 16384},
	    {"16 KiB", 16384},
	    {"64MiB", 64ull << 20},
	    {"2GiB", 2ull << 30},
	    {"17179869184", 16ull << 30},
	    {"18446744073709551615", UINT64_MAX},
	};
	static const char *const bad[] = {
	    "",
	    "KiB",
	    "16kib",
	    "16KB",
	    "16K",
	    "16B",
	    "16 ",
	    " 16",
	    "16  KiB",
	    "-1",
	    "+1",
	    "1.5KiB",
	    "16KiBx",
	    "0x10",
	    "18446744073709551616",
	    "17179869184GiB",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 1;
		CHECK(pd_parse_size(good[i].text, &v) == 0);
		if (v != good[i].bytes) {
			printf("    size %s: got %llu\n", good[i].text, (unsigned long long)v);
			case_failed = true;
		}
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (pd_parse_size(bad[i], &v) != -EINVAL) {
			printf("    size \"%s\" accepted\n", bad[i]);
			case_failed = true;
		}
	}
	CHECK(pd_parse_size(NULL, &v) == -EINVAL);
}

static void test_parse_duration(void)
{
	static const struct {
		const char *text;
		uint64_t ms;
	} good[] = {
	    {"500ms", 500}, {"2s", 2000},    {"1m", 60000},
	    {"0ms", 0},     {"10 s", 10000}, {"90m", 5400000},
	};
	static const char *const bad[] = {
	    "5",
	    "",
	    "s",
	    "ms",
	    "1h",
	    "1.5s",
	    "5ms ",
	    " 5ms",
	    "-1s",
	    "1ms1",
	    "1 min",
	    "5S",
	    "5Ms",
	    "18446744073709551615s",
	    "99999999999999999999ms",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 1;
		CHECK(pd_parse_duration(good[i].text, &v) == 0);
		if (v != good[i].ms) {
			printf("    duration %s: got %llu\n", good[i].text, (unsigned long long)v);
			case_failed = true;
		}
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (pd_parse_duration(bad[i], &v) != -EINVAL) {
			printf("    duration \"%s\" accepted\n", bad[i]);
			case_failed = true;
		}
	}
	CHECK(pd_parse_duration(NULL, &v) == -EINVAL);
}

static void test_parse_addr(void)
{
	static const struct {
		const char *text;
		const char *host;
		uint16_t port;
	} good[] = {
	    {"127.0.0.1:8080", "127.0.0.1", 8080},
	    {"[::1]:443", "::1", 443},
	    {"0.0.0.0:1", "0.0.0.0", 1},
	    {"[fe80::1:2]:65535", "fe80::1:2", 65535},
	    {"[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80},
	};
	static const char *const bad[] = {
	    "localhost:80",
	    "127.0.0.1",
	    "127.0.0.1:0",
	    "127.0.0.1:65536",
	    "::1:80",
	    "[::1]",
	    "[::1]80",
	    "[127.0.0.1]:80",
	    ":80",
	    "1.2.3:80",
	    "127.0.0.1:80x",
	    "*:80",
	    "",
	    "[::1]:",
	    "127.0.0.1:",
	    "256.0.0.1:80",
	    "127.0.0.1:-1",
	    "[fe80::1%eth0]:80",
	    "[0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0001]:80",
	};
	struct pd_config_addr a;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		memset(&a, 0, sizeof(a));
		CHECK(pd_parse_addr(good[i].text, &a) == 0);
		CHECK_STR(a.host, good[i].host);
		CHECK(a.port == good[i].port);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (pd_parse_addr(bad[i], &a) != -EINVAL) {
			printf("    address \"%s\" accepted\n", bad[i]);
			case_failed = true;
		}
	}
	CHECK(pd_parse_addr(NULL, &a) == -EINVAL);
}

/* ---- errors, one fixture per class ---- */

static void test_err_syntax(void)
{
	struct result r;

	load(&r, FIXTURE("syntax.yaml"));
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 3, 8, "invalid YAML: did not find expected ',' or '}'");
	EXPECT_ERROR(&r, 3, 8, "flow mapping that started at 2:5");
	release(&r);
}

static void test_err_unknown_key_top(void)
{
	struct result r;

	load(&r, FIXTURE("unknown_top.yaml"));
	EXPECT_INVALID(&r, 2);
	EXPECT_ERROR(&r, 1, 1, "unknown key \"fabrik\" at top level (did you mean \"fabric\"?)");
	EXPECT_ERROR(&r, 6, 1, "unknown key \"colour\" at top level (expected one of: fabric,");
	release(&r);
}

static void test_err_unknown_key_nested(void)
{
	struct result r;

	load(&r, FIXTURE("unknown_nested.yaml"));
	EXPECT_INVALID(&r, 4);
	EXPECT_ERROR(&r, 3, 3, "engine: unknown key \"ringsize\" (did you mean \"ring_size\"?)");
	EXPECT_ERROR(&r, 6, 5, "nodes[0]: unknown key \"adress\" (did you mean \"address\"?)");
	EXPECT_ERROR(&r, 5, 5, "nodes[0]: missing required key \"address\"");
	EXPECT_ERROR(&r, 8, 25,
	             "tenants[0]: unknown key \"colour\" (expected one of: name, weight");
	release(&r);
}

static void test_err_missing_key(void)
{
	struct result r;

	load(&r, FIXTURE("missing_key.yaml"));
	EXPECT_INVALID(&r, 3);
	EXPECT_ERROR(&r, 1, 1, "missing required section \"routes\"");
	EXPECT_ERROR(&r, 2, 5, "nodes[0]: missing required key \"port\"");
	EXPECT_ERROR(&r, 5, 5, "functions[0]: missing required key \"name\"");
	release(&r);
}

static void test_err_wrong_type(void)
{
	struct result r;

	load(&r, FIXTURE("wrong_type.yaml"));
	EXPECT_INVALID(&r, 8);
	EXPECT_ERROR(&r, 1, 37,
	             "fabric.primitive: expected one of two-sided, one-sided, got \"three-sided\"");
	EXPECT_ERROR(&r, 2, 48, "nodes[0].port: expected an integer, got \"7001x\"");
	EXPECT_ERROR(&r, 3, 33, "tenants[0].weight: expected an integer, got \"heavy\"");
	EXPECT_ERROR(&r, 3, 46, "tenants[0].rate: expected a number, got \"fast\"");
	EXPECT_ERROR(&r, 4, 48, "functions[0].exec: expected a string, got a sequence");
	EXPECT_ERROR(&r, 4, 77, "functions[0].instances: \"010\": leading zeros are not allowed");
	EXPECT_ERROR(&r, 5, 42, "routes[0].chain: expected a sequence, got \"upper\"");
	EXPECT_ERROR(&r, 6, 10, "ingress: expected a mapping, got \"127.0.0.1:8080\"");
	release(&r);
}

static void test_err_bad_size(void)
{
	struct result r;

	load(&r, FIXTURE("bad_size.yaml"));
	EXPECT_INVALID(&r, 6);
	EXPECT_ERROR(&r, 1, 30, "ingress.max_header_bytes: \"1MiB\" is out of range (1KiB..64KiB)");
	EXPECT_ERROR(&r, 4, 25, "tenants[0].pool: \"64MB\" is not a size");
	EXPECT_ERROR(&r, 4, 25, "units are binary");
	EXPECT_ERROR(&r, 5, 32, "tenants[1].buffer_size: \"2KiB\" is out of range (4KiB..16MiB)");
	EXPECT_ERROR(&r, 6, 33, "tenants[2].buffer_size: \"5000\" is not a multiple of 64 bytes");
	EXPECT_ERROR(&r, 7, 26,
	             "tenants[3].pool: a pool of 1MiB holds only 16 buffers of 64KiB; at least 64");
	EXPECT_ERROR(&r, 10, 22,
	             "engine.link_rate: \"10KiB/s\" is not a rate from 1MiB/s to 1024GiB/s");
	release(&r);
}

static void test_err_bad_duration(void)
{
	struct result r;

	load(&r, FIXTURE("bad_duration.yaml"));
	EXPECT_INVALID(&r, 6);
	EXPECT_ERROR(&r, 2, 20, "engine.restart_backoff: \"1h\" is not a duration");
	EXPECT_ERROR(&r, 3, 24, "engine.restart_backoff_max: \"10\" has no unit: write it as 10ms");
	EXPECT_ERROR(&r, 8, 56, "routes[0].timeout: \"5\" has no unit");
	EXPECT_ERROR(&r, 9, 56, "routes[1].timeout: \"2h\" is not a duration");
	EXPECT_ERROR(&r, 10, 56, "routes[2].timeout: \"0ms\" is out of range (1ms..60m)");
	EXPECT_ERROR(&r, 11, 26, "ingress.reject_delay: \"11s\" is out of range (0ms..10s)");
	release(&r);
}

static void test_err_duplicates(void)
{
	struct result r;

	load(&r, FIXTURE("duplicate_names.yaml"));
	EXPECT_INVALID(&r, 5);
	EXPECT_ERROR(&r, 3, 25, "nodes[1].address: node \"a\" already uses 127.0.0.1 port 7001");
	EXPECT_ERROR(&r, 4, 13, "nodes[2].name: duplicate node name \"a\" (first at 2:13)");
	EXPECT_ERROR(&r, 7, 13, "tenants[1].name: duplicate tenant name \"acme\" (first at 6:13)");
	EXPECT_ERROR(&r, 10, 13,
	             "functions[1].name: duplicate function name \"upper\" (first at 9:13)");
	EXPECT_ERROR(&r, 13, 13, "routes[1].path: duplicate route path \"/up\" (first at 12:13)");
	release(&r);
}

static void test_err_chain_unknown(void)
{
	struct result r;

	load(&r, FIXTURE("chain_unknown.yaml"));
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 12, 20,
	             "routes[0].chain[1]: unknown function \"exclam\" (functions of tenant "
	             "\"acme\": upper, exclaim)");
	release(&r);
}

static void test_err_chain_other_tenant(void)
{
	struct result r;

	load(&r, FIXTURE("chain_other_tenant.yaml"));
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 7, 48,
	             "routes[0].chain[1]: function \"reverse\" belongs to tenant \"beta\", not to "
	             "\"acme\"");
	release(&r);
}

static void test_err_node_and_nodes(void)
{
	struct result r;

	load(&r, FIXTURE("node_and_nodes.yaml"));
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 4, 56, "functions[0].nodes: give either \"node\" or \"nodes\", not both");
	release(&r);
}

static void test_err_no_node(void)
{
	struct result r;

	load(&r, FIXTURE("no_node.yaml"));
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 4, 5, "functions[0]: missing \"node\" (or \"nodes\"");
	release(&r);
}

static void test_err_bad_address(void)
{
	struct result r;

	load(&r, FIXTURE("bad_address.yaml"));
	EXPECT_INVALID(&r, 4);
	EXPECT_ERROR(&r, 2, 11,
	             "ingress.listen: \"localhost:8080\" is not an address: not an IP address "
	             "(host names are not accepted)");
	EXPECT_ERROR(&r, 3, 10, "ingress.admin: \"[::1]\" is not an address: the port is missing");
	EXPECT_ERROR(&r, 4, 12, "ingress.address: \"ingress.example\" is not an IP address");
	EXPECT_ERROR(&r, 6, 25, "nodes[0].address: \"node-a.local\" is not an IP address");
	release(&r);
}

static void test_err_port_range(void)
{
	struct result r;

	load(&r, FIXTURE("port_range.yaml"));
	EXPECT_INVALID(&r, 3);
	EXPECT_ERROR(&r, 1, 20,
	             "ingress.listen: \"127.0.0.1:65536\" is not an address: the port "
	             "must be a number from 1 to 65535");
	EXPECT_ERROR(&r, 1, 46, "ingress.admin: \"127.0.0.1:0\" is not an address");
	EXPECT_ERROR(&r, 4, 44, "nodes[1].port: 0 is out of range (1..65535)");
	release(&r);

	/* Too large for the field at all: caught by the schema check. */
	load_text(&r, "nodes: [{ name: a, address: \"127.0.0.1\", port: 70000 }]\n" BASE_TENANTS
	                  BASE_FUNCTIONS BASE_ROUTES);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 48, "nodes[0].port: \"70000\" is out of range (at most 65535)");
	release(&r);
}

/* ingress.max_connections and ingress.request_read_timeout: edges, then errors. */
static void test_ingress_connections(void)
{
	struct result r;

	load_text(&r, "ingress: { max_connections: 1, request_read_timeout: 100ms }\n" BASE);
	EXPECT_VALID(&r);
	if (r.cfg != NULL && r.ret == 0) {
		CHECK(r.cfg->ingress.max_connections == 1);
		CHECK(r.cfg->ingress.request_read_timeout_ms == 100);
	}
	release(&r);

	load_text(&r, "ingress: { max_connections: 1048576, request_read_timeout: 10m }\n" BASE);
	EXPECT_VALID(&r);
	if (r.cfg != NULL && r.ret == 0) {
		CHECK(r.cfg->ingress.max_connections == 1048576);
		CHECK(r.cfg->ingress.request_read_timeout_ms == 600000);
	}
	release(&r);

	load_text(&r, "ingress:\n"
	              "  max_connections: 0\n"
	              "  request_read_timeout: 50ms\n" BASE);
	EXPECT_INVALID(&r, 2);
	EXPECT_ERROR(&r, 2, 20, "ingress.max_connections: 0 is out of range (1..1048576)");
	EXPECT_ERROR(&r, 3, 25,
	             "ingress.request_read_timeout: \"50ms\" is out of range (100ms..10m)");
	release(&r);

	load_text(&r, "ingress:\n"
	              "  max_connections: 1048577\n"
	              "  request_read_timeout: 11m\n" BASE);
	EXPECT_INVALID(&r, 2);
	EXPECT_ERROR(&r, 2, 20, "ingress.max_connections: 1048577 is out of range (1..1048576)");
	EXPECT_ERROR(&r, 3, 25,
	             "ingress.request_read_timeout: \"11m\" is out of range (100ms..10m)");
	release(&r);

	/* A shape error (caught before validation) is reported alone. */
	load_text(&r, "ingress:\n"
	              "  max_connections: many\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 20, "ingress.max_connections: expected an integer, got \"many\"");
	release(&r);

	load_text(&r, "ingress:\n"
	              "  request_read_timeout: 10\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 25, "ingress.request_read_timeout: \"10\" has no unit");
	release(&r);
}

static void test_ingress_tls(void)
{
	struct result r;

	/* Absent: plain HTTP. */
	load_text(&r, BASE);
	EXPECT_VALID(&r);
	if (r.cfg != NULL && r.ret == 0) {
		CHECK(!r.cfg->ingress.tls.enabled);
		CHECK(r.cfg->ingress.tls.cert == NULL);
	}
	release(&r);

	/* Relative paths are resolved against the file's folder (/tmp), absolute ones kept. */
	load_text(&r, "ingress:\n"
	              "  listen: \"127.0.0.1:8443\"\n"
	              "  tls: { cert: tls/chain.pem, key: /etc/pd/key.pem }\n" BASE);
	EXPECT_VALID(&r);
	if (r.cfg != NULL && r.ret == 0) {
		CHECK(r.cfg->ingress.tls.enabled);
		CHECK_STR(r.cfg->ingress.tls.cert, "/tmp/tls/chain.pem");
		CHECK_STR(r.cfg->ingress.tls.key, "/etc/pd/key.pem");
		CHECK(r.cfg->ingress.tls.plain_listen == NULL);
		CHECK(r.cfg->ingress.tls.plain_mode == PD_TLS_PLAIN_REDIRECT);
	}
	release(&r);

	load_text(&r, "ingress:\n"
	              "  listen: \"0.0.0.0:443\"\n"
	              "  tls:\n"
	              "    cert: c.pem\n"
	              "    key: k.pem\n"
	              "    plain_listen: \"0.0.0.0:80\"\n"
	              "    plain_mode: serve\n" BASE);
	EXPECT_VALID(&r);
	if (r.cfg != NULL && r.ret == 0) {
		CHECK_STR(r.cfg->ingress.tls.cert, "/tmp/c.pem");
		CHECK_STR(r.cfg->ingress.tls.plain_listen, "0.0.0.0:80");
		CHECK_STR(r.cfg->ingress.tls.plain_listen_addr.host, "0.0.0.0");
		CHECK(r.cfg->ingress.tls.plain_listen_addr.port == 80);
		CHECK(r.cfg->ingress.tls.plain_mode == PD_TLS_PLAIN_SERVE);
	}
	release(&r);

	load_text(&r, "ingress:\n"
	              "  tls: { cert: c.pem, key: k.pem, plain_listen: \"127.0.0.1:80\","
	              " plain_mode: redirect }\n" BASE);
	EXPECT_VALID(&r);
	if (r.cfg != NULL && r.ret == 0)
		CHECK(r.cfg->ingress.tls.plain_mode == PD_TLS_PLAIN_REDIRECT);
	release(&r);

	/* plain_mode alone does nothing: refused rather than ignored. */
	load_text(&r, "ingress:\n"
	              "  tls:\n"
	              "    cert: c.pem\n"
	              "    key: k.pem\n"
	              "    plain_mode: serve\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 5, 17,
	             "ingress.tls.plain_mode: has no effect without ingress.tls.plain_listen");
	release(&r);

	/* The plain listener must not take the HTTPS or the admin listener's place. */
	load_text(&r, "ingress:\n"
	              "  listen: \"127.0.0.1:8443\"\n"
	              "  admin: \"127.0.0.1:8081\"\n"
	              "  tls: { cert: c.pem, key: k.pem, plain_listen: \"0.0.0.0:8443\" }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 4, 49,
	             "ingress.tls.plain_listen: the plain HTTP listener (0.0.0.0:8443) collides "
	             "with the HTTPS listener (127.0.0.1:8443)");
	release(&r);

	load_text(&r,
	          "ingress:\n"
	          "  listen: \"127.0.0.1:8443\"\n"
	          "  tls: { cert: c.pem, key: k.pem, plain_listen: \"127.0.0.1:8081\" }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 3, 49,
	             "ingress.tls.plain_listen: the plain HTTP listener (127.0.0.1:8081) collides "
	             "with the admin listener (127.0.0.1:8081)");
	release(&r);

	load_text(&r, "ingress:\n"
	              "  tls: { cert: c.pem, key: k.pem, plain_listen: \"localhost:80\" }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 49, "ingress.tls.plain_listen: \"localhost:80\" is not an address");
	release(&r);

	/* Shape errors: a missing key, an unknown mode, an unknown key, an empty path. */
	load_text(&r, "ingress:\n"
	              "  tls: { cert: c.pem }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 8, "ingress.tls: missing required key \"key\"");
	release(&r);

	load_text(&r, "ingress:\n"
	              "  tls: { cert: c.pem, key: k.pem, plain_listen: \"127.0.0.1:80\","
	              " plain_mode: bounce }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 77,
	             "ingress.tls.plain_mode: expected one of redirect, serve, got \"bounce\"");
	release(&r);

	load_text(&r, "ingress:\n"
	              "  tls: { cert: c.pem, key: k.pem, redirect: true }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 35, "redirect");
	release(&r);

	load_text(&r, "ingress:\n"
	              "  tls: { cert: \"\", key: k.pem }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 16, "must not be empty");
	release(&r);

	/* ingress.tls is a sub-section of the key table: its shape is checked like any other. */
	load_text(&r, "ingress:\n"
	              "  tls: { cert: c.pem, key: k.pem, redirect: true }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 35,
	             "ingress.tls: unknown key \"redirect\" (expected one of: cert, key, "
	             "plain_listen, plain_mode)");
	release(&r);

	load_text(&r, "ingress:\n"
	              "  tsl: { cert: c.pem, key: k.pem }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 3, "ingress: unknown key \"tsl\" (did you mean \"tls\"?)");
	release(&r);

	load_text(&r, "ingress:\n"
	              "  tls: true\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 8, "ingress.tls: expected a mapping, got \"true\"");
	release(&r);

	load_text(&r, "ingress:\n"
	              "  tls: {}\n" BASE);
	EXPECT_INVALID(&r, 2);
	EXPECT_ERROR(&r, 2, 8, "ingress.tls: missing required key \"cert\"");
	EXPECT_ERROR(&r, 2, 8, "ingress.tls: missing required key \"key\"");
	release(&r);

	load_text(&r, "tls: { cert: c.pem, key: k.pem }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 1, "unknown key \"tls\" at top level");
	release(&r);

	load_text(&r, "ingress:\n"
	              "  tls:\n"
	              "    cert: c.pem\n"
	              "    key: k.pem\n"
	              "    plain_listen: \"127.0.0.1:0\"\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 5, 19, "ingress.tls.plain_listen: \"127.0.0.1:0\" is not an address");
	release(&r);
}

static void test_err_ingress_threads(void)
{
	struct result r;

	load(&r, FIXTURE("ingress_threads.yaml"));
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 12, "ingress.threads: only 1 thread is supported for now, got 2");
	release(&r);
}

static void test_err_empty(void)
{
	struct result r;

	load(&r, FIXTURE("empty.yaml"));
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 1, "the file is empty");
	release(&r);

	load_text(&r, "# only a comment\n\n");
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 1, "the file is empty");
	release(&r);
}

static void test_err_not_found(void)
{
	struct result r;

	load(&r, FIXTURE("does-not-exist.yaml"));
	CHECK(r.ret == -ENOENT);
	CHECK(r.cfg == NULL);
	CHECK(r.errs != NULL &&
	      strstr(r.errs, "does-not-exist.yaml: error: cannot read: ") != NULL);
	release(&r);

	load(&r, FIXTURE(""));
	CHECK(r.ret == -EISDIR);
	CHECK(r.cfg == NULL);
	release(&r);
}

static void test_err_multiple(void)
{
	struct result r;

	load(&r, FIXTURE("multi.yaml"));
	EXPECT_INVALID(&r, 7);
	EXPECT_ERROR(&r, 4, 13, "nodes[1].name: \"A\" is not a valid name");
	EXPECT_ERROR(&r, 6, 27, "tenants[0].weight: 0 is out of range (1..1000)");
	EXPECT_ERROR(&r, 8, 53, "functions[0].node: unknown node \"c\" (nodes: a)");
	EXPECT_ERROR(&r, 9, 28, "functions[1].tenant: unknown tenant \"acne\" (tenants: acme)");
	EXPECT_ERROR(&r, 11, 13, "routes[0].path: \"shout\" must start with '/'");
	EXPECT_ERROR(&r, 11, 49, "routes[0].chain[1]: unknown function \"nope\"");
	EXPECT_ERROR(&r, 11, 65, "routes[0].timeout: \"3\" has no unit");
	/* Sorted by position, so the output reads top-down. */
	CHECK(r.errs != NULL && strstr(r.errs, ":4:13:") < strstr(r.errs, ":11:65:"));
	release(&r);
}

/* ---- more errors, from inline text ---- */

static void test_err_structure_more(void)
{
	struct result r;

	load_text(&r, BASE "---\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 5, 1, "a second YAML document is not allowed");
	release(&r);

	load_text(&r, "fabric: { provider: tcp, provider: verbs }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 26, "fabric: key \"provider\" given twice (first at 1:11)");
	release(&r);

	load_text(&r, "fabric:\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 8, "fabric: expected a mapping, got an empty value");
	release(&r);

	load_text(&r, "- nodes\n");
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 1, "expected a mapping, got a sequence");
	release(&r);

	load_text(&r, "fabric: { [a]: b }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 11, "fabric: expected a key name, got a sequence");
	release(&r);

	load_text(&r, "nodes: []\n" BASE_TENANTS BASE_FUNCTIONS BASE_ROUTES);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 8, "nodes: must not be empty");
	release(&r);

	load_text(&r, BASE_NODES BASE_TENANTS BASE_FUNCTIONS
	          "routes: [{ path: /, tenant: acme, chain: [upper, upper, upper, upper, upper, "
	          "upper, upper, upper, upper, upper, upper, upper, upper, upper, upper, upper, "
	          "upper, upper, upper, upper, upper, upper, upper, upper, upper, upper, upper, "
	          "upper, upper, upper, upper, upper, upper] }]\n");
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 4, 42, "routes[0].chain: too many entries: 33 (at most 32)");
	release(&r);

	load_text(&r,
	          "tenants: [{ name: "
	          "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd }]\n" BASE_NODES
	              BASE_FUNCTIONS BASE_ROUTES);
	EXPECT_INVALID(&r, 0);
	EXPECT_ERROR(&r, 1, 19, "tenants[0].name: too long: 64 characters (at most 63)");
	release(&r);

	load_text(&r, BASE_NODES BASE_TENANTS "functions: [{ name: upper, tenant: acme, exec: "
	                                      "\"up\\0per\", node: a }]\n" BASE_ROUTES);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 3, 48, "functions[0].exec: must not contain NUL characters");
	release(&r);

	load_text(
	    &r,
	    "engine: { ring_size: 0x40, spin_us: -1 }\n"
	    "tenants: [{ name: acme, weight: 1.5, rate: .nan, max_inflight: 1_000 }]\n" BASE_NODES
	        BASE_FUNCTIONS BASE_ROUTES);
	EXPECT_INVALID(&r, 5);
	EXPECT_ERROR(&r, 1, 22, "engine.ring_size: expected an integer, got \"0x40\"");
	EXPECT_ERROR(&r, 1, 37, "engine.spin_us: expected an integer, got \"-1\"");
	EXPECT_ERROR(&r, 2, 33, "tenants[0].weight: expected an integer, got \"1.5\"");
	EXPECT_ERROR(&r, 2, 44, "tenants[0].rate: expected a number, got \".nan\"");
	EXPECT_ERROR(&r, 2, 64, "tenants[0].max_inflight: expected an integer, got \"1_000\"");
	release(&r);

	load_text(&r,
	          "tenants: [{ name: acme, rate: 1e999 }]\n" BASE_NODES BASE_FUNCTIONS BASE_ROUTES);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 31, "tenants[0].rate: \"1e999\" is out of range");
	release(&r);
}

static void test_err_yaml_more(void)
{
	struct result r;

	load_text(&r, "fabric:\n\tprovider: tcp\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 1, "invalid YAML: found character that cannot start any token");
	release(&r);

	load_text(&r, "nodes: [{ name: a\n");
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 1, "invalid YAML");
	release(&r);

	load_text(&r, "fabric: { provider: \x01 }\n");
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 21, "invalid YAML: control characters are not allowed (byte 0x01)");
	release(&r);

	load_text(&r, "nodes:\n  - \xff\xfe\n");
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 5, "invalid YAML: invalid leading UTF-8 octet");
	release(&r);

	load_text(&r, "nodes: *nothing\n");
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 8, "invalid YAML: found undefined alias");
	release(&r);

	/* A node that contains itself must not send the checker round in circles. */
	load_text(&r, "fabric: &f { provider: *f }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 9, "fabric.provider: expected a string, got a mapping");
	release(&r);
}

/* Deep nesting, huge and hostile input: an error, never a crash or a leak. */
static void test_err_hostile(void)
{
	struct result r;
	size_t depth = 20000;
	char *text = malloc(depth * 2 + sizeof(BASE) + 16);
	char *many = malloc(200 * 32 + 1);

	CHECK(text != NULL && many != NULL);
	if (text == NULL || many == NULL)
		goto out;
	strcpy(text, "fabric: ");
	memset(text + 8, '[', depth);
	memset(text + 8 + depth, ']', depth);
	strcpy(text + 8 + 2 * depth, "\n" BASE);
	load_text(&r, text);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 24, "nested deeper than 16 levels");
	release(&r);

	many[0] = '\0';
	for (int i = 0; i < 150; i++)
		sprintf(many + strlen(many), "bogus%d: 1\n", i);
	load_text(&r, many);
	CHECK(r.ret == -EINVAL);
	/* 100 errors, the missing sections among them, then a note about the rest. */
	CHECK(count_lines(r.errs) == 101);
	CHECK(r.errs != NULL && strstr(r.errs, "more errors not shown") != NULL);
	release(&r);

	/* Limits that keep libyaml linear: nesting depth and anchors. */
	load_text(&r, "fabric: [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 24, "nested deeper than 16 levels");
	release(&r);

	many[0] = '\0';
	strcat(many, "nodes: [");
	for (int i = 0; i < 257; i++)
		sprintf(many + strlen(many), "&a%d x,", i);
	strcat(many, "]\n");
	load_text(&r, many);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 1947, "more than 256 anchors");
	release(&r);

	/* Exactly 1 MiB loads; one byte more is refused before parsing. */
	{
		size_t size = 1u << 20;
		char *big = malloc(size + 2);

		CHECK(big != NULL);
		if (big != NULL) {
			memset(big, '#', size);
			memcpy(big, BASE, strlen(BASE));
			big[size - 1] = '\n';
			big[size] = '\0';
			load_text(&r, big);
			EXPECT_VALID(&r);
			release(&r);
			big[size] = '\n';
			big[size + 1] = '\0';
			load_text(&r, big);
			CHECK(r.ret == -EFBIG);
			CHECK(r.errs != NULL && strstr(r.errs, "larger than 1 MiB") != NULL);
			release(&r);
			free(big);
		}
	}

	/* No errs stream: still an error code, nothing printed, nothing leaked. */
	{
		struct pd_config *cfg = NULL;

		CHECK(pd_config_load(FIXTURE("multi.yaml"), &cfg, NULL) == -EINVAL);
		CHECK(cfg == NULL);
	}
out:
	free(text);
	free(many);
}

static void test_err_semantic_more(void)
{
	struct result r;

	load_text(&r, "engine: { ring_size: 1000, spin_us: 100001, restart_backoff: 10s, "
	              "restart_backoff_max: 1s }\n" BASE);
	EXPECT_INVALID(&r, 3);
	EXPECT_ERROR(&r, 1, 22, "engine.ring_size: 1000 is not a power of two from 16 to 65536");
	EXPECT_ERROR(&r, 1, 37, "engine.spin_us: 100001 is out of range (0..100000)");
	EXPECT_ERROR(&r, 1, 88,
	             "engine.restart_backoff_max: restart_backoff_max (1s) is less than "
	             "restart_backoff (10s)");
	release(&r);

	load_text(&r, "ingress: { listen: \"0.0.0.0:9000\", admin: \"127.0.0.1:9000\" }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 43, "ingress.admin: the admin listener (127.0.0.1:9000) collides");
	release(&r);

	load_text(
	    &r, "tenants: [{ name: acme, run_as: \"a:b:c\", rate: -5 }]\n" BASE_NODES BASE_FUNCTIONS
	            BASE_ROUTES);
	EXPECT_INVALID(&r, 2);
	EXPECT_ERROR(&r, 1, 33, "tenants[0].run_as: \"a:b:c\" is not \"user\" or \"user:group\"");
	EXPECT_ERROR(&r, 1, 48, "tenants[0].rate: -5 is negative");
	release(&r);

	load_text(&r, BASE_NODES BASE_TENANTS BASE_FUNCTIONS
	          "routes:\n"
	          "  - { path: \"/a b\", tenant: acme, chain: [upper] }\n"
	          "  - { path: \"/a?x=1\", tenant: acme, chain: [upper] }\n"
	          "  - { path: /b, tenant: nobody, chain: [upper] }\n");
	EXPECT_INVALID(&r, 3);
	EXPECT_ERROR(&r, 5, 13, "routes[0].path: \"/a b\" must be printable ASCII");
	EXPECT_ERROR(&r, 6, 13, "routes[1].path: \"/a?x=1\" must be printable ASCII");
	EXPECT_ERROR(&r, 7, 25, "routes[2].tenant: unknown tenant \"nobody\" (tenants: acme)");
	release(&r);

	load_text(&r,
	          "nodes: [{ name: a, address: \"127.0.0.1\", port: 7001 }, "
	          "{ name: b, address: \"127.0.0.2\", port: 7001 }]\n" BASE_TENANTS "functions:\n"
	          "  - { name: f1, tenant: acme, exec: f1, nodes: [a, b], instances: 40 }\n"
	          "  - { name: f2, tenant: acme, exec: f2, nodes: [b, a, b], instances: 30 }\n"
	          "  - { name: upper, tenant: acme, exec: upper, nodes: [a] }\n" BASE_ROUTES);
	EXPECT_INVALID(&r, 3);
	EXPECT_ERROR(&r, 5, 55, "functions[1].nodes[2]: node \"b\" is listed twice");
	EXPECT_ERROR(&r, 5, 70, "tenant \"acme\" would run 70 function instances on node \"b\"");
	EXPECT_ERROR(&r, 5, 70, "tenant \"acme\" would run 70 function instances on node \"a\"");
	release(&r);
}

/* functions[].calls: resolved to indexes, forward references and the caller itself included. */
static void test_calls(void)
{
	struct result r;
	const struct pd_config_function *f;

	load_text(&r,
	          BASE_NODES "tenants: [{ name: acme }, { name: beta }]\n"
	                     "functions:\n"
	                     "  - { name: front, tenant: acme, exec: front, node: a, "
	                     "calls: [cart, front, ads] }\n"
	                     "  - { name: cart, tenant: acme, exec: cart, node: a }\n"
	                     "  - { name: ads, tenant: acme, exec: ads, node: a, calls: [cart] }\n"
	                     "  - { name: upper, tenant: acme, exec: upper, node: a }\n"
	                     "  - { name: other, tenant: beta, exec: other, node: a, "
	                     "calls: [other] }\n" BASE_ROUTES);
	EXPECT_VALID(&r);
	if (r.cfg == NULL || r.ret != 0)
		goto out;
	f = &r.cfg->functions[0];
	CHECK(f->calls_count == 3);
	CHECK(f->calls_idx[0] == 1 && f->calls_idx[1] == 0 && f->calls_idx[2] == 2);
	CHECK(r.cfg->functions[1].calls_count == 0 && r.cfg->functions[1].calls == NULL);
	CHECK(r.cfg->functions[2].calls_count == 1 && r.cfg->functions[2].calls_idx[0] == 1);
	CHECK(r.cfg->functions[4].calls_count == 1 && r.cfg->functions[4].calls_idx[0] == 4);
out:
	release(&r);

	/* An empty list is a list of no calls. */
	load_text(&r, BASE_NODES BASE_TENANTS "functions: [{ name: upper, tenant: acme, exec: "
	                                      "upper, node: a, calls: [] }]\n" BASE_ROUTES);
	EXPECT_VALID(&r);
	if (r.cfg != NULL && r.ret == 0)
		CHECK(r.cfg->functions[0].calls_count == 0);
	release(&r);
}

static void test_err_calls(void)
{
	struct result r;

	/* Unknown, block style: the error is at the entry, on its own line. */
	load_text(&r, BASE_NODES BASE_TENANTS
	          "functions:\n"
	          "  - name: front\n"
	          "    tenant: acme\n"
	          "    exec: front\n"
	          "    node: a\n"
	          "    calls:\n"
	          "      - upper\n"
	          "      - nope\n"
	          "  - { name: upper, tenant: acme, exec: upper, node: a }\n" BASE_ROUTES);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 10, 9,
	             "functions[0].calls[1]: unknown function \"nope\" (functions of tenant "
	             "\"acme\": front, upper)");
	release(&r);

	/* Unknown, flow style. */
	load_text(&r, BASE_NODES BASE_TENANTS
	          "functions: [{ name: upper, tenant: acme, exec: upper, node: a, "
	          "calls: [upper, exclaim] }]\n" BASE_ROUTES);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 3, 79,
	             "functions[0].calls[1]: unknown function \"exclaim\" (functions of tenant "
	             "\"acme\": upper)");
	release(&r);

	/* Another tenant's function: both tenants named. */
	load_text(&r, BASE_NODES "tenants: [{ name: acme }, { name: beta }]\n"
	                         "functions:\n"
	                         "  - { name: upper, tenant: acme, exec: upper, node: a }\n"
	                         "  - { name: other, tenant: beta, exec: other, node: a, "
	                         "calls: [other, upper] }\n" BASE_ROUTES);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 5, 71,
	             "functions[1].calls[1]: function \"upper\" belongs to tenant \"acme\", not to "
	             "\"beta\"");
	release(&r);

	/* The same function twice in one list. */
	load_text(&r, BASE_NODES BASE_TENANTS
	          "functions:\n"
	          "  - { name: upper, tenant: acme, exec: upper, node: a }\n"
	          "  - { name: front, tenant: acme, exec: front, node: a, "
	          "calls: [upper, front, upper] }\n" BASE_ROUTES);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 5, 78,
	             "functions[1].calls[2]: function \"upper\" is listed twice (first at 5:64)");
	release(&r);

	/* More entries than PD_MAX_CALLS: a shape error at the list. */
	{
		char text[4096];
		int n = snprintf(text, sizeof(text), "%s%s%s", BASE_NODES, BASE_TENANTS,
		                 "functions: [{ name: upper, tenant: acme, exec: upper, node: a, "
		                 "calls: [upper");

		for (int i = 1; i <= PD_MAX_CALLS; i++)
			n += snprintf(text + n, sizeof(text) - (size_t)n, ", upper");
		snprintf(text + n, sizeof(text) - (size_t)n, "] }]\n%s", BASE_ROUTES);
		load_text(&r, text);
		EXPECT_INVALID(&r, 1);
		EXPECT_ERROR(&r, 3, 71, "functions[0].calls: too many entries: 65 (at most 64)");
		release(&r);
	}
}

/* engine.max_call_depth: default 16 (test_defaults), range 1..64. */
static void test_max_call_depth(void)
{
	struct result r;

	load_text(&r, "engine: { max_call_depth: 1 }\n" BASE);
	EXPECT_VALID(&r);
	if (r.cfg != NULL && r.ret == 0)
		CHECK(r.cfg->engine.max_call_depth == 1);
	release(&r);

	load_text(&r, "engine: { max_call_depth: 64 }\n" BASE);
	EXPECT_VALID(&r);
	if (r.cfg != NULL && r.ret == 0)
		CHECK(r.cfg->engine.max_call_depth == 64);
	release(&r);

	load_text(&r, "engine:\n  max_call_depth: 65\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 2, 19, "engine.max_call_depth: 65 is out of range (1..64)");
	release(&r);

	load_text(&r, "engine: { spin_us: 0, max_call_depth: 0 }\n" BASE);
	EXPECT_INVALID(&r, 1);
	EXPECT_ERROR(&r, 1, 39, "engine.max_call_depth: 0 is out of range (1..64)");
	release(&r);
}

/* ---- docs/config.md against the key table ---- */

/* Splits a markdown table row at its unescaped '|' into cells (trimmed, in place). */
static int md_cells(char *line, char *cells[], int max)
{
	int n = 0;
	char *p = line, *start;

	if (*p != '|')
		return 0;
	start = ++p;
	for (; *p != '\0' && *p != '\n'; p++) {
		if (*p == '\\' && p[1] == '|') {
			p++;
			continue;
		}
		if (*p != '|' || n == max)
			continue;
		*p = '\0';
		while (*start == ' ')
			start++;
		for (char *e = p - 1; e >= start && *e == ' '; e--)
			*e = '\0';
		cells[n++] = start;
		start = p + 1;
	}
	return n;
}

/* Does cell contain `what` (in backticks) or, when plain, what itself? */
static bool cell_has(const char *cell, const char *what, bool ticks)
{
	char buf[128];

	snprintf(buf, sizeof(buf), ticks ? "`%s`" : "%s", what);
	return strstr(cell, buf) != NULL;
}

static void format_value(const struct pd_config_key *k, uint64_t v, char *buf, size_t size)
{
	switch (k->type) {
	case PD_CONFIG_SIZE: pd_config_format_size(buf, size, v); return;
	case PD_CONFIG_RATE:
		pd_config_format_size(buf, size, v);
		strncat(buf, "/s", size - strlen(buf) - 1);
		return;
	case PD_CONFIG_DURATION: pd_config_format_duration(buf, size, v); return;
	default: snprintf(buf, size, "%llu", (unsigned long long)v); return;
	}
}

/* Checks one documented key against its row; false if there is no row. */
static bool check_doc_row(int section, const char *name, const char *dflt, const char *range)
{
	for (size_t i = 0; i < pd_config_keys_count; i++) {
		const struct pd_config_key *k = &pd_config_keys[i];
		bool number = k->type == PD_CONFIG_UINT || k->type == PD_CONFIG_POW2 ||
		              k->type == PD_CONFIG_SIZE || k->type == PD_CONFIG_DURATION ||
		              k->type == PD_CONFIG_RATE;
		uint64_t type_max = k->size == 2   ? UINT16_MAX
		                    : k->size == 4 ? UINT32_MAX
		                                   : UINT64_MAX;
		char want[96], lo[40], hi[40];

		if ((int)k->section != section || strcmp(k->name, name) != 0)
			continue;
		if (k->required && !cell_has(dflt, "required", false)) {
			printf("    docs/config.md: %s.%s: default should say required, says %s\n",
			       pd_config_sections[section].name, name, dflt);
			case_failed = true;
		}
		if (number && !k->required && k->dflt >= k->min && k->dflt <= k->max) {
			format_value(k, k->dflt, want, sizeof(want));
			if (!cell_has(dflt, want, true)) {
				printf(
				    "    docs/config.md: %s.%s: default should be `%s`, says %s\n",
				    pd_config_sections[section].name, name, want, dflt);
				case_failed = true;
			}
		}
		if (number && k->max != type_max) {
			format_value(k, k->min, lo, sizeof(lo));
			format_value(k, k->max, hi, sizeof(hi));
			snprintf(want, sizeof(want), "%s..%s", lo, hi);
			if (!cell_has(range, want, false)) {
				printf(
				    "    docs/config.md: %s.%s: range should be %s, says %.60s\n",
				    pd_config_sections[section].name, name, want, range);
				case_failed = true;
			}
		}
		if (k->dflt_text != NULL && !cell_has(dflt, k->dflt_text, true)) {
			printf("    docs/config.md: %s.%s: default should be `%s`, says %s\n",
			       pd_config_sections[section].name, name, k->dflt_text, dflt);
			case_failed = true;
		}
		if (k->type == PD_CONFIG_ENUM &&
		    !cell_has(dflt, k->enum_strings[k->dflt].str, true)) {
			printf("    docs/config.md: %s.%s: default should be `%s`, says %s\n",
			       pd_config_sections[section].name, name, k->enum_strings[k->dflt].str,
			       dflt);
			case_failed = true;
		}
		return true;
	}
	return false;
}

/*
 * The sub-section whose row name is in the table of section, or -1. Such a row says
 * "mapping"; its keys have a table of their own under the sub-section's heading.
 */
static int doc_sub_row(int section, const char *name, const char *type)
{
	for (int s = 0; s < PD_CONFIG_SECTIONS; s++) {
		const struct pd_config_section_def *def = &pd_config_sections[s];
		const char *dot = strrchr(def->name, '.');

		if (!def->sub || (int)def->parent != section || dot == NULL ||
		    strcmp(dot + 1, name) != 0)
			continue;
		if (!cell_has(type, "mapping", false)) {
			printf("    docs/config.md: %s: type should say mapping, says %s\n",
			       def->name, type);
			case_failed = true;
		}
		return s;
	}
	return -1;
}

/*
 * The key tables of docs/config.md list exactly the keys of pd_config_keys, each with the
 * table's default and range: the docs cannot drift from the loader.
 */
static void test_docs_match_table(void)
{
	FILE *md = fopen(PD_SOURCE_ROOT "/docs/config.md", "r");
	size_t documented[PD_CONFIG_SECTIONS] = {0}, keys[PD_CONFIG_SECTIONS] = {0};
	size_t sub_rows[PD_CONFIG_SECTIONS] = {0}; /* a sub-section's rows in its parent's table */
	char line[8192];
	int section = -1, sub;
	bool in_table = false;

	CHECK(pd_config_schema() != NULL);
	CHECK(md != NULL);
	if (md == NULL)
		return;
	while (fgets(line, sizeof(line), md) != NULL) {
		char *cells[4];
		int n;

		if (line[0] == '#') {
			section = -1;
			in_table = false;
			for (int s = 0; s < PD_CONFIG_SECTIONS; s++) {
				char heading[64];

				snprintf(heading, sizeof(heading), "%s `%s%s`\n",
				         pd_config_sections[s].sub ? "###" : "##",
				         pd_config_sections[s].name,
				         pd_config_sections[s].list ? "[]" : "");
				if (strcmp(line, heading) == 0)
					section = s;
			}
			continue;
		}
		if (section < 0)
			continue;
		if (strncmp(line, "| key |", 7) == 0) {
			in_table = true;
			continue;
		}
		if (!in_table || line[0] != '|' || strncmp(line, "|---", 4) == 0) {
			in_table = in_table && line[0] == '|';
			continue;
		}
		n = md_cells(line, cells, 4);
		if (n < 4 || cells[0][0] != '`') {
			printf("    docs/config.md: a key row without a `key`: %.60s\n", line);
			case_failed = true;
			continue;
		}
		cells[0][strlen(cells[0]) - 1] = '\0';
		sub = doc_sub_row(section, cells[0] + 1, cells[1]);
		if (sub >= 0) {
			sub_rows[sub]++;
			continue;
		}
		if (!check_doc_row(section, cells[0] + 1, cells[2], cells[3])) {
			printf("    docs/config.md: %s.%s is not a key of the loader\n",
			       pd_config_sections[section].name, cells[0] + 1);
			case_failed = true;
			continue;
		}
		documented[section]++;
	}
	fclose(md);
	for (size_t i = 0; i < pd_config_keys_count; i++)
		keys[pd_config_keys[i].section]++;
	for (int s = 0; s < PD_CONFIG_SECTIONS; s++) {
		if (documented[s] == keys[s])
			continue;
		printf("    docs/config.md: section %s documents %zu keys, the loader has %zu\n",
		       pd_config_sections[s].name, documented[s], keys[s]);
		case_failed = true;
	}
	for (int s = 0; s < PD_CONFIG_SECTIONS; s++) {
		if (!pd_config_sections[s].sub || sub_rows[s] == 1)
			continue;
		printf("    docs/config.md: %s has %zu rows in the table of %s, not 1\n",
		       pd_config_sections[s].name, sub_rows[s],
		       pd_config_sections[pd_config_sections[s].parent].name);
		case_failed = true;
	}
}

int main(void)
{
	run("full file: every value resolved", test_full);
	run("minimal file: every default", test_defaults);
	run("range edges accepted", test_edges_accepted);
	run("engine.poll and engine.core", test_engine_poll_and_core);
	run("anchors and aliases", test_aliases);
	run("pd_config_resolve_exec", test_resolve_exec);
	run("pd_parse_size", test_parse_size);
	run("pd_parse_duration", test_parse_duration);
	run("pd_parse_addr", test_parse_addr);
	run("error: YAML syntax", test_err_syntax);
	run("error: unknown key at top level", test_err_unknown_key_top);
	run("error: unknown key nested", test_err_unknown_key_nested);
	run("error: missing required key", test_err_missing_key);
	run("error: wrong type", test_err_wrong_type);
	run("error: bad size", test_err_bad_size);
	run("error: bad duration", test_err_bad_duration);
	run("error: duplicate names", test_err_duplicates);
	run("error: chain with unknown function", test_err_chain_unknown);
	run("error: chain with function of another tenant", test_err_chain_other_tenant);
	run("error: node and nodes both set", test_err_node_and_nodes);
	run("error: neither node nor nodes", test_err_no_node);
	run("error: bad address", test_err_bad_address);
	run("error: port out of range", test_err_port_range);
	run("ingress.max_connections and request_read_timeout", test_ingress_connections);
	run("ingress.tls", test_ingress_tls);
	run("error: ingress.threads 2", test_err_ingress_threads);
	run("error: empty file", test_err_empty);
	run("error: file not found", test_err_not_found);
	run("error: multiple errors reported together", test_err_multiple);
	run("error: more structure errors", test_err_structure_more);
	run("error: more YAML errors", test_err_yaml_more);
	run("error: hostile input", test_err_hostile);
	run("error: more semantic errors", test_err_semantic_more);
	run("functions[].calls", test_calls);
	run("error: functions[].calls", test_err_calls);
	run("engine.max_call_depth", test_max_call_depth);
	run("docs/config.md lists the key table", test_docs_match_table);
	printf("config: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
