/* SPDX-License-Identifier: Apache-2.0 */
/* Levelled, component-tagged logging to stderr; never used on the data path. */
#ifndef PD_COMMON_LOG_H
#define PD_COMMON_LOG_H

#include <stdbool.h>
#include <stdint.h>
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

/*
 * A limiter for repeated log lines: at most PD_LOG_RATE_BURST lines per second
 * (CLOCK_MONOTONIC) pass one limiter. The first line let through after some were held
 * back is preceded by a warning "<n> similar messages suppressed" under component.
 * Zero-initialise; one limiter per source of lines; not thread-safe.
 */
#define PD_LOG_RATE_BURST 10
struct pd_log_rate {
	int64_t window;      /* the second the lines are counted in */
	uint32_t count;      /* lines let through in it */
	uint32_t suppressed; /* lines held back in it */
};
/* true: the caller logs its line now; false: it drops it (counted). */
bool pd_log_rate_allow(struct pd_log_rate *rl, const char *component);

/* Programmer errors only: never for input from the network, a config or a function. */
#define PD_ASSERT(cond)                                                                            \
	do {                                                                                       \
		if (__builtin_expect(!(cond), 0)) {                                                \
			fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__,       \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define PD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PD_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
