/* SPDX-License-Identifier: Apache-2.0 */
/* Levelled, component-tagged logging to stderr; never used on the data path. */
#ifndef PD_COMMON_LOG_H
#define PD_COMMON_LOG_H

#include <stdio.h>
#include <stdlib.h>

enum pd_log_level {
	PD_LOG_ERROR = 0,
	PD_LOG_WARN = 1,
	PD_LOG_INFO = 2,
	PD_LOG_DEBUG = 3,
};

/* Process-wide settings; set once from main() before threads start. */
void pd_log_set_level(enum pd_log_level level);
void pd_log_set_name(const char *process_name);

/*
 * Write one line: "<time> <process> <level> <component>: <message>[: <strerror(err)>]".
 * err is a positive or negative errno, or 0 for none.
 */
void pd_log(enum pd_log_level level, const char *component, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define PD_LOG_ERR(comp, err, ...) pd_log(PD_LOG_ERROR, comp, err, __VA_ARGS__)
#define PD_LOG_WARN(comp, err, ...) pd_log(PD_LOG_WARN, comp, err, __VA_ARGS__)
#define PD_LOG_INFO(comp, ...) pd_log(PD_LOG_INFO, comp, 0, __VA_ARGS__)
#define PD_LOG_DEBUG(comp, ...) pd_log(PD_LOG_DEBUG, comp, 0, __VA_ARGS__)

/* Programmer errors only: never for input from the network, a config or a function. */
#define PD_ASSERT(cond)                                                                        \
	do {                                                                                   \
		if (__builtin_expect(!(cond), 0)) {                                            \
			fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__,   \
				#cond);                                                        \
			abort();                                                               \
		}                                                                              \
	} while (0)

#define PD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PD_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
