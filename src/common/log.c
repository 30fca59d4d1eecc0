/* SPDX-License-Identifier: Apache-2.0 */
/* Levelled, component-tagged logging to stderr. */
#include "common/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

static enum pd_log_level log_level = PD_LOG_INFO;
static const char *log_name = "palladium";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void pd_log_set_level(enum pd_log_level level)
{
	log_level = level;
}

void pd_log_set_name(const char *process_name)
{
	log_name = process_name;
}

void pd_log(enum pd_log_level level, const char *component, int err, const char *fmt, ...)
{
	if (level > log_level)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[32];
	strftime(when, sizeof(when), "%H:%M:%S", &tm);

	if (err < 0)
		err = -err;
	/* One fprintf so that lines from several processes do not interleave. */
	if (err != 0)
		fprintf(stderr, "%s.%03ld %s %s %s: %s: %s\n", when, ts.tv_nsec / 1000000, log_name,
		        level_names[level], component, msg, strerror(err));
	else
		fprintf(stderr, "%s.%03ld %s %s %s: %s\n", when, ts.tv_nsec / 1000000, log_name,
		        level_names[level], component, msg);
}

bool pd_log_rate_allow(struct pd_log_rate *rl, const char *component)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ts.tv_sec != rl->window) {
		if (rl->suppressed != 0)
			PD_LOG_WARN(component, 0, "%" PRIu32 " similar messages suppressed",
			            rl->suppressed);
		rl->window = ts.tv_sec;
		rl->count = 0;
		rl->suppressed = 0;
	}
	if (rl->count < PD_LOG_RATE_BURST) {
		rl->count++;
		return true;
	}
	rl->suppressed++;
	return false;
}
