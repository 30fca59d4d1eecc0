/* SPDX-License-Identifier: Apache-2.0 */
/* Value parsers of the config file (sizes, durations, addresses) and formatters for messages. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "common/config_internal.h"

int pd_config_parse_decimal(const char **p, uint64_t *value)
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
	} units[] = {{"KiB", PD_KiB}, {"MiB", PD_MiB}, {"GiB", PD_GiB}};
	const char *p = text;
	uint64_t value;

	if (text == NULL || bytes == NULL || pd_config_parse_decimal(&p, &value) < 0)
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

	if (text == NULL || ms == NULL || pd_config_parse_decimal(&p, &value) < 0)
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

bool pd_config_ip_literal(const char *text, int family, int *family_out, unsigned char bin[16])
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

int pd_config_parse_addr(const char *text, struct pd_config_addr *addr, const char **why)
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
	if (!pd_config_ip_literal(parsed.host, family, NULL, NULL)) {
		*why = family == AF_INET6 ? "not an IPv6 address"
		                          : "not an IP address (host names are not accepted)";
		return -EINVAL;
	}
	p = colon + 1;
	if (pd_config_parse_decimal(&p, &port) < 0 || *p != '\0' || port < 1 || port > 65535) {
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
	return pd_config_parse_addr(text, addr, &why);
}

const char *pd_config_format_size(char *buf, size_t size, uint64_t bytes)
{
	if (bytes >= PD_GiB && bytes % PD_GiB == 0)
		snprintf(buf, size, "%" PRIu64 "GiB", bytes / PD_GiB);
	else if (bytes >= PD_MiB && bytes % PD_MiB == 0)
		snprintf(buf, size, "%" PRIu64 "MiB", bytes / PD_MiB);
	else if (bytes >= PD_KiB && bytes % PD_KiB == 0)
		snprintf(buf, size, "%" PRIu64 "KiB", bytes / PD_KiB);
	else
		snprintf(buf, size, "%" PRIu64, bytes);
	return buf;
}

const char *pd_config_format_duration(char *buf, size_t size, uint64_t ms)
{
	if (ms >= 60000 && ms % 60000 == 0)
		snprintf(buf, size, "%" PRIu64 "m", ms / 60000);
	else if (ms >= 1000 && ms % 1000 == 0)
		snprintf(buf, size, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, size, "%" PRIu64 "ms", ms);
	return buf;
}
