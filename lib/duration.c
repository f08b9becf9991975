/*
 * duration.c - Go duration strings, as Consul writes them.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "healthreg/duration.h"

struct unit {
	const char *name;
	double ms;
};

/* Longest names first so "ms" is not read as "m". */
static const struct unit units[] = {
	{ "ns", 1e-6 }, { "us", 1e-3 }, { "\xc2\xb5s", 1e-3 },
	{ "\xce\xbcs", 1e-3 }, { "ms", 1.0 }, { "s", 1e3 },
	{ "m", 60e3 }, { "h", 3600e3 },
};

static const struct unit *match_unit(const char *p, size_t *len)
{
	const struct unit *best = NULL;
	size_t i, best_len = 0;

	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		size_t n = strlen(units[i].name);

		if (n > best_len && !strncmp(p, units[i].name, n)) {
			best = &units[i];
			best_len = n;
		}
	}
	*len = best_len;
	return best;
}

int hr_duration_parse(const char *s, int64_t *ms_out)
{
	double total = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	if (*p == '+')
		p++;
	if (!strcmp(p, "0")) {
		*ms_out = 0;
		return 0;
	}
	if (!*p)
		return -EINVAL;
	while (*p) {
		double whole = 0, frac = 0, scale = 1;
		int digits = 0;
		const struct unit *u;
		size_t ulen;

		while (*p >= '0' && *p <= '9') {
			whole = whole * 10 + (*p - '0');
			p++;
			digits++;
		}
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9') {
				scale /= 10;
				frac += (*p - '0') * scale;
				p++;
				digits++;
			}
		}
		if (!digits)
			return -EINVAL;
		u = match_unit(p, &ulen);
		if (!u)
			return -EINVAL;
		p += ulen;
		total += (whole + frac) * u->ms;
		if (total > 9.2e15)
			return -ERANGE;
	}
	*ms_out = (int64_t)llround(total);
	return 0;
}

void hr_duration_format(int64_t ms, char *buf, size_t len)
{
	int64_t h, m, s, rem;

	if (ms == 0) {
		snprintf(buf, len, "0s");
		return;
	}
	if (ms < 1000) {
		snprintf(buf, len, "%lldms", (long long)ms);
		return;
	}
	h = ms / 3600000;
	m = ms / 60000 % 60;
	s = ms / 1000 % 60;
	rem = ms % 1000;
	{
		char sec[32];
		char out[96] = "";
		size_t o = 0;

		if (rem)
			snprintf(sec, sizeof(sec), "%lld.%03llds", (long long)s,
				 (long long)rem);
		else
			snprintf(sec, sizeof(sec), "%llds", (long long)s);
		/* Trim trailing zeros of the fraction: 1.500s -> 1.5s. */
		if (rem) {
			char *dot = strchr(sec, '.');
			char *end = sec + strlen(sec) - 1; /* 's' */

			while (end - 1 > dot && end[-1] == '0') {
				end[-1] = 's';
				end[0] = '\0';
				end--;
			}
		}
		if (h)
			o += snprintf(out + o, sizeof(out) - o, "%lldh",
				      (long long)h);
		if (h || m)
			o += snprintf(out + o, sizeof(out) - o, "%lldm",
				      (long long)m);
		if (s || rem || !(h || m))
			snprintf(out + o, sizeof(out) - o, "%s", sec);
		else if (o < sizeof(out))
			out[o] = '\0';
		snprintf(buf, len, "%s", out);
	}
}
