/* SPDX-License-Identifier: Apache-2.0 */
/* Online Boutique's command-line arguments (`args:` of the cluster file). */
#include <string.h>

#include "common.h"
#include "unit.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof(a[0])))

static void test_defaults(void)
{
	char *argv[] = {"svc"};
	struct boutique_args a;
	CHECK(boutique_args_parse(ARGC(argv), argv, &a) == 0);
	CHECK(strcmp(a.data_dir, "data") == 0);
	CHECK(a.static_dir == NULL);
	CHECK(strcmp(a.redis_host, "127.0.0.1") == 0 && a.redis_port == 6379);
}

static void test_values(void)
{
	char *argv[] = {"svc", "--data", "../d", "--redis", "redis.local:7000", "--static", "s"};
	struct boutique_args a;
	CHECK(boutique_args_parse(ARGC(argv), argv, &a) == 0);
	CHECK(strcmp(a.data_dir, "../d") == 0);
	CHECK(strcmp(a.static_dir, "s") == 0);
	CHECK(strcmp(a.redis_host, "redis.local") == 0 && a.redis_port == 7000);
	/* IPv6 literals: the port is after the last colon. */
	char *v6[] = {"svc", "--redis", "::1:6380"};
	CHECK(boutique_args_parse(ARGC(v6), v6, &a) == 0);
	CHECK(strcmp(a.redis_host, "::1") == 0 && a.redis_port == 6380);
}

static void test_refusals(void)
{
	struct boutique_args a;
	char *unknown[] = {"svc", "--verbose"};
	CHECK(boutique_args_parse(ARGC(unknown), unknown, &a) == -1);
	char *missing[] = {"svc", "--data"};
	CHECK(boutique_args_parse(ARGC(missing), missing, &a) == -1);
	const char *bad[] = {"localhost", "localhost:", ":6379", "h:0", "h:65536", "h:12x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = {"svc", "--redis", (char *)bad[i]};
		CHECK(boutique_args_parse(ARGC(argv), argv, &a) == -1);
	}
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_values);
	RUN(test_refusals);
	return SUMMARY("boutique_args");
}
