/* SPDX-License-Identifier: Apache-2.0 */
/* A tiny test harness: CHECK records failures, the summary line is what CI reads. */
#ifndef PD_TESTS_UNIT_H
#define PD_TESTS_UNIT_H

#include <stdio.h>

static int unit_passed, unit_failed, unit_case_failed;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			unit_case_failed = 1;                                                      \
		}                                                                                  \
	} while (0)

#define RUN(fn)                                                                                    \
	do {                                                                                       \
		unit_case_failed = 0;                                                              \
		fn();                                                                              \
		printf("%s %s\n", unit_case_failed ? "FAIL" : "ok  ", #fn);                        \
		if (unit_case_failed)                                                              \
			unit_failed++;                                                             \
		else                                                                               \
			unit_passed++;                                                             \
	} while (0)

#define SUMMARY(name)                                                                              \
	(printf("%s: %d passed, %d failed\n", name, unit_passed, unit_failed),                     \
	 unit_failed == 0 ? 0 : 1)

#endif
